/* tests/unit/test_tls_resume.c — client session resumption (tls_engine.h
 * mxg_tls_resume_*): a session saved under a key is offered only under that
 * key, a TLS 1.3 ticket is used once (and the resumed connection brings a
 * new one), every ticket is kept (concurrent connections of a key resume), TLS 1.2 sessions stay, a failed engine saves nothing, the
 * store's size bound, clear. Every test runs twice: on a process's own store
 * and on the store shared by worker processes (mxg_tls_resume_new_shared,
 * tls/tls_shared.h); for the shared one also: a session stored by another
 * process (a forked child) resumes here under its key only, a session too
 * big for a slot is not stored, and the settings generation is the same in
 * every process. Client and server engines in memory, a self-signed
 * certificate made at setup. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "tls/tls_engine.h"
#include "tls/tls_shared.h"
#include "tls/tls_verify.h"

#define HOST "mx.example.test"

static int shared_mode; /* the group's second run: the workers' shared store */

/* A store of max sessions: the process's own, or a shared one (second run). */
static struct mxg_tls_resume *store_new(int max)
{
    return shared_mode ? mxg_tls_resume_new_shared(max) : mxg_tls_resume_new(max);
}

struct fixture {
    char cert[256], key[256];
    struct mxg_tls_ctx *sctx, *sctx12, *cctx;
    uint8_t spki[32]; /* SHA-256 of the certificate's key: TLSA 3 1 1 */
};

static int write_pem(char *path, size_t cap, int (*wr)(FILE *, void *), void *obj)
{
    const char *dir = getenv("TMPDIR");
    snprintf(path, cap, "%s/mxg_resume_XXXXXX", dir && *dir ? dir : "/tmp");
    int fd = mkstemp(path);
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (!f)
        return -1;
    int ok = wr(f, obj);
    fclose(f);
    return ok == 1 ? 0 : -1;
}

static int wr_key(FILE *f, void *k)
{
    return PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL);
}

static int wr_cert(FILE *f, void *x)
{
    return PEM_write_X509(f, x);
}

static int setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof *fx);
    EVP_PKEY *k = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    if (!fx || !k || !x)
        return -1;
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400);
    X509_set_pubkey(x, k);
    X509_NAME *n = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)HOST, -1, -1, 0);
    X509_set_issuer_name(x, n);
    X509_sign(x, k, EVP_sha256());
    unsigned char *der = NULL;
    int dlen = i2d_PUBKEY(k, &der);
    unsigned int mdlen = 0;
    if (dlen <= 0 || EVP_Digest(der, (size_t)dlen, fx->spki, &mdlen, EVP_sha256(), NULL) != 1)
        return -1;
    OPENSSL_free(der);
    if (write_pem(fx->key, sizeof fx->key, wr_key, k) < 0 ||
        write_pem(fx->cert, sizeof fx->cert, wr_cert, x) < 0)
        return -1;
    EVP_PKEY_free(k);
    X509_free(x);
    char err[512];
    fx->sctx = mxg_tls_ctx_new_server(fx->cert, fx->key, err, sizeof err);
    fx->sctx12 = mxg_tls_ctx_new_server(fx->cert, fx->key, err, sizeof err);
    fx->cctx = mxg_tls_ctx_new_client(fx->cert, err, sizeof err);
    if (!fx->sctx || !fx->sctx12 || !fx->cctx)
        return -1;
    SSL_CTX_set_max_proto_version(mxg_tls_ctx_ssl_ctx(fx->sctx12), TLS1_2_VERSION);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;
    mxg_tls_ctx_free(fx->sctx);
    mxg_tls_ctx_free(fx->sctx12);
    mxg_tls_ctx_free(fx->cctx);
    unlink(fx->cert);
    unlink(fx->key);
    free(fx);
    return 0;
}

static void pump(struct mxg_tls_engine *from, struct mxg_tls_engine *to)
{
    unsigned char buf[16384];
    size_t n;
    while ((n = mxg_tls_take_out(from, buf, sizeof buf)) > 0)
        assert_int_equal(mxg_tls_feed(to, buf, n), MXG_TLS_OK);
}

