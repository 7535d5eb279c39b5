/* tests/unit/test_policy_override.c — the TLS policy map (policy/override.h):
 * syntax, key matching (exact, nearest parent form, never the bare parent),
 * every level and attribute, errors with file and line; the decision built
 * on it (policy/policy.h): source, level, plaintext floor, predicates,
 * next-hop fallback, verify match names. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "policy/override.h"
#include "policy/policy.h"

static struct mxg_override_map *parse_ok(const char *text)
{
    struct mxg_override_map *m = NULL;
    char err[512] = "";
    if (mxg_override_map_parse(text, strlen(text), "tls_policy", &m, err, sizeof err) != 0)
        fail_msg("unexpected error: %s", err);
    assert_non_null(m);
    return m;
}

static const char good_map[] =
    "# comment line\n"
    "\n"
    "   example.com      verify   match=mx.example.com:.example.net   # trailing comment\n"
    ".Example.ORG.       dane-only\r\n"
    "legacy.example      none\n"
    "\t.sub.example.org  may\n"
    "b.test              dane\n"
    "c.test              mta-sts\n"
    "d.test              encrypt\n"
    "e.test              verify\n"
    "f.test              verify match=hostname,nexthop match=dot-nexthop\n";

static void test_parse_and_lookup(void **state)
{
    (void)state;
    struct mxg_override_map *m = parse_ok(good_map);
    assert_int_equal(mxg_override_map_count(m), 9);
    assert_string_equal(mxg_override_map_source(m), "tls_policy");

    const struct mxg_override *o = mxg_override_lookup(m, "example.com");
    assert_non_null(o);
    assert_int_equal(o->level, MXG_POL_VERIFY);
    assert_int_equal(o->n_match, 2);
    assert_string_equal(o->match, "mx.example.com:.example.net");
    assert_int_equal(o->line, 3);
    /* exact key: not its subdomains */
    assert_null(mxg_override_lookup(m, "mx.example.com"));
    /* case and trailing dot of the looked-up name do not matter */
    o = mxg_override_lookup(m, "EXAMPLE.com.");
    assert_non_null(o);
    assert_string_equal(o->key, "example.com");

    /* parent form: subdomains at any depth, never the bare domain */
    o = mxg_override_lookup(m, "a.example.org");
    assert_non_null(o);
    assert_string_equal(o->key, ".example.org");
    assert_int_equal(o->level, MXG_POL_DANE_ONLY);
    assert_int_equal(o->line, 4);
    o = mxg_override_lookup(m, "x.y.z.example.org");
    assert_non_null(o);
    assert_string_equal(o->key, ".example.org");
    assert_null(mxg_override_lookup(m, "example.org"));
    assert_null(mxg_override_lookup(m, "badexample.org"));
    /* the nearest parent wins */
    o = mxg_override_lookup(m, "deep.sub.example.org");
    assert_non_null(o);
    assert_string_equal(o->key, ".sub.example.org");
    assert_int_equal(o->level, MXG_POL_MAY);
    o = mxg_override_lookup(m, "sub.example.org"); /* not .sub.example.org itself */
    assert_non_null(o);
    assert_string_equal(o->key, ".example.org");

    static const struct {
        const char *d;
        enum mxg_policy_level l;
    } levels[] = {
        {"legacy.example", MXG_POL_NONE}, {"b.test", MXG_POL_DANE}, {"c.test", MXG_POL_MTA_STS},
        {"d.test", MXG_POL_ENCRYPT},      {"e.test", MXG_POL_VERIFY},
    };
    for (size_t i = 0; i < sizeof levels / sizeof levels[0]; i++) {
        o = mxg_override_lookup(m, levels[i].d);
        assert_non_null(o);
        assert_int_equal(o->level, levels[i].l);
    }
    o = mxg_override_lookup(m, "e.test");
    assert_int_equal(o->n_match, 0);
    o = mxg_override_lookup(m, "f.test");
    assert_int_equal(o->n_match, 3);
    assert_string_equal(o->match, "hostname:nexthop:dot-nexthop");

    assert_null(mxg_override_lookup(m, "other.test"));
    assert_null(mxg_override_lookup(NULL, "example.com"));
    assert_null(mxg_override_lookup(m, ""));
    /* entries come out in key order */
    for (int i = 1; i < mxg_override_map_count(m); i++)
        assert_true(strcmp(mxg_override_map_entry(m, i - 1)->key,
                           mxg_override_map_entry(m, i)->key) < 0);
    assert_null(mxg_override_map_entry(m, 9));
    mxg_override_map_free(m);
}

