/* dns/dns_loop.c — see dns_loop.h.
 *
 * Structures:
 *  - struct dl_event: one per scheduled getdns event (getdns' ev->ev points
 *    to it). Unique id per schedule, so that a dispatch can tell "the event I
 *    snapshotted" from a new one that malloc put at the same address.
 *  - struct dl_fd: one per polled fd; holds the uv_poll_t, the socket's
 *    identity, a private duplicate of getdns' fd and the list of its events.
 *    Indexed by getdns' fd number (byfd). Freed by the poll's close
 *    callback (which also closes the duplicate); it leaves byfd at once
 *    when closed.
 *  - struct dl_timer: the uv_timer_t of one event (its own allocation: the
 *    event may be freed while the timer is still closing).
 * Dispatch: a poll callback snapshots the ids of the fd's events and, for
 * each id still on the fd after the previous callbacks, calls write_cb then
 * read_cb (as getdns' poll loop does), so callbacks may clear or schedule
 * any event, close sockets, even clean the loop up: nothing freed is touched
 * (the dl_fd lives until its close callback, which runs after this one).
 * Timeouts are one-shot and measured from the schedule (like getdns' own
 * poll loop and its libuv extension; getdns reschedules what it wants
 * again).
 * Duplicates: libuv never sees getdns' fd numbers. Each record polls
 * dupfd = fcntl(fd, F_DUPFD_CLOEXEC). Were X itself polled, and getdns
 * closed X without clearing its events (its UDP->TCP fallback does), libuv
 * would keep our uv_poll in its watcher table for X; a socket of mxguard's
 * own (a uv_tcp) that then got number X would not replace it, and retiring
 * the stale record (uv_poll_stop) would EPOLL_CTL_DEL X, i.e. the NEW
 * socket's registration (that connection hangs; libuv later aborts on an
 * EPOLL_CTL_MOD failing with ENOENT). The duplicate is closed only in the
 * poll's close callback, after uv_close(), once libuv stopped watching it.
 * As the duplicate keeps the socket open after getdns closed its number,
 * the prepare callback checks EVERY record on each loop iteration (one
 * fstat per record; there are few) and retires the dead or reused ones at
 * once.
 * Arming: a changed interest set (or a new fd) is queued and applied from a
 * uv_prepare callback, right before libuv polls, after re-checking that
 * getdns' fd still names the same socket (uv_poll_start() in libuv 1.44
 * always returns 0; an fd that is not pollable would make libuv abort()
 * later, in epoll_ctl: that fd_check right before it is what guarantees the
 * fd is open).
 * Dead numbers: when a record is retired because getdns' fd was closed or
 * reused, its events remember that number (dead_fd); when getdns clears
 * such an event, the loop remembers (getdns event, number) in a small ring.
 * If getdns schedules the same event on the same number again (it keeps
 * using the dead number), that schedule gets only its timeout: the number
 * may now be one of mxguard's sockets.
 * Closed fds: an event on an fd that is closed (at schedule, or found closed
 * later) keeps only its timeout; no read/write callback is ever run for it.
 * (getdns' own poll() loop would run them, as for POLLNVAL, so that getdns
 * notices the dead socket. Tried here: under getdns' UDP->TCP fallback,
 * which closes its TCP upstream's fd from a query's side, that drove getdns
 * 1.6.0 into a double free, and into closing fd numbers that other sockets
 * had taken meanwhile (libuv abort()), in most cold-burst runs against a
 * rate-limiting nsd; without it in none. The queries on such an upstream
 * time out instead.)
 */
#include "dns_loop.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <unistd.h>

#include "../core/log.h"

#define COMP "dns"
#define DL_NO_TIMEOUT UINT64_MAX     /* getdns' TIMEOUT_FOREVER */
#define DL_EV_MAGIC 0x6d78646cu      /* "mxdl": sanity check in clear() */
#define DL_SNAP 16                   /* ids snapshotted on the stack per dispatch */
#define DL_RW (UV_READABLE | UV_WRITABLE)
#define DL_DEAD 32                   /* (getdns event, dead fd number) pairs remembered */

enum dl_loop_state { DL_LOOP_RUNNING, DL_LOOP_CLEANED };
enum dl_ev_state { DL_EV_SCHEDULED, DL_EV_ZOMBIE }; /* zombie: loop cleaned up, clear() may follow */
enum dl_fd_state { DL_FD_OPEN, DL_FD_CLOSING };
enum dl_fd_check { DL_FD_SAME, DL_FD_CLOSED, DL_FD_REUSED }; /* what fd_check() found */

