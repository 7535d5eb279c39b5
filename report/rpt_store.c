/* report/rpt_store.c — the TLSRPT SQLite file: creation (0600), WAL mode,
 * schema versioning, adding an aggregate of counters in one transaction.
 * It knows struct rpt_store and SQLite only (the queries that need the
 * whole struct mxg_rpt are in rpt_query.c).
 *
 * Design:
 *  - One connection. While a background write is in flight the worker
 *    thread owns it; the loop thread waits for that write (rpt_db()) before
 *    any use, so the connection is never used by two threads at once
 *    (SQLite "multi-thread" mode, SQLITE_OPEN_NOMUTEX).
 *  - journal_mode=WAL, synchronous=NORMAL: a commit appends to the WAL
 *    without fsync; a crash of the process loses nothing committed, only a
 *    power cut may lose the last commits since the previous checkpoint.
 *  - Counters are added with UPSERT (ON CONFLICT ... DO UPDATE SET
 *    n = n + excluded.n): a write adds to what is stored, so the in-memory
 *    aggregate only ever holds deltas.
 *  - PRAGMA application_id marks the file as ours, user_version holds the
 *    schema version (migrations[v] takes version v to v+1); a newer or a
 *    foreign database is refused.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../core/log.h"
#include "rpt_int.h"

#define RPT_SCHEMA_VERSION 2
#define RPT_APPLICATION_ID 0x4d584752 /* "MXGR" */
#define RPT_BUSY_MS 2000

static const char *const schema_v1 =
    "CREATE TABLE policy ("
    " id INTEGER PRIMARY KEY,"
    " day TEXT NOT NULL,"            /* UTC "YYYY-MM-DD" */
    " domain TEXT NOT NULL,"         /* policy domain, lower-case */
    " ptype TEXT NOT NULL,"          /* tlsa | sts | no-policy-found */
    " pstring TEXT NOT NULL,"        /* policy lines joined by LF, '' if none */
    " mxhost TEXT NOT NULL,"         /* mx-host patterns joined by LF, '' if none */
    " success INTEGER NOT NULL,"
    " failure INTEGER NOT NULL,"
    " UNIQUE (day, domain, ptype, pstring, mxhost));"
    "CREATE TABLE failure ("
    " policy_id INTEGER NOT NULL REFERENCES policy(id),"
    " result_type TEXT NOT NULL,"
    " sending_mta_ip TEXT NOT NULL,"         /* '' = absent, as the rest */
    " receiving_mx_hostname TEXT NOT NULL,"
    " receiving_mx_helo TEXT NOT NULL,"
    " receiving_ip TEXT NOT NULL,"
    " additional_information TEXT NOT NULL,"
    " failure_reason_code TEXT NOT NULL,"
    " sessions INTEGER NOT NULL,"
    " UNIQUE (policy_id, result_type, sending_mta_ip, receiving_mx_hostname,"
    "  receiving_mx_helo, receiving_ip, additional_information, failure_reason_code));"
    "CREATE TABLE report ("
    " day TEXT NOT NULL,"
    " domain TEXT NOT NULL,"
    " report_id TEXT NOT NULL,"
    " created_at INTEGER NOT NULL,"
    " PRIMARY KEY (day, domain));"
    "CREATE TABLE delivery ("
    " day TEXT NOT NULL,"
    " domain TEXT NOT NULL,"
    " rua TEXT NOT NULL,"
    " attempts INTEGER NOT NULL,"
    " next_attempt_at INTEGER NOT NULL,"
    " status TEXT NOT NULL CHECK (status IN ('pending', 'sent', 'gave-up')),"
    " last_error TEXT NOT NULL,"
    " updated_at INTEGER NOT NULL,"
    " PRIMARY KEY (day, domain, rua));"
    "CREATE INDEX delivery_due ON delivery (status, next_attempt_at);";

/* Version 2: the outbox of batches for a fleet's shared state (rpt_outbox.c). */
static const char *const schema_v2 =
    "CREATE TABLE outbox ("
    " id TEXT PRIMARY KEY,"          /* random, idempotent: pushed at most once */
    " created_at INTEGER NOT NULL,"
    " payload TEXT NOT NULL);";      /* the batch's counters as JSON */

