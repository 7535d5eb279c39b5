/* policy/sts_cache.c — see sts_cache.h.
 *
 * Design:
 *  - One SQLite connection per struct mxg_sts_cache, with every statement
 *    prepared once at open and kept in the struct (reset after each use, so
 *    no read transaction outlives a call and checkpoints are never held up).
 *  - journal_mode=WAL (persistent in the file): readers and the writer do
 *    not block each other, and a commit is one append to the -wal file.
 *  - synchronous=NORMAL, not FULL: in WAL mode NORMAL still survives a crash
 *    of the process (the WAL is written before COMMIT returns) and never
 *    corrupts the database; only a power cut / OS crash may lose the last
 *    transactions since the previous checkpoint. A cached policy lost that
 *    way is simply refetched (the same as a first contact with the domain),
 *    which is not worth an fsync on every put from the event loop.
 *  - busy_timeout (MXG_STS_CACHE_BUSY_MS): only another process on the same
 *    file (an admin tool) can hold the lock; waiting a little beats failing,
 *    waiting long would stall the loop (calls are synchronous).
 *  - Every call is one transaction: writes run BEGIN IMMEDIATE ... COMMIT
 *    (the write lock is taken up front, so a busy database is waited for by
 *    the busy handler instead of failing at the upgrade), reads are a single
 *    SELECT (an implicit read transaction: one consistent snapshot, also
 *    for the whole of foreach).
 *  - Schema versioning: PRAGMA user_version holds the schema version
 *    (STS_SCHEMA_VERSION); PRAGMA application_id marks the file as ours.
 *    Open creates the schema of a new (empty) file, runs the migrations of
 *    an older one (migrations[] below: step i takes version i to i+1, each
 *    in the same transaction as the version bump), refuses a file from a
 *    newer mxguard, and refuses a database that is not ours.
 *  - The file is created by us with mode 0600 before SQLite opens it; SQLite
 *    gives the -wal and -shm files the mode of the database file. Open
 *    checks the directory first (exists, is a directory, writable: WAL mode
 *    creates files next to the database) so the error says what is wrong.
 *  - A corrupt file fails open: "file is not a database" from the header,
 *    and PRAGMA quick_check for damage behind a valid header (the cache is
 *    small: one short row per policy domain).
 *  - Errors after open are logged (component "sts-cache") with the SQLite
 *    message and returned as -1; a failed write is rolled back.
 *  - Domains: COLLATE NOCASE on the key, so get/put/touch/delete match in
 *    any ASCII case (it folds ASCII only: callers pass A-labels). A put
 *    replaces the row whatever its spelling; the row takes the new one.
 *  - foreach: fn may call get, put, touch and delete on the same cache (not
 *    foreach: a nested call returns -1); rows changed during the walk may or
 *    may not be visited (SQLite's rule for a table modified under a SELECT).
 */
#include "sts_cache.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "../core/log.h"

#define COMP "sts-cache"
#define MXG_STS_CACHE_BUSY_MS 1000
#define STS_SCHEMA_VERSION 2
#define STS_APPLICATION_ID 0x4d584753 /* "MXGS" */
#define STS_DOMAIN_MAX sizeof(((struct mxg_sts_cache_entry *)0)->domain)

struct mxg_sts_cache {
    sqlite3 *db;
    char path[PATH_MAX];
    int in_foreach;
    int outbox;     /* mxg_sts_cache_set_outbox: fresh rows are also copied to sts_outbox */
    sqlite3_stmt *begin, *commit, *rollback;
    sqlite3_stmt *get, *put, *touch, *del, *all;
    sqlite3_stmt *ob_copy, *ob_all, *ob_del;
};

/* ------------------------------------------------------------- schema */

/* Version 1: the table of sts_cache.h. */
static const char *const schema_v1 =
    "CREATE TABLE sts_policy ("
    " domain TEXT PRIMARY KEY COLLATE NOCASE,"
    " id TEXT,"
    " body BLOB,"
    " fetched_at INTEGER,"
    " expires_at INTEGER)";

