/* bench/smtpload.c — an SMTP load driver like Postfix's smtp-source, for the
 * benchmarks (bench/run.sh), that also timestamps its messages.
 *
 *   smtpload [-s SESSIONS] [-m MESSAGES] [-l SIZE] [-f FROM] [-t TO] [-b SRC_IP]
 *            [-d] HOST:PORT
 *   smtpload [...] --domains FILE [--rcpt-domains K] [--order rr|random]
 *            [--direct | --list] [HOST:PORT]
 *   smtpload --idle N [-b SRC_IP] [--ready FILE] HOST:PORT
 *
 * Load mode: SESSIONS connections at a time until MESSAGES messages were
 * sent, one message per connection (as smtp-source; -d: every connection
 * sends messages until the total is reached). Each message has SIZE octets
 * of body after a few headers, one of them "X-Bench-T: <ns>" (CLOCK_REALTIME
 * when its connection was opened: bench/sink.c turns it into the latency
 * at the receiving end). Commands are sent one at a time (no pipelining), as
 * smtp-source does. Prints one line: "ok N fail N secs S rate R p50 A p90 B
 * p99 C max D" (client-side latency in ms from connect to the reply to the
 * final dot).
 *
 * Many destinations (--domains FILE: one "DOMAIN [HOST:PORT]" per line, at
 * most MAX_DOMAINS): message i (0, 1, ... in the order they are started) has
 * K recipients (--rcpt-domains K, default 1), "TO@D" (-t is then the local
 * part, default "rcpt") for the domains D on lines b(i) + j mod N, j < K: K
 * different domains per message while K <= N. --order rr (default):
 * b(i) = i*K, round-robin, every domain equally often; --order random:
 * b(i) = a fixed hash of i mod N (the same sequence in every run).
 * --direct: the plaintext ceiling of a relay: each connection goes straight
 * to the HOST:PORT on its domain's line (no HOST:PORT argument) with one
 * recipient: connection c carries recipient j = c mod K of the relay's
 * message c / K (so -m counts deliveries: M messages of K recipients = M*K).
 * --list: print "i j DOMAIN" for the recipients of -m messages and exit.
 *
 * Idle mode: open N sessions (connect, banner, EHLO) and keep them open;
 * when all are up, write "up N failed F" to --ready FILE (and stdout) and
 * wait for SIGTERM/SIGINT (for RSS per idle session).
 *
 * Build: cc -O2 -o smtpload smtpload.c -luv (bench/run.sh does). */
#define _GNU_SOURCE
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uv.h>

enum step { S_BANNER, S_EHLO, S_MAIL, S_RCPT, S_DATA, S_DOT, S_QUIT, S_IDLE };

struct conn {
    uv_tcp_t tcp;
    uv_connect_t creq;
    enum step st;
    char line[4096];
    size_t ll;
    uint64_t t0;
    int msgs_here;
    int msg_idx;   /* this message's number (--domains: which domains) */
    int rcpts_done; /* RCPT commands answered for this message */
};

static uv_loop_t *loop;
static struct sockaddr_storage dest, src;
static int have_src;
static int n_sessions = 1, n_messages = 1, msg_size = 1024, persistent, idle_n;
static const char *from = "load@bench.test", *to = "rcpt@bench.test", *ready_path;
static char fromp[300], top[300]; /* "<from>", "<to>" */
/* --domains: the recipient domains, and with --direct their addresses */
#define MAX_DOMAINS 100000
static char **dom_name;
static struct sockaddr_storage *dom_addr;
static int n_domains, rcpt_domains = 1, direct, order_random;
static int started, done_ok, done_fail, active, idle_up, idle_failed;
static double *lat;
static int n_lat;
static uint64_t t_start;
static int n_errs; /* errors printed (at most 5) */
static char *body;
static size_t body_len;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void start_conn(void);

