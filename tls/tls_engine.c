/* tls/tls_engine.c — see tls_engine.h.
 *
 * One SSL per engine, wired to two memory BIOs:
 *   rbio: ciphertext from the network, written by mxg_tls_feed(), read by SSL;
 *   wbio: ciphertext for the network, written by SSL, read by mxg_tls_take_out().
 * Memory BIOs never block on write and report "retry" on an empty read, so
 * the only retry the engine ever sees is SSL_ERROR_WANT_READ (→ AGAIN).
 *
 * Error hygiene: the OpenSSL error queue is per thread and shared by every
 * engine, so it is cleared before each SSL call and drained (into the
 * engine's error string) or cleared after it. A fatal error is sticky: the
 * SSL object is unusable afterwards and every later call returns ERR.
 * On the data path (feed, take_out, write, read, handshake) the queue is
 * emptied only when it holds something (err_drop): ERR_clear_error() walks
 * all of the queue's slots every time (~500 instructions, some 30 calls a
 * relayed message), ERR_peek_error() only looks whether it is empty; and
 * after SSL_get_error() said WANT_READ / ZERO_RETURN the queue is empty
 * (SSL_get_error() answers those only when ERR_peek_error() is 0). */
#include "tls/tls_engine.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include "core/log.h"
#include "tls/tls_shared.h"

#define COMP "tls"

struct mxg_tls_ctx {
    SSL_CTX *ssl_ctx;
};

struct mxg_tls_engine {
    SSL *ssl;      /* owns rbio and wbio (SSL_set_bio) */
    BIO *rbio;     /* borrowed from ssl: network -> SSL */
    BIO *wbio;     /* borrowed from ssl: SSL -> network */
    SSL_CTX *ctx;  /* our own reference, released in mxg_tls_engine_free */
    int failed;    /* sticky: a fatal error happened */
    char alert[96];  /* last fatal alert sent/received, "" if none */
    char err[512];   /* last error, "" if none */
    /* session resumption (mxg_tls_engine_resume): the store and the key */
    struct mxg_tls_resume *resume;
    unsigned char rkey[MXG_TLS_RESUME_KEY_MAX];
    size_t rkeylen;
};

/* ------------------------------------------------------------------------ */
/* Error text helpers                                                       */

/* Contract: leaves this thread's OpenSSL error queue empty, as
 * ERR_clear_error() does, at the cost of a look when it is empty already. */
static void err_drop(void)
{
    if (ERR_peek_error() != 0)
        ERR_clear_error();
}

/* Contract: printf into buf, truncated and NUL-terminated within cap; no-op
 * when buf is NULL or cap is 0. */
