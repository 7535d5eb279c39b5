/* core/buf.h — a growable byte buffer with a read offset.
 * Ownership: the struct owns `data`; mxg_buf_free() releases it. Bytes in
 * [off, len) are unread. All functions return 0 or -1 (out of memory / over cap). */
#ifndef MXG_BUF_H
#define MXG_BUF_H

#include <stddef.h>

struct mxg_buf {
    char *data;
    size_t len; /* bytes written */
    size_t off; /* bytes consumed */
    size_t cap;
};

int mxg_buf_append(struct mxg_buf *b, const void *p, size_t n);
int mxg_buf_printf(struct mxg_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static inline size_t mxg_buf_avail(const struct mxg_buf *b) { return b->len - b->off; }
static inline char *mxg_buf_head(const struct mxg_buf *b) { return b->data + b->off; }
/* Mark n unread bytes as consumed; compacts when everything is read. */
void mxg_buf_consume(struct mxg_buf *b, size_t n);
void mxg_buf_reset(struct mxg_buf *b);
void mxg_buf_free(struct mxg_buf *b);

#endif
