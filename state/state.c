/* state/state.c — the shared-state module's front: the backend table, options, the
 * password file and the status; see state.h. */
#include "state.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../core/log.h"
#include "state_int.h"

#define COMP "state"

/* The backends, by the name state.backend gives. */
static const struct mxg_state_backend *const backends[] = {
    &mxg_state_backend_sqlite,
    &mxg_state_backend_pg,
};

/* Writes a formatted one-line reason into err (if any). */
static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    if (!err || !errlen)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* Contract: state.h. */
const char *mxg_state_link_name(enum mxg_state_link l)
{
    switch (l) {
    case MXG_STATE_LOCAL: return "local";
    case MXG_STATE_CONNECTING: return "connecting";
    case MXG_STATE_UP: return "up";
    case MXG_STATE_DOWN: return "down";
    case MXG_STATE_SCHEMA: return "schema";
    }
    return "?";
}

/* The first line of path into out (the password); 0 or -1 with err. */
static int read_password(const char *path, char *out, size_t outlen, char *err, size_t errlen)
{
    FILE *f = fopen(path, "re");
    size_t n;
    if (!f) {
        set_err(err, errlen, "state.postgresql_password_file %s: %s", path, strerror(errno));
        return -1;
    }
    if (!fgets(out, (int)outlen, f)) {
        out[0] = '\0';
    }
    fclose(f);
    n = strcspn(out, "\r\n");
    if (n == outlen - 1 && out[n] == '\0') {
        set_err(err, errlen, "state.postgresql_password_file %s: longer than %zu octets", path,
                outlen - 2);
        return -1;
    }
    out[n] = '\0';
    if (!out[0]) {
        set_err(err, errlen, "state.postgresql_password_file %s: empty", path);
        return -1;
    }
    return 0;
}

/* A module with the options copied and the backend found, not opened; NULL with err. */
static struct mxg_state *state_new(uv_loop_t *loop, const struct mxg_state_opts *o, char *err,
                                   size_t errlen)
{
    const struct mxg_state_backend *be = NULL;
    struct mxg_state *st;
    const char *name = o->backend && o->backend[0] ? o->backend : "sqlite";

    for (size_t i = 0; i < sizeof backends / sizeof backends[0]; i++)
        if (strcmp(backends[i]->name, name) == 0)
            be = backends[i];
    if (!be) {
        set_err(err, errlen, "state.backend \"%s\": unknown", name);
        return NULL;
    }
    if (!(st = calloc(1, sizeof *st))) {
        set_err(err, errlen, "state: out of memory");
        return NULL;
    }
    st->loop = loop;
    st->be = be;
    if (be == &mxg_state_backend_pg &&
        (strlen(o->conninfo ? o->conninfo : "") >= sizeof st->conninfo ||
         mxg_state_pg_conninfo_check(o->conninfo ? o->conninfo : "", err, errlen) < 0)) {
        if (o->conninfo && strlen(o->conninfo) >= sizeof st->conninfo)
            set_err(err, errlen, "state.postgresql: longer than %zu octets",
                    sizeof st->conninfo - 1);
        free(st);
        return NULL;
    }
    snprintf(st->conninfo, sizeof st->conninfo, "%s", o->conninfo ? o->conninfo : "");
    if (o->instance && o->instance[0])
        snprintf(st->instance, sizeof st->instance, "%s", o->instance);
    else if (gethostname(st->instance, sizeof st->instance - 1) != 0 || !st->instance[0])
        snprintf(st->instance, sizeof st->instance, "pid%ld", (long)getpid());
    st->sync_ms = o->sync_ms ? o->sync_ms : 5000;
    st->migrate = o->migrate;
    st->retention_ms = o->retention_ms;
    st->prune_ms = o->prune_ms ? o->prune_ms : 3600000;
    st->status.backend = be->name;
    if (o->password_file && o->password_file[0] &&
        read_password(o->password_file, st->password, sizeof st->password, err, errlen) < 0) {
        free(st);
        return NULL;
    }
    return st;
}

/* Contract: state.h. */
struct mxg_state *mxg_state_open(uv_loop_t *loop, const struct mxg_state_opts *opts, char *err,
                                 size_t errlen)
{
    struct mxg_state *st = state_new(loop, opts, err, errlen);
    if (!st)
        return NULL;
    if (st->be->open(st, err, errlen) < 0) {
        explicit_bzero(st->password, sizeof st->password);
        free(st);
        return NULL;
    }
    LOG_I(COMP, "backend %s, instance %s", st->be->name, st->instance);
    return st;
}

