/* dns/dns.h — DNS on the libuv loop with getdns, every answer carrying its
 * DNSSEC status.
 *
 * Contract:
 *  - mxg_dns_new() creates a getdns context bound to the given uv loop, in stub
 *    mode towards the configured servers (or those of /etc/resolv.conf when
 *    none are configured; over TCP, or UDP for a query they refuse over TCP,
 *    per cfg->dns_transport) or in recursive mode (root servers from
 *    cfg->dns_root_hints, a root hints file), or both (auto mode: "Resolver
 *    paths" below), with DNSSEC validation against
 *    the trust anchors of cfg->trust_anchor_file (DS or DNSKEY records in zone
 *    file syntax, parsed line by line). Queries use the extensions
 *    dnssec_return_status + dnssec_return_all_statuses so that bogus answers
 *    are reported as bogus, never as "no such name".
 *  - Every result is classified: status (OK / NODATA / NXDOMAIN / TEMPFAIL /
 *    BOGUS) and DNSSEC (SECURE / INSECURE / BOGUS / INDETERMINATE).
 *  - Callbacks run on the loop; the result passed to a callback is owned by
 *    the dns module and valid only during the callback (copy what you keep).
 *  - mxg_dns_cancel() guarantees the callback will not run.
 *  - Errors: negative return values (-1) with err text; never abort().
 *  - Cache: MX, A, AAAA (each family separately), TLSA and TXT outcomes are kept
 *    per (name asked, RR type), at most cfg->dns_cache_size entries (LRU;
 *    0 = no cache). Answers live min(TTL of the RRs used incl. CNAMEs and
 *    RRSIGs, cfg->dns_cache_max_ttl_ms); NODATA / NXDOMAIN
 *    min(SOA-derived negative TTL, cfg->dns_negative_ttl_ms). TEMPFAIL,
 *    BOGUS and INDETERMINATE outcomes are never cached: a retry asks again.
 *    A cache hit is delivered like any answer: later, from the loop.
 *  - Limits (docs/ARCHITECTURE.md §Limits: an implementation limit never weakens a policy; a
 *    DNS answer mxguard cannot keep whole is a failure of the lookup,
 *    TEMPFAIL, never fewer records, NODATA or NXDOMAIN):
 *      TLSA, TXT   no cap: every record kept whole (heap, sized to the
 *                  answer; a DNS message is at most 64 KB). Out of memory,
 *                  or a record getdns cannot parse (TXT), fails the lookup.
 *                  Callers count records (one STS / TLSRPT record, RFC 8461
 *                  §3.1, RFC 8460 §3) and read them whole (ids, rua).
 *      CNAME       DNS_MAX_CHAIN (16) links inside one answer and
 *                  DNS_MAX_CNAME_HOPS (8) follow-up queries; a longer chain
 *                  or a loop fails the lookup.
 *      MX          MXG_DNS_MAX_MX (32): the most preferred records are kept
 *                  (logged). Safe: fewer hosts to try, never a weaker
 *                  policy for one; DNSSEC status is the RRset's, whatever
 *                  is kept; mxroute caps by preference anyway
 *                  (limits.max_mx_hosts), and a null MX is alone by rule.
 *      A / AAAA    MXG_DNS_MAX_ADDR (16) addresses per family and per
 *                  union (IPv4 first; answer order). Safe: fewer
 *                  addresses to try for a host; the DNSSEC status, the
 *                  canonical name (the TLSA base) and every policy of the
 *                  host are the same; an address never kept is never
 *                  connected to (loop and private-range checks apply to
 *                  every address that is). The legs cap their candidates
 *                  (64 host x address) the same way.
 *      names       MXG_DNS_NAME_MAX (256, the DNS's 255 + NUL): a longer
 *                  name is refused at the call (-1), an owner or target
 *                  that does not fit is not a DNS name.
 */
#ifndef MXG_DNS_H
#define MXG_DNS_H

#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#include "../core/config.h"
#include "dns_rr.h"

enum mxg_dns_status {
    MXG_DNS_OK = 0,    /* an answer with >= 1 record of the asked type */
    MXG_DNS_NODATA,    /* name exists, no record of that type */
    MXG_DNS_NXDOMAIN,  /* name does not exist */
    MXG_DNS_TEMPFAIL,  /* timeout, SERVFAIL, network error */
    MXG_DNS_BOGUS,     /* DNSSEC validation failed */
};
enum mxg_dnssec { MXG_SEC_INSECURE = 0, MXG_SEC_SECURE, MXG_SEC_BOGUS, MXG_SEC_INDETERMINATE };

const char *mxg_dns_status_name(enum mxg_dns_status s);
const char *mxg_dnssec_name(enum mxg_dnssec s);

struct mxg_dns;
struct mxg_dns_query;

#define MXG_DNS_NAME_MAX 256
#define MXG_DNS_MAX_MX 32
#define MXG_DNS_MAX_ADDR 16

