/* tests/unit/test_dns_txt.c — mxg_dns_lookup_txt() (dns/dns.c) against a
 * fake DNS server on the same libuv loop (dns_fixture.h: UDP + TCP on 127.0.0.1):
 * character-strings concatenated per record, NUL octets kept, every record
 * kept whole whatever the count or length (no cap may hide the one STS
 * record, docs/ARCHITECTURE.md §Limits),
 * CNAME chains (in the answer, and one the resolver must follow itself),
 * NODATA / NXDOMAIN / SERVFAIL / timeout, the DNSSEC status (INSECURE,
 * SECURE, BOGUS, and the worst link of a CNAME chain), the cache (a repeated
 * lookup does not reach the server, NUL octets and big RRsets survive it, the
 * TTL is honoured, failures and BOGUS answers are not cached), deferred
 * callbacks and cancellation. The zones are signed by the fixture itself
 * (tests/unit/dns_fixture.h); no external server is involved. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cmocka.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <uv.h>

#include "core/config.h"
#include "core/log.h"
#include "dns/dns.h"

#include "tests/unit/dns_fixture.h"

/* ------------------------------------------------------------ fixture */

struct fx {
    uv_loop_t loop;
    struct srv srv;
    struct mxg_config cfg;
    struct mxg_dns *dns;
    char anchor[64];
    /* results */
    int calls;
    struct mxg_txt_result res; /* txt/len: a copy the test owns (keep_res) */
};

