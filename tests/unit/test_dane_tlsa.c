/* tests/unit/test_dane_tlsa.c — dane/tlsa: which TLSA records SMTP may use
 * (RFC 7672 §3.1), their names, the "U S M HEX" format and the filter.
 * Table-driven; pure functions, no network. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dane/tlsa.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* A record with len octets of data 0x00, 0x01, 0x02, ... */
static void make_rr(struct mxg_tlsa_rr *rr, unsigned usage, unsigned selector, unsigned mtype,
                    unsigned len)
{
    memset(rr, 0, sizeof *rr);
    rr->usage = (uint8_t)usage;
    rr->selector = (uint8_t)selector;
    rr->mtype = (uint8_t)mtype;
    rr->len = (uint16_t)len;
    for (unsigned i = 0; i < len && i < MXG_TLSA_DATA_MAX; i++)
        rr->data[i] = (uint8_t)i;
}

/* The data length that is right for a matching type (0: any non-empty). */
static unsigned good_len(unsigned mtype)
{
    return mtype == 1 ? 32 : mtype == 2 ? 64 : 100;
}

/* ------------------------------------------------------------ check */

struct check_case {
    const char *name;
    unsigned usage, selector, mtype, len;
    enum mxg_tlsa_verdict want;
};

static const struct check_case check_cases[] = {
    /* the usable combinations */
    {"DANE-EE SPKI SHA-256", 3, 1, 1, 32, MXG_TLSA_USABLE},
    {"DANE-EE SPKI SHA-512", 3, 1, 2, 64, MXG_TLSA_USABLE},
    {"DANE-EE SPKI full", 3, 1, 0, 91, MXG_TLSA_USABLE},
    {"DANE-EE Cert SHA-256", 3, 0, 1, 32, MXG_TLSA_USABLE},
    {"DANE-EE Cert SHA-512", 3, 0, 2, 64, MXG_TLSA_USABLE},
    {"DANE-EE Cert full", 3, 0, 0, 700, MXG_TLSA_USABLE},
    {"DANE-TA SPKI SHA-256", 2, 1, 1, 32, MXG_TLSA_USABLE},
    {"DANE-TA Cert SHA-256", 2, 0, 1, 32, MXG_TLSA_USABLE},
    {"DANE-TA Cert SHA-512", 2, 0, 2, 64, MXG_TLSA_USABLE},
    {"DANE-TA Cert full, 1 octet", 2, 0, 0, 1, MXG_TLSA_USABLE},
    {"full, at the storage limit", 3, 0, 0, MXG_TLSA_DATA_MAX, MXG_TLSA_USABLE},
    /* PKIX usages are unusable in SMTP even when otherwise perfect */
    {"PKIX-TA", 0, 0, 1, 32, MXG_TLSA_BAD_USAGE},
    {"PKIX-EE", 1, 1, 1, 32, MXG_TLSA_BAD_USAGE},
    {"usage 4", 4, 1, 1, 32, MXG_TLSA_BAD_USAGE},
    {"usage 255 (private)", 255, 1, 1, 32, MXG_TLSA_BAD_USAGE},
    /* selectors */
    {"selector 2", 3, 2, 1, 32, MXG_TLSA_BAD_SELECTOR},
    {"selector 255", 3, 255, 1, 32, MXG_TLSA_BAD_SELECTOR},
    /* matching types */
    {"mtype 3", 3, 1, 3, 32, MXG_TLSA_BAD_MTYPE},
    {"mtype 255", 3, 1, 255, 64, MXG_TLSA_BAD_MTYPE},
    /* wrong digest lengths */
    {"SHA-256, 31 octets", 3, 1, 1, 31, MXG_TLSA_BAD_LENGTH},
    {"SHA-256, 33 octets", 3, 1, 1, 33, MXG_TLSA_BAD_LENGTH},
    {"SHA-256, 0 octets", 3, 1, 1, 0, MXG_TLSA_BAD_LENGTH},
    {"SHA-256, 64 octets", 3, 1, 1, 64, MXG_TLSA_BAD_LENGTH},
    {"SHA-512, 63 octets", 2, 0, 2, 63, MXG_TLSA_BAD_LENGTH},
    {"SHA-512, 65 octets", 2, 0, 2, 65, MXG_TLSA_BAD_LENGTH},
    {"SHA-512, 0 octets", 2, 0, 2, 0, MXG_TLSA_BAD_LENGTH},
    {"SHA-512, 32 octets", 2, 0, 2, 32, MXG_TLSA_BAD_LENGTH},
    {"full, 0 octets (also: data too long to store)", 3, 0, 0, 0, MXG_TLSA_BAD_LENGTH},
    {"len beyond the buffer", 3, 0, 0, MXG_TLSA_DATA_MAX + 1, MXG_TLSA_BAD_LENGTH},
    /* the first problem wins: usage, selector, mtype, length */
    {"bad usage and selector", 0, 7, 1, 32, MXG_TLSA_BAD_USAGE},
    {"bad usage and length", 1, 1, 1, 31, MXG_TLSA_BAD_USAGE},
    {"bad selector and mtype", 3, 9, 9, 32, MXG_TLSA_BAD_SELECTOR},
    {"bad selector and length", 2, 2, 1, 0, MXG_TLSA_BAD_SELECTOR},
    {"bad mtype, empty", 3, 1, 4, 0, MXG_TLSA_BAD_MTYPE},
};

