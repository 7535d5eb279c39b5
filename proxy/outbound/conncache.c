/* proxy/outbound/conncache.c — see conncache.h.
 *
 * Data: a hash of destinations (MX address + port). Each destination has a
 * list of its idle slots (oldest first) and a FIFO of waiting legs. All
 * idle slots are also on one global list in parking order (the eviction
 * order), all waiters on one global FIFO (deadline order: every wait is
 * wait_ms long). One timer does all the work that is not answered at once:
 * idle expiry, wait deadlines, rate-limit refills, and serving waiters
 * after a slot was released or a connection parked ("kick": due now).
 *
 * Serving order when something changed: first every waiter that can take
 * an idle connection of its key (reuse needs no new slot), then waiters in
 * FIFO order per destination while slots (and rate tokens) allow; a
 * destination (or the whole process) that is full while legs wait there
 * gets idle connections of other keys closed to make room — their slots
 * come back through mxg_conncache_release(), which kicks again. */
#include "conncache.h"

#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../core/log.h"
#include "../../core/metrics.h"
#include "../../policy/digest_memo.h"

#define N_BUCKETS 1024
#define GC_INTERVAL_MS 5000

struct dest {
    struct dest *hnext;               /* hash chain */
    struct dest *prev, *next;         /* all destinations */
    unsigned char addr[16];
    int family, port;
    char text[64];                    /* "192.0.2.1:25" for logs */
    int open;                         /* slots held (incl. idle and closing) */
    int closing;                      /* given to ops->close by us, not released yet */
    int n_idle;
    struct mxg_cc_slot *idle_head, *idle_tail;
    int n_wait;
    struct mxg_cc_wait *w_head, *w_tail;
    struct mxg_cc_slot *busy_head, *busy_tail; /* slots in use (granted, not idle) */
    int n_bwait;                      /* legs waiting for a busy connection of their key */
    struct mxg_cc_wait *bw_head, *bw_tail; /* those waits, arrival order (dprev/dnext) */
    double tokens;                    /* rate bucket */
    uint64_t t_tokens;                /* when tokens was computed */
};

struct mxg_cc_slot {
    struct dest *d;
    int idle, closing, busy;
    int no_park;                      /* mxg_conncache_no_park: never parked, nobody waits for it */
    void *conn;                       /* while idle */
    struct mxg_cc_key key;            /* idle: parked under; busy: granted for */
    const void *owner;                /* busy: whose transaction (acquire's owner) */
    int uses;                         /* transactions started on the connection */
    uint64_t gen;                     /* settings generation it was granted under */
    uint64_t born, parked;
    struct mxg_cc_slot *dprev, *dnext; /* dest idle list */
    struct mxg_cc_slot *gprev, *gnext; /* global idle list */
    struct mxg_cc_slot *bprev, *bnext; /* dest busy list */
};

struct mxg_cc_wait {
    struct dest *d;
    struct mxg_cc_key key;
    int allow_reuse;
    int on_busy;                      /* 1: for a busy connection of key (busy list) */
    const void *owner;
    mxg_cc_cb cb;
    void *arg;
    uint64_t since, deadline;
    struct mxg_cc_wait *dprev, *dnext; /* the dest's slot queue, or its busy waits (on_busy) */
    struct mxg_cc_wait *gprev, *gnext;
};

struct mxg_conncache {
    uv_loop_t *loop;
    struct mxg_conncache_cfg cfg;
    struct mxg_cc_ops ops;
    uv_timer_t tick;
    int tick_open;
    uint64_t due;                     /* when tick fires (UINT64_MAX: not armed) */
    int shut;
    int in_process;
    struct dest *buckets[N_BUCKETS];
    struct dest *dests;               /* all destinations */
    int n_dests;
    uint64_t last_gc;
    struct mxg_cc_slot *idle_head, *idle_tail;
    struct mxg_cc_wait *w_head, *w_tail;
    struct mxg_cc_wait *bw_head, *bw_tail; /* waits for a busy connection, arrival order */
    uint64_t gen;                     /* settings generation: +1 per reconfigure */
    int open, idle, closing, waiting, bwaiting;
    struct mxg_conncache_stats st;
    struct mxg_metrics *metrics;      /* borrowed: busy waits counted there too (or NULL) */
    char why[160];
    /* requirement digests and keys by their octets (owned; NULL: none). 256 x 4 slots
     * of at most 4 KB (a key's description, a requirement with its TLSA records):
     * the destinations of a busy relay, each hashed once while it stays in use */
    struct mxg_digest_memo *memo;
};

/* ------------------------------------------------------------ keys */

void mxg_cc_key_make(struct mxg_conncache *cc, const void *desc, size_t len,
                     struct mxg_cc_key *out)
{
    memset(out, 0, sizeof *out);
    if (mxg_digest_memo_sha256(cc ? cc->memo : NULL, desc, len, out->d) < 0)
        memset(out, 0xff, sizeof *out); /* cannot happen; never equal to a real digest by luck */
}

