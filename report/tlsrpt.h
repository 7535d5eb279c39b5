/* report/tlsrpt.h — SMTP TLS Reporting (RFC 8460): durable result counters,
 * the daily JSON report, gzip, and the _smtp._tls TXT record. The one
 * public header of report/ (docs/ARCHITECTURE.md §TLSRPT, §TLSRPT counting).
 *
 * Contract:
 *  - Recording: the SMTP path calls mxg_rpt_record() once per upstream TLS
 *    session attempt (a handshake, or a missing STARTTLS; a reused
 *    connection records nothing). It never blocks and never fails visibly:
 *    it copies the strings and adds the result to an in-memory aggregate.
 *    A repeating uv timer (every flush_ms) hands the aggregate to a libuv
 *    worker thread that adds it to SQLite in one transaction, so no disk
 *    write or fsync ever runs on the loop. A failed write keeps the counts
 *    in memory and retries on the next tick. mxg_rpt_close() writes
 *    everything (SIGTERM loses nothing); a crash loses at most the last
 *    flush_ms. Each failure is also logged (NOTICE, component "tlsrpt") as
 *    one line "policy-domain=D policy-type=T result-type=R mx=H ip=A
 *    reason=X" (values with spaces quoted, control characters escaped).
 *  - Storage: one SQLite file (WAL, mode 0600) with counters per
 *    (UTC day "YYYY-MM-DD", policy-domain, policy-type, policy-string,
 *    mx-host): total successful / failed sessions, and failure details
 *    merged per identical (result-type, sending-mta-ip,
 *    receiving-mx-hostname, receiving-mx-helo, receiving-ip,
 *    additional-information, failure-reason-code) with a session count;
 *    the report-id of each generated (day, domain) report; and the
 *    delivery state of each (day, domain, rua).
 *  - Reports: mxg_rpt_report_json() builds the RFC 8460 §4 JSON for one
 *    policy domain and one UTC day; mxg_rpt_gzip() compresses it.
 *    Delivery (mail, HTTPS) lives elsewhere and must not record results of
 *    its own sessions (RFC 8460 §3: reports do not report on themselves).
 *  - TXT: mxg_rpt_txt_parse() / mxg_rpt_txt_select() are pure functions.
 *  - Threads: every function is called from the loop thread only (the
 *    worker thread is internal). No global state: everything lives in the
 *    struct mxg_rpt the caller owns.
 *  - Blocking: mxg_rpt_record() never touches the disk. The other calls
 *    (flush, reports, days, purge, delivery state, close) are synchronous
 *    SQLite calls on the caller's thread: short, but they first wait for a
 *    background write in flight, and wait at most 2 s for a lock held by
 *    another process (e.g. a CLI tool) before failing with MXG_RPT_EDB.
 *    Call them off the hot path (a daily timer, a CLI command).
 *  - Errors: 0 (or a count) on success, a negative enum mxg_rpt_err on
 *    failure, with text in err when the function takes one (database
 *    errors after open are also logged with component "tlsrpt").
 */
#ifndef MXG_TLSRPT_H
#define MXG_TLSRPT_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

/* Negative error codes of this module. */
enum mxg_rpt_err {
    MXG_RPT_OK = 0,
    MXG_RPT_EINVAL = -1,  /* bad argument, malformed input */
    MXG_RPT_ENOMEM = -2,  /* out of memory */
    MXG_RPT_EDB = -3,     /* SQLite error (message in err / logged) */
    MXG_RPT_ENODATA = -4, /* nothing recorded for that key / no such row */
    MXG_RPT_EZLIB = -5,   /* zlib error */
};
/* Static text of an mxg_rpt_err value ("database error", ...). */
const char *mxg_rpt_strerror(int code);

/* ------------------------------------------------------------ recording */

enum mxg_rpt_policy_type { MXG_RPT_TLSA, MXG_RPT_STS, MXG_RPT_NO_POLICY };
/* "tlsa", "sts", "no-policy-found" (RFC 8460 §4.4); NULL if out of range. */
const char *mxg_rpt_policy_type_name(enum mxg_rpt_policy_type t);

/* The RFC 8460 §4.3 result-type names. mxg_rpt_result_type_known()
 * returns 1 for these (exact, lower-case), else 0. */
