/* core/shm_mutex.c — a process-shared, robust mutex and its poisoning (shm_mutex.h). */
#include "shm_mutex.h"

#include <errno.h>
#include <string.h>
#include <time.h>

#include "log.h"

int mxg_shm_mutex_init(pthread_mutex_t *mu)
{
    pthread_mutexattr_t a;
    if (pthread_mutexattr_init(&a) != 0)
        return -1;
    int ok = pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED) == 0 &&
             pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST) == 0 &&
             pthread_mutex_init(mu, &a) == 0;
    pthread_mutexattr_destroy(&a);
    return ok ? 0 : -1;
}

/* CLOCK_MONOTONIC in ms: one clock for every process on the host. */
static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int mxg_shm_mutex_lock(pthread_mutex_t *mu, struct mxg_shm_poison *p,
                       const struct mxg_shm_recovery *rec, const struct mxg_shm_mutex_names *n)
{
    int rc = pthread_mutex_lock(mu);
    if (rc == EOWNERDEAD) { /* its holder died, maybe in the middle of an update */
        pthread_mutex_consistent(mu);
        if (!p->poisoned && !(rec && rec->clear && p->quarantine_ms == 0)) {
            if (rec && rec->clear)
                LOG_E(n->comp, "%s: a worker died while updating it: %s for %llus, then it is "
                      "emptied", n->table, n->if_poisoned,
                      (unsigned long long)(p->quarantine_ms / 1000));
            else
                LOG_E(n->comp, "%s: a worker died while updating it: %s until mxguard is "
                      "restarted", n->table, n->if_poisoned);
        }
        p->poisoned = 1;
        p->since_ms = mono_ms(); /* another death restarts the quarantine */
        rc = 0;
    }
    if (rc != 0) {
        LOG_E(n->comp, "%s: lock: %s: %s", n->table, strerror(rc), n->if_failed);
        return -1;
    }
    if (p->poisoned && rec && rec->clear && mono_ms() - p->since_ms >= p->quarantine_ms) {
        rec->clear(rec->table);
        p->poisoned = 0;
        LOG_W(n->comp, "%s: emptied (a worker died while updating it); in use again", n->table);
    }
    if (p->poisoned) {
        pthread_mutex_unlock(mu);
        return -1;
    }
    return 0;
}
