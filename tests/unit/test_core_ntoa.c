/* tests/unit/test_core_ntoa.c — core/ntoa.h: mxg_ntoa_int and mxg_ntoa_uint
 * write what snprintf("%d") and ("%u") write, mxg_ntoa_ip4 what inet_ntop(AF_INET) writes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "core/ntoa.h"

static void test_int(void **st)
{
    (void)st;
    static const int vals[] = {0, 1, 9, 10, 25, 99, 100, 587, 10025, 65535, -1, -10, -65536,
                               INT_MAX, INT_MIN};
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
        char a[16] = {0}, b[16];
        size_t n = mxg_ntoa_int(vals[i], a);
        int m = snprintf(b, sizeof b, "%d", vals[i]);
        assert_int_equal(n, (size_t)m);
        assert_memory_equal(a, b, n);
    }
}

static void test_uint(void **st)
{
    (void)st;
    static const unsigned vals[] = {0, 1, 9, 10, 4294967295u, 2147483648u, 1000000000u};
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
        char a[16] = {0}, b[16];
        size_t n = mxg_ntoa_uint(vals[i], a);
        int m = snprintf(b, sizeof b, "%u", vals[i]);
        assert_int_equal(n, (size_t)m);
        assert_memory_equal(a, b, n);
    }
}

static void test_ip4(void **st)
{
    (void)st;
    static const unsigned char addrs[][4] = {{127, 0, 70, 1}, {0, 0, 0, 0}, {255, 255, 255, 255},
                                             {10, 9, 99, 100}, {192, 168, 1, 254}, {1, 20, 200, 5}};
    for (size_t i = 0; i < sizeof addrs / sizeof addrs[0]; i++) {
        char a[16], b[16];
        size_t n = mxg_ntoa_ip4(addrs[i], a);
        assert_non_null(inet_ntop(AF_INET, addrs[i], b, sizeof b));
        assert_string_equal(a, b);
        assert_int_equal(n, strlen(b));
    }
    for (unsigned v = 0; v < 256; v++) { /* every octet value in every position */
        unsigned char x[4] = {(unsigned char)v, (unsigned char)(255 - v), (unsigned char)(v / 3), 7};
        char a[16], b[16];
        mxg_ntoa_ip4(x, a);
        inet_ntop(AF_INET, x, b, sizeof b);
        assert_string_equal(a, b);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_int),
        cmocka_unit_test(test_uint),
        cmocka_unit_test(test_ip4),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
