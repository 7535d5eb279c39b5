/* tests/unit/test_inbound_session.c — the inbound session state machine
 * (proxy/inbound/session.c): command sequences → reply codes, over a real loopback socket, with no upstream
 * involved (every case stops before a RCPT would open a leg, or runs in queue
 * mode). A client thread plays the script; the libuv loop runs the server.
 * Inbound security (docs/ARCHITECTURE.md §Hostile peers): STARTTLS with a
 * certificate made here, the command-injection rule, AUTH PLAIN/LOGIN against
 * a password file made here, the per-network requirements and the brute-force
 * throttle. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <arpa/inet.h>
#include <crypt.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "proxy/inbound/auth.h"
#include "proxy/inbound/server.h"
#include "spool/spool.h"

#define MAX_STEPS 128

/* script tables give only the fields a step needs */
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

/* send: a command line (CRLF appended), NULL (just read a reply), or one of
 *   "!RAW:text"   text as it is (\r\n written out), then read one reply
 *   "!SEND:text"  the same without reading (expect 1)
 *   "!TLS"        TLS handshake on the connection: expect 1 ok, 2 failed
 *   "!TLS12"      the same with the client limited to TLS 1.2
 *   "!RECONNECT"  close, connect again, read the banner
 *   "!RECONNECT:ADDR"  the same from source address ADDR (127.0.0.0/8)
 *   "!SLEEP:MS"   wait MS milliseconds (expect 1)
 *   "!SHUTWR"     shut the client's sending side (a half-close; expect 1)
 *   "!FLOOD:N"    send N pipelined "NOOP" + "VRFY bob" pairs before reading any reply,
 *                 then read them all: 1 when every reply came, in order (250, 252, ...)
 *   "!FLOODCUT:N" the same against a server that cannot queue replies: 1 when the
 *                 server ended the connection before the last reply and every octet
 *                 that came is the start of the right replies, in order (no part of
 *                 a reply followed by another, none left out)
 * expect: the reply code; -1 = the server closed the connection.
 * has / hasnot: text the reply must (not) contain; min_ms: the reply took
 * at least that long. */
struct step {
    const char *send;
    int expect;
    const char *has, *hasnot;
    int min_ms;
};

struct script {
    const char *name;
    struct step steps[MAX_STEPS];
};

struct run {
    int port;
    const struct script *sc;
    int got[MAX_STEPS];
    char text[MAX_STEPS][1024];
    long ms[MAX_STEPS];
    int n;
    uv_async_t done;
};

/* The client's connection: plaintext, then maybe TLS. */
struct conn {
    int fd;
    SSL_CTX *ctx;
    SSL *ssl;
    char buf[16384];
    size_t len;
};

static int conn_open_from(struct conn *c, int port, const char *src)
{
    memset(c, 0, sizeof *c);
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    if (src) {
        struct sockaddr_in from = {.sin_family = AF_INET};
        inet_pton(AF_INET, src, &from.sin_addr);
        if (bind(c->fd, (struct sockaddr *)&from, sizeof from) < 0)
            return -1;
    }
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    struct timeval tv = {10, 0};
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return connect(c->fd, (struct sockaddr *)&sa, sizeof sa);
}

static int conn_open(struct conn *c, int port)
{
    return conn_open_from(c, port, NULL);
}

static void conn_close(struct conn *c)
{
    if (c->ssl)
        SSL_free(c->ssl);
    if (c->ctx)
        SSL_CTX_free(c->ctx);
    if (c->fd >= 0)
        close(c->fd);
    c->ssl = NULL;
    c->ctx = NULL;
    c->fd = -1;
}

static int conn_write(struct conn *c, const char *p, size_t n)
{
    if (c->ssl)
        return SSL_write(c->ssl, p, (int)n) == (int)n ? 0 : -1;
    return write(c->fd, p, n) == (ssize_t)n ? 0 : -1;
}

/* One line without CRLF into out; -1 on EOF / error. */
static int conn_line(struct conn *c, char *out, size_t cap)
{
    for (;;) {
        char *nl = memchr(c->buf, '\n', c->len);
        if (nl) {
            size_t l = (size_t)(nl - c->buf) + 1;
            snprintf(out, cap, "%.*s", (int)(l > 1 && nl[-1] == '\r' ? l - 2 : l - 1), c->buf);
            memmove(c->buf, c->buf + l, c->len - l);
            c->len -= l;
            return 0;
        }
        if (c->len == sizeof c->buf)
            return -1;
        int n = c->ssl ? SSL_read(c->ssl, c->buf + c->len, (int)(sizeof c->buf - c->len))
                       : (int)read(c->fd, c->buf + c->len, sizeof c->buf - c->len);
        if (n <= 0)
            return -1;
        c->len += (size_t)n;
    }
}

/* Read one complete (possibly multi-line) reply; its code, or -1. */
static int read_reply(struct conn *c, char *text, size_t cap)
{
    char line[4096];
    text[0] = 0;
    for (;;) {
        if (conn_line(c, line, sizeof line) < 0)
            return -1;
        size_t tl = strlen(text);
        snprintf(text + tl, cap - tl, "%s%s", tl ? "|" : "", line);
        if (strlen(line) >= 4 && line[3] == ' ')
            return atoi(line);
        if (strlen(line) == 3)
            return atoi(line);
    }
}

static int conn_tls(struct conn *c, int max12)
{
    if (c->len) /* the server sent something before the handshake */
        return 3;
    c->ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_verify(c->ctx, SSL_VERIFY_NONE, NULL);
    if (max12)
        SSL_CTX_set_max_proto_version(c->ctx, TLS1_2_VERSION);
    c->ssl = SSL_new(c->ctx);
    SSL_set_fd(c->ssl, c->fd);
    return SSL_connect(c->ssl) == 1 ? 1 : 2;
}

/* "!FLOOD:N" writer: the commands, all at once (plaintext: a thread of its own may write
 * while the other reads). */
struct flood {
    struct conn *c;
    char *all;
    size_t len;
    int rc;
};

static void *flood_writer(void *arg)
{
    struct flood *f = arg;
    f->rc = conn_write(f->c, f->all, f->len);
    return NULL;
}

/* "!FLOOD:N": 2N pipelined commands ("NOOP", "VRFY bob") written by a thread while nothing
 * is read for a second, through a small receive buffer: the server's replies back up behind
 * its full socket until it stops reading (SESS_OUT_CAP); then all read. 1 when every reply
 * arrives, in order, else 0 (-1: lost). */
static int conn_flood(struct conn *c, int n)
{
    static const char pair[] = "NOOP\r\nVRFY bob\r\n";
    struct flood f = {c, NULL, (size_t)n * (sizeof pair - 1), 0};
    f.all = malloc(f.len);
    if (!f.all)
        return -1;
    for (int i = 0; i < n; i++)
        memcpy(f.all + (size_t)i * (sizeof pair - 1), pair, sizeof pair - 1);
    /* it stops growing: the replies back up at the server after its send buffer */
    int rcvbuf = 16384;
    setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    pthread_t th;
    pthread_create(&th, NULL, flood_writer, &f);
    usleep(1000 * 1000);
    int rc = 1;
    char text[1024];
    for (int i = 0; i < 2 * n; i++) {
        int code = read_reply(c, text, sizeof text);
        if (code < 0) {
            rc = -1;
            break;
        }
        if (code != (i % 2 ? 252 : 250))
            rc = 0;
    }
    if (rc < 0)
        shutdown(c->fd, SHUT_RDWR); /* the writer must not wait for a server that stopped */
    pthread_join(th, NULL);
    free(f.all);
    return f.rc < 0 ? -1 : rc;
}