#define MXG_RPT_R_STARTTLS_NOT_SUPPORTED "starttls-not-supported"
#define MXG_RPT_R_CERT_HOST_MISMATCH "certificate-host-mismatch"
#define MXG_RPT_R_CERT_EXPIRED "certificate-expired"
#define MXG_RPT_R_CERT_NOT_TRUSTED "certificate-not-trusted"
#define MXG_RPT_R_VALIDATION_FAILURE "validation-failure"
#define MXG_RPT_R_TLSA_INVALID "tlsa-invalid"
#define MXG_RPT_R_DNSSEC_INVALID "dnssec-invalid"
#define MXG_RPT_R_DANE_REQUIRED "dane-required"
#define MXG_RPT_R_STS_POLICY_FETCH_ERROR "sts-policy-fetch-error"
#define MXG_RPT_R_STS_POLICY_INVALID "sts-policy-invalid"
#define MXG_RPT_R_STS_WEBPKI_INVALID "sts-webpki-invalid"
int mxg_rpt_result_type_known(const char *name);

/* failure-reason-code values mxguard sets itself (RFC 8460 §4.3 leaves the
 * text to the sender): the MX host is not matched by the mx patterns of
 * the MTA-STS policy (or the policy list's entry), so it was not used in
 * enforce mode (RFC 8461 §4.1; recorded once per host, no connection) / was
 * used anyway in testing mode (recorded as that session's result when its
 * TLS otherwise succeeded); result-type validation-failure with
 * receiving-mx-hostname set. */
#define MXG_RPT_REASON_MX_NOT_IN_POLICY "mx-not-in-policy"

/* The policy a session attempt was made under. All strings are borrowed
 * for the duration of the call only (mxg_rpt_record copies them). */
struct mxg_rpt_policy {
    enum mxg_rpt_policy_type type;
    const char *domain;        /* the policy domain (A-label); stored lower-case,
                                  without a trailing dot */
    const char *policy_string; /* lines joined by '\n', e.g. "3 1 1 AB..\n2 1 1 CD.."
                                  (TLSA RDATA) or the STS policy lines; may be "" or NULL */
    const char *mx_host;       /* MX patterns joined by '\n'; may be "" or NULL */
};

/* The outcome of one session attempt. */
struct mxg_rpt_result {
    int success;               /* nonzero: counted as successful, the rest ignored */
    const char *result_type;   /* RFC 8460 §4.3 name; NULL on success */
    const char *sending_mta_ip, *receiving_mx_hostname, *receiving_mx_helo, *receiving_ip,
        *additional_information, *failure_reason_code; /* each may be NULL or "" (omitted) */
};

struct mxg_rpt;

#define MXG_RPT_DEFAULT_FLUSH_MS 1000

/* Opens (creating the file 0600 and its schema if needed) the counter
 * database db_path, e.g. STATE/tlsrpt.db, and arms the flush timer on loop
 * every flush_ms (0 → MXG_RPT_DEFAULT_FLUSH_MS). loop may be NULL (tools,
 * tests): then nothing is written until mxg_rpt_flush() or mxg_rpt_close().
 * Returns the handle (owned by the caller, released by mxg_rpt_close()) or
 * NULL with err set ("TLSRPT database PATH: reason"). */
struct mxg_rpt *mxg_rpt_open(uv_loop_t *loop, const char *db_path, uint64_t flush_ms, char *err,
                             size_t errlen);

/* Writes every buffered result (waiting for a background write in flight),
 * closes the database and the timer. r may be NULL. With a loop, the
 * struct is freed by the timer's close callback: call this before walking
 * the loop to close all handles, then run the loop (as mxguard's shutdown
 * does) — r must not be used after this call either way. A final write
 * that fails is logged (ERR) with the number of sessions lost. */
void mxg_rpt_close(struct mxg_rpt *r);

/* Counts one session attempt of policy p with outcome res, on the UTC day
 * of unix_time (<= 0: now). Copies everything; never blocks (a hash
 * lookup in memory; no I/O but the failure log line).
 * Strings are cut to sane sizes (policy_string/mx_host 192 KiB: the
 * presentation of the largest TLSA RRset fits; the others
 * 1 KiB) and made valid UTF-8 ('?' for bad bytes). A failure with a NULL
 * or empty result_type is counted as "validation-failure";
 * sts-policy-fetch-error, sts-policy-invalid and sts-webpki-invalid are
 * always counted under policy-type sts (docs/ARCHITECTURE.md §TLSRPT
 * counting). Dropped (with a warning): p or res NULL, an empty or over-long
 * domain, or when the in-memory buffer is full because the database has not
 * been writable for a long time (64 MiB of distinct counters; results of
 * counters already buffered still count). */
void mxg_rpt_record(struct mxg_rpt *r, const struct mxg_rpt_policy *p,
                    const struct mxg_rpt_result *res, int64_t unix_time);

/* Writes the buffered results now, synchronously on the caller's thread
 * (a report, a CLI tool, a test). 0, or MXG_RPT_EDB (the results stay
 * buffered and are retried). */
