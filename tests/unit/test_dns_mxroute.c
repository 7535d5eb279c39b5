/* tests/unit/test_dns_mxroute.c — MX ordering (mxg_route_sort), route copy
 * and the status / DNSSEC name functions of dns/dns.h and dns/mxroute.h.
 * No network: resolution itself is exercised by the integration test-bed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dns/mxroute.h"

/* ------------------------------------------------------------ helpers */

/* Deterministic generator: LCG, state in *arg. */
static unsigned lcg_rnd(void *arg)
{
    uint32_t *s = arg;
    *s = *s * 1103515245u + 12345u;
    return *s >> 8;
}

/* Plays back a fixed list of values. */
struct script {
    const unsigned *v;
    int n, i;
};
static unsigned script_rnd(void *arg)
{
    struct script *s = arg;
    assert_true(s->i < s->n); /* the sort must not ask for more than expected */
    return s->v[s->i++];
}

/* Always 0: every tie position swaps with the run's first element. */
static unsigned zero_rnd(void *arg)
{
    (void)arg;
    return 0;
}

/* mx[i] = {pref[i], host[i]}. */
static void fill(struct mxg_mx_rr *mx, int n, const int *pref, const char *const *host)
{
    memset(mx, 0, sizeof *mx * (size_t)n);
    for (int i = 0; i < n; i++) {
        mx[i].pref = pref[i];
        strcpy(mx[i].host, host[i]);
    }
}

/* Host names in order, blank-separated (names are short in these tests). */
static void order(const struct mxg_mx_rr *mx, int n, char *out, size_t outlen)
{
    size_t o = 0;
    out[0] = '\0';
    for (int i = 0; i < n && o < outlen; i++) {
        int w = snprintf(out + o, outlen - o, "%s%.20s", i ? " " : "", mx[i].host);
        if (w < 0)
            break;
        o += (size_t)w;
    }
}

/* ------------------------------------------------------- pref ordering */

struct sort_case {
    const char *name;
    int n;
    int pref[8];
    const char *host[8];
    const char *want; /* expected order (distinct preferences only) */
};

static const struct sort_case distinct_cases[] = {
    {"already sorted", 3, {10, 20, 30}, {"a", "b", "c"}, "a b c"},
    {"reversed", 3, {30, 20, 10}, {"c", "b", "a"}, "a b c"},
    {"mixed", 5, {50, 0, 20, 65535, 5}, {"e", "a", "c", "z", "b"}, "a b c e z"},
    {"two", 2, {20, 10}, {"b", "a"}, "a b"},
    {"one", 1, {7}, {"x"}, "x"},
    {"zero and max", 2, {65535, 0}, {"hi", "lo"}, "lo hi"},
};

static void test_sort_distinct_prefs(void **state)
{
    (void)state;
    for (size_t c = 0; c < sizeof distinct_cases / sizeof distinct_cases[0]; c++) {
        const struct sort_case *tc = &distinct_cases[c];
        /* the order is fully determined whatever the generator says */
        for (uint32_t seed = 0; seed < 50; seed++) {
            struct mxg_mx_rr mx[8];
            char got[256];
            uint32_t st = seed;
            fill(mx, tc->n, tc->pref, tc->host);
            mxg_route_sort(mx, tc->n, lcg_rnd, &st);
            order(mx, tc->n, got, sizeof got);
            if (strcmp(got, tc->want) != 0)
                fail_msg("%s (seed %u): got \"%s\", want \"%s\"", tc->name, seed, got, tc->want);
        }
        /* and with the internal generator */
        struct mxg_mx_rr mx[8];
        char got[256];
        fill(mx, tc->n, tc->pref, tc->host);
        mxg_route_sort(mx, tc->n, NULL, NULL);
        order(mx, tc->n, got, sizeof got);
        assert_string_equal(got, tc->want);
    }
}

/* Equal preferences stay grouped and between their neighbours, whatever the
 * tie order: check group membership per position. */
static void test_sort_groups_by_pref(void **state)
{
    (void)state;
    const int pref[] = {20, 10, 30, 10, 20, 10, 5};
    const char *host[] = {"b1", "a1", "c1", "a2", "b2", "a3", "z"};
    for (uint32_t seed = 1; seed < 200; seed++) {
        struct mxg_mx_rr mx[7];
        uint32_t st = seed;
        fill(mx, 7, pref, host);
        mxg_route_sort(mx, 7, lcg_rnd, &st);
        const int want_pref[] = {5, 10, 10, 10, 20, 20, 30};
        for (int i = 0; i < 7; i++) {
            assert_int_equal(mx[i].pref, want_pref[i]);
            char want_letter = mx[i].pref == 5 ? 'z' : mx[i].pref == 10 ? 'a' : mx[i].pref == 20 ? 'b' : 'c';
            assert_int_equal(mx[i].host[0], want_letter);
        }
        /* each host exactly once */
        for (int i = 0; i < 7; i++) {
            int seen = 0;
            for (int j = 0; j < 7; j++)
                seen += strcmp(mx[j].host, host[i]) == 0;
            assert_int_equal(seen, 1);
        }
    }
}

