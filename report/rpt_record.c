/* report/rpt_record.c — struct mxg_rpt: open/close, recording one session
 * attempt, the flush timer and the background write.
 *
 * Design:
 *  - mxg_rpt_record() cleans the strings into a scratch area of the struct
 *    (no allocation unless the key is new) and adds 1 to a policy counter
 *    and, for a failure, to a failure-detail counter of r->cur, the
 *    in-memory aggregate (rpt_tab.c). O(1), no I/O but the log line.
 *  - Every flush_ms the timer hands r->cur to a job (r->cur starts empty
 *    again) and queues it on libuv's thread pool; the worker adds it to
 *    SQLite in one transaction (rpt_store_add). Back on the loop the job is
 *    "settled": on failure its counts are merged back into r->cur and
 *    retried on the next tick (nothing lost while the process lives).
 *    One job at a time; a tick while one is in flight does nothing.
 *  - Loop-thread database users (flush, reports, delivery state, close)
 *    call rpt_db(), which waits for the job in flight (a condition
 *    variable: the worker sets job->done) and settles it, so the one
 *    SQLite connection is never used by two threads.
 *  - mxg_rpt_close() waits for the job, writes r->cur synchronously,
 *    closes the database, then closes the timer; the struct is freed when
 *    the last callback due (the timer's close, a job's after-work) has run.
 *  - The in-memory aggregate is capped (RPT_MAX_BYTES): only when the
 *    database has been unwritable for long does it fill up; then results
 *    with new keys are dropped and counted (logged once per tick), while
 *    existing counters keep counting.
 *  - Without a loop, or with a SQLite built without thread support, writes
 *    happen synchronously (tick, explicit flush, close).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../core/log.h"
#include "rpt_int.h"

#define RPT_MAX_BYTES (64u << 20) /* in-memory aggregate cap */
#define RPT_BIG_FIELD (192u << 10) /* policy-string, mx-host: a whole TLSA RRset (64 KB
                                      * of data as hex, §Limits) is never cut */
#define RPT_SMALL_FIELD 1024  /* everything else */
#define RPT_FAIL_LOG_EVERY_MS 60000

struct rpt_job {
    uv_work_t req;
    struct mxg_rpt *r;
    struct rpt_tab batch;
    int rc;
    int done;       /* set by the worker under r->mu */
    int settled;    /* loop side done with the result */
    char err[256];
};

/* Scratch layout: field i at scratch + off[i], capacity cap[i]. */
static size_t field_cap(int i)
{
    return (i == RF_PSTRING || i == RF_MXHOST) ? RPT_BIG_FIELD + 1 : RPT_SMALL_FIELD + 1;
}

static size_t field_off(int i)
{
    size_t off = 0;
    for (int k = 0; k < i; k++)
        off += field_cap(k);
    return off;
}

/* ------------------------------------------------------------ write outcome */

static void write_ok(struct mxg_rpt *r)
{
    if (r->fail_streak)
        LOG_N(RPT_COMP, "%s: writing counters again after %u failed attempts", r->path,
              r->fail_streak);
    r->fail_streak = 0;
}

static void write_failed(struct mxg_rpt *r, const char *why)
{
    uint64_t now = r->loop ? uv_now(r->loop) : 0;
    if (r->fail_streak++ == 0 || !r->loop || now - r->last_fail_log >= RPT_FAIL_LOG_EVERY_MS) {
        LOG_E(RPT_COMP, "%s: cannot write counters (%s); %llu results kept in memory, retrying",
              r->path, why, (unsigned long long)r->cur.sessions);
        r->last_fail_log = now;
    }
}

static void report_dropped(struct mxg_rpt *r)
{
    if (!r->dropped)
        return;
    LOG_W(RPT_COMP, "%s: %llu results dropped: in-memory buffer full (%u MiB)", r->path,
          (unsigned long long)r->dropped, RPT_MAX_BYTES >> 20);
    r->dropped = 0;
}

/* ------------------------------------------------------------ jobs */

/* Loop thread, job finished: merge a failed batch back, free it. */
static void job_settle(struct mxg_rpt *r, struct rpt_job *j)
{
    if (j->settled)
        return;
    j->settled = 1;
    if (j->rc != 0) {
        /* the counts go back in front of what came since: nothing lost */
        if (rpt_tab_merge(&j->batch, &r->cur) == 0) {
            rpt_tab_free(&r->cur);
            r->cur = j->batch;
            memset(&j->batch, 0, sizeof j->batch);
        } else {
            LOG_E(RPT_COMP, "%s: out of memory: %llu results lost", r->path,
                  (unsigned long long)j->batch.sessions);
        }
        write_failed(r, j->err);
    } else {
        write_ok(r);
    }
    rpt_tab_free(&j->batch);
    if (r->job == j)
        r->job = NULL;
}

