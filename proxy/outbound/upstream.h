/* proxy/outbound/upstream.h — one upstream *leg*: the connection that carries one
 * inbound transaction's recipients for one destination domain to one MX.
 * Implemented by proxy/outbound/leg*.c (private header leg_int.h says which file does what).
 *
 * Lifecycle (explicit state enum in leg_int.h, transitions logged):
 *   mxg_leg_open()  resolve MX → connect (next address / next MX on failure)
 *                   → greeting → EHLO (HELO fallback) → STARTTLS when offered
 *                   → EHLO again → MAIL FROM          → on_reply(250 | failure)
 *   mxg_leg_rcpt()  RCPT TO                             → on_reply(upstream's reply)
 *   mxg_leg_data()  DATA                                → on_reply(354 | failure)
 *   mxg_leg_write() message bytes (wire form, stuffed, CRLF) — back-pressure:
 *                   returns 1 when the caller should stop reading its client
 *                   until on_drain runs (on_drain also runs when the leg
 *                   fails meanwhile: the next write then returns -1)
 *   mxg_leg_hold()  (optional) the next bytes go out with the dot, in one write
 *   mxg_leg_end_data() ".\r\n"                          → on_reply(final reply)
 *   mxg_leg_close() QUIT politely if idle, else abort; the leg frees itself
 *                   later and never calls back again.
 * Only one operation is outstanding at a time; on_reply runs exactly once per
 * operation, always from a loop callback (never inside the call that started
 * it). A failed leg answers every later operation with its sticky error via
 * the return value -1 and mxg_leg_error().
 *
 * Replies handed to on_reply already follow docs/ARCHITECTURE.md §Replies and
 * §Protocol violations: an upstream 421
 * (MAIL included) becomes 451 4.4.2, timeouts and lost connections become
 * 451 4.4.2; a reply that breaks the protocol (malformed, mixed codes, a line
 * over MXG_REPLY_LINE_MAX octets, a 3xx to MAIL/RCPT/the dot, anything but
 * 354 to DATA) fails the leg with 451 4.5.0 and closes the connection; reply
 * text is printable US-ASCII (smtp_parse.h); after QUIT nothing the MX sends
 * changes anything, the leg just ends; local
 * failures carry precise enhanced codes (451 4.4.3 DNS, 451 4.4.1 connect,
 * 556 5.1.10 null MX, 550 5.1.2 no such domain, 4.7.x TLS requirement).
 *
 * Ownership: env and everything it points to are borrowed and must outlive
 * every leg; the leg copies the strings it is given. */
#ifndef MXG_UPSTREAM_H
#define MXG_UPSTREAM_H

#include <stdint.h>
#include <stdio.h>
#include <uv.h>

#include "../../core/config.h"
#include "../../core/metrics.h"
#include "../../dns/dns.h"
#include "../../policy/policy.h"
#include "../../policy/stlist.h"
#include "../../policy/sts.h"
#include "../../report/tlsrpt.h"
#include "../../tls/tls_engine.h"
#include "../../smtp/smtp_parse.h"

struct mxg_upstream_env {
    uv_loop_t *loop;
    const struct mxg_config *cfg;
    struct mxg_dns *dns;
    struct mxg_tls_ctx *tls;
    struct mxg_sts *sts;          /* NULL: MTA-STS disabled */
    struct mxg_stlist_store *stlist; /* NULL: no policy list */
    struct mxg_rpt *rpt;          /* NULL: TLSRPT recording off */
    struct mxg_metrics *metrics;  /* NULL: not counted (core/metrics.h) */
    /* the upstream connection cache and limits (proxy/outbound/conncache.h; made by
     * mxg_upstream_conncache_new) and the TLS session store for resumption
     * (tls/tls_engine.h); NULL: every leg connects afresh, no limits, full
     * handshakes. Probes (mxg_leg_probe) never use either. */
    struct mxg_conncache *conncache;
    struct mxg_tls_resume *tls_resume;
    /* the operator's TLS policy overrides and static routes (policy/policy.h);
     * NULL: none. Read when a leg starts (the leg keeps copies), so the
     * owner may swap the maps inside between callbacks (SIGHUP). */
    const struct mxg_policy_maps *maps;
    /* addresses of our own listeners (loop protection); port ignored */
    const struct sockaddr_storage *self;
    int n_self;
    /* told of every finished delivery leg (not probes, not report mail); NULL: nobody */
    const struct mxg_leg_watch *watch;
    /* Tests only: asked before each write to an MX (leg_chat.c) with its octets;
     * nonzero makes that write fail as an out-of-memory error would. NULL: never. */
    int (*write_fault)(void *arg, const void *p, size_t n);
    void *write_fault_arg;
};

struct mxg_leg;
struct mxg_req;

