/* report/rpt_delivery.c — the delivery state of each report: one row per
 * (day, policy domain, rua) with attempts, next_attempt_at and status
 * (pending / sent / gave-up). This file keeps the table only; sending is
 * the delivery code's job. Each call is one statement (one transaction). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../core/log.h"
#include "rpt_int.h"

/* Checked and normalised key. 0 or MXG_RPT_EINVAL. */
static int key_ok(const char *day, const char *domain, const char *rua,
                  char dom[MXG_RPT_DOMAIN_MAX])
{
    if (!rpt_day_ok(day) || rpt_domain_norm(domain, dom) != 0 || !rua || !rua[0] ||
        strlen(rua) >= MXG_RPT_RUA_MAX)
        return MXG_RPT_EINVAL;
    return 0;
}

static int status_parse(const char *s, enum mxg_rpt_dstatus *out)
{
    for (int i = MXG_RPT_PENDING; i <= MXG_RPT_GAVE_UP; i++) {
        if (strcmp(s, mxg_rpt_dstatus_name((enum mxg_rpt_dstatus)i)) == 0) {
            *out = (enum mxg_rpt_dstatus)i;
            return 0;
        }
    }
    return -1;
}

/* Contract: see tlsrpt.h. */
int mxg_rpt_delivery_add(struct mxg_rpt *r, const char *day, const char *domain, const char *rua,
                         int64_t next_attempt_at)
{
    char dom[MXG_RPT_DOMAIN_MAX];
    sqlite3 *db;
    sqlite3_stmt *st = NULL;
    int rc;

    if (!r || key_ok(day, domain, rua, dom) != 0)
        return MXG_RPT_EINVAL;
    if (!(db = rpt_db(r)))
        return MXG_RPT_EDB;
    if (sqlite3_prepare_v2(db,
                           "INSERT INTO delivery (day, domain, rua, attempts, next_attempt_at,"
                           " status, last_error, updated_at)"
                           " VALUES (?1, ?2, ?3, 0, ?4, 'pending', '', ?5)"
                           " ON CONFLICT (day, domain, rua) DO NOTHING",
                           -1, &st, NULL) != SQLITE_OK)
        goto dberr;
    sqlite3_bind_text(st, 1, day, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, dom, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, rua, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, next_attempt_at);
    sqlite3_bind_int64(st, 5, (sqlite3_int64)time(NULL));
    if (sqlite3_step(st) != SQLITE_DONE)
        goto dberr;
    rc = sqlite3_changes(db) > 0 ? 1 : 0;
    sqlite3_finalize(st);
    return rc;
dberr:
    LOG_E(RPT_COMP, "%s: delivery %s %s %s: %s", r->path, day, dom, rua, sqlite3_errmsg(db));
    sqlite3_finalize(st);
    return MXG_RPT_EDB;
}

/* Contract: see tlsrpt.h. */
int mxg_rpt_delivery_update(struct mxg_rpt *r, const struct mxg_rpt_delivery *d)
{
    char dom[MXG_RPT_DOMAIN_MAX];
    const char *status;
    sqlite3 *db;
    sqlite3_stmt *st = NULL;
    int rc;

    if (!r || !d || key_ok(d->day, d->domain, d->rua, dom) != 0 || d->attempts < 0 ||
        !(status = mxg_rpt_dstatus_name(d->status)) ||
        !memchr(d->last_error, '\0', sizeof d->last_error))
        return MXG_RPT_EINVAL;
    if (!(db = rpt_db(r)))
        return MXG_RPT_EDB;
    if (sqlite3_prepare_v2(db,
                           "UPDATE delivery SET attempts = ?4, next_attempt_at = ?5, status = ?6,"
                           " last_error = ?7, updated_at = ?8"
                           " WHERE day = ?1 AND domain = ?2 AND rua = ?3",
                           -1, &st, NULL) != SQLITE_OK)
        goto dberr;
    sqlite3_bind_text(st, 1, d->day, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, dom, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, d->rua, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 4, d->attempts);
    sqlite3_bind_int64(st, 5, d->next_attempt_at);
    sqlite3_bind_text(st, 6, status, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 7, d->last_error, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 8, (sqlite3_int64)time(NULL));
    if (sqlite3_step(st) != SQLITE_DONE)
        goto dberr;
    rc = sqlite3_changes(db) > 0 ? 0 : MXG_RPT_ENODATA;
    sqlite3_finalize(st);
    return rc;
dberr:
    LOG_E(RPT_COMP, "%s: delivery %s %s %s: %s", r->path, d->day, dom, d->rua,
          sqlite3_errmsg(db));
    sqlite3_finalize(st);
    return MXG_RPT_EDB;
}

/* Contract: see tlsrpt.h. */
int mxg_rpt_delivery_list(struct mxg_rpt *r, int status, int64_t due_by,
                          void (*fn)(void *arg, const struct mxg_rpt_delivery *d), void *arg)
{
    sqlite3 *db;
    sqlite3_stmt *st = NULL;
    struct mxg_rpt_delivery *v = NULL;
    size_t n = 0, cap = 0;
    const char *sname = NULL;
    int rc;

    if (!r || !fn || (status != -1 && !(sname = mxg_rpt_dstatus_name(status))))
        return MXG_RPT_EINVAL;
    if (!(db = rpt_db(r)))
        return MXG_RPT_EDB;
    if (sqlite3_prepare_v2(db,
                           "SELECT day, domain, rua, attempts, next_attempt_at, status,"
                           " last_error, updated_at FROM delivery"
                           " WHERE (?1 IS NULL OR status = ?1)"
                           " AND (?2 <= 0 OR next_attempt_at <= ?2)"
                           " ORDER BY next_attempt_at, day, domain, rua",
                           -1, &st, NULL) != SQLITE_OK)
        goto dberr;
    if (sname)
        sqlite3_bind_text(st, 1, sname, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, due_by);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct mxg_rpt_delivery *d;
        const unsigned char *t;
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            struct mxg_rpt_delivery *nv = realloc(v, ncap * sizeof *nv);
            if (!nv) {
                sqlite3_finalize(st);
                free(v);
                return MXG_RPT_ENOMEM;
            }
            v = nv;
            cap = ncap;
        }
        d = &v[n];
        memset(d, 0, sizeof *d);
        snprintf(d->day, sizeof d->day, "%s", (const char *)sqlite3_column_text(st, 0));
        snprintf(d->domain, sizeof d->domain, "%s", (const char *)sqlite3_column_text(st, 1));
        snprintf(d->rua, sizeof d->rua, "%s", (const char *)sqlite3_column_text(st, 2));
        d->attempts = sqlite3_column_int(st, 3);
        d->next_attempt_at = sqlite3_column_int64(st, 4);
        if (status_parse((const char *)sqlite3_column_text(st, 5), &d->status) != 0)
            continue; /* the CHECK constraint makes this impossible */
        t = sqlite3_column_text(st, 6);
        snprintf(d->last_error, sizeof d->last_error, "%s", t ? (const char *)t : "");
        d->updated_at = sqlite3_column_int64(st, 7);
        n++;
    }
    if (rc != SQLITE_DONE)
        goto dberr;
    sqlite3_finalize(st);
    for (size_t i = 0; i < n; i++)
        fn(arg, &v[i]);
    free(v);
    return (int)n;
dberr:
    LOG_E(RPT_COMP, "%s: listing deliveries: %s", r->path, sqlite3_errmsg(db));
    sqlite3_finalize(st);
    free(v);
    return MXG_RPT_EDB;
}
