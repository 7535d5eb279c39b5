/* report/rpt_fleet.c — a fleet's report (tlsrpt.h "fleet gate"; rpt_int.h): the fleet's
 * summed counters of one (day, domain), imported into a temporary view file next to the
 * instance's own, give the same RFC 8460 JSON a single instance would build, under the
 * report-id the fleet's claim carries (every sender of the fleet, takeovers included, uses
 * it, so receivers can drop a repeat). The view is the path `report show` of a fleet member
 * takes (app/cli_report.c), so the two agree. */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "rpt_int.h"

/* Removes the view's files (absent ones too). */
static void view_unlink(const char *path)
{
    static const char *const ext[] = {"", "-wal", "-shm", "-journal"};
    char p[PATH_MAX + 16];
    for (size_t i = 0; i < sizeof ext / sizeof ext[0]; i++) {
        snprintf(p, sizeof p, "%s%s", path, ext[i]);
        unlink(p);
    }
}

/* Stores report_id as the view's report-id of (day, domain). 0 or MXG_RPT_EDB. */
static int view_set_id(struct mxg_rpt *v, const char *day, const char *domain,
                       const char *report_id, char *err, size_t errlen)
{
    sqlite3 *db = rpt_db(v);
    sqlite3_stmt *st = NULL;
    int rc = MXG_RPT_EDB;
    if (db && sqlite3_prepare_v2(db,
                                 "INSERT OR REPLACE INTO report (day, domain, report_id,"
                                 " created_at) VALUES (?1, ?2, ?3, ?4)",
                                 -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_text(st, 1, day, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, domain, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, report_id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 4, (sqlite3_int64)time(NULL));
        if (sqlite3_step(st) == SQLITE_DONE)
            rc = 0;
    }
    if (rc)
        rpt_set_err(err, errlen, "fleet report view: %s", db ? sqlite3_errmsg(db) : "closed");
    sqlite3_finalize(st);
    return rc;
}

/* Contract: rpt_int.h. */
int rpt_fleet_report_json(struct mxg_rpt *r, const char *payload, const char *day,
                          const char *domain, const struct mxg_rpt_org *org,
                          const char *report_id, char **json_out, char *err, size_t errlen)
{
    char path[PATH_MAX + 16], dom[MXG_RPT_DOMAIN_MAX];
    struct mxg_rpt *v;
    int rc;
    *json_out = NULL;
    if (!r || !payload || !report_id || !report_id[0] || !rpt_day_ok(day) ||
        rpt_domain_norm(domain, dom) != 0) {
        rpt_set_err(err, errlen, "fleet report: bad arguments");
        return MXG_RPT_EINVAL;
    }
    snprintf(path, sizeof path, "%s.fleet-view", r->path);
    view_unlink(path); /* a crash's leftover */
    if (!(v = mxg_rpt_open(NULL, path, 0, err, errlen)))
        return MXG_RPT_EDB;
    rc = mxg_rpt_import(v, payload, err, errlen);
    if (rc == 0)
        rc = mxg_rpt_flush(v);
    if (rc == 0)
        rc = view_set_id(v, day, dom, report_id, err, errlen);
    if (rc == 0)
        rc = mxg_rpt_report_json(v, day, dom, org, json_out, NULL, err, errlen);
    mxg_rpt_close(v);
    view_unlink(path);
    return rc;
}
