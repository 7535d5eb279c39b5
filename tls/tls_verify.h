/* tls/tls_verify.h — what a client engine must verify of its peer, and the
 * OpenSSL set-up that makes it so (DANE, RFC 7672 / RFC 7671; WebPKI
 * reference names, RFC 6125 as OpenSSL's X509_check_host does it).
 *
 * The type belongs to tls/ and is consumed by tls/: policy/requirement.h
 * (the per-host requirement) fills one, the SMTP client hands it to
 * mxg_tls_verify_apply() right after creating the engine. tls/ includes
 * neither dane/ nor policy/: DANE records arrive as plain structs.
 *
 *   how    NONE   no authentication (opportunistic, encrypt, plaintext)
 *          DANE   the peer must match one of the TLSA records (SSL_dane_enable
 *                 with the TLSA base domain = sni; names[] are further
 *                 reference names, e.g. the other name of a CNAME'd MX host;
 *                 DANE_FLAG_NO_DANE_EE_NAMECHECKS; SSL_VERIFY_PEER)
 *          NAMES  a WebPKI chain to the context's CA store and a certificate
 *                 valid for one of names[] (".example.com" = any subdomain)
 *   enforce  1: the handshake fails when verification fails; 0: it completes
 *            and mxg_tls_verify_result() tells (MTA-STS testing: report only).
 *            DANE is always enforced.
 *
 * Contract: struct mxg_tls_verify is a plain value; the names and TLSA
 * records it points to are borrowed and must stay valid until
 * mxg_tls_verify_apply() returns (OpenSSL copies them). Functions return 0
 * or -1 with err set; nothing is logged except an OpenSSL refusal of a
 * record the caller called usable (a warning). */
#ifndef MXG_TLS_VERIFY_H
#define MXG_TLS_VERIFY_H

#include <stddef.h>
#include <stdint.h>

#include "tls_engine.h"

enum mxg_tls_verify_how { MXG_TV_NONE = 0, MXG_TV_DANE, MXG_TV_NAMES };
/* "none", "dane", "names" (stable: `mxguard check --json` prints it). */
const char *mxg_tls_verify_how_name(enum mxg_tls_verify_how h);

/* One usable TLSA record (RFC 6698 fields); data: len octets, borrowed. */
struct mxg_tls_tlsa {
    uint8_t usage, selector, mtype;
    uint16_t len;
    const uint8_t *data;
};

#define MXG_TV_MAX_NAMES 16
#define MXG_TV_NAME_MAX 257 /* a DNS name, a leading '.', NUL */

struct mxg_tls_verify {
    enum mxg_tls_verify_how how;
    int enforce;
    char sni[MXG_TV_NAME_MAX];                    /* server name sent ("" = none); DANE: the
                                                     TLSA base domain */
    int n_names;
    const char *names[MXG_TV_MAX_NAMES];          /* NAMES: acceptable names; DANE: more
                                                     reference names beside sni (borrowed) */
    const struct mxg_tls_tlsa *tlsa;              /* DANE: the usable records (borrowed) */
    int n_tlsa;
};

/* Arm engine e (a client engine, before its handshake) for v. NONE: nothing
 * to do. DANE: err e.g. "OpenSSL could use none of the TLSA records".
 * NAMES: err "cannot set up WebPKI verification". */
int mxg_tls_verify_apply(struct mxg_tls_engine *e, const struct mxg_tls_verify *v, char *err,
                         size_t errlen);

/* The same on a bare SSL (the DANE decision's unit tests and fuzz target
 * arm an SSL without an engine). The SSL_CTX must have DANE enabled. */
int mxg_tls_verify_ssl(SSL *ssl, const struct mxg_tls_verify *v, char *err, size_t errlen);

/* After a successful DANE handshake: "TLSA 3 1 1 matched at depth 0", or
 * "no DANE match" (for the log's verified text). */
void mxg_tls_verify_matched(struct mxg_tls_engine *e, char *out, size_t cap);

#endif
