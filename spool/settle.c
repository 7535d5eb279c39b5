/* spool/settle.c — mxg_spool_settle(): DSNs for failed recipients, then
 * remove or rewrite the entry. See spool.h. */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "dsn.h"
#include "spool.h"

static void seterr(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* RFC 3461 §4.1: NOTIFY=NEVER or a list of SUCCESS, FAILURE, DELAY; absent
 * means FAILURE,DELAY (the MTA's default). Does it ask for word? */
static int notify_has(const char *notify, const char *word)
{
    if (!notify || !notify[0])
        return strcasecmp(word, "FAILURE") == 0 || strcasecmp(word, "DELAY") == 0;
    size_t wl = strlen(word);
    const char *p = notify;
    while (*p) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n == wl && strncasecmp(p, word, wl) == 0)
            return 1;
        if (!e)
            break;
        p = e + 1;
    }
    return 0;
}

/* The sender can get a DSN at all: not <>, with a domain, and the entry is
 * a message (never a DSN about a DSN). */
static int dsn_reachable(const struct mxg_spool_env *env)
{
    const char *at = strrchr(env->from, '@');
    return at && at[1] && env->kind == MXG_SPOOL_MESSAGE;
}

int mxg_spool_dsn_due(const struct mxg_spool_env *env, const struct mxg_spool_rcpt *r)
{
    return dsn_reachable(env) && notify_has(r->rp.notify, "FAILURE");
}

int mxg_spool_relayed_due(const struct mxg_spool_env *env, const struct mxg_spool_rcpt *r)
{
    return dsn_reachable(env) && notify_has(r->rp.notify, "SUCCESS");
}

/* Read the start of the body: all of it when it may be returned whole,
 * else enough for the header section. */
