/* policy/requirement.c — the per-host TLS requirement; see requirement.h. */
#include "requirement.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <stdint.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "../core/str.h"
#include "../core/zero.h"
#include "digest_memo.h"

_Static_assert(MXG_TV_MAX_NAMES >= MXG_OVR_MAX_MATCH, "every match name fits the verify set");
_Static_assert(MXG_TV_NAME_MAX == MXG_MAPFILE_KEY_MAX + 1, "match names are verify names");

const char *mxg_req_level_name(enum mxg_req_level l)
{
    switch (l) {
    case MXG_REQ_SKIP_HOST: return "skip-host";
    case MXG_REQ_PLAINTEXT: return "plaintext";
    case MXG_REQ_MAY: return "may";
    case MXG_REQ_WEBPKI_TESTING: return "webpki-testing";
    case MXG_REQ_ENCRYPT: return "encrypt";
    case MXG_REQ_WEBPKI: return "webpki";
    case MXG_REQ_DANE: return "dane";
    }
    return "?";
}

const char *mxg_req_source_name(enum mxg_req_source s)
{
    switch (s) {
    case MXG_REQ_SRC_DEFAULT: return "default";
    case MXG_REQ_SRC_CONFIG: return "config";
    case MXG_REQ_SRC_OVERRIDE: return "override";
    case MXG_REQ_SRC_DANE: return "dane";
    case MXG_REQ_SRC_MTA_STS: return "mta-sts";
    case MXG_REQ_SRC_LIST: return "list";
    case MXG_REQ_SRC_OPPORTUNISTIC: return "opportunistic";
    }
    return "?";
}

const char *mxg_req_rpt_name(enum mxg_req_rpt r)
{
    switch (r) {
    case MXG_REQ_RPT_NONE: return "no-policy-found";
    case MXG_REQ_RPT_NONE_LIST: return "no-policy-found-list";
    case MXG_REQ_RPT_NONE_OVERRIDE: return "no-policy-found-override";
    case MXG_REQ_RPT_TLSA: return "tlsa";
    case MXG_REQ_RPT_STS: return "sts";
    case MXG_REQ_RPT_STS_FAILED: return "sts-failed";
    }
    return "?";
}

/* ------------------------------------------------------------- inputs */

/* Contract: see requirement.h. */
void mxg_req_inputs_clear(struct mxg_req_inputs *in)
{
    /* everything but the two large results (44 KB, once per message): those are
     * read only behind sts_done / list_active, so their discriminators suffice */
    memset(in, 0, offsetof(struct mxg_req_inputs, sts));
    mxg_sts_result_clear(&in->sts);
    MXG_ZERO_BETWEEN(in, struct mxg_req_inputs, sts, list); /* list_active, padding */
    MXG_ZERO_AFTER(in, struct mxg_req_inputs, list);
    in->list_active = 0;
    in->list.mode = MXG_STS_MODE_NONE;
    in->list.n_mxs = 0;
    in->list.alias[0] = '\0';
}

void mxg_req_inputs_init(struct mxg_req_inputs *in, const struct mxg_policy *policy,
                         const char *domain, const char *nexthop, int nexthop_mx,
                         int nexthop_literal, int opportunistic, int dane_enabled,
                         int sts_enabled)
{
    mxg_req_inputs_clear(in);
    in->policy = *policy;
    if (opportunistic) { /* no override either (RFC 8460 §3) */
        memset(&in->policy, 0, sizeof in->policy);
        in->policy.source = MXG_POL_SRC_OPPORTUNISTIC;
        in->policy.level = MXG_POL_MAY;
        in->policy.plaintext_ok = 1;
        snprintf(in->policy.reason, sizeof in->policy.reason,
                 "opportunistic TLS for this delivery, whatever DANE, MTA-STS and the list say "
                 "(RFC 8460 §3)");
    }
    in->opportunistic = opportunistic != 0;
    in->dane_enabled = dane_enabled != 0;
    in->sts_enabled = sts_enabled != 0;
    in->nexthop_literal = nexthop_literal != 0;
    mxg_str_copy(in->domain, sizeof in->domain, domain ? domain : "");
    mxg_str_copy(in->nexthop, sizeof in->nexthop, nexthop ? nexthop : "");
    in->nexthop_mx = in->nexthop[0] && nexthop_mx && !nexthop_literal;
    mxg_str_copy(in->pol_domain, sizeof in->pol_domain, in->nexthop_mx ? in->nexthop : in->domain);
    /* MTA-STS and the list name MX hosts (RFC 8461 §4): only when the leg
     * routes by MX, never opportunistic, not under overrides but mta-sts */
    in->sts_consulted = !in->opportunistic && (!in->nexthop[0] || in->nexthop_mx) &&
                        mxg_policy_uses_sts(&in->policy);
    in->sts_done = !in->sts_consulted || !in->sts_enabled;
}