struct mxg_mx_rr {
    int pref;
    char host[MXG_DNS_NAME_MAX]; /* lower-case, no trailing dot; "" = null MX "." */
};

struct mxg_mx_result {
    enum mxg_dns_status status;
    enum mxg_dnssec sec;          /* of the MX RRset (and CNAME chain) */
    char canon[MXG_DNS_NAME_MAX]; /* owner after CNAME expansion */
    int n;
    struct mxg_mx_rr mx[MXG_DNS_MAX_MX]; /* in answer order (caller sorts) */
    char why[160];                /* reason on non-OK */
};

struct mxg_addr_result {
    enum mxg_dns_status status;   /* OK if >= 1 address of either family */
    enum mxg_dnssec sec;          /* SECURE only if every answer used was secure */
    char canon[MXG_DNS_NAME_MAX]; /* name after CNAME expansion */
    int n;
    struct sockaddr_storage addr[MXG_DNS_MAX_ADDR]; /* port 0 */
    char why[160];
};

struct mxg_tlsa_result {
    enum mxg_dns_status status;
    enum mxg_dnssec sec;
    char qname[MXG_DNS_NAME_MAX];  /* "_25._tcp.host" as asked */
    int n;                         /* records in rr */
    struct mxg_tlsa_rr *rr;        /* every record of the RRset, whole (owned by dns) */
    int n_bad;                     /* records getdns could not parse: unusable, not in rr */
    char why[160];
    char canon[MXG_DNS_NAME_MAX];  /* owner of the records after CNAME expansion */
};

struct mxg_txt_result {
    enum mxg_dns_status status;
    enum mxg_dnssec sec;
    char canon[MXG_DNS_NAME_MAX];
    int n;                         /* records: every one of the RRset */
    /* record i: txt[i], len[i] octets (its character-strings concatenated,
     * RFC 7208 §3.3 style; may hold NULs), NUL-terminated; len excludes the
     * NUL. txt and len are one heap block sized to the RRset, owned by dns
     * (NULL when n == 0). txt[] can be passed as "const char *const *". */
    char **txt;
    size_t *len;
    char why[160];
};

typedef void (*mxg_mx_cb)(void *arg, const struct mxg_mx_result *res);
typedef void (*mxg_txt_cb)(void *arg, const struct mxg_txt_result *res);
typedef void (*mxg_tlsa_cb)(void *arg, const struct mxg_tlsa_result *res);
typedef void (*mxg_addr_cb)(void *arg, const struct mxg_addr_result *res);

struct mxg_dns *mxg_dns_new(uv_loop_t *loop, const struct mxg_config *cfg, char *err, size_t errlen);
void mxg_dns_free(struct mxg_dns *dns);

/* MX lookup of domain. With more than MXG_DNS_MAX_MX records the most
 * preferred ones are kept (logged): fewer hosts to try, never a weaker
 * policy for one (mxroute caps by preference anyway, max_mx_hosts).
 * Returns 0 and sets *q (may be NULL), or -1. */
int mxg_dns_lookup_mx(struct mxg_dns *dns, const char *domain, mxg_mx_cb cb, void *arg,
                      struct mxg_dns_query **q);
/* A and AAAA of host, one callback with the union (IPv4 first).
 * Merge rule: status OK if >= 1 address; with none: BOGUS if either lookup
 * was bogus, else TEMPFAIL if either failed, else NXDOMAIN if both said so,
 * else NODATA.
 * sec: BOGUS if either lookup was bogus; else INDETERMINATE if either
 * failed (TEMPFAIL) — also when the other family answered and status is
 * OK: the addresses are usable but a partial failure never looks secure;
 * else SECURE only if both answers (or secure denials) were secure; else
 * the worse of the two (INSECURE, or INDETERMINATE when getdns could not
 * determine one). */
int mxg_dns_lookup_addr(struct mxg_dns *dns, const char *host, mxg_addr_cb cb, void *arg,
                        struct mxg_dns_query **q);
/* TLSA at _PORT._tcp.HOST (CNAMEs in the answer followed), classified as
 * the others. Every record of the RRset is kept whole (heap, sized to the
 * RRset; no count or size limit below what a DNS message carries); a
 * record getdns cannot parse counts in n_bad. Out of memory is a TEMPFAIL
 * of the lookup, never fewer records (docs/ARCHITECTURE.md §Limits).
 * status OK means >= 1 TLSA record exists (n + n_bad >= 1; any may be unusable).
 * Returns 0 and sets *q (may be NULL), or -1 (bad host, port not 1..65535). */
int mxg_dns_lookup_tlsa(struct mxg_dns *dns, const char *host, int port, mxg_tlsa_cb cb, void *arg,
                        struct mxg_dns_query **q);
