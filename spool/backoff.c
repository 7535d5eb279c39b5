/* spool/backoff.c — the retry schedule of the queue; see spool.h. */
#include "spool.h"

uint64_t mxg_spool_backoff_ms(int attempts, uint64_t base_ms, uint64_t max_ms)
{
    if (attempts <= 0)
        return 0;
    uint64_t d = base_ms;
    for (int i = 1; i < attempts && d < max_ms; i++)
        d = d > UINT64_MAX / 2 ? UINT64_MAX : d * 2;
    return d < max_ms ? d : max_ms;
}