static void set_text(char *buf, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_text(char *buf, size_t cap, const char *fmt, ...)
{
    if (buf == NULL || cap == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, cap, fmt, ap);
    va_end(ap);
}

/* Contract: append "sep + OpenSSL error strings" for every queued error to
 * buf (len < cap), then clear the queue. Returns the number of entries. */
static int append_openssl_errors(char *buf, size_t cap)
{
    int count = 0;
    unsigned long code;
    while ((code = ERR_get_error()) != 0) {
        size_t used = strlen(buf);
        if (used + 3 >= cap)
            continue; /* keep draining the queue */
        if (used > 0) {
            memcpy(buf + used, "; ", 3);
            used += 2;
        }
        ERR_error_string_n(code, buf + used, cap - used);
        count++;
    }
    ERR_clear_error();
    return count;
}

/* Contract: append " (suffix)" to buf if it fits, truncating otherwise. */
static void append_paren(char *buf, size_t cap, const char *label, const char *what)
{
    size_t used = strlen(buf);
    if (used + 1 < cap)
        snprintf(buf + used, cap - used, "%s(%s%s)", used > 0 ? " " : "", label, what);
}

/* Contract: record in e->err why operation `op` failed with SSL_get_error()
 * code `ssl_err`: OpenSSL queue, fatal alert, and the verify result when the
 * peer certificate was being verified. Clears the error queue. */
static void capture_error(struct mxg_tls_engine *e, const char *op, int ssl_err)
{
    char detail[sizeof e->err];
    detail[0] = '\0';
    if (append_openssl_errors(detail, sizeof detail) == 0) {
        if (ssl_err == SSL_ERROR_SYSCALL)
            set_text(detail, sizeof detail, "unexpected end of stream");
        else if (ssl_err != SSL_ERROR_SSL)
            set_text(detail, sizeof detail, "unexpected SSL_get_error %d", ssl_err);
    }
    if (e->alert[0] != '\0')
        append_paren(detail, sizeof detail, "", e->alert);
    long vr = SSL_get_verify_result(e->ssl);
    if (vr != X509_V_OK && (SSL_get_verify_mode(e->ssl) & SSL_VERIFY_PEER))
        append_paren(detail, sizeof detail, "verify: ", X509_verify_cert_error_string(vr));
    set_text(e->err, sizeof e->err, "%s: %s", op, detail[0] ? detail : "failed");
}

/* Contract: mark e failed, capture why, and return MXG_TLS_ERR. */
static int fail(struct mxg_tls_engine *e, const char *op, int ssl_err)
{
    e->failed = 1;
    capture_error(e, op, ssl_err);
    LOG_D(COMP, "%s", e->err);
    return MXG_TLS_ERR;
}

/* Contract: SSL info callback; remembers the last fatal alert, sent or
 * received, in the engine found via SSL app data. */
static void info_cb(const SSL *ssl, int where, int ret)
{
    if (!(where & SSL_CB_ALERT) || (ret >> 8) != SSL3_AL_FATAL)
        return;
    struct mxg_tls_engine *e = SSL_get_app_data(ssl);
    if (e == NULL)
        return;
    set_text(e->alert, sizeof e->alert, "%s alert: %s",
             (where & SSL_CB_READ) ? "received" : "sent", SSL_alert_desc_string_long(ret));
}

/* ------------------------------------------------------------------------ */
/* Contexts                                                                 */

/* Contract: fill err with "what: <OpenSSL errors>" and clear the queue. */
static void ctx_error(char *err, size_t errlen, const char *what)
{
    char detail[384] = "";
    if (append_openssl_errors(detail, sizeof detail) == 0)
        set_text(detail, sizeof detail, "unknown error");
    set_text(err, errlen, "%s: %s", what, detail);
}

/* Contract: settings shared by client and server contexts. */
static void ctx_common(SSL_CTX *c)
{
    SSL_CTX_clear_mode(c, SSL_MODE_ENABLE_PARTIAL_WRITE);
    SSL_CTX_set_mode(c, SSL_MODE_AUTO_RETRY);
    /* Renegotiation would let SSL_write need peer input; refuse it. */
    SSL_CTX_set_options(c, SSL_OP_NO_RENEGOTIATION);
}

/* Contract: wrap c (ownership taken) or free it and return NULL. */
static struct mxg_tls_ctx *ctx_wrap(SSL_CTX *c, char *err, size_t errlen)
{
    struct mxg_tls_ctx *ctx = calloc(1, sizeof *ctx);
    if (ctx == NULL) {
        SSL_CTX_free(c);
        set_text(err, errlen, "out of memory");
        return NULL;
    }
    ctx->ssl_ctx = c;
    return ctx;
}

/* Contract: forward declaration; see the server section. */
static int load_cert_key(SSL_CTX *c, const char *certfile, const char *keyfile, char *err,
                         size_t errlen);

static const char *proto_name(int v)
{
    switch (v) {
    case TLS1_VERSION: return "TLSv1";
    case TLS1_1_VERSION: return "TLSv1.1";
    case TLS1_2_VERSION: return "TLSv1.2";
    case TLS1_3_VERSION: return "TLSv1.3";
    case 0: return "(default)";
    }
    return "?";
}

/* Contract: apply the operator's client settings to c: 0, or -1 with err. */
static int client_settings(SSL_CTX *c, const struct mxg_tls_client_opts *o, char *err,
                           size_t errlen)
{
    char what[300];
    if (o->min_version && SSL_CTX_set_min_proto_version(c, o->min_version) != 1) {
        set_text(what, sizeof what, "minimum protocol version %s", proto_name(o->min_version));
        ctx_error(err, errlen, what);
        return -1;
    }
    if (o->max_version && SSL_CTX_set_max_proto_version(c, o->max_version) != 1) {
        set_text(what, sizeof what, "maximum protocol version %s", proto_name(o->max_version));
        ctx_error(err, errlen, what);
        return -1;
    }
    if (o->ciphers && o->ciphers[0] && SSL_CTX_set_cipher_list(c, o->ciphers) != 1) {
        set_text(what, sizeof what, "cipher list \"%.200s\" (TLS 1.2 and below)", o->ciphers);
        ctx_error(err, errlen, what);
        return -1;
    }
    if (o->ciphersuites && o->ciphersuites[0] && SSL_CTX_set_ciphersuites(c, o->ciphersuites) != 1) {
        set_text(what, sizeof what, "ciphersuites \"%.200s\" (TLS 1.3)", o->ciphersuites);
        ctx_error(err, errlen, what);
        return -1;
    }
    int has_cert = o->cert_file && o->cert_file[0], has_key = o->key_file && o->key_file[0];
    if (has_cert != has_key) {
        set_text(err, errlen, "a client certificate needs both its chain file and its key file");
        return -1;
    }
    if (has_cert && load_cert_key(c, o->cert_file, o->key_file, err, errlen) != 0)
        return -1;
    return 0;
}

struct mxg_tls_ctx *mxg_tls_ctx_new_client(const char *cafile, char *err, size_t errlen)
{
    struct mxg_tls_client_opts o;
    memset(&o, 0, sizeof o);
    o.cafile = cafile;
    return mxg_tls_ctx_new_client_opts(&o, err, errlen);
}

static int on_new_session(SSL *ssl, SSL_SESSION *sess); /* see the resumption section */

struct mxg_tls_ctx *mxg_tls_ctx_new_client_opts(const struct mxg_tls_client_opts *o, char *err,
                                                size_t errlen)
{
    const char *cafile = o->cafile;
    ERR_clear_error();
    SSL_CTX *c = SSL_CTX_new(TLS_client_method());
    if (c == NULL) {
        ctx_error(err, errlen, "SSL_CTX_new");
        return NULL;
    }
    ctx_common(c);
    if (client_settings(c, o, err, errlen) < 0) {
        SSL_CTX_free(c);
        return NULL;
    }
    SSL_CTX_set_verify(c, SSL_VERIFY_NONE, NULL);
    /* no internal cache: every new session goes to on_new_session, which
     * stores it under the connection's requirement key (mxg_tls_resume) */
    SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(c, on_new_session);
    int ok = cafile != NULL ? SSL_CTX_load_verify_file(c, cafile)
                            : SSL_CTX_set_default_verify_paths(c);
    if (ok != 1) {
        char what[256];
        set_text(what, sizeof what, "cannot load CA file %s", cafile ? cafile : "(default paths)");
        ctx_error(err, errlen, what);
        SSL_CTX_free(c);
        return NULL;
    }
    ERR_clear_error(); /* default paths may queue harmless "no such file" */
    /* DANE (RFC 7671) is armed per connection by tls_verify.c
     * (mxg_tls_verify_apply, with the records dane/ selected); the context
     * only has to allow it. Verification stays OpenSSL's own chain check. */
    if (SSL_CTX_dane_enable(c) <= 0) {
        ctx_error(err, errlen, "SSL_CTX_dane_enable");
        SSL_CTX_free(c);
        return NULL;
    }
    return ctx_wrap(c, err, errlen);
}

/* Contract: load chain + key into c and check they match; 0 or -1 with err. */
static int load_cert_key(SSL_CTX *c, const char *certfile, const char *keyfile, char *err,
                         size_t errlen)
{
    char what[256];
    if (certfile == NULL || keyfile == NULL) {
        set_text(err, errlen, "certificate and key files are required");
        return -1;
    }
    if (SSL_CTX_use_certificate_chain_file(c, certfile) != 1) {
        set_text(what, sizeof what, "cannot load certificate chain %s", certfile);
        ctx_error(err, errlen, what);
        return -1;
    }
    if (SSL_CTX_use_PrivateKey_file(c, keyfile, SSL_FILETYPE_PEM) != 1) {
        set_text(what, sizeof what, "cannot load private key %s", keyfile);
        ctx_error(err, errlen, what);
        return -1;
    }
    if (SSL_CTX_check_private_key(c) != 1) {
        set_text(what, sizeof what, "private key %s does not match %s", keyfile, certfile);
        ctx_error(err, errlen, what);
        return -1;
    }
    return 0;
}

struct mxg_tls_ctx *mxg_tls_ctx_new_server(const char *certfile, const char *keyfile, char *err,
                                           size_t errlen)
{
    struct mxg_tls_server_opts o = {certfile, keyfile, 0, NULL};
    return mxg_tls_ctx_new_server_opts(&o, err, errlen);
}

/* Contract: the inbound policy knobs on a server context; 0, or -1 with err. */
static int server_settings(SSL_CTX *c, const struct mxg_tls_server_opts *o, char *err,
                           size_t errlen)
{
    char what[320];
    if (o->min_version && SSL_CTX_set_min_proto_version(c, o->min_version) != 1) {
        set_text(what, sizeof what, "minimum protocol version 0x%x", (unsigned)o->min_version);
        ctx_error(err, errlen, what);
        return -1;
    }
    if (o->ciphers && o->ciphers[0] && SSL_CTX_set_cipher_list(c, o->ciphers) != 1) {
        set_text(what, sizeof what, "cipher list \"%.200s\" selects no cipher", o->ciphers);
        ctx_error(err, errlen, what);
        return -1;
    }
    SSL_CTX_set_options(c, SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_COMPRESSION);
    SSL_CTX_set_verify(c, SSL_VERIFY_NONE, NULL); /* no client certificates asked for */
    static const unsigned char sid_ctx[] = "mxguard-inbound";
    SSL_CTX_set_session_id_context(c, sid_ctx, sizeof sid_ctx - 1);
    SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_SERVER);
    return 0;
}

