/* spool/envelope.c — the envelope of a spool entry as JSON (ID.env), and the
 * small helpers around struct mxg_spool_env. See spool.h.
 *
 * Format (version 1):
 *   {"version": 1, "id": "...", "kind": "message"|"dsn",
 *    "created_ms": N, "next_attempt_ms": N, "attempts": N,
 *    "from": "...", "client": "...", "helo": "...", "body_size": N,
 *    "mail": {"size": N, "body": ""|"7bit"|"8bitmime", "smtputf8": bool,
 *             "ret": "", "envid": ""},
 *    "rcpts": [{"addr": "...", "domain": "...", "notify": "", "orcpt": "",
 *               "state": "pending"|"delivered"|"failed", "dsn_done": bool,
 *               "expired": bool, "last_code": N, "last_reply": "", "last_mx": ""}]}
 * Decoding is strict about what it needs (types, sizes, names) and ignores
 * keys it does not know (a later version 1 writer may add some). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "spool.h"

#define ENV_VERSION 1
#define ENV_MAX_RCPTS 100000

static const char *const kind_names[] = {"message", "dsn"};
static const char *const state_names[] = {"pending", "delivered", "failed"};
static const char *const body_names[] = {"", "7bit", "8bitmime"};

const char *mxg_spool_kind_name(enum mxg_spool_kind k)
{
    return (unsigned)k < 2 ? kind_names[k] : "?";
}

const char *mxg_spool_rcpt_state_name(enum mxg_spool_rcpt_state s)
{
    return (unsigned)s < 3 ? state_names[s] : "?";
}

int mxg_spool_id_valid(const char *id)
{
    size_t n = 0;
    if (!id)
        return 0;
    for (; id[n]; n++) {
        char c = id[n];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              c == '-'))
            return 0;
    }
    return n > 0 && n < MXG_SPOOL_ID_MAX;
}

void mxg_spool_env_free(struct mxg_spool_env *env)
{
    if (!env)
        return;
    free(env->rcpts);
    env->rcpts = NULL;
    env->n_rcpts = 0;
}

static int copy_str(char *dst, size_t cap, const char *src)
{
    size_t n = strlen(src);
    if (n >= cap)
        return -EINVAL;
    memcpy(dst, src, n + 1);
    return 0;
}

int mxg_spool_env_add_rcpt(struct mxg_spool_env *env, const char *addr, const char *domain,
                           const struct mxg_rcpt_params *rp)
{
    struct mxg_spool_rcpt r;
    memset(&r, 0, sizeof r);
    if (copy_str(r.addr, sizeof r.addr, addr) < 0 || copy_str(r.domain, sizeof r.domain, domain) < 0)
        return -EINVAL;
    if (rp)
        r.rp = *rp;
    r.state = MXG_RCPT_PENDING;
    struct mxg_spool_rcpt *n = realloc(env->rcpts, (size_t)(env->n_rcpts + 1) * sizeof *n);
    if (!n)
        return -ENOMEM;
    env->rcpts = n;
    env->rcpts[env->n_rcpts++] = r;
    return 0;
}

/* ------------------------------------------------------------- encode */

/* An MX's free text (a reply, its name as shown) as stored: octets outside US-ASCII and
 * control characters other than TAB become '?'. JSON strings must be UTF-8 (jansson refuses
 * anything else, and the entry could not be written at all), and a DSN's Diagnostic-Code is
 * US-ASCII text. */
static void remote_text(char *dst, size_t cap, const char *src)
{
    size_t i = 0;
    for (; src[i] && i + 1 < cap; i++) {
        unsigned char ch = (unsigned char)src[i];
        dst[i] = (ch >= 0x20 && ch < 0x7f) || ch == '\t' ? (char)ch : '?';
    }
    dst[i] = 0;
}