void mxg_req_set_sts(struct mxg_req_inputs *in, const struct mxg_sts_result *r)
{
    mxg_sts_result_copy(&in->sts, r);
    in->sts_done = 1;
}

int mxg_req_list_wanted(const struct mxg_req_inputs *in)
{
    return in->sts_consulted && in->sts_done && in->sts.outcome != MXG_STS_POLICY &&
           mxg_policy_override(&in->policy) != MXG_POL_MTA_STS;
}

void mxg_req_set_list(struct mxg_req_inputs *in, const struct mxg_stlist_policy *p)
{
    in->list = *p;
    in->list_active = 1;
}

int mxg_req_dane_consulted(const struct mxg_req_inputs *in, char *why, size_t cap)
{
    if (in->opportunistic || in->nexthop_literal)
        snprintf(why, cap, "%s",
                 in->opportunistic ? "DANE not consulted (opportunistic TLS for this delivery)"
                                   : "no DANE for an address literal next hop");
    else if (!in->dane_enabled)
        snprintf(why, cap, "DANE disabled (dane.enabled = false)");
    else if (!mxg_policy_uses_dane(&in->policy))
        snprintf(why, cap, "DANE not consulted: policy override %s for %s",
                 mxg_policy_level_name(in->policy.level), in->policy.key);
    else
        return 1;
    return 0;
}

const struct mxg_sts_policy *mxg_req_sts_policy(const struct mxg_req_inputs *in)
{
    return in->sts_consulted && in->sts_done && in->sts.outcome == MXG_STS_POLICY
               ? &in->sts.policy : NULL;
}

const struct mxg_sts_result *mxg_req_sts_result(const struct mxg_req_inputs *in)
{
    return in->sts_consulted && in->sts_done && in->sts_enabled ? &in->sts : NULL;
}

/* The WebPKI mode of the domain (docs/ARCHITECTURE.md §Decision rows 3 and 4, §STS over list): an MTA-STS
 * policy in any mode wins; else the policy list's entry; else none. */
static enum mxg_sts_mode pki_mode(const struct mxg_req_inputs *in)
{
    if (!in->sts_done)
        return MXG_STS_MODE_NONE;
    if (in->sts.outcome == MXG_STS_POLICY)
        return in->sts.policy.mode;
    return in->list_active ? in->list.mode : MXG_STS_MODE_NONE;
}

/* "MTA-STS" or "policy list": whose mx patterns the WebPKI mode comes from. */
static const char *pki_name(const struct mxg_req_inputs *in)
{
    return in->sts.outcome == MXG_STS_POLICY ? "MTA-STS" : "policy list";
}

/* Does host match the mx patterns of the WebPKI mode (MTA-STS policy, else list entry)? */
static int pki_allows_host(const struct mxg_req_inputs *in, const char *host)
{
    if (in->sts.outcome == MXG_STS_POLICY)
        return mxg_sts_mx_match(&in->sts.policy, host);
    return mxg_stlist_mx_match(&in->list, host);
}

int mxg_req_domain_check(const struct mxg_req_inputs *in, char *text, size_t cap)
{
    if (in->sts_consulted && in->sts_done && in->sts.outcome == MXG_STS_UNKNOWN) {
        /* a cached policy may apply that we cannot see: fail closed */
        snprintf(text, cap, "MTA-STS policy of %s unknown: %s", in->pol_domain, in->sts.why);
        return -1;
    }
    if (mxg_policy_override(&in->policy) == MXG_POL_MTA_STS &&
        pki_mode(in) != MXG_STS_MODE_ENFORCE) {
        char why[300]; /* as the reply text has always been cut */
        if (!in->sts_consulted)
            snprintf(why, sizeof why, "MTA-STS does not apply to the next hop [%s]", in->nexthop);
        else if (!in->sts_enabled)
            snprintf(why, sizeof why, "MTA-STS is disabled (mta_sts.enabled = false)");
        else if (in->sts.outcome == MXG_STS_POLICY)
            snprintf(why, sizeof why, "its policy is in mode %s",
                     mxg_sts_mode_name(in->sts.policy.mode));
        else
            mxg_str_copy(why, sizeof why, in->sts.why[0] ? in->sts.why : "no policy");
        snprintf(text, cap, "MTA-STS required for %s (policy override mta-sts for %s): %s",
                 in->pol_domain, in->policy.key, why);
        return -2;
    }
    return 0;
}

