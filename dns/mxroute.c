/* dns/mxroute.c — see mxroute.h.
 *
 * One route query = one MX lookup, then one address lookup per MX host (all
 * in parallel), then one callback. Every callback comes from the dns module,
 * which never calls back synchronously, so neither does this module. The
 * tie-break randomness is a per-query xorshift generator seeded from
 * getrandom(2): no global state.
 */
#include "mxroute.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "../core/log.h"
#include "../core/str.h"
#include "../core/zero.h"

#define COMP "dns"

struct route_host_ctx {
    struct mxg_route_query *rq;
    int idx;
};

struct mxg_route_query {
    struct mxg_dns *dns;
    mxg_route_cb cb;
    void *arg;
    int max_hosts;
    uint64_t rng;                                 /* xorshift64* state, never 0 */
    struct mxg_dns_query *mxq;                    /* outstanding MX lookup */
    struct mxg_dns_query *aq[MXG_DNS_MAX_MX];     /* outstanding address lookups */
    struct route_host_ctx hc[MXG_DNS_MAX_MX];
    int pending;                                  /* address lookups outstanding */
    struct mxg_route route;
};

/* Contract: human-readable name of a route status, "?" for unknown values. */
const char *mxg_route_status_name(enum mxg_route_status s)
{
    switch (s) {
    case MXG_ROUTE_OK: return "OK";
    case MXG_ROUTE_NULL_MX: return "NULL_MX";
    case MXG_ROUTE_NXDOMAIN: return "NXDOMAIN";
    case MXG_ROUTE_TEMPFAIL: return "TEMPFAIL";
    }
    return "?";
}

/* ------------------------------------------------------------ randomness */

static uint64_t rng_seed(void)
{
    uint64_t s = 0;
    if (getrandom(&s, sizeof s, GRND_NONBLOCK) != (ssize_t)sizeof s) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        s = ((uint64_t)ts.tv_sec * 1000000007u) ^ (uint64_t)ts.tv_nsec ^ (uint64_t)(uintptr_t)&s;
    }
    return s ? s : 0x9E3779B97F4A7C15ull;
}

/* xorshift64*: arg points at the 64-bit state. */
static unsigned rng_next(void *arg)
{
    uint64_t *x = arg;
    *x ^= *x >> 12;
    *x ^= *x << 25;
    *x ^= *x >> 27;
    return (unsigned)((*x * 0x2545F4914F6CDD1Dull) >> 32);
}

/* Contract: sorts mx[0..n) by ascending preference; records with equal
 * preference end up in a random order (Fisher–Yates over each run, index
 * j = rnd(rnd_arg) % (i + 1) for i = run_len-1 .. 1), records with distinct
 * preferences keep the preference order. rnd == NULL: an internal generator
 * seeded from getrandom(2). n <= 1 or mx == NULL: nothing to do. */
void mxg_route_sort(struct mxg_mx_rr *mx, int n, unsigned (*rnd)(void *), void *rnd_arg)
{
    uint64_t local;
    if (!mx || n <= 1)
        return;
    if (!rnd) {
        local = rng_seed();
        rnd = rng_next;
        rnd_arg = &local;
    }
    /* stable insertion sort by preference (n <= MXG_DNS_MAX_MX in practice) */
    for (int i = 1; i < n; i++) {
        struct mxg_mx_rr tmp = mx[i];
        int j = i - 1;
        while (j >= 0 && mx[j].pref > tmp.pref) {
            mx[j + 1] = mx[j];
            j--;
        }
        mx[j + 1] = tmp;
    }
    /* shuffle each run of equal preference */
    for (int start = 0; start < n;) {
        int end = start + 1;
        while (end < n && mx[end].pref == mx[start].pref)
            end++;
        for (int i = end - start - 1; i > 0; i--) {
            int j = (int)(rnd(rnd_arg) % (unsigned)(i + 1));
            if (j != i) {
                struct mxg_mx_rr tmp = mx[start + i];
                mx[start + i] = mx[start + j];
                mx[start + j] = tmp;
            }
        }
        start = end;
    }
}

/* Contract: see mxroute.h (the copy is sized to r->n hosts). */
struct mxg_route *mxg_route_copy(const struct mxg_route *r)
{
    if (!r)
        return NULL;
    int n = r->n < 0 ? 0 : r->n > MXG_DNS_MAX_MX ? MXG_DNS_MAX_MX : r->n;
    size_t len = offsetof(struct mxg_route, host) + (size_t)n * sizeof r->host[0];
    struct mxg_route *c = malloc(len);
    if (c)
        memcpy(c, r, len);
    return c;
}

/* ----------------------------------------------------------- the lookups */