static void test_check_table(void **state)
{
    (void)state;
    struct mxg_tlsa_rr rr;
    for (size_t i = 0; i < ARRAY_LEN(check_cases); i++) {
        const struct check_case *c = &check_cases[i];
        make_rr(&rr, c->usage, c->selector, c->mtype, c->len);
        enum mxg_tlsa_verdict got = mxg_tlsa_check(&rr);
        if (got != c->want)
            fail_msg("%s (%u %u %u, %u octets): got %s, want %s", c->name, c->usage, c->selector,
                     c->mtype, c->len, mxg_tlsa_verdict_name(got), mxg_tlsa_verdict_name(c->want));
    }
}

/* Every usage value 0..255 with every selector 0..3 and matching type 0..3
 * at a good length: only 2/3 x 0/1 x 0/1/2 is usable, and the verdict names
 * the first bad field. */
static void test_check_every_usage(void **state)
{
    (void)state;
    struct mxg_tlsa_rr rr;
    int usable = 0;
    for (unsigned u = 0; u <= 255; u++) {
        for (unsigned s = 0; s <= 3; s++) {
            for (unsigned m = 0; m <= 3; m++) {
                make_rr(&rr, u, s, m, good_len(m));
                enum mxg_tlsa_verdict want = (u != 2 && u != 3) ? MXG_TLSA_BAD_USAGE
                                             : s > 1            ? MXG_TLSA_BAD_SELECTOR
                                             : m > 2            ? MXG_TLSA_BAD_MTYPE
                                                                : MXG_TLSA_USABLE;
                enum mxg_tlsa_verdict got = mxg_tlsa_check(&rr);
                if (got != want)
                    fail_msg("%u %u %u: got %s, want %s", u, s, m, mxg_tlsa_verdict_name(got),
                             mxg_tlsa_verdict_name(want));
                usable += got == MXG_TLSA_USABLE;
            }
        }
    }
    assert_int_equal(usable, 2 * 2 * 3);
}

/* Every selector and matching type value 0..255 with a DANE-EE usage. */
static void test_check_every_selector_and_mtype(void **state)
{
    (void)state;
    struct mxg_tlsa_rr rr;
    for (unsigned v = 0; v <= 255; v++) {
        make_rr(&rr, 3, v, 1, 32);
        assert_int_equal(mxg_tlsa_check(&rr), v <= 1 ? MXG_TLSA_USABLE : MXG_TLSA_BAD_SELECTOR);
        make_rr(&rr, 3, 1, v, good_len(v));
        assert_int_equal(mxg_tlsa_check(&rr), v <= 2 ? MXG_TLSA_USABLE : MXG_TLSA_BAD_MTYPE);
    }
}

