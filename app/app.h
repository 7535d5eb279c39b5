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
 *   cli_queue.c     `queue ...`     cli_state.c      `state migrate|status`
 *   parts.c         the composition root: struct app's parts opened, wired, closed
 *   run.c           `run`: start-up order, signals, drain, the queue runner
 *   run_selfcheck.c the DNSSEC self-check before serving and its retry timer
 *   run_dnsauto.c   dns.mode = "auto": which resolver path (stub, recursive) serves lookups
 *   run_reload.c    SIGHUP: what is re-read and swapped in (core/reload.h decides what may)
 *   run_workers.c   server.workers > 1: the master, its worker processes, what they share
 *   run_ops.c       operating: counters, gauges, the metrics endpoint, the privilege switch
 *   privs.c, metrics_http.c, listeners.c  their own modules (privs.h, metrics_http.h,
 *                   listeners.h: the SMTP sockets, bound early, listening once serving)
 *   status*.c       the status page on the metrics listener (status.h)
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
#include "../state/state.h"
#include "listeners.h"
#include "privs.h"

struct mxg_rpt;
struct mxg_rpt_org;
struct mxg_metrics;
struct mxg_conncache_cfg;
struct mxg_auth_throttle;
struct app_shared;
struct mxg_status_track;
struct mxg_status_table;

/* Everything one command run holds (the composition root). */
struct app {
    uv_loop_t loop;
    uv_timer_t recheck; /* DNSSEC self-check retry while DNS is unreachable; auto mode: the
                           paths' re-check (app/run_dnsauto.c) */
    int dns_auto_busy;       /* auto mode: a re-check is under way */
    int dns_auto_undecided;  /* auto mode: no path answered yet (mail deferred) */
    char dns_auto_why[512];  /* auto mode: why the stub path failed its last re-check */
    struct mxg_config cfg;
    struct mxg_dns *dns;
    struct mxg_tls_ctx *tls;
    struct mxg_https *https;
    struct mxg_sts_cache *sts_cache;
    struct mxg_sts *sts;
    struct mxg_state *state;                /* run: the fleet's shared state (state/state.h) */
    struct mxg_stlist_store *stlist;
    struct mxg_stlist_source *stlist_src;
    int list_checks;        /* policy lists from the shared state being verified (thread pool) */
    struct mxg_rpt *rpt;
    struct mxg_rpt_sender *rpt_sender;
    struct mxg_rpt_dkim *rpt_dkim;          /* tlsrpt.dkim_key_file, or NULL */
    struct mxg_report_mailer *rpt_mailer;   /* report mail through proxy/outbound */
    struct mxg_upstream_env mail_env;       /* the mailer's legs (self filled by mxg_cli_run) */
    char org_name[256], org_contact[300], org_submitter[256];
    struct mxg_server srv;
    struct mxg_spool *spool; /* <state.directory>/spool */
    struct mxg_queue_runner *runner; /* delivers the spool (proxy/outbound/queue_runner.h) */
    uv_signal_t sig_usr1;            /* `mxguard queue flush`: scan the spool now */
    int drain_wait;                  /* SIGTERM: server drain + runner stop still to finish */
    char pid_file[MXG_CFG_PATH_MAX + 16]; /* <state.directory>/mxguard.pid, "" = none */
    char queue_pid_file[MXG_CFG_PATH_MAX + 24]; /* server.workers > 1: worker 0's own pid in
                                                 * <state.directory>/mxguard-queue.pid (queue
                                                 * flush signals it: the master may be root) */
    uv_signal_t sig_term, sig_int, sig_hup;
    uv_signal_t sig_now;             /* a worker: SIGUSR2, the master's "stop now" */
    uv_timer_t publish;              /* a worker: its summed gauges published every second */
    int stopping;
    uint64_t stop_signal_at;         /* loop time of the first SIGTERM/SIGINT (workers) */
    struct mxg_metrics *metrics;           /* run: counters (core/metrics.h) */
    struct mxg_metrics_http *metrics_http; /* run: metrics.listen endpoint */
    struct mxg_privs privs;                /* run: server.user switch */
    struct mxg_conncache *conncache;       /* run: upstream connection cache + limits */
    struct mxg_tls_resume *tls_resume;     /* run: TLS sessions for resumption */
    struct mxg_tls_ctx *tls_server;        /* run: inbound STARTTLS (server.tls_*), or NULL */
    struct mxg_auth_db *auth_db;           /* run: auth.password_file, or NULL */
    struct mxg_policy_maps maps;           /* tls.policy_map, upstream.route_map (SIGHUP) */
    /* run: what the status page shows (app/status.h) */
    struct mxg_status_track *status_track; /* today's destinations (the legs' watch) */
    struct mxg_status_view *status_io;     /* the status page's last spool and TLSRPT reads */
    uint64_t status_io_at;                 /* loop time of those reads (ms) */
    int dnssec_state;         /* last DNSSEC self-check: 1 passed, 0 failed, -1 no answer, 2 none */
    char dnssec_why[300];
    unsigned reload_gen;      /* successful SIGHUP reloads */
    int64_t reload_at, started_at; /* Unix seconds; 0 = never */
    /* run with server.workers > 1 (app/run_workers.c); n_workers <= 1: one process */
    int n_workers;                 /* worker processes */
    int worker;                    /* this worker's index (0 runs the queue, reports, metrics) */
    struct app_shared *shared;     /* the master's shared mapping (metrics slots, ...) */
    const int *listen_fds;         /* the listener sockets: a worker's (the master bound them),
                                    * or bound_fds (one process) */
    int bound_fds[APP_LISTENERS_MAX]; /* one process: bound before the start-up work, owned
                                       * here until mxg_server_start() takes them */
    int n_bound;                   /* bound_fds still owned here (0 once the server has them) */
    struct mxg_auth_throttle *shared_throttle, *shared_trust; /* AUTH tables of all workers */
    struct mxg_tls_resume *shared_tls_resume; /* the TLS session cache of all workers (or NULL) */
};

