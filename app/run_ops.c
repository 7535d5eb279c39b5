/* app/run_ops.c — operating `run` (docs/ARCHITECTURE.md §Operating): the counters, the gauges
 * read at each scrape, the metrics endpoint, and the privilege switch
 * around binding the listeners. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "../core/log.h"
#include "../core/metrics.h"
#include "../dns/dns.h"
#include "../http/https.h"
#include "../policy/sts_cache.h"
#include "../policy/stlist.h"
#include "../proxy/outbound/conncache.h"
#include "../spool/spool.h"
#include "app.h"
#include "metrics_http.h"
#include "privs.h"
#include "status.h"

/* Gauge: upstream connections open. */
static double app_conns_open(void *arg)
{
    struct mxg_conncache_stats st;
    mxg_conncache_stats(((struct app *)arg)->conncache, &st);
    return st.open;
}

/* Gauge: upstream connections idle in the cache. */
static double app_conns_idle(void *arg)
{
    struct mxg_conncache_stats st;
    mxg_conncache_stats(((struct app *)arg)->conncache, &st);
    return st.idle;
}

void app_ops_conn_gauges(struct app *app)
{
    mxg_conncache_set_metrics(app->conncache, app->metrics); /* its busy waits */
    mxg_metrics_gauge_fn(app->metrics, MXG_M_UPSTREAM_OPEN, "all", app_conns_open, app);
    mxg_metrics_gauge_fn(app->metrics, MXG_M_UPSTREAM_OPEN, "idle", app_conns_idle, app);
}

/* Gauge: inbound sessions. */
static double gauge_sessions(void *arg)
{
    return ((struct app *)arg)->srv.n_sessions;
}

/* Gauge: DNS cache entries. */
/* mxguard_dns_mode{mode="stub"}: 1 while new lookups go to the stub path. */
static double gauge_dns_stub(void *arg)
{
    struct app *app = arg;
    return app->dns && mxg_dns_path_in_use(app->dns) == MXG_DNS_PATH_STUB;
}

/* mxguard_dns_mode{mode="recursive"}: 1 while new lookups are resolved from the root. */
static double gauge_dns_recursive(void *arg)
{
    struct app *app = arg;
    return app->dns && mxg_dns_path_in_use(app->dns) == MXG_DNS_PATH_RECURSIVE;
}

static double gauge_dns_cache(void *arg)
{
    return (double)mxg_dns_cache_entries(((struct app *)arg)->dns);
}

/* mxg_sts_cache_foreach() callback: count one row. */
static void count_sts_row(void *arg, const struct mxg_sts_cache_entry *e)
{
    (void)e;
    (*(int *)arg)++;
}

/* Gauge: MTA-STS cache rows. */
static double gauge_sts_cache(void *arg)
{
    struct app *app = arg;
    int n = 0;
    if (app->sts_cache)
        mxg_sts_cache_foreach(app->sts_cache, count_sts_row, &n);
    return n;
}

/* Gauge: 1 when the shared state is reachable (or local), else 0. */
static double gauge_state_up(void *arg)
{
    struct app *app = arg;
    struct mxg_state_status st;
    if (!app->state)
        return 0;
    mxg_state_status(app->state, &st);
    return st.link == MXG_STATE_LOCAL || st.link == MXG_STATE_UP;
}

/* Gauge: pushes waiting for the shared database. */
static double gauge_state_pending(void *arg)
{
    struct app *app = arg;
    struct mxg_state_status st;
    if (!app->state)
        return 0;
    mxg_state_status(app->state, &st);
    return (double)st.pending;
}

/* Gauge: policies of the list in force (0 when none or expired). */
static double gauge_list(void *arg)
{
    struct app *app = arg;
    struct mxg_stlist_status st;
    if (!app->stlist)
        return 0;
    mxg_stlist_store_status(app->stlist, (int64_t)time(NULL), &st);
    return st.have && !st.expired ? st.n_policies : 0;
}

/* Gauge: messages in the spool. */
static double gauge_spool(void *arg)
{
    struct app *app = arg;
    char(*ids)[MXG_SPOOL_ID_MAX] = NULL;
    int n = 0;
    if (!app->spool || mxg_spool_list(app->spool, &ids, &n) < 0)
        return 0;
    free(ids);
    return n;
}

/* run, before the parts are opened: the log format, the counters, and (as
 * root with server.user) the state directory and the switch to the user,
 * so that everything opened from here on is opened as the user. */
