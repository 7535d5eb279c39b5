/* tests/unit/test_app_status.c — the status page's parts (app/status.h):
 * escaping, the SVG chart from a fixed table, the basic-auth check and the
 * loopback rule, today's tally and the pages with hostile names. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <arpa/inet.h>

#include "app/status.h"
#include "policy/requirement.h"

#define HOSTILE "<script>alert(\"x\")</script>&'x.example"

/* The text of b (NUL-terminated). */
static const char *text(struct mxg_buf *b)
{
    return b->len ? mxg_buf_cstr(b) : "";
}

static void test_escape(void **state)
{
    (void)state;
    struct mxg_buf b = {0};
    assert_int_equal(mxg_status_esc(&b, HOSTILE), 0);
    assert_string_equal(text(&b), "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;&#39;"
                                  "x.example");
    mxg_buf_reset(&b);
    assert_int_equal(mxg_status_esc(&b, "a\x01\x7f\xc3\xa9z\nb"), 0);
    assert_string_equal(text(&b), "a??\xc3\xa9z\nb"); /* UTF-8 kept, newlines kept for <pre> */
    mxg_buf_reset(&b);
    /* malformed UTF-8: a lone lead, a stray continuation, an overlong '<', a surrogate, > U+10FFFF */
    assert_int_equal(mxg_status_esc(&b, "\xc3(\x80|\xc0\xbc|\xed\xa0\x80|\xf4\x90\x80\x80|"
                                        "\xe2\x80\x94"),
                     0);
    assert_string_equal(text(&b), "?(?|??|???|????|\xe2\x80\x94");
    mxg_buf_reset(&b);
    assert_int_equal(mxg_status_esc(&b, NULL), 0);
    assert_int_equal(b.len, 0);
    assert_int_equal(mxg_status_esc_path(&b, "a-b.c_d/<\"> %"), 0);
    assert_string_equal(text(&b), "a-b.c_d%2F%3C%22%3E%20%25");
    mxg_buf_free(&b);
    assert_int_equal(mxg_status_name_ok("example.org"), 1);
    assert_int_equal(mxg_status_name_ok(HOSTILE), 1); /* escaped when shown, not refused */
    assert_int_equal(mxg_status_name_ok(""), 0);
    assert_int_equal(mxg_status_name_ok("a\x7f"), 0);
    assert_int_equal(mxg_status_name_ok("a\nb"), 0);
}

static void test_svg(void **state)
{
    (void)state;
    const struct mxg_status_day days[3] = {
        {"2026-12-05", 10, 0}, {"2026-12-06", 30, 10}, {"2026-12-07", 0, 0}};
    struct mxg_buf b = {0};
    assert_int_equal(mxg_status_svg(&b, days, 3), 0);
    const char *s = text(&b);
    assert_true(strncmp(s, "<svg xmlns=\"http://www.w3.org/2000/svg\"", 39) == 0);
    assert_non_null(strstr(s, "</svg>\n"));
    /* the scale: max 40 → 50; labels 0, 25, 50 */
    assert_non_null(strstr(s, ">50</text>"));
    assert_non_null(strstr(s, ">25</text>"));
    assert_non_null(strstr(s, ">0</text>"));
    /* day 2: 30 ok = 102 px, 10 failed = 34 px on a plot of 170 px for 50 */
    assert_non_null(strstr(s, "<title>2026-12-06: 30 successful, 10 failed</title>"
                              "<rect x=\"82\" y=\"80\" width=\"17\" height=\"102\" class=\"ok\""));
    assert_non_null(strstr(s, "<rect x=\"82\" y=\"46\" width=\"17\" height=\"34\" class=\"fail\""));
    /* an empty day: zero-height bars */
    assert_non_null(strstr(s, "<title>2026-12-07: 0 successful, 0 failed</title>"
                              "<rect x=\"105\" y=\"182\" width=\"17\" height=\"0\""));
    assert_non_null(strstr(s, ">2026-12-05</text>"));
    assert_non_null(strstr(s, ">2026-12-07</text>"));
    assert_null(strstr(s, "<script"));
    /* a day that is not a date is not drawn */
    struct mxg_status_day bad = {"<b>x</b>", 1, 1};
    mxg_buf_reset(&b);
    assert_int_equal(mxg_status_svg(&b, &bad, 1), 0);
    assert_null(strstr(text(&b), "<b>"));
    mxg_buf_reset(&b);
    assert_int_equal(mxg_status_svg(&b, NULL, 0), 0); /* empty: axes only */
    assert_non_null(strstr(text(&b), ">1</text>"));
    mxg_buf_free(&b);
}

