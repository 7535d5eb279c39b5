/* proxy/outbound/outbound.c — one message, one destination domain, one leg, no
 * inbound session; see outbound.h.
 *
 * State machine (explicit enum, one transition per leg reply):
 *   OPEN  (leg opening: DNS, policy, connect, EHLO, STARTTLS, MAIL)
 *   RCPT  (one RCPT at a time, reply stored per recipient)
 *   DATA  (354 expected)
 *   BODY  (memory: written in chunks; fd: uv_fs_read chunks) — pauses when
 *         mxg_leg_write() returns 1 and resumes in on_drain
 *   DOT   (final reply)
 *   DONE
 * done() runs from finish(), which is only ever reached from a loop
 * callback (leg on_reply / on_drain, uv_fs_read completion, the defer
 * timer), never from mxg_outbound_start(). */
#include "outbound.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../core/log.h"

#define OB_CHUNK (64 * 1024)

enum ob_state { OB_OPEN = 0, OB_RCPT, OB_DATA, OB_BODY, OB_DOT, OB_DONE };
static const char *const ob_state_names[] = {"open", "rcpt", "data", "body", "dot", "done"};

struct mxg_outbound {
    const struct mxg_upstream_env *env;
    struct mxg_outbound_req *req;
    struct mxg_leg *leg;
    enum ob_state st;
    int cur;              /* recipient being asked */
    int n_accepted;
    unsigned char *accepted; /* per recipient */
    int first_fail;       /* index of the first refused recipient, -1 */
    /* body */
    size_t off;           /* bytes of the body handed to the leg */
    char tail[2];         /* last two bytes written (CRLF check) */
    int paused;           /* waiting for on_drain */
    uv_fs_t fs;
    int fs_busy;          /* a uv_fs_read is in flight */
    char *chunk;          /* fd mode read buffer */
    int fd;               /* fd mode: our dup of req->body_fd, else -1 */
    int cancelled;
    uint64_t t_start;
    char id[64];
    char mx[320];
    char tls[120];
    int no_dsn;
};

static void ob_free(struct mxg_outbound *ob)
{
    if (ob->fd >= 0)
        close(ob->fd);
    free(ob->accepted);
    free(ob->chunk);
    free(ob);
}

static void ob_set_state(struct mxg_outbound *ob, enum ob_state st)
{
    if (ob->st != st)
        LOG_D("outbound", "%s %s: %s -> %s", ob->id, ob->req->domain,
              ob_state_names[ob->st], ob_state_names[st]);
    ob->st = st;
}

/* Remember where the leg went (for the log line), before it is closed. */
static void note_leg(struct mxg_outbound *ob)
{
    struct mxg_leg_info li;
    memset(&li, 0, sizeof li);
    mxg_leg_get_info(ob->leg, &li);
    if (li.mx_host && li.mx_host[0])
        snprintf(ob->mx, sizeof ob->mx, "%s[%s]", li.mx_host, li.mx_addr ? li.mx_addr : "");
    if (li.tls_version)
        snprintf(ob->tls, sizeof ob->tls, "%s %s", li.tls_version,
                 li.tls_cipher ? li.tls_cipher : "");
    ob->no_dsn = li.no_dsn;
}

/* The end: every recipient has its reply; tell the caller once. */
static void finish(struct mxg_outbound *ob, const struct mxg_reply *final)
{
    struct mxg_outbound_req *req = ob->req;
    struct mxg_reply fin = *final; /* final may point into the leg */
    note_leg(ob);
    ob_set_state(ob, OB_DONE);
    mxg_leg_close(ob->leg);
    ob->leg = NULL;
    char sum[300];
    mxg_reply_summary(&fin, sum, sizeof sum);
    double dur = (double)(uv_now(ob->env->loop) - ob->t_start) / 1000.0;
    LOG_I("outbound", "%s: from=<%s> domain=%s rcpts=%d/%d mx=%s tls=%s reply=\"%s\" "
                      "duration=%.3fs",
          ob->id, req->from, req->domain, ob->n_accepted, req->n_rcpts,
          ob->mx[0] ? ob->mx : "-", ob->tls[0] ? ob->tls : "plaintext", sum, dur);
    snprintf(req->mx, sizeof req->mx, "%s", ob->mx);
    snprintf(req->tls, sizeof req->tls, "%s", ob->tls);
    req->mx_no_dsn = ob->no_dsn;
    ob_free(ob);
    req->done(req->arg, req, &fin);
}

/* Recipients from index `from` on that have no reply yet get r; accepted
 * ones get r too when with_accepted (a failure after RCPT, or the dot). */
