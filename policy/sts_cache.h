/* policy/sts_cache.h — the persistent MTA-STS policy cache (RFC 8461 §5.1),
 * SQLite in WAL mode in the state directory.
 *
 * One row per policy domain: the TXT id it was fetched under, the policy
 * body as fetched, when it was fetched, and when it expires (fetched_at +
 * max_age, extended when a refresh finds the same id). Times are Unix
 * seconds. Calls are synchronous and short (indexed by domain); the file
 * survives restarts and crashes (each write is one transaction).
 * Ownership: mxg_sts_cache_get() fills a caller-owned entry whose body is
 * malloc'd; free it with mxg_sts_cache_entry_clear(). Errors: -1 with the
 * SQLite message in err (open) or logged. */
#ifndef MXG_STS_CACHE_H
#define MXG_STS_CACHE_H

#include <stddef.h>
#include <stdint.h>

struct mxg_sts_cache;

struct mxg_sts_cache_entry {
    char domain[256];
    char id[33];
    char *body;        /* the policy text as fetched (malloc'd) */
    size_t body_len;
    int64_t fetched_at;
    int64_t expires_at;
};

/* Opens (creating the file and schema if needed) path, e.g. STATE/mta-sts.db. */
struct mxg_sts_cache *mxg_sts_cache_open(const char *path, char *err, size_t errlen);
void mxg_sts_cache_close(struct mxg_sts_cache *c);

/* 1 found (entry filled), 0 not found, -1 error. Expired rows are returned
 * too (the caller decides); domain compared case-insensitively. */
int mxg_sts_cache_get(struct mxg_sts_cache *c, const char *domain, struct mxg_sts_cache_entry *out);
/* Insert or replace the row of e->domain. 0 or -1. */
int mxg_sts_cache_put(struct mxg_sts_cache *c, const struct mxg_sts_cache_entry *e);
/* Same id seen again: set expires_at (and fetched_at). 0, or -1 (also if absent). */
int mxg_sts_cache_touch(struct mxg_sts_cache *c, const char *domain, int64_t fetched_at,
                        int64_t expires_at);
int mxg_sts_cache_delete(struct mxg_sts_cache *c, const char *domain);
/* Calls fn for every row (body included, valid during the call). Returns
 * rows visited or -1. */
int mxg_sts_cache_foreach(struct mxg_sts_cache *c,
                          void (*fn)(void *arg, const struct mxg_sts_cache_entry *e), void *arg);
void mxg_sts_cache_entry_clear(struct mxg_sts_cache_entry *e);

#endif