/* One connection: handshake, a greeting from the server read by the client
 * (the TLS 1.3 tickets arrive with it and are stored under key), the client
 * engine freed. Returns whether the handshake resumed. */
static int connect_once(struct mxg_tls_ctx *sctx, struct mxg_tls_ctx *cctx,
                        struct mxg_tls_resume *r, const char *key, int *offered)
{
    struct mxg_tls_engine *c = mxg_tls_engine_new_client(cctx, HOST);
    struct mxg_tls_engine *s = mxg_tls_engine_new_server(sctx);
    assert_non_null(c);
    assert_non_null(s);
    int off = mxg_tls_engine_resume(c, r, key, strlen(key));
    assert_true(off >= 0);
    if (offered)
        *offered = off;
    int rc = MXG_TLS_AGAIN, rs = MXG_TLS_AGAIN;
    for (int i = 0; i < 20 && (rc != MXG_TLS_OK || rs != MXG_TLS_OK); i++) {
        rc = mxg_tls_handshake(c);
        assert_int_not_equal(rc, MXG_TLS_ERR);
        pump(c, s);
        rs = mxg_tls_handshake(s);
        assert_int_not_equal(rs, MXG_TLS_ERR);
        pump(s, c);
    }
    assert_int_equal(rc, MXG_TLS_OK);
    assert_int_equal(rs, MXG_TLS_OK);
    assert_int_equal(mxg_tls_write(s, "220 hi\r\n", 8), MXG_TLS_OK);
    pump(s, c);
    char buf[64];
    size_t got = 0;
    assert_int_equal(mxg_tls_read(c, buf, sizeof buf, &got), MXG_TLS_OK);
    int resumed = mxg_tls_engine_resumed(c);
    assert_int_equal(mxg_tls_engine_resumed(s), resumed);
    mxg_tls_engine_free(c);
    mxg_tls_engine_free(s);
    return resumed;
}

static void test_tls13_ticket(void **state)
{
    struct fixture *fx = *state;
    struct mxg_tls_resume *r = store_new(8);
    assert_non_null(r);
    int off;
    assert_int_equal(connect_once(fx->sctx, fx->cctx, r, "A", &off), 0);
    assert_int_equal(off, 0);
    assert_int_equal(mxg_tls_resume_count(r), 2); /* both tickets of the full handshake */
    /* another key: nothing offered, a full handshake */
    assert_int_equal(connect_once(fx->sctx, fx->cctx, r, "B", &off), 0);
    assert_int_equal(off, 0);
    assert_int_equal(mxg_tls_resume_count(r), 4);
    /* the same key: resumed; the ticket used is gone, the resumed connection's new one stored */
    assert_int_equal(connect_once(fx->sctx, fx->cctx, r, "A", &off), 1);
    assert_int_equal(off, 1);
    assert_int_equal(mxg_tls_resume_count(r), 4);
    assert_int_equal(connect_once(fx->sctx, fx->cctx, r, "A", &off), 1);
    mxg_tls_resume_clear(r);
    assert_int_equal(mxg_tls_resume_count(r), 0);
    assert_int_equal(connect_once(fx->sctx, fx->cctx, r, "A", &off), 0);
    assert_int_equal(off, 0);
    mxg_tls_resume_free(r);
}

/* Handshake c with a new server engine of sctx until both are done. */
static int handshake_pair(struct mxg_tls_ctx *sctx, struct mxg_tls_engine *c)
{
    struct mxg_tls_engine *s = mxg_tls_engine_new_server(sctx);
    int rc = MXG_TLS_AGAIN, rs = MXG_TLS_AGAIN;
    for (int i = 0; i < 20 && (rc != MXG_TLS_OK || rs != MXG_TLS_OK); i++) {
        rc = mxg_tls_handshake(c);
        pump(c, s);
        rs = mxg_tls_handshake(s);
        pump(s, c);
    }
    assert_int_equal(rc, MXG_TLS_OK);
    assert_int_equal(rs, MXG_TLS_OK);
    int resumed = mxg_tls_engine_resumed(c);
    mxg_tls_engine_free(s);
    return resumed;
}

/* Two connections of one key at once after one full handshake: each
 * resumes with a ticket of its own (every ticket the server sent is kept,
 * each is offered once). */
