/* proxy/outbound/leg_connect.c — where the leg connects: the route and its
 * candidates (MX, [host] and address literal next hops), loop protection,
 * the TCP connection, a lost connection, the next candidate, and leg
 * construction (mxg_leg_open*, mxg_leg_probe). Like Postfix smtp_connect.c;
 * see leg_int.h. A leg may try several addresses and MX hosts, one struct
 * conn per attempt. */
#include "leg_int.h"

#include <arpa/inet.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "../../core/ntoa.h"
#include "../../core/str.h"
#include "../../core/zero.h"
#include "../../core/log.h"
#include "addr_class.h"

static void addr_text(const struct sockaddr_storage *ss, char *out, size_t cap);
static void leg_begin(struct mxg_leg *leg);

/* libuv closed the TCP handle: release its slot and free the conn. */
void leg_conn_closed(uv_handle_t *h)
{
    struct conn *c = h->data;
    if (c->slot)
        mxg_conncache_release(c->env->conncache, c->slot);
    free(c);
}

/* Detach and close the current connection (and its TLS engine); the leg stays. */
void leg_drop_conn(struct mxg_leg *leg)
{
    (void)leg_send_held(leg); /* a corked step's bytes go out first, as they would unheld */
    if (leg->tls) {
        mxg_tls_engine_free(leg->tls);
        leg->tls = NULL;
    }
    mxg_buf_reset(&leg->in);
    mxg_reply_parser_reset(&leg->rp);
    struct conn *c = leg->conn;
    if (!c)
        return;
    leg->conn = NULL;
    c->leg = NULL;
    mxg_conncache_no_park(c->env->conncache, c->slot); /* nobody waits for it any more */
    if (!uv_is_closing((uv_handle_t *)&c->tcp))
        uv_close((uv_handle_t *)&c->tcp, leg_conn_closed);
}

/* The connection ended (TCP EOF/reset, or the TLS session closed or
 * failed) in the leg's current state: during set-up the next address / MX
 * is tried under the same policy; with a transaction under way it is lost
 * (451 4.4.2, never a 250). */
void leg_conn_lost(struct mxg_leg *leg, const char *what)
{
    char lbl[320];
    if (leg->st == LEG_QUIT) {
        leg_destroy(leg);
    } else if (leg_in_setup(leg)) {
        if (leg->st == LEG_TLS_HANDSHAKE) {
            leg_tls_failed(leg, "connection closed during handshake");
            return;
        }
        leg_cand_failed(leg, FK_CONNECT, "%s: %s in state %s", leg_cur_label(leg, lbl, sizeof lbl),
                    what, leg_state_names[leg->st]);
    } else if (leg->st == LEG_READY || leg->st == LEG_DONE) {
        struct mxg_reply r;
        mxg_reply_set(&r, 451, "4.4.2", "%s closed the connection",
                      leg_cur_label(leg, lbl, sizeof lbl));
        leg_fail(leg, &r);
    } else {
        leg_txn_lost(leg, what);
    }
}

/* TCP connect finished: wait for the greeting, or try the next candidate. */
static void on_connect(uv_connect_t *req, int status)
{
    struct conn *c = req->data;
    struct mxg_leg *leg = c->leg;
    if (!leg)
        return;
    char lbl[320];
    if (status < 0) {
        leg_cand_failed(leg, FK_CONNECT, "%s: %s", leg_cur_label(leg, lbl, sizeof lbl),
                    uv_strerror(status));
        return;
    }
    struct sockaddr_storage me;
    int melen = sizeof me;
    leg->src_addr[0] = 0;
    if (uv_tcp_getsockname(&c->tcp, (struct sockaddr *)&me, &melen) == 0)
        addr_text(&me, leg->src_addr, sizeof leg->src_addr);
    mxg_metrics_observe_ms(leg->env->metrics, MXG_M_UPSTREAM_DURATION, "connect",
                           uv_now(leg->env->loop) - leg->t_phase);
    uv_read_start((uv_stream_t *)&c->tcp, leg_conn_alloc, leg_conn_read);
    leg_set_state(leg, LEG_GREETING);
    leg_timer(leg, leg->env->cfg->t_upstream_cmd);
}

