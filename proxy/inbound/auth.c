/* proxy/inbound/auth.c — the password file, SASL PLAIN / base64 decoding and the
 * password check; see auth.h.
 *
 * Decisions:
 *  - Hashes are whatever libcrypt (libxcrypt) calls a current method
 *    (crypt_checksalt() == CRYPT_SALT_OK); legacy ones (DES, MD5, SHA-256
 *    crypt in Debian's build) are refused at load time with the line number,
 *    so a weak hash never silently guards a relay.
 *  - Verification runs crypt_rn() in the libuv thread pool: yescrypt is
 *    deliberately slow, and the loop serves every session. The request owns
 *    copies of the hash and the password (wiped after use), so the database
 *    can be reloaded while a check is in flight.
 *  - An unknown user is checked against the first entry's hash (same method,
 *    same cost) and then fails: the reply time does not tell which users
 *    exist.
 *  - The comparison of the computed hash with the stored one is
 *    CRYPTO_memcmp (constant time). */
#include "auth.h"

#include <crypt.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#define LINE_MAX_LEN 1023

struct entry {
    char *user;
    char *hash;
    unsigned line;
};

struct mxg_auth_db {
    struct entry *e; /* sorted by user (strcmp) */
    int n;
};

/* ------------------------------------------------------------------ loading */

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

static int cmp_entry(const void *a, const void *b)
{
    return strcmp(((const struct entry *)a)->user, ((const struct entry *)b)->user);
}

void mxg_auth_db_free(struct mxg_auth_db *db)
{
    if (!db)
        return;
    for (int i = 0; i < db->n; i++) {
        free(db->e[i].user);
        OPENSSL_cleanse(db->e[i].hash, strlen(db->e[i].hash));
        free(db->e[i].hash);
    }
    free(db->e);
    free(db);
}

/* A traditional DES (13 characters) or BSDi (_ + 19) crypt hash. */
static int des_like(const char *h)
{
    size_t n = strlen(h);
    if (!((n == 13 && h[0] != '_') || (n == 20 && h[0] == '_')))
        return 0;
    for (const char *p = h[0] == '_' ? h + 1 : h; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '.' || *p == '/'))
            return 0;
    return 1;
}

static const char *hash_problem(const char *hash)
{
    if (hash[0] != '$' && !des_like(hash)) /* libcrypt would take "se" of "secret" as a salt */
        return "not a crypt(3) hash (\"$y$...\" from mkpasswd, \"$6$...\" from openssl passwd "
               "-6; never the password itself)";
    switch (crypt_checksalt(hash)) {
    case CRYPT_SALT_OK:
        return NULL;
    case CRYPT_SALT_METHOD_LEGACY:
        return "a legacy hash method (DES, MD5, SHA-256 crypt): use yescrypt (mkpasswd) or "
               "SHA-512 (openssl passwd -6)";
    case CRYPT_SALT_METHOD_DISABLED:
        return "a hash method this libcrypt has disabled";
    default:
        return "not a crypt(3) hash (\"$y$...\" from mkpasswd, \"$6$...\" from openssl passwd "
               "-6)";
    }
}

/* Check one "user:hash" line (stripped, NUL-terminated, modified in place);
 * on success *user and *hash point into it. */
static const char *parse_line(char *l, char **user, char **hash)
{
    char *colon = strchr(l, ':');
    if (!colon)
        return "expected user:hash";
    *colon = '\0';
    *user = l;
    *hash = colon + 1;
    size_t ul = strlen(l);
    if (ul == 0)
        return "empty user name";
    if (ul > MXG_SASL_FIELD_MAX)
        return "user name longer than 255 octets";
    for (const unsigned char *p = (const unsigned char *)l; *p; p++)
        if (*p <= ' ' || *p == 0x7f)
            return "user name with a space or control character";
    if (!**hash)
        return "empty hash";
    for (const unsigned char *p = (const unsigned char *)*hash; *p; p++)
        if (*p <= ' ' || *p == 0x7f)
            return "hash with a space or control character";
    return hash_problem(*hash);
}

static int add_entry(struct mxg_auth_db *db, int *cap, const char *user, const char *hash,
                     unsigned line)
{
    if (db->n == *cap) {
        int ncap = *cap ? *cap * 2 : 16;
        struct entry *n = realloc(db->e, (size_t)ncap * sizeof *n);
        if (!n)
            return -1;
        db->e = n;
        *cap = ncap;
    }
    struct entry *e = &db->e[db->n];
    e->user = strdup(user);
    e->hash = strdup(hash);
    e->line = line;
    if (!e->user || !e->hash) {
        free(e->user);
        free(e->hash);
        return -1;
    }
    db->n++;
    return 0;
}

