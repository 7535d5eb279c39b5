/* bench/sink.c — a fast SMTP sink with STARTTLS for the benchmarks (bench/run.sh).
 *
 * Postfix's smtp-sink has no STARTTLS, and the Python test MX is far too slow
 * to measure a relay against, so: one libuv loop, OpenSSL over memory BIOs,
 * pipelining, every command accepted (220, EHLO with PIPELINING SIZE 8BITMIME
 * ENHANCEDSTATUSCODES STARTTLS, 250 to MAIL/RCPT/RSET/NOOP, 354 + 250 to
 * DATA, 221 to QUIT). Nothing is stored; the sink counts.
 *
 *   sink --listen IP:PORT [--listen ...] --cert PEM --key PEM [--name HOST]
 *        [--stats FILE] [--no-starttls]
 *
 * Counts (written to --stats every 100 ms when they changed, and on SIGTERM;
 * one "key value" per line): connections, tls (handshakes), resumed (of
 * them), messages, bytes, first/last (CLOCK_REALTIME of the first and last
 * message's final dot, seconds with ns), cpu (this process's user+system
 * CPU seconds), and the latency of messages that carry a header
 * "X-Bench-T: <ns since the epoch>" (bench/smtpload.c puts it there when
 * the client starts the message's session): lat_n, lat_p50, lat_p90,
 * lat_p99, lat_max (ms). SIGUSR1 zeroes every count (between runs).
 *
 * Build: cc -O2 -o sink sink.c -luv -lssl -lcrypto (bench/run.sh does). */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <uv.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#define MAX_LISTEN 64 /* bench/many.sh: one sink on every MX address */
#define LINE_MAX_LEN 65536
#define LAT_BUCKETS 100000 /* 0.1 ms resolution up to 10 s */

enum sess_state { ST_CMD, ST_DATA, ST_CLOSING };

struct sess {
    uv_tcp_t tcp;
    SSL *ssl;
    BIO *rbio, *wbio;
    int tls;                 /* TLS is up (or the handshake runs) */
    enum sess_state st;
    char *in;                /* plaintext input not yet consumed */
    size_t in_len, in_cap;
    char *out;               /* plaintext replies of this read, flushed once */
    size_t out_len, out_cap;
    int tail;                /* DATA: how much of "\r\n.\r\n" was seen at the end */
    size_t msg_bytes;
    int hdr_done;            /* DATA: the X-Bench-T header was looked for */
    uint64_t t_sent;         /* its value */
};

struct wreq {
    uv_write_t req;
    char data[];
};

static uv_loop_t *loop;
static SSL_CTX *ctx;
static const char *name = "sink.test";
static const char *stats_path;
static int offer_starttls = 1;
static struct {
    uint64_t connections, tls, resumed, messages, bytes;
    double first, last;
    uint64_t lat_n;
    uint32_t lat[LAT_BUCKETS + 1];
    int dirty;
} st;

