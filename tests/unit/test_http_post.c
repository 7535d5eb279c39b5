/* tests/unit/test_http_post.c — mxg_https_post() (http/https.h) against
 * tests/unit/https_server.py (tests/unit/https_fixture.h): the body and
 * Content-Type arrive as given (binary body with NULs), any 2xx is
 * success (200/201/202), other statuses and redirects are ERR_STATUS, a
 * long response to a 2xx is cut at the cap and still OK, bad arguments
 * are refused, the callback never runs synchronously, cancel means no
 * callback, GET still works on the same handle, every uv handle closes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tests/unit/https_fixture.h"
#include "http/https.h"

#define ADDR "127.0.70.241" /* reserved for this test */
#define HOST "report.example.test"
#define GUARD_MS 15000

static struct hfx fx;

static int group_setup(void **state)
{
    (void)state;
    return hfx_start(&fx, ADDR, HOST);
}

static int group_teardown(void **state)
{
    (void)state;
    hfx_stop(&fx);
    return 0;
}

struct env {
    uv_loop_t loop;
    struct mxg_https *h;
};

struct call {
    int n;
    enum mxg_https_err err;
    long status;
    size_t body_len;
    char why[256];
};

static int env_setup(void **state)
{
    struct env *e = calloc(1, sizeof *e);
    assert_non_null(e);
    assert_int_equal(uv_loop_init(&e->loop), 0);
    char err[256];
    e->h = mxg_https_new(&e->loop, fx.ca, err, sizeof err);
    assert_non_null(e->h);
    *state = e;
    return 0;
}

static int env_teardown(void **state)
{
    struct env *e = *state;
    mxg_https_free(e->h);
    int rc = hfx_loop_close(&e->loop);
    free(e);
    assert_int_equal(rc, 0);
    return 0;
}

static void on_result(void *arg, const struct mxg_https_result *r)
{
    struct call *c = arg;
    c->n++;
    c->err = r->err;
    c->status = r->status;
    c->body_len = r->body_len;
    snprintf(c->why, sizeof c->why, "%s", r->why);
    assert_non_null(r->body);
    assert_int_equal(r->body[r->body_len], '\0');
}

static struct mxg_https_opts opts(const char *path, struct sockaddr_storage *ss)
{
    hfx_addr4(ss, ADDR, fx.port);
    struct mxg_https_opts o = { .host = HOST, .port = fx.port, .path = path, .addrs = ss,
                                .n_addrs = 1, .connect_timeout_ms = 3000,
                                .total_timeout_ms = 8000 };
    return o;
}

static void post(struct env *e, const char *path, const void *body, size_t len,
                 struct call *c)
{
    struct sockaddr_storage ss;
    struct mxg_https_opts o = opts(path, &ss);
    struct mxg_https_req *rq = NULL;
    memset(c, 0, sizeof *c);
    assert_int_equal(mxg_https_post(e->h, &o, "application/tlsrpt+gzip", body, len, on_result,
                                    c, &rq),
                     0);
    assert_non_null(rq);
    assert_int_equal(c->n, 0); /* never synchronous */
    assert_true(hfx_run_until(&e->loop, &c->n, 1, GUARD_MS));
    uv_run(&e->loop, UV_RUN_NOWAIT);
    assert_int_equal(c->n, 1);
}

static const unsigned char BODY[] = { 0x1f, 0x8b, 0x08, 0x00, 0x00, 'a', 'b', 0x00, 0xff, 'z' };

static void t_post_200(void **state)
{
    struct env *e = *state;
    int before = hfx_post_count(&fx);
    struct call c;
    post(e, "/post/200/x?y=1", BODY, sizeof BODY, &c);
    if (c.err != MXG_HTTPS_OK)
        fail_msg("expected ok, got %s (%s)", mxg_https_err_name(c.err), c.why);
    assert_int_equal(c.status, 200);
    assert_int_equal(hfx_post_count(&fx), before + 1);
    char *body = NULL, path[256], ctype[256];
    size_t len = 0;
    assert_int_equal(hfx_post(&fx, before + 1, &body, &len, path, sizeof path, ctype,
                              sizeof ctype),
                     0);
    assert_string_equal(path, "/post/200/x?y=1");
    assert_string_equal(ctype, "application/tlsrpt+gzip");
    assert_int_equal(len, sizeof BODY);
    assert_memory_equal(body, BODY, sizeof BODY);
    free(body);
}

static void t_post_2xx(void **state)
{
    struct env *e = *state;
    struct call c;
    post(e, "/post/201", BODY, sizeof BODY, &c);
    assert_int_equal(c.err, MXG_HTTPS_OK);
    assert_int_equal(c.status, 201);
    post(e, "/post/202", BODY, sizeof BODY, &c);
    assert_int_equal(c.err, MXG_HTTPS_OK);
    assert_int_equal(c.status, 202);
    post(e, "/post/204", NULL, 0, &c); /* empty body, no response body */
    assert_int_equal(c.err, MXG_HTTPS_OK);
    assert_int_equal(c.status, 204);
}

