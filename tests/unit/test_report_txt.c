/* tests/unit/test_report_txt.c — report/ "_smtp._tls" TXT (RFC 8460 §3),
 * table-driven: the version tag (first, exact, case-sensitive), field
 * syntax and whitespace, rua lists (one, several, duplicates, two rua
 * fields, the max), %2C %21 %3B decoding, schemes (mailto/https only,
 * case-insensitive), a raw '!', missing or empty rua, extensions; then
 * RRset selection (none, one among others, two). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "report/tlsrpt.h"

struct tcase {
    const char *txt;
    int max;            /* 0 → 8 */
    int rc;
    const char *want[4];
    const char *why;    /* substring of why, NULL: why must be "" (rc > 0) or anything */
};

static const struct tcase cases[] = {
    /* the basics */
    {"v=TLSRPTv1; rua=mailto:tlsrpt@example.com", 0, 1, {"mailto:tlsrpt@example.com"}, ""},
    {"v=TLSRPTv1;rua=https://reports.example.com/v1/tlsrpt", 0, 1,
     {"https://reports.example.com/v1/tlsrpt"}, ""},
    {"v=TLSRPTv1;\trua=mailto:a@example.com;", 0, 1, {"mailto:a@example.com"}, ""},
    {"v=TLSRPTv1 ; rua = mailto:a@example.com ; ", 0, 1, {"mailto:a@example.com"}, ""},
    {"v=TLSRPTv1;; rua=mailto:a@example.com;;", 0, 1, {"mailto:a@example.com"}, ""},
    /* several URIs, whitespace around commas, duplicates, two rua fields */
    {"v=TLSRPTv1; rua=mailto:a@example.com,https://r.example.com/x", 0, 2,
     {"mailto:a@example.com", "https://r.example.com/x"}, ""},
    {"v=TLSRPTv1; rua=mailto:a@example.com , \tmailto:b@example.com", 0, 2,
     {"mailto:a@example.com", "mailto:b@example.com"}, ""},
    {"v=TLSRPTv1; rua=mailto:a@example.com,mailto:a@example.com", 0, 1,
     {"mailto:a@example.com"}, ""},
    {"v=TLSRPTv1; rua=mailto:a@example.com; rua=https://r.example.com/", 0, 2,
     {"mailto:a@example.com", "https://r.example.com/"}, ""},
    {"v=TLSRPTv1; rua=mailto:a@x.example,mailto:b@x.example,mailto:c@x.example", 2, 2,
     {"mailto:a@x.example", "mailto:b@x.example"}, "1 more rua URI(s) ignored"},
    {"v=TLSRPTv1; rua=mailto:a@example.com,", 0, 1, {"mailto:a@example.com"}, "empty URI"},
    /* escapes: exactly %2C %21 %3B decoded (either hex case), others kept */
    {"v=TLSRPTv1; rua=mailto:a%2Cb%21c%3Bd@example.com", 0, 1,
     {"mailto:a,b!c;d@example.com"}, ""},
    {"v=TLSRPTv1; rua=mailto:x%2cy%3b@example.com", 0, 1, {"mailto:x,y;@example.com"}, ""},
    {"v=TLSRPTv1; rua=mailto:x%40y@example.com,https://r.example.com/a%2Cb%20c", 0, 2,
     {"mailto:x%40y@example.com", "https://r.example.com/a,b%20c"}, ""},
    {"v=TLSRPTv1; rua=mailto:x%2@example.com,mailto:y%@example.com", 0, 2,
     {"mailto:x%2@example.com", "mailto:y%@example.com"}, ""},
    /* schemes */
    {"v=TLSRPTv1; rua=MAILTO:a@example.com,HTTPS://R.example.com/", 0, 2,
     {"MAILTO:a@example.com", "HTTPS://R.example.com/"}, ""},
    {"v=TLSRPTv1; rua=http://r.example.com/x", 0, -1, {0}, "scheme is not mailto: or https:"},
    {"v=TLSRPTv1; rua=ftp://x.example,mailto:a@example.com", 0, 1, {"mailto:a@example.com"},
     "\"ftp://x.example\" ignored: scheme"},
    {"v=TLSRPTv1; rua=a@example.com", 0, -1, {0}, "scheme"},
    {"v=TLSRPTv1; rua=mailto:nobody", 0, -1, {0}, "no mail address"},
    {"v=TLSRPTv1; rua=mailto:@example.com", 0, -1, {0}, "no mail address"},
    {"v=TLSRPTv1; rua=https:///path", 0, -1, {0}, "no host"},
    {"v=TLSRPTv1; rua=https:r.example.com", 0, -1, {0}, "no host"},
    {"v=TLSRPTv1; rua=mailto:a@example.com!10m", 0, -1, {0}, "unencoded '!'"},
    {"v=TLSRPTv1; rua=mailto:a@exa\x7fmple.com", 0, -1, {0}, "control"},
    /* missing / empty rua */
    {"v=TLSRPTv1", 0, -1, {0}, "no rua field"},
    {"v=TLSRPTv1;", 0, -1, {0}, "no rua field"},
    {"v=TLSRPTv1; ext=1", 0, -1, {0}, "no rua field"},
    {"v=TLSRPTv1; RUA=mailto:a@example.com", 0, -1, {0}, "no rua field"},
    {"v=TLSRPTv1; rua=", 0, -1, {0}, "rua is empty"},
    {"v=TLSRPTv1; rua= ;", 0, -1, {0}, "rua is empty"},
    /* extensions and malformed fields */
    {"v=TLSRPTv1; foo=bar; rua=mailto:a@example.com; x_y.z-1=v:a/l,u#e", 0, 1,
     {"mailto:a@example.com"}, ""},
    {"v=TLSRPTv1; rua=mailto:a@example.com; junk", 0, -1, {0}, "not name=value"},
    {"v=TLSRPTv1; rua=mailto:a@example.com; =x", 0, -1, {0}, "not name=value"},
    {"v=TLSRPTv1; rua=mailto:a@example.com; x=a b", 0, -1, {0}, "malformed field"},
    {"v=TLSRPTv1; rua=mailto:a@example.com; x=a=b", 0, -1, {0}, "malformed field"},
    {"v=TLSRPTv1; rua=mailto:a@example.com; _x=1", 0, -1, {0}, "malformed field"},
    {"v=TLSRPTv1; rua=mailto:a@example.com; x=", 0, -1, {0}, "malformed field"},
    {"v=TLSRPTv1; rua=mailto:a@example.com; "
     "abcdefghijabcdefghijabcdefghijabc=1", 0, -1, {0}, "malformed field"},
    {"v=TLSRPTv1 rua=mailto:a@example.com", 0, -1, {0}, "followed by \";\""},
    /* not a TLSRPT record at all */
    {"rua=mailto:a@example.com; v=TLSRPTv1", 0, 0, {0}, "not a TLSRPT record"},
    {" v=TLSRPTv1; rua=mailto:a@example.com", 0, 0, {0}, "not a TLSRPT record"},
    {"V=TLSRPTv1; rua=mailto:a@example.com", 0, 0, {0}, "not a TLSRPT record"},
    {"v=tlsrptv1; rua=mailto:a@example.com", 0, 0, {0}, "not a TLSRPT record"},
    {"v=TLSRPTv10; rua=mailto:a@example.com", 0, 0, {0}, "not a TLSRPT record"},
    {"v=TLSRPTv2; rua=mailto:a@example.com", 0, 0, {0}, "not a TLSRPT record"},
    {"v=STSv1; id=20240501", 0, 0, {0}, "not a TLSRPT record"},
    {"", 0, 0, {0}, "not a TLSRPT record"},
};