static void test_auth(void **state)
{
    (void)state;
    char path[] = "/tmp/mxg-status-creds-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *file = "# status users\n\nops:s3cret:with:colons\nalice:pw\n";
    assert_int_equal(write(fd, file, strlen(file)), (ssize_t)strlen(file));
    close(fd);
    struct mxg_status_creds c;
    char err[300];
    assert_int_equal(mxg_status_creds_load(path, &c, err, sizeof err), 0);
    assert_int_equal(c.n, 2);
    /* base64("ops:s3cret:with:colons"), base64("alice:pw") */
    assert_int_equal(mxg_status_auth_check(&c, "Basic b3BzOnMzY3JldDp3aXRoOmNvbG9ucw=="), 1);
    assert_int_equal(mxg_status_auth_check(&c, "basic YWxpY2U6cHc="), 1);
    assert_int_equal(mxg_status_auth_check(&c, "Basic YWxpY2U6cHc"), 0);     /* not base64 */
    assert_int_equal(mxg_status_auth_check(&c, "Basic YWxpY2U6cHg="), 0);    /* alice:px */
    assert_int_equal(mxg_status_auth_check(&c, "Basic YWxpY2U6cHd4"), 0);    /* alice:pwx */
    assert_int_equal(mxg_status_auth_check(&c, "Basic YWxpY2U="), 0);        /* alice */
    assert_int_equal(mxg_status_auth_check(&c, "Bearer YWxpY2U6cHc="), 0);
    assert_int_equal(mxg_status_auth_check(&c, ""), 0);
    assert_int_equal(mxg_status_auth_check(&c, NULL), 0);
    /* a file without a pair, or with a bad line, is refused */
    FILE *f = fopen(path, "w");
    fputs("# nothing\n", f);
    fclose(f);
    assert_int_equal(mxg_status_creds_load(path, &c, err, sizeof err), -1);
    f = fopen(path, "w");
    fputs("nocolon\n", f);
    fclose(f);
    assert_int_equal(mxg_status_creds_load(path, &c, err, sizeof err), -1);
    assert_non_null(strstr(err, ":1: not"));
    /* a line longer than the reader's buffer is refused, not split into two pairs (its tail
     * "x:y" would otherwise be a password the operator never wrote) */
    f = fopen(path, "w");
    fputs("alice:", f);
    for (int i = 0; i < 1100; i++)
        fputc('p', f);
    fputs("x:y\n", f);
    fclose(f);
    assert_int_equal(mxg_status_creds_load(path, &c, err, sizeof err), -1);
    assert_non_null(strstr(err, ":1: longer than"));
    unlink(path);
    assert_int_equal(mxg_status_creds_load(path, &c, err, sizeof err), -1);

    struct sockaddr_in s4;
    struct sockaddr_in6 s6;
    uv_ip4_addr("127.0.0.2", 0, &s4);
    assert_int_equal(mxg_status_client_loopback((struct sockaddr *)&s4), 1);
    uv_ip4_addr("10.0.0.1", 0, &s4);
    assert_int_equal(mxg_status_client_loopback((struct sockaddr *)&s4), 0);
    uv_ip6_addr("::1", 0, &s6);
    assert_int_equal(mxg_status_client_loopback((struct sockaddr *)&s6), 1);
    uv_ip6_addr("::ffff:127.0.0.1", 0, &s6);
    assert_int_equal(mxg_status_client_loopback((struct sockaddr *)&s6), 1);
    uv_ip6_addr("::ffff:192.0.2.1", 0, &s6);
    assert_int_equal(mxg_status_client_loopback((struct sockaddr *)&s6), 0);
    uv_ip6_addr("2001:db8::1", 0, &s6);
    assert_int_equal(mxg_status_client_loopback((struct sockaddr *)&s6), 0);
}

