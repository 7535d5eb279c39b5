/* report/rpt_int.h — PRIVATE to report/: shared between its .c files, never
 * included from outside (the module's public header is tlsrpt.h).
 *
 *  - rpt_tab.c:      the in-memory aggregate (hash table of counters) and
 *                    the string clean-up applied before counting.
 *  - rpt_store.c:    the SQLite file: open/schema, adding an aggregate in
 *                    one transaction (struct rpt_store and SQLite only).
 *  - rpt_record.c:   struct mxg_rpt: open/close, recording, the flush timer
 *                    and the background write.
 *  - rpt_query.c:    days with data and purge (loop thread, via rpt_db()).
 *  - rpt_outbox.c:   a fleet's outbox of batches (tlsrpt.h "fleet outbox").
 *  - rpt_json.c:     the RFC 8460 report and its report-id.
 *  - rpt_fleet.c:    a fleet's report: built from the shared counters with the fleet's
 *                    report-id (the sender's gate, tlsrpt.h).
 *  - rpt_gzip.c:     gzip.
 *  - rpt_delivery.c: the delivery state table.
 *  - rpt_txt.c:      the _smtp._tls TXT record.
 *  - rpt_names.c:    name tables, error strings, small checks. */
#ifndef MXG_RPT_INT_H
#define MXG_RPT_INT_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#include <sqlite3.h>
#include <uv.h>

#include "tlsrpt.h"

#define RPT_COMP "tlsrpt"

/* ------------------------------------------------------------ rpt_tab.c */

/* Fields of a result as record() collects them (scratch layout). A policy
 * counter is keyed by the first RPT_POL_NF; a failure-detail counter by
 * its policy counter (pointer) and the last RPT_DET_NF. An absent optional
 * field is "". */
enum {
    RF_DAY = 0, RF_PTYPE, RF_DOMAIN, RF_PSTRING, RF_MXHOST, /* policy */
    RF_RTYPE, RF_SIP, RF_MXNAME, RF_HELO, RF_RIP, RF_INFO, RF_CODE, /* failure detail */
    RF_COUNT
};
#define RPT_POL_NF 5
#define RPT_DET_NF 7
#define RPT_MAX_NF 7

struct rpt_ent {
    struct rpt_ent *chain;  /* hash bucket */
    struct rpt_ent *next;   /* insertion order */
    struct rpt_ent *pol;    /* NULL: a policy counter; else a failure detail of
                               this policy counter (same table; part of the key) */
    uint64_t hash;
    uint64_t ok;            /* policy: successful sessions */
    uint64_t fail;          /* policy: failed sessions; detail: its sessions */
    int64_t rowid;          /* policy: row id, set while being written */
    int nf;
    const char *f[RPT_MAX_NF]; /* point into key: RF_DAY.. or RF_RTYPE.. */
    char key[];             /* the fields, each NUL-terminated */
};

/* A set of counters; zero-initialised = empty (no allocation until the
 * first insert). Single-threaded: owned by one thread at a time. */
struct rpt_tab {
    struct rpt_ent **bucket;
    size_t nbucket, count;
    size_t bytes;           /* memory held by the entries */
    struct rpt_ent *head, *tail;
    uint64_t sessions;      /* results counted in (for loss reports) */
};

/* Find the counter keyed by (pol, f[0..nf)) — pol NULL for a policy
 * counter — or create it with zero counts (new entries are appended to
 * the insertion order). NULL: out of memory or nf out of range. */
struct rpt_ent *rpt_tab_get(struct rpt_tab *t, struct rpt_ent *pol, const char *const *f, int nf);
/* Look up only; NULL if absent. */
struct rpt_ent *rpt_tab_find(const struct rpt_tab *t, const struct rpt_ent *pol,
                             const char *const *f, int nf);
/* Add every counter of src to dst (creating entries as needed). 0, or
 * MXG_RPT_ENOMEM (dst then holds part of src). */
int rpt_tab_merge(struct rpt_tab *dst, const struct rpt_tab *src);
/* Free the entries and reset t to empty. */
void rpt_tab_free(struct rpt_tab *t);

/* Copy at most max bytes of src into dst (cap >= max + 1) as valid UTF-8:
 * invalid bytes become '?', a sequence is never cut. NULL src → "".
 * Returns the length written. */
