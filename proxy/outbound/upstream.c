/* proxy/outbound/upstream.c — the upstream leg state machine; see upstream.h.
 *
 * Structure: one struct mxg_leg per leg, one struct conn per TCP connection
 * attempt (a leg may try several addresses and MX hosts; a dropped conn is
 * detached from its leg and frees itself when libuv has closed it). Every
 * state change goes through leg_set_state(), which logs old → new. */
#include "upstream.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../../core/log.h"
#include "../../core/show.h"
#include "../../dane/dane.h"
#include "../../dns/mxroute.h"
#include "../../policy/requirement.h"
#include "../../tls/tls_verify.h"
#include "addr_class.h"
#include "../../core/buf.h"
#include "conncache.h"

#define LEG_HIGH_WATER (256 * 1024)
#define LEG_LOW_WATER (64 * 1024)
#define LEG_MAX_CANDS 64

enum leg_state {
    LEG_RESOLVING, LEG_TLSA, LEG_SLOT, LEG_CONNECTING, LEG_GREETING, LEG_EHLO, LEG_HELO,
    LEG_STARTTLS, LEG_TLS_HANDSHAKE, LEG_EHLO_TLS, LEG_RSET, LEG_MAIL, LEG_READY, LEG_RCPT, LEG_DATA, LEG_STREAM,
    LEG_DOT, LEG_DONE, LEG_QUIT, LEG_FAILED, LEG_CLOSED,
};
static const char *const leg_state_names[] = {
    "resolving", "tlsa", "slot-wait", "connecting", "greeting", "ehlo", "helo", "starttls",
    "tls-handshake", "ehlo-tls", "rset", "mail", "ready", "rcpt", "data", "stream", "dot", "done", "quit", "failed",
    "closed",
};

/* Why a candidate failed, most severe kind wins the final reply's code. */
enum fail_kind { FK_NONE = 0, FK_DNS, FK_CONNECT, FK_PROTOCOL, FK_REFUSED, FK_LOOP, FK_TLS, FK_LIMIT };

struct cand {
    int hi; /* index into leg->route->host / leg->hosts */
    char host[MXG_DNS_NAME_MAX];
    struct sockaddr_storage addr;
    char addr_text[64];
};

/* What DNSSEC says about one MX host and the requirement derived from it
 * (policy/requirement.h), both once per leg, lazily. */
struct host_state {
    int decided;
    int skip;                 /* unusable: skip its other addresses too */
    int req_done;             /* req computed (and logged) */
    struct mxg_dane_query *q;
    struct mxg_dane_host dane;
    struct mxg_req req;       /* borrows dane's TLSA records */
};

struct conn {
    uv_tcp_t tcp;
    uv_connect_t req;
    struct mxg_leg *leg; /* NULL once dropped */
    size_t pending;      /* bytes queued in uv_write */
    /* connection cache (proxy/conncache.h) */
    const struct mxg_upstream_env *env;
    struct mxg_cc_slot *slot;  /* its place under the limits; released when closed */
    struct parked *pk;         /* while idle in the cache: the session state */
};

/* What an idle cached connection keeps of the leg that parked it. */
struct parked {
    struct mxg_tls_engine *tls;
    struct mxg_caps caps;
    char tls_version[32];
    char tls_cipher[80];
    char verified[120];
    char src_addr[64];
    char mx_helo[256];
};

struct wreq {
    uv_write_t req;
    struct conn *conn;
    size_t len;
    char data[];
};

struct mxg_leg {
    const struct mxg_upstream_env *env;
    enum leg_state st;
    uint64_t t_phase; /* metrics: start of the connect, handshake or final dot */
    char sid[40];
    char domain[MXG_DNS_NAME_MAX];
    char mail_from[MXG_PATH_MAX];
    struct mxg_mail_params mp;
    struct mxg_leg_cbs cbs;
    void *arg;
    int detached;
    int op_pending; /* an operation waits for on_reply */
    struct mxg_req_inputs req_in; /* everything the requirement depends on (policy/requirement.h) */

    struct mxg_route_query *rq;
    struct mxg_sts_query *sq;     /* MTA-STS lookup in flight */
    int route_done;
    struct mxg_route *route;      /* owned copy */
    struct host_state *hosts;     /* one per route host */
    struct cand *cands;           /* cap_cands allocated: the route's addresses, at most LEG_MAX_CANDS */
    int n_cands, cap_cands, cur;
    int plaintext_retry;
    enum fail_kind fail_kind;
    char reasons[600];

    struct conn *conn;
    uv_timer_t timer;    /* per-command / connect timeout */
    uv_timer_t deadline; /* total RCPT-time budget while opening */
    int timers_open;

    struct mxg_tls_engine *tls;
    struct mxg_buf in;
    struct mxg_reply_parser rp;
    struct mxg_caps caps;
    int want_drain;

    struct mxg_reply err;
    char mx_host[MXG_DNS_NAME_MAX];
    char mx_addr[64];
    char tls_version[32];
    char tls_cipher[80];
    char verified[120];           /* how the peer was authenticated, for logs */
    char src_addr[64];            /* our address on the current connection (TLSRPT) */
    char mx_helo[256];            /* the name in the MX's greeting (TLSRPT) */
    char probe_host[MXG_DNS_NAME_MAX]; /* probe mode: only this MX host, no MAIL */
    int probe;
    int need_7bit;

    /* leg options (mxg_leg_open_opts) */
    char nexthop[MXG_DNS_NAME_MAX]; /* "" = MX of the domain */
    int nexthop_mx;               /* 1: MX of nexthop; 0: nexthop's own addresses */
    int nexthop_literal;          /* nexthop is an address literal: no DNS at all */
    struct sockaddr_storage nexthop_addr;
    int port;                     /* the port connected to */
    int tlsa_port;                /* the port of the TLSA name (_PORT._tcp.host) */
    int port_is_set;              /* a nexthop port was given: loop check compares it */
    int caller_hop;               /* the caller fixed the next hop (queue.bounce_route) */
    int opportunistic;            /* TLS "may" whatever DANE / MTA-STS / the list say */
    int no_tlsrpt;                /* record no TLSRPT result */
    struct mxg_dns_query *aq;     /* address lookup of a [host] next hop */
    char route_text[400];         /* the static route used, "" = none (logs) */

    /* connection cache (proxy/conncache.h) */
    struct mxg_cc_wait *ccw;      /* waiting for a connection slot (LEG_SLOT) */
    struct mxg_cc_key cckey;      /* the requirement key of the current candidate */
    int reused;                   /* transactions the cached connection had before ours */
    int reuse_setup;              /* reused and not yet past MAIL: a failure means stale */
    int no_reuse;                 /* the cached connection was stale: connect afresh */
    int mail_pipelined;           /* MAIL went out right behind RSET */
    size_t reasons_mark;          /* reasons / fail_kind before the stale attempt */
    int kind_mark;
};

/* ---------------------------------------------------------------- helpers */

static void leg_set_state(struct mxg_leg *leg, enum leg_state st)
{
    if (leg->st != st)
        LOG_D("upstream", "%s %s: %s -> %s", leg->sid, leg->domain, leg_state_names[leg->st],
              leg_state_names[st]);
    leg->st = st;
}

static void leg_timer(struct mxg_leg *leg, uint64_t ms);
static void leg_drop_conn(struct mxg_leg *leg);
static void cancel_dane(struct mxg_leg *leg);
static void leg_try_next(struct mxg_leg *leg);
static void leg_connect(struct mxg_leg *leg);
static void cache_cancel(struct mxg_leg *leg);
static void conn_start(struct mxg_leg *leg, struct mxg_cc_slot *slot);
static void parked_input(struct conn *c, ssize_t n, const uv_buf_t *buf);
static struct mxg_conncache *leg_cache(const struct mxg_leg *leg);
static size_t resume_key(const struct mxg_leg *leg, unsigned char *out);
static int leg_park(struct mxg_leg *leg);
static void cache_acquire(struct mxg_leg *leg);
static void conn_closed(uv_handle_t *h);
static void leg_begin(struct mxg_leg *leg);
static void tls_failed(struct mxg_leg *leg, const char *why);
static void addr_text(const struct sockaddr_storage *ss, char *out, size_t cap);

