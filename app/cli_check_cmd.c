/* app/cli_check_cmd.c — `mxguard check DOMAIN [-c FILE] [--connect | --json]`: the
 * options and the parts a delivery would use (read-only: the MTA-STS cache
 * only if it is there), then the driver in cli_check.c; with state.backend =
 * "postgresql", one line on the shared state's link. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "../core/log.h"
#include "app.h"
#include "cli_check.h"

/* `check DOMAIN`: the exit status of mxg_check_domain() (0, 1, 2), or 1/2 on errors. */
int mxg_cli_check(int argc, char **argv)
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
    struct app *app = app_oneshot_new(file, MXG_LOG_WARN);
    if (!app)
        return 1;
    int rc = 1;
    char err[1024];
    /* the cache is read if it is there (the service's view), never created */
    char dbpath[MXG_CFG_PATH_MAX + 32];
    snprintf(dbpath, sizeof dbpath, "%s/mta-sts.db", app->cfg.state_dir);
    if (app_open_parts(app, access(dbpath, R_OK | W_OK) == 0, err, sizeof err) < 0) {
        fprintf(stderr, "mxguard: %s\n", err);
        goto out_loop;
    }
    app_load_local(app); /* policy_list.file, as `run` loads it */
    if (app_dnssec_selfcheck(app) < 0)
        goto out_loop;
    struct mxg_upstream_env env;
    app_env(app, &env);
    rc = mxg_check_domain_opts(&env, domain,
                               (connect ? MXG_CHECK_CONNECT : 0) | (json ? MXG_CHECK_JSON : 0),
                               stdout);
    if (!json && app->cfg.state_backend == MXG_STATE_POSTGRESQL) {
        /* the fleet's shared state (README "Running a fleet"): an outage never stops mail,
         * so it is said here but does not change the exit status */
        struct mxg_state_opts so;
        struct mxg_state_status ss;
        app_state_opts(&app->cfg, &so);
        mxg_state_probe(&so, &ss);
        printf("shared state: backend postgresql, %s", mxg_state_link_name(ss.link));
        if (ss.schema_version)
            printf(", schema version %d", ss.schema_version);
        printf("%s%s\n", ss.error[0] ? " — " : "", ss.error);
    }
    fflush(stdout); /* out before the teardown: nothing there can lose it */
out_loop:
    app_finish_oneshot(app); /* --connect: every probe leg freed */
    app_shutdown(app);
    free(app);
    return rc;
}
