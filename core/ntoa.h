/* core/ntoa.h — numbers and IPv4 addresses as text without printf, for
 * per-message paths: the octets snprintf("%d") and ("%u") and
 * inet_ntop(AF_INET) give (tests/unit/test_core_ntoa.c compares them).
 *
 * Contract: pure, no state; header only. */
#ifndef MXG_NTOA_H
#define MXG_NTOA_H

#include <stddef.h>
#include <string.h>

/* u in decimal, as "%u" writes it, into out (room for 10 octets); no NUL.
 * Returns the number of octets written. */
static inline size_t mxg_ntoa_uint(unsigned u, char *out)
{
    char tmp[12];
    size_t n = 0, k = 0;
    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    while (n)
        out[k++] = tmp[--n];
    return k;
}

/* v in decimal, as "%d" writes it, into out (room for 11 octets); no NUL.
 * Returns the number of octets written. */
static inline size_t mxg_ntoa_int(int v, char *out)
{
    if (v >= 0)
        return mxg_ntoa_uint((unsigned)v, out);
    out[0] = '-';
    return 1 + mxg_ntoa_uint(0u - (unsigned)v, out + 1);
}

/* The IPv4 address at a4 (4 octets, network order) as "a.b.c.d" and a NUL
 * into out (room for 16 octets: INET_ADDRSTRLEN). Returns its length. */
static inline size_t mxg_ntoa_ip4(const void *a4, char *out)
{
    const unsigned char *b = a4;
    size_t k = 0;
    for (int i = 0; i < 4; i++) {
        unsigned v = b[i];
        if (i)
            out[k++] = '.';
        if (v >= 100)
            out[k++] = (char)('0' + v / 100);
        if (v >= 10)
            out[k++] = (char)('0' + v / 10 % 10);
        out[k++] = (char)('0' + v % 10);
    }
    out[k] = '\0';
    return k;
}

#endif