size_t rpt_clean_utf8(char *dst, size_t cap, const char *src, size_t max);

/* ------------------------------------------------------------ rpt_store.c */

/* The SQLite file. Statements for the hot path are prepared once. */
struct rpt_store {
    sqlite3 *db;
    sqlite3_stmt *begin, *commit, *rollback, *up_pol, *up_fail, *ins_outbox;
    int outbox;               /* also write each added batch to the outbox (a fleet) */
};

/* Create the file (0600) if needed, open it in WAL mode, bring the schema
 * to the current version. 0, or MXG_RPT_EDB / MXG_RPT_EINVAL /
 * MXG_RPT_ENOMEM with err "TLSRPT database PATH: reason". */
int rpt_store_open(struct rpt_store *s, const char *path, char *err, size_t errlen);
void rpt_store_close(struct rpt_store *s);
/* Add every counter of t in one transaction (all or nothing). Safe to run
 * on a worker thread: no logging, no shared state but s. 0 or MXG_RPT_EDB
 * with the SQLite message in err. */
int rpt_store_add(struct rpt_store *s, struct rpt_tab *t, char *err, size_t errlen);
/* rpt_outbox.c: inside rpt_store_add's transaction, the batch t as one outbox row (a new
 * random id, the counters as JSON). 0 or -1 with err. */
int rpt_outbox_put(struct rpt_store *s, const struct rpt_tab *t, char *err, size_t errlen);

/* ------------------------------------------------------------ rpt_record.c */

struct rpt_job;

struct mxg_rpt {
    uv_loop_t *loop;          /* NULL: no timer, explicit flushes only */
    uv_timer_t timer;
    uint64_t flush_ms;
    char path[PATH_MAX];
    struct rpt_store store;   /* the worker's while job is in flight, else the loop's */
    struct rpt_tab cur;       /* results not handed to a write yet */
    struct rpt_job *job;      /* the background write not yet settled, or NULL */
    uv_mutex_t mu;            /* guards job->done */
    uv_cond_t cv;
    int threaded;             /* background writes possible (SQLite thread-safe) */
    int closing;
    int pending;              /* callbacks still due: jobs, the timer's close */
    uint64_t dropped;         /* results dropped since the last report of it */
    unsigned fail_streak;     /* consecutive failed writes */
    uint64_t last_fail_log;   /* uv_now of the last failure log line */
    char *scratch;            /* RF_COUNT cleaned fields for record() */
};

/* The database, for loop-thread use: waits for (and settles) a background
 * write in flight first, so the connection is never used by two threads.
 * NULL once closed. */
sqlite3 *rpt_db(struct mxg_rpt *r);

/* ------------------------------------------------------------ rpt_json.c */

/* The stored report-id of (day, domain) in db (normalised strings), created if there is
 * none. 0 or MXG_RPT_EDB (err set). */
int rpt_report_id(sqlite3 *db, const char *day, const char *domain, const char *submitter,
                  char id[MXG_RPT_REPORT_ID_MAX], char *err, size_t errlen);

/* ------------------------------------------------------------ rpt_fleet.c */

/* The RFC 8460 report of (day, domain) built from a fleet's counters (payload: the outbox
 * JSON format) with report_id, through a temporary view file next to r's file (removed
 * again). *json_out malloc'd. 0 or a negative mxg_rpt_err with err. Loop thread. */
int rpt_fleet_report_json(struct mxg_rpt *r, const char *payload, const char *day,
                          const char *domain, const struct mxg_rpt_org *org,
                          const char *report_id, char **json_out, char *err, size_t errlen);

/* ------------------------------------------------------------ rpt_names.c */

void rpt_set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* 1 if day is "YYYY-MM-DD" with a real month/day (Gregorian), else 0. */
int rpt_day_ok(const char *day);
/* UTC day of t into out[MXG_RPT_DAY_LEN + 1]. 0, or -1 (out of range). */
int rpt_day_of(int64_t t, char out[MXG_RPT_DAY_LEN + 1]);
/* Domain as stored: ASCII lower-case, one trailing dot removed, 1..253
 * bytes, no control characters or spaces. 0, or -1. */
int rpt_domain_norm(const char *in, char out[MXG_RPT_DOMAIN_MAX]);

#endif
