/* tests/unit/test_report_delivery.c — report/ delivery state: one row per
 * (day, domain, rua); add is idempotent, update sets attempts /
 * next_attempt_at / status / last_error, list filters by status and due
 * time in next_attempt_at order and lets the callback update rows, rows
 * persist across a restart, bad arguments are refused. */
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

#include "report/tlsrpt.h"
#include "report_fixture.h"


struct rows {
    int n;
    struct mxg_rpt_delivery d[16];
};

static void collect(void *arg, const struct mxg_rpt_delivery *d)
{
    struct rows *r = arg;
    if (r->n < 16)
        r->d[r->n++] = *d;
}

static int list(struct fx *f, int status, int64_t due_by, struct rows *out)
{
    memset(out, 0, sizeof *out);
    return mxg_rpt_delivery_list(f->r, status, due_by, collect, out);
}

#define MAIL "mailto:tlsrpt@example.com"
#define HTTPS "https://reports.example.com/tlsrpt"

static void test_add_update_list(void **state)
{
    struct fx *f = *state;
    struct rows rows;
    int64_t before = (int64_t)time(NULL);

    assert_int_equal(mxg_rpt_delivery_add(f->r, "2024-05-01", "Example.COM", MAIL, 1000), 1);
    assert_int_equal(mxg_rpt_delivery_add(f->r, "2024-05-01", "example.com", HTTPS, 900), 1);
    assert_int_equal(mxg_rpt_delivery_add(f->r, "2024-05-01", "example.com", MAIL, 5), 0);
    assert_int_equal(mxg_rpt_delivery_add(f->r, "2024-05-02", "example.com", MAIL, 2000), 1);

    assert_int_equal(list(f, -1, 0, &rows), 3);
    assert_string_equal(rows.d[0].rua, HTTPS); /* next_attempt_at order */
    assert_int_equal(rows.d[0].next_attempt_at, 900);
    assert_string_equal(rows.d[1].rua, MAIL);
    assert_string_equal(rows.d[1].domain, "example.com");
    assert_int_equal(rows.d[1].next_attempt_at, 1000); /* the second add changed nothing */
    assert_string_equal(rows.d[2].day, "2024-05-02");
    for (int i = 0; i < 3; i++) {
        assert_int_equal(rows.d[i].status, MXG_RPT_PENDING);
        assert_int_equal(rows.d[i].attempts, 0);
        assert_string_equal(rows.d[i].last_error, "");
        assert_true(rows.d[i].updated_at >= before);
    }

    /* a failed attempt, then a success on the other rua */
    struct mxg_rpt_delivery d = rows.d[1];
    d.attempts = 1;
    d.next_attempt_at = 1600;
    snprintf(d.last_error, sizeof d.last_error, "451 4.4.1 try later");
    assert_int_equal(mxg_rpt_delivery_update(f->r, &d), 0);
    d = rows.d[0];
    d.attempts = 1;
    d.status = MXG_RPT_SENT;
    assert_int_equal(mxg_rpt_delivery_update(f->r, &d), 0);

    assert_int_equal(list(f, MXG_RPT_PENDING, 0, &rows), 2);
    assert_string_equal(rows.d[0].rua, MAIL);
    assert_string_equal(rows.d[0].day, "2024-05-01");
    assert_int_equal(rows.d[0].attempts, 1);
    assert_int_equal(rows.d[0].next_attempt_at, 1600);
    assert_string_equal(rows.d[0].last_error, "451 4.4.1 try later");
    assert_int_equal(list(f, MXG_RPT_SENT, 0, &rows), 1);
    assert_string_equal(rows.d[0].rua, HTTPS);
    assert_string_equal(mxg_rpt_dstatus_name(rows.d[0].status), "sent");
    assert_int_equal(list(f, MXG_RPT_GAVE_UP, 0, &rows), 0);

    /* due filter: pending rows due by 1700 → just the first */
    assert_int_equal(list(f, MXG_RPT_PENDING, 1700, &rows), 1);
    assert_int_equal(list(f, MXG_RPT_PENDING, 2000, &rows), 2);
    assert_int_equal(list(f, -1, 899, &rows), 0);
}

