/* tests/unit/test_spool_settle.c — spool/ mxg_spool_settle(): exactly one
 * DSN entry per settle for the newly failed recipients (addressed to the
 * sender, from <>, kind DSN, due now, with the right recipients in it),
 * none for the null sender, for DSN entries, for NOTIFY=NEVER or NOTIFY
 * without FAILURE; the entry is rewritten while recipients are pending and
 * removed when none are; a settle that cannot store its DSN changes nothing;
 * expired recipients are reported with 4.4.7; RET=FULL returns the body. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "spool_fixture.h"

static const char BODY[] = "From: a@example.org\r\nSubject: s\r\n\r\nline one\r\n..dot\r\n";
#define NOW 1718000000000LL

static void put(struct sfx *f, struct mxg_spool_env *env)
{
    assert_int_equal(mxg_spool_put(f->sp, BODY, sizeof BODY - 1, env, f->err, sizeof f->err), 0);
}

static int n_entries(struct sfx *f)
{
    char(*ids)[MXG_SPOOL_ID_MAX];
    int n;
    assert_int_equal(mxg_spool_list(f->sp, &ids, &n), 0);
    free(ids);
    return n;
}

static char *dsn_body(struct sfx *f, const char *id)
{
    int fd = mxg_spool_body_open(f->sp, id);
    assert_true(fd >= 0);
    char *b = spool_slurp_fd(fd, NULL);
    close(fd);
    return b;
}

static void fail_rcpt(struct mxg_spool_rcpt *r, int code, const char *reply)
{
    r->state = MXG_RCPT_FAILED;
    r->last_code = code;
    snprintf(r->last_reply, sizeof r->last_reply, "%s", reply);
    snprintf(r->last_mx, sizeof r->last_mx, "mx.%s[192.0.2.1]", r->domain);
}

static void test_mixed_then_done(void **state)
{
    struct sfx *f = *state;
    struct mxg_spool_env env;
    char dsn[MXG_SPOOL_ID_MAX];
    spool_make_env(&env, "Alice@Example.ORG", "a@d1.example,b@d2.example,c@d3.example");
    put(f, &env);
    env.rcpts[0].state = MXG_RCPT_DELIVERED;
    fail_rcpt(&env.rcpts[1], 550, "550 5.1.1 no such user");
    assert_int_equal(mxg_spool_settle(f->sp, &env, "relay.example", NOW, dsn, f->err,
                                      sizeof f->err), 0);
    assert_true(dsn[0]);
    assert_int_equal(n_entries(f), 2);
    assert_int_equal(env.rcpts[1].dsn_done, 1);

    /* the original: rewritten, c still pending, b settled */
    struct mxg_spool_env got;
    assert_int_equal(mxg_spool_load(f->sp, env.id, &got, f->err, sizeof f->err), 0);
    assert_int_equal(got.rcpts[0].state, MXG_RCPT_DELIVERED);
    assert_int_equal(got.rcpts[1].state, MXG_RCPT_FAILED);
    assert_int_equal(got.rcpts[1].dsn_done, 1);
    assert_int_equal(got.rcpts[2].state, MXG_RCPT_PENDING);
    mxg_spool_env_free(&got);

    /* the DSN entry */
    struct mxg_spool_env d;
    assert_int_equal(mxg_spool_load(f->sp, dsn, &d, f->err, sizeof f->err), 0);
    assert_int_equal(d.kind, MXG_SPOOL_DSN);
    assert_string_equal(d.from, "");
    assert_int_equal(d.n_rcpts, 1);
    assert_string_equal(d.rcpts[0].addr, "Alice@Example.ORG");
    assert_string_equal(d.rcpts[0].domain, "example.org");
    assert_int_equal(d.rcpts[0].state, MXG_RCPT_PENDING);
    assert_int_equal(d.next_attempt_ms, NOW);
    assert_int_equal(d.created_ms, NOW);
    char *b = dsn_body(f, dsn);
    assert_int_equal(d.body_size, strlen(b));
    assert_non_null(strstr(b, "Final-Recipient: rfc822; b@d2.example\r\n"));
    assert_non_null(strstr(b, "Status: 5.1.1\r\n"));
    assert_non_null(strstr(b, "Remote-MTA: dns; mx.d2.example\r\n"));
    assert_null(strstr(b, "a@d1.example"));
    assert_null(strstr(b, "c@d3.example"));
    assert_non_null(strstr(b, "Content-Type: text/rfc822-headers"));
    assert_null(strstr(b, "line one"));
    free(b);
    mxg_spool_env_free(&d);

    /* settling again without changes: no second DSN */
    assert_int_equal(mxg_spool_settle(f->sp, &env, "relay.example", NOW, dsn, f->err,
                                      sizeof f->err), 0);
    assert_string_equal(dsn, "");
    assert_int_equal(n_entries(f), 2);

    /* c expires: a DSN for c only, and the entry is gone */
    fail_rcpt(&env.rcpts[2], 451, "451 4.4.1 connection refused");
    env.rcpts[2].expired = 1;
    assert_int_equal(mxg_spool_settle(f->sp, &env, "relay.example", NOW + 1, dsn, f->err,
                                      sizeof f->err), 0);
    assert_true(dsn[0]);
    assert_false(spool_file_exists(f->dir, env.id, ".env"));
    assert_false(spool_file_exists(f->dir, env.id, ".msg"));
    assert_int_equal(n_entries(f), 2); /* the two DSNs */
    b = dsn_body(f, dsn);
    assert_non_null(strstr(b, "Final-Recipient: rfc822; c@d3.example\r\n"));
    assert_non_null(strstr(b, "Status: 4.4.7\r\n"));
    assert_non_null(strstr(b, "Action: failed\r\n"));
    assert_null(strstr(b, "b@d2.example"));
    free(b);
    mxg_spool_env_free(&env);
}