static void on_close(uv_handle_t *h)
{
    free(h->data);
    active--;
    if (!idle_n && started < n_messages)
        start_conn();
    else if (!idle_n && active == 0)
        uv_stop(loop);
}

static void idle_progress(void);

/* failed: the message (or idle session) did not make it */
static void conn_end(struct conn *c, int failed)
{
    if (failed && !idle_n)
        done_fail++;
    if (failed && idle_n && c->st != S_IDLE) { /* never came up */
        c->st = S_IDLE; /* counted once */
        idle_failed++;
        idle_progress();
    }
    if (!uv_is_closing((uv_handle_t *)&c->tcp))
        uv_close((uv_handle_t *)&c->tcp, on_close);
}

struct wreq {
    uv_write_t req;
    char data[];
};

static void wdone(uv_write_t *r, int status)
{
    (void)status;
    free(r);
}

static void send_text(struct conn *c, const char *p, size_t n)
{
    uv_buf_t b = uv_buf_init((char *)p, (unsigned)n);
    int k = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
    if (k == (int)n)
        return;
    if (k < 0)
        k = 0;
    struct wreq *w = malloc(sizeof *w + n - (size_t)k);
    memcpy(w->data, p + k, n - (size_t)k);
    b = uv_buf_init(w->data, (unsigned)(n - (size_t)k));
    if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, wdone) < 0)
        free(w);
}

/* "VERB" or "VERB ARG" + CRLF; arg may be NULL */
static void send_cmd(struct conn *c, enum step next, const char *verb, const char *arg)
{
    char buf[600];
    int n = snprintf(buf, sizeof buf, "%s%s\r\n", verb, arg ? arg : "");
    c->st = next;
    send_text(c, buf, (size_t)n);
}

/* The recipient (in angle brackets) number j of message idx, into buf. */
/* The domain line of recipient j of message idx (see --order). */
static long dom_of(int idx, int j)
{
    uint64_t b = (uint64_t)idx * (uint64_t)rcpt_domains;
    if (order_random) { /* splitmix64 of the message number */
        uint64_t z = (uint64_t)idx + 0x9e3779b97f4a7c15ull;
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        b = z ^ (z >> 31);
    }
    return (long)((b % (uint64_t)n_domains + (uint64_t)j) % (uint64_t)n_domains);
}

/* Connection (or message) number idx's message and recipient: --direct
 * splits the relay's messages into one connection per recipient. */
static void msg_rcpt(int idx, int j, int *m, int *r)
{
    *m = direct ? idx / rcpt_domains : idx;
    *r = direct ? idx % rcpt_domains : j;
}

static const char *rcpt_of(int idx, int j, char *buf, size_t cap)
{
    if (!n_domains)
        return top;
    int m, r;
    msg_rcpt(idx, j, &m, &r);
    snprintf(buf, cap, "<%s@%s>", to, dom_name[dom_of(m, r)]);
    return buf;
}

static void send_message(struct conn *c)
{
    char hdr[900], r0[300];
    int n = snprintf(hdr, sizeof hdr,
                     "From: <%s>\r\nTo: %s\r\nSubject: bench %d\r\nMessage-ID: <%d.%llu@bench.test>\r\n"
                     "X-Bench-T: %llu\r\n\r\n",
                     from, rcpt_of(c->msg_idx, 0, r0, sizeof r0), c->msg_idx, c->msg_idx,
                     (unsigned long long)c->t0, (unsigned long long)c->t0);
    send_text(c, hdr, (size_t)n);
    send_text(c, body, body_len);
    c->st = S_DOT;
    send_text(c, ".\r\n", 3);
}

