/* app/cli.c — what every command shares: its options (-c FILE, -v), the
 * configuration it loads, and the privilege drop of the one-shot commands. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../core/config.h"
#include "app.h"
#include "privs.h"

extern char **environ;

/* Pick the config path: explicit, environment, default (if present). */
static const char *config_path(const char *opt, int *is_default)
{
    *is_default = 0;
    if (opt)
        return opt;
    const char *env = getenv("MXGUARD_CONFIG");
    if (env && env[0])
        return env;
    *is_default = 1;
    return access(MXG_DEFAULT_CONFIG, F_OK) == 0 ? MXG_DEFAULT_CONFIG : NULL;
}

/* -c FILE and (when verbose is given) -v / --connect; else a message and -1. */
int mxg_cli_parse_opts(int argc, char **argv, const char **cfgfile, int *verbose)
{
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "-c") == 0 && i + 1 < argc) {
            *cfgfile = argv[++i];
        } else if (verbose && (strcmp(argv[i], "-v") == 0 || strcmp(argv[i], "--connect") == 0)) {
            *verbose = 1;
        } else {
            fprintf(stderr, "mxguard: unexpected argument '%s'\n", argv[i]);
            return -1;
        }
    }
    return 0;
}

/* The configuration from -c, $MXGUARD_CONFIG or the default path; errors on stderr. */
int mxg_cli_load(struct mxg_config *cfg, const char *opt)
{
    int is_default;
    const char *path = config_path(opt, &is_default);
    char err[1024];
    if (mxg_config_load(cfg, path, environ, err, sizeof err) < 0) {
        fprintf(stderr, "mxguard: configuration error: %s\n", err);
        return -1;
    }
    if (!path)
        fprintf(stderr, "mxguard: %s not found; using built-in defaults\n", MXG_DEFAULT_CONFIG);
    return 0;
}

/* The one-shot commands: as root with server.user set, become that user
 * before touching state.directory. */
int mxg_cli_privs(const struct mxg_config *cfg)
{
    char err[512];
    if (mxg_privs_cli(cfg, err, sizeof err) == 0)
        return 0;
    fprintf(stderr, "mxguard: %s\n", err);
    return -1;
}
