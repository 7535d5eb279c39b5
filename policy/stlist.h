/* policy/stlist.h — the STARTTLS Everywhere policy list (docs/ARCHITECTURE.md §Policy list): a
 * signed JSON "preload list" of domains whose MX hosts must do verified TLS.
 *
 * Three layers:
 *  - mxg_stlist_parse(): the JSON schema (jansson) → an immutable list;
 *    a malformed file is rejected whole with a clear error, nothing partial.
 *  - mxg_stlist_verify(): the detached OpenPGP signature, checked by running
 *    gpgv against a configured keyring (never parsed by hand).
 *  - struct mxg_stlist_store: the list in force. New candidates (from a file
 *    or a download) are offered; the store verifies, parses, accepts only a
 *    strictly newer timestamp, persists the last good copy (JSON + signature)
 *    in the state directory (write-then-rename), and reloads it at start-up.
 * Ownership: the store owns the current list; a pointer from
 * mxg_stlist_store_current() stays valid until the next successful offer. */
#ifndef MXG_STLIST_H
#define MXG_STLIST_H

#include <stddef.h>
#include <stdint.h>

#include "sts_parse.h"

#define MXG_STLIST_MAX_MXS 32

struct mxg_stlist_policy {
    enum mxg_sts_mode mode;   /* MXG_STS_MODE_TESTING or MXG_STS_MODE_ENFORCE */
    int n_mxs;
    char mxs[MXG_STLIST_MAX_MXS][MXG_STS_NAME_MAX + 2]; /* lower-case; leading '.' kept */
    char alias[64];           /* policy-alias it came from, "" if inline */
};

struct mxg_stlist;

/* Parse a policy.json. Returns NULL with err ("policies.example.com.mxs[2]:
 * not a string") on any schema error. Timestamps: ISO-8601 (fractional
 * seconds, Z or ±HH:MM offset) or integer epoch seconds. */
struct mxg_stlist *mxg_stlist_parse(const char *json, size_t len, char *err, size_t errlen);
void mxg_stlist_free(struct mxg_stlist *l);

int64_t mxg_stlist_timestamp(const struct mxg_stlist *l);
int64_t mxg_stlist_expires(const struct mxg_stlist *l);
const char *mxg_stlist_author(const struct mxg_stlist *l);
const char *mxg_stlist_version(const struct mxg_stlist *l);
int mxg_stlist_count(const struct mxg_stlist *l);       /* policies */
int mxg_stlist_alias_count(const struct mxg_stlist *l);

/* Exact, case-insensitive domain lookup (a trailing dot ignored); NULL if absent. */
const struct mxg_stlist_policy *mxg_stlist_lookup(const struct mxg_stlist *l, const char *domain);
/* "mx.example.com" matches exactly; ".example.com" matches any subdomain at
 * any depth but not example.com itself. Case-insensitive, trailing dots ignored. */
int mxg_stlist_mx_match(const struct mxg_stlist_policy *p, const char *host);

/* Run gpgv --keyring KEYRING SIG DATA. 0 = good signature (signer: the
 * key's fingerprint or user id as gpgv reports it), -1 with err. */
int mxg_stlist_verify(const char *data_path, const char *sig_path, const char *keyring,
                      char *signer, size_t signerlen, char *err, size_t errlen);

/* --- additions (policy/stlist.c) --- */

/* ISO-8601 "YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM|+HHMM|-HHMM)" →
 * Unix seconds (the fraction dropped). 0, or -1 with why. No offset → -1. */
int mxg_stlist_parse_time(const char *s, int64_t *out, char *why, size_t whylen);

/* mxg_stlist_verify() with the program (a name without '/' is looked up in
 * PATH) and the time limit (<= 0: the default) given. mxg_stlist_verify()
 * is this with "gpgv" and MXG_STLIST_GPGV_TIMEOUT_MS. The run is
 * "gpgv --status-fd 1 --keyring KEYRING -- SIG DATA" via posix_spawn (no
 * shell); it blocks until gpgv exits or is killed at the limit. A KEYRING
 * without '/' is passed as "./KEYRING": gpgv itself would look for such a
 * name in its home directory (~/.gnupg), not in the working directory. */
