/* dane/tlsa.h — TLSA records (RFC 6698) and what SMTP may use of them
 * (RFC 7672 §3.1): usages DANE-TA(2) and DANE-EE(3) only; selectors
 * Cert(0) and SPKI(1); matching types Full(0), SHA2-256(1, 32 octets),
 * SHA2-512(2, 64 octets). Pure functions, no I/O. */
#ifndef MXG_TLSA_H
#define MXG_TLSA_H

#include <stddef.h>
#include <stdint.h>

#define MXG_TLSA_DATA_MAX 2048 /* full certificates (matching type 0) fit */
#define MXG_TLSA_MAX_RR 16

struct mxg_tlsa_rr {
    uint8_t usage, selector, mtype;
    uint16_t len;
    uint8_t data[MXG_TLSA_DATA_MAX];
};

enum mxg_tlsa_verdict {
    MXG_TLSA_USABLE = 0,
    MXG_TLSA_BAD_USAGE,    /* PKIX-TA(0), PKIX-EE(1), unknown */
    MXG_TLSA_BAD_SELECTOR,
    MXG_TLSA_BAD_MTYPE,
    MXG_TLSA_BAD_LENGTH,   /* digest of the wrong size, empty data */
};

enum mxg_tlsa_verdict mxg_tlsa_check(const struct mxg_tlsa_rr *rr);
const char *mxg_tlsa_verdict_name(enum mxg_tlsa_verdict v);

/* "3 1 1 0A1B..." (hex upper case), truncated at cap; as TLSRPT's policy-string. */
void mxg_tlsa_format(const struct mxg_tlsa_rr *rr, char *out, size_t cap);

/* Copy the usable records of in[0..n) to out (capacity MXG_TLSA_MAX_RR);
 * returns how many. */
int mxg_tlsa_filter_usable(const struct mxg_tlsa_rr *in, int n, struct mxg_tlsa_rr *out);

#endif
