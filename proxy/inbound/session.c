/* proxy/inbound/session.c — the inbound ESMTP session; see session.h.
 *
 * Shape (after OpenSMTPD's smtp_session.c): a state enum with a name table
 * and one transition function; a command table whose entries have a check
 * step (state, syntax, limits — may answer and stop) and a proceed step;
 * pipelined commands are taken one at a time from the input buffer.
 *
 * Transaction shape (docs/ARCHITECTURE.md §Legs): a transaction
 * holds up to limits.legs upstream legs (struct leg_slot, own state enum),
 * one per destination domain, opened in parallel as RCPTs arrive. Pipelined
 * RCPTs keep being processed while earlier ones wait for their legs; their
 * replies go out in order through a FIFO of reserved replies (struct ord);
 * any other command waits until every RCPT is answered (SW_RCPTS). DATA goes
 * to every leg with recipients; the client is paused while any leg lags.
 * With more than one leg the body is also written to the spool while it
 * streams; at the end: all legs 2xx → 250; all failed → one reply (4xx if
 * any failure was temporary); mixed → the entry is committed with each
 * recipient's state (fsync'd) and DSNs queued for permanent failures before
 * the client gets 250. A spool write failure aborts every leg before the dot
 * (452 4.3.1). Queue mode (server.queue_listen): no legs at all; RCPTs are
 * accepted after syntax checks and the message is committed to the spool
 * before 250; the queue runner delivers it.
 *
 * Inbound security (proxy/inbound/auth.h): STARTTLS (offered when the
 * server has a TLS context) answers 220, discards whatever the client
 * pipelined behind it (CVE-2011-0411: logged), and moves to SS_STARTTLS;
 * from then on every octet read goes through the session's TLS engine
 * (memory BIOs) and every reply is encrypted. After the handshake the
 * session is back in SS_CONNECTED with everything learned before forgotten
 * (HELO name, transaction, AUTH): a new EHLO is required (RFC 3207 §4.2).
 * AUTH PLAIN / LOGIN (offered over TLS, or to loopback clients when the
 * operator allows plaintext) runs the SASL exchange in SS_AUTH; the password
 * check runs off the loop (SW_AUTH) and a failure is answered after
 * auth.failure_delay; a check counts per address and per user in the
 * server's throttle table from the moment it starts (parallel sessions get
 * no more checks than the limits; a success releases its place, a failure
 * keeps it), and the client whose address reaches auth.max_failures gets
 * 421 4.7.0 and is disconnected. A user lockout spares addresses that
 * authenticated as the user within auth.trusted_address_lifetime (the
 * server's trusted-address table, on disk in the state directory). The network
 * requirement (server.require_tls_networks / require_auth_networks, after the
 * ACL) is checked at MAIL: 530 5.7.0 until it is met.
 *
 * Hostile clients (docs/ARCHITECTURE.md §Hostile peers): the DATA phase has a whole deadline
 * (timeouts.data_total) and a minimum average rate (limits.data_min_rate
 * after limits.data_rate_grace) besides the idle timeout: when one fires the
 * client gets 421 4.4.2 and the session closes, which closes every leg
 * before the final dot and drops the spool entry. A bare CR in the data is
 * refused (554 5.6.0) or made a space (limits.bare_cr, data_filter.h). The
 * HELO name reaches the Received header as sent only when it is a plain host
 * name or address literal (mxg_helo_classify); control characters and
 * invalid UTF-8 get 501 5.5.2. The client is not read while SESS_IN_CAP of its input waits,
 * or SESS_OUT_CAP of our replies wait for it to read them. */
#include "session.h"

#include <arpa/inet.h>
#include <stddef.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include <openssl/crypto.h>

#include "../../core/ntoa.h"
#include "../../core/str.h"
#include "../../core/zero.h"
#include "../../core/log.h"
#include "../../core/show.h"
#include "../../spool/spool.h"
#include "auth.h"
#include "../../core/buf.h"
#include "../../smtp/data_filter.h"
#include "server.h"
#include "../../smtp/smtp_parse.h"
#include "../outbound/upstream.h"

#define SESS_IN_CAP (256 * 1024) /* stop reading the client beyond this */
/* ... and while this much of our replies waits for it to read them (a client that pipelines
 * without reading would otherwise make us queue replies without end) */
#define SESS_OUT_CAP (256 * 1024)

/* SS_STARTTLS: 220 sent, the TLS handshake runs (input is ciphertext);
 * SS_AUTH: in a SASL exchange (input lines are responses, not commands). */
enum sess_state { SS_CONNECTED = 0, SS_READY, SS_MAIL, SS_RCPT, SS_DATA, SS_STARTTLS, SS_AUTH,
                  SS_CLOSING };
static const char *const sess_state_names[] = {"connected", "ready", "mail", "rcpt", "data",
                                               "starttls", "auth", "closing"};

/* What the session waits for (processing of client input is paused).
 * SW_RCPTS: a command other than RCPT arrived while RCPTs are still being
 * answered by their legs (PIPELINING: replies go out in order). */
/* SW_AUTH: a password check in the thread pool, or auth.failure_delay. */
enum sess_wait { SW_NONE = 0, SW_RCPTS, SW_DATA, SW_DOT, SW_AUTH };
static const char *const sess_wait_names[] = {"none", "rcpts", "data", "dot", "auth"};

/* The SASL exchange (SS_AUTH): what the next response line is. */
enum auth_step { AX_NONE = 0, AX_PLAIN, AX_LOGIN_USER, AX_LOGIN_PASS };
static const char *const auth_step_names[] = {"none", "plain", "login-user", "login-password"};

/* A reply that must wait for earlier ones (pipelined RCPTs answered by
 * different legs at different times). Owned by the session's FIFO. */
struct ord {
    struct ord *next;
    int ready;
    size_t len;
    char *data; /* owned; NULL until ready */
};

enum rcpt_state { R_QUEUED = 0, R_SENT, R_DONE };

struct rcpt {
    char addr[MXG_PATH_MAX];
    char domain[MXG_DOMAIN_MAX + 1];
    struct mxg_rcpt_params rp;
    enum rcpt_state st;
    int slot;           /* leg slot index, -1 in queue mode */
    int accepted;
    struct ord *ord;    /* reserved reply slot while R_QUEUED/R_SENT */
};

/* One upstream leg of the transaction (one destination domain). */
enum slot_state { SL_OPENING = 0, SL_READY, SL_RCPT, SL_DATA, SL_STREAM, SL_DOT, SL_DONE,
                  SL_FAILED, SL_RETIRED };
static const char *const slot_state_names[] = {"opening", "ready", "rcpt", "data", "stream",
                                               "dot", "done", "failed", "retired"};

struct leg_slot {
    struct mxg_leg *leg;     /* owned (mxg_leg_close) */
    char domain[MXG_DOMAIN_MAX + 1];
    enum slot_state st;
    int accepted;            /* recipients accepted on this leg */
    int cur;                 /* rcpt in flight (SL_RCPT) */
    int wpaused;             /* the leg asked us to stop writing */
    struct mxg_reply *res;   /* owned: failure (SL_FAILED) or final reply (SL_DONE) */
};

struct txn {
    int active;
    char id[48];
    char from[MXG_PATH_MAX];
    struct mxg_mail_params mp;
    struct rcpt *rcpts;
    int n_rcpts, cap_rcpts, n_accepted;
    int n_inflight;          /* RCPTs queued on or sent to a leg, not yet answered */
    struct leg_slot *legs;   /* owned array */
    int n_legs, cap_legs;
    int n_wait;              /* legs whose DATA / dot reply is outstanding */
    struct mxg_spool_writer *spool; /* owned: the body, when it may have to be stored */
    struct mxg_data_filter df;
    struct mxg_buf out;    /* filtered DATA waiting to be written */
    struct mxg_reply sticky; /* first failure during DATA; sticky.code == 0: none */
    uint64_t t_start;
    /* the DATA phase clocks (uv_now ms): timeouts.data_total, limits.data_min_rate */
    uint64_t data_start;     /* the 354 */
    uint64_t data_last;      /* the last block read */
    uint64_t data_octets;    /* octets the client sent since the 354 */
    uint64_t paused_ms;      /* time the client was not read (upstream back-pressure) */
    uint64_t pause_start;    /* while s->paused: when it began */
};

struct mxg_session {
    struct mxg_server *srv;
    struct mxg_session *prev, *next;
    uv_tcp_t *tcp;
    uv_timer_t timer;
    int handles;
    enum sess_state st;
    enum sess_wait wait;
    char id[24];
    char peer[64];
    struct sockaddr_storage peer_sa;
    char helo[256];           /* safe rendering of the HELO/EHLO name (mxg_helo_classify) */
    int helo_plain;           /* helo is a plain name or address literal, shown as sent */
    int esmtp;
    enum mxg_inbound_req req; /* what this client must do before MAIL */
    int loopback;             /* the client is on a loopback address */
    struct mxg_tls_engine *tls; /* owned: inbound STARTTLS, NULL before it */
    char auth_user[MXG_SASL_FIELD_MAX + 1]; /* "" until AUTH succeeded */
    const char *auth_mech;    /* "PLAIN" / "LOGIN" (the exchange, or the success) */
    enum auth_step ax;
    char ax_user[MXG_SASL_FIELD_MAX + 1]; /* the user name of the exchange */
    /* a password check in flight counts against the throttle (§Hostile peers):
     * the keys it was counted under, released when it finishes ("": none) */
    char ax_addr_key[80];
    char ax_user_key[MXG_SASL_FIELD_MAX + 8];
    int queue_mode;      /* server.queue_listen client: spool first, deliver later */
    struct ord *ord_head, *ord_tail; /* replies waiting for earlier ones */
    int out_lost;        /* a reply could not go out whole and in order (out of memory):
                          * nothing more is written; closed at the next safe point
                          * (sess_read, sess_process) — never half a reply then another */
    struct mxg_buf in;
    int reading;
    int out_full_seen;   /* reading once stopped for SESS_OUT_CAP of unread replies (logged once) */
    int peer_eof;        /* the client closed its sending side (half-close) after the final
                          * dot: answer what it sent, then close */
    int paused;          /* upstream back-pressure */
    int discard_line;    /* skipping the rest of an overlong command line */
    int errors;
    int refused;         /* local replies of 4xx/5xx: something the transaction lines miss */
    int drain_requested;
    unsigned txn_seq;
    unsigned long n_txn_ok, n_txn_fail;
    uint64_t t_connect;
    struct txn txn;
};

static void sess_process(struct mxg_session *s);
static void sess_update_reading(struct mxg_session *s);
static void sess_peer_gone(struct mxg_session *s, const char *why);
static void sess_close(struct mxg_session *s, const char *why);
static void sess_unlink(struct mxg_server *srv, struct mxg_session *s);

/* ------------------------------------------------------------- plumbing */

static void sess_set_state(struct mxg_session *s, enum sess_state st)
{
    if (s->st != st)
        LOG_D("smtp", "%s: %s -> %s", s->id, sess_state_names[s->st], sess_state_names[st]);
    s->st = st;
}

static void sess_set_ax(struct mxg_session *s, enum auth_step a)
{
    if (s->ax != a)
        LOG_D("smtp", "%s: auth %s -> %s", s->id, auth_step_names[s->ax], auth_step_names[a]);
    s->ax = a;
}

static void sess_set_wait(struct mxg_session *s, enum sess_wait w)
{
    if (s->wait != w)
        LOG_D("smtp", "%s: wait %s -> %s", s->id, sess_wait_names[s->wait], sess_wait_names[w]);
    s->wait = w;
    if (w != SW_NONE && s->st != SS_CLOSING) /* the upstream leg's own timeouts apply while
                                                 * we wait; closing, the timer is the linger */
        uv_timer_stop(&s->timer);
}

struct swreq {
    uv_write_t req;
    char data[];
};

/* A queued reply went out: reading resumes once the queue is below SESS_OUT_CAP. */
static void swreq_done(uv_write_t *req, int status)
{
    (void)status;
    uv_stream_t *st = req->handle;
    struct mxg_session *s = st->data;
    free(req);
    if (s && !s->reading && s->st != SS_CLOSING &&
        uv_stream_get_write_queue_size(st) < SESS_OUT_CAP)
        sess_update_reading(s);
}

/* Memory for reply octets that wait (the server's test allocator, else malloc; freed
 * with free()). */
static void *out_alloc(struct mxg_session *s, size_t n)
{
    return s->srv->test_out_alloc ? s->srv->test_out_alloc(n) : malloc(n);
}

/* A reply could not go out whole and in order (out of memory): the client must
 * never see part of it followed by something else, nor a later reply in its place.
 * Nothing more is written (net_write); the socket's receiving side is shut, so
 * reading here sees an end of file soon, and the session closes at the next safe
 * point (sess_read, sess_process): whatever the client sent after it is not
 * acted on. The client gets the replies queued before it, then the connection
 * ends (after part of the lost one, if part went out). */
static void sess_out_lost(struct mxg_session *s, const char *what)
{
    if (s->out_lost)
        return;
    s->out_lost = 1;
    LOG_E("smtp", "%s: reply to %s not sent: %s; closing the connection", s->id, s->peer, what);
    uv_os_fd_t fd;
    if (!uv_is_closing((uv_handle_t *)s->tcp) && uv_fileno((uv_handle_t *)s->tcp, &fd) == 0)
        shutdown(fd, SHUT_RD);
}

/* Octets to the socket as they are: at once when nothing is queued before them (libuv's
 * uv_try_write refuses while earlier writes wait, so the order holds), the rest queued. A
 * uv_write that completes at once still re-arms the socket's epoll entry when its callback
 * runs: one epoll_ctl per reply, which the direct write avoids. */