/* Times the server asked the test allocator for memory (no_memory below): set on
 * the loop thread, read by the client thread. */
static int no_memory_calls;

/* "!FLOODCUT:N": as conn_flood, but nothing is read until the server had to keep a
 * reply back (it asked no_memory: its socket was full; at most 30 s), then every
 * octet until the connection ends is compared with the replies due, in order.
 * 1: a prefix of them, shorter than all, and the server ended the connection (an
 * end of file or a reset, not the read timeout); else 0. */
static int conn_flood_cut(struct conn *c, int n)
{
    static const char pair[] = "NOOP\r\nVRFY bob\r\n";
    static const char *const due[2] = {
        "250 2.0.0 Ok\r\n",
        "252 2.5.0 Cannot VRFY user, but will accept message and attempt delivery\r\n"};
    struct flood f = {c, NULL, (size_t)n * (sizeof pair - 1), 0};
    f.all = malloc(f.len);
    if (!f.all)
        return -1;
    for (int i = 0; i < n; i++)
        memcpy(f.all + (size_t)i * (sizeof pair - 1), pair, sizeof pair - 1);
    int rcvbuf = 16384;
    setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    pthread_t th;
    pthread_create(&th, NULL, flood_writer, &f);
    for (int ms = 0; ms < 30000 && __atomic_load_n(&no_memory_calls, __ATOMIC_ACQUIRE) == 0;
         ms += 10)
        usleep(10 * 1000);
    long replies = 0;
    size_t at = 0; /* octets of due[replies % 2] matched so far */
    int prefix = 1, ended = 0;
    for (;;) {
        if (c->len == 0) {
            ssize_t got = read(c->fd, c->buf, sizeof c->buf);
            if (got <= 0) {
                ended = got == 0 || errno == ECONNRESET;
                break;
            }
            c->len = (size_t)got;
        }
        for (size_t i = 0; i < c->len && prefix; i++) {
            const char *want = due[replies % 2];
            if (c->buf[i] != want[at]) {
                prefix = 0;
                break;
            }
            if (want[++at] == 0) {
                replies++;
                at = 0;
            }
        }
        c->len = 0;
        if (!prefix)
            break;
    }
    shutdown(c->fd, SHUT_RDWR); /* the writer must not wait for a server that stopped */
    pthread_join(th, NULL);
    free(f.all);
    int ok = prefix && ended && replies < 2L * n;
    if (!ok) /* the client thread: cmocka's checks are the main thread's */
        fprintf(stderr, "FLOODCUT: %ld whole replies, %s, %s\n", replies,
                prefix ? "in order" : "then octets that are no part of the next one",
                ended ? "then the connection ended" : "and the connection stayed open");
    return ok;
}

static long elapsed_ms(const struct timespec *t0)
{
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (t1.tv_sec - t0->tv_sec) * 1000 + (t1.tv_nsec - t0->tv_nsec) / 1000000;
}

static void *client_main(void *arg)
{
    struct run *r = arg;
    struct conn c;
    if (conn_open(&c, r->port) == 0) {
        for (int i = 0; i < MAX_STEPS && r->sc->steps[i].expect; i++) {
            const char *s = r->sc->steps[i].send;
            struct timespec t0;
            clock_gettime(CLOCK_MONOTONIC, &t0);
            r->text[r->n][0] = 0;
            if (s && strncmp(s, "!TLS", 4) == 0) {
                r->got[r->n++] = conn_tls(&c, strcmp(s, "!TLS12") == 0);
                continue;
            }
            if (s && strncmp(s, "!SEND:", 6) == 0) {
                r->got[r->n++] = conn_write(&c, s + 6, strlen(s + 6)) == 0 ? 1 : -1;
                continue;
            }
            if (s && strncmp(s, "!FLOODCUT:", 10) == 0) {
                r->got[r->n++] = conn_flood_cut(&c, atoi(s + 10));
                continue;
            }
            if (s && strncmp(s, "!FLOOD:", 7) == 0) {
                r->got[r->n++] = conn_flood(&c, atoi(s + 7));
                continue;
            }
            if (s && strcmp(s, "!SHUTWR") == 0) {
                r->got[r->n++] = shutdown(c.fd, SHUT_WR) == 0 ? 1 : -1;
                continue;
            }
            if (s && strncmp(s, "!SLEEP:", 7) == 0) {
                usleep((useconds_t)atoi(s + 7) * 1000);
                r->got[r->n++] = 1;
                continue;
            }
            if (s && strncmp(s, "!RECONNECT", 10) == 0) { /* "!RECONNECT:127.0.0.2": from there */
                conn_close(&c);
                if (conn_open_from(&c, r->port, s[10] == ':' ? s + 11 : NULL) != 0)
                    break;
            } else if (s && strncmp(s, "!RAW:", 5) == 0) {
                if (conn_write(&c, s + 5, strlen(s + 5)) < 0)
                    break;
            } else if (s) {
                char buf[8192];
                int n = snprintf(buf, sizeof buf, "%s\r\n", s);
                if (conn_write(&c, buf, (size_t)n) < 0)
                    break;
            }
            r->got[r->n] = read_reply(&c, r->text[r->n], sizeof r->text[0]);
            r->ms[r->n++] = elapsed_ms(&t0);
        }
    }
    conn_close(&c);
    uv_async_send(&r->done);
    return NULL;
}

static void on_done(uv_async_t *a)
{
    struct mxg_server *srv = a->data;
    uv_close((uv_handle_t *)a, NULL);
    mxg_server_drain(srv, NULL);
}

/* ------------------------------------------------ the inbound security fixture */

static char fx_dir[64], fx_cert[128], fx_key[128], fx_users[128];

/* A self-signed EC certificate for unit.test, and a password file:
 * alice/secret (yescrypt), bob/hunter2 (SHA-512 crypt). */
static int fixture_setup(void **state)
{
    (void)state;
    snprintf(fx_dir, sizeof fx_dir, "/tmp/mxg-session-XXXXXX");
    if (!mkdtemp(fx_dir))
        return -1;
    snprintf(fx_cert, sizeof fx_cert, "%s/cert.pem", fx_dir);
    snprintf(fx_key, sizeof fx_key, "%s/key.pem", fx_dir);
    snprintf(fx_users, sizeof fx_users, "%s/users", fx_dir);
    EVP_PKEY *pkey = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400);
    X509_set_pubkey(x, pkey);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                               (const unsigned char *)"unit.test", -1, -1, 0);
    X509_set_issuer_name(x, X509_get_subject_name(x));
    int ok = pkey && X509_sign(x, pkey, EVP_sha256()) > 0;
    FILE *f = fopen(fx_cert, "w");
    ok = ok && f && PEM_write_X509(f, x) == 1;
    if (f)
        fclose(f);
    f = fopen(fx_key, "w");
    ok = ok && f && PEM_write_PrivateKey(f, pkey, NULL, NULL, 0, NULL, NULL) == 1;
    if (f)
        fclose(f);
    X509_free(x);
    EVP_PKEY_free(pkey);
    f = fopen(fx_users, "w");
    static const char *const users[][3] = {{"alice", "$y$", "secret"}, {"bob", "$6$", "hunter2"}};
    for (int i = 0; ok && f && i < 2; i++) {
        char salt[CRYPT_GENSALT_OUTPUT_SIZE];
        struct crypt_data cd;
        memset(&cd, 0, sizeof cd);
        const char *h = crypt_gensalt_rn(users[i][1], 0, NULL, 0, salt, sizeof salt)
                            ? crypt_rn(users[i][2], salt, &cd, (int)sizeof cd)
                            : NULL;
        ok = h && h[0] == '$';
        fprintf(f, "%s:%s\n", users[i][0], h ? h : "");
    }
    if (f)
        fclose(f);
    chmod(fx_users, 0600);
    return ok ? 0 : -1;
}

