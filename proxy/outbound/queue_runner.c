/* proxy/outbound/queue_runner.c — the spool's delivery loop; see queue_runner.h.
 *
 * One struct delivery per entry being delivered (it holds the entry's lock
 * fd, which is also the body fd every group reads from with explicit
 * offsets), one struct group per destination domain (one mxg_outbound).
 * At most limits.legs groups of one delivery run at once, like the legs of
 * a live transaction; the others start as running ones answer (same
 * attempt). When the last group of a delivery has answered, finalize()
 * applies the bookkeeping, settles the entry and releases the lock. */
#include "queue_runner.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "../../core/log.h"
#include "../../core/metrics.h"
#include "outbound.h"

struct delivery;

struct group {
    struct delivery *dl;
    char domain[MXG_DOMAIN_MAX + 1];
    int *idx; /* recipients (indices into dl->env.rcpts) */
    int n;
    struct mxg_outbound_rcpt *orc;
    struct mxg_outbound_req req;
    struct mxg_outbound *ob;
    int running;
    int answered; /* results are in env (done ran, or it failed to start) */
};

struct delivery {
    struct mxg_queue_runner *qr;
    struct delivery *next, *prev;
    struct mxg_spool_env env;
    int lockfd;
    struct group *groups;
    int n_groups;
    int next_group; /* groups [next_group, n_groups) wait for a free leg (limits.legs) */
    int n_running;
    int attempted; /* at least one group was tried */
    unsigned char *relayed; /* per recipient: delivered to an MX without DSN, NOTIFY=SUCCESS */
};

struct mxg_queue_runner {
    uv_loop_t *loop;
    const struct mxg_config *cfg;
    const struct mxg_upstream_env *env;
    struct mxg_spool *sp;
    char hostname[256];
    struct mxg_nexthop bounce;
    int have_bounce;
    uv_timer_t scan_timer, stop_timer;
    int n_open_handles;
    struct delivery *active;
    int running;  /* outbounds */
    int entries;  /* deliveries */
    int started, stopping, stopped, saturated, freeing;
    void (*on_stopped)(void *arg);
    void *stop_arg;
    struct mxg_queue_stats st;
};

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void on_scan(uv_timer_t *t);

/* ------------------------------------------------------------- lifecycle */

struct mxg_queue_runner *mxg_queue_runner_new(uv_loop_t *loop, const struct mxg_config *cfg,
                                              const struct mxg_upstream_env *env,
                                              struct mxg_spool *sp, const char *hostname)
{
    struct mxg_queue_runner *qr = calloc(1, sizeof *qr);
    if (!qr)
        return NULL;
    qr->loop = loop;
    qr->cfg = cfg;
    qr->env = env;
    qr->sp = sp;
    snprintf(qr->hostname, sizeof qr->hostname, "%s", hostname && hostname[0] ? hostname : "localhost");
    if (cfg->q_bounce_route[0]) {
        const char *why = NULL;
        if (mxg_parse_nexthop(cfg->q_bounce_route, &qr->bounce, &why) == 0)
            qr->have_bounce = 1;
        else
            LOG_E("queue", "queue.bounce_route \"%s\": %s; bounces go to the sender's MX",
                  cfg->q_bounce_route, why ? why : "invalid");
    }
    uv_timer_init(loop, &qr->scan_timer);
    uv_timer_init(loop, &qr->stop_timer);
    qr->scan_timer.data = qr->stop_timer.data = qr;
    qr->n_open_handles = 2;
    return qr;
}

int mxg_queue_runner_start(struct mxg_queue_runner *qr)
{
    if (qr->started)
        return 0;
    qr->started = 1;
    uint64_t every = qr->cfg->q_scan_ms ? qr->cfg->q_scan_ms : 1000;
    LOG_N("queue", "runner started: spool %s, scan every %llums, at most %d deliveries at once, "
                   "lifetime %llus, bounces via %s",
          mxg_spool_dir(qr->sp), (unsigned long long)every, qr->cfg->q_max_parallel,
          (unsigned long long)(qr->cfg->q_lifetime_ms / 1000),
          qr->have_bounce ? qr->cfg->q_bounce_route : "the sender's MX");
    return uv_timer_start(&qr->scan_timer, on_scan, 0, every);
}

