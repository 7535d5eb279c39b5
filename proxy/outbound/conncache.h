/* proxy/outbound/conncache.h — the upstream connection cache and the
 * upstream connection limits (docs/ARCHITECTURE.md §Reuse).
 *
 * One object per process (struct mxg_upstream_env.conncache), shared by
 * every leg. It knows nothing of SMTP, TLS or sockets: a connection is an
 * opaque pointer owned by the leg (proxy/outbound/leg*.c), and the cache only decides
 * *which* connection a leg may use and *when* it may open a new one.
 *
 * Destinations and slots. A destination is one MX address + port (the
 * resource the limits protect: domains hosted on one MX share its limits).
 * Every open upstream TCP connection (connecting, in a transaction, or idle
 * in the cache) holds one *slot*; the slot is released when the socket is
 * closed (mxg_conncache_release). Limits, all 0 = unlimited:
 *   dest_concurrency  slots per destination (what the MX sees at once)
 *   dest_rate         new connections per second per destination (a token
 *                     bucket of dest_rate tokens; reuse costs nothing)
 *   max_conns         slots in total
 * A leg that finds no slot waits (FIFO per destination) at most wait_ms,
 * then gets MXG_CC_LIMITED (451 4.7.0); wait_ms 0 = never wait.
 *
 * Idle connections. After a transaction a leg may park its connection
 * (mxg_conncache_park) under its *requirement key* (struct mxg_cc_key: a
 * digest of everything the security of the connection depends on — policy
 * source and level, reference names, TLSA set, STS policy id; built by the
 * caller). A later acquire for the same destination AND the same key gets
 * it back (MXG_CC_REUSED); anything else never sees it. Bounds: idle_ms
 * (0 = no caching at all), max_idle in total and max_idle_per_dest (the
 * oldest idle one is closed to make room), max_uses transactions per
 * connection, lifetime_ms since the connection was opened. An idle
 * connection whose destination is full while other legs wait for a slot
 * there (or globally) is closed to make room for them.
 *
 * Busy connections. When no idle connection of the key is there but one of
 * the key is in use at the destination (connecting or in a transaction) and
 * may be parked after it, the leg waits for it up to busy_wait_ms
 * (upstream.cache_busy_wait; 0 = open another at once): parked, it is the
 * leg's (REUSED); closed instead, or the time over, the leg gets a new
 * connection like any acquire (FRESH, or the slot queue / LIMITED under the
 * limits). Concurrent transactions to one domain thus share a connection
 * instead of each opening one (and, at a full destination, closing another
 * key's idle connection to make room). At most busy_waiters legs
 * (upstream.cache_busy_waiters; 0 = nobody waits) wait at once per
 * destination and key; more arrivals open another connection at once, so
 * the wait absorbs the occasional collision of two transactions (mail to
 * many domains) without queueing a burst to one hot domain behind its
 * connections. The owner takes a connection it
 * will not park out of that set as soon as it knows
 * (mxg_conncache_no_park: a plaintext retry, a transaction that failed, a
 * QUIT), so no leg waits busy_wait for it in vain.
 *
 * Callbacks: ops->close(conn, lost) is how the cache gives an idle
 * connection up: the owner closes it (with QUIT when lost == 0) and calls
 * mxg_conncache_release() for its slot once the socket is closed — never
 * synchronously from inside ops->close (from the close callback, say).
 * ops->close may run inside park/acquire/lost/shutdown and from the loop.
 * A waiter's cb runs exactly once, always from a loop callback (never from
 * inside acquire), unless mxg_conncache_cancel() was called first.
 * Nothing here calls back into the caller otherwise.
 *
 * Ownership: the cache owns its destinations, slots and waiters; conn
 * pointers are borrowed (the cache holds them only while idle). A slot
 * belongs to the connection it was granted for until released.
 * Teardown: mxg_conncache_shutdown() (closes idle connections, refuses new
 * parking, stops the timer; idempotent), run the loop until every handle
 * is closed (slots are released from close callbacks), then
 * mxg_conncache_free(). */
#ifndef MXG_CONNCACHE_H
#define MXG_CONNCACHE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

struct mxg_conncache_cfg {
    uint64_t idle_ms;      /* upstream.cache_idle: 0 = no connection caching */
    int max_idle;          /* upstream.cache_size: idle connections in total */
    int max_idle_per_dest; /* upstream.cache_per_destination */
    int max_uses;          /* upstream.cache_max_uses: transactions per connection (0 = no cap) */
    uint64_t lifetime_ms;  /* upstream.cache_lifetime: since connect (0 = no cap) */
    int dest_concurrency;  /* limits.destination_concurrency (0 = unlimited) */
    int dest_rate;         /* limits.destination_rate: new connections/s (0 = unlimited) */
    int max_conns;         /* limits.upstream_connections (0 = unlimited) */
    uint64_t wait_ms;      /* limits.connection_wait: 0 = refuse at once */
    uint64_t busy_wait_ms; /* upstream.cache_busy_wait: wait for a busy connection of the key */
    int busy_waiters;      /* upstream.cache_busy_waiters: such waits at once per dest and key */
};

/* The requirement key: a SHA-256 over a canonical description. */
struct mxg_cc_key {
    unsigned char d[32];
};
struct mxg_conncache;
/* The key of desc[0..len), through cc's digest memo (NULL: computed). */
void mxg_cc_key_make(struct mxg_conncache *cc, const void *desc, size_t len,
                     struct mxg_cc_key *out);
/* The cache's memo of SHA-256 digests by their octets (policy/digest_memo.h),
 * for the requirement digests of the legs that use it; NULL when cc is NULL
 * or the memo could not be made (digests are then computed each time). */
struct mxg_digest_memo *mxg_conncache_digest_memo(struct mxg_conncache *cc);