struct mxg_digest_memo *mxg_conncache_digest_memo(struct mxg_conncache *cc)
{
    return cc ? cc->memo : NULL;
}

static int key_eq(const struct mxg_cc_key *a, const struct mxg_cc_key *b)
{
    return memcmp(a->d, b->d, sizeof a->d) == 0;
}

/* ------------------------------------------------------------ lists */

#define DL_UNLINK(head, tail, x, prev, next)        \
    do {                                            \
        if ((x)->prev) (x)->prev->next = (x)->next; \
        else (head) = (x)->next;                    \
        if ((x)->next) (x)->next->prev = (x)->prev; \
        else (tail) = (x)->prev;                    \
        (x)->prev = (x)->next = NULL;               \
    } while (0)
#define DL_APPEND(head, tail, x, prev, next) \
    do {                                     \
        (x)->next = NULL;                    \
        (x)->prev = (tail);                  \
        if (tail) (tail)->next = (x);        \
        else (head) = (x);                   \
        (tail) = (x);                        \
    } while (0)

/* ------------------------------------------------------- destinations */

static int sa_parts(const struct sockaddr *sa, unsigned char addr[16], int *family, int *port)
{
    memset(addr, 0, 16);
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *s = (const struct sockaddr_in *)sa;
        memcpy(addr, &s->sin_addr, 4);
        *port = ntohs(s->sin_port);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)sa;
        memcpy(addr, &s->sin6_addr, 16);
        *port = ntohs(s->sin6_port);
    } else {
        return -1;
    }
    *family = sa->sa_family;
    return 0;
}

static unsigned dest_hash(const unsigned char addr[16], int family, int port)
{
    uint32_t h = 2166136261u;
    for (int i = 0; i < 16; i++)
        h = (h ^ addr[i]) * 16777619u;
    h = (h ^ (uint32_t)family) * 16777619u;
    h = (h ^ (uint32_t)port) * 16777619u;
    return h % N_BUCKETS;
}

static struct dest *dest_lookup(const struct mxg_conncache *cc, const unsigned char addr[16],
                               int family, int port)
{
    for (struct dest *d = cc->buckets[dest_hash(addr, family, port)]; d; d = d->hnext)
        if (d->family == family && d->port == port && memcmp(d->addr, addr, 16) == 0)
            return d;
    return NULL;
}

/* The destination record for sa, created when new; NULL: not IP, or out of memory. */
static struct dest *dest_get(struct mxg_conncache *cc, const struct sockaddr *sa)
{
    unsigned char addr[16];
    int family, port;
    if (sa_parts(sa, addr, &family, &port) < 0)
        return NULL;
    struct dest *d = dest_lookup(cc, addr, family, port);
    if (d)
        return d;
    d = calloc(1, sizeof *d);
    if (!d)
        return NULL;
    memcpy(d->addr, addr, 16);
    d->family = family;
    d->port = port;
    char a[INET6_ADDRSTRLEN] = "?";
    if (family == AF_INET)
        uv_ip4_name((const struct sockaddr_in *)sa, a, sizeof a);
    else
        uv_ip6_name((const struct sockaddr_in6 *)sa, a, sizeof a);
    snprintf(d->text, sizeof d->text, family == AF_INET6 ? "[%s]:%d" : "%s:%d", a, port);
    d->tokens = cc->cfg.dest_rate;
    d->t_tokens = uv_now(cc->loop);
    unsigned h = dest_hash(addr, family, port);
    d->hnext = cc->buckets[h];
    cc->buckets[h] = d;
    d->next = cc->dests;
    if (cc->dests)
        cc->dests->prev = d;
    cc->dests = d;
    cc->n_dests++;
    return d;
}

static void dest_free(struct mxg_conncache *cc, struct dest *d)
{
    unsigned h = dest_hash(d->addr, d->family, d->port);
    for (struct dest **pp = &cc->buckets[h]; *pp; pp = &(*pp)->hnext)
        if (*pp == d) {
            *pp = d->hnext;
            break;
        }
    if (d->prev)
        d->prev->next = d->next;
    else
        cc->dests = d->next;
    if (d->next)
        d->next->prev = d->prev;
    cc->n_dests--;
    free(d);
}

/* Refill d's token bucket up to now. */
static void tokens_refill(struct mxg_conncache *cc, struct dest *d, uint64_t now)
{
    if (cc->cfg.dest_rate <= 0)
        return;
    if (now > d->t_tokens) {
        d->tokens += (double)(now - d->t_tokens) * cc->cfg.dest_rate / 1000.0;
        if (d->tokens > cc->cfg.dest_rate)
            d->tokens = cc->cfg.dest_rate;
    }
    d->t_tokens = now;
}

/* ms until d has a token (0: now). */
static uint64_t tokens_wait(const struct mxg_conncache *cc, const struct dest *d)
{
    if (cc->cfg.dest_rate <= 0 || d->tokens >= 1.0)
        return 0;
    return (uint64_t)((1.0 - d->tokens) * 1000.0 / cc->cfg.dest_rate) + 1;
}