/* Bind to the configured source address of the family, if any. */
static int bind_source(struct mxg_leg *leg, uv_tcp_t *tcp, int family)
{
    const struct mxg_config *cfg = leg->env->cfg;
    const char *src = family == AF_INET ? cfg->source_ipv4 : cfg->source_ipv6;
    if (!src[0])
        return 0;
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    if (family == AF_INET)
        uv_ip4_addr(src, 0, (struct sockaddr_in *)&ss);
    else
        uv_ip6_addr(src, 0, (struct sockaddr_in6 *)&ss);
    return uv_tcp_bind(tcp, (struct sockaddr *)&ss, 0);
}

/* Try the current candidate: decide its host, check eligibility, get a connection. */
void leg_connect(struct mxg_leg *leg)
{
    struct cand *cd = &leg->cands[leg->cur];
    struct host_state *hs = &leg->hosts[cd->hi];
    if (hs->skip) {
        leg_try_next(leg);
        return;
    }
    if (!leg_host_decide(leg, hs, &leg->route->host[cd->hi]))
        return;
    if (!hs->req && leg_host_requirement(leg, hs, cd) < 0)
        return;
    mxg_str_copy(leg->mx_host, sizeof leg->mx_host, cd->host);
    mxg_str_copy(leg->mx_addr, sizeof leg->mx_addr, cd->addr_text);
    leg->tls_version[0] = leg->tls_cipher[0] = 0;
    memset(&leg->caps, 0, sizeof leg->caps);
    if (leg_cache(leg))
        leg_cache_acquire(leg);
    else
        leg_conn_start(leg, NULL);
}

/* Open a new connection to the current candidate, holding slot (or NULL). */
void leg_conn_start(struct mxg_leg *leg, struct mxg_cc_slot *slot)
{
    struct cand *cd = &leg->cands[leg->cur];
    struct conn *c = calloc(1, sizeof *c);
    char lbl[320];
    if (!c) {
        mxg_conncache_release(leg->env->conncache, slot);
        leg_note_failure(leg, FK_CONNECT, "out of memory");
        leg_try_next(leg);
        return;
    }
    c->env = leg->env;
    c->slot = slot;
    c->leg = leg;
    if (leg->plaintext_retry) /* leg_park refuses it: no other leg may wait for it */
        mxg_conncache_no_park(leg->env->conncache, slot);
    uv_tcp_init(leg->env->loop, &c->tcp);
    uv_tcp_nodelay(&c->tcp, 1); /* small pipelined commands: no Nagle + delayed-ACK stalls */
    c->tcp.data = c;
    c->req.data = c;
    leg->conn = c;
    int rc = bind_source(leg, &c->tcp, cd->addr.ss_family);
    struct sockaddr_storage sa = cd->addr;
    uint16_t port = htons((uint16_t)leg->port);
    if (sa.ss_family == AF_INET)
        ((struct sockaddr_in *)&sa)->sin_port = port;
    else
        ((struct sockaddr_in6 *)&sa)->sin6_port = port;
    leg->t_phase = uv_now(leg->env->loop);
    if (rc == 0)
        rc = uv_tcp_connect(&c->req, &c->tcp, (struct sockaddr *)&sa, on_connect);
    if (rc < 0) {
        leg_cand_failed(leg, FK_CONNECT, "%s: %s", leg_cur_label(leg, lbl, sizeof lbl), uv_strerror(rc));
        return;
    }
    leg_set_state(leg, LEG_CONNECTING);
    leg_timer(leg, leg->env->cfg->t_connect);
}

/* The candidate failed: the same one afresh (stale cached connection), else the next one. */
void leg_try_next(struct mxg_leg *leg)
{
    if (leg->reuse_setup) { /* a stale cached connection: the same candidate, afresh */
        LOG_I("upstream", "%s %s: the cached connection to %s[%s] is unusable; connecting afresh",
              leg->sid, leg->domain, leg->mx_host, leg->mx_addr);
        mxg_metrics_inc(leg->env->metrics, MXG_M_UPSTREAM_CONNS, "stale");
        leg->reuse_setup = 0;
        leg->reused = 0;
        leg->no_reuse = 1;
        if (leg->reasons_mark < sizeof leg->reasons)
            leg->reasons[leg->reasons_mark] = 0;
        leg->fail_kind = (enum fail_kind)leg->kind_mark;
        leg_connect(leg);
        return;
    }
    leg->no_reuse = 0;
    leg->cur++;
    leg->plaintext_retry = 0;
    if (leg->cur >= leg->n_cands) {
        leg_fail_all(leg);
        return;
    }
    leg_connect(leg);
}

