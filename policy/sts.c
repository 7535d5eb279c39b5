/* policy/sts.c — MTA-STS discovery, fetch, cache and refresh; see sts.h.
 *
 * One struct job per domain in flight (concurrent gets share it); each get
 * is a struct mxg_sts_query waiting on a job. A job: cache lookup (sync) →
 * TXT lookup → decision → maybe address lookup of mta-sts.D + HTTPS fetch →
 * result to every waiter. */
#include "sts.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "../core/str.h"
#include "../core/log.h"
#include "../core/zero.h"

#define STS_PATH "/.well-known/mta-sts.txt"

enum txt_state { TXT_NONE = 0, TXT_ID, TXT_INVALID, TXT_UNAVAILABLE };

struct job;

struct mxg_sts_query {
    struct job *job; /* NULL once delivered */
    struct mxg_sts_query *next;
    mxg_sts_cb cb;
    void *arg;
};

struct job {
    struct mxg_sts *s;
    struct job *next;
    char domain[MXG_DNS_NAME_MAX];
    char host[MXG_DNS_NAME_MAX + 8]; /* mta-sts.DOMAIN */
    struct mxg_dns_query *dq;
    struct mxg_https_req *hr;
    struct mxg_sts_cache_entry cached;
    int have_cached;      /* a parseable, unexpired cached policy */
    int cache_error;      /* the cache could not tell whether a policy is cached */
    enum txt_state txt;
    char txt_id[MXG_STS_ID_MAX + 1];
    char txt_why[200];
    struct mxg_sts_query *waiters;
    int deferred; /* the TXT lookup could not start: decide() from the kick timer */
    /* last: 33 KB mostly of policy pattern slots, cleared (not zeroed) by job_start */
    struct mxg_sts_policy cached_policy;
    struct mxg_sts_result res;
};

struct mxg_sts {
    uv_loop_t *loop;
    const struct mxg_config *cfg;
    struct mxg_dns *dns;
    struct mxg_https *https;
    struct mxg_sts_cache *cache;
    mxg_sts_stored_cb stored_cb; /* observer of freshly stored policies, or NULL */
    void *stored_arg;
    struct job *jobs;
    uv_timer_t sweep;
    uv_timer_t kick; /* runs decide() for deferred jobs (callbacks are never synchronous) */
    int n_handles;   /* open uv handles; s is freed when the last one is closed */
    int sweep_on;
};

const char *mxg_sts_outcome_name(enum mxg_sts_outcome o)
{
    switch (o) {
    case MXG_STS_NO_POLICY: return "no-policy";
    case MXG_STS_POLICY: return "policy";
    case MXG_STS_FAILED: return "failed";
    case MXG_STS_UNKNOWN: return "unknown";
    }
    return "?";
}

const char *mxg_sts_failure_name(enum mxg_sts_failure f)
{
    switch (f) {
    case MXG_STS_FAIL_NONE: return "none";
    case MXG_STS_FAIL_FETCH: return "sts-policy-fetch-error";
    case MXG_STS_FAIL_INVALID: return "sts-policy-invalid";
    case MXG_STS_FAIL_WEBPKI: return "sts-webpki-invalid";
    }
    return "?";
}

/* ------------------------------------------------------------- jobs */

static void job_unlink(struct job *j)
{
    struct job **pp = &j->s->jobs;
    while (*pp && *pp != j)
        pp = &(*pp)->next;
    if (*pp)
        *pp = j->next;
}

static void job_free(struct job *j)
{
    if (j->dq)
        mxg_dns_cancel(j->dq);
    if (j->hr)
        mxg_https_cancel(j->hr);
    mxg_sts_cache_entry_clear(&j->cached);
    free(j);
}

