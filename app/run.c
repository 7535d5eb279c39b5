/* app/run.c — `mxguard run [-c FILE]`: the start-up order (privileges,
 * parts, local policy state, self-check, spool, listeners, queue runner),
 * the signals (SIGTERM/SIGINT drain, SIGHUP reload, SIGUSR1 queue scan) and
 * the drain to a clean stop. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "../core/log.h"
#include "../core/metrics.h"
#include "../policy/sts.h"
#include "../policy/stlist_source.h"
#include "../proxy/inbound/auth.h"
#include "../proxy/inbound/server.h"
#include "../proxy/outbound/conncache.h"
#include "../proxy/outbound/queue_runner.h"
#include "../report/tlsrpt.h"
#include "../spool/spool.h"
#include "../tls/tls_engine.h"
#include "app.h"
#include "metrics_http.h"
#include "status.h"

/* SIGTERM: both the server's drain and the queue runner's stop are done. */
static void app_stopped(struct app *app)
{
    if (app->runner && !uv_is_closing((uv_handle_t *)&app->sig_usr1))
        uv_close((uv_handle_t *)&app->sig_usr1, NULL);
    uv_close((uv_handle_t *)&app->sig_term, NULL);
    uv_close((uv_handle_t *)&app->sig_int, NULL);
    uv_close((uv_handle_t *)&app->sig_hup, NULL);
    if (app->n_workers > 1) { /* the master's forward of the group's signal may still come */
        uv_close((uv_handle_t *)&app->sig_now, NULL);
        uv_close((uv_handle_t *)&app->publish, NULL);
        signal(SIGUSR2, SIG_IGN);
        signal(SIGTERM, SIG_IGN);
        signal(SIGINT, SIG_IGN);
        signal(SIGHUP, SIG_IGN);
        signal(SIGUSR1, SIG_IGN);
    }
    uv_close((uv_handle_t *)&app->recheck, NULL);
    mxg_metrics_http_stop(app->metrics_http);
    app->metrics_http = NULL;
    app_close_parts(app);
}

/* One of the drain's parts (server, queue runner) is done; the last one stops the run. */
static void drain_step(struct app *app)
{
    if (--app->drain_wait == 0)
        app_stopped(app);
}

/* mxg_server_drain() callback: the sessions are gone. */
static void on_drained(struct mxg_server *srv)
{
    drain_step((struct app *)((char *)srv - offsetof(struct app, srv)));
}

/* mxg_queue_runner_stop() callback: the deliveries are done or cancelled. */
static void on_runner_stopped(void *arg)
{
    drain_step(arg);
}

/* The server's spool_kick: a message was spooled, let the runner scan now. */
static void app_spool_kick(void *arg)
{
    mxg_queue_runner_kick(arg);
}

/* A worker, every second: its summed gauges for worker 0's /metrics (core/metrics.h). */
static void on_publish(uv_timer_t *t)
{
    struct app *app = t->data;
    mxg_metrics_publish(app->metrics);
}

/* A worker other than 0 spooled a message: worker 0's runner is told directly. */
static void app_kick_master(void *arg)
{
    app_worker_kick0(arg);
}

/* SIGHUP reload, SIGUSR1 spool scan, SIGTERM/SIGINT drain (a second one: stop now; for a
 * worker, SIGUSR2 from the master). */
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
    if (signum == SIGUSR2) {
        /* a worker: the master's "again: now" (it got a second SIGTERM/SIGINT) */
        if (!app->stopping)
            on_signal(h, SIGTERM);
        app->stop_signal_at = 0;
        signum = SIGTERM;
    } else if (app->stopping && app->n_workers > 1 &&
               uv_now(&app->loop) - app->stop_signal_at < 1000) {
        /* a worker: the master passes SIGTERM on, and a signal to the whole process
         * group (systemd's control-group kill, ^C) reaches the worker too — the same
         * stop, not the "again: now" of a second one */
        return;
    }
    if (app->stopping++) { /* (the master's SIGUSR2 comes here with stopping set) */
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
    app->stop_signal_at = uv_now(&app->loop);
    LOG_N("main", "%s: draining (deadline %llus)", strsignal(signum),
          (unsigned long long)(app->cfg.drain_timeout_ms / 1000));
    app->drain_wait = app->runner ? 2 : 1;
    if (app->runner)
        mxg_queue_runner_stop(app->runner, on_runner_stopped, app);
    mxg_server_drain(&app->srv, on_drained);
}

