/* proxy/outbound/leg_watch.c — what a finished leg tells its observer
 * (env->watch: the status page's tally) and the leg's decision as
 * `mxguard check` prints it, from what the leg holds (upstream.h); see
 * leg_int.h. No lookup, no I/O but the FILE the caller gives. */
#include "leg_int.h"

#include <stdio.h>
#include <string.h>

/* The requirement of the last MX host the leg decided, or NULL. */
static const struct mxg_req *last_req(const struct mxg_leg *leg)
{
    if (!leg->route || !leg->hosts)
        return NULL;
    for (int i = leg->route->n - 1; i >= 0; i--)
        if (leg->hosts[i].req)
            return leg->hosts[i].req;
    return NULL;
}

/* Tell env->watch once that this leg's transaction ended (ok: 2xx to the dot). */
void leg_watch_end(struct mxg_leg *leg, int ok, const struct mxg_reply *r)
{
    const struct mxg_leg_watch *w = leg->env->watch;
    if (!w || !w->on_end || leg->watched || leg->probe || leg->no_tlsrpt)
        return;
    leg->watched = 1;
    struct mxg_leg_outcome o = {
        .domain = leg->domain, .ok = ok, .reply = r, .req = last_req(leg), .leg = leg};
    w->on_end(w->arg, &o);
}

/* One address as text. */
static void addr_text(const struct sockaddr_storage *ss, char *out, size_t cap)
{
    if (ss->ss_family == AF_INET)
        uv_ip4_name((const struct sockaddr_in *)ss, out, cap);
    else
        uv_ip6_name((const struct sockaddr_in6 *)ss, out, cap);
}

/* The leg's decision in `mxguard check`'s words (upstream.h). */
void mxg_leg_describe(const struct mxg_leg *leg, FILE *out)
{
    fprintf(out, "domain %s\n", leg->domain);
    if (leg->route_text[0])
        fprintf(out, "route: %s\n", leg->route_text);
    const struct mxg_policy *pol = &leg->req_in.policy;
    if (pol->source == MXG_POL_SRC_OVERRIDE) /* as app/cli_check.c words it */
        fprintf(out, "policy source: override (tls.policy_map) — %s\n", pol->reason);
    else
        fprintf(out, "policy source: no override; DANE, MTA-STS, the policy list, then %s/%s\n",
                mxg_policy_source_name(pol->source), mxg_policy_level_name(pol->level));
    const struct mxg_route *rt = leg->route;
    if (!rt) {
        fprintf(out, "MX: no route known (the lookup did not finish)\n");
        return;
    }
    if (rt->status != MXG_ROUTE_OK) {
        fprintf(out, "MX: %s: %s (%s)\n", mxg_route_status_name(rt->status), rt->why,
                mxg_dnssec_name(rt->mx_sec));
        return;
    }
    fprintf(out, "MX RRset: %s, %d host%s\n", mxg_dnssec_name(rt->mx_sec), rt->n,
            rt->n == 1 ? "" : "s");
    if (leg->req_in.sts_consulted) {
        const struct mxg_sts_result *s = mxg_req_sts_result(&leg->req_in);
        if (s)
            fprintf(out, "MTA-STS: %s — %s\n", mxg_sts_outcome_name(s->outcome), s->why);
    }
    if (leg->req_in.list_active)
        fprintf(out, "policy list: entry mode %s — APPLIES (no MTA-STS policy)\n",
                mxg_sts_mode_name(leg->req_in.list.mode));
    for (int i = 0; i < rt->n; i++) {
        const struct mxg_route_host *h = &rt->host[i];
        char addrs[400] = "";
        size_t l = 0;
        for (int k = 0; k < h->addrs.n && l < sizeof addrs - 70; k++) {
            char a[64];
            addr_text(&h->addrs.addr[k], a, sizeof a);
            l += (size_t)snprintf(addrs + l, sizeof addrs - l, "%s%s", k ? " " : "", a);
        }
        fprintf(out, "  %s %d %s\n", h->implicit ? "implicit MX" : "MX", h->pref, h->name);
        fprintf(out, "    addresses: %s (%s, %s)\n", addrs[0] ? addrs : "none",
                mxg_dns_status_name(h->addrs.status), mxg_dnssec_name(h->addrs.sec));
        const struct host_state *hs = leg->hosts ? &leg->hosts[i] : NULL;
        if (!hs || !hs->req) {
            fprintf(out, "    not reached by this delivery (no decision recorded)\n");
            continue;
        }
        fprintf(out, "    DANE: %s — %s\n", mxg_dane_req_name(hs->dane.req), hs->dane.why);
        mxg_req_describe(&leg->req_in, hs->req, out);
    }
    mxg_req_describe_domain(&leg->req_in, out);
}
