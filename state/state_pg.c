/* state/state_pg.c — the postgresql backend: the sync between this instance's local copy
 * and the shared database, on libuv's thread pool; see state.h and state_int.h.
 *
 * One sync ("job") at a time: the loop hands the worker the queued pushes and the pull
 * cursor; the worker (re)connects if needed, checks (or migrates) the schema once per
 * connection, pushes, pulls every row whose rev is above the cursor, and returns; the loop
 * then drops what was pushed, hands the pulled rows to the sink and records the link state.
 * The PGconn is touched by one worker at a time only (jobs never overlap) and closed on the
 * loop once no job runs. Pushes that failed go back to the queue (a newer queued push of
 * the same domain wins), so a database outage loses nothing the instance still runs with;
 * the queue is also durable: every push is in policy/'s MTA-STS outbox (state.h, struct
 * mxg_state_sts_io), queued again at the first sync after a restart (restore_row) and
 * removed once the database acknowledged it (requeue). Every state.prune_interval a job
 * also prunes the database's old rows (prune, bounded per run). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "../core/log.h"
#include "state_int.h"

#define COMP "state"
/* Queued pushes kept while the database cannot be reached (older ones are dropped). */
#define PG_PENDING_MAX 10000
/* Rows per pull query, and pages per sync (the rest comes with the next sync): the sink
 * stores each row in the local SQLite cache on the loop, so one sync hands over at most
 * 400 short writes, also when a new member first pulls a large fleet's table. */
#define PG_PULL_PAGE 200
#define PG_PULL_PAGE_SQL "200"
#define PG_PULL_PAGES 2
/* Delay before the next sync when a pull stopped at that cap (the loop runs in between). */
#define PG_MORE_MS 20
/* A sync still running after this many sync intervals (at least PG_STUCK_MIN_MS) marks the
 * link down: the database accepted the connection but stopped answering. */
#define PG_STUCK_SYNCS 3
#define PG_STUCK_MIN_MS 1000
/* The transaction-level advisory lock that orders MTA-STS writes ("mxgp"). */
#define PG_STS_LOCK "1836607344"

struct pending {
    struct pending *next;
    char domain[MXG_STATE_NAME_MAX];
    char id[64];
    char *body; /* owned */
    size_t body_len;
    int64_t fetched_at;  /* the publisher's wall clock (the outbox row's key) */
    int64_t age_ms;      /* ms between the fetch's stamp and the publish (or restore) call */
    uint64_t queued_ms;  /* monotonic (uv_hrtime) ms at the publish call: the age grows by
                          * the time spent queued, measured when the worker pushes */
    int64_t ttl_s;       /* expires_at - fetched_at */
    int pushed;          /* the job delivered it (dropped from the queue) */
    int refused;         /* the database refused it: requeued and logged, the sync goes on */
};

/* TLSRPT batches per sync (the rest waits in the outbox for the next one). */
#define PG_BATCHES_PER_SYNC 50

struct batch {
    char id[64];
    char *payload; /* owned */
    int failed;    /* the database refused it: left in the outbox */
    int done;      /* committed (or the database had it already) */
};

/* A claim's done mark (report sending) waiting for the database. */
struct donemark {
    struct donemark *next;
    char day[16], domain[MXG_STATE_NAME_MAX], rua[512];
    int gave_up;
};
/* Done marks kept while the database cannot be reached (beyond: dropped, logged; the claim's
 * lease then expires and another instance resends with the same report-id). */
#define PG_DONES_MAX 10000

/* One claim on the thread pool (its own connection; state.h report sending). Claims run
 * one at a time (a FIFO), so that a database that does not answer holds at most one
 * thread-pool thread for its connect timeout; while the syncs find the database down (or
 * of another schema), claims answer "not claimed" without connecting. */
struct claim_job {
    uv_work_t req;
    struct claim_job *next;      /* the FIFO of waiting claims */
    int skip;                    /* answer at once: closing, or the database is down */
    struct pg_impl *pg;
    mxg_state_claim_cb cb;
    void *arg;
    struct mxg_state_pg_claim_io io;
    char day[16], domain[MXG_STATE_NAME_MAX];
    int ok;
    char err[MXG_STATE_ERR_MAX];
};

/* A policy list as published or pulled (owned buffers). */
struct listbuf {
    char *json, *sig;
    size_t json_len, sig_len;
    int64_t timestamp;
};

struct pulled {
    char domain[MXG_STATE_NAME_MAX];
    char id[64];
    char *body; /* owned */
    size_t body_len;
    int64_t fetched_at, expires_at;
    int too_long; /* the domain or id does not fit: refused on the loop, never cut */
};

struct pg_job {
    uv_work_t req;
    struct pg_impl *pg;
    /* in */
    struct pending *push;   /* owned by the job while it runs */
    uint64_t start_ms;
    int64_t cursor;
    int migrate;
    struct listbuf *list_push; /* the policy list to publish, or NULL (owned by the job) */
    int64_t list_cursor;    /* pull a list newer than this */
    struct listbuf *list_pulled; /* out: a newer list, or NULL */
    int list_pushed;        /* out: list_push reached the database */
    struct donemark *dones; /* claim done marks to push (owned by the job) */
    size_t n_dones_ok;      /* out: the first n_dones_ok reached the database */
    int prune;              /* in: delete what is older than the retention (state.h) */
    uint64_t pruned;        /* out: rows deleted */
    int prune_more;         /* out: a table hit the per-run bound (prune again soon) */
    char prune_err[MXG_STATE_ERR_MAX]; /* out: a prune statement the database refused */
    struct batch *batches;  /* TLSRPT batches taken from the outbox */
    size_t n_batches, cap_batches;
    /* out */
    size_t n_batches_done;  /* batches committed (or already there) */
    char batch_err[MXG_STATE_ERR_MAX]; /* the last refused batch's error */
    char push_err[MXG_STATE_ERR_MAX]; /* the last refused push's error */
    struct pulled *rows;
    size_t n_rows, cap_rows;
    int64_t new_cursor;
    int ok, schema_failed, schema_version, schema_from;
    char err[MXG_STATE_ERR_MAX];
};

struct pg_impl {
    struct mxg_state *st;
    PGconn *conn;           /* used by the running job's worker only */
    int schema_ok;          /* the schema was checked on this connection */
    uv_timer_t timer;
    int timer_open;
    struct pending *pending;
    size_t n_pending;
    struct pg_job *running;
    int64_t cursor;         /* the highest rev pulled */
    struct listbuf *list_pending; /* the policy list waiting to be published */
    int64_t list_ts;        /* the newest list timestamp published or pulled */
    struct donemark *dones; /* claim done marks waiting for the database */
    size_t n_dones;
    int claims;             /* claim jobs queued or on the thread pool */
    struct claim_job *claim_q; /* claims waiting for the one running */
    int claim_running;
    uint64_t next_prune_ms; /* uv_now() from which the next sync prunes (0: the first) */
    int reread;             /* a push did not fit in the queue: read the outbox again once
                             * the queue has drained */
    int closing;
};

