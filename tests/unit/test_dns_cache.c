/* tests/unit/test_dns_cache.c — dns/dnscache: the answer cache behind
 * dns/dns.c, driven with an explicit clock (no loop, no network): TTL
 * expiry, the positive and negative caps, LRU eviction order, size 0,
 * replacement, key normalisation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dns/dnscache.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define T_A 1
#define T_MX 15
#define T_AAAA 28
#define T_TLSA 52
#define DAY_MS (86400ULL * 1000)
#define MIN5_MS (300ULL * 1000)

/* put a string value */
static int put_s(struct mxg_dnscache *c, const char *name, uint16_t t, int neg, uint32_t ttl,
                 const char *val, uint64_t now)
{
    return mxg_dnscache_put(c, name, t, neg, ttl, val, strlen(val) + 1, now);
}

/* the string value of (name, t) at now, or NULL */
static const char *get_s(struct mxg_dnscache *c, const char *name, uint16_t t, uint64_t now)
{
    size_t len = 0;
    const char *v = mxg_dnscache_get(c, name, t, now, &len, NULL);
    if (v)
        assert_int_equal(len, strlen(v) + 1);
    return v;
}

/* "name/type name/type ..." most recent first */
struct walk_buf {
    char s[512];
    size_t o;
};
static int walk_fn(void *arg, const char *name, uint16_t rrtype, uint64_t expires)
{
    struct walk_buf *w = arg;
    (void)expires;
    int n = snprintf(w->s + w->o, sizeof w->s - w->o, "%s%s/%u", w->o ? " " : "", name,
                     (unsigned)rrtype);
    if (n > 0)
        w->o += (size_t)n;
    return 0;
}
static const char *order(struct mxg_dnscache *c, struct walk_buf *w)
{
    w->s[0] = '\0';
    w->o = 0;
    mxg_dnscache_walk(c, walk_fn, w);
    return w->s;
}

static size_t entries(struct mxg_dnscache *c)
{
    struct mxg_dnscache_stats st;
    mxg_dnscache_stats(c, &st);
    return st.entries;
}

/* ------------------------------------------------------------ TTL policy */

struct life_case {
    const char *name;
    int negative;
    uint32_t ttl_s;
    uint64_t want_ms;
};

/* max_ttl 1d, negative_ttl 5m (the defaults) */
static const struct life_case life_cases[] = {
    {"positive below the cap", 0, 300, 300000},
    {"positive at the cap", 0, 86400, DAY_MS},
    {"positive above the cap", 0, 604800, DAY_MS},
    {"positive, TTL 0", 0, 0, 0},
    {"positive, huge TTL", 0, 0x7fffffff, DAY_MS},
    {"positive, TTL unknown: the cap", 0, MXG_DNSCACHE_TTL_UNKNOWN, DAY_MS},
    {"negative below the cap", 1, 60, 60000},
    {"negative at the cap", 1, 300, MIN5_MS},
    {"negative above the cap (SOA minimum 1h)", 1, 3600, MIN5_MS},
    {"negative above the cap (SOA minimum 1d)", 1, 86400, MIN5_MS},
    {"negative, TTL 0", 1, 0, 0},
    {"negative, no SOA: the cap", 1, MXG_DNSCACHE_TTL_UNKNOWN, MIN5_MS},
};

static void test_lifetime_table(void **state)
{
    (void)state;
    struct mxg_dnscache *c = mxg_dnscache_new(100, DAY_MS, MIN5_MS);
    assert_non_null(c);
    for (size_t i = 0; i < ARRAY_LEN(life_cases); i++) {
        const struct life_case *lc = &life_cases[i];
        uint64_t got = mxg_dnscache_lifetime(c, lc->negative, lc->ttl_s);
        if (got != lc->want_ms)
            fail_msg("%s: got %llu ms, want %llu ms", lc->name, (unsigned long long)got,
                     (unsigned long long)lc->want_ms);
        /* and put really stores for that long */
        uint64_t now = 1000000, exp = 0;
        size_t len;
        int rc = put_s(c, "x.test", T_A, lc->negative, lc->ttl_s, "v", now);
        assert_int_equal(rc, lc->want_ms ? 1 : 0);
        const void *v = mxg_dnscache_get(c, "x.test", T_A, now, &len, &exp);
        if (lc->want_ms) {
            assert_non_null(v);
            assert_int_equal(exp, now + lc->want_ms);
        } else {
            assert_null(v); /* lifetime 0: nothing stored */
        }
    }
    mxg_dnscache_free(c);
}

