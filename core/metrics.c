/* core/metrics.c — see metrics.h. */
#include "metrics.h"

#include <math.h> /* isnan, isinf: macros, no libm */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum kind { K_COUNTER, K_GAUGE, K_HISTOGRAM };

struct family_def {
    const char *name;
    const char *help;
    enum kind kind;
    const char *label;              /* label name, NULL = none */
    const char *const *initial;     /* label values present from the start */
};

static const char *const rejected_reasons[] = {"not_allowed", "max_sessions", NULL};
static const char *const txn_outcomes[] = {"delivered", "queued", "temp_failed", "perm_failed", NULL};
static const char *const decision_sources[] = {"dane", "mta-sts", "mta-sts-testing", "list",
                                               "list-testing", "config", "opportunistic", NULL};
static const char *const tls_results[] = {"success", NULL};
static const char *const dns_statuses[] = {"ok", "nodata", "nxdomain", "tempfail", "bogus", NULL};
static const char *const ok_error[] = {"ok", "error", NULL};
static const char *const dns_paths[] = {"stub", "recursive", NULL};
static const char *const upstream_phases[] = {"connect", "tls_handshake", "final_reply", NULL};
static const char *const spool_outcomes[] = {"delivered", "deferred", "bounced", NULL};
static const char *const report_results[] = {"sent", "retry", "gave_up", NULL};
static const char *const reload_results[] = {"success", "failure", NULL};
static const char *const inbound_tls_results[] = {"success", "failure", NULL};
static const char *const inbound_auth_results[] = {"success", "failure", "refused", NULL};
static const char *const upstream_conn_hows[] = {"new", "reused", "stale", "limited", NULL};
static const char *const handshake_kinds[] = {"full", "resumed", NULL};
static const char *const busy_results[] = {"waited", "reused", "timeout", "bounded", NULL};

