/* tests/unit/test_spool_store.c — spool/ store: commit/load/update/remove
 * round trips, IDs in age order, crash leftovers cleaned at open (and a
 * live writer's body left alone), spool ownership and entry locks,
 * quarantine of unreadable envelopes, and the write-failure paths: sticky
 * errors and "nothing of the entry remains" for a failure injected at every
 * file-system step, and a real kernel failure (RLIMIT_FSIZE → EFBIG, which
 * root cannot bypass), plus the retry backoff. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/file.h>
#include <sys/resource.h>

#include <cmocka.h>

#include "spool_fixture.h"

static char *pattern(size_t n)
{
    char *b = malloc(n);
    for (size_t i = 0; i < n; i++)
        b[i] = (i % 100 == 98) ? '\r' : (i % 100 == 99) ? '\n' : (char)('a' + i % 26);
    return b;
}

static void test_roundtrip(void **state)
{
    struct sfx *f = *state;
    struct mxg_spool_writer *w;
    size_t n = 200 * 1024 + 17; /* more than the writer's buffer */
    char *body = pattern(n);
    assert_int_equal(mxg_spool_writer_new(f->sp, &w, f->err, sizeof f->err), 0);
    const char *wid = mxg_spool_writer_id(w);
    assert_true(mxg_spool_id_valid(wid));
    /* invisible while streaming */
    char(*ids)[MXG_SPOOL_ID_MAX];
    int cnt;
    for (size_t off = 0; off < n; off += 1000)
        assert_int_equal(mxg_spool_write(w, body + off, n - off < 1000 ? n - off : 1000), 0);
    assert_int_equal(mxg_spool_list(f->sp, &ids, &cnt), 0);
    assert_int_equal(cnt, 0);
    free(ids);

    struct mxg_spool_env env;
    spool_make_env(&env, "alice@example.org", "bob@a.example,carol@b.example");
    env.mp.size = n;
    env.mp.body = MXG_BODY_8BITMIME;
    snprintf(env.mp.ret, sizeof env.mp.ret, "HDRS");
    snprintf(env.mp.envid, sizeof env.mp.envid, "QQ+2B1");
    snprintf(env.rcpts[1].rp.notify, sizeof env.rcpts[1].rp.notify, "FAILURE,DELAY");
    snprintf(env.rcpts[1].rp.orcpt, sizeof env.rcpts[1].rp.orcpt, "rfc822;carol@b.example");
    env.next_attempt_ms = 12345;
    char wid_copy[MXG_SPOOL_ID_MAX];
    snprintf(wid_copy, sizeof wid_copy, "%s", wid);
    assert_int_equal(mxg_spool_commit(w, &env, f->err, sizeof f->err), 0);
    assert_string_equal(env.id, wid_copy);
    assert_int_equal(env.body_size, n);
    assert_true(env.created_ms > 0);

    assert_int_equal(mxg_spool_list(f->sp, &ids, &cnt), 0);
    assert_int_equal(cnt, 1);
    assert_string_equal(ids[0], env.id);
    free(ids);

    struct mxg_spool_env got;
    assert_int_equal(mxg_spool_load(f->sp, env.id, &got, f->err, sizeof f->err), 0);
    assert_string_equal(got.id, env.id);
    assert_int_equal(got.kind, MXG_SPOOL_MESSAGE);
    assert_string_equal(got.from, "alice@example.org");
    assert_string_equal(got.client, "127.0.0.1");
    assert_string_equal(got.helo, "legacy.example");
    assert_int_equal(got.created_ms, env.created_ms);
    assert_int_equal(got.next_attempt_ms, 12345);
    assert_int_equal(got.body_size, n);
    assert_int_equal(got.mp.size, n);
    assert_int_equal(got.mp.body, MXG_BODY_8BITMIME);
    assert_string_equal(got.mp.ret, "HDRS");
    assert_string_equal(got.mp.envid, "QQ+2B1");
    assert_int_equal(got.n_rcpts, 2);
    assert_string_equal(got.rcpts[0].addr, "bob@a.example");
    assert_string_equal(got.rcpts[0].domain, "a.example");
    assert_int_equal(got.rcpts[0].state, MXG_RCPT_PENDING);
    assert_string_equal(got.rcpts[1].rp.notify, "FAILURE,DELAY");
    assert_string_equal(got.rcpts[1].rp.orcpt, "rfc822;carol@b.example");

    int fd = mxg_spool_body_open(f->sp, env.id);
    assert_true(fd >= 0);
    size_t blen;
    char *b = spool_slurp_fd(fd, &blen);
    close(fd);
    assert_int_equal(blen, n);
    assert_memory_equal(b, body, n);
    free(b);

    /* update */
    got.rcpts[0].state = MXG_RCPT_DELIVERED;
    got.rcpts[1].last_code = 451;
    snprintf(got.rcpts[1].last_reply, sizeof got.rcpts[1].last_reply, "451 4.4.1 no \"answer\"");
    snprintf(got.rcpts[1].last_mx, sizeof got.rcpts[1].last_mx, "mx.b.example[192.0.2.7]");
    got.attempts = 3;
    got.next_attempt_ms = 999;
    assert_int_equal(mxg_spool_update(f->sp, &got, f->err, sizeof f->err), 0);
    struct mxg_spool_env again;
    assert_int_equal(mxg_spool_load(f->sp, env.id, &again, f->err, sizeof f->err), 0);
    assert_int_equal(again.rcpts[0].state, MXG_RCPT_DELIVERED);
    assert_int_equal(again.rcpts[1].last_code, 451);
    assert_string_equal(again.rcpts[1].last_reply, "451 4.4.1 no \"answer\"");
    assert_string_equal(again.rcpts[1].last_mx, "mx.b.example[192.0.2.7]");
    assert_int_equal(again.attempts, 3);
    assert_int_equal(again.next_attempt_ms, 999);
    assert_int_equal(spool_count(f->dir, ".tmp"), 0);

    /* remove */
    assert_int_equal(mxg_spool_remove(f->sp, env.id), 0);
    assert_false(spool_file_exists(f->dir, env.id, ".env"));
    assert_false(spool_file_exists(f->dir, env.id, ".msg"));
    mxg_spool_env_free(&got);
    assert_int_equal(mxg_spool_load(f->sp, env.id, &got, f->err, sizeof f->err), -ENOENT);
    /* an update never brings a removed entry back */
    assert_int_equal(mxg_spool_update(f->sp, &again, f->err, sizeof f->err), -ENOENT);
    assert_false(spool_file_exists(f->dir, env.id, ".env"));
    assert_int_equal(mxg_spool_remove(f->sp, env.id), -ENOENT);

    mxg_spool_env_free(&env);
    mxg_spool_env_free(&again);
    mxg_spool_env_free(&got);
    free(body);
}