/* Frees a list buffer (NULL allowed). */
static void listbuf_free(struct listbuf *l)
{
    if (!l)
        return;
    free(l->json);
    free(l->sig);
    free(l);
}

static void start_job(struct pg_impl *pg);
static void on_timer(uv_timer_t *t);
static void restore_row(void *arg, const struct mxg_state_sts_row *row);

/* Frees a pending list. */
static void pending_free(struct pending *p)
{
    while (p) {
        struct pending *n = p->next;
        free(p->body);
        free(p);
        p = n;
    }
}

/* 1 if a pending push of domain is queued. */
static int pending_has(const struct pg_impl *pg, const char *domain)
{
    for (const struct pending *p = pg->pending; p; p = p->next)
        if (strcasecmp(p->domain, domain) == 0)
            return 1;
    return 0;
}

/* ------------------------------------------------------------ worker side */

/* Decodes a big-endian int8 of a binary result. */
static int64_t get_i64(const PGresult *r, int row, int col)
{
    const unsigned char *p = (const unsigned char *)PQgetvalue(r, row, col);
    uint64_t v = 0;
    if (PQgetlength(r, row, col) != 8)
        return 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return (int64_t)v;
}

/* Runs one parameterless command that must succeed; 0 or -1 with the job's err. */
static int job_cmd(struct pg_job *j, const char *sql, ExecStatusType ok)
{
    PGresult *r = PQexec(j->pg->conn, sql);
    int rc = PQresultStatus(r) == ok ? 0 : -1;
    if (rc)
        mxg_state_pg_error(j->pg->conn, r, sql, j->err, sizeof j->err);
    PQclear(r);
    return rc;
}

static int take_rows(struct pg_job *j, const PGresult *r);

/* Pushes one row in its own transaction (the advisory lock orders revs). When the database
 * holds a newer fetch (0 rows changed), that row is read back and handed to the sink like a
 * pulled one: a pull may have skipped it while this push was queued. 0 or -1. */
static int push_one(struct pg_job *j, const struct pending *p)
{
    char age[24], ttl[24];
    uint64_t now_ms = uv_hrtime() / 1000000; /* now, not at the job's start: a slow connect
                                              * must not make the fetch look newer */
    int64_t a = p->age_ms + (int64_t)(now_ms - p->queued_ms);
    const char *vals[6];
    int lens[6] = {0, 0, (int)p->body_len, 0, 0, 0}, fmts[6] = {0, 0, 1, 0, 0, 0};
    PGresult *r;

    snprintf(age, sizeof age, "%lld", (long long)(a < 0 ? 0 : a));
    snprintf(ttl, sizeof ttl, "%lld", (long long)p->ttl_s);
    vals[0] = p->domain, vals[1] = p->id, vals[2] = p->body ? p->body : "";
    vals[3] = age, vals[4] = ttl, vals[5] = j->pg->st->instance;
    if (job_cmd(j, "BEGIN", PGRES_COMMAND_OK) < 0)
        return -1;
    if (job_cmd(j, "SELECT pg_advisory_xact_lock(" PG_STS_LOCK ")", PGRES_TUPLES_OK) < 0)
        goto fail;
    r = PQexecParams(j->pg->conn,
                     "INSERT INTO mxguard_sts_policy AS p"
                     " (domain, id, body, fetched_at, expires_at, rev, instance)"
                     " SELECT lower($1), $2, $3, t.f, t.f + $5::bigint,"
                     " nextval('mxguard_sts_rev'), $6 FROM (SELECT"
                     " ((extract(epoch FROM clock_timestamp()) * 1000)::bigint"
                     " - $4::bigint) / 1000 AS f) t"
                     /* expired by its age (a late replay): nothing stored, acknowledged */
                     " WHERE $4::bigint < $5::bigint * 1000"
                     " ON CONFLICT (domain) DO UPDATE SET id = EXCLUDED.id, body = EXCLUDED.body,"
                     " fetched_at = EXCLUDED.fetched_at,"
                     /* policy/sts_merge.c's rule: the same id never shortens the expiry */
                     " expires_at = CASE WHEN p.id = EXCLUDED.id"
                     " THEN greatest(p.expires_at, EXCLUDED.expires_at)"
                     " ELSE EXCLUDED.expires_at END,"
                     " rev = EXCLUDED.rev, instance = EXCLUDED.instance"
                     " WHERE p.fetched_at <= EXCLUDED.fetched_at",
                     6, NULL, vals, lens, fmts, 0);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        mxg_state_pg_error(j->pg->conn, r, "push", j->err, sizeof j->err);
        PQclear(r);
        goto fail;
    }
    if (strcmp(PQcmdTuples(r), "0") == 0) { /* the database's row is newer: read it back */
        int64_t cur = j->new_cursor;
        PQclear(r);
        r = PQexecParams(j->pg->conn,
                         "SELECT domain, id, body, fetched_at, expires_at, rev"
                         " FROM mxguard_sts_policy WHERE domain = lower($1)",
                         1, NULL, vals, NULL, NULL, 1);
        if (PQresultStatus(r) != PGRES_TUPLES_OK || take_rows(j, r) < 0) {
            mxg_state_pg_error(j->pg->conn, r, "push: read back", j->err, sizeof j->err);
            PQclear(r);
            goto fail;
        }
        j->new_cursor = cur; /* the pull position is the pull's alone */
    }
    PQclear(r);
    return job_cmd(j, "COMMIT", PGRES_COMMAND_OK);
fail:
    PQclear(PQexec(j->pg->conn, "ROLLBACK"));
    return -1;
}

/* The policy key and the failure key: md5 of the JSON array of the key fields. */
#define PG_POL_KEY                                                                           \
    "md5(jsonb_build_array(p->>'day', p->>'domain', p->>'ptype', p->>'pstring',"          \
    " p->>'mxhost')::text)"