/* Caps of 0: that kind of answer is not cached at all. */
static void test_zero_caps(void **state)
{
    (void)state;
    struct mxg_dnscache *c = mxg_dnscache_new(10, 0, MIN5_MS);
    assert_int_equal(put_s(c, "a.test", T_MX, 0, 300, "pos", 0), 0);
    assert_int_equal(put_s(c, "b.test", T_MX, 1, 300, "neg", 0), 1);
    assert_null(get_s(c, "a.test", T_MX, 1));
    assert_string_equal(get_s(c, "b.test", T_MX, 1), "neg");
    mxg_dnscache_free(c);

    c = mxg_dnscache_new(10, DAY_MS, 0);
    assert_int_equal(put_s(c, "a.test", T_MX, 0, 300, "pos", 0), 1);
    assert_int_equal(put_s(c, "b.test", T_MX, 1, 300, "neg", 0), 0);
    assert_string_equal(get_s(c, "a.test", T_MX, 1), "pos");
    assert_null(get_s(c, "b.test", T_MX, 1));
    mxg_dnscache_free(c);
}

/* ------------------------------------------------------------ expiry */

static void test_ttl_expiry(void **state)
{
    (void)state;
    struct mxg_dnscache *c = mxg_dnscache_new(100, DAY_MS, MIN5_MS);
    uint64_t t0 = 5000;
    assert_int_equal(put_s(c, "mx1.example.test", T_A, 0, 60, "a60", t0), 1);
    assert_int_equal(put_s(c, "mx1.example.test", T_AAAA, 0, 10, "aaaa10", t0), 1);
    assert_int_equal(put_s(c, "nosuch.test", T_MX, 1, 3600, "nx", t0), 1); /* capped to 5m */

    assert_string_equal(get_s(c, "mx1.example.test", T_A, t0), "a60");
    assert_string_equal(get_s(c, "mx1.example.test", T_AAAA, t0 + 9999), "aaaa10");
    /* alive while now < expiry; gone at expiry */
    assert_null(get_s(c, "mx1.example.test", T_AAAA, t0 + 10000));
    assert_string_equal(get_s(c, "mx1.example.test", T_A, t0 + 59999), "a60");
    assert_null(get_s(c, "mx1.example.test", T_A, t0 + 60000));
    assert_string_equal(get_s(c, "nosuch.test", T_MX, t0 + MIN5_MS - 1), "nx");
    assert_null(get_s(c, "nosuch.test", T_MX, t0 + MIN5_MS));

    struct mxg_dnscache_stats st;
    mxg_dnscache_stats(c, &st);
    assert_int_equal(st.entries, 0); /* expired entries were dropped on the way */
    assert_int_equal(st.expired, 3);
    assert_int_equal(st.hits, 4);
    assert_int_equal(st.misses, 3);

    /* a get never extends a lifetime */
    uint64_t exp = 0;
    size_t len;
    put_s(c, "a.test", T_TLSA, 0, 100, "t", 0);
    for (uint64_t now = 0; now < 100000; now += 10000)
        assert_non_null(mxg_dnscache_get(c, "a.test", T_TLSA, now, &len, &exp));
    assert_int_equal(exp, 100000);
    assert_null(get_s(c, "a.test", T_TLSA, 100000));
    mxg_dnscache_free(c);
}

static void test_purge(void **state)
{
    (void)state;
    struct mxg_dnscache *c = mxg_dnscache_new(100, DAY_MS, MIN5_MS);
    put_s(c, "a.test", T_A, 0, 10, "a", 0);
    put_s(c, "b.test", T_A, 0, 20, "b", 0);
    put_s(c, "c.test", T_A, 0, 30, "c", 0);
    put_s(c, "d.test", T_A, 1, 15, "d", 0);
    assert_int_equal(mxg_dnscache_purge(c, 15000), 2); /* a and d */
    assert_int_equal(entries(c), 2);
    struct walk_buf w;
    assert_string_equal(order(c, &w), "c.test/1 b.test/1");
    assert_int_equal(mxg_dnscache_purge(c, 15000), 0);
    assert_int_equal(mxg_dnscache_purge(c, 99000), 2);
    assert_int_equal(entries(c), 0);
    mxg_dnscache_free(c);
}

/* ------------------------------------------------------------ LRU */

