/* core/main.c — the mxguard command: run, config check, --version, --help.
 * Owns the loop, the configuration, and the top-level objects; nothing else
 * in the program keeps global state. */
#include <errno.h>
#include <sys/stat.h>
#include <time.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "../dns/dns.h"
#include "../proxy/inbound/auth.h"
#include "../app/cli_check.h"
#include "../proxy/outbound/conncache.h"
#include "../proxy/outbound/report_mailer.h"
#include "../proxy/inbound/server.h"
#include "../http/https.h"
#include "../policy/policy.h"
#include "../policy/sts.h"
#include "../policy/sts_cache.h"
#include "../policy/stlist.h"
#include "../policy/stlist_source.h"
#include "../policy/stlist_export.h"
#include "../report/tlsrpt.h"
#include "../proxy/outbound/queue_runner.h"
#include "../spool/spool.h"
#include "../tls/tls_engine.h"
#include "cli.h"
#include "config.h"
#include "log.h"
#include "metrics.h"
#include "metrics_http.h"
#include "privs.h"
#include "reload.h"

extern char **environ;

#define DEFAULT_CONFIG "/etc/mxguard/mxguard.conf"

static void usage(FILE *out)
{
    mxg_cli_usage(out, NULL, NULL);
}

/* Pick the config path: explicit, environment, default (if present). */
static const char *config_path(const char *opt, int *is_default)
{
    *is_default = 0;
    if (opt)
        return opt;
    const char *env = getenv("MXGUARD_CONFIG");
    if (env && env[0])
        return env;
    *is_default = 1;
    return access(DEFAULT_CONFIG, F_OK) == 0 ? DEFAULT_CONFIG : NULL;
}

int mxg_cli_parse_opts(int argc, char **argv, const char **cfgfile, int *verbose)
{
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "-c") == 0 && i + 1 < argc) {
            *cfgfile = argv[++i];
        } else if (verbose && (strcmp(argv[i], "-v") == 0 || strcmp(argv[i], "--connect") == 0)) {
            *verbose = 1;
        } else {
            fprintf(stderr, "mxguard: unexpected argument '%s'\n", argv[i]);
            return -1;
        }
    }
    return 0;
}

int mxg_cli_load(struct mxg_config *cfg, const char *opt)
{
    int is_default;
    const char *path = config_path(opt, &is_default);
    char err[1024];
    if (mxg_config_load(cfg, path, environ, err, sizeof err) < 0) {
        fprintf(stderr, "mxguard: configuration error: %s\n", err);
        return -1;
    }
    if (!path)
        fprintf(stderr, "mxguard: %s not found; using built-in defaults\n", DEFAULT_CONFIG);
    return 0;
}

/* The upstream TLS client context from tls.* (ca_file, versions, ciphers,
 * client certificate). NULL with err. */
static struct mxg_tls_ctx *app_client_tls(const struct mxg_config *cfg, char *err, size_t errlen)
{
    struct mxg_tls_client_opts o = {
        .cafile = cfg->tls_ca_file[0] ? cfg->tls_ca_file : NULL,
        .min_version = mxg_parse_tls_version(cfg->tls_min_version),
        .max_version = mxg_parse_tls_version(cfg->tls_max_version),
        .ciphers = cfg->tls_ciphers,
        .ciphersuites = cfg->tls_ciphersuites,
        .cert_file = cfg->tls_client_cert,
        .key_file = cfg->tls_client_key,
    };
    if (o.min_version < 0)
        o.min_version = 0; /* checked by the configuration */
    if (o.max_version < 0)
        o.max_version = 0;
    return mxg_tls_ctx_new_client_opts(&o, err, errlen);
}

static int cmd_config_check(int argc, char **argv)
{
    const char *file = NULL;
    int verbose = 0;
    if (mxg_cli_parse_opts(argc, argv, &file, &verbose) < 0)
        return 2;
    struct mxg_config *cfg = malloc(sizeof *cfg);
    if (!cfg)
        return 1;
    int rc = mxg_cli_load(cfg, file);
    char ierr[1024]; /* the inbound certificate, key and password file (proxy/auth.h) */
    if (rc == 0 && mxg_inbound_check(cfg, ierr, sizeof ierr) < 0) {
        fprintf(stderr, "mxguard: configuration error: %s\n", ierr);
        rc = -1;
    }
    char err[1024];
    struct mxg_policy_maps maps;
    struct mxg_tls_ctx *tls = NULL;
    /* what `run` would load besides the file: the map files, the TLS client settings */
    if (rc == 0 && mxg_policy_maps_load(cfg, &maps, err, sizeof err) < 0) {
        fprintf(stderr, "mxguard: configuration error: %s\n", err);
        rc = -1;
    } else if (rc == 0 && !(tls = app_client_tls(cfg, err, sizeof err))) {
        fprintf(stderr, "mxguard: configuration error: TLS client settings: %s\n", err);
        mxg_policy_maps_free(&maps);
        rc = -1;
    }
    if (rc == 0) {
        printf("configuration OK: %s\n", cfg->source[0] ? cfg->source : "(built-in defaults)");
        if (verbose) {
            mxg_config_dump(cfg, stdout);
            mxg_inbound_explain(cfg, stdout);
            mxg_tls_ctx_describe(tls, err, sizeof err);
            printf("\n# TLS client: %s\n", err);
            if (maps.overrides)
                printf("# tls.policy_map %s: %d entr%s\n", mxg_override_map_source(maps.overrides),
                       mxg_override_map_count(maps.overrides),
                       mxg_override_map_count(maps.overrides) == 1 ? "y" : "ies");
            if (maps.routes)
                printf("# upstream.route_map %s: %d entr%s\n", mxg_route_map_source(maps.routes),
                       mxg_route_map_count(maps.routes),
                       mxg_route_map_count(maps.routes) == 1 ? "y" : "ies");
        }
        mxg_policy_maps_free(&maps);
        mxg_tls_ctx_free(tls);
    }
    free(cfg);
    return rc == 0 ? 0 : 1;
}

/* ------------------------------------------------------------------ run */