/* Adds one TLSRPT batch to the fleet's counters unless its id was added before; 0 or -1. */
static int push_batch(struct pg_job *j, const struct batch *b)
{
    const char *v2[2] = {b->id, j->pg->st->instance};
    const char *v1[1] = {b->payload};
    PGresult *r;
    int fresh;

    if (job_cmd(j, "BEGIN", PGRES_COMMAND_OK) < 0)
        return -1;
    r = PQexecParams(j->pg->conn,
                     "INSERT INTO mxguard_rpt_batch (id, instance) VALUES ($1, $2)"
                     " ON CONFLICT (id) DO NOTHING",
                     2, NULL, v2, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        mxg_state_pg_error(j->pg->conn, r, "TLSRPT batch", j->err, sizeof j->err);
        PQclear(r);
        goto fail;
    }
    fresh = strcmp(PQcmdTuples(r), "1") == 0;
    PQclear(r);
    if (fresh) {
        r = PQexecParams(j->pg->conn,
                         "INSERT INTO mxguard_rpt_policy (key, day, domain, ptype, pstring, mxhost,"
                         " success, failure) SELECT " PG_POL_KEY ", p->>'day', p->>'domain',"
                         " p->>'ptype', p->>'pstring', p->>'mxhost', (p->>'ok')::bigint,"
                         " (p->>'fail')::bigint FROM jsonb_array_elements($1::jsonb) p"
                         " ON CONFLICT (key) DO UPDATE SET"
                         " success = mxguard_rpt_policy.success + EXCLUDED.success,"
                         " failure = mxguard_rpt_policy.failure + EXCLUDED.failure",
                         1, NULL, v1, NULL, NULL, 0);
        if (PQresultStatus(r) != PGRES_COMMAND_OK) {
            mxg_state_pg_error(j->pg->conn, r, "TLSRPT counters", j->err, sizeof j->err);
            PQclear(r);
            goto fail;
        }
        PQclear(r);
        r = PQexecParams(j->pg->conn,
                         "INSERT INTO mxguard_rpt_failure (key, policy_key, result_type,"
                         " sending_mta_ip, receiving_mx_hostname, receiving_mx_helo, receiving_ip,"
                         " additional_information, failure_reason_code, sessions)"
                         " SELECT md5(jsonb_build_array(q.pk, d->>'rtype', d->>'sip',"
                         " d->>'mxname', d->>'helo', d->>'rip', d->>'info', d->>'code')::text),"
                         " q.pk, d->>'rtype', d->>'sip', d->>'mxname', d->>'helo', d->>'rip',"
                         " d->>'info', d->>'code', (d->>'n')::bigint"
                         " FROM (SELECT " PG_POL_KEY " AS pk, p"
                         " FROM jsonb_array_elements($1::jsonb) p) q,"
                         " jsonb_array_elements(q.p->'details') d"
                         " ON CONFLICT (key) DO UPDATE SET"
                         " sessions = mxguard_rpt_failure.sessions + EXCLUDED.sessions",
                         1, NULL, v1, NULL, NULL, 0);
        if (PQresultStatus(r) != PGRES_COMMAND_OK) {
            mxg_state_pg_error(j->pg->conn, r, "TLSRPT failure details", j->err,
                               sizeof j->err);
            PQclear(r);
            goto fail;
        }
        PQclear(r);
    }
    return job_cmd(j, "COMMIT", PGRES_COMMAND_OK);
fail:
    PQclear(PQexec(j->pg->conn, "ROLLBACK"));
    return -1;
}

/* Publishes the job's policy list (the database keeps the newest by timestamp); 0 or -1. */
static int push_list(struct pg_job *j)
{
    char ts[24];
    const char *vals[4];
    int lens[4] = {0, (int)j->list_push->json_len, (int)j->list_push->sig_len, 0};
    int fmts[4] = {0, 1, 1, 0};
    PGresult *r;
    snprintf(ts, sizeof ts, "%lld", (long long)j->list_push->timestamp);
    vals[0] = ts, vals[1] = j->list_push->json, vals[2] = j->list_push->sig;
    vals[3] = j->pg->st->instance;
    r = PQexecParams(j->pg->conn,
                     "INSERT INTO mxguard_policy_list AS l (id, timestamp, json, sig, instance)"
                     " VALUES (1, $1::bigint, $2, $3, $4) ON CONFLICT (id) DO UPDATE SET"
                     " timestamp = EXCLUDED.timestamp, json = EXCLUDED.json, sig = EXCLUDED.sig,"
                     " instance = EXCLUDED.instance WHERE l.timestamp < EXCLUDED.timestamp",
                     4, NULL, vals, lens, fmts, 0);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        mxg_state_pg_error(j->pg->conn, r, "policy list", j->err, sizeof j->err);
        PQclear(r);
        return -1;
    }
    PQclear(r);
    j->list_pushed = 1;
    return 0;
}

/* Pulls the policy list if the database has one newer than the job's cursor; 0 or -1. */
static int pull_list(struct pg_job *j)
{
    char cur[24];
    const char *vals[1] = {cur};
    struct listbuf *l;
    PGresult *r;
    snprintf(cur, sizeof cur, "%lld", (long long)j->list_cursor);
    r = PQexecParams(j->pg->conn,
                     "SELECT timestamp, json, sig FROM mxguard_policy_list"
                     " WHERE timestamp > $1::bigint",
                     1, NULL, vals, NULL, NULL, 1);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        mxg_state_pg_error(j->pg->conn, r, "policy list pull", j->err, sizeof j->err);
        PQclear(r);
        return -1;
    }
    if (PQntuples(r) == 1 && (l = calloc(1, sizeof *l))) {
        l->timestamp = get_i64(r, 0, 0);
        l->json_len = (size_t)PQgetlength(r, 0, 1);
        l->sig_len = (size_t)PQgetlength(r, 0, 2);
        l->json = malloc(l->json_len + 1);
        l->sig = malloc(l->sig_len + 1);
        if (!l->json || !l->sig) {
            listbuf_free(l);
        } else {
            memcpy(l->json, PQgetvalue(r, 0, 1), l->json_len);
            memcpy(l->sig, PQgetvalue(r, 0, 2), l->sig_len);
            l->json[l->json_len] = l->sig[l->sig_len] = '\0';
            j->list_pulled = l;
        }
    }
    PQclear(r);
    return 0;
}

/* Appends the rows of one pull result to the job; 0 or -1 (out of memory). */
static int take_rows(struct pg_job *j, const PGresult *r)
{
    int n = PQntuples(r);
    for (int i = 0; i < n; i++) {
        struct pulled *row;
        if (j->n_rows == j->cap_rows) {
            size_t cap = j->cap_rows ? j->cap_rows * 2 : 64;
            struct pulled *nr = realloc(j->rows, cap * sizeof *nr);
            if (!nr)
                return -1;
            j->rows = nr, j->cap_rows = cap;
        }
        row = &j->rows[j->n_rows];
        memset(row, 0, sizeof *row);
        row->too_long = PQgetlength(r, i, 0) >= (int)sizeof row->domain ||
                        PQgetlength(r, i, 1) >= (int)sizeof row->id;
        snprintf(row->domain, sizeof row->domain, "%.*s", PQgetlength(r, i, 0),
                 PQgetvalue(r, i, 0));
        snprintf(row->id, sizeof row->id, "%.*s", PQgetlength(r, i, 1), PQgetvalue(r, i, 1));
        row->body_len = (size_t)PQgetlength(r, i, 2);
        if (!(row->body = malloc(row->body_len + 1)))
            return -1;
        memcpy(row->body, PQgetvalue(r, i, 2), row->body_len);
        row->body[row->body_len] = '\0';
        row->fetched_at = get_i64(r, i, 3);
        row->expires_at = get_i64(r, i, 4);
        j->new_cursor = get_i64(r, i, 5);
        j->n_rows++;
    }
    return 0;
}

