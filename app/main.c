/* app/main.c — the mxguard command: argv dispatch to one app/cli_<command>.c
 * per command, --version, --help. Each command owns its struct app (app.h);
 * nothing in the program keeps global state. */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "app.h"

/* The usage of every command. */
static void usage(FILE *out)
{
    mxg_cli_usage(out, NULL, NULL);
}

/* The command word picks the command; its exit status is ours. */
int main(int argc, char **argv)
{
    /* every command that talks to an MX (run, report send, check --connect): a peer that
     * closes while we write must be an EPIPE for the leg, never a silent death by SIGPIPE */
    signal(SIGPIPE, SIG_IGN);
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "version") == 0) {
        printf("mxguard %s\n", MXG_VERSION);
        return 0;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return 0;
    }
    int help = mxg_cli_help(argc - 1, argv + 1); /* `mxguard COMMAND ... --help` */
    if (help >= 0)
        return help;
    if (strcmp(argv[1], "run") == 0)
        return mxg_cli_run(argc - 2, argv + 2);
    if (strcmp(argv[1], "check") == 0)
        return mxg_cli_check(argc - 2, argv + 2);
    if (strcmp(argv[1], "list") == 0)
        return mxg_cli_list(argc - 2, argv + 2);
    if (strcmp(argv[1], "report") == 0)
        return mxg_cli_report(argc - 2, argv + 2);
    if (strcmp(argv[1], "queue") == 0)
        return mxg_cli_queue(argc - 2, argv + 2);
    if (strcmp(argv[1], "state") == 0)
        return mxg_cli_state(argc - 2, argv + 2);
    if (strcmp(argv[1], "config") == 0 && argc >= 3 && strcmp(argv[2], "check") == 0)
        return mxg_cli_config_check(argc - 3, argv + 3);
    fprintf(stderr, "mxguard: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
