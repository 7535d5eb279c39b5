/* core/file.h — durable file replacement: write a temporary file, fsync it,
 * rename it over the target, fsync the directory (so that after a crash the
 * target is either the old file or the whole new one), and its pieces for
 * callers that must check the staged file before putting it in place.
 * Used by the spool (envelopes) and the policy list store (list + signature).
 *
 * Contract:
 *  - Names are relative to dirfd (AT_FDCWD: to the working directory, or
 *    absolute paths); the caller owns dirfd and every buffer.
 *  - Blocking I/O: call only where blocking is allowed.
 *  - Errors: 0, or a negative errno; *step (when not NULL) names the step
 *    that failed (mxg_file_step_name() gives the word for a message).
 *  - hook (may be NULL) runs before the write, fsync, rename and directory
 *    fsync steps; a negative return fails that step with that value (fault
 *    injection in tests). No global state.
 */
#ifndef MXG_FILE_H
#define MXG_FILE_H

#include <stddef.h>

enum mxg_file_step {
    MXG_FILE_OPEN = 0, /* creating the temporary file (and its mode) */
    MXG_FILE_WRITE,
    MXG_FILE_SYNC,     /* fsync of the file */
    MXG_FILE_CLOSE,
    MXG_FILE_RENAME,
    MXG_FILE_DIR_SYNC, /* fsync of the directory */
};

/* Called before a step (see the contract); 0 to go on, or a negative errno. */
struct mxg_file_hook {
    int (*fn)(void *arg, enum mxg_file_step step);
    void *arg;
};

/* "open", "write", "fsync", "close", "rename", "directory fsync". */
const char *mxg_file_step_name(enum mxg_file_step step);

/* Write all n octets of p to fd (EINTR retried). 0 or -errno (-EIO if the
 * kernel takes nothing). */
int mxg_file_write_all(int fd, const void *p, size_t n);

/* Write len octets of data to the new file name in dirfd, mode exactly 0600
 * whatever the umask, fsync'ed and closed. A name ending in "XXXXXX" is
 * made unique (the X's are replaced in name, which the caller then owns);
 * otherwise a file of that name is truncated (a symbolic link is never
 * followed). On failure the file is removed again. */
int mxg_file_stage(int dirfd, char *name, const void *data, size_t len,
                   const struct mxg_file_hook *hook, enum mxg_file_step *step);

/* fsync a directory after a rename or an unlink in it: dir (opened relative
 * to dirfd), or with dir NULL dirfd itself. */
int mxg_file_sync_dir(int dirfd, const char *dir, const struct mxg_file_hook *hook,
                      enum mxg_file_step *step);

/* The whole durable replacement of target by data: mxg_file_stage(tmp),
 * rename tmp to target, fsync dirfd (with AT_FDCWD: the directory that
 * holds target; tmp must be in the same one). On failure up to the rename,
 * tmp is gone and target is what it was; if only the directory fsync
 * failed, target is the new file (the caller decides). */
int mxg_file_replace(int dirfd, char *tmp, const char *target, const void *data, size_t len,
                     const struct mxg_file_hook *hook, enum mxg_file_step *step);

#endif
