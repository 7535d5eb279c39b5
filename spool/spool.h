/* spool/spool.h — the durable message store (docs/ARCHITECTURE.md §Spool).
 *
 * Used by proxy/inbound/session.c (a multi-leg transaction writes its body here while
 * it streams; queue-mode listeners spool every message), by the queue runner
 * (proxy/outbound/queue_runner.c) and by `mxguard queue list|show|flush|delete`.
 *
 * Layout under DIR (normally <state.directory>/spool, created 0700):
 *   DIR/ID.msg    the message in wire form: CRLF lines, dot-stuffed, with
 *                 mxguard's Received header, WITHOUT the final ".\r\n" —
 *                 exactly the bytes a leg writes between DATA and the dot.
 *   DIR/ID.env    the envelope (JSON, jansson), see struct mxg_spool_env.
 *   DIR/ID.env.tmp  an envelope being rewritten.
 *   DIR/ID.bad    a quarantined envelope (unreadable: malformed or of an
 *                 unknown version); its ID.msg is kept for the operator.
 *   DIR/lock      flock(2)ed by the process that owns the spool (the daemon).
 * An entry exists iff ID.env exists. IDs sort by age (strcmp order = order of
 * creation: "MMMMMMMMMMMMM-CCCC-PID", milliseconds, counter, pid) and use
 * only [0-9A-Za-z-].
 *
 * Processes: the daemon and `mxguard queue` may open the same spool. The
 * first to open it owns it (DIR/lock) and removes the leftovers of a crash:
 * *.msg without .env or .bad (a body that was still streaming) and *.tmp;
 * others skip that. Each entry has a lock, flock(2) on its ID.msg: a writer
 * holds it while the body streams, the queue runner while it delivers and
 * settles the entry, the CLI while it rewrites or removes it. Whoever
 * changes an existing entry takes the lock, then (re)loads the envelope.
 *
 * Crash safety: a body is fsync'd before its first envelope is written; an
 * envelope is written to ID.env.tmp, fsync'd, renamed over ID.env, and the
 * directory is fsync'd — so after mxg_spool_commit()/mxg_spool_update()
 * return 0 the state survives kill -9 and power loss. mxg_spool_remove()
 * unlinks ID.env first (then fsyncs the directory), then ID.msg.
 *
 * Errors: functions return 0 or a negative errno value (-ENOSPC, -EIO,
 * -ENOENT, -EINVAL for a malformed envelope or a bad ID, -ENOMEM, -EBUSY for
 * a locked entry) and, where an err buffer is given, a one-line reason naming
 * the file. Nothing here logs or blocks
 * on anything but the local file system; it is not thread-safe (one loop).
 *
 * Ownership: struct mxg_spool_env owns its rcpts array (heap); free it with
 * mxg_spool_env_free() (a zeroed env is empty; free leaves it empty).
 * Everything else is fixed-size inside the struct. */
#ifndef MXG_SPOOL_H
#define MXG_SPOOL_H

#include <stddef.h>
#include <stdint.h>

#include "../smtp/smtp_parse.h" /* struct mxg_mail_params, mxg_rcpt_params (plain data) */

#define MXG_SPOOL_ID_MAX 40
#define MXG_SPOOL_REPLY_MAX 512

enum mxg_spool_kind {
    MXG_SPOOL_MESSAGE = 0, /* mail taken from a client */
    MXG_SPOOL_DSN,         /* a delivery status notification we generated (from <>) */
};

enum mxg_spool_rcpt_state {
    MXG_RCPT_PENDING = 0,  /* still to be delivered (retried with backoff) */
    MXG_RCPT_DELIVERED,    /* an MX accepted it (2xx after the dot) */
    MXG_RCPT_FAILED,       /* permanent failure or lifetime expired: DSN due */
};

struct mxg_spool_rcpt {
    char addr[MXG_PATH_MAX];            /* local@domain as given by the client */
    char domain[MXG_DOMAIN_MAX + 1];    /* A-label, lower case: the leg's destination */
    struct mxg_rcpt_params rp;          /* NOTIFY / ORCPT as given */
    enum mxg_spool_rcpt_state state;
    int dsn_done;                       /* 1: a DSN was generated (or none is due) */
    int last_code;                      /* last reply code, 0 = none yet */
    char last_reply[MXG_SPOOL_REPLY_MAX]; /* "451 4.4.1 Connection refused ... " (one line) */
    char last_mx[300];                  /* "mx1.example.net[192.0.2.1]" or "" */
    int expired;                        /* FAILED because queue.lifetime ran out (4.4.7) */
};

