/* tests/unit/test_outbound_conncache.c — proxy/outbound/conncache: reuse
 * only under the same destination and requirement key, idle expiry, use and lifetime caps, size bounds with
 * eviction, lost connections, per-destination concurrency and rate limits,
 * the global cap, waiting (FIFO, served from the loop, deadline → LIMITED),
 * waiting for a busy connection of the same key (upstream.cache_busy_wait)
 * but not for one that will not be parked, and by at most busy_waiters legs
 * per destination and key (upstream.cache_busy_waiters),
 * cancel, shutdown. Connections are fake objects; the loop is real. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "core/metrics.h"
#include "proxy/outbound/conncache.h"

struct fake {
    int id;
    int closed, lost;
    struct mxg_cc_slot *slot;
};

/* what ops->close got, released later from a loop callback (as the leg, leg_reuse.c, does) */
static struct fake *closed_q[64];
static int n_closed;
static struct mxg_conncache *g_cc;
static uv_loop_t loop;

static void fake_close(void *conn, int lost)
{
    struct fake *f = conn;
    f->closed++;
    f->lost = lost;
    assert_true(n_closed < 64);
    closed_q[n_closed++] = f;
}

static const struct mxg_cc_ops ops = {fake_close};

/* release every connection the cache closed (their sockets are "closed") */
static void release_closed(void)
{
    for (int i = 0; i < n_closed; i++)
        mxg_conncache_release(g_cc, closed_q[i]->slot);
    n_closed = 0;
}

static struct sockaddr_storage dest(const char *ip, int port)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    if (strchr(ip, ':'))
        uv_ip6_addr(ip, port, (struct sockaddr_in6 *)&ss);
    else
        uv_ip4_addr(ip, port, (struct sockaddr_in *)&ss);
    return ss;
}

static struct mxg_cc_key key(const char *s)
{
    struct mxg_cc_key k;
    mxg_cc_key_make(NULL, s, strlen(s), &k);
    return k;
}

struct waiter {
    int called;
    struct mxg_cc_grant g;
    char why[200];
};

static void on_grant(void *arg, const struct mxg_cc_grant *g)
{
    struct waiter *w = arg;
    w->called++;
    w->g = *g;
    snprintf(w->why, sizeof w->why, "%s", g->why ? g->why : "");
}

static struct mxg_conncache_cfg base_cfg(void)
{
    struct mxg_conncache_cfg c = {
        .idle_ms = 5000, .max_idle = 100, .max_idle_per_dest = 10, .max_uses = 100,
        .lifetime_ms = 300000, .wait_ms = 1000,
    };
    return c;
}

static void setup_cc(const struct mxg_conncache_cfg *c)
{
    uv_loop_init(&loop);
    n_closed = 0;
    g_cc = mxg_conncache_new(&loop, c, &ops);
    assert_non_null(g_cc);
}

