/* proxy/inbound/auth_throttle.c — failed AUTH attempts per client address and per
 * user name, in a bounded LRU table; see auth.h.
 *
 * A chained hash table (FNV-1a with a per-table random seed, so an attacker
 * choosing user names cannot aim at one chain in advance) plus a doubly linked
 * recency list: every lookup moves the entry to the front, a new entry
 * beyond max_entries evicts the least recently used entry that is neither
 * locked nor has a password check in flight (when there is none, nothing
 * is created and the caller fails closed: a flood of new keys cannot lift
 * a lockout). The table never holds more than
 * max_entries entries, whatever clients send.
 *
 * A shared table (mxg_auth_throttle_new_shared, for worker processes) is the same
 * structure in one MAP_SHARED mapping made before fork(), so its pointers are
 * valid in every worker: the entries come from a fixed pool of slots in it
 * (a key longer than a slot cannot be stored: the caller fails closed), and
 * every public function holds the table's process-shared, robust mutex (a
 * worker that dies holding it does not block the others). A holder that died may
 * have left the table half-updated: it is then poisoned (logged) and every
 * check is refused (fail closed), as is every call whose lock fails — for the
 * quarantine given to mxg_auth_throttle_new_shared(), then the next caller
 * empties the table (core/shm_mutex.h) and it counts afresh. Why not for good:
 * one crash would refuse every AUTH until a restart. Why not at once: emptied
 * failure counters give an attacker fresh attempts; after a quarantine of
 * max(auth.failure_window, auth.lockout) with every AUTH refused, every
 * window and lockout in the table would have run out anyway, so emptying it
 * gives no more attempts than the intact table would have. (A trusted-address
 * table forgets its addresses: a user lockout spares nobody until they
 * authenticate again — fail closed too.) */
#include "auth.h"

#include "../../core/log.h"
#include "../../core/shm_mutex.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <openssl/rand.h>

struct tentry {
    struct tentry *hnext;       /* hash chain */
    struct tentry *prev, *next; /* recency: head = most recently used */
    uint32_t h;
    int count;                  /* failures in the current window */
    int inflight;               /* password checks started, not yet finished */
    uint64_t window_start;
    uint64_t locked_until;      /* 0: not locked */
    uint64_t seen;              /* trusted-address tables: the last success */
    char key[];
};

struct mxg_auth_throttle {
    struct tentry **buckets;
    size_t nb; /* power of two */
    int n, max;
    uint32_t seed;
    struct tentry *head, *tail;
    /* shared tables only */
    int shared;
    size_t map_len;            /* the whole mapping, this struct at its start */
    pthread_mutex_t mu;        /* process-shared, robust */
    struct tentry *free_slots; /* slots given back, linked by hnext */
    char *slots;               /* the pool of max slots ... */
    int n_used;                /* ... slots[0 .. n_used) have been handed out (pages are
                                  touched only when a slot is first used) */
    struct mxg_shm_poison poison; /* a holder died: the table may be inconsistent */
};

/* A shared table's slot: the entry and the longest key any caller makes. */
#define SLOT_KEY_MAX MXG_AUTH_TRUST_KEY_MAX
#define SLOT_SIZE ((sizeof(struct tentry) + SLOT_KEY_MAX + 15) & ~(size_t)15)

/* Empty a shared table (its mutex held): every entry and slot forgotten. The
 * recovery after a holder died (shm_mutex.h). */
static void shared_clear_locked(void *table)
{
    struct mxg_auth_throttle *t = table;
    memset(t->buckets, 0, t->nb * sizeof *t->buckets);
    t->head = t->tail = NULL;
    t->n = 0;
    t->free_slots = NULL;
    t->n_used = 0;
}

/* Take a shared table's mutex (a no-op for a private one): 0, or -1 (not held) when
 * it cannot be taken or the table is poisoned — the caller refuses (fail closed). */
