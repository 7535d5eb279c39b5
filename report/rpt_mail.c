/* report/rpt_mail.c — the RFC 8460 §5.3 report mail: MIME structure,
 * filename, dot-stuffing, mailto: URIs. Contract: tlsrpt.h, block "report
 * mail". Pure functions (randomness for the boundary and a fallback
 * Message-ID aside): no I/O, no logging. */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/evp.h>

#include "../core/buf.h"
#include "../core/hex.h"
#include "../smtp/smtp_stuff.h"
#include "rpt_int.h"

/* ------------------------------------------------------------ a growing buffer */

/* A core/buf.h buffer whose first failure sticks: the mail is composed
 * without checks and nomem is looked at once at the end. */
struct sbuf {
    struct mxg_buf b;
    int nomem;
};

/* Append n octets of s (nothing once out of memory). */
static void sb_add(struct sbuf *b, const char *s, size_t n)
{
    if (!b->nomem && mxg_buf_append(&b->b, s, n) < 0)
        b->nomem = 1;
}

/* Append formatted text. */
static void sb_printf(struct sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(struct sbuf *b, const char *fmt, ...)
{
    va_list ap;
    if (b->nomem)
        return;
    va_start(ap, fmt);
    if (mxg_buf_vprintf(&b->b, fmt, ap) < 0)
        b->nomem = 1;
    va_end(ap);
}

/* ------------------------------------------------------------ checks */

/* Printable ASCII, no CR/LF, 1..max bytes. */
static int header_safe(const char *s, size_t max)
{
    if (!s || !*s || strlen(s) > max)
        return 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p < 0x20 || *p > 0x7e)
            return 0;
    return 1;
}

/* RFC 5322 atext (the characters of a dot-atom besides '.') */
static int atext(int c)
{
    return isalnum(c) || (c && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

static int dot_atom(const char *s, size_t n)
{
    if (n == 0 || s[0] == '.' || s[n - 1] == '.')
        return 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '.') {
            if (s[i + 1] == '.')
                return 0;
        } else if (!atext((unsigned char)s[i])) {
            return 0;
        }
    }
    return 1;
}

/* A msg-id body "left@right" of two dot-atoms. */
static int msgid_ok(const char *id)
{
    const char *at = strchr(id, '@');
    if (!at || strchr(at + 1, '@') || strlen(id) > 200)
        return 0;
    return dot_atom(id, (size_t)(at - id)) && dot_atom(at + 1, strlen(at + 1));
}

static void random_hex(char *out, size_t nbytes)
{
    unsigned char r[32];
    if (nbytes > sizeof r)
        nbytes = sizeof r;
    if (uv_random(NULL, NULL, r, nbytes, 0, NULL) != 0)
        for (size_t i = 0; i < nbytes; i++)
            r[i] = (unsigned char)rand();
    mxg_hex_encode(r, nbytes, out);
}

/* Unix time of DAY 00:00:00Z; -1 if day is not a valid "YYYY-MM-DD". */
static int64_t day_start(const char *day)
{
    if (!day || !rpt_day_ok(day))
        return -1;
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    tm.tm_year = atoi(day) - 1900;
    tm.tm_mon = atoi(day + 5) - 1;
    tm.tm_mday = atoi(day + 8);
    return (int64_t)timegm(&tm);
}

/* ------------------------------------------------------------ public */

int mxg_rpt_mail_filename(const char *submitter, const char *domain, const char *day, char *out,
                          size_t cap)
{
    int64_t b = day_start(day);
    if (b < 0 || !header_safe(submitter, 253) || !header_safe(domain, 253) || strchr(submitter, '!') ||
        strchr(domain, '!') || strchr(submitter, '"') || strchr(domain, '"'))
        return MXG_RPT_EINVAL;
    int n = snprintf(out, cap, "%s!%s!%lld!%lld.json.gz", submitter, domain, (long long)b,
                     (long long)(b + 86399));
    return n > 0 && (size_t)n < cap ? 0 : MXG_RPT_EINVAL;
}