static void net_write(struct mxg_session *s, const char *p, size_t n)
{
    if ((s->st == SS_CLOSING && s->handles == 0) || s->out_lost)
        return;
    if (uv_is_closing((uv_handle_t *)s->tcp) || !uv_is_writable((uv_stream_t *)s->tcp))
        return; /* closed, or shut down for writing (uv_write would refuse it too) */
    uv_buf_t now = uv_buf_init((char *)p, (unsigned)n);
    int k = uv_try_write((uv_stream_t *)s->tcp, &now, 1);
    if (k == (int)n)
        return;
    if (k > 0) {
        p += k;
        n -= (size_t)k;
    } else if (k != UV_EAGAIN && k != UV_ENOSYS) {
        return; /* the connection is broken: the read side reports it */
    }
    struct swreq *w = out_alloc(s, sizeof *w + n);
    if (!w) {
        sess_out_lost(s, k > 0 ? "out of memory after part of it was written" : "out of memory");
        return;
    }
    memcpy(w->data, p, n);
    uv_buf_t b = uv_buf_init(w->data, (unsigned)n);
    int rc = uv_write(&w->req, (uv_stream_t *)s->tcp, &b, 1, swreq_done);
    if (rc < 0) {
        free(w);
        sess_out_lost(s, uv_strerror(rc));
    }
}

static int tls_up(const struct mxg_session *s)
{
    return s->tls && mxg_tls_handshake_done(s->tls);
}

/* Ciphertext the TLS engine produced, to the socket. */
static void tls_flush(struct mxg_session *s)
{
    char tmp[16384];
    while (s->tls && mxg_tls_out_pending(s->tls) > 0) {
        size_t n = mxg_tls_take_out(s->tls, tmp, sizeof tmp);
        if (n == 0)
            break;
        net_write(s, tmp, n);
    }
}

/* Protocol octets for the client: in plaintext, or through TLS once it is
 * up; never in plaintext while the handshake runs. */
static void sess_write(struct mxg_session *s, const char *p, size_t n)
{
    if (!s->tls) {
        net_write(s, p, n);
        return;
    }
    if (!mxg_tls_handshake_done(s->tls)) {
        LOG_D("smtp", "%s: %zu octets not sent: TLS handshake not complete", s->id, n);
        return;
    }
    if (mxg_tls_write(s->tls, p, n) != MXG_TLS_OK) {
        LOG_I("smtp", "%s: TLS write failed: %s", s->id, mxg_tls_engine_error(s->tls));
        sess_out_lost(s, "TLS write failed");
        return;
    }
    tls_flush(s);
}

/* Write every reply at the head of the FIFO that is ready. */
static void ord_flush(struct mxg_session *s)
{
    while (s->ord_head && s->ord_head->ready) {
        struct ord *o = s->ord_head;
        s->ord_head = o->next;
        if (!s->ord_head)
            s->ord_tail = NULL;
        sess_write(s, o->data, o->len);
        free(o->data);
        free(o);
    }
}

/* A place in the reply FIFO; NULL when out of memory — the replies' order can no
 * longer be kept: the session's output is lost (sess_out_lost), nothing more goes out. */
static struct ord *ord_append(struct mxg_session *s)
{
    struct ord *o = out_alloc(s, sizeof *o);
    if (!o) {
        sess_out_lost(s, "out of memory (reply order)");
        return NULL;
    }
    memset(o, 0, sizeof *o);
    if (s->ord_tail)
        s->ord_tail->next = o;
    else
        s->ord_head = o;
    s->ord_tail = o;
    return o;
}

/* Fill a reserved reply; o == NULL (the reservation failed: the output is lost
 * already) writes nothing. A copy that cannot be made loses the output too. */
static void ord_fill(struct mxg_session *s, struct ord *o, const char *p, size_t n)
{
    if (!o) {
        sess_write(s, p, n); /* dropped by net_write: s->out_lost */
        return;
    }
    o->data = out_alloc(s, n ? n : 1);
    if (o->data)
        memcpy(o->data, p, n);
    else
        sess_out_lost(s, "out of memory (reply copy)");
    o->len = o->data ? n : 0;
    o->ready = 1;
    ord_flush(s);
}

static void ord_free_all(struct mxg_session *s)
{
    while (s->ord_head) {
        struct ord *o = s->ord_head;
        s->ord_head = o->next;
        free(o->data);
        free(o);
    }
    s->ord_tail = NULL;
}

/* Send a reply: at once, or behind replies still being waited for. */
static void sess_send(struct mxg_session *s, const char *p, size_t n)
{
    if (!s->ord_head) {
        sess_write(s, p, n);
        return;
    }
    struct ord *o = ord_append(s);
    ord_fill(s, o, p, n);
}