/* app/cli.c (see the contract above) */
#define MXG_DEFAULT_CONFIG "/etc/mxguard/mxguard.conf"
int mxg_cli_parse_opts(int argc, char **argv, const char **cfgfile, int *verbose);
int mxg_cli_load(struct mxg_config *cfg, const char *opt);
/* The one-shot commands: as root with server.user set, become that user
 * before touching state.directory; 0, or -1 with a message on stderr. */
int mxg_cli_privs(const struct mxg_config *cfg);

/* The subcommands, one app/cli_<command>.c each: argv after the command word. */
int mxg_cli_run(int argc, char **argv);          /* app/run.c */
int mxg_cli_config_check(int argc, char **argv); /* app/cli_config.c */
int mxg_cli_check(int argc, char **argv);        /* app/cli_check_cmd.c */
int mxg_cli_list(int argc, char **argv);         /* app/cli_list.c */
int mxg_cli_report(int argc, char **argv);       /* app/cli_report.c */
int mxg_cli_queue(int argc, char **argv);    /* app/cli_queue.c */
int mxg_cli_state(int argc, char **argv);    /* app/cli_state.c */

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

/* app/parts.c: the parts, in the order a command uses them. */
/* The upstream TLS client context from tls.*; NULL with err. */
struct mxg_tls_ctx *app_client_tls(const struct mxg_config *cfg, char *err, size_t errlen);
/* state.directory exists (created 0700 if missing); 0, or -1 with err. */
int app_ensure_state_dir(const struct mxg_config *cfg, char *err, size_t errlen);
/* DNS, TLS, maps, TLSRPT (+ sender, mailer), HTTPS, policy list, MTA-STS; persistent:
 * the SQLite stores in state.directory are opened too. 0, or -1 with err. */
int app_open_parts(struct app *app, int persistent, char *err, size_t errlen);
/* run: the shared state (state.backend) wired to the MTA-STS cache: fresh policies are
 * published, the fleet's are pulled into the local cache. 0, or -1 with err. */
int app_open_state(struct app *app, char *err, size_t errlen);
/* The state module's options from the configuration (strings borrowed from cfg). */
void app_state_opts(const struct mxg_config *cfg, struct mxg_state_opts *o);
/* policy_list.file, synchronously (run, check, list show alike). */
void app_load_local(struct app *app);
/* Release what app_open_parts() made (idempotent); handles close in a later loop run. */
void app_close_parts(struct app *app);
/* Fill env with the loop, the configuration and the parts, for legs and the check. */
void app_env(struct app *app, struct mxg_upstream_env *env);
/* Everything off: parts released, every handle closed, the loop closed. */
void app_shutdown(struct app *app);
/* A one-shot command's (check, list, report) start: a zeroed app with the
 * configuration of -c FILE (or its default) loaded, privileges dropped as
 * `run` would, logging to stderr at min_level or the configured level if
 * higher, and its loop initialised. NULL when any of it failed (said on
 * stderr); else the caller ends with app_shutdown() and free(). */
struct app *app_oneshot_new(const char *file, enum mxg_log_level min_level);
/* A one-shot command's end before app_shutdown(): legs under way finish (bounded). */
void app_finish_oneshot(struct app *app);

