/* core/str.h — bounded string copy for hot paths, where snprintf(dst, cap,
 * "%s", src) would run the whole printf machinery to copy one string; a
 * vsnprintf that copies instead when the format has no conversion or is just
 * "%s"; the length of a well-formed UTF-8 sequence (log lines, the status
 * page).
 *
 * Contract: pure, no state; header only. */
#ifndef MXG_STR_H
#define MXG_STR_H

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
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

/* snprintf(dst, cap, "%s%s%s", a, b, c) without printf: the same octets
 * and result (strlen of the whole; >= cap means it was cut), except that a
 * NULL part counts as empty (snprintf would print "(null)"). None of a, b, c
 * lies within dst. */
static inline size_t mxg_str_join3(char *dst, size_t cap, const char *a, const char *b,
                                   const char *c)
{
    const char *part[3] = {a, b, c};
    size_t total = 0;
    for (int i = 0; i < 3; i++) {
        if (!part[i]) /* snprintf's "(null)" was never wanted: an absent part is empty */
            part[i] = "";
        size_t n = strlen(part[i]);
        if (cap && total < cap - 1) {
            size_t k = n < cap - 1 - total ? n : cap - 1 - total;
            memcpy(dst + total, part[i], k);
        }
        total += n;
    }
    if (cap)
        dst[total < cap - 1 ? total : cap - 1] = '\0';
    return total;
}

/* vsnprintf(dst, cap, fmt, ap), the same octets and result, without the
 * printf machinery for the formats hot paths use most: one without any '%'
 * (copied as is) and one whose only conversion is a single "%s" with a
 * string that is not NULL (the text before it, the string, the text after
 * it; the string must not lie within dst unless the format is just "%s").
 * Anything else goes to vsnprintf. ap is used up as by vsnprintf. */
static inline int mxg_str_vformat(char *dst, size_t cap, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));
static inline int mxg_str_vformat(char *dst, size_t cap, const char *fmt, va_list ap)
{
    const char *pct = strchr(fmt, '%');
    if (!pct)
        return (int)mxg_str_copy(dst, cap, fmt);
    if (pct[1] == 's' && !strchr(pct + 2, '%') && (size_t)(pct - fmt) < 256) {
        va_list cp;
        va_copy(cp, ap);
        const char *a = va_arg(cp, const char *);
        va_end(cp);
        if (a && pct == fmt && pct[2] == '\0')
            return (int)mxg_str_copy(dst, cap, a); /* just "%s": a may even lie within dst */
        if (a) {
            char head[256];
            memcpy(head, fmt, (size_t)(pct - fmt));
            head[pct - fmt] = '\0';
            return (int)mxg_str_join3(dst, cap, head, a, pct + 2);
        }
    }
    return vsnprintf(dst, cap, fmt, ap);
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
