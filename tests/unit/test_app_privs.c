/* tests/unit/test_app_privs.c — server.user / server.group: resolution,
 * the state directory hand-over, the temporary and the final switch (in
 * forked children, so the test process keeps its identity). The parts that
 * need root are skipped when the test does not run as root. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <pwd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/config.h"
#include "app/privs.h"

static void cfg_user(struct mxg_config *c, const char *user, const char *group)
{
    mxg_config_defaults(c);
    snprintf(c->user, sizeof c->user, "%s", user);
    snprintf(c->group, sizeof c->group, "%s", group);
}

static void test_resolve(void **state)
{
    (void)state;
    struct mxg_config c;
    struct mxg_privs p;
    char err[512];
    cfg_user(&c, "", "");
    assert_int_equal(mxg_privs_resolve(&c, &p, err, sizeof err), 0);
    assert_int_equal(p.active, 0);
    cfg_user(&c, "", "nogroup");
    assert_int_equal(mxg_privs_resolve(&c, &p, err, sizeof err), -1);
    assert_string_equal(err, "server.group is set but server.user is not");
    cfg_user(&c, "no-such-user-mxg", "");
    assert_int_equal(mxg_privs_resolve(&c, &p, err, sizeof err), -1);
    assert_non_null(strstr(err, "server.user = \"no-such-user-mxg\": no such user"));
    cfg_user(&c, "root", "");
    assert_int_equal(mxg_privs_resolve(&c, &p, err, sizeof err), -1);
    assert_non_null(strstr(err, "is root"));
    cfg_user(&c, "nobody", "no-such-group-mxg");
    assert_int_equal(mxg_privs_resolve(&c, &p, err, sizeof err), -1);
    assert_non_null(strstr(err, "no such group"));

    struct passwd *nb = getpwnam("nobody");
    assert_non_null(nb);
    cfg_user(&c, "nobody", "");
    int rc = mxg_privs_resolve(&c, &p, err, sizeof err);
    if (geteuid() == 0) {
        assert_int_equal(rc, 0);
        assert_int_equal(p.active, 1);
        assert_int_equal(p.uid, nb->pw_uid);
        assert_int_equal(p.gid, nb->pw_gid);
        /* numeric ids work too */
        char num[32];
        snprintf(num, sizeof num, "%u", (unsigned)nb->pw_uid);
        cfg_user(&c, num, "0");
        assert_int_equal(mxg_privs_resolve(&c, &p, err, sizeof err), 0);
        assert_int_equal(p.uid, nb->pw_uid);
        assert_int_equal(p.gid, 0);
    } else {
        assert_int_equal(rc, -1);
        assert_non_null(strstr(err, "not as root"));
    }
}

static char tmpdir[64];

static void path_in(char *buf, size_t len, const char *name)
{
    snprintf(buf, len, "%s/%s", tmpdir, name);
}

static void test_prepare_dir(void **state)
{
    (void)state;
    if (geteuid() != 0) {
        skip();
        return;
    }
    snprintf(tmpdir, sizeof tmpdir, "/tmp/mxg-privs.XXXXXX");
    assert_non_null(mkdtemp(tmpdir));
    chmod(tmpdir, 0755); /* like /var/lib: the user must reach its directory */
    struct mxg_config c;
    struct mxg_privs p;
    char err[512], dir[128], f[160], sub[160], hard[160], outside[160];
    cfg_user(&c, "nobody", "");
    assert_int_equal(mxg_privs_resolve(&c, &p, err, sizeof err), 0);

    /* a new directory is created, 0700, and given to the user */
    path_in(dir, sizeof dir, "state");
    assert_int_equal(mxg_privs_prepare_dir(&p, dir, err, sizeof err), 0);
    struct stat st;
    assert_int_equal(stat(dir, &st), 0);
    assert_int_equal(st.st_uid, p.uid);
    assert_int_equal(st.st_mode & 0777, 0700);

    /* root's files in it are given to the user; a hard link to a file
     * elsewhere and a symbolic link's target are not */
    snprintf(f, sizeof f, "%s/tlsrpt.db", dir);
    snprintf(sub, sizeof sub, "%s/spool", dir);
    path_in(outside, sizeof outside, "outside");
    snprintf(hard, sizeof hard, "%s/hardlink", dir);
    close(open(f, O_CREAT | O_WRONLY, 0600));
    mkdir(sub, 0700);
    char subf[200];
    snprintf(subf, sizeof subf, "%s/0001.env", sub);
    close(open(subf, O_CREAT | O_WRONLY, 0600));
    close(open(outside, O_CREAT | O_WRONLY, 0600));
    assert_int_equal(link(outside, hard), 0);
    char sym[200];
    snprintf(sym, sizeof sym, "%s/symlink", dir);
    assert_int_equal(symlink(outside, sym), 0);
    assert_int_equal(mxg_privs_prepare_dir(&p, dir, err, sizeof err), 0);
    assert_int_equal(stat(f, &st), 0);
    assert_int_equal(st.st_uid, p.uid);
    assert_int_equal(stat(sub, &st), 0);
    assert_int_equal(st.st_uid, p.uid);
    assert_int_equal(stat(subf, &st), 0);
    assert_int_equal(st.st_uid, p.uid);
    assert_int_equal(stat(outside, &st), 0);
    assert_int_equal(st.st_uid, 0);
    assert_int_equal(lstat(sym, &st), 0);
    assert_int_equal(st.st_uid, 0);

    /* a top-level directory is never given away */
    assert_int_equal(mxg_privs_prepare_dir(&p, "/tmp", err, sizeof err), -1);
    assert_non_null(strstr(err, "refusing"));
    assert_int_equal(stat("/tmp", &st), 0);
    assert_int_equal(st.st_uid, 0);

    /* inactive: the directory is only created */
    struct mxg_privs none = {0};
    path_in(dir, sizeof dir, "plain");
    assert_int_equal(mxg_privs_prepare_dir(&none, dir, err, sizeof err), 0);
    assert_int_equal(stat(dir, &st), 0);
    assert_int_equal(st.st_uid, 0);
}