struct app {
    uv_loop_t loop;
    uv_timer_t recheck; /* DNSSEC self-check retry while DNS is unreachable */
    int recheck_on;
    struct mxg_config cfg;
    struct mxg_dns *dns;
    struct mxg_tls_ctx *tls;
    struct mxg_https *https;
    struct mxg_sts_cache *sts_cache;
    struct mxg_sts *sts;
    struct mxg_stlist_store *stlist;
    struct mxg_stlist_source *stlist_src;
    struct mxg_rpt *rpt;
    struct mxg_rpt_sender *rpt_sender;
    struct mxg_rpt_dkim *rpt_dkim;          /* tlsrpt.dkim_key_file, or NULL */
    struct mxg_report_mailer *rpt_mailer;   /* report mail through proxy/outbound */
    struct mxg_upstream_env mail_env;       /* the mailer's legs (self filled by cmd_run) */
    char org_name[256], org_contact[300], org_submitter[256];
    struct mxg_server srv;
    struct mxg_spool *spool; /* <state.directory>/spool */
    struct mxg_queue_runner *runner; /* delivers the spool (proxy/queue_runner.h) */
    uv_signal_t sig_usr1;            /* `mxguard queue flush`: scan the spool now */
    int drain_wait;                  /* SIGTERM: server drain + runner stop still to finish */
    char pid_file[MXG_CFG_PATH_MAX + 16]; /* <state.directory>/mxguard.pid, "" = none */
    uv_signal_t sig_term, sig_int, sig_hup;
    int stopping;
    struct mxg_metrics *metrics;           /* run: counters (core/metrics.h) */
    struct mxg_metrics_http *metrics_http; /* run: metrics.listen endpoint */
    struct mxg_privs privs;                /* run: server.user switch */
    struct mxg_conncache *conncache;       /* run: upstream connection cache + limits */
    struct mxg_tls_resume *tls_resume;     /* run: TLS sessions for resumption */
    struct mxg_tls_ctx *tls_server;        /* run: inbound STARTTLS (server.tls_*), or NULL */
    struct mxg_auth_db *auth_db;           /* run: auth.password_file, or NULL */
    struct mxg_policy_maps maps;           /* tls.policy_map, upstream.route_map (SIGHUP) */
};

