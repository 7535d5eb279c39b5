/* tests/unit/test_report_days.c — report/ UTC days: a result at 23:59:59Z
 * and one at 00:00:00Z land on different days (also across a month, a
 * leap day and a year end), mxg_rpt_days() lists the (day, domain) pairs
 * in order, each day's report has its own counts and date-range,
 * unix_time <= 0 means today, purge drops the old days. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "report/tlsrpt.h"
#include "report_fixture.h"


static int64_t utc(int y, int mo, int d, int h, int mi, int s)
{
    struct tm tm = {.tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d,
                    .tm_hour = h, .tm_min = mi, .tm_sec = s};
    return (int64_t)timegm(&tm);
}

static const struct mxg_rpt_org org = {"Example Org", "mailto:tlsrpt@example.org", NULL};

static void rec(struct fx *f, const char *domain, int success, int64_t t)
{
    struct mxg_rpt_policy p = {MXG_RPT_TLSA, domain, "3 1 1 AA", "mx.example.com"};
    struct mxg_rpt_result r = {.success = success, .result_type = success ? NULL : "tlsa-invalid"};
    mxg_rpt_record(f->r, &p, &r, t);
}

/* total sessions (ok + failed) of the report of (day, domain); -1 if none */
static long long sessions(struct fx *f, const char *day, const char *domain, json_t **out)
{
    char *text = NULL;
    int rc = mxg_rpt_report_json(f->r, day, domain, &org, &text, NULL, f->err, sizeof f->err);
    if (rc == MXG_RPT_ENODATA)
        return -1;
    assert_int_equal(rc, 0);
    json_t *j = json_loads(text, 0, NULL);
    free(text);
    assert_non_null(j);
    json_t *sum = json_object_get(json_array_get(json_object_get(j, "policies"), 0), "summary");
    long long n = json_integer_value(json_object_get(sum, "total-successful-session-count")) +
                  json_integer_value(json_object_get(sum, "total-failure-session-count"));
    if (out)
        *out = j;
    else
        json_decref(j);
    return n;
}

struct pairs {
    int n;
    char v[16][300];
};

static void collect(void *arg, const char *day, const char *domain)
{
    struct pairs *p = arg;
    if (p->n < 16)
        snprintf(p->v[p->n++], sizeof p->v[0], "%s %s", day, domain);
}

/* ------------------------------------------------------------ tests */

static void test_midnight_boundary(void **state)
{
    struct fx *f = *state;
    json_t *j = NULL;

    rec(f, "example.com", 1, utc(2024, 5, 1, 23, 59, 59));
    rec(f, "example.com", 0, utc(2024, 5, 1, 23, 59, 59));
    rec(f, "example.com", 1, utc(2024, 5, 2, 0, 0, 0));
    rec(f, "example.com", 1, utc(2024, 5, 1, 0, 0, 0)); /* first second of the day */

    assert_int_equal(sessions(f, "2024-05-01", "example.com", &j), 3);
    json_t *dr = json_object_get(j, "date-range");
    assert_string_equal(json_string_value(json_object_get(dr, "start-datetime")),
                        "2024-05-01T00:00:00Z");
    assert_string_equal(json_string_value(json_object_get(dr, "end-datetime")),
                        "2024-05-01T23:59:59Z");
    json_decref(j);
    assert_int_equal(sessions(f, "2024-05-02", "example.com", &j), 1);
    dr = json_object_get(j, "date-range");
    assert_string_equal(json_string_value(json_object_get(dr, "start-datetime")),
                        "2024-05-02T00:00:00Z");
    json_decref(j);
    assert_int_equal(sessions(f, "2024-04-30", "example.com", NULL), -1);
}

static void test_calendar_edges(void **state)
{
    struct fx *f = *state;
    rec(f, "leap.example", 1, utc(2024, 2, 28, 23, 59, 59));
    rec(f, "leap.example", 1, utc(2024, 2, 29, 0, 0, 0));
    rec(f, "leap.example", 1, utc(2024, 2, 29, 23, 59, 59));
    rec(f, "leap.example", 1, utc(2024, 3, 1, 0, 0, 0));
    rec(f, "year.example", 1, utc(2023, 12, 31, 23, 59, 59));
    rec(f, "year.example", 1, utc(2024, 1, 1, 0, 0, 0));

    assert_int_equal(sessions(f, "2024-02-28", "leap.example", NULL), 1);
    assert_int_equal(sessions(f, "2024-02-29", "leap.example", NULL), 2);
    assert_int_equal(sessions(f, "2024-03-01", "leap.example", NULL), 1);
    assert_int_equal(sessions(f, "2023-12-31", "year.example", NULL), 1);
    assert_int_equal(sessions(f, "2024-01-01", "year.example", NULL), 1);

    struct pairs p = {0};
    assert_int_equal(mxg_rpt_days(f->r, collect, &p), 5);
    assert_int_equal(p.n, 5);
    const char *want[] = {"2023-12-31 year.example", "2024-01-01 year.example",
                          "2024-02-28 leap.example", "2024-02-29 leap.example",
                          "2024-03-01 leap.example"};
    for (int i = 0; i < 5; i++)
        assert_string_equal(p.v[i], want[i]);
}

