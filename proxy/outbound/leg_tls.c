/* proxy/outbound/leg_tls.c — the per-host TLS requirement of the leg: the DANE
 * decision of each MX host, then the requirement policy/requirement.h
 * derives from it and the leg's inputs (once per host), and the STARTTLS
 * handshake step judged by it. See leg_int.h. */
#include "leg_int.h"

#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "../../core/str.h"
#include "../../core/log.h"
#include "../../tls/tls_verify.h"

/* DNSSEC's word on the host of the current candidate. */
const struct mxg_dane_host *leg_cur_dane(const struct mxg_leg *leg)
{
    return &leg->hosts[leg->cands[leg->cur].hi].dane;
}

/* The requirement of the current candidate's host (policy/requirement.h). */
const struct mxg_req *leg_cur_req(const struct mxg_leg *leg)
{
    const struct host_state *hs = &leg->hosts[leg->cands[leg->cur].hi];
    if (!hs->req) {
        /* a zeroed requirement reads as "no TLS": never act on one (fail closed) */
        LOG_E("upstream", "%s %s: internal error: no requirement computed for %s", leg->sid,
              leg->domain, leg->cands[leg->cur].host);
        abort();
    }
    return hs->req;
}

/* Does DANE apply to this leg's hosts at all (leg_host_decide's early outs)? */
int leg_dane_consulted(const struct mxg_leg *leg)
{
    char why[240];
    return mxg_req_dane_consulted(&leg->req_in, why, sizeof why);
}

/* The requirement for cd's host, once per host (policy/requirement.h):
 * logged; a host it rules out is noted (and reported) and skipped. */
int leg_host_requirement(struct mxg_leg *leg, struct host_state *hs, const struct cand *cd)
{
    /* made only for the hosts a delivery reaches (a route may name up to 32) */
    struct mxg_req *req = mxg_req_new(); /* zeroed by mxg_req_for_host below */
    if (!req) { /* the host cannot be judged: skip it (fail closed) */
        leg_note_failure(leg, FK_TLS, "%s: out of memory for its TLS requirement", cd->host);
        hs->skip = 1;
        leg_try_next(leg);
        return -1;
    }
    hs->req = req;
    const struct mxg_route_host *rh = &leg->route->host[cd->hi];
    mxg_req_for_host(&leg->req_in, cd->host, &hs->dane, rh->addrs.sec == MXG_SEC_BOGUS, req);
    if (mxg_log_enabled(MXG_LOG_DEBUG)) {
        char sum[900];
        mxg_req_summary(req, sum, sizeof sum);
        LOG_D("upstream", "%s %s: requirement %s", leg->sid, leg->domain, sum);
    }
    if (req->dane_set_aside) /* "none": the operator's word beats the TLSA records; loudly */
        LOG_W("upstream", "%s %s: %s has DANE (%s: %s) but policy override none for %s (%s) "
                          "sends mail to it in PLAINTEXT", leg->sid, leg->domain, cd->host,
              mxg_dane_req_name(req->dane_fact), hs->dane.why, req->ovr_key, req->ovr_origin);
    if (req->not_in_policy) /* the session itself is reported (leg_report) */
        LOG_W("upstream", "%s %s: %s testing: %s is not in the policy's mx list; "
                          "delivering anyway", leg->sid, leg->domain, req->pki_name, cd->host);
    if (req->level != MXG_REQ_SKIP_HOST)
        return 0;
    if (req->skip_report != MXG_REQ_SKIP_RPT_NONE) {
        /* a policy failure to report, once per host (RFC 8461 §4.1, RFC 8460 §4.3) */
        struct leg_rpt_about a = {.policy = req->skip_tlsrpt, .d = &hs->dane, .mx_host = cd->host};
        if (req->skip_report == MXG_REQ_SKIP_RPT_DNSSEC_INVALID)
            leg_report_result(leg, &a, MXG_RPT_R_DNSSEC_INVALID, hs->dane.why);
        else
            leg_report_result(leg, &a, MXG_RPT_R_VALIDATION_FAILURE,
                              MXG_RPT_REASON_MX_NOT_IN_POLICY);
    }
    leg_note_failure(leg, req->fail == MXG_REQ_FAIL_DNS ? FK_DNS : FK_TLS, "%s", req->why);
    hs->skip = 1;
    leg_try_next(leg);
    return -1;
}

/* The TLS handshake failed: once in plaintext if the policy allows, else the next candidate. */
void leg_tls_failed(struct mxg_leg *leg, const char *why)
{
    char lbl[320];
    leg_cur_label(leg, lbl, sizeof lbl);
    leg_report(leg, MXG_RPT_R_VALIDATION_FAILURE, why);
    if (!leg_cur_req(leg)->tls_required && !leg->plaintext_retry) {
        LOG_W("upstream", "%s %s: TLS with %s failed (%s); retrying once in plaintext (policy %s)",
              leg->sid, leg->domain, lbl, why, leg_cur_req(leg)->policy_level);
        leg_drop_conn(leg);
        leg->plaintext_retry = 1;
        leg_connect(leg);
        return;
    }
    leg_cand_failed(leg, FK_TLS, "%s: TLS failed: %s", lbl, why);
}

