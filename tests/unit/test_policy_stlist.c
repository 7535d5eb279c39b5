/* tests/unit/test_policy_stlist.c — policy/stlist: the STARTTLS Everywhere
 * policy list. Table-driven: the ISO-8601 time forms, one row per schema
 * error class (each checks the reason text), accepted edge cases, MX
 * matching, gpgv's verdicts, and the store (offer / persist / reload /
 * expiry) with real signatures: a throw-away GNUPGHOME holds a list key and
 * an "attacker" key, generated at start; gpgv checks against a keyring file
 * exported from the list key only. */
#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "policy/stlist.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

static void check_substr(const char *row, const char *what, const char *got, const char *want)
{
    if (want && !strstr(got, want)) {
        print_error("row '%s': %s '%s' lacks '%s'\n", row, what, got, want);
        fail();
    }
}

/* ------------------------------------------------------------ environment */

static char g_root[64];         /* mkdtemp */
static char g_gnupg[128];       /* GNUPGHOME */
static char g_keyring[128];     /* list key only (binary export) */
static char g_evil_keyring[128];/* attacker key only */
static char g_fpr[41];          /* list key fingerprint */
static int g_state_n;

static int run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int run(const char *fmt, ...)
{
    char cmd[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int rc = system(cmd);
    if (rc != 0)
        fprintf(stderr, "command failed (%d): %s\n", rc, cmd);
    return rc;
}

static char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, n = 0;
    char *b = malloc(cap);
    size_t r;
    while (b && (r = fread(b + n, 1, cap - n - 1, f)) > 0) {
        n += r;
        if (n + 1 == cap) {
            char *nb = realloc(b, cap * 2);
            if (!nb) {
                free(b);
                b = NULL;
                break;
            }
            b = nb;
            cap *= 2;
        }
    }
    fclose(f);
    if (b) {
        b[n] = '\0';
        if (len)
            *len = n;
    }
    return b;
}

static void write_file(const char *path, const char *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

static int group_setup(void **state)
{
    (void)state;
    snprintf(g_root, sizeof g_root, "/tmp/mxg-stlist.XXXXXX");
    if (!mkdtemp(g_root))
        return -1;
    snprintf(g_gnupg, sizeof g_gnupg, "%s/gnupg", g_root);
    snprintf(g_keyring, sizeof g_keyring, "%s/keyring.gpg", g_root);
    snprintf(g_evil_keyring, sizeof g_evil_keyring, "%s/evil.gpg", g_root);
    if (mkdir(g_gnupg, 0700) != 0)
        return -1;
    setenv("GNUPGHOME", g_gnupg, 1);
    if (run("gpg --batch --quiet --passphrase '' --quick-gen-key "
            "'mxguard test <list@example.test>' ed25519 sign never >/dev/null 2>&1") ||
        run("gpg --batch --quiet --passphrase '' --quick-gen-key "
            "'attacker <evil@example.test>' ed25519 sign never >/dev/null 2>&1") ||
        run("gpg --batch --export list@example.test > %s", g_keyring) ||
        run("gpg --batch --export evil@example.test > %s", g_evil_keyring) ||
        run("gpg --batch --with-colons --fingerprint list@example.test 2>/dev/null | "
            "awk -F: '/^fpr:/ {print $10; exit}' > %s/fpr",
            g_root))
        return -1;
    char p[160];
    snprintf(p, sizeof p, "%s/fpr", g_root);
    char *f = read_all(p, NULL);
    if (!f || strlen(f) < 40) {
        free(f);
        return -1;
    }
    memcpy(g_fpr, f, 40);
    g_fpr[40] = '\0';
    free(f);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    if (g_root[0]) {
        run("gpgconf --kill gpg-agent >/dev/null 2>&1");
        run("rm -rf '%s'", g_root);
    }
    return 0;
}

/* Detached armored signature of data by key ("list" or "evil"); malloc'd. */
static char *sign(const char *data, size_t len, const char *who, size_t *siglen)
{
    char dp[160], sp[170];
    snprintf(dp, sizeof dp, "%s/tosign", g_root);
    snprintf(sp, sizeof sp, "%s/tosign.asc", g_root);
    write_file(dp, data, len);
    assert_int_equal(run("gpg --batch --yes --quiet --armor --detach-sign -u %s@example.test "
                         "-o %s %s 2>/dev/null",
                         who, sp, dp),
                     0);
    char *s = read_all(sp, siglen);
    assert_non_null(s);
    unlink(dp);
    unlink(sp);
    return s;
}

static char *new_state_dir(void)
{
    char *p = malloc(160);
    assert_non_null(p);
    snprintf(p, 160, "%s/state%d", g_root, ++g_state_n);
    assert_int_equal(mkdir(p, 0700), 0);
    return p;
}

/* ------------------------------------------------------------ fixtures */

#define HEAD "\"timestamp\":\"2024-01-01T00:00:00Z\",\"expires\":\"2099-01-01T00:00:00Z\","

/* A good list with the given timestamp and expiry (JSON values, quoted as needed). */
static char *make_list(const char *ts, const char *exp)
{
    char *b = malloc(2048);
    assert_non_null(b);
    snprintf(b, 2048,
             "{\n"
             "  \"timestamp\": %s,\n"
             "  \"expires\": %s,\n"
             "  \"version\": \"0.1\",\n"
             "  \"author\": \"mxguard tests\",\n"
             "  \"pinsets\": {},\n"
             "  \"policy-aliases\": {\n"
             "    \"google\": {\"mode\": \"enforce\", \"mxs\": [\".l.google.com\"]}\n"
             "  },\n"
             "  \"policies\": {\n"
             "    \"gmail.com\": {\"policy-alias\": \"google\"},\n"
             "    \"Example.COM\": {\"mode\": \"enforce\",\n"
             "                    \"mxs\": [\"MX1.example.com\", \".mail.example.net\"]},\n"
             "    \"testing.example\": {\"mode\": \"testing\", \"mxs\": [\"mx.testing.example\"]}\n"
             "  }\n"
             "}\n",
             ts, exp);
    return b;
}

/* Resembles EFF's published policy.json (2018): nanosecond timestamps with
 * a -07:00 offset, pinsets, aliases, and older per-policy fields. */
static const char eff_style[] =
    "{\n"
    "  \"timestamp\": \"2018-09-28T11:57:09.977018279-07:00\",\n"
    "  \"expires\": \"2018-10-12T11:57:09.977018279-07:00\",\n"
    "  \"version\": \"0.1\",\n"
    "  \"author\": \"Electronic Frontier Foundation https://eff.org\",\n"
    "  \"pinsets\": {\n"
    "    \"eff\": {\n"
    "      \"static-spki-hashes\": [\n"
    "        \"sha1/5R0zeLx7EWRxqw6HRlgCRxNLHDo=\",\n"
    "        \"sha1/YlrkMlC6C4SJRZSVyRvnvoJ+8eM=\"\n"
    "      ]\n"
    "    }\n"
    "  },\n"
    "  \"policy-aliases\": {\n"
    "    \"google\": {\"mode\": \"testing\", \"mxs\": [\".l.google.com\"]},\n"
    "    \"icloud\": {\"mode\": \"testing\", \"mxs\": [\".icloud.com\"]},\n"
    "    \"outlook\": {\"mode\": \"testing\", \"mxs\": [\".outlook.com\", \"outlook.com\"]},\n"
    "    \"yahoo\": {\n"
    "      \"mode\": \"testing\",\n"
    "      \"report\": [\"https://reports.example.test/post/reports/here\"],\n"
    "      \"mxs\": [\".yahoodns.net\"]\n"
    "    }\n"
    "  },\n"
    "  \"policies\": {\n"
    "    \"aol.com\": {\"policy-alias\": \"yahoo\"},\n"
    "    \"comcast.net\": {\"mode\": \"testing\", \"mxs\": [\".comcast.net\"]},\n"
    "    \"eff.org\": {\"mode\": \"enforce\", \"pin\": \"eff\", \"mxs\": [\".eff.org\"]},\n"
    "    \"gmail.com\": {\"policy-alias\": \"google\"},\n"
    "    \"hotmail.com\": {\"policy-alias\": \"outlook\"},\n"
    "    \"icloud.com\": {\"policy-alias\": \"icloud\"},\n"
    "    \"live.com\": {\"policy-alias\": \"outlook\"},\n"
    "    \"me.com\": {\"policy-alias\": \"icloud\"},\n"
    "    \"yahoo.com\": {\"policy-alias\": \"yahoo\"},\n"
    "    \"ymail.com\": {\"policy-alias\": \"yahoo\"},\n"
    "    \"example.com\": {\n"
    "      \"mode\": \"testing\",\n"
    "      \"mta-sts\": true,\n"
    "      \"min-tls-version\": \"TLSv1.2\",\n"
    "      \"mxs\": [\"mail.example.com\", \".example.net\"]\n"
    "    },\n"
    "    \"kjkobes.com\": {\"mode\": \"testing\",\n"
    "      \"mxs\": [\"in1-smtp.messagingengine.com\", \"in2-smtp.messagingengine.com\"]},\n"
    "    \"4zal.net\": {\"mode\": \"testing\",\n"
    "      \"mxs\": [\"in1-smtp.messagingengine.com\", \"in2-smtp.messagingengine.com\"]},\n"
    "    \"knthost.com\": {\"mode\": \"testing\", \"mxs\": [\n"
    "      \"mx.knthost.com\", \"secure-mx.knthost.com\", \"inbound01.knthost.com\",\n"
    "      \"secure-inbound01.knthost.com\", \"inbound02.knthost.com\",\n"
    "      \"secure-inbound02.knthost.com\"]},\n"
    "    \"sheogorath.shivering-isles.com\": {\"mode\": \"testing\",\n"
    "      \"mxs\": [\"srv02.shivering-isles.com\"]},\n"
    "    \"linuxfirewall.no-ip.org\": {\"mode\": \"testing\",\n"
    "      \"mxs\": [\"linuxfirewall.no-ip.org\"]},\n"
    "    \"tspu.edu.ru\": {\"mode\": \"testing\", \"mxs\": [\"mail.tspu.edu.ru\"]},\n"
    "    \"0xheap.org\": {\"mode\": \"testing\", \"mxs\": [\"mail.0xheap.org\"]},\n"
    "    \"mpcompany.ru\": {\"mode\": \"testing\",\n"
    "      \"mxs\": [\"mx.mpcompany.ru\", \".mpcompany.ru\"]}\n"
    "  }\n"
    "}\n";

/* ------------------------------------------------------------ time */

struct time_case {
    const char *s;
    int ok;
    int64_t want;
    const char *why;
};

static const struct time_case time_cases[] = {
    {"2024-01-01T00:00:00Z", 1, 1704067200, NULL},
    {"1970-01-01T00:00:00Z", 1, 0, NULL},
    {"2024-01-01T00:00:00+02:00", 1, 1704060000, NULL},
    {"2024-01-01T00:00:00+0200", 1, 1704060000, NULL},
    {"2024-01-01T00:00:00-05:30", 1, 1704087000, NULL},
    {"2024-01-01T00:00:00-0530", 1, 1704087000, NULL},
    {"2024-01-01T00:00:00+00:00", 1, 1704067200, NULL},
    {"2024-01-01T00:00:00-00:00", 1, 1704067200, NULL},
    {"2018-06-01T17:08:37.474098617-07:00", 1, 1527898117, NULL},
    {"2018-06-01T17:08:37.4-07:00", 1, 1527898117, NULL},
    {"2024-01-01T00:00:00.999999999999999999999Z", 1, 1704067200, NULL},
    {"2000-02-29T12:00:00Z", 1, 951825600, NULL},
    {"2024-02-29T23:59:59Z", 1, 1709251199, NULL},
    {"2000-01-01T00:00:00+02:00", 1, 946677600, NULL},
    {"9999-12-31T23:59:59Z", 1, INT64_C(253402300799), NULL},

    {"", 0, 0, "not YYYY"},
    {"2024-01-01", 0, 0, "not YYYY"},
    {"2024-01-01T00:00:00", 0, 0, "no UTC offset"},
    {"2024-01-01 00:00:00Z", 0, 0, "not YYYY"},
    {"2024-01-01t00:00:00z", 0, 0, "not YYYY"},
    {"2024-01-01T00:00:00z", 0, 0, "unexpected"},
    {"2024-1-01T00:00:00Z", 0, 0, "not YYYY"},
    {"24-01-01T00:00:00Z", 0, 0, "not YYYY"},
    {"2024-01-01T00:00:00.Z", 0, 0, "no digits after"},
    {"2024-01-01T00:00:00,5Z", 0, 0, "unexpected"},
    {"2024-01-01T00:00:00+02", 0, 0, "bad UTC offset"},
    {"2024-01-01T00:00:00+2:00", 0, 0, "bad UTC offset"},
    {"2024-01-01T00:00:00+02:0", 0, 0, "bad UTC offset"},
    {"2024-01-01T00:00:00+02:00:00", 0, 0, "trailing"},
    {"2024-01-01T00:00:00Zjunk", 0, 0, "trailing"},
    {"2024-01-01T00:00:00Z ", 0, 0, "trailing"},
    {" 2024-01-01T00:00:00Z", 0, 0, "not YYYY"},
    {"2024-13-01T00:00:00Z", 0, 0, "out of range"},
    {"2024-00-01T00:00:00Z", 0, 0, "out of range"},
    {"2024-01-00T00:00:00Z", 0, 0, "out of range"},
    {"2023-02-29T00:00:00Z", 0, 0, "out of range"},
    {"2100-02-29T00:00:00Z", 0, 0, "out of range"},
    {"2024-04-31T00:00:00Z", 0, 0, "out of range"},
    {"2024-01-01T24:00:00Z", 0, 0, "out of range"},
    {"2024-01-01T00:60:00Z", 0, 0, "out of range"},
    {"2024-01-01T00:00:60Z", 0, 0, "out of range"},
    {"2024-01-01T00:00:00+24:00", 0, 0, "out of range"},
    {"2024-01-01T00:00:00+01:60", 0, 0, "out of range"},
    {"1969-12-31T23:59:59Z", 0, 0, "before 1970"},
    {"1970-01-01T00:30:00+01:00", 0, 0, "before 1970"},
    {"yesterday", 0, 0, "not YYYY"},
};

static void t_time_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(time_cases); i++) {
        const struct time_case *c = &time_cases[i];
        int64_t t = -42;
        char why[200] = "";
        int rc = mxg_stlist_parse_time(c->s, &t, why, sizeof why);
        if ((rc == 0) != c->ok) {
            print_error("row '%s': rc %d (%s)\n", c->s, rc, why);
            fail();
        }
        if (c->ok && t != c->want) {
            print_error("row '%s': %lld, want %lld\n", c->s, (long long)t, (long long)c->want);
            fail();
        }
        if (!c->ok)
            check_substr(c->s, "why", why, c->why);
    }
    int64_t t;
    char why[100];
    assert_int_equal(mxg_stlist_parse_time(NULL, &t, why, sizeof why), -1);
}

