/* tests/unit/test_policy_sts_parse.c — policy/sts_parse: the MTA-STS TXT
 * record (RFC 8461 §3.1), the policy file (§3.2), MX pattern matching (§4.1)
 * and the canonical policy text. Table-driven: one row per field error and
 * per edge case; every rejection row also checks the reason text. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "policy/sts_parse.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

static void check_why(const char *row, const char *why, const char *want)
{
    if (want && !strstr(why, want)) {
        print_error("row '%s': why '%s' lacks '%s'\n", row, why, want);
        fail();
    }
}

/* ------------------------------------------------------------ TXT record */

struct txt_case {
    const char *name;
    const char *txt;
    size_t len; /* 0: strlen(txt) */
    int want;
    const char *id;  /* when want == 1 */
    const char *why; /* substring of the reason when want == -1 */
};

static const struct txt_case txt_cases[] = {
    /* well-formed */
    {"canonical", "v=STSv1; id=20160831085700Z;", 0, 1, "20160831085700Z", NULL},
    {"no trailing ;", "v=STSv1; id=abc", 0, 1, "abc", NULL},
    {"no spaces", "v=STSv1;id=abc", 0, 1, "abc", NULL},
    {"extra spaces", "v=STSv1  ;   id=abc  ;  ", 0, 1, "abc", NULL},
    {"tabs as WSP", "v=STSv1\t;\tid=abc\t;", 0, 1, "abc", NULL},
    {"trailing WSP without ;", "v=STSv1; id=abc  ", 0, 1, "abc", NULL},
    {"id 1 char", "v=STSv1; id=a", 0, 1, "a", NULL},
    {"id 32 chars", "v=STSv1; id=0123456789abcdefABCDEF0123456789", 0, 1,
     "0123456789abcdefABCDEF0123456789", NULL},
    {"extension before id", "v=STSv1; foo=bar; id=x1", 0, 1, "x1", NULL},
    {"extension after id", "v=STSv1; id=x1; ext_1.a-b=!\"#$%&'()*+,-./:<>?@[\\]^_`{|}~", 0, 1,
     "x1", NULL},
    {"extension name 32 chars", "v=STSv1; id=x1; a234567890123456789012345678901b=1", 0, 1,
     "x1", NULL},
    {"repeated id: first wins", "v=STSv1; id=first; id=second", 0, 1, "first", NULL},
    {"v=STSv1 again later is an extension", "v=STSv1; id=a; v=STSv2", 0, 1, "a", NULL},

    /* not an STS record at all */
    {"empty", "", 0, 0, NULL, NULL},
    {"no v=", "id=abc", 0, 0, NULL, NULL},
    {"SPF record", "v=spf1 -all", 0, 0, NULL, NULL},
    {"lowercase v=stsv1", "v=stsv1; id=abc", 0, 0, NULL, NULL},
    {"uppercase V=", "V=STSv1; id=abc", 0, 0, NULL, NULL},
    {"leading space", " v=STSv1; id=abc", 0, 0, NULL, NULL},
    {"v=STSv1 not first", "id=abc; v=STSv1", 0, 0, NULL, NULL},
    {"other version STSv10", "v=STSv10; id=abc", 0, 0, NULL, NULL},
    {"other version STSv1x", "v=STSv1x;id=abc", 0, 0, NULL, NULL},
    {"truncated v=STSv", "v=STSv", 0, 0, NULL, NULL},
    {"NUL inside v=", "v=ST\0Sv1; id=a", sizeof "v=ST\0Sv1; id=a" - 1, 0, NULL, NULL},

    /* STS record, malformed */
    {"v=STSv1 alone", "v=STSv1", 0, -1, NULL, "no id"},
    {"v=STSv1; only", "v=STSv1;", 0, -1, NULL, "no id"},
    {"missing id, extension only", "v=STSv1; foo=bar", 0, -1, NULL, "no id"},
    {"ID= is case-sensitive", "v=STSv1; ID=abc", 0, -1, NULL, "no id"},
    {"id empty", "v=STSv1; id=", 0, -1, NULL, "id is empty"},
    {"id 33 chars", "v=STSv1; id=0123456789abcdefABCDEF0123456789X", 0, -1, NULL,
     "33 characters"},
    {"id with '-'", "v=STSv1; id=2024-01-01", 0, -1, NULL, "only letters and digits"},
    {"id with '_'", "v=STSv1; id=a_b", 0, -1, NULL, "only letters and digits"},
    {"id with '.'", "v=STSv1; id=1.2", 0, -1, NULL, "only letters and digits"},
    {"id with '='", "v=STSv1; id=a=b", 0, -1, NULL, "only letters and digits"},
    {"id with non-ASCII", "v=STSv1; id=caf\xc3\xa9", 0, -1, NULL, "only letters and digits"},
    {"id with space inside", "v=STSv1; id=ab cd", 0, -1, NULL, "expected ';'"},
    {"id = with spaces", "v=STSv1; id = abc", 0, -1, NULL, "not name=value"},
    {"no ; after version", "v=STSv1 id=abc", 0, -1, NULL, "expected ';'"},
    {"empty field ;;", "v=STSv1;; id=abc", 0, -1, NULL, "field 2 is empty"},
    {"double ; at end", "v=STSv1; id=abc;;", 0, -1, NULL, "is empty"},
    {"field without =", "v=STSv1; id=abc; foo", 0, -1, NULL, "not name=value"},
    {"extension empty value", "v=STSv1; id=abc; foo=", 0, -1, NULL, "empty value"},
    {"extension value with =", "v=STSv1; id=abc; foo=a=b", 0, -1, NULL, "invalid character"},
    {"extension value non-ASCII", "v=STSv1; id=abc; foo=\xc3\xa9", 0, -1, NULL,
     "invalid character"},
    {"extension name starts with _", "v=STSv1; id=abc; _foo=1", 0, -1, NULL,
     "invalid field name"},
    {"extension name 33 chars", "v=STSv1; id=x1; a234567890123456789012345678901bc=1", 0, -1,
     NULL, "invalid field name"},
    {"extension empty name", "v=STSv1; id=abc; =1", 0, -1, NULL, "invalid field name"},
    {"control character", "v=STSv1; id=abc; foo=a\x01", 0, -1, NULL, "invalid character"},
    {"NUL after version", "v=STSv1; id=a\0b", sizeof "v=STSv1; id=a\0b" - 1, -1, NULL,
     "only letters and digits"},
    {"invalid id even when repeated", "v=STSv1; id=good; id=bad-one", 0, -1, NULL,
     "only letters and digits"},
};