/* The spool's queue runner (after mxg_server_start: its legs use the
 * server's upstream env, self addresses included), SIGUSR1 for `mxguard
 * queue flush`, and the pid file that command finds us by. */
static int app_start_queue(struct app *app)
{
    if (mxg_spool_cleaned(app->spool))
        LOG_N("main", "spool %s: removed %d leftover(s) of an interrupted write",
              mxg_spool_dir(app->spool), mxg_spool_cleaned(app->spool));
    if (!mxg_spool_owner(app->spool) && app->n_workers <= 1)
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
        /* worker processes: the master's pid (it passes SIGUSR1 on to worker 0) */
        fprintf(fp, "%ld\n", (long)(app->n_workers > 1 ? app_worker_master(app) : getpid()));
        fclose(fp);
    } else {
        LOG_W("main", "%s: %s (mxguard queue flush cannot signal this process)", app->pid_file,
              strerror(errno));
        app->pid_file[0] = 0;
    }
    if (app->n_workers > 1) { /* worker 0 runs the queue: `queue flush` signals it directly */
        snprintf(app->queue_pid_file, sizeof app->queue_pid_file, "%s/mxguard-queue.pid",
                 app->cfg.state_dir);
        if ((fp = fopen(app->queue_pid_file, "w"))) {
            fprintf(fp, "%ld\n", (long)getpid());
            fclose(fp);
        } else {
            LOG_W("main", "%s: %s", app->queue_pid_file, strerror(errno));
            app->queue_pid_file[0] = 0;
        }
    } else { /* one process: a file left by an earlier run with workers would be preferred */
        char stale[MXG_CFG_PATH_MAX + 24];
        snprintf(stale, sizeof stale, "%s/mxguard-queue.pid", app->cfg.state_dir);
        unlink(stale);
    }
    return 0;
}

/* The queue runner freed and the pid file removed (the end of app_start_queue()). */
static void app_stop_queue(struct app *app)
{
    if (app->runner)
        mxg_queue_runner_free(app->runner); /* handles close in app_shutdown's loop run */
    app->runner = NULL;
    app->srv.spool_kick = NULL;
    if (app->pid_file[0])
        unlink(app->pid_file);
    app->pid_file[0] = 0;
    if (app->queue_pid_file[0])
        unlink(app->queue_pid_file);
    app->queue_pid_file[0] = 0;
}

