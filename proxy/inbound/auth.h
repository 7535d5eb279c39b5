/* proxy/inbound/auth.h — inbound security for clients not on loopback
 * (docs/ARCHITECTURE.md §Hostile peers):
 * the password file and password checks for SMTP AUTH (RFC 4954; PLAIN,
 * RFC 4616, and LOGIN), the brute-force throttle, and the per-network
 * requirements (STARTTLS / AUTH before MAIL). proxy/inbound/session.c runs the SMTP
 * side; this module holds no socket and no global state.
 *
 * Four files, one job each:
 *   auth.c           password file, SASL decoding, password verification
 *                    (crypt(3) in the libuv thread pool)
 *   auth_throttle.c  the failure counters and checks in flight, and the
 *                    trusted addresses (bounded LRU tables)
 *   auth_trust_store.c  the trusted addresses on disk (SQLite)
 *   auth_policy.c    which requirement applies to a client, the files the
 *                    inbound side loads, and the `config check -v` text
 *
 * Conventions: 0 / -1 with err ("FILE:LINE: reason") for loaders; borrowed
 * strings are only read during the call. */
#ifndef MXG_AUTH_H
#define MXG_AUTH_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>
#include <uv.h>

#include "../../core/config.h"

struct mxg_tls_ctx;

/* ------------------------------------------------------------ the password file
 *
 * One "user:hash" per line; blank lines and lines starting with '#' (after
 * optional blanks) are ignored; trailing blanks and CR are stripped. user: 1
 * to 255 octets, no ':', no control characters or spaces. hash: a crypt(3)
 * hash libcrypt accepts as a modern method (crypt_checksalt() ==
 * CRYPT_SALT_OK: yescrypt "$y$" as made by `mkpasswd` (package whois),
 * SHA-512 "$6$" as made by `openssl passwd -6`, bcrypt "$2b$", ...); DES,
 * MD5 and other legacy or disabled methods are refused. A user listed twice
 * is an error naming both lines. Lines longer than 1023 octets are errors.
 * An empty file loads (nobody can authenticate). */
struct mxg_auth_db;

/* Load path. *out (caller frees with mxg_auth_db_free) on 0; on -1, err is
 * "PATH:LINE: reason" or "PATH: reason". *warn (may be NULL) gets 1 when the
 * file is readable by others than its owner and group (it holds hashes). */
int mxg_auth_db_load(const char *path, struct mxg_auth_db **out, int *warn, char *err,
                     size_t errlen);
void mxg_auth_db_free(struct mxg_auth_db *db);
int mxg_auth_db_count(const struct mxg_auth_db *db);
/* The stored hash of user (exact, case-sensitive match), or NULL. */
const char *mxg_auth_db_hash(const struct mxg_auth_db *db, const char *user);

/* Compare password with a crypt(3) hash, blocking (yescrypt costs tens of
 * milliseconds of CPU: never on the loop). 1 match, 0 no match, -1 error. */
int mxg_auth_check_password(const char *hash, const char *password);

/* Verify user/password against db on the loop's thread pool. cb runs exactly
 * once, from the loop, with ok = 1 (match), 0 (wrong password or unknown
 * user: an unknown user costs the same hash computation, against the first
 * entry's hash) or -1 (internal error). Everything needed is copied at call
 * time: db may be replaced or freed before cb runs. Returns 0, or -1 (out of
 * memory, empty db: then cb is never called). */
typedef void (*mxg_auth_verify_cb)(void *arg, int ok);
int mxg_auth_verify(uv_loop_t *loop, const struct mxg_auth_db *db, const char *user,
                    const char *password, mxg_auth_verify_cb cb, void *arg);

/* ------------------------------------------------------------ SASL decoding */

#define MXG_SASL_FIELD_MAX 255 /* RFC 4616 §2: authzid, authcid, passwd */

/* Strict base64 (RFC 4648 §4, as RFC 4954 §4 requires): length a multiple of
 * 4, only the base64 alphabet, '=' padding only at the end; "" and "=" (RFC
 * 4954: an empty initial response) decode to zero octets. The decoding itself
 * is OpenSSL's EVP_DecodeBlock. 0 with *outlen, or -1 (malformed, or more
 * than cap octets). */
int mxg_b64_decode(const char *in, size_t inlen, unsigned char *out, size_t cap, size_t *outlen);
/* base64 of n octets into out (NUL-terminated); returns the length, or 0 if
 * cap is too small. */
