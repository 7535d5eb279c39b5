/* tests/unit/test_dns_loop.c — dns/dns_loop: mxguard's getdns event loop
 * on libuv, driven directly through its getdns_eventloop vmt with socketpairs
 * (no getdns resolution, no network): two events on one fd, clearing one of
 * them, clearing from inside callbacks (itself, the other, the last one plus
 * close), timeout-only events, fd + timeout, a reused fd number (cleared
 * properly, and closed under a scheduled event as getdns' TCP fallback can
 * do: no libuv abort, no callback for a dead or reused number; mxguard's
 * own socket taking such a number keeps its events; the same getdns event
 * rescheduled on the dead number gets only its timeout), a socket error,
 * an fd that cannot be polled, cleanup with events still scheduled (then
 * uv_run: ASan/LSan find any leak), run/run_once. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "dns/dns_loop.h"

#define NO_TIMEOUT UINT64_MAX

/* a handle of mxguard's own (not the dns loop's) on a socket */
struct own {
    uv_poll_t poll;
    int fd;
    int reads;
};

struct fx {
    uv_loop_t uv;
    struct mxg_dnsloop *l;
    getdns_eventloop *gl;
    int cleaned;
    struct own own;   /* mxguard's own socket handle, for tests that need one */
    int own_inited;   /* own.poll to be closed (by the test or the teardown) */
};

struct tev;
typedef void (*hook_fn)(struct tev *t);

/* one getdns event with counters and an optional action per callback */
struct tev {
    getdns_eventloop_event ev;
    struct fx *fx;
    int fd;          /* drained by the read hook, if set */
    int reads, writes, timeouts;
    int errors;        /* socket errors seen by hook_recv_error */
    hook_fn on_read, on_write, on_timeout;
    struct tev *other; /* for hooks that act on another event */
    int sock[2];       /* for hooks that open sockets */
};

static void cb_read(void *arg)
{
    struct tev *t = arg;
    t->reads++;
    if (t->on_read)
        t->on_read(t);
}

static void cb_write(void *arg)
{
    struct tev *t = arg;
    t->writes++;
    if (t->on_write)
        t->on_write(t);
}

static void cb_timeout(void *arg)
{
    struct tev *t = arg;
    t->timeouts++;
    if (t->on_timeout)
        t->on_timeout(t);
}

/* fills t's getdns event with the callbacks asked for (r/w/to non-zero) */
static void tev_init(struct tev *t, struct fx *fx, int r, int w, int to)
{
    memset(t, 0, sizeof *t);
    t->fx = fx;
    t->fd = -1;
    t->sock[0] = t->sock[1] = -1;
    t->ev.userarg = t;
    t->ev.read_cb = r ? cb_read : NULL;
    t->ev.write_cb = w ? cb_write : NULL;
    t->ev.timeout_cb = to ? cb_timeout : NULL;
    t->ev.ev = NULL;
}

static getdns_return_t sched(struct fx *fx, int fd, uint64_t timeout, struct tev *t)
{
    return fx->gl->vmt->schedule(fx->gl, fd, timeout, &t->ev);
}

/* like getdns' GETDNS_CLEAR_EVENT */
static void clear(struct fx *fx, struct tev *t)
{
    if (t->ev.ev)
        assert_int_equal(fx->gl->vmt->clear(fx->gl, &t->ev), GETDNS_RETURN_GOOD);
    assert_null(t->ev.ev);
}

static struct mxg_dnsloop_stats stats(struct fx *fx)
{
    struct mxg_dnsloop_stats st;
    mxg_dnsloop_get_stats(fx->l, &st);
    return st;
}

static void sockpair(int sv[2])
{
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
}

static void put(int fd, const char *s)
{
    assert_int_equal(write(fd, s, strlen(s)), (ssize_t)strlen(s));
}

/* reads what is there (non-blocking) */
static void drain(int fd)
{
    char buf[256];
    while (recv(fd, buf, sizeof buf, MSG_DONTWAIT) > 0)
        ;
}

/* runs the loop without blocking, n iterations */
static void spin(struct fx *fx, int n)
{
    while (n-- > 0)
        uv_run(&fx->uv, UV_RUN_NOWAIT);
}

static uint64_t now_ms(void)
{
    return uv_hrtime() / 1000000;
}

/* runs the loop until *counter >= want or max_ms passed; whether reached */
static int run_until(struct fx *fx, const int *counter, int want, uint64_t max_ms)
{
    uint64_t t0 = now_ms();
    while (*counter < want && now_ms() - t0 < max_ms) {
        uv_run(&fx->uv, UV_RUN_NOWAIT);
        if (*counter < want)
            usleep(1000);
    }
    return *counter >= want;
}

/* runs the loop for ms milliseconds */
static void run_for(struct fx *fx, uint64_t ms)
{
    uint64_t t0 = now_ms();
    while (now_ms() - t0 < ms) {
        uv_run(&fx->uv, UV_RUN_NOWAIT);
        usleep(1000);
    }
}

