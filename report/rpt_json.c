/* report/rpt_json.c — the RFC 8460 §4 aggregate report of one policy domain
 * for one UTC day, built with jansson from the counter tables, and its
 * report-id (created once per (day, domain), stored, reused).
 *
 * Keys appear in the RFC's order. Empty optional values are omitted:
 * "mx-host" without lines, "policy-string" without lines for
 * no-policy-found (a tlsa or sts policy always has one: [] when the
 * policy was not known, e.g. a bogus TLSA RRset or a failed MTA-STS
 * fetch, RFC 8460 §4.4), "failure-details" without
 * failures, each optional failure field when "". Policies are ordered by
 * (policy-type, policy-string, mx-host), failure details by session count
 * (highest first) then their fields, so one database gives one text. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "../core/log.h"
#include "rpt_int.h"

/* ------------------------------------------------------------ JSON helpers */

/* A JSON string of v; text that is not valid UTF-8 (a database written by
 * something else) is cleaned first. NULL: out of memory. */
static json_t *jstr(const char *v)
{
    json_t *s = json_string(v);
    if (!s) {
        size_t n = strlen(v);
        char *c = malloc(n + 1);
        if (!c)
            return NULL;
        rpt_clean_utf8(c, n + 1, v, n);
        s = json_string(c);
        free(c);
    }
    return s;
}

static int set_str(json_t *o, const char *key, const char *v)
{
    return json_object_set_new(o, key, jstr(v)); /* -1 also for a NULL value */
}

/* "policy-string" / "mx-host": one array element per non-empty line (a
 * trailing CR is removed). Sets nothing when there are no lines, unless
 * always (then []). 0 / -1. */
static int set_lines_opt(json_t *o, const char *key, const char *text, int always)
{
    json_t *a = NULL;
    const char *p = text;
    while (*p) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        size_t m = n;
        if (m && p[m - 1] == '\r')
            m--;
        if (m) {
            char *line = strndup(p, m);
            if (!line || (!a && !(a = json_array())) || json_array_append_new(a, jstr(line))) {
                free(line);
                json_decref(a);
                return -1;
            }
            free(line);
        }
        p += n + (nl ? 1 : 0);
    }
    if (!a && always && !(a = json_array()))
        return -1;
    return a ? json_object_set_new(o, key, a) : 0;
}

static int set_lines(json_t *o, const char *key, const char *text)
{
    return set_lines_opt(o, key, text, 0);
}

static const char *col(sqlite3_stmt *st, int i)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    return t ? (const char *)t : "";
}

/* ------------------------------------------------------------ report-id */

static uint64_t rand64(void)
{
    uint64_t v;
    if (getrandom(&v, sizeof v, GRND_NONBLOCK) == (ssize_t)sizeof v)
        return v;
    /* no entropy yet (early boot): unique enough, uniqueness is all we need */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    v = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec + ((uint64_t)getpid() << 48);
    v ^= v >> 30, v *= 0xbf58476d1ce4e5b9ull, v ^= v >> 27, v *= 0x94d049bb133111ebull;
    return v ^ (v >> 31);
}

/* A new report-id into id[MXG_RPT_REPORT_ID_MAX]: "DAY.DOMAIN.R@SUBMITTER",
 * or shorter forms when that does not fit. The submitter keeps only
 * letters, digits, '.' and '-' (lower-cased). */