static void test_ids_sort_by_age(void **state)
{
    struct sfx *f = *state;
    char made[40][MXG_SPOOL_ID_MAX];
    for (int i = 0; i < 40; i++) {
        struct mxg_spool_env env;
        spool_make_env(&env, "", "x@y.example");
        assert_int_equal(mxg_spool_put(f->sp, "Subject: x\r\n\r\nhi\r\n", 18, &env, f->err,
                                       sizeof f->err), 0);
        snprintf(made[i], sizeof made[i], "%s", env.id);
        mxg_spool_env_free(&env);
        if (i % 10 == 0)
            usleep(2000);
    }
    char(*ids)[MXG_SPOOL_ID_MAX];
    int n;
    assert_int_equal(mxg_spool_list(f->sp, &ids, &n), 0);
    assert_int_equal(n, 40);
    for (int i = 0; i < 40; i++)
        assert_string_equal(ids[i], made[i]);
    free(ids);
}

static void test_put_needs_rcpt(void **state)
{
    struct sfx *f = *state;
    struct mxg_spool_env env;
    memset(&env, 0, sizeof env);
    assert_int_equal(mxg_spool_put(f->sp, "x\r\n", 3, &env, f->err, sizeof f->err), -EINVAL);
    assert_int_equal(spool_count(f->dir, ""), 0);
}