char *mxg_spool_env_encode(const struct mxg_spool_env *env)
{
    json_t *rc = json_array();
    json_t *o = NULL;
    char *s = NULL;
    if (!rc)
        return NULL;
    for (int i = 0; i < env->n_rcpts; i++) {
        const struct mxg_spool_rcpt *r = &env->rcpts[i];
        char reply[sizeof r->last_reply], mx[sizeof r->last_mx];
        remote_text(reply, sizeof reply, r->last_reply);
        remote_text(mx, sizeof mx, r->last_mx);
        json_t *jr = json_pack("{s:s, s:s, s:s, s:s, s:s, s:b, s:b, s:i, s:s, s:s}",
                               "addr", r->addr, "domain", r->domain, "notify", r->rp.notify,
                               "orcpt", r->rp.orcpt, "state", mxg_spool_rcpt_state_name(r->state),
                               "dsn_done", r->dsn_done != 0, "expired", r->expired != 0,
                               "last_code", r->last_code, "last_reply", reply,
                               "last_mx", mx);
        if (!jr || json_array_append_new(rc, jr) < 0)
            goto out;
    }
    json_t *mail = json_pack("{s:I, s:s, s:b, s:s, s:s}", "size", (json_int_t)env->mp.size,
                             "body", (unsigned)env->mp.body < 3 ? body_names[env->mp.body] : "",
                             "smtputf8", env->mp.smtputf8 != 0, "ret", env->mp.ret, "envid",
                             env->mp.envid);
    if (!mail)
        goto out;
    o = json_pack("{s:i, s:s, s:s, s:I, s:I, s:i, s:s, s:s, s:s, s:I, s:o, s:O}", "version",
                  ENV_VERSION, "id", env->id, "kind", mxg_spool_kind_name(env->kind), "created_ms",
                  (json_int_t)env->created_ms, "next_attempt_ms", (json_int_t)env->next_attempt_ms,
                  "attempts", env->attempts, "from", env->from, "client", env->client, "helo",
                  env->helo, "body_size", (json_int_t)env->body_size, "mail", mail, "rcpts", rc);
    if (!o)
        goto out;
    s = json_dumps(o, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
out:
    json_decref(o);
    json_decref(rc);
    return s;
}

/* ------------------------------------------------------------- decode */

static int fail(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -EINVAL;
}

struct dctx {
    char *err;
    size_t errlen;
    const char *where; /* "" or "rcpts[3]." */
};

static int get_str(struct dctx *c, json_t *o, const char *key, char *dst, size_t cap, int required)
{
    json_t *v = json_object_get(o, key);
    if (!v) {
        if (required)
            return fail(c->err, c->errlen, "envelope: %s%s missing", c->where, key);
        dst[0] = 0;
        return 0;
    }
    if (!json_is_string(v))
        return fail(c->err, c->errlen, "envelope: %s%s is not a string", c->where, key);
    size_t n = json_string_length(v);
    const char *s = json_string_value(v);
    if (n >= cap || memchr(s, 0, n))
        return fail(c->err, c->errlen, "envelope: %s%s is too long or contains NUL", c->where, key);
    memcpy(dst, s, n + 1);
    return 0;
}

static int get_int(struct dctx *c, json_t *o, const char *key, long long min, long long max,
                   long long *out, int required)
{
    json_t *v = json_object_get(o, key);
    if (!v) {
        if (required)
            return fail(c->err, c->errlen, "envelope: %s%s missing", c->where, key);
        *out = 0;
        return 0;
    }
    if (!json_is_integer(v))
        return fail(c->err, c->errlen, "envelope: %s%s is not an integer", c->where, key);
    long long x = json_integer_value(v);
    if (x < min || x > max)
        return fail(c->err, c->errlen, "envelope: %s%s out of range (%lld)", c->where, key, x);
    *out = x;
    return 0;
}

static int get_bool(struct dctx *c, json_t *o, const char *key, int *out)
{
    json_t *v = json_object_get(o, key);
    if (!v) {
        *out = 0;
        return 0;
    }
    if (!json_is_boolean(v))
        return fail(c->err, c->errlen, "envelope: %s%s is not a boolean", c->where, key);
    *out = json_is_true(v);
    return 0;
}

static int get_name(struct dctx *c, json_t *o, const char *key, const char *const *names, int n,
                    int *out)
{
    char buf[32];
    int rc = get_str(c, o, key, buf, sizeof buf, 1);
    if (rc < 0)
        return rc;
    for (int i = 0; i < n; i++)
        if (strcmp(buf, names[i]) == 0) {
            *out = i;
            return 0;
        }
    return fail(c->err, c->errlen, "envelope: %s%s: unknown value \"%s\"", c->where, key, buf);
}

static int decode_rcpt(struct dctx *c, json_t *jr, struct mxg_spool_rcpt *r)
{
    long long x = 0;
    int st = 0;
    if (!json_is_object(jr))
        return fail(c->err, c->errlen, "envelope: %sis not an object", c->where);
    if (get_str(c, jr, "addr", r->addr, sizeof r->addr, 1) < 0 ||
        get_str(c, jr, "domain", r->domain, sizeof r->domain, 1) < 0 ||
        get_str(c, jr, "notify", r->rp.notify, sizeof r->rp.notify, 0) < 0 ||
        get_str(c, jr, "orcpt", r->rp.orcpt, sizeof r->rp.orcpt, 0) < 0 ||
        get_name(c, jr, "state", state_names, 3, &st) < 0 ||
        get_bool(c, jr, "dsn_done", &r->dsn_done) < 0 ||
        get_bool(c, jr, "expired", &r->expired) < 0 ||
        get_int(c, jr, "last_code", 0, 999, &x, 0) < 0 ||
        get_str(c, jr, "last_reply", r->last_reply, sizeof r->last_reply, 0) < 0 ||
        get_str(c, jr, "last_mx", r->last_mx, sizeof r->last_mx, 0) < 0)
        return -EINVAL;
    if (!r->addr[0] || !r->domain[0])
        return fail(c->err, c->errlen, "envelope: %saddr/domain is empty", c->where);
    r->state = (enum mxg_spool_rcpt_state)st;
    r->last_code = (int)x;
    return 0;
}

int mxg_spool_env_decode(const char *text, size_t len, struct mxg_spool_env *out, char *err,
                         size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (err && errlen)
        err[0] = 0;
    json_error_t je;
    json_t *o = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    if (!o)
        return fail(err, errlen, "envelope: not JSON: %s (line %d)", je.text, je.line);
    struct dctx c = {err, errlen, ""};
    int rc = -EINVAL;
    long long x;
    int kind = 0;
    if (!json_is_object(o)) {
        fail(err, errlen, "envelope: not a JSON object");
        goto out;
    }
    json_t *jv = json_object_get(o, "version");
    if (!json_is_integer(jv)) {
        fail(err, errlen, "envelope: no \"version\" number");
        goto out;
    }
    if (json_integer_value(jv) != ENV_VERSION) {
        fail(err, errlen, "envelope: unsupported version %lld (this mxguard reads version %d)",
             (long long)json_integer_value(jv), ENV_VERSION);
        goto out;
    }
    if (get_str(&c, o, "id", out->id, sizeof out->id, 1) < 0)
        goto out;
    if (!mxg_spool_id_valid(out->id)) {
        fail(err, errlen, "envelope: invalid id");
        goto out;
    }
    if (get_name(&c, o, "kind", kind_names, 2, &kind) < 0)
        goto out;
    out->kind = (enum mxg_spool_kind)kind;
    if (get_int(&c, o, "created_ms", 0, INT64_MAX, &x, 1) < 0)
        goto out;
    out->created_ms = x;
    if (get_int(&c, o, "next_attempt_ms", 0, INT64_MAX, &x, 1) < 0)
        goto out;
    out->next_attempt_ms = x;
    if (get_int(&c, o, "attempts", 0, 1000000000, &x, 1) < 0)
        goto out;
    out->attempts = (int)x;
    if (get_str(&c, o, "from", out->from, sizeof out->from, 1) < 0 ||
        get_str(&c, o, "client", out->client, sizeof out->client, 0) < 0 ||
        get_str(&c, o, "helo", out->helo, sizeof out->helo, 0) < 0)
        goto out;
    if (get_int(&c, o, "body_size", 0, INT64_MAX, &x, 1) < 0)
        goto out;
    out->body_size = (uint64_t)x;

    json_t *mail = json_object_get(o, "mail");
    if (mail) {
        int b = 0;
        if (!json_is_object(mail)) {
            fail(err, errlen, "envelope: mail is not an object");
            goto out;
        }
        c.where = "mail.";
        if (get_int(&c, mail, "size", 0, INT64_MAX, &x, 0) < 0 ||
            get_bool(&c, mail, "smtputf8", &out->mp.smtputf8) < 0 ||
            get_str(&c, mail, "ret", out->mp.ret, sizeof out->mp.ret, 0) < 0 ||
            get_str(&c, mail, "envid", out->mp.envid, sizeof out->mp.envid, 0) < 0)
            goto out;
        out->mp.size = (uint64_t)x;
        if (json_object_get(mail, "body")) {
            if (get_name(&c, mail, "body", body_names, 3, &b) < 0)
                goto out;
            out->mp.body = (enum mxg_body)b;
        }
        c.where = "";
    }

    json_t *rc_arr = json_object_get(o, "rcpts");
    if (!json_is_array(rc_arr) || json_array_size(rc_arr) == 0 ||
        json_array_size(rc_arr) > ENV_MAX_RCPTS) {
        fail(err, errlen, "envelope: rcpts must be a non-empty array (at most %d)", ENV_MAX_RCPTS);
        goto out;
    }
    size_t n = json_array_size(rc_arr);
    out->rcpts = calloc(n, sizeof *out->rcpts);
    if (!out->rcpts) {
        rc = -ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        char where[32];
        snprintf(where, sizeof where, "rcpts[%zu].", i);
        c.where = where;
        if (decode_rcpt(&c, json_array_get(rc_arr, i), &out->rcpts[i]) < 0)
            goto out;
        out->n_rcpts = (int)i + 1;
    }
    rc = 0;
out:
    json_decref(o);
    if (rc < 0)
        mxg_spool_env_free(out);
    return rc;
}
