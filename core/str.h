/* core/str.h — bounded string copy for hot paths, where snprintf(dst, cap,
 * "%s", src) would run the whole printf machinery to copy one string; the
 * length of a well-formed UTF-8 sequence (log lines, the status page).
 *
 * Contract: pure, no state; header only. */
#ifndef MXG_STR_H
#define MXG_STR_H

#include <stddef.h>
#include <string.h>

/* Copies src into dst[0..cap) like snprintf(dst, cap, "%s", src): at most
 * cap - 1 octets and a NUL (nothing when cap is 0); src NULL copies "".
 * Returns strlen(src), so a result >= cap means it was cut. */
static inline size_t mxg_str_copy(char *dst, size_t cap, const char *src)
{
    size_t n = src ? strlen(src) : 0;
    if (cap == 0)
        return n;
    size_t k = n < cap - 1 ? n : cap - 1;
    if (k)
        memmove(dst, src, k); /* src may lie within dst */
    dst[k] = '\0';
    return n;
}

/* The length (2..4) of the well-formed UTF-8 sequence at p (RFC 3629: no
 * overlong form, no surrogate, at most U+10FFFF), or 0 for anything else.
 * p points into a NUL-terminated string: a NUL is never a continuation
 * octet, so no octet past the string's end is read. */
static inline size_t mxg_utf8_seq(const unsigned char *p)
{
    unsigned char c = p[0];
    unsigned char lo = 0x80, hi = 0xBF;
    size_t n;
    if (c >= 0xC2 && c <= 0xDF)
        n = 2;
    else if (c >= 0xE0 && c <= 0xEF)
        n = 3, lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
    else if (c >= 0xF0 && c <= 0xF4)
        n = 4, lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
    else
        return 0;
    if (p[1] < lo || p[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if (p[i] < 0x80 || p[i] > 0xBF)
            return 0;
    return n;
}

#endif
