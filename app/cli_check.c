/* app/cli_check.c — see cli_check.h. A small sequential driver: the static route
 * and the policy override (if any), the next hop's hosts, MTA-STS and the
 * list (when they apply), the DANE decision host by host and the
 * requirement the delivery path derives from them (policy/requirement.h,
 * the same function), then (optionally) one probe per host through the
 * delivery code (mxg_leg_probe, which applies the same route and override).
 * With json, the text goes nowhere and one JSON object is printed instead. */
#include "cli_check.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/evp.h>

#include <jansson.h>

#include "../dane/dane.h"
#include "../dns/mxroute.h"
#include "../policy/requirement.h"

struct check {
    const struct mxg_upstream_env *env;
    FILE *out;
    char domain[MXG_DNS_NAME_MAX];
    int connect;
    struct mxg_policy pol;        /* the decision's row 1 / last row (policy/policy.h) */
    char nexthop[MXG_DNS_NAME_MAX]; /* static route's host, "" = MX of the domain */
    int nexthop_mx, nexthop_literal, tlsa_port, port;
    struct mxg_req_inputs *in;    /* what the requirement depends on (heap: it is large) */
    struct mxg_route *route;
    struct mxg_dane_host *dane; /* one per host */
    struct mxg_req *req;        /* one per host: what delivery demands of it */
    json_t *json;               /* --json: the object being built (NULL: text only) */
    json_t *jhosts;
    int cur;
    int usable;   /* hosts not ruled out by DNS */
    int probes_ok;
    int done;
    int status;
    struct mxg_dane_query *dq;
    struct mxg_dns_query *aq;
    struct mxg_leg *leg;
    struct mxg_sts_query *sq;
};

static void next_host(struct check *c);
static void next_probe(struct check *c);

/* The override level (enum mxg_policy_level) when row 1 is an override, else -1. */
static int ovr(const struct check *c)
{
    return mxg_policy_override(&c->in->policy);
}

/* One TLSA record: whole when its data is short (digests, small keys);
 * a long Full(0) record as its size, SHA-256 and first octets. */
static void print_tlsa(struct check *c, const struct mxg_tlsa_rr *rr, const char *what)
{
    char txt[160];
    if (rr->len <= 64) {
        mxg_tlsa_format(rr, txt, sizeof txt);
        fprintf(c->out, "      TLSA %s (%s)\n", txt, what);
        return;
    }
    unsigned char md[32];
    char hex[65];
    unsigned int mdlen = 0;
    hex[0] = 0;
    if (EVP_Digest(rr->data, rr->len, md, &mdlen, EVP_sha256(), NULL) == 1)
        for (unsigned k = 0; k < mdlen && k < 32; k++)
            snprintf(hex + 2 * k, 3, "%02X", md[k]);
    struct mxg_tlsa_rr head = *rr;
    head.len = 16;
    mxg_tlsa_format(&head, txt, sizeof txt);
    fprintf(c->out, "      TLSA %s... (%u octets, SHA-256 %s) (%s)\n", txt, (unsigned)rr->len,
            hex, what);
}

/* Host i's DNSSEC fact (its TLSA records too), then the requirement
 * derived from it, as the delivery path derives it. */
static void print_host_decision(struct check *c, int i)
{
    const struct mxg_dane_host *d = &c->dane[i];
    const struct mxg_route_host *h = &c->route->host[i];
    fprintf(c->out, "    DANE: %s — %s\n", mxg_dane_req_name(d->req), d->why);
    for (int k = 0; k < d->n_usable; k++)
        print_tlsa(c, &d->rr[k], "usable");
    for (int k = 0; k < d->n_all; k++)
        print_tlsa(c, &d->all[k], mxg_tlsa_verdict_name(mxg_tlsa_check(&d->all[k])));
    struct mxg_req *r = &c->req[i];
    mxg_req_for_host(c->in, h->name, d, h->addrs.sec == MXG_SEC_BOGUS, r);
    mxg_req_describe(c->in, r, c->out);
    if (r->level != MXG_REQ_SKIP_HOST && h->addrs.n > 0)
        c->usable++;
    if (c->jhosts) {
        json_t *o = mxg_req_json(r);
        json_t *addrs = json_array();
        for (int k = 0; o && addrs && k < h->addrs.n; k++) {
            char a[64];
            const struct sockaddr_storage *ss = &h->addrs.addr[k];
            if (ss->ss_family == AF_INET)
                uv_ip4_name((const struct sockaddr_in *)ss, a, sizeof a);
            else
                uv_ip6_name((const struct sockaddr_in6 *)ss, a, sizeof a);
            json_array_append_new(addrs, json_string(a));
        }
        if (o) {
            json_object_set_new(o, "pref", json_integer(h->pref));
            json_object_set_new(o, "addresses", addrs ? addrs : json_array());
            json_object_set_new(o, "dnssec", json_string(mxg_dnssec_name(h->addrs.sec)));
            json_object_set_new(o, "dane_fact", json_string(mxg_dane_req_name(d->req)));
            json_object_set_new(o, "dane_why", json_string(d->why));
            json_array_append_new(c->jhosts, o);
        } else {
            json_decref(addrs);
        }
    }
}

