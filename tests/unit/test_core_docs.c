/* tests/unit/test_core_docs.c — the operator-facing files agree with the
 * code: every setting is described in docs/man/mxguard.conf.5 (and the manual
 * describes no setting that does not exist), every metric is named in
 * docs/man/mxguard.8, and every example configuration (etc/examples/NAME.conf)
 * passes `mxguard config check` (the same mxg_config_load()). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>

#include <cmocka.h>

#include "core/config.h"
#include "core/metrics.h"

/* repo-relative path → absolute, from this source file's location */
static void repo_path(char *buf, size_t len, const char *rel)
{
    const char *file = __FILE__;
    const char *slash = strrchr(file, '/');
    int dirlen = slash ? (int)(slash - file) : 1;
    snprintf(buf, len, "%.*s/../../%s", dirlen, slash ? file : ".", rel);
}

static char *slurp(const char *rel)
{
    char path[1024];
    repo_path(path, sizeof path, rel);
    FILE *f = fopen(path, "r");
    if (!f)
        fail_msg("cannot open %s", path);
    char *text = NULL;
    size_t len = 0;
    assert_true(getdelim(&text, &len, '\0', f) > 0);
    fclose(f);
    return text;
}

/* Every "section.key" of the schema, from the dump; n returned. */
static int all_settings(char names[][96], int cap)
{
    struct mxg_config d;
    mxg_config_defaults(&d);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    mxg_config_dump(&d, f);
    fclose(f);
    char section[64] = "";
    int n = 0;
    for (char *p = buf, *nl; (nl = strchr(p, '\n')); p = nl + 1) {
        *nl = '\0';
        if (p[0] >= 'a' && p[0] <= 'z' && nl[-1] == ':')
            snprintf(section, sizeof section, "%.*s", (int)(nl - p - 1), p);
        else if (strncmp(p, "  ", 2) == 0 && n < cap)
            snprintf(names[n++], 96, "%s.%.*s", section, (int)strcspn(p + 2, " ="), p + 2);
    }
    free(buf);
    return n;
}

static void test_manual_describes_every_setting(void **state)
{
    (void)state;
    static char names[256][96];
    int n = all_settings(names, 256);
    assert_true(n > 60);
    char *man = slurp("docs/man/mxguard.conf.5");
    char want[128];
    for (int i = 0; i < n; i++) {
        snprintf(want, sizeof want, "\n.BR %s \"", names[i]);
        if (!strstr(man, want))
            fail_msg("docs/man/mxguard.conf.5 does not describe %s (a line \".BR %s \\\" = DEFAULT\\\"\")",
                     names[i], names[i]);
    }
    /* ... and describes nothing else */
    for (char *p = man; (p = strstr(p, "\n.BR ")); p++) {
        const char *start = p + 5;
        size_t l = strcspn(start, " \n");
        if (strncmp(start + l, " \" = ", 5) != 0)
            continue; /* not a setting line */
        char name[96];
        snprintf(name, sizeof name, "%.*s", (int)l, start);
        int known = 0;
        for (int i = 0; i < n && !known; i++)
            known = strcmp(names[i], name) == 0;
        if (!known)
            fail_msg("docs/man/mxguard.conf.5 describes %s, which is not a setting", name);
    }
    free(man);
}

/* The default in the manual is the default of the code: ".BR s.k \" = V\""
 * with V as the dump writes it (durations and sizes may use a unit). */
static void test_manual_defaults(void **state)
{
    (void)state;
    char *man = slurp("docs/man/mxguard.conf.5");
    static const char *const lines[] = {
        ".BR server.listen \" = [\\(dq127.0.0.1:10025\\(dq]\"",
        ".BR server.user \" = \\(dq\\(dq\"",
        ".BR limits.legs \" = 16\"",
        ".BR log.format \" = \\(dqtext\\(dq\"",
        ".BR metrics.listen \" = \\(dq\\(dq\"",
        ".BR dns.trust_anchor_file \" = \\(dq/usr/share/dns/root.key\\(dq\"",
    };
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++)
        if (!strstr(man, lines[i]))
            fail_msg("docs/man/mxguard.conf.5 lacks [%s]", lines[i]);
    free(man);
}

static void test_manual_names_every_metric(void **state)
{
    (void)state;
    char *man = slurp("docs/man/mxguard.8");
    for (int i = 0; i < MXG_M__COUNT; i++) {
        const char *name = mxg_metrics_name((enum mxg_metric)i);
        if (!strstr(man, name))
            fail_msg("docs/man/mxguard.8 does not name the metric %s", name);
    }
    free(man);
}

static void test_examples_load(void **state)
{
    (void)state;
    char dir[1024], path[1400], err[1024];
    repo_path(dir, sizeof dir, "etc/examples");
    static const char *const expected[] = {"smarthost.conf", "sidecar.conf", "appliance.conf"};
    for (size_t i = 0; i < sizeof expected / sizeof expected[0]; i++) {
        struct mxg_config c;
        snprintf(path, sizeof path, "%s/%s", dir, expected[i]);
        if (mxg_config_load(&c, path, NULL, err, sizeof err) != 0)
            fail_msg("%s", err);
    }
    /* and any other example that is added */
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *e;
    int n = 0;
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (l < 6 || strcmp(e->d_name + l - 5, ".conf") != 0)
            continue;
        struct mxg_config c;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (mxg_config_load(&c, path, NULL, err, sizeof err) != 0)
            fail_msg("%s", err);
        n++;
    }
    closedir(d);
    assert_true(n >= 3);
    /* a few facts each example stands for */
    struct mxg_config c;
    snprintf(path, sizeof path, "%s/sidecar.conf", dir);
    assert_int_equal(mxg_config_load(&c, path, NULL, err, sizeof err), 0);
    assert_string_equal(c.user, "mxguard");
    assert_int_equal(c.log_format, MXG_LOG_JSON);
    snprintf(path, sizeof path, "%s/appliance.conf", dir);
    assert_int_equal(mxg_config_load(&c, path, NULL, err, sizeof err), 0);
    assert_int_equal(c.n_queue_listen, 1);
    snprintf(path, sizeof path, "%s/smarthost.conf", dir);
    assert_int_equal(mxg_config_load(&c, path, NULL, err, sizeof err), 0);
    assert_string_equal(c.metrics_listen, "127.0.0.1:9125");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_manual_describes_every_setting),
        cmocka_unit_test(test_manual_defaults),
        cmocka_unit_test(test_manual_names_every_metric),
        cmocka_unit_test(test_examples_load),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