static void make_report_id(const char *day, const char *domain, const char *submitter,
                           char id[MXG_RPT_REPORT_ID_MAX])
{
    char sub[MXG_RPT_REPORT_ID_MAX] = "", at[MXG_RPT_REPORT_ID_MAX + 1] = "";
    size_t o = 0;
    unsigned long long r1 = (unsigned long long)rand64(), r2 = (unsigned long long)rand64();
    int n;

    for (const char *p = submitter ? submitter : ""; *p && o + 1 < sizeof sub; p++) {
        char c = *p;
        if (c >= 'A' && c <= 'Z')
            c = (char)(c + ('a' - 'A'));
        if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-')
            sub[o++] = c;
    }
    sub[o] = '\0';
    if (sub[0])
        snprintf(at, sizeof at, "@%s", sub);
    n = snprintf(id, MXG_RPT_REPORT_ID_MAX, "%s.%s.%016llx%s", day, domain, r1, at);
    if (n >= 0 && n < MXG_RPT_REPORT_ID_MAX)
        return;
    n = snprintf(id, MXG_RPT_REPORT_ID_MAX, "%s.%016llx%016llx%s", day, r1, r2, at);
    if (n >= 0 && n < MXG_RPT_REPORT_ID_MAX)
        return;
    snprintf(id, MXG_RPT_REPORT_ID_MAX, "%s.%016llx%016llx", day, r1, r2);
}

/* The stored report-id of (day, domain), created if there is none.
 * 0 or MXG_RPT_EDB (err set). */
int rpt_report_id(sqlite3 *db, const char *day, const char *domain, const char *submitter,
                     char id[MXG_RPT_REPORT_ID_MAX], char *err, size_t errlen)
{
    sqlite3_stmt *sel = NULL, *ins = NULL;
    int rc;

    if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
        goto dberr;
    if (sqlite3_prepare_v2(db, "SELECT report_id FROM report WHERE day = ?1 AND domain = ?2", -1,
                           &sel, NULL) != SQLITE_OK)
        goto dberr_rollback;
    sqlite3_bind_text(sel, 1, day, -1, SQLITE_STATIC);
    sqlite3_bind_text(sel, 2, domain, -1, SQLITE_STATIC);
    rc = sqlite3_step(sel);
    if (rc == SQLITE_ROW) {
        snprintf(id, MXG_RPT_REPORT_ID_MAX, "%s", col(sel, 0));
    } else if (rc == SQLITE_DONE) {
        make_report_id(day, domain, submitter, id);
        if (sqlite3_prepare_v2(db,
                               "INSERT INTO report (day, domain, report_id, created_at)"
                               " VALUES (?1, ?2, ?3, ?4)",
                               -1, &ins, NULL) != SQLITE_OK)
            goto dberr_rollback;
        sqlite3_bind_text(ins, 1, day, -1, SQLITE_STATIC);
        sqlite3_bind_text(ins, 2, domain, -1, SQLITE_STATIC);
        sqlite3_bind_text(ins, 3, id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(ins, 4, (sqlite3_int64)time(NULL));
        if (sqlite3_step(ins) != SQLITE_DONE)
            goto dberr_rollback;
    } else {
        goto dberr_rollback;
    }
    if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
        goto dberr_rollback;
    sqlite3_finalize(sel);
    sqlite3_finalize(ins);
    return 0;
dberr_rollback:
    rpt_set_err(err, errlen, "report-id of %s %s: %s", domain, day, sqlite3_errmsg(db));
    sqlite3_finalize(sel);
    sqlite3_finalize(ins);
    sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    return MXG_RPT_EDB;
dberr:
    rpt_set_err(err, errlen, "report-id of %s %s: %s", domain, day, sqlite3_errmsg(db));
    return MXG_RPT_EDB;
}

/* ------------------------------------------------------------ policies */

static const char *const fail_keys[] = {
    /* columns 0..6 of the failure query, in RFC 8460 §4.4 order */
    "result-type",  "sending-mta-ip",         "receiving-mx-hostname", "receiving-mx-helo",
    "receiving-ip", "additional-information", "failure-reason-code",
};

/* The "failure-details" array of policy row pid into entry (not set when
 * there are none). 0, MXG_RPT_ENOMEM or MXG_RPT_EDB. */
static int add_failures(sqlite3_stmt *st, int64_t pid, json_t *entry)
{
    json_t *arr = NULL;
    int rc;

    sqlite3_bind_int64(st, 1, pid);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        json_t *d;
        /* the *_set_new / *_append_new calls take the reference, also on failure */
        if (!arr && !(arr = json_array()))
            goto nomem;
        if (json_array_append_new(arr, d = json_object()))
            goto nomem;
        /* result-type is required; the others only when non-empty */
        if (set_str(d, fail_keys[0], col(st, 0)))
            goto nomem;
        for (int i = 1; i <= 4; i++)
            if (col(st, i)[0] && set_str(d, fail_keys[i], col(st, i)))
                goto nomem;
        if (json_object_set_new(d, "failed-session-count",
                                json_integer(sqlite3_column_int64(st, 7))))
            goto nomem;
        for (int i = 5; i <= 6; i++)
            if (col(st, i)[0] && set_str(d, fail_keys[i], col(st, i)))
                goto nomem;
    }
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) {
        json_decref(arr);
        return MXG_RPT_EDB;
    }
    if (arr && json_object_set_new(entry, "failure-details", arr))
        return MXG_RPT_ENOMEM;
    return 0;
