/* tests/unit/test_tls_engine.c — mxg_tls engine over memory BIOs.
 *
 * The group setup generates two self-signed P-256 certificates with the
 * OpenSSL API ("good": mx.example.test, served by the server; "other": an
 * unrelated one, used as a wrong CA file and a mismatched key) into temp
 * files. Each test pumps ciphertext between a client and a server engine in
 * memory; nothing touches a socket. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "tls/tls_engine.h"

#define HOST "mx.example.test"
#define MIB (1024u * 1024u)

struct pki_files {
    char cert[256];       /* self-signed, CN/SAN = HOST */
    char key[256];
    char other_cert[256]; /* self-signed, unrelated */
    char other_key[256];
};

/* A client/server engine pair and the contexts they came from. */
struct pair {
    struct mxg_tls_ctx *cctx, *sctx;
    struct mxg_tls_engine *c, *s;
};

/* ------------------------------------------------------------------------ */
/* Certificate fixture                                                      */

/* Contract: a fresh temp path from mkstemp in path (cap bytes); the open
 * stream for writing, or NULL. */
static FILE *temp_file(char *path, size_t cap)
{
    const char *dir = getenv("TMPDIR");
    snprintf(path, cap, "%s/mxg_tls_test_XXXXXX", dir && *dir ? dir : "/tmp");
    int fd = mkstemp(path);
    if (fd < 0)
        return NULL;
    FILE *f = fdopen(fd, "w");
    if (f == NULL)
        close(fd);
    return f;
}

/* Contract: add extension nid=value (X509V3 config syntax) to self-signed x. */
static int add_ext(X509 *x, int nid, const char *value)
{
    X509V3_CTX v3;
    X509V3_set_ctx_nodb(&v3);
    X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &v3, nid, value);
    if (ext == NULL)
        return -1;
    int ok = X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    return ok == 1 ? 0 : -1;
}

/* Contract: a self-signed v3 certificate for pkey, CN and SAN = cn. */
static X509 *make_cert(EVP_PKEY *pkey, const char *cn, long serial)
{
    char san[300];
    snprintf(san, sizeof san, "DNS:%s", cn);
    X509 *x = X509_new();
    if (x == NULL)
        return NULL;
    X509_NAME *name = X509_get_subject_name(x);
    int ok = X509_set_version(x, 2) == 1 && ASN1_INTEGER_set(X509_get_serialNumber(x), serial) == 1
             && X509_gmtime_adj(X509_getm_notBefore(x), -3600) != NULL
             && X509_gmtime_adj(X509_getm_notAfter(x), 86400L * 30) != NULL
             && X509_set_pubkey(x, pkey) == 1
             && X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1,
                                           -1, 0) == 1
             && X509_set_issuer_name(x, name) == 1
             && add_ext(x, NID_basic_constraints, "critical,CA:TRUE") == 0
             && add_ext(x, NID_subject_alt_name, san) == 0 && X509_sign(x, pkey, EVP_sha256()) > 0;
    if (!ok) {
        X509_free(x);
        return NULL;
    }
    return x;
}

/* Contract: generate a P-256 key + self-signed cert for cn and write them as
 * PEM to new temp files certpath/keypath. 0 or -1. */
static int write_pki(const char *cn, long serial, char *certpath, char *keypath, size_t cap)
{
    EVP_PKEY *pkey = EVP_EC_gen("P-256");
    X509 *x = pkey ? make_cert(pkey, cn, serial) : NULL;
    FILE *cf = x ? temp_file(certpath, cap) : NULL;
    FILE *kf = cf ? temp_file(keypath, cap) : NULL;
    int ok = kf != NULL && PEM_write_X509(cf, x) == 1
             && PEM_write_PrivateKey(kf, pkey, NULL, NULL, 0, NULL, NULL) == 1;
    if (cf != NULL && fclose(cf) != 0)
        ok = 0;
    if (kf != NULL && fclose(kf) != 0)
        ok = 0;
    X509_free(x);
    EVP_PKEY_free(pkey);
    return ok ? 0 : -1;
}

