/* proxy/inbound/server.c — listeners, ACL, session registry, drain; see server.h. */
#include "server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../../core/log.h"
#include "auth.h"
#include "session.h"

static int acl_allows(const struct mxg_config *cfg, const struct sockaddr *sa)
{
    for (int i = 0; i < cfg->n_allow; i++)
        if (mxg_cidr_match(&cfg->allow[i], sa))
            return 1;
    return 0;
}

static void on_accept(uv_stream_t *listener, int status)
{
    struct mxg_server *srv = listener->data;
    if (status < 0) {
        LOG_W("server", "accept failed: %s", uv_strerror(status));
        return;
    }
    uv_tcp_t *client = malloc(sizeof *client);
    if (!client)
        return;
    uv_tcp_init(srv->loop, client);
    if (uv_accept(listener, (uv_stream_t *)client) != 0) {
        uv_close((uv_handle_t *)client, (uv_close_cb)free);
        return;
    }
    uv_tcp_nodelay(client, 1);
    struct sockaddr_storage ss;
    int len = sizeof ss;
    int ok = uv_tcp_getpeername(client, (struct sockaddr *)&ss, &len) == 0 &&
             acl_allows(srv->cfg, (struct sockaddr *)&ss);
    int over = srv->n_sessions >= srv->cfg->max_sessions;
    mxg_metrics_inc(srv->upenv.metrics, ok && !over ? MXG_M_SESSIONS_TOTAL : MXG_M_CONN_REJECTED,
                    !ok ? "not_allowed" : "max_sessions");
    int li = (int)((uv_tcp_t *)listener - srv->listeners);
    mxg_session_start(srv, client, srv->listen_mode[li] == MXG_MODE_QUEUE, ok, over);
}

/* Our own addresses, for loop protection: every listener address, plus every
 * interface address when a listener is a wildcard. */
static void collect_self(struct mxg_server *srv)
{
    int n = 0, wildcard = 0;
    const int cap = (int)(sizeof srv->self / sizeof srv->self[0]);
    const struct mxg_config *cfg = srv->cfg;
    for (int i = 0; i < cfg->n_listen + cfg->n_queue_listen && n < cap; i++) {
        const struct sockaddr_storage *a =
            i < cfg->n_listen ? &cfg->listen[i].sa : &cfg->queue_listen[i - cfg->n_listen].sa;
        if ((a->ss_family == AF_INET &&
             ((const struct sockaddr_in *)a)->sin_addr.s_addr == htonl(INADDR_ANY)) ||
            (a->ss_family == AF_INET6 &&
             memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr, &in6addr_any, 16) == 0))
            wildcard = 1;
        else
            srv->self[n++] = *a;
    }
    if (wildcard) {
        uv_interface_address_t *ifs;
        int count;
        if (uv_interface_addresses(&ifs, &count) == 0) {
            for (int i = 0; i < count && n < cap; i++) {
                memset(&srv->self[n], 0, sizeof srv->self[n]);
                if (ifs[i].address.address4.sin_family == AF_INET)
                    memcpy(&srv->self[n++], &ifs[i].address.address4, sizeof ifs[i].address.address4);
                else
                    memcpy(&srv->self[n++], &ifs[i].address.address6, sizeof ifs[i].address.address6);
            }
            uv_free_interface_addresses(ifs, count);
        }
    }
    srv->upenv.self = srv->self;
    srv->upenv.n_self = n;
}

static void drain_check(struct mxg_server *srv);

int mxg_server_start(struct mxg_server *srv, uv_loop_t *loop, const struct mxg_config *cfg,
                     const struct mxg_upstream_env *parts, char *err, size_t errlen)
{
    struct mxg_spool *spool = srv->spool; /* set by the owner before or after start */
    void (*kick)(void *) = srv->spool_kick;
    void *kick_arg = srv->spool_kick_arg;
    struct mxg_tls_ctx *tls_server = srv->tls_server;
    struct mxg_auth_db *auth_db = srv->auth_db;
    struct mxg_auth_throttle *throttle = srv->auth_throttle, *trust = srv->auth_trust;
    const int *listen_fds = srv->listen_fds;
    int n_workers = srv->n_workers, worker = srv->worker;
    void *(*test_out_alloc)(size_t) = srv->test_out_alloc;
    memset(srv, 0, sizeof *srv);
    srv->test_out_alloc = test_out_alloc;
    srv->n_workers = n_workers;
    srv->worker = worker;
    srv->auth_throttle = throttle;
    srv->auth_trust = trust;
    srv->listen_fds = listen_fds;
    srv->spool = spool;
    srv->spool_kick = kick;
    srv->spool_kick_arg = kick_arg;
    srv->tls_server = tls_server;
    srv->auth_db = auth_db;
    srv->on_session_gone = drain_check;
    srv->loop = loop;
    srv->cfg = cfg;
    if (cfg->hostname[0])
        snprintf(srv->hostname, sizeof srv->hostname, "%s", cfg->hostname);
    else if (gethostname(srv->hostname, sizeof srv->hostname - 1) != 0)
        snprintf(srv->hostname, sizeof srv->hostname, "localhost");
    if (parts)
        srv->upenv = *parts;
    srv->upenv.loop = loop;
    srv->upenv.cfg = cfg;
    collect_self(srv);
    uv_timer_init(loop, &srv->drain_timer);
    srv->drain_timer.data = srv;
    for (int i = 0; i < cfg->n_listen + cfg->n_queue_listen; i++) {
        int q = i >= cfg->n_listen;
        const struct mxg_endpoint *ep = q ? &cfg->queue_listen[i - cfg->n_listen] : &cfg->listen[i];
        uv_tcp_t *l = &srv->listeners[i];
        uv_tcp_init(loop, l);
        l->data = srv;
        srv->listen_mode[i] = q ? MXG_MODE_QUEUE : MXG_MODE_PROXY;
        srv->n_listeners++;
        int rc = listen_fds ? uv_tcp_open(l, listen_fds[i])
                            : uv_tcp_bind(l, (const struct sockaddr *)&ep->sa, 0);
        if (rc < 0) {
            snprintf(err, errlen, "cannot %s %s: %s", listen_fds ? "open the socket of" : "bind",
                     ep->text, uv_strerror(rc));
            for (int k = 0; k < srv->n_listeners; k++)
                uv_close((uv_handle_t *)&srv->listeners[k], NULL);
            /* the sockets were given to the server: the ones no handle took are closed too */
            for (int k = i; listen_fds && k < cfg->n_listen + cfg->n_queue_listen; k++)
                close(listen_fds[k]);
            uv_close((uv_handle_t *)&srv->drain_timer, NULL);
            srv->n_listeners = 0;
            return -1;
        }
    }
    return 0;
}

