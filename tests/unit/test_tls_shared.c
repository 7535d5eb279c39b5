/* tests/unit/test_tls_shared.c — the TLS session table shared by worker
 * processes (tls/tls_shared.h): put/take, take-once vs kept entries, the
 * newest first, expiry, an oversize session not stored, the per-key bound,
 * a full table (least recently used makes room), clear, another process's
 * entries, an entry the caller could not use dropped, and a worker dying
 * with the mutex held (the table emptied, then in use again). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "tls/tls_shared.h"

#define NOW 1000000

static unsigned char buf[MXG_TLS_SHARED_SLOT];

/* put data "v" under key k, expiring at NOW + 100 */
static int put(struct mxg_tls_shared *s, const char *k, const char *v, int once)
{
    return mxg_tls_shared_put(s, k, strlen(k), v, strlen(v), NOW + 100, once, NOW);
}

/* take under k at now: the data as a string ("" when none) */
static const char *take_at(struct mxg_tls_shared *s, const char *k, int64_t now)
{
    size_t len = 99;
    if (!mxg_tls_shared_take(s, k, strlen(k), now, buf, sizeof buf - 1, &len)) {
        assert_int_equal(len, 0);
        return "";
    }
    buf[len] = 0;
    return (const char *)buf;
}

static const char *take(struct mxg_tls_shared *s, const char *k)
{
    return take_at(s, k, NOW);
}

static void test_put_take(void **state)
{
    (void)state;
    struct mxg_tls_shared *s = mxg_tls_shared_new(8);
    assert_non_null(s);
    assert_int_equal(put(s, "A", "t1", 1), 1);
    assert_int_equal(put(s, "A", "t2", 1), 1);
    assert_int_equal(put(s, "B", "b1", 0), 1);
    assert_int_equal(mxg_tls_shared_count(s), 3);
    assert_string_equal(take(s, "C"), ""); /* another key: nothing */
    assert_string_equal(take(s, "AA"), "");
    assert_string_equal(take(s, "A"), "t2"); /* the newest first, once */
    assert_string_equal(take(s, "A"), "t1");
    assert_string_equal(take(s, "A"), "");
    assert_string_equal(take(s, "B"), "b1"); /* not take-once: stays */
    assert_string_equal(take(s, "B"), "b1");
    assert_int_equal(mxg_tls_shared_count(s), 1);
    mxg_tls_shared_clear(s);
    assert_int_equal(mxg_tls_shared_count(s), 0);
    assert_string_equal(take(s, "B"), "");
    mxg_tls_shared_free(s);
}

static void test_expiry_and_limits(void **state)
{
    (void)state;
    struct mxg_tls_shared *s = mxg_tls_shared_new(8);
    assert_int_equal(put(s, "A", "a", 0), 1);
    assert_string_equal(take_at(s, "A", NOW + 99), "a");
    assert_string_equal(take_at(s, "A", NOW + 100), ""); /* its lifetime is over */
    assert_int_equal(mxg_tls_shared_count(s), 0);          /* and it was dropped */
    /* already expired, oversize, empty, a key too long: not stored */
    assert_int_equal(mxg_tls_shared_put(s, "A", 1, "a", 1, NOW, 1, NOW), 0);
    static unsigned char big[MXG_TLS_SHARED_SLOT + 1];
    assert_int_equal(mxg_tls_shared_put(s, "A", 1, big, sizeof big, NOW + 9, 1, NOW), 0);
    assert_int_equal(mxg_tls_shared_put(s, "A", 1, big, sizeof big - 1, NOW + 9, 1, NOW), 1);
    assert_int_equal(mxg_tls_shared_put(s, "A", 1, big, 0, NOW + 9, 1, NOW), 0);
    char longkey[MXG_TLS_SHARED_KEY_MAX + 1];
    memset(longkey, 'k', sizeof longkey);
    assert_int_equal(mxg_tls_shared_put(s, longkey, sizeof longkey, "a", 1, NOW + 9, 1, NOW), 0);
    assert_int_equal(mxg_tls_shared_put(s, longkey, sizeof longkey - 1, "a", 1, NOW + 9, 1, NOW),
                     1);
    assert_int_equal(mxg_tls_shared_count(s), 2);
    /* the full-size one does not fit a smaller buffer: dropped, nothing returned */
    size_t len;
    assert_int_equal(mxg_tls_shared_take(s, "A", 1, NOW, buf, 16, &len), 0);
    assert_int_equal(mxg_tls_shared_count(s), 1);
    assert_null(mxg_tls_shared_new(0));
    assert_int_equal(mxg_tls_shared_size(0), 0);
    assert_true(mxg_tls_shared_size(1000) > (size_t)1000 * MXG_TLS_SHARED_SLOT);
    mxg_tls_shared_free(s);
}

