/* smtp/data_filter.c — see data_filter.h. A byte-at-a-time state machine
 * with a fast path that copies runs of ordinary octets (found a word at a
 * time, core/scan.h). */
#include "data_filter.h"

#include "../core/scan.h"

#include <string.h>
#include <strings.h>

void mxg_data_filter_init(struct mxg_data_filter *f, uint64_t max_size, size_t max_line,
                          int max_received, enum mxg_df_bare_cr bare_cr)
{
    memset(f, 0, sizeof *f);
    f->st = MXG_DF_BOL;
    f->prev_crlf = 1; /* the DATA command line ended with CRLF */
    f->in_headers = 1;
    f->max_size = max_size;
    f->max_line = max_line;
    f->max_received = max_received;
    f->bare_cr_mode = bare_cr;
}

static int failed(const struct mxg_data_filter *f)
{
    return mxg_data_filter_failed(f);
}

static int emit(struct mxg_data_filter *f, struct mxg_buf *out, const char *p, size_t n)
{
    f->size += n;
    if (f->max_size && f->size > f->max_size)
        f->too_big = 1;
    if (failed(f))
        return 0;
    return mxg_buf_append(out, p, n);
}

/* A line (its content already emitted) ends here. */
static int end_line(struct mxg_data_filter *f, struct mxg_buf *out, int real_crlf)
{
    if (!real_crlf)
        f->bare_eol++;
    if (f->line_len + 2 > f->longest_line)
        f->longest_line = f->line_len + 2;
    if (f->max_line && f->line_len + 2 > f->max_line)
        f->too_long = 1;
    if (f->in_headers) {
        if (f->line_len == 0)
            f->in_headers = 0;
        else if (f->hdr_len >= 9 && strncasecmp(f->hdr, "Received:", 9) == 0 &&
                 ++f->received > f->max_received && f->max_received > 0)
            f->too_many_received = 1;
    }
    f->prev_crlf = real_crlf;
    f->line_len = 0;
    f->hdr_len = 0;
    f->st = MXG_DF_BOL;
    return emit(f, out, "\r\n", 2);
}

static void note_octet(struct mxg_data_filter *f, unsigned char c)
{
    if (c >= 0x80)
        f->eight_bit = 1;
    if (f->in_headers && f->hdr_len < sizeof f->hdr)
        f->hdr[f->hdr_len++] = (char)c;
    f->line_len++;
}

/* note_octet for the run p[0..n) of line content, all at once; acc is the
 * OR of its octets. */
static void note_run(struct mxg_data_filter *f, const char *p, size_t n, unsigned char acc)
{
    if (acc & 0x80)
        f->eight_bit = 1;
    if (f->in_headers && f->hdr_len < sizeof f->hdr) {
        size_t k = sizeof f->hdr - f->hdr_len;
        if (k > n)
            k = n;
        memcpy(f->hdr + f->hdr_len, p, k);
        f->hdr_len += k;
    }
    f->line_len += n;
}

/* A CR not followed by LF: content, never a line end. Under
 * MXG_DF_CR_REJECT the message is refused (nothing more is emitted); under
 * MXG_DF_CR_SPACE it becomes a space. */
static int bare_cr(struct mxg_data_filter *f, struct mxg_buf *out)
{
    f->bare_cr++;
    if (f->bare_cr_mode != MXG_DF_CR_SPACE) {
        f->bad_cr = 1;
        return 0;
    }
    note_octet(f, ' ');
    return emit(f, out, " ", 1);
}

long mxg_data_filter_run(struct mxg_data_filter *f, const char *in, size_t len, struct mxg_buf *out)
{
    size_t i = 0;
    while (i < len && f->st != MXG_DF_END) {
        unsigned char c = (unsigned char)in[i];
        switch (f->st) {
        case MXG_DF_BOL:
            if (c == '.') {
                f->st = MXG_DF_DOT;
                i++;
                continue;
            }
            f->st = MXG_DF_LINE;
            continue; /* reprocess as line content */
        case MXG_DF_DOT:
            if (c == '\r') {
                f->st = MXG_DF_DOT_CR;
                i++;
                continue;
            }
            if (c == '\n') { /* ".<LF>": content, sent stuffed */
                note_octet(f, '.');
                if (emit(f, out, "..", 2) < 0 || end_line(f, out, 0) < 0)
                    return -1;
                i++;
                continue;
            }
            note_octet(f, '.');
            if (emit(f, out, ".", 1) < 0)
                return -1;
            f->st = MXG_DF_LINE;
            continue;
        case MXG_DF_DOT_CR:
            if (c == '\n' && f->prev_crlf) { /* <CRLF>.<CRLF>: the end */
                f->st = MXG_DF_END;
                i++;
                continue;
            }
            note_octet(f, '.');
            if (c == '\n') { /* ".<CRLF>" after a bare LF: content, sent stuffed */
                if (emit(f, out, "..", 2) < 0 || end_line(f, out, 1) < 0)
                    return -1;
                i++;
                continue;
            }
            /* ".<CR>x": a line starting with "." (passed through as sent)
             * and a bare CR; x is reprocessed as line content */
            if (emit(f, out, ".", 1) < 0 || bare_cr(f, out) < 0)
                return -1;
            f->st = MXG_DF_LINE;
            continue;
        case MXG_DF_LINE: {
            /* fast path: a run of ordinary octets, scanned a word at a time */
            unsigned char acc = 0;
            size_t j = i + mxg_scan_line(in + i, len - i, &acc);
            note_run(f, in + i, j - i, acc);
            if (j > i && emit(f, out, in + i, j - i) < 0)
                return -1;
            i = j;
            if (i >= len)
                break;
            if (in[i] == '\r') {
                f->st = MXG_DF_CR;
                i++;
            } else {
                if (end_line(f, out, 0) < 0) /* bare LF */
                    return -1;
                i++;
            }
            continue;
        }
        case MXG_DF_CR:
            if (c == '\n') {
                if (end_line(f, out, 1) < 0)
                    return -1;
                i++;
                continue;
            }
            if (bare_cr(f, out) < 0) /* c is reprocessed as line content */
                return -1;
            f->st = MXG_DF_LINE;
            continue;
        case MXG_DF_END:
            break;
        }
    }
    return (long)i;
}
