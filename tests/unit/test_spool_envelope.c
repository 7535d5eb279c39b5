/* tests/unit/test_spool_envelope.c — spool/ envelope JSON: encode/decode
 * round trip of every field, and a table of malformed envelopes that must
 * all be refused with -EINVAL and a reason (never a crash, nothing leaked,
 * never a truncated field). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "spool/spool.h"

static void test_roundtrip(void **state)
{
    (void)state;
    struct mxg_spool_env e, d;
    memset(&e, 0, sizeof e);
    snprintf(e.id, sizeof e.id, "1718000000000-00AF-4242");
    e.kind = MXG_SPOOL_DSN;
    e.created_ms = 1718000000000LL;
    e.next_attempt_ms = 1718000300000LL;
    e.attempts = 7;
    snprintf(e.from, sizeof e.from, "j\xc3\xb6rg@example.org"); /* UTF-8 survives */
    e.mp.size = 12345;
    e.mp.body = MXG_BODY_7BIT;
    e.mp.smtputf8 = 1;
    snprintf(e.mp.ret, sizeof e.mp.ret, "FULL");
    snprintf(e.mp.envid, sizeof e.mp.envid, "abc+2Bdef");
    snprintf(e.client, sizeof e.client, "::1");
    snprintf(e.helo, sizeof e.helo, "legacy.example");
    e.body_size = 99999;
    assert_int_equal(mxg_spool_env_add_rcpt(&e, "a@x.example", "x.example", NULL), 0);
    struct mxg_rcpt_params rp = {"SUCCESS,FAILURE", "rfc822;b+2Bx@y.example"};
    assert_int_equal(mxg_spool_env_add_rcpt(&e, "b+x@y.example", "y.example", &rp), 0);
    e.rcpts[0].state = MXG_RCPT_FAILED;
    e.rcpts[0].dsn_done = 1;
    e.rcpts[0].expired = 1;
    e.rcpts[0].last_code = 421;
    snprintf(e.rcpts[0].last_reply, sizeof e.rcpts[0].last_reply, "451 4.4.2 \\ \"quoted\"\ttab");
    snprintf(e.rcpts[0].last_mx, sizeof e.rcpts[0].last_mx, "mx.x.example[2001:db8::1]");
    e.rcpts[1].state = MXG_RCPT_DELIVERED;

    char *json = mxg_spool_env_encode(&e);
    assert_non_null(json);
    assert_non_null(strstr(json, "\"version\": 1"));
    char err[256];
    assert_int_equal(mxg_spool_env_decode(json, strlen(json), &d, err, sizeof err), 0);
    free(json);
    assert_string_equal(d.id, e.id);
    assert_int_equal(d.kind, MXG_SPOOL_DSN);
    assert_int_equal(d.created_ms, e.created_ms);
    assert_int_equal(d.next_attempt_ms, e.next_attempt_ms);
    assert_int_equal(d.attempts, 7);
    assert_string_equal(d.from, e.from);
    assert_int_equal(d.mp.size, 12345);
    assert_int_equal(d.mp.body, MXG_BODY_7BIT);
    assert_int_equal(d.mp.smtputf8, 1);
    assert_string_equal(d.mp.ret, "FULL");
    assert_string_equal(d.mp.envid, "abc+2Bdef");
    assert_string_equal(d.client, "::1");
    assert_string_equal(d.helo, "legacy.example");
    assert_int_equal(d.body_size, 99999);
    assert_int_equal(d.n_rcpts, 2);
    assert_int_equal(d.rcpts[0].state, MXG_RCPT_FAILED);
    assert_int_equal(d.rcpts[0].dsn_done, 1);
    assert_int_equal(d.rcpts[0].expired, 1);
    assert_int_equal(d.rcpts[0].last_code, 421);
    assert_string_equal(d.rcpts[0].last_reply, e.rcpts[0].last_reply);
    assert_string_equal(d.rcpts[0].last_mx, e.rcpts[0].last_mx);
    assert_int_equal(d.rcpts[1].state, MXG_RCPT_DELIVERED);
    assert_string_equal(d.rcpts[1].rp.notify, "SUCCESS,FAILURE");
    assert_string_equal(d.rcpts[1].rp.orcpt, "rfc822;b+2Bx@y.example");
    mxg_spool_env_free(&e);
    mxg_spool_env_free(&d);
    assert_null(d.rcpts);
    assert_int_equal(d.n_rcpts, 0);
}

