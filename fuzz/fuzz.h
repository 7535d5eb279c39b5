/* fuzz/fuzz.h — helpers shared by the libFuzzer targets (fuzz_<name>.c).
 *
 * Every target is LLVMFuzzerTestOneInput() over one parser: it must never
 * crash, leak, hang or trip ASan/UBSan on any input, and where the parser
 * promises a property (a round trip, an invariant of its output) the target
 * checks it with FUZZ_CHECK, which aborts — libFuzzer then saves the input
 * as crash-<sha1>. Nothing here is compiled into mxguard. */
#ifndef MXG_FUZZ_H
#define MXG_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_CHECK(cond)                                                                     \
    do {                                                                                     \
        if (!(cond)) {                                                                       \
            fprintf(stderr, "%s:%d: property violated: %s\n", __FILE__, __LINE__, #cond);    \
            abort();                                                                         \
        }                                                                                    \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A heap copy of exactly n bytes (no terminator): ASan sees any read past
 * the end. fuzz_dup_z adds a NUL (for parsers that take C strings). */
static inline char *fuzz_dup(const void *p, size_t n)
{
    char *c = malloc(n ? n : 1);
    if (!c)
        abort();
    if (n)
        memcpy(c, p, n);
    return c;
}

static inline char *fuzz_dup_z(const void *p, size_t n)
{
    char *c = malloc(n + 1);
    if (!c)
        abort();
    if (n)
        memcpy(c, p, n);
    c[n] = '\0';
    return c;
}

/* 1 if every byte of the C string s is printable ASCII (what may be quoted
 * in a log line or an error message). */
static inline int fuzz_printable(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
            return 0;
    return 1;
}

/* 1 if the C string s has no control octets (< 0x20, 0x7f): safe in a log
 * line (no line breaks, no terminal escapes); UTF-8 text may remain. */
static inline int fuzz_no_ctl(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s == 0x7f)
            return 0;
    return 1;
}

/* 1 if s[0..cap) holds a NUL (a bounded, terminated string). */
static inline int fuzz_terminated(const char *s, size_t cap)
{
    return memchr(s, '\0', cap) != NULL;
}

#endif
