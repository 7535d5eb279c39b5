/* tests/unit/test_core_str.c — core/str.h: mxg_str_copy and mxg_str_vformat
 * give the octets and result snprintf/vsnprintf give, also when cut short,
 * for the copied fast paths and for formats that go to vsnprintf;
 * mxg_str_join3 what snprintf("%s%s%s") gives. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "core/str.h"

static int fmt_fast(char *dst, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fmt_fast(char *dst, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = mxg_str_vformat(dst, cap, fmt, ap);
    va_end(ap);
    return n;
}

static int fmt_ref(char *dst, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fmt_ref(char *dst, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(dst, cap, fmt, ap);
    va_end(ap);
    return n;
}

#define SAME(cap, ...)                                                                             \
    do {                                                                                           \
        char a[64], b[64];                                                                         \
        memset(a, 'X', sizeof a);                                                                  \
        memset(b, 'X', sizeof b);                                                                  \
        assert_int_equal(fmt_fast(a, cap, __VA_ARGS__), fmt_ref(b, cap, __VA_ARGS__));             \
        assert_memory_equal(a, b, sizeof a);                                                       \
    } while (0)

static void test_vformat_like_vsnprintf(void **st)
{
    (void)st;
    for (size_t cap = 0; cap <= 20; cap++) {
        SAME(cap, "STARTTLS");
        SAME(cap, "End data with <CR><LF>.<CR><LF>");
        SAME(cap, "%s", "RCPT TO:<a@example.test>");
        SAME(cap, "%s", "");
        SAME(cap, "MAIL FROM:<%s>%s", "a@b.test", " SIZE=10");
        SAME(cap, "100%% sure");
        SAME(cap, "%s.", "x");
        SAME(cap, "Sender <%s> OK", "a@example.test");
        SAME(cap, "%s ESMTP mxguard", "mx.example.test");
        SAME(cap, "%s closing connection", "");
        SAME(cap, "a %s b %s", "1", "2");
        SAME(cap, "<%s> 100%%", "x");
        SAME(cap, "%5s|", "ab");
        SAME(cap, "%%s %s", "y");
        SAME(cap, "%d", 42);
    }
    char out[16];
    assert_int_equal(fmt_fast(out, sizeof out, "QUIT"), 4);
    assert_string_equal(out, "QUIT");
    assert_int_equal(fmt_fast(out, 3, "%s", "RSET"), 4); /* cut: the length it would have had */
    assert_string_equal(out, "RS");
}

static void test_join3(void **st)
{
    (void)st;
    for (size_t cap = 0; cap <= 24; cap++) {
        char a[32], b[32];
        memset(a, 'X', sizeof a);
        memset(b, 'X', sizeof b);
        size_t n = mxg_str_join3(a, cap, "no policy for ", "d1.wide.test", "; STARTTLS");
        int m = snprintf(b, cap, "%s%s%s", "no policy for ", "d1.wide.test", "; STARTTLS");
        assert_int_equal(n, (size_t)m);
        assert_memory_equal(a, b, sizeof a);
        memset(a, 'X', sizeof a);
        memset(b, 'X', sizeof b);
        n = mxg_str_join3(a, cap, "", "_mta-sts.", "");
        m = snprintf(b, cap, "%s%s%s", "", "_mta-sts.", "");
        assert_int_equal(n, (size_t)m);
        assert_memory_equal(a, b, sizeof a);
    }
}

static void test_copy(void **st)
{
    (void)st;
    char out[4];
    assert_int_equal(mxg_str_copy(out, sizeof out, "abcdef"), 6);
    assert_string_equal(out, "abc");
    assert_int_equal(mxg_str_copy(out, sizeof out, NULL), 0);
    assert_string_equal(out, "");
    assert_int_equal(mxg_str_copy(NULL, 0, "ab"), 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vformat_like_vsnprintf),
        cmocka_unit_test(test_join3),
        cmocka_unit_test(test_copy),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