/* The port of a socket address (0 if not IP). */
static int sa_port(const struct sockaddr_storage *a)
{
    if (a->ss_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)a)->sin_port);
    if (a->ss_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)a)->sin6_port);
    return 0;
}

/* Does one of our listeners (server.listen, server.queue_listen) use port? */
static int listen_port(const struct mxg_config *cfg, int port)
{
    for (int i = 0; i < cfg->n_listen; i++)
        if (sa_port(&cfg->listen[i].sa) == port)
            return 1;
    for (int i = 0; i < cfg->n_queue_listen; i++)
        if (sa_port(&cfg->queue_listen[i].sa) == port)
            return 1;
    return 0;
}

/* Is a (with port, when port > 0) one of our own listening addresses
 * (IPv4-mapped forms included)? port 0: the address alone decides (MX routing: an MX is never
 * ourselves). Entries of env->self without a port (interface addresses of
 * a wildcard listener) match any port one of our listeners uses. */
static int is_self(const struct mxg_upstream_env *env, const struct sockaddr_storage *a, int port)
{
    for (int i = 0; i < env->n_self; i++) {
        const struct sockaddr_storage *s = &env->self[i];
        /* an IPv4-mapped IPv6 MX address is its IPv4 form */
        if (!mxg_addr_same_host((const struct sockaddr *)s, (const struct sockaddr *)a))
            continue;
        if (port <= 0)
            return 1;
        int sp = sa_port(s);
        if (sp ? sp == port : listen_port(env->cfg, port))
            return 1;
    }
    return 0;
}

/* An address as text, without port. */
static void addr_text(const struct sockaddr_storage *ss, char *out, size_t cap)
{
    if (ss->ss_family == AF_INET && cap >= 16) /* INET_ADDRSTRLEN */
        mxg_ntoa_ip4(&((const struct sockaddr_in *)ss)->sin_addr, out);
    else if (ss->ss_family == AF_INET)
        uv_ip4_name((const struct sockaddr_in *)ss, out, cap);
    else
        uv_ip6_name((const struct sockaddr_in6 *)ss, out, cap);
}

/* Is a:port one of upstream.self_addresses (the legacy MTA's own; an
 * entry without a port matches every port)? */
static int is_named_self(const struct mxg_config *cfg, const struct sockaddr_storage *a, int port)
{
    for (int i = 0; i < cfg->n_self_addrs; i++) {
        const struct sockaddr_storage *s = &cfg->self_addrs[i].sa;
        int sp = sa_port(s);
        if (mxg_addr_same_host((const struct sockaddr *)s, (const struct sockaddr *)a) &&
            (sp == 0 || sp == port))
            return 1;
    }
    return 0;
}

/* The candidate a of host is never connected to (noted as the leg's
 * failure): one of upstream.self_addresses (451 4.4.6 like our own
 * listeners; not for queue.bounce_route, whose job is to reach the legacy
 * MTA), or, with upstream.refuse_private_addresses, a special-purpose
 * address of an MX (451 4.4.4; route_map targets and queue.bounce_route are
 * the operator's and trusted). 1 = refused. */
static int refused_addr(struct mxg_leg *leg, const char *host, const char *text,
                        const struct sockaddr_storage *a)
{
    const struct mxg_config *cfg = leg->env->cfg;
    if (!leg->caller_hop && is_named_self(cfg, a, leg->port)) {
        leg_note_failure(leg, FK_LOOP, "%s[%s]: is the legacy MTA's own address "
                     "(upstream.self_addresses: mail loop)", host, text);
        return 1;
    }
    const char *what = cfg->refuse_private && !leg->nexthop[0]
                           ? mxg_addr_private((const struct sockaddr *)a) : NULL;
    if (what) {
        leg_note_failure(leg, FK_REFUSED, "%s[%s]: %s address refused "
                     "(upstream.refuse_private_addresses)", host, text, what);
        return 1;
    }
    return 0;
}

