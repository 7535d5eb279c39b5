/* app/cli_queue.c — `mxguard queue list|show|flush|delete`: look at and
 * steer the spool (spool/spool.h) from the command line, while the daemon
 * runs or not.
 *
 * Every change takes the entry's lock first and reloads the envelope under
 * it (an entry the daemon is delivering right now is busy: flush skips it —
 * it is being tried anyway — and delete refuses it). flush sets
 * next_attempt_ms = 0 and then sends SIGUSR1 to the daemon named by
 * <state.directory>/mxguard.pid (only if that pid really is an mxguard), so
 * it scans at once; otherwise the entries are due at its next scan or start.
 * delete logs who removed what (syslog when log.syslog is set).
 *
 * Exit status: 0 done; 1 an entry was not found, is busy, or the spool
 * could not be read/written; 2 usage. */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <pwd.h>

#include "../spool/spool.h"
#include "app.h"
#include "../core/config.h"
#include "../core/log.h"
#include "privs.h"

#define MAX_IDS 1024

/* The wall clock in milliseconds. */
static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* "3d4h", "5m12s", "40s", "0s" */
static void span(int64_t ms, char *out, size_t cap)
{
    int64_t s = ms / 1000;
    if (s < 0)
        s = 0;
    if (s >= 86400)
        snprintf(out, cap, "%lldd%lldh", (long long)(s / 86400), (long long)(s % 86400 / 3600));
    else if (s >= 3600)
        snprintf(out, cap, "%lldh%lldm", (long long)(s / 3600), (long long)(s % 3600 / 60));
    else if (s >= 60)
        snprintf(out, cap, "%lldm%llds", (long long)(s / 60), (long long)(s % 60));
    else
        snprintf(out, cap, "%llds", (long long)s);
}

/* ms since the epoch as ISO-8601 UTC. */
static void iso(int64_t ms, char *out, size_t cap)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* The queue commands' usage on stderr. */
static void usage_queue(void)
{
    mxg_cli_usage(stderr, "queue", NULL);
}