static int tlock(struct mxg_auth_throttle *t)
{
    static const struct mxg_shm_mutex_names names = {
        "smtp", "AUTH throttle table", "every AUTH is refused", "AUTH refused"};
    if (!t || !t->shared)
        return 0;
    const struct mxg_shm_recovery rec = {shared_clear_locked, t};
    return mxg_shm_mutex_lock(&t->mu, &t->poison, &rec, &names);
}

/* Release what tlock() took. */
static void tunlock(struct mxg_auth_throttle *t)
{
    if (t && t->shared)
        pthread_mutex_unlock(&t->mu);
}

/* A zeroed entry for a key of kl octets: calloc, or a shared table's free slot. */
static struct tentry *entry_alloc(struct mxg_auth_throttle *t, size_t kl)
{
    if (!t->shared)
        return calloc(1, sizeof(struct tentry) + kl + 1);
    if (kl + 1 > SLOT_KEY_MAX)
        return NULL;
    struct tentry *e = t->free_slots;
    if (e)
        t->free_slots = e->hnext;
    else if (t->n_used < t->max)
        e = (struct tentry *)(t->slots + (size_t)t->n_used++ * SLOT_SIZE);
    else
        return NULL;
    memset(e, 0, SLOT_SIZE);
    return e;
}

/* Give an entry back (entry_alloc's opposite). */
static void entry_free(struct mxg_auth_throttle *t, struct tentry *e)
{
    if (!t->shared) {
        free(e);
        return;
    }
    e->hnext = t->free_slots;
    t->free_slots = e;
}

static uint32_t hash_key(const struct mxg_auth_throttle *t, const char *key)
{
    uint32_t h = 2166136261u ^ t->seed;
    for (const unsigned char *p = (const unsigned char *)key; *p; p++) {
        h ^= *p;
        h *= 16777619u;
    }
    return h;
}

struct mxg_auth_throttle *mxg_auth_throttle_new(int max_entries)
{
    if (max_entries < 1)
        return NULL;
    struct mxg_auth_throttle *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->max = max_entries;
    t->nb = 16;
    while (t->nb < (size_t)max_entries && t->nb < ((size_t)1 << 24))
        t->nb <<= 1;
    t->buckets = calloc(t->nb, sizeof *t->buckets);
    if (!t->buckets) {
        free(t);
        return NULL;
    }
    if (RAND_bytes((unsigned char *)&t->seed, sizeof t->seed) != 1)
        t->seed = (uint32_t)(uintptr_t)t;
    return t;
}

struct mxg_auth_throttle *mxg_auth_throttle_new_shared(int max_entries, uint64_t quarantine_ms)
{
    if (max_entries < 1)
        return NULL;
    size_t nb = 16;
    while (nb < (size_t)max_entries && nb < ((size_t)1 << 24))
        nb <<= 1;
    size_t head = (sizeof(struct mxg_auth_throttle) + 15) & ~(size_t)15;
    size_t len = head + nb * sizeof(struct tentry *) + (size_t)max_entries * SLOT_SIZE;
    void *mem = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED)
        return NULL;
    struct mxg_auth_throttle *t = mem; /* the mapping is zeroed */
    t->shared = 1;
    t->map_len = len;
    t->max = max_entries;
    t->nb = nb;
    t->buckets = (struct tentry **)((char *)mem + head);
    t->slots = (char *)t->buckets + nb * sizeof(struct tentry *);
    t->poison.quarantine_ms = quarantine_ms;
    if (mxg_shm_mutex_init(&t->mu) < 0) {
        munmap(mem, len);
        return NULL;
    }
    if (RAND_bytes((unsigned char *)&t->seed, sizeof t->seed) != 1)
        t->seed = (uint32_t)(uintptr_t)t;
    return t;
}

void mxg_auth_throttle_free(struct mxg_auth_throttle *t)
{
    if (!t)
        return;
    if (t->shared) { /* this process's view only: the others keep theirs */
        munmap(t, t->map_len);
        return;
    }
    struct tentry *e = t->head;
    while (e) {
        struct tentry *next = e->next;
        free(e);
        e = next;
    }
    free(t->buckets);
    free(t);
}

