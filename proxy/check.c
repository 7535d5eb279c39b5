/* proxy/check.c — see check.h. A small sequential driver: route, then the
 * DANE decision host by host, then (optionally) one probe per host. */
#include "check.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../dane/dane.h"
#include "../dane/mxroute.h"

struct check {
    const struct mxg_upstream_env *env;
    FILE *out;
    char domain[MXG_DNS_NAME_MAX];
    int connect;
    struct mxg_route *route;
    struct mxg_dane_host *dane; /* one per host */
    int cur;
    int usable;   /* hosts not ruled out by DNS */
    int probes_ok;
    int done;
    int status;
    struct mxg_dane_query *dq;
    struct mxg_leg *leg;
    struct mxg_sts_query *sq;
    int have_sts;
    struct mxg_sts_result sts;
    int list_used;
    struct mxg_stlist_policy list_pol;
};

static void next_host(struct check *c);
static void next_probe(struct check *c);

static void print_host_decision(struct check *c, int i)
{
    const struct mxg_dane_host *d = &c->dane[i];
    fprintf(c->out, "    DANE: %s — %s\n", mxg_dane_req_name(d->req), d->why);
    for (int k = 0; k < d->n_usable; k++) {
        char rr[200];
        mxg_tlsa_format(&d->rr[k], rr, sizeof rr);
        fprintf(c->out, "      TLSA %s (usable)\n", rr);
    }
    if (d->req == MXG_DANE_VERIFY)
        fprintf(c->out, "    requirement: TLS, peer must match a TLSA record (SNI %s)\n", d->base);
    else if (d->req == MXG_DANE_ENCRYPT)
        fprintf(c->out, "    requirement: TLS, no authentication (only unusable TLSA records)\n");
    else if (d->req == MXG_DANE_UNUSABLE)
        fprintf(c->out, "    requirement: host not usable now (%s)\n", d->enh);
    else if (c->have_sts && c->sts.outcome == MXG_STS_POLICY &&
             c->sts.policy.mode != MXG_STS_MODE_NONE) {
        int ok = mxg_sts_mx_match(&c->sts.policy, c->route->host[i].name);
        fprintf(c->out, "    MTA-STS (%s): host %s the policy's mx patterns%s\n",
                mxg_sts_mode_name(c->sts.policy.mode), ok ? "matches" : "does NOT match",
                ok ? "; TLS with a WebPKI certificate for the host required"
                   : (c->sts.policy.mode == MXG_STS_MODE_ENFORCE ? ": not used"
                                                                 : ": used anyway (testing)"));
        if (!ok && c->sts.policy.mode == MXG_STS_MODE_ENFORCE && d->req != MXG_DANE_UNUSABLE &&
            c->route->host[i].addrs.n > 0)
            c->usable--;
    } else if (c->list_used) {
        int ok = mxg_stlist_mx_match(&c->list_pol, c->route->host[i].name);
        fprintf(c->out, "    policy list (%s): host %s the list's mxs%s\n",
                mxg_sts_mode_name(c->list_pol.mode), ok ? "matches" : "does NOT match",
                ok ? "; TLS with a WebPKI certificate for the host required"
                   : (c->list_pol.mode == MXG_STS_MODE_ENFORCE ? ": not used" : ": used anyway (testing)"));
        if (!ok && c->list_pol.mode == MXG_STS_MODE_ENFORCE && d->req != MXG_DANE_UNUSABLE &&
            c->route->host[i].addrs.n > 0)
            c->usable--;
    } else
        fprintf(c->out, "    requirement: by policy (below)\n");
    if (d->req != MXG_DANE_UNUSABLE && c->route->host[i].addrs.n > 0)
        c->usable++;
}

static void on_dane(void *arg, const struct mxg_dane_host *h)
{
    struct check *c = arg;
    c->dq = NULL;
    c->dane[c->cur] = *h;
    print_host_decision(c, c->cur);
    c->cur++;
    next_host(c);
}

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
    fprintf(c->out, "  %s %d %s%s%s\n", h->implicit ? "implicit MX" : "MX", h->pref, h->name,
            h->addrs.canon[0] && strcmp(h->addrs.canon, h->name) ? " -> CNAME " : "",
            h->addrs.canon[0] && strcmp(h->addrs.canon, h->name) ? h->addrs.canon : "");
    fprintf(c->out, "    addresses: %s (%s, %s)\n", addrs[0] ? addrs : "none",
            mxg_dns_status_name(h->addrs.status), mxg_dnssec_name(h->addrs.sec));
}

