/* tests/unit/test_app_listeners.c — app/listeners.h: the SMTP sockets of `mxguard run`
 * are bound before its start-up work (a taken port is an error at once, naming the
 * address) but do not listen: a client is refused (ECONNREFUSED) until the serving
 * process calls listen(). With SO_REUSEPORT (workers) one socket per worker shares the
 * port, and only a listening one takes connections. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/config.h"
#include "app/listeners.h"

/* A listening socket on 127.0.0.1 with a port of the kernel's choice; its port in *port. */
static int taken_port(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(fd, 4), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    *port = ntohs(a.sin_port);
    return fd;
}

/* A free port on 127.0.0.1 (bound once and released). */
static int free_port(void)
{
    int port;
    close(taken_port(&port));
    return port;
}

/* connect() to 127.0.0.1:port: 0 when a listening socket took it, else errno. */
static int try_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_true(fd >= 0);
    int rc = connect(fd, (struct sockaddr *)&a, sizeof a) == 0 ? 0 : errno;
    close(fd);
    return rc;
}

static void cfg_ports(struct mxg_config *c, int listen_port, int queue_port)
{
    char text[64];
    mxg_config_defaults(c);
    snprintf(text, sizeof text, "127.0.0.1:%d", listen_port);
    assert_int_equal(mxg_parse_endpoint(text, 25, &c->listen[0]), 0);
    c->n_listen = 1;
    c->n_queue_listen = 0;
    if (queue_port) {
        snprintf(text, sizeof text, "127.0.0.1:%d", queue_port);
        assert_int_equal(mxg_parse_endpoint(text, 25, &c->queue_listen[0]), 0);
        c->n_queue_listen = 1;
    }
}

/* Bound, refused until listen(); server.listen first, then server.queue_listen. */
static void test_bound_not_listening(void **state)
{
    (void)state;
    static struct mxg_config c;
    int fds[APP_LISTENERS_MAX];
    char err[256];
    int p = free_port(), q = free_port();
    cfg_ports(&c, p, q);
    assert_int_equal(app_listeners_bind(&c, 0, fds, err, sizeof err), 2);
    assert_int_equal(try_connect(p), ECONNREFUSED);
    assert_int_equal(try_connect(q), ECONNREFUSED);
    assert_int_equal(listen(fds[0], 4), 0);
    assert_int_equal(try_connect(p), 0);
    assert_int_equal(try_connect(q), ECONNREFUSED);
    assert_int_equal(listen(fds[1], 4), 0);
    assert_int_equal(try_connect(q), 0);
    app_listeners_close(fds, 2);
    assert_int_equal(fds[0], -1);
    assert_int_equal(fds[1], -1);
    assert_int_equal(try_connect(p), ECONNREFUSED);
}

/* A port that another process listens on: an error naming the address, nothing open. */
static void test_port_taken(void **state)
{
    (void)state;
    static struct mxg_config c;
    int fds[APP_LISTENERS_MAX], port, q = free_port();
    char err[256], want[64];
    int other = taken_port(&port);
    cfg_ports(&c, q, port); /* the first binds, the second cannot: the first is closed again */
    for (int reuse = 0; reuse <= 1; reuse++) {
        err[0] = 0;
        assert_int_equal(app_listeners_bind(&c, reuse, fds, err, sizeof err), -1);
        snprintf(want, sizeof want, "cannot bind 127.0.0.1:%d: ", port);
        if (!strstr(err, want) || !strstr(err, strerror(EADDRINUSE)))
            fail_msg("reuseport %d: [%s]", reuse, err);
        /* the first endpoint's socket is not left bound: a listener of its own takes it */
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)q),
                                .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
        close(fd);
    }
    close(other);
}

/* SO_REUSEPORT (one socket per worker): both bind the port; connections are refused
 * until one listens, then that one takes them all. */
static void test_reuseport_workers(void **state)
{
    (void)state;
    static struct mxg_config c;
    int a[APP_LISTENERS_MAX], b[APP_LISTENERS_MAX];
    char err[256];
    int p = free_port();
    cfg_ports(&c, p, 0);
    assert_int_equal(app_listeners_bind(&c, 1, a, err, sizeof err), 1);
    assert_int_equal(app_listeners_bind(&c, 1, b, err, sizeof err), 1);
    assert_int_equal(try_connect(p), ECONNREFUSED);
    assert_int_equal(listen(b[0], 16), 0);
    for (int i = 0; i < 8; i++)
        assert_int_equal(try_connect(p), 0);
    app_listeners_close(a, 1);
    app_listeners_close(b, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bound_not_listening),
        cmocka_unit_test(test_port_taken),
        cmocka_unit_test(test_reuseport_workers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
