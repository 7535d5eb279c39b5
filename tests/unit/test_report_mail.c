/* tests/unit/test_report_mail.c — the TLSRPT report mail (report/rpt_mail.c,
 * rpt_dkim.c and the mailto: path of rpt_send.c): the RFC 8460 §5.3 MIME structure parsed
 * back (headers, boundary, filename, base64 → gunzip → the JSON), DKIM
 * signatures verified in-process by libopendkim against the public key
 * (DKIM_QUERY_FILE: no DNS), dot-stuffing, mailto: URIs, and the sender's
 * delivery rows with a fake mailer (sent, retried, given up, skipped). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <opendkim/dkim.h>
#include <zlib.h>

#include "core/log.h"
#include "http/https.h"
#include "report/tlsrpt.h"

#define DAY "2024-05-01"
#define T0 1714564800 /* 2024-05-01T12:00:00Z */
#define DAY_BEGIN 1714521600
#define JSON "{\"organization-name\":\"Org\",\"report-id\":\"x\"}"

/* ------------------------------------------------------------ helpers */

struct keyfx {
    char dir[64];
    char key[128];   /* private key PEM */
    char qfile[128]; /* DKIM_QUERY_FILE: "sel._domainkey.dom record" */
};

/* A key of type "RSA" (bits) or "ED25519" in dir, and its DNS record. */
static void make_key(struct keyfx *k, const char *type, int bits, const char *sel,
                     const char *dom)
{
    snprintf(k->dir, sizeof k->dir, "/tmp/mxg-dkim-XXXXXX");
    assert_non_null(mkdtemp(k->dir));
    snprintf(k->key, sizeof k->key, "%s/key.pem", k->dir);
    snprintf(k->qfile, sizeof k->qfile, "%s/keys", k->dir);
    EVP_PKEY *pk = strcmp(type, "RSA") == 0 ? EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)bits)
                                            : EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    assert_non_null(pk);
    FILE *f = fopen(k->key, "w");
    assert_non_null(f);
    assert_int_equal(PEM_write_PrivateKey(f, pk, NULL, NULL, 0, NULL, NULL), 1);
    fclose(f);
    unsigned char raw[4096], b64[6000];
    int n;
    if (strcmp(type, "RSA") == 0) {
        unsigned char *p = raw;
        n = i2d_PUBKEY(pk, &p);
    } else {
        size_t l = sizeof raw;
        assert_int_equal(EVP_PKEY_get_raw_public_key(pk, raw, &l), 1);
        n = (int)l;
    }
    assert_true(n > 0);
    EVP_EncodeBlock(b64, raw, n);
    f = fopen(k->qfile, "w");
    assert_non_null(f);
    fprintf(f, "%s._domainkey.%s v=DKIM1; k=%s; p=%s\n", sel, dom,
            strcmp(type, "RSA") == 0 ? "rsa" : "ed25519", b64);
    fclose(f);
    EVP_PKEY_free(pk);
}

static void drop_key(struct keyfx *k)
{
    unlink(k->key);
    unlink(k->qfile);
    rmdir(k->dir);
}

/* DKIM_STAT of verifying msg against the keys in qfile; *hdrs_ok: the
 * TLSRPT headers are covered by the signature. */
static DKIM_STAT dkim_check(const char *qfile, const char *msg, size_t len, int *hdrs_ok)
{
    DKIM_LIB *lib = dkim_init(NULL, NULL);
    assert_non_null(lib);
    int method = DKIM_QUERY_FILE;
    dkim_options(lib, DKIM_OP_SETOPT, DKIM_OPTS_QUERYMETHOD, &method, sizeof method);
    dkim_options(lib, DKIM_OP_SETOPT, DKIM_OPTS_QUERYINFO, (void *)qfile, strlen(qfile));
    DKIM_STAT st;
    DKIM *d = dkim_verify(lib, (const unsigned char *)"test", NULL, &st);
    assert_non_null(d);
    unsigned char *copy = malloc(len);
    memcpy(copy, msg, len);
    st = dkim_chunk(d, copy, len);
    if (st == DKIM_STAT_OK)
        st = dkim_chunk(d, NULL, 0);
    if (st == DKIM_STAT_OK)
        st = dkim_eom(d, NULL);
    if (hdrs_ok) {
        DKIM_SIGINFO *sig = dkim_getsignature(d);
        *hdrs_ok = sig && dkim_sig_hdrsigned(sig, (u_char *)"tls-report-domain") &&
                   dkim_sig_hdrsigned(sig, (u_char *)"tls-report-submitter") &&
                   dkim_sig_hdrsigned(sig, (u_char *)"subject") &&
                   dkim_sig_hdrsigned(sig, (u_char *)"from");
    }
    free(copy);
    dkim_free(d);
    dkim_close(lib);
    return st;
}