/* DNSSEC self-check: asks DNSKEY at the owner name of the (first) trust
 * anchor of cfg->trust_anchor_file ("." for the root key) and requires
 * status OK with a SECURE answer: cb(arg, 1, "DNSKEY . is secure (via
 * 127.0.0.1:53)"); a definite failure: cb(arg, 0, why) with why like
 * "DNSSEC self-check failed: DNSKEY . is bogus (the resolver at 127.0.0.1:53
 * may strip DNSSEC records, ...)", "... is insecure ..."; no answer at all
 * (timeout: the resolver is unreachable): cb(arg, -1, "... timed out ..."). Never cached. The callback runs later, from
 * the loop; it is not cancellable except by mxg_dns_free() (then it never
 * runs). Returns 0, or -1 (callback will not run). */
int mxg_dns_selfcheck(struct mxg_dns *dns, void (*cb)(void *arg, int ok, const char *why), void *arg);
/* TXT at name (CNAMEs followed), e.g. "_mta-sts.example.com". Every
 * record of the RRset is kept whole, in answer order (heap, sized to the
 * RRset: no count or length limit below what a DNS message carries, 64 KB).
 * Records that cannot all be kept (out of memory) or that getdns cannot
 * parse make the lookup a TEMPFAIL (why says so), never OK with fewer
 * records nor NODATA (docs/ARCHITECTURE.md §Limits): callers that count records (RFC 8461
 * §3.1, RFC 8460 §3: exactly one STS / TLSRPT record) see the whole set. */
int mxg_dns_lookup_txt(struct mxg_dns *dns, const char *name, mxg_txt_cb cb, void *arg,
                       struct mxg_dns_query **q);
void mxg_dns_cancel(struct mxg_dns_query *q);

/* Resolver paths (dns.mode; app/run_dnsauto.c chooses in auto mode).
 *  - stub mode has the stub path only (cfg->dns_servers, else
 *    /etc/resolv.conf), recursive mode the recursive path only (resolution
 *    from the root servers: cfg->dns_root_hints, else getdns' built-in
 *    hints), auto mode both (or, when it finds no stub resolver, the
 *    recursive path alone), each with its own getdns context(s) for the
 *    life of dns. New lookups go to the path in use (auto: stub at first);
 *    mxg_dns_set_path() changes it for lookups started from then on,
 *    lookups in flight finish on the path they began on, the answer cache
 *    (validated answers only) is shared.
 *  - mxg_dns_selfcheck_path(): the self-check (as mxg_dns_selfcheck, which
 *    checks the path in use) on path p; -1 if dns has no such path.
 *  - mxg_dns_path_desc(): the path for messages, e.g. "127.0.0.53:53 over
 *    TCP", "the root servers (built-in hints)", "none (why)" for auto mode's
 *    missing stub path; owned by dns. */
enum mxg_dns_path { MXG_DNS_PATH_STUB = 0, MXG_DNS_PATH_RECURSIVE };
const char *mxg_dns_path_name(enum mxg_dns_path p); /* "stub", "recursive" */
int mxg_dns_has_path(const struct mxg_dns *dns, enum mxg_dns_path p);
enum mxg_dns_path mxg_dns_path_in_use(const struct mxg_dns *dns);
int mxg_dns_set_path(struct mxg_dns *dns, enum mxg_dns_path p); /* 0, or -1 (no such path) */
const char *mxg_dns_path_desc(const struct mxg_dns *dns, enum mxg_dns_path p);
int mxg_dns_selfcheck_path(struct mxg_dns *dns, enum mxg_dns_path p,
                           void (*cb)(void *arg, int ok, const char *why), void *arg);

/* Operations (app/run_selfcheck.c, app/run_reload.c, app/run_ops.c;
 * docs/ARCHITECTURE.md §Operating).
 *  - mxg_dns_set_metrics(): count lookups by outcome (mxguard_dns_queries_total)
 *    and time those that went to the resolver; m may be NULL (borrowed).
 *  - mxg_dns_cache_entries(): entries in the answer cache now.
 *  - mxg_dns_reload_anchors(): re-read a trust anchor file (SIGHUP) and make
 *    its anchors the ones getdns validates with, for every answer that
 *    arrives from now on (getdns validates itself in stub mode; a recursive
 *    context's libunbound keeps the anchors it started with). The cache is
 *    emptied. The anchors in force before are kept for
 *    mxg_dns_revert_anchors(). 0, or -1 with err (unreadable or malformed
 *    file: nothing changed).
 *  - mxg_dns_revert_anchors(): back to the anchors before the last reload
 *    (when the new ones fail the self-check). 0, or -1 (nothing to revert). */
struct mxg_metrics;
void mxg_dns_set_metrics(struct mxg_dns *dns, struct mxg_metrics *m);
size_t mxg_dns_cache_entries(const struct mxg_dns *dns);
int mxg_dns_reload_anchors(struct mxg_dns *dns, const char *path, char *err, size_t errlen);
int mxg_dns_revert_anchors(struct mxg_dns *dns);

#endif