void mxg_queue_runner_kick(struct mxg_queue_runner *qr)
{
    if (!qr || !qr->started || qr->stopping)
        return;
    uint64_t every = qr->cfg->q_scan_ms ? qr->cfg->q_scan_ms : 1000;
    uv_timer_start(&qr->scan_timer, on_scan, 0, every);
}

void mxg_queue_runner_stats(const struct mxg_queue_runner *qr, struct mxg_queue_stats *out)
{
    *out = qr->st;
    out->running = qr->running;
    out->entries = qr->entries;
}

/* ------------------------------------------------------------- finishing */

static void delivery_free(struct delivery *dl)
{
    for (int i = 0; i < dl->n_groups; i++) {
        free(dl->groups[i].idx);
        free(dl->groups[i].orc);
    }
    free(dl->groups);
    free(dl->relayed);
    mxg_spool_env_free(&dl->env);
    if (dl->lockfd >= 0)
        close(dl->lockfd);
    free(dl);
}

static void unlink_delivery(struct mxg_queue_runner *qr, struct delivery *dl)
{
    if (dl->prev)
        dl->prev->next = dl->next;
    else
        qr->active = dl->next;
    if (dl->next)
        dl->next->prev = dl->prev;
    qr->entries--;
}

static void maybe_stopped(struct mxg_queue_runner *qr)
{
    if (!qr->stopping || qr->stopped || qr->active)
        return;
    qr->stopped = 1;
    uv_timer_stop(&qr->stop_timer);
    LOG_N("queue", "runner stopped");
    if (qr->on_stopped)
        qr->on_stopped(qr->stop_arg);
}

static void rcpt_list(const struct delivery *dl, const struct group *g, char *out, size_t cap)
{
    size_t o = 0;
    out[0] = 0;
    for (int k = 0; k < g->n && o + 4 < cap; k++) {
        int w = snprintf(out + o, cap - o, "%s<%s>", k ? "," : "", dl->env.rcpts[g->idx[k]].addr);
        if (w < 0 || (size_t)w >= cap - o) {
            snprintf(out + (cap > 4 ? cap - 4 : 0), 4, "...");
            break;
        }
        o += (size_t)w;
    }
}

/* RFC 3461 §5.2.2: recipients delivered to an MX without DSN that asked
 * for NOTIFY=SUCCESS get a "relayed" DSN (stored like a bounce). */
static void relayed_dsn(struct delivery *dl, int64_t now)
{
    struct mxg_queue_runner *qr = dl->qr;
    int any = 0;
    for (int i = 0; dl->relayed && i < dl->env.n_rcpts; i++)
        any |= dl->relayed[i];
    if (!any)
        return;
    char id[MXG_SPOOL_ID_MAX] = "", err[600] = "";
    if (mxg_spool_relayed_dsn(qr->sp, &dl->env, dl->relayed, qr->hostname, now, id, err,
                              sizeof err) < 0) {
        LOG_E("queue", "%s: cannot store the \"relayed\" DSN for <%s>: %s", dl->env.id,
              dl->env.from, err);
        return;
    }
    if (id[0]) {
        qr->st.bounces++;
        LOG_N("queue", "%s: \"relayed\" DSN %s queued for <%s> (NOTIFY=SUCCESS, the MX does not "
                       "support DSN)", dl->env.id, id, dl->env.from);
        mxg_queue_runner_kick(qr);
    }
}

/* Bookkeeping after the last group answered (or the runner gave up on the
 * rest: cancelled = 1), then settle and release the entry. */
