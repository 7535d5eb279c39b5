/* smtp/data_filter.h — the DATA phase byte filter (DESIGN §10).
 *
 * Input: the client's DATA bytes exactly as received, in chunks of any size.
 * Output: the same message in canonical SMTP wire form, ready for the
 * upstream, appended to a caller-owned mxg_buf:
 *  - bare LF is normalised to CRLF (it ends a line, DESIGN §10);
 *  - a bare CR (one not followed by LF) never ends a line: a line the
 *    client did not send would be a header line the legacy MTA never
 *    checked ("Subject: x<CR>From: ..."). MXG_DF_CR_REJECT (the default)
 *    flags the message (bad_cr: the caller refuses it, 554 5.6.0) and emits
 *    nothing more; MXG_DF_CR_SPACE turns each bare CR into a space;
 *  - only <CRLF>.<CRLF> (both CRLFs real) ends the data; a lone "." line
 *    next to a bare LF is content and is sent dot-stuffed ("..") so no
 *    upstream can see an end marker the client did not send (SMTP
 *    smuggling: <LF>.<LF>, <LF>.<CRLF>, <CRLF>.<LF>; <CR>.<CR> is no line
 *    at all);
 *  - dot-stuffed lines pass through untouched (the upstream unstuffs them).
 * While filtering it measures: message size (normalised octets, without the
 * terminating ".", dot-stuffing counted as sent), the longest line, 8-bit
 * octets, Received: headers in the header section. Once a limit is exceeded
 * the filter keeps consuming (to find the end) but emits nothing more.
 */
#ifndef MXG_DATA_FILTER_H
#define MXG_DATA_FILTER_H

#include <stddef.h>
#include <stdint.h>

#include "../core/buf.h"

enum mxg_df_state { MXG_DF_BOL = 0, MXG_DF_DOT, MXG_DF_DOT_CR, MXG_DF_LINE, MXG_DF_CR, MXG_DF_END };

/* What a bare CR in the data does (limits.bare_cr). */
enum mxg_df_bare_cr { MXG_DF_CR_REJECT = 0, MXG_DF_CR_SPACE };

struct mxg_data_filter {
    enum mxg_df_state st;
    int prev_crlf;         /* previous line ended with a real CRLF */
    size_t line_len;       /* octets of the current line so far (no terminator) */
    int in_headers;
    char hdr[10];          /* first octets of the current header line */
    size_t hdr_len;
    /* limits (set by the caller before the first chunk) */
    uint64_t max_size;
    size_t max_line;       /* octets incl. CRLF */
    int max_received;
    enum mxg_df_bare_cr bare_cr_mode;
    /* measurements */
    uint64_t size;
    size_t longest_line;
    int eight_bit;
    int received;
    unsigned bare_eol;     /* bare LF normalised */
    unsigned bare_cr;      /* bare CR seen (turned into a space under MXG_DF_CR_SPACE) */
    int too_big, too_long, too_many_received;
    int bad_cr;            /* a bare CR under MXG_DF_CR_REJECT */
};

void mxg_data_filter_init(struct mxg_data_filter *f, uint64_t max_size, size_t max_line,
                          int max_received, enum mxg_df_bare_cr bare_cr);

/* Filter up to len input octets, appending output to out. Returns the number
 * of input octets consumed: all of them, or fewer when the end marker was
 * found (then f->st == MXG_DF_END and the rest belongs to the next command).
 * Returns -1 only when out cannot grow. */
long mxg_data_filter_run(struct mxg_data_filter *f, const char *in, size_t len, struct mxg_buf *out);

static inline int mxg_data_filter_done(const struct mxg_data_filter *f) { return f->st == MXG_DF_END; }
static inline int mxg_data_filter_failed(const struct mxg_data_filter *f)
{
    return f->too_big || f->too_long || f->too_many_received || f->bad_cr;
}

#endif
