/* tests/unit/test_report_json.c — report/ RFC 8460 §4 JSON, parsed back
 * with jansson and checked key by key (and that no other key is there):
 * the top level, date-range, report-id (format, stable across generations
 * and restarts, different per day and domain, short forms for long
 * names), policy (lines split, empty lines dropped, policy-string/mx-host
 * omitted when empty), summary, failure-details (only non-empty optional
 * fields), UTF-8 clean-up, argument errors and "no data". */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "report/tlsrpt.h"
#include "report_fixture.h"

#define T0 1714564800 /* 2024-05-01T12:00:00Z */
#define DAY "2024-05-01"


static const struct mxg_rpt_org org = {"Example Org", "mailto:tlsrpt@example.org",
                                       "MX-Out.example.org"};

static json_t *gen(struct fx *f, const char *day, const char *domain, char id[128], char **raw)
{
    char *text = NULL;
    json_error_t je;
    int rc = mxg_rpt_report_json(f->r, day, domain, &org, &text, id, f->err, sizeof f->err);
    if (rc != 0)
        fail_msg("report: %d %s", rc, f->err);
    json_t *j = json_loads(text, JSON_REJECT_DUPLICATES, &je);
    if (!j)
        fail_msg("JSON: %s: %s", je.text, text);
    if (raw)
        *raw = text;
    else
        free(text);
    return j;
}

/* o has exactly the n keys listed. */
static void keys_exactly(json_t *o, const char *const *keys, size_t n)
{
    assert_true(json_is_object(o));
    for (size_t i = 0; i < n; i++)
        if (!json_object_get(o, keys[i]))
            fail_msg("key %s missing", keys[i]);
    if (json_object_size(o) != n) {
        char *d = json_dumps(o, 0);
        fail_msg("%zu keys, want %zu: %s", json_object_size(o), n, d);
    }
}

static const char *s_of(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    if (!json_is_string(v))
        fail_msg("%s is not a string", key);
    return json_string_value(v);
}

static json_int_t i_of(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    if (!json_is_integer(v))
        fail_msg("%s is not an integer", key);
    return json_integer_value(v);
}

static void lines_are(json_t *a, const char *const *want, size_t n)
{
    assert_true(json_is_array(a));
    assert_int_equal(json_array_size(a), n);
    for (size_t i = 0; i < n; i++)
        assert_string_equal(json_string_value(json_array_get(a, i)), want[i]);
}

/* ------------------------------------------------------------ tests */

