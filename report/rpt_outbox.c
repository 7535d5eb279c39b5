/* report/rpt_outbox.c — the outbox of a fleet (docs/ARCHITECTURE.md §Shared state): with
 * the outbox on, every batch of counters written to the local file is also written, in the
 * same transaction, as one outbox row: a random id and the batch as JSON. The shared state
 * (state/, wired by app/) takes the rows, adds each to the fleet's counters at most once
 * (the database remembers the ids), and removes them here once the database committed. A
 * crash between the two leaves the row: it is pushed again and ignored by its id. So the
 * local file is durable first, and nothing is counted twice.
 *
 * Payload: [{"day","ptype","domain","pstring","mxhost","ok","fail",
 *            "details":[{"rtype","sip","mxname","helo","rip","info","code","n"}]}] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include <jansson.h>

#include "rpt_int.h"

#define OUTBOX_ID_BYTES 16

static const char *const pol_names[RPT_POL_NF] = {"day", "ptype", "domain", "pstring", "mxhost"};
static const char *const det_names[RPT_DET_NF] = {"rtype", "sip",  "mxname", "helo",
                                                  "rip",   "info", "code"};

/* A new random batch id (hex) into out; 0 or -1. */
static int new_id(char out[2 * OUTBOX_ID_BYTES + 1])
{
    unsigned char b[OUTBOX_ID_BYTES];
    if (getrandom(b, sizeof b, 0) != (ssize_t)sizeof b)
        return -1;
    for (size_t i = 0; i < sizeof b; i++)
        snprintf(out + 2 * i, 3, "%02x", b[i]);
    return 0;
}

/* The batch t as the payload JSON text (malloc'd), or NULL (out of memory). */
static char *batch_json(const struct rpt_tab *t)
{
    json_t *arr = json_array();
    char *text = NULL;
    if (!arr)
        return NULL;
    for (const struct rpt_ent *e = t->head; e; e = e->next) {
        json_t *o = json_object();
        if (e->pol || !o) {
            json_decref(o);
            continue;
        }
        for (int i = 0; i < RPT_POL_NF; i++)
            json_object_set_new(o, pol_names[i], json_string(e->f[i]));
        json_object_set_new(o, "ok", json_integer((json_int_t)e->ok));
        json_object_set_new(o, "fail", json_integer((json_int_t)e->fail));
        json_t *dets = json_array();
        for (const struct rpt_ent *d = t->head; d && dets; d = d->next) {
            json_t *x;
            if (d->pol != e || !(x = json_object()))
                continue;
            for (int i = 0; i < RPT_DET_NF; i++)
                json_object_set_new(x, det_names[i], json_string(d->f[i]));
            json_object_set_new(x, "n", json_integer((json_int_t)d->fail));
            json_array_append_new(dets, x);
        }
        json_object_set_new(o, "details", dets ? dets : json_array());
        json_array_append_new(arr, o);
    }
    text = json_dumps(arr, JSON_COMPACT);
    json_decref(arr);
    return text;
}

/* Contract: rpt_int.h. Runs where rpt_store_add runs (the worker thread). */
int rpt_outbox_put(struct rpt_store *s, const struct rpt_tab *t, char *err, size_t errlen)
{
    char id[2 * OUTBOX_ID_BYTES + 1];
    char *payload;
    int rc;
    if (new_id(id) < 0 || !(payload = batch_json(t))) {
        rpt_set_err(err, errlen, "outbox: cannot make the batch");
        return -1;
    }
    sqlite3_bind_text(s->ins_outbox, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s->ins_outbox, 2, (sqlite3_int64)time(NULL));
    sqlite3_bind_text(s->ins_outbox, 3, payload, -1, SQLITE_STATIC);
    rc = sqlite3_step(s->ins_outbox);
    sqlite3_reset(s->ins_outbox);
    sqlite3_clear_bindings(s->ins_outbox);
    free(payload);
    if (rc != SQLITE_DONE) {
        rpt_set_err(err, errlen, "outbox: %s", sqlite3_errmsg(s->db));
        return -1;
    }
    return 0;
}

/* Contract: tlsrpt.h. */
int mxg_rpt_set_outbox(struct mxg_rpt *r, int on)
{
    if (!rpt_db(r))
        return MXG_RPT_EDB;
    r->store.outbox = on;
    return 0;
}