static void close_walk(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static int ensure_state_dir(const struct mxg_config *cfg, char *err, size_t errlen)
{
    if (mkdir(cfg->state_dir, 0700) < 0 && errno != EEXIST) {
        snprintf(err, errlen, "state.directory %s: %s", cfg->state_dir, strerror(errno));
        return -1;
    }
    return 0;
}

/* The long-lived parts every command needs: DNS, TLS, and (when enabled)
 * MTA-STS with its HTTPS client and persistent cache in the state
 * directory. Returns 0, or -1 with err. */
static void app_env(struct app *app, struct mxg_upstream_env *env);

static int app_open_parts(struct app *app, int persistent, char *err, size_t errlen)
{
    const struct mxg_config *cfg = &app->cfg;
    char e[1024];
    app->dns = mxg_dns_new(&app->loop, cfg, e, sizeof e);
    if (!app->dns) {
        snprintf(err, errlen, "DNS: %s", e);
        return -1;
    }
    const char *ca = cfg->tls_ca_file[0] ? cfg->tls_ca_file : NULL;
    app->tls = app_client_tls(cfg, e, sizeof e);
    if (!app->tls) {
        snprintf(err, errlen, "TLS: %s", e);
        return -1;
    }
    if (mxg_policy_maps_load(cfg, &app->maps, e, sizeof e) < 0) {
        snprintf(err, errlen, "%s", e);
        return -1;
    }
    if (app->maps.overrides)
        LOG_N("main", "tls.policy_map %s: %d override(s)", mxg_override_map_source(app->maps.overrides),
              mxg_override_map_count(app->maps.overrides));
    if (app->maps.routes)
        LOG_N("main", "upstream.route_map %s: %d route(s)", mxg_route_map_source(app->maps.routes),
              mxg_route_map_count(app->maps.routes));
    if (cfg->rpt_enabled && persistent) {
        if (ensure_state_dir(cfg, err, errlen) < 0)
            return -1;
        char path[MXG_CFG_PATH_MAX + 32];
        snprintf(path, sizeof path, "%s/tlsrpt.db", cfg->state_dir);
        app->rpt = mxg_rpt_open(&app->loop, path, cfg->rpt_flush_ms, e, sizeof e);
        if (!app->rpt) {
            snprintf(err, errlen, "%s (set tlsrpt.enabled = false to run without TLSRPT)", e);
            return -1;
        }
    }
    int need_https = cfg->sts_enabled || cfg->list_url[0];
    if (need_https && !(app->https = mxg_https_new(&app->loop, ca, e, sizeof e))) {
        snprintf(err, errlen, "HTTPS client: %s", e);
        return -1;
    }
    if (cfg->list_file[0] || cfg->list_url[0]) {
        if (ensure_state_dir(cfg, err, errlen) < 0)
            return -1;
        app->stlist = mxg_stlist_store_open(cfg->state_dir, cfg->list_keyring, e, sizeof e);
        if (!app->stlist) {
            snprintf(err, errlen, "policy list: %s", e);
            return -1;
        }
        app->stlist_src = mxg_stlist_source_new(&app->loop, cfg, app->dns, app->https, app->stlist);
        if (!app->stlist_src) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
    }
    if (app->rpt && cfg->rpt_send) {
        if (!app->https && !(app->https = mxg_https_new(&app->loop, ca, e, sizeof e))) {
            snprintf(err, errlen, "HTTPS client: %s", e);
            return -1;
        }
        char host[256] = "";
        gethostname(host, sizeof host - 1);
        const char *me = cfg->hostname[0] ? cfg->hostname : host;
        snprintf(app->org_name, sizeof app->org_name, "%s", cfg->rpt_org[0] ? cfg->rpt_org : me);
        if (cfg->rpt_contact[0])
            snprintf(app->org_contact, sizeof app->org_contact, "%s", cfg->rpt_contact);
        else
            snprintf(app->org_contact, sizeof app->org_contact, "mailto:postmaster@%s", me);
        snprintf(app->org_submitter, sizeof app->org_submitter, "%s",
                 cfg->rpt_submitter[0] ? cfg->rpt_submitter : me);
        struct mxg_rpt_org org = {app->org_name, app->org_contact, app->org_submitter};
        app->rpt_sender = mxg_rpt_sender_new(&app->loop, app->rpt, app->dns, app->https, &org, 0);
        if (!app->rpt_sender) {
            snprintf(err, errlen, "TLSRPT sender: out of memory");
            return -1;
        }
        struct mxg_rpt_send_cfg sc = {
            .backoff_base_s = cfg->rpt_backoff_ms / 1000,
            .max_attempts = cfg->rpt_max_attempts,
            .connect_timeout_ms = cfg->sts_connect_timeout_ms,
            .total_timeout_ms = cfg->sts_fetch_timeout_ms,
        };
        mxg_rpt_sender_configure(app->rpt_sender, &sc);
        if (cfg->rpt_dkim_key[0]) {
            const char *dom = cfg->rpt_dkim_domain[0] ? cfg->rpt_dkim_domain : app->org_submitter;
            app->rpt_dkim = mxg_rpt_dkim_load(cfg->rpt_dkim_key, cfg->rpt_dkim_selector, dom, e,
                                              sizeof e);
            if (!app->rpt_dkim) {
                snprintf(err, errlen, "TLSRPT: %s (unset tlsrpt.dkim_key_file to run without "
                                      "mailed reports)", e);
                return -1;
            }
        }
        app_env(app, &app->mail_env);
        struct mxg_rpt_mailer mailer;
        if (!(app->rpt_mailer = mxg_report_mailer_new(&app->mail_env))) {
            snprintf(err, errlen, "TLSRPT mailer: out of memory");
            return -1;
        }
        mxg_report_mailer_get(app->rpt_mailer, &mailer);
        mxg_rpt_sender_set_mail(app->rpt_sender, &mailer, app->rpt_dkim, cfg->rpt_from);
    }
    if (!cfg->sts_enabled)
        return 0;
    if (persistent) {
        if (ensure_state_dir(cfg, err, errlen) < 0)
            return -1;
        char path[MXG_CFG_PATH_MAX + 32];
        snprintf(path, sizeof path, "%s/mta-sts.db", cfg->state_dir);
        app->sts_cache = mxg_sts_cache_open(path, e, sizeof e);
        if (!app->sts_cache) {
            snprintf(err, errlen, "MTA-STS cache %s: %s (set mta_sts.enabled = false to run "
                                  "without MTA-STS)", path, e);
            return -1;
        }
    }
    app->sts = mxg_sts_new(&app->loop, cfg, app->dns, app->https, app->sts_cache);
    if (!app->sts) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

/* The local policy sources that app_open_parts() does not read itself: the
 * policy list's file (policy_list.file), synchronously, through the same
 * function for `run`, `check` and `list show`. policy_list.url is never
 * waited for. */
static void app_load_local(struct app *app)
{
    char msg[1200];
    if (app->stlist_src)
        mxg_stlist_source_load_local(app->stlist_src, msg, sizeof msg);
}

/* Release what app_open_parts() made; run the loop afterwards so that
 * handles close. */
static void app_close_parts(struct app *app)
{
    if (app->rpt_sender)
        mxg_rpt_sender_free(app->rpt_sender);
    app->rpt_sender = NULL;
    mxg_report_mailer_free(app->rpt_mailer); /* after the sender: it held handles */
    app->rpt_mailer = NULL;
    mxg_rpt_dkim_free(app->rpt_dkim);
    app->rpt_dkim = NULL;
    if (app->rpt)
        mxg_rpt_close(app->rpt); /* writes every buffered count */
    app->rpt = NULL;
    if (app->stlist_src)
        mxg_stlist_source_free(app->stlist_src);
    app->stlist_src = NULL;
    if (app->sts)
        mxg_sts_free(app->sts);
    app->sts = NULL;
    if (app->https)
        mxg_https_free(app->https);
    app->https = NULL;
    if (app->dns)
        mxg_dns_free(app->dns);
    app->dns = NULL;
    if (app->sts_cache)
        mxg_sts_cache_close(app->sts_cache);
    app->sts_cache = NULL;
    if (app->stlist)
        mxg_stlist_store_close(app->stlist);
    app->stlist = NULL;
    mxg_policy_maps_free(&app->maps); /* legs keep copies of what they use */
    mxg_conncache_shutdown(app->conncache); /* idle upstream connections: QUIT */
}

static double app_conns_open(void *arg)
{
    struct mxg_conncache_stats st;
    mxg_conncache_stats(((struct app *)arg)->conncache, &st);
    return st.open;
}

static double app_conns_idle(void *arg)
{
    struct mxg_conncache_stats st;
    mxg_conncache_stats(((struct app *)arg)->conncache, &st);
    return st.idle;
}

static void app_env(struct app *app, struct mxg_upstream_env *env)
{
    memset(env, 0, sizeof *env);
    env->loop = &app->loop;
    env->cfg = &app->cfg;
    env->dns = app->dns;
    env->tls = app->tls;
    env->sts = app->sts;
    env->stlist = app->stlist;
    env->rpt = app->rpt;
    env->metrics = app->metrics;
    env->maps = &app->maps;
    env->conncache = app->conncache;
    env->tls_resume = app->tls_resume;
}

/* Everything off: parts released, every handle closed, the loop closed. */
static void app_shutdown(struct app *app)
{
    mxg_metrics_http_stop(app->metrics_http);
    app->metrics_http = NULL;
    app_close_parts(app);
    uv_walk(&app->loop, close_walk, NULL);
    uv_run(&app->loop, UV_RUN_DEFAULT);
    uv_loop_close(&app->loop);
    mxg_conncache_free(app->conncache); /* its slots came back from the close callbacks */
    app->conncache = NULL;
    mxg_tls_resume_free(app->tls_resume); /* after every engine */
    app->tls_resume = NULL;
    if (app->tls)
        mxg_tls_ctx_free(app->tls);
    app->tls = NULL;
}

/* SIGTERM: both the server's drain and the queue runner's stop are done. */
static void app_stopped(struct app *app)
{
    if (app->runner && !uv_is_closing((uv_handle_t *)&app->sig_usr1))
        uv_close((uv_handle_t *)&app->sig_usr1, NULL);
    uv_close((uv_handle_t *)&app->sig_term, NULL);
    uv_close((uv_handle_t *)&app->sig_int, NULL);
    uv_close((uv_handle_t *)&app->sig_hup, NULL);
    uv_close((uv_handle_t *)&app->recheck, NULL);
    mxg_metrics_http_stop(app->metrics_http);
    app->metrics_http = NULL;
    app_close_parts(app);
}

static void drain_step(struct app *app)
{
    if (--app->drain_wait == 0)
        app_stopped(app);
}

static void on_drained(struct mxg_server *srv)
{
    drain_step((struct app *)((char *)srv - offsetof(struct app, srv)));
}

static void on_runner_stopped(void *arg)
{
    drain_step(arg);
}

static void app_spool_kick(void *arg)
{
    mxg_queue_runner_kick(arg);
}

static void app_stop_queue(struct app *app);

/* ------------------------------------------------- operating (issue #11) */

static double gauge_sessions(void *arg)
{
    return ((struct app *)arg)->srv.n_sessions;
}

static double gauge_dns_cache(void *arg)
{
    return (double)mxg_dns_cache_entries(((struct app *)arg)->dns);
}

static void count_sts_row(void *arg, const struct mxg_sts_cache_entry *e)
{
    (void)e;
    (*(int *)arg)++;
}

static double gauge_sts_cache(void *arg)
{
    struct app *app = arg;
    int n = 0;
    if (app->sts_cache)
        mxg_sts_cache_foreach(app->sts_cache, count_sts_row, &n);
    return n;
}

static double gauge_list(void *arg)
{
    struct app *app = arg;
    struct mxg_stlist_status st;
    if (!app->stlist)
        return 0;
    mxg_stlist_store_status(app->stlist, (int64_t)time(NULL), &st);
    return st.have && !st.expired ? st.n_policies : 0;
}

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
static int ops_prepare(struct app *app, char *err, size_t errlen)
{
    mxg_log_set_format(app->cfg.log_format);
    if (!(app->metrics = mxg_metrics_new())) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (mxg_privs_resolve(&app->cfg, &app->privs, err, errlen) < 0 ||
        mxg_privs_prepare_dir(&app->privs, app->cfg.state_dir, err, errlen) < 0)
        return -1;
    return mxg_privs_enter(&app->privs, err, errlen);
}

/* run, after the SMTP listeners are bound (as root again): the metrics
 * listener, then the final drop of privileges, then the gauges. */
static int ops_started(struct app *app, char *err, size_t errlen)
{
    char e[512];
    if (app->cfg.metrics_listen[0]) {
        struct mxg_endpoint ep;
        mxg_parse_endpoint(app->cfg.metrics_listen, 0, &ep); /* checked by the config */
        app->metrics_http = mxg_metrics_http_start(&app->loop, app->metrics, &app->cfg,
                                                   (const struct sockaddr *)&ep.sa, e, sizeof e);
        if (!app->metrics_http) {
            snprintf(err, errlen, "metrics.listen %s: %s", app->cfg.metrics_listen, e);
            return -1;
        }
        LOG_N("main", "metrics on http://%s/metrics", app->cfg.metrics_listen);
    }
    if (mxg_privs_drop(&app->privs, err, errlen) < 0)
        return -1;
    if (geteuid() == 0)
        LOG_W("main", "running as root: set server.user (e.g. \"mxguard\") so that mxguard "
                      "drops its privileges once its listeners are bound");
    mxg_dns_set_metrics(app->dns, app->metrics);
    if (app->https)
        mxg_https_set_metrics(app->https, app->metrics);
    mxg_metrics_gauge_fn(app->metrics, MXG_M_SESSIONS_ACTIVE, NULL, gauge_sessions, app);
    mxg_metrics_gauge_fn(app->metrics, MXG_M_DNS_CACHE_ENTRIES, NULL, gauge_dns_cache, app);
    mxg_metrics_gauge_fn(app->metrics, MXG_M_STS_CACHE_ENTRIES, NULL, gauge_sts_cache, app);
    mxg_metrics_gauge_fn(app->metrics, MXG_M_LIST_ENTRIES, NULL, gauge_list, app);
    mxg_metrics_gauge_fn(app->metrics, MXG_M_SPOOL_MESSAGES, NULL, gauge_spool, app);
    return 0;
}

/* The one-shot commands: as root with server.user set, become that user
 * before touching state.directory. */
static int cli_privs(const struct mxg_config *cfg)
{
    char err[512];
    if (mxg_privs_cli(cfg, err, sizeof err) == 0)
        return 0;
    fprintf(stderr, "mxguard: %s\n", err);
    return -1;
}

static void on_reload_selfcheck(void *arg, int ok, const char *why)
{
    struct app *app = arg;
    if (ok > 0) {
        LOG_N("reload", "DNSSEC self-check with the reloaded trust anchors passed: %s", why);
    } else if (ok == 0 && app->dns && mxg_dns_revert_anchors(app->dns) == 0) {
        LOG_E("reload", "the reloaded trust anchors fail the DNSSEC self-check (%s); the "
                        "previous anchors stay in force", why);
        mxg_metrics_inc(app->metrics, MXG_M_RELOADS, "failure");
    } else {
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
        LOG_N("reload", "dns.mode = recursive: trust anchors are read at start-up only");
        return;
    }
    if (mxg_dns_reload_anchors(app->dns, app->cfg.trust_anchor_file, err, sizeof err) < 0) {
        LOG_E("reload", "trust anchors: %s; the previous anchors stay in force", err);
        mxg_metrics_inc(app->metrics, MXG_M_RELOADS, "failure");
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
        mxg_metrics_inc(app->metrics, MXG_M_RELOADS, "failure");
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
        mxg_metrics_inc(app->metrics, MXG_M_RELOADS, "failure");
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
        mxg_metrics_inc(app->metrics, MXG_M_RELOADS, "failure");
        return;
    }
    mxg_tls_ctx_free(app->tls_server);
    mxg_auth_db_free(app->auth_db);
    app->srv.tls_server = app->tls_server = t;
    app->srv.auth_db = app->auth_db = d;
    LOG_N("reload", "inbound: %s%s%s, %d AUTH user(s)", t ? "certificate " : "no STARTTLS",
          t ? app->cfg.in_tls_cert_file : "", t ? " re-read" : "", mxg_auth_db_count(d));
}

static void on_reload_list(void *arg, int accepted, const char *msg)
{
    (void)arg;
    LOG_N("reload", "policy list: %s: %s",
          accepted > 0 ? "updated" : accepted == 0 ? "unchanged" : "failed", msg);
}

/* SIGHUP: the configuration file, the trust anchors, the policy list.
 * Sessions in flight are not touched (core/reload.h). */
static void app_reload(struct app *app)
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
        mxg_metrics_inc(app->metrics, MXG_M_RELOADS, "failure");
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
        mxg_upstream_conncache_cfg(&app->cfg, &ccfg);
        mxg_conncache_reconfigure(app->conncache, &ccfg);
        mxg_tls_resume_clear(app->tls_resume);
    }
    if (app->stlist_src && mxg_stlist_source_update(app->stlist_src, on_reload_list, app) < 0)
        LOG_W("reload", "policy list: an update is already running");
    mxg_metrics_inc(app->metrics, MXG_M_RELOADS, "success");
    mxg_metrics_set(app->metrics, MXG_M_RELOAD_TIME, NULL, (double)time(NULL));
}