static void deliver(struct mxg_leg *leg, const struct mxg_reply *r)
{
    if (!leg->op_pending || leg->detached)
        return;
    leg->op_pending = 0;
    if (leg->cbs.on_reply)
        leg->cbs.on_reply(leg->arg, leg, r);
}

static const char *cur_label(struct mxg_leg *leg, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s[%s]", leg->mx_host[0] ? leg->mx_host : "?", leg->mx_addr);
    return buf;
}

/* Record why the current candidate failed (for the final reply). */
static void note_failure(struct mxg_leg *leg, enum fail_kind kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void note_failure(struct mxg_leg *leg, enum fail_kind kind, const char *fmt, ...)
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

/* The leg is unusable: remember the error, tell the session (if it waits). */
static void leg_fail(struct mxg_leg *leg, const struct mxg_reply *r)
{
    leg->err = *r;
    leg_drop_conn(leg);
    cancel_dane(leg);
    cache_cancel(leg);
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
    deliver(leg, r);
    /* a writer waiting for on_drain learns of the failure at its next write */
    if (leg->want_drain && !leg->detached && leg->cbs.on_drain) {
        leg->want_drain = 0;
        leg->cbs.on_drain(leg->arg, leg);
    }
}

static void fail_all(struct mxg_leg *leg)
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

/* ------------------------------------------------------------ connection */

static void wreq_done(uv_write_t *req, int status)
{
    struct wreq *w = (struct wreq *)req;
    struct conn *c = w->conn;
    c->pending -= w->len;
    struct mxg_leg *leg = c->leg;
    free(w);
    if (!leg)
        return;
    if (status < 0) {
        LOG_D("upstream", "%s write failed: %s", leg->sid, uv_strerror(status));
        return; /* the read side reports the loss */
    }
    if (leg->want_drain && c->pending < LEG_LOW_WATER) {
        leg->want_drain = 0;
        if (!leg->detached && leg->cbs.on_drain)
            leg->cbs.on_drain(leg->arg, leg);
    }
}

static int raw_send(struct mxg_leg *leg, const void *p, size_t n)
{
    struct conn *c = leg->conn;
    if (!c || n == 0)
        return c ? 0 : -1;
    struct wreq *w = malloc(sizeof *w + n);
    if (!w)
        return -1;
    w->conn = c;
    w->len = n;
    memcpy(w->data, p, n);
    uv_buf_t b = uv_buf_init(w->data, (unsigned)n);
    int rc = uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, wreq_done);
    if (rc < 0) {
        free(w);
        return -1;
    }
    c->pending += n;
    return 0;
}

static int flush_tls(struct mxg_leg *leg)
{
    char tmp[16384];
    while (mxg_tls_out_pending(leg->tls) > 0) {
        size_t n = mxg_tls_take_out(leg->tls, tmp, sizeof tmp);
        if (n == 0)
            break;
        if (raw_send(leg, tmp, n) < 0)
            return -1;
    }
    return 0;
}

/* Send plaintext protocol bytes (through TLS when it is up). */
static int leg_send(struct mxg_leg *leg, const void *p, size_t n)
{
    if (leg->tls && mxg_tls_handshake_done(leg->tls)) {
        if (mxg_tls_write(leg->tls, p, n) != MXG_TLS_OK)
            return -1;
        return flush_tls(leg);
    }
    return raw_send(leg, p, n);
}

static int leg_cmd(struct mxg_leg *leg, enum leg_state next, uint64_t timeout, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int leg_cmd(struct mxg_leg *leg, enum leg_state next, uint64_t timeout, const char *fmt, ...)
{
    char line[1200];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line - 2, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof line - 2)
        return -1;
    LOG_D("upstream", "%s -> %s", leg->sid, line);
    line[n++] = '\r';
    line[n++] = '\n';
    leg_set_state(leg, next);
    leg_timer(leg, timeout);
    return leg_send(leg, line, (size_t)n);
}

static void conn_closed(uv_handle_t *h)
{
    struct conn *c = h->data;
    if (c->slot)
        mxg_conncache_release(c->env->conncache, c->slot);
    free(c);
}

static void leg_drop_conn(struct mxg_leg *leg)
{
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
    if (!uv_is_closing((uv_handle_t *)&c->tcp))
        uv_close((uv_handle_t *)&c->tcp, conn_closed);
}

/* ---------------------------------------------------------------- timers */

static void timers_closed(uv_handle_t *h)
{
    struct mxg_leg *leg = h->data;
    if (--leg->timers_open == 0) {
        for (int i = 0; leg->hosts && leg->route && i < leg->route->n; i++) {
            mxg_req_clear(&leg->hosts[i].req);
            mxg_dane_host_clear(&leg->hosts[i].dane);
        }
        mxg_buf_free(&leg->in);
        free(leg->cands);
        free(leg->hosts);
        free(leg->route);
        free(leg);
    }
}

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

