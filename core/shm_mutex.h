/* core/shm_mutex.h — a mutex that worker processes share inside a MAP_SHARED
 * mapping (process-shared, robust), and the rule for a holder that died.
 *
 * Contract: the mutex lives in the shared mapping next to an int "poisoned" flag
 * (both zeroed with the mapping). A process that dies holding the mutex may have
 * left what it guards half-written: the next locker marks the table poisoned for
 * good (logged once) and every later lock fails, so the caller falls back to its
 * fail-closed answer (AUTH refused, no TLS session resumed) until a restart. */
#ifndef MXG_CORE_SHM_MUTEX_H
#define MXG_CORE_SHM_MUTEX_H

#include <pthread.h>

/* What the log lines say: comp ("smtp"), the table ("AUTH throttle table"), what
 * happens while poisoned and what happens when a lock fails. */
struct mxg_shm_mutex_names {
    const char *comp, *table, *if_poisoned, *if_failed;
};

/* Initialise mu (process-shared, robust): 0, or -1. */
int mxg_shm_mutex_init(pthread_mutex_t *mu);

/* Take mu: 0 (held: unlock with pthread_mutex_unlock), or -1 (not held) when it
 * cannot be taken or *poisoned is set — set here when its last holder died. */
int mxg_shm_mutex_lock(pthread_mutex_t *mu, int *poisoned, const struct mxg_shm_mutex_names *n);

#endif
