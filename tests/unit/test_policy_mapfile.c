/* tests/unit/test_policy_mapfile.c — the shared map-file loader
 * (policy/mapfile.h mxg_mapfile_table_*), independent of any one map:
 * empty and comment-only files, a key without a value, the line length
 * limit, missing and unreadable files, key normalisation, "*" per spec,
 * duplicate keys, errors as "NAME:LINE: reason", and what the entry
 * callback is handed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "policy/mapfile.h"

/* A test map: KEY [VALUE ...]; the callback records what it was given. */
struct kv {
    char key[MXG_MAPFILE_KEY_MAX];
    int line;
    int nf;          /* fields on the line, the key included */
    char value[64];  /* f[1], "" when there is none */
    int zeroed;      /* value[] and nf were zero when the callback ran */
};

/* Accepts any number of values. */
static int kv_lenient(void *entry, const struct mxg_mapfile_line *l, char *why, size_t whylen)
{
    struct kv *e = entry;
    (void)why;
    (void)whylen;
    e->zeroed = e->nf == 0 && e->value[0] == 0;
    e->nf = l->nf;
    if (l->nf > 1)
        snprintf(e->value, sizeof e->value, "%s", l->f[1]);
    return 0;
}

/* Wants exactly one value; "bad" is refused. */
static int kv_strict(void *entry, const struct mxg_mapfile_line *l, char *why, size_t whylen)
{
    struct kv *e = entry;
    if (l->nf != 2) {
        snprintf(why, whylen, "%s: want one value, got %d", e->key, l->nf - 1);
        return -1;
    }
    if (strcmp(l->f[1], "bad") == 0) {
        snprintf(why, whylen, "%s: bad value", e->key);
        return -1;
    }
    return kv_lenient(entry, l, why, whylen);
}

static const struct mxg_mapfile_spec lenient_spec = {
    .size = sizeof(struct kv),
    .key_off = offsetof(struct kv, key),
    .line_off = offsetof(struct kv, line),
    .star = 1,
    .parse_entry = kv_lenient,
};

static const struct mxg_mapfile_spec strict_spec = {
    .size = sizeof(struct kv),
    .key_off = offsetof(struct kv, key),
    .line_off = offsetof(struct kv, line),
    .star = 0,
    .parse_entry = kv_strict,
};

static void parse_ok(struct mxg_mapfile_table *t, const struct mxg_mapfile_spec *spec,
                     const char *text)
{
    char err[512] = "";
    if (mxg_mapfile_table_parse(t, spec, text, strlen(text), "m", err, sizeof err) != 0)
        fail_msg("unexpected error: %s", err);
}

/* Parse text (len octets) with spec: must fail with err containing want and
 * leave t empty. */
static void parse_fails_n(const struct mxg_mapfile_spec *spec, const char *text, size_t len,
                          const char *want)
{
    struct mxg_mapfile_table t;
    char err[512] = "";
    memset(&t, 0x5a, sizeof t); /* the loader must not rely on a zeroed table */
    if (mxg_mapfile_table_parse(&t, spec, text, len, "m", err, sizeof err) != -1)
        fail_msg("[%.40s]: expected an error", text);
    if (!strstr(err, want))
        fail_msg("[%.40s]: error [%s] lacks [%s]", text, err, want);
    assert_int_equal(t.n, 0);
    assert_null(t.e);
}

static void parse_fails(const struct mxg_mapfile_spec *spec, const char *text, const char *want)
{
    parse_fails_n(spec, text, strlen(text), want);
}