struct mxg_tls_ctx *mxg_tls_ctx_new_server_opts(const struct mxg_tls_server_opts *o, char *err,
                                                size_t errlen)
{
    ERR_clear_error();
    if (o == NULL) {
        set_text(err, errlen, "no server TLS options");
        return NULL;
    }
    SSL_CTX *c = SSL_CTX_new(TLS_server_method());
    if (c == NULL) {
        ctx_error(err, errlen, "SSL_CTX_new");
        return NULL;
    }
    ctx_common(c);
    if (load_cert_key(c, o->certfile, o->keyfile, err, errlen) != 0 ||
        server_settings(c, o, err, errlen) != 0) {
        SSL_CTX_free(c);
        return NULL;
    }
    return ctx_wrap(c, err, errlen);
}

void mxg_tls_ctx_replace(struct mxg_tls_ctx *ctx, struct mxg_tls_ctx *fresh)
{
    if (ctx == NULL || fresh == NULL)
        return;
    SSL_CTX *old = ctx->ssl_ctx;
    ctx->ssl_ctx = fresh->ssl_ctx;
    fresh->ssl_ctx = old;
    mxg_tls_ctx_free(fresh); /* drops our reference to the old SSL_CTX */
}

void mxg_tls_ctx_describe(struct mxg_tls_ctx *ctx, char *out, size_t cap)
{
    SSL_CTX *c = ctx ? ctx->ssl_ctx : NULL;
    if (c == NULL) {
        set_text(out, cap, "no TLS context");
        return;
    }
    long lo = SSL_CTX_get_min_proto_version(c), hi = SSL_CTX_get_max_proto_version(c);
    char subject[200] = "none";
    X509 *cert = SSL_CTX_get0_certificate(c);
    if (cert != NULL)
        X509_NAME_oneline(X509_get_subject_name(cert), subject, sizeof subject);
    set_text(out, cap, "protocols %s .. %s, client certificate %s",
             lo ? proto_name((int)lo) : "(OpenSSL's lowest)",
             hi ? proto_name((int)hi) : "(highest)", subject);
}

