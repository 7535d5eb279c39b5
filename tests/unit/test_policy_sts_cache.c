/* tests/unit/test_policy_sts_cache.c — policy/sts_cache: the persistent
 * MTA-STS policy cache (SQLite, WAL), each test in its own mkdtemp()
 * directory: round trips (binary and 64 KiB bodies, empty body),
 * case-insensitive domains, replace, touch, delete, foreach (incl. changes
 * from inside the callback), persistence across close/open, expired rows,
 * file modes, schema version, and the open errors (corrupt file, foreign or
 * newer database, missing / unwritable directory, path is a directory). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "sqlite_lock_fixture.h"
#include <sqlite3.h>

#include "policy/sts_cache.h"

struct fx {
    char dir[64];
    char path[128];
    char err[256];
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    snprintf(f->dir, sizeof f->dir, "/tmp/mxg-sts-cache-XXXXXX");
    if (!mkdtemp(f->dir)) {
        free(f);
        return -1;
    }
    snprintf(f->path, sizeof f->path, "%s/mta-sts.db", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    const char *sfx[] = {"", "-wal", "-shm", "-journal"};
    char p[160];
    for (size_t i = 0; i < sizeof sfx / sizeof sfx[0]; i++) {
        snprintf(p, sizeof p, "%s%s", f->path, sfx[i]);
        unlink(p);
    }
    rmdir(f->dir);
    free(f);
    return 0;
}

static struct mxg_sts_cache *open_ok(struct fx *f)
{
    f->err[0] = '\0';
    struct mxg_sts_cache *c = mxg_sts_cache_open(f->path, f->err, sizeof f->err);
    if (!c)
        fail_msg("open %s: %s", f->path, f->err);
    return c;
}

static void entry(struct mxg_sts_cache_entry *e, const char *domain, const char *id,
                  const char *body, size_t len, int64_t fetched, int64_t expires)
{
    memset(e, 0, sizeof *e);
    snprintf(e->domain, sizeof e->domain, "%s", domain);
    snprintf(e->id, sizeof e->id, "%s", id);
    e->body = (char *)(uintptr_t)body;
    e->body_len = len;
    e->fetched_at = fetched;
    e->expires_at = expires;
}

static void put_s(struct mxg_sts_cache *c, const char *domain, const char *id, const char *body,
                  int64_t fetched, int64_t expires)
{
    struct mxg_sts_cache_entry e;
    entry(&e, domain, id, body, strlen(body), fetched, expires);
    assert_int_equal(mxg_sts_cache_put(c, &e), 0);
}

static const char policy1[] = "version: STSv1\r\nmode: enforce\r\nmx: mx1.example.com\r\n"
                              "max_age: 86400\r\n";

/* --------------------------------------------------------------- tests */

/* Another process (a second worker starting at the same moment) holds the new file's write
 * lock while this one opens it: the switch to WAL mode waits (SQLite answers it BUSY at
 * once, without its busy handler) instead of failing the start. */
static void t_open_while_another_writes(void **state)
{
    struct fx *f = *state;
    pid_t pid = lock_holder_start(f->path, 300); /* the other worker, for 300 ms */
    mxg_sts_cache_close(open_ok(f));
    lock_holder_wait(pid);
}