/* migrations[v] takes a database at schema version v to v+1 (run inside
 * the open transaction). Index 0 creates the schema of an empty file.
 * A later version appends e.g. "ALTER TABLE sts_policy ADD COLUMN ..." and
 * bumps STS_SCHEMA_VERSION. */
static const char *const migrations[STS_SCHEMA_VERSION] = {
    schema_v1,
    /* 1 -> 2: the fleet's outbox (sts_cache.h "Outbox"): rows waiting for the shared state,
     * one per domain (a fresher row of the domain replaces it) */
    "CREATE TABLE sts_outbox ("
    " domain TEXT PRIMARY KEY COLLATE NOCASE,"
    " id TEXT,"
    " body BLOB,"
    " fetched_at INTEGER,"
    " expires_at INTEGER)",
};

/* ------------------------------------------------------------ helpers */

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    if (!err || errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* One integer from a one-row statement (a PRAGMA); 0 or -1. */
static int query_int(sqlite3 *db, const char *sql, int64_t *out)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            *out = sqlite3_column_int64(st, 0);
            rc = SQLITE_OK;
        } else if (rc == SQLITE_DONE) {
            rc = SQLITE_ERROR;
        }
    }
    sqlite3_finalize(st);
    return rc == SQLITE_OK ? 0 : -1;
}

/* One text value from a one-row statement, into out; 0 or -1. */
static int query_text(sqlite3 *db, const char *sql, char *out, size_t outlen)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            const unsigned char *t = sqlite3_column_text(st, 0);
            snprintf(out, outlen, "%s", t ? (const char *)t : "");
            rc = SQLITE_OK;
        } else if (rc == SQLITE_DONE) {
            rc = SQLITE_ERROR;
        }
    }
    sqlite3_finalize(st);
    return rc == SQLITE_OK ? 0 : -1;
}

/* "PRAGMA journal_mode = WAL" into mode. While another process (a second worker starting at
 * the same moment) holds the file's write lock, SQLite answers BUSY at once, without the busy
 * handler (this connection holds a read lock): retried for up to MXG_STS_CACHE_BUSY_MS.
 * 0 or -1. */
static int set_wal(sqlite3 *db, char *mode, size_t modelen)
{
    for (int waited = 0;; waited += 10) {
        if (query_text(db, "PRAGMA journal_mode = WAL", mode, modelen) == 0)
            return 0;
        if ((sqlite3_errcode(db) & 0xff) != SQLITE_BUSY || waited >= MXG_STS_CACHE_BUSY_MS)
            return -1;
        sqlite3_sleep(10);
    }
}

/* The directory part of path ("." when there is none, "/" for "/x"). */
static void dir_of(const char *path, char *out, size_t outlen)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        snprintf(out, outlen, ".");
    else if (slash == path)
        snprintf(out, outlen, "/");
    else
        snprintf(out, outlen, "%.*s", (int)(slash - path), path);
}

/* Check the directory and create the file (0600) if it does not exist.
 * Returns 0 or -1 with err set. */
