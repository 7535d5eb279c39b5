/* tls/tls_engine.h — a TLS engine that only moves bytes through memory BIOs.
 *
 * The engine never touches a socket. The owner (proxy/outbound/leg*.c for
 * the client side, proxy/inbound/session.c for inbound STARTTLS) feeds it
 * the ciphertext it read from the network, takes the ciphertext the engine
 * produced and writes it to the network, and reads/writes plaintext.
 * Every call returns one of the mxg_tls_status values below.
 *
 * Ownership: mxg_tls_ctx owns one SSL_CTX; an engine holds a reference to it
 * (SSL_CTX_up_ref), so the context may be freed before its engines.
 * The engine owns its SSL and both BIOs. Buffers passed in are borrowed for
 * the duration of the call only.
 *
 * Verification: this layer records what OpenSSL concluded (verify result,
 * peer chain, negotiated version/cipher); whether that is acceptable is the
 * caller's policy decision. Opportunistic use: SSL_VERIFY_NONE.
 * What to verify (DANE records, WebPKI names) is armed before the handshake
 * by tls/tls_verify.h.
 */
#ifndef MXG_TLS_ENGINE_H
#define MXG_TLS_ENGINE_H

#include <stddef.h>
#include <stdint.h>
#include <openssl/ssl.h>

enum mxg_tls_status {
    MXG_TLS_OK = 0,     /* done (handshake complete / data moved) */
    MXG_TLS_AGAIN = 1,  /* needs more ciphertext from the peer (flush output first) */
    MXG_TLS_EOF = 2,    /* peer sent close_notify */
    MXG_TLS_ERR = -1,   /* fatal; mxg_tls_engine_error() says why */
};

struct mxg_tls_ctx;
struct mxg_tls_engine;

/* A client context. The minimum protocol version is left to OpenSSL's default
 * (not raised: opportunistic SMTP TLS takes what it can get, RFC 7435 spirit,
 * as Postfix). SSL_VERIFY_NONE, but trust anchors are loaded (cafile, or the
 * system default paths when cafile is NULL) so that mxg_tls_verify_result()
 * is meaningful and callers may switch to SSL_VERIFY_PEER per engine.
 * Renegotiation is refused; OpenSSL's own session cache is off (sessions
 * go to the resumption store below, for engines given a key).
 * err gets a reason on NULL return. */
struct mxg_tls_ctx *mxg_tls_ctx_new_client(const char *cafile, char *err, size_t errlen);

/* The operator's client settings (tls.* in mxguard.conf). All-zero / NULL
 * fields keep OpenSSL's defaults; mxg_tls_ctx_new_client(cafile) is
 * mxg_tls_ctx_new_client_opts with only cafile set.
 *  - min_version / max_version: protocol numbers (TLS1_VERSION ..
 *    TLS1_3_VERSION), 0 = OpenSSL's default (max: the highest it has).
 *    A minimum below TLS 1.2 also needs "@SECLEVEL=0" in ciphers: OpenSSL 3
 *    refuses TLS 1.0/1.1's SHA-1 signatures at its default level 1.
 *  - ciphers: SSL_CTX_set_cipher_list (TLS <= 1.2); ciphersuites:
 *    SSL_CTX_set_ciphersuites (TLS 1.3). A list OpenSSL cannot use is an
 *    error here (not at the first handshake).
 *  - cert_file + key_file: a client certificate chain (PEM) and its key,
 *    sent when a server asks for one; both or neither; the key must match.
 * NULL with err set on any error. */
struct mxg_tls_client_opts {
    const char *cafile;
    int min_version, max_version;
    const char *ciphers, *ciphersuites;
    const char *cert_file, *key_file;
};
struct mxg_tls_ctx *mxg_tls_ctx_new_client_opts(const struct mxg_tls_client_opts *o, char *err,
                                                size_t errlen);
/* Reload: give ctx the SSL_CTX of fresh (built by mxg_tls_ctx_new_client*)
 * and free fresh. Engines created before keep their own reference to the
 * old SSL_CTX (it is freed with the last of them); new engines get the
 * new one. Everyone holding the ctx pointer sees the change. */
void mxg_tls_ctx_replace(struct mxg_tls_ctx *ctx, struct mxg_tls_ctx *fresh);
/* "TLSv1.2 .. highest, ciphers default, ciphersuites default, client
 * certificate CN=..." — what a client context was built with, for logs. */
