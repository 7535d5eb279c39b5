/* tests/unit/test_dane_decide.c — dane/dane.c: the RFC 7672 decision per MX
 * host (table of DNS outcomes → requirement), the decisions that need no
 * TLSA lookup, and the OpenSSL DANE set-up (PKIX usages never reach
 * OpenSSL; Full(0) records whose data does not parse are unusable, so an
 * RRset of only such records is "encrypt", never a VERIFY that OpenSSL then
 * cannot load). Full(0) records meant to be usable carry real DER
 * (tlsa_fixture.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "dane/dane.h"
#include "tlsa_fixture.h"

/* Arm ssl for h the way the delivery path does: dane/ hands the usable
 * records over (mxg_dane_host_verify), tls/ applies them. */
static int dane_setup(SSL *ssl, const struct mxg_dane_host *h, char *err, size_t errlen)
{
    struct mxg_tls_verify v;
    struct mxg_tls_tlsa *own = NULL;
    if (mxg_dane_host_verify(h, &v, &own) < 0) {
        snprintf(err, errlen, "no usable TLSA records");
        return -1;
    }
    int rc = mxg_tls_verify_ssl(ssl, &v, err, errlen);
    free(own);
    return rc;
}

/* Full(0) data of a table row (the len column): the fixture's DER, or junk */
enum {
    L_CERT = -1,      /* the certificate */
    L_SPKI = -2,      /* its SPKI */
    L_CERT_TRAIL = -3 /* the certificate + one octet */
};

/* Data buffers for rr(): a ring, so that records made one after the other
 * keep their own data. */
#define RING 256
#define RING_LEN 8192

static uint8_t *ring_buf(void)
{
    static uint8_t *ring[RING];
    static unsigned next;
    uint8_t **b = &ring[next++ % RING];
    if (!*b)
        *b = malloc(RING_LEN); /* kept for the process (a test binary) */
    assert_non_null(*b);
    return *b;
}

static struct mxg_tlsa_rr rr(int u, int s, int m, int len)
{
    struct mxg_tlsa_rr r;
    memset(&r, 0, sizeof r);
    r.usage = (uint8_t)u;
    r.selector = (uint8_t)s;
    r.mtype = (uint8_t)m;
    r.len = (uint16_t)len;
    r.data = ring_buf();
    memset(r.data, 0xAB, (size_t)len);
    return r;
}

/* A secure answer of n records (rrs: the caller's array). */
static void secure_answer(struct mxg_tlsa_result *r, struct mxg_tlsa_rr *rrs, int n)
{
    memset(r, 0, sizeof *r);
    r->status = MXG_DNS_OK;
    r->sec = MXG_SEC_SECURE;
    r->rr = rrs;
    r->n = n;
}

/* docs/ARCHITECTURE.md §Limits: a secure RRset whose only records are "3 0 0" with a
 * certificate bigger than any old storage limit (5000 octets; the 2 KB
 * record and 4 KB pool limits made it "no usable records" → ENCRYPT) is
 * VERIFY with the whole certificate kept, and OpenSSL is armed with it. */
static void test_decide_big_full_cert(void **st)
{
    const struct tlsa_der *d = *st;
    static struct mxg_tlsa_result r;
    static struct mxg_tlsa_rr rrs[1];
    struct mxg_dane_host h;
    memset(&h, 0, sizeof h);
    tlsa_rr_set(&rrs[0], 3, 0, 0, d->big, d->big_len);
    secure_answer(&r, rrs, 1);
    assert_int_equal(mxg_dane_decide(&r, "mx.example.test", NULL, 25, 0, &h), 1);
    if (h.req != MXG_DANE_VERIFY)
        fail_msg("a usable 5000-octet 3 0 0 record: %s (%s)", mxg_dane_req_name(h.req), h.why);
    assert_int_equal(h.n_usable, 1);
    assert_int_equal(h.n_total, 1);
    assert_int_equal(h.rr[0].len, TLSA_FIXTURE_BIG);
    assert_memory_equal(h.rr[0].data, d->big, d->big_len);
    assert_ptr_not_equal(h.rr[0].data, d->big); /* the host owns a copy */

    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    assert_non_null(ctx);
    assert_true(SSL_CTX_dane_enable(ctx) > 0);
    SSL *ssl = SSL_new(ctx);
    char err[200] = "";
    assert_int_equal(dane_setup(ssl, &h, err, sizeof err), 0);
    SSL_free(ssl);
    SSL_CTX_free(ctx);

    /* a deep copy is independent; clear frees and empties */
    struct mxg_dane_host c;
    memset(&c, 0, sizeof c);
    assert_int_equal(mxg_dane_host_copy(&c, &h), 0);
    mxg_dane_host_clear(&h);
    assert_int_equal(h.n_usable, 0);
    assert_null(h.rr);
    assert_int_equal(c.req, MXG_DANE_VERIFY);
    assert_memory_equal(c.rr[0].data, d->big, d->big_len);
    char *ps = mxg_dane_host_pstring(&c);
    assert_non_null(ps);
    assert_int_equal(strlen(ps), 6 + 2 * (size_t)TLSA_FIXTURE_BIG); /* whole, not cut */
    assert_memory_equal(ps, "3 0 0 30", 8);
    free(ps);
    mxg_dane_host_clear(&c);
}