/* Append the addresses of one host in the configured family order. */
static void add_host_cands(struct mxg_leg *leg, const struct mxg_route_host *h)
{
    enum mxg_af_pref pref = leg->env->cfg->af_pref;
    int order[2] = {AF_INET, AF_INET6};
    int passes = 2;
    if (pref == MXG_AF_PREFER_IPV6) { order[0] = AF_INET6; order[1] = AF_INET; }
    if (pref == MXG_AF_IPV4_ONLY) passes = 1;
    if (pref == MXG_AF_IPV6_ONLY) { order[0] = AF_INET6; passes = 1; }
    if (pref == MXG_AF_ANY) passes = 1; /* answer order (dns gives IPv4 first) */
    for (int p = 0; p < passes; p++) {
        for (int i = 0; i < h->addrs.n && leg->n_cands < leg->cap_cands; i++) {
            const struct sockaddr_storage *a = &h->addrs.addr[i];
            if (pref != MXG_AF_ANY && a->ss_family != order[p])
                continue;
            struct cand *cd = &leg->cands[leg->n_cands];
            cd->hi = (int)(h - leg->route->host);
            mxg_str_copy(cd->host, sizeof cd->host, h->name);
            cd->addr = *a;
            addr_text(a, cd->addr_text, sizeof cd->addr_text);
            if (is_self(leg->env, a, leg->port_is_set ? leg->port : 0)) {
                leg_note_failure(leg, FK_LOOP, "%s[%s]: is mxguard's own address (mail loop)",
                             h->name, cd->addr_text);
                continue;
            }
            if (refused_addr(leg, h->name, cd->addr_text, a))
                continue;
            leg->n_cands++;
        }
    }
}

/* The MX route is known: fail per DNS, or build the candidate list. */
static void on_route(void *arg, const struct mxg_route *rt)
{
    struct mxg_leg *leg = arg;
    leg->rq = NULL;
    struct mxg_reply r;
    if (rt->status == MXG_ROUTE_TEMPFAIL && rt->mx_sec == MXG_SEC_BOGUS && leg_dane_consulted(leg)) {
        /* a bogus MX RRset: the domain's DANE policy failed (RFC 8460 §4.3) */
        struct leg_rpt_about a = {.policy = mxg_req_tlsrpt_policy(&leg->req_in, NULL, 0, 1)};
        leg_report_result(leg, &a, MXG_RPT_R_DNSSEC_INVALID, rt->why);
    }
    if (leg->nexthop[0] && rt->status != MXG_ROUTE_OK) {
        /* a configured next hop that does not resolve is the operator's to
         * fix: temporary, whatever DNS says (the mail waits) */
        mxg_reply_set(&r, 451, "4.4.3", "Next hop %s for %s: %s%s%s", leg->nexthop, leg->domain,
                      mxg_route_status_name(rt->status), rt->why[0] ? ": " : "", rt->why);
        leg_fail(leg, &r);
        return;
    }
    char text[600];
    if ((rt->status == MXG_ROUTE_NULL_MX || rt->status == MXG_ROUTE_NXDOMAIN) &&
        mxg_req_route_check(&leg->req_in, rt->domain, rt->mx_sec == MXG_SEC_SECURE,
                            mxg_route_status_name(rt->status), text, sizeof text) < 0) {
        mxg_reply_set(&r, 451, "4.7.5", "%s", text); /* an answer that could be forged */
        leg_fail(leg, &r);
        return;
    }
    switch (rt->status) {
    case MXG_ROUTE_NULL_MX:
        mxg_reply_set(&r, 556, "5.1.10", "Recipient domain %s accepts no mail (null MX, RFC 7505)",
                      leg->domain);
        leg_fail(leg, &r);
        return;
    case MXG_ROUTE_NXDOMAIN:
        mxg_reply_set(&r, 550, "5.1.2", "Recipient domain %s: %s", leg->domain,
                      rt->why[0] ? rt->why : "domain not found");
        leg_fail(leg, &r);
        return;
    case MXG_ROUTE_TEMPFAIL:
        mxg_reply_set(&r, 451, "4.4.3", "DNS lookup failed for %s: %s", leg->domain,
                      rt->why[0] ? rt->why : "temporary failure");
        leg_fail(leg, &r);
        return;
    case MXG_ROUTE_OK:
        break;
    }
    int ncap = 0; /* one candidate per address (~450 octets each; 64 of them were 29 KB a leg) */
    for (int i = 0; i < rt->n && ncap < LEG_MAX_CANDS; i++)
        if (rt->host[i].addrs.status == MXG_DNS_OK)
            ncap += rt->host[i].addrs.n;
    leg->cap_cands = ncap > LEG_MAX_CANDS ? LEG_MAX_CANDS : ncap > 0 ? ncap : 1;
    leg->cands = calloc((size_t)leg->cap_cands, sizeof *leg->cands);
    leg->route = mxg_route_copy(rt);
    leg->hosts = calloc(rt->n > 0 ? (size_t)rt->n : 1, sizeof *leg->hosts);
    if (!leg->cands || !leg->route || !leg->hosts) {
        mxg_reply_set(&r, 451, "4.3.0", "Out of memory");
        leg_fail(leg, &r);
        return;
    }
    for (int i = 0; i < rt->n; i++) {
        const struct mxg_route_host *h = &leg->route->host[i];
        if (leg->probe && strcasecmp(h->name, leg->probe_host) != 0)
            continue;
        if (h->addrs.status != MXG_DNS_OK) {
            if ((h->addrs.status == MXG_DNS_BOGUS || h->addrs.sec == MXG_SEC_BOGUS) &&
                rt->mx_sec == MXG_SEC_SECURE && leg_dane_consulted(leg)) {
                /* bogus addresses of a known host: the DANE policy failed, as above */
                struct leg_rpt_about a = {.mx_host = h->name,
                                          .policy = mxg_req_tlsrpt_policy(&leg->req_in, NULL, 0, 1)};
                leg_report_result(leg, &a, MXG_RPT_R_DNSSEC_INVALID,
                              h->addrs.why[0] ? h->addrs.why : "address lookup bogus");
            }
            leg_note_failure(leg, h->addrs.status == MXG_DNS_TEMPFAIL || h->addrs.status == MXG_DNS_BOGUS
                                  ? FK_DNS : FK_CONNECT,
                         "%s: address lookup: %s", h->name,
                         h->addrs.why[0] ? h->addrs.why : mxg_dns_status_name(h->addrs.status));
            continue;
        }
        add_host_cands(leg, h);
    }
    if (leg->n_cands == 0) {
        if (leg->fail_kind == FK_CONNECT) /* hosts without any address */
            leg->fail_kind = FK_DNS;
        leg_fail_all(leg);
        return;
    }
    leg->cur = 0;
    leg->route_done = 1;
    if (leg->req_in.sts_done)
        leg_begin(leg);
}