static void test_full_report(void **state)
{
    struct fx *f = *state;
    char id[128], *raw = NULL;
    struct mxg_rpt_policy p = {MXG_RPT_STS, "company-y.example",
                               "version: STSv1\r\nmode: testing\r\nmx: *.mail.company-y.example\r\n"
                               "max_age: 86400\r\n",
                               "*.mail.company-y.example\n\nmx-backup.company-y.example\n"};
    struct mxg_rpt_result ok = {.success = 1};
    struct mxg_rpt_result all = {
        .result_type = "certificate-expired",
        .sending_mta_ip = "2001:db8:abcd:12::1",
        .receiving_mx_hostname = "mx1.mail.company-y.example",
        .receiving_mx_helo = "mx1.mail.company-y.example",
        .receiving_ip = "203.0.113.56",
        .additional_information = "https://reports.example/info?id=1",
        .failure_reason_code = "X509_V_ERR_CERT_HAS_EXPIRED",
    };
    struct mxg_rpt_result some = {
        .result_type = "starttls-not-supported",
        .receiving_mx_hostname = "mx2.mail.company-y.example",
        .receiving_ip = "",
    };
    for (int i = 0; i < 5; i++)
        mxg_rpt_record(f->r, &p, &ok, T0);
    for (int i = 0; i < 2; i++)
        mxg_rpt_record(f->r, &p, &all, T0);
    mxg_rpt_record(f->r, &p, &some, T0);

    json_t *j = gen(f, DAY, "company-y.example", id, &raw);
    /* compact text, keys in the RFC's order */
    assert_memory_equal(raw, "{\"organization-name\":\"Example Org\",\"date-range\":{", 48);
    free(raw);

    const char *top[] = {"organization-name", "date-range", "contact-info", "report-id",
                         "policies"};
    keys_exactly(j, top, 5);
    assert_string_equal(s_of(j, "organization-name"), "Example Org");
    assert_string_equal(s_of(j, "contact-info"), "mailto:tlsrpt@example.org");
    assert_string_equal(s_of(j, "report-id"), id);
    json_t *dr = json_object_get(j, "date-range");
    const char *drk[] = {"start-datetime", "end-datetime"};
    keys_exactly(dr, drk, 2);
    assert_string_equal(s_of(dr, "start-datetime"), "2024-05-01T00:00:00Z");
    assert_string_equal(s_of(dr, "end-datetime"), "2024-05-01T23:59:59Z");

    /* report-id: DAY.DOMAIN.16hex@submitter (lower-cased) */
    assert_memory_equal(id, "2024-05-01.company-y.example.", 29);
    const char *at = strchr(id, '@');
    assert_non_null(at);
    assert_int_equal(at - id, 29 + 16);
    for (const char *c = id + 29; c < at; c++)
        assert_non_null(strchr("0123456789abcdef", *c));
    assert_string_equal(at, "@mx-out.example.org");

    json_t *ps = json_object_get(j, "policies");
    assert_true(json_is_array(ps));
    assert_int_equal(json_array_size(ps), 1);
    json_t *p0 = json_array_get(ps, 0);
    const char *pk[] = {"policy", "summary", "failure-details"};
    keys_exactly(p0, pk, 3);

    json_t *pol = json_object_get(p0, "policy");
    const char *polk[] = {"policy-type", "policy-string", "policy-domain", "mx-host"};
    keys_exactly(pol, polk, 4);
    assert_string_equal(s_of(pol, "policy-type"), "sts");
    assert_string_equal(s_of(pol, "policy-domain"), "company-y.example");
    const char *lines[] = {"version: STSv1", "mode: testing", "mx: *.mail.company-y.example",
                           "max_age: 86400"};
    lines_are(json_object_get(pol, "policy-string"), lines, 4);
    const char *mx[] = {"*.mail.company-y.example", "mx-backup.company-y.example"};
    lines_are(json_object_get(pol, "mx-host"), mx, 2);

    json_t *sum = json_object_get(p0, "summary");
    const char *sk[] = {"total-successful-session-count", "total-failure-session-count"};
    keys_exactly(sum, sk, 2);
    assert_int_equal(i_of(sum, "total-successful-session-count"), 5);
    assert_int_equal(i_of(sum, "total-failure-session-count"), 3);

    json_t *fd = json_object_get(p0, "failure-details");
    assert_true(json_is_array(fd));
    assert_int_equal(json_array_size(fd), 2);
    json_t *d0 = json_array_get(fd, 0);
    const char *d0k[] = {"result-type",  "sending-mta-ip",       "receiving-mx-hostname",
                         "receiving-mx-helo", "receiving-ip",    "failed-session-count",
                         "additional-information", "failure-reason-code"};
    keys_exactly(d0, d0k, 8);
    assert_string_equal(s_of(d0, "result-type"), "certificate-expired");
    assert_string_equal(s_of(d0, "sending-mta-ip"), "2001:db8:abcd:12::1");
    assert_string_equal(s_of(d0, "receiving-mx-hostname"), "mx1.mail.company-y.example");
    assert_string_equal(s_of(d0, "receiving-mx-helo"), "mx1.mail.company-y.example");
    assert_string_equal(s_of(d0, "receiving-ip"), "203.0.113.56");
    assert_int_equal(i_of(d0, "failed-session-count"), 2);
    assert_string_equal(s_of(d0, "additional-information"), "https://reports.example/info?id=1");
    assert_string_equal(s_of(d0, "failure-reason-code"), "X509_V_ERR_CERT_HAS_EXPIRED");
    json_t *d1 = json_array_get(fd, 1);
    const char *d1k[] = {"result-type", "receiving-mx-hostname", "failed-session-count"};
    keys_exactly(d1, d1k, 3);
    assert_string_equal(s_of(d1, "result-type"), "starttls-not-supported");
    assert_int_equal(i_of(d1, "failed-session-count"), 1);
    json_decref(j);
}

/* no-policy-found with no lines: no policy-string, no mx-host; only
 * successes: no failure-details. TLSA lines as given. */