static int setup(void **state)
{
    struct fx *fx = calloc(1, sizeof *fx);
    assert_non_null(fx);
    assert_int_equal(uv_loop_init(&fx->uv), 0);
    assert_non_null(fx->l = mxg_dnsloop_new(&fx->uv));
    fx->gl = mxg_dnsloop_eventloop(fx->l);
    *state = fx;
    return 0;
}

/* cleanup like getdns_context_destroy(), run the loop once more, close it:
 * every handle must be closed (uv_loop_close() == 0) and, under ASan,
 * nothing leaked */
static int teardown(void **state)
{
    struct fx *fx = *state;
    if (!fx->cleaned)
        fx->gl->vmt->cleanup(fx->gl);
    if (fx->own_inited) /* a test failed before closing it */
        uv_close((uv_handle_t *)&fx->own.poll, NULL);
    uv_run(&fx->uv, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&fx->uv), 0);
    free(fx);
    return 0;
}

/* ------------------------------------------------------------ hooks */

static void hook_drain(struct tev *t)
{
    drain(t->fd);
}

static void hook_clear_self(struct tev *t)
{
    clear(t->fx, t);
}

static void hook_drain_clear_self(struct tev *t)
{
    drain(t->fd);
    clear(t->fx, t);
}

static void hook_clear_other(struct tev *t)
{
    drain(t->fd);
    clear(t->fx, t->other);
}

/* clears the other event and schedules it again at once, on the same fd:
 * the new one must not fire in this same dispatch */
static void hook_reschedule_other(struct tev *t)
{
    drain(t->fd);
    clear(t->fx, t->other);
    assert_int_equal(sched(t->fx, t->fd, NO_TIMEOUT, t->other), GETDNS_RETURN_GOOD);
}

/* what getdns does when it is done with a socket: clear, close */
static void hook_clear_close(struct tev *t)
{
    clear(t->fx, t);
    close(t->fd);
    if (t->sock[1] >= 0)
        close(t->sock[1]);
    t->fd = t->sock[1] = -1;
}

/* ------------------------------------------------------------ tests */

/* one read and one write event on the same fd: both fire, through one
 * per-fd record; clearing one leaves the other working; clearing the last
 * releases the fd at once */
static void test_two_events_one_fd(void **state)
{
    struct fx *fx = *state;
    struct tev r, w;
    int sv[2];

    sockpair(sv);
    tev_init(&r, fx, 1, 0, 0);
    tev_init(&w, fx, 0, 1, 0);
    r.fd = sv[0];
    r.on_read = hook_drain;
    assert_int_equal(sched(fx, sv[0], NO_TIMEOUT, &r), GETDNS_RETURN_GOOD);
    assert_int_equal(sched(fx, sv[0], NO_TIMEOUT, &w), GETDNS_RETURN_GOOD);
    assert_non_null(r.ev.ev);
    assert_non_null(w.ev.ev);
    assert_int_equal(stats(fx).events, 2);
    assert_int_equal(stats(fx).fds, 1); /* one uv_poll for both */

    put(sv[1], "x");
    assert_true(run_until(fx, &r.reads, 1, 2000));
    assert_true(run_until(fx, &w.writes, 1, 2000));

    /* clear the writer: the reader keeps working, the writer never fires */
    clear(fx, &w);
    assert_int_equal(stats(fx).events, 1);
    assert_int_equal(stats(fx).fds, 1);
    w.writes = 0;
    r.reads = 0;
    spin(fx, 5);
    assert_int_equal(r.reads, 0); /* nothing to read */
    put(sv[1], "y");
    assert_true(run_until(fx, &r.reads, 1, 2000));
    spin(fx, 5);
    assert_int_equal(w.writes, 0);

    /* clear the reader: the fd record goes at once */
    clear(fx, &r);
    assert_int_equal(stats(fx).events, 0);
    assert_int_equal(stats(fx).fds, 0);
    put(sv[1], "z");
    r.reads = 0;
    spin(fx, 5);
    assert_int_equal(r.reads, 0);
    close(sv[0]);
    close(sv[1]);
}

/* a read callback that clears its own event: it fires once, although the
 * fd stays readable */
static void test_clear_self_in_callback(void **state)
{
    struct fx *fx = *state;
    struct tev r;
    int sv[2];

    sockpair(sv);
    tev_init(&r, fx, 1, 0, 1);
    r.fd = sv[0];
    r.on_read = hook_clear_self; /* does not drain: still readable */
    assert_int_equal(sched(fx, sv[0], 5000, &r), GETDNS_RETURN_GOOD);
    put(sv[1], "x");
    assert_true(run_until(fx, &r.reads, 1, 2000));
    spin(fx, 10);
    assert_int_equal(r.reads, 1);
    assert_int_equal(r.timeouts, 0);
    assert_null(r.ev.ev);
    assert_int_equal(stats(fx).events, 0);
    assert_int_equal(stats(fx).fds, 0);
    assert_int_equal(stats(fx).timers, 0);
    close(sv[0]);
    close(sv[1]);
}

