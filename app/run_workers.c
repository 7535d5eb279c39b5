/* app/run_workers.c — server.workers > 1: the master process and what its worker
 * processes share (docs/ARCHITECTURE.md §Workers).
 *
 * Why processes, not threads: every module assumes one loop thread (the
 * registries, caches, the spool, the leg and session state machines, libuv's
 * handles, getdns' context, the libcurl multi handle); making each of them
 * thread-safe would touch all of them. A prefork model keeps that contract: the
 * master binds the listeners, makes the little that must be process-wide in one
 * MAP_SHARED mapping, then forks N workers; each worker is the whole one-loop
 * mxguard of app/run.c (its sessions, upstream connections, connection cache,
 * DNS context and answer cache, MTA-STS cache view: per worker by design)
 * serving the listener sockets made for it.
 *
 * Process-wide by nature, and how:
 *  - AUTH failure counters and trusted addresses: the two tables of
 *    proxy/inbound/auth.h made shared (mxg_auth_throttle_new_shared: fixed size,
 *    process-shared robust mutex; a full table refuses, fail closed; a worker
 *    dying while holding the mutex: every AUTH refused for
 *    max(auth.failure_window, auth.lockout), then the tables are emptied).
 *  - The upstream TLS session cache (upstream.tls_session_cache entries): one
 *    table of serialized sessions in a mapping of its own (tls/tls_shared.h:
 *    fixed size, slots of MXG_TLS_SHARED_SLOT octets, process-shared robust
 *    mutex; a worker dying while holding it makes the next user empty it: full
 *    handshakes until sessions are stored again, never a wrong session), so a session one worker's full handshake
 *    brought resumes any worker's connection to that (MX address, requirement)
 *    pair. The key's settings generation lives in the mapping: the master raises
 *    it on a reload before it tells the workers, who take it (a restarted worker
 *    inherits it), so every worker on the same settings makes the same key.
 *  - Upstream connection limits (limits.destination_concurrency,
 *    limits.destination_rate, limits.upstream_connections): each worker gets
 *    floor(limit / N) (app_conncache_cfg), so the sum never exceeds the limit;
 *    core/config.c refuses a limit below N. A worker cannot borrow another's
 *    unused share: fail closed, never above the limit.
 *  - Metrics: each worker counts in its own registry slot of the mapping (and
 *    publishes its sessions, connections and DNS cache size there every second);
 *    worker 0 serves /metrics with them summed and per-worker families
 *    (core/metrics.h mxg_metrics_render_workers).
 *  - Today's destinations (the status page): each worker tallies its delivery legs in
 *    its own slot of the mapping (app/status_table.h: fixed size, one writer, a
 *    sequence number per record instead of a lock), which worker 0's page merges;
 *    a dead worker's tally stays on the page, a restarted one adopts it (a record it
 *    died writing is dropped), a reader never waits for a writer.
 *  - Worker 0 alone runs the queue runner, the TLSRPT report sender, the metrics
 *    endpoint and the status page, and writes the pid file (with the master's
 *    pid: `mxguard queue flush` signals the master, which tells worker 0).
 *    Another worker that spooled a message signals worker 0 (SIGUSR1) directly,
 *    whose pid the master publishes in the mapping: the workers run as the same
 *    user, while the master may still be root (server.user), which they may not
 *    signal.
 *  - SQLite stores are opened per worker (busy timeouts, WAL); TLSRPT counts are
 *    added with UPSERT, so every worker's results count. The spool's file names
 *    carry the pid; the master opens the spool before forking (removing a crash's
 *    leftovers) and holds its lock for its lifetime, so no worker ever cleans
 *    while another writes; its entry locks keep a body being written apart.
 *
 * Listeners: one socket per (worker, endpoint), bound by the master with
 * SO_REUSEPORT before any worker starts (a port clash stops the start at once),
 * but not listening (app/listeners.h): a worker calls listen() on its own
 * sockets as the last step of its start-up, once its DNSSEC self-check, policy
 * state, spool and queue runner are in place (mxg_server_listen), so the kernel
 * spreads connections over the workers that serve, and while none does, a client
 * is refused (ECONNREFUSED), never left unanswered in a backlog; when every
 * worker fails its start-up, no connection was ever accepted. The master keeps
 * its copies open, so connections that arrive while a worker restarts wait in
 * that socket's backlog (it listens since the worker first served) for the new
 * worker instead of being refused.
 *
 * Signals (the master's, synchronous with sigtimedwait): SIGHUP is re-read by
 * the master (its configuration is what a restarted worker starts with) and
 * forwarded to every worker; SIGTERM/SIGINT: the master closes its listener
 * copies and forwards it (a second one as SIGUSR2, "now": a worker takes a second
 * SIGTERM within 1 s of the first for the process group's copy of the same stop,
 * ^C or systemd's control-group kill); it exits when every worker has,
 * with 0 when all of them exited 0, else 1; a worker still running
 * server.drain_timeout + 3 s after the stop is killed (SIGKILL; status 1). SIGUSR1 goes to worker 0. A worker
 * that dies after it was serving is logged and restarted (after 1 s when it
 * lived less than that); one that dies before it first served (a start-up error)
 * stops the whole server with status 1, as a single process would; a restarted one
 * that cannot start again is retried every 5 s (logged) while the others serve. Workers get
 * SIGTERM when the master dies (PR_SET_PDEATHSIG, set again after the privilege drop,
 * which clears it; a worker whose master is already gone then exits). */
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../core/log.h"
#include "../core/metrics.h"
#include "../core/reload.h"
#include "../proxy/inbound/auth.h"
#include "../proxy/outbound/conncache.h"
#include "../spool/spool.h"
#include "../tls/tls_engine.h"
#include "../tls/tls_shared.h"
#include "app.h"
#include "listeners.h"
#include "status.h"
#include "privs.h"