static void job_work(uv_work_t *req)
{
    struct rpt_job *j = req->data;
    struct mxg_rpt *r = j->r;
    j->rc = rpt_store_add(&r->store, &j->batch, j->err, sizeof j->err);
    uv_mutex_lock(&r->mu);
    j->done = 1;
    uv_cond_signal(&r->cv);
    uv_mutex_unlock(&r->mu);
}

static void rpt_free(struct mxg_rpt *r)
{
    if (r->threaded) {
        uv_cond_destroy(&r->cv);
        uv_mutex_destroy(&r->mu);
    }
    rpt_tab_free(&r->cur);
    free(r->scratch);
    free(r);
}

static void maybe_free(struct mxg_rpt *r)
{
    if (r->closing && r->pending == 0)
        rpt_free(r);
}

static void job_after(uv_work_t *req, int status)
{
    struct rpt_job *j = req->data;
    struct mxg_rpt *r = j->r;
    (void)status; /* jobs are never cancelled */
    job_settle(r, j);
    free(j);
    r->pending--;
    maybe_free(r);
}

/* Wait for the job in flight (if any) and settle it. */
static void job_wait(struct mxg_rpt *r)
{
    struct rpt_job *j = r->job;
    if (!j)
        return;
    uv_mutex_lock(&r->mu);
    while (!j->done)
        uv_cond_wait(&r->cv, &r->mu);
    uv_mutex_unlock(&r->mu);
    job_settle(r, j);
}

/* Contract: tlsrpt.h. */
int mxg_rpt_outbox_busy(struct mxg_rpt *r)
{
    int busy;
    if (!r->job)
        return 0;
    uv_mutex_lock(&r->mu);
    busy = !r->job->done;
    uv_mutex_unlock(&r->mu);
    return busy;
}

/* Contract: see rpt_int.h. */
sqlite3 *rpt_db(struct mxg_rpt *r)
{
    job_wait(r);
    return r->store.db;
}

/* Write r->cur on this thread. 0 or MXG_RPT_EDB (r->cur kept). */
static int flush_sync(struct mxg_rpt *r)
{
    char why[256];
    int rc;
    job_wait(r);
    report_dropped(r);
    if (!r->cur.count)
        return 0;
    rc = rpt_store_add(&r->store, &r->cur, why, sizeof why);
    if (rc != 0) {
        write_failed(r, why);
        return rc;
    }
    write_ok(r);
    rpt_tab_free(&r->cur);
    return 0;
}

static void on_tick(uv_timer_t *t)
{
    struct mxg_rpt *r = t->data;
    struct rpt_job *j;

    if (r->closing || r->job)
        return; /* the job in flight is still writing: next tick */
    report_dropped(r);
    if (!r->cur.count)
        return;
    if (!r->threaded || !(j = calloc(1, sizeof *j))) {
        flush_sync(r);
        return;
    }
    j->r = r;
    j->req.data = j;
    j->batch = r->cur;
    memset(&r->cur, 0, sizeof r->cur);
    if (uv_queue_work(r->loop, &j->req, job_work, job_after) != 0) {
        r->cur = j->batch;
        free(j);
        flush_sync(r);
        return;
    }
    r->job = j;
    r->pending++;
}

/* ------------------------------------------------------------ open/close */

