/* core/shm_mutex.c — a process-shared, robust mutex and its poisoning (shm_mutex.h). */
#include "shm_mutex.h"

#include <errno.h>
#include <string.h>

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

int mxg_shm_mutex_lock(pthread_mutex_t *mu, int *poisoned, const struct mxg_shm_mutex_names *n)
{
    int rc = pthread_mutex_lock(mu);
    if (rc == EOWNERDEAD) { /* its holder died, maybe in the middle of an update */
        pthread_mutex_consistent(mu);
        if (!*poisoned)
            LOG_E(n->comp, "%s: a worker died while updating it: %s until mxguard is restarted",
                  n->table, n->if_poisoned);
        *poisoned = 1;
        rc = 0;
    }
    if (rc != 0) {
        LOG_E(n->comp, "%s: lock: %s: %s", n->table, strerror(rc), n->if_failed);
        return -1;
    }
    if (*poisoned) {
        pthread_mutex_unlock(mu);
        return -1;
    }
    return 0;
}