static void test_txt_parse(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(txt_cases); i++) {
        const struct txt_case *c = &txt_cases[i];
        char id[MXG_STS_ID_MAX + 1];
        char why[256];
        memset(id, 'Z', sizeof id);
        strcpy(why, "unset");
        size_t len = c->len ? c->len : strlen(c->txt);
        int rc = mxg_sts_txt_parse(c->txt, len, id, why, sizeof why);
        if (rc != c->want) {
            print_error("row '%s': rc %d want %d (why '%s')\n", c->name, rc, c->want, why);
            fail();
        }
        if (rc == 1) {
            if (strcmp(id, c->id) != 0) {
                print_error("row '%s': id '%s' want '%s'\n", c->name, id, c->id);
                fail();
            }
        } else {
            assert_string_equal(id, "");
        }
        if (rc == -1)
            check_why(c->name, why, c->why);
        if (rc == -1)
            assert_true(why[0] != '\0');
    }
}

/* No why buffer, no id buffer, zero capacity: must not crash. */
static void test_txt_parse_null_buffers(void **state)
{
    (void)state;
    char id[MXG_STS_ID_MAX + 1];
    char why[4];
    assert_int_equal(mxg_sts_txt_parse("v=STSv1; id=a", 13, NULL, NULL, 0), 1);
    assert_int_equal(mxg_sts_txt_parse("v=STSv1", 7, id, NULL, 0), -1);
    assert_int_equal(mxg_sts_txt_parse("v=STSv1", 7, id, why, sizeof why), -1);
    assert_int_equal(strlen(why), 3); /* truncated, terminated */
    assert_int_equal(mxg_sts_txt_parse(NULL, 0, id, why, sizeof why), 0);
    /* only the first len bytes count */
    assert_int_equal(mxg_sts_txt_parse("v=STSv1; id=abcdef", 14, id, NULL, 0), 1);
    assert_string_equal(id, "ab");
}

struct select_case {
    const char *name;
    int n;
    const char *txt[4];
    int want;
    const char *id;
    const char *why;
};

static const struct select_case select_cases[] = {
    {"empty RRset", 0, {NULL}, 0, NULL, NULL},
    {"only non-STS", 2, {"v=spf1 -all", "google-site-verification=x"}, 0, NULL, NULL},
    {"one STS among others", 3, {"v=spf1 -all", "v=STSv1; id=abc", "hello"}, 1, "abc", NULL},
    {"one STS, malformed", 2, {"v=spf1 -all", "v=STSv1; id=a-b"}, -1, NULL,
     "only letters and digits"},
    {"two STS records", 2, {"v=STSv1; id=abc", "v=STSv1; id=def"}, -1, NULL,
     "several MTA-STS TXT records"},
    {"two identical STS records", 2, {"v=STSv1; id=abc", "v=STSv1; id=abc"}, -1, NULL,
     "several MTA-STS TXT records"},
    {"valid + malformed STS record", 2, {"v=STSv1; id=abc", "v=STSv1"}, -1, NULL,
     "several MTA-STS TXT records"},
    {"STSv1 + other version", 2, {"v=STSv10; id=new", "v=STSv1; id=abc"}, 1, "abc", NULL},
    {"lowercase one ignored", 2, {"v=stsv1; id=zzz", "v=STSv1; id=abc"}, 1, "abc", NULL},
    {"NULL entry skipped", 2, {NULL, "v=STSv1; id=abc"}, 1, "abc", NULL},
};

static void test_txt_select(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(select_cases); i++) {
        const struct select_case *c = &select_cases[i];
        size_t lens[4];
        for (int k = 0; k < c->n; k++)
            lens[k] = c->txt[k] ? strlen(c->txt[k]) : 0;
        char id[MXG_STS_ID_MAX + 1] = "junk";
        char why[256] = "unset";
        int rc = mxg_sts_txt_select(c->txt, lens, c->n, id, why, sizeof why);
        if (rc != c->want) {
            print_error("row '%s': rc %d want %d (why '%s')\n", c->name, rc, c->want, why);
            fail();
        }
        if (rc == 1)
            assert_string_equal(id, c->id);
        else
            assert_string_equal(id, "");
        if (rc == -1)
            check_why(c->name, why, c->why);
    }
    char id[MXG_STS_ID_MAX + 1];
    assert_int_equal(mxg_sts_txt_select(NULL, NULL, 3, id, NULL, 0), 0);
}

/* ------------------------------------------------------------ policy file */

#define P_HEAD "version: STSv1\nmode: enforce\n"

struct policy_case {
    const char *name;
    const char *body;
    size_t len; /* 0: strlen(body) */
    int want;
    enum mxg_sts_mode mode;
    uint32_t max_age;
    int n_mx;
    const char *mx[4];
    const char *why;
};