/* Contract: remove any temp file named in p. */
static void unlink_pki(struct pki_files *p)
{
    const char *paths[] = {p->cert, p->key, p->other_cert, p->other_key};
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++)
        if (paths[i][0] != '\0')
            unlink(paths[i]);
}

static int group_setup(void **state)
{
    struct pki_files *p = calloc(1, sizeof *p);
    if (p == NULL)
        return -1;
    if (write_pki(HOST, 1, p->cert, p->key, sizeof p->cert) != 0
        || write_pki("other.example.test", 2, p->other_cert, p->other_key, sizeof p->cert) != 0) {
        unlink_pki(p);
        free(p);
        return -1;
    }
    *state = p;
    return 0;
}

static int group_teardown(void **state)
{
    struct pki_files *p = *state;
    if (p != NULL) {
        unlink_pki(p);
        free(p);
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Pumping helpers                                                          */

/* Contract: move up to max ciphertext bytes (all when max is 0) from `from`
 * to `to`; returns the number moved. */
static size_t pump(struct mxg_tls_engine *from, struct mxg_tls_engine *to, size_t max)
{
    unsigned char buf[16384];
    size_t moved = 0;
    while (max == 0 || moved < max) {
        size_t want = sizeof buf;
        if (max != 0 && max - moved < want)
            want = max - moved;
        size_t n = mxg_tls_take_out(from, buf, want);
        if (n == 0)
            break;
        assert_int_equal(mxg_tls_feed(to, buf, n), MXG_TLS_OK);
        moved += n;
    }
    return moved;
}

/* Contract: run both handshakes to completion; fails the test on ERR or if
 * no progress is made. */
static void handshake_pair(struct pair *p)
{
    int rc = MXG_TLS_AGAIN, rs = MXG_TLS_AGAIN;
    for (int round = 0; round < 20 && (rc != MXG_TLS_OK || rs != MXG_TLS_OK); round++) {
        rc = mxg_tls_handshake(p->c);
        assert_int_not_equal(rc, MXG_TLS_ERR);
        pump(p->c, p->s, 0);
        rs = mxg_tls_handshake(p->s);
        assert_int_not_equal(rs, MXG_TLS_ERR);
        pump(p->s, p->c, 0);
    }
    assert_int_equal(rc, MXG_TLS_OK);
    assert_int_equal(rs, MXG_TLS_OK);
    assert_true(mxg_tls_handshake_done(p->c));
    assert_true(mxg_tls_handshake_done(p->s));
}

/* Contract: contexts + engines for a pair; cafile as for the client ctx;
 * the server is capped at max_version unless it is 0 (before SSL_new: an SSL
 * copies its version limits from the context when created). */
static void pair_open_v(struct pair *p, const struct pki_files *pki, const char *cafile,
                        const char *sni, int max_version)
{
    char err[512] = "";
    memset(p, 0, sizeof *p);
    p->sctx = mxg_tls_ctx_new_server(pki->cert, pki->key, err, sizeof err);
    assert_non_null(p->sctx);
    if (max_version != 0)
        assert_int_equal(
            SSL_CTX_set_max_proto_version(mxg_tls_ctx_ssl_ctx(p->sctx), max_version), 1);
    p->cctx = mxg_tls_ctx_new_client(cafile, err, sizeof err);
    assert_non_null(p->cctx);
    p->c = mxg_tls_engine_new_client(p->cctx, sni);
    assert_non_null(p->c);
    p->s = mxg_tls_engine_new_server(p->sctx);
    assert_non_null(p->s);
}

/* Contract: pair_open_v without a version cap. */
static void pair_open(struct pair *p, const struct pki_files *pki, const char *cafile,
                      const char *sni)
{
    pair_open_v(p, pki, cafile, sni, 0);
}

static void pair_close(struct pair *p)
{
    mxg_tls_engine_free(p->c);
    mxg_tls_engine_free(p->s);
    mxg_tls_ctx_free(p->cctx);
    mxg_tls_ctx_free(p->sctx);
    memset(p, 0, sizeof *p);
}

/* Contract: read everything `to` can decrypt into out (appending at *got,
 * up to cap) in reads of at most chunk bytes, until AGAIN. Data beyond cap
 * fails the test. */
static void drain_plain(struct mxg_tls_engine *to, unsigned char *out, size_t cap, size_t *got,
                        size_t chunk)
{
    for (;;) {
        unsigned char spare;
        int full = *got >= cap;
        size_t want = full ? 1 : (cap - *got < chunk ? cap - *got : chunk);
        size_t n = 0;
        int rc = mxg_tls_read(to, full ? &spare : out + *got, want, &n);
        if (rc == MXG_TLS_AGAIN)
            return;
        assert_int_equal(rc, MXG_TLS_OK);
        assert_false(full);
        assert_true(n > 0 && n <= want);
        *got += n;
    }
}

/* Contract: send len pattern bytes from `from`, receive them on `to` with
 * reads of at most chunk bytes, ciphertext moved in wire-sized pieces. */
static void transfer(struct mxg_tls_engine *from, struct mxg_tls_engine *to, size_t len,
                     size_t chunk)
{
    unsigned char *msg = malloc(len ? len : 1);
    unsigned char *got = malloc(len ? len : 1);
    assert_non_null(msg);
    assert_non_null(got);
    for (size_t i = 0; i < len; i++)
        msg[i] = (unsigned char)(i * 31u + 7u + (i >> 12));
    assert_int_equal(mxg_tls_write(from, msg, len), MXG_TLS_OK);
    size_t have = 0;
    while (pump(from, to, 4096) > 0)
        drain_plain(to, got, len, &have, chunk);
    drain_plain(to, got, len, &have, chunk);
    assert_int_equal(have, len);
    assert_memory_equal(msg, got, len);
    free(msg);
    free(got);
}

/* ------------------------------------------------------------------------ */
/* Tests                                                                    */

/* Every entry point tolerates NULL and reports failure without crashing. */
static void test_null_safety(void **state)
{
    (void)state;
    char err[64];
    unsigned char buf[8];
    size_t n = 99;
    assert_null(mxg_tls_ctx_new_server(NULL, NULL, err, sizeof err));
    assert_true(err[0] != '\0');
    assert_null(mxg_tls_ctx_new_server(NULL, NULL, NULL, 0));
    mxg_tls_ctx_free(NULL);
    assert_null(mxg_tls_ctx_ssl_ctx(NULL));
    assert_null(mxg_tls_engine_new_client(NULL, HOST));
    assert_null(mxg_tls_engine_new_server(NULL));
    mxg_tls_engine_free(NULL);
    assert_null(mxg_tls_engine_ssl(NULL));
    assert_int_equal(mxg_tls_feed(NULL, buf, 1), MXG_TLS_ERR);
    assert_int_equal(mxg_tls_handshake(NULL), MXG_TLS_ERR);
    assert_false(mxg_tls_handshake_done(NULL));
    assert_int_equal(mxg_tls_out_pending(NULL), 0);
    assert_int_equal(mxg_tls_take_out(NULL, buf, sizeof buf), 0);
    assert_int_equal(mxg_tls_write(NULL, buf, 1), MXG_TLS_ERR);
    assert_int_equal(mxg_tls_read(NULL, buf, sizeof buf, &n), MXG_TLS_ERR);
    assert_int_equal(n, 0);
    mxg_tls_shutdown(NULL);
    assert_string_equal(mxg_tls_version(NULL), "");
    assert_string_equal(mxg_tls_cipher(NULL), "");
    assert_int_equal(mxg_tls_verify_result(NULL), X509_V_ERR_UNSPECIFIED);
    assert_string_equal(mxg_tls_engine_error(NULL), "");
}

/* Context constructors fail cleanly with a reason. */
static void test_ctx_errors(void **state)
{
    const struct pki_files *pki = *state;
    const struct {
        const char *name;
        int server;
        const char *a, *b; /* server: cert, key; client: cafile */
    } cases[] = {
        {"key does not match cert", 1, pki->cert, pki->other_key},
        {"missing cert file", 1, "/nonexistent/cert.pem", pki->key},
        {"missing key file", 1, pki->cert, "/nonexistent/key.pem"},
        {"key file is a cert", 1, pki->cert, pki->cert},
        {"NULL key", 1, pki->cert, NULL},
        {"missing CA file", 0, "/nonexistent/ca.pem", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char err[512] = "";
        print_message("case: %s\n", cases[i].name);
        struct mxg_tls_ctx *ctx = cases[i].server
                                      ? mxg_tls_ctx_new_server(cases[i].a, cases[i].b, err, sizeof err)
                                      : mxg_tls_ctx_new_client(cases[i].a, err, sizeof err);
        assert_null(ctx);
        print_message("  err: %s\n", err);
        assert_true(err[0] != '\0');
        assert_int_equal(ERR_peek_error(), 0); /* queue left clean */
    }
}

/* Records what the server's servername callback saw. */
struct sni_seen {
    int calls;
    int present;
    char name[256];
};

static int sni_cb(SSL *ssl, int *alert, void *arg)
{
    (void)alert;
    struct sni_seen *seen = arg;
    const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    seen->calls++;
    seen->present = name != NULL;
    snprintf(seen->name, sizeof seen->name, "%s", name ? name : "");
    return SSL_TLSEXT_ERR_OK;
}

/* Handshake completes; version/cipher reported; SNI reaches the server. */
static void test_handshake_and_sni(void **state)
{
    const struct pki_files *pki = *state;
    const struct {
        const char *sni;
        int max_version; /* server cap, 0 = none */
        const char *expect; /* NULL: TLSv1.2 or TLSv1.3 */
    } cases[] = {
        {HOST, 0, NULL},
        {"other.example.org", 0, NULL},
        {NULL, 0, NULL},
        {HOST, TLS1_2_VERSION, "TLSv1.2"},
        {NULL, TLS1_2_VERSION, "TLSv1.2"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *sni = cases[i].sni;
        print_message("case: sni=%s max=%#x\n", sni ? sni : "(none)", cases[i].max_version);
        struct pair p;
        struct sni_seen seen = {0};
        pair_open_v(&p, pki, NULL, sni, cases[i].max_version);
        SSL_CTX *sc = mxg_tls_ctx_ssl_ctx(p.sctx);
        assert_non_null(sc);
        SSL_CTX_set_tlsext_servername_callback(sc, sni_cb);
        SSL_CTX_set_tlsext_servername_arg(sc, &seen);
        assert_false(mxg_tls_handshake_done(p.c));
        assert_string_equal(mxg_tls_version(p.c), "");
        assert_string_equal(mxg_tls_cipher(p.c), "");
        assert_int_equal(mxg_tls_verify_result(p.c), X509_V_ERR_UNSPECIFIED);

        assert_int_equal(mxg_tls_handshake(p.c), MXG_TLS_AGAIN);
        assert_true(mxg_tls_out_pending(p.c) > 0); /* ClientHello */
        handshake_pair(&p);

        const char *v = mxg_tls_version(p.c);
        assert_true(strcmp(v, "TLSv1.2") == 0 || strcmp(v, "TLSv1.3") == 0);
        if (cases[i].expect)
            assert_string_equal(v, cases[i].expect);
        assert_string_equal(v, mxg_tls_version(p.s));
        assert_true(mxg_tls_cipher(p.c)[0] != '\0');
        assert_string_equal(mxg_tls_cipher(p.c), mxg_tls_cipher(p.s));
        assert_int_equal(mxg_tls_handshake(p.c), MXG_TLS_OK); /* idempotent */
        assert_string_equal(mxg_tls_engine_error(p.c), "");
        assert_string_equal(mxg_tls_engine_error(p.s), "");

        assert_true(seen.calls >= 1);
        assert_int_equal(seen.present, sni != NULL);
        assert_string_equal(seen.name, sni ? sni : "");
        pair_close(&p);
    }
}

/* Data both ways, sizes around the record limit and 1 MiB, chunked reads. */
static void test_exchange(void **state)
{
    const struct pki_files *pki = *state;
    const struct {
        size_t len;
        size_t chunk;
    } cases[] = {
        {1, 1}, {1000, 4096}, {16384, 16384}, {16385, 1000}, {100000, 333}, {MIB, 4096}, {MIB, 65536},
    };
    const int versions[] = {0, TLS1_2_VERSION};
    for (size_t v = 0; v < sizeof versions / sizeof versions[0]; v++) {
        struct pair p;
        pair_open_v(&p, pki, NULL, HOST, versions[v]);
        handshake_pair(&p);
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
            print_message("case: %s, %zu bytes, reads of %zu\n", mxg_tls_version(p.c), cases[i].len,
                          cases[i].chunk);
            transfer(p.c, p.s, cases[i].len, cases[i].chunk);
            transfer(p.s, p.c, cases[i].len, cases[i].chunk);
        }
        assert_int_equal(mxg_tls_write(p.c, NULL, 0), MXG_TLS_OK);
        assert_int_equal(mxg_tls_out_pending(p.c), 0);
        pair_close(&p);
    }
}

/* A read with nothing buffered is AGAIN; bad arguments are ERR but harmless. */
static void test_read_again_and_bad_args(void **state)
{
    const struct pki_files *pki = *state;
    struct pair p;
    unsigned char buf[64];
    size_t n = 7;
    pair_open(&p, pki, NULL, HOST);
    handshake_pair(&p);
    assert_int_equal(mxg_tls_read(p.s, buf, sizeof buf, &n), MXG_TLS_AGAIN);
    assert_int_equal(n, 0);
    assert_int_equal(mxg_tls_read(p.s, buf, 0, &n), MXG_TLS_ERR);
    assert_int_equal(mxg_tls_read(p.s, buf, sizeof buf, NULL), MXG_TLS_ERR);
    assert_int_equal(mxg_tls_write(p.s, NULL, 5), MXG_TLS_ERR);
    assert_int_equal(mxg_tls_feed(p.s, NULL, 5), MXG_TLS_ERR);
    assert_int_equal(mxg_tls_take_out(p.s, NULL, 5), 0);
    transfer(p.s, p.c, 10, 64); /* still usable */
    pair_close(&p);
}

/* close_notify from either side shows up as EOF on the other. */
static void test_close_notify(void **state)
{
    const struct pki_files *pki = *state;
    for (int k = 0; k < 4; k++) {
        int client_first = k & 1;
        int max_version = k & 2 ? TLS1_2_VERSION : 0;
        struct pair p;
        unsigned char buf[256];
        size_t n = 0;
        pair_open_v(&p, pki, NULL, HOST, max_version);
        handshake_pair(&p);
        print_message("case: %s, %s closes first\n", mxg_tls_version(p.c),
                      client_first ? "client" : "server");
        struct mxg_tls_engine *a = client_first ? p.c : p.s;
        struct mxg_tls_engine *b = client_first ? p.s : p.c;
        transfer(a, b, 100, 256);
        mxg_tls_shutdown(a);
        assert_true(mxg_tls_out_pending(a) > 0);
        pump(a, b, 0);
        assert_int_equal(mxg_tls_read(b, buf, sizeof buf, &n), MXG_TLS_EOF);
        assert_int_equal(n, 0);
        assert_int_equal(mxg_tls_read(b, buf, sizeof buf, &n), MXG_TLS_EOF);
        mxg_tls_shutdown(b); /* answer */
        pump(b, a, 0);
        assert_int_equal(mxg_tls_read(a, buf, sizeof buf, &n), MXG_TLS_EOF);
        pair_close(&p);
    }
}

/* Writing before the handshake is an ERR that does not break the engine. */
static void test_write_before_handshake(void **state)
{
    const struct pki_files *pki = *state;
    struct pair p;
    pair_open(&p, pki, NULL, HOST);
    assert_int_equal(mxg_tls_write(p.c, "hi", 2), MXG_TLS_ERR);
    assert_true(mxg_tls_engine_error(p.c)[0] != '\0');
    mxg_tls_shutdown(p.c); /* no-op before the handshake */
    assert_int_equal(mxg_tls_out_pending(p.c), 0);
    handshake_pair(&p);
    transfer(p.c, p.s, 2, 16);
    pair_close(&p);
}

/* Non-TLS bytes from the "server" fail the client handshake with a reason;
 * the failure is sticky and leaves the error queue clean. */
static void test_garbage_ciphertext(void **state)
{
    (void)state;
    const char *garbage[] = {
        "220 mx.example.test ESMTP hello there, this is not TLS at all\r\n",
        "\x16\x03\x03\x00\x05\xff\xff\xff\xff\xff", /* handshake record, bogus body */
        "\x15\x03\x03\x00\x02\x02\x28",             /* fatal handshake_failure alert */
    };
    const size_t lens[] = {strlen(garbage[0]), 10, 7};
    for (size_t i = 0; i < sizeof garbage / sizeof garbage[0]; i++) {
        print_message("case: garbage #%zu\n", i);
        char err[512] = "";
        struct mxg_tls_ctx *cctx = mxg_tls_ctx_new_client(NULL, err, sizeof err);
        assert_non_null(cctx);
        struct mxg_tls_engine *c = mxg_tls_engine_new_client(cctx, HOST);
        assert_non_null(c);
        unsigned char hello[4096];
        assert_int_equal(mxg_tls_handshake(c), MXG_TLS_AGAIN);
        assert_true(mxg_tls_take_out(c, hello, sizeof hello) > 0);
        assert_int_equal(mxg_tls_feed(c, garbage[i], lens[i]), MXG_TLS_OK);
        assert_int_equal(mxg_tls_handshake(c), MXG_TLS_ERR);
        const char *why = mxg_tls_engine_error(c);
        print_message("  error: %s\n", why);
        assert_true(why[0] != '\0');
        assert_non_null(strstr(why, "handshake"));
        if (i == 2)
            assert_non_null(strstr(why, "received alert: handshake failure"));
        assert_int_equal(ERR_peek_error(), 0);
        assert_int_equal(mxg_tls_handshake(c), MXG_TLS_ERR); /* sticky */
        assert_int_equal(mxg_tls_feed(c, "x", 1), MXG_TLS_ERR);
        assert_false(mxg_tls_handshake_done(c));
        mxg_tls_engine_free(c);
        mxg_tls_ctx_free(cctx);
    }
}

/* VERIFY_NONE: the handshake succeeds either way; the verify result tells. */
static void test_verify_result(void **state)
{
    const struct pki_files *pki = *state;
    const struct {
        const char *name;
        const char *cafile;
        const char *host; /* SSL_set1_host, NULL = none */
        long expect;      /* -1: anything but X509_V_OK */
    } cases[] = {
        {"wrong CA", pki->other_cert, NULL, -1},
        {"wrong CA + host", pki->other_cert, HOST, -1},
        {"right CA + host", pki->cert, HOST, X509_V_OK},
        {"right CA, no host", pki->cert, NULL, X509_V_OK},
        {"right CA, wrong host", pki->cert, "wrong.example.test", X509_V_ERR_HOSTNAME_MISMATCH},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        print_message("case: %s\n", cases[i].name);
        struct pair p;
        pair_open(&p, pki, cases[i].cafile, HOST);
        if (cases[i].host)
            assert_int_equal(SSL_set1_host(mxg_tls_engine_ssl(p.c), cases[i].host), 1);
        handshake_pair(&p);
        long vr = mxg_tls_verify_result(p.c);
        if (cases[i].expect < 0)
            assert_int_not_equal(vr, X509_V_OK);
        else
            assert_int_equal(vr, cases[i].expect);
        /* the client sent no certificate: nothing verified on the server */
        assert_int_equal(mxg_tls_verify_result(p.s), X509_V_ERR_UNSPECIFIED);
        pair_close(&p);
    }
}

/* Contract: one VERIFY_PEER failure run with the server capped at
 * max_version (0 = none). */
static void verify_peer_failure(const struct pki_files *pki, int max_version)
{
    struct pair p;
    print_message("case: max=%#x\n", max_version);
    pair_open_v(&p, pki, pki->other_cert, HOST, max_version);
    SSL_set_verify(mxg_tls_engine_ssl(p.c), SSL_VERIFY_PEER, NULL);
    int rc = MXG_TLS_AGAIN, rs = MXG_TLS_AGAIN;
    for (int round = 0; round < 10 && rc == MXG_TLS_AGAIN; round++) {
        rc = mxg_tls_handshake(p.c);
        pump(p.c, p.s, 0);
        rs = mxg_tls_handshake(p.s);
        pump(p.s, p.c, 0);
    }
    assert_int_equal(rc, MXG_TLS_ERR);
    const char *cerr = mxg_tls_engine_error(p.c);
    print_message("  client: %s\n", cerr);
    assert_non_null(strstr(cerr, "certificate verify failed"));
    assert_non_null(strstr(cerr, "verify: "));
    assert_non_null(strstr(cerr, "sent alert"));
    /* the alert reached the server (TLS 1.3: after its handshake finished) */
    unsigned char buf[64];
    size_t n = 0;
    if (rs == MXG_TLS_OK)
        rs = mxg_tls_read(p.s, buf, sizeof buf, &n);
    assert_int_equal(rs, MXG_TLS_ERR);
    const char *serr = mxg_tls_engine_error(p.s);
    print_message("  server: %s\n", serr);
    assert_non_null(strstr(serr, "received alert"));
    assert_int_equal(ERR_peek_error(), 0);
    pair_close(&p);
}

/* With SSL_VERIFY_PEER (as DANE/PKIX will set), a bad chain fails the
 * handshake: the client error names the verify result, the server the alert. */
static void test_verify_peer_failure(void **state)
{
    const struct pki_files *pki = *state;
    verify_peer_failure(pki, 0);
    verify_peer_failure(pki, TLS1_2_VERSION);
}

/* Contexts may be freed before their engines. */
static void test_ctx_freed_first(void **state)
{
    const struct pki_files *pki = *state;
    struct pair p;
    pair_open(&p, pki, NULL, HOST);
    mxg_tls_ctx_free(p.cctx);
    mxg_tls_ctx_free(p.sctx);
    p.cctx = p.sctx = NULL;
    handshake_pair(&p);
    transfer(p.c, p.s, 5000, 512);
    pair_close(&p);
}

/* Stale errors on the thread's queue do not leak into an engine's result. */
static void test_error_queue_isolation(void **state)
{
    const struct pki_files *pki = *state;
    struct pair p;
    pair_open(&p, pki, NULL, HOST);
    ERR_raise(ERR_LIB_SSL, SSL_R_BAD_LENGTH);
    handshake_pair(&p);
    assert_string_equal(mxg_tls_engine_error(p.c), "");
    ERR_raise(ERR_LIB_SSL, SSL_R_BAD_LENGTH);
    transfer(p.c, p.s, 100, 100);
    assert_string_equal(mxg_tls_engine_error(p.s), "");
    pair_close(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_null_safety),
        cmocka_unit_test(test_ctx_errors),
        cmocka_unit_test(test_handshake_and_sni),
        cmocka_unit_test(test_exchange),
        cmocka_unit_test(test_read_again_and_bad_args),
        cmocka_unit_test(test_close_notify),
        cmocka_unit_test(test_write_before_handshake),
        cmocka_unit_test(test_garbage_ciphertext),
        cmocka_unit_test(test_verify_result),
        cmocka_unit_test(test_verify_peer_failure),
        cmocka_unit_test(test_ctx_freed_first),
        cmocka_unit_test(test_error_queue_isolation),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