static int prepare_file(const char *path, char *err, size_t errlen)
{
    char dir[PATH_MAX];
    struct stat st;
    int fd, created = 1;

    dir_of(path, dir, sizeof dir);
    if (stat(dir, &st) != 0) {
        set_err(err, errlen, "MTA-STS cache %s: directory %s: %s", path, dir,
                errno == ENOENT ? "does not exist" : strerror(errno));
        return -1;
    }
    if (!S_ISDIR(st.st_mode)) {
        set_err(err, errlen, "MTA-STS cache %s: %s is not a directory", path, dir);
        return -1;
    }
    if (access(dir, W_OK | X_OK) != 0) {
        set_err(err, errlen, "MTA-STS cache %s: directory %s is not writable: %s", path, dir,
                strerror(errno));
        return -1;
    }
    /* O_NONBLOCK: a FIFO at path must not hang open(); it is refused below */
    fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOCTTY | O_NONBLOCK, 0600);
    if (fd < 0 && errno == EEXIST) {
        created = 0;
        fd = open(path, O_RDWR | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    }
    if (fd < 0) {
        if (created)
            set_err(err, errlen, "MTA-STS cache %s: cannot create it in %s: %s", path, dir,
                    strerror(errno));
        else
            set_err(err, errlen, "MTA-STS cache %s: cannot open it: %s", path, strerror(errno));
        return -1;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        set_err(err, errlen, "MTA-STS cache %s: not a regular file", path);
        close(fd);
        return -1;
    }
    /* exactly 0600 whatever the umask (SQLite copies it to -wal and -shm) */
    if (created && fchmod(fd, 0600) != 0) {
        set_err(err, errlen, "MTA-STS cache %s: chmod 0600: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    close(fd);
    return 0;
}

/* Bring the schema to STS_SCHEMA_VERSION in one write transaction.
 * Returns 0 or -1 with err set. */
static int setup_schema(sqlite3 *db, const char *path, char *err, size_t errlen)
{
    int64_t version = 0, appid = 0, objects = 0;
    char sql[96];

    if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
        set_err(err, errlen, "MTA-STS cache %s: %s", path, sqlite3_errmsg(db));
        return -1;
    }
    if (query_int(db, "PRAGMA user_version", &version) ||
        query_int(db, "PRAGMA application_id", &appid) ||
        query_int(db, "SELECT count(*) FROM sqlite_master", &objects)) {
        set_err(err, errlen, "MTA-STS cache %s: %s", path, sqlite3_errmsg(db));
        goto fail;
    }
    if (appid != STS_APPLICATION_ID && (appid != 0 || objects != 0)) {
        set_err(err, errlen,
                "MTA-STS cache %s: not an mxguard MTA-STS cache (application_id %lld, %lld "
                "schema objects)", path, (long long)appid, (long long)objects);
        goto fail;
    }
    if (version > STS_SCHEMA_VERSION) {
        set_err(err, errlen,
                "MTA-STS cache %s: schema version %lld is newer than this mxguard's (%d)", path,
                (long long)version, STS_SCHEMA_VERSION);
        goto fail;
    }
    if (version < 0) {
        set_err(err, errlen, "MTA-STS cache %s: invalid schema version %lld", path,
                (long long)version);
        goto fail;
    }
    if (version == STS_SCHEMA_VERSION) {
        sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
        return 0;
    }
    for (int64_t v = version; v < STS_SCHEMA_VERSION; v++) {
        if (sqlite3_exec(db, migrations[v], NULL, NULL, NULL) != SQLITE_OK) {
            set_err(err, errlen, "MTA-STS cache %s: schema %lld -> %lld: %s", path, (long long)v,
                    (long long)v + 1, sqlite3_errmsg(db));
            goto fail;
        }
    }
    snprintf(sql, sizeof sql, "PRAGMA application_id = %d", STS_APPLICATION_ID);
    if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK)
        goto fail_msg;
    snprintf(sql, sizeof sql, "PRAGMA user_version = %d", STS_SCHEMA_VERSION);
    if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK)
        goto fail_msg;
    if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
        goto fail_msg;
    if (version == 0)
        LOG_I(COMP, "created %s (schema version %d)", path, STS_SCHEMA_VERSION);
    else
        LOG_N(COMP, "%s: schema migrated from version %lld to %d", path, (long long)version,
              STS_SCHEMA_VERSION);
    return 0;
fail_msg:
    set_err(err, errlen, "MTA-STS cache %s: %s", path, sqlite3_errmsg(db));
fail:
    sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    return -1;
}

struct stmt_def {
    size_t off;
    const char *sql;
};