nomem:
    sqlite3_reset(st);
    json_decref(arr);
    return MXG_RPT_ENOMEM;
}

/* The "policies" array of (day, domain); an empty array when nothing was
 * recorded. 0, MXG_RPT_ENOMEM or MXG_RPT_EDB (err set). */
static int build_policies(sqlite3 *db, const char *day, const char *domain, json_t *policies,
                          char *err, size_t errlen)
{
    sqlite3_stmt *ps = NULL, *fs = NULL;
    int rc = MXG_RPT_EDB, step;

    if (sqlite3_prepare_v2(db,
                           "SELECT id, ptype, pstring, mxhost, success, failure FROM policy"
                           " WHERE day = ?1 AND domain = ?2 ORDER BY ptype, pstring, mxhost",
                           -1, &ps, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db,
                           "SELECT result_type, sending_mta_ip, receiving_mx_hostname,"
                           " receiving_mx_helo, receiving_ip, additional_information,"
                           " failure_reason_code, sessions FROM failure WHERE policy_id = ?1"
                           " ORDER BY sessions DESC, result_type, sending_mta_ip,"
                           " receiving_mx_hostname, receiving_mx_helo, receiving_ip,"
                           " additional_information, failure_reason_code",
                           -1, &fs, NULL) != SQLITE_OK)
        goto dberr;
    sqlite3_bind_text(ps, 1, day, -1, SQLITE_STATIC);
    sqlite3_bind_text(ps, 2, domain, -1, SQLITE_STATIC);
    while ((step = sqlite3_step(ps)) == SQLITE_ROW) {
        json_t *entry, *pol, *sum;
        /* the *_set_new / *_append_new calls take the reference, also on failure */
        rc = MXG_RPT_ENOMEM;
        if (json_array_append_new(policies, entry = json_object()) ||
            json_object_set_new(entry, "policy", pol = json_object()) ||
            json_object_set_new(entry, "summary", sum = json_object()) ||
            set_str(pol, "policy-type", col(ps, 1)) ||
            set_lines_opt(pol, "policy-string", col(ps, 2),
                          strcmp(col(ps, 1), "no-policy-found") != 0) ||
            set_str(pol, "policy-domain", domain) ||
            set_lines(pol, "mx-host", col(ps, 3)) ||
            json_object_set_new(sum, "total-successful-session-count",
                                json_integer(sqlite3_column_int64(ps, 4))) ||
            json_object_set_new(sum, "total-failure-session-count",
                                json_integer(sqlite3_column_int64(ps, 5))))
            goto fail;
        if ((rc = add_failures(fs, sqlite3_column_int64(ps, 0), entry)) != 0) {
            if (rc == MXG_RPT_EDB)
                goto dberr;
            goto fail;
        }
    }
    if (step != SQLITE_DONE)
        goto dberr;
    sqlite3_finalize(ps);
    sqlite3_finalize(fs);
    return 0;
dberr:
    rpt_set_err(err, errlen, "reading counters of %s %s: %s", domain, day, sqlite3_errmsg(db));
    sqlite3_finalize(ps);
    sqlite3_finalize(fs);
    return MXG_RPT_EDB;
fail:
    rpt_set_err(err, errlen, "building the report of %s %s: out of memory", domain, day);
    sqlite3_finalize(ps);
    sqlite3_finalize(fs);
    return rc;
}