static int fixture_teardown(void **state)
{
    (void)state;
    unlink(fx_cert);
    unlink(fx_key);
    unlink(fx_users);
    return rmdir(fx_dir);
}

struct sopts {
    int max_errors;
    int queue_mode;            /* a queue-mode listener ... */
    struct mxg_spool *spool;   /* ... whose messages go here */
    int tls;                   /* server.tls_cert_file / key_file: the fixture's */
    int auth;                  /* auth.password_file: the fixture's */
    void (*tweak)(struct mxg_config *c);
    void *(*out_alloc)(size_t n); /* the server's test_out_alloc */
};

static void run_with(const struct script *sc, const struct sopts *o)
{
    static struct mxg_config cfg;
    mxg_config_defaults(&cfg);
    cfg.max_errors = o->max_errors ? o->max_errors : 20;
    cfg.drain_timeout_ms = 2000;
    cfg.auth_delay_ms = 0;
    /* no trusted-address file unless a test asks for one (tweak) */
    snprintf(cfg.state_dir, sizeof cfg.state_dir, "/nonexistent/mxg-unit");
    snprintf(cfg.hostname, sizeof cfg.hostname, "unit.test");
    struct sockaddr_in *sin = (struct sockaddr_in *)&cfg.listen[0].sa;
    memset(sin, 0, sizeof cfg.listen[0].sa);
    sin->sin_family = AF_INET;
    inet_pton(AF_INET, "127.0.0.1", &sin->sin_addr);
    sin->sin_port = 0;
    cfg.n_listen = 1;
    if (o->queue_mode) {
        cfg.queue_listen[0] = cfg.listen[0];
        cfg.n_queue_listen = 1;
        cfg.n_listen = 0;
    }
    if (o->tls) {
        snprintf(cfg.in_tls_cert_file, sizeof cfg.in_tls_cert_file, "%s", fx_cert);
        snprintf(cfg.in_tls_key_file, sizeof cfg.in_tls_key_file, "%s", fx_key);
    }
    if (o->auth)
        snprintf(cfg.auth_password_file, sizeof cfg.auth_password_file, "%s", fx_users);
    if (o->tweak)
        o->tweak(&cfg);
    mxg_log_setup(MXG_LOG_ERR, 0);

    uv_loop_t loop;
    uv_loop_init(&loop);
    struct mxg_server srv;
    char err[1024];
    memset(&srv, 0, sizeof srv);
    srv.spool = o->spool;
    srv.test_out_alloc = o->out_alloc;
    struct mxg_tls_ctx *tls = NULL;
    struct mxg_auth_db *db = NULL;
    if (mxg_inbound_load(&cfg, &tls, &db, err, sizeof err) < 0) /* what `mxguard run` does */
        fail_msg("%s: %s", sc->name, err);
    srv.tls_server = tls;
    srv.auth_db = db;
    assert_int_equal(mxg_server_start(&srv, &loop, &cfg, NULL, err, sizeof err), 0);
    struct sockaddr_storage bound;
    int len = sizeof bound;
    uv_tcp_getsockname(&srv.listeners[0], (struct sockaddr *)&bound, &len);
    /* started, not yet listening: a client is refused, not left without a greeting */
    int probe = socket(AF_INET, SOCK_STREAM, 0);
    int refused = connect(probe, (struct sockaddr *)&bound, sizeof(struct sockaddr_in)) < 0 &&
                  errno == ECONNREFUSED;
    close(probe);
    if (!refused)
        fail_msg("%s: a connection before mxg_server_listen() was not refused", sc->name);
    assert_int_equal(mxg_server_listen(&srv, err, sizeof err), 0);

    struct run *r = calloc(1, sizeof *r);
    assert_non_null(r);
    r->port = ntohs(((struct sockaddr_in *)&bound)->sin_port);
    r->sc = sc;
    uv_async_init(&loop, &r->done, on_done);
    r->done.data = &srv;
    pthread_t th;
    pthread_create(&th, NULL, client_main, r);
    uv_run(&loop, UV_RUN_DEFAULT);
    pthread_join(th, NULL);
    assert_int_equal(uv_loop_close(&loop), 0);
    assert_null(srv.auth_throttle); /* freed when the drain finished */
    mxg_tls_ctx_free(tls);
    mxg_auth_db_free(db);

    for (int i = 0; i < MAX_STEPS && sc->steps[i].expect; i++) {
        const struct step *st = &sc->steps[i];
        int got = i < r->n ? r->got[i] : -2;
        const char *what = st->send ? st->send : "(read)";
        if (got != st->expect)
            fail_msg("%s: step %d ('%.40s'): got %d, expected %d [%s]", sc->name, i, what, got,
                     st->expect, r->text[i]);
        if (st->has && !strstr(r->text[i], st->has))
            fail_msg("%s: step %d ('%.40s'): [%s] lacks [%s]", sc->name, i, what, r->text[i],
                     st->has);
        if (st->hasnot && strstr(r->text[i], st->hasnot))
            fail_msg("%s: step %d ('%.40s'): [%s] has [%s]", sc->name, i, what, r->text[i],
                     st->hasnot);
        if (st->min_ms && r->ms[i] < st->min_ms)
            fail_msg("%s: step %d ('%.40s'): answered after %ld ms, expected >= %d ms", sc->name,
                     i, what, r->ms[i], st->min_ms);
    }
    free(r);
}

/* queue_spool: NULL = an ordinary (proxy) listener; else a queue-mode
 * listener whose messages go to that spool. */
static void run_script_on(const struct script *sc, int max_errors, int queue_mode,
                          struct mxg_spool *queue_spool)
{
    struct sopts o = {.max_errors = max_errors, .queue_mode = queue_mode, .spool = queue_spool};
    run_with(sc, &o);
}

static void run_script(const struct script *sc, int max_errors)
{
    run_script_on(sc, max_errors, 0, NULL);
}

static char long_noop[700], long_ehlo[3000], long_mail[1500];

