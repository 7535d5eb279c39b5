/* http/https.c — see https.h.
 *
 * Design: one CURLM per struct mxg_https, driven by the libuv loop through
 * curl's multi-socket interface (the pattern of curl's multi-uv example):
 *  - CURLMOPT_SOCKETFUNCTION: one uv_poll_t per socket curl wants watched
 *    (struct pollctx, attached to the socket with curl_multi_assign); on
 *    CURL_POLL_REMOVE the poll is stopped at once (before curl closes the fd,
 *    so epoll never sees a reused descriptor) and closed.
 *  - CURLMOPT_TIMERFUNCTION: one uv_timer_t; curl's "0 ms" means "call
 *    socket_action from the loop soon", never from inside the callback.
 *  - Poll and timer callbacks call curl_multi_socket_action, then drain
 *    curl_multi_info_read and deliver finished requests.
 *
 * Never synchronous: mxg_https_get() only adds the easy handle
 * (curl_multi_add_handle, which at most (re)arms the uv timer); it never calls
 * curl_multi_socket_action. Every transfer therefore starts, and every result
 * is delivered, from a loop callback (the uv timer or a uv poll), never from
 * inside mxg_https_get().
 *
 * Per request: URL https://HOST:PORT/PATH; addresses handed over with
 * CURLOPT_RESOLVE as "+HOST:PORT:ADDR[,ADDR]" (IPv6 in brackets). The '+'
 * makes the entry in the multi handle's shared DNS cache non-permanent, so
 * entries of past fetches expire after curl's DNS cache timeout instead of
 * accumulating for the life of the process (the transfer reads the entry
 * when it starts, right after it was loaded). A CURLOPT_RESOLVER_START_FUNCTION
 * that refuses every lookup guarantees curl never resolves a name itself
 * (Debian's libcurl has no c-ares and would use a getaddrinfo thread).
 * HTTPS only, no redirects, WebPKI verification (peer + host name) against
 * the CA file given at creation (then only that file: the built-in CAPATH is
 * switched off) or the system store, TLS >= 1.2, HTTP/1.1
 * (policy files are small; curl 7.88's HTTP/2 code was freshly rewritten and
 * buys nothing here), no proxy (CURLOPT_PROXY "" also ignores *_proxy
 * environment variables), no cookie engine, no compression (the body cap
 * applies to the bytes on the wire and to what the caller gets), no
 * connection reuse (each fetch is one connection, closed when it ends: no
 * idle sockets stay open between the rare policy fetches).
 *
 * Body cap: CURLOPT_MAXFILESIZE_LARGE rejects an announced Content-Length
 * over max_body before the body is read (libcurl 7.88 checks only announced
 * sizes; it enforces the limit during the transfer only since 8.4.0), and the
 * write callback aborts as soon as a streamed (chunked or unannounced) body
 * would exceed max_body. The write callback also stops a transfer at the
 * first body byte when the status is not 200 or the media type is wrong:
 * such a body is never needed.
 *
 * Classification (first match):
 *   curl error other than the aborts above → CONNECT (CURLE_COULDNT_CONNECT),
 *     TIMEOUT (CURLE_OPERATION_TIMEDOUT), WEBPKI (CURLE_PEER_FAILED_VERIFICATION
 *     = CURLE_SSL_CACERT, CURLE_SSL_CACERT_BADFILE, CURLE_SSL_CERTPROBLEM,
 *     CURLE_SSL_ISSUER_ERROR), TLS (other SSL errors), else OTHER;
 *   status != 200 → STATUS; media type mismatch or none → CTYPE;
 *   body over max_body → TOO_BIG; else OK.
 * `why` carries curl's error buffer for curl errors (e.g. "SSL certificate
 * problem: unable to get local issuer certificate"). On any failure the
 * result's body is "" (body_len 0); on success it is the whole body.
 *
 * Defaults for zero option values: connect timeout 15 s, total timeout 60 s,
 * max_body 64 KiB (RFC 8461 practice; see shared/RFC-NOTES.md).
 *
 * POST (mxg_https_post, TLSRPT delivery, RFC 8460 §5.4) uses the same
 * handle setup (start_req) with CURLOPT_POSTFIELDS on an owned copy of the
 * body, "Content-Type: <given>" and an empty "Expect:" (no 100-continue
 * wait). Differences: success is any 2xx status (status_ok), require_ctype
 * is ignored, and the response body is capped at max_body (default 4 KiB)
 * by the write callback only (no CURLOPT_MAXFILESIZE_LARGE): with a 2xx
 * status a longer response is cut (the transfer stops there) and the
 * result is still OK — the status alone says the report was accepted.
 *
 * Lifetime rules: a request handle is valid until its callback returns or it
 * is cancelled; cancelling it later is a use-after-free (as for any handle).
 * mxg_https_cancel() on a request from inside its own callback is a no-op.
 * mxg_https_get() and mxg_https_cancel() may be called from a callback;
 * mxg_https_free() too (it takes effect when the callback returns; no further
 * callback runs).
 *
 * libcurl global state: curl_global_init() runs once per process, from the
 * first mxg_https_new() (guarded by a static flag; mxguard is
 * single-threaded, and this libcurl is built thread-safe anyway). It is never
 * undone: curl_global_cleanup() is not thread-safe and other code (OpenSSL
 * users) may still need the state; what it holds stays reachable, so leak
 * checkers do not report it. */
