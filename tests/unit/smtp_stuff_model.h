/* tests/unit/smtp_stuff_model.h — the reference model of dot-stuffing that
 * test_smtp_stuff.c and fuzz/fuzz_smtp_stuff.c both check smtp/smtp_stuff.c
 * (and the inbound normaliser) against: what a receiver does with the wire
 * form (RFC 5321 §4.5.2) and the line-end normalisation the encoder promises.
 * Header-only (static functions), no assertions of its own: each caller
 * asserts on the results with its own macros. */
#ifndef MXG_SMTP_STUFF_MODEL_H
#define MXG_SMTP_STUFF_MODEL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Checks canonical wire form (every CR before LF, every LF after CR, no line
 * "."; with doubled, a leading dot is always doubled — the encoder's promise,
 * while the normaliser passes a client's ".x" on as sent) and un-stuffs w into
 * out (room for n), as a receiver does. Returns the octets written, or -1 when
 * w is not in that form. */
static ptrdiff_t stuff_model_unstuff(const char *w, size_t n, char *out, int doubled)
{
    size_t o = 0, i = 0;
    while (i < n) {
        const char *lf = memchr(w + i, '\n', n - i);
        if (!lf) /* every line ends */
            return -1;
        size_t end = (size_t)(lf - w);
        if (!(end > i && w[end - 1] == '\r'))
            return -1;
        size_t ll = end - 1 - i;
        if (memchr(w + i, '\r', ll) || (ll == 1 && w[i] == '.')) /* the end-of-data line */
            return -1;
        size_t s = i;
        if (ll && w[i] == '.') {
            if (doubled && !(ll >= 2 && w[i + 1] == '.'))
                return -1;
            s++;
        }
        memcpy(out + o, w + s, end + 1 - s);
        o += end + 1 - s;
        i = end + 1;
    }
    return (ptrdiff_t)o;
}

/* The text with its line ends normalised as the encoder promises: CRLF and
 * bare LF → CRLF, bare CR → space, the last line ended (an empty text: one
 * empty line). out needs room for 2 * n + 2. */
static size_t stuff_model_normalise(const uint8_t *in, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (in[i] == '\r' && i + 1 < n && in[i + 1] == '\n') {
            out[o++] = '\r';
            out[o++] = '\n';
            i++;
        } else if (in[i] == '\n') {
            out[o++] = '\r';
            out[o++] = '\n';
        } else {
            out[o++] = in[i] == '\r' ? ' ' : (char)in[i];
        }
    }
    if (o < 2 || out[o - 2] != '\r' || out[o - 1] != '\n') {
        out[o++] = '\r';
        out[o++] = '\n';
    }
    return o;
}

#endif