/* The value of header `name` (unfolded: CRLF + WSP → the WSP), from the
 * header block hdr (up to the empty line). */
static int header_get(const char *hdr, const char *name, char *out, size_t cap)
{
    size_t nl = strlen(name);
    const char *p = hdr;
    while (*p && !(p[0] == '\r' && p[1] == '\n')) {
        const char *eol = strstr(p, "\r\n");
        if (!eol)
            return -1;
        if (strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
            const char *v = p + nl + 1;
            while (*v == ' ')
                v++;
            size_t k = 0;
            for (;;) {
                while (v < eol && k + 1 < cap)
                    out[k++] = *v++;
                if (eol[2] == ' ' || eol[2] == '\t') { /* continuation */
                    v = eol + 2;
                    eol = strstr(v, "\r\n");
                    continue;
                }
                break;
            }
            out[k] = '\0';
            return 0;
        }
        p = eol + 2;
    }
    return -1;
}

static char *gunzip(const unsigned char *in, size_t len, size_t *outlen)
{
    size_t cap = 1 << 20;
    char *out = malloc(cap);
    z_stream z;
    memset(&z, 0, sizeof z);
    assert_int_equal(inflateInit2(&z, 15 + 16), Z_OK);
    z.next_in = (unsigned char *)in;
    z.avail_in = (unsigned)len;
    z.next_out = (unsigned char *)out;
    z.avail_out = (unsigned)cap - 1;
    assert_int_equal(inflate(&z, Z_FINISH), Z_STREAM_END);
    *outlen = z.total_out;
    out[*outlen] = '\0';
    inflateEnd(&z);
    return out;
}

/* Parses a report mail (CRLF, not stuffed) back and checks RFC 8460 §5.3;
 * returns the gunzipped JSON (malloc'd). */
static char *parse_report_mail(const char *msg, const char *domain, const char *submitter,
                               const char *id, const char *from, const char *to)
{
    char v[2048], want[1024];
    /* every line ends with CRLF, none is longer than 998 */
    for (const char *p = msg; *p;) {
        const char *lf = strchr(p, '\n');
        assert_non_null(lf);
        assert_true(lf > p || lf == p);
        assert_true(lf == msg || lf[-1] == '\r');
        assert_true(lf - p <= 999);
        p = lf + 1;
    }
    assert_int_equal(header_get(msg, "From", v, sizeof v), 0);
    assert_string_equal(v, from);
    assert_int_equal(header_get(msg, "To", v, sizeof v), 0);
    assert_string_equal(v, to);
    assert_int_equal(header_get(msg, "Subject", v, sizeof v), 0);
    snprintf(want, sizeof want, "Report Domain: %s Submitter: %s Report-ID: <%s>", domain,
             submitter, id);
    assert_string_equal(v, want);
    assert_int_equal(header_get(msg, "TLS-Report-Domain", v, sizeof v), 0);
    assert_string_equal(v, domain);
    assert_int_equal(header_get(msg, "TLS-Report-Submitter", v, sizeof v), 0);
    assert_string_equal(v, submitter);
    assert_int_equal(header_get(msg, "MIME-Version", v, sizeof v), 0);
    assert_string_equal(v, "1.0");
    assert_int_equal(header_get(msg, "Date", v, sizeof v), 0);
    assert_non_null(strstr(v, "+0000"));
    assert_int_equal(header_get(msg, "Message-ID", v, sizeof v), 0);
    assert_true(v[0] == '<' && v[strlen(v) - 1] == '>' && strchr(v, '@'));
    assert_int_equal(header_get(msg, "Content-Type", v, sizeof v), 0);
    assert_true(strncmp(v, "multipart/report;", 17) == 0);
    assert_non_null(strstr(v, "report-type=\"tlsrpt\""));
    const char *bq = strstr(v, "boundary=\"");
    assert_non_null(bq);
    char boundary[128];
    snprintf(boundary, sizeof boundary, "%.*s", (int)strcspn(bq + 10, "\""), bq + 10);

    /* the parts: --B CRLF ... --B CRLF ... --B-- */
    char delim[140], close_delim[140];
    snprintf(delim, sizeof delim, "\r\n--%s\r\n", boundary);
    snprintf(close_delim, sizeof close_delim, "\r\n--%s--\r\n", boundary);
    const char *body = strstr(msg, "\r\n\r\n");
    assert_non_null(body);
    const char *p1 = strstr(body, delim);
    assert_non_null(p1);
    p1 += strlen(delim);
    const char *p2 = strstr(p1, delim);
    assert_non_null(p2);
    const char *end = strstr(p2 + strlen(delim), close_delim);
    assert_non_null(end);
    assert_null(strstr(p2 + strlen(delim), delim)); /* exactly two parts */
    assert_int_equal(strlen(end), strlen(close_delim)); /* nothing after the close */

    assert_int_equal(header_get(p1, "Content-Type", v, sizeof v), 0);
    assert_true(strncmp(v, "text/plain", 10) == 0);
    p2 += strlen(delim);
    assert_int_equal(header_get(p2, "Content-Type", v, sizeof v), 0);
    assert_true(strncmp(v, "application/tlsrpt+gzip", 23) == 0);
    assert_int_equal(header_get(p2, "Content-Transfer-Encoding", v, sizeof v), 0);
    assert_string_equal(v, "base64");
    assert_int_equal(header_get(p2, "Content-Disposition", v, sizeof v), 0);
    char fname[700];
    assert_int_equal(mxg_rpt_mail_filename(submitter, domain, DAY, fname, sizeof fname), 0);
    snprintf(want, sizeof want, "attachment;\tfilename=\"%s\"", fname);
    assert_string_equal(v, want);

    /* base64 → gzip → JSON */
    const char *b64 = strstr(p2, "\r\n\r\n") + 4;
    size_t blen = (size_t)(end - b64);
    unsigned char *clean = malloc(blen + 1), *bin = malloc(blen + 1);
    size_t k = 0;
    for (size_t i = 0; i < blen; i++)
        if (b64[i] != '\r' && b64[i] != '\n')
            clean[k++] = (unsigned char)b64[i];
    int n = EVP_DecodeBlock(bin, clean, (int)k);
    assert_true(n > 0);
    while (k > 0 && clean[k - 1] == '=') { /* EVP_DecodeBlock keeps padding bytes */
        n--;
        k--;
    }
    size_t jlen;
    char *json = gunzip(bin, (size_t)n, &jlen);
    free(clean);
    free(bin);
    return json;
}

