/* tests/unit/spool_fixture.h — what the spool/ unit tests share: a fresh
 * spool in its own mkdtemp directory (removed with everything in it in
 * teardown), directory inspection, and an envelope maker.
 * Header-only: each test_*.c is its own executable. */
#ifndef MXG_TEST_SPOOL_FIXTURE_H
#define MXG_TEST_SPOOL_FIXTURE_H

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "spool/spool.h"

struct sfx {
    char dir[64];
    char err[512];
    struct mxg_spool *sp;
};

static int spool_fixture_setup(void **state)
{
    struct sfx *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    snprintf(f->dir, sizeof f->dir, "/tmp/mxg-spool-XXXXXX");
    if (!mkdtemp(f->dir)) {
        free(f);
        return -1;
    }
    f->sp = mxg_spool_open(f->dir, f->err, sizeof f->err);
    if (!f->sp) {
        rmdir(f->dir);
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

static inline void spool_rm_all(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    char p[512];
    if (!d)
        return;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.' && (!de->d_name[1] || (de->d_name[1] == '.' && !de->d_name[2])))
            continue;
        snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
        unlink(p);
    }
    closedir(d);
}

static int spool_fixture_teardown(void **state)
{
    struct sfx *f = *state;
    if (f->sp)
        mxg_spool_close(f->sp);
    spool_rm_all(f->dir);
    rmdir(f->dir);
    free(f);
    return 0;
}

/* Number of directory entries whose name ends with suffix ("" = all but
 * "." and ".." and "lock"). */
static inline int spool_count(const char *dir, const char *suffix)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    int n = 0;
    if (!d)
        return -1;
    while ((de = readdir(d))) {
        size_t l = strlen(de->d_name), m = strlen(suffix);
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..") || !strcmp(de->d_name, "lock"))
            continue;
        if (l >= m && strcmp(de->d_name + l - m, suffix) == 0)
            n++;
    }
    closedir(d);
    return n;
}

static inline int spool_file_exists(const char *dir, const char *id, const char *ext)
{
    char p[256];
    struct stat st;
    snprintf(p, sizeof p, "%s/%s%s", dir, id, ext);
    return stat(p, &st) == 0;
}

static inline void spool_write_file(const char *dir, const char *name, const char *text)
{
    char p[256];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *fp = fopen(p, "w");
    if (!fp)
        return;
    fputs(text, fp);
    fclose(fp);
}

/* A message envelope from SENDER to the comma-separated RCPTS (domain =
 * what follows the '@'). */
static inline void spool_make_env(struct mxg_spool_env *env, const char *sender, const char *rcpts)
{
    char list[1024], *save = NULL;
    memset(env, 0, sizeof *env);
    env->kind = MXG_SPOOL_MESSAGE;
    snprintf(env->from, sizeof env->from, "%s", sender);
    snprintf(env->client, sizeof env->client, "127.0.0.1");
    snprintf(env->helo, sizeof env->helo, "legacy.example");
    snprintf(list, sizeof list, "%s", rcpts);
    for (char *t = strtok_r(list, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        const char *at = strrchr(t, '@');
        mxg_spool_env_add_rcpt(env, t, at ? at + 1 : "", NULL);
    }
}

/* Read a whole file (fd from offset 0) into a heap string. */
static inline char *spool_slurp_fd(int fd, size_t *len)
{
    size_t cap = 4096, n = 0;
    char *b = malloc(cap + 1);
    for (;;) {
        if (n == cap) {
            cap *= 2;
            b = realloc(b, cap + 1);
        }
        ssize_t r = pread(fd, b + n, cap - n, (off_t)n);
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    b[n] = 0;
    if (len)
        *len = n;
    return b;
}

#endif