int app_ops_prepare(struct app *app, char *err, size_t errlen)
{
    mxg_log_set_format(app->cfg.log_format);
    if (app->shared) { /* a worker: its slot of the shared mapping (app/run_workers.c) */
        app->metrics = app_worker_metrics(app);
        mxg_metrics_adopt(app->metrics); /* a predecessor's gauge functions are void */
    } else {
        app->metrics = mxg_metrics_new();
    }
    if (!app->metrics) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (mxg_privs_resolve(&app->cfg, &app->privs, err, errlen) < 0 ||
        mxg_privs_prepare_dir(&app->privs, app->cfg.state_dir, err, errlen) < 0)
        return -1;
    return mxg_privs_enter(&app->privs, err, errlen);
}

/* The status pages' builder for the metrics endpoint (app/status.h). */
static int status_page(void *arg, const char *url, struct mxg_buf *out)
{
    return mxg_status_serve(arg, url, out);
}

/* The status pages on the metrics listener: loopback clients only, or basic
 * auth with metrics.status_credentials_file (read now, before the privilege
 * drop). 0, or -1 with err. */
static int app_status_on(struct app *app, char *err, size_t errlen)
{
    struct mxg_status_creds creds;
    char e[512];
    if (!app->cfg.metrics_status_creds[0]) {
        mxg_metrics_http_set_status(app->metrics_http, status_page, app, NULL);
        LOG_N("main", "status page on http://%s/status (loopback clients only)",
              app->cfg.metrics_listen);
        return 0;
    }
    if (mxg_status_creds_load(app->cfg.metrics_status_creds, &creds, e, sizeof e) < 0) {
        snprintf(err, errlen, "metrics.status_credentials_file: %s", e);
        return -1;
    }
    int users = creds.n;
    mxg_metrics_http_set_status(app->metrics_http, status_page, app, &creds);
    OPENSSL_cleanse(&creds, sizeof creds);
    LOG_N("main", "status page on http://%s/status (HTTP basic auth, %d user(s))",
          app->cfg.metrics_listen, users);
    return 0;
}

/* run, after the SMTP listeners are bound (as root again): the metrics
 * listener, then the final drop of privileges, then the gauges. */
int app_ops_started(struct app *app, char *err, size_t errlen)
{
    char e[512];
    if (app->cfg.metrics_listen[0] && app->worker == 0) { /* worker 0 serves every worker's */
        struct mxg_endpoint ep;
        mxg_parse_endpoint(app->cfg.metrics_listen, 0, &ep); /* checked by the config */
        app->metrics_http = mxg_metrics_http_start(&app->loop, app->metrics, &app->cfg,
                                                   (const struct sockaddr *)&ep.sa, e, sizeof e);
        if (!app->metrics_http) {
            snprintf(err, errlen, "metrics.listen %s: %s", app->cfg.metrics_listen, e);
            return -1;
        }
        if (app->shared)
            mxg_metrics_http_set_render(app->metrics_http, app_workers_render, app);
        LOG_N("main", "metrics on http://%s/metrics", app->cfg.metrics_listen);
        if (app_status_on(app, err, errlen) < 0)
            return -1;
    }
    if (mxg_privs_drop(&app->privs, err, errlen) < 0 || app_worker_dropped(app, err, errlen) < 0)
        return -1;
    if (geteuid() == 0)
        LOG_W("main", "running as root: set server.user (e.g. \"mxguard\") so that mxguard "
                      "drops its privileges once its listeners are bound");
    mxg_dns_set_metrics(app->dns, app->metrics);
    if (app->https)
        mxg_https_set_metrics(app->https, app->metrics);
    mxg_metrics_gauge_fn(app->metrics, MXG_M_SESSIONS_ACTIVE, NULL, gauge_sessions, app);
    mxg_metrics_gauge_fn(app->metrics, MXG_M_DNS_CACHE_ENTRIES, NULL, gauge_dns_cache, app);
    mxg_metrics_gauge_fn(app->metrics, MXG_M_DNS_MODE, "stub", gauge_dns_stub, app);
    mxg_metrics_gauge_fn(app->metrics, MXG_M_DNS_MODE, "recursive", gauge_dns_recursive, app);
    mxg_metrics_gauge_fn(app->metrics, MXG_M_STS_CACHE_ENTRIES, NULL, gauge_sts_cache, app);
    mxg_metrics_gauge_fn(app->metrics, MXG_M_LIST_ENTRIES, NULL, gauge_list, app);
    mxg_metrics_gauge_fn(app->metrics, MXG_M_SPOOL_MESSAGES, NULL, gauge_spool, app);
    mxg_metrics_gauge_fn(app->metrics, MXG_M_STATE_UP, NULL, gauge_state_up, app);
    mxg_metrics_gauge_fn(app->metrics, MXG_M_STATE_PENDING, NULL, gauge_state_pending, app);
    return 0;
}
