/* tests/unit/test_tls_client.c — the operator's TLS client settings
 * (mxg_tls_ctx_new_client_opts): protocol floor and ceiling against a
 * server capped at TLS 1.2, cipher lists, the client certificate a server
 * asks for, several verification names (a policy override's match list,
 * ".parent" = any subdomain, never the parent itself), and a context
 * replaced under a live engine (SIGHUP). Engines talk through memory. */
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

#include "tls/tls_engine.h"

struct files {
    char srv_cert[256], srv_key[256]; /* mx.example.test, self-signed CA:TRUE */
    char cli_cert[256], cli_key[256]; /* client.example.test */
};
static struct files F;

static FILE *temp_file(char *path, size_t cap)
{
    const char *dir = getenv("TMPDIR");
    snprintf(path, cap, "%s/mxg_tls_client_XXXXXX", dir && *dir ? dir : "/tmp");
    int fd = mkstemp(path);
    return fd < 0 ? NULL : fdopen(fd, "w");
}

static int add_ext(X509 *x, int nid, const char *value)
{
    X509V3_CTX v3;
    X509V3_set_ctx_nodb(&v3);
    X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &v3, nid, value);
    if (!ext)
        return -1;
    int ok = X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    return ok == 1 ? 0 : -1;
}

static int write_pki(const char *cn, long serial, char *certpath, char *keypath)
{
    char san[300];
    snprintf(san, sizeof san, "DNS:%s", cn);
    EVP_PKEY *pkey = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    X509_NAME *name = X509_get_subject_name(x);
    int ok = pkey && X509_set_version(x, 2) == 1 &&
             ASN1_INTEGER_set(X509_get_serialNumber(x), serial) == 1 &&
             X509_gmtime_adj(X509_getm_notBefore(x), -3600) &&
             X509_gmtime_adj(X509_getm_notAfter(x), 86400L * 30) && X509_set_pubkey(x, pkey) == 1 &&
             X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1,
                                        -1, 0) == 1 &&
             X509_set_issuer_name(x, name) == 1 &&
             add_ext(x, NID_basic_constraints, "critical,CA:TRUE") == 0 &&
             add_ext(x, NID_subject_alt_name, san) == 0 && X509_sign(x, pkey, EVP_sha256()) > 0;
    FILE *cf = ok ? temp_file(certpath, 256) : NULL;
    FILE *kf = cf ? temp_file(keypath, 256) : NULL;
    ok = kf && PEM_write_X509(cf, x) == 1 &&
         PEM_write_PrivateKey(kf, pkey, NULL, NULL, 0, NULL, NULL) == 1;
    if (cf)
        fclose(cf);
    if (kf)
        fclose(kf);
    X509_free(x);
    EVP_PKEY_free(pkey);
    return ok ? 0 : -1;
}

static int setup(void **state)
{
    (void)state;
    if (write_pki("mx.example.test", 1, F.srv_cert, F.srv_key) < 0 ||
        write_pki("client.example.test", 2, F.cli_cert, F.cli_key) < 0)
        return -1;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    unlink(F.srv_cert);
    unlink(F.srv_key);
    unlink(F.cli_cert);
    unlink(F.cli_key);
    return 0;
}

static void pump(struct mxg_tls_engine *from, struct mxg_tls_engine *to)
{
    unsigned char buf[16384];
    size_t n;
    while ((n = mxg_tls_take_out(from, buf, sizeof buf)) > 0)
        assert_int_equal(mxg_tls_feed(to, buf, n), MXG_TLS_OK);
}