#include "https.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <curl/curl.h>

#include "../core/metrics.h"

#ifndef MXG_VERSION
#define MXG_VERSION "0"
#endif

#define DEFAULT_CONNECT_MS 15000u
#define DEFAULT_TOTAL_MS 60000u
#define DEFAULT_MAX_BODY ((size_t)65536)
#define DEFAULT_POST_MAX_BODY ((size_t)4096)
#define CTYPE_MAX 200
#define HOST_MAX 253

struct pollctx {
    uv_poll_t poll;
    struct mxg_https *h;
    curl_socket_t fd;
    struct pollctx *prev, *next;
    int closing;
};

enum abort_reason { ABORT_NONE = 0, ABORT_STATUS, ABORT_CTYPE, ABORT_TOO_BIG, ABORT_NOMEM };

struct mxg_https_req {
    struct mxg_https *h;
    struct mxg_https_req *prev, *next;
    CURL *easy;
    struct sockaddr_storage src; /* local address to bind (ss_family 0: none) */
    struct curl_slist *resolve;
    mxg_https_cb cb;
    void *arg;
    char *require_ctype;       /* owned copy or NULL */
    size_t max_body;
    char *body;                /* len bytes + NUL; cap bytes allocated */
    size_t len, cap;
    int first_write_seen;
    enum abort_reason abort;
    int in_cb;                 /* its callback is running */
    int is_post;               /* POST: success = any 2xx, response body capped and ignored */
    char *post_body;           /* owned copy of the request body (POST) */
    struct curl_slist *headers; /* extra request headers (POST) */
    char errbuf[CURL_ERROR_SIZE];
    uint64_t t0;               /* loop time at the start (metrics) */
};

struct mxg_https {
    uv_loop_t *loop;
    CURLM *multi;
    uv_timer_t timer;
    char *ca_file;             /* NULL = system store */
    struct mxg_https_req *reqs; /* in flight */
    struct pollctx *polls;     /* open or closing poll handles */
    int open_handles;          /* uv handles not yet closed (timer + polls) */
    int dispatching;           /* depth of drain() */
    int freeing;               /* mxg_https_free() was called */
    int torn_down;             /* curl state released, handles closing */
    struct mxg_metrics *metrics; /* NULL: not counted */
};

static int curl_ready; /* curl_global_init done (once per process) */

const char *mxg_https_err_name(enum mxg_https_err e)
{
    switch (e) {
    case MXG_HTTPS_OK: return "ok";
    case MXG_HTTPS_ERR_CONNECT: return "connect";
    case MXG_HTTPS_ERR_TIMEOUT: return "timeout";
    case MXG_HTTPS_ERR_TLS: return "tls";
    case MXG_HTTPS_ERR_WEBPKI: return "webpki";
    case MXG_HTTPS_ERR_STATUS: return "status";
    case MXG_HTTPS_ERR_CTYPE: return "content-type";
    case MXG_HTTPS_ERR_TOO_BIG: return "too-big";
    case MXG_HTTPS_ERR_OTHER: return "other";
    }
    return "?";
}

/* ------------------------------------------------------------------------ */
/* Handle bookkeeping                                                       */

static void release_if_done(struct mxg_https *h)
{
    if (h->torn_down && h->open_handles == 0) {
        free(h->ca_file);
        free(h);
    }
}

