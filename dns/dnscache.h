/* dns/dnscache.h — internal to dns/: the bounded, TTL-respecting answer
 * cache behind dns.c. Exposed only so it can be unit tested without a
 * network (tests/unit/test_dns_cache.c); other layers use dns.h.
 *
 * Contract:
 *  - Key: (name, rrtype). The name is normalised here (ASCII lower case, one
 *    trailing dot removed), so "Example.TEST." and "example.test" are the
 *    same key.
 *  - Value: an opaque byte string, copied in on put and owned by the cache.
 *  - The clock is passed in by the caller (milliseconds, monotonic: dns.c
 *    uses uv_now() of its loop). An entry is alive while now < expiry.
 *  - TTL policy (applied by put): a positive answer lives
 *    min(ttl, max_ttl); a negative one (NODATA/NXDOMAIN) lives
 *    min(ttl, negative_ttl), where ttl is the DNS TTL in seconds or
 *    MXG_DNSCACHE_TTL_UNKNOWN (then the cap alone). A lifetime of 0 stores
 *    nothing (and drops an older entry of that key).
 *  - At most max_entries entries; inserting into a full cache evicts the
 *    least recently used one (get and put count as use). Values also share
 *    a byte budget of max_entries x MXG_DNSCACHE_AVG_VALUE octets (records
 *    are kept whole, up to 64 KB each: without a budget, answers crafted to
 *    be huge could hold max_entries x 64 KB); a put evicts LRU entries until
 *    the value fits, and a value larger than the whole budget is not cached
 *    (not caching is always safe: the next lookup asks again). max_entries 0
 *    disables the cache: put stores nothing, get always misses.
 *  - Not thread-safe (mxguard runs one loop).
 */
#ifndef MXG_DNSCACHE_H
#define MXG_DNSCACHE_H

#include <stddef.h>
#include <stdint.h>

#define MXG_DNSCACHE_TTL_UNKNOWN UINT32_MAX
#define MXG_DNSCACHE_AVG_VALUE 4096 /* octets of value per entry in the byte budget */

struct mxg_dnscache;

struct mxg_dnscache_stats {
    size_t entries;
    size_t bytes; /* value octets held (within max_entries x MXG_DNSCACHE_AVG_VALUE) */
    uint64_t hits, misses, inserts, replaced, evicted, expired;
};

/* max_ttl_ms / negative_ttl_ms: the caps above. NULL on out of memory. */
struct mxg_dnscache *mxg_dnscache_new(size_t max_entries, uint64_t max_ttl_ms,
                                      uint64_t negative_ttl_ms);
void mxg_dnscache_free(struct mxg_dnscache *c); /* c may be NULL */

/* The lifetime put would give an answer (ms): the TTL policy alone. */
uint64_t mxg_dnscache_lifetime(const struct mxg_dnscache *c, int negative, uint32_t ttl_s);

/* Insert or replace (name, rrtype) with a copy of val[0..len).
 * Returns 1 stored, 0 not stored (cache disabled, lifetime 0, name too
 * long), -1 out of memory (the old entry of that key, if any, is gone). */
int mxg_dnscache_put(struct mxg_dnscache *c, const char *name, uint16_t rrtype, int negative,
                     uint32_t ttl_s, const void *val, size_t len, uint64_t now);

/* The live value of (name, rrtype), or NULL (expired entries are dropped
 * on the way). *len gets its size, *expires (if not NULL) its expiry time.
 * The pointer is valid until the next put/get/purge/free on c. */
const void *mxg_dnscache_get(struct mxg_dnscache *c, const char *name, uint16_t rrtype,
                             uint64_t now, size_t *len, uint64_t *expires);

/* Drop every expired entry; returns how many. */
size_t mxg_dnscache_purge(struct mxg_dnscache *c, uint64_t now);

void mxg_dnscache_stats(const struct mxg_dnscache *c, struct mxg_dnscache_stats *out);

/* Keys from most to least recently used, for tests: calls fn for each until
 * it returns non-zero. */
void mxg_dnscache_walk(const struct mxg_dnscache *c,
                       int (*fn)(void *arg, const char *name, uint16_t rrtype, uint64_t expires),
                       void *arg);

#endif