void mxg_tls_ctx_free(struct mxg_tls_ctx *ctx)
{
    if (ctx == NULL)
        return;
    SSL_CTX_free(ctx->ssl_ctx);
    free(ctx);
}

SSL_CTX *mxg_tls_ctx_ssl_ctx(struct mxg_tls_ctx *ctx)
{
    return ctx ? ctx->ssl_ctx : NULL;
}

/* ------------------------------------------------------------------------ */
/* Engines                                                                  */

/* Contract: a new engine with SSL + memory BIOs on ctx, or NULL. The engine
 * takes its own SSL_CTX reference. Caller sets connect/accept state. */
static struct mxg_tls_engine *engine_new(struct mxg_tls_ctx *ctx)
{
    if (ctx == NULL || ctx->ssl_ctx == NULL)
        return NULL;
    ERR_clear_error();
    struct mxg_tls_engine *e = calloc(1, sizeof *e);
    if (e == NULL)
        return NULL;
    e->ssl = SSL_new(ctx->ssl_ctx);
    e->rbio = BIO_new(BIO_s_mem());
    e->wbio = BIO_new(BIO_s_mem());
    if (e->ssl == NULL || e->rbio == NULL || e->wbio == NULL
        || SSL_CTX_up_ref(ctx->ssl_ctx) != 1) {
        LOG_W(COMP, "cannot create TLS engine");
        BIO_free(e->rbio);
        BIO_free(e->wbio);
        SSL_free(e->ssl);
        free(e);
        ERR_clear_error();
        return NULL;
    }
    e->ctx = ctx->ssl_ctx;
    SSL_set_bio(e->ssl, e->rbio, e->wbio);
    SSL_set_app_data(e->ssl, e);
    SSL_set_info_callback(e->ssl, info_cb);
    return e;
}

struct mxg_tls_engine *mxg_tls_engine_new_client(struct mxg_tls_ctx *ctx, const char *sni)
{
    struct mxg_tls_engine *e = engine_new(ctx);
    if (e == NULL)
        return NULL;
    SSL_set_connect_state(e->ssl);
    if (sni != NULL && SSL_set_tlsext_host_name(e->ssl, sni) != 1) {
        LOG_W(COMP, "cannot set SNI \"%s\"", sni);
        mxg_tls_engine_free(e);
        ERR_clear_error();
        return NULL;
    }
    return e;
}

struct mxg_tls_engine *mxg_tls_engine_new_server(struct mxg_tls_ctx *ctx)
{
    struct mxg_tls_engine *e = engine_new(ctx);
    if (e != NULL)
        SSL_set_accept_state(e->ssl);
    return e;
}

void mxg_tls_engine_free(struct mxg_tls_engine *e)
{
    if (e == NULL)
        return;
    SSL_free(e->ssl); /* frees rbio and wbio */
    SSL_CTX_free(e->ctx);
    free(e);
}

SSL *mxg_tls_engine_ssl(struct mxg_tls_engine *e)
{
    return e ? e->ssl : NULL;
}

/* Contract: ERR with e->err set for a bad argument; does not poison e. */
static int bad_arg(struct mxg_tls_engine *e, const char *op, const char *why)
{
    if (e != NULL)
        set_text(e->err, sizeof e->err, "%s: %s", op, why);
    return MXG_TLS_ERR;
}