static void make_gz(const char *json, char **gz, size_t *gzlen)
{
    assert_int_equal(mxg_rpt_gzip(json, strlen(json), gz, gzlen), 0);
}

/* ------------------------------------------------------------ message */

static void t_filename(void **state)
{
    (void)state;
    char f[300];
    assert_int_equal(mxg_rpt_mail_filename("mx.example.org", "example.net", DAY, f, sizeof f), 0);
    assert_string_equal(f, "mx.example.org!example.net!1714521600!1714607999.json.gz");
    assert_int_equal(mxg_rpt_mail_filename("a!b", "example.net", DAY, f, sizeof f),
                     MXG_RPT_EINVAL);
    assert_int_equal(mxg_rpt_mail_filename("a", "example.net", "2024-13-01", f, sizeof f),
                     MXG_RPT_EINVAL);
    assert_int_equal(mxg_rpt_mail_filename("a", "example.net", DAY, f, 10), MXG_RPT_EINVAL);
}

static void t_build_parse(void **state)
{
    (void)state;
    char *gz;
    size_t gzlen;
    /* a report large enough for many base64 lines */
    char big[20000];
    size_t l = (size_t)snprintf(big, sizeof big, "{\"report-id\":\"r\",\"x\":\"");
    for (int i = 0; i < 3000; i++)
        l += (size_t)snprintf(big + l, sizeof big - l, "%c", 'a' + (i * 7919) % 26);
    snprintf(big + l, sizeof big - l, "\"}");
    make_gz(big, &gz, &gzlen);
    struct mxg_rpt_mail_msg m = {
        .from = "noreply-smtp-tls-reporting@mx.example.org",
        .to = "tlsrpt@example.net",
        .policy_domain = "example.net",
        .submitter = "mx.example.org",
        .org_name = "Example \xc3\xa9 Org\r\nBcc: x",
        .report_id = "2024-05-01.example.net.abc@mx.example.org",
        .day = DAY,
        .gz = gz,
        .gz_len = gzlen,
        .date = T0,
    };
    char *msg, err[200];
    size_t len;
    assert_int_equal(mxg_rpt_mail_build(&m, &msg, &len, err, sizeof err), 0);
    assert_int_equal(strlen(msg), len);
    char *json = parse_report_mail(msg, m.policy_domain, m.submitter, m.report_id, m.from, m.to);
    assert_string_equal(json, big);
    char v[300];
    assert_int_equal(header_get(msg, "Message-ID", v, sizeof v), 0);
    assert_string_equal(v, "<2024-05-01.example.net.abc@mx.example.org>");
    assert_int_equal(header_get(msg, "Date", v, sizeof v), 0);
    assert_string_equal(v, "Wed, 01 May 2024 12:00:00 +0000");
    assert_int_equal(header_get(msg, "Bcc", v, sizeof v), -1); /* org_name is not a header */
    assert_non_null(strstr(msg, "Example ?? Org??Bcc: x"));
    free(json);
    free(msg);

    /* header injection and non-ASCII are refused */
    m.to = "x@example.net\r\nBcc: y@example.com";
    assert_int_equal(mxg_rpt_mail_build(&m, &msg, &len, err, sizeof err), MXG_RPT_EINVAL);
    m.to = "tlsrpt@example.net";
    m.report_id = "a>b";
    assert_int_equal(mxg_rpt_mail_build(&m, &msg, &len, err, sizeof err), MXG_RPT_EINVAL);
    /* a report-id that is no msg-id: a Message-ID of our own */
    m.report_id = "2024-05-01 example.net";
    assert_int_equal(mxg_rpt_mail_build(&m, &msg, &len, err, sizeof err), 0);
    assert_int_equal(header_get(msg, "Message-ID", v, sizeof v), 0);
    assert_true(strncmp(v, "<tlsrpt.2024-05-01.", 19) == 0);
    assert_non_null(strstr(v, "@mx.example.org>"));
    free(msg);
    free(gz);
}

