/* state/state.h — the state a fleet of mxguards shares (docs/ARCHITECTURE.md §Shared state).
 *
 * One contract, two backends, chosen by state.backend:
 *  - "sqlite": the instance is a fleet of one. Its SQLite files in state.directory (the
 *    MTA-STS cache, the TLSRPT store) are the whole state; publishing has nothing to do.
 *  - "postgresql": the SQLite files are this instance's local copy, and a PostgreSQL
 *    database (state.postgresql, libpq) is the shared one. Every decision still reads the
 *    local copy; this module pushes what the instance learned and pulls what the others
 *    learned, every state.sync_interval, on libuv's thread pool (never on the loop: libpq
 *    blocks while it connects and waits for answers). A push that cannot reach the database
 *    stays queued and is retried; a database outage never delays mail, it shows in the log
 *    (one line per change of the link state), in mxg_state_status() (metrics, `check`).
 *
 * Contract:
 *  - mxg_state_open() borrows loop and copies opts. It never connects on the caller's
 *    thread; the first sync starts from the loop right away.
 *  - Callbacks (the MTA-STS sink) run on the loop, never from inside the call that caused
 *    them; the row handed to the sink is valid during the call only (copy what you keep).
 *  - mxg_state_close() stops the timers; work in flight on the thread pool finishes and is
 *    discarded (the loop must run until then: its handles keep the loop alive).
 *  - Errors: 0 or -1, with a one-line reason in err where the function takes one.
 *  - mxg_state_migrate_now() is synchronous (for `mxguard state migrate`, never the daemon).
 *
 * TLSRPT counts: batches come from report/'s local durable outbox and are added to the
 * fleet's counters per (UTC day, policy domain, policy, failure detail) at most once: the
 * database keeps every batch id, and a batch whose id it has is only acknowledged.
 *
 * The policy list: the newest verified list (by its own timestamp) any member accepted;
 * members pull it and verify it themselves (policy/stlist.h) before it is used.
 *
 * MTA-STS rows (RFC 8461 §3.1: policy ids have no order): the most recent successful fetch
 * by the database's clock wins. The publisher says how many seconds ago it fetched the
 * policy (its age, measured on the publisher's own clock at the moment of the push), the
 * database turns that into its own time (clock_timestamp() - age), and a row is replaced
 * only by a newer fetch. Why an age and not a time stamp: the two clocks need not agree, and
 * a push delayed by an outage (or a restart) keeps its fetch's true age, so it can never
 * look newer than a fetch another instance made during the outage. While the instance
 * runs the age grows on the monotonic clock; a push replayed after a restart takes its age
 * from the wall clock that stamped the fetch (a step of that clock in between skews it by
 * the step). The database also keeps the rules of policy/sts_merge.c: a push that has
 * expired by its age is not stored (only acknowledged), and the same id never shortens the
 * row's expiry. Pulled rows carry the database's times (Unix seconds).
 *
 * Durable pushes: the rows waiting for the database live in policy/'s outbox (the MTA-STS
 * cache's sts_outbox, written in the same transaction as the cache row; wired by app/ as a
 * struct mxg_state_sts_io). The module reads it once, at the first sync after
 * mxg_state_set_sts_io (a restart or a SIGKILL during an outage loses no push), and removes
 * a row once the database took it or found it older (acknowledged).
 *
 * Pruning (state.retention, state.prune_interval): every prune_interval a sync also deletes,
 * in bounded batches, the TLSRPT batch ids received, and the counters, report-ids and claims
 * of UTC days ended, more than retention ago, and the MTA-STS policies that expired more
 * than retention ago (schema 5 indexes both ranges). A batch id must outlive every replay of its
 * batch: an instance never pushes a batch older than state.outbox_max_age (report/'s outbox
 * drops it, logged), so the configuration refuses a retention shorter than
 * outbox_max_age + 1 day (core/config.c). */
#ifndef MXG_STATE_H
#define MXG_STATE_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#define MXG_STATE_ERR_MAX 256
#define MXG_STATE_NAME_MAX 256

struct mxg_state;

/* The link to the shared store, as metrics and `check` show it. */
enum mxg_state_link {
    MXG_STATE_LOCAL = 0,   /* sqlite backend: nothing shared, nothing to reach */
    MXG_STATE_CONNECTING,  /* postgresql: not yet tried */
    MXG_STATE_UP,          /* the last sync succeeded */
    MXG_STATE_DOWN,        /* the last sync failed (error in status.error) */
    MXG_STATE_SCHEMA,      /* the database's schema is older or newer than this mxguard's */
};

