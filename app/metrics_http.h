/* app/metrics_http.h — the Prometheus endpoint: GET /metrics over HTTP on
 * the address of metrics.listen, on the libuv loop.
 *
 * Contract:
 *  - mxg_metrics_http_start() binds addr now (call it before privileges are
 *    dropped) and serves until mxg_metrics_http_stop(). Clients whose
 *    address is outside cfg->metrics_allow are disconnected without a reply
 *    (cfg is borrowed and read per connection, so a reloaded
 *    metrics.allow_networks applies at once). GET or HEAD /metrics → 200,
 *    "text/plain; version=0.0.4", the registry rendered at that moment;
 *    /status pages when set (mxg_metrics_http_set_status); other paths →
 *    404; other methods → 405. At most 16 connections, 10 s
 *    idle timeout each.
 *  - Returns NULL with err on failure (address in use, ...).
 *  - mxg_metrics_http_stop() closes the listener and every connection at
 *    once; the memory goes with the handles' close callbacks (run the loop
 *    afterwards). h may be NULL.
 *  - mxg_metrics_http_port(): the bound port (useful with port 0).
 *
 * Why libmicrohttpd, and how it lives on the loop: it is a maintained HTTP
 * parser (Debian's libmicrohttpd, also behind systemd-journal-remote) with
 * an "external polling" mode that needs no thread of its own: with
 * MHD_USE_EPOLL it exposes a single epoll descriptor, which we watch with one
 * uv_poll handle, plus one uv_timer for MHD_get_timeout(); every callback
 * (accept policy, request handler, logger) then runs inside MHD_run() on
 * the loop thread, so the registry is read without locks or atomics. A
 * hand-written HTTP/1.0 responder would have been ~150 lines of our own
 * request parsing for no gain in simplicity. */
#ifndef MXG_METRICS_HTTP_H
#define MXG_METRICS_HTTP_H

#include <stddef.h>
#include <sys/socket.h>
#include <uv.h>

#include "../core/config.h"
#include "../core/metrics.h"

struct mxg_metrics_http;

struct mxg_metrics_http *mxg_metrics_http_start(uv_loop_t *loop, struct mxg_metrics *m,
                                                const struct mxg_config *cfg,
                                                const struct sockaddr *addr, char *err,
                                                size_t errlen);
int mxg_metrics_http_port(const struct mxg_metrics_http *h);
/* Serve the status pages too (app/status.h): GET or HEAD of "/status" and
 * "/status/..." → page(arg, url, out) builds the HTML into out and returns
 * the HTTP status; served as "text/html; charset=utf-8" with a
 * Content-Security-Policy that allows no script. Who may see them: with
 * creds NULL only loopback clients (others 403); with creds (copied), HTTP
 * basic auth for every client (401 and WWW-Authenticate without it).
 * page NULL: no status pages (404). */
struct mxg_buf;
struct mxg_status_creds;
void mxg_metrics_http_set_status(struct mxg_metrics_http *h,
                                 int (*page)(void *arg, const char *url, struct mxg_buf *out),
                                 void *arg, const struct mxg_status_creds *creds);
/* /metrics rendered by render(arg, &body, &len) (0, or -1) instead of the registry
 * (worker processes: every worker's counters); render NULL: the registry. */
void mxg_metrics_http_set_render(struct mxg_metrics_http *h,
                                 int (*render)(void *arg, char **out, size_t *len), void *arg);
void mxg_metrics_http_stop(struct mxg_metrics_http *h);

#endif