static const char *const migrations[RPT_SCHEMA_VERSION] = {schema_v1, schema_v2};

static const char *const sql_up_pol =
    "INSERT INTO policy (day, ptype, domain, pstring, mxhost, success, failure)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
    " ON CONFLICT (day, domain, ptype, pstring, mxhost) DO UPDATE SET"
    " success = success + excluded.success, failure = failure + excluded.failure"
    " RETURNING id";
static const char *const sql_up_fail =
    "INSERT INTO failure (policy_id, result_type, sending_mta_ip, receiving_mx_hostname,"
    " receiving_mx_helo, receiving_ip, additional_information, failure_reason_code, sessions)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
    " ON CONFLICT (policy_id, result_type, sending_mta_ip, receiving_mx_hostname,"
    " receiving_mx_helo, receiving_ip, additional_information, failure_reason_code)"
    " DO UPDATE SET sessions = sessions + excluded.sessions";

/* ------------------------------------------------------------ open */

/* One integer or text from a one-row statement. 0 or -1. */
static int query1(sqlite3 *db, const char *sql, int64_t *num, char *txt, size_t txtlen)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (num)
            *num = sqlite3_column_int64(st, 0);
        if (txt) {
            const unsigned char *t = sqlite3_column_text(st, 0);
            snprintf(txt, txtlen, "%s", t ? (const char *)t : "");
        }
        rc = SQLITE_OK;
    } else if (rc == SQLITE_DONE) {
        rc = SQLITE_ERROR;
    }
    sqlite3_finalize(st);
    return rc == SQLITE_OK ? 0 : -1;
}

/* "PRAGMA journal_mode = WAL" into mode. While another process (a second worker starting at
 * the same moment) holds the file's write lock, SQLite answers BUSY at once, without the busy
 * handler (this connection holds a read lock): retried for up to RPT_BUSY_MS. 0 or -1. */
static int set_wal(sqlite3 *db, char *mode, size_t modelen)
{
    for (int waited = 0;; waited += 10) {
        if (query1(db, "PRAGMA journal_mode = WAL", NULL, mode, modelen) == 0)
            return 0;
        if ((sqlite3_errcode(db) & 0xff) != SQLITE_BUSY || waited >= RPT_BUSY_MS)
            return -1;
        sqlite3_sleep(10);
    }
}

/* The directory must exist and be writable (WAL files go next to the
 * database); the file is created 0600 if absent and must be a regular
 * file. 0 or MXG_RPT_EINVAL with err. */
static int prepare_file(const char *path, char *err, size_t errlen)
{
    char dir[PATH_MAX];
    const char *slash = strrchr(path, '/');
    struct stat st;
    int fd, created = 1;

    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else if (slash == path)
        snprintf(dir, sizeof dir, "/");
    else
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        rpt_set_err(err, errlen, "TLSRPT database %s: directory %s: %s", path, dir,
                    errno == ENOENT ? "does not exist" : "not a directory");
        return MXG_RPT_EINVAL;
    }
    if (access(dir, W_OK | X_OK) != 0) {
        rpt_set_err(err, errlen, "TLSRPT database %s: directory %s is not writable: %s", path,
                    dir, strerror(errno));
        return MXG_RPT_EINVAL;
    }
    fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOCTTY | O_NONBLOCK, 0600);
    if (fd < 0 && errno == EEXIST) {
        created = 0;
        fd = open(path, O_RDWR | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    }
    if (fd < 0) {
        rpt_set_err(err, errlen, "TLSRPT database %s: cannot %s it: %s", path,
                    created ? "create" : "open", strerror(errno));
        return MXG_RPT_EINVAL;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        rpt_set_err(err, errlen, "TLSRPT database %s: not a regular file", path);
        close(fd);
        return MXG_RPT_EINVAL;
    }
    /* exactly 0600 whatever the umask; SQLite gives -wal/-shm the same mode */
    if (created && fchmod(fd, 0600) != 0) {
        rpt_set_err(err, errlen, "TLSRPT database %s: chmod 0600: %s", path, strerror(errno));
        close(fd);
        return MXG_RPT_EINVAL;
    }
    close(fd);
    return 0;
}