/* ------------------------------------------------------------ the report */

/* Contract: see tlsrpt.h. */
int mxg_rpt_report_json(struct mxg_rpt *r, const char *day, const char *domain,
                        const struct mxg_rpt_org *org, char **json_out, char *report_id_out,
                        char *err, size_t errlen)
{
    char dom[MXG_RPT_DOMAIN_MAX], id[MXG_RPT_REPORT_ID_MAX], start[32], end[32];
    json_t *root = NULL, *range = NULL, *policies = NULL;
    sqlite3 *db;
    size_t n;
    char *out;
    int rc;

    rpt_set_err(err, errlen, "%s", "");
    if (json_out)
        *json_out = NULL;
    if (!r || !json_out || !rpt_day_ok(day) || rpt_domain_norm(domain, dom) != 0) {
        rpt_set_err(err, errlen, "report: bad day \"%s\" or domain \"%s\"", day ? day : "(null)",
                    domain ? domain : "(null)");
        return MXG_RPT_EINVAL;
    }
    if (!org || !org->organization_name || !org->organization_name[0] || !org->contact_info ||
        !org->contact_info[0]) {
        rpt_set_err(err, errlen, "report: organization-name and contact-info are required");
        return MXG_RPT_EINVAL;
    }
    if ((rc = mxg_rpt_flush(r)) != 0) {
        rpt_set_err(err, errlen, "report of %s %s: cannot write buffered results first", dom, day);
        return rc;
    }
    if (!(db = rpt_db(r))) {
        rpt_set_err(err, errlen, "report: database closed");
        return MXG_RPT_EDB;
    }
    if (!(policies = json_array())) {
        rpt_set_err(err, errlen, "report: out of memory");
        return MXG_RPT_ENOMEM;
    }
    /* one snapshot for the policy and failure queries */
    if (sqlite3_exec(db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK) {
        rpt_set_err(err, errlen, "report of %s %s: %s", dom, day, sqlite3_errmsg(db));
        json_decref(policies);
        return MXG_RPT_EDB;
    }
    rc = build_policies(db, day, dom, policies, err, errlen);
    sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    if (rc != 0)
        goto out;
    if (json_array_size(policies) == 0) {
        rpt_set_err(err, errlen, "no TLSRPT results for %s on %s", dom, day);
        rc = MXG_RPT_ENODATA;
        goto out;
    }
    if ((rc = rpt_report_id(db, day, dom, org->submitter, id, err, errlen)) != 0)
        goto out;

    snprintf(start, sizeof start, "%sT00:00:00Z", day);
    snprintf(end, sizeof end, "%sT23:59:59Z", day);
    rc = MXG_RPT_ENOMEM;
    if (!(root = json_object()) || !(range = json_object()))
        goto nomem;
    if (set_str(root, "organization-name", org->organization_name) ||
        json_object_set(root, "date-range", range) || set_str(range, "start-datetime", start) ||
        set_str(range, "end-datetime", end) || set_str(root, "contact-info", org->contact_info) ||
        set_str(root, "report-id", id) || json_object_set(root, "policies", policies))
        goto nomem;
    if (!(n = json_dumpb(root, NULL, 0, JSON_COMPACT)) || !(out = malloc(n + 1)))
        goto nomem;
    if (json_dumpb(root, out, n, JSON_COMPACT) != n) {
        free(out);
        goto nomem;
    }
    out[n] = '\0';
    *json_out = out;
    if (report_id_out)
        snprintf(report_id_out, MXG_RPT_REPORT_ID_MAX, "%s", id);
    rc = 0;
    goto out;
nomem:
    rpt_set_err(err, errlen, "report of %s %s: out of memory", dom, day);
out:
    json_decref(range);
    json_decref(policies);
    json_decref(root);
    return rc;
}
