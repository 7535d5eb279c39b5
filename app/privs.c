/* app/privs.c — see privs.h. */
#include "privs.h"

#include <dirent.h>
#include <stdarg.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/capability.h>

#include "../core/log.h"

#define COMP "privs"
#define ADOPT_DEPTH 8

/* printf into err; returns -1 (for `return say(...)`). */
static int say(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int say(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (err && errlen)
        vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

/* A decimal id ("1000"): 0 and *out, or -1. */
static int numeric_id(const char *s, unsigned long *out)
{
    char *end;
    if (!*s || *s < '0' || *s > '9')
        return -1;
    errno = 0;
    *out = strtoul(s, &end, 10);
    return errno || *end || *out >= (unsigned long)UINT_MAX ? -1 : 0;
}

/* server.user (a name or a number) to uid and primary gid; 0 or -1 with err. */
static int lookup_user(const char *name, uid_t *uid, gid_t *gid, char *err, size_t errlen)
{
    char buf[16384];
    struct passwd pw, *res = NULL;
    unsigned long n;
    int rc = getpwnam_r(name, &pw, buf, sizeof buf, &res);
    if (!res && numeric_id(name, &n) == 0)
        rc = getpwuid_r((uid_t)n, &pw, buf, sizeof buf, &res);
    if (!res)
        return say(err, errlen, "server.user = \"%s\": no such user%s%s", name, rc ? ": " : "",
                   rc ? strerror(rc) : "");
    *uid = pw.pw_uid;
    *gid = pw.pw_gid;
    return 0;
}

/* server.group (a name or a number) to gid; 0 or -1 with err. */
static int lookup_group(const char *name, gid_t *gid, char *err, size_t errlen)
{
    char buf[16384];
    struct group gr, *res = NULL;
    unsigned long n;
    int rc = getgrnam_r(name, &gr, buf, sizeof buf, &res);
    if (!res && numeric_id(name, &n) == 0)
        rc = getgrgid_r((gid_t)n, &gr, buf, sizeof buf, &res);
    if (!res)
        return say(err, errlen, "server.group = \"%s\": no such group%s%s", name, rc ? ": " : "",
                   rc ? strerror(rc) : "");
    *gid = gr.gr_gid;
    return 0;
}

/* Look server.user / server.group up (privs.h). */
int mxg_privs_resolve(const struct mxg_config *cfg, struct mxg_privs *p, char *err, size_t errlen)
{
    memset(p, 0, sizeof *p);
    if (!cfg->user[0]) {
        if (cfg->group[0])
            return say(err, errlen, "server.group is set but server.user is not");
        return 0;
    }
    uid_t uid;
    gid_t gid;
    if (lookup_user(cfg->user, &uid, &gid, err, errlen) < 0)
        return -1;
    if (cfg->group[0] && lookup_group(cfg->group, &gid, err, errlen) < 0)
        return -1;
    if (uid == 0)
        return say(err, errlen, "server.user = \"%s\" is root: name an unprivileged user",
                   cfg->user);
    if (geteuid() != 0) {
        if (getuid() == uid && geteuid() == uid && getgid() == gid)
            return 0; /* already that user: nothing to switch */
        return say(err, errlen,
                   "server.user = \"%s\": mxguard runs as uid %u, not as root, and cannot switch "
                   "users (start it as root, or as that user with server.user = \"\")",
                   cfg->user, (unsigned)geteuid());
    }
    p->active = 1;
    p->uid = uid;
    p->gid = gid;
    snprintf(p->user, sizeof p->user, "%s", cfg->user);
    return 0;
}

/* Give the user root's entries below the directory open as dirfd (closed
 * here): directories, and regular files with one link (a hard link to a
 * file elsewhere is never chowned). Symbolic links are not followed. */
static void adopt(int dirfd, const struct mxg_privs *p, int depth, int *n)
{
    DIR *d = fdopendir(dirfd);
    if (!d) {
        close(dirfd);
        return;
    }
    struct dirent *e;
    while ((e = readdir(d))) {
        struct stat st;
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0 ||
            fstatat(dirfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
            continue;
        int mine = st.st_uid == p->uid, roots = st.st_uid == 0;
        if (roots && (S_ISDIR(st.st_mode) || (S_ISREG(st.st_mode) && st.st_nlink == 1))) {
            if (fchownat(dirfd, e->d_name, p->uid, p->gid, AT_SYMLINK_NOFOLLOW) == 0)
                (*n)++;
            mine = 1;
        }
        if (S_ISDIR(st.st_mode) && mine && depth < ADOPT_DEPTH) {
            int sub = openat(dirfd, e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (sub >= 0)
                adopt(sub, p, depth + 1, n);
        }
    }
    closedir(d);
}

/* state.directory created and given to the user (privs.h). */
int mxg_privs_prepare_dir(const struct mxg_privs *p, const char *dir, char *err, size_t errlen)
{
    if (mkdir(dir, 0700) < 0 && errno != EEXIST)
        return say(err, errlen, "state.directory %s: %s", dir, strerror(errno));
    if (!p->active)
        return 0;
    char real[PATH_MAX];
    if (!realpath(dir, real))
        return say(err, errlen, "state.directory %s: %s", dir, strerror(errno));
    int depth = 0;
    for (const char *c = real; *c; c++)
        depth += *c == '/' && c[1];
    if (depth < 2)
        return say(err, errlen, "state.directory %s: refusing to give %s to user %s (use a "
                                "directory of its own, e.g. /var/lib/mxguard)", dir, real, p->user);
    int fd = open(real, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        return say(err, errlen, "state.directory %s: %s", dir, strerror(e));
    }
    if ((st.st_uid != p->uid || st.st_gid != p->gid) && fchown(fd, p->uid, p->gid) < 0) {
        int e = errno;
        close(fd);
        return say(err, errlen, "state.directory %s: chown to %s: %s", dir, p->user, strerror(e));
    }
    int n = 0;
    adopt(fd, p, 0, &n);
    if (n > 0)
        LOG_N(COMP, "state.directory %s: %d entr%s left by root given to %s", dir, n,
              n == 1 ? "y" : "ies", p->user);
    return 0;
}

/* Supplementary groups: just the user's group. */
static int set_groups(const struct mxg_privs *p, char *err, size_t errlen)
{
    /* the user's supplementary groups (e.g. one that may read a key file) */
    if (initgroups(p->user, p->gid) < 0 && setgroups(1, &p->gid) < 0)
        return say(err, errlen, "setgroups: %s", strerror(errno));
    return 0;
}

/* Become the user, root kept as the saved id (privs.h). */
int mxg_privs_enter(const struct mxg_privs *p, char *err, size_t errlen)
{
    if (!p->active)
        return 0;
    if (set_groups(p, err, errlen) < 0)
        return -1;
    if (setresgid(p->gid, p->gid, 0) < 0 || setresuid(p->uid, p->uid, 0) < 0)
        return say(err, errlen, "switching to user %s: %s", p->user, strerror(errno));
    return 0;
}

/* Back to root to bind the listeners (privs.h). */
int mxg_privs_leave(const struct mxg_privs *p, char *err, size_t errlen)
{
    if (!p->active)
        return 0;
    if (setresuid(0, 0, 0) < 0 || setresgid(0, 0, 0) < 0)
        return say(err, errlen, "switching back to root: %s", strerror(errno));
    return 0;
}

/* Clear the ambient, inheritable, permitted and effective capability sets.
 * Returns the number of permitted capabilities there were, or -1. */
static int clear_caps(char *err, size_t errlen)
{
    struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct d[2];
    memset(d, 0, sizeof d);
    (void)prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
    if (syscall(SYS_capget, &h, d) < 0)
        return say(err, errlen, "capget: %s", strerror(errno));
    int n = __builtin_popcount(d[0].permitted) + __builtin_popcount(d[1].permitted);
    if (n == 0 && d[0].inheritable == 0 && d[1].inheritable == 0)
        return 0;
    memset(d, 0, sizeof d);
    if (syscall(SYS_capset, &h, d) < 0)
        return say(err, errlen, "capset: %s", strerror(errno));
    return n;
}

/* Drop root and every capability for good (privs.h). */
int mxg_privs_drop(const struct mxg_privs *p, char *err, size_t errlen)
{
    if (p->active) {
        if (geteuid() != 0 && mxg_privs_leave(p, err, errlen) < 0)
            return -1;
        if (set_groups(p, err, errlen) < 0)
            return -1;
        if (setresgid(p->gid, p->gid, p->gid) < 0 || setresuid(p->uid, p->uid, p->uid) < 0)
            return say(err, errlen, "dropping to user %s: %s", p->user, strerror(errno));
        if (setuid(0) == 0 || seteuid(0) == 0 || getuid() != p->uid || geteuid() != p->uid)
            return say(err, errlen, "dropping to user %s: root could be regained", p->user);
        LOG_N(COMP, "running as user %s (uid %u, gid %u)", p->user, (unsigned)p->uid,
              (unsigned)p->gid);
    } else if (geteuid() == 0) {
        return 0; /* root stays root (main warns) */
    }
    int n = clear_caps(err, errlen);
    if (n < 0)
        return -1;
    if (n > 0)
        LOG_N(COMP, "dropped %d capabilit%s after binding", n, n == 1 ? "y" : "ies");
    return 0;
}

/* A one-shot command's switch to the user (privs.h). */
int mxg_privs_cli(const struct mxg_config *cfg, char *err, size_t errlen)
{
    struct mxg_privs p;
    if (!cfg->user[0] || geteuid() != 0)
        return 0; /* an operator's own account runs the command as it is */
    if (mxg_privs_resolve(cfg, &p, err, errlen) < 0)
        return -1;
    if (!p.active)
        return 0;
    if (mxg_privs_prepare_dir(&p, cfg->state_dir, err, errlen) < 0)
        return -1;
    return mxg_privs_drop(&p, err, errlen);
}
