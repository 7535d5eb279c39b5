/* tests/unit/test_report_record.c — report/ recording: the database file
 * (0600, WAL), the flush timer writing on its own (read back through a
 * second SQLite connection while mxguard still runs: what a crash would
 * keep), close writing everything (reopen: counts intact, "restart loses
 * nothing"), close while a background write is in flight under a steady
 * stream of results, failed writes kept and retried (database locked by
 * another process), the loop left with no handles, the structured log
 * line per failure (escaped), bad input dropped, the in-memory cap, an open while another
 * process holds the new file's write lock (two workers starting). */
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
#include <uv.h>

#include "core/log.h"
#include "report/tlsrpt.h"

#define T0 1714564800 /* 2024-05-01T12:00:00Z */

struct fx {
    char dir[64];
    char path[128];
    char err[256];
    uv_loop_t loop;
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    snprintf(f->dir, sizeof f->dir, "/tmp/mxg-rpt-rec-XXXXXX");
    if (!mkdtemp(f->dir)) {
        free(f);
        return -1;
    }
    snprintf(f->path, sizeof f->path, "%s/tlsrpt.db", f->dir);
    uv_loop_init(&f->loop);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    const char *sfx[] = {"", "-wal", "-shm", "-journal", ".log"};
    char p[160];
    uv_run(&f->loop, UV_RUN_DEFAULT);
    int lc = uv_loop_close(&f->loop);
    for (size_t i = 0; i < sizeof sfx / sizeof sfx[0]; i++) {
        snprintf(p, sizeof p, "%s%s", f->path, sfx[i]);
        unlink(p);
    }
    rmdir(f->dir);
    free(f);
    assert_int_equal(lc, 0); /* every handle of the module closed */
    return 0;
}

static struct mxg_rpt *open_ok(struct fx *f, uv_loop_t *loop, uint64_t flush_ms)
{
    struct mxg_rpt *r = mxg_rpt_open(loop, f->path, flush_ms, f->err, sizeof f->err);
    if (!r)
        fail_msg("open %s: %s", f->path, f->err);
    return r;
}

static const struct mxg_rpt_policy pol_tlsa = {
    .type = MXG_RPT_TLSA,
    .domain = "example.com",
    .policy_string = "3 1 1 AABB",
    .mx_host = "mx1.example.com",
};

static const struct mxg_rpt_result ok_res = {.success = 1};
static const struct mxg_rpt_result bad_res = {
    .success = 0,
    .result_type = "tlsa-invalid",
    .sending_mta_ip = "192.0.2.9",
    .receiving_mx_hostname = "mx1.example.com",
    .receiving_ip = "192.0.2.1",
    .failure_reason_code = "no TLSA match",
};

/* Totals as stored, read through an independent connection. */
static void db_totals(const char *path, int64_t *succ, int64_t *fail, int64_t *details)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    *succ = *fail = *details = 0;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "SELECT coalesce(sum(success),0), coalesce(sum(failure),0),"
                                        " (SELECT coalesce(sum(sessions),0) FROM failure)"
                                        " FROM policy",
                                        -1, &st, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    *succ = sqlite3_column_int64(st, 0);
    *fail = sqlite3_column_int64(st, 1);
    *details = sqlite3_column_int64(st, 2);
    sqlite3_finalize(st);
    sqlite3_close(db);
}

/* ------------------------------------------------------------ tests */