/* DANE lookup done for the current host: print its decision, go on with the next host. */
static void on_dane(void *arg, const struct mxg_dane_host *h)
{
    struct check *c = arg;
    c->dq = NULL;
    mxg_dane_host_copy(&c->dane[c->cur], h); /* out of memory: UNUSABLE */
    print_host_decision(c, c->cur);
    c->cur++;
    next_host(c);
}

/* The host line: name, preference, addresses and their DNSSEC status. */
static void print_host(struct check *c, int i)
{
    const struct mxg_route_host *h = &c->route->host[i];
    char addrs[600] = "";
    size_t l = 0;
    for (int k = 0; k < h->addrs.n && l < sizeof addrs - 50; k++) {
        char a[64];
        const struct sockaddr_storage *ss = &h->addrs.addr[k];
        if (ss->ss_family == AF_INET)
            uv_ip4_name((const struct sockaddr_in *)ss, a, sizeof a);
        else
            uv_ip6_name((const struct sockaddr_in6 *)ss, a, sizeof a);
        l += (size_t)snprintf(addrs + l, sizeof addrs - l, "%s%s", k ? " " : "", a);
    }
    if (c->nexthop[0] && !c->nexthop_mx)
        fprintf(c->out, "  next hop [%s]%s\n", h->name, c->nexthop_literal ? " (address)" : "");
    else
        fprintf(c->out, "  %s %d %s%s%s\n", h->implicit ? "implicit MX" : "MX", h->pref, h->name,
                h->addrs.canon[0] && strcmp(h->addrs.canon, h->name) ? " -> CNAME " : "",
                h->addrs.canon[0] && strcmp(h->addrs.canon, h->name) ? h->addrs.canon : "");
    fprintf(c->out, "    addresses: %s (%s, %s)\n", addrs[0] ? addrs : "none",
            mxg_dns_status_name(h->addrs.status), mxg_dnssec_name(h->addrs.sec));
}

/* The DANE decision for host i without DNS (as the delivery path decides
 * it): 1 when decided here. */
static int dane_without_dns(struct check *c, int i)
{
    char why[240];
    if (mxg_req_dane_consulted(c->in, why, sizeof why))
        return 0;
    c->dane[i].req = MXG_DANE_NONE;
    snprintf(c->dane[i].why, sizeof c->dane[i].why, "%s", why);
    return 1;
}

/* --json: the domain-wide reason no host is tried now. */
static void json_deferred(struct check *c, int code, const char *enh, const char *text)
{
    if (c->json)
        json_object_set_new(c->json, "deferred",
                            json_pack("{s:i, s:s, s:s}", "code", code, "enh", enh, "text", text));
}

/* Explain the remaining hosts one by one (DANE lookups through on_dane), then the verdict
 * or the probes. */