/* Write text to a new temporary file; its path in path (cap >= 32). */
static void temp_file(char *path, size_t cap, const char *text)
{
    snprintf(path, cap, "/tmp/mxg-mapfile-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_empty_and_comment_only(void **state)
{
    (void)state;
    static const char *const texts[] = {"", "\n\n", "# only a comment", "  # indented\n\t\n",
                                        "# a\r\n#b c d\r\n   \r\n"};
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        struct mxg_mapfile_table t;
        parse_ok(&t, &strict_spec, texts[i]);
        assert_int_equal(t.n, 0);
        assert_string_equal(t.source, "m");
        assert_null(mxg_mapfile_table_entry(&t, 0));
        assert_null(mxg_mapfile_table_find(&t, "example.com"));
        mxg_mapfile_table_clear(&t);
    }
    /* the same from files */
    char path[64];
    temp_file(path, sizeof path, "");
    struct mxg_mapfile_table t;
    char err[512] = "";
    assert_int_equal(mxg_mapfile_table_load(&t, &strict_spec, path, err, sizeof err), 0);
    assert_int_equal(t.n, 0);
    assert_string_equal(t.source, path);
    mxg_mapfile_table_clear(&t);
    unlink(path);
    temp_file(path, sizeof path, "# nothing\n# here\n");
    assert_int_equal(mxg_mapfile_table_load(&t, &strict_spec, path, err, sizeof err), 0);
    assert_int_equal(t.n, 0);
    mxg_mapfile_table_clear(&t);
    unlink(path);
}

static void test_entries(void **state)
{
    (void)state;
    struct mxg_mapfile_table t;
    parse_ok(&t, &lenient_spec,
             "# header\n"
             "Example.COM.\tv1   # trailing comment\r\n"
             "\n"
             "   .sub.example.com  v2 extra fields\n"
             "*  v3\n"
             "novalue.test\n");
    assert_int_equal(t.n, 4);
    assert_string_equal(t.source, "m");
    /* key order, each with its line, fields and a zeroed struct */
    static const struct {
        const char *key, *value;
        int line, nf;
    } want[] = {
        {"*", "v3", 5, 2},
        {".sub.example.com", "v2", 4, 4},
        {"example.com", "v1", 2, 2},
        {"novalue.test", "", 6, 1},
    };
    for (int i = 0; i < 4; i++) {
        const struct kv *e = mxg_mapfile_table_entry(&t, i);
        assert_non_null(e);
        if (strcmp(e->key, want[i].key) || strcmp(e->value, want[i].value) ||
            e->line != want[i].line || e->nf != want[i].nf || !e->zeroed)
            fail_msg("entry %d: key %s value %s line %d nf %d zeroed %d", i, e->key, e->value,
                     e->line, e->nf, e->zeroed);
    }
    assert_null(mxg_mapfile_table_entry(&t, 4));
    assert_null(mxg_mapfile_table_entry(&t, -1));
    assert_null(mxg_mapfile_table_entry(NULL, 0));

    /* lookup: exact, nearest parent form, then "*" (the spec allows it) */
    const struct kv *e = mxg_mapfile_table_find(&t, "EXAMPLE.com.");
    assert_non_null(e);
    assert_string_equal(e->key, "example.com");
    e = mxg_mapfile_table_find(&t, "a.b.sub.example.com");
    assert_string_equal(e->key, ".sub.example.com");
    e = mxg_mapfile_table_find(&t, "sub.example.com");
    assert_string_equal(e->key, "*");
    assert_null(mxg_mapfile_table_find(&t, NULL));
    assert_null(mxg_mapfile_table_find(NULL, "example.com"));
    mxg_mapfile_table_clear(&t);
    assert_int_equal(t.n, 0);
    assert_null(t.e);
    mxg_mapfile_table_clear(&t); /* twice, and NULL: harmless */
    mxg_mapfile_table_clear(NULL);
}

static void test_line_without_value(void **state)
{
    (void)state;
    /* the loader hands the lone key to the map, which decides */
    parse_fails(&strict_spec, "a.test 1\n\nb.test\n", "m:3: b.test: want one value, got 0");
    parse_fails(&strict_spec, "a.test 1 2\n", "m:1: a.test: want one value, got 2");
    parse_fails(&strict_spec, "# c\na.test bad\n", "m:2: a.test: bad value");
    struct mxg_mapfile_table t;
    parse_ok(&t, &lenient_spec, "b.test\n");
    assert_int_equal(t.n, 1);
    assert_int_equal(((const struct kv *)mxg_mapfile_table_entry(&t, 0))->nf, 1);
    mxg_mapfile_table_clear(&t);
}

static void test_long_lines(void **state)
{
    (void)state;
    /* MXG_MAPFILE_LINE_MAX characters are allowed, one more is not */
    size_t n = MXG_MAPFILE_LINE_MAX + 1;
    char *text = malloc(n + 64);
    assert_non_null(text);
    int k = snprintf(text, n + 64, "ok.test v\nlong.test ");
    memset(text + k, 'x', MXG_MAPFILE_LINE_MAX - 10);
    text[k + MXG_MAPFILE_LINE_MAX - 10] = '\n';
    text[k + MXG_MAPFILE_LINE_MAX - 10 + 1] = 0;
    struct mxg_mapfile_table t;
    parse_ok(&t, &lenient_spec, text);
    assert_int_equal(t.n, 2);
    mxg_mapfile_table_clear(&t);
    /* one more character on line 2 */
    memset(text + k, 'x', MXG_MAPFILE_LINE_MAX - 9);
    text[k + MXG_MAPFILE_LINE_MAX - 9] = '\n';
    text[k + MXG_MAPFILE_LINE_MAX - 9 + 1] = 0;
    char want[80];
    snprintf(want, sizeof want, "m:2: line longer than %d characters", MXG_MAPFILE_LINE_MAX);
    parse_fails(&lenient_spec, text, want);
    free(text);
}

static void test_bad_text(void **state)
{
    (void)state;
    static const char nul[] = "a.test v\nb.test\0v\n";
    parse_fails_n(&lenient_spec, nul, sizeof nul - 1, "m:2: NUL octet");
    parse_fails(&lenient_spec, "a.test v\x01\n", "m:1: control character 0x01");
    parse_fails(&lenient_spec, "a.test v\n\xff.test v\n", "m:2: non-ASCII octet 0xff");
    parse_fails(&lenient_spec, "a..test v\n", "m:1: destination \"a..test\": empty label");
    /* "*" only where the spec allows it */
    parse_fails(&strict_spec, "* v\n", "m:1: destination \"*\": \"*\" is not allowed here");
    /* duplicates after normalisation: the later line, naming the earlier */
    parse_fails(&lenient_spec, "x.test\na.test v\nb.test\nA.TEST. w\n",
                "m:4: a.test: listed twice (also at line 2)");
    parse_fails(&lenient_spec, "* a\n* b\n", "m:2: *: listed twice (also at line 1)");
}

static void test_files(void **state)
{
    (void)state;
    char path[64], err[512] = "";
    struct mxg_mapfile_table t;
    temp_file(path, sizeof path, "a.test 1\nb.test bad\n");
    assert_int_equal(mxg_mapfile_table_load(&t, &strict_spec, path, err, sizeof err), -1);
    assert_int_equal(t.n, 0);
    char want[600];
    snprintf(want, sizeof want, "%s:2: b.test: bad value", path);
    assert_string_equal(err, want);
    unlink(path);

    /* missing: the error names the file and says why */
    memset(&t, 0x5a, sizeof t);
    assert_int_equal(mxg_mapfile_table_load(&t, &strict_spec, path, err, sizeof err), -1);
    snprintf(want, sizeof want, "%s: cannot open: No such file or directory", path);
    assert_string_equal(err, want);
    assert_int_equal(t.n, 0);
    assert_null(t.e);
    assert_int_equal(mxg_mapfile_table_load(&t, &strict_spec, "/tmp", err, sizeof err), -1);
    assert_string_equal(err, "/tmp: cannot open: not a regular file");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty_and_comment_only),
        cmocka_unit_test(test_entries),
        cmocka_unit_test(test_line_without_value),
        cmocka_unit_test(test_long_lines),
        cmocka_unit_test(test_bad_text),
        cmocka_unit_test(test_files),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
