/* app/listeners.c — bound, not yet listening, SMTP listener sockets; see listeners.h. */
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "listeners.h"

/* One socket bound to ep; its descriptor, or -1 with err. */
static int bind_one(const struct mxg_endpoint *ep, int reuseport, char *err, size_t errlen)
{
    int fd = socket(ep->sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int on = 1;
    socklen_t sl = ep->sa.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                : sizeof(struct sockaddr_in);
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) < 0 ||
        (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof on) < 0) ||
        bind(fd, (const struct sockaddr *)&ep->sa, sl) < 0) {
        snprintf(err, errlen, "cannot bind %s: %s", ep->text, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

int app_listeners_bind(const struct mxg_config *cfg, int reuseport, int *fds, char *err,
                       size_t errlen)
{
    int n = cfg->n_listen + cfg->n_queue_listen;
    if (n > APP_LISTENERS_MAX) {
        snprintf(err, errlen, "%d listeners: at most %d", n, APP_LISTENERS_MAX);
        return -1;
    }
    for (int i = 0; i < n; i++) {
        const struct mxg_endpoint *ep =
            i < cfg->n_listen ? &cfg->listen[i] : &cfg->queue_listen[i - cfg->n_listen];
        if ((fds[i] = bind_one(ep, reuseport, err, errlen)) < 0) {
            app_listeners_close(fds, i);
            return -1;
        }
    }
    return n;
}

void app_listeners_close(int *fds, int n)
{
    for (int i = 0; i < n; i++)
        if (fds[i] >= 0) {
            close(fds[i]);
            fds[i] = -1;
        }
}
