/* app/cli_config.c — `mxguard config check [-c FILE] [-v]`: load what `run`
 * would load (the file, the inbound certificate and password file, the map
 * files, the TLS client settings) and say whether it is sound. */
#include <stdio.h>
#include <stdlib.h>

#include "../core/config.h"
#include "../policy/policy.h"
#include "../proxy/inbound/auth.h"
#include "../tls/tls_engine.h"
#include "app.h"

/* `config check`: 0 sound, 1 not, 2 usage; -v prints the effective configuration. */
int mxg_cli_config_check(int argc, char **argv)
{
    const char *file = NULL;
    int verbose = 0;
    if (mxg_cli_parse_opts(argc, argv, &file, &verbose) < 0)
        return 2;
    struct mxg_config *cfg = malloc(sizeof *cfg);
    if (!cfg)
        return 1;
    int rc = mxg_cli_load(cfg, file);
    char ierr[1024]; /* the inbound certificate, key and password file (proxy/inbound/auth.h) */
    if (rc == 0 && mxg_inbound_check(cfg, ierr, sizeof ierr) < 0) {
        fprintf(stderr, "mxguard: configuration error: %s\n", ierr);
        rc = -1;
    }
    char err[1024];
    struct mxg_policy_maps maps;
    struct mxg_tls_ctx *tls = NULL;
    /* what `run` would load besides the file: the map files, the TLS client settings */
    if (rc == 0 && mxg_policy_maps_load(cfg, &maps, err, sizeof err) < 0) {
        fprintf(stderr, "mxguard: configuration error: %s\n", err);
        rc = -1;
    } else if (rc == 0 && !(tls = app_client_tls(cfg, err, sizeof err))) {
        fprintf(stderr, "mxguard: configuration error: TLS client settings: %s\n", err);
        mxg_policy_maps_free(&maps);
        rc = -1;
    }
    if (rc == 0) {
        printf("configuration OK: %s\n", cfg->source[0] ? cfg->source : "(built-in defaults)");
        if (verbose) {
            mxg_config_dump(cfg, stdout);
            mxg_inbound_explain(cfg, stdout);
            mxg_tls_ctx_describe(tls, err, sizeof err);
            printf("\n# TLS client: %s\n", err);
            if (maps.overrides)
                printf("# tls.policy_map %s: %d entr%s\n", mxg_override_map_source(maps.overrides),
                       mxg_override_map_count(maps.overrides),
                       mxg_override_map_count(maps.overrides) == 1 ? "y" : "ies");
            if (maps.routes)
                printf("# upstream.route_map %s: %d entr%s\n", mxg_route_map_source(maps.routes),
                       mxg_route_map_count(maps.routes),
                       mxg_route_map_count(maps.routes) == 1 ? "y" : "ies");
        }
        mxg_policy_maps_free(&maps);
        mxg_tls_ctx_free(tls);
    }
    free(cfg);
    return rc == 0 ? 0 : 1;
}
