/* core/metrics.h — the counters behind the Prometheus endpoint
 * (docs/ARCHITECTURE.md §Operating).
 *
 * A registry object, made by main() and handed to the modules that count
 * (through struct mxg_upstream_env, setters such as mxg_dns_set_metrics(),
 * ...). There is no global registry: a module without one (unit tests, the
 * CLI commands) passes NULL, and every function here is a no-op on NULL.
 *
 * The metric families are fixed at compile time (enum mxg_metric below, the
 * names/help/type/label in a constant table in metrics.c), so a call site
 * cannot invent a metric by a typo. Each family has at most one label; its
 * series are created on first use, up to MXG_METRICS_MAX_SERIES per family
 * (further label values are counted under "other"). Families listed with
 * fixed label values in metrics.c start with those series at 0, so a scrape
 * shows every outcome from the start.
 *
 * Values are plain integers and doubles updated on the loop thread: each mxguard
 * process runs one libuv loop and the HTTP endpoint (app/metrics_http.h) renders on
 * that same thread, so nothing here needs locks (worker processes: see
 * mxg_metrics_render_workers below). Do not call these
 * from libuv thread-pool work callbacks (count in the after-work callback).
 *
 * Histograms take milliseconds and are exposed in seconds with fixed
 * buckets (5 ms .. 120 s) suited to DNS, HTTPS and SMTP latencies.
 *
 * Rendering follows the Prometheus text exposition format 0.0.4:
 * "# HELP", "# TYPE", one line per series, label values escaped (\\, \",
 * \n), histograms as _bucket{le=...} (cumulative, +Inf last), _sum, _count.
 */
#ifndef MXG_METRICS_H
#define MXG_METRICS_H

#include <stddef.h>
#include <stdint.h>

#define MXG_METRICS_MAX_SERIES 48
#define MXG_METRICS_LABEL_MAX 48

/* The families (name in the comment; label in braces). */
enum mxg_metric {
    MXG_M_BUILD_INFO = 0,      /* mxguard_build_info{version} gauge = 1 */
    MXG_M_START_TIME,          /* mxguard_start_time_seconds gauge */
    MXG_M_SESSIONS_TOTAL,      /* mxguard_sessions_total counter: inbound sessions accepted */
    MXG_M_SESSIONS_ACTIVE,     /* mxguard_sessions_active gauge */
    MXG_M_CONN_REJECTED,       /* mxguard_connections_rejected_total{reason} counter:
                                  not_allowed, max_sessions */
    MXG_M_TRANSACTIONS,        /* mxguard_transactions_total{outcome} counter: delivered, queued,
                                  temp_failed, perm_failed (the reply given to the client) */
    MXG_M_TXN_DURATION,        /* mxguard_transaction_duration_seconds histogram */
    MXG_M_DECISIONS,           /* mxguard_policy_decisions_total{source} counter: dane,
                                  mta-sts, mta-sts-testing, list, list-testing, config,
                                  opportunistic — the policy that governed an MX host */
    MXG_M_TLS_SESSIONS,        /* mxguard_tls_sessions_total{result} counter: success or
                                  the TLSRPT result-type (RFC 8460 §4.3) */
    MXG_M_DNS_QUERIES,         /* mxguard_dns_queries_total{status} counter: ok, nodata,
                                  nxdomain, tempfail, bogus (cache hits included) */
    MXG_M_DNS_DURATION,        /* mxguard_dns_query_duration_seconds{type} histogram
                                  (queries that went to the network) */
    MXG_M_DNS_CACHE_ENTRIES,   /* mxguard_dns_cache_entries gauge */
    MXG_M_DNS_MODE,            /* mxguard_dns_mode{mode} gauge: 1 for the resolver path in use
                                  (stub, recursive), 0 for the other */
    MXG_M_HTTPS_REQUESTS,      /* mxguard_https_requests_total{result} counter: ok, error */
    MXG_M_HTTPS_DURATION,      /* mxguard_https_request_duration_seconds histogram */
    MXG_M_UPSTREAM_DURATION,   /* mxguard_upstream_duration_seconds{phase} histogram:
                                  connect, tls_handshake, final_reply */
    MXG_M_STS_CACHE_ENTRIES,   /* mxguard_mta_sts_cache_entries gauge */
    MXG_M_LIST_ENTRIES,        /* mxguard_policy_list_entries gauge (0: no list in force) */
    MXG_M_SPOOL_MESSAGES,      /* mxguard_spool_messages gauge */
    MXG_M_SPOOL_DELIVERIES,    /* mxguard_spool_deliveries_total{outcome} counter: delivered,
                                  deferred, bounced */
    MXG_M_REPORTS_SENT,        /* mxguard_tlsrpt_reports_total{result} counter: sent,
                                  retry, gave_up */
    MXG_M_RELOADS,             /* mxguard_config_reloads_total{result} counter: success,
                                  failure */
    MXG_M_RELOAD_TIME,         /* mxguard_config_last_reload_success_timestamp_seconds gauge */
    MXG_M_INBOUND_TLS,         /* mxguard_inbound_tls_total{result} counter: success, failure
                                  (client STARTTLS handshakes) */
    MXG_M_INBOUND_AUTH,        /* mxguard_inbound_auth_total{result} counter: success, failure
                                  (wrong credentials), refused (locked out by the throttle) */
    MXG_M_UPSTREAM_CONNS,      /* mxguard_upstream_connections_total{how} counter: new, reused
                                  (from the connection cache), stale (a cached one was dead:
                                  replaced), limited (451 4.7.0: no slot under the limits) */
    MXG_M_UPSTREAM_BUSY,       /* mxguard_upstream_busy_waits_total{result} counter: waited (a
                                  leg waited for a busy cached connection of its key), reused
                                  (the wait got that connection), timeout (upstream.
                                  cache_busy_wait passed: the leg goes on as
                                  if none were cached — a new connection, or a wait
                                  for one under the limits), bounded
                                  (no wait: upstream.cache_busy_waiters legs waited already) */
    MXG_M_UPSTREAM_OPEN,       /* mxguard_upstream_connections_open{state} gauge: all, idle
                                  (kept in the connection cache) */
    MXG_M_UPSTREAM_HANDSHAKES, /* mxguard_upstream_tls_handshakes_total{kind} counter: full,
                                  resumed (a TLS session from the cache was accepted); completed
                                  handshakes only, whatever the verification then said */
    MXG_M_UPSTREAM_WRITES,     /* mxguard_upstream_writes_total counter: writes (one system
                                  call each) on upstream connections: commands, ciphertext,
                                  message data, QUIT to idle cached ones */
    MXG_M_STATE_UP,            /* mxguard_state_up gauge: 1 the shared state is reachable
                                  (or state.backend is sqlite), 0 not (state/state.h) */
    MXG_M_STATE_PENDING,       /* mxguard_state_pending_pushes gauge: pushes waiting for the
                                  shared database */
    MXG_M__COUNT
};

