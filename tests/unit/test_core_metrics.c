/* tests/unit/test_core_metrics.c — the metrics registry (core/metrics.h)
 * and its HTTP endpoint (core/metrics_http.h), served on 127.0.0.1 with a
 * libuv client on the same loop. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <arpa/inet.h>
#include <uv.h>

#include "core/config.h"
#include "core/metrics.h"
#include "core/metrics_http.h"

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

/* ---- HTTP ---- */

struct client {
    uv_loop_t *loop;
    uv_tcp_t tcp;
    uv_connect_t conn;
    uv_write_t w;
    char req[256];
    char resp[65536];
    size_t len;
    int closed;
};

static void c_alloc(uv_handle_t *h, size_t sz, uv_buf_t *b)
{
    struct client *c = h->data;
    (void)sz;
    *b = uv_buf_init(c->resp + c->len, (unsigned)(sizeof c->resp - 1 - c->len));
}

static void c_closed(uv_handle_t *h)
{
    ((struct client *)h->data)->closed = 1;
}

static void c_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    struct client *c = s->data;
    (void)b;
    if (n > 0) {
        c->len += (size_t)n;
        c->resp[c->len] = '\0';
    } else if (n < 0) {
        uv_close((uv_handle_t *)&c->tcp, c_closed);
    }
}

static void c_written(uv_write_t *w, int status)
{
    (void)w;
    (void)status;
}

static void c_connected(uv_connect_t *r, int status)
{
    struct client *c = r->data;
    if (status < 0) {
        uv_close((uv_handle_t *)&c->tcp, c_closed);
        return;
    }
    uv_buf_t b = uv_buf_init(c->req, (unsigned)strlen(c->req));
    uv_write(&c->w, (uv_stream_t *)&c->tcp, &b, 1, c_written);
    uv_read_start((uv_stream_t *)&c->tcp, c_alloc, c_read);
}

/* One request from source address src to 127.0.0.1:port; the raw response. */
static void http_get(uv_loop_t *loop, int port, const char *src, const char *req,
                     struct client *c)
{
    memset(c, 0, sizeof *c);
    snprintf(c->req, sizeof c->req, "%s", req);
    uv_tcp_init(loop, &c->tcp);
    c->tcp.data = c->conn.data = c;
    struct sockaddr_in sa, me;
    uv_ip4_addr(src, 0, &me);
    assert_int_equal(uv_tcp_bind(&c->tcp, (struct sockaddr *)&me, 0), 0);
    uv_ip4_addr("127.0.0.1", port, &sa);
    assert_int_equal(uv_tcp_connect(&c->conn, &c->tcp, (struct sockaddr *)&sa, c_connected), 0);
    for (int i = 0; i < 2000 && !c->closed; i++)
        uv_run(loop, UV_RUN_ONCE);
    assert_true(c->closed);
}

static void test_http(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct mxg_config cfg;
    mxg_config_defaults(&cfg);
    assert_int_equal(mxg_parse_cidr("127.0.0.1", &cfg.metrics_allow[0]), 0);
    cfg.n_metrics_allow = 1;
    struct mxg_metrics *m = mxg_metrics_new();
    mxg_metrics_add(m, MXG_M_TRANSACTIONS, "delivered", 5);
    struct sockaddr_in sa;
    uv_ip4_addr("127.0.0.1", 0, &sa);
    char err[256];
    struct mxg_metrics_http *h =
        mxg_metrics_http_start(&loop, m, &cfg, (struct sockaddr *)&sa, err, sizeof err);
    if (!h)
        fail_msg("start: %s", err);
    int port = mxg_metrics_http_port(h);
    assert_true(port > 0);

    struct client *c = malloc(sizeof *c);
    http_get(&loop, port, "127.0.0.1", "GET /metrics HTTP/1.0\r\n\r\n", c);
    assert_true(strncmp(c->resp, "HTTP/1.0 200", 12) == 0 || strncmp(c->resp, "HTTP/1.1 200", 12) == 0);
    assert_non_null(strstr(c->resp, "Content-Type: text/plain; version=0.0.4"));
    assert_non_null(strstr(c->resp, "\nmxguard_transactions_total{outcome=\"delivered\"} 5\n"));

    /* values change between scrapes */
    mxg_metrics_inc(m, MXG_M_TRANSACTIONS, "delivered");
    http_get(&loop, port, "127.0.0.1",
             "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", c);
    assert_non_null(strstr(c->resp, "\nmxguard_transactions_total{outcome=\"delivered\"} 6\n"));

    http_get(&loop, port, "127.0.0.1", "GET /other HTTP/1.0\r\n\r\n", c);
    assert_non_null(strstr(c->resp, " 404 "));
    http_get(&loop, port, "127.0.0.1", "POST /metrics HTTP/1.0\r\nContent-Length: 0\r\n\r\n", c);
    assert_non_null(strstr(c->resp, " 405 "));
    assert_non_null(strstr(c->resp, "Allow: GET, HEAD"));
    http_get(&loop, port, "127.0.0.1", "HEAD /metrics HTTP/1.0\r\n\r\n", c);
    assert_non_null(strstr(c->resp, " 200 "));
    assert_null(strstr(c->resp, "mxguard_"));

    /* a client outside metrics.allow_networks gets nothing */
    http_get(&loop, port, "127.0.0.2", "GET /metrics HTTP/1.0\r\n\r\n", c);
    assert_int_equal(c->len, 0);
    /* the list is read live: allow it now */
    assert_int_equal(mxg_parse_cidr("127.0.0.0/8", &cfg.metrics_allow[0]), 0);
    http_get(&loop, port, "127.0.0.2", "GET /metrics HTTP/1.0\r\n\r\n", c);
    assert_non_null(strstr(c->resp, " 200 "));

    /* the port is taken: a second endpoint fails cleanly */
    struct sockaddr_in same;
    uv_ip4_addr("127.0.0.1", port, &same);
    assert_null(mxg_metrics_http_start(&loop, m, &cfg, (struct sockaddr *)&same, err, sizeof err));

    mxg_metrics_http_stop(h);
    mxg_metrics_http_stop(NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    free(c);
    mxg_metrics_free(m);
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
        cmocka_unit_test(test_http),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
