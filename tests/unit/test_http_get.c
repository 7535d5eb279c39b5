/* tests/unit/test_http_get.c — http/https (GET) against a real HTTPS server.
 *
 * The group setup (tests/unit/https_fixture.h hfx_start_opts) generates,
 * with the openssl CLI, a test CA and three leaf certificates into a mkdtemp
 * directory: mta-sts.example.test (good), other.example.test (served for SNI
 * wrong.example.test: name mismatch) and expired.example.test (issued by
 * `openssl ca` with -startdate/-enddate in 2020: OpenSSL 3.0's req/x509
 * cannot back-date). It then starts tests/unit/https_server.py on
 * 127.0.70.240:8443 (HTTPS) and :8445 (plain HTTP, for a TLS handshake
 * failure); if another run of this test holds those ports, the server falls
 * back to ephemeral ones and says which. Connections are refused on a port
 * this process keeps bound without listen(). The server is killed by the
 * group teardown, by an atexit handler, and, should this process die
 * otherwise, by PR_SET_PDEATHSIG and by its stdin pipe reaching EOF.
 *
 * Each test runs its own uv loop, waits for callbacks with a guard timer,
 * frees the module and checks that uv_loop_close() succeeds (every handle
 * closed). Every mxg_https_get() is checked not to call back synchronously. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <time.h>
#include <unistd.h>

#include "tests/unit/https_fixture.h"
#include "http/https.h"

#define ADDR "127.0.70.240" /* reserved for this test */
#define WANT_PORT 8443       /* HTTPS */
#define WANT_PLAIN_PORT 8445 /* plain HTTP */
#define HOST "mta-sts.example.test"
#define SLOW_SECONDS "3"
#define GUARD_MS 15000

static const char POLICY[] = "version: STSv1\r\n"
                             "mode: enforce\r\n"
                             "mx: mx1.example.test\r\n"
                             "mx: *.mx.example.test\r\n"
                             "max_age: 86400\r\n";

static struct hfx fx = { .server = -1, .server_stdin = -1 };
static struct {
    int port;
    int fd; /* bound, never listening: connections are refused */
} dead = { .fd = -1 };

#define PORT fx.port
#define PLAIN_PORT fx.plain_port
#define DEAD_PORT dead.port

/* ------------------------------------------------------------------------ */
/* Fixture: certificates, server, a refusing port                           */

static const char GEN_SH[] =
    "set -e\n"
    "cat > ca.cnf <<'EOF'\n"
    "[ ca ]\n"
    "default_ca = tca\n"
    "[ tca ]\n"
    "dir = .\n"
    "database = ./index.txt\n"
    "new_certs_dir = .\n"
    "serial = ./serial\n"
    "default_md = sha256\n"
    "policy = pany\n"
    "unique_subject = no\n"
    "copy_extensions = none\n"
    "[ pany ]\n"
    "commonName = supplied\n"
    "[ leaf ]\n"
    "basicConstraints = critical,CA:FALSE\n"
    "keyUsage = critical,digitalSignature\n"
    "extendedKeyUsage = serverAuth\n"
    "subjectAltName = DNS:expired.example.test\n"
    "EOF\n"
    ": > index.txt\n"
    "echo 01 > serial\n"
    "EC='-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes'\n"
    "openssl req -x509 $EC -keyout ca.key -out ca.pem -days 2 -subj '/CN=mxguard https test CA' \\\n"
    "  -addext 'basicConstraints=critical,CA:TRUE' -addext 'keyUsage=critical,keyCertSign,cRLSign'\n"
    "leaf() {\n"
    "  openssl req -new $EC -keyout $1.key -out $1.csr -subj \"/CN=$2\"\n"
    "  printf 'basicConstraints=critical,CA:FALSE\\nkeyUsage=critical,digitalSignature\\n"
    "extendedKeyUsage=serverAuth\\nsubjectAltName=DNS:%s\\n' \"$2\" > $1.ext\n"
    "  openssl x509 -req -in $1.csr -CA ca.pem -CAkey ca.key -set_serial $3 -days 2 -sha256 \\\n"
    "    -extfile $1.ext -out $1.pem\n"
    "}\n"
    "leaf good mta-sts.example.test 1001\n"
    "leaf other other.example.test 1002\n"
    "openssl req -new $EC -keyout expired.key -out expired.csr -subj '/CN=expired.example.test'\n"
    "openssl ca -batch -config ca.cnf -cert ca.pem -keyfile ca.key -in expired.csr \\\n"
    "  -out expired.pem -notext -extensions leaf \\\n"
    "  -startdate 20200101000000Z -enddate 20200201000000Z\n";

