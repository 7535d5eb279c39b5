/* fuzz/fuzz_data_filter.c — the DATA phase filter (smtp/data_filter.h): dot
 * handling, bare CR/LF normalisation, the end marker, the limits.
 *
 * Input: 4 octets of set-up (max line, max size, max Received:, chunking
 * seed; the seed's top bit picks limits.bare_cr "space" over "reject"),
 * then the client's DATA bytes. The bytes are filtered twice: in one
 * chunk, and in chunks of pseudo-random sizes (each an exact-size heap copy).
 *
 * Properties checked:
 *  - chunking does not matter: same octets consumed, same measurements and
 *    flags, and (unless a limit was hit) the same output;
 *  - the output is canonical: every CR is followed by LF and every LF
 *    preceded by CR;
 *  - no premature end: "\r\n" + output never contains "\r\n.\r\n" (the
 *    upstream must not see an end marker the client did not send — SMTP
 *    smuggling);
 *  - all input is consumed unless the end was found; after the end nothing
 *    more is consumed or written;
 *  - the end is found only after a real CRLF: the output then is empty or
 *    ends in CRLF;
 *  - without a limit hit, size equals the octets written;
 *  - canonical input (CRLF line ends only) passes unchanged: the output is
 *    the input up to the CRLF before ".\r\n";
 *  - a bare CR never makes a line: under "reject" the message is refused
 *    (bad_cr) when the input has one, and the output stops before it; under
 *    "space" the output has exactly as many line ends as the input has LFs
 *    (before the end) and as many spaces as the input's spaces plus bare
 *    CRs. */
#include "fuzz.h"

#include "core/buf.h"
#include "smtp/data_filter.h"

static const size_t line_caps[] = {0, 1000, 20, 2048};
static const uint64_t size_caps[] = {0, 1u << 20, 64, 200};
static const int rcvd_caps[] = {0, 1, 3, 30};

struct run {
    struct mxg_data_filter f;
    struct mxg_buf out;
    size_t consumed;
};

static void setup(struct run *r, const uint8_t *hdr)
{
    memset(r, 0, sizeof *r);
    mxg_data_filter_init(&r->f, size_caps[hdr[1] % 4], line_caps[hdr[0] % 4], rcvd_caps[hdr[2] % 4],
                         hdr[3] & 0x80 ? MXG_DF_CR_SPACE : MXG_DF_CR_REJECT);
}

static void feed(struct run *r, const uint8_t *in, size_t len)
{
    char *chunk = fuzz_dup(in, len);
    long n = mxg_data_filter_run(&r->f, chunk, len, &r->out);
    free(chunk);
    FUZZ_CHECK(n >= 0 && (size_t)n <= len);
    FUZZ_CHECK(mxg_data_filter_done(&r->f) || (size_t)n == len);
    r->consumed += (size_t)n;
}

