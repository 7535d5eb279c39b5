/* tests/unit/test_dns_paths.c — the resolver paths of dns/dns.h per dns.mode
 * (stub: the stub path only; recursive: the recursive path only; auto: both,
 * stub in use first, switchable), their descriptions for the log, and the
 * root hints file of dns.root_hints (parsed at mxg_dns_new: a file without
 * an address, an unreadable one or a malformed record is refused). No query
 * is sent: nothing here reaches a network. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <glob.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cmocka.h>
#include <uv.h>

#include "core/config.h"
#include "dns/dns.h"

struct fx {
    uv_loop_t loop;
    struct mxg_config cfg;
    char dir[64], anchor[96], hints[96];
};

/* Write text to path (the test fails if it cannot). */
static void put(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    assert_non_null(f);
    snprintf(f->dir, sizeof f->dir, "/tmp/mxg-dnspaths.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->anchor, sizeof f->anchor, "%s/root.ds", f->dir);
    snprintf(f->hints, sizeof f->hints, "%s/root.hints", f->dir);
    put(f->anchor, ". 3600 IN DS 20326 8 2 "
                   "E06D44B80B8F1D39A95C0B0D7C65D08458E880409BBC683457104237C7F8EC8D\n");
    put(f->hints, "; test root\n.  3600000  NS  ns.root.example.\n"
                  "ns.root.example.  3600000  A  127.0.70.53\n"
                  "ns.root.example.  3600000  AAAA  ::1\n");
    assert_int_equal(uv_loop_init(&f->loop), 0);
    mxg_config_defaults(&f->cfg);
    struct sockaddr_in *d = (struct sockaddr_in *)&f->cfg.dns_servers[0].sa;
    d->sin_family = AF_INET;
    d->sin_port = htons(5399);
    d->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    f->cfg.n_dns_servers = 1;
    snprintf(f->cfg.trust_anchor_file, sizeof f->cfg.trust_anchor_file, "%s", f->anchor);
    *state = f;
    return 0;
}

/* Debian's getdns 1.6 writes the root hints for libunbound to
 * /tmp/getdns-root-dns-servers-XXXXXX and never removes the file: remove
 * those that hold this test's hints (ns.root.example.). */
static void remove_getdns_hint_files(void)
{
    glob_t g;
    if (glob("/tmp/getdns-root-dns-servers-*", 0, NULL, &g) != 0)
        return;
    for (size_t i = 0; i < g.gl_pathc; i++) {
        char buf[512] = "";
        FILE *fp = fopen(g.gl_pathv[i], "r");
        if (!fp)
            continue;
        size_t n = fread(buf, 1, sizeof buf - 1, fp);
        buf[n] = '\0';
        fclose(fp);
        if (strstr(buf, "ns.root.example."))
            unlink(g.gl_pathv[i]);
    }
    globfree(&g);
}

static int teardown(void **state)
{
    struct fx *f = *state;
    uv_run(&f->loop, UV_RUN_DEFAULT);
    remove_getdns_hint_files();
    assert_int_equal(uv_loop_close(&f->loop), 0);
    unlink(f->anchor);
    unlink(f->hints);
    rmdir(f->dir);
    free(f);
    return 0;
}

/* mxg_dns_new() with mode (and the hints file when set), asserting success. */
static struct mxg_dns *make(struct fx *f, enum mxg_dns_mode mode, int hints)
{
    char err[256] = "";
    f->cfg.dns_mode = mode;
    snprintf(f->cfg.dns_root_hints, sizeof f->cfg.dns_root_hints, "%s", hints ? f->hints : "");
    struct mxg_dns *dns = mxg_dns_new(&f->loop, &f->cfg, err, sizeof err);
    if (!dns)
        fail_msg("mxg_dns_new: %s", err);
    return dns;
}

static void never_called(void *arg, int ok, const char *why)
{
    (void)arg;
    (void)ok;
    (void)why;
    fail_msg("self-check callback of a path that does not exist");
}

static void stub_mode_has_the_stub_path_only(void **state)
{
    struct fx *f = *state;
    struct mxg_dns *dns = make(f, MXG_DNS_STUB, 1);
    assert_true(mxg_dns_has_path(dns, MXG_DNS_PATH_STUB));
    assert_false(mxg_dns_has_path(dns, MXG_DNS_PATH_RECURSIVE));
    assert_int_equal(mxg_dns_path_in_use(dns), MXG_DNS_PATH_STUB);
    assert_int_equal(mxg_dns_set_path(dns, MXG_DNS_PATH_RECURSIVE), -1);
    assert_int_equal(mxg_dns_path_in_use(dns), MXG_DNS_PATH_STUB);
    assert_int_equal(mxg_dns_selfcheck_path(dns, MXG_DNS_PATH_RECURSIVE, never_called, NULL), -1);
    assert_string_equal(mxg_dns_path_desc(dns, MXG_DNS_PATH_STUB), "127.0.0.1:5399 over TCP");
    mxg_dns_free(dns);
}

static void recursive_mode_has_the_recursive_path_only(void **state)
{
    struct fx *f = *state;
    struct mxg_dns *dns = make(f, MXG_DNS_RECURSIVE, 1);
    assert_false(mxg_dns_has_path(dns, MXG_DNS_PATH_STUB));
    assert_true(mxg_dns_has_path(dns, MXG_DNS_PATH_RECURSIVE));
    assert_int_equal(mxg_dns_path_in_use(dns), MXG_DNS_PATH_RECURSIVE);
    assert_int_equal(mxg_dns_set_path(dns, MXG_DNS_PATH_STUB), -1);
    assert_int_equal(mxg_dns_selfcheck_path(dns, MXG_DNS_PATH_STUB, never_called, NULL), -1);
    char want[200];
    snprintf(want, sizeof want, "the root servers (dns.root_hints %s)", f->hints);
    assert_string_equal(mxg_dns_path_desc(dns, MXG_DNS_PATH_RECURSIVE), want);
    mxg_dns_free(dns);
}

static void auto_mode_has_both_and_switches(void **state)
{
    struct fx *f = *state;
    struct mxg_dns *dns = make(f, MXG_DNS_AUTO, 0);
    assert_true(mxg_dns_has_path(dns, MXG_DNS_PATH_STUB));
    assert_true(mxg_dns_has_path(dns, MXG_DNS_PATH_RECURSIVE));
    assert_int_equal(mxg_dns_path_in_use(dns), MXG_DNS_PATH_STUB);
    assert_int_equal(mxg_dns_set_path(dns, MXG_DNS_PATH_RECURSIVE), 0);
    assert_int_equal(mxg_dns_path_in_use(dns), MXG_DNS_PATH_RECURSIVE);
    assert_int_equal(mxg_dns_set_path(dns, MXG_DNS_PATH_STUB), 0);
    assert_int_equal(mxg_dns_path_in_use(dns), MXG_DNS_PATH_STUB);
    assert_string_equal(mxg_dns_path_desc(dns, MXG_DNS_PATH_RECURSIVE),
                        "the root servers (built-in hints)");
    assert_string_equal(mxg_dns_path_name(MXG_DNS_PATH_RECURSIVE), "recursive");
    assert_string_equal(mxg_dns_path_name(MXG_DNS_PATH_STUB), "stub");
    mxg_dns_free(dns);
}

/* mxg_dns_new() with the hints file holding text must fail with an error containing want. */
static void hints_refused(struct fx *f, const char *text, const char *want)
{
    char err[256] = "";
    if (text)
        put(f->hints, text);
    else
        unlink(f->hints);
    f->cfg.dns_mode = MXG_DNS_AUTO;
    snprintf(f->cfg.dns_root_hints, sizeof f->cfg.dns_root_hints, "%s", f->hints);
    struct mxg_dns *dns = mxg_dns_new(&f->loop, &f->cfg, err, sizeof err);
    if (dns) {
        mxg_dns_free(dns);
        fail_msg("root hints accepted: %s", text ? text : "(no file)");
    }
    if (!strstr(err, want))
        fail_msg("error \"%s\" does not say \"%s\"", err, want);
}

static void bad_root_hints_are_refused(void **state)
{
    struct fx *f = *state;
    hints_refused(f, ".  3600000  NS  ns.root.example.\n", "holds no A or AAAA record");
    hints_refused(f, "ns.root.example. 3600000 A 127.0.70.53\n", "holds no NS record for \".\"");
    hints_refused(f, "ns.root.example. 3600000 A not-an-address\n", "cannot parse");
    hints_refused(f, NULL, "No such file");
    /* stub mode never reads it */
    f->cfg.dns_mode = MXG_DNS_STUB;
    char err[256];
    struct mxg_dns *dns = mxg_dns_new(&f->loop, &f->cfg, err, sizeof err);
    assert_non_null(dns);
    mxg_dns_free(dns);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(stub_mode_has_the_stub_path_only, setup, teardown),
        cmocka_unit_test_setup_teardown(recursive_mode_has_the_recursive_path_only, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(auto_mode_has_both_and_switches, setup, teardown),
        cmocka_unit_test_setup_teardown(bad_root_hints_are_refused, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