static void teardown_cc(void)
{
    mxg_conncache_shutdown(g_cc);
    release_closed();
    uv_run(&loop, UV_RUN_DEFAULT);
    mxg_conncache_free(g_cc);
    g_cc = NULL;
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void stop_cb(uv_timer_t *t)
{
    uv_stop(t->loop);
}

static void run_ms(uint64_t ms)
{
    uv_timer_t t;
    uv_timer_init(&loop, &t);
    uv_timer_start(&t, stop_cb, ms, 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&loop, UV_RUN_NOWAIT);
}

static enum mxg_cc_status acq(const struct sockaddr_storage *d, const char *k, int reuse,
                              struct waiter *w, struct mxg_cc_wait **wp, struct mxg_cc_grant *g)
{
    struct mxg_cc_key kk = key(k);
    struct mxg_cc_wait *dummy;
    return mxg_conncache_acquire(g_cc, (const struct sockaddr *)d, &kk, reuse, NULL, on_grant, w,
                                 wp ? wp : &dummy, g);
}

/* A fresh connection to d under key k (reuse allowed) for f: asserts
 * MXG_CC_FRESH and sets f->slot. */
static void open_fresh(struct fake *f, const struct sockaddr_storage *d, const char *k)
{
    struct mxg_cc_grant g;
    assert_int_equal(acq(d, k, 1, NULL, NULL, &g), MXG_CC_FRESH);
    f->slot = g.slot;
}

static int park(struct fake *f, const char *k)
{
    struct mxg_cc_key kk = key(k);
    return mxg_conncache_park(g_cc, f->slot, &kk, f);
}

static void test_key(void **st)
{
    (void)st;
    struct mxg_cc_key a = key("dane|x"), b = key("dane|x"), c = key("dane|y");
    assert_memory_equal(a.d, b.d, 32);
    assert_memory_not_equal(a.d, c.d, 32);
}

static void test_reuse_same_key_only(void **st)
{
    (void)st;
    struct mxg_conncache_cfg c = base_cfg();
    setup_cc(&c);
    struct sockaddr_storage d1 = dest("192.0.2.1", 25), d2 = dest("192.0.2.2", 25),
                            d1p = dest("192.0.2.1", 587);
    struct mxg_cc_grant g;
    struct fake f = {.id = 1};
    open_fresh(&f, &d1, "K");
    assert_int_equal(park(&f, "K"), 0);
    struct mxg_conncache_stats s;
    mxg_conncache_stats(g_cc, &s);
    assert_int_equal(s.open, 1);
    assert_int_equal(s.idle, 1);
    /* another key, another address, another port, reuse not allowed: fresh */
    struct mxg_cc_grant g2;
    assert_int_equal(acq(&d1, "K2", 1, NULL, NULL, &g2), MXG_CC_FRESH);
    mxg_conncache_release(g_cc, g2.slot);
    assert_int_equal(acq(&d2, "K", 1, NULL, NULL, &g2), MXG_CC_FRESH);
    mxg_conncache_release(g_cc, g2.slot);
    assert_int_equal(acq(&d1p, "K", 1, NULL, NULL, &g2), MXG_CC_FRESH);
    mxg_conncache_release(g_cc, g2.slot);
    assert_int_equal(acq(&d1, "K", 0, NULL, NULL, &g2), MXG_CC_FRESH);
    mxg_conncache_release(g_cc, g2.slot);
    /* same destination, same key: the parked one */
    assert_int_equal(acq(&d1, "K", 1, NULL, NULL, &g), MXG_CC_REUSED);
    assert_ptr_equal(g.conn, &f);
    assert_ptr_equal(g.slot, f.slot);
    assert_int_equal(g.uses, 1);
    assert_int_equal(park(&f, "K"), 0);
    assert_int_equal(acq(&d1, "K", 1, NULL, NULL, &g), MXG_CC_REUSED);
    assert_int_equal(g.uses, 2);
    mxg_conncache_stats(g_cc, &s);
    assert_int_equal(s.reused, 2);
    assert_int_equal(s.idle, 0);
    assert_int_equal(mxg_conncache_dest_open(g_cc, (struct sockaddr *)&d1), 1);
    mxg_conncache_release(g_cc, f.slot);
    assert_int_equal(mxg_conncache_dest_open(g_cc, (struct sockaddr *)&d1), 0);
    assert_int_equal(f.closed, 0);
    teardown_cc();
}

static void test_idle_expiry(void **st)
{
    (void)st;
    struct mxg_conncache_cfg c = base_cfg();
    c.idle_ms = 60;
    setup_cc(&c);
    struct sockaddr_storage d1 = dest("192.0.2.1", 25);
    struct mxg_cc_grant g;
    struct fake f = {.id = 1};
    open_fresh(&f, &d1, "K");
    assert_int_equal(park(&f, "K"), 0);
    run_ms(20);
    assert_int_equal(f.closed, 0);
    run_ms(120);
    assert_int_equal(f.closed, 1);
    assert_int_equal(f.lost, 0); /* polite close: QUIT */
    struct mxg_conncache_stats s;
    mxg_conncache_stats(g_cc, &s);
    assert_int_equal(s.expired, 1);
    assert_int_equal(s.idle, 0);
    assert_int_equal(s.open, 1); /* until the socket is closed */
    release_closed();
    mxg_conncache_stats(g_cc, &s);
    assert_int_equal(s.open, 0);
    /* nothing left to reuse */
    assert_int_equal(acq(&d1, "K", 1, NULL, NULL, &g), MXG_CC_FRESH);
    mxg_conncache_release(g_cc, g.slot);
    teardown_cc();
}

static void test_uses_and_lifetime(void **st)
{
    (void)st;
    struct mxg_conncache_cfg c = base_cfg();
    c.max_uses = 2;
    c.lifetime_ms = 80;
    setup_cc(&c);
    struct sockaddr_storage d1 = dest("192.0.2.1", 25);
    struct mxg_cc_grant g;
    struct fake f = {.id = 1};
    open_fresh(&f, &d1, "K");
    assert_int_equal(park(&f, "K"), 0);
    assert_int_equal(acq(&d1, "K", 1, NULL, NULL, &g), MXG_CC_REUSED);
    assert_int_equal(park(&f, "K"), -1); /* two transactions done: not kept */
    mxg_conncache_release(g_cc, f.slot);
    /* lifetime: parked young, too old when asked for */
    struct fake f2 = {.id = 2};
    open_fresh(&f2, &d1, "K");
    assert_int_equal(park(&f2, "K"), 0);
    run_ms(120);
    assert_int_equal(f2.closed, 1);
    release_closed();
    /* lifetime over at park time */
    struct fake f3 = {.id = 3};
    open_fresh(&f3, &d1, "K");
    run_ms(100);
    assert_int_equal(park(&f3, "K"), -1);
    mxg_conncache_release(g_cc, f3.slot);
    teardown_cc();
}

static void test_size_bounds(void **st)
{
    (void)st;
    struct mxg_conncache_cfg c = base_cfg();
    c.max_idle = 3;
    c.max_idle_per_dest = 2;
    setup_cc(&c);
    struct sockaddr_storage d1 = dest("192.0.2.1", 25), d2 = dest("2001:db8::2", 25);
    struct fake f[5];
    struct mxg_cc_grant g;
    for (int i = 0; i < 5; i++) {
        memset(&f[i], 0, sizeof f[i]);
        f[i].id = i;
        assert_int_equal(acq(i < 3 ? &d1 : &d2, i < 3 ? "A" : "B", 0, NULL, NULL, &g),
                         MXG_CC_FRESH);
        f[i].slot = g.slot;
    }
    for (int i = 0; i < 5; i++)
        assert_int_equal(park(&f[i], i < 3 ? "A" : "B"), 0);
    /* d1 keeps 2 (f0 evicted at f2's parking); then the total of 3 evicts f1 */
    assert_int_equal(f[0].closed, 1);
    assert_int_equal(f[1].closed, 1);
    assert_int_equal(f[2].closed + f[3].closed + f[4].closed, 0);
    struct mxg_conncache_stats s;
    mxg_conncache_stats(g_cc, &s);
    assert_int_equal(s.idle, 3);
    assert_int_equal(s.evicted, 2);
    release_closed();
    /* newest first */
    assert_int_equal(acq(&d2, "B", 1, NULL, NULL, &g), MXG_CC_REUSED);
    assert_ptr_equal(g.conn, &f[4]);
    mxg_conncache_release(g_cc, g.slot);
    teardown_cc();
    assert_int_equal(f[2].closed + f[3].closed, 2); /* shutdown closed them */
}

static void test_lost(void **st)
{
    (void)st;
    struct mxg_conncache_cfg c = base_cfg();
    setup_cc(&c);
    struct sockaddr_storage d1 = dest("192.0.2.1", 25);
    struct mxg_cc_grant g;
    struct fake f = {.id = 1};
    open_fresh(&f, &d1, "K");
    assert_int_equal(park(&f, "K"), 0);
    mxg_conncache_lost(g_cc, f.slot);
    assert_int_equal(f.closed, 1);
    assert_int_equal(f.lost, 1);
    mxg_conncache_lost(g_cc, f.slot); /* not idle any more: no-op */
    assert_int_equal(f.closed, 1);
    assert_int_equal(acq(&d1, "K", 1, NULL, NULL, &g), MXG_CC_FRESH);
    release_closed();
    mxg_conncache_release(g_cc, g.slot);
    struct mxg_conncache_stats s;
    mxg_conncache_stats(g_cc, &s);
    assert_int_equal(s.lost, 1);
    assert_int_equal(s.open, 0);
    teardown_cc();
}

static void test_concurrency_wait(void **st)
{
    (void)st;
    struct mxg_conncache_cfg c = base_cfg();
    c.dest_concurrency = 2;
    c.wait_ms = 150;
    setup_cc(&c);
    struct sockaddr_storage d1 = dest("192.0.2.1", 25), d2 = dest("192.0.2.2", 25);
    struct mxg_cc_grant g1, g2, g;
    struct waiter w3 = {0}, w4 = {0};
    struct mxg_cc_wait *wp3, *wp4;
    assert_int_equal(acq(&d1, "K", 1, NULL, NULL, &g1), MXG_CC_FRESH);
    assert_int_equal(acq(&d1, "K", 1, NULL, NULL, &g2), MXG_CC_FRESH);
    assert_int_equal(acq(&d1, "K", 1, &w3, &wp3, &g), MXG_CC_WAIT);
    assert_int_equal(acq(&d1, "K", 1, &w4, &wp4, &g), MXG_CC_WAIT);
    assert_non_null(wp3);
    /* another destination is not affected */
    assert_int_equal(acq(&d2, "K", 1, NULL, NULL, &g), MXG_CC_FRESH);
    mxg_conncache_release(g_cc, g.slot);
    assert_int_equal(w3.called, 0);
    mxg_conncache_release(g_cc, g1.slot);
    assert_int_equal(w3.called, 0); /* never from inside the call */
    run_ms(10);
    assert_int_equal(w3.called, 1);
    assert_int_equal(w3.g.status, MXG_CC_FRESH);
    assert_int_equal(w4.called, 0); /* FIFO: w4 still waits */
    assert_int_equal(mxg_conncache_dest_open(g_cc, (struct sockaddr *)&d1), 2);
    run_ms(250);
    assert_int_equal(w4.called, 1);
    assert_int_equal(w4.g.status, MXG_CC_LIMITED);
    assert_non_null(strstr(w4.why, "192.0.2.1:25"));
    struct mxg_conncache_stats s;
    mxg_conncache_stats(g_cc, &s);
    assert_int_equal(s.limited, 1);
    assert_int_equal(s.waiting, 0);
    mxg_conncache_release(g_cc, g2.slot);
    mxg_conncache_release(g_cc, w3.g.slot);
    teardown_cc();
}

static void test_no_wait_refuses(void **st)
{
    (void)st;
    struct mxg_conncache_cfg c = base_cfg();
    c.dest_concurrency = 1;
    c.wait_ms = 0;
    setup_cc(&c);
    struct sockaddr_storage d1 = dest("192.0.2.1", 25);
    struct mxg_cc_grant g1, g;
    struct waiter w = {0};
    assert_int_equal(acq(&d1, "K", 1, NULL, NULL, &g1), MXG_CC_FRESH);
    assert_int_equal(acq(&d1, "K", 1, &w, NULL, &g), MXG_CC_LIMITED);
    assert_non_null(strstr(g.why, "concurrency limit 1"));
    run_ms(5);
    assert_int_equal(w.called, 0);
    mxg_conncache_release(g_cc, g1.slot);
    teardown_cc();
}

static void test_park_serves_waiter(void **st)
{
    (void)st;
    struct mxg_conncache_cfg c = base_cfg();
    c.dest_concurrency = 1;
    setup_cc(&c);
    struct sockaddr_storage d1 = dest("192.0.2.1", 25);
    struct mxg_cc_grant g;
    struct fake f = {.id = 1};
    struct waiter same = {0}, other = {0};
    open_fresh(&f, &d1, "K");
    assert_int_equal(acq(&d1, "OTHER", 1, &other, NULL, &g), MXG_CC_WAIT);
    assert_int_equal(acq(&d1, "K", 1, &same, NULL, &g), MXG_CC_WAIT);
    /* the connection comes back idle: the waiter with its key takes it,
     * although it queued later (reuse costs no slot) */
    assert_int_equal(park(&f, "K"), 0);
    run_ms(5);
    assert_int_equal(same.called, 1);
    assert_int_equal(same.g.status, MXG_CC_REUSED);
    assert_ptr_equal(same.g.conn, &f);
    assert_int_equal(other.called, 0);
    /* parked again: "other" cannot use it and the destination is full: it is
     * closed to make room, and other gets a fresh slot once it is released */
    assert_int_equal(park(&f, "K"), 0);
    run_ms(5);
    assert_int_equal(f.closed, 1);
    assert_int_equal(f.lost, 0);
    assert_int_equal(other.called, 0);
    release_closed();
    run_ms(5);
    assert_int_equal(other.called, 1);
    assert_int_equal(other.g.status, MXG_CC_FRESH);
    mxg_conncache_release(g_cc, other.g.slot);
    teardown_cc();
}

/* upstream.cache_busy_wait: a leg whose key's connection is in use waits
 * for it (not for a slot), takes it over when it is parked, gets a fresh one
 * when it is closed instead or the wait is over; never for a connection that
 * cannot be parked, nor when reuse is not allowed, nor for one of the same
 * owner (transaction); at a full destination
 * the wait closes nobody else's idle connection; a wait can be cancelled. */
static void test_busy_wait(void **st)
{
    (void)st;
    struct mxg_conncache_cfg c = base_cfg();
    c.busy_wait_ms = 100;
    c.busy_waiters = 1;
    c.dest_concurrency = 2;
    c.max_uses = 3;
    setup_cc(&c);
    struct sockaddr_storage d1 = dest("192.0.2.1", 25);
    struct mxg_cc_grant g;
    struct mxg_cc_wait *wp;
    struct fake f = {.id = 1}, x = {.id = 2};
    struct waiter w1 = {0}, w2 = {0}, w3 = {0}, w4 = {0};
    open_fresh(&x, &d1, "X");
    assert_int_equal(park(&x, "X"), 0); /* another key's idle connection: the destination's 2nd slot */
    open_fresh(&f, &d1, "K");           /* uses 1 */
    /* K is busy: wait for it (the destination is full, yet X stays) */
    assert_int_equal(acq(&d1, "K", 1, &w1, NULL, &g), MXG_CC_WAIT);
    run_ms(20);
    assert_int_equal(w1.called, 0);
    assert_int_equal(x.closed, 0);
    assert_int_equal(park(&f, "K"), 0);
    run_ms(5);
    assert_int_equal(w1.called, 1);
    assert_int_equal(w1.g.status, MXG_CC_REUSED); /* uses 2 */
    assert_ptr_equal(w1.g.conn, &f);
    assert_int_equal(x.closed, 0);
    struct mxg_conncache_stats cs;
    mxg_conncache_stats(g_cc, &cs);
    assert_int_equal(cs.busy_waited, 1);
    assert_int_equal(cs.busy_served, 1);
    /* reuse not allowed (a stale connection): no wait; the destination is full, X makes room */
    struct waiter w0 = {0};
    assert_int_equal(acq(&d1, "K", 0, &w0, &wp, &g), MXG_CC_WAIT);
    mxg_conncache_cancel(g_cc, wp);
    /* the wait is over before K comes free: the slot queue (X is closed to make room) */
    assert_int_equal(acq(&d1, "K", 1, &w2, NULL, &g), MXG_CC_WAIT);
    run_ms(60);
    assert_int_equal(w2.called, 0);
    assert_int_equal(x.closed, 0);
    run_ms(80);
    assert_int_equal(x.closed, 1); /* after busy_wait: like any acquire at a full destination */
    release_closed();
    run_ms(5);
    assert_int_equal(w2.called, 1);
    assert_int_equal(w2.g.status, MXG_CC_FRESH);
    mxg_conncache_release(g_cc, w2.g.slot);
    /* K's connection is closed instead of parked: the waiter gets a fresh one at once */
    assert_int_equal(acq(&d1, "K", 1, &w3, NULL, &g), MXG_CC_WAIT);
    mxg_conncache_release(g_cc, f.slot);
    run_ms(5);
    assert_int_equal(w3.called, 1);
    assert_int_equal(w3.g.status, MXG_CC_FRESH);
    f.slot = w3.g.slot; /* uses 1 */
    /* a connection at its last use is never parked: nobody waits for it */
    assert_int_equal(park(&f, "K"), 0);
    assert_int_equal(acq(&d1, "K", 1, NULL, NULL, &g), MXG_CC_REUSED); /* uses 2 */
    assert_int_equal(park(&f, "K"), 0);
    assert_int_equal(acq(&d1, "K", 1, NULL, NULL, &g), MXG_CC_REUSED); /* uses 3 = max */
    assert_int_equal(acq(&d1, "K", 1, NULL, NULL, &g), MXG_CC_FRESH);
    mxg_conncache_release(g_cc, g.slot);
    /* a cancelled wait is never answered */
    mxg_conncache_release(g_cc, f.slot);
    open_fresh(&f, &d1, "K");
    assert_int_equal(acq(&d1, "K", 1, &w4, &wp, &g), MXG_CC_WAIT);
    mxg_conncache_cancel(g_cc, wp);
    run_ms(150);
    assert_int_equal(w4.called, 0);
    mxg_conncache_release(g_cc, f.slot);
    /* never for a busy connection of the same owner (another leg of one transaction) */
    int o1, o2;
    struct mxg_cc_key kk = key("K");
    struct waiter w5 = {0};
    assert_int_equal(mxg_conncache_acquire(g_cc, (const struct sockaddr *)&d1, &kk, 1, &o1,
                                           on_grant, NULL, &wp, &g), MXG_CC_FRESH);
    struct mxg_cc_slot *held = g.slot;
    assert_int_equal(mxg_conncache_acquire(g_cc, (const struct sockaddr *)&d1, &kk, 1, &o1,
                                           on_grant, NULL, &wp, &g), MXG_CC_FRESH);
    mxg_conncache_release(g_cc, g.slot);
    assert_int_equal(mxg_conncache_acquire(g_cc, (const struct sockaddr *)&d1, &kk, 1, &o2,
                                           on_grant, &w5, &wp, &g), MXG_CC_WAIT);
    mxg_conncache_cancel(g_cc, wp);
    mxg_conncache_release(g_cc, held);
    teardown_cc();
}

/* A busy connection its owner will not park (mxg_conncache_no_park: a
 * plaintext retry, a failed transaction, QUIT): a leg waiting for it gets a
 * fresh connection at once, not after busy_wait; a later leg never waits
 * for it; it is never parked. */
static void test_busy_no_park(void **st)
{
    (void)st;
    struct mxg_conncache_cfg c = base_cfg();
    c.busy_wait_ms = 2000;
    c.busy_waiters = 1;
    setup_cc(&c);
    struct sockaddr_storage d1 = dest("192.0.2.1", 25);
    struct mxg_cc_grant g;
    struct fake f = {.id = 1}, e = {.id = 2};
    struct waiter w1 = {0};
    open_fresh(&f, &d1, "K");
    assert_int_equal(acq(&d1, "K", 1, &w1, NULL, &g), MXG_CC_WAIT);
    run_ms(20);
    assert_int_equal(w1.called, 0);
    uint64_t t0 = uv_now(&loop);
    mxg_conncache_no_park(g_cc, f.slot);
    mxg_conncache_no_park(g_cc, f.slot); /* idempotent */
    run_ms(20);
    assert_int_equal(w1.called, 1);
    assert_int_equal(w1.g.status, MXG_CC_FRESH);
    assert_true(uv_now(&loop) - t0 < 1000);
    struct mxg_conncache_stats cs;
    mxg_conncache_stats(g_cc, &cs);
    assert_int_equal(cs.busy_waited, 1);
    assert_int_equal(cs.busy_served, 0);
    /* a new leg of the key never waits for it (the waiter's connection is busy too: make it
     * unparkable as well, then no busy connection of K may be parked) */
    mxg_conncache_no_park(g_cc, w1.g.slot);
    assert_int_equal(acq(&d1, "K", 1, NULL, NULL, &g), MXG_CC_FRESH);
    e.slot = g.slot;
    /* and it is never parked */
    assert_int_equal(park(&f, "K"), -1);
    assert_int_equal(mxg_conncache_dest_open(g_cc, (const struct sockaddr *)&d1), 3);
    mxg_conncache_no_park(g_cc, NULL); /* no-op */
    assert_int_equal(park(&e, "K"), 0);  /* an unmarked one still is */
    mxg_conncache_no_park(g_cc, e.slot); /* no-op for an idle slot */
    assert_int_equal(acq(&d1, "K", 1, NULL, NULL, &g), MXG_CC_REUSED);
    mxg_conncache_release(g_cc, f.slot);
    mxg_conncache_release(g_cc, w1.g.slot);
    mxg_conncache_release(g_cc, e.slot);
    teardown_cc();
}

/* upstream.cache_busy_waiters: at most that many legs wait at once for the
 * busy connections of one destination and key; one more gets a new
 * connection at once (FRESH), another key or destination has its own bound;
 * a waiter served (parked: REUSED), timed out (FRESH) or cancelled frees its
 * place. */
static void test_busy_waiters_bound(void **st)
{
    (void)st;
    struct mxg_conncache_cfg c = base_cfg();
    c.busy_wait_ms = 100;
    c.busy_waiters = 1;
    setup_cc(&c);
    struct mxg_metrics *mx = mxg_metrics_new(); /* the same counts in /metrics */
    assert_non_null(mx);
    mxg_conncache_set_metrics(g_cc, mx);
    struct sockaddr_storage d1 = dest("192.0.2.1", 25), d2 = dest("192.0.2.2", 25);
    struct mxg_cc_grant g;
    struct mxg_cc_wait *wp;
    struct fake f = {.id = 1}, h = {.id = 2}, e = {.id = 3};
    struct waiter w1 = {0}, w2 = {0}, w3 = {0}, wl = {0}, we = {0};
    open_fresh(&f, &d1, "K");
    open_fresh(&h, &d1, "L");
    open_fresh(&e, &d2, "K");
    /* the 1st waits, the 2nd opens a connection at once */
    assert_int_equal(acq(&d1, "K", 1, &w1, NULL, &g), MXG_CC_WAIT);
    assert_int_equal(acq(&d1, "K", 1, &w2, NULL, &g), MXG_CC_FRESH);
    struct mxg_cc_slot *second = g.slot;
    /* another key at the same destination, and the same key elsewhere: their own bound */
    assert_int_equal(acq(&d1, "L", 1, &wl, &wp, &g), MXG_CC_WAIT);
    mxg_conncache_cancel(g_cc, wp); /* a cancelled wait frees its place */
    assert_int_equal(acq(&d1, "L", 1, &wl, &wp, &g), MXG_CC_WAIT);
    mxg_conncache_cancel(g_cc, wp);
    assert_int_equal(acq(&d2, "K", 1, &we, &wp, &g), MXG_CC_WAIT);
    mxg_conncache_cancel(g_cc, wp);
    struct mxg_conncache_stats cs;
    mxg_conncache_stats(g_cc, &cs);
    assert_int_equal(cs.busy_waited, 4);
    assert_int_equal(cs.busy_bounded, 1);
    /* the 1st gets the busy connection once it is parked */
    assert_int_equal(park(&f, "K"), 0);
    run_ms(5);
    assert_int_equal(w1.called, 1);
    assert_int_equal(w1.g.status, MXG_CC_REUSED);
    assert_ptr_equal(w1.g.conn, &f);
    assert_int_equal(w2.called, 0); /* answered at once, never through cb */
    /* served, its place is free: the next one waits, times out, opens a connection */
    uint64_t t0 = uv_now(&loop);
    assert_int_equal(acq(&d1, "K", 1, &w3, NULL, &g), MXG_CC_WAIT);
    assert_int_equal(acq(&d1, "K", 1, NULL, NULL, &g), MXG_CC_FRESH);
    mxg_conncache_release(g_cc, g.slot);
    run_ms(60);
    assert_int_equal(w3.called, 0);
    run_ms(80);
    assert_int_equal(w3.called, 1);
    assert_int_equal(w3.g.status, MXG_CC_FRESH);
    assert_true(uv_now(&loop) - t0 >= 100);
    mxg_conncache_stats(g_cc, &cs);
    assert_int_equal(cs.busy_waited, 5);
    assert_int_equal(cs.busy_served, 1);
    assert_int_equal(cs.busy_timeouts, 1);
    assert_int_equal(cs.busy_bounded, 2);
    assert_int_equal(mxg_metrics_value(mx, MXG_M_UPSTREAM_BUSY, "waited"), 5);
    assert_int_equal(mxg_metrics_value(mx, MXG_M_UPSTREAM_BUSY, "reused"), 1);
    assert_int_equal(mxg_metrics_value(mx, MXG_M_UPSTREAM_BUSY, "timeout"), 1);
    assert_int_equal(mxg_metrics_value(mx, MXG_M_UPSTREAM_BUSY, "bounded"), 2);
    char *txt = NULL;
    size_t len = 0;
    assert_int_equal(mxg_metrics_render(mx, &txt, &len), 0);
    assert_non_null(strstr(txt, "mxguard_upstream_busy_waits_total{result=\"timeout\"} 1\n"));
    free(txt);
    mxg_conncache_set_metrics(g_cc, NULL);
    mxg_metrics_free(mx);
    mxg_conncache_release(g_cc, w3.g.slot);
    mxg_conncache_release(g_cc, w1.g.slot);
    mxg_conncache_release(g_cc, second);
    mxg_conncache_release(g_cc, h.slot);
    mxg_conncache_release(g_cc, e.slot);
    teardown_cc();
}

/* busy_waiters 2: two legs wait, the third opens a connection; 0: nobody
 * waits (busy_wait set or not). */
static void test_busy_waiters_setting(void **st)
{
    (void)st;
    struct mxg_conncache_cfg c = base_cfg();
    c.busy_wait_ms = 1000;
    c.busy_waiters = 2;
    setup_cc(&c);
    struct sockaddr_storage d1 = dest("192.0.2.1", 25);
    struct mxg_cc_grant g;
    struct mxg_cc_wait *wp1, *wp2;
    struct fake f = {.id = 1};
    struct waiter w1 = {0}, w2 = {0};
    open_fresh(&f, &d1, "K");
    assert_int_equal(acq(&d1, "K", 1, &w1, &wp1, &g), MXG_CC_WAIT);
    assert_int_equal(acq(&d1, "K", 1, &w2, &wp2, &g), MXG_CC_WAIT);
    assert_int_equal(acq(&d1, "K", 1, NULL, NULL, &g), MXG_CC_FRESH);
    mxg_conncache_release(g_cc, g.slot);
    mxg_conncache_cancel(g_cc, wp1);
    mxg_conncache_cancel(g_cc, wp2);
    mxg_conncache_release(g_cc, f.slot);
    /* 0 after a reload: the busy connection is one of the new generation, still nobody waits */
    c.busy_waiters = 0;
    mxg_conncache_reconfigure(g_cc, &c);
    open_fresh(&f, &d1, "K");
    assert_int_equal(acq(&d1, "K", 1, NULL, NULL, &g), MXG_CC_FRESH);
    mxg_conncache_release(g_cc, g.slot);
    struct mxg_conncache_stats cs;
    mxg_conncache_stats(g_cc, &cs);
    assert_int_equal(cs.busy_waited, 2);
    assert_int_equal(w1.called + w2.called, 0);
    mxg_conncache_release(g_cc, f.slot);
    teardown_cc();
}

static void test_global_cap(void **st)
{
    (void)st;
    struct mxg_conncache_cfg c = base_cfg();
    c.max_conns = 2;
    setup_cc(&c);
    struct sockaddr_storage d1 = dest("192.0.2.1", 25), d2 = dest("192.0.2.2", 25),
                            d3 = dest("192.0.2.3", 25);
    struct mxg_cc_grant g1, g2, g;
    struct waiter w = {0};
    struct fake f = {.id = 1};
    assert_int_equal(acq(&d1, "K", 1, NULL, NULL, &g1), MXG_CC_FRESH);
    assert_int_equal(acq(&d2, "K", 1, NULL, NULL, &g2), MXG_CC_FRESH);
    f.slot = g2.slot;
    assert_int_equal(park(&f, "K"), 0);
    /* full: d3 waits; the idle connection at d2 is closed to make room */
    assert_int_equal(acq(&d3, "K", 1, &w, NULL, &g), MXG_CC_WAIT);
    run_ms(5);
    assert_int_equal(f.closed, 1);
    release_closed();
    run_ms(5);
    assert_int_equal(w.called, 1);
    assert_int_equal(w.g.status, MXG_CC_FRESH);
    struct mxg_conncache_stats s;
    mxg_conncache_stats(g_cc, &s);
    assert_int_equal(s.open, 2);
    mxg_conncache_release(g_cc, g1.slot);
    mxg_conncache_release(g_cc, w.g.slot);
    teardown_cc();
}

static void test_rate(void **st)
{
    (void)st;
    struct mxg_conncache_cfg c = base_cfg();
    c.dest_rate = 10; /* a token every 100 ms, 10 at once */
    setup_cc(&c);
    struct sockaddr_storage d1 = dest("192.0.2.1", 25);
    struct mxg_cc_grant g;
    struct waiter w = {0};
    for (int i = 0; i < 10; i++) {
        assert_int_equal(acq(&d1, "K", 1, NULL, NULL, &g), MXG_CC_FRESH);
        mxg_conncache_release(g_cc, g.slot);
    }
    uint64_t t0 = uv_now(&loop);
    assert_int_equal(acq(&d1, "K", 1, &w, NULL, &g), MXG_CC_WAIT);
    while (!w.called && uv_now(&loop) - t0 < 1000)
        run_ms(10);
    uv_update_time(&loop);
    assert_int_equal(w.called, 1);
    assert_int_equal(w.g.status, MXG_CC_FRESH);
    uint64_t waited = uv_now(&loop) - t0;
    if (waited < 50 || waited > 400)
        fail_msg("rate wait %llu ms", (unsigned long long)waited);
    mxg_conncache_release(g_cc, w.g.slot);
    teardown_cc();
}

static void test_cancel(void **st)
{
    (void)st;
    struct mxg_conncache_cfg c = base_cfg();
    c.dest_concurrency = 1;
    setup_cc(&c);
    struct sockaddr_storage d1 = dest("192.0.2.1", 25);
    struct mxg_cc_grant g1, g;
    struct waiter w = {0}, w2 = {0};
    struct mxg_cc_wait *wp;
    assert_int_equal(acq(&d1, "K", 1, NULL, NULL, &g1), MXG_CC_FRESH);
    assert_int_equal(acq(&d1, "K", 1, &w, &wp, &g), MXG_CC_WAIT);
    assert_int_equal(acq(&d1, "K", 1, &w2, NULL, &g), MXG_CC_WAIT);
    mxg_conncache_cancel(g_cc, wp);
    mxg_conncache_release(g_cc, g1.slot);
    run_ms(5);
    assert_int_equal(w.called, 0);
    assert_int_equal(w2.called, 1);
    assert_int_equal(w2.g.status, MXG_CC_FRESH);
    mxg_conncache_release(g_cc, w2.g.slot);
    teardown_cc();
}

static void test_off(void **st)
{
    (void)st;
    struct mxg_conncache_cfg c = base_cfg();
    c.idle_ms = 0;
    setup_cc(&c);
    assert_int_equal(mxg_conncache_enabled(g_cc), 0);
    struct sockaddr_storage d1 = dest("192.0.2.1", 25);
    struct fake f = {.id = 1};
    open_fresh(&f, &d1, "K");
    assert_int_equal(park(&f, "K"), -1);
    mxg_conncache_release(g_cc, f.slot);
    teardown_cc();
}

/* A connection in use across a reload (SIGHUP: reconfigure) is never
 * parked afterwards; one opened after the reload is (docs/ARCHITECTURE.md §Reuse). */
static void test_reload_generation(void **st)
{
    (void)st;
    struct mxg_conncache_cfg c = base_cfg();
    setup_cc(&c);
    struct sockaddr_storage d1 = dest("192.0.2.1", 25);
    struct fake old = {.id = 1}, idle = {.id = 2}, fresh = {.id = 3};
    uint64_t g0 = mxg_conncache_generation(g_cc);
    open_fresh(&idle, &d1, "K");
    assert_int_equal(park(&idle, "K"), 0);
    open_fresh(&old, &d1, "K2"); /* in a transaction during the reload */
    mxg_conncache_reconfigure(g_cc, &c);
    assert_int_equal(mxg_conncache_generation(g_cc), g0 + 1);
    assert_int_equal(idle.closed, 1); /* idle ones close at once */
    assert_int_equal(park(&old, "K2"), -1);
    mxg_conncache_release(g_cc, old.slot);
    struct mxg_cc_grant g;
    assert_int_equal(acq(&d1, "K2", 1, NULL, NULL, &g), MXG_CC_FRESH); /* nothing to reuse */
    fresh.slot = g.slot;
    assert_int_equal(park(&fresh, "K2"), 0);
    assert_int_equal(acq(&d1, "K2", 1, NULL, NULL, &g), MXG_CC_REUSED);
    assert_ptr_equal(g.conn, &fresh);
    assert_int_equal(park(&fresh, "K2"), 0); /* reused under the same generation: parks again */
    assert_int_equal(mxg_conncache_generation(NULL), 0);
    teardown_cc();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key),
        cmocka_unit_test(test_reuse_same_key_only),
        cmocka_unit_test(test_idle_expiry),
        cmocka_unit_test(test_uses_and_lifetime),
        cmocka_unit_test(test_size_bounds),
        cmocka_unit_test(test_lost),
        cmocka_unit_test(test_concurrency_wait),
        cmocka_unit_test(test_no_wait_refuses),
        cmocka_unit_test(test_park_serves_waiter),
        cmocka_unit_test(test_busy_wait),
        cmocka_unit_test(test_busy_no_park),
        cmocka_unit_test(test_busy_waiters_bound),
        cmocka_unit_test(test_busy_waiters_setting),
        cmocka_unit_test(test_global_cap),
        cmocka_unit_test(test_rate),
        cmocka_unit_test(test_cancel),
        cmocka_unit_test(test_off),
        cmocka_unit_test(test_reload_generation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