static const struct policy_case policy_cases[] = {
    /* well-formed */
    {"RFC example, LF", "version: STSv1\nmode: enforce\nmx: mail.example.com\n"
                        "mx: *.example.net\nmx: backupmx.example.com\nmax_age: 604800\n",
     0, 0, MXG_STS_MODE_ENFORCE, 604800, 3,
     {"mail.example.com", "*.example.net", "backupmx.example.com"}, NULL},
    {"CRLF", "version: STSv1\r\nmode: testing\r\nmx: mx.example.com\r\nmax_age: 86400\r\n", 0,
     0, MXG_STS_MODE_TESTING, 86400, 1, {"mx.example.com"}, NULL},
    {"mixed LF and CRLF", "version: STSv1\r\nmode: testing\nmx: mx.example.com\r\nmax_age: 1\n",
     0, 0, MXG_STS_MODE_TESTING, 1, 1, {"mx.example.com"}, NULL},
    {"no final newline", P_HEAD "mx: mx.example.com\nmax_age: 86400", 0, 0,
     MXG_STS_MODE_ENFORCE, 86400, 1, {"mx.example.com"}, NULL},
    {"no final newline, CRLF", "version: STSv1\r\nmode: enforce\r\nmx: a.example\r\nmax_age: 5",
     0, 0, MXG_STS_MODE_ENFORCE, 5, 1, {"a.example"}, NULL},
    {"fields in any order", "max_age: 10\nmx: a.example\nmode: enforce\nversion: STSv1\n", 0, 0,
     MXG_STS_MODE_ENFORCE, 10, 1, {"a.example"}, NULL},
    {"no space after colon", "version:STSv1\nmode:enforce\nmx:a.example\nmax_age:7\n", 0, 0,
     MXG_STS_MODE_ENFORCE, 7, 1, {"a.example"}, NULL},
    {"tabs and trailing WSP", "version:\tSTSv1 \t\nmode:  enforce  \nmx: a.example\t\r\n"
                              "max_age: 7 \r\n",
     0, 0, MXG_STS_MODE_ENFORCE, 7, 1, {"a.example"}, NULL},
    {"trailing empty lines", P_HEAD "mx: a.example\nmax_age: 7\n\n\n", 0, 0,
     MXG_STS_MODE_ENFORCE, 7, 1, {"a.example"}, NULL},
    {"trailing CRLF empty lines + WSP", P_HEAD "mx: a.example\nmax_age: 7\r\n\r\n  \r\n", 0, 0,
     MXG_STS_MODE_ENFORCE, 7, 1, {"a.example"}, NULL},
    {"UTF-8 BOM skipped", "\xEF\xBB\xBF" P_HEAD "mx: a.example\nmax_age: 7\n", 0, 0,
     MXG_STS_MODE_ENFORCE, 7, 1, {"a.example"}, NULL},
    {"repeated mode: first wins", "version: STSv1\nmode: testing\nmode: enforce\nmx: a.example\n"
                                  "max_age: 7\n",
     0, 0, MXG_STS_MODE_TESTING, 7, 1, {"a.example"}, NULL},
    {"repeated mode: later invalid ignored", P_HEAD "mode: bogus\nmx: a.example\nmax_age: 7\n",
     0, 0, MXG_STS_MODE_ENFORCE, 7, 1, {"a.example"}, NULL},
    {"repeated max_age: first wins", P_HEAD "mx: a.example\nmax_age: 7\nmax_age: 99999999999\n",
     0, 0, MXG_STS_MODE_ENFORCE, 7, 1, {"a.example"}, NULL},
    {"repeated version: first wins", P_HEAD "version: STSv2\nmx: a.example\nmax_age: 7\n", 0, 0,
     MXG_STS_MODE_ENFORCE, 7, 1, {"a.example"}, NULL},
    {"repeated mx accumulate", P_HEAD "mx: a.example\nmx: b.example\nmx: *.c.example\n"
                                      "max_age: 7\n",
     0, 0, MXG_STS_MODE_ENFORCE, 7, 3, {"a.example", "b.example", "*.c.example"}, NULL},
    {"duplicate mx stored once", P_HEAD "mx: a.example\nmx: A.Example.\nmx: a.example\n"
                                        "max_age: 7\n",
     0, 0, MXG_STS_MODE_ENFORCE, 7, 1, {"a.example"}, NULL},
    {"unknown keys ignored", P_HEAD "foo: bar baz\nx-ext_1.2: caf\xc3\xa9 = ; :\nmx: a.example\n"
                                    "max_age: 7\n",
     0, 0, MXG_STS_MODE_ENFORCE, 7, 1, {"a.example"}, NULL},
    {"unknown key with empty value", P_HEAD "foo:\nmx: a.example\nmax_age: 7\n", 0, 0,
     MXG_STS_MODE_ENFORCE, 7, 1, {"a.example"}, NULL},
    {"value containing ':'", P_HEAD "foo: a:b:c\nmx: a.example\nmax_age: 7\n", 0, 0,
     MXG_STS_MODE_ENFORCE, 7, 1, {"a.example"}, NULL},
    {"max_age 0", P_HEAD "mx: a.example\nmax_age: 0\n", 0, 0, MXG_STS_MODE_ENFORCE, 0, 1,
     {"a.example"}, NULL},
    {"max_age 31557600", P_HEAD "mx: a.example\nmax_age: 31557600\n", 0, 0,
     MXG_STS_MODE_ENFORCE, 31557600, 1, {"a.example"}, NULL},
    {"max_age leading zeros, 10 digits", P_HEAD "mx: a.example\nmax_age: 0000086400\n", 0, 0,
     MXG_STS_MODE_ENFORCE, 86400, 1, {"a.example"}, NULL},
    {"mode none without mx", "version: STSv1\nmode: none\nmax_age: 86400\n", 0, 0,
     MXG_STS_MODE_NONE, 86400, 0, {NULL}, NULL},
    {"mode none with mx", "version: STSv1\nmode: none\nmx: a.example\nmax_age: 86400\n", 0, 0,
     MXG_STS_MODE_NONE, 86400, 1, {"a.example"}, NULL},
    {"uppercase pattern stored lower", P_HEAD "mx: MX1.EXAMPLE.COM\nmx: *.Mail.Example.NET\n"
                                              "max_age: 7\n",
     0, 0, MXG_STS_MODE_ENFORCE, 7, 2, {"mx1.example.com", "*.mail.example.net"}, NULL},
    {"trailing-dot pattern", P_HEAD "mx: mx.example.com.\nmx: *.example.net.\nmax_age: 7\n", 0,
     0, MXG_STS_MODE_ENFORCE, 7, 2, {"mx.example.com", "*.example.net"}, NULL},
    {"A-label pattern", P_HEAD "mx: mx.xn--bcher-kva.example\nmax_age: 7\n", 0, 0,
     MXG_STS_MODE_ENFORCE, 7, 1, {"mx.xn--bcher-kva.example"}, NULL},
    {"single-label and digits-first labels", P_HEAD "mx: localhost\nmx: 1mx.123.example\n"
                                                    "max_age: 7\n",
     0, 0, MXG_STS_MODE_ENFORCE, 7, 2, {"localhost", "1mx.123.example"}, NULL},
    {"wildcard over a TLD", P_HEAD "mx: *.com\nmax_age: 7\n", 0, 0, MXG_STS_MODE_ENFORCE, 7, 1,
     {"*.com"}, NULL},
    {"label of 63", P_HEAD "mx: "
                           "a23456789012345678901234567890123456789012345678901234567890123"
                           ".example\nmax_age: 7\n",
     0, 0, MXG_STS_MODE_ENFORCE, 7, 1,
     {"a23456789012345678901234567890123456789012345678901234567890123.example"}, NULL},

    /* field errors */
    {"empty body", "", 0, -1, 0, 0, 0, {NULL}, "empty policy"},
    {"only newlines", "\n\r\n\n", 0, -1, 0, 0, 0, {NULL}, "empty policy"},
    {"missing version", "mode: enforce\nmx: a.example\nmax_age: 7\n", 0, -1, 0, 0, 0, {NULL},
     "missing required key 'version'"},
    {"missing mode", "version: STSv1\nmx: a.example\nmax_age: 7\n", 0, -1, 0, 0, 0, {NULL},
     "missing required key 'mode'"},
    {"missing max_age", P_HEAD "mx: a.example\n", 0, -1, 0, 0, 0, {NULL},
     "missing required key 'max_age'"},
    {"missing mx with enforce", P_HEAD "max_age: 7\n", 0, -1, 0, 0, 0, {NULL},
     "no mx patterns with mode enforce"},
    {"missing mx with testing", "version: STSv1\nmode: testing\nmax_age: 7\n", 0, -1, 0, 0, 0,
     {NULL}, "no mx patterns with mode testing"},
    {"keys are case-sensitive: Mode", "version: STSv1\nMode: enforce\nmx: a.example\n"
                                      "max_age: 7\n",
     0, -1, 0, 0, 0, {NULL}, "line 2 has 'Mode'"},
    {"keys are case-sensitive: MX", P_HEAD "MX: a.example\nmax_age: 7\n", 0, -1, 0, 0, 0,
     {NULL}, "no mx patterns with mode enforce (line 3 has 'MX'"},
    {"version STSv2", "version: STSv2\nmode: enforce\nmx: a.example\nmax_age: 7\n", 0, -1, 0, 0,
     0, {NULL}, "line 1: version: unsupported value 'STSv2'"},
    {"version lowercase", "version: stsv1\nmode: enforce\nmx: a.example\nmax_age: 7\n", 0, -1, 0,
     0, 0, {NULL}, "unsupported value 'stsv1'"},
    {"version empty", "version:\nmode: enforce\nmx: a.example\nmax_age: 7\n", 0, -1, 0, 0, 0,
     {NULL}, "unsupported value ''"},
    {"mode enforcing", "version: STSv1\nmode: enforcing\nmx: a.example\nmax_age: 7\n", 0, -1, 0,
     0, 0, {NULL}, "mode: unknown value 'enforcing'"},
    {"mode Enforce", "version: STSv1\nmode: Enforce\nmx: a.example\nmax_age: 7\n", 0, -1, 0, 0,
     0, {NULL}, "mode: unknown value 'Enforce'"},
    {"mode report (old draft)", "version: STSv1\nmode: report\nmx: a.example\nmax_age: 7\n", 0,
     -1, 0, 0, 0, {NULL}, "line 2: mode: unknown value 'report'"},
    {"repeated mode: first invalid", "version: STSv1\nmode: bogus\nmode: enforce\n"
                                     "mx: a.example\nmax_age: 7\n",
     0, -1, 0, 0, 0, {NULL}, "unknown value 'bogus'"},
    {"max_age 31557601", P_HEAD "mx: a.example\nmax_age: 31557601\n", 0, -1, 0, 0, 0, {NULL},
     "line 4: max_age 31557601 exceeds 31557600"},
    {"max_age 9999999999", P_HEAD "mx: a.example\nmax_age: 9999999999\n", 0, -1, 0, 0, 0,
     {NULL}, "max_age 9999999999 exceeds 31557600"},
    {"max_age 99999999999 (11 digits)", P_HEAD "mx: a.example\nmax_age: 99999999999\n", 0, -1,
     0, 0, 0, {NULL}, "line 4: max_age '99999999999' has more than 10 digits"},
    {"max_age 11 digits with leading zeros", P_HEAD "mx: a.example\nmax_age: 00000086400\n", 0,
     -1, 0, 0, 0, {NULL}, "more than 10 digits"},
    {"max_age negative", P_HEAD "mx: a.example\nmax_age: -1\n", 0, -1, 0, 0, 0, {NULL},
     "max_age '-1' is not a number"},
    {"max_age plus sign", P_HEAD "mx: a.example\nmax_age: +86400\n", 0, -1, 0, 0, 0, {NULL},
     "not a number"},
    {"max_age with unit", P_HEAD "mx: a.example\nmax_age: 86400s\n", 0, -1, 0, 0, 0, {NULL},
     "not a number"},
    {"max_age with inner space", P_HEAD "mx: a.example\nmax_age: 86 400\n", 0, -1, 0, 0, 0,
     {NULL}, "not a number"},
    {"max_age empty", P_HEAD "mx: a.example\nmax_age:\n", 0, -1, 0, 0, 0, {NULL},
     "max_age is empty"},

    /* line syntax */
    {"line without colon", "version: STSv1\nmode enforce\nmx: a.example\nmax_age: 7\n", 0, -1,
     0, 0, 0, {NULL}, "line 2: not \"key: value\""},
    {"comment line", "# policy\n" P_HEAD "mx: a.example\nmax_age: 7\n", 0, -1, 0, 0, 0, {NULL},
     "line 1: not \"key: value\""},
    {"empty key", P_HEAD ": value\nmx: a.example\nmax_age: 7\n", 0, -1, 0, 0, 0, {NULL},
     "line 3: empty key"},
    {"space before key", P_HEAD " mx: a.example\nmax_age: 7\n", 0, -1, 0, 0, 0, {NULL},
     "line 3: invalid key ' mx'"},
    {"space before colon", P_HEAD "mx : a.example\nmax_age: 7\n", 0, -1, 0, 0, 0, {NULL},
     "line 3: invalid key 'mx '"},
    {"key with invalid char", P_HEAD "my key: x\nmx: a.example\nmax_age: 7\n", 0, -1, 0, 0, 0,
     {NULL}, "invalid key"},
    {"empty line between fields", "version: STSv1\n\nmode: enforce\nmx: a.example\nmax_age: 7\n",
     0, -1, 0, 0, 0, {NULL}, "line 2: empty line between fields"},
    {"WSP-only line between fields", P_HEAD " \t\r\nmx: a.example\nmax_age: 7\n", 0, -1, 0, 0,
     0, {NULL}, "line 3: empty line"},
    {"leading empty line", "\n" P_HEAD "mx: a.example\nmax_age: 7\n", 0, -1, 0, 0, 0, {NULL},
     "line 1: empty line"},
    {"bare CR inside a line", P_HEAD "mx: a.example\rmx: b.example\nmax_age: 7\n", 0, -1, 0, 0,
     0, {NULL}, "line 3: control character 0x0d"},
    {"CR at end without LF", P_HEAD "mx: a.example\nmax_age: 7\r", 0, -1, 0, 0, 0, {NULL},
     "line 4: control character 0x0d"},
    {"CR CR LF", P_HEAD "mx: a.example\r\r\nmax_age: 7\n", 0, -1, 0, 0, 0, {NULL},
     "control character"},
    {"NUL byte", P_HEAD "mx: a.ex\0ample\nmax_age: 7\n",
     sizeof P_HEAD "mx: a.ex\0ample\nmax_age: 7\n" - 1, -1, 0, 0, 0, {NULL}, "NUL byte (offset 37)"},
    {"NUL byte at the end", P_HEAD "mx: a.example\nmax_age: 7\n\0",
     sizeof P_HEAD "mx: a.example\nmax_age: 7\n\0" - 1, -1, 0, 0, 0, {NULL}, "NUL byte (offset 54)"},

    /* mx patterns */
    {"mx IPv4", P_HEAD "mx: 192.0.2.1\nmax_age: 7\n", 0, -1, 0, 0, 0, {NULL},
     "line 3: mx '192.0.2.1': IP address literals"},
    {"mx IPv4 trailing dot", P_HEAD "mx: 192.0.2.1.\nmax_age: 7\n", 0, -1, 0, 0, 0, {NULL},
     "IP address literals"},
    {"mx IPv4 short form", P_HEAD "mx: 127.1\nmax_age: 7\n", 0, -1, 0, 0, 0, {NULL},
     "IP address literals"},
    {"mx IPv4 as one number", P_HEAD "mx: 2130706433\nmax_age: 7\n", 0, -1, 0, 0, 0, {NULL},
     "IP address literals"},
    {"mx IPv4 hex", P_HEAD "mx: 0x7f.0.0.0x1\nmax_age: 7\n", 0, -1, 0, 0, 0, {NULL},
     "IP address literals"},
    {"mx wildcard over IPv4", P_HEAD "mx: *.0.2.1\nmax_age: 7\n", 0, -1, 0, 0, 0, {NULL},
     "IP address literals"},
    {"mx IPv6", P_HEAD "mx: 2001:db8::25\nmax_age: 7\n", 0, -1, 0, 0, 0, {NULL},
     "IPv6 address literals"},
    {"mx IPv6 loopback", P_HEAD "mx: ::1\nmax_age: 7\n", 0, -1, 0, 0, 0, {NULL},
     "IPv6 address literals"},
    {"mx IPv4-mapped IPv6", P_HEAD "mx: ::ffff:192.0.2.1\nmax_age: 7\n", 0, -1, 0, 0, 0, {NULL},
     "IPv6 address literals"},
    {"mx bracketed IPv4", P_HEAD "mx: [192.0.2.1]\nmax_age: 7\n", 0, -1, 0, 0, 0, {NULL},
     "IP address literals"},
    {"mx bracketed IPv6", P_HEAD "mx: [IPv6:2001:db8::25]\nmax_age: 7\n", 0, -1, 0, 0, 0,
     {NULL}, "IP address literals"},
    {"mx host:port", P_HEAD "mx: mx.example.com:25\nmax_age: 7\n", 0, -1, 0, 0, 0, {NULL},
     "invalid character ':'"},
    {"mx wildcard in the middle", P_HEAD "mx: mx.*.example.com\nmax_age: 7\n", 0, -1, 0, 0, 0,
     {NULL}, "'*' is allowed only as the whole leftmost label"},
    {"mx wildcard at the end", P_HEAD "mx: example.*\nmax_age: 7\n", 0, -1, 0, 0, 0, {NULL},
     "'*' is allowed only"},
    {"mx partial-label wildcard", P_HEAD "mx: mx*.example.com\nmax_age: 7\n", 0, -1, 0, 0, 0,
     {NULL}, "'*' is allowed only"},
    {"mx wildcard prefix of label", P_HEAD "mx: *mx.example.com\nmax_age: 7\n", 0, -1, 0, 0, 0,
     {NULL}, "'*' must be the whole leftmost label"},
    {"mx double wildcard", P_HEAD "mx: *.*.example.com\nmax_age: 7\n", 0, -1, 0, 0, 0, {NULL},
     "'*' is allowed only"},
    {"mx '*' alone", P_HEAD "mx: *\nmax_age: 7\n", 0, -1, 0, 0, 0, {NULL}, "a bare '*'"},
    {"mx '*.'", P_HEAD "mx: *.\nmax_age: 7\n", 0, -1, 0, 0, 0, {NULL}, "a bare '*'"},
    {"mx '*..'", P_HEAD "mx: *..\nmax_age: 7\n", 0, -1, 0, 0, 0, {NULL}, "no name after"},
    {"mx old-draft '.example.com'", P_HEAD "mx: .example.com\nmax_age: 7\n", 0, -1, 0, 0, 0,
     {NULL}, "empty label"},
    {"mx empty label", P_HEAD "mx: mx..example.com\nmax_age: 7\n", 0, -1, 0, 0, 0, {NULL},
     "empty label"},
    {"mx two trailing dots", P_HEAD "mx: mx.example.com..\nmax_age: 7\n", 0, -1, 0, 0, 0,
     {NULL}, "empty label"},
    {"mx '.' alone", P_HEAD "mx: .\nmax_age: 7\n", 0, -1, 0, 0, 0, {NULL}, "empty name"},
    {"mx empty", P_HEAD "mx:\nmax_age: 7\n", 0, -1, 0, 0, 0, {NULL}, "line 3: mx '': empty name"},
    {"mx U-label", P_HEAD "mx: mx.b\xc3\xbc" "cher.example\nmax_age: 7\n", 0, -1, 0, 0, 0,
     {NULL}, "non-ASCII"},
    {"mx underscore", P_HEAD "mx: mx_1.example.com\nmax_age: 7\n", 0, -1, 0, 0, 0, {NULL},
     "invalid character '_'"},
    {"mx space inside", P_HEAD "mx: mx.example.com other.example\nmax_age: 7\n", 0, -1, 0, 0, 0,
     {NULL}, "invalid character ' '"},
    {"mx leading hyphen", P_HEAD "mx: -mx.example.com\nmax_age: 7\n", 0, -1, 0, 0, 0, {NULL},
     "begins or ends with '-'"},
    {"mx trailing hyphen", P_HEAD "mx: mx-.example.com\nmax_age: 7\n", 0, -1, 0, 0, 0, {NULL},
     "begins or ends with '-'"},
    {"mx label of 64", P_HEAD "mx: "
                              "a234567890123456789012345678901234567890123456789012345678901234"
                              ".example\nmax_age: 7\n",
     0, -1, 0, 0, 0, {NULL}, "a label of 64 characters"},
    {"mx invalid with mode none", "version: STSv1\nmode: none\nmx: 192.0.2.1\nmax_age: 7\n", 0,
     -1, 0, 0, 0, {NULL}, "IP address literals"},
    {"mx invalid after valid ones", P_HEAD "mx: a.example\nmx: b..example\nmax_age: 7\n", 0, -1,
     0, 0, 0, {NULL}, "line 4: mx 'b..example': empty label"},
};