/* timestamp/expires as JSON values inside a whole list */
struct jtime_case {
    const char *name, *ts, *exp;
    int64_t want_ts, want_exp; /* -1: rejected */
    const char *err;
};

static const struct jtime_case jtime_cases[] = {
    {"epoch ints", "1700000000", "1800000000", 1700000000, 1800000000, NULL},
    {"epoch 0", "0", "1", 0, 1, NULL},
    {"int and ISO mixed", "1704067200", "\"2099-01-01T00:00:00Z\"", 1704067200, 4070908800,
     NULL},
    {"EFF form", "\"2018-06-01T17:08:37.474098617-07:00\"", "\"2018-06-15T17:08:37.1-07:00\"",
     1527898117, 1527898117 + 14 * 86400, NULL},
    {"negative int", "-1", "1800000000", -1, -1, "timestamp: -1 is out of range"},
    {"huge int", "253402300800", "253402300801", -1, -1, "out of range"},
    {"real", "1700000000.5", "1800000000", -1, -1, "timestamp: not an integer"},
    {"numeric string", "\"1700000000\"", "1800000000", -1, -1, "timestamp: '1700000000'"},
    {"boolean", "true", "1800000000", -1, -1, "timestamp: not an integer"},
    {"null", "null", "1800000000", -1, -1, "timestamp: not an integer"},
    {"bad expires", "1700000000", "\"2099-01-01\"", -1, -1, "expires: '2099-01-01'"},
    {"no offset", "\"2024-01-01T00:00:00\"", "1800000000", -1, -1, "no UTC offset"},
    {"expires == timestamp", "1700000000", "1700000000", -1, -1, "is not after timestamp"},
    {"expires < timestamp", "\"2024-01-01T00:00:00Z\"", "\"2023-12-31T23:59:59Z\"", -1, -1,
     "expires: 2023-12-31T23:59:59Z is not after timestamp 2024-01-01T00:00:00Z"},
    {"same instant, other offsets", "\"2024-01-01T02:00:00+02:00\"",
     "\"2024-01-01T00:00:00Z\"", -1, -1, "is not after"},
};

static void t_json_times(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(jtime_cases); i++) {
        const struct jtime_case *c = &jtime_cases[i];
        char *js = make_list(c->ts, c->exp);
        char err[300] = "";
        struct mxg_stlist *l = mxg_stlist_parse(js, strlen(js), err, sizeof err);
        if ((l != NULL) != (c->want_ts >= 0)) {
            print_error("row '%s': %s (%s)\n", c->name, l ? "accepted" : "rejected", err);
            fail();
        }
        if (l) {
            assert_int_equal(mxg_stlist_timestamp(l), c->want_ts);
            assert_int_equal(mxg_stlist_expires(l), c->want_exp);
        } else {
            check_substr(c->name, "err", err, c->err);
        }
        mxg_stlist_free(l);
        free(js);
    }
}

/* ------------------------------------------------------------ parse: the good list */

static void t_parse_good(void **state)
{
    (void)state;
    char *js = make_list("\"2024-01-01T00:00:00Z\"", "\"2099-01-01T00:00:00Z\"");
    char err[300] = "x";
    struct mxg_stlist *l = mxg_stlist_parse(js, strlen(js), err, sizeof err);
    assert_non_null(l);
    assert_string_equal(err, "");
    assert_int_equal(mxg_stlist_timestamp(l), 1704067200);
    assert_int_equal(mxg_stlist_expires(l), 4070908800);
    assert_string_equal(mxg_stlist_author(l), "mxguard tests");
    assert_string_equal(mxg_stlist_version(l), "0.1");
    assert_int_equal(mxg_stlist_count(l), 3);
    assert_int_equal(mxg_stlist_alias_count(l), 1);

    const struct mxg_stlist_policy *p = mxg_stlist_lookup(l, "example.com");
    assert_non_null(p);
    assert_int_equal(p->mode, MXG_STS_MODE_ENFORCE);
    assert_int_equal(p->n_mxs, 2);
    assert_string_equal(p->mxs[0], "mx1.example.com"); /* lower-cased */
    assert_string_equal(p->mxs[1], ".mail.example.net");
    assert_string_equal(p->alias, "");
    /* case-insensitive, trailing dot */
    assert_ptr_equal(mxg_stlist_lookup(l, "EXAMPLE.com"), p);
    assert_ptr_equal(mxg_stlist_lookup(l, "example.com."), p);
    assert_ptr_equal(mxg_stlist_lookup(l, "Example.Com."), p);
    /* exact only */
    assert_null(mxg_stlist_lookup(l, "mx1.example.com"));
    assert_null(mxg_stlist_lookup(l, "sub.gmail.com"));
    assert_null(mxg_stlist_lookup(l, "com"));
    assert_null(mxg_stlist_lookup(l, "example.com.."));
    assert_null(mxg_stlist_lookup(l, ".example.com"));
    assert_null(mxg_stlist_lookup(l, ""));
    assert_null(mxg_stlist_lookup(l, "."));
    assert_null(mxg_stlist_lookup(l, NULL));
    assert_null(mxg_stlist_lookup(NULL, "example.com"));

    p = mxg_stlist_lookup(l, "gmail.com");
    assert_non_null(p);
    assert_string_equal(p->alias, "google");
    assert_int_equal(p->mode, MXG_STS_MODE_ENFORCE);
    assert_int_equal(p->n_mxs, 1);
    assert_string_equal(p->mxs[0], ".l.google.com");

    p = mxg_stlist_lookup(l, "testing.example");
    assert_non_null(p);
    assert_int_equal(p->mode, MXG_STS_MODE_TESTING);

    /* NULL-safe accessors */
    assert_int_equal(mxg_stlist_count(NULL), 0);
    assert_string_equal(mxg_stlist_author(NULL), "");
    mxg_stlist_free(NULL);
    mxg_stlist_free(l);
    free(js);
}