/* The options, filled in app/ from the configuration; every string is copied. */
struct mxg_state_opts {
    const char *backend;          /* "sqlite" or "postgresql" */
    const char *conninfo;         /* libpq connection string (postgresql) */
    const char *password_file;    /* "" or a file whose first line is the password */
    const char *instance;         /* "" = the host name */
    uint64_t sync_ms;             /* pull and push period */
    int migrate;                  /* create or migrate the schema when it is older */
    uint64_t retention_ms;        /* state.retention: 0 = never prune */
    uint64_t prune_ms;            /* state.prune_interval */
};

struct mxg_state_status {
    enum mxg_state_link link;
    const char *backend;          /* "sqlite" or "postgresql" (static) */
    char error[MXG_STATE_ERR_MAX];/* the last failure, "" when up */
    int64_t last_ok;              /* Unix time of the last successful sync, 0 = never */
    int schema_version;           /* the database's, 0 = unknown */
    size_t pending;               /* pushes waiting for the database */
    uint64_t syncs_ok, syncs_failed;
    uint64_t sts_pushed, sts_pulled;
    uint64_t rpt_batches;         /* TLSRPT batches the database took (or had already) */
    uint64_t pruned;              /* rows the prune deleted */
    int caught_up;                /* 1 once a sync pulled every row (all pages) and the policy
                                   * list the database had, and handed them to the sinks
                                   * (sqlite: always 1, nothing to pull) */
};

/* One MTA-STS cache row (the fields of policy/sts_cache.h, in this layer's own terms). */
struct mxg_state_sts_row {
    const char *domain;           /* A-label, any case */
    const char *id;
    const char *body;
    size_t body_len;
    int64_t fetched_at;           /* pushed: the publisher's clock; pulled: the database's */
    int64_t expires_at;
};

/* Called on the loop for each row another instance (or this one, on its way back)
 * stored, except rows of domains this instance has a push pending for. */
typedef void (*mxg_state_sts_sink)(void *arg, const struct mxg_state_sts_row *row);

/* TLSRPT batches (report/'s outbox, wired by app/): take calls put for up to max waiting
 * batches (id, JSON payload; copied) and returns how many, or -1; done removes the n batches
 * the database has committed (once per sync; one that stays is pushed again and only
 * acknowledged). Both run on the loop and must not wait there. */
struct mxg_state_rpt_io {
    int (*take)(void *arg, int max,
                void (*put)(void *parg, const char *id, const char *payload), void *parg);
    void (*done)(void *arg, const char *const *ids, int n);
    void *arg;
};

/* The durable MTA-STS outbox (policy/'s, wired by app/): take calls put for every waiting
 * row (copied; its fetched_at on the publisher's wall clock) and returns how many, or -1;
 * done removes the n rows the database acknowledged (matched by domain, id and fetched_at:
 * a row refreshed since stays). Both run on the loop. */
struct mxg_state_sts_io {
    int (*take)(void *arg, void (*put)(void *parg, const struct mxg_state_sts_row *row),
                void *parg);
    void (*done)(void *arg, const struct mxg_state_sts_row *rows, int n);
    void *arg;
};

/* The signed policy list (policy/stlist.h) exactly as a member verified it: the JSON, its
 * detached signature, its timestamp (Unix seconds). Members that pull it offer it to their
 * own store, which verifies the signature itself before using it. */
struct mxg_state_list {
    const char *json;
    size_t json_len;
    const char *sig;
    size_t sig_len;
    int64_t timestamp;
};
/* Called on the loop with a list newer than any this instance published or pulled. */
typedef void (*mxg_state_list_sink)(void *arg, const struct mxg_state_list *l);

/* TLSRPT report sending in a fleet (state/pg_claim.c; docs/ARCHITECTURE.md §Shared state):
 * one sender at a time for each (day, policy domain, rua). A claim takes, in one transaction,
 * the (day, domain)'s report-id (the first claimant's proposal; every later claim, takeovers
 * included, gets the same one) and, per rua, a lease of lease_s seconds unless another
 * instance holds a live lease or the fleet already sent (or gave up on) it. The claimant
 * also gets the fleet's counters of (day, domain) (outbox JSON, as mxg_state_rpt_dump), to
 * build the report from. An instance may renew its own claim (its retry after a failure).
 * claim_done marks a rua sent or given up (queued and pushed by the syncs until the database
 * has it): no instance sends it again. A claimant that dies leaves a lease that expires:
 * the next claim takes it over, with the same report-id. */