/* Many records (more than the old 16) of every size: every usable one is
 * kept in RRset order, unusable ones never are; 40 big certificates
 * (200 KB of data, more than a DNS message: the limit is not ours). */
static void test_decide_many_records(void **st)
{
    const struct tlsa_der *d = *st;
    enum { NBIG = 40, NDIG = 30 };
    static struct mxg_tlsa_rr rrs[NBIG + NDIG + 1];
    static struct mxg_tlsa_result r;
    struct mxg_dane_host h;
    memset(&h, 0, sizeof h);
    int k = 0;
    rrs[k++] = rr(1, 1, 1, 32); /* PKIX-EE: unusable */
    for (int i = 0; i < NBIG; i++)
        tlsa_rr_set(&rrs[k++], 2 + (i & 1), 0, 0, d->big, d->big_len);
    for (int i = 0; i < NDIG; i++) {
        rrs[k] = rr(3, 1, 1, 32);
        rrs[k].data[0] = (uint8_t)i;
        k++;
    }
    secure_answer(&r, rrs, k);
    assert_int_equal(mxg_dane_decide(&r, "mx.example.test", NULL, 25, 0, &h), 1);
    assert_int_equal(h.req, MXG_DANE_VERIFY);
    assert_int_equal(h.n_total, k);
    assert_int_equal(h.n_usable, NBIG + NDIG);
    assert_null(h.all); /* with usable records, the unusable ones are not kept */
    for (int i = 0; i < NBIG; i++) {
        assert_int_equal(h.rr[i].usage, 2 + (i & 1));
        assert_memory_equal(h.rr[i].data, d->big, d->big_len);
    }
    for (int i = 0; i < NDIG; i++)
        assert_int_equal(h.rr[NBIG + i].data[0], i);

    /* the same host decided again (a second lookup into the same struct):
     * the old records are replaced, not leaked (ASan) */
    assert_int_equal(mxg_dane_decide(&r, "mx.example.test", NULL, 25, 0, &h), 1);
    assert_int_equal(h.n_usable, NBIG + NDIG);
    mxg_dane_host_clear(&h);
}

/* Only unusable records: ENCRYPT, and the host keeps every record of the
 * RRset for TLSRPT's policy-string; records getdns could not parse
 * (n_bad) count as unusable records, never as "no TLSA". */
static void test_decide_unusable_kept(void **st)
{
    (void)st;
    static struct mxg_tlsa_rr rrs[2];
    static struct mxg_tlsa_result r;
    struct mxg_dane_host h;
    memset(&h, 0, sizeof h);
    rrs[0] = rr(1, 1, 1, 32);
    rrs[1] = rr(3, 1, 1, 31);
    secure_answer(&r, rrs, 2);
    assert_int_equal(mxg_dane_decide(&r, "mx.example.test", NULL, 25, 0, &h), 1);
    assert_int_equal(h.req, MXG_DANE_ENCRYPT);
    assert_int_equal(h.n_usable, 0);
    assert_int_equal(h.n_all, 2);
    char *ps = mxg_dane_host_pstring(&h);
    assert_non_null(ps);
    assert_string_equal(ps, "1 1 1 ABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABAB\n"
                            "3 1 1 ABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABAB");
    free(ps);
    mxg_dane_host_clear(&h);

    secure_answer(&r, NULL, 0);
    r.n_bad = 1; /* one record, malformed */
    assert_int_equal(mxg_dane_decide(&r, "mx.example.test", NULL, 25, 1, &h), 1);
    assert_int_equal(h.req, MXG_DANE_ENCRYPT);
    assert_int_equal(h.n_total, 1);
    ps = mxg_dane_host_pstring(&h);
    assert_string_equal(ps, "");
    free(ps);
    mxg_dane_host_clear(&h);
}