struct mxg_metrics;

/* NULL on out of memory. The start time and build info are set here. */
struct mxg_metrics *mxg_metrics_new(void);
void mxg_metrics_free(struct mxg_metrics *m); /* m may be NULL */

/* Counters. label: the family's label value; NULL (or ignored) for families
 * without a label. Adding to a gauge family is allowed too. */
void mxg_metrics_inc(struct mxg_metrics *m, enum mxg_metric id, const char *label);
void mxg_metrics_add(struct mxg_metrics *m, enum mxg_metric id, const char *label, uint64_t n);
/* Gauges: set the value. */
void mxg_metrics_set(struct mxg_metrics *m, enum mxg_metric id, const char *label, double v);
/* Histograms: one observation of ms milliseconds. */
void mxg_metrics_observe_ms(struct mxg_metrics *m, enum mxg_metric id, const char *label,
                            uint64_t ms);

/* A gauge read when rendered: fn(arg) is called on the loop thread at each
 * scrape (and must not block for long: a count of cached entries, ...).
 * Replaces an earlier function for the same (id, label); fn NULL removes it.
 * Returns 0, or -1 (not a gauge family, or no room). */
typedef double (*mxg_metrics_read_fn)(void *arg);
int mxg_metrics_gauge_fn(struct mxg_metrics *m, enum mxg_metric id, const char *label,
                         mxg_metrics_read_fn fn, void *arg);

/* The value of a counter/gauge series (a histogram: its count), for tests
 * and logs; 0 when absent. */
double mxg_metrics_value(const struct mxg_metrics *m, enum mxg_metric id, const char *label);

/* Worker processes (server.workers > 1, app/run_workers.c): each worker counts in
 * its own registry, placed by the master in memory every worker shares
 * (mxg_metrics_new_at: mem of at least mxg_metrics_size() octets, zeroed here;
 * mxg_metrics_free() then leaves the memory to its owner). A registry is written
 * only by its own process; another may read it while it counts (series are
 * published whole; values are read with atomic loads, so a scrape sees each value
 * as it was at some moment, not one instant of all of them).
 * mxg_metrics_render_workers(): the text of mxg_metrics_render() with the counters
 * and histograms of all n registries summed, the gauges sessions_active,
 * upstream_connections_open and dns_cache_entries summed (w[self]'s read now, the
 * others' as last published), the other gauges of w[self] (the process that renders:
 * only its gauge functions can be called; they describe shared things such as the
 * spool, or that process), then per worker i the
 * families mxguard_worker_sessions_total{worker="i"},
 * mxguard_worker_relayed_total{worker="i"} (transactions answered 250) and, when
 * restarts is not NULL, mxguard_worker_restarts_total{worker="i"} = restarts[i].
 * 0, or -1 (out of memory, bad arguments). */
size_t mxg_metrics_size(void);
struct mxg_metrics *mxg_metrics_new_at(void *mem, size_t size);
/* A registry a dead worker left, taken over by its successor: the counts go on,
 * the gauge functions are dropped (their arguments were the dead process's). */
void mxg_metrics_adopt(struct mxg_metrics *m);
/* Workers: note the current value of the gauges that are summed over the workers
 * (sessions_active, upstream_connections_open, dns_cache_entries: each worker's own),
 * for the renderer in another process; called by each worker every second. */
void mxg_metrics_publish(struct mxg_metrics *m);
/* The master, when a worker died: its published gauges read 0 until its successor publishes
 * (its sessions and connections are gone; they must not stay in the sum). */
void mxg_metrics_unpublish(struct mxg_metrics *m);
int mxg_metrics_render_workers(struct mxg_metrics *const *w, int n, int self,
                               const uint64_t *restarts, char **out, size_t *len);

/* The family's metric name ("mxguard_sessions_total"), or NULL. */
const char *mxg_metrics_name(enum mxg_metric id);

/* Render everything in the text format into a malloc'd NUL-terminated
 * buffer (*out, caller frees; *len its length). 0, or -1 (out of memory). */
int mxg_metrics_render(struct mxg_metrics *m, char **out, size_t *len);

#endif