static void test_sequences(void **st)
{
    (void)st;
    memset(long_noop, 'x', sizeof long_noop - 1);
    memcpy(long_noop, "NOOP ", 5);
    memset(long_ehlo, 'y', sizeof long_ehlo - 1);
    memcpy(long_ehlo, "EHLO ", 5);
    memset(long_mail, ' ', sizeof long_mail - 1);
    memcpy(long_mail, "MAIL FROM:<a@b.example>", 23);
    const struct script scripts[] = {
        {"basic", {{NULL, 220}, {"NOOP", 250}, {"HELP", 214}, {"VRFY bob", 252},
                   {"EXPN list", 502}, {"STARTTLS", 502}, {"BDAT 10 LAST", 502},
                   {"AUTH PLAIN", 502}, {"FOO bar", 500}, {"QUIT", 221}, {0, 0}}},
        {"order", {{NULL, 220}, {"MAIL FROM:<a@b.example>", 503}, {"RCPT TO:<c@d.example>", 503},
                   {"EHLO", 501}, {"EHLO client.example", 250},
                   {"RCPT TO:<c@d.example>", 503}, {"DATA", 503},
                   {"MAIL FROM:<a@b.example>", 250}, {"MAIL FROM:<a@b.example>", 503},
                   {"DATA", 503}, {"RSET", 250}, {"MAIL FROM:<>", 250}, {"QUIT", 221},
                   {0, 0}}},
        {"addresses", {{NULL, 220}, {"EHLO c", 250}, {"MAIL FROM:a@b.example", 501},
                       {"MAIL FROM:<j\xc3\xb6rg@b.example>", 553},
                       {"MAIL FROM:<a@b.example> FOO=1", 555},
                       {"MAIL FROM:<a@b.example> SIZE=999999999999", 552},
                       {"MAIL FROM:<a@b.example> BODY=BINARYMIME", 555},
                       {"MAIL FROM:<a@b.example> SIZE=1000 BODY=8BITMIME", 250},
                       {"RCPT TO:<postmaster>", 553}, {"RCPT TO:<x@[192.0.2.1]>", 553},
                       {"RCPT TO:<bad@@x.example>", 501}, {"RCPT TO:<>", 501},
                       {"RCPT TO:<x@y.example> NOTIFY=MAYBE", 501},
                       {"RCPT TO:<j\xc3\xb6rg@y.example>", 553}, {"DATA", 503},
                       {"QUIT", 221}, {0, 0}}},
        {"helo-no-params", {{NULL, 220}, {"HELO c", 250}, {"MAIL FROM:<a@b.example> SIZE=10", 555},
                            {"MAIL FROM:<a@b.example>", 250}, {"QUIT", 221}, {0, 0}}},
        {"long-lines", {{NULL, 220}, {long_noop, 500}, {long_ehlo, 500}, {"NOOP", 250},
                        {"EHLO c", 250}, {long_mail, 250}, {"QUIT", 221}, {0, 0}}},
    };
    for (size_t i = 0; i < sizeof scripts / sizeof scripts[0]; i++)
        run_script(&scripts[i], 20);
}

/* A client that pipelines many commands and reads late (replies back up behind its full
 * socket: written straight to the socket while nothing is queued, queued once it is full,
 * reading stopped while the queue is over its cap) gets every reply, in order, and the
 * session goes on. */
static void test_late_reader(void **st)
{
    (void)st;
    const struct script sc = {"late-reader", {{NULL, 220}, {"EHLO c", 250}, {"!FLOOD:150000", 1},
                                              {"NOOP", 250}, {"QUIT", 221}, {0, 0}}};
    run_script(&sc, 20);
}

/* test_out_alloc: no memory for a reply that has to wait (counted). */
static void *no_memory(size_t n)
{
    (void)n;
    __atomic_add_fetch(&no_memory_calls, 1, __ATOMIC_ACQ_REL);
    return NULL;
}

/* Out of memory for a reply that has to wait for the client's socket (part of it
 * written, or none): the client never gets part of a reply followed by something
 * else, nor a later reply in the place of a lost one — the connection ends after
 * the replies that went out whole. */
static void test_reply_lost_closes(void **st)
{
    (void)st;
    const struct script sc = {"reply-lost", {{NULL, 220}, {"EHLO c", 250},
                                             {"!FLOODCUT:150000", 1}, {0, 0}}};
    struct sopts o = {.max_errors = 20, .out_alloc = no_memory};
    run_with(&sc, &o);
}

static void test_too_many_errors(void **st)
{
    (void)st;
    const struct script sc = {"errors", {{NULL, 220}, {"FOO", 500}, {"FOO", 500}, {"FOO", 500},
                                         {"FOO", 500}, {NULL, 421}, {0, 0}}};
    run_script(&sc, 3);
}

/* Queue mode (server.queue_listen): RCPTs accepted without any upstream,
 * 250 only once the message is in the spool, with every recipient pending. */
static void test_queue_mode(void **st)
{
    (void)st;
    char dir[] = "/tmp/mxg-session-spool-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char err[256];
    struct mxg_spool *sp = mxg_spool_open(dir, err, sizeof err);
    assert_non_null(sp);
    const struct script sc = {
        "queue", {{NULL, 220}, {"EHLO c", 250}, {"MAIL FROM:<a@b.example> SIZE=100", 250},
                  {"RCPT TO:<x@one.example> NOTIFY=FAILURE", 250}, {"RCPT TO:<y@two.example>", 250},
                  {"RCPT TO:<bad@@x.example>", 501}, {"DATA", 354},
                  {"Subject: queued\r\n\r\nline one\r\n..dot\r\n.", 250},
                  {"MAIL FROM:<>", 250}, {"RCPT TO:<z@three.example>", 250}, {"RSET", 250},
                  {"QUIT", 221}, {0, 0}}};
    run_script_on(&sc, 20, 1, sp);
    char(*ids)[MXG_SPOOL_ID_MAX] = NULL;
    int n = 0;
    assert_int_equal(mxg_spool_list(sp, &ids, &n), 0);
    assert_int_equal(n, 1); /* the RSET transaction stored nothing */
    struct mxg_spool_env env;
    assert_int_equal(mxg_spool_load(sp, ids[0], &env, err, sizeof err), 0);
    assert_string_equal(env.from, "a@b.example");
    assert_int_equal(env.mp.size, 100);
    assert_int_equal(env.n_rcpts, 2);
    assert_string_equal(env.rcpts[0].addr, "x@one.example");
    assert_string_equal(env.rcpts[0].domain, "one.example");
    assert_string_equal(env.rcpts[0].rp.notify, "FAILURE");
    assert_string_equal(env.rcpts[1].addr, "y@two.example");
    assert_int_equal(env.rcpts[0].state, MXG_RCPT_PENDING);
    assert_int_equal(env.rcpts[1].state, MXG_RCPT_PENDING);
    assert_int_equal(env.attempts, 0);
    assert_true(env.next_attempt_ms <= env.created_ms);
    int fd = mxg_spool_body_open(sp, ids[0]);
    assert_true(fd >= 0);
    char body[4096];
    ssize_t got = read(fd, body, sizeof body - 1);
    close(fd);
    assert_true(got > 0);
    body[got] = 0;
    assert_int_equal((int)env.body_size, (int)got);
    assert_non_null(strstr(body, "Received: from c ([127.0.0.1])"));
    assert_non_null(strstr(body, "Subject: queued\r\n\r\nline one\r\n..dot\r\n"));
    assert_null(strstr(body, "\r\n.\r\n")); /* stored without the end marker */
    mxg_spool_env_free(&env);
    mxg_spool_remove(sp, ids[0]);
    free(ids);
    mxg_spool_close(sp);
    rmdir(dir);
}

/* A client that pipelines QUIT behind the final dot and then shuts its sending side (Exim
 * 4.96 does) gets the dot's reply and the QUIT's, and the message is stored once (queue mode;
 * the relaying path, where the legs hold the dot while the half-close arrives, is
 * t_mta_smtplib.sh's and t_mta_exim.sh's). */