enum mxg_state_claim_res {
    MXG_STATE_CLAIM_MINE = 0, /* this instance sends it now */
    MXG_STATE_CLAIM_HELD,     /* another instance holds a live lease (lease_left seconds) */
    MXG_STATE_CLAIM_SENT,     /* the fleet sent it */
    MXG_STATE_CLAIM_GAVE_UP,  /* the fleet gave up on it */
};
struct mxg_state_claim {
    int ok;                   /* 1: the database answered; 0: nothing claimed (err says why) */
    const char *err;
    const char *report_id;    /* ok: the (day, domain)'s report-id */
    const char *payload;      /* ok: the fleet's counters of (day, domain) */
    const enum mxg_state_claim_res *res; /* ok: per rua */
    const int64_t *lease_left;/* ok: per rua, seconds left of another's lease (HELD) */
    int n;
};
/* Called exactly once on the loop (never from inside mxg_state_rpt_claim), also after
 * mxg_state_close() (then with ok 0, "closed": the caller frees its arg there and must not
 * use the module); c and its strings are valid during the call only. A caller that no
 * longer wants the answer ignores it (a claim taken then runs out its lease). */
typedef void (*mxg_state_claim_cb)(void *arg, const struct mxg_state_claim *c);
/* Starts a claim on the thread pool (its own connection). 0, or -1 (the sqlite backend,
 * bad arguments, out of memory; cb never runs). */
int mxg_state_rpt_claim(struct mxg_state *st, const char *day, const char *domain,
                        const char *const *ruas, int n, const char *report_id, uint64_t lease_s,
                        mxg_state_claim_cb cb, void *arg);
/* Marks this instance's claim of (day, domain, rua) sent (gave_up 0) or given up; queued
 * (copied) and pushed by the syncs until the database has it. 0 or -1. */
int mxg_state_rpt_claim_done(struct mxg_state *st, const char *day, const char *domain,
                             const char *rua, int gave_up);

/* The name table of enum mxg_state_link ("local", "connecting", "up", "down", "schema"). */
const char *mxg_state_link_name(enum mxg_state_link l);

/* Opens the backend opts->backend names; NULL with err set for an unknown backend or an
 * unreadable password file. */
struct mxg_state *mxg_state_open(uv_loop_t *loop, const struct mxg_state_opts *opts, char *err,
                                 size_t errlen);
/* Stops syncing and frees the module (see the contract). st may be NULL. */
void mxg_state_close(struct mxg_state *st);
/* Sets the MTA-STS sink (NULL: pulled rows are dropped). */
void mxg_state_set_sts_sink(struct mxg_state *st, mxg_state_sts_sink fn, void *arg);
/* Sets the TLSRPT batch source (copied; NULL: none). Each sync pushes the waiting batches,
 * each in one transaction that adds its counters to the fleet's only if the database has
 * not seen its id (exactly once), then calls done for it. */
void mxg_state_set_rpt_io(struct mxg_state *st, const struct mxg_state_rpt_io *io);
/* Sets the durable MTA-STS outbox (copied; NULL: none); its rows are queued at the next
 * sync (once), as if published with now = the wall clock then. */
void mxg_state_set_sts_io(struct mxg_state *st, const struct mxg_state_sts_io *io);
/* Queues row for the shared store (copied); a newer push for the same domain replaces an
 * older queued one. now is the caller's clock at the call (Unix seconds). 0, or -1 when it
 * cannot be queued (out of memory, queue full: logged). */
int mxg_state_sts_publish(struct mxg_state *st, const struct mxg_state_sts_row *row, int64_t now);
/* Queues the list for the shared store (copied; a newer queued one wins); the database
 * keeps the newest by timestamp. 0 or -1. */
int mxg_state_list_publish(struct mxg_state *st, const struct mxg_state_list *l);
/* Sets the policy list sink (NULL: pulled lists are dropped). */
void mxg_state_set_list_sink(struct mxg_state *st, mxg_state_list_sink fn, void *arg);
/* Starts a sync now unless one is running (tests, SIGUSR1). */
void mxg_state_sync_now(struct mxg_state *st);
/* Fills out with the link state and counters. */
void mxg_state_status(const struct mxg_state *st, struct mxg_state_status *out);

/* `mxguard state migrate`: connects, creates or migrates the schema under the database's
 * advisory lock, synchronously. Returns the schema version now in force (>0), or -1 with
 * err set. *from gets the version found (0 = none). */
int mxg_state_migrate_now(const struct mxg_state_opts *opts, int *from, char *err, size_t errlen);
/* `mxguard report list|show|export` of a fleet: connects once, synchronously, and returns
 * the fleet's TLSRPT counters of UTC day day (NULL: every day) as one malloc'd JSON text in
 * report/'s outbox format (caller frees). 0, or -1 with err (also for the sqlite backend:
 * its counters are the local file's). */
int mxg_state_rpt_dump(const struct mxg_state_opts *opts, const char *day, char **payload,
                       char *err, size_t errlen);
/* `mxguard check`: connects once, synchronously, and reports the link and the schema
 * version into out. 0 reachable, -1 not (out->error says why). */
int mxg_state_probe(const struct mxg_state_opts *opts, struct mxg_state_status *out);

#endif
