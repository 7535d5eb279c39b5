/* core/str.h — bounded string copy for hot paths, where snprintf(dst, cap,
 * "%s", src) would run the whole printf machinery to copy one string.
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

#endif