/* Deliver the result to every waiter and end the job. */
static void job_finish(struct job *j)
{
    struct mxg_sts_result *r = &j->res;
    /* Routine outcomes (no policy, a cached policy still in force) are debug: the
     * info log is one line per transaction outcome. A fetch, a failure or a
     * cache that cannot be read is news and stays at info. */
    int routine = r->failure == MXG_STS_FAIL_NONE &&
                  (r->outcome == MXG_STS_NO_POLICY || (r->outcome == MXG_STS_POLICY && r->from_cache));
    mxg_log(routine ? MXG_LOG_DEBUG : MXG_LOG_INFO, "sts", "%s: %s%s%s — %s", j->domain,
          mxg_sts_outcome_name(r->outcome),
          r->outcome == MXG_STS_POLICY ? " mode=" : "",
          r->outcome == MXG_STS_POLICY ? mxg_sts_mode_name(r->policy.mode) : "", r->why);
    job_unlink(j);
    while (j->waiters) {
        struct mxg_sts_query *q = j->waiters;
        j->waiters = q->next;
        q->job = NULL;
        q->cb(q->arg, r);
        free(q);
    }
    job_free(j);
}

/* Contract: see sts.h. */
void mxg_sts_result_clear(struct mxg_sts_result *r)
{
    r->outcome = MXG_STS_NO_POLICY;
    mxg_sts_policy_clear(&r->policy);
    r->id[0] = '\0';
    r->from_cache = 0;
    r->expires_at = 0;
    r->failure = MXG_STS_FAIL_NONE;
    r->why[0] = '\0';
}

/* Contract: see sts.h. */
void mxg_sts_result_copy(struct mxg_sts_result *dst, const struct mxg_sts_result *src)
{
    dst->outcome = src->outcome;
    mxg_sts_policy_copy(&dst->policy, &src->policy);
    memcpy(dst->id, src->id, sizeof dst->id);
    dst->from_cache = src->from_cache;
    dst->expires_at = src->expires_at;
    dst->failure = src->failure;
    memcpy(dst->why, src->why, sizeof dst->why);
}

static int64_t now_s(void)
{
    return (int64_t)time(NULL);
}

static void use_cached(struct job *j, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void use_cached(struct job *j, const char *fmt, ...)
{
    struct mxg_sts_result *r = &j->res;
    r->outcome = MXG_STS_POLICY;
    mxg_sts_policy_copy(&r->policy, &j->cached_policy);
    r->from_cache = 1;
    mxg_str_copy(r->id, sizeof r->id, j->cached.id);
    r->expires_at = j->cached.expires_at;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->why, sizeof r->why, fmt, ap);
    va_end(ap);
}

static void fail(struct job *j, enum mxg_sts_failure f, const char *why)
{
    struct mxg_sts_result *r = &j->res;
    if (j->have_cached) { /* a failed refresh never removes a valid cached policy */
        use_cached(j, "cached policy kept: refresh failed: %s", why);
        r->failure = f;
        return;
    }
    r->outcome = j->cache_error ? MXG_STS_UNKNOWN : MXG_STS_FAILED;
    r->failure = f;
    snprintf(r->why, sizeof r->why, "%s%s", why,
             j->cache_error ? "; and the MTA-STS cache could not be read" : "");
}

/* -------------------------------------------------------------- fetch */

