/* core/file.c — see file.h. */
#include "file.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h> /* renameat */
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

/* Contract: see file.h. */
const char *mxg_file_step_name(enum mxg_file_step step)
{
    switch (step) {
    case MXG_FILE_OPEN:
        return "open";
    case MXG_FILE_WRITE:
        return "write";
    case MXG_FILE_SYNC:
        return "fsync";
    case MXG_FILE_CLOSE:
        return "close";
    case MXG_FILE_RENAME:
        return "rename";
    case MXG_FILE_DIR_SYNC:
        return "directory fsync";
    }
    return "?";
}

/* Note the step about to run and run the hook before it. 0 or its -errno. */
static int begin(const struct mxg_file_hook *hook, enum mxg_file_step s, enum mxg_file_step *step)
{
    if (step)
        *step = s;
    return hook && hook->fn ? hook->fn(hook->arg, s) : 0;
}

/* Contract: see file.h. */
int mxg_file_write_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n) {
        ssize_t w = write(fd, c, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (w == 0)
            return -EIO;
        c += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Create name (its last 6 octets, "XXXXXX", replaced by random letters and
 * digits) as a new file in dirfd, as mkstemp does. The fd, or -errno. */
static int open_unique(int dirfd, char *name, size_t at)
{
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    for (unsigned tries = 0; tries < 100; tries++) {
        unsigned char r[6];
        if (getrandom(r, sizeof r, GRND_NONBLOCK) != (ssize_t)sizeof r) {
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            uint64_t x = (uint64_t)ts.tv_nsec * 0x9e3779b97f4a7c15ull ^ (uint64_t)getpid() ^ tries;
            for (size_t i = 0; i < sizeof r; i++, x >>= 8)
                r[i] = (unsigned char)x;
        }
        for (size_t i = 0; i < sizeof r; i++)
            name[at + i] = abc[r[i] % (sizeof abc - 1)];
        int fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd >= 0 || errno != EEXIST)
            return fd >= 0 ? fd : -errno;
    }
    return -EEXIST;
}

/* Contract: see file.h. */
int mxg_file_stage(int dirfd, char *name, const void *data, size_t len,
                   const struct mxg_file_hook *hook, enum mxg_file_step *step)
{
    size_t n = strlen(name);
    int fd, rc;

    begin(NULL, MXG_FILE_OPEN, step);
    if (n >= 6 && strcmp(name + n - 6, "XXXXXX") == 0) {
        if ((fd = open_unique(dirfd, name, n - 6)) < 0)
            return fd;
    } else {
        fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0)
            return -errno;
    }
    if ((rc = begin(hook, MXG_FILE_WRITE, step)) < 0)
        goto fail_close;
    /* exactly 0600 whatever the umask */
    if (fchmod(fd, 0600) < 0) {
        rc = -errno;
        goto fail_close;
    }
    if ((rc = mxg_file_write_all(fd, data, len)) < 0)
        goto fail_close;
    if ((rc = begin(hook, MXG_FILE_SYNC, step)) < 0)
        goto fail_close;
    if (fsync(fd) < 0) {
        rc = -errno;
        goto fail_close;
    }
    begin(NULL, MXG_FILE_CLOSE, step);
    if (close(fd) < 0) {
        rc = -errno;
        goto fail_unlink;
    }
    return 0;
fail_close:
    close(fd);
fail_unlink:
    unlinkat(dirfd, name, 0);
    return rc;
}

/* Contract: see file.h. */
int mxg_file_sync_dir(int dirfd, const char *dir, const struct mxg_file_hook *hook,
                      enum mxg_file_step *step)
{
    int rc = begin(hook, MXG_FILE_DIR_SYNC, step);
    if (rc < 0)
        return rc;
    if (!dir)
        return fsync(dirfd) < 0 ? -errno : 0;
    int fd = openat(dirfd, dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    rc = fsync(fd) < 0 ? -errno : 0;
    close(fd);
    return rc;
}

/* Contract: see file.h. */
int mxg_file_replace(int dirfd, char *tmp, const char *target, const void *data, size_t len,
                     const struct mxg_file_hook *hook, enum mxg_file_step *step)
{
    int rc = mxg_file_stage(dirfd, tmp, data, len, hook, step);
    if (rc < 0)
        return rc;
    if ((rc = begin(hook, MXG_FILE_RENAME, step)) == 0 &&
        renameat(dirfd, tmp, dirfd, target) < 0)
        rc = -errno;
    if (rc < 0) {
        unlinkat(dirfd, tmp, 0);
        return rc;
    }
    if (dirfd != AT_FDCWD)
        return mxg_file_sync_dir(dirfd, NULL, hook, step);
    /* by path: the directory that holds target */
    char dir[PATH_MAX];
    const char *slash = strrchr(target, '/');
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else if (slash == target)
        snprintf(dir, sizeof dir, "/");
    else if ((size_t)(slash - target) < sizeof dir)
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - target), target);
    else {
        begin(NULL, MXG_FILE_DIR_SYNC, step);
        return -ENAMETOOLONG;
    }
    return mxg_file_sync_dir(AT_FDCWD, dir, hook, step);
}
