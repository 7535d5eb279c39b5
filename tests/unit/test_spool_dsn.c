/* tests/unit/test_spool_dsn.c — spool/ RFC 3464 DSN builder: the output is
 * parsed back (wire form: CRLF only, dot-stuffed, lines <= 998; MIME
 * structure: multipart/report with report-type and a boundary that is not in
 * the content; the three parts and their types) and checked field by field:
 * per-message and per-recipient fields, ENVID/ORCPT xtext decoding, headers
 * only vs the full message (RET, size cap, dots in the original), header
 * injection attempts, internationalised addresses; plus the xtext and
 * status helpers. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cmocka.h>

#include "spool/dsn.h"

/* ---- a small MIME reader for the checks */

struct part {
    char *hdr;  /* header section (unfolded lines, CRLF) */
    char *body; /* content up to the CRLF before the next boundary */
};

struct parsed {
    char *raw; /* unstuffed */
    char *top; /* top-level header section */
    struct part parts[8];
    int n;
    char boundary[128];
};

/* Checks the wire form and undoes the dot-stuffing. */
static char *check_wire_and_unstuff(const char *w, size_t len)
{
    char *out = malloc(len + 1);
    size_t o = 0, i = 0;
    while (i < len) {
        const char *e = memchr(w + i, '\n', len - i);
        assert_non_null(e); /* every line ends */
        size_t end = (size_t)(e - w);
        assert_true(end > i || end == i);
        assert_true(end >= 1 && w[end - 1] == '\r'); /* CRLF, never bare LF */
        size_t ll = end - 1 - i;
        assert_true(ll <= 998);
        assert_null(memchr(w + i, '\r', ll));         /* no bare CR */
        assert_false(ll == 1 && w[i] == '.');          /* never a lone dot */
        size_t s = i;
        if (ll && w[i] == '.') {
            assert_true(ll >= 2 && w[i + 1] == '.'); /* stuffed */
            s++;
        }
        memcpy(out + o, w + s, end + 1 - s);
        o += end + 1 - s;
        i = end + 1;
    }
    out[o] = 0;
    return out;
}

/* Value of header NAME in a header section (first occurrence, unfolded),
 * or NULL. Returns a static buffer. */
static const char *hval(const char *hdr, const char *name)
{
    static char v[2048];
    size_t nl = strlen(name);
    const char *p = hdr;
    while (p && *p) {
        if (strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
            const char *s = p + nl + 1;
            size_t o = 0;
            while (*s == ' ')
                s++;
            for (;;) {
                const char *e = strstr(s, "\r\n");
                if (!e)
                    e = s + strlen(s);
                while (s < e && o + 1 < sizeof v)
                    v[o++] = *s++;
                if (*e && (e[2] == ' ' || e[2] == '\t')) {
                    s = e + 2;
                    v[o++] = ' ';
                    while (*s == ' ' || *s == '\t')
                        s++;
                    continue;
                }
                break;
            }
            v[o] = 0;
            return v;
        }
        p = strstr(p, "\r\n");
        if (p)
            p += 2;
    }
    return NULL;
}

static int count_field(const char *text, const char *line_prefix)
{
    int n = 0;
    size_t l = strlen(line_prefix);
    for (const char *p = text; p && *p;) {
        if (strncmp(p, line_prefix, l) == 0)
            n++;
        p = strstr(p, "\r\n");
        if (p)
            p += 2;
    }
    return n;
}