static void on_poll_closed(uv_handle_t *hd)
{
    struct pollctx *pc = hd->data;
    struct mxg_https *h = pc->h;
    if (pc->prev)
        pc->prev->next = pc->next;
    else
        h->polls = pc->next;
    if (pc->next)
        pc->next->prev = pc->prev;
    free(pc);
    h->open_handles--;
    release_if_done(h);
}

static void poll_close(struct pollctx *pc)
{
    if (pc->closing)
        return;
    pc->closing = 1;
    uv_poll_stop(&pc->poll);
    uv_close((uv_handle_t *)&pc->poll, on_poll_closed);
}

static void on_timer_closed(uv_handle_t *hd)
{
    struct mxg_https *h = hd->data;
    h->open_handles--;
    release_if_done(h);
}

static void req_unlink(struct mxg_https_req *r)
{
    struct mxg_https *h = r->h;
    if (r->prev)
        r->prev->next = r->next;
    else if (h->reqs == r)
        h->reqs = r->next;
    if (r->next)
        r->next->prev = r->prev;
    r->prev = r->next = NULL;
}

/* Frees everything a request owns; the easy handle must be out of the multi. */
static void req_destroy(struct mxg_https_req *r)
{
    if (r->easy)
        curl_easy_cleanup(r->easy);
    curl_slist_free_all(r->resolve);
    curl_slist_free_all(r->headers);
    free(r->post_body);
    free(r->require_ctype);
    free(r->body);
    free(r);
}

/* Releases curl state and starts closing every uv handle; h itself goes in
 * the last close callback. No user callback runs from here on. */
static void teardown(struct mxg_https *h)
{
    while (h->reqs) {
        struct mxg_https_req *r = h->reqs;
        req_unlink(r);
        curl_multi_remove_handle(h->multi, r->easy);
        req_destroy(r);
    }
    /* May call the socket callback (CURL_POLL_REMOVE) for cached connections. */
    curl_multi_cleanup(h->multi);
    h->multi = NULL;
    for (struct pollctx *pc = h->polls; pc; pc = pc->next)
        poll_close(pc);
    uv_timer_stop(&h->timer);
    uv_close((uv_handle_t *)&h->timer, on_timer_closed);
    h->torn_down = 1;
    release_if_done(h);
}

/* ------------------------------------------------------------------------ */
/* Results                                                                  */

/* Contract: 1 if header value v has media type want (case-insensitive;
 * parameters after ';' and surrounding blanks ignored). */
static int media_type_is(const char *v, const char *want)
{
    while (*v == ' ' || *v == '\t')
        v++;
    size_t n = strcspn(v, ";");
    while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
        n--;
    return n == strlen(want) && strncasecmp(v, want, n) == 0;
}

/* Contract: 1 if status counts as success for r (GET: 200 only; POST: any
 * 2xx, RFC 8460 §5.4). */
static int status_ok(const struct mxg_https_req *r, long status)
{
    return r->is_post ? status >= 200 && status <= 299 : status == 200;
}

static enum mxg_https_err classify_curl(CURLcode rc)
{
    switch (rc) {
    case CURLE_COULDNT_CONNECT:
        return MXG_HTTPS_ERR_CONNECT;
    case CURLE_OPERATION_TIMEDOUT:
        return MXG_HTTPS_ERR_TIMEOUT;
    case CURLE_PEER_FAILED_VERIFICATION: /* = CURLE_SSL_CACERT */
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_ISSUER_ERROR:
        return MXG_HTTPS_ERR_WEBPKI;
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_CIPHER:
    case CURLE_USE_SSL_FAILED:
    case CURLE_SSL_ENGINE_INITFAILED:
    case CURLE_SSL_SHUTDOWN_FAILED:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_CLIENTCERT:
        return MXG_HTTPS_ERR_TLS;
    default:
        return MXG_HTTPS_ERR_OTHER;
    }
}