static int dest_removable(const struct mxg_conncache *cc, const struct dest *d, uint64_t now)
{
    if (d->open > 0 || d->n_wait > 0 || d->n_bwait > 0)
        return 0;
    if (cc->cfg.dest_rate > 0 && (double)(now - d->t_tokens) * cc->cfg.dest_rate / 1000.0 +
                                         d->tokens < cc->cfg.dest_rate)
        return 0; /* the bucket remembers recent connections */
    return 1;
}

/* ------------------------------------------------------------ timer */

static void process(struct mxg_conncache *cc);

static void on_tick(uv_timer_t *t)
{
    struct mxg_conncache *cc = t->data;
    cc->due = UINT64_MAX;
    process(cc);
}

/* Make the timer fire at `when` (absolute loop ms) unless it fires sooner. */
static void schedule(struct mxg_conncache *cc, uint64_t when)
{
    if (cc->shut || !cc->tick_open || cc->in_process)
        return;
    if (when >= cc->due)
        return;
    uint64_t now = uv_now(cc->loop);
    cc->due = when;
    uv_timer_start(&cc->tick, on_tick, when > now ? when - now : 0, 0);
}

static void kick(struct mxg_conncache *cc)
{
    schedule(cc, uv_now(cc->loop));
}

/* ------------------------------------------------------------ idle */

static void idle_unlink(struct mxg_conncache *cc, struct mxg_cc_slot *s)
{
    struct dest *d = s->d;
    DL_UNLINK(d->idle_head, d->idle_tail, s, dprev, dnext);
    DL_UNLINK(cc->idle_head, cc->idle_tail, s, gprev, gnext);
    s->idle = 0;
    d->n_idle--;
    cc->idle--;
}

/* Give an idle connection up: the owner closes it, the slot comes back
 * through mxg_conncache_release(). */
static void idle_close(struct mxg_conncache *cc, struct mxg_cc_slot *s, int lost, const char *why)
{
    void *conn = s->conn;
    idle_unlink(cc, s);
    s->conn = NULL;
    s->closing = 1;
    s->d->closing++;
    cc->closing++;
    LOG_D("conncache", "%s: closing an idle connection (%s, %d transaction%s)", s->d->text, why,
          s->uses, s->uses == 1 ? "" : "s");
    cc->ops.close(conn, lost);
}

static uint64_t idle_expiry(const struct mxg_conncache *cc, const struct mxg_cc_slot *s)
{
    uint64_t e = s->parked + cc->cfg.idle_ms;
    if (cc->cfg.lifetime_ms && s->born + cc->cfg.lifetime_ms < e)
        e = s->born + cc->cfg.lifetime_ms;
    return e;
}

/* The newest idle slot at d with key that is still within its lifetime
 * (expired ones met on the way are closed). */
static struct mxg_cc_slot *idle_take(struct mxg_conncache *cc, struct dest *d,
                                     const struct mxg_cc_key *key, uint64_t now)
{
    for (struct mxg_cc_slot *s = d->idle_tail, *p; s; s = p) {
        p = s->dprev;
        if (!key_eq(&s->key, key))
            continue;
        if (idle_expiry(cc, s) <= now) {
            cc->st.expired++;
            idle_close(cc, s, 0, "expired");
            continue;
        }
        idle_unlink(cc, s);
        return s;
    }
    return NULL;
}

/* ------------------------------------------------------------ slots */

static int have_slot(struct mxg_conncache *cc, struct dest *d, uint64_t now, const char **why)
{
    if (cc->cfg.max_conns > 0 && cc->open >= cc->cfg.max_conns) {
        snprintf(cc->why, sizeof cc->why, "global upstream connection limit %d reached",
                 cc->cfg.max_conns);
        *why = cc->why;
        return 0;
    }
    if (cc->cfg.dest_concurrency > 0 && d->open >= cc->cfg.dest_concurrency) {
        snprintf(cc->why, sizeof cc->why, "concurrency limit %d for %s reached",
                 cc->cfg.dest_concurrency, d->text);
        *why = cc->why;
        return 0;
    }
    tokens_refill(cc, d, now);
    if (cc->cfg.dest_rate > 0 && d->tokens < 1.0) {
        snprintf(cc->why, sizeof cc->why, "connection rate limit %d/s for %s reached",
                 cc->cfg.dest_rate, d->text);
        *why = cc->why;
        return 0;
    }
    return 1;
}

static struct mxg_cc_slot *slot_new(struct mxg_conncache *cc, struct dest *d, uint64_t now)
{
    struct mxg_cc_slot *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->d = d;
    s->born = now;
    s->gen = cc->gen;
    s->uses = 1;
    d->open++;
    cc->open++;
    if (cc->cfg.dest_rate > 0)
        d->tokens -= 1.0;
    cc->st.fresh++;
    return s;
}

/* ------------------------------------------------------------ busy */

