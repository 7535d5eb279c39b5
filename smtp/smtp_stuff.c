/* smtp/smtp_stuff.c — see smtp_stuff.h. A small state machine with a fast
 * path that copies runs of ordinary octets. */
#include "smtp_stuff.h"

#include <stdlib.h>

/* Contract: see smtp_stuff.h. */
void mxg_smtp_stuff_init(struct mxg_smtp_stuffer *s)
{
    s->st = MXG_STUFF_START;
}

/* Contract: see smtp_stuff.h. */
int mxg_smtp_stuff_run(struct mxg_smtp_stuffer *s, const char *in, size_t len,
                       struct mxg_buf *out)
{
    size_t i = 0;
    while (i < len) {
        switch (s->st) {
        case MXG_STUFF_START:
        case MXG_STUFF_BOL:
            s->st = MXG_STUFF_LINE;
            if (in[i] == '.') { /* a line beginning with "." gets one more */
                if (mxg_buf_append(out, "..", 2) < 0)
                    return -1;
                i++;
            }
            continue; /* anything else: line content, taken below */
        case MXG_STUFF_LINE: {
            size_t j = i;
            while (j < len && in[j] != '\r' && in[j] != '\n')
                j++;
            if (j > i && mxg_buf_append(out, in + i, j - i) < 0)
                return -1;
            i = j;
            if (i >= len)
                break;
            if (in[i] == '\r') {
                s->st = MXG_STUFF_CR;
            } else { /* a bare LF ends the line */
                if (mxg_buf_append(out, "\r\n", 2) < 0)
                    return -1;
                s->st = MXG_STUFF_BOL;
            }
            i++;
            continue;
        }
        case MXG_STUFF_CR:
            if (in[i] == '\n') { /* CRLF */
                if (mxg_buf_append(out, "\r\n", 2) < 0)
                    return -1;
                s->st = MXG_STUFF_BOL;
                i++;
                continue;
            }
            /* a bare CR: a space; in[i] is taken again as line content */
            if (mxg_buf_append(out, " ", 1) < 0)
                return -1;
            s->st = MXG_STUFF_LINE;
            continue;
        }
    }
    return 0;
}

/* Contract: see smtp_stuff.h. */
int mxg_smtp_stuff_end(struct mxg_smtp_stuffer *s, struct mxg_buf *out)
{
    enum mxg_stuff_state st = s->st;
    s->st = MXG_STUFF_START;
    switch (st) {
    case MXG_STUFF_BOL:
        return 0;
    case MXG_STUFF_CR: /* the text ends in a bare CR */
        return mxg_buf_append(out, " \r\n", 3);
    case MXG_STUFF_START: /* empty text: one empty line */
    case MXG_STUFF_LINE:
        break;
    }
    return mxg_buf_append(out, "\r\n", 2);
}

/* Contract: see smtp_stuff.h. */
int mxg_smtp_stuff(const char *text, size_t len, char **out, size_t *outlen)
{
    struct mxg_smtp_stuffer s;
    struct mxg_buf b = {0};

    *out = NULL;
    *outlen = 0;
    mxg_smtp_stuff_init(&s);
    if (mxg_smtp_stuff_run(&s, text, len, &b) < 0 || mxg_smtp_stuff_end(&s, &b) < 0 ||
        !mxg_buf_cstr(&b)) {
        mxg_buf_free(&b);
        return -1;
    }
    *out = b.data; /* b.off is 0: nothing was consumed */
    *outlen = b.len;
    return 0;
}