/* Pulls the rows changed since the job's cursor; 0 or -1. */
static int pull(struct pg_job *j)
{
    j->new_cursor = j->cursor;
    for (int page = 0; page < PG_PULL_PAGES; page++) {
        char cur[24];
        const char *vals[1] = {cur};
        int n;
        PGresult *r;
        snprintf(cur, sizeof cur, "%lld", (long long)j->new_cursor);
        r = PQexecParams(j->pg->conn,
                         "SELECT domain, id, body, fetched_at, expires_at, rev"
                         " FROM mxguard_sts_policy WHERE rev > $1::bigint ORDER BY rev"
                         " LIMIT " PG_PULL_PAGE_SQL,
                         1, NULL, vals, NULL, NULL, 1);
        if (PQresultStatus(r) != PGRES_TUPLES_OK) {
            mxg_state_pg_error(j->pg->conn, r, "pull", j->err, sizeof j->err);
            PQclear(r);
            return -1;
        }
        n = PQntuples(r);
        if (take_rows(j, r) < 0) {
            PQclear(r);
            snprintf(j->err, sizeof j->err, "pull: out of memory");
            return -1;
        }
        PQclear(r);
        if (n < PG_PULL_PAGE)
            break;
    }
    return 0;
}

/* Rows one prune statement deletes at most (per table and run): a large backlog is
 * deleted over several syncs, each statement short. */
#define PG_PRUNE_ROWS 1000
#define PG_PRUNE_ROWS_SQL "1000"
/* The UTC day (YYYY-MM-DD) before which days ended more than $1 seconds ago. */
#define PG_PRUNE_DAY                                                                         \
    "to_char((now() AT TIME ZONE 'UTC') - make_interval(secs => $1::bigint), 'YYYY-MM-DD')"

/* Deletes, in bounded batches, what is older than the retention (state.h "Pruning"): the
 * TLSRPT batch ids received before it, and the claims, report-ids and counters of UTC days
 * that ended before it. 0, or -1 only when the connection broke (a refused statement is
 * kept in prune_err and the others go on). */
static int prune(struct pg_job *j)
{
    static const char *const sql[] = {
        "DELETE FROM mxguard_rpt_batch WHERE ctid IN (SELECT ctid FROM mxguard_rpt_batch"
        " WHERE received_at < now() - make_interval(secs => $1::bigint) LIMIT "
        PG_PRUNE_ROWS_SQL ")",
        /* MTA-STS policies expired longer than the retention ago: no member uses them
         * (policy/sts_merge.c takes no expired row), a fresh one needs not pull them */
        "DELETE FROM mxguard_sts_policy WHERE ctid IN (SELECT ctid FROM mxguard_sts_policy"
        " WHERE expires_at < extract(epoch FROM now())::bigint - $1::bigint LIMIT "
        PG_PRUNE_ROWS_SQL ")",
        "DELETE FROM mxguard_rpt_claim WHERE ctid IN (SELECT ctid FROM mxguard_rpt_claim"
        " WHERE day < " PG_PRUNE_DAY " LIMIT " PG_PRUNE_ROWS_SQL ")",
        "DELETE FROM mxguard_rpt_report WHERE ctid IN (SELECT ctid FROM mxguard_rpt_report"
        " WHERE day < " PG_PRUNE_DAY " LIMIT " PG_PRUNE_ROWS_SQL ")",
        "DELETE FROM mxguard_rpt_failure WHERE ctid IN (SELECT f.ctid FROM mxguard_rpt_failure f"
        " JOIN mxguard_rpt_policy p ON p.key = f.policy_key WHERE p.day < " PG_PRUNE_DAY
        " LIMIT " PG_PRUNE_ROWS_SQL ")",
        "DELETE FROM mxguard_rpt_policy WHERE ctid IN (SELECT p.ctid FROM mxguard_rpt_policy p"
        " WHERE p.day < " PG_PRUNE_DAY " AND NOT EXISTS (SELECT 1 FROM mxguard_rpt_failure f"
        " WHERE f.policy_key = p.key) LIMIT " PG_PRUNE_ROWS_SQL ")",
    };
    char secs[24];
    const char *vals[1] = {secs};
    snprintf(secs, sizeof secs, "%llu", (unsigned long long)(j->pg->st->retention_ms / 1000));
    for (size_t i = 0; i < sizeof sql / sizeof sql[0]; i++) {
        PGresult *r = PQexecParams(j->pg->conn, sql[i], 1, NULL, vals, NULL, NULL, 0);
        if (PQresultStatus(r) != PGRES_COMMAND_OK) {
            mxg_state_pg_error(j->pg->conn, r, "prune", j->prune_err, sizeof j->prune_err);
            PQclear(r);
            if (PQstatus(j->pg->conn) != CONNECTION_OK) {
                snprintf(j->err, sizeof j->err, "%s", j->prune_err);
                return -1;
            }
            continue;
        }
        {
            unsigned long long n = strtoull(PQcmdTuples(r), NULL, 10);
            j->pruned += n;
            if (n >= PG_PRUNE_ROWS)
                j->prune_more = 1;
        }
        PQclear(r);
    }
    return 0;
}

/* The thread-pool side of a sync (blocking libpq calls). */
static void job_work(uv_work_t *req)
{
    struct pg_job *j = req->data;
    struct pg_impl *pg = j->pg;

    if (pg->conn && PQstatus(pg->conn) != CONNECTION_OK) {
        PQfinish(pg->conn);
        pg->conn = NULL;
    }
    if (!pg->conn) {
        pg->schema_ok = 0;
        if (!(pg->conn = mxg_state_pg_connect(pg->st, j->err,
                                              sizeof j->err)))
            return;
    }
    if (!pg->schema_ok) {
        j->schema_version = mxg_state_pg_schema(pg->conn, j->migrate, &j->schema_from, j->err,
                                                sizeof j->err);
        if (j->schema_version < 0) {
            j->schema_failed = PQstatus(pg->conn) == CONNECTION_OK;
            return;
        }
        pg->schema_ok = 1;
    } else {
        j->schema_version = MXG_STATE_PG_SCHEMA;
    }
    for (struct pending *p = j->push; p; p = p->next) {
        if (push_one(j, p) < 0) {
            if (PQstatus(pg->conn) != CONNECTION_OK)
                return;
            /* the database refused this row itself: it stays queued (logged), the other
             * pushes, the TLSRPT batches and the pulls go on */
            p->refused = 1;
            snprintf(j->push_err, sizeof j->push_err, "%s", j->err);
            j->err[0] = '\0';
            continue;
        }
        p->pushed = 1;
    }
    for (size_t i = 0; i < j->n_batches; i++) {
        if (push_batch(j, &j->batches[i]) < 0) {
            if (PQstatus(pg->conn) != CONNECTION_OK)
                return;
            /* the database refused this batch itself: it stays in the outbox (logged), the
             * others and the MTA-STS pull go on */
            j->batches[i].failed = 1;
            snprintf(j->batch_err, sizeof j->batch_err, "%s", j->err);
            j->err[0] = '\0';
            continue;
        }
        j->batches[i].done = 1;
        j->n_batches_done++;
    }
    for (const struct donemark *d = j->dones; d; d = d->next) {
        if (mxg_state_pg_claim_done(pg->conn, d->day, d->domain, d->rua, pg->st->instance,
                                    d->gave_up, j->err, sizeof j->err) < 0)
            return;
        j->n_dones_ok++;
    }
    if (j->list_push && push_list(j) < 0)
        return;
    if (pull(j) < 0 || pull_list(j) < 0)
        return;
    if (j->prune && prune(j) < 0)
        return;
    j->ok = 1;
}

