/* core/main.c — the mxguard command: run, config check, --version, --help.
 * Owns the loop, the configuration, and the top-level objects; nothing else
 * in the program keeps global state. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "../dane/dns.h"
#include "../proxy/server.h"
#include "../tls/tls_engine.h"
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

static int parse_opts(int argc, char **argv, const char **cfgfile, int *verbose)
{
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "-c") == 0 && i + 1 < argc) {
            *cfgfile = argv[++i];
        } else if (strcmp(argv[i], "-v") == 0 && verbose) {
            *verbose = 1;
        } else {
            fprintf(stderr, "mxguard: unexpected argument '%s'\n", argv[i]);
            return -1;
        }
    }
    return 0;
}

static int load(struct mxg_config *cfg, const char *opt)
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
    if (parse_opts(argc, argv, &file, &verbose) < 0)
        return 2;
    struct mxg_config *cfg = malloc(sizeof *cfg);
    if (!cfg)
        return 1;
    int rc = load(cfg, file);
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
    struct mxg_config cfg;
    struct mxg_dns *dns;
    struct mxg_tls_ctx *tls;
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

static void on_drained(struct mxg_server *srv)
{
    struct app *app = (struct app *)((char *)srv - offsetof(struct app, srv));
    uv_close((uv_handle_t *)&app->sig_term, NULL);
    uv_close((uv_handle_t *)&app->sig_int, NULL);
    uv_close((uv_handle_t *)&app->sig_hup, NULL);
    if (app->dns) {
        mxg_dns_free(app->dns);
        app->dns = NULL;
    }
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

static int cmd_run(int argc, char **argv)
{
    const char *file = NULL;
    if (parse_opts(argc, argv, &file, NULL) < 0)
        return 2;
    struct app *app = calloc(1, sizeof *app);
    if (!app)
        return 1;
    int rc = 1;
    if (load(&app->cfg, file) < 0)
        goto out;
    mxg_log_setup(app->cfg.log_level, app->cfg.log_syslog);
    signal(SIGPIPE, SIG_IGN);
    uv_loop_init(&app->loop);
    char err[1024];
    app->dns = mxg_dns_new(&app->loop, &app->cfg, err, sizeof err);
    if (!app->dns) {
        LOG_E("main", "DNS: %s", err);
        goto out_loop;
    }
    app->tls = mxg_tls_ctx_new_client(NULL, err, sizeof err);
    if (!app->tls) {
        LOG_E("main", "TLS: %s", err);
        goto out_loop;
    }
    if (mxg_server_start(&app->srv, &app->loop, &app->cfg, app->dns, app->tls, err, sizeof err) <
        0) {
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
    if (app->dns)
        mxg_dns_free(app->dns);
    app->dns = NULL;
    uv_walk(&app->loop, close_walk, NULL);
    uv_run(&app->loop, UV_RUN_DEFAULT);
    uv_loop_close(&app->loop);
    if (app->tls)
        mxg_tls_ctx_free(app->tls);
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
    if (strcmp(argv[1], "config") == 0 && argc >= 3 && strcmp(argv[2], "check") == 0)
        return cmd_config_check(argc - 3, argv + 3);
    fprintf(stderr, "mxguard: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