/* Deep copy of r into f->res (the dns module's copy is gone after the callback). */
static void keep_res(struct fx *f, const struct mxg_txt_result *r)
{
    free(f->res.txt);
    memcpy(&f->res, r, sizeof *r);
    f->res.txt = NULL;
    f->res.len = NULL;
    if (r->n <= 0)
        return;
    size_t total = 0;
    for (int i = 0; i < r->n; i++)
        total += r->len[i] + 1;
    size_t n = (size_t)r->n, lens_at = n * sizeof(char *), data_at = lens_at + n * sizeof(size_t);
    char *blk = malloc(data_at + total);
    assert_non_null(blk);
    f->res.txt = (char **)(void *)blk;
    f->res.len = (size_t *)(void *)(blk + lens_at);
    size_t o = data_at;
    for (int i = 0; i < r->n; i++) {
        memcpy(blk + o, r->txt[i], r->len[i] + 1);
        f->res.txt[i] = blk + o;
        f->res.len[i] = r->len[i];
        o += r->len[i] + 1;
    }
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
    if (!(f->dns = mxg_dns_new(&f->loop, &f->cfg, err, sizeof err))) {
        fprintf(stderr, "mxg_dns_new: %s\n", err);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    mxg_dns_free(f->dns);
    dfx_stop(&f->srv);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    dfx_free(&f->srv, f->anchor);
    free(f->res.txt);
    free(f);
    return 0;
}

static void txt_cb(void *arg, const struct mxg_txt_result *r)
{
    struct fx *f = arg;
    f->calls++;
    keep_res(f, r);
}

/* Look name up and run the loop until the callback ran (once). */
static const struct mxg_txt_result *lookup(struct fx *f, const char *name)
{
    struct mxg_dns_query *q = NULL;
    f->calls = 0;
    free(f->res.txt);
    memset(&f->res, 0xA5, sizeof f->res);
    f->res.txt = NULL;
    assert_int_equal(mxg_dns_lookup_txt(f->dns, name, txt_cb, f, &q), 0);
    assert_non_null(q);
    assert_int_equal(f->calls, 0); /* never from inside the call */
    while (f->calls == 0)
        uv_run(&f->loop, UV_RUN_ONCE);
    assert_int_equal(f->calls, 1);
    return &f->res;
}

/* Records are NUL-terminated at len. */
static void check_common(const struct mxg_txt_result *r)
{
    if (r->n == 0)
        assert_null(r->txt);
    for (int i = 0; i < r->n; i++)
        assert_int_equal(r->txt[i][r->len[i]], '\0');
}

/* ------------------------------------------------------------ tests */

static void t_simple_and_cache(void **state)
{
    struct fx *f = *state;
    const struct mxg_txt_result *r = lookup(f, "TXT.Example.");
    check_common(r);
    assert_int_equal(r->status, MXG_DNS_OK);
    assert_int_equal(r->sec, MXG_SEC_INSECURE); /* proven: no DS for example. */
    assert_string_equal(r->canon, "txt.example");
    assert_int_equal(r->n, 1);
    assert_string_equal(r->txt[0], "v=STSv1; id=20240101");
    assert_int_equal(r->len[0], 20);
    assert_string_equal(r->why, "");
    int before = f->srv.txt_queries;
    assert_int_equal(before, 1);

    /* again (other spelling): the same result, from the cache */
    r = lookup(f, "txt.example");
    assert_int_equal(f->srv.txt_queries, before);
    assert_int_equal(r->status, MXG_DNS_OK);
    assert_int_equal(r->sec, MXG_SEC_INSECURE);
    assert_string_equal(r->canon, "txt.example");
    assert_int_equal(r->n, 1);
    assert_string_equal(r->txt[0], "v=STSv1; id=20240101");
    assert_int_equal(r->len[0], 20);
    assert_string_equal(r->why, "");
}

static void t_split(void **state)
{
    struct fx *f = *state;
    const struct mxg_txt_result *r = lookup(f, "split.example");
    check_common(r);
    assert_int_equal(r->status, MXG_DNS_OK);
    assert_int_equal(r->n, 1);
    assert_string_equal(r->txt[0], "v=STSv1; id=split"); /* no separator */
    assert_int_equal(r->len[0], 17);
}

static void t_nul_octets(void **state)
{
    struct fx *f = *state;
    for (int round = 0; round < 2; round++) { /* network, then cache */
        const struct mxg_txt_result *r = lookup(f, "nul.example");
        check_common(r);
        assert_int_equal(f->srv.txt_queries, 1);
        assert_int_equal(r->status, MXG_DNS_OK);
        assert_int_equal(r->n, 1);
        assert_int_equal(r->len[0], 4); /* "a\0b" + "" + "\0" */
        assert_memory_equal(r->txt[0], "a\0b\0", 5);
    }
}

/* docs/ARCHITECTURE.md §Limits: a record longer than the old 1023-octet cap is
 * kept whole (was cut and flagged: an STS id could change) — 1024 octets,
 * and 3000 octets in 12 character-strings; from the network and the cache. */
static void t_long(void **state)
{
    struct fx *f = *state;
    int q0 = 0;
    for (int round = 0; round < 2; round++) { /* network, then cache */
        const struct mxg_txt_result *r = lookup(f, "long.example");
        check_common(r);
        assert_int_equal(r->status, MXG_DNS_OK);
        assert_int_equal(r->n, 1);
        assert_int_equal(r->len[0], 1024);
        assert_int_equal(r->txt[0][0], 'a');
        assert_int_equal(r->txt[0][255], 'b');
        assert_int_equal(r->txt[0][765], 'd');
        assert_memory_equal(r->txt[0] + 1020, "tail", 5);

        r = lookup(f, "big.example");
        check_common(r);
        assert_int_equal(r->status, MXG_DNS_OK);
        assert_int_equal(r->n, 1);
        assert_int_equal(r->len[0], 3000);
        for (size_t i = 0; i < 3000; i++)
            if (r->txt[0][i] != big_octet(i))
                fail_msg("octet %zu differs", i);
        assert_string_equal(r->why, "");
        if (round == 0)
            q0 = f->srv.txt_queries; /* UDP, then TCP for the big ones (TC) */
        assert_int_equal(f->srv.txt_queries, q0); /* round 1: the cache */
    }
}

/* docs/ARCHITECTURE.md §Limits: an RRset of 40 records is kept whole, in answer
 * order (the old cap kept 16: the STS record, last, was lost and
 * "no STS record" followed); unsigned and signed (with a 3000-octet record
 * in it: SECURE), from the network and the cache. */
static void t_two_and_many(void **state)
{
    struct fx *f = *state;
    int q0 = 0;
    const struct mxg_txt_result *r = lookup(f, "two.example");
    check_common(r);
    assert_int_equal(r->status, MXG_DNS_OK);
    assert_int_equal(r->n, 2);
    assert_string_equal(r->txt[0], "first"); /* answer order */
    assert_string_equal(r->txt[1], "second");
    for (int round = 0; round < 2; round++) { /* network, then cache */
        r = lookup(f, "many.example");
        check_common(r);
        if (round == 0)
            q0 = f->srv.txt_queries;
        assert_int_equal(f->srv.txt_queries, q0);
        assert_int_equal(r->status, MXG_DNS_OK);
        assert_int_equal(r->n, 40);
        assert_string_equal(r->txt[0], "r01");
        assert_string_equal(r->txt[38], "r39");
        assert_string_equal(r->txt[39], "v=STSv1; id=last");
        assert_int_equal(r->len[39], 16);
        assert_string_equal(r->why, "");
    }
    for (int round = 0; round < 2; round++) { /* network, then cache */
        r = lookup(f, "many.sec");
        check_common(r);
        if (round == 0)
            q0 = f->srv.txt_queries; /* UDP, then TCP (TC) */
        assert_int_equal(f->srv.txt_queries, q0);
        assert_int_equal(r->status, MXG_DNS_OK);
        assert_int_equal(r->sec, MXG_SEC_SECURE);
        assert_int_equal(r->n, 41);
        int sts = 0, big = 0;
        for (int i = 0; i < r->n; i++) {
            sts += strcmp(r->txt[i], "v=STSv1; id=last") == 0;
            big += r->len[i] == 3000 && r->txt[i][2999] == big_octet(2999);
        }
        assert_int_equal(sts, 1);
        assert_int_equal(big, 1);
    }
}

static void t_secure_and_bogus(void **state)
{
    struct fx *f = *state;
    const struct mxg_txt_result *r;

    for (int round = 0; round < 2; round++) { /* network, then cache */
        r = lookup(f, "txt.sec");
        check_common(r);
        assert_int_equal(f->srv.txt_queries, 1);
        assert_int_equal(r->status, MXG_DNS_OK);
        assert_int_equal(r->sec, MXG_SEC_SECURE);
        assert_int_equal(r->n, 1);
        assert_string_equal(r->txt[0], "v=STSv1; id=secure");
    }
    /* a signed NODATA and NXDOMAIN stay SECURE */
    r = lookup(f, "sec");
    assert_int_equal(r->status, MXG_DNS_NODATA);
    assert_int_equal(r->sec, MXG_SEC_SECURE);
    r = lookup(f, "nosuch.sec");
    assert_int_equal(r->status, MXG_DNS_NXDOMAIN);
    assert_int_equal(r->sec, MXG_SEC_SECURE);

    /* a forged signature: BOGUS, no records, never cached */
    for (int round = 0; round < 2; round++) {
        int before = f->srv.txt_queries;
        r = lookup(f, "bad.sec");
        assert_int_equal(r->status, MXG_DNS_BOGUS);
        assert_int_equal(r->sec, MXG_SEC_BOGUS);
        assert_int_equal(r->n, 0);
        assert_true(f->srv.txt_queries > before);
    }
}

static void t_cname(void **state)
{
    struct fx *f = *state;
    const struct mxg_txt_result *r = lookup(f, "alias.example");
    check_common(r);
    assert_int_equal(r->status, MXG_DNS_OK);
    assert_string_equal(r->canon, "txt.example");
    assert_int_equal(r->n, 1);
    assert_string_equal(r->txt[0], "v=STSv1; id=20240101");

    /* the chain ends without data: the resolver asks for the target itself */
    r = lookup(f, "hop.example");
    check_common(r);
    assert_int_equal(r->status, MXG_DNS_OK);
    assert_string_equal(r->canon, "txt.example");
    assert_int_equal(r->n, 1);
    assert_string_equal(r->txt[0], "v=STSv1; id=20240101");
    assert_string_equal(f->srv.last, "txt.example");

    /* insecure CNAME to secure data: the chain is only as good as its worst link */
    r = lookup(f, "other.example");
    assert_int_equal(r->status, MXG_DNS_OK);
    assert_string_equal(r->canon, "txt.sec");
    assert_string_equal(r->txt[0], "v=STSv1; id=secure");
    assert_int_equal(r->sec, MXG_SEC_INSECURE);
}

/* docs/ARCHITECTURE.md §Limits: a CNAME chain longer than mxguard follows (80
 * links: 9 answers of 8 links each are not enough) or a CNAME loop is a
 * failure of the lookup, never "no records" (was NODATA). */
static void t_cname_limits(void **state)
{
    struct fx *f = *state;
    const struct mxg_txt_result *r = lookup(f, "c01.example");
    assert_int_equal(r->status, MXG_DNS_TEMPFAIL);
    assert_int_equal(r->n, 0);
    assert_non_null(strstr(r->why, "CNAME chain"));
    r = lookup(f, "c60.example"); /* 21 links: followed */
    assert_int_equal(r->status, MXG_DNS_OK);
    assert_string_equal(r->canon, "txt.example");
    r = lookup(f, "loop1.example");
    assert_int_equal(r->status, MXG_DNS_TEMPFAIL);
    assert_non_null(strstr(r->why, "CNAME chain"));
}

/* docs/ARCHITECTURE.md §Limits: an RRset with a record that cannot be read (a
 * character-string overrunning its RDATA) is never the other records
 * alone (nor NODATA): the lookup fails. */
static void t_unreadable_record(void **state)
{
    struct fx *f = *state;
    const struct mxg_txt_result *r = lookup(f, "cut.example");
    assert_int_equal(r->status, MXG_DNS_TEMPFAIL);
    assert_int_equal(r->n, 0);
    assert_null(r->txt);
}

static void mx_cb(void *arg, const struct mxg_mx_result *r)
{
    struct mxg_mx_result *out = arg;
    *out = *r;
}

/* docs/ARCHITECTURE.md §Limits: an MX RRset whose only exchange name mxguard
 * cannot write as text is a failed lookup, never NODATA (which would make
 * the domain its own implicit MX). */
static void t_unusable_mx_name(void **state)
{
    struct fx *f = *state;
    struct mxg_mx_result *r = calloc(1, sizeof *r);
    struct mxg_dns_query *q = NULL;
    assert_non_null(r);
    r->status = (enum mxg_dns_status)-1;
    assert_int_equal(mxg_dns_lookup_mx(f->dns, "badmx.example", mx_cb, r, &q), 0);
    while ((int)r->status == -1)
        uv_run(&f->loop, UV_RUN_ONCE);
    assert_int_equal(r->status, MXG_DNS_TEMPFAIL);
    assert_int_equal(r->n, 0);
    free(r);
}

static void t_negative(void **state)
{
    struct fx *f = *state;
    const struct mxg_txt_result *r;

    for (int round = 0; round < 2; round++) { /* network, then cache */
        r = lookup(f, "nodata.example");
        check_common(r);
        assert_int_equal(r->status, MXG_DNS_NODATA);
        assert_int_equal(r->sec, MXG_SEC_INSECURE);
        assert_int_equal(r->n, 0);
        assert_string_equal(r->why, "no TXT records for nodata.example");

        r = lookup(f, "nxd.example");
        check_common(r);
        assert_int_equal(r->status, MXG_DNS_NXDOMAIN);
        assert_int_equal(r->n, 0);
        assert_string_equal(r->why, "nxd.example does not exist");
        assert_int_equal(f->srv.txt_queries, 2);
    }

    /* SERVFAIL: TEMPFAIL + INDETERMINATE, never cached */
    for (int round = 0; round < 2; round++) {
        int before = f->srv.txt_queries;
        r = lookup(f, "servfail.example");
        assert_int_equal(r->status, MXG_DNS_TEMPFAIL);
        assert_int_equal(r->sec, MXG_SEC_INDETERMINATE);
        assert_int_equal(r->n, 0);
        assert_true(f->srv.txt_queries > before);
    }
}

static void on_timer(uv_timer_t *t)
{
    *(int *)t->data = 1;
}

/* The answer lives as long as its TTL: 1 s, then it is asked again; TTL 0
 * is never cached. */
static void t_ttl(void **state)
{
    struct fx *f = *state;
    const struct mxg_txt_result *r = lookup(f, "short.example");
    assert_string_equal(r->txt[0], "short-lived");
    r = lookup(f, "short.example");
    assert_int_equal(f->srv.txt_queries, 1); /* cached */
    uv_timer_t t;
    int fired = 0;
    uv_timer_init(&f->loop, &t);
    t.data = &fired;
    uv_timer_start(&t, on_timer, 1100, 0);
    while (!fired)
        uv_run(&f->loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&t, NULL);
    r = lookup(f, "short.example");
    assert_string_equal(r->txt[0], "short-lived");
    assert_int_equal(f->srv.txt_queries, 2); /* expired: asked again */

    r = lookup(f, "zero.example");
    r = lookup(f, "zero.example");
    assert_string_equal(r->txt[0], "not cached");
    assert_int_equal(f->srv.txt_queries, 4);
}

static void t_timeout(void **state)
{
    struct fx *f = *state;
    f->srv.silent = 1;
    const struct mxg_txt_result *r = lookup(f, "txt.example");
    assert_int_equal(r->status, MXG_DNS_TEMPFAIL);
    assert_int_equal(r->sec, MXG_SEC_INDETERMINATE);
    assert_int_equal(r->n, 0);
}

static int cancel_calls;
static void never_cb(void *arg, const struct mxg_txt_result *r)
{
    (void)arg;
    (void)r;
    cancel_calls++;
}

static void t_invalid_and_cancel(void **state)
{
    struct fx *f = *state;
    struct mxg_dns_query *q = (struct mxg_dns_query *)f;
    char longname[300];

    assert_int_equal(mxg_dns_lookup_txt(f->dns, NULL, never_cb, NULL, &q), -1);
    assert_null(q);
    assert_int_equal(mxg_dns_lookup_txt(f->dns, "", never_cb, NULL, NULL), -1);
    assert_int_equal(mxg_dns_lookup_txt(f->dns, ".", never_cb, NULL, NULL), -1);
    assert_int_equal(mxg_dns_lookup_txt(f->dns, "x.example", NULL, NULL, NULL), -1);
    assert_int_equal(mxg_dns_lookup_txt(NULL, "x.example", never_cb, NULL, NULL), -1);
    memset(longname, 'a', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    assert_int_equal(mxg_dns_lookup_txt(f->dns, longname, never_cb, NULL, NULL), -1);

    /* cancelled in flight: the callback never runs */
    cancel_calls = 0;
    q = NULL;
    assert_int_equal(mxg_dns_lookup_txt(f->dns, "two.example", never_cb, NULL, &q), 0);
    mxg_dns_cancel(q);
    /* a lookup still running when the resolver is freed (teardown): no callback */
    assert_int_equal(mxg_dns_lookup_txt(f->dns, "split.example", never_cb, NULL, NULL), 0);
    for (int i = 0; i < 5; i++)
        uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_int_equal(cancel_calls, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(t_simple_and_cache, setup, teardown),
        cmocka_unit_test_setup_teardown(t_split, setup, teardown),
        cmocka_unit_test_setup_teardown(t_nul_octets, setup, teardown),
        cmocka_unit_test_setup_teardown(t_long, setup, teardown),
        cmocka_unit_test_setup_teardown(t_two_and_many, setup, teardown),
        cmocka_unit_test_setup_teardown(t_secure_and_bogus, setup, teardown),
        cmocka_unit_test_setup_teardown(t_cname, setup, teardown),
        cmocka_unit_test_setup_teardown(t_cname_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(t_unreadable_record, setup, teardown),
        cmocka_unit_test_setup_teardown(t_unusable_mx_name, setup, teardown),
        cmocka_unit_test_setup_teardown(t_negative, setup, teardown),
        cmocka_unit_test_setup_teardown(t_ttl, setup, teardown),
        cmocka_unit_test_setup_teardown(t_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(t_invalid_and_cancel, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
