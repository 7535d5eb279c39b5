/* dns/dns_loop.h — internal to dns/: getdns's event loop on libuv, written
 * for mxguard (replaces Debian's libgetdns_ex_uv, which put a second uv_poll
 * on a socket fd it already polled, ignored uv_poll_init's UV_EEXIST and then
 * used the uninitialised handle: a crash under a cold burst of lookups).
 * Exposed so it can be unit tested with socketpairs (test_dns_loop.c);
 * other layers use dns.h.
 *
 * What getdns asks of an event loop (getdns_extra.h, and how getdns' own
 * loops and stub.c use it):
 *  - schedule(fd, timeout, ev): ev carries userarg and up to three callbacks.
 *    fd >= 0 with read_cb and/or write_cb: call them (level-triggered) while
 *    the fd is readable / writable. timeout_cb with timeout (ms) other than
 *    UINT64_MAX (getdns' TIMEOUT_FOREVER): call it once, timeout ms after the
 *    schedule (fd -1: a timeout-only event). ev->ev belongs to the loop: it is
 *    set here and is getdns' "is scheduled" flag.
 *  - clear(ev): undo schedule, set ev->ev = NULL. getdns calls it only when
 *    ev->ev != NULL, also from inside any callback, for this or any other
 *    event; a callback may also schedule events and close sockets.
 *  - Several events may watch one fd (a TCP upstream and a query on it).
 *    libuv allows one uv_poll per fd, so here ONE uv_poll_t serves every event
 *    on an fd (a per-fd record with the union of their interests); when the
 *    last event on an fd is cleared, the poll is stopped and closed at once,
 *    so that a new socket with the same number can be polled right away.
 *  - One uv_timer_t per event that has a timeout.
 *  - run / run_once: getdns uses its own loop for synchronous calls; mxguard
 *    makes none and drives the uv loop itself, so these do nothing (logged).
 *  - cleanup(): getdns_context_destroy() calls it last (and may still call
 *    clear() afterwards while it tears libunbound down: that stays safe).
 *
 * Defences against sockets getdns closes while an event still watches them
 * (its UDP->TCP fallback, taken when an answer comes back truncated, shares
 * one fd between the TCP upstream and the query, and closes it when that
 * query times out or is cancelled, leaving the upstream on a dead fd number):
 *  - libuv never gets getdns' fd numbers: each per-fd record polls a
 *    private duplicate (F_DUPFD_CLOEXEC), closed only after its uv_poll is
 *    closed. So when getdns closes a number X under an event, libuv keeps no
 *    watcher for X, and a socket of mxguard's own that then gets X is
 *    neither refused nor unregistered when the stale record is retired;
 *  - each per-fd record remembers the socket's identity (st_dev, st_ino);
 *    getdns' fd is checked against it on every loop iteration for every
 *    record (a uv_prepare handle, right before the loop polls; the
 *    duplicate would otherwise keep a socket getdns closed open), before
 *    every (re)arm of the poll (also deferred to that prepare handle) and
 *    before each dispatch; a record whose fd was closed or now names another
 *    file is retired (its events stay scheduled without the fd, their
 *    timeouts still run);
 *  - an event on a closed fd (found at schedule or later) keeps only its
 *    timeout: no read/write callback runs for a dead or reused fd number
 *    (dns_loop.c says why getdns' POLLNVAL behaviour is not copied); the
 *    loop remembers the getdns events retired from a number, and if getdns
 *    schedules the same event on that number again, it is not polled
 *    either (only its timeout): the number may be mxguard's socket now;
 *  - such cases are logged (at most one warning per second) and counted.
 *
 * Ownership:
 *  - mxg_dnsloop_new() creates the loop; the caller hands it to getdns with
 *    getdns_context_set_eventloop(ctx, mxg_dnsloop_eventloop(l)). From then
 *    on getdns owns it: getdns_context_destroy() calls the cleanup method.
 *    If it was never handed over, the caller calls mxg_dnsloop_discard().
 *  - Every uv handle is freed by its close callback; the loop struct itself
 *    is freed after cleanup/discard, by the close callback of its last
 *    handle. So the uv loop MUST run once more (uv_run) after cleanup, as
 *    for any libuv handle, before uv_loop_close().
 *  - No global state; not thread-safe (one uv loop, one thread).
 */
#ifndef MXG_DNS_LOOP_H
#define MXG_DNS_LOOP_H

#include <stddef.h>
#include <stdint.h>

#include <getdns/getdns.h>
#include <getdns/getdns_extra.h>
#include <uv.h>

struct mxg_dnsloop;

/* Counters, for tests and diagnostics. */
struct mxg_dnsloop_stats {
    size_t events;        /* scheduled (ev->ev != NULL) */
    size_t fds;           /* per-fd records with a live uv_poll */
    size_t timers;        /* armed or fired timers of scheduled events */
    size_t handles;       /* uv handles not yet closed (incl. closing ones) */
    uint64_t stale_fds;   /* records retired: fd closed or reused under an event */
    uint64_t unpolled;    /* events whose fd could not be polled (timeout only) */
    uint64_t reinits;     /* events getdns re-initialised while scheduled */
};

/* Contract: a loop bound to uv (not owned). NULL on out of memory. Creates
 * no uv handle yet. */
struct mxg_dnsloop *mxg_dnsloop_new(uv_loop_t *uv);

/* Contract: the getdns_eventloop to pass to getdns_context_set_eventloop();
 * valid until cleanup. */
getdns_eventloop *mxg_dnsloop_eventloop(struct mxg_dnsloop *l);

/* Contract: for a loop that was never handed to getdns (or whose context
 * failed to take it): the same as getdns' cleanup call. l may be NULL. The
 * uv loop must run afterwards to free it. */
void mxg_dnsloop_discard(struct mxg_dnsloop *l);

/* Contract: fills *st; l must not have been cleaned up. */
void mxg_dnsloop_get_stats(const struct mxg_dnsloop *l, struct mxg_dnsloop_stats *st);

#endif