static void test_id_validation(void **state)
{
    struct sfx *f = *state;
    struct mxg_spool_env env;
    assert_false(mxg_spool_id_valid(""));
    assert_false(mxg_spool_id_valid("../etc/passwd"));
    assert_false(mxg_spool_id_valid("a.b"));
    assert_false(mxg_spool_id_valid("0123456789012345678901234567890123456789")); /* 40 */
    assert_true(mxg_spool_id_valid("1718000000000-0001-42"));
    assert_int_equal(mxg_spool_load(f->sp, "../x", &env, f->err, sizeof f->err), -EINVAL);
    assert_int_equal(mxg_spool_remove(f->sp, "a/b"), -EINVAL);
    assert_int_equal(mxg_spool_body_open(f->sp, ".."), -EINVAL);
    assert_int_equal(mxg_spool_lock(f->sp, "x/y"), -EINVAL);
}

static void test_crash_leftovers(void **state)
{
    struct sfx *f = *state;
    struct mxg_spool_env env;
    spool_make_env(&env, "a@b.example", "c@d.example");
    assert_int_equal(mxg_spool_put(f->sp, "hdr: 1\r\n\r\nbody\r\n", 17, &env, f->err,
                                   sizeof f->err), 0);
    mxg_spool_close(f->sp);
    f->sp = NULL;
    /* what a kill -9 leaves: a body that was streaming, a half-written
     * envelope rewrite, a half-written new envelope */
    spool_write_file(f->dir, "1700000000000-0001-1.msg", "partial body");
    spool_write_file(f->dir, "1700000000000-0002-1.env.tmp", "{\"version\": 1, \"id");
    char name[80];
    snprintf(name, sizeof name, "%s.env.tmp", env.id);
    spool_write_file(f->dir, name, "{");
    /* a body a live writer still streams (held lock) must survive */
    char live[128];
    snprintf(live, sizeof live, "%s/1700000000000-0003-1.msg", f->dir);
    int lfd = open(live, O_WRONLY | O_CREAT, 0600);
    assert_true(lfd >= 0);
    assert_int_equal(flock(lfd, LOCK_EX | LOCK_NB), 0);
    /* a quarantined envelope keeps its body */
    spool_write_file(f->dir, "1700000000000-0004-1.bad", "garbage");
    spool_write_file(f->dir, "1700000000000-0004-1.msg", "kept");

    f->sp = mxg_spool_open(f->dir, f->err, sizeof f->err);
    assert_non_null(f->sp);
    assert_true(mxg_spool_owner(f->sp));
    assert_int_equal(mxg_spool_cleaned(f->sp), 3);
    assert_int_equal(spool_count(f->dir, ".tmp"), 0);
    assert_false(spool_file_exists(f->dir, "1700000000000-0001-1", ".msg"));
    assert_true(spool_file_exists(f->dir, "1700000000000-0003-1", ".msg"));
    assert_true(spool_file_exists(f->dir, "1700000000000-0004-1", ".msg"));
    /* the committed entry is intact */
    struct mxg_spool_env got;
    assert_int_equal(mxg_spool_load(f->sp, env.id, &got, f->err, sizeof f->err), 0);
    assert_string_equal(got.rcpts[0].addr, "c@d.example");
    char(*ids)[MXG_SPOOL_ID_MAX];
    int n;
    assert_int_equal(mxg_spool_list(f->sp, &ids, &n), 0);
    assert_int_equal(n, 1);
    free(ids);
    close(lfd);
    mxg_spool_env_free(&env);
    mxg_spool_env_free(&got);
}