static void t_roundtrip(void **state)
{
    struct fx *f = *state;
    struct mxg_sts_cache *c = open_ok(f);
    struct mxg_sts_cache_entry e, g;

    /* text body */
    put_s(c, "example.com", "20240101", policy1, 1700000000, 1700086400);
    assert_int_equal(mxg_sts_cache_get(c, "example.com", &g), 1);
    assert_string_equal(g.domain, "example.com");
    assert_string_equal(g.id, "20240101");
    assert_int_equal(g.body_len, strlen(policy1));
    assert_memory_equal(g.body, policy1, strlen(policy1));
    assert_int_equal(g.body[g.body_len], '\0'); /* NUL-terminated for text parsers */
    assert_int_equal(g.fetched_at, 1700000000);
    assert_int_equal(g.expires_at, 1700086400);
    mxg_sts_cache_entry_clear(&g);
    assert_null(g.body);

    /* 64 KiB of binary data with NUL octets, and 64-bit times */
    size_t n = 64 * 1024;
    char *big = malloc(n);
    assert_non_null(big);
    for (size_t i = 0; i < n; i++)
        big[i] = (char)(i * 7 % 251); /* every 251st octet is 0 */
    big[0] = '\0';
    big[n - 1] = '\0';
    entry(&e, "big.example", "abcdefghijklmnopqrstuvwxyz012345", big, n, INT64_C(-5),
          INT64_MAX);
    assert_int_equal(mxg_sts_cache_put(c, &e), 0);
    assert_int_equal(mxg_sts_cache_get(c, "big.example", &g), 1);
    assert_string_equal(g.id, "abcdefghijklmnopqrstuvwxyz012345"); /* 32 chars: the RFC max */
    assert_int_equal(g.body_len, n);
    assert_memory_equal(g.body, big, n);
    assert_int_equal(g.fetched_at, -5);
    assert_int_equal(g.expires_at, INT64_MAX);
    mxg_sts_cache_entry_clear(&g);
    free(big);

    /* empty body (NULL pointer with length 0): a zero-length body, not an error */
    entry(&e, "empty.example", "1", NULL, 0, 1, 2);
    assert_int_equal(mxg_sts_cache_put(c, &e), 0);
    assert_int_equal(mxg_sts_cache_get(c, "empty.example", &g), 1);
    assert_int_equal(g.body_len, 0);
    assert_non_null(g.body);
    assert_string_equal(g.body, "");
    mxg_sts_cache_entry_clear(&g);

    /* missing */
    assert_int_equal(mxg_sts_cache_get(c, "nope.example", &g), 0);
    assert_null(g.body);
    mxg_sts_cache_close(c);
}

static void t_case_insensitive(void **state)
{
    struct fx *f = *state;
    struct mxg_sts_cache *c = open_ok(f);
    struct mxg_sts_cache_entry g;

    put_s(c, "Example.COM", "a1", "body-a", 10, 20);
    assert_int_equal(mxg_sts_cache_get(c, "example.com", &g), 1);
    assert_string_equal(g.id, "a1");
    mxg_sts_cache_entry_clear(&g);
    assert_int_equal(mxg_sts_cache_get(c, "EXAMPLE.com", &g), 1);
    mxg_sts_cache_entry_clear(&g);
    /* another spelling replaces the row (one row, the new spelling) */
    put_s(c, "example.com", "b2", "body-b", 30, 40);
    assert_int_equal(mxg_sts_cache_get(c, "EXAMPLE.COM", &g), 1);
    assert_string_equal(g.domain, "example.com");
    assert_string_equal(g.id, "b2");
    assert_string_equal(g.body, "body-b");
    mxg_sts_cache_entry_clear(&g);
    assert_int_equal(mxg_sts_cache_touch(c, "EXAMPLE.Com", 50, 60), 0);
    assert_int_equal(mxg_sts_cache_delete(c, "eXample.com"), 0);
    assert_int_equal(mxg_sts_cache_get(c, "example.com", &g), 0);
    mxg_sts_cache_close(c);
}

static void t_replace(void **state)
{
    struct fx *f = *state;
    struct mxg_sts_cache *c = open_ok(f);
    struct mxg_sts_cache_entry g;

    put_s(c, "example.org", "old", "a long old policy body", 100, 200);
    put_s(c, "example.org", "new", "short", 300, 400);
    assert_int_equal(mxg_sts_cache_get(c, "example.org", &g), 1);
    assert_string_equal(g.id, "new");
    assert_int_equal(g.body_len, 5);
    assert_string_equal(g.body, "short");
    assert_int_equal(g.fetched_at, 300);
    assert_int_equal(g.expires_at, 400);
    mxg_sts_cache_entry_clear(&g);
    mxg_sts_cache_close(c);
}

static void t_touch(void **state)
{
    struct fx *f = *state;
    struct mxg_sts_cache *c = open_ok(f);
    struct mxg_sts_cache_entry g;

    put_s(c, "example.net", "id1", policy1, 1000, 2000);
    assert_int_equal(mxg_sts_cache_touch(c, "example.net", 1500, 90000), 0);
    assert_int_equal(mxg_sts_cache_get(c, "example.net", &g), 1);
    assert_string_equal(g.id, "id1");                  /* unchanged */
    assert_string_equal(g.body, policy1);              /* unchanged */
    assert_int_equal(g.fetched_at, 1500);
    assert_int_equal(g.expires_at, 90000);
    mxg_sts_cache_entry_clear(&g);
    /* absent: -1, and nothing created */
    assert_int_equal(mxg_sts_cache_touch(c, "missing.example", 1, 2), -1);
    assert_int_equal(mxg_sts_cache_get(c, "missing.example", &g), 0);
    mxg_sts_cache_close(c);
}

