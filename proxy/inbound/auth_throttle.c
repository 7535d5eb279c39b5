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
 * max_entries entries, whatever clients send. */
#include "auth.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

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
};

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

void mxg_auth_throttle_free(struct mxg_auth_throttle *t)
{
    if (!t)
        return;
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
    free(e);
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
    e = calloc(1, sizeof *e + kl + 1);
    if (!e)
        return NULL;
    if (t->n >= t->max) {
        /* forgetting a lockout or a running check would lift the limit */
        struct tentry *victim = t->tail;
        while (victim && (victim->inflight > 0 || victim->locked_until > now_ms))
            victim = victim->prev;
        if (!victim) {
            free(e);
            return NULL;
        }
        remove_entry(t, victim);
    }
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
    if (e->count && now_ms - e->window_start >= window_ms)
        e->count = 0;
}

uint64_t mxg_auth_throttle_locked(struct mxg_auth_throttle *t, const char *key, uint64_t now_ms)
{
    if (!t || !key)
        return 0;
    struct tentry *e = lookup(t, key, 0, now_ms);
    if (!e || e->locked_until <= now_ms)
        return 0;
    return e->locked_until - now_ms;
}

int mxg_auth_throttle_fail(struct mxg_auth_throttle *t, const char *key, uint64_t now_ms, int max,
                           uint64_t window_ms, uint64_t lockout_ms)
{
    if (!t || !key || max < 1)
        return 0;
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

int mxg_auth_throttle_start(struct mxg_auth_throttle *t, const char *key, uint64_t now_ms, int max,
                            uint64_t window_ms)
{
    if (!t || !key || max < 1)
        return 0; /* fail closed */
    struct tentry *e = lookup(t, key, 1, now_ms);
    if (!e)
        return -1; /* no room: every entry is locked or has a check running */
    expire(e, now_ms, window_ms);
    if ((e->locked_until && e->locked_until > now_ms) || e->count + e->inflight >= max)
        return 0;
    e->inflight++;
    return 1;
}

void mxg_auth_throttle_finish(struct mxg_auth_throttle *t, const char *key)
{
    if (!t || !key)
        return;
    struct tentry *e = find(t, key, hash_key(t, key));
    if (e && e->inflight > 0)
        e->inflight--;
}

int mxg_auth_throttle_inflight(struct mxg_auth_throttle *t, const char *key)
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

void mxg_auth_trust_mark(struct mxg_auth_throttle *t, const char *addr_key, const char *user,
                         uint64_t when_ms)
{
    char k[MXG_AUTH_TRUST_KEY_MAX];
    if (!t || !addr_key || !user || trust_key(addr_key, user, k, sizeof k) < 0)
        return;
    struct tentry *e = lookup(t, k, 1, 0);
    if (e && when_ms > e->seen)
        e->seen = when_ms;
}

int mxg_auth_trusted(struct mxg_auth_throttle *t, const char *addr_key, const char *user,
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

void mxg_auth_throttle_clear(struct mxg_auth_throttle *t, const char *key)
{
    if (!t || !key)
        return;
    struct tentry *e = find(t, key, hash_key(t, key));
    if (e)
        remove_entry(t, e);
}

int mxg_auth_throttle_size(const struct mxg_auth_throttle *t)
{
    return t ? t->n : 0;
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
