/* dane/tlsa.h — TLSA records (RFC 6698) and what SMTP may use of them
 * (RFC 7672 §3.1): usages DANE-TA(2) and DANE-EE(3) only; selectors
 * Cert(0) and SPKI(1); matching types Full(0), SHA2-256(1, 32 octets),
 * SHA2-512(2, 64 octets). A Full(0) record is usable only when its data is
 * what its selector names — a whole DER certificate (0) or DER
 * SubjectPublicKeyInfo (1) — as OpenSSL's SSL_dane_tlsa_add() parses it
 * (RFC 7671 §5: records whose data cannot be used are unusable; RFC 7672
 * §2.2: unusable records are ignored). Pure functions, no I/O (OpenSSL's
 * DER decoders only; its error queue is left as it was). */
#ifndef MXG_TLSA_H
#define MXG_TLSA_H

#include <stddef.h>
#include <stdint.h>

#include "../dns/dns_rr.h" /* struct mxg_tlsa_rr, MXG_TLSA_DATA_MAX */

enum mxg_tlsa_verdict {
    MXG_TLSA_USABLE = 0,
    MXG_TLSA_BAD_USAGE,    /* PKIX-TA(0), PKIX-EE(1), unknown */
    MXG_TLSA_BAD_SELECTOR,
    MXG_TLSA_BAD_MTYPE,
    MXG_TLSA_BAD_LENGTH,   /* digest of the wrong size, empty data */
    MXG_TLSA_BAD_DATA,     /* Full(0): not exactly one DER certificate (selector 0)
                            * with a public key OpenSSL can decode, or one DER
                            * SubjectPublicKeyInfo (selector 1); trailing octets too */
};

/* The first problem of rr in the order usage, selector, length (beyond
 * MXG_TLSA_DATA_MAX, i.e. a record no DNS message holds), matching type,
 * length for the type, data; USABLE when
 * there is none. NULL: BAD_LENGTH. Agrees with SSL_dane_tlsa_add() for
 * usages 2|3: USABLE exactly when OpenSSL would load the record. */
enum mxg_tlsa_verdict mxg_tlsa_check(const struct mxg_tlsa_rr *rr);
const char *mxg_tlsa_verdict_name(enum mxg_tlsa_verdict v);

/* "3 1 1 0A1B..." (hex upper case), truncated at cap; as TLSRPT's policy-string. */
void mxg_tlsa_format(const struct mxg_tlsa_rr *rr, char *out, size_t cap);
/* The same from the fields (data: len octets, may be NULL when len is 0). */
void mxg_tlsa_format_fields(unsigned usage, unsigned selector, unsigned mtype,
                            const uint8_t *data, size_t len, char *out, size_t cap);

#endif
