/* Unit tests for dane/dane.c: the RFC 7672 decision per MX host (table of
 * DNS outcomes → requirement), the decisions that need no TLSA lookup, and
 * the OpenSSL DANE set-up (PKIX usages never reach OpenSSL; Full(0) records
 * whose data does not parse are unusable, so an RRset of only such records
 * is "encrypt", never a VERIFY that OpenSSL then cannot load). Full(0)
 * records meant to be usable carry real DER (tlsa_fixture.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "dane/dane.h"
#include "tlsa_fixture.h"

/* Full(0) data of a table row (the len column): the fixture's DER, or junk */
enum {
    L_CERT = -1,      /* the certificate */
    L_SPKI = -2,      /* its SPKI */
    L_CERT_TRAIL = -3 /* the certificate + one octet */
};

static struct mxg_tlsa_rr rr(int u, int s, int m, int len)
{
    struct mxg_tlsa_rr r;
    memset(&r, 0, sizeof r);
    r.usage = (uint8_t)u;
    r.selector = (uint8_t)s;
    r.mtype = (uint8_t)m;
    r.len = (uint16_t)len;
    memset(r.data, 0xAB, (size_t)len);
    return r;
}

/* A host keeps at most MXG_TLSA_MAX_RR records and MXG_DANE_POOL octets of
 * their data; a record that does not fit leaves the host unchanged; the
 * kept records read back as they went in. */
static void test_host_room(void **st)
{
    (void)st;
    static struct mxg_dane_host h;
    static struct mxg_tlsa_rr r;
    char out[300];

    memset(&h, 0, sizeof h);
    for (int k = 0; k < MXG_TLSA_MAX_RR; k++) {
        r = rr(3, 1, 2, 64);
        r.data[0] = (uint8_t)k;
        assert_int_equal(mxg_dane_host_add(&h, &r), 0);
    }
    assert_int_equal(h.n_usable, MXG_TLSA_MAX_RR);
    assert_int_equal(h.pool_used, MXG_TLSA_MAX_RR * 64);
    r = rr(3, 1, 1, 32);
    assert_int_equal(mxg_dane_host_add(&h, &r), -1); /* 17th record */
    assert_int_equal(h.n_usable, MXG_TLSA_MAX_RR);
    mxg_dane_host_format(&h, 5, out, sizeof out);
    assert_int_equal(strncmp(out, "3 1 2 05ABAB", 12), 0);
    assert_int_equal(strlen(out), 6 + 128);
    mxg_dane_host_format(&h, MXG_TLSA_MAX_RR, out, sizeof out); /* out of range */
    assert_string_equal(out, "");

    memset(&h, 0, sizeof h);
    r = rr(3, 0, 0, MXG_TLSA_DATA_MAX);
    assert_int_equal(mxg_dane_host_add(&h, &r), 0);
    r = rr(2, 0, 0, MXG_DANE_POOL - MXG_TLSA_DATA_MAX);
    assert_int_equal(mxg_dane_host_add(&h, &r), 0); /* exactly full */
    r = rr(3, 1, 1, 32);
    assert_int_equal(mxg_dane_host_add(&h, &r), -1); /* no data room */
    assert_int_equal(h.n_usable, 2);
    assert_int_equal(h.pool_used, MXG_DANE_POOL);
    assert_int_equal(h.rr[1].off, MXG_TLSA_DATA_MAX);
    assert_int_equal(h.rr[1].usage, 2);
}

/* mxg_dane_decide keeps what fits: usable Full(0) certificate records of
 * MXG_TLSA_DATA_MAX octets each, more than the pool holds: the first ones
 * are kept, the rest counted in n_dropped, still VERIFY; the unusable
 * record never takes room; a digest record listed after them is kept
 * first (it may be the one that matches), and takes its room. */
static void test_decide_pool_full(void **st)
{
    const struct tlsa_der *d = *st;
    static struct mxg_tlsa_result r;
    static struct mxg_dane_host h;
    memset(&r, 0, sizeof r);
    memset(&h, 0, sizeof h);
    r.status = MXG_DNS_OK;
    r.sec = MXG_SEC_SECURE;
    int per = (int)d->big_len, k = 0; /* MXG_TLSA_DATA_MAX octets each */
    r.rr[k++] = rr(1, 1, 1, 32);      /* PKIX-EE: unusable */
    while ((k - 1) * per <= MXG_DANE_POOL && k < MXG_TLSA_MAX_RR - 1)
        tlsa_rr_set(&r.rr[k++], 3, 0, 0, d->big, d->big_len);
    int nbig = k - 1;
    r.rr[k++] = rr(3, 1, 1, 32); /* last in the RRset */
    r.n = k;
    int fit = (MXG_DANE_POOL - 32) / per;
    assert_true(nbig > fit && fit >= 1);
    assert_int_equal(mxg_dane_decide(&r, "mx.example.test", NULL, 25, 0, &h), 1);
    assert_int_equal(h.req, MXG_DANE_VERIFY);
    assert_int_equal(h.n_total, k);
    assert_int_equal(h.n_usable, 1 + fit);
    assert_int_equal(h.n_dropped, nbig - fit);
    assert_int_equal(h.rr[0].mtype, 1); /* the digest */
    assert_int_equal(h.rr[0].len, 32);
    assert_int_equal(h.rr[1].len, per);
    assert_memory_equal(h.pool + h.rr[fit].off, d->big, d->big_len);
}

