/* tests/unit/tlsa_fixture.h — real DER for TLSA Full(0) records, made at
 * test time with OpenSSL (no key or certificate files): the unit tests of
 * dane/tlsa and dane/dane share it. Header-only: each test_*.c is its own
 * executable; every function is static inline so that a test using only
 * some of them still builds with -Werror.
 *
 * What tlsa_der_make() fills (all heap, freed by tlsa_der_free()):
 *  - cert / spki: a self-signed Ed25519 certificate and its
 *    SubjectPublicKeyInfo (Ed25519: fixed-size signature, so the sizes are
 *    the same on every run);
 *  - big: a certificate of the same key of exactly TLSA_FIXTURE_BIG octets
 *    (a Netscape comment extension pads it): bigger than any storage limit
 *    mxguard ever had for one record (2 KB) or one host (4 KB);
 *  - ec_cert / ec_spki: a P-256 certificate and its SPKI, valid;
 *  - badkey_cert / badkey_spki: the same two with the last octet of the EC
 *    point flipped — the point is off the curve, so the certificate still
 *    parses as DER but OpenSSL cannot decode its public key (what
 *    SSL_dane_tlsa_add checks with X509_get0_pubkey), and the SPKI does not
 *    parse at all. */
#ifndef MXG_TEST_TLSA_FIXTURE_H
#define MXG_TEST_TLSA_FIXTURE_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/x509.h>

#include "dane/tlsa.h"

#define TLSA_FIXTURE_BIG 5000

struct tlsa_der {
    unsigned char *cert, *spki, *big, *ec_cert, *ec_spki, *badkey_cert, *badkey_spki;
    size_t cert_len, spki_len, big_len, ec_cert_len, ec_spki_len, badkey_cert_len,
        badkey_spki_len;
};

/* A self-signed certificate for key (CN mx.example.test, fixed validity),
 * with a Netscape comment of comment_len 'x' octets when comment_len > 0.
 * Returns the DER (malloc'ed, *len octets; the caller frees it) or NULL. */
static inline unsigned char *tlsa_der_cert(EVP_PKEY *key, size_t comment_len, size_t *len)
{
    unsigned char *der = NULL;
    X509 *x = X509_new();
    ASN1_IA5STRING *comment = NULL;
    char *pad = NULL;
    int ok = x != NULL && X509_set_version(x, 2) &&
             ASN1_INTEGER_set(X509_get_serialNumber(x), 1) &&
             ASN1_TIME_set(X509_getm_notBefore(x), (time_t)1700000000) &&
             ASN1_TIME_set(X509_getm_notAfter(x), (time_t)2000000000) &&
             X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                                        (const unsigned char *)"mx.example.test", -1, -1, 0) &&
             X509_set_issuer_name(x, X509_get_subject_name(x)) && X509_set_pubkey(x, key);
    if (ok && comment_len > 0) {
        pad = malloc(comment_len);
        comment = ASN1_IA5STRING_new();
        ok = pad && comment;
        if (ok) {
            memset(pad, 'x', comment_len);
            ok = ASN1_STRING_set(comment, pad, (int)comment_len) &&
                 X509_add1_ext_i2d(x, NID_netscape_comment, comment, 0, 0) == 1;
        }
    }
    /* Ed25519 signs without a separate digest */
    if (ok)
        ok = X509_sign(x, key, EVP_PKEY_id(key) == EVP_PKEY_ED25519 ? NULL : EVP_sha256()) > 0;
    int n = ok ? i2d_X509(x, &der) : -1;
    ASN1_IA5STRING_free(comment);
    free(pad);
    X509_free(x);
    if (n <= 0)
        return NULL;
    *len = (size_t)n;
    return der;
}

/* key's SubjectPublicKeyInfo in DER (malloc'ed, *len octets) or NULL. */
static inline unsigned char *tlsa_der_spki(EVP_PKEY *key, size_t *len)
{
    unsigned char *der = NULL;
    int n = i2d_PUBKEY(key, &der);
    if (n <= 0)
        return NULL;
    *len = (size_t)n;
    return der;
}

