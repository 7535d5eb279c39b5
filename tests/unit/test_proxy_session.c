/* Unit tests for the inbound session state machine (proxy/session.c):
 * command sequences → reply codes, over a real loopback socket, with no
 * upstream involved (every case stops before a RCPT would open a leg).
 * A client thread plays the script; the libuv loop runs the server. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proxy/server.h"
#include "spool/spool.h"

#define MAX_STEPS 24

struct step {
    const char *send; /* NULL: just read the greeting / a pending reply */
    int expect;       /* reply code */
};

struct script {
    const char *name;
    struct step steps[MAX_STEPS];
};

struct run {
    int port;
    const struct script *sc;
    int got[MAX_STEPS];
    int n;
    uv_async_t done;
};

/* Read one complete (possibly multi-line) reply; returns its code or -1. */
static int read_reply(FILE *f)
{
    char line[4096];
    for (;;) {
        if (!fgets(line, sizeof line, f))
            return -1;
        if (strlen(line) >= 4 && line[3] == ' ')
            return atoi(line);
        if (strlen(line) == 5 && line[3] == '\r')
            return atoi(line);
    }
}

static void *client_main(void *arg)
{
    struct run *r = arg;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)r->port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0) {
        FILE *f = fdopen(dup(fd), "r");
        for (int i = 0; i < MAX_STEPS && r->sc->steps[i].expect; i++) {
            const char *s = r->sc->steps[i].send;
            if (s) {
                char buf[8192];
                int n = snprintf(buf, sizeof buf, "%s\r\n", s);
                if (write(fd, buf, (size_t)n) != n)
                    break;
            }
            r->got[r->n++] = read_reply(f);
        }
        fclose(f);
    }
    close(fd);
    uv_async_send(&r->done);
    return NULL;
}

static void on_done(uv_async_t *a)
{
    struct mxg_server *srv = a->data;
    uv_close((uv_handle_t *)a, NULL);
    mxg_server_drain(srv, NULL);
}

/* queue_spool: NULL = an ordinary (proxy) listener; else a queue-mode
 * listener whose messages go to that spool. */
static void run_script_on(const struct script *sc, int max_errors, int queue_mode,
                          struct mxg_spool *queue_spool)
{
    static struct mxg_config cfg;
    mxg_config_defaults(&cfg);
    cfg.max_errors = max_errors;
    cfg.drain_timeout_ms = 2000;
    snprintf(cfg.hostname, sizeof cfg.hostname, "unit.test");
    struct sockaddr_in *sin = (struct sockaddr_in *)&cfg.listen[0].sa;
    memset(sin, 0, sizeof cfg.listen[0].sa);
    sin->sin_family = AF_INET;
    inet_pton(AF_INET, "127.0.0.1", &sin->sin_addr);
    sin->sin_port = 0;
    cfg.n_listen = 1;
    if (queue_mode) {
        cfg.queue_listen[0] = cfg.listen[0];
        cfg.n_queue_listen = 1;
        cfg.n_listen = 0;
    }
    mxg_log_setup(MXG_LOG_ERR, 0);

    uv_loop_t loop;
    uv_loop_init(&loop);
    struct mxg_server srv;
    char err[256];
    memset(&srv, 0, sizeof srv);
    srv.spool = queue_spool;
    assert_int_equal(mxg_server_start(&srv, &loop, &cfg, NULL, err, sizeof err), 0);
    struct sockaddr_storage bound;
    int len = sizeof bound;
    uv_tcp_getsockname(&srv.listeners[0], (struct sockaddr *)&bound, &len);

    struct run r = {.port = ntohs(((struct sockaddr_in *)&bound)->sin_port), .sc = sc};
    uv_async_init(&loop, &r.done, on_done);
    r.done.data = &srv;
    pthread_t th;
    pthread_create(&th, NULL, client_main, &r);
    uv_run(&loop, UV_RUN_DEFAULT);
    pthread_join(th, NULL);
    assert_int_equal(uv_loop_close(&loop), 0);

    for (int i = 0; i < MAX_STEPS && sc->steps[i].expect; i++) {
        int got = i < r.n ? r.got[i] : -2;
        if (got != sc->steps[i].expect)
            fail_msg("%s: step %d ('%.40s'): got %d, expected %d", sc->name, i,
                     sc->steps[i].send ? sc->steps[i].send : "(read)", got, sc->steps[i].expect);
    }
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sequences),
        cmocka_unit_test(test_too_many_errors),
        cmocka_unit_test(test_queue_mode),
        cmocka_unit_test(test_queue_mode_no_spool),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
