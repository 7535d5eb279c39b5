/* tests/unit/test_report_send.c — report/rpt_send.c: TLSRPT delivery over
 * HTTPS against tests/unit/https_server.py (tests/unit/https_fixture.h:
 * test CA, a certificate for report.example.test, POSTs recorded on disk)
 * with a fake resolver (mxg_rpt_sender_set_resolver: TXT answers from a
 * table, the URL host → the server's address; answers come from a 0 ms uv
 * timer, like real DNS, and can be held back to test cancellation).
 *
 * Checked: one POST per https rua with Content-Type application/tlsrpt+gzip
 * whose body gunzips to the RFC 8460 JSON of what was recorded; the
 * delivery rows (sent; 500 → attempts 1 + next_attempt_at in the future;
 * max attempts → gave-up; sent / gave-up rows are not sent again); mailto
 * → gave-up "skipped" row, no POST; send_day with TXT / without TXT; the
 * scheduler sends a past day (random delay) and retries due rows until it
 * gives up, and leaves today alone; callbacks never synchronous; free with
 * work in flight gives no callback, leaks nothing, closes every handle.
 * The fleet gate (a fake, answering from a 0 ms timer): only a MINE rua is
 * POSTed, with the fleet's counts (not the local ones) and the fleet's
 * report-id, and marked done; SENT closes the row "sent by the fleet", HELD
 * leaves it pending until the lease has run out; a gate that cannot reach
 * its store sends nothing (rows pending, no attempt counted). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <jansson.h>
#include <zlib.h>

#include "dns/dns.h"
#include "https_fixture.h"
#include "http/https.h"
#include "report/tlsrpt.h"

#define ADDR "127.0.70.242" /* reserved for this test */
#define RHOST "report.example.test"
#define DAY "2024-03-01"
#define T0 1709294400 /* 2024-03-01T12:00:00Z */
#define GUARD_MS 15000

static struct hfx srv;
static uv_loop_t *cur_loop; /* the running test's loop */

static int group_setup(void **state)
{
    (void)state;
    return hfx_start(&srv, ADDR, RHOST);
}

