/* tests/unit/test_app_status.c — the status page's parts (app/status.h):
 * escaping, the SVG chart from a fixed table, the basic-auth check and the
 * loopback rule, today's tally and the pages with hostile names, and the
 * merge of several workers' tallies (a restarted writer, one that died
 * mid-update, the UTC day, the bounded table). */
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
#include <pthread.h>

#include "app/status.h"
#include "app/status_table.h"
#include "policy/requirement.h"
#include "proxy/outbound/leg_int.h"

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

/* The merge of one tally: every domain of the day of now. */
static struct mxg_status_merged *merge1(struct mxg_status_track *t, int64_t now, const char *only)
{
    struct mxg_status_table *tb = mxg_status_track_table(t);
    struct mxg_status_merged *m = mxg_status_merge(&tb, 1, now, only);
    assert_non_null(m);
    return m;
}

static void test_track_and_pages(void **state)
{
    (void)state;
    int64_t day1 = 20000 * 86400LL + 3600;
    struct mxg_status_track *t = mxg_status_track_new(day1, NULL, NULL);
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

    struct mxg_status_merged *m = merge1(t, day1 + 4, NULL);
    const struct mxg_status_dest *const *d = m->sorted;
    assert_int_equal(m->n, 2);
    assert_int_equal(m->others, 0);
    assert_int_equal(m->skipped, 0);
    assert_string_equal(d[0]->domain, HOSTILE); /* DANE sorts first */
    assert_int_equal(d[0]->fail, 1);
    assert_string_equal(d[1]->domain, "ok.example"); /* one entry, case-insensitive */
    assert_int_equal(d[1]->ok, 2);
    assert_int_equal(d[1]->fail, 1);
    assert_int_equal(d[1]->src, MXG_ST_UNDECIDED); /* the last leg decided no host */
    assert_non_null(strstr(d[1]->last_fail, "451 4.7.5 DANE: no TLSA record matched <script>"));
    struct mxg_status_merged *one = merge1(t, day1 + 4, "OK.EXAMPLE");
    assert_int_equal(one->n, 1);
    assert_string_equal(one->dest[0].domain, "ok.example");
    assert_int_equal(one->dest[0].ok, 2);
    mxg_status_merged_free(one);
    one = merge1(t, day1 + 4, "other.example");
    assert_int_equal(one->n, 0);
    mxg_status_merged_free(one);

    /* the main page: hostile strings escaped everywhere, no script */
    struct mxg_status_view v = {.now = day1 + 4, .version = "test", .dns_mode = "stub",
                                .db_backend = "sqlite", .dnssec_state = 1, .spool_open = 1,
                                .rpt_open = 1, .n_workers = 1};
    snprintf(v.dnssec_why, sizeof v.dnssec_why, "DNSKEY . is secure <b>");
    struct mxg_buf b = {0};
    assert_int_equal(mxg_status_html_main(&b, &v, m), 0);
    const char *s = text(&b);
    assert_null(strstr(s, "<script"));
    assert_null(strstr(s, "<b>"));
    assert_non_null(strstr(s, "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;&#39;"));
    assert_non_null(strstr(s, "href=\"/status/domain/%3Cscript%3Ealert%28%22x%22%29%3C%2F"
                              "script%3E%26%27x.example\""));
    assert_non_null(strstr(s, "<h3>DANE (1 domain)</h3>"));
    assert_non_null(strstr(s, "<h3>no MX host decided (1 domain)</h3>"));
    assert_non_null(strstr(s, "<svg "));
    assert_null(strstr(s, "workers' deliveries")); /* one process: no word of workers */
    /* the domain page, and one for a name not seen today */
    mxg_buf_reset(&b);
    assert_int_equal(mxg_status_html_domain(&b, d[0]->domain, d[0], day1 + 4), 0);
    s = text(&b);
    assert_null(strstr(s, "<script"));
    assert_non_null(strstr(s, "<h1>&lt;script&gt;"));
    assert_non_null(strstr(s, "(none kept:"));
    mxg_buf_reset(&b);
    assert_int_equal(mxg_status_html_domain(&b, "<img src=x>", NULL, day1 + 4), 0);
    assert_null(strstr(text(&b), "<img"));
    mxg_status_merged_free(m);

    /* the next UTC day starts afresh: the reader drops yesterday's entries even before
     * the writer has rolled over (no leg since midnight) */
    m = merge1(t, day1 + 86400, NULL);
    assert_int_equal(m->n, 0);
    mxg_status_merged_free(m);
    o = (struct mxg_leg_outcome){.domain = "new.example", .ok = 1, .req = &dane};
    mxg_status_track_add(t, &o, day1 + 86400);
    m = merge1(t, day1 + 86400, NULL);
    assert_int_equal(m->n, 1);
    assert_string_equal(m->dest[0].domain, "new.example");
    mxg_status_merged_free(m);
    mxg_buf_free(&b);
    mxg_status_track_free(t);
}