static char *read_body(struct mxg_spool *sp, const struct mxg_spool_env *env, size_t *len,
                       int *complete)
{
    *len = 0;
    *complete = 0;
    int fd = mxg_spool_body_open(sp, env->id);
    if (fd < 0)
        return NULL;
    int full = (env->mp.ret[0] == 'F' || env->mp.ret[0] == 'f') &&
               env->body_size <= MXG_DSN_FULL_MAX;
    size_t want = full ? (size_t)env->body_size : MXG_DSN_HDRS_MAX + 1024;
    char *buf = malloc(want + 1);
    size_t got = 0;
    if (!buf) {
        close(fd);
        return NULL;
    }
    while (got < want) {
        ssize_t r = pread(fd, buf + got, want - got, (off_t)got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    /* complete if we reached the end of the file */
    char one;
    *complete = pread(fd, &one, 1, (off_t)got) == 0;
    close(fd);
    buf[got] = 0;
    *len = got;
    return buf;
}

/* Build the DSN for the n recipients in dr (body from env's entry, when it
 * has one) and store it as a new DSN entry to env->from. */
static int put_dsn(struct mxg_spool *sp, const struct mxg_spool_env *env,
                   const struct mxg_dsn_rcpt *dr, int n, const char *reporting_mta,
                   int64_t now_ms, char *dsn_id, char *err, size_t errlen)
{
    size_t blen = 0;
    int complete = 0;
    char *body = read_body(sp, env, &blen, &complete);
    struct mxg_dsn_req req = {
        .reporting_mta = reporting_mta,
        .sender = env->from,
        .envid = env->mp.envid,
        .ret = env->mp.ret,
        .queue_id = env->id,
        .arrival_ms = env->created_ms,
        .now_ms = now_ms,
        .rcpts = dr,
        .n_rcpts = n,
        .body = body,
        .body_len = blen,
        .body_complete = complete,
    };
    struct mxg_dsn_out out;
    int rc = mxg_dsn_build(&req, &out);
    free(body);
    if (rc < 0) {
        seterr(err, errlen, "DSN for %s: %s", env->id, strerror(-rc));
        return rc;
    }

    struct mxg_spool_env d;
    memset(&d, 0, sizeof d);
    d.kind = MXG_SPOOL_DSN;
    d.created_ms = now_ms;
    d.next_attempt_ms = now_ms;
    d.mp.body = out.eightbit ? MXG_BODY_8BITMIME : MXG_BODY_NONE;
    d.mp.smtputf8 = out.utf8;
    d.mp.size = out.len;
    char domain[MXG_DOMAIN_MAX + 1];
    const char *at = strrchr(env->from, '@');
    snprintf(domain, sizeof domain, "%s", at ? at + 1 : "");
    for (char *q = domain; *q; q++)
        *q = (char)tolower((unsigned char)*q);
    rc = mxg_spool_env_add_rcpt(&d, env->from, domain, NULL);
    if (rc == 0)
        rc = mxg_spool_put(sp, out.msg, out.len, &d, err, errlen);
    else
        seterr(err, errlen, "DSN for %s: bad sender address", env->id);
    free(out.msg);
    if (rc == 0 && dsn_id)
        snprintf(dsn_id, MXG_SPOOL_ID_MAX, "%s", d.id);
    mxg_spool_env_free(&d);
    return rc;
}

/* One DSN recipient line from a spool recipient (borrowed strings). */
static void dsn_rcpt_of(const struct mxg_spool_rcpt *r, int relayed, int64_t now_ms,
                        struct mxg_dsn_rcpt *out)
{
    out->addr = r->addr;
    out->orcpt = r->rp.orcpt;
    out->relayed = relayed;
    out->status = !relayed && r->expired ? "4.4.7" : NULL;
    out->code = r->last_code;
    out->reply = r->last_reply;
    out->remote_mta = r->last_mx;
    out->last_attempt_ms = now_ms;
}

/* Store one DSN for the recipients of env that want one: the failure DSN
 * (relayed = 0: every FAILED recipient without dsn_done whose NOTIFY asks
 * for it) or the "relayed" DSN (relayed = 1: the DELIVERED recipients marked
 * in which[] whose NOTIFY has SUCCESS). Nothing to report: 0, no entry. */
static int store_dsn_for(struct mxg_spool *sp, const struct mxg_spool_env *env,
                         const unsigned char *which, int relayed, const char *reporting_mta,
                         int64_t now_ms, char *dsn_id, char *err, size_t errlen)
{
    int n = 0;
    struct mxg_dsn_rcpt *dr = calloc((size_t)(env->n_rcpts > 0 ? env->n_rcpts : 1), sizeof *dr);
    if (!dr) {
        seterr(err, errlen, "out of memory");
        return -ENOMEM;
    }
    for (int i = 0; i < env->n_rcpts; i++) {
        const struct mxg_spool_rcpt *r = &env->rcpts[i];
        int want = relayed ? which[i] && r->state == MXG_RCPT_DELIVERED &&
                                 mxg_spool_relayed_due(env, r)
                           : r->state == MXG_RCPT_FAILED && !r->dsn_done &&
                                 mxg_spool_dsn_due(env, r);
        if (want)
            dsn_rcpt_of(r, relayed, now_ms, &dr[n++]);
    }
    int rc = n ? put_dsn(sp, env, dr, n, reporting_mta, now_ms, dsn_id, err, errlen) : 0;
    free(dr);
    return rc;
}

int mxg_spool_relayed_dsn(struct mxg_spool *sp, const struct mxg_spool_env *env,
                          const unsigned char *which, const char *reporting_mta, int64_t now_ms,
                          char *dsn_id, char *err, size_t errlen)
{
    if (dsn_id)
        dsn_id[0] = 0;
    return store_dsn_for(sp, env, which, 1, reporting_mta, now_ms, dsn_id, err, errlen);
}

int mxg_spool_settle(struct mxg_spool *sp, struct mxg_spool_env *env, const char *reporting_mta,
                     int64_t now_ms, char *dsn_id, char *err, size_t errlen)
{
    if (dsn_id)
        dsn_id[0] = 0;
    int failed_new = 0, pending = 0;
    for (int i = 0; i < env->n_rcpts; i++) {
        if (env->rcpts[i].state == MXG_RCPT_FAILED && !env->rcpts[i].dsn_done)
            failed_new++;
        if (env->rcpts[i].state == MXG_RCPT_PENDING)
            pending++;
    }
    /* (a sender without a domain cannot be reached: no DSN; the runner
     * logs each failure anyway) */
    if (failed_new) {
        int rc = store_dsn_for(sp, env, NULL, 0, reporting_mta, now_ms, dsn_id, err, errlen);
        if (rc < 0)
            return rc; /* the entry is unchanged: the next settle tries again */
    }
    for (int i = 0; i < env->n_rcpts; i++)
        if (env->rcpts[i].state == MXG_RCPT_FAILED)
            env->rcpts[i].dsn_done = 1;
    if (!pending) {
        int rc = mxg_spool_remove(sp, env->id);
        if (rc < 0)
            seterr(err, errlen, "spool %s/%s: remove: %s", mxg_spool_dir(sp), env->id,
                   strerror(-rc));
        return rc;
    }
    return mxg_spool_update(sp, env, err, errlen);
}