static void leg_destroy(struct mxg_leg *leg)
{
    if (leg->st == LEG_CLOSED)
        return;
    leg_drop_conn(leg);
    cancel_dane(leg);
    cache_cancel(leg);
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

static int in_setup(const struct mxg_leg *leg)
{
    return leg->st >= LEG_CONNECTING && leg->st <= LEG_MAIL;
}

/* The requirement of the current candidate's host (policy/requirement.h). */
static const struct mxg_req *cur_req(const struct mxg_leg *leg)
{
    return &leg->hosts[leg->cands[leg->cur].hi].req;
}

/* DNSSEC's word on the host of the current candidate. */
static const struct mxg_dane_host *cur_dane(const struct mxg_leg *leg)
{
    return &leg->hosts[leg->cands[leg->cur].hi].dane;
}

/* ------------------------------------------------------------ TLSRPT */

/* RFC 8460 result type for an X.509 verification error. */
static const char *verify_result_type(long vr)
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

/* What one TLSRPT result is about. policy: the policy it is recorded
 * under (policy/requirement.h decides); d: the DANE decision of the MX host
 * (NULL: none, e.g. the MX RRset itself was bogus; its records are the
 * tlsa policy-string); mx_host / mx_addr: the receiving MX and address (""
 * or NULL: not known); connected: a connection was made (sending-mta-ip
 * and receiving-mx-helo are its own; else they are left out). */
struct rpt_about {
    enum mxg_req_rpt policy;
    const struct mxg_dane_host *d;
    const char *mx_host, *mx_addr;
    int connected;
};

/* Contract: records one result (rtype NULL = success) for the policy that
 * governed it (DESIGN §4, §10): DANE (tlsa; policy-string = the usable
 * TLSA records, or every record when none is usable, or none when they are
 * not known: a bogus or failed lookup), MTA-STS (sts; a failed policy
 * fetch is reported as such under sts), else no-policy-found (with the
 * policy list or a local override named in additional-information). */
static void report_result(struct mxg_leg *leg, const struct rpt_about *a, const char *rtype,
                          const char *reason)
{
    if (!leg->probe)
        mxg_metrics_inc(leg->env->metrics, MXG_M_TLS_SESSIONS, rtype ? rtype : "success");
    struct mxg_rpt *rpt = leg->env->rpt;
    if (!rpt || leg->probe || leg->no_tlsrpt)
        return;
    /* the whole policy (up to MXG_STS_MAX_MX names): never cut (RFC 8460 §4.4) */
    enum { STS_TEXT_MAX = MXG_STS_MAX_MX * (MXG_STS_NAME_MAX + 8) + 128 };
    char *sts_pstr = calloc(1, STS_TEXT_MAX), *mxh = calloc(1, STS_TEXT_MAX);
    char addl[300] = "";
    char *dane_pstr = NULL;
    size_t l = 0;
    if (!sts_pstr || !mxh) {
        LOG_E("upstream", "%s %s: out of memory: a TLSRPT result is lost", leg->sid, leg->domain);
        free(sts_pstr);
        free(mxh);
        return;
    }
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
static void leg_report(struct mxg_leg *leg, const char *rtype, const char *reason)
{
    struct rpt_about a = {.policy = cur_req(leg)->tlsrpt, .d = cur_dane(leg),
                          .mx_host = leg->mx_host, .mx_addr = leg->mx_addr, .connected = 1};
    if (!rtype && cur_req(leg)->not_in_policy) { /* testing mode: delivered, yet a policy failure */
        rtype = MXG_RPT_R_VALIDATION_FAILURE;
        reason = MXG_RPT_REASON_MX_NOT_IN_POLICY;
    }
    report_result(leg, &a, rtype, reason);
}

static void txn_lost(struct mxg_leg *leg, const char *what)
{
    char lbl[320];
    if (leg->reuse_setup && in_setup(leg)) { /* a stale cached connection: connect afresh */
        note_failure(leg, FK_CONNECT, "%s: cached connection: %s", cur_label(leg, lbl, sizeof lbl),
                     what);
        leg_drop_conn(leg);
        leg_try_next(leg);
        return;
    }
    struct mxg_reply r;
    mxg_reply_set(&r, 451, "4.4.2", "%s with %s during %s", what, cur_label(leg, lbl, sizeof lbl),
                  leg_state_names[leg->st]);
    leg_fail(leg, &r);
}

static void on_timer(uv_timer_t *t)
{
    struct mxg_leg *leg = t->data;
    char lbl[320];
    if (leg->st == LEG_QUIT) {
        leg_destroy(leg);
        return;
    }
    if (leg->st == LEG_TLS_HANDSHAKE || leg->st == LEG_STARTTLS) {
        tls_failed(leg, "timeout during the TLS handshake");
        return;
    }
    if (in_setup(leg)) {
        note_failure(leg, FK_CONNECT, "%s: timeout in state %s", cur_label(leg, lbl, sizeof lbl),
                     leg_state_names[leg->st]);
        leg_drop_conn(leg);
        leg_try_next(leg);
        return;
    }
    txn_lost(leg, "Timeout waiting for a reply");
}

static void on_deadline(uv_timer_t *t)
{
    struct mxg_leg *leg = t->data;
    if (leg->st == LEG_SLOT) {
        cache_cancel(leg);
        note_failure(leg, FK_LIMIT, "RCPT-time budget of %llus exhausted waiting for a "
                     "connection slot to %s", (unsigned long long)(leg->env->cfg->t_rcpt_total / 1000),
                     leg->mx_addr);
        fail_all(leg);
        return;
    }
    if (!in_setup(leg) && leg->st != LEG_RESOLVING && leg->st != LEG_TLSA)
        return;
    note_failure(leg, FK_CONNECT, "RCPT-time budget of %llus exhausted",
                 (unsigned long long)(leg->env->cfg->t_rcpt_total / 1000));
    fail_all(leg);
}

static void leg_timer(struct mxg_leg *leg, uint64_t ms)
{
    uv_timer_start(&leg->timer, on_timer, ms, 0);
}

/* ------------------------------------------------------- protocol steps */

/* Probe mode ends where a transaction would begin: report the connection. */
static void probe_done(struct mxg_leg *leg)
{
    char lbl[320];
    struct mxg_reply r;
    uv_timer_stop(&leg->deadline);
    leg_set_state(leg, LEG_READY);
    mxg_reply_set(&r, 250, "2.0.0", "%s: %s%s%s, peer %s", cur_label(leg, lbl, sizeof lbl),
                  leg->tls_version[0] ? leg->tls_version : "plaintext",
                  leg->tls_version[0] ? " " : "", leg->tls_cipher, leg->verified);
    deliver(leg, &r);
}

static void send_mail(struct mxg_leg *leg)
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
                      cur_label(leg, lbl, sizeof lbl));
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
    if (leg_cmd(leg, LEG_MAIL, leg->env->cfg->t_upstream_cmd, "MAIL FROM:<%s>%s", leg->mail_from,
                params) < 0)
        txn_lost(leg, "Write failed");
}

static void send_ehlo(struct mxg_leg *leg, enum leg_state next)
{
    const struct mxg_config *cfg = leg->env->cfg;
    const char *name = cfg->helo_name[0] ? cfg->helo_name : cfg->hostname;
    if (leg_cmd(leg, next, cfg->t_upstream_cmd, "%s %s", next == LEG_HELO ? "HELO" : "EHLO",
                name[0] ? name : "localhost") < 0)
        txn_lost(leg, "Write failed");
}

/* After EHLO (or HELO): STARTTLS, or go on in plaintext if the policy lets us. */
static void after_ehlo(struct mxg_leg *leg)
{
    char lbl[320];
    const struct mxg_req *req = cur_req(leg);
    int tries_tls = req->tries_tls;
    if (leg->caps.starttls && !leg->plaintext_retry && tries_tls) {
        if (leg_cmd(leg, LEG_STARTTLS, leg->env->cfg->t_upstream_cmd, "STARTTLS") < 0)
            txn_lost(leg, "Write failed");
        return;
    }
    if (!leg->caps.starttls && tries_tls)
        leg_report(leg, MXG_RPT_R_STARTTLS_NOT_SUPPORTED, NULL);
    if (req->tls_required) {
        char why[400];
        mxg_req_no_starttls(req, cur_label(leg, lbl, sizeof lbl), why, sizeof why);
        note_failure(leg, FK_TLS, "%s", why);
        leg_drop_conn(leg);
        leg_try_next(leg);
        return;
    }
    snprintf(leg->verified, sizeof leg->verified, "%s", mxg_req_plaintext_text(req));
    if (!tries_tls)
        LOG_W("upstream", "%s %s: delivering to %s in PLAINTEXT%s: policy override none for %s "
                          "(%s)", leg->sid, leg->domain, cur_label(leg, lbl, sizeof lbl),
              leg->caps.starttls ? " although it offers STARTTLS" : "", req->ovr_key,
              req->ovr_origin);
    else if (!leg->caps.starttls)
        LOG_I("upstream", "%s %s: %s offers no STARTTLS; delivering in plaintext (policy %s)",
              leg->sid, leg->domain, cur_label(leg, lbl, sizeof lbl), req->policy_level);
    send_mail(leg);
}

static void tls_failed(struct mxg_leg *leg, const char *why)
{
    char lbl[320];
    cur_label(leg, lbl, sizeof lbl);
    leg_report(leg, MXG_RPT_R_VALIDATION_FAILURE, why);
    if (!cur_req(leg)->tls_required && !leg->plaintext_retry) {
        LOG_W("upstream", "%s %s: TLS with %s failed (%s); retrying once in plaintext (policy %s)",
              leg->sid, leg->domain, lbl, why, cur_req(leg)->policy_level);
        leg_drop_conn(leg);
        leg->plaintext_retry = 1;
        leg_connect(leg);
        return;
    }
    note_failure(leg, FK_TLS, "%s: TLS failed: %s", lbl, why);
    leg_drop_conn(leg);
    leg_try_next(leg);
}

