/* app/cli_export.c — `mxguard report export DIR [--day DAY]`: every finished
 * TLSRPT report (UTC days before today; --day: that day's only) written into
 * DIR as an uncompressed RFC 8460 JSON file, one per (day, policy domain),
 * the same JSON as `report show` (report/'s builder, report-id included),
 * named as RFC 8460 §5.3 says: "SUBMITTER!DOMAIN!BEGIN!END.json" (BEGIN/END:
 * the Unix times of the report's date-range; no unique-id: there is one
 * report per day and domain). Each file is written to a temporary name,
 * fsync'd and renamed: a reader never sees half a report; an existing file
 * of the same name (an earlier export) is replaced by the same content.
 * Exit status: 0 every report written (or none to write), 1 an error. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../report/tlsrpt.h"
#include "app.h"

struct export_pair {
    char day[MXG_RPT_DAY_LEN + 1];
    char domain[MXG_RPT_DOMAIN_MAX];
};

struct export_list {
    struct export_pair *v;
    int n, cap, oom;
    const char *only_day; /* --day, or NULL */
    char today[MXG_RPT_DAY_LEN + 1];
};

/* mxg_rpt_days() callback: keep the finished (day, domain) pairs asked for. */
static void collect(void *arg, const char *day, const char *domain)
{
    struct export_list *l = arg;
    if (strcmp(day, l->today) >= 0 || (l->only_day && strcmp(day, l->only_day) != 0))
        return;
    if (l->n == l->cap) {
        int cap = l->cap ? l->cap * 2 : 16;
        struct export_pair *v = realloc(l->v, (size_t)cap * sizeof *v);
        if (!v) {
            l->oom = 1;
            return;
        }
        l->v = v;
        l->cap = cap;
    }
    snprintf(l->v[l->n].day, sizeof l->v[l->n].day, "%s", day);
    snprintf(l->v[l->n].domain, sizeof l->v[l->n].domain, "%s", domain);
    l->n++;
}

/* "YYYY-MM-DD" with digits where they belong (the calendar is checked by report/). */
static int day_shape_ok(const char *d)
{
    if (strlen(d) != MXG_RPT_DAY_LEN || d[4] != '-' || d[7] != '-')
        return 0;
    for (int i = 0; i < MXG_RPT_DAY_LEN; i++)
        if (i != 4 && i != 7 && (d[i] < '0' || d[i] > '9'))
            return 0;
    return 1;
}

/* Write data to dir/name through dir/.name.tmp, fsync'd, renamed. 0 or -1 (err). */
static int write_atomic(const char *dir, const char *name, const char *data, size_t len,
                        char *err, size_t errlen)
{
    char path[4096], tmp[4096];
    if (snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path ||
        snprintf(tmp, sizeof tmp, "%s/.%s.tmp", dir, name) >= (int)sizeof tmp) {
        snprintf(err, errlen, "%s/%s: path too long", dir, name);
        return -1;
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
        return -1;
    }
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(fd, data + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            snprintf(err, errlen, "%s: %s", tmp, w < 0 ? strerror(errno) : "short write");
            close(fd);
            unlink(tmp);
            return -1;
        }
        off += (size_t)w;
    }
    if (fsync(fd) < 0 || close(fd) < 0) {
        snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
        unlink(tmp);
        return -1;
    }
    if (rename(tmp, path) < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}

/* The RFC 8460 §5.3 name of an uncompressed report: report/'s mail
 * attachment name (…!END.json.gz) without ".gz". 0 or -1. */
static int export_name(const char *submitter, const char *domain, const char *day, char *out,
                       size_t cap)
{
    if (mxg_rpt_mail_filename(submitter, domain, day, out, cap) != 0)
        return -1;
    size_t n = strlen(out);
    if (n < 8 || strcmp(out + n - 8, ".json.gz") != 0)
        return -1;
    out[n - 3] = '\0';
    if (strchr(out, '/') || out[0] == '.')
        return -1; /* never outside DIR, never hidden (report/ checks the names; belt and braces) */
    return 0;
}

/* `report export DIR [--day DAY]`: every finished report as a JSON file in DIR. */
int mxg_cli_report_export(struct mxg_rpt *rpt, const struct mxg_rpt_org *org, const char *dir,
                          const char *only_day)
{
    struct export_list l = {.only_day = only_day};
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(l.today, sizeof l.today, "%Y-%m-%d", &tm);
    if (only_day && !day_shape_ok(only_day)) {
        fprintf(stderr, "mxguard: --day %s: not a day (YYYY-MM-DD)\n", only_day);
        return 2;
    }
    if (only_day && strcmp(only_day, l.today) >= 0) {
        fprintf(stderr, "mxguard: --day %s: not finished yet (today is %s UTC); only the reports "
                        "of past days are exported\n", only_day, l.today);
        return 1;
    }
    if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
        fprintf(stderr, "mxguard: %s: %s\n", dir, strerror(errno));
        return 1;
    }
    struct stat st;
    if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
        fprintf(stderr, "mxguard: %s: not a directory\n", dir);
        return 1;
    }
    int rc = 0;
    if (mxg_rpt_days(rpt, collect, &l) < 0 || l.oom) {
        fprintf(stderr, "mxguard: cannot list the TLSRPT reports (database error or out of memory)\n");
        free(l.v);
        return 1;
    }
    int written = 0;
    for (int i = 0; i < l.n; i++) {
        char name[1024], err[1024], id[MXG_RPT_REPORT_ID_MAX];
        char *json = NULL;
        const char *sub = org->submitter ? org->submitter : "";
        if (export_name(sub, l.v[i].domain, l.v[i].day, name, sizeof name) < 0) {
            fprintf(stderr, "mxguard: %s %s: no RFC 8460 file name for submitter '%s'\n",
                    l.v[i].day, l.v[i].domain, sub);
            rc = 1;
            continue;
        }
        int e = mxg_rpt_report_json(rpt, l.v[i].day, l.v[i].domain, org, &json, id, err, sizeof err);
        if (e == MXG_RPT_ENODATA) {
            continue; /* listed, then purged: nothing to export */
        }
        if (e != 0) {
            fprintf(stderr, "mxguard: %s %s: %s\n", l.v[i].day, l.v[i].domain, err);
            rc = 1;
            continue;
        }
        size_t len = strlen(json);
        json[len] = '\n'; /* the text `report show` prints: JSON and a newline */
        int w = write_atomic(dir, name, json, len + 1, err, sizeof err);
        free(json);
        if (w < 0) {
            fprintf(stderr, "mxguard: %s\n", err);
            rc = 1;
            continue;
        }
        printf("%s/%s\n", dir, name);
        written++;
    }
    fprintf(stderr, "mxguard: exported %d report(s) to %s%s%s\n", written, dir,
            only_day ? " for " : "", only_day ? only_day : "");
    free(l.v);
    return rc;
}
