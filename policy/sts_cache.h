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
 * SQLite message in err (open) or logged.
 *
 * Outbox (a fleet, docs/ARCHITECTURE.md §Shared state): with the outbox on
 * (mxg_sts_cache_set_outbox, set by app/ for state.backend = "postgresql"),
 * a fresh row (put_ex/touch_ex with outbox 1: a policy this instance fetched,
 * or a refresh it publishes) is also copied, in the same transaction, to the
 * table sts_outbox (one row per domain, the freshest). The shared state
 * (state/, wired by app/) reads the rows (at start: a restart or a SIGKILL
 * during a database outage loses no push) and removes each once the database
 * acknowledged it; a row the cache refreshed meanwhile (another fetched_at)
 * stays. Same pattern as report/'s TLSRPT outbox (report/rpt_outbox.c). */
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
/* put / touch, and with outbox set (and the outbox on) the row's outbox copy in the same
 * transaction. 0 or -1. */
int mxg_sts_cache_put_ex(struct mxg_sts_cache *c, const struct mxg_sts_cache_entry *e,
                         int outbox);
int mxg_sts_cache_touch_ex(struct mxg_sts_cache *c, const char *domain, int64_t fetched_at,
                           int64_t expires_at, int outbox);
/* Turns the outbox on or off (see the contract above). */
void mxg_sts_cache_set_outbox(struct mxg_sts_cache *c, int on);
/* Calls fn for every outbox row, oldest fetch first (valid during the call). Rows or -1. */
int mxg_sts_cache_outbox_take(struct mxg_sts_cache *c,
                              void (*fn)(void *arg, const struct mxg_sts_cache_entry *e),
                              void *arg);
/* Removes the outbox rows matching keys[i] (domain, id and fetched_at) in one transaction;
 * a row refreshed since (another id or fetched_at) stays. 0 or -1. */
int mxg_sts_cache_outbox_done(struct mxg_sts_cache *c, const struct mxg_sts_cache_entry *keys,
                              int n);
/* Calls fn for every row (body included, valid during the call). Returns
 * rows visited or -1. */
int mxg_sts_cache_foreach(struct mxg_sts_cache *c,
                          void (*fn)(void *arg, const struct mxg_sts_cache_entry *e), void *arg);
void mxg_sts_cache_entry_clear(struct mxg_sts_cache_entry *e);

#endif