int mxg_server_listen(struct mxg_server *srv, char *err, size_t errlen)
{
    const struct mxg_config *cfg = srv->cfg;
    for (int i = 0; i < srv->n_listeners; i++) {
        int q = srv->listen_mode[i] == MXG_MODE_QUEUE;
        const char *text = q ? cfg->queue_listen[i - cfg->n_listen].text : cfg->listen[i].text;
        int rc = uv_listen((uv_stream_t *)&srv->listeners[i], 511, on_accept);
        if (rc < 0) {
            snprintf(err, errlen, "cannot listen on %s: %s", text, uv_strerror(rc));
            /* the ones already listening stop at once: no connection waits for a server
             * that is about to stop */
            for (int k = 0; k < srv->n_listeners; k++)
                uv_close((uv_handle_t *)&srv->listeners[k], NULL);
            srv->n_listeners = 0;
            return -1;
        }
        if (srv->n_workers > 1)
            LOG_I("server", "worker %d: listening on %s%s", srv->worker, text,
                  q ? " (queue mode)" : "");
        else
            LOG_N("server", "listening on %s%s", text, q ? " (queue mode)" : "");
    }
    return 0;
}

/* The session registry's hook (srv->on_session_gone, server_sessions.c): once the
 * drain has begun and the last session is gone, free the AUTH state and report. */
static void drain_check(struct mxg_server *srv)
{
    if (srv->draining != 1 || srv->n_sessions > 0)
        return;
    srv->draining = 2;
    mxg_auth_throttle_free(srv->auth_throttle);
    srv->auth_throttle = NULL;
    mxg_auth_throttle_free(srv->auth_trust);
    srv->auth_trust = NULL;
    mxg_auth_trust_store_close(srv->auth_trust_store);
    srv->auth_trust_store = NULL;
    uv_timer_stop(&srv->drain_timer);
    uv_close((uv_handle_t *)&srv->drain_timer, NULL);
    LOG_N("server", "drained: all sessions finished");
    if (srv->on_drained)
        srv->on_drained(srv);
}

static void on_drain_deadline(uv_timer_t *t)
{
    struct mxg_server *srv = t->data;
    LOG_W("server", "drain deadline reached: closing %d session(s)", srv->n_sessions);
    struct mxg_session *s = srv->sessions;
    while (s) {
        struct mxg_session *next = mxg_session_next(s);
        mxg_session_kill(s);
        s = next;
    }
}

void mxg_server_drain(struct mxg_server *srv, void (*on_drained)(struct mxg_server *srv))
{
    if (srv->draining) {
        /* called again (a second SIGTERM): the deadline is now */
        if (srv->draining == 1)
            uv_timer_start(&srv->drain_timer, on_drain_deadline, 0, 0);
        return;
    }
    srv->draining = 1;
    srv->on_drained = on_drained;
    for (int i = 0; i < srv->n_listeners; i++)
        uv_close((uv_handle_t *)&srv->listeners[i], NULL);
    LOG_N("server", "draining: stopped accepting, %d session(s) active, deadline %llus",
          srv->n_sessions, (unsigned long long)(srv->cfg->drain_timeout_ms / 1000));
    struct mxg_session *s = srv->sessions;
    while (s) {
        struct mxg_session *next = mxg_session_next(s);
        mxg_session_drain(s);
        s = next;
    }
    uv_timer_start(&srv->drain_timer, on_drain_deadline, srv->cfg->drain_timeout_ms, 0);
    drain_check(srv);
}