static void test_all_delivered_removed(void **state)
{
    struct sfx *f = *state;
    struct mxg_spool_env env;
    char dsn[MXG_SPOOL_ID_MAX];
    spool_make_env(&env, "s@x.example", "a@d1.example,b@d1.example");
    put(f, &env);
    env.rcpts[0].state = env.rcpts[1].state = MXG_RCPT_DELIVERED;
    assert_int_equal(mxg_spool_settle(f->sp, &env, "relay.example", NOW, dsn, f->err,
                                      sizeof f->err), 0);
    assert_string_equal(dsn, "");
    assert_int_equal(n_entries(f), 0);
    assert_int_equal(spool_count(f->dir, ""), 0);
    mxg_spool_env_free(&env);
}

/* Every case: one failed recipient; want_dsn says whether a DSN is due. */
static void test_no_dsn_cases(void **state)
{
    struct sfx *f = *state;
    static const struct {
        const char *from, *notify;
        enum mxg_spool_kind kind;
        int want_dsn;
    } cases[] = {
        {"", "", MXG_SPOOL_MESSAGE, 0},                 /* null sender */
        {"s@x.example", "NEVER", MXG_SPOOL_MESSAGE, 0},
        {"s@x.example", "SUCCESS", MXG_SPOOL_MESSAGE, 0},
        {"s@x.example", "DELAY,SUCCESS", MXG_SPOOL_MESSAGE, 0},
        {"s@x.example", "", MXG_SPOOL_DSN, 0},         /* never a DSN about a DSN */
        {"postmaster", "", MXG_SPOOL_MESSAGE, 0},      /* no domain to send it to */
        {"s@x.example", "", MXG_SPOOL_MESSAGE, 1},
        {"s@x.example", "FAILURE", MXG_SPOOL_MESSAGE, 1},
        {"s@x.example", "success,failure", MXG_SPOOL_MESSAGE, 1},
        {"s@x.example", "DELAY,FAILURE", MXG_SPOOL_MESSAGE, 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct mxg_spool_env env;
        char dsn[MXG_SPOOL_ID_MAX] = "x";
        spool_make_env(&env, cases[i].from, "r@y.example");
        env.kind = cases[i].kind;
        snprintf(env.rcpts[0].rp.notify, sizeof env.rcpts[0].rp.notify, "%s", cases[i].notify);
        put(f, &env);
        fail_rcpt(&env.rcpts[0], 554, "554 5.7.1 rejected");
        assert_int_equal(mxg_spool_settle(f->sp, &env, "relay.example", NOW, dsn, f->err,
                                          sizeof f->err), 0);
        if (cases[i].want_dsn != (dsn[0] != 0))
            fail_msg("case %zu: from <%s> notify %s kind %d: dsn \"%s\"", i, cases[i].from,
                     cases[i].notify, cases[i].kind, dsn);
        assert_false(spool_file_exists(f->dir, env.id, ".env"));
        assert_int_equal(n_entries(f), cases[i].want_dsn);
        if (dsn[0])
            assert_int_equal(mxg_spool_remove(f->sp, dsn), 0);
        mxg_spool_env_free(&env);
    }
}

/* NOTIFY differs per recipient: only those that want it are in the DSN. */
static void test_per_rcpt_notify(void **state)
{
    struct sfx *f = *state;
    struct mxg_spool_env env;
    char dsn[MXG_SPOOL_ID_MAX];
    spool_make_env(&env, "s@x.example", "never@y.example,want@y.example");
    snprintf(env.rcpts[0].rp.notify, sizeof env.rcpts[0].rp.notify, "NEVER");
    snprintf(env.rcpts[1].rp.orcpt, sizeof env.rcpts[1].rp.orcpt, "rfc822;Want+2Bx@y.example");
    put(f, &env);
    fail_rcpt(&env.rcpts[0], 550, "550 5.1.1 a");
    fail_rcpt(&env.rcpts[1], 550, "550 5.1.1 b");
    assert_int_equal(mxg_spool_settle(f->sp, &env, "relay.example", NOW, dsn, f->err,
                                      sizeof f->err), 0);
    assert_true(dsn[0]);
    char *b = dsn_body(f, dsn);
    assert_null(strstr(b, "never@y.example"));
    assert_non_null(strstr(b, "Final-Recipient: rfc822; want@y.example\r\n"));
    assert_non_null(strstr(b, "Original-Recipient: rfc822;Want+x@y.example\r\n"));
    free(b);
    mxg_spool_env_free(&env);
}

static void test_ret_full(void **state)
{
    struct sfx *f = *state;
    struct mxg_spool_env env;
    char dsn[MXG_SPOOL_ID_MAX];
    spool_make_env(&env, "s@x.example", "r@y.example");
    snprintf(env.mp.ret, sizeof env.mp.ret, "FULL");
    snprintf(env.mp.envid, sizeof env.mp.envid, "ENV+2B1");
    put(f, &env);
    fail_rcpt(&env.rcpts[0], 552, "552 5.3.4 too big");
    assert_int_equal(mxg_spool_settle(f->sp, &env, "relay.example", NOW, dsn, f->err,
                                      sizeof f->err), 0);
    char *b = dsn_body(f, dsn);
    assert_non_null(strstr(b, "Content-Type: message/rfc822\r\n"));
    assert_non_null(strstr(b, "\r\nline one\r\n..dot\r\n")); /* stuffed on the wire */
    assert_non_null(strstr(b, "Original-Envelope-Id: ENV+1\r\n"));
    free(b);
    mxg_spool_env_free(&env);
}

/* The body is gone (lost to an operator's rm): still a DSN, without the
 * returned content. */
static void test_body_missing(void **state)
{
    struct sfx *f = *state;
    struct mxg_spool_env env;
    char dsn[MXG_SPOOL_ID_MAX], p[256];
    spool_make_env(&env, "s@x.example", "r@y.example");
    put(f, &env);
    snprintf(p, sizeof p, "%s/%s.msg", f->dir, env.id);
    unlink(p);
    fail_rcpt(&env.rcpts[0], 550, "550 5.1.1 gone");
    assert_int_equal(mxg_spool_settle(f->sp, &env, "relay.example", NOW, dsn, f->err,
                                      sizeof f->err), 0);
    char *b = dsn_body(f, dsn);
    assert_null(strstr(b, "rfc822-headers"));
    assert_non_null(strstr(b, "Status: 5.1.1"));
    free(b);
    mxg_spool_env_free(&env);
}

static int fail_writes(void *arg, enum mxg_spool_op op)
{
    (void)arg;
    (void)op;
    return -ENOSPC;
}

/* Disk full while storing the DSN: the entry stays as it was on disk, so
 * the next settle sends the DSN. */
static void test_dsn_store_fails(void **state)
{
    struct sfx *f = *state;
    struct mxg_spool_env env, got;
    char dsn[MXG_SPOOL_ID_MAX];
    spool_make_env(&env, "s@x.example", "r@y.example,q@y.example");
    put(f, &env);
    fail_rcpt(&env.rcpts[0], 550, "550 5.1.1 x");
    mxg_spool_set_fault(f->sp, fail_writes, NULL);
    assert_int_equal(mxg_spool_settle(f->sp, &env, "relay.example", NOW, dsn, f->err,
                                      sizeof f->err), -ENOSPC);
    mxg_spool_set_fault(f->sp, NULL, NULL);
    assert_string_equal(dsn, "");
    assert_int_equal(env.rcpts[0].dsn_done, 0);
    assert_int_equal(n_entries(f), 1);
    assert_int_equal(mxg_spool_load(f->sp, env.id, &got, f->err, sizeof f->err), 0);
    assert_int_equal(got.rcpts[0].state, MXG_RCPT_PENDING); /* as stored before */
    mxg_spool_env_free(&got);
    assert_int_equal(mxg_spool_settle(f->sp, &env, "relay.example", NOW, dsn, f->err,
                                      sizeof f->err), 0);
    assert_true(dsn[0]);
    assert_int_equal(n_entries(f), 2);
    mxg_spool_env_free(&env);
}

/* The entry was deleted meanwhile (`mxguard queue delete`): -ENOENT, no
 * resurrection. */
static void test_deleted_meanwhile(void **state)
{
    struct sfx *f = *state;
    struct mxg_spool_env env;
    spool_make_env(&env, "", "r@y.example,q@y.example");
    put(f, &env);
    assert_int_equal(mxg_spool_remove(f->sp, env.id), 0);
    env.rcpts[0].state = MXG_RCPT_DELIVERED;
    assert_int_equal(mxg_spool_settle(f->sp, &env, "relay.example", NOW, NULL, f->err,
                                      sizeof f->err), -ENOENT);
    assert_int_equal(spool_count(f->dir, ""), 0);
    mxg_spool_env_free(&env);
}

/* RFC 3461 §5.2.2: mxg_spool_relayed_dsn() stores one "relayed" DSN for
 * the marked, delivered NOTIFY=SUCCESS recipients only; none for <>, for a
 * NOTIFY without SUCCESS, or for a DSN entry; the entry itself is unchanged. */
static void test_relayed(void **state)
{
    struct sfx *f = *state;
    struct mxg_spool_env env;
    char dsn[MXG_SPOOL_ID_MAX];
    spool_make_env(&env, "s@x.example", "ok@y.example,fail@y.example,plain@y.example,unmarked@y.example");
    for (int i = 0; i < 4; i++)
        snprintf(env.rcpts[i].rp.notify, sizeof env.rcpts[i].rp.notify, "%s",
                 i == 2 ? "FAILURE" : "SUCCESS,FAILURE");
    put(f, &env);
    unsigned char which[4] = {1, 1, 1, 0};
    for (int i = 0; i < 4; i++) {
        env.rcpts[i].state = i == 1 ? MXG_RCPT_PENDING : MXG_RCPT_DELIVERED;
        env.rcpts[i].last_code = 250;
        snprintf(env.rcpts[i].last_reply, sizeof env.rcpts[i].last_reply, "250 2.0.0 Ok");
        snprintf(env.rcpts[i].last_mx, sizeof env.rcpts[i].last_mx, "mx.y.example[192.0.2.1]");
    }
    assert_int_equal(mxg_spool_relayed_due(&env, &env.rcpts[0]), 1);
    assert_int_equal(mxg_spool_relayed_due(&env, &env.rcpts[2]), 0);
    assert_int_equal(mxg_spool_relayed_dsn(f->sp, &env, which, "relay.example", NOW, dsn, f->err,
                                           sizeof f->err), 0);
    assert_true(dsn[0]);
    assert_int_equal(n_entries(f), 2);
    struct mxg_spool_env d;
    assert_int_equal(mxg_spool_load(f->sp, dsn, &d, f->err, sizeof f->err), 0);
    assert_int_equal(d.kind, MXG_SPOOL_DSN);
    assert_string_equal(d.from, "");
    assert_int_equal(d.n_rcpts, 1);
    assert_string_equal(d.rcpts[0].addr, "s@x.example");
    mxg_spool_env_free(&d);
    char *b = dsn_body(f, dsn);
    assert_non_null(strstr(b, "Final-Recipient: rfc822; ok@y.example\r\nAction: relayed\r\n"
                              "Status: 2.0.0\r\n"));
    assert_null(strstr(b, "fail@y.example"));
    assert_null(strstr(b, "plain@y.example"));
    assert_null(strstr(b, "unmarked@y.example"));
    assert_non_null(strstr(b, "Subject: s")); /* the original's headers */
    free(b);
    /* the null sender and DSN entries get none */
    env.from[0] = 0;
    assert_int_equal(mxg_spool_relayed_dsn(f->sp, &env, which, "relay.example", NOW, dsn, f->err,
                                           sizeof f->err), 0);
    assert_string_equal(dsn, "");
    snprintf(env.from, sizeof env.from, "s@x.example");
    env.kind = MXG_SPOOL_DSN;
    assert_int_equal(mxg_spool_relayed_dsn(f->sp, &env, which, "relay.example", NOW, dsn, f->err,
                                           sizeof f->err), 0);
    assert_string_equal(dsn, "");
    assert_int_equal(n_entries(f), 2);
    mxg_spool_env_free(&env);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, spool_fixture_setup, spool_fixture_teardown)
    const struct CMUnitTest tests[] = {
        T(test_mixed_then_done), T(test_all_delivered_removed), T(test_no_dsn_cases),
        T(test_per_rcpt_notify), T(test_ret_full),              T(test_body_missing),
        T(test_dsn_store_fails), T(test_deleted_meanwhile), T(test_relayed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