static void test_lru_eviction_order(void **state)
{
    (void)state;
    struct walk_buf w;
    struct mxg_dnscache *c = mxg_dnscache_new(3, DAY_MS, MIN5_MS);
    put_s(c, "a.test", T_A, 0, 300, "a", 0);
    put_s(c, "b.test", T_A, 0, 300, "b", 0);
    put_s(c, "c.test", T_A, 0, 300, "c", 0);
    assert_string_equal(order(c, &w), "c.test/1 b.test/1 a.test/1");

    /* a get makes a the most recent: b is now the oldest */
    assert_string_equal(get_s(c, "a.test", T_A, 1), "a");
    assert_string_equal(order(c, &w), "a.test/1 c.test/1 b.test/1");
    put_s(c, "d.test", T_A, 0, 300, "d", 2);
    assert_string_equal(order(c, &w), "d.test/1 a.test/1 c.test/1");
    assert_null(get_s(c, "b.test", T_A, 3));

    /* a miss does not reorder; the next insert evicts c */
    assert_null(get_s(c, "zzz.test", T_A, 3));
    put_s(c, "e.test", T_A, 0, 300, "e", 4);
    assert_string_equal(order(c, &w), "e.test/1 d.test/1 a.test/1");

    /* replacing an entry makes it the most recent, without evicting */
    put_s(c, "a.test", T_A, 0, 300, "a2", 5);
    assert_string_equal(order(c, &w), "a.test/1 e.test/1 d.test/1");
    assert_int_equal(entries(c), 3);

    struct mxg_dnscache_stats st;
    mxg_dnscache_stats(c, &st);
    assert_int_equal(st.evicted, 2);
    assert_int_equal(st.replaced, 1);
    assert_int_equal(st.inserts, 6);
    mxg_dnscache_free(c);
}

/* The same name with another type is another entry, and is evicted on its own. */
static void test_lru_per_type(void **state)
{
    (void)state;
    struct walk_buf w;
    struct mxg_dnscache *c = mxg_dnscache_new(2, DAY_MS, MIN5_MS);
    put_s(c, "mx.test", T_A, 0, 300, "v4", 0);
    put_s(c, "mx.test", T_AAAA, 0, 300, "v6", 0);
    assert_string_equal(get_s(c, "mx.test", T_A, 1), "v4");
    put_s(c, "_25._tcp.mx.test", T_TLSA, 0, 300, "tlsa", 2);
    assert_string_equal(order(c, &w), "_25._tcp.mx.test/52 mx.test/1");
    assert_null(get_s(c, "mx.test", T_AAAA, 3));
    mxg_dnscache_free(c);
}

/* Many more keys than the capacity: the count never exceeds it, and the
 * survivors are exactly the most recent ones (also across table growth). */
static void test_lru_many(void **state)
{
    (void)state;
    enum { CAP = 500, N = 5000 };
    struct mxg_dnscache *c = mxg_dnscache_new(CAP, DAY_MS, MIN5_MS);
    char name[64], val[64];
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof name, "h%d.example.test", i);
        snprintf(val, sizeof val, "v%d", i);
        assert_int_equal(put_s(c, name, T_A, 0, 300, val, (uint64_t)i), 1);
        assert_true(entries(c) <= CAP);
    }
    assert_int_equal(entries(c), CAP);
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof name, "h%d.example.test", i);
        snprintf(val, sizeof val, "v%d", i);
        const char *v = get_s(c, name, T_A, N);
        if (i < N - CAP)
            assert_null(v);
        else
            assert_string_equal(v, val);
    }
    mxg_dnscache_free(c);
}

/* An expired entry at the LRU end is evicted first and counted as expired. */
static void test_eviction_counts_expired(void **state)
{
    (void)state;
    struct mxg_dnscache *c = mxg_dnscache_new(1, DAY_MS, MIN5_MS);
    put_s(c, "a.test", T_A, 0, 1, "a", 0);
    put_s(c, "b.test", T_A, 0, 300, "b", 5000);
    struct mxg_dnscache_stats st;
    mxg_dnscache_stats(c, &st);
    assert_int_equal(st.expired, 1);
    assert_int_equal(st.evicted, 0);
    put_s(c, "c.test", T_A, 0, 300, "c", 6000);
    mxg_dnscache_stats(c, &st);
    assert_int_equal(st.evicted, 1);
    mxg_dnscache_free(c);
}

