/* proxy/outbound/queue_runner.h — delivers what is in the spool (spool/spool.h):
 * messages a queue-mode listener took, recipients a multi-leg transaction
 * could not deliver at once, and the DSNs the spool generated.
 *
 * Contract:
 *  - mxg_queue_runner_new() borrows loop, cfg, env (the upstream parts) and
 *    sp; they must outlive the runner. hostname is copied (our name in DSNs).
 *    Returns NULL when out of memory.
 *  - mxg_queue_runner_start() scans the spool now and then every
 *    cfg->q_scan_ms. An entry is due when next_attempt_ms <= now (wall
 *    clock). A due entry's PENDING recipients are grouped by domain and each
 *    group goes out as one mxg_outbound (proxy/outbound/outbound.h): to the MX of the
 *    domain, or, for DSN entries, to cfg->q_bounce_route when set ("[host]:port"
 *    → that host, "host" → its MX). At most cfg->max_legs (limits.legs)
 *    groups of one entry run at once; the others start, in the same attempt,
 *    as running ones answer (never failed for waiting). At most
 *    cfg->q_max_parallel outbound deliveries run at once in total (an entry
 *    starts only when its first min(domains, limits.legs) groups fit, or
 *    when nothing else runs); an entry is never delivered twice at once —
 *    the runner holds the entry's lock (mxg_spool_lock) from loading it until
 *    it is settled, so another process (`mxguard queue`, a second daemon)
 *    cannot change it meanwhile.
 *  - Results: 2xx → DELIVERED; 5xx → FAILED; 4xx → stays PENDING with the
 *    reply; attempts + 1, next attempt after mxg_spool_backoff_ms(), but never
 *    later than created_ms + cfg->q_lifetime_ms (one last attempt at expiry).
 *    After an attempt at or past that time, PENDING recipients become FAILED
 *    (expired, 4.4.7). Then mxg_spool_settle() stores DSNs and removes or
 *    rewrites the entry. A DSN entry that fails or expires is dropped with a
 *    log line (never a DSN about a DSN). Unreadable envelopes are logged and
 *    quarantined (mxg_spool_quarantine). A recipient delivered to an MX that
 *    does not offer DSN, whose NOTIFY asked for SUCCESS, gets a "relayed"
 *    DSN (mxg_spool_relayed_dsn, before the settle). The outbound judges
 *    the replies (proxy/outbound/outbound.h): a DATA answered other than 354 is never
 *    a 2xx here, so such an entry is kept (4xx) or bounced (5xx).
 *  - Log lines: one per delivery attempt per domain, one per recipient's
 *    final outcome (delivered / failed + bounce / bounce dropped), one per
 *    deferral.
 *  - mxg_queue_runner_kick(): scan now (an entry was committed, or
 *    `mxguard queue flush` asked by SIGUSR1). No-op before start / when
 *    stopping.
 *  - mxg_queue_runner_stop(): no new deliveries; running ones may finish
 *    until cfg->drain_timeout_ms, then they are cancelled: recipients whose
 *    domain had answered keep their new state, the others stay PENDING and
 *    are due again at once on the next start (an MX that had taken the
 *    message but whose reply was lost will get it again — SMTP cannot avoid
 *    that; nothing is dropped). on_stopped runs exactly once, from a loop
 *    callback. Called again before that (a second SIGTERM), the deadline
 *    is now: running deliveries are cancelled at once.
 *  - mxg_queue_runner_free(): after on_stopped (or if never started); closes
 *    the runner's handles — run the loop afterwards so they close. */
#ifndef MXG_QUEUE_RUNNER_H
#define MXG_QUEUE_RUNNER_H

#include <uv.h>

#include "../../core/config.h"
#include "../../spool/spool.h"
#include "upstream.h"

struct mxg_queue_runner;

struct mxg_queue_runner *mxg_queue_runner_new(uv_loop_t *loop, const struct mxg_config *cfg,
                                              const struct mxg_upstream_env *env,
                                              struct mxg_spool *sp, const char *hostname);
int mxg_queue_runner_start(struct mxg_queue_runner *qr);
void mxg_queue_runner_kick(struct mxg_queue_runner *qr);
void mxg_queue_runner_stop(struct mxg_queue_runner *qr, void (*on_stopped)(void *arg), void *arg);
void mxg_queue_runner_free(struct mxg_queue_runner *qr);

/* Statistics for tests and logs. */
struct mxg_queue_stats {
    int running;        /* outbound deliveries now */
    int entries;        /* entries being delivered now */
    unsigned long attempts, delivered, failed, deferred, bounces, dropped;
};
void mxg_queue_runner_stats(const struct mxg_queue_runner *qr, struct mxg_queue_stats *out);

#endif