int mxg_req_route_check(const struct mxg_req_inputs *in, const char *rt_domain, int secure,
                        const char *status_name, char *text, size_t cap)
{
    if (mxg_policy_override(&in->policy) != MXG_POL_DANE_ONLY || secure)
        return 0;
    /* a permanent failure from an answer an attacker could have forged */
    snprintf(text, cap, "DANE required (policy override dane-only for %s): the answer for %s (%s) "
             "is not DNSSEC-secure", in->policy.key, rt_domain, status_name);
    return -1;
}

/* ----------------------------------------------------------- per host */

/* A 4.4.3 DANE failure is about the host's addresses, not its TLSA records. */
static int dane_addr_failure(const struct mxg_dane_host *d)
{
    return d->req == MXG_DANE_UNUSABLE && d->fail == MXG_DANE_FAIL_ADDR;
}

enum mxg_req_rpt mxg_req_tlsrpt_policy(const struct mxg_req_inputs *in,
                                       const struct mxg_dane_host *d, int pki,
                                       int dnssec_invalid)
{
    int tlsa = !pki && (!d || d->req == MXG_DANE_VERIFY || d->req == MXG_DANE_ENCRYPT ||
                        (d->req == MXG_DANE_UNUSABLE && !dane_addr_failure(d)) ||
                        dnssec_invalid);
    if (tlsa)
        return MXG_REQ_RPT_TLSA;
    if (in->sts_done && in->sts.outcome == MXG_STS_POLICY &&
        in->sts.policy.mode != MXG_STS_MODE_NONE)
        return MXG_REQ_RPT_STS;
    if (in->sts_done && in->sts.outcome == MXG_STS_FAILED && in->sts.failure != MXG_STS_FAIL_NONE &&
        !pki)
        return MXG_REQ_RPT_STS_FAILED;
    if (in->list_active)
        return MXG_REQ_RPT_NONE_LIST;
    if (in->policy.source == MXG_POL_SRC_OVERRIDE)
        return MXG_REQ_RPT_NONE_OVERRIDE;
    return MXG_REQ_RPT_NONE;
}

void mxg_req_tlsrpt_addl(const struct mxg_req_inputs *in, enum mxg_req_rpt p, char *out,
                         size_t cap)
{
    if (p == MXG_REQ_RPT_NONE_LIST)
        snprintf(out, cap, "policy list (STARTTLS Everywhere) mode %s",
                 mxg_sts_mode_name(in->list.mode));
    else if (p == MXG_REQ_RPT_NONE_OVERRIDE)
        snprintf(out, cap, "local policy override %s for %s",
                 mxg_policy_level_name(in->policy.level), in->policy.key);
    else if (cap)
        out[0] = 0;
}

void mxg_req_tlsrpt_sts_failure(const struct mxg_req_inputs *in, const char **rtype,
                                const char **reason)
{
    *rtype = mxg_sts_failure_name(in->sts.failure);
    *reason = in->sts.why; /* additional-information is meant for a URI (RFC 8460 §4.3) */
}

/* The host is not usable now. */
static void skip(struct mxg_req *r, enum mxg_req_fail fail, enum mxg_req_source src,
                 const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void skip(struct mxg_req *r, enum mxg_req_fail fail, enum mxg_req_source src,
                 const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->why, sizeof r->why, fmt, ap);
    va_end(ap);
    r->level = MXG_REQ_SKIP_HOST;
    r->source = src;
    r->fail = fail;
    mxg_str_copy(r->enh, sizeof r->enh, fail == MXG_REQ_FAIL_DNS ? "4.4.3" : "4.7.5");
    r->tls_required = 0;
    memset(&r->verify, 0, sizeof r->verify);
}

