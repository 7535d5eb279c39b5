/* tests/unit/test_policy_route.c — static routes (policy/route.h): next hop
 * syntax ([host]:port, host:port, smtp: prefix, address literals), key
 * matching (exact, nearest parent form, "*" last), errors with file and
 * line; the two map files loaded together (policy/policy.h
 * mxg_policy_maps_load): all or nothing, and swapped whole. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "policy/policy.h"
#include "policy/route.h"

static struct mxg_route_map *parse_ok(const char *text)
{
    struct mxg_route_map *m = NULL;
    char err[512] = "";
    if (mxg_route_map_parse(text, strlen(text), "routes", &m, err, sizeof err) != 0)
        fail_msg("unexpected error: %s", err);
    assert_non_null(m);
    return m;
}

static const char good_map[] = "# routes\n"
                               "example.com        [mx1.example.net]:2525\n"
                               ".example.com       relay.example.net\n"
                               "deep.example.com   smtp:relay2.example.net:587   # comment\n"
                               "v4.test            [192.0.2.25]\n"
                               "v6.test            [2001:db8::25]:26\n"
                               "*                  [smarthost.corp.example]:587\n";

static void test_parse_and_lookup(void **state)
{
    (void)state;
    struct mxg_route_map *m = parse_ok(good_map);
    assert_int_equal(mxg_route_map_count(m), 6);
    assert_string_equal(mxg_route_map_source(m), "routes");

    const struct mxg_static_route *r = mxg_route_map_lookup(m, "example.com");
    assert_non_null(r);
    assert_string_equal(r->key, "example.com");
    assert_string_equal(r->nh.host, "mx1.example.net");
    assert_int_equal(r->nh.port, 2525);
    assert_int_equal(r->nh.mx, 0);
    assert_int_equal(r->line, 2);
    assert_string_equal(r->text, "[mx1.example.net]:2525");

    r = mxg_route_map_lookup(m, "a.b.Example.COM.");
    assert_non_null(r);
    assert_string_equal(r->key, ".example.com");
    assert_string_equal(r->nh.host, "relay.example.net");
    assert_int_equal(r->nh.port, 0);
    assert_int_equal(r->nh.mx, 1);

    r = mxg_route_map_lookup(m, "deep.example.com"); /* exact beats the parent form */
    assert_non_null(r);
    assert_string_equal(r->nh.host, "relay2.example.net");
    assert_int_equal(r->nh.port, 587);
    assert_int_equal(r->nh.mx, 1);
    assert_string_equal(r->text, "relay2.example.net:587");
    r = mxg_route_map_lookup(m, "x.deep.example.com"); /* no parent form of deep.: .example.com */
    assert_non_null(r);
    assert_string_equal(r->key, ".example.com");

    r = mxg_route_map_lookup(m, "v4.test");
    assert_string_equal(r->nh.host, "192.0.2.25");
    assert_int_equal(r->nh.mx, 0);
    r = mxg_route_map_lookup(m, "v6.test");
    assert_string_equal(r->nh.host, "2001:db8::25");
    assert_int_equal(r->nh.port, 26);

    /* everything else: "*" */
    r = mxg_route_map_lookup(m, "elsewhere.org");
    assert_non_null(r);
    assert_string_equal(r->key, "*");
    assert_string_equal(r->nh.host, "smarthost.corp.example");
    r = mxg_route_map_lookup(m, "com");
    assert_string_equal(r->key, "*");

    char buf[300];
    mxg_static_route_format(mxg_route_map_lookup(m, "example.com"), buf, sizeof buf);
    assert_string_equal(buf, "[mx1.example.net]:2525 (no MX lookup)");
    mxg_static_route_format(mxg_route_map_lookup(m, "x.example.com"), buf, sizeof buf);
    assert_string_equal(buf, "relay.example.net (MX lookup)");
    mxg_route_map_free(m);

    /* without "*" an unlisted domain has no route */
    m = parse_ok("example.com [mx1.example.net]\n");
    assert_null(mxg_route_map_lookup(m, "other.com"));
    assert_null(mxg_route_map_lookup(m, "sub.example.com"));
    assert_null(mxg_route_map_lookup(NULL, "example.com"));
    mxg_route_map_free(m);
}