/* Every length 0..200 for each matching type. */
static void test_check_every_length(void **state)
{
    (void)state;
    struct mxg_tlsa_rr rr;
    for (unsigned m = 0; m <= 2; m++) {
        for (unsigned len = 0; len <= 200; len++) {
            make_rr(&rr, 2, 1, m, len);
            int ok = m == 0 ? len > 0 : m == 1 ? len == 32 : len == 64;
            enum mxg_tlsa_verdict got = mxg_tlsa_check(&rr);
            if (got != (ok ? MXG_TLSA_USABLE : MXG_TLSA_BAD_LENGTH))
                fail_msg("mtype %u len %u: got %s", m, len, mxg_tlsa_verdict_name(got));
        }
    }
    assert_int_equal(mxg_tlsa_check(NULL), MXG_TLSA_BAD_LENGTH);
}

/* ------------------------------------------------------------ names */

static void test_verdict_names(void **state)
{
    (void)state;
    static const struct {
        enum mxg_tlsa_verdict v;
        const char *name;
    } names[] = {
        {MXG_TLSA_USABLE, "usable"},
        {MXG_TLSA_BAD_USAGE, "unusable certificate usage"},
        {MXG_TLSA_BAD_SELECTOR, "unusable selector"},
        {MXG_TLSA_BAD_MTYPE, "unusable matching type"},
        {MXG_TLSA_BAD_LENGTH, "wrong association data length"},
        {(enum mxg_tlsa_verdict)99, "?"},
        {(enum mxg_tlsa_verdict)-1, "?"},
    };
    for (size_t i = 0; i < ARRAY_LEN(names); i++)
        assert_string_equal(mxg_tlsa_verdict_name(names[i].v), names[i].name);
}

/* ------------------------------------------------------------ format */

struct format_case {
    const char *name;
    unsigned usage, selector, mtype;
    const char *hexdata; /* lower or upper case input */
    size_t cap;
    const char *want;
};

static const struct format_case format_cases[] = {
    {"3 1 1", 3, 1, 1, "abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789", 256,
     "3 1 1 ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789"},
    {"2 0 0 short", 2, 0, 0, "00ff10", 64, "2 0 0 00FF10"},
    {"unusable values print as numbers", 255, 254, 253, "7f", 64, "255 254 253 7F"},
    {"no data", 3, 1, 1, "", 64, "3 1 1"},
    {"cut inside the hex", 3, 1, 1, "abcdef", 10, "3 1 1 ABC"},
    {"cut after the fields", 3, 1, 1, "abcdef", 6, "3 1 1"},
    {"cut inside the fields", 3, 1, 1, "abcdef", 4, "3 1"},
    {"exact fit", 3, 1, 1, "abcd", 11, "3 1 1 ABCD"},
    {"one short", 3, 1, 1, "abcd", 10, "3 1 1 ABC"},
    {"cap 1", 3, 1, 1, "ab", 1, ""},
};

static unsigned hexval(char c)
{
    return c >= '0' && c <= '9' ? (unsigned)(c - '0') : (unsigned)((c | 0x20) - 'a' + 10);
}

static void test_format_table(void **state)
{
    (void)state;
    struct mxg_tlsa_rr rr;
    char out[300];
    for (size_t i = 0; i < ARRAY_LEN(format_cases); i++) {
        const struct format_case *c = &format_cases[i];
        make_rr(&rr, c->usage, c->selector, c->mtype, 0);
        size_t n = strlen(c->hexdata) / 2;
        for (size_t j = 0; j < n; j++)
            rr.data[j] = (uint8_t)(hexval(c->hexdata[2 * j]) << 4 | hexval(c->hexdata[2 * j + 1]));
        rr.len = (uint16_t)n;
        memset(out, 'X', sizeof out);
        mxg_tlsa_format(&rr, out, c->cap);
        if (strcmp(out, c->want) != 0)
            fail_msg("%s: got \"%s\", want \"%s\"", c->name, out, c->want);
        assert_int_equal(out[c->cap], 'X'); /* nothing written past cap */
    }
}

