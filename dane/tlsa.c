/* dane/tlsa.c — see tlsa.h.
 *
 * Decisions:
 *  - mxg_tlsa_check() looks at the fields in the order usage, selector,
 *    matching type, length, data, and reports the first problem.
 *  - Full(0) data is parsed the way SSL_dane_tlsa_add() (OpenSSL 3,
 *    ssl/ssl_lib.c dane_tlsa_add) parses it, so that a record counted usable
 *    here is one OpenSSL loads: d2i_X509 consuming every octet plus a public
 *    key X509_get0_pubkey() can decode (selector 0), d2i_PUBKEY consuming
 *    every octet (selector 1). Anything else is BAD_DATA: unusable, like a
 *    digest of the wrong length (RFC 7671 §5, RFC 7672 §2.2).
 *  - A record whose len exceeds MXG_TLSA_DATA_MAX (no DNS message holds
 *    one) is BAD_LENGTH; there is no smaller storage limit: dns.c keeps
 *    every record whole, sized to the RRset (mxg_tlsa_copy).
 *  - mxg_tlsa_format() of a record with no data writes only "U S M".
 */
#include "tlsa.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#define TLSA_USAGE_DANE_TA 2
#define TLSA_USAGE_DANE_EE 3
#define TLSA_SELECTOR_CERT 0
#define TLSA_SELECTOR_SPKI 1
#define TLSA_MTYPE_FULL 0
#define TLSA_MTYPE_SHA256 1
#define TLSA_MTYPE_SHA512 2

/* Contract: 1 when the len octets of a Full(0) record's data are exactly
 * one DER certificate whose public key OpenSSL can decode (selector 0) or
 * exactly one DER SubjectPublicKeyInfo (selector 1), else 0. rr->len must be
 * 1..MXG_TLSA_DATA_MAX and the selector 0|1 (the caller checked). Owns
 * nothing afterwards; OpenSSL's error queue is left as it was (the decoders'
 * errors are popped, so a later SSL_get_error() is not misled). */
static int full_data_parses(const struct mxg_tlsa_rr *rr)
{
    const unsigned char *p = rr->data;
    const unsigned char *end = rr->data + rr->len;
    int ok = 0;
    ERR_set_mark();
    if (rr->selector == TLSA_SELECTOR_CERT) {
        X509 *cert = d2i_X509(NULL, &p, (long)rr->len);
        ok = cert != NULL && p == end && X509_get0_pubkey(cert) != NULL;
        X509_free(cert);
    } else {
        EVP_PKEY *key = d2i_PUBKEY(NULL, &p, (long)rr->len);
        ok = key != NULL && p == end;
        EVP_PKEY_free(key);
    }
    ERR_pop_to_mark();
    return ok;
}

/* Contract: USABLE only for usage 2|3, selector 0|1 and matching type 0
 * (1..MXG_TLSA_DATA_MAX octets that parse as the selector says:
 * full_data_parses), 1 (32 octets) or 2 (64 octets). */
enum mxg_tlsa_verdict mxg_tlsa_check(const struct mxg_tlsa_rr *rr)
{
    if (!rr)
        return MXG_TLSA_BAD_LENGTH;
    if (rr->usage != TLSA_USAGE_DANE_TA && rr->usage != TLSA_USAGE_DANE_EE)
        return MXG_TLSA_BAD_USAGE;
    if (rr->selector != TLSA_SELECTOR_CERT && rr->selector != TLSA_SELECTOR_SPKI)
        return MXG_TLSA_BAD_SELECTOR;
    if (rr->len > MXG_TLSA_DATA_MAX || (rr->len && !rr->data))
        return MXG_TLSA_BAD_LENGTH;
    switch (rr->mtype) {
    case TLSA_MTYPE_FULL:
        if (rr->len == 0)
            return MXG_TLSA_BAD_LENGTH;
        return full_data_parses(rr) ? MXG_TLSA_USABLE : MXG_TLSA_BAD_DATA;
    case TLSA_MTYPE_SHA256:
        return rr->len == 32 ? MXG_TLSA_USABLE : MXG_TLSA_BAD_LENGTH;
    case TLSA_MTYPE_SHA512:
        return rr->len == 64 ? MXG_TLSA_USABLE : MXG_TLSA_BAD_LENGTH;
    default:
        return MXG_TLSA_BAD_MTYPE;
    }
}

/* Contract: a short English phrase per verdict, "?" for unknown values. */
const char *mxg_tlsa_verdict_name(enum mxg_tlsa_verdict v)
{
    switch (v) {
    case MXG_TLSA_USABLE: return "usable";
    case MXG_TLSA_BAD_USAGE: return "unusable certificate usage";
    case MXG_TLSA_BAD_SELECTOR: return "unusable selector";
    case MXG_TLSA_BAD_MTYPE: return "unusable matching type";
    case MXG_TLSA_BAD_LENGTH: return "wrong association data length";
    case MXG_TLSA_BAD_DATA: return "association data does not parse";
    }
    return "?";
}

/* Contract: "U S M HEX" (HEX upper case, omitted with the blank before it
 * when there is no data); always NUL-terminated when cap > 0, cut at cap - 1
 * characters. */
void mxg_tlsa_format(const struct mxg_tlsa_rr *rr, char *out, size_t cap)
{
    if (!out || cap == 0)
        return;
    if (!rr) {
        out[0] = '\0';
        return;
    }
    mxg_tlsa_format_fields(rr->usage, rr->selector, rr->mtype, rr->data, rr->len, out, cap);
}

void mxg_tlsa_format_fields(unsigned usage, unsigned selector, unsigned mtype,
                            const uint8_t *data, size_t len, char *out, size_t cap)
{
    static const char hex[] = "0123456789ABCDEF";
    if (!out || cap == 0)
        return;
    int w = snprintf(out, cap, "%u %u %u", usage, selector, mtype);
    if (w < 0) {
        out[0] = '\0';
        return;
    }
    size_t o = (size_t)w;
    if (o >= cap - 1 || len == 0 || !data)
        return;
    out[o++] = ' ';
    for (size_t i = 0; i < len && o < cap - 1; i++) {
        out[o++] = hex[data[i] >> 4];
        if (o < cap - 1)
            out[o++] = hex[data[i] & 0x0f];
    }
    out[o] = '\0';
}