/* a and b: read events without a timeout, both scheduled (a first) on
 * sv[0] of a new socket pair; the caller sets their hooks */
static void two_readers(struct fx *fx, int sv[2], struct tev *a, struct tev *b)
{
    sockpair(sv);
    tev_init(a, fx, 1, 0, 0);
    tev_init(b, fx, 1, 0, 0);
    a->fd = b->fd = sv[0];
    assert_int_equal(sched(fx, sv[0], NO_TIMEOUT, a), GETDNS_RETURN_GOOD);
    assert_int_equal(sched(fx, sv[0], NO_TIMEOUT, b), GETDNS_RETURN_GOOD);
}

/* two read events on one readable fd; the first to run clears the second,
 * which was in the same dispatch: the second never runs */
static void test_clear_other_in_callback(void **state)
{
    struct fx *fx = *state;
    struct tev a, b;
    int sv[2];

    two_readers(fx, sv, &a, &b);
    a.on_read = hook_clear_other;
    a.other = &b;
    b.on_read = hook_clear_other;
    b.other = &a;
    put(sv[1], "x");
    /* exactly one of them ran (events on an fd run in schedule order: a) */
    assert_true(run_until(fx, &a.reads, 1, 2000));
    assert_int_equal(b.reads, 0);
    assert_null(b.ev.ev);
    assert_non_null(a.ev.ev);
    assert_int_equal(stats(fx).events, 1);
    assert_int_equal(stats(fx).fds, 1);
    clear(fx, &a);
    assert_int_equal(stats(fx).fds, 0);
    close(sv[0]);
    close(sv[1]);
}

/* the first callback clears the second event and schedules it again on the
 * same fd (malloc may hand out the same record address): the new schedule
 * is not run in this dispatch, but in a later one */
static void test_reschedule_other_in_callback(void **state)
{
    struct fx *fx = *state;
    struct tev a, b;
    int sv[2];

    two_readers(fx, sv, &a, &b);
    a.on_read = hook_reschedule_other;
    a.other = &b;
    put(sv[1], "x");
    assert_true(run_until(fx, &a.reads, 1, 2000));
    assert_int_equal(b.reads, 0); /* a drained the data, and b is a new schedule */
    assert_non_null(b.ev.ev);
    a.on_read = hook_drain;
    b.on_read = hook_drain;
    put(sv[1], "y");
    assert_true(run_until(fx, &b.reads, 1, 2000));
    clear(fx, &a);
    clear(fx, &b);
    assert_int_equal(stats(fx).fds, 0);
    close(sv[0]);
    close(sv[1]);
}

/* a callback clears the last event on its fd and closes the socket (as
 * getdns does); a new socket then takes the same number and works */
static void test_clear_and_close_in_callback(void **state)
{
    struct fx *fx = *state;
    struct tev r, n;
    int sv[2], sv2[2];

    sockpair(sv);
    tev_init(&r, fx, 1, 0, 1);
    r.fd = sv[0];
    r.sock[1] = sv[1];
    r.on_read = hook_clear_close;
    assert_int_equal(sched(fx, sv[0], 5000, &r), GETDNS_RETURN_GOOD);
    put(sv[1], "x");
    assert_true(run_until(fx, &r.reads, 1, 2000));
    assert_int_equal(stats(fx).fds, 0);
    assert_int_equal(stats(fx).events, 0);

    sockpair(sv2);
    assert_int_equal(sv2[0], sv[0]); /* the lowest free numbers again */
    tev_init(&n, fx, 1, 0, 0);
    n.fd = sv2[0];
    n.on_read = hook_drain;
    assert_int_equal(sched(fx, sv2[0], NO_TIMEOUT, &n), GETDNS_RETURN_GOOD);
    put(sv2[1], "y");
    assert_true(run_until(fx, &n.reads, 1, 2000));
    assert_int_equal(stats(fx).stale_fds, 0);
    clear(fx, &n);
    close(sv2[0]);
    close(sv2[1]);
}