static void on_signal(uv_signal_t *h, int signum)
{
    struct app *app = h->data;
    if (signum == SIGHUP) {
        app_reload(app);
        return;
    }
    if (signum == SIGUSR1) {
        LOG_N("main", "SIGUSR1: scanning the spool now");
        mxg_queue_runner_kick(app->runner);
        return;
    }
    if (app->stopping++) {
        /* the drain's deadline, now: sessions close (a message whose dot
         * got no 250 stays with the client), deliveries are cancelled
         * (recipients stay in the spool); the usual stop path
         * (on_drained, on_runner_stopped) then runs */
        LOG_W("main", "%s again: closing all sessions and deliveries now", strsignal(signum));
        if (app->runner)
            mxg_queue_runner_stop(app->runner, on_runner_stopped, app);
        mxg_server_drain(&app->srv, on_drained);
        return;
    }
    LOG_N("main", "%s: draining (deadline %llus)", strsignal(signum),
          (unsigned long long)(app->cfg.drain_timeout_ms / 1000));
    app->drain_wait = app->runner ? 2 : 1;
    if (app->runner)
        mxg_queue_runner_stop(app->runner, on_runner_stopped, app);
    mxg_server_drain(&app->srv, on_drained);
}

struct selfcheck {
    int done, ok;
    char why[512];
};