/* Slot s now serves owner's transaction under key (granted fresh or reused). */
static void busy_add(struct mxg_cc_slot *s, const struct mxg_cc_key *key, const void *owner)
{
    struct dest *d = s->d;
    s->key = *key;
    s->owner = owner;
    s->busy = 1;
    DL_APPEND(d->busy_head, d->busy_tail, s, bprev, bnext);
}

/* w joins d's queue for a connection slot (and the global one), due limits.connection_wait
 * (1 s when 0: the wait that ends in LIMITED) from now. */
static void slot_wait_join(struct mxg_conncache *cc, struct dest *d, struct mxg_cc_wait *w,
                           uint64_t now)
{
    w->deadline = now + (cc->cfg.wait_ms ? cc->cfg.wait_ms : 1000);
    DL_APPEND(d->w_head, d->w_tail, w, dprev, dnext);
    DL_APPEND(cc->w_head, cc->w_tail, w, gprev, gnext);
    d->n_wait++;
    cc->waiting++;
    cc->st.waited++;
}

/* g (zeroed first) grants s, taken from the idle list, to owner under key: the connection
 * moves from the slot to the grant, the slot counts one more use and is busy again. */
static void grant_reused(struct mxg_conncache *cc, struct mxg_cc_grant *g, struct mxg_cc_slot *s,
                         const struct mxg_cc_key *key, const void *owner)
{
    memset(g, 0, sizeof *g);
    g->status = MXG_CC_REUSED;
    g->slot = s;
    g->conn = s->conn;
    g->uses = s->uses;
    s->conn = NULL;
    s->uses++;
    cc->st.reused++;
    busy_add(s, key, owner);
}

/* g (zeroed first) grants the new slot s to owner under key; s is busy from now on. */
static void grant_fresh(struct mxg_cc_grant *g, struct mxg_cc_slot *s, const struct mxg_cc_key *key,
                        const void *owner)
{
    memset(g, 0, sizeof *g);
    g->status = MXG_CC_FRESH;
    g->slot = s;
    busy_add(s, key, owner);
}

/* Slot s no longer serves a transaction (parked or released). */
static void busy_del(struct mxg_cc_slot *s)
{
    if (!s->busy)
        return;
    struct dest *d = s->d;
    DL_UNLINK(d->busy_head, d->busy_tail, s, bprev, bnext);
    s->busy = 0;
}

/* Whether a connection in use at d under key can be parked when its
 * transaction ends (so a leg of that key may wait for it) — not one of
 * owner's own (another leg of the same transaction: it frees only after).
 * One the owner said it will not park is off the list (mxg_conncache_no_park). */
static int busy_match(const struct mxg_conncache *cc, const struct dest *d,
                      const struct mxg_cc_key *key, const void *owner, uint64_t now)
{
    if (cc->cfg.idle_ms == 0 || cc->cfg.max_idle <= 0 || cc->cfg.max_idle_per_dest <= 0)
        return 0;
    for (const struct mxg_cc_slot *s = d->busy_head; s; s = s->bnext)
        if (key_eq(&s->key, key) && s->gen == cc->gen && (!owner || s->owner != owner) &&
            (cc->cfg.max_uses <= 0 || s->uses < cc->cfg.max_uses) &&
            (!cc->cfg.lifetime_ms || now - s->born < cc->cfg.lifetime_ms))
            return 1;
    return 0;
}

/* Whether one more leg may wait at d for a busy connection of key: fewer
 * than busy_waiters legs wait for one there already (0: nobody waits). */
static int bwait_room(const struct mxg_conncache *cc, const struct dest *d,
                      const struct mxg_cc_key *key)
{
    int n = 0;
    for (const struct mxg_cc_wait *w = d->bw_head; w && n < cc->cfg.busy_waiters; w = w->dnext)
        if (key_eq(&w->key, key))
            n++;
    return n < cc->cfg.busy_waiters;
}

/* Slot s will not be parked: out of the busy set, waiters re-examined (conncache.h). */
void mxg_conncache_no_park(struct mxg_conncache *cc, struct mxg_cc_slot *s)
{
    if (!cc || !s || s->idle)
        return;
    s->no_park = 1;
    if (!s->busy)
        return;
    busy_del(s);
    if (s->d->n_bwait) /* its waiters stop waiting for it now, not after busy_wait */
        kick(cc);
}

/* ------------------------------------------------------------ waiters */

static void wait_unlink(struct mxg_conncache *cc, struct mxg_cc_wait *w)
{
    struct dest *d = w->d;
    DL_UNLINK(d->w_head, d->w_tail, w, dprev, dnext);
    DL_UNLINK(cc->w_head, cc->w_tail, w, gprev, gnext);
    d->n_wait--;
    cc->waiting--;
}

/* Take w off the lists of waits for a busy connection. */
static void bwait_unlink(struct mxg_conncache *cc, struct mxg_cc_wait *w)
{
    DL_UNLINK(cc->bw_head, cc->bw_tail, w, gprev, gnext);
    DL_UNLINK(w->d->bw_head, w->d->bw_tail, w, dprev, dnext);
    w->d->n_bwait--;
    cc->bwaiting--;
}