/* a timeout-only event (fd -1): fires once, not before its time */
static void test_timeout_only(void **state)
{
    struct fx *fx = *state;
    struct tev t;

    tev_init(&t, fx, 0, 0, 1);
    uint64_t t0 = now_ms();
    assert_int_equal(sched(fx, -1, 60, &t), GETDNS_RETURN_GOOD);
    assert_non_null(t.ev.ev);
    assert_int_equal(stats(fx).fds, 0);
    assert_int_equal(stats(fx).timers, 1);
    spin(fx, 3);
    assert_int_equal(t.timeouts, 0);
    assert_true(run_until(fx, &t.timeouts, 1, 2000));
    assert_true(now_ms() - t0 >= 58);
    run_for(fx, 100);
    assert_int_equal(t.timeouts, 1); /* once */
    assert_non_null(t.ev.ev);        /* still scheduled until getdns clears it */
    clear(fx, &t);
    assert_int_equal(stats(fx).timers, 0);

    /* read/write callbacks with fd -1 are ignored (getdns' loops do the same) */
    tev_init(&t, fx, 1, 1, 1);
    assert_int_equal(sched(fx, -1, 10, &t), GETDNS_RETURN_GOOD);
    assert_int_equal(stats(fx).fds, 0);
    assert_true(run_until(fx, &t.timeouts, 1, 2000));
    assert_int_equal(t.reads + t.writes, 0);
    clear(fx, &t);

    /* no timeout (TIMEOUT_FOREVER) and no fd: scheduled, never fires */
    tev_init(&t, fx, 0, 0, 1);
    assert_int_equal(sched(fx, -1, NO_TIMEOUT, &t), GETDNS_RETURN_GOOD);
    assert_non_null(t.ev.ev);
    assert_int_equal(stats(fx).timers, 0);
    spin(fx, 3);
    assert_int_equal(t.timeouts, 0);
    clear(fx, &t);
}

/* fd + timeout: data first -> read callback (which clears, as getdns does),
 * no timeout; no data -> the timeout, no read */
static void test_fd_with_timeout(void **state)
{
    struct fx *fx = *state;
    struct tev r;
    int sv[2];

    sockpair(sv);
    tev_init(&r, fx, 1, 0, 1);
    r.fd = sv[0];
    r.on_read = hook_drain_clear_self;
    assert_int_equal(sched(fx, sv[0], 80, &r), GETDNS_RETURN_GOOD);
    put(sv[1], "x");
    assert_true(run_until(fx, &r.reads, 1, 2000));
    run_for(fx, 150); /* past the timeout */
    assert_int_equal(r.reads, 1);
    assert_int_equal(r.timeouts, 0);

    tev_init(&r, fx, 1, 0, 1);
    r.fd = sv[0];
    r.on_timeout = hook_clear_self;
    uint64_t t0 = now_ms();
    assert_int_equal(sched(fx, sv[0], 50, &r), GETDNS_RETURN_GOOD);
    assert_true(run_until(fx, &r.timeouts, 1, 2000));
    assert_true(now_ms() - t0 >= 48);
    assert_int_equal(r.reads, 0);
    assert_int_equal(stats(fx).events, 0);
    assert_int_equal(stats(fx).fds, 0);
    close(sv[0]);
    close(sv[1]);
}

/* an fd number reused after clear + close gets a fresh record */
static void test_reuse_after_clear(void **state)
{
    struct fx *fx = *state;
    struct tev a, b;
    int sv[2], sv2[2];

    sockpair(sv);
    tev_init(&a, fx, 1, 1, 0);
    a.fd = sv[0];
    a.on_read = hook_drain;
    assert_int_equal(sched(fx, sv[0], NO_TIMEOUT, &a), GETDNS_RETURN_GOOD);
    spin(fx, 2); /* armed */
    assert_true(a.writes > 0);
    clear(fx, &a);
    close(sv[0]);
    close(sv[1]);
    /* no loop iteration in between: the new socket is polled at once */
    sockpair(sv2);
    assert_int_equal(sv2[0], sv[0]);
    tev_init(&b, fx, 1, 0, 0);
    b.fd = sv2[0];
    b.on_read = hook_drain;
    assert_int_equal(sched(fx, sv2[0], NO_TIMEOUT, &b), GETDNS_RETURN_GOOD);
    put(sv2[1], "y");
    assert_true(run_until(fx, &b.reads, 1, 2000));
    assert_int_equal(stats(fx).stale_fds, 0);
    assert_int_equal(stats(fx).fds, 1);
    clear(fx, &b);
    close(sv2[0]);
    close(sv2[1]);
}

/* getdns closes a socket while an event still watches it (its TCP fallback
 * can), a new socket takes the number and gets an event: the stale record
 * is retired (no libuv abort, no second uv_poll on the fd), the new event
 * works, the old one stays scheduled (unpolled, its timeout still runs)
 * until cleared */