/* ------------------------------------------------------------ size 0 */

static void test_size_zero(void **state)
{
    (void)state;
    struct mxg_dnscache *c = mxg_dnscache_new(0, DAY_MS, MIN5_MS);
    assert_non_null(c);
    assert_int_equal(put_s(c, "a.test", T_A, 0, 300, "a", 0), 0);
    assert_int_equal(put_s(c, "b.test", T_MX, 1, 300, "b", 0), 0);
    assert_null(get_s(c, "a.test", T_A, 0));
    assert_int_equal(entries(c), 0);
    struct walk_buf w;
    assert_string_equal(order(c, &w), "");
    assert_int_equal(mxg_dnscache_purge(c, 0), 0);
    mxg_dnscache_free(c);
}

/* ------------------------------------------------------------ replace */

static void test_replace(void **state)
{
    (void)state;
    struct mxg_dnscache *c = mxg_dnscache_new(10, DAY_MS, MIN5_MS);
    uint64_t exp = 0;
    size_t len = 0;

    /* a positive answer replaced by a negative one (and its shorter TTL) */
    put_s(c, "example.test", T_MX, 0, 3600, "10 mx1.example.test", 0);
    assert_int_equal(put_s(c, "example.test", T_MX, 1, 60, "NODATA", 1000), 1);
    assert_int_equal(entries(c), 1);
    const char *v = mxg_dnscache_get(c, "example.test", T_MX, 2000, &len, &exp);
    assert_string_equal(v, "NODATA");
    assert_int_equal(len, 7);
    assert_int_equal(exp, 61000);

    /* a longer value, then an empty one */
    static char big[3000];
    memset(big, 'x', sizeof big - 1);
    assert_int_equal(put_s(c, "example.test", T_MX, 0, 300, big, 2000), 1);
    assert_string_equal(get_s(c, "example.test", T_MX, 2001), big);
    assert_int_equal(mxg_dnscache_put(c, "example.test", T_MX, 0, 300, NULL, 0, 3000), 1);
    v = mxg_dnscache_get(c, "example.test", T_MX, 3001, &len, &exp);
    assert_non_null(v);
    assert_int_equal(len, 0);

    /* a replacement with lifetime 0 removes the old entry */
    assert_int_equal(put_s(c, "example.test", T_MX, 0, 0, "gone", 4000), 0);
    assert_null(get_s(c, "example.test", T_MX, 4001));
    assert_int_equal(entries(c), 0);

    struct mxg_dnscache_stats st;
    mxg_dnscache_stats(c, &st);
    assert_int_equal(st.replaced, 4);
    mxg_dnscache_free(c);
}

/* ------------------------------------------------------------ keys */

