/* tests/unit/test_core_reload.c — SIGHUP semantics without a process:
 * mxg_config_diff(), mxg_config_copy_setting(), mxg_reload_apply() (what is
 * copied into the live configuration, what is kept until a restart, which
 * follow-up actions are asked for). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/config.h"
#include "core/reload.h"

static void load(struct mxg_config *c, const char *const *env)
{
    char err[512];
    if (mxg_config_load(c, NULL, (char *const *)env, err, sizeof err) < 0)
        fail_msg("config: %s", err);
}

struct seen {
    char names[64][64];
    char olds[64][128], news[64][128];
    int n;
};

static void record(void *arg, const char *section, const char *name, const char *o, const char *n)
{
    struct seen *s = arg;
    assert_true(s->n < 64);
    snprintf(s->names[s->n], sizeof s->names[0], "%s.%s", section, name);
    snprintf(s->olds[s->n], sizeof s->olds[0], "%s", o);
    snprintf(s->news[s->n], sizeof s->news[0], "%s", n);
    s->n++;
}

static void test_diff(void **state)
{
    (void)state;
    struct mxg_config a, b;
    load(&a, NULL);
    load(&b, NULL);
    struct seen s = {0};
    assert_int_equal(mxg_config_diff(&a, &b, record, &s), 0);
    static const char *const env[] = {"MXGUARD_LIMITS_MESSAGE_SIZE=1M", "MXGUARD_LOG_FORMAT=json",
                                      "MXGUARD_SERVER_LISTEN=127.0.0.1:2525,[::1]:2525", NULL};
    load(&b, env);
    assert_int_equal(mxg_config_diff(&a, &b, record, &s), 3);
    /* schema order, values in the file syntax */
    assert_string_equal(s.names[0], "server.listen");
    assert_string_equal(s.olds[0], "[ \"127.0.0.1:10025\" ]");
    assert_string_equal(s.news[0], "[ \"127.0.0.1:2525\", \"[::1]:2525\" ]");
    assert_string_equal(s.names[1], "limits.message_size");
    assert_string_equal(s.olds[1], "52428800");
    assert_string_equal(s.news[1], "1048576");
    assert_string_equal(s.names[2], "log.format");
    assert_string_equal(s.news[2], "\"json\"");
    assert_int_equal(mxg_config_diff(&a, &b, NULL, NULL), 3);
}

static void test_copy_setting(void **state)
{
    (void)state;
    struct mxg_config a, b;
    load(&a, NULL);
    static const char *const env[] = {
        "MXGUARD_LIMITS_MESSAGE_SIZE=1M", "MXGUARD_SERVER_ALLOW_NETWORKS=10.0.0.0/8,192.0.2.1",
        "MXGUARD_UPSTREAM_HELO_NAME=out.example", "MXGUARD_TIMEOUTS_IDLE=5s",
        "MXGUARD_TLS_OPPORTUNISTIC_LEVEL=encrypt", "MXGUARD_SERVER_MAX_SESSIONS=7",
        "MXGUARD_LOG_SYSLOG=yes", NULL};
    load(&b, env);
    static const char *const keys[][2] = {
        {"limits", "message_size"}, {"server", "allow_networks"}, {"upstream", "helo_name"},
        {"timeouts", "idle"}, {"tls", "opportunistic_level"}, {"server", "max_sessions"},
        {"log", "syslog"}};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        assert_int_equal(mxg_config_copy_setting(&a, &b, keys[i][0], keys[i][1]), 0);
    assert_int_equal(mxg_config_diff(&a, &b, NULL, NULL), 0);
    assert_int_equal(a.message_size, 1048576);
    assert_int_equal(a.n_allow, 2);
    assert_string_equal(a.allow[1].text, "192.0.2.1/32");
    assert_string_equal(a.helo_name, "out.example");
    assert_int_equal(a.t_idle, 5000);
    assert_int_equal(a.tls_level, MXG_TLS_LEVEL_ENCRYPT);
    assert_int_equal(a.max_sessions, 7);
    assert_int_equal(a.log_syslog, 1);
    assert_int_equal(mxg_config_copy_setting(&a, &b, "limits", "nope"), -1);
    assert_int_equal(mxg_config_copy_setting(&a, &b, "nope", "message_size"), -1);
}