/* Fills res for a finished transfer (the easy handle is still alive). */
static void build_result(struct mxg_https_req *r, CURLcode rc, struct mxg_https_result *res)
{
    memset(res, 0, sizeof *res);
    res->body = "";
    long status = 0;
    curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
    res->status = status;
    char *ct = NULL;
    curl_easy_getinfo(r->easy, CURLINFO_CONTENT_TYPE, &ct);
    if (ct)
        snprintf(res->ctype, sizeof res->ctype, "%s", ct);
    const char *eb = r->errbuf[0] ? r->errbuf : curl_easy_strerror(rc);

    int ours = rc == CURLE_OK || rc == CURLE_FILESIZE_EXCEEDED ||
               (rc == CURLE_WRITE_ERROR && r->abort != ABORT_NONE && r->abort != ABORT_NOMEM);
    if (!ours) {
        res->err = classify_curl(rc);
        switch (res->err) {
        case MXG_HTTPS_ERR_CONNECT:
            snprintf(res->why, sizeof res->why, "%s", eb);
            break;
        case MXG_HTTPS_ERR_TIMEOUT:
            snprintf(res->why, sizeof res->why, "timeout: %s", eb);
            break;
        case MXG_HTTPS_ERR_WEBPKI:
            snprintf(res->why, sizeof res->why, "%s", eb);
            break;
        case MXG_HTTPS_ERR_TLS:
            snprintf(res->why, sizeof res->why, "TLS: %s", eb);
            break;
        default:
            if (r->abort == ABORT_NOMEM)
                snprintf(res->why, sizeof res->why, "out of memory");
            else
                snprintf(res->why, sizeof res->why, "curl error %d: %s", (int)rc, eb);
            break;
        }
        return;
    }
    if (!status_ok(r, status)) {
        res->err = MXG_HTTPS_ERR_STATUS;
        snprintf(res->why, sizeof res->why, "HTTP %ld%s", status,
                 status >= 300 && status < 400 ? " (redirects are not followed)" : "");
        return;
    }
    if (r->require_ctype && (ct == NULL || !media_type_is(ct, r->require_ctype))) {
        res->err = MXG_HTTPS_ERR_CTYPE;
        if (ct == NULL)
            snprintf(res->why, sizeof res->why, "no Content-Type (%s required)", r->require_ctype);
        else
            snprintf(res->why, sizeof res->why, "Content-Type \"%s\" is not %s", res->ctype,
                     r->require_ctype);
        return;
    }
    if (r->is_post && (rc == CURLE_FILESIZE_EXCEEDED || r->abort == ABORT_TOO_BIG)) {
        /* The 2xx status already says the server took the request; the
         * response body is ignored, so a long one is cut, not a failure. */
        res->err = MXG_HTTPS_OK;
        res->body = r->body ? r->body : "";
        res->body_len = r->len;
        return;
    }
    if (rc == CURLE_FILESIZE_EXCEEDED || r->abort == ABORT_TOO_BIG) {
        res->err = MXG_HTTPS_ERR_TOO_BIG;
        /* libcurl 7.88 rejects an announced size before it records it, so
         * CURLINFO_CONTENT_LENGTH_DOWNLOAD_T has no number to show here. */
        if (rc == CURLE_FILESIZE_EXCEEDED)
            snprintf(res->why, sizeof res->why, "announced Content-Length over the %zu-byte limit",
                     r->max_body);
        else
            snprintf(res->why, sizeof res->why, "body over the %zu-byte limit", r->max_body);
        return;
    }
    if (rc != CURLE_OK) { /* an abort that the checks above do not explain */
        res->err = MXG_HTTPS_ERR_OTHER;
        snprintf(res->why, sizeof res->why, "curl error %d: %s", (int)rc, eb);
        return;
    }
    res->err = MXG_HTTPS_OK;
    res->body = r->body ? r->body : "";
    res->body_len = r->len;
}

/* Delivers one finished transfer: out of the multi, callback, freed. */
static void finish(struct mxg_https_req *r, CURLcode rc)
{
    struct mxg_https *h = r->h;
    struct mxg_https_result res;
    build_result(r, rc, &res);
    req_unlink(r);
    curl_multi_remove_handle(h->multi, r->easy);
    mxg_metrics_inc(h->metrics, MXG_M_HTTPS_REQUESTS, res.err == MXG_HTTPS_OK ? "ok" : "error");
    mxg_metrics_observe_ms(h->metrics, MXG_M_HTTPS_DURATION, NULL, uv_now(h->loop) - r->t0);
    r->in_cb = 1;
    r->cb(r->arg, &res);
    req_destroy(r);
}

/* Delivers every finished transfer curl reports. Runs only from loop
 * callbacks (uv timer / uv poll), after curl_multi_socket_action returned. */
