/* tests/unit/test_core_scan.c — core/scan.h: the word-at-a-time scans give
 * the same answers as the plain octet loops, at every length, offset and
 * position of a CR, LF or 8-bit octet, and never read past the range. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "core/scan.h"

static size_t ref_line(const char *p, size_t n, unsigned char *acc)
{
    size_t i = 0;
    while (i < n && p[i] != '\r' && p[i] != '\n')
        *acc |= (unsigned char)p[i++];
    return i;
}

static int ref_8bit(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] & 0x80)
            return 1;
    return 0;
}

/* Every length 0..40 at offsets 0..7, with one special octet at each position. */
static void test_against_reference(void **st)
{
    (void)st;
    static const unsigned char special[] = {'\r', '\n', 0x80, 0xff, 0x0c, 0x0b, 0x0e, 0x8d, 0x8a, 0};
    char buf[64];
    for (size_t s = 0; s < sizeof special; s++)
        for (size_t off = 0; off < 8; off++)
            for (size_t n = 0; n <= 40; n++)
                for (size_t pos = 0; pos <= n; pos++) { /* pos == n: no special octet */
                    memset(buf, 'a', sizeof buf);
                    char *p = buf + off;
                    if (pos < n)
                        p[pos] = (char)special[s];
                    unsigned char a1 = 0, a2 = 0;
                    size_t r1 = mxg_scan_line(p, n, &a1), r2 = ref_line(p, n, &a2);
                    assert_int_equal(r1, r2);
                    assert_int_equal(a1 & 0x80, a2 & 0x80);
                    assert_int_equal(mxg_scan_8bit(p, n), ref_8bit((unsigned char *)p, n));
                }
}

/* The answers: a line run stops at the first CR or LF; 8-bit seen before it only. */
static void test_outcomes(void **st)
{
    (void)st;
    unsigned char acc = 0;
    const char *s = "Subject: hello world, a long line\r\n\xc3\xa9";
    assert_int_equal(mxg_scan_line(s, strlen(s), &acc), 33);
    assert_int_equal(acc & 0x80, 0);
    acc = 0;
    const char *t = "caf\xc3\xa9 au lait, sans sucre\nnext";
    assert_int_equal(mxg_scan_line(t, strlen(t), &acc), 25);
    assert_int_equal(acc & 0x80, 0x80);
    acc = 0;
    assert_int_equal(mxg_scan_line("no end at all here", 18, &acc), 18);
    assert_int_equal(mxg_scan_8bit(s, 35), 0);
    assert_int_equal(mxg_scan_8bit(s, 36), 1);
    assert_int_equal(mxg_scan_8bit("", 0), 0);
}

/* The range's end is respected: a heap block of exactly n octets (ASan sees any over-read). */
static void test_no_overread(void **st)
{
    (void)st;
    for (size_t n = 1; n <= 33; n++) {
        char *p = malloc(n);
        assert_non_null(p);
        memset(p, 'x', n);
        unsigned char acc = 0;
        assert_int_equal(mxg_scan_line(p, n, &acc), n);
        assert_int_equal(mxg_scan_8bit(p, n), 0);
        p[n - 1] = (char)0x80;
        assert_int_equal(mxg_scan_8bit(p, n), 1);
        free(p);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_against_reference),
        cmocka_unit_test(test_outcomes),
        cmocka_unit_test(test_no_overread),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