/* "[host]:port" next hop: a route of one host, the next hop itself. Its
 * name comes from the configuration, not from an MX answer, so DANE needs
 * only its addresses to be secure (mx_sec counts as secure), as Postfix
 * does for [host] next hops. */
static void on_nexthop_addr(void *arg, const struct mxg_addr_result *res)
{
    struct mxg_leg *leg = arg;
    leg->aq = NULL;
    struct mxg_route *rt = calloc(1, sizeof *rt);
    if (!rt) {
        struct mxg_reply r;
        mxg_reply_set(&r, 451, "4.3.0", "Out of memory");
        leg_fail(leg, &r);
        return;
    }
    rt->status = MXG_ROUTE_OK;
    mxg_str_copy(rt->domain, sizeof rt->domain, leg->nexthop);
    rt->mx_sec = MXG_SEC_SECURE;
    rt->n = 1;
    mxg_str_copy(rt->host[0].name, sizeof rt->host[0].name, leg->nexthop);
    rt->host[0].addrs = *res;
    on_route(leg, rt);
    free(rt);
}

/* An address literal next hop: no DNS at all (run from the loop, so that
 * a failure never calls back inside mxg_leg_open_opts). */
static void on_literal_route(uv_timer_t *t)
{
    struct mxg_leg *leg = t->data;
    struct mxg_route *rt = calloc(1, sizeof *rt);
    if (!rt) {
        struct mxg_reply r;
        mxg_reply_set(&r, 451, "4.3.0", "Out of memory");
        leg_fail(leg, &r);
        return;
    }
    rt->status = MXG_ROUTE_OK;
    addr_text(&leg->nexthop_addr, rt->domain, sizeof rt->domain);
    rt->mx_sec = MXG_SEC_INSECURE;
    rt->n = 1;
    mxg_str_copy(rt->host[0].name, sizeof rt->host[0].name, rt->domain);
    rt->host[0].addrs.status = MXG_DNS_OK;
    rt->host[0].addrs.sec = MXG_SEC_INSECURE;
    rt->host[0].addrs.n = 1;
    rt->host[0].addrs.addr[0] = leg->nexthop_addr;
    on_route(leg, rt);
    free(rt);
}