static void drain(struct mxg_https *h)
{
    h->dispatching++;
    while (!h->freeing) {
        int left = 0;
        CURLMsg *m = curl_multi_info_read(h->multi, &left);
        if (m == NULL)
            break;
        if (m->msg != CURLMSG_DONE)
            continue;
        CURL *e = m->easy_handle;
        CURLcode rc = m->data.result; /* m is invalid once e leaves the multi */
        char *priv = NULL;
        curl_easy_getinfo(e, CURLINFO_PRIVATE, &priv);
        if (priv)
            finish((struct mxg_https_req *)(void *)priv, rc);
    }
    h->dispatching--;
    if (h->freeing && h->dispatching == 0 && !h->torn_down)
        teardown(h);
}

/* ------------------------------------------------------------------------ */
/* libuv <-> libcurl glue                                                   */

static void on_poll(uv_poll_t *p, int status, int events)
{
    struct pollctx *pc = p->data;
    struct mxg_https *h = pc->h;
    int flags = 0;
    if (status < 0)
        flags = CURL_CSELECT_ERR;
    else {
        if (events & UV_READABLE)
            flags |= CURL_CSELECT_IN;
        if (events & UV_WRITABLE)
            flags |= CURL_CSELECT_OUT;
    }
    int running = 0;
    curl_multi_socket_action(h->multi, pc->fd, flags, &running);
    drain(h);
}

static void on_timer(uv_timer_t *t)
{
    struct mxg_https *h = t->data;
    int running = 0;
    curl_multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    drain(h);
}

/* CURLMOPT_TIMERFUNCTION: (re)arm or stop the one uv timer. */
static int on_curl_timer(CURLM *multi, long timeout_ms, void *userp)
{
    struct mxg_https *h = userp;
    (void)multi;
    if (h->torn_down)
        return 0;
    if (timeout_ms < 0 || h->freeing) {
        uv_timer_stop(&h->timer);
        return 0;
    }
    return uv_timer_start(&h->timer, on_timer, (uint64_t)timeout_ms, 0) == 0 ? 0 : -1;
}

/* CURLMOPT_SOCKETFUNCTION: watch s for what curl asks, or stop watching. */
static int on_curl_socket(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
    struct mxg_https *h = userp;
    struct pollctx *pc = socketp;
    (void)easy;
    if (what == CURL_POLL_REMOVE) {
        if (pc) {
            if (h->multi && !h->freeing)
                curl_multi_assign(h->multi, s, NULL);
            poll_close(pc);
        }
        return 0;
    }
    if (h->freeing)
        return 0;
    if (pc == NULL || pc->closing) {
        pc = calloc(1, sizeof *pc);
        if (pc == NULL)
            return -1;
        if (uv_poll_init_socket(h->loop, &pc->poll, s) != 0) {
            free(pc);
            return -1;
        }
        pc->poll.data = pc;
        pc->h = h;
        pc->fd = s;
        pc->next = h->polls;
        if (h->polls)
            h->polls->prev = pc;
        h->polls = pc;
        h->open_handles++;
        curl_multi_assign(h->multi, s, pc);
    }
    int ev = 0;
    if (what & CURL_POLL_IN)
        ev |= UV_READABLE;
    if (what & CURL_POLL_OUT)
        ev |= UV_WRITABLE;
    return uv_poll_start(&pc->poll, ev, on_poll) == 0 ? 0 : -1;
}

/* CURLOPT_WRITEFUNCTION: checks status and media type at the first body
 * byte, caps the body at max_body. Returning short aborts the transfer
 * (CURLE_WRITE_ERROR). */
static size_t on_write(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    struct mxg_https_req *r = userdata;
    size_t n = size * nmemb;
    if (!r->first_write_seen) {
        r->first_write_seen = 1;
        long status = 0;
        curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
        if (!status_ok(r, status)) {
            r->abort = ABORT_STATUS;
            return 0;
        }
        char *ct = NULL;
        curl_easy_getinfo(r->easy, CURLINFO_CONTENT_TYPE, &ct);
        if (r->require_ctype && (ct == NULL || !media_type_is(ct, r->require_ctype))) {
            r->abort = ABORT_CTYPE;
            return 0;
        }
    }
    if (n > r->max_body - r->len) {
        r->abort = ABORT_TOO_BIG;
        return 0;
    }
    if (r->len + n + 1 > r->cap) {
        size_t cap = r->cap ? r->cap : 1024;
        while (cap < r->len + n + 1)
            cap *= 2;
        if (cap > r->max_body + 1)
            cap = r->max_body + 1;
        char *b = realloc(r->body, cap);
        if (b == NULL) {
            r->abort = ABORT_NOMEM;
            return 0;
        }
        r->body = b;
        r->cap = cap;
    }
    memcpy(r->body + r->len, ptr, n);
    r->len += n;
    r->body[r->len] = '\0';
    return n;
}