int mxg_rpt_flush(struct mxg_rpt *r);

/* ------------------------------------------------------------ reports */

struct mxg_rpt_org {
    const char *organization_name; /* required, e.g. "Example Org" */
    const char *contact_info;      /* required, e.g. "mailto:tlsrpt@example.org" */
    const char *submitter;         /* our domain, e.g. "mx-out.example.org"; used in
                                      report-id; may be NULL */
};

#define MXG_RPT_REPORT_ID_MAX 128

/* Builds the RFC 8460 report of policy domain `domain` for UTC day `day`
 * ("YYYY-MM-DD"), after flushing the buffered results. One entry in
 * "policies" per distinct (policy-type, policy-string, mx-host);
 * "policy-string" / "mx-host" are omitted when empty, "failure-details"
 * when there are no failures, and every optional failure field when
 * empty. The report-id ("DAY.DOMAIN.RANDOM@SUBMITTER", shorter forms if
 * that does not fit MXG_RPT_REPORT_ID_MAX) is created on the first call
 * and stored: later calls for the same (day, domain) return the same one.
 * On success *json_out is a malloc'd NUL-terminated compact JSON text
 * (caller frees with free()) and report_id_out (MXG_RPT_REPORT_ID_MAX
 * bytes, may be NULL) holds the id. Returns 0, MXG_RPT_ENODATA (nothing
 * recorded for that day and domain), MXG_RPT_EINVAL (bad day, domain or
 * org), MXG_RPT_EDB or MXG_RPT_ENOMEM, with err set. */
int mxg_rpt_report_json(struct mxg_rpt *r, const char *day, const char *domain,
                        const struct mxg_rpt_org *org, char **json_out, char *report_id_out,
                        char *err, size_t errlen);

/* Compresses in[0..len) into gzip format (RFC 1952, zlib deflateInit2 with
 * windowBits 15+16). *out is malloc'd (caller frees), *outlen its size.
 * Returns 0, MXG_RPT_EINVAL, MXG_RPT_ENOMEM or MXG_RPT_EZLIB. */
int mxg_rpt_gzip(const char *in, size_t len, char **out, size_t *outlen);

/* Calls fn once per (day, domain) that has counters in the database (after
 * flushing), ordered by day then domain. fn may call any other mxg_rpt
 * function (the list is read completely before the first call). Returns
 * the number of pairs, or MXG_RPT_EDB / MXG_RPT_ENOMEM. */
int mxg_rpt_days(struct mxg_rpt *r, void (*fn)(void *arg, const char *day, const char *domain),
                 void *arg);

/* Calls fn once per UTC day >= from_day ("YYYY-MM-DD") that has counters in
 * the database, in day order, with the day's successful and failed
 * session totals over every policy domain (the status page's chart). Reads
 * only: results still buffered in memory (at most the last flush interval)
 * are not written first. Returns the number of days, or MXG_RPT_EINVAL /
 * MXG_RPT_EDB / MXG_RPT_ENOMEM. */
int mxg_rpt_day_totals(struct mxg_rpt *r, const char *from_day,
                       void (*fn)(void *arg, const char *day, uint64_t success,
                                  uint64_t failure),
                       void *arg);

/* Deletes counters, report-ids and delivery rows of every day before
 * before_day ("YYYY-MM-DD"; retention). Returns the number of (day,
 * domain) counter groups deleted, or MXG_RPT_EINVAL / MXG_RPT_EDB. */
int mxg_rpt_purge(struct mxg_rpt *r, const char *before_day);

/* ------------------------------------------------------------ fleet outbox */
/* A fleet's shared counters (docs/ARCHITECTURE.md §Shared state; report/rpt_outbox.c).
 * With the outbox on, each batch of counters written to the file is also kept, in the same
 * transaction, as one outbox row (a random id, the batch as JSON) until
 * mxg_rpt_outbox_done() removes it: durable locally first, pushed to the shared database
 * by its caller, at most once per id. Loop thread only; synchronous and short, but they wait
 * for a background write in flight (up to the busy timeout): a caller on the event loop asks
 * mxg_rpt_outbox_busy() first and comes back later when it says 1. set_outbox: 0 or
 * MXG_RPT_EDB. take: calls fn for up to max rows, oldest first (strings valid during the
 * call), returns the number or MXG_RPT_EDB. done: removes the n ids in one transaction; 0
 * (also for ids that are gone) or MXG_RPT_EDB (none removed). count: rows waiting, or
 * MXG_RPT_EDB. busy: 1 while a background write is in flight, else 0 (never waits). */
int mxg_rpt_set_outbox(struct mxg_rpt *r, int on);
int mxg_rpt_outbox_take(struct mxg_rpt *r, int max,
                        void (*fn)(void *arg, const char *id, const char *payload), void *arg);
