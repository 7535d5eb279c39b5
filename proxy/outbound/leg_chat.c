/* proxy/outbound/leg_chat.c — bytes in and out of the leg's connection: writes
 * (through TLS once it is up), command lines, reads, and splitting input
 * into reply lines. Like Postfix smtp_chat.c; see leg_int.h. */
#include "leg_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../core/log.h"
#include "../../core/str.h"
#include "../../core/metrics.h"
#include "../../core/show.h"

struct wreq {
    uv_write_t req;
    struct conn *conn;
    size_t len;
    char data[];
};

/* uv_write finished: account the bytes, wake a writer waiting for on_drain. */
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

/* One write of bytes as they are (ciphertext or plaintext) on c: straight to
 * the socket when nothing is queued (uv_try_write refuses while something is,
 * so the order holds), the rest queued with uv_write. Not uv_write alone: a
 * uv_write that completes at once re-arms the socket's epoll entry when its
 * callback runs (libuv 1.44), one epoll_ctl per command. A write error is left
 * to uv_write, which reports it as before (the read side sees the loss). */
static int conn_write(struct mxg_leg *leg, struct conn *c, const void *p, size_t n)
{
    mxg_metrics_inc(leg->env->metrics, MXG_M_UPSTREAM_WRITES, NULL);
    if (leg->env->write_fault && leg->env->write_fault(leg->env->write_fault_arg, p, n))
        return -1; /* a test's allocation failure */
    uv_buf_t b0 = uv_buf_init((char *)p, (unsigned)n);
    int k = uv_try_write((uv_stream_t *)&c->tcp, &b0, 1);
    if (k == (int)n)
        return 0;
    if (k > 0) {
        p = (const char *)p + k;
        n -= (size_t)k;
    }
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

/* Queue bytes on the TCP connection as they are: held while corked, else written now. */
static int raw_send(struct mxg_leg *leg, const void *p, size_t n)
{
    struct conn *c = leg->conn;
    if (!c || n == 0)
        return c ? 0 : -1;
    if (leg->corked > 0)
        return mxg_buf_append(&leg->wout, p, n);
    return conn_write(leg, c, p, n);
}

/* Hold what the leg sends from now on (leg_int.h). */
void leg_cork(struct mxg_leg *leg)
{
    leg->corked++;
}

/* Send what is held in one write, corked or not (leg_int.h). */
int leg_send_held(struct mxg_leg *leg)
{
    size_t n = mxg_buf_avail(&leg->wout);
    int rc = 0;
    if (n > 0)
        rc = leg->conn ? conn_write(leg, leg->conn, mxg_buf_head(&leg->wout), n) : -1;
    mxg_buf_reset(&leg->wout);
    return rc;
}

/* End one cork level; the last sends what is held (leg_int.h). */
int leg_uncork(struct mxg_leg *leg)
{
    if (leg->corked > 0 && --leg->corked > 0)
        return 0;
    return leg_send_held(leg);
}

/* Send whatever the TLS engine has produced, in one write. */
int leg_flush_tls(struct mxg_leg *leg)
{
    char tmp[16384];
    int rc = 0;
    leg_cork(leg);
    while (mxg_tls_out_pending(leg->tls) > 0) {
        size_t n = mxg_tls_take_out(leg->tls, tmp, sizeof tmp);
        if (n == 0)
            break;
        if (raw_send(leg, tmp, n) < 0) {
            rc = -1;
            break;
        }
    }
    if (leg_uncork(leg) < 0)
        rc = -1;
    return rc;
}

/* Send plaintext protocol bytes (through TLS when it is up). */
int leg_send(struct mxg_leg *leg, const void *p, size_t n)
{
    if (leg->tls && mxg_tls_handshake_done(leg->tls)) {
        if (mxg_tls_write(leg->tls, p, n) != MXG_TLS_OK)
            return -1;
        return leg_flush_tls(leg);
    }
    return raw_send(leg, p, n);
}

/* Send one command line, enter state next and arm the per-command timer. */
int leg_cmd(struct mxg_leg *leg, enum leg_state next, uint64_t timeout, const char *fmt, ...)
{
    char line[1200];
    va_list ap;
    va_start(ap, fmt);
    int n = mxg_str_vformat(line, sizeof line - 2, fmt, ap);
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
    } else if (leg_in_setup(leg)) {
        leg_cand_failed(leg, FK_PROTOCOL, "%s", r->text);
    } else {
        LOG_I("upstream", "%s %s: %s", leg->sid, leg->domain, r->text);
        leg_fail(leg, r);
    }
}

/* Split buffered plaintext into reply lines (leg_int.h). */
void leg_parse_input(struct mxg_leg *leg)
{
    while (leg->conn && mxg_buf_avail(&leg->in) > 0) {
        if (leg->rcpt_early && leg->st == LEG_RCPT)
            return; /* nobody asked for it yet: mxg_leg_rcpt parses it */
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
                          leg_cur_label(leg, lbl, sizeof lbl), MXG_REPLY_LINE_MAX);
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
            /* exactly the octets received, made printable
             * (docs/ARCHITECTURE.md §Protocol violations) */
            mxg_reply_set(&r, 451, "4.5.0", "%s sent a malformed reply: %s",
                          leg_cur_label(leg, lbl, sizeof lbl), mxg_show(line, ll).s);
            reply_broken(leg, &r);
            return;
        }
        if (rc == 1) {
            struct mxg_reply r = leg->rp.r;
            leg_on_reply(leg, &r);
        }
    }
}

/* libuv read buffer: one static slab, consumed at once by leg_conn_read. */
void leg_conn_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    (void)suggested;
    static char slab[65536]; /* single-threaded loop: read_cb consumes it at once */
    *buf = uv_buf_init(slab, sizeof slab);
}

/* Bytes from the MX (or an idle cached connection): through TLS, then leg_parse_input. */
void leg_conn_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct conn *c = s->data;
    struct mxg_leg *leg = c->leg;
    if (!leg && c->pk && n != 0) {
        leg_parked_input(c, n, buf);
        return;
    }
    if (!leg || n == 0)
        return;
    if (n < 0) {
        leg_conn_lost(leg, "Lost connection");
        return;
    }
    if (leg->tls) {
        if (mxg_tls_feed(leg->tls, buf->base, (size_t)n) != MXG_TLS_OK) {
            leg_conn_lost(leg, "TLS failure");
            return;
        }
        if (!mxg_tls_handshake_done(leg->tls)) {
            leg_cork(leg); /* the handshake's last flight and EHLO in one write */
            leg_tls_step(leg);
            if (leg_uncork(leg) < 0 && leg->conn) { /* as each write's own failure would */
                if (leg->st == LEG_TLS_HANDSHAKE)
                    leg_tls_failed(leg, "write failed");
                else
                    leg_txn_lost(leg, "Write failed");
                return;
            }
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
            leg_parse_input(leg);
            if (leg->conn && leg->st != LEG_FAILED)
                leg_conn_lost(leg, rc == MXG_TLS_EOF ? "TLS closed" : "TLS error");
            return;
        }
    } else {
        mxg_buf_append(&leg->in, buf->base, (size_t)n);
    }
    leg_parse_input(leg);
}
