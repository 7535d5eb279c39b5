/* fuzz/fuzz_reply.c — the upstream reply parser (smtp/smtp_parse.h:
 * mxg_reply_feed, mxg_reply_render, mxg_reply_summary, mxg_caps_parse).
 * The input is what an upstream server sends: lines split at LF (a CR before
 * the LF dropped, as proxy/outbound/leg_chat.c does), each fed as an exact-size heap
 * copy.
 *
 * Properties checked for every complete reply:
 *  - code 200..599, 1..MXG_REPLY_LINES_MAX lines, text terminated inside its
 *    array, no control octets but the '\n' line separators, n_lines - 1 of them;
 *  - enh "" or "c.s.d" of the code's class;
 *  - rendered with the session's buffer size (MXG_REPLY_TEXT_MAX + 1024): all
 *    n_lines lines, "CODE-" on all but the last, "CODE " on the last, CRLF
 *    after each and no other CR or LF (a client must never see half a reply);
 *  - rendered into small buffers: never past cap, whole CRLF lines only;
 *  - the summary is terminated within its buffer. */
#include "fuzz.h"

#include <ctype.h>

#include "smtp/smtp_parse.h"

#define SESSION_RENDER_CAP (MXG_REPLY_TEXT_MAX + 1024)

static void check_wire(const char *out, size_t n, int code, int want_lines)
{
    char head[4];
    snprintf(head, sizeof head, "%03d", code);
    int lines = 0;
    size_t i = 0;
    while (i < n) {
        const char *crlf = NULL;
        for (size_t k = i; k + 1 < n; k++) {
            FUZZ_CHECK(out[k] != '\n' && (out[k] != '\r' || out[k + 1] == '\n'));
            if (out[k] == '\r') {
                crlf = out + k;
                break;
            }
        }
        FUZZ_CHECK(crlf != NULL); /* every line ends in CRLF */
        size_t ll = (size_t)(crlf - (out + i));
        FUZZ_CHECK(ll >= 4 && memcmp(out + i, head, 3) == 0);
        FUZZ_CHECK(out[i + 3] == '-' || out[i + 3] == ' ');
        lines++;
        int last = out[i + 3] == ' ';
        i += ll + 2;
        if (want_lines > 0)
            FUZZ_CHECK(last == (lines == want_lines));
    }
    FUZZ_CHECK(i == n);
    if (want_lines > 0)
        FUZZ_CHECK(lines == want_lines);
}

static int enh_ok(const char *e, int code)
{
    if (!e[0])
        return 1;
    if (e[0] != '0' + code / 100 || e[1] != '.')
        return 0;
    const char *p = e + 2;
    for (int part = 0; part < 2; part++) {
        int d = 0;
        while (isdigit((unsigned char)*p) && d < 4) {
            p++;
            d++;
        }
        if (d < 1 || d > 3)
            return 0;
        if (part == 0 && *p++ != '.')
            return 0;
    }
    return *p == '\0';
}

static void check_reply(const struct mxg_reply *r, size_t small_cap)
{
    FUZZ_CHECK(r->code >= 200 && r->code <= 599);
    FUZZ_CHECK(r->n_lines >= 1 && r->n_lines <= MXG_REPLY_LINES_MAX);
    FUZZ_CHECK(fuzz_terminated(r->text, sizeof r->text));
    FUZZ_CHECK(fuzz_terminated(r->enh, sizeof r->enh));
    FUZZ_CHECK(enh_ok(r->enh, r->code));
    int nl = 0;
    for (const char *c = r->text; *c; c++) {
        if (*c == '\n')
            nl++;
        else
            FUZZ_CHECK((unsigned char)*c >= 0x20 && *c != 0x7f);
    }
    FUZZ_CHECK(nl == r->n_lines - 1);

    static char out[SESSION_RENDER_CAP];
    size_t n = mxg_reply_render(r, out, sizeof out);
    FUZZ_CHECK(n <= sizeof out);
    check_wire(out, n, r->code, r->n_lines);

    char *small = malloc(small_cap ? small_cap : 1); /* exact size: ASan sees overruns */
    FUZZ_CHECK(small != NULL);
    n = mxg_reply_render(r, small, small_cap);
    FUZZ_CHECK(n <= small_cap);
    check_wire(small, n, r->code, 0);
    free(small);

    char sum[300];
    mxg_reply_summary(r, sum, sizeof sum);
    FUZZ_CHECK(fuzz_terminated(sum, sizeof sum));
    char tiny[8];
    mxg_reply_summary(r, tiny, sizeof tiny);
    FUZZ_CHECK(fuzz_terminated(tiny, sizeof tiny));

    struct mxg_caps caps;
    mxg_caps_parse(r, &caps);
    FUZZ_CHECK(caps.esmtp == 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* the first octet picks the size of the small render buffer */
    size_t small_cap = size ? data[0] : 0;
    if (size) {
        data++;
        size--;
    }
    struct mxg_reply_parser p;
    mxg_reply_parser_reset(&p);
    size_t i = 0;
    while (i < size) {
        const uint8_t *nlp = memchr(data + i, '\n', size - i);
        size_t ll = nlp ? (size_t)(nlp - (data + i)) : size - i;
        size_t next = i + ll + (nlp ? 1 : 0);
        if (ll > 0 && data[i + ll - 1] == '\r')
            ll--;
        char *line = fuzz_dup(data + i, ll);
        int rc = mxg_reply_feed(&p, line, ll);
        free(line);
        FUZZ_CHECK(rc == 1 || rc == 0 || rc == MXG_PE_SYNTAX);
        FUZZ_CHECK(p.text_len < sizeof p.r.text);
        if (rc == 1)
            check_reply(&p.r, small_cap);
        i = next;
    }
    return 0;
}