/* "192.0.2.1", "[192.0.2.1]", "[IPv6:2001:db8::1]", "2001:db8::1": 1 with
 * *out filled (port 0), else 0. */
static int parse_literal(const char *s, struct sockaddr_storage *out)
{
    char buf[MXG_DNS_NAME_MAX];
    size_t n = strlen(s);
    if (n >= sizeof buf)
        return 0;
    if (s[0] == '[' && n >= 2 && s[n - 1] == ']') {
        s++;
        n -= 2;
    }
    if (n > 5 && strncasecmp(s, "IPv6:", 5) == 0) {
        s += 5;
        n -= 5;
    }
    memcpy(buf, s, n);
    buf[n] = 0;
    memset(out, 0, sizeof *out);
    if (uv_ip4_addr(buf, 0, (struct sockaddr_in *)out) == 0) {
        struct in_addr a;
        return inet_pton(AF_INET, buf, &a) == 1; /* uv_ip4_addr accepts junk */
    }
    memset(out, 0, sizeof *out);
    struct in6_addr a6;
    if (inet_pton(AF_INET6, buf, &a6) == 1 && uv_ip6_addr(buf, 0, (struct sockaddr_in6 *)out) == 0)
        return 1;
    return 0;
}

/* The policy list applies when MTA-STS gives no policy (none published, or
 * its lookup/fetch failed: the list protects MTA-STS on first use). */
static void list_consult(struct mxg_leg *leg)
{
    if (!leg->env->stlist || !mxg_req_list_wanted(&leg->req_in))
        return;
    const struct mxg_stlist *l = mxg_stlist_store_current(leg->env->stlist, (int64_t)time(NULL));
    const struct mxg_stlist_policy *p = l ? mxg_stlist_lookup(l, leg->req_in.pol_domain) : NULL;
    if (!p)
        return;
    mxg_req_set_list(&leg->req_in, p); /* copied: the list may be replaced meanwhile */
    LOG_D("upstream", "%s %s: policy list entry applies: mode %s, %d mxs pattern(s)%s%s", leg->sid,
          leg->domain, mxg_sts_mode_name(p->mode), p->n_mxs, p->alias[0] ? ", alias " : "",
          p->alias);
}

/* Route and MTA-STS are both known: an override "mta-sts" needs an
 * enforce-mode policy before any host is tried; then the first candidate. */
static void leg_begin(struct mxg_leg *leg)
{
    char text[MXG_REPLY_TEXT_MAX];
    if (mxg_req_domain_check(&leg->req_in, text, sizeof text) < 0) {
        struct mxg_reply r; /* e.g. a cached policy may apply that we cannot see: fail closed */
        mxg_reply_set(&r, 451, "4.7.5", "%s", text);
        leg_fail(leg, &r);
        return;
    }
    leg_connect(leg);
}

/* The MTA-STS lookup finished: consult the list, begin when the route is known too. */
static void on_sts(void *arg, const struct mxg_sts_result *r)
{
    struct mxg_leg *leg = arg;
    leg->sq = NULL;
    mxg_req_set_sts(&leg->req_in, r);
    list_consult(leg);
    LOG_D("upstream", "%s %s: MTA-STS: %s%s%s (%s)", leg->sid, leg->domain,
          mxg_sts_outcome_name(r->outcome), r->outcome == MXG_STS_POLICY ? " mode " : "",
          r->outcome == MXG_STS_POLICY ? mxg_sts_mode_name(r->policy.mode) : "", r->why);
    if (leg->route_done)
        leg_begin(leg);
}