struct dl_fd;
struct dl_timer;

struct dl_event {
    uint32_t magic;
    enum dl_ev_state state;
    struct mxg_dnsloop *loop;
    getdns_eventloop_event *gev;    /* getdns' event (not owned) */
    uint64_t id;
    int want;                       /* DL_RW bits asked for on the fd */
    int dead_fd;                    /* -1, or getdns' fd number this event was retired from */
    struct dl_fd *fdr;              /* NULL: no fd polled for it */
    struct dl_event *fprev, *fnext; /* in fdr's list */
    struct dl_timer *tm;            /* NULL: no timeout */
    struct dl_event *prev, *next;   /* in the loop's list of every event */
};

struct dl_fd {
    uv_poll_t poll;                 /* data = this; freed by its close callback */
    enum dl_fd_state state;
    struct mxg_dnsloop *loop;
    int fd;                         /* getdns' fd number (not owned; byfd index) */
    int dupfd;                      /* owned duplicate libuv polls; closed by on_fd_closed */
    dev_t dev;                      /* identity of the socket when first polled */
    ino_t ino;
    const char *kind;               /* "TCP", "UDP", "socket": for log lines */
    int armed;                      /* interest libuv has now (0: stopped) */
    struct dl_event *head, *tail;
    size_t n;
    int pending;                    /* queued for (re)arming */
    struct dl_fd *pprev, *pnext;
};

struct dl_timer {
    uv_timer_t timer;               /* data = this; freed by its close callback */
    struct mxg_dnsloop *loop;
    struct dl_event *ev;            /* NULL once the event is gone (or a reaper) */
};

/* A getdns event that was retired from fd number fd and then cleared. */
struct dl_dead {
    const getdns_eventloop_event *gev; /* NULL: free slot (not dereferenced) */
    int fd;
};

struct mxg_dnsloop {
    getdns_eventloop base;          /* first: getdns hands &base back */
    getdns_eventloop_vmt vmt;       /* base.vmt points here */
    enum dl_loop_state state;
    uv_loop_t *uv;
    uv_prepare_t prepare;           /* applies queued arming */
    int prepare_inited;
    uint64_t last_warn;             /* uv_now() of the last warning (1 per second) */
    struct dl_fd **byfd;            /* open fd records by fd number */
    size_t nbyfd;
    struct dl_fd *pend_head, *pend_tail;
    struct dl_event *evs;           /* every event, scheduled or zombie */
    struct dl_dead dead[DL_DEAD];   /* ring of retired events getdns cleared */
    size_t dead_next;               /* next slot of dead to overwrite */
    size_t nevents, nfds, ntimers, nhandles;
    uint64_t next_id;
    uint64_t stale_fds, unpolled, reinits;
    int warned_run;
};

static void dl_cleanup(getdns_eventloop *gl);

/* ------------------------------------------------------------ freeing */

/* Frees l and the events left (zombies). Only once no uv handle of l is
 * open or closing. */
static void loop_free(struct mxg_dnsloop *l)
{
    while (l->evs) {
        struct dl_event *e = l->evs;
        l->evs = e->next;
        e->magic = 0;
        free(e);
    }
    free(l->byfd);
    free(l);
}

/* One of l's handles finished closing: after cleanup, the last one frees l. */
static void handle_closed(struct mxg_dnsloop *l)
{
    l->nhandles--;
    if (l->state == DL_LOOP_CLEANED && l->nhandles == 0)
        loop_free(l);
}

/* Close callback of a dl_fd's poll: libuv no longer watches the duplicate,
 * so it is closed now; frees the record. */
static void on_fd_closed(uv_handle_t *h)
{
    struct dl_fd *f = h->data;
    struct mxg_dnsloop *l = f->loop;
    close(f->dupfd);
    free(f);
    handle_closed(l);
}

/* Close callback of a dl_timer (or the reaper): frees it. */
static void on_timer_closed(uv_handle_t *h)
{
    struct dl_timer *tm = h->data;
    struct mxg_dnsloop *l = tm->loop;
    free(tm);
    handle_closed(l);
}

