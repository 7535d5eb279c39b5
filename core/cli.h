/* core/cli.h — shared by core/main.c and the core/cli_<command>.c files that
 * implement larger subcommands (they link into the mxguard binary only, not
 * into mxg_core).
 *
 * mxg_cli_parse_opts(): accepts "-c FILE" (and "-v"/"--connect" setting
 * *verbose when verbose != NULL); anything else → message on stderr, -1.
 * mxg_cli_load(): loads the configuration named by -c, $MXGUARD_CONFIG or the
 * default path (built-in defaults when absent), with MXGUARD_* environment
 * overrides; errors go to stderr; returns 0 or -1. */
#ifndef MXG_CLI_H
#define MXG_CLI_H

#include "config.h"

int mxg_cli_parse_opts(int argc, char **argv, const char **cfgfile, int *verbose);
int mxg_cli_load(struct mxg_config *cfg, const char *opt);

/* The subcommands in core/cli_<command>.c: argv after the command word. */
int mxg_cli_queue(int argc, char **argv); /* core/cli_queue.c */

#endif
