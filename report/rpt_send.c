/* report/rpt_send.c — delivery of the daily TLSRPT reports over HTTPS
 * and by mail (RFC 8460 §5.3, §5.4) and the delivery scheduler. Contract:
 * tlsrpt.h, blocks "delivery over HTTPS" and "report mail".
 *
 * Structure: a call (mxg_rpt_send_day / _domain, or a scheduler round) is
 * one `op`; an op has one `job` per (day, domain); a job has one `post` per
 * https or mailto rua still pending (a mail "post" goes through the
 * mailer, see mxg_rpt_sender_set_mail). Lookups and POSTs are asynchronous; when a
 * job's last lookup / POST is over the job is done, and when an op's last
 * job is done the op is queued on the sender's `defer` timer, whose
 * callback runs the done callback — so callbacks never run synchronously,
 * even when an op has nothing to wait for.
 *
 * RFC 8460 §3 ("reports do not report on themselves") holds by
 * construction: this file never calls mxg_rpt_record(), and its own
 * network paths are DNS (dns/dns.h) and http/https.c, neither of which
 * records TLSRPT results. Report mail goes through the SMTP path (the
 * mailer), whose contract is to record nothing for it (proxy: leg option
 * no_tlsrpt) and to use opportunistic TLS.
 *
 * Handles: three uv timers (tick, wake, defer), initialised in
 * mxg_rpt_sender_new and closed by mxg_rpt_sender_free; the struct goes
 * in the last close callback. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "../core/log.h"
#include "../core/metrics.h"
#include "../dns/dns.h"
#include "../http/https.h"
#include "rpt_int.h"

#define CT_TLSRPT_GZ "application/tlsrpt+gzip"
#define NOKEY_TEXT "no DKIM key (tlsrpt.dkim_key_file): report mail is sent signed only"
#define NOMAILER_TEXT "no mailer for report mail in this process"
#define MAIL_FROM_LOCAL "noreply-smtp-tls-reporting"
#define HOST_MAX 254
#define PATH_MAX_LEN MXG_RPT_RUA_MAX

enum op_kind { OP_DAY, OP_DOMAIN, OP_SCHED };

struct post {
    struct post *next;
    struct job *job;
    char rua[MXG_RPT_RUA_MAX];
    char host[HOST_MAX];
    int port;
    char path[PATH_MAX_LEN];
    int attempts;               /* before this attempt */
    void *dnsq;                 /* address lookup in flight */
    struct mxg_https_req *req;  /* POST in flight */
    int mail;                   /* a mailto: rua: goes through the mailer */
    char to[MXG_RPT_ADDR_MAX];  /* mail: the address */
    char to_domain[MXG_RPT_DOMAIN_MAX];
    void *mailh;                /* mail in flight (mailer handle) */
};

struct job {
    struct job *next;
    struct op *op;
    char day[MXG_RPT_DAY_LEN + 1];
    char domain[MXG_RPT_DOMAIN_MAX];
    void *txtq;                 /* TXT lookup in flight */
    void *claimq;               /* fleet claim in flight (the gate) */
    char *gz;                   /* the gzipped report, built once */
    size_t gzlen;
    char report_id[MXG_RPT_REPORT_ID_MAX];
    struct post *posts;
    int outstanding;            /* lookups + POSTs not finished */
    int txt_definite;           /* the TXT answer was definite (scheduler memory) */
};

struct op {
    struct op *next;
    struct mxg_rpt_sender *s;
    enum op_kind kind;
    mxg_rpt_send_cb cb;
    void *arg;
    struct mxg_rpt_send_stats st;
    struct job *jobs;
    int outstanding;            /* jobs not finished */
    int finished;               /* queued for the done callback */
};

/* A (day, domain) the scheduler will start at due_ms (loop time). */
struct plan {
    struct plan *next;
    char day[MXG_RPT_DAY_LEN + 1];
    char domain[MXG_RPT_DOMAIN_MAX];
    uint64_t due_ms;
};

/* A (day, domain) whose TXT answer said "nothing to send" in this process. */
struct seen {
    struct seen *next;
    char day[MXG_RPT_DAY_LEN + 1];
    char domain[MXG_RPT_DOMAIN_MAX];
    int mark;
};

struct mxg_rpt_sender {
    uv_loop_t *loop;
    struct mxg_rpt *r;
    struct mxg_dns *dns;
    struct mxg_https *https;
    char *org_name, *org_contact, *org_submitter;
    int port_override;
    struct mxg_rpt_send_cfg cfg;
    struct mxg_rpt_mailer mailer; /* send == NULL: none */
    struct mxg_rpt_dkim *dkim;    /* borrowed */
    char *mail_from;              /* NULL: the default at the submitter */
    struct mxg_metrics *metrics;  /* borrowed; NULL: not counted */
    struct mxg_rpt_gate gate;     /* claim == NULL: no fleet, this instance sends alone */
    struct mxg_rpt_resolver res;
    struct op *ops;
    struct plan *plans;
    struct seen *seen;
    uv_timer_t tick, wake, defer;
    uint64_t max_delay_ms;
    int started;
    int open_handles;
    int in_cb;                  /* a done callback is running */
    int freeing;
};

/* ------------------------------------------------------------------------ */
/* Default resolver: dns/dns.h                                              */

static int dns_txt(void *ctx, const char *name,
                   void (*cb)(void *arg, const struct mxg_txt_result *res), void *arg, void **q)
{
    struct mxg_dns_query *dq = NULL;
    int rc = mxg_dns_lookup_txt(ctx, name, cb, arg, &dq);
    *q = dq;
    return rc;
}

static int dns_addr(void *ctx, const char *host,
                    void (*cb)(void *arg, const struct mxg_addr_result *res), void *arg, void **q)
{
    struct mxg_dns_query *dq = NULL;
    int rc = mxg_dns_lookup_addr(ctx, host, cb, arg, &dq);
    *q = dq;
    return rc;
}

static void dns_cancel(void *ctx, void *q)
{
    (void)ctx;
    mxg_dns_cancel(q);
}

/* ------------------------------------------------------------------------ */
/* Small helpers                                                            */

static int64_t now_s(void)
{
    return (int64_t)time(NULL);
}

static void today(char out[MXG_RPT_DAY_LEN + 1])
{
    if (rpt_day_of(now_s(), out) != 0)
        snprintf(out, MXG_RPT_DAY_LEN + 1, "9999-12-31");
}

