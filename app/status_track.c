/* app/status_track.c — today's destinations for the status page
 * (status.h): the writer of one tally per destination domain, fed by every
 * finished delivery leg through struct mxg_leg_watch, into a table others
 * may read while it writes (status_table.h: each record under its own
 * sequence number, no lock). In memory only; the tally starts afresh when
 * the UTC day changes. The hash from domain to entry is this writer's own
 * (rebuilt when a restarted worker adopts its table). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "../policy/requirement.h"
#include "status.h"
#include "status_table.h"

#define SLOTS 4096             /* hash slots: twice MXG_STATUS_MAX_DOMAINS, a power of two */
#define DECISION_REFRESH_S 10  /* a success refreshes the stored decision at most this often */

struct mxg_status_track {
    struct mxg_leg_watch watch;
    struct mxg_status_table *tb;         /* written here alone */
    int own;                             /* tb is ours (calloc), not a given one */
    int slot[SLOTS];                     /* index + 1 into tb->e, 0 = empty */
    int note_owner[MXG_STATUS_NOTES];    /* index + 1 of the entry whose text a note is */
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

/* A record's sequence number made odd (a new value, whatever it was): readers
 * retry until it is even again. */
static void write_begin(uint32_t *seq)
{
    __atomic_store_n(seq, (*seq + 1) | 1u, __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
}

/* The record written: its sequence number even again (a new value). */
static void write_end(uint32_t *seq)
{
    __atomic_store_n(seq, *seq + 1, __ATOMIC_RELEASE);
}

/* Start afresh for UTC day (the entries stay, marked by their own day, until
 * rewritten): n first, the day last, so a reader that sees the new day sees
 * the rest reset. */
static void track_clear(struct mxg_status_track *t, int64_t day)
{
    __atomic_store_n(&t->tb->n, 0, __ATOMIC_RELEASE);
    __atomic_store_n(&t->tb->others, 0, __ATOMIC_RELEASE);
    __atomic_store_n(&t->tb->day, day, __ATOMIC_RELEASE);
    memset(t->slot, 0, sizeof t->slot);
    memset(t->note_owner, 0, sizeof t->note_owner);
}

/* Start afresh when now is on another UTC day than the tally. */
static void track_roll(struct mxg_status_track *t, int64_t now)
{
    int64_t day = now / 86400;
    if (day != t->tb->day)
        track_clear(t, day);
}

/* The slot of domain: where it is, or the empty one where it would go. */
static int *find_slot(struct mxg_status_track *t, const char *domain)
{
    unsigned i = mxg_status_name_hash(domain) & (SLOTS - 1);
    while (t->slot[i] && strcasecmp(t->tb->e[t->slot[i] - 1].domain, domain) != 0)
        i = (i + 1) & (SLOTS - 1);
    return &t->slot[i];
}

/* mxg_leg_watch callback: count the leg now. */
static void on_leg_end(void *arg, const struct mxg_leg_outcome *o)
{
    mxg_status_track_add(arg, o, (int64_t)time(NULL));
}

/* Octets of a table (status.h). */
size_t mxg_status_table_size(void)
{
    return sizeof(struct mxg_status_table);
}

/* A record its writer died in (sequence number odd): out of every day, even again. */
static int retire(uint32_t *seq, int64_t *day)
{
    if (!(*seq & 1))
        return 0;
    *day = MXG_STATUS_DAY_NONE;
    write_end(seq);
    return 1;
}

/* An adopted entry is shared memory another process wrote: every value this
 * writer later uses as an index or in arithmetic is brought into range (a note
 * outside 1..MXG_STATUS_NOTES, a time before 0 or after now become 0 — "none"),
 * and the domain is NUL-terminated. Written as one record update. */
static void sanitize(struct mxg_status_entry *e, int64_t now)
{
    write_begin(&e->seq);
    e->domain[sizeof e->domain - 1] = 0;
    e->last_fail[sizeof e->last_fail - 1] = 0;
    if (e->note < 0 || e->note > MXG_STATUS_NOTES)
        e->note = 0;
    if (e->src < 0 || e->src >= MXG_ST_N)
        e->src = MXG_ST_UNDECIDED;
    int64_t *times[] = {&e->last_at, &e->last_fail_at, &e->decision_at};
    for (size_t k = 0; k < sizeof times / sizeof *times; k++)
        if (*times[k] < 0 || *times[k] > now)
            *times[k] = 0;
    write_end(&e->seq);
}

/* Take over what an earlier writer left in the table for today: its
 * complete entries and notes; the ones it died writing retired. */
static int adopt(struct mxg_status_track *t, int64_t now)
{
    struct mxg_status_table *tb = t->tb;
    int retired = 0;
    if (tb->day != now / 86400) {
        track_clear(t, now / 86400);
        return 0;
    }
    if (tb->n > MXG_STATUS_MAX_DOMAINS) /* not written by this code: start afresh */
        tb->n = 0;
    for (int i = 0; i < MXG_STATUS_NOTES; i++)
        retired += retire(&tb->notes[i].seq, &tb->notes[i].day);
    /* the record it died writing: one of the n published, or the next, unpublished one */
    if (tb->n < MXG_STATUS_MAX_DOMAINS)
        retired += retire(&tb->e[tb->n].seq, &tb->e[tb->n].day);
    for (int i = 0; i < (int)tb->n; i++) {
        struct mxg_status_entry *e = &tb->e[i];
        retired += retire(&e->seq, &e->day);
        if (e->day != tb->day)
            continue;
        sanitize(e, now);
        int *slot = find_slot(t, e->domain);
        if (!*slot)
            *slot = i + 1;
        const struct mxg_status_note *nt = e->note > 0 && e->note <= MXG_STATUS_NOTES
                                               ? &tb->notes[e->note - 1] : NULL;
        if (nt && nt->day == tb->day && strncasecmp(nt->domain, e->domain, sizeof nt->domain) == 0)
            t->note_owner[e->note - 1] = i + 1;
    }
    tb->note_next %= MXG_STATUS_NOTES;
    return retired;
}

/* A new tally (status.h). */
struct mxg_status_track *mxg_status_track_new(int64_t now, struct mxg_status_table *table,
                                              int *retired)
{
    struct mxg_status_track *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->tb = table;
    if (!t->tb) {
        if (!(t->tb = calloc(1, sizeof *t->tb))) {
            free(t);
            return NULL;
        }
        t->own = 1;
    }
    int r = adopt(t, now);
    if (retired)
        *retired = r;
    t->watch.on_end = on_leg_end;
    t->watch.arg = t;
    return t;
}

/* Free the tally (status.h). */
void mxg_status_track_free(struct mxg_status_track *t)
{
    if (!t)
        return;
    if (t->own)
        free(t->tb);
    free(t);
}

/* The table t writes (status.h). */
struct mxg_status_table *mxg_status_track_table(struct mxg_status_track *t)
{
    return t->tb;
}

/* The observer for struct mxg_upstream_env.watch (status.h). */
const struct mxg_leg_watch *mxg_status_track_watch(struct mxg_status_track *t)
{
    return &t->watch;
}

/* Keep the leg's decision text (mxg_leg_describe) in a note of entry i: the
 * one it has, or the next round robin (whose earlier domain loses its text). */
static void keep_decision(struct mxg_status_track *t, int i, const struct mxg_leg_outcome *o,
                          int64_t now)
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
    struct mxg_status_table *tb = t->tb;
    struct mxg_status_entry *e = &tb->e[i];
    int k = e->note > 0 && t->note_owner[e->note - 1] == i + 1 ? e->note - 1 : -1;
    if (k < 0) {
        k = (int)(tb->note_next % MXG_STATUS_NOTES);
        tb->note_next = (uint32_t)(k + 1) % MXG_STATUS_NOTES;
        t->note_owner[k] = i + 1;
    }
    struct mxg_status_note *nt = &tb->notes[k];
    write_begin(&nt->seq);
    nt->day = tb->day;
    nt->at = now;
    memcpy(nt->domain, e->domain, sizeof nt->domain); /* same size, NUL-terminated */
    if (len >= sizeof nt->text) {
        memcpy(nt->text, text, sizeof nt->text - 40);
        snprintf(nt->text + sizeof nt->text - 40, 40, "\n... (cut)\n");
    } else {
        memcpy(nt->text, text, len + 1);
    }
    write_end(&nt->seq);
    free(text);
    write_begin(&e->seq);
    e->note = k + 1;
    e->decision_at = now;
    write_end(&e->seq);
}

/* Count one finished leg (status.h). */
void mxg_status_track_add(struct mxg_status_track *t, const struct mxg_leg_outcome *o,
                          int64_t now)
{
    if (!t || !o || !o->domain || !o->domain[0])
        return;
    track_roll(t, now);
    struct mxg_status_table *tb = t->tb;
    int *slot = find_slot(t, o->domain);
    int fresh = !*slot;
    if (fresh && tb->n >= MXG_STATUS_MAX_DOMAINS) {
        __atomic_store_n(&tb->others, tb->others + 1, __ATOMIC_RELEASE);
        return;
    }
    int i = fresh ? (int)tb->n : *slot - 1;
    struct mxg_status_entry *e = &tb->e[i];
    write_begin(&e->seq);
    if (fresh) {
        e->day = tb->day;
        e->ok = e->fail = 0;
        e->last_fail_at = e->decision_at = 0;
        e->note = 0;
        e->last_fail[0] = 0;
        snprintf(e->domain, sizeof e->domain, "%s", o->domain);
    }
    e->src = (int32_t)mxg_status_src_of(o->req);
    e->last_at = now;
    if (o->ok) {
        e->ok++;
    } else {
        e->fail++;
        e->last_fail_at = now;
        if (o->reply)
            snprintf(e->last_fail, sizeof e->last_fail, "%d %s%s%s", o->reply->code,
                     o->reply->enh, o->reply->enh[0] ? " " : "", o->reply->text);
    }
    write_end(&e->seq);
    if (fresh) {
        *slot = i + 1;
        __atomic_store_n(&tb->n, (uint32_t)(i + 1), __ATOMIC_RELEASE);
    }
    int kept = e->note > 0 && t->note_owner[e->note - 1] == i + 1; /* its text is still here */
    if (o->leg && (!o->ok || !kept || now - e->decision_at >= DECISION_REFRESH_S))
        keep_decision(t, i, o, now);
}