static void test_owner_and_locks(void **state)
{
    struct sfx *f = *state;
    /* a second handle (another process: `mxguard queue`) does not own the
     * spool and cleans nothing */
    spool_write_file(f->dir, "1700000000000-0009-1.msg", "orphan");
    struct mxg_spool *other = mxg_spool_open(f->dir, f->err, sizeof f->err);
    assert_non_null(other);
    assert_true(mxg_spool_owner(f->sp));
    assert_false(mxg_spool_owner(other));
    assert_int_equal(mxg_spool_cleaned(other), 0);
    assert_true(spool_file_exists(f->dir, "1700000000000-0009-1", ".msg"));

    struct mxg_spool_env env;
    spool_make_env(&env, "a@b.example", "c@d.example");
    assert_int_equal(mxg_spool_put(f->sp, "x\r\n", 3, &env, f->err, sizeof f->err), 0);
    int l1 = mxg_spool_lock(f->sp, env.id);
    assert_true(l1 >= 0);
    assert_int_equal(mxg_spool_lock(other, env.id), -EBUSY);
    assert_int_equal(mxg_spool_lock(f->sp, env.id), -EBUSY);
    close(l1);
    int l2 = mxg_spool_lock(other, env.id);
    assert_true(l2 >= 0);
    /* the lock fd reads the body */
    char buf[8] = {0};
    assert_int_equal(pread(l2, buf, sizeof buf, 0), 3);
    assert_string_equal(buf, "x\r\n");
    close(l2);
    assert_int_equal(mxg_spool_lock(f->sp, "1700000000000-0000-0"), -ENOENT);
    /* a body still streaming is locked by its writer */
    struct mxg_spool_writer *w;
    assert_int_equal(mxg_spool_writer_new(f->sp, &w, f->err, sizeof f->err), 0);
    char wid[MXG_SPOOL_ID_MAX];
    snprintf(wid, sizeof wid, "%s", mxg_spool_writer_id(w));
    assert_int_equal(mxg_spool_lock(other, wid), -EBUSY);
    mxg_spool_abort(w);
    assert_false(spool_file_exists(f->dir, wid, ".msg"));
    mxg_spool_close(other);
    mxg_spool_env_free(&env);
}

static void test_malformed_envelope(void **state)
{
    struct sfx *f = *state;
    struct mxg_spool_env env;
    const char *id = "1700000000000-0005-1";
    spool_write_file(f->dir, "1700000000000-0005-1.env", "{\"version\": 1, \"id\": ");
    spool_write_file(f->dir, "1700000000000-0005-1.msg", "body\r\n");
    assert_int_equal(mxg_spool_load(f->sp, id, &env, f->err, sizeof f->err), -EINVAL);
    assert_non_null(strstr(f->err, "1700000000000-0005-1.env"));
    assert_null(env.rcpts);
    /* unknown version */
    spool_write_file(f->dir, "1700000000000-0005-1.env",
                     "{\"version\": 7, \"id\": \"1700000000000-0005-1\"}");
    assert_int_equal(mxg_spool_load(f->sp, id, &env, f->err, sizeof f->err), -EINVAL);
    assert_non_null(strstr(f->err, "unsupported version 7"));
    /* an envelope that names another entry */
    struct mxg_spool_env ok;
    spool_make_env(&ok, "a@b.example", "c@d.example");
    snprintf(ok.id, sizeof ok.id, "1700000000000-0006-1");
    char *json = mxg_spool_env_encode(&ok);
    spool_write_file(f->dir, "1700000000000-0005-1.env", json);
    free(json);
    assert_int_equal(mxg_spool_load(f->sp, id, &env, f->err, sizeof f->err), -EINVAL);
    assert_non_null(strstr(f->err, "another entry"));
    /* listed until quarantined; then out of the way, body kept */
    char(*ids)[MXG_SPOOL_ID_MAX];
    int n;
    assert_int_equal(mxg_spool_list(f->sp, &ids, &n), 0);
    assert_int_equal(n, 1);
    free(ids);
    assert_int_equal(mxg_spool_quarantine(f->sp, id), 0);
    assert_int_equal(mxg_spool_list(f->sp, &ids, &n), 0);
    assert_int_equal(n, 0);
    free(ids);
    assert_true(spool_file_exists(f->dir, id, ".bad"));
    assert_true(spool_file_exists(f->dir, id, ".msg"));
    mxg_spool_env_free(&ok);
}

/* ---- write failures */

struct inject {
    enum mxg_spool_op op;
    int err;
    int calls;
};

