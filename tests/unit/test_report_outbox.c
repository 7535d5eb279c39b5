/* tests/unit/test_report_outbox.c — report/'s fleet outbox (rpt_outbox.c): each flushed
 * batch of counters is one outbox row; take hands them over oldest first; done removes
 * several ids in one call (ids that are gone are fine); busy never waits and says 0 without
 * a background write. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "report/tlsrpt.h"

#define T0 1714564800 /* 2024-05-01T12:00:00Z */

struct taken {
    char ids[8][64];
    int n;
};

/* take() callback: keep the id, check the payload names the domain. */
static void put(void *arg, const char *id, const char *payload)
{
    struct taken *t = arg;
    assert_non_null(strstr(payload, "\"domain\""));
    if (t->n < 8)
        snprintf(t->ids[t->n++], sizeof t->ids[0], "%s", id);
}

/* One successful session for domain, flushed: one batch. */
static void one_batch(struct mxg_rpt *r, const char *domain)
{
    struct mxg_rpt_policy p = {MXG_RPT_STS, domain, "version: STSv1", "mx.example"};
    struct mxg_rpt_result res = {.success = 1};
    mxg_rpt_record(r, &p, &res, T0);
    assert_int_equal(mxg_rpt_flush(r), 0);
}

static void t_outbox_done_many(void **state)
{
    (void)state;
    char dir[] = "/tmp/mxg-outbox.XXXXXX", path[128], err[256];
    struct taken t = {0};
    const char *ids[3];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/tlsrpt.db", dir);
    struct mxg_rpt *r = mxg_rpt_open(NULL, path, 0, err, sizeof err);
    assert_non_null(r);
    assert_int_equal(mxg_rpt_set_outbox(r, 1), 0);
    one_batch(r, "a.example");
    one_batch(r, "b.example");
    one_batch(r, "c.example");
    assert_int_equal(mxg_rpt_outbox_busy(r), 0);
    assert_int_equal(mxg_rpt_outbox_count(r), 3);
    assert_int_equal(mxg_rpt_outbox_take(r, 10, put, &t), 3);
    assert_int_equal(t.n, 3);
    ids[0] = t.ids[0];
    ids[1] = t.ids[2];
    ids[2] = "gone-already";
    assert_int_equal(mxg_rpt_outbox_done(r, ids, 3), 0);
    assert_int_equal(mxg_rpt_outbox_count(r), 1);
    memset(&t, 0, sizeof t);
    assert_int_equal(mxg_rpt_outbox_take(r, 10, put, &t), 1);
    assert_int_equal(mxg_rpt_outbox_done(r, ids, 0), 0);
    ids[0] = t.ids[0];
    assert_int_equal(mxg_rpt_outbox_done(r, ids, 1), 0);
    assert_int_equal(mxg_rpt_outbox_count(r), 0);
    mxg_rpt_close(r);
    unlink(path);
    char more[160];
    snprintf(more, sizeof more, "%s-wal", path);
    unlink(more);
    snprintf(more, sizeof more, "%s-shm", path);
    unlink(more);
    assert_int_equal(rmdir(dir), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_outbox_done_many),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
