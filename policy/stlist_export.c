/* policy/stlist_export.c — see stlist_export.h. */
#include "stlist_export.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sts_parse.h"

struct exp_entry {
    char domain[256];
    struct mxg_sts_policy policy;
    int64_t expires_at;
};

struct exp_ctx {
    struct exp_entry *e;
    int n, cap;
    int64_t now;
};

static void collect(void *arg, const struct mxg_sts_cache_entry *ce)
{
    struct exp_ctx *x = arg;
    struct mxg_sts_policy p;
    char why[200];
    if (ce->expires_at <= x->now ||
        mxg_sts_policy_parse(ce->body, ce->body_len, &p, why, sizeof why) < 0 ||
        p.mode != MXG_STS_MODE_ENFORCE)
        return;
    if (x->n == x->cap) {
        int ncap = x->cap ? x->cap * 2 : 64;
        struct exp_entry *ne = realloc(x->e, (size_t)ncap * sizeof *ne);
        if (!ne)
            return;
        x->e = ne;
        x->cap = ncap;
    }
    struct exp_entry *e = &x->e[x->n++];
    snprintf(e->domain, sizeof e->domain, "%s", ce->domain);
    e->policy = p;
    e->expires_at = ce->expires_at;
}

struct mx_wait {
    int done;
    struct mxg_mx_result r;
};

static void on_mx(void *arg, const struct mxg_mx_result *r)
{
    struct mx_wait *w = arg;
    w->r = *r;
    w->done = 1;
}

static void iso(int64_t t, char *out, size_t cap)
{
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* mxs for one domain: exact patterns as they are, wildcards resolved to the
 * current MX host names that match them. */
static json_t *mxs_for(uv_loop_t *loop, struct mxg_dns *dns, const struct exp_entry *e)
{
    json_t *mxs = json_array();
    int wild = 0;
    for (int i = 0; i < e->policy.n_mx; i++) {
        if (strncmp(e->policy.mx[i], "*.", 2) == 0)
            wild = 1;
        else
            json_array_append_new(mxs, json_string(e->policy.mx[i]));
    }
    if (!wild)
        return mxs;
    struct mx_wait w = {0};
    struct mxg_dns_query *q;
    if (mxg_dns_lookup_mx(dns, e->domain, on_mx, &w, &q) == 0) {
        while (!w.done && uv_run(loop, UV_RUN_ONCE))
            ;
    }
    if (w.done && w.r.status == MXG_DNS_OK) {
        for (int i = 0; i < w.r.n; i++) {
            const char *h = w.r.mx[i].host;
            if (!h[0] || strncmp(h, "*.", 2) == 0)
                continue;
            int wildmatch = 0;
            for (int k = 0; k < e->policy.n_mx; k++)
                if (strncmp(e->policy.mx[k], "*.", 2) == 0 &&
                    mxg_sts_pattern_match(e->policy.mx[k], h))
                    wildmatch = 1;
            int dup = 0;
            size_t idx;
            json_t *v;
            json_array_foreach(mxs, idx, v) dup |= strcasecmp(json_string_value(v), h) == 0;
            if (wildmatch && !dup)
                json_array_append_new(mxs, json_string(h));
        }
    } else {
        fprintf(stderr, "mxguard: %s: MX lookup failed; its wildcard pattern(s) are left out\n",
                e->domain);
    }
    return mxs;
}

int mxg_stlist_export(uv_loop_t *loop, struct mxg_dns *dns, struct mxg_sts_cache *cache,
                      const char *author, FILE *out, char *err, size_t errlen)
{
    struct exp_ctx x = {.now = (int64_t)time(NULL)};
    if (mxg_sts_cache_foreach(cache, collect, &x) < 0) {
        snprintf(err, errlen, "cannot read the MTA-STS cache");
        free(x.e);
        return -1;
    }
    int64_t expires = x.now + 7 * 86400;
    json_t *policies = json_object();
    int written = 0;
    for (int i = 0; i < x.n; i++) {
        json_t *mxs = mxs_for(loop, dns, &x.e[i]);
        if (json_array_size(mxs) == 0) {
            fprintf(stderr, "mxguard: %s: no exact MX names known; left out\n", x.e[i].domain);
            json_decref(mxs);
            continue;
        }
        json_t *p = json_object();
        json_object_set_new(p, "mode", json_string("enforce"));
        json_object_set_new(p, "mxs", mxs);
        json_object_set_new(policies, x.e[i].domain, p);
        if (x.e[i].expires_at < expires)
            expires = x.e[i].expires_at; /* the list cannot outlive what it copies */
        written++;
    }
    char ts[40], ex[40];
    iso(x.now, ts, sizeof ts);
    iso(expires, ex, sizeof ex);
    json_t *root = json_object();
    json_object_set_new(root, "timestamp", json_string(ts));
    json_object_set_new(root, "expires", json_string(ex));
    json_object_set_new(root, "version", json_string("0.1"));
    json_object_set_new(root, "author", json_string(author));
    json_object_set_new(root, "pinsets", json_object());
    json_object_set_new(root, "policy-aliases", json_object());
    json_object_set_new(root, "policies", policies);
    int rc = json_dumpf(root, out, JSON_INDENT(2) | JSON_SORT_KEYS);
    fputc('\n', out);
    json_decref(root);
    free(x.e);
    if (rc < 0) {
        snprintf(err, errlen, "cannot write the list");
        return -1;
    }
    return written;
}