/* A complete reply (last line in c->line). */
static void on_reply(struct conn *c)
{
    int code = atoi(c->line);
    int ok = code >= 200 && code < 400;
    if (!ok && c->st != S_QUIT) {
        if (n_errs++ < 5)
            fprintf(stderr, "smtpload: step %d: %s\n", c->st, c->line);
        conn_end(c, 1);
        return;
    }
    switch (c->st) {
    case S_BANNER:
        send_cmd(c, S_EHLO, "EHLO ", "load.bench.test");
        return;
    case S_EHLO:
        if (idle_n) {
            c->st = S_IDLE;
            idle_up++;
            idle_progress();
            return;
        }
        send_cmd(c, S_MAIL, "MAIL FROM:", fromp);
        return;
    case S_MAIL: {
        char r[300];
        c->rcpts_done = 0;
        send_cmd(c, S_RCPT, "RCPT TO:", rcpt_of(c->msg_idx, 0, r, sizeof r));
        return;
    }
    case S_RCPT:
        if (n_domains && !direct && ++c->rcpts_done < rcpt_domains) {
            char r[300];
            send_cmd(c, S_RCPT, "RCPT TO:", rcpt_of(c->msg_idx, c->rcpts_done, r, sizeof r));
            return;
        }
        send_cmd(c, S_DATA, "DATA", NULL);
        return;
    case S_DATA:
        send_message(c);
        return;
    case S_DOT: {
        double ms = (double)(now_ns() - c->t0) / 1e6;
        if (n_lat < n_messages)
            lat[n_lat++] = ms;
        done_ok++;
        c->msgs_here++;
        if (persistent && started < n_messages) {
            c->msg_idx = started;
            started++;
            c->t0 = now_ns();
            send_cmd(c, S_MAIL, "MAIL FROM:", fromp);
            return;
        }
        send_cmd(c, S_QUIT, "QUIT", NULL);
        return;
    }
    case S_QUIT:
    case S_IDLE:
        conn_end(c, 0);
        return;
    }
}

static void alloc_cb(uv_handle_t *h, size_t sz, uv_buf_t *b)
{
    (void)h;
    (void)sz;
    static char slab[65536];
    *b = uv_buf_init(slab, sizeof slab);
}

static void read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    struct conn *c = s->data;
    if (n < 0) {
        if (c->st == S_IDLE)
            idle_up--, idle_failed++;
        conn_end(c, c->st != S_QUIT && c->st != S_IDLE);
        return;
    }
    for (ssize_t i = 0; i < n; i++) {
        char ch = b->base[i];
        if (ch != '\n') {
            if (c->ll + 1 < sizeof c->line)
                c->line[c->ll++] = ch;
            continue;
        }
        c->line[c->ll] = 0;
        int last = c->ll >= 4 && c->line[3] == ' ';
        if (c->ll == 3)
            last = 1;
        c->ll = 0;
        if (last) {
            on_reply(c);
            if (uv_is_closing((uv_handle_t *)&c->tcp))
                return;
        }
    }
}

/* Idle mode: keep at most IDLE_OPENING sessions opening (connect .. EHLO
 * reply) at a time, so that 10,000 sessions do not overflow the listener's
 * SYN/accept queues (dropped SYNs come back only after seconds of
 * retransmission back-off). */
#define IDLE_OPENING 200
static void start_conn(void);
static void idle_fill(void)
{
    while (started < idle_n && started - idle_up - idle_failed < IDLE_OPENING)
        start_conn();
}

/* Idle mode: open more sessions, and when every one is up or failed,
 * say so once (stdout and --ready FILE). */
static void idle_progress(void)
{
    static int said;
    idle_fill();
    if (said || idle_up + idle_failed < idle_n)
        return;
    said = 1;
    printf("up %d failed %d\n", idle_up, idle_failed);
    fflush(stdout);
    if (ready_path) {
        FILE *f = fopen(ready_path, "w");
        if (f) {
            fprintf(f, "up %d failed %d\n", idle_up, idle_failed);
            fclose(f);
        }
    }
}

static void on_connect(uv_connect_t *req, int status)
{
    struct conn *c = req->data;
    if (status < 0) {
        if (n_errs++ < 5)
            fprintf(stderr, "smtpload: connect: %s\n", uv_strerror(status));
        conn_end(c, 1);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb);
}

