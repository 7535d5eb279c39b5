/* tests/unit/test_policy_digest_memo.c — the memo of SHA-256 digests by their
 * octets (policy/digest_memo.h): every answer is the SHA-256 of exactly the
 * octets asked about (one octet changed at the end of equally long inputs,
 * inputs that differ only in length), repeats are answered from the memo,
 * the least recently used entry of a full set makes room, and inputs over
 * the limit (or no memo) are hashed, never kept. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include <openssl/evp.h>

#include "policy/digest_memo.h"

/* The reference: SHA-256 straight from OpenSSL. */
static void ref_sha256(const void *d, size_t n, unsigned char out[32])
{
    unsigned int l = 0;
    assert_int_equal(EVP_Digest(d, n, out, &l, EVP_sha256(), NULL), 1);
    assert_int_equal(l, 32);
}

/* m's answer for d[0..n) is SHA-256(d[0..n)). */
static void check(struct mxg_digest_memo *m, const void *d, size_t n)
{
    unsigned char got[32], want[32];
    assert_int_equal(mxg_digest_memo_sha256(m, d, n, got), 0);
    ref_sha256(d, n, want);
    assert_memory_equal(got, want, 32);
}

static uint64_t hits(const struct mxg_digest_memo *m)
{
    struct mxg_digest_memo_stats s;
    mxg_digest_memo_stats(m, &s);
    return s.hits;
}

/* Equally long inputs differing in one octet (the last, the first, a middle one),
 * and inputs that are each other's prefix: each gets its own digest. */
static void test_exact_octets(void **state)
{
    (void)state;
    struct mxg_digest_memo *m = mxg_digest_memo_new(1, 4096); /* one set: all compete */
    assert_non_null(m);
    char a[600];
    for (size_t i = 0; i < sizeof a; i++)
        a[i] = (char)('a' + i % 26);
    check(m, a, sizeof a);
    check(m, a, sizeof a);
    assert_int_equal(hits(m), 1);
    size_t at[] = {sizeof a - 1, 0, 300};
    for (size_t k = 0; k < 3; k++) {
        a[at[k]] ^= 1;
        check(m, a, sizeof a); /* not the memo's answer for the old octets */
        a[at[k]] ^= 1;
        check(m, a, sizeof a);
    }
    check(m, a, 599);
    check(m, a, 1);
    check(m, a, 0);
    check(m, "", 0);
    mxg_digest_memo_free(m);
}

/* A full set: the least recently used entry goes, the others stay answers. */
static void test_lru(void **state)
{
    (void)state;
    struct mxg_digest_memo *m = mxg_digest_memo_new(1, 64);
    assert_non_null(m);
    const char *k[5] = {"key-0", "key-1", "key-2", "key-3", "key-4"};
    for (int i = 0; i < 4; i++)
        check(m, k[i], 5);
    check(m, k[0], 5); /* key-0 is now the most recent: key-1 the least */
    assert_int_equal(hits(m), 1);
    check(m, k[4], 5); /* replaces key-1 */
    uint64_t h = hits(m);
    check(m, k[0], 5);
    check(m, k[2], 5);
    check(m, k[3], 5);
    check(m, k[4], 5);
    assert_int_equal(hits(m), h + 4);
    check(m, k[1], 5); /* computed again */
    assert_int_equal(hits(m), h + 4);
    mxg_digest_memo_free(m);
}

/* Over the limit, or without a memo: computed every time. */
static void test_not_kept(void **state)
{
    (void)state;
    struct mxg_digest_memo *m = mxg_digest_memo_new(4, 16);
    assert_non_null(m);
    const char *big = "0123456789abcdefg"; /* 17 octets */
    check(m, big, 17);
    check(m, big, 17);
    assert_int_equal(hits(m), 0);
    check(NULL, big, 17);
    assert_null(mxg_digest_memo_new(0, 16));
    mxg_digest_memo_free(m);
    mxg_digest_memo_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exact_octets),
        cmocka_unit_test(test_lru),
        cmocka_unit_test(test_not_kept),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