struct mxg_cc_slot;
struct mxg_cc_wait;

struct mxg_cc_ops {
    void (*close)(void *conn, int lost);
};

enum mxg_cc_status {
    MXG_CC_LIMITED = -1, /* no slot (and no waiting, or the wait timed out) */
    MXG_CC_FRESH = 0,    /* open a new connection with this slot */
    MXG_CC_REUSED = 1,   /* an idle connection, now the caller's (with its slot) */
    MXG_CC_WAIT = 2,     /* acquire only: the answer comes through cb */
};

struct mxg_cc_grant {
    enum mxg_cc_status status;
    struct mxg_cc_slot *slot; /* FRESH, REUSED */
    void *conn;               /* REUSED */
    int uses;                 /* transactions on it before this one (REUSED) */
    const char *why;          /* LIMITED: "destination concurrency limit 20 reached", ... */
};

typedef void (*mxg_cc_cb)(void *arg, const struct mxg_cc_grant *g);

/* cfg is copied. NULL on out of memory. */
struct mxg_conncache *mxg_conncache_new(uv_loop_t *loop, const struct mxg_conncache_cfg *cfg,
                                        const struct mxg_cc_ops *ops);
/* Apply new bounds (SIGHUP). Every idle connection is closed: it was set
 * up under the old settings (CA file, client certificate, ...). The
 * settings generation goes up by one: a connection whose slot was granted
 * before (in use during the reload) is never parked afterwards
 * (mxg_conncache_park returns -1), and callers put the generation into
 * their TLS session keys, so no session of the old settings is resumed. */
void mxg_conncache_reconfigure(struct mxg_conncache *cc, const struct mxg_conncache_cfg *cfg);
/* The settings generation: 0 at creation, +1 per reconfigure (0 for NULL). */
uint64_t mxg_conncache_generation(const struct mxg_conncache *cc);
void mxg_conncache_shutdown(struct mxg_conncache *cc);
void mxg_conncache_free(struct mxg_conncache *cc);

/* A connection to dest (AF_INET/AF_INET6 with port) under key. allow_reuse
 * 0: a fresh connection is wanted (the idle one just failed). owner: whose
 * transaction it is for (NULL = nobody's): a leg never waits for a busy
 * connection of its own owner (another leg of its transaction). Returns the
 * status; *now is filled for FRESH / REUSED / LIMITED; for WAIT, *w is the
 * wait (cancel it with mxg_conncache_cancel) and cb gets the grant later. */
enum mxg_cc_status mxg_conncache_acquire(struct mxg_conncache *cc, const struct sockaddr *dest,
                                         const struct mxg_cc_key *key, int allow_reuse,
                                         const void *owner, mxg_cc_cb cb, void *arg,
                                         struct mxg_cc_wait **w, struct mxg_cc_grant *now);
void mxg_conncache_cancel(struct mxg_conncache *cc, struct mxg_cc_wait *w);

/* The transaction on slot's connection is over and the connection is clean
 * (no command outstanding): keep it idle under key. Returns 0 (the cache
 * holds conn now; it comes back through acquire or ops->close), or -1 (not
 * kept: caching off, shut down, too many uses, too old, granted under an
 * older settings generation, marked by mxg_conncache_no_park — the caller
 * closes it as usual and releases the slot). */
int mxg_conncache_park(struct mxg_conncache *cc, struct mxg_cc_slot *slot,
                       const struct mxg_cc_key *key, void *conn);
/* Slot's connection (in use, not idle) will not be parked: a TLS failure
 * retried in plaintext, unread input, a QUIT or close ahead. It leaves the
 * busy set at once (legs waiting for it get a new connection or a slot
 * wait now, from the loop) and mxg_conncache_park refuses it from now on.
 * No-op for NULL or an idle slot; idempotent. */
void mxg_conncache_no_park(struct mxg_conncache *cc, struct mxg_cc_slot *slot);
/* The owner saw an idle connection close or misbehave: forget it and have
 * it closed (ops->close(conn, 1)). No-op for a slot that is not idle. */
void mxg_conncache_lost(struct mxg_conncache *cc, struct mxg_cc_slot *slot);
/* The socket of slot's connection is closed: the slot is free (slot may be
 * NULL: no-op). */
void mxg_conncache_release(struct mxg_conncache *cc, struct mxg_cc_slot *slot);

/* Figures for logs, metrics and tests. */
struct mxg_conncache_stats {
    int open;         /* slots held */
    int idle;         /* of which idle in the cache */
    int waiting;      /* legs waiting for a slot */
    int dests;        /* destinations known */
    uint64_t fresh, reused, limited, waited, expired, evicted, lost;
    uint64_t busy_waited, busy_served; /* waits for a busy connection; of them reused */
    uint64_t busy_timeouts;            /* of them over after busy_wait (then a new connection) */
    uint64_t busy_bounded;             /* no wait: busy_waiters legs waited at the pair already */
};
void mxg_conncache_stats(const struct mxg_conncache *cc, struct mxg_conncache_stats *out);
struct mxg_metrics;
/* Count the busy waits (busy_waited, busy_served, busy_timeouts, busy_bounded) also
 * in m's mxguard_upstream_busy_waits_total{result} (core/metrics.h) from now on;
 * m borrowed (it outlives cc), NULL: no longer. */
void mxg_conncache_set_metrics(struct mxg_conncache *cc, struct mxg_metrics *m);
/* Slots held at dest (for tests). */
int mxg_conncache_dest_open(const struct mxg_conncache *cc, const struct sockaddr *dest);
/* Whether caching is on (idle_ms > 0 and not shut down). */
int mxg_conncache_enabled(const struct mxg_conncache *cc);

#endif