/* What the session must satisfy (rule 5) and the level that follows. */
static void session_rules(const struct mxg_req_inputs *in, const struct mxg_dane_host *d,
                          struct mxg_req *r)
{
    struct mxg_tls_verify *v = &r->verify;
    mxg_str_copy(v->sni, sizeof v->sni, r->dane == MXG_DANE_VERIFY ? d->base : r->host);
    if (r->dane == MXG_DANE_VERIFY) {
        if (mxg_dane_host_verify(d, v, &r->tlsa_own) < 0) { /* fail closed */
            skip(r, MXG_REQ_FAIL_TLS, MXG_REQ_SRC_DANE,
                 "%s: DANE: out of memory keeping the TLSA records of %s", r->host, d->base);
            return;
        }
    } else if (mxg_policy_override(&in->policy) == MXG_POL_VERIFY) {
        /* the certificate must chain to tls.ca_file and carry a match name */
        r->names_own = calloc(MXG_OVR_MAX_MATCH, sizeof *r->names_own);
        if (!r->names_own) {
            skip(r, MXG_REQ_FAIL_TLS, MXG_REQ_SRC_OVERRIDE, "%s: out of memory", r->host);
            return;
        }
        v->how = MXG_TV_NAMES;
        v->enforce = 1;
        v->n_names = mxg_policy_match_names(&in->policy, r->host,
                                            in->nexthop[0] ? in->nexthop : in->domain,
                                            r->names_own, MXG_OVR_MAX_MATCH);
        for (int i = 0; i < v->n_names; i++)
            v->names[i] = r->names_own[i];
        size_t l = 0;
        for (int i = 0; i < v->n_names; i++)
            if (l + strlen(v->names[i]) + 3 < sizeof r->verify_names)
                l += (size_t)snprintf(r->verify_names + l, sizeof r->verify_names - l, "%s%s",
                                      i ? ", " : "", v->names[i]);
    } else if (r->pki_mode != MXG_STS_MODE_NONE) {
        r->names_own = calloc(1, sizeof *r->names_own);
        if (!r->names_own) {
            skip(r, MXG_REQ_FAIL_TLS, MXG_REQ_SRC_MTA_STS, "%s: out of memory", r->host);
            return;
        }
        v->how = MXG_TV_NAMES;
        v->enforce = r->pki_mode == MXG_STS_MODE_ENFORCE;
        mxg_str_copy(r->names_own[0], sizeof r->names_own[0], r->host);
        v->names[0] = r->names_own[0];
        v->n_names = 1;
    }
    r->tls_required = !in->opportunistic &&
                      (r->dane == MXG_DANE_VERIFY || r->dane == MXG_DANE_ENCRYPT ||
                       r->pki_mode == MXG_STS_MODE_ENFORCE ||
                       !mxg_policy_allows_plaintext(&in->policy));
    if (!r->tries_tls)
        r->level = MXG_REQ_PLAINTEXT;
    else if (v->how == MXG_TV_DANE)
        r->level = MXG_REQ_DANE;
    else if (v->how == MXG_TV_NAMES && v->enforce)
        r->level = MXG_REQ_WEBPKI;
    else if (r->tls_required)
        r->level = MXG_REQ_ENCRYPT;
    else if (v->how == MXG_TV_NAMES)
        r->level = MXG_REQ_WEBPKI_TESTING;
    else
        r->level = MXG_REQ_MAY;
    /* the governing input, as the decisions metric has always named it */
    if (in->opportunistic)
        r->source = MXG_REQ_SRC_OPPORTUNISTIC;
    else if (r->dane == MXG_DANE_VERIFY || r->dane == MXG_DANE_ENCRYPT)
        r->source = MXG_REQ_SRC_DANE;
    else if (r->pki_mode != MXG_STS_MODE_NONE)
        r->source = in->sts.outcome == MXG_STS_POLICY ? MXG_REQ_SRC_MTA_STS : MXG_REQ_SRC_LIST;
    else if (in->policy.source == MXG_POL_SRC_OVERRIDE)
        r->source = MXG_REQ_SRC_OVERRIDE;
    else if (in->policy.source == MXG_POL_SRC_CONFIG)
        r->source = MXG_REQ_SRC_CONFIG;
    else
        r->source = MXG_REQ_SRC_DEFAULT;
}

void mxg_req_clear(struct mxg_req *r)
{
    if (!r)
        return;
    free(r->tlsa_own);
    free(r->names_own);
    memset(r, 0, sizeof *r);
}

struct mxg_req *mxg_req_new(void)
{
    struct mxg_req *r = malloc(sizeof *r);
    if (r) { /* what mxg_req_clear() frees before it zeroes the rest */
        r->tlsa_own = NULL;
        r->names_own = NULL;
    }
    return r;
}