static void t_wire(void **state)
{
    (void)state;
    const char *in = ".a\r\nb\r\n..c\r\n.\r\nend";
    char *out;
    size_t len;
    assert_int_equal(mxg_rpt_mail_wire(in, strlen(in), &out, &len), 0);
    assert_string_equal(out, "..a\r\nb\r\n...c\r\n..\r\nend\r\n");
    assert_int_equal(len, strlen(out));
    free(out);
    assert_int_equal(mxg_rpt_mail_wire("x\r\n", 3, &out, &len), 0);
    assert_string_equal(out, "x\r\n");
    free(out);
}

static void t_mailto(void **state)
{
    (void)state;
    static const struct {
        const char *in, *addr, *dom;
    } ok[] = {
        {"mailto:tlsrpt@example.net", "tlsrpt@example.net", "example.net"},
        {"MAILTO:TLS.rpt+x@Example.NET.", "TLS.rpt+x@example.net", "example.net"},
        {"mailto:tls%2Drpt@example.net?subject=x", "tls-rpt@example.net", "example.net"},
        {"mailto:a%40b@example.net", NULL, NULL}, /* '@' in the local part */
        {"mailto:a@x.example,b@y.example", NULL, NULL},
        {"mailto:@example.net", NULL, NULL},
        {"mailto:a@", NULL, NULL},
        {"mailto:a@[192.0.2.1]", NULL, NULL},
        {"mailto:\"a b\"@example.net", NULL, NULL},
        {"mailto:a@exa mple.net", NULL, NULL},
        {"mailto:a@ex%ZZ.net", NULL, NULL},
        {"https://example.net/", NULL, NULL},
        {"mailto:a@b..c", NULL, NULL},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        char a[MXG_RPT_ADDR_MAX], d[MXG_RPT_DOMAIN_MAX];
        int rc = mxg_rpt_mailto_parse(ok[i].in, a, d);
        if (ok[i].addr) {
            if (rc != 0)
                fail_msg("%s: refused", ok[i].in);
            assert_string_equal(a, ok[i].addr);
            assert_string_equal(d, ok[i].dom);
        } else if (rc == 0) {
            fail_msg("%s: accepted as %s", ok[i].in, a);
        }
    }
}

/* ------------------------------------------------------------ DKIM */

