/* http/https.h — HTTPS GET and POST on the libuv loop with
 * libcurl's multi-socket interface (CURLMOPT_SOCKETFUNCTION/TIMERFUNCTION).
 *
 * Contract:
 *  - Addresses come from the caller (getdns), handed to curl through
 *    CURLOPT_RESOLVE: curl never resolves names itself.
 *  - WebPKI verification of the server for `host` against the CA bundle
 *    given at creation (or the system store); no redirects are followed;
 *    only status 200 is success for GET (any 2xx for POST); an optional required media type
 *    (parameters such as "; charset=utf-8" allowed); the body is capped at
 *    max_body (a larger body, announced or streamed/chunked, fails);
 *    connect and total timeouts.
 *  - The callback runs exactly once per request from a loop callback,
 *    never synchronously; the result (and its body) is owned by the module
 *    and valid only during the callback. mxg_https_cancel() guarantees no
 *    callback. mxg_https_free() cancels everything (run the loop once more
 *    afterwards so that handles close).
 *  - Failures are classified (TLSRPT needs to tell a WebPKI failure from
 *    other fetch errors). */
#ifndef MXG_HTTPS_H
#define MXG_HTTPS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

enum mxg_https_err {
    MXG_HTTPS_OK = 0,
    MXG_HTTPS_ERR_CONNECT,   /* TCP connect failed / refused */
    MXG_HTTPS_ERR_TIMEOUT,   /* connect or total timeout */
    MXG_HTTPS_ERR_TLS,       /* handshake failed for other reasons */
    MXG_HTTPS_ERR_WEBPKI,    /* certificate not trusted / wrong name / expired */
    MXG_HTTPS_ERR_STATUS,    /* HTTP status other than 200 (POST: not 2xx; redirects included) */
    MXG_HTTPS_ERR_CTYPE,     /* wrong media type */
    MXG_HTTPS_ERR_TOO_BIG,   /* body over max_body */
    MXG_HTTPS_ERR_OTHER,
};
const char *mxg_https_err_name(enum mxg_https_err e);

struct mxg_https_opts {
    const char *host;        /* name in the URL, for SNI and verification */
    int port;                /* 443 */
    const char *path;        /* "/.well-known/mta-sts.txt" */
    const struct sockaddr_storage *addrs; /* >= 1 address for host */
    int n_addrs;
    uint64_t connect_timeout_ms, total_timeout_ms;
    size_t max_body;
    const char *require_ctype; /* e.g. "text/plain"; NULL = any */
    const char *source_ip;     /* bind to this local address (upstream.source_*); NULL/"" = any */
};

struct mxg_https_result {
    enum mxg_https_err err;
    long status;             /* HTTP status, 0 if none */
    char ctype[128];
    const char *body;        /* NUL-terminated; valid during the callback */
    size_t body_len;
    char why[256];           /* e.g. "certificate verify failed: unable to get local issuer" */
};

struct mxg_https;
struct mxg_https_req;
typedef void (*mxg_https_cb)(void *arg, const struct mxg_https_result *r);

/* ca_file NULL or "" = system store. Returns NULL with err on failure. */
struct mxg_https *mxg_https_new(uv_loop_t *loop, const char *ca_file, char *err, size_t errlen);
void mxg_https_free(struct mxg_https *h);
/* Count requests by outcome and time them (core/metrics.h); m may be NULL. */
struct mxg_metrics;
void mxg_https_set_metrics(struct mxg_https *h, struct mxg_metrics *m);

/* Returns 0 (callback later, *req set) or -1 (bad options). */
int mxg_https_get(struct mxg_https *h, const struct mxg_https_opts *o, mxg_https_cb cb, void *arg,
                  struct mxg_https_req **req);
void mxg_https_cancel(struct mxg_https_req *req);

/* POST body[0..body_len) to https://host:port/path (TLSRPT delivery,
 * RFC 8460 §5.4) with "Content-Type: content_type" (1..200 printable ASCII
 * characters, no CR/LF). Same transport rules, callback and cancellation
 * rules as mxg_https_get(), with these differences: the body is copied
 * (the caller's buffer may go at once); success (MXG_HTTPS_OK) is any 2xx
 * status (200, 201, 202, ...), anything else is MXG_HTTPS_ERR_STATUS
 * (redirects are not followed); o->require_ctype is ignored; the response
 * body is capped at o->max_body (0 = 4 KiB) — a longer response to a 2xx
 * is cut and still OK (its body is not meant to be used). body may be NULL
 * when body_len is 0. Returns 0 (callback later, *req set) or -1 (bad
 * options). */
int mxg_https_post(struct mxg_https *h, const struct mxg_https_opts *o, const char *content_type,
                   const void *body, size_t body_len, mxg_https_cb cb, void *arg,
                   struct mxg_https_req **req);

#endif