void mxg_req_for_host(const struct mxg_req_inputs *in, const char *host,
                      const struct mxg_dane_host *d, int addrs_bogus, struct mxg_req *r)
{
    mxg_req_clear(r);
    mxg_str_copy(r->host, sizeof r->host, host);
    const char *lvl = mxg_policy_level_name(in->policy.level);
    mxg_str_copy(r->policy_level, sizeof r->policy_level, lvl);
    /* "source/level", cut like snprintf */
    size_t l = mxg_str_copy(r->policy_desc, sizeof r->policy_desc,
                            mxg_policy_source_name(in->policy.source));
    if (l + 1 < sizeof r->policy_desc) {
        r->policy_desc[l] = '/';
        mxg_str_copy(r->policy_desc + l + 1, sizeof r->policy_desc - l - 1, lvl);
    }
    mxg_str_copy(r->ovr_key, sizeof r->ovr_key, in->policy.key);
    mxg_str_copy(r->ovr_origin, sizeof r->ovr_origin, in->policy.origin);
    r->tries_tls = mxg_policy_tries_tls(&in->policy);
    r->dane = r->dane_fact = d->req;
    r->pki_name = pki_name(in);
    int ovr = mxg_policy_override(&in->policy);
    r->override_level = ovr;
    /* 1. "none": the operator's word beats the TLSA records (said loudly) */
    if (!r->tries_tls && d->req != MXG_DANE_NONE && !dane_addr_failure(d)) {
        r->dane = MXG_DANE_NONE;
        r->dane_set_aside = 1;
    }
    r->pki_mode = r->dane == MXG_DANE_VERIFY ? MXG_STS_MODE_NONE : pki_mode(in);
    struct mxg_dane_host eff = *d; /* shallow: the fact as it governs, for the reports */
    eff.req = r->dane;
    r->tlsrpt = mxg_req_tlsrpt_policy(in, &eff, 0, 0);
    if (r->dane == MXG_DANE_UNUSABLE) { /* 2. bogus or failed TLSA / addresses */
        skip(r, dane_addr_failure(d) ? MXG_REQ_FAIL_DNS : MXG_REQ_FAIL_TLS, MXG_REQ_SRC_DANE,
             "%s: %s", host, d->why);
        if (!dane_addr_failure(d) || addrs_bogus) {
            r->skip_report = MXG_REQ_SKIP_RPT_DNSSEC_INVALID;
            r->skip_tlsrpt = mxg_req_tlsrpt_policy(in, &eff, 0, 1);
        }
    } else if (ovr == MXG_POL_DANE_ONLY && r->dane != MXG_DANE_VERIFY) { /* 3. */
        skip(r, MXG_REQ_FAIL_TLS, MXG_REQ_SRC_OVERRIDE,
             "DANE required (policy override dane-only for %s): %s: %s", in->policy.key, host,
             r->dane == MXG_DANE_ENCRYPT ? "only unusable TLSA records" : d->why);
    } else if (r->pki_mode != MXG_STS_MODE_NONE && !pki_allows_host(in, host)) { /* 4. */
        if (r->pki_mode == MXG_STS_MODE_ENFORCE) {
            skip(r, MXG_REQ_FAIL_TLS,
                 in->sts.outcome == MXG_STS_POLICY ? MXG_REQ_SRC_MTA_STS : MXG_REQ_SRC_LIST,
                 "%s: %s is not an MX host allowed by the policy of %s", r->pki_name, host,
                 in->domain);
            r->skip_report = MXG_REQ_SKIP_RPT_MX_NOT_IN_POLICY;
            r->skip_tlsrpt = mxg_req_tlsrpt_policy(in, &eff, 1, 0);
        } else {
            r->not_in_policy = 1; /* testing: the session is reported as that failure */
        }
    }
    if (!r->why[0]) /* not skipped */
        session_rules(in, d, r);
    mxg_req_digest(in, r, d, r->digest);
}

const char *mxg_req_metric_label(const struct mxg_req *r)
{
    switch (r->source) {
    case MXG_REQ_SRC_DANE: return "dane";
    case MXG_REQ_SRC_MTA_STS:
        return r->pki_mode == MXG_STS_MODE_ENFORCE ? "mta-sts" : "mta-sts-testing";
    case MXG_REQ_SRC_LIST:
        return r->pki_mode == MXG_STS_MODE_ENFORCE ? "list" : "list-testing";
    case MXG_REQ_SRC_CONFIG:
    case MXG_REQ_SRC_OVERRIDE: return "config";
    case MXG_REQ_SRC_DEFAULT:
    case MXG_REQ_SRC_OPPORTUNISTIC: return "opportunistic";
    }
    return "?";
}

/* The octets a requirement digest is taken over: every input of the digest in a
 * fixed order, integers as 8 octets, texts and record data behind their length
 * (no two requirements serialise alike, however long a field). In a stack block,
 * on the heap beyond it; oom sticks (the digest is then made unique). */
struct req_ser {
    unsigned char small[2048];
    unsigned char *p; /* small or heap */
    size_t len, cap;
    int oom;
};

static void ser_put(struct req_ser *s, const void *d, size_t n)
{
    if (s->oom || n == 0)
        return;
    if (n > s->cap - s->len) {
        size_t cap = s->cap;
        while (n > cap - s->len) {
            if (cap > SIZE_MAX / 2) {
                s->oom = 1;
                return;
            }
            cap *= 2;
        }
        unsigned char *np = s->p == s->small ? malloc(cap) : realloc(s->p, cap);
        if (!np) {
            s->oom = 1;
            return;
        }
        if (s->p == s->small)
            memcpy(np, s->small, s->len);
        s->p = np;
        s->cap = cap;
    }
    memcpy(s->p + s->len, d, n);
    s->len += n;
}

static void ser_int(struct req_ser *s, long long v)
{
    unsigned char b[8];
    for (int i = 0; i < 8; i++)
        b[i] = (unsigned char)((unsigned long long)v >> (8 * i));
    ser_put(s, b, sizeof b);
}