/* Close callback of the prepare handle (embedded in l). */
static void on_embedded_closed(uv_handle_t *h)
{
    handle_closed(h->data);
}

/* A warning about getdns' use of fds, at most one per second per loop (the
 * counters in mxg_dnsloop_stats count them all); the others at debug. */
static void warn_fd(struct mxg_dnsloop *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void warn_fd(struct mxg_dnsloop *l, const char *fmt, ...)
{
    va_list ap;
    uint64_t now = uv_now(l->uv);
    enum mxg_log_level lv = MXG_LOG_DEBUG;
    if (l->last_warn == 0 || now - l->last_warn >= 1000) {
        l->last_warn = now ? now : 1;
        lv = MXG_LOG_WARN;
    }
    va_start(ap, fmt);
    mxg_vlog(lv, COMP, fmt, ap);
    va_end(ap);
}

/* ------------------------------------------------------------ fd records */

/* Whether getdns' f->fd still names the socket f was created for (the one
 * f->dupfd duplicates), was closed (EBADF), or now names another file. */
static enum dl_fd_check fd_check(const struct dl_fd *f)
{
    struct stat st;
    if (fstat(f->fd, &st) != 0)
        return errno == EBADF ? DL_FD_CLOSED : DL_FD_REUSED;
    return st.st_dev == f->dev && st.st_ino == f->ino ? DL_FD_SAME : DL_FD_REUSED;
}

/* Removes f from the loop's queue of records to (re)arm, if it is in it. */
static void pending_remove(struct dl_fd *f)
{
    struct mxg_dnsloop *l = f->loop;
    if (!f->pending)
        return;
    if (f->pprev)
        f->pprev->pnext = f->pnext;
    else
        l->pend_head = f->pnext;
    if (f->pnext)
        f->pnext->pprev = f->pprev;
    else
        l->pend_tail = f->pprev;
    f->pprev = f->pnext = NULL;
    f->pending = 0;
}

static void on_prepare(uv_prepare_t *h);
static void on_poll(uv_poll_t *h, int status, int events);

/* Starts l's prepare handle (creating it the first time): it runs on every
 * loop iteration while l has fd records (on_prepare stops it when none is
 * left). */
static void prepare_start(struct mxg_dnsloop *l)
{
    if (!l->prepare_inited) {
        uv_prepare_init(l->uv, &l->prepare); /* cannot fail */
        l->prepare.data = l;
        l->prepare_inited = 1;
        l->nhandles++;
    }
    uv_prepare_start(&l->prepare, on_prepare); /* no-op when active */
}

/* Queues f for (re)arming from the prepare handle if the interest of its
 * events differs from what libuv has. */
static void fd_want_rearm(struct dl_fd *f)
{
    struct mxg_dnsloop *l = f->loop;
    int u = 0;
    for (struct dl_event *e = f->head; e; e = e->fnext)
        u |= e->want;
    if (f->pending || f->state != DL_FD_OPEN || u == f->armed)
        return;
    f->pending = 1;
    f->pnext = NULL;
    f->pprev = l->pend_tail;
    if (l->pend_tail)
        l->pend_tail->pnext = f;
    else
        l->pend_head = f;
    l->pend_tail = f;
    prepare_start(l);
}

/* Unlinks e from its fd record (e stays scheduled, unpolled). */
static void fd_unlink_event(struct dl_fd *f, struct dl_event *e)
{
    if (e->fprev)
        e->fprev->fnext = e->fnext;
    else
        f->head = e->fnext;
    if (e->fnext)
        e->fnext->fprev = e->fprev;
    else
        f->tail = e->fprev;
    e->fprev = e->fnext = NULL;
    e->fdr = NULL;
    f->n--;
}

/* Stops and closes f's poll now (the fd number is free for a new record at
 * once; libuv only ever knew f->dupfd, which on_fd_closed closes); events
 * still on it become unpolled. f is freed by on_fd_closed. */
static void fd_close(struct dl_fd *f)
{
    struct mxg_dnsloop *l = f->loop;
    if (f->state != DL_FD_OPEN)
        return;
    f->state = DL_FD_CLOSING;
    pending_remove(f);
    while (f->head)
        fd_unlink_event(f, f->head);
    if ((size_t)f->fd < l->nbyfd && l->byfd[f->fd] == f)
        l->byfd[f->fd] = NULL;
    l->nfds--;
    uv_poll_stop(&f->poll);
    uv_close((uv_handle_t *)&f->poll, on_fd_closed);
}

/* f's fd was closed or now names another file (a getdns bug: it closed a
 * socket under a scheduled event), or cannot be polled: logs, counts,
 * closes the record; its events stay scheduled without the fd (their
 * timeouts still run; see the top of this file). */
static void fd_retire(struct dl_fd *f, const char *why)
{
    struct mxg_dnsloop *l = f->loop;
    l->stale_fds++;
    l->unpolled += f->n;
    warn_fd(l, "event loop: %s fd %d %s while %zu getdns event(s) watched it; no longer polled",
            f->kind, f->fd, why, f->n);
    fd_close(f);
}

/* fd_retire() for c (DL_FD_CLOSED or DL_FD_REUSED, from fd_check): getdns'
 * number f->fd is dead, so each event on f remembers it (dead_fd) and is
 * not polled on that number again (see dl_schedule). */
static void fd_retire_dead(struct dl_fd *f, enum dl_fd_check c)
{
    for (struct dl_event *e = f->head; e; e = e->fnext)
        e->dead_fd = f->fd;
    fd_retire(f, c == DL_FD_CLOSED ? "was closed" : "now names another file");
}

/* Prepare callback, on every loop iteration while l has records: retires
 * every record whose getdns fd was closed or reused (the duplicate would
 * otherwise keep the socket open and polled), then arms every queued
 * record with the union of its events' interests. Stops itself when no
 * record is left. */
static void on_prepare(uv_prepare_t *h)
{
    struct mxg_dnsloop *l = h->data;
    struct dl_fd *f;
    size_t left = l->nfds;

    for (size_t i = 0; i < l->nbyfd && left > 0; i++) {
        enum dl_fd_check c;
        if (!(f = l->byfd[i]))
            continue;
        left--;
        if ((c = fd_check(f)) != DL_FD_SAME)
            fd_retire_dead(f, c); /* leaves byfd[i] */
    }
    while ((f = l->pend_head)) {
        enum dl_fd_check c;
        int u = 0, r;
        pending_remove(f);
        for (struct dl_event *e = f->head; e; e = e->fnext)
            u |= e->want;
        if (f->state != DL_FD_OPEN || u == f->armed || u == 0)
            continue;
        /* uv_poll_start() in libuv 1.44 always returns 0 (an fd epoll
         * refuses makes libuv abort() later, inside uv__io_poll): this
         * fd_check, with nothing run since, is what guarantees that getdns'
         * fd (and so the socket dupfd duplicates) is still open */
        if ((c = fd_check(f)) != DL_FD_SAME) {
            fd_retire_dead(f, c);
            continue;
        }
        if ((r = uv_poll_start(&f->poll, u, on_poll)) < 0) {
            char why[96];
            snprintf(why, sizeof why, "could not be polled (%s)", uv_strerror(r));
            fd_retire(f, why);
            continue;
        }
        f->armed = u;
    }
    if (l->nfds == 0)
        uv_prepare_stop(h);
}

/* Grows l->byfd to hold index fd. 0, or -1 on out of memory. */
static int byfd_grow(struct mxg_dnsloop *l, int fd)
{
    size_t n = l->nbyfd ? l->nbyfd : 64;
    struct dl_fd **nb;
    if ((size_t)fd < l->nbyfd)
        return 0;
    while (n <= (size_t)fd)
        n *= 2;
    if (!(nb = realloc(l->byfd, n * sizeof *nb)))
        return -1;
    memset(nb + l->nbyfd, 0, (n - l->nbyfd) * sizeof *nb);
    l->byfd = nb;
    l->nbyfd = n;
    return 0;
}

/* Leaves e scheduled without polling its fd: only its timeout, if any,
 * will run. */
static void ev_unpolled(struct dl_event *e, int fd, const char *why)
{
    e->loop->unpolled++;
    warn_fd(e->loop, "event loop: getdns scheduled an event on fd %d that cannot be polled (%s); "
                     "it waits for its timeout",
            fd, why);
}

/* "TCP", "UDP" or "socket" for fd (log lines). */
static const char *sock_kind(int fd)
{
    int t = 0;
    socklen_t len = sizeof t;
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &t, &len) != 0)
        return "socket";
    return t == SOCK_STREAM ? "TCP" : t == SOCK_DGRAM ? "UDP" : "socket";
}