static void tls_step(struct mxg_leg *leg)
{
    int rc = mxg_tls_handshake(leg->tls);
    if (flush_tls(leg) < 0) {
        tls_failed(leg, "write failed");
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
            mxg_req_verify_failed(cur_req(leg), cur_label(leg, lbl, sizeof lbl),
                                  vr == X509_V_ERR_DANE_NO_MATCH,
                                  X509_verify_cert_error_string(vr), note, sizeof note)) {
            leg_report(leg, verify_result_type(vr), X509_verify_cert_error_string(vr));
            note_failure(leg, FK_TLS, "%s", note);
            leg_drop_conn(leg);
            leg_try_next(leg);
            return;
        }
        snprintf(why, sizeof why, "%s", e && e[0] ? e : "handshake failed");
        tls_failed(leg, why);
        return;
    }
    mxg_metrics_observe_ms(leg->env->metrics, MXG_M_UPSTREAM_DURATION, "tls_handshake",
                           uv_now(leg->env->loop) - leg->t_phase);
    snprintf(leg->tls_version, sizeof leg->tls_version, "%s", mxg_tls_version(leg->tls));
    snprintf(leg->tls_cipher, sizeof leg->tls_cipher, "%s", mxg_tls_cipher(leg->tls));
    const struct mxg_req *req = cur_req(leg);
    long vr = mxg_tls_verify_result(leg->tls);
    char matched[80];
    struct mxg_req_session ses;
    mxg_tls_verify_matched(leg->tls, matched, sizeof matched);
    mxg_req_session_ok(req, mxg_tls_engine_resumed(leg->tls), vr == X509_V_OK,
                       X509_verify_cert_error_string(vr), matched, &ses);
    snprintf(leg->verified, sizeof leg->verified, "%s", ses.verified);
    switch (ses.report) { /* one result for the session under its policy */
    case MXG_REQ_REPORT_TLSA_INVALID:
        leg_report(leg, MXG_RPT_R_TLSA_INVALID, "no usable TLSA record");
        break;
    case MXG_REQ_REPORT_VERIFY_ERROR:
        leg_report(leg, verify_result_type(vr), X509_verify_cert_error_string(vr));
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
    send_ehlo(leg, LEG_EHLO_TLS);
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
        cur_label(leg, lbl, sizeof lbl);
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

/* A complete reply arrived: the transition table of the leg. */
static void on_reply(struct mxg_leg *leg, struct mxg_reply *r)
{
    char lbl[320], sum[300];
    int cls = r->code / 100;
    mxg_reply_summary(r, sum, sizeof sum);
    LOG_D("upstream", "%s <- %s (%s)", leg->sid, sum, leg_state_names[leg->st]);
    uv_timer_stop(&leg->timer);
    cur_label(leg, lbl, sizeof lbl);

    if (r->code == 421 && !in_setup(leg) && leg->st != LEG_QUIT) {
        struct mxg_reply m;
        mxg_reply_set(&m, 451, "4.4.2", "%s closed the connection: %s", lbl, sum);
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
            send_ehlo(leg, LEG_EHLO);
        } else {
            note_failure(leg, FK_PROTOCOL, "%s: greeting %s", lbl, sum);
            leg_drop_conn(leg);
            leg_try_next(leg);
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
            send_ehlo(leg, LEG_HELO);
        } else {
            note_failure(leg, FK_PROTOCOL, "%s: %s rejected: %s", lbl,
                         leg->st == LEG_EHLO ? "EHLO" : "HELO", sum);
            leg_drop_conn(leg);
            leg_try_next(leg);
        }
        return;
    case LEG_STARTTLS:
        if (r->code != 220) {
            char why[320];
            snprintf(why, sizeof why, "STARTTLS rejected: %s", sum);
            tls_failed(leg, why);
            return;
        }
        if (mxg_buf_avail(&leg->in) > 0) { /* CVE-2011-0411 class */
            LOG_W("upstream", "%s %s: %s sent %zu bytes after 220 to STARTTLS; discarded",
                  leg->sid, leg->domain, lbl, mxg_buf_avail(&leg->in));
            mxg_buf_reset(&leg->in);
        }
        const struct mxg_req *req = cur_req(leg);
        leg->tls = mxg_tls_engine_new_client(leg->env->tls, req->verify.sni);
        if (!leg->tls) {
            tls_failed(leg, "cannot create TLS engine");
            return;
        }
        if (leg_cache(leg) && leg->env->tls_resume) { /* same requirement only (DESIGN §10) */
            unsigned char rk[MXG_TLS_RESUME_KEY_MAX];
            mxg_tls_engine_resume(leg->tls, leg->env->tls_resume, rk, resume_key(leg, rk));
        }
        char err[200];
        if (mxg_tls_verify_apply(leg->tls, &req->verify, err, sizeof err) < 0) {
            tls_failed(leg, err);
            return;
        }
        leg->t_phase = uv_now(leg->env->loop);
        leg_set_state(leg, LEG_TLS_HANDSHAKE);
        leg_timer(leg, leg->env->cfg->t_upstream_cmd);
        tls_step(leg);
        return;
    case LEG_EHLO_TLS:
        if (cls == 2) {
            mxg_caps_parse(r, &leg->caps);
            send_mail(leg);
        } else {
            note_failure(leg, FK_PROTOCOL, "%s: EHLO after STARTTLS rejected: %s", lbl, sum);
            leg_drop_conn(leg);
            leg_try_next(leg);
        }
        return;
    case LEG_RSET:
        if (cls != 2) {
            note_failure(leg, FK_CONNECT, "%s: cached connection: RSET answered %s", lbl, sum);
            leg_drop_conn(leg);
            leg_try_next(leg);
        } else if (leg->mail_pipelined) {
            leg_set_state(leg, LEG_MAIL);
            leg_timer(leg, leg->env->cfg->t_upstream_cmd);
        } else {
            send_mail(leg);
        }
        return;
    case LEG_MAIL:
        if (leg->reuse_setup && r->code == 421) {
            note_failure(leg, FK_CONNECT, "%s: cached connection: MAIL answered %s", lbl, sum);
            leg_drop_conn(leg);
            leg_try_next(leg);
            return;
        }
        uv_timer_stop(&leg->deadline);
        leg->reuse_setup = 0;
        if (r->code == 421) { /* DESIGN §10: never relayed as 421 (the client's session goes on) */
            struct mxg_reply m;
            mxg_reply_set(&m, 451, "4.4.2", "%s closed the connection: %s", lbl, sum);
            leg_fail(leg, &m);
        } else if (cls != 2 && cls != 4 && cls != 5) { /* e.g. a 354: only DATA may get one */
            fail_and_quit(leg, r, "MAIL");
        } else if (cls == 2) {
            char reuse[80] = "";
            if (leg->reused)
                snprintf(reuse, sizeof reuse, " (reused connection, transaction %d)",
                         leg->reused + 1);
            LOG_I("upstream", "%s %s: connected to %s, %s%s%s, peer %s%s", leg->sid, leg->domain,
                  lbl, leg->tls_version[0] ? leg->tls_version : "plaintext",
                  leg->tls_version[0] ? " " : "", leg->tls_cipher, leg->verified, reuse);
            mxg_metrics_inc(leg->env->metrics, MXG_M_DECISIONS, mxg_req_metric_label(cur_req(leg)));
            leg_set_state(leg, LEG_READY);
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
        deliver(leg, r);
        return;
    case LEG_QUIT:
        leg_destroy(leg);
        return;
    default:
        LOG_I("upstream", "%s %s: unexpected reply from %s in state %s: %s", leg->sid, leg->domain,
              lbl, leg_state_names[leg->st], sum);
        if (r->code == 421 || leg->st == LEG_STREAM) {
            struct mxg_reply m;
            mxg_reply_set(&m, 451, "4.4.2", "%s: unexpected reply: %s", lbl, sum);
            leg_fail(leg, &m);
        }
        return;
    }
}

/* A reply line that breaks the protocol (malformed, over-long, mixed codes):
 * r is the 451 4.5.0 with sanitised text. During set-up the next address / MX
 * is tried; after QUIT the leg just ends (nothing changes for the
 * transaction, nothing may leak); otherwise the leg fails and the connection
 * is closed (leg_fail drops it: never parked). */
static void reply_broken(struct mxg_leg *leg, const struct mxg_reply *r)
{
    if (leg->st == LEG_QUIT) {
        LOG_D("upstream", "%s %s: after QUIT: %s", leg->sid, leg->domain, r->text);
        leg_destroy(leg);
    } else if (in_setup(leg)) {
        note_failure(leg, FK_PROTOCOL, "%s", r->text);
        leg_drop_conn(leg);
        leg_try_next(leg);
    } else {
        LOG_I("upstream", "%s %s: %s", leg->sid, leg->domain, r->text);
        leg_fail(leg, r);
    }
}

/* Split buffered plaintext into reply lines. */
static void parse_input(struct mxg_leg *leg)
{
    while (leg->conn && mxg_buf_avail(&leg->in) > 0) {
        char *head = mxg_buf_head(&leg->in);
        size_t avail = mxg_buf_avail(&leg->in);
        size_t ll = 0, take = 0;
        int sp = mxg_reply_line_split(head, avail, &ll, &take);
        if (sp == 0)
            return;
        if (sp < 0) { /* never taken as a reply, however the reads were split */
            struct mxg_reply r;
            char lbl[320];
            mxg_reply_set(&r, 451, "4.5.0", "%s sent an overlong reply line (over %d octets)",
                          cur_label(leg, lbl, sizeof lbl), MXG_REPLY_LINE_MAX);
            mxg_buf_reset(&leg->in);
            reply_broken(leg, &r);
            return;
        }
        /* consume first: the handler may reset the buffer (STARTTLS) */
        char line[MXG_REPLY_LINE_MAX + 1];
        memcpy(line, head, ll);
        line[ll] = 0;
        mxg_buf_consume(&leg->in, take);
        int rc = mxg_reply_feed(&leg->rp, line, ll);
        if (rc < 0) {
            char lbl[320];
            struct mxg_reply r;
            /* exactly the octets received, made printable (DESIGN §10) */
            mxg_reply_set(&r, 451, "4.5.0", "%s sent a malformed reply: %s",
                          cur_label(leg, lbl, sizeof lbl), mxg_show(line, ll).s);
            reply_broken(leg, &r);
            return;
        }
        if (rc == 1) {
            struct mxg_reply r = leg->rp.r;
            on_reply(leg, &r);
        }
    }
}

static void conn_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    (void)suggested;
    static char slab[65536]; /* single-threaded loop: read_cb consumes it at once */
    *buf = uv_buf_init(slab, sizeof slab);
}

