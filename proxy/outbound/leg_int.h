/* proxy/outbound/leg_int.h — PRIVATE to the upstream leg (leg*.c here): the
 * leg's types and the functions its files share; never included from
 * outside (the public header is upstream.h). Split by concern as Postfix's
 * src/smtp/ is:
 *
 *  - leg.c:         states and their names, the failure record
 *                   (leg_note_failure, leg_fail), timers and teardown, the
 *                   protocol steps (EHLO, MAIL), the reply transition table
 *                   (leg_on_reply) and the public transaction API
 *                   (mxg_leg_rcpt ... mxg_leg_close, mxg_reply_judge);
 *                   like smtp_proto.c.
 *  - leg_chat.c:    bytes in and out: writes (through TLS once it is up),
 *                   commands, reads, splitting input into reply lines;
 *                   like smtp_chat.c. Write coalescing: what one step
 *                   produces goes out in one write (leg_cork/leg_uncork:
 *                   RSET+MAIL(+the first RCPT) on a cached connection,
 *                   MAIL+the first RCPT with PIPELINING, the last handshake
 *                   flight with EHLO, the TLS records of one send, the
 *                   held message bytes with the final dot).
 *  - leg_connect.c: the route and its candidates (MX, [host] and address
 *                   literal next hops), loop protection, connecting, a lost
 *                   connection, trying the next candidate, and leg
 *                   construction (mxg_leg_open*, mxg_leg_probe);
 *                   like smtp_connect.c.
 *  - leg_tls.c:     the per-host TLS requirement (the DANE decision, then
 *                   policy/requirement.h computes it once per host), the
 *                   handshake step and its judgement (by the requirement).
 *  - leg_reuse.c:   connection-cache glue: requirement key, acquiring a
 *                   slot, adopting and parking connections, TLS resumption
 *                   key; like smtp_reuse.c.
 *  - leg_tlsrpt.c:  TLSRPT results of a leg (RFC 8460); like smtp_tlsrpt.c.
 *  - leg_watch.c:   the leg's end told to env->watch (the status page's
 *                   tally) and its decision in `mxguard check`'s words.
 *
 * Contract (all files): everything runs on the leg's loop thread. A
 * function that may end the current candidate or the leg (leg_cand_failed,
 * leg_try_next, leg_tls_failed, leg_conn_lost, leg_txn_lost, leg_fail) may
 * have changed leg->conn and leg->st when it returns: callers return right
 * after it. The leg owns its conn until leg_drop_conn() detaches it (the
 * conn then frees itself in leg_conn_closed) or leg_park() hands it to the
 * connection cache; a conn that will not be parked (a plaintext retry, one
 * dropped, one closing with QUIT) is marked so at once
 * (mxg_conncache_no_park: nobody waits upstream.cache_busy_wait for it). Errors: int results are 0 or -1 unless stated below;
 * why a candidate failed is recorded in the leg (leg_note_failure), and a
 * failed leg ends in leg_fail() (its sticky error). Log component
 * "upstream" throughout. */
#ifndef MXG_LEG_INT_H
#define MXG_LEG_INT_H

#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#include "../../dane/dane.h"
#include "../../dns/mxroute.h"
#include "../../policy/requirement.h"
#include "../../core/buf.h"
#include "conncache.h"
#include "upstream.h"

#define LEG_HIGH_WATER (256 * 1024)
#define LEG_LOW_WATER (64 * 1024)
#define LEG_MAX_CANDS 64

struct parked; /* leg_reuse.c: what an idle cached connection keeps */

/* The leg's states, in protocol order (leg_in_setup() compares ranges);
 * leg_state_names[] in leg.c must follow it. */
enum leg_state {
    LEG_RESOLVING, LEG_TLSA, LEG_SLOT, LEG_CONNECTING, LEG_GREETING, LEG_EHLO, LEG_HELO,
    LEG_STARTTLS, LEG_TLS_HANDSHAKE, LEG_EHLO_TLS, LEG_RSET, LEG_MAIL, LEG_READY, LEG_RCPT, LEG_DATA, LEG_STREAM,
    LEG_DOT, LEG_DONE, LEG_QUIT, LEG_FAILED, LEG_CLOSED,
};