/* Contract: see tlsrpt.h. */
struct mxg_rpt *mxg_rpt_open(uv_loop_t *loop, const char *db_path, uint64_t flush_ms, char *err,
                             size_t errlen)
{
    struct mxg_rpt *r;

    rpt_set_err(err, errlen, "%s", "");
    if (!db_path || !db_path[0] || strlen(db_path) >= sizeof r->path) {
        rpt_set_err(err, errlen, "TLSRPT database: %s", db_path && db_path[0] ? "path too long"
                                                                               : "no path given");
        return NULL;
    }
    if (!(r = calloc(1, sizeof *r)) ||
        !(r->scratch = malloc(field_off(RF_COUNT)))) {
        rpt_set_err(err, errlen, "TLSRPT database %s: out of memory", db_path);
        if (r)
            free(r);
        return NULL;
    }
    snprintf(r->path, sizeof r->path, "%s", db_path);
    r->loop = loop;
    r->flush_ms = flush_ms ? flush_ms : MXG_RPT_DEFAULT_FLUSH_MS;
    if (rpt_store_open(&r->store, db_path, err, errlen) != 0) {
        free(r->scratch);
        free(r);
        return NULL;
    }
    if (loop && sqlite3_threadsafe()) {
        if (uv_mutex_init(&r->mu) == 0) {
            if (uv_cond_init(&r->cv) == 0)
                r->threaded = 1;
            else
                uv_mutex_destroy(&r->mu);
        }
    }
    if (loop) {
        /* last: nothing above needs the loop to be undone */
        uv_timer_init(loop, &r->timer);
        r->timer.data = r;
        uv_timer_start(&r->timer, on_tick, r->flush_ms, r->flush_ms);
        uv_unref((uv_handle_t *)&r->timer); /* the timer alone keeps no loop running */
    }
    LOG_D(RPT_COMP, "opened %s (flush every %llu ms%s)", r->path, (unsigned long long)r->flush_ms,
          r->threaded ? ", background writes" : "");
    return r;
}

static void on_timer_closed(uv_handle_t *h)
{
    struct mxg_rpt *r = h->data;
    r->pending--;
    maybe_free(r);
}

/* Contract: see tlsrpt.h. */
void mxg_rpt_close(struct mxg_rpt *r)
{
    if (!r || r->closing)
        return;
    if (r->loop)
        uv_timer_stop(&r->timer);
    if (flush_sync(r) != 0)
        LOG_E(RPT_COMP, "%s: closing: %llu results could not be written and are lost", r->path,
              (unsigned long long)r->cur.sessions);
    report_dropped(r);
    r->closing = 1;
    rpt_store_close(&r->store);
    if (r->loop) {
        r->pending++;
        uv_close((uv_handle_t *)&r->timer, on_timer_closed);
        return;
    }
    maybe_free(r);
}

/* Contract: see tlsrpt.h. */
int mxg_rpt_flush(struct mxg_rpt *r)
{
    if (!r || r->closing)
        return MXG_RPT_EINVAL;
    return flush_sync(r);
}

/* ------------------------------------------------------------ record */

/* Log value: "-" if empty, quoted if it has spaces or quotes, control
 * characters and backslashes escaped (values come from remote servers). */
static const char *log_val(const char *s, char *buf, size_t cap)
{
    size_t o = 0;
    int quote = 0;
    if (!s || !*s)
        return "-";
    for (const char *p = s; *p; p++)
        if (*p == ' ' || *p == '"' || *p == '=')
            quote = 1;
    if (quote && o + 1 < cap)
        buf[o++] = '"';
    for (const unsigned char *p = (const unsigned char *)s; *p && o + 5 < cap; p++) {
        if (*p < 0x20 || *p == 0x7f) {
            o += (size_t)snprintf(buf + o, cap - o, "\\x%02x", *p);
        } else {
            if (*p == '"' || *p == '\\')
                buf[o++] = '\\';
            buf[o++] = (char)*p;
        }
    }
    if (quote && o + 1 < cap)
        buf[o++] = '"';
    buf[o] = '\0';
    return buf;
}

static int is_sts_failure(const char *rt)
{
    return strcmp(rt, MXG_RPT_R_STS_POLICY_FETCH_ERROR) == 0 ||
           strcmp(rt, MXG_RPT_R_STS_POLICY_INVALID) == 0 ||
           strcmp(rt, MXG_RPT_R_STS_WEBPKI_INVALID) == 0;
}

static void log_failure(const char *const *f)
{
    char d[300], t[40], rt[80], mx[300], ip[80], why[400];
    const char *reason = f[RF_CODE][0] ? f[RF_CODE] : f[RF_INFO];
    LOG_N(RPT_COMP, "policy-domain=%s policy-type=%s result-type=%s mx=%s ip=%s reason=%s",
          log_val(f[RF_DOMAIN], d, sizeof d), log_val(f[RF_PTYPE], t, sizeof t),
          log_val(f[RF_RTYPE], rt, sizeof rt), log_val(f[RF_MXNAME], mx, sizeof mx),
          log_val(f[RF_RIP], ip, sizeof ip), log_val(reason, why, sizeof why));
}