/* Find one waiter that can be answered now; fill g. NULL if none. */
static struct mxg_cc_wait *servable(struct mxg_conncache *cc, uint64_t now, struct mxg_cc_grant *g)
{
    /* an idle connection of its key: anywhere in the queues */
    for (struct mxg_cc_wait *w = cc->w_head; w; w = w->gnext) {
        if (!w->allow_reuse || w->d->n_idle == 0)
            continue;
        struct mxg_cc_slot *s = idle_take(cc, w->d, &w->key, now);
        if (s) {
            grant_reused(cc, g, s, &w->key, w->owner);
            return w;
        }
    }
    /* a new slot for the head of a destination's queue */
    for (struct mxg_cc_wait *w = cc->w_head; w; w = w->gnext) {
        if (w->d->w_head != w)
            continue;
        const char *why;
        if (!have_slot(cc, w->d, now, &why))
            continue;
        struct mxg_cc_slot *s = slot_new(cc, w->d, now);
        if (!s)
            continue;
        grant_fresh(g, s, &w->key, w->owner);
        return w;
    }
    return NULL;
}

/* The first wait for a busy connection that is over, with its grant in g:
 * the connection was parked (REUSED), or it ended without being parked, or
 * busy_wait passed — then a new slot (FRESH) if one is free, else LIMITED
 * where acquire would have refused at once; otherwise the leg joins the
 * slot queue like any acquire (and the search goes on). NULL if none.
 * *how: why the wait ended, for the log. */
static struct mxg_cc_wait *busy_due(struct mxg_conncache *cc, uint64_t now, struct mxg_cc_grant *g,
                                    const char **how)
{
    for (struct mxg_cc_wait *w = cc->bw_head, *n; w; w = n) {
        n = w->gnext;
        struct dest *d = w->d;
        struct mxg_cc_slot *s = d->n_idle ? idle_take(cc, d, &w->key, now) : NULL;
        memset(g, 0, sizeof *g);
        if (s) {
            bwait_unlink(cc, w);
            grant_reused(cc, g, s, &w->key, w->owner);
            cc->st.busy_served++;
            mxg_metrics_inc(cc->metrics, MXG_M_UPSTREAM_BUSY, "reused");
            *how = "parked";
            return w;
        }
        if (w->deadline > now && busy_match(cc, d, &w->key, w->owner, now))
            continue;
        bwait_unlink(cc, w);
        if (w->deadline <= now) {
            cc->st.busy_timeouts++;
            mxg_metrics_inc(cc->metrics, MXG_M_UPSTREAM_BUSY, "timeout");
            *how = "timed out";
        } else {
            *how = "not parked";
        }
        const char *why = NULL;
        if (d->n_wait == 0 && have_slot(cc, d, now, &why)) {
            s = slot_new(cc, d, now);
            if (s) {
                grant_fresh(g, s, &w->key, w->owner);
                return w;
            }
        }
        int evictable = (d->n_idle > 0) || (cc->cfg.max_conns > 0 && cc->idle > 0);
        if (cc->cfg.wait_ms == 0 && !evictable) {
            if (why != cc->why)
                snprintf(cc->why, sizeof cc->why, "%s", why ? why : "no connection slot");
            g->status = MXG_CC_LIMITED;
            g->why = cc->why;
            cc->st.limited++;
            return w;
        }
        LOG_D("conncache", "%s: waiting for a connection slot: %s", d->text,
              why ? why : "other connections wait for this destination");
        w->on_busy = 0; /* same wait as acquire's: every slot wait is equally long */
        slot_wait_join(cc, d, w, now);
    }
    return NULL;
}

/* Close idle connections that stand in the way of waiting legs. */
static void make_room(struct mxg_conncache *cc)
{
    int global_full = cc->cfg.max_conns > 0 && cc->open >= cc->cfg.max_conns;
    int global_need = 0;
    for (struct dest *d = cc->dests; d; d = d->next) {
        if (d->n_wait == 0)
            continue;
        if (cc->cfg.dest_concurrency > 0 && d->open >= cc->cfg.dest_concurrency) {
            int need = d->n_wait - d->closing;
            while (need-- > 0 && d->idle_head) {
                cc->st.evicted++;
                idle_close(cc, d->idle_head, 0, "room for a waiting leg");
            }
        } else if (global_full) {
            global_need += d->n_wait;
        }
    }
    global_need -= cc->closing;
    while (global_need-- > 0 && cc->idle_head) {
        cc->st.evicted++;
        idle_close(cc, cc->idle_head, 0, "room under the global limit");
    }
}

/* ------------------------------------------------------------ the work */