int mxg_rpt_outbox_done(struct mxg_rpt *r, const char *const *ids, int n);
/* Deletes the outbox rows made before before (Unix seconds): a batch older than
 * state.outbox_max_age is never pushed, since the database keeps batch ids only for
 * state.retention (state/state.h "Pruning"). Rows deleted, or MXG_RPT_EDB. */
int mxg_rpt_outbox_expire(struct mxg_rpt *r, int64_t before);
int mxg_rpt_outbox_busy(struct mxg_rpt *r);
int mxg_rpt_outbox_count(struct mxg_rpt *r);
/* Adds the counters of payload (the outbox's JSON format, as the shared state also returns
 * the fleet's counters) to r and writes them: 0, or MXG_RPT_EINVAL (err says why),
 * MXG_RPT_ENOMEM, MXG_RPT_EDB. `report list|show|export` of a fleet read a view built so. */
int mxg_rpt_import(struct mxg_rpt *r, const char *payload, char *err, size_t errlen);

/* ------------------------------------------------------------ delivery state */

enum mxg_rpt_dstatus { MXG_RPT_PENDING = 0, MXG_RPT_SENT, MXG_RPT_GAVE_UP };
/* "pending", "sent", "gave-up"; NULL if out of range. */
const char *mxg_rpt_dstatus_name(enum mxg_rpt_dstatus s);

#define MXG_RPT_DAY_LEN 10 /* "YYYY-MM-DD" */
#define MXG_RPT_DOMAIN_MAX 254
#define MXG_RPT_RUA_MAX 512

/* One row of the delivery table: report of (day, domain) to rua. */
struct mxg_rpt_delivery {
    char day[MXG_RPT_DAY_LEN + 1];
    char domain[MXG_RPT_DOMAIN_MAX];
    char rua[MXG_RPT_RUA_MAX];
    int attempts;
    int64_t next_attempt_at; /* Unix seconds */
    enum mxg_rpt_dstatus status;
    char last_error[256];    /* "" if none */
    int64_t updated_at;      /* Unix seconds of the last add/update */
};

/* Adds a pending row (0 attempts, next_attempt_at) for (day, domain, rua)
 * unless one exists. Returns 1 added, 0 already there (left unchanged),
 * or MXG_RPT_EINVAL / MXG_RPT_EDB. */
int mxg_rpt_delivery_add(struct mxg_rpt *r, const char *day, const char *domain, const char *rua,
                         int64_t next_attempt_at);

/* Sets attempts, next_attempt_at, status and last_error of the row keyed
 * by d->day, d->domain, d->rua (updated_at = now). Returns 0,
 * MXG_RPT_ENODATA (no such row), MXG_RPT_EINVAL or MXG_RPT_EDB. */
int mxg_rpt_delivery_update(struct mxg_rpt *r, const struct mxg_rpt_delivery *d);

/* Calls fn for each row with the given status (-1: any) and, when due_by
 * > 0, next_attempt_at <= due_by; ordered by next_attempt_at, day, domain,
 * rua. d is valid during the call; fn may call mxg_rpt_delivery_update()
 * (rows are read before the first call). Returns the number of rows, or
 * MXG_RPT_EDB / MXG_RPT_ENOMEM. */
int mxg_rpt_delivery_list(struct mxg_rpt *r, int status, int64_t due_by,
                          void (*fn)(void *arg, const struct mxg_rpt_delivery *d), void *arg);

/* ------------------------------------------------------------ _smtp._tls TXT */

/* Parses one TXT record of "_smtp._tls.DOMAIN" (character-strings already
 * concatenated; len bytes, NUL not required) per RFC 8460 §3:
 * "v=TLSRPTv1" first, then ";"-separated fields (whitespace around ";" and
 * "=" allowed, empty fields tolerated), "rua=" with one or more
 * comma-separated URIs. Only "mailto:" and "https:" URIs are kept (others
 * are ignored and named in why); %2C, %21, %3B are decoded to ',' '!' ';'
 * inside URIs (other %-escapes are kept as they are); duplicates are kept
 * once; URIs longer than MXG_RPT_RUA_MAX-1 or beyond max are ignored (why).
 * Unknown fields are ignored if well-formed (RFC 8460 tlsrpt-extension);
 * a second rua field adds its URIs. Returns:
 *   n > 0  the number of URIs written to ruas[0..n) (why: what was ignored,
 *          or ""),
 *   0      not a TLSRPT record (does not start with "v=TLSRPTv1" followed by
 *          ";", whitespace or the end),
 *   -1     (MXG_RPT_EINVAL) a TLSRPT record that is malformed or has no
 *          usable rua URI (why says which). */