/* Attaches e (want != 0) to the record of getdns' fd, creating it if
 * needed (a private duplicate of fd, uv_poll_init on the duplicate); a
 * record whose fd was closed or reused is retired first. On failure e
 * stays unpolled (logged); if fd is closed, e remembers it as dead. */
static void fd_attach(struct mxg_dnsloop *l, struct dl_event *e, int fd)
{
    struct dl_fd *f = (size_t)fd < l->nbyfd ? l->byfd[fd] : NULL;
    struct stat st;
    int r, dupfd;

    if (fstat(fd, &st) != 0) {
        int err = errno;
        if (f)
            fd_retire_dead(f, err == EBADF ? DL_FD_CLOSED : DL_FD_REUSED);
        if (err == EBADF)
            e->dead_fd = fd;
        ev_unpolled(e, fd, strerror(err));
        return;
    }
    if (f && (st.st_dev != f->dev || st.st_ino != f->ino)) {
        fd_retire_dead(f, DL_FD_REUSED);
        f = NULL;
    }
    if (!f) {
        if (byfd_grow(l, fd) != 0 || !(f = calloc(1, sizeof *f))) {
            ev_unpolled(e, fd, "out of memory");
            return;
        }
        if ((dupfd = fcntl(fd, F_DUPFD_CLOEXEC, 0)) < 0 || fstat(dupfd, &st) != 0) {
            const char *why = strerror(errno);
            if (dupfd >= 0)
                close(dupfd);
            free(f);
            ev_unpolled(e, fd, why);
            return;
        }
        if ((r = uv_poll_init(l->uv, &f->poll, dupfd)) < 0) {
            close(dupfd); /* libuv never watched it */
            free(f);      /* not initialised: nothing to close */
            ev_unpolled(e, fd, uv_strerror(r)); /* e.g. EPERM: epoll refuses the file */
            return;
        }
        f->kind = sock_kind(fd);
        f->poll.data = f;
        f->loop = l;
        f->fd = fd;
        f->dupfd = dupfd;
        f->dev = st.st_dev;
        f->ino = st.st_ino;
        f->state = DL_FD_OPEN;
        l->byfd[fd] = f;
        l->nfds++;
        l->nhandles++;
    }
    e->fdr = f;
    e->fnext = NULL;
    e->fprev = f->tail;
    if (f->tail)
        f->tail->fnext = e;
    else
        f->head = e;
    f->tail = e;
    f->n++;
    fd_want_rearm(f);
}