static char *strip(char *l)
{
    size_t n = strlen(l);
    while (n && (l[n - 1] == '\n' || l[n - 1] == '\r' || l[n - 1] == ' ' || l[n - 1] == '\t'))
        l[--n] = '\0';
    while (*l == ' ' || *l == '\t')
        l++;
    return l;
}

static int read_lines(FILE *f, const char *path, struct mxg_auth_db *db, char *err, size_t errlen)
{
    char buf[LINE_MAX_LEN + 2];
    unsigned line = 0;
    int cap = 0;
    while (fgets(buf, sizeof buf, f)) {
        line++;
        size_t len = strlen(buf);
        if (len == sizeof buf - 1 && buf[len - 1] != '\n' && !feof(f)) {
            OPENSSL_cleanse(buf, sizeof buf);
            return say(err, errlen, "%s:%u: line longer than %d octets", path, line, LINE_MAX_LEN);
        }
        char *l = strip(buf), *user, *hash;
        if (*l == '\0' || *l == '#')
            continue;
        const char *why = parse_line(l, &user, &hash);
        if (why) {
            OPENSSL_cleanse(buf, sizeof buf);
            return say(err, errlen, "%s:%u: %s", path, line, why);
        }
        int rc = add_entry(db, &cap, user, hash, line);
        OPENSSL_cleanse(buf, sizeof buf);
        if (rc < 0)
            return say(err, errlen, "%s: out of memory", path);
    }
    if (ferror(f))
        return say(err, errlen, "%s: read error: %s", path, strerror(errno));
    return 0;
}

int mxg_auth_db_load(const char *path, struct mxg_auth_db **out, int *warn, char *err,
                     size_t errlen)
{
    *out = NULL;
    if (warn)
        *warn = 0;
    FILE *f = fopen(path, "re");
    if (!f)
        return say(err, errlen, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) == 0) {
        if (S_ISDIR(st.st_mode)) {
            fclose(f);
            return say(err, errlen, "%s: cannot open: %s", path, strerror(EISDIR));
        }
        if (warn && (st.st_mode & S_IROTH))
            *warn = 1;
    }
    struct mxg_auth_db *db = calloc(1, sizeof *db);
    if (!db) {
        fclose(f);
        return say(err, errlen, "%s: out of memory", path);
    }
    int rc = read_lines(f, path, db, err, errlen);
    fclose(f);
    if (rc == 0 && db->n > 1) {
        qsort(db->e, (size_t)db->n, sizeof db->e[0], cmp_entry);
        for (int i = 1; i < db->n; i++) {
            if (strcmp(db->e[i - 1].user, db->e[i].user) != 0)
                continue;
            unsigned a = db->e[i - 1].line, b = db->e[i].line;
            rc = say(err, errlen, "%s:%u: user listed twice (also on line %u)", path,
                     a > b ? a : b, a > b ? b : a);
            break;
        }
    }
    if (rc < 0) {
        mxg_auth_db_free(db);
        return -1;
    }
    *out = db;
    return 0;
}

int mxg_auth_db_count(const struct mxg_auth_db *db)
{
    return db ? db->n : 0;
}

const char *mxg_auth_db_hash(const struct mxg_auth_db *db, const char *user)
{
    if (!db || !user || db->n == 0)
        return NULL;
    struct entry key = {.user = (char *)user};
    const struct entry *e = bsearch(&key, db->e, (size_t)db->n, sizeof db->e[0], cmp_entry);
    return e ? e->hash : NULL;
}

/* ------------------------------------------------------------------ checking */

int mxg_auth_check_password(const char *hash, const char *password)
{
    if (!hash || !password)
        return -1;
    struct crypt_data *cd = calloc(1, sizeof *cd);
    if (!cd)
        return -1;
    int rc = -1;
    const char *h = crypt_rn(password, hash, cd, (int)sizeof *cd);
    if (h && h[0] != '*') {
        size_t hl = strlen(h), sl = strlen(hash);
        rc = hl == sl && CRYPTO_memcmp(h, hash, hl) == 0;
    }
    OPENSSL_cleanse(cd, sizeof *cd);
    free(cd);
    return rc;
}

struct verify_req {
    uv_work_t work;
    mxg_auth_verify_cb cb;
    void *arg;
    int known; /* the user exists */
    int result;
    char *hash;
    char password[MXG_SASL_FIELD_MAX + 1];
};

