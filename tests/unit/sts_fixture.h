/* tests/unit/sts_fixture.h — helpers shared by the policy/sts unit tests: a
 * result collector for mxg_sts_get() callbacks and the removal of an SQLite
 * cache file with its side files. Include after <cmocka.h> and policy/sts.h. */
#ifndef MXG_TEST_STS_FIXTURE_H
#define MXG_TEST_STS_FIXTURE_H

#include <stdio.h>
#include <unistd.h>

/* What an mxg_sts_get() callback delivered (sts_got_result fills it). */
struct got {
    int calls;
    struct mxg_sts_result r;
};

static void sts_got_result(void *arg, const struct mxg_sts_result *r)
{
    struct got *g = arg;
    g->calls++;
    g->r = *r;
}

/* Remove the database at path (and its -wal/-shm/-journal), then dir. */
static void sts_db_remove(const char *path, const char *dir)
{
    const char *sfx[] = {"", "-wal", "-shm", "-journal"};
    char p[200];
    for (size_t i = 0; i < sizeof sfx / sizeof sfx[0]; i++) {
        snprintf(p, sizeof p, "%s%s", path, sfx[i]);
        unlink(p);
    }
    rmdir(dir);
}

#endif
