/* proxy/outbound/leg_reuse.c — the leg's connection-cache glue (conncache.h):
 * the requirement key, acquiring a connection or a slot, adopting and
 * parking connections, the TLS resumption key. Like Postfix smtp_reuse.c;
 * see leg_int.h. */
#include "leg_int.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../core/ntoa.h"
#include "../../core/str.h"
#include "../../core/hex.h"
#include "../../core/log.h"
#include "../../core/metrics.h"

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

/* docs/ARCHITECTURE.md §Reuse: a cached connection (and a TLS session) serves only mail
 * whose requirement is identical. The key is the port, the TLSA port, the
 * no-TLSRPT option and the digest of the current candidate's requirement
 * (policy/requirement.h mxg_req_digest: the MX host, the policy with its
 * override key and match list — under an override or a next hop also the
 * domain and next hop —, opportunistic, the DANE decision with the usable
 * TLSA set, the WebPKI mode with the MTA-STS policy id and mx patterns or
 * the list's entry). The MX address is the cache's destination. */

/* The connection cache the leg uses (NULL for probes: always a fresh connection). */
struct mxg_conncache *leg_cache(const struct mxg_leg *leg)
{
    return leg->probe ? NULL : leg->env->conncache;
}

/* Stop waiting for a connection slot. */
void leg_cache_cancel(struct mxg_leg *leg)
{
    if (leg->ccw) {
        mxg_conncache_cancel(leg->env->conncache, leg->ccw);
        leg->ccw = NULL;
    }
}

/* The requirement key of the current candidate (see above). */
static void leg_req_key(struct mxg_leg *leg, struct mxg_cc_key *out)
{
#define KEY_HEAD "v2|port=%d|tlsa-port=%d|no-tlsrpt=%d|req="
    char desc[200];
    /* the head with three ints of at most 11 characters each, then the 64 hex digits: it
     * always fits, so no key can ever leave the requirement out (a reuse across requirements) */
    _Static_assert(sizeof KEY_HEAD - 6 + 3 * 11 + 2 * 32 < sizeof desc, "key buffer too small");
    /* KEY_HEAD's octets, as snprintf(desc, sizeof desc, KEY_HEAD, port, tlsa_port,
     * no_tlsrpt) writes them, put together without printf */
    size_t l = 0;
    memcpy(desc + l, "v2|port=", 8), l += 8;
    l += mxg_ntoa_int(leg->port, desc + l);
    memcpy(desc + l, "|tlsa-port=", 11), l += 11;
    l += mxg_ntoa_int(leg->tlsa_port, desc + l);
    memcpy(desc + l, "|no-tlsrpt=", 11), l += 11;
    l += mxg_ntoa_int(leg->no_tlsrpt, desc + l);
    memcpy(desc + l, "|req=", 5), l += 5;
#undef KEY_HEAD
    const unsigned char *d = leg_cur_req(leg)->digest; /* the requirement (policy/requirement.h) */
    l += mxg_hex_encode(d, 32, desc + l);
    mxg_cc_key_make(leg->env->conncache, desc, l, out);
}

/* The TLS session key: the requirement key, the MX address + port, and the
 * session store's settings generation now (the TLS context in force: a session
 * saved under settings a reload replaced is never offered again). Every part is
 * the same in every worker process (the generation too: tls_engine.h
 * mxg_tls_resume_generation), so a store shared by the workers gives a session
 * to any of them under the identical requirement only. */
size_t leg_resume_key(const struct mxg_leg *leg, unsigned char *out)
{
    const struct sockaddr_storage *a = &leg->cands[leg->cur].addr;
    size_t l = sizeof leg->cckey.d;
    memcpy(out, leg->cckey.d, l);
    uint64_t gen = mxg_tls_resume_generation(leg->env->tls_resume);
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

/* No slot for the candidate within the wait: 451 4.7.0 (conncache.h). */
static void limited(struct mxg_leg *leg, const char *why)
{
    char lbl[320];
    struct mxg_reply r;
    mxg_reply_set(&r, 451, "4.7.0", "Too many connections to %s, try again later: %s",
                  leg_cur_label(leg, lbl, sizeof lbl), why ? why : "limit reached");
    LOG_W("upstream", "%s %s: %s", leg->sid, leg->domain, r.text);
    mxg_metrics_inc(leg->env->metrics, MXG_M_UPSTREAM_CONNS, "limited");
    leg_fail(leg, &r);
}

/* Take over an idle cached connection: RSET first (MAIL pipelined behind it,
 * in the same write, when the server offers PIPELINING); a failure before MAIL's reply means
 * the connection was stale and the leg connects afresh (leg_try_next). */
static void leg_adopt(struct mxg_leg *leg, void *conn, int uses)
{
    struct conn *c = conn;
    struct parked *pk = c->pk;
    c->pk = NULL;
    c->leg = leg;
    leg->conn = c;
    if (leg->plaintext_retry) /* leg_park refuses it: no other leg may wait for it */
        mxg_conncache_no_park(leg->env->conncache, c->slot);
    leg->tls = pk->tls;
    leg->caps = pk->caps;
    mxg_str_copy(leg->tls_version, sizeof leg->tls_version, pk->tls_version);
    mxg_str_copy(leg->tls_cipher, sizeof leg->tls_cipher, pk->tls_cipher);
    mxg_str_copy(leg->verified, sizeof leg->verified, pk->verified);
    mxg_str_copy(leg->src_addr, sizeof leg->src_addr, pk->src_addr);
    mxg_str_copy(leg->mx_helo, sizeof leg->mx_helo, pk->mx_helo);
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
        leg_cork(leg); /* RSET and MAIL in one write (RFC 2920 §3.1: both may be grouped) */
        if (leg_send(leg, "RSET\r\n", 6) < 0) {
            (void)leg_uncork(leg);
            leg_drop_conn(leg);
            leg_try_next(leg);
            return;
        }
        leg_send_mail(leg); /* may fail the leg, or drop this connection (sending what is held) */
        if (leg->st == LEG_MAIL)
            leg_set_state(leg, LEG_RSET);
        if (leg_uncork(leg) < 0 && leg->conn)
            leg_txn_lost(leg, "Write failed"); /* reuse_setup: a stale connection, connect afresh */
        return;
    }
    leg->mail_pipelined = 0;
    if (leg_cmd(leg, LEG_RSET, leg->env->cfg->t_upstream_cmd, "RSET") < 0) {
        leg_drop_conn(leg);
        leg_try_next(leg);
    }
}