/* An MX's reply text with Latin-1 octets and control characters (hostile_table.txt rows
 * 4xx8bit / malformed, legs and queue): the entry is still written (jansson refuses a string
 * that is not UTF-8; the queue then could not record a result and retried at every scan),
 * the text stored with '?' for each such octet. */
static void test_remote_text_not_utf8(void **state)
{
    (void)state;
    struct mxg_spool_env e, d;
    memset(&e, 0, sizeof e);
    snprintf(e.id, sizeof e.id, "1718000000000-00AF-4242");
    snprintf(e.from, sizeof e.from, "a@example.org");
    assert_int_equal(mxg_spool_env_add_rcpt(&e, "a@x.example", "x.example", NULL), 0);
    e.rcpts[0].last_code = 450;
    snprintf(e.rcpts[0].last_reply, sizeof e.rcpts[0].last_reply,
             "450 4.7.0 verz\xf6gert \xe4\x01\x1b[2J\x7f\tend");
    snprintf(e.rcpts[0].last_mx, sizeof e.rcpts[0].last_mx, "mx\xff.x.example[192.0.2.1]");
    char *json = mxg_spool_env_encode(&e);
    assert_non_null(json);
    char err[256];
    assert_int_equal(mxg_spool_env_decode(json, strlen(json), &d, err, sizeof err), 0);
    free(json);
    assert_string_equal(d.rcpts[0].last_reply, "450 4.7.0 verz?gert ???[2J?\tend");
    assert_string_equal(d.rcpts[0].last_mx, "mx?.x.example[192.0.2.1]");
    mxg_spool_env_free(&e);
    mxg_spool_env_free(&d);
}

static void test_add_rcpt_too_long(void **state)
{
    (void)state;
    struct mxg_spool_env e;
    char big[400];
    memset(&e, 0, sizeof e);
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = 0;
    assert_int_equal(mxg_spool_env_add_rcpt(&e, big, "x.example", NULL), -EINVAL);
    assert_int_equal(mxg_spool_env_add_rcpt(&e, "a@b", big, NULL), -EINVAL);
    assert_int_equal(e.n_rcpts, 0);
    mxg_spool_env_free(&e);
}

#define GOOD_HEAD "\"version\":1,\"id\":\"1-2-3\",\"kind\":\"message\",\"created_ms\":1," \
                  "\"next_attempt_ms\":0,\"attempts\":0,\"from\":\"\",\"body_size\":3"
#define GOOD_RCPT "{\"addr\":\"a@b.example\",\"domain\":\"b.example\",\"state\":\"pending\"}"

static void test_minimal_accepted(void **state)
{
    (void)state;
    const char *j = "{" GOOD_HEAD ",\"rcpts\":[" GOOD_RCPT "],\"future_key\":[1,2]}";
    struct mxg_spool_env d;
    char err[256];
    assert_int_equal(mxg_spool_env_decode(j, strlen(j), &d, err, sizeof err), 0);
    assert_int_equal(d.n_rcpts, 1);
    assert_string_equal(d.from, "");
    mxg_spool_env_free(&d);
}

