/* core/buf.h — a growable byte buffer with a read offset.
 * Ownership: the struct owns `data`; mxg_buf_free() releases it. Bytes in
 * [off, len) are unread. The int functions return 0 or -1 (out of memory; for
 * the printf pair also an output error of vsnprintf). The buffer has no size
 * limit of its own (cap is the allocated size): callers bound what they add. */
#ifndef MXG_BUF_H
#define MXG_BUF_H

#include <stdarg.h>
#include <stddef.h>
#include <string.h>

struct mxg_buf {
    char *data;
    size_t len; /* bytes written */
    size_t off; /* bytes consumed */
    size_t cap;
};

/* Append n bytes from p. */
int mxg_buf_append(struct mxg_buf *b, const void *p, size_t n);
/* Append the C string s (without its NUL): a string copied without printf. */
static inline int mxg_buf_str(struct mxg_buf *b, const char *s);
/* Append formatted text (no NUL counted in len). */
int mxg_buf_printf(struct mxg_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* mxg_buf_printf with a va_list (ap is used up). */
int mxg_buf_vprintf(struct mxg_buf *b, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));
/* The unread bytes as a C string: a NUL is put after them (not counted in
 * len; the next append overwrites it). NULL if out of memory. */
char *mxg_buf_cstr(struct mxg_buf *b);
static inline size_t mxg_buf_avail(const struct mxg_buf *b) { return b->len - b->off; }
static inline char *mxg_buf_head(const struct mxg_buf *b) { return b->data + b->off; }
/* Mark n unread bytes as consumed; compacts when everything is read. */
void mxg_buf_consume(struct mxg_buf *b, size_t n);
/* Empty the buffer, keeping its allocation. */
void mxg_buf_reset(struct mxg_buf *b);
/* Release the allocation; the struct is then an empty buffer again. */
void mxg_buf_free(struct mxg_buf *b);

static inline int mxg_buf_str(struct mxg_buf *b, const char *s)
{
    return mxg_buf_append(b, s, strlen(s));
}

#endif