int mxg_tls_feed(struct mxg_tls_engine *e, const void *in, size_t len)
{
    if (e == NULL || (in == NULL && len > 0))
        return bad_arg(e, "feed", "invalid argument");
    if (e->failed)
        return MXG_TLS_ERR;
    if (len == 0)
        return MXG_TLS_OK;
    err_drop();
    size_t written = 0;
    if (BIO_write_ex(e->rbio, in, len, &written) != 1 || written != len) {
        e->failed = 1;
        set_text(e->err, sizeof e->err, "feed: cannot buffer %zu bytes", len);
        ERR_clear_error();
        return MXG_TLS_ERR;
    }
    return MXG_TLS_OK;
}

int mxg_tls_handshake(struct mxg_tls_engine *e)
{
    if (e == NULL)
        return MXG_TLS_ERR;
    if (e->failed)
        return MXG_TLS_ERR;
    if (SSL_is_init_finished(e->ssl))
        return MXG_TLS_OK;
    err_drop();
    int rc = SSL_do_handshake(e->ssl);
    if (rc == 1) {
        LOG_D(COMP, "handshake complete: %s %s", SSL_get_version(e->ssl),
              SSL_get_cipher_name(e->ssl));
        return MXG_TLS_OK;
    }
    int se = SSL_get_error(e->ssl, rc);
    if (se == SSL_ERROR_WANT_READ) { /* the queue is empty (see the top) */
        return MXG_TLS_AGAIN;
    }
    return fail(e, "handshake", se);
}

int mxg_tls_handshake_done(const struct mxg_tls_engine *e)
{
    return e != NULL && !e->failed && SSL_is_init_finished(e->ssl);
}

size_t mxg_tls_out_pending(const struct mxg_tls_engine *e)
{
    return e ? BIO_ctrl_pending(e->wbio) : 0;
}

size_t mxg_tls_take_out(struct mxg_tls_engine *e, void *buf, size_t cap)
{
    if (e == NULL || buf == NULL || cap == 0)
        return 0;
    size_t n = 0;
    if (BIO_read_ex(e->wbio, buf, cap, &n) != 1)
        n = 0; /* empty */
    err_drop();
    return n;
}

int mxg_tls_write(struct mxg_tls_engine *e, const void *plain, size_t len)
{
    if (e == NULL || (plain == NULL && len > 0))
        return bad_arg(e, "write", "invalid argument");
    if (e->failed)
        return MXG_TLS_ERR;
    if (!SSL_is_init_finished(e->ssl))
        return bad_arg(e, "write", "handshake not complete");
    if (len == 0)
        return MXG_TLS_OK;
    err_drop();
    size_t written = 0;
    int rc = SSL_write_ex(e->ssl, plain, len, &written);
    if (rc == 1 && written == len)
        return MXG_TLS_OK;
    return fail(e, "write", SSL_get_error(e->ssl, rc));
}

int mxg_tls_read(struct mxg_tls_engine *e, void *buf, size_t cap, size_t *n)
{
    if (n != NULL)
        *n = 0;
    if (e == NULL || buf == NULL || cap == 0 || n == NULL)
        return bad_arg(e, "read", "invalid argument");
    if (e->failed)
        return MXG_TLS_ERR;
    err_drop();
    int rc = SSL_read_ex(e->ssl, buf, cap, n);
    if (rc == 1)
        return MXG_TLS_OK;
    *n = 0;
    int se = SSL_get_error(e->ssl, rc);
    if (se == SSL_ERROR_WANT_READ || se == SSL_ERROR_ZERO_RETURN) { /* queue empty: see the top */
        return se == SSL_ERROR_WANT_READ ? MXG_TLS_AGAIN : MXG_TLS_EOF;
    }
    return fail(e, "read", se);
}

void mxg_tls_shutdown(struct mxg_tls_engine *e)
{
    if (e == NULL || e->failed || !SSL_is_init_finished(e->ssl))
        return;
    ERR_clear_error();
    (void)SSL_shutdown(e->ssl); /* 0: close_notify queued; 1: also got the peer's */
    ERR_clear_error();
}

const char *mxg_tls_version(const struct mxg_tls_engine *e)
{
    return mxg_tls_handshake_done(e) ? SSL_get_version(e->ssl) : "";
}

const char *mxg_tls_cipher(const struct mxg_tls_engine *e)
{
    if (!mxg_tls_handshake_done(e))
        return "";
    const char *name = SSL_get_cipher_name(e->ssl);
    return name ? name : "";
}