/* A leg for the decision text: a domain, no route. */
static struct mxg_leg *fake_leg(const char *domain)
{
    struct mxg_leg *leg = calloc(1, sizeof *leg);
    assert_non_null(leg);
    snprintf(leg->domain, sizeof leg->domain, "%s", domain);
    return leg;
}

/* Two workers' tallies, merged: sums, the latest leg's source and failure, the latest
 * decision text wherever it was made, the page's word of workers. */
static void test_merge_workers(void **state)
{
    (void)state;
    int64_t now = 20001 * 86400LL + 7200;
    struct mxg_status_table *tb[3] = {calloc(1, mxg_status_table_size()), NULL,
                                      calloc(1, mxg_status_table_size())};
    assert_non_null(tb[0]);
    assert_non_null(tb[2]);
    struct mxg_status_track *w0 = mxg_status_track_new(now, tb[0], NULL);
    struct mxg_status_track *w1 = mxg_status_track_new(now, tb[2], NULL);
    assert_ptr_equal(mxg_status_track_table(w1), tb[2]);
    struct mxg_req dane = {.source = MXG_REQ_SRC_DANE};
    struct mxg_req opp = {.source = MXG_REQ_SRC_OPPORTUNISTIC};
    struct mxg_reply r1 = {.code = 451, .enh = "4.7.5", .text = "first"};
    struct mxg_reply r2 = {.code = 550, .enh = "5.7.1", .text = "second"};
    struct mxg_leg *leg = fake_leg("both.example");
    struct mxg_leg *leg0 = fake_leg("BOTH.EXAMPLE"); /* worker 0's text, told apart */

    /* worker 0: both.example twice ok, a failure at now+1; worker 1: a later failure at
     * now+5 under another source; only1.example only on worker 1 */
    struct mxg_leg_outcome o = {.domain = "both.example", .ok = 1, .req = &opp};
    mxg_status_track_add(w0, &o, now);
    mxg_status_track_add(w0, &o, now);
    o = (struct mxg_leg_outcome){.domain = "both.example", .ok = 0, .reply = &r1, .req = &opp,
                                 .leg = leg0};
    mxg_status_track_add(w0, &o, now + 1);
    o = (struct mxg_leg_outcome){.domain = "BOTH.example", .ok = 0, .reply = &r2, .req = &dane,
                                 .leg = leg};
    mxg_status_track_add(w1, &o, now + 5);
    o = (struct mxg_leg_outcome){.domain = "only1.example", .ok = 1, .req = &opp};
    mxg_status_track_add(w1, &o, now + 6);

    struct mxg_status_merged *m = mxg_status_merge(tb, 3, now + 10, NULL);
    assert_non_null(m);
    assert_int_equal(m->n, 2);
    assert_int_equal(m->skipped, 0);
    const struct mxg_status_dest *both = m->sorted[0], *only1 = m->sorted[1];
    assert_string_equal(both->domain, "both.example"); /* the first worker's spelling */
    assert_int_equal(both->ok, 2);
    assert_int_equal(both->fail, 2);
    assert_int_equal(both->src, MXG_ST_DANE); /* worker 1's leg came last */
    assert_int_equal(both->last_fail_at, now + 5);
    assert_string_equal(both->last_fail, "550 5.7.1 second");
    assert_null(both->decision); /* a list carries no texts */
    assert_string_equal(only1->domain, "only1.example");
    assert_int_equal(only1->ok, 1);

    struct mxg_status_view v = {.now = now + 10, .version = "test", .dns_mode = "stub",
                                .db_backend = "sqlite", .n_workers = 2};
    struct mxg_buf b = {0};
    assert_int_equal(mxg_status_html_main(&b, &v, m), 0);
    assert_non_null(strstr(text(&b), "Every one of the 2 workers' deliveries"));
    assert_non_null(strstr(text(&b), "only1.example"));
    mxg_status_merged_free(m);

    /* the domain page's merge: the decision text worker 1 kept */
    m = mxg_status_merge(tb, 3, now + 10, "both.example");
    assert_int_equal(m->n, 1);
    assert_int_equal(m->dest[0].ok + m->dest[0].fail, 4);
    assert_non_null(m->dest[0].decision);
    assert_non_null(strstr(m->dest[0].decision, "domain both.example\n"));
    assert_int_equal(m->dest[0].decision_at, now + 5);
    mxg_buf_reset(&b);
    assert_int_equal(mxg_status_html_domain(&b, "both.example", &m->dest[0], now + 10), 0);
    assert_non_null(strstr(text(&b), "domain both.example"));
    mxg_status_merged_free(m);

    /* worker 1 decides MXG_STATUS_NOTES other domains: both.example's text is gone from
     * its notes; worker 0's older one is shown instead; the counts stay */
    for (int i = 0; i < MXG_STATUS_NOTES; i++) {
        char name[64];
        snprintf(name, sizeof name, "d%d.example", i);
        struct mxg_leg *l = fake_leg(name);
        o = (struct mxg_leg_outcome){.domain = name, .ok = 1, .req = &opp, .leg = l};
        mxg_status_track_add(w1, &o, now + 7);
        free(l);
    }
    m = mxg_status_merge(tb, 3, now + 10, "both.example");
    assert_int_equal(m->n, 1);
    assert_int_equal(m->dest[0].fail, 2);
    assert_non_null(m->dest[0].decision);
    assert_non_null(strstr(m->dest[0].decision, "domain BOTH.EXAMPLE\n"));
    assert_int_equal(m->dest[0].decision_at, now + 1);
    mxg_status_merged_free(m);
    m = mxg_status_merge(tb, 3, now + 10, "d0.example");
    assert_non_null(m->dest[0].decision);
    assert_non_null(strstr(m->dest[0].decision, "domain d0.example\n"));
    mxg_status_merged_free(m);
    /* a new failure keeps its text again (a note of its own) */
    o = (struct mxg_leg_outcome){.domain = "both.example", .ok = 0, .reply = &r2, .req = &dane,
                                 .leg = leg};
    mxg_status_track_add(w1, &o, now + 8);
    m = mxg_status_merge(tb, 3, now + 10, "both.example");
    assert_non_null(m->dest[0].decision);
    assert_non_null(strstr(m->dest[0].decision, "domain both.example\n"));
    assert_int_equal(m->dest[0].fail, 3);
    mxg_status_merged_free(m);

    mxg_buf_free(&b);
    free(leg);
    free(leg0);
    mxg_status_track_free(w0);
    mxg_status_track_free(w1);
    free(tb[0]);
    free(tb[2]);
}