/* What a leg tells env->watch once, when its transaction ended: the final
 * dot answered (ok: 2xx), or the leg failed (opening it under its policy,
 * or later). Everything is borrowed for the duration of the call only. req:
 * the requirement (policy/requirement.h) of the last MX host the leg
 * decided, NULL when it decided none (the MX lookup failed, ...). leg: may
 * be passed to mxg_leg_describe() during the call. */
struct mxg_leg_outcome {
    const char *domain;
    int ok;
    const struct mxg_reply *reply;
    const struct mxg_req *req;
    const struct mxg_leg *leg;
};
struct mxg_leg_watch {
    void (*on_end)(void *arg, const struct mxg_leg_outcome *o);
    void *arg;
};

struct mxg_leg_cbs {
    void (*on_reply)(void *arg, struct mxg_leg *leg, const struct mxg_reply *r);
    void (*on_drain)(void *arg, struct mxg_leg *leg);
};

/* What a log line or a test wants to know about the leg. */
struct mxg_leg_info {
    const char *domain;
    const char *mx_host;   /* "" until connected */
    const char *mx_addr;   /* "" until connected */
    const char *tls_version; /* NULL = plaintext */
    const char *tls_cipher;
    const char *verified;  /* "DANE (TLSA 3 1 1 matched at depth 0, ...)", "unauthenticated ..." */
    const struct mxg_policy *policy;
    const struct mxg_sts_result *sts; /* NULL when MTA-STS was not consulted */
    const struct mxg_stlist_policy *list; /* the policy list entry applied, or NULL */
    int need_7bit;         /* upstream lacks 8BITMIME and the client said BODY=8BITMIME */
    int no_dsn;            /* upstream lacks DSN: NOTIFY/ORCPT/RET/ENVID were not passed on
                              (meaningful once MAIL was accepted) */
};

/* Every leg (mxg_leg_open, _open_opts without a nexthop, mxg_leg_probe)
 * first looks the domain up in env->maps->routes: a static route gives it
 * a fixed next hop as if opts->nexthop had been set (policy/route.h says
 * how the policy applies to it). The decision (policy/policy.h) takes the
 * override of the domain, else of the next hop's host. */
struct mxg_leg *mxg_leg_open(const struct mxg_upstream_env *env, const char *session_id,
                             const char *domain, const char *mail_from,
                             const struct mxg_mail_params *mp, const struct mxg_leg_cbs *cbs,
                             void *arg);

/* How a leg that is not a plain "MX of the recipient domain" delivery goes
 * out. All-zero = mxg_leg_open(). Strings are copied.
 *  - nexthop: a fixed next hop (a static route, the spool's bounce route):
 *    a host name or an address literal. nexthop_mx = 0 ("[host]:port" in
 *    Postfix terms): the host's own addresses, no MX lookup; nexthop_mx = 1
 *    ("host"): MX lookup of nexthop instead of the domain. The DANE decision
 *    applies to the host(s) actually used (TLSA at the host name, port);
 *    MTA-STS and the policy list apply only when nexthop_mx = 1 (RFC 8461
 *    §4: they name MX hosts), and then as the policy of nexthop, the domain
 *    whose MX hosts are used (TLSRPT results count for it too). Loop protection
 *    compares address AND port when a nexthop port is given (a bounce route
 *    to the legacy MTA on 127.0.0.1:25 is fine while we listen on :10025).
 *  - opportunistic: TLS "may" whatever DANE/MTA-STS/list say (report mail:
 *    RFC 8460 §3, reports must be delivered despite TLS failures).
 *  - no_tlsrpt: record no TLSRPT result (report mail never produces reports
 *    about itself, docs/ARCHITECTURE.md §Report delivery).
 *  - first_rcpt / first_rp (NULL: none): the recipient (and its DSN
 *    parameters, NULL: none) of the caller's first mxg_leg_rcpt(). When
 *    the MX offers PIPELINING its RCPT goes out in MAIL's write (RFC 2920
 *    §3.1; RSET+MAIL+RCPT on a reused connection); every outcome stays
 *    what the lock-step exchange gives: MAIL's reply is on_reply of the
 *    open (a refused MAIL fails the leg, the RCPT's reply is never read:
 *    the connection is closed), and the first mxg_leg_rcpt() then only
 *    claims the RCPT's reply instead of sending (on_reply gets it, as
 *    always from the loop). Another first recipient than this one fails the
 *    leg with 451 4.3.0 (the MX holds an RCPT nobody asked for); closing
 *    the leg before the claimed reply came aborts the connection (no QUIT,
 *    not parked). Without PIPELINING: lock-step, as without first_rcpt. */
struct mxg_leg_opts {
    const char *nexthop;
    int nexthop_port;   /* 0 = upstream.port */
    int nexthop_mx;
    int opportunistic;
    int no_tlsrpt;
    const char *first_rcpt;
    const struct mxg_rcpt_params *first_rp;
};
struct mxg_leg *mxg_leg_open_opts(const struct mxg_upstream_env *env, const char *session_id,
                                  const char *domain, const char *mail_from,
                                  const struct mxg_mail_params *mp,
                                  const struct mxg_leg_opts *opts, const struct mxg_leg_cbs *cbs,
                                  void *arg);
