/* app/app.h — what the files of app/ share (private to app/; nothing
 * outside app/ includes it): the program's top, linked only into the
 * mxguard binary (and its unit tests).
 *
 *   main.c          argv dispatch, --version, --help
 *   cli.c           options (-c FILE, -v/--connect), loading the configuration, privileges of
 *                   the one-shot commands
 *   cli_usage.c     the usage texts and --help of every command
 *   cli_config.c    `config check`      cli_check_cmd.c  `check DOMAIN` (driver: cli_check.c)
 *   cli_list.c      `list ...`          cli_report.c     `report ...` (export: cli_export.c)
 *   cli_queue.c     `queue ...`
 *   parts.c         the composition root: struct app's parts opened, wired, closed
 *   run.c           `run`: start-up order, signals, drain, the queue runner
 *   run_selfcheck.c the DNSSEC self-check before serving and its retry timer
 *   run_reload.c    SIGHUP: what is re-read and swapped in (core/reload.h decides what may)
 *   run_ops.c       operating: counters, gauges, the metrics endpoint, the privilege switch
 *   privs.c, metrics_http.c  their own modules (privs.h, metrics_http.h)
 *
 * Contract: one struct app per command run, calloc'd by the command and
 * owned by it; it owns every part it points to (app_close_parts() and
 * app_shutdown() release them, each idempotent). Everything runs on
 * app->loop's thread. Errors: functions returning int give 0 or -1 with a
 * message in err (the caller logs it, or prints "mxguard: ..." for a
 * one-shot command); the command functions return the exit status
 * (0 done, 1 failed, 2 usage).
 *
 * mxg_cli_parse_opts(): accepts "-c FILE" (and "-v"/"--connect" setting
 * *verbose when verbose != NULL); anything else → message on stderr, -1.
 * mxg_cli_load(): loads the configuration named by -c, $MXGUARD_CONFIG or the
 * default path (built-in defaults when absent), with MXGUARD_* environment
 * overrides; errors go to stderr; returns 0 or -1. */
#ifndef MXG_APP_H
#define MXG_APP_H

#include <stddef.h>
#include <stdio.h>
#include <uv.h>

#include "../core/config.h"
#include "../policy/policy.h"
#include "../proxy/inbound/server.h"
#include "../proxy/outbound/upstream.h"
#include "privs.h"

struct mxg_rpt;
struct mxg_rpt_org;

/* Everything one command run holds (the composition root). */
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

/* app/cli.c */
int mxg_cli_parse_opts(int argc, char **argv, const char **cfgfile, int *verbose);
int mxg_cli_load(struct mxg_config *cfg, const char *opt);
int cli_privs(const struct mxg_config *cfg);

/* The subcommands, one app/cli_<command>.c each: argv after the command word. */
int cmd_run(int argc, char **argv);          /* app/run.c */
int cmd_config_check(int argc, char **argv); /* app/cli_config.c */
int cmd_check(int argc, char **argv);        /* app/cli_check_cmd.c */
int cmd_list(int argc, char **argv);         /* app/cli_list.c */
int cmd_report(int argc, char **argv);       /* app/cli_report.c */
int mxg_cli_queue(int argc, char **argv);    /* app/cli_queue.c */

/* app/cli_usage.c: the usage of cmd (all its subcommands) or of cmd sub;
 * cmd NULL (or unknown): of every command. */
void mxg_cli_usage(FILE *out, const char *cmd, const char *sub);
/* app/cli_usage.c: argv from the command word on. When an argument is
 * --help or -h (not the one after -c): the usage of that command (and of
 * its subcommand when argv[1] names one) on stdout, returns 0; an unknown
 * command: the general usage on stderr, returns 2. Else -1: no help asked. */
int mxg_cli_help(int argc, char **argv);

/* app/cli_export.c: `report export DIR [--day DAY]` on an open TLSRPT
 * store; the exit status (0 done, 1 error, 2 usage). */
int mxg_cli_report_export(struct mxg_rpt *rpt, const struct mxg_rpt_org *org, const char *dir,
                          const char *only_day);

/* app/parts.c */
struct mxg_tls_ctx *app_client_tls(const struct mxg_config *cfg, char *err, size_t errlen);
int ensure_state_dir(const struct mxg_config *cfg, char *err, size_t errlen);
int app_open_parts(struct app *app, int persistent, char *err, size_t errlen);
void app_load_local(struct app *app);
void app_close_parts(struct app *app);
void app_env(struct app *app, struct mxg_upstream_env *env);
void app_shutdown(struct app *app);
void app_finish_oneshot(struct app *app);

/* app/run_selfcheck.c */
int dnssec_selfcheck(struct app *app);
void on_recheck(uv_timer_t *t);

/* app/run_reload.c */
void app_reload(struct app *app);

/* app/run_ops.c */
double app_conns_open(void *arg);
double app_conns_idle(void *arg);
int ops_prepare(struct app *app, char *err, size_t errlen);
int ops_started(struct app *app, char *err, size_t errlen);

#endif