/* ------------------------------------------------------------ loop side */

/* Frees a list of done marks. */
static void dones_free(struct donemark *d)
{
    while (d) {
        struct donemark *n = d->next;
        free(d);
        d = n;
    }
}

/* Frees a job and what it still holds. */
static void job_free(struct pg_job *j)
{
    pending_free(j->push);
    dones_free(j->dones);
    for (size_t i = 0; i < j->n_rows; i++)
        free(j->rows[i].body);
    free(j->rows);
    for (size_t i = 0; i < j->n_batches; i++)
        free(j->batches[i].payload);
    free(j->batches);
    listbuf_free(j->list_push);
    listbuf_free(j->list_pulled);
    free(j);
}

/* mxg_state_rpt_io take() callback: copy one outbox batch into the job. */
static void take_batch(void *arg, const char *id, const char *payload)
{
    struct pg_job *j = arg;
    struct batch *b;
    if (!id || !payload || strlen(id) >= sizeof b->id)
        return;
    if (j->n_batches == j->cap_batches) {
        size_t cap = j->cap_batches ? j->cap_batches * 2 : 8;
        struct batch *nb = realloc(j->batches, cap * sizeof *nb);
        if (!nb)
            return;
        j->batches = nb, j->cap_batches = cap;
    }
    b = &j->batches[j->n_batches];
    memset(b, 0, sizeof *b);
    if (!(b->payload = strdup(payload)))
        return;
    snprintf(b->id, sizeof b->id, "%s", id);
    j->n_batches++;
}

/* Frees the backend once the timer is closed and no job runs. */
static void maybe_free(struct pg_impl *pg)
{
    struct mxg_state *st = pg->st;
    if (!pg->closing || pg->running || pg->timer_open || pg->claims)
        return;
    PQfinish(pg->conn);
    pending_free(pg->pending);
    dones_free(pg->dones);
    listbuf_free(pg->list_pending);
    explicit_bzero(st->password, sizeof st->password);
    free(pg);
    free(st);
}

/* Puts the pushes the job did not deliver back in front of the queue. */
static void requeue(struct pg_impl *pg, struct pg_job *j)
{
    struct pending **tail = &j->push, *rest;
    struct mxg_state_sts_row acked[64];
    int n_acked = 0;
    struct pending *gone = NULL; /* delivered, freed after the outbox was told */
    /* drop the delivered ones */
    while (*tail) {
        struct pending *p = *tail;
        if (p->refused)
            LOG_E(COMP, "postgresql: MTA-STS push of %s refused (kept queued): %s", p->domain,
                  j->push_err);
        if (!p->pushed) {
            p->refused = 0;
            tail = &p->next;
            continue;
        }
        *tail = p->next;
        pg->st->status.sts_pushed++;
        if (n_acked == (int)(sizeof acked / sizeof acked[0]) && pg->st->sts_io.done) {
            pg->st->sts_io.done(pg->st->sts_io.arg, acked, n_acked);
            n_acked = 0;
            pending_free(gone);
            gone = NULL;
        }
        acked[n_acked++] = (struct mxg_state_sts_row){p->domain, p->id, p->body, p->body_len,
                                                      p->fetched_at, p->fetched_at + p->ttl_s};
        p->next = gone;
        gone = p;
    }
    if (n_acked && pg->st->sts_io.done) /* acknowledged: out of the durable outbox */
        pg->st->sts_io.done(pg->st->sts_io.arg, acked, n_acked);
    pending_free(gone);
    rest = j->push;
    j->push = NULL;
    while (rest) {
        struct pending *p = rest;
        rest = p->next;
        if (pending_has(pg, p->domain) || pg->n_pending >= PG_PENDING_MAX) {
            if (!pending_has(pg, p->domain))
                pg->reread = 1; /* still in the durable outbox: read again later */
            free(p->body); /* a newer push of the domain is queued, or the queue is full */
            free(p);
            continue;
        }
        p->next = pg->pending;
        pg->pending = p;
        pg->n_pending++;
    }
}

/* Records the outcome of a sync in the status, logging each change of the link state. */
static void set_link(struct pg_impl *pg, const struct pg_job *j)
{
    struct mxg_state_status *s = &pg->st->status;
    enum mxg_state_link was = s->link;
    if (j->ok) {
        s->link = MXG_STATE_UP;
        s->error[0] = '\0';
        s->last_ok = (int64_t)time(NULL);
        s->syncs_ok++;
        s->schema_version = j->schema_version;
        if (j->schema_from != 0 && j->schema_from != j->schema_version)
            LOG_N(COMP, "postgresql: schema migrated from version %d to %d", j->schema_from,
                  j->schema_version);
        if (was != MXG_STATE_UP)
            LOG_N(COMP, "postgresql: up (schema version %d)", j->schema_version);
        return;
    }
    s->syncs_failed++;
    s->link = j->schema_failed ? MXG_STATE_SCHEMA : MXG_STATE_DOWN;
    if (was != s->link || strcmp(s->error, j->err) != 0)
        LOG_W(COMP, "postgresql: %s: %s (mail is not affected; %zu push(es) queued)",
              s->link == MXG_STATE_SCHEMA ? "schema" : "down", j->err, pg->n_pending);
    snprintf(s->error, sizeof s->error, "%s", j->err);
}

