/* dane/dane.h — RFC 7672 for one MX host: what DNSSEC says the connection
 * to that host must satisfy, and the OpenSSL set-up that enforces it.
 *
 * mxg_dane_host_lookup() decides, for an MX host of a route:
 *   - MX RRset not secure, or the host's addresses insecure → NONE
 *     (DANE does not apply; the next policy source decides);
 *   - the host's address lookup incomplete or bogus → UNUSABLE (4.4.3);
 *   - TLSA at _25._tcp.<CNAME-expanded host> first, then at the MX name if
 *     the expanded name securely has none; a bogus or failed TLSA lookup →
 *     UNUSABLE (4.7.5), never a fall-through;
 *   - secure TLSA with >= 1 usable record → VERIFY (DANE authentication);
 *     secure TLSA with only unusable records → ENCRYPT (TLS, no auth);
 *     secure denial (NODATA/NXDOMAIN) or an insecure TLSA answer → NONE.
 * When DNS data already at hand decides (NONE, UNUSABLE for bad addresses),
 * the call returns 1 with *now filled and no callback; otherwise it returns
 * 0 and the callback runs later (never synchronously) with the decision,
 * valid during the callback only. mxg_dane_cancel() stops it.
 *
 * mxg_dane_host_verify() hands a VERIFY host's usable records to tls/ as
 * what to verify (struct mxg_tls_verify: the TLSA base domain is the SNI,
 * the other reference name of a CNAME'd host a further name); tls/
 * (tls_verify.h) arms OpenSSL with it. Verification stays inside OpenSSL's
 * chain check. */
#ifndef MXG_DANE_H
#define MXG_DANE_H

#include "../tls/tls_verify.h"
#include "../dns/dns.h"
#include "tlsa.h"

enum mxg_dane_req {
    MXG_DANE_NONE = 0, /* DANE does not apply to this host */
    MXG_DANE_VERIFY,   /* TLS + a usable TLSA record must match */
    MXG_DANE_ENCRYPT,  /* TLS mandatory, no authentication (only unusable records) */
    MXG_DANE_UNUSABLE, /* lookup failed/bogus: the host must not be used now */
};
const char *mxg_dane_req_name(enum mxg_dane_req r);

/* Why a host is UNUSABLE (its enh says the same, for replies). */
enum mxg_dane_fail {
    MXG_DANE_FAIL_NONE = 0,
    MXG_DANE_FAIL_ADDR,  /* 4.4.3: the host's address lookup incomplete or bogus */
    MXG_DANE_FAIL_TLSA,  /* 4.7.5: the TLSA lookup bogus or failed, or out of memory */
};
/* "4.4.3", "4.7.5" ("" for NONE). */
const char *mxg_dane_fail_enh(enum mxg_dane_fail f);

/* What DNSSEC says about one MX host. The usable records (rr, n_usable)
 * live in one heap block sized to them (mxg_tlsa_copy): every usable record
 * of the RRset is kept, whatever its size; a host that cannot keep them
 * (out of memory) is UNUSABLE 4.7.5, never ENCRYPT or NONE (docs/ARCHITECTURE.md §Limits).
 * The policy string (policy_string: the whole RRset as TLSRPT's
 * policy-string, RFC 8460 §4.4: "U S M HEX" lines joined by '\n') is made
 * on demand by mxg_dane_host_pstring(). Owner: whoever holds the struct;
 * mxg_dane_host_clear() frees, mxg_dane_host_copy() deep-copies. A
 * zeroed struct is a valid empty host (req NONE). */
