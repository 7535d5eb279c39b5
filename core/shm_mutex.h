/* core/shm_mutex.h — a mutex that worker processes share inside a MAP_SHARED
 * mapping (process-shared, robust), and the rule for a holder that died.
 *
 * Contract: the mutex lives in the shared mapping next to a struct
 * mxg_shm_poison (both zeroed with the mapping). A process that dies holding
 * the mutex may have left what it guards half-written: the next locker marks
 * the table poisoned (logged once) and every lock fails, so the caller falls
 * back to its fail-closed answer (AUTH refused, no TLS session resumed) — for
 * quarantine_ms (CLOCK_MONOTONIC, the same clock in every process); then the
 * next locker empties the whole table with the caller's clear() under the
 * mutex (nothing half-written can be used after that), logs it and the table
 * works again. A table without clear() stays poisoned until a restart. */
#ifndef MXG_CORE_SHM_MUTEX_H
#define MXG_CORE_SHM_MUTEX_H

#include <pthread.h>
#include <stdint.h>

/* What the log lines say: comp ("smtp"), the table ("AUTH throttle table"), what
 * happens while poisoned and what happens when a lock fails. */
struct mxg_shm_mutex_names {
    const char *comp, *table, *if_poisoned, *if_failed;
};

/* The poisoning state, in the shared mapping beside the mutex. quarantine_ms is
 * set by the table's maker (0: cleared by the first locker after the death). */
struct mxg_shm_poison {
    int poisoned;           /* a holder died and the table was not cleared since */
    uint64_t since_ms;      /* CLOCK_MONOTONIC ms when the death was found */
    uint64_t quarantine_ms; /* every lock fails this long after it */
};

/* How a poisoned table is emptied (under the mutex): clear(table); NULL clear:
 * never (poisoned until a restart). */
struct mxg_shm_recovery {
    void (*clear)(void *table);
    void *table;
};

/* Initialise mu (process-shared, robust): 0, or -1. */
int mxg_shm_mutex_init(pthread_mutex_t *mu);

/* Take mu: 0 (held: unlock with pthread_mutex_unlock), or -1 (not held) when it
 * cannot be taken or the table is poisoned (*p, set here when its last holder
 * died) and its quarantine is not over; a table whose quarantine is over is
 * cleared (rec) and taken (0). */
int mxg_shm_mutex_lock(pthread_mutex_t *mu, struct mxg_shm_poison *p,
                       const struct mxg_shm_recovery *rec, const struct mxg_shm_mutex_names *n);

#endif