static void t_delete(void **state)
{
    struct fx *f = *state;
    struct mxg_sts_cache *c = open_ok(f);
    struct mxg_sts_cache_entry g;

    put_s(c, "a.example", "1", "x", 1, 2);
    put_s(c, "b.example", "2", "y", 1, 2);
    assert_int_equal(mxg_sts_cache_delete(c, "a.example"), 0);
    assert_int_equal(mxg_sts_cache_get(c, "a.example", &g), 0);
    assert_int_equal(mxg_sts_cache_get(c, "b.example", &g), 1);
    mxg_sts_cache_entry_clear(&g);
    /* deleting what is not there is not an error */
    assert_int_equal(mxg_sts_cache_delete(c, "a.example"), 0);
    mxg_sts_cache_close(c);
}

struct walk {
    struct mxg_sts_cache *c;
    char seen[512];
    size_t total_body;
    int nested_rc;
    int delete_expired; /* delete rows with expires_at < 100 from inside fn */
};

static void walk_fn(void *arg, const struct mxg_sts_cache_entry *e)
{
    struct walk *w = arg;
    size_t o = strlen(w->seen);
    snprintf(w->seen + o, sizeof w->seen - o, "%s%s=%s:%lld", o ? " " : "", e->domain, e->id,
             (long long)e->expires_at);
    assert_non_null(e->body);
    assert_int_equal(e->body[e->body_len], '\0');
    w->total_body += e->body_len;
    w->nested_rc = mxg_sts_cache_foreach(w->c, walk_fn, w);
    if (w->delete_expired && e->expires_at < 100)
        assert_int_equal(mxg_sts_cache_delete(w->c, e->domain), 0);
}

static void t_foreach(void **state)
{
    struct fx *f = *state;
    struct mxg_sts_cache *c = open_ok(f);
    struct walk w;
    struct mxg_sts_cache_entry g;

    memset(&w, 0, sizeof w);
    w.c = c;
    assert_int_equal(mxg_sts_cache_foreach(c, walk_fn, &w), 0);
    assert_string_equal(w.seen, "");

    put_s(c, "b.example", "2", "bb", 1, 50);
    put_s(c, "A.example", "1", "a", 1, 500);
    put_s(c, "c.example", "3", "ccc", 1, 60);
    memset(&w, 0, sizeof w);
    w.c = c;
    w.nested_rc = 99;
    assert_int_equal(mxg_sts_cache_foreach(c, walk_fn, &w), 3);
    /* domain order, case-insensitive */
    assert_string_equal(w.seen, "A.example=1:500 b.example=2:50 c.example=3:60");
    assert_int_equal(w.total_body, 6);
    assert_int_equal(w.nested_rc, -1); /* no foreach inside foreach */

    /* the callback may delete (the typical purge of expired rows) */
    memset(&w, 0, sizeof w);
    w.c = c;
    w.delete_expired = 1;
    assert_int_equal(mxg_sts_cache_foreach(c, walk_fn, &w), 3);
    assert_int_equal(mxg_sts_cache_get(c, "b.example", &g), 0);
    assert_int_equal(mxg_sts_cache_get(c, "c.example", &g), 0);
    assert_int_equal(mxg_sts_cache_get(c, "a.example", &g), 1);
    mxg_sts_cache_entry_clear(&g);
    memset(&w, 0, sizeof w);
    w.c = c;
    assert_int_equal(mxg_sts_cache_foreach(c, walk_fn, &w), 1);
    assert_int_equal(mxg_sts_cache_foreach(c, NULL, NULL), -1);
    mxg_sts_cache_close(c);
}

static void t_persistence(void **state)
{
    struct fx *f = *state;
    struct mxg_sts_cache *c = open_ok(f);
    struct mxg_sts_cache_entry g;

    put_s(c, "example.com", "v1", policy1, 111, 222);
    put_s(c, "gone.example", "x", "x", 1, 2);
    assert_int_equal(mxg_sts_cache_delete(c, "gone.example"), 0);
    assert_int_equal(mxg_sts_cache_touch(c, "example.com", 333, 444), 0);
    mxg_sts_cache_close(c); /* a restart */

    c = open_ok(f);
    assert_int_equal(mxg_sts_cache_get(c, "EXAMPLE.COM", &g), 1);
    assert_string_equal(g.id, "v1");
    assert_string_equal(g.body, policy1);
    assert_int_equal(g.fetched_at, 333);
    assert_int_equal(g.expires_at, 444);
    mxg_sts_cache_entry_clear(&g);
    assert_int_equal(mxg_sts_cache_get(c, "gone.example", &g), 0);
    put_s(c, "second.example", "v2", "p", 5, 6);
    mxg_sts_cache_close(c);

    c = open_ok(f); /* and a third start sees both runs' writes */
    assert_int_equal(mxg_sts_cache_get(c, "second.example", &g), 1);
    mxg_sts_cache_entry_clear(&g);
    assert_int_equal(mxg_sts_cache_get(c, "example.com", &g), 1);
    mxg_sts_cache_entry_clear(&g);
    mxg_sts_cache_close(c);
}

