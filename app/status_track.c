/* app/status_track.c — today's destinations for the status page
 * (status.h): one tally per destination domain, fed by every finished
 * delivery leg through struct mxg_leg_watch. In memory only; the tally
 * starts afresh when the UTC day changes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "../policy/requirement.h"
#include "status.h"

#define SLOTS 4096             /* hash slots: twice MXG_STATUS_MAX_DOMAINS, a power of two */
#define DECISION_REFRESH_S 10  /* a success refreshes the stored decision at most this often */

struct mxg_status_track {
    struct mxg_leg_watch watch;
    int64_t day;                         /* UTC day number of the tally */
    int n;
    struct mxg_status_dest *dest[MXG_STATUS_MAX_DOMAINS];
    int slot[SLOTS];                     /* index + 1 into dest, 0 = empty */
    uint64_t others;
    const struct mxg_status_dest *sorted[MXG_STATUS_MAX_DOMAINS]; /* mxg_status_track_list */
};

static const char *const src_names[MXG_ST_N] = {
    "DANE", "MTA-STS enforce", "testing", "policy list", "override", "opportunistic",
    "no MX host decided",
};

/* The page's name of a source group. */
const char *mxg_status_src_name(enum mxg_status_src s)
{
    return (unsigned)s < MXG_ST_N ? src_names[s] : "?";
}

/* The group of a requirement (status.h); NULL: no host was decided. */
enum mxg_status_src mxg_status_src_of(const struct mxg_req *r)
{
    if (!r)
        return MXG_ST_UNDECIDED;
    switch (r->source) {
    case MXG_REQ_SRC_DANE: return MXG_ST_DANE;
    case MXG_REQ_SRC_MTA_STS:
        return r->pki_mode == MXG_STS_MODE_ENFORCE ? MXG_ST_STS_ENFORCE : MXG_ST_TESTING;
    case MXG_REQ_SRC_LIST:
        return r->pki_mode == MXG_STS_MODE_ENFORCE ? MXG_ST_LIST : MXG_ST_TESTING;
    case MXG_REQ_SRC_OVERRIDE: return MXG_ST_OVERRIDE;
    case MXG_REQ_SRC_DEFAULT:
    case MXG_REQ_SRC_CONFIG:
    case MXG_REQ_SRC_OPPORTUNISTIC: return MXG_ST_OPPORTUNISTIC;
    }
    return MXG_ST_UNDECIDED;
}

/* FNV-1a of the lower-cased name. */
static unsigned name_hash(const char *s)
{
    unsigned h = 2166136261u;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c >= 'A' && c <= 'Z')
            c = (unsigned char)(c - 'A' + 'a');
        h = (h ^ c) * 16777619u;
    }
    return h;
}

/* Forget every destination (a new day). */
static void track_clear(struct mxg_status_track *t)
{
    for (int i = 0; i < t->n; i++) {
        free(t->dest[i]->decision);
        free(t->dest[i]);
    }
    t->n = 0;
    t->others = 0;
    memset(t->slot, 0, sizeof t->slot);
}

/* Start afresh when now is on another UTC day than the tally. */
static void track_roll(struct mxg_status_track *t, int64_t now)
{
    int64_t day = now / 86400;
    if (day != t->day) {
        track_clear(t);
        t->day = day;
    }
}

/* The slot of domain: where it is, or the empty one where it would go. */
static int *find_slot(struct mxg_status_track *t, const char *domain)
{
    unsigned i = name_hash(domain) & (SLOTS - 1);
    while (t->slot[i] && strcasecmp(t->dest[t->slot[i] - 1]->domain, domain) != 0)
        i = (i + 1) & (SLOTS - 1);
    return &t->slot[i];
}

/* mxg_leg_watch callback: count the leg now. */
static void on_leg_end(void *arg, const struct mxg_leg_outcome *o)
{
    mxg_status_track_add(arg, o, (int64_t)time(NULL));
}

/* A new tally (status.h). */
struct mxg_status_track *mxg_status_track_new(int64_t now)
{
    struct mxg_status_track *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->day = now / 86400;
    t->watch.on_end = on_leg_end;
    t->watch.arg = t;
    return t;
}

/* Free the tally (status.h). */
void mxg_status_track_free(struct mxg_status_track *t)
{
    if (!t)
        return;
    track_clear(t);
    free(t);
}

/* The observer for struct mxg_upstream_env.watch (status.h). */
const struct mxg_leg_watch *mxg_status_track_watch(struct mxg_status_track *t)
{
    return &t->watch;
}

/* Keep the leg's decision text (mxg_leg_describe) in d. */
static void keep_decision(struct mxg_status_dest *d, const struct mxg_leg_outcome *o, int64_t now)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f)
        return;
    mxg_leg_describe(o->leg, f);
    if (fclose(f) != 0) {
        free(text);
        return;
    }
    if (len >= MXG_STATUS_DECISION_MAX)
        snprintf(text + MXG_STATUS_DECISION_MAX - 40, 40, "\n... (cut)\n");
    free(d->decision);
    d->decision = text;
    d->decision_at = now;
}

/* Count one finished leg (status.h). */
void mxg_status_track_add(struct mxg_status_track *t, const struct mxg_leg_outcome *o,
                          int64_t now)
{
    if (!t || !o || !o->domain || !o->domain[0])
        return;
    track_roll(t, now);
    int *slot = find_slot(t, o->domain);
    struct mxg_status_dest *d;
    if (*slot) {
        d = t->dest[*slot - 1];
    } else {
        if (t->n == MXG_STATUS_MAX_DOMAINS || !(d = calloc(1, sizeof *d))) {
            t->others++;
            return;
        }
        snprintf(d->domain, sizeof d->domain, "%s", o->domain);
        t->dest[t->n++] = d;
        *slot = t->n;
    }
    d->src = mxg_status_src_of(o->req);
    d->last_at = now;
    if (o->ok) {
        d->ok++;
    } else {
        d->fail++;
        d->last_fail_at = now;
        if (o->reply)
            snprintf(d->last_fail, sizeof d->last_fail, "%d %s%s%s", o->reply->code,
                     o->reply->enh, o->reply->enh[0] ? " " : "", o->reply->text);
    }
    if (o->leg && (!o->ok || !d->decision || now - d->decision_at >= DECISION_REFRESH_S))
        keep_decision(d, o, now);
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

/* Today's destinations, sorted (status.h). */
int mxg_status_track_list(struct mxg_status_track *t, int64_t now,
                          const struct mxg_status_dest *const **out, uint64_t *others)
{
    track_roll(t, now);
    for (int i = 0; i < t->n; i++)
        t->sorted[i] = t->dest[i];
    qsort(t->sorted, (size_t)t->n, sizeof t->sorted[0], cmp_dest);
    *out = t->sorted;
    if (others)
        *others = t->others;
    return t->n;
}

/* Today's entry of domain (status.h). */
const struct mxg_status_dest *mxg_status_track_find(struct mxg_status_track *t, int64_t now,
                                                    const char *domain)
{
    track_roll(t, now);
    int *slot = find_slot(t, domain);
    return *slot ? t->dest[*slot - 1] : NULL;
}
