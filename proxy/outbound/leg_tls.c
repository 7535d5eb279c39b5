/* proxy/outbound/leg_tls.c — the per-host TLS requirement as the leg derives it
 * (the DANE decision of each MX host, the WebPKI mode of MTA-STS or the
 * policy list), verification set-up, and the STARTTLS handshake step with
 * its judgement. See leg_int.h. */
#include "leg_int.h"

#include <stdio.h>
#include <string.h>

#include "../../core/log.h"

/* DNSSEC's word on the host of the current candidate. */
const struct mxg_dane_host *leg_cur_dane(const struct mxg_leg *leg)
{
    return &leg->hosts[leg->cands[leg->cur].hi].dane;
}

/* The WebPKI policy of the domain (DESIGN §2 rows 3 and 4): an MTA-STS
 * policy in any mode wins; else the policy list's entry; else none. */
enum mxg_sts_mode leg_pki_mode(const struct mxg_leg *leg)
{
    if (!leg->sts_done)
        return MXG_STS_MODE_NONE;
    if (leg->sts.outcome == MXG_STS_POLICY)
        return leg->sts.policy.mode;
    return leg->list_active ? leg->list_pol.mode : MXG_STS_MODE_NONE;
}

/* The name of the WebPKI policy source for logs: "MTA-STS" or "policy list". */
const char *leg_pki_source(const struct mxg_leg *leg)
{
    return leg->sts.outcome == MXG_STS_POLICY ? "MTA-STS" : "policy list";
}

/* Does the WebPKI policy (MTA-STS, else the list) allow host as an MX? */
int leg_pki_allows_host(const struct mxg_leg *leg, const char *host)
{
    if (leg->sts.outcome == MXG_STS_POLICY)
        return mxg_sts_mx_match(&leg->sts.policy, host);
    return mxg_stlist_mx_match(&leg->list_pol, host);
}

/* The WebPKI mode governing the current host: DANE-authenticated hosts
 * are governed by DANE alone (RFC 8461 §2, DESIGN §10). */
enum mxg_sts_mode leg_cur_sts_mode(const struct mxg_leg *leg)
{
    if (leg_cur_dane(leg)->req == MXG_DANE_VERIFY)
        return MXG_STS_MODE_NONE;
    return leg_pki_mode(leg);
}

/* Must the current host be reached over TLS (no plaintext fallback)? */
int leg_cur_requires_tls(const struct mxg_leg *leg)
{
    if (leg->opportunistic)
        return 0;
    enum mxg_dane_req r = leg_cur_dane(leg)->req;
    return r == MXG_DANE_VERIFY || r == MXG_DANE_ENCRYPT ||
           leg_cur_sts_mode(leg) == MXG_STS_MODE_ENFORCE || !mxg_policy_allows_plaintext(&leg->policy);
}

/* The policy that governed the current host (mxguard_policy_decisions_total). */
const char *leg_decision_source(const struct mxg_leg *leg)
{
    enum mxg_dane_req r = leg_cur_dane(leg)->req;
    if (leg->opportunistic)
        return "opportunistic";
    if (r == MXG_DANE_VERIFY || r == MXG_DANE_ENCRYPT)
        return "dane";
    int sts = leg->sts.outcome == MXG_STS_POLICY;
    switch (leg_cur_sts_mode(leg)) {
    case MXG_STS_MODE_ENFORCE:
        return sts ? "mta-sts" : "list";
    case MXG_STS_MODE_TESTING:
        return sts ? "mta-sts-testing" : "list-testing";
    default:
        break;
    }
    return leg->policy.source != MXG_POL_SRC_OPPORTUNISTIC ? "config" : "opportunistic";
}

/* Override "verify": the certificate must chain to tls.ca_file and carry
 * one of the match names (policy/policy.h mxg_policy_match_names). */