/* ------------------------------------------------------------ MX matching */

struct mx_case {
    const char *host;
    int want;
};

static const struct mx_case mx_cases[] = {
    /* exact pattern mx1.example.com */
    {"mx1.example.com", 1},
    {"MX1.Example.COM", 1},
    {"mx1.example.com.", 1},
    {"mx2.example.com", 0},
    {"a.mx1.example.com", 0},
    {"example.com", 0},
    {"mx1.example.co", 0},
    {"mx1.example.com..", 0},
    /* suffix pattern .mail.example.net: any depth, never the bare name */
    {"a.mail.example.net", 1},
    {"A.MAIL.EXAMPLE.NET.", 1},
    {"a.b.c.d.mail.example.net", 1},
    {"mail.example.net", 0},
    {"mail.example.net.", 0},
    {"xmail.example.net", 0},
    {"a.mail.example.net.evil.test", 0},
    {"example.net", 0},
    {".mail.example.net", 0},
    {"a..mail.example.net", 0},
    {"*.mail.example.net", 0},
    {"", 0},
    {".", 0},
};

static void t_mx_match(void **state)
{
    (void)state;
    char *js = make_list("1", "\"2099-01-01T00:00:00Z\"");
    char err[300];
    struct mxg_stlist *l = mxg_stlist_parse(js, strlen(js), err, sizeof err);
    assert_non_null(l);
    const struct mxg_stlist_policy *p = mxg_stlist_lookup(l, "example.com");
    assert_non_null(p);
    for (size_t i = 0; i < ARRAY_LEN(mx_cases); i++) {
        if (mxg_stlist_mx_match(p, mx_cases[i].host) != mx_cases[i].want) {
            print_error("host '%s': want %d\n", mx_cases[i].host, mx_cases[i].want);
            fail();
        }
    }
    assert_int_equal(mxg_stlist_mx_match(p, NULL), 0);
    assert_int_equal(mxg_stlist_mx_match(NULL, "mx1.example.com"), 0);
    p = mxg_stlist_lookup(l, "gmail.com");
    assert_int_equal(mxg_stlist_mx_match(p, "gmail-smtp-in.l.google.com"), 1);
    assert_int_equal(mxg_stlist_mx_match(p, "alt1.gmail-smtp-in.l.google.com"), 1);
    assert_int_equal(mxg_stlist_mx_match(p, "l.google.com"), 0);
    assert_int_equal(mxg_stlist_mx_match(p, "smtp.google.com"), 0);
    mxg_stlist_free(l);
    free(js);
}

/* ------------------------------------------------------------ schema errors */

#define POL(body) "{" HEAD "\"policies\":{" body "}}"
#define ALIAS(aliases, body) "{" HEAD "\"policy-aliases\":{" aliases "},\"policies\":{" body "}}"
#define GOODP "{\"mode\":\"enforce\",\"mxs\":[\"mx.x.com\"]}"
#define MXS(list) "\"x.com\":{\"mode\":\"enforce\",\"mxs\":[" list "]}"
#define L61 "abcdefghij" "abcdefghij" "abcdefghij" "abcdefghij" "abcdefghij" "abcdefghij" "a"
#define L63 L61 "bc"

struct err_case {
    const char *name;
    const char *json;
    size_t len; /* 0: strlen */
    const char *err;
};

