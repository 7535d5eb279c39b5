/* dns/dnscache.c — see dnscache.h.
 *
 * Design: a chained hash table (power-of-two buckets, grown x2 when the load
 * passes 1, never beyond what max_entries needs) for lookup plus a doubly
 * linked list in recency order (head = most recent) for LRU eviction. One
 * allocation per entry: the struct, then the name, then the value. Expired
 * entries are dropped when a get meets them, by purge, or by LRU eviction.
 */
#include "dnscache.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define NAME_MAX_LEN 255      /* presentation names dns.c produces fit */
#define INITIAL_BUCKETS 64

struct entry {
    struct entry *hnext;        /* bucket chain */
    struct entry *newer, *older; /* recency list */
    uint64_t expires;
    uint32_t hash;
    uint16_t rrtype;
    size_t namelen, len;
    unsigned char *val;          /* points into this allocation */
    char name[];                 /* NUL-terminated, then the value */
};

struct mxg_dnscache {
    size_t max_entries;
    uint64_t max_ttl_ms, negative_ttl_ms;
    struct entry **bucket;
    size_t nbuckets;             /* power of two, 0 while nothing stored */
    struct entry *newest, *oldest;
    struct mxg_dnscache_stats st;
};

/* Normalised key name into out (NAME_MAX_LEN + 1); its length, or -1. */
static int key_name(const char *in, char *out)
{
    size_t n = in ? strlen(in) : 0;
    if (!in)
        return -1;
    if (n > 0 && in[n - 1] == '.' && !(n >= 2 && in[n - 2] == '\\'))
        n--;
    if (n > NAME_MAX_LEN)
        return -1;
    for (size_t i = 0; i < n; i++) {
        char ch = in[i];
        out[i] = ch >= 'A' && ch <= 'Z' ? (char)(ch - 'A' + 'a') : ch;
    }
    out[n] = '\0';
    return (int)n;
}

/* FNV-1a over the name and the type. */
static uint32_t key_hash(const char *name, size_t n, uint16_t rrtype)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)name[i];
        h *= 16777619u;
    }
    h ^= rrtype & 0xff;
    h *= 16777619u;
    h ^= rrtype >> 8;
    h *= 16777619u;
    return h;
}

/* Contract: see dnscache.h. */
struct mxg_dnscache *mxg_dnscache_new(size_t max_entries, uint64_t max_ttl_ms,
                                      uint64_t negative_ttl_ms)
{
    struct mxg_dnscache *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->max_entries = max_entries;
    c->max_ttl_ms = max_ttl_ms;
    c->negative_ttl_ms = negative_ttl_ms;
    return c;
}

/* Contract: see dnscache.h. */
void mxg_dnscache_free(struct mxg_dnscache *c)
{
    if (!c)
        return;
    for (struct entry *e = c->newest, *next; e; e = next) {
        next = e->older;
        free(e);
    }
    free(c->bucket);
    free(c);
}

/* Contract: see dnscache.h. */
uint64_t mxg_dnscache_lifetime(const struct mxg_dnscache *c, int negative, uint32_t ttl_s)
{
    uint64_t cap = negative ? c->negative_ttl_ms : c->max_ttl_ms;
    if (ttl_s == MXG_DNSCACHE_TTL_UNKNOWN)
        return cap;
    uint64_t ms = (uint64_t)ttl_s * 1000u;
    return ms < cap ? ms : cap;
}

static void list_unlink(struct mxg_dnscache *c, struct entry *e)
{
    if (e->newer)
        e->newer->older = e->older;
    else
        c->newest = e->older;
    if (e->older)
        e->older->newer = e->newer;
    else
        c->oldest = e->newer;
    e->newer = e->older = NULL;
}

static void list_push_newest(struct mxg_dnscache *c, struct entry *e)
{
    e->newer = NULL;
    e->older = c->newest;
    if (c->newest)
        c->newest->newer = e;
    else
        c->oldest = e;
    c->newest = e;
}

/* The bucket slot that points at e (e must be in the table). */
static struct entry **slot_of(struct mxg_dnscache *c, const struct entry *e)
{
    struct entry **pp = &c->bucket[e->hash & (c->nbuckets - 1)];
    while (*pp != e)
        pp = &(*pp)->hnext;
    return pp;
}

/* Unlink e from both structures and free it. */
static void entry_drop(struct mxg_dnscache *c, struct entry *e)
{
    struct entry **pp = slot_of(c, e);
    *pp = e->hnext;
    list_unlink(c, e);
    c->st.bytes -= e->len;
    free(e);
    c->st.entries--;
}

static struct entry *find(struct mxg_dnscache *c, const char *name, size_t n, uint16_t rrtype,
                          uint32_t h)
{
    if (c->nbuckets == 0)
        return NULL;
    for (struct entry *e = c->bucket[h & (c->nbuckets - 1)]; e; e = e->hnext)
        if (e->hash == h && e->rrtype == rrtype && e->namelen == n && memcmp(e->name, name, n) == 0)
            return e;
    return NULL;
}

/* Make room for one more entry in the table (grow the buckets when the load
 * passes 1). Growing is best effort: a failed realloc keeps longer chains. */