/* Reply with a locally built message (several lines separated by '\n'). */
static void sess_reply(struct mxg_session *s, int code, const char *enh, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void sess_reply(struct mxg_session *s, int code, const char *enh, const char *fmt, ...)
{
    struct mxg_reply r;
    char text[MXG_REPLY_TEXT_MAX];
    va_list ap;
    va_start(ap, fmt);
    mxg_str_vformat(text, sizeof text, fmt, ap);
    va_end(ap);
    mxg_reply_set(&r, code, enh, "%s", text);
    char out[MXG_REPLY_TEXT_MAX + 1024];
    size_t n = mxg_reply_render(&r, out, sizeof out);
    LOG_D("smtp", "%s -> %03d %s %s", s->id, code, enh, text);
    sess_send(s, out, n);
    if (code >= 500 && code != 554 && code != 552)
        s->errors++;
    if (code >= 400)
        s->refused++;
}

static void sess_relay(struct mxg_session *s, const struct mxg_reply *r)
{
    char out[MXG_REPLY_TEXT_MAX + 1024];
    size_t n = mxg_reply_render(r, out, sizeof out);
    char sum[300];
    mxg_reply_summary(r, sum, sizeof sum);
    LOG_D("smtp", "%s -> %s", s->id, sum);
    sess_send(s, out, n);
}

static uint64_t now_ms(struct mxg_session *s)
{
    return uv_now(s->srv->loop);
}

/* The DATA phase's clocks (docs/ARCHITECTURE.md §Hostile peers): DATA_OK, or which limit is
 * exceeded now; *left gets the milliseconds until the first one would be. A
 * client trickling its message is stopped by timeouts.data_total whatever
 * it sends, and by limits.data_min_rate (an average from the 354, checked
 * after limits.data_rate_grace: a short message is never hit; time the
 * client was not read because an upstream lagged does not count). */
enum data_clock { DATA_OK = 0, DATA_IDLE, DATA_TOTAL, DATA_RATE };
static enum data_clock data_clock(struct mxg_session *s, uint64_t *left)
{
    const struct mxg_config *cfg = s->srv->cfg;
    const struct txn *t = &s->txn;
    uint64_t now = now_ms(s), el = now - t->data_start, idle = now - t->data_last;
    if (el >= cfg->t_data_total)
        return DATA_TOTAL;
    if (idle >= cfg->t_data)
        return DATA_IDLE;
    *left = cfg->t_data_total - el;
    if (cfg->t_data - idle < *left)
        *left = cfg->t_data - idle;
    if (cfg->data_min_rate <= 0)
        return DATA_OK;
    uint64_t paused = t->paused_ms + (s->paused ? now - t->pause_start : 0);
    uint64_t rel = el > paused ? el - paused : 0; /* time the client could send */
    uint64_t due = cfg->data_rate_grace_ms + t->data_octets * 1000 / (uint64_t)cfg->data_min_rate;
    if (rel > due)
        return DATA_RATE;
    if (due - rel + 1 < *left)
        *left = due - rel + 1;
    return DATA_OK;
}

static void sess_arm_timer(struct mxg_session *s);

static void on_timeout(uv_timer_t *t)
{
    struct mxg_session *s = t->data;
    if (s->st == SS_DATA && s->wait == SW_NONE) {
        const struct mxg_config *cfg = s->srv->cfg;
        uint64_t left = 0, el = now_ms(s) - s->txn.data_start;
        enum data_clock c = data_clock(s, &left);
        if (c == DATA_OK) { /* armed before the last block was counted */
            sess_arm_timer(s);
            return;
        }
        if (c == DATA_TOTAL)
            LOG_W("smtp", "%s: DATA from %s not finished within timeouts.data_total (%llus, "
                          "%llu octets): aborted, nothing delivered", s->id, s->peer,
                  (unsigned long long)cfg->t_data_total / 1000,
                  (unsigned long long)s->txn.data_octets);
        else if (c == DATA_RATE)
            LOG_W("smtp", "%s: DATA from %s too slow: %llu octets in %.1fs, below "
                          "limits.data_min_rate (%d octets/s): aborted, nothing delivered",
                  s->id, s->peer, (unsigned long long)s->txn.data_octets, (double)el / 1000.0,
                  cfg->data_min_rate);
        else
            LOG_I("smtp", "%s: timeout in state %s from %s", s->id, sess_state_names[s->st],
                  s->peer);
        /* sess_close() closes every leg before the final dot and drops the spool entry */
        sess_reply(s, 421, "4.4.2", "%s Error: %s", s->srv->hostname,
                   c == DATA_IDLE ? "timeout exceeded" : c == DATA_TOTAL ? "DATA took too long"
                                                                          : "DATA too slow");
        sess_close(s, c == DATA_IDLE ? "timeout" : c == DATA_TOTAL ? "DATA deadline" : "DATA rate");
        return;
    }
    LOG_I("smtp", "%s: timeout in state %s from %s", s->id, sess_state_names[s->st], s->peer);
    sess_reply(s, 421, "4.4.2", "%s Error: timeout exceeded", s->srv->hostname);
    sess_close(s, "timeout");
}

static void sess_arm_timer(struct mxg_session *s)
{
    if (s->st == SS_CLOSING)
        return;
    if (s->wait != SW_NONE || s->txn.n_inflight > 0) { /* the legs' own timeouts apply */
        uv_timer_stop(&s->timer);
        return;
    }
    uint64_t t = s->srv->cfg->t_idle; /* also TLS, AUTH */
    if (s->st == SS_DATA && data_clock(s, &t) != DATA_OK)
        t = 1; /* a limit is exceeded: on_timeout says which */
    /* never 0: libuv runs a timer re-armed with 0 from its own callback
     * again in the same pass, without updating the loop's time */
    uv_timer_start(&s->timer, on_timeout, t ? t : 1, 0);
}

/* The client is (not) read because an upstream leg lags: the DATA rate
 * does not count that time. */
static void sess_set_paused(struct mxg_session *s, int on)
{
    if (on && !s->paused)
        s->txn.pause_start = now_ms(s);
    else if (!on && s->paused)
        s->txn.paused_ms += now_ms(s) - s->txn.pause_start;
    s->paused = on;
}

/* --------------------------------------------------------- transactions */

static void leg_on_reply(void *arg, struct mxg_leg *leg, const struct mxg_reply *r);
static void leg_on_drain(void *arg, struct mxg_leg *leg);
static const struct mxg_leg_cbs leg_cbs = {leg_on_reply, leg_on_drain};
static void resume(struct mxg_session *s);

static int spool_ok(const struct mxg_session *s)
{
    return s->srv->spool != NULL;
}

/* Destination domains one transaction may hold (docs/ARCHITECTURE.md §Legs): one
 * without a spool to catch a partial failure, or when the operator keeps
 * the 452 behaviour (server.multi_domain = defer). */
static int max_legs(const struct mxg_session *s)
{
    const struct mxg_config *cfg = s->srv->cfg;
    if (!spool_ok(s) || cfg->multi_domain == MXG_MULTI_DEFER)
        return 1;
    return cfg->max_legs;
}

static void slot_set_state(struct mxg_session *s, struct leg_slot *sl, enum slot_state st)
{
    if (sl->st != st)
        LOG_D("smtp", "%s: leg %s: %s -> %s", s->txn.id, sl->domain, slot_state_names[sl->st],
              slot_state_names[st]);
    sl->st = st;
}

static void slot_set_res(struct leg_slot *sl, const struct mxg_reply *r)
{
    if (!sl->res)
        sl->res = malloc(sizeof *sl->res);
    if (sl->res)
        *sl->res = *r;
}

/* An empty transaction: all zero but the sticky reply's 4 KB of text, which is
 * read only behind sticky.code (mxg_reply_clear: code 0, text ""). */
static void txn_zero(struct txn *t)
{
    memset(t, 0, offsetof(struct txn, sticky));
    mxg_reply_clear(&t->sticky);
    MXG_ZERO_AFTER(t, struct txn, sticky);
}

static void txn_reset(struct mxg_session *s)
{
    struct txn *t = &s->txn;
    for (int i = 0; i < t->n_legs; i++) {
        if (t->legs[i].leg)
            mxg_leg_close(t->legs[i].leg); /* without the dot: nothing delivered there */
        free(t->legs[i].res);
    }
    free(t->legs);
    if (t->spool)
        mxg_spool_abort(t->spool);
    free(t->rcpts);
    mxg_buf_free(&t->out);
    txn_zero(t);
    s->paused = 0;
    if (s->st == SS_MAIL || s->st == SS_RCPT || s->st == SS_DATA)
        sess_set_state(s, SS_READY);
}

/* " client_tls=VERSION auth=USER" for what the client used (STARTTLS, AUTH), else "". */
static void client_desc(const struct mxg_session *s, char *out, size_t cap)
{
    out[0] = 0;
    if (tls_up(s))
        snprintf(out, cap, " client_tls=%s", mxg_tls_version(s->tls));
    if (s->auth_user[0])
        snprintf(out + strlen(out), cap - strlen(out), " auth=%s",
                 mxg_show(s->auth_user, strlen(s->auth_user)).s);
}

static void log_leg(struct mxg_session *s, const struct leg_slot *sl, const struct mxg_reply *r)
{
    struct txn *t = &s->txn;
    char sum[300];
    mxg_reply_summary(r, sum, sizeof sum);
    struct mxg_leg_info li = {0};
    if (sl && sl->leg)
        mxg_leg_get_info(sl->leg, &li);
    double dur = (double)(now_ms(s) - t->t_start) / 1000.0;
    char in[MXG_SASL_FIELD_MAX + 200];
    client_desc(s, in, sizeof in);
    LOG_I("smtp",
          "%s: client=%s from=<%s> rcpts=%d/%d domain=%s mx=%s[%s] tls=%s%s%s peer=%s "
          "size=%llu reply=\"%s\" duration=%.3fs%s",
          t->id, s->peer, t->from, sl ? sl->accepted : t->n_accepted, t->n_rcpts,
          sl ? sl->domain : (s->queue_mode ? "(queue)" : "-"),
          li.mx_host && li.mx_host[0] ? li.mx_host : "-", li.mx_addr ? li.mx_addr : "",
          li.tls_version ? li.tls_version : "plaintext", li.tls_version ? " " : "",
          li.tls_version ? li.tls_cipher : "", li.verified ? li.verified : "-",
          (unsigned long long)t->df.size, sum, dur, in);
}

/* One log line per leg that carried recipients (the same line as a
 * one-domain transaction has always had), then the client's outcome. */
static void txn_log(struct mxg_session *s, const struct mxg_reply *final)
{
    struct txn *t = &s->txn;
    int n = 0;
    for (int i = 0; i < t->n_legs; i++) {
        struct leg_slot *sl = &t->legs[i];
        if (sl->accepted == 0)
            continue;
        n++;
        log_leg(s, sl, sl->res && t->n_legs > 1 ? sl->res : final);
    }
    if (n == 0)
        log_leg(s, NULL, final);
    else if (n > 1) {
        char sum[300];
        mxg_reply_summary(final, sum, sizeof sum);
        LOG_I("smtp", "%s: %d domains, client got \"%s\"", t->id, n, sum);
    }
    if (final->code / 100 == 2)
        s->n_txn_ok++;
    else
        s->n_txn_fail++;
    mxg_metrics_inc(s->srv->upenv.metrics, MXG_M_TRANSACTIONS,
                    final->code / 100 == 2 ? (s->queue_mode ? "queued" : "delivered")
                    : final->code / 100 == 4 ? "temp_failed" : "perm_failed");
    mxg_metrics_observe_ms(s->srv->upenv.metrics, MXG_M_TXN_DURATION, NULL, now_ms(s) - t->t_start);
}

/* The end of a transaction: log, reply, forget. */
static void txn_end(struct mxg_session *s, const struct mxg_reply *r)
{
    txn_log(s, r);
    sess_relay(s, r);
    txn_reset(s);
}

/* The Received: header's date (RFC 5322 date-time, local time) of the
 * current second: localtime_r and strftime run once a second, not once per
 * message. Kept per thread; written into date[0..64). */
static void received_date(char date[64])
{
    static _Thread_local time_t last = (time_t)-1;
    static _Thread_local char text[64];
    time_t now = time(NULL);
    if (now != last) {
        struct tm tm;
        localtime_r(&now, &tm);
        if (strftime(text, sizeof text, "%a, %d %b %Y %H:%M:%S %z", &tm) == 0)
            text[0] = '\0';
        last = now;
    }
    memcpy(date, text, sizeof text);
}

/* The trace header (RFC 5321 §4.4), appended to t->out piece by piece (no printf). */
static void write_received(struct mxg_session *s)
{
    struct txn *t = &s->txn;
    struct mxg_buf *o = &t->out;
    char date[64];
    received_date(date);
    /* RFC 3848 (ESMTPS, ESMTPA, ESMTPSA) and RFC 6531 (UTF8SMTP...) */
    const char *with = t->mp.smtputf8 ? "UTF8SMTP" : s->esmtp ? "ESMTP" : "SMTP";
    const char *v6 = strchr(s->peer, ':') != NULL ? "IPv6:" : "";
    if (s->helo_plain) {
        mxg_buf_str(o, "Received: from ");
        mxg_buf_str(o, s->helo);
        mxg_buf_str(o, " ([");
        mxg_buf_str(o, v6);
        mxg_buf_str(o, s->peer);
        mxg_buf_str(o, "])");
    } else { /* an odd HELO name only in the comment, sanitised (as Postfix's "helo=") */
        mxg_buf_str(o, "Received: from unknown ([");
        mxg_buf_str(o, v6);
        mxg_buf_str(o, s->peer);
        mxg_buf_str(o, "] helo=");
        mxg_buf_str(o, s->helo);
        mxg_buf_str(o, ")");
    }
    if (tls_up(s)) {
        mxg_buf_str(o, "\r\n\t(using ");
        mxg_buf_str(o, mxg_tls_version(s->tls));
        mxg_buf_str(o, " with cipher ");
        mxg_buf_str(o, mxg_tls_cipher(s->tls));
        mxg_buf_str(o, ")");
    }
    mxg_buf_str(o, "\r\n\tby ");
    mxg_buf_str(o, s->srv->hostname);
    mxg_buf_str(o, " (mxguard) with ");
    mxg_buf_str(o, with);
    mxg_buf_str(o, s->esmtp && tls_up(s) ? "S" : "");
    mxg_buf_str(o, s->esmtp && s->auth_user[0] ? "A" : "");
    mxg_buf_str(o, " id ");
    mxg_buf_str(o, t->id);
    if (t->n_accepted == 1) {
        for (int i = 0; i < t->n_rcpts; i++)
            if (t->rcpts[i].accepted) {
                mxg_buf_str(o, "\r\n\tfor <");
                mxg_buf_str(o, t->rcpts[i].addr);
                mxg_buf_str(o, ">");
            }
    }
    mxg_buf_str(o, ";\r\n\t");
    mxg_buf_str(o, date);
    mxg_buf_str(o, "\r\n");
}

static void slot_fail(struct mxg_session *s, struct leg_slot *sl, const struct mxg_reply *r);

/* Send what the filter produced to the spool and every streaming leg;
 * pause the client while any leg lags. */
static void data_flush(struct mxg_session *s)
{
    struct txn *t = &s->txn;
    if (mxg_buf_avail(&t->out) == 0)
        return;
    if (t->sticky.code || mxg_data_filter_failed(&t->df)) {
        mxg_buf_reset(&t->out);
        return;
    }
    const char *p = mxg_buf_head(&t->out);
    size_t n = mxg_buf_avail(&t->out);
    if (t->spool) {
        int rc = mxg_spool_write(t->spool, p, n);
        if (rc < 0) {
            LOG_E("smtp", "%s: spool write failed: %s; the transaction will be refused", t->id,
                  strerror(-rc));
            mxg_reply_set(&t->sticky, 452, "4.3.1", "Cannot store the message: %s",
                          strerror(-rc));
            mxg_buf_reset(&t->out);
            return;
        }
    }
    int eight = mxg_body_8bit(p, n);
    for (int i = 0; i < t->n_legs; i++) {
        struct leg_slot *sl = &t->legs[i];
        if (sl->st != SL_STREAM)
            continue;
        struct mxg_reply r8;
        if (mxg_leg_body_check(sl->leg, eight, &r8) < 0) {
            /* no 8-bit octet may reach an MX without 8BITMIME: the leg gets no more
             * data (and never the dot); its recipients fail with 554 5.6.3 */
            LOG_I("smtp", "%s: %s; that leg gets no more of the message", t->id, r8.text);
            slot_fail(s, sl, &r8);
            continue;
        }
        if (mxg_data_filter_done(&t->df))
            mxg_leg_hold(sl->leg); /* the dot follows at once (data_end): one write with it */
        int rc = mxg_leg_write(sl->leg, p, n);
        if (rc < 0) {
            struct mxg_reply r = *mxg_leg_error(sl->leg);
            if (r.code == 0)
                mxg_reply_set(&r, 451, "4.4.2", "Upstream connection lost during DATA");
            slot_fail(s, sl, &r);
        } else if (rc == 1) {
            sl->wpaused = 1;
            sess_set_paused(s, 1);
        }
    }
    mxg_buf_reset(&t->out);
    if (s->paused)
        sess_update_reading(s);
}

/* The reply for a transaction none of whose legs delivered: a temporary
 * failure if any was temporary (docs/ARCHITECTURE.md §Legs), else the first permanent one. */
static const struct mxg_reply *worst_reply(struct mxg_session *s)
{
    struct txn *t = &s->txn;
    const struct mxg_reply *perm = NULL;
    for (int i = 0; i < t->n_legs; i++) {
        const struct leg_slot *sl = &t->legs[i];
        if (sl->accepted == 0 || !sl->res || sl->res->code / 100 == 2)
            continue;
        if (sl->res->code / 100 == 4)
            return sl->res;
        if (!perm)
            perm = sl->res;
    }
    return perm;
}

static void fill_spool_env(struct mxg_session *s, struct mxg_spool_env *env,
                           struct mxg_spool_rcpt *rc)
{
    struct txn *t = &s->txn;
    const struct mxg_config *cfg = s->srv->cfg;
    memset(env, 0, sizeof *env);
    env->kind = MXG_SPOOL_MESSAGE;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    env->created_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    mxg_str_copy(env->from, sizeof env->from, t->from);
    env->mp = t->mp;
    mxg_str_copy(env->client, sizeof env->client, s->peer);
    mxg_str_copy(env->helo, sizeof env->helo, s->helo);
    env->rcpts = rc;
    int n = 0;
    for (int i = 0; i < t->n_rcpts; i++) {
        const struct rcpt *r = &t->rcpts[i];
        if (!r->accepted)
            continue;
        struct mxg_spool_rcpt *o = &rc[n++];
        memset(o, 0, sizeof *o);
        mxg_str_copy(o->addr, sizeof o->addr, r->addr);
        mxg_str_copy(o->domain, sizeof o->domain, r->domain);
        o->rp = r->rp;
        o->state = MXG_RCPT_PENDING;
        if (r->slot < 0)
            continue; /* queue mode: nothing tried yet */
        const struct leg_slot *sl = &t->legs[r->slot];
        if (sl->res) {
            o->last_code = sl->res->code;
            mxg_reply_summary(sl->res, o->last_reply, sizeof o->last_reply);
            if (sl->res->code / 100 == 2)
                o->state = MXG_RCPT_DELIVERED;
            else if (sl->res->code / 100 == 5)
                o->state = MXG_RCPT_FAILED;
        }
        struct mxg_leg_info li = {0};
        if (sl->leg)
            mxg_leg_get_info(sl->leg, &li);
        if (li.mx_host && li.mx_host[0])
            snprintf(o->last_mx, sizeof o->last_mx, "%s[%s]", li.mx_host, li.mx_addr);
    }
    env->n_rcpts = n;
    if (!s->queue_mode) { /* legs tried once already: the next attempt after the backoff */
        env->attempts = 1;
        env->next_attempt_ms =
            env->created_ms + (int64_t)mxg_spool_backoff_ms(1, cfg->q_backoff_ms, cfg->q_backoff_max_ms);
    } else {
        env->next_attempt_ms = env->created_ms;
    }
}

/* Store the message with its recipients' states (file and directory
 * fsync'd), generate DSNs for permanent failures. Returns 0, or -1 with *r
 * set to the reply the client must get instead of 250. */
static int txn_store(struct mxg_session *s, char *id_out, size_t id_cap, struct mxg_reply *r)
{
    struct txn *t = &s->txn;
    struct mxg_spool_rcpt *rc = calloc((size_t)(t->n_accepted > 0 ? t->n_accepted : 1), sizeof *rc);
    char err[512] = "";
    if (!rc) {
        mxg_spool_abort(t->spool);
        t->spool = NULL;
        mxg_reply_set(r, 452, "4.3.1", "Out of memory");
        return -1;
    }
    struct mxg_spool_env env;
    fill_spool_env(s, &env, rc);
    struct mxg_spool_writer *w = t->spool;
    t->spool = NULL; /* commit frees it whatever happens */
    int e = mxg_spool_commit(w, &env, err, sizeof err);
    if (e < 0) {
        LOG_E("smtp", "%s: cannot store the message: %s", t->id, err);
        mxg_reply_set(r, 452, "4.3.1", "Cannot store the message: %s", strerror(-e));
        free(rc);
        return -1;
    }
    snprintf(id_out, id_cap, "%s", env.id);
    char dsn[MXG_SPOOL_ID_MAX] = "";
    e = mxg_spool_settle(s->srv->spool, &env, s->srv->hostname, env.created_ms, dsn, err,
                         sizeof err);
    if (e < 0) /* the entry is stored; the runner settles it again later */
        LOG_E("smtp", "%s: spool entry %s: %s", t->id, env.id, err);
    if (dsn[0])
        LOG_I("smtp", "%s: bounce %s queued for <%s>", t->id, dsn, t->from);
    env.rcpts = NULL; /* rc is ours */
    free(rc);
    if (s->srv->spool_kick)
        s->srv->spool_kick(s->srv->spool_kick_arg);
    return 0;
}

/* RFC 3461 §5.2.2: recipients delivered (the client gets 2xx) to an MX
 * without DSN, whose NOTIFY=SUCCESS was therefore dropped, get a "relayed"
 * DSN, stored in the spool like a bounce (no content returned: the live
 * path keeps no copy of the message). */
static void txn_relayed_dsn(struct mxg_session *s)
{
    struct txn *t = &s->txn;
    int n = 0;
    for (int i = 0; i < t->n_rcpts; i++)
        n += t->rcpts[i].accepted;
    struct mxg_spool_rcpt *rc = calloc((size_t)(n > 0 ? n : 1), sizeof *rc);
    unsigned char *which = calloc((size_t)(n > 0 ? n : 1), 1);
    struct mxg_spool_env env;
    int any = 0;
    if (rc && which) {
        fill_spool_env(s, &env, rc);
        for (int i = 0, k = 0; i < t->n_rcpts; i++) {
            const struct rcpt *r = &t->rcpts[i];
            if (!r->accepted)
                continue;
            struct mxg_leg_info li = {0};
            if (r->slot >= 0 && t->legs[r->slot].leg)
                mxg_leg_get_info(t->legs[r->slot].leg, &li);
            which[k] = li.no_dsn && rc[k].state == MXG_RCPT_DELIVERED &&
                       mxg_spool_relayed_due(&env, &rc[k]);
            any |= which[k];
            k++;
        }
    }
    char id[MXG_SPOOL_ID_MAX] = "", err[512] = "";
    if (!any) {
        /* nothing owed */
    } else if (!spool_ok(s)) {
        LOG_W("smtp", "%s: NOTIFY=SUCCESS to an MX without DSN, but no spool: no \"relayed\" "
                      "DSN for <%s>", t->id, t->from);
    } else if (mxg_spool_relayed_dsn(s->srv->spool, &env, which, s->srv->hostname,
                                     env.created_ms, id, err, sizeof err) < 0) {
        LOG_E("smtp", "%s: cannot store the \"relayed\" DSN for <%s>: %s", t->id, t->from, err);
    } else if (id[0]) {
        LOG_I("smtp", "%s: \"relayed\" DSN %s queued for <%s> (NOTIFY=SUCCESS, the MX does not "
                      "support DSN)", t->id, id, t->from);
        if (s->srv->spool_kick)
            s->srv->spool_kick(s->srv->spool_kick_arg);
    }
    free(which);
    free(rc);
}

/* All legs have answered the final dot (or failed before it). */
static void txn_finish(struct mxg_session *s)
{
    struct txn *t = &s->txn;
    struct mxg_reply r;
    char id[MXG_SPOOL_ID_MAX] = "";
    if (s->queue_mode) {
        if (txn_store(s, id, sizeof id, &r) == 0) {
            mxg_reply_set(&r, 250, "2.0.0", "Ok: queued as %s", id);
            LOG_I("smtp", "%s: queued as %s", t->id, id);
        }
        txn_end(s, &r);
        return;
    }
    int n_ok = 0, n_fail = 0, n_legs = 0;
    const struct leg_slot *only = NULL;
    for (int i = 0; i < t->n_legs; i++) {
        const struct leg_slot *sl = &t->legs[i];
        if (sl->accepted == 0)
            continue;
        n_legs++;
        only = sl;
        if (sl->res && sl->res->code / 100 == 2)
            n_ok++;
        else
            n_fail++;
    }
    if (n_legs == 1 && only->res) { /* the pure proxy: the upstream's own reply */
        if (t->spool)
            mxg_spool_abort(t->spool), t->spool = NULL;
        if (only->res->code / 100 == 2)
            txn_relayed_dsn(s);
        txn_end(s, only->res);
        return;
    }
    if (n_fail == 0) {
        mxg_reply_set(&r, 250, "2.0.0", "Ok: delivered to %d domains", n_ok);
    } else if (n_ok == 0) {
        const struct mxg_reply *w = worst_reply(s);
        if (w)
            r = *w;
        else
            mxg_reply_set(&r, 451, "4.3.0", "Delivery failed");
    } else if (txn_store(s, id, sizeof id, &r) == 0) {
        mxg_reply_set(&r, 250, "2.0.0",
                      "Ok: delivered to %d of %d domains; the rest is queued as %s", n_ok,
                      n_legs, id);
        LOG_I("smtp", "%s: %d of %d domains failed; stored as %s for retries/bounces", t->id,
              n_fail, n_legs, id);
    } else {
        LOG_E("smtp", "%s: partly delivered (%d of %d domains) but the rest could not be "
                      "stored: the client will retry and those domains may get a second copy",
              t->id, n_ok, n_legs);
    }
    if (r.code / 100 == 2)
        txn_relayed_dsn(s);
    txn_end(s, &r);
}

/* The client sent <CRLF>.<CRLF>: decide, then forward the dot or refuse. */
static void data_end(struct mxg_session *s)
{
    struct txn *t = &s->txn;
    struct mxg_data_filter *df = &t->df;
    struct mxg_reply r = {0};
    LOG_D("smtp", "%s: end of data, %llu octets, longest line %zu, %u bare LF, %u bare CR",
          s->id, (unsigned long long)df->size, df->longest_line, df->bare_eol, df->bare_cr);
    if (df->bad_cr) {
        LOG_W("smtp", "%s: message from %s refused: %u bare CR (a CR not followed by LF; "
                      "limits.bare_cr = \"reject\")", t->id, s->peer, df->bare_cr);
        mxg_reply_set(&r, 554, "5.6.0", "Message contains a bare CR (CR not followed by LF)");
    } else if (df->too_many_received)
        mxg_reply_set(&r, 554, "5.4.6", "Too many Received: headers (%d): mail loop?",
                      df->received);
    else if (df->too_big)
        mxg_reply_set(&r, 552, "5.3.4", "Message size exceeds fixed limit of %llu octets",
                      (unsigned long long)s->srv->cfg->message_size);
    else if (df->too_long)
        mxg_reply_set(&r, 554, "5.6.0", "Message has a text line longer than %d octets",
                      s->srv->cfg->data_line_max);
    else if (t->sticky.code)
        r = t->sticky;
    if (r.code) {
        txn_end(s, &r); /* closes every leg without the final dot: nothing delivered */
        return;
    }
    t->n_wait = 0;
    for (int i = 0; i < t->n_legs; i++) {
        struct leg_slot *sl = &t->legs[i];
        if (sl->st != SL_STREAM)
            continue;
        if (mxg_leg_body_check(sl->leg, df->eight_bit, &r) < 0) {
            slot_fail(s, sl, &r);
        } else if (mxg_leg_end_data(sl->leg) < 0) {
            slot_fail(s, sl, mxg_leg_error(sl->leg));
        } else {
            slot_set_state(s, sl, SL_DOT);
            t->n_wait++;
        }
    }
    if (t->n_wait == 0) {
        txn_finish(s);
        return;
    }
    sess_set_wait(s, SW_DOT);
}

static void data_input(struct mxg_session *s)
{
    struct txn *t = &s->txn;
    while (mxg_buf_avail(&s->in) > 0 && !mxg_data_filter_done(&t->df)) {
        long used = mxg_data_filter_run(&t->df, mxg_buf_head(&s->in), mxg_buf_avail(&s->in),
                                        &t->out);
        if (used < 0) {
            mxg_reply_set(&t->sticky, 452, "4.3.1", "Out of memory");
            mxg_buf_reset(&t->out);
            mxg_buf_reset(&s->in);
            return;
        }
        mxg_buf_consume(&s->in, (size_t)used);
        t->data_octets += (uint64_t)used;
        data_flush(s);
    }
    if (mxg_data_filter_done(&t->df))
        data_end(s);
}

/* Every leg has answered DATA: stream to those that said 354 (and to the
 * spool when a partial failure would have to be kept), or fail. */
static void data_begin(struct mxg_session *s)
{
    struct txn *t = &s->txn;
    sess_set_wait(s, SW_NONE);
    int n_stream = 0, n_legs = 0;
    for (int i = 0; i < t->n_legs; i++) {
        if (t->legs[i].accepted > 0)
            n_legs++;
        if (t->legs[i].st == SL_STREAM)
            n_stream++;
    }
    if (!s->queue_mode && n_stream == 0) {
        const struct mxg_reply *w = worst_reply(s);
        struct mxg_reply r;
        if (w)
            r = *w;
        else
            mxg_reply_set(&r, 451, "4.3.0", "Delivery failed");
        txn_end(s, &r);
        return;
    }
    if (s->queue_mode || n_legs > 1) {
        char err[512];
        int e = spool_ok(s) ? mxg_spool_writer_new(s->srv->spool, &t->spool, err, sizeof err)
                            : -ENOENT;
        if (e < 0) {
            struct mxg_reply r;
            LOG_E("smtp", "%s: cannot spool: %s", t->id, spool_ok(s) ? err : "no spool");
            mxg_reply_set(&r, 452, "4.3.1", "Cannot store the message now, try again later");
            txn_end(s, &r);
            return;
        }
    }
    sess_set_state(s, SS_DATA);
    t->data_start = t->data_last = now_ms(s);
    t->data_octets = t->paused_ms = 0;
    mxg_data_filter_init(&t->df, s->srv->cfg->message_size, (size_t)s->srv->cfg->data_line_max,
                         s->srv->cfg->max_received,
                         s->srv->cfg->bare_cr == MXG_BARE_CR_SPACE ? MXG_DF_CR_SPACE
                                                                   : MXG_DF_CR_REJECT);
    write_received(s); /* stays in t->out: it goes out with the first message bytes */
    sess_reply(s, 354, "", "End data with <CR><LF>.<CR><LF>");
    sess_set_wait(s, SW_NONE);
    data_input(s);
    if (s->wait == SW_NONE && s->st == SS_DATA) {
        sess_arm_timer(s);
        sess_update_reading(s);
    }
}

/* ---------------------------------------------------------- leg events */

static void rcpt_done(struct mxg_session *s, int idx, const struct mxg_reply *r)
{
    struct txn *t = &s->txn;
    struct rcpt *rc = &t->rcpts[idx];
    if (rc->st == R_DONE)
        return;
    rc->st = R_DONE;
    char out[MXG_REPLY_TEXT_MAX + 1024];
    size_t n = mxg_reply_render(r, out, sizeof out);
    char sum[300];
    mxg_reply_summary(r, sum, sizeof sum);
    LOG_D("smtp", "%s -> %s (RCPT <%s>)", s->id, sum, rc->addr);
    struct ord *o = rc->ord;
    rc->ord = NULL;
    ord_fill(s, o, out, n);
    if (r->code / 100 == 2) {
        rc->accepted = 1;
        t->n_accepted++;
        if (rc->slot >= 0)
            t->legs[rc->slot].accepted++;
        if (s->st == SS_MAIL)
            sess_set_state(s, SS_RCPT);
    } /* an upstream's refusal is not a client error: s->errors stays */
    t->n_inflight--;
}

/* The leg is unusable: every recipient still waiting on it gets r. */
static void slot_fail(struct mxg_session *s, struct leg_slot *sl, const struct mxg_reply *r)
{
    struct txn *t = &s->txn;
    struct mxg_reply copy = *r;
    if (copy.code == 0)
        mxg_reply_set(&copy, 451, "4.4.2", "Upstream connection lost");
    else if (copy.code / 100 == 2) /* a failed step never counts as delivered */
        mxg_reply_set(&copy, 451, "4.5.0", "Upstream transaction failed (protocol violation)");
    else
        mxg_reply_judge(r, slot_state_names[sl->st], &copy);
    slot_set_res(sl, &copy);
    slot_set_state(s, sl, SL_FAILED);
    if (sl->wpaused) { /* it will never drain: the others may be waited for */
        sl->wpaused = 0;
        leg_on_drain(s, NULL);
    }
    int si = (int)(sl - t->legs);
    for (int i = 0; i < t->n_rcpts; i++)
        if (t->rcpts[i].slot == si && t->rcpts[i].st != R_DONE)
            rcpt_done(s, i, &copy);
}

/* Send the next queued RCPT on a ready leg. */
static void slot_pump(struct mxg_session *s, struct leg_slot *sl)
{
    struct txn *t = &s->txn;
    if (sl->st != SL_READY)
        return;
    int si = (int)(sl - t->legs);
    for (int i = 0; i < t->n_rcpts; i++) {
        struct rcpt *rc = &t->rcpts[i];
        if (rc->slot != si || rc->st != R_QUEUED)
            continue;
        if (mxg_leg_rcpt(sl->leg, rc->addr, &rc->rp) < 0) {
            slot_fail(s, sl, mxg_leg_error(sl->leg));
            return;
        }
        rc->st = R_SENT;
        sl->cur = i;
        slot_set_state(s, sl, SL_RCPT);
        return;
    }
}

static void after_rcpt_event(struct mxg_session *s)
{
    if (s->txn.n_inflight == 0 && s->wait == SW_RCPTS)
        resume(s);
    else if (s->txn.n_inflight == 0 && s->wait == SW_NONE)
        sess_arm_timer(s);
}

static void resume(struct mxg_session *s)
{
    sess_set_wait(s, SW_NONE);
    if (s->drain_requested && !s->txn.active && mxg_buf_avail(&s->in) == 0) {
        mxg_session_drain(s);
        return;
    }
    sess_arm_timer(s);
    sess_process(s);
    sess_update_reading(s);
    /* after a half-close: everything the client sent is answered once nothing is
     * awaited; closed here, at the end of a callback, never inside other work */
    if (s->peer_eof && s->st != SS_CLOSING && s->wait == SW_NONE)
        sess_peer_gone(s, "end of file");
}

static struct leg_slot *slot_of(struct mxg_session *s, struct mxg_leg *leg)
{
    for (int i = 0; i < s->txn.n_legs; i++)
        if (s->txn.legs[i].leg == leg)
            return &s->txn.legs[i];
    return NULL;
}

static void leg_on_reply(void *arg, struct mxg_leg *leg, const struct mxg_reply *r)
{
    struct mxg_session *s = arg;
    struct txn *t = &s->txn;
    struct leg_slot *sl = slot_of(s, leg);
    if (!sl)
        return;
    switch (sl->st) {
    case SL_OPENING:
        if (r->code / 100 == 2) {
            slot_set_state(s, sl, SL_READY);
            slot_pump(s, sl);
        } else {
            slot_fail(s, sl, r); /* could not be opened under its policy: its RCPTs fail */
        }
        after_rcpt_event(s);
        return;
    case SL_RCPT:
        slot_set_state(s, sl, SL_READY);
        rcpt_done(s, sl->cur, r);
        slot_pump(s, sl);
        after_rcpt_event(s);
        return;
    case SL_DATA:
        if (r->code == 354)
            slot_set_state(s, sl, SL_STREAM);
        else
            slot_fail(s, sl, r);
        if (--t->n_wait == 0 && s->wait == SW_DATA) {
            data_begin(s);
            if (s->wait == SW_NONE && s->st != SS_DATA) /* refused, or already finished */
                resume(s);
        }
        return;
    case SL_DOT: {
        struct mxg_reply j; /* only 2xx is delivered; a 3xx is a failure */
        mxg_reply_judge(r, "the final dot", &j);
        slot_set_res(sl, &j);
        slot_set_state(s, sl, SL_DONE);
        if (--t->n_wait == 0 && s->wait == SW_DOT) {
            txn_finish(s);
            resume(s);
        }
        return;
    }
    default:
        return;
    }
}

/* leg NULL: re-check after a paused leg failed. */
static void leg_on_drain(void *arg, struct mxg_leg *leg)
{
    struct mxg_session *s = arg;
    struct leg_slot *sl = leg ? slot_of(s, leg) : NULL;
    if (sl)
        sl->wpaused = 0;
    if (!s->paused)
        return;
    for (int i = 0; i < s->txn.n_legs; i++)
        if (s->txn.legs[i].wpaused && s->txn.legs[i].st == SL_STREAM)
            return;
    sess_set_paused(s, 0);
    sess_update_reading(s);
}

/* ------------------------------------------------------------- commands */

struct cmd_ctx {
    struct mxg_cmd cmd;
    struct mxg_path path;
};

/* AUTH may run now: over TLS, or in plaintext from loopback when allowed. */
static int auth_allowed(const struct mxg_session *s)
{
    return tls_up(s) || (s->loopback && s->srv->cfg->auth_plaintext_loopback);
}

static int auth_offered(const struct mxg_session *s)
{
    return s->srv->auth_db != NULL && auth_allowed(s);
}

static void helo_proceed(struct mxg_session *s, struct cmd_ctx *c)
{
    const struct mxg_config *cfg = s->srv->cfg;
    txn_reset(s);
    s->helo_plain = mxg_helo_classify(c->cmd.arg, c->cmd.arg_len, s->helo, sizeof s->helo) ==
                    MXG_HELO_NAME;
    if (!s->helo_plain)
        LOG_I("smtp", "%s: %s name from %s is not a host name: '%s'", s->id,
              mxg_verb_name(c->cmd.verb), s->peer, mxg_show(c->cmd.arg, c->cmd.arg_len).s);
    s->esmtp = c->cmd.verb == MXG_V_EHLO;
    sess_set_state(s, SS_READY);
    if (!s->esmtp) {
        sess_reply(s, 250, "", "%s", s->srv->hostname);
        return;
    }
    sess_reply(s, 250, "",
               "%s\nPIPELINING\nSIZE %llu\n8BITMIME\nENHANCEDSTATUSCODES\nSMTPUTF8\nDSN%s%s",
               s->srv->hostname, (unsigned long long)cfg->message_size,
               s->srv->tls_server && !s->tls ? "\nSTARTTLS" : "",
               auth_offered(s) ? "\nAUTH PLAIN LOGIN" : "");
}

static int helo_check(struct mxg_session *s, struct cmd_ctx *c)
{
    if (c->cmd.arg_len == 0) {
        sess_reply(s, 501, "5.5.4", "Syntax: %s hostname", mxg_verb_name(c->cmd.verb));
        return -1;
    }
    char shown[80];
    if (mxg_helo_classify(c->cmd.arg, c->cmd.arg_len, shown, sizeof shown) == MXG_HELO_BAD) {
        sess_reply(s, 501, "5.5.2", "Syntax: %s domain or address literal (control "
                                    "characters and octets that are not UTF-8 are not allowed)",
                   mxg_verb_name(c->cmd.verb));
        return -1;
    }
    return 0;
}

/* RFC 4954 §5: MAIL FROM may carry AUTH=<mailbox> (xtext) or AUTH=<>. It
 * is accepted where AUTH exists and not passed on (mxguard does not
 * authenticate upstream). */
static int drop_auth_param(struct mxg_path *p)
{
    for (int i = 0; i < p->n_params; i++) {
        if (strcmp(p->params[i].key, "AUTH") != 0)
            continue;
        if (!p->params[i].has_value || !p->params[i].value[0])
            return MXG_PE_PARAM;
        memmove(&p->params[i], &p->params[i + 1],
                (size_t)(p->n_params - i - 1) * sizeof p->params[0]);
        p->n_params--;
        i--;
    }
    return MXG_PE_OK;
}

static int mail_check(struct mxg_session *s, struct cmd_ctx *c)
{
    if (s->st == SS_CONNECTED) {
        sess_reply(s, 503, "5.5.1", "Error: send HELO/EHLO first");
        return -1;
    }
    if (s->txn.active) {
        sess_reply(s, 503, "5.5.1", "Error: nested MAIL command");
        return -1;
    }
    if (s->drain_requested) {
        sess_reply(s, 421, "4.3.2", "%s Service shutting down, try again later",
                   s->srv->hostname);
        sess_close(s, "draining");
        return -1;
    }
    if (s->req == MXG_REQ_AUTH && !s->auth_user[0]) { /* server.require_auth_networks */
        sess_reply(s, 530, "5.7.0", "Authentication required");
        return -1;
    }
    if (s->req == MXG_REQ_TLS && !tls_up(s)) { /* server.require_tls_networks */
        sess_reply(s, 530, "5.7.0", "Must issue a STARTTLS command first");
        return -1;
    }
    int rc = mxg_path_parse(c->cmd.arg, c->cmd.arg_len, 1, &c->path);
    struct mxg_mail_params mp;
    if (rc == MXG_PE_OK && s->esmtp && s->srv->auth_db)
        rc = drop_auth_param(&c->path);
    if (rc == MXG_PE_OK && !s->esmtp && c->path.n_params > 0)
        rc = MXG_PE_UNKNOWN_PARAM;
    if (rc == MXG_PE_OK)
        rc = mxg_mail_params_check(&c->path, &mp);
    if (rc == MXG_PE_OK && c->path.utf8 && !mp.smtputf8)
        rc = MXG_PE_UTF8;
    if (rc != MXG_PE_OK) {
        const char *enh, *text;
        int code = mxg_parse_error_reply(rc, &enh, &text);
        if (rc == MXG_PE_PATH)
            enh = "5.1.7";
        sess_reply(s, code, enh, "%s", text);
        return -1;
    }
    if (mp.size && mp.size > s->srv->cfg->message_size) {
        sess_reply(s, 552, "5.3.4", "Message size exceeds fixed limit of %llu octets",
                   (unsigned long long)s->srv->cfg->message_size);
        return -1;
    }
    return 0;
}

static void mail_proceed(struct mxg_session *s, struct cmd_ctx *c)
{
    struct txn *t = &s->txn;
    memset(t, 0, sizeof *t);
    t->active = 1;
    mxg_mail_params_check(&c->path, &t->mp);
    mxg_str_copy(t->from, sizeof t->from, c->path.addr);
    char seq[16];
    seq[mxg_ntoa_uint(++s->txn_seq, seq)] = '\0';
    mxg_str_join3(t->id, sizeof t->id, s->id, ".", seq); /* "%s.%u" */
    t->t_start = now_ms(s);
    sess_set_state(s, SS_MAIL);
    sess_reply(s, 250, "2.1.0", "Sender <%s> OK", t->from);
}

static int rcpt_check(struct mxg_session *s, struct cmd_ctx *c)
{
    struct txn *t = &s->txn;
    if (!t->active) {
        sess_reply(s, 503, "5.5.1", "Error: need MAIL command");
        return -1;
    }
    int rc = mxg_path_parse(c->cmd.arg, c->cmd.arg_len, 0, &c->path);
    struct mxg_rcpt_params rp;
    if (rc == MXG_PE_OK && !s->esmtp && c->path.n_params > 0)
        rc = MXG_PE_UNKNOWN_PARAM;
    if (rc == MXG_PE_OK)
        rc = mxg_rcpt_params_check(&c->path, &rp);
    if (rc == MXG_PE_OK && c->path.utf8 && !t->mp.smtputf8)
        rc = MXG_PE_UTF8;
    if (rc != MXG_PE_OK) {
        const char *enh, *text;
        int code = mxg_parse_error_reply(rc, &enh, &text);
        sess_reply(s, code, enh, "%s", text);
        return -1;
    }
    if (t->n_rcpts >= s->srv->cfg->max_recipients) {
        sess_reply(s, 452, "4.5.3", "Too many recipients");
        return -1;
    }
    return 0;
}

/* A new leg for domain; r: its first recipient (RCPT pipelined behind MAIL
 * when the MX offers PIPELINING, upstream.h mxg_leg_opts). */
static struct leg_slot *slot_new(struct mxg_session *s, const char *domain, const struct rcpt *r)
{
    struct txn *t = &s->txn;
    if (t->n_legs == t->cap_legs) {
        int ncap = t->cap_legs ? t->cap_legs * 2 : 2;
        struct leg_slot *n = realloc(t->legs, (size_t)ncap * sizeof *n);
        if (!n)
            return NULL;
        t->legs = n;
        t->cap_legs = ncap;
    }
    struct mxg_leg_opts opts = {.first_rcpt = r->addr, .first_rp = &r->rp};
    struct mxg_leg *leg = mxg_leg_open_opts(&s->srv->upenv, t->id, domain, t->from, &t->mp, &opts,
                                            &leg_cbs, s);
    if (!leg)
        return NULL;
    struct leg_slot *sl = &t->legs[t->n_legs++];
    memset(sl, 0, sizeof *sl);
    sl->leg = leg;
    sl->st = SL_OPENING;
    mxg_str_copy(sl->domain, sizeof sl->domain, domain);
    return sl;
}

static void rcpt_proceed(struct mxg_session *s, struct cmd_ctx *c)
{
    struct txn *t = &s->txn;
    if (t->n_rcpts == t->cap_rcpts) {
        int ncap = t->cap_rcpts ? t->cap_rcpts * 2 : 8;
        struct rcpt *n = realloc(t->rcpts, (size_t)ncap * sizeof *n);
        if (!n) {
            sess_reply(s, 452, "4.3.1", "Out of memory");
            return;
        }
        t->rcpts = n;
        t->cap_rcpts = ncap;
    }
    struct rcpt *r = &t->rcpts[t->n_rcpts];
    memset(r, 0, sizeof *r);
    r->slot = -1;
    if (mxg_domain_alabel(c->path.domain, r->domain, sizeof r->domain) < 0) {
        sess_reply(s, 553, "5.1.2", "Recipient domain is not a valid IDN");
        return;
    }
    mxg_str_copy(r->addr, sizeof r->addr, c->path.addr);
    mxg_rcpt_params_check(&c->path, &r->rp);

    if (s->queue_mode) { /* stored first, delivered by the queue runner */
        if (!spool_ok(s)) {
            sess_reply(s, 451, "4.3.2", "Queue not available, try again later");
            return;
        }
        t->n_rcpts++;
        r->st = R_DONE;
        r->accepted = 1;
        t->n_accepted++;
        sess_set_state(s, SS_RCPT);
        sess_reply(s, 250, "2.1.5", "Recipient <%s> OK (queued)", r->addr);
        return;
    }

    /* The live leg for this domain, if any. */
    struct leg_slot *sl = NULL;
    int active = 0;
    for (int i = 0; i < t->n_legs; i++) {
        struct leg_slot *x = &t->legs[i];
        if (x->st == SL_RETIRED)
            continue;
        active++;
        if (strcasecmp(x->domain, r->domain) == 0)
            sl = x;
    }
    if (sl && sl->st == SL_FAILED) {
        if (sl->accepted > 0) { /* it died with recipients on it: they decide its fate */
            sess_relay(s, sl->res);
            return;
        }
        int busy = 0; /* dead before any recipient: a fresh one, once nobody waits on it */
        for (int i = 0; i < t->n_rcpts; i++)
            if (t->rcpts[i].slot == (int)(sl - t->legs) && t->rcpts[i].st != R_DONE)
                busy = 1;
        if (!busy) {
            mxg_leg_close(sl->leg);
            sl->leg = NULL;
            slot_set_state(s, sl, SL_RETIRED);
            active--;
            sl = NULL;
        }
    }
    if (!sl && active >= max_legs(s)) {
        const char *first = "";
        for (int i = 0; i < t->n_legs && !first[0]; i++)
            if (t->legs[i].st != SL_RETIRED)
                first = t->legs[i].domain;
        if (max_legs(s) == 1)
            sess_reply(s, 452, "4.5.3",
                       "Recipients for %s must go in another transaction (this one is for %s)",
                       r->domain, first);
        else
            sess_reply(s, 452, "4.5.3",
                       "Too many destination domains in one transaction (limit %d): send <%s> "
                       "in another",
                       max_legs(s), r->addr);
        return;
    }
    if (!sl) {
        sl = slot_new(s, r->domain, r);
        if (!sl) {
            sess_reply(s, 451, "4.3.0", "Cannot start delivery to %s", r->domain);
            return;
        }
    }
    int idx = t->n_rcpts++;
    r->slot = (int)(sl - t->legs);
    r->st = R_QUEUED;
    t->n_inflight++;
    if (sl->st == SL_FAILED) { /* answered by the dead leg's error, in order */
        r->ord = ord_append(s);
        rcpt_done(s, idx, sl->res);
        return;
    }
    r->ord = ord_append(s); /* the reply goes out in order when the leg answers */
    slot_pump(s, sl);
    sess_arm_timer(s);
}

static int data_check(struct mxg_session *s, struct cmd_ctx *c)
{
    struct txn *t = &s->txn;
    if (c->cmd.arg_len) {
        sess_reply(s, 501, "5.5.4", "Syntax: DATA (no arguments)");
        return -1;
    }
    if (!t->active) {
        sess_reply(s, 503, "5.5.1", "Error: need MAIL command");
        return -1;
    }
    if (t->n_rcpts == 0) {
        sess_reply(s, 503, "5.5.1", "Error: need RCPT command");
        return -1;
    }
    if (t->n_accepted == 0) {
        sess_reply(s, 554, "5.5.1", "Error: no valid recipients");
        return -1;
    }
    return 0;
}

static void data_proceed(struct mxg_session *s, struct cmd_ctx *c)
{
    (void)c;
    struct txn *t = &s->txn;
    if (s->queue_mode) {
        data_begin(s);
        return;
    }
    t->n_wait = 0;
    for (int i = 0; i < t->n_legs; i++) {
        struct leg_slot *sl = &t->legs[i];
        if (sl->accepted == 0 || sl->st != SL_READY)
            continue; /* a leg that died after its RCPTs keeps its failure in sl->res */
        if (mxg_leg_data(sl->leg) < 0) {
            slot_fail(s, sl, mxg_leg_error(sl->leg));
            continue;
        }
        slot_set_state(s, sl, SL_DATA);
        t->n_wait++;
    }
    if (t->n_wait == 0) {
        data_begin(s); /* every leg failed: one failure reply */
        return;
    }
    sess_set_wait(s, SW_DATA);
}

static int noarg_check(struct mxg_session *s, struct cmd_ctx *c)
{
    (void)s;
    (void)c;
    return 0;
}

static void rset_proceed(struct mxg_session *s, struct cmd_ctx *c)
{
    (void)c;
    txn_reset(s);
    sess_reply(s, 250, "2.0.0", "Ok");
}

static void noop_proceed(struct mxg_session *s, struct cmd_ctx *c)
{
    (void)c;
    sess_reply(s, 250, "2.0.0", "Ok");
}

static void quit_proceed(struct mxg_session *s, struct cmd_ctx *c)
{
    (void)c;
    sess_reply(s, 221, "2.0.0", "%s closing connection", s->srv->hostname);
    sess_close(s, "quit");
}

static void vrfy_proceed(struct mxg_session *s, struct cmd_ctx *c)
{
    (void)c;
    sess_reply(s, 252, "2.5.0", "Cannot VRFY user, but will accept message and attempt delivery");
}

static void expn_proceed(struct mxg_session *s, struct cmd_ctx *c)
{
    (void)c;
    sess_reply(s, 502, "5.5.1", "EXPN not available");
}

static void help_proceed(struct mxg_session *s, struct cmd_ctx *c)
{
    (void)c;
    sess_reply(s, 214, "2.0.0",
               "mxguard outbound relay. Commands: EHLO HELO MAIL RCPT DATA RSET NOOP QUIT VRFY "
               "HELP%s%s", s->srv->tls_server ? " STARTTLS" : "", s->srv->auth_db ? " AUTH" : "");
}

static void notimpl_proceed(struct mxg_session *s, struct cmd_ctx *c)
{
    sess_reply(s, 502, "5.5.1", "%s not implemented", mxg_verb_name(c->cmd.verb));
}

/* ------------------------------------------------------ STARTTLS (RFC 3207) */

static int starttls_check(struct mxg_session *s, struct cmd_ctx *c)
{
    if (!s->srv->tls_server) {
        sess_reply(s, 502, "5.5.1", "STARTTLS not available");
        return -1;
    }
    if (c->cmd.arg_len) {
        sess_reply(s, 501, "5.5.4", "Syntax: STARTTLS (no parameters)");
        return -1;
    }
    if (s->tls) {
        sess_reply(s, 503, "5.5.1", "Error: TLS already active");
        return -1;
    }
    if (s->st == SS_CONNECTED) {
        sess_reply(s, 503, "5.5.1", "Error: send EHLO first");
        return -1;
    }
    if (s->txn.active) {
        sess_reply(s, 503, "5.5.1", "Error: STARTTLS not permitted during a mail transaction");
        return -1;
    }
    return 0;
}

static void starttls_proceed(struct mxg_session *s, struct cmd_ctx *c)
{
    (void)c;
    struct mxg_tls_engine *e = mxg_tls_engine_new_server(s->srv->tls_server);
    if (!e) {
        sess_reply(s, 454, "4.7.0", "TLS not available due to temporary reason");
        return;
    }
    sess_reply(s, 220, "2.0.0", "Ready to start TLS");
    /* CVE-2011-0411: whatever the client pipelined behind STARTTLS was sent
     * in plaintext, where anyone on the path may have put it: never run it. */
    size_t junk = mxg_buf_avail(&s->in);
    if (junk > 0) {
        LOG_W("smtp", "%s: client %s sent %zu octets after STARTTLS before the TLS handshake; "
                      "discarded (STARTTLS command injection)", s->id, s->peer, junk);
        mxg_buf_reset(&s->in);
    }
    s->discard_line = 0;
    s->tls = e;
    /* RFC 3207 §4.2: forget everything learned before TLS. */
    txn_reset(s);
    snprintf(s->helo, sizeof s->helo, "unknown");
    s->helo_plain = 1;
    s->esmtp = 0;
    OPENSSL_cleanse(s->auth_user, sizeof s->auth_user);
    s->auth_mech = NULL;
    sess_set_state(s, SS_STARTTLS);
}

static void tls_established(struct mxg_session *s)
{
    LOG_D("smtp", "%s: STARTTLS from %s: %s with %s", s->id, s->peer, mxg_tls_version(s->tls),
          mxg_tls_cipher(s->tls));
    mxg_metrics_inc(s->srv->upenv.metrics, MXG_M_INBOUND_TLS, "success");
    sess_set_state(s, SS_CONNECTED); /* the client must say EHLO again */
}

/* Ciphertext from the client: drive the handshake, then move plaintext to
 * s->in. Returns -1 when the session was closed. */
static int tls_input(struct mxg_session *s, const char *p, size_t n)
{
    if (mxg_tls_feed(s->tls, p, n) != MXG_TLS_OK) {
        sess_close(s, "TLS input error");
        return -1;
    }
    if (!mxg_tls_handshake_done(s->tls)) {
        int rc = mxg_tls_handshake(s->tls);
        tls_flush(s);
        if (rc == MXG_TLS_AGAIN)
            return 0;
        if (rc != MXG_TLS_OK) {
            LOG_I("smtp", "%s: STARTTLS from %s: handshake failed: %s", s->id, s->peer,
                  mxg_tls_engine_error(s->tls));
            mxg_metrics_inc(s->srv->upenv.metrics, MXG_M_INBOUND_TLS, "failure");
            sess_close(s, "TLS handshake failed");
            return -1;
        }
        tls_established(s);
    }
    char plain[16384];
    int eof = 0;
    for (;;) {
        size_t got = 0;
        int rc = mxg_tls_read(s->tls, plain, sizeof plain, &got);
        if (rc == MXG_TLS_OK) {
            if (mxg_buf_append(&s->in, plain, got) < 0) {
                OPENSSL_cleanse(plain, sizeof plain);
                sess_reply(s, 421, "4.3.0", "Out of memory");
                sess_close(s, "out of memory");
                return -1;
            }
            continue;
        }
        if (rc == MXG_TLS_AGAIN)
            break;
        if (rc == MXG_TLS_EOF) {
            eof = 1;
            break;
        }
        tls_flush(s); /* the alert */
        LOG_I("smtp", "%s: TLS error from %s: %s", s->id, s->peer, mxg_tls_engine_error(s->tls));
        sess_close(s, "TLS error");
        return -1;
    }
    OPENSSL_cleanse(plain, sizeof plain);
    tls_flush(s);
    if (eof) { /* what came before the close_notify is still answered */
        sess_process(s);
        if (s->st == SS_CLOSING)
            return -1;
        if (s->wait == SW_DOT) { /* as for a plain half-close (sess_read): the legs may
                                  * have delivered; answer the dot, then close (resume) */
            LOG_D("smtp", "%s: client %s closed TLS; finishing what it sent", s->id, s->peer);
            s->peer_eof = 1;
            sess_update_reading(s);
            return -1;
        }
        sess_close(s, "client closed TLS");
        return -1;
    }
    return 0;
}

/* ----------------------------------------------------- AUTH (RFC 4954) */

/* "PLAIN" / "LOGIN" for the mechanism word at arg (len n), else NULL. */
static const char *auth_mech_of(const char *arg, size_t n)
{
    if (n == 5 && strncasecmp(arg, "PLAIN", 5) == 0)
        return "PLAIN";
    if (n == 5 && strncasecmp(arg, "LOGIN", 5) == 0)
        return "LOGIN";
    return NULL;
}

/* Split "MECH [initial-response]": 0, or -1 for a syntax error. */
static int auth_split(const struct cmd_ctx *c, size_t *mech_len, const char **ir, size_t *ir_len)
{
    const char *a = c->cmd.arg;
    size_t n = c->cmd.arg_len;
    const char *sp = memchr(a, ' ', n);
    *mech_len = sp ? (size_t)(sp - a) : n;
    *ir = NULL;
    *ir_len = 0;
    if (*mech_len == 0)
        return -1;
    if (sp) {
        *ir = sp + 1;
        *ir_len = n - *mech_len - 1;
        if (*ir_len == 0 || memchr(*ir, ' ', *ir_len))
            return -1;
    }
    return 0;
}

static void auth_key_user(const char *user, char *key, size_t cap)
{
    snprintf(key, cap, "user:%s", user);
}

/* The exchange is over (whatever the outcome): back to commands. */
static void auth_end(struct mxg_session *s)
{
    sess_set_ax(s, AX_NONE);
    OPENSSL_cleanse(s->ax_user, sizeof s->ax_user);
    if (s->st == SS_AUTH)
        sess_set_state(s, SS_READY);
}

static int auth_check(struct mxg_session *s, struct cmd_ctx *c)
{
    size_t ml, il;
    const char *ir;
    if (!s->srv->auth_db) {
        sess_reply(s, 502, "5.5.1", "AUTH not available");
        return -1;
    }
    if (!s->esmtp) {
        sess_reply(s, 503, "5.5.1", "Error: send EHLO first");
        return -1;
    }
    if (s->auth_user[0]) {
        sess_reply(s, 503, "5.5.1", "Error: already authenticated");
        return -1;
    }
    if (s->txn.active) {
        sess_reply(s, 503, "5.5.1", "Error: AUTH not permitted during a mail transaction");
        return -1;
    }
    if (!auth_allowed(s)) {
        sess_reply(s, 538, "5.7.11", "Encryption required for requested authentication mechanism");
        return -1;
    }
    if (auth_split(c, &ml, &ir, &il) < 0) {
        sess_reply(s, 501, "5.5.4", "Syntax: AUTH mechanism [initial-response]");
        return -1;
    }
    if (!auth_mech_of(c->cmd.arg, ml)) {
        sess_reply(s, 504, "5.5.4", "Unrecognized authentication type (PLAIN and LOGIN are)");
        return -1;
    }
    char key[80];
    mxg_auth_throttle_addr_key((const struct sockaddr *)&s->peer_sa, key, sizeof key);
    uint64_t left = mxg_auth_throttle_locked(mxg_server_throttle(s->srv), key, now_ms(s));
    if (left > 0) {
        LOG_W("smtp", "%s: AUTH from %s refused: locked out for another %llus after too many "
                      "failures", s->id, s->peer, (unsigned long long)(left + 999) / 1000);
        mxg_metrics_inc(s->srv->upenv.metrics, MXG_M_INBOUND_AUTH, "refused");
        sess_reply(s, 454, "4.7.0",
                   "Temporary authentication failure: too many failed attempts, try again later");
        return -1;
    }
    return 0;
}

static void auth_delay_done(uv_timer_t *t);

/* Count one failure of the exchange's user from the client's address;
 * the count from this address. */
static int auth_count_failure(struct mxg_session *s, const char *why)
{
    const struct mxg_config *cfg = s->srv->cfg;
    struct mxg_auth_throttle *th = mxg_server_throttle(s->srv);
    char key[80], ukey[MXG_SASL_FIELD_MAX + 8];
    mxg_auth_throttle_addr_key((const struct sockaddr *)&s->peer_sa, key, sizeof key);
    auth_key_user(s->ax_user, ukey, sizeof ukey);
    uint64_t now = now_ms(s);
    int n = mxg_auth_throttle_fail(th, key, now, cfg->auth_max_failures, cfg->auth_window_ms,
                                   cfg->auth_lockout_ms);
    int un = cfg->auth_max_user_failures
                 ? mxg_auth_throttle_fail(th, ukey, now, cfg->auth_max_user_failures,
                                          cfg->auth_window_ms, cfg->auth_lockout_ms)
                 : 0;
    struct mxg_shown user = mxg_show(s->ax_user, strlen(s->ax_user));
    mxg_metrics_inc(s->srv->upenv.metrics, MXG_M_INBOUND_AUTH, "failure");
    LOG_W("smtp", "%s: AUTH %s failed for user '%s' from %s: %s (%d of %d from this address)",
          s->id, s->auth_mech, user.s, s->peer, why, n, cfg->auth_max_failures);
    if (cfg->auth_max_user_failures && un == cfg->auth_max_user_failures)
        LOG_W("smtp", "%s: AUTH for user '%s' locked for %llus after %d failures (addresses "
                      "it authenticated from within auth.trusted_address_lifetime are spared)",
              s->id, user.s, (unsigned long long)(cfg->auth_lockout_ms / 1000), un);
    return n;
}

/* Wrong credentials: count them; the 535 goes out after auth.failure_delay,
 * and nothing else is read meanwhile (replies stay in order). The address
 * reaching auth.max_failures gets 421 and the connection is closed. */
static void auth_failed_counted(struct mxg_session *s, int n);
static void auth_failed(struct mxg_session *s, const char *why)
{
    auth_failed_counted(s, auth_count_failure(s, why));
}

/* auth_failed() once the failure is counted (n: the count from this address). */
static void auth_failed_counted(struct mxg_session *s, int n)
{
    const struct mxg_config *cfg = s->srv->cfg;
    auth_end(s);
    if (n >= cfg->auth_max_failures) {
        LOG_W("smtp", "%s: client %s locked out of AUTH for %llus after %d failures", s->id,
              s->peer, (unsigned long long)(cfg->auth_lockout_ms / 1000), n);
        sess_reply(s, 421, "4.7.0", "%s Too many failed authentication attempts, try again later",
                   s->srv->hostname);
        sess_close(s, "too many AUTH failures");
        return;
    }
    sess_set_wait(s, SW_AUTH);
    uv_timer_start(&s->timer, auth_delay_done, cfg->auth_delay_ms, 0);
}

static void auth_delay_done(uv_timer_t *t)
{
    struct mxg_session *s = t->data;
    sess_reply(s, 535, "5.7.8", "Authentication credentials invalid");
    resume(s);
}

static void sess_unref(struct mxg_session *s);

/* The password check is over: it no longer counts as in flight. */
static void auth_release(struct mxg_session *s)
{
    struct mxg_auth_throttle *th = mxg_server_throttle(s->srv);
    if (s->ax_addr_key[0])
        mxg_auth_throttle_finish(th, s->ax_addr_key);
    if (s->ax_user_key[0])
        mxg_auth_throttle_finish(th, s->ax_user_key);
    s->ax_addr_key[0] = '\0';
    OPENSSL_cleanse(s->ax_user_key, sizeof s->ax_user_key);
}

static uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void auth_verified(void *arg, int ok)
{
    struct mxg_session *s = arg;
    /* a wrong password is counted before the check stops counting as in flight: with
     * worker processes sharing the throttle another worker's check may start in
     * between, and must find the failure, not a free slot (fail closed) */
    int n = ok != 0 ? 0
                    : auth_count_failure(s, s->st == SS_CLOSING
                                                ? "wrong password or unknown user (the client left)"
                                                : "wrong password or unknown user");
    auth_release(s);
    if (s->st == SS_CLOSING) { /* the client left meanwhile: a wrong password still counted */
        sess_unref(s);
        return;
    }
    s->handles--; /* the socket and the timer are still open: never the last */
    if (ok < 0) {
        LOG_E("smtp", "%s: AUTH: the password check failed", s->id);
        auth_end(s);
        sess_reply(s, 454, "4.7.0", "Temporary authentication failure");
        resume(s);
        return;
    }
    if (ok == 0) {
        auth_failed_counted(s, n);
        return;
    }
    /* a success does not clear the user's failures (the attacker would get
     * a fresh allowance each time the real client logs in); it makes this
     * address trusted for the user instead */
    if (s->srv->cfg->auth_trusted_lifetime_ms) {
        char key[80];
        struct mxg_auth_trust_store *store = NULL;
        struct mxg_auth_throttle *trust = mxg_server_trust(s->srv, &store);
        uint64_t now = wall_ms();
        mxg_auth_throttle_addr_key((const struct sockaddr *)&s->peer_sa, key, sizeof key);
        mxg_auth_trust_mark(trust, key, s->ax_user, now);
        mxg_auth_trust_store_put(store, key, s->ax_user, now);
    }
    mxg_str_copy(s->auth_user, sizeof s->auth_user, s->ax_user);
    LOG_D("smtp", "%s: AUTH %s: user '%s' authenticated from %s%s%s", s->id, s->auth_mech,
          mxg_show(s->auth_user, strlen(s->auth_user)).s, s->peer, tls_up(s) ? " over " : "",
          tls_up(s) ? mxg_tls_version(s->tls) : " (plaintext, loopback)");
    mxg_metrics_inc(s->srv->upenv.metrics, MXG_M_INBOUND_AUTH, "success");
    auth_end(s);
    sess_reply(s, 235, "2.7.0", "Authentication successful");
    resume(s);
}

/* Count the check as started against the address and (unless this
 * address is trusted for the user) the user: NULL, or why it is refused. */
static const char *auth_start(struct mxg_session *s)
{
    const struct mxg_config *cfg = s->srv->cfg;
    struct mxg_auth_throttle *th = mxg_server_throttle(s->srv);
    char key[80], ukey[MXG_SASL_FIELD_MAX + 8];
    uint64_t now = now_ms(s);
    mxg_auth_throttle_addr_key((const struct sockaddr *)&s->peer_sa, key, sizeof key);
    auth_key_user(s->ax_user, ukey, sizeof ukey);
    int trusted = mxg_auth_trusted(mxg_server_trust(s->srv, NULL), key, s->ax_user, wall_ms(),
                                   cfg->auth_trusted_lifetime_ms);
    int arc = mxg_auth_throttle_start(th, key, now, cfg->auth_max_failures, cfg->auth_window_ms);
    if (arc == 0)
        return "this address is locked out, or its failures and running checks reach "
               "auth.max_failures";
    if (arc < 0 && !trusted) /* a flood of locked keys fills the table: fail closed ... */
        return "the AUTH throttle table is full (auth.throttle_entries): every entry is "
               "locked out or has a check running";
    if (arc > 0) /* ... but never for an address that authenticated as this user before */
        mxg_str_copy(s->ax_addr_key, sizeof s->ax_addr_key, key);
    if (!cfg->auth_max_user_failures)
        return NULL;
    if (trusted) {
        if (mxg_auth_throttle_locked(th, ukey, now))
            LOG_I("smtp", "%s: user '%s' is locked out, but %s authenticated as the user "
                          "before: let in", s->id, mxg_show(s->ax_user, strlen(s->ax_user)).s,
                  s->peer);
        return NULL;
    }
    int urc = mxg_auth_throttle_start(th, ukey, now, cfg->auth_max_user_failures,
                                      cfg->auth_window_ms);
    if (urc == 0)
        return "the user is locked out, or its failures and running checks reach "
               "auth.max_user_failures";
    if (urc < 0) /* no room to count the user's failures: fail closed, as for the address */
        return "the AUTH throttle table is full (auth.throttle_entries): no room for the "
               "user's failures";
    mxg_str_copy(s->ax_user_key, sizeof s->ax_user_key, ukey);
    return NULL;
}

/* The credentials are complete: check them off the loop (SW_AUTH). */
static void auth_verify(struct mxg_session *s, const char *pass)
{
    const char *why = auth_start(s);
    if (why) {
        auth_release(s);
        LOG_W("smtp", "%s: AUTH for user '%s' from %s refused: %s", s->id,
              mxg_show(s->ax_user, strlen(s->ax_user)).s, s->peer, why);
        mxg_metrics_inc(s->srv->upenv.metrics, MXG_M_INBOUND_AUTH, "refused");
        auth_end(s);
        sess_reply(s, 454, "4.7.0",
                   "Temporary authentication failure: too many failed attempts, try again later");
        return;
    }
    LOG_D("smtp", "%s: AUTH: password check for user '%s' started", s->id,
          mxg_show(s->ax_user, strlen(s->ax_user)).s);
    sess_set_wait(s, SW_AUTH);
    s->handles++;
    if (mxg_auth_verify(s->srv->loop, s->srv->auth_db, s->ax_user, pass, auth_verified, s) < 0) {
        s->handles--;
        auth_release(s);
        sess_set_wait(s, SW_NONE);
        auth_end(s);
        sess_reply(s, 454, "4.7.0", "Temporary authentication failure");
    }
}

/* A PLAIN message (RFC 4616), decoded. */
static void auth_plain(struct mxg_session *s, const unsigned char *msg, size_t len)
{
    char pass[MXG_SASL_FIELD_MAX + 1];
    int rc = mxg_sasl_plain_parse(msg, len, s->ax_user, pass);
    if (rc == MXG_SASL_MALFORMED) {
        auth_end(s);
        sess_reply(s, 501, "5.5.2", "Malformed PLAIN response");
    } else if (rc == MXG_SASL_EMPTY) {
        auth_failed(s, "empty user name or password");
    } else if (rc == MXG_SASL_AUTHZID) {
        auth_failed(s, "authorization identity other than the user");
    } else {
        auth_verify(s, pass);
    }
    OPENSSL_cleanse(pass, sizeof pass);
}

/* A LOGIN user name, decoded: a name as the password file allows it. */
static int login_user_ok(const unsigned char *u, size_t n)
{
    if (n == 0 || n > MXG_SASL_FIELD_MAX)
        return 0;
    return memchr(u, '\0', n) == NULL;
}

/* One response of the exchange (a line in SS_AUTH, or the initial response
 * given with AUTH): "*" cancels, anything else is base64. */
static void auth_response(struct mxg_session *s, const char *line, size_t len)
{
    unsigned char buf[MXG_PATH_LINE_MAX];
    size_t n;
    if (len == 1 && line[0] == '*') {
        LOG_I("smtp", "%s: AUTH %s cancelled by the client", s->id, s->auth_mech);
        auth_end(s);
        sess_reply(s, 501, "5.0.0", "Authentication cancelled");
        return;
    }
    if (mxg_b64_decode(line, len, buf, sizeof buf, &n) < 0) {
        auth_end(s);
        sess_reply(s, 501, "5.5.2", "Cannot decode the response as base64");
        return;
    }
    switch (s->ax) {
    case AX_PLAIN:
        auth_plain(s, buf, n);
        break;
    case AX_LOGIN_USER:
        if (!login_user_ok(buf, n)) {
            auth_end(s);
            sess_reply(s, 501, "5.5.2", "Malformed user name");
            break;
        }
        memcpy(s->ax_user, buf, n);
        s->ax_user[n] = '\0';
        sess_set_ax(s, AX_LOGIN_PASS);
        sess_reply(s, 334, "", "UGFzc3dvcmQ6"); /* "Password:" */
        break;
    case AX_LOGIN_PASS: {
        char pass[MXG_SASL_FIELD_MAX + 1];
        if (n == 0 || n > MXG_SASL_FIELD_MAX || memchr(buf, '\0', n)) {
            auth_failed(s, "empty or malformed password");
            break;
        }
        memcpy(pass, buf, n);
        pass[n] = '\0';
        auth_verify(s, pass);
        OPENSSL_cleanse(pass, sizeof pass);
        break;
    }
    default:
        auth_end(s);
        break;
    }
    OPENSSL_cleanse(buf, sizeof buf);
}

static void auth_proceed(struct mxg_session *s, struct cmd_ctx *c)
{
    size_t ml, il;
    const char *ir;
    auth_split(c, &ml, &ir, &il); /* checked */
    s->auth_mech = auth_mech_of(c->cmd.arg, ml);
    OPENSSL_cleanse(s->ax_user, sizeof s->ax_user);
    sess_set_state(s, SS_AUTH);
    int plain = strcmp(s->auth_mech, "PLAIN") == 0;
    sess_set_ax(s, plain ? AX_PLAIN : AX_LOGIN_USER);
    if (ir) {
        auth_response(s, ir, il);
        return;
    }
    sess_reply(s, 334, "", "%s", plain ? "" : "VXNlcm5hbWU6"); /* "Username:" */
}

struct cmd_entry {
    enum mxg_verb verb;
    int (*check)(struct mxg_session *, struct cmd_ctx *);
    void (*proceed)(struct mxg_session *, struct cmd_ctx *);
};

static const struct cmd_entry cmd_table[] = {
    {MXG_V_EHLO, helo_check, helo_proceed},     {MXG_V_HELO, helo_check, helo_proceed},
    {MXG_V_MAIL, mail_check, mail_proceed},     {MXG_V_RCPT, rcpt_check, rcpt_proceed},
    {MXG_V_DATA, data_check, data_proceed},     {MXG_V_RSET, noarg_check, rset_proceed},
    {MXG_V_NOOP, noarg_check, noop_proceed},    {MXG_V_QUIT, noarg_check, quit_proceed},
    {MXG_V_VRFY, noarg_check, vrfy_proceed},    {MXG_V_EXPN, noarg_check, expn_proceed},
    {MXG_V_HELP, noarg_check, help_proceed},    {MXG_V_STARTTLS, starttls_check, starttls_proceed},
    {MXG_V_AUTH, auth_check, auth_proceed},     {MXG_V_BDAT, noarg_check, notimpl_proceed},
};

static void sess_command(struct mxg_session *s, const char *line, size_t len)
{
    struct cmd_ctx c;
    mxg_path_clear(&c.path); /* filled by MAIL / RCPT; c.cmd by mxg_cmd_parse */
    int rc = mxg_cmd_parse(line, len, &c.cmd);
    if (rc == MXG_PE_OK && c.cmd.verb == MXG_V_AUTH) /* never log credentials */
        LOG_D("smtp", "%s <- AUTH %.*s%s", s->id, (int)strcspn(c.cmd.arg, " "), c.cmd.arg,
              memchr(c.cmd.arg, ' ', c.cmd.arg_len) ? " (initial response not logged)" : "");
    else
        LOG_D("smtp", "%s <- %.*s", s->id, (int)(len > 200 ? 200 : len), line);
    if (rc != MXG_PE_OK) {
        const char *enh, *text;
        int code = mxg_parse_error_reply(rc, &enh, &text);
        sess_reply(s, code, enh, "%s", text);
        return;
    }
    /* MAIL/RCPT: RFC 1870/3461 allowances; AUTH: an initial response (RFC 4954 §4) */
    size_t limit = (c.cmd.verb == MXG_V_MAIL || c.cmd.verb == MXG_V_RCPT ||
                    c.cmd.verb == MXG_V_AUTH)
                       ? MXG_PATH_LINE_MAX
                       : MXG_CMD_LINE_MAX;
    if (len + 2 > limit) {
        sess_reply(s, 500, "5.5.2", "Line too long");
        return;
    }
    if (s->drain_requested && !s->txn.active && c.cmd.verb != MXG_V_QUIT) {
        sess_reply(s, 421, "4.3.2", "%s Service shutting down, try again later",
                   s->srv->hostname);
        sess_close(s, "draining");
        return;
    }
    for (size_t i = 0; i < sizeof cmd_table / sizeof cmd_table[0]; i++) {
        if (cmd_table[i].verb != c.cmd.verb)
            continue;
        if (cmd_table[i].check(s, &c) == 0)
            cmd_table[i].proceed(s, &c);
        return;
    }
    sess_reply(s, 500, "5.5.1", "Error: command not recognized");
}

static void line_too_long(struct mxg_session *s)
{
    if (s->st == SS_AUTH) { /* RFC 4954 §4 */
        auth_end(s);
        sess_reply(s, 500, "5.5.6", "Authentication Exchange line is too long");
        return;
    }
    sess_reply(s, 500, "5.5.2", "Line too long");
}

/* Take complete command lines from the input while nothing is pending. */
static void sess_process(struct mxg_session *s)
{
    while (s->st != SS_CLOSING && s->st != SS_STARTTLS && s->wait == SW_NONE) {
        if (s->out_lost) { /* a reply did not go out: act on nothing more */
            sess_close(s, "reply not sent");
            return;
        }
        if (s->st == SS_DATA) {
            data_input(s);
            if (s->st == SS_DATA || s->wait != SW_NONE)
                return;
            continue;
        }
        size_t avail = mxg_buf_avail(&s->in);
        if (avail == 0)
            return;
        char *head = mxg_buf_head(&s->in);
        char *nl = memchr(head, '\n', avail);
        if (s->discard_line) {
            if (!nl) {
                mxg_buf_reset(&s->in);
                return;
            }
            mxg_buf_consume(&s->in, (size_t)(nl - head) + 1);
            s->discard_line = 0;
            continue;
        }
        if (!nl) {
            if (avail > MXG_PATH_LINE_MAX) {
                line_too_long(s);
                s->discard_line = 1;
                mxg_buf_reset(&s->in);
            }
            return;
        }
        size_t ll = (size_t)(nl - head);
        size_t consumed = ll + 1;
        if (ll > 0 && head[ll - 1] == '\r')
            ll--;
        if (s->txn.n_inflight > 0 && !(ll >= 5 && strncasecmp(head, "RCPT ", 5) == 0)) {
            /* PIPELINING: only further RCPTs run alongside RCPTs whose legs
             * have not answered yet; anything else waits for their replies. */
            sess_set_wait(s, SW_RCPTS);
            return;
        }
        char line[MXG_PATH_LINE_MAX + 2];
        int toolong = ll > MXG_PATH_LINE_MAX;
        memcpy(line, head, toolong ? 0 : ll);
        mxg_buf_consume(&s->in, consumed);
        if (toolong) {
            line_too_long(s);
        } else if (s->st == SS_AUTH) {
            LOG_D("smtp", "%s <- (AUTH response, %zu octets, not logged)", s->id, ll);
            auth_response(s, line, ll);
        } else {
            sess_command(s, line, ll);
        }
        OPENSSL_cleanse(line, toolong ? 0 : ll); /* may have held a password */
        if (s->wait == SW_NONE)
            sess_arm_timer(s); /* a complete command: the idle clock starts again */
        if (s->errors > s->srv->cfg->max_errors && s->st != SS_CLOSING) {
            sess_reply(s, 421, "4.7.0", "%s Error: too many errors", s->srv->hostname);
            sess_close(s, "too many errors");
        }
    }
}

/* ------------------------------------------------------------ socket I/O */

static void sess_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    (void)suggested;
    static char slab[65536];
    *buf = uv_buf_init(slab, sizeof slab);
}