static void run_case(const struct tcase *c, size_t i)
{
    char ruas[8][MXG_RPT_RUA_MAX];
    char why[512];
    int max = c->max ? c->max : 8;
    int rc = mxg_rpt_txt_parse(c->txt, strlen(c->txt), ruas, max, why, sizeof why);
    if (rc != c->rc)
        fail_msg("case %zu \"%s\": rc %d, want %d (why: %s)", i, c->txt, rc, c->rc, why);
    for (int k = 0; k < rc; k++) {
        if (!c->want[k] || strcmp(ruas[k], c->want[k]) != 0)
            fail_msg("case %zu \"%s\": rua[%d] \"%s\", want \"%s\"", i, c->txt, k, ruas[k],
                     c->want[k] ? c->want[k] : "(none)");
    }
    if (c->why && c->why[0] == '\0' && why[0] != '\0')
        fail_msg("case %zu \"%s\": why \"%s\", want none", i, c->txt, why);
    if (c->why && c->why[0] && !strstr(why, c->why))
        fail_msg("case %zu \"%s\": why \"%s\" lacks \"%s\"", i, c->txt, why, c->why);
}

static void test_parse_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        run_case(&cases[i], i);
}

/* Length-bounded input (TXT data is not NUL-terminated); NUL inside. */
static void test_length_and_nul(void **state)
{
    (void)state;
    char ruas[4][MXG_RPT_RUA_MAX], why[256];
    const char *t = "v=TLSRPTv1; rua=mailto:a@example.comGARBAGE";
    assert_int_equal(mxg_rpt_txt_parse(t, strlen(t) - 7, ruas, 4, why, sizeof why), 1);
    assert_string_equal(ruas[0], "mailto:a@example.com");
    const char nul[] = "v=TLSRPTv1; rua=mailto:a@example.com\0; rua=mailto:b@example.com";
    assert_int_equal(mxg_rpt_txt_parse(nul, sizeof nul - 1, ruas, 4, why, sizeof why), -1);
    assert_non_null(strstr(why, "NUL"));
    assert_int_equal(mxg_rpt_txt_parse(t, strlen(t), NULL, 4, why, sizeof why), -1);
    assert_int_equal(mxg_rpt_txt_parse(t, strlen(t), ruas, 0, why, sizeof why), -1);
    assert_int_equal(mxg_rpt_txt_parse(NULL, 0, ruas, 4, why, sizeof why), 0);
    /* why may be NULL */
    assert_int_equal(mxg_rpt_txt_parse(t, strlen(t) - 7, ruas, 4, NULL, 0), 1);
}