#define MAX_ENDPOINTS APP_LISTENERS_MAX
#define STOP_MARGIN_MS 3000 /* past server.drain_timeout, the master kills what is left */

/* What the master shares with its workers (one MAP_SHARED mapping). */
struct app_shared {
    int n;                                   /* workers */
    pid_t master;                            /* the master's pid (set before any fork) */
    struct mxg_metrics *metrics[MXG_CFG_WORKERS_MAX];
    struct mxg_status_table *status[MXG_CFG_WORKERS_MAX]; /* today's destinations, per worker */
    uint64_t restarts[MXG_CFG_WORKERS_MAX];  /* written by the master */
    int ready[MXG_CFG_WORKERS_MAX];          /* the worker serves (set by it) */
    pid_t pid[MXG_CFG_WORKERS_MAX];          /* running workers (the master's; 0: none) */
    size_t len;                              /* the whole mapping */
};

/* The master's bookkeeping (its own memory). */
struct master {
    struct app *app;
    int n, n_ep;
    int fds[MXG_CFG_WORKERS_MAX][MAX_ENDPOINTS];
    pid_t pid[MXG_CFG_WORKERS_MAX];          /* 0: not running */
    uint64_t started_ms[MXG_CFG_WORKERS_MAX];
    uint64_t restart_at[MXG_CFG_WORKERS_MAX]; /* 0: none due */
    int stopping, failed;
    uint64_t stop_deadline;                  /* stopping: SIGKILL to those left (0: none) */
    sigset_t sigs, old_mask;
    struct mxg_spool *spool;                 /* held (its lock) for the master's lifetime */
};

/* CLOCK_MONOTONIC in milliseconds. */
static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* The shared mapping: the header, then one metrics registry per worker, then one
 * tally of today's destinations per worker (app/status_table.h; zeroed: empty) (the
 * AUTH tables are mappings of their own). NULL (logged) when it cannot be made. */
static struct app_shared *shared_new(int n)
{
    size_t head = (sizeof(struct app_shared) + 63) & ~(size_t)63;
    size_t slot = (mxg_metrics_size() + 63) & ~(size_t)63;
    size_t tslot = (mxg_status_table_size() + 63) & ~(size_t)63;
    size_t len = head + (size_t)n * slot + (size_t)n * tslot;
    void *mem = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) {
        LOG_E("main", "workers: shared memory (%zu octets): %s", len, strerror(errno));
        return NULL;
    }
    struct app_shared *sh = mem;
    sh->n = n;
    sh->master = getpid();
    sh->len = len;
    for (int i = 0; i < n; i++) {
        sh->metrics[i] = mxg_metrics_new_at((char *)mem + head + (size_t)i * slot, slot);
        sh->status[i] = (struct mxg_status_table *)((char *)mem + head + (size_t)n * slot +
                                                    (size_t)i * tslot);
    }
    return sh;
}

/* Every worker's listener sockets, bound with SO_REUSEPORT, not listening: each worker
 * listens on its own once it has passed its start-up (app/listeners.h). 0, or -1
 * (logged, none left open). */
