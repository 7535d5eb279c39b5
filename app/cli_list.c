/* app/cli_list.c — `mxguard list show|update|export`: the policy list in
 * force, a fetch now, and a list built from the MTA-STS cache. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "../core/log.h"
#include "../policy/stlist.h"
#include "../policy/stlist_export.h"
#include "../policy/stlist_source.h"
#include "app.h"

/* One "label  ISO-8601 UTC time" line. */
static void print_time(const char *label, int64_t t)
{
    char buf[40];
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    printf("%-10s %s\n", label, buf);
}

/* `list show`: the list in force; 0 in force, 1 none or expired. */
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

/* mxg_stlist_source_update() callback of `list update`: print, note the outcome. */
static void on_list_update(void *arg, int accepted, const char *msg)
{
    struct list_wait *w = arg;
    w->done = 1;
    w->rc = accepted;
    printf("%s: %s\n", accepted > 0 ? "updated" : accepted == 0 ? "unchanged" : "failed", msg);
}

/* `list show|update|export`: the exit status. */
int mxg_cli_list(int argc, char **argv)
{
    if (argc < 1 || (strcmp(argv[0], "show") && strcmp(argv[0], "update") &&
                     strcmp(argv[0], "export"))) {
        mxg_cli_usage(stderr, "list", NULL);
        return 2;
    }
    const char *sub = argv[0], *file = NULL;
    if (mxg_cli_parse_opts(argc - 1, argv + 1, &file, NULL) < 0)
        return 2;
    struct app *app = app_oneshot_new(file, MXG_LOG_WARN);
    if (!app)
        return 1;
    int rc = 1;
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
    free(app);
    return rc;
}
