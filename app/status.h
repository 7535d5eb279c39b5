/* app/status.h — the read-only status page on the metrics listener
 * (GET/HEAD /status and /status/domain/NAME; app/metrics_http.c routes
 * them). One job per file:
 *
 *   status_esc.c    escaping: HTML text and attributes, URL path segments
 *   status_auth.c   who may look: loopback clients, or HTTP basic auth
 *                   against metrics.status_credentials_file (constant time)
 *   status_track.c  today's destinations: a tally per domain fed by every
 *                   finished delivery leg (proxy/outbound/upstream.h
 *                   struct mxg_leg_watch), with the last decision text,
 *                   written into a table other processes may read
 *                   (status_table.h: each worker's slot of the shared
 *                   mapping)
 *   status_merge.c  every worker's tally merged for the page (lock-free)
 *   status_svg.c    the TLS-outcomes-per-day chart as SVG from a table
 *   status_data.c   collecting the health, the spool and the chart's days
 *                   from in-memory state and the local stores
 *   status_html.c   rendering the pages
 *   status.c        the pages' router (URL → page, HTTP code)
 *
 * Contract: everything runs on the loop thread, off the SMTP path (a page
 * is built when it is asked for). A page view reads memory (with
 * server.workers > 1, every worker's tally in the shared mapping, without a
 * lock: status_table.h), the spool's envelopes and the TLSRPT store; it
 * never waits for another process, never starts a DNS lookup, a policy
 * fetch or a write to any cache or store. Every string that came from
 * DNS, a policy, a peer or the network goes through mxg_status_esc()
 * (the pages carry no script). Errors: int functions return 0 or -1
 * (out of memory) unless stated; buffers are struct mxg_buf (core/buf.h),
 * appended to, owned by the caller. */
#ifndef MXG_STATUS_H
#define MXG_STATUS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "../core/buf.h"
#include "../proxy/outbound/upstream.h"

/* ------------------------------------------------------------ status_esc.c */

/* Append s as HTML text (also safe inside a double- or single-quoted
 * attribute): & < > " ' become entities; well-formed UTF-8 characters stay;
 * control octets (but newline), DEL and every octet of a malformed UTF-8
 * sequence become '?' (the page is valid UTF-8 whatever a peer sent).
 * NULL: nothing. */
int mxg_status_esc(struct mxg_buf *b, const char *s);
/* Append s as one URL path segment: [A-Za-z0-9.-_] as they are, every
 * other octet %XX. */
int mxg_status_esc_path(struct mxg_buf *b, const char *s);
/* 1 when name (a domain page's name: the rest of the path, already
 * %-decoded by the HTTP parser) is 1..255 octets without control octets. */
int mxg_status_name_ok(const char *name);

/* ----------------------------------------------------------- status_auth.c */

#define MXG_STATUS_CREDS_MAX 16

/* The accepted "user:password" pairs, kept as SHA-256 digests. */
struct mxg_status_creds {
    int n;
    unsigned char digest[MXG_STATUS_CREDS_MAX][32];
};

/* Read path: one "user:password" per line (empty lines and lines starting
 * with '#' skipped; at most MXG_STATUS_CREDS_MAX). 0, or -1 with err
 * (unreadable, no pair, a line without ':'). */
int mxg_status_creds_load(const char *path, struct mxg_status_creds *c, char *err, size_t errlen);
/* 1 when the Authorization header value ("Basic BASE64") names one of the
 * pairs, else 0 (NULL, malformed, wrong). Every pair is compared, each in
 * constant time (CRYPTO_memcmp of digests). */
int mxg_status_auth_check(const struct mxg_status_creds *c, const char *authorization);
/* 1 when sa is a loopback address (127.0.0.0/8, ::1, ::ffff:127.0.0.0/104). */
int mxg_status_client_loopback(const struct sockaddr *sa);

/* ---------------------------------------------------------- status_track.c */

/* The policy source a destination was delivered under (the page's
 * groups), from the requirement of its last decided MX host. */
enum mxg_status_src {
    MXG_ST_DANE = 0,
    MXG_ST_STS_ENFORCE,
    MXG_ST_TESTING,     /* MTA-STS or policy list in testing mode */
    MXG_ST_LIST,        /* policy list, enforce */
    MXG_ST_OVERRIDE,    /* tls.policy_map */
    MXG_ST_OPPORTUNISTIC,
    MXG_ST_UNDECIDED,   /* no MX host was decided (the MX lookup failed, ...) */
    MXG_ST_N
};
const char *mxg_status_src_name(enum mxg_status_src s);
enum mxg_status_src mxg_status_src_of(const struct mxg_req *r); /* r may be NULL */

#define MXG_STATUS_REASON_MAX 600
#define MXG_STATUS_DECISION_MAX 16384
#define MXG_STATUS_MAX_DOMAINS 2000 /* per day; further domains are counted as "others" */

/* One destination domain today (a row of the page: a merge of every
 * worker's tally, status_merge.c). */
struct mxg_status_dest {
    char domain[MXG_DNS_NAME_MAX];
    enum mxg_status_src src;             /* of the latest leg of any worker */
    uint64_t ok, fail;                   /* summed over the workers */
    int64_t last_at, last_fail_at;       /* Unix seconds; 0 = never */
    char last_fail[MXG_STATUS_REASON_MAX]; /* "451 4.7.5 DANE: ..." (the latest of any worker) */
    char *decision;                      /* owned: the last decision (mxg_leg_describe); NULL
                                          * in a list, or when no worker keeps it any more */
    int64_t decision_at;
};

/* One writer's tally in memory others may read (app/status_table.h). */
struct mxg_status_table;
/* Octets of a table (its memory must be zeroed before first use). */
size_t mxg_status_table_size(void);