static void verify_work(uv_work_t *w)
{
    struct verify_req *r = w->data;
    int rc = mxg_auth_check_password(r->hash, r->password);
    r->result = rc < 0 ? -1 : (r->known && rc == 1);
}

static void verify_done(uv_work_t *w, int status)
{
    struct verify_req *r = w->data;
    int ok = status == 0 ? r->result : -1;
    OPENSSL_cleanse(r->password, sizeof r->password);
    free(r->hash);
    mxg_auth_verify_cb cb = r->cb;
    void *arg = r->arg;
    free(r);
    cb(arg, ok);
}

int mxg_auth_verify(uv_loop_t *loop, const struct mxg_auth_db *db, const char *user,
                    const char *password, mxg_auth_verify_cb cb, void *arg)
{
    if (!db || db->n == 0 || !user || !password || strlen(password) > MXG_SASL_FIELD_MAX)
        return -1;
    const char *hash = mxg_auth_db_hash(db, user);
    struct verify_req *r = calloc(1, sizeof *r);
    if (!r)
        return -1;
    r->known = hash != NULL;
    r->hash = strdup(hash ? hash : db->e[0].hash);
    if (!r->hash) {
        free(r);
        return -1;
    }
    strcpy(r->password, password);
    r->cb = cb;
    r->arg = arg;
    r->work.data = r;
    if (uv_queue_work(loop, &r->work, verify_work, verify_done) != 0) {
        OPENSSL_cleanse(r->password, sizeof r->password);
        free(r->hash);
        free(r);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------ SASL */

static int b64_char(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '+' || c == '/';
}

int mxg_b64_decode(const char *in, size_t inlen, unsigned char *out, size_t cap, size_t *outlen)
{
    *outlen = 0;
    if (inlen == 0 || (inlen == 1 && in[0] == '='))
        return 0;
    if (inlen % 4 != 0 || inlen > 4 * ((size_t)INT32_MAX / 4))
        return -1;
    size_t pad = 0;
    for (size_t i = 0; i < inlen; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c == '=') {
            if (i < inlen - 2)
                return -1;
            pad++;
        } else if (pad || !b64_char(c)) {
            return -1; /* data after padding, or not the alphabet */
        }
    }
    size_t n = inlen / 4 * 3 - pad;
    if (n > cap)
        return -1;
    unsigned char *tmp = malloc(inlen / 4 * 3 + 1);
    if (!tmp)
        return -1;
    int got = EVP_DecodeBlock(tmp, (const unsigned char *)in, (int)inlen);
    if (got < 0 || (size_t)got != inlen / 4 * 3) {
        OPENSSL_cleanse(tmp, inlen / 4 * 3 + 1);
        free(tmp);
        return -1;
    }
    memcpy(out, tmp, n);
    OPENSSL_cleanse(tmp, inlen / 4 * 3 + 1);
    free(tmp);
    *outlen = n;
    return 0;
}

size_t mxg_b64_encode(const void *in, size_t n, char *out, size_t cap)
{
    size_t need = 4 * ((n + 2) / 3) + 1;
    if (cap < need || n > (size_t)INT32_MAX / 2)
        return 0;
    int got = EVP_EncodeBlock((unsigned char *)out, in, (int)n);
    return got < 0 ? 0 : (size_t)got;
}

int mxg_sasl_plain_parse(const unsigned char *msg, size_t len, char *user, char *pass)
{
    user[0] = pass[0] = '\0';
    const unsigned char *nul1 = memchr(msg, '\0', len);
    if (!nul1)
        return MXG_SASL_MALFORMED;
    size_t zl = (size_t)(nul1 - msg);
    const unsigned char *a = nul1 + 1;
    const unsigned char *nul2 = memchr(a, '\0', len - zl - 1);
    if (!nul2)
        return MXG_SASL_MALFORMED;
    size_t al = (size_t)(nul2 - a);
    const unsigned char *p = nul2 + 1;
    size_t pl = len - zl - 1 - al - 1;
    if (memchr(p, '\0', pl)) /* a third NUL */
        return MXG_SASL_MALFORMED;
    if (zl > MXG_SASL_FIELD_MAX || al > MXG_SASL_FIELD_MAX || pl > MXG_SASL_FIELD_MAX)
        return MXG_SASL_MALFORMED;
    if (al == 0 || pl == 0)
        return MXG_SASL_EMPTY;
    if (zl && (zl != al || memcmp(msg, a, al) != 0))
        return MXG_SASL_AUTHZID;
    memcpy(user, a, al);
    user[al] = '\0';
    memcpy(pass, p, pl);
    pass[pl] = '\0';
    return MXG_SASL_OK;
}
