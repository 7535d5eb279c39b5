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

#include "../dane/dns.h"
#include "../proxy/check.h"
#include "../proxy/server.h"
#include "../policy/https.h"
#include "../policy/sts.h"
#include "../policy/sts_cache.h"
#include "../policy/stlist.h"
#include "../policy/stlist_source.h"
#include "../policy/stlist_export.h"
#include "../report/tlsrpt.h"
#include "../tls/tls_engine.h"
#include "cli.h"
#include "config.h"
#include "log.h"

extern char **environ;

#define DEFAULT_CONFIG "/etc/mxguard/mxguard.conf"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: mxguard [--version] [--help] COMMAND [ARGS]\n"
            "\n"
            "commands:\n"
            "  run [-c FILE]                 run the relay in the foreground (SIGTERM drains)\n"
            "  config check [-c FILE] [-v]   validate the configuration; -v prints the effective one\n"
            "  check DOMAIN [-c FILE] [--connect]\n"
            "                                explain how mail to DOMAIN would be secured (MX, DNSSEC,\n"
            "                                DANE, policy); --connect also probes each MX host.\n"
            "                                Exit 0: deliverable now, 1: not now, 2: never\n"
            "  list show [-c FILE]           the policy list in force: signer, timestamp, expiry, counts\n"
            "  list update [-c FILE]         load policy_list.file / download policy_list.url now\n"
            "  list export [-c FILE]         print a policy list (unsigned, to be signed) built from\n"
            "                                the MTA-STS cache's enforce-mode policies\n"
            "  report list [-c FILE]         the (UTC day, policy domain) pairs with TLSRPT counts\n"
            "  report show DAY DOMAIN [-c FILE]\n"
            "                                the RFC 8460 JSON report for that day and domain\n"
            "  report send DAY [-c FILE]     send DAY's reports now (https: rua destinations)\n"
            "\n"
            "The configuration file is -c FILE, else $MXGUARD_CONFIG, else " DEFAULT_CONFIG "\n"
            "(built-in defaults when that file does not exist). MXGUARD_<SECTION>_<KEY>\n"
            "environment variables override single settings (see mxguard.conf).\n");
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
    if (rc == 0) {
        printf("configuration OK: %s\n", cfg->source[0] ? cfg->source : "(built-in defaults)");
        if (verbose)
            mxg_config_dump(cfg, stdout);
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
    char org_name[256], org_contact[300], org_submitter[256];
    struct mxg_server srv;
    uv_signal_t sig_term, sig_int, sig_hup;
    int stopping;
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
    app->tls = mxg_tls_ctx_new_client(ca, e, sizeof e);
    if (!app->tls) {
        snprintf(err, errlen, "TLS: %s", e);
        return -1;
    }
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

/* Release what app_open_parts() made; run the loop afterwards so that
 * handles close. */
static void app_close_parts(struct app *app)
{
    if (app->rpt_sender)
        mxg_rpt_sender_free(app->rpt_sender);
    app->rpt_sender = NULL;
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
}

/* Everything off: parts released, every handle closed, the loop closed. */
static void app_shutdown(struct app *app)
{
    app_close_parts(app);
    uv_walk(&app->loop, close_walk, NULL);
    uv_run(&app->loop, UV_RUN_DEFAULT);
    uv_loop_close(&app->loop);
    if (app->tls)
        mxg_tls_ctx_free(app->tls);
    app->tls = NULL;
}

static void on_drained(struct mxg_server *srv)
{
    struct app *app = (struct app *)((char *)srv - offsetof(struct app, srv));
    uv_close((uv_handle_t *)&app->sig_term, NULL);
    uv_close((uv_handle_t *)&app->sig_int, NULL);
    uv_close((uv_handle_t *)&app->sig_hup, NULL);
    uv_close((uv_handle_t *)&app->recheck, NULL);
    app_close_parts(app);
}

static void on_signal(uv_signal_t *h, int signum)
{
    struct app *app = h->data;
    if (signum == SIGHUP) {
        LOG_N("main", "SIGHUP: reload is not implemented yet; restart to apply changes");
        return;
    }
    if (app->stopping++) {
        LOG_W("main", "second signal: closing all sessions now");
        uv_walk(&app->loop, close_walk, NULL);
        return;
    }
    LOG_N("main", "%s: draining (deadline %llus)", strsignal(signum),
          (unsigned long long)(app->cfg.drain_timeout_ms / 1000));
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

static int cmd_check(int argc, char **argv)
{
    if (argc < 1 || argv[0][0] == '-') {
        usage(stderr);
        return 2;
    }
    const char *domain = argv[0];
    const char *file = NULL;
    int connect = 0;
    if (mxg_cli_parse_opts(argc - 1, argv + 1, &file, &connect) < 0)
        return 2;
    struct app *app = calloc(1, sizeof *app);
    if (!app)
        return 1;
    int rc = 1;
    if (mxg_cli_load(&app->cfg, file) < 0)
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
    if (dnssec_selfcheck(app) < 0)
        goto out_loop;
    struct mxg_upstream_env env;
    app_env(app, &env);
    rc = mxg_check_domain(&env, domain, connect, stdout);
out_loop:
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
        usage(stderr);
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
    mxg_log_setup(app->cfg.log_level > MXG_LOG_WARN ? app->cfg.log_level : MXG_LOG_WARN, 0);
    uv_loop_init(&app->loop);
    char err[1024];
    if (app_open_parts(app, 1, err, sizeof err) < 0) {
        fprintf(stderr, "mxguard: %s\n", err);
        goto out_loop;
    }
    if (strcmp(sub, "show") == 0) {
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
    if (argc < 1 || (!show && !send && strcmp(argv[0], "list") != 0)) {
        usage(stderr);
        return 2;
    }
    const char *file = NULL;
    int skip = show ? 3 : send ? 2 : 1;
    if (mxg_cli_parse_opts(argc - skip, argv + skip, &file, NULL) < 0)
        return 2;
    struct app *app = calloc(1, sizeof *app);
    if (!app)
        return 1;
    int rc = 1;
    if (mxg_cli_load(&app->cfg, file) < 0)
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
        }
    } else if (!show) {
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
    app_shutdown(app);
out:
    free(app);
    return rc;
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
    signal(SIGPIPE, SIG_IGN);
    uv_loop_init(&app->loop);
    char err[1024];
    if (app_open_parts(app, 1, err, sizeof err) < 0) {
        LOG_E("main", "%s", err);
        goto out_loop;
    }
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
    if (app->rpt_sender)
        mxg_rpt_sender_start(app->rpt_sender, app->cfg.rpt_check_ms, app->cfg.rpt_delay_ms);
    if (mxg_server_start(&app->srv, &app->loop, &app->cfg, &parts, err, sizeof err) < 0) {
        LOG_E("main", "%s", err);
        goto out_loop;
    }
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
    app_shutdown(app);
out:
    free(app);
    return rc;
}

int main(int argc, char **argv)
{
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
    if (strcmp(argv[1], "run") == 0)
        return cmd_run(argc - 2, argv + 2);
    if (strcmp(argv[1], "check") == 0)
        return cmd_check(argc - 2, argv + 2);
    if (strcmp(argv[1], "list") == 0)
        return cmd_list(argc - 2, argv + 2);
    if (strcmp(argv[1], "report") == 0)
        return cmd_report(argc - 2, argv + 2);
    if (strcmp(argv[1], "config") == 0 && argc >= 3 && strcmp(argv[2], "check") == 0)
        return cmd_config_check(argc - 3, argv + 3);
    fprintf(stderr, "mxguard: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
