/* tests/unit/test_app_metrics_http.c — the Prometheus endpoint
 * (app/metrics_http.h), served on 127.0.0.1 with a libuv client on the
 * same loop. */
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

#include "app/metrics_http.h"
#include "core/config.h"
#include "core/metrics.h"

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
        cmocka_unit_test(test_http),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