static void gc_dests(struct mxg_conncache *cc, uint64_t now, int force)
{
    if (!force && now - cc->last_gc < GC_INTERVAL_MS)
        return;
    cc->last_gc = now;
    for (struct dest *d = cc->dests, *n; d; d = n) {
        n = d->next;
        if (dest_removable(cc, d, now))
            dest_free(cc, d);
    }
}

static void process(struct mxg_conncache *cc)
{
    if (cc->shut)
        return;
    uint64_t now = uv_now(cc->loop);
    cc->in_process = 1;
    /* idle connections past their time */
    for (struct mxg_cc_slot *s = cc->idle_head, *n; s; s = n) {
        n = s->gnext;
        if (idle_expiry(cc, s) <= now) {
            cc->st.expired++;
            idle_close(cc, s, 0, "idle time over");
            n = cc->idle_head; /* close may not touch the lists, but be safe */
        }
    }
    /* waits for a busy connection that are over (served, or moved to the slot queue) */
    for (;;) {
        struct mxg_cc_grant g;
        const char *how = "";
        struct mxg_cc_wait *w = busy_due(cc, now, &g, &how);
        if (!w)
            break;
        LOG_D("conncache", "%s: wait for a busy connection over after %llums (%s: %s)",
              w->d->text, (unsigned long long)(now - w->since), how,
              g.status == MXG_CC_REUSED ? "reused" : g.status == MXG_CC_FRESH ? "new" : "limited");
        mxg_cc_cb cb = w->cb;
        void *arg = w->arg;
        free(w);
        cc->in_process = 0;
        cb(arg, &g);
        cc->in_process = 1;
        if (cc->shut)
            return;
    }
    /* waits past their deadline, then every waiter that can be served;
     * callbacks may call back into the cache: restart from the top */
    for (;;) {
        struct mxg_cc_wait *w = cc->w_head;
        struct mxg_cc_grant g;
        if (w && w->deadline <= now) {
            wait_unlink(cc, w);
            memset(&g, 0, sizeof g);
            g.status = MXG_CC_LIMITED;
            snprintf(cc->why, sizeof cc->why,
                     "no connection to %s within %llus (concurrency %d, rate %d/s, total %d)",
                     w->d->text, (unsigned long long)((now - w->since) / 1000),
                     cc->cfg.dest_concurrency, cc->cfg.dest_rate, cc->cfg.max_conns);
            g.why = cc->why;
            cc->st.limited++;
            mxg_cc_cb cb = w->cb;
            void *arg = w->arg;
            free(w);
            cc->in_process = 0;
            cb(arg, &g);
            cc->in_process = 1;
            continue;
        }
        w = servable(cc, now, &g);
        if (!w)
            break;
        wait_unlink(cc, w);
        mxg_cc_cb cb = w->cb;
        void *arg = w->arg;
        LOG_D("conncache", "%s: waiter served after %llums (%s)", w->d->text,
              (unsigned long long)(now - w->since), g.status == MXG_CC_REUSED ? "reused" : "new");
        free(w);
        cc->in_process = 0;
        cb(arg, &g);
        cc->in_process = 1;
        if (cc->shut)
            return;
    }
    make_room(cc);
    gc_dests(cc, now, 0);
    cc->in_process = 0;
    /* next event */
    uint64_t next = UINT64_MAX;
    for (struct mxg_cc_slot *s = cc->idle_head; s; s = s->gnext) {
        uint64_t e = idle_expiry(cc, s);
        if (e < next)
            next = e;
    }
    if (cc->w_head && cc->w_head->deadline < next)
        next = cc->w_head->deadline;
    for (struct mxg_cc_wait *w = cc->bw_head; w; w = w->gnext)
        if (w->deadline < next)
            next = w->deadline;
    for (struct dest *d = cc->dests; d; d = d->next)
        if (d->w_head && cc->cfg.dest_rate > 0 && d->tokens < 1.0) {
            uint64_t e = now + tokens_wait(cc, d);
            if (e < next)
                next = e;
        }
    if (next != UINT64_MAX)
        schedule(cc, next);
}

/* ------------------------------------------------------------ public */

struct mxg_conncache *mxg_conncache_new(uv_loop_t *loop, const struct mxg_conncache_cfg *cfg,
                                        const struct mxg_cc_ops *ops)
{
    struct mxg_conncache *cc = calloc(1, sizeof *cc);
    if (!cc)
        return NULL;
    cc->loop = loop;
    cc->cfg = *cfg;
    cc->ops = *ops;
    cc->due = UINT64_MAX;
    uv_timer_init(loop, &cc->tick);
    cc->tick.data = cc;
    cc->tick_open = 1;
    cc->last_gc = uv_now(loop);
    cc->memo = mxg_digest_memo_new(256, 4096); /* NULL: every digest computed */
    return cc;
}

void mxg_conncache_reconfigure(struct mxg_conncache *cc, const struct mxg_conncache_cfg *cfg)
{
    if (!cc)
        return;
    cc->cfg = *cfg;
    cc->gen++; /* connections in use now were made under the old settings: never parked */
    while (cc->idle_head)
        idle_close(cc, cc->idle_head, 0, "reload");
    cc->due = UINT64_MAX;
    kick(cc);
}