struct mxg_spool_env {
    char id[MXG_SPOOL_ID_MAX];          /* set by mxg_spool_writer_new() */
    enum mxg_spool_kind kind;
    int64_t created_ms;                 /* wall clock (ms since the epoch) of acceptance */
    int64_t next_attempt_ms;            /* wall clock of the next delivery attempt */
    int attempts;                       /* delivery attempts so far */
    char from[MXG_PATH_MAX];            /* reverse-path, "" = null sender */
    struct mxg_mail_params mp;          /* SIZE, BODY, SMTPUTF8, RET, ENVID */
    char client[64];                    /* client address the message came from */
    char helo[256];                     /* its HELO/EHLO name */
    uint64_t body_size;                 /* octets in ID.msg */
    int n_rcpts;
    struct mxg_spool_rcpt *rcpts;       /* owned */
};

struct mxg_spool;
struct mxg_spool_writer;

const char *mxg_spool_kind_name(enum mxg_spool_kind k);            /* "message", "dsn" */
const char *mxg_spool_rcpt_state_name(enum mxg_spool_rcpt_state s); /* "pending", ... */
/* 1 if id is a possible entry ID (non-empty, < MXG_SPOOL_ID_MAX, [0-9A-Za-z-]). */
int mxg_spool_id_valid(const char *id);

/* Open (create 0700 if needed) the spool directory; if no other process owns
 * it, take ownership and clean crash leftovers (see above). Returns NULL with
 * err on failure. */
struct mxg_spool *mxg_spool_open(const char *dir, char *err, size_t errlen);
void mxg_spool_close(struct mxg_spool *sp);
const char *mxg_spool_dir(const struct mxg_spool *sp);
/* 1 if this handle owns the spool (DIR/lock), 0 if another process does. */
int mxg_spool_owner(const struct mxg_spool *sp);
/* Number of crash leftovers removed by mxg_spool_open() (for a log line). */
int mxg_spool_cleaned(const struct mxg_spool *sp);

/* Tests only — failure injection at the file-descriptor level (root ignores
 * permissions, so a read-only directory proves nothing): before each step,
 * fault(arg, op) may return a negative errno (-ENOSPC, -EIO) and the step
 * fails with it as if the kernel had said so. NULL turns it off. */
enum mxg_spool_op {
    MXG_SPOOL_OP_BODY_WRITE = 0, MXG_SPOOL_OP_BODY_SYNC, MXG_SPOOL_OP_ENV_WRITE,
    MXG_SPOOL_OP_ENV_SYNC, MXG_SPOOL_OP_RENAME, MXG_SPOOL_OP_DIR_SYNC,
    MXG_SPOOL_OP_BODY_LOCK, /* a new body, created, before its lock: -EWOULDBLOCK = the
                               lock was taken by another (a new id); the hook may also
                               unlink the file (what another process's leftover clean-up
                               would do) */
};
void mxg_spool_set_fault(struct mxg_spool *sp, int (*fault)(void *arg, enum mxg_spool_op op),
                         void *arg);

/* ---- writing a new entry while its body streams ---- */

/* Start a new entry: picks a unique ID (time + counter + pid, filename-safe)
 * and creates DIR/ID.msg. */
int mxg_spool_writer_new(struct mxg_spool *sp, struct mxg_spool_writer **out, char *err,
                         size_t errlen);
const char *mxg_spool_writer_id(const struct mxg_spool_writer *w);
/* Append body bytes (buffered). An error is sticky: every later call returns
 * it too, so a caller may check only at the end — but the session checks
 * each time, to abort its legs before the dot (docs/ARCHITECTURE.md §Legs). */
int mxg_spool_write(struct mxg_spool_writer *w, const void *p, size_t n);
/* Finish: flush + fsync the body, set env->id and env->body_size, write the
 * envelope durably (see above). The writer is freed whatever the result; on
 * failure nothing of the entry remains on disk. */
int mxg_spool_commit(struct mxg_spool_writer *w, struct mxg_spool_env *env, char *err,
                     size_t errlen);
/* Give up: remove the body, free the writer. */
void mxg_spool_abort(struct mxg_spool_writer *w);

/* Store a complete message from memory as a new entry (DSNs, report mail,
 * tests): writer_new + write + commit in one call; sets env->id. */
int mxg_spool_put(struct mxg_spool *sp, const void *body, size_t len, struct mxg_spool_env *env,
                  char *err, size_t errlen);

/* ---- envelopes ---- */

/* Append a recipient (state PENDING); addr and domain are copied (-EINVAL if
 * too long), rp may be NULL. Returns 0, -EINVAL or -ENOMEM. */
int mxg_spool_env_add_rcpt(struct mxg_spool_env *env, const char *addr, const char *domain,
                           const struct mxg_rcpt_params *rp);
/* The ID.env format: JSON with "version": 1 (spool/envelope.c). encode
 * returns a heap string (free()) or NULL (out of memory). decode overwrites
 * out; a malformed envelope, a field that does not fit, an unknown state or
 * version → -EINVAL with a reason in err (never a crash); -ENOMEM. */