/* The loop side of a sync: account, hand the pulled rows over, requeue. */
static void job_done(uv_work_t *req, int status)
{
    struct pg_job *j = req->data;
    struct pg_impl *pg = j->pg;
    struct mxg_state *st = pg->st;

    pg->running = NULL;
    if (status != 0) /* cancelled: never started */
        snprintf(j->err, sizeof j->err, "sync cancelled");
    if (pg->closing) {
        job_free(j);
        maybe_free(pg);
        return;
    }
    if (!j->ok && !j->schema_failed && pg->conn && PQstatus(pg->conn) != CONNECTION_OK) {
        PQfinish(pg->conn); /* reconnect next time */
        pg->conn = NULL;
    }
    requeue(pg, j);
    {   /* done marks: the delivered prefix goes, the rest back in front of the queue */
        struct donemark **tail = &j->dones, *rest;
        size_t skip = j->n_dones_ok;
        while (*tail && skip--) {
            struct donemark *d = *tail;
            *tail = d->next;
            free(d);
        }
        rest = j->dones;
        j->dones = NULL;
        if (rest) {
            struct donemark *last = rest;
            size_t n = 1;
            while (last->next)
                last = last->next, n++;
            last->next = pg->dones;
            pg->dones = rest;
            pg->n_dones += n;
        }
    }
    if (j->list_push) { /* published, or back in the queue unless a newer one waits */
        if (j->list_pushed) {
            if (j->list_push->timestamp > pg->list_ts)
                pg->list_ts = j->list_push->timestamp;
        } else if (!pg->list_pending) {
            pg->list_pending = j->list_push;
            j->list_push = NULL;
        }
    }
    if (j->ok && j->list_pulled && j->list_pulled->timestamp > pg->list_ts) {
        struct mxg_state_list l = {j->list_pulled->json, j->list_pulled->json_len,
                                   j->list_pulled->sig, j->list_pulled->sig_len,
                                   j->list_pulled->timestamp};
        pg->list_ts = l.timestamp; /* offered once: a refused list is not pulled again */
        if (st->list_sink)
            st->list_sink(st->list_arg, &l);
    }
    {   /* committed: out of the local outbox, in one call */
        const char *ids[PG_BATCHES_PER_SYNC];
        int n = 0;
        for (size_t i = 0; i < j->n_batches; i++) {
            if (j->batches[i].failed)
                LOG_E(COMP, "postgresql: TLSRPT batch %s refused (kept in the outbox): %s",
                      j->batches[i].id, j->batch_err);
            if (!j->batches[i].done)
                continue;
            if (n < PG_BATCHES_PER_SYNC)
                ids[n++] = j->batches[i].id;
            st->status.rpt_batches++;
        }
        if (n && st->rpt_io.done)
            st->rpt_io.done(st->rpt_io.arg, ids, n);
    }
    if (j->ok) {
        pg->cursor = j->new_cursor;
        for (size_t i = 0; i < j->n_rows; i++) {
            const struct pulled *r = &j->rows[i];
            struct mxg_state_sts_row row = {r->domain, r->id, r->body, r->body_len,
                                            r->fetched_at, r->expires_at};
            if (r->too_long) {
                LOG_W(COMP, "%.64s...: policy from the fleet refused: domain or id too long "
                            "(the local copy stays)", r->domain);
                continue;
            }
            if (pending_has(pg, r->domain))
                continue; /* ours is newer and not yet in the database */
            st->status.sts_pulled++;
            if (st->sts_sink)
                st->sts_sink(st->sts_arg, &row);
        }
    }
    if (j->ok && j->n_rows < (size_t)PG_PULL_PAGE * PG_PULL_PAGES && !st->status.caught_up) {
        st->status.caught_up = 1; /* every page pulled: app/ may open the listeners */
        LOG_N(COMP, "postgresql: first complete pull (%llu MTA-STS row(s))",
              (unsigned long long)st->status.sts_pulled);
    }
    if (j->prune && j->ok) {
        uint64_t now = uv_now(st->loop);
        st->status.pruned += j->pruned;
        if (j->pruned)
            LOG_I(COMP, "postgresql: pruned %llu row(s) older than state.retention%s",
                  (unsigned long long)j->pruned, j->prune_more ? " (more at the next sync)" : "");
        if (j->prune_err[0])
            LOG_W(COMP, "postgresql: prune: %s (retried at the next prune)", j->prune_err);
        pg->next_prune_ms = j->prune_more ? now : now + st->prune_ms;
    }
    if (j->ok && pg->reread && !pg->n_pending && !pg->pending) {
        pg->reread = 0;
        st->sts_io_new = 1; /* the rows that did not fit, at the next sync */
    }
    st->status.pending = pg->n_pending;
    set_link(pg, j);
    if (j->ok && (j->n_rows >= (size_t)PG_PULL_PAGE * PG_PULL_PAGES || pg->dones ||
                  (j->prune && j->prune_more)))
        uv_timer_start(&pg->timer, on_timer, PG_MORE_MS, st->sync_ms); /* more to do: soon */
    job_free(j);
}

/* Starts a sync unless one is running. */
static void start_job(struct pg_impl *pg)
{
    struct pg_job *j;
    if (pg->running || pg->closing)
        return;
    if (!(j = calloc(1, sizeof *j))) {
        LOG_W(COMP, "postgresql: sync: out of memory");
        return;
    }
    if (pg->st->sts_io_new && pg->st->sts_io.take) { /* the durable outbox, once */
        int n = pg->st->sts_io.take(pg->st->sts_io.arg, restore_row, pg);
        if (n < 0) {
            LOG_W(COMP, "postgresql: the MTA-STS outbox could not be read (retried next sync)");
        } else {
            pg->st->sts_io_new = 0;
            if (n > 0)
                LOG_N(COMP, "postgresql: %d MTA-STS push(es) from the local outbox queued", n);
        }
    }
    j->pg = pg;
    j->req.data = j;
    j->cursor = pg->cursor;
    j->prune = pg->st->retention_ms && uv_now(pg->st->loop) >= pg->next_prune_ms;
    j->migrate = pg->st->migrate;
    j->start_ms = uv_now(pg->st->loop);
    j->list_push = pg->list_pending;
    pg->list_pending = NULL;
    j->list_cursor = pg->list_ts;
    j->dones = pg->dones; /* in the order they were marked (appended) */
    pg->dones = NULL;
    pg->n_dones = 0;
    j->push = pg->pending; /* the job takes the queue; new pushes start a new one */
    pg->pending = NULL;
    pg->n_pending = 0;
    /* the queue was built newest first: push in publish order */
    {
        struct pending *rev = NULL;
        while (j->push) {
            struct pending *p = j->push;
            j->push = p->next;
            p->next = rev;
            rev = p;
        }
        j->push = rev;
    }
    if (pg->st->rpt_io.take &&
        pg->st->rpt_io.take(pg->st->rpt_io.arg, PG_BATCHES_PER_SYNC, take_batch, j) < 0)
        LOG_W(COMP, "postgresql: the TLSRPT outbox could not be read (retried next sync)");
    if (uv_queue_work(pg->st->loop, &j->req, job_work, job_done) != 0) {
        snprintf(j->err, sizeof j->err, "cannot queue the sync on the thread pool");
        requeue(pg, j);
        job_free(j);
        return;
    }
    pg->running = j;
}