static const struct stmt_def stmt_defs[] = {
    {offsetof(struct mxg_sts_cache, begin), "BEGIN IMMEDIATE"},
    {offsetof(struct mxg_sts_cache, commit), "COMMIT"},
    {offsetof(struct mxg_sts_cache, rollback), "ROLLBACK"},
    {offsetof(struct mxg_sts_cache, get),
     "SELECT domain, id, body, fetched_at, expires_at FROM sts_policy WHERE domain = ?1"},
    {offsetof(struct mxg_sts_cache, put),
     "INSERT OR REPLACE INTO sts_policy (domain, id, body, fetched_at, expires_at)"
     " VALUES (?1, ?2, ?3, ?4, ?5)"},
    {offsetof(struct mxg_sts_cache, touch),
     "UPDATE sts_policy SET fetched_at = ?2, expires_at = ?3 WHERE domain = ?1"},
    {offsetof(struct mxg_sts_cache, del), "DELETE FROM sts_policy WHERE domain = ?1"},
    {offsetof(struct mxg_sts_cache, all),
     "SELECT domain, id, body, fetched_at, expires_at FROM sts_policy ORDER BY domain"},
    {offsetof(struct mxg_sts_cache, ob_copy),
     "INSERT OR REPLACE INTO sts_outbox (domain, id, body, fetched_at, expires_at)"
     " SELECT domain, id, body, fetched_at, expires_at FROM sts_policy WHERE domain = ?1"},
    {offsetof(struct mxg_sts_cache, ob_all),
     "SELECT domain, id, body, fetched_at, expires_at FROM sts_outbox ORDER BY fetched_at"},
    {offsetof(struct mxg_sts_cache, ob_del),
     "DELETE FROM sts_outbox WHERE domain = ?1 AND id = ?2 AND fetched_at = ?3"},
};

static sqlite3_stmt **stmt_slot(struct mxg_sts_cache *c, size_t i)
{
    return (sqlite3_stmt **)(void *)((char *)c + stmt_defs[i].off);
}

/* ------------------------------------------------------------ open/close */

/* Contract: see sts_cache.h. err gets "MTA-STS cache PATH: reason". */
struct mxg_sts_cache *mxg_sts_cache_open(const char *path, char *err, size_t errlen)
{
    struct mxg_sts_cache *c = NULL;
    char mode[16], check[160];
    int rc;

    set_err(err, errlen, "%s", "");
    if (!path || !path[0]) {
        set_err(err, errlen, "MTA-STS cache: no path given");
        return NULL;
    }
    if (strlen(path) >= PATH_MAX) {
        set_err(err, errlen, "MTA-STS cache: path too long");
        return NULL;
    }
    if (prepare_file(path, err, errlen))
        return NULL;
    if (!(c = calloc(1, sizeof *c))) {
        set_err(err, errlen, "MTA-STS cache %s: out of memory", path);
        return NULL;
    }
    snprintf(c->path, sizeof c->path, "%s", path);

    rc = sqlite3_open_v2(path, &c->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        set_err(err, errlen, "MTA-STS cache %s: %s", path,
                c->db ? sqlite3_errmsg(c->db) : sqlite3_errstr(rc));
        goto fail;
    }
    sqlite3_extended_result_codes(c->db, 1);
    sqlite3_busy_timeout(c->db, MXG_STS_CACHE_BUSY_MS);