uint64_t mxg_conncache_generation(const struct mxg_conncache *cc)
{
    return cc ? cc->gen : 0;
}

void mxg_conncache_shutdown(struct mxg_conncache *cc)
{
    if (!cc || cc->shut)
        return;
    while (cc->idle_head)
        idle_close(cc, cc->idle_head, 0, "shutting down");
    cc->shut = 1;
    if (cc->tick_open) {
        cc->tick_open = 0;
        if (!uv_is_closing((uv_handle_t *)&cc->tick))
            uv_close((uv_handle_t *)&cc->tick, NULL);
    }
}

void mxg_conncache_free(struct mxg_conncache *cc)
{
    if (!cc)
        return;
    mxg_conncache_shutdown(cc);
    while (cc->w_head) {
        struct mxg_cc_wait *w = cc->w_head;
        wait_unlink(cc, w);
        free(w);
    }
    while (cc->bw_head) {
        struct mxg_cc_wait *w = cc->bw_head;
        bwait_unlink(cc, w);
        free(w);
    }
    while (cc->dests)
        dest_free(cc, cc->dests); /* slots still held are the owners' leak, not ours to free */
    mxg_digest_memo_free(cc->memo);
    free(cc);
}

enum mxg_cc_status mxg_conncache_acquire(struct mxg_conncache *cc, const struct sockaddr *dest,
                                         const struct mxg_cc_key *key, int allow_reuse,
                                         const void *owner, mxg_cc_cb cb, void *arg,
                                         struct mxg_cc_wait **wp, struct mxg_cc_grant *now_g)
{
    memset(now_g, 0, sizeof *now_g);
    *wp = NULL;
    struct dest *d = dest_get(cc, dest);
    if (!d) {
        now_g->status = MXG_CC_LIMITED;
        now_g->why = "out of memory";
        return MXG_CC_LIMITED;
    }
    uint64_t now = uv_now(cc->loop);
    if (allow_reuse && !cc->shut && cc->cfg.idle_ms > 0 && d->n_idle > 0) {
        struct mxg_cc_slot *s = idle_take(cc, d, key, now);
        if (s) {
            grant_reused(cc, now_g, s, key, owner);
            return MXG_CC_REUSED;
        }
    }
    int busy = allow_reuse && !cc->shut && cc->cfg.busy_wait_ms > 0 &&
               cc->cfg.busy_waiters > 0 && busy_match(cc, d, key, owner, now);
    if (busy && !bwait_room(cc, d, key)) {
        /* the wait is for the rare collision: beyond busy_waiters, waiting
         * would queue a hot domain's transactions behind its connections */
        cc->st.busy_bounded++;
        mxg_metrics_inc(cc->metrics, MXG_M_UPSTREAM_BUSY, "bounded");
        LOG_D("conncache", "%s: %d leg%s wait for a busy connection of the same requirement "
              "already: opening another", d->text, cc->cfg.busy_waiters,
              cc->cfg.busy_waiters == 1 ? "" : "s");
        busy = 0;
    }
    if (busy) {
        /* a connection of this key is in use: it is likely parked soon, and
         * taking it over then beats opening another (and evicting others) */
        struct mxg_cc_wait *w = calloc(1, sizeof *w);
        if (w) {
            w->d = d;
            w->key = *key;
            w->allow_reuse = 1;
            w->on_busy = 1;
            w->owner = owner;
            w->cb = cb;
            w->arg = arg;
            w->since = now;
            w->deadline = now + cc->cfg.busy_wait_ms;
            DL_APPEND(cc->bw_head, cc->bw_tail, w, gprev, gnext);
            DL_APPEND(d->bw_head, d->bw_tail, w, dprev, dnext);
            d->n_bwait++;
            cc->bwaiting++;
            cc->st.busy_waited++;
            mxg_metrics_inc(cc->metrics, MXG_M_UPSTREAM_BUSY, "waited");
            LOG_D("conncache", "%s: waiting for a busy connection of the same requirement",
                  d->text);
            *wp = w;
            schedule(cc, w->deadline);
            return MXG_CC_WAIT;
        }
    }
    const char *why = NULL;
    if (cc->shut || (d->n_wait == 0 && have_slot(cc, d, now, &why))) {
        struct mxg_cc_slot *s = slot_new(cc, d, now);
        if (!s) {
            now_g->status = MXG_CC_LIMITED;
            now_g->why = "out of memory";
            return MXG_CC_LIMITED;
        }
        grant_fresh(now_g, s, key, owner);
        return MXG_CC_FRESH;
    }
    if (!why)
        why = "other connections wait for this destination";
    /* room could be made by closing an idle connection of another key */
    int evictable = (d->n_idle > 0) || (cc->cfg.max_conns > 0 && cc->idle > 0);
    if (cc->cfg.wait_ms == 0 && !evictable) {
        if (why != cc->why)
            snprintf(cc->why, sizeof cc->why, "%s", why);
        now_g->status = MXG_CC_LIMITED;
        now_g->why = cc->why;
        cc->st.limited++;
        if (dest_removable(cc, d, now))
            dest_free(cc, d);
        return MXG_CC_LIMITED;
    }
    struct mxg_cc_wait *w = calloc(1, sizeof *w);
    if (!w) {
        now_g->status = MXG_CC_LIMITED;
        now_g->why = "out of memory";
        return MXG_CC_LIMITED;
    }
    w->d = d;
    w->key = *key;
    w->allow_reuse = allow_reuse;
    w->owner = owner;
    w->cb = cb;
    w->arg = arg;
    w->since = now;
    slot_wait_join(cc, d, w, now);
    LOG_D("conncache", "%s: waiting for a connection slot: %s", d->text, why);
    *wp = w;
    kick(cc); /* make room at once when idle connections are in the way */
    return MXG_CC_WAIT;
}

