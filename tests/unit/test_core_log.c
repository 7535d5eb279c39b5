/* tests/unit/test_core_log.c — the log sink: text and JSON lines, JSON
 * escaping of whatever a message carries (quotes, control characters,
 * UTF-8, bytes that are not UTF-8), level filtering. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/log.h"

static void escape_case(const char *in, const char *want)
{
    char buf[256];
    size_t used = 0;
    mxg_log_json_escape(buf, sizeof buf, &used, in);
    assert_string_equal(buf, want);
    assert_int_equal(used, strlen(want));
}

static void test_json_escape(void **state)
{
    (void)state;
    escape_case("plain text", "plain text");
    escape_case("a \"quoted\" \\ path", "a \\\"quoted\\\" \\\\ path");
    escape_case("line\nbreak\r\ttab", "line\\nbreak\\r\\ttab");
    escape_case("\x01\x1f\x7f", "\\u0001\\u001f\\u007f");
    /* valid UTF-8 passes: é, €, U+1F600 */
    escape_case("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
    /* not UTF-8: a lone continuation byte, Latin-1 é, a truncated sequence,
     * an overlong '/', a UTF-16 surrogate, beyond U+10FFFF */
    escape_case("\x80", "\xef\xbf\xbd");
    escape_case("caf\xe9!", "caf\xef\xbf\xbd!");
    escape_case("\xe2\x82", "\xef\xbf\xbd\xef\xbf\xbd");
    escape_case("\xc0\xaf", "\xef\xbf\xbd\xef\xbf\xbd");
    escape_case("\xed\xa0\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
    escape_case("\xf4\x90\x80\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
}

static void test_json_escape_truncates_whole_escapes(void **state)
{
    (void)state;
    char buf[8];
    size_t used = 0;
    mxg_log_json_escape(buf, sizeof buf, &used, "ab\"\"\"\"");
    /* "ab" + \" + \" = 6 octets; a third \" would not fit with the NUL */
    assert_string_equal(buf, "ab\\\"\\\"");
    assert_int_equal(used, 6);
    used = 0;
    mxg_log_json_escape(buf, sizeof buf, &used, "\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac");
    assert_string_equal(buf, "\xe2\x82\xac\xe2\x82\xac"); /* never half a character */
}

/* Run fn with stderr going to a temporary file; returns what was written. */
static char *capture(void (*fn)(void))
{
    char path[] = "/tmp/mxg-test-log.XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    fflush(stderr);
    int saved = dup(2);
    dup2(fd, 2);
    fn();
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    off_t n = lseek(fd, 0, SEEK_END);
    char *buf = calloc(1, (size_t)n + 1);
    assert_int_equal(pread(fd, buf, (size_t)n, 0), n);
    close(fd);
    unlink(path);
    return buf;
}

static void log_some(void)
{
    LOG_D("test", "not shown at info");
    LOG_I("smtp", "client said \"hi\"\n\tand \x01 left \xff");
    LOG_E("main", "%d%%", 100);
}

static void test_text_format(void **state)
{
    (void)state;
    mxg_log_setup(MXG_LOG_INFO, 0);
    mxg_log_set_format(MXG_LOG_TEXT);
    char *out = capture(log_some);
    assert_null(strstr(out, "not shown"));
    /* "2024-05-01T12:00:00.123Z info smtp: ..." */
    assert_non_null(strstr(out, "Z info smtp: client said \"hi\"\n\tand \x01 left \xff\n"));
    assert_non_null(strstr(out, "Z error main: 100%\n"));
    assert_int_equal(out[4], '-');
    assert_int_equal(out[10], 'T');
    free(out);
}

static void test_json_format(void **state)
{
    (void)state;
    mxg_log_setup(MXG_LOG_INFO, 0);
    mxg_log_set_format(MXG_LOG_JSON);
    char *out = capture(log_some);
    mxg_log_set_format(MXG_LOG_TEXT);
    char *nl = strchr(out, '\n');
    assert_non_null(nl);
    *nl = '\0';
    const char *first = out, *second = nl + 1;
    /* exactly two lines, each one object */
    assert_int_equal(strchr(second, '\n')[1], '\0');
    assert_true(strncmp(first, "{\"time\":\"", 9) == 0);
    assert_int_equal(first[9 + 23], 'Z'); /* 2024-05-01T12:00:00.123Z */
    assert_non_null(strstr(first, "\",\"level\":\"info\",\"component\":\"smtp\",\"message\":"
                                  "\"client said \\\"hi\\\"\\n\\tand \\u0001 left \xef\xbf\xbd\"}"));
    assert_non_null(strstr(second, "\"level\":\"error\",\"component\":\"main\",\"message\":\"100%\"}\n"));
    free(out);
}

static void test_levels(void **state)
{
    (void)state;
    enum mxg_log_level l;
    assert_int_equal(mxg_log_level_parse("warning", &l), 0);
    assert_int_equal(l, MXG_LOG_WARN);
    assert_int_equal(mxg_log_level_parse("warn", &l), -1);
    assert_string_equal(mxg_log_level_name(MXG_LOG_NOTICE), "notice");
    assert_string_equal(mxg_log_level_name((enum mxg_log_level)9), "?");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_escape),
        cmocka_unit_test(test_json_escape_truncates_whole_escapes),
        cmocka_unit_test(test_text_format),
        cmocka_unit_test(test_json_format),
        cmocka_unit_test(test_levels),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