/* The connection ended (TCP EOF/reset, or the TLS session closed or
 * failed) in the leg's current state: during set-up the next address / MX
 * is tried under the same policy; with a transaction under way it is lost
 * (451 4.4.2, never a 250). */
static void conn_lost(struct mxg_leg *leg, const char *what)
{
    char lbl[320];
    if (leg->st == LEG_QUIT) {
        leg_destroy(leg);
    } else if (in_setup(leg)) {
        if (leg->st == LEG_TLS_HANDSHAKE) {
            tls_failed(leg, "connection closed during handshake");
            return;
        }
        note_failure(leg, FK_CONNECT, "%s: %s in state %s", cur_label(leg, lbl, sizeof lbl),
                     what, leg_state_names[leg->st]);
        leg_drop_conn(leg);
        leg_try_next(leg);
    } else if (leg->st == LEG_READY || leg->st == LEG_DONE) {
        struct mxg_reply r;
        mxg_reply_set(&r, 451, "4.4.2", "%s closed the connection",
                      cur_label(leg, lbl, sizeof lbl));
        leg_fail(leg, &r);
    } else {
        txn_lost(leg, what);
    }
}

static void conn_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct conn *c = s->data;
    struct mxg_leg *leg = c->leg;
    if (!leg && c->pk && n != 0) {
        parked_input(c, n, buf);
        return;
    }
    if (!leg || n == 0)
        return;
    if (n < 0) {
        conn_lost(leg, "Lost connection");
        return;
    }
    if (leg->tls) {
        if (mxg_tls_feed(leg->tls, buf->base, (size_t)n) != MXG_TLS_OK) {
            conn_lost(leg, "TLS failure");
            return;
        }
        if (!mxg_tls_handshake_done(leg->tls)) {
            tls_step(leg);
            if (!leg->tls || !mxg_tls_handshake_done(leg->tls))
                return;
        }
        char plain[16384];
        for (;;) {
            size_t got = 0;
            int rc = mxg_tls_read(leg->tls, plain, sizeof plain, &got);
            if (rc == MXG_TLS_OK) {
                mxg_buf_append(&leg->in, plain, got);
                continue;
            }
            if (rc == MXG_TLS_AGAIN)
                break;
            parse_input(leg);
            if (leg->conn && leg->st != LEG_FAILED)
                conn_lost(leg, rc == MXG_TLS_EOF ? "TLS closed" : "TLS error");
            return;
        }
    } else {
        mxg_buf_append(&leg->in, buf->base, (size_t)n);
    }
    parse_input(leg);
}

