/* tls/tls_shared.c — see tls_shared.h.
 *
 * Layout of the mapping: the header (mutex, counters), then max entries'
 * headers (32 octets each: scanned on every call, so a scan of 1000 entries
 * reads 32 KiB), then their keys, then their data slots. Entries are found by
 * a linear scan comparing a 64-bit hash of the key first: the table is small
 * (upstream.tls_session_cache) and a call is made once per upstream TLS
 * connection or ticket, beside a handshake that costs far more. */
#include "tls/tls_shared.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/mman.h>

#include "core/log.h"
#include "core/shm_mutex.h"

/* One entry's header. used == 0: a free slot. */
struct sentry {
    uint64_t hash;    /* of the key (FNV-1a) */
    uint64_t stamp;   /* the table's clock when stored or last used (LRU) */
    int64_t expires;  /* time(NULL) seconds */
    uint32_t len;     /* octets of data */
    uint8_t keylen;
    uint8_t once;     /* take-once (a TLS 1.3 ticket) */
    uint8_t used;
    uint8_t pad;
};

struct mxg_tls_shared {
    pthread_mutex_t mu;   /* process-shared, robust */
    struct mxg_shm_poison poison; /* a holder died: an entry may be half-written */
    int max;              /* entries */
    int count;            /* entries in use */
    uint64_t clock;       /* LRU stamps */
    uint64_t gen;         /* the settings generation (atomic) */
    size_t map_len;       /* the whole mapping */
    size_t off_keys, off_data; /* from the start of the mapping */
};

#define HEAD_SIZE ((sizeof(struct mxg_tls_shared) + 63) & ~(size_t)63)

/* The entry headers, keys and data of s (offsets, never pointers, in the mapping). */
static struct sentry *entries(struct mxg_tls_shared *s)
{
    return (struct sentry *)((char *)s + HEAD_SIZE);
}
static unsigned char *key_of(struct mxg_tls_shared *s, int i)
{
    return (unsigned char *)s + s->off_keys + (size_t)i * MXG_TLS_SHARED_KEY_MAX;
}
static unsigned char *data_of(struct mxg_tls_shared *s, int i)
{
    return (unsigned char *)s + s->off_data + (size_t)i * MXG_TLS_SHARED_SLOT;
}

/* FNV-1a, 64 bits: a quick first comparison (the key is compared in full after). */
static uint64_t key_hash(const unsigned char *k, size_t n)
{
    uint64_t h = 14695981039346656037ull;
    for (size_t i = 0; i < n; i++) {
        h ^= k[i];
        h *= 1099511628211ull;
    }
    return h;
}

size_t mxg_tls_shared_size(int max_entries)
{
    if (max_entries < 1)
        return 0;
    size_t n = (size_t)max_entries;
    size_t keys = HEAD_SIZE + ((n * sizeof(struct sentry) + 63) & ~(size_t)63);
    size_t data = keys + ((n * MXG_TLS_SHARED_KEY_MAX + 63) & ~(size_t)63);
    return data + n * MXG_TLS_SHARED_SLOT;
}

struct mxg_tls_shared *mxg_tls_shared_new(int max_entries)
{
    size_t len = mxg_tls_shared_size(max_entries);
    if (len == 0)
        return NULL;
    void *mem = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED)
        return NULL;
    struct mxg_tls_shared *s = mem; /* the mapping is zeroed */
    size_t n = (size_t)max_entries;
    s->max = max_entries;
    s->map_len = len;
    s->off_keys = HEAD_SIZE + ((n * sizeof(struct sentry) + 63) & ~(size_t)63);
    s->off_data = s->off_keys + ((n * MXG_TLS_SHARED_KEY_MAX + 63) & ~(size_t)63);
    if (mxg_shm_mutex_init(&s->mu) < 0) {
        munmap(mem, len);
        return NULL;
    }
    return s;
}

void mxg_tls_shared_free(struct mxg_tls_shared *s)
{
    if (s)
        munmap(s, s->map_len);
}

/* Forget every entry (the lock held): also the recovery after a holder died
 * (any entry may be half-written: none is used again). */
static void clear_locked(void *table)
{
    struct mxg_tls_shared *s = table;
    struct sentry *es = entries(s);
    for (int i = 0; i < s->max; i++)
        es[i].used = 0;
    s->count = 0;
}

/* Take the mutex: 0, or -1 (not held) when it cannot be taken — the caller
 * finds / stores nothing. After a holder died the first locker empties the
 * table (quarantine 0: a resumption is only an optimisation) and goes on. */
static int slock(struct mxg_tls_shared *s)
{
    static const struct mxg_shm_mutex_names names = {
        "tls", "TLS session cache", "no session is resumed (full handshakes)",
        "no session resumed"};
    const struct mxg_shm_recovery rec = {clear_locked, s};
    return mxg_shm_mutex_lock(&s->mu, &s->poison, &rec, &names);
}

/* Free entry i (the lock held). */
static void drop(struct mxg_tls_shared *s, int i)
{
    entries(s)[i].used = 0;
    s->count--;
}

/* Whether entry i is in use under key (hash h). */
static int matches(struct mxg_tls_shared *s, int i, uint64_t h, const void *key, size_t keylen)
{
    const struct sentry *e = &entries(s)[i];
    return e->used && e->hash == h && e->keylen == keylen && memcmp(key_of(s, i), key, keylen) == 0;
}