static void test_empty_map(void **state)
{
    (void)state;
    struct mxg_override_map *m = parse_ok("# nothing here\n\n   \n");
    assert_int_equal(mxg_override_map_count(m), 0);
    assert_null(mxg_override_lookup(m, "example.com"));
    mxg_override_map_free(m);
    m = parse_ok("");
    assert_int_equal(mxg_override_map_count(m), 0);
    mxg_override_map_free(m);
}

static void test_level_names(void **state)
{
    (void)state;
    static const char *const words[] = {"may", "encrypt", "none", "dane", "dane-only",
                                        "mta-sts", "verify"};
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++) {
        enum mxg_policy_level l;
        assert_int_equal(mxg_policy_level_parse(words[i], &l), 0);
        assert_string_equal(mxg_policy_level_name(l), words[i]);
    }
    enum mxg_policy_level l;
    assert_int_equal(mxg_policy_level_parse("secure", &l), -1);
    assert_int_equal(mxg_policy_level_parse("DANE", &l), -1);
    assert_string_equal(mxg_policy_level_name((enum mxg_policy_level)99), "?");
}

/* Bad maps: each error names the map and the line, and says what is wrong. */
static void test_bad_lines(void **state)
{
    (void)state;
    char many[600] = "x.test verify match=";
    for (int i = 0; i < 17; i++)
        snprintf(many + strlen(many), sizeof many - strlen(many), "%sh%d.test", i ? ":" : "", i);
    char longline[5000];
    memset(longline, 'a', sizeof longline - 1);
    longline[sizeof longline - 1] = 0;
    static const char nul[] = "a.test may\nb.test\0may\n";
    const struct {
        const char *text;
        const char *want;
    } cases[] = {
        {"example.com\n", "tls_policy:1: example.com: a level is missing"},
        {"# c\n\n\nexample.com secure\n", "tls_policy:4: example.com: unknown level \"secure\""},
        {"example.com may match=mx.example.com\n",
         "tls_policy:1: example.com: match= belongs to the verify level only"},
        {"example.com verify match=\n", "tls_policy:1: example.com: match= needs at least one name"},
        {"example.com verify match=::\n", "tls_policy:1: example.com: match= needs at least one name"},
        {"example.com verify match=mx..example.com\n", "tls_policy:1: example.com: match name"},
        {"example.com verify ciphers=high\n",
         "tls_policy:1: example.com: attribute ciphers= is not supported"},
        {"example.com verify protocols=!SSLv3\n", "attribute protocols= is not supported"},
        {"example.com verify foo=bar\n", "tls_policy:1: example.com: unknown attribute foo="},
        {"example.com verify mx.example.com\n", "is not an attribute (NAME=VALUE)"},
        {"a..b.test may\n", "tls_policy:1: destination \"a..b.test\": empty label"},
        {"*.example.com may\n", "wildcards are not supported"},
        {"* may\n", "tls_policy:1: destination \"*\": \"*\" is not allowed here"},
        {"[192.0.2.1] may\n", "address literals and ports do not belong here"},
        {"example.com:25 may\n", "address literals and ports do not belong here"},
        {"-bad.test may\n", "starts with '-'"},
        {"bad-.test may\n", "ends with '-'"},
        {"b\xc3\xbc" "cher.test may\n", "tls_policy:1: non-ASCII octet 0xc3"},
        {"a.test may\n\nA.TEST. none\n", "tls_policy:3: a.test: listed twice (also at line 1)"},
        {".a.test may\nx.test none\n.A.test dane\n", "tls_policy:3: .a.test: listed twice (also at line 1)"},
        {many, "tls_policy:1: x.test: more than 16 match names"},
        {longline, "tls_policy:1: line longer than 4096 characters"},
        {"a.test may\x01\n", "tls_policy:1: control character 0x01"},
        {"ok.test may\nbad.test bogus\n", "tls_policy:2: bad.test: unknown level"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct mxg_override_map *m = (struct mxg_override_map *)1;
        char err[512] = "";
        int rc = mxg_override_map_parse(cases[i].text, strlen(cases[i].text), "tls_policy", &m,
                                        err, sizeof err);
        if (rc != -1 || m != NULL)
            fail_msg("case %zu (%.40s): expected an error", i, cases[i].text);
        if (!strstr(err, cases[i].want))
            fail_msg("case %zu: error [%s] lacks [%s]", i, err, cases[i].want);
    }
    /* a NUL octet inside the text (len covers it) */
    struct mxg_override_map *m = NULL;
    char err[512] = "";
    assert_int_equal(mxg_override_map_parse(nul, sizeof nul - 1, "tls_policy", &m, err, sizeof err),
                     -1);
    assert_non_null(strstr(err, "tls_policy:2: NUL octet"));
}

static void test_load_file(void **state)
{
    (void)state;
    char path[] = "/tmp/mxg-ovr-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    fputs("a.test dane-only\n.b.test none\n", f);
    fclose(f);
    struct mxg_override_map *m = NULL;
    char err[512] = "";
    assert_int_equal(mxg_override_map_load(path, &m, err, sizeof err), 0);
    assert_int_equal(mxg_override_map_count(m), 2);
    assert_string_equal(mxg_override_map_source(m), path);
    mxg_override_map_free(m);
    /* an error names the file */
    f = fopen(path, "w");
    fputs("a.test dane-only\nb.test nonsense\n", f);
    fclose(f);
    assert_int_equal(mxg_override_map_load(path, &m, err, sizeof err), -1);
    char want[600];
    snprintf(want, sizeof want, "%s:2: b.test: unknown level", path);
    assert_non_null(strstr(err, want));
    unlink(path);
    assert_int_equal(mxg_override_map_load(path, &m, err, sizeof err), -1);
    assert_null(m);
    assert_non_null(strstr(err, "cannot open"));
    assert_int_equal(mxg_override_map_load("/tmp", &m, err, sizeof err), -1);
    assert_non_null(strstr(err, "not a regular file"));
}

/* ---- the decision (policy/policy.h) ---- */

static void test_decide(void **state)
{
    (void)state;
    struct mxg_config cfg;
    mxg_config_defaults(&cfg);
    struct mxg_override_map *m = parse_ok(good_map);
    struct mxg_policy p;

    /* no override: the default row */
    mxg_policy_decide(&cfg, m, "other.test", NULL, &p);
    assert_int_equal(p.source, MXG_POL_SRC_OPPORTUNISTIC);
    assert_int_equal(p.level, MXG_POL_MAY);
    assert_int_equal(mxg_policy_allows_plaintext(&p), 1);
    assert_int_equal(mxg_policy_override(&p), -1);
    assert_true(mxg_policy_uses_dane(&p) && mxg_policy_uses_sts(&p) && mxg_policy_tries_tls(&p));
    mxg_policy_decide(&cfg, NULL, "example.com", NULL, &p); /* no map */
    assert_int_equal(p.source, MXG_POL_SRC_OPPORTUNISTIC);
    cfg.tls_level = MXG_TLS_LEVEL_ENCRYPT;
    mxg_policy_decide(&cfg, m, "other.test", NULL, &p);
    assert_int_equal(p.source, MXG_POL_SRC_CONFIG);
    assert_int_equal(p.level, MXG_POL_ENCRYPT);
    assert_int_equal(mxg_policy_allows_plaintext(&p), 0);
    assert_true(mxg_policy_uses_dane(&p) && mxg_policy_uses_sts(&p));

    /* every level: what it lets through (policy.h's table) */
    static const struct {
        const char *domain;
        int floor_encrypt;
        enum mxg_policy_level level;
        int plaintext, tries_tls, dane, sts;
    } rows[] = {
        {"legacy.example", 0, MXG_POL_NONE, 1, 0, 1, 0},
        {"legacy.example", 1, MXG_POL_NONE, 1, 0, 1, 0},
        {"x.sub.example.org", 1, MXG_POL_MAY, 1, 1, 1, 0},
        {"b.test", 0, MXG_POL_DANE, 1, 1, 1, 0},
        {"b.test", 1, MXG_POL_DANE, 0, 1, 1, 0},
        {"x.example.org", 0, MXG_POL_DANE_ONLY, 0, 1, 1, 0},
        {"c.test", 0, MXG_POL_MTA_STS, 0, 1, 0, 1},
        {"d.test", 0, MXG_POL_ENCRYPT, 0, 1, 0, 0},
        {"example.com", 0, MXG_POL_VERIFY, 0, 1, 0, 0},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        cfg.tls_level = rows[i].floor_encrypt ? MXG_TLS_LEVEL_ENCRYPT : MXG_TLS_LEVEL_MAY;
        mxg_policy_decide(&cfg, m, rows[i].domain, NULL, &p);
        if (p.source != MXG_POL_SRC_OVERRIDE || p.level != rows[i].level ||
            mxg_policy_allows_plaintext(&p) != rows[i].plaintext ||
            mxg_policy_tries_tls(&p) != rows[i].tries_tls ||
            mxg_policy_uses_dane(&p) != rows[i].dane || mxg_policy_uses_sts(&p) != rows[i].sts)
            fail_msg("row %zu (%s): source %d level %d plaintext %d tls %d dane %d sts %d", i,
                     rows[i].domain, p.source, p.level, mxg_policy_allows_plaintext(&p),
                     mxg_policy_tries_tls(&p), mxg_policy_uses_dane(&p), mxg_policy_uses_sts(&p));
        assert_int_equal(mxg_policy_override(&p), (int)rows[i].level);
    }
    cfg.tls_level = MXG_TLS_LEVEL_MAY;

    /* the reason names the entry, its file and line */
    mxg_policy_decide(&cfg, m, "x.example.org", NULL, &p);
    assert_string_equal(p.key, ".example.org");
    assert_string_equal(p.origin, "tls_policy:4");
    assert_non_null(strstr(p.reason, "override dane-only for .example.org (tls_policy:4)"));
    assert_non_null(strstr(p.reason, "DANE required"));
    mxg_policy_decide(&cfg, m, "example.com", NULL, &p);
    assert_string_equal(p.match, "mx.example.com:.example.net");
    assert_non_null(strstr(p.reason, "match mx.example.com:.example.net"));

    /* a routed leg: the domain's own entry first, else the next hop's */
    mxg_policy_decide(&cfg, m, "example.com", "d.test", &p);
    assert_int_equal(p.level, MXG_POL_VERIFY);
    mxg_policy_decide(&cfg, m, "unlisted.test", "d.test", &p);
    assert_int_equal(p.source, MXG_POL_SRC_OVERRIDE);
    assert_int_equal(p.level, MXG_POL_ENCRYPT);
    assert_non_null(strstr(p.reason, "the next hop d.test"));
    mxg_policy_decide(&cfg, m, "unlisted.test", "", &p);
    assert_int_equal(p.source, MXG_POL_SRC_OPPORTUNISTIC);
    mxg_override_map_free(m);
}

static void test_match_names(void **state)
{
    (void)state;
    struct mxg_config cfg;
    mxg_config_defaults(&cfg);
    struct mxg_override_map *m =
        parse_ok("a.test verify\n"
                 "b.test verify match=hostname:nexthop:dot-nexthop:mx.b.test\n"
                 "c.test verify match=.c.test:other.test match=.c.test\n");
    struct mxg_policy p;
    char names[MXG_OVR_MAX_MATCH][MXG_MAPFILE_KEY_MAX + 1];

    mxg_policy_decide(&cfg, m, "a.test", NULL, &p);
    assert_int_equal(mxg_policy_match_names(&p, "mx.a.test.", "a.test", names, 16), 1);
    assert_string_equal(names[0], "mx.a.test"); /* default: hostname, trailing dot dropped */

    mxg_policy_decide(&cfg, m, "b.test", NULL, &p);
    assert_int_equal(mxg_policy_match_names(&p, "mx.b.test", "b.test", names, 16), 3);
    assert_string_equal(names[0], "mx.b.test");
    assert_string_equal(names[1], "b.test");
    assert_string_equal(names[2], ".b.test"); /* and mx.b.test again: a duplicate */
    assert_int_equal(mxg_policy_match_names(&p, "mx.b.test", "b.test", names, 2), 2);

    mxg_policy_decide(&cfg, m, "c.test", NULL, &p);
    assert_int_equal(mxg_policy_match_names(&p, "mx.c.test", "c.test", names, 16), 2);
    assert_string_equal(names[0], ".c.test");
    assert_string_equal(names[1], "other.test");
    mxg_override_map_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_and_lookup), cmocka_unit_test(test_empty_map),
        cmocka_unit_test(test_level_names),      cmocka_unit_test(test_bad_lines),
        cmocka_unit_test(test_load_file),        cmocka_unit_test(test_decide),
        cmocka_unit_test(test_match_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