static const struct err_case err_cases[] = {
    /* JSON itself */
    {"malformed JSON", "{\"timestamp\": ", 0, "JSON: line 1"},
    {"not JSON", "policy", 0, "JSON:"},
    {"empty input", "", 0, "JSON:"},
    {"trailing garbage", POL("") " x", 0, "JSON:"},
    {"duplicate JSON key", "{" HEAD "\"policies\":{},\"policies\":{}}", 0, "duplicate"},
    {"duplicate domain key exactly", POL("\"x.com\":" GOODP ",\"x.com\":" GOODP), 0,
     "duplicate"},
    {"raw NUL byte", "{\"a\":1}\0", 8, "NUL byte at offset 7"},
    {"escaped NUL", POL("\"x.com\":{\"mode\":\"enforce\",\"mxs\":[\"mx\\u0000.x.com\"]}"), 0,
     "JSON:"},
    {"invalid UTF-8", POL("\"x\xff.com\":" GOODP), 0, "JSON:"},
    {"top level array", "[1,2]", 0, "top level: not a JSON object"},
    /* top-level fields */
    {"missing timestamp", "{\"expires\":\"2099-01-01T00:00:00Z\",\"policies\":{}}", 0,
     "timestamp: missing"},
    {"missing expires", "{\"timestamp\":\"2024-01-01T00:00:00Z\",\"policies\":{}}", 0,
     "expires: missing"},
    {"bad ISO timestamp",
     "{\"timestamp\":\"2024-01-01T00:00:00\",\"expires\":\"2099-01-01T00:00:00Z\","
     "\"policies\":{}}",
     0, "timestamp: '2024-01-01T00:00:00': no UTC offset"},
    {"expires <= timestamp",
     "{\"timestamp\":\"2024-01-01T00:00:00Z\",\"expires\":\"2024-01-01T00:00:00Z\","
     "\"policies\":{}}",
     0, "expires: 2024-01-01T00:00:00Z is not after timestamp 2024-01-01T00:00:00Z"},
    {"version not a string", "{" HEAD "\"version\":0.1,\"policies\":{}}", 0,
     "version: not a string"},
    {"author not a string", "{" HEAD "\"author\":[],\"policies\":{}}", 0,
     "author: not a string"},
    {"pinsets not an object", "{" HEAD "\"pinsets\":[],\"policies\":{}}", 0,
     "pinsets: not an object"},
    {"pinsets a string", "{" HEAD "\"pinsets\":\"eff\",\"policies\":{}}", 0,
     "pinsets: not an object"},
    {"policy-aliases not an object", "{" HEAD "\"policy-aliases\":[],\"policies\":{}}", 0,
     "policy-aliases: not an object"},
    {"policies missing", "{" HEAD "\"policy-aliases\":{}}", 0, "policies: missing"},
    {"policies not an object", "{" HEAD "\"policies\":[]}", 0, "policies: not an object"},
    /* aliases */
    {"alias chaining",
     ALIAS("\"a\":" GOODP ",\"b\":{\"policy-alias\":\"a\"}", "\"x.com\":{\"policy-alias\":\"b\"}"),
     0, "policy-aliases.b: an alias cannot refer to another alias (policy-alias a)"},
    {"alias chaining with mode+mxs too",
     ALIAS("\"a\":" GOODP
           ",\"b\":{\"policy-alias\":\"a\",\"mode\":\"enforce\",\"mxs\":[\"m.x.com\"]}",
           ""),
     0, "policy-aliases.b: an alias cannot refer to another alias"},
    {"self reference", ALIAS("\"a\":{\"policy-alias\":\"a\"}", ""), 0,
     "policy-aliases.a: an alias cannot"},
    {"unknown alias", ALIAS("\"a\":" GOODP, "\"x.com\":{\"policy-alias\":\"nope\"}"), 0,
     "policies.x.com.policy-alias: unknown alias 'nope'"},
    {"unknown alias, no aliases", POL("\"x.com\":{\"policy-alias\":\"a\"}"), 0,
     "policies.x.com.policy-alias: unknown alias 'a'"},
    {"alias names are case-sensitive", ALIAS("\"a\":" GOODP, "\"x.com\":{\"policy-alias\":\"A\"}"),
     0, "unknown alias 'A'"},
    {"policy-alias not a string", ALIAS("\"a\":" GOODP, "\"x.com\":{\"policy-alias\":1}"), 0,
     "policies.x.com.policy-alias: not a string"},
    {"alias not an object", ALIAS("\"a\":[]", ""), 0, "policy-aliases.a: not an object"},
    {"alias bad mode", ALIAS("\"a\":{\"mode\":\"none\",\"mxs\":[\"m.x.com\"]}", ""), 0,
     "policy-aliases.a.mode: 'none'"},
    {"alias bad mxs", ALIAS("\"a\":{\"mode\":\"testing\",\"mxs\":[\"*.x.com\"]}", ""), 0,
     "policy-aliases.a.mxs[0]: '*.x.com'"},
    {"alias name too long", ALIAS("\"" L63 "x\":" GOODP, ""), 0, "alias names are 1-63"},
    {"alias name empty", ALIAS("\"\":" GOODP, ""), 0, "alias names are 1-63"},
    /* mode */
    {"bad mode none", POL("\"x.com\":{\"mode\":\"none\",\"mxs\":[\"mx.x.com\"]}"), 0,
     "policies.x.com.mode: 'none' is not \"testing\" or \"enforce\""},
    {"bad mode case", POL("\"x.com\":{\"mode\":\"Enforce\",\"mxs\":[\"mx.x.com\"]}"), 0,
     "policies.x.com.mode: 'Enforce'"},
    {"mode missing", POL("\"x.com\":{\"mxs\":[\"mx.x.com\"]}"), 0, "policies.x.com.mode: missing"},
    {"mode not a string", POL("\"x.com\":{\"mode\":1,\"mxs\":[\"mx.x.com\"]}"), 0,
     "policies.x.com.mode: not a string"},
    /* mxs */
    {"mxs missing", POL("\"x.com\":{\"mode\":\"enforce\"}"), 0, "policies.x.com.mxs: missing"},
    {"mxs not an array", POL("\"x.com\":{\"mode\":\"enforce\",\"mxs\":\"mx.x.com\"}"), 0,
     "policies.x.com.mxs: not an array"},
    {"empty mxs", POL(MXS("")), 0, "policies.x.com.mxs: empty"},
    {"'*' in mxs", POL(MXS("\"*.x.com\"")), 0,
     "policies.x.com.mxs[0]: '*.x.com': '*' is not allowed"},
    {"'*' alone", POL(MXS("\"mx.x.com\",\"*\"")), 0, "mxs[1]: '*': '*' is not allowed"},
    {"IPv4 in mxs", POL(MXS("\"mx.x.com\",\"192.0.2.1\"")), 0,
     "policies.x.com.mxs[1]: '192.0.2.1': IP address"},
    {"IPv4 literal in mxs", POL(MXS("\"[192.0.2.1]\"")), 0, "mxs[0]: '[192.0.2.1]': IP address"},
    {"IPv6 in mxs", POL(MXS("\"2001:db8::1\"")), 0, "mxs[0]: '2001:db8::1': IP address"},
    {"hex IPv4 in mxs", POL(MXS("\"0x7f.0.0.1\"")), 0, "IP address"},
    {"suffix of an IP", POL(MXS("\".0.2.1\"")), 0, "IP address"},
    {"non-string mxs", POL(MXS("\"a.x.com\",\"b.x.com\",7")), 0,
     "policies.x.com.mxs[2]: not a string"},
    {"null in mxs", POL(MXS("null")), 0, "policies.x.com.mxs[0]: not a string"},
    {"single label", POL(MXS("\"localhost\"")), 0, "single label"},
    {"dot alone", POL(MXS("\".\"")), 0, "empty name"},
    {"empty string", POL(MXS("\"\"")), 0, "mxs[0]: '': empty name"},
    {"two leading dots", POL(MXS("\"..x.com\"")), 0, "empty label"},
    {"empty label", POL(MXS("\"mx..x.com\"")), 0, "empty label"},
    {"two trailing dots", POL(MXS("\"mx.x.com..\"")), 0, "empty label"},
    {"label too long", POL(MXS("\"" L63 "d.x.com\"")), 0, "label longer than 63"},
    {"name too long (254)",
     POL(MXS("\"" L63 "." L63 "." L63 "." L61 "b\"")), 0, "longer than 253"},
    {"name too long",
     POL(MXS("\"" L63 "." L63 "." L63 "." L63 ".com\"")), 0, "longer than 253"},
    {"underscore", POL(MXS("\"mx_1.x.com\"")), 0, "invalid character"},
    {"space", POL(MXS("\"mx 1.x.com\"")), 0, "invalid character"},
    {"U-label", POL(MXS("\"mx.b\xc3\xbc" "cher.de\"")), 0, "not an A-label"},
    {"leading hyphen", POL(MXS("\"-mx.x.com\"")), 0, "starts or ends with '-'"},
    {"trailing hyphen", POL(MXS("\"mx-.x.com\"")), 0, "starts or ends with '-'"},
    {"33 distinct mxs",
     POL(MXS("\"a1.x.com\",\"a2.x.com\",\"a3.x.com\",\"a4.x.com\",\"a5.x.com\",\"a6.x.com\","
             "\"a7.x.com\",\"a8.x.com\",\"a9.x.com\",\"a10.x.com\",\"a11.x.com\",\"a12.x.com\","
             "\"a13.x.com\",\"a14.x.com\",\"a15.x.com\",\"a16.x.com\",\"a17.x.com\","
             "\"a18.x.com\",\"a19.x.com\",\"a20.x.com\",\"a21.x.com\",\"a22.x.com\","
             "\"a23.x.com\",\"a24.x.com\",\"a25.x.com\",\"a26.x.com\",\"a27.x.com\","
             "\"a28.x.com\",\"a29.x.com\",\"a30.x.com\",\"a31.x.com\",\"a32.x.com\","
             "\"a33.x.com\"")),
     0, "policies.x.com.mxs: more than 32 distinct patterns"},
    /* domain keys */
    {"duplicate domain after lower-casing", POL("\"x.com\":" GOODP ",\"X.COM\":" GOODP), 0,
     "policies.X.COM: duplicate domain (x.com is listed twice)"},
    {"duplicate domain with trailing dot", POL("\"x.com\":" GOODP ",\"x.com.\":" GOODP), 0,
     "duplicate domain"},
    {"domain with leading dot", POL("\".x.com\":" GOODP), 0,
     "policies..x.com: not a valid domain name: leading dot"},
    {"wildcard domain", POL("\"*.x.com\":" GOODP), 0, "not a valid domain name: '*'"},
    {"IP domain", POL("\"192.0.2.1\":" GOODP), 0, "not a valid domain name: IP address"},
    {"single-label domain", POL("\"com\":" GOODP), 0, "not a valid domain name: not a fully"},
    {"U-label domain", POL("\"b\xc3\xbc" "cher.de\":" GOODP), 0,
     "policies.b\\xc3\\xbccher.de: not a valid domain name: not an A-label"},
    {"policy not an object", POL("\"x.com\":\"enforce\""), 0, "policies.x.com: not an object"},
    {"policy null", POL("\"x.com\":null"), 0, "policies.x.com: not an object"},
};

static void t_parse_errors(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(err_cases); i++) {
        const struct err_case *c = &err_cases[i];
        size_t len = c->len ? c->len : strlen(c->json);
        char err[300] = "";
        struct mxg_stlist *l = mxg_stlist_parse(c->json, len, err, sizeof err);
        if (l) {
            print_error("row '%s': accepted\n", c->name);
            mxg_stlist_free(l);
            fail();
        }
        check_substr(c->name, "err", err, c->err);
    }
    char err[100];
    assert_null(mxg_stlist_parse(NULL, 0, err, sizeof err));
}

/* ------------------------------------------------------------ accepted edge cases */

struct ok_case {
    const char *name;
    const char *json;
    int count, aliases;
    const char *domain; /* looked up when set */
    enum mxg_sts_mode mode;
    int n_mxs;
    const char *mx0, *alias;
};

static const struct ok_case ok_cases[] = {
    {"minimal", "{" HEAD "\"policies\":{}}", 0, 0, NULL, 0, 0, NULL, NULL},
    {"older fields ignored",
     POL("\"x.com\":{\"mode\":\"testing\",\"mta-sts\":true,\"pin\":\"eff\",\"report\":"
         "[\"mailto:r@x.com\"],\"min-tls-version\":\"TLSv1.2\",\"tls-report\":\"x\","
         "\"require-valid-certificate\":true,\"mxs\":[\"mx.x.com\"]}"),
     1, 0, "x.com", MXG_STS_MODE_TESTING, 1, "mx.x.com", ""},
    {"unknown top-level key",
     "{" HEAD "\"comment\":\"hi\",\"future\":{\"a\":[1]},\"policies\":{\"x.com\":" GOODP "}}", 1,
     0, "x.com", MXG_STS_MODE_ENFORCE, 1, "mx.x.com", ""},
    {"pinsets with content",
     "{" HEAD "\"pinsets\":{\"eff\":{\"static-spki-hashes\":[\"sha1/x=\"]}},\"policies\":{}}", 0,
     0, NULL, 0, 0, NULL, NULL},
    {"alias wins over other fields",
     ALIAS("\"a\":{\"mode\":\"testing\",\"mxs\":[\"m.a.com\"]}",
           "\"x.com\":{\"policy-alias\":\"a\",\"mode\":\"enforce\",\"mxs\":[\"*bad*\"]}"),
     1, 1, "x.com", MXG_STS_MODE_TESTING, 1, "m.a.com", "a"},
    {"unused alias is counted", ALIAS("\"a\":" GOODP ",\"b\":" GOODP, "\"x.com\":" GOODP), 1, 2,
     "x.com", MXG_STS_MODE_ENFORCE, 1, "mx.x.com", ""},
    {"alias with older fields",
     ALIAS("\"a\":{\"mode\":\"testing\",\"report\":[\"https://r.a.com\"],\"mxs\":[\".a.com\"]}",
           "\"x.com\":{\"policy-alias\":\"a\"}"),
     1, 1, "x.com", MXG_STS_MODE_TESTING, 1, ".a.com", "a"},
    {"duplicate mxs stored once",
     POL(MXS("\"mx.x.com\",\"MX.X.COM\",\"mx.x.com.\",\".x.com\"")), 1, 0, "x.com",
     MXG_STS_MODE_ENFORCE, 2, "mx.x.com", ""},
    {"trailing dots dropped", POL("\"x.com.\":{\"mode\":\"enforce\",\"mxs\":[\".X.com.\"]}"), 1,
     0, "x.com", MXG_STS_MODE_ENFORCE, 1, ".x.com", ""},
    {"A-labels",
     POL("\"xn--bcher-kva.de\":{\"mode\":\"enforce\",\"mxs\":[\"mx.xn--bcher-kva.de\"]}"),
     1, 0, "XN--BCHER-KVA.DE", MXG_STS_MODE_ENFORCE, 1, "mx.xn--bcher-kva.de", ""},
    {"digits in labels", POL("\"0xheap.org\":{\"mode\":\"testing\",\"mxs\":[\"mx1.0xheap.org\","
                             "\"1.2.3.example\"]}"),
     1, 0, "0xheap.org", MXG_STS_MODE_TESTING, 2, "mx1.0xheap.org", ""},
    {"63-char label", POL("\"x.com\":{\"mode\":\"enforce\",\"mxs\":[\"" L63 ".x.com\"]}"), 1, 0,
     "x.com", MXG_STS_MODE_ENFORCE, 1, L63 ".x.com", ""},
    {"253-char name",
     POL("\"x.com\":{\"mode\":\"enforce\",\"mxs\":[\"" L63 "." L63 "." L63 "." L61 "\"]}"), 1, 0,
     "x.com", MXG_STS_MODE_ENFORCE, 1, L63 "." L63 "." L63 "." L61, ""},
    {"253-char name with leading dot",
     POL("\"x.com\":{\"mode\":\"enforce\",\"mxs\":[\"." L63 "." L63 "." L63 "." L61 "\"]}"), 1,
     0, "x.com", MXG_STS_MODE_ENFORCE, 1, "." L63 "." L63 "." L63 "." L61, ""},
    {"32 distinct mxs",
     POL(MXS("\"a1.x.com\",\"a2.x.com\",\"a3.x.com\",\"a4.x.com\",\"a5.x.com\",\"a6.x.com\","
             "\"a7.x.com\",\"a8.x.com\",\"a9.x.com\",\"a10.x.com\",\"a11.x.com\",\"a12.x.com\","
             "\"a13.x.com\",\"a14.x.com\",\"a15.x.com\",\"a16.x.com\",\"a17.x.com\","
             "\"a18.x.com\",\"a19.x.com\",\"a20.x.com\",\"a21.x.com\",\"a22.x.com\","
             "\"a23.x.com\",\"a24.x.com\",\"a25.x.com\",\"a26.x.com\",\"a27.x.com\","
             "\"a28.x.com\",\"a29.x.com\",\"a30.x.com\",\"a31.x.com\",\"a32.x.com\","
             "\"a1.x.com\"")),
     1, 0, "x.com", MXG_STS_MODE_ENFORCE, 32, "a1.x.com", ""},
    {"no version or author", "{" HEAD "\"policies\":{}}", 0, 0, NULL, 0, 0, NULL, NULL},
};