static int inject_fn(void *arg, enum mxg_spool_op op)
{
    struct inject *in = arg;
    in->calls++;
    return op == in->op ? in->err : 0;
}

static void test_fault_every_step(void **state)
{
    struct sfx *f = *state;
    static const enum mxg_spool_op ops[] = {
        MXG_SPOOL_OP_BODY_WRITE, MXG_SPOOL_OP_BODY_SYNC, MXG_SPOOL_OP_ENV_WRITE,
        MXG_SPOOL_OP_ENV_SYNC,   MXG_SPOOL_OP_RENAME,    MXG_SPOOL_OP_DIR_SYNC,
    };
    char *body = pattern(100 * 1024);
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
        struct inject in = {ops[i], -ENOSPC, 0};
        mxg_spool_set_fault(f->sp, inject_fn, &in);
        struct mxg_spool_writer *w;
        assert_int_equal(mxg_spool_writer_new(f->sp, &w, f->err, sizeof f->err), 0);
        int first = 0;
        for (size_t off = 0; off < 100 * 1024; off += 4096) {
            int rc = mxg_spool_write(w, body + off, 4096);
            if (rc < 0 && !first)
                first = rc;
            if (first) /* sticky: every later call says it again */
                assert_int_equal(rc, first);
        }
        if (ops[i] == MXG_SPOOL_OP_BODY_WRITE)
            assert_int_equal(first, -ENOSPC);
        else
            assert_int_equal(first, 0);
        struct mxg_spool_env env;
        spool_make_env(&env, "a@b.example", "c@d.example");
        f->err[0] = 0;
        assert_int_equal(mxg_spool_commit(w, &env, f->err, sizeof f->err), -ENOSPC);
        assert_non_null(strstr(f->err, "No space left on device"));
        /* nothing of the entry remains */
        assert_int_equal(spool_count(f->dir, ""), 0);
        mxg_spool_env_free(&env);
    }
    /* an update that fails leaves the old envelope in place */
    mxg_spool_set_fault(f->sp, NULL, NULL);
    struct mxg_spool_env env, got;
    spool_make_env(&env, "a@b.example", "c@d.example");
    assert_int_equal(mxg_spool_put(f->sp, "x\r\n", 3, &env, f->err, sizeof f->err), 0);
    struct inject in = {MXG_SPOOL_OP_ENV_SYNC, -EIO, 0};
    mxg_spool_set_fault(f->sp, inject_fn, &in);
    env.attempts = 5;
    assert_int_equal(mxg_spool_update(f->sp, &env, f->err, sizeof f->err), -EIO);
    mxg_spool_set_fault(f->sp, NULL, NULL);
    assert_int_equal(mxg_spool_load(f->sp, env.id, &got, f->err, sizeof f->err), 0);
    assert_int_equal(got.attempts, 0);
    assert_int_equal(spool_count(f->dir, ".tmp"), 0);
    mxg_spool_env_free(&env);
    mxg_spool_env_free(&got);
    free(body);
}

/* Another process's leftover clean-up takes a new body's lock, or unlinks it, between
 * its creation and the writer's lock: the writer starts again under a new id, and the
 * committed entry has its body (never an fsync'd, unlinked inode behind a 250). */
struct cleaner {
    const char *dir;
    int calls, mode; /* mode 0: unlink every *.msg on the first call; 1: "lock taken" */
};

static int cleaner_fn(void *arg, enum mxg_spool_op op)
{
    struct cleaner *c = arg;
    if (op != MXG_SPOOL_OP_BODY_LOCK || c->calls++ > 0)
        return 0;
    if (c->mode == 1)
        return -EWOULDBLOCK;
    DIR *d = opendir(c->dir);
    struct dirent *de;
    char path[1200];
    while (d && (de = readdir(d))) {
        size_t n = strlen(de->d_name);
        if (n > 4 && strcmp(de->d_name + n - 4, ".msg") == 0) {
            snprintf(path, sizeof path, "%s/%s", c->dir, de->d_name);
            unlink(path);
        }
    }
    if (d)
        closedir(d);
    return 0;
}

