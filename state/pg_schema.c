/* state/pg_schema.c — the versioned PostgreSQL schema of the shared state; see state_int.h.
 *
 * The table mxguard_schema holds one row, the version. migrations[v] takes the schema from
 * version v to v+1 in one transaction with the version bump. Migrating runs under the
 * session-level pg_advisory_lock(PG_SCHEMA_LOCK), so two instances (or an instance and
 * `mxguard state migrate`) never migrate at once: the second waits, then finds the schema
 * current. A database whose version is newer than this mxguard's is refused (an older
 * binary must not write rows it does not understand).
 *
 * Version 4: TLSRPT report sending (state/pg_claim.c): one report-id per (day, domain)
 * (mxguard_rpt_report, the first claimant's) and one claim row per (day, domain, rua): the
 * instance that sends it, its lease, and whether it was sent (or given up) by the fleet.
 *
 * Version 3: the newest verified policy list (one row; members verify it themselves).
 *
 * Version 2: the TLSRPT counters of the fleet (mxguard_rpt_policy, mxguard_rpt_failure;
 * key = md5 of the JSON array of the key fields, as a policy string can be longer than an
 * index entry) and the ids of the batches already added (mxguard_rpt_batch).
 *
 * Version 1: the MTA-STS policy cache shared by the fleet (mxguard_sts_policy). rev is
 * taken from a sequence at every write, under a transaction-level advisory lock held to the
 * commit (state_pg.c), so revs become visible in order and "rev > cursor" misses nothing. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "state_int.h"

/* The advisory lock key of schema changes ("mxgs"). */
#define PG_SCHEMA_LOCK "1836607347"

static const char *const migrations[MXG_STATE_PG_SCHEMA] = {
    /* 0 -> 1 */
    "CREATE SEQUENCE mxguard_sts_rev;"
    "CREATE TABLE mxguard_sts_policy ("
    " domain text PRIMARY KEY,"
    " id text NOT NULL,"
    " body bytea NOT NULL,"
    " fetched_at bigint NOT NULL,"
    " expires_at bigint NOT NULL,"
    " rev bigint NOT NULL,"
    " instance text NOT NULL);"
    "CREATE INDEX mxguard_sts_policy_rev ON mxguard_sts_policy (rev);",
    /* 1 -> 2 */
    "CREATE TABLE mxguard_rpt_batch ("
    " id text PRIMARY KEY,"
    " instance text NOT NULL,"
    " received_at timestamptz NOT NULL DEFAULT now());"
    "CREATE TABLE mxguard_rpt_policy ("
    " key text PRIMARY KEY,"
    " day text NOT NULL, domain text NOT NULL, ptype text NOT NULL,"
    " pstring text NOT NULL, mxhost text NOT NULL,"
    " success bigint NOT NULL, failure bigint NOT NULL);"
    "CREATE INDEX mxguard_rpt_policy_day ON mxguard_rpt_policy (day, domain);"
    "CREATE TABLE mxguard_rpt_failure ("
    " key text PRIMARY KEY,"
    " policy_key text NOT NULL REFERENCES mxguard_rpt_policy (key),"
    " result_type text NOT NULL, sending_mta_ip text NOT NULL,"
    " receiving_mx_hostname text NOT NULL, receiving_mx_helo text NOT NULL,"
    " receiving_ip text NOT NULL, additional_information text NOT NULL,"
    " failure_reason_code text NOT NULL, sessions bigint NOT NULL);",
    /* 2 -> 3 */
    "CREATE TABLE mxguard_policy_list ("
    " id integer PRIMARY KEY CHECK (id = 1),"
    " timestamp bigint NOT NULL,"
    " json bytea NOT NULL,"
    " sig bytea NOT NULL,"
    " instance text NOT NULL);",
    /* 3 -> 4 */
    "CREATE TABLE mxguard_rpt_report ("
    " day text NOT NULL, domain text NOT NULL,"
    " report_id text NOT NULL,"
    " PRIMARY KEY (day, domain));"
    "CREATE TABLE mxguard_rpt_claim ("
    " day text NOT NULL, domain text NOT NULL, rua text NOT NULL,"
    " report_id text NOT NULL,"
    " instance text NOT NULL,"
    " lease_until timestamptz NOT NULL,"
    " status text NOT NULL DEFAULT 'claimed' CHECK (status IN ('claimed', 'sent', 'gave-up')),"
    " claims integer NOT NULL DEFAULT 1,"
    " updated_at timestamptz NOT NULL DEFAULT now(),"
    " PRIMARY KEY (day, domain, rua));",
    /* 4 -> 5: the prune's range scans (state_pg.c prune()) */
    "CREATE INDEX mxguard_rpt_batch_received ON mxguard_rpt_batch (received_at);"
    "CREATE INDEX mxguard_sts_policy_expires ON mxguard_sts_policy (expires_at);",
};

