/* tests/unit/test_core_metrics.c — the metrics registry (core/metrics.h);
 * its HTTP endpoint is tested by test_app_metrics_http.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/metrics.h"

static char *render(struct mxg_metrics *m)
{
    char *out;
    size_t len;
    assert_int_equal(mxg_metrics_render(m, &out, &len), 0);
    assert_int_equal(strlen(out), len);
    return out;
}

static void assert_line(const char *text, const char *line)
{
    char want[512];
    snprintf(want, sizeof want, "\n%s\n", line);
    if (!strstr(text, want))
        fail_msg("missing line [%s] in:\n%s", line, text);
}

static void test_null_is_a_noop(void **state)
{
    (void)state;
    mxg_metrics_inc(NULL, MXG_M_SESSIONS_TOTAL, NULL);
    mxg_metrics_add(NULL, MXG_M_TRANSACTIONS, "delivered", 3);
    mxg_metrics_set(NULL, MXG_M_SESSIONS_ACTIVE, NULL, 1);
    mxg_metrics_observe_ms(NULL, MXG_M_DNS_DURATION, "MX", 5);
    assert_int_equal(mxg_metrics_gauge_fn(NULL, MXG_M_SESSIONS_ACTIVE, NULL, NULL, NULL), -1);
    assert_true(mxg_metrics_value(NULL, MXG_M_SESSIONS_TOTAL, NULL) == 0);
    mxg_metrics_free(NULL);
}

static void test_initial_series_and_types(void **state)
{
    (void)state;
    struct mxg_metrics *m = mxg_metrics_new();
    assert_non_null(m);
    char *t = render(m);
    assert_line(t, "# TYPE mxguard_sessions_total counter");
    assert_line(t, "mxguard_sessions_total 0");
    assert_line(t, "# TYPE mxguard_sessions_active gauge");
    assert_line(t, "mxguard_transactions_total{outcome=\"delivered\"} 0");
    assert_line(t, "mxguard_transactions_total{outcome=\"temp_failed\"} 0");
    assert_line(t, "mxguard_transactions_total{outcome=\"perm_failed\"} 0");
    assert_line(t, "mxguard_policy_decisions_total{source=\"dane\"} 0");
    assert_line(t, "mxguard_policy_decisions_total{source=\"opportunistic\"} 0");
    assert_line(t, "mxguard_build_info{version=\"" MXG_VERSION "\"} 1");
    assert_line(t, "# TYPE mxguard_dns_query_duration_seconds histogram");
    /* a labelled family nobody used yet: HELP and TYPE, no sample */
    assert_null(strstr(t, "mxguard_dns_query_duration_seconds_count"));
    /* every line is a comment or "name[{...}] value" */
    for (char *line = strtok(t, "\n"); line; line = strtok(NULL, "\n")) {
        if (line[0] == '#')
            continue;
        assert_true(strncmp(line, "mxguard_", 8) == 0);
        assert_non_null(strchr(line, ' '));
    }
    free(t);
    mxg_metrics_free(m);
}

static void test_counters_and_labels(void **state)
{
    (void)state;
    struct mxg_metrics *m = mxg_metrics_new();
    mxg_metrics_inc(m, MXG_M_SESSIONS_TOTAL, "ignored: no label");
    mxg_metrics_inc(m, MXG_M_SESSIONS_TOTAL, NULL);
    mxg_metrics_inc(m, MXG_M_TRANSACTIONS, "delivered");
    mxg_metrics_add(m, MXG_M_TRANSACTIONS, "delivered", 41);
    mxg_metrics_inc(m, MXG_M_TLS_SESSIONS, "certificate-host-mismatch");
    mxg_metrics_inc(m, MXG_M_TLS_SESSIONS, "weird\"label\\with\nnewline");
    assert_true(mxg_metrics_value(m, MXG_M_SESSIONS_TOTAL, NULL) == 2);
    assert_true(mxg_metrics_value(m, MXG_M_TRANSACTIONS, "delivered") == 42);
    assert_true(mxg_metrics_value(m, MXG_M_TRANSACTIONS, "perm_failed") == 0);
    /* set on a counter is refused */
    mxg_metrics_set(m, MXG_M_SESSIONS_TOTAL, NULL, 99);
    assert_true(mxg_metrics_value(m, MXG_M_SESSIONS_TOTAL, NULL) == 2);
    char *t = render(m);
    assert_line(t, "mxguard_sessions_total 2");
    assert_line(t, "mxguard_transactions_total{outcome=\"delivered\"} 42");
    assert_line(t, "mxguard_tls_sessions_total{result=\"certificate-host-mismatch\"} 1");
    assert_line(t, "mxguard_tls_sessions_total{result=\"weird\\\"label\\\\with\\nnewline\"} 1");
    free(t);
    mxg_metrics_free(m);
}

