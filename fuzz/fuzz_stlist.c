/* fuzz/fuzz_stlist.c — the STARTTLS Everywhere policy-list loader
 * (policy/stlist.h): mxg_stlist_parse (JSON + schema), lookups and MX
 * matching on what it accepted, and the ISO-8601 time parser. The gpgv
 * signature check is not involved (the list is parsed as the store does
 * after verification).
 *
 * Properties checked:
 *  - rejected: NULL with a terminated, non-empty error;
 *  - accepted: expires > timestamp >= 0; every key of "policies" is found
 *    by mxg_stlist_lookup (also upper-cased with a trailing dot), and the
 *    count matches; every stored mxs pattern is lower-case, and matches
 *    what it promises: "mx.example" itself, ".example" any subdomain
 *    ("a.example", "a.b.example") but not "example";
 *  - a name the list does not hold is not found;
 *  - mxg_stlist_parse_time: a time it accepts is >= 0, and reformatted as
 *    "YYYY-MM-DDTHH:MM:SSZ" parses back to the same second. */
#include "fuzz.h"

#include <ctype.h>
#include <jansson.h>
#include <time.h>

#include "policy/stlist.h"

static void upper_dot(const char *s, char *out, size_t cap)
{
    size_t i;
    for (i = 0; s[i] && i + 2 < cap; i++)
        out[i] = (char)toupper((unsigned char)s[i]);
    out[i++] = '.';
    out[i] = '\0';
}

static void check_policy(const struct mxg_stlist_policy *p)
{
    FUZZ_CHECK(p->mode == MXG_STS_MODE_TESTING || p->mode == MXG_STS_MODE_ENFORCE);
    FUZZ_CHECK(p->n_mxs >= 1 && p->n_mxs <= MXG_STLIST_MAX_MXS);
    FUZZ_CHECK(fuzz_terminated(p->alias, sizeof p->alias));
    char host[MXG_STS_NAME_MAX + 16];
    for (int i = 0; i < p->n_mxs; i++) {
        const char *m = p->mxs[i];
        FUZZ_CHECK(fuzz_terminated(m, sizeof p->mxs[i]));
        size_t l = strlen(m);
        FUZZ_CHECK(l >= 1 && m[l - 1] != '.');
        for (size_t k = 0; k < l; k++)
            FUZZ_CHECK(!isupper((unsigned char)m[k]) && (unsigned char)m[k] < 0x80);
        for (int k = 0; k < i; k++)
            FUZZ_CHECK(strcmp(p->mxs[k], m) != 0);
        static struct mxg_stlist_policy one; /* this pattern alone */
        memset(&one, 0, sizeof one);
        one.mode = p->mode;
        one.n_mxs = 1;
        memcpy(one.mxs[0], m, l + 1);
        if (m[0] == '.') { /* (a host name has at most 253 characters) */
            snprintf(host, sizeof host, "a%s", m);
            FUZZ_CHECK(mxg_stlist_mx_match(&one, host) == (l + 1 <= 253));
            FUZZ_CHECK(l + 1 > 253 || mxg_stlist_mx_match(p, host) == 1);
            snprintf(host, sizeof host, "A.b%s.", m);
            FUZZ_CHECK(mxg_stlist_mx_match(&one, host) == (l + 3 <= 253));
            FUZZ_CHECK(mxg_stlist_mx_match(&one, m + 1) == 0);
        } else {
            FUZZ_CHECK(mxg_stlist_mx_match(p, m) == 1);
            upper_dot(m, host, sizeof host);
            FUZZ_CHECK(mxg_stlist_mx_match(&one, host) == 1);
            snprintf(host, sizeof host, "a.%s", m);
            FUZZ_CHECK(mxg_stlist_mx_match(&one, host) == 0);
        }
    }
}

static void check_list(const struct mxg_stlist *l, const char *text, size_t len)
{
    FUZZ_CHECK(mxg_stlist_timestamp(l) >= 0 && mxg_stlist_expires(l) > mxg_stlist_timestamp(l));
    FUZZ_CHECK(mxg_stlist_author(l) != NULL && mxg_stlist_version(l) != NULL);
    FUZZ_CHECK(mxg_stlist_alias_count(l) >= 0);
    /* the same JSON through jansson directly: every domain key must be found */
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, NULL);
    FUZZ_CHECK(root != NULL);
    json_t *pols = json_object_get(root, "policies");
    FUZZ_CHECK(json_is_object(pols));
    FUZZ_CHECK((size_t)mxg_stlist_count(l) == json_object_size(pols));
    const char *key;
    json_t *v;
    char alt[MXG_STS_NAME_MAX + 8];
    json_object_foreach(pols, key, v) {
        (void)v;
        const struct mxg_stlist_policy *p = mxg_stlist_lookup(l, key);
        FUZZ_CHECK(p != NULL);
        check_policy(p);
        size_t kl = strlen(key);
        if (kl > 0 && key[kl - 1] != '.' && kl + 2 < sizeof alt) {
            upper_dot(key, alt, sizeof alt);
            FUZZ_CHECK(mxg_stlist_lookup(l, alt) == p);
        }
    }
    FUZZ_CHECK(mxg_stlist_lookup(l, "not-in-any-list.invalid") == NULL ||
               json_object_get(pols, "not-in-any-list.invalid") != NULL);
    FUZZ_CHECK(mxg_stlist_lookup(l, "") == NULL);
    json_decref(root);
}

static void check_time(const char *s)
{
    int64_t t = -1;
    char why[200];
    if (mxg_stlist_parse_time(s, &t, why, sizeof why) != 0) {
        FUZZ_CHECK(fuzz_terminated(why, sizeof why) && why[0] && fuzz_printable(why));
        return;
    }
    FUZZ_CHECK(t >= 0);
    if (t > INT64_C(253402300799))
        return; /* past 9999-12-31 (a late time with a negative offset): no 4-digit year */
    time_t tt = (time_t)t;
    struct tm tm;
    FUZZ_CHECK(gmtime_r(&tt, &tm) != NULL);
    char buf[40];
    strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    int64_t t2 = -1;
    if (strlen(buf) == 20) {
        FUZZ_CHECK(mxg_stlist_parse_time(buf, &t2, why, sizeof why) == 0);
        FUZZ_CHECK(t2 == t);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *json = fuzz_dup(data, size);
    char err[300];
    err[0] = '\0';
    struct mxg_stlist *l = mxg_stlist_parse(json, size, err, sizeof err);
    if (l) {
        check_list(l, json, size);
        mxg_stlist_free(l);
    } else {
        FUZZ_CHECK(fuzz_terminated(err, sizeof err) && err[0] != '\0');
    }
    free(json);

    if (size < 64 && !memchr(data, '\0', size)) {
        char *s = fuzz_dup_z(data, size);
        check_time(s);
        free(s);
    }
    return 0;
}