static void test_policy_parse(void **state)
{
    (void)state;
    struct mxg_sts_policy *p = malloc(sizeof *p);
    assert_non_null(p);
    for (size_t i = 0; i < ARRAY_LEN(policy_cases); i++) {
        const struct policy_case *c = &policy_cases[i];
        char why[256] = "unset";
        memset(p, 0xA5, sizeof *p);
        size_t len = c->len ? c->len : strlen(c->body);
        int rc = mxg_sts_policy_parse(c->body, len, p, why, sizeof why);
        if (rc != c->want) {
            print_error("row '%s': rc %d want %d (why '%s')\n", c->name, rc, c->want, why);
            fail();
        }
        if (rc < 0) {
            check_why(c->name, why, c->why);
            assert_int_equal(p->n_mx, 0); /* no half-filled result */
            continue;
        }
        if (p->mode != c->mode || p->max_age != c->max_age || p->n_mx != c->n_mx) {
            print_error("row '%s': mode %d max_age %u n_mx %d\n", c->name, (int)p->mode,
                        (unsigned)p->max_age, p->n_mx);
            fail();
        }
        for (int k = 0; k < c->n_mx && k < 4; k++) {
            if (strcmp(p->mx[k], c->mx[k]) != 0) {
                print_error("row '%s': mx[%d] '%s' want '%s'\n", c->name, k, p->mx[k],
                            c->mx[k]);
                fail();
            }
        }
    }
    free(p);
}

