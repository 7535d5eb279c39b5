/* state/pg_claim.c — TLSRPT report sending in a fleet, the worker side: one claim in one
 * transaction, and the done mark (state.h "report sending", schema version 4 in
 * pg_schema.c). Runs on a thread-pool thread only; touches only the PGconn and the io.
 *
 * A rua's claim row is taken with INSERT ... ON CONFLICT DO UPDATE ... WHERE: the row lock
 * of the conflict makes it atomic, so of two instances claiming at once exactly one gets a
 * row back. The update happens only while the row is still 'claimed' and its lease has run
 * out by the database's clock (a takeover) or the claimant is this instance (a retry);
 * report_id never changes once the first claim wrote it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "state_int.h"

/* Runs a parameterless command; 0 if its status is ok, else -1 with err. */
static int cmd(PGconn *c, const char *sql, ExecStatusType ok, char *err, size_t errlen)
{
    PGresult *r = PQexec(c, sql);
    int rc = PQresultStatus(r) == ok ? 0 : -1;
    if (rc)
        mxg_state_pg_error(c, r, sql, err, errlen);
    PQclear(r);
    return rc;
}

/* The (day, domain)'s report-id: the proposal unless a claimant stored one first. 0/-1. */
static int take_report_id(PGconn *c, struct mxg_state_pg_claim_io *io, char *err,
                          size_t errlen)
{
    const char *v[3] = {io->day, io->domain, io->report_id};
    PGresult *r = PQexecParams(c,
                               "INSERT INTO mxguard_rpt_report AS t (day, domain, report_id)"
                               " VALUES ($1, $2, $3) ON CONFLICT (day, domain) DO UPDATE SET"
                               " report_id = t.report_id RETURNING t.report_id",
                               3, NULL, v, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
        mxg_state_pg_error(c, r, "report-id", err, errlen);
        PQclear(r);
        return -1;
    }
    snprintf(io->report_id, sizeof io->report_id, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    return 0;
}

/* Claims rua i (or learns who has it); 0 or -1. */
static int claim_rua(PGconn *c, struct mxg_state_pg_claim_io *io, int i, char *err,
                     size_t errlen)
{
    char lease[24];
    const char *v[6] = {io->day, io->domain, io->ruas[i], io->report_id, io->instance, lease};
    PGresult *r;
    snprintf(lease, sizeof lease, "%llu", (unsigned long long)io->lease_s);
    r = PQexecParams(c,
                     "INSERT INTO mxguard_rpt_claim AS c (day, domain, rua, report_id, instance,"
                     " lease_until) VALUES ($1, $2, $3, $4, $5,"
                     " clock_timestamp() + make_interval(secs => $6::bigint))"
                     " ON CONFLICT (day, domain, rua) DO UPDATE SET instance = EXCLUDED.instance,"
                     " lease_until = EXCLUDED.lease_until, claims = c.claims + 1,"
                     " updated_at = clock_timestamp()"
                     " WHERE c.status = 'claimed' AND (c.lease_until < clock_timestamp()"
                     " OR c.instance = EXCLUDED.instance) RETURNING 1",
                     6, NULL, v, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        mxg_state_pg_error(c, r, "claim", err, errlen);
        PQclear(r);
        return -1;
    }
    if (PQntuples(r) == 1) {
        io->res[i] = MXG_STATE_CLAIM_MINE;
        PQclear(r);
        return 0;
    }
    PQclear(r);
    r = PQexecParams(c,
                     "SELECT status, greatest(0, ceil(extract(epoch FROM lease_until -"
                     " clock_timestamp())))::bigint FROM mxguard_rpt_claim"
                     " WHERE day = $1 AND domain = $2 AND rua = $3",
                     3, NULL, v, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
        mxg_state_pg_error(c, r, "claim state", err, errlen);
        PQclear(r);
        return -1;
    }
    if (strcmp(PQgetvalue(r, 0, 0), "sent") == 0)
        io->res[i] = MXG_STATE_CLAIM_SENT;
    else if (strcmp(PQgetvalue(r, 0, 0), "gave-up") == 0)
        io->res[i] = MXG_STATE_CLAIM_GAVE_UP;
    else
        io->res[i] = MXG_STATE_CLAIM_HELD;
    io->lease_left[i] = strtoll(PQgetvalue(r, 0, 1), NULL, 10);
    PQclear(r);
    return 0;
}

/* The fleet's counters of (day, domain) into io->payload; 0 or -1. */
static int fleet_counts(PGconn *c, struct mxg_state_pg_claim_io *io, char *err, size_t errlen)
{
    const char *v[2] = {io->day, io->domain};
    PGresult *r = PQexecParams(c, MXG_STATE_PG_RPT_JSON("p.day = $1 AND p.domain = $2"), 2,
                               NULL, v, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
        mxg_state_pg_error(c, r, "TLSRPT counters", err, errlen);
        PQclear(r);
        return -1;
    }
    io->payload = strdup(PQgetvalue(r, 0, 0));
    PQclear(r);
    if (!io->payload) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

/* Contract: state_int.h. */
int mxg_state_pg_claim(PGconn *c, struct mxg_state_pg_claim_io *io, char *err, size_t errlen)
{
    if (cmd(c, "BEGIN", PGRES_COMMAND_OK, err, errlen) < 0)
        return -1;
    if (take_report_id(c, io, err, errlen) < 0)
        goto fail;
    for (int i = 0; i < io->n; i++)
        if (claim_rua(c, io, i, err, errlen) < 0)
            goto fail;
    if (fleet_counts(c, io, err, errlen) < 0)
        goto fail;
    if (cmd(c, "COMMIT", PGRES_COMMAND_OK, err, errlen) < 0)
        goto fail;
    return 0;
fail:
    PQclear(PQexec(c, "ROLLBACK"));
    free(io->payload);
    io->payload = NULL;
    return -1;
}

/* Contract: state_int.h. */
int mxg_state_pg_claim_done(PGconn *c, const char *day, const char *domain, const char *rua,
                            const char *instance, int gave_up, char *err, size_t errlen)
{
    const char *v[5] = {day, domain, rua, instance, gave_up ? "gave-up" : "sent"};
    PGresult *r = PQexecParams(c,
                               "UPDATE mxguard_rpt_claim SET status = $5,"
                               " updated_at = clock_timestamp() WHERE day = $1 AND domain = $2"
                               " AND rua = $3 AND status = 'claimed' AND $4::text IS NOT NULL",
                               5, NULL, v, NULL, NULL, 0);
    int rc = PQresultStatus(r) == PGRES_COMMAND_OK ? 0 : -1;
    if (rc)
        mxg_state_pg_error(c, r, "claim done", err, errlen);
    PQclear(r);
    return rc;
}