static void test_key_normalisation(void **state)
{
    (void)state;
    struct mxg_dnscache *c = mxg_dnscache_new(10, DAY_MS, MIN5_MS);
    put_s(c, "MX1.Example.TEST.", T_A, 0, 300, "v", 0);
    assert_string_equal(get_s(c, "mx1.example.test", T_A, 1), "v");
    assert_string_equal(get_s(c, "mx1.EXAMPLE.test.", T_A, 1), "v");
    assert_null(get_s(c, "mx1.example.test", T_AAAA, 1));
    assert_null(get_s(c, "mx1.example.tes", T_A, 1));
    assert_null(get_s(c, "x.mx1.example.test", T_A, 1));
    /* the root: "." and "" are the same key */
    put_s(c, ".", 48, 0, 300, "root", 0);
    assert_string_equal(get_s(c, "", 48, 1), "root");
    /* an escaped final dot is part of the label, not the root */
    put_s(c, "a\\.", T_A, 0, 300, "esc", 0);
    assert_null(get_s(c, "a", T_A, 1));
    assert_string_equal(get_s(c, "a\\.", T_A, 1), "esc");
    /* too long: never stored, always a miss */
    char longname[300];
    memset(longname, 'a', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    assert_int_equal(put_s(c, longname, T_A, 0, 300, "x", 0), 0);
    assert_null(get_s(c, longname, T_A, 1));
    /* NULL arguments */
    assert_int_equal(put_s(c, "ok.test", T_A, 0, 300, "x", 0), 1);
    assert_int_equal(mxg_dnscache_put(c, NULL, T_A, 0, 300, "x", 1, 0), 0);
    assert_int_equal(mxg_dnscache_put(c, "n.test", T_A, 0, 300, NULL, 5, 0), 0);
    assert_null(mxg_dnscache_get(c, NULL, T_A, 0, NULL, NULL));
    assert_int_equal(mxg_dnscache_put(NULL, "n.test", T_A, 0, 300, "x", 1, 0), 0);
    assert_null(mxg_dnscache_get(NULL, "n.test", T_A, 0, NULL, NULL));
    mxg_dnscache_free(c);
    mxg_dnscache_free(NULL);
}

/* A clock near UINT64_MAX does not wrap the expiry into the past. */
static void test_clock_saturates(void **state)
{
    (void)state;
    struct mxg_dnscache *c = mxg_dnscache_new(10, DAY_MS, MIN5_MS);
    uint64_t now = UINT64_MAX - 10, exp = 0;
    size_t len;
    put_s(c, "a.test", T_A, 0, 300, "a", now);
    assert_non_null(mxg_dnscache_get(c, "a.test", T_A, now + 5, &len, &exp));
    assert_int_equal(exp, UINT64_MAX);
    mxg_dnscache_free(c);
}

/* Values share a byte budget of max_entries x MXG_DNSCACHE_AVG_VALUE: big
 * answers (records are kept whole, up to 64 KB) evict older entries, and a
 * value bigger than the whole budget is not cached at all. */
static void test_byte_budget(void **state)
{
    (void)state;
    static unsigned char big[3 * MXG_DNSCACHE_AVG_VALUE];
    memset(big, 'x', sizeof big);
    struct mxg_dnscache *c = mxg_dnscache_new(4, DAY_MS, MIN5_MS); /* budget 4 x 4096 */
    size_t len;
    assert_int_equal(mxg_dnscache_put(c, "a.test", T_A, 0, 300, big, 2 * MXG_DNSCACHE_AVG_VALUE, 0), 1);
    assert_int_equal(mxg_dnscache_put(c, "b.test", T_A, 0, 300, big, 2 * MXG_DNSCACHE_AVG_VALUE, 0), 1);
    struct mxg_dnscache_stats st;
    mxg_dnscache_stats(c, &st);
    assert_int_equal(st.bytes, 4 * MXG_DNSCACHE_AVG_VALUE);
    /* a third big value: a (the oldest) goes, though only 2 of 4 entries are used */
    assert_int_equal(mxg_dnscache_put(c, "c.test", T_A, 0, 300, big, MXG_DNSCACHE_AVG_VALUE, 1), 1);
    assert_null(mxg_dnscache_get(c, "a.test", T_A, 2, &len, NULL));
    assert_non_null(mxg_dnscache_get(c, "b.test", T_A, 2, &len, NULL));
    assert_int_equal(len, 2 * MXG_DNSCACHE_AVG_VALUE);
    mxg_dnscache_stats(c, &st);
    assert_int_equal(st.bytes, 3 * MXG_DNSCACHE_AVG_VALUE);
    assert_int_equal(st.evicted, 1);
    /* bigger than the whole budget: not stored, nothing evicted */
    struct mxg_dnscache *small = mxg_dnscache_new(2, DAY_MS, MIN5_MS); /* budget 8192 */
    assert_int_equal(mxg_dnscache_put(small, "a.test", T_A, 0, 300, "a", 1, 0), 1);
    assert_int_equal(mxg_dnscache_put(small, "big.test", T_A, 0, 300, big, sizeof big, 0), 0);
    assert_non_null(mxg_dnscache_get(small, "a.test", T_A, 1, &len, NULL));
    assert_null(mxg_dnscache_get(small, "big.test", T_A, 1, &len, NULL));
    mxg_dnscache_free(small);
    mxg_dnscache_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lifetime_table),
        cmocka_unit_test(test_zero_caps),
        cmocka_unit_test(test_ttl_expiry),
        cmocka_unit_test(test_purge),
        cmocka_unit_test(test_lru_eviction_order),
        cmocka_unit_test(test_lru_per_type),
        cmocka_unit_test(test_lru_many),
        cmocka_unit_test(test_eviction_counts_expired),
        cmocka_unit_test(test_size_zero),
        cmocka_unit_test(test_replace),
        cmocka_unit_test(test_key_normalisation),
        cmocka_unit_test(test_clock_saturates),
        cmocka_unit_test(test_byte_budget),
    };
    return cmocka_run_group_tests_name("dane_dnscache", tests, NULL, NULL);
}
