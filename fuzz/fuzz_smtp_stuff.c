/* fuzz/fuzz_smtp_stuff.c — the two dot-handling routines of smtp/: the
 * encoder of the messages mxguard writes (smtp/smtp_stuff.h: DSNs, report
 * mail) and the inbound normaliser of a client's DATA (smtp/data_filter.h).
 * Neither may let a receiver see an end-of-data marker before the real one
 * (SMTP smuggling), and neither may change what the text says.
 *
 * Input: 1 octet of set-up (chunking seed; its top bit picks limits.bare_cr
 * "space" over "reject" for the normaliser), then the text.
 *
 * Properties checked:
 *  - encoder: the same output in one chunk and in pseudo-random chunks
 *    (each an exact-size heap copy); the output is canonical (CRLF only),
 *    ends with CRLF, holds no line "." (a line's leading dot is doubled),
 *    so in CRLF + output + ".\r\n" the first CRLF.CRLF is the very end;
 *    un-stuffing it gives back the text with its line ends normalised
 *    (CRLF and bare LF: CRLF, bare CR: a space; a last line ended);
 *  - encoder then normaliser: the normaliser takes output + ".\r\n" as it
 *    is (canonical input passes unchanged), ends exactly at its end;
 *  - normaliser, on the text as a client's DATA (and on the text followed
 *    by "\r\n.\r\n", so that it always ends): CRLF + output never holds
 *    CRLF.CRLF; the output is canonical and, when the end was found, ends
 *    with CRLF; under "space" (no limits) un-stuffing the output gives back
 *    what the client meant: its lines up to the end marker, each with a
 *    client-stuffed leading dot taken off (a lone "." next to a bare LF is
 *    content), bare LF a line end, bare CR a space; under "reject" the
 *    output is a prefix of the "space" output, refused exactly when the
 *    text has a bare CR. */
#include "fuzz.h"

#include "core/buf.h"
#include "smtp/data_filter.h"
#include "smtp/smtp_stuff.h"
#include "tests/unit/smtp_stuff_model.h"

/* 1 if CRLF + w[0..n) + tail holds CRLF.CRLF anywhere but as its last 5 octets. */
static int early_end(const char *w, size_t n, const char *tail)
{
    size_t tl = strlen(tail), sl = 2 + n + tl;
    char *s = malloc(sl);
    if (!s)
        abort();
    memcpy(s, "\r\n", 2);
    if (n)
        memcpy(s + 2, w, n);
    memcpy(s + 2 + n, tail, tl);
    int early = 0;
    for (size_t i = 0; i + 5 <= sl; i++)
        if (memcmp(s + i, "\r\n.\r\n", 5) == 0 && i + 5 != sl)
            early = 1;
    free(s);
    return early;
}

/* What a client's DATA stream s (which holds its end marker) says: its lines
 * up to <CRLF>.<CRLF> (the CRLF before the dot real, as the line's own),
 * bare LF a line end, bare CR a space, a leading dot taken off unless the
 * line is a lone "." (content: the client cannot have stuffed it, as the
 * real marker it would have ended the data). *consumed: through the marker. */
static size_t client_meant(const uint8_t *s, size_t n, char *out, size_t *consumed)
{
    size_t o = 0, i = 0;
    int prev_crlf = 1;
    *consumed = 0;
    while (i < n) {
        const uint8_t *lf = memchr(s + i, '\n', n - i);
        FUZZ_CHECK(lf != NULL);
        size_t e = (size_t)(lf - s);
        int real = e > i && s[e - 1] == '\r';
        size_t ll = e - i - (real ? 1 : 0);
        if (real && prev_crlf && ll == 1 && s[i] == '.') {
            *consumed = e + 1;
            return o;
        }
        size_t start = ll > 1 && s[i] == '.' ? 1 : 0;
        for (size_t k = start; k < ll; k++)
            out[o++] = s[i + k] == '\r' ? ' ' : (char)s[i + k];
        out[o++] = '\r';
        out[o++] = '\n';
        prev_crlf = real;
        i = e + 1;
    }
    FUZZ_CHECK(0); /* the stream holds its end */
    return o;
}

/* Run the normaliser over in[0..len) in one chunk, no limits. */
static void filter(const uint8_t *in, size_t len, enum mxg_df_bare_cr mode,
                   struct mxg_data_filter *f, struct mxg_buf *out, size_t *consumed)
{
    char *c = fuzz_dup(in, len);
    mxg_data_filter_init(f, 0, 0, 0, mode);
    long n = mxg_data_filter_run(f, c, len, out);
    free(c);
    FUZZ_CHECK(n >= 0 && (size_t)n <= len);
    *consumed = (size_t)n;
}