static void test_half_close_after_dot(void **st)
{
    (void)st;
    char dir[] = "/tmp/mxg-session-spool-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char err[256];
    struct mxg_spool *sp = mxg_spool_open(dir, err, sizeof err);
    assert_non_null(sp);
    const struct script sc = {
        "half-close", {{NULL, 220}, {"EHLO c", 250}, {"MAIL FROM:<a@b.example>", 250},
                       {"RCPT TO:<x@one.example>", 250}, {"DATA", 354},
                       {"!SEND:Subject: half\r\n\r\nbody\r\n.\r\nQUIT\r\n", 1},
                       {"!SHUTWR", 1}, {NULL, 250}, {NULL, 221}, {NULL, -1}, {0, 0}}};
    run_script_on(&sc, 20, 1, sp);
    char(*ids)[MXG_SPOOL_ID_MAX] = NULL;
    int n = 0;
    assert_int_equal(mxg_spool_list(sp, &ids, &n), 0);
    assert_int_equal(n, 1);
    mxg_spool_remove(sp, ids[0]);
    free(ids);
    mxg_spool_close(sp);
    rmdir(dir);
}

/* Queue mode without a spool refuses recipients temporarily. */
static void test_queue_mode_no_spool(void **st)
{
    (void)st;
    const struct script sc = {"queue-nospool",
                              {{NULL, 220}, {"EHLO c", 250}, {"MAIL FROM:<a@b.example>", 250},
                               {"RCPT TO:<x@one.example>", 451}, {"DATA", 503}, {"QUIT", 221},
                               {0, 0}}};
    run_script_on(&sc, 20, 1, NULL);
}

/* ======================================================= inbound security */

#define GOOD "AUTH PLAIN AGFsaWNlAHNlY3JldA=="  /* \0alice\0secret */
#define WRONG "AUTH PLAIN AGFsaWNlAHdyb25n"     /* \0alice\0wrong */
#define TLS_UP {"STARTTLS", 220, "2.0.0 Ready to start TLS", NULL, 0}, {"!TLS", 1, NULL, NULL, 0}

static char long_auth[3000];

/* STARTTLS and AUTH offered as RFC 3207 / RFC 4954 say, every edge case of
 * the exchange. */
static void test_starttls_auth(void **st)
{
    (void)st;
    memset(long_auth, 'A', sizeof long_auth - 1);
    const struct script sc = {
        "tls+auth",
        {{NULL, 220},
         {"STARTTLS", 503, "send EHLO first"},
         {"EHLO c", 250, "STARTTLS", "AUTH"}, /* AUTH only after TLS */
         {GOOD, 538, "5.7.11 Encryption required"},
         {"STARTTLS now", 501, "5.5.4"},
         {"MAIL FROM:<a@b.example>", 250},
         {"STARTTLS", 503, "mail transaction"},
         {"RSET", 250},
         TLS_UP,
         {"MAIL FROM:<a@b.example>", 503, "send HELO/EHLO first"}, /* everything forgotten */
         {"EHLO c", 250, "AUTH PLAIN LOGIN", "STARTTLS"},
         {"STARTTLS", 503, "already active"},
         {"AUTH", 501, "5.5.4"},
         {"AUTH CRAM-MD5", 504, "5.5.4"},
         {"AUTH PLAIN a b", 501, "5.5.4"},
         {WRONG, 535, "5.7.8 Authentication credentials invalid"},
         {"AUTH PLAIN YW$j", 501, "5.5.2"},              /* not base64 */
         {"AUTH PLAIN YWxpY2U=", 501, "5.5.2"},          /* base64, not PLAIN */
         {"AUTH PLAIN Y2Fyb2wAYWxpY2UAc2VjcmV0", 535},   /* authzid carol != alice */
         {"AUTH PLAIN AABzZWNyZXQ=", 535},               /* empty user */
         {"AUTH PLAIN", 334},                            /* "334 " + empty challenge */
         {"*", 501, "5.0.0"},                            /* cancelled */
         {"AUTH PLAIN", 334},
         {long_auth, 500, "5.5.6"},                      /* exchange line too long */
         {"NOOP", 250},                                  /* a command again */
         {"MAIL FROM:<a@b.example>", 250},
         {GOOD, 503, "mail transaction"},
         {"RSET", 250},
         {"auth plain", 334},
         {"AGFsaWNlAHNlY3JldA==", 235, "2.7.0"},
         {GOOD, 503, "already authenticated"},
         {"EHLO c", 250, "AUTH"},                        /* EHLO keeps the AUTH state */
         {"MAIL FROM:<a@b.example> AUTH=<>", 250},       /* RFC 4954 §5 */
         {"RSET", 250},
         {"MAIL FROM:<a@b.example> AUTH", 501},
         {"HELP", 214, "STARTTLS AUTH"},
         {"QUIT", 221},
         {0, 0}}};
    struct sopts o = {.tls = 1, .auth = 1};
    run_with(&sc, &o);
}

/* AUTH LOGIN, with and without an initial response. */
static void test_auth_login(void **st)
{
    (void)st;
    const struct script sc = {
        "login",
        {{NULL, 220}, {"EHLO c", 250}, TLS_UP, {"EHLO c", 250},
         {"AUTH LOGIN", 334, "334 VXNlcm5hbWU6"},
         {"Ym9i", 334, "334 UGFzc3dvcmQ6"},
         {"d3Jvbmc=", 535},
         {"AUTH LOGIN Ym9i", 334, "UGFzc3dvcmQ6"},
         {"*", 501},
         {"AUTH LOGIN", 334},
         {"not base64!", 501, "5.5.2"},
         {"AUTH LOGIN", 334},
         {"=", 501, "5.5.2"},                           /* empty user name */
         {"AUTH LOGIN Ym9i", 334},
         {"aHVudGVyMg==", 235},
         {"MAIL FROM:<bob@b.example>", 250},
         {"QUIT", 221},
         {0, 0}}};
    struct sopts o = {.tls = 1, .auth = 1};
    run_with(&sc, &o);
}

/* CVE-2011-0411: what the client pipelined behind STARTTLS is never run. */
static void test_starttls_injection(void **st)
{
    (void)st;
    const struct script sc = {
        "injection",
        {{NULL, 220}, {"EHLO c", 250},
         {"!RAW:STARTTLS\r\nEHLO evil\r\nMAIL FROM:<injected@evil.example>\r\n", 220},
         {"!TLS", 1},                                /* nothing but the 220 came before */
         {"EHLO c", 250},
         {"RCPT TO:<x@y.example>", 503, "need MAIL"}, /* the injected MAIL never ran */
         {"MAIL FROM:<a@b.example>", 250},
         {"QUIT", 221},
         {0, 0}}};
    struct sopts o = {.tls = 1};
    run_with(&sc, &o);
}

static void tweak_tls13(struct mxg_config *c)
{
    c->in_tls_min_version = MXG_INBOUND_TLS13;
}

/* server.tls_min_version = TLSv1.3 against a TLS 1.2 client: no session. */
static void test_tls_min_version(void **st)
{
    (void)st;
    const struct script sc = {"tls13-only",
                              {{NULL, 220}, {"EHLO c", 250}, {"STARTTLS", 220}, {"!TLS12", 2},
                               {NULL, -1}, {0, 0}}}; /* and the server closed */
    struct sopts o = {.tls = 1, .tweak = tweak_tls13};
    run_with(&sc, &o);
    const struct script ok = {"tls13-ok",
                              {{NULL, 220}, {"EHLO c", 250}, TLS_UP, {"EHLO c", 250},
                               {"QUIT", 221}, {0, 0}}};
    run_with(&ok, &o);
}

