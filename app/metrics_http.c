/* app/metrics_http.c — see metrics_http.h. */
#include "metrics_http.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <microhttpd.h>

#include "../core/buf.h"
#include "../core/log.h"
#include "status.h"

#define COMP "metrics"

struct mxg_metrics_http {
    uv_loop_t *loop;
    struct mxg_metrics *m;
    const struct mxg_config *cfg;
    struct MHD_Daemon *d;
    uv_poll_t poll;
    uv_timer_t timer;
    int handles; /* open uv handles */
    int port;
    /* the status pages (mxg_metrics_http_set_status) */
    int (*page)(void *arg, const char *url, struct mxg_buf *out);
    void *page_arg;
    int have_creds;
    struct mxg_status_creds creds;
    int (*render)(void *arg, char **out, size_t *len); /* NULL: mxg_metrics_render */
    void *render_arg;
};

void mxg_metrics_http_set_render(struct mxg_metrics_http *h,
                                 int (*render)(void *arg, char **out, size_t *len), void *arg)
{
    if (!h)
        return;
    h->render = render;
    h->render_arg = arg;
}

static void http_run(struct mxg_metrics_http *h);

/* MHD's timeout ran out: let it work. */
static void on_timer(uv_timer_t *t)
{
    http_run(t->data);
}

/* MHD's epoll descriptor is readable: let it work. */
static void on_poll(uv_poll_t *p, int status, int events)
{
    (void)status;
    (void)events;
    http_run(p->data);
}

/* Let MHD do what is due, then wake it again when it says. */
static void http_run(struct mxg_metrics_http *h)
{
    MHD_UNSIGNED_LONG_LONG to = 0;
    MHD_run(h->d);
    if (MHD_get_timeout(h->d, &to) == MHD_YES)
        uv_timer_start(&h->timer, on_timer, (uint64_t)to, 0);
    else
        uv_timer_stop(&h->timer);
}

/* Only clients in metrics.allow_networks (read live) get a connection. */
static enum MHD_Result accept_policy(void *cls, const struct sockaddr *addr, socklen_t len)
{
    struct mxg_metrics_http *h = cls;
    (void)len;
    for (int i = 0; i < h->cfg->n_metrics_allow; i++)
        if (mxg_cidr_match(&h->cfg->metrics_allow[i], addr))
            return MHD_YES;
    LOG_D(COMP, "connection refused: not in metrics.allow_networks");
    return MHD_NO;
}

/* Queue a response with body (freed by MHD) and its content type. */
static enum MHD_Result reply(struct MHD_Connection *c, unsigned code, char *body, size_t len,
                             const char *ctype)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(len, body, body ? MHD_RESPMEM_MUST_FREE
                                                        : MHD_RESPMEM_PERSISTENT);
    if (!r) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    if (code == MHD_HTTP_METHOD_NOT_ALLOWED)
        MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
    if (code == MHD_HTTP_UNAUTHORIZED)
        MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
                                "Basic realm=\"mxguard status\", charset=\"UTF-8\"");
    if (strncmp(ctype, "text/html", 9) == 0) { /* the status pages: no script, no framing */
        MHD_add_response_header(r, "Content-Security-Policy",
                                "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
                                "frame-ancestors 'none'; form-action 'none'; base-uri 'none'");
        MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
        MHD_add_response_header(r, "Cache-Control", "no-store");
        MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
    }
    enum MHD_Result rc = MHD_queue_response(c, code, r);
    MHD_destroy_response(r);
    return rc;
}

/* A status page, for a client allowed to see it (metrics_http.h). */
static enum MHD_Result status_page(struct mxg_metrics_http *h, struct MHD_Connection *c,
                                   const char *url)
{
    if (h->have_creds) {
        const char *auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                                       MHD_HTTP_HEADER_AUTHORIZATION);
        if (!mxg_status_auth_check(&h->creds, auth)) {
            LOG_D(COMP, "status page: %s", auth ? "wrong credentials" : "no credentials");
            return reply(c, MHD_HTTP_UNAUTHORIZED, strdup("credentials required\n"), 21,
                         "text/plain");
        }
    } else {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        static const char only[] = "the status page is served to loopback clients only "
                                   "(or set metrics.status_credentials_file)\n";
        if (!ci || !mxg_status_client_loopback(ci->client_addr))
            return reply(c, MHD_HTTP_FORBIDDEN, strdup(only), sizeof only - 1, "text/plain");
    }
    struct mxg_buf b = {0};
    int code = h->page(h->page_arg, url, &b);
    if (!b.len || !mxg_buf_cstr(&b)) {
        mxg_buf_free(&b);
        return reply(c, code == 200 ? 500 : (unsigned)code, strdup("no page\n"), 8,
                     "text/plain");
    }
    /* the buffer's allocation goes to MHD (freed with free()) */
    return reply(c, (unsigned)code, b.data, b.len, "text/html; charset=utf-8");
}

