/* app/status_data.c — what the status page shows besides the destinations
 * (status.h): health from the running parts, the spool's envelopes and
 * the TLSRPT store's totals per day. Reads only: no lookup, no fetch, no
 * write. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../policy/stlist.h"
#include "../report/tlsrpt.h"
#include "../spool/spool.h"
#include "../state/state.h"
#include "app.h"
#include "status.h"

#define SPOOL_SCAN_MAX 5000 /* envelopes read per page view; beyond: counted only */

/* The DNS mode's name (status.h): core/config's dns.mode as dns/ runs it. */
const char *mxg_status_dns_mode(const struct mxg_config *cfg)
{
    switch (cfg->dns_mode) {
    case MXG_DNS_STUB: return "stub";
    case MXG_DNS_RECURSIVE: return "recursive";
    case MXG_DNS_AUTO: return "auto";
    }
    return "?";
}

/* The state database backend's name (status.h): state.backend. */
const char *mxg_status_db_backend(const struct mxg_config *cfg)
{
    return cfg->state_backend == MXG_STATE_POSTGRESQL ? "postgresql" : "sqlite";
}

/* The configured DNS servers as text ("" → resolv.conf's). */
static void dns_servers(const struct mxg_config *cfg, char *out, size_t cap)
{
    size_t l = 0;
    out[0] = 0;
    for (int i = 0; i < cfg->n_dns_servers && l + 1 < cap; i++)
        l += (size_t)snprintf(out + l, cap - l, "%s%s", i ? ", " : "", cfg->dns_servers[i].text);
    if (!out[0])
        snprintf(out, cap, "%s", cfg->dns_mode == MXG_DNS_STUB ? "those of /etc/resolv.conf"
                                                               : "the root servers");
}

/* The spool: count, oldest entry, next attempt. */
static void collect_spool(struct app *app, struct mxg_status_view *v)
{
    char(*ids)[MXG_SPOOL_ID_MAX] = NULL;
    int n = 0;
    if (!app->spool || mxg_spool_list(app->spool, &ids, &n) < 0)
        return;
    v->spool_open = 1;
    v->spool_count = n;
    for (int i = 0; i < n && i < SPOOL_SCAN_MAX; i++) {
        struct mxg_spool_env env;
        char err[200];
        memset(&env, 0, sizeof env);
        if (mxg_spool_load(app->spool, ids[i], &env, err, sizeof err) < 0) {
            v->spool_unread++;
            continue;
        }
        if (!v->spool_oldest_ms || env.created_ms < v->spool_oldest_ms)
            v->spool_oldest_ms = env.created_ms;
        if (!v->spool_next_ms || env.next_attempt_ms < v->spool_next_ms)
            v->spool_next_ms = env.next_attempt_ms;
        mxg_spool_env_free(&env);
    }
    free(ids);
}

/* mxg_rpt_day_totals() callback: put the day's totals into its slot. */
static void on_day(void *arg, const char *day, uint64_t ok, uint64_t fail)
{
    struct mxg_status_view *v = arg;
    for (int i = 0; i < MXG_STATUS_DAYS; i++)
        if (strcmp(v->days[i].day, day) == 0) {
            v->days[i].ok = ok;
            v->days[i].fail = fail;
        }
}

/* The last MXG_STATUS_DAYS UTC days, oldest first, with the store's totals. */
static void collect_days(struct app *app, struct mxg_status_view *v)
{
    for (int i = 0; i < MXG_STATUS_DAYS; i++) {
        time_t t = (time_t)(v->now - (int64_t)(MXG_STATUS_DAYS - 1 - i) * 86400);
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(v->days[i].day, sizeof v->days[i].day, "%Y-%m-%d", &tm);
    }
    if (!app->rpt)
        return;
    v->rpt_open = 1;
    if (mxg_rpt_day_totals(app->rpt, v->days[0].day, on_day, v) < 0)
        v->rpt_error = 1;
}

/* The view's parts read from disk — the spool's envelopes, the TLSRPT store's
 * days — read at most once per metrics.status_refresh and reused in between, so
 * that page views cannot keep the event loop (and the SMTP sessions on it) busy
 * with I/O however often they come. */
static void collect_io(struct app *app, struct mxg_status_view *v)
{
    uint64_t now_ms = uv_now(&app->loop);
    struct mxg_status_view *c = app->status_io;
    if (!c || now_ms - app->status_io_at >= app->cfg.metrics_status_refresh_ms) {
        collect_spool(app, v);
        collect_days(app, v);
        if (!c && !(c = app->status_io = malloc(sizeof *c)))
            return;
        *c = *v;
        app->status_io_at = now_ms;
        return;
    }
    v->spool_open = c->spool_open;
    v->spool_count = c->spool_count;
    v->spool_unread = c->spool_unread;
    v->spool_oldest_ms = c->spool_oldest_ms;
    v->spool_next_ms = c->spool_next_ms;
    v->rpt_open = c->rpt_open;
    v->rpt_error = c->rpt_error;
    memcpy(v->days, c->days, sizeof v->days);
}

/* Fill the view (status.h). */
void mxg_status_collect(struct app *app, int64_t now, struct mxg_status_view *v)
{
    memset(v, 0, sizeof *v);
    v->now = now;
    v->version = MXG_VERSION;
    v->dns_mode = mxg_status_dns_mode(&app->cfg);
    dns_servers(&app->cfg, v->dns_servers, sizeof v->dns_servers);
    if (app->cfg.dns_mode == MXG_DNS_AUTO && app->dns) { /* which path serves lookups now */
        enum mxg_dns_path p = mxg_dns_path_in_use(app->dns);
        v->dns_mode = p == MXG_DNS_PATH_RECURSIVE ? "auto, now recursive" : "auto, now stub";
        snprintf(v->dns_servers, sizeof v->dns_servers, "%s", mxg_dns_path_desc(app->dns, p));
    }
    v->dane_enabled = app->cfg.dane_enabled;
    v->dnssec_state = app->dnssec_state;
    snprintf(v->dnssec_why, sizeof v->dnssec_why, "%s", app->dnssec_why);
    v->db_backend = mxg_status_db_backend(&app->cfg);
    if (app->state && app->cfg.state_backend == MXG_STATE_POSTGRESQL) {
        struct mxg_state_status st;
        mxg_state_status(app->state, &st); /* in memory: no database round trip */
        snprintf(v->db_link, sizeof v->db_link, "%s%s%s", mxg_state_link_name(st.link),
                 st.error[0] ? ": " : "", st.error);
        v->db_down = st.link == MXG_STATE_DOWN;
    }
    if (app->stlist) {
        struct mxg_stlist_status st;
        mxg_stlist_store_status(app->stlist, now, &st);
        v->list_configured = app->cfg.list_file[0] || app->cfg.list_url[0];
        v->list_have = st.have;
        v->list_expired = st.expired;
        v->list_timestamp = st.timestamp;
        v->list_expires = st.expires;
        v->list_loaded_at = st.loaded_at;
        v->list_policies = st.n_policies;
        snprintf(v->list_source, sizeof v->list_source, "%s", st.source);
    }
    v->n_workers = app->n_workers > 1 ? app->n_workers : 1;
    v->reload_gen = app->reload_gen;
    v->reload_at = app->reload_at;
    v->started_at = app->started_at;
    collect_io(app, v);
}