/* A writer that died mid-update (a record's sequence number left odd): the reader
 * skips that record after bounded tries; a restarted writer on the same table
 * adopts the rest, retires the torn record and counts on. */
static void test_merge_dead_writer_and_restart(void **state)
{
    (void)state;
    int64_t now = 20002 * 86400LL + 60;
    struct mxg_status_table *tb = calloc(1, mxg_status_table_size());
    assert_non_null(tb);
    struct mxg_status_track *w = mxg_status_track_new(now, tb, NULL);
    struct mxg_leg_outcome o = {.domain = "a.example", .ok = 1};
    mxg_status_track_add(w, &o, now);
    o.domain = "b.example";
    mxg_status_track_add(w, &o, now);
    mxg_status_track_add(w, &o, now);
    mxg_status_track_free(w); /* the worker dies: its table stays (the shared mapping) */
    tb->e[0].seq++;           /* ... in the middle of writing a.example */

    struct mxg_status_merged *m = mxg_status_merge(&tb, 1, now + 1, NULL);
    assert_non_null(m);
    assert_int_equal(m->skipped, 1); /* no wedge: a.example left out, said on the page */
    assert_int_equal(m->n, 1);
    assert_string_equal(m->dest[0].domain, "b.example");
    struct mxg_status_view v = {.now = now + 1, .version = "t", .dns_mode = "stub",
                                .db_backend = "sqlite", .n_workers = 2};
    struct mxg_buf b = {0};
    assert_int_equal(mxg_status_html_main(&b, &v, m), 0);
    assert_non_null(strstr(text(&b), "1 record was left out"));
    mxg_buf_free(&b);
    mxg_status_merged_free(m);

    /* the restarted worker: b.example's count goes on, a.example (torn) is retired and
     * counts afresh — in the unpublished record after the last (index n = 2), which is
     * also left odd here as if a death had come while it was first written */
    tb->e[2].seq |= 1;
    int retired = -1;
    w = mxg_status_track_new(now + 2, tb, &retired);
    assert_non_null(w);
    assert_int_equal(retired, 2);
    assert_int_equal(tb->e[2].seq & 1, 0);
    o.domain = "B.EXAMPLE";
    mxg_status_track_add(w, &o, now + 2);
    o.domain = "a.example";
    mxg_status_track_add(w, &o, now + 2);
    m = mxg_status_merge(&tb, 1, now + 3, NULL);
    assert_int_equal(m->skipped, 0);
    assert_int_equal(m->n, 2);
    assert_string_equal(m->sorted[0]->domain, "a.example");
    assert_int_equal(m->sorted[0]->ok, 1);
    assert_string_equal(m->sorted[1]->domain, "b.example");
    assert_int_equal(m->sorted[1]->ok, 3);
    mxg_status_merged_free(m);
    mxg_status_track_free(w);

    /* restarted on the next day: nothing adopted */
    w = mxg_status_track_new(now + 86400, tb, &retired);
    assert_int_equal(retired, 0);
    m = mxg_status_merge(&tb, 1, now + 86400, NULL);
    assert_int_equal(m->n, 0);
    mxg_status_merged_free(m);
    mxg_status_track_free(w);
    free(tb);
}

