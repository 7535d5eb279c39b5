/* app/cli_report.c — `mxguard report list|show|send|export`: the TLSRPT
 * store's days and domains, one report's JSON, sending a day's reports now,
 * and the export (cli_export.c). With state.backend = "postgresql", list, show and export
 * read the fleet's counters (a temporary view built from the shared state). */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "../core/log.h"
#include "../report/tlsrpt.h"
#include "app.h"

/* mxg_rpt_days() callback: one "DAY DOMAIN" line. */
static void print_day_domain(void *arg, const char *day, const char *domain)
{
    (void)arg;
    printf("%s %s\n", day, domain);
}

/* A fleet's report view (state.backend = "postgresql"): a temporary TLSRPT file in dir
 * (made here, removed by view_close) holding the fleet's counters of day (NULL: all), so
 * that list, show and export read the shared state. NULL with err. */
static struct mxg_rpt *view_open(struct app *app, const char *day, char *dir, size_t dirlen,
                                 char *err, size_t errlen)
{
    struct mxg_state_opts o;
    struct mxg_rpt *v;
    char path[PATH_MAX], *payload = NULL;
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, dirlen, "%s/mxguard-fleet-XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
        snprintf(err, errlen, "fleet report view: mkdtemp %s: %s", dir, strerror(errno));
        dir[0] = '\0';
        return NULL;
    }
    app_state_opts(&app->cfg, &o);
    if (mxg_state_rpt_dump(&o, day, &payload, err, errlen) < 0)
        return NULL;
    snprintf(path, sizeof path, "%s/tlsrpt.db", dir);
    if (!(v = mxg_rpt_open(NULL, path, 0, err, errlen))) {
        free(payload);
        return NULL;
    }
    if (mxg_rpt_import(v, payload, err, errlen) < 0) {
        free(payload);
        mxg_rpt_close(v);
        return NULL;
    }
    free(payload);
    return v;
}

/* Closes the view and removes its directory. */
static void view_close(struct mxg_rpt *v, const char *dir)
{
    static const char *const files[] = {"tlsrpt.db", "tlsrpt.db-wal", "tlsrpt.db-shm"};
    char path[PATH_MAX];
    mxg_rpt_close(v);
    if (!dir[0])
        return;
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        unlink(path);
    }
    rmdir(dir);
}

struct send_wait {
    int done;
    struct mxg_rpt_send_stats st;
};

/* mxg_rpt_send_day() callback: the day's totals. */
static void on_sent(void *arg, const struct mxg_rpt_send_stats *st)
{
    struct send_wait *w = arg;
    w->st = *st;
    w->done = 1;
}

/* `report list|show|send|export`: the exit status. */
int mxg_cli_report(int argc, char **argv)
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
    struct app *app = app_oneshot_new(file, MXG_LOG_NOTICE);
    if (!app)
        return 1;
    int rc = 1;
    char err[1024], id[MXG_RPT_REPORT_ID_MAX];
    if (!app->cfg.rpt_enabled) {
        fprintf(stderr, "mxguard: tlsrpt.enabled = false\n");
        goto out_loop;
    }
    if (app_open_parts(app, 1, err, sizeof err) < 0) {
        fprintf(stderr, "mxguard: %s\n", err);
        goto out_loop;
    }
    struct mxg_rpt *rpt = app->rpt, *view = NULL;
    char view_dir[PATH_MAX] = "";
    if (!send && app->cfg.state_backend == MXG_STATE_POSTGRESQL) {
        /* a fleet: list, show and export read the fleet's counters (README "Running a fleet") */
        if (!(view = view_open(app, show ? argv[1] : export ? only_day : NULL, view_dir,
                               sizeof view_dir, err, sizeof err))) {
            fprintf(stderr, "mxguard: shared state: %s\n", err);
            view_close(NULL, view_dir);
            goto out_loop;
        }
        rpt = view;
    }
    if (send) {
        struct send_wait w = {0};
        if (!app->rpt_sender) {
            fprintf(stderr, "mxguard: tlsrpt.send_reports = false\n");
        } else if (app->cfg.state_backend == MXG_STATE_POSTGRESQL) {
            /* this process holds no claim: it would send this instance's part alone */
            fprintf(stderr, "mxguard: state.backend = \"postgresql\": a fleet's reports are "
                            "sent by its running instances, one per report (state.report_lease)"
                            "\n");
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
        rc = mxg_rpt_days(rpt, print_day_domain, NULL) < 0;
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
            rc = mxg_cli_report_export(rpt, &org, argv[1], only_day);
            goto out_view;
        }
        char *json = NULL;
        if (mxg_rpt_report_json(rpt, argv[1], argv[2], &org, &json, id, err, sizeof err) < 0) {
            fprintf(stderr, "mxguard: %s\n", err);
        } else {
            printf("%s\n", json);
            free(json);
            rc = 0;
        }
    }
out_view:
    if (view)
        view_close(view, view_dir);
out_loop:
    app_finish_oneshot(app); /* send: the report mail's leg ends (QUIT) and is freed */
    app_shutdown(app);
    free(app);
    return rc;
}