static void on_connect(uv_connect_t *req, int status)
{
    struct conn *c = req->data;
    struct mxg_leg *leg = c->leg;
    if (!leg)
        return;
    char lbl[320];
    if (status < 0) {
        note_failure(leg, FK_CONNECT, "%s: %s", cur_label(leg, lbl, sizeof lbl),
                     uv_strerror(status));
        leg_drop_conn(leg);
        leg_try_next(leg);
        return;
    }
    struct sockaddr_storage me;
    int melen = sizeof me;
    leg->src_addr[0] = 0;
    if (uv_tcp_getsockname(&c->tcp, (struct sockaddr *)&me, &melen) == 0)
        addr_text(&me, leg->src_addr, sizeof leg->src_addr);
    mxg_metrics_observe_ms(leg->env->metrics, MXG_M_UPSTREAM_DURATION, "connect",
                           uv_now(leg->env->loop) - leg->t_phase);
    uv_read_start((uv_stream_t *)&c->tcp, conn_alloc, conn_read);
    leg_set_state(leg, LEG_GREETING);
    leg_timer(leg, leg->env->cfg->t_upstream_cmd);
}

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
static int host_decide(struct mxg_leg *leg, struct host_state *hs, const struct mxg_route_host *h)
{
    if (hs->decided)
        return 1;
    char why[240];
    if (!mxg_req_dane_consulted(&leg->req_in, why, sizeof why)) {
        hs->decided = 1;
        hs->dane.req = MXG_DANE_NONE;
        snprintf(hs->dane.why, sizeof hs->dane.why, "%s", why);
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

/* ------------------------------------------------ connection cache glue */
/* DESIGN §10: a cached connection (and a TLS session) serves only mail
 * whose requirement is identical. The key is a digest of the requirement
 * of the current candidate: the MX host (reference name, SNI) and port,
 * the policy (source, level, override key and match list; under an
 * override also the domain and next hop, whose names "nexthop" may mean),
 * the DANE decision with the usable TLSA set, the WebPKI mode with the
 * MTA-STS policy id and mx patterns or the list's entry, and the leg
 * options. The MX address is the cache's destination. */

static struct mxg_conncache *leg_cache(const struct mxg_leg *leg)
{
    return leg->probe ? NULL : leg->env->conncache;
}

static void cache_cancel(struct mxg_leg *leg)
{
    if (leg->ccw) {
        mxg_conncache_cancel(leg->env->conncache, leg->ccw);
        leg->ccw = NULL;
    }
}

static void leg_req_key(struct mxg_leg *leg, struct mxg_cc_key *out)
{
    char desc[200];
    size_t l = (size_t)snprintf(desc, sizeof desc, "v2|port=%d|tlsa-port=%d|no-tlsrpt=%d|req=",
                                leg->port, leg->tlsa_port, leg->no_tlsrpt);
    const unsigned char *d = cur_req(leg)->digest; /* the requirement (policy/requirement.h) */
    for (int i = 0; i < 32 && l + 3 < sizeof desc; i++)
        l += (size_t)snprintf(desc + l, sizeof desc - l, "%02x", d[i]);
    mxg_cc_key_make(desc, l, out);
}

/* The TLS session key: the requirement key, the MX address + port, and the
 * settings generation now (the TLS context in force: a session saved under
 * settings a reload replaced is never offered again). */
static size_t resume_key(const struct mxg_leg *leg, unsigned char *out)
{
    const struct sockaddr_storage *a = &leg->cands[leg->cur].addr;
    size_t l = sizeof leg->cckey.d;
    memcpy(out, leg->cckey.d, l);
    uint64_t gen = mxg_conncache_generation(leg_cache(leg));
    for (int i = 0; i < 8; i++)
        out[l++] = (unsigned char)(gen >> (8 * i));
    out[l++] = (unsigned char)a->ss_family;
    if (a->ss_family == AF_INET) {
        memcpy(out + l, &((const struct sockaddr_in *)a)->sin_addr, 4);
        l += 4;
    } else {
        memcpy(out + l, &((const struct sockaddr_in6 *)a)->sin6_addr, 16);
        l += 16;
    }
    out[l++] = (unsigned char)(leg->port >> 8);
    out[l++] = (unsigned char)leg->port;
    return l;
}

/* No slot for the candidate within the wait: 451 4.7.0 (issue #8). */
static void limited(struct mxg_leg *leg, const char *why)
{
    char lbl[320];
    struct mxg_reply r;
    mxg_reply_set(&r, 451, "4.7.0", "Too many connections to %s, try again later: %s",
                  cur_label(leg, lbl, sizeof lbl), why ? why : "limit reached");
    LOG_W("upstream", "%s %s: %s", leg->sid, leg->domain, r.text);
    mxg_metrics_inc(leg->env->metrics, MXG_M_UPSTREAM_CONNS, "limited");
    leg_fail(leg, &r);
}

/* Take over an idle cached connection: RSET first (MAIL pipelined behind it
 * when the server offers PIPELINING); a failure before MAIL's reply means
 * the connection was stale and the leg connects afresh (leg_try_next). */
static void leg_adopt(struct mxg_leg *leg, void *conn, int uses)
{
    struct conn *c = conn;
    struct parked *pk = c->pk;
    c->pk = NULL;
    c->leg = leg;
    leg->conn = c;
    leg->tls = pk->tls;
    leg->caps = pk->caps;
    snprintf(leg->tls_version, sizeof leg->tls_version, "%s", pk->tls_version);
    snprintf(leg->tls_cipher, sizeof leg->tls_cipher, "%s", pk->tls_cipher);
    snprintf(leg->verified, sizeof leg->verified, "%s", pk->verified);
    snprintf(leg->src_addr, sizeof leg->src_addr, "%s", pk->src_addr);
    snprintf(leg->mx_helo, sizeof leg->mx_helo, "%s", pk->mx_helo);
    free(pk);
    mxg_buf_reset(&leg->in);
    mxg_reply_parser_reset(&leg->rp);
    leg->reused = uses;
    leg->reuse_setup = 1;
    leg->reasons_mark = strlen(leg->reasons);
    leg->kind_mark = (int)leg->fail_kind;
    LOG_D("upstream", "%s %s: reusing the cached connection to %s[%s] (%d earlier transaction%s)",
          leg->sid, leg->domain, leg->mx_host, leg->mx_addr, uses, uses == 1 ? "" : "s");
    if (leg->caps.pipelining) {
        leg->mail_pipelined = 1;
        LOG_D("upstream", "%s -> RSET", leg->sid);
        if (leg_send(leg, "RSET\r\n", 6) < 0) {
            leg_drop_conn(leg);
            leg_try_next(leg);
            return;
        }
        send_mail(leg);
        if (leg->st == LEG_MAIL)
            leg_set_state(leg, LEG_RSET);
        return;
    }
    leg->mail_pipelined = 0;
    if (leg_cmd(leg, LEG_RSET, leg->env->cfg->t_upstream_cmd, "RSET") < 0) {
        leg_drop_conn(leg);
        leg_try_next(leg);
    }
}

static void on_cc_grant(void *arg, const struct mxg_cc_grant *g)
{
    struct mxg_leg *leg = arg;
    leg->ccw = NULL;
    if (g->status == MXG_CC_REUSED) {
        mxg_metrics_inc(leg->env->metrics, MXG_M_UPSTREAM_CONNS, "reused");
        leg_adopt(leg, g->conn, g->uses);
    } else if (g->status == MXG_CC_FRESH) {
        mxg_metrics_inc(leg->env->metrics, MXG_M_UPSTREAM_CONNS, "new");
        conn_start(leg, g->slot);
    } else {
        limited(leg, g->why);
    }
}

/* A connection for the current candidate: cached, new, or wait for a slot. */
static void cache_acquire(struct mxg_leg *leg)
{
    struct mxg_conncache *cc = leg_cache(leg);
    struct sockaddr_storage sa = leg->cands[leg->cur].addr;
    uint16_t port = htons((uint16_t)leg->port);
    if (sa.ss_family == AF_INET)
        ((struct sockaddr_in *)&sa)->sin_port = port;
    else
        ((struct sockaddr_in6 *)&sa)->sin6_port = port;
    leg_req_key(leg, &leg->cckey);
    struct mxg_cc_grant g;
    switch (mxg_conncache_acquire(cc, (const struct sockaddr *)&sa, &leg->cckey, !leg->no_reuse,
                                  on_cc_grant, leg, &leg->ccw, &g)) {
    case MXG_CC_REUSED:
        mxg_metrics_inc(leg->env->metrics, MXG_M_UPSTREAM_CONNS, "reused");
        leg_adopt(leg, g.conn, g.uses);
        return;
    case MXG_CC_FRESH:
        mxg_metrics_inc(leg->env->metrics, MXG_M_UPSTREAM_CONNS, "new");
        conn_start(leg, g.slot);
        return;
    case MXG_CC_WAIT:
        uv_timer_stop(&leg->timer);
        leg_set_state(leg, LEG_SLOT);
        return;
    case MXG_CC_LIMITED:
        limited(leg, g.why);
        return;
    }
}

/* Ciphertext (or a plaintext QUIT) for an idle connection: best effort. */
static void parked_write(struct conn *c, const char *p, size_t n)
{
    char tmp[4096];
    if (c->pk && c->pk->tls) {
        if (n && mxg_tls_write(c->pk->tls, p, n) != MXG_TLS_OK)
            return;
        while (mxg_tls_out_pending(c->pk->tls) > 0) {
            size_t k = mxg_tls_take_out(c->pk->tls, tmp, sizeof tmp);
            if (k == 0)
                break;
            uv_buf_t b = uv_buf_init(tmp, (unsigned)k);
            if (uv_try_write((uv_stream_t *)&c->tcp, &b, 1) != (int)k)
                return;
        }
        return;
    }
    if (n) {
        uv_buf_t b = uv_buf_init((char *)p, (unsigned)n);
        (void)uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
    }
}

/* Input on an idle connection: TLS housekeeping (a late session ticket) is
 * fine; anything else (EOF, a 421, garbage) ends it. */
static void parked_input(struct conn *c, ssize_t n, const uv_buf_t *buf)
{
    if (n > 0 && c->pk->tls && mxg_tls_feed(c->pk->tls, buf->base, (size_t)n) == MXG_TLS_OK) {
        char tmp[512];
        size_t got = 0;
        int rc = mxg_tls_read(c->pk->tls, tmp, sizeof tmp, &got);
        parked_write(c, NULL, 0);
        if (rc == MXG_TLS_AGAIN)
            return;
    }
    LOG_D("upstream", "an idle cached connection ended: %s",
          n < 0 ? uv_strerror((int)n) : "the server sent something");
    mxg_conncache_lost(c->env->conncache, c->slot);
}

/* struct mxg_cc_ops.close: QUIT (unless lost) and close; the slot is
 * released from conn_closed(). */
static void parked_close(void *conn, int lost)
{
    struct conn *c = conn;
    if (!lost)
        parked_write(c, "QUIT\r\n", 6);
    if (c->pk) {
        mxg_tls_engine_free(c->pk->tls);
        free(c->pk);
        c->pk = NULL;
    }
    uv_read_stop((uv_stream_t *)&c->tcp);
    if (!uv_is_closing((uv_handle_t *)&c->tcp))
        uv_close((uv_handle_t *)&c->tcp, conn_closed);
}

/* After the transaction (no command outstanding): hand the connection to
 * the cache. 0 = parked (the leg has no connection any more), -1 = not. */
static int leg_park(struct mxg_leg *leg)
{
    struct conn *c = leg->conn;
    struct mxg_conncache *cc = leg_cache(leg);
    if (!cc || !c || !c->slot || leg->plaintext_retry || mxg_buf_avail(&leg->in) > 0 ||
        (leg->tls && !mxg_tls_handshake_done(leg->tls)) || !mxg_conncache_enabled(cc))
        return -1;
    struct parked *pk = calloc(1, sizeof *pk);
    if (!pk)
        return -1;
    pk->tls = leg->tls;
    pk->caps = leg->caps;
    snprintf(pk->tls_version, sizeof pk->tls_version, "%s", leg->tls_version);
    snprintf(pk->tls_cipher, sizeof pk->tls_cipher, "%s", leg->tls_cipher);
    snprintf(pk->verified, sizeof pk->verified, "%s", leg->verified);
    snprintf(pk->src_addr, sizeof pk->src_addr, "%s", leg->src_addr);
    snprintf(pk->mx_helo, sizeof pk->mx_helo, "%s", leg->mx_helo);
    c->pk = pk;
    if (mxg_conncache_park(cc, c->slot, &leg->cckey, c) < 0) {
        c->pk = NULL;
        free(pk);
        return -1;
    }
    if (leg->tls)
        mxg_tls_engine_save_session(leg->tls);
    LOG_D("upstream", "%s %s: connection to %s[%s] kept for reuse", leg->sid, leg->domain,
          leg->mx_host, leg->mx_addr);
    leg->tls = NULL;
    leg->conn = NULL;
    c->leg = NULL;
    uv_timer_stop(&leg->timer);
    return 0;
}

static const struct mxg_cc_ops upstream_cc_ops = {parked_close};

void mxg_upstream_conncache_cfg(const struct mxg_config *cfg, struct mxg_conncache_cfg *out)
{
    memset(out, 0, sizeof *out);
    out->idle_ms = cfg->cache_idle_ms;
    out->max_idle = cfg->cache_size;
    out->max_idle_per_dest = cfg->cache_per_dest;
    out->max_uses = cfg->cache_max_uses;
    out->lifetime_ms = cfg->cache_lifetime_ms;
    out->dest_concurrency = cfg->dest_concurrency;
    out->dest_rate = cfg->dest_rate;
    out->max_conns = cfg->upstream_connections;
    out->wait_ms = cfg->connection_wait_ms;
}

struct mxg_conncache *mxg_upstream_conncache_new(uv_loop_t *loop, const struct mxg_config *cfg)
{
    struct mxg_conncache_cfg c;
    mxg_upstream_conncache_cfg(cfg, &c);
    return mxg_conncache_new(loop, &c, &upstream_cc_ops);
}

/* The requirement for cd's host, once per host (policy/requirement.h):
 * logged; a host it rules out is noted (and reported) and skipped: -1 after
 * leg_try_next(); 0 = the host may be used. */
static int host_requirement(struct mxg_leg *leg, struct host_state *hs, const struct cand *cd)
{
    struct mxg_req *req = &hs->req;
    const struct mxg_route_host *rh = &leg->route->host[cd->hi];
    char sum[900];
    hs->req_done = 1;
    mxg_req_for_host(&leg->req_in, cd->host, &hs->dane, rh->addrs.sec == MXG_SEC_BOGUS, req);
    mxg_req_summary(req, sum, sizeof sum);
    LOG_D("upstream", "%s %s: requirement %s", leg->sid, leg->domain, sum);
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
        struct rpt_about a = {.policy = req->skip_tlsrpt, .d = &hs->dane, .mx_host = cd->host};
        if (req->skip_report == MXG_REQ_SKIP_RPT_DNSSEC_INVALID)
            report_result(leg, &a, MXG_RPT_R_DNSSEC_INVALID, hs->dane.why);
        else
            report_result(leg, &a, MXG_RPT_R_VALIDATION_FAILURE, MXG_RPT_REASON_MX_NOT_IN_POLICY);
    }
    note_failure(leg, req->fail == MXG_REQ_FAIL_DNS ? FK_DNS : FK_TLS, "%s", req->why);
    hs->skip = 1;
    leg_try_next(leg);
    return -1;
}

static void leg_connect(struct mxg_leg *leg)
{
    struct cand *cd = &leg->cands[leg->cur];
    struct host_state *hs = &leg->hosts[cd->hi];
    if (hs->skip) {
        leg_try_next(leg);
        return;
    }
    if (!host_decide(leg, hs, &leg->route->host[cd->hi]))
        return;
    if (!hs->req_done && host_requirement(leg, hs, cd) < 0)
        return;
    snprintf(leg->mx_host, sizeof leg->mx_host, "%s", cd->host);
    snprintf(leg->mx_addr, sizeof leg->mx_addr, "%s", cd->addr_text);
    leg->tls_version[0] = leg->tls_cipher[0] = 0;
    memset(&leg->caps, 0, sizeof leg->caps);
    if (leg_cache(leg))
        cache_acquire(leg);
    else
        conn_start(leg, NULL);
}

/* Open a new connection to the current candidate, holding slot (or NULL). */
static void conn_start(struct mxg_leg *leg, struct mxg_cc_slot *slot)
{
    struct cand *cd = &leg->cands[leg->cur];
    struct conn *c = calloc(1, sizeof *c);
    char lbl[320];
    if (!c) {
        mxg_conncache_release(leg->env->conncache, slot);
        note_failure(leg, FK_CONNECT, "out of memory");
        leg_try_next(leg);
        return;
    }
    c->env = leg->env;
    c->slot = slot;
    c->leg = leg;
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
        note_failure(leg, FK_CONNECT, "%s: %s", cur_label(leg, lbl, sizeof lbl), uv_strerror(rc));
        leg_drop_conn(leg);
        leg_try_next(leg);
        return;
    }
    leg_set_state(leg, LEG_CONNECTING);
    leg_timer(leg, leg->env->cfg->t_connect);
}