/* ------------------------------------------------------------ events */

/* Remembers that getdns' event gev, retired from fd number fd, was
 * released (one slot per gev; the oldest slot goes when the ring is full). */
static void dead_remember(struct mxg_dnsloop *l, const getdns_eventloop_event *gev, int fd)
{
    size_t i;
    for (i = 0; i < DL_DEAD && l->dead[i].gev != gev; i++)
        ;
    if (i == DL_DEAD) {
        i = l->dead_next;
        l->dead_next = (l->dead_next + 1) % DL_DEAD;
    }
    l->dead[i].gev = gev;
    l->dead[i].fd = fd;
}

/* Whether gev is remembered as retired from fd number fd (then it must not
 * be polled on fd). Forgets gev's slot either way: a schedule on fd carries
 * the mark on in its dl_event (dead_fd), one on another fd means getdns
 * moved on. */
static int dead_take(struct mxg_dnsloop *l, const getdns_eventloop_event *gev, int fd)
{
    for (size_t i = 0; i < DL_DEAD; i++) {
        if (l->dead[i].gev == gev) {
            l->dead[i].gev = NULL;
            return l->dead[i].fd == fd;
        }
    }
    return 0;
}

/* Unschedules e completely and frees it (getdns' ev->ev is the caller's
 * business): detaches it from its fd (closing the record if it was the
 * last), remembers a dead number e was retired from (or whose fd getdns
 * closed under it), closes its timer, unlinks it from the loop. */