/* Contract: state.h. */
void mxg_state_close(struct mxg_state *st)
{
    if (st)
        st->be->close(st);
}

/* Contract: state.h. */
void mxg_state_set_sts_sink(struct mxg_state *st, mxg_state_sts_sink fn, void *arg)
{
    st->sts_sink = fn;
    st->sts_arg = arg;
}

/* Contract: state.h. */
void mxg_state_set_rpt_io(struct mxg_state *st, const struct mxg_state_rpt_io *io)
{
    if (io)
        st->rpt_io = *io;
    else
        memset(&st->rpt_io, 0, sizeof st->rpt_io);
}

/* Contract: state.h. */
void mxg_state_set_sts_io(struct mxg_state *st, const struct mxg_state_sts_io *io)
{
    if (io)
        st->sts_io = *io;
    else
        memset(&st->sts_io, 0, sizeof st->sts_io);
    st->sts_io_new = io != NULL;
}

/* Contract: state.h. */
int mxg_state_sts_publish(struct mxg_state *st, const struct mxg_state_sts_row *row, int64_t now)
{
    if (!st || !row || !row->domain || !row->domain[0] || !row->id || (!row->body && row->body_len))
        return -1;
    return st->be->sts_publish(st, row, now);
}

/* Contract: state.h. */
int mxg_state_list_publish(struct mxg_state *st, const struct mxg_state_list *l)
{
    if (!st || !l || !l->json || !l->sig)
        return -1;
    return st->be->list_publish(st, l);
}

/* Contract: state.h. */
void mxg_state_set_list_sink(struct mxg_state *st, mxg_state_list_sink fn, void *arg)
{
    st->list_sink = fn;
    st->list_arg = arg;
}

/* Contract: state.h. */
void mxg_state_sync_now(struct mxg_state *st)
{
    if (st)
        st->be->sync_now(st);
}

/* Contract: state.h. */
void mxg_state_status(const struct mxg_state *st, struct mxg_state_status *out)
{
    *out = st->status;
}

/* Contract: state.h. */
int mxg_state_migrate_now(const struct mxg_state_opts *opts, int *from, char *err, size_t errlen)
{
    struct mxg_state *st = state_new(NULL, opts, err, errlen);
    int rc;
    if (!st)
        return -1;
    rc = st->be->migrate_now(st, from, err, errlen);
    explicit_bzero(st->password, sizeof st->password);
    free(st);
    return rc;
}

/* Contract: state.h. */
int mxg_state_rpt_dump(const struct mxg_state_opts *opts, const char *day, char **payload,
                       char *err, size_t errlen)
{
    struct mxg_state *st = state_new(NULL, opts, err, errlen);
    int rc;
    *payload = NULL;
    if (!st)
        return -1;
    rc = st->be->rpt_dump(st, day, payload, err, errlen);
    explicit_bzero(st->password, sizeof st->password);
    free(st);
    return rc;
}

/* Contract: state.h. */
int mxg_state_probe(const struct mxg_state_opts *opts, struct mxg_state_status *out)
{
    char err[MXG_STATE_ERR_MAX];
    struct mxg_state *st = state_new(NULL, opts, err, sizeof err);
    int rc;
    memset(out, 0, sizeof *out);
    if (!st) {
        out->link = MXG_STATE_DOWN;
        out->backend = opts->backend;
        snprintf(out->error, sizeof out->error, "%s", err);
        return -1;
    }
    rc = st->be->probe(st, out);
    out->backend = st->be->name;
    explicit_bzero(st->password, sizeof st->password);
    free(st);
    return rc;
}

/* Contract: state.h. */
int mxg_state_rpt_claim(struct mxg_state *st, const char *day, const char *domain,
                        const char *const *ruas, int n, const char *report_id, uint64_t lease_s,
                        mxg_state_claim_cb cb, void *arg)
{
    if (!st || !st->be->rpt_claim || !day || !domain || !ruas || n < 1 || !report_id || !cb)
        return -1;
    return st->be->rpt_claim(st, day, domain, ruas, n, report_id, lease_s, cb, arg);
}

/* Contract: state.h. */
int mxg_state_rpt_claim_done(struct mxg_state *st, const char *day, const char *domain,
                             const char *rua, int gave_up)
{
    if (!st || !st->be->rpt_claim_done || !day || !domain || !rua)
        return -1;
    return st->be->rpt_claim_done(st, day, domain, rua, gave_up);
}
