/* tests/unit/test_policy_sts_merge.c — policy/sts_merge: which MTA-STS row the local cache
 * keeps when the fleet hands one over: a stale (older, expired) row never replaces the local
 * copy, a newer valid fetch does, the same id's expiry is never shortened, and invalid rows
 * (unparseable body, expired, no id) are refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "policy/sts_merge.h"

#define NOW 1000000000LL
static const char BODY[] = "version: STSv1\r\nmode: enforce\r\nmx: mx.example.com\r\nmax_age: 86400\r\n";

/* Fills e as a row of example.com. */
static void row(struct mxg_sts_cache_entry *e, const char *id, const char *body, int64_t f,
                int64_t x)
{
    memset(e, 0, sizeof *e);
    snprintf(e->domain, sizeof e->domain, "example.com");
    snprintf(e->id, sizeof e->id, "%s", id);
    e->body = (char *)body;
    e->body_len = strlen(body);
    e->fetched_at = f;
    e->expires_at = x;
}

/* The scenario: local refreshed for weeks; the database's row is old and expired. */
static void stale_row_kept_out(void **s)
{
    struct mxg_sts_cache_entry l, in, out;
    char why[256];
    (void)s;
    row(&l, "id1", BODY, NOW - 60, NOW + 86400);
    row(&in, "id1", BODY, NOW - 30 * 86400, NOW - 29 * 86400);
    assert_int_equal(mxg_sts_merge(&l, &in, NOW, &out, why, sizeof why), MXG_STS_MERGE_REFUSE);
    /* older but unexpired: kept out as well */
    row(&in, "id0", BODY, NOW - 3600, NOW + 3600);
    assert_int_equal(mxg_sts_merge(&l, &in, NOW, &out, why, sizeof why), MXG_STS_MERGE_KEEP);
    row(&in, "id0", BODY, NOW - 60, NOW + 3600); /* as recent: kept out */
    assert_int_equal(mxg_sts_merge(&l, &in, NOW, &out, why, sizeof why), MXG_STS_MERGE_KEEP);
}

/* A newer fetch wins; for the same id the expiry is never shortened. */
static void newer_taken(void **s)
{
    struct mxg_sts_cache_entry l, in, out;
    char why[256];
    (void)s;
    row(&l, "id1", BODY, NOW - 60, NOW + 86400);
    row(&in, "id2", BODY, NOW - 10, NOW + 3600);
    assert_int_equal(mxg_sts_merge(&l, &in, NOW, &out, why, sizeof why), MXG_STS_MERGE_TAKE);
    assert_string_equal(out.id, "id2");
    assert_int_equal(out.expires_at, NOW + 3600); /* another id: the newer fetch rules */
    row(&in, "id1", BODY, NOW - 10, NOW + 3600);
    assert_int_equal(mxg_sts_merge(&l, &in, NOW, &out, why, sizeof why), MXG_STS_MERGE_TAKE);
    assert_int_equal(out.fetched_at, NOW - 10);
    assert_int_equal(out.expires_at, NOW + 86400); /* same id: not shortened */
    assert_int_equal(mxg_sts_merge(NULL, &in, NOW, &out, why, sizeof why), MXG_STS_MERGE_TAKE);
    assert_int_equal(out.expires_at, NOW + 3600);
    /* the local row has expired: a valid older row is better than none */
    row(&l, "id1", BODY, NOW - 10, NOW - 1);
    row(&in, "id0", BODY, NOW - 20, NOW + 60);
    assert_int_equal(mxg_sts_merge(&l, &in, NOW, &out, why, sizeof why), MXG_STS_MERGE_TAKE);
}

/* Invalid pulled rows are refused, with a reason. */
static void invalid_refused(void **s)
{
    struct mxg_sts_cache_entry l, in, out;
    char why[256];
    (void)s;
    row(&l, "id1", BODY, NOW - 60, NOW + 86400);
    row(&in, "id2", "garbage", NOW, NOW + 86400);
    assert_int_equal(mxg_sts_merge(&l, &in, NOW, &out, why, sizeof why), MXG_STS_MERGE_REFUSE);
    assert_non_null(strstr(why, "invalid policy"));
    assert_int_equal(mxg_sts_merge(NULL, &in, NOW, &out, why, sizeof why), MXG_STS_MERGE_REFUSE);
    row(&in, "id2", BODY, NOW, NOW);
    assert_int_equal(mxg_sts_merge(NULL, &in, NOW, &out, why, sizeof why), MXG_STS_MERGE_REFUSE);
    assert_non_null(strstr(why, "expired"));
    row(&in, "", BODY, NOW, NOW + 60);
    assert_int_equal(mxg_sts_merge(NULL, &in, NOW, &out, why, sizeof why), MXG_STS_MERGE_REFUSE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(stale_row_kept_out),
        cmocka_unit_test(newer_taken),
        cmocka_unit_test(invalid_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