static void leg_try_next(struct mxg_leg *leg)
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
        fail_all(leg);
        return;
    }
    leg_connect(leg);
}

/* ---------------------------------------------------------------- routing */

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

static void addr_text(const struct sockaddr_storage *ss, char *out, size_t cap)
{
    if (ss->ss_family == AF_INET)
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
        note_failure(leg, FK_LOOP, "%s[%s]: is the legacy MTA's own address "
                     "(upstream.self_addresses: mail loop)", host, text);
        return 1;
    }
    const char *what = cfg->refuse_private && !leg->nexthop[0]
                           ? mxg_addr_private((const struct sockaddr *)a) : NULL;
    if (what) {
        note_failure(leg, FK_REFUSED, "%s[%s]: %s address refused "
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
            snprintf(cd->host, sizeof cd->host, "%s", h->name);
            cd->addr = *a;
            addr_text(a, cd->addr_text, sizeof cd->addr_text);
            if (is_self(leg->env, a, leg->port_is_set ? leg->port : 0)) {
                note_failure(leg, FK_LOOP, "%s[%s]: is mxguard's own address (mail loop)",
                             h->name, cd->addr_text);
                continue;
            }
            if (refused_addr(leg, h->name, cd->addr_text, a))
                continue;
            leg->n_cands++;
        }
    }
}

