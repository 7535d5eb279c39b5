/* fuzz/fuzz_sts_policy.c — the MTA-STS policy file parser and MX pattern
 * matching (policy/sts_parse.h, RFC 8461 §3.2 and §4.1).
 *
 * Properties checked:
 *  - 0 or -1; -1 with a printable reason and a zeroed policy;
 *  - an accepted policy: a known mode, max_age <= 31557600, mx patterns
 *    (<= MXG_STS_MAX_MX, distinct) lower-case, terminated, no trailing dot,
 *    "*" only as a whole leftmost label; mode testing/enforce has >= 1;
 *  - round trip: mxg_sts_policy_format() output parses to the same policy;
 *  - matching: every plain pattern matches itself (also upper-cased, with
 *    a trailing dot); "*.rest" matches "x.rest" but neither "rest" nor
 *    "x.y.rest"; the policy matches each of those hosts as its patterns say. */
#include "fuzz.h"

#include <ctype.h>

#include "policy/sts_parse.h"

static int same(const struct mxg_sts_policy *a, const struct mxg_sts_policy *b)
{
    if (a->mode != b->mode || a->max_age != b->max_age || a->n_mx != b->n_mx)
        return 0;
    for (int i = 0; i < a->n_mx; i++)
        if (strcmp(a->mx[i], b->mx[i]) != 0)
            return 0;
    return 1;
}

static void check_patterns(const struct mxg_sts_policy *p)
{
    char host[MXG_STS_NAME_MAX + 16];
    for (int i = 0; i < p->n_mx; i++) {
        const char *m = p->mx[i];
        FUZZ_CHECK(fuzz_terminated(m, MXG_STS_NAME_MAX + 1));
        size_t l = strlen(m);
        FUZZ_CHECK(l > 0 && m[l - 1] != '.');
        for (int k = 0; k < i; k++)
            FUZZ_CHECK(strcmp(p->mx[k], m) != 0);
        for (size_t k = 0; k < l; k++)
            FUZZ_CHECK(!isupper((unsigned char)m[k]) && (unsigned char)m[k] < 0x80);
        const char *star = strchr(m, '*');
        FUZZ_CHECK(!star || (star == m && m[1] == '.' && !strchr(m + 1, '*')));
        if (!star) {
            FUZZ_CHECK(mxg_sts_pattern_match(m, m) == 1);
            size_t k;
            for (k = 0; k < l; k++)
                host[k] = (char)toupper((unsigned char)m[k]);
            host[k++] = '.';
            host[k] = '\0';
            FUZZ_CHECK(mxg_sts_pattern_match(m, host) == 1);
            FUZZ_CHECK(mxg_sts_mx_match(p, host) == 1);
        } else {
            const char *rest = m + 2;
            FUZZ_CHECK(mxg_sts_pattern_match(m, rest) == 0);
            snprintf(host, sizeof host, "x.%s", rest);
            FUZZ_CHECK(mxg_sts_pattern_match(m, host) == 1);
            FUZZ_CHECK(mxg_sts_mx_match(p, host) == 1);
            snprintf(host, sizeof host, "x.y.%s", rest);
            FUZZ_CHECK(mxg_sts_pattern_match(m, host) == 0);
            snprintf(host, sizeof host, "*.%s", rest);
            FUZZ_CHECK(mxg_sts_pattern_match(m, host) == 0); /* a host with '*' never matches */
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct mxg_sts_policy p, q;
    char why[256];
    char *body = fuzz_dup(data, size);
    int rc = mxg_sts_policy_parse(body, size, &p, why, sizeof why);
    free(body);
    FUZZ_CHECK(rc == 0 || rc == -1);
    FUZZ_CHECK(fuzz_terminated(why, sizeof why) && fuzz_printable(why));
    if (rc < 0) {
        FUZZ_CHECK(why[0] != '\0');
        FUZZ_CHECK(p.n_mx == 0 && p.max_age == 0 && p.mode == MXG_STS_MODE_NONE);
        return 0;
    }
    FUZZ_CHECK(p.mode == MXG_STS_MODE_NONE || p.mode == MXG_STS_MODE_TESTING ||
               p.mode == MXG_STS_MODE_ENFORCE);
    FUZZ_CHECK(p.max_age <= MXG_STS_MAX_AGE_LIMIT);
    FUZZ_CHECK(p.n_mx >= 0 && p.n_mx <= MXG_STS_MAX_MX);
    FUZZ_CHECK(p.mode == MXG_STS_MODE_NONE || p.n_mx > 0);
    check_patterns(&p);

    static char text[MXG_STS_MAX_MX * (MXG_STS_NAME_MAX + 8) + 128];
    size_t n = mxg_sts_policy_format(&p, text, sizeof text);
    FUZZ_CHECK(n > 0 && n == strlen(text));
    char *again = fuzz_dup(text, n);
    int rc2 = mxg_sts_policy_parse(again, n, &q, why, sizeof why);
    free(again);
    if (rc2 != 0 || !same(&p, &q)) {
        fprintf(stderr, "round trip: %d %s\n%s", rc2, why, text);
        FUZZ_CHECK(!"policy round trip");
    }
    /* a buffer too small: nothing, never a shortened policy */
    char small[64];
    size_t sn = mxg_sts_policy_format(&p, small, sizeof small);
    FUZZ_CHECK(sn == 0 ? small[0] == '\0' : (sn == n && strcmp(small, text) == 0));
    return 0;
}
