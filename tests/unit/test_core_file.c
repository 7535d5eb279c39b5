/* tests/unit/test_core_file.c — core/file: the durable replace (tmp, fsync, rename,
 * directory fsync) shared by the spool and the policy list store: content
 * and mode, unique temporary names, and a failure at every step (through
 * the hook) leaving the target as it was (or new, if only the directory
 * fsync failed) and no temporary file behind. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/file.h"

struct fx {
    char dir[256];
    int dirfd;
};

static int setup(void **state)
{
    static struct fx f;
    const char *t = getenv("TMPDIR");
    snprintf(f.dir, sizeof f.dir, "%s/mxg-file-XXXXXX", t && *t ? t : "/tmp");
    if (!mkdtemp(f.dir))
        return -1;
    f.dirfd = open(f.dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    *state = &f;
    return f.dirfd < 0 ? -1 : 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    DIR *d = opendir(f->dir);
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (e->d_name[0] != '.' || (e->d_name[1] && strcmp(e->d_name, "..") != 0))
            unlinkat(f->dirfd, e->d_name, 0);
    if (d)
        closedir(d);
    close(f->dirfd);
    rmdir(f->dir);
    return 0;
}

/* The content of name in f (NUL-terminated, static), or NULL if absent. */
static const char *content(struct fx *f, const char *name)
{
    static char buf[256];
    int fd = openat(f->dirfd, name, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    buf[n < 0 ? 0 : n] = '\0';
    return buf;
}

/* Number of entries in the directory besides "." and "..". */
static int entries(struct fx *f)
{
    DIR *d = opendir(f->dir);
    struct dirent *e;
    int n = 0;
    while (d && (e = readdir(d)))
        n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    if (d)
        closedir(d);
    return n;
}

static void test_replace(void **state)
{
    struct fx *f = *state;
    char tmp[] = "a.tmp";
    enum mxg_file_step step = MXG_FILE_CLOSE;
    mode_t old = umask(0277); /* the mode is exactly 0600 even so (not 0400) */
    assert_int_equal(mxg_file_replace(f->dirfd, tmp, "a", "one", 3, NULL, &step), 0);
    umask(old);
    assert_int_equal(step, MXG_FILE_DIR_SYNC);
    assert_string_equal(content(f, "a"), "one");
    assert_null(content(f, "a.tmp"));
    struct stat st;
    assert_int_equal(fstatat(f->dirfd, "a", &st, 0), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    /* over an existing file, and over a stale temporary file */
    assert_int_equal(mxg_file_stage(f->dirfd, tmp, "stale-and-longer", 16, NULL, NULL), 0);
    assert_int_equal(mxg_file_replace(f->dirfd, tmp, "a", "two", 3, NULL, NULL), 0);
    assert_string_equal(content(f, "a"), "two");
    assert_int_equal(entries(f), 1);
    /* an empty file */
    assert_int_equal(mxg_file_replace(f->dirfd, tmp, "a", "", 0, NULL, NULL), 0);
    assert_string_equal(content(f, "a"), "");
    /* through a path, as the policy list store calls it */
    char path[400], tp[400];
    snprintf(path, sizeof path, "%s/b", f->dir);
    snprintf(tp, sizeof tp, "%s/.b.tmp", f->dir);
    assert_int_equal(mxg_file_replace(AT_FDCWD, tp, path, "bee", 3, NULL, NULL), 0);
    assert_string_equal(content(f, "b"), "bee");
    assert_int_equal(mxg_file_sync_dir(AT_FDCWD, f->dir, NULL, NULL), 0);
    assert_int_equal(mxg_file_sync_dir(f->dirfd, NULL, NULL, NULL), 0);
    snprintf(path, sizeof path, "%s/none", f->dir);
    assert_int_equal(mxg_file_sync_dir(AT_FDCWD, path, NULL, NULL), -ENOENT);
}

static void test_stage_unique(void **state)
{
    struct fx *f = *state;
    char a[] = ".list.XXXXXX", b[] = ".list.XXXXXX";
    enum mxg_file_step step;
    assert_int_equal(mxg_file_stage(f->dirfd, a, "x", 1, NULL, &step), 0);
    assert_int_equal(mxg_file_stage(f->dirfd, b, "y", 1, NULL, &step), 0);
    assert_int_equal(step, MXG_FILE_CLOSE);
    assert_int_equal(strncmp(a, ".list.", 6), 0);
    assert_string_not_equal(a + 6, "XXXXXX");
    assert_string_not_equal(a, b);
    assert_string_equal(content(f, a), "x");
    assert_string_equal(content(f, b), "y");
    struct stat st;
    assert_int_equal(fstatat(f->dirfd, a, &st, 0), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    /* a missing directory: fails at open */
    char c[] = "no/such/dir/.x.XXXXXX";
    assert_int_equal(mxg_file_stage(f->dirfd, c, "z", 1, NULL, &step), -ENOENT);
    assert_int_equal(step, MXG_FILE_OPEN);
    /* a symbolic link as the temporary name is never followed */
    assert_int_equal(symlinkat("a-target", f->dirfd, "link.tmp"), 0);
    char l[] = "link.tmp";
    assert_int_equal(mxg_file_stage(f->dirfd, l, "z", 1, NULL, &step), -ELOOP);
    assert_null(content(f, "a-target"));
    unlinkat(f->dirfd, "link.tmp", 0);
    unlinkat(f->dirfd, a, 0);
    unlinkat(f->dirfd, b, 0);
}

struct fail_at {
    enum mxg_file_step at;
    int calls[MXG_FILE_DIR_SYNC + 1];
};

static int hook_fail(void *arg, enum mxg_file_step step)
{
    struct fail_at *fa = arg;
    fa->calls[step]++;
    return step == fa->at ? -EDQUOT : 0;
}

static void test_fail_each_step(void **state)
{
    struct fx *f = *state;
    static const enum mxg_file_step hooked[] = {MXG_FILE_WRITE, MXG_FILE_SYNC, MXG_FILE_RENAME,
                                                MXG_FILE_DIR_SYNC};
    for (size_t i = 0; i < sizeof hooked / sizeof hooked[0]; i++) {
        char tmp[] = "t.tmp";
        assert_int_equal(mxg_file_replace(f->dirfd, tmp, "t", "old", 3, NULL, NULL), 0);
        struct fail_at fa = {.at = hooked[i]};
        struct mxg_file_hook h = {hook_fail, &fa};
        enum mxg_file_step step = MXG_FILE_OPEN;
        assert_int_equal(mxg_file_replace(f->dirfd, tmp, "t", "new", 3, &h, &step), -EDQUOT);
        assert_int_equal(step, hooked[i]);
        /* the hook runs once before each step up to the failing one */
        for (size_t k = 0; k < sizeof hooked / sizeof hooked[0]; k++)
            assert_int_equal(fa.calls[hooked[k]], k <= i ? 1 : 0);
        assert_int_equal(fa.calls[MXG_FILE_OPEN] + fa.calls[MXG_FILE_CLOSE], 0);
        assert_null(content(f, "t.tmp"));
        assert_string_equal(content(f, "t"), hooked[i] == MXG_FILE_DIR_SYNC ? "new" : "old");
        assert_int_equal(entries(f), 1);
    }
    assert_string_equal(mxg_file_step_name(MXG_FILE_OPEN), "open");
    assert_string_equal(mxg_file_step_name(MXG_FILE_WRITE), "write");
    assert_string_equal(mxg_file_step_name(MXG_FILE_SYNC), "fsync");
    assert_string_equal(mxg_file_step_name(MXG_FILE_CLOSE), "close");
    assert_string_equal(mxg_file_step_name(MXG_FILE_RENAME), "rename");
    assert_string_equal(mxg_file_step_name(MXG_FILE_DIR_SYNC), "directory fsync");
    unlinkat(f->dirfd, "t", 0);
}

static void test_write_all(void **state)
{
    (void)state;
    int p[2];
    assert_int_equal(pipe(p), 0);
    assert_int_equal(mxg_file_write_all(p[1], "hello", 5), 0);
    char b[8] = {0};
    assert_int_equal(read(p[0], b, sizeof b), 5);
    assert_string_equal(b, "hello");
    close(p[0]);
    close(p[1]);
    assert_int_equal(mxg_file_write_all(p[1], "x", 1), -EBADF);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_replace, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stage_unique, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fail_each_step, setup, teardown),
        cmocka_unit_test(test_write_all),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