static void finalize(struct delivery *dl, int cancelled)
{
    struct mxg_queue_runner *qr = dl->qr;
    const struct mxg_config *cfg = qr->cfg;
    struct mxg_spool_env *env = &dl->env;
    int64_t now = wall_ms();
    int64_t expiry = env->created_ms + (int64_t)cfg->q_lifetime_ms;
    int is_dsn = env->kind == MXG_SPOOL_DSN;

    if (dl->attempted && !cancelled)
        env->attempts++;
    int pending = 0;
    for (int i = 0; i < env->n_rcpts; i++) {
        struct mxg_spool_rcpt *r = &env->rcpts[i];
        if (r->state != MXG_RCPT_PENDING)
            continue;
        if (!cancelled && now >= expiry) {
            r->state = MXG_RCPT_FAILED;
            r->expired = 1;
            if (!r->last_reply[0])
                snprintf(r->last_reply, sizeof r->last_reply,
                         "451 4.4.7 delivery time expired without an answer");
        } else {
            pending++;
        }
    }
    if (cancelled) {
        env->next_attempt_ms = now;
    } else {
        uint64_t d = mxg_spool_backoff_ms(env->attempts > 0 ? env->attempts : 1, cfg->q_backoff_ms,
                                          cfg->q_backoff_max_ms);
        env->next_attempt_ms = now + (int64_t)d;
        if (env->next_attempt_ms > expiry)
            env->next_attempt_ms = expiry > now ? expiry : now;
    }

    /* what happened to each recipient settled now (before settle marks
     * dsn_done) */
    int *newly_failed = calloc((size_t)env->n_rcpts, sizeof *newly_failed);
    for (int i = 0; i < env->n_rcpts && newly_failed; i++)
        newly_failed[i] = env->rcpts[i].state == MXG_RCPT_FAILED && !env->rcpts[i].dsn_done;

    char dsn[MXG_SPOOL_ID_MAX] = "", err[600] = "";
    relayed_dsn(dl, now); /* before settle: the entry (and its body) may be removed */
    int rc = mxg_spool_settle(qr->sp, env, qr->hostname, now, dsn, err, sizeof err);
    if (rc == -ENOENT) {
        LOG_W("queue", "%s: the entry was removed while it was being delivered (mxguard queue "
                       "delete?); its results are not recorded", env->id);
    } else if (rc < 0) {
        LOG_E("queue", "%s: %s", env->id, err);
        /* keep the recipients' states at least (a delivered recipient must
         * not be sent again); the DSN is retried at the next settle */
        char e2[600];
        if (mxg_spool_update(qr->sp, env, e2, sizeof e2) < 0)
            LOG_E("queue", "%s: cannot record the delivery results: %s (recipients may be "
                           "delivered again)", env->id, e2);
    }

    for (int i = 0; i < env->n_rcpts; i++) {
        const struct mxg_spool_rcpt *r = &env->rcpts[i];
        if (!newly_failed || !newly_failed[i])
            continue;
        qr->st.failed++;
        if (!is_dsn)
            mxg_metrics_inc(qr->env->metrics, MXG_M_SPOOL_DELIVERIES, "bounced");
        if (is_dsn) {
            qr->st.dropped++;
            LOG_W("queue", "%s: bounce to <%s> dropped%s: %s", env->id, r->addr,
                  r->expired ? " (delivery time expired)" : "", r->last_reply);
        } else {
            int due = mxg_spool_dsn_due(env, r);
            char what[120];
            if (due && dsn[0])
                snprintf(what, sizeof what, "bounce queued as %s", dsn);
            else if (due)
                snprintf(what, sizeof what, "bounce not stored yet (retried)");
            else if (!env->from[0])
                snprintf(what, sizeof what, "no bounce (null sender)");
            else if (r->rp.notify[0])
                snprintf(what, sizeof what, "no bounce (NOTIFY=%s)", r->rp.notify);
            else
                snprintf(what, sizeof what, "no bounce (sender without a domain)");
            LOG_N("queue", "%s: <%s> failed%s: %s; %s", env->id, r->addr,
                  r->expired ? " (delivery time expired)" : "", r->last_reply, what);
        }
    }
    free(newly_failed);
    if (dsn[0]) {
        qr->st.bounces++;
        LOG_N("queue", "%s: bounce %s queued for <%s>", env->id, dsn, env->from);
    }
    if (pending && rc != -ENOENT && !cancelled) {
        qr->st.deferred++;
        mxg_metrics_add(qr->env->metrics, MXG_M_SPOOL_DELIVERIES, "deferred", (uint64_t)pending);
        LOG_I("queue", "%s: %d recipient(s) deferred, next attempt in %llds (attempt %d)", env->id,
              pending, (long long)((env->next_attempt_ms - now + 999) / 1000), env->attempts + 1);
    }

    unlink_delivery(qr, dl);
    delivery_free(dl);
    if (dsn[0] || qr->saturated) {
        qr->saturated = 0;
        mxg_queue_runner_kick(qr);
    }
    maybe_stopped(qr);
}