static void on_selfcheck(void *arg, int ok, const char *why)
{
    struct selfcheck *sc = arg;
    sc->done = 1;
    sc->ok = ok;
    snprintf(sc->why, sizeof sc->why, "%s", why ? why : "");
}

/* DANE needs a DNS path that passes DNSSEC: check it once, before serving.
 * Returns 0, or -1 (logged) when mxguard must not start. */
static int dnssec_selfcheck(struct app *app)
{
    if (!app->cfg.dane_enabled) {
        LOG_W("main", "DANE is disabled (dane.enabled = false): TLSA records are ignored and "
                      "DNSSEC is not required of the resolver");
        return 0;
    }
    struct selfcheck sc = {0};
    if (mxg_dns_selfcheck(app->dns, on_selfcheck, &sc) < 0) {
        LOG_E("main", "DNSSEC self-check could not start");
        return -1;
    }
    while (!sc.done && uv_run(&app->loop, UV_RUN_ONCE))
        ;
    if (sc.ok == 0) {
        LOG_E("main", "%s; refusing to start: DANE needs a resolver path that passes DNSSEC "
                      "(fix dns.servers / dns.trust_anchor_file, or set dane.enabled = false "
                      "explicitly to run without DANE)", sc.why[0] ? sc.why : "DNSSEC self-check failed");
        return -1;
    }
    if (sc.ok < 0) {
        LOG_E("main", "%s; starting anyway: until DNS answers, mail is deferred (451 4.4.3); "
                      "the check is repeated every %llus", sc.why,
              (unsigned long long)(app->cfg.dane_recheck_ms / 1000));
        return 1;
    }
    LOG_N("main", "DNSSEC self-check passed: %s", sc.why[0] ? sc.why : "ok");
    return 0;
}

static void recheck_result(void *arg, int ok, const char *why)
{
    struct app *app = arg;
    if (ok > 0) {
        LOG_N("main", "DNSSEC self-check passed: %s", why);
        uv_timer_stop(&app->recheck);
    } else {
        LOG_E("main", "%s (mail is deferred while this lasts; next check in %llus)", why,
              (unsigned long long)(app->cfg.dane_recheck_ms / 1000));
    }
}

static void on_recheck(uv_timer_t *t)
{
    struct app *app = t->data;
    if (app->dns)
        mxg_dns_selfcheck(app->dns, recheck_result, app);
}

/* ------------------------------------------- one-shot commands: the end */

/* Longer than any leg's own end: the QUIT round trip's 5 s timer
 * (proxy/upstream.c mxg_leg_close). */
#define APP_FINISH_MAX_MS 10000

/* uv_walk callback: count (int *arg) the handles still active. */
static void count_active(uv_handle_t *h, void *arg)
{
    if (uv_is_active(h) && !uv_is_closing(h))
        ++*(int *)arg;
}

/* The guard of app_finish_oneshot() ran out (itself no longer active: a
 * one-shot timer is stopped before its callback): say so, stop the run. */
static void on_finish_guard(uv_timer_t *t)
{
    int n = 0;
    uv_walk(t->loop, count_active, &n);
    LOG_W("main", "%d handle(s) still busy %d s after the command's work was done: closing them",
          n, APP_FINISH_MAX_MS / 1000);
    uv_stop(t->loop);
}

/* The end of a one-shot command (check, report), before app_shutdown():
 * release the parts, then let the loop run out by itself, as cmd_run's
 * SIGTERM drain does after app_stopped(). What is still under way then
 * finishes on its own terms: an upstream leg closed after its transaction
 * (the report mail's, after the dot) sends QUIT and waits for the reply or
 * its 5 s timer; a leg (struct mxg_leg and its route copy) and its
 * connection are freed only from their handles' close callbacks. Without
 * this run app_shutdown()'s uv_walk would close those handles with no
 * callback and the legs would never be freed (LeakSanitizer: leg_start,
 * mxg_route_copy). Bounded: a guard timer, unreferenced so that it never
 * keeps the loop alive by itself, stops the run after APP_FINISH_MAX_MS
 * (logged; app_shutdown() then closes what is left). Idempotent with
 * app_shutdown(): app_close_parts() may run twice. */
static void app_finish_oneshot(struct app *app)
{
    app_close_parts(app);
    uv_timer_t guard;
    uv_timer_init(&app->loop, &guard);
    uv_timer_start(&guard, on_finish_guard, APP_FINISH_MAX_MS, 0);
    uv_unref((uv_handle_t *)&guard);
    uv_run(&app->loop, UV_RUN_DEFAULT);
    uv_close((uv_handle_t *)&guard, NULL);
    /* guard is on this stack: its close must be done before we return; one
     * non-blocking turn runs the closing handles (even after a uv_stop) */
    uv_run(&app->loop, UV_RUN_NOWAIT);
}