static int bind_all(struct master *m)
{
    const struct mxg_config *cfg = &m->app->cfg;
    char err[512];
    for (int w = 0; w < m->n; w++)
        for (int i = 0; i < MAX_ENDPOINTS; i++)
            m->fds[w][i] = -1;
    for (int w = 0; w < m->n; w++) {
        if ((m->n_ep = app_listeners_bind(cfg, 1, m->fds[w], err, sizeof err)) < 0) {
            LOG_E("main", "%s", err);
            for (int v = 0; v < w; v++)
                app_listeners_close(m->fds[v], MAX_ENDPOINTS);
            m->n_ep = 0;
            return -1;
        }
    }
    for (int i = 0; i < m->n_ep; i++)
        LOG_N("server", "bound %s%s for %d workers: each listens once it has passed its "
                        "start-up checks (until then connections are refused)",
              i < cfg->n_listen ? cfg->listen[i].text : cfg->queue_listen[i - cfg->n_listen].text,
              i < cfg->n_listen ? "" : " (queue mode)", m->n);
    return 0;
}

/* The master's listener copies closed (SIGTERM: no new connections once the
 * workers have closed theirs). */
static void close_all(struct master *m)
{
    for (int w = 0; w < m->n; w++)
        for (int i = 0; i < m->n_ep; i++)
            if (m->fds[w][i] >= 0) {
                close(m->fds[w][i]);
                m->fds[w][i] = -1;
            }
}

/* Fork worker w. In the child: returns 1 (the caller goes on serving as worker
 * w); in the master 0, or -1 when fork failed (logged). */
static int spawn(struct master *m, int w)
{
    pid_t pid = fork();
    if (pid < 0) {
        LOG_E("main", "worker %d: fork: %s", w, strerror(errno));
        return -1;
    }
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != m->app->shared->master)
            _exit(1); /* the master died before the line above */
        /* the master's copy of the spool lock: closing this process's descriptors
         * leaves the lock with the master (flock belongs to the open file) */
        mxg_spool_close(m->spool);
        m->spool = NULL;
        for (int v = 0; v < m->n; v++)
            for (int i = 0; v != w && i < m->n_ep; i++)
                if (m->fds[v][i] >= 0)
                    close(m->fds[v][i]);
        /* until the worker's own handlers are in place, what the master passes on
         * must not end it (the default actions) nor be lost: a reload or a stop
         * stays blocked, pending, until app_worker_signals_on(); a queue kick is
         * ignored (worker 0's runner scans the spool as it starts) */
        signal(SIGUSR1, SIG_IGN);
        sigset_t start = m->old_mask;
        sigaddset(&start, SIGHUP);
        sigaddset(&start, SIGTERM);
        sigaddset(&start, SIGINT);
        sigprocmask(SIG_SETMASK, &start, NULL);
        struct app *app = m->app;
        app->worker = w;
        app->listen_fds = m->fds[w];
        return 1;
    }
    m->pid[w] = pid;
    __atomic_store_n(&m->app->shared->pid[w], pid, __ATOMIC_RELEASE);
    m->started_ms[w] = mono_ms();
    m->restart_at[w] = 0;
    LOG_I("main", "worker %d started (pid %ld)", w, (long)pid);
    return 0;
}

/* The spool opened, cleaned of a crash's leftovers and locked by the master before
 * any worker runs, and kept so until it exits: no worker ever owns it, so none
 * cleans while another writes (a body or an envelope being rewritten). As root
 * with server.user, state.directory and what the master created in it are given to
 * the user (app/privs.h). 0, or -1 (logged). */
static int hold_spool(struct master *m)
{
    const struct mxg_config *cfg = &m->app->cfg;
    struct mxg_privs privs;
    char err[1024], dir[MXG_CFG_PATH_MAX + 16];
    if (mxg_privs_resolve(cfg, &privs, err, sizeof err) < 0 ||
        app_ensure_state_dir(cfg, err, sizeof err) < 0) {
        LOG_E("main", "%s", err);
        return -1;
    }
    snprintf(dir, sizeof dir, "%s/spool", cfg->state_dir);
    if (!(m->spool = mxg_spool_open(dir, err, sizeof err))) {
        LOG_E("main", "spool: %s", err);
        return -1;
    }
    if (!mxg_spool_owner(m->spool)) {
        LOG_E("main", "spool %s is locked by another process (a second mxguard on the same "
                      "state.directory?)", dir);
        return -1;
    }
    if (mxg_spool_cleaned(m->spool))
        LOG_N("main", "spool %s: removed %d leftover(s) of an interrupted write", dir,
              mxg_spool_cleaned(m->spool));
    if (mxg_privs_prepare_dir(&privs, cfg->state_dir, err, sizeof err) < 0) {
        LOG_E("main", "%s", err);
        return -1;
    }
    return 0;
}

