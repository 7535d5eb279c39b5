/* smtp/smtp_stuff.h — the one encoder from plain text to SMTP DATA wire form
 * (dot-stuffing, RFC 5321 §4.5.2) for the messages mxguard writes itself:
 * delivery status notifications (spool/dsn.c) and TLSRPT report mail
 * (report/rpt_mail.c). Its inbound counterpart, which takes a client's DATA
 * bytes as they come, is data_filter.h.
 *
 * Contract:
 *  - Input: octets of text in chunks of any size. Output: appended to a
 *    caller-owned mxg_buf (mxg_smtp_stuff_run, mxg_smtp_stuff_end), or, for
 *    a whole text, returned in one malloc'd NUL-terminated string that the
 *    caller frees (mxg_smtp_stuff). No I/O, no logging, no global state.
 *  - The output is canonical wire form without the final ".\r\n":
 *     - CRLF ends a line; a bare LF also ends a line and is written CRLF;
 *     - a bare CR (one not followed by LF) never ends a line and is written
 *       as a space (as limits.bare_cr = space does inbound): a receiver that
 *       took it for a line end would see a line the text does not have;
 *     - a line that begins with "." gets one more "." (the receiver takes
 *       it off again);
 *     - the output ends with CRLF: a last line without a line end gets one,
 *       and an empty text becomes one empty line ("\r\n").
 *    Hence ".\r\n" written after the output is the only end-of-data marker
 *    the receiver can see: the output never holds a line "." (no
 *    CRLF.CRLF, and none of the bare-LF/CR variants either), and undoing
 *    the stuffing gives back the text with its line ends normalised.
 *  - Chunking does not matter: a text cut into any chunks gives the same
 *    output as in one (a CR at the end of a chunk waits for the next
 *    octet, or for mxg_smtp_stuff_end).
 *  - Errors: 0, or -1 when the output cannot grow (out of memory); the
 *    mxg_buf then holds part of the output and the caller discards it.
 */
#ifndef MXG_SMTP_STUFF_H
#define MXG_SMTP_STUFF_H

#include <stddef.h>

#include "../core/buf.h"

enum mxg_stuff_state {
    MXG_STUFF_START = 0, /* nothing written yet: at the beginning of the first line */
    MXG_STUFF_BOL,       /* after a line end */
    MXG_STUFF_LINE,      /* inside a line */
    MXG_STUFF_CR,        /* after a CR: the next octet decides (LF: line end; else bare) */
};

/* The encoder's state between chunks; zero-initialised = ready (START). */
struct mxg_smtp_stuffer {
    enum mxg_stuff_state st;
};

/* Reset s to the start of a new text. */
void mxg_smtp_stuff_init(struct mxg_smtp_stuffer *s);
/* Encode the next len octets of the text, appending to out. 0 or -1. */
int mxg_smtp_stuff_run(struct mxg_smtp_stuffer *s, const char *in, size_t len,
                       struct mxg_buf *out);
/* The text is complete: settle a pending CR and end the last line with
 * CRLF (an empty text gives "\r\n"). s is then at START again. 0 or -1. */
int mxg_smtp_stuff_end(struct mxg_smtp_stuffer *s, struct mxg_buf *out);
/* The wire form of a whole text: *out (malloc'd, NUL-terminated, the
 * caller frees it) and *outlen (without the NUL). 0, or -1 (out of memory;
 * *out is then NULL). */
int mxg_smtp_stuff(const char *text, size_t len, char **out, size_t *outlen);

#endif
