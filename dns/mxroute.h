/* dns/mxroute.h — from a destination domain to an ordered list of MX hosts
 * with their addresses (RFC 5321 §5.1, RFC 7505), each with DNSSEC status.
 *
 * Contract:
 *  - mxg_route_resolve() looks up MX for the domain, sorts hosts by preference
 *    with a random tie-break among equal preferences, then looks up the
 *    addresses of every host (in parallel, at most cfg->max_mx_hosts hosts).
 *    No MX but the name exists with an address → implicit MX (the domain
 *    itself, preference 0). One callback with the whole route.
 *  - Domain-level outcome (route->status) with the reply the client must get:
 *      OK        hosts listed (some may have failed individually)
 *      NULL_MX   "MX 0 ." (RFC 7505)              → 556 5.1.10
 *      NXDOMAIN  domain does not exist / no MX and no address → 550 5.1.2
 *      TEMPFAIL  timeout/SERVFAIL/bogus on the MX lookup → 451 4.4.3
 *    Per host: addr status and sec; a host with no usable address is kept in
 *    the list with its failure (so the caller can say why it was skipped).
 *  - The route passed to the callback is owned by the module and valid only
 *    during the callback; mxg_route_copy() makes a heap copy the caller owns
 *    (free with free()).
 *  - mxg_route_cancel() guarantees the callback will not run.
 */
#ifndef MXG_MXROUTE_H
#define MXG_MXROUTE_H

#include "dns.h"

enum mxg_route_status { MXG_ROUTE_OK = 0, MXG_ROUTE_NULL_MX, MXG_ROUTE_NXDOMAIN, MXG_ROUTE_TEMPFAIL };
const char *mxg_route_status_name(enum mxg_route_status s);

struct mxg_route_host {
    char name[MXG_DNS_NAME_MAX];
    int pref;
    int implicit;                  /* 1 = implicit MX (domain's own address) */
    struct mxg_addr_result addrs;  /* status, sec, addresses */
};

/* host[] stays last: a copy made by mxg_route_copy() holds only
 * host[0 .. n-1] (a leg keeps one for its whole life, and most domains
 * have one or two MX hosts, not MXG_DNS_MAX_MX). */
struct mxg_route {
    enum mxg_route_status status;
    char domain[MXG_DNS_NAME_MAX];
    enum mxg_dnssec mx_sec;        /* DNSSEC status of the MX RRset */
    char why[200];                 /* reason for non-OK, for the reply text */
    int n;
    struct mxg_route_host host[MXG_DNS_MAX_MX]; /* preference order */
};

struct mxg_route_query;
typedef void (*mxg_route_cb)(void *arg, const struct mxg_route *route);

/* Returns 0 (callback will run later, never synchronously) or -1. */
int mxg_route_resolve(struct mxg_dns *dns, const char *domain, int max_hosts, mxg_route_cb cb,
                      void *arg, struct mxg_route_query **q);
void mxg_route_cancel(struct mxg_route_query *q);
/* Heap copy of r (free() it): only host[0 .. r->n - 1] are allocated, so
 * never copy the result by value or index past n. NULL if r is NULL or out
 * of memory. */
struct mxg_route *mxg_route_copy(const struct mxg_route *r);

/* Exposed for unit tests: sort by preference, shuffle ties with rnd(). */
void mxg_route_sort(struct mxg_mx_rr *mx, int n, unsigned (*rnd)(void *), void *rnd_arg);

#endif