/* The encoder's properties on the text. */
static void check_encoder(const uint8_t *in, size_t len, uint8_t seed0)
{
    char *w;
    size_t wl;
    char *text = fuzz_dup(in, len);
    FUZZ_CHECK(mxg_smtp_stuff(text, len, &w, &wl) == 0);
    FUZZ_CHECK(w[wl] == '\0');

    /* chunking does not matter */
    struct mxg_smtp_stuffer s;
    struct mxg_buf b = {0};
    mxg_smtp_stuff_init(&s);
    uint32_t seed = seed0 * 2654435761u + 1;
    for (size_t off = 0; off < len;) {
        seed = seed * 1103515245u + 12345u;
        size_t want = (seed >> 16) % 8 == 0 ? (seed >> 8) % 300 + 1 : (seed >> 16) % 7 + 1;
        size_t n = want < len - off ? want : len - off;
        char *c = fuzz_dup(in + off, n);
        FUZZ_CHECK(mxg_smtp_stuff_run(&s, c, n, &b) == 0);
        free(c);
        off += n;
    }
    FUZZ_CHECK(mxg_smtp_stuff_end(&s, &b) == 0);
    FUZZ_CHECK(b.len - b.off == wl && memcmp(mxg_buf_head(&b), w, wl) == 0);
    mxg_buf_free(&b);

    /* no early end; canonical; un-stuffing gives back the normalised text */
    FUZZ_CHECK(wl >= 2 && w[wl - 2] == '\r' && w[wl - 1] == '\n');
    FUZZ_CHECK(!early_end(w, wl, ".\r\n"));
    char *norm = malloc(2 * len + 2), *back = malloc(wl);
    if (!norm || !back)
        abort();
    size_t nl = stuff_model_normalise(in, len, norm);
    ptrdiff_t bl = stuff_model_unstuff(w, wl, back, 1);
    FUZZ_CHECK(bl >= 0);
    FUZZ_CHECK((size_t)bl == nl && memcmp(back, norm, nl) == 0);

    /* the inbound normaliser takes the encoder's output unchanged, ending
     * exactly at the marker after it */
    uint8_t *stream = malloc(wl + 3);
    if (!stream)
        abort();
    memcpy(stream, w, wl);
    memcpy(stream + wl, ".\r\n", 3);
    struct mxg_data_filter f;
    struct mxg_buf o = {0};
    size_t consumed;
    filter(stream, wl + 3, MXG_DF_CR_REJECT, &f, &o, &consumed);
    FUZZ_CHECK(mxg_data_filter_done(&f) && !mxg_data_filter_failed(&f));
    FUZZ_CHECK(consumed == wl + 3 && f.bare_eol == 0 && f.bare_cr == 0);
    FUZZ_CHECK(o.len - o.off == wl && memcmp(mxg_buf_head(&o), w, wl) == 0);
    mxg_buf_free(&o);

    free(stream);
    free(norm);
    free(back);
    free(w);
    free(text);
}

/* The normaliser's properties on in[0..len) as a client's DATA. */
static void check_filter(const uint8_t *in, size_t len, int space)
{
    struct mxg_data_filter f, r;
    struct mxg_buf o = {0}, ro = {0};
    size_t consumed, rconsumed;

    /* as it is: no early end in what is written */
    filter(in, len, space ? MXG_DF_CR_SPACE : MXG_DF_CR_REJECT, &f, &o, &consumed);
    const char *out = o.data ? mxg_buf_head(&o) : "";
    size_t ol = o.len - o.off;
    FUZZ_CHECK(!early_end(out, ol, ""));
    if (mxg_data_filter_done(&f) && !mxg_data_filter_failed(&f))
        FUZZ_CHECK(ol == 0 || (ol >= 2 && out[ol - 2] == '\r' && out[ol - 1] == '\n'));
    mxg_buf_free(&o);

    /* terminated: the end is always found */
    uint8_t *s = malloc(len + 5);
    if (!s)
        abort();
    if (len)
        memcpy(s, in, len);
    memcpy(s + len, "\r\n.\r\n", 5);
    filter(s, len + 5, MXG_DF_CR_SPACE, &f, &o, &consumed);
    filter(s, len + 5, MXG_DF_CR_REJECT, &r, &ro, &rconsumed);
    FUZZ_CHECK(mxg_data_filter_done(&f) && !mxg_data_filter_failed(&f));
    FUZZ_CHECK(mxg_data_filter_done(&r) && rconsumed == consumed);
    out = o.data ? mxg_buf_head(&o) : "";
    ol = o.len - o.off;
    FUZZ_CHECK(!early_end(out, ol, ".\r\n"));
    FUZZ_CHECK(ol == 0 || (ol >= 2 && out[ol - 2] == '\r' && out[ol - 1] == '\n'));

    /* un-stuffed, the output is what the client meant */
    char *meant = malloc(2 * (len + 5)), *back = malloc(ol ? ol : 1);
    if (!meant || !back)
        abort();
    size_t mconsumed;
    size_t ml = client_meant(s, len + 5, meant, &mconsumed);
    ptrdiff_t bl = stuff_model_unstuff(out, ol, back, 0);
    FUZZ_CHECK(bl >= 0);
    FUZZ_CHECK(mconsumed == consumed);
    FUZZ_CHECK((size_t)bl == ml && memcmp(back, meant, ml) == 0);

    /* "reject": a prefix of the "space" output, refused exactly on a bare CR */
    size_t rl = ro.len - ro.off;
    FUZZ_CHECK(r.bad_cr == (f.bare_cr > 0));
    FUZZ_CHECK(rl <= ol && (rl == 0 || memcmp(mxg_buf_head(&ro), out, rl) == 0));
    if (!r.bad_cr)
        FUZZ_CHECK(rl == ol);

    free(meant);
    free(back);
    free(s);
    mxg_buf_free(&o);
    mxg_buf_free(&ro);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    check_encoder(data + 1, size - 1, data[0]);
    check_filter(data + 1, size - 1, data[0] & 0x80);
    return 0;
}
