/* app/status_merge.c — every worker's tally of today's destinations merged
 * for the status page (status.h): a reader of the tables of
 * status_table.h, which copies each record under its sequence number
 * (bounded retries, no lock: a writer that died mid-update costs the
 * record, counted as skipped, never the page). The result is the page's own
 * memory, at most MXG_STATUS_MAX_DOMAINS rows: domains with a failure today
 * are merged first, so the cap pushes successful ones into "others" before
 * a failing one. */
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "status.h"
#include "status_table.h"

#define SLOTS 4096      /* hash slots: twice MXG_STATUS_MAX_DOMAINS, a power of two */
#define READ_TRIES 200  /* copies of a record before it counts as skipped */
#define YIELD_AFTER 16  /* tries on an odd (being written) record before yielding the CPU */

/* Where the merge stands (the caller's, freed at the end). */
struct merge {
    struct mxg_status_merged *m;
    int cap;                            /* rows m->dest has room for */
    int slot[SLOTS];                    /* index + 1 into m->dest */
    /* one domain's merge: each table's note of its decision (the latest is tried first;
     * when that worker has reused the note meanwhile, the next latest) */
    struct cand {
        int tb, k;        /* table, 1 + note */
        int64_t at;
    } *cand;
    int n_cand, cap_cand;
};

/* Copy len octets of a record whose sequence number is *seq: 0 when the
 * copy is whole (the number even and unchanged around it), -1 after
 * READ_TRIES tries. */
static int read_record(const uint32_t *seq, void *dst, const void *src, size_t len)
{
    for (int i = 0; i < READ_TRIES; i++) {
        uint32_t s1 = __atomic_load_n(seq, __ATOMIC_ACQUIRE);
        if (s1 & 1) {
            if (i >= YIELD_AFTER)
                sched_yield(); /* a writer on another CPU, or preempted mid-update */
            continue;
        }
        memcpy(dst, src, len);
        __atomic_thread_fence(__ATOMIC_ACQUIRE);
        if (__atomic_load_n(seq, __ATOMIC_RELAXED) == s1)
            return 0;
    }
    return -1;
}

/* The row of domain: its slot, or the empty one where it would go. */
static int *find_slot(struct merge *g, const char *domain)
{
    unsigned i = mxg_status_name_hash(domain) & (SLOTS - 1);
    while (g->slot[i] && strcasecmp(g->m->dest[g->slot[i] - 1].domain, domain) != 0)
        i = (i + 1) & (SLOTS - 1);
    return &g->slot[i];
}

/* Add one entry copy c of table tbi into the rows. */
static void merge_entry(struct merge *g, int tbi, const struct mxg_status_entry *c)
{
    struct mxg_status_merged *m = g->m;
    int *slot = find_slot(g, c->domain);
    struct mxg_status_dest *d;
    if (!*slot) {
        if (m->n == g->cap) {
            m->others += c->ok + c->fail;
            return;
        }
        d = &m->dest[m->n];
        memset(d, 0, sizeof *d);
        memcpy(d->domain, c->domain, sizeof d->domain);
        d->src = (unsigned)c->src < MXG_ST_N ? (enum mxg_status_src)c->src : MXG_ST_UNDECIDED;
        *slot = ++m->n;
    }
    d = &m->dest[*slot - 1];
    d->ok += c->ok;
    d->fail += c->fail;
    if (c->last_at > d->last_at) {
        d->last_at = c->last_at;
        d->src = (unsigned)c->src < MXG_ST_N ? (enum mxg_status_src)c->src : MXG_ST_UNDECIDED;
    }
    if (c->fail && c->last_fail_at >= d->last_fail_at) {
        d->last_fail_at = c->last_fail_at;
        memcpy(d->last_fail, c->last_fail, sizeof d->last_fail);
        d->last_fail[sizeof d->last_fail - 1] = 0;
    }
    if (c->decision_at > d->decision_at)
        d->decision_at = c->decision_at;
    if (g->cand && g->n_cand < g->cap_cand && c->note > 0 && c->note <= MXG_STATUS_NOTES)
        g->cand[g->n_cand++] = (struct cand){.tb = tbi, .k = c->note, .at = c->decision_at};
}

/* Merge table tbi's entries of day: pass 0 those failing now (peeked), pass 1
 * the rest (done marks what pass 0 took, so an entry whose first failure
 * comes between the passes is merged once, in pass 1). */
static void merge_table(struct merge *g, const struct mxg_status_table *tb, int tbi, int64_t day,
                        const char *only, int pass, unsigned char *done)
{
    uint32_t n = __atomic_load_n(&tb->n, __ATOMIC_ACQUIRE);
    if (n > MXG_STATUS_MAX_DOMAINS)
        n = MXG_STATUS_MAX_DOMAINS;
    struct mxg_status_entry c;
    for (uint32_t i = 0; i < n; i++) {
        const struct mxg_status_entry *e = &tb->e[i];
        if (done[i])
            continue;
        if (pass == 0 && __atomic_load_n(&e->fail, __ATOMIC_RELAXED) == 0)
            continue;
        done[i] = 1;
        if (read_record(&e->seq, &c, e, sizeof c) < 0) {
            g->m->skipped++;
            continue;
        }
        c.domain[sizeof c.domain - 1] = 0;
        if (c.day != day || !c.domain[0] || (only && strcasecmp(c.domain, only) != 0))
            continue;
        merge_entry(g, tbi, &c);
    }
}