/* Build a leg: static route, options, policy, MTA-STS/list lookups and the route lookup. */
static struct mxg_leg *leg_start(const struct mxg_upstream_env *env, const char *session_id,
                                 const char *domain, const char *mail_from,
                                 const struct mxg_mail_params *mp, const char *probe_host,
                                 const struct mxg_leg_opts *opts, const struct mxg_leg_cbs *cbs,
                                 void *arg)
{
    static const struct mxg_leg_opts no_opts;
    struct mxg_leg_opts ropts;
    const struct mxg_static_route *sr = NULL;
    char route_text[400] = "";
    if (!opts)
        opts = &no_opts;
    /* a static route (upstream.route_map) unless the caller fixed the next hop */
    int caller_hop = opts->nexthop && opts->nexthop[0];
    if (!caller_hop && env->maps &&
        (sr = mxg_route_map_lookup(env->maps->routes, domain))) {
        char hop[300];
        ropts = *opts;
        ropts.nexthop = sr->nh.host;
        ropts.nexthop_port = sr->nh.port;
        ropts.nexthop_mx = sr->nh.mx;
        opts = &ropts;
        mxg_static_route_format(sr, hop, sizeof hop);
        snprintf(route_text, sizeof route_text, "%s (route %s, %s:%d)", hop, sr->key,
                 mxg_route_map_source(env->maps->routes), sr->line);
    }
    if (opts->nexthop_port < 0 || opts->nexthop_port > 65535 ||
        (opts->nexthop && strlen(opts->nexthop) >= MXG_DNS_NAME_MAX))
        return NULL;
    struct mxg_leg *leg = malloc(sizeof *leg);
    if (!leg)
        return NULL;
    memset(leg, 0, offsetof(struct mxg_leg, req_in)); /* the last three: cleared */
    mxg_req_inputs_clear(&leg->req_in);
    MXG_ZERO_BETWEEN(leg, struct mxg_leg, req_in, rp);
    mxg_reply_parser_reset(&leg->rp);
    MXG_ZERO_BETWEEN(leg, struct mxg_leg, rp, err);
    mxg_reply_clear(&leg->err);
    MXG_ZERO_AFTER(leg, struct mxg_leg, err);
    leg->port = env->cfg->upstream_port;
    leg->tlsa_port = 25;
    if (opts->nexthop && opts->nexthop[0]) {
        mxg_str_copy(leg->nexthop, sizeof leg->nexthop, opts->nexthop);
        size_t l = strlen(leg->nexthop);
        if (l > 1 && leg->nexthop[l - 1] == '.')
            leg->nexthop[l - 1] = 0;
        leg->nexthop_literal = parse_literal(leg->nexthop, &leg->nexthop_addr);
        leg->nexthop_mx = opts->nexthop_mx && !leg->nexthop_literal;
    }
    if (opts->nexthop_port > 0) {
        leg->port = leg->tlsa_port = opts->nexthop_port;
        leg->port_is_set = 1;
    }
    leg->opportunistic = opts->opportunistic;
    leg->no_tlsrpt = opts->no_tlsrpt;
    if (opts->first_rcpt && !probe_host && strlen(opts->first_rcpt) < sizeof leg->first_rcpt) {
        mxg_str_copy(leg->first_rcpt, sizeof leg->first_rcpt, opts->first_rcpt);
        if (opts->first_rp)
            leg->first_rp = *opts->first_rp;
        leg->has_first = 1; /* else: lock-step */
    }
    leg->caller_hop = caller_hop;
    if (probe_host) {
        leg->probe = 1;
        mxg_str_copy(leg->probe_host, sizeof leg->probe_host, probe_host);
    }
    leg->env = env;
    leg->st = LEG_RESOLVING;
    mxg_str_copy(leg->sid, sizeof leg->sid, session_id);
    mxg_str_copy(leg->domain, sizeof leg->domain, domain);
    mxg_str_copy(leg->mail_from, sizeof leg->mail_from, mail_from);
    leg->mp = *mp;
    leg->cbs = *cbs;
    leg->arg = arg;
    leg->op_pending = 1;
    mxg_str_copy(leg->route_text, sizeof leg->route_text, route_text);
    struct mxg_policy pol;
    mxg_policy_decide(env->cfg, env->maps ? env->maps->overrides : NULL, domain,
                      leg->nexthop[0] ? leg->nexthop : NULL, &pol);
    /* the inputs of every host's requirement; opportunistic: no override either */
    mxg_req_inputs_init(&leg->req_in, &pol, domain, leg->nexthop, leg->nexthop_mx,
                        leg->nexthop_literal, leg->opportunistic, env->cfg->dane_enabled,
                        env->sts != NULL);
    leg->req_in.memo = mxg_conncache_digest_memo(env->conncache); /* digests by their octets */
    uv_timer_init(env->loop, &leg->timer);
    uv_timer_init(env->loop, &leg->deadline);
    leg->timer.data = leg->deadline.data = leg;
    leg->timers_open = 2;
    uv_timer_start(&leg->deadline, leg_on_deadline, env->cfg->t_rcpt_total, 0);
    LOG_D("upstream", "%s %s: policy %s/%s: %s", leg->sid, domain,
          mxg_policy_source_name(leg->req_in.policy.source),
          mxg_policy_level_name(leg->req_in.policy.level), leg->req_in.policy.reason);
    /* MTA-STS and the list (when they apply: policy/requirement.h) are
     * asked for the domain whose MX hosts are used (pol_domain) */
    if (leg->req_in.sts_consulted) {
        if (!env->sts) {
            list_consult(leg); /* MTA-STS disabled */
        } else if (mxg_sts_get(env->sts, leg->req_in.pol_domain, on_sts, leg, &leg->sq) < 0) {
            /* out of memory: whether a cached policy applies cannot be told,
             * so the leg does not start (the caller defers: 4xx) */
            LOG_W("upstream", "%s %s: the MTA-STS lookup could not start", leg->sid, domain);
            leg->sq = NULL;
            leg->op_pending = 0;
            leg_destroy(leg);
            return NULL;
        }
    }
    int rc;
    if (leg->nexthop_literal) {
        rc = uv_timer_start(&leg->timer, on_literal_route, 0, 0);
    } else if (leg->nexthop[0] && !leg->nexthop_mx) {
        rc = mxg_dns_lookup_addr(env->dns, leg->nexthop, on_nexthop_addr, leg, &leg->aq);
        if (rc < 0)
            leg->aq = NULL;
    } else {
        rc = mxg_route_resolve(env->dns, leg->nexthop[0] ? leg->nexthop : domain,
                               env->cfg->max_mx_hosts, on_route, leg, &leg->rq);
        if (rc < 0)
            leg->rq = NULL;
    }
    if (leg->nexthop[0])
        LOG_D("upstream", "%s %s: next hop %s%s%s port %d%s%s%s%s", leg->sid, domain,
              leg->nexthop_mx ? "" : "[", leg->nexthop, leg->nexthop_mx ? " (MX)" : "]", leg->port,
              leg->opportunistic ? ", opportunistic" : "", leg->no_tlsrpt ? ", no TLSRPT" : "",
              leg->route_text[0] ? ", " : "", leg->route_text);
    if (rc < 0) {
        leg->op_pending = 0;
        leg_destroy(leg);
        return NULL;
    }
    return leg;
}