/* Indexed by enum mxg_metric (checked below). */
static const struct family_def defs[] = {
    [MXG_M_BUILD_INFO] = {"mxguard_build_info", "mxguard version (value always 1)", K_GAUGE,
                          "version", NULL},
    [MXG_M_START_TIME] = {"mxguard_start_time_seconds", "Start time (Unix seconds)", K_GAUGE,
                          NULL, NULL},
    [MXG_M_SESSIONS_TOTAL] = {"mxguard_sessions_total", "Inbound SMTP sessions accepted",
                              K_COUNTER, NULL, NULL},
    [MXG_M_SESSIONS_ACTIVE] = {"mxguard_sessions_active", "Inbound SMTP sessions open now",
                               K_GAUGE, NULL, NULL},
    [MXG_M_CONN_REJECTED] = {"mxguard_connections_rejected_total",
                             "Inbound connections refused at connect time", K_COUNTER, "reason",
                             rejected_reasons},
    [MXG_M_TRANSACTIONS] = {"mxguard_transactions_total",
                            "Inbound mail transactions by the final reply given to the client",
                            K_COUNTER, "outcome", txn_outcomes},
    [MXG_M_TXN_DURATION] = {"mxguard_transaction_duration_seconds",
                            "From MAIL FROM to the final reply of a transaction", K_HISTOGRAM,
                            NULL, NULL},
    [MXG_M_DECISIONS] = {"mxguard_policy_decisions_total",
                         "MX hosts used, by the policy source that governed them", K_COUNTER,
                         "source", decision_sources},
    [MXG_M_TLS_SESSIONS] = {"mxguard_tls_sessions_total",
                            "Upstream TLS session attempts by outcome (success or the "
                            "TLSRPT result-type)",
                            K_COUNTER, "result", tls_results},
    [MXG_M_DNS_QUERIES] = {"mxguard_dns_queries_total", "DNS lookups by outcome", K_COUNTER,
                           "status", dns_statuses},
    [MXG_M_DNS_DURATION] = {"mxguard_dns_query_duration_seconds",
                            "DNS lookups sent to the resolver, by record type", K_HISTOGRAM,
                            "type", NULL},
    [MXG_M_DNS_CACHE_ENTRIES] = {"mxguard_dns_cache_entries", "Entries in the DNS answer cache",
                                 K_GAUGE, NULL, NULL},
    [MXG_M_DNS_MODE] = {"mxguard_dns_mode",
                         "The resolver path in use (1) of dns.mode (auto: the one it chose)",
                         K_GAUGE, "mode", dns_paths},
    [MXG_M_HTTPS_REQUESTS] = {"mxguard_https_requests_total",
                              "HTTPS requests (MTA-STS policies, policy list, TLSRPT) by outcome",
                              K_COUNTER, "result", ok_error},
    [MXG_M_HTTPS_DURATION] = {"mxguard_https_request_duration_seconds",
                              "HTTPS request duration", K_HISTOGRAM, NULL, NULL},
    [MXG_M_UPSTREAM_DURATION] = {"mxguard_upstream_duration_seconds",
                                 "Upstream SMTP latency by phase", K_HISTOGRAM, "phase",
                                 upstream_phases},
    [MXG_M_STS_CACHE_ENTRIES] = {"mxguard_mta_sts_cache_entries",
                                 "Policies in the MTA-STS cache", K_GAUGE, NULL, NULL},
    [MXG_M_LIST_ENTRIES] = {"mxguard_policy_list_entries",
                            "Domains on the policy list in force (0: none in force)", K_GAUGE,
                            NULL, NULL},
    [MXG_M_SPOOL_MESSAGES] = {"mxguard_spool_messages", "Messages waiting in the spool",
                              K_GAUGE, NULL, NULL},
    [MXG_M_SPOOL_DELIVERIES] = {"mxguard_spool_deliveries_total",
                                "Delivery attempts from the spool by outcome", K_COUNTER,
                                "outcome", spool_outcomes},
    [MXG_M_REPORTS_SENT] = {"mxguard_tlsrpt_reports_total",
                            "TLSRPT report deliveries by outcome", K_COUNTER, "result",
                            report_results},
    [MXG_M_RELOADS] = {"mxguard_config_reloads_total", "SIGHUP reloads by outcome", K_COUNTER,
                       "result", reload_results},
    [MXG_M_RELOAD_TIME] = {"mxguard_config_last_reload_success_timestamp_seconds",
                           "Time of the last successful reload, or of the start (Unix seconds)",
                           K_GAUGE, NULL, NULL},
    [MXG_M_INBOUND_TLS] = {"mxguard_inbound_tls_total",
                           "Inbound STARTTLS handshakes by outcome", K_COUNTER, "result",
                           inbound_tls_results},
    [MXG_M_INBOUND_AUTH] = {"mxguard_inbound_auth_total",
                            "Inbound SMTP AUTH attempts by outcome (refused: locked out)",
                            K_COUNTER, "result", inbound_auth_results},
    [MXG_M_UPSTREAM_CONNS] = {"mxguard_upstream_connections_total",
                              "Upstream connections by how they were had", K_COUNTER, "how",
                              upstream_conn_hows},
    [MXG_M_UPSTREAM_BUSY] = {"mxguard_upstream_busy_waits_total",
                             "Waits for a busy cached upstream connection, by result", K_COUNTER,
                             "result", busy_results},
    [MXG_M_UPSTREAM_OPEN] = {"mxguard_upstream_connections_open",
                             "Upstream connections open now (all), of them idle in the cache",
                             K_GAUGE, "state", NULL},
    [MXG_M_UPSTREAM_HANDSHAKES] = {"mxguard_upstream_tls_handshakes_total",
                                   "Completed upstream TLS handshakes: full or resumed",
                                   K_COUNTER, "kind", handshake_kinds},
    [MXG_M_UPSTREAM_WRITES] = {"mxguard_upstream_writes_total",
                                "Writes (system calls) on upstream connections", K_COUNTER,
                                NULL, NULL},
    [MXG_M_STATE_UP] = {"mxguard_state_up",
                        "1: the shared state is reachable (or state.backend is sqlite), 0: not",
                        K_GAUGE, NULL, NULL},
    [MXG_M_STATE_PENDING] = {"mxguard_state_pending_pushes",
                             "Writes waiting for the shared state's database", K_GAUGE, NULL,
                             NULL},
};
_Static_assert(sizeof defs / sizeof defs[0] == MXG_M__COUNT, "one definition per metric");

/* Upper bounds of the histogram buckets, in milliseconds (+Inf implied). */
static const uint64_t bucket_ms[] = {5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000,
                                     30000, 60000, 120000};
#define N_BUCKETS (sizeof bucket_ms / sizeof bucket_ms[0])