/* Does DANE apply to this leg's hosts at all (host_decide's early outs)? */
static int dane_consulted(const struct mxg_leg *leg)
{
    char why[240];
    return mxg_req_dane_consulted(&leg->req_in, why, sizeof why);
}

static void on_route(void *arg, const struct mxg_route *rt)
{
    struct mxg_leg *leg = arg;
    leg->rq = NULL;
    struct mxg_reply r;
    if (rt->status == MXG_ROUTE_TEMPFAIL && rt->mx_sec == MXG_SEC_BOGUS && dane_consulted(leg)) {
        /* a bogus MX RRset: the domain's DANE policy failed (RFC 8460 §4.3) */
        struct rpt_about a = {.policy = mxg_req_tlsrpt_policy(&leg->req_in, NULL, 0, 1)};
        report_result(leg, &a, MXG_RPT_R_DNSSEC_INVALID, rt->why);
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
        mxg_reply_set(&r, 451, "4.7.5", "%s", text);
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
                rt->mx_sec == MXG_SEC_SECURE && dane_consulted(leg)) {
                struct rpt_about a = {.policy = mxg_req_tlsrpt_policy(&leg->req_in, NULL, 0, 1),
                                      .mx_host = h->name}; /* bogus addresses of a known host */
                report_result(leg, &a, MXG_RPT_R_DNSSEC_INVALID,
                              h->addrs.why[0] ? h->addrs.why : "address lookup bogus");
            }
            note_failure(leg, h->addrs.status == MXG_DNS_TEMPFAIL || h->addrs.status == MXG_DNS_BOGUS
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
        fail_all(leg);
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
    snprintf(rt->domain, sizeof rt->domain, "%s", leg->nexthop);
    rt->mx_sec = MXG_SEC_SECURE;
    rt->n = 1;
    snprintf(rt->host[0].name, sizeof rt->host[0].name, "%s", leg->nexthop);
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
    snprintf(rt->host[0].name, sizeof rt->host[0].name, "%s", rt->domain);
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
    char text[700];
    if (mxg_req_domain_check(&leg->req_in, text, sizeof text) < 0) {
        struct mxg_reply r; /* e.g. a cached policy may apply that we cannot see: fail closed */
        mxg_reply_set(&r, 451, "4.7.5", "%s", text);
        leg_fail(leg, &r);
        return;
    }
    leg_connect(leg);
}

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

/* -------------------------------------------------------------- public API */

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
    struct mxg_leg *leg = calloc(1, sizeof *leg);
    if (!leg)
        return NULL;
    leg->port = env->cfg->upstream_port;
    leg->tlsa_port = 25;
    if (opts->nexthop && opts->nexthop[0]) {
        snprintf(leg->nexthop, sizeof leg->nexthop, "%s", opts->nexthop);
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
    leg->caller_hop = caller_hop;
    if (probe_host) {
        leg->probe = 1;
        snprintf(leg->probe_host, sizeof leg->probe_host, "%s", probe_host);
    }
    leg->env = env;
    leg->st = LEG_RESOLVING;
    snprintf(leg->sid, sizeof leg->sid, "%s", session_id);
    snprintf(leg->domain, sizeof leg->domain, "%s", domain);
    snprintf(leg->mail_from, sizeof leg->mail_from, "%s", mail_from);
    leg->mp = *mp;
    leg->cbs = *cbs;
    leg->arg = arg;
    leg->op_pending = 1;
    snprintf(leg->route_text, sizeof leg->route_text, "%s", route_text);
    struct mxg_policy pol;
    mxg_policy_decide(env->cfg, env->maps ? env->maps->overrides : NULL, domain,
                      leg->nexthop[0] ? leg->nexthop : NULL, &pol);
    /* the inputs of every host's requirement; opportunistic: no override either */
    mxg_req_inputs_init(&leg->req_in, &pol, domain, leg->nexthop, leg->nexthop_mx,
                        leg->nexthop_literal, leg->opportunistic, env->cfg->dane_enabled,
                        env->sts != NULL);
    uv_timer_init(env->loop, &leg->timer);
    uv_timer_init(env->loop, &leg->deadline);
    leg->timer.data = leg->deadline.data = leg;
    leg->timers_open = 2;
    uv_timer_start(&leg->deadline, on_deadline, env->cfg->t_rcpt_total, 0);
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

struct mxg_leg *mxg_leg_open(const struct mxg_upstream_env *env, const char *session_id,
                             const char *domain, const char *mail_from,
                             const struct mxg_mail_params *mp, const struct mxg_leg_cbs *cbs,
                             void *arg)
{
    return leg_start(env, session_id, domain, mail_from, mp, NULL, NULL, cbs, arg);
}

struct mxg_leg *mxg_leg_open_opts(const struct mxg_upstream_env *env, const char *session_id,
                                  const char *domain, const char *mail_from,
                                  const struct mxg_mail_params *mp,
                                  const struct mxg_leg_opts *opts, const struct mxg_leg_cbs *cbs,
                                  void *arg)
{
    return leg_start(env, session_id, domain, mail_from, mp, NULL, opts, cbs, arg);
}

struct mxg_leg *mxg_leg_probe(const struct mxg_upstream_env *env, const char *domain,
                              const char *mx_host, const struct mxg_leg_cbs *cbs, void *arg)
{
    struct mxg_mail_params mp;
    memset(&mp, 0, sizeof mp);
    return leg_start(env, "probe", domain, "", &mp, mx_host, NULL, cbs, arg);
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
        txn_lost(leg, "Write failed");
        return -1;
    }
    return 0;
}

int mxg_leg_rcpt(struct mxg_leg *leg, const char *addr, const struct mxg_rcpt_params *rp)
{
    if (leg->st != LEG_READY)
        return -1;
    char params[640] = "";
    if (leg->caps.dsn && rp) {
        size_t l = 0;
        if (rp->notify[0])
            l += (size_t)snprintf(params + l, sizeof params - l, " NOTIFY=%s", rp->notify);
        if (rp->orcpt[0])
            snprintf(params + l, sizeof params - l, " ORCPT=%s", rp->orcpt);
    }
    return leg_op(leg, LEG_RCPT, leg->env->cfg->t_upstream_cmd, "RCPT TO:<%s>%s", addr, params);
}

int mxg_leg_data(struct mxg_leg *leg)
{
    if (leg->st != LEG_READY)
        return -1;
    return leg_op(leg, LEG_DATA, leg->env->cfg->t_upstream_cmd, "DATA");
}

int mxg_leg_write(struct mxg_leg *leg, const void *p, size_t n)
{
    if (leg->st != LEG_STREAM || !leg->conn)
        return -1;
    if (leg_send(leg, p, n) < 0) {
        txn_lost(leg, "Write failed");
        return -1;
    }
    if (leg->conn->pending > LEG_HIGH_WATER) {
        leg->want_drain = 1;
        return 1;
    }
    return 0;
}

int mxg_leg_end_data(struct mxg_leg *leg)
{
    if (leg->st != LEG_STREAM)
        return -1;
    leg->t_phase = uv_now(leg->env->loop);
    return leg_op(leg, LEG_DOT, leg->env->cfg->t_final, ".");
}

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
        if (leg_cmd(leg, LEG_QUIT, 5000, "QUIT") == 0)
            return;
    }
    leg_destroy(leg);
}

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

int mxg_body_8bit(const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i] & 0x80)
            return 1;
    return 0;
}

int mxg_leg_body_check(const struct mxg_leg *leg, int eight_bit, struct mxg_reply *r)
{
    if (!leg->need_7bit || !eight_bit)
        return 0;
    mxg_reply_set(r, 554, "5.6.3", "8-bit message, but %s[%s] does not support 8BITMIME",
                  leg->mx_host, leg->mx_addr);
    return -1;
}

const struct mxg_reply *mxg_leg_error(const struct mxg_leg *leg)
{
    return &leg->err;
}

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

const char *mxg_leg_domain(const struct mxg_leg *leg)
{
    return leg->domain;
}