static void sess_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
    struct mxg_session *s = st->data;
    if (n == 0)
        return;
    if (s->out_lost) { /* our own shutdown's end of file, or what the client sent after it */
        sess_close(s, "reply not sent");
        return;
    }
    if (n == UV_EOF && s->wait == SW_DOT) {
        /* A half-close after the final dot (Exim pipelines QUIT behind it, then shuts its
         * sending side): the client still reads our replies, and the legs may already have
         * delivered: answer the dot (and what follows it), then close. */
        LOG_D("smtp", "%s: client %s closed its sending side; finishing what it sent", s->id,
              s->peer);
        s->peer_eof = 1;
        sess_update_reading(s);
        return;
    }
    if (n < 0) {
        sess_peer_gone(s, n == UV_EOF ? "end of file" : uv_strerror((int)n));
        return;
    }
    if (s->tls) {
        if (tls_input(s, buf->base, (size_t)n) < 0)
            return;
    } else if (mxg_buf_append(&s->in, buf->base, (size_t)n) < 0) {
        sess_reply(s, 421, "4.3.0", "Out of memory");
        sess_close(s, "out of memory");
        return;
    }
    /* timeouts.idle runs from the last complete command (re-armed in
     * sess_process), not from the last read: a client trickling a line that
     * never ends is closed on time (slowloris). In DATA every block counts. */
    if (s->wait == SW_NONE && s->st == SS_DATA) {
        s->txn.data_last = now_ms(s);
        sess_arm_timer(s);
    }
    sess_process(s);
    sess_update_reading(s);
}