#define MXG_STLIST_GPGV_TIMEOUT_MS 10000
int mxg_stlist_verify_with(const char *gpgv, int timeout_ms, const char *data_path,
                           const char *sig_path, const char *keyring, char *signer,
                           size_t signerlen, char *err, size_t errlen);

/* The verdict on gpgv's exit code and --status-fd output: 0 only for exit 0
 * with a "[GNUPG:] VALIDSIG <fpr>" line and none of BADSIG, ERRSIG,
 * NO_PUBKEY, EXPKEYSIG, REVKEYSIG, EXPSIG (err names the word). signer:
 * "<fpr> (<uid from GOODSIG>)" or "<fpr>". */
int mxg_stlist_gpgv_result(int exit_code, const char *status, char *signer, size_t signerlen,
                           char *err, size_t errlen);

struct mxg_stlist_store;

struct mxg_stlist_status {
    int have;                 /* a verified list is loaded */
    int expired;              /* now >= expires: not used */
    int64_t timestamp, expires;
    int64_t loaded_at;        /* when this copy was accepted (Unix seconds) */
    char signer[200];
    char author[200];
    int n_policies, n_aliases;
    char source[300];         /* file or URL it came from */
};

/* state_dir: where the last good copy lives (policy-list.json + .asc).
 * keyring: gpgv keyring. Loads (and re-verifies) the persisted copy if any. */
struct mxg_stlist_store *mxg_stlist_store_open(const char *state_dir, const char *keyring,
                                               char *err, size_t errlen);
void mxg_stlist_store_close(struct mxg_stlist_store *s);

/* Offer a candidate: verify (json + detached armored signature), parse,
 * require timestamp > current's, persist, make current. Returns 1 accepted,
 * 0 not newer (current kept), -1 rejected (err says why; current kept). */
int mxg_stlist_store_offer(struct mxg_stlist_store *s, const char *json, size_t json_len,
                           const char *sig, size_t sig_len, const char *source, char *err,
                           size_t errlen);

/* The same offer in two halves, for a candidate verified off the event loop (gpgv, up to
 * MXG_STLIST_GPGV_TIMEOUT_MS, fsync'd temporary files, parsing up to 64 MB):
 *  - mxg_stlist_candidate_new() (loop): copies json, sig and the store's directory and
 *    keyring into a candidate the caller owns (NULL: out of memory or no store);
 *  - mxg_stlist_candidate_check() (any thread, e.g. uv_queue_work): writes the temporary
 *    files, runs gpgv, parses; touches only the candidate (the store may close meanwhile);
 *  - mxg_stlist_store_install() (loop): takes the candidate (freed) and makes it current as
 *    mxg_stlist_store_offer() does (the timestamp compared with the list in force then);
 *    returns as mxg_stlist_store_offer() (-1 with the check's error when it failed);
 *  - mxg_stlist_candidate_free(): drops one not installed (its temporary files removed). */
struct mxg_stlist_candidate;
struct mxg_stlist_candidate *mxg_stlist_candidate_new(const struct mxg_stlist_store *s,
                                                      const char *json, size_t json_len,
                                                      const char *sig, size_t sig_len);
void mxg_stlist_candidate_check(struct mxg_stlist_candidate *c);
int mxg_stlist_store_install(struct mxg_stlist_store *s, struct mxg_stlist_candidate *c,
                             const char *source, char *err, size_t errlen);
void mxg_stlist_candidate_free(struct mxg_stlist_candidate *c);

/* Called after an offer was accepted, with the candidate as offered (json, its detached
 * signature) and its timestamp; valid during the call. app/ wires it to the fleet's
 * shared state (state/state.h), whose members offer what they pull (and verify it). */
typedef void (*mxg_stlist_accepted_cb)(void *arg, const char *json, size_t json_len,
                                       const char *sig, size_t sig_len, int64_t timestamp);
/* Sets (or with fn NULL clears) the accepted-list observer. */
void mxg_stlist_store_set_accepted_cb(struct mxg_stlist_store *s, mxg_stlist_accepted_cb fn,
                                      void *arg);

/* The list in force, or NULL (none, or expired: an expired list is never used). */
const struct mxg_stlist *mxg_stlist_store_current(const struct mxg_stlist_store *s, int64_t now);
void mxg_stlist_store_status(const struct mxg_stlist_store *s, int64_t now,
                             struct mxg_stlist_status *out);

#endif