/* A group's outbound answered: record each recipient's reply. */
static void apply_group(struct group *g, const struct mxg_reply *final)
{
    struct delivery *dl = g->dl;
    struct mxg_queue_runner *qr = dl->qr;
    char sum[MXG_SPOOL_REPLY_MAX], list[600], fin[MXG_SPOOL_REPLY_MAX];
    mxg_reply_summary(final, fin, sizeof fin);
    int ok = 0;
    for (int k = 0; k < g->n; k++) {
        struct mxg_spool_rcpt *r = &dl->env.rcpts[g->idx[k]];
        const struct mxg_reply *rep = g->orc[k].reply.code ? &g->orc[k].reply : final;
        mxg_reply_summary(rep, sum, sizeof sum);
        r->last_code = rep->code;
        snprintf(r->last_reply, sizeof r->last_reply, "%s", sum);
        snprintf(r->last_mx, sizeof r->last_mx, "%s", g->req.mx); /* DSN Remote-MTA */
        if (rep->code / 100 == 2) {
            r->state = MXG_RCPT_DELIVERED;
            ok++;
            qr->st.delivered++;
            mxg_metrics_inc(qr->env->metrics, MXG_M_SPOOL_DELIVERIES, "delivered");
            LOG_N("queue", "%s: <%s> delivered: %s", dl->env.id, r->addr, sum);
            if (g->req.mx_no_dsn && dl->relayed && mxg_spool_relayed_due(&dl->env, r))
                dl->relayed[g->idx[k]] = 1;
        } else if (rep->code / 100 == 5) {
            r->state = MXG_RCPT_FAILED;
        }
    }
    rcpt_list(dl, g, list, sizeof list);
    qr->st.attempts++;
    LOG_N("queue", "%s: attempt %d: from=<%s> domain=%s%s%s rcpts=%s accepted=%d/%d reply=\"%s\"",
          dl->env.id, dl->env.attempts + 1, dl->env.from, g->domain,
          g->req.opts.nexthop ? " via " : "", g->req.opts.nexthop ? qr->cfg->q_bounce_route : "",
          list, ok, g->n, fin);
    g->answered = 1;
}

static void start_more(struct delivery *dl);

static void on_outbound_done(void *arg, struct mxg_outbound_req *req, const struct mxg_reply *final)
{
    struct group *g = arg;
    struct delivery *dl = g->dl;
    struct mxg_queue_runner *qr = dl->qr;
    (void)req;
    g->ob = NULL;
    g->running = 0;
    dl->n_running--;
    qr->running--;
    apply_group(g, final);
    start_more(dl);
    if (dl->n_running == 0) /* groups left unstarted only when stopping: due again at once */
        finalize(dl, dl->next_group < dl->n_groups);
}

/* ------------------------------------------------------------- starting */

static int is_ascii(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s >= 0x80)
            return 0;
    return 1;
}

/* The group of domain, added (with no recipients yet) when new. NULL: out
 * of memory. *cap is the allocated size of dl->groups. */
