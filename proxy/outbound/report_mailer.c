/* proxy/outbound/report_mailer.c — see report_mailer.h. One `job` per report mail:
 * the copied request, the outbound delivery and the report sender's
 * callback; jobs in flight are kept in a list so that freeing the mailer
 * cancels them. */
#include "report_mailer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../core/log.h"
#include "outbound.h"

struct job {
    struct job *next, *prev;
    struct mxg_report_mailer *m;
    struct mxg_outbound *ob;
    struct mxg_outbound_req req;
    struct mxg_outbound_rcpt rcpt;
    mxg_rpt_mail_cb cb;
    void *arg;
    char id[300];
    char from[MXG_RPT_ADDR_MAX];
    char to[MXG_RPT_ADDR_MAX];
    char domain[MXG_RPT_DOMAIN_MAX];
    char *body;
};

struct mxg_report_mailer {
    const struct mxg_upstream_env *env;
    struct job *jobs;
};

static void job_unlink(struct job *j)
{
    if (j->prev)
        j->prev->next = j->next;
    else
        j->m->jobs = j->next;
    if (j->next)
        j->next->prev = j->prev;
}

static void job_free(struct job *j)
{
    free(j->body);
    free(j);
}

static void on_done(void *arg, struct mxg_outbound_req *req, const struct mxg_reply *final)
{
    (void)req;
    struct job *j = arg;
    job_unlink(j);
    char why[400];
    mxg_reply_summary(final, why, sizeof why);
    enum mxg_rpt_mail_result res = final->code / 100 == 2   ? MXG_RPT_MAIL_SENT
                                   : final->code / 100 == 5 ? MXG_RPT_MAIL_PERMFAIL
                                                            : MXG_RPT_MAIL_TEMPFAIL;
    mxg_rpt_mail_cb cb = j->cb;
    void *cbarg = j->arg;
    job_free(j);
    cb(cbarg, res, why);
}

static int mailer_send(void *ctx, const struct mxg_rpt_mail_req *r, mxg_rpt_mail_cb cb, void *arg,
                       void **handle)
{
    struct mxg_report_mailer *m = ctx;
    *handle = NULL;
    if (!r || !cb || !r->from || !r->to || !r->domain || !r->wire || r->wire_len == 0 ||
        strlen(r->from) >= MXG_RPT_ADDR_MAX || strlen(r->to) >= MXG_RPT_ADDR_MAX ||
        strlen(r->domain) >= MXG_RPT_DOMAIN_MAX)
        return -1;
    struct job *j = calloc(1, sizeof *j);
    if (!j || !(j->body = malloc(r->wire_len))) {
        free(j);
        return -1;
    }
    memcpy(j->body, r->wire, r->wire_len);
    snprintf(j->id, sizeof j->id, "%s", r->id && r->id[0] ? r->id : "tlsrpt");
    snprintf(j->from, sizeof j->from, "%s", r->from);
    snprintf(j->to, sizeof j->to, "%s", r->to);
    snprintf(j->domain, sizeof j->domain, "%s", r->domain);
    j->m = m;
    j->cb = cb;
    j->arg = arg;
    j->rcpt.addr = j->to;
    j->req = (struct mxg_outbound_req){
        .id = j->id,
        .domain = j->domain,
        .from = j->from,
        .rcpts = &j->rcpt,
        .n_rcpts = 1,
        .body = j->body,
        .body_len = r->wire_len,
        .body_fd = -1,
        .opts = {.opportunistic = 1, .no_tlsrpt = 1},
        .done = on_done,
        .arg = j,
    };
    if (mxg_outbound_start(m->env, &j->req, &j->ob) != 0) {
        job_free(j);
        return -1;
    }
    j->next = m->jobs;
    if (m->jobs)
        m->jobs->prev = j;
    m->jobs = j;
    LOG_D("tlsrpt", "%s: report mail to <%s> from <%s> (%zu octets) started", j->id, j->to,
          j->from, r->wire_len);
    *handle = j;
    return 0;
}

static void mailer_cancel(void *ctx, void *handle)
{
    (void)ctx;
    struct job *j = handle;
    if (!j)
        return;
    job_unlink(j);
    mxg_outbound_cancel(j->ob);
    job_free(j);
}

struct mxg_report_mailer *mxg_report_mailer_new(const struct mxg_upstream_env *env)
{
    if (!env)
        return NULL;
    struct mxg_report_mailer *m = calloc(1, sizeof *m);
    if (m)
        m->env = env;
    return m;
}

void mxg_report_mailer_get(struct mxg_report_mailer *m, struct mxg_rpt_mailer *out)
{
    memset(out, 0, sizeof *out);
    if (!m)
        return;
    out->send = mailer_send;
    out->cancel = mailer_cancel;
    out->ctx = m;
}

void mxg_report_mailer_free(struct mxg_report_mailer *m)
{
    if (!m)
        return;
    while (m->jobs)
        mailer_cancel(m, m->jobs);
    free(m);
}
