/* proxy/session.c — the inbound ESMTP session; see session.h.
 *
 * Shape (after OpenSMTPD's smtp_session.c): a state enum with a name table
 * and one transition function; a command table whose entries have a check
 * step (state, syntax, limits — may answer and stop) and a proceed step;
 * pipelined commands are taken one at a time from the input buffer, and
 * processing pauses while a command waits for its upstream leg.
 *
 * Transaction shape (DESIGN §1): a transaction holds up to MXG_MAX_LEGS
 * upstream legs, one per destination domain; this build allows one, so a
 * RCPT for a second domain gets 452 4.5.3. */
#include "session.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "../core/log.h"
#include "buf.h"
#include "data_filter.h"
#include "server.h"
#include "smtp_parse.h"
#include "upstream.h"

#define MXG_MAX_LEGS 1
#define SESS_IN_CAP (256 * 1024) /* stop reading the client beyond this */

enum sess_state { SS_CONNECTED = 0, SS_READY, SS_MAIL, SS_RCPT, SS_DATA, SS_CLOSING };
static const char *const sess_state_names[] = {"connected", "ready", "mail", "rcpt", "data",
                                               "closing"};

/* What the session waits for (processing of client input is paused). */
enum sess_wait { SW_NONE = 0, SW_LEG_OPEN, SW_RCPT, SW_DATA, SW_DOT };
static const char *const sess_wait_names[] = {"none", "leg-open", "rcpt", "data", "dot"};

struct rcpt {
    char addr[MXG_PATH_MAX];
    char domain[MXG_DOMAIN_MAX + 1];
    struct mxg_rcpt_params rp;
    int accepted;
};

struct leg_slot {
    struct mxg_leg *leg;
    char domain[MXG_DOMAIN_MAX + 1];
    int accepted; /* recipients accepted on this leg */
};

struct txn {
    int active;
    char id[48];
    char from[MXG_PATH_MAX];
    struct mxg_mail_params mp;
    struct rcpt *rcpts;
    int n_rcpts, cap_rcpts, n_accepted;
    struct leg_slot legs[MXG_MAX_LEGS];
    int n_legs;
    int cur_rcpt;          /* RCPT waiting for its reply */
    int cur_leg;           /* its leg slot */
    struct mxg_data_filter df;
    struct mxg_buf out;    /* filtered DATA waiting to be written */
    struct mxg_reply sticky; /* first failure during DATA; sticky.code == 0: none */
    uint64_t t_start;
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
    char helo[256];
    int esmtp;
    struct mxg_buf in;
    int reading;
    int paused;          /* upstream back-pressure */
    int discard_line;    /* skipping the rest of an overlong command line */
    int errors;
    int drain_requested;
    unsigned txn_seq;
    unsigned long n_txn_ok, n_txn_fail;
    uint64_t t_connect;
    struct txn txn;
};

static void sess_process(struct mxg_session *s);
static void sess_update_reading(struct mxg_session *s);
static void sess_close(struct mxg_session *s, const char *why);
static void sess_unlink(struct mxg_server *srv, struct mxg_session *s);

/* ------------------------------------------------------------- plumbing */

static void sess_set_state(struct mxg_session *s, enum sess_state st)
{
    if (s->st != st)
        LOG_D("smtp", "%s: %s -> %s", s->id, sess_state_names[s->st], sess_state_names[st]);
    s->st = st;
}

static void sess_set_wait(struct mxg_session *s, enum sess_wait w)
{
    if (s->wait != w)
        LOG_D("smtp", "%s: wait %s -> %s", s->id, sess_wait_names[s->wait], sess_wait_names[w]);
    s->wait = w;
    if (w != SW_NONE) /* the upstream leg's own timeouts apply while we wait */
        uv_timer_stop(&s->timer);
}

struct swreq {
    uv_write_t req;
    char data[];
};

static void swreq_done(uv_write_t *req, int status)
{
    (void)status;
    free(req);
}