/* The callback may update the rows it is given. */
struct giveup {
    struct mxg_rpt *r;
    int rc;
};

static void give_up(void *arg, const struct mxg_rpt_delivery *d)
{
    struct giveup *g = arg;
    struct mxg_rpt_delivery u = *d;
    u.status = MXG_RPT_GAVE_UP;
    u.attempts = d->attempts + 1;
    snprintf(u.last_error, sizeof u.last_error, "550 5.1.1 no such user");
    g->rc |= mxg_rpt_delivery_update(g->r, &u);
}

static void test_update_from_callback_and_restart(void **state)
{
    struct fx *f = *state;
    struct rows rows;
    struct giveup g = {f->r, 0};
    assert_int_equal(mxg_rpt_delivery_add(f->r, "2024-05-01", "a.example", MAIL, 10), 1);
    assert_int_equal(mxg_rpt_delivery_add(f->r, "2024-05-01", "b.example", MAIL, 20), 1);
    assert_int_equal(mxg_rpt_delivery_list(f->r, MXG_RPT_PENDING, 0, give_up, &g), 2);
    assert_int_equal(g.rc, 0);

    mxg_rpt_close(f->r);
    f->r = mxg_rpt_open(NULL, f->path, 0, f->err, sizeof f->err);
    assert_non_null(f->r);
    assert_int_equal(list(f, MXG_RPT_GAVE_UP, 0, &rows), 2);
    assert_int_equal(rows.d[0].attempts, 1);
    assert_string_equal(rows.d[1].last_error, "550 5.1.1 no such user");
    assert_int_equal(list(f, MXG_RPT_PENDING, 0, &rows), 0);
}

static void test_errors(void **state)
{
    struct fx *f = *state;
    struct mxg_rpt_delivery d = {0};
    char longrua[600];
    memset(longrua, 'x', sizeof longrua - 1);
    longrua[sizeof longrua - 1] = '\0';

    assert_int_equal(mxg_rpt_delivery_add(f->r, "2024-5-1", "example.com", MAIL, 0),
                     MXG_RPT_EINVAL);
    assert_int_equal(mxg_rpt_delivery_add(f->r, "2024-05-01", "", MAIL, 0), MXG_RPT_EINVAL);
    assert_int_equal(mxg_rpt_delivery_add(f->r, "2024-05-01", "example.com", "", 0),
                     MXG_RPT_EINVAL);
    assert_int_equal(mxg_rpt_delivery_add(f->r, "2024-05-01", "example.com", longrua, 0),
                     MXG_RPT_EINVAL);
    assert_int_equal(mxg_rpt_delivery_add(NULL, "2024-05-01", "example.com", MAIL, 0),
                     MXG_RPT_EINVAL);

    snprintf(d.day, sizeof d.day, "2024-05-01");
    snprintf(d.domain, sizeof d.domain, "example.com");
    snprintf(d.rua, sizeof d.rua, MAIL);
    assert_int_equal(mxg_rpt_delivery_update(f->r, &d), MXG_RPT_ENODATA);
    d.status = (enum mxg_rpt_dstatus)9;
    assert_int_equal(mxg_rpt_delivery_update(f->r, &d), MXG_RPT_EINVAL);
    d.status = MXG_RPT_SENT;
    d.attempts = -1;
    assert_int_equal(mxg_rpt_delivery_update(f->r, &d), MXG_RPT_EINVAL);
    assert_int_equal(mxg_rpt_delivery_list(f->r, 7, 0, collect, NULL), MXG_RPT_EINVAL);
    assert_int_equal(mxg_rpt_delivery_list(f->r, -1, 0, NULL, NULL), MXG_RPT_EINVAL);
    assert_null(mxg_rpt_dstatus_name((enum mxg_rpt_dstatus)3));
    assert_string_equal(mxg_rpt_dstatus_name(MXG_RPT_GAVE_UP), "gave-up");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_add_update_list, rpt_fixture_setup, rpt_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_update_from_callback_and_restart, rpt_fixture_setup, rpt_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_errors, rpt_fixture_setup, rpt_fixture_teardown),
    };
    return cmocka_run_group_tests_name("report_delivery", tests, NULL, NULL);
}
