/* app/status_table.h — the layout of one tally of today's destinations
 * (status.h), written by one process and read by others: with
 * server.workers > 1 each worker's tally is its slot of the master's shared
 * mapping (app/run_workers.c), and worker 0's status page merges all of
 * them (status_merge.c). Internal to status_track.c (the writer),
 * status_merge.c (the reader) and their unit test.
 *
 * Contract: fixed size, no pointers; all-zero memory is a valid empty tally.
 * Exactly one process writes a table (its worker; a restarted worker
 * adopts its predecessor's). Every entry and every note has a sequence
 * number, odd while its writer changes it (a seqlock): a reader copies the
 * record, then checks the number was even and unchanged, and retries a
 * bounded number of times — never waits on a lock, so a writer that died
 * mid-update (the number stays odd) costs the reader that one record
 * (counted as skipped), never the page. n is published after the entry it
 * counts is written (release/acquire); day and others are read twice
 * around each other. Entries belong to the UTC day in their own day field:
 * a reader keeps only today's, so a tally whose writer has not rolled over
 * yet (no leg since midnight) shows nothing of yesterday. */
#ifndef MXG_STATUS_TABLE_H
#define MXG_STATUS_TABLE_H

#include <stdint.h>

#include "status.h"

#define MXG_STATUS_NOTES 64 /* decision texts kept per tally: its most recently decided domains */
#define MXG_STATUS_DAY_NONE (-1) /* an entry or note that belongs to no day (retired) */

/* One destination domain of the tally's day. */
struct mxg_status_entry {
    uint32_t seq;          /* odd while being written */
    int32_t src;           /* enum mxg_status_src of the last leg */
    int32_t note;          /* 1 + the notes slot with its last decision; 0 none */
    int32_t pad_;
    int64_t day;           /* UTC day number (Unix seconds / 86400); MXG_STATUS_DAY_NONE */
    uint64_t ok, fail;
    int64_t last_at, last_fail_at, decision_at; /* Unix seconds; 0 = never */
    char domain[MXG_DNS_NAME_MAX];
    char last_fail[MXG_STATUS_REASON_MAX];
};

/* The last decision text (mxg_leg_describe) of one domain. */
struct mxg_status_note {
    uint32_t seq;          /* odd while being written */
    int32_t pad_;
    int64_t day;           /* as the entry's; MXG_STATUS_DAY_NONE: empty */
    int64_t at;
    char domain[MXG_DNS_NAME_MAX]; /* whose text it is: a reader checks it is its entry's */
    char text[MXG_STATUS_DECISION_MAX];
};

/* FNV-1a of the lower-cased name: the hash slots of the writer (status_track.c)
 * and of the merge (status_merge.c) alike. */
static inline unsigned mxg_status_name_hash(const char *s)
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

struct mxg_status_table {
    int64_t day;           /* the tally's UTC day (stored last when it rolls over) */
    uint64_t others;       /* legs of domains beyond MXG_STATUS_MAX_DOMAINS */
    uint32_t n;            /* entries in use (release after the entry is written) */
    uint32_t note_next;    /* the notes slot taken next (round robin) */
    struct mxg_status_entry e[MXG_STATUS_MAX_DOMAINS];
    struct mxg_status_note notes[MXG_STATUS_NOTES];
};

#endif