static void test_tls13_concurrent(void **state)
{
    struct fixture *fx = *state;
    struct mxg_tls_resume *r = store_new(8);
    assert_int_equal(connect_once(fx->sctx, fx->cctx, r, "A", NULL), 0);
    struct mxg_tls_engine *c1 = mxg_tls_engine_new_client(fx->cctx, HOST);
    struct mxg_tls_engine *c2 = mxg_tls_engine_new_client(fx->cctx, HOST);
    struct mxg_tls_engine *c3 = mxg_tls_engine_new_client(fx->cctx, HOST);
    assert_int_equal(mxg_tls_engine_resume(c1, r, "A", 1), 1);
    assert_int_equal(mxg_tls_engine_resume(c2, r, "A", 1), 1);
    assert_int_equal(mxg_tls_engine_resume(c3, r, "A", 1), 0); /* two tickets, two uses */
    assert_int_equal(mxg_tls_resume_count(r), 0);
    assert_int_equal(handshake_pair(fx->sctx, c1), 1);
    assert_int_equal(handshake_pair(fx->sctx, c2), 1);
    assert_int_equal(handshake_pair(fx->sctx, c3), 0);
    mxg_tls_engine_free(c1);
    mxg_tls_engine_free(c2);
    mxg_tls_engine_free(c3);
    mxg_tls_resume_free(r);
}

/* One DANE connection (TLSA 3 1 1 with digest) under key: -1 when the
 * handshake failed, else whether it resumed; *vr = the verify result. */
static int connect_dane(struct fixture *fx, struct mxg_tls_resume *r, const char *key,
                        const uint8_t digest[32], long *vr)
{
    struct mxg_tls_engine *c = mxg_tls_engine_new_client(fx->cctx, HOST);
    struct mxg_tls_engine *s = mxg_tls_engine_new_server(fx->sctx);
    struct mxg_tls_tlsa t = {.usage = 3, .selector = 1, .mtype = 1, .len = 32, .data = digest};
    struct mxg_tls_verify v = {.how = MXG_TV_DANE, .enforce = 1, .sni = HOST, .tlsa = &t,
                               .n_tlsa = 1};
    char err[256];
    assert_int_equal(mxg_tls_verify_apply(c, &v, err, sizeof err), 0);
    assert_true(mxg_tls_engine_resume(c, r, key, strlen(key)) >= 0);
    int rc = MXG_TLS_AGAIN, rs = MXG_TLS_AGAIN;
    for (int i = 0; i < 20 && rc == MXG_TLS_AGAIN; i++) {
        rc = mxg_tls_handshake(c);
        pump(c, s);
        if (rs == MXG_TLS_AGAIN)
            rs = mxg_tls_handshake(s);
        pump(s, c);
    }
    *vr = mxg_tls_verify_result(c);
    int out = -1;
    if (rc == MXG_TLS_OK) {
        (void)mxg_tls_handshake(s);
        assert_int_equal(mxg_tls_write(s, "220 hi\r\n", 8), MXG_TLS_OK);
        pump(s, c);
        char buf[64];
        size_t got = 0;
        assert_int_equal(mxg_tls_read(c, buf, sizeof buf, &got), MXG_TLS_OK);
        out = mxg_tls_engine_resumed(c);
    }
    mxg_tls_engine_free(c);
    mxg_tls_engine_free(s);
    return out;
}

/* DANE and resumption. A session exists only after a handshake that passed
 * DANE: a TLSA mismatch stores nothing. A resumed session is accepted by
 * OpenSSL without any DANE check (no certificate is sent; the verify result
 * is the stored one) — even on a connection armed with TLSA records that
 * match nothing: the store key (the requirement digest with the TLSA set,
 * leg_resume_key) is the only thing that keeps a session to the
 * requirement it was verified under. */
