/* app/cli_usage.c — the usage texts of the mxguard command, one entry per
 * (command, subcommand), and --help / -h for every one of them
 * (docs/man/mxguard.8): `mxguard X [Y] ... --help` prints X [Y]'s usage on stdout and
 * exits 0. */
#include <stdio.h>
#include <string.h>

#include "app.h"

struct usage_entry {
    const char *cmd, *sub; /* sub NULL: the command has no subcommands */
    const char *text;      /* "  SYNOPSIS   description", lines of the full usage */
};

static const struct usage_entry entries[] = {
    {"run", NULL,
     "  run [-c FILE]                 run the relay in the foreground (SIGTERM drains)\n"},
    {"config", "check",
     "  config check [-c FILE] [-v]   validate the configuration; -v prints the effective one\n"},
    {"check", NULL,
     "  check DOMAIN [-c FILE] [--connect | --json]\n"
     "                                explain how mail to DOMAIN would be secured (MX, DNSSEC,\n"
     "                                DANE, policy); --connect also probes each MX host;\n"
     "                                --json prints the per-host requirement as one JSON object.\n"
     "                                Exit 0: deliverable now, 1: not now, 2: never\n"},
    {"list", "show",
     "  list show [-c FILE]           the policy list in force: signer, timestamp, expiry, counts\n"},
    {"list", "update",
     "  list update [-c FILE]         load policy_list.file / download policy_list.url now\n"},
    {"list", "export",
     "  list export [-c FILE]         print a policy list (unsigned, to be signed) built from\n"
     "                                the MTA-STS cache's enforce-mode policies\n"},
    {"report", "list",
     "  report list [-c FILE]         the (UTC day, policy domain) pairs with TLSRPT counts\n"},
    {"report", "show",
     "  report show DAY DOMAIN [-c FILE]\n"
     "                                the RFC 8460 JSON report for that day and domain\n"},
    {"report", "send",
     "  report send DAY [-c FILE]     send DAY's reports now (https: and mailto: rua)\n"},
    {"report", "export",
     "  report export DIR [--day DAY] [-c FILE]\n"
     "                                write every finished report (UTC days before today; --day:\n"
     "                                that day's) into DIR as RFC 8460 JSON files named\n"
     "                                SUBMITTER!DOMAIN!BEGIN!END.json (RFC 8460 section 5.3)\n"},
    {"queue", "list",
     "  queue list [-c FILE]          the spool: entries with each recipient's state\n"},
    {"queue", "show",
     "  queue show ID [-c FILE]       one entry's envelope and headers\n"},
    {"queue", "flush",
     "  queue flush [ID...] [-c FILE] retry now (every entry, or those named)\n"},
    {"queue", "delete",
     "  queue delete ID... [-c FILE]  remove entries. Queue commands exit 0: done,\n"
     "                                1: no such/busy entry or spool error\n"},
    {"state", "migrate",
     "  state migrate [-c FILE]       create or migrate the shared PostgreSQL schema\n"
     "                                (state.backend = \"postgresql\"), under an advisory lock\n"},
    {"state", "status",
     "  state status [-c FILE]        connect to the shared state once: link and schema version.\n"
     "                                State commands exit 0: done, 1: failed\n"},
};

#define N_ENTRIES (sizeof entries / sizeof entries[0])

/* Where the configuration comes from, after every usage. */
static void footer(FILE *out)
{
    fprintf(out,
            "\n"
            "The configuration file is -c FILE, else $MXGUARD_CONFIG, else " MXG_DEFAULT_CONFIG "\n"
            "(built-in defaults when that file does not exist). MXGUARD_<SECTION>_<KEY>\n"
            "environment variables override single settings (see mxguard.conf).\n");
}

/* Is cmd (and sub, when given) one of the table's? */
static int known(const char *cmd, const char *sub)
{
    for (size_t i = 0; i < N_ENTRIES; i++)
        if (strcmp(entries[i].cmd, cmd) == 0 && (!sub || (entries[i].sub && strcmp(entries[i].sub, sub) == 0)))
            return 1;
    return 0;
}

/* The usage of cmd [sub], or of every command. */
void mxg_cli_usage(FILE *out, const char *cmd, const char *sub)
{
    if (!cmd || !known(cmd, NULL)) {
        fprintf(out, "usage: mxguard [--version] [--help] COMMAND [ARGS]\n\ncommands:\n");
        for (size_t i = 0; i < N_ENTRIES; i++)
            fputs(entries[i].text, out);
        footer(out);
        return;
    }
    if (sub && !known(cmd, sub))
        sub = NULL;
    fprintf(out, "usage: mxguard COMMAND [ARGS], where COMMAND is:\n");
    for (size_t i = 0; i < N_ENTRIES; i++)
        if (strcmp(entries[i].cmd, cmd) == 0 &&
            (!sub || (entries[i].sub && strcmp(entries[i].sub, sub) == 0)))
            fputs(entries[i].text, out);
    footer(out);
}

/* --help / -h anywhere after the command word: that command's usage. */
int mxg_cli_help(int argc, char **argv)
{
    int asked = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-c") == 0) {
            i++; /* a configuration file's name, whatever it is */
            continue;
        }
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            asked = 1;
    }
    if (!asked || argc < 1)
        return -1;
    if (!known(argv[0], NULL)) {
        fprintf(stderr, "mxguard: unknown command '%s'\n\n", argv[0]);
        mxg_cli_usage(stderr, NULL, NULL);
        return 2;
    }
    mxg_cli_usage(stdout, argv[0], argc > 1 ? argv[1] : NULL);
    return 0;
}