/* <state.directory>/spool opened into *out; -1 with a message on stderr. */
static int open_spool(const struct mxg_config *cfg, struct mxg_spool **out)
{
    char dir[MXG_CFG_PATH_MAX + 16], err[600];
    snprintf(dir, sizeof dir, "%s/spool", cfg->state_dir);
    *out = mxg_spool_open(dir, err, sizeof err);
    if (!*out) {
        fprintf(stderr, "mxguard: %s\n", err);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------- list */

/* `queue list`: every entry, one line per recipient; 1 when one could not be read. */
static int q_list(struct mxg_spool *sp)
{
    char(*ids)[MXG_SPOOL_ID_MAX];
    int n, bad = 0, shown = 0;
    int rc = mxg_spool_list(sp, &ids, &n);
    if (rc < 0) {
        fprintf(stderr, "mxguard: %s: %s\n", mxg_spool_dir(sp), strerror(-rc));
        return 1;
    }
    int64_t now = now_ms();
    for (int i = 0; i < n; i++) {
        struct mxg_spool_env env;
        char err[600], age[32], next[40];
        int lr = mxg_spool_load(sp, ids[i], &env, err, sizeof err);
        if (lr < 0) {
            if (lr != -ENOENT) { /* else: delivered meanwhile */
                printf("%s unreadable: %s\n", ids[i], err);
                bad = 1;
            }
            continue;
        }
        span(now - env.created_ms, age, sizeof age);
        if (env.next_attempt_ms <= now) {
            snprintf(next, sizeof next, "now");
        } else {
            char sp_[32];
            span(env.next_attempt_ms - now + 999, sp_, sizeof sp_);
            snprintf(next, sizeof next, "in %s", sp_);
        }
        printf("%s %s age=%s size=%" PRIu64 " from=<%s> attempts=%d next=%s", env.id,
               mxg_spool_kind_name(env.kind), age, env.body_size, env.from, env.attempts, next);
        for (int k = 0; k < env.n_rcpts; k++) {
            const struct mxg_spool_rcpt *r = &env.rcpts[k];
            printf(" | <%s> %s", r->addr, mxg_spool_rcpt_state_name(r->state));
            if (r->last_reply[0])
                printf(" \"%s\"", r->last_reply);
        }
        printf("\n");
        shown++;
        mxg_spool_env_free(&env);
    }
    free(ids);
    fprintf(stderr, "%d entr%s in %s\n", shown, shown == 1 ? "y" : "ies", mxg_spool_dir(sp));
    return bad;
}

/* ------------------------------------------------------------- show */

/* `queue show ID`: the envelope and the headers of one entry. */
static int q_show(struct mxg_spool *sp, const char *id)
{
    struct mxg_spool_env env;
    char err[600];
    if (mxg_spool_load(sp, id, &env, err, sizeof err) < 0) {
        fprintf(stderr, "mxguard: %s\n", err);
        return 1;
    }
    char *json = mxg_spool_env_encode(&env);
    char c[40], nx[40];
    iso(env.created_ms, c, sizeof c);
    iso(env.next_attempt_ms, nx, sizeof nx);
    printf("# %s: %s, created %s, next attempt %s\n", env.id, mxg_spool_kind_name(env.kind), c,
           nx);
    printf("%s\n\n", json ? json : "(out of memory)");
    free(json);
    mxg_spool_env_free(&env);

    /* the header section, unstuffed */
    int fd = mxg_spool_body_open(sp, id);
    if (fd < 0) {
        fprintf(stderr, "mxguard: %s/%s.msg: %s\n", mxg_spool_dir(sp), id, strerror(-fd));
        return 1;
    }
    FILE *fp = fdopen(fd, "r");
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    size_t total = 0;
    while (fp && (len = getline(&line, &cap, fp)) > 0 && total < 1024 * 1024) {
        total += (size_t)len;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = 0;
        if (len == 0)
            break; /* end of the header section */
        const char *p = line[0] == '.' ? line + 1 : line;
        /* never copy terminal control characters to the operator's tty */
        for (ssize_t i = 0; p[i]; i++)
            putchar(((unsigned char)p[i] < 0x20 && p[i] != '\t') || p[i] == 0x7f ? '?' : p[i]);
        putchar('\n');
    }
    free(line);
    if (fp)
        fclose(fp);
    else
        close(fd);
    return 0;
}

/* ------------------------------------------------------------- flush */

/* SIGUSR1 to the daemon, if the pid file names a live mxguard: with server.workers > 1
 * worker 0 (mxguard-queue.pid: it runs the queue, as server.user, which this command may
 * signal when the master runs as root), else the process in mxguard.pid. */
static void poke_daemon(const struct mxg_config *cfg)
{
    char path[MXG_CFG_PATH_MAX + 24], comm[64] = "";
    snprintf(path, sizeof path, "%s/mxguard-queue.pid", cfg->state_dir);
    if (access(path, F_OK) != 0)
        snprintf(path, sizeof path, "%s/mxguard.pid", cfg->state_dir);
    FILE *fp = fopen(path, "r");
    long pid = 0;
    if (!fp || fscanf(fp, "%ld", &pid) != 1 || pid <= 1) {
        if (fp)
            fclose(fp);
        printf("mxguard does not seem to run (no %s): the entries are tried at its next start\n",
               path);
        return;
    }
    fclose(fp);
    char cpath[64];
    snprintf(cpath, sizeof cpath, "/proc/%ld/comm", pid);
    fp = fopen(cpath, "r");
    if (fp) {
        if (!fgets(comm, sizeof comm, fp))
            comm[0] = 0;
        fclose(fp);
    }
    comm[strcspn(comm, "\n")] = 0;
    if (!strstr(comm, "mxguard")) {
        printf("pid %ld in %s is not mxguard (stale pid file): the entries are tried at its "
               "next start\n", pid, path);
        return;
    }
    if (kill((pid_t)pid, SIGUSR1) < 0)
        printf("cannot signal mxguard (pid %ld): %s; the entries are tried at its next scan\n",
               pid, strerror(errno));
    else
        printf("asked mxguard (pid %ld) to scan the spool now\n", pid);
}

/* `queue flush [ID...]`: due now, then SIGUSR1 to the daemon if it runs. */
static int q_flush(const struct mxg_config *cfg, struct mxg_spool *sp, char **ids, int n_ids)
{
    char(*all)[MXG_SPOOL_ID_MAX] = NULL;
    int n_all = 0, status = 0, flushed = 0, busy = 0;
    if (n_ids == 0) {
        int rc = mxg_spool_list(sp, &all, &n_all);
        if (rc < 0) {
            fprintf(stderr, "mxguard: %s: %s\n", mxg_spool_dir(sp), strerror(-rc));
            return 1;
        }
    }
    int n = n_ids ? n_ids : n_all;
    for (int i = 0; i < n; i++) {
        const char *id = n_ids ? ids[i] : all[i];
        char err[600];
        int fd = mxg_spool_lock(sp, id);
        if (fd == -EBUSY) {
            busy++; /* being delivered right now */
            continue;
        }
        if (fd < 0) {
            fprintf(stderr, "mxguard: %s: %s\n", id,
                    fd == -ENOENT ? "no such entry" : fd == -EINVAL ? "not an entry ID"
                                                                    : strerror(-fd));
            if (n_ids)
                status = 1;
            continue;
        }
        struct mxg_spool_env env;
        if (mxg_spool_load(sp, id, &env, err, sizeof err) < 0) {
            fprintf(stderr, "mxguard: %s\n", err);
            status = 1;
        } else {
            env.next_attempt_ms = 0;
            if (mxg_spool_update(sp, &env, err, sizeof err) < 0) {
                fprintf(stderr, "mxguard: %s\n", err);
                status = 1;
            } else {
                flushed++;
            }
            mxg_spool_env_free(&env);
        }
        close(fd);
    }
    free(all);
    printf("%d entr%s due now", flushed, flushed == 1 ? "y" : "ies");
    if (busy)
        printf(", %d being delivered right now", busy);
    printf("\n");
    poke_daemon(cfg);
    return status;
}

/* ------------------------------------------------------------- delete */

/* Who runs this command (uid, name, sudo user), for the log. */
static const char *who(char *buf, size_t cap)
{
    const char *sudo = getenv("SUDO_USER");
    struct passwd *pw = getpwuid(getuid());
    snprintf(buf, cap, "uid %ld (%s)%s%s", (long)getuid(), pw ? pw->pw_name : "?",
             sudo ? " via sudo by " : "", sudo ? sudo : "");
    return buf;
}

/* `queue delete ID...`: remove entries not being delivered; logged. */
static int q_delete(struct mxg_spool *sp, char **ids, int n_ids)
{
    int status = 0;
    char whobuf[200];
    who(whobuf, sizeof whobuf);
    for (int i = 0; i < n_ids; i++) {
        const char *id = ids[i];
        char err[600];
        int fd = mxg_spool_lock(sp, id);
        if (fd < 0) {
            fprintf(stderr, "mxguard: %s: %s\n", id,
                    fd == -EBUSY    ? "being delivered right now; try again in a moment"
                    : fd == -ENOENT ? "no such entry"
                    : fd == -EINVAL ? "not an entry ID"
                                    : strerror(-fd));
            status = 1;
            continue;
        }
        struct mxg_spool_env env;
        int loaded = mxg_spool_load(sp, id, &env, err, sizeof err) == 0;
        int rc = mxg_spool_remove(sp, id);
        close(fd);
        if (rc < 0) {
            fprintf(stderr, "mxguard: %s: remove: %s\n", id, strerror(-rc));
            status = 1;
        } else {
            char rcpts[1024] = "";
            size_t o = 0;
            int pending = 0;
            for (int k = 0; loaded && k < env.n_rcpts; k++) {
                if (env.rcpts[k].state == MXG_RCPT_PENDING)
                    pending++;
                int w = snprintf(rcpts + o, sizeof rcpts - o, "%s<%s>", k ? "," : "",
                                 env.rcpts[k].addr);
                if (w < 0 || (size_t)w >= sizeof rcpts - o)
                    break;
                o += (size_t)w;
            }
            LOG_N("queue", "%s deleted by %s: %s from=<%s> rcpts=%s (%d not delivered; no "
                           "bounce is sent)",
                  id, whobuf, loaded ? mxg_spool_kind_name(env.kind) : "unreadable",
                  loaded ? env.from : "?", loaded ? rcpts : "?", pending);
            printf("deleted %s\n", id);
        }
        if (loaded)
            mxg_spool_env_free(&env);
    }
    return status;
}

/* ------------------------------------------------------------- entry */

/* `queue list|show|flush|delete`: the exit status (see above). */
int mxg_cli_queue(int argc, char **argv)
{
    if (argc < 1) {
        usage_queue();
        return 2;
    }
    const char *sub = argv[0], *file = NULL;
    char *ids[MAX_IDS];
    int n_ids = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-c") == 0 && i + 1 < argc) {
            file = argv[++i];
        } else if (argv[i][0] == '-' || n_ids == MAX_IDS) {
            fprintf(stderr, "mxguard: unexpected argument '%s'\n", argv[i]);
            return 2;
        } else {
            ids[n_ids++] = argv[i];
        }
    }
    int is_list = !strcmp(sub, "list"), is_show = !strcmp(sub, "show"),
        is_flush = !strcmp(sub, "flush"), is_delete = !strcmp(sub, "delete");
    if ((!is_list && !is_show && !is_flush && !is_delete) || (is_list && n_ids) ||
        (is_show && n_ids != 1) || (is_delete && n_ids < 1)) {
        usage_queue();
        return 2;
    }
    struct mxg_config *cfg = malloc(sizeof *cfg);
    if (!cfg)
        return 1;
    int rc = 1;
    struct mxg_spool *sp = NULL;
    if (mxg_cli_load(cfg, file) < 0)
        goto out;
    mxg_log_setup(cfg->log_level > MXG_LOG_NOTICE ? cfg->log_level : MXG_LOG_NOTICE,
                  cfg->log_syslog);
    char err[512];
    if (mxg_privs_cli(cfg, err, sizeof err) < 0) {
        fprintf(stderr, "mxguard: %s\n", err);
        goto out;
    }
    if (open_spool(cfg, &sp) < 0)
        goto out;
    if (is_list)
        rc = q_list(sp);
    else if (is_show)
        rc = q_show(sp, ids[0]);
    else if (is_flush)
        rc = q_flush(cfg, sp, ids, n_ids);
    else
        rc = q_delete(sp, ids, n_ids);
out:
    mxg_spool_close(sp);
    free(cfg);
    return rc;
}
