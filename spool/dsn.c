/* spool/dsn.c — RFC 3464 delivery status notifications. See dsn.h.
 *
 * The message is composed unstuffed with CRLF line ends (the original's
 * returned parts are unstuffed from the spool's wire form first), then
 * dot-stuffed as a whole by the shared encoder (smtp/smtp_stuff.h), so no
 * line of ours or of the original can end the DATA early. */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../core/buf.h"
#include "../core/hex.h"
#include "../smtp/smtp_stuff.h"
#include "dsn.h"

/* ------------------------------------------------------------- buffer */

/* A core/buf.h buffer whose first failure sticks: the message is composed
 * without checks and oom is looked at once at the end. */
struct sb {
    struct mxg_buf b;
    int oom;
};

/* Append n octets of s (nothing once out of memory). */
static void sb_add(struct sb *b, const char *s, size_t n)
{
    if (!b->oom && mxg_buf_append(&b->b, s, n) < 0)
        b->oom = 1;
}

/* Append the C string s. */
static void sb_puts(struct sb *b, const char *s)
{
    sb_add(b, s, strlen(s));
}

/* Append formatted text. */
static void sb_printf(struct sb *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(struct sb *b, const char *fmt, ...)
{
    va_list ap;
    if (b->oom)
        return;
    va_start(ap, fmt);
    if (mxg_buf_vprintf(&b->b, fmt, ap) < 0)
        b->oom = 1;
    va_end(ap);
}

/* ------------------------------------------------------------- helpers */

static int is_8bit(const char *s)
{
    for (; s && *s; s++)
        if ((unsigned char)*s >= 0x80)
            return 1;
    return 0;
}

/* Copy text for a header field: printable US-ASCII (and, with utf8, octets
 * >= 0x80); CR, LF, TAB become spaces, other controls are dropped. */
static void clean(const char *in, char *out, size_t cap, int utf8)
{
    size_t o = 0;
    for (; in && *in && o + 1 < cap; in++) {
        unsigned char c = (unsigned char)*in;
        if (c == '\r' || c == '\n' || c == '\t')
            c = ' ';
        if ((c >= 0x20 && c < 0x7f) || (utf8 && c >= 0x80))
            out[o++] = (char)c;
    }
    out[o] = 0;
}

void mxg_dsn_xtext_decode(const char *in, char *out, size_t cap)
{
    size_t o = 0;
    if (!cap)
        return;
    for (; in && *in && o + 1 < cap; in++) {
        int c = (unsigned char)*in;
        if (c == '+' && in[1] && in[2] && mxg_hex_val(in[1]) >= 0 && mxg_hex_val(in[2]) >= 0) {
            c = mxg_hex_val(in[1]) * 16 + mxg_hex_val(in[2]);
            in += 2;
        }
        if (c >= 0x20 && c < 0x7f)
            out[o++] = (char)c;
    }
    out[o] = 0;
}

void mxg_dsn_status_of(int code, const char *reply, char *out, size_t cap)
{
    /* "550 5.1.1 text" or "550-5.1.1 text": the second token, if it is
     * class.subject.detail with the reply's class */
    int cls = code / 100;
    if (reply) {
        const char *p = reply;
        while (*p >= '0' && *p <= '9')
            p++;
        if (p != reply && (*p == ' ' || *p == '-')) {
            p++;
            unsigned a, b, c;
            int n = 0;
            if (sscanf(p, "%1u.%3u.%3u%n", &a, &b, &c, &n) == 3 && (a == 2 || a == 4 || a == 5) &&
                (p[n] == 0 || p[n] == ' ') && (cls == 0 || (int)a == cls)) {
                snprintf(out, cap, "%u.%u.%u", a, b, c);
                return;
            }
        }
    }
    snprintf(out, cap, "%d.0.0", cls == 5 ? 5 : cls == 2 ? 2 : 4);
}

static void rfc5322_date(int64_t ms, char *out, size_t cap)
{
    static const char *const wd[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char *const mo[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    snprintf(out, cap, "%s, %02d %s %04d %02d:%02d:%02d +0000", wd[tm.tm_wday], tm.tm_mday,
             mo[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/* Unstuff wire-form text (CRLF lines, leading dots doubled) into b; stop
 * after the header section when hdrs_only (the blank line is not copied),
 * at most max octets (cut at a line end). Bare LF is taken as a line end
 * and written as CRLF. When the text is only a prefix (complete = 0), a
 * last line without its end is left out. */
static void unstuff(struct sb *b, const char *p, size_t len, int hdrs_only, int complete,
                    size_t max)
{
    size_t start = b->b.len;
    size_t i = 0;
    while (i < len) {
        size_t e = i;
        while (e < len && p[e] != '\n')
            e++;
        if (e >= len && !complete)
            break;
        size_t ll = e; /* the line without its end */
        if (ll > i && p[ll - 1] == '\r')
            ll--;
        const char *line = p + i;
        size_t n = ll - i;
        if (hdrs_only && n == 0)
            break;
        if (n && line[0] == '.') {
            line++;
            n--;
        }
        if (b->b.len - start + n + 2 > max)
            break;
        sb_add(b, line, n);
        sb_add(b, "\r\n", 2);
        i = e < len ? e + 1 : e;
    }
}

/* "mx.example[192.0.2.1]" → "mx.example"; "[192.0.2.1]" stays. */
static void mta_name(const char *in, char *out, size_t cap)
{
    clean(in, out, cap, 0);
    char *br = strchr(out, '[');
    if (br && br != out)
        *br = 0;
}

/* ------------------------------------------------------------- build */

int mxg_dsn_build(const struct mxg_dsn_req *req, struct mxg_dsn_out *out)
{
    memset(out, 0, sizeof *out);
    if (!req || req->n_rcpts < 1 || !req->rcpts || !req->reporting_mta || !req->reporting_mta[0] ||
        !req->sender || !req->sender[0])
        return -EINVAL;

    int utf8 = is_8bit(req->sender);
    for (int i = 0; i < req->n_rcpts; i++)
        utf8 |= is_8bit(req->rcpts[i].addr);
    int delayed_only = 1, relayed_only = 1;
    for (int i = 0; i < req->n_rcpts; i++) {
        delayed_only &= req->rcpts[i].delayed != 0 && !req->rcpts[i].relayed;
        relayed_only &= req->rcpts[i].relayed != 0;
    }

    char host[256], sender[600], tmp[1200], date[64];
    clean(req->reporting_mta, host, sizeof host, 0);
    clean(req->sender, sender, sizeof sender, utf8);

    /* the returned content (unstuffed) */
    struct sb orig = {0};
    int ret_full = req->ret && (req->ret[0] == 'F' || req->ret[0] == 'f');
    if (req->body && req->body_len) {
        if (ret_full && req->body_complete && req->body_len <= MXG_DSN_FULL_MAX) {
            unstuff(&orig, req->body, req->body_len, 0, 1, MXG_DSN_FULL_MAX + 2);
            out->returned = 2;
        } else {
            unstuff(&orig, req->body, req->body_len, 1, req->body_complete, MXG_DSN_HDRS_MAX);
            out->returned = orig.b.len ? 1 : 0;
        }
    }
    const char *orig_s = NULL; /* as a C string, for the boundary search */
    if (!orig.oom && orig.b.len && !(orig_s = mxg_buf_cstr(&orig.b)))
        orig.oom = 1;
    if (orig.oom) {
        mxg_buf_free(&orig.b);
        return -ENOMEM;
    }
    int orig8 = 0;
    for (size_t i = 0; i < orig.b.len; i++)
        if ((unsigned char)orig.b.data[i] >= 0x80) {
            orig8 = 1;
            break;
        }

    /* a boundary that occurs nowhere in the returned content */
    char boundary[96];
    for (unsigned k = 0;; k++) {
        snprintf(boundary, sizeof boundary, "=_mxguard_%" PRIx64 "_%u_%s", (uint64_t)req->now_ms, k,
                 req->queue_id && req->queue_id[0] ? "q" : "x");
        if (!orig_s || !strstr(orig_s, boundary))
            break;
    }

    struct sb m = {0};
    /* ---- top-level header */
    rfc5322_date(req->now_ms, date, sizeof date);
    sb_printf(&m, "From: MAILER-DAEMON@%s (Mail Delivery System)\r\n", host);
    sb_printf(&m, "To: <%s>\r\n", sender);
    sb_printf(&m, "Subject: %s\r\n", relayed_only   ? "Successful Mail Delivery Report"
                                      : delayed_only ? "Delayed Mail (still being retried)"
                                                     : "Undelivered Mail Returned to Sender");
    sb_printf(&m, "Date: %s\r\n", date);
    {
        char qid[64];
        clean(req->queue_id ? req->queue_id : "", qid, sizeof qid, 0);
        for (char *q = qid; *q; q++)
            if (*q == '<' || *q == '>' || *q == '@' || *q == ' ')
                *q = '-';
        sb_printf(&m, "Message-ID: <dsn.%" PRIx64 ".%s@%s>\r\n", (uint64_t)req->now_ms,
                  qid[0] ? qid : "x", host);
    }
    sb_puts(&m, "Auto-Submitted: auto-replied\r\n");
    sb_puts(&m, "MIME-Version: 1.0\r\n");
    sb_printf(&m, "Content-Type: multipart/report; report-type=delivery-status;\r\n"
                  "\tboundary=\"%s\"\r\n", boundary);
    sb_puts(&m, "\r\nThis is a MIME-encapsulated message.\r\n\r\n");

    /* ---- 1. human-readable part */
    sb_printf(&m, "--%s\r\n", boundary);
    sb_printf(&m, "Content-Description: Notification\r\n"
                  "Content-Type: text/plain; charset=%s\r\n",
              utf8 ? "utf-8" : "us-ascii");
    if (utf8)
        sb_puts(&m, "Content-Transfer-Encoding: 8bit\r\n");
    sb_printf(&m, "\r\nThis is the mail system at host %s.\r\n\r\n", host);
    if (relayed_only) {
        sb_puts(&m, "Your message was relayed to the recipients below. Their mail server does\r\n"
                    "not support delivery status notifications, so you will not be told\r\n"
                    "whether it reaches the mailbox (RFC 3461, section 5.2.2).\r\n");
    } else if (delayed_only) {
        sb_puts(&m, "Your message has not been delivered yet to the recipients below. It is\r\n"
                    "still in the queue and delivery will be retried; you need not resend it.\r\n");
    } else {
        sb_puts(&m, "I'm sorry to have to inform you that your message could not be delivered\r\n"
                    "to one or more recipients. ");
        sb_puts(&m, out->returned == 2   ? "It is attached below.\r\n"
                    : out->returned == 1 ? "Its header section is attached below.\r\n"
                                         : "\r\n");
    }
    if (req->queue_id && req->queue_id[0]) {
        clean(req->queue_id, tmp, 64, 0);
        sb_printf(&m, "Queue ID: %s\r\n", tmp);
    }
    sb_puts(&m, "\r\nFor further assistance, please contact your postmaster.\r\n\r\n");
    for (int i = 0; i < req->n_rcpts; i++) {
        const struct mxg_dsn_rcpt *r = &req->rcpts[i];
        char a[600], mta[300], rep[600];
        clean(r->addr, a, sizeof a, utf8);
        mta_name(r->remote_mta ? r->remote_mta : "", mta, sizeof mta);
        clean(r->reply ? r->reply : "", rep, sizeof rep, 0);
        if (r->relayed)
            sb_printf(&m, "<%s>: relayed to %s%s%s%s\r\n", a, mta[0] ? "host " : "a mail server",
                      mta, rep[0] ? ", which said: " : "", rep);
        else if (r->status && strcmp(r->status, "4.4.7") == 0 && !r->delayed)
            sb_printf(&m, "<%s>: delivery time expired%s%s\r\n", a, rep[0] ? "; last error: " : "",
                      rep);
        else if (mta[0] && rep[0])
            sb_printf(&m, "<%s>: host %s said: %s\r\n", a, mta, rep);
        else
            sb_printf(&m, "<%s>: %s\r\n", a, rep[0] ? rep : "delivery failed");
    }
    sb_puts(&m, "\r\n");

    /* ---- 2. machine-readable part */
    sb_printf(&m, "--%s\r\n", boundary);
    sb_printf(&m, "Content-Description: Delivery report\r\n"
                  "Content-Type: message/%sdelivery-status\r\n",
              utf8 ? "global-" : "");
    if (utf8)
        sb_puts(&m, "Content-Transfer-Encoding: 8bit\r\n");
    sb_puts(&m, "\r\n");
    sb_printf(&m, "Reporting-MTA: dns; %s\r\n", host);
    if (req->envid && req->envid[0]) {
        mxg_dsn_xtext_decode(req->envid, tmp, sizeof tmp);
        if (tmp[0])
            sb_printf(&m, "Original-Envelope-Id: %s\r\n", tmp);
    }
    if (req->arrival_ms > 0) {
        rfc5322_date(req->arrival_ms, date, sizeof date);
        sb_printf(&m, "Arrival-Date: %s\r\n", date);
    }
    for (int i = 0; i < req->n_rcpts; i++) {
        const struct mxg_dsn_rcpt *r = &req->rcpts[i];
        char a[600], st[16], mta[300], rep[600];
        sb_puts(&m, "\r\n");
        if (r->orcpt && r->orcpt[0]) {
            const char *semi = strchr(r->orcpt, ';');
            char type[40];
            if (semi && semi != r->orcpt && (size_t)(semi - r->orcpt) < sizeof type) {
                memcpy(type, r->orcpt, (size_t)(semi - r->orcpt));
                type[semi - r->orcpt] = 0;
                clean(type, type, sizeof type, 0);
                mxg_dsn_xtext_decode(semi + 1, tmp, sizeof tmp);
                if (type[0] && tmp[0])
                    sb_printf(&m, "Original-Recipient: %s;%s\r\n", type, tmp);
            }
        }
        clean(r->addr, a, sizeof a, utf8);
        sb_printf(&m, "Final-Recipient: %s; %s\r\n", is_8bit(a) ? "utf-8" : "rfc822", a);
        sb_printf(&m, "Action: %s\r\n", r->relayed   ? "relayed"
                                        : r->delayed ? "delayed"
                                                     : "failed");
        if (r->status && r->status[0]) {
            clean(r->status, st, sizeof st, 0);
        } else {
            mxg_dsn_status_of(r->code, r->reply, st, sizeof st);
        }
        sb_printf(&m, "Status: %s\r\n", st);
        mta_name(r->remote_mta ? r->remote_mta : "", mta, sizeof mta);
        if (mta[0])
            sb_printf(&m, "Remote-MTA: dns; %s\r\n", mta);
        clean(r->reply ? r->reply : "", rep, sizeof rep, 0);
        if (rep[0])
            sb_printf(&m, "Diagnostic-Code: %s; %s\r\n", mta[0] ? "smtp" : "X-mxguard", rep);
        if (r->last_attempt_ms > 0) {
            rfc5322_date(r->last_attempt_ms, date, sizeof date);
            sb_printf(&m, "Last-Attempt-Date: %s\r\n", date);
        }
        if (r->delayed && !r->relayed && r->retry_until_ms > 0) {
            rfc5322_date(r->retry_until_ms, date, sizeof date);
            sb_printf(&m, "Will-Retry-Until: %s\r\n", date);
        }
    }
    sb_puts(&m, "\r\n");

    /* ---- 3. the returned content */
    if (out->returned) {
        sb_printf(&m, "--%s\r\n", boundary);
        if (out->returned == 2)
            sb_printf(&m, "Content-Description: %s Message\r\n"
                          "Content-Type: message/%s\r\n",
                      relayed_only ? "Relayed" : "Undelivered", utf8 ? "global" : "rfc822");
        else
            sb_printf(&m, "Content-Description: %s Message Headers\r\n"
                          "Content-Type: %s\r\n",
                      relayed_only ? "Relayed" : "Undelivered",
                      utf8 ? "message/global-headers" : "text/rfc822-headers");
        if (orig8)
            sb_puts(&m, "Content-Transfer-Encoding: 8bit\r\n");
        sb_puts(&m, "\r\n");
        sb_add(&m, orig.b.data, orig.b.len);
        if (orig.b.len && orig.b.data[orig.b.len - 1] != '\n')
            sb_puts(&m, "\r\n");
        sb_puts(&m, "\r\n");
    }
    sb_printf(&m, "--%s--\r\n", boundary);
    mxg_buf_free(&orig.b);
    if (m.oom) {
        mxg_buf_free(&m.b);
        return -ENOMEM;
    }

    /* dot-stuffed as a whole (smtp/smtp_stuff.h): m ends with CRLF, so
     * nothing is added */
    char *wire;
    size_t wire_len;
    int rc = mxg_smtp_stuff(m.b.data, m.b.len, &wire, &wire_len);
    mxg_buf_free(&m.b);
    if (rc < 0)
        return -ENOMEM;
    out->msg = wire;
    out->len = wire_len;
    out->utf8 = utf8;
    out->eightbit = utf8 || orig8;
    return 0;
}