struct mxg_dane_host {
    enum mxg_dane_req req;
    enum mxg_dane_fail fail;           /* for UNUSABLE: why */
    char enh[8];                       /* for UNUSABLE: "4.4.3" or "4.7.5" (mxg_dane_fail_enh) */
    char base[MXG_DNS_NAME_MAX];       /* TLSA base domain: SNI + reference name */
    char other[MXG_DNS_NAME_MAX];      /* the other reference name ("" if none) */
    int n_usable, n_total;             /* usable records kept / records in the RRset */
    struct mxg_tlsa_rr *rr;            /* the usable records (heap, n_usable) */
    struct mxg_tlsa_rr *all;           /* every parsed record of the RRset (heap,
                                          n_all), for TLSRPT when none is usable,
                                          or when the TLSA answer was bogus: NULL */
    int n_all;
    char why[240];                     /* human-readable reason of the decision */
};

/* Frees h's records; h becomes an empty host (req NONE). */
void mxg_dane_host_clear(struct mxg_dane_host *h);
/* *dst = a deep copy of src (dst's old records are freed first). Returns
 * 0, or -1 out of memory: then dst is UNUSABLE 4.7.5 (fail closed). */
int mxg_dane_host_copy(struct mxg_dane_host *dst, const struct mxg_dane_host *src);
/* Record i (0 <= i < n_usable) of h as "3 1 1 0A1B..." (mxg_tlsa_format). */
void mxg_dane_host_format(const struct mxg_dane_host *h, int i, char *out, size_t cap);
/* TLSRPT policy-string of h: its usable records, or (when it has none) every
 * record of the RRset, as "U S M HEX" lines joined by '\n'; "" when no
 * record is known. Heap string (free()), NULL when out of memory. */
char *mxg_dane_host_pstring(const struct mxg_dane_host *h);
/* SHA-256 over h's requirement (req, base, other, every usable record whole):
 * two hosts with the same digest demand the same of a peer. */
void mxg_dane_host_digest(const struct mxg_dane_host *h, unsigned char out[32]);

struct mxg_dane_query;
/* h is owned by the dane module and valid during the callback only: keep a
 * copy with mxg_dane_host_copy(). */
typedef void (*mxg_dane_cb)(void *arg, const struct mxg_dane_host *h);

/* mx_sec: DNSSEC status of the MX RRset (for an implicit MX: of the
 * domain's own address answer). host: the MX host name; addrs: its address
 * lookup result (canon = CNAME-expanded name). Returns 1 (decided, *now
 * filled; the caller owns it: mxg_dane_host_clear()), 0 (callback later,
 * *q set), or -1 (out of memory). */
int mxg_dane_host_lookup(struct mxg_dns *dns, enum mxg_dnssec mx_sec, const char *host,
                         const struct mxg_addr_result *addrs, int port, struct mxg_dane_host *now,
                         mxg_dane_cb cb, void *arg, struct mxg_dane_query **q);
void mxg_dane_cancel(struct mxg_dane_query *q);

/* The decision for one TLSA answer at `name` (exposed for unit tests).
 * other: the other reference name of a CNAME'd host, or NULL. has_next: a
 * second name remains to be asked. Returns 1 with *h filled, or 0 when the
 * answer says "ask the next name" (secure denial / insecure, has_next).
 * h's old records are freed first; the caller owns the new ones. */
int mxg_dane_decide(const struct mxg_tlsa_result *r, const char *name, const char *other, int port,
                    int has_next, struct mxg_dane_host *h);

/* Mark h UNUSABLE for f with why (its records are freed). */
void mxg_dane_host_unusable(struct mxg_dane_host *h, enum mxg_dane_fail f, const char *why);

/* What tls/ must verify for a VERIFY host h: how DANE, enforced, sni = the
 * TLSA base domain, names = {the other reference name} when there is one
 * (borrowed from h), the usable records in *own (heap, free(); their data
 * borrowed from h: keep h unchanged while v is in use). Returns 0, or -1 (h is not VERIFY
 * with usable records, or out of memory: *own NULL, v->how NONE). */
int mxg_dane_host_verify(const struct mxg_dane_host *h, struct mxg_tls_verify *v,
                         struct mxg_tls_tlsa **own);

#endif