/* Run the route callback, then free the query. */
static void route_deliver(struct mxg_route_query *rq)
{
    struct mxg_route *r = &rq->route;
    LOG_D(COMP, "route %s: %s, MX %s, %d host(s)%s%s", r->domain, mxg_route_status_name(r->status),
          mxg_dnssec_name(r->mx_sec), r->n, r->why[0] ? ": " : "", r->why);
    rq->cb(rq->arg, r);
    free(rq);
}

/* Deliver a route without hosts: status st, why from fmt. */
static void route_fail(struct mxg_route_query *rq, enum mxg_route_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void route_fail(struct mxg_route_query *rq, enum mxg_route_status st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(rq->route.why, sizeof rq->route.why, fmt, ap);
    va_end(ap);
    rq->route.status = st;
    rq->route.n = 0;
    route_deliver(rq);
}

/* All address lookups are done: decide and deliver. */
static void route_complete(struct mxg_route_query *rq)
{
    struct mxg_route *r = &rq->route;

    if (r->n == 1 && r->host[0].implicit &&
        (r->host[0].addrs.status == MXG_DNS_NODATA || r->host[0].addrs.status == MXG_DNS_NXDOMAIN)) {
        route_fail(rq, MXG_ROUTE_NXDOMAIN, "no MX and no address records for %s", r->domain);
        return;
    }
    r->status = MXG_ROUTE_OK;
    int usable = 0;
    for (int i = 0; i < r->n; i++)
        if (r->host[i].addrs.status == MXG_DNS_OK)
            usable++;
    if (usable == 0 && r->n > 0) {
        /* still OK: the caller answers 4.4.3 and names the reasons */
        size_t o = (size_t)snprintf(r->why, sizeof r->why, "no usable address for any MX host of %s",
                                    r->domain);
        for (int i = 0; i < r->n && o < sizeof r->why; i++) {
            int w = snprintf(r->why + o, sizeof r->why - o, "%s %s: %s", i ? ";" : " (",
                             r->host[i].name, r->host[i].addrs.why);
            if (w < 0)
                break;
            o += (size_t)w;
        }
        if (o + 1 < sizeof r->why)
            snprintf(r->why + o, sizeof r->why - o, ")");
    }
    route_deliver(rq);
}

/* dns callback of one host's address lookup; the last one completes the route. */
static void on_addr(void *arg, const struct mxg_addr_result *res)
{
    struct route_host_ctx *hc = arg;
    struct mxg_route_query *rq = hc->rq;

    rq->aq[hc->idx] = NULL;
    rq->route.host[hc->idx].addrs = *res;
    if (--rq->pending == 0)
        route_complete(rq);
}

/* Start the address lookups of route.host[0..n). Called from a dns callback. */
static void start_addr_lookups(struct mxg_route_query *rq)
{
    struct mxg_route *r = &rq->route;

    rq->pending = 0;
    for (int i = 0; i < r->n; i++) {
        rq->hc[i].rq = rq;
        rq->hc[i].idx = i;
        rq->pending++; /* counted first: the dns callback never runs synchronously anyway */
        if (mxg_dns_lookup_addr(rq->dns, r->host[i].name, on_addr, &rq->hc[i], &rq->aq[i]) != 0) {
            struct mxg_addr_result *a = &r->host[i].addrs;
            memset(a, 0, sizeof *a);
            a->status = MXG_DNS_TEMPFAIL;
            a->sec = MXG_SEC_INDETERMINATE;
            snprintf(a->why, sizeof a->why, "address lookup could not be started");
            rq->aq[i] = NULL;
            rq->pending--;
        }
    }
    if (rq->pending == 0)
        route_complete(rq); /* we are inside the MX callback: not synchronous */
}

/* dns callback of the MX lookup: domain-level outcome, or sort/dedupe/cap and
 * start the address lookups (implicit MX on NODATA). */
static void on_mx(void *arg, const struct mxg_mx_result *res)
{
    struct mxg_route_query *rq = arg;
    struct mxg_route *r = &rq->route;
    struct mxg_mx_rr mx[MXG_DNS_MAX_MX];
    int n = 0, nnull = 0;

    rq->mxq = NULL;
    r->mx_sec = res->sec;

    switch (res->status) {
    case MXG_DNS_OK:
        break;
    case MXG_DNS_NODATA:
        /* RFC 5321 §5.1: the domain itself is the implicit MX, preference 0 */
        r->n = 1;
        snprintf(r->host[0].name, sizeof r->host[0].name, "%s", r->domain);
        r->host[0].pref = 0;
        r->host[0].implicit = 1;
        start_addr_lookups(rq);
        return;
    case MXG_DNS_NXDOMAIN:
        route_fail(rq, MXG_ROUTE_NXDOMAIN, "domain %s does not exist", r->domain);
        return;
    case MXG_DNS_BOGUS:
        route_fail(rq, MXG_ROUTE_TEMPFAIL, "DNSSEC validation of MX for %s failed (bogus)",
                   r->domain);
        return;
    case MXG_DNS_TEMPFAIL:
    default:
        route_fail(rq, MXG_ROUTE_TEMPFAIL, "MX lookup for %s failed: %s", r->domain,
                   res->why[0] ? res->why : "temporary DNS failure");
        return;
    }

    /* RFC 7505: "." alone is a null MX; next to real hosts it is ignored. */
    for (int i = 0; i < res->n && i < MXG_DNS_MAX_MX; i++) {
        if (res->mx[i].host[0] == '\0')
            nnull++;
        else
            mx[n++] = res->mx[i];
    }
    if (n == 0) {
        if (nnull > 0) {
            route_fail(rq, MXG_ROUTE_NULL_MX, "domain %s does not accept mail (null MX)",
                       r->domain);
            return;
        }
        route_fail(rq, MXG_ROUTE_TEMPFAIL, "MX lookup for %s failed: empty answer", r->domain);
        return;
    }
    if (nnull > 0)
        LOG_N(COMP, "%s: null MX next to %d other MX record(s), ignoring the null MX", r->domain, n);

    mxg_route_sort(mx, n, rng_next, &rq->rng);

    /* dedupe host names (keep the first = most preferred), cap */
    int limit = rq->max_hosts > 0 && rq->max_hosts < MXG_DNS_MAX_MX ? rq->max_hosts : MXG_DNS_MAX_MX;
    r->n = 0;
    for (int i = 0; i < n && r->n < limit; i++) {
        int dup = 0;
        for (int j = 0; j < r->n; j++)
            if (strcmp(r->host[j].name, mx[i].host) == 0) {
                dup = 1;
                break;
            }
        if (dup)
            continue;
        struct mxg_route_host *h = &r->host[r->n++];
        mxg_str_copy(h->name, sizeof h->name, mx[i].host);
        h->pref = mx[i].pref;
        h->implicit = 0;
    }
    start_addr_lookups(rq);
}

/* Contract: see mxroute.h. max_hosts <= 0 means MXG_DNS_MAX_MX. The domain
 * may have any case and a trailing dot; route.domain is normalised. */
int mxg_route_resolve(struct mxg_dns *dns, const char *domain, int max_hosts, mxg_route_cb cb,
                      void *arg, struct mxg_route_query **q)
{
    if (q)
        *q = NULL;
    if (!dns || !domain || !cb)
        return -1;
    size_t len = strlen(domain);
    if (len > 0 && domain[len - 1] == '.')
        len--;
    if (len == 0 || len >= MXG_DNS_NAME_MAX)
        return -1;

    /* 89 KB, nearly all of it host slots: only the part before route.host is
     * zeroed; a host slot is written whole when it is added (on_mx) and its
     * addresses when their lookup ends (on_addr / start_addr_lookups) */
    struct mxg_route_query *rq = malloc(sizeof *rq);
    if (!rq)
        return -1;
    memset(rq, 0, offsetof(struct mxg_route_query, route.host));
    MXG_ZERO_AFTER(&rq->route, struct mxg_route, host);
    MXG_ZERO_AFTER(rq, struct mxg_route_query, route);
    rq->dns = dns;
    rq->cb = cb;
    rq->arg = arg;
    rq->max_hosts = max_hosts;
    rq->rng = rng_seed();
    for (size_t i = 0; i < len; i++) {
        char c = domain[i];
        rq->route.domain[i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
    }
    rq->route.domain[len] = '\0';
    rq->route.status = MXG_ROUTE_TEMPFAIL;
    rq->route.mx_sec = MXG_SEC_INDETERMINATE;

    if (mxg_dns_lookup_mx(dns, rq->route.domain, on_mx, rq, &rq->mxq) != 0) {
        free(rq);
        return -1;
    }
    if (q)
        *q = rq;
    return 0;
}

/* Contract: q may be NULL; after the call the callback never runs and q is
 * invalid. Must not be called once the callback has run (q is gone). Cancel
 * every outstanding route query before mxg_dns_free(): freeing the resolver
 * silences their callbacks but cannot release their memory. */
void mxg_route_cancel(struct mxg_route_query *q)
{
    if (!q)
        return;
    mxg_dns_cancel(q->mxq);
    for (int i = 0; i < MXG_DNS_MAX_MX; i++)
        mxg_dns_cancel(q->aq[i]);
    free(q);
}