static void next_host(struct check *c)
{
    while (c->cur < c->route->n) {
        int i = c->cur;
        print_host(c, i);
        if (dane_without_dns(c, i)) {
            print_host_decision(c, i);
            c->cur++;
            continue;
        }
        int rc = mxg_dane_host_lookup(c->env->dns, c->route->mx_sec, c->route->host[i].name,
                                      &c->route->host[i].addrs, c->tlsa_port, &c->dane[i],
                                      on_dane, c, &c->dq);
        if (rc == 0)
            return; /* on_dane continues */
        if (rc < 0) { /* as the delivery path: fail closed */
            mxg_dane_host_unusable(&c->dane[i], MXG_DANE_FAIL_TLSA,
                                   "DANE: cannot start the TLSA lookup");
        }
        print_host_decision(c, i);
        c->cur++;
    }
    mxg_req_describe_domain(c->in, c->out);
    char text[700];
    int dc = mxg_req_domain_check(c->in, text, sizeof text);
    if (dc == -1)
        fprintf(c->out, "MTA-STS: the policy cache could not be read: every delivery is deferred "
                        "(451 4.7.5) until a valid policy can be fetched or the cache is fixed\n");
    else if (dc < 0)
        fprintf(c->out, "override mta-sts: no MTA-STS policy in enforce mode for %s: every "
                        "delivery is deferred (451 4.7.5)\n", c->in->pol_domain);
    if (dc < 0) {
        c->usable = 0;
        json_deferred(c, 451, "4.7.5", text);
    }
    if (!c->connect) {
        c->status = c->usable > 0 ? 0 : 1;
        fprintf(c->out, "verdict: %s (%d usable MX host%s)\n",
                c->status == 0 ? "deliverable" : "NOT deliverable now", c->usable,
                c->usable == 1 ? "" : "s");
        c->done = 1;
        return;
    }
    fprintf(c->out, "probes:\n");
    c->cur = 0;
    next_probe(c);
}

/* --connect: one probe leg answered; print OK/FAILED and probe the next host. */
static void probe_reply(void *arg, struct mxg_leg *leg, const struct mxg_reply *r)
{
    struct check *c = arg;
    char sum[600];
    mxg_reply_summary(r, sum, sizeof sum);
    int ok = r->code / 100 == 2;
    c->probes_ok += ok;
    fprintf(c->out, "  %s: %s %s\n", c->route->host[c->cur].name, ok ? "OK" : "FAILED", sum);
    mxg_leg_close(leg);
    c->leg = NULL;
    c->cur++;
    next_probe(c);
}

/* --connect: probe the next host through the delivery code (mxg_leg_probe), or finish. */
static void next_probe(struct check *c)
{
    static const struct mxg_leg_cbs cbs = {probe_reply, NULL};
    if (c->cur < c->route->n) {
        c->leg = mxg_leg_probe(c->env, c->domain, c->route->host[c->cur].name, &cbs, c);
        if (c->leg)
            return;
        fprintf(c->out, "  %s: FAILED cannot start probe\n", c->route->host[c->cur].name);
        c->cur++;
        next_probe(c);
        return;
    }
    c->status = c->probes_ok > 0 ? 0 : 1;
    fprintf(c->out, "verdict: %s (%d of %d MX host%s accepted a connection under the policy)\n",
            c->status == 0 ? "deliverable" : "NOT deliverable now", c->probes_ok, c->route->n,
            c->route->n == 1 ? "" : "s");
    c->done = 1;
}

/* The MTA-STS result the requirement uses: outcome, policy, failure. */
/* The resolver path the lookups go to (dns.mode; auto: the one it chose). */
static void print_dns_mode(struct check *c)
{
    static const char *const modes[] = {"stub", "recursive", "auto"};
    const struct mxg_config *cfg = c->env->cfg;
    enum mxg_dns_path p = mxg_dns_path_in_use(c->env->dns);
    const char *configured = (unsigned)cfg->dns_mode < 3 ? modes[cfg->dns_mode] : "?";
    fprintf(c->out, "dns %s (dns.mode \"%s\"): %s\n", mxg_dns_path_name(p), configured,
            mxg_dns_path_desc(c->env->dns, p));
    if (c->json)
        json_object_set_new(c->json, "dns",
                            json_pack("{s:s, s:s, s:s}", "mode", mxg_dns_path_name(p),
                                      "configured", configured, "via",
                                      mxg_dns_path_desc(c->env->dns, p)));
}

