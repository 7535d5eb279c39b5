/* state/state_local.c — the sqlite backend: a fleet of one. The SQLite files in
 * state.directory are written by their own modules (policy/sts_cache, report/) and are the
 * whole state, so publishing has nothing to do and nothing is ever pulled. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "state_int.h"

/* Nothing to open: the link is "local" for good. */
static int local_open(struct mxg_state *st, char *err, size_t errlen)
{
    (void)err;
    (void)errlen;
    st->status.link = MXG_STATE_LOCAL;
    st->status.caught_up = 1;
    return 0;
}

/* Frees the module. */
static void local_close(struct mxg_state *st)
{
    free(st);
}

/* The row is already in the local file: nothing to share. */
static int local_publish(struct mxg_state *st, const struct mxg_state_sts_row *row, int64_t now)
{
    (void)st;
    (void)row;
    (void)now;
    return 0;
}

/* The list is in the local store already: nothing to share. */
static int local_list_publish(struct mxg_state *st, const struct mxg_state_list *l)
{
    (void)st;
    (void)l;
    return 0;
}

/* Nothing to sync. */
static void local_sync_now(struct mxg_state *st)
{
    (void)st;
}

/* The SQLite files migrate themselves when opened: report that there is no schema here. */
static int local_migrate_now(const struct mxg_state *st, int *from, char *err, size_t errlen)
{
    (void)st;
    *from = 0;
    snprintf(err, errlen, "state.backend is \"sqlite\": its files migrate themselves when "
                          "mxguard opens them; nothing to do");
    return -1;
}

/* The counters are the local file's: nothing to dump. */
static int local_rpt_dump(const struct mxg_state *st, const char *day, char **payload, char *err,
                          size_t errlen)
{
    (void)st;
    (void)day;
    *payload = NULL;
    snprintf(err, errlen, "state.backend is \"sqlite\": the counters are the local file's");
    return -1;
}

/* Always reachable. */
static int local_probe(const struct mxg_state *st, struct mxg_state_status *out)
{
    (void)st;
    memset(out, 0, sizeof *out);
    out->link = MXG_STATE_LOCAL;
    return 0;
}

const struct mxg_state_backend mxg_state_backend_sqlite = {
    .name = "sqlite",
    .open = local_open,
    .close = local_close,
    .sts_publish = local_publish,
    .list_publish = local_list_publish,
    .sync_now = local_sync_now,
    .migrate_now = local_migrate_now,
    .rpt_dump = local_rpt_dump,
    .probe = local_probe,
};