int mxg_rpt_txt_parse(const char *txt, size_t len, char ruas[][MXG_RPT_RUA_MAX], int max,
                      char *why, size_t whylen);

/* The TXT RRset of "_smtp._tls.DOMAIN" (n records as from dns/dns.h's
 * mxg_txt_result: txts[i] of lens[i] bytes): records that are not TLSRPT
 * are discarded; exactly one must remain (RFC 8460 §3). Returns its
 * mxg_rpt_txt_parse() result (n > 0 or -1), 0 when there is none, -1 when
 * there are several (why set). */
int mxg_rpt_txt_select(const char *const *txts, const size_t *lens, int n,
                       char ruas[][MXG_RPT_RUA_MAX], int max, char *why, size_t whylen);

/* ================================================================
 * BEGIN delivery over HTTPS (report/rpt_send.c)
 * ================================================================
 *
 * Sends the daily reports (RFC 8460 §5.3/§5.4) and keeps the delivery
 * table up to date. Contract:
 *  - Per (day, policy domain) with counters: TXT "_smtp._tls.DOMAIN"
 *    (mxg_rpt_txt_select on the RRset; no record / NODATA / NXDOMAIN →
 *    nothing to send, logged at debug; an invalid record → nothing, logged
 *    at notice; DNS failure → counted in dns_fail, nothing recorded, the
 *    scheduler tries again later). One delivery row per rua
 *    (mxg_rpt_delivery_add). The report JSON and its gzip are built once per
 *    (day, domain) and POSTed to every https: rua with Content-Type
 *    application/tlsrpt+gzip (the URL host's addresses from
 *    mxg_dns_lookup_addr, connection by http/https: WebPKI, no
 *    redirects; success = any 2xx). mailto: ruas get the report mail
 *    through the mailer (block "report mail" below: without a mailer or a
 *    DKIM key they are skipped, row gave-up "skipped: ...").
 *  - Rows already sent or gave-up are left alone. A pending row is POSTed
 *    by the explicit calls (mxg_rpt_send_day / _domain) whatever its
 *    next_attempt_at; the scheduler only retries rows that are due.
 *  - After each attempt: success → sent (attempts+1); failure → attempts+1
 *    and, below max_attempts, next_attempt_at = now + min(backoff_max_s,
 *    backoff_base_s * 2^(attempts-1)) (NOTICE line), else gave-up (WARNING
 *    line). last_error holds the failure ("HTTP 500", "DNS ...", ...).
 *  - Report delivery never records TLSRPT results (RFC 8460 §3): HTTPS
 *    does not use the SMTP path, and the mailer must not record (below).
 *  - Callbacks (done) run exactly once per accepted call, from the loop,
 *    never synchronously. mxg_rpt_sender_free() cancels everything without
 *    callbacks; it may be called from a done callback. The loop must run
 *    afterwards so that the sender's uv handles close (the struct goes with
 *    the last one). The sender does not own r, dns, https: free it first.
 *  - Database calls are the synchronous mxg_rpt ones (short; run at most
 *    once per tick or per finished attempt, never on the SMTP path).
 */
struct mxg_dns;
struct mxg_https;
struct mxg_txt_result;
struct mxg_addr_result;
struct mxg_rpt_sender;

/* Defaults for zero fields of struct mxg_rpt_send_cfg. */
#define MXG_RPT_SEND_BACKOFF_BASE_S 600     /* 10 min, 20, 40, ... */
#define MXG_RPT_SEND_BACKOFF_MAX_S 43200    /* 12 h */
#define MXG_RPT_SEND_MAX_ATTEMPTS 8

struct mxg_rpt_send_cfg {
    uint64_t backoff_base_s, backoff_max_s;    /* 0 → defaults above */
    int max_attempts;                          /* <= 0 → default */
    uint64_t connect_timeout_ms, total_timeout_ms; /* 0 → http/https defaults */
};

/* Outcome of one mxg_rpt_send_day / _domain call (counts of ruas, except
 * domains / no_txt / dns_fail which count (day, domain) pairs). */
struct mxg_rpt_send_stats {
    int domains;  /* (day, domain) pairs looked at */
    int no_txt;   /* no (valid) _smtp._tls record: nothing to send */
    int dns_fail; /* TXT lookup failed (temporary / bogus) */
    int errors;   /* report could not be built / database error */
    int sent;     /* POST answered 2xx */
    int retry;    /* failed, will be retried */
    int gave_up;  /* failed, max attempts reached */
    int skipped;  /* mailto: without DKIM key / mailer, or an unusable URI */
    int already;  /* row was already sent / gave-up */
    int fleet;    /* left to the fleet: another instance holds, sent or gave up on it, or
                     the shared store could not be reached (the gate) */
};
typedef void (*mxg_rpt_send_cb)(void *arg, const struct mxg_rpt_send_stats *st);

