/* app/cli_state.c — `mxguard state migrate|status [-c FILE]`: the fleet's shared state
 * (state/state.h). migrate creates or migrates the PostgreSQL schema under the database's
 * advisory lock (what `run` does at start-up when state.migrate_at_startup is true);
 * status connects once and prints the link and the schema version. Both are synchronous:
 * one-shot commands, never the daemon's loop. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/log.h"
#include "app.h"

/* `state migrate`: 0 the schema is current, 1 failed. */
static int state_migrate(const struct mxg_config *cfg)
{
    struct mxg_state_opts o;
    char err[MXG_STATE_ERR_MAX];
    int from = 0, v;
    app_state_opts(cfg, &o);
    v = mxg_state_migrate_now(&o, &from, err, sizeof err);
    if (v < 0) {
        fprintf(stderr, "mxguard: state migrate: %s\n", err);
        return 1;
    }
    if (from == v)
        printf("schema version %d: current, nothing to do\n", v);
    else
        printf("schema version %d: migrated from %d\n", v, from);
    return 0;
}

/* `state status`: 0 reachable with the current schema, 1 not. */
static int state_status(const struct mxg_config *cfg)
{
    struct mxg_state_opts o;
    struct mxg_state_status s;
    int rc;
    app_state_opts(cfg, &o);
    rc = mxg_state_probe(&o, &s);
    printf("state: backend %s, %s", o.backend, mxg_state_link_name(s.link));
    if (s.schema_version)
        printf(", schema version %d", s.schema_version);
    if (s.error[0])
        printf(" — %s", s.error);
    printf("\n");
    return rc == 0 ? 0 : 1;
}

/* `state ...`: the exit status (0 done, 1 failed, 2 usage). */
int mxg_cli_state(int argc, char **argv)
{
    const char *file = NULL;
    struct mxg_config *cfg;
    int rc;
    if (argc < 1 || (strcmp(argv[0], "migrate") != 0 && strcmp(argv[0], "status") != 0)) {
        mxg_cli_usage(stderr, "state", NULL);
        return 2;
    }
    if (mxg_cli_parse_opts(argc - 1, argv + 1, &file, NULL) < 0)
        return 2;
    if (!(cfg = malloc(sizeof *cfg)))
        return 1;
    if (mxg_cli_load(cfg, file) < 0) {
        free(cfg);
        return 1;
    }
    mxg_log_setup(MXG_LOG_WARN, 0);
    rc = strcmp(argv[0], "migrate") == 0 ? state_migrate(cfg) : state_status(cfg);
    free(cfg);
    return rc;
}