static void lru_unlink(struct mxg_auth_throttle *t, struct tentry *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        t->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        t->tail = e->prev;
    e->prev = e->next = NULL;
}

static void lru_push_front(struct mxg_auth_throttle *t, struct tentry *e)
{
    e->prev = NULL;
    e->next = t->head;
    if (t->head)
        t->head->prev = e;
    t->head = e;
    if (!t->tail)
        t->tail = e;
}

static struct tentry *find(struct mxg_auth_throttle *t, const char *key, uint32_t h)
{
    for (struct tentry *e = t->buckets[h & (t->nb - 1)]; e; e = e->hnext)
        if (e->h == h && strcmp(e->key, key) == 0)
            return e;
    return NULL;
}

static void remove_entry(struct mxg_auth_throttle *t, struct tentry *e)
{
    struct tentry **pp = &t->buckets[e->h & (t->nb - 1)];
    while (*pp && *pp != e)
        pp = &(*pp)->hnext;
    if (*pp)
        *pp = e->hnext;
    lru_unlink(t, e);
    entry_free(t, e);
    t->n--;
}

/* The entry for key, moved to the front; created if create (when full,
 * evicting the least recently used entry that is neither locked at now_ms
 * nor has a check in flight); NULL if absent, no memory, or every entry is
 * locked or busy (the caller fails closed). */
static struct tentry *lookup(struct mxg_auth_throttle *t, const char *key, int create,
                             uint64_t now_ms)
{
    uint32_t h = hash_key(t, key);
    struct tentry *e = find(t, key, h);
    if (e) {
        lru_unlink(t, e);
        lru_push_front(t, e);
        return e;
    }
    if (!create)
        return NULL;
    size_t kl = strlen(key);
    if (t->shared && kl + 1 > SLOT_KEY_MAX)
        return NULL;
    e = t->shared ? NULL : entry_alloc(t, kl); /* a shared slot is taken after the eviction */
    if (!e && !t->shared)
        return NULL;
    if (t->n >= t->max) {
        /* forgetting a lockout or a running check would lift the limit */
        struct tentry *victim = t->tail;
        while (victim && (victim->inflight > 0 || victim->locked_until > now_ms))
            victim = victim->prev;
        if (!victim) {
            if (e)
                entry_free(t, e);
            return NULL;
        }
        remove_entry(t, victim);
    }
    if (!e && !(e = entry_alloc(t, kl)))
        return NULL;
    memcpy(e->key, key, kl + 1);
    e->h = h;
    e->hnext = t->buckets[h & (t->nb - 1)];
    t->buckets[h & (t->nb - 1)] = e;
    lru_push_front(t, e);
    t->n++;
    return e;
}

/* The lockout is over: the key starts afresh; a window past its end too. */
static void expire(struct tentry *e, uint64_t now_ms, uint64_t window_ms)
{
    if (e->locked_until && e->locked_until <= now_ms) {
        e->locked_until = 0;
        e->count = 0;
    }
    /* now_ms may be a little behind window_start: another worker process's loop time
     * (CLOCK_MONOTONIC, read at its loop's last turn) started the window */
    if (e->count && now_ms > e->window_start && now_ms - e->window_start >= window_ms)
        e->count = 0;
}

/* mxg_auth_throttle_locked() without the lock. */
static uint64_t auth_throttle_locked_in(struct mxg_auth_throttle *t, const char *key, uint64_t now_ms)
{
    if (!t || !key)
        return 0;
    struct tentry *e = lookup(t, key, 0, now_ms);
    if (!e || e->locked_until <= now_ms)
        return 0;
    return e->locked_until - now_ms;
}

/* Under the lock: the quarantine after a holder's death (mxg_shm_mutex_lock) covers
 * every window and lockout ever written into t, including ones a reload lengthened
 * after start-up, so emptying the table never lifts a lockout early. Never lowered:
 * entries written under the longer settings stay in the table. */