/* A signal for every running worker. */
static void tell_all(struct master *m, int sig)
{
    for (int w = 0; w < m->n; w++)
        if (m->pid[w] > 0)
            kill(m->pid[w], sig);
}

/* How a child ended, for the log. */
static void describe_status(int st, char *out, size_t cap)
{
    if (WIFSIGNALED(st))
        snprintf(out, cap, "killed by %s", strsignal(WTERMSIG(st)));
    else
        snprintf(out, cap, "exited with status %d", WEXITSTATUS(st));
}

/* Reap every child that ended; schedule restarts or note the stop's outcome. */
static void reap(struct master *m)
{
    int st;
    pid_t pid;
    while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
        int w = 0;
        while (w < m->n && m->pid[w] != pid)
            w++;
        if (w == m->n)
            continue;
        m->pid[w] = 0;
        __atomic_store_n(&m->app->shared->pid[w], 0, __ATOMIC_RELEASE);
        mxg_metrics_unpublish(m->app->shared->metrics[w]); /* its sessions are gone */
        char how[96];
        describe_status(st, how, sizeof how);
        int clean = WIFEXITED(st) && WEXITSTATUS(st) == 0;
        if (m->stopping) {
            if (!clean)
                m->failed = 1;
            LOG_N("main", "worker %d (pid %ld) %s", w, (long)pid, how);
            continue;
        }
        if (!m->app->shared->ready[w] && m->app->shared->restarts[w] == 0) {
            LOG_E("main", "worker %d (pid %ld) %s before it served: stopping", w, (long)pid, how);
            m->failed = 1;
            m->stopping = 1;
            close_all(m);
            tell_all(m, SIGTERM);
            continue;
        }
        /* a restarted worker that could not start again (the others serve on): retried
         * every 5 s, loudly */
        uint64_t now = mono_ms();
        uint64_t delay = !m->app->shared->ready[w] ? 5000 : now - m->started_ms[w] < 1000 ? 1000 : 0;
        m->restart_at[w] = now + delay;
        LOG_E("main", "worker %d (pid %ld) %s%s: restarting it%s", w, (long)pid, how,
              m->app->shared->ready[w] ? "" : " before it served again",
              delay == 5000 ? " in 5s" : delay ? " in 1s" : "");
    }
}

/* SIGHUP in the master: its configuration follows the file (what a restarted worker
 * starts with), under the rules of a worker's reload (core/reload.h). */
static void master_reload(struct master *m)
{
    struct app *app = m->app;
    struct mxg_config *next = malloc(sizeof *next);
    char err[1024];
    if (!next)
        return;
    if (mxg_config_load(next, app->cfg.source[0] ? app->cfg.source : NULL, environ, err,
                        sizeof err) < 0) {
        free(next); /* each worker logs the error */
        return;
    }
    if (app_workers_check_limits(next, m->n, err, sizeof err) < 0) {
        LOG_E("main", "reload refused: %s; the running configuration stays in force", err);
        free(next);
        return;
    }
    struct mxg_reload_ctx rc = {.have_list = 1};
    struct mxg_reload_result res;
    mxg_reload_apply(&app->cfg, next, &rc, &res);
    /* the workers' TLS session keys: a new settings generation, set before they are told */
    mxg_tls_resume_settings_changed(app->shared_tls_resume);
    if (res.actions & MXG_RELOAD_LOG) { /* the master's own lines follow the log settings */
        mxg_log_setup(app->cfg.log_level, app->cfg.log_syslog);
        mxg_log_set_format(app->cfg.log_format);
    }
    free(next);
}

/* The master's loop: signals and restarts until every worker has stopped. Returns
 * 1 in a (re)started worker's child, else the exit status. */