/* Contract: see tlsrpt.h. */
void mxg_rpt_record(struct mxg_rpt *r, const struct mxg_rpt_policy *p,
                    const struct mxg_rpt_result *res, int64_t unix_time)
{
    char *f[RF_COUNT];
    char dom[MXG_RPT_DOMAIN_MAX];
    const char *ptype;
    enum mxg_rpt_policy_type type;
    struct rpt_ent *pol, *det;
    int failed;

    if (!r || r->closing)
        return;
    if (!p || !res) {
        LOG_W(RPT_COMP, "result without policy or outcome: not counted");
        return;
    }
    for (int i = 0; i < RF_COUNT; i++)
        f[i] = r->scratch + field_off(i);
    failed = !res->success;

    if (unix_time <= 0)
        unix_time = (int64_t)time(NULL);
    rpt_clean_utf8(f[RF_DOMAIN], field_cap(RF_DOMAIN), p->domain, RPT_SMALL_FIELD);
    if (rpt_day_of(unix_time, f[RF_DAY]) != 0 || rpt_domain_norm(f[RF_DOMAIN], dom) != 0) {
        LOG_W(RPT_COMP, "result for policy domain \"%.80s\" at %lld: bad domain or time, "
              "not counted", f[RF_DOMAIN], (long long)unix_time);
        return;
    }
    memcpy(f[RF_DOMAIN], dom, strlen(dom) + 1);
    type = p->type;
    if (!res->success) {
        const char *rt = res->result_type && res->result_type[0] ? res->result_type
                                                                 : MXG_RPT_R_VALIDATION_FAILURE;
        rpt_clean_utf8(f[RF_RTYPE], field_cap(RF_RTYPE), rt, 128);
        if (is_sts_failure(f[RF_RTYPE]))
            /* STS policy failures count under sts (docs/ARCHITECTURE.md §TLSRPT counting) */
            type = MXG_RPT_STS;
        rpt_clean_utf8(f[RF_SIP], field_cap(RF_SIP), res->sending_mta_ip, RPT_SMALL_FIELD);
        rpt_clean_utf8(f[RF_MXNAME], field_cap(RF_MXNAME), res->receiving_mx_hostname,
                       RPT_SMALL_FIELD);
        rpt_clean_utf8(f[RF_HELO], field_cap(RF_HELO), res->receiving_mx_helo, RPT_SMALL_FIELD);
        rpt_clean_utf8(f[RF_RIP], field_cap(RF_RIP), res->receiving_ip, RPT_SMALL_FIELD);
        rpt_clean_utf8(f[RF_INFO], field_cap(RF_INFO), res->additional_information,
                       RPT_SMALL_FIELD);
        rpt_clean_utf8(f[RF_CODE], field_cap(RF_CODE), res->failure_reason_code,
                       RPT_SMALL_FIELD);
    }
    if (!(ptype = mxg_rpt_policy_type_name(type))) {
        LOG_W(RPT_COMP, "result for %s with unknown policy type %d: not counted", dom, (int)type);
        return;
    }
    snprintf(f[RF_PTYPE], field_cap(RF_PTYPE), "%s", ptype);
    rpt_clean_utf8(f[RF_PSTRING], field_cap(RF_PSTRING), p->policy_string, RPT_BIG_FIELD);
    rpt_clean_utf8(f[RF_MXHOST], field_cap(RF_MXHOST), p->mx_host, RPT_BIG_FIELD);

    if (failed)
        log_failure((const char *const *)f);

    /* a new key needs room (pol and det may both be new): when the buffer
     * is full only results of existing counters are still counted */
    pol = rpt_tab_find(&r->cur, NULL, (const char *const *)f, RPT_POL_NF);
    det = pol && failed ? rpt_tab_find(&r->cur, pol, (const char *const *)f + RF_RTYPE, RPT_DET_NF)
                        : NULL;
    if ((!pol || (failed && !det)) && r->cur.bytes >= RPT_MAX_BYTES) {
        r->dropped++;
        return;
    }
    if (!pol && !(pol = rpt_tab_get(&r->cur, NULL, (const char *const *)f, RPT_POL_NF))) {
        r->dropped++;
        return;
    }
    if (failed && !det &&
        !(det = rpt_tab_get(&r->cur, pol, (const char *const *)f + RF_RTYPE, RPT_DET_NF))) {
        r->dropped++;
        return;
    }
    if (failed) {
        det->fail++;
        pol->fail++;
    } else {
        pol->ok++;
    }
    r->cur.sessions++;
}