static void print_sts(struct check *c)
{
    const struct mxg_sts_result *r = &c->in->sts;
    fprintf(c->out, "MTA-STS: %s — %s\n", mxg_sts_outcome_name(r->outcome), r->why);
    if (r->outcome == MXG_STS_POLICY) {
        fprintf(c->out, "  policy id %s, mode %s, max_age %u, %s, expires in %llds\n", r->id,
                mxg_sts_mode_name(r->policy.mode), r->policy.max_age,
                r->from_cache ? "from the cache" : "freshly fetched",
                (long long)(r->expires_at - (int64_t)time(NULL)));
        for (int i = 0; i < r->policy.n_mx; i++)
            fprintf(c->out, "  mx: %s\n", r->policy.mx[i]);
    }
    if (r->failure != MXG_STS_FAIL_NONE)
        fprintf(c->out, "  failure: %s\n", mxg_sts_failure_name(r->failure));
}

/* docs/ARCHITECTURE.md §STS over list: the list applies only when MTA-STS gives no policy (and
 * never under an override: "mta-sts" wants MTA-STS itself). */
static void print_list(struct check *c)
{
    if (!c->env->stlist) {
        fprintf(c->out, "policy list: none configured\n");
        return;
    }
    int64_t now = (int64_t)time(NULL);
    struct mxg_stlist_status st;
    mxg_stlist_store_status(c->env->stlist, now, &st);
    const struct mxg_stlist *l = mxg_stlist_store_current(c->env->stlist, now);
    if (!l) {
        fprintf(c->out, "policy list: %s\n",
                st.have ? "EXPIRED, not used" : "no verified list loaded");
        return;
    }
    const struct mxg_stlist_policy *p = mxg_stlist_lookup(l, c->in->pol_domain);
    if (!p) {
        fprintf(c->out, "policy list: %s is not on the list\n", c->in->pol_domain);
        return;
    }
    int used = mxg_req_list_wanted(c->in);
    fprintf(c->out, "policy list: entry mode %s%s%s — %s\n", mxg_sts_mode_name(p->mode),
            p->alias[0] ? " via alias " : "", p->alias,
            used ? "APPLIES (no MTA-STS policy)"
                 : ovr(c) >= 0 ? "not used under the override"
                               : "not used: the MTA-STS policy wins");
    for (int i = 0; i < p->n_mxs; i++)
        fprintf(c->out, "  mxs: %s\n", p->mxs[i]);
    if (used) /* the hosts' eligibility is then judged by the list's patterns */
        mxg_req_set_list(c->in, p);
}

/* MTA-STS lookup done: hand it to the requirement inputs, print it and the list, go on. */
static void on_sts(void *arg, const struct mxg_sts_result *r)
{
    struct check *c = arg;
    c->sq = NULL;
    mxg_req_set_sts(c->in, r);
    print_sts(c);
    print_list(c);
    next_host(c);
}

/* The MX set (or next hop) resolved: the domain-wide verdicts (null MX, NXDOMAIN, lookup
 * failure), else MTA-STS and the list, then the hosts. */
