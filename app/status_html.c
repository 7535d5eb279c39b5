/* app/status_html.c — the status pages' HTML (status.h): HTML5 with an
 * inline style sheet and an inline SVG chart, no script. Every string that
 * did not come from this file goes through mxg_status_esc(). */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "status.h"
#include "status_table.h"

static const char page_head[] =
    "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
    "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
    "<link rel=\"icon\" href=\"data:,\">\n<title>";
static const char page_style[] =
    "</title>\n<style>\n"
    "body{font-family:sans-serif;margin:1.5em;color:#222;max-width:70em}\n"
    "h1{font-size:1.5em}h2{font-size:1.2em;margin-top:1.6em;border-bottom:1px solid #ccc}\n"
    "h3{font-size:1em;margin-bottom:.3em}\n"
    "table{border-collapse:collapse;margin:.3em 0}\n"
    "td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left;vertical-align:top}\n"
    "th{background:#f2f2f2}td.n{text-align:right}td a{white-space:nowrap}\n"
    "tr.failing td{background:#fdecea}.bad{color:#b71c1c;font-weight:bold}"
    ".good{color:#1b5e20}\n.meta{color:#555;font-size:.9em}\n"
    "pre{background:#f7f7f7;border:1px solid #ddd;padding:.8em;overflow-x:auto}\n"
    "</style>\n</head>\n<body>\n";