struct series {
    char label[MXG_METRICS_LABEL_MAX];
    uint64_t count;              /* counter value; histogram count */
    double gauge;
    uint64_t buckets[N_BUCKETS]; /* histogram: per bucket, not cumulative */
    uint64_t sum_ms;
    mxg_metrics_read_fn fn;
    void *arg;
    uint64_t published; /* summed gauges: the value (double bits) mxg_metrics_publish saw */
};

/* Fixed storage (no pointers), so that a registry can live in memory shared by
 * the worker processes (mxg_metrics_new_at) and be read by another one: n is
 * published after its series is written (release/acquire). */
struct family {
    struct series s[MXG_METRICS_MAX_SERIES];
    int n;
};

struct mxg_metrics {
    struct family f[MXG_M__COUNT];
    int in_caller_memory; /* mxg_metrics_new_at: mxg_metrics_free leaves the memory */
};

static struct series *series_find(struct family *f, const char *label)
{
    for (int i = 0; i < f->n; i++)
        if (strcmp(f->s[i].label, label) == 0)
            return &f->s[i];
    return NULL;
}

static struct series *series_add(struct family *f, const char *label)
{
    if (f->n >= MXG_METRICS_MAX_SERIES)
        return NULL;
    struct series *s = &f->s[f->n];
    memset(s, 0, sizeof *s);
    snprintf(s->label, sizeof s->label, "%s", label);
    __atomic_store_n(&f->n, f->n + 1, __ATOMIC_RELEASE); /* a reader sees it whole */
    return s;
}

/* The series for label (created on first use; "other" once the family is
 * full). NULL: m is NULL, bad id, or out of memory. */
static struct series *get(struct mxg_metrics *m, enum mxg_metric id, const char *label)
{
    if (!m || (unsigned)id >= MXG_M__COUNT)
        return NULL;
    struct family *f = &m->f[id];
    if (!defs[id].label || !label)
        label = "";
    struct series *s = series_find(f, label);
    if (s)
        return s;
    if (f->n >= MXG_METRICS_MAX_SERIES - 1) {
        label = "other";
        if ((s = series_find(f, label)))
            return s;
    }
    return series_add(f, label);
}

/* The families without a label and those with fixed label values get their series. */
static struct mxg_metrics *metrics_init(struct mxg_metrics *m)
{
    for (int id = 0; id < MXG_M__COUNT; id++) {
        const struct family_def *d = &defs[id];
        if (!d->label && !get(m, (enum mxg_metric)id, NULL))
            goto fail;
        for (int i = 0; d->initial && d->initial[i]; i++)
            if (!get(m, (enum mxg_metric)id, d->initial[i]))
                goto fail;
    }
    mxg_metrics_set(m, MXG_M_BUILD_INFO, MXG_VERSION, 1);
    mxg_metrics_set(m, MXG_M_START_TIME, NULL, (double)time(NULL));
    mxg_metrics_set(m, MXG_M_RELOAD_TIME, NULL, (double)time(NULL));
    return m;
fail:
    mxg_metrics_free(m);
    return NULL;
}

struct mxg_metrics *mxg_metrics_new(void)
{
    struct mxg_metrics *m = calloc(1, sizeof *m);
    return m ? metrics_init(m) : NULL;
}

size_t mxg_metrics_size(void)
{
    return sizeof(struct mxg_metrics);
}

struct mxg_metrics *mxg_metrics_new_at(void *mem, size_t size)
{
    if (!mem || size < sizeof(struct mxg_metrics))
        return NULL;
    struct mxg_metrics *m = memset(mem, 0, sizeof *m);
    m->in_caller_memory = 1;
    return metrics_init(m);
}

void mxg_metrics_adopt(struct mxg_metrics *m)
{
    for (int id = 0; m && id < MXG_M__COUNT; id++)
        for (int i = 0; i < m->f[id].n; i++) {
            m->f[id].s[i].fn = NULL;
            m->f[id].s[i].arg = NULL;
        }
}

void mxg_metrics_free(struct mxg_metrics *m)
{
    if (m && !m->in_caller_memory)
        free(m);
}

void mxg_metrics_add(struct mxg_metrics *m, enum mxg_metric id, const char *label, uint64_t n)
{
    struct series *s = get(m, id, label);
    if (!s)
        return;
    if (defs[id].kind == K_GAUGE)
        s->gauge += (double)n;
    else if (defs[id].kind == K_COUNTER) /* one writer; worker 0 reads it (server.workers) */
        __atomic_store_n(&s->count, s->count + n, __ATOMIC_RELAXED);
}