/* Another process's view: WAL mode, schema version, the table's columns. */
static void t_file_format(void **state)
{
    struct fx *f = *state;
    struct stat st;
    char p[160];
    mode_t old = umask(0); /* the modes must not depend on the umask */
    struct mxg_sts_cache *c = open_ok(f);
    umask(old);

    put_s(c, "example.com", "v1", policy1, 1, 2);
    assert_int_equal(stat(f->path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    snprintf(p, sizeof p, "%s-wal", f->path);
    assert_int_equal(stat(p, &st), 0); /* WAL mode: the -wal file exists while open */
    assert_int_equal(st.st_mode & 07777, 0600);

    sqlite3 *db = NULL;
    sqlite3_stmt *s = NULL;
    assert_int_equal(sqlite3_open_v2(f->path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &s, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(s, 0), "wal");
    sqlite3_finalize(s);
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &s, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(s, 0), 2);
    sqlite3_finalize(s);
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "SELECT domain, id, typeof(body), length(body), fetched_at,"
                                        " expires_at FROM sts_policy WHERE domain = 'EXAMPLE.COM'",
                                        -1, &s, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(s, 0), "example.com");
    assert_string_equal((const char *)sqlite3_column_text(s, 2), "blob");
    assert_int_equal(sqlite3_column_int(s, 3), (int)strlen(policy1));
    sqlite3_finalize(s);
    sqlite3_close(db);
    mxg_sts_cache_close(c);
    /* closed cleanly: the WAL was checkpointed and removed */
    assert_int_not_equal(stat(p, &st), 0);
}

static void t_expired_returned(void **state)
{
    struct fx *f = *state;
    struct mxg_sts_cache *c = open_ok(f);
    struct mxg_sts_cache_entry g;
    int64_t now = (int64_t)time(NULL);

    put_s(c, "stale.example", "old", policy1, now - 2 * 86400, now - 86400);
    assert_int_equal(mxg_sts_cache_get(c, "stale.example", &g), 1);
    assert_true(g.expires_at < now);
    assert_string_equal(g.id, "old");
    mxg_sts_cache_entry_clear(&g);
    mxg_sts_cache_close(c);
}

static void write_file(const char *path, const void *data, size_t len)
{
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(data, 1, len, fp), len);
    assert_int_equal(fclose(fp), 0);
}

static void t_corrupt_file(void **state)
{
    struct fx *f = *state;
    char garbage[8192];

    for (size_t i = 0; i < sizeof garbage; i++)
        garbage[i] = (char)((i * 131 + 17) & 0xff);
    write_file(f->path, garbage, sizeof garbage);
    f->err[0] = '\0';
    assert_null(mxg_sts_cache_open(f->path, f->err, sizeof f->err));
    assert_non_null(strstr(f->err, f->path));
    assert_non_null(strstr(f->err, "not a database"));

    /* shorter than an SQLite header */
    write_file(f->path, "hello\n", 6);
    f->err[0] = '\0';
    assert_null(mxg_sts_cache_open(f->path, f->err, sizeof f->err));
    assert_non_null(strstr(f->err, "not a database"));

    /* a valid header in front of garbage pages */
    assert_int_equal(unlink(f->path), 0);
    struct mxg_sts_cache *c = open_ok(f);
    for (int i = 0; i < 50; i++) {
        char d[32];
        snprintf(d, sizeof d, "d%d.example", i);
        put_s(c, d, "x", policy1, 1, 2);
    }
    mxg_sts_cache_close(c);
    FILE *fp = fopen(f->path, "r+b");
    assert_non_null(fp);
    assert_int_equal(fseek(fp, 4096, SEEK_SET), 0); /* page 2 onwards */
    assert_int_equal(fwrite(garbage, 1, 4096, fp), 4096);
    assert_int_equal(fclose(fp), 0);
    f->err[0] = '\0';
    c = mxg_sts_cache_open(f->path, f->err, sizeof f->err);
    if (c)
        mxg_sts_cache_close(c);
    assert_null(c);
    assert_true(strstr(f->err, "corrupt") || strstr(f->err, "malformed"));
}

