/* tests/unit/test_policy_sts_txt.c — policy/sts discovery (the _mta-sts TXT
 * RRset, RFC 8461 §3.1) through the real resolver (dns/dns.c) against the
 * in-process signed DNS server of dns_fixture.h. docs/ARCHITECTURE.md §Limits (an
 * implementation limit never weakens a policy):
 *  - 40 TXT records with the STS one last (an SPF-style RRset): the STS
 *    record is found (the old 16-record cap lost it: "no policy" on first
 *    use; with a cached policy of another id: no refetch);
 *  - two STS records, the second beyond the old cap: no policy, the TXT is
 *    invalid (the old code saw only one and went on with its id);
 *  - a TXT lookup that fails (SERVFAIL; the same path as an RRset dns.c
 *    cannot keep): a cached, unexpired policy keeps applying; with nothing
 *    cached the outcome is FAILED with a fetch error (the policy list
 *    still applies in the leg).
 * No HTTPS client: a fetch stops at the address lookup of mta-sts.DOMAIN
 * (it does not exist), a fetch error. */
#include "dns_fixture.h"

#include "core/log.h"
#include "dns/dns.h"
#include "policy/sts.h"
#include "policy/sts_cache.h"
#include "sts_fixture.h"

struct fx {
    uv_loop_t loop;
    struct srv srv;
    char anchor[64];
    char dir[64];
    char path[128];
    struct mxg_config cfg;
    struct mxg_dns *dns;
    struct mxg_sts_cache *cache;
    struct mxg_sts *sts;
};


static const char enforce[] = "version: STSv1\r\nmode: enforce\r\nmx: mx1.example.com\r\n"
                              "max_age: 86400\r\n";

