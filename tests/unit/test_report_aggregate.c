/* tests/unit/test_report_aggregate.c — report/ aggregation, read back
 * through the report JSON: identical failure details merged into one with
 * the summed count (also across writes and restarts), distinct fields kept
 * apart, NULL and "" the same (omitted), per-policy success/failure
 * summaries (policy-type, policy-string and mx-host each make a policy),
 * the domain normalised, sts-* failures under policy-type sts, a failure
 * without result-type counted as validation-failure. */
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
                                       "mx-out.example.org"};

/* The parsed report of (DAY, domain); the caller json_decref()s it. */
static json_t *report(struct fx *f, const char *domain)
{
    char *text = NULL;
    json_error_t je;
    int rc = mxg_rpt_report_json(f->r, DAY, domain, &org, &text, NULL, f->err, sizeof f->err);
    if (rc != 0)
        fail_msg("report %s: %d %s", domain, rc, f->err);
    json_t *j = json_loads(text, 0, &je);
    if (!j)
        fail_msg("JSON: %s: %s", je.text, text);
    free(text);
    return j;
}

static json_t *policies(json_t *rep)
{
    json_t *p = json_object_get(rep, "policies");
    assert_true(json_is_array(p));
    return p;
}

static json_int_t summary(json_t *pol, const char *key)
{
    json_t *v = json_object_get(json_object_get(pol, "summary"), key);
    assert_true(json_is_integer(v));
    return json_integer_value(v);
}