/* Why a candidate failed, most severe kind wins the final reply's code. */
enum fail_kind { FK_NONE = 0, FK_DNS, FK_CONNECT, FK_PROTOCOL, FK_REFUSED, FK_LOOP, FK_TLS, FK_LIMIT };

/* One candidate: an address of one MX host (route order, family order). */
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
    struct mxg_dane_query *q;
    struct mxg_dane_host dane;
    struct mxg_req *req;      /* computed once (leg_host_requirement), owned; NULL before;
                                 borrows dane's TLSA records */
};

/* One TCP connection attempt; a dropped conn is detached from its leg and
 * frees itself when libuv has closed it (leg_conn_closed). */
struct conn {
    uv_tcp_t tcp;
    uv_connect_t req;
    struct mxg_leg *leg; /* NULL once dropped */
    size_t pending;      /* bytes queued in uv_write */
    /* connection cache (conncache.h) */
    const struct mxg_upstream_env *env;
    struct mxg_cc_slot *slot;  /* its place under the limits; released when closed */
    struct parked *pk;         /* while idle in the cache: the session state */
};

/* One leg (upstream.h): owned by the caller until mxg_leg_close(), then by
 * itself until its timers are closed. */
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
    struct mxg_caps caps;
    int want_drain;

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

    /* connection cache (conncache.h) */
    struct mxg_cc_wait *ccw;      /* waiting for a connection slot (LEG_SLOT) */
    struct mxg_cc_key cckey;      /* the requirement key of the current candidate */
    int reused;                   /* transactions the cached connection had before ours */
    int reuse_setup;              /* reused and not yet past MAIL: a failure means stale */
    int no_reuse;                 /* the cached connection was stale: connect afresh */
    int mail_pipelined;           /* MAIL went out right behind RSET */

    /* the first recipient (mxg_leg_opts.first_rcpt): with PIPELINING its RCPT goes
     * out in MAIL's write (leg_send_mail); rcpt_early: it did, and the
     * caller's first mxg_leg_rcpt has not claimed its reply yet (parse_input
     * holds that reply until it does) */
    int has_first;
    int rcpt_early;
    char first_rcpt[MXG_PATH_MAX];
    struct mxg_rcpt_params first_rp;
    size_t reasons_mark;          /* reasons / fail_kind before the stale attempt */
    int kind_mark;
    int watched;                  /* env->watch was told the outcome (leg_watch_end) */

    /* write coalescing (leg_chat.c): while corked, what the leg sends is held in
     * wout (ciphertext once TLS is up) and goes out in one write at the last
     * leg_uncork(); leg_drop_conn() sends what is held first */
    int corked;                   /* leg_cork depth */
    int held;                     /* mxg_leg_hold: one cork level until the final dot */
    struct mxg_buf wout;

    /* Last: 35 of the leg's 39 KB. leg_start() zeroes everything but these three
     * and clears these three (their headers only: the policy pattern slots and
     * reply texts past their terminators are never read). */
    struct mxg_req_inputs req_in; /* everything the requirement depends on (policy/requirement.h) */
    struct mxg_reply_parser rp;
    struct mxg_reply err;
};

extern const char *const leg_state_names[];

/* ------------------------------------------------------------------ leg.c */