static void sign_and_verify(const char *type, int bits)
{
    struct keyfx k;
    make_key(&k, type, bits, "tls2024", "mx.example.org");
    char err[300];
    struct mxg_rpt_dkim *dk = mxg_rpt_dkim_load(k.key, "tls2024", "MX.example.org.", err,
                                                sizeof err);
    if (!dk)
        fail_msg("load: %s", err);
    assert_string_equal(mxg_rpt_dkim_domain(dk), "mx.example.org");
    char *gz;
    size_t gzlen;
    make_gz(JSON, &gz, &gzlen);
    struct mxg_rpt_mail_msg m = {
        .from = "noreply-smtp-tls-reporting@mx.example.org", .to = "tlsrpt@example.net",
        .policy_domain = "example.net", .submitter = "mx.example.org", .report_id = "r@x",
        .day = DAY, .gz = gz, .gz_len = gzlen,
    };
    char *msg, *sig;
    size_t len, slen;
    assert_int_equal(mxg_rpt_mail_build(&m, &msg, &len, err, sizeof err), 0);
    if (mxg_rpt_dkim_sign(dk, msg, len, &sig, &slen, err, sizeof err) != 0)
        fail_msg("sign: %s", err);
    assert_true(strncmp(sig, "DKIM-Signature: ", 16) == 0);
    assert_int_equal(strlen(sig), slen);
    assert_memory_equal(sig + slen - len, msg, len); /* the message itself is unchanged */
    for (size_t i = 0; i < slen; i++) /* CRLF throughout, also in the folded signature */
        if (sig[i] == '\n')
            assert_int_equal(sig[i - 1], '\r');
    char v[2000];
    assert_int_equal(header_get(sig, "DKIM-Signature", v, sizeof v), 0);
    assert_non_null(strstr(v, "d=mx.example.org"));
    assert_non_null(strstr(v, "s=tls2024"));
    assert_non_null(strstr(v, "c=relaxed/relaxed"));
    assert_non_null(strstr(v, strcmp(type, "RSA") == 0 ? "a=rsa-sha256" : "a=ed25519-sha256"));
    int hdrs_ok = 0;
    DKIM_STAT st = dkim_check(k.qfile, sig, slen, &hdrs_ok);
    if (st != DKIM_STAT_OK)
        fail_msg("verify: %s", dkim_getresultstr(st));
    assert_true(hdrs_ok);
    /* the signed message parses as before */
    char *json = parse_report_mail(sig, m.policy_domain, m.submitter, m.report_id, m.from, m.to);
    assert_string_equal(json, JSON);
    free(json);
    /* tampering: the body, then a signed header */
    char *t = strdup(sig);
    char *x = strstr(t, "This is an aggregate");
    x[0] = 't';
    assert_int_not_equal(dkim_check(k.qfile, t, slen, NULL), DKIM_STAT_OK);
    free(t);
    t = strdup(sig);
    x = strstr(t, "TLS-Report-Domain: example.net");
    memcpy(x + 19, "EXAMPLE.ORG", 11);
    assert_int_not_equal(dkim_check(k.qfile, t, slen, NULL), DKIM_STAT_OK);
    free(t);
    free(sig);
    free(msg);
    free(gz);
    mxg_rpt_dkim_free(dk);
    drop_key(&k);
}

static void t_dkim_rsa(void **state)
{
    (void)state;
    sign_and_verify("RSA", 2048);
}


static void t_dkim_bad_keys(void **state)
{
    (void)state;
    char err[300];
    assert_null(mxg_rpt_dkim_load("/nonexistent/key.pem", "s", "example.org", err, sizeof err));
    assert_non_null(strstr(err, "No such file"));
    struct keyfx k;
    make_key(&k, "RSA", 512, "s", "example.org");
    assert_null(mxg_rpt_dkim_load(k.key, "s", "example.org", err, sizeof err));
    assert_non_null(strstr(err, "1024"));
    drop_key(&k);
    make_key(&k, "ED25519", 0, "s", "example.org"); /* refused (libopendkim leaks with it) */
    assert_null(mxg_rpt_dkim_load(k.key, "s", "example.org", err, sizeof err));
    assert_non_null(strstr(err, "not an RSA key"));
    FILE *f = fopen(k.key, "w");
    fputs("not a key\n", f);
    fclose(f);
    assert_null(mxg_rpt_dkim_load(k.key, "s", "example.org", err, sizeof err));
    assert_non_null(strstr(err, "not a PEM private key"));
    assert_null(mxg_rpt_dkim_load(k.key, "", "example.org", err, sizeof err));
    drop_key(&k);
}

/* ------------------------------------------------------------ sender + mailer */