static struct mxg_cidr loopback_net;

static void tweak_require_tls(struct mxg_config *c)
{
    mxg_parse_cidr("127.0.0.0/8", &loopback_net);
    c->require_tls[0] = loopback_net;
    c->n_require_tls = 1;
}

static void tweak_require_auth(struct mxg_config *c)
{
    tweak_require_tls(c);
    c->require_auth[0] = loopback_net;
    c->n_require_auth = 1;
}

/* Per-network requirements: 530 5.7.0 at MAIL until they are met. */
static void test_network_requirements(void **st)
{
    (void)st;
    const struct script tls = {
        "require-tls",
        {{NULL, 220}, {"EHLO c", 250}, {"MAIL FROM:<a@b.example>", 530, "5.7.0 Must issue a STARTTLS"},
         {"RCPT TO:<x@y.example>", 503}, TLS_UP, {"EHLO c", 250},
         {"MAIL FROM:<a@b.example>", 250}, {"QUIT", 221}, {0, 0}}};
    struct sopts o = {.tls = 1, .tweak = tweak_require_tls};
    run_with(&tls, &o);
    const struct script auth = {
        "require-auth",
        {{NULL, 220}, {"EHLO c", 250}, {"MAIL FROM:<a@b.example>", 530, "5.7.0 Authentication required"},
         TLS_UP, {"EHLO c", 250},
         {"MAIL FROM:<a@b.example>", 530, "5.7.0 Authentication required"},
         {WRONG, 535}, {"MAIL FROM:<a@b.example>", 530},
         {GOOD, 235}, {"MAIL FROM:<a@b.example>", 250}, {"QUIT", 221}, {0, 0}}};
    struct sopts oa = {.tls = 1, .auth = 1, .tweak = tweak_require_auth};
    run_with(&auth, &oa);
}

static void tweak_plain_loopback(struct mxg_config *c)
{
    c->auth_plaintext_loopback = 1;
}

/* auth.allow_plaintext_loopback: AUTH without TLS from 127.0.0.1. */
static void test_plaintext_loopback(void **st)
{
    (void)st;
    const struct script sc = {
        "plain-loopback",
        {{NULL, 220}, {"HELO c", 250}, {GOOD, 503, "send EHLO first"},
         {"EHLO c", 250, "AUTH PLAIN LOGIN", "STARTTLS"}, {GOOD, 235},
         {"MAIL FROM:<a@b.example>", 250}, {"QUIT", 221}, {0, 0}}};
    struct sopts o = {.auth = 1, .tweak = tweak_plain_loopback};
    run_with(&sc, &o);
}

static void tweak_throttle(struct mxg_config *c)
{
    c->auth_max_failures = 2;
    c->auth_max_user_failures = 0;
    c->auth_lockout_ms = 60000;
}

static void tweak_user_throttle(struct mxg_config *c)
{
    c->auth_max_failures = 10;
    c->auth_max_user_failures = 2;
    c->auth_lockout_ms = 60000;
}

static void tweak_delay(struct mxg_config *c)
{
    c->auth_delay_ms = 300;
}

/* Brute force: the address's second failure gets 421 and the connection is
 * closed; a new connection's AUTH gets 454 even with the right password. Per
 * user: that user is refused, others are not. The failure delay holds back
 * the 535 and keeps pipelined replies in order. */
static void test_throttle(void **st)
{
    (void)st;
    const struct script addr = {
        "throttle-address",
        {{NULL, 220}, {"EHLO c", 250}, TLS_UP, {"EHLO c", 250},
         {WRONG, 535}, {WRONG, 421, "4.7.0"}, {NULL, -1},
         {"!RECONNECT", 220}, {"EHLO c", 250}, TLS_UP, {"EHLO c", 250},
         {GOOD, 454, "4.7.0"}, {"AUTH LOGIN", 454}, {"QUIT", 221}, {0, 0}}};
    struct sopts o = {.tls = 1, .auth = 1, .tweak = tweak_throttle};
    run_with(&addr, &o);
    const struct script user = {
        "throttle-user",
        {{NULL, 220}, {"EHLO c", 250}, TLS_UP, {"EHLO c", 250},
         {WRONG, 535}, {WRONG, 535}, {GOOD, 454, "4.7.0"},
         {"AUTH PLAIN AGJvYgBodW50ZXIy", 235}, {"QUIT", 221}, {0, 0}}};
    struct sopts ou = {.tls = 1, .auth = 1, .tweak = tweak_user_throttle};
    run_with(&user, &ou);
    const struct script delay = {
        "failure-delay",
        {{NULL, 220}, {"EHLO c", 250}, TLS_UP, {"EHLO c", 250},
         {WRONG, 535, NULL, NULL, 250},
         {"!RAW:AUTH PLAIN AGFsaWNlAHdyb25n\r\nNOOP\r\n", 535, NULL, NULL, 250},
         {NULL, 250}, /* the NOOP's reply after the 535 */
         {GOOD, 235}, {"QUIT", 221}, {0, 0}}};
    struct sopts od = {.tls = 1, .auth = 1, .tweak = tweak_delay};
    run_with(&delay, &od);
}

/* The client leaves while its password is being checked, or while its 535
 * is held back: the session goes away cleanly (ASan builds check the rest). */
static void test_auth_client_gone(void **st)
{
    (void)st;
    const struct script sc = {
        "gone",
        {{NULL, 220}, {"EHLO c", 250}, TLS_UP, {"EHLO c", 250},
         {"!SEND:" GOOD "\r\n", 1}, {"!RECONNECT", 220}, {"EHLO c", 250}, TLS_UP,
         {"EHLO c", 250}, {"!SEND:" WRONG "\r\n", 1}, {"!RECONNECT", 220}, {"QUIT", 221},
         {0, 0}}};
    struct sopts o = {.tls = 1, .auth = 1, .tweak = tweak_delay};
    run_with(&sc, &o);
}

/* RFC 3848: the Received header of a message from an authenticated TLS
 * client says ESMTPSA and names the TLS version and cipher (queue mode: the
 * message is in the spool, no upstream needed). */
static void test_received_esmtpsa(void **st)
{
    (void)st;
    char dir[] = "/tmp/mxg-session-spool-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char err[256];
    struct mxg_spool *sp = mxg_spool_open(dir, err, sizeof err);
    assert_non_null(sp);
    const struct script sc = {
        "esmtpsa",
        {{NULL, 220}, {"EHLO c", 250}, TLS_UP, {"EHLO client.example", 250}, {GOOD, 235},
         {"MAIL FROM:<a@b.example>", 250}, {"RCPT TO:<x@one.example>", 250}, {"DATA", 354},
         {"Subject: over TLS\r\n\r\nbody\r\n.", 250}, {"QUIT", 221}, {0, 0}}};
    struct sopts o = {.queue_mode = 1, .spool = sp, .tls = 1, .auth = 1};
    run_with(&sc, &o);
    char(*ids)[MXG_SPOOL_ID_MAX] = NULL;
    int n = 0;
    assert_int_equal(mxg_spool_list(sp, &ids, &n), 0);
    assert_int_equal(n, 1);
    int fd = mxg_spool_body_open(sp, ids[0]);
    assert_true(fd >= 0);
    char body[4096];
    ssize_t got = read(fd, body, sizeof body - 1);
    close(fd);
    assert_true(got > 0);
    body[got] = 0;
    if (!strstr(body, "Received: from client.example ([127.0.0.1])\r\n\t(using TLSv1.3 with cipher ") ||
        !strstr(body, "\r\n\tby unit.test (mxguard) with ESMTPSA id "))
        fail_msg("Received header: %s", body);
    assert_null(strstr(body, "alice")); /* the user name stays out of the header */
    mxg_spool_remove(sp, ids[0]);
    free(ids);
    mxg_spool_close(sp);
    rmdir(dir);
}