long mxg_tls_verify_result(const struct mxg_tls_engine *e)
{
    if (e == NULL)
        return X509_V_ERR_UNSPECIFIED;
    long vr = SSL_get_verify_result(e->ssl);
    if (vr != X509_V_OK) /* also after a handshake that verification aborted */
        return vr;
    if (!SSL_is_init_finished(e->ssl))
        return X509_V_ERR_UNSPECIFIED;
    /* OpenSSL reports X509_V_OK when the peer sent no certificate at all. */
    X509 *peer = SSL_get0_peer_certificate(e->ssl);
    return peer != NULL ? X509_V_OK : X509_V_ERR_UNSPECIFIED;
}

const char *mxg_tls_engine_error(const struct mxg_tls_engine *e)
{
    return e ? e->err : "";
}

int mxg_tls_engine_verify_names(struct mxg_tls_engine *e, const char *const *names, int n,
                                int enforce)
{
    SSL *ssl = e ? mxg_tls_engine_ssl(e) : NULL;
    if (ssl == NULL || names == NULL || n < 1 || names[0] == NULL ||
        SSL_set1_host(ssl, names[0]) != 1)
        return MXG_TLS_ERR;
    for (int i = 1; i < n; i++)
        if (names[i] == NULL || SSL_add1_host(ssl, names[i]) != 1)
            return MXG_TLS_ERR;
    SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    SSL_set_verify(ssl, enforce ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);
    return MXG_TLS_OK;
}

int mxg_tls_engine_verify_name(struct mxg_tls_engine *e, const char *name, int enforce)
{
    SSL *ssl = e ? mxg_tls_engine_ssl(e) : NULL;
    if (ssl == NULL || name == NULL || SSL_set1_host(ssl, name) != 1)
        return MXG_TLS_ERR;
    SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    SSL_set_verify(ssl, enforce ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);
    return MXG_TLS_OK;
}

/* ------------------------------------------------------------------------ */
/* Client session resumption                                                */

/* One key's sessions, oldest first. TLS 1.3 servers send several tickets
 * per connection (OpenSSL: two after a full handshake, one after a
 * resumption), each good for one resumption: keeping them all lets that
 * many connections to one (MX, requirement) pair resume at once. */
struct resume_entry {
    unsigned char key[MXG_TLS_RESUME_KEY_MAX];
    size_t keylen;
    SSL_SESSION *sess[MXG_TLS_RESUME_PER_KEY];
    int ns;
    uint64_t used; /* LRU stamp */
};

/* The store: this process's own (e, n, cap, nsess) or, with workers, a view
 * of the table they share (shm: serialized sessions, tls/tls_shared.h). The
 * handle itself is per process (a worker inherits a copy of the master's). */
struct mxg_tls_resume {
    struct resume_entry *e; /* n entries (each with >= 1 session), cap slots */
    int n, cap;
    int nsess;              /* sessions in all entries (<= cap) */
    uint64_t clock;
    unsigned long offered, stored;
    struct mxg_tls_shared *shm; /* NULL: the private store above */
    uint64_t gen;               /* the settings generation (mxg_tls_resume_generation) */
};

struct mxg_tls_resume *mxg_tls_resume_new(int max_entries)
{
    if (max_entries <= 0)
        return NULL;
    struct mxg_tls_resume *r = calloc(1, sizeof *r);
    if (r == NULL)
        return NULL;
    r->e = calloc((size_t)max_entries, sizeof *r->e);
    if (r->e == NULL) {
        free(r);
        return NULL;
    }
    r->cap = max_entries;
    return r;
}

/* Contract: free every session of entry i (the entry stays, empty). */
static void entry_clear(struct mxg_tls_resume *r, int i)
{
    for (int k = 0; k < r->e[i].ns; k++)
        SSL_SESSION_free(r->e[i].sess[k]);
    r->nsess -= r->e[i].ns;
    r->e[i].ns = 0;
}

struct mxg_tls_resume *mxg_tls_resume_new_shared(int max_entries)
{
    if (max_entries <= 0)
        return NULL;
    struct mxg_tls_resume *r = calloc(1, sizeof *r);
    if (r == NULL)
        return NULL;
    if ((r->shm = mxg_tls_shared_new(max_entries)) == NULL) {
        free(r);
        return NULL;
    }
    r->cap = max_entries;
    return r;
}

struct mxg_tls_shared *mxg_tls_resume_shared_table(const struct mxg_tls_resume *r)
{
    return r ? r->shm : NULL;
}

void mxg_tls_resume_free(struct mxg_tls_resume *r)
{
    if (r == NULL)
        return;
    if (r->shm != NULL) /* this process's view only: the other workers keep the sessions */
        mxg_tls_shared_free(r->shm);
    else
        mxg_tls_resume_clear(r);
    free(r->e);
    free(r);
}

int mxg_tls_resume_count(const struct mxg_tls_resume *r)
{
    if (r && r->shm)
        return mxg_tls_shared_count(r->shm);
    return r ? r->nsess : 0;
}