static void on_https(void *arg, const struct mxg_https_result *hr)
{
    struct job *j = arg;
    j->hr = NULL;
    char why[400];
    if (hr->err != MXG_HTTPS_OK) {
        snprintf(why, sizeof why, "policy fetch from https://%s%s failed: %s", j->host, STS_PATH,
                 hr->why[0] ? hr->why : mxg_https_err_name(hr->err));
        fail(j, hr->err == MXG_HTTPS_ERR_WEBPKI ? MXG_STS_FAIL_WEBPKI : MXG_STS_FAIL_FETCH, why);
        job_finish(j);
        return;
    }
    struct mxg_sts_policy p;
    char perr[200];
    if (mxg_sts_policy_parse(hr->body, hr->body_len, &p, perr, sizeof perr) < 0) {
        snprintf(why, sizeof why, "policy from https://%s%s is invalid: %s", j->host, STS_PATH, perr);
        fail(j, MXG_STS_FAIL_INVALID, why);
        job_finish(j);
        return;
    }
    if (p.mx_dropped)
        LOG_W("sts", "%s: policy id %s has %d mx patterns more than the %d mxguard keeps: only "
                     "MX hosts matching the first %d are allowed",
              j->domain, j->txt_id, p.mx_dropped, MXG_STS_MAX_MX, MXG_STS_MAX_MX);
    int64_t now = now_s();
    struct mxg_sts_result *r = &j->res;
    r->outcome = MXG_STS_POLICY;
    mxg_sts_policy_copy(&r->policy, &p);
    mxg_str_copy(r->id, sizeof r->id, j->txt_id);
    r->expires_at = now + (int64_t)p.max_age;
    snprintf(r->why, sizeof r->why, "policy id %s fetched from https://%s%s (max_age %u)",
             j->txt_id, j->host, STS_PATH, p.max_age);
    if (j->s->cache) {
        struct mxg_sts_cache_entry e;
        memset(&e, 0, sizeof e);
        mxg_str_copy(e.domain, sizeof e.domain, j->domain);
        mxg_str_copy(e.id, sizeof e.id, j->txt_id);
        e.body = (char *)hr->body;
        e.body_len = hr->body_len;
        e.fetched_at = now;
        e.expires_at = r->expires_at;
        if (mxg_sts_cache_put_ex(j->s->cache, &e, 1) < 0) /* fresh: into the fleet's outbox */
            LOG_W("sts", "%s: could not store the policy in the cache", j->domain);
        else if (j->s->stored_cb)
            j->s->stored_cb(j->s->stored_arg, &e);
    }
    job_finish(j);
}

static void on_host_addr(void *arg, const struct mxg_addr_result *a)
{
    struct job *j = arg;
    j->dq = NULL;
    char why[400];
    if (a->status != MXG_DNS_OK || a->n == 0) {
        snprintf(why, sizeof why, "cannot resolve %s: %s", j->host,
                 a->why[0] ? a->why : mxg_dns_status_name(a->status));
        fail(j, MXG_STS_FAIL_FETCH, why);
        job_finish(j);
        return;
    }
    const struct mxg_config *cfg = j->s->cfg;
    struct mxg_https_opts o = {
        .host = j->host,
        .port = cfg->sts_https_port,
        .path = STS_PATH,
        .addrs = a->addr,
        .n_addrs = a->n,
        .connect_timeout_ms = cfg->sts_connect_timeout_ms,
        .total_timeout_ms = cfg->sts_fetch_timeout_ms,
        .max_body = (size_t)cfg->sts_max_body,
        .require_ctype = "text/plain",
        .source_ip = a->addr[0].ss_family == AF_INET6 ? cfg->source_ipv6 : cfg->source_ipv4,
    };
    if (mxg_https_get(j->s->https, &o, on_https, j, &j->hr) < 0) {
        fail(j, MXG_STS_FAIL_FETCH, "cannot start the HTTPS fetch");
        job_finish(j);
    }
}

static void start_fetch(struct job *j)
{
    LOG_D("sts", "%s: fetching policy id %s from https://%s%s", j->domain, j->txt_id, j->host,
          STS_PATH);
    if (mxg_dns_lookup_addr(j->s->dns, j->host, on_host_addr, j, &j->dq) < 0) {
        fail(j, MXG_STS_FAIL_FETCH, "cannot start the address lookup of the policy host");
        job_finish(j);
    }
}

/* ------------------------------------------------------------ decision */

