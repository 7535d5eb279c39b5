/* policy/sts.h — MTA-STS (RFC 8461) for a destination domain: discovery
 * (_mta-sts TXT), HTTPS fetch, the persistent cache, and proactive refresh.
 *
 * mxg_sts_get(domain) answers "which MTA-STS policy applies now":
 *   - a cached, unexpired policy whose id equals the TXT id → used, no fetch,
 *     lifetime extended (fetched_at + max_age from now);
 *   - TXT id differs → refetch; success replaces the cache; failure keeps
 *     the cached policy (reported as a refresh failure);
 *   - TXT missing, malformed or unavailable while a policy is cached and
 *     unexpired → the cached policy is used (§3.1: stripping the TXT record
 *     must not downgrade);
 *   - an expired cached policy is refetched; failure → no policy;
 *   - nothing cached: TXT id → fetch; success → cache + use; failure → no
 *     policy (outcome FAILED, with the TLSRPT failure class).
 * Concurrent gets for one domain share one lookup/fetch. A sweep refreshes
 * cached policies at a random point of the second half of their lifetime.
 * A cached, unexpired policy applies whatever happens to the refresh: a TXT
 * lookup or fetch that cannot even start (resolver shut down or overloaded,
 * out of memory, ...) counts as an unreachable _mta-sts — the cached policy
 * is used; with nothing cached the outcome is FAILED (fetch error), so the
 * caller's fallback (the policy list) still applies. mxg_sts_get() returns
 * -1 only when out of memory (nothing can be said then: the caller must
 * defer, never treat it as "no MTA-STS").
 *
 * Callbacks never run synchronously; the result is valid during the
 * callback only. mxg_sts_cancel() guarantees no callback. All I/O goes
 * through dns/https/cache objects the caller owns and that outlive sts. */
#ifndef MXG_STS_H
#define MXG_STS_H

#include <uv.h>

#include "../core/config.h"
#include "../dns/dns.h"
#include "../http/https.h"
#include "sts_cache.h"
#include "sts_parse.h"

enum mxg_sts_outcome {
    MXG_STS_NO_POLICY = 0, /* the domain publishes no MTA-STS (and nothing is cached) */
    MXG_STS_POLICY,        /* a valid policy applies (fetched or cached; any mode) */
    MXG_STS_FAILED,        /* the domain seems to publish MTA-STS, but no valid policy could
                              be obtained and none is cached */
    MXG_STS_UNKNOWN,       /* the policy cache could not be read (SQLite error, a stored
                              policy that no longer parses) and no valid policy could be
                              fetched now: a cached policy may be in force that mxguard cannot
                              see, so the caller must defer (fail closed), never go on as if
                              there were no policy */
};
/* TLSRPT result types for policy problems (RFC 8460 §4.3.2.1). */
enum mxg_sts_failure {
    MXG_STS_FAIL_NONE = 0,
    MXG_STS_FAIL_FETCH,    /* sts-policy-fetch-error (DNS, HTTP, timeouts) */
    MXG_STS_FAIL_INVALID,  /* sts-policy-invalid (TXT or policy syntax) */
    MXG_STS_FAIL_WEBPKI,   /* sts-webpki-invalid (policy host certificate) */
};
const char *mxg_sts_outcome_name(enum mxg_sts_outcome o);
const char *mxg_sts_failure_name(enum mxg_sts_failure f);

struct mxg_sts_result {
    enum mxg_sts_outcome outcome;
    struct mxg_sts_policy policy; /* valid when outcome == POLICY */
    char id[MXG_STS_ID_MAX + 1];
    int from_cache;               /* the policy came from the cache */
    int64_t expires_at;
    enum mxg_sts_failure failure; /* why FAILED, or a failed refresh beside a cached policy */
    char why[400];                /* explanation for logs and `mxguard check` */
};

/* An empty result (outcome NO_POLICY, no policy, no reason); the policy's
 * unused pattern slots are left as they are (sts_parse.h). */
void mxg_sts_result_clear(struct mxg_sts_result *r);
/* *dst = *src, copying only the policy patterns in use. */
void mxg_sts_result_copy(struct mxg_sts_result *dst, const struct mxg_sts_result *src);

struct mxg_sts;
struct mxg_sts_query;
typedef void (*mxg_sts_cb)(void *arg, const struct mxg_sts_result *r);

/* cache may be NULL (no persistence: tests, `mxguard check` without state). */
struct mxg_sts *mxg_sts_new(uv_loop_t *loop, const struct mxg_config *cfg, struct mxg_dns *dns,
                            struct mxg_https *https, struct mxg_sts_cache *cache);
void mxg_sts_free(struct mxg_sts *s);

int mxg_sts_get(struct mxg_sts *s, const char *domain, mxg_sts_cb cb, void *arg,
                struct mxg_sts_query **q);
void mxg_sts_cancel(struct mxg_sts_query *q);

/* Called on the loop after a freshly fetched policy was stored in the cache, and when a
 * refresh that finds the same id extended a cached one (at most once per
 * mta_sts.refresh_min_interval per domain, so that the fleet's copy stays current); e is
 * valid during the call. app/ wires it to the fleet's shared state (state/state.h). */
typedef void (*mxg_sts_stored_cb)(void *arg, const struct mxg_sts_cache_entry *e);
/* Sets (or with fn NULL clears) the stored-policy observer. */
void mxg_sts_set_stored_cb(struct mxg_sts *s, mxg_sts_stored_cb fn, void *arg);

/* Start the periodic refresh sweep over the cache (every `interval_ms`). */
void mxg_sts_start_refresh(struct mxg_sts *s, uint64_t interval_ms);

#endif
