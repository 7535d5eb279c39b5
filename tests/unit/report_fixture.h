/* tests/unit/report_fixture.h — the cmocka fixture the report/ unit tests
 * share: a fresh TLSRPT database in its own mkdtemp directory (no loop:
 * writes happen on mxg_rpt_flush/close), removed again in teardown.
 * Header-only: each test_*.c is its own executable. */
#ifndef MXG_TEST_REPORT_FIXTURE_H
#define MXG_TEST_REPORT_FIXTURE_H

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "report/tlsrpt.h"

struct fx {
    char dir[64];
    char path[128];
    char err[256];
    struct mxg_rpt *r;
};

static int rpt_fixture_setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    snprintf(f->dir, sizeof f->dir, "/tmp/mxg-rpt-XXXXXX");
    if (!mkdtemp(f->dir)) {
        free(f);
        return -1;
    }
    snprintf(f->path, sizeof f->path, "%s/tlsrpt.db", f->dir);
    f->r = mxg_rpt_open(NULL, f->path, 0, f->err, sizeof f->err);
    if (!f->r) {
        rmdir(f->dir);
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

static int rpt_fixture_teardown(void **state)
{
    struct fx *f = *state;
    const char *sfx[] = {"", "-wal", "-shm", "-journal"};
    char p[160];
    mxg_rpt_close(f->r);
    for (size_t i = 0; i < sizeof sfx / sizeof sfx[0]; i++) {
        snprintf(p, sizeof p, "%s%s", f->path, sfx[i]);
        unlink(p);
    }
    rmdir(f->dir);
    free(f);
    return 0;
}

#endif
