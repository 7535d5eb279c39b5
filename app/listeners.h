/* app/listeners.h — the SMTP listener sockets of `mxguard run`, made before its
 * start-up work (docs/ARCHITECTURE.md §Operating).
 *
 * Contract:
 *  - app_listeners_bind() makes one TCP socket per server.listen endpoint, then
 *    one per server.queue_listen endpoint (that order: the server's), each
 *    bound but NOT listening. Bound at once, so a port another process holds
 *    stops the start with a clear error before anything slow (DNSSEC
 *    self-check, policy state, the shared state's first pull) has run; not
 *    listening, so until the process that serves them calls listen() — once it
 *    has passed every start-up check (proxy/inbound/server.h
 *    mxg_server_listen) — a client's connection attempt is refused by the
 *    kernel (ECONNREFUSED: the client's MTA retries or fails over at once),
 *    never left in a backlog that no process accepts from.
 *  - reuseport: SO_REUSEPORT as well as SO_REUSEADDR (server.workers > 1: one
 *    socket per worker and endpoint; the kernel spreads connections over the
 *    sockets that listen, a bound one takes none).
 *  - The caller owns the descriptors written to fds (close-on-exec).
 *    app_listeners_close() closes every one that is >= 0 and sets it to -1. */
#ifndef MXG_APP_LISTENERS_H
#define MXG_APP_LISTENERS_H

#include <stddef.h>

#include "../core/config.h"

#define APP_LISTENERS_MAX (2 * MXG_CFG_MAX_LISTEN)

/* Returns the number of sockets written to fds (cfg->n_listen + cfg->n_queue_listen,
 * at most APP_LISTENERS_MAX), or -1 with err ("cannot bind ADDR: reason"), none
 * left open. */
int app_listeners_bind(const struct mxg_config *cfg, int reuseport, int *fds, char *err,
                       size_t errlen);
void app_listeners_close(int *fds, int n);

#endif