static void t_parse_accepts(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(ok_cases); i++) {
        const struct ok_case *c = &ok_cases[i];
        char err[300] = "";
        struct mxg_stlist *l = mxg_stlist_parse(c->json, strlen(c->json), err, sizeof err);
        if (!l) {
            print_error("row '%s': rejected: %s\n", c->name, err);
            fail();
        }
        if (mxg_stlist_count(l) != c->count || mxg_stlist_alias_count(l) != c->aliases) {
            print_error("row '%s': %d policies %d aliases\n", c->name, mxg_stlist_count(l),
                        mxg_stlist_alias_count(l));
            fail();
        }
        if (c->domain) {
            const struct mxg_stlist_policy *p = mxg_stlist_lookup(l, c->domain);
            if (!p || p->mode != c->mode || p->n_mxs != c->n_mxs ||
                strcmp(p->mxs[0], c->mx0) != 0 || strcmp(p->alias, c->alias) != 0) {
                print_error("row '%s': policy differs\n", c->name);
                fail();
            }
        }
        mxg_stlist_free(l);
    }
    /* absent version/author read as "" */
    const char *js = "{" HEAD "\"policies\":{}}";
    struct mxg_stlist *l = mxg_stlist_parse(js, strlen(js), NULL, 0);
    assert_non_null(l);
    assert_string_equal(mxg_stlist_version(l), "");
    assert_string_equal(mxg_stlist_author(l), "");
    mxg_stlist_free(l);
}

/* ------------------------------------------------------------ EFF-style file */

static void t_eff_style(void **state)
{
    (void)state;
    char err[300] = "";
    struct mxg_stlist *l = mxg_stlist_parse(eff_style, strlen(eff_style), err, sizeof err);
    if (!l)
        print_error("%s\n", err);
    assert_non_null(l);
    assert_int_equal(mxg_stlist_timestamp(l), 1538161029);
    assert_int_equal(mxg_stlist_expires(l), 1539370629);
    assert_string_equal(mxg_stlist_author(l), "Electronic Frontier Foundation https://eff.org");
    assert_int_equal(mxg_stlist_count(l), 19);
    assert_int_equal(mxg_stlist_alias_count(l), 4);

    const struct mxg_stlist_policy *y = mxg_stlist_lookup(l, "yahoo.com");
    assert_non_null(y);
    assert_string_equal(y->alias, "yahoo");
    assert_int_equal(y->mode, MXG_STS_MODE_TESTING);
    assert_ptr_equal(mxg_stlist_lookup(l, "aol.com"), y); /* aliases share one policy */
    assert_ptr_equal(mxg_stlist_lookup(l, "ymail.com"), y);
    assert_int_equal(mxg_stlist_mx_match(y, "mta7.am0.yahoodns.net"), 1);
    assert_int_equal(mxg_stlist_mx_match(y, "yahoodns.net"), 0);

    const struct mxg_stlist_policy *o = mxg_stlist_lookup(l, "hotmail.com");
    assert_non_null(o);
    assert_int_equal(mxg_stlist_mx_match(o, "outlook.com"), 1);
    assert_int_equal(mxg_stlist_mx_match(o, "hotmail-com.olc.protection.outlook.com"), 1);

    const struct mxg_stlist_policy *e = mxg_stlist_lookup(l, "eff.org");
    assert_non_null(e);
    assert_int_equal(e->mode, MXG_STS_MODE_ENFORCE);
    /* identical inline policies are stored once */
    assert_ptr_equal(mxg_stlist_lookup(l, "kjkobes.com"), mxg_stlist_lookup(l, "4zal.net"));
    const struct mxg_stlist_policy *k = mxg_stlist_lookup(l, "knthost.com");
    assert_non_null(k);
    assert_int_equal(k->n_mxs, 6);
    assert_int_equal(mxg_stlist_mx_match(k, "secure-inbound02.knthost.com"), 1);
    assert_non_null(mxg_stlist_lookup(l, "sheogorath.shivering-isles.com"));
    assert_null(mxg_stlist_lookup(l, "shivering-isles.com"));
    mxg_stlist_free(l);
}

/* ------------------------------------------------------------ a large list */

static void t_large(void **state)
{
    (void)state;
    enum { N = 30000, DISTINCT = 500 };
    size_t cap = (size_t)N * 120 + 4096, n = 0;
    char *b = malloc(cap);
    assert_non_null(b);
    n += (size_t)snprintf(b + n, cap - n,
                          "{" HEAD "\"policy-aliases\":{\"big\":{\"mode\":\"enforce\","
                          "\"mxs\":[\".mx.big.example\"]}},\"policies\":{");
    for (int i = 0; i < N; i++) {
        if (i % 2)
            n += (size_t)snprintf(b + n, cap - n, "%s\"D%05d.Example\":{\"policy-alias\":\"big\"}",
                                  i ? "," : "", i);
        else
            n += (size_t)snprintf(b + n, cap - n,
                                  "%s\"d%05d.example\":{\"mode\":\"testing\",\"mxs\":"
                                  "[\"mx.p%03d.example\"]}",
                                  i ? "," : "", i, i % DISTINCT);
    }
    n += (size_t)snprintf(b + n, cap - n, "}}");
    assert_true(n < cap);
    char err[300] = "";
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    struct mxg_stlist *l = mxg_stlist_parse(b, n, err, sizeof err);
    if (!l)
        print_error("%s\n", err);
    assert_non_null(l);
    assert_int_equal(mxg_stlist_count(l), N);
    for (int i = 0; i < N; i++) {
        char d[32];
        snprintf(d, sizeof d, "D%05d.EXAMPLE.", i);
        const struct mxg_stlist_policy *p = mxg_stlist_lookup(l, d);
        assert_non_null(p);
        if (i % 2) {
            assert_string_equal(p->alias, "big");
        } else {
            char mx[40];
            snprintf(mx, sizeof mx, "mx.p%03d.example", i % DISTINCT);
            assert_string_equal(p->mxs[0], mx);
            /* identical inline policies share one struct */
            snprintf(d, sizeof d, "d%05d.example", (i + 2 * DISTINCT) % N);
            assert_ptr_equal(p, mxg_stlist_lookup(l, d));
        }
    }
    assert_null(mxg_stlist_lookup(l, "d30000.example"));
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
    print_message("      %d domains parsed and looked up in %.0f ms\n", N, ms);
    mxg_stlist_free(l);
    free(b);
}

/* ------------------------------------------------------------ gpgv verdicts */

#define FPR "85F88C2E310EF95D982AF7D8D02B27CC6A7E2E2C"
#define S_GOOD "[GNUPG:] GOODSIG D02B27CC6A7E2E2C mxguard test <list@example.test>\n"
#define S_VALID "[GNUPG:] VALIDSIG " FPR " 2026-11-23 1795451940 0 4 0 22 8 00 " FPR "\n"

struct gpgv_case {
    const char *name;
    int exit_code;
    const char *status;
    int want;
    const char *text; /* signer (want 0) or err (want -1) substring */
};

