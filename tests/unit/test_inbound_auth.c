/* tests/unit/test_inbound_auth.c — proxy/inbound/auth.h: strict base64 and
 * SASL PLAIN decoding (RFC 4954 §4, RFC 4616 §2), the password file (hashes made here with libcrypt:
 * yescrypt, SHA-512 crypt, bcrypt; errors with line numbers), the password
 * check on the thread pool, the brute-force throttle (window, lockout,
 * bounded LRU), the per-network requirement, the configuration rules that tie
 * the inbound settings together, and the `config check -v` explanation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <crypt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "proxy/inbound/auth.h"

/* ------------------------------------------------------------------ helpers */

static char tmpdir[64];

static int setup_dir(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/mxg-auth-XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown_dir(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

/* A crypt(3) hash of pw with a fresh salt of method prefix ("$y$", "$6$"...). */
static void make_hash(const char *prefix, const char *pw, char *out, size_t cap)
{
    char salt[CRYPT_GENSALT_OUTPUT_SIZE];
    assert_non_null(crypt_gensalt_rn(prefix, 0, NULL, 0, salt, sizeof salt));
    struct crypt_data *cd = calloc(1, sizeof *cd);
    assert_non_null(cd);
    const char *h = crypt_rn(pw, salt, cd, (int)sizeof *cd);
    assert_non_null(h);
    assert_true(h[0] == '$');
    snprintf(out, cap, "%s", h);
    free(cd);
}

static const char *write_file(const char *name, const char *text, mode_t mode)
{
    static char path[256];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    chmod(path, mode);
    return path;
}

/* ------------------------------------------------------------------ base64 */

static void test_b64(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        int ok;
        const char *out;
        size_t outlen;
    } cases[] = {
        {"", 1, "", 0},                /* empty line */
        {"=", 1, "", 0},               /* RFC 4954: an empty initial response */
        {"AA==", 1, "\0", 1},
        {"YQ==", 1, "a", 1},
        {"YWI=", 1, "ab", 2},
        {"YWJj", 1, "abc", 3},
        {"AGFsaWNlAHNlY3JldA==", 1, "\0alice\0secret", 13},
        {"YWJj\r", 0, NULL, 0},        /* CR, whitespace: not the alphabet */
        {" YWJj", 0, NULL, 0},
        {"YWJ", 0, NULL, 0},           /* not a multiple of 4 */
        {"YQ=", 0, NULL, 0},
        {"Y===", 0, NULL, 0},          /* three pad characters */
        {"====", 0, NULL, 0},
        {"YQ==YQ==", 0, NULL, 0},      /* data after padding */
        {"Y=Q=", 0, NULL, 0},
        {"YW-j", 0, NULL, 0},          /* base64url is not base64 */
        {"YW_j", 0, NULL, 0},
        {"*", 0, NULL, 0},             /* the cancel marker is handled before decoding */
        {"==", 0, NULL, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        unsigned char out[64];
        size_t n = 99;
        int rc = mxg_b64_decode(cases[i].in, strlen(cases[i].in), out, sizeof out, &n);
        if ((rc == 0) != cases[i].ok)
            fail_msg("case %zu (\"%s\"): rc %d", i, cases[i].in, rc);
        if (rc == 0) {
            assert_int_equal(n, cases[i].outlen);
            assert_memory_equal(out, cases[i].out, n);
        }
    }
    /* the output capacity is respected */
    unsigned char small[2];
    size_t n;
    assert_int_equal(mxg_b64_decode("YWJj", 4, small, sizeof small, &n), -1);
    assert_int_equal(mxg_b64_decode("YWI=", 4, small, sizeof small, &n), 0);
    assert_int_equal(n, 2);
    /* encode: the LOGIN prompts, and round trips */
    char enc[64];
    assert_int_equal(mxg_b64_encode("Username:", 9, enc, sizeof enc), 12);
    assert_string_equal(enc, "VXNlcm5hbWU6");
    assert_int_equal(mxg_b64_encode("Password:", 9, enc, sizeof enc), 12);
    assert_string_equal(enc, "UGFzc3dvcmQ6");
    assert_int_equal(mxg_b64_encode("abcd", 4, enc, 8), 0); /* needs 9 */
    unsigned char all[256], back[256];
    for (int i = 0; i < 256; i++)
        all[i] = (unsigned char)i;
    char big[400];
    for (size_t len = 0; len < 40; len++) {
        size_t el = mxg_b64_encode(all + len, len, big, sizeof big);
        assert_int_equal(mxg_b64_decode(big, el, back, sizeof back, &n), 0);
        assert_int_equal(n, len);
        assert_memory_equal(back, all + len, len);
    }
}

/* ------------------------------------------------------------------ PLAIN */

static void test_plain(void **state)
{
    (void)state;
    char user[MXG_SASL_FIELD_MAX + 1], pass[MXG_SASL_FIELD_MAX + 1];
    static const struct {
        const char *msg;
        size_t len;
        int rc;
        const char *user, *pass;
    } cases[] = {
        {"\0alice\0secret", 13, MXG_SASL_OK, "alice", "secret"},
        {"alice\0alice\0secret", 18, MXG_SASL_OK, "alice", "secret"}, /* authzid = authcid */
        {"\0al ice\0se cret", 15, MXG_SASL_OK, "al ice", "se cret"},
        {"bob\0alice\0secret", 16, MXG_SASL_AUTHZID, NULL, NULL},     /* acting as someone else */
        {"alice\0secret", 12, MXG_SASL_MALFORMED, NULL, NULL},        /* one NUL */
        {"alicesecret", 11, MXG_SASL_MALFORMED, NULL, NULL},
        {"", 0, MXG_SASL_MALFORMED, NULL, NULL},
        {"\0a\0b\0c", 6, MXG_SASL_MALFORMED, NULL, NULL},             /* three NULs */
        {"\0\0secret", 8, MXG_SASL_EMPTY, NULL, NULL},
        {"\0alice\0", 7, MXG_SASL_EMPTY, NULL, NULL},
        {"\0\0", 2, MXG_SASL_EMPTY, NULL, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int rc = mxg_sasl_plain_parse((const unsigned char *)cases[i].msg, cases[i].len, user, pass);
        if (rc != cases[i].rc)
            fail_msg("case %zu: rc %d, expected %d", i, rc, cases[i].rc);
        if (rc == MXG_SASL_OK) {
            assert_string_equal(user, cases[i].user);
            assert_string_equal(pass, cases[i].pass);
        }
    }
    /* RFC 4616: each field up to 255 octets */
    unsigned char msg[600];
    size_t n = 0;
    msg[n++] = 0;
    memset(msg + n, 'u', 255);
    n += 255;
    msg[n++] = 0;
    memset(msg + n, 'p', 255);
    n += 255;
    assert_int_equal(mxg_sasl_plain_parse(msg, n, user, pass), MXG_SASL_OK);
    assert_int_equal(strlen(user), 255);
    assert_int_equal(strlen(pass), 255);
    msg[n++] = 'p'; /* a 256-octet password */
    assert_int_equal(mxg_sasl_plain_parse(msg, n, user, pass), MXG_SASL_MALFORMED);
}

/* ------------------------------------------------------------------ password file */

static void test_db_load(void **state)
{
    (void)state;
    char hy[256], h6[256], h2[256], text[2048], err[512];
    make_hash("$y$", "yes-secret", hy, sizeof hy);
    make_hash("$6$", "sha-secret", h6, sizeof h6);
    make_hash("$2b$", "bf-secret", h2, sizeof h2);
    snprintf(text, sizeof text,
             "# mxguard users\n"
             "\n"
             "alice:%s\n"
             "   # an indented comment\n"
             "bob@example.test:%s\r\n"
             "carol:%s   \n"
             "  dave:%s",
             hy, h6, h2, hy);
    const char *path = write_file("users", text, 0640);
    struct mxg_auth_db *db = NULL;
    int warn = -1;
    assert_int_equal(mxg_auth_db_load(path, &db, &warn, err, sizeof err), 0);
    assert_int_equal(warn, 0);
    assert_int_equal(mxg_auth_db_count(db), 4);
    assert_string_equal(mxg_auth_db_hash(db, "alice"), hy);
    assert_string_equal(mxg_auth_db_hash(db, "bob@example.test"), h6); /* CR stripped */
    assert_string_equal(mxg_auth_db_hash(db, "carol"), h2);           /* blanks stripped */
    assert_string_equal(mxg_auth_db_hash(db, "dave"), hy);            /* no final newline */
    assert_null(mxg_auth_db_hash(db, "Alice"));                       /* exact match */
    assert_null(mxg_auth_db_hash(db, "eve"));
    assert_null(mxg_auth_db_hash(NULL, "alice"));
    /* the hashes check out (blocking form) */
    assert_int_equal(mxg_auth_check_password(hy, "yes-secret"), 1);
    assert_int_equal(mxg_auth_check_password(hy, "yes-secreT"), 0);
    assert_int_equal(mxg_auth_check_password(h6, "sha-secret"), 1);
    assert_int_equal(mxg_auth_check_password(h6, ""), 0);
    assert_int_equal(mxg_auth_check_password(h2, "bf-secret"), 1);
    assert_int_equal(mxg_auth_check_password(h2, "bf-secret "), 0);
    assert_int_equal(mxg_auth_check_password("*", "x"), -1);
    mxg_auth_db_free(db);

    /* readable by everyone: loads, with a warning */
    path = write_file("users-world", text, 0644);
    assert_int_equal(mxg_auth_db_load(path, &db, &warn, err, sizeof err), 0);
    assert_int_equal(warn, 1);
    mxg_auth_db_free(db);
    /* an empty file loads (nobody can authenticate) */
    path = write_file("users-empty", "# nobody\n", 0600);
    assert_int_equal(mxg_auth_db_load(path, &db, NULL, err, sizeof err), 0);
    assert_int_equal(mxg_auth_db_count(db), 0);
    mxg_auth_db_free(db);
}

static void test_db_errors(void **state)
{
    (void)state;
    char h6[256], text[4096], err[512], want[128];
    make_hash("$6$", "pw", h6, sizeof h6);
    static const struct {
        const char *line; /* written as line 3, after a comment and a good line */
        const char *why;
    } cases[] = {
        {"justaname", "expected user:hash"},
        {":%s", "empty user name"},
        {"al ice:%s", "space or control character"},
        {"al\tice:%s", "space or control character"},
        {"bob:", "empty hash"},
        {"bob:secret", "not a crypt(3) hash"},
        {"bob:$1$abcdefgh$0123456789012345678901", "legacy"}, /* MD5 */
        {"bob:abJnggxhB/yWI", "legacy"},                     /* DES */
        {"bob:$5$rounds=5000$saltsalt$x", "legacy"},         /* SHA-256 crypt */
        {"bob:$6$ab c", "hash with a space"},
        {"alice:%s", "user listed twice (also on line 2)"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char l3[512]; /* the line with "%s" replaced by a good hash */
        const char *pct = strstr(cases[i].line, "%s");
        if (pct)
            snprintf(l3, sizeof l3, "%.*s%s%s", (int)(pct - cases[i].line), cases[i].line, h6,
                     pct + 2);
        else
            snprintf(l3, sizeof l3, "%s", cases[i].line);
        snprintf(text, sizeof text, "# users\nalice:%s\n%s\ncarol:%s\n", h6, l3, h6);
        const char *path = write_file("bad", text, 0600);
        struct mxg_auth_db *db = (struct mxg_auth_db *)&err; /* must be reset */
        assert_int_equal(mxg_auth_db_load(path, &db, NULL, err, sizeof err), -1);
        assert_null(db);
        snprintf(want, sizeof want, "%s:3: ", path);
        if (strncmp(err, want, strlen(want)) != 0 || !strstr(err, cases[i].why))
            fail_msg("case %zu: [%s], expected [%s...%s]", i, err, want, cases[i].why);
    }
    /* a name of 255 octets is fine, 256 is not */
    char name[300];
    memset(name, 'n', 256);
    name[255] = 0;
    snprintf(text, sizeof text, "%s:%s\n", name, h6);
    struct mxg_auth_db *db;
    assert_int_equal(mxg_auth_db_load(write_file("n255", text, 0600), &db, NULL, err, sizeof err), 0);
    mxg_auth_db_free(db);
    name[255] = 'n';
    name[256] = 0;
    snprintf(text, sizeof text, "%s:%s\n", name, h6);
    assert_int_equal(mxg_auth_db_load(write_file("n256", text, 0600), &db, NULL, err, sizeof err), -1);
    assert_non_null(strstr(err, ":1: user name longer than 255 octets"));
    /* a line over 1023 octets */
    memset(text, 'x', 1500);
    memcpy(text, "bob:", 4);
    strcpy(text + 1500, "\n");
    assert_int_equal(mxg_auth_db_load(write_file("long", text, 0600), &db, NULL, err, sizeof err), -1);
    assert_non_null(strstr(err, ":1: line longer than 1023 octets"));
    /* files that cannot be read */
    assert_int_equal(mxg_auth_db_load("/nonexistent/users", &db, NULL, err, sizeof err), -1);
    assert_non_null(strstr(err, "/nonexistent/users: cannot open: No such file"));
    assert_int_equal(mxg_auth_db_load(tmpdir, &db, NULL, err, sizeof err), -1);
    assert_non_null(strstr(err, "Is a directory"));
}

/* ------------------------------------------------------------------ async check */

struct vres {
    int n;
    int ok[8];
};

static void on_verified(void *arg, int ok)
{
    struct vres *r = arg;
    r->ok[r->n++] = ok;
}

static void test_verify_async(void **state)
{
    (void)state;
    char hy[256], text[1024], err[256];
    make_hash("$y$", "right", hy, sizeof hy);
    snprintf(text, sizeof text, "alice:%s\n", hy);
    struct mxg_auth_db *db;
    assert_int_equal(mxg_auth_db_load(write_file("async", text, 0600), &db, NULL, err, sizeof err), 0);
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct vres r[4];
    memset(r, 0, sizeof r);
    assert_int_equal(mxg_auth_verify(&loop, db, "alice", "right", on_verified, &r[0]), 0);
    assert_int_equal(mxg_auth_verify(&loop, db, "alice", "wrong", on_verified, &r[1]), 0);
    assert_int_equal(mxg_auth_verify(&loop, db, "mallory", "right", on_verified, &r[2]), 0);
    /* a password longer than SASL allows is refused at once, no callback */
    char longpw[300];
    memset(longpw, 'p', 299);
    longpw[299] = 0;
    assert_int_equal(mxg_auth_verify(&loop, db, "alice", longpw, on_verified, &r[3]), -1);
    mxg_auth_db_free(db); /* the requests hold their own copies */
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(r[0].n, 1);
    assert_int_equal(r[0].ok[0], 1);
    assert_int_equal(r[1].n, 1);
    assert_int_equal(r[1].ok[0], 0);
    assert_int_equal(r[2].n, 1);
    assert_int_equal(r[2].ok[0], 0); /* unknown user: a plain failure */
    assert_int_equal(r[3].n, 0);
    /* an empty database: nothing can be checked */
    assert_int_equal(mxg_auth_db_load(write_file("none", "", 0600), &db, NULL, err, sizeof err), 0);
    assert_int_equal(mxg_auth_verify(&loop, db, "alice", "right", on_verified, &r[3]), -1);
    mxg_auth_db_free(db);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* ------------------------------------------------------------------ throttle */

/* The constructor the throttle tests use: private, or shared by processes (the same
 * behaviour is expected of both). */
/* A shared table with a quarantine longer than any test (a dead holder: refused). */
static struct mxg_auth_throttle *new_shared(int max_entries)
{
    return mxg_auth_throttle_new_shared(max_entries, 600000);
}

static struct mxg_auth_throttle *(*mk)(int max_entries) = mxg_auth_throttle_new;

static void test_throttle(void **state)
{
    (void)state;
    struct mxg_auth_throttle *t = mk(16);
    assert_non_null(t);
    /* three failures within the window lock the key for the lockout */
    assert_int_equal(mxg_auth_throttle_locked(t, "ip:192.0.2.1", 0), 0);
    assert_int_equal(mxg_auth_throttle_size(t), 0); /* a lookup creates nothing */
    assert_int_equal(mxg_auth_throttle_fail(t, "ip:192.0.2.1", 1000, 3, 10000, 5000), 1);
    assert_int_equal(mxg_auth_throttle_fail(t, "ip:192.0.2.1", 2000, 3, 10000, 5000), 2);
    assert_int_equal(mxg_auth_throttle_locked(t, "ip:192.0.2.1", 2000), 0);
    assert_int_equal(mxg_auth_throttle_fail(t, "ip:192.0.2.1", 3000, 3, 10000, 5000), 3);
    assert_int_equal(mxg_auth_throttle_locked(t, "ip:192.0.2.1", 3000), 5000);
    assert_int_equal(mxg_auth_throttle_locked(t, "ip:192.0.2.1", 7999), 1);
    assert_int_equal(mxg_auth_throttle_locked(t, "ip:192.0.2.1", 8000), 0);
    assert_int_equal(mxg_auth_throttle_locked(t, "ip:192.0.2.2", 3000), 0); /* others not */
    /* after the lockout the count starts again */
    assert_int_equal(mxg_auth_throttle_fail(t, "ip:192.0.2.1", 9000, 3, 10000, 5000), 1);
    /* failures further apart than the window never add up */
    assert_int_equal(mxg_auth_throttle_fail(t, "user:bob", 0, 2, 1000, 5000), 1);
    assert_int_equal(mxg_auth_throttle_fail(t, "user:bob", 1000, 2, 1000, 5000), 1);
    assert_int_equal(mxg_auth_throttle_fail(t, "user:bob", 1999, 2, 1000, 5000), 2);
    assert_true(mxg_auth_throttle_locked(t, "user:bob", 2000) > 0);
    /* clear forgets a key (a successful AUTH clears its user) */
    mxg_auth_throttle_clear(t, "user:bob");
    assert_int_equal(mxg_auth_throttle_locked(t, "user:bob", 2000), 0);
    assert_int_equal(mxg_auth_throttle_size(t), 1);
    mxg_auth_throttle_clear(t, "user:nobody"); /* no-op */
    /* bounded: 16 entries at most; the least recently used goes first */
    mxg_auth_throttle_free(t);
    t = mk(16);
    char key[32];
    assert_int_equal(mxg_auth_throttle_fail(t, "ip:old", 0, 2, 100000, 1000), 1);
    assert_int_equal(mxg_auth_throttle_fail(t, "ip:kept", 0, 2, 100000, 1000), 1);
    for (int i = 0; i < 100; i++) {
        snprintf(key, sizeof key, "user:u%d", i);
        mxg_auth_throttle_fail(t, key, 10, 2, 100000, 1000);
        mxg_auth_throttle_locked(t, "ip:kept", 10); /* used all the time: stays */
        assert_true(mxg_auth_throttle_size(t) <= 16);
    }
    assert_int_equal(mxg_auth_throttle_size(t), 16);
    assert_int_equal(mxg_auth_throttle_fail(t, "ip:kept", 20, 2, 100000, 1000), 2); /* remembered */
    assert_int_equal(mxg_auth_throttle_fail(t, "ip:old", 20, 2, 100000, 1000), 1);  /* forgotten */
    mxg_auth_throttle_free(t);
    mxg_auth_throttle_free(NULL);
    assert_null(mk(0));
    /* a large table with many keys */
    t = mk(1000);
    for (int i = 0; i < 5000; i++) {
        snprintf(key, sizeof key, "ip:10.0.%d.%d", i / 256, i % 256);
        mxg_auth_throttle_fail(t, key, (uint64_t)i, 5, 1000, 1000);
    }
    assert_int_equal(mxg_auth_throttle_size(t), 1000);
    mxg_auth_throttle_free(t);
}

/* docs/ARCHITECTURE.md §Hostile peers: a check counts from the moment it starts. 40 parallel
 * checks from one address with max 5: exactly 5 start; a success releases
 * its place, a failure keeps it (as a failure) until the window ends. */
static void test_throttle_in_flight(void **state)
{
    (void)state;
    struct mxg_auth_throttle *t = mk(16);
    int started = 0;
    for (int i = 0; i < 40; i++)
        started += mxg_auth_throttle_start(t, "ip:192.0.2.1", 1000, 5, 10000);
    assert_int_equal(started, 5);
    assert_int_equal(mxg_auth_throttle_inflight(t, "ip:192.0.2.1"), 5);
    assert_int_equal(mxg_auth_throttle_locked(t, "ip:192.0.2.1", 1000), 0); /* not yet failed */
    assert_int_equal(mxg_auth_throttle_start(t, "ip:192.0.2.2", 1000, 5, 10000), 1); /* others */
    /* one succeeds: its place is free again */
    mxg_auth_throttle_finish(t, "ip:192.0.2.1");
    assert_int_equal(mxg_auth_throttle_start(t, "ip:192.0.2.1", 1100, 5, 10000), 1);
    assert_int_equal(mxg_auth_throttle_start(t, "ip:192.0.2.1", 1100, 5, 10000), 0);
    /* all five fail: locked */
    for (int i = 0; i < 5; i++) {
        mxg_auth_throttle_finish(t, "ip:192.0.2.1");
        assert_int_equal(mxg_auth_throttle_fail(t, "ip:192.0.2.1", 1200, 5, 10000, 5000), i + 1);
    }
    assert_int_equal(mxg_auth_throttle_inflight(t, "ip:192.0.2.1"), 0);
    assert_true(mxg_auth_throttle_locked(t, "ip:192.0.2.1", 1200) > 0);
    assert_int_equal(mxg_auth_throttle_start(t, "ip:192.0.2.1", 1200, 5, 10000), 0);
    assert_int_equal(mxg_auth_throttle_start(t, "ip:192.0.2.1", 6200, 5, 10000), 1); /* over */
    /* failures without a lockout age out with the window */
    assert_int_equal(mxg_auth_throttle_fail(t, "user:bob", 0, 3, 1000, 5000), 1);
    assert_int_equal(mxg_auth_throttle_fail(t, "user:bob", 10, 3, 1000, 5000), 2);
    assert_int_equal(mxg_auth_throttle_start(t, "user:bob", 20, 3, 1000), 1);
    assert_int_equal(mxg_auth_throttle_start(t, "user:bob", 20, 3, 1000), 0);
    assert_int_equal(mxg_auth_throttle_start(t, "user:bob", 1000, 3, 1000), 1); /* window over */
    mxg_auth_throttle_finish(t, "user:nobody"); /* no-op */
    mxg_auth_throttle_free(t);

    /* a full table never forgets an entry with a check in flight; when every
     * entry has one, a new key is refused (fail closed), never let through */
    t = mk(16);
    char key[32];
    for (int i = 0; i < 16; i++) {
        snprintf(key, sizeof key, "ip:10.0.0.%d", i);
        assert_int_equal(mxg_auth_throttle_start(t, key, 0, 5, 1000), 1);
    }
    assert_int_equal(mxg_auth_throttle_start(t, "ip:10.0.1.1", 0, 5, 1000), -1); /* no room */
    assert_int_equal(mxg_auth_throttle_size(t), 16);
    mxg_auth_throttle_finish(t, "ip:10.0.0.7"); /* now that one may go */
    assert_int_equal(mxg_auth_throttle_start(t, "ip:10.0.1.1", 0, 5, 1000), 1);
    assert_int_equal(mxg_auth_throttle_inflight(t, "ip:10.0.0.7"), 0);
    for (int i = 0; i < 16; i++) {
        snprintf(key, sizeof key, "ip:10.0.0.%d", i);
        assert_int_equal(mxg_auth_throttle_inflight(t, key), i == 7 ? 0 : 1);
    }
    assert_int_equal(mxg_auth_throttle_start(NULL, "ip:x", 0, 5, 1000), 0);
    assert_true(mxg_auth_throttle_start(t, "ip:10.0.0.3", 0, 5, 1000) == 1); /* known key */
    mxg_auth_throttle_free(t);

    /* a flood of new keys never evicts a lockout: with every entry locked,
     * a new key is refused until a lockout ends */
    t = mk(16);
    for (int i = 0; i < 16; i++) {
        snprintf(key, sizeof key, "user:u%d", i);
        assert_int_equal(mxg_auth_throttle_fail(t, key, 0, 1, 1000, 5000), 1);
    }
    for (int i = 0; i < 100; i++) {
        snprintf(key, sizeof key, "user:flood%d", i);
        assert_int_equal(mxg_auth_throttle_start(t, key, 10, 5, 1000), -1);
        assert_int_equal(mxg_auth_throttle_fail(t, key, 10, 5, 1000, 5000), 0);
    }
    for (int i = 0; i < 16; i++) {
        snprintf(key, sizeof key, "user:u%d", i);
        assert_true(mxg_auth_throttle_locked(t, key, 10) > 0);
    }
    assert_int_equal(mxg_auth_throttle_start(t, "user:new", 5000, 5, 1000), 1); /* over */
    mxg_auth_throttle_free(t);
}

/* The shared table (worker processes): the same behaviour; across fork() one count —
 * two processes starting 20 checks each on one key with max 5 get 5 in all; a window
 * started by a process whose loop time is a little ahead is not taken for an old one;
 * a key too long for a slot is refused (fail closed), never let through. */
static void test_throttle_shared(void **state)
{
    mk = new_shared;
    test_throttle(state);
    test_throttle_in_flight(state);
    mk = mxg_auth_throttle_new;
    struct mxg_auth_throttle *t = new_shared(64);
    assert_non_null(t);
    int pfd[2];
    assert_int_equal(pipe(pfd), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    int started = 0;
    for (int i = 0; i < 20; i++)
        started += mxg_auth_throttle_start(t, "ip:192.0.2.9", 1000, 5, 60000) == 1;
    if (pid == 0) {
        ssize_t w = write(pfd[1], &started, sizeof started);
        _exit(w == (ssize_t)sizeof started ? 0 : 1);
    }
    int other = -1;
    assert_int_equal(read(pfd[0], &other, sizeof other), (ssize_t)sizeof other);
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    close(pfd[0]);
    close(pfd[1]);
    assert_int_equal(started + other, 5);
    assert_int_equal(mxg_auth_throttle_inflight(t, "ip:192.0.2.9"), 5);
    /* the window starts at 1000 in one process; another's loop time says 990 */
    assert_int_equal(mxg_auth_throttle_fail(t, "user:carol", 1000, 3, 60000, 5000), 1);
    assert_int_equal(mxg_auth_throttle_fail(t, "user:carol", 990, 3, 60000, 5000), 2);
    assert_int_equal(mxg_auth_throttle_start(t, "user:carol", 995, 3, 60000), 1);
    assert_int_equal(mxg_auth_throttle_start(t, "user:carol", 995, 3, 60000), 0);
    char longkey[MXG_AUTH_TRUST_KEY_MAX + 8];
    memset(longkey, 'x', sizeof longkey - 1);
    longkey[sizeof longkey - 1] = 0;
    assert_int_equal(mxg_auth_throttle_start(t, longkey, 0, 5, 1000), -1);
    mxg_auth_throttle_free(t);
}

/* A worker that dies holding the shared table's mutex may have left it half-updated:
 * the table is poisoned, every check refused (fail closed) from then on in every
 * process for its quarantine, a trusted address no longer trusted. */
static void test_throttle_shared_owner_dead(void **state)
{
    (void)state;
    struct mxg_auth_throttle *t = new_shared(64);
    assert_non_null(t);
    mxg_auth_trust_mark(t, "ip:192.0.2.1", "alice", 1000);
    assert_true(mxg_auth_trusted(t, "ip:192.0.2.1", "alice", 1000, 60000));
    assert_int_equal(mxg_auth_throttle_start(t, "ip:192.0.2.2", 1000, 5, 200), 1);
    mxg_auth_throttle_finish(t, "ip:192.0.2.2");
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        mxg_auth_throttle_test_hold(t);
        _exit(0); /* dies holding it */
    }
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_int_equal(mxg_auth_throttle_start(t, "ip:192.0.2.2", 1000, 5, 60000), 0);
    assert_int_equal(mxg_auth_throttle_start(t, "ip:192.0.2.3", 1000, 5, 60000), 0);
    assert_false(mxg_auth_trusted(t, "ip:192.0.2.1", "alice", 1000, 60000));
    assert_true(mxg_auth_throttle_locked(t, "ip:192.0.2.3", 1000) > 0);
    /* and stays so (not only for the first caller after the death) */
    assert_int_equal(mxg_auth_throttle_start(t, "ip:192.0.2.4", 1000, 5, 60000), 0);
    mxg_auth_throttle_free(t);
}

/* The quarantine is bounded: once it is over the next caller empties the table
 * and it counts afresh (every window and lockout would have run out by then; a
 * trusted address is forgotten: fail closed). Within it, every process is refused. */
static void test_throttle_shared_owner_dead_recovers(void **state)
{
    (void)state;
    struct mxg_auth_throttle *t = mxg_auth_throttle_new_shared(64, 300);
    assert_non_null(t);
    mxg_auth_trust_mark(t, "ip:192.0.2.1", "alice", 1000);
    for (int i = 0; i < 3; i++) /* window and lockout within the quarantine */
        mxg_auth_throttle_fail(t, "ip:192.0.2.5", 1000, 3, 200, 250);
    assert_true(mxg_auth_throttle_locked(t, "ip:192.0.2.5", 1000) > 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        mxg_auth_throttle_test_hold(t);
        _exit(0); /* dies holding it */
    }
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_int_equal(mxg_auth_throttle_start(t, "ip:192.0.2.2", 1000, 5, 200), 0);
    pid = fork(); /* another worker during the quarantine: refused too */
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(mxg_auth_throttle_start(t, "ip:192.0.2.3", 1000, 5, 200) == 0 ? 0 : 1);
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    usleep(400 * 1000);
    assert_int_equal(mxg_auth_throttle_size(t), 2); /* nothing emptied before a lock */
    assert_int_equal(mxg_auth_throttle_start(t, "ip:192.0.2.2", 1000, 5, 200), 1);
    mxg_auth_throttle_finish(t, "ip:192.0.2.2");
    assert_int_equal(mxg_auth_throttle_size(t), 1); /* emptied, then the new key */
    assert_int_equal(mxg_auth_throttle_locked(t, "ip:192.0.2.5", 1000), 0);
    assert_false(mxg_auth_trusted(t, "ip:192.0.2.1", "alice", 1000, 60000));
    /* and it counts again: the limit holds as before */
    for (int i = 0; i < 3; i++)
        mxg_auth_throttle_fail(t, "ip:192.0.2.6", 2000, 3, 200, 250);
    assert_int_equal(mxg_auth_throttle_start(t, "ip:192.0.2.6", 2000, 3, 200), 0);
    mxg_auth_throttle_free(t);
}

/* A lockout longer than the quarantine given at start-up (a reload lengthened
 * auth.lockout): the table is not emptied before that lockout would have run out. */
static void test_throttle_shared_quarantine_covers_lockout(void **state)
{
    (void)state;
    struct mxg_auth_throttle *t = mxg_auth_throttle_new_shared(64, 100);
    assert_non_null(t);
    for (int i = 0; i < 3; i++)
        mxg_auth_throttle_fail(t, "ip:192.0.2.5", 1000, 3, 200, 600000);
    assert_true(mxg_auth_throttle_locked(t, "ip:192.0.2.5", 1000) > 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        mxg_auth_throttle_test_hold(t);
        _exit(0); /* dies holding it */
    }
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_int_equal(mxg_auth_throttle_start(t, "ip:192.0.2.2", 1000, 5, 200), 0); /* found */
    usleep(300 * 1000); /* past the start-up quarantine, far within the lockout */
    assert_int_equal(mxg_auth_throttle_start(t, "ip:192.0.2.2", 1000, 5, 200), 0);
    assert_true(mxg_auth_throttle_locked(t, "ip:192.0.2.5", 1000) > 0);
    assert_int_equal(mxg_auth_throttle_size(t), 1); /* not emptied */
    mxg_auth_throttle_free(t);
}

/* Trusted addresses: (address, user) within the lifetime; bounded, the
 * least recently used forgotten (then: not trusted, i.e. refused under a
 * lockout). */
static void test_trusted_addresses(void **state)
{
    (void)state;
    const uint64_t day = 86400000ULL, life = 30 * day, t0 = 1700000000000ULL;
    struct mxg_auth_throttle *t = mxg_auth_throttle_new(16);
    assert_false(mxg_auth_trusted(t, "ip:192.0.2.1", "alice", t0, life));
    mxg_auth_trust_mark(t, "ip:192.0.2.1", "alice", t0);
    assert_true(mxg_auth_trusted(t, "ip:192.0.2.1", "alice", t0, life));
    assert_true(mxg_auth_trusted(t, "ip:192.0.2.1", "alice", t0 + life - 1, life));
    assert_false(mxg_auth_trusted(t, "ip:192.0.2.1", "alice", t0 + life, life));
    assert_false(mxg_auth_trusted(t, "ip:192.0.2.1", "alice", t0, 0)); /* lifetime 0: never */
    assert_false(mxg_auth_trusted(t, "ip:192.0.2.1", "bob", t0, life));   /* another user */
    assert_false(mxg_auth_trusted(t, "ip:192.0.2.2", "alice", t0, life)); /* another address */
    mxg_auth_trust_mark(t, "ip:192.0.2.1", "alice", t0 + 20 * day); /* renewed */
    assert_true(mxg_auth_trusted(t, "ip:192.0.2.1", "alice", t0 + 40 * day, life));
    mxg_auth_trust_mark(t, "ip:192.0.2.1", "alice", t0); /* an older time never goes back */
    assert_true(mxg_auth_trusted(t, "ip:192.0.2.1", "alice", t0 + 40 * day, life));
    /* bounded: 40 more pairs, the table keeps 16 */
    char key[32];
    for (int i = 0; i < 40; i++) {
        snprintf(key, sizeof key, "ip:10.0.0.%d", i);
        mxg_auth_trust_mark(t, key, "alice", t0);
        assert_true(mxg_auth_throttle_size(t) <= 16);
    }
    assert_false(mxg_auth_trusted(t, "ip:192.0.2.1", "alice", t0, life)); /* forgotten */
    assert_true(mxg_auth_trusted(t, "ip:10.0.0.39", "alice", t0, life));
    mxg_auth_throttle_free(t);
}

/* The memory on disk survives a restart; expired rows are dropped; at most
 * max_rows rows are kept (the newest). */
static void test_trust_store(void **state)
{
    (void)state;
    const uint64_t day = 86400000ULL, life = 30 * day, t0 = 1700000000000ULL;
    char err[512];
    struct mxg_auth_trust_store *st = mxg_auth_trust_store_open(tmpdir, 20, err, sizeof err);
    if (!st)
        fail_msg("%s", err);
    assert_int_equal(mxg_auth_trust_store_put(st, "ip:192.0.2.1", "alice", t0), 0);
    assert_int_equal(mxg_auth_trust_store_put(st, "ip:192.0.2.1", "alice", t0 + day), 0);
    assert_int_equal(mxg_auth_trust_store_put(st, "ip:192.0.2.9", "bob", t0 - 40 * day), 0);
    mxg_auth_trust_store_close(st);
    /* "restart" */
    st = mxg_auth_trust_store_open(tmpdir, 20, err, sizeof err);
    assert_non_null(st);
    struct mxg_auth_throttle *t = mxg_auth_throttle_new(16);
    assert_int_equal(mxg_auth_trust_store_load(st, t, t0 + 2 * day, life), 1); /* bob expired */
    assert_true(mxg_auth_trusted(t, "ip:192.0.2.1", "alice", t0 + 30 * day, life));
    assert_false(mxg_auth_trusted(t, "ip:192.0.2.1", "alice", t0 + 31 * day, life));
    assert_false(mxg_auth_trusted(t, "ip:192.0.2.9", "bob", t0, life));
    mxg_auth_throttle_free(t);
    /* the row cap: 300 puts (past one prune), at most 20 kept, the newest */
    char key[32];
    for (int i = 0; i < 300; i++) {
        snprintf(key, sizeof key, "ip:10.0.%d.%d", i / 256, i % 256);
        assert_int_equal(mxg_auth_trust_store_put(st, key, "carol", t0 + 2 * day + (uint64_t)i), 0);
    }
    mxg_auth_trust_store_close(st);
    st = mxg_auth_trust_store_open(tmpdir, 20, err, sizeof err);
    t = mxg_auth_throttle_new(1000);
    assert_int_equal(mxg_auth_trust_store_load(st, t, t0 + 3 * day, life), 20);
    assert_true(mxg_auth_trusted(t, "ip:10.0.1.43", "carol", t0 + 3 * day, life)); /* #299 */
    assert_false(mxg_auth_trusted(t, "ip:10.0.0.0", "carol", t0 + 3 * day, life));
    mxg_auth_throttle_free(t);
    mxg_auth_trust_store_close(st);
    mxg_auth_trust_store_close(NULL);
    /* a directory that cannot hold it: an error, never a crash */
    assert_null(mxg_auth_trust_store_open("/nonexistent/dir", 20, err, sizeof err));
    assert_non_null(strstr(err, "auth-trust.db"));
}

static void test_addr_key(void **state)
{
    (void)state;
    char key[80];
    struct sockaddr_in a4 = {.sin_family = AF_INET};
    inet_pton(AF_INET, "192.0.2.7", &a4.sin_addr);
    mxg_auth_throttle_addr_key((struct sockaddr *)&a4, key, sizeof key);
    assert_string_equal(key, "ip:192.0.2.7");
    struct sockaddr_in6 a6 = {.sin6_family = AF_INET6};
    inet_pton(AF_INET6, "::ffff:192.0.2.7", &a6.sin6_addr);
    mxg_auth_throttle_addr_key((struct sockaddr *)&a6, key, sizeof key);
    assert_string_equal(key, "ip:192.0.2.7"); /* the same client */
    inet_pton(AF_INET6, "2001:db8:1:2:aaaa:bbbb:cccc:dddd", &a6.sin6_addr);
    mxg_auth_throttle_addr_key((struct sockaddr *)&a6, key, sizeof key);
    assert_string_equal(key, "ip:2001:db8:1:2::/64");
    inet_pton(AF_INET6, "2001:db8:1:2::1", &a6.sin6_addr); /* same /64: same key */
    mxg_auth_throttle_addr_key((struct sockaddr *)&a6, key, sizeof key);
    assert_string_equal(key, "ip:2001:db8:1:2::/64");
    /* loopback */
    assert_true(mxg_addr_is_loopback((struct sockaddr *)&a6) == 0);
    inet_pton(AF_INET6, "::1", &a6.sin6_addr);
    assert_true(mxg_addr_is_loopback((struct sockaddr *)&a6));
    inet_pton(AF_INET6, "::ffff:127.0.70.1", &a6.sin6_addr);
    assert_true(mxg_addr_is_loopback((struct sockaddr *)&a6));
    assert_true(mxg_addr_is_loopback((struct sockaddr *)&a4) == 0);
    inet_pton(AF_INET, "127.0.70.100", &a4.sin_addr);
    assert_true(mxg_addr_is_loopback((struct sockaddr *)&a4));
}

/* ------------------------------------------------------------------ policy, config */

static int load_env(struct mxg_config *c, char *const *env, char *err, size_t errlen)
{
    return mxg_config_load(c, NULL, env, err, errlen);
}

static void test_requirement(void **state)
{
    (void)state;
    char err[512];
    struct mxg_config c;
    char *env[] = {"MXGUARD_SERVER_TLS_CERT_FILE=/etc/ssl/x.pem",
                   "MXGUARD_SERVER_TLS_KEY_FILE=/etc/ssl/x.key",
                   "MXGUARD_AUTH_PASSWORD_FILE=/etc/mxguard/users",
                   "MXGUARD_SERVER_ALLOW_NETWORKS=10.0.0.0/8,192.168.0.0/16,127.0.0.0/8",
                   "MXGUARD_SERVER_REQUIRE_AUTH_NETWORKS=10.0.0.0/8",
                   "MXGUARD_SERVER_REQUIRE_TLS_NETWORKS=10.1.0.0/16,192.168.0.0/16,172.16.0.0/12",
                   NULL};
    if (load_env(&c, env, err, sizeof err) != 0)
        fail_msg("%s", err);
    static const struct {
        const char *addr;
        enum mxg_inbound_req want;
    } cases[] = {
        {"10.1.2.3", MXG_REQ_AUTH}, /* in both lists: AUTH wins */
        {"10.9.9.9", MXG_REQ_AUTH},
        {"192.168.1.1", MXG_REQ_TLS},
        {"127.0.0.1", MXG_REQ_NONE},
        {"::ffff:192.168.1.1", MXG_REQ_TLS},
        {"2001:db8::1", MXG_REQ_NONE},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct sockaddr_storage ss;
        memset(&ss, 0, sizeof ss);
        if (strchr(cases[i].addr, ':')) {
            ss.ss_family = AF_INET6;
            inet_pton(AF_INET6, cases[i].addr, &((struct sockaddr_in6 *)&ss)->sin6_addr);
        } else {
            ss.ss_family = AF_INET;
            inet_pton(AF_INET, cases[i].addr, &((struct sockaddr_in *)&ss)->sin_addr);
        }
        enum mxg_inbound_req r = mxg_inbound_requirement(&c, (struct sockaddr *)&ss);
        if (r != cases[i].want)
            fail_msg("%s: %s, expected %s", cases[i].addr, mxg_inbound_req_name(r),
                     mxg_inbound_req_name(cases[i].want));
    }
    /* the explanation names the rules in order, and flags a network outside the ACL */
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    mxg_inbound_explain(&c, f);
    fclose(f);
    const char *a = strstr(buf, "1. server.allow_networks");
    const char *b = strstr(buf, "2. server.require_auth_networks");
    const char *d = strstr(buf, "3. server.require_tls_networks");
    assert_non_null(a);
    assert_true(b > a && d > b);
    assert_non_null(strstr(buf, "10.0.0.0/8"));
    assert_non_null(strstr(buf, "172.16.0.0/12            STARTTLS required  (outside "
                                "server.allow_networks"));
    assert_non_null(strstr(buf, "# STARTTLS: offered; certificate /etc/ssl/x.pem"));
    assert_non_null(strstr(buf, "AUTH PLAIN LOGIN: users from /etc/mxguard/users"));
    assert_non_null(strstr(buf, "5 from one address"));
    for (char *p = buf; *p; p = strchr(p, '\n') + 1) { /* comments only: -v stays loadable */
        assert_true(*p == '#' || *p == '\n');
        if (!strchr(p, '\n'))
            break;
    }
    free(buf);
}

static void test_config_rules(void **state)
{
    (void)state;
    static const struct {
        const char *env[4];
        const char *err; /* NULL: loads */
    } cases[] = {
        {{NULL}, NULL},
        {{"MXGUARD_SERVER_TLS_CERT_FILE=/c", NULL}, "server.tls_key_file: required with"},
        {{"MXGUARD_SERVER_TLS_KEY_FILE=/k", NULL}, "server.tls_cert_file: required with"},
        {{"MXGUARD_SERVER_REQUIRE_TLS_NETWORKS=10.0.0.0/8", NULL},
         "server.require_tls_networks: needs server.tls_cert_file"},
        {{"MXGUARD_SERVER_TLS_CERT_FILE=/c", "MXGUARD_SERVER_TLS_KEY_FILE=/k",
          "MXGUARD_SERVER_REQUIRE_AUTH_NETWORKS=10.0.0.0/8", NULL},
         "server.require_auth_networks: needs auth.password_file"},
        {{"MXGUARD_AUTH_PASSWORD_FILE=/u", NULL}, "AUTH is only offered over TLS"},
        {{"MXGUARD_AUTH_PASSWORD_FILE=/u", "MXGUARD_AUTH_ALLOW_PLAINTEXT_LOOPBACK=yes", NULL},
         NULL},
        {{"MXGUARD_AUTH_PASSWORD_FILE=/u", "MXGUARD_AUTH_ALLOW_PLAINTEXT_LOOPBACK=yes",
          "MXGUARD_SERVER_REQUIRE_AUTH_NETWORKS=127.0.0.0/8,::1", NULL},
         NULL},
        {{"MXGUARD_AUTH_PASSWORD_FILE=/u", "MXGUARD_AUTH_ALLOW_PLAINTEXT_LOOPBACK=yes",
          "MXGUARD_SERVER_REQUIRE_AUTH_NETWORKS=10.0.0.0/8", NULL},
         "10.0.0.0/8 is not loopback"},
        {{"MXGUARD_SERVER_TLS_MIN_VERSION=TLSv1.1", NULL}, "must be one of TLSv1.2, TLSv1.3"},
        {{"MXGUARD_SERVER_TLS_MIN_VERSION=TLSv1.3", NULL}, NULL},
        {{"MXGUARD_AUTH_MAX_FAILURES=0", NULL}, "between 1 and 1000"},
        {{"MXGUARD_AUTH_MAX_USER_FAILURES=0", NULL}, NULL},
        {{"MXGUARD_AUTH_FAILURE_DELAY=61s", NULL}, "must be between 0s and 60s"},
        {{"MXGUARD_AUTH_FAILURE_DELAY=0", NULL}, NULL},
        {{"MXGUARD_AUTH_THROTTLE_ENTRIES=15", NULL}, "between 16 and"},
        {{"MXGUARD_AUTH_FAILURE_WINDOW=500ms", NULL}, "must be between 1s and 86400s"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct mxg_config c;
        char err[512] = "";
        int rc = load_env(&c, (char *const *)cases[i].env, err, sizeof err);
        if (!cases[i].err && rc != 0)
            fail_msg("case %zu: %s", i, err);
        if (cases[i].err && (rc == 0 || !strstr(err, cases[i].err)))
            fail_msg("case %zu: rc %d [%s], expected [%s]", i, rc, err, cases[i].err);
    }
    struct mxg_config d;
    mxg_config_defaults(&d);
    assert_int_equal(d.auth_max_failures, 5);
    assert_int_equal(d.auth_max_user_failures, 10);
    assert_int_equal(d.auth_window_ms, 600000);
    assert_int_equal(d.auth_lockout_ms, 900000);
    assert_int_equal(d.auth_delay_ms, 1000);
    assert_int_equal(d.in_tls_min_version, MXG_INBOUND_TLS12);
    assert_int_equal(d.n_require_tls + d.n_require_auth, 0);
}

/* mxg_inbound_load: file errors come back with the setting's name. */
static void test_inbound_load_errors(void **state)
{
    (void)state;
    struct mxg_config c;
    mxg_config_defaults(&c);
    struct mxg_tls_ctx *t = (struct mxg_tls_ctx *)&c;
    struct mxg_auth_db *d = (struct mxg_auth_db *)&c;
    char err[1024];
    assert_int_equal(mxg_inbound_load(&c, &t, &d, err, sizeof err), 0); /* nothing configured */
    assert_null(t);
    assert_null(d);
    snprintf(c.in_tls_cert_file, sizeof c.in_tls_cert_file, "/nonexistent/cert.pem");
    snprintf(c.in_tls_key_file, sizeof c.in_tls_key_file, "/nonexistent/key.pem");
    assert_int_equal(mxg_inbound_load(&c, &t, &d, err, sizeof err), -1);
    assert_non_null(strstr(err, "inbound STARTTLS (server.tls_*): cannot load certificate chain "
                                "/nonexistent/cert.pem"));
    assert_int_equal(mxg_inbound_check(&c, err, sizeof err), -1);
    c.in_tls_cert_file[0] = c.in_tls_key_file[0] = 0;
    snprintf(c.auth_password_file, sizeof c.auth_password_file, "%s/missing", tmpdir);
    assert_int_equal(mxg_inbound_load(&c, &t, &d, err, sizeof err), -1);
    assert_non_null(strstr(err, "auth.password_file: "));
    assert_non_null(strstr(err, "missing: cannot open"));
    write_file("bad-users", "x\n", 0600);
    snprintf(c.auth_password_file, sizeof c.auth_password_file, "%s/bad-users", tmpdir);
    assert_int_equal(mxg_inbound_check(&c, err, sizeof err), -1);
    assert_non_null(strstr(err, "bad-users:1: expected user:hash"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_b64),
        cmocka_unit_test(test_plain),
        cmocka_unit_test(test_db_load),
        cmocka_unit_test(test_db_errors),
        cmocka_unit_test(test_verify_async),
        cmocka_unit_test(test_throttle),
        cmocka_unit_test(test_throttle_in_flight),
        cmocka_unit_test(test_throttle_shared),
        cmocka_unit_test(test_throttle_shared_owner_dead),
        cmocka_unit_test(test_throttle_shared_owner_dead_recovers),
        cmocka_unit_test(test_throttle_shared_quarantine_covers_lockout),
        cmocka_unit_test(test_trusted_addresses),
        cmocka_unit_test(test_trust_store),
        cmocka_unit_test(test_addr_key),
        cmocka_unit_test(test_requirement),
        cmocka_unit_test(test_config_rules),
        cmocka_unit_test(test_inbound_load_errors),
    };
    return cmocka_run_group_tests(tests, setup_dir, teardown_dir);
}