struct senv {
    uv_loop_t loop;
    char dir[64], db[128];
    struct mxg_rpt *r;
    struct mxg_https *h;
    struct mxg_rpt_sender *s;
    struct keyfx k;
    struct mxg_rpt_dkim *dk;
    /* the fake mailer */
    enum mxg_rpt_mail_result next;
    int sends, cancels;
    char *wire;
    size_t wire_len;
    char from[300], to[300], domain[300];
    uv_timer_t t;
    mxg_rpt_mail_cb cb;
    void *cbarg;
    int busy;
};

static void fake_fire(uv_timer_t *t)
{
    struct senv *e = t->data;
    e->busy = 0;
    e->cb(e->cbarg, e->next, e->next == MXG_RPT_MAIL_SENT ? "250 2.0.0 ok"
                             : e->next == MXG_RPT_MAIL_PERMFAIL ? "550 5.7.1 no reports here"
                                                                : "451 4.4.1 connection refused");
}

static int fake_send(void *ctx, const struct mxg_rpt_mail_req *req, mxg_rpt_mail_cb cb, void *arg,
                     void **handle)
{
    struct senv *e = ctx;
    assert_false(e->busy);
    e->sends++;
    free(e->wire);
    e->wire = malloc(req->wire_len);
    memcpy(e->wire, req->wire, req->wire_len);
    e->wire_len = req->wire_len;
    snprintf(e->from, sizeof e->from, "%s", req->from);
    snprintf(e->to, sizeof e->to, "%s", req->to);
    snprintf(e->domain, sizeof e->domain, "%s", req->domain);
    e->cb = cb;
    e->cbarg = arg;
    e->busy = 1;
    uv_timer_start(&e->t, fake_fire, 1, 0);
    *handle = e;
    return 0;
}

static void fake_cancel(void *ctx, void *handle)
{
    struct senv *e = ctx;
    (void)handle;
    e->cancels++;
    e->busy = 0;
    uv_timer_stop(&e->t);
}

static const struct mxg_rpt_org ORG = {"Example Org", "mailto:postmaster@mx.example.org",
                                       "mx.example.org"};

static int senv_setup(void **state)
{
    struct senv *e = calloc(1, sizeof *e);
    char err[300];
    mxg_log_setup(MXG_LOG_ERR, 0);
    uv_loop_init(&e->loop);
    uv_timer_init(&e->loop, &e->t);
    e->t.data = e;
    snprintf(e->dir, sizeof e->dir, "/tmp/mxg-rptmail-XXXXXX");
    assert_non_null(mkdtemp(e->dir));
    snprintf(e->db, sizeof e->db, "%s/tlsrpt.db", e->dir);
    e->r = mxg_rpt_open(NULL, e->db, 0, err, sizeof err);
    assert_non_null(e->r);
    e->h = mxg_https_new(&e->loop, NULL, err, sizeof err);
    assert_non_null(e->h);
    e->s = mxg_rpt_sender_new(&e->loop, e->r, NULL, e->h, &ORG, 0);
    assert_non_null(e->s);
    struct mxg_rpt_send_cfg cfg = {.backoff_base_s = 60, .backoff_max_s = 3600,
                                   .max_attempts = 2};
    mxg_rpt_sender_configure(e->s, &cfg);
    make_key(&e->k, "RSA", 2048, "sel", "mx.example.org");
    e->dk = mxg_rpt_dkim_load(e->k.key, "sel", "mx.example.org", err, sizeof err);
    assert_non_null(e->dk);
    struct mxg_rpt_mailer m = {fake_send, fake_cancel, e};
    mxg_rpt_sender_set_mail(e->s, &m, e->dk, NULL);
    /* one day of counters for example.net */
    struct mxg_rpt_policy p = {MXG_RPT_STS, "example.net", "version: STSv1\nmode: enforce",
                               "mx.example.net"};
    struct mxg_rpt_result good = {.success = 1};
    struct mxg_rpt_result bad = {.result_type = MXG_RPT_R_CERT_EXPIRED,
                                 .receiving_mx_hostname = "mx.example.net"};
    for (int i = 0; i < 3; i++)
        mxg_rpt_record(e->r, &p, &good, T0);
    mxg_rpt_record(e->r, &p, &bad, T0);
    assert_int_equal(mxg_rpt_flush(e->r), 0);
    *state = e;
    return 0;
}