static void on_route(void *arg, const struct mxg_route *rt)
{
    struct check *c = arg;
    const char *what = c->nexthop[0] ? "next hop" : "MX";
    char text[700];
    if ((rt->status == MXG_ROUTE_NULL_MX || rt->status == MXG_ROUTE_NXDOMAIN) &&
        mxg_req_route_check(c->in, rt->domain, rt->mx_sec == MXG_SEC_SECURE,
                            mxg_route_status_name(rt->status), text, sizeof text) < 0) {
        json_deferred(c, 451, "4.7.5", text);
        fprintf(c->out, "%s: %s (%s), not DNSSEC-secure\nverdict: NOT deliverable now "
                        "(451 4.7.5: DANE required, the answer could be forged)\n",
                what, rt->why, mxg_dnssec_name(rt->mx_sec));
        c->status = 1;
        c->done = 1;
        return;
    }
    if (c->nexthop[0] && rt->status != MXG_ROUTE_OK) {
        json_deferred(c, 451, "4.4.3", rt->why);
        fprintf(c->out, "%s %s: %s%s%s\nverdict: NOT deliverable now (451 4.4.3: the configured "
                        "next hop does not resolve)\n", what, c->nexthop,
                mxg_route_status_name(rt->status), rt->why[0] ? ": " : "", rt->why);
        c->status = 1;
        c->done = 1;
        return;
    }
    switch (rt->status) {
    case MXG_ROUTE_NULL_MX:
        json_deferred(c, 556, "5.1.10", "null MX");
        fprintf(c->out, "MX: null MX (RFC 7505), %s: the domain accepts no mail\nverdict: never deliverable (556 5.1.10)\n",
                mxg_dnssec_name(rt->mx_sec));
        c->status = 2;
        c->done = 1;
        return;
    case MXG_ROUTE_NXDOMAIN:
        json_deferred(c, 550, "5.1.2", rt->why);
        fprintf(c->out, "MX: %s\nverdict: never deliverable (550 5.1.2)\n", rt->why);
        c->status = 2;
        c->done = 1;
        return;
    case MXG_ROUTE_TEMPFAIL:
        json_deferred(c, 451, "4.4.3", rt->why);
        fprintf(c->out, "MX: lookup failed: %s (%s)\nverdict: NOT deliverable now (451 4.4.3)\n",
                rt->why, mxg_dnssec_name(rt->mx_sec));
        c->status = 1;
        c->done = 1;
        return;
    case MXG_ROUTE_OK:
        break;
    }
    c->route = mxg_route_copy(rt);
    c->dane = calloc(rt->n > 0 ? (size_t)rt->n : 1, sizeof *c->dane);
    c->req = calloc(rt->n > 0 ? (size_t)rt->n : 1, sizeof *c->req);
    if (!c->route || !c->dane || !c->req) {
        c->status = 1;
        c->done = 1;
        return;
    }
    if (c->nexthop[0] && !c->nexthop_mx)
        fprintf(c->out, "next hop [%s]: no MX lookup; %s\n", c->nexthop,
                c->nexthop_literal ? "an address: no DANE"
                                   : "its name comes from the configuration: DANE applies if its "
                                     "addresses are DNSSEC-secure");
    else
        fprintf(c->out, "MX RRset%s%s: %s, %d host%s (DNSSEC %s)\n", c->nexthop[0] ? " of " : "",
                c->nexthop, mxg_dnssec_name(rt->mx_sec), rt->n, rt->n == 1 ? "" : "s",
                rt->mx_sec == MXG_SEC_SECURE ? "secure: DANE applies per host"
                                             : "not secure: no DANE");
    if (!c->in->sts_consulted) {
        fprintf(c->out, "MTA-STS: not consulted (%s)\n",
                ovr(c) >= 0 && ovr(c) != MXG_POL_MTA_STS
                    ? "the policy override replaces it"
                    : "a [host] next hop has no MX hosts for a policy to name");
        next_host(c);
        return;
    }
    if (c->env->sts && mxg_sts_get(c->env->sts, c->in->pol_domain, on_sts, c, &c->sq) == 0)
        return; /* on_sts continues */
    fprintf(c->out, "MTA-STS: not consulted (mta_sts.enabled = false)\n");
    print_list(c);
    next_host(c);
}

/* "[host]" next hop: a route of one host, as proxy/outbound/leg_connect.c builds it
 * (its name is configured, so only its addresses must be secure). */
static void on_nexthop_addr(void *arg, const struct mxg_addr_result *res)
{
    struct check *c = arg;
    c->aq = NULL;
    struct mxg_route *rt = calloc(1, sizeof *rt);
    if (!rt) {
        c->status = 1;
        c->done = 1;
        return;
    }
    snprintf(rt->domain, sizeof rt->domain, "%s", c->nexthop);
    if (res->status != MXG_DNS_OK) {
        rt->status = MXG_ROUTE_TEMPFAIL;
        snprintf(rt->why, sizeof rt->why, "address lookup: %s",
                 res->why[0] ? res->why : mxg_dns_status_name(res->status));
    } else {
        rt->status = MXG_ROUTE_OK;
        rt->mx_sec = MXG_SEC_SECURE;
        rt->n = 1;
        snprintf(rt->host[0].name, sizeof rt->host[0].name, "%s", c->nexthop);
        rt->host[0].addrs = *res;
    }
    on_route(c, rt);
    free(rt);
}