void mxg_metrics_inc(struct mxg_metrics *m, enum mxg_metric id, const char *label)
{
    mxg_metrics_add(m, id, label, 1);
}

void mxg_metrics_set(struct mxg_metrics *m, enum mxg_metric id, const char *label, double v)
{
    if (m && (unsigned)id < MXG_M__COUNT && defs[id].kind != K_GAUGE)
        return;
    struct series *s = get(m, id, label);
    if (s)
        s->gauge = v;
}

void mxg_metrics_observe_ms(struct mxg_metrics *m, enum mxg_metric id, const char *label,
                            uint64_t ms)
{
    if (m && (unsigned)id < MXG_M__COUNT && defs[id].kind != K_HISTOGRAM)
        return;
    struct series *s = get(m, id, label);
    if (!s)
        return;
    /* one writer; worker 0 reads it (server.workers): count first, the bucket last with
     * release, so a reader that loads the buckets (acquire) before the count never sees a
     * bucket above +Inf (merge_counts) */
    __atomic_store_n(&s->count, s->count + 1, __ATOMIC_RELAXED);
    __atomic_store_n(&s->sum_ms, s->sum_ms + ms, __ATOMIC_RELAXED);
    for (size_t i = 0; i < N_BUCKETS; i++) {
        if (ms <= bucket_ms[i]) {
            __atomic_store_n(&s->buckets[i], s->buckets[i] + 1, __ATOMIC_RELEASE);
            break;
        }
    }
}

int mxg_metrics_gauge_fn(struct mxg_metrics *m, enum mxg_metric id, const char *label,
                         mxg_metrics_read_fn fn, void *arg)
{
    if (!m || (unsigned)id >= MXG_M__COUNT || defs[id].kind != K_GAUGE)
        return -1;
    struct series *s = get(m, id, label);
    if (!s)
        return -1;
    s->fn = fn;
    s->arg = fn ? arg : NULL;
    return 0;
}

double mxg_metrics_value(const struct mxg_metrics *m, enum mxg_metric id, const char *label)
{
    if (!m || (unsigned)id >= MXG_M__COUNT)
        return 0;
    struct series *s = series_find((struct family *)&m->f[id], defs[id].label && label ? label : "");
    if (!s)
        return 0;
    if (defs[id].kind == K_GAUGE)
        return s->fn ? s->fn(s->arg) : s->gauge;
    return (double)s->count;
}

const char *mxg_metrics_name(enum mxg_metric id)
{
    return (unsigned)id < MXG_M__COUNT ? defs[id].name : NULL;
}

/* ------------------------------------------------------------ rendering */

/* HELP text: backslash and newline escaped. */
static void put_help(FILE *out, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\')
            fputs("\\\\", out);
        else if (*s == '\n')
            fputs("\\n", out);
        else
            fputc(*s, out);
    }
}

/* A label value: backslash, double quote and newline escaped. */
static void put_label_value(FILE *out, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\' || *s == '"')
            fprintf(out, "\\%c", *s);
        else if (*s == '\n')
            fputs("\\n", out);
        else
            fputc(*s, out);
    }
}

static void put_double(FILE *out, double v)
{
    if (isnan(v))
        fputs("NaN", out);
    else if (isinf(v))
        fputs(v > 0 ? "+Inf" : "-Inf", out);
    else if (v > -1e15 && v < 1e15 && v == (double)(long long)v)
        fprintf(out, "%lld", (long long)v);
    else
        fprintf(out, "%.9g", v);
}

/* name{label="value"[,extra]} or name{extra} or name */
static void put_name(FILE *out, const char *name, const char *suffix, const char *lname,
                     const char *lvalue, const char *extra)
{
    fprintf(out, "%s%s", name, suffix);
    int has_label = lname && lvalue[0];
    if (!has_label && !extra)
        return;
    fputc('{', out);
    if (has_label) {
        fprintf(out, "%s=\"", lname);
        put_label_value(out, lvalue);
        fputc('"', out);
    }
    if (extra)
        fprintf(out, "%s%s", has_label ? "," : "", extra);
    fputc('}', out);
}