static int table_reserve(struct mxg_dnscache *c)
{
    if (c->nbuckets == 0) {
        size_t nb = INITIAL_BUCKETS;
        c->bucket = calloc(nb, sizeof *c->bucket);
        if (!c->bucket)
            return -1;
        c->nbuckets = nb;
        return 0;
    }
    if (c->st.entries + 1 <= c->nbuckets || c->nbuckets >= c->max_entries)
        return 0;
    size_t nb = c->nbuckets * 2;
    struct entry **nbk = calloc(nb, sizeof *nbk);
    if (!nbk)
        return 0;
    for (size_t i = 0; i < c->nbuckets; i++) {
        for (struct entry *e = c->bucket[i], *next; e; e = next) {
            next = e->hnext;
            e->hnext = nbk[e->hash & (nb - 1)];
            nbk[e->hash & (nb - 1)] = e;
        }
    }
    free(c->bucket);
    c->bucket = nbk;
    c->nbuckets = nb;
    return 0;
}

/* Contract: see dnscache.h. */
int mxg_dnscache_put(struct mxg_dnscache *c, const char *name, uint16_t rrtype, int negative,
                     uint32_t ttl_s, const void *val, size_t len, uint64_t now)
{
    char key[NAME_MAX_LEN + 1];
    int n;
    if (!c || c->max_entries == 0 || (n = key_name(name, key)) < 0 || (len > 0 && !val))
        return 0;
    uint32_t h = key_hash(key, (size_t)n, rrtype);
    struct entry *old = find(c, key, (size_t)n, rrtype, h);
    if (old) {
        entry_drop(c, old); /* replaced below (or just gone when lifetime is 0) */
        c->st.replaced++;
    }
    uint64_t life = mxg_dnscache_lifetime(c, negative, ttl_s);
    if (life == 0)
        return 0;

    size_t budget = c->max_entries > SIZE_MAX / MXG_DNSCACHE_AVG_VALUE
                        ? SIZE_MAX
                        : c->max_entries * MXG_DNSCACHE_AVG_VALUE;
    if (len > budget)
        return 0; /* bigger than the whole budget: not cached */
    while ((c->st.entries >= c->max_entries || c->st.bytes + len > budget) && c->oldest) {
        if (c->oldest->expires <= now)
            c->st.expired++;
        else
            c->st.evicted++;
        entry_drop(c, c->oldest);
    }
    if (table_reserve(c) < 0)
        return -1;
    struct entry *e = malloc(sizeof *e + (size_t)n + 1 + len);
    if (!e)
        return -1;
    memset(e, 0, sizeof *e);
    e->hash = h;
    e->rrtype = rrtype;
    e->namelen = (size_t)n;
    memcpy(e->name, key, (size_t)n + 1);
    e->val = (unsigned char *)e->name + n + 1;
    e->len = len;
    if (len)
        memcpy(e->val, val, len);
    e->expires = now + life < now ? UINT64_MAX : now + life;

    struct entry **b = &c->bucket[h & (c->nbuckets - 1)];
    e->hnext = *b;
    *b = e;
    list_push_newest(c, e);
    c->st.entries++;
    c->st.bytes += len;
    c->st.inserts++;
    return 1;
}

/* Contract: see dnscache.h. */
const void *mxg_dnscache_get(struct mxg_dnscache *c, const char *name, uint16_t rrtype,
                             uint64_t now, size_t *len, uint64_t *expires)
{
    char key[NAME_MAX_LEN + 1];
    int n;
    if (!c || c->max_entries == 0 || (n = key_name(name, key)) < 0) {
        if (c)
            c->st.misses++;
        return NULL;
    }
    uint32_t h = key_hash(key, (size_t)n, rrtype);
    struct entry *e = find(c, key, (size_t)n, rrtype, h);
    if (e && e->expires <= now) {
        entry_drop(c, e);
        c->st.expired++;
        e = NULL;
    }
    if (!e) {
        c->st.misses++;
        return NULL;
    }
    list_unlink(c, e);
    list_push_newest(c, e);
    c->st.hits++;
    if (len)
        *len = e->len;
    if (expires)
        *expires = e->expires;
    return e->val;
}

/* Contract: see dnscache.h. */
size_t mxg_dnscache_purge(struct mxg_dnscache *c, uint64_t now)
{
    size_t k = 0;
    if (!c)
        return 0;
    for (struct entry *e = c->newest, *next; e; e = next) {
        next = e->older;
        if (e->expires <= now) {
            entry_drop(c, e);
            k++;
        }
    }
    c->st.expired += k;
    return k;
}

/* Contract: see dnscache.h. */
void mxg_dnscache_stats(const struct mxg_dnscache *c, struct mxg_dnscache_stats *out)
{
    if (!out)
        return;
    if (!c) {
        memset(out, 0, sizeof *out);
        return;
    }
    *out = c->st;
}

/* Contract: see dnscache.h. */
void mxg_dnscache_walk(const struct mxg_dnscache *c,
                       int (*fn)(void *arg, const char *name, uint16_t rrtype, uint64_t expires),
                       void *arg)
{
    if (!c || !fn)
        return;
    for (const struct entry *e = c->newest; e; e = e->older)
        if (fn(arg, e->name, e->rrtype, e->expires))
            return;
}