static void parse(const struct mxg_dsn_out *o, struct parsed *ps)
{
    memset(ps, 0, sizeof *ps);
    ps->raw = check_wire_and_unstuff(o->msg, o->len);
    char *sep = strstr(ps->raw, "\r\n\r\n");
    assert_non_null(sep);
    ps->top = strndup(ps->raw, (size_t)(sep - ps->raw) + 2);
    const char *ct = hval(ps->top, "Content-Type");
    assert_non_null(ct);
    assert_non_null(strstr(ct, "multipart/report"));
    assert_non_null(strstr(ct, "report-type=delivery-status"));
    const char *b = strstr(ct, "boundary=\"");
    assert_non_null(b);
    b += 10;
    const char *be = strchr(b, '"');
    assert_non_null(be);
    snprintf(ps->boundary, sizeof ps->boundary, "%.*s", (int)(be - b), b);
    char delim[160], close_[160];
    snprintf(delim, sizeof delim, "\r\n--%s\r\n", ps->boundary);
    snprintf(close_, sizeof close_, "\r\n--%s--\r\n", ps->boundary);
    const char *p = strstr(sep, delim);
    assert_non_null(p);
    for (;;) {
        p += strlen(delim);
        const char *next = strstr(p, delim);
        const char *end = strstr(p, close_);
        assert_non_null(end);
        const char *stop = next && next < end ? next : end;
        const char *hs = strstr(p, "\r\n\r\n");
        assert_true(hs && hs <= stop);
        assert_true(ps->n < 8);
        ps->parts[ps->n].hdr = strndup(p, (size_t)(hs - p) + 2);
        ps->parts[ps->n].body = strndup(hs + 4, (size_t)(stop - hs - 4) + 2);
        ps->n++;
        if (stop == end) {
            /* nothing but the closing delimiter at the end */
            assert_string_equal(end + strlen(close_), "");
            break;
        }
        p = next;
    }
    /* the boundary occurs only as delimiters */
    int occ = 0;
    for (const char *q = ps->raw; (q = strstr(q, ps->boundary)); q++)
        occ++;
    assert_int_equal(occ, 1 + ps->n + 1); /* header param, delimiters, close */
}

static void parsed_free(struct parsed *ps)
{
    free(ps->raw);
    free(ps->top);
    for (int i = 0; i < ps->n; i++) {
        free(ps->parts[i].hdr);
        free(ps->parts[i].body);
    }
}

/* The delivery-status content as groups (per-message first). */
static int groups(const char *body, char g[][2048], int max)
{
    int n = 0;
    const char *p = body;
    while (*p && n < max) {
        const char *e = strstr(p, "\r\n\r\n");
        size_t l = e ? (size_t)(e - p) + 2 : strlen(p);
        if (l > 2) {
            snprintf(g[n], 2048, "%.*s", (int)l, p);
            n++;
        }
        if (!e)
            break;
        p = e + 4;
    }
    return n;
}

/* ---- the original message, in wire form */
static const char ORIG[] =
    "Received: from legacy.example by relay.example; Mon, 1 Jan 2024 00:00:00 +0000\r\n"
    "From: Alice <alice@example.org>\r\n"
    "To: bob@a.example, carol@b.example\r\n"
    "Subject: quarterly\r\n"
    "\tfigures\r\n"
    "Message-ID: <m1@example.org>\r\n"
    "\r\n"
    "Hello,\r\n"
    "..a line that began with a dot\r\n"
    "..\r\n"
    "BODY-MARKER\r\n";

static struct mxg_dsn_rcpt R2[2];

static struct mxg_dsn_req base_req(void)
{
    memset(R2, 0, sizeof R2);
    R2[0].addr = "bob@a.example";
    R2[0].code = 550;
    R2[0].reply = "550 5.1.1 <bob@a.example>: user unknown";
    R2[0].remote_mta = "mx.a.example[192.0.2.10]";
    R2[0].last_attempt_ms = 1718000100000LL;
    R2[1].addr = "carol@b.example";
    R2[1].orcpt = "rfc822;Carol+2BTag@B.example";
    R2[1].status = "4.4.7";
    R2[1].code = 451;
    R2[1].reply = "451 4.4.1 connection refused";
    R2[1].last_attempt_ms = 1718000200000LL;
    struct mxg_dsn_req r = {
        .reporting_mta = "relay.example",
        .sender = "alice@example.org",
        .envid = "QQ314159+2Bx",
        .ret = NULL,
        .queue_id = "1718000000000-0001-77",
        .arrival_ms = 1718000000000LL,
        .now_ms = 1718000300000LL,
        .rcpts = R2,
        .n_rcpts = 2,
        .body = ORIG,
        .body_len = sizeof ORIG - 1,
        .body_complete = 1,
    };
    return r;
}

