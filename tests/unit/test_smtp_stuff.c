/* tests/unit/test_smtp_stuff.c — smtp/smtp_stuff: the plain-text to DATA
 * wire-form encoder (dot-stuffing) shared by DSNs and TLSRPT report mail. A table of edge
 * cases, chunk boundaries (a CR at the end of a chunk), and an exhaustive
 * check over every short text of '.', CR, LF and 'a' against a reference
 * normaliser: no early end-of-data marker, and un-stuffing gives back the
 * text with its line ends normalised. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtp/smtp_stuff.h"
#include "tests/unit/smtp_stuff_model.h"

struct row {
    const char *in;
    size_t in_len; /* 0: strlen(in) */
    const char *out;
    size_t out_len; /* 0: strlen(out) */
};

static const struct row rows[] = {
    {"", 0, "\r\n", 0},                               /* empty text: one empty line */
    {"a", 0, "a\r\n", 0},                             /* not ending in CRLF: gets one */
    {"a\r\n", 0, "a\r\n", 0},                         /* nothing added */
    {"\r\n", 0, "\r\n", 0},
    {".", 0, "..\r\n", 0},                            /* leading dot, no line end */
    {".a\r\n", 0, "..a\r\n", 0},                      /* leading dot */
    {"..a\r\n", 0, "...a\r\n", 0},
    {".\r\n", 0, "..\r\n", 0},                        /* a line "." */
    {"a\r\n.\r\nb\r\n", 0, "a\r\n..\r\nb\r\n", 0},    /* "\r\n.\r\n" inside the text */
    {"a\r\n.\r\n", 0, "a\r\n..\r\n", 0},
    {"a.b\r\n a.\r\n", 0, "a.b\r\n a.\r\n", 0},       /* dots not at a line start */
    {"a\nb\n", 0, "a\r\nb\r\n", 0},                   /* bare LF ends a line, written CRLF */
    {"a\n.\n", 0, "a\r\n..\r\n", 0},                  /* <LF>.<LF> */
    {"a\n.\r\n", 0, "a\r\n..\r\n", 0},                /* <LF>.<CRLF> */
    {"a\r\n.\n", 0, "a\r\n..\r\n", 0},                /* <CRLF>.<LF> */
    {"\n", 0, "\r\n", 0},
    {"a\rb\r\n", 0, "a b\r\n", 0},                    /* bare CR: a space, never a line end */
    {"a\r.\r\n", 0, "a .\r\n", 0},                    /* <CR>. is no line start */
    {"a\r.\r", 0, "a . \r\n", 0},                     /* <CR>.<CR> */
    {"\r.\r\n", 0, " .\r\n", 0},
    {"a\r", 0, "a \r\n", 0},                          /* text ending in a bare CR */
    {"\r", 0, " \r\n", 0},
    {"a\r\r\n", 0, "a \r\n", 0},                      /* CR CR LF: one bare CR, then CRLF */
    {"a\n\r\n", 0, "a\r\n\r\n", 0},
    {"a\0b", 3, "a\0b\r\n", 5},                       /* any octet is content */
    /* what report mail fed the old copy (test_report_mail t_wire) */
    {".a\r\nb\r\n..c\r\n.\r\nend", 0, "..a\r\nb\r\n...c\r\n..\r\nend\r\n", 0},
};

/* Encode in chunks of `chunk` octets (0: one chunk) through the streaming
 * API; returns the output as a NUL-terminated malloc'd string. */
static char *encode_chunked(const char *in, size_t len, size_t chunk, size_t *outlen)
{
    struct mxg_smtp_stuffer s;
    struct mxg_buf b = {0};
    mxg_smtp_stuff_init(&s);
    if (chunk == 0)
        chunk = len ? len : 1;
    for (size_t off = 0; off < len; off += chunk) {
        size_t n = len - off < chunk ? len - off : chunk;
        char *c = malloc(n); /* exact size: ASan sees any read past it */
        assert_non_null(c);
        memcpy(c, in + off, n);
        assert_int_equal(mxg_smtp_stuff_run(&s, c, n, &b), 0);
        free(c);
    }
    assert_int_equal(mxg_smtp_stuff_end(&s, &b), 0);
    assert_int_equal(s.st, MXG_STUFF_START);
    assert_int_equal(mxg_buf_append(&b, "", 1), 0);
    *outlen = b.len - 1;
    return b.data;
}