int leg_verify_setup(struct mxg_leg *leg)
{
    char names[MXG_OVR_MAX_MATCH][MXG_MAPFILE_KEY_MAX + 1];
    const char *ptrs[MXG_OVR_MAX_MATCH];
    int n = mxg_policy_match_names(&leg->policy, leg->mx_host,
                                   leg->nexthop[0] ? leg->nexthop : leg->domain, names,
                                   MXG_OVR_MAX_MATCH);
    size_t l = 0;
    leg->verify_names[0] = 0;
    for (int i = 0; i < n; i++) {
        ptrs[i] = names[i];
        if (l + strlen(names[i]) + 3 < sizeof leg->verify_names)
            l += (size_t)snprintf(leg->verify_names + l, sizeof leg->verify_names - l, "%s%s",
                                  i ? ", " : "", names[i]);
    }
    if (n == 0)
        return -1;
    return mxg_tls_engine_verify_names(leg->tls, ptrs, n, 1) == MXG_TLS_OK ? 0 : -1;
}

/* The TLS handshake failed: once in plaintext if the policy allows, else the next candidate. */
void leg_tls_failed(struct mxg_leg *leg, const char *why)
{
    char lbl[320];
    leg_cur_label(leg, lbl, sizeof lbl);
    leg_report(leg, MXG_RPT_R_VALIDATION_FAILURE, why);
    if (!leg_cur_requires_tls(leg) && !leg->plaintext_retry) {
        LOG_W("upstream", "%s %s: TLS with %s failed (%s); retrying once in plaintext (policy %s)",
              leg->sid, leg->domain, lbl, why, mxg_policy_level_name(leg->policy.level));
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
        if (leg_cur_dane(leg)->req == MXG_DANE_VERIFY && vr != X509_V_OK) {
            leg_cur_label(leg, lbl, sizeof lbl);
            leg_report(leg, leg_verify_result_type(vr), X509_verify_cert_error_string(vr));
            if (vr == X509_V_ERR_DANE_NO_MATCH)
                leg_note_failure(leg, FK_TLS, "DANE: no TLSA record matched %s", lbl);
            else
                leg_note_failure(leg, FK_TLS, "DANE: verification of %s failed: %s", lbl,
                             X509_verify_cert_error_string(vr));
            leg_drop_conn(leg);
            leg_try_next(leg);
            return;
        }
        if (mxg_policy_override(&leg->policy) == MXG_POL_VERIFY && vr != X509_V_OK &&
            leg_cur_dane(leg)->req != MXG_DANE_VERIFY) {
            leg_cur_label(leg, lbl, sizeof lbl);
            leg_report(leg, leg_verify_result_type(vr), X509_verify_cert_error_string(vr));
            leg_cand_failed(leg, FK_TLS, "policy override verify for %s: certificate of %s is not "
                        "valid for %s: %s", leg->policy.key, lbl, leg->verify_names,
                        X509_verify_cert_error_string(vr));
            return;
        }
        if (leg_cur_sts_mode(leg) == MXG_STS_MODE_ENFORCE && vr != X509_V_OK) {
            leg_cur_label(leg, lbl, sizeof lbl);
            leg_report(leg, leg_verify_result_type(vr), X509_verify_cert_error_string(vr));
            leg_cand_failed(leg, FK_TLS, "%s: certificate of %s is not valid for %s: %s",
                        leg_pki_source(leg), lbl, leg->mx_host, X509_verify_cert_error_string(vr));
            return;
        }
        snprintf(why, sizeof why, "%s", e && e[0] ? e : "handshake failed");
        leg_tls_failed(leg, why);
        return;
    }
    mxg_metrics_observe_ms(leg->env->metrics, MXG_M_UPSTREAM_DURATION, "tls_handshake",
                           uv_now(leg->env->loop) - leg->t_phase);
    snprintf(leg->tls_version, sizeof leg->tls_version, "%s", mxg_tls_version(leg->tls));
    snprintf(leg->tls_cipher, sizeof leg->tls_cipher, "%s", mxg_tls_cipher(leg->tls));
    switch (leg_cur_dane(leg)->req) {
    case MXG_DANE_VERIFY: {
        char m[80];
        if (mxg_tls_engine_resumed(leg->tls)) /* verified at the session's full handshake */
            snprintf(m, sizeof m, "resumed TLS session");
        else
            mxg_dane_tls_matched(mxg_tls_engine_ssl(leg->tls), m, sizeof m);
        snprintf(leg->verified, sizeof leg->verified, "DANE (%s, base %s)", m, leg_cur_dane(leg)->base);
        break;
    }
    case MXG_DANE_ENCRYPT:
        snprintf(leg->verified, sizeof leg->verified, "unauthenticated (only unusable TLSA)");
        leg_report(leg, MXG_RPT_R_TLSA_INVALID, "no usable TLSA record");
        break;
    default:
        if (mxg_policy_override(&leg->policy) == MXG_POL_VERIFY) {
            snprintf(leg->verified, sizeof leg->verified,
                     "WebPKI %s (policy override verify, match %s)", leg->mx_host,
                     leg->verify_names);
        } else if (mxg_policy_override(&leg->policy) == MXG_POL_ENCRYPT) {
            snprintf(leg->verified, sizeof leg->verified,
                     "unauthenticated (policy override encrypt)");
        } else if (leg_cur_sts_mode(leg) == MXG_STS_MODE_ENFORCE) {
            snprintf(leg->verified, sizeof leg->verified, "WebPKI %s (%s enforce)", leg->mx_host,
                     leg_pki_source(leg));
        } else if (leg_cur_sts_mode(leg) == MXG_STS_MODE_TESTING) {
            long vr = mxg_tls_verify_result(leg->tls);
            if (vr == X509_V_OK) {
                snprintf(leg->verified, sizeof leg->verified, "WebPKI %s (%s testing)",
                         leg->mx_host, leg_pki_source(leg));
            } else {
                leg_report(leg, leg_verify_result_type(vr), X509_verify_cert_error_string(vr));
                snprintf(leg->verified, sizeof leg->verified,
                         "unauthenticated: %s testing, WebPKI failed: %s", leg_pki_source(leg),
                         X509_verify_cert_error_string(vr));
                LOG_W("upstream", "%s %s: %s testing: certificate of %s[%s] not valid: %s; "
                                  "delivering anyway", leg->sid, leg->domain, leg_pki_source(leg),
                      leg->mx_host, leg->mx_addr, X509_verify_cert_error_string(vr));
            }
        } else {
            snprintf(leg->verified, sizeof leg->verified, "unauthenticated (opportunistic)");
        }
        break;
    }
    if (leg_cur_dane(leg)->req != MXG_DANE_ENCRYPT &&
        !(leg_cur_sts_mode(leg) == MXG_STS_MODE_TESTING && mxg_tls_verify_result(leg->tls) != X509_V_OK))
        leg_report(leg, NULL, NULL); /* a successful session under its policy */
    if (mxg_tls_engine_resumed(leg->tls) && leg_cur_dane(leg)->req != MXG_DANE_VERIFY) {
        size_t vl = strlen(leg->verified);
        snprintf(leg->verified + vl, sizeof leg->verified - vl, " (resumed TLS session)");
    }
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
    if (leg->opportunistic || leg->nexthop_literal) {
        hs->decided = 1;
        hs->dane.req = MXG_DANE_NONE;
        snprintf(hs->dane.why, sizeof hs->dane.why, "%s",
                 leg->opportunistic ? "DANE not consulted (opportunistic TLS for this delivery)"
                                    : "no DANE for an address literal next hop");
        return 1;
    }
    if (!leg->env->cfg->dane_enabled) {
        hs->decided = 1;
        hs->dane.req = MXG_DANE_NONE;
        snprintf(hs->dane.why, sizeof hs->dane.why, "DANE disabled (dane.enabled = false)");
        return 1;
    }
    if (!mxg_policy_uses_dane(&leg->policy)) {
        hs->decided = 1;
        hs->dane.req = MXG_DANE_NONE;
        snprintf(hs->dane.why, sizeof hs->dane.why, "DANE not consulted: policy override %s for %s",
                 mxg_policy_level_name(leg->policy.level), leg->policy.key);
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
        hs->dane.req = MXG_DANE_UNUSABLE;
        snprintf(hs->dane.enh, sizeof hs->dane.enh, "4.7.5");
        snprintf(hs->dane.why, sizeof hs->dane.why, "DANE: cannot start the TLSA lookup");
    }
    LOG_D("upstream", "%s %s: %s: %s (%s)", leg->sid, leg->domain, h->name,
          mxg_dane_req_name(hs->dane.req), hs->dane.why);
    return 1;
}