static void test_headers_only(void **state)
{
    (void)state;
    struct mxg_dsn_req req = base_req();
    struct mxg_dsn_out o;
    assert_int_equal(mxg_dsn_build(&req, &o), 0);
    assert_int_equal(o.returned, 1);
    assert_int_equal(o.eightbit, 0);
    assert_int_equal(o.utf8, 0);
    struct parsed ps;
    parse(&o, &ps);

    /* top-level header */
    assert_string_equal(hval(ps.top, "From"), "MAILER-DAEMON@relay.example (Mail Delivery System)");
    assert_string_equal(hval(ps.top, "To"), "<alice@example.org>");
    assert_string_equal(hval(ps.top, "Subject"), "Undelivered Mail Returned to Sender");
    assert_string_equal(hval(ps.top, "Date"), "Mon, 10 Jun 2024 06:18:20 +0000");
    assert_non_null(strstr(hval(ps.top, "Message-ID"), "@relay.example>"));
    assert_string_equal(hval(ps.top, "Auto-Submitted"), "auto-replied");
    assert_string_equal(hval(ps.top, "MIME-Version"), "1.0");

    assert_int_equal(ps.n, 3);
    /* 1. the human-readable part */
    assert_non_null(strstr(hval(ps.parts[0].hdr, "Content-Type"), "text/plain"));
    assert_non_null(strstr(ps.parts[0].body, "<bob@a.example>: host mx.a.example said: 550 5.1.1"));
    assert_non_null(strstr(ps.parts[0].body, "<carol@b.example>: delivery time expired"));
    /* 2. message/delivery-status */
    assert_string_equal(hval(ps.parts[1].hdr, "Content-Type"), "message/delivery-status");
    char g[4][2048];
    assert_int_equal(groups(ps.parts[1].body, g, 4), 3);
    assert_string_equal(hval(g[0], "Reporting-MTA"), "dns; relay.example");
    assert_string_equal(hval(g[0], "Original-Envelope-Id"), "QQ314159+x");
    assert_string_equal(hval(g[0], "Arrival-Date"), "Mon, 10 Jun 2024 06:13:20 +0000");
    assert_null(hval(g[0], "Final-Recipient"));

    assert_null(hval(g[1], "Original-Recipient"));
    assert_string_equal(hval(g[1], "Final-Recipient"), "rfc822; bob@a.example");
    assert_string_equal(hval(g[1], "Action"), "failed");
    assert_string_equal(hval(g[1], "Status"), "5.1.1");
    assert_string_equal(hval(g[1], "Remote-MTA"), "dns; mx.a.example");
    assert_string_equal(hval(g[1], "Diagnostic-Code"),
                        "smtp; 550 5.1.1 <bob@a.example>: user unknown");
    assert_string_equal(hval(g[1], "Last-Attempt-Date"), "Mon, 10 Jun 2024 06:15:00 +0000");

    assert_string_equal(hval(g[2], "Original-Recipient"), "rfc822;Carol+Tag@B.example");
    assert_string_equal(hval(g[2], "Final-Recipient"), "rfc822; carol@b.example");
    assert_string_equal(hval(g[2], "Action"), "failed");
    assert_string_equal(hval(g[2], "Status"), "4.4.7");
    assert_null(hval(g[2], "Remote-MTA"));
    assert_string_equal(hval(g[2], "Diagnostic-Code"), "X-mxguard; 451 4.4.1 connection refused");
    assert_null(hval(g[2], "Will-Retry-Until"));

    /* 3. the header section only, unstuffed, nothing of the body */
    assert_string_equal(hval(ps.parts[2].hdr, "Content-Type"), "text/rfc822-headers");
    assert_non_null(strstr(ps.parts[2].body, "Subject: quarterly\r\n\tfigures\r\n"));
    assert_non_null(strstr(ps.parts[2].body, "Message-ID: <m1@example.org>\r\n"));
    assert_null(strstr(ps.parts[2].body, "Hello"));
    assert_null(strstr(ps.parts[2].body, "BODY-MARKER"));
    assert_int_equal(strncmp(ps.parts[2].body, "Received: ", 10), 0);
    parsed_free(&ps);
    free(o.msg);

    /* RET=HDRS: the same */
    req.ret = "HDRS";
    assert_int_equal(mxg_dsn_build(&req, &o), 0);
    assert_int_equal(o.returned, 1);
    free(o.msg);
}