static void ser_bytes(struct req_ser *s, const void *d, size_t n)
{
    ser_int(s, (long long)n);
    ser_put(s, d, n);
}

static void ser_str(struct req_ser *s, const char *v)
{
    ser_bytes(s, v, strlen(v));
}

/* A digest that matches no other requirement's (the digest could not be made):
 * random, or when even that fails the requirement's address and the monotonic
 * clock in nanoseconds (unique among the requirements alive at one time). */
static void digest_unique(const struct mxg_req *r, unsigned char out[32])
{
    if (RAND_bytes(out, 32) == 1)
        return;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t v[4] = {(uint64_t)(uintptr_t)r, (uint64_t)ts.tv_sec, (uint64_t)ts.tv_nsec, 0x6d78677571ULL};
    memcpy(out, v, 32);
}

/* Serialises everything mxg_req_digest covers (see requirement.h) into s. */
static void req_serialise(const struct mxg_req_inputs *in, const struct mxg_req *r,
                          const struct mxg_dane_host *d, struct req_ser *s)
{
    const struct mxg_policy *p = &in->policy;
    ser_str(s, "req-v2");
    ser_str(s, r->host);
    ser_int(s, in->opportunistic);
    ser_int(s, p->source);
    ser_int(s, p->level);
    ser_int(s, p->plaintext_ok);
    ser_int(s, r->tries_tls);
    ser_str(s, p->key);
    ser_str(s, p->match);
    int hop = p->source == MXG_POL_SRC_OVERRIDE || in->nexthop[0];
    ser_int(s, hop);
    if (hop) {
        ser_str(s, in->domain);
        ser_str(s, in->nexthop);
    }
    /* the DANE fact as it governs, with every usable record whole */
    ser_int(s, r->dane);
    ser_str(s, d->base);
    ser_str(s, d->other);
    int n = d->rr ? d->n_usable : 0;
    ser_int(s, d->n_usable);
    ser_int(s, n);
    for (int i = 0; i < n; i++) {
        const struct mxg_tlsa_rr *t = &d->rr[i];
        unsigned char f[3] = {t->usage, t->selector, t->mtype};
        ser_put(s, f, sizeof f);
        ser_bytes(s, t->data, t->len);
    }
    ser_int(s, r->pki_mode);
    ser_int(s, r->tls_required);
    ser_int(s, r->level);
    ser_str(s, r->enh);
    if (r->pki_mode != MXG_STS_MODE_NONE && in->sts.outcome == MXG_STS_POLICY) {
        ser_int(s, 1);
        ser_str(s, in->sts.id);
        ser_int(s, in->sts.policy.n_mx);
        for (int i = 0; i < in->sts.policy.n_mx; i++)
            ser_str(s, in->sts.policy.mx[i]);
    } else if (r->pki_mode != MXG_STS_MODE_NONE) {
        ser_int(s, 2);
        ser_int(s, in->list.n_mxs);
        for (int i = 0; i < in->list.n_mxs; i++)
            ser_str(s, in->list.mxs[i]);
    } else {
        ser_int(s, 0);
    }
}

void mxg_req_digest(const struct mxg_req_inputs *in, const struct mxg_req *r,
                    const struct mxg_dane_host *d, unsigned char out[32])
{
    struct req_ser s;
    s.p = s.small;
    s.len = 0;
    s.cap = sizeof s.small;
    s.oom = 0;
    req_serialise(in, r, d, &s);
    /* the memo (digest_memo.h) holds digests by these very octets: nothing to invalidate */
    if (s.oom || mxg_digest_memo_sha256(in->memo, s.p, s.len, out) < 0)
        digest_unique(r, out); /* matches nothing: no reuse rather than a wrong one */
    if (s.p != s.small)
        free(s.p);
}

/* ---------------------------------------------------- judging a session */

void mxg_req_no_starttls(const struct mxg_req *r, const char *label, char *out, size_t cap)
{
    if (r->dane != MXG_DANE_NONE)
        snprintf(out, cap, "DANE: %s offers no STARTTLS (%s)", label, mxg_dane_req_name(r->dane));
    else if (r->pki_mode == MXG_STS_MODE_ENFORCE)
        snprintf(out, cap, "%s: %s offers no STARTTLS (mode enforce)", r->pki_name, label);
    else
        snprintf(out, cap, "%s: STARTTLS not offered, policy %s requires TLS", label,
                 r->policy_desc);
}

const char *mxg_req_plaintext_text(const struct mxg_req *r)
{
    return r->tries_tls ? "none (plaintext)" : "none (plaintext: policy override none)";
}