static int master_loop(struct master *m)
{
    for (;;) {
        int running = 0;
        for (int w = 0; w < m->n; w++)
            running += m->pid[w] > 0;
        if (m->stopping && running == 0)
            return m->failed ? 1 : 0;
        uint64_t now = mono_ms();
        if (m->stopping && !m->stop_deadline) /* a worker drains for drain_timeout at most */
            m->stop_deadline = now + m->app->cfg.drain_timeout_ms + STOP_MARGIN_MS;
        if (m->stop_deadline && now >= m->stop_deadline) {
            LOG_E("main", "%d worker(s) still running %llus after the stop "
                          "(server.drain_timeout + %ds): killing them", running,
                  (unsigned long long)(m->app->cfg.drain_timeout_ms / 1000), STOP_MARGIN_MS / 1000);
            tell_all(m, SIGKILL);
            m->failed = 1;
            m->stop_deadline = UINT64_MAX; /* once; reap() collects them */
        }
        for (int w = 0; !m->stopping && w < m->n; w++) {
            if (m->pid[w] == 0 && m->restart_at[w] && m->restart_at[w] <= now) {
                m->app->shared->ready[w] = 0;
                m->app->shared->restarts[w]++;
                int r = spawn(m, w);
                if (r == 1)
                    return -2; /* the child */
                if (r < 0)
                    m->restart_at[w] = now + 1000;
            }
        }
        struct timespec ts = {0, 200 * 1000000L};
        siginfo_t si;
        int sig = sigtimedwait(&m->sigs, &si, &ts);
        if (sig < 0)
            continue;
        switch (sig) {
        case SIGCHLD:
            reap(m);
            break;
        case SIGHUP:
            if (m->stopping)
                break;
            LOG_N("main", "SIGHUP: reloading every worker");
            master_reload(m);
            tell_all(m, SIGHUP);
            break;
        case SIGUSR1:
            if (m->pid[0] > 0)
                kill(m->pid[0], SIGUSR1);
            break;
        default: /* SIGTERM, SIGINT */
            if (m->stopping == 2) {
                /* the second one: the workers' drain deadline is now (SIGUSR2, as a
                 * worker takes a second SIGTERM within 1 s for the group's copy) */
                LOG_W("main", "%s again: closing every worker's sessions now", strsignal(sig));
                tell_all(m, SIGUSR2);
                break;
            }
            LOG_N("main", "%s: draining %d worker(s)", strsignal(sig), running);
            m->stopping = 2;
            close_all(m);
            tell_all(m, sig);
            break;
        }
    }
}

/* The master's own handle on the shared TLS session cache, released as it ends (a
 * worker releases its inherited copy in app_shutdown). */
static void master_free(struct app *app)
{
    mxg_tls_resume_free(app->shared_tls_resume);
    app->shared_tls_resume = NULL;
}

int app_workers_run(struct app *app)
{
    static struct master m; /* the master's only one; its children inherit a copy */
    memset(&m, 0, sizeof m);
    m.app = app;
    m.n = mxg_config_workers(&app->cfg);
    app->n_workers = m.n;
    if (!(app->shared = shared_new(m.n)))
        return 1;
    /* a worker that dies holding a table's mutex: AUTH refused until every window and
     * lockout in it would have run out, then emptied (proxy/inbound/auth_throttle.c) */
    uint64_t quarantine = app->cfg.auth_window_ms > app->cfg.auth_lockout_ms
                              ? app->cfg.auth_window_ms
                              : app->cfg.auth_lockout_ms;
    app->shared_throttle = mxg_auth_throttle_new_shared(app->cfg.auth_throttle_entries, quarantine);
    app->shared_trust = mxg_auth_throttle_new_shared(app->cfg.auth_trusted_entries, quarantine);
    if (!app->shared_throttle || !app->shared_trust) {
        LOG_E("main", "workers: shared AUTH tables: out of memory");
        return 1;
    }
    if (app->cfg.tls_session_cache > 0 &&
        !(app->shared_tls_resume = mxg_tls_resume_new_shared(app->cfg.tls_session_cache))) {
        LOG_E("main", "workers: shared TLS session cache (%zu octets): out of memory",
              mxg_tls_shared_size(app->cfg.tls_session_cache));
        return 1;
    }
    if (app->shared_tls_resume)
        LOG_I("main", "workers: one TLS session cache for all: %d sessions of at most %d octets "
                      "(%zu KiB of shared memory)", app->cfg.tls_session_cache,
              MXG_TLS_SHARED_SLOT, mxg_tls_shared_size(app->cfg.tls_session_cache) / 1024);
    if (hold_spool(&m) < 0) {
        master_free(app);
        return 1;
    }
    if (bind_all(&m) < 0) {
        mxg_spool_close(m.spool);
        master_free(app);
        return 1;
    }
    sigemptyset(&m.sigs);
    int sigs[] = {SIGCHLD, SIGTERM, SIGINT, SIGHUP, SIGUSR1};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
        sigaddset(&m.sigs, sigs[i]);
    sigprocmask(SIG_BLOCK, &m.sigs, &m.old_mask);
    LOG_N("main", "mxguard %s: master (pid %ld) starting %d workers", MXG_VERSION,
          (long)getpid(), m.n);
    for (int w = 0; w < m.n; w++) {
        int r = spawn(&m, w);
        if (r == 1)
            return -2;
        if (r < 0) {
            m.stopping = m.failed = 1;
            close_all(&m);
            tell_all(&m, SIGTERM);
            break;
        }
    }
    int rc = master_loop(&m);
    if (rc == -2)
        return -2;
    close_all(&m);
    mxg_spool_close(m.spool);
    master_free(app);
    LOG_N("main", "master: every worker stopped (status %d)", rc);
    return rc;
}

