/* proxy/outbound/leg.c — the upstream leg's protocol: states, the failure record,
 * timers and teardown, EHLO/MAIL, the reply transition table and the public
 * transaction API (upstream.h). Like Postfix smtp_proto.c; the private
 * contract is in leg_int.h. Every state change goes through leg_set_state(),
 * which logs old → new. */
#include "leg_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../core/scan.h"
#include "../../core/str.h"
#include "../../core/log.h"

static void cancel_dane(struct mxg_leg *leg);

const char *const leg_state_names[] = {
    "resolving", "tlsa", "slot-wait", "connecting", "greeting", "ehlo", "helo", "starttls",
    "tls-handshake", "ehlo-tls", "rset", "mail", "ready", "rcpt", "data", "stream", "dot", "done", "quit", "failed",
    "closed",
};

/* Every state change of the leg: logs old -> new. */
void leg_set_state(struct mxg_leg *leg, enum leg_state st)
{
    if (leg->st != st)
        LOG_D("upstream", "%s %s: %s -> %s", leg->sid, leg->domain, leg_state_names[leg->st],
              leg_state_names[st]);
    leg->st = st;
}

/* Hand r to the session if an operation waits for it (exactly once per operation). */
static void deliver(struct mxg_leg *leg, const struct mxg_reply *r)
{
    if (!leg->op_pending || leg->detached)
        return;
    leg->op_pending = 0;
    if (leg->cbs.on_reply)
        leg->cbs.on_reply(leg->arg, leg, r);
}

/* The current candidate as "host[addr]" for logs and replies; returns buf. */
const char *leg_cur_label(struct mxg_leg *leg, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s[%s]", leg->mx_host[0] ? leg->mx_host : "?", leg->mx_addr);
    return buf;
}