static void test_apply(void **state)
{
    (void)state;
    struct mxg_config live, next, orig;
    load(&live, NULL);
    live.dns_mode = MXG_DNS_STUB; /* the anchors are live in stub mode only */
    orig = live;
    static const char *const env[] = {
        "MXGUARD_DNS_MODE=stub",                       /* (as live: no change) */
        "MXGUARD_LIMITS_MESSAGE_SIZE=100k",            /* live */
        "MXGUARD_TIMEOUTS_RCPT_TOTAL=30s",             /* live */
        "MXGUARD_SERVER_ALLOW_NETWORKS=127.0.0.1",     /* live */
        "MXGUARD_LOG_LEVEL=debug",                     /* live + LOG */
        "MXGUARD_METRICS_ALLOW_NETWORKS=10.0.0.0/8",   /* live */
        "MXGUARD_SERVER_LISTEN=127.0.0.1:2525",        /* restart */
        "MXGUARD_STATE_DIRECTORY=/srv/elsewhere",      /* restart */
        "MXGUARD_DNS_SERVERS=192.0.2.53",              /* restart */
        "MXGUARD_TIMEOUTS_DNS=3s",                     /* restart: in the getdns context */
        "MXGUARD_SERVER_USER=mail",                    /* restart */
        "MXGUARD_METRICS_LISTEN=127.0.0.1:9125",       /* restart */
        "MXGUARD_DNS_TRUST_ANCHOR_FILE=/etc/other.key", /* live in stub mode */
        NULL};
    load(&next, env);
    struct mxg_reload_ctx ctx = {.have_list = 0};
    struct mxg_reload_result res;
    mxg_reload_apply(&live, &next, &ctx, &res);
    assert_int_equal(res.changed, 12);
    assert_int_equal(res.applied, 6);
    assert_int_equal(res.kept, 6);
    assert_int_equal(res.actions, MXG_RELOAD_LOG);
    assert_int_equal(live.message_size, 100 * 1024);
    assert_int_equal(live.t_rcpt_total, 30000);
    assert_int_equal(live.n_allow, 1);
    assert_int_equal(live.log_level, MXG_LOG_DEBUG);
    assert_string_equal(live.metrics_allow[0].text, "10.0.0.0/8");
    assert_string_equal(live.trust_anchor_file, "/etc/other.key");
    /* kept */
    assert_string_equal(live.listen[0].text, orig.listen[0].text);
    assert_string_equal(live.state_dir, orig.state_dir);
    assert_int_equal(live.n_dns_servers, 0);
    assert_int_equal(live.t_dns, orig.t_dns);
    assert_string_equal(live.user, "");
    assert_string_equal(live.metrics_listen, "");
    /* a second reload of the same file changes what it could not before: nothing new applied */
    mxg_reload_apply(&live, &next, &ctx, &res);
    assert_int_equal(res.changed, 6);
    assert_int_equal(res.applied, 0);
}

static void test_policy_list_and_anchor_rules(void **state)
{
    (void)state;
    struct mxg_config live, next;
    static const char *const with_list[] = {"MXGUARD_POLICY_LIST_FILE=/etc/mxguard/a.json",
                                            "MXGUARD_POLICY_LIST_KEYRING=/etc/mxguard/k.gpg", NULL};
    static const char *const other_list[] = {"MXGUARD_POLICY_LIST_FILE=/etc/mxguard/b.json",
                                             "MXGUARD_POLICY_LIST_KEYRING=/etc/mxguard/k.gpg",
                                             NULL};
    load(&live, with_list);
    load(&next, other_list);
    struct mxg_reload_ctx ctx = {.have_list = 1};
    struct mxg_reload_result res;
    mxg_reload_apply(&live, &next, &ctx, &res);
    assert_int_equal(res.applied, 1);
    assert_int_equal(res.actions, MXG_RELOAD_LIST);
    assert_string_equal(live.list_file, "/etc/mxguard/b.json");

    /* no list objects at start: a new list needs a restart */
    load(&live, NULL);
    ctx.have_list = 0;
    mxg_reload_apply(&live, &next, &ctx, &res);
    assert_int_equal(res.applied, 0);
    assert_int_equal(res.kept, 2); /* file, keyring */
    assert_string_equal(live.list_file, "");
    /* turning the list off needs a restart too */
    load(&live, with_list);
    load(&next, NULL);
    ctx.have_list = 1;
    mxg_reload_apply(&live, &next, &ctx, &res);
    assert_string_equal(live.list_file, "/etc/mxguard/a.json");

    /* trust anchor file: live in stub mode only */
    static const char *const rec[] = {"MXGUARD_DNS_MODE=recursive", NULL};
    static const char *const rec2[] = {"MXGUARD_DNS_MODE=recursive",
                                       "MXGUARD_DNS_TRUST_ANCHOR_FILE=/x.key", NULL};
    load(&live, rec);
    load(&next, rec2);
    assert_int_equal(mxg_reload_is_live("dns", "trust_anchor_file", &ctx, &live, &next), 0);
    mxg_reload_apply(&live, &next, &ctx, &res);
    assert_int_equal(res.kept, 1);
}