static const struct gpgv_case gpgv_cases[] = {
    {"good", 0,
     "[GNUPG:] NEWSIG list@example.test\n[GNUPG:] KEY_CONSIDERED " FPR " 0\n" S_GOOD S_VALID, 0,
     FPR " (mxguard test <list@example.test>)"},
    {"VALIDSIG only", 0, S_VALID, 0, FPR},
    {"no newline at end", 0, "[GNUPG:] VALIDSIG " FPR, 0, FPR},
    {"BADSIG", 1, "[GNUPG:] NEWSIG\n[GNUPG:] BADSIG D02B27CC6A7E2E2C mxguard test <l@x>\n", -1,
     "gpgv: BADSIG D02B27CC6A7E2E2C: bad signature"},
    {"unknown key", 2,
     "[GNUPG:] ERRSIG F509D0190D9ED815 22 8 00 1795451940 9 " FPR
     "\n[GNUPG:] NO_PUBKEY F509D0190D9ED815\n",
     -1, "gpgv: NO_PUBKEY F509D0190D9ED815: signed by a key that is not in the keyring"},
    {"ERRSIG alone", 2, "[GNUPG:] ERRSIG F509D0190D9ED815 22 8 00 1795451940 4 -\n", -1,
     "gpgv: ERRSIG"},
    {"expired key, exit 0", 0, "[GNUPG:] EXPKEYSIG D02B27CC6A7E2E2C x\n" S_VALID, -1,
     "gpgv: EXPKEYSIG"},
    {"revoked key, exit 0", 0, "[GNUPG:] REVKEYSIG D02B27CC6A7E2E2C x\n" S_VALID, -1,
     "gpgv: REVKEYSIG"},
    {"expired signature, exit 0", 0, "[GNUPG:] EXPSIG D02B27CC6A7E2E2C x\n" S_VALID, -1,
     "gpgv: EXPSIG"},
    {"good plus an unknown signer", 2,
     S_GOOD S_VALID "[GNUPG:] ERRSIG F509D0190D9ED815 22 8 00 1 9 -\n[GNUPG:] NO_PUBKEY "
                    "F509D0190D9ED815\n",
     -1, "NO_PUBKEY"},
    {"good plus an unknown signer, exit 0", 0,
     S_GOOD S_VALID "[GNUPG:] NO_PUBKEY F509D0190D9ED815\n", -1, "NO_PUBKEY"},
    {"VALIDSIG but exit 1", 1, S_GOOD S_VALID, -1, "exit status 1"},
    {"exit 0, no VALIDSIG", 0, S_GOOD, -1, "no VALIDSIG"},
    {"nothing", 0, "", -1, "no VALIDSIG"},
    {"NODATA", 2, "[GNUPG:] NODATA 2\n", -1, "NODATA"},
    {"exit 2, nothing", 2, "", -1, "exit status 2"},
    {"no [GNUPG:] prefix", 0, "VALIDSIG " FPR "\n", -1, "no VALIDSIG"},
    {"look-alike keyword", 0, "[GNUPG:] VALIDSIGX " FPR "\n", -1, "no VALIDSIG"},
    {"empty VALIDSIG", 0, "[GNUPG:] VALIDSIG \n", -1, "no VALIDSIG"},
    {"NULL status", 0, NULL, -1, "no VALIDSIG"},
};

static void t_gpgv_result(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(gpgv_cases); i++) {
        const struct gpgv_case *c = &gpgv_cases[i];
        char signer[200] = "x", err[300] = "x";
        int rc = mxg_stlist_gpgv_result(c->exit_code, c->status, signer, sizeof signer, err,
                                        sizeof err);
        if (rc != c->want) {
            print_error("row '%s': rc %d (%s)\n", c->name, rc, err);
            fail();
        }
        if (rc == 0) {
            check_substr(c->name, "signer", signer, c->text);
            assert_string_equal(err, "");
        } else {
            check_substr(c->name, "err", err, c->text);
            assert_string_equal(signer, "");
        }
    }
}

/* ------------------------------------------------------------ gpgv, for real */

static void t_verify(void **state)
{
    (void)state;
    char *js = make_list("1", "2");
    size_t sl;
    char *sig = sign(js, strlen(js), "list", &sl);
    char *evil = sign(js, strlen(js), "evil", NULL);
    char dp[160], sp[160], ep[160], zp[160], tp[160];
    snprintf(dp, sizeof dp, "%s/v.json", g_root);
    snprintf(sp, sizeof sp, "%s/v.json.asc", g_root);
    snprintf(ep, sizeof ep, "%s/v.evil.asc", g_root);
    snprintf(zp, sizeof zp, "%s/v.empty.asc", g_root);
    snprintf(tp, sizeof tp, "%s/v.tampered.json", g_root);
    write_file(dp, js, strlen(js));
    write_file(sp, sig, sl);
    write_file(ep, evil, strlen(evil));
    write_file(zp, "", 0);
    js[strlen(js) - 3] = ' '; /* change one byte */
    write_file(tp, js, strlen(js));

    char signer[200], err[300];
    assert_int_equal(mxg_stlist_verify(dp, sp, g_keyring, signer, sizeof signer, err, sizeof err),
                     0);
    check_substr("good", "signer", signer, g_fpr);
    check_substr("good", "signer", signer, "(mxguard test <list@example.test>)");

    assert_int_equal(mxg_stlist_verify(tp, sp, g_keyring, signer, sizeof signer, err, sizeof err),
                     -1);
    check_substr("tampered", "err", err, "BADSIG");
    assert_string_equal(signer, "");

    assert_int_equal(mxg_stlist_verify(dp, ep, g_keyring, signer, sizeof signer, err, sizeof err),
                     -1);
    check_substr("other key", "err", err, "NO_PUBKEY");

    assert_int_equal(mxg_stlist_verify(dp, zp, g_keyring, signer, sizeof signer, err, sizeof err),
                     -1);
    check_substr("empty signature", "err", err, "NODATA");

    /* the data file given as signature: not a signature */
    assert_int_equal(mxg_stlist_verify(dp, dp, g_keyring, signer, sizeof signer, err, sizeof err),
                     -1);

    /* only the attacker's key in the keyring */
    assert_int_equal(
        mxg_stlist_verify(dp, sp, g_evil_keyring, signer, sizeof signer, err, sizeof err), -1);
    check_substr("wrong keyring", "err", err, "NO_PUBKEY");

    /* a missing keyring file */
    char nk[160];
    snprintf(nk, sizeof nk, "%s/nonexistent.gpg", g_root);
    assert_int_equal(mxg_stlist_verify(dp, sp, nk, signer, sizeof signer, err, sizeof err), -1);

    /* a keyring name without '/' is relative to the working directory, not
     * to gpgv's home directory */
    char cwd[512];
    assert_non_null(getcwd(cwd, sizeof cwd));
    assert_int_equal(chdir(g_root), 0);
    int rc = mxg_stlist_verify(dp, sp, "keyring.gpg", signer, sizeof signer, err, sizeof err);
    assert_int_equal(chdir(cwd), 0);
    if (rc != 0)
        print_error("relative keyring: %s\n", err);
    assert_int_equal(rc, 0);

    /* gpgv missing */
    assert_int_equal(mxg_stlist_verify_with("/nonexistent/gpgv", 0, dp, sp, g_keyring, signer,
                                            sizeof signer, err, sizeof err),
                     -1);
    check_substr("no gpgv", "err", err, "not found");
    assert_int_equal(mxg_stlist_verify_with("mxg-no-such-gpgv", 0, dp, sp, g_keyring, signer,
                                            sizeof signer, err, sizeof err),
                     -1);
    check_substr("no gpgv in PATH", "err", err, "not found");

    /* a gpgv that hangs is killed at the limit */
    char hp[160];
    snprintf(hp, sizeof hp, "%s/hanging-gpgv", g_root);
    const char *script = "#!/bin/sh\nexec sleep 30\n";
    write_file(hp, script, strlen(script));
    assert_int_equal(chmod(hp, 0700), 0);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(mxg_stlist_verify_with(hp, 300, dp, sp, g_keyring, signer, sizeof signer,
                                            err, sizeof err),
                     -1);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    check_substr("hanging gpgv", "err", err, "no answer within 300 ms");
    assert_true(t1.tv_sec - t0.tv_sec < 5);

    /* a fake gpgv that claims success on stdout but exits 1 */
    const char *liar = "#!/bin/sh\necho '[GNUPG:] VALIDSIG " FPR " x'\nexit 1\n";
    write_file(hp, liar, strlen(liar));
    assert_int_equal(mxg_stlist_verify_with(hp, 0, dp, sp, g_keyring, signer, sizeof signer, err,
                                            sizeof err),
                     -1);
    check_substr("lying gpgv", "err", err, "exit status 1");
    /* gpgv's stderr is quoted when there is no status line to go by */
    const char *noisy = "#!/bin/sh\necho 'gpgv: keyblock resource: No such file' >&2\nexit 2\n";
    write_file(hp, noisy, strlen(noisy));
    assert_int_equal(mxg_stlist_verify_with(hp, 0, dp, sp, g_keyring, signer, sizeof signer, err,
                                            sizeof err),
                     -1);
    check_substr("noisy gpgv", "err", err, "exit status 2: gpgv: keyblock resource");

    assert_int_equal(mxg_stlist_verify(NULL, sp, g_keyring, signer, sizeof signer, err, sizeof err),
                     -1);
    free(js);
    free(sig);
    free(evil);
}

/* ------------------------------------------------------------ the store */

/* Only policy-list.json and policy-list.json.asc (or nothing) in dir. */
static int dir_entries(const char *dir, int *others)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    *others = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        if (strcmp(e->d_name, "policy-list.json") && strcmp(e->d_name, "policy-list.json.asc")) {
            print_error("unexpected file %s/%s\n", dir, e->d_name);
            (*others)++;
        }
        n++;
    }
    closedir(d);
    return n;
}

struct signed_list {
    char *json, *sig;
    size_t json_len, sig_len;
};

static struct signed_list signed_list(const char *ts, const char *exp, const char *who)
{
    struct signed_list s;
    s.json = make_list(ts, exp);
    s.json_len = strlen(s.json);
    s.sig = sign(s.json, s.json_len, who, &s.sig_len);
    return s;
}

static void free_signed(struct signed_list *s)
{
    free(s->json);
    free(s->sig);
}