static void decide(struct job *j)
{
    int64_t now = now_s();
    const struct mxg_config *cfg = j->s->cfg;
    char why[400];
    if (j->have_cached) {
        if (j->txt == TXT_ID && strcmp(j->txt_id, j->cached.id) == 0) {
            int64_t exp = now + (int64_t)j->cached_policy.max_age;
            int64_t last = j->cached.fetched_at;
            /* the fleet's copy is extended too, at most once per refresh_min_interval
             * (through the cache's outbox, in the touch's transaction) */
            int pub = j->s->stored_cb && (now - last) * 1000 >= (int64_t)cfg->sts_refresh_min_ms;
            if (j->s->cache && mxg_sts_cache_touch_ex(j->s->cache, j->domain, now, exp, pub) == 0) {
                j->cached.expires_at = exp;
                j->cached.fetched_at = now;
                if (pub)
                    j->s->stored_cb(j->s->stored_arg, &j->cached);
            }
            use_cached(j, "cached policy id %s still current (TXT id unchanged)", j->cached.id);
            job_finish(j);
            return;
        }
        if (j->txt == TXT_ID) {
            if ((uint64_t)(now - j->cached.fetched_at) * 1000 < cfg->sts_refresh_min_ms) {
                use_cached(j, "cached policy used: TXT id changed but the last fetch was less "
                              "than mta_sts.refresh_min_interval ago%s", "");
                job_finish(j);
                return;
            }
            start_fetch(j); /* new id: refetch; failure keeps the cached policy */
            return;
        }
        use_cached(j, "cached policy used: %s (a missing TXT record does not remove a cached "
                      "policy, RFC 8461 §3.1)", j->txt_why);
        job_finish(j);
        return;
    }
    switch (j->txt) {
    case TXT_ID:
        start_fetch(j);
        return;
    case TXT_NONE:
        if (j->cache_error) { /* a stripped TXT record must not hide a cached policy */
            j->res.outcome = MXG_STS_UNKNOWN;
            snprintf(j->res.why, sizeof j->res.why, "%s, and the MTA-STS cache could not be read "
                     "(a cached policy may apply)", j->txt_why);
            break;
        }
        j->res.outcome = MXG_STS_NO_POLICY;
        mxg_str_copy(j->res.why, sizeof j->res.why, j->txt_why);
        if (j->cached.domain[0] && j->s->cache) /* expired and withdrawn: forget it */
            mxg_sts_cache_delete(j->s->cache, j->domain);
        break;
    case TXT_INVALID:
        mxg_str_copy(why, sizeof why, j->txt_why);
        fail(j, MXG_STS_FAIL_INVALID, why);
        break;
    case TXT_UNAVAILABLE:
        mxg_str_copy(why, sizeof why, j->txt_why);
        fail(j, MXG_STS_FAIL_FETCH, why);
        break;
    }
    job_finish(j);
}

static void on_txt(void *arg, const struct mxg_txt_result *t)
{
    struct job *j = arg;
    j->dq = NULL;
    if (t->status == MXG_DNS_OK) {
        /* the whole RRset (dns.h: never cut): the one-STS-record rule of
         * RFC 8461 §3.1 is judged on every record */
        char why[160];
        int rc = mxg_sts_txt_select((const char *const *)t->txt, t->len, t->n, j->txt_id, why,
                                    sizeof why);
        if (rc == 1) {
            j->txt = TXT_ID;
            snprintf(j->txt_why, sizeof j->txt_why, "TXT _mta-sts.%s id=%s", j->domain, j->txt_id);
        } else if (rc == 0) {
            j->txt = TXT_NONE;
            mxg_str_join3(j->txt_why, sizeof j->txt_why, "no MTA-STS record at _mta-sts.", j->domain, "");
        } else {
            j->txt = TXT_INVALID;
            snprintf(j->txt_why, sizeof j->txt_why, "invalid TXT at _mta-sts.%s: %s", j->domain, why);
        }
    } else if (t->status == MXG_DNS_NODATA || t->status == MXG_DNS_NXDOMAIN) {
        j->txt = TXT_NONE;
        snprintf(j->txt_why, sizeof j->txt_why, "no MTA-STS record at _mta-sts.%s (%s)", j->domain,
                 mxg_dns_status_name(t->status));
    } else {
        /* TEMPFAIL (also: an RRset mxguard could not keep whole), BOGUS:
         * an unreachable _mta-sts, never "no record" */
        j->txt = TXT_UNAVAILABLE;
        snprintf(j->txt_why, sizeof j->txt_why, "TXT lookup of _mta-sts.%s failed: %s", j->domain,
                 t->why[0] ? t->why : mxg_dns_status_name(t->status));
    }
    decide(j);
}

