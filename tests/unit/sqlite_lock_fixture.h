/* tests/unit/sqlite_lock_fixture.h — "another worker holds the new database file's
 * write lock": a child process opens path, takes the write lock (BEGIN IMMEDIATE),
 * holds it for hold_ms, commits and exits 0 (1 on any failure). The parent returns
 * once the lock is held; lock_holder_wait() checks the child's exit. Header-only,
 * for the stores' unit tests (tlsrpt.db, mta-sts.db). */
#ifndef MXG_TEST_SQLITE_LOCK_FIXTURE_H
#define MXG_TEST_SQLITE_LOCK_FIXTURE_H

#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

/* Start the holder; returns its pid once it holds the lock (the test fails otherwise). */
static pid_t lock_holder_start(const char *path, int hold_ms)
{
    int go[2];
    assert_int_equal(pipe(go), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        sqlite3 *db;
        char c = 'x';
        if (sqlite3_open(path, &db) != SQLITE_OK ||
            sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK ||
            write(go[1], &c, 1) != 1)
            _exit(1);
        usleep((useconds_t)hold_ms * 1000);
        _exit(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK ? 0 : 1);
    }
    char c;
    close(go[1]);
    assert_int_equal(read(go[0], &c, 1), 1);
    close(go[0]);
    return pid;
}

/* The holder committed and exited 0. */
static void lock_holder_wait(pid_t pid)
{
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_int_equal(status, 0);
}

#endif