static void t_store_offer(void **state)
{
    (void)state;
    char *dir = new_state_dir();
    char err[300] = "x";
    struct mxg_stlist_store *s = mxg_stlist_store_open(dir, g_keyring, err, sizeof err);
    assert_non_null(s);
    assert_string_equal(err, "");
    struct mxg_stlist_status st;
    mxg_stlist_store_status(s, (int64_t)time(NULL), &st);
    assert_int_equal(st.have, 0);
    assert_null(mxg_stlist_store_current(s, (int64_t)time(NULL)));

    struct signed_list a = signed_list("\"2024-06-01T00:00:00Z\"", "\"2099-01-01T00:00:00Z\"",
                                       "list");
    int64_t before = (int64_t)time(NULL);
    assert_int_equal(mxg_stlist_store_offer(s, a.json, a.json_len, a.sig, a.sig_len,
                                            "https://lists.example.test/policy.json", err,
                                            sizeof err),
                     1);
    int64_t now = (int64_t)time(NULL);
    const struct mxg_stlist *cur = mxg_stlist_store_current(s, now);
    assert_non_null(cur);
    assert_int_equal(mxg_stlist_timestamp(cur), 1717200000);
    assert_non_null(mxg_stlist_lookup(cur, "gmail.com"));

    mxg_stlist_store_status(s, now, &st);
    assert_int_equal(st.have, 1);
    assert_int_equal(st.expired, 0);
    assert_int_equal(st.timestamp, 1717200000);
    assert_int_equal(st.expires, 4070908800);
    assert_true(st.loaded_at >= before && st.loaded_at <= now);
    check_substr("status", "signer", st.signer, g_fpr);
    assert_string_equal(st.author, "mxguard tests");
    assert_int_equal(st.n_policies, 3);
    assert_int_equal(st.n_aliases, 1);
    assert_string_equal(st.source, "https://lists.example.test/policy.json");

    /* persisted, 0600, no temporary files left */
    int others;
    assert_int_equal(dir_entries(dir, &others), 2);
    assert_int_equal(others, 0);
    char p[200];
    struct stat sb;
    snprintf(p, sizeof p, "%s/policy-list.json", dir);
    assert_int_equal(stat(p, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    size_t n;
    char *onfile = read_all(p, &n);
    assert_non_null(onfile);
    assert_int_equal(n, a.json_len);
    assert_memory_equal(onfile, a.json, n);
    free(onfile);
    snprintf(p, sizeof p, "%s/policy-list.json.asc", dir);
    onfile = read_all(p, &n);
    assert_non_null(onfile);
    assert_int_equal(n, a.sig_len);
    assert_memory_equal(onfile, a.sig, n);
    free(onfile);

    /* newer replaces */
    struct signed_list b = signed_list("\"2024-06-02T00:00:00+02:00\"", "\"2099-01-01T00:00:00Z\"",
                                       "list");
    assert_int_equal(mxg_stlist_store_offer(s, b.json, b.json_len, b.sig, b.sig_len, NULL, err,
                                            sizeof err),
                     1);
    cur = mxg_stlist_store_current(s, now);
    assert_int_equal(mxg_stlist_timestamp(cur), 1717200000 + 86400 - 7200);
    mxg_stlist_store_status(s, now, &st);
    assert_string_equal(st.source, "");
    assert_int_equal(dir_entries(dir, &others), 2);
    assert_int_equal(others, 0);

    mxg_stlist_store_close(s);
    mxg_stlist_store_close(NULL);
    free_signed(&a);
    free_signed(&b);
    free(dir);
}

/* The offer in halves (candidate checked off the loop): checked after the store closed it
 * needs nothing of the store; installed it becomes current; a tampered or dropped one leaves
 * no temporary file behind. */
static void t_store_candidate(void **state)
{
    (void)state;
    char *dir = new_state_dir();
    char err[300];
    int others;
    struct mxg_stlist_store *s = mxg_stlist_store_open(dir, g_keyring, err, sizeof err);
    struct signed_list a = signed_list("\"2024-06-01T00:00:00Z\"", "\"2099-01-01T00:00:00Z\"",
                                       "list");
    struct mxg_stlist_candidate *c = mxg_stlist_candidate_new(s, a.json, a.json_len, a.sig,
                                                              a.sig_len);
    assert_non_null(c);
    mxg_stlist_candidate_check(c);
    assert_int_equal(mxg_stlist_store_install(s, c, "the shared state", err, sizeof err), 1);
    assert_int_equal(mxg_stlist_timestamp(mxg_stlist_store_current(s, (int64_t)time(NULL))),
                     1717200000);
    assert_int_equal(dir_entries(dir, &others), 2);
    assert_int_equal(others, 0);
    /* the same again: not newer */
    c = mxg_stlist_candidate_new(s, a.json, a.json_len, a.sig, a.sig_len);
    mxg_stlist_candidate_check(c);
    assert_int_equal(mxg_stlist_store_install(s, c, "again", err, sizeof err), 0);
    /* tampered: refused with the check's reason, the list in force kept */
    a.json[a.json_len - 2] ^= 1;
    c = mxg_stlist_candidate_new(s, a.json, a.json_len, a.sig, a.sig_len);
    mxg_stlist_candidate_check(c);
    assert_int_equal(mxg_stlist_store_install(s, c, "tampered", err, sizeof err), -1);
    assert_non_null(strstr(err, "signature"));
    assert_non_null(mxg_stlist_store_current(s, (int64_t)time(NULL)));
    /* checked after the store closed, then dropped: no temporary file left */
    c = mxg_stlist_candidate_new(s, a.json, a.json_len, a.sig, a.sig_len);
    mxg_stlist_store_close(s);
    mxg_stlist_candidate_check(c);
    mxg_stlist_candidate_free(c);
    assert_int_equal(dir_entries(dir, &others), 2);
    assert_int_equal(others, 0);
    assert_null(mxg_stlist_candidate_new(NULL, a.json, a.json_len, a.sig, a.sig_len));
    free_signed(&a);
    free(dir);
}

enum reject_kind { RJ_TAMPER, RJ_EVIL, RJ_EMPTY_SIG, RJ_GARBAGE_SIG, RJ_BAD_ARMOR, RJ_NONE };

struct reject_case {
    const char *name;
    const char *ts, *exp; /* of the candidate */
    const char *json;     /* instead of make_list(ts, exp), when set */
    enum reject_kind kind;
    int want;
    const char *err;
};

/* The store holds a list with timestamp 2024-06-01T00:00:00Z. */
static const struct reject_case reject_cases[] = {
    {"tampered after signing", "\"2024-07-01T00:00:00Z\"", "\"2099-01-01T00:00:00Z\"", NULL,
     RJ_TAMPER, -1, "signature: gpgv: BADSIG"},
    {"signed by another key", "\"2024-07-01T00:00:00Z\"", "\"2099-01-01T00:00:00Z\"", NULL,
     RJ_EVIL, -1, "signature: gpgv: NO_PUBKEY"},
    {"unsigned (empty signature)", "\"2024-07-01T00:00:00Z\"", "\"2099-01-01T00:00:00Z\"", NULL,
     RJ_EMPTY_SIG, -1, "signature: empty"},
    {"not an armored signature", "\"2024-07-01T00:00:00Z\"", "\"2099-01-01T00:00:00Z\"", NULL,
     RJ_GARBAGE_SIG, -1, "not an ASCII-armored"},
    {"armor with garbage inside", "\"2024-07-01T00:00:00Z\"", "\"2099-01-01T00:00:00Z\"", NULL,
     RJ_BAD_ARMOR, -1, "signature: gpgv:"},
    {"malformed JSON, signed", NULL, NULL, "{\"timestamp\":", RJ_NONE, -1, "list: JSON:"},
    {"schema error, signed", NULL, NULL,
     "{\"timestamp\":\"2024-07-01T00:00:00Z\",\"expires\":\"2099-01-01T00:00:00Z\","
     "\"policies\":{\"x.com\":{\"mode\":\"enforce\",\"mxs\":[\"*.x.com\"]}}}",
     RJ_NONE, -1, "list: policies.x.com.mxs[0]"},
    {"older", "\"2024-05-31T23:59:59Z\"", "\"2099-01-01T00:00:00Z\"", NULL, RJ_NONE, 0,
     "not newer: timestamp 2024-05-31T23:59:59Z <= current 2024-06-01T00:00:00Z"},
    {"equal", "\"2024-06-01T02:00:00.9+02:00\"", "\"2099-01-01T00:00:00Z\"", NULL, RJ_NONE, 0,
     "not newer: timestamp 2024-06-01T00:00:00Z <= current 2024-06-01T00:00:00Z"},
    {"newer but expired on arrival", "\"2024-07-01T00:00:00Z\"", "\"2024-07-15T00:00:00Z\"",
     NULL, RJ_NONE, -1, "list: expired at 2024-07-15T00:00:00Z"},
};

static void t_store_rejects(void **state)
{
    (void)state;
    char *dir = new_state_dir();
    char err[300];
    struct mxg_stlist_store *s = mxg_stlist_store_open(dir, g_keyring, err, sizeof err);
    assert_non_null(s);
    struct signed_list a = signed_list("\"2024-06-01T00:00:00Z\"", "\"2099-01-01T00:00:00Z\"",
                                       "list");
    assert_int_equal(mxg_stlist_store_offer(s, a.json, a.json_len, a.sig, a.sig_len, "first", err,
                                            sizeof err),
                     1);
    int64_t now = (int64_t)time(NULL);
    const struct mxg_stlist *first = mxg_stlist_store_current(s, now);
    struct mxg_stlist_status st0;
    mxg_stlist_store_status(s, now, &st0);

    for (size_t i = 0; i < ARRAY_LEN(reject_cases); i++) {
        const struct reject_case *c = &reject_cases[i];
        char *js = c->json ? strdup(c->json) : make_list(c->ts, c->exp);
        size_t jl = strlen(js), sl = 0;
        char *sig = NULL;
        switch (c->kind) {
        case RJ_EVIL:
            sig = sign(js, jl, "evil", &sl);
            break;
        case RJ_EMPTY_SIG:
            sig = strdup("");
            break;
        case RJ_GARBAGE_SIG:
            sig = strdup("this is not a signature\n");
            sl = strlen(sig);
            break;
        case RJ_BAD_ARMOR:
            sig = strdup("-----BEGIN PGP SIGNATURE-----\n\nbm90IGEgc2lnbmF0dXJl\n=AAAA\n"
                         "-----END PGP SIGNATURE-----\n");
            sl = strlen(sig);
            break;
        default:
            sig = sign(js, jl, "list", &sl);
            break;
        }
        if (c->kind == RJ_TAMPER)
            js[strstr(js, "enforce") - js] = 'E'; /* "Enforce": also a schema error, but the
                                                     signature is checked first */
        char e[300] = "";
        int rc = mxg_stlist_store_offer(s, js, jl, sig, sl, c->name, e, sizeof e);
        if (rc != c->want) {
            print_error("row '%s': rc %d (%s)\n", c->name, rc, e);
            fail();
        }
        check_substr(c->name, "err", e, c->err);
        /* the current list, its status and the persisted copy are untouched */
        assert_ptr_equal(mxg_stlist_store_current(s, now), first);
        struct mxg_stlist_status st;
        mxg_stlist_store_status(s, now, &st);
        assert_memory_equal(&st, &st0, sizeof st);
        int others;
        assert_int_equal(dir_entries(dir, &others), 2);
        assert_int_equal(others, 0);
        char p[200];
        size_t n;
        snprintf(p, sizeof p, "%s/policy-list.json", dir);
        char *onfile = read_all(p, &n);
        assert_non_null(onfile);
        assert_int_equal(n, a.json_len);
        assert_memory_equal(onfile, a.json, n);
        free(onfile);
        free(js);
        free(sig);
    }
    char e[100];
    assert_int_equal(mxg_stlist_store_offer(s, NULL, 0, a.sig, a.sig_len, NULL, e, sizeof e), -1);
    assert_int_equal(mxg_stlist_store_offer(NULL, a.json, a.json_len, a.sig, a.sig_len, NULL, e,
                                            sizeof e),
                     -1);
    mxg_stlist_store_close(s);
    free_signed(&a);
    free(dir);
}

static void t_store_persist(void **state)
{
    (void)state;
    char *dir = new_state_dir();
    char err[300];
    struct mxg_stlist_store *s = mxg_stlist_store_open(dir, g_keyring, err, sizeof err);
    assert_non_null(s);
    struct signed_list a = signed_list("1717200000", "\"2099-01-01T00:00:00Z\"", "list");
    assert_int_equal(mxg_stlist_store_offer(s, a.json, a.json_len, a.sig, a.sig_len, "file:a",
                                            err, sizeof err),
                     1);
    struct mxg_stlist_status st1;
    mxg_stlist_store_status(s, (int64_t)time(NULL), &st1);
    mxg_stlist_store_close(s);

    /* a new store reloads (and re-verifies) it */
    s = mxg_stlist_store_open(dir, g_keyring, err, sizeof err);
    assert_non_null(s);
    int64_t now = (int64_t)time(NULL);
    struct mxg_stlist_status st;
    mxg_stlist_store_status(s, now, &st);
    assert_int_equal(st.have, 1);
    assert_int_equal(st.timestamp, 1717200000);
    assert_string_equal(st.signer, st1.signer);
    assert_int_equal(st.n_policies, 3);
    check_substr("reloaded", "source", st.source, "policy-list.json");
    assert_true(st.loaded_at > 0 && st.loaded_at <= now);
    const struct mxg_stlist *cur = mxg_stlist_store_current(s, now);
    assert_non_null(cur);
    assert_non_null(mxg_stlist_lookup(cur, "example.com"));
    /* an older list is still refused after the restart */
    struct signed_list old = signed_list("1717199999", "\"2099-01-01T00:00:00Z\"", "list");
    assert_int_equal(mxg_stlist_store_offer(s, old.json, old.json_len, old.sig, old.sig_len, NULL,
                                            err, sizeof err),
                     0);
    check_substr("older after restart", "err", err, "not newer");
    mxg_stlist_store_close(s);
    int others;
    assert_int_equal(dir_entries(dir, &others), 2);
    assert_int_equal(others, 0);

    /* under another keyring the persisted copy is refused, not fatal */
    s = mxg_stlist_store_open(dir, g_evil_keyring, err, sizeof err);
    assert_non_null(s);
    mxg_stlist_store_status(s, now, &st);
    assert_int_equal(st.have, 0);
    mxg_stlist_store_close(s);

    /* a persisted copy changed on disk no longer verifies: refused */
    char p[200];
    snprintf(p, sizeof p, "%s/policy-list.json", dir);
    char *t = strdup(a.json);
    t[strstr(t, "testing.example") - t] = 'T';
    write_file(p, t, strlen(t));
    free(t);
    s = mxg_stlist_store_open(dir, g_keyring, err, sizeof err);
    assert_non_null(s);
    mxg_stlist_store_status(s, now, &st);
    assert_int_equal(st.have, 0);
    assert_null(mxg_stlist_store_current(s, now));
    /* and the next good offer repairs it, even with an older timestamp than
     * the refused copy claimed */
    assert_int_equal(mxg_stlist_store_offer(s, old.json, old.json_len, old.sig, old.sig_len, NULL,
                                            err, sizeof err),
                     1);
    mxg_stlist_store_close(s);
    s = mxg_stlist_store_open(dir, g_keyring, err, sizeof err);
    mxg_stlist_store_status(s, now, &st);
    assert_int_equal(st.have, 1);
    assert_int_equal(st.timestamp, 1717199999);
    mxg_stlist_store_close(s);

    /* only one of the two files: refused */
    char q[200];
    snprintf(q, sizeof q, "%s/policy-list.json.asc", dir);
    assert_int_equal(unlink(q), 0);
    s = mxg_stlist_store_open(dir, g_keyring, err, sizeof err);
    assert_non_null(s);
    mxg_stlist_store_status(s, now, &st);
    assert_int_equal(st.have, 0);
    mxg_stlist_store_close(s);

    free_signed(&a);
    free_signed(&old);
    free(dir);
}

static void t_store_expired(void **state)
{
    (void)state;
    char *dir = new_state_dir();
    char err[300];
    struct mxg_stlist_store *s = mxg_stlist_store_open(dir, g_keyring, err, sizeof err);
    assert_non_null(s);
    struct signed_list a = signed_list("\"2024-06-01T00:00:00Z\"", "4070908800", "list");
    assert_int_equal(mxg_stlist_store_offer(s, a.json, a.json_len, a.sig, a.sig_len, "x", err,
                                            sizeof err),
                     1);
    assert_non_null(mxg_stlist_store_current(s, 4070908799));
    assert_null(mxg_stlist_store_current(s, 4070908800));
    assert_null(mxg_stlist_store_current(s, 4070908801));
    struct mxg_stlist_status st;
    mxg_stlist_store_status(s, 4070908800, &st);
    assert_int_equal(st.have, 1);
    assert_int_equal(st.expired, 1);
    assert_int_equal(st.expires, 4070908800);
    assert_int_equal(st.n_policies, 3);
    mxg_stlist_store_status(s, 4070908799, &st);
    assert_int_equal(st.expired, 0);
    mxg_stlist_store_close(s);
    free_signed(&a);

    /* a persisted copy that has expired since is loaded (status shows it)
     * but never used */
    struct signed_list old = signed_list("\"2020-01-01T00:00:00Z\"", "\"2020-01-15T00:00:00Z\"",
                                         "list");
    char p[200];
    snprintf(p, sizeof p, "%s/policy-list.json", dir);
    write_file(p, old.json, old.json_len);
    snprintf(p, sizeof p, "%s/policy-list.json.asc", dir);
    write_file(p, old.sig, old.sig_len);
    s = mxg_stlist_store_open(dir, g_keyring, err, sizeof err);
    assert_non_null(s);
    int64_t now = (int64_t)time(NULL);
    assert_null(mxg_stlist_store_current(s, now));
    mxg_stlist_store_status(s, now, &st);
    assert_int_equal(st.have, 1);
    assert_int_equal(st.expired, 1);
    assert_int_equal(st.timestamp, 1577836800);
    /* a newer, valid list takes over */
    struct signed_list b = signed_list("\"2024-01-01T00:00:00Z\"", "\"2099-01-01T00:00:00Z\"",
                                       "list");
    assert_int_equal(mxg_stlist_store_offer(s, b.json, b.json_len, b.sig, b.sig_len, "y", err,
                                            sizeof err),
                     1);
    assert_non_null(mxg_stlist_store_current(s, now));
    mxg_stlist_store_close(s);
    free_signed(&old);
    free_signed(&b);
    free(dir);
}

static void t_store_open_errors(void **state)
{
    (void)state;
    char err[300], p[200];
    snprintf(p, sizeof p, "%s/no-such-dir", g_root);
    assert_null(mxg_stlist_store_open(p, g_keyring, err, sizeof err));
    check_substr("missing dir", "err", err, "No such file");
    assert_null(mxg_stlist_store_open(g_keyring, g_keyring, err, sizeof err));
    check_substr("file as dir", "err", err, "not a directory");
    assert_null(mxg_stlist_store_open(g_root, NULL, err, sizeof err));
    assert_null(mxg_stlist_store_open(NULL, g_keyring, err, sizeof err));
    assert_null(mxg_stlist_store_open("", g_keyring, err, sizeof err));
    struct mxg_stlist_status st;
    memset(&st, 0x55, sizeof st);
    mxg_stlist_store_status(NULL, 0, &st);
    assert_int_equal(st.have, 0);
    assert_null(mxg_stlist_store_current(NULL, 0));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_time_table),        cmocka_unit_test(t_json_times),
        cmocka_unit_test(t_parse_good),        cmocka_unit_test(t_mx_match),
        cmocka_unit_test(t_parse_errors),      cmocka_unit_test(t_parse_accepts),
        cmocka_unit_test(t_eff_style),         cmocka_unit_test(t_large),
        cmocka_unit_test(t_gpgv_result),       cmocka_unit_test(t_verify),
        cmocka_unit_test(t_store_offer),       cmocka_unit_test(t_store_candidate),
        cmocka_unit_test(t_store_rejects),
        cmocka_unit_test(t_store_persist),     cmocka_unit_test(t_store_expired),
        cmocka_unit_test(t_store_open_errors),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