/* A body with n distinct mx lines mxN.example.com. */
static size_t mx_body(char *buf, size_t cap, int n, const char *eol)
{
    size_t o = (size_t)snprintf(buf, cap, "version: STSv1%smode: enforce%s", eol, eol);
    for (int i = 0; i < n; i++)
        o += (size_t)snprintf(buf + o, cap - o, "mx: mx%d.example.com%s", i, eol);
    o += (size_t)snprintf(buf + o, cap - o, "max_age: 86400%s", eol);
    return o;
}

static void test_policy_mx_limit(void **state)
{
    (void)state;
    static char body[8192];
    static struct mxg_sts_policy p;
    char why[256];

    size_t n = mx_body(body, sizeof body, MXG_STS_MAX_MX, "\r\n");
    assert_int_equal(mxg_sts_policy_parse(body, n, &p, why, sizeof why), 0);
    assert_int_equal(p.n_mx, MXG_STS_MAX_MX);
    assert_string_equal(p.mx[63], "mx63.example.com");

    /* more than mxguard keeps: the policy stays valid (an invalid policy would mean "no
     * policy", a downgrade); only the first 64 patterns allow hosts (stricter) */
    n = mx_body(body, sizeof body, MXG_STS_MAX_MX + 3, "\n");
    assert_int_equal(mxg_sts_policy_parse(body, n, &p, why, sizeof why), 0);
    assert_int_equal(p.mode, MXG_STS_MODE_ENFORCE);
    assert_int_equal(p.n_mx, MXG_STS_MAX_MX);
    assert_int_equal(p.mx_dropped, 3);
    assert_true(mxg_sts_mx_match(&p, "mx63.example.com"));
    assert_false(mxg_sts_mx_match(&p, "mx64.example.com"));
    assert_false(mxg_sts_mx_match(&p, "other.example.com"));

    /* 64 distinct plus repeats of them: duplicates do not count */
    n = mx_body(body, sizeof body, MXG_STS_MAX_MX, "\n");
    memcpy(body + n, "mx: MX0.example.com.\nmx: mx5.example.com\n", 41);
    assert_int_equal(mxg_sts_policy_parse(body, n + 41, &p, why, sizeof why), 0);
    assert_int_equal(p.n_mx, MXG_STS_MAX_MX);
    assert_int_equal(p.mx_dropped, 0);
}