static void test_series_cap_goes_to_other(void **state)
{
    (void)state;
    struct mxg_metrics *m = mxg_metrics_new();
    char lbl[32];
    for (int i = 0; i < MXG_METRICS_MAX_SERIES + 20; i++) {
        snprintf(lbl, sizeof lbl, "type-%d", i);
        mxg_metrics_inc(m, MXG_M_TLS_SESSIONS, lbl);
    }
    char *t = render(m);
    int n = 0;
    for (char *p = t; (p = strstr(p, "\nmxguard_tls_sessions_total{")); p++)
        n++;
    assert_int_equal(n, MXG_METRICS_MAX_SERIES);
    /* 1 ("success") + 46 own series + "other", which counts the last 22 */
    assert_line(t, "mxguard_tls_sessions_total{result=\"other\"} 22");
    free(t);
    mxg_metrics_free(m);
}

static double read_seven(void *arg)
{
    (*(int *)arg)++;
    return 7;
}

static void test_gauges(void **state)
{
    (void)state;
    struct mxg_metrics *m = mxg_metrics_new();
    int calls = 0;
    mxg_metrics_set(m, MXG_M_SPOOL_MESSAGES, NULL, 3);
    assert_int_equal(mxg_metrics_gauge_fn(m, MXG_M_DNS_CACHE_ENTRIES, NULL, read_seven, &calls), 0);
    assert_int_equal(mxg_metrics_gauge_fn(m, MXG_M_SESSIONS_TOTAL, NULL, read_seven, &calls), -1);
    char *t = render(m);
    assert_line(t, "mxguard_spool_messages 3");
    assert_line(t, "mxguard_dns_cache_entries 7");
    assert_int_equal(calls, 1);
    free(t);
    mxg_metrics_set(m, MXG_M_RELOAD_TIME, NULL, 1.5);
    mxg_metrics_gauge_fn(m, MXG_M_DNS_CACHE_ENTRIES, NULL, NULL, NULL);
    t = render(m);
    assert_line(t, "mxguard_config_last_reload_success_timestamp_seconds 1.5");
    assert_line(t, "mxguard_dns_cache_entries 0");
    assert_int_equal(calls, 1);
    free(t);
    mxg_metrics_free(m);
}

static void test_histogram(void **state)
{
    (void)state;
    struct mxg_metrics *m = mxg_metrics_new();
    mxg_metrics_observe_ms(m, MXG_M_DNS_DURATION, "TLSA", 3);    /* <= 5 ms */
    mxg_metrics_observe_ms(m, MXG_M_DNS_DURATION, "TLSA", 10);   /* <= 10 ms */
    mxg_metrics_observe_ms(m, MXG_M_DNS_DURATION, "TLSA", 700);  /* <= 1 s */
    mxg_metrics_observe_ms(m, MXG_M_DNS_DURATION, "TLSA", 999999); /* +Inf only */
    mxg_metrics_inc(m, MXG_M_DNS_DURATION, "TLSA");              /* not a counter: ignored */
    assert_true(mxg_metrics_value(m, MXG_M_DNS_DURATION, "TLSA") == 4);
    char *t = render(m);
    assert_line(t, "mxguard_dns_query_duration_seconds_bucket{type=\"TLSA\",le=\"0.005\"} 1");
    assert_line(t, "mxguard_dns_query_duration_seconds_bucket{type=\"TLSA\",le=\"0.01\"} 2");
    assert_line(t, "mxguard_dns_query_duration_seconds_bucket{type=\"TLSA\",le=\"0.5\"} 2");
    assert_line(t, "mxguard_dns_query_duration_seconds_bucket{type=\"TLSA\",le=\"1\"} 3");
    assert_line(t, "mxguard_dns_query_duration_seconds_bucket{type=\"TLSA\",le=\"120\"} 3");
    assert_line(t, "mxguard_dns_query_duration_seconds_bucket{type=\"TLSA\",le=\"+Inf\"} 4");
    assert_line(t, "mxguard_dns_query_duration_seconds_sum{type=\"TLSA\"} 1000.712");
    assert_line(t, "mxguard_dns_query_duration_seconds_count{type=\"TLSA\"} 4");
    /* unlabelled histogram */
    mxg_metrics_observe_ms(m, MXG_M_TXN_DURATION, NULL, 250);
    free(t);
    t = render(m);
    assert_line(t, "mxguard_transaction_duration_seconds_bucket{le=\"0.25\"} 1");
    assert_line(t, "mxguard_transaction_duration_seconds_count 1");
    free(t);
    mxg_metrics_free(m);
}

static void test_names(void **state)
{
    (void)state;
    assert_string_equal(mxg_metrics_name(MXG_M_SESSIONS_TOTAL), "mxguard_sessions_total");
    assert_null(mxg_metrics_name(MXG_M__COUNT));
    for (int i = 0; i < MXG_M__COUNT; i++) {
        const char *n = mxg_metrics_name((enum mxg_metric)i);
        assert_non_null(n);
        for (const char *p = n; *p; p++)
            assert_true((*p >= 'a' && *p <= 'z') || *p == '_');
    }
}

/* Worker processes: registries in caller memory (as the master's shared mapping), the
 * counters and histograms summed, the renderer's gauges only, the per-worker families. */