/* The kick timer: decide every job whose TXT lookup could not start. */
static void on_kick(uv_timer_t *t)
{
    struct mxg_sts *s = t->data;
    for (;;) {
        struct job *j = s->jobs;
        while (j && !j->deferred)
            j = j->next;
        if (!j)
            return;
        j->deferred = 0;
        decide(j); /* may finish (and free) j: look again from the start */
    }
}

static struct job *job_start(struct mxg_sts *s, const char *domain)
{
    struct job *j = malloc(sizeof *j);
    if (!j)
        return NULL;
    memset(j, 0, offsetof(struct job, cached_policy)); /* the rest: cleared below */
    mxg_sts_policy_clear(&j->cached_policy);
    MXG_ZERO_BETWEEN(j, struct job, cached_policy, res);
    mxg_sts_result_clear(&j->res);
    MXG_ZERO_AFTER(j, struct job, res);
    j->s = s;
    mxg_str_copy(j->domain, sizeof j->domain, domain);
    mxg_str_join3(j->host, sizeof j->host, "mta-sts.", domain, "");
    int crc = s->cache ? mxg_sts_cache_get(s->cache, domain, &j->cached) : 0;
    if (crc < 0) { /* cannot tell: never "nothing cached" (fail closed, sts.h) */
        LOG_E("sts", "%s: the MTA-STS cache could not be read: mail to this domain is deferred "
                     "unless a valid policy can be fetched now", domain);
        j->cache_error = 1;
    } else if (crc == 1) {
        char why[200];
        if (j->cached.expires_at <= now_s()) {
            LOG_D("sts", "%s: cached policy id %s expired", domain, j->cached.id);
        } else if (mxg_sts_policy_parse(j->cached.body, j->cached.body_len, &j->cached_policy, why,
                                        sizeof why) < 0) {
            LOG_E("sts", "%s: cached policy id %s unreadable (%s): mail to this domain is "
                         "deferred unless a valid policy can be fetched now", domain,
                  j->cached.id, why);
            j->cache_error = 1;
        } else {
            j->have_cached = 1;
        }
    }
    char name[MXG_DNS_NAME_MAX + 16];
    mxg_str_join3(name, sizeof name, "_mta-sts.", domain, "");
    if (mxg_dns_lookup_txt(s->dns, name, on_txt, j, &j->dq) < 0) {
        /* The lookup cannot even start (resolver shut down or overloaded,
         * out of memory, a name DNS cannot carry): judged as an unreachable
         * _mta-sts — a cached policy applies, else "no policy" with a fetch
         * error (the policy list then applies). Decided from the loop. */
        j->dq = NULL;
        j->txt = TXT_UNAVAILABLE;
        snprintf(j->txt_why, sizeof j->txt_why, "TXT lookup of _mta-sts.%s could not be started",
                 domain);
        j->deferred = 1;
        uv_timer_start(&s->kick, on_kick, 0, 0);
    }
    j->next = s->jobs;
    s->jobs = j;
    return j;
}

/* ------------------------------------------------------------ public */

