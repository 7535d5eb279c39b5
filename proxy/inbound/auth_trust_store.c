/* proxy/inbound/auth_trust_store.c — the trusted-address memory on disk
 * (STATE_DIR/auth-trust.db, SQLite in WAL mode); see auth.h.
 *
 * Why on disk: the memory exists so that a legitimate client is never
 * locked out by an attacker guessing its user's password. Lost on every
 * restart, it would leave that client refused from the first lockout after
 * a restart until the attacker stops. Lockouts themselves stay in memory (a
 * restart only gives an attacker a fresh allowance).
 *
 * One row per (address key, user) with the time of the last success (unix
 * milliseconds). The table in memory is authoritative while running; the
 * file is written on each success and read once, when the table is made.
 * Rows past auth.trusted_address_lifetime are deleted when read; beyond
 * auth.trusted_addresses rows the oldest are deleted now and then. A file
 * that cannot be opened or written costs the memory across restarts, never
 * a check: the error is logged and the table works in memory. */
#include "auth.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../core/log.h"

#define PRUNE_EVERY 256 /* successes between two row-count prunes */

struct mxg_auth_trust_store {
    sqlite3 *db;
    sqlite3_stmt *put;
    int max_rows;
    unsigned puts;
};

void mxg_auth_trust_store_close(struct mxg_auth_trust_store *st)
{
    if (!st)
        return;
    sqlite3_finalize(st->put);
    sqlite3_close(st->db);
    free(st);
}

struct mxg_auth_trust_store *mxg_auth_trust_store_open(const char *dir, int max_rows, char *err,
                                                       size_t errlen)
{
    char path[4096];
    if (snprintf(path, sizeof path, "%s/auth-trust.db", dir) >= (int)sizeof path) {
        snprintf(err, errlen, "%s/auth-trust.db: path too long", dir);
        return NULL;
    }
    struct mxg_auth_trust_store *st = calloc(1, sizeof *st);
    if (!st) {
        snprintf(err, errlen, "%s: out of memory", path);
        return NULL;
    }
    st->max_rows = max_rows;
    int rc = sqlite3_open_v2(path, &st->db,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_busy_timeout(st->db, 1000);
        rc = sqlite3_exec(st->db,
                          "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;"
                          "CREATE TABLE IF NOT EXISTS trusted (addr TEXT NOT NULL, "
                          "user TEXT NOT NULL, last_ok INTEGER NOT NULL, "
                          "PRIMARY KEY (addr, user)) WITHOUT ROWID;",
                          NULL, NULL, NULL);
    }
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(st->db,
                                "INSERT INTO trusted (addr, user, last_ok) VALUES (?1, ?2, ?3) "
                                "ON CONFLICT (addr, user) DO UPDATE SET last_ok = "
                                "max(last_ok, excluded.last_ok)",
                                -1, &st->put, NULL);
    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "%s: %s", path, st->db ? sqlite3_errmsg(st->db) : sqlite3_errstr(rc));
        mxg_auth_trust_store_close(st);
        return NULL;
    }
    return st;
}

/* Keep the newest max_rows rows. */
static void prune_rows(struct mxg_auth_trust_store *st)
{
    char sql[200];
    snprintf(sql, sizeof sql,
             "DELETE FROM trusted WHERE (addr, user) NOT IN (SELECT addr, user FROM trusted "
             "ORDER BY last_ok DESC LIMIT %d)", st->max_rows);
    if (sqlite3_exec(st->db, sql, NULL, NULL, NULL) != SQLITE_OK)
        LOG_W("auth", "trusted addresses: pruning the file failed: %s", sqlite3_errmsg(st->db));
}

int mxg_auth_trust_store_load(struct mxg_auth_trust_store *st, struct mxg_auth_throttle *t,
                              uint64_t now_ms, uint64_t lifetime_ms)
{
    if (!st || !t)
        return 0;
    char sql[120];
    snprintf(sql, sizeof sql, "DELETE FROM trusted WHERE last_ok <= %lld OR last_ok > %lld",
             (long long)(now_ms > lifetime_ms ? now_ms - lifetime_ms : 0),
             (long long)now_ms + 86400000LL); /* from a clock that was a day ahead: distrust */
    if (sqlite3_exec(st->db, sql, NULL, NULL, NULL) != SQLITE_OK)
        LOG_W("auth", "trusted addresses: expiring old entries failed: %s",
              sqlite3_errmsg(st->db));
    prune_rows(st);
    sqlite3_stmt *q = NULL;
    int n = 0; /* oldest first: the newest end up most recently used */
    if (sqlite3_prepare_v2(st->db, "SELECT addr, user, last_ok FROM trusted ORDER BY last_ok",
                           -1, &q, NULL) != SQLITE_OK) {
        LOG_W("auth", "trusted addresses: reading the file failed: %s", sqlite3_errmsg(st->db));
        return -1;
    }
    while (sqlite3_step(q) == SQLITE_ROW) {
        const char *a = (const char *)sqlite3_column_text(q, 0);
        const char *u = (const char *)sqlite3_column_text(q, 1);
        if (a && u) {
            mxg_auth_trust_mark(t, a, u, (uint64_t)sqlite3_column_int64(q, 2));
            n++;
        }
    }
    sqlite3_finalize(q);
    return n;
}

int mxg_auth_trust_store_put(struct mxg_auth_trust_store *st, const char *addr_key,
                             const char *user, uint64_t when_ms)
{
    if (!st)
        return 0;
    sqlite3_reset(st->put);
    sqlite3_bind_text(st->put, 1, addr_key, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st->put, 2, user, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st->put, 3, (sqlite3_int64)when_ms);
    int rc = sqlite3_step(st->put);
    sqlite3_reset(st->put);
    sqlite3_clear_bindings(st->put);
    if (rc != SQLITE_DONE) {
        LOG_W("auth", "trusted addresses: writing the file failed: %s (kept in memory)",
              sqlite3_errmsg(st->db));
        return -1;
    }
    if (++st->puts % PRUNE_EVERY == 0)
        prune_rows(st);
    return 0;
}