/* Record why the current candidate failed (for the final reply) and log it. */
void leg_note_failure(struct mxg_leg *leg, enum fail_kind kind, const char *fmt, ...)
{
    char msg[300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    LOG_I("upstream", "%s %s: %s", leg->sid, leg->domain, msg);
    if (kind > leg->fail_kind)
        leg->fail_kind = kind;
    size_t l = strlen(leg->reasons);
    if (l + 4 < sizeof leg->reasons)
        snprintf(leg->reasons + l, sizeof leg->reasons - l, "%s%s", l ? "; " : "", msg);
}

/* The current candidate failed: record why (as leg_note_failure), drop its
 * connection and go on with the next candidate (leg_try_next). */
void leg_cand_failed(struct mxg_leg *leg, enum fail_kind kind, const char *fmt, ...)
{
    char msg[300]; /* the size leg_note_failure formats into: the same text */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    leg_note_failure(leg, kind, "%s", msg);
    leg_drop_conn(leg);
    leg_try_next(leg);
}

/* The leg is unusable: remember the error, tell the session (if it waits). */
void leg_fail(struct mxg_leg *leg, const struct mxg_reply *r)
{
    leg->err = *r;
    leg_drop_conn(leg);
    cancel_dane(leg);
    leg_cache_cancel(leg);
    uv_timer_stop(&leg->timer);
    uv_timer_stop(&leg->deadline);
    if (leg->rq) {
        mxg_route_cancel(leg->rq);
        leg->rq = NULL;
    }
    if (leg->aq) {
        mxg_dns_cancel(leg->aq);
        leg->aq = NULL;
    }
    leg_set_state(leg, LEG_FAILED);
    char sum[300];
    mxg_reply_summary(r, sum, sizeof sum);
    LOG_D("upstream", "%s %s: leg failed: %s", leg->sid, leg->domain, sum);
    leg_watch_end(leg, 0, r);
    deliver(leg, r);
    /* a writer waiting for on_drain learns of the failure at its next write */
    if (leg->want_drain && !leg->detached && leg->cbs.on_drain) {
        leg->want_drain = 0;
        leg->cbs.on_drain(leg->arg, leg);
    }
}

/* No candidate is left: fail the leg with the most severe failure kind seen. */
void leg_fail_all(struct mxg_leg *leg)
{
    struct mxg_reply r;
    const char *enh = "4.4.1";
    switch (leg->fail_kind) {
    case FK_DNS: enh = "4.4.3"; break;
    case FK_REFUSED: enh = "4.4.4"; break; /* private address refused: unable to route */
    case FK_LOOP: enh = "4.4.6"; break;
    case FK_TLS: enh = "4.7.5"; break;
    case FK_LIMIT: enh = "4.7.0"; break;
    default: break;
    }
    mxg_reply_set(&r, 451, enh, "No usable MX for %s: %s", leg->domain,
                  leg->reasons[0] ? leg->reasons : "no candidates");
    leg_fail(leg, &r);
}

/* Both timers closed: free the leg and everything it owns. */
static void timers_closed(uv_handle_t *h)
{
    struct mxg_leg *leg = h->data;
    if (--leg->timers_open == 0) {
        for (int i = 0; leg->hosts && leg->route && i < leg->route->n; i++) {
            if (leg->hosts[i].req)
                mxg_req_clear(leg->hosts[i].req);
            free(leg->hosts[i].req);
            mxg_dane_host_clear(&leg->hosts[i].dane);
        }
        mxg_buf_free(&leg->in);
        mxg_buf_free(&leg->wout);
        free(leg->cands);
        free(leg->hosts);
        free(leg->route);
        free(leg);
    }
}

/* Cancel the MTA-STS lookup and every TLSA lookup in flight. */
static void cancel_dane(struct mxg_leg *leg)
{
    if (leg->sq) {
        mxg_sts_cancel(leg->sq);
        leg->sq = NULL;
    }
    for (int i = 0; leg->hosts && leg->route && i < leg->route->n; i++) {
        if (leg->hosts[i].q) {
            mxg_dane_cancel(leg->hosts[i].q);
            leg->hosts[i].q = NULL;
        }
    }
}

/* End the leg for good: drop the connection, cancel lookups, close the timers. */
void leg_destroy(struct mxg_leg *leg)
{
    if (leg->st == LEG_CLOSED)
        return;
    leg_drop_conn(leg);
    cancel_dane(leg);
    leg_cache_cancel(leg);
    if (leg->rq) {
        mxg_route_cancel(leg->rq);
        leg->rq = NULL;
    }
    if (leg->aq) {
        mxg_dns_cancel(leg->aq);
        leg->aq = NULL;
    }
    leg_set_state(leg, LEG_CLOSED);
    uv_close((uv_handle_t *)&leg->timer, timers_closed);
    uv_close((uv_handle_t *)&leg->deadline, timers_closed);
}

/* Is the leg between connect and the reply to MAIL (a failure tries the next candidate)? */
int leg_in_setup(const struct mxg_leg *leg)
{
    return leg->st >= LEG_CONNECTING && leg->st <= LEG_MAIL;
}

/* The connection failed (a write that could not be made, out of memory
 * included; a timeout): while it is being set up (connect .. MAIL: nothing
 * of the transaction was accepted there) it is a failure of that candidate
 * like a lost connection — a stale cached one is retried afresh, a fresh
 * one goes on with the next address / MX; later the transaction is lost
 * (451 4.4.2). */
void leg_txn_lost(struct mxg_leg *leg, const char *what)
{
    char lbl[320];
    if (leg_in_setup(leg)) {
        leg_cand_failed(leg, FK_CONNECT, "%s: %s%s in state %s",
                        leg_cur_label(leg, lbl, sizeof lbl),
                        leg->reuse_setup ? "cached connection: " : "", what,
                        leg_state_names[leg->st]);
        return;
    }
    struct mxg_reply r;
    mxg_reply_set(&r, 451, "4.4.2", "%s with %s during %s", what, leg_cur_label(leg, lbl, sizeof lbl),
                  leg_state_names[leg->st]);
    leg_fail(leg, &r);
}

/* The per-command / connect timer fired. */
static void on_timer(uv_timer_t *t)
{
    struct mxg_leg *leg = t->data;
    char lbl[320];
    if (leg->st == LEG_QUIT) {
        LOG_D("upstream", "%s %s: no reply to QUIT within timeouts.quit (%llums): connection "
              "closed", leg->sid, leg->domain, (unsigned long long)leg->env->cfg->t_quit);
        leg_destroy(leg);
        return;
    }
    if (leg->st == LEG_TLS_HANDSHAKE || leg->st == LEG_STARTTLS) {
        leg_tls_failed(leg, "timeout during the TLS handshake");
        return;
    }
    if (leg_in_setup(leg)) {
        leg_cand_failed(leg, FK_CONNECT, "%s: timeout in state %s", leg_cur_label(leg, lbl, sizeof lbl),
                    leg_state_names[leg->st]);
        return;
    }
    leg_txn_lost(leg, "Timeout waiting for a reply");
}

/* The RCPT-time budget while opening is spent: fail the leg. */
void leg_on_deadline(uv_timer_t *t)
{
    struct mxg_leg *leg = t->data;
    if (leg->st == LEG_SLOT) {
        leg_cache_cancel(leg);
        leg_note_failure(leg, FK_LIMIT, "RCPT-time budget of %llus exhausted waiting for a "
                     "connection slot to %s", (unsigned long long)(leg->env->cfg->t_rcpt_total / 1000),
                     leg->mx_addr);
        leg_fail_all(leg);
        return;
    }
    if (!leg_in_setup(leg) && leg->st != LEG_RESOLVING && leg->st != LEG_TLSA)
        return;
    leg_note_failure(leg, FK_CONNECT, "RCPT-time budget of %llus exhausted",
                 (unsigned long long)(leg->env->cfg->t_rcpt_total / 1000));
    leg_fail_all(leg);
}

/* Arm the per-command / connect timer. */
void leg_timer(struct mxg_leg *leg, uint64_t ms)
{
    uv_timer_start(&leg->timer, on_timer, ms, 0);
}

/* Probe mode ends where a transaction would begin: report the connection. */
static void probe_done(struct mxg_leg *leg)
{
    char lbl[320];
    struct mxg_reply r;
    uv_timer_stop(&leg->deadline);
    leg_set_state(leg, LEG_READY);
    mxg_reply_set(&r, 250, "2.0.0", "%s: %s%s%s, peer %s", leg_cur_label(leg, lbl, sizeof lbl),
                  leg->tls_version[0] ? leg->tls_version : "plaintext",
                  leg->tls_version[0] ? " " : "", leg->tls_cipher, leg->verified);
    deliver(leg, &r);
}

/* RCPT's parameters for this leg's MX into params (NOTIFY/ORCPT only when
 * it offers DSN; "" otherwise or when rp is NULL). */
static void rcpt_params(const struct mxg_leg *leg, const struct mxg_rcpt_params *rp, char *params,
                        size_t cap)
{
    params[0] = 0;
    if (!leg->caps.dsn || !rp)
        return;
    size_t l = 0;
    if (rp->notify[0])
        l += (size_t)snprintf(params + l, cap - l, " NOTIFY=%s", rp->notify);
    if (rp->orcpt[0] && l < cap)
        snprintf(params + l, cap - l, " ORCPT=%s", rp->orcpt);
}

/* Send MAIL FROM with the parameters the MX supports (probe: stop here);
 * with PIPELINING the first recipient's RCPT in the same write. */
void leg_send_mail(struct mxg_leg *leg)
{
    const struct mxg_mail_params *mp = &leg->mp;
    if (leg->probe) {
        probe_done(leg);
        return;
    }
    char params[400] = "";
    size_t l = 0;
    if (mp->smtputf8 && !leg->caps.smtputf8) {
        struct mxg_reply r;
        char lbl[320];
        mxg_reply_set(&r, 553, "5.6.7", "%s does not support SMTPUTF8",
                      leg_cur_label(leg, lbl, sizeof lbl));
        leg_fail(leg, &r);
        return;
    }
    if (mp->size && leg->caps.size)
        l += (size_t)snprintf(params + l, sizeof params - l, " SIZE=%llu",
                              (unsigned long long)mp->size);
    if (mp->body == MXG_BODY_8BITMIME) {
        if (leg->caps.eightbit)
            l += (size_t)snprintf(params + l, sizeof params - l, " BODY=8BITMIME");
        else
            leg->need_7bit = 1;
    } else if (mp->body == MXG_BODY_7BIT && leg->caps.eightbit) {
        l += (size_t)snprintf(params + l, sizeof params - l, " BODY=7BIT");
    }
    if (mp->smtputf8)
        l += (size_t)snprintf(params + l, sizeof params - l, " SMTPUTF8");
    if (leg->caps.dsn) {
        if (mp->ret[0])
            l += (size_t)snprintf(params + l, sizeof params - l, " RET=%s", mp->ret);
        if (mp->envid[0])
            l += (size_t)snprintf(params + l, sizeof params - l, " ENVID=%s", mp->envid);
    }
    /* RFC 2920 §3.1: MAIL and RCPT may be grouped; the first RCPT goes out in
     * MAIL's write and its reply is matched after MAIL's (leg_on_reply) */
    int early = leg->has_first && leg->caps.pipelining;
    leg->rcpt_early = 0;
    if (early)
        leg_cork(leg);
    int rc = leg_cmd(leg, LEG_MAIL, leg->env->cfg->t_upstream_cmd, "MAIL FROM:<%s>%s",
                     leg->mail_from, params);
    if (rc == 0 && early) {
        char rparams[640];
        rcpt_params(leg, &leg->first_rp, rparams, sizeof rparams);
        /* still waiting for MAIL's reply: the state stays mail */
        rc = leg_cmd(leg, LEG_MAIL, leg->env->cfg->t_upstream_cmd, "RCPT TO:<%s>%s",
                     leg->first_rcpt, rparams);
        if (rc == 0)
            leg->rcpt_early = 1;
    }
    if (early && leg_uncork(leg) < 0)
        rc = -1;
    if (rc < 0)
        leg_txn_lost(leg, "Write failed");
}

/* Send EHLO (or HELO when next is LEG_HELO) with our name. */
void leg_send_ehlo(struct mxg_leg *leg, enum leg_state next)
{
    const struct mxg_config *cfg = leg->env->cfg;
    const char *name = cfg->helo_name[0] ? cfg->helo_name : cfg->hostname;
    if (leg_cmd(leg, next, cfg->t_upstream_cmd, "%s %s", next == LEG_HELO ? "HELO" : "EHLO",
                name[0] ? name : "localhost") < 0)
        leg_txn_lost(leg, "Write failed");
}

/* After EHLO (or HELO): STARTTLS, or go on in plaintext if the policy lets us. */
static void after_ehlo(struct mxg_leg *leg)
{
    char lbl[320];
    const struct mxg_req *req = leg_cur_req(leg);
    int tries_tls = req->tries_tls;
    if (leg->caps.starttls && !leg->plaintext_retry && tries_tls) {
        if (leg_cmd(leg, LEG_STARTTLS, leg->env->cfg->t_upstream_cmd, "STARTTLS") < 0)
            leg_txn_lost(leg, "Write failed");
        return;
    }
    if (!leg->caps.starttls && tries_tls)
        leg_report(leg, MXG_RPT_R_STARTTLS_NOT_SUPPORTED, NULL);
    if (req->tls_required) {
        char why[400];
        mxg_req_no_starttls(req, leg_cur_label(leg, lbl, sizeof lbl), why, sizeof why);
        leg_cand_failed(leg, FK_TLS, "%s", why);
        return;
    }
    mxg_str_copy(leg->verified, sizeof leg->verified, mxg_req_plaintext_text(req));
    if (!tries_tls)
        LOG_W("upstream", "%s %s: delivering to %s in PLAINTEXT%s: policy override none for %s "
                          "(%s)", leg->sid, leg->domain, leg_cur_label(leg, lbl, sizeof lbl),
              leg->caps.starttls ? " although it offers STARTTLS" : "", req->ovr_key,
              req->ovr_origin);
    else if (!leg->caps.starttls)
        LOG_I("upstream", "%s %s: %s offers no STARTTLS; delivering in plaintext (policy %s)",
              leg->sid, leg->domain, leg_cur_label(leg, lbl, sizeof lbl), req->policy_level);
    leg_send_mail(leg);
}

/* A reply that ends the transaction on this connection without success: a
 * reply to DATA other than 354, or a 3xx to RCPT or the final dot. The leg fails
 * with the upstream's reply when it is a 4xx/5xx (its class decides), else
 * with 451 4.5.0 (a protocol violation: the MX's idea of the transaction is
 * unknown). QUIT goes out at once (best effort) and the connection is
 * closed: it is never parked for reuse. */
static void fail_and_quit(struct mxg_leg *leg, const struct mxg_reply *r, const char *step)
{
    struct mxg_reply m = *r;
    if (r->code / 100 != 4 && r->code / 100 != 5) {
        char lbl[320], sum[300];
        mxg_reply_summary(r, sum, sizeof sum);
        leg_cur_label(leg, lbl, sizeof lbl);
        LOG_W("upstream", "%s %s: %s answered %s with \"%s\": protocol violation, the "
                          "transaction fails", leg->sid, leg->domain, lbl, step, sum);
        mxg_reply_set(&m, 451, "4.5.0", "%s answered %s with \"%s\" (protocol violation)", lbl,
                      step, sum);
    }
    LOG_D("upstream", "%s -> QUIT", leg->sid);
    leg_set_state(leg, LEG_QUIT);
    (void)leg_send(leg, "QUIT\r\n", 6); /* uv_write sends at once when nothing is queued */
    leg_fail(leg, &m);
}

/* The texts a reply may need, made on first use: the common replies (a 2xx
 * on its way, with the debug log off) need neither. */
struct reply_texts {
    struct mxg_leg *leg;
    const struct mxg_reply *r;
    char lbl[320], sum[300];
};

/* The reply's one-line summary (mxg_reply_summary). */
static const char *rt_sum(struct reply_texts *t)
{
    if (!t->sum[0])
        mxg_reply_summary(t->r, t->sum, sizeof t->sum);
    return t->sum;
}

/* The current candidate's label (leg_cur_label). */
static const char *rt_lbl(struct reply_texts *t)
{
    if (!t->lbl[0])
        leg_cur_label(t->leg, t->lbl, sizeof t->lbl);
    return t->lbl;
}

/* A complete reply arrived: the transition table of the leg. */
void leg_on_reply(struct mxg_leg *leg, struct mxg_reply *r)
{
    struct reply_texts t;
    t.leg = leg;
    t.r = r;
    t.lbl[0] = t.sum[0] = 0;
    int cls = r->code / 100;
    if (mxg_log_enabled(MXG_LOG_DEBUG))
        LOG_D("upstream", "%s <- %s (%s)", leg->sid, rt_sum(&t), leg_state_names[leg->st]);
    uv_timer_stop(&leg->timer);

    if (r->code == 421 && !leg_in_setup(leg) && leg->st != LEG_QUIT) {
        struct mxg_reply m;
        mxg_reply_set(&m, 451, "4.4.2", "%s closed the connection: %s", rt_lbl(&t), rt_sum(&t));
        leg_fail(leg, &m);
        return;
    }
    switch (leg->st) {
    case LEG_GREETING:
        if (cls == 2) {
            size_t k = 0;
            while (r->text[k] && r->text[k] != ' ' && r->text[k] != '\n' && k + 1 < sizeof leg->mx_helo) {
                leg->mx_helo[k] = r->text[k];
                k++;
            }
            leg->mx_helo[k] = 0;
            leg_send_ehlo(leg, LEG_EHLO);
        } else {
            leg_cand_failed(leg, FK_PROTOCOL, "%s: greeting %s", rt_lbl(&t), rt_sum(&t));
        }
        return;
    case LEG_EHLO:
    case LEG_HELO:
        if (cls == 2) {
            if (leg->st == LEG_EHLO)
                mxg_caps_parse(r, &leg->caps);
            else
                memset(&leg->caps, 0, sizeof leg->caps);
            after_ehlo(leg);
        } else if (leg->st == LEG_EHLO && cls == 5) {
            leg_send_ehlo(leg, LEG_HELO);
        } else {
            leg_cand_failed(leg, FK_PROTOCOL, "%s: %s rejected: %s", rt_lbl(&t),
                        leg->st == LEG_EHLO ? "EHLO" : "HELO", rt_sum(&t));
        }
        return;
    case LEG_STARTTLS:
        if (r->code != 220) {
            char why[320];
            snprintf(why, sizeof why, "STARTTLS rejected: %s", rt_sum(&t));
            leg_tls_failed(leg, why);
            return;
        }
        if (mxg_buf_avail(&leg->in) > 0) { /* CVE-2011-0411 class */
            LOG_W("upstream", "%s %s: %s sent %zu bytes after 220 to STARTTLS; discarded",
                  leg->sid, leg->domain, rt_lbl(&t), mxg_buf_avail(&leg->in));
            mxg_buf_reset(&leg->in);
        }
        const struct mxg_req *req = leg_cur_req(leg);
        leg->tls = mxg_tls_engine_new_client(leg->env->tls, req->verify.sni);
        if (!leg->tls) {
            leg_tls_failed(leg, "cannot create TLS engine");
            return;
        }
        /* same requirement only (docs/ARCHITECTURE.md §Reuse) */
        if (leg_cache(leg) && leg->env->tls_resume) {
            unsigned char rk[MXG_TLS_RESUME_KEY_MAX];
            mxg_tls_engine_resume(leg->tls, leg->env->tls_resume, rk, leg_resume_key(leg, rk));
        }
        char err[200];
        if (mxg_tls_verify_apply(leg->tls, &req->verify, err, sizeof err) < 0) {
            leg_tls_failed(leg, err);
            return;
        }
        leg->t_phase = uv_now(leg->env->loop);
        leg_set_state(leg, LEG_TLS_HANDSHAKE);
        leg_timer(leg, leg->env->cfg->t_upstream_cmd);
        leg_tls_step(leg);
        return;
    case LEG_EHLO_TLS:
        if (cls == 2) {
            mxg_caps_parse(r, &leg->caps);
            leg_send_mail(leg);
        } else {
            leg_cand_failed(leg, FK_PROTOCOL, "%s: EHLO after STARTTLS rejected: %s", rt_lbl(&t),
                            rt_sum(&t));
        }
        return;
    case LEG_RSET:
        if (cls != 2) {
            leg_cand_failed(leg, FK_CONNECT, "%s: cached connection: RSET answered %s",
                            rt_lbl(&t), rt_sum(&t));
        } else if (leg->mail_pipelined) {
            leg_set_state(leg, LEG_MAIL);
            leg_timer(leg, leg->env->cfg->t_upstream_cmd);
        } else {
            leg_send_mail(leg);
        }
        return;
    case LEG_MAIL:
        if (leg->reuse_setup && r->code == 421) {
            leg_cand_failed(leg, FK_CONNECT, "%s: cached connection: MAIL answered %s",
                            rt_lbl(&t), rt_sum(&t));
            return;
        }
        uv_timer_stop(&leg->deadline);
        leg->reuse_setup = 0;
        /* docs/ARCHITECTURE.md §Replies: never relayed as 421 (the client's session goes on) */
        if (r->code == 421) {
            struct mxg_reply m;
            mxg_reply_set(&m, 451, "4.4.2", "%s closed the connection: %s", rt_lbl(&t),
                          rt_sum(&t));
            leg_fail(leg, &m);
        } else if (cls != 2 && cls != 4 && cls != 5) { /* e.g. a 354: only DATA may get one */
            fail_and_quit(leg, r, "MAIL");
        } else if (cls == 2) {
            if (mxg_log_enabled(MXG_LOG_DEBUG)) {
                char reuse[80] = "";
                if (leg->reused)
                    snprintf(reuse, sizeof reuse, " (reused connection, transaction %d)",
                             leg->reused + 1);
                LOG_D("upstream", "%s %s: connected to %s, %s%s%s, peer %s%s", leg->sid,
                      leg->domain, rt_lbl(&t), leg->tls_version[0] ? leg->tls_version : "plaintext",
                      leg->tls_version[0] ? " " : "", leg->tls_cipher, leg->verified, reuse);
            }
            mxg_metrics_inc(leg->env->metrics, MXG_M_DECISIONS,
                            mxg_req_metric_label(leg_cur_req(leg)));
            if (leg->rcpt_early) { /* the first RCPT's reply is next */
                leg_set_state(leg, LEG_RCPT);
                leg_timer(leg, leg->env->cfg->t_upstream_cmd);
            } else {
                leg_set_state(leg, LEG_READY);
            }
            deliver(leg, r);
        } else {
            leg_fail(leg, r); /* the sender was refused: relay that */
        }
        return;
    case LEG_RCPT:
        if (cls != 2 && cls != 4 && cls != 5) { /* e.g. a 354 to RCPT: never relayed */
            fail_and_quit(leg, r, "RCPT");
            return;
        }
        leg_set_state(leg, LEG_READY);
        deliver(leg, r);
        return;
    case LEG_DATA:
        if (r->code != 354) { /* DATA's only success (RFC 5321 §4.3.2) */
            fail_and_quit(leg, r, "DATA");
            return;
        }
        leg_set_state(leg, LEG_STREAM);
        deliver(leg, r);
        return;
    case LEG_DOT:
        mxg_metrics_observe_ms(leg->env->metrics, MXG_M_UPSTREAM_DURATION, "final_reply",
                               uv_now(leg->env->loop) - leg->t_phase);
        if (cls != 2 && cls != 4 && cls != 5) { /* a 3xx is no answer to the dot */
            fail_and_quit(leg, r, "the final dot");
            return;
        }
        leg_set_state(leg, LEG_DONE);
        leg_watch_end(leg, cls == 2, r);
        deliver(leg, r);
        return;
    case LEG_QUIT:
        leg_destroy(leg);
        return;
    default:
        LOG_I("upstream", "%s %s: unexpected reply from %s in state %s: %s", leg->sid, leg->domain,
              rt_lbl(&t), leg_state_names[leg->st], rt_sum(&t));
        if (r->code == 421 || leg->st == LEG_STREAM) {
            struct mxg_reply m;
            mxg_reply_set(&m, 451, "4.4.2", "%s: unexpected reply: %s", rt_lbl(&t), rt_sum(&t));
            leg_fail(leg, &m);
        } else if (leg->st == LEG_READY) {
            /* nothing was asked: an extra reply (e.g. two to one command); the
             * replies after it would answer the wrong commands */
            struct mxg_reply m;
            mxg_reply_set(&m, 451, "4.5.0", "%s sent a reply nothing asked for: \"%s\" "
                          "(protocol violation)", rt_lbl(&t), rt_sum(&t));
            leg_fail(leg, &m);
        }
        return;
    }
}

/* Start an operation the session waits for: one command, one on_reply. */
static int leg_op(struct mxg_leg *leg, enum leg_state next, uint64_t timeout, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int leg_op(struct mxg_leg *leg, enum leg_state next, uint64_t timeout, const char *fmt, ...)
{
    char line[1200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    leg->op_pending = 1;
    if (leg_cmd(leg, next, timeout, "%s", line) < 0) {
        leg->op_pending = 0;
        leg_txn_lost(leg, "Write failed");
        return -1;
    }
    return 0;
}

/* Is (addr, rp) the first recipient the leg was told of? */
static int is_first_rcpt(const struct mxg_leg *leg, const char *addr,
                         const struct mxg_rcpt_params *rp)
{
    const struct mxg_rcpt_params *f = &leg->first_rp;
    return strcmp(addr, leg->first_rcpt) == 0 && strcmp(rp ? rp->notify : "", f->notify) == 0 &&
           strcmp(rp ? rp->orcpt : "", f->orcpt) == 0;
}

/* The claimed early RCPT's reply is buffered: parse it from the loop. */
static void on_held_reply(uv_timer_t *t)
{
    struct mxg_leg *leg = t->data;
    if (leg->st != LEG_RCPT)
        return;
    leg_timer(leg, leg->env->cfg->t_upstream_cmd);
    leg_parse_input(leg);
}

/* Claim the RCPT that went out with MAIL (rcpt_early): its reply comes
 * through on_reply as any RCPT's would. Another recipient than the one
 * announced fails the leg (the MX holds an RCPT nobody asked for: this
 * transaction must never reach DATA). */
static int claim_early_rcpt(struct mxg_leg *leg, const char *addr,
                            const struct mxg_rcpt_params *rp)
{
    leg->rcpt_early = 0;
    if (!is_first_rcpt(leg, addr, rp)) {
        struct mxg_reply r;
        mxg_reply_set(&r, 451, "4.3.0", "Internal error: RCPT <%s> is not the recipient sent "
                      "ahead (<%s>)", addr, leg->first_rcpt);
        LOG_E("upstream", "%s %s: %s", leg->sid, leg->domain, r.text);
        leg_fail(leg, &r);
        return -1;
    }
    leg->op_pending = 1;
    if (mxg_buf_avail(&leg->in) > 0) /* never inside this call: from the loop */
        uv_timer_start(&leg->timer, on_held_reply, 0, 0);
    return 0;
}

/* RCPT TO, with NOTIFY/ORCPT when the MX offers DSN (upstream.h). */
int mxg_leg_rcpt(struct mxg_leg *leg, const char *addr, const struct mxg_rcpt_params *rp)
{
    if (leg->rcpt_early && leg->st == LEG_RCPT && !leg->op_pending)
        return claim_early_rcpt(leg, addr, rp);
    if (leg->st != LEG_READY)
        return -1;
    char params[640];
    rcpt_params(leg, rp, params, sizeof params);
    return leg_op(leg, LEG_RCPT, leg->env->cfg->t_upstream_cmd, "RCPT TO:<%s>%s", addr, params);
}

/* DATA (upstream.h). */
int mxg_leg_data(struct mxg_leg *leg)
{
    if (leg->st != LEG_READY)
        return -1;
    return leg_op(leg, LEG_DATA, leg->env->cfg->t_upstream_cmd, "DATA");
}

/* Message bytes in wire form; 1 = stop until on_drain (upstream.h). */
int mxg_leg_write(struct mxg_leg *leg, const void *p, size_t n)
{
    if (leg->st != LEG_STREAM || !leg->conn)
        return -1;
    if (leg_send(leg, p, n) < 0) {
        leg_txn_lost(leg, "Write failed");
        return -1;
    }
    if (leg->conn->pending + mxg_buf_avail(&leg->wout) > LEG_HIGH_WATER) {
        leg->want_drain = 1;
        return 1;
    }
    return 0;
}

/* Hold the message bytes written next until the final dot (upstream.h). */
void mxg_leg_hold(struct mxg_leg *leg)
{
    if (leg->st != LEG_STREAM || leg->held)
        return;
    leg->held = 1;
    leg_cork(leg);
}

/* The final dot, with the bytes held since mxg_leg_hold in one write (upstream.h). */
int mxg_leg_end_data(struct mxg_leg *leg)
{
    if (leg->st != LEG_STREAM)
        return -1;
    leg->t_phase = uv_now(leg->env->loop);
    int rc = leg_op(leg, LEG_DOT, leg->env->cfg->t_final, ".");
    if (leg->held) {
        leg->held = 0;
        if (leg_uncork(leg) < 0 && rc == 0 && leg->conn) {
            leg->op_pending = 0; /* as leg_op's own write failure: the caller hears -1 */
            leg_txn_lost(leg, "Write failed");
            return -1;
        }
    }
    return rc;
}

/* Park the connection or QUIT when idle, else abort; the leg frees itself (upstream.h). */
void mxg_leg_close(struct mxg_leg *leg)
{
    if (!leg || leg->detached)
        return;
    leg->detached = 1;
    leg->op_pending = 0;
    /* a probe (mxguard check --connect) ends with its process: no QUIT round
     * trip that nobody would wait for (the leg would never be freed) */
    if (leg->conn && !leg->probe && (leg->st == LEG_READY || leg->st == LEG_DONE)) {
        uv_timer_stop(&leg->deadline);
        if (leg_park(leg) == 0) {
            leg_destroy(leg);
            return;
        }
        /* not parked: nobody waits for it during QUIT's round trip (timeouts.quit) */
        mxg_conncache_no_park(leg->env->conncache, leg->conn->slot);
        if (leg_cmd(leg, LEG_QUIT, leg->env->cfg->t_quit, "QUIT") == 0)
            return;
    }
    leg_destroy(leg);
}

/* Judge a reply that ends a step: class 2, 4 or 5, never success otherwise (upstream.h). */
int mxg_reply_judge(const struct mxg_reply *in, const char *step, struct mxg_reply *out)
{
    int cls = in->code / 100;
    if (cls == 2 || cls == 4 || cls == 5) {
        if (out != in)
            *out = *in;
        return cls;
    }
    char sum[300];
    mxg_reply_summary(in, sum, sizeof sum);
    if (in->code == 0)
        mxg_reply_set(out, 451, "4.4.2", "Upstream connection lost during %s", step);
    else
        mxg_reply_set(out, 451, "4.5.0", "Unexpected reply to %s: \"%s\" (protocol violation)",
                      step, sum);
    return 4;
}

/* 1 if p[0..n) has an octet >= 0x80. */
int mxg_body_8bit(const void *p, size_t n)
{
    return mxg_scan_8bit(p, n);
}

/* May 8-bit data go to this leg's MX? (docs/ARCHITECTURE.md §MAIL parameters, upstream.h). */
int mxg_leg_body_check(const struct mxg_leg *leg, int eight_bit, struct mxg_reply *r)
{
    if (!leg->need_7bit || !eight_bit)
        return 0;
    mxg_reply_set(r, 554, "5.6.3", "8-bit message, but %s[%s] does not support 8BITMIME",
                  leg->mx_host, leg->mx_addr);
    return -1;
}

/* The leg's sticky error. */
const struct mxg_reply *mxg_leg_error(const struct mxg_leg *leg)
{
    return &leg->err;
}

/* What a log line or a test wants to know about the leg. */
void mxg_leg_get_info(const struct mxg_leg *leg, struct mxg_leg_info *out)
{
    out->domain = leg->domain;
    out->mx_host = leg->mx_host;
    out->mx_addr = leg->mx_addr;
    out->tls_version = leg->tls_version[0] ? leg->tls_version : NULL;
    out->tls_cipher = leg->tls_cipher;
    out->verified = leg->verified[0] ? leg->verified : "-";
    out->policy = &leg->req_in.policy;
    out->sts = mxg_req_sts_result(&leg->req_in);
    out->list = leg->req_in.list_active ? &leg->req_in.list : NULL;
    out->need_7bit = leg->need_7bit;
    out->no_dsn = !leg->caps.dsn;
}

/* The leg's destination domain. */
const char *mxg_leg_domain(const struct mxg_leg *leg)
{
    return leg->domain;
}