static const char *str(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static json_int_t count(json_t *detail)
{
    json_t *v = json_object_get(detail, "failed-session-count");
    assert_true(json_is_integer(v));
    return json_integer_value(v);
}

static const struct mxg_rpt_policy pol_a = {
    MXG_RPT_TLSA, "example.com", "3 1 1 AABB\n2 1 1 CCDD", "mx1.example.com\nmx2.example.com"};

static struct mxg_rpt_result fail_res(const char *rtype, const char *rip, const char *info)
{
    struct mxg_rpt_result r = {0};
    r.result_type = rtype;
    r.sending_mta_ip = "198.51.100.1";
    r.receiving_mx_hostname = "mx1.example.com";
    r.receiving_mx_helo = "mx1.example.com";
    r.receiving_ip = rip;
    r.additional_information = info;
    return r;
}

/* ------------------------------------------------------------ tests */

static void test_identical_details_merged(void **state)
{
    struct fx *f = *state;
    struct mxg_rpt_result a = fail_res("tlsa-invalid", "192.0.2.1", NULL);
    struct mxg_rpt_result a_empty = fail_res("tlsa-invalid", "192.0.2.1", ""); /* "" == NULL */
    struct mxg_rpt_result b = fail_res("tlsa-invalid", "192.0.2.2", NULL);
    struct mxg_rpt_result c = fail_res("dane-required", "192.0.2.1", NULL);
    struct mxg_rpt_result d = fail_res("tlsa-invalid", "192.0.2.1", "see https://x.example");

    for (int i = 0; i < 4; i++)
        mxg_rpt_record(f->r, &pol_a, &a, T0 + i);
    mxg_rpt_record(f->r, &pol_a, &a_empty, T0);
    for (int i = 0; i < 2; i++)
        mxg_rpt_record(f->r, &pol_a, &b, T0);
    for (int i = 0; i < 3; i++)
        mxg_rpt_record(f->r, &pol_a, &c, T0);
    mxg_rpt_record(f->r, &pol_a, &d, T0);

    json_t *rep = report(f, "example.com");
    json_t *ps = policies(rep);
    assert_int_equal(json_array_size(ps), 1);
    json_t *p0 = json_array_get(ps, 0);
    assert_int_equal(summary(p0, "total-failure-session-count"), 11);
    assert_int_equal(summary(p0, "total-successful-session-count"), 0);
    json_t *fd = json_object_get(p0, "failure-details");
    assert_int_equal(json_array_size(fd), 4);
    /* ordered by count: a (5), c (3), b (2), d (1) */
    assert_int_equal(count(json_array_get(fd, 0)), 5);
    assert_string_equal(str(json_array_get(fd, 0), "receiving-ip"), "192.0.2.1");
    assert_null(str(json_array_get(fd, 0), "additional-information"));
    assert_int_equal(count(json_array_get(fd, 1)), 3);
    assert_string_equal(str(json_array_get(fd, 1), "result-type"), "dane-required");
    assert_int_equal(count(json_array_get(fd, 2)), 2);
    assert_string_equal(str(json_array_get(fd, 2), "receiving-ip"), "192.0.2.2");
    assert_int_equal(count(json_array_get(fd, 3)), 1);
    assert_string_equal(str(json_array_get(fd, 3), "additional-information"),
                        "see https://x.example");
    json_decref(rep);
}

/* Counts of one key written in several transactions (ticks) and across a
 * restart end up in one detail. */
static void test_merged_across_writes_and_restart(void **state)
{
    struct fx *f = *state;
    struct mxg_rpt_result a = fail_res("certificate-expired", "192.0.2.1", NULL);

    for (int i = 0; i < 3; i++)
        mxg_rpt_record(f->r, &pol_a, &a, T0);
    assert_int_equal(mxg_rpt_flush(f->r), 0);
    for (int i = 0; i < 2; i++)
        mxg_rpt_record(f->r, &pol_a, &a, T0);
    mxg_rpt_record(f->r, &pol_a, &(struct mxg_rpt_result){.success = 1}, T0);
    assert_int_equal(mxg_rpt_flush(f->r), 0);
    mxg_rpt_close(f->r);
    f->r = mxg_rpt_open(NULL, f->path, 0, f->err, sizeof f->err);
    assert_non_null(f->r);
    mxg_rpt_record(f->r, &pol_a, &a, T0);

    json_t *rep = report(f, "example.com");
    json_t *p0 = json_array_get(policies(rep), 0);
    json_t *fd = json_object_get(p0, "failure-details");
    assert_int_equal(json_array_size(fd), 1);
    assert_int_equal(count(json_array_get(fd, 0)), 6);
    assert_int_equal(summary(p0, "total-failure-session-count"), 6);
    assert_int_equal(summary(p0, "total-successful-session-count"), 1);
    json_decref(rep);
}

/* One policy entry per (policy-type, policy-string, mx-host); each with
 * its own summary. */
static void test_summaries_per_policy(void **state)
{
    struct fx *f = *state;
    struct mxg_rpt_policy pol_b = pol_a, pol_c = pol_a, pol_sts = pol_a;
    struct mxg_rpt_result ok = {.success = 1};
    struct mxg_rpt_result bad = fail_res("validation-failure", "192.0.2.1", NULL);

    pol_b.policy_string = "3 1 1 EEFF";              /* other TLSA set */
    pol_c.mx_host = "mx9.example.com";               /* other MX host list */
    pol_sts.type = MXG_RPT_STS;                      /* other type */
    pol_sts.policy_string = "version: STSv1\nmode: enforce\nmx: *.example.com\nmax_age: 86400\n";
    pol_sts.mx_host = "*.example.com";

    for (int i = 0; i < 7; i++)
        mxg_rpt_record(f->r, &pol_a, &ok, T0);
    for (int i = 0; i < 3; i++)
        mxg_rpt_record(f->r, &pol_a, &bad, T0);
    for (int i = 0; i < 2; i++)
        mxg_rpt_record(f->r, &pol_b, &ok, T0);
    mxg_rpt_record(f->r, &pol_c, &bad, T0);
    for (int i = 0; i < 5; i++)
        mxg_rpt_record(f->r, &pol_sts, &ok, T0);

    json_t *rep = report(f, "example.com");
    json_t *ps = policies(rep);
    assert_int_equal(json_array_size(ps), 4);
    json_int_t tot_ok = 0, tot_fail = 0;
    int seen = 0;
    for (size_t i = 0; i < json_array_size(ps); i++) {
        json_t *p = json_array_get(ps, i);
        json_t *pol = json_object_get(p, "policy");
        const char *type = str(pol, "policy-type");
        json_t *lines = json_object_get(pol, "policy-string");
        json_t *mx = json_object_get(pol, "mx-host");
        json_int_t s = summary(p, "total-successful-session-count");
        json_int_t fl = summary(p, "total-failure-session-count");
        tot_ok += s;
        tot_fail += fl;
        if (strcmp(type, "sts") == 0) {
            assert_int_equal(s, 5), assert_int_equal(fl, 0);
            assert_null(json_object_get(p, "failure-details"));
            assert_int_equal(json_array_size(lines), 4);
            seen |= 1;
        } else if (strcmp(json_string_value(json_array_get(lines, 0)), "3 1 1 EEFF") == 0) {
            assert_int_equal(s, 2), assert_int_equal(fl, 0);
            seen |= 2;
        } else if (strcmp(json_string_value(json_array_get(mx, 0)), "mx9.example.com") == 0) {
            assert_int_equal(s, 0), assert_int_equal(fl, 1);
            seen |= 4;
        } else {
            assert_int_equal(s, 7), assert_int_equal(fl, 3);
            assert_int_equal(json_array_size(lines), 2);
            assert_int_equal(json_array_size(mx), 2);
            seen |= 8;
        }
    }
    assert_int_equal(seen, 15);
    assert_int_equal(tot_ok, 14);
    assert_int_equal(tot_fail, 4);
    json_decref(rep);
}

/* "Example.COM." and "example.com" are one policy domain; other domains
 * are other reports. */
static void test_domain_normalised(void **state)
{
    struct fx *f = *state;
    struct mxg_rpt_policy p1 = pol_a, p2 = pol_a, other = pol_a;
    p1.domain = "Example.COM.";
    other.domain = "example.net";
    mxg_rpt_record(f->r, &p1, &(struct mxg_rpt_result){.success = 1}, T0);
    mxg_rpt_record(f->r, &p2, &(struct mxg_rpt_result){.success = 1}, T0);
    mxg_rpt_record(f->r, &other, &(struct mxg_rpt_result){.success = 1}, T0);

    json_t *rep = report(f, "EXAMPLE.com");
    json_t *p0 = json_array_get(policies(rep), 0);
    assert_int_equal(json_array_size(policies(rep)), 1);
    assert_int_equal(summary(p0, "total-successful-session-count"), 2);
    assert_string_equal(str(json_object_get(p0, "policy"), "policy-domain"), "example.com");
    json_decref(rep);
    rep = report(f, "example.net");
    assert_int_equal(summary(json_array_get(policies(rep), 0), "total-successful-session-count"),
                     1);
    json_decref(rep);
}

/* docs/ARCHITECTURE.md §TLSRPT counting: sts-policy-fetch-error, sts-policy-invalid and
 * sts-webpki-invalid count under policy-type sts whatever the caller says;
 * a failure without result-type is a validation-failure. */
static void test_result_type_rules(void **state)
{
    struct fx *f = *state;
    struct mxg_rpt_policy np = {MXG_RPT_NO_POLICY, "example.org", "", ""};
    const char *sts_types[] = {"sts-policy-fetch-error", "sts-policy-invalid",
                               "sts-webpki-invalid"};
    for (size_t i = 0; i < 3; i++) {
        struct mxg_rpt_result r = fail_res(sts_types[i], NULL, NULL);
        mxg_rpt_record(f->r, &np, &r, T0);
    }
    struct mxg_rpt_result none = fail_res(NULL, NULL, NULL);
    mxg_rpt_record(f->r, &np, &none, T0);
    struct mxg_rpt_result stls = fail_res("starttls-not-supported", NULL, NULL);
    mxg_rpt_record(f->r, &np, &stls, T0);

    json_t *rep = report(f, "example.org");
    json_t *ps = policies(rep);
    assert_int_equal(json_array_size(ps), 2);
    for (size_t i = 0; i < 2; i++) {
        json_t *p = json_array_get(ps, i);
        const char *type = str(json_object_get(p, "policy"), "policy-type");
        json_t *fd = json_object_get(p, "failure-details");
        if (strcmp(type, "sts") == 0) {
            assert_int_equal(json_array_size(fd), 3);
            for (size_t k = 0; k < 3; k++)
                assert_non_null(strstr(str(json_array_get(fd, k), "result-type"), "sts-"));
        } else {
            assert_string_equal(type, "no-policy-found");
            assert_int_equal(json_array_size(fd), 2);
            const char *t0 = str(json_array_get(fd, 0), "result-type");
            const char *t1 = str(json_array_get(fd, 1), "result-type");
            assert_true((strcmp(t0, "validation-failure") == 0 &&
                         strcmp(t1, "starttls-not-supported") == 0) ||
                        (strcmp(t1, "validation-failure") == 0 &&
                         strcmp(t0, "starttls-not-supported") == 0));
        }
    }
    json_decref(rep);
    assert_true(mxg_rpt_result_type_known("dane-required"));
    assert_false(mxg_rpt_result_type_known("DANE-required"));
    assert_false(mxg_rpt_result_type_known(NULL));
}

/* Many distinct keys: the table grows and keeps every count. */
static void test_many_keys(void **state)
{
    struct fx *f = *state;
    char ip[32];
    for (int i = 0; i < 3000; i++) {
        snprintf(ip, sizeof ip, "10.0.%d.%d", (i % 1000) / 250, (i % 1000) % 250);
        struct mxg_rpt_result r = fail_res("certificate-not-trusted", ip, NULL);
        mxg_rpt_record(f->r, &pol_a, &r, T0);
    }
    json_t *rep = report(f, "example.com");
    json_t *p0 = json_array_get(policies(rep), 0);
    json_t *fd = json_object_get(p0, "failure-details");
    assert_int_equal(json_array_size(fd), 1000);
    for (size_t i = 0; i < json_array_size(fd); i++)
        assert_int_equal(count(json_array_get(fd, i)), 3);
    assert_int_equal(summary(p0, "total-failure-session-count"), 3000);
    json_decref(rep);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_identical_details_merged, rpt_fixture_setup, rpt_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_merged_across_writes_and_restart, rpt_fixture_setup, rpt_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_summaries_per_policy, rpt_fixture_setup, rpt_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_domain_normalised, rpt_fixture_setup, rpt_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_result_type_rules, rpt_fixture_setup, rpt_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_many_keys, rpt_fixture_setup, rpt_fixture_teardown),
    };
    return cmocka_run_group_tests_name("report_aggregate", tests, NULL, NULL);
}