/* The client is gone (reset, or end of file with nothing left to answer): close. */
static void sess_peer_gone(struct mxg_session *s, const char *why)
{
    if (s->st == SS_DATA || s->txn.active)
        LOG_I("smtp", "%s: client %s vanished in state %s (%s); transaction abandoned", s->id,
              s->peer, sess_state_names[s->st], why);
    sess_close(s, strcmp(why, "end of file") == 0 ? "client closed" : why);
}

static void sess_update_reading(struct mxg_session *s)
{
    if (s->st == SS_CLOSING)
        return;
    if (s->peer_eof) { /* nothing more will come; resume() closes once all is answered */
        if (s->reading) {
            uv_read_stop((uv_stream_t *)s->tcp);
            s->reading = 0;
        }
        return;
    }
    int want = !s->paused && mxg_buf_avail(&s->in) < SESS_IN_CAP &&
               uv_stream_get_write_queue_size((uv_stream_t *)s->tcp) < SESS_OUT_CAP;
    if (want && !s->reading) {
        uv_read_start((uv_stream_t *)s->tcp, sess_alloc, sess_read);
        s->reading = 1;
    } else if (!want && s->reading) {
        uv_read_stop((uv_stream_t *)s->tcp);
        s->reading = 0;
        if (!s->out_full_seen &&
            uv_stream_get_write_queue_size((uv_stream_t *)s->tcp) >= SESS_OUT_CAP) {
            s->out_full_seen = 1;
            LOG_D("smtp", "%s: %s reads none of our replies: %zu octets wait; reading paused",
                  s->id, s->peer, uv_stream_get_write_queue_size((uv_stream_t *)s->tcp));
        }
    }
}