/* An address-literal next hop: a route of one host, no DNS. 0, or -1 (bad literal, memory). */
static int literal_route(struct check *c)
{
    char buf[MXG_DNS_NAME_MAX];
    snprintf(buf, sizeof buf, "%s", c->nexthop);
    const char *s = buf;
    if (strncasecmp(s, "IPv6:", 5) == 0)
        s += 5;
    struct mxg_route *rt = calloc(1, sizeof *rt);
    if (!rt)
        return -1;
    struct sockaddr_storage *ss = &rt->host[0].addrs.addr[0];
    if (uv_ip4_addr(s, 0, (struct sockaddr_in *)ss) != 0 &&
        uv_ip6_addr(s, 0, (struct sockaddr_in6 *)ss) != 0) {
        free(rt);
        return -1;
    }
    rt->status = MXG_ROUTE_OK;
    rt->mx_sec = MXG_SEC_INSECURE;
    rt->n = 1;
    snprintf(rt->domain, sizeof rt->domain, "%s", c->nexthop);
    snprintf(rt->host[0].name, sizeof rt->host[0].name, "%s", c->nexthop);
    rt->host[0].addrs.status = MXG_DNS_OK;
    rt->host[0].addrs.sec = MXG_SEC_INSECURE;
    rt->host[0].addrs.n = 1;
    on_route(c, rt);
    free(rt);
    return 0;
}

/* Print the route and the override; fill c's next hop and policy. */
static void decide(struct check *c)
{
    const struct mxg_policy_maps *maps = c->env->maps;
    const struct mxg_static_route *sr =
        maps ? mxg_route_map_lookup(maps->routes, c->domain) : NULL;
    c->tlsa_port = 25;
    if (sr) {
        char hop[300];
        struct in_addr a4;
        struct in6_addr a6;
        snprintf(c->nexthop, sizeof c->nexthop, "%s", sr->nh.host);
        c->nexthop_mx = sr->nh.mx;
        c->nexthop_literal = inet_pton(AF_INET, c->nexthop, &a4) == 1 ||
                             inet_pton(AF_INET6, c->nexthop, &a6) == 1;
        if (sr->nh.port)
            c->tlsa_port = c->port = sr->nh.port;
        mxg_static_route_format(sr, hop, sizeof hop);
        fprintf(c->out, "route: %s, port %d (static route %s, %s:%d)\n", hop,
                sr->nh.port ? sr->nh.port : c->env->cfg->upstream_port, sr->key,
                mxg_route_map_source(maps->routes), sr->line);
    } else {
        fprintf(c->out, "route: the MX hosts of %s (%s)\n", c->domain,
                maps && maps->routes ? "no static route matches" : "no upstream.route_map");
    }
    mxg_policy_decide(c->env->cfg, maps ? maps->overrides : NULL, c->domain,
                      c->nexthop[0] ? c->nexthop : NULL, &c->pol);
    if (c->pol.source == MXG_POL_SRC_OVERRIDE)
        fprintf(c->out, "policy source: override (tls.policy_map) — %s\n", c->pol.reason);
    else
        fprintf(c->out, "policy source: no override (%s); DANE, MTA-STS, the policy list, then "
                        "%s/%s\n", maps && maps->overrides ? "tls.policy_map has no entry"
                                                           : "no tls.policy_map",
                mxg_policy_source_name(c->pol.source), mxg_policy_level_name(c->pol.level));
    mxg_req_inputs_init(c->in, &c->pol, c->domain, c->nexthop, c->nexthop_mx,
                        c->nexthop_literal, 0, c->env->cfg->dane_enabled, c->env->sts != NULL);
    if (c->json) {
        if (!c->port)
            c->port = c->env->cfg->upstream_port;
        json_object_set_new(c->json, "route",
                            json_pack("{s:s, s:b, s:b, s:i, s:s?}", "nexthop", c->nexthop,
                                      "nexthop_mx", c->in->nexthop_mx, "literal",
                                      c->nexthop_literal, "port", c->port, "static_route",
                                      sr ? sr->key : NULL));
        json_object_set_new(c->json, "policy",
                            json_pack("{s:s, s:s, s:s?, s:s}", "source",
                                      mxg_policy_source_name(c->pol.source), "level",
                                      mxg_policy_level_name(c->pol.level), "override",
                                      c->pol.source == MXG_POL_SRC_OVERRIDE ? c->pol.key : NULL,
                                      "reason", c->pol.reason));
    }
}