static void test_omissions(void **state)
{
    struct fx *f = *state;
    struct mxg_rpt_policy np = {MXG_RPT_NO_POLICY, "example.net", "", NULL};
    struct mxg_rpt_policy tl = {MXG_RPT_TLSA, "example.net", "3 1 1 AB12\n2 0 1 CD34", "\n"};
    mxg_rpt_record(f->r, &np, &(struct mxg_rpt_result){.success = 1}, T0);
    mxg_rpt_record(f->r, &tl, &(struct mxg_rpt_result){.success = 1}, T0);

    json_t *j = gen(f, DAY, "example.net", NULL, NULL);
    json_t *ps = json_object_get(j, "policies");
    assert_int_equal(json_array_size(ps), 2);
    for (size_t i = 0; i < 2; i++) {
        json_t *p = json_array_get(ps, i);
        const char *pk[] = {"policy", "summary"};
        keys_exactly(p, pk, 2);
        json_t *pol = json_object_get(p, "policy");
        if (strcmp(s_of(pol, "policy-type"), "no-policy-found") == 0) {
            const char *k[] = {"policy-type", "policy-domain"};
            keys_exactly(pol, k, 2);
        } else {
            assert_string_equal(s_of(pol, "policy-type"), "tlsa");
            const char *k[] = {"policy-type", "policy-string", "policy-domain"};
            keys_exactly(pol, k, 3); /* mx-host "\n" has no lines */
            const char *lines[] = {"3 1 1 AB12", "2 0 1 CD34"};
            lines_are(json_object_get(pol, "policy-string"), lines, 2);
        }
        assert_int_equal(i_of(json_object_get(p, "summary"), "total-failure-session-count"), 0);
    }
    json_decref(j);
}

/* RFC 8460 §4.3/§4.4: a tlsa or sts policy always carries policy-string, []
 * when the policy was not known (bogus TLSA RRset or MX RRset, failed
 * MTA-STS fetch); a dnssec-invalid detail keeps receiving-mx-hostname and
 * no connection fields; an STS "MX not in the policy" failure is a
 * validation-failure with failure-reason-code mx-not-in-policy. */
static void test_policy_string_always(void **state)
{
    struct fx *f = *state;
    struct mxg_rpt_policy bogus = {MXG_RPT_TLSA, "example.net", "", NULL};
    struct mxg_rpt_policy fetch = {MXG_RPT_STS, "example.net", NULL, NULL};
    struct mxg_rpt_policy sts = {MXG_RPT_STS, "example.net",
                                 "version: STSv1\nmode: enforce\nmx: mx2.example.net\nmax_age: 86400",
                                 "mx2.example.net"};
    mxg_rpt_record(f->r, &bogus,
                   &(struct mxg_rpt_result){.result_type = MXG_RPT_R_DNSSEC_INVALID,
                                            .receiving_mx_hostname = "mx.example.net",
                                            .failure_reason_code = "TLSA lookup is bogus"},
                   T0);
    mxg_rpt_record(f->r, &bogus,
                   &(struct mxg_rpt_result){.result_type = MXG_RPT_R_DNSSEC_INVALID,
                                            .failure_reason_code = "MX bogus"},
                   T0);
    mxg_rpt_record(f->r, &fetch,
                   &(struct mxg_rpt_result){.result_type = MXG_RPT_R_STS_POLICY_FETCH_ERROR}, T0);
    mxg_rpt_record(f->r, &sts,
                   &(struct mxg_rpt_result){.result_type = MXG_RPT_R_VALIDATION_FAILURE,
                                            .receiving_mx_hostname = "mx1.example.net",
                                            .failure_reason_code =
                                                MXG_RPT_REASON_MX_NOT_IN_POLICY},
                   T0);

    json_t *j = gen(f, DAY, "example.net", NULL, NULL);
    json_t *ps = json_object_get(j, "policies");
    assert_int_equal(json_array_size(ps), 3);
    int seen = 0;
    for (size_t i = 0; i < json_array_size(ps); i++) {
        json_t *p = json_array_get(ps, i);
        json_t *pol = json_object_get(p, "policy");
        json_t *fd = json_object_get(p, "failure-details");
        json_t *pstr = json_object_get(pol, "policy-string");
        assert_true(json_is_array(pstr)); /* always there for tlsa and sts */
        if (strcmp(s_of(pol, "policy-type"), "tlsa") == 0) {
            const char *k[] = {"policy-type", "policy-string", "policy-domain"};
            keys_exactly(pol, k, 3);
            assert_int_equal(json_array_size(pstr), 0); /* [] */
            assert_int_equal(json_array_size(fd), 2);
            for (size_t d = 0; d < 2; d++) {
                json_t *e = json_array_get(fd, d);
                assert_string_equal(s_of(e, "result-type"), "dnssec-invalid");
                if (json_object_get(e, "receiving-mx-hostname")) {
                    const char *k2[] = {"result-type", "receiving-mx-hostname",
                                        "failed-session-count", "failure-reason-code"};
                    keys_exactly(e, k2, 4);
                    assert_string_equal(s_of(e, "receiving-mx-hostname"), "mx.example.net");
                } else {
                    const char *k2[] = {"result-type", "failed-session-count",
                                        "failure-reason-code"};
                    keys_exactly(e, k2, 3);
                }
            }
            seen |= 1;
        } else if (json_array_size(pstr) == 0) {
            assert_string_equal(s_of(pol, "policy-type"), "sts");
            const char *k[] = {"policy-type", "policy-string", "policy-domain"};
            keys_exactly(pol, k, 3);
            assert_string_equal(s_of(json_array_get(fd, 0), "result-type"),
                                "sts-policy-fetch-error");
            seen |= 2;
        } else {
            assert_string_equal(s_of(pol, "policy-type"), "sts");
            assert_int_equal(json_array_size(pstr), 4);
            json_t *e = json_array_get(fd, 0);
            assert_string_equal(s_of(e, "result-type"), "validation-failure");
            assert_string_equal(s_of(e, "receiving-mx-hostname"), "mx1.example.net");
            assert_string_equal(s_of(e, "failure-reason-code"), "mx-not-in-policy");
            seen |= 4;
        }
    }
    assert_int_equal(seen, 7);
    json_decref(j);
}