/* One of the things keeping the session alive (its two handles, a password
 * check in flight) is done; the last one frees it. */
static void sess_unref(struct mxg_session *s)
{
    if (--s->handles > 0)
        return;
    mxg_buf_free(&s->in);
    mxg_tls_engine_free(s->tls);
    OPENSSL_cleanse(s->auth_user, sizeof s->auth_user);
    OPENSSL_cleanse(s->ax_user, sizeof s->ax_user);
    free(s->tcp);
    struct mxg_server *srv = s->srv;
    sess_unlink(srv, s);
    free(s);
    mxg_server_session_gone(srv);
}

static void sess_handle_closed(uv_handle_t *h)
{
    sess_unref(h->data);
}

/* The last replies went out (or the write failed, or the linger timer closed the
 * socket, which cancels this): close the socket and the linger timer. */
static void sess_shutdown_done(uv_shutdown_t *req, int status)
{
    (void)status;
    struct mxg_session *s = req->data;
    free(req);
    if (!uv_is_closing((uv_handle_t *)s->tcp))
        uv_close((uv_handle_t *)s->tcp, sess_handle_closed);
    if (!uv_is_closing((uv_handle_t *)&s->timer))
        uv_close((uv_handle_t *)&s->timer, sess_handle_closed);
}

/* A closing session's last replies were not read within timeouts.idle (a client
 * that holds its receive window at zero): close the socket without them. */