/* A cached enforce policy of domain with id, fetched a day ago, unexpired. */
static void put_policy(struct fx *f, const char *domain, const char *id)
{
    int64_t now = (int64_t)time(NULL);
    struct mxg_sts_cache_entry e;
    memset(&e, 0, sizeof e);
    snprintf(e.domain, sizeof e.domain, "%s", domain);
    snprintf(e.id, sizeof e.id, "%s", id);
    e.body = (char *)(uintptr_t)enforce;
    e.body_len = sizeof enforce - 1;
    e.fetched_at = now - 86400;
    e.expires_at = now + 3600;
    assert_int_equal(mxg_sts_cache_put(f->cache, &e), 0);
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    char err[256];
    if (!f)
        return -1;
    mxg_log_setup(getenv("MXG_TEST_DEBUG") ? MXG_LOG_DEBUG : MXG_LOG_ERR, 0);
    uv_loop_init(&f->loop);
    if (dfx_start(&f->loop, &f->srv, f->anchor) < 0)
        return -1;
    mxg_config_defaults(&f->cfg);
    dfx_config(&f->cfg, &f->srv, f->anchor);
    f->cfg.dane_enabled = 1; /* validate (the resolver's DNSSEC switch) */
    if (!(f->dns = mxg_dns_new(&f->loop, &f->cfg, err, sizeof err))) {
        fprintf(stderr, "mxg_dns_new: %s\n", err);
        return -1;
    }
    snprintf(f->dir, sizeof f->dir, "/tmp/mxg-sts-txt-XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    snprintf(f->path, sizeof f->path, "%s/mta-sts.db", f->dir);
    if (!(f->cache = mxg_sts_cache_open(f->path, err, sizeof err)))
        return -1;
    if (!(f->sts = mxg_sts_new(&f->loop, &f->cfg, f->dns, NULL, f->cache)))
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    mxg_sts_free(f->sts);
    mxg_dns_free(f->dns);
    dfx_stop(&f->srv);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    dfx_free(&f->srv, f->anchor);
    mxg_sts_cache_close(f->cache);
    sts_db_remove(f->path, f->dir);
    free(f);
    return 0;
}


/* get domain and run the loop until the answer. */
static void get(struct fx *f, const char *domain, struct got *g)
{
    struct mxg_sts_query *q = NULL;
    memset(g, 0, sizeof *g);
    assert_int_equal(mxg_sts_get(f->sts, domain, sts_got_result, g, &q), 0);
    while (g->calls == 0)
        uv_run(&f->loop, UV_RUN_ONCE);
    assert_int_equal(g->calls, 1);
}

/* 40 records, the STS one last, nothing cached: the id is found and the
 * policy fetched (here the fetch fails: FAILED, fetch error). The old code
 * kept 16 records: NO_POLICY ("no MTA-STS record"). */
static void t_sts_record_last_of_40(void **state)
{
    struct fx *f = *state;
    struct got g;
    get(f, "many.sec", &g);
    assert_int_equal(g.r.outcome, MXG_STS_FAILED);
    assert_int_equal(g.r.failure, MXG_STS_FAIL_FETCH);
    assert_non_null(strstr(g.r.why, "mta-sts.many.sec"));
}

/* The same RRset with a cached policy of another id, fetched a day ago:
 * the new id is seen, a refetch is tried; its failure keeps the cached
 * policy, reported as a failed refresh. The old code saw no STS record and
 * used the cached policy without asking (failure none). */
static void t_sts_record_last_new_id(void **state)
{
    struct fx *f = *state;
    put_policy(f, "many.sec", "older");
    struct got g;
    get(f, "many.sec", &g);
    assert_int_equal(g.r.outcome, MXG_STS_POLICY);
    assert_int_equal(g.r.from_cache, 1);
    assert_string_equal(g.r.id, "older");
    assert_int_equal(g.r.failure, MXG_STS_FAIL_FETCH);
    assert_non_null(strstr(g.r.why, "refresh failed"));

    /* cached with the id of the 40th record: current, used as it is */
    put_policy(f, "many.sec", "last");
    get(f, "many.sec", &g);
    assert_int_equal(g.r.outcome, MXG_STS_POLICY);
    assert_string_equal(g.r.id, "last");
    assert_int_equal(g.r.failure, MXG_STS_FAIL_NONE);
    assert_non_null(strstr(g.r.why, "still current"));
}

/* Two STS records (1st and 30th of 40): no policy (RFC 8461 §3.1), the TXT
 * is invalid. The old code kept 16 records, saw one, and fetched by it. */
static void t_two_sts_records(void **state)
{
    struct fx *f = *state;
    struct got g;
    get(f, "dup.sec", &g);
    assert_int_equal(g.r.outcome, MXG_STS_FAILED);
    assert_int_equal(g.r.failure, MXG_STS_FAIL_INVALID);
    assert_non_null(strstr(g.r.why, "several"));
}

/* The TXT lookup fails (SERVFAIL: TEMPFAIL, as for an RRset dns.c cannot
 * keep whole): a cached, unexpired policy keeps applying; nothing cached:
 * FAILED with a fetch error, never NO_POLICY. */
static void t_failed_lookup(void **state)
{
    struct fx *f = *state;
    struct got g;
    get(f, "servfail.sec", &g);
    assert_int_equal(g.r.outcome, MXG_STS_FAILED);
    assert_int_equal(g.r.failure, MXG_STS_FAIL_FETCH);
    assert_non_null(strstr(g.r.why, "TXT lookup of _mta-sts.servfail.sec failed"));

    put_policy(f, "servfail.sec", "id1");
    get(f, "servfail.sec", &g);
    assert_int_equal(g.r.outcome, MXG_STS_POLICY);
    assert_int_equal(g.r.policy.mode, MXG_STS_MODE_ENFORCE);
    assert_int_equal(g.r.from_cache, 1);
    assert_string_equal(g.r.id, "id1");
    assert_non_null(strstr(g.r.why, "failed"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(t_sts_record_last_of_40, setup, teardown),
        cmocka_unit_test_setup_teardown(t_sts_record_last_new_id, setup, teardown),
        cmocka_unit_test_setup_teardown(t_two_sts_records, setup, teardown),
        cmocka_unit_test_setup_teardown(t_failed_lookup, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