static void test_report_id_stable(void **state)
{
    struct fx *f = *state;
    char id1[128], id2[128], id3[128], id4[128], id5[128];
    struct mxg_rpt_policy p = {MXG_RPT_TLSA, "example.com", "3 1 1 AA", "mx.example.com"};
    mxg_rpt_record(f->r, &p, &(struct mxg_rpt_result){.success = 1}, T0);
    mxg_rpt_record(f->r, &p, &(struct mxg_rpt_result){.success = 1}, T0 + 86400);
    p.domain = "example.org";
    mxg_rpt_record(f->r, &p, &(struct mxg_rpt_result){.success = 1}, T0);

    json_decref(gen(f, DAY, "example.com", id1, NULL));
    /* more results later: same report, same id, new counts */
    p.domain = "example.com";
    mxg_rpt_record(f->r, &p, &(struct mxg_rpt_result){.success = 1}, T0);
    json_t *j = gen(f, DAY, "example.com", id2, NULL);
    assert_string_equal(id1, id2);
    assert_string_equal(s_of(j, "report-id"), id1);
    json_decref(j);
    /* other day, other domain: other ids */
    json_decref(gen(f, "2024-05-02", "example.com", id3, NULL));
    json_decref(gen(f, DAY, "example.org", id4, NULL));
    assert_string_not_equal(id1, id3);
    assert_string_not_equal(id1, id4);
    /* survives a restart */
    mxg_rpt_close(f->r);
    f->r = mxg_rpt_open(NULL, f->path, 0, f->err, sizeof f->err);
    assert_non_null(f->r);
    json_decref(gen(f, DAY, "example.com", id5, NULL));
    assert_string_equal(id1, id5);
}

/* A long domain and submitter still give an id that fits (shorter form). */
static void test_report_id_long_names(void **state)
{
    struct fx *f = *state;
    char dom[254], id[128], *text = NULL;
    memset(dom, 'a', sizeof dom);
    for (int i = 63; i < 253; i += 64)
        dom[i] = '.';
    dom[253] = '\0';
    struct mxg_rpt_policy p = {MXG_RPT_NO_POLICY, dom, "", ""};
    mxg_rpt_record(f->r, &p, &(struct mxg_rpt_result){.success = 1}, T0);
    struct mxg_rpt_org o = {"O", "mailto:c@example.org", "sub mitter!.example.org"};
    assert_int_equal(mxg_rpt_report_json(f->r, DAY, dom, &o, &text, id, f->err, sizeof f->err), 0);
    assert_true(strlen(id) < 128);
    assert_memory_equal(id, "2024-05-01.", 11);
    assert_string_equal(strchr(id, '@'), "@submitter.example.org");
    json_t *j = json_loads(text, 0, NULL);
    assert_string_equal(s_of(j, "report-id"), id);
    json_decref(j);
    free(text);
}