/* The sync timer: starts a sync, or marks the link down when the running one is stuck. */
static void on_timer(uv_timer_t *t)
{
    struct pg_impl *pg = t->data;
    struct mxg_state_status *s = &pg->st->status;
    uint64_t limit = pg->st->sync_ms * PG_STUCK_SYNCS, ran;
    if (!pg->running) {
        start_job(pg);
        return;
    }
    ran = uv_now(pg->st->loop) - pg->running->start_ms;
    if (ran < (limit < PG_STUCK_MIN_MS ? PG_STUCK_MIN_MS : limit) || s->link == MXG_STATE_DOWN)
        return;
    s->link = MXG_STATE_DOWN;
    snprintf(s->error, sizeof s->error, "the database has not answered for %llu ms",
             (unsigned long long)ran);
    LOG_W(COMP, "postgresql: down: %s (mail is not affected; %zu push(es) queued)", s->error,
          pg->n_pending);
}

/* The timer handle is closed: free if nothing else holds the backend. */
static void on_timer_closed(uv_handle_t *h)
{
    struct pg_impl *pg = h->data;
    pg->timer_open = 0;
    maybe_free(pg);
}

/* Opens the backend: the timer fires at once, then every sync_ms. */
static int pg_open(struct mxg_state *st, char *err, size_t errlen)
{
    struct pg_impl *pg = calloc(1, sizeof *pg);
    if (!pg) {
        snprintf(err, errlen, "state: out of memory");
        return -1;
    }
    pg->st = st;
    st->impl = pg;
    st->status.link = MXG_STATE_CONNECTING;
    uv_timer_init(st->loop, &pg->timer);
    pg->timer.data = pg;
    pg->timer_open = 1;
    uv_timer_start(&pg->timer, on_timer, 0, st->sync_ms);
    return 0;
}

/* Stops the timer; the module is freed once a running job has returned. */
static void pg_close(struct mxg_state *st)
{
    struct pg_impl *pg = st->impl;
    pg->closing = 1;
    uv_timer_stop(&pg->timer);
    uv_close((uv_handle_t *)&pg->timer, on_timer_closed);
}

/* Queues a row (replacing a queued one of the same domain); 0 or -1. */
static int queue_row(struct pg_impl *pg, const struct mxg_state_sts_row *row, int64_t now_ms)
{
    struct mxg_state *st = pg->st;
    struct pending *p, **pp;

    if (strlen(row->domain) >= sizeof p->domain || strlen(row->id) >= sizeof p->id)
        return -1;
    for (pp = &pg->pending; *pp; pp = &(*pp)->next) {
        if (strcasecmp((*pp)->domain, row->domain) == 0) {
            p = *pp;
            *pp = p->next;
            free(p->body);
            free(p);
            pg->n_pending--;
            break;
        }
    }
    if (pg->n_pending >= PG_PENDING_MAX) { /* it waits in the durable outbox: read again
                                            * once the queue has drained */
        if (!pg->reread)
            LOG_W(COMP, "postgresql: %zu pushes queued: %s and later ones wait in the local "
                        "outbox until the queue drains", pg->n_pending, row->domain);
        pg->reread = 1;
        return -1;
    }
    if (!(p = calloc(1, sizeof *p)) || !(p->body = malloc(row->body_len + 1))) {
        free(p);
        pg->reread = 1; /* it waits in the durable outbox: read again at a later sync */
        return -1;
    }
    snprintf(p->domain, sizeof p->domain, "%s", row->domain);
    snprintf(p->id, sizeof p->id, "%s", row->id);
    if (row->body_len)
        memcpy(p->body, row->body, row->body_len);
    p->body_len = row->body_len;
    p->fetched_at = row->fetched_at;
    p->age_ms = now_ms - row->fetched_at * 1000; /* from the stamp: the DB gets it back */
    if (p->age_ms < 0)
        p->age_ms = 0;
    p->ttl_s = row->expires_at - row->fetched_at;
    p->queued_ms = uv_hrtime() / 1000000;
    p->next = pg->pending;
    pg->pending = p;
    pg->n_pending++;
    st->status.pending = pg->n_pending;
    return 0;
}

/* Queues a row and starts a sync. */
static int pg_publish(struct mxg_state *st, const struct mxg_state_sts_row *row, int64_t now)
{
    struct pg_impl *pg = st->impl;
    if (queue_row(pg, row, now * 1000) < 0)
        return -1;
    start_job(pg);
    return 0;
}

/* mxg_state_sts_io take() callback: one row of the durable outbox (a push a previous run,
 * or this one, did not get acknowledged) is queued, aged by the wall clock that stamped its
 * fetch; a newer push of the domain already queued wins. */