void mxg_tls_ctx_describe(struct mxg_tls_ctx *ctx, char *out, size_t cap);
/* A server context with a PEM certificate chain file and PEM key file (used
 * by the tests); NULL with err set if either cannot be loaded or the key does
 * not match the certificate. Same as mxg_tls_ctx_new_server_opts() with
 * min_version 0 and no cipher list. */
struct mxg_tls_ctx *mxg_tls_ctx_new_server(const char *certfile, const char *keyfile, char *err,
                                           size_t errlen);

/* The inbound STARTTLS context (proxy/inbound/session.c, server.tls_* settings).
 * certfile: PEM chain (leaf first), keyfile: PEM private key, both required.
 * min_version: TLS1_2_VERSION, TLS1_3_VERSION, ... (0 = OpenSSL's default);
 * ciphers: OpenSSL cipher list for TLS 1.2 and below (NULL or "" = default;
 * TLS 1.3 suites stay OpenSSL's). No client certificates are requested;
 * renegotiation is refused; the server's cipher order is preferred; the
 * server-side session cache and tickets stay on (resumption for clients
 * that reconnect). NULL with err set ("cannot load certificate chain F: ...",
 * "private key F does not match C", "server.tls_ciphers: no cipher matches
 * ...") on any failure: the file is read at call time. */
struct mxg_tls_server_opts {
    const char *certfile;
    const char *keyfile;
    int min_version;
    const char *ciphers;
};
struct mxg_tls_ctx *mxg_tls_ctx_new_server_opts(const struct mxg_tls_server_opts *o, char *err,
                                                size_t errlen);
void mxg_tls_ctx_free(struct mxg_tls_ctx *ctx);
SSL_CTX *mxg_tls_ctx_ssl_ctx(struct mxg_tls_ctx *ctx);

/* New client engine; sni may be NULL (no SNI). NULL on failure.
 * The engine uses the SSL's app data (SSL_set_app_data) and info callback for
 * itself: callers of mxg_tls_engine_ssl() must not replace them. */
struct mxg_tls_engine *mxg_tls_engine_new_client(struct mxg_tls_ctx *ctx, const char *sni);
struct mxg_tls_engine *mxg_tls_engine_new_server(struct mxg_tls_ctx *ctx);
void mxg_tls_engine_free(struct mxg_tls_engine *e);
SSL *mxg_tls_engine_ssl(struct mxg_tls_engine *e);

/* WebPKI for a client engine, before the handshake: the peer's certificate
 * must be valid for `name` (SSL_set1_host) and chain to the context's CA
 * store. enforce != 0: the handshake fails otherwise (SSL_VERIFY_PEER);
 * enforce == 0: the handshake completes and mxg_tls_verify_result() tells
 * (MTA-STS testing mode). Returns OK or ERR. */
int mxg_tls_engine_verify_name(struct mxg_tls_engine *e, const char *name, int enforce);
/* The same with several acceptable names (a policy override's match list):
 * the certificate must be valid for one of them; a name starting with '.'
 * stands for any subdomain of the rest (OpenSSL's X509_check_host). n >= 1. */
int mxg_tls_engine_verify_names(struct mxg_tls_engine *e, const char *const *names, int n,
                                int enforce);

/* Give the engine ciphertext received from the peer. OK or ERR. */
int mxg_tls_feed(struct mxg_tls_engine *e, const void *in, size_t len);

/* Drive the handshake: OK when complete, AGAIN when it waits for the peer,
 * ERR on failure. After every call, drain mxg_tls_take_out() (on ERR it may
 * hold the alert for the peer). Errors are sticky: after a fatal ERR every
 * call returns ERR. */
int mxg_tls_handshake(struct mxg_tls_engine *e);
int mxg_tls_handshake_done(const struct mxg_tls_engine *e);

/* Ciphertext waiting to be sent: bytes pending, and copy up to cap of them
 * out (consuming them). Returns the number of bytes copied. */
size_t mxg_tls_out_pending(const struct mxg_tls_engine *e);
size_t mxg_tls_take_out(struct mxg_tls_engine *e, void *buf, size_t cap);

/* Encrypt plaintext (all of it, or ERR; ERR too before the handshake is
 * complete). Output appears in take_out. */
int mxg_tls_write(struct mxg_tls_engine *e, const void *plain, size_t len);

/* Decrypt: OK with *n > 0 bytes, AGAIN when no full record is buffered,
 * EOF on close_notify, ERR on failure. */
int mxg_tls_read(struct mxg_tls_engine *e, void *buf, size_t cap, size_t *n);

/* Queue a close_notify (output in take_out). */
void mxg_tls_shutdown(struct mxg_tls_engine *e);