/* The connection cache answered a wait: a cached or a new connection, or a limit. */
static void on_cc_grant(void *arg, const struct mxg_cc_grant *g)
{
    struct mxg_leg *leg = arg;
    leg->ccw = NULL;
    if (g->status == MXG_CC_REUSED) {
        mxg_metrics_inc(leg->env->metrics, MXG_M_UPSTREAM_CONNS, "reused");
        leg_adopt(leg, g->conn, g->uses);
    } else if (g->status == MXG_CC_FRESH) {
        mxg_metrics_inc(leg->env->metrics, MXG_M_UPSTREAM_CONNS, "new");
        leg_conn_start(leg, g->slot);
    } else {
        limited(leg, g->why);
    }
}

/* A connection for the current candidate: cached, new, or wait for a slot. */
void leg_cache_acquire(struct mxg_leg *leg)
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
    /* owner: the caller's object (the inbound session: all legs of a transaction) */
    switch (mxg_conncache_acquire(cc, (const struct sockaddr *)&sa, &leg->cckey, !leg->no_reuse,
                                  leg->arg, on_cc_grant, leg, &leg->ccw, &g)) {
    case MXG_CC_REUSED:
        mxg_metrics_inc(leg->env->metrics, MXG_M_UPSTREAM_CONNS, "reused");
        leg_adopt(leg, g.conn, g.uses);
        return;
    case MXG_CC_FRESH:
        mxg_metrics_inc(leg->env->metrics, MXG_M_UPSTREAM_CONNS, "new");
        leg_conn_start(leg, g.slot);
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
            mxg_metrics_inc(c->env->metrics, MXG_M_UPSTREAM_WRITES, NULL);
            if (uv_try_write((uv_stream_t *)&c->tcp, &b, 1) != (int)k)
                return;
        }
        return;
    }
    if (n) {
        uv_buf_t b = uv_buf_init((char *)p, (unsigned)n);
        mxg_metrics_inc(c->env->metrics, MXG_M_UPSTREAM_WRITES, NULL);
        (void)uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
    }
}

/* Input on an idle connection: TLS housekeeping (a late session ticket) is
 * fine; anything else (EOF, a 421, garbage) ends it. */
void leg_parked_input(struct conn *c, ssize_t n, const uv_buf_t *buf)
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
 * released from leg_conn_closed(). */
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
        uv_close((uv_handle_t *)&c->tcp, leg_conn_closed);
}

/* After the transaction (no command outstanding): hand the connection to
 * the cache. 0 = parked (the leg has no connection any more), -1 = not. */
int leg_park(struct mxg_leg *leg)
{
    struct conn *c = leg->conn;
    struct mxg_conncache *cc = leg_cache(leg);
    if (!cc || !c || !c->slot || leg->plaintext_retry || mxg_buf_avail(&leg->in) > 0 ||
        leg->corked > 0 || mxg_buf_avail(&leg->wout) > 0 || /* held bytes never follow a conn */
        (leg->tls && !mxg_tls_handshake_done(leg->tls)) || !mxg_conncache_enabled(cc))
        return -1;
    struct parked *pk = calloc(1, sizeof *pk);
    if (!pk)
        return -1;
    pk->tls = leg->tls;
    pk->caps = leg->caps;
    mxg_str_copy(pk->tls_version, sizeof pk->tls_version, leg->tls_version);
    mxg_str_copy(pk->tls_cipher, sizeof pk->tls_cipher, leg->tls_cipher);
    mxg_str_copy(pk->verified, sizeof pk->verified, leg->verified);
    mxg_str_copy(pk->src_addr, sizeof pk->src_addr, leg->src_addr);
    mxg_str_copy(pk->mx_helo, sizeof pk->mx_helo, leg->mx_helo);
    c->pk = pk;
    if (mxg_conncache_park(cc, c->slot, &leg->cckey, c) < 0) {
        c->pk = NULL;
        free(pk);
        return -1;
    }
    LOG_D("upstream", "%s %s: connection to %s[%s] kept for reuse", leg->sid, leg->domain,
          leg->mx_host, leg->mx_addr);
    leg->tls = NULL;
    leg->conn = NULL;
    c->leg = NULL;
    uv_timer_stop(&leg->timer);
    return 0;
}

static const struct mxg_cc_ops upstream_cc_ops = {parked_close};

/* The connection cache bounds of cfg (upstream.h). */
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
    out->busy_wait_ms = cfg->cache_busy_wait_ms;
    out->busy_waiters = cfg->cache_busy_waiters;
}

/* The connection cache for legs, with the bounds of cfg (upstream.h). */
struct mxg_conncache *mxg_upstream_conncache_new(uv_loop_t *loop, const struct mxg_config *cfg)
{
    struct mxg_conncache_cfg c;
    mxg_upstream_conncache_cfg(cfg, &c);
    return mxg_conncache_new(loop, &c, &upstream_cc_ops);
}
