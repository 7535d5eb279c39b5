/* app/cli.h — shared by core/main.c and the core/cli_<command>.c files that
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

#include <stdio.h>

#include "../core/config.h"

struct mxg_rpt;
struct mxg_rpt_org;

int mxg_cli_parse_opts(int argc, char **argv, const char **cfgfile, int *verbose);
int mxg_cli_load(struct mxg_config *cfg, const char *opt);

/* The subcommands in core/cli_<command>.c: argv after the command word. */
int mxg_cli_queue(int argc, char **argv); /* core/cli_queue.c */

/* core/cli_usage.c: the usage of cmd (all its subcommands) or of cmd sub;
 * cmd NULL (or unknown): of every command. */
void mxg_cli_usage(FILE *out, const char *cmd, const char *sub);
/* core/cli_usage.c: argv from the command word on. When an argument is
 * --help or -h (not the one after -c): the usage of that command (and of
 * its subcommand when argv[1] names one) on stdout, returns 0; an unknown
 * command: the general usage on stderr, returns 2. Else -1: no help asked. */
int mxg_cli_help(int argc, char **argv);

/* core/cli_export.c: `report export DIR [--day DAY]` on an open TLSRPT
 * store; the exit status (0 done, 1 error, 2 usage). */
int mxg_cli_report_export(struct mxg_rpt *rpt, const struct mxg_rpt_org *org, const char *dir,
                          const char *only_day);

#endif