static void test_full(void **state)
{
    (void)state;
    struct mxg_dsn_req req = base_req();
    req.ret = "FULL";
    struct mxg_dsn_out o;
    assert_int_equal(mxg_dsn_build(&req, &o), 0);
    assert_int_equal(o.returned, 2);
    struct parsed ps;
    parse(&o, &ps);
    assert_int_equal(ps.n, 3);
    assert_string_equal(hval(ps.parts[2].hdr, "Content-Type"), "message/rfc822");
    assert_non_null(strstr(ps.parts[0].body, "It is attached below."));
    /* the original, unstuffed, whole */
    assert_non_null(strstr(ps.parts[2].body, "\r\nHello,\r\n.a line that began with a dot\r\n.\r\n"
                                             "BODY-MARKER\r\n"));
    /* ... and stuffed again on the wire */
    assert_non_null(strstr(o.msg, "\r\n..a line that began with a dot\r\n..\r\nBODY-MARKER\r\n"));
    parsed_free(&ps);
    free(o.msg);

    /* FULL but only a prefix at hand → headers */
    req.body_complete = 0;
    req.body_len = 100; /* ends inside the second header line: that line is left out */
    assert_int_equal(mxg_dsn_build(&req, &o), 0);
    assert_int_equal(o.returned, 1);
    parse(&o, &ps);
    assert_string_equal(hval(ps.parts[2].hdr, "Content-Type"), "text/rfc822-headers");
    assert_null(strstr(ps.parts[2].body, "From: Alice"));
    parsed_free(&ps);
    free(o.msg);

    /* FULL but bigger than the cap → headers */
    size_t big = MXG_DSN_FULL_MAX + 100;
    char *b = malloc(big);
    memcpy(b, "Subject: big\r\n\r\n", 16);
    for (size_t i = 16; i < big; i++)
        b[i] = (i % 80 == 78) ? '\r' : (i % 80 == 79) ? '\n' : 'z';
    req.body = b;
    req.body_len = big;
    req.body_complete = 1;
    assert_int_equal(mxg_dsn_build(&req, &o), 0);
    assert_int_equal(o.returned, 1);
    assert_true(o.len < 10000);
    parse(&o, &ps);
    assert_string_equal(ps.parts[2].body, "Subject: big\r\n\r\n");
    parsed_free(&ps);
    free(o.msg);
    free(b);

    /* no body at all → two parts */
    req.body = NULL;
    req.body_len = 0;
    assert_int_equal(mxg_dsn_build(&req, &o), 0);
    assert_int_equal(o.returned, 0);
    parse(&o, &ps);
    assert_int_equal(ps.n, 2);
    parsed_free(&ps);
    free(o.msg);
}

static void test_boundary_not_in_content(void **state)
{
    (void)state;
    struct mxg_dsn_req req = base_req();
    /* an original that contains the first boundary we would pick */
    char body[512];
    snprintf(body, sizeof body, "Subject: x\r\n\r\n--=_mxguard_%llx_0_q\r\n",
             (unsigned long long)req.now_ms);
    req.body = body;
    req.body_len = strlen(body);
    req.ret = "FULL";
    struct mxg_dsn_out o;
    assert_int_equal(mxg_dsn_build(&req, &o), 0);
    struct parsed ps;
    parse(&o, &ps); /* counts boundary occurrences */
    assert_int_equal(ps.n, 3);
    parsed_free(&ps);
    free(o.msg);
}

static void test_injection(void **state)
{
    (void)state;
    struct mxg_dsn_req req = base_req();
    R2[0].reply = "550 5.1.1 no\r\nX-Injected: 1\r\n\r\n.\r\n";
    R2[0].remote_mta = "mx\r\nX-Evil: 2";
    R2[1].orcpt = "rfc822;a+0D+0AX-Orcpt-Evil:+203";
    req.envid = "E+0D+0AX-Envid-Evil:+204";
    req.reporting_mta = "relay.example\r\nX-Host-Evil: 5";
    req.sender = "alice@example.org>\r\nBcc: <victim@example.net";
    struct mxg_dsn_out o;
    assert_int_equal(mxg_dsn_build(&req, &o), 0);
    struct parsed ps;
    parse(&o, &ps);
    assert_int_equal(count_field(ps.raw, "X-"), 0);
    assert_int_equal(count_field(ps.raw, "Bcc:"), 0);
    char g[4][2048];
    assert_int_equal(groups(ps.parts[1].body, g, 4), 3);
    assert_string_equal(hval(g[0], "Original-Envelope-Id"), "EX-Envid-Evil: 4");
    assert_string_equal(hval(g[2], "Original-Recipient"), "rfc822;aX-Orcpt-Evil: 3");
    parsed_free(&ps);
    free(o.msg);
}