static void render_histogram(FILE *out, const struct family_def *d, const struct series *s)
{
    uint64_t cum = 0;
    char le[48];
    for (size_t i = 0; i < N_BUCKETS; i++) {
        cum += s->buckets[i];
        snprintf(le, sizeof le, "le=\"%g\"", (double)bucket_ms[i] / 1000.0);
        put_name(out, d->name, "_bucket", d->label, s->label, le);
        fprintf(out, " %llu\n", (unsigned long long)cum);
    }
    put_name(out, d->name, "_bucket", d->label, s->label, "le=\"+Inf\"");
    fprintf(out, " %llu\n", (unsigned long long)s->count);
    put_name(out, d->name, "_sum", d->label, s->label, NULL);
    fprintf(out, " %llu.%03llu\n", (unsigned long long)(s->sum_ms / 1000),
            (unsigned long long)(s->sum_ms % 1000));
    put_name(out, d->name, "_count", d->label, s->label, NULL);
    fprintf(out, " %llu\n", (unsigned long long)s->count);
}

static void render_family(FILE *out, const struct family_def *d, const struct family *f)
{
    static const char *const type_names[] = {"counter", "gauge", "histogram"};
    fprintf(out, "# HELP %s ", d->name);
    put_help(out, d->help);
    fprintf(out, "\n# TYPE %s %s\n", d->name, type_names[d->kind]);
    for (int i = 0; i < f->n; i++) {
        const struct series *s = &f->s[i];
        if (d->kind == K_HISTOGRAM) {
            render_histogram(out, d, s);
            continue;
        }
        put_name(out, d->name, "", d->label, s->label, NULL);
        fputc(' ', out);
        if (d->kind == K_COUNTER)
            fprintf(out, "%llu", (unsigned long long)s->count);
        else
            put_double(out, s->fn ? s->fn(s->arg) : s->gauge);
        fputc('\n', out);
    }
}