static struct group *group_of(struct delivery *dl, const char *domain, int *cap)
{
    for (int i = 0; i < dl->n_groups; i++)
        if (strcasecmp(dl->groups[i].domain, domain) == 0)
            return &dl->groups[i];
    if (dl->n_groups == *cap) {
        int ncap = *cap ? *cap * 2 : 4;
        struct group *ng = realloc(dl->groups, (size_t)ncap * sizeof *ng);
        if (!ng)
            return NULL;
        dl->groups = ng;
        *cap = ncap;
    }
    struct group *g = &dl->groups[dl->n_groups++];
    memset(g, 0, sizeof *g);
    g->dl = dl;
    snprintf(g->domain, sizeof g->domain, "%s", domain);
    return g;
}

/* Group the PENDING recipients by destination domain; each group's arrays
 * are sized for its own recipients (never domains x recipients). Recipients
 * whose domain cannot be used fail at once (550 5.1.2). -1: out of memory. */
static int make_groups(struct delivery *dl)
{
    struct mxg_spool_env *env = &dl->env;
    int cap = 0;
    int *gi = calloc(env->n_rcpts > 0 ? (size_t)env->n_rcpts : 1, sizeof *gi);
    if (!gi)
        return -1;
    for (int i = 0; i < env->n_rcpts; i++) { /* pass 1: the groups and their sizes */
        struct mxg_spool_rcpt *r = &env->rcpts[i];
        gi[i] = -1;
        if (r->state != MXG_RCPT_PENDING)
            continue;
        char dom[MXG_DOMAIN_MAX + 1];
        snprintf(dom, sizeof dom, "%s", r->domain);
        if (!is_ascii(dom) && mxg_domain_alabel(r->domain, dom, sizeof dom) < 0)
            dom[0] = 0;
        if (!dom[0]) {
            r->state = MXG_RCPT_FAILED;
            r->last_code = 550;
            snprintf(r->last_reply, sizeof r->last_reply,
                     "550 5.1.2 invalid destination domain \"%s\"", r->domain);
            continue;
        }
        struct group *g = group_of(dl, dom, &cap);
        if (!g) {
            free(gi);
            return -1;
        }
        gi[i] = (int)(g - dl->groups);
        g->n++;
    }
    for (int i = 0; i < dl->n_groups; i++) { /* pass 2: per-group arrays */
        struct group *g = &dl->groups[i];
        g->idx = calloc((size_t)g->n, sizeof *g->idx);
        g->orc = calloc((size_t)g->n, sizeof *g->orc);
        if (!g->idx || !g->orc) {
            free(gi);
            return -1; /* delivery_free() frees what was allocated */
        }
        g->n = 0;
    }
    for (int i = 0; i < env->n_rcpts; i++)
        if (gi[i] >= 0) {
            struct group *g = &dl->groups[gi[i]];
            g->idx[g->n++] = i;
        }
    free(gi);
    return 0;
}

static void start_group(struct delivery *dl, struct group *g)
{
    struct mxg_queue_runner *qr = dl->qr;
    struct mxg_spool_env *env = &dl->env;
    for (int k = 0; k < g->n; k++) {
        struct mxg_spool_rcpt *r = &env->rcpts[g->idx[k]];
        g->orc[k].addr = r->addr;
        g->orc[k].rp = &r->rp;
        memset(&g->orc[k].reply, 0, sizeof g->orc[k].reply);
    }
    struct mxg_outbound_req *req = &g->req;
    memset(req, 0, sizeof *req);
    req->id = env->id;
    req->domain = g->domain;
    req->from = env->from;
    req->mp = &env->mp;
    req->rcpts = g->orc;
    req->n_rcpts = g->n;
    req->body_fd = dl->lockfd;
    req->done = on_outbound_done;
    req->arg = g;
    if (env->kind == MXG_SPOOL_DSN && qr->have_bounce) {
        req->opts.nexthop = qr->bounce.host;
        req->opts.nexthop_port = qr->bounce.port;
        req->opts.nexthop_mx = qr->bounce.mx;
    }
    dl->attempted = 1;
    if (mxg_outbound_start(qr->env, req, &g->ob) < 0) {
        struct mxg_reply r;
        mxg_reply_set(&r, 451, "4.3.0", "Local error: cannot start the delivery");
        apply_group(g, &r);
        return;
    }
    g->running = 1;
    dl->n_running++;
    qr->running++;
}