static void fill_replies(struct mxg_outbound *ob, int from, const struct mxg_reply *r,
                         int with_accepted)
{
    struct mxg_outbound_req *req = ob->req;
    for (int i = 0; i < req->n_rcpts; i++) {
        if (i >= from || (with_accepted && ob->accepted[i]))
            req->rcpts[i].reply = *r;
    }
}

/* The leg failed (or an operation could not start): everything not yet
 * answered, and every accepted recipient, gets the failure. */
static void fail(struct mxg_outbound *ob, const struct mxg_reply *r)
{
    struct mxg_reply copy = *r;
    if (copy.code == 0)
        mxg_reply_set(&copy, 451, "4.4.2", "Upstream connection lost");
    else if (copy.code / 100 == 2) /* a failed step never counts as delivered */
        mxg_reply_set(&copy, 451, "4.5.0", "Upstream transaction failed (protocol violation)");
    else
        mxg_reply_judge(r, ob_state_names[ob->st], &copy);
    fill_replies(ob, ob->st == OB_RCPT ? ob->cur : ob->st == OB_OPEN ? 0 : ob->req->n_rcpts,
                 &copy, 1);
    finish(ob, &copy);
}

static void fail_leg(struct mxg_outbound *ob)
{
    fail(ob, mxg_leg_error(ob->leg));
}

static void send_rcpt(struct mxg_outbound *ob)
{
    struct mxg_outbound_rcpt *rc = &ob->req->rcpts[ob->cur];
    ob_set_state(ob, OB_RCPT);
    if (mxg_leg_rcpt(ob->leg, rc->addr, rc->rp) < 0)
        fail_leg(ob);
}

static void body_pump(struct mxg_outbound *ob);

static void send_dot(struct mxg_outbound *ob)
{
    /* the dot must start a line: the body should end with CRLF (wire form) */
    if (ob->off > 0 && !(ob->tail[0] == '\r' && ob->tail[1] == '\n')) {
        int rc = mxg_leg_write(ob->leg, "\r\n", 2);
        if (rc < 0) {
            fail_leg(ob);
            return;
        }
    }
    ob_set_state(ob, OB_DOT);
    if (mxg_leg_end_data(ob->leg) < 0)
        fail_leg(ob);
}

/* Hand n bytes to the leg. Returns 0 (go on), 1 (paused) or -1 (finished
 * with a failure). */
static int body_write(struct mxg_outbound *ob, const char *p, size_t n)
{
    if (n == 0)
        return 0;
    struct mxg_reply r8;
    if (mxg_leg_body_check(ob->leg, mxg_body_8bit(p, n), &r8) < 0) {
        fail(ob, &r8); /* before the chunk: no 8-bit octet reaches the MX, no dot */
        return -1;
    }
    int rc = mxg_leg_write(ob->leg, p, n);
    if (rc < 0) {
        fail_leg(ob);
        return -1;
    }
    if (n >= 2) {
        ob->tail[0] = p[n - 2];
        ob->tail[1] = p[n - 1];
    } else {
        ob->tail[0] = ob->tail[1];
        ob->tail[1] = p[0];
    }
    ob->off += n;
    if (rc == 1) {
        ob->paused = 1;
        return 1;
    }
    return 0;
}

static void on_fs_read(uv_fs_t *f)
{
    struct mxg_outbound *ob = f->data;
    ssize_t n = f->result;
    uv_fs_req_cleanup(f);
    ob->fs_busy = 0;
    if (ob->cancelled) {
        ob_free(ob);
        return;
    }
    if (n < 0) {
        struct mxg_reply r;
        mxg_reply_set(&r, 451, "4.3.0", "Cannot read the message body: %s",
                      uv_strerror((int)n));
        fail(ob, &r);
        return;
    }
    if (n == 0) {
        send_dot(ob);
        return;
    }
    if (body_write(ob, ob->chunk, (size_t)n) != 0)
        return; /* paused (on_drain resumes) or finished */
    body_pump(ob);
}

/* Write as much of the body as the leg takes; then the dot. */
static void body_pump(struct mxg_outbound *ob)
{
    struct mxg_outbound_req *req = ob->req;
    if (req->body_fd >= 0) {
        if (ob->fs_busy || ob->paused)
            return;
        uv_buf_t b = uv_buf_init(ob->chunk, OB_CHUNK);
        ob->fs.data = ob;
        int rc = uv_fs_read(ob->env->loop, &ob->fs, ob->fd, &b, 1, (int64_t)ob->off,
                            on_fs_read);
        if (rc < 0) {
            struct mxg_reply r;
            mxg_reply_set(&r, 451, "4.3.0", "Cannot read the message body: %s", uv_strerror(rc));
            fail(ob, &r);
            return;
        }
        ob->fs_busy = 1;
        return;
    }
    while (ob->off < req->body_len) {
        size_t n = req->body_len - ob->off;
        if (n > OB_CHUNK)
            n = OB_CHUNK;
        if (body_write(ob, req->body + ob->off, n) != 0)
            return;
    }
    send_dot(ob);
}