static void start_conn(void)
{
    struct conn *c = calloc(1, sizeof *c);
    uv_tcp_init(loop, &c->tcp);
    c->tcp.data = c;
    c->creq.data = c;
    c->st = S_BANNER;
    c->t0 = now_ns();
    c->msg_idx = started;
    started++;
    active++;
    if (have_src)
        uv_tcp_bind(&c->tcp, (struct sockaddr *)&src, 0);
    const struct sockaddr *to_addr = (const struct sockaddr *)&dest;
    if (direct) {
        int m, r;
        msg_rcpt(c->msg_idx, 0, &m, &r);
        to_addr = (const struct sockaddr *)&dom_addr[dom_of(m, r)];
    }
    if (uv_tcp_connect(&c->creq, &c->tcp, to_addr, on_connect) < 0)
        conn_end(c, 1);
}

/* "IP:PORT" (IPv4) into *sa; 0 on success */
static int parse_addr(const char *s, struct sockaddr_storage *sa)
{
    char host[128];
    snprintf(host, sizeof host, "%s", s);
    char *colon = strrchr(host, ':');
    if (!colon)
        return -1;
    *colon = 0;
    return uv_ip4_addr(host, atoi(colon + 1), (struct sockaddr_in *)sa) == 0 ? 0 : -1;
}

/* Read --domains FILE: "DOMAIN [HOST:PORT]" per line; 0 on success */
static int load_domains(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        perror(path);
        return -1;
    }
    dom_name = calloc(MAX_DOMAINS, sizeof *dom_name);
    dom_addr = calloc(MAX_DOMAINS, sizeof *dom_addr);
    char line[512], d[256], a[128];
    while (fgets(line, sizeof line, f) && n_domains < MAX_DOMAINS) {
        int k = sscanf(line, "%255s %127s", d, a);
        if (k < 1 || d[0] == '#')
            continue;
        if (direct && (k < 2 || parse_addr(a, &dom_addr[n_domains]) != 0)) {
            fprintf(stderr, "smtpload: --direct: no HOST:PORT for %s in %s\n", d, path);
            fclose(f);
            return -1;
        }
        dom_name[n_domains++] = strdup(d);
    }
    fclose(f);
    if (!n_domains) {
        fprintf(stderr, "smtpload: no domains in %s\n", path);
        return -1;
    }
    return 0;
}