/* Start waiting groups while fewer than limits.legs of this delivery run
 * (none once the runner is stopping: they stay PENDING). A group that
 * cannot start has its answer at once and frees no leg. */
static void start_more(struct delivery *dl)
{
    struct mxg_queue_runner *qr = dl->qr;
    int legs = qr->cfg->max_legs > 0 ? qr->cfg->max_legs : 1;
    while (!qr->stopping && dl->n_running < legs && dl->next_group < dl->n_groups)
        start_group(dl, &dl->groups[dl->next_group++]);
}

/* Deliver a loaded, locked, due entry. Takes over env and lockfd. */
static void start_entry(struct mxg_queue_runner *qr, struct mxg_spool_env *env, int lockfd)
{
    struct delivery *dl = calloc(1, sizeof *dl);
    if (!dl) {
        mxg_spool_env_free(env);
        close(lockfd);
        return;
    }
    dl->qr = qr;
    dl->env = *env;
    memset(env, 0, sizeof *env);
    dl->lockfd = lockfd;
    dl->relayed = calloc((size_t)(dl->env.n_rcpts > 0 ? dl->env.n_rcpts : 1), 1);
    dl->next = qr->active;
    if (qr->active)
        qr->active->prev = dl;
    qr->active = dl;
    qr->entries++;
    if (make_groups(dl) < 0) {
        LOG_E("queue", "%s: out of memory", dl->env.id);
        /* nothing changed: release without touching the entry */
        unlink_delivery(qr, dl);
        delivery_free(dl);
        return;
    }
    start_more(dl);
    if (dl->n_running == 0) /* nothing pending, or nothing could start */
        finalize(dl, 0);
}

/* Does an entry with these recipients fit into the free slots? */
static int n_domains(const struct mxg_spool_env *env)
{
    int n = 0;
    for (int i = 0; i < env->n_rcpts; i++) {
        if (env->rcpts[i].state != MXG_RCPT_PENDING)
            continue;
        int seen = 0;
        for (int j = 0; j < i && !seen; j++)
            seen = env->rcpts[j].state == MXG_RCPT_PENDING &&
                   strcasecmp(env->rcpts[j].domain, env->rcpts[i].domain) == 0;
        n += !seen;
    }
    return n;
}

static void scan(struct mxg_queue_runner *qr)
{
    char(*ids)[MXG_SPOOL_ID_MAX] = NULL;
    int n = 0;
    int rc = mxg_spool_list(qr->sp, &ids, &n);
    if (rc < 0) {
        LOG_E("queue", "cannot list the spool %s: %s", mxg_spool_dir(qr->sp), strerror(-rc));
        return;
    }
    int64_t now = wall_ms();
    int max = qr->cfg->q_max_parallel > 0 ? qr->cfg->q_max_parallel : 1;
    for (int i = 0; i < n && !qr->stopping; i++) {
        if (qr->running >= max) {
            qr->saturated = 1;
            break;
        }
        int fd = mxg_spool_lock(qr->sp, ids[i]);
        if (fd < 0) {
            if (fd != -EBUSY && fd != -ENOENT)
                LOG_W("queue", "%s: cannot lock: %s", ids[i], strerror(-fd));
            continue; /* being delivered / changed by someone else, or gone */
        }
        struct mxg_spool_env env;
        char err[600];
        rc = mxg_spool_load(qr->sp, ids[i], &env, err, sizeof err);
        if (rc == -EINVAL) {
            LOG_E("queue", "%s; moved aside as %s/%s.bad (fix or delete it by hand)", err,
                  mxg_spool_dir(qr->sp), ids[i]);
            mxg_spool_quarantine(qr->sp, ids[i]);
            close(fd);
            continue;
        }
        if (rc < 0) {
            if (rc != -ENOENT)
                LOG_W("queue", "%s", err);
            close(fd);
            continue;
        }
        if (env.next_attempt_ms > now) {
            mxg_spool_env_free(&env);
            close(fd);
            continue;
        }
        int need = n_domains(&env); /* outbounds it will run at once */
        if (need > qr->cfg->max_legs)
            need = qr->cfg->max_legs;
        if (qr->running > 0 && qr->running + need > max) {
            qr->saturated = 1;
            mxg_spool_env_free(&env);
            close(fd);
            break; /* oldest first: wait for room rather than overtake */
        }
        start_entry(qr, &env, fd);
    }
    free(ids);
}

