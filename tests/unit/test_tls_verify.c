/* tests/unit/test_tls_verify.c — tls/tls_verify.h: what a client engine
 * verifies, through real handshakes between two engines: DANE-EE 3 1 1
 * (match, no match, another reference name), WebPKI names enforced and
 * report-only, none; and the set-up errors (DANE without records, no
 * names). The server has a self-signed P-256 certificate for HOST that is
 * also the client's trust anchor. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "tls/tls_verify.h"

#define HOST "mx.example.test"

struct fixture {
    char cert[256], key[256];
    unsigned char spki_sha256[32];
};

/* A temp file path in path (cap); the stream for writing, or NULL. */
static FILE *temp_file(char *path, size_t cap)
{
    const char *dir = getenv("TMPDIR");
    snprintf(path, cap, "%s/mxg_tv_test_XXXXXX", dir && *dir ? dir : "/tmp");
    int fd = mkstemp(path);
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (fd >= 0 && !f)
        close(fd);
    return f;
}

/* A self-signed CA:TRUE certificate for HOST (CN and SAN) on a new key,
 * written as PEM, and the SHA-256 of its SubjectPublicKeyInfo. */
static int group_setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof *fx);
    EVP_PKEY *pkey = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    if (!fx || !pkey || !x)
        return -1;
    X509_NAME *name = X509_get_subject_name(x);
    X509V3_CTX v3;
    X509V3_set_ctx_nodb(&v3);
    X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
    X509_EXTENSION *bc = X509V3_EXT_conf_nid(NULL, &v3, NID_basic_constraints, "critical,CA:TRUE");
    X509_EXTENSION *san = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name, "DNS:" HOST);
    int ok = bc && san && X509_set_version(x, 2) == 1 &&
             ASN1_INTEGER_set(X509_get_serialNumber(x), 7) == 1 &&
             X509_gmtime_adj(X509_getm_notBefore(x), -3600) &&
             X509_gmtime_adj(X509_getm_notAfter(x), 86400L) && X509_set_pubkey(x, pkey) == 1 &&
             X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)HOST, -1,
                                        -1, 0) == 1 &&
             X509_set_issuer_name(x, name) == 1 && X509_add_ext(x, bc, -1) == 1 &&
             X509_add_ext(x, san, -1) == 1 && X509_sign(x, pkey, EVP_sha256()) > 0;
    X509_EXTENSION_free(bc);
    X509_EXTENSION_free(san);
    unsigned char *der = NULL;
    int len = ok ? i2d_PUBKEY(pkey, &der) : -1;
    unsigned int mdlen = 0;
    ok = ok && len > 0 &&
         EVP_Digest(der, (size_t)len, fx->spki_sha256, &mdlen, EVP_sha256(), NULL) == 1;
    OPENSSL_free(der);
    FILE *cf = ok ? temp_file(fx->cert, sizeof fx->cert) : NULL;
    FILE *kf = cf ? temp_file(fx->key, sizeof fx->key) : NULL;
    ok = kf && PEM_write_X509(cf, x) == 1 &&
         PEM_write_PrivateKey(kf, pkey, NULL, NULL, 0, NULL, NULL) == 1;
    if (cf)
        fclose(cf);
    if (kf)
        fclose(kf);
    X509_free(x);
    EVP_PKEY_free(pkey);
    *state = fx;
    return ok ? 0 : -1;
}

static int group_teardown(void **state)
{
    struct fixture *fx = *state;
    if (fx) {
        if (fx->cert[0])
            unlink(fx->cert);
        if (fx->key[0])
            unlink(fx->key);
        free(fx);
    }
    return 0;
}

/* Move every pending ciphertext octet from one engine to the other. */
static void pump(struct mxg_tls_engine *from, struct mxg_tls_engine *to)
{
    unsigned char buf[16384];
    size_t n;
    while ((n = mxg_tls_take_out(from, buf, sizeof buf)) > 0)
        assert_int_equal(mxg_tls_feed(to, buf, n), MXG_TLS_OK);
}

/* One handshake with the client armed for v: the client's final status,
 * its verify result (*vr) and matched text. */
static int handshake(const struct fixture *fx, const struct mxg_tls_verify *v, long *vr,
                     char *matched, size_t cap)
{
    char err[300] = "";
    struct mxg_tls_ctx *sctx = mxg_tls_ctx_new_server(fx->cert, fx->key, err, sizeof err);
    struct mxg_tls_ctx *cctx = mxg_tls_ctx_new_client(fx->cert, err, sizeof err);
    assert_non_null(sctx);
    assert_non_null(cctx);
    struct mxg_tls_engine *c = mxg_tls_engine_new_client(cctx, v->sni[0] ? v->sni : NULL);
    struct mxg_tls_engine *s = mxg_tls_engine_new_server(sctx);
    assert_non_null(c);
    assert_non_null(s);
    if (mxg_tls_verify_apply(c, v, err, sizeof err) != 0)
        fail_msg("set-up: %s", err);
    int rc = MXG_TLS_AGAIN, rs = MXG_TLS_AGAIN;
    for (int i = 0; i < 20 && rc == MXG_TLS_AGAIN; i++) {
        rc = mxg_tls_handshake(c);
        pump(c, s);
        if (rs != MXG_TLS_ERR)
            rs = mxg_tls_handshake(s);
        pump(s, c);
    }
    *vr = mxg_tls_verify_result(c);
    mxg_tls_verify_matched(c, matched, cap);
    mxg_tls_engine_free(c);
    mxg_tls_engine_free(s);
    mxg_tls_ctx_free(cctx);
    mxg_tls_ctx_free(sctx);
    return rc;
}