static void sess_send(struct mxg_session *s, const char *p, size_t n)
{
    if (s->st == SS_CLOSING && s->handles == 0)
        return;
    if (uv_is_closing((uv_handle_t *)s->tcp))
        return;
    struct swreq *w = malloc(sizeof *w + n);
    if (!w)
        return;
    memcpy(w->data, p, n);
    uv_buf_t b = uv_buf_init(w->data, (unsigned)n);
    if (uv_write(&w->req, (uv_stream_t *)s->tcp, &b, 1, swreq_done) < 0)
        free(w);
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
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    mxg_reply_set(&r, code, enh, "%s", text);
    char out[MXG_REPLY_TEXT_MAX + 1024];
    size_t n = mxg_reply_render(&r, out, sizeof out);
    LOG_D("smtp", "%s -> %03d %s %s", s->id, code, enh, text);
    sess_send(s, out, n);
    if (code >= 500 && code != 554 && code != 552)
        s->errors++;
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

static void on_timeout(uv_timer_t *t)
{
    struct mxg_session *s = t->data;
    LOG_I("smtp", "%s: timeout in state %s from %s", s->id, sess_state_names[s->st], s->peer);
    sess_reply(s, 421, "4.4.2", "%s Error: timeout exceeded", s->srv->hostname);
    sess_close(s, "timeout");
}

static void sess_arm_timer(struct mxg_session *s)
{
    if (s->st == SS_CLOSING)
        return;
    if (s->wait != SW_NONE) {
        uv_timer_stop(&s->timer);
        return;
    }
    uint64_t t = s->st == SS_DATA ? s->srv->cfg->t_data : s->srv->cfg->t_idle;
    uv_timer_start(&s->timer, on_timeout, t, 0);
}

/* --------------------------------------------------------- transactions */

static void leg_on_reply(void *arg, struct mxg_leg *leg, const struct mxg_reply *r);
static void leg_on_drain(void *arg, struct mxg_leg *leg);
static const struct mxg_leg_cbs leg_cbs = {leg_on_reply, leg_on_drain};

static void txn_reset(struct mxg_session *s)
{
    struct txn *t = &s->txn;
    for (int i = 0; i < t->n_legs; i++)
        mxg_leg_close(t->legs[i].leg);
    free(t->rcpts);
    mxg_buf_free(&t->out);
    memset(t, 0, sizeof *t);
    s->paused = 0;
    if (s->st != SS_CLOSING && s->st != SS_CONNECTED)
        sess_set_state(s, SS_READY);
}

static void txn_log(struct mxg_session *s, const struct mxg_reply *final)
{
    struct txn *t = &s->txn;
    char sum[300];
    mxg_reply_summary(final, sum, sizeof sum);
    struct mxg_leg_info li = {0};
    if (t->n_legs > 0)
        mxg_leg_get_info(t->legs[0].leg, &li);
    double dur = (double)(now_ms(s) - t->t_start) / 1000.0;
    LOG_I("smtp",
          "%s: client=%s from=<%s> rcpts=%d/%d domain=%s mx=%s[%s] tls=%s%s%s peer=%s "
          "size=%llu reply=\"%s\" duration=%.3fs",
          t->id, s->peer, t->from, t->n_accepted, t->n_rcpts, li.domain ? li.domain : "-",
          li.mx_host && li.mx_host[0] ? li.mx_host : "-", li.mx_addr ? li.mx_addr : "",
          li.tls_version ? li.tls_version : "plaintext", li.tls_version ? " " : "",
          li.tls_version ? li.tls_cipher : "", li.verified ? li.verified : "-",
          (unsigned long long)t->df.size, sum, dur);
    if (final->code / 100 == 2)
        s->n_txn_ok++;
    else
        s->n_txn_fail++;
}

static void write_received(struct mxg_session *s)
{
    struct txn *t = &s->txn;
    char date[64];
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S %z", &tm);
    const char *with = t->mp.smtputf8 ? "UTF8SMTP" : s->esmtp ? "ESMTP" : "SMTP";
    int v6 = strchr(s->peer, ':') != NULL;
    mxg_buf_printf(&t->out, "Received: from %s ([%s%s])\r\n\tby %s (mxguard) with %s id %s",
                   s->helo, v6 ? "IPv6:" : "", s->peer, s->srv->hostname, with, t->id);
    if (t->n_accepted == 1) {
        for (int i = 0; i < t->n_rcpts; i++)
            if (t->rcpts[i].accepted)
                mxg_buf_printf(&t->out, "\r\n\tfor <%s>", t->rcpts[i].addr);
    }
    mxg_buf_printf(&t->out, ";\r\n\t%s\r\n", date);
}

/* Send what the filter produced to the leg; pause the client if it lags. */
static void data_flush(struct mxg_session *s)
{
    struct txn *t = &s->txn;
    if (mxg_buf_avail(&t->out) == 0)
        return;
    if (t->sticky.code || mxg_data_filter_failed(&t->df) || t->n_legs == 0) {
        mxg_buf_reset(&t->out);
        return;
    }
    int rc = mxg_leg_write(t->legs[0].leg, mxg_buf_head(&t->out), mxg_buf_avail(&t->out));
    mxg_buf_reset(&t->out);
    if (rc < 0) {
        t->sticky = *mxg_leg_error(t->legs[0].leg);
        if (t->sticky.code == 0)
            mxg_reply_set(&t->sticky, 451, "4.4.2", "Upstream connection lost during DATA");
    } else if (rc == 1) {
        s->paused = 1;
        sess_update_reading(s);
    }
}

/* The client sent <CRLF>.<CRLF>: decide, then forward the dot or refuse. */
static void data_end(struct mxg_session *s)
{
    struct txn *t = &s->txn;
    struct mxg_data_filter *df = &t->df;
    struct mxg_reply r = {0};
    struct mxg_leg_info li = {0};
    mxg_leg_get_info(t->legs[0].leg, &li);
    LOG_D("smtp", "%s: end of data, %llu octets, longest line %zu, %u bare line ends", s->id,
          (unsigned long long)df->size, df->longest_line, df->bare_eol);
    if (df->too_many_received)
        mxg_reply_set(&r, 554, "5.4.6", "Too many Received: headers (%d): mail loop?",
                      df->received);
    else if (df->too_big)
        mxg_reply_set(&r, 552, "5.3.4", "Message size exceeds fixed limit of %llu octets",
                      (unsigned long long)s->srv->cfg->message_size);
    else if (df->too_long)
        mxg_reply_set(&r, 554, "5.6.0", "Message has a text line longer than %d octets",
                      s->srv->cfg->data_line_max);
    else if (li.need_7bit && df->eight_bit)
        mxg_reply_set(&r, 554, "5.6.3",
                      "8-bit message, but %s[%s] does not support 8BITMIME", li.mx_host,
                      li.mx_addr);
    else if (t->sticky.code)
        r = t->sticky;
    if (r.code) {
        txn_log(s, &r);
        sess_relay(s, &r);
        txn_reset(s); /* closes the leg without the final dot: nothing delivered */
        return;
    }
    if (mxg_leg_end_data(t->legs[0].leg) < 0) {
        r = *mxg_leg_error(t->legs[0].leg);
        txn_log(s, &r);
        sess_relay(s, &r);
        txn_reset(s);
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
        data_flush(s);
    }
    if (mxg_data_filter_done(&t->df))
        data_end(s);
}

/* ---------------------------------------------------------- leg events */

static int slot_index(struct mxg_session *s, struct mxg_leg *leg)
{
    for (int i = 0; i < s->txn.n_legs; i++)
        if (s->txn.legs[i].leg == leg)
            return i;
    return -1;
}

static void slot_remove(struct mxg_session *s, int i)
{
    struct txn *t = &s->txn;
    mxg_leg_close(t->legs[i].leg);
    t->legs[i] = t->legs[t->n_legs - 1];
    t->n_legs--;
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
}

static void leg_on_reply(void *arg, struct mxg_leg *leg, const struct mxg_reply *r)
{
    struct mxg_session *s = arg;
    struct txn *t = &s->txn;
    int li = slot_index(s, leg);
    if (li < 0)
        return;
    switch (s->wait) {
    case SW_LEG_OPEN:
        if (r->code / 100 == 2) {
            struct rcpt *rc = &t->rcpts[t->cur_rcpt];
            if (mxg_leg_rcpt(leg, rc->addr, &rc->rp) == 0) {
                sess_set_wait(s, SW_RCPT);
                return;
            }
            r = mxg_leg_error(leg);
        }
        sess_relay(s, r); /* the leg could not be opened: this RCPT fails */
        slot_remove(s, li);
        break;
    case SW_RCPT:
        sess_relay(s, r);
        if (r->code / 100 == 2) {
            t->rcpts[t->cur_rcpt].accepted = 1;
            t->n_accepted++;
            t->legs[li].accepted++;
            sess_set_state(s, SS_RCPT);
        }
        break;
    case SW_DATA:
        if (r->code == 354) {
            sess_set_state(s, SS_DATA);
            mxg_data_filter_init(&t->df, s->srv->cfg->message_size,
                                 (size_t)s->srv->cfg->data_line_max, s->srv->cfg->max_received);
            write_received(s);
            sess_reply(s, 354, "", "End data with <CR><LF>.<CR><LF>");
            sess_set_wait(s, SW_NONE);
            data_flush(s);
            data_input(s);
            if (s->wait == SW_NONE) {
                sess_arm_timer(s);
                sess_update_reading(s);
            }
            return;
        }
        txn_log(s, r);
        sess_relay(s, r);
        txn_reset(s);
        break;
    case SW_DOT:
        txn_log(s, r);
        sess_relay(s, r);
        txn_reset(s);
        break;
    case SW_NONE:
        return;
    }
    resume(s);
}

static void leg_on_drain(void *arg, struct mxg_leg *leg)
{
    struct mxg_session *s = arg;
    (void)leg;
    if (s->paused) {
        s->paused = 0;
        sess_update_reading(s);
    }
}

/* ------------------------------------------------------------- commands */

struct cmd_ctx {
    struct mxg_cmd cmd;
    struct mxg_path path;
};

static void helo_proceed(struct mxg_session *s, struct cmd_ctx *c)
{
    const struct mxg_config *cfg = s->srv->cfg;
    txn_reset(s);
    snprintf(s->helo, sizeof s->helo, "%.*s", (int)c->cmd.arg_len, c->cmd.arg);
    for (char *p = s->helo; *p; p++)
        if (*p == ' ' || *p == '\t' || (unsigned char)*p < 33)
            *p = '_';
    s->esmtp = c->cmd.verb == MXG_V_EHLO;
    sess_set_state(s, SS_READY);
    if (!s->esmtp) {
        sess_reply(s, 250, "", "%s", s->srv->hostname);
        return;
    }
    sess_reply(s, 250, "",
               "%s\nPIPELINING\nSIZE %llu\n8BITMIME\nENHANCEDSTATUSCODES\nSMTPUTF8\nDSN",
               s->srv->hostname, (unsigned long long)cfg->message_size);
}

static int helo_check(struct mxg_session *s, struct cmd_ctx *c)
{
    if (c->cmd.arg_len == 0) {
        sess_reply(s, 501, "5.5.4", "Syntax: %s hostname", mxg_verb_name(c->cmd.verb));
        return -1;
    }
    return 0;
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
    int rc = mxg_path_parse(c->cmd.arg, c->cmd.arg_len, 1, &c->path);
    struct mxg_mail_params mp;
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
    snprintf(t->from, sizeof t->from, "%s", c->path.addr);
    snprintf(t->id, sizeof t->id, "%s.%u", s->id, ++s->txn_seq);
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
    if (mxg_domain_alabel(c->path.domain, r->domain, sizeof r->domain) < 0) {
        sess_reply(s, 553, "5.1.2", "Recipient domain is not a valid IDN");
        return;
    }
    snprintf(r->addr, sizeof r->addr, "%s", c->path.addr);
    mxg_rcpt_params_check(&c->path, &r->rp);
    int idx = t->n_rcpts++;
    t->cur_rcpt = idx;

    /* An existing leg for this domain? */
    for (int i = 0; i < t->n_legs; i++) {
        if (strcasecmp(t->legs[i].domain, r->domain) != 0)
            continue;
        if (mxg_leg_rcpt(t->legs[i].leg, r->addr, &r->rp) == 0) {
            t->cur_leg = i;
            sess_set_wait(s, SW_RCPT);
            return;
        }
        if (t->legs[i].accepted > 0) { /* the leg died with recipients on it */
            sess_relay(s, mxg_leg_error(t->legs[i].leg));
            return;
        }
        slot_remove(s, i); /* dead before any recipient: try a fresh one */
        break;
    }
    if (t->n_legs >= MXG_MAX_LEGS) {
        sess_reply(s, 452, "4.5.3",
                   "Recipients for %s must go in another transaction (this one is for %s)",
                   r->domain, t->legs[0].domain);
        return;
    }
    struct mxg_leg *leg = mxg_leg_open(&s->srv->upenv, t->id, r->domain, t->from, &t->mp,
                                       &leg_cbs, s);
    if (!leg) {
        sess_reply(s, 451, "4.3.0", "Cannot start delivery to %s", r->domain);
        return;
    }
    struct leg_slot *sl = &t->legs[t->n_legs++];
    memset(sl, 0, sizeof *sl);
    sl->leg = leg;
    snprintf(sl->domain, sizeof sl->domain, "%s", r->domain);
    t->cur_leg = t->n_legs - 1;
    sess_set_wait(s, SW_LEG_OPEN);
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
    if (mxg_leg_data(t->legs[0].leg) < 0) {
        const struct mxg_reply *r = mxg_leg_error(t->legs[0].leg);
        txn_log(s, r);
        sess_relay(s, r);
        txn_reset(s);
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
               "HELP");
}

static void notimpl_proceed(struct mxg_session *s, struct cmd_ctx *c)
{
    sess_reply(s, 502, "5.5.1", "%s not implemented", mxg_verb_name(c->cmd.verb));
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
    {MXG_V_HELP, noarg_check, help_proceed},    {MXG_V_STARTTLS, noarg_check, notimpl_proceed},
    {MXG_V_AUTH, noarg_check, notimpl_proceed}, {MXG_V_BDAT, noarg_check, notimpl_proceed},
};

static void sess_command(struct mxg_session *s, const char *line, size_t len)
{
    struct cmd_ctx c;
    memset(&c, 0, sizeof c);
    int rc = mxg_cmd_parse(line, len, &c.cmd);
    LOG_D("smtp", "%s <- %.*s", s->id, (int)(len > 200 ? 200 : len), line);
    if (rc != MXG_PE_OK) {
        const char *enh, *text;
        int code = mxg_parse_error_reply(rc, &enh, &text);
        sess_reply(s, code, enh, "%s", text);
        return;
    }
    size_t limit = (c.cmd.verb == MXG_V_MAIL || c.cmd.verb == MXG_V_RCPT) ? MXG_PATH_LINE_MAX
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

/* Take complete command lines from the input while nothing is pending. */
static void sess_process(struct mxg_session *s)
{
    while (s->st != SS_CLOSING && s->wait == SW_NONE) {
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
                sess_reply(s, 500, "5.5.2", "Line too long");
                s->discard_line = 1;
                mxg_buf_reset(&s->in);
            }
            return;
        }
        size_t ll = (size_t)(nl - head);
        size_t consumed = ll + 1;
        if (ll > 0 && head[ll - 1] == '\r')
            ll--;
        char line[MXG_PATH_LINE_MAX + 2];
        int toolong = ll > MXG_PATH_LINE_MAX;
        memcpy(line, head, toolong ? 0 : ll);
        mxg_buf_consume(&s->in, consumed);
        if (toolong)
            sess_reply(s, 500, "5.5.2", "Line too long");
        else
            sess_command(s, line, ll);
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
    if (n < 0) {
        if (s->st == SS_DATA || s->txn.active)
            LOG_I("smtp", "%s: client %s vanished in state %s (%s); transaction abandoned",
                  s->id, s->peer, sess_state_names[s->st], uv_strerror((int)n));
        sess_close(s, n == UV_EOF ? "client closed" : uv_strerror((int)n));
        return;
    }
    if (mxg_buf_append(&s->in, buf->base, (size_t)n) < 0) {
        sess_reply(s, 421, "4.3.0", "Out of memory");
        sess_close(s, "out of memory");
        return;
    }
    if (s->wait == SW_NONE)
        sess_arm_timer(s);
    sess_process(s);
    sess_update_reading(s);
}

static void sess_update_reading(struct mxg_session *s)
{
    if (s->st == SS_CLOSING)
        return;
    int want = !s->paused && mxg_buf_avail(&s->in) < SESS_IN_CAP;
    if (want && !s->reading) {
        uv_read_start((uv_stream_t *)s->tcp, sess_alloc, sess_read);
        s->reading = 1;
    } else if (!want && s->reading) {
        uv_read_stop((uv_stream_t *)s->tcp);
        s->reading = 0;
    }
}

static void sess_handle_closed(uv_handle_t *h)
{
    struct mxg_session *s = h->data;
    if (--s->handles > 0)
        return;
    mxg_buf_free(&s->in);
    free(s->tcp);
    struct mxg_server *srv = s->srv;
    sess_unlink(srv, s);
    mxg_server_session_gone(srv, s);
    free(s);
}

static void sess_shutdown_done(uv_shutdown_t *req, int status)
{
    (void)status;
    struct mxg_session *s = req->data;
    free(req);
    uv_close((uv_handle_t *)s->tcp, sess_handle_closed);
}

static void sess_close(struct mxg_session *s, const char *why)
{
    if (s->st == SS_CLOSING)
        return;
    if (s->txn.active && s->wait != SW_NONE)
        LOG_I("smtp", "%s: closing with transaction %s in progress; nothing was accepted",
              s->id, s->txn.id);
    txn_reset(s);
    sess_set_state(s, SS_CLOSING);
    LOG_I("smtp", "%s: disconnect from %s (%s): %lu delivered, %lu failed, %.3fs", s->id,
          s->peer, why, s->n_txn_ok, s->n_txn_fail,
          (double)(now_ms(s) - s->t_connect) / 1000.0);
    uv_timer_stop(&s->timer);
    uv_close((uv_handle_t *)&s->timer, sess_handle_closed);
    if (s->reading)
        uv_read_stop((uv_stream_t *)s->tcp);
    uv_shutdown_t *req = malloc(sizeof *req);
    if (req) {
        req->data = s;
        if (uv_shutdown(req, (uv_stream_t *)s->tcp, sess_shutdown_done) == 0)
            return;
        free(req);
    }
    uv_close((uv_handle_t *)s->tcp, sess_handle_closed);
}

/* ------------------------------------------------------------- public API */

static void peer_name(uv_tcp_t *tcp, char *out, size_t cap)
{
    struct sockaddr_storage ss;
    int len = sizeof ss;
    snprintf(out, cap, "?");
    if (uv_tcp_getpeername(tcp, (struct sockaddr *)&ss, &len) != 0)
        return;
    if (ss.ss_family == AF_INET)
        uv_ip4_name((struct sockaddr_in *)&ss, out, cap);
    else if (ss.ss_family == AF_INET6)
        uv_ip6_name((struct sockaddr_in6 *)&ss, out, cap);
}

void mxg_session_start(struct mxg_server *srv, uv_tcp_t *client, int acl_ok, int over_limit)
{
    struct mxg_session *s = calloc(1, sizeof *s);
    if (!s) {
        uv_close((uv_handle_t *)client, (uv_close_cb)free);
        return;
    }
    s->srv = srv;
    s->tcp = client;
    client->data = s;
    uv_timer_init(srv->loop, &s->timer);
    s->timer.data = s;
    s->handles = 2;
    snprintf(s->id, sizeof s->id, "S%06lX", ++srv->next_id);
    peer_name(client, s->peer, sizeof s->peer);
    s->t_connect = uv_now(srv->loop);
    snprintf(s->helo, sizeof s->helo, "unknown");
    s->next = srv->sessions;
    if (srv->sessions)
        srv->sessions->prev = s;
    srv->sessions = s;
    srv->n_sessions++;
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
    LOG_I("smtp", "%s: connect from %s", s->id, s->peer);
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
