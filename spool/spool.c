/* spool/spool.c — the durable message store: files, fsync, locks. See
 * spool.h for the layout and the guarantees; the envelope's JSON is in
 * envelope.c, the settling of entries in settle.c. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../core/file.h"
#include "spool.h"

#define WBUF_SIZE (64 * 1024)
#define ENV_FILE_MAX (64 * 1024 * 1024)

struct mxg_spool {
    char dir[1024];
    int dirfd;
    int lockfd;   /* DIR/lock, held (flock) when owner */
    int owner;
    int cleaned;
    unsigned counter;
    int (*fault)(void *arg, enum mxg_spool_op op);
    void *fault_arg;
};

struct mxg_spool_writer {
    struct mxg_spool *sp;
    char id[MXG_SPOOL_ID_MAX];
    int fd;
    int err;        /* sticky, negative errno */
    uint64_t size;
    size_t used;
    char buf[WBUF_SIZE];
};

static void seterr(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int fault(struct mxg_spool *sp, enum mxg_spool_op op)
{
    return sp->fault ? sp->fault(sp->fault_arg, op) : 0;
}

static int has_suffix(const char *s, const char *suf, size_t *stem)
{
    size_t n = strlen(s), m = strlen(suf);
    if (n <= m || strcmp(s + n - m, suf) != 0)
        return 0;
    *stem = n - m;
    return 1;
}

static int exists_at(int dirfd, const char *name)
{
    struct stat st;
    return fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

/* The spool's fault injection (tests) at the steps of a durable replace. */
static int file_fault(void *arg, enum mxg_file_step step)
{
    struct mxg_spool *sp = arg;
    switch (step) {
    case MXG_FILE_WRITE:
        return fault(sp, MXG_SPOOL_OP_ENV_WRITE);
    case MXG_FILE_SYNC:
        return fault(sp, MXG_SPOOL_OP_ENV_SYNC);
    case MXG_FILE_RENAME:
        return fault(sp, MXG_SPOOL_OP_RENAME);
    case MXG_FILE_DIR_SYNC:
        return fault(sp, MXG_SPOOL_OP_DIR_SYNC);
    case MXG_FILE_OPEN:
    case MXG_FILE_CLOSE:
        break;
    }
    return 0;
}

/* fsync the spool directory (its fault point: MXG_SPOOL_OP_DIR_SYNC). 0 or -errno. */
static int sync_dir(struct mxg_spool *sp)
{
    struct mxg_file_hook hook = {file_fault, sp};
    return mxg_file_sync_dir(sp->dirfd, NULL, &hook, NULL);
}

/* ------------------------------------------------------------- open/close */

/* Remove what a crash left: *.tmp, and *.msg that belong to no entry and
 * that no live writer holds. Only the owner does this. */
static void clean_leftovers(struct mxg_spool *sp)
{
    int fd = dup(sp->dirfd);
    if (fd < 0)
        return;
    DIR *d = fdopendir(fd);
    if (!d) {
        close(fd);
        return;
    }
    struct dirent *de;
    int removed = 0;
    while ((de = readdir(d))) {
        size_t stem;
        char name[MXG_SPOOL_ID_MAX + 16];
        if (has_suffix(de->d_name, ".tmp", &stem)) {
            if (unlinkat(sp->dirfd, de->d_name, 0) == 0)
                removed++;
            continue;
        }
        if (!has_suffix(de->d_name, ".msg", &stem) || stem >= MXG_SPOOL_ID_MAX)
            continue;
        char id[MXG_SPOOL_ID_MAX];
        memcpy(id, de->d_name, stem);
        id[stem] = 0;
        snprintf(name, sizeof name, "%s.env", id);
        if (exists_at(sp->dirfd, name))
            continue;
        snprintf(name, sizeof name, "%s.bad", id);
        if (exists_at(sp->dirfd, name))
            continue;
        int mfd = openat(sp->dirfd, de->d_name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (mfd < 0)
            continue;
        if (flock(mfd, LOCK_EX | LOCK_NB) == 0) {
            /* re-check: the writer may have committed just now */
            snprintf(name, sizeof name, "%s.env", id);
            if (!exists_at(sp->dirfd, name) && unlinkat(sp->dirfd, de->d_name, 0) == 0)
                removed++;
        }
        close(mfd);
    }
    closedir(d);
    if (removed)
        fsync(sp->dirfd);
    sp->cleaned = removed;
}

struct mxg_spool *mxg_spool_open(const char *dir, char *err, size_t errlen)
{
    if (!dir || !dir[0] || strlen(dir) >= sizeof(((struct mxg_spool *)0)->dir)) {
        seterr(err, errlen, "spool directory name empty or too long");
        return NULL;
    }
    if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
        seterr(err, errlen, "spool %s: mkdir: %s", dir, strerror(errno));
        return NULL;
    }
    struct mxg_spool *sp = calloc(1, sizeof *sp);
    if (!sp) {
        seterr(err, errlen, "out of memory");
        return NULL;
    }
    snprintf(sp->dir, sizeof sp->dir, "%s", dir);
    sp->lockfd = -1;
    sp->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (sp->dirfd < 0) {
        seterr(err, errlen, "spool %s: %s", dir, strerror(errno));
        free(sp);
        return NULL;
    }
    sp->lockfd = openat(sp->dirfd, "lock", O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (sp->lockfd < 0) {
        seterr(err, errlen, "spool %s/lock: %s", dir, strerror(errno));
        close(sp->dirfd);
        free(sp);
        return NULL;
    }
    if (flock(sp->lockfd, LOCK_EX | LOCK_NB) == 0) {
        sp->owner = 1;
        clean_leftovers(sp);
    }
    return sp;
}

void mxg_spool_close(struct mxg_spool *sp)
{
    if (!sp)
        return;
    if (sp->lockfd >= 0)
        close(sp->lockfd);
    close(sp->dirfd);
    free(sp);
}

const char *mxg_spool_dir(const struct mxg_spool *sp)
{
    return sp->dir;
}

int mxg_spool_owner(const struct mxg_spool *sp)
{
    return sp->owner;
}

int mxg_spool_cleaned(const struct mxg_spool *sp)
{
    return sp->cleaned;
}

void mxg_spool_set_fault(struct mxg_spool *sp, int (*fn)(void *arg, enum mxg_spool_op op),
                         void *arg)
{
    sp->fault = fn;
    sp->fault_arg = arg;
}

/* ------------------------------------------------------------- envelopes */

/* Write env durably as ID.env (tmp, fsync, rename, dir fsync: core/file.h).
 * On failure the tmp file is gone and ID.env is what it was (or, if only
 * the directory fsync failed, the new one: the caller decides). */
static int env_write(struct mxg_spool *sp, const struct mxg_spool_env *env, char *err,
                     size_t errlen)
{
    char tmp[MXG_SPOOL_ID_MAX + 16], fin[MXG_SPOOL_ID_MAX + 16];
    if (!mxg_spool_id_valid(env->id)) {
        seterr(err, errlen, "spool: invalid entry id");
        return -EINVAL;
    }
    snprintf(tmp, sizeof tmp, "%s.env.tmp", env->id);
    snprintf(fin, sizeof fin, "%s.env", env->id);
    char *json = mxg_spool_env_encode(env);
    if (!json) {
        seterr(err, errlen, "spool: out of memory");
        return -ENOMEM;
    }
    struct mxg_file_hook hook = {file_fault, sp};
    enum mxg_file_step step = MXG_FILE_OPEN;
    int rc = mxg_file_replace(sp->dirfd, tmp, fin, json, strlen(json), &hook, &step);
    if (rc < 0)
        seterr(err, errlen, "spool %s/%s: %s: %s", sp->dir, fin, mxg_file_step_name(step),
               strerror(-rc));
    free(json);
    return rc;
}

int mxg_spool_update(struct mxg_spool *sp, const struct mxg_spool_env *env, char *err,
                     size_t errlen)
{
    char fin[MXG_SPOOL_ID_MAX + 16];
    if (!mxg_spool_id_valid(env->id)) {
        seterr(err, errlen, "spool: invalid entry id");
        return -EINVAL;
    }
    snprintf(fin, sizeof fin, "%s.env", env->id);
    if (!exists_at(sp->dirfd, fin)) {
        seterr(err, errlen, "spool %s/%s: entry no longer exists", sp->dir, fin);
        return -ENOENT;
    }
    return env_write(sp, env, err, errlen);
}

int mxg_spool_load(struct mxg_spool *sp, const char *id, struct mxg_spool_env *out, char *err,
                   size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (!mxg_spool_id_valid(id)) {
        seterr(err, errlen, "spool: invalid entry id");
        return -EINVAL;
    }
    char fin[MXG_SPOOL_ID_MAX + 16];
    snprintf(fin, sizeof fin, "%s.env", id);
    int fd = openat(sp->dirfd, fin, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        int e = errno;
        seterr(err, errlen, "spool %s/%s: %s", sp->dir, fin, strerror(e));
        return -e;
    }
    struct stat st;
    if (fstat(fd, &st) < 0 || st.st_size > ENV_FILE_MAX) {
        close(fd);
        seterr(err, errlen, "spool %s/%s: unreadable or larger than %d octets", sp->dir, fin,
               ENV_FILE_MAX);
        return -EINVAL;
    }
    size_t cap = (size_t)st.st_size + 1, len = 0;
    char *buf = malloc(cap);
    if (!buf) {
        close(fd);
        seterr(err, errlen, "out of memory");
        return -ENOMEM;
    }
    for (;;) {
        if (len == cap) { /* grew meanwhile: a rename replaced it, fine; cap it */
            close(fd);
            free(buf);
            seterr(err, errlen, "spool %s/%s: changed while reading", sp->dir, fin);
            return -EAGAIN;
        }
        ssize_t r = read(fd, buf + len, cap - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int e = errno;
            close(fd);
            free(buf);
            seterr(err, errlen, "spool %s/%s: read: %s", sp->dir, fin, strerror(e));
            return -e;
        }
        if (r == 0)
            break;
        len += (size_t)r;
    }
    close(fd);
    char why[400];
    int rc = mxg_spool_env_decode(buf, len, out, why, sizeof why);
    free(buf);
    if (rc < 0) {
        seterr(err, errlen, "spool %s/%s: %s", sp->dir, fin, why);
        return rc;
    }
    if (strcmp(out->id, id) != 0) {
        seterr(err, errlen, "spool %s/%s: envelope names another entry (%s)", sp->dir, fin, out->id);
        mxg_spool_env_free(out);
        return -EINVAL;
    }
    return 0;
}

/* ------------------------------------------------------------- writer */

int mxg_spool_writer_new(struct mxg_spool *sp, struct mxg_spool_writer **out, char *err,
                         size_t errlen)
{
    *out = NULL;
    struct mxg_spool_writer *w = malloc(sizeof *w);
    if (!w) {
        seterr(err, errlen, "out of memory");
        return -ENOMEM;
    }
    memset(w, 0, offsetof(struct mxg_spool_writer, buf));
    w->sp = sp;
    for (int tries = 0;; tries++) {
        snprintf(w->id, sizeof w->id, "%013" PRId64 "-%04X-%ld", now_ms(), sp->counter++ & 0xffff,
                 (long)getpid());
        char name[MXG_SPOOL_ID_MAX + 16];
        snprintf(name, sizeof name, "%s.msg", w->id);
        w->fd = openat(sp->dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
        int e = errno;
        if (w->fd >= 0) {
            /* the entry's lock; then the file must still be linked: a leftover
             * clean-up (another process that owns the spool) may have locked or
             * unlinked it between the open and the lock — a new id then */
            struct stat st;
            int rc = fault(sp, MXG_SPOOL_OP_BODY_LOCK);
            if (rc == 0 && flock(w->fd, LOCK_EX | LOCK_NB) == 0 && fstat(w->fd, &st) == 0 &&
                st.st_nlink > 0)
                break;
            close(w->fd);
            w->fd = -1;
            unlinkat(sp->dirfd, name, 0); /* ours (O_EXCL), if still there */
            /* an injected error other than "locked" fails the step, as elsewhere */
            e = rc < 0 && rc != -EWOULDBLOCK ? -rc : EEXIST;
        }
        if (e != EEXIST || tries > 100) {
            seterr(err, errlen, "spool %s/%s: %s", sp->dir, name, strerror(e));
            free(w);
            return -e;
        }
    }
    *out = w;
    return 0;
}

const char *mxg_spool_writer_id(const struct mxg_spool_writer *w)
{
    return w->id;
}

static int wflush(struct mxg_spool_writer *w)
{
    if (w->err)
        return w->err;
    if (w->used) {
        int rc = fault(w->sp, MXG_SPOOL_OP_BODY_WRITE);
        if (rc == 0)
            rc = mxg_file_write_all(w->fd, w->buf, w->used);
        if (rc < 0)
            return w->err = rc;
        w->used = 0;
    }
    return 0;
}

int mxg_spool_write(struct mxg_spool_writer *w, const void *p, size_t n)
{
    const char *s = p;
    if (w->err)
        return w->err;
    while (n) {
        size_t room = WBUF_SIZE - w->used;
        if (room == 0) {
            if (wflush(w) < 0)
                return w->err;
            room = WBUF_SIZE;
        }
        size_t k = n < room ? n : room;
        memcpy(w->buf + w->used, s, k);
        w->used += k;
        w->size += k;
        s += k;
        n -= k;
    }
    if (w->used == WBUF_SIZE)
        return wflush(w);
    return 0;
}

static void writer_discard(struct mxg_spool_writer *w)
{
    char name[MXG_SPOOL_ID_MAX + 16];
    snprintf(name, sizeof name, "%s.msg", w->id);
    unlinkat(w->sp->dirfd, name, 0);
    close(w->fd);
    free(w);
}

void mxg_spool_abort(struct mxg_spool_writer *w)
{
    if (w)
        writer_discard(w);
}

int mxg_spool_commit(struct mxg_spool_writer *w, struct mxg_spool_env *env, char *err,
                     size_t errlen)
{
    struct mxg_spool *sp = w->sp;
    int rc = wflush(w);
    const char *what = "write";
    if (rc == 0) {
        what = "fsync";
        rc = fault(sp, MXG_SPOOL_OP_BODY_SYNC);
        if (rc == 0 && fsync(w->fd) < 0)
            rc = -errno;
    }
    if (rc < 0) {
        seterr(err, errlen, "spool %s/%s.msg: %s: %s", sp->dir, w->id, what, strerror(-rc));
        writer_discard(w);
        return rc;
    }
    if (env->n_rcpts <= 0) {
        seterr(err, errlen, "spool: an entry needs at least one recipient");
        writer_discard(w);
        return -EINVAL;
    }
    snprintf(env->id, sizeof env->id, "%s", w->id);
    env->body_size = w->size;
    if (env->created_ms == 0)
        env->created_ms = now_ms();
    rc = env_write(sp, env, err, errlen);
    if (rc < 0) {
        /* nothing of the entry may remain: the envelope may be in place if
         * only the directory fsync failed */
        char fin[MXG_SPOOL_ID_MAX + 16];
        snprintf(fin, sizeof fin, "%s.env", w->id);
        unlinkat(sp->dirfd, fin, 0);
        writer_discard(w);
        return rc;
    }
    close(w->fd); /* releases the entry's lock */
    free(w);
    return 0;
}

int mxg_spool_put(struct mxg_spool *sp, const void *body, size_t len, struct mxg_spool_env *env,
                  char *err, size_t errlen)
{
    struct mxg_spool_writer *w;
    int rc = mxg_spool_writer_new(sp, &w, err, errlen);
    if (rc < 0)
        return rc;
    rc = mxg_spool_write(w, body, len);
    if (rc < 0) {
        seterr(err, errlen, "spool %s/%s.msg: write: %s", sp->dir, w->id, strerror(-rc));
        mxg_spool_abort(w);
        return rc;
    }
    return mxg_spool_commit(w, env, err, errlen);
}

/* ------------------------------------------------------------- entries */

static int cmp_id(const void *a, const void *b)
{
    return strcmp((const char *)a, (const char *)b);
}

int mxg_spool_list(struct mxg_spool *sp, char (**ids)[MXG_SPOOL_ID_MAX], int *n)
{
    *ids = NULL;
    *n = 0;
    int fd = dup(sp->dirfd);
    if (fd < 0)
        return -errno;
    DIR *d = fdopendir(fd);
    if (!d) {
        int e = errno;
        close(fd);
        return -e;
    }
    rewinddir(d);
    char (*arr)[MXG_SPOOL_ID_MAX] = NULL;
    int cnt = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t stem;
        if (!has_suffix(de->d_name, ".env", &stem) || stem >= MXG_SPOOL_ID_MAX)
            continue;
        char id[MXG_SPOOL_ID_MAX];
        memcpy(id, de->d_name, stem);
        id[stem] = 0;
        if (!mxg_spool_id_valid(id))
            continue;
        if (cnt == cap) {
            int nc = cap ? cap * 2 : 64;
            void *na = realloc(arr, (size_t)nc * sizeof *arr);
            if (!na) {
                free(arr);
                closedir(d);
                return -ENOMEM;
            }
            arr = na;
            cap = nc;
        }
        memcpy(arr[cnt++], id, stem + 1);
    }
    closedir(d);
    if (cnt)
        qsort(arr, (size_t)cnt, sizeof *arr, cmp_id);
    *ids = arr;
    *n = cnt;
    return 0;
}

int mxg_spool_remove(struct mxg_spool *sp, const char *id)
{
    if (!mxg_spool_id_valid(id))
        return -EINVAL;
    char name[MXG_SPOOL_ID_MAX + 16];
    snprintf(name, sizeof name, "%s.env", id);
    int rc = 0;
    if (unlinkat(sp->dirfd, name, 0) < 0)
        rc = -errno;
    if (rc == 0)
        rc = sync_dir(sp);
    snprintf(name, sizeof name, "%s.msg", id);
    if (unlinkat(sp->dirfd, name, 0) < 0 && rc == 0 && errno != ENOENT)
        rc = -errno;
    return rc;
}

int mxg_spool_body_open(struct mxg_spool *sp, const char *id)
{
    if (!mxg_spool_id_valid(id))
        return -EINVAL;
    char name[MXG_SPOOL_ID_MAX + 16];
    snprintf(name, sizeof name, "%s.msg", id);
    int fd = openat(sp->dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    return fd < 0 ? -errno : fd;
}

int mxg_spool_lock(struct mxg_spool *sp, const char *id)
{
    int fd = mxg_spool_body_open(sp, id);
    if (fd < 0)
        return fd;
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        int e = errno;
        close(fd);
        return e == EWOULDBLOCK ? -EBUSY : -e;
    }
    char name[MXG_SPOOL_ID_MAX + 16];
    snprintf(name, sizeof name, "%s.env", id);
    if (!exists_at(sp->dirfd, name)) { /* removed (or not committed yet) */
        close(fd);
        return -ENOENT;
    }
    return fd;
}

int mxg_spool_quarantine(struct mxg_spool *sp, const char *id)
{
    if (!mxg_spool_id_valid(id))
        return -EINVAL;
    char a[MXG_SPOOL_ID_MAX + 16], b[MXG_SPOOL_ID_MAX + 16];
    snprintf(a, sizeof a, "%s.env", id);
    snprintf(b, sizeof b, "%s.bad", id);
    if (renameat(sp->dirfd, a, sp->dirfd, b) < 0)
        return -errno;
    return sync_dir(sp);
}