static void test_file_mode_and_wal(void **state)
{
    struct fx *f = *state;
    struct stat st;
    mode_t old = umask(0);
    struct mxg_rpt *r = open_ok(f, NULL, 0);
    umask(old);
    assert_int_equal(stat(f->path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    mxg_rpt_close(r);

    sqlite3 *db;
    sqlite3_stmt *s;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &s, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(s, 0), "wal");
    sqlite3_finalize(s);
    sqlite3_close(db);
}

/* Another process (a second worker starting at the same moment) holds the new file's write
 * lock while this one opens it: the switch to WAL mode waits (SQLite answers it BUSY at
 * once, without its busy handler) instead of failing the start. */
static void test_open_while_another_writes(void **state)
{
    struct fx *f = *state;
    pid_t pid = lock_holder_start(f->path, 300); /* the other worker, for 300 ms */
    struct mxg_rpt *r = mxg_rpt_open(NULL, f->path, 0, f->err, sizeof f->err);
    if (!r)
        fail_msg("%s", f->err);
    mxg_rpt_close(r);
    lock_holder_wait(pid);
}

static void test_open_errors(void **state)
{
    struct fx *f = *state;
    char p[200];
    FILE *fp;

    assert_null(mxg_rpt_open(NULL, "", 0, f->err, sizeof f->err));
    snprintf(p, sizeof p, "%s/nodir/tlsrpt.db", f->dir);
    assert_null(mxg_rpt_open(NULL, p, 0, f->err, sizeof f->err));
    assert_non_null(strstr(f->err, "does not exist"));
    /* a file that is not a database */
    fp = fopen(f->path, "w");
    assert_non_null(fp);
    fputs("this is not an SQLite database, not at all, no; padding padding padding\n", fp);
    fclose(fp);
    assert_null(mxg_rpt_open(NULL, f->path, 0, f->err, sizeof f->err));
    assert_non_null(strstr(f->err, "TLSRPT database"));
}

struct poll {
    uv_timer_t t;
    const char *path;
    int64_t want_s, want_f;
    int polls, done;
};

static void on_poll(uv_timer_t *t)
{
    struct poll *p = t->data;
    int64_t s, fl, d;
    db_totals(p->path, &s, &fl, &d);
    if ((s == p->want_s && fl == p->want_f && d == p->want_f) || ++p->polls > 500) {
        p->done = s == p->want_s && fl == p->want_f && d == p->want_f;
        uv_close((uv_handle_t *)t, NULL);
    }
}

/* Without close: the timer's background write makes the results durable
 * within a flush period; a second connection (or a crash) sees them. */
static void test_timer_flushes(void **state)
{
    struct fx *f = *state;
    struct mxg_rpt *r = open_ok(f, &f->loop, 20);
    int64_t s, fl, d;
    struct poll p = {.path = f->path, .want_s = 3, .want_f = 2};

    for (int i = 0; i < 3; i++)
        mxg_rpt_record(r, &pol_tlsa, &ok_res, T0 + i);
    mxg_rpt_record(r, &pol_tlsa, &bad_res, T0);
    mxg_rpt_record(r, &pol_tlsa, &bad_res, T0 + 5);
    db_totals(f->path, &s, &fl, &d);
    assert_int_equal(s + fl, 0); /* nothing written by record() itself */

    uv_timer_init(&f->loop, &p.t);
    p.t.data = &p;
    uv_timer_start(&p.t, on_poll, 10, 10);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_true(p.done);

    /* more results, still no close: written by the next ticks */
    p.done = p.polls = 0;
    p.want_s = 4;
    mxg_rpt_record(r, &pol_tlsa, &ok_res, T0);
    uv_timer_init(&f->loop, &p.t);
    uv_timer_start(&p.t, on_poll, 10, 10);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_true(p.done);

    mxg_rpt_close(r);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    db_totals(f->path, &s, &fl, &d);
    assert_int_equal(s, 4);
    assert_int_equal(fl, 2);
}

/* The timer never fires (1 h): close alone writes everything; a reopened
 * database has the counts, and a second run adds to them. */
static void test_close_flushes_restart(void **state)
{
    struct fx *f = *state;
    struct mxg_rpt *r = open_ok(f, &f->loop, 3600 * 1000);
    int64_t s, fl, d;

    for (int i = 0; i < 100; i++)
        mxg_rpt_record(r, &pol_tlsa, i % 10 ? &ok_res : &bad_res, T0 + i);
    db_totals(f->path, &s, &fl, &d);
    assert_int_equal(s + fl, 0);
    mxg_rpt_close(r); /* SIGTERM path */
    uv_run(&f->loop, UV_RUN_DEFAULT);
    db_totals(f->path, &s, &fl, &d);
    assert_int_equal(s, 90);
    assert_int_equal(fl, 10);
    assert_int_equal(d, 10);

    /* restart: the same counters go on */
    r = open_ok(f, &f->loop, 3600 * 1000);
    mxg_rpt_record(r, &pol_tlsa, &ok_res, T0);
    mxg_rpt_record(r, &pol_tlsa, &bad_res, T0);
    mxg_rpt_close(r);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    db_totals(f->path, &s, &fl, &d);
    assert_int_equal(s, 91);
    assert_int_equal(fl, 11);
    assert_int_equal(d, 11);

    /* the report agrees */
    r = open_ok(f, NULL, 0);
    struct mxg_rpt_org org = {"Org", "mailto:t@example.org", "example.org"};
    char *json = NULL;
    assert_int_equal(mxg_rpt_report_json(r, "2024-05-01", "example.com", &org, &json, NULL,
                                         f->err, sizeof f->err),
                     0);
    assert_non_null(strstr(json, "\"total-successful-session-count\":91"));
    assert_non_null(strstr(json, "\"total-failure-session-count\":11"));
    free(json);
    mxg_rpt_close(r);
}

struct stream {
    uv_timer_t t;
    struct mxg_rpt *r;
    int ticks;
    int64_t sent_ok, sent_fail;
};

static void on_stream(uv_timer_t *t)
{
    struct stream *s = t->data;
    for (int i = 0; i < 40; i++) {
        struct mxg_rpt_result bad = bad_res;
        char ip[32];
        snprintf(ip, sizeof ip, "192.0.2.%d", (s->ticks + i) % 7);
        bad.receiving_ip = ip;
        if (i % 4) {
            mxg_rpt_record(s->r, &pol_tlsa, &ok_res, T0);
            s->sent_ok++;
        } else {
            mxg_rpt_record(s->r, &pol_tlsa, &bad, T0);
            s->sent_fail++;
        }
    }
    if (++s->ticks == 150) {
        /* stop in the middle of the stream: a background write is likely in flight */
        mxg_rpt_close(s->r);
        s->r = NULL;
        uv_close((uv_handle_t *)t, NULL);
    }
}

static void test_close_during_background_writes(void **state)
{
    struct fx *f = *state;
    struct stream s = {.r = open_ok(f, &f->loop, 1)};
    int64_t ok, fl, d;

    uv_timer_init(&f->loop, &s.t);
    s.t.data = &s;
    uv_timer_start(&s.t, on_stream, 1, 1);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_null(s.r);
    db_totals(f->path, &ok, &fl, &d);
    assert_int_equal(ok, s.sent_ok);
    assert_int_equal(fl, s.sent_fail);
    assert_int_equal(d, s.sent_fail);
}

/* Another process holds the write lock: writes fail (after the busy
 * timeout), the counts stay in memory, and once the lock is gone the next
 * write stores everything: the synchronous path, then the background one. */
struct locker {
    uv_timer_t t;
    sqlite3 *db;
    struct mxg_rpt *r;
    struct poll *p;
};

static void on_unlock(uv_timer_t *t)
{
    struct locker *l = t->data;
    mxg_rpt_record(l->r, &pol_tlsa, &ok_res, T0); /* while the write is failing */
    assert_int_equal(sqlite3_exec(l->db, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    uv_close((uv_handle_t *)t, NULL);
    uv_timer_init(t->loop, &l->p->t);
    l->p->t.data = l->p;
    uv_timer_start(&l->p->t, on_poll, 10, 10);
}

static void test_write_failure_retried(void **state)
{
    struct fx *f = *state;
    char logpath[160], buf[8192];
    int64_t s, fl, d;
    FILE *fp;
    int saved;
    size_t n;

    snprintf(logpath, sizeof logpath, "%s.log", f->path);
    fflush(stderr);
    saved = dup(2);
    fp = fopen(logpath, "w");
    assert_non_null(fp);
    dup2(fileno(fp), 2);

    struct mxg_rpt *r = open_ok(f, &f->loop, 20);
    struct locker l = {.r = r};
    struct poll p = {.path = f->path, .want_s = 4, .want_f = 1};
    l.p = &p;
    assert_int_equal(sqlite3_open(f->path, &l.db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(l.db, "BEGIN EXCLUSIVE", NULL, NULL, NULL), SQLITE_OK);

    /* synchronous: fails, keeps */
    mxg_rpt_record(r, &pol_tlsa, &ok_res, T0);
    assert_int_equal(mxg_rpt_flush(r), MXG_RPT_EDB);
    /* background: the timer's writes fail until on_unlock releases the lock */
    mxg_rpt_record(r, &pol_tlsa, &ok_res, T0);
    mxg_rpt_record(r, &pol_tlsa, &ok_res, T0);
    mxg_rpt_record(r, &pol_tlsa, &bad_res, T0);
    uv_timer_init(&f->loop, &l.t);
    l.t.data = &l;
    uv_timer_start(&l.t, on_unlock, 2600, 0);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_true(p.done);
    sqlite3_close(l.db);
    mxg_rpt_close(r);
    uv_run(&f->loop, UV_RUN_DEFAULT);

    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    fclose(fp);
    fp = fopen(logpath, "r");
    assert_non_null(fp);
    n = fread(buf, 1, sizeof buf - 1, fp);
    fclose(fp);
    buf[n] = '\0';
    assert_non_null(strstr(buf, "cannot write counters"));
    assert_non_null(strstr(buf, "writing counters again after"));
    db_totals(f->path, &s, &fl, &d);
    assert_int_equal(s, 4);
    assert_int_equal(fl, 1);
    assert_int_equal(d, 1);
}

/* mxg_rpt_flush() writes at once; no loop needed. */
static void test_explicit_flush(void **state)
{
    struct fx *f = *state;
    struct mxg_rpt *r = open_ok(f, NULL, 0);
    int64_t s, fl, d;
    mxg_rpt_record(r, &pol_tlsa, &ok_res, T0);
    assert_int_equal(mxg_rpt_flush(r), 0);
    db_totals(f->path, &s, &fl, &d);
    assert_int_equal(s, 1);
    assert_int_equal(mxg_rpt_flush(r), 0); /* nothing buffered: fine */
    mxg_rpt_close(r);
    mxg_rpt_close(NULL);
}

/* Bad input is dropped, never counted, never fatal. */
static void test_bad_input_dropped(void **state)
{
    struct fx *f = *state;
    struct mxg_rpt *r = open_ok(f, NULL, 0);
    struct mxg_rpt_policy p = pol_tlsa;
    int64_t s, fl, d;

    mxg_rpt_record(r, NULL, &ok_res, T0);
    mxg_rpt_record(r, &pol_tlsa, NULL, T0);
    p.domain = NULL;
    mxg_rpt_record(r, &p, &ok_res, T0);
    p.domain = "";
    mxg_rpt_record(r, &p, &ok_res, T0);
    p.domain = "bad domain.example";
    mxg_rpt_record(r, &p, &ok_res, T0);
    p.domain = "example.com";
    p.type = (enum mxg_rpt_policy_type)42;
    mxg_rpt_record(r, &p, &ok_res, T0);
    mxg_rpt_record(NULL, &pol_tlsa, &ok_res, T0);
    mxg_rpt_close(r);
    db_totals(f->path, &s, &fl, &d);
    assert_int_equal(s + fl + d, 0);
}

/* Without a writable database the buffer would grow: it is capped (by
 * bytes). Past the cap, new keys are dropped and counted in a warning,
 * existing counters still count, and a write empties the buffer again. */
static void test_buffer_cap(void **state)
{
    struct fx *f = *state;
    struct mxg_rpt *r = open_ok(f, NULL, 0);
    char *big = malloc(16384 + 32);
    struct mxg_rpt_policy p = pol_tlsa;
    int64_t s, fl, d;
    int n = 6000;

    assert_non_null(big);
    memset(big, 'A', 16384);
    p.policy_string = big;
    for (int i = 0; i < n; i++) {
        snprintf(big, 32, "3 1 1 %08d", i); /* cut: the rest stays 'A's */
        big[14] = 'A';
        big[16384] = '\0';
        mxg_rpt_record(r, &p, &ok_res, T0);
    }
    /* key 0 exists: still counted though the buffer is full */
    snprintf(big, 32, "3 1 1 %08d", 0);
    big[14] = 'A';
    mxg_rpt_record(r, &p, &ok_res, T0);
    assert_int_equal(mxg_rpt_flush(r), 0);
    db_totals(f->path, &s, &fl, &d);
    assert_true(s > 3000 && s < n); /* 64 MiB / ~16.5 KiB per key */
    sqlite3 *db;
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_open_v2(f->path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT count(*), max(success) FROM policy", -1, &st,
                                        NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int64(st, 0), s - 1);
    assert_int_equal(sqlite3_column_int64(st, 1), 2);
    sqlite3_finalize(st);
    sqlite3_close(db);
    /* emptied by the write: new keys count again */
    snprintf(big, 32, "3 1 1 %08d", n - 1);
    big[14] = 'A';
    mxg_rpt_record(r, &p, &ok_res, T0);
    mxg_rpt_close(r);
    db_totals(f->path, &s, &fl, &d);
    int64_t s2 = s;
    assert_int_equal(sqlite3_open_v2(f->path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT count(*) FROM policy", -1, &st, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int64(st, 0), s2 - 1);
    sqlite3_finalize(st);
    sqlite3_close(db);
    free(big);
}

/* One NOTICE line per failure, none per success; remote text escaped. */
static void test_log_line(void **state)
{
    struct fx *f = *state;
    char logpath[160], buf[4096];
    struct mxg_rpt_result bad = bad_res;
    FILE *fp;
    size_t n;
    int saved;

    snprintf(logpath, sizeof logpath, "%s.log", f->path);
    fflush(stderr);
    saved = dup(2);
    fp = fopen(logpath, "w");
    assert_non_null(fp);
    dup2(fileno(fp), 2);
    mxg_log_setup(MXG_LOG_NOTICE, 0);

    struct mxg_rpt *r = open_ok(f, NULL, 0);
    mxg_rpt_record(r, &pol_tlsa, &ok_res, T0);
    bad.failure_reason_code = "bad \"cert\"\r\nfake line";
    mxg_rpt_record(r, &pol_tlsa, &bad, T0);
    bad.failure_reason_code = NULL;
    bad.additional_information = NULL;
    bad.receiving_ip = NULL;
    bad.result_type = "sts-policy-fetch-error";
    mxg_rpt_record(r, &pol_tlsa, &bad, T0);
    mxg_rpt_close(r);

    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    fclose(fp);
    mxg_log_setup(MXG_LOG_INFO, 0);

    fp = fopen(logpath, "r");
    assert_non_null(fp);
    n = fread(buf, 1, sizeof buf - 1, fp);
    fclose(fp);
    buf[n] = '\0';
    assert_non_null(strstr(buf, "notice tlsrpt: policy-domain=example.com policy-type=tlsa "
                                "result-type=tlsa-invalid mx=mx1.example.com ip=192.0.2.1 "
                                "reason=\"bad \\\"cert\\\"\\x0d\\x0afake line\"\n"));
    /* sts-* failures are counted (and logged) under policy-type sts */
    assert_non_null(strstr(buf, "policy-domain=example.com policy-type=sts "
                                "result-type=sts-policy-fetch-error mx=mx1.example.com ip=- "
                                "reason=-\n"));
    /* exactly two lines: none for the success */
    int lines = 0;
    for (char *p = buf; (p = strchr(p, '\n')); p++)
        lines++;
    assert_int_equal(lines, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_file_mode_and_wal, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_while_another_writes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timer_flushes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_flushes_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_during_background_writes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_failure_retried, setup, teardown),
        cmocka_unit_test_setup_teardown(test_explicit_flush, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_input_dropped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_buffer_cap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_log_line, setup, teardown),
    };
    return cmocka_run_group_tests_name("report_record", tests, NULL, NULL);
}