static void test_utf8_and_8bit(void **state)
{
    (void)state;
    struct mxg_dsn_req req = base_req();
    R2[0].addr = "j\xc3\xb6rg@a.example";
    char body[] = "Subject: =?utf-8?q?x?=\r\nX-Raw: gr\xc3\xbc\xc3\x9f\r\n\r\nb\r\n";
    req.body = body;
    req.body_len = strlen(body);
    struct mxg_dsn_out o;
    assert_int_equal(mxg_dsn_build(&req, &o), 0);
    assert_int_equal(o.utf8, 1);
    assert_int_equal(o.eightbit, 1);
    struct parsed ps;
    parse(&o, &ps);
    assert_string_equal(hval(ps.parts[1].hdr, "Content-Type"), "message/global-delivery-status");
    assert_string_equal(hval(ps.parts[2].hdr, "Content-Type"), "message/global-headers");
    char g[4][2048];
    assert_int_equal(groups(ps.parts[1].body, g, 4), 3);
    assert_string_equal(hval(g[1], "Final-Recipient"), "utf-8; j\xc3\xb6rg@a.example");
    assert_string_equal(hval(g[2], "Final-Recipient"), "rfc822; carol@b.example");
    parsed_free(&ps);
    free(o.msg);

    /* ASCII addresses, 8-bit original → 8bit part, not utf8 */
    req = base_req();
    req.body = body;
    req.body_len = strlen(body);
    assert_int_equal(mxg_dsn_build(&req, &o), 0);
    assert_int_equal(o.utf8, 0);
    assert_int_equal(o.eightbit, 1);
    parse(&o, &ps);
    assert_string_equal(hval(ps.parts[2].hdr, "Content-Transfer-Encoding"), "8bit");
    assert_string_equal(hval(ps.parts[1].hdr, "Content-Type"), "message/delivery-status");
    parsed_free(&ps);
    free(o.msg);
}

static void test_delayed(void **state)
{
    (void)state;
    struct mxg_dsn_rcpt r = {.addr = "d@e.example", .delayed = 1, .code = 451,
                             .reply = "451 4.7.5 DANE: no TLSA match", .remote_mta = "mx.e.example",
                             .last_attempt_ms = 1718000000000LL,
                             .retry_until_ms = 1718400000000LL};
    struct mxg_dsn_req req = {.reporting_mta = "relay.example", .sender = "s@x.example",
                              .now_ms = 1718000000000LL, .rcpts = &r, .n_rcpts = 1};
    struct mxg_dsn_out o;
    assert_int_equal(mxg_dsn_build(&req, &o), 0);
    struct parsed ps;
    parse(&o, &ps);
    assert_string_equal(hval(ps.top, "Subject"), "Delayed Mail (still being retried)");
    char g[4][2048];
    assert_int_equal(groups(ps.parts[1].body, g, 4), 2);
    assert_null(hval(g[0], "Arrival-Date"));
    assert_null(hval(g[0], "Original-Envelope-Id"));
    assert_string_equal(hval(g[1], "Action"), "delayed");
    assert_string_equal(hval(g[1], "Status"), "4.7.5");
    assert_string_equal(hval(g[1], "Will-Retry-Until"), "Fri, 14 Jun 2024 21:20:00 +0000");
    parsed_free(&ps);
    free(o.msg);
}

/* RFC 3461 §5.2.2: "relayed" for a NOTIFY=SUCCESS recipient delivered to
 * an MX without DSN; no content returned when none is given (live path). */