static inline unsigned char *tlsa_der_dup(const unsigned char *p, size_t len)
{
    unsigned char *d = malloc(len);
    if (d)
        memcpy(d, p, len);
    return d;
}

static inline void tlsa_der_free(struct tlsa_der *d)
{
    OPENSSL_free(d->cert);
    OPENSSL_free(d->spki);
    OPENSSL_free(d->big);
    OPENSSL_free(d->ec_cert);
    OPENSSL_free(d->ec_spki);
    free(d->badkey_cert);
    free(d->badkey_spki);
    memset(d, 0, sizeof *d);
}

/* Fill d (see the top of this file). Returns 0, or -1 (d freed). */
static inline int tlsa_der_make(struct tlsa_der *d)
{
    memset(d, 0, sizeof *d);
    EVP_PKEY *ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    EVP_PKEY *ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    int ok = ed && ec && (d->cert = tlsa_der_cert(ed, 0, &d->cert_len)) &&
             (d->spki = tlsa_der_spki(ed, &d->spki_len)) &&
             (d->ec_cert = tlsa_der_cert(ec, 0, &d->ec_cert_len)) &&
             (d->ec_spki = tlsa_der_spki(ec, &d->ec_spki_len));
    /* big: pad until the DER is TLSA_FIXTURE_BIG octets (a few rounds: the
     * DER length fields grow with the comment) */
    size_t pad = 1000;
    for (int round = 0; ok && round < 8 && d->big_len != TLSA_FIXTURE_BIG; round++) {
        OPENSSL_free(d->big);
        d->big = tlsa_der_cert(ed, pad, &d->big_len);
        ok = d->big != NULL;
        if (ok)
            pad = pad + TLSA_FIXTURE_BIG - d->big_len;
    }
    ok = ok && d->big_len == TLSA_FIXTURE_BIG;
    /* badkey: flip the last octet of the EC point (the last octet of the
     * SPKI, found again inside the certificate) */
    if (ok) {
        d->badkey_spki = tlsa_der_dup(d->ec_spki, d->ec_spki_len);
        d->badkey_cert = tlsa_der_dup(d->ec_cert, d->ec_cert_len);
        d->badkey_spki_len = d->ec_spki_len;
        d->badkey_cert_len = d->ec_cert_len;
        ok = d->badkey_spki && d->badkey_cert;
    }
    if (ok) {
        d->badkey_spki[d->badkey_spki_len - 1] ^= 0x01;
        unsigned char *at = NULL;
        for (size_t i = 0; i + d->ec_spki_len <= d->ec_cert_len && !at; i++)
            if (memcmp(d->ec_cert + i, d->ec_spki, d->ec_spki_len) == 0)
                at = d->badkey_cert + i;
        ok = at != NULL;
        if (ok)
            at[d->ec_spki_len - 1] ^= 0x01;
    }
    EVP_PKEY_free(ed);
    EVP_PKEY_free(ec);
    if (!ok) {
        tlsa_der_free(d);
        return -1;
    }
    return 0;
}

/* rr = usage selector mtype with len octets of data (borrowed: rr->data
 * points to data, which must outlive rr). */
static inline void tlsa_rr_set(struct mxg_tlsa_rr *rr, unsigned usage, unsigned selector,
                               unsigned mtype, const unsigned char *data, size_t len)
{
    memset(rr, 0, sizeof *rr);
    rr->usage = (uint8_t)usage;
    rr->selector = (uint8_t)selector;
    rr->mtype = (uint8_t)mtype;
    rr->len = (uint16_t)len;
    rr->data = len ? (uint8_t *)data : NULL;
}

/* cmocka group set-up / tear-down: *state = one struct tlsa_der (static)
 * made for the whole group. */
static inline int tlsa_der_group_setup(void **state)
{
    static struct tlsa_der der;
    if (tlsa_der_make(&der) < 0)
        return -1;
    *state = &der;
    return 0;
}

static inline int tlsa_der_group_teardown(void **state)
{
    tlsa_der_free(*state);
    return 0;
}

#endif