static int cmd_check(int argc, char **argv)
{
    if (argc < 1 || argv[0][0] == '-') {
        mxg_cli_usage(stderr, "check", NULL);
        return 2;
    }
    const char *domain = argv[0];
    const char *file = NULL;
    int connect = 0, json = 0, n = 0;
    char *rest[16];
    for (int i = 1; i < argc; i++) { /* --json: one JSON object (app/cli_check.h) */
        if (strcmp(argv[i], "--json") == 0)
            json = 1;
        else if (n < 16)
            rest[n++] = argv[i];
        else
            return 2;
    }
    if (mxg_cli_parse_opts(n, rest, &file, &connect) < 0)
        return 2;
    struct app *app = calloc(1, sizeof *app);
    if (!app)
        return 1;
    int rc = 1;
    if (mxg_cli_load(&app->cfg, file) < 0)
        goto out;
    if (cli_privs(&app->cfg) < 0)
        goto out;
    mxg_log_setup(app->cfg.log_level > MXG_LOG_WARN ? app->cfg.log_level : MXG_LOG_WARN, 0);
    uv_loop_init(&app->loop);
    char err[1024];
    /* the cache is read if it is there (the service's view), never created */
    char dbpath[MXG_CFG_PATH_MAX + 32];
    snprintf(dbpath, sizeof dbpath, "%s/mta-sts.db", app->cfg.state_dir);
    if (app_open_parts(app, access(dbpath, R_OK | W_OK) == 0, err, sizeof err) < 0) {
        fprintf(stderr, "mxguard: %s\n", err);
        goto out_loop;
    }
    app_load_local(app); /* policy_list.file, as `run` loads it */
    if (dnssec_selfcheck(app) < 0)
        goto out_loop;
    struct mxg_upstream_env env;
    app_env(app, &env);
    rc = mxg_check_domain_opts(&env, domain,
                               (connect ? MXG_CHECK_CONNECT : 0) | (json ? MXG_CHECK_JSON : 0),
                               stdout);
    fflush(stdout); /* out before the teardown: nothing there can lose it */
out_loop:
    app_finish_oneshot(app); /* --connect: every probe leg freed */
    app_shutdown(app);
out:
    free(app);
    return rc;
}

static void print_time(const char *label, int64_t t)
{
    char buf[40];
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    printf("%-10s %s\n", label, buf);
}

static int list_show(struct app *app)
{
    if (!app->stlist) {
        printf("no policy list configured (policy_list.file / policy_list.url)\n");
        return 1;
    }
    struct mxg_stlist_status st;
    int64_t now = (int64_t)time(NULL);
    mxg_stlist_store_status(app->stlist, now, &st);
    if (!st.have) {
        printf("no verified policy list loaded yet (run: mxguard list update)\n");
        return 1;
    }
    printf("status     %s\n", st.expired ? "EXPIRED: not used" : "in force");
    printf("source     %s\n", st.source);
    printf("signer     %s\n", st.signer);
    printf("author     %s\n", st.author);
    print_time("timestamp", st.timestamp);
    print_time("expires", st.expires);
    print_time("loaded", st.loaded_at);
    printf("policies   %d\naliases    %d\n", st.n_policies, st.n_aliases);
    if (!st.expired && (uint64_t)(now - st.timestamp) * 1000 > app->cfg.list_stale_ms)
        printf("warning    the list is %lld hours old\n", (long long)((now - st.timestamp) / 3600));
    return st.expired ? 1 : 0;
}

struct list_wait {
    int done, rc;
};

static void on_list_update(void *arg, int accepted, const char *msg)
{
    struct list_wait *w = arg;
    w->done = 1;
    w->rc = accepted;
    printf("%s: %s\n", accepted > 0 ? "updated" : accepted == 0 ? "unchanged" : "failed", msg);
}

static int cmd_list(int argc, char **argv)
{
    if (argc < 1 || (strcmp(argv[0], "show") && strcmp(argv[0], "update") &&
                     strcmp(argv[0], "export"))) {
        mxg_cli_usage(stderr, "list", NULL);
        return 2;
    }
    const char *sub = argv[0], *file = NULL;
    if (mxg_cli_parse_opts(argc - 1, argv + 1, &file, NULL) < 0)
        return 2;
    struct app *app = calloc(1, sizeof *app);
    if (!app)
        return 1;
    int rc = 1;
    if (mxg_cli_load(&app->cfg, file) < 0)
        goto out;
    if (cli_privs(&app->cfg) < 0)
        goto out;
    mxg_log_setup(app->cfg.log_level > MXG_LOG_WARN ? app->cfg.log_level : MXG_LOG_WARN, 0);
    uv_loop_init(&app->loop);
    char err[1024];
    if (app_open_parts(app, 1, err, sizeof err) < 0) {
        fprintf(stderr, "mxguard: %s\n", err);
        goto out_loop;
    }
    if (strcmp(sub, "show") == 0) {
        app_load_local(app); /* the list in force: policy_list.file too, as run/check load it */
        rc = list_show(app);
    } else if (strcmp(sub, "update") == 0) {
        struct list_wait w = {0};
        if (!app->stlist_src) {
            fprintf(stderr, "mxguard: no policy list configured (policy_list.file / policy_list.url)\n");
        } else if (mxg_stlist_source_update(app->stlist_src, on_list_update, &w) == 0) {
            while (!w.done && uv_run(&app->loop, UV_RUN_ONCE))
                ;
            rc = w.rc < 0 ? 1 : 0;
            list_show(app);
        }
    } else {
        if (!app->sts_cache) {
            fprintf(stderr, "mxguard: no MTA-STS cache (mta_sts.enabled = false?)\n");
        } else {
            char author[300];
            char host[256] = "";
            gethostname(host, sizeof host - 1);
            snprintf(author, sizeof author, "mxguard %s export from the MTA-STS cache of %s",
                     MXG_VERSION, app->cfg.hostname[0] ? app->cfg.hostname : host);
            int n = mxg_stlist_export(&app->loop, app->dns, app->sts_cache, author, stdout, err,
                                      sizeof err);
            if (n < 0)
                fprintf(stderr, "mxguard: export: %s\n", err);
            else
                fprintf(stderr, "mxguard: exported %d domain(s); sign it: gpg --armor "
                                "--detach-sign policy.json\n", n);
            rc = n < 0 ? 1 : 0;
        }
    }
out_loop:
    app_shutdown(app);
out:
    free(app);
    return rc;
}

static void print_day_domain(void *arg, const char *day, const char *domain)
{
    (void)arg;
    printf("%s %s\n", day, domain);
}

struct send_wait {
    int done;
    struct mxg_rpt_send_stats st;
};

static void on_sent(void *arg, const struct mxg_rpt_send_stats *st)
{
    struct send_wait *w = arg;
    w->st = *st;
    w->done = 1;
}