/* ------------------------------------------------------- tie shuffling */

static void test_sort_ties_both_orders(void **state)
{
    (void)state;
    int ab = 0, ba = 0;
    for (uint32_t seed = 0; seed < 64; seed++) {
        struct mxg_mx_rr mx[2];
        const int pref[] = {10, 10};
        const char *host[] = {"a", "b"};
        char got[256];
        uint32_t st = seed;
        fill(mx, 2, pref, host);
        mxg_route_sort(mx, 2, lcg_rnd, &st);
        order(mx, 2, got, sizeof got);
        if (strcmp(got, "a b") == 0)
            ab++;
        else if (strcmp(got, "b a") == 0)
            ba++;
        else
            fail_msg("unexpected order \"%s\"", got);
    }
    assert_true(ab > 0);
    assert_true(ba > 0);
}

static void test_sort_ties_all_permutations(void **state)
{
    (void)state;
    const char *perms[] = {"a b c", "a c b", "b a c", "b c a", "c a b", "c b a"};
    int count[6] = {0};
    for (uint32_t seed = 0; seed < 600; seed++) {
        struct mxg_mx_rr mx[4];
        const int pref[] = {10, 10, 10, 20};
        const char *host[] = {"a", "b", "c", "d"};
        char got[256];
        uint32_t st = seed * 2654435761u;
        fill(mx, 4, pref, host);
        mxg_route_sort(mx, 4, lcg_rnd, &st);
        assert_string_equal(mx[3].host, "d"); /* the lone pref 20 stays last */
        order(mx, 3, got, sizeof got);
        int k;
        for (k = 0; k < 6 && strcmp(got, perms[k]) != 0; k++)
            ;
        assert_true(k < 6);
        count[k]++;
    }
    for (int k = 0; k < 6; k++)
        if (count[k] == 0)
            fail_msg("permutation \"%s\" never produced", perms[k]);
}

/* Exact Fisher–Yates contract: j = rnd % (i + 1) for i = len-1 .. 1. */
struct script_case {
    const char *name;
    int n;
    int pref[6];
    const char *host[6];
    int nv;
    unsigned v[6];
    const char *want;
};

static const struct script_case script_cases[] = {
    /* two equal: i=1, j=v%2 */
    {"tie keep", 2, {10, 10}, {"a", "b"}, 1, {1}, "a b"},
    {"tie swap", 2, {10, 10}, {"a", "b"}, 1, {0}, "b a"},
    {"tie swap big value", 2, {10, 10}, {"a", "b"}, 1, {0xFFFFFFFEu}, "b a"},
    /* three equal: i=2 (j=v0%3) then i=1 (j=v1%2) — identity when j == i */
    {"three identity", 3, {5, 5, 5}, {"a", "b", "c"}, 2, {2, 1}, "a b c"},
    {"three rotate", 3, {5, 5, 5}, {"a", "b", "c"}, 2, {0, 0}, "b c a"},
    /* ties are shuffled after sorting; a run of one asks for nothing */
    {"two runs", 4, {20, 10, 20, 10}, {"b1", "a1", "b2", "a2"}, 2, {0, 1}, "a2 a1 b1 b2"},
    {"no ties, no rnd calls", 3, {3, 2, 1}, {"c", "b", "a"}, 0, {0}, "a b c"},
};

static void test_sort_scripted(void **state)
{
    (void)state;
    for (size_t c = 0; c < sizeof script_cases / sizeof script_cases[0]; c++) {
        const struct script_case *tc = &script_cases[c];
        struct mxg_mx_rr mx[6];
        struct script sc = {tc->v, tc->nv, 0};
        char got[256];
        fill(mx, tc->n, tc->pref, tc->host);
        mxg_route_sort(mx, tc->n, script_rnd, &sc);
        order(mx, tc->n, got, sizeof got);
        if (strcmp(got, tc->want) != 0)
            fail_msg("%s: got \"%s\", want \"%s\"", tc->name, got, tc->want);
        assert_int_equal(sc.i, tc->nv); /* exactly the expected number of draws */
    }
}

static void test_sort_edge_cases(void **state)
{
    (void)state;
    mxg_route_sort(NULL, 3, zero_rnd, NULL); /* no crash */
    struct mxg_mx_rr one = {7, "only"};
    mxg_route_sort(&one, 1, zero_rnd, NULL);
    assert_string_equal(one.host, "only");
    mxg_route_sort(&one, 0, zero_rnd, NULL);
    assert_int_equal(one.pref, 7);

    /* the maximum count, all equal, internal generator: a permutation */
    struct mxg_mx_rr mx[MXG_DNS_MAX_MX];
    for (int i = 0; i < MXG_DNS_MAX_MX; i++) {
        mx[i].pref = 10;
        snprintf(mx[i].host, sizeof mx[i].host, "h%02d", i);
    }
    mxg_route_sort(mx, MXG_DNS_MAX_MX, NULL, NULL);
    int seen[MXG_DNS_MAX_MX] = {0};
    for (int i = 0; i < MXG_DNS_MAX_MX; i++) {
        int k = atoi(mx[i].host + 1);
        assert_true(k >= 0 && k < MXG_DNS_MAX_MX);
        seen[k]++;
    }
    for (int i = 0; i < MXG_DNS_MAX_MX; i++)
        assert_int_equal(seen[i], 1);

    /* null MX entry ("" host) sorts like any other */
    const int pref[] = {10, 0};
    const char *host[] = {"mx", ""};
    fill(mx, 2, pref, host);
    mxg_route_sort(mx, 2, zero_rnd, NULL);
    assert_string_equal(mx[0].host, "");
    assert_string_equal(mx[1].host, "mx");
}