/* Run both handshakes; MXG_TLS_OK when both completed, else MXG_TLS_ERR. */
static int handshake(struct mxg_tls_engine *c, struct mxg_tls_engine *s)
{
    int rc = MXG_TLS_AGAIN, rs = MXG_TLS_AGAIN;
    for (int round = 0; round < 20 && (rc != MXG_TLS_OK || rs != MXG_TLS_OK); round++) {
        rc = mxg_tls_handshake(c);
        pump(c, s);
        if (rc == MXG_TLS_ERR)
            return MXG_TLS_ERR;
        rs = mxg_tls_handshake(s);
        pump(s, c);
        if (rs == MXG_TLS_ERR)
            return MXG_TLS_ERR;
    }
    return rc == MXG_TLS_OK && rs == MXG_TLS_OK ? MXG_TLS_OK : MXG_TLS_ERR;
}

static struct mxg_tls_ctx *server_ctx(int max_version)
{
    char err[512];
    struct mxg_tls_ctx *s = mxg_tls_ctx_new_server(F.srv_cert, F.srv_key, err, sizeof err);
    assert_non_null(s);
    if (max_version)
        assert_int_equal(SSL_CTX_set_max_proto_version(mxg_tls_ctx_ssl_ctx(s), max_version), 1);
    return s;
}

static int accept_all(X509_STORE_CTX *x, void *arg)
{
    (void)x;
    (void)arg;
    return 1;
}

/* One client/server handshake; returns the client's result, the version in ver. */
static int connect_once(struct mxg_tls_ctx *cctx, struct mxg_tls_ctx *sctx, char *ver,
                        size_t cap, char *peer_cn, size_t cn_cap)
{
    struct mxg_tls_engine *c = mxg_tls_engine_new_client(cctx, "mx.example.test");
    struct mxg_tls_engine *s = mxg_tls_engine_new_server(sctx);
    assert_non_null(c);
    assert_non_null(s);
    int rc = handshake(c, s);
    if (ver)
        snprintf(ver, cap, "%s", rc == MXG_TLS_OK ? mxg_tls_version(c) : "");
    if (peer_cn) {
        peer_cn[0] = 0;
        X509 *pc = SSL_get0_peer_certificate(mxg_tls_engine_ssl(s));
        if (pc)
            X509_NAME_get_text_by_NID(X509_get_subject_name(pc), NID_commonName, peer_cn,
                                      (int)cn_cap);
    }
    mxg_tls_engine_free(c);
    mxg_tls_engine_free(s);
    return rc;
}