static void ev_release(struct dl_event *e)
{
    struct mxg_dnsloop *l = e->loop;
    struct dl_fd *f = e->fdr;

    if (f && fd_check(f) != DL_FD_SAME)
        e->dead_fd = f->fd; /* getdns closed it under e: remember (f goes as usual) */
    if (e->dead_fd >= 0)
        dead_remember(l, e->gev, e->dead_fd);
    if (f) {
        fd_unlink_event(f, e);
        if (f->n == 0)
            fd_close(f);
        else
            fd_want_rearm(f);
    }
    if (e->tm) {
        e->tm->ev = NULL;
        uv_timer_stop(&e->tm->timer);
        uv_close((uv_handle_t *)&e->tm->timer, on_timer_closed);
        e->tm = NULL;
        l->ntimers--;
    }
    if (e->prev)
        e->prev->next = e->next;
    else
        l->evs = e->next;
    if (e->next)
        e->next->prev = e->prev;
    if (e->state == DL_EV_SCHEDULED)
        l->nevents--;
    e->magic = 0;
    free(e);
}

/* Whether e is still what getdns has scheduled. getdns re-initialises an
 * event struct (ev->ev = NULL) only after clearing it; if it ever did so
 * while scheduled, e is dropped here instead of firing for the new use. */
static int ev_current(struct dl_event *e)
{
    if (e->gev->ev == e)
        return 1;
    e->loop->reinits++;
    LOG_D(COMP, "event loop: getdns re-initialised a scheduled event; dropped");
    ev_release(e);
    return 0;
}

/* The event with id on f's list, or NULL (cleared meanwhile). */
static struct dl_event *fd_find(const struct dl_fd *f, uint64_t id)
{
    for (struct dl_event *e = f->head; e; e = e->fnext)
        if (e->id == id)
            return e;
    return NULL;
}

/* Poll callback of a dl_fd: runs write_cb then read_cb of each event that
 * was on the fd when it fired and still is, for what it wants and the fd
 * is ready for. An error (libuv stopped the poll) counts as readable and
 * writable, as poll()'s POLLERR does for getdns, so that its recv/send sees
 * the error; the poll is re-armed afterwards if events remain. */
static void on_poll(uv_poll_t *h, int status, int events)
{
    struct dl_fd *f = h->data;
    uint64_t snap_stack[DL_SNAP], *snap = snap_stack;
    size_t n = 0;
    int ready;

    if (f->state != DL_FD_OPEN)
        return;
    if (status < 0) {
        f->armed = 0;
        ready = DL_RW;
    } else {
        ready = events & DL_RW;
    }
    enum dl_fd_check c = fd_check(f);
    if (c != DL_FD_SAME) {
        fd_retire_dead(f, c);
        return;
    }
    if (f->n > DL_SNAP && !(snap = malloc(f->n * sizeof *snap)))
        snap = snap_stack; /* out of memory: the first DL_SNAP this time */
    for (struct dl_event *e = f->head; e && (snap != snap_stack || n < DL_SNAP); e = e->fnext)
        snap[n++] = e->id;

    for (size_t i = 0; i < n; i++) {
        struct dl_event *e = fd_find(f, snap[i]);
        if (!e || !ev_current(e))
            continue;
        if ((ready & e->want & UV_WRITABLE) && e->gev->write_cb) {
            e->gev->write_cb(e->gev->userarg);
            if (!(e = fd_find(f, snap[i])) || !ev_current(e))
                continue;
        }
        if ((ready & e->want & UV_READABLE) && e->gev->read_cb)
            e->gev->read_cb(e->gev->userarg);
    }
    if (snap != snap_stack)
        free(snap);
    if (f->state == DL_FD_OPEN && f->n > 0)
        fd_want_rearm(f); /* after an error: libuv stopped the poll */
}

/* Timer callback: the event's timeout passed (once). */
static void on_timer(uv_timer_t *t)
{
    struct dl_timer *tm = t->data;
    struct dl_event *e = tm->ev;

    if (!e || !ev_current(e))
        return;
    if (e->gev->timeout_cb)
        e->gev->timeout_cb(e->gev->userarg);
}

/* ------------------------------------------------------------ the vmt */

/* 1 if gev->ev is an event of this loop scheduled for gev. Compares pointers
 * only: the events getdns makes for libunbound (recursive mode) arrive with
 * ev->ev never initialised, which must not be dereferenced. */
static int ev_ours(const struct mxg_dnsloop *l, const getdns_eventloop_event *gev)
{
    for (const struct dl_event *e = l->evs; e; e = e->next)
        if ((const void *)e == gev->ev)
            return e->gev == gev;
    return 0;
}