static void sess_linger_expired(uv_timer_t *t)
{
    struct mxg_session *s = t->data;
    LOG_I("smtp", "%s: %s read none of the last replies within %llus; connection closed", s->id,
          s->peer, (unsigned long long)(s->srv->cfg->t_idle / 1000));
    if (!uv_is_closing((uv_handle_t *)s->tcp))
        uv_close((uv_handle_t *)s->tcp, sess_handle_closed); /* cancels the shutdown */
}

static void sess_close(struct mxg_session *s, const char *why)
{
    if (s->st == SS_CLOSING)
        return;
    if (s->txn.active && s->wait != SW_NONE)
        LOG_I("smtp", "%s: closing with transaction %s in progress; nothing was accepted",
              s->id, s->txn.id);
    txn_reset(s);
    ord_flush(s);
    ord_free_all(s);
    if (tls_up(s)) { /* close_notify */
        mxg_tls_shutdown(s->tls);
        tls_flush(s);
    }
    sess_set_state(s, SS_CLOSING);
    /* the info log is one line per transaction outcome (README "Logs"): a session that
     * ended with QUIT after transactions, with nothing refused, says no more than they did */
    int routine = strcmp(why, "quit") == 0 && s->n_txn_ok + s->n_txn_fail > 0 && s->refused == 0;
    char in[MXG_SASL_FIELD_MAX + 200];
    client_desc(s, in, sizeof in);
    mxg_log(routine ? MXG_LOG_DEBUG : MXG_LOG_INFO, "smtp",
            "%s: disconnect from %s (%s): %lu delivered, %lu failed, %.3fs%s", s->id, s->peer,
            why, s->n_txn_ok, s->n_txn_fail, (double)(now_ms(s) - s->t_connect) / 1000.0, in);
    uv_timer_stop(&s->timer);
    if (s->reading)
        uv_read_stop((uv_stream_t *)s->tcp);
    uv_shutdown_t *req = malloc(sizeof *req);
    if (req) {
        req->data = s;
        if (uv_shutdown(req, (uv_stream_t *)s->tcp, sess_shutdown_done) == 0) {
            /* the shutdown waits for the queued replies: bounded by timeouts.idle */
            s->timer.data = s;
            uv_timer_start(&s->timer, sess_linger_expired, s->srv->cfg->t_idle, 0);
            return;
        }
        free(req);
    }
    uv_close((uv_handle_t *)&s->timer, sess_handle_closed);
    uv_close((uv_handle_t *)s->tcp, sess_handle_closed);
}

