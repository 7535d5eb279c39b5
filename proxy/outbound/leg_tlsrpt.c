/* proxy/outbound/leg_tlsrpt.c — the leg's TLSRPT results (RFC 8460): which policy
 * governed a session and what it says. Like Postfix smtp_tlsrpt.c; see
 * leg_int.h. */
#include "leg_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../core/log.h"

/* RFC 8460 result type for an X.509 verification error. */
const char *leg_verify_result_type(long vr)
{
    switch (vr) {
    case X509_V_ERR_HOSTNAME_MISMATCH:
        return MXG_RPT_R_CERT_HOST_MISMATCH;
    case X509_V_ERR_CERT_HAS_EXPIRED:
    case X509_V_ERR_CERT_NOT_YET_VALID:
        return MXG_RPT_R_CERT_EXPIRED;
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
    case X509_V_ERR_CERT_UNTRUSTED:
        return MXG_RPT_R_CERT_NOT_TRUSTED;
    default:
        return MXG_RPT_R_VALIDATION_FAILURE;
    }
}

/* Contract: records one result (rtype NULL = success) for the policy that
 * governed it (a->policy, from policy/requirement.h; docs/ARCHITECTURE.md §TLSRPT, §TLSRPT counting):
 * DANE (tlsa; policy-string = the usable
 * TLSA records, or every record when none is usable, or none when they are
 * not known: a bogus or failed lookup), MTA-STS (sts; a failed policy
 * fetch is reported as such under sts), else no-policy-found (with the
 * policy list or a local override named in additional-information). */
void leg_report_result(struct mxg_leg *leg, const struct leg_rpt_about *a, const char *rtype,
                          const char *reason)
{
    if (!leg->probe)
        mxg_metrics_inc(leg->env->metrics, MXG_M_TLS_SESSIONS, rtype ? rtype : "success");
    struct mxg_rpt *rpt = leg->env->rpt;
    if (!rpt || leg->probe || leg->no_tlsrpt)
        return;
    /* the whole policy (up to MXG_STS_MAX_MX names): never cut (RFC 8460 §4.4) */
    enum { STS_TEXT_MAX = MXG_STS_MAX_MX * (MXG_STS_NAME_MAX + 8) + 128 };
    /* two C strings, each "" until written: not zeroed beyond their first octet */
    char *sts_pstr = malloc(STS_TEXT_MAX), *mxh = malloc(STS_TEXT_MAX);
    char addl[300] = "";
    char *dane_pstr = NULL;
    size_t l = 0;
    if (!sts_pstr || !mxh) {
        LOG_E("upstream", "%s %s: out of memory: a TLSRPT result is lost", leg->sid, leg->domain);
        free(sts_pstr);
        free(mxh);
        return;
    }
    sts_pstr[0] = mxh[0] = '\0';
    struct mxg_rpt_policy p = {.type = MXG_RPT_NO_POLICY, .domain = leg->req_in.pol_domain,
                               .policy_string = sts_pstr, .mx_host = mxh};
    const struct mxg_dane_host *d = a->d;
    const struct mxg_sts_policy *sp = mxg_req_sts_policy(&leg->req_in);
    switch (a->policy) {
    case MXG_REQ_RPT_TLSA:
        p.type = MXG_RPT_TLSA;
        if (d && (dane_pstr = mxg_dane_host_pstring(d)))
            p.policy_string = dane_pstr;
        break;
    case MXG_REQ_RPT_STS:
        p.type = MXG_RPT_STS;
        if (!sp)
            break;
        mxg_sts_policy_format(sp, sts_pstr, STS_TEXT_MAX);
        for (int i = 0; i < sp->n_mx && l + MXG_STS_NAME_MAX + 2 < STS_TEXT_MAX; i++)
            l += (size_t)snprintf(mxh + l, STS_TEXT_MAX - l, "%s%s", i ? "\n" : "", sp->mx[i]);
        break;
    case MXG_REQ_RPT_STS_FAILED:
        p.type = MXG_RPT_STS; /* no policy known: policy-string [] */
        mxg_req_tlsrpt_sts_failure(&leg->req_in, &rtype, &reason);
        break;
    case MXG_REQ_RPT_NONE_LIST:
    case MXG_REQ_RPT_NONE_OVERRIDE:
        mxg_req_tlsrpt_addl(&leg->req_in, a->policy, addl, sizeof addl);
        break;
    case MXG_REQ_RPT_NONE:
        break;
    }
    struct mxg_rpt_result res = {
        .success = rtype == NULL,
        .result_type = rtype,
        .sending_mta_ip = a->connected ? leg->src_addr : NULL,
        .receiving_mx_hostname = a->mx_host,
        .receiving_mx_helo = a->connected ? leg->mx_helo : NULL,
        .receiving_ip = a->mx_addr,
        .additional_information = addl,
        .failure_reason_code = reason,
    };
    mxg_rpt_record(rpt, &p, &res, 0);
    free(dane_pstr);
    free(sts_pstr);
    free(mxh);
}

/* One result per TLS session attempt with the current candidate. */
void leg_report(struct mxg_leg *leg, const char *rtype, const char *reason)
{
    struct leg_rpt_about a = {.policy = leg_cur_req(leg)->tlsrpt, .d = leg_cur_dane(leg),
                              .mx_host = leg->mx_host, .mx_addr = leg->mx_addr, .connected = 1};
    if (!rtype && leg_cur_req(leg)->not_in_policy) { /* testing mode: delivered, yet a policy failure */
        rtype = MXG_RPT_R_VALIDATION_FAILURE;
        reason = MXG_RPT_REASON_MX_NOT_IN_POLICY;
    }
    leg_report_result(leg, &a, rtype, reason);
}