void mxg_tls_resume_clear(struct mxg_tls_resume *r)
{
    if (r == NULL)
        return;
    if (r->shm != NULL) {
        /* a worker's reload: the master raised the generation before it passed SIGHUP on
         * — unless this worker got the signal first (pkill -HUP: every process at once) or
         * the master could not load the file the worker loaded: then the generation is
         * still this worker's old one, and the worker raises it itself. Never a generation
         * of its old settings for its new ones: the key is the only guard on resumption. */
        mxg_tls_shared_clear(r->shm);
        uint64_t seen = mxg_tls_shared_generation(r->shm);
        r->gen = seen != r->gen ? seen : mxg_tls_shared_advance(r->shm, r->gen);
        return;
    }
    for (int i = 0; i < r->n; i++)
        entry_clear(r, i);
    r->n = 0;
    r->gen++;
}

void mxg_tls_resume_settings_changed(struct mxg_tls_resume *r)
{
    if (r != NULL && r->shm != NULL) /* the master; the workers clear as they reload (a worker
                                      * that reloaded first raised it already: taken as is) */
        r->gen = mxg_tls_shared_advance(r->shm, r->gen);
    else
        mxg_tls_resume_clear(r);
}

uint64_t mxg_tls_resume_generation(const struct mxg_tls_resume *r)
{
    return r ? r->gen : 0;
}

/* Contract: the index of key's entry, or -1. */
static int resume_find(const struct mxg_tls_resume *r, const void *key, size_t keylen)
{
    for (int i = 0; i < r->n; i++)
        if (r->e[i].keylen == keylen && memcmp(r->e[i].key, key, keylen) == 0)
            return i;
    return -1;
}

/* Contract: remove and free session k of entry i; an entry left empty is
 * removed too (the last entry moves into its place). */
static void resume_take(struct mxg_tls_resume *r, int i, int k)
{
    struct resume_entry *e = &r->e[i];
    SSL_SESSION_free(e->sess[k]);
    memmove(&e->sess[k], &e->sess[k + 1], (size_t)(e->ns - k - 1) * sizeof e->sess[0]);
    e->ns--;
    r->nsess--;
    if (e->ns == 0)
        r->e[i] = r->e[--r->n];
}

/* Contract: a session is worth keeping if OpenSSL can resume it and its
 * lifetime is not over. */
static int session_usable(SSL_SESSION *s)
{
    if (s == NULL || !SSL_SESSION_is_resumable(s))
        return 0;
    time_t now = time(NULL);
    return (long)SSL_SESSION_get_time(s) + SSL_SESSION_get_timeout(s) > (long)now;
}

/* Contract (a shared store): offer e the newest session stored under its key
 * by any worker, deserialized (d2i_SSL_SESSION); a TLS 1.3 ticket is taken out
 * of the table (one use). One that does not deserialize or that OpenSSL
 * refuses is dropped from the table (a kept TLS 1.2 one would be offered
 * again first) and the next newest tried. 1 offered, 0 none (a full
 * handshake). */
static int shared_offer(struct mxg_tls_engine *e, struct mxg_tls_resume *r)
{
    unsigned char buf[MXG_TLS_SHARED_SLOT];
    size_t len;
    for (int tries = 0; tries < MXG_TLS_SHARED_PER_KEY; tries++) { /* a TLS 1.2 one stays */
        if (!mxg_tls_shared_take(r->shm, e->rkey, e->rkeylen, (int64_t)time(NULL), buf,
                                 sizeof buf, &len))
            return 0;
        ERR_clear_error();
        const unsigned char *p = buf;
        SSL_SESSION *s = d2i_SSL_SESSION(NULL, &p, (long)len);
        int ok = s != NULL && session_usable(s) && SSL_set_session(e->ssl, s) == 1;
        SSL_SESSION_free(s);
        ERR_clear_error();
        if (ok) {
            r->offered++;
            return 1;
        }
        mxg_tls_shared_drop(r->shm, e->rkey, e->rkeylen, buf, len);
    }
    return 0;
}

/* Contract (a shared store): serialize sess (i2d_SSL_SESSION) and store it
 * under key until its lifetime ends, take-once for a TLS 1.3 ticket; a
 * session longer than MXG_TLS_SHARED_SLOT is not stored. */
static void shared_store(struct mxg_tls_resume *r, const unsigned char *key, size_t keylen,
                         SSL_SESSION *sess)
{
    int len = i2d_SSL_SESSION(sess, NULL);
    if (len <= 0 || len > MXG_TLS_SHARED_SLOT) {
        if (len > MXG_TLS_SHARED_SLOT)
            LOG_D(COMP, "TLS session of %d octets: above the shared cache's %d, not stored", len,
                  MXG_TLS_SHARED_SLOT);
        ERR_clear_error();
        return;
    }
    unsigned char buf[MXG_TLS_SHARED_SLOT];
    unsigned char *p = buf;
    if (i2d_SSL_SESSION(sess, &p) != len) {
        ERR_clear_error();
        return;
    }
    int64_t expires = (int64_t)SSL_SESSION_get_time(sess) + SSL_SESSION_get_timeout(sess);
    int once = SSL_SESSION_get_protocol_version(sess) >= TLS1_3_VERSION;
    if (mxg_tls_shared_put(r->shm, key, keylen, buf, (size_t)len, expires, once,
                           (int64_t)time(NULL)))
        r->stored++;
}

