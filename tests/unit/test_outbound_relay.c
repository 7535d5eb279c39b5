/* tests/unit/test_outbound_relay.c — proxy/outbound/outbound.c (and the
 * leg options it uses): one message over one leg to an in-process SMTP
 * server on 127.0.0.1, reached through an address-literal next hop (no DNS at all), opportunistic.
 * The server runs on the same libuv loop; it can refuse recipients, stall
 * its reading (back-pressure), drop the connection in the middle of DATA. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "core/metrics.h"
#include "proxy/outbound/conncache.h"
#include "proxy/outbound/outbound.h"

/* ------------------------------------------------------------ test server */

struct srv {
    uv_loop_t *loop;
    uv_tcp_t listener;
    uv_tcp_t client;
    uv_timer_t stall;
    int port;
    int connected;
    int in_data;
    char line[4096];
    size_t ll;
    char *data; /* received message (between 354 and the dot) */
    size_t dlen, dcap;
    int stall_ms;        /* stop reading this long after 354 */
    int drop_in_data;    /* close the connection when the stall ends */
    int n_mail, n_rcpt, n_data, n_dot, n_quit, n_rset;
    char mail_from[300];
    const char *ehlo;       /* the EHLO reply, NULL = default (8BITMIME, no DSN) */
    const char *data_reply; /* instead of 354, NULL = 354 */
    const char *dot_reply;  /* instead of 250 after the dot */
    const char *rcpt_reply; /* instead of 250 for RCPT */
    const char *mail_reply; /* instead of 250 for MAIL */
    const char *quit_reply; /* instead of 221 for QUIT */
};

static void write_done(uv_write_t *w, int status)
{
    (void)status;
    free(w);
}

static void srv_write(struct srv *s, const char *txt)
{
    uv_write_t *w = malloc(sizeof *w + strlen(txt));
    char *copy = (char *)(w + 1);
    memcpy(copy, txt, strlen(txt));
    uv_buf_t b = uv_buf_init(copy, (unsigned)strlen(txt));
    uv_write(w, (uv_stream_t *)&s->client, &b, 1, write_done);
}

static void srv_alloc(uv_handle_t *h, size_t sz, uv_buf_t *b)
{
    (void)h;
    b->base = malloc(sz);
    b->len = sz;
}

static void data_add(struct srv *s, const char *p, size_t n)
{
    if (s->dlen + n + 1 > s->dcap) {
        s->dcap = (s->dlen + n + 1) * 2;
        s->data = realloc(s->data, s->dcap);
    }
    memcpy(s->data + s->dlen, p, n);
    s->dlen += n;
    s->data[s->dlen] = 0;
}

static void srv_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b);

static void on_stall_end(uv_timer_t *t)
{
    struct srv *s = t->data;
    if (s->drop_in_data) {
        uv_read_stop((uv_stream_t *)&s->client);
        uv_close((uv_handle_t *)&s->client, NULL);
        return;
    }
    uv_read_start((uv_stream_t *)&s->client, srv_alloc, srv_read);
}

static void srv_command(struct srv *s, const char *l)
{
    if (strncasecmp(l, "EHLO", 4) == 0) {
        srv_write(s, s->ehlo ? s->ehlo : "250-test.example\r\n250-PIPELINING\r\n250 8BITMIME\r\n");
    } else if (strncasecmp(l, "MAIL FROM:", 10) == 0) {
        s->n_mail++;
        snprintf(s->mail_from, sizeof s->mail_from, "%s", l + 10);
        srv_write(s, s->mail_reply ? s->mail_reply : "250 2.1.0 ok\r\n");
    } else if (strncasecmp(l, "RCPT TO:", 8) == 0) {
        s->n_rcpt++;
        if (strstr(l, "bad"))
            srv_write(s, "550 5.1.1 no such user\r\n");
        else if (strstr(l, "later"))
            srv_write(s, "450 4.2.0 try later\r\n");
        else
            srv_write(s, s->rcpt_reply ? s->rcpt_reply : "250 2.1.5 ok\r\n");
    } else if (strcasecmp(l, "DATA") == 0 && s->data_reply) {
        s->n_data++;
        srv_write(s, s->data_reply);
    } else if (strcasecmp(l, "DATA") == 0) {
        s->n_data++;
        s->in_data = 1;
        srv_write(s, "354 go\r\n");
        if (s->stall_ms) {
            uv_read_stop((uv_stream_t *)&s->client);
            uv_timer_start(&s->stall, on_stall_end, (uint64_t)s->stall_ms, 0);
        }
    } else if (strcasecmp(l, "RSET") == 0) {
        s->n_rset++;
        srv_write(s, "250 2.0.0 ok\r\n");
    } else if (strcasecmp(l, "QUIT") == 0) {
        s->n_quit++;
        srv_write(s, s->quit_reply ? s->quit_reply : "221 bye\r\n");
    } else {
        srv_write(s, "502 5.5.2 what\r\n");
    }
}

static void srv_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b)
{
    struct srv *s = st->data;
    if (n < 0) {
        free(b->base);
        if (!uv_is_closing((uv_handle_t *)st))
            uv_close((uv_handle_t *)st, NULL);
        return;
    }
    for (ssize_t i = 0; i < n; i++) {
        char c = b->base[i];
        if (s->ll + 1 < sizeof s->line)
            s->line[s->ll++] = c;
        if (c != '\n')
            continue;
        s->line[s->ll] = 0;
        if (s->in_data) {
            if (strcmp(s->line, ".\r\n") == 0) {
                s->in_data = 0;
                s->n_dot++;
                srv_write(s, s->dot_reply ? s->dot_reply : "250 2.0.0 queued as T1\r\n");
            } else {
                data_add(s, s->line, s->ll);
            }
        } else {
            if (s->ll >= 2)
                s->line[s->ll - 2] = 0;
            srv_command(s, s->line);
        }
        s->ll = 0;
    }
    free(b->base);
}