static void on_scan(uv_timer_t *t)
{
    struct mxg_queue_runner *qr = t->data;
    if (qr->stopping)
        return;
    scan(qr);
}

/* ------------------------------------------------------------- stopping */

static void cancel_all(struct mxg_queue_runner *qr)
{
    while (qr->active) {
        struct delivery *dl = qr->active;
        int n = 0;
        for (int i = 0; i < dl->n_groups; i++) {
            struct group *g = &dl->groups[i];
            if (!g->running)
                continue;
            mxg_outbound_cancel(g->ob);
            g->ob = NULL;
            g->running = 0;
            dl->n_running--;
            qr->running--;
            n++;
        }
        LOG_W("queue", "%s: %d delivery(ies) cancelled at shutdown; due again at the next start",
              dl->env.id, n);
        finalize(dl, 1);
    }
}

static void on_stop_timer(uv_timer_t *t)
{
    struct mxg_queue_runner *qr = t->data;
    if (qr->active) {
        LOG_W("queue", "drain deadline reached with %d delivery(ies) running", qr->running);
        cancel_all(qr);
    }
    maybe_stopped(qr);
}

void mxg_queue_runner_stop(struct mxg_queue_runner *qr, void (*on_stopped)(void *arg), void *arg)
{
    if (qr->stopping) {
        /* asked again (a second SIGTERM): the deadline is now */
        if (!qr->stopped && !qr->freeing)
            uv_timer_start(&qr->stop_timer, on_stop_timer, 0, 0);
        return;
    }
    qr->stopping = 1;
    qr->on_stopped = on_stopped;
    qr->stop_arg = arg;
    uv_timer_stop(&qr->scan_timer);
    if (qr->active)
        LOG_N("queue", "stopping: waiting for %d delivery(ies) (at most %llus)", qr->running,
              (unsigned long long)(qr->cfg->drain_timeout_ms / 1000));
    /* on_stopped always from a loop callback: at once (0) if nothing runs */
    uv_timer_start(&qr->stop_timer, on_stop_timer, qr->active ? qr->cfg->drain_timeout_ms : 0, 0);
}

static void on_handle_closed(uv_handle_t *h)
{
    struct mxg_queue_runner *qr = h->data;
    if (--qr->n_open_handles == 0)
        free(qr);
}

void mxg_queue_runner_free(struct mxg_queue_runner *qr)
{
    if (!qr || qr->freeing)
        return;
    qr->freeing = 1;
    qr->stopping = 1;
    qr->on_stopped = NULL;
    if (qr->active)
        cancel_all(qr);
    uv_handle_t *hs[2] = {(uv_handle_t *)&qr->scan_timer, (uv_handle_t *)&qr->stop_timer};
    for (int i = 0; i < 2; i++) {
        if (uv_is_closing(hs[i])) {
            /* closed by someone else's uv_walk: its callback (NULL or not)
             * is not ours, so account for it now */
            qr->n_open_handles--;
            continue;
        }
        uv_close(hs[i], on_handle_closed);
    }
    if (qr->n_open_handles == 0)
        free(qr);
}
