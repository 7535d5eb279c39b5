/* app/run_reload.c — SIGHUP: the configuration (core/reload.h says what may
 * change), the trust anchors, the inbound certificate and password file,
 * the map files and the TLS client context, the policy list; each swapped
 * in only when it loads, else the old one stays in force. */
#include <stdlib.h>
#include <time.h>

#include "../core/config.h"
#include "../core/log.h"
#include "../core/metrics.h"
#include "../core/reload.h"
#include "../dns/dns.h"
#include "../policy/policy.h"
#include "../policy/stlist_source.h"
#include "../proxy/inbound/auth.h"
#include "../proxy/outbound/conncache.h"
#include "../tls/tls_engine.h"
#include "app.h"

extern char **environ;

/* Count one reload by outcome: once per SIGHUP, so with workers (each reloads, and
 * /metrics sums them) only worker 0 counts — every worker reads the same file. */
static void reload_count(struct app *app, const char *outcome)
{
    if (!app->shared || app->worker == 0)
        mxg_metrics_inc(app->metrics, MXG_M_RELOADS, outcome);
}

/* The self-check with reloaded anchors: failed reverts to the previous anchors. */
static void on_reload_selfcheck(void *arg, int ok, const char *why)
{
    struct app *app = arg;
    if (ok > 0) {
        app_dnssec_note(app, ok, why);
        LOG_N("reload", "DNSSEC self-check with the reloaded trust anchors passed: %s", why);
    } else if (ok == 0 && app->dns && mxg_dns_revert_anchors(app->dns) == 0) {
        LOG_E("reload", "the reloaded trust anchors fail the DNSSEC self-check (%s); the "
                        "previous anchors stay in force", why);
        reload_count(app, "failure");
    } else {
        app_dnssec_note(app, ok, why);
        LOG_W("reload", "DNSSEC self-check after the reload: %s", why);
    }
}

/* Trust anchors: re-read on every SIGHUP (the file may change in place, a
 * root key rollover); kept only if the DNSSEC self-check still passes. */
static void reload_anchors(struct app *app)
{
    char err[512];
    if (!app->dns || !app->cfg.dane_enabled)
        return;
    if (app->cfg.dns_mode != MXG_DNS_STUB) {
        LOG_N("reload", "dns.mode = %s: trust anchors are read at start-up only",
              app->cfg.dns_mode == MXG_DNS_AUTO ? "auto" : "recursive");
        return;
    }
    if (mxg_dns_reload_anchors(app->dns, app->cfg.trust_anchor_file, err, sizeof err) < 0) {
        LOG_E("reload", "trust anchors: %s; the previous anchors stay in force", err);
        reload_count(app, "failure");
        return;
    }
    if (mxg_dns_selfcheck(app->dns, on_reload_selfcheck, app) < 0)
        LOG_W("reload", "DNSSEC self-check could not start");
}

/* The map files (tls.policy_map, upstream.route_map) and the TLS client
 * context (tls.* versions, ciphers, client certificate: a renewed
 * certificate file is picked up too) are rebuilt on every SIGHUP; each is
 * swapped in only when it loads completely, else the old one stays. Legs
 * already started keep what they copied. */
static void reload_maps_tls(struct app *app)
{
    char err[1024];
    struct mxg_policy_maps next;
    if (mxg_policy_maps_load(&app->cfg, &next, err, sizeof err) < 0) {
        LOG_E("reload", "%s; the previous policy overrides and routes stay in force", err);
        reload_count(app, "failure");
    } else {
        mxg_policy_maps_swap(&app->maps, &next);
        LOG_N("reload", "policy overrides: %d (%s), static routes: %d (%s)",
              mxg_override_map_count(app->maps.overrides),
              app->cfg.tls_policy_map[0] ? app->cfg.tls_policy_map : "no tls.policy_map",
              mxg_route_map_count(app->maps.routes),
              app->cfg.route_map[0] ? app->cfg.route_map : "no upstream.route_map");
    }
    if (!app->tls)
        return;
    struct mxg_tls_ctx *fresh = app_client_tls(&app->cfg, err, sizeof err);
    if (!fresh) {
        LOG_E("reload", "TLS client settings: %s; the previous TLS context stays in force", err);
        reload_count(app, "failure");
        return;
    }
    mxg_tls_ctx_replace(app->tls, fresh);
    mxg_tls_ctx_describe(app->tls, err, sizeof err);
    LOG_N("reload", "TLS client context rebuilt: %s", err);
}