struct mxg_sts *mxg_sts_new(uv_loop_t *loop, const struct mxg_config *cfg, struct mxg_dns *dns,
                            struct mxg_https *https, struct mxg_sts_cache *cache)
{
    struct mxg_sts *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->loop = loop;
    s->cfg = cfg;
    s->dns = dns;
    s->https = https;
    s->cache = cache;
    uv_timer_init(loop, &s->sweep);
    uv_timer_init(loop, &s->kick);
    s->sweep.data = s->kick.data = s;
    s->n_handles = 2;
    return s;
}

static void sts_handle_closed(uv_handle_t *h)
{
    struct mxg_sts *s = h->data;
    if (--s->n_handles == 0)
        free(s);
}

void mxg_sts_free(struct mxg_sts *s)
{
    if (!s)
        return;
    while (s->jobs) {
        struct job *j = s->jobs;
        s->jobs = j->next;
        struct mxg_sts_query *q = j->waiters;
        while (q) {
            struct mxg_sts_query *n = q->next;
            free(q);
            q = n;
        }
        job_free(j);
    }
    uv_close((uv_handle_t *)&s->sweep, sts_handle_closed);
    uv_close((uv_handle_t *)&s->kick, sts_handle_closed);
}

int mxg_sts_get(struct mxg_sts *s, const char *domain, mxg_sts_cb cb, void *arg,
                struct mxg_sts_query **qp)
{
    struct job *j = s->jobs;
    while (j && strcasecmp(j->domain, domain) != 0)
        j = j->next;
    if (!j && !(j = job_start(s, domain)))
        return -1;
    struct mxg_sts_query *q = calloc(1, sizeof *q);
    if (!q)
        return -1;
    q->job = j;
    q->cb = cb;
    q->arg = arg;
    q->next = j->waiters;
    j->waiters = q;
    *qp = q;
    return 0;
}

void mxg_sts_cancel(struct mxg_sts_query *q)
{
    if (!q || !q->job)
        return;
    struct mxg_sts_query **pp = &q->job->waiters;
    while (*pp && *pp != q)
        pp = &(*pp)->next;
    if (*pp)
        *pp = q->next;
    free(q); /* the job runs on: its result still fills the cache */
}

/* Contract: sts.h. */
void mxg_sts_set_stored_cb(struct mxg_sts *s, mxg_sts_stored_cb fn, void *arg)
{
    s->stored_cb = fn;
    s->stored_arg = arg;
}

/* ------------------------------------------------------------ refresh */

/* A stable pseudo-random point in [50%, 90%) of the policy's lifetime. */
static int64_t refresh_point(const struct mxg_sts_cache_entry *e)
{
    uint32_t h = 2166136261u;
    for (const char *c = e->domain; *c; c++)
        h = (h ^ (uint8_t)*c) * 16777619u;
    h ^= (uint32_t)e->fetched_at;
    h *= 16777619u;
    int64_t life = e->expires_at - e->fetched_at;
    return e->fetched_at + life / 2 + (int64_t)((uint64_t)life * (h % 400) / 1000);
}

static void sweep_one(void *arg, const struct mxg_sts_cache_entry *e)
{
    struct mxg_sts *s = arg;
    int64_t now = now_s();
    if (now < refresh_point(e) || e->expires_at <= now)
        return;
    for (struct job *j = s->jobs; j; j = j->next)
        if (strcasecmp(j->domain, e->domain) == 0)
            return;
    LOG_D("sts", "%s: proactive refresh (expires in %llds)", e->domain,
          (long long)(e->expires_at - now));
    job_start(s, e->domain); /* no waiters: it only updates the cache */
}

static void on_sweep(uv_timer_t *t)
{
    struct mxg_sts *s = t->data;
    if (s->cache)
        mxg_sts_cache_foreach(s->cache, sweep_one, s);
}

void mxg_sts_start_refresh(struct mxg_sts *s, uint64_t interval_ms)
{
    if (interval_ms == 0)
        interval_ms = 60000;
    uv_timer_start(&s->sweep, on_sweep, interval_ms, interval_ms);
}
