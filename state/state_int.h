/* state/state_int.h — private to state/: the backend contract and the PostgreSQL helpers.
 *
 * A backend is one struct mxg_state_backend (a row of state.c's table): state.c validates
 * arguments, keeps the status and dispatches; the backend does the work. The sqlite
 * backend is state_local.c, the postgresql backend state_pg.c (the sync on the thread
 * pool) with pg_conn.c (connecting) and pg_schema.c (the versioned schema).
 * Threads: the PG helpers below run on a thread-pool thread (or in a one-shot command);
 * they touch only the PGconn and the buffers they are given, never the loop or the
 * struct mxg_state. */
#ifndef MXG_STATE_INT_H
#define MXG_STATE_INT_H

#include <libpq-fe.h>

#include "state.h"

#define MXG_STATE_PASSWORD_MAX 1024
/* The schema version this mxguard reads and writes (pg_schema.c). */
#define MXG_STATE_PG_SCHEMA 5

struct mxg_state;

/* One backend: every function receives the module; impl is the backend's own data. */
struct mxg_state_backend {
    const char *name;
    /* Sets st->impl and starts syncing; 0 or -1 with err. */
    int (*open)(struct mxg_state *st, char *err, size_t errlen);
    /* Frees st->impl (may defer until work in flight returns) and st itself. */
    void (*close)(struct mxg_state *st);
    /* Queues an MTA-STS row (copied). 0 or -1. */
    int (*sts_publish)(struct mxg_state *st, const struct mxg_state_sts_row *row, int64_t now);
    /* Queues the policy list (copied). 0 or -1. */
    int (*list_publish)(struct mxg_state *st, const struct mxg_state_list *l);
    /* Starts a sync now unless one runs. */
    void (*sync_now)(struct mxg_state *st);
    /* Synchronous schema set-up (one-shot command): version in force or -1. */
    int (*migrate_now)(const struct mxg_state *st, int *from, char *err, size_t errlen);
    /* Synchronous dump of the fleet's TLSRPT counters (one-shot command): 0 or -1. */
    int (*rpt_dump)(const struct mxg_state *st, const char *day, char **payload, char *err,
                    size_t errlen);
    /* Report sending (state.h): a claim on the thread pool, a done mark. */
    int (*rpt_claim)(struct mxg_state *st, const char *day, const char *domain,
                     const char *const *ruas, int n, const char *report_id, uint64_t lease_s,
                     mxg_state_claim_cb cb, void *arg);
    int (*rpt_claim_done)(struct mxg_state *st, const char *day, const char *domain,
                          const char *rua, int gave_up);
    /* Synchronous reachability check (one-shot command): 0 or -1, out filled. */
    int (*probe)(const struct mxg_state *st, struct mxg_state_status *out);
};

struct mxg_state {
    uv_loop_t *loop;                      /* borrowed */
    const struct mxg_state_backend *be;
    char conninfo[1024];                  /* copied from the options */
    char password[MXG_STATE_PASSWORD_MAX];/* read from the password file ("" = none) */
    char instance[MXG_STATE_NAME_MAX];    /* the option, or the host name */
    uint64_t sync_ms;
    int migrate;
    mxg_state_sts_sink sts_sink;
    void *sts_arg;
    struct mxg_state_rpt_io rpt_io;       /* take == NULL: no TLSRPT batches */
    struct mxg_state_sts_io sts_io;       /* take == NULL: no durable MTA-STS outbox */
    int sts_io_new;                       /* sts_io set, its rows not yet queued */
    uint64_t retention_ms, prune_ms;      /* pruning (state.h); retention 0 = none */
    mxg_state_list_sink list_sink;
    void *list_arg;
    struct mxg_state_status status;       /* kept by the backend, read by mxg_state_status() */
    void *impl;                           /* owned by the backend */
};

extern const struct mxg_state_backend mxg_state_backend_sqlite;
extern const struct mxg_state_backend mxg_state_backend_pg;

/* pg_conn.c: connect with st's conninfo and password (blocking: thread pool or one-shot
 * command only); application_name "mxguard/<state.instance_name>" unless the conninfo sets
 * one (an operator tells the members apart in pg_stat_activity). The connection or NULL
 * with err set (the password never appears in it). */
PGconn *mxg_state_pg_connect(const struct mxg_state *st, char *err, size_t errlen);
/* pg_conn.c: 0 when libpq parses conninfo (no network, no defaults) and it sets no
 * password (core/config.c checks the text; this is libpq's own reading, percent-escapes
 * included), else -1 with err. */
int mxg_state_pg_conninfo_check(const char *conninfo, char *err, size_t errlen);
/* pg_conn.c: err = the connection's or result's error message on one line. */
void mxg_state_pg_error(PGconn *c, const PGresult *r, const char *what, char *err,
                        size_t errlen);

/* pg_schema.c: bring the schema to MXG_STATE_PG_SCHEMA under pg_advisory_lock when
 * migrate is set; otherwise only read the version. Returns the version in force (which is
 * MXG_STATE_PG_SCHEMA when usable), or -1 with err. *from gets the version found. */
int mxg_state_pg_schema(PGconn *c, int migrate, int *from, char *err, size_t errlen);

/* The fleet's TLSRPT counters as one JSON text in report/'s outbox format, for the rows of
 * mxguard_rpt_policy p that WHERE (SQL text, may use parameters) selects. */
#define MXG_STATE_PG_RPT_JSON(WHERE)                                                         \
    "SELECT coalesce(jsonb_agg(jsonb_build_object('day', p.day, 'ptype', p.ptype,"            \
    " 'domain', p.domain, 'pstring', p.pstring, 'mxhost', p.mxhost,"                          \
    " 'ok', p.success, 'fail', p.failure, 'details', coalesce((SELECT"                        \
    " jsonb_agg(jsonb_build_object('rtype', f.result_type, 'sip',"                            \
    " f.sending_mta_ip, 'mxname', f.receiving_mx_hostname, 'helo',"                           \
    " f.receiving_mx_helo, 'rip', f.receiving_ip, 'info',"                                    \
    " f.additional_information, 'code', f.failure_reason_code, 'n', f.sessions))"             \
    " FROM mxguard_rpt_failure f WHERE f.policy_key = p.key), '[]'::jsonb))),"                \
    " '[]'::jsonb)::text FROM mxguard_rpt_policy p WHERE " WHERE

/* pg_claim.c: one claim (state.h), worker side. In: day, domain, ruas[0..n), the proposed
 * report_id, instance, lease_s. Out: report_id, payload (malloc'd), res[i], lease_left[i]. */
struct mxg_state_pg_claim_io {
    const char *day, *domain, *instance;
    char **ruas;
    int n;
    uint64_t lease_s;
    char report_id[128];           /* in: the proposal; out: the (day, domain)'s */
    char *payload;
    enum mxg_state_claim_res *res;
    int64_t *lease_left;
};
/* Runs the claim in one transaction on c; 0 or -1 with err. */
int mxg_state_pg_claim(PGconn *c, struct mxg_state_pg_claim_io *io, char *err, size_t errlen);
/* Marks instance's claim of (day, domain, rua) "sent" or "gave-up"; 0 or -1 with err. */
int mxg_state_pg_claim_done(PGconn *c, const char *day, const char *domain, const char *rua,
                            const char *instance, int gave_up, char *err, size_t errlen);

#endif