/* ------------------------------------------------------------- public API */

static void peer_name(uv_tcp_t *tcp, struct sockaddr_storage *ss, char *out, size_t cap)
{
    int len = sizeof *ss;
    mxg_str_copy(out, cap, "?");
    memset(ss, 0, sizeof *ss);
    if (uv_tcp_getpeername(tcp, (struct sockaddr *)ss, &len) != 0)
        return;
    if (ss->ss_family == AF_INET && cap >= 16) /* INET_ADDRSTRLEN */
        mxg_ntoa_ip4(&((struct sockaddr_in *)ss)->sin_addr, out);
    else if (ss->ss_family == AF_INET)
        uv_ip4_name((struct sockaddr_in *)ss, out, cap);
    else if (ss->ss_family == AF_INET6)
        uv_ip6_name((struct sockaddr_in6 *)ss, out, cap);
}

void mxg_session_start(struct mxg_server *srv, uv_tcp_t *client, int queue_mode, int acl_ok,
                       int over_limit)
{
    /* 6.5 KB, most of it the transaction's sticky reply text: zeroed as txn_zero says */
    struct mxg_session *s = malloc(sizeof *s);
    if (!s) {
        uv_close((uv_handle_t *)client, (uv_close_cb)free);
        return;
    }
    memset(s, 0, offsetof(struct mxg_session, txn));
    txn_zero(&s->txn);
    MXG_ZERO_AFTER(s, struct mxg_session, txn);
    s->srv = srv;
    s->queue_mode = queue_mode;
    s->tcp = client;
    client->data = s;
    uv_timer_init(srv->loop, &s->timer);
    s->timer.data = s;
    s->handles = 2;
    if (srv->n_workers > 1) /* unique across the workers: "S<worker>-<count>" */
        snprintf(s->id, sizeof s->id, "S%d-%06lX", srv->worker, ++srv->next_id);
    else
        snprintf(s->id, sizeof s->id, "S%06lX", ++srv->next_id);
    peer_name(client, &s->peer_sa, s->peer, sizeof s->peer);
    s->loopback = mxg_addr_is_loopback((const struct sockaddr *)&s->peer_sa);
    s->t_connect = uv_now(srv->loop);
    snprintf(s->helo, sizeof s->helo, "unknown");
    s->helo_plain = 1;
    s->next = srv->sessions;
    if (srv->sessions)
        srv->sessions->prev = s;
    srv->sessions = s;
    srv->n_sessions++;
    mxg_server_session_added(srv);
    if (!acl_ok) {
        LOG_W("smtp", "%s: rejected client %s: not in server.allow_networks", s->id, s->peer);
        sess_reply(s, 554, "5.7.1", "%s: client %s is not allowed to relay", srv->hostname,
                   s->peer);
        sess_close(s, "not allowed");
        return;
    }
    if (over_limit) {
        LOG_W("smtp", "%s: rejected client %s: server.max_sessions (%d) reached", s->id, s->peer,
              srv->cfg->max_sessions);
        sess_reply(s, 421, "4.7.0", "%s Too many sessions, try again later", srv->hostname);
        sess_close(s, "too many sessions");
        return;
    }
    s->req = mxg_inbound_requirement(srv->cfg, (const struct sockaddr *)&s->peer_sa);
    LOG_D("smtp", "%s: connect from %s%s%s", s->id, s->peer, queue_mode ? " (queue mode)" : "",
          s->req == MXG_REQ_AUTH  ? " (AUTH required)"
          : s->req == MXG_REQ_TLS ? " (STARTTLS required)"
                                  : "");
    sess_reply(s, 220, "", "%s ESMTP mxguard", srv->hostname);
    sess_arm_timer(s);
    sess_update_reading(s);
}

void mxg_session_drain(struct mxg_session *s)
{
    s->drain_requested = 1;
    if (!s->txn.active && s->wait == SW_NONE && s->st != SS_CLOSING) {
        sess_reply(s, 421, "4.3.2", "%s Service shutting down, try again later",
                   s->srv->hostname);
        sess_close(s, "draining");
    }
}

void mxg_session_kill(struct mxg_session *s)
{
    if (s->st != SS_CLOSING) {
        sess_reply(s, 421, "4.3.2", "%s Service shutting down", s->srv->hostname);
        sess_close(s, "drain deadline");
    }
    /* the deadline is hard: a shutdown still waiting behind replies the client does not
     * read (the linger, bounded only by timeouts.idle) ends now */
    if (!uv_is_closing((uv_handle_t *)s->tcp) &&
        uv_stream_get_write_queue_size((uv_stream_t *)s->tcp) > 0)
        uv_close((uv_handle_t *)s->tcp, sess_handle_closed); /* cancels the shutdown */
}

struct mxg_session *mxg_session_next(struct mxg_session *s)
{
    return s->next;
}

static void sess_unlink(struct mxg_server *srv, struct mxg_session *s)
{
    if (s->prev)
        s->prev->next = s->next;
    else
        srv->sessions = s->next;
    if (s->next)
        s->next->prev = s->prev;
    srv->n_sessions--;
}