static void release_dead_port(void);

static void at_exit(void)
{
    hfx_stop(&fx);
    release_dead_port();
}

/* A port on ADDR where connections are refused: bound, not listening. */
static int reserve_dead_port(void)
{
    dead.fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (dead.fd < 0)
        return -1;
    struct sockaddr_in sin = { .sin_family = AF_INET };
    socklen_t len = sizeof sin;
    inet_pton(AF_INET, ADDR, &sin.sin_addr);
    if (bind(dead.fd, (struct sockaddr *)&sin, sizeof sin) != 0 ||
        getsockname(dead.fd, (struct sockaddr *)&sin, &len) != 0)
        return -1;
    dead.port = ntohs(sin.sin_port);
    return 0;
}

static void release_dead_port(void)
{
    if (dead.fd >= 0)
        close(dead.fd);
    dead.fd = -1;
}

static int group_setup(void **state)
{
    (void)state;
    atexit(at_exit);
    const struct hfx_opts o = {
        .gen_sh = GEN_SH,
        .leaf = "good",
        .sni = { { "expired.example.test", "expired" }, { "wrong.example.test", "other" } },
        .port = WANT_PORT,
        .plain_port = WANT_PLAIN_PORT,
        .slow = SLOW_SECONDS,
    };
    if (hfx_start_opts(&fx, ADDR, HOST, &o) != 0)
        return -1;
    if (reserve_dead_port() != 0) {
        release_dead_port();
        hfx_stop(&fx);
        return -1;
    }
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    hfx_stop(&fx);
    release_dead_port();
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Loop harness                                                             */

struct env {
    uv_loop_t loop;
    struct mxg_https *h;
};

struct call {
    int n;
    struct mxg_https_result r;
    char body[70001];
    /* reentrancy hooks */
    struct env *env;
    struct mxg_https_req *cancel_other;
    int free_module;
    struct call *chain; /* start a /ok fetch into chain from the callback */
};

static void on_result(void *arg, const struct mxg_https_result *r);
static void addr4(struct sockaddr_storage *ss, const char *ip, int port);

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

/* Frees the module (if the test did not) and checks every handle closes. */
static int env_teardown(void **state)
{
    struct env *e = *state;
    mxg_https_free(e->h);
    e->h = NULL;
    int rc = hfx_loop_close(&e->loop);
    free(e);
    assert_int_equal(rc, 0);
    return 0;
}

static void on_result(void *arg, const struct mxg_https_result *r)
{
    struct call *c = arg;
    c->n++;
    if (getenv("MXG_TEST_VERBOSE"))
        fprintf(stderr, "    -> %s status=%ld ctype=\"%s\" len=%zu why=\"%s\"\n",
                mxg_https_err_name(r->err), r->status, r->ctype, r->body_len, r->why);
    c->r = *r;
    assert_non_null(r->body);
    assert_true(r->body_len < sizeof c->body);
    memcpy(c->body, r->body, r->body_len);
    c->body[r->body_len] = '\0';
    assert_int_equal(r->body[r->body_len], '\0');
    c->r.body = c->body;
    if (c->cancel_other) {
        mxg_https_cancel(c->cancel_other);
        c->cancel_other = NULL;
    }
    if (c->chain) {
        struct sockaddr_storage ss;
        addr4(&ss, ADDR, PORT);
        struct mxg_https_opts o = { HOST, PORT, "/ok", &ss, 1, 3000, 5000, 0, "text/plain", NULL };
        struct mxg_https_req *rq = NULL;
        assert_int_equal(mxg_https_get(c->env->h, &o, on_result, c->chain, &rq), 0);
        assert_int_equal(c->chain->n, 0);
        c->chain = NULL;
    }
    if (c->free_module) {
        mxg_https_free(c->env->h);
        c->env->h = NULL;
    }
}

static void addr4(struct sockaddr_storage *ss, const char *ip, int port)
{
    assert_int_equal(hfx_addr4(ss, ip, port), 0);
}

static void addr6(struct sockaddr_storage *ss, const char *ip, int port)
{
    struct sockaddr_in6 sin6 = { .sin6_family = AF_INET6, .sin6_port = htons((uint16_t)port) };
    assert_int_equal(inet_pton(AF_INET6, ip, &sin6.sin6_addr), 1);
    memset(ss, 0, sizeof *ss);
    memcpy(ss, &sin6, sizeof sin6);
}

struct fetch {
    const char *host;  /* NULL: HOST */
    int port;          /* 0: PORT */
    const char *path;
    const char *ctype; /* NULL: "text/plain" */
    int any_ctype;     /* require no media type */
    size_t max_body;   /* 0: module default */
    uint64_t total_ms; /* 0: 8 s */
};

/* Starts one GET (checks that it does not call back synchronously). */
static struct mxg_https_req *start(struct env *e, const struct fetch *f, struct call *c)
{
    static struct sockaddr_storage ss; /* copied by the module */
    int port = f->port ? f->port : PORT;
    addr4(&ss, ADDR, port);
    struct mxg_https_opts o = {
        .host = f->host ? f->host : HOST,
        .port = port,
        .path = f->path,
        .addrs = &ss,
        .n_addrs = 1,
        .connect_timeout_ms = 3000,
        .total_timeout_ms = f->total_ms ? f->total_ms : 8000,
        .max_body = f->max_body,
        .require_ctype = f->any_ctype ? NULL : f->ctype ? f->ctype : "text/plain",
    };
    struct mxg_https_req *rq = NULL;
    assert_int_equal(mxg_https_get(e->h, &o, on_result, c, &rq), 0);
    assert_non_null(rq);
    assert_int_equal(c->n, 0); /* never synchronous */
    return rq;
}

/* One GET to completion; exactly one callback. */
static struct call *fetch(struct env *e, const struct fetch *f)
{
    struct call *c = calloc(1, sizeof *c);
    assert_non_null(c);
    c->env = e;
    start(e, f, c);
    assert_true(hfx_run_until(&e->loop, &c->n, 1, GUARD_MS));
    uv_run(&e->loop, UV_RUN_NOWAIT);
    assert_int_equal(c->n, 1);
    return c;
}

#define F(...) (&(struct fetch){ __VA_ARGS__ })

static void expect_fail(struct call *c, enum mxg_https_err err, long status)
{
    if (c->r.err != err)
        fail_msg("expected %s, got %s (%s)", mxg_https_err_name(err), mxg_https_err_name(c->r.err),
                 c->r.why);
    assert_int_equal(c->r.status, status);
    assert_int_equal(c->r.body_len, 0);
    assert_string_equal(c->body, "");
    assert_true(c->r.why[0] != '\0');
}

static void expect_ok(struct call *c, const char *body, const char *ctype)
{
    if (c->r.err != MXG_HTTPS_OK)
        fail_msg("expected ok, got %s (%s)", mxg_https_err_name(c->r.err), c->r.why);
    assert_int_equal(c->r.status, 200);
    assert_int_equal(c->r.body_len, strlen(body));
    assert_string_equal(c->body, body);
    if (ctype)
        assert_string_equal(c->r.ctype, ctype);
}

/* ------------------------------------------------------------------------ */
/* Tests: success                                                           */

static void t_ok(void **state)
{
    struct call *c = fetch(*state, F(.path = "/ok"));
    expect_ok(c, POLICY, "text/plain");
    free(c);
}

static void t_chunked_ok(void **state)
{
    struct call *c = fetch(*state, F(.path = "/chunked-ok"));
    expect_ok(c, POLICY, "text/plain");
    free(c);
}

static void t_charset_param(void **state)
{
    struct call *c = fetch(*state, F(.path = "/charset"));
    expect_ok(c, POLICY, "text/plain; charset=utf-8");
    free(c);
}

static void t_media_type_case_insensitive(void **state)
{
    struct call *c = fetch(*state, F(.path = "/charset", .ctype = "TEXT/Plain"));
    expect_ok(c, POLICY, NULL);
    free(c);
}

static void t_any_ctype(void **state)
{
    struct call *c = fetch(*state, F(.path = "/empty-ctype", .any_ctype = 1));
    expect_ok(c, POLICY, "");
    free(c);
    c = fetch(*state, F(.path = "/html", .any_ctype = 1));
    expect_ok(c, "<html><body>policy</body></html>\n", "text/html");
    free(c);
}

static void t_user_agent(void **state)
{
    struct call *c = fetch(*state, F(.path = "/ua"));
    expect_ok(c, "mxguard/" MXG_VERSION, "text/plain");
    free(c);
}

/* A body of exactly max_body bytes passes, announced or chunked. */
static void t_body_at_limit(void **state)
{
    size_t n = strlen(POLICY);
    struct call *c = fetch(*state, F(.path = "/ok", .max_body = n));
    expect_ok(c, POLICY, NULL);
    free(c);
    c = fetch(*state, F(.path = "/chunked-ok", .max_body = n));
    expect_ok(c, POLICY, NULL);
    free(c);
}

/* IPv6 address (in brackets in CURLOPT_RESOLVE) first, then the IPv4 one:
 * nothing serves [::1]:8443, so the fetch succeeds over the second. */
static void t_ipv6_then_ipv4(void **state)
{
    struct env *e = *state;
    struct sockaddr_storage ss[2];
    addr6(&ss[0], "::1", PORT);
    addr4(&ss[1], ADDR, PORT);
    struct mxg_https_opts o = { HOST, PORT, "/ok", ss, 2, 3000, 8000, 0, "text/plain", NULL };
    struct call *c = calloc(1, sizeof *c);
    assert_non_null(c);
    struct mxg_https_req *rq = NULL;
    assert_int_equal(mxg_https_get(e->h, &o, on_result, c, &rq), 0);
    assert_int_equal(c->n, 0);
    assert_true(hfx_run_until(&e->loop, &c->n, 1, GUARD_MS));
    expect_ok(c, POLICY, "text/plain");
    free(c);
}

/* ------------------------------------------------------------------------ */
/* Tests: HTTP-level failures                                               */

static void t_html(void **state)
{
    struct call *c = fetch(*state, F(.path = "/html"));
    expect_fail(c, MXG_HTTPS_ERR_CTYPE, 200);
    assert_string_equal(c->r.ctype, "text/html");
    free(c);
}

static void t_missing_ctype(void **state)
{
    struct call *c = fetch(*state, F(.path = "/empty-ctype"));
    expect_fail(c, MXG_HTTPS_ERR_CTYPE, 200);
    assert_string_equal(c->r.ctype, "");
    free(c);
}

static void t_redirect(void **state)
{
    struct call *c = fetch(*state, F(.path = "/redirect"));
    expect_fail(c, MXG_HTTPS_ERR_STATUS, 301);
    assert_string_equal(c->r.why, "HTTP 301 (redirects are not followed)");
    free(c);
}

static void t_404(void **state)
{
    struct call *c = fetch(*state, F(.path = "/404"));
    expect_fail(c, MXG_HTTPS_ERR_STATUS, 404);
    assert_string_equal(c->r.why, "HTTP 404");
    free(c);
}

static void t_big_announced(void **state)
{
    struct call *c = fetch(*state, F(.path = "/big", .max_body = 65536));
    expect_fail(c, MXG_HTTPS_ERR_TOO_BIG, 200);
    assert_string_equal(c->r.why, "announced Content-Length over the 65536-byte limit");
    free(c);
}

static void t_big_chunked(void **state)
{
    struct call *c = fetch(*state, F(.path = "/chunked-big", .max_body = 65536));
    expect_fail(c, MXG_HTTPS_ERR_TOO_BIG, 200);
    assert_string_equal(c->r.why, "body over the 65536-byte limit");
    free(c);
}

static void t_one_over_limit(void **state)
{
    size_t n = strlen(POLICY) - 1;
    struct call *c = fetch(*state, F(.path = "/ok", .max_body = n));
    expect_fail(c, MXG_HTTPS_ERR_TOO_BIG, 200);
    free(c);
    c = fetch(*state, F(.path = "/chunked-ok", .max_body = n));
    expect_fail(c, MXG_HTTPS_ERR_TOO_BIG, 200);
    free(c);
}

static void t_slow_timeout(void **state)
{
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    struct call *c = fetch(*state, F(.path = "/slow", .total_ms = 1000));
    clock_gettime(CLOCK_MONOTONIC, &t1);
    expect_fail(c, MXG_HTTPS_ERR_TIMEOUT, 0);
    double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    assert_true(s >= 0.9 && s < 2.9);
    free(c);
}

/* ------------------------------------------------------------------------ */
/* Tests: transport and certificate failures                                */

static void t_wrong_name(void **state)
{
    struct call *c = fetch(*state, F(.host = "wrong.example.test", .path = "/ok"));
    expect_fail(c, MXG_HTTPS_ERR_WEBPKI, 0);
    assert_non_null(strstr(c->r.why, "wrong.example.test"));
    free(c);
}

static void t_expired(void **state)
{
    struct call *c = fetch(*state, F(.host = "expired.example.test", .path = "/ok"));
    expect_fail(c, MXG_HTTPS_ERR_WEBPKI, 0);
    assert_non_null(strstr(c->r.why, "expired"));
    free(c);
}

static void t_system_store(void **state)
{
    struct env *e = *state;
    char err[256];
    mxg_https_free(e->h);
    e->h = mxg_https_new(&e->loop, NULL, err, sizeof err);
    assert_non_null(e->h);
    struct call *c = fetch(e, F(.path = "/ok"));
    expect_fail(c, MXG_HTTPS_ERR_WEBPKI, 0);
    assert_non_null(strstr(c->r.why, "unable to get local issuer certificate"));
    free(c);
}

static void t_connect_refused(void **state)
{
    struct call *c = fetch(*state, F(.port = DEAD_PORT, .path = "/ok"));
    expect_fail(c, MXG_HTTPS_ERR_CONNECT, 0);
    free(c);
}

static void t_not_tls(void **state)
{
    struct call *c = fetch(*state, F(.port = PLAIN_PORT, .path = "/ok"));
    expect_fail(c, MXG_HTTPS_ERR_TLS, 0);
    free(c);
}

static void t_bad_ca_file(void **state)
{
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    char err[256] = "";
    assert_null(mxg_https_new(&loop, "/nonexistent/ca.pem", err, sizeof err));
    assert_non_null(strstr(err, "/nonexistent/ca.pem"));
    assert_null(mxg_https_new(NULL, NULL, err, sizeof err));
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void t_bad_options(void **state)
{
    struct env *e = *state;
    struct sockaddr_storage ss, unix_ss;
    addr4(&ss, ADDR, PORT);
    memset(&unix_ss, 0, sizeof unix_ss);
    unix_ss.ss_family = AF_UNIX;
    const struct mxg_https_opts good = { HOST, PORT, "/ok", &ss, 1, 3000, 8000, 0, NULL, NULL };
    struct mxg_https_opts bad[9];
    for (int i = 0; i < 9; i++)
        bad[i] = good;
    bad[0].host = NULL;
    bad[1].host = "";
    bad[2].host = "evil.test:1:127.0.0.1";
    bad[3].port = 0;
    bad[4].path = "ok";
    bad[5].path = "/a b";
    bad[6].n_addrs = 0;
    bad[7].addrs = NULL;
    bad[8].addrs = &unix_ss;
    struct call c = { 0 };
    for (int i = 0; i < 9; i++) {
        struct mxg_https_req *rq = (struct mxg_https_req *)&c;
        assert_int_equal(mxg_https_get(e->h, &bad[i], on_result, &c, &rq), -1);
        assert_null(rq);
    }
    assert_int_equal(mxg_https_get(e->h, &good, NULL, &c, NULL), -1);
    assert_int_equal(mxg_https_get(NULL, &good, on_result, &c, NULL), -1);
    assert_int_equal(mxg_https_get(e->h, NULL, on_result, &c, NULL), -1);
    int dummy = 0;
    hfx_run_until(&e->loop, &dummy, 1, 200);
    assert_int_equal(c.n, 0);
}

/* ------------------------------------------------------------------------ */
/* Tests: concurrency, cancellation, teardown                               */

static void t_concurrent(void **state)
{
    struct env *e = *state;
    struct call *a = calloc(1, sizeof *a), *b = calloc(1, sizeof *b), *d = calloc(1, sizeof *d);
    assert_true(a && b && d);
    start(e, F(.path = "/ok"), a);
    start(e, F(.path = "/404"), b);
    start(e, F(.path = "/chunked-ok"), d);
    int total = 0;
    for (int i = 0; i < 3000 && total < 3; i++) {
        uv_run(&e->loop, UV_RUN_ONCE);
        total = a->n + b->n + d->n;
    }
    assert_int_equal(a->n, 1);
    assert_int_equal(b->n, 1);
    assert_int_equal(d->n, 1);
    expect_ok(a, POLICY, "text/plain");
    expect_fail(b, MXG_HTTPS_ERR_STATUS, 404);
    expect_ok(d, POLICY, "text/plain");
    free(a);
    free(b);
    free(d);
}

static void t_cancel_before_start(void **state)
{
    struct env *e = *state;
    struct call c = { 0 };
    struct mxg_https_req *rq = start(e, F(.path = "/ok"), &c);
    mxg_https_cancel(rq);
    hfx_run_until(&e->loop, &c.n, 1, 500);
    assert_int_equal(c.n, 0);
}

static void t_cancel_in_flight(void **state)
{
    struct env *e = *state;
    struct call c = { 0 };
    struct mxg_https_req *rq = start(e, F(.path = "/slow", .total_ms = 8000), &c);
    hfx_run_until(&e->loop, &c.n, 1, 400); /* connected, request sent, server sleeping */
    assert_int_equal(c.n, 0);
    mxg_https_cancel(rq);
    hfx_run_until(&e->loop, &c.n, 1, 400);
    assert_int_equal(c.n, 0);
    /* the module still works afterwards */
    struct call *d = fetch(e, F(.path = "/ok"));
    expect_ok(d, POLICY, NULL);
    free(d);
}

static void t_free_with_pending(void **state)
{
    struct env *e = *state;
    struct call a = { 0 }, b = { 0 };
    start(e, F(.path = "/slow", .total_ms = 8000), &a);
    start(e, F(.path = "/ok"), &b);
    hfx_run_until(&e->loop, &a.n, 1, 100);
    mxg_https_free(e->h);
    e->h = NULL;
    hfx_run_until(&e->loop, &a.n, 1, 300);
    assert_int_equal(a.n, 0);
    assert_true(b.n <= 1); /* /ok may have finished within the first 100 ms */
}

static void t_free_from_callback(void **state)
{
    struct env *e = *state;
    struct call a = { 0 }, b = { 0 };
    a.env = e;
    a.free_module = 1;
    start(e, F(.path = "/slow", .total_ms = 8000), &b);
    start(e, F(.path = "/ok"), &a);
    assert_true(hfx_run_until(&e->loop, &a.n, 1, GUARD_MS));
    assert_null(e->h);
    hfx_run_until(&e->loop, &b.n, 1, 300);
    assert_int_equal(b.n, 0);
}

static void t_cancel_from_callback(void **state)
{
    struct env *e = *state;
    struct call a = { 0 }, b = { 0 };
    a.env = e;
    a.cancel_other = start(e, F(.path = "/slow", .total_ms = 8000), &b);
    start(e, F(.path = "/ok"), &a);
    assert_true(hfx_run_until(&e->loop, &a.n, 1, GUARD_MS));
    hfx_run_until(&e->loop, &b.n, 1, 300);
    assert_int_equal(b.n, 0);
}

static void t_get_from_callback(void **state)
{
    struct env *e = *state;
    struct call *a = calloc(1, sizeof *a), *b = calloc(1, sizeof *b);
    assert_true(a && b);
    a->env = e;
    a->chain = b;
    start(e, F(.path = "/404"), a);
    assert_true(hfx_run_until(&e->loop, &a->n, 1, GUARD_MS));
    assert_true(hfx_run_until(&e->loop, &b->n, 1, GUARD_MS));
    expect_fail(a, MXG_HTTPS_ERR_STATUS, 404);
    expect_ok(b, POLICY, "text/plain");
    free(a);
    free(b);
}

static void t_err_names(void **state)
{
    (void)state;
    assert_string_equal(mxg_https_err_name(MXG_HTTPS_OK), "ok");
    assert_string_equal(mxg_https_err_name(MXG_HTTPS_ERR_WEBPKI), "webpki");
    assert_string_equal(mxg_https_err_name(MXG_HTTPS_ERR_TOO_BIG), "too-big");
    assert_string_equal(mxg_https_err_name((enum mxg_https_err)99), "?");
}

#define T(f) cmocka_unit_test_setup_teardown(f, env_setup, env_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_err_names),
        cmocka_unit_test(t_bad_ca_file),
        T(t_ok),
        T(t_chunked_ok),
        T(t_charset_param),
        T(t_media_type_case_insensitive),
        T(t_any_ctype),
        T(t_user_agent),
        T(t_body_at_limit),
        T(t_ipv6_then_ipv4),
        T(t_html),
        T(t_missing_ctype),
        T(t_redirect),
        T(t_404),
        T(t_big_announced),
        T(t_big_chunked),
        T(t_one_over_limit),
        T(t_slow_timeout),
        T(t_wrong_name),
        T(t_expired),
        T(t_system_store),
        T(t_connect_refused),
        T(t_not_tls),
        T(t_bad_options),
        T(t_concurrent),
        T(t_cancel_before_start),
        T(t_cancel_in_flight),
        T(t_free_with_pending),
        T(t_free_from_callback),
        T(t_cancel_from_callback),
        T(t_get_from_callback),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