/* A URI of 511 bytes fits, 512 does not. */
static void test_uri_length(void **state)
{
    (void)state;
    char rec[1200], ruas[2][MXG_RPT_RUA_MAX], why[1024];
    char uri[600];
    for (int len = 511; len <= 512; len++) {
        snprintf(uri, sizeof uri, "https://r.example.com/");
        size_t n = strlen(uri);
        memset(uri + n, 'p', (size_t)len - n);
        uri[len] = '\0';
        snprintf(rec, sizeof rec, "v=TLSRPTv1; rua=%s", uri);
        int rc = mxg_rpt_txt_parse(rec, strlen(rec), ruas, 2, why, sizeof why);
        if (len == 511) {
            assert_int_equal(rc, 1);
            assert_string_equal(ruas[0], uri);
        } else {
            assert_int_equal(rc, -1);
            assert_non_null(strstr(why, "longer than 511"));
        }
    }
    /* escapes count after decoding: 600 raw bytes that decode to < 512 */
    snprintf(rec, sizeof rec, "v=TLSRPTv1; rua=mailto:a@example.com?x=");
    for (int i = 0; i < 150; i++)
        strcat(rec, "%2C");
    assert_int_equal(mxg_rpt_txt_parse(rec, strlen(rec), ruas, 2, why, sizeof why), 1);
    assert_int_equal(strlen(ruas[0]), strlen("mailto:a@example.com?x=") + 150);
}

static void test_select(void **state)
{
    (void)state;
    char ruas[4][MXG_RPT_RUA_MAX], why[256];
    const char *spf = "v=spf1 -all", *sts = "v=STSv1; id=1";
    const char *good = "v=TLSRPTv1; rua=mailto:a@example.com,https://r.example.com/";
    const char *bad = "v=TLSRPTv1; rua=gopher://x";
    const char *v10 = "v=TLSRPTv10; rua=mailto:b@example.com";

    {
        const char *t[] = {spf, sts};
        size_t l[] = {strlen(spf), strlen(sts)};
        assert_int_equal(mxg_rpt_txt_select(t, l, 2, ruas, 4, why, sizeof why), 0);
        assert_non_null(strstr(why, "no TLSRPT record"));
        assert_int_equal(mxg_rpt_txt_select(t, l, 0, ruas, 4, why, sizeof why), 0);
    }
    {
        const char *t[] = {spf, good, v10};
        size_t l[] = {strlen(spf), strlen(good), strlen(v10)};
        assert_int_equal(mxg_rpt_txt_select(t, l, 3, ruas, 4, why, sizeof why), 2);
        assert_string_equal(ruas[0], "mailto:a@example.com");
        assert_string_equal(ruas[1], "https://r.example.com/");
    }
    {
        const char *t[] = {good, spf, good};
        size_t l[] = {strlen(good), strlen(spf), strlen(good)};
        assert_int_equal(mxg_rpt_txt_select(t, l, 3, ruas, 4, why, sizeof why), -1);
        assert_non_null(strstr(why, "2 TLSRPT records"));
    }
    {
        /* a malformed TLSRPT record still counts as one of "several" */
        const char *t[] = {good, bad};
        size_t l[] = {strlen(good), strlen(bad)};
        assert_int_equal(mxg_rpt_txt_select(t, l, 2, ruas, 4, why, sizeof why), -1);
        assert_non_null(strstr(why, "2 TLSRPT records"));
    }
    {
        const char *t[] = {bad};
        size_t l[] = {strlen(bad)};
        assert_int_equal(mxg_rpt_txt_select(t, l, 1, ruas, 4, why, sizeof why), -1);
        assert_non_null(strstr(why, "no usable rua"));
    }
    assert_int_equal(mxg_rpt_txt_select(NULL, NULL, 1, ruas, 4, why, sizeof why), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_table),
        cmocka_unit_test(test_length_and_nul),
        cmocka_unit_test(test_uri_length),
        cmocka_unit_test(test_select),
    };
    return cmocka_run_group_tests_name("report_txt", tests, NULL, NULL);
}