/* ================================================= hostile clients (inbound) */

/* The spooled bodies of a queue-mode run, concatenated ("" when none);
 * every entry is removed. *n gets their number. */
static char *take_spool(struct mxg_spool *sp, int *n)
{
    char(*ids)[MXG_SPOOL_ID_MAX] = NULL;
    *n = 0;
    assert_int_equal(mxg_spool_list(sp, &ids, n), 0);
    char *all = calloc(1, 1);
    size_t len = 0;
    for (int i = 0; i < *n; i++) {
        int fd = mxg_spool_body_open(sp, ids[i]);
        assert_true(fd >= 0);
        char body[8192];
        ssize_t got = read(fd, body, sizeof body);
        close(fd);
        assert_true(got > 0);
        all = realloc(all, len + (size_t)got + 2);
        memcpy(all + len, body, (size_t)got);
        len += (size_t)got;
        all[len++] = '|';
        all[len] = 0;
        mxg_spool_remove(sp, ids[i]);
    }
    free(ids);
    return all;
}

static struct mxg_spool *fresh_spool(char *dir)
{
    char err[256];
    assert_non_null(mkdtemp(dir));
    struct mxg_spool *sp = mxg_spool_open(dir, err, sizeof err);
    assert_non_null(sp);
    return sp;
}

static void drop_spool(struct mxg_spool *sp, const char *dir)
{
    mxg_spool_close(sp);
    rmdir(dir);
}

#define QUEUE_TXN {"EHLO c", 250}, {"MAIL FROM:<a@b.example>", 250}, \
                  {"RCPT TO:<x@one.example>", 250}, {"DATA", 354}

static void tweak_data_total(struct mxg_config *c)
{
    c->t_data_total = 400;
    c->data_min_rate = 0;
}

static void tweak_data_rate(struct mxg_config *c)
{
    c->t_data_total = 10000;
    c->data_min_rate = 100; /* octets/s */
    c->data_rate_grace_ms = 200;
}

static void tweak_data_rate_short(struct mxg_config *c)
{
    c->data_min_rate = 1000000;
    c->data_rate_grace_ms = 600;
}

/* DATA trickled past timeouts.data_total, or slower than
 * limits.data_min_rate after the grace period: 421 4.4.2, the connection
 * closed, nothing stored (queue mode: the spool stays empty). A message
 * sent within the grace period is never too slow. */
static void test_data_deadline(void **st)
{
    (void)st;
    char dir[] = "/tmp/mxg-session-spool-XXXXXX";
    struct mxg_spool *sp = fresh_spool(dir);
    const struct script total = {
        "data-total",
        {{NULL, 220}, QUEUE_TXN, {"!SEND:Subject: slow\r\n\r\n", 1}, {"!SLEEP:150", 1},
         {"!SEND:a\r\n", 1}, {"!SLEEP:150", 1}, {"!SEND:b\r\n", 1},
         {NULL, 421, "4.4.2", NULL, 50}, {NULL, -1}, {0, 0}}};
    struct sopts o = {.queue_mode = 1, .spool = sp, .tweak = tweak_data_total};
    run_with(&total, &o);
    int n;
    char *bodies = take_spool(sp, &n);
    assert_int_equal(n, 0);
    free(bodies);
    /* 15 octets at 100/s after a 200 ms grace: too slow from 350 ms on */
    const struct script rate = {
        "data-rate",
        {{NULL, 220}, QUEUE_TXN, {"!SEND:Subject: slow\r\n", 1}, {"!SLEEP:100", 1},
         {"!SEND:a\r\n", 1}, {NULL, 421, "4.4.2", NULL, 150}, {NULL, -1}, {0, 0}}};
    o.tweak = tweak_data_rate;
    run_with(&rate, &o);
    bodies = take_spool(sp, &n);
    assert_int_equal(n, 0);
    free(bodies);
    const struct script shortmsg = {
        "data-rate-grace",
        {{NULL, 220}, QUEUE_TXN, {"!SEND:Subject: short\r\n\r\n", 1}, {"!SLEEP:300", 1},
         {"body\r\n.", 250}, {"QUIT", 221}, {0, 0}}};
    o.tweak = tweak_data_rate_short;
    run_with(&shortmsg, &o);
    bodies = take_spool(sp, &n);
    assert_int_equal(n, 1);
    free(bodies);
    drop_spool(sp, dir);
}

static void tweak_bare_cr_space(struct mxg_config *c)
{
    c->bare_cr = MXG_BARE_CR_SPACE;
}

/* docs/ARCHITECTURE.md §Line ends: a bare CR never makes a header line. Default: 554 5.6.0 and
 * nothing stored; limits.bare_cr = "space": the CR becomes a space. */
static void test_bare_cr(void **st)
{
    (void)st;
    char dir[] = "/tmp/mxg-session-spool-XXXXXX";
    struct mxg_spool *sp = fresh_spool(dir);
    const struct script reject = {
        "bare-cr-reject",
        {{NULL, 220}, QUEUE_TXN,
         {"!RAW:Subject: x\rFrom: ceo@example.com\r\n\r\nbody\r\n.\r\n", 554, "5.6.0"},
         {"MAIL FROM:<a@b.example>", 250}, {"RCPT TO:<x@one.example>", 250}, {"DATA", 354},
         {"!RAW:x\r.\rMAIL FROM:<evil@example.com>\r\n.\r\n", 554, "5.6.0"},
         {"QUIT", 221}, {0, 0}}};
    struct sopts o = {.queue_mode = 1, .spool = sp};
    run_with(&reject, &o);
    int n;
    char *bodies = take_spool(sp, &n);
    assert_int_equal(n, 0);
    free(bodies);
    const struct script space = {
        "bare-cr-space",
        {{NULL, 220}, QUEUE_TXN,
         {"!RAW:Subject: x\rFrom: ceo@example.com\r\n\r\nbody\r\n.\r\n", 250},
         {"QUIT", 221}, {0, 0}}};
    o.tweak = tweak_bare_cr_space;
    run_with(&space, &o);
    bodies = take_spool(sp, &n);
    assert_int_equal(n, 1);
    if (!strstr(bodies, "\r\nSubject: x From: ceo@example.com\r\n\r\nbody\r\n"))
        fail_msg("stored: %s", bodies);
    assert_null(strstr(bodies, "\r\nFrom:"));
    free(bodies);
    drop_spool(sp, dir);
}

/* HELO/EHLO names. Control characters or octets that are not
 * UTF-8: 501 5.5.2. Odd but harmless names are accepted; only a plain name
 * reaches the Received header as sent, anything else appears sanitised in
 * its comment. */