/* "2026-12-07 11:59:00 UTC", or "never" for 0. */
static void fmt_time(int64_t t, char *out, size_t cap)
{
    if (t <= 0) {
        snprintf(out, cap, "never");
        return;
    }
    time_t tt = (time_t)t;
    struct tm tm;
    if (!gmtime_r(&tt, &tm) || strftime(out, cap, "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
        snprintf(out, cap, "?");
}

/* A duration in seconds as "2d 3h", "3h 5m", "4m 2s", "7s". */
static void fmt_span(int64_t s, char *out, size_t cap)
{
    const char *sign = s < 0 ? "-" : "";
    if (s < 0)
        s = -s;
    if (s >= 86400)
        snprintf(out, cap, "%s%" PRId64 "d %" PRId64 "h", sign, s / 86400, s % 86400 / 3600);
    else if (s >= 3600)
        snprintf(out, cap, "%s%" PRId64 "h %" PRId64 "m", sign, s / 3600, s % 3600 / 60);
    else if (s >= 60)
        snprintf(out, cap, "%s%" PRId64 "m %" PRId64 "s", sign, s / 60, s % 60);
    else
        snprintf(out, cap, "%s%" PRId64 "s", sign, s);
}

/* One health row: the label, the class of the value ("good", "bad", ""), the value (escaped). */
static int kv(struct mxg_buf *b, const char *label, const char *cls, const char *value)
{
    int rc = mxg_buf_printf(b, "<tr><th>%s</th><td%s%s%s>", label, cls[0] ? " class=\"" : "",
                            cls, cls[0] ? "\"" : "");
    rc |= mxg_status_esc(b, value);
    rc |= mxg_buf_printf(b, "</td></tr>\n");
    return rc;
}

/* The health table. */
static int health(struct mxg_buf *b, const struct mxg_status_view *v)
{
    char t[700], a[64], c[64], d[64];
    int rc = mxg_buf_printf(b, "<h2 id=\"health\">Health</h2>\n<table class=\"kv\">\n");
    static const char *const dnssec_word[] = {"FAILED", "passed", "not checked"};
    const char *w = v->dnssec_state < 0 ? "NO ANSWER from the resolver"
                                        : dnssec_word[v->dnssec_state > 2 ? 2 : v->dnssec_state];
    snprintf(t, sizeof t, "%s%s%s", w, v->dnssec_why[0] ? ": " : "", v->dnssec_why);
    rc |= kv(b, "DNSSEC path", v->dnssec_state == 1 ? "good" : v->dane_enabled ? "bad" : "", t);
    snprintf(t, sizeof t, "%s (servers: %s); DANE %s", v->dns_mode, v->dns_servers,
             v->dane_enabled ? "enabled" : "DISABLED");
    rc |= kv(b, "DNS mode", "", t);
    if (!v->list_configured && !v->list_have) {
        rc |= kv(b, "Policy list", "", "none configured");
    } else if (!v->list_have) {
        rc |= kv(b, "Policy list", "bad", "configured, but no verified list is loaded");
    } else {
        fmt_span(v->now - v->list_timestamp, a, sizeof a);
        fmt_time(v->list_expires, c, sizeof c);
        fmt_span(v->list_expires - v->now, d, sizeof d);
        snprintf(t, sizeof t, "%s: %d policies, %s old, expire%s %s (%s %s), from %s",
                 v->list_expired ? "EXPIRED, not used" : "in force", v->list_policies, a,
                 v->list_expired ? "d" : "s", c, v->list_expired ? "" : "in", d, v->list_source);
        rc |= kv(b, "Policy list", v->list_expired ? "bad" : "good", t);
    }
    snprintf(t, sizeof t, "%s%s%s", v->db_backend, v->db_link[0] ? ", link " : "", v->db_link);
    rc |= kv(b, "Database backend", v->db_down ? "bad" : "", t);
    fmt_time(v->reload_at, a, sizeof a);
    snprintf(t, sizeof t, "%u (last reload: %s)", v->reload_gen, a);
    rc |= kv(b, "Reload generation", "", t);
    fmt_time(v->started_at, a, sizeof a);
    rc |= kv(b, "Running since", "", a);
    rc |= mxg_buf_printf(b, "</table>\n");
    return rc;
}

/* One destination's row. */
static int dest_row(struct mxg_buf *b, const struct mxg_status_dest *d)
{
    char t[64];
    int rc = mxg_buf_printf(b, "<tr%s><td><a href=\"/status/domain/",
                            d->fail ? " class=\"failing\"" : "");
    rc |= mxg_status_esc_path(b, d->domain);
    rc |= mxg_buf_printf(b, "\">");
    rc |= mxg_status_esc(b, d->domain);
    rc |= mxg_buf_printf(b, "</a></td><td class=\"n\">%" PRIu64 "</td><td class=\"n%s\">%" PRIu64
                            "</td><td>",
                         d->ok, d->fail ? " bad" : "", d->fail);
    if (d->fail) {
        fmt_time(d->last_fail_at, t, sizeof t);
        rc |= mxg_status_esc(b, d->last_fail);
        rc |= mxg_buf_printf(b, " <span class=\"meta\">(%s)</span>", t);
    }
    rc |= mxg_buf_printf(b, "</td></tr>\n");
    return rc;
}

/* Today's destinations, grouped by policy source (the list is sorted so). */
static int destinations(struct mxg_buf *b, const struct mxg_status_view *v,
                        const struct mxg_status_merged *m)
{
    const struct mxg_status_dest *const *dests = m->sorted;
    int n = m->n;
    int rc = mxg_buf_printf(b, "<h2 id=\"destinations\">Today's destinations (UTC day)</h2>\n");
    if (v->n_workers > 1)
        rc |= mxg_buf_printf(b, "<p class=\"meta\">Every one of the %d workers' deliveries, "
                                "summed.</p>\n", v->n_workers);
    if (n == 0)
        rc |= mxg_buf_printf(b, "<p>No delivery has ended today.</p>\n");
    for (int i = 0; i < n; i++) {
        if (i == 0 || dests[i]->src != dests[i - 1]->src) {
            int k = i;
            while (k < n && dests[k]->src == dests[i]->src)
                k++;
            rc |= mxg_buf_printf(b, "%s<h3>%s (%d domain%s)</h3>\n<table class=\"dest\">\n"
                                    "<tr><th>domain</th><th>delivered</th><th>failed</th>"
                                    "<th>last failure</th></tr>\n",
                                 i ? "</table>\n" : "", mxg_status_src_name(dests[i]->src), k - i,
                                 k - i == 1 ? "" : "s");
        }
        rc |= dest_row(b, dests[i]);
    }
    if (n > 0)
        rc |= mxg_buf_printf(b, "</table>\n");
    if (m->others)
        rc |= mxg_buf_printf(b, "<p>%" PRIu64 " more deliveries to domains beyond the first %d "
                                "are counted here only.</p>\n",
                             m->others, MXG_STATUS_MAX_DOMAINS);
    if (m->skipped)
        rc |= mxg_buf_printf(b, "<p class=\"bad\">%d record%s left out: being written on every "
                                "try (or a worker died writing %s). Reload the page.</p>\n",
                             m->skipped, m->skipped == 1 ? " was" : "s were",
                             m->skipped == 1 ? "it" : "them");
    return rc;
}

/* The spool's section. */
static int spool(struct mxg_buf *b, const struct mxg_status_view *v)
{
    char a[64], c[64], d[64];
    int rc = mxg_buf_printf(b, "<h2 id=\"spool\">Spool</h2>\n");
    if (!v->spool_open)
        return rc | mxg_buf_printf(b, "<p>The spool is not open.</p>\n");
    rc |= mxg_buf_printf(b, "<table class=\"kv\">\n<tr><th>messages</th><td>%d</td></tr>\n",
                         v->spool_count);
    if (v->spool_count > 0) {
        fmt_time(v->spool_oldest_ms / 1000, a, sizeof a);
        fmt_span(v->now - v->spool_oldest_ms / 1000, d, sizeof d);
        rc |= mxg_buf_printf(b, "<tr><th>oldest</th><td>%s (%s ago)</td></tr>\n", a, d);
        fmt_time(v->spool_next_ms / 1000, c, sizeof c);
        fmt_span(v->spool_next_ms / 1000 - v->now, d, sizeof d);
        rc |= mxg_buf_printf(b, "<tr><th>next retry</th><td>%s (%s%s)</td></tr>\n", c,
                             v->spool_next_ms / 1000 <= v->now ? "due, " : "in ", d);
    }
    if (v->spool_unread)
        rc |= mxg_buf_printf(b, "<tr><th>unreadable</th><td class=\"bad\">%d</td></tr>\n",
                             v->spool_unread);
    return rc | mxg_buf_printf(b, "</table>\n");
}

/* The main page (status.h). */
int mxg_status_html_main(struct mxg_buf *b, const struct mxg_status_view *v,
                         const struct mxg_status_merged *m)
{
    char now[64];
    fmt_time(v->now, now, sizeof now);
    int rc = mxg_buf_printf(b, "%smxguard status%s", page_head, page_style);
    rc |= mxg_buf_printf(b, "<h1>mxguard status</h1>\n<p class=\"meta\">mxguard %s &middot; "
                            "generated %s &middot; <a href=\"/metrics\">metrics</a></p>\n",
                         v->version, now);
    rc |= health(b, v);
    rc |= destinations(b, v, m);
    rc |= spool(b, v);
    rc |= mxg_buf_printf(b, "<h2 id=\"chart\">TLS sessions per day (last %d days, TLSRPT "
                            "store)</h2>\n",
                         MXG_STATUS_DAYS);
    if (!v->rpt_open)
        rc |= mxg_buf_printf(b, "<p>TLSRPT recording is off.</p>\n");
    else if (v->rpt_error)
        rc |= mxg_buf_printf(b, "<p class=\"bad\">The TLSRPT store could not be read.</p>\n");
    else
        rc |= mxg_status_svg(b, v->days, MXG_STATUS_DAYS);
    rc |= mxg_buf_printf(b, "</body>\n</html>\n");
    return rc ? -1 : 0;
}

/* One domain's page (status.h). */
int mxg_status_html_domain(struct mxg_buf *b, const char *name, const struct mxg_status_dest *d,
                           int64_t now)
{
    char t[64];
    int rc = mxg_buf_printf(b, "%s", page_head);
    rc |= mxg_status_esc(b, name);
    rc |= mxg_buf_printf(b, " &middot; mxguard status%s<p><a href=\"/status\">&larr; status"
                            "</a></p>\n<h1>",
                         page_style);
    rc |= mxg_status_esc(b, name);
    rc |= mxg_buf_printf(b, "</h1>\n");
    if (!d) {
        fmt_time(now, t, sizeof t);
        rc |= mxg_buf_printf(b, "<p>No delivery to this domain has ended today (UTC day of %s)."
                                " <code>mxguard check</code> looks it up.</p>\n</body>\n</html>\n",
                             t);
        return rc ? -1 : 0;
    }
    rc |= mxg_buf_printf(b, "<table class=\"kv\">\n<tr><th>policy source</th><td>%s</td></tr>\n"
                            "<tr><th>delivered today</th><td>%" PRIu64 "</td></tr>\n"
                            "<tr><th>failed today</th><td%s>%" PRIu64 "</td></tr>\n",
                         mxg_status_src_name(d->src), d->ok, d->fail ? " class=\"bad\"" : "",
                         d->fail);
    if (d->fail) {
        fmt_time(d->last_fail_at, t, sizeof t);
        rc |= mxg_buf_printf(b, "<tr><th>last failure</th><td class=\"bad\">");
        rc |= mxg_status_esc(b, d->last_fail);
        rc |= mxg_buf_printf(b, " <span class=\"meta\">(%s)</span></td></tr>\n", t);
    }
    rc |= mxg_buf_printf(b, "</table>\n");
    fmt_time(d->decision_at, t, sizeof t);
    rc |= mxg_buf_printf(b, "<h2>Decision</h2>\n<p class=\"meta\">As <code>mxguard check</code> "
                            "prints it, from the requirement the delivery of %s computed "
                            "(policy/requirement.h); this page made no lookup.</p>\n<pre>",
                         t);
    if (d->decision)
        rc |= mxg_status_esc(b, d->decision);
    else
        rc |= mxg_buf_printf(b, "(none kept: each worker keeps the texts of the %d domains it "
                                "decided last)", MXG_STATUS_NOTES);
    rc |= mxg_buf_printf(b, "</pre>\n</body>\n</html>\n");
    return rc ? -1 : 0;
}