static void test_reuse_without_clear(void **state)
{
    struct fx *fx = *state;
    struct tev old, nw;
    int sv[2], sv2[2];

    sockpair(sv);
    tev_init(&old, fx, 1, 0, 1);
    old.fd = sv[0];
    assert_int_equal(sched(fx, sv[0], 100, &old), GETDNS_RETURN_GOOD);
    spin(fx, 2); /* armed in libuv */
    close(sv[0]); /* not cleared: the bug */
    close(sv[1]);
    sockpair(sv2);
    assert_int_equal(sv2[0], sv[0]);
    tev_init(&nw, fx, 1, 0, 0);
    nw.fd = sv2[0];
    nw.on_read = hook_drain;
    assert_int_equal(sched(fx, sv2[0], NO_TIMEOUT, &nw), GETDNS_RETURN_GOOD);
    assert_int_equal(stats(fx).stale_fds, 1);
    assert_int_equal(stats(fx).events, 2);
    assert_int_equal(stats(fx).fds, 1);
    put(sv2[1], "y");
    assert_true(run_until(fx, &nw.reads, 1, 2000));
    assert_int_equal(old.reads, 0);
    assert_true(run_until(fx, &old.timeouts, 1, 2000));
    clear(fx, &old);
    clear(fx, &nw);
    assert_int_equal(stats(fx).fds, 0);
    close(sv2[0]);
    close(sv2[1]);

    /* closed under an event and NOT reused, then the interest changes (a
     * second event on it): re-arming would make epoll_ctl fail and libuv
     * abort; the record is retired instead; neither event gets a read /
     * write callback, their timeouts still run (new getdns events: `old`
     * itself, retired from this number above, would not be polled on it
     * again, see test_dead_number_rescheduled) */
    struct tev old2, nw2;
    sockpair(sv);
    tev_init(&old2, fx, 1, 0, 1);
    assert_int_equal(sched(fx, sv[0], 40, &old2), GETDNS_RETURN_GOOD);
    spin(fx, 2);
    int dead = sv[0];
    close(sv[1]);
    close(dead); /* not cleared, number not reused */
    tev_init(&nw2, fx, 0, 1, 1);
    assert_int_equal(sched(fx, dead, 20, &nw2), GETDNS_RETURN_GOOD); /* EBADF */
    assert_int_equal(stats(fx).stale_fds, 2);
    assert_int_equal(stats(fx).fds, 0);
    assert_int_equal(stats(fx).events, 2);
    assert_true(run_until(fx, &nw2.timeouts, 1, 2000)); /* the timeouts still run */
    assert_true(run_until(fx, &old2.timeouts, 1, 2000));
    assert_int_equal(nw2.writes + old2.reads, 0);
    clear(fx, &old2);
    clear(fx, &nw2);
}

/* an event scheduled on a closed fd whose number is then taken by a new
 * socket: never polled (the fd is someone else's now), only its timeout */
static void test_closed_fd_reused_before_report(void **state)
{
    struct fx *fx = *state;
    struct tev t;
    int sv[2], sv2[2];

    sockpair(sv);
    close(sv[0]);
    close(sv[1]);
    tev_init(&t, fx, 1, 1, 1);
    assert_int_equal(sched(fx, sv[0], 30, &t), GETDNS_RETURN_GOOD); /* EBADF */
    assert_int_equal(stats(fx).unpolled, 1);
    sockpair(sv2);
    assert_int_equal(sv2[0], sv[0]);
    put(sv2[1], "x");
    assert_true(run_until(fx, &t.timeouts, 1, 2000));
    assert_int_equal(t.reads + t.writes, 0);
    assert_int_equal(stats(fx).fds, 0);
    clear(fx, &t);
    close(sv2[0]);
    close(sv2[1]);
}

/* what getdns' UDP->TCP fallback does: the query's fd is the upstream's TCP
 * fd; the query ends and closes it, the upstream reschedules on the dead
 * number (its write queue changed), then a new socket (another query's)
 * takes the number and is polled: the dead upstream event never runs for
 * it, the new socket's event does; no libuv abort */
static void test_upstream_fd_closed_by_query(void **state)
{
    struct fx *fx = *state;
    struct tev up, q, u2;
    int sv[2], sv2[2];

    sockpair(sv);
    tev_init(&up, fx, 1, 1, 0);
    up.fd = sv[0];
    tev_init(&q, fx, 0, 0, 1); /* the query: timeout only */
    assert_int_equal(sched(fx, sv[0], NO_TIMEOUT, &up), GETDNS_RETURN_GOOD);
    assert_int_equal(sched(fx, -1, 10000, &q), GETDNS_RETURN_GOOD);
    spin(fx, 2);
    /* the query is cancelled: clear, then close "its" fd */
    clear(fx, &q);
    close(sv[0]);
    /* the upstream reschedules on the dead number */
    clear(fx, &up);
    up.writes = 0;
    assert_int_equal(sched(fx, up.fd, NO_TIMEOUT, &up), GETDNS_RETURN_GOOD);
    assert_int_equal(stats(fx).unpolled, 1);
    close(sv[1]);
    spin(fx, 3);
    /* another query's socket takes the number */
    sockpair(sv2);
    assert_int_equal(sv2[0], up.fd);
    tev_init(&u2, fx, 1, 0, 0);
    u2.fd = sv2[0];
    u2.on_read = hook_drain;
    assert_int_equal(sched(fx, sv2[0], NO_TIMEOUT, &u2), GETDNS_RETURN_GOOD);
    put(sv2[1], "x");
    assert_true(run_until(fx, &u2.reads, 1, 2000));
    spin(fx, 3);
    assert_int_equal(up.reads + up.writes, 0); /* not run for someone else's socket */
    clear(fx, &up);
    clear(fx, &u2);
    assert_int_equal(stats(fx).events, 0);
    spin(fx, 1); /* close callbacks */
    assert_int_equal(stats(fx).handles, 1); /* only the prepare handle is left */
    close(sv2[0]);
    close(sv2[1]);
}