int mxg_tls_shared_put(struct mxg_tls_shared *s, const void *key, size_t keylen, const void *data,
                       size_t len, int64_t expires, int once, int64_t now)
{
    if (!s || !key || keylen == 0 || keylen > MXG_TLS_SHARED_KEY_MAX || !data || len == 0 ||
        len > MXG_TLS_SHARED_SLOT || expires <= now)
        return 0;
    uint64_t h = key_hash(key, keylen);
    if (slock(s) < 0)
        return 0;
    struct sentry *es = entries(s);
    int mine = 0, mine_old = -1, free_i = -1, lru = -1;
    for (int i = 0; i < s->max; i++) {
        if (es[i].used && es[i].expires <= now)
            drop(s, i); /* expired: free for this one */
        if (!es[i].used) {
            if (free_i < 0)
                free_i = i;
            continue;
        }
        if (lru < 0 || es[i].stamp < es[lru].stamp)
            lru = i;
        if (matches(s, i, h, key, keylen)) {
            mine++;
            if (mine_old < 0 || es[i].stamp < es[mine_old].stamp)
                mine_old = i;
        }
    }
    int i = mine >= MXG_TLS_SHARED_PER_KEY ? mine_old : free_i >= 0 ? free_i : lru;
    if (es[i].used)
        drop(s, i);
    es[i].hash = h;
    es[i].stamp = ++s->clock;
    es[i].expires = expires;
    es[i].len = (uint32_t)len;
    es[i].keylen = (uint8_t)keylen;
    es[i].once = once != 0;
    memcpy(key_of(s, i), key, keylen);
    memcpy(data_of(s, i), data, len);
    es[i].used = 1;
    s->count++;
    pthread_mutex_unlock(&s->mu);
    return 1;
}

int mxg_tls_shared_take(struct mxg_tls_shared *s, const void *key, size_t keylen, int64_t now,
                        void *buf, size_t cap, size_t *len)
{
    if (len)
        *len = 0;
    if (!s || !key || keylen == 0 || keylen > MXG_TLS_SHARED_KEY_MAX || !buf || !len)
        return 0;
    uint64_t h = key_hash(key, keylen);
    if (slock(s) < 0)
        return 0;
    struct sentry *es = entries(s);
    int best = -1;
    for (int i = 0; i < s->max; i++) {
        if (!matches(s, i, h, key, keylen))
            continue;
        if (es[i].expires <= now)
            drop(s, i);
        else if (best < 0 || es[i].stamp > es[best].stamp)
            best = i;
    }
    int found = 0;
    if (best >= 0 && es[best].len <= cap) {
        memcpy(buf, data_of(s, best), es[best].len);
        *len = es[best].len;
        found = 1;
    }
    if (best >= 0 && (es[best].once || !found))
        drop(s, best);
    else if (best >= 0)
        es[best].stamp = ++s->clock;
    pthread_mutex_unlock(&s->mu);
    return found;
}

int mxg_tls_shared_drop(struct mxg_tls_shared *s, const void *key, size_t keylen, const void *data,
                        size_t len)
{
    if (!s || !key || keylen == 0 || keylen > MXG_TLS_SHARED_KEY_MAX || !data || len == 0 ||
        len > MXG_TLS_SHARED_SLOT)
        return 0;
    uint64_t h = key_hash(key, keylen);
    if (slock(s) < 0)
        return 0;
    struct sentry *es = entries(s);
    int n = 0;
    for (int i = 0; i < s->max; i++) {
        if (matches(s, i, h, key, keylen) && es[i].len == len &&
            memcmp(data_of(s, i), data, len) == 0) {
            drop(s, i);
            n++;
        }
    }
    pthread_mutex_unlock(&s->mu);
    return n;
}

int mxg_tls_shared_count(struct mxg_tls_shared *s)
{
    if (!s || slock(s) < 0)
        return 0;
    int n = s->count;
    pthread_mutex_unlock(&s->mu);
    return n;
}

void mxg_tls_shared_clear(struct mxg_tls_shared *s)
{
    if (!s || slock(s) < 0)
        return;
    clear_locked(s);
    pthread_mutex_unlock(&s->mu);
}

uint64_t mxg_tls_shared_generation(const struct mxg_tls_shared *s)
{
    return s ? __atomic_load_n(&s->gen, __ATOMIC_ACQUIRE) : 0;
}

uint64_t mxg_tls_shared_next_generation(struct mxg_tls_shared *s)
{
    return s ? __atomic_add_fetch(&s->gen, 1, __ATOMIC_ACQ_REL) : 0;
}

uint64_t mxg_tls_shared_advance(struct mxg_tls_shared *s, uint64_t from)
{
    if (!s)
        return 0;
    uint64_t want = from + 1;
    if (__atomic_compare_exchange_n(&s->gen, &from, want, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
        return want;
    return from; /* someone else raised it: its value */
}

int mxg_tls_shared_poisoned(struct mxg_tls_shared *s)
{
    if (!s)
        return 0;
    if (slock(s) < 0)
        return 1;
    pthread_mutex_unlock(&s->mu);
    return 0;
}

void mxg_tls_shared_test_hold(struct mxg_tls_shared *s)
{
    if (s)
        slock(s);
}
