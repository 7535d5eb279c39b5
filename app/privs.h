/* app/privs.h — running without privileges (docs/ARCHITECTURE.md
 * §Operating): bind as root, then continue as server.user / server.group;
 * state.directory is the only place written.
 *
 * The sequence `mxguard run` follows when started as root with server.user
 * set (every step returns 0, or -1 with err and the process must exit):
 *   mxg_privs_resolve()      look the user and group up (before anything)
 *   mxg_privs_prepare_dir()  create state.directory (0700) if missing, give
 *                            it to the user, and give the user the entries
 *                            in it that root left there (files made by an
 *                            earlier `mxguard list update` run as root, ...)
 *   mxg_privs_enter()        real+effective uid/gid = the user, saved = root:
 *                            everything opened from now on (databases, trust
 *                            anchor, CA file, keyring, spawned gpgv) is
 *                            opened *as the user*, so a file the user cannot
 *                            read fails now, at start-up, not at the first
 *                            SIGHUP or list refresh, and files it creates
 *                            are the user's
 *   mxg_privs_leave()        back to root, to bind the metrics listener and take
 *                            over the SMTP listeners (port 25: bound before
 *                            mxg_privs_enter, app/listeners.h)
 *   mxg_privs_drop()         for good: setgroups/setresgid/setresuid; checks
 *                            that root cannot be regained; then clears every
 *                            capability the process still holds (ambient,
 *                            permitted, effective) — also when mxguard was
 *                            started unprivileged with
 *                            AmbientCapabilities=CAP_NET_BIND_SERVICE by
 *                            systemd, so after binding it holds none.
 * With server.user = "" every step is a no-op except the capability
 * clearing (skipped for root, who keeps root: mxguard logs a warning). With
 * server.user naming the user mxguard already runs as, likewise; naming
 * another user without being root is an error.
 *
 * mxg_privs_cli() is the short form for the one-shot commands (check, list,
 * report, ...): when run as root with server.user set, resolve, prepare the
 * directory, drop — so files they create in state.directory belong to the
 * service's user; run by anyone else, nothing. */
#ifndef MXG_PRIVS_H
#define MXG_PRIVS_H

#include <stddef.h>
#include <sys/types.h>

#include "../core/config.h"

struct mxg_privs {
    int active; /* 1: started as root with a user to switch to */
    uid_t uid;
    gid_t gid;
    char user[MXG_CFG_NAME_MAX];
};

int mxg_privs_resolve(const struct mxg_config *cfg, struct mxg_privs *p, char *err, size_t errlen);
int mxg_privs_prepare_dir(const struct mxg_privs *p, const char *dir, char *err, size_t errlen);
int mxg_privs_enter(const struct mxg_privs *p, char *err, size_t errlen);
int mxg_privs_leave(const struct mxg_privs *p, char *err, size_t errlen);
int mxg_privs_drop(const struct mxg_privs *p, char *err, size_t errlen);
int mxg_privs_cli(const struct mxg_config *cfg, char *err, size_t errlen);

#endif