/* A restarted writer adopts values another process wrote into shared memory: an
 * out-of-range note index, source, or time, and an entry count beyond the table, are
 * brought into range, never used as they are (ASan fails this test otherwise). */
static void test_restart_corrupt_table(void **state)
{
    (void)state;
    int64_t now = 20003 * 86400LL + 60;
    struct mxg_status_table *tb = calloc(1, mxg_status_table_size());
    assert_non_null(tb);
    struct mxg_status_track *w = mxg_status_track_new(now, tb, NULL);
    struct mxg_leg_outcome o = {.domain = "c.example", .ok = 1};
    mxg_status_track_add(w, &o, now);
    mxg_status_track_free(w);
    tb->e[0].note = 100000;
    tb->e[0].src = 99;
    tb->e[0].decision_at = INT64_MIN;
    tb->e[0].last_fail_at = INT64_MAX;
    memset(tb->e[0].last_fail, 'x', sizeof tb->e[0].last_fail);
    w = mxg_status_track_new(now + 1, tb, NULL);
    assert_non_null(w);
    assert_int_equal(tb->e[0].note, 0);
    assert_int_equal(tb->e[0].src, MXG_ST_UNDECIDED);
    assert_int_equal(tb->e[0].decision_at, 0);
    assert_int_equal(tb->e[0].last_fail_at, 0);
    assert_int_equal(tb->e[0].seq & 1, 0);
    mxg_status_track_add(w, &o, now + 1);
    struct mxg_status_merged *m = mxg_status_merge(&tb, 1, now + 2, NULL);
    assert_int_equal(m->n, 1);
    assert_int_equal(m->dest[0].ok, 2);
    mxg_status_merged_free(m);
    mxg_status_track_free(w);

    tb->n = MXG_STATUS_MAX_DOMAINS + 5; /* not written by this code: start afresh */
    w = mxg_status_track_new(now + 3, tb, NULL);
    assert_int_equal(tb->n, 0);
    mxg_status_track_add(w, &o, now + 3);
    m = mxg_status_merge(&tb, 1, now + 4, NULL);
    assert_int_equal(m->n, 1);
    assert_int_equal(m->dest[0].ok, 1);
    mxg_status_merged_free(m);
    mxg_status_track_free(w);
    free(tb);
}