static void test_bad_lines(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        const char *want;
    } cases[] = {
        {"example.com\n", "routes:1: example.com: the next hop is missing"},
        {"# x\nexample.com [a.example.net] [b.example.net]\n",
         "routes:2: example.com: one next hop per line"},
        {"example.com [mx.example.net\n", "routes:1: example.com: next hop \"[mx.example.net\": '[' without ']'"},
        {"example.com relay:[mx.example.net]\n", "only smtp: transports exist here"},
        {"example.com lmtp:mx.example.net\n", "only smtp: transports exist here"},
        {"example.com 192.0.2.1\n", "an address must be written in [ ]"},
        {"example.com [mx.example.net]:0\n", "port must be 1..65535"},
        {"example.com [mx.example.net]:70000\n", "port must be 1..65535"},
        {"example.com [mx.example.net]x\n", "unexpected text after the host"},
        {"example.com mx\n", "fully qualified"},
        {"example.com []\n", "host name empty"},
        {"*.example.com [mx.example.net]\n", "wildcards are not supported"},
        {"a.test [x.example.net]\nb.test [y.example.net]\nA.test. [z.example.net]\n",
         "routes:3: a.test: listed twice (also at line 1)"},
        {"* [x.example.net]\n* relay.example.net\n", "routes:2: *: listed twice (also at line 1)"},
        {"ex ample.com [x.example.net]\n", "routes:1: ex: one next hop per line"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct mxg_route_map *m = (struct mxg_route_map *)1;
        char err[512] = "";
        int rc = mxg_route_map_parse(cases[i].text, strlen(cases[i].text), "routes", &m, err,
                                     sizeof err);
        if (rc != -1 || m != NULL)
            fail_msg("case %zu (%s): expected an error", i, cases[i].text);
        if (!strstr(err, cases[i].want))
            fail_msg("case %zu: error [%s] lacks [%s]", i, err, cases[i].want);
    }
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* tls.policy_map + upstream.route_map: loaded together, all or nothing */
static void test_maps_load_and_swap(void **state)
{
    (void)state;
    char dir[] = "/tmp/mxg-maps-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char ovr[300], rts[300], err[600];
    snprintf(ovr, sizeof ovr, "%s/tls_policy", dir);
    snprintf(rts, sizeof rts, "%s/routes", dir);
    write_file(ovr, "a.test dane-only\n");
    write_file(rts, "a.test [mx.b.test]:2525\n");
    struct mxg_config cfg;
    mxg_config_defaults(&cfg);
    struct mxg_policy_maps live, next;

    /* no files configured: no maps, no error */
    assert_int_equal(mxg_policy_maps_load(&cfg, &live, err, sizeof err), 0);
    assert_null(live.overrides);
    assert_null(live.routes);

    snprintf(cfg.tls_policy_map, sizeof cfg.tls_policy_map, "%s", ovr);
    snprintf(cfg.route_map, sizeof cfg.route_map, "%s", rts);
    assert_int_equal(mxg_policy_maps_load(&cfg, &live, err, sizeof err), 0);
    assert_int_equal(mxg_override_map_count(live.overrides), 1);
    assert_int_equal(mxg_route_map_count(live.routes), 1);

    /* a bad route map: nothing is loaded, the error names file and line */
    write_file(ovr, "a.test none\nb.test encrypt\n");
    write_file(rts, "a.test [mx.b.test]:2525\nb.test\n");
    assert_int_equal(mxg_policy_maps_load(&cfg, &next, err, sizeof err), -1);
    assert_null(next.overrides);
    assert_null(next.routes);
    char want[400];
    snprintf(want, sizeof want, "%s:2: b.test: the next hop is missing", rts);
    assert_non_null(strstr(err, want));
    /* live still has the old maps */
    assert_int_equal(mxg_override_lookup(live.overrides, "a.test")->level, MXG_POL_DANE_ONLY);

    /* fixed: swapped in whole */
    write_file(rts, "a.test [mx.b.test]:2525\n* relay.example.net\n");
    assert_int_equal(mxg_policy_maps_load(&cfg, &next, err, sizeof err), 0);
    mxg_policy_maps_swap(&live, &next);
    assert_null(next.overrides);
    assert_null(next.routes);
    assert_int_equal(mxg_override_lookup(live.overrides, "a.test")->level, MXG_POL_NONE);
    assert_int_equal(mxg_route_map_count(live.routes), 2);
    assert_string_equal(mxg_route_map_lookup(live.routes, "z.test")->key, "*");

    /* a bad override map alone fails the load too */
    write_file(ovr, "a.test\n");
    assert_int_equal(mxg_policy_maps_load(&cfg, &next, err, sizeof err), -1);
    snprintf(want, sizeof want, "%s:1: a.test: a level is missing", ovr);
    assert_non_null(strstr(err, want));
    mxg_policy_maps_free(&live);
    assert_null(live.overrides);
    unlink(ovr);
    unlink(rts);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_and_lookup),
        cmocka_unit_test(test_bad_lines),
        cmocka_unit_test(test_maps_load_and_swap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