/* Runs sql (no parameters); 0 if it returned status ok, else -1 with err. */
static int exec_ok(PGconn *c, const char *sql, ExecStatusType ok, const char *what, char *err,
                   size_t errlen)
{
    PGresult *r = PQexec(c, sql);
    int rc = 0;
    if (PQresultStatus(r) != ok) {
        mxg_state_pg_error(c, r, what, err, errlen);
        rc = -1;
    }
    PQclear(r);
    return rc;
}

/* The version the database holds: >= 0, or -1 with err. 0 when mxguard_schema is absent. */
static int read_version(PGconn *c, char *err, size_t errlen)
{
    PGresult *r = PQexec(c, "SELECT to_regclass('mxguard_schema') IS NOT NULL");
    int v = -1;
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
        mxg_state_pg_error(c, r, "schema version", err, errlen);
        PQclear(r);
        return -1;
    }
    if (strcmp(PQgetvalue(r, 0, 0), "t") != 0) {
        PQclear(r);
        return 0;
    }
    PQclear(r);
    r = PQexec(c, "SELECT coalesce(max(version), 0) FROM mxguard_schema");
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
        v = atoi(PQgetvalue(r, 0, 0));
    else
        mxg_state_pg_error(c, r, "schema version", err, errlen);
    PQclear(r);
    return v;
}

/* Under the advisory lock: migrate from the version found to ours. Version or -1. */
static int migrate_locked(PGconn *c, int *from, char *err, size_t errlen)
{
    int v = read_version(c, err, errlen);
    char sql[128];
    if (v < 0)
        return -1;
    *from = v;
    if (v > MXG_STATE_PG_SCHEMA) {
        snprintf(err, errlen, "schema version %d is newer than this mxguard's (%d)", v,
                 MXG_STATE_PG_SCHEMA);
        return -1;
    }
    for (; v < MXG_STATE_PG_SCHEMA; v++) {
        if (exec_ok(c, "BEGIN", PGRES_COMMAND_OK, "BEGIN", err, errlen) < 0)
            return -1;
        if (v == 0 && exec_ok(c, "CREATE TABLE IF NOT EXISTS mxguard_schema (version integer "
                                 "NOT NULL); DELETE FROM mxguard_schema; INSERT INTO "
                                 "mxguard_schema VALUES (0)",
                              PGRES_COMMAND_OK, "create mxguard_schema", err, errlen) < 0)
            goto fail;
        if (exec_ok(c, migrations[v], PGRES_COMMAND_OK, "migration", err, errlen) < 0)
            goto fail;
        snprintf(sql, sizeof sql, "UPDATE mxguard_schema SET version = %d", v + 1);
        if (exec_ok(c, sql, PGRES_COMMAND_OK, "schema version", err, errlen) < 0 ||
            exec_ok(c, "COMMIT", PGRES_COMMAND_OK, "COMMIT", err, errlen) < 0)
            goto fail;
    }
    return v;
fail:
    exec_ok(c, "ROLLBACK", PGRES_COMMAND_OK, "ROLLBACK", NULL, 0);
    return -1;
}

/* Contract: state_int.h. */
int mxg_state_pg_schema(PGconn *c, int migrate, int *from, char *err, size_t errlen)
{
    int v;
    char lerr[MXG_STATE_ERR_MAX];
    *from = 0;
    if (!migrate) {
        v = read_version(c, err, errlen);
        if (v < 0)
            return -1;
        *from = v;
        if (v != MXG_STATE_PG_SCHEMA) {
            snprintf(err, errlen, "schema version %d, this mxguard needs %d%s", v,
                     MXG_STATE_PG_SCHEMA,
                     v < MXG_STATE_PG_SCHEMA ? ": run `mxguard state migrate`" : "");
            return -1;
        }
        return v;
    }
    if (exec_ok(c, "SELECT pg_advisory_lock(" PG_SCHEMA_LOCK ")", PGRES_TUPLES_OK,
                "pg_advisory_lock", err, errlen) < 0)
        return -1;
    v = migrate_locked(c, from, err, errlen);
    if (exec_ok(c, "SELECT pg_advisory_unlock(" PG_SCHEMA_LOCK ")", PGRES_TUPLES_OK,
                "pg_advisory_unlock", lerr, sizeof lerr) < 0 && v >= 0) {
        snprintf(err, errlen, "%s", lerr);
        return -1;
    }
    return v;
}
