/* proxy/inbound/server.h — the inbound side: listeners, the client ACL, the session
 * registry and the SIGTERM drain.
 *
 * Contract:
 *  - mxg_server_start() makes a listener handle for every cfg->listen, then
 *    cfg->queue_listen endpoint on the loop (bound, or the given listen_fds)
 *    without listening: a client's connection attempt is still refused.
 *    Returns 0, or -1 with err (nothing left bound, listen_fds closed).
 *  - mxg_server_listen(), once the owner can serve (every start-up check
 *    passed, nothing left that may fail), listens and accepts clients. A
 *    client outside cfg->allow gets "554 5.7.1" and is disconnected (one log
 *    line); over cfg->max_sessions gets "421 4.7.0". Returns 0, or -1 with err
 *    (every listener closed: the owner must stop).
 *  - mxg_server_drain() stops accepting, lets sessions finish their current
 *    transaction (an idle session gets 421 4.3.2 at its next command), and
 *    closes whatever is left after cfg->drain_timeout_ms. on_drained runs once
 *    when the last session is gone. Called again while draining (a second
 *    SIGTERM), it closes what is left at once (the same on_drained).
 *  - The server borrows cfg and the parts (any may be NULL in tests that open no
 *    leg); they must outlive it.
 *  - server.c calls into session.c (start, drain, kill); sessions reach the
 *    server only through server_sessions.c and the on_session_gone hook, never
 *    into server.c (no link cycle between the two files). */
#ifndef MXG_SERVER_H
#define MXG_SERVER_H

#include <uv.h>

#include "../../core/config.h"
#include "../../tls/tls_engine.h"
#include "../outbound/upstream.h"

struct mxg_session;
struct mxg_spool;

/* What a listener does with a client's mail (server.listen / server.queue_listen). */
enum mxg_listen_mode { MXG_MODE_PROXY = 0, MXG_MODE_QUEUE };

struct mxg_server {
    uv_loop_t *loop;
    const struct mxg_config *cfg;
    struct mxg_upstream_env upenv;
    struct sockaddr_storage self[MXG_CFG_MAX_LISTEN + 64];
    uv_tcp_t listeners[2 * MXG_CFG_MAX_LISTEN];
    enum mxg_listen_mode listen_mode[2 * MXG_CFG_MAX_LISTEN];
    int n_listeners;
    char hostname[256];
    struct mxg_session *sessions; /* doubly linked list of live sessions */
    int n_sessions;
    int peak_sessions; /* highest n_sessions since it was last zero */
    unsigned long next_id;
    int draining;
    uv_timer_t drain_timer;
    void (*on_drained)(struct mxg_server *srv);
    /* Set by mxg_server_start(): run by mxg_server_session_gone() after every
     * session has gone (the drain's completion check). */
    void (*on_session_gone)(struct mxg_server *srv);
    /* The spool (NULL: none; then multi-leg transactions are limited to one
     * leg and queue-mode listeners refuse mail with 451 4.3.2) and the hook
     * that tells its queue runner an entry was committed. Set by the owner
     * (before or after mxg_server_start(), which keeps them); borrowed. */
    struct mxg_spool *spool;
    void (*spool_kick)(void *arg);
    void *spool_kick_arg;
    /* Inbound security (proxy/inbound/auth.h), set by the owner like the spool and
     * borrowed (replaceable between callbacks, e.g. on SIGHUP: sessions take
     * what they need when they use it): the STARTTLS context (NULL: no
     * STARTTLS) and the password database (NULL: no AUTH). */
    struct mxg_tls_ctx *tls_server;
    struct mxg_auth_db *auth_db;
    /* Failed AUTH attempts (owned; made at the first failure, freed when
     * the drain has finished). */
    struct mxg_auth_throttle *auth_throttle;
    /* Addresses that authenticated as a user (auth.trusted_address_lifetime;
     * owned, made on first use with its file in state.directory, freed when
     * the drain has finished). */
    struct mxg_auth_throttle *auth_trust;
    struct mxg_auth_trust_store *auth_trust_store;
    int auth_trust_loaded; /* the store was opened and read into auth_trust */
    /* Worker processes (app/run_workers.c), set by the owner before
     * mxg_server_start(), which keeps them: listen_fds holds one socket per
     * cfg->listen then cfg->queue_listen endpoint, already bound (app/listeners.h),
     * used instead of binding (NULL: bind); mxg_server_start() owns the sockets
     * from then on (closed with the listeners, or at once on failure); auth_throttle and
     * auth_trust may be preset to tables shared by the workers
     * (mxg_auth_throttle_new_shared), so the AUTH limits hold across them;
     * n_workers and worker make session ids unique across them. */
    const int *listen_fds;
    int n_workers, worker; /* n_workers > 1: session ids carry the worker index */
    /* Tests only, set before mxg_server_start() (which keeps it): allocates the
     * reply octets a session keeps until the client's socket takes them (freed
     * with free()); NULL: malloc. A test returns NULL to see a reply that cannot
     * be queued (the session closes: session.c). */
    void *(*test_out_alloc)(size_t n);
};

/* parts: dns, tls, sts, stlist for the upstream legs (loop and cfg are
 * taken from the arguments; self addresses are filled in here). */
int mxg_server_start(struct mxg_server *srv, uv_loop_t *loop, const struct mxg_config *cfg,
                     const struct mxg_upstream_env *parts, char *err, size_t errlen);
int mxg_server_listen(struct mxg_server *srv, char *err, size_t errlen);
void mxg_server_drain(struct mxg_server *srv, void (*on_drained)(struct mxg_server *srv));

/* server_sessions.c. Called by sessions (session.c), after the session unlinked and
 * freed itself. When the last session of a burst is gone (the count had
 * passed MXG_SERVER_TRIM_PEAK since the last time it was zero), the heap's
 * free pages go back to the kernel (malloc_trim): glibc would otherwise keep
 * the burst's peak resident for good, which a small appliance cannot spare. */
#define MXG_SERVER_TRIM_PEAK 64
void mxg_server_session_gone(struct mxg_server *srv);
/* Called by sessions when they are created (after counting themselves). */
void mxg_server_session_added(struct mxg_server *srv);
/* The throttle table, made on first use with auth.throttle_entries; NULL only
 * when out of memory. */
struct mxg_auth_throttle *mxg_server_throttle(struct mxg_server *srv);
/* The trusted-address table, made on first use with auth.trusted_addresses
 * and filled from state.directory/auth-trust.db (*store: that file, NULL
 * when it cannot be used). NULL only when out of memory. */
struct mxg_auth_throttle *mxg_server_trust(struct mxg_server *srv,
                                           struct mxg_auth_trust_store **store);

#endif