static void on_leg_reply(void *arg, struct mxg_leg *leg, const struct mxg_reply *r)
{
    struct mxg_outbound *ob = arg;
    struct mxg_outbound_req *req = ob->req;
    (void)leg;
    switch (ob->st) {
    case OB_OPEN:
        if (r->code / 100 != 2) {
            fail(ob, r);
            return;
        }
        ob->cur = 0;
        send_rcpt(ob);
        return;
    case OB_RCPT:
        req->rcpts[ob->cur].reply = *r;
        if (r->code / 100 == 2) {
            ob->accepted[ob->cur] = 1;
            ob->n_accepted++;
        } else if (ob->first_fail < 0) {
            ob->first_fail = ob->cur;
        }
        if (++ob->cur < req->n_rcpts) {
            send_rcpt(ob);
            return;
        }
        if (ob->n_accepted == 0) {
            finish(ob, &req->rcpts[ob->first_fail].reply);
            return;
        }
        ob_set_state(ob, OB_DATA);
        if (mxg_leg_data(ob->leg) < 0)
            fail_leg(ob);
        return;
    case OB_DATA:
        if (r->code != 354) {
            fail(ob, r);
            return;
        }
        ob_set_state(ob, OB_BODY);
        body_pump(ob);
        return;
    case OB_DOT: {
        struct mxg_reply j; /* only 2xx is delivered; a 3xx is a failure */
        mxg_reply_judge(r, "the final dot", &j);
        fill_replies(ob, req->n_rcpts, &j, 1);
        finish(ob, &j);
        return;
    }
    case OB_BODY:
    case OB_DONE:
        return;
    }
}

static void on_leg_drain(void *arg, struct mxg_leg *leg)
{
    struct mxg_outbound *ob = arg;
    (void)leg;
    if (ob->st != OB_BODY || !ob->paused)
        return;
    ob->paused = 0;
    if (mxg_leg_error(ob->leg)->code) { /* the leg failed while we waited */
        fail_leg(ob);
        return;
    }
    body_pump(ob);
}

static const struct mxg_leg_cbs ob_cbs = {on_leg_reply, on_leg_drain};

int mxg_outbound_start(const struct mxg_upstream_env *env, struct mxg_outbound_req *req,
                       struct mxg_outbound **out)
{
    if (out)
        *out = NULL;
    if (!env || !req || !req->done || !req->domain || !req->from || !req->rcpts ||
        req->n_rcpts < 1 || (req->body_fd < 0 && req->body_len > 0 && !req->body))
        return -1;
    struct mxg_outbound *ob = calloc(1, sizeof *ob);
    if (!ob)
        return -1;
    ob->fd = -1;
    ob->accepted = calloc((size_t)req->n_rcpts, 1);
    if (req->body_fd >= 0) {
        ob->chunk = malloc(OB_CHUNK);
        ob->fd = dup(req->body_fd); /* ours: the caller may close its fd at any time */
    }
    if (!ob->accepted || (req->body_fd >= 0 && (!ob->chunk || ob->fd < 0))) {
        ob_free(ob);
        return -1;
    }
    ob->env = env;
    ob->req = req;
    ob->first_fail = -1;
    ob->st = OB_OPEN;
    ob->t_start = uv_now(env->loop);
    for (int i = 0; i < req->n_rcpts; i++)
        memset(&req->rcpts[i].reply, 0, sizeof req->rcpts[i].reply);
    struct mxg_mail_params mp;
    memset(&mp, 0, sizeof mp);
    if (req->mp)
        mp = *req->mp;
    snprintf(ob->id, sizeof ob->id, "%s", req->id && req->id[0] ? req->id : "outbound");
    struct mxg_leg_opts opts = req->opts; /* the first RCPT may go with MAIL */
    opts.first_rcpt = req->rcpts[0].addr;
    opts.first_rp = req->rcpts[0].rp;
    ob->leg = mxg_leg_open_opts(env, ob->id, req->domain, req->from, &mp, &opts, &ob_cbs, ob);
    if (!ob->leg) {
        ob_free(ob);
        return -1;
    }
    if (out)
        *out = ob;
    return 0;
}

void mxg_outbound_cancel(struct mxg_outbound *ob)
{
    if (!ob || ob->cancelled)
        return;
    ob->cancelled = 1;
    if (ob->leg) {
        mxg_leg_close(ob->leg);
        ob->leg = NULL;
    }
    LOG_D("outbound", "%s %s: cancelled in state %s", ob->id, ob->req->domain,
          ob_state_names[ob->st]);
    if (!ob->fs_busy)
        ob_free(ob);
    /* else: on_fs_read frees it */
}