static uint64_t rand_upto(uint64_t max)
{
    if (max == 0)
        return 0;
    uint64_t v = 0;
    if (uv_random(NULL, NULL, &v, sizeof v, 0, NULL) != 0)
        v = (uint64_t)rand();
    return max == UINT64_MAX ? v : v % (max + 1);
}

/* Backoff after `attempts` (>= 1) failed attempts, in seconds. */
static int64_t backoff_s(const struct mxg_rpt_send_cfg *c, int attempts)
{
    uint64_t d = c->backoff_base_s;
    for (int i = 1; i < attempts && d < c->backoff_max_s; i++)
        d *= 2;
    if (d > c->backoff_max_s)
        d = c->backoff_max_s;
    return (int64_t)d;
}

/* Contract: splits an "https://HOST[:PORT][/PATH]" rua (scheme
 * case-insensitive; no userinfo, no IP literal in brackets) into host
 * (lower-case), port (443 when absent) and path ("/" when absent; a
 * fragment is dropped). 0, or -1 if unusable. */
static int parse_https(const char *rua, char host[HOST_MAX], int *port,
                       char path[PATH_MAX_LEN])
{
    if (strncasecmp(rua, "https://", 8) != 0)
        return -1;
    const char *a = rua + 8;
    size_t alen = strcspn(a, "/?#");
    const char *colon = memchr(a, ':', alen);
    size_t hlen = colon ? (size_t)(colon - a) : alen;
    if (hlen == 0 || hlen >= HOST_MAX)
        return -1;
    for (size_t i = 0; i < hlen; i++) {
        unsigned char c = (unsigned char)a[i];
        if (!(isalnum(c) || c == '-' || c == '.' || c == '_'))
            return -1;
        host[i] = (char)tolower(c);
    }
    host[hlen] = '\0';
    if (hlen > 1 && host[hlen - 1] == '.')
        host[hlen - 1] = '\0';
    *port = 443;
    if (colon) {
        const char *p = colon + 1;
        size_t plen = alen - hlen - 1;
        if (plen == 0 || plen > 5)
            return -1;
        long v = 0;
        for (size_t i = 0; i < plen; i++) {
            if (!isdigit((unsigned char)p[i]))
                return -1;
            v = v * 10 + (p[i] - '0');
        }
        if (v < 1 || v > 65535)
            return -1;
        *port = (int)v;
    }
    const char *rest = a + alen;
    size_t rlen = strcspn(rest, "#");
    if (rlen == 0) {
        snprintf(path, PATH_MAX_LEN, "/");
    } else {
        if (rlen + 2 > PATH_MAX_LEN)
            return -1;
        /* "?q" without a path becomes "/?q" */
        snprintf(path, PATH_MAX_LEN, "%s%.*s", rest[0] == '/' ? "" : "/", (int)rlen, rest);
    }
    for (const unsigned char *p = (const unsigned char *)path; *p; p++)
        if (*p <= 0x20 || *p >= 0x7f)
            return -1;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Completion                                                               */

static void post_free(struct mxg_rpt_sender *s, struct post *p)
{
    if (p->dnsq)
        s->res.cancel(s->res.ctx, p->dnsq);
    if (p->req)
        mxg_https_cancel(p->req);
    if (p->mailh)
        s->mailer.cancel(s->mailer.ctx, p->mailh);
    free(p);
}

static void job_free(struct mxg_rpt_sender *s, struct job *j)
{
    if (j->txtq)
        s->res.cancel(s->res.ctx, j->txtq);
    if (j->claimq)
        s->gate.cancel(s->gate.ctx, j->claimq);
    while (j->posts) {
        struct post *p = j->posts;
        j->posts = p->next;
        post_free(s, p);
    }
    free(j->gz);
    free(j);
}

static void op_unlink(struct mxg_rpt_sender *s, struct op *o)
{
    for (struct op **pp = &s->ops; *pp; pp = &(*pp)->next)
        if (*pp == o) {
            *pp = o->next;
            return;
        }
}

static void op_free(struct mxg_rpt_sender *s, struct op *o)
{
    while (o->jobs) {
        struct job *j = o->jobs;
        o->jobs = j->next;
        job_free(s, j);
    }
    free(o);
}

static void on_defer(uv_timer_t *t);

/* Queues the op's done callback (the defer timer, 0 ms: from the loop). */
static void op_finish(struct op *o)
{
    o->finished = 1;
    if (!o->s->freeing)
        uv_timer_start(&o->s->defer, on_defer, 0, 0);
}

static void seen_add(struct mxg_rpt_sender *s, const char *day, const char *domain);

static void job_done(struct job *j)
{
    struct op *o = j->op;
    if (o->kind == OP_SCHED && j->txt_definite)
        seen_add(o->s, j->day, j->domain);
    if (--o->outstanding == 0)
        op_finish(o);
}

static void job_step_done(struct job *j)
{
    if (--j->outstanding == 0)
        job_done(j);
}

/* A delivery row for (j's day and domain, rua): zeroed, keyed, attempts set. */
static void row_init(struct mxg_rpt_delivery *d, const struct job *j, const char *rua,
                     int attempts)
{
    memset(d, 0, sizeof *d);
    snprintf(d->day, sizeof d->day, "%s", j->day);
    snprintf(d->domain, sizeof d->domain, "%s", j->domain);
    snprintf(d->rua, sizeof d->rua, "%s", rua);
    d->attempts = attempts;
}

/* Records the outcome of one POST or mail attempt in the row and the
 * stats; permanent: give up now (a 5xx reply to report mail). */
static void post_result(struct post *p, int ok, int permanent, const char *why)
{
    struct job *j = p->job;
    struct op *o = j->op;
    struct mxg_rpt_sender *s = o->s;
    struct mxg_rpt_delivery d;
    row_init(&d, j, p->rua, p->attempts + 1);
    if (ok) {
        d.status = MXG_RPT_SENT;
        d.next_attempt_at = 0;
        o->st.sent++;
        mxg_metrics_inc(s->metrics, MXG_M_REPORTS_SENT, "sent");
        LOG_I(RPT_COMP, "report %s %s sent to %s (attempt %d)", j->day, j->domain, p->rua,
              d.attempts);
    } else if (permanent || d.attempts >= s->cfg.max_attempts) {
        d.status = MXG_RPT_GAVE_UP;
        d.next_attempt_at = 0;
        snprintf(d.last_error, sizeof d.last_error, "%s", why);
        o->st.gave_up++;
        mxg_metrics_inc(s->metrics, MXG_M_REPORTS_SENT, "gave_up");
        LOG_W(RPT_COMP, "report %s %s to %s: %s; giving up after %d attempt%s%s", j->day,
              j->domain, p->rua, why, d.attempts, d.attempts == 1 ? "" : "s",
              permanent && d.attempts < s->cfg.max_attempts ? " (permanent failure)" : "");
    } else {
        d.status = MXG_RPT_PENDING;
        d.next_attempt_at = now_s() + backoff_s(&s->cfg, d.attempts);
        snprintf(d.last_error, sizeof d.last_error, "%s", why);
        o->st.retry++;
        mxg_metrics_inc(s->metrics, MXG_M_REPORTS_SENT, "retry");
        LOG_N(RPT_COMP, "report %s %s to %s: %s; attempt %d failed, next in %llds", j->day,
              j->domain, p->rua, why, d.attempts,
              (long long)(d.next_attempt_at - now_s()));
    }
    int rc = mxg_rpt_delivery_update(s->r, &d);
    if (rc != 0) {
        o->st.errors++;
        LOG_E(RPT_COMP, "report %s %s to %s: delivery row not updated: %s", j->day, j->domain,
              p->rua, mxg_rpt_strerror(rc));
    }
    if (s->gate.claim && d.status != MXG_RPT_PENDING) /* the fleet sends it no more */
        s->gate.done(s->gate.ctx, j->day, j->domain, p->rua, d.status == MXG_RPT_GAVE_UP);
}

static void on_post(void *arg, const struct mxg_https_result *res)
{
    struct post *p = arg;
    p->req = NULL; /* freed by https when this returns */
    char why[300];
    if (res->err == MXG_HTTPS_OK)
        why[0] = '\0';
    else if (res->err == MXG_HTTPS_ERR_STATUS)
        snprintf(why, sizeof why, "HTTP %ld", res->status);
    else
        snprintf(why, sizeof why, "%s: %s", mxg_https_err_name(res->err), res->why);
    post_result(p, res->err == MXG_HTTPS_OK, 0, why);
    job_step_done(p->job);
}

static void on_addr(void *arg, const struct mxg_addr_result *res)
{
    struct post *p = arg;
    struct job *j = p->job;
    struct mxg_rpt_sender *s = j->op->s;
    p->dnsq = NULL;
    if (res->status != MXG_DNS_OK || res->n < 1) {
        char why[300];
        snprintf(why, sizeof why, "DNS %s: %s %s", p->host, mxg_dns_status_name(res->status),
                 res->why);
        post_result(p, 0, 0, why);
        job_step_done(j);
        return;
    }
    struct mxg_https_opts ho = {
        .host = p->host,
        .port = p->port,
        .path = p->path,
        .addrs = res->addr,
        .n_addrs = res->n,
        .connect_timeout_ms = s->cfg.connect_timeout_ms,
        .total_timeout_ms = s->cfg.total_timeout_ms,
        .max_body = 0, /* the module's small POST default; the body is ignored */
        .require_ctype = NULL,
    };
    if (mxg_https_post(s->https, &ho, CT_TLSRPT_GZ, j->gz, j->gzlen, on_post, p, &p->req) != 0) {
        post_result(p, 0, 0, "HTTPS request could not be started");
        job_step_done(j);
    }
}

/* ------------------------------------------------------------------------ */
/* Report mail                                                              */

static void on_mail(void *arg, enum mxg_rpt_mail_result res, const char *why)
{
    struct post *p = arg;
    p->mailh = NULL;
    post_result(p, res == MXG_RPT_MAIL_SENT, res == MXG_RPT_MAIL_PERMFAIL, why ? why : "");
    job_step_done(p->job);
}

/* Builds, signs and dot-stuffs the report mail for p's address and hands
 * it to the mailer. 0: on_mail will run; -1: the attempt failed now (the
 * row is updated, on_mail will not run). */
static int mail_start(struct post *p)
{
    struct job *j = p->job;
    struct mxg_rpt_sender *s = j->op->s;
    char from[MXG_RPT_ADDR_MAX + 8], err[300] = "";
    if (s->mail_from)
        snprintf(from, sizeof from, "%s", s->mail_from);
    else
        snprintf(from, sizeof from, MAIL_FROM_LOCAL "@%s", s->org_submitter);
    struct mxg_rpt_mail_msg m = {
        .from = from,
        .to = p->to,
        .policy_domain = j->domain,
        .submitter = s->org_submitter,
        .org_name = s->org_name,
        .report_id = j->report_id,
        .day = j->day,
        .gz = j->gz,
        .gz_len = j->gzlen,
    };
    char *msg = NULL, *sig = NULL, *wire = NULL;
    size_t mlen = 0, slen = 0, wlen = 0;
    int rc = mxg_rpt_mail_build(&m, &msg, &mlen, err, sizeof err);
    if (rc == 0)
        rc = mxg_rpt_dkim_sign(s->dkim, msg, mlen, &sig, &slen, err, sizeof err);
    if (rc == 0 && mxg_rpt_mail_wire(sig, slen, &wire, &wlen) != 0) {
        rc = MXG_RPT_ENOMEM;
        snprintf(err, sizeof err, "out of memory");
    }
    free(msg);
    free(sig);
    if (rc != 0) {
        LOG_E(RPT_COMP, "report %s %s to %s: mail not built: %s", j->day, j->domain, p->rua, err);
        post_result(p, 0, 0, err);
        return -1;
    }
    char id[MXG_RPT_DAY_LEN + MXG_RPT_DOMAIN_MAX + 16];
    snprintf(id, sizeof id, "tlsrpt-%s-%s", j->day, j->domain);
    struct mxg_rpt_mail_req req = {
        .id = id, .from = from, .to = p->to, .domain = p->to_domain, .wire = wire,
        .wire_len = wlen,
    };
    rc = s->mailer.send(s->mailer.ctx, &req, on_mail, p, &p->mailh);
    free(wire);
    if (rc != 0) {
        p->mailh = NULL;
        post_result(p, 0, 0, "report mail could not be started");
        return -1;
    }
    LOG_D(RPT_COMP, "report %s %s: mail to %s from %s started (%zu octets)", j->day, j->domain,
          p->to, from, wlen);
    return 0;
}

void mxg_rpt_sender_set_metrics(struct mxg_rpt_sender *s, struct mxg_metrics *m)
{
    s->metrics = m;
}

void mxg_rpt_sender_set_mail(struct mxg_rpt_sender *s, const struct mxg_rpt_mailer *m,
                             struct mxg_rpt_dkim *dk, const char *from)
{
    if (!s)
        return;
    memset(&s->mailer, 0, sizeof s->mailer);
    if (m && m->send && m->cancel)
        s->mailer = *m;
    s->dkim = dk;
    free(s->mail_from);
    s->mail_from = from && from[0] ? strdup(from) : NULL;
}

/* ------------------------------------------------------------------------ */
/* Per (day, domain) work                                                   */

struct rowfind {
    const char *day, *domain;
    const char (*ruas)[MXG_RPT_RUA_MAX];
    int n;
    int *status, *attempts; /* per rua; status -1 = no row */
};

static void rowfind_fn(void *arg, const struct mxg_rpt_delivery *d)
{
    struct rowfind *f = arg;
    if (strcmp(d->day, f->day) != 0 || strcmp(d->domain, f->domain) != 0)
        return;
    for (int i = 0; i < f->n; i++)
        if (strcmp(d->rua, f->ruas[i]) == 0) {
            f->status[i] = (int)d->status;
            f->attempts[i] = d->attempts;
        }
}

static void set_row(struct mxg_rpt_sender *s, const struct job *j, const char *rua, int status,
                    int attempts, const char *err)
{
    struct mxg_rpt_delivery d;
    row_init(&d, j, rua, attempts);
    d.status = (enum mxg_rpt_dstatus)status;
    snprintf(d.last_error, sizeof d.last_error, "%s", err);
    if (mxg_rpt_delivery_update(s->r, &d) != 0)
        j->op->st.errors++;
}

static void job_start(struct job *j, int rc, char *json, const char *err);
static void job_claim(struct job *j);

/* Registers the rows of ruas[0..n) and starts a POST for each pending
 * https one. Synchronous part only; the job is done when the last POST
 * is over (or now, through the caller's job_step_done). */
static void job_ruas(struct job *j, const char ruas[][MXG_RPT_RUA_MAX], int n)
{
    struct op *o = j->op;
    struct mxg_rpt_sender *s = o->s;
    int64_t now = now_s();
    int *status = calloc((size_t)(n > 0 ? n : 1), 2 * sizeof(int));
    if (status == NULL) {
        o->st.errors++;
        return;
    }
    int *attempts = status + n;
    for (int i = 0; i < n; i++) {
        status[i] = -1;
        if (mxg_rpt_delivery_add(s->r, j->day, j->domain, ruas[i], now) < 0)
            o->st.errors++;
    }
    struct rowfind f = { j->day, j->domain, ruas, n, status, attempts };
    if (mxg_rpt_delivery_list(s->r, -1, 0, rowfind_fn, &f) < 0)
        o->st.errors++;

    for (int i = 0; i < n; i++) {
        const char *rua = ruas[i];
        if (status[i] < 0) {
            /* add failed (bad rua / database): nothing to track it by */
            continue;
        }
        if (status[i] != MXG_RPT_PENDING) {
            o->st.already++;
            continue;
        }
        struct post *p = calloc(1, sizeof *p);
        if (p == NULL) {
            o->st.errors++;
            continue;
        }
        if (strncasecmp(rua, "mailto:", 7) == 0) {
            const char *skip = NULL;
            if (mxg_rpt_mailto_parse(rua, p->to, p->to_domain) != 0)
                skip = "unusable mailto URI";
            else if (!s->dkim)
                skip = NOKEY_TEXT;
            else if (!s->mailer.send)
                skip = NOMAILER_TEXT;
            else if (!s->org_submitter)
                skip = "no submitter domain for the report mail";
            if (skip) {
                LOG_N(RPT_COMP, "report %s %s to %s: %s; skipped", j->day, j->domain, rua, skip);
                char e[300];
                snprintf(e, sizeof e, "skipped: %s", skip);
                set_row(s, j, rua, MXG_RPT_GAVE_UP, attempts[i], e);
                o->st.skipped++;
                free(p);
                continue;
            }
            p->mail = 1;
        } else if (parse_https(rua, p->host, &p->port, p->path) != 0) {
            LOG_N(RPT_COMP, "report %s %s: unusable rua %s; skipped", j->day, j->domain, rua);
            set_row(s, j, rua, MXG_RPT_GAVE_UP, attempts[i], "skipped: unusable https URL");
            o->st.skipped++;
            free(p);
            continue;
        }
        if (s->port_override > 0)
            p->port = s->port_override;
        snprintf(p->rua, sizeof p->rua, "%s", rua);
        p->attempts = attempts[i];
        p->job = j;
        p->next = j->posts;
        j->posts = p;
    }
    free(status);
    if (j->posts == NULL)
        return;
    if (s->gate.claim) {
        job_claim(j);
        return;
    }
    char err[256] = "", *json = NULL;
    struct mxg_rpt_org org = { s->org_name, s->org_contact, s->org_submitter };
    int rc = mxg_rpt_report_json(s->r, j->day, j->domain, &org, &json, j->report_id, err,
                                 sizeof err);
    job_start(j, rc, json, err);
}

/* Gzips the built report (rc 0: json, freed here) and starts every post of the job; a
 * report that was not built (rc < 0, err) leaves the rows pending (no attempt counted). */
static void job_start(struct job *j, int rc, char *json, const char *err)
{
    struct op *o = j->op;
    struct mxg_rpt_sender *s = o->s;
    /* One report, one gzip, for every rua. */
    if (rc == 0) {
        rc = mxg_rpt_gzip(json, strlen(json), &j->gz, &j->gzlen);
        free(json);
    }
    if (rc != 0) {
        mxg_log(rc == MXG_RPT_ENODATA ? MXG_LOG_NOTICE : MXG_LOG_ERR, RPT_COMP,
                "report %s %s: not built: %s %s", j->day, j->domain, mxg_rpt_strerror(rc), err);
        /* rows stay pending (no attempt counted): tried again later */
        o->st.errors++;
        while (j->posts) {
            struct post *p = j->posts;
            j->posts = p->next;
            free(p);
        }
        return;
    }
    for (struct post *p = j->posts; p; p = p->next) {
        j->outstanding++;
        if (p->mail) {
            if (mail_start(p) != 0)
                j->outstanding--;
            continue;
        }
        if (s->res.addr(s->res.ctx, p->host, on_addr, p, &p->dnsq) != 0) {
            p->dnsq = NULL;
            post_result(p, 0, 0, "DNS lookup could not be started");
            j->outstanding--;
        }
    }
}

/* ------------------------------------------------------------------------ */
/* Fleet gate                                                               */

/* Leaves p's row pending for the fleet: looked at again after delay_s, no attempt counted. */
static void post_defer(struct post *p, int64_t delay_s, const char *why)
{
    struct job *j = p->job;
    struct mxg_rpt_delivery d;
    row_init(&d, j, p->rua, p->attempts);
    d.status = MXG_RPT_PENDING;
    d.next_attempt_at = now_s() + delay_s;
    snprintf(d.last_error, sizeof d.last_error, "%s", why);
    if (mxg_rpt_delivery_update(j->op->s->r, &d) != 0)
        j->op->st.errors++;
    j->op->st.fleet++;
}

/* The fleet's answer: keep the posts this instance sends, settle or defer the others, and
 * send the fleet's report under the fleet's report-id. */
static void on_claim(void *arg, const struct mxg_rpt_claim *c)
{
    struct job *j = arg;
    struct op *o = j->op;
    struct mxg_rpt_sender *s = o->s;
    struct post **pp = &j->posts;
    int i = 0;
    j->claimq = NULL;
    if (!c->ok)
        LOG_N(RPT_COMP, "report %s %s: shared state unreachable (%s): not sent, looked at "
                        "again in %llus (a fleet sends each report once)",
              j->day, j->domain, c->why, (unsigned long long)s->gate.retry_s);
    while (*pp) {
        struct post *p = *pp;
        enum mxg_rpt_claim_res res = c->ok && i < c->n ? c->res[i] : MXG_RPT_CLAIM_HELD;
        int64_t left = c->ok && i < c->n ? c->lease_left[i] + 1 : (int64_t)s->gate.retry_s;
        i++;
        if (res == MXG_RPT_CLAIM_MINE) {
            pp = &p->next;
            continue;
        }
        if (res == MXG_RPT_CLAIM_HELD) {
            post_defer(p, left, c->ok ? "held by another instance of the fleet"
                                      : "shared state unreachable");
            if (c->ok)
                LOG_I(RPT_COMP, "report %s %s to %s: another instance of the fleet sends it "
                                "(its lease runs %llds more)",
                      j->day, j->domain, p->rua, (long long)(left - 1));
        } else {
            int sent = res == MXG_RPT_CLAIM_SENT;
            set_row(s, j, p->rua, sent ? MXG_RPT_SENT : MXG_RPT_GAVE_UP, p->attempts,
                    sent ? "sent by the fleet" : "given up by the fleet");
            LOG_I(RPT_COMP, "report %s %s to %s: %s by another instance of the fleet", j->day,
                  j->domain, p->rua, sent ? "sent" : "given up");
            o->st.fleet++;
        }
        *pp = p->next;
        free(p);
    }
    if (j->posts) {
        char err[256] = "", *json = NULL;
        struct mxg_rpt_org org = { s->org_name, s->org_contact, s->org_submitter };
        int rc = rpt_fleet_report_json(s->r, c->payload, j->day, j->domain, &org, c->report_id,
                                       &json, err, sizeof err);
        snprintf(j->report_id, sizeof j->report_id, "%s", c->report_id);
        if (rc == 0)
            LOG_I(RPT_COMP, "report %s %s: claimed in the fleet, report-id %s", j->day,
                  j->domain, j->report_id);
        job_start(j, rc, json, err);
    }
    job_step_done(j);
}

/* Asks the fleet for the job's posts (counts as one outstanding step of the job). */
static void job_claim(struct job *j)
{
    struct mxg_rpt_sender *s = j->op->s;
    const char *ruas[16];
    const char **list = ruas;
    char id[MXG_RPT_REPORT_ID_MAX], err[256] = "";
    sqlite3 *db = rpt_db(s->r);
    int n = 0, cap = 16;
    for (struct post *p = j->posts; p; p = p->next)
        n++;
    if (n > cap && !(list = malloc((size_t)n * sizeof *list)))
        list = NULL;
    if (!list || !db ||
        rpt_report_id(db, j->day, j->domain, s->org_submitter, id, err, sizeof err) != 0) {
        LOG_E(RPT_COMP, "report %s %s: no report-id to propose to the fleet: %s", j->day,
              j->domain, err);
        j->op->st.errors++;
        while (j->posts) { /* rows stay pending: tried again later */
            struct post *p = j->posts;
            j->posts = p->next;
            free(p);
        }
        if (list != ruas)
            free((void *)list);
        return;
    }
    n = 0;
    for (struct post *p = j->posts; p; p = p->next)
        list[n++] = p->rua;
    j->outstanding++;
    if (s->gate.claim(s->gate.ctx, j->day, j->domain, list, n, id, on_claim, j, &j->claimq) !=
        0) {
        struct mxg_rpt_claim c = { 0, "the claim could not be started", NULL, NULL, NULL, NULL,
                                   0 };
        j->claimq = NULL;
        on_claim(j, &c); /* defers every post; ends the step */
    }
    if (list != ruas)
        free((void *)list);
}

void mxg_rpt_sender_set_gate(struct mxg_rpt_sender *s, const struct mxg_rpt_gate *g)
{
    if (!s)
        return;
    memset(&s->gate, 0, sizeof s->gate);
    if (g && g->claim && g->cancel && g->done)
        s->gate = *g;
    if (s->gate.claim && s->gate.retry_s == 0)
        s->gate.retry_s = 60;
}

static void on_txt(void *arg, const struct mxg_txt_result *res)
{
    struct job *j = arg;
    struct op *o = j->op;
    j->txtq = NULL;
    if (res->status == MXG_DNS_NODATA || res->status == MXG_DNS_NXDOMAIN) {
        LOG_D(RPT_COMP, "report %s %s: no _smtp._tls TXT (%s): nothing to send", j->day,
              j->domain, mxg_dns_status_name(res->status));
        o->st.no_txt++;
        j->txt_definite = 1;
    } else if (res->status != MXG_DNS_OK) {
        LOG_W(RPT_COMP, "report %s %s: _smtp._tls TXT lookup: %s %s", j->day, j->domain,
              mxg_dns_status_name(res->status), res->why);
        o->st.dns_fail++;
    } else {
        /* the whole RRset (dns.h: never cut), so "exactly one TLSRPT
         * record" (RFC 8460 §3) is judged on every record */
        char ruas[16][MXG_RPT_RUA_MAX];
        char why[256] = "";
        int k = mxg_rpt_txt_select((const char *const *)res->txt, res->len, res->n, ruas, 16, why,
                                   sizeof why);
        j->txt_definite = 1;
        if (k == 0) {
            LOG_D(RPT_COMP, "report %s %s: no TLSRPT record: nothing to send", j->day,
                  j->domain);
            o->st.no_txt++;
        } else if (k < 0) {
            LOG_N(RPT_COMP, "report %s %s: invalid _smtp._tls record: %s", j->day, j->domain,
                  why);
            o->st.no_txt++;
        } else {
            if (why[0])
                LOG_I(RPT_COMP, "report %s %s: _smtp._tls: %s", j->day, j->domain, why);
            j->txt_definite = 0; /* rows exist now: the table remembers */
            job_ruas(j, (const char(*)[MXG_RPT_RUA_MAX])ruas, k);
        }
    }
    job_step_done(j);
}

static struct job *job_new(struct op *o, const char *day, const char *domain)
{
    struct job *j = calloc(1, sizeof *j);
    if (j == NULL)
        return NULL;
    j->op = o;
    snprintf(j->day, sizeof j->day, "%s", day);
    if (rpt_domain_norm(domain, j->domain) != 0) {
        free(j);
        return NULL;
    }
    j->next = o->jobs;
    o->jobs = j;
    o->outstanding++;
    o->st.domains++;
    return j;
}

/* Starts the TXT lookup of a job (counts as one outstanding step). */
static void job_txt(struct job *j)
{
    struct mxg_rpt_sender *s = j->op->s;
    char name[MXG_RPT_DOMAIN_MAX + 16];
    snprintf(name, sizeof name, "_smtp._tls.%s", j->domain);
    j->outstanding++;
    if (s->res.txt(s->res.ctx, name, on_txt, j, &j->txtq) != 0) {
        j->txtq = NULL;
        LOG_W(RPT_COMP, "report %s %s: TXT lookup could not be started", j->day, j->domain);
        j->op->st.dns_fail++;
        job_step_done(j);
    }
}

static struct op *op_new(struct mxg_rpt_sender *s, enum op_kind kind, mxg_rpt_send_cb cb,
                         void *arg)
{
    struct op *o = calloc(1, sizeof *o);
    if (o == NULL)
        return NULL;
    o->s = s;
    o->kind = kind;
    o->cb = cb;
    o->arg = arg;
    o->outstanding = 1; /* held while jobs are being set up */
    struct op **pp = &s->ops; /* appended: done callbacks run in call order */
    while (*pp)
        pp = &(*pp)->next;
    *pp = o;
    return o;
}

/* Releases the set-up hold: the op finishes now if nothing is pending. */
static void op_release(struct op *o)
{
    if (--o->outstanding == 0)
        op_finish(o);
}

/* ------------------------------------------------------------------------ */
/* Public calls                                                             */

int mxg_rpt_send_domain(struct mxg_rpt_sender *s, const char *day, const char *domain,
                        const char ruas[][MXG_RPT_RUA_MAX], int n, mxg_rpt_send_cb done,
                        void *arg)
{
    char dom[MXG_RPT_DOMAIN_MAX];
    if (!s || s->freeing || !done || !day || !rpt_day_ok(day) || !domain ||
        rpt_domain_norm(domain, dom) != 0 || n < 0 || (n > 0 && !ruas))
        return MXG_RPT_EINVAL;
    struct op *o = op_new(s, OP_DOMAIN, done, arg);
    if (o == NULL)
        return MXG_RPT_ENOMEM;
    struct job *j = job_new(o, day, dom);
    if (j == NULL) {
        op_unlink(s, o);
        op_free(s, o);
        return MXG_RPT_ENOMEM;
    }
    j->outstanding++; /* set-up hold */
    job_ruas(j, ruas, n);
    job_step_done(j);
    op_release(o);
    return 0;
}

struct daylist {
    const char *day;
    struct op *o;
    int nomem;
};

static void day_fn(void *arg, const char *day, const char *domain)
{
    struct daylist *dl = arg;
    if (strcmp(day, dl->day) != 0)
        return;
    struct job *j = job_new(dl->o, day, domain);
    if (j == NULL)
        dl->nomem = 1;
}

int mxg_rpt_send_day(struct mxg_rpt_sender *s, const char *day, mxg_rpt_send_cb done, void *arg)
{
    if (!s || s->freeing || !done || !day || !rpt_day_ok(day))
        return MXG_RPT_EINVAL;
    struct op *o = op_new(s, OP_DAY, done, arg);
    if (o == NULL)
        return MXG_RPT_ENOMEM;
    struct daylist dl = { day, o, 0 };
    int rc = mxg_rpt_days(s->r, day_fn, &dl);
    if (rc < 0 || dl.nomem) {
        op_unlink(s, o);
        op_free(s, o);
        return rc < 0 ? rc : MXG_RPT_ENOMEM;
    }
    for (struct job *j = o->jobs; j; j = j->next)
        job_txt(j);
    op_release(o);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Scheduler                                                                */

static void seen_add(struct mxg_rpt_sender *s, const char *day, const char *domain)
{
    for (struct seen *e = s->seen; e; e = e->next)
        if (strcmp(e->day, day) == 0 && strcmp(e->domain, domain) == 0)
            return;
    struct seen *e = calloc(1, sizeof *e);
    if (e == NULL)
        return; /* looked up again next time: harmless */
    snprintf(e->day, sizeof e->day, "%s", day);
    snprintf(e->domain, sizeof e->domain, "%s", domain);
    e->next = s->seen;
    s->seen = e;
}

static int seen_has(struct mxg_rpt_sender *s, const char *day, const char *domain, int mark)
{
    for (struct seen *e = s->seen; e; e = e->next)
        if (strcmp(e->day, day) == 0 && strcmp(e->domain, domain) == 0) {
            if (mark)
                e->mark = 1;
            return 1;
        }
    return 0;
}

/* 1 if a job of a live op works on (day, domain) — and, with rua, has a
 * POST for it. */
static int busy(struct mxg_rpt_sender *s, const char *day, const char *domain, const char *rua)
{
    for (struct op *o = s->ops; o; o = o->next)
        for (struct job *j = o->jobs; j; j = j->next) {
            if (o->finished || strcmp(j->day, day) != 0 || strcmp(j->domain, domain) != 0)
                continue;
            if (rua == NULL)
                return 1;
            if (j->txtq)
                return 1; /* its rows may be about to be sent */
            for (struct post *p = j->posts; p; p = p->next)
                if (strcmp(p->rua, rua) == 0)
                    return 1;
        }
    return 0;
}

static int planned(struct mxg_rpt_sender *s, const char *day, const char *domain)
{
    for (struct plan *p = s->plans; p; p = p->next)
        if (strcmp(p->day, day) == 0 && strcmp(p->domain, domain) == 0)
            return 1;
    return 0;
}

struct keyset {
    char (*k)[MXG_RPT_DAY_LEN + 1 + MXG_RPT_DOMAIN_MAX];
    int n, cap, nomem;
};

static void keyset_add(struct keyset *ks, const char *day, const char *domain)
{
    if (ks->n == ks->cap) {
        int cap = ks->cap ? ks->cap * 2 : 32;
        void *k = realloc(ks->k, (size_t)cap * sizeof ks->k[0]);
        if (k == NULL) {
            ks->nomem = 1;
            return;
        }
        ks->k = k;
        ks->cap = cap;
    }
    snprintf(ks->k[ks->n++], sizeof ks->k[0], "%s %s", day, domain);
}

static int keyset_has(const struct keyset *ks, const char *day, const char *domain)
{
    char key[sizeof ks->k[0]];
    snprintf(key, sizeof key, "%s %s", day, domain);
    for (int i = 0; i < ks->n; i++)
        if (strcmp(ks->k[i], key) == 0)
            return 1;
    return 0;
}

static void rows_fn(void *arg, const struct mxg_rpt_delivery *d)
{
    keyset_add(arg, d->day, d->domain);
}

struct tickctx {
    struct mxg_rpt_sender *s;
    char today[MXG_RPT_DAY_LEN + 1];
    struct keyset rows, days;
    struct op *retry; /* op of this round's retries, created on demand */
};

static void days_fn(void *arg, const char *day, const char *domain)
{
    struct tickctx *t = arg;
    if (strcmp(day, t->today) < 0)
        keyset_add(&t->days, day, domain);
}

static void sched_done(void *arg, const struct mxg_rpt_send_stats *st)
{
    (void)arg;
    if (st->sent || st->retry || st->gave_up || st->skipped || st->errors || st->dns_fail ||
        st->fleet)
        LOG_I(RPT_COMP,
              "delivery round: %d domains, sent %d, retry %d, gave up %d, skipped %d, "
              "no TXT %d, DNS failures %d, errors %d, left to the fleet %d",
              st->domains, st->sent, st->retry, st->gave_up, st->skipped, st->no_txt,
              st->dns_fail, st->errors, st->fleet);
}

static void due_fn(void *arg, const struct mxg_rpt_delivery *d)
{
    struct tickctx *t = arg;
    struct mxg_rpt_sender *s = t->s;
    if (strcmp(d->day, t->today) >= 0 || busy(s, d->day, d->domain, d->rua))
        return;
    if (t->retry == NULL && (t->retry = op_new(s, OP_SCHED, sched_done, NULL)) == NULL)
        return;
    struct job *j = job_new(t->retry, d->day, d->domain);
    if (j == NULL)
        return;
    char one[1][MXG_RPT_RUA_MAX];
    snprintf(one[0], sizeof one[0], "%s", d->rua);
    j->outstanding++; /* set-up hold */
    job_ruas(j, (const char(*)[MXG_RPT_RUA_MAX])one, 1);
    job_step_done(j);
}

static void on_wake(uv_timer_t *t);

static void arm_wake(struct mxg_rpt_sender *s)
{
    if (s->plans == NULL || s->freeing) {
        uv_timer_stop(&s->wake);
        return;
    }
    uint64_t now = uv_now(s->loop), due = UINT64_MAX;
    for (struct plan *p = s->plans; p; p = p->next)
        if (p->due_ms < due)
            due = p->due_ms;
    uv_timer_start(&s->wake, on_wake, due > now ? due - now : 0, 0);
}

static void on_wake(uv_timer_t *t)
{
    struct mxg_rpt_sender *s = t->data;
    uint64_t now = uv_now(s->loop);
    struct op *o = NULL;
    for (struct plan **pp = &s->plans; *pp;) {
        struct plan *p = *pp;
        if (p->due_ms > now) {
            pp = &p->next;
            continue;
        }
        *pp = p->next;
        if (o == NULL)
            o = op_new(s, OP_SCHED, sched_done, NULL);
        struct job *j = o ? job_new(o, p->day, p->domain) : NULL;
        if (j)
            job_txt(j);
        free(p);
    }
    if (o)
        op_release(o);
    arm_wake(s);
}

static void on_tick(uv_timer_t *tm)
{
    struct mxg_rpt_sender *s = tm->data;
    struct tickctx t;
    memset(&t, 0, sizeof t);
    t.s = s;
    today(t.today);

    /* Retries of due pending rows of past days. */
    if (mxg_rpt_delivery_list(s->r, MXG_RPT_PENDING, now_s(), due_fn, &t) < 0)
        LOG_W(RPT_COMP, "delivery scheduler: cannot list due rows");
    if (t.retry)
        op_release(t.retry);

    /* New (day, domain) pairs: no row yet, no definite TXT answer yet. */
    if (mxg_rpt_delivery_list(s->r, -1, 0, rows_fn, &t.rows) >= 0 &&
        mxg_rpt_days(s->r, days_fn, &t) >= 0 && !t.rows.nomem && !t.days.nomem) {
        for (struct seen *e = s->seen; e; e = e->next)
            e->mark = 0;
        for (int i = 0; i < t.days.n; i++) {
            char day[MXG_RPT_DAY_LEN + 1];
            const char *domain = t.days.k[i] + MXG_RPT_DAY_LEN + 1;
            snprintf(day, sizeof day, "%.*s", MXG_RPT_DAY_LEN, t.days.k[i]);
            if (seen_has(s, day, domain, 1) || keyset_has(&t.rows, day, domain) ||
                planned(s, day, domain) || busy(s, day, domain, NULL))
                continue;
            struct plan *p = calloc(1, sizeof *p);
            if (p == NULL)
                break;
            snprintf(p->day, sizeof p->day, "%s", day);
            snprintf(p->domain, sizeof p->domain, "%s", domain);
            p->due_ms = uv_now(s->loop) + rand_upto(s->max_delay_ms);
            p->next = s->plans;
            s->plans = p;
            LOG_D(RPT_COMP, "report %s %s: delivery in %llu ms", day, domain,
                  (unsigned long long)(p->due_ms - uv_now(s->loop)));
        }
        /* forget pairs that are gone (purged) */
        for (struct seen **pp = &s->seen; *pp;) {
            struct seen *e = *pp;
            if (!e->mark) {
                *pp = e->next;
                free(e);
            } else {
                pp = &e->next;
            }
        }
        arm_wake(s);
    } else {
        LOG_W(RPT_COMP, "delivery scheduler: cannot list days or rows");
    }
    free(t.rows.k);
    free(t.days.k);
}

int mxg_rpt_sender_start(struct mxg_rpt_sender *s, uint64_t check_interval_ms,
                         uint64_t max_random_delay_ms)
{
    if (!s || s->freeing || s->started || check_interval_ms == 0)
        return MXG_RPT_EINVAL;
    s->started = 1;
    s->max_delay_ms = max_random_delay_ms;
    uv_timer_start(&s->tick, on_tick, 0, check_interval_ms);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Lifetime                                                                 */

static void teardown(struct mxg_rpt_sender *s);

static void on_defer(uv_timer_t *t)
{
    struct mxg_rpt_sender *s = t->data;
    for (;;) {
        struct op *o = s->ops;
        while (o && !o->finished)
            o = o->next;
        if (o == NULL || s->freeing)
            break;
        op_unlink(s, o);
        struct mxg_rpt_send_stats st = o->st;
        mxg_rpt_send_cb cb = o->cb;
        void *arg = o->arg;
        op_free(s, o);
        s->in_cb++;
        cb(arg, &st);
        s->in_cb--;
    }
    if (s->freeing && s->in_cb == 0)
        teardown(s);
}

static void on_closed(uv_handle_t *h)
{
    struct mxg_rpt_sender *s = h->data;
    if (--s->open_handles == 0) {
        free(s->org_name);
        free(s->org_contact);
        free(s->org_submitter);
        free(s->mail_from);
        free(s);
    }
}

static void teardown(struct mxg_rpt_sender *s)
{
    while (s->ops) {
        struct op *o = s->ops;
        s->ops = o->next;
        op_free(s, o);
    }
    while (s->plans) {
        struct plan *p = s->plans;
        s->plans = p->next;
        free(p);
    }
    while (s->seen) {
        struct seen *e = s->seen;
        s->seen = e->next;
        free(e);
    }
    uv_close((uv_handle_t *)&s->tick, on_closed);
    uv_close((uv_handle_t *)&s->wake, on_closed);
    uv_close((uv_handle_t *)&s->defer, on_closed);
}

void mxg_rpt_sender_free(struct mxg_rpt_sender *s)
{
    if (s == NULL || s->freeing)
        return;
    s->freeing = 1;
    if (s->in_cb == 0)
        teardown(s);
    /* else: on_defer tears down when the done callback returns */
}

void mxg_rpt_sender_configure(struct mxg_rpt_sender *s, const struct mxg_rpt_send_cfg *cfg)
{
    if (s == NULL)
        return;
    struct mxg_rpt_send_cfg c;
    memset(&c, 0, sizeof c);
    if (cfg)
        c = *cfg;
    if (c.backoff_base_s == 0)
        c.backoff_base_s = MXG_RPT_SEND_BACKOFF_BASE_S;
    if (c.backoff_max_s == 0)
        c.backoff_max_s = MXG_RPT_SEND_BACKOFF_MAX_S;
    if (c.backoff_max_s < c.backoff_base_s)
        c.backoff_max_s = c.backoff_base_s;
    if (c.max_attempts <= 0)
        c.max_attempts = MXG_RPT_SEND_MAX_ATTEMPTS;
    s->cfg = c;
}

void mxg_rpt_sender_set_resolver(struct mxg_rpt_sender *s, const struct mxg_rpt_resolver *res)
{
    if (s && res && res->txt && res->addr && res->cancel)
        s->res = *res;
}

struct mxg_rpt_sender *mxg_rpt_sender_new(uv_loop_t *loop, struct mxg_rpt *r, struct mxg_dns *dns,
                                          struct mxg_https *https, const struct mxg_rpt_org *org,
                                          int https_port_override)
{
    if (!loop || !r || !https || !org || !org->organization_name || !org->contact_info ||
        https_port_override < 0 || https_port_override > 65535)
        return NULL;
    struct mxg_rpt_sender *s = calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    s->loop = loop;
    s->r = r;
    s->dns = dns;
    s->https = https;
    s->port_override = https_port_override;
    s->org_name = strdup(org->organization_name);
    s->org_contact = strdup(org->contact_info);
    s->org_submitter = org->submitter ? strdup(org->submitter) : NULL;
    if (!s->org_name || !s->org_contact || (org->submitter && !s->org_submitter)) {
        free(s->org_name);
        free(s->org_contact);
        free(s->org_submitter);
        free(s);
        return NULL;
    }
    s->res = (struct mxg_rpt_resolver){ dns_txt, dns_addr, dns_cancel, dns };
    mxg_rpt_sender_configure(s, NULL);
    uv_timer_init(loop, &s->tick);
    uv_timer_init(loop, &s->wake);
    uv_timer_init(loop, &s->defer);
    s->tick.data = s->wake.data = s->defer.data = s;
    s->open_handles = 3;
    return s;
}