void mxg_conncache_cancel(struct mxg_conncache *cc, struct mxg_cc_wait *w)
{
    if (!cc || !w)
        return;
    struct dest *d = w->d;
    if (w->on_busy)
        bwait_unlink(cc, w);
    else
        wait_unlink(cc, w);
    free(w);
    if (dest_removable(cc, d, uv_now(cc->loop)))
        dest_free(cc, d);
    if (cc->waiting)
        kick(cc);
}

int mxg_conncache_park(struct mxg_conncache *cc, struct mxg_cc_slot *s,
                       const struct mxg_cc_key *key, void *conn)
{
    if (!cc || !s || cc->shut || cc->cfg.idle_ms == 0 || s->idle || s->closing || s->no_park)
        return -1;
    if (s->gen != cc->gen) /* made under settings a reload replaced */
        return -1;
    uint64_t now = uv_now(cc->loop);
    if (cc->cfg.max_uses > 0 && s->uses >= cc->cfg.max_uses)
        return -1;
    if (cc->cfg.lifetime_ms && now - s->born >= cc->cfg.lifetime_ms)
        return -1;
    if (cc->cfg.max_idle <= 0 || cc->cfg.max_idle_per_dest <= 0)
        return -1;
    struct dest *d = s->d;
    while (d->n_idle >= cc->cfg.max_idle_per_dest && d->idle_head) {
        cc->st.evicted++;
        idle_close(cc, d->idle_head, 0, "per-destination cache size");
    }
    while (cc->idle >= cc->cfg.max_idle && cc->idle_head) {
        cc->st.evicted++;
        idle_close(cc, cc->idle_head, 0, "cache size");
    }
    busy_del(s);
    s->idle = 1;
    s->conn = conn;
    s->key = *key;
    s->parked = now;
    DL_APPEND(d->idle_head, d->idle_tail, s, dprev, dnext);
    DL_APPEND(cc->idle_head, cc->idle_tail, s, gprev, gnext);
    d->n_idle++;
    cc->idle++;
    if (cc->waiting || d->n_bwait) /* busy waits elsewhere cannot use it */
        kick(cc);
    else
        schedule(cc, idle_expiry(cc, s));
    return 0;
}

void mxg_conncache_lost(struct mxg_conncache *cc, struct mxg_cc_slot *s)
{
    if (!cc || !s || !s->idle)
        return;
    cc->st.lost++;
    idle_close(cc, s, 1, "closed by the server or unexpected data");
}

void mxg_conncache_release(struct mxg_conncache *cc, struct mxg_cc_slot *s)
{
    if (!cc || !s)
        return;
    struct dest *d = s->d;
    busy_del(s);
    if (s->idle)
        idle_unlink(cc, s);
    if (s->closing) {
        d->closing--;
        cc->closing--;
    }
    d->open--;
    cc->open--;
    free(s);
    if (cc->waiting || d->n_bwait)
        kick(cc);
    else if (dest_removable(cc, d, uv_now(cc->loop)))
        dest_free(cc, d);
}

void mxg_conncache_set_metrics(struct mxg_conncache *cc, struct mxg_metrics *m)
{
    cc->metrics = m;
}

void mxg_conncache_stats(const struct mxg_conncache *cc, struct mxg_conncache_stats *out)
{
    memset(out, 0, sizeof *out);
    if (!cc)
        return;
    *out = cc->st;
    out->open = cc->open;
    out->idle = cc->idle;
    out->waiting = cc->waiting;
    out->dests = cc->n_dests;
}

int mxg_conncache_dest_open(const struct mxg_conncache *cc, const struct sockaddr *dest)
{
    unsigned char addr[16];
    int family, port;
    if (!cc || sa_parts(dest, addr, &family, &port) < 0)
        return 0;
    const struct dest *d = dest_lookup(cc, addr, family, port);
    return d ? d->open : 0;
}

int mxg_conncache_enabled(const struct mxg_conncache *cc)
{
    return cc && !cc->shut && cc->cfg.idle_ms > 0;
}