/* -------------------------------------------------------- route copy */

static void test_route_copy(void **state)
{
    (void)state;
    struct mxg_route *r = calloc(1, sizeof *r);
    assert_non_null(r);
    r->status = MXG_ROUTE_OK;
    strcpy(r->domain, "example.test");
    r->mx_sec = MXG_SEC_SECURE;
    r->n = 2;
    strcpy(r->host[0].name, "mx1.example.test");
    r->host[0].pref = 10;
    r->host[0].addrs.status = MXG_DNS_OK;
    r->host[0].addrs.n = 1;
    r->host[0].addrs.addr[0].ss_family = AF_INET;
    strcpy(r->host[1].name, "mx2.example.test");
    r->host[1].addrs.status = MXG_DNS_TEMPFAIL;
    strcpy(r->host[1].addrs.why, "A lookup: timeout");

    struct mxg_route *c = mxg_route_copy(r);
    assert_non_null(c);
    assert_ptr_not_equal(c, r);
    /* the copy holds the header and host[0 .. n-1] only */
    assert_memory_equal(c, r, offsetof(struct mxg_route, host) + 2 * sizeof r->host[0]);
    assert_string_equal(c->why, r->why);
    free(r); /* the copy is independent */
    assert_string_equal(c->host[1].addrs.why, "A lookup: timeout");
    assert_int_equal(c->host[0].addrs.addr[0].ss_family, AF_INET);
    free(c);

    assert_null(mxg_route_copy(NULL));
}

/* --------------------------------------------------------- names */

static void test_status_names(void **state)
{
    (void)state;
    assert_string_equal(mxg_dns_status_name(MXG_DNS_OK), "OK");
    assert_string_equal(mxg_dns_status_name(MXG_DNS_NODATA), "NODATA");
    assert_string_equal(mxg_dns_status_name(MXG_DNS_NXDOMAIN), "NXDOMAIN");
    assert_string_equal(mxg_dns_status_name(MXG_DNS_TEMPFAIL), "TEMPFAIL");
    assert_string_equal(mxg_dns_status_name(MXG_DNS_BOGUS), "BOGUS");
    assert_string_equal(mxg_dns_status_name((enum mxg_dns_status)99), "?");

    assert_string_equal(mxg_dnssec_name(MXG_SEC_INSECURE), "INSECURE");
    assert_string_equal(mxg_dnssec_name(MXG_SEC_SECURE), "SECURE");
    assert_string_equal(mxg_dnssec_name(MXG_SEC_BOGUS), "BOGUS");
    assert_string_equal(mxg_dnssec_name(MXG_SEC_INDETERMINATE), "INDETERMINATE");
    assert_string_equal(mxg_dnssec_name((enum mxg_dnssec)-1), "?");

    assert_string_equal(mxg_route_status_name(MXG_ROUTE_OK), "OK");
    assert_string_equal(mxg_route_status_name(MXG_ROUTE_NULL_MX), "NULL_MX");
    assert_string_equal(mxg_route_status_name(MXG_ROUTE_NXDOMAIN), "NXDOMAIN");
    assert_string_equal(mxg_route_status_name(MXG_ROUTE_TEMPFAIL), "TEMPFAIL");
    assert_string_equal(mxg_route_status_name((enum mxg_route_status)42), "?");
}

/* ------------------------------------------- argument errors, no loop run */

static void never_called(void *arg, const struct mxg_route *route)
{
    (void)arg;
    (void)route;
    fail_msg("route callback must not run");
}

static void test_resolve_bad_args(void **state)
{
    (void)state;
    struct mxg_route_query *q = (struct mxg_route_query *)&q; /* poison */
    assert_int_equal(mxg_route_resolve(NULL, "example.test", 5, never_called, NULL, &q), -1);
    assert_null(q);
    mxg_route_cancel(NULL); /* no-op */
    mxg_dns_cancel(NULL);   /* no-op */
    mxg_dns_free(NULL);     /* no-op */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sort_distinct_prefs),
        cmocka_unit_test(test_sort_groups_by_pref),
        cmocka_unit_test(test_sort_ties_both_orders),
        cmocka_unit_test(test_sort_ties_all_permutations),
        cmocka_unit_test(test_sort_scripted),
        cmocka_unit_test(test_sort_edge_cases),
        cmocka_unit_test(test_route_copy),
        cmocka_unit_test(test_status_names),
        cmocka_unit_test(test_resolve_bad_args),
    };
    return cmocka_run_group_tests_name("dane_mxroute", tests, NULL, NULL);
}
