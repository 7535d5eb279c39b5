/* report/rpt_query.c — the loop-thread queries over the counter tables of
 * a struct mxg_rpt: the (day, domain) groups with data, and the purge of
 * old days. They take the connection through rpt_db() (which settles a
 * background write first), so they live beside rpt_record.c's struct and
 * not in rpt_store.c, which knows only struct rpt_store and SQLite.
 */
#include <stdio.h>
#include <stdlib.h>

#include "../core/log.h"
#include "rpt_int.h"

/* One (day, domain) row, copied out before the callbacks run. */
struct day_pair {
    char day[MXG_RPT_DAY_LEN + 1];
    char domain[MXG_RPT_DOMAIN_MAX];
};

/* List every (day, domain) with counters, in order, after a flush.
 * Contract: see tlsrpt.h. */
int mxg_rpt_days(struct mxg_rpt *r, void (*fn)(void *arg, const char *day, const char *domain),
                 void *arg)
{
    sqlite3 *db;
    sqlite3_stmt *st = NULL;
    struct day_pair *v = NULL;
    size_t n = 0, cap = 0;
    int rc;

    if (!r || !fn)
        return MXG_RPT_EINVAL;
    if ((rc = mxg_rpt_flush(r)) != 0)
        return rc;
    if (!(db = rpt_db(r)))
        return MXG_RPT_EDB;
    if (sqlite3_prepare_v2(db, "SELECT DISTINCT day, domain FROM policy ORDER BY day, domain",
                           -1, &st, NULL) != SQLITE_OK)
        goto dberr;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            struct day_pair *nv = realloc(v, ncap * sizeof *nv);
            if (!nv) {
                sqlite3_finalize(st);
                free(v);
                return MXG_RPT_ENOMEM;
            }
            v = nv;
            cap = ncap;
        }
        snprintf(v[n].day, sizeof v[n].day, "%s", (const char *)sqlite3_column_text(st, 0));
        snprintf(v[n].domain, sizeof v[n].domain, "%s", (const char *)sqlite3_column_text(st, 1));
        n++;
    }
    if (rc != SQLITE_DONE)
        goto dberr;
    sqlite3_finalize(st);
    for (size_t i = 0; i < n; i++)
        fn(arg, v[i].day, v[i].domain);
    free(v);
    return (int)n;
dberr:
    LOG_E(RPT_COMP, "%s: listing days: %s", r->path, sqlite3_errmsg(db));
    sqlite3_finalize(st);
    free(v);
    return MXG_RPT_EDB;
}

/* One day's totals, copied out before the callbacks run. */
struct day_total {
    char day[MXG_RPT_DAY_LEN + 1];
    uint64_t success, failure;
};

/* Per-day session totals from from_day on, read without a flush.
 * Contract: see tlsrpt.h. */
int mxg_rpt_day_totals(struct mxg_rpt *r, const char *from_day,
                       void (*fn)(void *arg, const char *day, uint64_t success,
                                  uint64_t failure),
                       void *arg)
{
    enum { MAX_DAYS = 400 };
    sqlite3 *db;
    sqlite3_stmt *st = NULL;
    struct day_total *v;
    int n = 0, rc = SQLITE_DONE;

    if (!r || !fn || !from_day)
        return MXG_RPT_EINVAL;
    if (!(db = rpt_db(r)))
        return MXG_RPT_EDB;
    if (!(v = calloc(MAX_DAYS, sizeof *v)))
        return MXG_RPT_ENOMEM;
    if (sqlite3_prepare_v2(db, "SELECT day, SUM(success), SUM(failure) FROM policy "
                               "WHERE day >= ?1 GROUP BY day ORDER BY day",
                           -1, &st, NULL) != SQLITE_OK ||
        sqlite3_bind_text(st, 1, from_day, -1, SQLITE_TRANSIENT) != SQLITE_OK)
        goto dberr;
    while (n < MAX_DAYS && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        snprintf(v[n].day, sizeof v[n].day, "%s", (const char *)sqlite3_column_text(st, 0));
        v[n].success = (uint64_t)sqlite3_column_int64(st, 1);
        v[n].failure = (uint64_t)sqlite3_column_int64(st, 2);
        n++;
    }
    if (n < MAX_DAYS && rc != SQLITE_DONE)
        goto dberr;
    sqlite3_finalize(st);
    for (int i = 0; i < n; i++)
        fn(arg, v[i].day, v[i].success, v[i].failure);
    free(v);
    return n;
dberr:
    LOG_E(RPT_COMP, "%s: day totals: %s", r->path, sqlite3_errmsg(db));
    sqlite3_finalize(st);
    free(v);
    return MXG_RPT_EDB;
}

/* Delete every counter, report and delivery row of days before before_day.
 * Contract: see tlsrpt.h. */
int mxg_rpt_purge(struct mxg_rpt *r, const char *before_day)
{
    static const char *const sql[] = {
        "DELETE FROM failure WHERE policy_id IN (SELECT id FROM policy WHERE day < ?1)",
        "DELETE FROM policy WHERE day < ?1",
        "DELETE FROM report WHERE day < ?1",
        "DELETE FROM delivery WHERE day < ?1",
    };
    sqlite3 *db;
    sqlite3_stmt *st = NULL;
    int64_t groups = 0;

    if (!r || !rpt_day_ok(before_day))
        return MXG_RPT_EINVAL;
    if (!(db = rpt_db(r)))
        return MXG_RPT_EDB;
    if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
        goto dberr;
    if (sqlite3_prepare_v2(db,
                           "SELECT count(*) FROM (SELECT DISTINCT day, domain FROM policy"
                           " WHERE day < ?1)",
                           -1, &st, NULL) != SQLITE_OK)
        goto dberr_rollback;
    sqlite3_bind_text(st, 1, before_day, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_ROW)
        goto dberr_rollback;
    groups = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    st = NULL;
    for (size_t i = 0; i < sizeof sql / sizeof sql[0]; i++) {
        if (sqlite3_prepare_v2(db, sql[i], -1, &st, NULL) != SQLITE_OK)
            goto dberr_rollback;
        sqlite3_bind_text(st, 1, before_day, -1, SQLITE_STATIC);
        if (sqlite3_step(st) != SQLITE_DONE)
            goto dberr_rollback;
        sqlite3_finalize(st);
        st = NULL;
    }
    if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
        goto dberr_rollback;
    if (groups)
        LOG_I(RPT_COMP, "purged %lld day/domain counter groups before %s", (long long)groups,
              before_day);
    return (int)groups;
dberr_rollback:
    LOG_E(RPT_COMP, "%s: purge before %s: %s", r->path, before_day, sqlite3_errmsg(db));
    sqlite3_finalize(st);
    sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    return MXG_RPT_EDB;
dberr:
    LOG_E(RPT_COMP, "%s: purge before %s: %s", r->path, before_day, sqlite3_errmsg(db));
    return MXG_RPT_EDB;
}