static void test_policy_long_names(void **state)
{
    (void)state;
    static struct mxg_sts_policy p;
    char why[256];
    char name[300], body[512];
    /* 253 characters: 3 labels of 63, 1 of 61, plus 3 dots */
    memset(name, 'a', sizeof name);
    name[63] = name[127] = name[191] = '.';
    name[253] = '\0';
    int n = snprintf(body, sizeof body, P_HEAD "mx: %s.\nmax_age: 7\n", name);
    assert_int_equal(mxg_sts_policy_parse(body, (size_t)n, &p, why, sizeof why), 0);
    assert_int_equal(strlen(p.mx[0]), 253);
    assert_true(mxg_sts_mx_match(&p, name));

    /* "*." + 251 = 253: accepted */
    char wild[300];
    snprintf(wild, sizeof wild, "*.%s", name + 2);
    n = snprintf(body, sizeof body, P_HEAD "mx: %s\nmax_age: 7\n", wild);
    assert_int_equal(mxg_sts_policy_parse(body, (size_t)n, &p, why, sizeof why), 0);
    assert_string_equal(p.mx[0], wild);

    /* 254 characters: rejected */
    name[253] = 'a';
    name[254] = '\0';
    n = snprintf(body, sizeof body, P_HEAD "mx: %s\nmax_age: 7\n", name);
    assert_int_equal(mxg_sts_policy_parse(body, (size_t)n, &p, why, sizeof why), -1);
    assert_non_null(strstr(why, "254 characters long (at most 253)"));
}