size_t mxg_b64_encode(const void *in, size_t n, char *out, size_t cap);

enum mxg_sasl_err {
    MXG_SASL_OK = 0,
    MXG_SASL_MALFORMED = -1, /* not [authzid] NUL authcid NUL passwd, a field too long */
    MXG_SASL_EMPTY = -2,     /* empty authcid or passwd */
    MXG_SASL_AUTHZID = -3,   /* an authzid other than the authcid: not supported */
};
/* RFC 4616 message = [authzid] UTF8NUL authcid UTF8NUL passwd. user and pass
 * get NUL-terminated copies (each MXG_SASL_FIELD_MAX + 1 octets). */
int mxg_sasl_plain_parse(const unsigned char *msg, size_t len, char *user, char *pass);

/* ------------------------------------------------------------ the throttle
 *
 * Failed AUTH attempts per key ("ip:ADDR" — IPv6 clients by their /64 —
 * or "user:NAME"), counted within a window that starts at the first failure;
 * max failures within it lock the key for the lockout time. At most
 * max_entries keys are remembered; the least recently used one is forgotten
 * first. Times are the caller's monotonic milliseconds (uv_now: CLOCK_MONOTONIC,
 * one clock for every process). One table per server (struct mxg_server), used
 * on the loop thread only — or one shared by the worker processes
 * (mxg_auth_throttle_new_shared). */
struct mxg_auth_throttle;

struct mxg_auth_throttle *mxg_auth_throttle_new(int max_entries); /* NULL: out of memory */
/* The same table shared by processes (server.workers): one MAP_SHARED mapping,
 * made before fork() and inherited, every call under a process-shared mutex; a
 * fixed pool of max_entries slots (a key too long for a slot is refused like a
 * full table: fail closed). mxg_auth_throttle_free() unmaps the caller's view
 * only. NULL when the mapping cannot be made. A process that dies holding the
 * mutex poisons the table: every call refuses (fail closed) for quarantine_ms
 * (give max(auth.failure_window, auth.lockout): every count and lockout would
 * have run out by then; every later call raises it to cover the window and
 * lockout it writes, so a reload that lengthens them is covered too), then the
 * table is emptied and counts afresh. */
struct mxg_auth_throttle *mxg_auth_throttle_new_shared(int max_entries, uint64_t quarantine_ms);
void mxg_auth_throttle_free(struct mxg_auth_throttle *t);          /* t may be NULL */
/* Milliseconds until key's lockout ends; 0 when it is not locked. */
uint64_t mxg_auth_throttle_locked(struct mxg_auth_throttle *t, const char *key, uint64_t now_ms);
/* Count one failure. Returns the failures counted in the current window; when
 * that reaches max the key is locked (from now for lockout_ms) and its
 * count starts again after the lockout. */
int mxg_auth_throttle_fail(struct mxg_auth_throttle *t, const char *key, uint64_t now_ms, int max,
                           uint64_t window_ms, uint64_t lockout_ms);
/* A password check for key starts (parallel sessions must not get more checks
 * than the limit: docs/ARCHITECTURE.md §Hostile peers): 1 when the failures
 * in the window plus the checks already in flight are below max and the key
 * is not locked — the check is then counted as in flight until
 * mxg_auth_throttle_finish(); 0 (refuse: 454 4.7.0) when the key is locked or
 * at its limit; -1 when the table has no room for a new key (every entry
 * locked or with a check in flight): refuse too (fail closed) — except that
 * the session lets an address in that authenticated as the user before (a key
 * flood must not lock out a legitimate client). A failed check is counted
 * with mxg_auth_throttle_fail() before its mxg_auth_throttle_finish(), so no
 * session (of any worker, server.workers) sees the check over and its failure
 * not yet counted. */
int mxg_auth_throttle_start(struct mxg_auth_throttle *t, const char *key, uint64_t now_ms, int max,
                            uint64_t window_ms);
void mxg_auth_throttle_finish(struct mxg_auth_throttle *t, const char *key);
int mxg_auth_throttle_inflight(struct mxg_auth_throttle *t, const char *key);
void mxg_auth_throttle_clear(struct mxg_auth_throttle *t, const char *key);
int mxg_auth_throttle_size(const struct mxg_auth_throttle *t);
/* Tests only: take a shared table's mutex and keep it (a process that then dies
 * holding it poisons the table: every check is refused for its quarantine). */