char *mxg_spool_env_encode(const struct mxg_spool_env *env);
int mxg_spool_env_decode(const char *text, size_t len, struct mxg_spool_env *out, char *err,
                         size_t errlen);

/* ---- reading and changing entries ---- */

/* IDs of all entries, sorted oldest first. *ids is one heap array of
 * fixed-size strings; free(*ids). */
int mxg_spool_list(struct mxg_spool *sp, char (**ids)[MXG_SPOOL_ID_MAX], int *n);
/* Load an envelope (out is overwritten; free with mxg_spool_env_free). */
int mxg_spool_load(struct mxg_spool *sp, const char *id, struct mxg_spool_env *out, char *err,
                   size_t errlen);
void mxg_spool_env_free(struct mxg_spool_env *env);
/* Rewrite an entry's envelope durably (env->id names it). -ENOENT if the
 * entry is gone (removed meanwhile, e.g. by `mxguard queue delete`): an update
 * never brings a removed entry back. */
int mxg_spool_update(struct mxg_spool *sp, const struct mxg_spool_env *env, char *err,
                     size_t errlen);
/* Remove an entry (envelope first, then body). */
int mxg_spool_remove(struct mxg_spool *sp, const char *id);
/* Open the body read-only; returns an fd (caller closes) or a negative errno. */
int mxg_spool_body_open(struct mxg_spool *sp, const char *id);
/* Take the entry's lock without waiting: returns an fd that holds it (close()
 * releases it; it is also a read-only fd of the body), -EBUSY if another
 * holder has it, -ENOENT if the entry does not exist (anymore). */
int mxg_spool_lock(struct mxg_spool *sp, const char *id);
/* Move an unreadable envelope aside (ID.env → ID.bad) so that the runner
 * stops tripping over it; the body stays. */
int mxg_spool_quarantine(struct mxg_spool *sp, const char *id);

/* ---- the queue's bookkeeping (pure functions of the envelope) ---- */

/* The delay before attempt number `attempts` + 1: base * 2^(attempts-1),
 * capped at max (all ms). attempts <= 0 → 0. */
uint64_t mxg_spool_backoff_ms(int attempts, uint64_t base_ms, uint64_t max_ms);

/* Settle an entry after its recipients' states changed: for every FAILED
 * recipient without dsn_done, if a DSN is due (env->from not "", kind is
 * MESSAGE, NOTIFY absent or containing FAILURE), build one RFC 3464 DSN for
 * all such recipients (spool/dsn.h, original headers from the body) and store
 * it as a new MXG_SPOOL_DSN entry addressed to env->from (next_attempt now);
 * mark them dsn_done. Then remove the entry if no recipient is PENDING, else
 * update it. reporting_mta: our host name for the DSN. *dsn_id receives the
 * new DSN entry's ID ("" if none); may be NULL. The caller should hold the
 * entry's lock. Order: the DSN is stored before the entry changes, so a crash
 * in between can repeat a DSN but never lose one. A body that cannot be read
 * gives a DSN without the returned content. -ENOENT: the entry was removed
 * meanwhile (no DSN is lost: the DSN, if any, is already stored). */
int mxg_spool_settle(struct mxg_spool *sp, struct mxg_spool_env *env, const char *reporting_mta,
                     int64_t now_ms, char *dsn_id, char *err, size_t errlen);
/* Would a failure of recipient r get a DSN (the rule settle applies)? 1/0:
 * the sender is not <> and has a domain, the entry is a MESSAGE, and r's
 * NOTIFY is absent or contains FAILURE. */
int mxg_spool_dsn_due(const struct mxg_spool_env *env, const struct mxg_spool_rcpt *r);

/* RFC 3461 §5.2.2: a recipient delivered to an MX that does not offer DSN
 * (its NOTIFY was not passed on) is owed a "relayed" DSN when it asked for
 * NOTIFY=SUCCESS. mxg_spool_relayed_due(): 1/0 — the sender is not <> and
 * has a domain, the entry is a MESSAGE and r's NOTIFY contains SUCCESS.
 * mxg_spool_relayed_dsn(): one DSN (Action: relayed, spool/dsn.h) for every
 * recipient i with which[i] set, state DELIVERED and relayed_due, stored as
 * a new MXG_SPOOL_DSN entry to env->from like settle's; *dsn_id gets its ID
 * ("" when none was due; may be NULL). The original's headers are returned
 * when env->id names a spooled body; env may also be a transient envelope
 * (env->id "", the live path): then no content is returned. Nothing of env
 * changes. Returns 0 or a negative errno with err. */
int mxg_spool_relayed_due(const struct mxg_spool_env *env, const struct mxg_spool_rcpt *r);
int mxg_spool_relayed_dsn(struct mxg_spool *sp, const struct mxg_spool_env *env,
                          const unsigned char *which, const char *reporting_mta, int64_t now_ms,
                          char *dsn_id, char *err, size_t errlen);

#endif