int mxg_rpt_mail_build(const struct mxg_rpt_mail_msg *m, char **out, size_t *outlen, char *err,
                       size_t errlen)
{
    char fname[600];
    if (!m || !out || !outlen || !m->gz || m->gz_len == 0) {
        rpt_set_err(err, errlen, "report mail: missing argument");
        return MXG_RPT_EINVAL;
    }
    if (!header_safe(m->from, 254) || !header_safe(m->to, 254) ||
        !header_safe(m->policy_domain, 253) || !header_safe(m->submitter, 253) ||
        !header_safe(m->report_id, MXG_RPT_REPORT_ID_MAX) || strchr(m->report_id, '>') ||
        mxg_rpt_mail_filename(m->submitter, m->policy_domain, m->day, fname, sizeof fname) != 0) {
        rpt_set_err(err, errlen, "report mail: a header value is empty, too long or not "
                                 "printable ASCII");
        return MXG_RPT_EINVAL;
    }
    /* the text part says who we are: printable ASCII only */
    char org[160];
    const char *o = m->org_name && m->org_name[0] ? m->org_name : m->submitter;
    size_t k = 0;
    for (; o[k] && k + 1 < sizeof org; k++)
        org[k] = (o[k] >= 0x20 && o[k] <= 0x7e) ? o[k] : '?';
    org[k] = '\0';

    char boundary[64], rnd[33];
    random_hex(rnd, 12);
    snprintf(boundary, sizeof boundary, "=_mxguard_tlsrpt_%s", rnd);

    char date[64];
    time_t t = m->date > 0 ? (time_t)m->date : time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S +0000", &tm);

    char msgid[300];
    if (msgid_ok(m->report_id)) {
        snprintf(msgid, sizeof msgid, "%s", m->report_id);
    } else {
        random_hex(rnd, 16);
        snprintf(msgid, sizeof msgid, "tlsrpt.%s.%s@%s", m->day, rnd, m->submitter);
    }

    struct sbuf b = {0};
    sb_printf(&b, "From: %s\r\n", m->from);
    sb_printf(&b, "To: %s\r\n", m->to);
    sb_printf(&b, "Date: %s\r\n", date);
    sb_printf(&b, "Subject: Report Domain: %s\r\n Submitter: %s\r\n Report-ID: <%s>\r\n",
              m->policy_domain, m->submitter, m->report_id);
    sb_printf(&b, "Message-ID: <%s>\r\n", msgid);
    sb_printf(&b, "MIME-Version: 1.0\r\n");
    sb_printf(&b, "TLS-Report-Domain: %s\r\n", m->policy_domain);
    sb_printf(&b, "TLS-Report-Submitter: %s\r\n", m->submitter);
    sb_printf(&b, "Auto-Submitted: auto-generated\r\n");
    sb_printf(&b, "TLS-Required: No\r\n");
    sb_printf(&b, "Content-Type: multipart/report; report-type=\"tlsrpt\";\r\n"
                  "\tboundary=\"%s\"\r\n",
              boundary);
    sb_printf(&b, "\r\nThis is a multipart message in MIME format.\r\n\r\n");

    sb_printf(&b, "--%s\r\n", boundary);
    sb_printf(&b, "Content-Type: text/plain; charset=\"us-ascii\"\r\n"
                  "Content-Transfer-Encoding: 7bit\r\n\r\n");
    sb_printf(&b, "This is an aggregate TLS report (SMTP TLS Reporting, RFC 8460)\r\n"
                  "from %s (%s)\r\n"
                  "for the policy domain %s, UTC day %s.\r\n"
                  "The report is attached as\r\n%s\r\n"
                  "Report-ID: <%s>\r\n\r\n",
              org, m->submitter, m->policy_domain, m->day, fname, m->report_id);

    sb_printf(&b, "--%s\r\n", boundary);
    sb_printf(&b, "Content-Type: application/tlsrpt+gzip;\r\n\tname=\"%s\"\r\n", fname);
    sb_printf(&b, "Content-Transfer-Encoding: base64\r\n");
    sb_printf(&b, "Content-Disposition: attachment;\r\n\tfilename=\"%s\"\r\n\r\n", fname);
    unsigned char line[80];
    for (size_t off = 0; off < m->gz_len; off += 57) {
        size_t n = m->gz_len - off < 57 ? m->gz_len - off : 57;
        int l = EVP_EncodeBlock(line, (const unsigned char *)m->gz + off, (int)n);
        sb_add(&b, (const char *)line, (size_t)l);
        sb_add(&b, "\r\n", 2);
    }
    sb_printf(&b, "--%s--\r\n", boundary);
    if (b.nomem || !mxg_buf_cstr(&b.b)) {
        mxg_buf_free(&b.b);
        rpt_set_err(err, errlen, "report mail: out of memory");
        return MXG_RPT_ENOMEM;
    }
    *out = b.b.data; /* NUL-terminated; b.b.off is 0 */
    *outlen = b.b.len;
    return 0;
}

/* Contract: see tlsrpt.h (the encoder is smtp/smtp_stuff.h). */
int mxg_rpt_mail_wire(const char *msg, size_t len, char **out, size_t *outlen)
{
    if (!msg || !out || !outlen)
        return MXG_RPT_EINVAL;
    return mxg_smtp_stuff(msg, len, out, outlen) == 0 ? 0 : MXG_RPT_ENOMEM;
}

int mxg_rpt_mailto_parse(const char *rua, char addr[MXG_RPT_ADDR_MAX],
                         char domain[MXG_RPT_DOMAIN_MAX])
{
    if (!rua || strncasecmp(rua, "mailto:", 7) != 0)
        return -1;
    const char *p = rua + 7;
    size_t n = strcspn(p, "?#");
    char a[MXG_RPT_ADDR_MAX];
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)p[i];
        if (c == '%') {
            int h = i + 2 < n ? mxg_hex_val((unsigned char)p[i + 1]) : -1;
            int l = h >= 0 ? mxg_hex_val((unsigned char)p[i + 2]) : -1;
            if (l < 0)
                return -1;
            c = h * 16 + l;
            i += 2;
        }
        if (k + 1 >= sizeof a)
            return -1;
        a[k++] = (char)c;
    }
    a[k] = '\0';
    const char *at = strrchr(a, '@');
    if (!at || at == a || !dot_atom(a, (size_t)(at - a)))
        return -1; /* also: a list "x@a,y@b" (',' is not atext) */
    char d[MXG_RPT_DOMAIN_MAX];
    if (rpt_domain_norm(at + 1, d) != 0)
        return -1;
    for (const char *q = d; *q; q++)
        if (!(isalnum((unsigned char)*q) || *q == '-' || *q == '.'))
            return -1;
    if (d[0] == '.' || strstr(d, ".."))
        return -1;
    int len = snprintf(addr, MXG_RPT_ADDR_MAX, "%.*s@%s", (int)(at - a), a, d);
    if (len < 0 || len >= MXG_RPT_ADDR_MAX)
        return -1;
    snprintf(domain, MXG_RPT_DOMAIN_MAX, "%s", d);
    return 0;
}
