/* tls/tls_verify.c — OpenSSL set-up for DANE and WebPKI names; see tls_verify.h. */
#include "tls_verify.h"

#include <stdio.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "../core/log.h"

const char *mxg_tls_verify_how_name(enum mxg_tls_verify_how h)
{
    switch (h) {
    case MXG_TV_NONE: return "none";
    case MXG_TV_DANE: return "dane";
    case MXG_TV_NAMES: return "names";
    }
    return "?";
}

/* DANE: SSL_dane_enable(base = sni), the other reference names, every
 * record (a refused one is skipped), no EE name checks, VERIFY_PEER. */
static int apply_dane(SSL *ssl, const struct mxg_tls_verify *v, char *err, size_t errlen)
{
    if (v->n_tlsa <= 0 || !v->tlsa) {
        snprintf(err, errlen, "DANE set-up without usable TLSA records");
        return -1;
    }
    if (SSL_dane_enable(ssl, v->sni) <= 0) {
        snprintf(err, errlen, "SSL_dane_enable(%s) failed (is DANE enabled on the context?)",
                 v->sni);
        return -1;
    }
    for (int i = 0; i < v->n_names; i++) {
        if (v->names[i] && v->names[i][0] && SSL_add1_host(ssl, v->names[i]) != 1) {
            snprintf(err, errlen, "SSL_add1_host(%s) failed", v->names[i]);
            return -1;
        }
    }
    SSL_dane_set_flags(ssl, DANE_FLAG_NO_DANE_EE_NAMECHECKS);
    int added = 0;
    for (int i = 0; i < v->n_tlsa; i++) {
        const struct mxg_tls_tlsa *rr = &v->tlsa[i];
        ERR_set_mark(); /* a refusal queues an error a later SSL_get_error() would see */
        int rc = SSL_dane_tlsa_add(ssl, rr->usage, rr->selector, rr->mtype, rr->data, rr->len);
        ERR_pop_to_mark();
        if (rc < 0) {
            snprintf(err, errlen, "SSL_dane_tlsa_add failed for record %d %d %d", rr->usage,
                     rr->selector, rr->mtype);
            return -1;
        }
        if (rc == 0) /* dane/tlsa.c parses as OpenSSL does: should not happen */
            LOG_W("dane", "%s: OpenSSL refused TLSA record %d %d %d that counted as usable",
                  v->sni, rr->usage, rr->selector, rr->mtype);
        added += rc > 0;
    }
    if (added == 0) {
        snprintf(err, errlen, "OpenSSL could use none of the TLSA records");
        return -1;
    }
    SSL_set_verify(ssl, SSL_VERIFY_PEER, NULL);
    return 0;
}

/* WebPKI: the chain to the context's CA store, a certificate valid for one
 * of the names (no partial wildcards); enforce: VERIFY_PEER. */
static int apply_names(SSL *ssl, const struct mxg_tls_verify *v, char *err, size_t errlen)
{
    int n = v->n_names < MXG_TV_MAX_NAMES ? v->n_names : MXG_TV_MAX_NAMES;
    int ok = n >= 1 && v->names[0] && SSL_set1_host(ssl, v->names[0]) == 1;
    for (int i = 1; ok && i < n; i++)
        ok = v->names[i] && SSL_add1_host(ssl, v->names[i]) == 1;
    if (!ok) {
        snprintf(err, errlen, "cannot set up WebPKI verification");
        return -1;
    }
    SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    SSL_set_verify(ssl, v->enforce ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);
    return 0;
}

int mxg_tls_verify_ssl(SSL *ssl, const struct mxg_tls_verify *v, char *err, size_t errlen)
{
    if (!ssl || !v) {
        snprintf(err, errlen, "no TLS connection to set up");
        return -1;
    }
    switch (v->how) {
    case MXG_TV_NONE:
        return 0;
    case MXG_TV_DANE:
        return apply_dane(ssl, v, err, errlen);
    case MXG_TV_NAMES:
        return apply_names(ssl, v, err, errlen);
    }
    snprintf(err, errlen, "unknown verification kind");
    return -1;
}

int mxg_tls_verify_apply(struct mxg_tls_engine *e, const struct mxg_tls_verify *v, char *err,
                         size_t errlen)
{
    return mxg_tls_verify_ssl(e ? mxg_tls_engine_ssl(e) : NULL, v, err, errlen);
}

void mxg_tls_verify_matched(struct mxg_tls_engine *e, char *out, size_t cap)
{
    uint8_t u, s, m;
    unsigned const char *data;
    size_t dlen;
    SSL *ssl = e ? mxg_tls_engine_ssl(e) : NULL;
    int depth = ssl ? SSL_get0_dane_tlsa(ssl, &u, &s, &m, &data, &dlen) : -1;
    if (depth < 0) {
        snprintf(out, cap, "no DANE match");
        return;
    }
    snprintf(out, cap, "TLSA %u %u %u matched at depth %d", u, s, m, depth);
}