/* Probe one MX host of domain under the policy, as a delivery would
 * (DNS, DANE, connect, EHLO, STARTTLS, verification, EHLO), but stop before
 * MAIL: on_reply gets 250 naming TLS version and verification, or the
 * failure a delivery would get. Close with mxg_leg_close() (sends QUIT). */
struct mxg_leg *mxg_leg_probe(const struct mxg_upstream_env *env, const char *domain,
                              const char *mx_host, const struct mxg_leg_cbs *cbs, void *arg);
int mxg_leg_rcpt(struct mxg_leg *leg, const char *addr, const struct mxg_rcpt_params *rp);
int mxg_leg_data(struct mxg_leg *leg);
int mxg_leg_write(struct mxg_leg *leg, const void *p, size_t n);
int mxg_leg_end_data(struct mxg_leg *leg);
/* The message bytes written next (mxg_leg_write) are held and go out with
 * the final dot (mxg_leg_end_data) in one write: for the last bytes of a
 * message, when the dot follows at once. A leg closed or failed before the
 * dot sends them first, as if they had not been held. Only while streaming
 * (after 354); else nothing happens. */
void mxg_leg_hold(struct mxg_leg *leg);
void mxg_leg_close(struct mxg_leg *leg);

const struct mxg_reply *mxg_leg_error(const struct mxg_leg *leg);

/* How every consumer of a leg (session, outbound, queue runner) judges a
 * reply that ends a step (RCPT, the final dot, a failure): returns its
 * class 2, 4 or 5 with *out = *in; anything else is never success — no
 * reply (code 0) gives 451 4.4.2, a 1xx/3xx (or any other code) 451 4.5.0
 * naming the step and the reply (a protocol violation, RFC 5321 §4.2.1).
 * out may be in. The leg itself already fails a reply to DATA other than
 * 354 (the upstream's 4xx/5xx, else 451 4.5.0) and a 3xx to RCPT or the final dot,
 * and then sends QUIT and closes: such a connection is never reused. */
int mxg_reply_judge(const struct mxg_reply *in, const char *step, struct mxg_reply *out);

/* docs/ARCHITECTURE.md §MAIL parameters, the one rule on every path (live session, legs, outbound /
 * queue runner): may message data with 8-bit octets (eight_bit != 0) go to
 * this leg's MX? 0 = yes; -1 = no, *r = 554 5.6.3: the client declared
 * BODY=8BITMIME, the MX does not offer 8BITMIME and the data is not 7-bit
 * clean. Check before the data (or the chunk) is written; the leg must
 * then be closed without the final dot. mxg_body_8bit(): 1 if p[0..n) has
 * an octet >= 0x80. (SMTPUTF8 to an MX without it fails the leg at MAIL:
 * 553 5.6.7, the same on every path.) */
int mxg_leg_body_check(const struct mxg_leg *leg, int eight_bit, struct mxg_reply *r);
int mxg_body_8bit(const void *p, size_t n);

/* The connection cache for env->conncache, with the bounds of cfg
 * (upstream.cache_*, limits.destination_*, limits.upstream_connections,
 * limits.connection_wait) and the leg's way of closing idle connections
 * (QUIT, close). Free it as proxy/outbound/conncache.h says (shutdown, run the loop,
 * free). mxg_upstream_conncache_cfg: the same bounds for
 * mxg_conncache_reconfigure() after a reload. A leg that is done
 * (mxg_leg_close in state ready/done) parks its connection there instead
 * of sending QUIT; a leg reuses one for the same MX address, port and
 * requirement key, sending RSET first; a cached connection found dead
 * makes the leg connect afresh, never fail. Limits: a leg waits for a
 * slot (state slot-wait), then gets 451 4.7.0. */
struct mxg_conncache *mxg_upstream_conncache_new(uv_loop_t *loop, const struct mxg_config *cfg);
struct mxg_conncache_cfg;
void mxg_upstream_conncache_cfg(const struct mxg_config *cfg, struct mxg_conncache_cfg *out);
void mxg_leg_get_info(const struct mxg_leg *leg, struct mxg_leg_info *out);
/* The leg's decision as `mxguard check` prints it, from what the leg
 * already holds (no lookup): the next hop, per MX host its addresses and
 * DNSSEC status, and for each host it decided the DANE fact and the
 * requirement lines (policy/requirement.h mxg_req_describe), then the
 * domain-wide policy line; hosts not reached are named as such. */
void mxg_leg_describe(const struct mxg_leg *leg, FILE *out);
const char *mxg_leg_domain(const struct mxg_leg *leg);

#endif