static void t_post_fail_status(void **state)
{
    struct env *e = *state;
    struct call c;
    post(e, "/post/500", BODY, sizeof BODY, &c);
    assert_int_equal(c.err, MXG_HTTPS_ERR_STATUS);
    assert_int_equal(c.status, 500);
    assert_string_equal(c.why, "HTTP 500");
    assert_int_equal(c.body_len, 0);
    post(e, "/post/301", BODY, sizeof BODY, &c);
    assert_int_equal(c.err, MXG_HTTPS_ERR_STATUS);
    assert_int_equal(c.status, 301);
    post(e, "/nowhere", BODY, sizeof BODY, &c);
    assert_int_equal(c.err, MXG_HTTPS_ERR_STATUS);
    assert_int_equal(c.status, 404);
}

static void t_post_big_response(void **state)
{
    struct env *e = *state;
    struct call c;
    post(e, "/post/big", BODY, sizeof BODY, &c);
    if (c.err != MXG_HTTPS_OK)
        fail_msg("expected ok, got %s (%s)", mxg_https_err_name(c.err), c.why);
    assert_int_equal(c.status, 200);
    assert_true(c.body_len <= 4096);
}

static void t_post_bad_args(void **state)
{
    struct env *e = *state;
    struct sockaddr_storage ss;
    struct mxg_https_opts o = opts("/post/200", &ss);
    struct mxg_https_req *rq = (struct mxg_https_req *)&ss;
    struct call c = { 0 };
    assert_int_equal(mxg_https_post(e->h, &o, NULL, BODY, 1, on_result, &c, &rq), -1);
    assert_null(rq);
    assert_int_equal(mxg_https_post(e->h, &o, "", BODY, 1, on_result, &c, &rq), -1);
    assert_int_equal(mxg_https_post(e->h, &o, "text/plain\r\nX-Evil: 1", BODY, 1, on_result, &c,
                                    &rq),
                     -1);
    assert_int_equal(mxg_https_post(e->h, &o, "text/plain", NULL, 5, on_result, &c, &rq), -1);
    assert_int_equal(mxg_https_post(e->h, &o, "text/plain", BODY, 1, NULL, &c, &rq), -1);
    o.path = "no-slash";
    assert_int_equal(mxg_https_post(e->h, &o, "text/plain", BODY, 1, on_result, &c, &rq), -1);
    uv_run(&e->loop, UV_RUN_NOWAIT);
    assert_int_equal(c.n, 0);
}

/* The body is copied: the caller's buffer may change right after the call. */
static void t_post_body_copied(void **state)
{
    struct env *e = *state;
    int before = hfx_post_count(&fx);
    struct sockaddr_storage ss;
    struct mxg_https_opts o = opts("/post/200", &ss);
    char *buf = strdup("report-bytes");
    struct call c = { 0 };
    assert_int_equal(mxg_https_post(e->h, &o, "application/tlsrpt+gzip", buf, strlen(buf),
                                    on_result, &c, NULL),
                     0);
    memset(buf, 'X', strlen(buf));
    free(buf);
    assert_true(hfx_run_until(&e->loop, &c.n, 1, GUARD_MS));
    assert_int_equal(c.err, MXG_HTTPS_OK);
    char *body = NULL, path[64], ctype[64];
    size_t len = 0;
    assert_int_equal(hfx_post(&fx, before + 1, &body, &len, path, sizeof path, ctype,
                              sizeof ctype),
                     0);
    assert_string_equal(body, "report-bytes");
    free(body);
}

static void t_post_cancel_and_get(void **state)
{
    struct env *e = *state;
    struct sockaddr_storage ss;
    struct mxg_https_opts o = opts("/post/200", &ss);
    struct call c1 = { 0 }, c2 = { 0 };
    struct mxg_https_req *rq = NULL;
    assert_int_equal(mxg_https_post(e->h, &o, "text/plain", "x", 1, on_result, &c1, &rq), 0);
    mxg_https_cancel(rq);
    /* GET still works on the same handle (and is strict about 200). */
    o.path = "/ua";
    o.require_ctype = "text/plain";
    assert_int_equal(mxg_https_get(e->h, &o, on_result, &c2, NULL), 0);
    assert_true(hfx_run_until(&e->loop, &c2.n, 1, GUARD_MS));
    assert_int_equal(c2.err, MXG_HTTPS_OK);
    assert_int_equal(c2.status, 200);
    uv_run(&e->loop, UV_RUN_NOWAIT);
    assert_int_equal(c1.n, 0);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, env_setup, env_teardown)
    const struct CMUnitTest tests[] = {
        T(t_post_200),          T(t_post_2xx),         T(t_post_fail_status),
        T(t_post_big_response), T(t_post_bad_args),    T(t_post_body_copied),
        T(t_post_cancel_and_get),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
