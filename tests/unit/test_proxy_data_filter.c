/* Unit tests for proxy/data_filter: end detection, smuggling sequences,
 * bare line ends, limits, chunk boundaries. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/data_filter.h"

/* Run the whole input in chunks of `chunk` octets; returns consumed count. */
static long run_chunked(struct mxg_data_filter *f, const char *in, size_t len, size_t chunk,
                        struct mxg_buf *out)
{
    size_t off = 0;
    while (off < len && !mxg_data_filter_done(f)) {
        size_t n = len - off < chunk ? len - off : chunk;
        long used = mxg_data_filter_run(f, in + off, n, out);
        if (used < 0)
            return -1;
        off += (size_t)used;
    }
    return (long)off;
}

static void test_transform_table(void **st)
{
    (void)st;
    static const struct {
        const char *in;
        const char *out; /* what goes upstream (without the end marker) */
        int done;
        size_t rest; /* input octets left after the end marker */
    } cases[] = {
        {"Subject: x\r\n\r\nbody\r\n.\r\n", "Subject: x\r\n\r\nbody\r\n", 1, 0},
        {".\r\n", "", 1, 0}, /* empty message */
        {"a\r\n..stuffed\r\n.\r\nMAIL FROM:<>\r\n", "a\r\n..stuffed\r\n", 1, 14},
        {"bare\nlf\n.\r\n", "bare\r\nlf\r\n..\r\n", 0, 0},      /* bare LF before "." */
        {"x\r\n.\n", "x\r\n..\r\n", 0, 0},                      /* ".<LF>" is content */
        {"x\n.\ny\r\n.\r\n", "x\r\n..\r\ny\r\n", 1, 0},         /* smuggling: <LF>.<LF> */
        {"x\r.\ry\r\n.\r\n", "x\r\n..\r\ny\r\n", 1, 0},         /* smuggling: <CR>.<CR> */
        {"x\n.\r\ny\r\n.\r\n", "x\r\n..\r\ny\r\n", 1, 0},       /* <LF>.<CRLF> */
        {"x\r\n.\ny\r\n.\r\n", "x\r\n..\r\ny\r\n", 1, 0},       /* <CRLF>.<LF> */
        {"a\rb\r\n.\r\n", "a\r\nb\r\n", 1, 0},                  /* bare CR */
        {".foo\r\n.\r\n", ".foo\r\n", 1, 0},                    /* passes through */
        {"no end yet\r\n", "no end yet\r\n", 0, 0},
    };
    for (size_t chunk = 1; chunk <= 64; chunk = chunk * 2 + 1) {
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
            struct mxg_data_filter f;
            mxg_data_filter_init(&f, 0, 1000, 100);
            struct mxg_buf out = {0};
            size_t len = strlen(cases[i].in);
            long used = run_chunked(&f, cases[i].in, len, chunk, &out);
            assert_true(used >= 0);
            if (mxg_data_filter_done(&f) != cases[i].done)
                fail_msg("case %zu chunk %zu: done=%d", i, chunk, mxg_data_filter_done(&f));
            assert_int_equal(len - (size_t)used, cases[i].rest);
            if (out.len - out.off != strlen(cases[i].out) ||
                (out.len > out.off && memcmp(mxg_buf_head(&out), cases[i].out, out.len - out.off) != 0))
                fail_msg("case %zu chunk %zu: got '%.*s'", i, chunk, (int)(out.len - out.off),
                         mxg_buf_head(&out));
            mxg_buf_free(&out);
        }
    }
}

static void test_line_limit(void **st)
{
    (void)st;
    char *msg = malloc(3000);
    /* 998 octets + CRLF = 1000: allowed; 999 + CRLF: too long */
    for (int extra = 0; extra < 2; extra++) {
        size_t n = 0;
        memset(msg, 'a', 998 + (size_t)extra);
        n = 998 + (size_t)extra;
        memcpy(msg + n, "\r\n.\r\n", 5);
        n += 5;
        struct mxg_data_filter f;
        mxg_data_filter_init(&f, 0, 1000, 100);
        struct mxg_buf out = {0};
        assert_int_equal(mxg_data_filter_run(&f, msg, n, &out), (long)n);
        assert_true(mxg_data_filter_done(&f));
        assert_int_equal(f.too_long, extra);
        assert_int_equal(f.longest_line, 1000 + (size_t)extra);
        mxg_buf_free(&out);
    }
    free(msg);
}

static void test_size_limit(void **st)
{
    (void)st;
    const char *body = "0123456789\r\n0123456789\r\n.\r\n"; /* 24 octets of message */
    for (uint64_t limit = 22; limit <= 26; limit++) {
        struct mxg_data_filter f;
        mxg_data_filter_init(&f, limit, 1000, 100);
        struct mxg_buf out = {0};
        mxg_data_filter_run(&f, body, strlen(body), &out);
        assert_true(mxg_data_filter_done(&f));
        assert_int_equal(f.too_big, limit < 24);
        assert_int_equal(f.size, 24);
        mxg_buf_free(&out);
    }
}

static void test_received_and_8bit(void **st)
{
    (void)st;
    struct mxg_buf msg = {0};
    for (int i = 0; i < 5; i++)
        mxg_buf_printf(&msg, "Received: from hop%d\r\n\tby x\r\n", i);
    mxg_buf_printf(&msg, "Subject: caf\xc3\xa9\r\n\r\nReceived: in the body does not count\r\n.\r\n");
    for (int max = 4; max <= 5; max++) {
        struct mxg_data_filter f;
        mxg_data_filter_init(&f, 0, 1000, max);
        struct mxg_buf out = {0};
        mxg_data_filter_run(&f, msg.data, msg.len, &out);
        assert_true(mxg_data_filter_done(&f));
        assert_int_equal(f.received, max == 4 ? 5 : 5);
        assert_int_equal(f.too_many_received, max == 4);
        assert_true(f.eight_bit);
        mxg_buf_free(&out);
    }
    mxg_buf_free(&msg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_transform_table),
        cmocka_unit_test(test_line_limit),
        cmocka_unit_test(test_size_limit),
        cmocka_unit_test(test_received_and_8bit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