static void test_dane_resumption(void **state)
{
    struct fixture *fx = *state;
    struct mxg_tls_resume *r = store_new(8);
    uint8_t wrong[32];
    memset(wrong, 0x5a, sizeof wrong);
    long vr;
    assert_int_equal(connect_dane(fx, r, "wrong", wrong, &vr), -1);
    assert_int_equal(vr, X509_V_ERR_DANE_NO_MATCH);
    assert_int_equal(mxg_tls_resume_count(r), 0); /* a failed DANE check: no session */
    assert_int_equal(connect_dane(fx, r, "wrong", wrong, &vr), -1); /* and again a full one */
    assert_int_equal(connect_dane(fx, r, "good", fx->spki, &vr), 0);
    assert_int_equal(vr, X509_V_OK);
    assert_int_equal(mxg_tls_resume_count(r), 2);
    assert_int_equal(connect_dane(fx, r, "good", fx->spki, &vr), 1);
    assert_int_equal(vr, X509_V_OK); /* the stored result of the verified full handshake */
    /* what OpenSSL does: no DANE check on resumption */
    assert_int_equal(connect_dane(fx, r, "good", wrong, &vr), 1);
    assert_int_equal(vr, X509_V_OK);
    mxg_tls_resume_free(r);
}

static void test_tls12_session(void **state)
{
    struct fixture *fx = *state;
    struct mxg_tls_resume *r = store_new(8);
    int off;
    assert_int_equal(connect_once(fx->sctx12, fx->cctx, r, "A", &off), 0);
    assert_int_equal(mxg_tls_resume_count(r), 1);
    assert_int_equal(connect_once(fx->sctx12, fx->cctx, r, "A", &off), 1);
    assert_int_equal(off, 1);
    assert_int_equal(mxg_tls_resume_count(r), 1); /* kept */
    assert_int_equal(connect_once(fx->sctx12, fx->cctx, r, "A", &off), 1);
    mxg_tls_resume_free(r);
}

static void test_bound_and_failure(void **state)
{
    struct fixture *fx = *state;
    struct mxg_tls_resume *r = store_new(2);
    assert_int_equal(connect_once(fx->sctx, fx->cctx, r, "A", NULL), 0);
    assert_int_equal(connect_once(fx->sctx, fx->cctx, r, "B", NULL), 0);
    assert_int_equal(connect_once(fx->sctx, fx->cctx, r, "C", NULL), 0);
    assert_int_equal(mxg_tls_resume_count(r), 2); /* A, the oldest, made room */
    int off;
    assert_int_equal(connect_once(fx->sctx, fx->cctx, r, "A", &off), 0);
    assert_int_equal(off, 0);
    /* a handshake that fails saves nothing */
    mxg_tls_resume_clear(r);
    struct mxg_tls_engine *c = mxg_tls_engine_new_client(fx->cctx, HOST);
    assert_int_equal(mxg_tls_engine_resume(c, r, "Z", 1), 0);
    assert_int_equal(mxg_tls_feed(c, "garbage-not-tls\r\n", 17), MXG_TLS_OK);
    (void)mxg_tls_handshake(c);
    assert_int_equal(mxg_tls_handshake(c), MXG_TLS_ERR);
    mxg_tls_engine_free(c);
    assert_int_equal(mxg_tls_resume_count(r), 0);
    /* bad arguments */
    assert_null(mxg_tls_resume_new(0));
    assert_int_equal(mxg_tls_engine_resume(NULL, r, "A", 1), -1);
    mxg_tls_resume_free(r);
}

/* The shared store across processes: a child (another worker) makes the
 * full handshake under "A" and exits; here "A" resumes with its ticket, "B"
 * (another requirement) gets nothing; a DANE session verified in the child
 * keeps its verify result here. */
static void test_shared_across_processes(void **state)
{
    struct fixture *fx = *state;
    struct mxg_tls_resume *r = mxg_tls_resume_new_shared(8);
    assert_non_null(r);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        long vr;
        int ok = connect_once(fx->sctx, fx->cctx, r, "A", NULL) == 0 &&
                 connect_dane(fx, r, "dane", fx->spki, &vr) == 0 && vr == X509_V_OK;
        _exit(ok ? 0 : 1);
    }
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    assert_int_equal(mxg_tls_resume_count(r), 4); /* two tickets for each key */
    int off;
    assert_int_equal(connect_once(fx->sctx, fx->cctx, r, "B", &off), 0);
    assert_int_equal(off, 0);
    assert_int_equal(connect_once(fx->sctx, fx->cctx, r, "A", &off), 1);
    assert_int_equal(off, 1);
    long vr = -1;
    uint8_t wrong[32];
    memset(wrong, 0x5a, sizeof wrong);
    /* no DANE check on resumption, here as in one process: the key is the guard */
    assert_int_equal(connect_dane(fx, r, "dane", wrong, &vr), 1);
    assert_int_equal(vr, X509_V_OK);
    mxg_tls_resume_free(r);
}

