/* core/scan.h — octet scans for the message body's hot paths, eight octets
 * at a time: where a line's ordinary octets end (the next CR or LF) and
 * whether a range holds an octet >= 0x80. Same results as the obvious
 * byte-at-a-time loops (tests/unit/test_core_scan.c checks them against those).
 *
 * Contract: pure, no state, no alignment needed (words are read with
 * memcpy); never reads outside p[0..n); header only. */
#ifndef MXG_SCAN_H
#define MXG_SCAN_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define MXG_SCAN_ONES 0x0101010101010101ULL
#define MXG_SCAN_HIGH 0x8080808080808080ULL

/* Nonzero when some octet of w is zero (exact: no false positive). */
static inline uint64_t mxg_scan_zero_octet(uint64_t w)
{
    return (w - MXG_SCAN_ONES) & ~w & MXG_SCAN_HIGH;
}

/* The number of octets at the start of p[0..n) that are neither CR nor LF
 * (n when there is none); sets *acc's 0x80 bit when one of them is 8-bit
 * (only that bit is meaningful: whole words are not ORed in). */
static inline size_t mxg_scan_line(const char *p, size_t n, unsigned char *acc)
{
    size_t i = 0;
    uint64_t hi = 0;
    while (i + 8 <= n) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        if (mxg_scan_zero_octet(w ^ (MXG_SCAN_ONES * '\r')) |
            mxg_scan_zero_octet(w ^ (MXG_SCAN_ONES * '\n')))
            break; /* a CR or LF in this word: the octet loop below finds it */
        hi |= w;
        i += 8;
    }
    unsigned char a = *acc | ((hi & MXG_SCAN_HIGH) ? 0x80 : 0);
    while (i < n && p[i] != '\r' && p[i] != '\n')
        a |= (unsigned char)p[i++];
    *acc = a;
    return i;
}

/* 1 if p[0..n) has an octet >= 0x80, else 0. */
static inline int mxg_scan_8bit(const void *p, size_t n)
{
    const unsigned char *b = p;
    size_t i = 0;
    uint64_t hi = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, b + i, 8);
        hi |= w;
    }
    unsigned char t = 0;
    for (; i < n; i++)
        t |= b[i];
    return (hi & MXG_SCAN_HIGH) || (t & 0x80) ? 1 : 0;
}

#endif