static void test_writer_races_cleanup(void **state)
{
    struct sfx *f = *state;
    for (int mode = 0; mode < 2; mode++) {
        struct cleaner c = {f->dir, 0, mode};
        mxg_spool_set_fault(f->sp, cleaner_fn, &c);
        struct mxg_spool_env env, got;
        spool_make_env(&env, "a@b.example", "c@d.example");
        assert_int_equal(mxg_spool_put(f->sp, "body\r\n", 6, &env, f->err, sizeof f->err), 0);
        mxg_spool_set_fault(f->sp, NULL, NULL);
        assert_int_equal(c.calls, 2); /* a second id */
        assert_int_equal(mxg_spool_load(f->sp, env.id, &got, f->err, sizeof f->err), 0);
        int fd = mxg_spool_body_open(f->sp, env.id);
        assert_true(fd >= 0);
        char buf[16];
        assert_int_equal(read(fd, buf, sizeof buf), 6);
        close(fd);
        assert_int_equal(mxg_spool_remove(f->sp, env.id), 0);
        mxg_spool_env_free(&env);
        mxg_spool_env_free(&got);
    }
}

/* A real failure from the kernel, not from the hook: the file size limit
 * applies to root too. */
static void test_kernel_write_failure(void **state)
{
    struct sfx *f = *state;
    struct rlimit old, lim;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    void (*oldsig)(int) = signal(SIGXFSZ, SIG_IGN);
    lim = old;
    lim.rlim_cur = 16 * 1024;
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    char *body = pattern(300 * 1024);
    struct mxg_spool_writer *w;
    assert_int_equal(mxg_spool_writer_new(f->sp, &w, f->err, sizeof f->err), 0);
    int rc = 0;
    for (size_t off = 0; off < 300 * 1024 && rc == 0; off += 1000)
        rc = mxg_spool_write(w, body + off, 1000);
    assert_int_equal(rc, -EFBIG);
    assert_int_equal(mxg_spool_write(w, "x", 1), -EFBIG);
    struct mxg_spool_env env;
    spool_make_env(&env, "a@b.example", "c@d.example");
    assert_int_equal(mxg_spool_commit(w, &env, f->err, sizeof f->err), -EFBIG);
    assert_int_equal(spool_count(f->dir, ""), 0);
    /* mxg_spool_put reports it the same way */
    assert_int_equal(mxg_spool_put(f->sp, body, 300 * 1024, &env, f->err, sizeof f->err), -EFBIG);
    assert_int_equal(spool_count(f->dir, ""), 0);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    signal(SIGXFSZ, oldsig);
    mxg_spool_env_free(&env);
    free(body);
}

static void test_backoff(void **state)
{
    (void)state;
    assert_int_equal(mxg_spool_backoff_ms(0, 1000, 60000), 0);
    assert_int_equal(mxg_spool_backoff_ms(1, 1000, 60000), 1000);
    assert_int_equal(mxg_spool_backoff_ms(2, 1000, 60000), 2000);
    assert_int_equal(mxg_spool_backoff_ms(5, 1000, 60000), 16000);
    assert_int_equal(mxg_spool_backoff_ms(7, 1000, 60000), 60000);
    assert_int_equal(mxg_spool_backoff_ms(1000000, 1000, 60000), 60000);
    assert_int_equal(mxg_spool_backoff_ms(200, UINT64_MAX / 2 + 1, UINT64_MAX), UINT64_MAX);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_roundtrip, spool_fixture_setup, spool_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_ids_sort_by_age, spool_fixture_setup,
                                        spool_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_put_needs_rcpt, spool_fixture_setup,
                                        spool_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_id_validation, spool_fixture_setup,
                                        spool_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_crash_leftovers, spool_fixture_setup,
                                        spool_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_owner_and_locks, spool_fixture_setup,
                                        spool_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_malformed_envelope, spool_fixture_setup,
                                        spool_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_fault_every_step, spool_fixture_setup,
                                        spool_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_writer_races_cleanup, spool_fixture_setup,
                                        spool_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_kernel_write_failure, spool_fixture_setup,
                                        spool_fixture_teardown),
        cmocka_unit_test(test_backoff),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