/* vmt clear. Contract: ev->ev == NULL: nothing to do. Otherwise ev->ev must
 * be an event this loop scheduled (else GENERIC_ERROR, nothing touched); it
 * is unscheduled (fd record closed if it was the last on the fd, timer
 * closed) and ev->ev set to NULL. Safe from inside any callback and after
 * cleanup. */
static getdns_return_t dl_clear(getdns_eventloop *gl, getdns_eventloop_event *gev)
{
    struct mxg_dnsloop *l = (struct mxg_dnsloop *)gl;
    struct dl_event *e;

    if (!l || !gev)
        return GETDNS_RETURN_INVALID_PARAMETER;
    if (!(e = gev->ev))
        return GETDNS_RETURN_GOOD;
    if (e->magic != DL_EV_MAGIC || e->loop != l || e->gev != gev) {
        LOG_W(COMP, "event loop: getdns cleared an event this loop did not schedule");
        return GETDNS_RETURN_GENERIC_ERROR;
    }
    gev->ev = NULL;
    ev_release(e);
    return GETDNS_RETURN_GOOD;
}

/* vmt schedule. Contract: gev's callbacks and userarg set by getdns. With
 * fd >= 0, read_cb / write_cb run while the fd is readable / writable (an fd
 * that cannot be polled is logged and the event keeps only its timeout);
 * timeout_cb runs once, timeout ms from now, unless timeout is UINT64_MAX.
 * An event already scheduled is cleared first. Sets gev->ev; returns GOOD,
 * MEMORY_ERROR (gev->ev NULL), GENERIC_ERROR after cleanup. Never calls a
 * callback itself. */
static getdns_return_t dl_schedule(getdns_eventloop *gl, int fd, uint64_t timeout,
                                   getdns_eventloop_event *gev)
{
    struct mxg_dnsloop *l = (struct mxg_dnsloop *)gl;
    struct dl_event *e;
    int want = 0;

    if (!l || !gev)
        return GETDNS_RETURN_INVALID_PARAMETER;
    if (l->state != DL_LOOP_RUNNING) {
        gev->ev = NULL;
        return GETDNS_RETURN_GENERIC_ERROR;
    }
    if (gev->ev && ev_ours(l, gev)) { /* getdns clears before it schedules again; be lenient */
        LOG_D(COMP, "event loop: getdns scheduled a scheduled event; clearing it first");
        (void)dl_clear(gl, gev);
    }
    gev->ev = NULL; /* (getdns' events for libunbound come with it uninitialised) */
    if (!(e = calloc(1, sizeof *e)))
        return GETDNS_RETURN_MEMORY_ERROR;
    e->magic = DL_EV_MAGIC;
    e->state = DL_EV_SCHEDULED;
    e->loop = l;
    e->gev = gev;
    e->id = ++l->next_id;
    e->dead_fd = -1;
    e->next = l->evs;
    if (l->evs)
        l->evs->prev = e;
    l->evs = e;
    l->nevents++;

    if (fd >= 0)
        want = (gev->read_cb ? UV_READABLE : 0) | (gev->write_cb ? UV_WRITABLE : 0);
    if (want && dead_take(l, gev, fd)) {
        /* retired from this number before: it may be mxguard's socket now */
        e->dead_fd = fd;
        l->unpolled++;
        warn_fd(l, "event loop: getdns scheduled an event again on fd %d, which was closed "
                   "under it; not polled, it waits for its timeout",
                fd);
    } else if (want) {
        e->want = want;
        fd_attach(l, e, fd);
    }
    if (gev->timeout_cb && timeout != DL_NO_TIMEOUT) {
        struct dl_timer *tm = calloc(1, sizeof *tm);
        if (!tm) {
            ev_release(e);
            return GETDNS_RETURN_MEMORY_ERROR;
        }
        uv_timer_init(l->uv, &tm->timer); /* cannot fail */
        tm->timer.data = tm;
        tm->loop = l;
        tm->ev = e;
        e->tm = tm;
        l->nhandles++;
        l->ntimers++;
        uv_update_time(l->uv); /* from now, not from the start of this loop turn */
        uv_timer_start(&tm->timer, on_timer, timeout, 0);
    }
    gev->ev = e;
    return GETDNS_RETURN_GOOD;
}

/* Logs once that getdns wanted to drive the loop itself (ignored). */
static void warn_run(struct mxg_dnsloop *l, const char *what)
{
    if (l && !l->warned_run) {
        l->warned_run = 1;
        LOG_W(COMP, "event loop: getdns asked to %s the loop itself; ignored (mxguard drives "
                    "its uv loop and makes no synchronous getdns calls)",
              what);
    }
}