/* Contract: tlsrpt.h. */
int mxg_rpt_outbox_take(struct mxg_rpt *r, int max,
                        void (*fn)(void *arg, const char *id, const char *payload), void *arg)
{
    sqlite3 *db = rpt_db(r);
    sqlite3_stmt *st = NULL;
    int n = 0, rc;
    if (!db)
        return MXG_RPT_EDB;
    if (sqlite3_prepare_v2(db, "SELECT id, payload FROM outbox ORDER BY created_at, id LIMIT ?1",
                           -1, &st, NULL) != SQLITE_OK)
        return MXG_RPT_EDB;
    sqlite3_bind_int(st, 1, max);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        fn(arg, (const char *)sqlite3_column_text(st, 0), (const char *)sqlite3_column_text(st, 1));
        n++;
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? n : MXG_RPT_EDB;
}

/* Contract: tlsrpt.h. */
int mxg_rpt_outbox_done(struct mxg_rpt *r, const char *const *ids, int n)
{
    sqlite3 *db = rpt_db(r);
    sqlite3_stmt *st = NULL;
    int rc = SQLITE_DONE;
    if (!db)
        return MXG_RPT_EDB;
    if (n <= 0)
        return 0;
    if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
        return MXG_RPT_EDB;
    if (sqlite3_prepare_v2(db, "DELETE FROM outbox WHERE id = ?1", -1, &st, NULL) != SQLITE_OK)
        rc = SQLITE_ERROR;
    for (int i = 0; i < n && rc == SQLITE_DONE; i++) {
        sqlite3_reset(st);
        sqlite3_bind_text(st, 1, ids[i], -1, SQLITE_STATIC);
        rc = sqlite3_step(st);
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE || sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
        return MXG_RPT_EDB;
    }
    return 0;
}

/* Contract: tlsrpt.h. */
int mxg_rpt_outbox_expire(struct mxg_rpt *r, int64_t before)
{
    sqlite3 *db = rpt_db(r);
    sqlite3_stmt *st = NULL;
    int n = MXG_RPT_EDB;
    if (!db || sqlite3_prepare_v2(db, "DELETE FROM outbox WHERE created_at < ?1", -1, &st,
                                  NULL) != SQLITE_OK)
        return MXG_RPT_EDB;
    sqlite3_bind_int64(st, 1, (sqlite3_int64)before);
    if (sqlite3_step(st) == SQLITE_DONE)
        n = sqlite3_changes(db);
    sqlite3_finalize(st);
    return n;
}

/* Contract: tlsrpt.h. */
int mxg_rpt_outbox_count(struct mxg_rpt *r)
{
    sqlite3 *db = rpt_db(r);
    sqlite3_stmt *st = NULL;
    int n = MXG_RPT_EDB;
    if (!db || sqlite3_prepare_v2(db, "SELECT count(*) FROM outbox", -1, &st, NULL) != SQLITE_OK)
        return MXG_RPT_EDB;
    if (sqlite3_step(st) == SQLITE_ROW)
        n = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return n;
}

/* The string member name of o, or "" (absent or not a string). */
static const char *str_of(json_t *o, const char *name)
{
    const char *v = json_string_value(json_object_get(o, name));
    return v ? v : "";
}

/* The non-negative integer member name of o, or 0. */
static uint64_t num_of(json_t *o, const char *name)
{
    json_int_t v = json_integer_value(json_object_get(o, name));
    return v > 0 ? (uint64_t)v : 0;
}

/* Contract: tlsrpt.h. */
int mxg_rpt_import(struct mxg_rpt *r, const char *payload, char *err, size_t errlen)
{
    json_error_t je;
    json_t *arr = json_loads(payload, 0, &je), *o, *d;
    size_t i, k;
    if (!json_is_array(arr)) {
        rpt_set_err(err, errlen, "import: not a JSON array (%s)", je.text);
        json_decref(arr);
        return MXG_RPT_EINVAL;
    }
    json_array_foreach(arr, i, o) {
        const char *f[RPT_POL_NF], *df[RPT_DET_NF];
        struct rpt_ent *e;
        for (int n = 0; n < RPT_POL_NF; n++)
            f[n] = str_of(o, pol_names[n]);
        if (!rpt_day_ok(f[0]) || !f[2][0] || !(e = rpt_tab_get(&r->cur, NULL, f, RPT_POL_NF))) {
            rpt_set_err(err, errlen, "import: entry %zu: bad day or domain, or out of memory", i);
            json_decref(arr);
            return MXG_RPT_EINVAL;
        }
        e->ok += num_of(o, "ok");
        e->fail += num_of(o, "fail");
        json_array_foreach(json_object_get(o, "details"), k, d) {
            struct rpt_ent *x;
            for (int n = 0; n < RPT_DET_NF; n++)
                df[n] = str_of(d, det_names[n]);
            if (!(x = rpt_tab_get(&r->cur, e, df, RPT_DET_NF))) {
                json_decref(arr);
                return MXG_RPT_ENOMEM;
            }
            x->fail += num_of(d, "n");
        }
    }
    json_decref(arr);
    return mxg_rpt_flush(r);
}