static void test_format_full_certificate(void **state)
{
    (void)state;
    struct mxg_tlsa_rr rr;
    make_rr(&rr, 3, 0, 0, MXG_TLSA_DATA_MAX);
    size_t need = 6 + 2 * (size_t)MXG_TLSA_DATA_MAX + 1;
    char *out = malloc(need);
    assert_non_null(out);
    mxg_tlsa_format(&rr, out, need);
    assert_int_equal(strlen(out), need - 1);
    assert_memory_equal(out, "3 0 0 000102030405", 18);
    assert_string_equal(out + need - 5, "FEFF"); /* data[2047] = 0xff, data[2046] = 0xfe */
    free(out);

    char small[4] = "abc";
    mxg_tlsa_format(&rr, small, 0); /* cap 0: nothing written */
    assert_string_equal(small, "abc");
    mxg_tlsa_format(NULL, small, sizeof small);
    assert_string_equal(small, "");
}

/* ------------------------------------------------------------ filter */

static void test_filter_usable(void **state)
{
    (void)state;
    static const struct {
        unsigned u, s, m, len;
        int usable;
    } in_spec[] = {
        {0, 0, 1, 32, 0}, {3, 1, 1, 32, 1}, {1, 1, 1, 32, 0}, {3, 1, 1, 31, 0},
        {2, 0, 2, 64, 1}, {3, 2, 1, 32, 0}, {3, 1, 3, 32, 0}, {3, 0, 0, 5, 1},
    };
    struct mxg_tlsa_rr in[ARRAY_LEN(in_spec)];
    static struct mxg_tlsa_rr out[MXG_TLSA_MAX_RR];
    for (size_t i = 0; i < ARRAY_LEN(in_spec); i++)
        make_rr(&in[i], in_spec[i].u, in_spec[i].s, in_spec[i].m, in_spec[i].len);

    int n = mxg_tlsa_filter_usable(in, (int)ARRAY_LEN(in), out);
    assert_int_equal(n, 3);
    /* order kept */
    assert_int_equal(out[0].usage, 3);
    assert_int_equal(out[0].mtype, 1);
    assert_int_equal(out[1].usage, 2);
    assert_int_equal(out[1].mtype, 2);
    assert_int_equal(out[2].mtype, 0);
    assert_int_equal(out[2].len, 5);
    assert_memory_equal(out[2].data, in[7].data, 5);

    /* none usable, empty input, NULL */
    assert_int_equal(mxg_tlsa_filter_usable(in, 1, out), 0);
    assert_int_equal(mxg_tlsa_filter_usable(in, 0, out), 0);
    assert_int_equal(mxg_tlsa_filter_usable(in, -3, out), 0);
    assert_int_equal(mxg_tlsa_filter_usable(NULL, 5, out), 0);
    assert_int_equal(mxg_tlsa_filter_usable(in, 2, NULL), 0);
}

/* More usable records than MXG_TLSA_MAX_RR: out is never overrun. */
static void test_filter_caps_at_max(void **state)
{
    (void)state;
    enum { N = MXG_TLSA_MAX_RR + 5 };
    struct mxg_tlsa_rr *in = calloc(N, sizeof *in);
    struct mxg_tlsa_rr *out = calloc(MXG_TLSA_MAX_RR + 1, sizeof *out);
    assert_non_null(in);
    assert_non_null(out);
    for (int i = 0; i < N; i++) {
        make_rr(&in[i], 3, 1, 1, 32);
        in[i].data[0] = (uint8_t)i;
    }
    out[MXG_TLSA_MAX_RR].usage = 77; /* sentinel */
    assert_int_equal(mxg_tlsa_filter_usable(in, N, out), MXG_TLSA_MAX_RR);
    assert_int_equal(out[MXG_TLSA_MAX_RR - 1].data[0], MXG_TLSA_MAX_RR - 1);
    assert_int_equal(out[MXG_TLSA_MAX_RR].usage, 77);
    free(in);
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_check_table),
        cmocka_unit_test(test_check_every_usage),
        cmocka_unit_test(test_check_every_selector_and_mtype),
        cmocka_unit_test(test_check_every_length),
        cmocka_unit_test(test_verdict_names),
        cmocka_unit_test(test_format_table),
        cmocka_unit_test(test_format_full_certificate),
        cmocka_unit_test(test_filter_usable),
        cmocka_unit_test(test_filter_caps_at_max),
    };
    return cmocka_run_group_tests_name("dane_tlsa", tests, NULL, NULL);
}