/* Invalid UTF-8 and control characters from remote peers: valid JSON. */
static void test_utf8_cleaned(void **state)
{
    struct fx *f = *state;
    struct mxg_rpt_policy p = {MXG_RPT_TLSA, "example.com", "3 1 1 AA", ""};
    struct mxg_rpt_result bad = {.result_type = "validation-failure",
                                 .receiving_mx_helo = "h\xff\xfe\"x\x01 caf\xc3\xa9 \xe2\x82",
                                 .additional_information = "ok \xf0\x9f\x98\x80"};
    mxg_rpt_record(f->r, &p, &bad, T0);
    json_t *j = gen(f, DAY, "example.com", NULL, NULL);
    json_t *d = json_array_get(
        json_object_get(json_array_get(json_object_get(j, "policies"), 0), "failure-details"), 0);
    assert_string_equal(s_of(d, "receiving-mx-helo"), "h??\"x\x01 caf\xc3\xa9 ??");
    assert_string_equal(s_of(d, "additional-information"), "ok \xf0\x9f\x98\x80");
    json_decref(j);
}

static void test_errors(void **state)
{
    struct fx *f = *state;
    char *text = (char *)1;
    char id[128] = "untouched";
    struct mxg_rpt_org no_name = {NULL, "mailto:x@example.org", NULL};
    struct mxg_rpt_org no_contact = {"Org", "", NULL};

    assert_int_equal(mxg_rpt_report_json(f->r, DAY, "example.com", &org, &text, id, f->err,
                                         sizeof f->err),
                     MXG_RPT_ENODATA);
    assert_null(text);
    assert_string_equal(id, "untouched");
    assert_non_null(strstr(f->err, "no TLSRPT results"));
    struct mxg_rpt_policy p = {MXG_RPT_TLSA, "example.com", "", ""};
    mxg_rpt_record(f->r, &p, &(struct mxg_rpt_result){.success = 1}, T0);
    assert_int_equal(mxg_rpt_report_json(f->r, DAY, "example.com", &no_name, &text, NULL,
                                         f->err, sizeof f->err),
                     MXG_RPT_EINVAL);
    assert_int_equal(mxg_rpt_report_json(f->r, DAY, "example.com", &no_contact, &text, NULL,
                                         f->err, sizeof f->err),
                     MXG_RPT_EINVAL);
    assert_int_equal(mxg_rpt_report_json(f->r, DAY, "example.com", NULL, &text, NULL, f->err,
                                         sizeof f->err),
                     MXG_RPT_EINVAL);
    assert_int_equal(mxg_rpt_report_json(f->r, DAY, "", &org, &text, NULL, f->err,
                                         sizeof f->err),
                     MXG_RPT_EINVAL);
    assert_int_equal(mxg_rpt_report_json(f->r, DAY, "example.com", &org, NULL, NULL, f->err,
                                         sizeof f->err),
                     MXG_RPT_EINVAL);
    assert_string_equal(mxg_rpt_strerror(MXG_RPT_ENODATA), "no data");
    assert_string_equal(mxg_rpt_policy_type_name(MXG_RPT_NO_POLICY), "no-policy-found");
    assert_null(mxg_rpt_policy_type_name((enum mxg_rpt_policy_type)7));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_full_report, rpt_fixture_setup, rpt_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_omissions, rpt_fixture_setup, rpt_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_policy_string_always, rpt_fixture_setup,
                                        rpt_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_report_id_stable, rpt_fixture_setup, rpt_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_report_id_long_names, rpt_fixture_setup, rpt_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_utf8_cleaned, rpt_fixture_setup, rpt_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_errors, rpt_fixture_setup, rpt_fixture_teardown),
    };
    return cmocka_run_group_tests_name("report_json", tests, NULL, NULL);
}