static void test_decide_table(void **st)
{
    const struct tlsa_der *d = *st;
    static const struct {
        const char *name;
        enum mxg_dns_status status;
        enum mxg_dnssec sec;
        int recs[4][4]; /* usage, selector, mtype, len (or L_*) */
        int n;
        int has_next;
        int ret;
        enum mxg_dane_req req;
        const char *enh;
        int usable;
    } cases[] = {
        {"3 1 1 secure", MXG_DNS_OK, MXG_SEC_SECURE, {{3, 1, 1, 32}}, 1, 0, 1, MXG_DANE_VERIFY, "", 1},
        {"2 0 2 secure", MXG_DNS_OK, MXG_SEC_SECURE, {{2, 0, 2, 64}}, 1, 0, 1, MXG_DANE_VERIFY, "", 1},
        {"3 0 0 full cert", MXG_DNS_OK, MXG_SEC_SECURE, {{3, 0, 0, L_CERT}}, 1, 0, 1, MXG_DANE_VERIFY,
         "", 1},
        {"3 1 0 + 2 0 0 full", MXG_DNS_OK, MXG_SEC_SECURE, {{3, 1, 0, L_SPKI}, {2, 0, 0, L_CERT}}, 2, 0,
         1, MXG_DANE_VERIFY, "", 2},
        /* RFC 7672 §2.2: unusable records are ignored; only unusable → TLS, no auth */
        {"full junk only → encrypt", MXG_DNS_OK, MXG_SEC_SECURE, {{3, 0, 0, 400}, {2, 1, 0, 91}}, 2, 0,
         1, MXG_DANE_ENCRYPT, "", 0},
        {"full cert + trailing octet → encrypt", MXG_DNS_OK, MXG_SEC_SECURE, {{3, 0, 0, L_CERT_TRAIL}},
         1, 0, 1, MXG_DANE_ENCRYPT, "", 0},
        {"cert under selector 1 → encrypt", MXG_DNS_OK, MXG_SEC_SECURE, {{3, 1, 0, L_CERT}}, 1, 0, 1,
         MXG_DANE_ENCRYPT, "", 0},
        {"full junk + a digest: the digest counts", MXG_DNS_OK, MXG_SEC_SECURE,
         {{3, 0, 0, 400}, {3, 1, 1, 32}, {3, 1, 0, 1}}, 3, 0, 1, MXG_DANE_VERIFY, "", 1},
        {"PKIX only → encrypt", MXG_DNS_OK, MXG_SEC_SECURE, {{0, 0, 1, 32}, {1, 1, 1, 32}}, 2, 0, 1,
         MXG_DANE_ENCRYPT, "", 0},
        {"bad digest length → encrypt", MXG_DNS_OK, MXG_SEC_SECURE, {{3, 1, 1, 31}, {3, 1, 2, 32}}, 2,
         0, 1, MXG_DANE_ENCRYPT, "", 0},
        {"unknown selector/mtype → encrypt", MXG_DNS_OK, MXG_SEC_SECURE, {{3, 2, 1, 32}, {3, 1, 3, 32}},
         2, 0, 1, MXG_DANE_ENCRYPT, "", 0},
        {"mixed: usable one wins", MXG_DNS_OK, MXG_SEC_SECURE, {{1, 1, 1, 32}, {3, 1, 1, 32}}, 2, 0, 1,
         MXG_DANE_VERIFY, "", 1},
        {"bogus", MXG_DNS_BOGUS, MXG_SEC_BOGUS, {{0}}, 0, 0, 1, MXG_DANE_UNUSABLE, "4.7.5", 0},
        {"OK but bogus sec", MXG_DNS_OK, MXG_SEC_BOGUS, {{3, 1, 1, 32}}, 1, 1, 1, MXG_DANE_UNUSABLE,
         "4.7.5", 0},
        {"servfail", MXG_DNS_TEMPFAIL, MXG_SEC_INDETERMINATE, {{0}}, 0, 1, 1, MXG_DANE_UNUSABLE,
         "4.7.5", 0},
        {"secure NODATA", MXG_DNS_NODATA, MXG_SEC_SECURE, {{0}}, 0, 0, 1, MXG_DANE_NONE, "", 0},
        {"secure NXDOMAIN", MXG_DNS_NXDOMAIN, MXG_SEC_SECURE, {{0}}, 0, 0, 1, MXG_DANE_NONE, "", 0},
        {"insecure records", MXG_DNS_OK, MXG_SEC_INSECURE, {{3, 1, 1, 32}}, 1, 0, 1, MXG_DANE_NONE, "", 0},
        {"CNAME: secure NODATA at target → ask MX name", MXG_DNS_NODATA, MXG_SEC_SECURE, {{0}}, 0, 1, 0,
         MXG_DANE_NONE, "", 0},
        {"CNAME: bogus at target → never ask further", MXG_DNS_BOGUS, MXG_SEC_BOGUS, {{0}}, 0, 1, 1,
         MXG_DANE_UNUSABLE, "4.7.5", 0},
    };
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    assert_non_null(ctx);
    assert_true(SSL_CTX_dane_enable(ctx) > 0);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        static struct mxg_tlsa_result r;
        memset(&r, 0, sizeof r);
        r.status = cases[i].status;
        r.sec = cases[i].sec;
        r.n = cases[i].n;
        for (int k = 0; k < r.n; k++) {
            const int *c = cases[i].recs[k];
            if (c[3] == L_CERT)
                tlsa_rr_set(&r.rr[k], (unsigned)c[0], (unsigned)c[1], (unsigned)c[2], d->cert,
                            d->cert_len);
            else if (c[3] == L_SPKI)
                tlsa_rr_set(&r.rr[k], (unsigned)c[0], (unsigned)c[1], (unsigned)c[2], d->spki,
                            d->spki_len);
            else if (c[3] == L_CERT_TRAIL) {
                tlsa_rr_set(&r.rr[k], (unsigned)c[0], (unsigned)c[1], (unsigned)c[2], d->cert,
                            d->cert_len);
                r.rr[k].data[r.rr[k].len++] = 0x00;
            } else
                r.rr[k] = rr(c[0], c[1], c[2], c[3]);
        }
        static struct mxg_dane_host h;
        memset(&h, 0, sizeof h);
        int ret = mxg_dane_decide(&r, "mx.example.test", cases[i].has_next ? "alias.example.test" : NULL,
                                  25, cases[i].has_next, &h);
        if (ret != cases[i].ret)
            fail_msg("%s: returned %d", cases[i].name, ret);
        if (ret == 0)
            continue;
        if (h.req != cases[i].req)
            fail_msg("%s: req %s, expected %s (%s)", cases[i].name, mxg_dane_req_name(h.req),
                     mxg_dane_req_name(cases[i].req), h.why);
        if (cases[i].enh[0])
            assert_string_equal(h.enh, cases[i].enh);
        assert_int_equal(h.n_usable, cases[i].usable);
        for (int k = 0; k < h.n_usable; k++)
            assert_true(h.rr[k].usage == 2 || h.rr[k].usage == 3);
        if (h.req == MXG_DANE_VERIFY)
            assert_string_equal(h.base, "mx.example.test");
        if (h.req == MXG_DANE_VERIFY || h.req == MXG_DANE_ENCRYPT)
            assert_int_equal(h.n_total, r.n);
        assert_true(h.why[0] != 0);
        /* what was decided is what OpenSSL can be armed with: VERIFY loads,
         * anything else refuses (no DANE set-up without usable records) */
        SSL *ssl = SSL_new(ctx);
        assert_non_null(ssl);
        char err[200] = "";
        int setup = mxg_dane_tls_setup(ssl, &h, err, sizeof err);
        SSL_free(ssl);
        if (setup != (h.req == MXG_DANE_VERIFY ? 0 : -1))
            fail_msg("%s: %s, mxg_dane_tls_setup returned %d (%s)", cases[i].name,
                     mxg_dane_req_name(h.req), setup, err);
    }
    SSL_CTX_free(ctx);
}