static int group_teardown(void **state)
{
    (void)state;
    hfx_stop(&srv);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Fake resolver                                                            */

struct fq {
    uv_timer_t t;
    struct env *e;
    int is_txt;
    char name[MXG_DNS_NAME_MAX];
    void (*txt_cb)(void *arg, const struct mxg_txt_result *res);
    void (*addr_cb)(void *arg, const struct mxg_addr_result *res);
    void *arg;
};

struct env {
    uv_loop_t loop;
    char dir[128], db[200];
    struct mxg_rpt *r;
    struct mxg_https *h;
    struct mxg_rpt_sender *s;
    int hold;          /* fake DNS: do not answer */
    int queries, live; /* started; not yet answered or cancelled */
    const char *txt_name[4], *txt_value[4]; /* TXT table */
    int txt_fail;      /* the next txt_fail TXT lookups fail (TEMPFAIL) */
};

static void fq_closed(uv_handle_t *h)
{
    free(h->data);
}

static void fq_fire(uv_timer_t *t)
{
    struct fq *q = t->data;
    struct env *e = q->e;
    e->live--;
    if (q->is_txt) {
        struct mxg_txt_result *res = calloc(1, sizeof *res);
        char *txt[1];
        size_t len[1];
        assert_non_null(res);
        res->status = MXG_DNS_NXDOMAIN;
        if (e->txt_fail > 0) { /* e.g. an RRset dns.c could not keep whole */
            e->txt_fail--;
            res->status = MXG_DNS_TEMPFAIL;
            snprintf(res->why, sizeof res->why, "out of memory keeping the records");
        }
        for (int i = 0; i < 4 && res->status != MXG_DNS_TEMPFAIL; i++)
            if (e->txt_name[i] && strcmp(e->txt_name[i], q->name) == 0) {
                res->status = MXG_DNS_OK;
                txt[0] = (char *)(uintptr_t)e->txt_value[i];
                len[0] = strlen(txt[0]);
                res->txt = txt;
                res->len = len;
                res->n = 1;
            }
        q->txt_cb(q->arg, res);
        free(res);
    } else {
        struct mxg_addr_result res;
        memset(&res, 0, sizeof res);
        if (strcmp(q->name, RHOST) == 0) {
            res.status = MXG_DNS_OK;
            res.n = 1;
            hfx_addr4(&res.addr[0], ADDR, 0);
        } else {
            res.status = MXG_DNS_NXDOMAIN;
            snprintf(res.why, sizeof res.why, "no such host");
        }
        q->addr_cb(q->arg, &res);
    }
    uv_close((uv_handle_t *)&q->t, fq_closed);
}

static struct fq *fq_new(struct env *e, const char *name, void *arg)
{
    struct fq *q = calloc(1, sizeof *q);
    assert_non_null(q);
    q->e = e;
    q->arg = arg;
    snprintf(q->name, sizeof q->name, "%s", name);
    uv_timer_init(&e->loop, &q->t);
    q->t.data = q;
    if (!e->hold)
        uv_timer_start(&q->t, fq_fire, 0, 0);
    e->queries++;
    e->live++;
    return q;
}

static int fake_txt(void *ctx, const char *name,
                    void (*cb)(void *arg, const struct mxg_txt_result *res), void *arg, void **q)
{
    struct fq *f = fq_new(ctx, name, arg);
    f->is_txt = 1;
    f->txt_cb = cb;
    *q = f;
    return 0;
}

static int fake_addr(void *ctx, const char *host,
                     void (*cb)(void *arg, const struct mxg_addr_result *res), void *arg,
                     void **q)
{
    struct fq *f = fq_new(ctx, host, arg);
    f->addr_cb = cb;
    *q = f;
    return 0;
}

static void fake_cancel(void *ctx, void *q)
{
    struct fq *f = q;
    ((struct env *)ctx)->live--;
    uv_timer_stop(&f->t);
    uv_close((uv_handle_t *)&f->t, fq_closed);
}

/* ------------------------------------------------------------------------ */
/* Environment                                                              */

static const struct mxg_rpt_org ORG = { "Example Org", "mailto:tlsrpt@example.org",
                                        "mx-out.example.org" };

static void record(struct env *e, const char *domain, int ok, int fail, int64_t when)
{
    struct mxg_rpt_policy p = { MXG_RPT_STS, domain, "version: STSv1\nmode: enforce",
                                "mx.example.com" };
    struct mxg_rpt_result good = { .success = 1 };
    struct mxg_rpt_result bad = { .result_type = MXG_RPT_R_CERT_EXPIRED,
                                  .receiving_mx_hostname = "mx.example.com",
                                  .receiving_ip = "192.0.2.1" };
    for (int i = 0; i < ok; i++)
        mxg_rpt_record(e->r, &p, &good, when);
    for (int i = 0; i < fail; i++)
        mxg_rpt_record(e->r, &p, &bad, when);
    assert_int_equal(mxg_rpt_flush(e->r), 0);
}

static struct mxg_rpt_sender *make_sender(struct env *e, int max_attempts, uint64_t base_s)
{
    struct mxg_rpt_sender *s = mxg_rpt_sender_new(&e->loop, e->r, NULL, e->h, &ORG, srv.port);
    assert_non_null(s);
    struct mxg_rpt_resolver res = { fake_txt, fake_addr, fake_cancel, e };
    mxg_rpt_sender_set_resolver(s, &res);
    struct mxg_rpt_send_cfg cfg = { .backoff_base_s = base_s, .backoff_max_s = 3600,
                                    .max_attempts = max_attempts,
                                    .connect_timeout_ms = 3000, .total_timeout_ms = 8000 };
    mxg_rpt_sender_configure(s, &cfg);
    return s;
}

static int env_setup(void **state)
{
    struct env *e = calloc(1, sizeof *e);
    assert_non_null(e);
    assert_int_equal(uv_loop_init(&e->loop), 0);
    cur_loop = &e->loop;
    snprintf(e->dir, sizeof e->dir, "/tmp/mxg-rpt-send-XXXXXX");
    assert_non_null(mkdtemp(e->dir));
    snprintf(e->db, sizeof e->db, "%s/tlsrpt.db", e->dir);
    char err[256];
    e->r = mxg_rpt_open(NULL, e->db, 0, err, sizeof err);
    assert_non_null(e->r);
    e->h = mxg_https_new(&e->loop, srv.ca, err, sizeof err);
    assert_non_null(e->h);
    e->s = make_sender(e, 3, 60);
    *state = e;
    return 0;
}

static int env_teardown(void **state)
{
    struct env *e = *state;
    mxg_rpt_sender_free(e->s);
    mxg_https_free(e->h);
    int rc = hfx_loop_close(&e->loop);
    assert_int_equal(e->live, 0);
    mxg_rpt_close(e->r);
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", e->dir);
    assert_int_equal(system(cmd), 0);
    free(e);
    assert_int_equal(rc, 0);
    return 0;
}

struct done {
    int n;
    struct mxg_rpt_send_stats st;
};

/* uv_stop: a done callback can run from the timers at the top of a
 * UV_RUN_ONCE iteration, which would then block in poll until the guard. */
static void on_done(void *arg, const struct mxg_rpt_send_stats *st)
{
    struct done *d = arg;
    d->n++;
    d->st = *st;
    uv_stop(cur_loop);
}

static void send_domain(struct env *e, const char *domain, const char ruas[][MXG_RPT_RUA_MAX],
                        int n, struct done *d)
{
    memset(d, 0, sizeof *d);
    assert_int_equal(mxg_rpt_send_domain(e->s, DAY, domain, ruas, n, on_done, d), 0);
    assert_int_equal(d->n, 0); /* never synchronous */
    assert_true(hfx_run_until(&e->loop, &d->n, 1, GUARD_MS));
    uv_run(&e->loop, UV_RUN_NOWAIT);
    assert_int_equal(d->n, 1);
}

struct rows {
    int n;
    struct mxg_rpt_delivery d[8];
};

static void rows_fn(void *arg, const struct mxg_rpt_delivery *d)
{
    struct rows *r = arg;
    if (r->n < 8)
        r->d[r->n++] = *d;
}

static const struct mxg_rpt_delivery *row(struct env *e, struct rows *r, const char *rua)
{
    memset(r, 0, sizeof *r);
    assert_true(mxg_rpt_delivery_list(e->r, -1, 0, rows_fn, r) >= 0);
    for (int i = 0; i < r->n; i++)
        if (strcmp(r->d[i].rua, rua) == 0)
            return &r->d[i];
    fail_msg("no row for %s", rua);
    return NULL;
}

static char *gunzip(const char *in, size_t len)
{
    size_t cap = 1 << 20;
    char *out = calloc(1, cap);
    assert_non_null(out);
    z_stream z;
    memset(&z, 0, sizeof z);
    assert_int_equal(inflateInit2(&z, 15 + 16), Z_OK);
    z.next_in = (Bytef *)(uintptr_t)in;
    z.avail_in = (uInt)len;
    z.next_out = (Bytef *)out;
    z.avail_out = (uInt)(cap - 1);
    assert_int_equal(inflate(&z, Z_FINISH), Z_STREAM_END);
    inflateEnd(&z);
    return out;
}

/* POST number n must be a gzipped report for domain with ok/fail counts. */
static void check_post(int n, const char *path, const char *domain, int ok, int fail)
{
    char *body = NULL, p[256], ct[256];
    size_t len = 0;
    assert_int_equal(hfx_post(&srv, n, &body, &len, p, sizeof p, ct, sizeof ct), 0);
    assert_string_equal(p, path);
    assert_string_equal(ct, "application/tlsrpt+gzip");
    char *text = gunzip(body, len);
    free(body);
    json_error_t je;
    json_t *j = json_loads(text, 0, &je);
    if (j == NULL)
        fail_msg("not JSON: %s: %s", je.text, text);
    free(text);
    assert_string_equal(json_string_value(json_object_get(j, "organization-name")),
                        "Example Org");
    json_t *pols = json_object_get(j, "policies");
    assert_int_equal(json_array_size(pols), 1);
    json_t *pol = json_array_get(pols, 0);
    json_t *pp = json_object_get(pol, "policy");
    assert_string_equal(json_string_value(json_object_get(pp, "policy-domain")), domain);
    assert_string_equal(json_string_value(json_object_get(pp, "policy-type")), "sts");
    json_t *sum = json_object_get(pol, "summary");
    assert_int_equal(json_integer_value(json_object_get(sum, "total-successful-session-count")),
                     ok);
    assert_int_equal(json_integer_value(json_object_get(sum, "total-failure-session-count")),
                     fail);
    json_decref(j);
}

/* ------------------------------------------------------------------------ */
/* Tests                                                                    */

static void t_send_ok(void **state)
{
    struct env *e = *state;
    record(e, "example.com", 3, 2, T0);
    int before = hfx_post_count(&srv);
    static const char ruas[][MXG_RPT_RUA_MAX] = { "https://" RHOST "/post/200/tlsrpt" };
    struct done d;
    send_domain(e, "example.com", ruas, 1, &d);
    assert_int_equal(d.st.sent, 1);
    assert_int_equal(d.st.retry + d.st.gave_up + d.st.errors + d.st.skipped, 0);
    assert_int_equal(hfx_post_count(&srv), before + 1);
    check_post(before + 1, "/post/200/tlsrpt", "example.com", 3, 2);
    struct rows rs;
    const struct mxg_rpt_delivery *r = row(e, &rs, ruas[0]);
    assert_int_equal(r->status, MXG_RPT_SENT);
    assert_int_equal(r->attempts, 1);
    assert_string_equal(r->last_error, "");

    /* sent rows are not sent again */
    send_domain(e, "example.com", ruas, 1, &d);
    assert_int_equal(d.st.already, 1);
    assert_int_equal(d.st.sent, 0);
    assert_int_equal(hfx_post_count(&srv), before + 1);
}

static void t_send_500_then_gave_up(void **state)
{
    struct env *e = *state;
    mxg_rpt_sender_free(e->s);
    e->s = make_sender(e, 2, 60);
    record(e, "example.net", 1, 0, T0);
    static const char ruas[][MXG_RPT_RUA_MAX] = { "https://" RHOST "/post/500" };
    int before = hfx_post_count(&srv);
    struct done d;
    send_domain(e, "example.net", ruas, 1, &d);
    assert_int_equal(d.st.retry, 1);
    assert_int_equal(d.st.sent, 0);
    assert_int_equal(hfx_post_count(&srv), before + 1);
    struct rows rs;
    const struct mxg_rpt_delivery *r = row(e, &rs, ruas[0]);
    assert_int_equal(r->status, MXG_RPT_PENDING);
    assert_int_equal(r->attempts, 1);
    assert_true(r->next_attempt_at >= (int64_t)time(NULL) + 59);
    assert_string_equal(r->last_error, "HTTP 500");

    send_domain(e, "example.net", ruas, 1, &d); /* explicit: ignores next_attempt_at */
    assert_int_equal(d.st.gave_up, 1);
    r = row(e, &rs, ruas[0]);
    assert_int_equal(r->status, MXG_RPT_GAVE_UP);
    assert_int_equal(r->attempts, 2);

    send_domain(e, "example.net", ruas, 1, &d);
    assert_int_equal(d.st.already, 1);
    assert_int_equal(hfx_post_count(&srv), before + 2);
}

static void t_mailto_skipped(void **state)
{
    struct env *e = *state;
    record(e, "example.org", 2, 1, T0);
    static const char ruas[][MXG_RPT_RUA_MAX] = { "mailto:tlsrpt@example.org",
                                                  "https://" RHOST "/post/202" };
    int before = hfx_post_count(&srv);
    struct done d;
    send_domain(e, "example.org", ruas, 2, &d);
    assert_int_equal(d.st.skipped, 1);
    assert_int_equal(d.st.sent, 1);
    assert_int_equal(hfx_post_count(&srv), before + 1);
    check_post(before + 1, "/post/202", "example.org", 2, 1);
    struct rows rs;
    const struct mxg_rpt_delivery *r = row(e, &rs, ruas[0]);
    assert_int_equal(r->status, MXG_RPT_GAVE_UP);
    assert_int_equal(r->attempts, 0);
    assert_non_null(strstr(r->last_error, "skipped: no DKIM key")); /* no mailer set either */
}

static void t_dns_failure_counts_attempt(void **state)
{
    struct env *e = *state;
    record(e, "example.com", 1, 0, T0);
    static const char ruas[][MXG_RPT_RUA_MAX] = { "https://nowhere.example.test/x",
                                                  "https://bad host/" };
    struct done d;
    send_domain(e, "example.com", ruas, 2, &d);
    assert_int_equal(d.st.retry, 1);
    assert_int_equal(d.st.skipped, 1);
    struct rows rs;
    const struct mxg_rpt_delivery *r = row(e, &rs, ruas[0]);
    assert_int_equal(r->attempts, 1);
    assert_non_null(strstr(r->last_error, "DNS"));
}

static void t_send_day(void **state)
{
    struct env *e = *state;
    record(e, "example.com", 4, 0, T0);
    record(e, "no-txt.example", 1, 1, T0);
    record(e, "bad-txt.example", 1, 0, T0);
    record(e, "example.com", 9, 9, T0 + 86400); /* another day: not sent */
    e->txt_name[0] = "_smtp._tls.example.com";
    e->txt_value[0] = "v=TLSRPTv1; rua=https://" RHOST "/post/200/day,mailto:r@example.com";
    e->txt_name[1] = "_smtp._tls.bad-txt.example";
    e->txt_value[1] = "v=TLSRPTv1; ruf=x";
    int before = hfx_post_count(&srv);
    struct done d = { 0 };
    assert_int_equal(mxg_rpt_send_day(e->s, DAY, on_done, &d), 0);
    assert_int_equal(d.n, 0);
    assert_true(hfx_run_until(&e->loop, &d.n, 1, GUARD_MS));
    assert_int_equal(d.st.domains, 3);
    assert_int_equal(d.st.no_txt, 2);
    assert_int_equal(d.st.sent, 1);
    assert_int_equal(d.st.skipped, 1);
    assert_int_equal(hfx_post_count(&srv), before + 1);
    check_post(before + 1, "/post/200/day", "example.com", 4, 0);
    struct rows rs;
    memset(&rs, 0, sizeof rs);
    assert_int_equal(mxg_rpt_delivery_list(e->r, -1, 0, rows_fn, &rs), 2);

    /* bad arguments: no callback */
    assert_int_equal(mxg_rpt_send_day(e->s, "2024-13-01", on_done, &d), MXG_RPT_EINVAL);
    assert_int_equal(mxg_rpt_send_day(e->s, DAY, NULL, &d), MXG_RPT_EINVAL);
}

static void t_nothing_to_do_is_async(void **state)
{
    struct env *e = *state;
    struct done d = { 0 };
    assert_int_equal(mxg_rpt_send_day(e->s, DAY, on_done, &d), 0); /* no counters at all */
    assert_int_equal(d.n, 0);
    assert_true(hfx_run_until(&e->loop, &d.n, 1, GUARD_MS));
    assert_int_equal(d.st.domains, 0);
    assert_int_equal(mxg_rpt_send_domain(e->s, DAY, "example.com", NULL, 0, on_done, &d), 0);
    assert_int_equal(d.n, 1);
    assert_true(hfx_run_until(&e->loop, &d.n, 2, GUARD_MS));
}

static void t_free_in_flight(void **state)
{
    struct env *e = *state;
    record(e, "example.com", 1, 0, T0);
    e->txt_name[0] = "_smtp._tls.example.com";
    e->txt_value[0] = "v=TLSRPTv1; rua=https://" RHOST "/post/200";
    struct done d1 = { 0 }, d2 = { 0 };
    e->hold = 1; /* lookups never answer */
    assert_int_equal(mxg_rpt_send_day(e->s, DAY, on_done, &d1), 0);
    static const char ruas[][MXG_RPT_RUA_MAX] = { "https://" RHOST "/post/200" };
    assert_int_equal(mxg_rpt_send_domain(e->s, DAY, "example.com", ruas, 1, on_done, &d2), 0);
    uv_run(&e->loop, UV_RUN_NOWAIT);
    assert_int_equal(e->live, 2);
    mxg_rpt_sender_free(e->s);
    e->s = NULL;
    for (int i = 0; i < 10; i++)
        uv_run(&e->loop, UV_RUN_NOWAIT);
    assert_int_equal(e->live, 0);
    assert_int_equal(d1.n + d2.n, 0);
}

/* mxg_rpt_sender_free from inside a done callback. */
static void on_done_free(void *arg, const struct mxg_rpt_send_stats *st)
{
    struct env *e = arg;
    (void)st;
    mxg_rpt_sender_free(e->s);
    e->s = NULL;
}

static void t_free_from_callback(void **state)
{
    struct env *e = *state;
    struct done d = { 0 };
    assert_int_equal(mxg_rpt_send_day(e->s, DAY, on_done_free, e), 0);
    assert_int_equal(mxg_rpt_send_day(e->s, DAY, on_done, &d), 0);
    for (int i = 0; i < 10 && e->s; i++)
        uv_run(&e->loop, UV_RUN_ONCE);
    assert_null(e->s);
    uv_run(&e->loop, UV_RUN_NOWAIT);
    assert_int_equal(d.n, 0);
}

static void t_scheduler(void **state)
{
    struct env *e = *state;
    mxg_rpt_sender_free(e->s);
    e->s = make_sender(e, 2, 1); /* backoff 1 s, give up after 2 attempts */
    int64_t now = (int64_t)time(NULL);
    record(e, "example.com", 5, 1, now - 86400);   /* yesterday: sent */
    record(e, "example.net", 1, 0, now - 86400);   /* yesterday: 500, retried, gives up */
    record(e, "no-txt.example", 1, 0, now - 86400); /* no TXT: nothing, looked up once */
    record(e, "today.example", 1, 0, now);          /* today: not yet */
    e->txt_name[0] = "_smtp._tls.example.com";
    e->txt_value[0] = "v=TLSRPTv1; rua=https://" RHOST "/post/200/sched";
    e->txt_name[1] = "_smtp._tls.example.net";
    e->txt_value[1] = "v=TLSRPTv1; rua=https://" RHOST "/post/500/sched";
    e->txt_name[2] = "_smtp._tls.today.example";
    e->txt_value[2] = "v=TLSRPTv1; rua=https://" RHOST "/post/200/today";
    int before = hfx_post_count(&srv);
    assert_int_equal(mxg_rpt_sender_start(e->s, 200, 300), 0);
    assert_int_equal(mxg_rpt_sender_start(e->s, 200, 300), MXG_RPT_EINVAL);

    /* 1 POST to example.com, 2 to example.net (first + one retry) */
    int posts = 0, fired = 0;
    uv_timer_t guard;
    uv_timer_init(&e->loop, &guard);
    guard.data = &fired;
    uv_timer_start(&guard, hfx_on_guard, 10000, 0);
    struct rows rs;
    for (;;) {
        uv_run(&e->loop, UV_RUN_ONCE);
        posts = hfx_post_count(&srv) - before;
        if (fired)
            break;
        if (posts >= 3) {
            const struct mxg_rpt_delivery *r =
                row(e, &rs, "https://" RHOST "/post/500/sched");
            if (r->status == MXG_RPT_GAVE_UP)
                break;
        }
    }
    /* a little longer: nothing more may happen */
    uv_timer_start(&guard, hfx_on_guard, 1500, 0);
    fired = 0;
    while (!fired)
        uv_run(&e->loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&guard, NULL);
    assert_int_equal(hfx_post_count(&srv) - before, 3);

    const struct mxg_rpt_delivery *r = row(e, &rs, "https://" RHOST "/post/200/sched");
    assert_int_equal(r->status, MXG_RPT_SENT);
    assert_int_equal(r->attempts, 1);
    r = row(e, &rs, "https://" RHOST "/post/500/sched");
    assert_int_equal(r->status, MXG_RPT_GAVE_UP);
    assert_int_equal(r->attempts, 2);
    assert_int_equal(rs.n, 2); /* nothing for today, nothing for no-txt */
    /* TXT asked once per (day, domain) of yesterday — not for today */
    assert_int_equal(e->queries, 3 /* TXT */ + 3 /* addr */);
}

/* docs/ARCHITECTURE.md §Limits: a failed _smtp._tls TXT lookup (TEMPFAIL, as for
 * an RRset dns.c cannot keep whole) is never "the domain wants no
 * reports": the scheduler asks again at a later tick and the report goes
 * out once the lookup succeeds. */
static void t_scheduler_txt_failure(void **state)
{
    struct env *e = *state;
    mxg_rpt_sender_free(e->s);
    e->s = make_sender(e, 2, 1);
    int64_t now = (int64_t)time(NULL);
    record(e, "flaky.example", 1, 0, now - 86400); /* yesterday */
    e->txt_name[0] = "_smtp._tls.flaky.example";
    e->txt_value[0] = "v=TLSRPTv1; rua=https://" RHOST "/post/200/flaky";
    e->txt_fail = 2;
    int before = hfx_post_count(&srv);
    assert_int_equal(mxg_rpt_sender_start(e->s, 100, 50), 0);
    int fired = 0;
    uv_timer_t guard;
    uv_timer_init(&e->loop, &guard);
    guard.data = &fired;
    uv_timer_start(&guard, hfx_on_guard, 10000, 0);
    while (!fired && hfx_post_count(&srv) == before)
        uv_run(&e->loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&guard, NULL);
    assert_int_equal(fired, 0);
    assert_int_equal(e->txt_fail, 0); /* both failures were asked again */
    struct rows rs;
    for (int i = 0; i < 100 && row(e, &rs, "https://" RHOST "/post/200/flaky")->status !=
                                   MXG_RPT_SENT; i++)
        uv_run(&e->loop, UV_RUN_ONCE);
    assert_int_equal(row(e, &rs, "https://" RHOST "/post/200/flaky")->status, MXG_RPT_SENT);
}

/* ------------------------------------------------------------------------ */
/* Fleet gate                                                               */

struct fake_gate {
    uv_timer_t t;
    int ok, n_res, claims, dones, done_gave_up;
    enum mxg_rpt_claim_res res[4];
    int64_t lease_left[4];
    const char *payload;
    char done_rua[MXG_RPT_RUA_MAX];
    mxg_rpt_claim_cb cb;
    void *arg;
};

static void gate_answer(uv_timer_t *t)
{
    struct fake_gate *g = t->data;
    struct mxg_rpt_claim c = { g->ok, "database down", "fleet-report-id-1", g->payload, g->res,
                               g->lease_left, g->n_res };
    mxg_rpt_claim_cb cb = g->cb;
    g->cb = NULL;
    cb(g->arg, &c);
}

static int gate_claim(void *ctx, const char *day, const char *domain, const char *const *ruas,
                      int n, const char *report_id, mxg_rpt_claim_cb cb, void *arg,
                      void **handle)
{
    struct fake_gate *g = ctx;
    (void)day, (void)domain, (void)ruas, (void)report_id;
    assert_int_equal(n, g->n_res);
    g->claims++;
    g->cb = cb, g->arg = arg;
    uv_timer_start(&g->t, gate_answer, 0, 0);
    *handle = g;
    return 0;
}

static void gate_cancel(void *ctx, void *handle)
{
    (void)handle;
    uv_timer_stop(&((struct fake_gate *)ctx)->t);
}

static void gate_done(void *ctx, const char *day, const char *domain, const char *rua,
                      int gave_up)
{
    struct fake_gate *g = ctx;
    (void)day, (void)domain;
    g->dones++;
    g->done_gave_up = gave_up;
    snprintf(g->done_rua, sizeof g->done_rua, "%s", rua);
}

static void t_gate(void **state)
{
    struct env *e = *state;
    static struct fake_gate g;
    memset(&g, 0, sizeof g);
    uv_timer_init(&e->loop, &g.t);
    g.t.data = &g;
    struct mxg_rpt_gate gate = { gate_claim, gate_cancel, gate_done, 120, &g };
    mxg_rpt_sender_set_gate(e->s, &gate);
    record(e, "example.info", 1, 0, T0); /* this instance's part: 1 session */
    static const char ruas[][MXG_RPT_RUA_MAX] = { "https://" RHOST "/post/200/mine",
                                                  "https://" RHOST "/post/200/sent",
                                                  "https://" RHOST "/post/200/held" };
    /* the rows are asked in the sender's order: the posts list (last rua first) */
    g.n_res = 3;
    g.res[0] = MXG_RPT_CLAIM_HELD, g.lease_left[0] = 40;
    g.res[1] = MXG_RPT_CLAIM_SENT;
    g.res[2] = MXG_RPT_CLAIM_MINE;
    g.ok = 0; /* first: the store cannot be reached */
    int before = hfx_post_count(&srv);
    struct done d;
    send_domain(e, "example.info", ruas, 3, &d);
    assert_int_equal(g.claims, 1);
    assert_int_equal(d.st.fleet, 3);
    assert_int_equal(d.st.sent, 0);
    assert_int_equal(hfx_post_count(&srv), before);
    struct rows rs;
    const struct mxg_rpt_delivery *r = row(e, &rs, ruas[0]);
    assert_int_equal(r->status, MXG_RPT_PENDING);
    assert_int_equal(r->attempts, 0);
    assert_true(r->next_attempt_at >= (int64_t)time(NULL) + 119);

    g.ok = 1; /* the fleet's counts: 7 sessions */
    g.payload = "[{\"day\":\"" DAY "\",\"ptype\":\"sts\",\"domain\":\"example.info\","
                "\"pstring\":\"version: STSv1\",\"mxhost\":\"mx.example.com\",\"ok\":7,"
                "\"fail\":0,\"details\":[]}]";
    send_domain(e, "example.info", ruas, 3, &d);
    assert_int_equal(g.claims, 2);
    assert_int_equal(d.st.sent, 1);
    assert_int_equal(d.st.fleet, 2);
    assert_int_equal(hfx_post_count(&srv), before + 1);
    check_post(before + 1, "/post/200/mine", "example.info", 7, 0);
    char *body = NULL, p[256], ct[256];
    size_t len = 0;
    assert_int_equal(hfx_post(&srv, before + 1, &body, &len, p, sizeof p, ct, sizeof ct), 0);
    char *text = gunzip(body, len);
    assert_non_null(strstr(text, "\"report-id\":\"fleet-report-id-1\""));
    free(text);
    free(body);
    assert_int_equal(g.dones, 1);
    assert_int_equal(g.done_gave_up, 0);
    assert_string_equal(g.done_rua, ruas[0]);
    r = row(e, &rs, ruas[0]);
    assert_int_equal(r->status, MXG_RPT_SENT);
    r = row(e, &rs, ruas[1]);
    assert_int_equal(r->status, MXG_RPT_SENT);
    assert_string_equal(r->last_error, "sent by the fleet");
    assert_int_equal(r->attempts, 0);
    r = row(e, &rs, ruas[2]);
    assert_int_equal(r->status, MXG_RPT_PENDING);
    assert_int_equal(r->attempts, 0);
    assert_true(r->next_attempt_at >= (int64_t)time(NULL) + 40);
    assert_true(r->next_attempt_at <= (int64_t)time(NULL) + 42);
    uv_close((uv_handle_t *)&g.t, NULL);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, env_setup, env_teardown)
    const struct CMUnitTest tests[] = {
        T(t_send_ok),         T(t_send_500_then_gave_up), T(t_mailto_skipped),
        T(t_dns_failure_counts_attempt), T(t_send_day), T(t_nothing_to_do_is_async),
        T(t_free_in_flight),  T(t_free_from_callback),    T(t_scheduler), T(t_scheduler_txt_failure),
        T(t_gate),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