static void quarantine_cover(struct mxg_auth_throttle *t, uint64_t window_ms, uint64_t lockout_ms)
{
    uint64_t need = window_ms > lockout_ms ? window_ms : lockout_ms;
    if (t->poison.quarantine_ms < need)
        t->poison.quarantine_ms = need;
}

/* mxg_auth_throttle_fail() without the lock. */
static int auth_throttle_fail_in(struct mxg_auth_throttle *t, const char *key, uint64_t now_ms, int max,
                           uint64_t window_ms, uint64_t lockout_ms)
{
    if (!t || !key || max < 1)
        return 0;
    quarantine_cover(t, window_ms, lockout_ms);
    struct tentry *e = lookup(t, key, 1, now_ms);
    if (!e)
        return 0;
    expire(e, now_ms, window_ms);
    if (e->count == 0) {
        e->count = 0;
        e->window_start = now_ms;
    }
    e->count++;
    if (e->count >= max && !e->locked_until)
        e->locked_until = now_ms + (lockout_ms ? lockout_ms : 1);
    return e->count;
}

/* mxg_auth_throttle_start() without the lock. */
static int auth_throttle_start_in(struct mxg_auth_throttle *t, const char *key, uint64_t now_ms, int max,
                            uint64_t window_ms)
{
    if (!t || !key || max < 1)
        return 0; /* fail closed */
    quarantine_cover(t, window_ms, 0);
    struct tentry *e = lookup(t, key, 1, now_ms);
    if (!e)
        return -1; /* no room: every entry is locked or has a check running */
    expire(e, now_ms, window_ms);
    if ((e->locked_until && e->locked_until > now_ms) || e->count + e->inflight >= max)
        return 0;
    e->inflight++;
    return 1;
}

/* mxg_auth_throttle_finish() without the lock. */
static void auth_throttle_finish_in(struct mxg_auth_throttle *t, const char *key)
{
    if (!t || !key)
        return;
    struct tentry *e = find(t, key, hash_key(t, key));
    if (e && e->inflight > 0)
        e->inflight--;
}

/* mxg_auth_throttle_inflight() without the lock. */
static int auth_throttle_inflight_in(struct mxg_auth_throttle *t, const char *key)
{
    struct tentry *e = t && key ? find(t, key, hash_key(t, key)) : NULL;
    return e ? e->inflight : 0;
}

/* "ADDRKEY user:NAME": the trusted-address table's key. */
static int trust_key(const char *addr_key, const char *user, char *out, size_t cap)
{
    int n = snprintf(out, cap, "%s user:%s", addr_key, user);
    return n > 0 && (size_t)n < cap ? 0 : -1;
}

/* mxg_auth_trust_mark() without the lock. */
static void auth_trust_mark_in(struct mxg_auth_throttle *t, const char *addr_key, const char *user,
                         uint64_t when_ms)
{
    char k[MXG_AUTH_TRUST_KEY_MAX];
    if (!t || !addr_key || !user || trust_key(addr_key, user, k, sizeof k) < 0)
        return;
    struct tentry *e = lookup(t, k, 1, 0);
    if (e && when_ms > e->seen)
        e->seen = when_ms;
}

/* mxg_auth_trusted() without the lock. */
static int auth_trusted_in(struct mxg_auth_throttle *t, const char *addr_key, const char *user,
                     uint64_t now_ms, uint64_t lifetime_ms)
{
    char k[MXG_AUTH_TRUST_KEY_MAX];
    if (!t || !addr_key || !user || lifetime_ms == 0 || trust_key(addr_key, user, k, sizeof k) < 0)
        return 0;
    struct tentry *e = lookup(t, k, 0, 0);
    if (!e || e->seen == 0)
        return 0;
    return e->seen <= now_ms ? now_ms - e->seen < lifetime_ms : 1;
}