static int canonical(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '\r' && (i + 1 >= n || p[i + 1] != '\n'))
            return 0;
        if (p[i] == '\n' && (i == 0 || p[i - 1] != '\r'))
            return 0;
    }
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 4)
        return 0;
    const uint8_t *hdr = data;
    const uint8_t *in = data + 4;
    size_t len = size - 4;

    struct run a, b;
    setup(&a, hdr);
    feed(&a, in, len);

    setup(&b, hdr);
    uint32_t seed = hdr[3] * 2654435761u + 1;
    size_t off = 0;
    while (off < len && !mxg_data_filter_done(&b.f)) {
        seed = seed * 1103515245u + 12345u;
        size_t want = (seed >> 16) % 8 == 0 ? (seed >> 8) % 300 + 1 : (seed >> 16) % 7 + 1;
        size_t n = want < len - off ? want : len - off;
        feed(&b, in + off, n);
        off += n;
    }

    /* chunking does not matter (for the output: unless a limit was hit — then
     * the message is refused and where exactly the output stopped is moot) */
    FUZZ_CHECK(a.consumed == b.consumed);
    if (!mxg_data_filter_failed(&a.f)) {
        FUZZ_CHECK(a.out.len - a.out.off == b.out.len - b.out.off);
        FUZZ_CHECK(a.out.len == a.out.off ||
                   memcmp(mxg_buf_head(&a.out), mxg_buf_head(&b.out), a.out.len - a.out.off) == 0);
    }
    FUZZ_CHECK(a.f.st == b.f.st && a.f.size == b.f.size && a.f.longest_line == b.f.longest_line);
    FUZZ_CHECK(a.f.eight_bit == b.f.eight_bit && a.f.received == b.f.received);
    FUZZ_CHECK(a.f.bare_eol == b.f.bare_eol && a.f.too_big == b.f.too_big);
    FUZZ_CHECK(a.f.too_long == b.f.too_long && a.f.too_many_received == b.f.too_many_received);
    FUZZ_CHECK(a.f.bare_cr == b.f.bare_cr && a.f.bad_cr == b.f.bad_cr);

    const char *o = a.out.data ? mxg_buf_head(&a.out) : "";
    size_t ol = a.out.len - a.out.off;
    int done = mxg_data_filter_done(&a.f);
    int failed = mxg_data_filter_failed(&a.f);

    /* canonical output, no premature end marker */
    for (size_t i = 0; i < ol; i++) {
        if (o[i] == '\r')
            FUZZ_CHECK(i + 1 < ol && o[i + 1] == '\n');
        if (o[i] == '\n')
            FUZZ_CHECK(i > 0 && o[i - 1] == '\r');
        if (o[i] == '.' && (i == 0 || o[i - 1] == '\n')) /* a line "." = the end marker */
            FUZZ_CHECK(!(i + 1 < ol && o[i + 1] == '\r'));
    }
    if (!failed)
        FUZZ_CHECK(a.f.size == ol);

    /* bare CR: counted in the consumed input (a CR not followed by LF; a CR
     * at the very end of the input is still undecided) */
    size_t crs = 0, lfs = 0, sp_in = 0, first_cr = (size_t)-1;
    for (size_t i = 0; i < a.consumed; i++) {
        if (in[i] == '\n')
            lfs++;
        else if (in[i] == ' ')
            sp_in++;
        else if (in[i] == '\r' && i + 1 < a.consumed && in[i + 1] != '\n') {
            crs++;
            if (first_cr == (size_t)-1)
                first_cr = i;
        }
    }
    FUZZ_CHECK(a.f.bare_cr == crs);
    if (a.f.bare_cr_mode == MXG_DF_CR_REJECT) {
        FUZZ_CHECK(a.f.bad_cr == (crs > 0));
        if (crs) /* stuffing of a bare-LF "." line adds one octet per LF */
            FUZZ_CHECK(ol <= first_cr * 2 + 2);
    } else if (!failed) {
        size_t eol = 0, sp_out = 0;
        for (size_t i = 0; i < ol; i++) {
            eol += o[i] == '\n';
            sp_out += o[i] == ' ';
        }
        FUZZ_CHECK(eol == lfs - (done ? 1 : 0));
        FUZZ_CHECK(sp_out == sp_in + crs);
    }
    if (done) {
        FUZZ_CHECK(ol == 0 || (ol >= 2 && o[ol - 2] == '\r' && o[ol - 1] == '\n') || failed);
        FUZZ_CHECK(a.consumed >= 3 && memcmp(in + a.consumed - 3, ".\r\n", 3) == 0);
        if (!failed && canonical(in, a.consumed)) {
            FUZZ_CHECK(ol == a.consumed - 3);
            FUZZ_CHECK(memcmp(o, in, ol) == 0);
        }
        /* after the end nothing more is taken */
        long n = mxg_data_filter_run(&a.f, "x\r\n", 3, &a.out);
        FUZZ_CHECK(n == 0 && a.out.len - a.out.off == ol);
    }

    mxg_buf_free(&a.out);
    mxg_buf_free(&b.out);
    return 0;
}