/* The requirement digest (connection-cache key) covers every octet of
 * every usable record: two big certificates that differ only at the end
 * give different digests (a prefix of the text would not). */
static void test_host_digest(void **st)
{
    const struct tlsa_der *d = *st;
    static struct mxg_tlsa_rr rrs[1];
    static struct mxg_tlsa_result r;
    static uint8_t other[TLSA_FIXTURE_BIG];
    struct mxg_dane_host a, b;
    unsigned char da[32], db[32];
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    tlsa_rr_set(&rrs[0], 3, 0, 0, d->big, d->big_len);
    secure_answer(&r, rrs, 1);
    assert_int_equal(mxg_dane_decide(&r, "mx.example.test", NULL, 25, 0, &a), 1);
    assert_int_equal(mxg_dane_host_copy(&b, &a), 0);
    mxg_dane_host_digest(&a, da);
    mxg_dane_host_digest(&b, db);
    assert_memory_equal(da, db, 32);
    memcpy(other, d->big, d->big_len);
    other[TLSA_FIXTURE_BIG - 1] ^= 1;
    b.rr[0].data = other; /* the last octet differs */
    mxg_dane_host_digest(&b, db);
    assert_memory_not_equal(da, db, 32);
    b.rr[0].data = (uint8_t *)(b.rr + 1); /* back into its block for the free */
    mxg_dane_host_clear(&a);
    mxg_dane_host_clear(&b);
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
        static struct mxg_tlsa_rr rrs[4];
        static uint8_t trail[4096];
        memset(&r, 0, sizeof r);
        r.rr = rrs;
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
                memcpy(trail, d->cert, d->cert_len);
                trail[d->cert_len] = 0x00;
                tlsa_rr_set(&r.rr[k], (unsigned)c[0], (unsigned)c[1], (unsigned)c[2], trail,
                            d->cert_len + 1);
            } else
                r.rr[k] = rr(c[0], c[1], c[2], c[3]);
        }
        static struct mxg_dane_host h;
        mxg_dane_host_clear(&h);
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
        int setup = dane_setup(ssl, &h, err, sizeof err);
        SSL_free(ssl);
        if (setup != (h.req == MXG_DANE_VERIFY ? 0 : -1))
            fail_msg("%s: %s, DANE set-up returned %d (%s)", cases[i].name,
                     mxg_dane_req_name(h.req), setup, err);
        mxg_dane_host_clear(&h);
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
    assert_int_equal(dane_setup(ssl, &h, err, sizeof err), -1);
    SSL_free(ssl);

    ssl = SSL_new(ctx);
    h.req = MXG_DANE_VERIFY;
    snprintf(h.base, sizeof h.base, "mx.example.test");
    snprintf(h.other, sizeof h.other, "alias.example.test");
    static struct mxg_tlsa_rr two[2];
    two[0] = rr(3, 1, 1, 32);
    two[1] = rr(2, 0, 1, 32);
    h.rr = two; /* borrowed: h is not cleared */
    h.n_usable = 2;
    assert_int_equal(dane_setup(ssl, &h, err, sizeof err), 0);
    assert_int_equal(SSL_get_verify_mode(ssl) & SSL_VERIFY_PEER, SSL_VERIFY_PEER);
    uint8_t u, sel, mt;
    const unsigned char *data;
    size_t dlen;
    assert_true(SSL_get0_dane_tlsa(ssl, &u, &sel, &mt, &data, &dlen) < 0); /* no match yet */
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
    for (int k = 0; k < 2; k++)
        assert_int_equal(mxg_tlsa_check(&full[k]), MXG_TLSA_USABLE);
    h.rr = full; /* borrowed: h is not cleared */
    h.n_usable = 2;
    char err[200];
    SSL *ssl = SSL_new(ctx);
    assert_non_null(ssl);
    assert_int_equal(dane_setup(ssl, &h, err, sizeof err), 0);
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
        cmocka_unit_test(test_decide_big_full_cert),
        cmocka_unit_test(test_decide_many_records),
        cmocka_unit_test(test_decide_unusable_kept),
        cmocka_unit_test(test_host_digest),
    };
    return cmocka_run_group_tests(tests, tlsa_der_group_setup, tlsa_der_group_teardown);
}