static void test_helo_names(void **st)
{
    (void)st;
    char dir[] = "/tmp/mxg-session-spool-XXXXXX";
    struct mxg_spool *sp = fresh_spool(dir);
    const struct script sc = {
        "helo-names",
        {{NULL, 220}, {"EHLO a\x7f" "b", 501, "5.5.2"}, {"EHLO \xff\xfe", 501, "5.5.2"},
         {"HELO a\tb", 501, "5.5.2"}, {"MAIL FROM:<a@b.example>", 503},
         {"EHLO caf\xc3\xa9(x);\\Received", 250}, {"MAIL FROM:<a@b.example>", 250},
         {"RCPT TO:<x@one.example>", 250}, {"DATA", 354}, {"Subject: one\r\n\r\nb\r\n.", 250},
         {"EHLO my_host.example", 250}, {"MAIL FROM:<a@b.example>", 250},
         {"RCPT TO:<x@one.example>", 250}, {"DATA", 354}, {"Subject: two\r\n\r\nb\r\n.", 250},
         {"HELO [127.0.0.1]", 250}, {"MAIL FROM:<a@b.example>", 250},
         {"RCPT TO:<x@one.example>", 250}, {"DATA", 354}, {"Subject: three\r\n\r\nb\r\n.", 250},
         {"QUIT", 221}, {0, 0}}};
    struct sopts o = {.queue_mode = 1, .spool = sp};
    run_with(&sc, &o);
    int n;
    char *bodies = take_spool(sp, &n);
    assert_int_equal(n, 3);
    if (!strstr(bodies, "Received: from unknown ([127.0.0.1] helo=caf???x???Received)\r\n") ||
        !strstr(bodies, "Received: from my_host.example ([127.0.0.1])\r\n") ||
        !strstr(bodies, "Received: from [127.0.0.1] ([127.0.0.1])\r\n"))
        fail_msg("stored: %s", bodies);
    for (const char *p = bodies; *p; p++) /* nothing 8-bit, no stray ( ; \ in the headers */
        assert_true((unsigned char)*p < 0x80);
    assert_null(strstr(bodies, "(x)"));
    free(bodies);
    drop_spool(sp, dir);
}

static char trust_dir[64];

static void tweak_trust(struct mxg_config *c)
{
    c->auth_max_failures = 10;
    c->auth_max_user_failures = 2;
    c->auth_lockout_ms = 60000;
    snprintf(c->state_dir, sizeof c->state_dir, "%s", trust_dir);
}

#define AUTH_FROM(addr) {"!RECONNECT:" addr, 220}, {"EHLO c", 250}, TLS_UP, {"EHLO c", 250}

/* docs/ARCHITECTURE.md §Hostile peers: a user locked out by failures from one address is still let
 * in from an address that authenticated as the user before (also after a
 * restart: the memory is in state.directory); other addresses get 454
 * 4.7.0 while the lockout lasts. */
static void test_auth_trusted_address(void **st)
{
    (void)st;
    snprintf(trust_dir, sizeof trust_dir, "/tmp/mxg-session-trust-XXXXXX");
    assert_non_null(mkdtemp(trust_dir));
    const struct script sc = {
        "trusted-address",
        {{NULL, 220}, {"EHLO c", 250}, TLS_UP, {"EHLO c", 250}, {GOOD, 235},
         AUTH_FROM("127.0.0.2"), {WRONG, 535}, {WRONG, 535}, {GOOD, 454, "4.7.0"},
         AUTH_FROM("127.0.0.1"), {GOOD, 235},
         AUTH_FROM("127.0.0.3"), {GOOD, 454, "4.7.0"}, {"QUIT", 221}, {0, 0}}};
    struct sopts o = {.tls = 1, .auth = 1, .tweak = tweak_trust};
    run_with(&sc, &o);
    /* a new server on the same state directory: 127.0.0.1 is remembered */
    const struct script restart = {
        "trusted-address-restart",
        {{"!RECONNECT:127.0.0.2", 220}, {"EHLO c", 250}, TLS_UP, {"EHLO c", 250},
         {WRONG, 535}, {WRONG, 535}, {GOOD, 454, "4.7.0"},
         AUTH_FROM("127.0.0.1"), {GOOD, 235}, {"QUIT", 221}, {0, 0}}};
    run_with(&restart, &o);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", trust_dir);
    assert_int_equal(system(cmd), 0);
}

static void tweak_trust_full(struct mxg_config *c)
{
    c->auth_max_failures = 1; /* one wrong password locks an address */
    c->auth_max_user_failures = 0;
    c->auth_lockout_ms = 60000;
    c->auth_throttle_entries = 16;
    snprintf(c->state_dir, sizeof c->state_dir, "%s", trust_dir);
}

/* A flood of locked addresses fills the throttle table (every entry locked:
 * nothing may be evicted, new addresses are refused): an address that
 * authenticated as the user before is still let in (§Hostile peers);
 * a fresh address gets 454 4.7.0. */
static void test_auth_trusted_table_full(void **st)
{
    (void)st;
    snprintf(trust_dir, sizeof trust_dir, "/tmp/mxg-session-trustfull-XXXXXX");
    assert_non_null(mkdtemp(trust_dir));
#define FLOOD(n) AUTH_FROM("127.0.1." #n), {WRONG, 421} /* locked: the session ends */
    const struct script sc = {
        "trusted-address-table-full",
        {{NULL, 220}, {"EHLO c", 250}, TLS_UP, {"EHLO c", 250}, {GOOD, 235},
         FLOOD(1), FLOOD(2), FLOOD(3), FLOOD(4), FLOOD(5), FLOOD(6), FLOOD(7), FLOOD(8),
         FLOOD(9), FLOOD(10), FLOOD(11), FLOOD(12), FLOOD(13), FLOOD(14), FLOOD(15), FLOOD(16),
         AUTH_FROM("127.0.0.9"), {GOOD, 454, "4.7.0"},
         AUTH_FROM("127.0.0.1"), {GOOD, 235}, {"QUIT", 221}, {0, 0}}};
#undef FLOOD
    struct sopts o = {.tls = 1, .auth = 1, .tweak = tweak_trust_full};
    run_with(&sc, &o);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", trust_dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN); /* as mxguard run does: a closed peer is an EPIPE, not a death */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sequences),
        cmocka_unit_test(test_too_many_errors),
        cmocka_unit_test(test_late_reader),
        cmocka_unit_test(test_reply_lost_closes),
        cmocka_unit_test(test_queue_mode),
        cmocka_unit_test(test_queue_mode_no_spool),
        cmocka_unit_test(test_half_close_after_dot),
        cmocka_unit_test(test_starttls_auth),
        cmocka_unit_test(test_auth_login),
        cmocka_unit_test(test_starttls_injection),
        cmocka_unit_test(test_tls_min_version),
        cmocka_unit_test(test_network_requirements),
        cmocka_unit_test(test_plaintext_loopback),
        cmocka_unit_test(test_throttle),
        cmocka_unit_test(test_auth_client_gone),
        cmocka_unit_test(test_received_esmtpsa),
        cmocka_unit_test(test_data_deadline),
        cmocka_unit_test(test_bare_cr),
        cmocka_unit_test(test_helo_names),
        cmocka_unit_test(test_auth_trusted_address),
        cmocka_unit_test(test_auth_trusted_table_full),
    };
    return cmocka_run_group_tests(tests, fixture_setup, fixture_teardown);
}