/* r, https and org required; dns may be NULL only if a resolver is set
 * with mxg_rpt_sender_set_resolver() before the first send. org's strings
 * are copied. https_port_override > 0 replaces the port of every https
 * rua (tests); 0 = from the URL (default 443). NULL on bad arguments or
 * out of memory. */
struct mxg_rpt_sender *mxg_rpt_sender_new(uv_loop_t *loop, struct mxg_rpt *r, struct mxg_dns *dns,
                                          struct mxg_https *https, const struct mxg_rpt_org *org,
                                          int https_port_override);
/* Sets retry and timeout parameters (cfg NULL: all defaults). */
void mxg_rpt_sender_configure(struct mxg_rpt_sender *s, const struct mxg_rpt_send_cfg *cfg);
void mxg_rpt_sender_free(struct mxg_rpt_sender *s);

/* DNS seam (tests; default: dns/dns.h on the dns handle). txt / addr
 * start a lookup with the dns.h semantics (callback later, from the loop)
 * and return 0 with *q set, or -1; cancel guarantees no callback. */
struct mxg_rpt_resolver {
    int (*txt)(void *ctx, const char *name,
               void (*cb)(void *arg, const struct mxg_txt_result *res), void *arg, void **q);
    int (*addr)(void *ctx, const char *host,
                void (*cb)(void *arg, const struct mxg_addr_result *res), void *arg, void **q);
    void (*cancel)(void *ctx, void *q);
    void *ctx;
};
void mxg_rpt_sender_set_resolver(struct mxg_rpt_sender *s, const struct mxg_rpt_resolver *res);

/* Sends the reports of every policy domain with counters on day
 * ("YYYY-MM-DD"), as described above. 0 (done called later), or
 * MXG_RPT_EINVAL / MXG_RPT_EDB / MXG_RPT_ENOMEM (no callback). */
int mxg_rpt_send_day(struct mxg_rpt_sender *s, const char *day, mxg_rpt_send_cb done, void *arg);

/* The per-domain part without the TXT lookup: ruas[0..n) as from
 * mxg_rpt_txt_parse. 0 (done called later) or a negative mxg_rpt_err. */
int mxg_rpt_send_domain(struct mxg_rpt_sender *s, const char *day, const char *domain,
                        const char ruas[][MXG_RPT_RUA_MAX], int n, mxg_rpt_send_cb done,
                        void *arg);

/* Scheduler: every check_interval_ms (first check on the next loop
 * iteration), for each (day, domain) with counters on a day strictly
 * before today (UTC) that has no delivery row yet (and had no TXT lookup
 * with a definite answer in this process), waits a random delay in
 * [0, max_random_delay_ms] (RFC 8460 §5.3: not all at midnight) and then
 * does the work of mxg_rpt_send_day for it; and retries pending rows of
 * such days whose next_attempt_at has come. 0, or MXG_RPT_EINVAL
 * (check_interval_ms 0 or started twice). */
int mxg_rpt_sender_start(struct mxg_rpt_sender *s, uint64_t check_interval_ms,
                         uint64_t max_random_delay_ms);

/* Fleet gate (report/rpt_send.c, rpt_fleet.c; docs/ARCHITECTURE.md §Shared state): with
 * a gate set, the sender sends nothing a fleet's claim did not give it. Before a (day,
 * domain)'s pending ruas get an attempt, claim() is asked for them (asynchronously, with
 * this instance's report-id as the proposal); the answer says, per rua, whether this
 * instance sends it now (MINE), another holds it (HELD: the row stays pending and is looked
 * at again after lease_left + 1 s, no attempt counted: a takeover once the lease has run
 * out), or the fleet already sent / gave up on it (the row is closed as sent / gave-up,
 * last_error "by the fleet"). MINE ruas get the report built from the fleet's counters
 * (payload, the outbox JSON format) under the claim's report-id. A claim that cannot reach
 * the shared store (ok 0) sends nothing: the rows stay pending, looked at again after
 * retry_s, no attempt counted. After each MINE attempt that ends the row (sent, gave-up),
 * done() is called. cancel(handle) before cb guarantees cb never runs. */
enum mxg_rpt_claim_res { MXG_RPT_CLAIM_MINE = 0, MXG_RPT_CLAIM_HELD, MXG_RPT_CLAIM_SENT,
                         MXG_RPT_CLAIM_GAVE_UP };