/* --json: the MTA-STS and list facts the requirement was computed from. */
static void json_policies(struct check *c)
{
    const struct mxg_sts_result *r = mxg_req_sts_result(c->in);
    const struct mxg_sts_policy *p = mxg_req_sts_policy(c->in);
    json_object_set_new(c->json, "mta_sts",
                        json_pack("{s:b, s:s, s:s, s:s?}", "consulted", c->in->sts_consulted,
                                  "outcome", r ? mxg_sts_outcome_name(r->outcome) : "not-consulted",
                                  "mode", mxg_sts_mode_name(p ? p->mode : MXG_STS_MODE_NONE),
                                  "id", p ? r->id : NULL));
    json_object_set_new(c->json, "list",
                        json_pack("{s:b, s:s}", "applies", c->in->list_active, "mode",
                                  mxg_sts_mode_name(c->in->list_active ? c->in->list.mode
                                                                        : MXG_STS_MODE_NONE)));
}

int mxg_check_domain(const struct mxg_upstream_env *env, const char *domain, int connect,
                     FILE *out)
{
    return mxg_check_domain_opts(env, domain, connect ? MXG_CHECK_CONNECT : 0, out);
}

int mxg_check_domain_opts(const struct mxg_upstream_env *env, const char *domain, int flags,
                          FILE *out)
{
    struct check c;
    memset(&c, 0, sizeof c);
    c.env = env;
    c.out = out;
    c.connect = (flags & MXG_CHECK_CONNECT) != 0;
    c.in = calloc(1, sizeof *c.in);
    FILE *devnull = NULL;
    if (flags & MXG_CHECK_JSON) {
        c.json = json_object();
        c.jhosts = json_array();
        c.out = devnull = fopen("/dev/null", "w");
        c.connect = 0;
    }
    if (!c.in || ((flags & MXG_CHECK_JSON) && (!c.json || !c.jhosts || !c.out))) {
        fprintf(out, "mxguard check: out of memory\n");
        c.status = 1;
        goto done;
    }
    if (mxg_domain_alabel(domain, c.domain, sizeof c.domain) < 0) {
        fprintf(out, "%s: not a valid domain name\n", domain);
        c.status = 2;
        goto done;
    }
    size_t l = strlen(c.domain);
    if (l > 0 && c.domain[l - 1] == '.')
        c.domain[l - 1] = 0;
    fprintf(c.out, "domain %s\n", c.domain);
    if (c.json)
        json_object_set_new(c.json, "domain", json_string(c.domain));
    print_dns_mode(&c);
    decide(&c);
    int rc;
    struct mxg_route_query *rq = NULL;
    if (c.nexthop_literal) {
        rc = literal_route(&c);
    } else if (c.nexthop[0] && !c.nexthop_mx) {
        rc = mxg_dns_lookup_addr(env->dns, c.nexthop, on_nexthop_addr, &c, &c.aq);
    } else {
        rc = mxg_route_resolve(env->dns, c.nexthop[0] ? c.nexthop : c.domain,
                               env->cfg->max_mx_hosts, on_route, &c, &rq);
    }
    if (rc < 0) {
        fprintf(c.out, "cannot start the %s lookup\n", c.nexthop[0] ? "next hop" : "MX");
        c.status = 1;
        goto done;
    }
    while (!c.done && uv_run(env->loop, UV_RUN_ONCE))
        ;
    if (!c.done)
        c.status = 1;
done:
    if (c.json) {
        if (c.in)
            json_policies(&c);
        json_object_set_new(c.json, "hosts", c.jhosts);
        json_object_set_new(c.json, "usable", json_integer(c.usable));
        json_object_set_new(c.json, "status", json_integer(c.status));
        json_object_set_new(c.json, "verdict",
                            json_string(c.status == 0   ? "deliverable"
                                        : c.status == 1 ? "not-deliverable-now"
                                                        : "never-deliverable"));
        if (!json_object_get(c.json, "deferred"))
            json_object_set_new(c.json, "deferred", json_null());
        char *txt = json_dumps(c.json, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        if (txt)
            fprintf(out, "%s\n", txt);
        free(txt);
        json_decref(c.json);
    }
    if (devnull)
        fclose(devnull);
    for (int i = 0; c.dane && c.route && i < c.route->n; i++) {
        if (c.req)
            mxg_req_clear(&c.req[i]);
        mxg_dane_host_clear(&c.dane[i]);
    }
    free(c.route);
    free(c.dane);
    free(c.req);
    free(c.in);
    return c.status;
}