/* The legs beyond a table's MXG_STATUS_MAX_DOMAINS today (0 when it is on another day). */
static uint64_t table_others(const struct mxg_status_table *tb, int64_t day)
{
    int64_t d1 = __atomic_load_n(&tb->day, __ATOMIC_ACQUIRE);
    uint64_t o = __atomic_load_n(&tb->others, __ATOMIC_ACQUIRE);
    int64_t d2 = __atomic_load_n(&tb->day, __ATOMIC_ACQUIRE);
    return d1 == day && d2 == day ? o : 0;
}

/* Row 0's decision text from the latest note that is still its domain's (a worker's
 * note is reused for another domain once it has decided MXG_STATUS_NOTES others). */
static void fetch_decision(struct merge *g, struct mxg_status_table *const *tables, int64_t day)
{
    struct mxg_status_dest *d = &g->m->dest[0];
    struct mxg_status_note *c = malloc(sizeof *c);
    if (!c)
        return;
    while (!d->decision && g->n_cand > 0) {
        int best = 0;
        for (int i = 1; i < g->n_cand; i++)
            if (g->cand[i].at > g->cand[best].at)
                best = i;
        const struct mxg_status_note *nt = &tables[g->cand[best].tb]->notes[g->cand[best].k - 1];
        g->cand[best] = g->cand[--g->n_cand];
        if (read_record(&nt->seq, c, nt, sizeof *c) < 0) {
            g->m->skipped++;
            continue;
        }
        c->domain[sizeof c->domain - 1] = 0;
        c->text[sizeof c->text - 1] = 0;
        if (c->day == day && strcasecmp(c->domain, d->domain) == 0) {
            d->decision = strdup(c->text);
            d->decision_at = c->at;
        }
    }
    free(c);
}

/* qsort: by source group, then domain. */
static int cmp_dest(const void *a, const void *b)
{
    const struct mxg_status_dest *x = *(const struct mxg_status_dest *const *)a;
    const struct mxg_status_dest *y = *(const struct mxg_status_dest *const *)b;
    if (x->src != y->src)
        return x->src < y->src ? -1 : 1;
    return strcasecmp(x->domain, y->domain);
}

/* Merge today's entries of the tables (status.h). */
struct mxg_status_merged *mxg_status_merge(struct mxg_status_table *const *tables, int n,
                                           int64_t now, const char *only)
{
    int64_t day = now / 86400;
    struct merge *g = calloc(1, sizeof *g);
    struct mxg_status_merged *m = calloc(1, sizeof *m);
    unsigned char *done = calloc((size_t)(n > 0 ? n : 1), MXG_STATUS_MAX_DOMAINS);
    if (!g || !m || !done ||
        !(m->dest = calloc(only ? 1 : MXG_STATUS_MAX_DOMAINS, sizeof *m->dest))) {
        free(g);
        free(done);
        mxg_status_merged_free(m);
        return NULL;
    }
    g->m = m;
    g->cap = only ? 1 : MXG_STATUS_MAX_DOMAINS;
    if (only && n > 0) {
        g->cap_cand = 2 * n; /* one entry per table and day; room for a retired one too */
        if (!(g->cand = calloc((size_t)g->cap_cand, sizeof *g->cand))) {
            free(g);
            free(done);
            mxg_status_merged_free(m);
            return NULL;
        }
    }
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < n; i++)
            if (tables[i])
                merge_table(g, tables[i], i, day, only, pass,
                            done + (size_t)i * MXG_STATUS_MAX_DOMAINS);
    for (int i = 0; !only && i < n; i++)
        if (tables[i])
            m->others += table_others(tables[i], day);
    if (only && m->n == 1)
        fetch_decision(g, tables, day);
    free(done);
    free(g->cand);
    free(g);
    if (m->n > 0 && !(m->sorted = malloc((size_t)m->n * sizeof *m->sorted))) {
        mxg_status_merged_free(m);
        return NULL;
    }
    for (int i = 0; i < m->n; i++)
        m->sorted[i] = &m->dest[i];
    if (m->n > 1)
        qsort(m->sorted, (size_t)m->n, sizeof m->sorted[0], cmp_dest);
    return m;
}

/* Free a merge (status.h). */
void mxg_status_merged_free(struct mxg_status_merged *m)
{
    if (!m)
        return;
    for (int i = 0; m->dest && i < m->n; i++)
        free(m->dest[i].decision);
    free(m->dest);
    free(m->sorted);
    free(m);
}
