/* tests/unit/test_core_buf.c — core/buf: append, printf/vprintf, consume, and
 * the C-string view (mxg_buf_cstr) that the DSN and report-mail builders hand out. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"

/* A caller of mxg_buf_vprintf, as the sticky-error wrappers are. */
static int wrap_printf(struct mxg_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int wrap_printf(struct mxg_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = mxg_buf_vprintf(b, fmt, ap);
    va_end(ap);
    return rc;
}

static void test_append_printf(void **st)
{
    (void)st;
    struct mxg_buf b = {0};
    assert_int_equal(mxg_buf_append(&b, "ab", 2), 0);
    assert_int_equal(mxg_buf_append(&b, NULL, 0), 0);
    assert_int_equal(mxg_buf_printf(&b, "<%d>", 42), 0);
    assert_int_equal(wrap_printf(&b, "[%s|%05u]", "x", 7u), 0);
    assert_int_equal(b.len, 2 + 4 + 9);
    assert_memory_equal(b.data, "ab<42>[x|00007]", b.len);
    /* longer than the first allocation: grows */
    char big[5000];
    memset(big, 'z', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    assert_int_equal(wrap_printf(&b, "%s", big), 0);
    assert_int_equal(b.len, 15 + sizeof big - 1);
    assert_int_equal(b.data[b.len - 1], 'z');
    mxg_buf_free(&b);
    assert_null(b.data);
    assert_int_equal(b.len + b.off + b.cap, 0);
}

static void test_cstr(void **st)
{
    (void)st;
    struct mxg_buf b = {0};
    char *s = mxg_buf_cstr(&b); /* empty: "" */
    assert_non_null(s);
    assert_string_equal(s, "");
    assert_int_equal(b.len, 0);
    assert_int_equal(mxg_buf_append(&b, "hello", 5), 0);
    s = mxg_buf_cstr(&b);
    assert_string_equal(s, "hello");
    assert_int_equal(b.len, 5); /* the NUL is not counted */
    assert_int_equal(mxg_buf_append(&b, " world", 6), 0); /* overwrites it */
    assert_string_equal(mxg_buf_cstr(&b), "hello world");
    mxg_buf_consume(&b, 6); /* the unread bytes only */
    assert_string_equal(mxg_buf_cstr(&b), "world");
    assert_int_equal(mxg_buf_avail(&b), 5);
    /* a buffer filled to its capacity still gets its NUL */
    mxg_buf_reset(&b);
    while (b.len < b.cap)
        assert_int_equal(mxg_buf_append(&b, "y", 1), 0);
    size_t n = b.len;
    s = mxg_buf_cstr(&b);
    assert_non_null(s);
    assert_int_equal(strlen(s), n);
    mxg_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_append_printf),
        cmocka_unit_test(test_cstr),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