/* A kept (TLS 1.2) entry that does not deserialize, the newest under its key, is
 * dropped when it is offered and the next one tried: the good session stored
 * before it resumes at once, and the bad one is not offered again. */
static void test_shared_undeserializable(void **state)
{
    struct fixture *fx = *state;
    struct mxg_tls_resume *r = mxg_tls_resume_new_shared(8);
    assert_non_null(r);
    int off;
    assert_int_equal(connect_once(fx->sctx12, fx->cctx, r, "A", &off), 0);
    int64_t now = (int64_t)time(NULL);
    assert_int_equal(mxg_tls_shared_put(mxg_tls_resume_shared_table(r), "A", 1, "garbage", 7,
                                        now + 3600, 0, now),
                     1);
    assert_int_equal(mxg_tls_resume_count(r), 2);
    assert_int_equal(connect_once(fx->sctx12, fx->cctx, r, "A", &off), 1);
    assert_int_equal(off, 1);
    assert_int_equal(mxg_tls_resume_count(r), 1); /* the bad one is gone */
    assert_int_equal(connect_once(fx->sctx12, fx->cctx, r, "A", &off), 1);
    mxg_tls_resume_free(r);
}

/* The settings generation is in the mapping, not a per-process counter: the
 * master raises it (reload), a worker forked before takes it as it reloads
 * (clear), one forked after (a restarted worker) inherits it: all the same. */
static void test_shared_generation(void **state)
{
    (void)state;
    struct mxg_tls_resume *r = mxg_tls_resume_new_shared(4);
    assert_non_null(r);
    assert_int_equal(mxg_tls_resume_generation(r), 0);
    int p[2];
    assert_int_equal(pipe(p), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) { /* a worker: waits for the reload, then clears */
        char c;
        close(p[1]);
        int ok = read(p[0], &c, 1) == 1;
        mxg_tls_resume_clear(r);
        _exit(ok && mxg_tls_resume_generation(r) == 1 ? 0 : 1);
    }
    close(p[0]);
    mxg_tls_resume_settings_changed(r); /* the master's reload */
    assert_int_equal(mxg_tls_resume_generation(r), 1);
    assert_int_equal(write(p[1], "x", 1), 1);
    close(p[1]);
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    pid = fork(); /* a worker restarted after the reload */
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(mxg_tls_resume_generation(r) == 1 ? 0 : 1);
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    /* a worker that reloads before the master (pkill -HUP; or the master could not load
     * the file): it raises the generation itself, and the master's reload then takes
     * that one instead of raising it again */
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        mxg_tls_resume_clear(r);
        _exit(mxg_tls_resume_generation(r) == 2 ? 0 : 1);
    }
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    mxg_tls_resume_settings_changed(r);
    assert_int_equal(mxg_tls_resume_generation(r), 2);
    /* a private store: +1 per clear */
    struct mxg_tls_resume *q = mxg_tls_resume_new(4);
    mxg_tls_resume_clear(q);
    mxg_tls_resume_clear(q);
    assert_int_equal(mxg_tls_resume_generation(q), 2);
    mxg_tls_resume_free(q);
    mxg_tls_resume_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tls13_ticket),
        cmocka_unit_test(test_tls13_concurrent),
        cmocka_unit_test(test_dane_resumption),
        cmocka_unit_test(test_tls12_session),
        cmocka_unit_test(test_bound_and_failure),
    };
    const struct CMUnitTest shared[] = {
        cmocka_unit_test(test_shared_across_processes),
        cmocka_unit_test(test_shared_generation),
        cmocka_unit_test(test_shared_undeserializable),
    };
    int failed = cmocka_run_group_tests_name("own store", tests, setup, teardown);
    shared_mode = 1;
    failed += cmocka_run_group_tests_name("shared store", tests, setup, teardown);
    failed += cmocka_run_group_tests_name("shared store, processes", shared, setup, teardown);
    return failed;
}
