/* tests/unit/test_smtp_data_filter.c — smtp/data_filter: end detection, smuggling sequences,
 * bare line ends, limits, chunk boundaries. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtp/data_filter.h"

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

/* R: limits.bare_cr = "reject", S: "space"; bad: the message is refused
 * (a bare CR under "reject": 554 5.6.0 after the end marker). */
#define R MXG_DF_CR_REJECT
#define S MXG_DF_CR_SPACE

static void test_transform_table(void **st)
{
    (void)st;
    static const struct {
        enum mxg_df_bare_cr mode;
        const char *in;
        const char *out; /* what goes upstream (without the end marker); "" when refused */
        int done;
        size_t rest; /* input octets left after the end marker */
        int bad;
    } cases[] = {
        {R, "Subject: x\r\n\r\nbody\r\n.\r\n", "Subject: x\r\n\r\nbody\r\n", 1, 0, 0},
        {R, ".\r\n", "", 1, 0, 0}, /* empty message */
        {R, "a\r\n..stuffed\r\n.\r\nMAIL FROM:<>\r\n", "a\r\n..stuffed\r\n", 1, 14, 0},
        {R, "bare\nlf\n.\r\n", "bare\r\nlf\r\n..\r\n", 0, 0, 0},  /* bare LF before "." */
        {R, "x\r\n.\n", "x\r\n..\r\n", 0, 0, 0},                  /* ".<LF>" is content */
        {R, "x\n.\ny\r\n.\r\n", "x\r\n..\r\ny\r\n", 1, 0, 0},     /* smuggling: <LF>.<LF> */
        {R, "x\n.\r\ny\r\n.\r\n", "x\r\n..\r\ny\r\n", 1, 0, 0},   /* <LF>.<CRLF> */
        {R, "x\r\n.\ny\r\n.\r\n", "x\r\n..\r\ny\r\n", 1, 0, 0},   /* <CRLF>.<LF> */
        {R, ".foo\r\n.\r\n", ".foo\r\n", 1, 0, 0},                /* passes through */
        {R, "no end yet\r\n", "no end yet\r\n", 0, 0, 0},
        /* bare CR (§Line ends): never a line end; refused by default */
        {R, "Subject: x\rFrom: ceo@example.com\r\n\r\nb\r\n.\r\n", "", 1, 0, 1},
        {R, "x\r.\ry\r\n.\r\n", "", 1, 0, 1},                      /* smuggling: <CR>.<CR> */
        {R, "x\r.\r\n", "", 0, 0, 1},       /* <CR>.<CRLF>: "." is not at a line start */
        {R, "a\rb\r\n.\r\n", "", 1, 0, 1},
        {R, ".\rx\r\n.\r\n", "", 1, 0, 1},                          /* ".<CR>x" */
        {R, "a\r\r\n.\r\n", "", 1, 0, 1},                           /* CR CR LF */
        {R, "a\r\n.\rMAIL FROM:<>\r\n", "", 0, 0, 1},  /* <CRLF>.<CR>: no end */
        /* ... or made a space */
        {S, "Subject: x\rFrom: ceo@example.com\r\n.\r\n", "Subject: x From: ceo@example.com\r\n", 1, 0, 0},
        {S, "x\r.\ry\r\n.\r\n", "x . y\r\n", 1, 0, 0},
        {S, "x\r.\r\n", "x .\r\n", 0, 0, 0},
        {S, ".\rx\r\n.\r\n", ". x\r\n", 1, 0, 0},  /* stuffed line kept stuffed */
        {S, "a\r\r\n.\r\n", "a \r\n", 1, 0, 0},
        {S, "a\r\n.\r.\r\n", "a\r\n. .\r\n", 0, 0, 0},
        {S, "x\n.\ny\r\n.\r\n", "x\r\n..\r\ny\r\n", 1, 0, 0},     /* bare LF as before */
    };
    for (size_t chunk = 1; chunk <= 64; chunk = chunk * 2 + 1) {
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
            struct mxg_data_filter f;
            mxg_data_filter_init(&f, 0, 1000, 100, cases[i].mode);
            struct mxg_buf out = {0};
            size_t len = strlen(cases[i].in);
            long used = run_chunked(&f, cases[i].in, len, chunk, &out);
            assert_true(used >= 0);
            if (mxg_data_filter_done(&f) != cases[i].done)
                fail_msg("case %zu chunk %zu: done=%d", i, chunk, mxg_data_filter_done(&f));
            if (mxg_data_filter_failed(&f) != cases[i].bad || f.bad_cr != cases[i].bad)
                fail_msg("case %zu chunk %zu: failed=%d", i, chunk, mxg_data_filter_failed(&f));
            assert_int_equal(len - (size_t)used, cases[i].rest);
            if (cases[i].bad) { /* nothing after the bare CR: no new line, no end marker */
                const char *o = out.len > out.off ? mxg_buf_head(&out) : "";
                size_t ol = out.len - out.off;
                const char *cr = strchr(cases[i].in, '\r');
                while (cr && cr[1] == '\n')
                    cr = strchr(cr + 1, '\r');
                if (ol > (size_t)(cr - cases[i].in))
                    fail_msg("case %zu chunk %zu: emitted '%.*s' beyond the bare CR", i, chunk,
                             (int)ol, o);
            } else if (out.len - out.off != strlen(cases[i].out) ||
                       (out.len > out.off &&
                        memcmp(mxg_buf_head(&out), cases[i].out, out.len - out.off) != 0)) {
                fail_msg("case %zu chunk %zu: got '%.*s'", i, chunk, (int)(out.len - out.off),
                         mxg_buf_head(&out));
            }
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
        mxg_data_filter_init(&f, 0, 1000, 100, MXG_DF_CR_REJECT);
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
        mxg_data_filter_init(&f, limit, 1000, 100, MXG_DF_CR_REJECT);
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
        mxg_data_filter_init(&f, 0, 1000, max, MXG_DF_CR_REJECT);
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