struct mxg_metrics *app_worker_metrics(struct app *app)
{
    return app->shared ? app->shared->metrics[app->worker] : NULL;
}

struct mxg_status_table *app_worker_status_table(struct app *app)
{
    return app->shared ? app->shared->status[app->worker] : NULL;
}

int app_worker_status_tables(struct app *app, struct mxg_status_table *const **out)
{
    *out = app->shared->status;
    /* this process's own count, not the shared header's (writable by every worker) */
    return app->n_workers < MXG_CFG_WORKERS_MAX ? app->n_workers : MXG_CFG_WORKERS_MAX;
}

int app_worker_dropped(struct app *app, char *err, size_t errlen)
{
    if (!app->shared)
        return 0;
    /* a change of credentials cleared the parent-death signal set at the fork */
    if (prctl(PR_SET_PDEATHSIG, SIGTERM) < 0 || getppid() != app->shared->master) {
        snprintf(err, errlen, "worker %d: the master (pid %ld) is gone", app->worker,
                 (long)app->shared->master);
        return -1;
    }
    return 0;
}

pid_t app_worker_master(const struct app *app)
{
    return app->shared->master;
}

void app_worker_kick0(const struct app *app)
{
    pid_t p = __atomic_load_n(&app->shared->pid[0], __ATOMIC_ACQUIRE);
    if (p > 0) /* 0: worker 0 restarts; its runner scans the spool as it starts */
        kill(p, SIGUSR1);
}

void app_worker_signals_on(const struct app *app)
{
    if (!app->shared)
        return;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigprocmask(SIG_UNBLOCK, &set, NULL); /* what came meanwhile is delivered now */
}

void app_worker_ready(struct app *app)
{
    if (app->shared)
        __atomic_store_n(&app->shared->ready[app->worker], 1, __ATOMIC_RELEASE);
}

int app_workers_render(void *arg, char **out, size_t *len)
{
    struct app *app = arg;
    return mxg_metrics_render_workers(app->shared->metrics, app->shared->n, app->worker,
                                      app->shared->restarts, out, len);
}

int app_workers_check_limits(const struct mxg_config *next, int n, char *err, size_t errlen)
{
    const struct {
        const char *name;
        int v;
    } lim[] = {{"limits.destination_concurrency", next->dest_concurrency},
               {"limits.destination_rate", next->dest_rate},
               {"limits.upstream_connections", next->upstream_connections}};
    for (size_t i = 0; n > 1 && i < sizeof lim / sizeof lim[0]; i++)
        if (lim[i].v > 0 && lim[i].v < n) {
            snprintf(err, errlen, "%s: %d is below the %d running workers (server.workers "
                                  "changes only with a restart): each worker gets an equal "
                                  "share of it", lim[i].name, lim[i].v, n);
            return -1;
        }
    return 0;
}

/* limit's share for one of n workers: 0 (unlimited) stays 0; a positive limit never
 * becomes 0 (unlimited): at least 1 (app_workers_check_limits keeps limit >= n). */
static int share_of(int limit, int n)
{
    if (limit <= 0)
        return limit;
    return limit / n > 0 ? limit / n : 1;
}

void app_conncache_cfg(const struct app *app, struct mxg_conncache_cfg *c)
{
    mxg_upstream_conncache_cfg(&app->cfg, c);
    if (app->n_workers <= 1)
        return;
    /* an equal share each: the sum never exceeds the limit (core/config.c and
     * app_workers_check_limits refuse a limit below the worker count) */
    c->dest_concurrency = share_of(c->dest_concurrency, app->n_workers);
    c->dest_rate = share_of(c->dest_rate, app->n_workers);
    c->max_conns = share_of(c->max_conns, app->n_workers);
}