struct mxg_rpt_claim {
    int ok;                               /* 0: the shared store did not answer (why) */
    const char *why;
    const char *report_id, *payload;      /* ok: the fleet's report-id and counters */
    const enum mxg_rpt_claim_res *res;    /* ok: per rua, in the order asked */
    const int64_t *lease_left;            /* ok: per rua, seconds (HELD) */
    int n;
};
typedef void (*mxg_rpt_claim_cb)(void *arg, const struct mxg_rpt_claim *c);
struct mxg_rpt_gate {
    int (*claim)(void *ctx, const char *day, const char *domain, const char *const *ruas, int n,
                 const char *report_id, mxg_rpt_claim_cb cb, void *arg, void **handle);
    void (*cancel)(void *ctx, void *handle);
    void (*done)(void *ctx, const char *day, const char *domain, const char *rua, int gave_up);
    uint64_t retry_s;                     /* shared store unreachable: look again after */
    void *ctx;
};
/* Sets the gate (copied; NULL or no claim: none, each instance sends its own reports). */
void mxg_rpt_sender_set_gate(struct mxg_rpt_sender *s, const struct mxg_rpt_gate *g);

/* ================================================================
 * END delivery over HTTPS
 * ================================================================ */

/* ================================================================
 * BEGIN report mail (report/rpt_mail.c, report/rpt_dkim.c)
 * ================================================================
 *
 * The RFC 8460 §5.3 message for a mailto: rua, its DKIM signature
 * (libopendkim), and the mailer interface through which the sender hands
 * it to the SMTP path (implemented outside report/: proxy/outbound/report_mailer.c;
 * report/ never links against proxy/). Contract:
 *  - mxg_rpt_mail_build(): an RFC 5322 message, CRLF line ends, not
 *    dot-stuffed: From, To, Date (UTC), Subject "Report Domain: D
 *    Submitter: S Report-ID: <ID>" (folded before "Submitter:" and
 *    "Report-ID:"), Message-ID (<ID> when the report-id is a valid msg-id,
 *    else a random one at the submitter), MIME-Version, TLS-Report-Domain,
 *    TLS-Report-Submitter, Auto-Submitted: auto-generated, TLS-Required: No
 *    (RFC 8689: the report must get through whatever the TLS policy),
 *    Content-Type: multipart/report; report-type="tlsrpt"; boundary=...
 *    Parts: text/plain (us-ascii, 7bit: a short note naming the domain,
 *    day, submitter and report-id) and application/tlsrpt+gzip (base64,
 *    76-character lines) with Content-Disposition attachment and filename
 *    mxg_rpt_mail_filename(). The boundary is random and occurs in neither
 *    part. Every text that goes into a header must be printable ASCII
 *    without CR/LF (else MXG_RPT_EINVAL); org_name is made printable ASCII.
 *  - mxg_rpt_mail_filename(): "SUBMITTER!DOMAIN!BEGIN!END.json.gz" (RFC
 *    8460 §5.1) with BEGIN/END the Unix times of DAY 00:00:00Z and
 *    23:59:59Z (the report's date-range).
 *  - mxg_rpt_mail_wire(): dot-stuffing (RFC 5321 §4.5.2) of a CRLF message
 *    for SMTP DATA, without the final ".\r\n"; a message that does not end
 *    with CRLF gets one (the shared encoder, smtp/smtp_stuff.h).
 *  - mxg_rpt_mailto_parse(): "mailto:local@domain" (scheme case-insensitive,
 *    %XX decoded, "?hfields" ignored) → the address and its domain
 *    (lower-case, no trailing dot). One plain ASCII address only (a list
 *    "a@x,b@y", quotes, IP literals, non-ASCII: unusable). 0, or -1.
 *  - DKIM: mxg_rpt_dkim_load() reads a PEM private key (RSA of at least
 *    1024 bits; signatures are rsa-sha256: libopendkim 2.11 leaks memory on
 *    every Ed25519 signature, so Ed25519 keys are refused), checks it with
 *    OpenSSL and keeps it with selector and signing domain (d=). The
 *    handle owns a libopendkim library instance (no global state) and is
 *    used from one thread. mxg_rpt_dkim_sign() signs a built message
 *    (relaxed/relaxed; h= From, To, Subject, Date, Message-ID,
 *    MIME-Version, Content-Type, TLS-Report-Domain, TLS-Report-Submitter,
 *    Auto-Submitted, TLS-Required) and returns it with the DKIM-Signature
 *    header field prepended (CRLF, folded).
 *  - Functions return 0 or a negative mxg_rpt_err with err set; output
 *    buffers are malloc'd, the caller frees them. */