static int cmpd(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(double p)
{
    if (n_lat == 0)
        return 0;
    int i = (int)(p * n_lat + 0.5) - 1;
    if (i < 0)
        i = 0;
    if (i >= n_lat)
        i = n_lat - 1;
    return lat[i];
}

static void on_signal(uv_signal_t *h, int sig)
{
    (void)sig;
    uv_stop(h->loop);
}

int main(int argc, char **argv)
{
    const char *target = NULL, *bind_ip = NULL, *domains_path = NULL;
    int to_given = 0, list = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-s") && v) n_sessions = atoi(argv[++i]);
        else if (!strcmp(a, "-m") && v) n_messages = atoi(argv[++i]);
        else if (!strcmp(a, "-l") && v) msg_size = atoi(argv[++i]);
        else if (!strcmp(a, "-f") && v) from = argv[++i];
        else if (!strcmp(a, "-t") && v) to = argv[++i], to_given = 1;
        else if (!strcmp(a, "-b") && v) bind_ip = argv[++i];
        else if (!strcmp(a, "-d")) persistent = 1;
        else if (!strcmp(a, "--idle") && v) idle_n = atoi(argv[++i]);
        else if (!strcmp(a, "--ready") && v) ready_path = argv[++i];
        else if (!strcmp(a, "--domains") && v) domains_path = argv[++i];
        else if (!strcmp(a, "--rcpt-domains") && v) rcpt_domains = atoi(argv[++i]);
        else if (!strcmp(a, "--direct")) direct = 1;
        else if (!strcmp(a, "--list")) list = 1;
        else if (!strcmp(a, "--order") && v && (!strcmp(v, "rr") || !strcmp(v, "random")))
            order_random = !strcmp(argv[++i], "random");
        else if (a[0] != '-' && !target) target = a;
        else {
            fprintf(stderr, "usage: smtpload [-s N] [-m N] [-l SIZE] [-f FROM] [-t TO] [-b IP] "
                            "[-d] [--domains FILE [--rcpt-domains K] [--order rr|random] "
                            "[--direct | --list]] HOST:PORT | "
                            "smtpload --idle N [-b IP] [--ready FILE] HOST:PORT\n");
            return 2;
        }
    }
    if ((direct || list) && (!domains_path || persistent || idle_n)) {
        fprintf(stderr, "smtpload: --direct and --list need --domains, no -d/--idle\n");
        return 2;
    }
    if (rcpt_domains < 1 || (rcpt_domains > 1 && !domains_path)) {
        fprintf(stderr, "smtpload: --rcpt-domains K needs K >= 1 and --domains\n");
        return 2;
    }
    if (domains_path) {
        if (!to_given)
            to = "rcpt"; /* the local part */
        if (load_domains(domains_path) != 0)
            return 2;
    }
    if (list) {
        for (int m = 0; m < n_messages; m++)
            for (int j = 0; j < rcpt_domains; j++)
                printf("%d %d %s\n", m, j, dom_name[dom_of(m, j)]);
        return 0;
    }
    if (!target && !direct)
        return 2;
    snprintf(fromp, sizeof fromp, "<%s>", from);
    snprintf(top, sizeof top, "<%s>", to);
    if (target && parse_addr(target, &dest) != 0)
        return 2;
    if (bind_ip) {
        uv_ip4_addr(bind_ip, 0, (struct sockaddr_in *)&src);
        have_src = 1;
    }
    signal(SIGPIPE, SIG_IGN);
    loop = uv_default_loop();
    /* the body: lines of 76 characters + CRLF, SIZE octets in all */
    body_len = (size_t)msg_size;
    body = malloc(body_len + 80);
    for (size_t i = 0; i < body_len; i++)
        body[i] = (i % 78 == 76) ? '\r' : (i % 78 == 77) ? '\n' : (char)('a' + i % 26);
    if (body_len >= 2) {
        body[body_len - 2] = '\r';
        body[body_len - 1] = '\n';
    }
    lat = calloc((size_t)(n_messages > 0 ? n_messages : 1), sizeof *lat);
    uv_signal_t sig[2];
    uv_signal_init(loop, &sig[0]);
    uv_signal_start(&sig[0], on_signal, SIGTERM);
    uv_signal_init(loop, &sig[1]);
    uv_signal_start(&sig[1], on_signal, SIGINT);
    uv_unref((uv_handle_t *)&sig[0]);
    uv_unref((uv_handle_t *)&sig[1]);
    t_start = now_ns();
    if (idle_n) {
        idle_fill();
        uv_ref((uv_handle_t *)&sig[0]);
        uv_run(loop, UV_RUN_DEFAULT);
        printf("up %d failed %d\n", idle_up, idle_failed);
        return idle_failed ? 1 : 0;
    }
    for (int i = 0; i < n_sessions && started < n_messages; i++)
        start_conn();
    uv_run(loop, UV_RUN_DEFAULT);
    double secs = (double)(now_ns() - t_start) / 1e9;
    qsort(lat, (size_t)n_lat, sizeof *lat, cmpd);
    printf("ok %d fail %d secs %.3f rate %.1f p50 %.2f p90 %.2f p99 %.2f max %.2f\n", done_ok,
           done_fail, secs, secs > 0 ? done_ok / secs : 0, pct(0.50), pct(0.90), pct(0.99),
           n_lat ? lat[n_lat - 1] : 0);
    return done_fail ? 1 : 0;
}