static void test_malformed(void **state)
{
    (void)state;
    char longaddr[700];
    char tmp[1200];
    memset(longaddr, 'x', 300);
    longaddr[300] = 0;
    static const struct {
        const char *json, *why;
    } cases[] = {
        {"", "not JSON"},
        {"{", "not JSON"},
        {"[1,2]", "not a JSON object"},
        {"{\"id\":\"1-2-3\"}", "version"},
        {"{\"version\":\"1\"}", "version"},
        {"{\"version\":2," GOOD_HEAD "}", "not JSON"}, /* duplicate key "version" */
        {"{\"version\":2}", "unsupported version 2"},
        {"{\"version\":0}", "unsupported version 0"},
        {"{" GOOD_HEAD "}", "rcpts"},
        {"{" GOOD_HEAD ",\"rcpts\":[]}", "rcpts"},
        {"{" GOOD_HEAD ",\"rcpts\":{}}", "rcpts"},
        {"{" GOOD_HEAD ",\"rcpts\":[1]}", "rcpts[0]"},
        {"{" GOOD_HEAD ",\"rcpts\":[" GOOD_RCPT ",{\"addr\":\"x@y\",\"domain\":\"y\","
         "\"state\":\"sent\"}]}", "rcpts[1].state"},
        {"{" GOOD_HEAD ",\"rcpts\":[{\"addr\":\"x@y\",\"domain\":\"y\"}]}", "rcpts[0].state"},
        {"{" GOOD_HEAD ",\"rcpts\":[{\"addr\":\"\",\"domain\":\"y\",\"state\":\"pending\"}]}",
         "empty"},
        {"{" GOOD_HEAD ",\"rcpts\":[{\"addr\":\"x@y\",\"domain\":\"y\",\"state\":\"pending\","
         "\"last_code\":\"250\"}]}", "last_code"},
        {"{" GOOD_HEAD ",\"rcpts\":[{\"addr\":\"x@y\",\"domain\":\"y\",\"state\":\"pending\","
         "\"last_code\":1000}]}", "last_code"},
        {"{" GOOD_HEAD ",\"rcpts\":[{\"addr\":\"x\\u0000@y\",\"domain\":\"y\",\"state\":"
         "\"pending\"}]}", "NUL"},
        {"{" GOOD_HEAD ",\"rcpts\":[{\"addr\":\"x@y\",\"domain\":\"y\",\"state\":\"pending\","
         "\"dsn_done\":1}]}", "dsn_done"},
        {"{\"version\":1,\"id\":\"../../x\",\"kind\":\"message\"}", "invalid id"},
        {"{\"version\":1,\"id\":\"1-2-3\",\"kind\":\"bounce\"}", "kind"},
        {"{\"version\":1,\"id\":\"1-2-3\",\"kind\":\"message\",\"created_ms\":-5}", "created_ms"},
        {"{\"version\":1,\"id\":\"1-2-3\",\"kind\":\"message\",\"created_ms\":1.5}", "created_ms"},
        {"{\"version\":1,\"id\":\"1-2-3\",\"kind\":\"message\",\"created_ms\":1,"
         "\"next_attempt_ms\":0,\"attempts\":0,\"from\":null}", "from"},
        {"{" GOOD_HEAD ",\"mail\":[],\"rcpts\":[" GOOD_RCPT "]}", "mail"},
        {"{" GOOD_HEAD ",\"mail\":{\"body\":\"binarymime\"},\"rcpts\":[" GOOD_RCPT "]}",
         "mail.body"},
        {"{" GOOD_HEAD ",\"mail\":{\"ret\":\"FULLFULLFULL\"},\"rcpts\":[" GOOD_RCPT "]}",
         "mail.ret"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct mxg_spool_env d;
        char err[256] = "";
        int rc = mxg_spool_env_decode(cases[i].json, strlen(cases[i].json), &d, err, sizeof err);
        if (rc != -EINVAL || !strstr(err, cases[i].why))
            fail_msg("case %zu (%s): rc %d, err \"%s\", want \"%s\"", i, cases[i].json, rc, err,
                     cases[i].why);
        assert_null(d.rcpts);
    }
    /* a field too long for its buffer is refused, never truncated */
    snprintf(tmp, sizeof tmp, "{" GOOD_HEAD ",\"rcpts\":[{\"addr\":\"%s\",\"domain\":\"y\","
             "\"state\":\"pending\"}]}", longaddr);
    struct mxg_spool_env d;
    char err[256] = "";
    assert_int_equal(mxg_spool_env_decode(tmp, strlen(tmp), &d, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "rcpts[0].addr is too long"));
    /* binary garbage */
    char junk[256];
    for (int i = 0; i < 256; i++)
        junk[i] = (char)(i * 37 + 11);
    assert_int_equal(mxg_spool_env_decode(junk, sizeof junk, &d, err, sizeof err), -EINVAL);
    /* NULL err buffer is fine */
    assert_int_equal(mxg_spool_env_decode("{", 1, &d, NULL, 0), -EINVAL);
}

static void test_names(void **state)
{
    (void)state;
    assert_string_equal(mxg_spool_kind_name(MXG_SPOOL_MESSAGE), "message");
    assert_string_equal(mxg_spool_kind_name(MXG_SPOOL_DSN), "dsn");
    assert_string_equal(mxg_spool_rcpt_state_name(MXG_RCPT_PENDING), "pending");
    assert_string_equal(mxg_spool_rcpt_state_name(MXG_RCPT_DELIVERED), "delivered");
    assert_string_equal(mxg_spool_rcpt_state_name(MXG_RCPT_FAILED), "failed");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_remote_text_not_utf8),
        cmocka_unit_test(test_add_rcpt_too_long),
        cmocka_unit_test(test_minimal_accepted),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