/* WebPKI names without a WebPKI mode: the override verify's match list. */
static int by_override_verify(const struct mxg_req *r)
{
    return r->verify.how == MXG_TV_NAMES && r->pki_mode == MXG_STS_MODE_NONE;
}

int mxg_req_verify_failed(const struct mxg_req *r, const char *label, int no_match,
                          const char *verify_error, char *out, size_t cap)
{
    if (r->verify.how == MXG_TV_DANE) {
        if (no_match)
            snprintf(out, cap, "DANE: no TLSA record matched %s", label);
        else
            snprintf(out, cap, "DANE: verification of %s failed: %s", label, verify_error);
        return 1;
    }
    if (by_override_verify(r)) {
        snprintf(out, cap, "policy override verify for %s: certificate of %s is not valid for %s: "
                 "%s", r->ovr_key, label, r->verify_names, verify_error);
        return 1;
    }
    if (r->verify.how == MXG_TV_NAMES && r->verify.enforce) {
        snprintf(out, cap, "%s: certificate of %s is not valid for %s: %s", r->pki_name, label,
                 r->host, verify_error);
        return 1;
    }
    return 0;
}

void mxg_req_session_ok(const struct mxg_req *r, int resumed, int verify_ok,
                        const char *verify_error, const char *matched, struct mxg_req_session *s)
{
    memset(s, 0, sizeof *s);
    s->report = MXG_REQ_REPORT_SUCCESS;
    if (r->dane == MXG_DANE_VERIFY) {
        snprintf(s->verified, sizeof s->verified, "DANE (%s, base %s)",
                 resumed ? "resumed TLS session" : matched, r->verify.sni);
    } else if (r->dane == MXG_DANE_ENCRYPT) {
        snprintf(s->verified, sizeof s->verified, "unauthenticated (only unusable TLSA)");
        s->report = MXG_REQ_REPORT_TLSA_INVALID;
    } else if (by_override_verify(r)) {
        snprintf(s->verified, sizeof s->verified, "WebPKI %s (policy override verify, match %s)",
                 r->host, r->verify_names);
    } else if (r->override_level == MXG_POL_ENCRYPT) {
        snprintf(s->verified, sizeof s->verified, "unauthenticated (policy override encrypt)");
    } else if (r->pki_mode == MXG_STS_MODE_ENFORCE) {
        snprintf(s->verified, sizeof s->verified, "WebPKI %s (%s enforce)", r->host, r->pki_name);
    } else if (r->pki_mode == MXG_STS_MODE_TESTING) {
        if (verify_ok) {
            snprintf(s->verified, sizeof s->verified, "WebPKI %s (%s testing)", r->host,
                     r->pki_name);
        } else {
            snprintf(s->verified, sizeof s->verified,
                     "unauthenticated: %s testing, WebPKI failed: %s", r->pki_name, verify_error);
            s->report = MXG_REQ_REPORT_VERIFY_ERROR;
            s->warn_testing = 1;
        }
    } else {
        snprintf(s->verified, sizeof s->verified, "unauthenticated (opportunistic)");
    }
    if (resumed && r->dane != MXG_DANE_VERIFY) {
        size_t vl = strlen(s->verified);
        snprintf(s->verified + vl, sizeof s->verified - vl, " (resumed TLS session)");
    }
}

/* ---------------------------------------------------------- describing */

void mxg_req_summary(const struct mxg_req *r, char *out, size_t cap)
{
    snprintf(out, cap, "host=%s level=%s source=%s verify=%s enforce=%d tls=%d skip=%d enh=%s "
             "tlsrpt=%s metric=%s", r->host, mxg_req_level_name(r->level),
             mxg_req_source_name(r->source), mxg_tls_verify_how_name(r->verify.how),
             r->verify.enforce, r->tls_required, r->level == MXG_REQ_SKIP_HOST,
             r->enh[0] ? r->enh : "-",
             mxg_req_rpt_name(r->level == MXG_REQ_SKIP_HOST && r->skip_report ? r->skip_tlsrpt
                                                                               : r->tlsrpt),
             mxg_req_metric_label(r));
}

/* The MTA-STS / list line of a host governed by a WebPKI mode. */
static void describe_pki(const struct mxg_req_inputs *in, const struct mxg_req *r, FILE *out)
{
    int ok = pki_allows_host(in, r->host);
    int sts = in->sts.outcome == MXG_STS_POLICY;
    fprintf(out, "    %s (%s): host %s the %s%s\n", sts ? "MTA-STS" : "policy list",
            mxg_sts_mode_name(r->pki_mode), ok ? "matches" : "does NOT match",
            sts ? "policy's mx patterns" : "list's mxs",
            ok ? "; TLS with a WebPKI certificate for the host required"
               : (r->pki_mode == MXG_STS_MODE_ENFORCE ? ": not used" : ": used anyway (testing)"));
}