static void test_policy_null_args(void **state)
{
    (void)state;
    static struct mxg_sts_policy p;
    char why[8];
    assert_int_equal(mxg_sts_policy_parse(NULL, 0, &p, why, sizeof why), -1);
    assert_int_equal(mxg_sts_policy_parse("version: STSv1\n", 15, NULL, why, sizeof why), -1);
    assert_int_equal(mxg_sts_policy_parse("junk", 4, &p, NULL, 0), -1);
    assert_int_equal(mxg_sts_policy_parse("junk", 4, &p, why, sizeof why), -1);
    assert_int_equal(strlen(why), sizeof why - 1);
    /* only len bytes are read: the tail after len is not part of the body */
    const char *b = P_HEAD "mx: a.example\nmax_age: 7\nGARBAGE";
    assert_int_equal(mxg_sts_policy_parse(b, strlen(b) - 7, &p, why, sizeof why), 0);
}

/* Error messages never echo raw control or non-ASCII bytes. */
static void test_policy_why_printable(void **state)
{
    (void)state;
    static struct mxg_sts_policy p;
    char why[256];
    const char *b = "version: STSv1\nmode: \xff\x1b[31menforce\nmx: a.example\nmax_age: 7\n";
    assert_int_equal(mxg_sts_policy_parse(b, strlen(b), &p, why, sizeof why), -1);
    for (const char *s = why; *s; s++)
        assert_true(*s >= 0x20 && *s < 0x7f);
    /* the control-character check comes first; an 8-bit mode value: */
    b = "version: STSv1\nmode: \xff" "enforce\nmx: a.example\nmax_age: 7\n";
    assert_int_equal(mxg_sts_policy_parse(b, strlen(b), &p, why, sizeof why), -1);
    assert_non_null(strstr(why, "unknown value '\\xffenforce'"));
    /* a very long value is cut */
    char body[4096];
    char longv[2000];
    memset(longv, 'x', sizeof longv - 1);
    longv[sizeof longv - 1] = '\0';
    int n = snprintf(body, sizeof body, "version: STSv1\nmode: %s\nmx: a.b\nmax_age: 7\n", longv);
    assert_int_equal(mxg_sts_policy_parse(body, (size_t)n, &p, why, sizeof why), -1);
    assert_true(strlen(why) < 200);
    assert_non_null(strstr(why, "...'"));
}

/* ------------------------------------------------------------ matching */

struct match_case {
    const char *pattern, *host;
    int want;
};

static const struct match_case match_cases[] = {
    /* exact */
    {"mx.example.com", "mx.example.com", 1},
    {"mx.example.com", "MX.Example.COM", 1},
    {"MX.EXAMPLE.COM", "mx.example.com", 1},
    {"mx.example.com", "mx.example.com.", 1},
    {"mx.example.com.", "mx.example.com", 1},
    {"mx.example.com.", "mx.example.com.", 1},
    {"mx.example.com", "mx.example.com..", 0},
    {"mx.example.com", "mx.example.org", 0},
    {"mx.example.com", "a.mx.example.com", 0},
    {"mx.example.com", "example.com", 0},
    {"mx.example.com", "mx.example.co", 0},
    {"mx.example.com", "xmx.example.com", 0},
    {"example.com", "mx.example.com", 0},
    /* wildcard: exactly one whole leftmost label */
    {"*.example.com", "mx.example.com", 1},
    {"*.example.com", "MX1.EXAMPLE.COM", 1},
    {"*.Example.Com", "mx.example.com", 1},
    {"*.example.com", "mx.example.com.", 1},
    {"*.example.com.", "mx.example.com", 1},
    {"*.example.com", "x.example.com", 1},
    {"*.example.com", "example.com", 0},          /* bare domain */
    {"*.example.com", "example.com.", 0},
    {"*.example.com", "a.b.example.com", 0},      /* two labels deep */
    {"*.example.com", ".example.com", 0},         /* empty label */
    {"*.example.com", "mx.example.com.evil", 0},
    {"*.example.com", "mxexample.com", 0},
    {"*.example.com", "mx.notexample.com", 0},
    {"*.example.com", "*.example.com", 0},        /* a host is never a pattern */
    {"*.example.com", "mx.example.co", 0},
    {"*.com", "example.com", 1},
    {"*.com", "mx.example.com", 0},
    /* degenerate patterns match nothing */
    {"*", "com", 0},
    {"*", "mx.example.com", 0},
    {"*.", "com", 0},
    {"*x.example.com", "ax.example.com", 0},
    {"", "", 0},
    {"", "mx.example.com", 0},
    {"mx.example.com", "", 0},
    {".", ".", 0},
};