static void test_workers(void **state)
{
    (void)state;
    size_t sz = mxg_metrics_size();
    char *mem = calloc(2, sz);
    assert_null(mxg_metrics_new_at(mem, sz - 1));
    struct mxg_metrics *w[2] = {mxg_metrics_new_at(mem, sz), mxg_metrics_new_at(mem + sz, sz)};
    assert_non_null(w[0]);
    assert_non_null(w[1]);
    int calls = 0;
    mxg_metrics_add(w[0], MXG_M_TRANSACTIONS, "delivered", 3);
    mxg_metrics_add(w[1], MXG_M_TRANSACTIONS, "delivered", 4);
    mxg_metrics_inc(w[1], MXG_M_TRANSACTIONS, "queued");
    mxg_metrics_add(w[1], MXG_M_SESSIONS_TOTAL, NULL, 2);
    mxg_metrics_inc(w[1], MXG_M_TLS_SESSIONS, "certificate-expired"); /* a series only w[1] has */
    mxg_metrics_observe_ms(w[0], MXG_M_TXN_DURATION, NULL, 250);
    mxg_metrics_observe_ms(w[1], MXG_M_TXN_DURATION, NULL, 3);
    mxg_metrics_set(w[0], MXG_M_SPOOL_MESSAGES, NULL, 5);
    mxg_metrics_set(w[1], MXG_M_SPOOL_MESSAGES, NULL, 9); /* not the renderer's: not shown */
    mxg_metrics_gauge_fn(w[0], MXG_M_DNS_CACHE_ENTRIES, NULL, read_seven, &calls);
    mxg_metrics_gauge_fn(w[1], MXG_M_DNS_CACHE_ENTRIES, NULL, read_seven, &calls);
    mxg_metrics_set(w[1], MXG_M_SESSIONS_ACTIVE, NULL, 4);
    mxg_metrics_publish(w[1]); /* w[1]'s summed gauges as of now: 7 entries, 4 sessions */
    mxg_metrics_set(w[1], MXG_M_SESSIONS_ACTIVE, NULL, 40); /* not published yet */
    mxg_metrics_set(w[0], MXG_M_SESSIONS_ACTIVE, NULL, 1);
    uint64_t restarts[2] = {0, 3};
    char *t;
    size_t len;
    assert_int_equal(mxg_metrics_render_workers(w, 2, 0, restarts, &t, &len), 0);
    assert_int_equal(strlen(t), len);
    assert_line(t, "mxguard_transactions_total{outcome=\"delivered\"} 7");
    assert_line(t, "mxguard_transactions_total{outcome=\"queued\"} 1");
    assert_line(t, "mxguard_sessions_total 2");
    assert_line(t, "mxguard_tls_sessions_total{result=\"certificate-expired\"} 1");
    assert_line(t, "mxguard_transaction_duration_seconds_bucket{le=\"0.005\"} 1");
    assert_line(t, "mxguard_transaction_duration_seconds_count 2");
    assert_line(t, "mxguard_spool_messages 5");
    assert_line(t, "mxguard_dns_cache_entries 14");
    assert_line(t, "mxguard_sessions_active 5");
    assert_line(t, "mxguard_build_info{version=\"" MXG_VERSION "\"} 1");
    assert_line(t, "mxguard_worker_relayed_total{worker=\"0\"} 3");
    assert_line(t, "mxguard_worker_relayed_total{worker=\"1\"} 5");
    assert_line(t, "mxguard_worker_sessions_total{worker=\"1\"} 2");
    assert_line(t, "mxguard_worker_restarts_total{worker=\"1\"} 3");
    free(t);
    /* w[1] dies: the master unpublishes its summed gauges, its counts stay in the sums */
    mxg_metrics_unpublish(w[1]);
    assert_int_equal(mxg_metrics_render_workers(w, 2, 0, restarts, &t, &len), 0);
    assert_line(t, "mxguard_sessions_active 1");
    assert_line(t, "mxguard_dns_cache_entries 7");
    assert_line(t, "mxguard_transactions_total{outcome=\"delivered\"} 7");
    free(t);
    /* the renderer's own registry is not changed by a render */
    assert_true(mxg_metrics_value(w[0], MXG_M_TRANSACTIONS, "delivered") == 3);
    /* a successor adopts a slot: counts go on, gauge functions are gone */
    mxg_metrics_adopt(w[0]);
    assert_true(mxg_metrics_value(w[0], MXG_M_DNS_CACHE_ENTRIES, NULL) == 0);
    assert_true(mxg_metrics_value(w[0], MXG_M_TRANSACTIONS, "delivered") == 3);
    assert_int_equal(mxg_metrics_render_workers(w, 2, 2, NULL, &t, &len), -1);
    mxg_metrics_free(w[0]); /* caller memory: left alone */
    mxg_metrics_free(w[1]);
    free(mem);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_null_is_a_noop),
        cmocka_unit_test(test_initial_series_and_types),
        cmocka_unit_test(test_counters_and_labels),
        cmocka_unit_test(test_series_cap_goes_to_other),
        cmocka_unit_test(test_gauges),
        cmocka_unit_test(test_histogram),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_workers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