static void close_cb(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static int senv_teardown(void **state)
{
    struct senv *e = *state;
    mxg_rpt_sender_free(e->s);
    mxg_https_free(e->h);
    uv_walk(&e->loop, close_cb, NULL);
    uv_run(&e->loop, UV_RUN_DEFAULT);
    uv_loop_close(&e->loop);
    mxg_rpt_close(e->r);
    mxg_rpt_dkim_free(e->dk);
    drop_key(&e->k);
    char p[200];
    const char *sfx[] = {"", "-wal", "-shm", "-journal"};
    for (int i = 0; i < 4; i++) {
        snprintf(p, sizeof p, "%s%s", e->db, sfx[i]);
        unlink(p);
    }
    rmdir(e->dir);
    free(e->wire);
    free(e);
    return 0;
}

struct done {
    int n;
    struct mxg_rpt_send_stats st;
};

static void on_done(void *arg, const struct mxg_rpt_send_stats *st)
{
    struct done *d = arg;
    d->n++;
    d->st = *st;
}

static void send_once(struct senv *e, const char *rua, struct done *d)
{
    char ruas[1][MXG_RPT_RUA_MAX];
    snprintf(ruas[0], sizeof ruas[0], "%s", rua);
    memset(d, 0, sizeof *d);
    assert_int_equal(mxg_rpt_send_domain(e->s, DAY, "example.net",
                                         (const char(*)[MXG_RPT_RUA_MAX])ruas, 1, on_done, d),
                     0);
    assert_int_equal(d->n, 0);
    while (d->n == 0 && uv_run(&e->loop, UV_RUN_ONCE))
        ;
    assert_int_equal(d->n, 1);
}

struct rowq {
    const char *rua;
    struct mxg_rpt_delivery d;
    int found;
};

static void row_fn(void *arg, const struct mxg_rpt_delivery *d)
{
    struct rowq *q = arg;
    if (strcmp(d->rua, q->rua) == 0) {
        q->d = *d;
        q->found = 1;
    }
}

static struct mxg_rpt_delivery get_row(struct senv *e, const char *rua)
{
    struct rowq q = {.rua = rua};
    assert_true(mxg_rpt_delivery_list(e->r, -1, 0, row_fn, &q) >= 0);
    assert_true(q.found);
    return q.d;
}

/* Undo dot-stuffing of a wire-form message. */
static char *unstuff(const char *w, size_t len, size_t *out_len)
{
    char *o = malloc(len + 1);
    size_t k = 0;
    int bol = 1;
    for (size_t i = 0; i < len; i++) {
        if (bol && w[i] == '.') {
            bol = 0; /* the added dot (a lone "." never occurs: no final dot here) */
            continue;
        }
        o[k++] = w[i];
        bol = w[i] == '\n';
    }
    o[k] = '\0';
    *out_len = k;
    return o;
}

static void t_sender_mail_sent(void **state)
{
    struct senv *e = *state;
    e->next = MXG_RPT_MAIL_SENT;
    struct done d;
    send_once(e, "mailto:tlsrpt@Example.NET", &d);
    assert_int_equal(d.st.sent, 1);
    assert_int_equal(e->sends, 1);
    assert_string_equal(e->from, "noreply-smtp-tls-reporting@mx.example.org");
    assert_string_equal(e->to, "tlsrpt@example.net");
    assert_string_equal(e->domain, "example.net");
    struct mxg_rpt_delivery r = get_row(e, "mailto:tlsrpt@Example.NET");
    assert_int_equal(r.status, MXG_RPT_SENT);
    assert_int_equal(r.attempts, 1);
    /* what went to the mailer: stuffed wire form of a signed report mail */
    size_t len;
    char *msg = unstuff(e->wire, e->wire_len, &len);
    int hdrs_ok = 0;
    assert_int_equal(dkim_check(e->k.qfile, msg, len, &hdrs_ok), DKIM_STAT_OK);
    assert_true(hdrs_ok);
    char *json = NULL, id[MXG_RPT_REPORT_ID_MAX], err[200];
    assert_int_equal(mxg_rpt_report_json(e->r, DAY, "example.net", &ORG, &json, id, err,
                                         sizeof err),
                     0);
    char *got = parse_report_mail(msg, "example.net", "mx.example.org", id,
                                  "noreply-smtp-tls-reporting@mx.example.org",
                                  "tlsrpt@example.net");
    assert_string_equal(got, json);
    free(got);
    free(json);
    free(msg);
    /* a second call leaves the sent row alone */
    send_once(e, "mailto:tlsrpt@Example.NET", &d);
    assert_int_equal(d.st.already, 1);
    assert_int_equal(e->sends, 1);
}

static void t_sender_mail_retry_then_give_up(void **state)
{
    struct senv *e = *state;
    e->next = MXG_RPT_MAIL_TEMPFAIL;
    struct done d;
    send_once(e, "mailto:tlsrpt@example.net", &d);
    assert_int_equal(d.st.retry, 1);
    struct mxg_rpt_delivery r = get_row(e, "mailto:tlsrpt@example.net");
    assert_int_equal(r.status, MXG_RPT_PENDING);
    assert_int_equal(r.attempts, 1);
    assert_true(r.next_attempt_at > (int64_t)time(NULL) + 30);
    assert_non_null(strstr(r.last_error, "451 4.4.1"));
    send_once(e, "mailto:tlsrpt@example.net", &d);
    assert_int_equal(d.st.gave_up, 1);
    r = get_row(e, "mailto:tlsrpt@example.net");
    assert_int_equal(r.status, MXG_RPT_GAVE_UP);
    assert_int_equal(r.attempts, 2);
    assert_int_equal(e->sends, 2);
}

static void t_sender_mail_permanent(void **state)
{
    struct senv *e = *state;
    e->next = MXG_RPT_MAIL_PERMFAIL;
    struct done d;
    send_once(e, "mailto:tlsrpt@example.net", &d);
    assert_int_equal(d.st.gave_up, 1);
    struct mxg_rpt_delivery r = get_row(e, "mailto:tlsrpt@example.net");
    assert_int_equal(r.status, MXG_RPT_GAVE_UP);
    assert_int_equal(r.attempts, 1);
    assert_non_null(strstr(r.last_error, "550 5.7.1"));
}

static void t_sender_mail_skipped(void **state)
{
    struct senv *e = *state;
    struct mxg_rpt_mailer m = {fake_send, fake_cancel, e};
    mxg_rpt_sender_set_mail(e->s, &m, NULL, NULL); /* no key */
    struct done d;
    send_once(e, "mailto:tlsrpt@example.net", &d);
    assert_int_equal(d.st.skipped, 1);
    assert_int_equal(e->sends, 0);
    struct mxg_rpt_delivery r = get_row(e, "mailto:tlsrpt@example.net");
    assert_int_equal(r.status, MXG_RPT_GAVE_UP);
    assert_int_equal(r.attempts, 0);
    assert_non_null(strstr(r.last_error, "skipped: no DKIM key"));
    /* an unusable mailto: URI is skipped too, even with a key */
    mxg_rpt_sender_set_mail(e->s, &m, e->dk, "reports@mx.example.org");
    send_once(e, "mailto:a@x.example,b@y.example", &d);
    assert_int_equal(d.st.skipped, 1);
    assert_int_equal(e->sends, 0);
    /* report_from is used when set */
    e->next = MXG_RPT_MAIL_SENT;
    send_once(e, "mailto:other@example.net", &d);
    assert_int_equal(d.st.sent, 1);
    assert_string_equal(e->from, "reports@mx.example.org");
}

static void t_sender_free_cancels(void **state)
{
    struct senv *e = *state;
    e->next = MXG_RPT_MAIL_SENT;
    char ruas[1][MXG_RPT_RUA_MAX] = {"mailto:tlsrpt@example.net"};
    struct done d = {0};
    assert_int_equal(mxg_rpt_send_domain(e->s, DAY, "example.net",
                                         (const char(*)[MXG_RPT_RUA_MAX])ruas, 1, on_done, &d),
                     0);
    assert_int_equal(e->sends, 1);
    mxg_rpt_sender_free(e->s);
    e->s = NULL;
    assert_int_equal(e->cancels, 1);
    for (int i = 0; i < 20; i++)
        uv_run(&e->loop, UV_RUN_NOWAIT);
    assert_int_equal(d.n, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_filename),
        cmocka_unit_test(t_build_parse),
        cmocka_unit_test(t_wire),
        cmocka_unit_test(t_mailto),
        cmocka_unit_test(t_dkim_rsa),
        cmocka_unit_test(t_dkim_bad_keys),
        cmocka_unit_test_setup_teardown(t_sender_mail_sent, senv_setup, senv_teardown),
        cmocka_unit_test_setup_teardown(t_sender_mail_retry_then_give_up, senv_setup,
                                        senv_teardown),
        cmocka_unit_test_setup_teardown(t_sender_mail_permanent, senv_setup, senv_teardown),
        cmocka_unit_test_setup_teardown(t_sender_mail_skipped, senv_setup, senv_teardown),
        cmocka_unit_test_setup_teardown(t_sender_free_cancels, senv_setup, senv_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