static void test_per_key_and_full(void **state)
{
    (void)state;
    struct mxg_tls_shared *s = mxg_tls_shared_new(6);
    const char *v[] = {"1", "2", "3", "4", "5"};
    for (int i = 0; i < 5; i++)
        assert_int_equal(put(s, "A", v[i], 1), 1);
    assert_int_equal(mxg_tls_shared_count(s), MXG_TLS_SHARED_PER_KEY); /* "1" made room */
    assert_int_equal(put(s, "B", "b", 1), 1);
    assert_int_equal(put(s, "C", "c", 1), 1);
    assert_int_equal(mxg_tls_shared_count(s), 6);
    assert_int_equal(put(s, "D", "d", 1), 1); /* full: the least recently used ("2") goes */
    assert_int_equal(mxg_tls_shared_count(s), 6);
    assert_string_equal(take(s, "D"), "d");
    assert_string_equal(take(s, "C"), "c");
    assert_string_equal(take(s, "B"), "b");
    assert_string_equal(take(s, "A"), "5");
    assert_string_equal(take(s, "A"), "4");
    assert_string_equal(take(s, "A"), "3");
    assert_string_equal(take(s, "A"), "");
    /* a kept entry that is used is recent again: not the one that makes room */
    mxg_tls_shared_clear(s);
    assert_int_equal(put(s, "K", "k", 0), 1);
    for (int i = 0; i < 5; i++)
        assert_int_equal(put(s, v[i], v[i], 1), 1);
    assert_string_equal(take(s, "K"), "k");
    assert_int_equal(put(s, "X", "x", 1), 1); /* "1" goes, not "K" */
    assert_string_equal(take(s, "1"), "");
    assert_string_equal(take(s, "K"), "k");
    mxg_tls_shared_free(s);
}

/* A kept entry the caller cannot use (it does not deserialize) is dropped by
 * its content: the next take finds the older good one, and a store wins at
 * once; an entry with other data under the key is not touched. */
static void test_drop_unusable(void **state)
{
    (void)state;
    struct mxg_tls_shared *s = mxg_tls_shared_new(8);
    assert_int_equal(put(s, "A", "good", 0), 1);
    assert_int_equal(put(s, "A", "garbage", 0), 1);
    assert_int_equal(put(s, "B", "garbage", 0), 1);
    assert_string_equal(take(s, "A"), "garbage");
    assert_string_equal(take(s, "A"), "garbage"); /* kept: it would block the key */
    assert_int_equal(mxg_tls_shared_drop(s, "A", 1, "other", 5), 0);
    assert_int_equal(mxg_tls_shared_drop(s, "A", 1, "garbage", 7), 1);
    assert_string_equal(take(s, "A"), "good");
    assert_string_equal(take(s, "B"), "garbage"); /* another key's entry stays */
    assert_int_equal(put(s, "A", "new", 0), 1);
    assert_int_equal(mxg_tls_shared_drop(s, "A", 1, "garbage", 7), 0);
    assert_string_equal(take(s, "A"), "new");
    assert_int_equal(mxg_tls_shared_count(s), 3);
    mxg_tls_shared_free(s);
}

/* Another process (a worker) stores; this one takes: the mapping is shared. */
static void test_processes(void **state)
{
    (void)state;
    struct mxg_tls_shared *s = mxg_tls_shared_new(8);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(put(s, "A", "from-child", 1) == 1 ? 0 : 1);
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    assert_string_equal(take(s, "A"), "from-child");
    assert_int_equal(mxg_tls_shared_generation(s), 0);
    assert_int_equal(mxg_tls_shared_next_generation(s), 1);
    pid = fork();
    if (pid == 0)
        _exit(mxg_tls_shared_generation(s) == 1 && mxg_tls_shared_next_generation(s) == 2 ? 0 : 1);
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    assert_int_equal(mxg_tls_shared_generation(s), 2);
    mxg_tls_shared_free(s);
}

/* A worker dies holding the mutex (maybe in the middle of a put): the next
 * call empties the table and goes on — no entry from before the death is
 * returned (not even one that looked whole), and stores and takes work again
 * at once, in this process and in another. */
static void test_owner_died(void **state)
{
    (void)state;
    struct mxg_tls_shared *s = mxg_tls_shared_new(8);
    assert_int_equal(put(s, "A", "a", 0), 1);
    assert_int_equal(put(s, "C", "c", 0), 1);
    assert_int_equal(mxg_tls_shared_poisoned(s), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        mxg_tls_shared_test_hold(s);
        _exit(0);
    }
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_string_equal(take(s, "A"), ""); /* emptied: nothing from before */
    assert_int_equal(mxg_tls_shared_count(s), 0);
    assert_string_equal(take(s, "C"), "");
    assert_int_equal(put(s, "B", "b", 0), 1);
    assert_string_equal(take(s, "B"), "b");
    assert_int_equal(put(s, "A", "a2", 0), 1);
    assert_string_equal(take(s, "A"), "a2");
    assert_int_equal(mxg_tls_shared_count(s), 2);
    assert_int_equal(mxg_tls_shared_poisoned(s), 0);
    /* another worker sees the same recovered table */
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(strcmp(take(s, "B"), "b") == 0 && put(s, "D", "d", 1) == 1 ? 0 : 1);
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    assert_string_equal(take(s, "D"), "d");
    /* a second death: emptied again */
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        mxg_tls_shared_test_hold(s);
        _exit(0);
    }
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_string_equal(take(s, "B"), "");
    assert_int_equal(mxg_tls_shared_count(s), 0);
    mxg_tls_shared_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_put_take),
        cmocka_unit_test(test_expiry_and_limits),
        cmocka_unit_test(test_per_key_and_full),
        cmocka_unit_test(test_drop_unusable),
        cmocka_unit_test(test_processes),
        cmocka_unit_test(test_owner_died),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