static double now_real(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static double lat_pct(double p)
{
    if (st.lat_n == 0)
        return 0;
    uint64_t want = (uint64_t)(p * (double)st.lat_n + 0.5);
    if (want < 1)
        want = 1;
    uint64_t acc = 0;
    for (int i = 0; i <= LAT_BUCKETS; i++) {
        acc += st.lat[i];
        if (acc >= want)
            return i / 10.0;
    }
    return LAT_BUCKETS / 10.0;
}

static double lat_max(void)
{
    for (int i = LAT_BUCKETS; i >= 0; i--)
        if (st.lat[i])
            return i / 10.0;
    return 0;
}

static void write_stats(void)
{
    if (!stats_path)
        return;
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", stats_path);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double cpu = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
                 (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
    fprintf(f,
            "connections %llu\ntls %llu\nresumed %llu\nmessages %llu\nbytes %llu\n"
            "first %.6f\nlast %.6f\ncpu %.3f\nlat_n %llu\nlat_p50 %.1f\nlat_p90 %.1f\n"
            "lat_p99 %.1f\nlat_max %.1f\n",
            (unsigned long long)st.connections, (unsigned long long)st.tls,
            (unsigned long long)st.resumed, (unsigned long long)st.messages,
            (unsigned long long)st.bytes, st.first, st.last, cpu, (unsigned long long)st.lat_n,
            lat_pct(0.50), lat_pct(0.90), lat_pct(0.99), lat_max());
    fclose(f);
    rename(tmp, stats_path);
    st.dirty = 0;
}

/* ---------------------------------------------------------------- output */

static void write_done(uv_write_t *req, int status)
{
    (void)status;
    free(req);
}

static void sess_close(struct sess *s);

static void raw_write(struct sess *s, const char *p, size_t n)
{
    if (n == 0 || uv_is_closing((uv_handle_t *)&s->tcp))
        return;
    uv_buf_t b = uv_buf_init((char *)p, (unsigned)n);
    int k = uv_try_write((uv_stream_t *)&s->tcp, &b, 1);
    if (k == (int)n)
        return;
    if (k < 0 && k != UV_EAGAIN) {
        sess_close(s);
        return;
    }
    if (k < 0)
        k = 0;
    struct wreq *w = malloc(sizeof *w + n - (size_t)k);
    memcpy(w->data, p + k, n - (size_t)k);
    b = uv_buf_init(w->data, (unsigned)(n - (size_t)k));
    if (uv_write(&w->req, (uv_stream_t *)&s->tcp, &b, 1, write_done) < 0)
        free(w);
}

static void flush_tls(struct sess *s)
{
    char buf[16384];
    int n;
    while ((n = BIO_read(s->wbio, buf, sizeof buf)) > 0)
        raw_write(s, buf, (size_t)n);
}

static void reply(struct sess *s, const char *text)
{
    size_t n = strlen(text);
    if (s->out_len + n > s->out_cap) {
        s->out_cap = (s->out_len + n) * 2 + 256;
        s->out = realloc(s->out, s->out_cap);
    }
    memcpy(s->out + s->out_len, text, n);
    s->out_len += n;
}

static void flush_out(struct sess *s)
{
    if (s->out_len == 0)
        return;
    if (s->tls && s->ssl && SSL_is_init_finished(s->ssl)) {
        SSL_write(s->ssl, s->out, (int)s->out_len);
        flush_tls(s);
    } else {
        raw_write(s, s->out, s->out_len);
    }
    s->out_len = 0;
}

/* ---------------------------------------------------------------- session */

static void on_closed(uv_handle_t *h)
{
    struct sess *s = h->data;
    if (s->ssl)
        SSL_free(s->ssl);
    free(s->in);
    free(s->out);
    free(s);
}

static void sess_close(struct sess *s)
{
    if (!uv_is_closing((uv_handle_t *)&s->tcp))
        uv_close((uv_handle_t *)&s->tcp, on_closed);
}

static void msg_done(struct sess *s)
{
    double t = now_real();
    if (st.messages == 0)
        st.first = t;
    st.last = t;
    st.messages++;
    st.bytes += s->msg_bytes;
    if (s->t_sent) {
        uint64_t n = now_ns();
        double ms = n > s->t_sent ? (double)(n - s->t_sent) / 1e6 : 0;
        long b = (long)(ms * 10.0);
        if (b > LAT_BUCKETS)
            b = LAT_BUCKETS;
        st.lat[b]++;
        st.lat_n++;
    }
    st.dirty = 1;
    s->st = ST_CMD;
    reply(s, "250 2.0.0 Ok: queued\r\n");
}

/* Message data: find the end "\r\n.\r\n" (also right after the 354), look for
 * the X-Bench-T header near the start. Returns bytes consumed. */
static size_t data_feed(struct sess *s, const char *p, size_t n)
{
    static const char end[] = "\r\n.\r\n";
    if (!s->hdr_done) {
        size_t look = n < 2048 ? n : 2048;
        const char *h = memmem(p, look, "X-Bench-T: ", 11);
        if (h) {
            s->t_sent = strtoull(h + 11, NULL, 10);
            s->hdr_done = 1;
        } else if (look >= 2048 || memmem(p, look, "\r\n\r\n", 4)) {
            s->hdr_done = 1;
        }
    }
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (c == end[s->tail]) {
            s->tail++;
            if (s->tail == 5) {
                s->msg_bytes += i + 1;
                msg_done(s);
                return i + 1;
            }
        } else {
            s->tail = (c == '\r') ? 1 : 0;
        }
    }
    s->msg_bytes += n;
    return n;
}

static void start_tls(struct sess *s)
{
    s->ssl = SSL_new(ctx);
    s->rbio = BIO_new(BIO_s_mem());
    s->wbio = BIO_new(BIO_s_mem());
    SSL_set_bio(s->ssl, s->rbio, s->wbio);
    SSL_set_accept_state(s->ssl);
    s->tls = 1;
}

static int ieq(const char *a, const char *b, size_t n)
{
    return strncasecmp(a, b, n) == 0;
}

/* One command line (without CRLF). Returns 1 when STARTTLS switched to TLS
 * (the rest of the input is discarded: nothing may follow it). */
static int command(struct sess *s, const char *l, size_t n)
{
    char buf[512];
    if (n >= 4 && (ieq(l, "EHLO", 4) || ieq(l, "HELO", 4))) {
        if (ieq(l, "HELO", 4)) {
            snprintf(buf, sizeof buf, "250 %s\r\n", name);
        } else {
            snprintf(buf, sizeof buf,
                     "250-%s\r\n250-PIPELINING\r\n250-SIZE 104857600\r\n250-8BITMIME\r\n"
                     "250-ENHANCEDSTATUSCODES\r\n%s250 SMTPUTF8\r\n",
                     name, offer_starttls && !s->tls ? "250-STARTTLS\r\n" : "");
        }
        reply(s, buf);
    } else if (n >= 8 && ieq(l, "STARTTLS", 8) && offer_starttls && !s->tls) {
        reply(s, "220 2.0.0 Ready to start TLS\r\n");
        flush_out(s);
        start_tls(s);
        return 1;
    } else if (n >= 4 && ieq(l, "MAIL", 4)) {
        reply(s, "250 2.1.0 Ok\r\n");
    } else if (n >= 4 && ieq(l, "RCPT", 4)) {
        reply(s, "250 2.1.5 Ok\r\n");
    } else if (n >= 4 && ieq(l, "DATA", 4)) {
        reply(s, "354 End data with <CR><LF>.<CR><LF>\r\n");
        s->st = ST_DATA;
        s->tail = 2; /* the CRLF of "DATA" counts as the first one */
        s->msg_bytes = 0;
        s->hdr_done = 0;
        s->t_sent = 0;
    } else if (n >= 4 && (ieq(l, "RSET", 4) || ieq(l, "NOOP", 4))) {
        reply(s, "250 2.0.0 Ok\r\n");
    } else if (n >= 4 && ieq(l, "QUIT", 4)) {
        reply(s, "221 2.0.0 Bye\r\n");
        s->st = ST_CLOSING;
    } else {
        reply(s, "502 5.5.2 Command not recognized\r\n");
    }
    return 0;
}

/* Process buffered plaintext. */
static void process(struct sess *s)
{
    size_t off = 0;
    while (off < s->in_len && s->st != ST_CLOSING) {
        if (s->st == ST_DATA) {
            off += data_feed(s, s->in + off, s->in_len - off);
            continue;
        }
        char *nl = memchr(s->in + off, '\n', s->in_len - off);
        if (!nl)
            break;
        size_t n = (size_t)(nl - (s->in + off));
        size_t ln = n && s->in[off + n - 1] == '\r' ? n - 1 : n;
        int switched = command(s, s->in + off, ln);
        off += n + 1;
        if (switched) {
            off = s->in_len; /* STARTTLS injection: discard */
            break;
        }
    }
    memmove(s->in, s->in + off, s->in_len - off);
    s->in_len -= off;
    if (s->in_len > LINE_MAX_LEN && s->st == ST_CMD)
        s->st = ST_CLOSING;
    flush_out(s);
    if (s->st == ST_CLOSING)
        sess_close(s);
}

static void in_append(struct sess *s, const char *p, size_t n)
{
    if (s->in_len + n > s->in_cap) {
        s->in_cap = (s->in_len + n) * 2;
        s->in = realloc(s->in, s->in_cap);
    }
    memcpy(s->in + s->in_len, p, n);
    s->in_len += n;
}

static void alloc_cb(uv_handle_t *h, size_t sz, uv_buf_t *b)
{
    (void)h;
    (void)sz;
    static char slab[65536];
    *b = uv_buf_init(slab, sizeof slab);
}

static void read_cb(uv_stream_t *str, ssize_t n, const uv_buf_t *b)
{
    struct sess *s = str->data;
    if (n < 0) {
        sess_close(s);
        return;
    }
    if (n == 0)
        return;
    if (!s->tls) {
        /* plaintext: in DATA feed directly, without copying */
        if (s->st == ST_DATA && s->in_len == 0) {
            size_t used = data_feed(s, b->base, (size_t)n);
            if (used < (size_t)n)
                in_append(s, b->base + used, (size_t)n - used);
        } else {
            in_append(s, b->base, (size_t)n);
        }
        process(s);
        return;
    }
    BIO_write(s->rbio, b->base, (int)n);
    if (!SSL_is_init_finished(s->ssl)) {
        int rc = SSL_do_handshake(s->ssl);
        flush_tls(s);
        if (rc != 1) {
            int e = SSL_get_error(s->ssl, rc);
            if (e != SSL_ERROR_WANT_READ) {
                ERR_clear_error();
                sess_close(s);
            }
            return;
        }
        st.tls++;
        if (SSL_session_reused(s->ssl))
            st.resumed++;
        st.dirty = 1;
    }
    char buf[65536];
    for (;;) {
        int k = SSL_read(s->ssl, buf, sizeof buf);
        if (k <= 0) {
            int e = SSL_get_error(s->ssl, k);
            flush_tls(s);
            if (e != SSL_ERROR_WANT_READ) {
                ERR_clear_error();
                sess_close(s);
                return;
            }
            break;
        }
        if (s->st == ST_DATA && s->in_len == 0) {
            size_t used = data_feed(s, buf, (size_t)k);
            if (used < (size_t)k)
                in_append(s, buf + used, (size_t)k - used);
        } else {
            in_append(s, buf, (size_t)k);
        }
    }
    process(s);
}

static void on_conn(uv_stream_t *srv, int status)
{
    if (status < 0)
        return;
    struct sess *s = calloc(1, sizeof *s);
    uv_tcp_init(loop, &s->tcp);
    s->tcp.data = s;
    if (uv_accept(srv, (uv_stream_t *)&s->tcp) < 0) {
        uv_close((uv_handle_t *)&s->tcp, on_closed);
        return;
    }
    uv_tcp_nodelay(&s->tcp, 1);
    st.connections++;
    st.dirty = 1;
    char buf[300];
    snprintf(buf, sizeof buf, "220 %s ESMTP bench sink\r\n", name);
    reply(s, buf);
    flush_out(s);
    uv_read_start((uv_stream_t *)&s->tcp, alloc_cb, read_cb);
}

static void on_tick(uv_timer_t *t)
{
    (void)t;
    if (st.dirty)
        write_stats();
}

static void on_signal(uv_signal_t *h, int sig)
{
    if (sig == SIGUSR1) {
        memset(&st, 0, sizeof st);
        st.dirty = 1;
        write_stats();
        return;
    }
    write_stats();
    uv_stop(h->loop);
}

int main(int argc, char **argv)
{
    const char *listen[MAX_LISTEN];
    int n_listen = 0;
    const char *cert = NULL, *key = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--listen") && i + 1 < argc && n_listen < MAX_LISTEN)
            listen[n_listen++] = argv[++i];
        else if (!strcmp(argv[i], "--cert") && i + 1 < argc)
            cert = argv[++i];
        else if (!strcmp(argv[i], "--key") && i + 1 < argc)
            key = argv[++i];
        else if (!strcmp(argv[i], "--name") && i + 1 < argc)
            name = argv[++i];
        else if (!strcmp(argv[i], "--stats") && i + 1 < argc)
            stats_path = argv[++i];
        else if (!strcmp(argv[i], "--no-starttls"))
            offer_starttls = 0;
        else {
            fprintf(stderr, "usage: sink --listen IP:PORT --cert PEM --key PEM [--name HOST] "
                            "[--stats FILE] [--no-starttls]\n");
            return 2;
        }
    }
    if (!n_listen || (offer_starttls && (!cert || !key))) {
        fprintf(stderr, "sink: --listen and (with STARTTLS) --cert/--key are required\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    if (offer_starttls) {
        ctx = SSL_CTX_new(TLS_server_method());
        if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 ||
            SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
            ERR_print_errors_fp(stderr);
            return 1;
        }
        static const unsigned char sid[] = "bench-sink";
        SSL_CTX_set_session_id_context(ctx, sid, sizeof sid - 1);
        SSL_CTX_set_mode(ctx, SSL_MODE_AUTO_RETRY);
    }
    loop = uv_default_loop();
    uv_tcp_t srv[MAX_LISTEN];
    for (int i = 0; i < n_listen; i++) {
        char host[128];
        snprintf(host, sizeof host, "%s", listen[i]);
        char *colon = strrchr(host, ':');
        if (!colon) {
            fprintf(stderr, "sink: bad --listen %s\n", listen[i]);
            return 2;
        }
        *colon = 0;
        struct sockaddr_in sa;
        uv_ip4_addr(host, atoi(colon + 1), &sa);
        uv_tcp_init(loop, &srv[i]);
        int rc = uv_tcp_bind(&srv[i], (struct sockaddr *)&sa, 0);
        if (rc == 0)
            rc = uv_listen((uv_stream_t *)&srv[i], 4096, on_conn);
        if (rc < 0) {
            fprintf(stderr, "sink: listen %s: %s\n", listen[i], uv_strerror(rc));
            return 1;
        }
    }
    uv_timer_t tick;
    uv_timer_init(loop, &tick);
    uv_timer_start(&tick, on_tick, 100, 100);
    uv_signal_t sig[3];
    int sigs[3] = {SIGTERM, SIGINT, SIGUSR1};
    for (int i = 0; i < 3; i++) {
        uv_signal_init(loop, &sig[i]);
        uv_signal_start(&sig[i], on_signal, sigs[i]);
    }
    st.dirty = 1;
    write_stats();
    fprintf(stderr, "sink: listening (%d address%s)\n", n_listen, n_listen == 1 ? "" : "es");
    uv_run(loop, UV_RUN_DEFAULT);
    return 0;
}
