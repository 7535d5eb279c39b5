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
 * mxg_dane_tls_setup() arms an SSL (before the handshake) for VERIFY:
 * SSL_dane_enable with the TLSA base domain (also the SNI), SSL_add1_host
 * for the other reference name of a CNAME'd host, each usable record via
 * SSL_dane_tlsa_add, DANE_FLAG_NO_DANE_EE_NAMECHECKS, SSL_VERIFY_PEER.
 * Verification stays inside OpenSSL's chain check. */
#ifndef MXG_DANE_H
#define MXG_DANE_H

#include <openssl/ssl.h>

#include "dns.h"
#include "tlsa.h"

enum mxg_dane_req {
    MXG_DANE_NONE = 0, /* DANE does not apply to this host */
    MXG_DANE_VERIFY,   /* TLS + a usable TLSA record must match */
    MXG_DANE_ENCRYPT,  /* TLS mandatory, no authentication (only unusable records) */
    MXG_DANE_UNUSABLE, /* lookup failed/bogus: the host must not be used now */
};
const char *mxg_dane_req_name(enum mxg_dane_req r);

/* Octets of record data one host keeps: 16 SHA2-512 digests take 1 KB; a
 * Full(0) record (a whole certificate or key) up to MXG_TLSA_DATA_MAX. A
 * leg keeps one mxg_dane_host per MX host, so this (not 16 x 2 KB) bounds
 * its size (~5 KB). */
#define MXG_DANE_POOL 4096
_Static_assert(MXG_DANE_POOL <= UINT16_MAX, "pool offsets are uint16_t");

/* One usable record of a host; its data is pool[off .. off + len). */
struct mxg_dane_rr {
    uint8_t usage, selector, mtype;
    uint16_t len, off;
};

struct mxg_dane_host {
    enum mxg_dane_req req;
    char enh[8];                       /* for UNUSABLE: "4.4.3" or "4.7.5" */
    char base[MXG_DNS_NAME_MAX];       /* TLSA base domain: SNI + reference name */
    char other[MXG_DNS_NAME_MAX];      /* the other reference name ("" if none) */
    int n_usable, n_total;             /* records kept (all usable) / in the RRset */
    int n_dropped;                     /* usable ones left out: no room (logged) */
    struct mxg_dane_rr rr[MXG_TLSA_MAX_RR]; /* the usable records (n_usable) */
    uint16_t pool_used;
    uint8_t pool[MXG_DANE_POOL];
    char why[240];                     /* human-readable reason of the decision */
};

/* Appends the (usable) record rr to h's records. Returns 0, or -1 when h
 * has no room left (MXG_TLSA_MAX_RR records or MXG_DANE_POOL octets of
 * data), h unchanged. */
int mxg_dane_host_add(struct mxg_dane_host *h, const struct mxg_tlsa_rr *rr);
/* Record i (0 <= i < n_usable) of h as "3 1 1 0A1B..." (mxg_tlsa_format). */
void mxg_dane_host_format(const struct mxg_dane_host *h, int i, char *out, size_t cap);

struct mxg_dane_query;
typedef void (*mxg_dane_cb)(void *arg, const struct mxg_dane_host *h);

/* mx_sec: DNSSEC status of the MX RRset (for an implicit MX: of the
 * domain's own address answer). host: the MX host name; addrs: its address
 * lookup result (canon = CNAME-expanded name). Returns 1 (decided, *now
 * filled), 0 (callback later, *q set), or -1 (out of memory). */
int mxg_dane_host_lookup(struct mxg_dns *dns, enum mxg_dnssec mx_sec, const char *host,
                         const struct mxg_addr_result *addrs, int port, struct mxg_dane_host *now,
                         mxg_dane_cb cb, void *arg, struct mxg_dane_query **q);
void mxg_dane_cancel(struct mxg_dane_query *q);

/* The decision for one TLSA answer at `name` (exposed for unit tests).
 * other: the other reference name of a CNAME'd host, or NULL. has_next: a
 * second name remains to be asked. Returns 1 with *h filled, or 0 when the
 * answer says "ask the next name" (secure denial / insecure, has_next). */
int mxg_dane_decide(const struct mxg_tlsa_result *r, const char *name, const char *other, int port,
                    int has_next, struct mxg_dane_host *h);

/* Returns 0, or -1 with err (then the connection must not proceed). */
int mxg_dane_tls_setup(SSL *ssl, const struct mxg_dane_host *h, char *err, size_t errlen);

/* After a successful DANE handshake: "3 1 1 (depth 0)" for the log. */
void mxg_dane_tls_matched(SSL *ssl, char *out, size_t cap);

#endif