static void test_pattern_match(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(match_cases); i++) {
        const struct match_case *c = &match_cases[i];
        int got = mxg_sts_pattern_match(c->pattern, c->host);
        if (got != c->want) {
            print_error("pattern '%s' host '%s': %d want %d\n", c->pattern, c->host, got,
                        c->want);
            fail();
        }
    }
    assert_int_equal(mxg_sts_pattern_match(NULL, "a"), 0);
    assert_int_equal(mxg_sts_pattern_match("a", NULL), 0);
}

static void test_mx_match(void **state)
{
    (void)state;
    static struct mxg_sts_policy p;
    char why[256];
    const char *b = P_HEAD "mx: mail.example.com\nmx: *.example.net\nmax_age: 7\n";
    assert_int_equal(mxg_sts_policy_parse(b, strlen(b), &p, why, sizeof why), 0);
    assert_true(mxg_sts_mx_match(&p, "mail.example.com"));
    assert_true(mxg_sts_mx_match(&p, "MAIL.example.com."));
    assert_true(mxg_sts_mx_match(&p, "mx1.example.net"));
    assert_false(mxg_sts_mx_match(&p, "example.net"));
    assert_false(mxg_sts_mx_match(&p, "a.mx1.example.net"));
    assert_false(mxg_sts_mx_match(&p, "mx.example.com"));
    assert_false(mxg_sts_mx_match(&p, "192.0.2.1"));
    assert_false(mxg_sts_mx_match(NULL, "mail.example.com"));
    assert_false(mxg_sts_mx_match(&p, NULL));

    b = "version: STSv1\nmode: none\nmax_age: 7\n";
    assert_int_equal(mxg_sts_policy_parse(b, strlen(b), &p, why, sizeof why), 0);
    assert_false(mxg_sts_mx_match(&p, "mail.example.com"));
}

/* ------------------------------------------------------------ format */

static void test_mode_name(void **state)
{
    (void)state;
    assert_string_equal(mxg_sts_mode_name(MXG_STS_MODE_NONE), "none");
    assert_string_equal(mxg_sts_mode_name(MXG_STS_MODE_TESTING), "testing");
    assert_string_equal(mxg_sts_mode_name(MXG_STS_MODE_ENFORCE), "enforce");
}

static void test_policy_format(void **state)
{
    (void)state;
    static struct mxg_sts_policy p, q;
    char why[256], out[1024];
    const char *b = "mx: MAIL.example.com.\r\nmax_age: 0604800\r\nfoo: bar\r\n"
                    "version: STSv1\r\nmode: testing\r\nmx: *.Example.NET\r\n";
    assert_int_equal(mxg_sts_policy_parse(b, strlen(b), &p, why, sizeof why), 0);
    const char *want = "version: STSv1\nmode: testing\nmx: mail.example.com\n"
                       "mx: *.example.net\nmax_age: 604800\n";
    size_t n = mxg_sts_policy_format(&p, out, sizeof out);
    assert_int_equal(n, strlen(want));
    assert_string_equal(out, want);

    /* round trip: the canonical text parses to the same policy */
    assert_int_equal(mxg_sts_policy_parse(out, n, &q, why, sizeof why), 0);
    assert_int_equal(q.mode, p.mode);
    assert_int_equal(q.max_age, p.max_age);
    assert_int_equal(q.n_mx, p.n_mx);
    for (int i = 0; i < p.n_mx; i++)
        assert_string_equal(q.mx[i], p.mx[i]);

    /* exactly fitting, one byte short */
    assert_int_equal(mxg_sts_policy_format(&p, out, strlen(want) + 1), strlen(want));
    assert_string_equal(out, want);
    assert_int_equal(mxg_sts_policy_format(&p, out, strlen(want)), 0);
    assert_string_equal(out, "");
    assert_int_equal(mxg_sts_policy_format(&p, out, 5), 0);
    assert_string_equal(out, "");
    assert_int_equal(mxg_sts_policy_format(&p, NULL, 100), 0);
    assert_int_equal(mxg_sts_policy_format(&p, out, 0), 0);
    assert_int_equal(mxg_sts_policy_format(NULL, out, sizeof out), 0);

    /* mode none, no mx */
    b = "version: STSv1\nmode: none\nmax_age: 31557600\n";
    assert_int_equal(mxg_sts_policy_parse(b, strlen(b), &p, why, sizeof why), 0);
    n = mxg_sts_policy_format(&p, out, sizeof out);
    assert_string_equal(out, b);
    assert_int_equal(n, strlen(b));

    /* enforce */
    b = "version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 1\n";
    assert_int_equal(mxg_sts_policy_parse(b, strlen(b), &p, why, sizeof why), 0);
    mxg_sts_policy_format(&p, out, sizeof out);
    assert_string_equal(out, b);

    /* 64 maximal patterns fit a large buffer; a corrupt struct is refused */
    static char big[64 * 300];
    memset(&p, 0, sizeof p);
    p.mode = MXG_STS_MODE_ENFORCE;
    p.n_mx = MXG_STS_MAX_MX;
    for (int i = 0; i < MXG_STS_MAX_MX; i++) {
        memset(p.mx[i], 'a', 253);
        p.mx[i][253] = '\0';
    }
    n = mxg_sts_policy_format(&p, big, sizeof big);
    assert_int_equal(n, strlen("version: STSv1\nmode: enforce\n") + 64 * (4 + 253 + 1) +
                            strlen("max_age: 0\n"));
    p.n_mx = MXG_STS_MAX_MX + 1;
    assert_int_equal(mxg_sts_policy_format(&p, big, sizeof big), 0);
    p.n_mx = 1;
    p.mode = (enum mxg_sts_mode)7;
    assert_int_equal(mxg_sts_policy_format(&p, big, sizeof big), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_txt_parse),
        cmocka_unit_test(test_txt_parse_null_buffers),
        cmocka_unit_test(test_txt_select),
        cmocka_unit_test(test_policy_parse),
        cmocka_unit_test(test_policy_mx_limit),
        cmocka_unit_test(test_policy_long_names),
        cmocka_unit_test(test_policy_null_args),
        cmocka_unit_test(test_policy_why_printable),
        cmocka_unit_test(test_pattern_match),
        cmocka_unit_test(test_mx_match),
        cmocka_unit_test(test_mode_name),
        cmocka_unit_test(test_policy_format),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