/* GET/HEAD /metrics: the rendered registry; else 404 or 405. */
static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    struct mxg_metrics_http *h = cls;
    (void)version;
    (void)upload_data;
    (void)con_cls;
    *upload_data_size = 0; /* a body, if any, is ignored */
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
        return reply(c, MHD_HTTP_METHOD_NOT_ALLOWED, strdup("method not allowed\n"), 19,
                     "text/plain");
    if (h->page && (strcmp(url, "/status") == 0 || strncmp(url, "/status/", 8) == 0))
        return status_page(h, c, url);
    if (strcmp(url, "/metrics") != 0)
        return reply(c, MHD_HTTP_NOT_FOUND, strdup("not found; try /metrics\n"), 24,
                     "text/plain");
    char *body;
    size_t len;
    if ((h->render ? h->render(h->render_arg, &body, &len) : mxg_metrics_render(h->m, &body, &len)) < 0)
        return MHD_NO;
    return reply(c, MHD_HTTP_OK, body, len, "text/plain; version=0.0.4; charset=utf-8");
}

/* libmicrohttpd's messages, one log line each. */
static void mhd_log(void *cls, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char buf[512];
    vsnprintf(buf, sizeof buf, fmt, ap);
    buf[strcspn(buf, "\n")] = '\0';
    LOG_W(COMP, "%s", buf);
}

/* Listen on addr and serve /metrics on loop (metrics_http.h). */
struct mxg_metrics_http *mxg_metrics_http_start(uv_loop_t *loop, struct mxg_metrics *m,
                                                const struct mxg_config *cfg,
                                                const struct sockaddr *addr, char *err,
                                                size_t errlen)
{
    struct mxg_metrics_http *h = calloc(1, sizeof *h);
    if (!h) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    h->loop = loop;
    h->m = m;
    h->cfg = cfg;
    unsigned flags = MHD_USE_EPOLL | MHD_USE_ERROR_LOG;
    if (addr->sa_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    /* the port argument is only used in MHD's messages: SOCK_ADDR decides */
    uint16_t port_n = addr->sa_family == AF_INET6 ? ((const struct sockaddr_in6 *)addr)->sin6_port
                                                  : ((const struct sockaddr_in *)addr)->sin_port;
    h->d = MHD_start_daemon(flags, ntohs(port_n), accept_policy, h, on_request, h,
                            MHD_OPTION_EXTERNAL_LOGGER, mhd_log, h, /* first: MHD wants it so */
                            MHD_OPTION_SOCK_ADDR, addr,
                            MHD_OPTION_CONNECTION_LIMIT, (unsigned)16,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10,
                            MHD_OPTION_END);
    if (!h->d) {
        /* MHD logged the reason (bind: Address already in use, ...) */
        snprintf(err, errlen, "cannot start the HTTP listener (see the log line before)");
        free(h);
        return NULL;
    }
    const union MHD_DaemonInfo *fd = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_EPOLL_FD);
    const union MHD_DaemonInfo *port = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
    h->port = port ? port->port : 0;
    if (!fd || uv_poll_init(loop, &h->poll, fd->epoll_fd) != 0) {
        snprintf(err, errlen, "cannot watch the HTTP listener");
        MHD_stop_daemon(h->d);
        free(h);
        return NULL;
    }
    uv_timer_init(loop, &h->timer);
    h->poll.data = h->timer.data = h;
    h->handles = 2;
    uv_poll_start(&h->poll, UV_READABLE, on_poll);
    http_run(h);
    return h;
}

/* Serve the status pages too (metrics_http.h). */
void mxg_metrics_http_set_status(struct mxg_metrics_http *h,
                                 int (*page)(void *arg, const char *url, struct mxg_buf *out),
                                 void *arg, const struct mxg_status_creds *creds)
{
    h->page = page;
    h->page_arg = arg;
    h->have_creds = creds != NULL;
    if (creds)
        h->creds = *creds;
}

/* The bound port (0 for NULL). */
int mxg_metrics_http_port(const struct mxg_metrics_http *h)
{
    return h ? h->port : 0;
}

/* A handle closed: the last one frees the endpoint. */
static void on_closed(uv_handle_t *handle)
{
    struct mxg_metrics_http *h = handle->data;
    if (--h->handles == 0)
        free(h);
}

/* Stop serving; freed once both handles have closed (NULL: nothing). */
void mxg_metrics_http_stop(struct mxg_metrics_http *h)
{
    if (!h || !h->d)
        return;
    /* libuv must stop watching the epoll descriptor before MHD closes it */
    uv_poll_stop(&h->poll);
    uv_timer_stop(&h->timer);
    MHD_stop_daemon(h->d);
    h->d = NULL;
    uv_close((uv_handle_t *)&h->poll, on_closed);
    uv_close((uv_handle_t *)&h->timer, on_closed);
}
