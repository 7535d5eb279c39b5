/* tests/unit/test_policy_sts_start.c — policy/sts: a lookup that cannot even
 * start (here: no resolver at all, so every mxg_dns_lookup_* call fails at
 * once, as it does when the resolver is shut down or a query cannot be
 * created). A cached, unexpired enforce policy still applies (the
 * old code returned -1 and the leg treated MTA-STS as
 * disabled); with nothing cached (or only an expired policy) the outcome is
 * FAILED with a fetch error, so the caller's policy list still applies; the
 * callback never runs inside mxg_sts_get(); waiters share the job; cancel
 * and free with a job pending are clean. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>
#include <uv.h>

#include "core/config.h"
#include "policy/sts.h"
#include "policy/sts_cache.h"
#include "sts_fixture.h"

struct fx {
    char dir[64];
    char path[128];
    uv_loop_t loop;
    struct mxg_config cfg;
    struct mxg_sts_cache *cache;
    struct mxg_sts *sts;
};


static const char enforce[] = "version: STSv1\r\nmode: enforce\r\nmx: mx1.example.com\r\n"
                              "max_age: 86400\r\n";

static void put_policy(struct fx *f, const char *domain, int64_t fetched, int64_t expires)
{
    struct mxg_sts_cache_entry e;
    memset(&e, 0, sizeof e);
    snprintf(e.domain, sizeof e.domain, "%s", domain);
    snprintf(e.id, sizeof e.id, "id1");
    e.body = (char *)(uintptr_t)enforce;
    e.body_len = sizeof enforce - 1;
    e.fetched_at = fetched;
    e.expires_at = expires;
    assert_int_equal(mxg_sts_cache_put(f->cache, &e), 0);
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    snprintf(f->dir, sizeof f->dir, "/tmp/mxg-sts-start-XXXXXX");
    if (!mkdtemp(f->dir)) {
        free(f);
        return -1;
    }
    snprintf(f->path, sizeof f->path, "%s/mta-sts.db", f->dir);
    char err[256];
    f->cache = mxg_sts_cache_open(f->path, err, sizeof err);
    if (!f->cache)
        return -1;
    uv_loop_init(&f->loop);
    mxg_config_defaults(&f->cfg);
    /* no resolver and no HTTPS client: every lookup fails to start */
    f->sts = mxg_sts_new(&f->loop, &f->cfg, NULL, NULL, f->cache);
    if (!f->sts)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    mxg_sts_free(f->sts);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    mxg_sts_cache_close(f->cache);
    sts_db_remove(f->path, f->dir);
    free(f);
    return 0;
}


/* get, check that nothing ran synchronously, run the loop until the answer. */
static void get(struct fx *f, const char *domain, struct got *g)
{
    struct mxg_sts_query *q = NULL;
    memset(g, 0, sizeof *g);
    assert_int_equal(mxg_sts_get(f->sts, domain, sts_got_result, g, &q), 0);
    assert_non_null(q);
    assert_int_equal(g->calls, 0);
    for (int i = 0; i < 100 && g->calls == 0; i++)
        uv_run(&f->loop, UV_RUN_ONCE);
    assert_int_equal(g->calls, 1);
}

/* The defect: a cached enforce policy and a TXT lookup that cannot start. */
static void t_cached_policy_applies(void **state)
{
    struct fx *f = *state;
    int64_t now = (int64_t)time(NULL);
    put_policy(f, "example.com", now - 60, now + 86400);
    struct got g;
    get(f, "example.com", &g);
    assert_int_equal(g.r.outcome, MXG_STS_POLICY);
    assert_int_equal(g.r.policy.mode, MXG_STS_MODE_ENFORCE);
    assert_int_equal(g.r.from_cache, 1);
    assert_string_equal(g.r.id, "id1");
    assert_non_null(strstr(g.r.why, "could not be started"));
    /* case-insensitive domain, second time (a new job) */
    get(f, "EXAMPLE.com", &g);
    assert_int_equal(g.r.outcome, MXG_STS_POLICY);
    assert_int_equal(g.r.policy.mode, MXG_STS_MODE_ENFORCE);
}

/* Nothing cached: "no policy found" as for an unreachable _mta-sts (FAILED
 * with a fetch error: the policy list still applies in the leg). */