/* Bring the schema to RPT_SCHEMA_VERSION in one transaction. 0 or -1. */
static int setup_schema(sqlite3 *db, const char *path, char *err, size_t errlen)
{
    int64_t version = 0, appid = 0, objects = 0;
    char sql[64];

    if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
        goto fail_msg;
    if (query1(db, "PRAGMA user_version", &version, NULL, 0) ||
        query1(db, "PRAGMA application_id", &appid, NULL, 0) ||
        query1(db, "SELECT count(*) FROM sqlite_master", &objects, NULL, 0))
        goto fail_msg;
    if (appid != RPT_APPLICATION_ID && (appid != 0 || objects != 0)) {
        rpt_set_err(err, errlen, "TLSRPT database %s: not an mxguard TLSRPT database", path);
        goto fail;
    }
    if (version > RPT_SCHEMA_VERSION || version < 0) {
        rpt_set_err(err, errlen,
                    "TLSRPT database %s: schema version %lld is not one this mxguard knows (%d)",
                    path, (long long)version, RPT_SCHEMA_VERSION);
        goto fail;
    }
    for (int64_t v = version; v < RPT_SCHEMA_VERSION; v++)
        if (sqlite3_exec(db, migrations[v], NULL, NULL, NULL) != SQLITE_OK)
            goto fail_msg;
    if (version != RPT_SCHEMA_VERSION) {
        snprintf(sql, sizeof sql, "PRAGMA application_id = %d", RPT_APPLICATION_ID);
        if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK)
            goto fail_msg;
        snprintf(sql, sizeof sql, "PRAGMA user_version = %d", RPT_SCHEMA_VERSION);
        if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK)
            goto fail_msg;
    }
    if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
        goto fail_msg;
    if (version == 0)
        LOG_I(RPT_COMP, "created %s (schema version %d)", path, RPT_SCHEMA_VERSION);
    else if (version != RPT_SCHEMA_VERSION)
        LOG_N(RPT_COMP, "%s: schema migrated from version %lld to %d", path, (long long)version,
              RPT_SCHEMA_VERSION);
    return 0;
fail_msg:
    rpt_set_err(err, errlen, "TLSRPT database %s: %s", path, sqlite3_errmsg(db));
fail:
    sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    return -1;
}

/* Contract: see rpt_int.h. */
int rpt_store_open(struct rpt_store *s, const char *path, char *err, size_t errlen)
{
    char mode[16];
    int rc;
    struct {
        sqlite3_stmt **slot;
        const char *sql;
    } defs[] = {
        {&s->begin, "BEGIN IMMEDIATE"}, {&s->commit, "COMMIT"},  {&s->rollback, "ROLLBACK"},
        {&s->up_pol, sql_up_pol},       {&s->up_fail, sql_up_fail},
        {&s->ins_outbox, "INSERT INTO outbox (id, created_at, payload) VALUES (?1, ?2, ?3)"},
    };

    memset(s, 0, sizeof *s);
    if ((rc = prepare_file(path, err, errlen)) != 0)
        return rc;
    rc = sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        rpt_set_err(err, errlen, "TLSRPT database %s: %s", path,
                    s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
        goto fail;
    }
    sqlite3_extended_result_codes(s->db, 1);
    sqlite3_busy_timeout(s->db, RPT_BUSY_MS);
    /* the first read: a file that is not a database fails here */
    if (set_wal(s->db, mode, sizeof mode) ||
        strcmp(mode, "wal") != 0) {
        rpt_set_err(err, errlen, "TLSRPT database %s: cannot use WAL mode: %s", path,
                    sqlite3_errmsg(s->db));
        goto fail;
    }
    if (sqlite3_exec(s->db, "PRAGMA synchronous = NORMAL", NULL, NULL, NULL) != SQLITE_OK) {
        rpt_set_err(err, errlen, "TLSRPT database %s: %s", path, sqlite3_errmsg(s->db));
        goto fail;
    }
    if (setup_schema(s->db, path, err, errlen))
        goto fail;
    for (size_t i = 0; i < sizeof defs / sizeof defs[0]; i++) {
        if (sqlite3_prepare_v3(s->db, defs[i].sql, -1, SQLITE_PREPARE_PERSISTENT, defs[i].slot,
                               NULL) != SQLITE_OK) {
            rpt_set_err(err, errlen, "TLSRPT database %s: %s", path, sqlite3_errmsg(s->db));
            goto fail;
        }
    }
    return 0;
fail:
    rpt_store_close(s);
    return MXG_RPT_EDB;
}