static int cmd_report(int argc, char **argv)
{
    int show = argc >= 3 && strcmp(argv[0], "show") == 0;
    int send = argc >= 2 && strcmp(argv[0], "send") == 0;
    int export = argc >= 2 && strcmp(argv[0], "export") == 0 && argv[1][0] != '-';
    if (argc < 1 || (!show && !send && !export && strcmp(argv[0], "list") != 0)) {
        mxg_cli_usage(stderr, "report", argc >= 1 ? argv[0] : NULL);
        return 2;
    }
    const char *file = NULL, *only_day = NULL;
    int skip = show ? 3 : send || export ? 2 : 1;
    char *rest[8]; /* export: the options without --day DAY */
    int nrest = 0;
    if (export) {
        for (int i = skip; i < argc; i++) {
            if (strcmp(argv[i], "--day") == 0 && i + 1 < argc && !only_day) {
                only_day = argv[++i];
            } else if (nrest < (int)(sizeof rest / sizeof rest[0])) {
                rest[nrest++] = argv[i];
            } else {
                mxg_cli_usage(stderr, "report", "export");
                return 2;
            }
        }
    }
    if (export ? mxg_cli_parse_opts(nrest, rest, &file, NULL) < 0
               : mxg_cli_parse_opts(argc - skip, argv + skip, &file, NULL) < 0)
        return 2;
    struct app *app = calloc(1, sizeof *app);
    if (!app)
        return 1;
    int rc = 1;
    if (mxg_cli_load(&app->cfg, file) < 0)
        goto out;
    if (cli_privs(&app->cfg) < 0)
        goto out;
    mxg_log_setup(app->cfg.log_level > MXG_LOG_NOTICE ? app->cfg.log_level : MXG_LOG_NOTICE, 0);
    uv_loop_init(&app->loop);
    char err[1024], id[MXG_RPT_REPORT_ID_MAX];
    if (!app->cfg.rpt_enabled) {
        fprintf(stderr, "mxguard: tlsrpt.enabled = false\n");
        goto out_loop;
    }
    if (app_open_parts(app, 1, err, sizeof err) < 0) {
        fprintf(stderr, "mxguard: %s\n", err);
        goto out_loop;
    }
    if (send) {
        struct send_wait w = {0};
        if (!app->rpt_sender) {
            fprintf(stderr, "mxguard: tlsrpt.send_reports = false\n");
        } else if (mxg_rpt_send_day(app->rpt_sender, argv[1], on_sent, &w) == 0) {
            while (!w.done && uv_run(&app->loop, UV_RUN_ONCE))
                ;
            printf("domains %d, no _smtp._tls record %d, DNS failures %d, sent %d, to retry %d, "
                   "given up %d, skipped %d, already done %d, errors %d\n",
                   w.st.domains, w.st.no_txt, w.st.dns_fail, w.st.sent, w.st.retry, w.st.gave_up,
                   w.st.skipped, w.st.already, w.st.errors);
            rc = w.st.errors || w.st.gave_up || w.st.retry ? 1 : 0;
            fflush(stdout); /* out before the teardown: nothing there can lose it */
        }
    } else if (!show && !export) {
        rc = mxg_rpt_days(app->rpt, print_day_domain, NULL) < 0;
    } else {
        char host[256] = "", contact[300];
        gethostname(host, sizeof host - 1);
        const char *me = app->cfg.hostname[0] ? app->cfg.hostname : host;
        snprintf(contact, sizeof contact, "mailto:postmaster@%s", me);
        struct mxg_rpt_org org = {
            .organization_name = app->cfg.rpt_org[0] ? app->cfg.rpt_org : me,
            .contact_info = app->cfg.rpt_contact[0] ? app->cfg.rpt_contact : contact,
            .submitter = app->cfg.rpt_submitter[0] ? app->cfg.rpt_submitter : me,
        };
        if (export) { /* the same org data as show: the same JSON */
            rc = mxg_cli_report_export(app->rpt, &org, argv[1], only_day);
            goto out_loop;
        }
        char *json = NULL;
        if (mxg_rpt_report_json(app->rpt, argv[1], argv[2], &org, &json, id, err, sizeof err) < 0) {
            fprintf(stderr, "mxguard: %s\n", err);
        } else {
            printf("%s\n", json);
            free(json);
            rc = 0;
        }
    }
out_loop:
    app_finish_oneshot(app); /* send: the report mail's leg ends (QUIT) and is freed */
    app_shutdown(app);
out:
    free(app);
    return rc;
}

/* The spool's queue runner (after mxg_server_start: its legs use the
 * server's upstream env, self addresses included), SIGUSR1 for `mxguard
 * queue flush`, and the pid file that command finds us by. */
static int app_start_queue(struct app *app)
{
    if (mxg_spool_cleaned(app->spool))
        LOG_N("main", "spool %s: removed %d leftover(s) of an interrupted write",
              mxg_spool_dir(app->spool), mxg_spool_cleaned(app->spool));
    if (!mxg_spool_owner(app->spool))
        LOG_W("main", "spool %s is locked by another process (a second mxguard on the same "
                      "state.directory?); delivering anyway, entry locks prevent doubles",
              mxg_spool_dir(app->spool));
    app->runner = mxg_queue_runner_new(&app->loop, &app->cfg, &app->srv.upenv, app->spool,
                                       app->srv.hostname);
    if (!app->runner || mxg_queue_runner_start(app->runner) < 0) {
        LOG_E("main", "queue runner: cannot start");
        return -1;
    }
    app->srv.spool_kick = app_spool_kick;
    app->srv.spool_kick_arg = app->runner;
    uv_signal_init(&app->loop, &app->sig_usr1);
    app->sig_usr1.data = app;
    uv_signal_start(&app->sig_usr1, on_signal, SIGUSR1);
    snprintf(app->pid_file, sizeof app->pid_file, "%s/mxguard.pid", app->cfg.state_dir);
    FILE *fp = fopen(app->pid_file, "w");
    if (fp) {
        fprintf(fp, "%ld\n", (long)getpid());
        fclose(fp);
    } else {
        LOG_W("main", "%s: %s (mxguard queue flush cannot signal this process)", app->pid_file,
              strerror(errno));
        app->pid_file[0] = 0;
    }
    return 0;
}

static void app_stop_queue(struct app *app)
{
    if (app->runner)
        mxg_queue_runner_free(app->runner); /* handles close in app_shutdown's loop run */
    app->runner = NULL;
    app->srv.spool_kick = NULL;
    if (app->pid_file[0])
        unlink(app->pid_file);
    app->pid_file[0] = 0;
}