/* A leg to the MX hosts of domain (upstream.h). */
struct mxg_leg *mxg_leg_open(const struct mxg_upstream_env *env, const char *session_id,
                             const char *domain, const char *mail_from,
                             const struct mxg_mail_params *mp, const struct mxg_leg_cbs *cbs,
                             void *arg)
{
    return leg_start(env, session_id, domain, mail_from, mp, NULL, NULL, cbs, arg);
}

/* A leg with options: next hop, port, opportunistic, no TLSRPT (upstream.h). */
struct mxg_leg *mxg_leg_open_opts(const struct mxg_upstream_env *env, const char *session_id,
                                  const char *domain, const char *mail_from,
                                  const struct mxg_mail_params *mp,
                                  const struct mxg_leg_opts *opts, const struct mxg_leg_cbs *cbs,
                                  void *arg)
{
    return leg_start(env, session_id, domain, mail_from, mp, NULL, opts, cbs, arg);
}

/* A probe of one MX host that stops before MAIL (upstream.h). */
struct mxg_leg *mxg_leg_probe(const struct mxg_upstream_env *env, const char *domain,
                              const char *mx_host, const struct mxg_leg_cbs *cbs, void *arg)
{
    struct mxg_mail_params mp;
    memset(&mp, 0, sizeof mp);
    return leg_start(env, "probe", domain, "", &mp, mx_host, NULL, cbs, arg);
}