static void test_immediate(void **st)
{
    (void)st;
    static const struct {
        enum mxg_dnssec mx_sec;
        enum mxg_dns_status astatus;
        enum mxg_dnssec asec;
        enum mxg_dane_req req;
        const char *enh;
    } cases[] = {
        {MXG_SEC_INSECURE, MXG_DNS_OK, MXG_SEC_SECURE, MXG_DANE_NONE, ""},
        {MXG_SEC_INDETERMINATE, MXG_DNS_OK, MXG_SEC_SECURE, MXG_DANE_NONE, ""},
        {MXG_SEC_SECURE, MXG_DNS_OK, MXG_SEC_INSECURE, MXG_DANE_NONE, ""},
        {MXG_SEC_SECURE, MXG_DNS_OK, MXG_SEC_INDETERMINATE, MXG_DANE_UNUSABLE, "4.4.3"},
        {MXG_SEC_SECURE, MXG_DNS_OK, MXG_SEC_BOGUS, MXG_DANE_UNUSABLE, "4.4.3"},
        {MXG_SEC_SECURE, MXG_DNS_BOGUS, MXG_SEC_BOGUS, MXG_DANE_UNUSABLE, "4.4.3"},
        {MXG_SEC_SECURE, MXG_DNS_TEMPFAIL, MXG_SEC_INDETERMINATE, MXG_DANE_UNUSABLE, "4.4.3"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        static struct mxg_addr_result a;
        memset(&a, 0, sizeof a);
        a.status = cases[i].astatus;
        a.sec = cases[i].asec;
        a.n = a.status == MXG_DNS_OK;
        static struct mxg_dane_host h;
        struct mxg_dane_query *q = (struct mxg_dane_query *)1;
        /* no DNS object: these cases must be decided without a lookup */
        int rc = mxg_dane_host_lookup(NULL, cases[i].mx_sec, "mx.example.test", &a, 25, &h, NULL,
                                      NULL, &q);
        assert_int_equal(rc, 1);
        assert_null(q);
        if (h.req != cases[i].req)
            fail_msg("case %zu: %s (%s)", i, mxg_dane_req_name(h.req), h.why);
        if (cases[i].enh[0])
            assert_string_equal(h.enh, cases[i].enh);
    }
}

static void test_tls_setup(void **st)
{
    (void)st;
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    assert_non_null(ctx);
    assert_true(SSL_CTX_dane_enable(ctx) > 0);
    static struct mxg_dane_host h;
    memset(&h, 0, sizeof h);
    char err[200];

    SSL *ssl = SSL_new(ctx);
    h.req = MXG_DANE_ENCRYPT; /* nothing to verify against */
    assert_int_equal(mxg_dane_tls_setup(ssl, &h, err, sizeof err), -1);
    SSL_free(ssl);

    ssl = SSL_new(ctx);
    h.req = MXG_DANE_VERIFY;
    snprintf(h.base, sizeof h.base, "mx.example.test");
    snprintf(h.other, sizeof h.other, "alias.example.test");
    static struct mxg_tlsa_rr r0, r1;
    r0 = rr(3, 1, 1, 32);
    r1 = rr(2, 0, 1, 32);
    assert_int_equal(mxg_dane_host_add(&h, &r0), 0);
    assert_int_equal(mxg_dane_host_add(&h, &r1), 0);
    assert_int_equal(h.n_usable, 2);
    assert_int_equal(mxg_dane_tls_setup(ssl, &h, err, sizeof err), 0);
    assert_int_equal(SSL_get_verify_mode(ssl) & SSL_VERIFY_PEER, SSL_VERIFY_PEER);
    char m[80];
    mxg_dane_tls_matched(ssl, m, sizeof m);
    assert_string_equal(m, "no DANE match");
    SSL_free(ssl);
    SSL_CTX_free(ctx);
}

/* Full(0) records reach OpenSSL and are loaded: a VERIFY host whose only
 * records are a full certificate and a full SPKI arms the SSL. */
static void test_tls_setup_full(void **st)
{
    const struct tlsa_der *d = *st;
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    assert_non_null(ctx);
    assert_true(SSL_CTX_dane_enable(ctx) > 0);
    static struct mxg_dane_host h;
    memset(&h, 0, sizeof h);
    h.req = MXG_DANE_VERIFY;
    snprintf(h.base, sizeof h.base, "mx.example.test");
    static struct mxg_tlsa_rr full[2];
    tlsa_rr_set(&full[0], 3, 0, 0, d->cert, d->cert_len);
    tlsa_rr_set(&full[1], 2, 1, 0, d->spki, d->spki_len);
    for (int k = 0; k < 2; k++) {
        assert_int_equal(mxg_tlsa_check(&full[k]), MXG_TLSA_USABLE);
        assert_int_equal(mxg_dane_host_add(&h, &full[k]), 0);
    }
    assert_int_equal(h.n_usable, 2);
    char err[200];
    SSL *ssl = SSL_new(ctx);
    assert_non_null(ssl);
    assert_int_equal(mxg_dane_tls_setup(ssl, &h, err, sizeof err), 0);
    assert_int_equal(SSL_get_verify_mode(ssl) & SSL_VERIFY_PEER, SSL_VERIFY_PEER);
    SSL_free(ssl);
    SSL_CTX_free(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decide_table),
        cmocka_unit_test(test_immediate),
        cmocka_unit_test(test_tls_setup),
        cmocka_unit_test(test_tls_setup_full),
        cmocka_unit_test(test_host_room),
        cmocka_unit_test(test_decide_pool_full),
    };
    return cmocka_run_group_tests(tests, tlsa_der_group_setup, tlsa_der_group_teardown);
}