static int cmd_run(int argc, char **argv)
{
    const char *file = NULL;
    if (mxg_cli_parse_opts(argc, argv, &file, NULL) < 0)
        return 2;
    struct app *app = calloc(1, sizeof *app);
    if (!app)
        return 1;
    int rc = 1;
    if (mxg_cli_load(&app->cfg, file) < 0)
        goto out;
    mxg_log_setup(app->cfg.log_level, app->cfg.log_syslog);
    uv_loop_init(&app->loop);
    char err[1024];
    if (ops_prepare(app, err, sizeof err) < 0) {
        LOG_E("main", "%s", err);
        goto out_loop;
    }
    if (app_open_parts(app, 1, err, sizeof err) < 0) {
        LOG_E("main", "%s", err);
        goto out_loop;
    }
    /* the upstream connection cache, limits and TLS sessions (proxy/conncache.h) */
    app->conncache = mxg_upstream_conncache_new(&app->loop, &app->cfg);
    if (app->cfg.tls_session_cache > 0)
        app->tls_resume = mxg_tls_resume_new(app->cfg.tls_session_cache);
    if (!app->conncache || (app->cfg.tls_session_cache > 0 && !app->tls_resume)) {
        LOG_E("main", "out of memory");
        goto out_loop;
    }
    app->mail_env.conncache = app->conncache; /* report mail shares the limits */
    app->mail_env.tls_resume = app->tls_resume;
    mxg_metrics_gauge_fn(app->metrics, MXG_M_UPSTREAM_OPEN, "all", app_conns_open, app);
    mxg_metrics_gauge_fn(app->metrics, MXG_M_UPSTREAM_OPEN, "idle", app_conns_idle, app);
    /* inbound STARTTLS and AUTH: read now (as server.user, before the final drop) */
    if (mxg_inbound_load(&app->cfg, &app->tls_server, &app->auth_db, err, sizeof err) < 0) {
        LOG_E("main", "%s", err);
        goto out_loop;
    }
    app->srv.tls_server = app->tls_server;
    app->srv.auth_db = app->auth_db;
    if (app->auth_db)
        LOG_N("main", "AUTH: %d user(s) from %s", mxg_auth_db_count(app->auth_db),
              app->cfg.auth_password_file);
    /* every local policy source in force before a listener opens (issue 16):
     * the policy list's file (its last verified copy came with the store),
     * like `check` (app_load_local) */
    app_load_local(app);
    if (app->sts)
        mxg_sts_start_refresh(app->sts, app->cfg.sts_sweep_ms);
    int sc = dnssec_selfcheck(app);
    if (sc < 0)
        goto out_loop;
    uv_timer_init(&app->loop, &app->recheck);
    app->recheck.data = app;
    if (sc > 0)
        uv_timer_start(&app->recheck, on_recheck, app->cfg.dane_recheck_ms, app->cfg.dane_recheck_ms);
    struct mxg_upstream_env parts;
    app_env(app, &parts);
    if (app->stlist_src)
        mxg_stlist_source_start(app->stlist_src);
    if (app->rpt_sender) {
        mxg_rpt_sender_set_metrics(app->rpt_sender, app->metrics);
        mxg_rpt_sender_start(app->rpt_sender, app->cfg.rpt_check_ms, app->cfg.rpt_delay_ms);
    }
    if (ensure_state_dir(&app->cfg, err, sizeof err) < 0) {
        LOG_E("main", "%s", err);
        goto out_loop;
    }
    char spool_dir[MXG_CFG_PATH_MAX + 16];
    snprintf(spool_dir, sizeof spool_dir, "%s/spool", app->cfg.state_dir);
    app->spool = mxg_spool_open(spool_dir, err, sizeof err);
    if (!app->spool) {
        LOG_E("main", "spool: %s", err);
        goto out_loop;
    }
    app->srv.spool = app->spool;
    LOG_N("main", "local policy state loaded (policy list, MTA-STS cache, tls.policy_map, "
                  "TLSRPT store, trust anchors): opening the listeners");
    if (mxg_privs_leave(&app->privs, err, sizeof err) < 0 ||
        mxg_server_start(&app->srv, &app->loop, &app->cfg, &parts, err, sizeof err) < 0 ||
        ops_started(app, err, sizeof err) < 0) {
        LOG_E("main", "%s", err);
        goto out_loop;
    }
    app->mail_env.self = app->srv.upenv.self; /* report mail: loop protection too */
    app->mail_env.n_self = app->srv.upenv.n_self;
    if (app_start_queue(app) < 0)
        goto out_loop;
    uv_signal_init(&app->loop, &app->sig_term);
    uv_signal_init(&app->loop, &app->sig_int);
    uv_signal_init(&app->loop, &app->sig_hup);
    app->sig_term.data = app->sig_int.data = app->sig_hup.data = app;
    uv_signal_start(&app->sig_term, on_signal, SIGTERM);
    uv_signal_start(&app->sig_int, on_signal, SIGINT);
    uv_signal_start(&app->sig_hup, on_signal, SIGHUP);
    LOG_N("main", "mxguard %s started (config %s)", MXG_VERSION,
          app->cfg.source[0] ? app->cfg.source : "built-in defaults");
    uv_run(&app->loop, UV_RUN_DEFAULT);
    LOG_N("main", "stopped");
    rc = 0;
out_loop:
    app_stop_queue(app);
    app_shutdown(app);
    if (app->spool)
        mxg_spool_close(app->spool);
    app->spool = NULL;
    mxg_metrics_free(app->metrics);
    mxg_tls_ctx_free(app->tls_server);
    mxg_auth_db_free(app->auth_db);
out:
    free(app);
    return rc;
}

int main(int argc, char **argv)
{
    /* every command that talks to an MX (run, report send, check --connect): a peer that
     * closes while we write must be an EPIPE for the leg, never a silent death by SIGPIPE */
    signal(SIGPIPE, SIG_IGN);
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "version") == 0) {
        printf("mxguard %s\n", MXG_VERSION);
        return 0;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return 0;
    }
    int help = mxg_cli_help(argc - 1, argv + 1); /* `mxguard COMMAND ... --help` */
    if (help >= 0)
        return help;
    if (strcmp(argv[1], "run") == 0)
        return cmd_run(argc - 2, argv + 2);
    if (strcmp(argv[1], "check") == 0)
        return cmd_check(argc - 2, argv + 2);
    if (strcmp(argv[1], "list") == 0)
        return cmd_list(argc - 2, argv + 2);
    if (strcmp(argv[1], "report") == 0)
        return cmd_report(argc - 2, argv + 2);
    if (strcmp(argv[1], "queue") == 0)
        return mxg_cli_queue(argc - 2, argv + 2);
    if (strcmp(argv[1], "config") == 0 && argc >= 3 && strcmp(argv[2], "check") == 0)
        return cmd_config_check(argc - 3, argv + 3);
    fprintf(stderr, "mxguard: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