/* In a child: enter → a file created belongs to the user → leave (root
 * again) → drop → root cannot be regained, no capabilities left. */
static void test_switch_in_child(void **state)
{
    (void)state;
    if (geteuid() != 0) {
        skip();
        return;
    }
    struct mxg_config c;
    struct mxg_privs p;
    char err[512];
    cfg_user(&c, "nobody", "");
    assert_int_equal(mxg_privs_resolve(&c, &p, err, sizeof err), 0);
    char dir[128];
    path_in(dir, sizeof dir, "state");
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char f[200];
        snprintf(f, sizeof f, "%s/made-as-user", dir);
        struct stat st;
        int bad = 0;
        bad |= mxg_privs_enter(&p, err, sizeof err) != 0;
        bad |= (geteuid() != p.uid || getuid() != p.uid) << 1;
        int fd = open(f, O_CREAT | O_WRONLY, 0600);
        bad |= (fd < 0) << 2;
        close(fd);
        bad |= (stat(f, &st) != 0 || st.st_uid != p.uid) << 3;
        bad |= (open("/etc/shadow", O_RDONLY) >= 0) << 4; /* reads are the user's too */
        bad |= (mxg_privs_leave(&p, err, sizeof err) != 0 || geteuid() != 0) << 5;
        bad |= (mxg_privs_drop(&p, err, sizeof err) != 0) << 6;
        bad |= (getuid() != p.uid || geteuid() != p.uid || getgid() != p.gid) << 7;
        bad |= (setuid(0) == 0 || seteuid(0) == 0) << 8;
        FILE *s = fopen("/proc/self/status", "r");
        char line[256];
        while (s && fgets(line, sizeof line, s))
            if (strncmp(line, "CapPrm:", 7) == 0 || strncmp(line, "CapEff:", 7) == 0)
                bad |= (strstr(line, "0000000000000000") == NULL) << 9;
        if (s)
            fclose(s);
        _exit(bad);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    if (WEXITSTATUS(status) != 0)
        fail_msg("child check failed, bits 0x%x", WEXITSTATUS(status));
}

/* mxg_privs_cli(): nothing when the user is unset; the switch when set. */
static void test_cli(void **state)
{
    (void)state;
    struct mxg_config c;
    char err[512];
    cfg_user(&c, "", "");
    assert_int_equal(mxg_privs_cli(&c, err, sizeof err), 0);
    if (geteuid() != 0)
        return;
    cfg_user(&c, "nobody", "");
    snprintf(c.state_dir, sizeof c.state_dir, "%s/cli", tmpdir);
    pid_t pid = fork();
    if (pid == 0)
        _exit(mxg_privs_cli(&c, err, sizeof err) == 0 && geteuid() != 0 ? 0 : 1);
    int status;
    waitpid(pid, &status, 0);
    assert_int_equal(WEXITSTATUS(status), 0);
    struct stat st;
    assert_int_equal(stat(c.state_dir, &st), 0);
    assert_int_equal(st.st_uid, getpwnam("nobody")->pw_uid);
    char cmd[160];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resolve),
        cmocka_unit_test(test_prepare_dir),
        cmocka_unit_test(test_switch_in_child),
        cmocka_unit_test(test_cli),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