static void restore_row(void *arg, const struct mxg_state_sts_row *row)
{
    struct pg_impl *pg = arg;
    struct timespec ts;
    if (pending_has(pg, row->domain))
        return;
    clock_gettime(CLOCK_REALTIME, &ts);
    queue_row(pg, row, (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
}

/* Queues the policy list (a newer queued one wins) and starts a sync. */
static int pg_list_publish(struct mxg_state *st, const struct mxg_state_list *l)
{
    struct pg_impl *pg = st->impl;
    struct listbuf *b;
    if (l->timestamp <= pg->list_ts ||
        (pg->list_pending && pg->list_pending->timestamp >= l->timestamp))
        return 0; /* the database has it (or a newer one is queued) */
    if (!(b = calloc(1, sizeof *b)) || !(b->json = malloc(l->json_len + 1)) ||
        !(b->sig = malloc(l->sig_len + 1))) {
        listbuf_free(b);
        return -1;
    }
    memcpy(b->json, l->json, l->json_len);
    memcpy(b->sig, l->sig, l->sig_len);
    b->json[l->json_len] = b->sig[l->sig_len] = '\0';
    b->json_len = l->json_len, b->sig_len = l->sig_len, b->timestamp = l->timestamp;
    listbuf_free(pg->list_pending);
    pg->list_pending = b;
    start_job(pg);
    return 0;
}

/* The thread-pool side of a claim: its own connection, the schema check, the claim. */
static void claim_work(uv_work_t *req)
{
    struct claim_job *c = req->data;
    struct mxg_state *st = c->pg->st;
    int from = 0;
    PGconn *conn;
    if (c->skip)
        return;
    conn = mxg_state_pg_connect(st, c->err, sizeof c->err);
    if (!conn)
        return;
    if (mxg_state_pg_schema(conn, 0, &from, c->err, sizeof c->err) >= 0 &&
        mxg_state_pg_claim(conn, &c->io, c->err, sizeof c->err) == 0)
        c->ok = 1;
    PQfinish(conn);
}

/* Frees a claim job. */
static void claim_free(struct claim_job *c)
{
    for (int i = 0; i < c->io.n; i++)
        free(c->io.ruas[i]);
    free(c->io.ruas);
    free(c->io.res);
    free(c->io.lease_left);
    free(c->io.payload);
    free(c);
}

static void claim_done_cb(uv_work_t *req, int status);

/* Starts the next waiting claim unless one runs. */
static void claim_next(struct pg_impl *pg)
{
    struct claim_job *c = pg->claim_q;
    const struct mxg_state_status *s = &pg->st->status;
    if (pg->claim_running || !c)
        return;
    pg->claim_q = c->next;
    pg->claim_running = 1;
    if (pg->closing) {
        c->skip = 1;
        snprintf(c->err, sizeof c->err, "closed");
    } else if (s->link == MXG_STATE_DOWN || s->link == MXG_STATE_SCHEMA) {
        c->skip = 1;
        snprintf(c->err, sizeof c->err, "postgresql %s: %s",
                 s->link == MXG_STATE_SCHEMA ? "schema" : "down", s->error);
    }
    if (uv_queue_work(pg->st->loop, &c->req, claim_work, claim_done_cb) != 0)
        claim_done_cb(&c->req, UV_EINVAL); /* not on the pool: answered now (never happens) */
}

/* The loop side of a claim: the callback, exactly once (ok 0 once the module closed). */
static void claim_done_cb(uv_work_t *req, int status)
{
    struct claim_job *c = req->data;
    struct pg_impl *pg = c->pg;
    pg->claims--;
    pg->claim_running = 0;
    if (status != 0) {
        c->ok = 0;
        snprintf(c->err, sizeof c->err, "claim cancelled");
    }
    if (pg->closing) {
        c->ok = 0;
        snprintf(c->err, sizeof c->err, "closed");
    }
    {
        struct mxg_state_claim r = {c->ok, c->err, c->io.report_id, c->io.payload,
                                    c->io.res, c->io.lease_left, c->io.n};
        c->cb(c->arg, &r);
    }
    claim_free(c);
    claim_next(pg);
    maybe_free(pg);
}

/* Queues a claim for the thread pool. */
static int pg_rpt_claim(struct mxg_state *st, const char *day, const char *domain,
                        const char *const *ruas, int n, const char *report_id, uint64_t lease_s,
                        mxg_state_claim_cb cb, void *arg)
{
    struct pg_impl *pg = st->impl;
    struct claim_job *c = calloc(1, sizeof *c);
    if (!c)
        return -1;
    c->pg = pg, c->cb = cb, c->arg = arg;
    c->req.data = c;
    snprintf(c->day, sizeof c->day, "%s", day);
    snprintf(c->domain, sizeof c->domain, "%s", domain);
    snprintf(c->io.report_id, sizeof c->io.report_id, "%s", report_id);
    c->io.day = c->day, c->io.domain = c->domain, c->io.instance = st->instance;
    c->io.lease_s = lease_s;
    c->io.ruas = calloc((size_t)n, sizeof *c->io.ruas);
    c->io.res = calloc((size_t)n, sizeof *c->io.res);
    c->io.lease_left = calloc((size_t)n, sizeof *c->io.lease_left);
    if (!c->io.ruas || !c->io.res || !c->io.lease_left) {
        claim_free(c);
        return -1;
    }
    for (int i = 0; i < n; i++, c->io.n++)
        if (!(c->io.ruas[i] = strdup(ruas[i]))) {
            claim_free(c);
            return -1;
        }
    {
        struct claim_job **tail = &pg->claim_q;
        while (*tail)
            tail = &(*tail)->next;
        *tail = c;
    }
    pg->claims++;
    claim_next(pg);
    return 0;
}

/* Queues a done mark (appended: pushed in order) and starts a sync. */
static int pg_rpt_claim_done(struct mxg_state *st, const char *day, const char *domain,
                             const char *rua, int gave_up)
{
    struct pg_impl *pg = st->impl;
    struct donemark *d, **tail;
    if (pg->n_dones >= PG_DONES_MAX) {
        LOG_W(COMP, "postgresql: %zu done marks queued: report %s %s to %s not marked (its "
                    "lease expires: another instance may resend it, same report-id)",
              pg->n_dones, day, domain, rua);
        return -1;
    }
    if (!(d = calloc(1, sizeof *d)))
        return -1;
    snprintf(d->day, sizeof d->day, "%s", day);
    snprintf(d->domain, sizeof d->domain, "%s", domain);
    snprintf(d->rua, sizeof d->rua, "%s", rua);
    d->gave_up = gave_up;
    for (tail = &pg->dones; *tail; tail = &(*tail)->next)
        ;
    *tail = d;
    pg->n_dones++;
    start_job(pg);
    return 0;
}

/* Starts a sync now unless one runs. */
static void pg_sync_now(struct mxg_state *st)
{
    start_job(st->impl);
}

/* `mxguard state migrate`: connect and migrate, synchronously. */
static int pg_migrate_now(const struct mxg_state *st, int *from, char *err, size_t errlen)
{
    PGconn *c = mxg_state_pg_connect(st, err, errlen);
    int v;
    *from = 0;
    if (!c)
        return -1;
    v = mxg_state_pg_schema(c, 1, from, err, errlen);
    PQfinish(c);
    return v;
}

/* `mxguard report ...`: the fleet's counters as report/'s outbox JSON, synchronously. */
static int pg_rpt_dump(const struct mxg_state *st, const char *day, char **payload, char *err,
                       size_t errlen)
{
    const char *vals[1] = {day};
    PGconn *c = mxg_state_pg_connect(st, err, errlen);
    PGresult *r;
    int from = 0, rc = -1;
    *payload = NULL;
    if (!c)
        return -1;
    if (mxg_state_pg_schema(c, 0, &from, err, errlen) < 0) {
        PQfinish(c);
        return -1;
    }
    r = PQexecParams(c, MXG_STATE_PG_RPT_JSON("$1::text IS NULL OR p.day = $1::text"),
                     1, NULL, vals, NULL, NULL, 0);
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1) {
        if ((*payload = strdup(PQgetvalue(r, 0, 0))))
            rc = 0;
        else
            snprintf(err, errlen, "out of memory");
    } else {
        mxg_state_pg_error(c, r, "TLSRPT counters", err, errlen);
    }
    PQclear(r);
    PQfinish(c);
    return rc;
}

/* `mxguard check`: connect and read the schema version, synchronously. */
static int pg_probe(const struct mxg_state *st, struct mxg_state_status *out)
{
    PGconn *c;
    int from = 0, v;
    memset(out, 0, sizeof *out);
    c = mxg_state_pg_connect(st, out->error, sizeof out->error);
    if (!c) {
        out->link = MXG_STATE_DOWN;
        return -1;
    }
    v = mxg_state_pg_schema(c, 0, &from, out->error, sizeof out->error);
    PQfinish(c);
    out->schema_version = from;
    out->link = v < 0 ? MXG_STATE_SCHEMA : MXG_STATE_UP;
    return v < 0 ? -1 : 0;
}

const struct mxg_state_backend mxg_state_backend_pg = {
    .name = "postgresql",
    .open = pg_open,
    .close = pg_close,
    .sts_publish = pg_publish,
    .list_publish = pg_list_publish,
    .sync_now = pg_sync_now,
    .migrate_now = pg_migrate_now,
    .rpt_dump = pg_rpt_dump,
    .rpt_claim = pg_rpt_claim,
    .rpt_claim_done = pg_rpt_claim_done,
    .probe = pg_probe,
};