struct mxg_status_track;

/* The writer of a tally for the UTC day of now (Unix seconds), in table
 * (mxg_status_table_size() octets, zeroed or left by an earlier writer:
 * with workers, the worker's slot of the shared mapping), or, table NULL,
 * in one of its own. What an earlier writer left there for today is
 * adopted (a restarted worker goes on counting); an entry or note it was
 * writing when it died is retired (that domain's legs of this worker
 * before the death are lost; *retired, when not NULL, gets how many). NULL:
 * out of memory. */
struct mxg_status_track *mxg_status_track_new(int64_t now, struct mxg_status_table *table,
                                              int *retired);
void mxg_status_track_free(struct mxg_status_track *t); /* t may be NULL; a given table stays */
/* The table t writes (its own or the one given). */
struct mxg_status_table *mxg_status_track_table(struct mxg_status_track *t);
/* The observer to put into struct mxg_upstream_env.watch (lives as long as t). */
const struct mxg_leg_watch *mxg_status_track_watch(struct mxg_status_track *t);
/* Count one finished leg at time now (what the watch does, with time(NULL)).
 * The tally starts afresh when now is on another UTC day; a domain beyond
 * MXG_STATUS_MAX_DOMAINS is counted in others. Never blocks: the table is
 * written under its own sequence numbers, no lock. */
void mxg_status_track_add(struct mxg_status_track *t, const struct mxg_leg_outcome *o,
                          int64_t now);

/* --------------------------------------------------------- status_merge.c */

/* Today's destinations of several tallies merged (every worker's). */
struct mxg_status_merged {
    int n;
    struct mxg_status_dest *dest;        /* n, owned */
    const struct mxg_status_dest **sorted; /* n: by source group, then domain */
    uint64_t others;  /* legs not listed: beyond MXG_STATUS_MAX_DOMAINS in a tally, or in
                       * the merge (failing domains are merged first, so they are listed) */
    int skipped;      /* records being written on every try (or whose writer died then) */
};

/* Merge the n tables' entries of the UTC day of now (lock-free reads: never
 * waits on a writer). only NULL: every domain, without decision texts;
 * else only that domain (case-insensitive), with the latest decision text
 * any worker still keeps for it (each keeps MXG_STATUS_NOTES domains'). A
 * table may be NULL (skipped). NULL: out of memory. */
struct mxg_status_merged *mxg_status_merge(struct mxg_status_table *const *tables, int n,
                                           int64_t now, const char *only);
void mxg_status_merged_free(struct mxg_status_merged *m); /* m may be NULL */

/* ------------------------------------------------------------ status_svg.c */

#define MXG_STATUS_DAYS 30

/* One UTC day of TLS session outcomes (the TLSRPT store's totals). */
struct mxg_status_day {
    char day[11]; /* "YYYY-MM-DD" */
    uint64_t ok, fail;
};

/* Append an <svg> element: one stacked bar per day (successes green,
 * failures red above them), a y axis with a rounded maximum, the first,
 * middle and last dates under the bars, a <title> per bar naming the day
 * and both counts (hover text without script). n may be 0. */
int mxg_status_svg(struct mxg_buf *b, const struct mxg_status_day *days, int n);

/* ----------------------------------------------------------- status_data.c */

struct app;

/* What the main page shows besides the destinations. */
struct mxg_status_view {
    int64_t now;
    const char *version;
    int n_workers;                  /* the tallies merged (server.workers; 1: one process) */
    /* health */
    const char *dns_mode;           /* "stub", "recursive", ... (dns/ and core/config) */
    char dns_servers[300];
    int dane_enabled;
    int dnssec_state;               /* 1 passed, 0 failed, -1 resolver unreachable, 2 not checked */
    char dnssec_why[300];
    const char *db_backend;         /* "sqlite" or "postgresql" (state.backend) */
    char db_link[300];              /* postgresql: "up", "down: why", ...; "" for sqlite */
    int db_down;                    /* postgresql and the last sync failed */
    int list_configured, list_have, list_expired;
    int64_t list_timestamp, list_expires, list_loaded_at;
    int list_policies;
    char list_source[300];
    unsigned reload_gen;
    int64_t reload_at, started_at;
    /* spool */
    int spool_open;
    int spool_count, spool_unread;  /* entries; entries whose envelope could not be read */
    int64_t spool_oldest_ms, spool_next_ms; /* 0: none */
    /* chart */
    int rpt_open;
    int rpt_error;
    struct mxg_status_day days[MXG_STATUS_DAYS];
};

/* Fill v from app's memory and local stores at time now (no lookup, no write). */
void mxg_status_collect(struct app *app, int64_t now, struct mxg_status_view *v);
/* The DNS mode's name as dns/ runs it (one place to adapt when modes change). */
const char *mxg_status_dns_mode(const struct mxg_config *cfg);
/* The state database backend's name (one place to adapt: "sqlite" today). */
const char *mxg_status_db_backend(const struct mxg_config *cfg);

/* ----------------------------------------------------------- status_html.c */

/* The main page (HTML5, no script): m's destinations (mxg_status_merge). */
int mxg_status_html_main(struct mxg_buf *b, const struct mxg_status_view *v,
                         const struct mxg_status_merged *m);
/* One domain's page: d NULL = not seen today (name is then shown escaped). */
int mxg_status_html_domain(struct mxg_buf *b, const char *name, const struct mxg_status_dest *d,
                           int64_t now);

/* ---------------------------------------------------------------- status.c */

/* Build the page for url ("/status", "/status/", "/status/domain/NAME")
 * into out: returns the HTTP status (200, 404, 500). */
int mxg_status_serve(struct app *app, const char *url, struct mxg_buf *out);

#endif