static void test_option_errors(void **state)
{
    (void)state;
    char err[512];
    struct mxg_tls_client_opts o;
    static const struct {
        const char *ciphers, *suites, *cert, *key, *want;
    } cases[] = {
        {"NO-SUCH-CIPHER", NULL, NULL, NULL, "cipher list \"NO-SUCH-CIPHER\""},
        {NULL, "TLS_NO_SUCH_SUITE", NULL, NULL, "ciphersuites \"TLS_NO_SUCH_SUITE\""},
        {NULL, NULL, "CERT", NULL, "needs both its chain file and its key file"},
        {NULL, NULL, NULL, "KEY", "needs both its chain file and its key file"},
        {NULL, NULL, "/nonexistent/cert.pem", "/nonexistent/key.pem", "cannot load certificate chain"},
        {NULL, NULL, "CERT", "OTHERKEY", "mismatch"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        memset(&o, 0, sizeof o);
        o.ciphers = cases[i].ciphers;
        o.ciphersuites = cases[i].suites;
        o.cert_file = cases[i].cert && !strcmp(cases[i].cert, "CERT") ? F.cli_cert : cases[i].cert;
        o.key_file = cases[i].key && !strcmp(cases[i].key, "KEY")        ? F.cli_key
                     : cases[i].key && !strcmp(cases[i].key, "OTHERKEY") ? F.srv_key
                                                                         : cases[i].key;
        err[0] = 0;
        struct mxg_tls_ctx *c = mxg_tls_ctx_new_client_opts(&o, err, sizeof err);
        if (c)
            fail_msg("case %zu: expected an error", i);
        if (!strstr(err, cases[i].want))
            fail_msg("case %zu: [%s] lacks [%s]", i, err, cases[i].want);
    }
    /* good settings build */
    memset(&o, 0, sizeof o);
    o.min_version = TLS1_2_VERSION;
    o.ciphers = "ECDHE+AESGCM";
    o.ciphersuites = "TLS_AES_256_GCM_SHA384";
    o.cert_file = F.cli_cert;
    o.key_file = F.cli_key;
    struct mxg_tls_ctx *c = mxg_tls_ctx_new_client_opts(&o, err, sizeof err);
    assert_non_null(c);
    mxg_tls_ctx_describe(c, err, sizeof err);
    assert_non_null(strstr(err, "protocols TLSv1.2 .. (highest)"));
    assert_non_null(strstr(err, "CN=client.example.test"));
    mxg_tls_ctx_free(c);
}

/* tls.min_version = TLSv1.3 against a server that stops at TLS 1.2: no
 * handshake (the caller decides: plaintext retry or deferral); the default
 * floor (TLS 1.2) meets it; tls.max_version caps what is negotiated. */
static void test_versions(void **state)
{
    (void)state;
    char err[512], ver[32];
    struct mxg_tls_ctx *s12 = server_ctx(TLS1_2_VERSION), *s = server_ctx(0);
    struct mxg_tls_client_opts o;
    memset(&o, 0, sizeof o);
    o.min_version = TLS1_3_VERSION;
    struct mxg_tls_ctx *c13 = mxg_tls_ctx_new_client_opts(&o, err, sizeof err);
    assert_non_null(c13);
    assert_int_equal(connect_once(c13, s12, ver, sizeof ver, NULL, 0), MXG_TLS_ERR);
    assert_int_equal(connect_once(c13, s, ver, sizeof ver, NULL, 0), MXG_TLS_OK);
    assert_string_equal(ver, "TLSv1.3");

    o.min_version = TLS1_2_VERSION;
    struct mxg_tls_ctx *c12 = mxg_tls_ctx_new_client_opts(&o, err, sizeof err);
    assert_int_equal(connect_once(c12, s12, ver, sizeof ver, NULL, 0), MXG_TLS_OK);
    assert_string_equal(ver, "TLSv1.2");

    o.max_version = TLS1_2_VERSION;
    struct mxg_tls_ctx *cmax = mxg_tls_ctx_new_client_opts(&o, err, sizeof err);
    assert_int_equal(connect_once(cmax, s, ver, sizeof ver, NULL, 0), MXG_TLS_OK);
    assert_string_equal(ver, "TLSv1.2");
    mxg_tls_ctx_free(c13);
    mxg_tls_ctx_free(c12);
    mxg_tls_ctx_free(cmax);
    mxg_tls_ctx_free(s12);
    mxg_tls_ctx_free(s);
}

/* The client certificate goes out when the server asks for it. */
static void test_client_certificate(void **state)
{
    (void)state;
    char err[512], cn[128];
    struct mxg_tls_ctx *s = server_ctx(0);
    /* ask for a client certificate; accept whatever comes (we only look at it) */
    SSL_CTX_set_verify(mxg_tls_ctx_ssl_ctx(s), SSL_VERIFY_PEER, NULL);
    SSL_CTX_set_cert_verify_callback(mxg_tls_ctx_ssl_ctx(s), accept_all, NULL);
    struct mxg_tls_client_opts o;
    memset(&o, 0, sizeof o);
    struct mxg_tls_ctx *plain = mxg_tls_ctx_new_client_opts(&o, err, sizeof err);
    o.cert_file = F.cli_cert;
    o.key_file = F.cli_key;
    struct mxg_tls_ctx *with = mxg_tls_ctx_new_client_opts(&o, err, sizeof err);
    assert_non_null(plain);
    assert_non_null(with);
    assert_int_equal(connect_once(with, s, NULL, 0, cn, sizeof cn), MXG_TLS_OK);
    assert_string_equal(cn, "client.example.test");
    assert_int_equal(connect_once(plain, s, NULL, 0, cn, sizeof cn), MXG_TLS_OK);
    assert_string_equal(cn, "");
    mxg_tls_ctx_free(plain);
    mxg_tls_ctx_free(with);
    mxg_tls_ctx_free(s);
}

/* Several acceptable names: one match is enough; ".parent" covers
 * subdomains but not the parent itself; a failed match fails the
 * handshake (enforce) with a host-name verify result. */
static void test_verify_names(void **state)
{
    (void)state;
    char err[512];
    struct mxg_tls_ctx *s = server_ctx(0);
    struct mxg_tls_ctx *c = mxg_tls_ctx_new_client(F.srv_cert, err, sizeof err);
    assert_non_null(c);
    static const struct {
        const char *names[3];
        int n, ok;
    } cases[] = {
        {{"wrong.test", "mx.example.test"}, 2, 1},
        {{"wrong.test", ".example.test"}, 2, 1},
        {{".mx.example.test"}, 1, 0},     /* subdomains only */
        {{"example.test"}, 1, 0},
        {{"wrong.test", "other.test"}, 2, 0},
        {{"MX.EXAMPLE.TEST"}, 1, 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct mxg_tls_engine *ce = mxg_tls_engine_new_client(c, "mx.example.test");
        struct mxg_tls_engine *se = mxg_tls_engine_new_server(s);
        assert_int_equal(mxg_tls_engine_verify_names(ce, cases[i].names, cases[i].n, 1), MXG_TLS_OK);
        int rc = handshake(ce, se);
        if ((rc == MXG_TLS_OK) != cases[i].ok)
            fail_msg("case %zu: handshake %s", i, rc == MXG_TLS_OK ? "succeeded" : "failed");
        if (!cases[i].ok)
            assert_int_equal(mxg_tls_verify_result(ce), X509_V_ERR_HOSTNAME_MISMATCH);
        mxg_tls_engine_free(ce);
        mxg_tls_engine_free(se);
    }
    struct mxg_tls_engine *ce = mxg_tls_engine_new_client(c, NULL);
    assert_int_equal(mxg_tls_engine_verify_names(ce, NULL, 0, 1), MXG_TLS_ERR);
    mxg_tls_engine_free(ce);
    mxg_tls_ctx_free(c);
    mxg_tls_ctx_free(s);
}

/* SIGHUP: a context replaced under a live engine; new engines get the new
 * settings, the old engine finishes with the old ones. */
static void test_replace(void **state)
{
    (void)state;
    char err[512], ver[32];
    struct mxg_tls_ctx *s = server_ctx(0);
    struct mxg_tls_client_opts o;
    memset(&o, 0, sizeof o);
    struct mxg_tls_ctx *live = mxg_tls_ctx_new_client_opts(&o, err, sizeof err);
    struct mxg_tls_engine *old = mxg_tls_engine_new_client(live, "mx.example.test");
    o.max_version = TLS1_2_VERSION;
    struct mxg_tls_ctx *fresh = mxg_tls_ctx_new_client_opts(&o, err, sizeof err);
    assert_non_null(fresh);
    mxg_tls_ctx_replace(live, fresh); /* frees fresh */
    mxg_tls_ctx_describe(live, err, sizeof err);
    assert_non_null(strstr(err, ".. TLSv1.2"));
    struct mxg_tls_engine *se = mxg_tls_engine_new_server(s);
    assert_int_equal(handshake(old, se), MXG_TLS_OK);
    assert_string_equal(mxg_tls_version(old), "TLSv1.3"); /* built before the replace */
    mxg_tls_engine_free(old);
    mxg_tls_engine_free(se);
    assert_int_equal(connect_once(live, s, ver, sizeof ver, NULL, 0), MXG_TLS_OK);
    assert_string_equal(ver, "TLSv1.2");
    mxg_tls_ctx_free(live);
    mxg_tls_ctx_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_option_errors),    cmocka_unit_test(test_versions),
        cmocka_unit_test(test_client_certificate), cmocka_unit_test(test_verify_names),
        cmocka_unit_test(test_replace),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
