/* core/hex.h — the value of one hexadecimal digit, for the decoders of
 * %XX (mailto: and https: URIs in TLSRPT records) and +XX (xtext, RFC 3461),
 * and lower-case hex encoding of octets (digests in keys and ids).
 *
 * Contract: pure, no state; header only. */
#ifndef MXG_HEX_H
#define MXG_HEX_H

#include <stddef.h>

/* 0..15 for '0'-'9', 'a'-'f', 'A'-'F'; -1 for any other c (an octet value
 * or a char, negative values included). */
static inline int mxg_hex_val(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Writes 2 * n lower-case hex digits of in[0..n) and a NUL to out, which the
 * caller provides with room for 2 * n + 1 chars; returns 2 * n. */
static inline size_t mxg_hex_encode(const unsigned char *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = '\0';
    return 2 * n;
}

#endif