static void test_relayed(void **state)
{
    (void)state;
    struct mxg_dsn_rcpt r = {.addr = "d@e.example", .relayed = 1, .code = 250,
                             .orcpt = "rfc822;d@e.example",
                             .reply = "250 2.0.0 Ok: queued as 42", .remote_mta = "mx.e.example[192.0.2.7]",
                             .last_attempt_ms = 1718000000000LL};
    struct mxg_dsn_req req = {.reporting_mta = "relay.example", .sender = "s@x.example",
                              .now_ms = 1718000000000LL, .rcpts = &r, .n_rcpts = 1};
    struct mxg_dsn_out o;
    assert_int_equal(mxg_dsn_build(&req, &o), 0);
    assert_int_equal(o.returned, 0);
    struct parsed ps;
    parse(&o, &ps);
    assert_string_equal(hval(ps.top, "Subject"), "Successful Mail Delivery Report");
    assert_int_equal(ps.n, 2); /* text + delivery-status, nothing returned */
    assert_non_null(strstr(ps.parts[0].body, "<d@e.example>: relayed to host mx.e.example, "
                                             "which said: 250 2.0.0 Ok: queued as 42"));
    char g[4][2048];
    assert_int_equal(groups(ps.parts[1].body, g, 4), 2);
    assert_string_equal(hval(g[1], "Action"), "relayed");
    assert_string_equal(hval(g[1], "Status"), "2.0.0");
    assert_string_equal(hval(g[1], "Final-Recipient"), "rfc822; d@e.example");
    assert_string_equal(hval(g[1], "Remote-MTA"), "dns; mx.e.example");
    assert_null(hval(g[1], "Will-Retry-Until"));
    parsed_free(&ps);
    free(o.msg);
}

static void test_bad_args(void **state)
{
    (void)state;
    struct mxg_dsn_out o;
    struct mxg_dsn_req req = base_req();
    req.n_rcpts = 0;
    assert_int_equal(mxg_dsn_build(&req, &o), -EINVAL);
    req = base_req();
    req.sender = "";
    assert_int_equal(mxg_dsn_build(&req, &o), -EINVAL);
    req = base_req();
    req.reporting_mta = NULL;
    assert_int_equal(mxg_dsn_build(&req, &o), -EINVAL);
    assert_int_equal(mxg_dsn_build(NULL, &o), -EINVAL);
}

static void test_helpers(void **state)
{
    (void)state;
    char b[64];
    static const struct {
        const char *in, *out;
    } xt[] = {
        {"abc", "abc"},   {"a+2Bb", "a+b"},  {"+3D+3d", "=="}, {"a+2", "a+2"},
        {"a+ZZb", "a+ZZb"}, {"x+00y", "xy"}, {"+0D+0A", ""},   {"\x01q\x7f", "q"},
    };
    for (size_t i = 0; i < sizeof xt / sizeof xt[0]; i++) {
        mxg_dsn_xtext_decode(xt[i].in, b, sizeof b);
        assert_string_equal(b, xt[i].out);
    }
    mxg_dsn_xtext_decode("abcdef", b, 4);
    assert_string_equal(b, "abc");

    static const struct {
        int code;
        const char *reply, *st;
    } sc[] = {
        {550, "550 5.1.1 user unknown", "5.1.1"},
        {550, "550 user unknown", "5.0.0"},
        {451, "451 4.7.5 DANE", "4.7.5"},
        {451, "451 5.7.5 class mismatch", "4.0.0"},
        {552, "552-5.3.4 too big", "5.3.4"},
        {250, "250 2.0.0 ok", "2.0.0"},
        {0, NULL, "4.0.0"},
        {421, "421 4.4.2 timeout", "4.4.2"},
        {550, "550 5.1.10x", "5.0.0"},
        {550, "550 5.1.10 null MX", "5.1.10"},
    };
    for (size_t i = 0; i < sizeof sc / sizeof sc[0]; i++) {
        mxg_dsn_status_of(sc[i].code, sc[i].reply, b, sizeof b);
        if (strcmp(b, sc[i].st))
            fail_msg("status_of(%d, %s) = %s, want %s", sc[i].code, sc[i].reply, b, sc[i].st);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_headers_only),
        cmocka_unit_test(test_full),
        cmocka_unit_test(test_boundary_not_in_content),
        cmocka_unit_test(test_injection),
        cmocka_unit_test(test_utf8_and_8bit),
        cmocka_unit_test(test_delayed),
        cmocka_unit_test(test_relayed),
        cmocka_unit_test(test_bad_args),
        cmocka_unit_test(test_helpers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