void leg_set_state(struct mxg_leg *leg, enum leg_state st);
const char *leg_cur_label(struct mxg_leg *leg, char *buf, size_t cap);
void leg_note_failure(struct mxg_leg *leg, enum fail_kind kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void leg_cand_failed(struct mxg_leg *leg, enum fail_kind kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void leg_fail(struct mxg_leg *leg, const struct mxg_reply *r);
void leg_fail_all(struct mxg_leg *leg);
void leg_destroy(struct mxg_leg *leg);
int leg_in_setup(const struct mxg_leg *leg);
void leg_txn_lost(struct mxg_leg *leg, const char *what);
void leg_on_deadline(uv_timer_t *t);
void leg_timer(struct mxg_leg *leg, uint64_t ms);
void leg_send_mail(struct mxg_leg *leg);
void leg_send_ehlo(struct mxg_leg *leg, enum leg_state next);
void leg_on_reply(struct mxg_leg *leg, struct mxg_reply *r);

/* ------------------------------------------------------------- leg_chat.c */

int leg_flush_tls(struct mxg_leg *leg);
int leg_send(struct mxg_leg *leg, const void *p, size_t n);
/* Hold what the leg sends from now on (nests). */
void leg_cork(struct mxg_leg *leg);
/* End one cork level; the last one sends what is held in one write
 * (-1: that write failed; nothing is held any more either way). */
int leg_uncork(struct mxg_leg *leg);
/* Send what is held now, corked or not (leg_drop_conn: before the close). */
int leg_send_held(struct mxg_leg *leg);
int leg_cmd(struct mxg_leg *leg, enum leg_state next, uint64_t timeout, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Split buffered plaintext into replies and act on each (leg_on_reply). A
 * reply to an RCPT sent early (rcpt_early, state rcpt) stays buffered until
 * the caller's mxg_leg_rcpt claims it. */
void leg_parse_input(struct mxg_leg *leg);
void leg_conn_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
void leg_conn_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf);

/* ---------------------------------------------------------- leg_connect.c */

void leg_conn_closed(uv_handle_t *h);
void leg_drop_conn(struct mxg_leg *leg);
void leg_conn_lost(struct mxg_leg *leg, const char *what);
void leg_connect(struct mxg_leg *leg);
void leg_conn_start(struct mxg_leg *leg, struct mxg_cc_slot *slot);
void leg_try_next(struct mxg_leg *leg);

/* -------------------------------------------------------------- leg_tls.c */

const struct mxg_dane_host *leg_cur_dane(const struct mxg_leg *leg);
/* The requirement of the current candidate's host (set by leg_host_requirement). */
const struct mxg_req *leg_cur_req(const struct mxg_leg *leg);
/* Does DANE apply to this leg's hosts at all? */
int leg_dane_consulted(const struct mxg_leg *leg);
/* 1 = the host's DANE decision is known, 0 = it comes through a callback */
int leg_host_decide(struct mxg_leg *leg, struct host_state *hs, const struct mxg_route_host *h);
/* The requirement for cd's host, once per host: 0 = the host may be used,
 * -1 = it is ruled out (noted, reported, leg_try_next() done). */
int leg_host_requirement(struct mxg_leg *leg, struct host_state *hs, const struct cand *cd);
void leg_tls_failed(struct mxg_leg *leg, const char *why);
void leg_tls_step(struct mxg_leg *leg);

/* ------------------------------------------------------------ leg_reuse.c */

struct mxg_conncache *leg_cache(const struct mxg_leg *leg);
void leg_cache_cancel(struct mxg_leg *leg);
size_t leg_resume_key(const struct mxg_leg *leg, unsigned char *out);
void leg_cache_acquire(struct mxg_leg *leg);
void leg_parked_input(struct conn *c, ssize_t n, const uv_buf_t *buf);
/* 0 = parked (the leg has no connection any more), -1 = not */
int leg_park(struct mxg_leg *leg);

/* ----------------------------------------------------------- leg_tlsrpt.c */

/* What one TLSRPT result is about. policy: the policy it is recorded
 * under (policy/requirement.h decides); d: the DANE decision of the MX host
 * (NULL: none, e.g. the MX RRset itself was bogus; its records are the
 * tlsa policy-string); mx_host / mx_addr: the receiving MX and address (""
 * or NULL: not known); connected: a connection was made (sending-mta-ip
 * and receiving-mx-helo are its own; else they are left out). */
struct leg_rpt_about {
    enum mxg_req_rpt policy;
    const struct mxg_dane_host *d;
    const char *mx_host, *mx_addr;
    int connected;
};

const char *leg_verify_result_type(long vr);
void leg_report_result(struct mxg_leg *leg, const struct leg_rpt_about *a, const char *rtype,
                       const char *reason);
void leg_report(struct mxg_leg *leg, const char *rtype, const char *reason);

/* ------------------------------------------------------------ leg_watch.c */

/* Tell env->watch (once per leg) that the transaction ended: ok = the final
 * dot got 2xx, else r is the failure (upstream.h struct mxg_leg_outcome). */
void leg_watch_end(struct mxg_leg *leg, int ok, const struct mxg_reply *r);

#endif