/* Every setting is either live or kept: check the classification of the
 * whole schema against a few known answers, and that every setting the
 * reload table names exists (a renamed setting must not silently become
 * "restart"). */
static void test_classification(void **state)
{
    (void)state;
    struct mxg_config c;
    load(&c, NULL);
    struct mxg_reload_ctx ctx = {0};
    static const struct {
        const char *s, *n;
        int live;
    } cases[] = {
        {"limits", "message_size", 1}, {"limits", "recipients", 1}, {"limits", "legs", 1},
        {"server", "allow_networks", 1}, {"server", "max_sessions", 1},
        {"server", "listen", 0}, {"server", "queue_listen", 0}, {"server", "hostname", 0},
        {"server", "user", 0}, {"state", "directory", 0}, {"dns", "servers", 0},
        {"dns", "mode", 0}, {"dane", "enabled", 0}, {"tls", "ca_file", 0},
        {"tls", "opportunistic_level", 1}, {"log", "level", 1}, {"log", "format", 1},
        {"metrics", "listen", 0}, {"metrics", "allow_networks", 1},
        {"mta_sts", "fetch_timeout", 1}, {"mta_sts", "enabled", 0}, {"tlsrpt", "enabled", 0},
        {"tls", "policy_map", 1}, {"upstream", "route_map", 1}, {"tls", "min_version", 1},
        {"tls", "max_version", 1}, {"tls", "ciphers", 1}, {"tls", "ciphersuites", 1},
        {"tls", "client_cert_file", 1}, {"tls", "client_key_file", 1},
        {"upstream", "cache_idle", 1}, {"upstream", "cache_lifetime", 1},
        {"upstream", "tls_session_cache", 0}, {"limits", "destination_concurrency", 1},
        {"unknown", "setting", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        if (mxg_reload_is_live(cases[i].s, cases[i].n, &ctx, &c, &c) != cases[i].live)
            fail_msg("%s.%s: expected %s", cases[i].s, cases[i].n,
                     cases[i].live ? "live" : "restart");
    /* every live setting named in reload.c is a real setting */
    struct mxg_config d;
    load(&d, NULL);
    static const char *const named[][2] = {
        {"server", "allow_networks"}, {"server", "max_sessions"}, {"server", "drain_timeout"},
        {"server", "multi_domain"}, {"timeouts", "idle"}, {"timeouts", "data"},
        {"timeouts", "rcpt_total"}, {"timeouts", "final_reply"}, {"timeouts", "connect"},
        {"timeouts", "upstream_command"}, {"timeouts", "quit"}, {"upstream", "helo_name"}, {"upstream", "port"},
        {"upstream", "source_ipv4"}, {"upstream", "source_ipv6"},
        {"upstream", "address_family"}, {"upstream", "max_mx_hosts"},
        {"upstream", "cache_idle"}, {"upstream", "cache_size"},
        {"upstream", "cache_per_destination"}, {"upstream", "cache_max_uses"},
        {"upstream", "cache_lifetime"}, {"upstream", "cache_busy_wait"},
        {"upstream", "cache_busy_waiters"},
        {"tls", "opportunistic_level"}, {"policy_list", "refresh"},
        {"policy_list", "stale_warning"}, {"policy_list", "expired_warning_interval"},
        {"mta_sts", "connect_timeout"}, {"mta_sts", "fetch_timeout"},
        {"mta_sts", "max_policy_size"}, {"mta_sts", "https_port"},
        {"mta_sts", "refresh_min_interval"}, {"log", "level"}, {"log", "syslog"},
        {"log", "format"}, {"metrics", "allow_networks"}};
    for (size_t i = 0; i < sizeof named / sizeof named[0]; i++) {
        if (mxg_config_copy_setting(&d, &c, named[i][0], named[i][1]) != 0)
            fail_msg("%s.%s is not a setting", named[i][0], named[i][1]);
        assert_int_equal(mxg_reload_is_live(named[i][0], named[i][1], &ctx, &c, &c), 1);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_diff),
        cmocka_unit_test(test_copy_setting),
        cmocka_unit_test(test_apply),
        cmocka_unit_test(test_policy_list_and_anchor_rules),
        cmocka_unit_test(test_classification),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