int mxg_metrics_render(struct mxg_metrics *m, char **out, size_t *len)
{
    *out = NULL;
    *len = 0;
    FILE *f = open_memstream(out, len);
    if (!f)
        return -1;
    for (int id = 0; m && id < MXG_M__COUNT; id++)
        render_family(f, &defs[id], &m->f[id]);
    if (fclose(f) != 0) {
        free(*out);
        *out = NULL;
        *len = 0;
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------ worker processes */

static int summed_gauge(int id);

void mxg_metrics_unpublish(struct mxg_metrics *m)
{
    for (int id = 0; m && id < MXG_M__COUNT; id++) {
        if (!summed_gauge(id))
            continue;
        int n = __atomic_load_n(&m->f[id].n, __ATOMIC_ACQUIRE);
        for (int i = 0; i < n && i < MXG_METRICS_MAX_SERIES; i++)
            __atomic_store_n(&m->f[id].s[i].published, 0, __ATOMIC_RELAXED); /* 0.0's bits */
    }
}

/* The gauges that are a sum over the workers (each counts its own sessions, connections,
 * cache); the others describe one shared thing (the spool, the MTA-STS file) or the process
 * that renders. */
static int summed_gauge(int id)
{
    return id == MXG_M_SESSIONS_ACTIVE || id == MXG_M_UPSTREAM_OPEN ||
           id == MXG_M_DNS_CACHE_ENTRIES;
}

void mxg_metrics_publish(struct mxg_metrics *m)
{
    for (int id = 0; m && id < MXG_M__COUNT; id++) {
        if (!summed_gauge(id))
            continue;
        for (int i = 0; i < m->f[id].n; i++) {
            struct series *s = &m->f[id].s[i];
            double v = s->fn ? s->fn(s->arg) : s->gauge;
            uint64_t bits;
            memcpy(&bits, &v, sizeof bits);
            __atomic_store_n(&s->published, bits, __ATOMIC_RELAXED);
        }
    }
}

/* Add the counters and histograms of src (another process's registry, read while it
 * counts) into dst, and the published values of the summed gauges; other gauges stay
 * dst's. */
static void merge_counts(struct mxg_metrics *dst, const struct mxg_metrics *src)
{
    for (int id = 0; id < MXG_M__COUNT; id++) {
        if (defs[id].kind == K_GAUGE && !summed_gauge(id))
            continue;
        const struct family *f = &src->f[id];
        int n = __atomic_load_n(&f->n, __ATOMIC_ACQUIRE);
        for (int i = 0; i < n && i < MXG_METRICS_MAX_SERIES; i++) {
            const struct series *s = &f->s[i];
            char label[MXG_METRICS_LABEL_MAX];
            snprintf(label, sizeof label, "%s", s->label);
            struct series *d = get(dst, (enum mxg_metric)id, label);
            if (!d)
                continue;
            if (defs[id].kind == K_GAUGE) {
                uint64_t bits = __atomic_load_n(&s->published, __ATOMIC_RELAXED);
                double v;
                memcpy(&v, &bits, sizeof v);
                d->gauge += v;
                continue;
            }
            /* the buckets before the count (mxg_metrics_observe_ms' order) */
            for (size_t b = 0; b < N_BUCKETS; b++)
                d->buckets[b] += __atomic_load_n(&s->buckets[b], __ATOMIC_ACQUIRE);
            d->sum_ms += __atomic_load_n(&s->sum_ms, __ATOMIC_RELAXED);
            d->count += __atomic_load_n(&s->count, __ATOMIC_RELAXED);
        }
    }
}

/* One counter series of another process's registry (0 when absent). */
static uint64_t peek_count(const struct mxg_metrics *m, enum mxg_metric id, const char *label)
{
    const struct family *f = &m->f[id];
    int n = __atomic_load_n(&f->n, __ATOMIC_ACQUIRE);
    for (int i = 0; i < n && i < MXG_METRICS_MAX_SERIES; i++)
        if (strcmp(f->s[i].label, label) == 0)
            return __atomic_load_n(&f->s[i].count, __ATOMIC_RELAXED);
    return 0;
}

/* One per-worker family: HELP, TYPE and a series per worker. */
static void render_per_worker(FILE *out, const char *name, const char *help,
                              struct mxg_metrics *const *w, int n, const uint64_t *extra,
                              uint64_t (*value)(const struct mxg_metrics *m))
{
    fprintf(out, "# HELP %s %s\n# TYPE %s counter\n", name, help, name);
    for (int i = 0; i < n; i++)
        fprintf(out, "%s{worker=\"%d\"} %llu\n", name, i,
                (unsigned long long)(value ? value(w[i]) : extra[i]));
}

/* Sessions accepted by one worker. */
static uint64_t worker_sessions(const struct mxg_metrics *m)
{
    return peek_count(m, MXG_M_SESSIONS_TOTAL, "");
}

/* Transactions one worker answered with 250 (relayed, or queued in the spool). */
static uint64_t worker_relayed(const struct mxg_metrics *m)
{
    return peek_count(m, MXG_M_TRANSACTIONS, "delivered") +
           peek_count(m, MXG_M_TRANSACTIONS, "queued");
}

int mxg_metrics_render_workers(struct mxg_metrics *const *w, int n, int self,
                               const uint64_t *restarts, char **out, size_t *len)
{
    *out = NULL;
    *len = 0;
    if (!w || n < 1 || self < 0 || self >= n || !w[self])
        return -1;
    struct mxg_metrics *sum = malloc(sizeof *sum);
    if (!sum)
        return -1;
    memcpy(sum, w[self], sizeof *sum); /* self's gauge functions are valid here */
    sum->in_caller_memory = 0;
    for (int id = 0; id < MXG_M__COUNT; id++) /* summed gauges: self's value now, as a number */
        for (int i = 0; summed_gauge(id) && i < sum->f[id].n; i++) {
            struct series *s = &sum->f[id].s[i];
            if (s->fn)
                s->gauge = s->fn(s->arg);
            s->fn = NULL;
        }
    for (int i = 0; i < n; i++)
        if (i != self && w[i])
            merge_counts(sum, w[i]);
    char *body = NULL;
    size_t blen = 0;
    FILE *f = open_memstream(&body, &blen);
    if (!f) {
        free(sum);
        return -1;
    }
    for (int id = 0; id < MXG_M__COUNT; id++)
        render_family(f, &defs[id], &sum->f[id]);
    render_per_worker(f, "mxguard_worker_sessions_total",
                      "Inbound SMTP sessions accepted, per worker process", w, n, NULL,
                      worker_sessions);
    render_per_worker(f, "mxguard_worker_relayed_total",
                      "Transactions answered 250 (relayed or queued), per worker process", w, n,
                      NULL, worker_relayed);
    if (restarts)
        render_per_worker(f, "mxguard_worker_restarts_total",
                          "Times a worker process was restarted after it died", w, n,
                          restarts, NULL);
    free(sum);
    if (fclose(f) != 0) {
        free(body);
        return -1;
    }
    *out = body;
    *len = blen;
    return 0;
}