    /* The first read of the file: a non-database fails here ("file is not
     * a database"). journal_mode answers the mode actually in effect. */
    if (set_wal(c->db, mode, sizeof mode)) {
        set_err(err, errlen, "MTA-STS cache %s: %s", path, sqlite3_errmsg(c->db));
        goto fail;
    }
    if (strcmp(mode, "wal") != 0) {
        set_err(err, errlen, "MTA-STS cache %s: cannot use WAL mode (journal mode is %s)", path,
                mode);
        goto fail;
    }
    if (sqlite3_exec(c->db, "PRAGMA synchronous = NORMAL", NULL, NULL, NULL) != SQLITE_OK) {
        set_err(err, errlen, "MTA-STS cache %s: %s", path, sqlite3_errmsg(c->db));
        goto fail;
    }
    /* damage behind a valid header (quick_check answers "ok" or the problems) */
    check[0] = '\0';
    if (query_text(c->db, "PRAGMA quick_check(1)", check, sizeof check) ||
        strcmp(check, "ok") != 0) {
        for (char *nl = check; (nl = strchr(nl, '\n'));)
            *nl = ' '; /* "*** in database main ***\nPage 2: ..." on one line */
        set_err(err, errlen, "MTA-STS cache %s: corrupt database (%s)", path,
                check[0] ? check : sqlite3_errmsg(c->db));
        goto fail;
    }
    if (setup_schema(c->db, path, err, errlen))
        goto fail;
    for (size_t i = 0; i < sizeof stmt_defs / sizeof stmt_defs[0]; i++) {
        if (sqlite3_prepare_v3(c->db, stmt_defs[i].sql, -1, SQLITE_PREPARE_PERSISTENT,
                               stmt_slot(c, i), NULL) != SQLITE_OK) {
            set_err(err, errlen, "MTA-STS cache %s: %s", path, sqlite3_errmsg(c->db));
            goto fail;
        }
    }
    LOG_D(COMP, "opened %s", path);
    return c;
fail:
    mxg_sts_cache_close(c);
    return NULL;
}

/* Contract: c may be NULL. Finalises the statements and closes the database
 * (the last connection checkpoints the WAL and removes -wal/-shm). */
void mxg_sts_cache_close(struct mxg_sts_cache *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < sizeof stmt_defs / sizeof stmt_defs[0]; i++) {
        sqlite3_finalize(*stmt_slot(c, i));
        *stmt_slot(c, i) = NULL;
    }
    if (c->db) {
        int rc = sqlite3_close(c->db);
        if (rc != SQLITE_OK) {
            LOG_W(COMP, "%s: close: %s", c->path, sqlite3_errstr(rc));
            sqlite3_close_v2(c->db); /* frees it once the last statement goes */
        }
    }
    free(c);
}

/* ------------------------------------------------------------ rows */

/* Finish a statement after use: reset (ends its implicit transaction) and
 * drop the bindings (blob pointers of the caller). */
static void stmt_done(sqlite3_stmt *st)
{
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
}

/* Domain argument check: non-empty, fits in entry.domain. */
static int domain_ok(const char *domain)
{
    return domain && domain[0] && strnlen(domain, STS_DOMAIN_MAX) < STS_DOMAIN_MAX;
}

/* Copy the current row of st (domain, id, body, fetched_at, expires_at)
 * into e; the body is malloc'd and NUL-terminated (body_len excludes the
 * NUL). A row whose domain or id does not fit the entry (not written by
 * us) is refused. Returns 0 or -1 (malformed row, out of memory; logged). */
static int row_to_entry(struct mxg_sts_cache *c, sqlite3_stmt *st, struct mxg_sts_cache_entry *e)
{
    const unsigned char *dom = sqlite3_column_text(st, 0);
    int domlen = sqlite3_column_bytes(st, 0);
    const unsigned char *id = sqlite3_column_text(st, 1);
    int idlen = sqlite3_column_bytes(st, 1);
    const void *body = sqlite3_column_blob(st, 2);
    int bodylen = sqlite3_column_bytes(st, 2);

    memset(e, 0, sizeof *e);
    if (!dom || domlen <= 0 || (size_t)domlen >= sizeof e->domain || (id && (size_t)idlen >= sizeof e->id) ||
        bodylen < 0) {
        LOG_W(COMP, "%s: malformed row (domain \"%.60s\") ignored", c->path,
              dom ? (const char *)dom : "");
        return -1;
    }
    memcpy(e->domain, dom, (size_t)domlen);
    if (id)
        memcpy(e->id, id, (size_t)idlen);
    e->body_len = (size_t)bodylen;
    if (!(e->body = malloc(e->body_len + 1))) {
        LOG_W(COMP, "%s: out of memory reading %s (%zu octets)", c->path, e->domain, e->body_len);
        return -1;
    }
    if (e->body_len)
        memcpy(e->body, body, e->body_len);
    e->body[e->body_len] = '\0';
    e->fetched_at = sqlite3_column_int64(st, 3);
    e->expires_at = sqlite3_column_int64(st, 4);
    return 0;
}