static void srv_accept(uv_stream_t *l, int status)
{
    struct srv *s = l->data;
    if (status < 0 || s->connected)
        return;
    s->connected = 1;
    uv_tcp_init(s->loop, &s->client);
    s->client.data = s;
    uv_accept(l, (uv_stream_t *)&s->client);
    srv_write(s, "220 test.example ESMTP\r\n");
    uv_read_start((uv_stream_t *)&s->client, srv_alloc, srv_read);
}

static void srv_start(struct srv *s, uv_loop_t *loop)
{
    memset(s, 0, sizeof *s);
    s->loop = loop;
    uv_tcp_init(loop, &s->listener);
    s->listener.data = s;
    uv_timer_init(loop, &s->stall);
    s->stall.data = s;
    struct sockaddr_in sa;
    uv_ip4_addr("127.0.0.1", 0, &sa);
    assert_int_equal(uv_tcp_bind(&s->listener, (struct sockaddr *)&sa, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&s->listener, 8, srv_accept), 0);
    struct sockaddr_storage ss;
    int len = sizeof ss;
    uv_tcp_getsockname(&s->listener, (struct sockaddr *)&ss, &len);
    s->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

/* ------------------------------------------------------------ fixture */

struct fx {
    uv_loop_t loop;
    struct mxg_config cfg;
    struct mxg_upstream_env env;
    struct srv srv;
    int done_calls;
    struct mxg_reply final;
};

static void on_done(void *arg, struct mxg_outbound_req *req, const struct mxg_reply *final)
{
    (void)req;
    struct fx *f = arg;
    f->done_calls++;
    f->final = *final;
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    mxg_log_setup(getenv("TDEBUG") ? MXG_LOG_DEBUG : MXG_LOG_ERR, 0);
    uv_loop_init(&f->loop);
    mxg_config_defaults(&f->cfg);
    f->cfg.t_upstream_cmd = 3000;
    f->cfg.t_connect = 3000;
    f->cfg.t_final = 5000;
    f->env.loop = &f->loop;
    f->env.cfg = &f->cfg;
    srv_start(&f->srv, &f->loop);
    *state = f;
    return 0;
}

static void close_cb(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static int teardown(void **state)
{
    struct fx *f = *state;
    uv_walk(&f->loop, close_cb, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    free(f->srv.data);
    free(f);
    return 0;
}

static void req_init(struct fx *f, struct mxg_outbound_req *req, struct mxg_outbound_rcpt *rc,
                     int n)
{
    memset(req, 0, sizeof *req);
    req->id = "T";
    req->domain = "example.test";
    req->from = "sender@example.org";
    req->rcpts = rc;
    req->n_rcpts = n;
    req->body_fd = -1;
    req->opts.nexthop = "127.0.0.1";
    req->opts.nexthop_port = f->srv.port;
    req->opts.opportunistic = 1;
    req->opts.no_tlsrpt = 1;
    req->done = on_done;
    req->arg = f;
}

static void run_until_done(struct fx *f)
{
    while (f->done_calls == 0 && uv_run(&f->loop, UV_RUN_ONCE))
        ;
    /* let QUIT and the closes happen: done must not come twice */
    for (int i = 0; i < 50; i++)
        uv_run(&f->loop, UV_RUN_NOWAIT);
}

/* ------------------------------------------------------------ tests */

static void test_memory_body_mixed_rcpts(void **state)
{
    struct fx *f = *state;
    struct mxg_outbound_rcpt rc[3] = {{.addr = "a@example.test"}, {.addr = "bad@example.test"},
                                      {.addr = "later@example.test"}};
    struct mxg_outbound_req req;
    req_init(f, &req, rc, 3);
    const char *body = "Subject: t\r\n\r\nhello\r\n..dot-stuffed\r\n";
    req.body = body;
    req.body_len = strlen(body);
    struct mxg_outbound *ob = NULL;
    assert_int_equal(mxg_outbound_start(&f->env, &req, &ob), 0);
    assert_non_null(ob);
    assert_int_equal(f->done_calls, 0); /* never synchronously */
    run_until_done(f);
    assert_int_equal(f->done_calls, 1);
    assert_int_equal(f->final.code, 250);
    assert_int_equal(rc[0].reply.code, 250); /* the dot's reply */
    assert_non_null(strstr(rc[0].reply.text, "queued as T1"));
    assert_int_equal(rc[1].reply.code, 550);
    assert_int_equal(rc[2].reply.code, 450);
    assert_string_equal(f->srv.data, body);
    assert_string_equal(f->srv.mail_from, "<sender@example.org>");
    assert_int_equal(f->srv.n_rcpt, 3);
    assert_int_equal(f->srv.n_dot, 1);
}

static void test_no_rcpt_accepted(void **state)
{
    struct fx *f = *state;
    struct mxg_outbound_rcpt rc[2] = {{.addr = "later@example.test"}, {.addr = "bad@example.test"}};
    struct mxg_outbound_req req;
    req_init(f, &req, rc, 2);
    req.body = "x\r\n";
    req.body_len = 3;
    assert_int_equal(mxg_outbound_start(&f->env, &req, NULL), 0);
    run_until_done(f);
    assert_int_equal(f->done_calls, 1);
    assert_int_equal(f->final.code, 450); /* the first failure */
    assert_int_equal(rc[0].reply.code, 450);
    assert_int_equal(rc[1].reply.code, 550);
    assert_int_equal(f->srv.n_data, 0);
}

static void test_missing_final_crlf(void **state)
{
    struct fx *f = *state;
    struct mxg_outbound_rcpt rc[1] = {{.addr = "a@example.test"}};
    struct mxg_outbound_req req;
    req_init(f, &req, rc, 1);
    req.body = "Subject: t\r\n\r\nno line end";
    req.body_len = strlen(req.body);
    assert_int_equal(mxg_outbound_start(&f->env, &req, NULL), 0);
    run_until_done(f);
    assert_int_equal(f->final.code, 250);
    assert_string_equal(f->srv.data, "Subject: t\r\n\r\nno line end\r\n");
}

/* A body file of several MiB while the server does not read for a while:
 * the leg's back-pressure pauses the reads, on_drain resumes them. */
static void test_fd_body_backpressure(void **state)
{
    struct fx *f = *state;
    char path[] = "/tmp/mxg-outbound-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    size_t total = 0;
    char line[100];
    for (int i = 0; total < 12 * 1024 * 1024; i++) {
        int n = snprintf(line, sizeof line, "line %08d xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\r\n", i);
        assert_int_equal(write(fd, line, (size_t)n), n);
        total += (size_t)n;
    }
    f->srv.stall_ms = 300;
    struct mxg_outbound_rcpt rc[1] = {{.addr = "a@example.test"}};
    struct mxg_outbound_req req;
    req_init(f, &req, rc, 1);
    req.body_fd = fd;
    assert_int_equal(mxg_outbound_start(&f->env, &req, NULL), 0);
    run_until_done(f);
    assert_int_equal(f->done_calls, 1);
    assert_int_equal(f->final.code, 250);
    assert_int_equal(f->srv.dlen, total);
    char *copy = malloc(total);
    assert_int_equal(pread(fd, copy, total, 0), (ssize_t)total);
    assert_memory_equal(copy, f->srv.data, total);
    free(copy);
    close(fd);
}

/* The server drops the connection while the writer waits for on_drain. */
static void test_drop_during_body(void **state)
{
    struct fx *f = *state;
    size_t total = 16 * 1024 * 1024;
    char *body = malloc(total);
    for (size_t i = 0; i < total; i++)
        body[i] = (i % 80 == 78) ? '\r' : (i % 80 == 79) ? '\n' : 'y';
    f->srv.stall_ms = 200;
    f->srv.drop_in_data = 1;
    struct mxg_outbound_rcpt rc[2] = {{.addr = "a@example.test"}, {.addr = "bad@example.test"}};
    struct mxg_outbound_req req;
    req_init(f, &req, rc, 2);
    req.body = body;
    req.body_len = total;
    assert_int_equal(mxg_outbound_start(&f->env, &req, NULL), 0);
    run_until_done(f);
    assert_int_equal(f->done_calls, 1);
    assert_int_equal(f->final.code / 100, 4);
    assert_int_equal(rc[0].reply.code / 100, 4); /* accepted, then lost */
    assert_int_equal(rc[1].reply.code, 550);     /* keeps its RCPT reply */
    assert_int_equal(f->srv.n_dot, 0);
    free(body);
}

static void test_connect_refused(void **state)
{
    struct fx *f = *state;
    struct mxg_outbound_rcpt rc[1] = {{.addr = "a@example.test"}};
    struct mxg_outbound_req req;
    req_init(f, &req, rc, 1);
    req.opts.nexthop = "[127.0.0.1]";
    req.opts.nexthop_port = 1; /* nothing listens there */
    req.body = "x\r\n";
    req.body_len = 3;
    assert_int_equal(mxg_outbound_start(&f->env, &req, NULL), 0);
    run_until_done(f);
    assert_int_equal(f->done_calls, 1);
    assert_int_equal(f->final.code, 451);
    assert_string_equal(f->final.enh, "4.4.1");
    assert_int_equal(rc[0].reply.code, 451);
}

static void test_loop_protection_port(void **state)
{
    struct fx *f = *state;
    /* we "listen" on 127.0.0.1:<srv port>: a next hop there is a loop ... */
    struct sockaddr_storage self;
    memset(&self, 0, sizeof self);
    uv_ip4_addr("127.0.0.1", f->srv.port, (struct sockaddr_in *)&self);
    f->env.self = &self;
    f->env.n_self = 1;
    struct mxg_outbound_rcpt rc[1] = {{.addr = "a@example.test"}};
    struct mxg_outbound_req req;
    req_init(f, &req, rc, 1);
    req.body = "x\r\n";
    req.body_len = 3;
    assert_int_equal(mxg_outbound_start(&f->env, &req, NULL), 0);
    run_until_done(f);
    assert_int_equal(f->final.code, 451);
    assert_string_equal(f->final.enh, "4.4.6");
    assert_int_equal(f->srv.connected, 0);
    /* ... on another port of the same address it is not */
    uv_ip4_addr("127.0.0.1", f->srv.port == 65535 ? 1 : f->srv.port + 1, (struct sockaddr_in *)&self);
    f->done_calls = 0;
    assert_int_equal(mxg_outbound_start(&f->env, &req, NULL), 0);
    run_until_done(f);
    assert_int_equal(f->final.code, 250);
}

static void test_cancel(void **state)
{
    struct fx *f = *state;
    struct mxg_outbound_rcpt rc[1] = {{.addr = "a@example.test"}};
    struct mxg_outbound_req req;
    req_init(f, &req, rc, 1);
    req.body = "x\r\n";
    req.body_len = 3;
    struct mxg_outbound *ob = NULL;
    assert_int_equal(mxg_outbound_start(&f->env, &req, &ob), 0);
    for (int i = 0; i < 3; i++)
        uv_run(&f->loop, UV_RUN_NOWAIT);
    mxg_outbound_cancel(ob);
    for (int i = 0; i < 100; i++)
        uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_int_equal(f->done_calls, 0);
    assert_int_equal(f->srv.n_dot, 0);
}

static void test_bad_requests(void **state)
{
    struct fx *f = *state;
    struct mxg_outbound_rcpt rc[1] = {{.addr = "a@example.test"}};
    struct mxg_outbound_req req;
    req_init(f, &req, rc, 1);
    req.n_rcpts = 0;
    assert_int_equal(mxg_outbound_start(&f->env, &req, NULL), -1);
    req_init(f, &req, rc, 1);
    req.done = NULL;
    assert_int_equal(mxg_outbound_start(&f->env, &req, NULL), -1);
    req_init(f, &req, rc, 1);
    req.opts.nexthop_port = 70000;
    assert_int_equal(mxg_outbound_start(&f->env, &req, NULL), -1);
    assert_int_equal(f->done_calls, 0);
}

/* DATA's only success is 354 (RFC 5321 §4.3.2). Any other reply fails every
 * accepted recipient (never 2xx: a 250 to DATA means the body never went
 * anywhere), and the connection gets QUIT and is closed. */
static void data_reply_case(struct fx *f, const char *reply, int want_code, const char *want_enh)
{
    f->srv.data_reply = reply;
    struct mxg_outbound_rcpt rc[2] = {{.addr = "a@example.test"}, {.addr = "bad@example.test"}};
    struct mxg_outbound_req req;
    req_init(f, &req, rc, 2);
    req.body = "Subject: t\r\n\r\nhello\r\n";
    req.body_len = strlen(req.body);
    assert_int_equal(mxg_outbound_start(&f->env, &req, NULL), 0);
    run_until_done(f);
    assert_int_equal(f->done_calls, 1);
    assert_int_equal(f->final.code, want_code);
    assert_string_equal(f->final.enh, want_enh);
    assert_int_equal(rc[0].reply.code, want_code); /* accepted, then DATA failed */
    assert_int_equal(rc[1].reply.code, 550);       /* keeps its RCPT reply */
    assert_int_equal(f->srv.n_data, 1);
    assert_int_equal(f->srv.n_dot, 0);
    assert_null(f->srv.data);
    assert_int_equal(f->srv.n_quit, 1); /* QUIT at once, nothing parked */
}

static void test_data_250_is_failure(void **state)
{
    struct fx *f = *state;
    data_reply_case(f, "250 2.0.0 fine, no data needed\r\n", 451, "4.5.0");
    assert_non_null(strstr(f->final.text, "250 2.0.0 fine, no data needed"));
    assert_non_null(strstr(f->final.text, "protocol violation"));
}

static void test_data_3xx_is_failure(void **state)
{
    data_reply_case(*state, "334 what\r\n", 451, "4.5.0");
}

static void test_data_5xx_keeps_reply(void **state)
{
    struct fx *f = *state;
    data_reply_case(f, "554 5.7.1 no data from you\r\n", 554, "5.7.1");
    assert_string_equal(f->final.text, "no data from you");
}

static void test_data_4xx_keeps_reply(void **state)
{
    data_reply_case(*state, "452 4.3.1 out of room\r\n", 452, "4.3.1");
}

/* A 3xx to the final dot is no delivery. */
static void test_dot_3xx_is_failure(void **state)
{
    struct fx *f = *state;
    f->srv.dot_reply = "354 more please\r\n";
    struct mxg_outbound_rcpt rc[1] = {{.addr = "a@example.test"}};
    struct mxg_outbound_req req;
    req_init(f, &req, rc, 1);
    req.body = "x\r\n";
    req.body_len = 3;
    assert_int_equal(mxg_outbound_start(&f->env, &req, NULL), 0);
    run_until_done(f);
    assert_int_equal(f->final.code, 451);
    assert_string_equal(f->final.enh, "4.5.0");
    assert_int_equal(rc[0].reply.code, 451);
    assert_int_equal(f->srv.n_dot, 1);
    assert_int_equal(f->srv.n_quit, 1);
}

/* docs/ARCHITECTURE.md §Protocol violations: the text of a malformed reply holds exactly the octets
 * received (shown printable), nothing of earlier lines or the stack. */
static void test_malformed_reply_text(void **state)
{
    struct fx *f = *state;
    f->srv.rcpt_reply = "2x\x01\r\n";
    struct mxg_outbound_rcpt rc[1] = {{.addr = "a@example.test"}};
    struct mxg_outbound_req req;
    req_init(f, &req, rc, 1);
    req.body = "x\r\n";
    req.body_len = 3;
    assert_int_equal(mxg_outbound_start(&f->env, &req, NULL), 0);
    run_until_done(f);
    assert_int_equal(f->final.code, 451);
    assert_string_equal(f->final.enh, "4.5.0");
    assert_string_equal(f->final.text, "127.0.0.1[127.0.0.1] sent a malformed reply: 2x\\x01");
}

/* A 3xx to RCPT is never relayed as an answer: 451 4.5.0, QUIT. */
static void test_rcpt_3xx_is_failure(void **state)
{
    struct fx *f = *state;
    f->srv.rcpt_reply = "354 go ahead\r\n";
    struct mxg_outbound_rcpt rc[1] = {{.addr = "a@example.test"}};
    struct mxg_outbound_req req;
    req_init(f, &req, rc, 1);
    req.body = "x\r\n";
    req.body_len = 3;
    assert_int_equal(mxg_outbound_start(&f->env, &req, NULL), 0);
    run_until_done(f);
    assert_int_equal(f->final.code, 451);
    assert_string_equal(f->final.enh, "4.5.0");
    assert_int_equal(rc[0].reply.code, 451);
    assert_int_equal(f->srv.n_data, 0);
    assert_int_equal(f->srv.n_quit, 1);
}

/* One message to a@example.test; the final reply and the recipient's. */
static void one_rcpt_case(struct fx *f, struct mxg_outbound_rcpt *rc)
{
    struct mxg_outbound_req req;
    memset(rc, 0, sizeof *rc);
    rc->addr = "a@example.test";
    req_init(f, &req, rc, 1);
    req.body = "x\r\n";
    req.body_len = 3;
    assert_int_equal(mxg_outbound_start(&f->env, &req, NULL), 0);
    run_until_done(f);
    assert_int_equal(f->done_calls, 1);
}

/* A 354 is only ever valid for DATA: one to MAIL is 451 4.5.0 (hostile_table.txt new-B). */
static void test_mail_354_is_failure(void **state)
{
    struct fx *f = *state;
    f->srv.mail_reply = "354 go ahead\r\n";
    struct mxg_outbound_rcpt rc;
    one_rcpt_case(f, &rc);
    assert_int_equal(f->final.code, 451);
    assert_string_equal(f->final.enh, "4.5.0");
    assert_int_equal(rc.reply.code, 451); /* whatever the pipelined RCPT got (250) */
    assert_int_equal(f->srv.n_rcpt, 1);   /* PIPELINING: it went with MAIL */
    assert_int_equal(f->srv.n_data, 0);
    assert_int_equal(f->srv.n_quit, 1);
}

/* A 421 to MAIL reaches the client as 451 4.4.2, never as 421 (new-C). */
static void test_mail_421_is_451(void **state)
{
    struct fx *f = *state;
    f->srv.mail_reply = "421 4.3.2 shutting down\r\n";
    struct mxg_outbound_rcpt rc;
    one_rcpt_case(f, &rc);
    assert_int_equal(f->final.code, 451);
    assert_string_equal(f->final.enh, "4.4.2");
    assert_int_equal(rc.reply.code, 451);
    assert_int_equal(f->srv.n_rcpt, 1); /* PIPELINING: it went with MAIL */
    assert_int_equal(f->srv.n_data, 0);
}

/* MAIL refused, the RCPT pipelined behind it answered 250: the transaction
 * fails with MAIL's reply, for every recipient; the 250 never counts as
 * accepted and no DATA goes out. */
static void test_mail_refused_rcpt_250(void **state)
{
    struct fx *f = *state;
    f->srv.mail_reply = "550 5.7.1 sender refused\r\n";
    struct mxg_outbound_rcpt rc[2] = {{.addr = "a@example.test"}, {.addr = "b@example.test"}};
    struct mxg_outbound_req req;
    req_init(f, &req, rc, 2);
    req.body = "x\r\n";
    req.body_len = 3;
    assert_int_equal(mxg_outbound_start(&f->env, &req, NULL), 0);
    run_until_done(f);
    assert_int_equal(f->final.code, 550);
    assert_string_equal(f->final.enh, "5.7.1");
    assert_int_equal(rc[0].reply.code, 550);
    assert_int_equal(rc[1].reply.code, 550);
    assert_int_equal(f->srv.n_rcpt, 1); /* only the first went, with MAIL */
    assert_int_equal(f->srv.n_data, 0);
    assert_int_equal(f->srv.n_dot, 0);
}

/* The same without PIPELINING: lock-step, the RCPT never reaches the MX. */
static void test_mail_refused_lockstep(void **state)
{
    struct fx *f = *state;
    f->srv.ehlo = "250-test.example\r\n250 8BITMIME\r\n";
    f->srv.mail_reply = "550 5.7.1 sender refused\r\n";
    struct mxg_outbound_rcpt rc;
    one_rcpt_case(f, &rc);
    assert_int_equal(f->final.code, 550);
    assert_int_equal(rc.reply.code, 550);
    assert_int_equal(f->srv.n_rcpt, 0);
    assert_int_equal(f->srv.n_data, 0);
}

/* Two replies to MAIL: the extra one answers the pipelined RCPT (replies are
 * matched in order), the RCPT's own reply then answers DATA: a 2xx to DATA,
 * 451 4.5.0, the message never goes out. */
static void test_mail_two_replies(void **state)
{
    struct fx *f = *state;
    f->srv.mail_reply = "250 2.1.0 ok\r\n250 2.1.0 ok\r\n";
    struct mxg_outbound_rcpt rc;
    one_rcpt_case(f, &rc);
    assert_int_equal(f->final.code, 451);
    assert_string_equal(f->final.enh, "4.5.0");
    assert_int_equal(f->srv.n_dot, 0);
    /* the server took DATA (354) and then our QUIT as message data: never the body */
    assert_true(f->srv.data == NULL || strstr(f->srv.data, "x\r\n") == NULL);
}

/* write_fault hook: the EHLO write fails (as out of memory would); counts it. */
static int fail_ehlo(void *arg, const void *p, size_t n)
{
    int *hits = arg;
    if (n >= 5 && memcmp(p, "EHLO ", 5) == 0) {
        (*hits)++;
        return 1;
    }
    return 0;
}

/* The EHLO on a fresh connection cannot be written (out of memory): a failure
 * of that candidate like a lost connection — the next one is tried, and with
 * none left the client gets "no usable MX" (451 4.4.1 naming the failure),
 * not a transaction lost at an MX (4.4.2); nothing reached the MX. */
static void test_ehlo_write_fails(void **state)
{
    struct fx *f = *state;
    int hits = 0;
    f->env.write_fault = fail_ehlo;
    f->env.write_fault_arg = &hits;
    struct mxg_outbound_rcpt rc;
    one_rcpt_case(f, &rc);
    assert_int_equal(hits, 1);
    assert_int_equal(f->final.code, 451);
    assert_string_equal(f->final.enh, "4.4.1");
    assert_non_null(strstr(f->final.text, "Write failed in state ehlo"));
    assert_int_equal(rc.reply.code, 451);
    assert_int_equal(f->srv.connected, 1);
    assert_int_equal(f->srv.n_mail, 0);
}

/* "250 <5000 octets>" in one read is no reply: 451 4.5.0, the connection is
 * closed, nothing sent after it (new-A). */
static void test_overlong_reply_line(void **state)
{
    struct fx *f = *state;
    static char big[5100];
    memset(big, 'x', sizeof big);
    memcpy(big, "250 ", 4);
    memcpy(big + 5000, "\r\n", 3);
    f->srv.rcpt_reply = big;
    struct mxg_outbound_rcpt rc;
    one_rcpt_case(f, &rc);
    assert_int_equal(f->final.code, 451);
    assert_string_equal(f->final.enh, "4.5.0");
    assert_int_equal(rc.reply.code, 451);
    assert_non_null(strstr(f->final.text, "overlong reply line"));
    assert_int_equal(f->srv.n_data, 0);
    assert_null(f->srv.data);
}

/* 8-bit reply text is relayed as '?' (new-F). */
static void test_8bit_reply_text(void **state)
{
    struct fx *f = *state;
    f->srv.rcpt_reply = "450 4.7.0 gr\xc3\xbc\xc3\x9f dich\r\n";
    struct mxg_outbound_rcpt rc;
    one_rcpt_case(f, &rc);
    assert_int_equal(rc.reply.code, 450);
    assert_string_equal(rc.reply.text, "gr???? dich");
}

static void count_leg_handles(uv_handle_t *h, void *arg)
{
    struct fx *f = arg;
    if (h != (uv_handle_t *)&f->srv.listener && h != (uv_handle_t *)&f->srv.client &&
        h != (uv_handle_t *)&f->srv.stall && !uv_is_closing(h))
        f->done_calls += 100;
}

/* A malformed or mixed reply to QUIT after a delivery changes nothing and
 * leaks nothing: the leg ends (new-D: it stayed, failed, never freed). */
static void quit_case(struct fx *f, const char *quit_reply)
{
    f->srv.quit_reply = quit_reply;
    struct mxg_outbound_rcpt rc;
    one_rcpt_case(f, &rc);
    assert_int_equal(f->final.code, 250);
    assert_int_equal(rc.reply.code, 250);
    assert_int_equal(f->srv.n_quit, 1);
    for (int i = 0; i < 50; i++)
        uv_run(&f->loop, UV_RUN_NOWAIT);
    f->done_calls = 0;
    uv_walk(&f->loop, count_leg_handles, f);
    assert_int_equal(f->done_calls, 0); /* no handle of the leg is left open */
}

static void test_quit_mixed_reply(void **state)
{
    quit_case(*state, "221-bye\r\n250 what\r\n");
}

static void test_quit_malformed_reply(void **state)
{
    quit_case(*state, "2x\x01\r\n");
}

/* docs/ARCHITECTURE.md §MAIL parameters: BODY=8BITMIME to an MX without
 * 8BITMIME: a 7-bit clean body goes (without BODY=); an 8-bit one fails 554
 * 5.6.3 before any 8-bit octet and without the dot. */
static void eightbit_case(struct fx *f, const char *body, int want_code)
{
    f->srv.ehlo = "250-test.example\r\n250 PIPELINING\r\n";
    struct mxg_mail_params mp;
    memset(&mp, 0, sizeof mp);
    mp.body = MXG_BODY_8BITMIME;
    struct mxg_outbound_rcpt rc[1] = {{.addr = "a@example.test"}};
    struct mxg_outbound_req req;
    req_init(f, &req, rc, 1);
    req.mp = &mp;
    req.body = body;
    req.body_len = strlen(body);
    assert_int_equal(mxg_outbound_start(&f->env, &req, NULL), 0);
    run_until_done(f);
    assert_int_equal(f->final.code, want_code);
    assert_int_equal(rc[0].reply.code, want_code);
    assert_string_equal(f->srv.mail_from, "<sender@example.org>"); /* no BODY= */
}

static void test_8bit_to_7bit_mx(void **state)
{
    struct fx *f = *state;
    eightbit_case(f, "Subject: t\r\n\r\ncaf\xc3\xa9\r\n", 554);
    assert_string_equal(f->final.enh, "5.6.3");
    assert_int_equal(f->srv.n_dot, 0);
    assert_null(f->srv.data); /* not one octet of the body */
}

static void test_7bit_clean_to_7bit_mx(void **state)
{
    struct fx *f = *state;
    eightbit_case(f, "Subject: t\r\n\r\nplain\r\n", 250);
    assert_int_equal(f->srv.n_dot, 1);
}

/* mx_no_dsn tells the caller whether NOTIFY went to the MX. */
/* ------------------------------------------- writes per transaction (legs) */

/* A leg driven as the inbound session drives it: its replies, in order. */
struct drv {
    int n;
    int codes[8];
};

/* on_reply of a driven leg: record the code. */
static void drv_reply(void *arg, struct mxg_leg *leg, const struct mxg_reply *r)
{
    struct drv *d = arg;
    (void)leg;
    if (d->n < 8)
        d->codes[d->n] = r->code;
    d->n++;
}

/* on_drain of a driven leg: nothing waits. */
static void drv_drain(void *arg, struct mxg_leg *leg)
{
    (void)arg;
    (void)leg;
}

/* Run the loop until the driven leg has n replies. */
static void drv_wait(struct fx *f, struct drv *d, int n)
{
    while (d->n < n && uv_run(&f->loop, UV_RUN_ONCE))
        ;
    assert_int_equal(d->n, n);
}

/* One transaction on a leg to the test server (MAIL, RCPT, DATA, body, dot; the body held
 * for the dot when hold), then close it (parked when the cache takes it). Returns the
 * upstream writes it cost. */
static double drv_txn_first(struct fx *f, const char *body, int hold, const char *first)
{
    struct drv d = {0};
    struct mxg_leg_opts o = {.nexthop = "127.0.0.1", .nexthop_port = f->srv.port,
                             .opportunistic = 1, .no_tlsrpt = 1, .first_rcpt = first};
    struct mxg_mail_params mp;
    memset(&mp, 0, sizeof mp);
    struct mxg_leg_cbs cbs = {drv_reply, drv_drain};
    double w0 = mxg_metrics_value(f->env.metrics, MXG_M_UPSTREAM_WRITES, NULL);
    struct mxg_leg *leg = mxg_leg_open_opts(&f->env, "T", "example.test", "s@example.org", &mp,
                                            &o, &cbs, &d);
    assert_non_null(leg);
    drv_wait(f, &d, 1);
    assert_int_equal(d.codes[0], 250); /* MAIL */
    assert_int_equal(mxg_leg_rcpt(leg, "a@example.test", NULL), 0);
    drv_wait(f, &d, 2);
    assert_int_equal(d.codes[1], 250);
    assert_int_equal(mxg_leg_data(leg), 0);
    drv_wait(f, &d, 3);
    assert_int_equal(d.codes[2], 354);
    if (hold)
        mxg_leg_hold(leg);
    assert_int_equal(mxg_leg_write(leg, body, strlen(body)), 0);
    assert_int_equal(mxg_leg_end_data(leg), 0);
    drv_wait(f, &d, 4);
    assert_int_equal(d.codes[3], 250);
    mxg_leg_close(leg);
    for (int i = 0; i < 20; i++)
        uv_run(&f->loop, UV_RUN_NOWAIT);
    return mxg_metrics_value(f->env.metrics, MXG_M_UPSTREAM_WRITES, NULL) - w0;
}

/* drv_txn_first without a first recipient announced: MAIL and RCPT in lock-step. */
static double drv_txn(struct fx *f, const char *body, int hold)
{
    return drv_txn_first(f, body, hold, NULL);
}

/* Give the fixture a connection cache and a metrics registry. */
static void drv_env(struct fx *f)
{
    f->env.metrics = mxg_metrics_new();
    f->env.conncache = mxg_upstream_conncache_new(&f->loop, &f->cfg);
    assert_non_null(f->env.metrics);
    assert_non_null(f->env.conncache);
}

/* Close the cache (QUIT on the idle connection) and free what drv_env made. */
static void drv_env_end(struct fx *f)
{
    mxg_conncache_shutdown(f->env.conncache);
    for (int i = 0; i < 50; i++)
        uv_run(&f->loop, UV_RUN_NOWAIT);
    mxg_conncache_free(f->env.conncache);
    mxg_metrics_free(f->env.metrics);
    f->env.conncache = NULL;
    f->env.metrics = NULL;
}

/* A cached connection to an MX with PIPELINING: RSET and MAIL in one write, the held body
 * with the dot in one write — 4 writes; without the hold the dot is a write of its own. */
static void test_writes_pipelining(void **state)
{
    struct fx *f = *state;
    drv_env(f);
    const char *b1 = "Subject: one\r\n\r\nfirst\r\n";
    const char *b2 = "Subject: two\r\n\r\nsecond\r\n";
    const char *b3 = "Subject: three\r\n\r\nthird\r\n";
    /* a fresh connection: EHLO, MAIL, RCPT, DATA, body+dot */
    assert_int_equal((int)drv_txn(f, b1, 1), 5);
    assert_int_equal((int)drv_txn(f, b2, 1), 4); /* RSET+MAIL, RCPT, DATA, body+dot */
    assert_int_equal((int)drv_txn(f, b3, 0), 5); /* the dot on its own */
    assert_int_equal(f->srv.n_rset, 2);
    assert_int_equal(f->srv.n_mail, 3);
    assert_int_equal(f->srv.n_dot, 3);
    char want[256];
    snprintf(want, sizeof want, "%s%s%s", b1, b2, b3);
    assert_string_equal(f->srv.data, want); /* the bytes as written, in order */
    drv_env_end(f);
    assert_int_equal(f->srv.n_quit, 1);
}

/* The first recipient announced (as the session and the queue runner do): with
 * PIPELINING the RCPT goes with MAIL — a fresh connection 4 writes (EHLO, MAIL+RCPT,
 * DATA, body+dot), a cached one 3 (RSET+MAIL+RCPT, DATA, body+dot). The driver claims
 * the RCPT only after MAIL's on_reply returned (its reply waits, then comes from the loop). */
static void test_writes_first_rcpt(void **state)
{
    struct fx *f = *state;
    drv_env(f);
    assert_int_equal((int)drv_txn_first(f, "a\r\n", 1, "a@example.test"), 4);
    assert_int_equal((int)drv_txn_first(f, "b\r\n", 1, "a@example.test"), 3);
    assert_int_equal(f->srv.n_rset, 1);
    assert_int_equal(f->srv.n_mail, 2);
    assert_int_equal(f->srv.n_rcpt, 2);
    assert_int_equal(f->srv.n_dot, 2);
    assert_string_equal(f->srv.data, "a\r\nb\r\n");
    drv_env_end(f);
}

/* The first recipient announced to an MX without PIPELINING: lock-step (5 writes reused). */
static void test_writes_first_rcpt_no_pipelining(void **state)
{
    struct fx *f = *state;
    f->srv.ehlo = "250-test.example\r\n250 8BITMIME\r\n";
    drv_env(f);
    assert_int_equal((int)drv_txn_first(f, "a\r\n", 1, "a@example.test"), 5);
    assert_int_equal((int)drv_txn_first(f, "b\r\n", 1, "a@example.test"), 5);
    assert_string_equal(f->srv.data, "a\r\nb\r\n");
    drv_env_end(f);
}

/* The first mxg_leg_rcpt names another recipient than the one sent ahead: the
 * leg fails (451 4.3.0), the MX never gets DATA. */
static void test_first_rcpt_mismatch(void **state)
{
    struct fx *f = *state;
    struct drv d = {0};
    struct mxg_leg_opts o = {.nexthop = "127.0.0.1", .nexthop_port = f->srv.port,
                             .opportunistic = 1, .no_tlsrpt = 1, .first_rcpt = "a@example.test"};
    struct mxg_mail_params mp;
    memset(&mp, 0, sizeof mp);
    struct mxg_leg_cbs cbs = {drv_reply, drv_drain};
    struct mxg_leg *leg = mxg_leg_open_opts(&f->env, "T", "example.test", "s@example.org", &mp,
                                            &o, &cbs, &d);
    assert_non_null(leg);
    drv_wait(f, &d, 1);
    assert_int_equal(d.codes[0], 250);
    assert_int_equal(mxg_leg_rcpt(leg, "z@example.test", NULL), -1);
    assert_int_equal(mxg_leg_error(leg)->code, 451);
    assert_string_equal(mxg_leg_error(leg)->enh, "4.3.0");
    assert_int_equal(mxg_leg_data(leg), -1);
    mxg_leg_close(leg);
    for (int i = 0; i < 20; i++)
        uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_int_equal(f->srv.n_rcpt, 1);
    assert_int_equal(f->srv.n_data, 0);
}

/* A reply while nothing waits for one (two replies to MAIL, lock-step): the leg
 * fails with 451 4.5.0 at once, before any later command could take it. */
static void test_extra_reply_fails_leg(void **state)
{
    struct fx *f = *state;
    f->srv.ehlo = "250-test.example\r\n250 8BITMIME\r\n";
    f->srv.mail_reply = "250 2.1.0 ok\r\n250 2.1.0 ok\r\n";
    struct drv d = {0};
    struct mxg_leg_opts o = {.nexthop = "127.0.0.1", .nexthop_port = f->srv.port,
                             .opportunistic = 1, .no_tlsrpt = 1};
    struct mxg_mail_params mp;
    memset(&mp, 0, sizeof mp);
    struct mxg_leg_cbs cbs = {drv_reply, drv_drain};
    struct mxg_leg *leg = mxg_leg_open_opts(&f->env, "T", "example.test", "s@example.org", &mp,
                                            &o, &cbs, &d);
    assert_non_null(leg);
    drv_wait(f, &d, 1);
    assert_int_equal(d.codes[0], 250);
    for (int i = 0; i < 20 && mxg_leg_error(leg)->code == 0; i++)
        uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_int_equal(mxg_leg_rcpt(leg, "a@example.test", NULL), -1);
    assert_int_equal(mxg_leg_error(leg)->code, 451);
    assert_string_equal(mxg_leg_error(leg)->enh, "4.5.0");
    mxg_leg_close(leg);
    for (int i = 0; i < 20; i++)
        uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_int_equal(f->srv.n_rcpt, 0);
    assert_int_equal(d.n, 1); /* no second on_reply */
}

/* A cached connection to an MX without PIPELINING: RSET alone, then MAIL — 5 writes. */
static void test_writes_no_pipelining(void **state)
{
    struct fx *f = *state;
    f->srv.ehlo = "250-test.example\r\n250 8BITMIME\r\n";
    drv_env(f);
    assert_int_equal((int)drv_txn(f, "a\r\n", 1), 5);
    assert_int_equal((int)drv_txn(f, "b\r\n", 1), 5); /* RSET, MAIL, RCPT, DATA, body+dot */
    assert_int_equal(f->srv.n_rset, 1);
    assert_string_equal(f->srv.data, "a\r\nb\r\n");
    drv_env_end(f);
}

static void test_mx_no_dsn(void **state)
{
    struct fx *f = *state;
    struct mxg_outbound_rcpt rc[1] = {{.addr = "a@example.test"}};
    struct mxg_outbound_req req;
    req_init(f, &req, rc, 1);
    req.body = "x\r\n";
    req.body_len = 3;
    assert_int_equal(mxg_outbound_start(&f->env, &req, NULL), 0);
    run_until_done(f);
    assert_int_equal(f->final.code, 250);
    assert_int_equal(req.mx_no_dsn, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_memory_body_mixed_rcpts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_rcpt_accepted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_final_crlf, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fd_body_backpressure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_drop_during_body, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connect_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_loop_protection_port, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_requests, setup, teardown),
        cmocka_unit_test_setup_teardown(test_data_250_is_failure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_data_3xx_is_failure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_data_5xx_keeps_reply, setup, teardown),
        cmocka_unit_test_setup_teardown(test_data_4xx_keeps_reply, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dot_3xx_is_failure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed_reply_text, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rcpt_3xx_is_failure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_8bit_to_7bit_mx, setup, teardown),
        cmocka_unit_test_setup_teardown(test_7bit_clean_to_7bit_mx, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mx_no_dsn, setup, teardown),
        cmocka_unit_test_setup_teardown(test_writes_pipelining, setup, teardown),
        cmocka_unit_test_setup_teardown(test_writes_no_pipelining, setup, teardown),
        cmocka_unit_test_setup_teardown(test_writes_first_rcpt, setup, teardown),
        cmocka_unit_test_setup_teardown(test_writes_first_rcpt_no_pipelining, setup, teardown),
        cmocka_unit_test_setup_teardown(test_first_rcpt_mismatch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_extra_reply_fails_leg, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mail_refused_rcpt_250, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mail_refused_lockstep, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mail_two_replies, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mail_354_is_failure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mail_421_is_451, setup, teardown),
        cmocka_unit_test_setup_teardown(test_overlong_reply_line, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ehlo_write_fails, setup, teardown),
        cmocka_unit_test_setup_teardown(test_8bit_reply_text, setup, teardown),
        cmocka_unit_test_setup_teardown(test_quit_mixed_reply, setup, teardown),
        cmocka_unit_test_setup_teardown(test_quit_malformed_reply, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