static void test_days_ordered_by_day_then_domain(void **state)
{
    struct fx *f = *state;
    struct pairs p = {0};
    assert_int_equal(mxg_rpt_days(f->r, collect, &p), 0); /* empty database */
    rec(f, "b.example", 1, utc(2024, 5, 2, 1, 0, 0));
    rec(f, "a.example", 0, utc(2024, 5, 2, 1, 0, 0));
    rec(f, "c.example", 1, utc(2024, 5, 1, 1, 0, 0));
    rec(f, "a.example", 1, utc(2024, 5, 2, 9, 0, 0)); /* same pair again */
    assert_int_equal(mxg_rpt_days(f->r, collect, &p), 3); /* buffered results included */
    assert_string_equal(p.v[0], "2024-05-01 c.example");
    assert_string_equal(p.v[1], "2024-05-02 a.example");
    assert_string_equal(p.v[2], "2024-05-02 b.example");
}

static void test_now_and_bad_days(void **state)
{
    struct fx *f = *state;
    char today[16], *text = NULL;
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(today, sizeof today, "%Y-%m-%d", &tm);
    rec(f, "now.example", 1, 0);
    long long n = sessions(f, today, "now.example", NULL);
    if (n == -1) { /* the test ran across midnight UTC: the record went to the day before */
        now -= 60;
        gmtime_r(&now, &tm);
        strftime(today, sizeof today, "%Y-%m-%d", &tm);
        n = sessions(f, today, "now.example", NULL);
    }
    assert_int_equal(n, 1);

    const char *bad[] = {"2024-5-01", "2024-13-01", "2024-02-30", "2023-02-29", "2024-04-31",
                         "20240501", "2024-05-01T", "", "2024-00-10", "2024-01-00"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(mxg_rpt_report_json(f->r, bad[i], "now.example", &org, &text, NULL,
                                             f->err, sizeof f->err),
                         MXG_RPT_EINVAL);
    assert_null(text);
}

static void test_purge(void **state)
{
    struct fx *f = *state;
    char *text = NULL;
    rec(f, "example.com", 1, utc(2024, 5, 1, 12, 0, 0));
    rec(f, "example.net", 0, utc(2024, 5, 1, 12, 0, 0));
    rec(f, "example.com", 1, utc(2024, 5, 2, 12, 0, 0));
    assert_int_equal(mxg_rpt_report_json(f->r, "2024-05-01", "example.com", &org, &text, NULL,
                                         f->err, sizeof f->err),
                     0);
    free(text);
    assert_int_equal(mxg_rpt_delivery_add(f->r, "2024-05-01", "example.com",
                                          "mailto:r@example.com", 100),
                     1);
    assert_int_equal(mxg_rpt_purge(f->r, "bad"), MXG_RPT_EINVAL);
    assert_int_equal(mxg_rpt_flush(f->r), 0);
    assert_int_equal(mxg_rpt_purge(f->r, "2024-05-02"), 2);
    assert_int_equal(sessions(f, "2024-05-01", "example.com", NULL), -1);
    assert_int_equal(sessions(f, "2024-05-01", "example.net", NULL), -1);
    assert_int_equal(sessions(f, "2024-05-02", "example.com", NULL), 1);
    struct pairs p = {0};
    assert_int_equal(mxg_rpt_days(f->r, collect, &p), 1);
    assert_int_equal(mxg_rpt_purge(f->r, "2024-05-02"), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_midnight_boundary, rpt_fixture_setup, rpt_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_calendar_edges, rpt_fixture_setup, rpt_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_days_ordered_by_day_then_domain, rpt_fixture_setup, rpt_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_now_and_bad_days, rpt_fixture_setup, rpt_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_purge, rpt_fixture_setup, rpt_fixture_teardown),
    };
    return cmocka_run_group_tests_name("report_days", tests, NULL, NULL);
}