static void dane_verify(struct mxg_tls_verify *v, struct mxg_tls_tlsa *rec,
                        const unsigned char *digest)
{
    memset(v, 0, sizeof *v);
    v->how = MXG_TV_DANE;
    v->enforce = 1;
    snprintf(v->sni, sizeof v->sni, "%s", HOST);
    *rec = (struct mxg_tls_tlsa){3, 1, 1, 32, digest};
    v->tlsa = rec;
    v->n_tlsa = 1;
}

static void test_dane(void **state)
{
    const struct fixture *fx = *state;
    struct mxg_tls_verify v;
    struct mxg_tls_tlsa rec;
    long vr;
    char m[80];
    dane_verify(&v, &rec, fx->spki_sha256);
    assert_int_equal(handshake(fx, &v, &vr, m, sizeof m), MXG_TLS_OK);
    assert_int_equal(vr, X509_V_OK);
    assert_string_equal(m, "TLSA 3 1 1 matched at depth 0");

    /* DANE-EE: no name check, another reference name does not matter */
    snprintf(v.sni, sizeof v.sni, "alias.example.test");
    v.names[0] = "other.example.test";
    v.n_names = 1;
    assert_int_equal(handshake(fx, &v, &vr, m, sizeof m), MXG_TLS_OK);

    unsigned char wrong[32];
    memcpy(wrong, fx->spki_sha256, 32);
    wrong[31] ^= 1;
    dane_verify(&v, &rec, wrong);
    assert_int_equal(handshake(fx, &v, &vr, m, sizeof m), MXG_TLS_ERR);
    assert_int_equal(vr, X509_V_ERR_DANE_NO_MATCH);
    assert_string_equal(m, "no DANE match");
}

static void test_names(void **state)
{
    const struct fixture *fx = *state;
    struct mxg_tls_verify v;
    long vr;
    char m[80];
    memset(&v, 0, sizeof v);
    v.how = MXG_TV_NAMES;
    v.enforce = 1;
    snprintf(v.sni, sizeof v.sni, "%s", HOST);
    v.names[0] = "nope.example.test";
    v.names[1] = HOST;
    v.n_names = 2;
    assert_int_equal(handshake(fx, &v, &vr, m, sizeof m), MXG_TLS_OK);
    assert_int_equal(vr, X509_V_OK);
    /* a parent form matches a subdomain */
    v.names[1] = ".example.test";
    assert_int_equal(handshake(fx, &v, &vr, m, sizeof m), MXG_TLS_OK);

    v.n_names = 1; /* only the wrong name: enforced fails, report-only completes */
    assert_int_equal(handshake(fx, &v, &vr, m, sizeof m), MXG_TLS_ERR);
    assert_int_equal(vr, X509_V_ERR_HOSTNAME_MISMATCH);
    v.enforce = 0;
    assert_int_equal(handshake(fx, &v, &vr, m, sizeof m), MXG_TLS_OK);
    assert_int_equal(vr, X509_V_ERR_HOSTNAME_MISMATCH);

    memset(&v, 0, sizeof v); /* none: anything goes */
    snprintf(v.sni, sizeof v.sni, "whatever.test");
    assert_int_equal(handshake(fx, &v, &vr, m, sizeof m), MXG_TLS_OK);
}

static void test_setup_errors(void **state)
{
    const struct fixture *fx = *state;
    char err[200] = "";
    struct mxg_tls_ctx *cctx = mxg_tls_ctx_new_client(fx->cert, err, sizeof err);
    assert_non_null(cctx);
    struct mxg_tls_engine *c = mxg_tls_engine_new_client(cctx, HOST);
    struct mxg_tls_verify v;
    memset(&v, 0, sizeof v);
    v.how = MXG_TV_DANE;
    snprintf(v.sni, sizeof v.sni, "%s", HOST);
    assert_int_equal(mxg_tls_verify_apply(c, &v, err, sizeof err), -1);
    assert_string_equal(err, "DANE set-up without usable TLSA records");
    v.how = MXG_TV_NAMES;
    assert_int_equal(mxg_tls_verify_apply(c, &v, err, sizeof err), -1);
    assert_string_equal(err, "cannot set up WebPKI verification");
    assert_int_equal(mxg_tls_verify_apply(NULL, &v, err, sizeof err), -1);
    assert_string_equal(mxg_tls_verify_how_name(MXG_TV_DANE), "dane");
    mxg_tls_engine_free(c);
    mxg_tls_ctx_free(cctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dane),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_setup_errors),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