static void own_cb(uv_poll_t *h, int status, int events)
{
    struct own *o = h->data;
    if (status == 0 && (events & UV_READABLE)) {
        o->reads++;
        drain(o->fd);
    }
}

/* getdns schedules g (read + timeout) on a socketpair, lets the loop arm
 * it, then closes its end without clearing g; mxguard's own socket takes
 * the number and gets its own uv_poll (which libuv refuses with UV_EEXIST
 * if it still has a watcher for that number); returns the dead number */
static int dead_number_taken(struct fx *fx, struct tev *g, int sv[2], int sv2[2])
{
    struct own *o = &fx->own;
    sockpair(sv);
    tev_init(g, fx, 1, 0, 1);
    assert_int_equal(sched(fx, sv[0], 60, g), GETDNS_RETURN_GOOD);
    spin(fx, 2); /* armed */
    int x = sv[0];
    close(x); /* not cleared: getdns' TCP fallback */
    sockpair(sv2);
    assert_int_equal(sv2[0], x);
    memset(o, 0, sizeof *o);
    o->fd = x;
    assert_int_equal(uv_poll_init(&fx->uv, &o->poll, x), 0);
    fx->own_inited = 1;
    o->poll.data = o;
    assert_int_equal(uv_poll_start(&o->poll, UV_READABLE, own_cb), 0);
    return x;
}

/* mxguard's own socket takes the number getdns closed under a scheduled
 * event: the loop retires its stale record on the next iteration (without
 * any new schedule), without touching the new socket's registration (it
 * polls a duplicate); the new handle keeps getting its events, the getdns
 * event none (its timeout runs); the duplicate is closed (the old peer
 * sees EOF) */
static void test_own_socket_takes_dead_number(void **state)
{
    struct fx *fx = *state;
    struct tev g;
    struct own *o = &fx->own;
    int sv[2], sv2[2];
    char c;

    dead_number_taken(fx, &g, sv, sv2);
    spin(fx, 2); /* the prepare sweep retires the record, its close callback closes the dup */
    assert_int_equal(stats(fx).stale_fds, 1);
    assert_int_equal(stats(fx).fds, 0);
    assert_int_equal(recv(sv[1], &c, 1, MSG_DONTWAIT), 0); /* EOF: nobody holds that socket */
    put(sv2[1], "x");
    assert_true(run_until(fx, &o->reads, 1, 2000));
    assert_true(run_until(fx, &g.timeouts, 1, 2000));
    assert_int_equal(g.reads, 0);
    clear(fx, &g);
    spin(fx, 2);
    put(sv2[1], "y"); /* still registered in epoll after all that */
    assert_true(run_until(fx, &o->reads, 2, 2000));
    assert_int_equal(g.reads, 0);
    uv_close((uv_handle_t *)&o->poll, NULL);
    fx->own_inited = 0;
    spin(fx, 1);
    close(sv[1]);
    close(sv2[0]);
    close(sv2[1]);
}

/* getdns schedules the same event again on the number it was retired from
 * (now mxguard's socket, readable): not polled, only its timeout; on
 * another fd it is polled again */
static void test_dead_number_rescheduled(void **state)
{
    struct fx *fx = *state;
    struct tev g;
    struct own *o = &fx->own;
    int sv[2], sv2[2], sv3[2];

    int x = dead_number_taken(fx, &g, sv, sv2);
    spin(fx, 2); /* retired */
    assert_int_equal(stats(fx).stale_fds, 1);
    uint64_t unpolled = stats(fx).unpolled;
    clear(fx, &g);
    g.on_read = hook_drain;
    g.fd = x;
    assert_int_equal(sched(fx, x, 30, &g), GETDNS_RETURN_GOOD);
    assert_non_null(g.ev.ev);
    assert_int_equal(stats(fx).unpolled, unpolled + 1);
    assert_int_equal(stats(fx).fds, 0);
    put(sv2[1], "x");
    assert_true(run_until(fx, &o->reads, 1, 2000));
    assert_true(run_until(fx, &g.timeouts, 1, 2000));
    assert_int_equal(g.reads, 0);
    /* cleared and scheduled once more on the same number: still refused */
    clear(fx, &g);
    assert_int_equal(sched(fx, x, 20, &g), GETDNS_RETURN_GOOD);
    assert_int_equal(stats(fx).fds, 0);
    put(sv2[1], "y");
    assert_true(run_until(fx, &g.timeouts, 2, 2000));
    assert_true(run_until(fx, &o->reads, 2, 2000));
    assert_int_equal(g.reads, 0);
    /* on another socket it is polled */
    clear(fx, &g);
    sockpair(sv3);
    g.fd = sv3[0];
    assert_int_equal(sched(fx, sv3[0], NO_TIMEOUT, &g), GETDNS_RETURN_GOOD);
    assert_int_equal(stats(fx).fds, 1);
    put(sv3[1], "z");
    assert_true(run_until(fx, &g.reads, 1, 2000));
    clear(fx, &g);
    uv_close((uv_handle_t *)&o->poll, NULL);
    fx->own_inited = 0;
    spin(fx, 1);
    close(sv[1]);
    close(sv2[0]);
    close(sv2[1]);
    close(sv3[0]);
    close(sv3[1]);
}