static void test_table(void **st)
{
    (void)st;
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        const struct row *r = &rows[i];
        size_t il = r->in_len ? r->in_len : strlen(r->in);
        size_t ol = r->out_len ? r->out_len : strlen(r->out);
        char *out = (char *)0x1;
        size_t len = 99;
        assert_int_equal(mxg_smtp_stuff(r->in, il, &out, &len), 0);
        if (len != ol || memcmp(out, r->out, ol) != 0)
            fail_msg("row %zu: got %zu octets \"%s\"", i, len, out);
        assert_int_equal(out[len], '\0');
        free(out);
        /* the same in every chunking: two chunks at each cut, and octet by octet */
        for (size_t chunk = 1; chunk <= il; chunk++) {
            char *c = encode_chunked(r->in, il, chunk, &len);
            assert_int_equal(len, ol);
            assert_memory_equal(c, r->out, ol);
            free(c);
        }
        for (size_t cut = 0; cut <= il; cut++) {
            struct mxg_smtp_stuffer s;
            struct mxg_buf b = {0};
            mxg_smtp_stuff_init(&s);
            assert_int_equal(mxg_smtp_stuff_run(&s, r->in, cut, &b), 0);
            assert_int_equal(mxg_smtp_stuff_run(&s, r->in + cut, il - cut, &b), 0);
            assert_int_equal(mxg_smtp_stuff_end(&s, &b), 0);
            assert_int_equal(b.len, ol);
            assert_memory_equal(b.data, r->out, ol);
            mxg_buf_free(&b);
        }
    }
}

/* A CR at the end of a chunk waits for the next octet (or the end). */
static void test_cr_at_chunk_end(void **st)
{
    (void)st;
    static const struct {
        const char *a, *b, *out;
    } cases[] = {
        {"a\r", "\nb", "a\r\nb\r\n"},  /* CRLF split: one line end */
        {"a\r", "b", "a b\r\n"},        /* bare CR */
        {"a\r", "", "a \r\n"},          /* bare CR at the very end */
        {"a\r", "\r\n", "a \r\n"},
        {"a\r\n.\r", "\n", "a\r\n..\r\n"}, /* the lone dot line is still stuffed */
        {"a\r", "\n.\r\n", "a\r\n..\r\n"},
        {".\r", "\n", "..\r\n"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct mxg_smtp_stuffer s;
        struct mxg_buf b = {0};
        mxg_smtp_stuff_init(&s);
        assert_int_equal(mxg_smtp_stuff_run(&s, cases[i].a, strlen(cases[i].a), &b), 0);
        assert_int_equal(s.st, MXG_STUFF_CR); /* every first chunk ends in a pending CR */
        assert_int_equal(mxg_smtp_stuff_run(&s, cases[i].b, strlen(cases[i].b), &b), 0);
        assert_int_equal(mxg_smtp_stuff_end(&s, &b), 0);
        if (b.len != strlen(cases[i].out) || memcmp(b.data, cases[i].out, b.len) != 0)
            fail_msg("case %zu: got %.*s", i, (int)b.len, b.data);
        mxg_buf_free(&b);
    }
}

/* Every text of up to 8 octets over {'.', CR, LF, 'a'}. */
static void test_exhaustive(void **st)
{
    (void)st;
    static const char alpha[] = {'.', '\r', '\n', 'a'};
    char in[8], norm[32], back[32];
    unsigned long total = 0;
    for (size_t n = 0; n <= sizeof in; n++) {
        unsigned long combos = 1ul << (2 * n);
        for (unsigned long k = 0; k < combos; k++, total++) {
            for (size_t i = 0; i < n; i++)
                in[i] = alpha[(k >> (2 * i)) & 3];
            char *w;
            size_t wl;
            assert_int_equal(mxg_smtp_stuff(in, n, &w, &wl), 0);
            /* the first CRLF.CRLF of CRLF (DATA's) + wire + ".\r\n" is its end */
            size_t sl = 2 + wl + 3;
            char *stream = malloc(sl);
            assert_non_null(stream);
            memcpy(stream, "\r\n", 2);
            memcpy(stream + 2, w, wl);
            memcpy(stream + 2 + wl, ".\r\n", 3);
            for (size_t i = 0; i + 5 <= sl; i++)
                if (memcmp(stream + i, "\r\n.\r\n", 5) == 0)
                    assert_int_equal(i, sl - 5);
            free(stream);
            size_t nl = stuff_model_normalise((const uint8_t *)in, n, norm);
            ptrdiff_t bl = stuff_model_unstuff(w, wl, back, 1);
            assert_true(bl >= 0);
            assert_int_equal((size_t)bl, nl);
            assert_memory_equal(back, norm, nl);
            free(w);
        }
    }
    assert_int_equal(total, 87381);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_cr_at_chunk_end),
        cmocka_unit_test(test_exhaustive),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
