/* core/hex.h — the value of one hexadecimal digit, for the decoders of
 * %XX (mailto: and https: URIs in TLSRPT records) and +XX (xtext, RFC 3461).
 *
 * Contract: pure, no state; header only. */
#ifndef MXG_HEX_H
#define MXG_HEX_H

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

#endif