struct mxg_rpt_mail_msg {
    const char *from;          /* From: (also the envelope sender), local@domain */
    const char *to;            /* To: the rua address */
    const char *policy_domain; /* the report's policy domain */
    const char *submitter;     /* our domain (TLS-Report-Submitter, filename) */
    const char *org_name;      /* for the text part; NULL = submitter */
    const char *report_id;     /* as in the JSON */
    const char *day;           /* "YYYY-MM-DD": the report's UTC day */
    const char *gz;            /* the gzipped JSON report */
    size_t gz_len;
    int64_t date;              /* Date: in Unix seconds; <= 0: now */
};
int mxg_rpt_mail_build(const struct mxg_rpt_mail_msg *m, char **out, size_t *outlen, char *err,
                       size_t errlen);
int mxg_rpt_mail_filename(const char *submitter, const char *domain, const char *day, char *out,
                          size_t cap);
int mxg_rpt_mail_wire(const char *msg, size_t len, char **out, size_t *outlen);
#define MXG_RPT_ADDR_MAX 256
int mxg_rpt_mailto_parse(const char *rua, char addr[MXG_RPT_ADDR_MAX],
                         char domain[MXG_RPT_DOMAIN_MAX]);

struct mxg_rpt_dkim;
struct mxg_rpt_dkim *mxg_rpt_dkim_load(const char *key_file, const char *selector,
                                       const char *domain, char *err, size_t errlen);
void mxg_rpt_dkim_free(struct mxg_rpt_dkim *k);
const char *mxg_rpt_dkim_domain(const struct mxg_rpt_dkim *k);
int mxg_rpt_dkim_sign(struct mxg_rpt_dkim *k, const char *msg, size_t len, char **out,
                      size_t *outlen, char *err, size_t errlen);

/* The mailer: how the sender hands a report mail to the SMTP path.
 * send() copies what it needs from req and returns 0 with *handle set (cb
 * runs exactly once, later, from the loop) or -1 (cb never runs);
 * cancel(handle) before cb guarantees cb never runs. The delivery must use
 * opportunistic TLS and record no TLSRPT result (RFC 8460 §3;
 * docs/ARCHITECTURE.md §Report delivery). */
enum mxg_rpt_mail_result {
    MXG_RPT_MAIL_SENT = 0,     /* the MX accepted it (2xx after the dot) */
    MXG_RPT_MAIL_TEMPFAIL,     /* retried with backoff */
    MXG_RPT_MAIL_PERMFAIL,     /* 5xx: given up at once */
};
struct mxg_rpt_mail_req {
    const char *id;            /* for log lines, e.g. "tlsrpt-2024-05-01-example.com" */
    const char *from;          /* envelope sender */
    const char *to;            /* recipient address */
    const char *domain;        /* the recipient's domain (delivered by its MX) */
    const char *wire;          /* the message, dot-stuffed, CRLF, without ".\r\n" */
    size_t wire_len;
};
typedef void (*mxg_rpt_mail_cb)(void *arg, enum mxg_rpt_mail_result res, const char *why);
struct mxg_rpt_mailer {
    int (*send)(void *ctx, const struct mxg_rpt_mail_req *req, mxg_rpt_mail_cb cb, void *arg,
                void **handle);
    void (*cancel)(void *ctx, void *handle);
    void *ctx;
};

/* Enables mailto: delivery for sender s: mailer m (copied; NULL = none),
 * DKIM key dk (borrowed: must outlive s; NULL = no key) and the report
 * address from ("" or NULL: noreply-smtp-tls-reporting@SUBMITTER; copied).
 * Without mailer or key, a pending mailto: row is closed as gave-up,
 * "skipped: ..." (attempts unchanged), with one NOTICE line, counted in
 * skipped — not retried: a day's report is useful only shortly after the
 * day, and a key configured later signs the following days' reports.
 * With both, every pending mailto: rua of a (day, domain) gets the report
 * mail (built, signed, dot-stuffed per rua) through m; the outcome feeds
 * the delivery row as a POST's does (sent; failure → backoff and retry,
 * gave-up after max_attempts), except that a permanent (5xx) failure
 * gives up at once. An unusable mailto: URI is skipped (gave-up). */
void mxg_rpt_sender_set_mail(struct mxg_rpt_sender *s, const struct mxg_rpt_mailer *m,
                             struct mxg_rpt_dkim *dk, const char *from);

/* Count every delivery outcome (sent / retry / gave_up) in m
 * (core/metrics.h, family MXG_M_REPORTS_SENT); m borrowed, NULL = none. */
struct mxg_metrics;
void mxg_rpt_sender_set_metrics(struct mxg_rpt_sender *s, struct mxg_metrics *m);

/* ================================================================
 * END report mail
 * ================================================================ */

#endif