static void t_nothing_cached(void **state)
{
    struct fx *f = *state;
    struct got g;
    get(f, "uncached.example", &g);
    assert_int_equal(g.r.outcome, MXG_STS_FAILED);
    assert_int_equal(g.r.failure, MXG_STS_FAIL_FETCH);
    assert_int_equal(g.r.from_cache, 0);
}

/* An expired cached policy does not apply (RFC 8461 §5.1). */
static void t_expired_cached(void **state)
{
    struct fx *f = *state;
    int64_t now = (int64_t)time(NULL);
    put_policy(f, "old.example", now - 90000, now - 10);
    struct got g;
    get(f, "old.example", &g);
    assert_int_equal(g.r.outcome, MXG_STS_FAILED);
    assert_int_equal(g.r.failure, MXG_STS_FAIL_FETCH);
}

/* Two waiters on one job both get the cached policy; a cancelled one none. */
static void t_shared_and_cancelled(void **state)
{
    struct fx *f = *state;
    int64_t now = (int64_t)time(NULL);
    put_policy(f, "example.com", now - 60, now + 86400);
    struct got a, b, c;
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    memset(&c, 0, sizeof c);
    struct mxg_sts_query *qa, *qb, *qc;
    assert_int_equal(mxg_sts_get(f->sts, "example.com", sts_got_result, &a, &qa), 0);
    assert_int_equal(mxg_sts_get(f->sts, "example.com", sts_got_result, &b, &qb), 0);
    assert_int_equal(mxg_sts_get(f->sts, "example.com", sts_got_result, &c, &qc), 0);
    mxg_sts_cancel(qc);
    for (int i = 0; i < 100 && (a.calls == 0 || b.calls == 0); i++)
        uv_run(&f->loop, UV_RUN_ONCE);
    assert_int_equal(a.calls, 1);
    assert_int_equal(b.calls, 1);
    assert_int_equal(c.calls, 0);
    assert_int_equal(a.r.outcome, MXG_STS_POLICY);
    assert_int_equal(b.r.policy.mode, MXG_STS_MODE_ENFORCE);
}

/* Freed with a deferred job pending: no callback, nothing leaks (ASan). */
static void t_free_pending(void **state)
{
    struct fx *f = *state;
    struct got g;
    memset(&g, 0, sizeof g);
    struct mxg_sts_query *q;
    assert_int_equal(mxg_sts_get(f->sts, "pending.example", sts_got_result, &g, &q), 0);
    mxg_sts_free(f->sts);
    f->sts = mxg_sts_new(&f->loop, &f->cfg, NULL, NULL, f->cache);
    assert_non_null(f->sts);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_int_equal(g.calls, 0);
}

/* The cache cannot tell (a stored policy that no longer parses, or an SQLite
 * error) and no policy can be obtained now: UNKNOWN, never "no policy" — a
 * cached enforce policy may be in force (the leg defers with 451 4.7.5). */
static void t_unreadable_cache(void **state)
{
    struct fx *f = *state;
    int64_t now = (int64_t)time(NULL);
    struct mxg_sts_cache_entry e;
    memset(&e, 0, sizeof e);
    snprintf(e.domain, sizeof e.domain, "example.com");
    snprintf(e.id, sizeof e.id, "id1");
    e.body = (char *)(uintptr_t)"garbage";
    e.body_len = 7;
    e.fetched_at = now - 60;
    e.expires_at = now + 86400;
    assert_int_equal(mxg_sts_cache_put(f->cache, &e), 0);
    struct got g;
    get(f, "example.com", &g);
    assert_int_equal(g.r.outcome, MXG_STS_UNKNOWN);
    assert_non_null(strstr(g.r.why, "cache could not be read"));

    /* an SQLite error: the table is gone under the cache's feet */
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "DROP TABLE sts_policy", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    get(f, "other.example", &g);
    assert_int_equal(g.r.outcome, MXG_STS_UNKNOWN);
    assert_string_equal(mxg_sts_outcome_name(g.r.outcome), "unknown");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(t_cached_policy_applies, setup, teardown),
        cmocka_unit_test_setup_teardown(t_nothing_cached, setup, teardown),
        cmocka_unit_test_setup_teardown(t_expired_cached, setup, teardown),
        cmocka_unit_test_setup_teardown(t_shared_and_cancelled, setup, teardown),
        cmocka_unit_test_setup_teardown(t_free_pending, setup, teardown),
        cmocka_unit_test_setup_teardown(t_unreadable_cache, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