void mxg_req_describe(const struct mxg_req_inputs *in, const struct mxg_req *r, FILE *out)
{
    int ovr = mxg_policy_override(&in->policy);
    if (r->level == MXG_REQ_SKIP_HOST) {
        if (r->skip_report == MXG_REQ_SKIP_RPT_MX_NOT_IN_POLICY)
            describe_pki(in, r, out);
        else if (r->dane == MXG_DANE_UNUSABLE)
            fprintf(out, "    requirement: host not usable now (%s)\n", r->enh);
        else
            fprintf(out, "    requirement: DANE required (override dane-only): host NOT usable "
                         "(%s)\n", r->dane == MXG_DANE_ENCRYPT ? "only unusable TLSA records"
                                                               : "no usable secure TLSA records");
        return;
    }
    if (ovr == MXG_POL_VERIFY) {
        fprintf(out, "    requirement: TLS with a WebPKI certificate (tls.ca_file) valid for one "
                     "of:");
        for (int k = 0; k < r->verify.n_names; k++)
            fprintf(out, " %s", r->verify.names[k]);
        fprintf(out, " (override verify)\n");
    } else if (ovr == MXG_POL_ENCRYPT) {
        fprintf(out, "    requirement: TLS, not authenticated (override encrypt)\n");
    } else if (ovr == MXG_POL_NONE) {
        fprintf(out, "    requirement: PLAINTEXT, STARTTLS not used (override none)%s\n",
                r->dane_fact == MXG_DANE_VERIFY || r->dane_fact == MXG_DANE_ENCRYPT ? " — WARNING: this host publishes DANE TLSA records" : "");
    } else if (r->dane == MXG_DANE_VERIFY) {
        fprintf(out, "    requirement: TLS, peer must match a TLSA record (SNI %s)\n",
                r->verify.sni);
    } else if (r->dane == MXG_DANE_ENCRYPT) {
        fprintf(out, "    requirement: TLS, no authentication (only unusable TLSA records)\n");
    } else if (r->pki_mode != MXG_STS_MODE_NONE) {
        describe_pki(in, r, out);
    } else {
        fprintf(out, "    requirement: by policy (below)\n");
    }
}

void mxg_req_describe_domain(const struct mxg_req_inputs *in, FILE *out)
{
    int o = mxg_policy_override(&in->policy);
    const struct mxg_sts_result *sts = mxg_req_sts_result(in);
    if (o >= 0 && o != MXG_POL_MTA_STS)
        fprintf(out, "policy for every host: %s\n", in->policy.reason);
    else if (sts && sts->outcome == MXG_STS_POLICY && sts->policy.mode != MXG_STS_MODE_NONE)
        fprintf(out, "policy for hosts without DANE: MTA-STS %s%s\n",
                mxg_sts_mode_name(sts->policy.mode),
                o == MXG_POL_MTA_STS ? " (override mta-sts: enforce required)" : "");
    else if (in->list_active)
        fprintf(out, "policy for hosts without DANE: policy list %s\n",
                mxg_sts_mode_name(in->list.mode));
    else
        fprintf(out, "policy for hosts without DANE: %s/%s (%s)\n",
                mxg_policy_source_name(in->policy.source),
                mxg_policy_level_name(in->policy.level), in->policy.reason);
}

json_t *mxg_req_json(const struct mxg_req *r)
{
    json_t *names = json_array();
    for (int i = 0; names && i < r->verify.n_names; i++)
        json_array_append_new(names, json_string(r->verify.names[i]));
    int skipped = r->level == MXG_REQ_SKIP_HOST;
    char sum[900];
    mxg_req_summary(r, sum, sizeof sum);
    json_t *o = json_pack(
        "{s:s, s:s, s:s, s:b, s:b, s:{s:s, s:b, s:s, s:o, s:i}, s:b, s:s?, s:s?, s:s, s:s, s:b, "
        "s:s, s:s}",
        "host", r->host, "level", mxg_req_level_name(r->level), "source",
        mxg_req_source_name(r->source), "tls_required", r->tls_required, "starttls", r->tries_tls,
        "verify", "how", mxg_tls_verify_how_name(r->verify.how), "enforce", r->verify.enforce,
        "sni", r->verify.sni, "names", names ? names : json_array(), "tlsa", r->verify.n_tlsa,
        "skip", skipped, "enh", skipped ? r->enh : NULL, "why", skipped ? r->why : NULL,
        "tlsrpt", mxg_req_rpt_name(skipped && r->skip_report ? r->skip_tlsrpt : r->tlsrpt),
        "metric", mxg_req_metric_label(r), "not_in_policy", r->not_in_policy, "dane",
        mxg_dane_req_name(r->dane), "summary", sum);
    return o;
}