/* CURLOPT_SOCKOPTFUNCTION: bind the new socket to the configured source
 * address ourselves (CURLOPT_INTERFACE would make curl resolve it, and curl
 * resolves nothing here). A socket of the other family is left alone. */
static int bind_source(void *clientp, curl_socket_t fd, curlsocktype purpose)
{
    struct mxg_https_req *r = clientp;
    if (purpose != CURLSOCKTYPE_IPCXN || r->src.ss_family == 0)
        return CURL_SOCKOPT_OK;
    struct sockaddr_storage me;
    socklen_t len = sizeof me;
    if (getsockname(fd, (struct sockaddr *)&me, &len) == 0 && me.ss_family == r->src.ss_family) {
        socklen_t sl = r->src.ss_family == AF_INET ? sizeof(struct sockaddr_in)
                                                   : sizeof(struct sockaddr_in6);
        if (bind(fd, (const struct sockaddr *)&r->src, sl) != 0)
            return CURL_SOCKOPT_ERROR;
    }
    return CURL_SOCKOPT_OK;
}

/* CURLOPT_RESOLVER_START_FUNCTION: names come from the caller only. */
static int refuse_resolve(void *resolver_state, void *reserved, void *userdata)
{
    (void)resolver_state;
    (void)reserved;
    (void)userdata;
    return 1;
}

/* ------------------------------------------------------------------------ */
/* API                                                                      */

struct mxg_https *mxg_https_new(uv_loop_t *loop, const char *ca_file, char *err, size_t errlen)
{
    char dummy[1];
    if (err == NULL || errlen == 0) {
        err = dummy;
        errlen = sizeof dummy;
    }
    err[0] = '\0';
    if (loop == NULL) {
        snprintf(err, errlen, "no loop");
        return NULL;
    }
    if (ca_file && *ca_file && access(ca_file, R_OK) != 0) {
        snprintf(err, errlen, "CA file %s is not readable", ca_file);
        return NULL;
    }
    if (!curl_ready) {
        CURLcode rc = curl_global_init(CURL_GLOBAL_DEFAULT);
        if (rc != CURLE_OK) {
            snprintf(err, errlen, "curl_global_init: %s", curl_easy_strerror(rc));
            return NULL;
        }
        curl_ready = 1;
    }
    curl_version_info_data *vi = curl_version_info(CURLVERSION_NOW);
    if (vi == NULL || !(vi->features & CURL_VERSION_SSL)) {
        snprintf(err, errlen, "libcurl without TLS support");
        return NULL;
    }
    struct mxg_https *h = calloc(1, sizeof *h);
    if (h == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    h->loop = loop;
    if (ca_file && *ca_file && (h->ca_file = strdup(ca_file)) == NULL) {
        free(h);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    h->multi = curl_multi_init();
    if (h->multi == NULL) {
        free(h->ca_file);
        free(h);
        snprintf(err, errlen, "curl_multi_init failed");
        return NULL;
    }
    curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
    curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h);
    curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
    curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, h);
    uv_timer_init(loop, &h->timer);
    h->timer.data = h;
    h->open_handles = 1;
    return h;
}

void mxg_https_free(struct mxg_https *h)
{
    if (h == NULL || h->freeing)
        return;
    h->freeing = 1;
    if (h->dispatching == 0)
        teardown(h);
    /* else: drain() tears down when the running callback returns */
}

static int host_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > HOST_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!(isalnum(c) || c == '-' || c == '.' || c == '_'))
            return 0;
    }
    return 1;
}

static int path_ok(const char *s)
{
    if (s == NULL || s[0] != '/')
        return 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p <= 0x20 || *p >= 0x7f || *p == '#')
            return 0;
    return 1;
}

/* Appends "ADDR" (IPv6 in brackets) for sa to buf at *off; -1 if unusable. */
static int append_addr(char *buf, size_t cap, size_t *off, const struct sockaddr_storage *sa)
{
    char a[INET6_ADDRSTRLEN];
    int n;
    if (sa->ss_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
        if (inet_ntop(AF_INET, &s4->sin_addr, a, sizeof a) == NULL)
            return -1;
        n = snprintf(buf + *off, cap - *off, "%s%s", *off && buf[*off - 1] != ':' ? "," : "", a);
    } else if (sa->ss_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
        if (inet_ntop(AF_INET6, &s6->sin6_addr, a, sizeof a) == NULL)
            return -1;
        n = snprintf(buf + *off, cap - *off, "%s[%s]", *off && buf[*off - 1] != ':' ? "," : "",
                     a);
    } else {
        return -1;
    }
    if (n < 0 || (size_t)n >= cap - *off)
        return -1;
    *off += (size_t)n;
    return 0;
}