int mxg_tls_engine_resume(struct mxg_tls_engine *e, struct mxg_tls_resume *r, const void *key,
                          size_t keylen)
{
    if (e == NULL || r == NULL || key == NULL || keylen == 0 || keylen > MXG_TLS_RESUME_KEY_MAX)
        return -1;
    e->resume = r;
    memcpy(e->rkey, key, keylen);
    e->rkeylen = keylen;
    if (r->shm != NULL)
        return shared_offer(e, r);
    int i = resume_find(r, key, keylen);
    while (i >= 0) {
        int k = r->e[i].ns - 1; /* the newest */
        SSL_SESSION *s = r->e[i].sess[k];
        int last = r->e[i].ns == 1;
        if (!session_usable(s)) {
            resume_take(r, i, k);
            if (last)
                return 0;
            continue;
        }
        ERR_clear_error();
        SSL_SESSION *d = SSL_SESSION_dup(s); /* the connection's own copy (see the store) */
        if (d == NULL || SSL_set_session(e->ssl, d) != 1) {
            SSL_SESSION_free(d);
            ERR_clear_error();
            resume_take(r, i, k);
            return 0;
        }
        SSL_SESSION_free(d);
        r->offered++;
        /* TLS 1.3 tickets are for one use (RFC 8446 §C.4): the server sends new
         * ones on the resumed connection (stored by on_new_session). TLS 1.2
         * sessions stay. */
        if (SSL_SESSION_get_protocol_version(s) >= TLS1_3_VERSION)
            resume_take(r, i, k);
        else
            r->e[i].used = ++r->clock;
        return 1;
    }
    return 0;
}

/* Contract: store a copy of sess under key (newest last); the key's oldest
 * session makes room when it has MXG_TLS_RESUME_PER_KEY, the least
 * recently used key's oldest when the store is full. */
static void resume_store(struct mxg_tls_resume *r, const unsigned char *key, size_t keylen,
                         SSL_SESSION *sess)
{
    /* a copy: SSL_free() of a connection that was not shut down marks its
     * own session object not resumable (ssl_clear_bad_session) */
    SSL_SESSION *s = SSL_SESSION_dup(sess);
    if (s == NULL) {
        ERR_clear_error();
        return;
    }
    if (r->nsess >= r->cap) {
        int lru = 0;
        for (int j = 1; j < r->n; j++)
            if (r->e[j].used < r->e[lru].used)
                lru = j;
        resume_take(r, lru, 0);
    }
    int i = resume_find(r, key, keylen);
    if (i < 0) {
        i = r->n++; /* n <= nsess < cap */
        memcpy(r->e[i].key, key, keylen);
        r->e[i].keylen = keylen;
        r->e[i].ns = 0;
    } else if (r->e[i].ns == MXG_TLS_RESUME_PER_KEY) {
        SSL_SESSION_free(r->e[i].sess[0]);
        memmove(&r->e[i].sess[0], &r->e[i].sess[1],
                (size_t)(MXG_TLS_RESUME_PER_KEY - 1) * sizeof r->e[i].sess[0]);
        r->e[i].ns--;
        r->nsess--;
    }
    r->e[i].sess[r->e[i].ns++] = s;
    r->nsess++;
    r->e[i].used = ++r->clock;
    r->stored++;
}

/* Contract: SSL_CTX_sess_set_new_cb of the client context: OpenSSL hands
 * over every new session — a TLS 1.2 session at the end of a full
 * handshake, each TLS 1.3 ticket as it arrives after the handshake (also on
 * an idle cached connection) — and a copy is stored under the engine's
 * key. Only engines given a key by mxg_tls_engine_resume() store, and a
 * failed engine stores nothing. A session arrives only after the peer
 * passed the verification armed for the connection (with SSL_VERIFY_PEER a
 * failed check ends the handshake before any session exists); its verify
 * result is kept in it. Returns 0: the caller keeps its reference. */
static int on_new_session(SSL *ssl, SSL_SESSION *sess)
{
    struct mxg_tls_engine *e = SSL_get_app_data(ssl);
    if (e == NULL || e->resume == NULL || e->failed || !session_usable(sess))
        return 0;
    if (e->resume->shm != NULL)
        shared_store(e->resume, e->rkey, e->rkeylen, sess);
    else
        resume_store(e->resume, e->rkey, e->rkeylen, sess);
    return 0;
}

int mxg_tls_engine_resumed(const struct mxg_tls_engine *e)
{
    return e != NULL && !e->failed && SSL_is_init_finished(e->ssl) && SSL_session_reused(e->ssl);
}