/* `mxguard run [-c FILE]`: start in order, serve until SIGTERM/SIGINT has drained. */
int mxg_cli_run(int argc, char **argv)
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
    mxg_log_set_format(app->cfg.log_format);
    if (app->cfg.workers == 0) { /* what "auto" became; a notice when a limit lowered it */
        char why[256];
        if (mxg_config_workers_explain(&app->cfg, why, sizeof why))
            LOG_N("main", "server.workers = %s", why);
        else
            LOG_I("main", "server.workers = %s", why);
    }
    if (mxg_config_workers(&app->cfg) > 1) { /* the master (app/run_workers.c) */
        rc = app_workers_run(app);
        if (rc != -2)
            goto out; /* the master is done; a worker (-2) goes on from here */
        rc = 1;
    }
    uv_loop_init(&app->loop);
    char err[1024];
    if (app->n_workers <= 1) {
        /* one process: the port is taken now (a clash stops the start at once, still
         * as the starting user), while clients are refused until it serves (listeners.h) */
        int n = app_listeners_bind(&app->cfg, 0, app->bound_fds, err, sizeof err);
        if (n < 0) {
            LOG_E("main", "%s", err);
            goto out_loop;
        }
        app->n_bound = n;
        app->listen_fds = app->bound_fds;
        LOG_I("main", "%d listener(s) bound: listening once the start-up checks have passed", n);
    }
    if (app_ops_prepare(app, err, sizeof err) < 0) {
        LOG_E("main", "%s", err);
        goto out_loop;
    }
    if (app_open_parts(app, 1, err, sizeof err) < 0) {
        LOG_E("main", "%s", err);
        goto out_loop;
    }
    if (app_open_state(app, err, sizeof err) < 0) {
        LOG_E("main", "%s", err);
        goto out_loop;
    }
    /* the upstream connection cache, limits and TLS sessions (proxy/outbound/conncache.h) */
    app->conncache = mxg_upstream_conncache_new(&app->loop, &app->cfg);
    if (app->shared_tls_resume) /* a worker: the store all workers share (app/run_workers.c) */
        app->tls_resume = app->shared_tls_resume;
    else if (app->cfg.tls_session_cache > 0)
        app->tls_resume = mxg_tls_resume_new(app->cfg.tls_session_cache);
    if (!app->conncache || (app->cfg.tls_session_cache > 0 && !app->tls_resume)) {
        LOG_E("main", "out of memory");
        goto out_loop;
    }
    if (app->n_workers > 1) { /* a worker: its share of the limits (app/run_workers.c) */
        struct mxg_conncache_cfg ccfg;
        app_conncache_cfg(app, &ccfg);
        mxg_conncache_reconfigure(app->conncache, &ccfg);
        if (app->worker == 0)
            LOG_N("main", "each of %d workers keeps a share of the upstream limits: "
                          "destination_concurrency %d, destination_rate %d, "
                          "upstream_connections %d (0: unlimited)", app->n_workers,
                  ccfg.dest_concurrency, ccfg.dest_rate, ccfg.max_conns);
    }
    app->mail_env.conncache = app->conncache; /* report mail shares the limits */
    app->mail_env.tls_resume = app->tls_resume;
    app_ops_conn_gauges(app);
    /* inbound STARTTLS and AUTH: read now (as server.user, before the final drop) */
    if (mxg_inbound_load(&app->cfg, &app->tls_server, &app->auth_db, err, sizeof err) < 0) {
        LOG_E("main", "%s", err);
        goto out_loop;
    }
    app->srv.tls_server = app->tls_server;
    app->srv.auth_db = app->auth_db;
    app->srv.listen_fds = app->listen_fds;       /* bound: one process's, or a worker's */
    app->srv.auth_throttle = app->shared_throttle; /* a worker: the AUTH tables of all */
    app->srv.auth_trust = app->shared_trust;
    app->srv.n_workers = app->n_workers; /* session ids unique across the workers */
    app->srv.worker = app->worker;
    if (app->auth_db)
        LOG_N("main", "AUTH: %d user(s) from %s", mxg_auth_db_count(app->auth_db),
              app->cfg.auth_password_file);
    /* every local policy source in force before a listener opens
     * (docs/ARCHITECTURE.md §Operating):
     * the policy list's file (its last verified copy came with the store),
     * like `check` (app_load_local) */
    app_load_local(app);
    if (app->sts)
        mxg_sts_start_refresh(app->sts, app->cfg.sts_sweep_ms);
    int sc = app_dnssec_selfcheck(app);
    if (sc < 0)
        goto out_loop;
    app_recheck_start(app, sc > 0);
    /* today's destinations for the status page: every delivery leg reports its end */
    /* (a worker: in its slot of the shared mapping, for worker 0's page to merge; a
     * restarted one goes on with what its predecessor counted today) */
    int retired = 0;
    if (!(app->status_track = mxg_status_track_new((int64_t)time(NULL),
                                                   app_worker_status_table(app), &retired))) {
        LOG_E("main", "out of memory");
        goto out_loop;
    }
    if (retired)
        LOG_W("main", "status page: %d record(s) of today's destinations were being written "
                      "when this worker's predecessor died: dropped", retired);
    app->started_at = (int64_t)time(NULL);
    struct mxg_upstream_env parts;
    app_env(app, &parts);
    if (app->stlist_src)
        mxg_stlist_source_start(app->stlist_src);
    if (app->rpt_sender && app->worker == 0) { /* one sender (worker 0 of several) */
        mxg_rpt_sender_set_metrics(app->rpt_sender, app->metrics);
        mxg_rpt_sender_start(app->rpt_sender, app->cfg.rpt_check_ms, app->cfg.rpt_delay_ms);
    }
    if (app_ensure_state_dir(&app->cfg, err, sizeof err) < 0) {
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
    app_wait_first_pull(app); /* the fleet's policies in the local copy first (bounded) */
    LOG_N("main", "local policy state loaded (policy list, MTA-STS cache, tls.policy_map, "
                  "TLSRPT store, trust anchors, the shared state's first pull): opening the "
                  "listeners");
    int srv_rc = -1;
    if (mxg_privs_leave(&app->privs, err, sizeof err) == 0) {
        srv_rc = mxg_server_start(&app->srv, &app->loop, &app->cfg, &parts, err, sizeof err);
        app->n_bound = 0; /* the server's now, also when it failed */
    }
    if (srv_rc < 0 || app_ops_started(app, err, sizeof err) < 0) {
        LOG_E("main", "%s", err);
        goto out_loop;
    }
    app->mail_env.self = app->srv.upenv.self; /* report mail: loop protection too */
    app->mail_env.n_self = app->srv.upenv.n_self;
    if (app->worker == 0 && app_start_queue(app) < 0)
        goto out_loop;
    if (app->worker > 0) { /* the queue runs in worker 0: it is kicked directly */
        app->srv.spool_kick = app_kick_master;
        app->srv.spool_kick_arg = app;
    }
    /* the last step that may fail: from here on every client is served (a worker's
     * sockets: the kernel gives it connections only from now on, app/listeners.h) */
    if (mxg_server_listen(&app->srv, err, sizeof err) < 0) {
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
    if (app->n_workers > 1) { /* the master's "stop now" */
        uv_signal_init(&app->loop, &app->sig_now);
        app->sig_now.data = app;
        uv_signal_start(&app->sig_now, on_signal, SIGUSR2);
        uv_timer_init(&app->loop, &app->publish);
        app->publish.data = app;
        uv_timer_start(&app->publish, on_publish, 0, 1000);
    }
    app_worker_signals_on(app); /* a reload or stop sent during start-up comes now */
    if (app->n_workers > 1)
        LOG_N("main", "worker %d of %d (pid %ld) started", app->worker, app->n_workers,
              (long)getpid());
    else
        LOG_N("main", "mxguard %s started (config %s)", MXG_VERSION,
              app->cfg.source[0] ? app->cfg.source : "built-in defaults");
    app_worker_ready(app);
    uv_run(&app->loop, UV_RUN_DEFAULT);
    LOG_N("main", "stopped");
    rc = 0;
out_loop:
    app_listeners_close(app->bound_fds, app->n_bound);
    app_stop_queue(app);
    app_shutdown(app);
    if (app->spool)
        mxg_spool_close(app->spool);
    app->spool = NULL;
    mxg_metrics_free(app->metrics);
    mxg_status_track_free(app->status_track); /* no leg is left to report to it */
    free(app->status_io);
    mxg_tls_ctx_free(app->tls_server);
    mxg_auth_db_free(app->auth_db);
out:
    free(app);
    return rc;
}
