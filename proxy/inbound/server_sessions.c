/* proxy/inbound/server_sessions.c — the server's state that sessions use: the
 * count and peak of live sessions (heap trim after a burst) and the AUTH tables made
 * on first use. Sessions call these; the server reaches back only through
 * srv->on_session_gone, so server.c and session.c do not call each other both ways
 * (contract: server.h). */
#include "server.h"

#ifdef __GLIBC__
#include <malloc.h> /* malloc_trim */
#endif
#include <time.h>

#include "../../core/log.h"
#include "auth.h"

void mxg_server_session_added(struct mxg_server *srv)
{
    if (srv->n_sessions > srv->peak_sessions)
        srv->peak_sessions = srv->n_sessions;
}

void mxg_server_session_gone(struct mxg_server *srv)
{
    if (srv->n_sessions == 0) {
        if (srv->peak_sessions > MXG_SERVER_TRIM_PEAK) {
#ifdef __GLIBC__
            malloc_trim(0);
#endif
            LOG_D("server", "idle after a burst of %d sessions: free heap returned to the kernel",
                  srv->peak_sessions);
        }
        srv->peak_sessions = 0;
    }
    if (srv->on_session_gone)
        srv->on_session_gone(srv);
}

struct mxg_auth_throttle *mxg_server_throttle(struct mxg_server *srv)
{
    if (!srv->auth_throttle)
        srv->auth_throttle = mxg_auth_throttle_new(srv->cfg->auth_throttle_entries);
    return srv->auth_throttle;
}

struct mxg_auth_throttle *mxg_server_trust(struct mxg_server *srv,
                                           struct mxg_auth_trust_store **store)
{
    const struct mxg_config *cfg = srv->cfg;
    if (!srv->auth_trust || !srv->auth_trust_loaded) {
        if (!srv->auth_trust) /* else: preset, shared by the worker processes */
            srv->auth_trust = mxg_auth_throttle_new(cfg->auth_trusted_entries);
        srv->auth_trust_loaded = srv->auth_trust != NULL;
        char err[512];
        srv->auth_trust_store = srv->auth_trust && cfg->auth_trusted_lifetime_ms
                                    ? mxg_auth_trust_store_open(cfg->state_dir,
                                                                cfg->auth_trusted_entries, err,
                                                                sizeof err)
                                    : NULL;
        if (srv->auth_trust && cfg->auth_trusted_lifetime_ms && !srv->auth_trust_store)
            LOG_W("auth", "trusted addresses kept in memory only (forgotten on restart): %s", err);
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        int n = mxg_auth_trust_store_load(srv->auth_trust_store, srv->auth_trust,
                                          (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000,
                                          cfg->auth_trusted_lifetime_ms);
        if (n > 0)
            LOG_I("auth", "%d trusted address%s of authenticated users loaded", n,
                  n == 1 ? "" : "es");
    }
    if (store)
        *store = srv->auth_trust_store;
    return srv->auth_trust;
}