/* mxg_auth_throttle_clear() without the lock. */
static void auth_throttle_clear_in(struct mxg_auth_throttle *t, const char *key)
{
    if (!t || !key)
        return;
    struct tentry *e = find(t, key, hash_key(t, key));
    if (e)
        remove_entry(t, e);
}

int mxg_auth_throttle_size(const struct mxg_auth_throttle *t)
{
    return t ? __atomic_load_n(&t->n, __ATOMIC_RELAXED) : 0;
}

void mxg_auth_throttle_addr_key(const struct sockaddr *sa, char *out, size_t cap)
{
    char a[INET6_ADDRSTRLEN] = "?";
    if (sa && sa->sa_family == AF_INET) {
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, a, sizeof a);
        snprintf(out, cap, "ip:%s", a);
        return;
    }
    if (sa && sa->sa_family == AF_INET6) {
        struct in6_addr x = ((const struct sockaddr_in6 *)sa)->sin6_addr;
        if (IN6_IS_ADDR_V4MAPPED(&x)) {
            inet_ntop(AF_INET, x.s6_addr + 12, a, sizeof a);
            snprintf(out, cap, "ip:%s", a);
            return;
        }
        memset(x.s6_addr + 8, 0, 8); /* one key per /64: what one client can hop across */
        inet_ntop(AF_INET6, &x, a, sizeof a);
        snprintf(out, cap, "ip:%s/64", a);
        return;
    }
    snprintf(out, cap, "ip:?");
}

/* ------------------------------------------------------------ the public functions: a
 * shared table's mutex held around each (auth.h) */

uint64_t mxg_auth_throttle_locked(struct mxg_auth_throttle *t, const char *key, uint64_t now_ms)
{
    if (tlock(t) < 0)
        return 1; /* refused: as if locked */
    uint64_t r = auth_throttle_locked_in(t, key, now_ms);
    tunlock(t);
    return r;
}

int mxg_auth_throttle_fail(struct mxg_auth_throttle *t, const char *key, uint64_t now_ms, int max,
                           uint64_t window_ms, uint64_t lockout_ms)
{
    if (tlock(t) < 0)
        return 0; /* not counted: every check is refused anyway */
    int r = auth_throttle_fail_in(t, key, now_ms, max, window_ms, lockout_ms);
    tunlock(t);
    return r;
}

int mxg_auth_throttle_start(struct mxg_auth_throttle *t, const char *key, uint64_t now_ms, int max,
                            uint64_t window_ms)
{
    if (tlock(t) < 0)
        return 0; /* refuse */
    int r = auth_throttle_start_in(t, key, now_ms, max, window_ms);
    tunlock(t);
    return r;
}

void mxg_auth_throttle_finish(struct mxg_auth_throttle *t, const char *key)
{
    if (tlock(t) < 0)
        return;
    auth_throttle_finish_in(t, key);
    tunlock(t);
}

int mxg_auth_throttle_inflight(struct mxg_auth_throttle *t, const char *key)
{
    if (tlock(t) < 0)
        return 0;
    int r = auth_throttle_inflight_in(t, key);
    tunlock(t);
    return r;
}

void mxg_auth_trust_mark(struct mxg_auth_throttle *t, const char *addr_key, const char *user,
                         uint64_t when_ms)
{
    if (tlock(t) < 0)
        return;
    auth_trust_mark_in(t, addr_key, user, when_ms);
    tunlock(t);
}

int mxg_auth_trusted(struct mxg_auth_throttle *t, const char *addr_key, const char *user,
                     uint64_t now_ms, uint64_t lifetime_ms)
{
    if (tlock(t) < 0)
        return 0; /* not trusted */
    int r = auth_trusted_in(t, addr_key, user, now_ms, lifetime_ms);
    tunlock(t);
    return r;
}

void mxg_auth_throttle_clear(struct mxg_auth_throttle *t, const char *key)
{
    if (tlock(t) < 0)
        return;
    auth_throttle_clear_in(t, key);
    tunlock(t);
}

void mxg_auth_throttle_test_hold(struct mxg_auth_throttle *t)
{
    tlock(t);
}