/* Run a prepared write statement as one transaction (BEGIN IMMEDIATE ...
 * COMMIT; ROLLBACK on failure), followed in the same transaction by the
 * outbox copy of domain's row when also is set and st changed a row.
 * Returns the number of rows st changed, or -1 (logged, with what). The
 * statements are reset either way. */
static int write_tx_also(struct mxg_sts_cache *c, sqlite3_stmt *st, const char *what,
                         const char *domain, int also)
{
    int rc, changes = -1;

    rc = sqlite3_step(c->begin);
    sqlite3_reset(c->begin);
    if (rc != SQLITE_DONE) {
        LOG_W(COMP, "%s: %s %s: BEGIN: %s", c->path, what, domain, sqlite3_errmsg(c->db));
        stmt_done(st);
        return -1;
    }
    rc = sqlite3_step(st);
    if (rc == SQLITE_DONE)
        changes = sqlite3_changes(c->db);
    else
        LOG_W(COMP, "%s: %s %s: %s", c->path, what, domain, sqlite3_errmsg(c->db));
    stmt_done(st);
    if (changes > 0 && also) { /* the outbox row, durable with the cache row */
        if (sqlite3_bind_text(c->ob_copy, 1, domain, -1, SQLITE_STATIC) != SQLITE_OK ||
            sqlite3_step(c->ob_copy) != SQLITE_DONE) {
            LOG_W(COMP, "%s: %s %s: outbox: %s", c->path, what, domain, sqlite3_errmsg(c->db));
            changes = -1;
        }
        stmt_done(c->ob_copy);
    }
    if (changes >= 0) {
        rc = sqlite3_step(c->commit);
        sqlite3_reset(c->commit);
        if (rc == SQLITE_DONE)
            return changes;
        LOG_W(COMP, "%s: %s %s: COMMIT: %s", c->path, what, domain, sqlite3_errmsg(c->db));
    }
    /* the transaction may already be gone (e.g. after an I/O error) */
    if (!sqlite3_get_autocommit(c->db)) {
        sqlite3_step(c->rollback);
        sqlite3_reset(c->rollback);
    }
    return -1;
}

/* write_tx_also without the outbox copy. */
static int write_tx(struct mxg_sts_cache *c, sqlite3_stmt *st, const char *what,
                    const char *domain)
{
    return write_tx_also(c, st, what, domain, 0);
}

/* ------------------------------------------------------------ API */

/* Contract: see sts_cache.h. out is always initialised (body NULL unless
 * found); the body is NUL-terminated for convenience (body_len excludes
 * the NUL, and the body may itself contain NUL octets). */
int mxg_sts_cache_get(struct mxg_sts_cache *c, const char *domain, struct mxg_sts_cache_entry *out)
{
    int rc, ret;

    if (!out)
        return -1;
    memset(out, 0, sizeof *out);
    if (!c || !domain_ok(domain))
        return -1;
    if (sqlite3_bind_text(c->get, 1, domain, -1, SQLITE_TRANSIENT) != SQLITE_OK) {
        LOG_W(COMP, "%s: get %s: %s", c->path, domain, sqlite3_errmsg(c->db));
        stmt_done(c->get);
        return -1;
    }
    rc = sqlite3_step(c->get);
    if (rc == SQLITE_ROW) {
        ret = row_to_entry(c, c->get, out) == 0 ? 1 : -1;
    } else if (rc == SQLITE_DONE) {
        ret = 0;
    } else {
        LOG_W(COMP, "%s: get %s: %s", c->path, domain, sqlite3_errmsg(c->db));
        ret = -1;
    }
    stmt_done(c->get);
    if (ret < 0)
        mxg_sts_cache_entry_clear(out);
    return ret;
}