/* An SQLite database that is not ours, and one from a newer mxguard. */
static void t_foreign_and_newer(void **state)
{
    struct fx *f = *state;
    sqlite3 *db = NULL;

    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "CREATE TABLE t(x)", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    f->err[0] = '\0';
    assert_null(mxg_sts_cache_open(f->path, f->err, sizeof f->err));
    assert_non_null(strstr(f->err, "not an mxguard MTA-STS cache"));
    unlink(f->path);

    struct mxg_sts_cache *c = open_ok(f);
    mxg_sts_cache_close(c);
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "PRAGMA user_version = 7", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    f->err[0] = '\0';
    assert_null(mxg_sts_cache_open(f->path, f->err, sizeof f->err));
    assert_non_null(strstr(f->err, "schema version 7 is newer"));
}

static void t_bad_directory(void **state)
{
    struct fx *f = *state;
    char p[200], err[256];

    /* the directory does not exist (and is not created) */
    snprintf(p, sizeof p, "%s/no/such/dir/mta-sts.db", f->dir);
    err[0] = '\0';
    assert_null(mxg_sts_cache_open(p, err, sizeof err));
    assert_non_null(strstr(err, "does not exist"));
    snprintf(p, sizeof p, "%s/no", f->dir);
    assert_int_not_equal(access(p, F_OK), 0);

    /* unwritable whatever the uid (root ignores chmod): /proc */
    err[0] = '\0';
    assert_null(mxg_sts_cache_open("/proc/mxg-sts-cache-test.db", err, sizeof err));
    assert_non_null(strstr(err, "/proc/mxg-sts-cache-test.db"));
    assert_int_not_equal(err[0], '\0');

    /* the "directory" is a file */
    write_file(f->path, "", 0);
    snprintf(p, sizeof p, "%s/mta-sts.db", f->path);
    err[0] = '\0';
    assert_null(mxg_sts_cache_open(p, err, sizeof err));
    assert_non_null(strstr(err, "is not a directory"));
    unlink(f->path);

    /* the path is a directory */
    err[0] = '\0';
    assert_null(mxg_sts_cache_open(f->dir, err, sizeof err));
    assert_int_not_equal(err[0], '\0');

    /* no path */
    err[0] = '\0';
    assert_null(mxg_sts_cache_open("", err, sizeof err));
    assert_int_not_equal(err[0], '\0');
}

/* take callback: records "domain id fetched_at expires_at body_len;" */
static void ob_fn(void *arg, const struct mxg_sts_cache_entry *e)
{
    char *out = arg;
    size_t n = strlen(out);
    snprintf(out + n, 512 - n, "%s %s %lld %lld %zu;", e->domain, e->id, (long long)e->fetched_at,
             (long long)e->expires_at, e->body_len);
}

/* The fleet's outbox: only fresh rows with the outbox on, copied in the cache row's
 * transaction; it survives a reopen; done removes matching keys only. */