/* The inbound certificate/key and password file are re-read on every
 * SIGHUP (a renewed certificate, a changed user list), from the paths in
 * force; swapped in only when both load, else the old ones stay. Sessions
 * keep what they took (a TLS engine holds its own context reference; a
 * password check copies the hash). */
static void reload_inbound(struct app *app)
{
    char err[1024];
    struct mxg_tls_ctx *t;
    struct mxg_auth_db *d;
    if (!app->tls_server && !app->auth_db)
        return;
    if (mxg_inbound_load(&app->cfg, &t, &d, err, sizeof err) < 0) {
        LOG_E("reload", "%s; the loaded certificate and password file stay in force", err);
        reload_count(app, "failure");
        return;
    }
    mxg_tls_ctx_free(app->tls_server);
    mxg_auth_db_free(app->auth_db);
    app->srv.tls_server = app->tls_server = t;
    app->srv.auth_db = app->auth_db = d;
    LOG_N("reload", "inbound: %s%s%s, %d AUTH user(s)", t ? "certificate " : "no STARTTLS",
          t ? app->cfg.in_tls_cert_file : "", t ? " re-read" : "", mxg_auth_db_count(d));
}

/* mxg_stlist_source_update() callback of a reload: log the outcome. */
static void on_reload_list(void *arg, int accepted, const char *msg)
{
    (void)arg;
    LOG_N("reload", "policy list: %s: %s",
          accepted > 0 ? "updated" : accepted == 0 ? "unchanged" : "failed", msg);
}

/* SIGHUP: the configuration file, the trust anchors, the policy list.
 * Sessions in flight are not touched (core/reload.h). */
void app_reload(struct app *app)
{
    if (app->stopping) {
        LOG_W("reload", "SIGHUP while draining: ignored");
        return;
    }
    const char *path = app->cfg.source[0] ? app->cfg.source : NULL;
    LOG_N("reload", "SIGHUP: reloading %s", path ? path : "(built-in defaults and environment)");
    struct mxg_config *next = malloc(sizeof *next);
    char err[1024];
    if (!next)
        return;
    if (mxg_config_load(next, path, environ, err, sizeof err) < 0) {
        LOG_E("reload", "configuration error: %s; the running configuration stays in force",
              err);
        reload_count(app, "failure");
        free(next);
        return;
    }
    if (app->n_workers > 1 && app_workers_check_limits(next, app->n_workers, err, sizeof err) < 0) {
        LOG_E("reload", "refused: %s; the running configuration stays in force", err);
        reload_count(app, "failure");
        free(next);
        return;
    }
    struct mxg_reload_ctx rc = {.have_list = app->stlist_src != NULL};
    struct mxg_reload_result res;
    mxg_reload_apply(&app->cfg, next, &rc, &res);
    free(next);
    if (res.actions & MXG_RELOAD_LOG) {
        mxg_log_setup(app->cfg.log_level, app->cfg.log_syslog);
        mxg_log_set_format(app->cfg.log_format);
    }
    reload_anchors(app);
    reload_inbound(app);
    reload_maps_tls(app);
    if (app->conncache) { /* idle connections and TLS sessions were set up under the old settings */
        struct mxg_conncache_cfg ccfg;
        app_conncache_cfg(app, &ccfg); /* a worker: its share of the limits */
        mxg_conncache_reconfigure(app->conncache, &ccfg);
        mxg_tls_resume_clear(app->tls_resume);
    }
    if (app->stlist_src && mxg_stlist_source_update(app->stlist_src, on_reload_list, app) < 0)
        LOG_W("reload", "policy list: an update is already running");
    reload_count(app, "success");
    if (!app->shared || app->worker == 0)
        mxg_metrics_set(app->metrics, MXG_M_RELOAD_TIME, NULL, (double)time(NULL));
    app->reload_gen++; /* the status page's reload generation */
    app->reload_at = (int64_t)time(NULL);
}