/* Contract: see sts_cache.h. e->domain non-empty, e->id NUL-terminated,
 * e->body may be NULL only when body_len is 0. A row with the same domain
 * in any case is replaced (the row takes e->domain's spelling). */
int mxg_sts_cache_put(struct mxg_sts_cache *c, const struct mxg_sts_cache_entry *e)
{
    return mxg_sts_cache_put_ex(c, e, 0);
}

/* Contract: see sts_cache.h (put, plus the outbox copy in the same transaction). */
int mxg_sts_cache_put_ex(struct mxg_sts_cache *c, const struct mxg_sts_cache_entry *e,
                         int outbox)
{
    sqlite3_stmt *st;
    int rc;

    if (!c || !e || !domain_ok(e->domain) || strnlen(e->id, sizeof e->id) >= sizeof e->id ||
        (!e->body && e->body_len)) {
        LOG_W(COMP, "put: invalid arguments");
        return -1;
    }
    st = c->put;
    rc = sqlite3_bind_text(st, 1, e->domain, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_text(st, 2, e->id, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK) {
        /* a NULL pointer would bind SQL NULL: an empty body is a zero-length blob */
        if (e->body_len == 0)
            rc = sqlite3_bind_zeroblob(st, 3, 0);
        else
            rc = sqlite3_bind_blob64(st, 3, e->body, (sqlite3_uint64)e->body_len, SQLITE_STATIC);
    }
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(st, 4, e->fetched_at);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(st, 5, e->expires_at);
    if (rc != SQLITE_OK) {
        LOG_W(COMP, "%s: put %s: %s", c->path, e->domain, sqlite3_errmsg(c->db));
        stmt_done(st);
        return -1;
    }
    return write_tx_also(c, st, "put", e->domain, outbox && c->outbox) < 0 ? -1 : 0;
}

/* Contract: see sts_cache.h. -1 also when no row of domain exists (not
 * logged as a problem: the caller asked about a row it no longer has). */
int mxg_sts_cache_touch(struct mxg_sts_cache *c, const char *domain, int64_t fetched_at,
                        int64_t expires_at)
{
    return mxg_sts_cache_touch_ex(c, domain, fetched_at, expires_at, 0);
}

/* Contract: see sts_cache.h (touch, plus the outbox copy in the same transaction). */
int mxg_sts_cache_touch_ex(struct mxg_sts_cache *c, const char *domain, int64_t fetched_at,
                           int64_t expires_at, int outbox)
{
    int n;
    if (!c || !domain_ok(domain))
        return -1;
    if (sqlite3_bind_text(c->touch, 1, domain, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_int64(c->touch, 2, fetched_at) != SQLITE_OK ||
        sqlite3_bind_int64(c->touch, 3, expires_at) != SQLITE_OK) {
        LOG_W(COMP, "%s: touch %s: %s", c->path, domain, sqlite3_errmsg(c->db));
        stmt_done(c->touch);
        return -1;
    }
    n = write_tx_also(c, c->touch, "touch", domain, outbox && c->outbox);
    if (n == 0)
        LOG_D(COMP, "%s: touch %s: no such row", c->path, domain);
    return n > 0 ? 0 : -1;
}

/* Contract: 0 (also when there was no row of domain), or -1. */
int mxg_sts_cache_delete(struct mxg_sts_cache *c, const char *domain)
{
    if (!c || !domain_ok(domain))
        return -1;
    if (sqlite3_bind_text(c->del, 1, domain, -1, SQLITE_STATIC) != SQLITE_OK) {
        LOG_W(COMP, "%s: delete %s: %s", c->path, domain, sqlite3_errmsg(c->db));
        stmt_done(c->del);
        return -1;
    }
    return write_tx(c, c->del, "delete", domain) < 0 ? -1 : 0;
}

/* Contract: see sts_cache.h; rows in domain order (case-insensitive), one
 * read snapshot; e->body is NUL-terminated as for get and freed after fn
 * returns. A malformed row is skipped (logged, not counted). Not
 * reentrant: a foreach from inside fn returns -1. */
int mxg_sts_cache_foreach(struct mxg_sts_cache *c,
                          void (*fn)(void *arg, const struct mxg_sts_cache_entry *e), void *arg)
{
    struct mxg_sts_cache_entry e;
    int rc, n = 0;

    if (!c || !fn || c->in_foreach)
        return -1;
    c->in_foreach = 1;
    while ((rc = sqlite3_step(c->all)) == SQLITE_ROW) {
        if (row_to_entry(c, c->all, &e) != 0)
            continue; /* malformed: skipped; out of memory: the next row may fit */
        fn(arg, &e);
        mxg_sts_cache_entry_clear(&e);
        n++;
    }
    if (rc != SQLITE_DONE) {
        LOG_W(COMP, "%s: foreach: %s", c->path, sqlite3_errmsg(c->db));
        n = -1;
    }
    stmt_done(c->all);
    c->in_foreach = 0;
    return n;
}

/* Contract: frees e->body and zeroes e; e may be NULL. */
void mxg_sts_cache_entry_clear(struct mxg_sts_cache_entry *e)
{
    if (!e)
        return;
    free(e->body);
    memset(e, 0, sizeof *e);
}

/* Contract: see sts_cache.h. */
void mxg_sts_cache_set_outbox(struct mxg_sts_cache *c, int on)
{
    if (c)
        c->outbox = on;
}

/* Contract: see sts_cache.h; one read snapshot, oldest fetch first. */
int mxg_sts_cache_outbox_take(struct mxg_sts_cache *c,
                              void (*fn)(void *arg, const struct mxg_sts_cache_entry *e),
                              void *arg)
{
    struct mxg_sts_cache_entry e;
    int rc, n = 0;
    if (!c || !fn)
        return -1;
    while ((rc = sqlite3_step(c->ob_all)) == SQLITE_ROW) {
        if (row_to_entry(c, c->ob_all, &e) != 0)
            continue;
        fn(arg, &e);
        mxg_sts_cache_entry_clear(&e);
        n++;
    }
    if (rc != SQLITE_DONE) {
        LOG_W(COMP, "%s: outbox: %s", c->path, sqlite3_errmsg(c->db));
        n = -1;
    }
    stmt_done(c->ob_all);
    return n;
}

/* Contract: see sts_cache.h; one transaction for the n keys. */
int mxg_sts_cache_outbox_done(struct mxg_sts_cache *c, const struct mxg_sts_cache_entry *keys,
                              int n)
{
    int rc;
    if (!c || n < 0 || (n && !keys))
        return -1;
    if (n == 0)
        return 0;
    rc = sqlite3_step(c->begin);
    sqlite3_reset(c->begin);
    if (rc != SQLITE_DONE) {
        LOG_W(COMP, "%s: outbox done: BEGIN: %s", c->path, sqlite3_errmsg(c->db));
        return -1;
    }
    for (int i = 0; i < n && rc == SQLITE_DONE; i++) {
        if (sqlite3_bind_text(c->ob_del, 1, keys[i].domain, -1, SQLITE_STATIC) != SQLITE_OK ||
            sqlite3_bind_text(c->ob_del, 2, keys[i].id, -1, SQLITE_STATIC) != SQLITE_OK ||
            sqlite3_bind_int64(c->ob_del, 3, keys[i].fetched_at) != SQLITE_OK)
            rc = SQLITE_ERROR;
        else
            rc = sqlite3_step(c->ob_del);
        stmt_done(c->ob_del);
    }
    if (rc == SQLITE_DONE) {
        rc = sqlite3_step(c->commit);
        sqlite3_reset(c->commit);
        if (rc == SQLITE_DONE)
            return 0;
    }
    LOG_W(COMP, "%s: outbox done: %s", c->path, sqlite3_errmsg(c->db));
    if (!sqlite3_get_autocommit(c->db)) {
        sqlite3_step(c->rollback);
        sqlite3_reset(c->rollback);
    }
    return -1;
}