/* The bounds: a tally's domains beyond MXG_STATUS_MAX_DOMAINS go to others; the merge
 * lists at most MXG_STATUS_MAX_DOMAINS rows, failing domains first. */
static void test_merge_bounds(void **state)
{
    (void)state;
    int64_t now = 20003 * 86400LL + 60;
    struct mxg_status_table *tb[2] = {calloc(1, mxg_status_table_size()),
                                      calloc(1, mxg_status_table_size())};
    struct mxg_status_track *w0 = mxg_status_track_new(now, tb[0], NULL);
    struct mxg_status_track *w1 = mxg_status_track_new(now, tb[1], NULL);
    struct mxg_reply r = {.code = 451, .enh = "4.4.1", .text = "down"};
    char name[64];
    /* worker 0: MXG_STATUS_MAX_DOMAINS + 3 successful domains (3 legs to others) */
    for (int i = 0; i < MXG_STATUS_MAX_DOMAINS + 3; i++) {
        snprintf(name, sizeof name, "ok%d.example", i);
        struct mxg_leg_outcome o = {.domain = name, .ok = 1};
        mxg_status_track_add(w0, &o, now);
    }
    /* worker 1: one failing domain nobody else knows, and one that worker 0 lists */
    struct mxg_leg_outcome o = {.domain = "failing.example", .ok = 0, .reply = &r};
    mxg_status_track_add(w1, &o, now);
    o = (struct mxg_leg_outcome){.domain = "ok5.example", .ok = 1};
    mxg_status_track_add(w1, &o, now);
    struct mxg_status_merged *m = mxg_status_merge(tb, 2, now + 1, NULL);
    assert_non_null(m);
    assert_int_equal(m->n, MXG_STATUS_MAX_DOMAINS);
    /* listed although worker 0 alone filled the list: failing ones are merged first */
    int found = 0, ok5 = 0;
    for (int i = 0; i < m->n; i++) {
        if (strcmp(m->dest[i].domain, "failing.example") == 0)
            found = 1;
        if (strcmp(m->dest[i].domain, "ok5.example") == 0)
            ok5 = (int)m->dest[i].ok;
    }
    assert_true(found);
    assert_int_equal(ok5, 2);
    /* others: worker 0's 3 it could not take, and the one row the merge had no room for */
    assert_int_equal(m->others, 3 + 1);
    mxg_status_merged_free(m);
    mxg_status_track_free(w0);
    mxg_status_track_free(w1);
    free(tb[0]);
    free(tb[1]);
}