/* vmt run. Contract: does nothing (see dns_loop.h); never blocks. */
static void dl_run(getdns_eventloop *gl)
{
    warn_run((struct mxg_dnsloop *)gl, "run");
}

/* vmt run_once. Contract: does nothing (see dns_loop.h); never blocks. */
static void dl_run_once(getdns_eventloop *gl, int blocking)
{
    (void)blocking;
    warn_run((struct mxg_dnsloop *)gl, "run once");
}

/* vmt cleanup. Contract: closes every uv handle (polls, timers, prepare);
 * events still scheduled become zombies that a later clear() may still
 * release; schedule() fails from now on. The struct is freed by the last
 * close callback, so the uv loop must run once more; if no handle was ever
 * opened and no event is left it is freed here. Called once by getdns
 * (further calls do nothing). */
static void dl_cleanup(getdns_eventloop *gl)
{
    struct mxg_dnsloop *l = (struct mxg_dnsloop *)gl;

    if (!l || l->state != DL_LOOP_RUNNING)
        return;
    l->state = DL_LOOP_CLEANED;
    if (l->nevents)
        LOG_D(COMP, "event loop: cleanup with %zu event(s) still scheduled", l->nevents);
    for (size_t i = 0; i < l->nbyfd; i++)
        if (l->byfd[i])
            fd_close(l->byfd[i]);
    for (struct dl_event *e = l->evs; e; e = e->next) {
        if (e->tm) {
            e->tm->ev = NULL;
            uv_timer_stop(&e->tm->timer);
            uv_close((uv_handle_t *)&e->tm->timer, on_timer_closed);
            e->tm = NULL;
            l->ntimers--;
        }
        e->state = DL_EV_ZOMBIE;
    }
    l->nevents = 0;
    if (l->prepare_inited) {
        l->prepare_inited = 0;
        uv_close((uv_handle_t *)&l->prepare, on_embedded_closed);
    }
    if (l->nhandles > 0)
        return; /* the last close callback frees l */
    if (!l->evs) {
        loop_free(l); /* nothing can refer to l any more */
        return;
    }
    /* zombies that getdns may still clear: keep l until the loop ran once */
    struct dl_timer *reaper = calloc(1, sizeof *reaper);
    if (!reaper) {
        LOG_E(COMP, "event loop: out of memory at cleanup; %zu bytes left allocated",
              sizeof *l);
        return;
    }
    uv_timer_init(l->uv, &reaper->timer);
    reaper->timer.data = reaper;
    reaper->loop = l;
    l->nhandles++;
    uv_close((uv_handle_t *)&reaper->timer, on_timer_closed);
}

/* ------------------------------------------------------------ public */

/* Contract: see dns_loop.h. */
struct mxg_dnsloop *mxg_dnsloop_new(uv_loop_t *uv)
{
    struct mxg_dnsloop *l;
    if (!uv || !(l = calloc(1, sizeof *l)))
        return NULL;
    l->vmt.cleanup = dl_cleanup;
    l->vmt.schedule = dl_schedule;
    l->vmt.clear = dl_clear;
    l->vmt.run = dl_run;
    l->vmt.run_once = dl_run_once;
    l->base.vmt = &l->vmt;
    l->uv = uv;
    l->state = DL_LOOP_RUNNING;
    return l;
}

/* Contract: see dns_loop.h. */
getdns_eventloop *mxg_dnsloop_eventloop(struct mxg_dnsloop *l)
{
    return l ? &l->base : NULL;
}

/* Contract: see dns_loop.h. */
void mxg_dnsloop_discard(struct mxg_dnsloop *l)
{
    if (l)
        dl_cleanup(&l->base);
}

/* Contract: see dns_loop.h. */
void mxg_dnsloop_get_stats(const struct mxg_dnsloop *l, struct mxg_dnsloop_stats *st)
{
    memset(st, 0, sizeof *st);
    if (!l)
        return;
    st->events = l->nevents;
    st->fds = l->nfds;
    st->timers = l->ntimers;
    st->handles = l->nhandles;
    st->stale_fds = l->stale_fds;
    st->unpolled = l->unpolled;
    st->reinits = l->reinits;
}