/* Contract: see rpt_int.h. s may be closed already. */
void rpt_store_close(struct rpt_store *s)
{
    sqlite3_stmt **all[] = {&s->begin,  &s->commit,  &s->rollback,
                            &s->up_pol, &s->up_fail, &s->ins_outbox};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        sqlite3_finalize(*all[i]);
        *all[i] = NULL;
    }
    if (s->db && sqlite3_close(s->db) != SQLITE_OK)
        sqlite3_close_v2(s->db);
    s->db = NULL;
}

/* ------------------------------------------------------------ writes */

static int step_done(sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? 0 : -1;
}

static void bind_fields(sqlite3_stmt *st, int first, const char *const *f, int n)
{
    for (int i = 0; i < n; i++)
        sqlite3_bind_text(st, first + i, f[i], -1, SQLITE_STATIC);
}

/* Contract: see rpt_int.h. Runs on the worker thread: touches only s and t. */
int rpt_store_add(struct rpt_store *s, struct rpt_tab *t, char *err, size_t errlen)
{
    if (!s->db) {
        rpt_set_err(err, errlen, "database closed");
        return MXG_RPT_EDB;
    }
    if (step_done(s->begin))
        goto fail;
    /* policies first: their row ids key the failure details */
    for (struct rpt_ent *e = t->head; e; e = e->next) {
        int rc;
        if (e->pol)
            continue;
        bind_fields(s->up_pol, 1, e->f, RPT_POL_NF);
        sqlite3_bind_int64(s->up_pol, 6, (sqlite3_int64)e->ok);
        sqlite3_bind_int64(s->up_pol, 7, (sqlite3_int64)e->fail);
        rc = sqlite3_step(s->up_pol);
        if (rc == SQLITE_ROW)
            e->rowid = sqlite3_column_int64(s->up_pol, 0);
        if (rc == SQLITE_ROW)
            rc = sqlite3_step(s->up_pol);
        sqlite3_reset(s->up_pol);
        sqlite3_clear_bindings(s->up_pol);
        if (rc != SQLITE_DONE)
            goto fail_rollback;
    }
    for (struct rpt_ent *e = t->head; e; e = e->next) {
        if (!e->pol)
            continue;
        if (!e->pol->rowid) {
            rpt_set_err(err, errlen, "internal error: failure detail without its policy");
            goto rollback;
        }
        sqlite3_bind_int64(s->up_fail, 1, e->pol->rowid);
        bind_fields(s->up_fail, 2, e->f, RPT_DET_NF);
        sqlite3_bind_int64(s->up_fail, 9, (sqlite3_int64)e->fail);
        if (step_done(s->up_fail)) {
            sqlite3_clear_bindings(s->up_fail);
            goto fail_rollback;
        }
        sqlite3_clear_bindings(s->up_fail);
    }
    if (s->outbox && rpt_outbox_put(s, t, err, errlen) < 0)
        goto rollback;
    if (step_done(s->commit))
        goto fail_rollback;
    return 0;
fail_rollback:
    rpt_set_err(err, errlen, "%s", sqlite3_errmsg(s->db));
rollback:
    step_done(s->rollback);
    for (struct rpt_ent *e = t->head; e; e = e->next)
        e->rowid = 0;
    return MXG_RPT_EDB;
fail:
    rpt_set_err(err, errlen, "%s", sqlite3_errmsg(s->db));
    return MXG_RPT_EDB;
}