/* A writer counting while a reader merges (a thread here, a worker process in the
 * product): every row the reader gets is whole — the domain is one the writer wrote, its
 * last failure's text names that domain and the leg whose time is its last_fail_at (leg i
 * ends at now + i) — and the final merge has every leg. */
#define RACE_LEGS 40000
#define RACE_DOMAINS 50
struct race {
    struct mxg_status_track *w;
    int64_t now;
    int done;
};

static void *race_writer(void *arg)
{
    struct race *r = arg;
    char name[64];
    struct mxg_reply fail = {.code = 451, .enh = "4.4.1"};
    for (int i = 0; i < RACE_LEGS; i++) {
        snprintf(name, sizeof name, "d%d.example", i % RACE_DOMAINS);
        snprintf(fail.text, sizeof fail.text, "down at %s (leg %d)", name, i);
        struct mxg_leg_outcome o = {.domain = name, .ok = 0, .reply = &fail};
        mxg_status_track_add(r->w, &o, r->now + i); /* a second per leg: see the reader */
    }
    __atomic_store_n(&r->done, 1, __ATOMIC_RELEASE);
    return NULL;
}

static void test_merge_while_writing(void **state)
{
    (void)state;
    struct race r = {.now = 20004 * 86400LL + 60};
    struct mxg_status_table *tb = calloc(1, mxg_status_table_size());
    assert_non_null(tb);
    r.w = mxg_status_track_new(r.now, tb, NULL);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, race_writer, &r), 0);
    int merges = 0, bad = 0;
    uint64_t last_total = 0;
    while (!__atomic_load_n(&r.done, __ATOMIC_ACQUIRE) || merges == 0) {
        struct mxg_status_merged *m = mxg_status_merge(&tb, 1, r.now + RACE_LEGS, NULL);
        assert_non_null(m);
        uint64_t total = 0;
        for (int i = 0; i < m->n; i++) {
            const struct mxg_status_dest *d = &m->dest[i];
            int k = -1, used = 0;
            char want[128];
            if (sscanf(d->domain, "d%d.example%n", &k, &used) != 1 || d->domain[used] ||
                k < 0 || k >= RACE_DOMAINS)
                bad++;
            snprintf(want, sizeof want, "451 4.4.1 down at %s (leg ", d->domain);
            if (d->fail && (strncmp(d->last_fail, want, strlen(want)) != 0 ||
                            atoll(d->last_fail + strlen(want)) != d->last_fail_at - r.now))
                bad++;
            total += d->ok + d->fail;
        }
        /* a row is read whole, not all rows at one instant: the sum may only grow */
        if (total + (uint64_t)m->skipped * RACE_LEGS < last_total)
            bad++;
        last_total = total;
        merges++;
        mxg_status_merged_free(m);
    }
    pthread_join(th, NULL);
    assert_int_equal(bad, 0);
    struct mxg_status_merged *m = mxg_status_merge(&tb, 1, r.now + RACE_LEGS, NULL);
    uint64_t total = 0;
    for (int i = 0; i < m->n; i++)
        total += m->dest[i].ok + m->dest[i].fail;
    assert_int_equal(m->n, RACE_DOMAINS);
    assert_int_equal(m->skipped, 0);
    assert_int_equal(total, RACE_LEGS);
    print_message("%d merges while %d legs were counted\n", merges, RACE_LEGS);
    mxg_status_merged_free(m);
    mxg_status_track_free(r.w);
    free(tb);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_escape),
        cmocka_unit_test(test_svg),
        cmocka_unit_test(test_auth),
        cmocka_unit_test(test_track_and_pages),
        cmocka_unit_test(test_merge_workers),
        cmocka_unit_test(test_merge_dead_writer_and_restart),
        cmocka_unit_test(test_restart_corrupt_table),
        cmocka_unit_test(test_merge_bounds),
        cmocka_unit_test(test_merge_while_writing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