void mxg_auth_throttle_test_hold(struct mxg_auth_throttle *t);
/* "ip:192.0.2.1", "ip:2001:db8:1:2::/64" (v4-mapped IPv6 as IPv4). */
void mxg_auth_throttle_addr_key(const struct sockaddr *sa, char *out, size_t cap);

/* ------------------------------------------------------------ trusted addresses
 *
 * A per-user lockout (auth.max_user_failures) must not let an attacker lock
 * the real client out: an address that authenticated successfully as a user
 * within auth.trusted_address_lifetime is still let in (its own per-address
 * limit applies). The memory is a second table of the same kind
 * (mxg_auth_throttle_new(auth.trusted_addresses)), keyed by address and
 * user, LRU-bounded: an address it has forgotten is refused during a lockout
 * like any other (fail closed, never "no limit"). Times are wall-clock
 * milliseconds (the table outlives restarts through auth_trust_store.c). */
#define MXG_AUTH_TRUST_KEY_MAX (80 + MXG_SASL_FIELD_MAX + 8)
/* Record a success of user from addr_key (mxg_auth_throttle_addr_key) at when_ms. */
void mxg_auth_trust_mark(struct mxg_auth_throttle *t, const char *addr_key, const char *user,
                         uint64_t when_ms);
/* 1 if user authenticated from addr_key less than lifetime_ms before now_ms. */
int mxg_auth_trusted(struct mxg_auth_throttle *t, const char *addr_key, const char *user,
                     uint64_t now_ms, uint64_t lifetime_ms);

/* The same memory on disk (auth_trust_store.c): DIR/auth-trust.db, so a
 * restart does not make every legitimate client a stranger. open: NULL with
 * err when the file cannot be used (the caller goes on in memory). load:
 * rows older than lifetime_ms are deleted, the rest marked in t (at most
 * max_rows, the newest); the count, or -1. put: one success (the newest
 * max_rows rows are kept); 0 or -1 (logged). */
struct mxg_auth_trust_store;
struct mxg_auth_trust_store *mxg_auth_trust_store_open(const char *dir, int max_rows, char *err,
                                                       size_t errlen);
int mxg_auth_trust_store_load(struct mxg_auth_trust_store *st, struct mxg_auth_throttle *t,
                              uint64_t now_ms, uint64_t lifetime_ms);
int mxg_auth_trust_store_put(struct mxg_auth_trust_store *st, const char *addr_key,
                             const char *user, uint64_t when_ms);
void mxg_auth_trust_store_close(struct mxg_auth_trust_store *st); /* st may be NULL */

/* ------------------------------------------------------------ per-network policy */

/* What a client must do before MAIL, after server.allow_networks let it in:
 * AUTH if its address is in server.require_auth_networks (AUTH itself needs
 * TLS unless auth.allow_plaintext_loopback applies), else STARTTLS if it is in
 * server.require_tls_networks, else nothing. */
enum mxg_inbound_req { MXG_REQ_NONE = 0, MXG_REQ_TLS, MXG_REQ_AUTH };
const char *mxg_inbound_req_name(enum mxg_inbound_req r); /* "none", "tls", "auth" */
enum mxg_inbound_req mxg_inbound_requirement(const struct mxg_config *cfg,
                                             const struct sockaddr *sa);
/* 1 for 127.0.0.0/8, ::1 and v4-mapped 127/8. */
int mxg_addr_is_loopback(const struct sockaddr *sa);

/* Open what the inbound side reads at start-up and on SIGHUP: the STARTTLS
 * context (server.tls_*; *tls NULL when not configured) and the password file
 * (auth.password_file; *db NULL when not configured). Either output pointer
 * may be NULL (not wanted). 0, or -1 with err (nothing returned). A password
 * file readable by others is logged as a warning. */
int mxg_inbound_load(const struct mxg_config *cfg, struct mxg_tls_ctx **tls,
                     struct mxg_auth_db **db, char *err, size_t errlen);

/* mxg_inbound_load() and free what it made: for `mxguard config check`.
 * 0, or -1 with err. */
int mxg_inbound_check(const struct mxg_config *cfg, char *err, size_t errlen);

/* For `mxguard config check -v`: the inbound rules in the order they apply
 * (ACL, AUTH networks, TLS networks, the rest), what is offered, and the
 * throttle's numbers, as '#' comment lines (the dump stays loadable). */
void mxg_inbound_explain(const struct mxg_config *cfg, FILE *out);

#endif