/* app/run_selfcheck.c */
/* The DNSSEC self-check, run to its end: 0 passed (or DANE off), 1 DNS unreachable
 * (start, defer mail, retry), -1 must not start; logged. */
int app_dnssec_selfcheck(struct app *app);
/* Run the DNSSEC self-check of path p to its end on the loop (start-up only):
 * 1 passed, 0 failed, -1 no answer (as mxg_dns_selfcheck's callback says), or
 * -2 when it could not start; why (cap octets) gets the reason. */
int app_dns_check_now(struct app *app, enum mxg_dns_path p, char *why, size_t cap);
/* Note a self-check's result for the status page (ok as mxg_dns_selfcheck gives
 * it; 2: not checked). Inline: the self-check and dns.mode auto both note. */
static inline void app_dnssec_note(struct app *app, int ok, const char *why)
{
    app->dnssec_state = ok > 0 ? 1 : ok;
    snprintf(app->dnssec_why, sizeof app->dnssec_why, "%s", why ? why : "");
}
/* The retry timer (app->recheck, closed by the drain); started when retry is set
 * (auto mode: always, as the paths' re-check). */
void app_recheck_start(struct app *app, int retry);

/* app/run_firstpull.c */
/* run, before the listeners open: with a shared state, runs the loop until the first
 * complete pull or state.first_pull_timeout (then logs the first-use risk and returns). */
void app_wait_first_pull(struct app *app);

/* app/run_dnsauto.c (dns.mode = "auto" with DANE on) */
/* Self-check the stub path, then (if it fails) the recursive one; use the first that
 * passes, logged. 0 chosen, 1 neither answers (start, defer mail, retry), -1 must not
 * start (both failed, named in the log). */
int app_dnsauto_choose(struct app *app);
/* The periodic re-check on app->recheck (initialised): back to stub when it passes,
 * to recursive when stub fails and recursive passes. */
void app_dnsauto_start(struct app *app);

/* app/run_workers.c (server.workers > 1) */
/* The master: shared memory, listeners, N workers forked and supervised until every
 * one has drained. Returns -2 in a worker (which goes on with the run as app->worker),
 * else the master's exit status (0: every worker exited 0). */
int app_workers_run(struct app *app);
/* This worker's metrics registry in the shared mapping (NULL without workers). */
struct mxg_metrics *app_worker_metrics(struct app *app);
/* This worker's tally of today's destinations in the shared mapping (NULL without
 * workers): a restarted worker adopts what its predecessor left (app/status.h). */
struct mxg_status_table *app_worker_status_table(struct app *app);
/* Every worker's tally (for worker 0's status page): *out gets the n tables. */
int app_worker_status_tables(struct app *app, struct mxg_status_table *const **out);
/* This worker serves (its listeners are open): a later death means restart. */
void app_worker_ready(struct app *app);
/* The worker's signal handlers are in place: SIGHUP/SIGTERM/SIGINT, blocked since the
 * fork (so one sent during start-up is not lost), unblocked. No-op without workers. */
void app_worker_signals_on(const struct app *app);
/* After the final privilege drop (which clears PR_SET_PDEATHSIG): set it again, then
 * check that the master still runs. 0, or -1 (err): the worker must exit. No-op
 * without workers. */
int app_worker_dropped(struct app *app, char *err, size_t errlen);
/* The master's pid (workers only). */
pid_t app_worker_master(const struct app *app);
/* A worker spooled a message: SIGUSR1 to worker 0 (its queue runner), directly. */
void app_worker_kick0(const struct app *app);
/* The /metrics text with every worker's counters (metrics_http's render hook). */
int app_workers_render(void *arg, char **out, size_t *len);
/* 0, or -1 (err) when next has a positive upstream limit below n running workers
 * (a reload must not make a worker's share 0 = unlimited: server.workers is not live). */
int app_workers_check_limits(const struct mxg_config *next, int n, char *err, size_t errlen);
/* The connection cache's settings: the configuration's, each limit divided among
 * the workers (so their sum never exceeds it). */
void app_conncache_cfg(const struct app *app, struct mxg_conncache_cfg *c);

/* app/run_reload.c */
/* SIGHUP: reload the configuration and re-read the files (ignored while draining). */
void app_reload(struct app *app);

/* app/run_ops.c */
/* Before the parts: log format, counters, resolve and enter server.user. 0 or -1 with err. */
int app_ops_prepare(struct app *app, char *err, size_t errlen);
/* The upstream connection gauges and busy-wait counters (once the connection cache exists). */
void app_ops_conn_gauges(struct app *app);
/* After binding: metrics endpoint, final privilege drop, the other gauges. 0 or -1. */
int app_ops_started(struct app *app, char *err, size_t errlen);

#endif