static void test_track_and_pages(void **state)
{
    (void)state;
    int64_t day1 = 20000 * 86400LL + 3600;
    struct mxg_status_track *t = mxg_status_track_new(day1);
    assert_non_null(t);
    struct mxg_req dane = {.source = MXG_REQ_SRC_DANE};
    struct mxg_req testing = {.source = MXG_REQ_SRC_MTA_STS, .pki_mode = MXG_STS_MODE_TESTING};
    struct mxg_reply fail = {.code = 451, .enh = "4.7.5"};
    snprintf(fail.text, sizeof fail.text, "DANE: no TLSA record matched %s", HOSTILE);
    struct mxg_leg_outcome o = {.domain = "ok.example", .ok = 1, .req = &testing};
    mxg_status_track_add(t, &o, day1);
    mxg_status_track_add(t, &o, day1 + 1);
    o = (struct mxg_leg_outcome){.domain = HOSTILE, .ok = 0, .reply = &fail, .req = &dane};
    mxg_status_track_add(t, &o, day1 + 2);
    o = (struct mxg_leg_outcome){.domain = "OK.example", .ok = 0, .reply = &fail, .req = NULL};
    mxg_status_track_add(t, &o, day1 + 3);

    const struct mxg_status_dest *const *d;
    uint64_t others = 9;
    assert_int_equal(mxg_status_track_list(t, day1 + 4, &d, &others), 2);
    assert_int_equal(others, 0);
    assert_string_equal(d[0]->domain, HOSTILE); /* DANE sorts first */
    assert_int_equal(d[0]->fail, 1);
    assert_string_equal(d[1]->domain, "ok.example"); /* one entry, case-insensitive */
    assert_int_equal(d[1]->ok, 2);
    assert_int_equal(d[1]->fail, 1);
    assert_int_equal(d[1]->src, MXG_ST_UNDECIDED); /* the last leg decided no host */
    assert_non_null(strstr(d[1]->last_fail, "451 4.7.5 DANE: no TLSA record matched <script>"));
    assert_ptr_equal(mxg_status_track_find(t, day1 + 4, "OK.EXAMPLE"), d[1]);
    assert_null(mxg_status_track_find(t, day1 + 4, "other.example"));

    /* the main page: hostile strings escaped everywhere, no script */
    struct mxg_status_view v = {.now = day1 + 4, .version = "test", .dns_mode = "stub",
                                .db_backend = "sqlite", .dnssec_state = 1, .spool_open = 1,
                                .rpt_open = 1};
    snprintf(v.dnssec_why, sizeof v.dnssec_why, "DNSKEY . is secure <b>");
    struct mxg_buf b = {0};
    assert_int_equal(mxg_status_html_main(&b, &v, d, 2, 0), 0);
    const char *s = text(&b);
    assert_null(strstr(s, "<script"));
    assert_null(strstr(s, "<b>"));
    assert_non_null(strstr(s, "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;&#39;"));
    assert_non_null(strstr(s, "href=\"/status/domain/%3Cscript%3Ealert%28%22x%22%29%3C%2F"
                              "script%3E%26%27x.example\""));
    assert_non_null(strstr(s, "<h3>DANE (1 domain)</h3>"));
    assert_non_null(strstr(s, "<h3>no MX host decided (1 domain)</h3>"));
    assert_non_null(strstr(s, "<svg "));
    /* the domain page, and one for a name not seen today */
    mxg_buf_reset(&b);
    assert_int_equal(mxg_status_html_domain(&b, d[0]->domain, d[0], day1 + 4), 0);
    s = text(&b);
    assert_null(strstr(s, "<script"));
    assert_non_null(strstr(s, "<h1>&lt;script&gt;"));
    assert_non_null(strstr(s, "(none recorded)"));
    mxg_buf_reset(&b);
    assert_int_equal(mxg_status_html_domain(&b, "<img src=x>", NULL, day1 + 4), 0);
    assert_null(strstr(text(&b), "<img"));

    /* the next UTC day starts afresh */
    assert_int_equal(mxg_status_track_list(t, day1 + 86400, &d, &others), 0);
    mxg_buf_free(&b);
    mxg_status_track_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_escape),
        cmocka_unit_test(test_svg),
        cmocka_unit_test(test_auth),
        cmocka_unit_test(test_track_and_pages),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