/* After the handshake: "TLSv1.3", "TLS_AES_256_GCM_SHA384" ("" before), and
 * the X509 verify result of the peer certificate (X509_V_OK, X509_V_ERR_*);
 * X509_V_ERR_UNSPECIFIED before the handshake or when the peer sent none. */
const char *mxg_tls_version(const struct mxg_tls_engine *e);
const char *mxg_tls_cipher(const struct mxg_tls_engine *e);
long mxg_tls_verify_result(const struct mxg_tls_engine *e);
/* Last error, human-readable (OpenSSL error queue or alert), "" if none. */
const char *mxg_tls_engine_error(const struct mxg_tls_engine *e);

/* Client TLS session resumption (docs/ARCHITECTURE.md §Reuse): a store of SSL
 * sessions keyed by the caller's bytes (the MX address + port + requirement
 * key: a session is offered only to a connection whose security requirement
 * is identical to the one its full handshake was verified under, so skipping
 * the certificate check on resumption skips nothing that would decide
 * differently).
 *  - mxg_tls_resume_new(max): at most max sessions in all (the least
 *    recently used key's oldest session makes room) and at most
 *    MXG_TLS_RESUME_PER_KEY per key (the key's oldest makes room); NULL on
 *    out of memory or max <= 0. Free it after every engine that used it.
 *  - mxg_tls_engine_resume(e, r, key, len) before the handshake: offer the
 *    newest session stored under key (a TLS 1.3 ticket is taken out: one
 *    use) and remember key; returns 1 (offered), 0 (none stored), -1 (bad
 *    argument). From then on every session the server gives e — a TLS 1.2
 *    session at the end of a full handshake, each TLS 1.3 ticket when it
 *    arrives, after a full handshake or a resumption, also while the
 *    connection idles in the cache — is stored under key at once, so
 *    concurrent connections of one key each find a ticket of their own. A
 *    session exists only once the handshake passed the verification armed
 *    for it; a failed engine stores nothing.
 *  - mxg_tls_resume_count(r): sessions stored (all keys).
 *  - mxg_tls_engine_resumed(e): 1 when the completed handshake resumed a
 *    session (no certificate was presented: the verify result is the one
 *    stored with the session). */
#define MXG_TLS_RESUME_KEY_MAX 96
#define MXG_TLS_RESUME_PER_KEY 4
struct mxg_tls_resume;
struct mxg_tls_resume *mxg_tls_resume_new(int max_entries);
/* The same store shared by processes (server.workers > 1; tls/tls_shared.h):
 * made by the master before fork(); each worker uses its inherited copy of the
 * handle. Sessions are kept serialized (at most MXG_TLS_SHARED_SLOT octets:
 * a longer one is not stored), expire with their lifetime, a TLS 1.3 ticket is
 * used once, any worker's session resumes any worker's connection under the
 * same key. mxg_tls_resume_free() unmaps this process's view only. */
struct mxg_tls_resume *mxg_tls_resume_new_shared(int max_entries);
/* Tests only: the table of a shared store (tls/tls_shared.h; the engine's
 * sessions are under the caller's resume key as it is), NULL for a private one. */
struct mxg_tls_shared *mxg_tls_resume_shared_table(const struct mxg_tls_resume *r);
void mxg_tls_resume_free(struct mxg_tls_resume *r);
int mxg_tls_resume_count(const struct mxg_tls_resume *r);
/* Settings changed (reload, in the process that serves): forget every
 * session (a shared store: every worker's); the generation of a private
 * store goes up by one, a shared one's view takes the generation the master
 * set (mxg_tls_resume_settings_changed): a worker still on the old settings
 * stores under the old one, never offered to a worker on the new ones.
 * Callers put mxg_tls_resume_generation() into their keys, so a session made
 * under replaced settings is never offered again — and the workers of one
 * shared store, a restarted one included, agree on it (it is not a
 * per-process counter). */
void mxg_tls_resume_clear(struct mxg_tls_resume *r);
/* The master's reload (shared store): raise the shared generation (before the
 * workers are told); on a private store the same as mxg_tls_resume_clear. */
void mxg_tls_resume_settings_changed(struct mxg_tls_resume *r);
uint64_t mxg_tls_resume_generation(const struct mxg_tls_resume *r);
int mxg_tls_engine_resume(struct mxg_tls_engine *e, struct mxg_tls_resume *r, const void *key,
                          size_t keylen);
int mxg_tls_engine_resumed(const struct mxg_tls_engine *e);

#endif
