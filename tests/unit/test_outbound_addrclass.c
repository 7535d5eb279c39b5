/* tests/unit/test_outbound_addrclass.c — proxy/outbound/addr_class: the special-purpose
 * ranges upstream.refuse_private_addresses refuses (each range's edges,
 * IPv4-mapped / -compatible / NAT64 forms, global addresses pass), the
 * host comparison behind upstream.self_addresses (IPv4 vs its mapped IPv6
 * form), and the config key's optional port. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <arpa/inet.h>
#include <cmocka.h>
#include <netinet/in.h>

#include "core/config.h"
#include "proxy/outbound/addr_class.h"

static struct sockaddr_storage sa(const char *text)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    if (strchr(text, ':')) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
        s6->sin6_family = AF_INET6;
        assert_int_equal(inet_pton(AF_INET6, text, &s6->sin6_addr), 1);
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
        s4->sin_family = AF_INET;
        assert_int_equal(inet_pton(AF_INET, text, &s4->sin_addr), 1);
    }
    return ss;
}

static const char *cls(const char *text)
{
    struct sockaddr_storage ss = sa(text);
    return mxg_addr_private((const struct sockaddr *)&ss);
}

static void t_private(void **state)
{
    (void)state;
    const char *refused[] = {
        "0.0.0.0", "0.255.255.255", "10.0.0.1", "10.255.255.255", "100.64.0.0",
        "100.127.255.255", "127.0.0.1", "127.0.70.11", "169.254.1.1", "172.16.0.1",
        "172.31.255.255", "192.168.0.1", "192.168.255.255", "224.0.0.1", "239.255.255.255",
        "240.0.0.1", "255.255.255.255", "::", "::1", "fc00::1", "fdff::1", "fe80::1",
        "febf::1", "fec0::1", "ff02::1", "::ffff:127.0.0.1", "::ffff:10.1.2.3",
        "::ffff:192.168.1.1", "::10.0.0.1", "::2", "64:ff9b::a9fe:0101", "64:ff9b::127.0.0.1",
    };
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++)
        if (!cls(refused[i]))
            fail_msg("%s should be special-purpose", refused[i]);
    const char *global[] = {
        "1.1.1.1", "9.255.255.255", "11.0.0.0", "100.63.255.255", "100.128.0.0", "126.255.255.255",
        "128.0.0.0", "169.253.255.255", "172.15.255.255", "172.32.0.0", "192.167.255.255",
        "192.169.0.0", "223.255.255.255", "192.0.2.1", "2001:db8::1", "2a00:1450::1",
        "fbff::1", "fe00::1", "::ffff:8.8.8.8", "64:ff9b::808:808",
    };
    for (size_t i = 0; i < sizeof global / sizeof global[0]; i++)
        if (cls(global[i]))
            fail_msg("%s should be global, got %s", global[i], cls(global[i]));
    assert_non_null(strstr(cls("127.0.70.11"), "loopback"));
    assert_non_null(strstr(cls("fe80::1"), "link-local"));
    assert_non_null(strstr(cls("::ffff:10.0.0.1"), "private"));
}

static void t_same_host(void **state)
{
    (void)state;
    struct sockaddr_storage a = sa("192.0.2.10"), b = sa("::ffff:192.0.2.10"), c = sa("192.0.2.11"),
                            d = sa("2001:db8::1"), e = sa("2001:db8::1");
    ((struct sockaddr_in *)&a)->sin_port = htons(25); /* ports are not compared */
    assert_true(mxg_addr_same_host((struct sockaddr *)&a, (struct sockaddr *)&b));
    assert_true(mxg_addr_same_host((struct sockaddr *)&b, (struct sockaddr *)&a));
    assert_false(mxg_addr_same_host((struct sockaddr *)&a, (struct sockaddr *)&c));
    assert_true(mxg_addr_same_host((struct sockaddr *)&d, (struct sockaddr *)&e));
    assert_false(mxg_addr_same_host((struct sockaddr *)&a, (struct sockaddr *)&d));
}

/* upstream.self_addresses: a port is optional (0 = any). */
static void t_config(void **state)
{
    (void)state;
    struct mxg_config cfg;
    char err[512];
    char *envp[] = {"MXGUARD_UPSTREAM_SELF_ADDRESSES=192.0.2.10,[2001:db8::5]:25,::ffff:10.0.0.1",
                    "MXGUARD_UPSTREAM_REFUSE_PRIVATE_ADDRESSES=true", NULL};
    if (mxg_config_load(&cfg, NULL, envp, err, sizeof err) < 0)
        fail_msg("load: %s", err);
    assert_int_equal(cfg.n_self_addrs, 3);
    assert_int_equal(cfg.refuse_private, 1);
    assert_int_equal(((struct sockaddr_in *)&cfg.self_addrs[0].sa)->sin_port, 0);
    assert_int_equal(ntohs(((struct sockaddr_in6 *)&cfg.self_addrs[1].sa)->sin6_port), 25);
    char *bad[] = {"MXGUARD_UPSTREAM_SELF_ADDRESSES=mx.example.com", NULL};
    assert_int_equal(mxg_config_load(&cfg, NULL, bad, err, sizeof err), -1);
    mxg_config_defaults(&cfg);
    assert_int_equal(cfg.n_self_addrs, 0);
    assert_int_equal(cfg.refuse_private, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_private),
        cmocka_unit_test(t_same_host),
        cmocka_unit_test(t_config),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