static void t_outbox(void **state)
{
    struct fx *f = *state;
    struct mxg_sts_cache *c = open_ok(f);
    struct mxg_sts_cache_entry e, keys[2];
    char out[512] = "";

    entry(&e, "a.example", "v1", policy1, strlen(policy1), 10, 100);
    assert_int_equal(mxg_sts_cache_put_ex(c, &e, 1), 0); /* outbox off: not copied */
    assert_int_equal(mxg_sts_cache_outbox_take(c, ob_fn, out), 0);
    mxg_sts_cache_set_outbox(c, 1);
    entry(&e, "b.example", "v2", policy1, strlen(policy1), 20, 200);
    assert_int_equal(mxg_sts_cache_put_ex(c, &e, 0), 0); /* not fresh (a pulled row) */
    assert_int_equal(mxg_sts_cache_outbox_take(c, ob_fn, out), 0);
    entry(&e, "c.example", "v3", policy1, strlen(policy1), 30, 300);
    assert_int_equal(mxg_sts_cache_put_ex(c, &e, 1), 0);
    assert_int_equal(mxg_sts_cache_touch_ex(c, "a.example", 40, 400, 1), 0); /* a published touch */
    assert_int_equal(mxg_sts_cache_touch_ex(c, "b.example", 41, 401, 0), 0);
    assert_int_equal(mxg_sts_cache_touch_ex(c, "none.example", 42, 402, 1), -1);
    mxg_sts_cache_close(c);
    c = open_ok(f); /* durable: the rows are still there after a reopen */
    assert_int_equal(mxg_sts_cache_outbox_take(c, ob_fn, out), 2);
    assert_string_equal(out, "c.example v3 30 300 68;a.example v1 40 400 68;");
    /* a refresh of c since the push: done for the old fetch leaves the new row */
    mxg_sts_cache_set_outbox(c, 1);
    entry(&e, "c.example", "v3", policy1, strlen(policy1), 35, 335);
    assert_int_equal(mxg_sts_cache_put_ex(c, &e, 1), 0);
    memset(keys, 0, sizeof keys);
    snprintf(keys[0].domain, sizeof keys[0].domain, "A.EXAMPLE");
    snprintf(keys[0].id, sizeof keys[0].id, "v1");
    keys[0].fetched_at = 40;
    snprintf(keys[1].domain, sizeof keys[1].domain, "c.example");
    snprintf(keys[1].id, sizeof keys[1].id, "v3");
    keys[1].fetched_at = 30;
    assert_int_equal(mxg_sts_cache_outbox_done(c, keys, 2), 0);
    out[0] = '\0';
    assert_int_equal(mxg_sts_cache_outbox_take(c, ob_fn, out), 1);
    assert_string_equal(out, "c.example v3 35 335 68;");
    keys[1].fetched_at = 35;
    assert_int_equal(mxg_sts_cache_outbox_done(c, keys + 1, 1), 0);
    assert_int_equal(mxg_sts_cache_outbox_take(c, ob_fn, out), 0);
    assert_int_equal(mxg_sts_cache_outbox_done(c, NULL, 0), 0);
    mxg_sts_cache_close(c);
}

static void t_invalid_args(void **state)
{
    struct fx *f = *state;
    struct mxg_sts_cache *c = open_ok(f);
    struct mxg_sts_cache_entry e, g;
    char longname[300];

    memset(longname, 'a', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    assert_int_equal(mxg_sts_cache_get(c, longname, &g), -1);
    assert_null(g.body);
    assert_int_equal(mxg_sts_cache_get(c, "", &g), -1);
    assert_int_equal(mxg_sts_cache_get(NULL, "x", &g), -1);
    assert_int_equal(mxg_sts_cache_put(c, NULL), -1);
    entry(&e, "", "1", "x", 1, 1, 2);
    assert_int_equal(mxg_sts_cache_put(c, &e), -1);
    entry(&e, "ok.example", "1", NULL, 5, 1, 2); /* NULL body with a length */
    assert_int_equal(mxg_sts_cache_put(c, &e), -1);
    assert_int_equal(mxg_sts_cache_touch(c, NULL, 1, 2), -1);
    assert_int_equal(mxg_sts_cache_delete(c, NULL), -1);
    mxg_sts_cache_entry_clear(NULL);
    mxg_sts_cache_close(NULL);
    /* nothing was written */
    struct walk w;
    memset(&w, 0, sizeof w);
    w.c = c;
    assert_int_equal(mxg_sts_cache_foreach(c, walk_fn, &w), 0);
    mxg_sts_cache_close(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(t_roundtrip, setup, teardown),
        cmocka_unit_test_setup_teardown(t_open_while_another_writes, setup, teardown),
        cmocka_unit_test_setup_teardown(t_case_insensitive, setup, teardown),
        cmocka_unit_test_setup_teardown(t_replace, setup, teardown),
        cmocka_unit_test_setup_teardown(t_touch, setup, teardown),
        cmocka_unit_test_setup_teardown(t_delete, setup, teardown),
        cmocka_unit_test_setup_teardown(t_foreach, setup, teardown),
        cmocka_unit_test_setup_teardown(t_persistence, setup, teardown),
        cmocka_unit_test_setup_teardown(t_file_format, setup, teardown),
        cmocka_unit_test_setup_teardown(t_expired_returned, setup, teardown),
        cmocka_unit_test_setup_teardown(t_corrupt_file, setup, teardown),
        cmocka_unit_test_setup_teardown(t_foreign_and_newer, setup, teardown),
        cmocka_unit_test_setup_teardown(t_bad_directory, setup, teardown),
        cmocka_unit_test_setup_teardown(t_outbox, setup, teardown),
        cmocka_unit_test_setup_teardown(t_invalid_args, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