static long clamp_ms(uint64_t v, uint64_t dflt)
{
    if (v == 0)
        v = dflt;
    return v > (uint64_t)LONG_MAX ? LONG_MAX : (long)v;
}

/* Contract: 1 if s is a usable Content-Type value (1..CTYPE_MAX printable
 * ASCII characters: no CR/LF or other control characters). */
static int ctype_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > CTYPE_MAX)
        return 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p < 0x20 || *p >= 0x7f)
            return 0;
    return 1;
}

struct post_args {
    const char *ctype;
    const void *body;
    size_t len;
};

/* Shared by GET and POST: checks o, builds the easy handle with the
 * transport rules of https.h and adds it to the multi. post: NULL for GET,
 * else the request body and its Content-Type. Returns 0 or -1. */

static int start_req(struct mxg_https *h, const struct mxg_https_opts *o,
                     const struct post_args *post, mxg_https_cb cb, void *arg,
                     struct mxg_https_req **req)
{
    if (req)
        *req = NULL;
    if (h == NULL || h->freeing || o == NULL || cb == NULL || !host_ok(o->host) ||
        o->port <= 0 || o->port > 65535 || !path_ok(o->path) || o->addrs == NULL ||
        o->n_addrs < 1 || o->n_addrs > 64 || (o->require_ctype && !*o->require_ctype))
        return -1;
    if (post && (!ctype_ok(post->ctype) || (post->body == NULL && post->len > 0) ||
                 post->len > (size_t)LLONG_MAX - 1))
        return -1;

    struct mxg_https_req *r = calloc(1, sizeof *r);
    if (r == NULL)
        return -1;
    r->h = h;
    r->t0 = uv_now(h->loop);
    r->cb = cb;
    r->arg = arg;
    r->is_post = post != NULL;
    r->max_body = o->max_body ? o->max_body : post ? DEFAULT_POST_MAX_BODY : DEFAULT_MAX_BODY;
    if (r->max_body > (size_t)LLONG_MAX - 1)
        r->max_body = (size_t)LLONG_MAX - 1;
    if (!post && o->require_ctype && (r->require_ctype = strdup(o->require_ctype)) == NULL)
        goto fail;
    if (post) {
        /* A copy: the caller's buffer may go away before the transfer runs. */
        if ((r->post_body = malloc(post->len ? post->len : 1)) == NULL)
            goto fail;
        if (post->len)
            memcpy(r->post_body, post->body, post->len);
        char hdr[CTYPE_MAX + 32];
        snprintf(hdr, sizeof hdr, "Content-Type: %s", post->ctype);
        struct curl_slist *l = curl_slist_append(NULL, hdr);
        if (l == NULL)
            goto fail;
        r->headers = l;
        /* No "Expect: 100-continue" round trip (and its 1 s wait on servers
         * that never answer it): report bodies are small. */
        if ((l = curl_slist_append(r->headers, "Expect:")) == NULL)
            goto fail;
        r->headers = l;
    }

    /* "+HOST:PORT:ADDR[,ADDR...]" */
    char rs[HOST_MAX + 16 + 64 * (INET6_ADDRSTRLEN + 3)];
    int n = snprintf(rs, sizeof rs, "+%s:%d:", o->host, o->port);
    if (n < 0 || (size_t)n >= sizeof rs)
        goto fail;
    size_t off = (size_t)n;
    for (int i = 0; i < o->n_addrs; i++)
        if (append_addr(rs, sizeof rs, &off, &o->addrs[i]) != 0)
            goto fail;
    if ((r->resolve = curl_slist_append(NULL, rs)) == NULL)
        goto fail;

    char url[HOST_MAX + 32 + 2048];
    n = snprintf(url, sizeof url, "https://%s:%d%s", o->host, o->port, o->path);
    if (n < 0 || (size_t)n >= sizeof url)
        goto fail;