/* clears the event once its socket error was read */
static void hook_recv_error(struct tev *t)
{
    char buf[64];
    ssize_t n = recv(t->fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n < 0 && errno == ECONNREFUSED)
        t->errors++;
    else if (n > 0)
        clear(t->fx, t);
}

/* a socket error (POLLERR: libuv stops the poll and reports UV_EBADF) runs
 * the read callback so that getdns' recv() sees it; the poll is re-armed:
 * a later datagram is delivered too */
static void test_socket_error(void **state)
{
    struct fx *fx = *state;
    struct tev r;
    struct sockaddr_in a = {.sin_family = AF_INET}, b = {.sin_family = AF_INET};
    socklen_t alen = sizeof a;
    int u = socket(AF_INET, SOCK_DGRAM, 0), v = socket(AF_INET, SOCK_DGRAM, 0);

    assert_true(u >= 0 && v >= 0);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    b.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    /* v: bound to a port, not yet reading; u connected to it */
    assert_int_equal(bind(v, (struct sockaddr *)&b, sizeof b), 0);
    assert_int_equal(getsockname(v, (struct sockaddr *)&b, &alen), 0);
    assert_int_equal(bind(u, (struct sockaddr *)&a, sizeof a), 0);
    alen = sizeof a;
    assert_int_equal(getsockname(u, (struct sockaddr *)&a, &alen), 0);
    assert_int_equal(connect(u, (struct sockaddr *)&b, sizeof b), 0);
    close(v); /* nobody there any more: u's next send gets ICMP port unreachable */
    assert_int_equal(send(u, "q", 1, 0), 1);

    tev_init(&r, fx, 1, 0, 0);
    r.fd = u;
    r.on_read = hook_recv_error;
    assert_int_equal(sched(fx, u, NO_TIMEOUT, &r), GETDNS_RETURN_GOOD);
    assert_true(run_until(fx, &r.errors, 1, 2000)); /* the error reached recv() */
    /* a datagram from the connected peer's address: delivered after re-arm */
    v = socket(AF_INET, SOCK_DGRAM, 0);
    int one = 1;
    setsockopt(v, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    assert_int_equal(bind(v, (struct sockaddr *)&b, sizeof b), 0);
    assert_int_equal(sendto(v, "a", 1, 0, (struct sockaddr *)&a, sizeof a), 1);
    int before = r.reads;
    assert_true(run_until(fx, &r.reads, before + 1, 2000));
    assert_null(r.ev.ev); /* the hook cleared it on data */
    close(u);
    close(v);
}

/* an fd libuv cannot poll (/dev/null: epoll refuses it): the event is kept
 * with its timeout only */
static void test_unpollable_fd(void **state)
{
    struct fx *fx = *state;
    struct tev r;
    int fd = open("/dev/null", O_RDONLY);

    assert_true(fd >= 0);
    tev_init(&r, fx, 1, 0, 1);
    r.on_timeout = hook_clear_self;
    assert_int_equal(sched(fx, fd, 20, &r), GETDNS_RETURN_GOOD);
    assert_non_null(r.ev.ev);
    assert_int_equal(stats(fx).unpolled, 1);
    assert_int_equal(stats(fx).fds, 0);
    assert_true(run_until(fx, &r.timeouts, 1, 2000));
    assert_int_equal(r.reads, 0);
    close(fd);
}

/* scheduling an event that is still scheduled replaces it (one record) */
static void test_schedule_twice(void **state)
{
    struct fx *fx = *state;
    struct tev r;
    int sv[2];

    sockpair(sv);
    tev_init(&r, fx, 1, 0, 1);
    r.fd = sv[0];
    r.on_read = hook_drain_clear_self;
    assert_int_equal(sched(fx, sv[0], 30, &r), GETDNS_RETURN_GOOD);
    assert_int_equal(sched(fx, sv[0], 5000, &r), GETDNS_RETURN_GOOD);
    assert_int_equal(stats(fx).events, 1);
    assert_int_equal(stats(fx).timers, 1);
    run_for(fx, 80); /* the first timeout (30 ms) is gone */
    assert_int_equal(r.timeouts, 0);
    put(sv[1], "x");
    assert_true(run_until(fx, &r.reads, 1, 2000));
    close(sv[0]);
    close(sv[1]);
}

/* cleanup with events still scheduled (fd, timer, both), a late clear of
 * one of them (libunbound's teardown does that after getdns' cleanup),
 * scheduling after cleanup fails; the teardown's uv_run closes everything
 * and frees the loop (ASan/LSan: no leak, no use after free) */
static void test_cleanup_with_active_events(void **state)
{
    struct fx *fx = *state;
    struct tev a, b, c, d;
    int sv[2];

    sockpair(sv);
    tev_init(&a, fx, 1, 1, 0);
    tev_init(&b, fx, 0, 0, 1);
    tev_init(&c, fx, 1, 0, 1);
    tev_init(&d, fx, 0, 0, 1);
    assert_int_equal(sched(fx, sv[0], NO_TIMEOUT, &a), GETDNS_RETURN_GOOD);
    assert_int_equal(sched(fx, -1, 10, &b), GETDNS_RETURN_GOOD);
    assert_int_equal(sched(fx, sv[0], 10000, &c), GETDNS_RETURN_GOOD);
    spin(fx, 2);
    assert_true(a.writes > 0); /* armed and running */
    a.writes = 0;
    assert_int_equal(stats(fx).events, 3);
    fx->gl->vmt->cleanup(fx->gl);
    fx->cleaned = 1;
    clear(fx, &c); /* late clear: still safe */
    assert_int_not_equal(sched(fx, -1, 10, &d), GETDNS_RETURN_GOOD);
    assert_null(d.ev.ev);
    put(sv[1], "x");
    spin(fx, 3); /* handles closing: no callback any more */
    assert_int_equal(a.reads + a.writes + b.timeouts + c.reads, 0);
    close(sv[0]);
    close(sv[1]);
}

/* cleanup of a loop that never had a handle frees it at once: uv_loop_close
 * works without running the loop (mxg_dns_new's failure paths) */
static void test_cleanup_unused(void **state)
{
    struct fx *fx = *state;
    struct tev t;

    tev_init(&t, fx, 0, 0, 1);
    assert_int_equal(sched(fx, -1, NO_TIMEOUT, &t), GETDNS_RETURN_GOOD); /* no handle */
    clear(fx, &t);
    mxg_dnsloop_discard(fx->l);
    fx->cleaned = 1;
    assert_int_equal(uv_loop_close(&fx->uv), 0);
    assert_int_equal(uv_loop_init(&fx->uv), 0); /* for the teardown */
}

/* run and run_once never block nor run the uv loop (mxguard drives it) */
static void test_run_does_nothing(void **state)
{
    struct fx *fx = *state;
    struct tev t;

    tev_init(&t, fx, 0, 0, 1);
    assert_int_equal(sched(fx, -1, 0, &t), GETDNS_RETURN_GOOD);
    fx->gl->vmt->run(fx->gl);
    fx->gl->vmt->run_once(fx->gl, 1);
    fx->gl->vmt->run_once(fx->gl, 0);
    assert_int_equal(t.timeouts, 0);
    assert_true(run_until(fx, &t.timeouts, 1, 2000));
    clear(fx, &t);
}

/* many events on many fds and on one fd, cleared in a scrambled order */
static void test_many_events(void **state)
{
    struct fx *fx = *state;
    enum { N = 40 };
    static struct tev ev[N];
    int sv[N / 2][2];

    for (int i = 0; i < N / 2; i++)
        sockpair(sv[i]);
    for (int i = 0; i < N; i++) {
        tev_init(&ev[i], fx, 1, i % 3 == 0, 1);
        ev[i].fd = sv[i % (N / 2)][0];
        ev[i].on_read = hook_drain;
        assert_int_equal(sched(fx, ev[i].fd, 10000, &ev[i]), GETDNS_RETURN_GOOD);
    }
    assert_int_equal(stats(fx).fds, N / 2);
    assert_int_equal(stats(fx).events, N);
    for (int i = 0; i < N / 2; i++)
        put(sv[i][1], "x");
    for (int i = 0; i < N; i++) /* both events of an fd run, though the first drained it */
        assert_true(run_until(fx, &ev[i].reads, 1, 2000));
    for (int i = 0; i < N; i++)
        clear(fx, &ev[(i * 7) % N]);
    assert_int_equal(stats(fx).events, 0);
    assert_int_equal(stats(fx).fds, 0);
    assert_int_equal(stats(fx).timers, 0);
    for (int i = 0; i < N / 2; i++) {
        close(sv[i][0]);
        close(sv[i][1]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_two_events_one_fd, setup, teardown),
        cmocka_unit_test_setup_teardown(test_clear_self_in_callback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_clear_other_in_callback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reschedule_other_in_callback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_clear_and_close_in_callback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timeout_only, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fd_with_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reuse_after_clear, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reuse_without_clear, setup, teardown),
        cmocka_unit_test_setup_teardown(test_closed_fd_reused_before_report, setup, teardown),
        cmocka_unit_test_setup_teardown(test_upstream_fd_closed_by_query, setup, teardown),
        cmocka_unit_test_setup_teardown(test_own_socket_takes_dead_number, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dead_number_rescheduled, setup, teardown),
        cmocka_unit_test_setup_teardown(test_socket_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unpollable_fd, setup, teardown),
        cmocka_unit_test_setup_teardown(test_schedule_twice, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cleanup_with_active_events, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cleanup_unused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_run_does_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_events, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