/* Advance the TLS handshake; when done judge it, log how the peer was verified, send EHLO. */
void leg_tls_step(struct mxg_leg *leg)
{
    int rc = mxg_tls_handshake(leg->tls);
    if (leg_flush_tls(leg) < 0) {
        leg_tls_failed(leg, "write failed");
        return;
    }
    if (rc == MXG_TLS_AGAIN)
        return;
    if (rc != MXG_TLS_OK) {
        const char *e = mxg_tls_engine_error(leg->tls);
        char why[320], lbl[320];
        long vr = mxg_tls_verify_result(leg->tls);
        char note[600];
        if (vr != X509_V_OK &&
            mxg_req_verify_failed(leg_cur_req(leg), leg_cur_label(leg, lbl, sizeof lbl),
                                  vr == X509_V_ERR_DANE_NO_MATCH,
                                  X509_verify_cert_error_string(vr), note, sizeof note)) {
            leg_report(leg, leg_verify_result_type(vr), X509_verify_cert_error_string(vr));
            leg_cand_failed(leg, FK_TLS, "%s", note);
            return;
        }
        mxg_str_copy(why, sizeof why, e && e[0] ? e : "handshake failed");
        leg_tls_failed(leg, why);
        return;
    }
    mxg_metrics_observe_ms(leg->env->metrics, MXG_M_UPSTREAM_DURATION, "tls_handshake",
                           uv_now(leg->env->loop) - leg->t_phase);
    mxg_metrics_inc(leg->env->metrics, MXG_M_UPSTREAM_HANDSHAKES,
                    mxg_tls_engine_resumed(leg->tls) ? "resumed" : "full");
    mxg_str_copy(leg->tls_version, sizeof leg->tls_version, mxg_tls_version(leg->tls));
    mxg_str_copy(leg->tls_cipher, sizeof leg->tls_cipher, mxg_tls_cipher(leg->tls));
    const struct mxg_req *req = leg_cur_req(leg);
    long vr = mxg_tls_verify_result(leg->tls);
    char matched[80];
    struct mxg_req_session ses;
    mxg_tls_verify_matched(leg->tls, matched, sizeof matched);
    mxg_req_session_ok(req, mxg_tls_engine_resumed(leg->tls), vr == X509_V_OK,
                       X509_verify_cert_error_string(vr), matched, &ses);
    mxg_str_copy(leg->verified, sizeof leg->verified, ses.verified);
    switch (ses.report) { /* one result for the session under its policy */
    case MXG_REQ_REPORT_TLSA_INVALID:
        leg_report(leg, MXG_RPT_R_TLSA_INVALID, "no usable TLSA record");
        break;
    case MXG_REQ_REPORT_VERIFY_ERROR:
        leg_report(leg, leg_verify_result_type(vr), X509_verify_cert_error_string(vr));
        break;
    case MXG_REQ_REPORT_SUCCESS:
        leg_report(leg, NULL, NULL);
        break;
    }
    if (ses.warn_testing)
        LOG_W("upstream", "%s %s: %s testing: certificate of %s[%s] not valid: %s; "
                          "delivering anyway", leg->sid, leg->domain, req->pki_name,
              leg->mx_host, leg->mx_addr, X509_verify_cert_error_string(vr));
    LOG_D("upstream", "%s %s: TLS up: %s %s", leg->sid, leg->domain, leg->tls_version,
          leg->tls_cipher);
    memset(&leg->caps, 0, sizeof leg->caps); /* forget everything learned before TLS */
    leg_send_ehlo(leg, LEG_EHLO_TLS);
}

/* The TLSA lookup of the current candidate's host finished: try it again. */
static void on_dane(void *arg, const struct mxg_dane_host *h)
{
    struct mxg_leg *leg = arg;
    struct host_state *hs = &leg->hosts[leg->cands[leg->cur].hi];
    hs->q = NULL;
    mxg_dane_host_copy(&hs->dane, h); /* out of memory: UNUSABLE 4.7.5 (fail closed) */
    hs->decided = 1;
    LOG_D("upstream", "%s %s: %s: %s (%s)", leg->sid, leg->domain, leg->cands[leg->cur].host,
          mxg_dane_req_name(h->req), h->why);
    leg_connect(leg);
}

/* Decide DANE for the current candidate's host (once per host). Returns 1
 * when decided, 0 when the decision will come through on_dane(). */
int leg_host_decide(struct mxg_leg *leg, struct host_state *hs, const struct mxg_route_host *h)
{
    if (hs->decided)
        return 1;
    char why[240];
    if (!mxg_req_dane_consulted(&leg->req_in, why, sizeof why)) {
        hs->decided = 1;
        hs->dane.req = MXG_DANE_NONE;
        mxg_str_copy(hs->dane.why, sizeof hs->dane.why, why);
        return 1;
    }
    int rc = mxg_dane_host_lookup(leg->env->dns, leg->route->mx_sec, h->name, &h->addrs,
                                  leg->tlsa_port, &hs->dane, on_dane, leg, &hs->q);
    if (rc == 0) {
        leg_set_state(leg, LEG_TLSA);
        return 0;
    }
    hs->decided = 1;
    if (rc < 0) {
        mxg_dane_host_unusable(&hs->dane, MXG_DANE_FAIL_TLSA, "DANE: cannot start the TLSA lookup");
    }
    LOG_D("upstream", "%s %s: %s: %s (%s)", leg->sid, leg->domain, h->name,
          mxg_dane_req_name(hs->dane.req), hs->dane.why);
    return 1;
}