    CURL *e = r->easy = curl_easy_init();
    if (e == NULL)
        goto fail;
    CURLcode rc = CURLE_OK;
#define SET(opt, val)                                                                              \
    do {                                                                                           \
        if (rc == CURLE_OK)                                                                        \
            rc = curl_easy_setopt(e, opt, val);                                                    \
    } while (0)
    SET(CURLOPT_URL, url);
    SET(CURLOPT_PROTOCOLS_STR, "https");
    SET(CURLOPT_REDIR_PROTOCOLS_STR, "https");
    SET(CURLOPT_FOLLOWLOCATION, 0L);
    SET(CURLOPT_RESOLVE, r->resolve);
    SET(CURLOPT_RESOLVER_START_FUNCTION, refuse_resolve);
    if (o->source_ip && o->source_ip[0]) { /* leave from the address mail leaves from */
        struct sockaddr_in *s4 = (struct sockaddr_in *)&r->src;
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&r->src;
        if (inet_pton(AF_INET, o->source_ip, &s4->sin_addr) == 1)
            s4->sin_family = AF_INET;
        else if (inet_pton(AF_INET6, o->source_ip, &s6->sin6_addr) == 1)
            s6->sin6_family = AF_INET6;
        SET(CURLOPT_SOCKOPTFUNCTION, bind_source);
        SET(CURLOPT_SOCKOPTDATA, r);
    }
    SET(CURLOPT_SSL_VERIFYPEER, 1L);
    SET(CURLOPT_SSL_VERIFYHOST, 2L);
    SET(CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
    if (h->ca_file) {
        SET(CURLOPT_CAINFO, h->ca_file);
        /* Debian's libcurl also has a built-in CAPATH (/etc/ssl/certs):
         * without this the given bundle would only add to the system store. */
        SET(CURLOPT_CAPATH, NULL);
    }
    SET(CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    SET(CURLOPT_CONNECTTIMEOUT_MS, clamp_ms(o->connect_timeout_ms, DEFAULT_CONNECT_MS));
    SET(CURLOPT_TIMEOUT_MS, clamp_ms(o->total_timeout_ms, DEFAULT_TOTAL_MS));
    if (post) {
        SET(CURLOPT_POST, 1L);
        SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)post->len);
        SET(CURLOPT_POSTFIELDS, r->post_body);
        SET(CURLOPT_HTTPHEADER, r->headers);
    } else {
        SET(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)r->max_body);
    }
    SET(CURLOPT_WRITEFUNCTION, on_write);
    SET(CURLOPT_WRITEDATA, r);
    SET(CURLOPT_NOSIGNAL, 1L);
    SET(CURLOPT_USERAGENT, "mxguard/" MXG_VERSION);
    SET(CURLOPT_PROXY, "");
    SET(CURLOPT_FORBID_REUSE, 1L);
    SET(CURLOPT_ERRORBUFFER, r->errbuf);
    SET(CURLOPT_PRIVATE, (void *)r);
#undef SET
    if (rc != CURLE_OK)
        goto fail;

    /* Only arms the uv timer (curl asks for "0 ms"): the transfer starts, and
     * its callback runs, from the loop. */
    if (curl_multi_add_handle(h->multi, e) != CURLM_OK)
        goto fail;
    r->next = h->reqs;
    if (h->reqs)
        h->reqs->prev = r;
    h->reqs = r;
    if (req)
        *req = r;
    return 0;

fail:
    req_destroy(r);
    return -1;
}

int mxg_https_get(struct mxg_https *h, const struct mxg_https_opts *o, mxg_https_cb cb, void *arg,
                  struct mxg_https_req **req)
{
    return start_req(h, o, NULL, cb, arg, req);
}

int mxg_https_post(struct mxg_https *h, const struct mxg_https_opts *o, const char *content_type,
                   const void *body, size_t body_len, mxg_https_cb cb, void *arg,
                   struct mxg_https_req **req)
{
    struct post_args p = { content_type, body, body_len };
    if (req)
        *req = NULL;
    if (content_type == NULL)
        return -1;
    return start_req(h, o, &p, cb, arg, req);
}

void mxg_https_cancel(struct mxg_https_req *r)
{
    if (r == NULL || r->in_cb)
        return;
    struct mxg_https *h = r->h;
    req_unlink(r);
    curl_multi_remove_handle(h->multi, r->easy);
    req_destroy(r);
}

void mxg_https_set_metrics(struct mxg_https *h, struct mxg_metrics *m)
{
    h->metrics = m;
}