static void next_host(struct check *c)
{
    while (c->cur < c->route->n) {
        int i = c->cur;
        print_host(c, i);
        if (!c->env->cfg->dane_enabled) {
            c->dane[i].req = MXG_DANE_NONE;
            snprintf(c->dane[i].why, sizeof c->dane[i].why, "DANE disabled (dane.enabled = false)");
            print_host_decision(c, i);
            c->cur++;
            continue;
        }
        int rc = mxg_dane_host_lookup(c->env->dns, c->route->mx_sec, c->route->host[i].name,
                                      &c->route->host[i].addrs, 25, &c->dane[i], on_dane, c,
                                      &c->dq);
        if (rc == 0)
            return; /* on_dane continues */
        if (rc < 0) {
            c->dane[i].req = MXG_DANE_UNUSABLE;
            snprintf(c->dane[i].why, sizeof c->dane[i].why, "out of memory");
        }
        print_host_decision(c, i);
        c->cur++;
    }
    struct mxg_policy pol;
    mxg_policy_decide(c->env->cfg, c->domain, &pol);
    if (c->have_sts && c->sts.outcome == MXG_STS_POLICY && c->sts.policy.mode != MXG_STS_MODE_NONE)
        fprintf(c->out, "policy for hosts without DANE: MTA-STS %s\n",
                mxg_sts_mode_name(c->sts.policy.mode));
    else if (c->list_used)
        fprintf(c->out, "policy for hosts without DANE: policy list %s\n",
                mxg_sts_mode_name(c->list_pol.mode));
    else
        fprintf(c->out, "policy for hosts without DANE: %s/%s (%s)\n",
                mxg_policy_source_name(pol.source), mxg_policy_level_name(pol.level), pol.reason);
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

static void print_sts(struct check *c)
{
    const struct mxg_sts_result *r = &c->sts;
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

/* DESIGN §2 row 4: the list applies only when MTA-STS gives no policy. */
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
    const struct mxg_stlist_policy *p = mxg_stlist_lookup(l, c->domain);
    if (!p) {
        fprintf(c->out, "policy list: %s is not on the list\n", c->domain);
        return;
    }
    int used = !c->have_sts || c->sts.outcome != MXG_STS_POLICY;
    fprintf(c->out, "policy list: entry mode %s%s%s — %s\n", mxg_sts_mode_name(p->mode),
            p->alias[0] ? " via alias " : "", p->alias,
            used ? "APPLIES (no MTA-STS policy)" : "not used: the MTA-STS policy wins");
    for (int i = 0; i < p->n_mxs; i++)
        fprintf(c->out, "  mxs: %s\n", p->mxs[i]);
    if (used) {
        /* the hosts' eligibility is then judged by the list's patterns */
        c->list_pol = *p;
        c->list_used = 1;
    }
}

static void on_sts(void *arg, const struct mxg_sts_result *r)
{
    struct check *c = arg;
    c->sq = NULL;
    c->sts = *r;
    c->have_sts = 1;
    print_sts(c);
    print_list(c);
    next_host(c);
}

static void on_route(void *arg, const struct mxg_route *rt)
{
    struct check *c = arg;
    fprintf(c->out, "domain %s\n", c->domain);
    switch (rt->status) {
    case MXG_ROUTE_NULL_MX:
        fprintf(c->out, "MX: null MX (RFC 7505), %s: the domain accepts no mail\nverdict: never deliverable (556 5.1.10)\n",
                mxg_dnssec_name(rt->mx_sec));
        c->status = 2;
        c->done = 1;
        return;
    case MXG_ROUTE_NXDOMAIN:
        fprintf(c->out, "MX: %s\nverdict: never deliverable (550 5.1.2)\n", rt->why);
        c->status = 2;
        c->done = 1;
        return;
    case MXG_ROUTE_TEMPFAIL:
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
    if (!c->route || !c->dane) {
        c->status = 1;
        c->done = 1;
        return;
    }
    fprintf(c->out, "MX RRset: %s, %d host%s (DNSSEC %s)\n", mxg_dnssec_name(rt->mx_sec), rt->n,
            rt->n == 1 ? "" : "s", rt->mx_sec == MXG_SEC_SECURE ? "secure: DANE applies per host"
                                                                 : "not secure: no DANE");
    if (c->env->sts && mxg_sts_get(c->env->sts, c->domain, on_sts, c, &c->sq) == 0)
        return; /* on_sts continues */
    fprintf(c->out, "MTA-STS: not consulted (mta_sts.enabled = false)\n");
    print_list(c);
    next_host(c);
}

int mxg_check_domain(const struct mxg_upstream_env *env, const char *domain, int connect,
                     FILE *out)
{
    struct check c;
    memset(&c, 0, sizeof c);
    c.env = env;
    c.out = out;
    c.connect = connect;
    if (mxg_domain_alabel(domain, c.domain, sizeof c.domain) < 0) {
        fprintf(out, "%s: not a valid domain name\n", domain);
        return 2;
    }
    size_t l = strlen(c.domain);
    if (l > 0 && c.domain[l - 1] == '.')
        c.domain[l - 1] = 0;
    struct mxg_route_query *rq;
    if (mxg_route_resolve(env->dns, c.domain, env->cfg->max_mx_hosts, on_route, &c, &rq) < 0) {
        fprintf(out, "cannot start the MX lookup\n");
        return 1;
    }
    while (!c.done && uv_run(env->loop, UV_RUN_ONCE))
        ;
    if (!c.done)
        c.status = 1;
    free(c.route);
    free(c.dane);
    return c.status;
}
