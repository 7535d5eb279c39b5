/* policy/route.c — see route.h. */
#include "route.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct mxg_route_map {
    char source[1024];
    int n;
    struct mxg_static_route *e; /* sorted by key */
};

static int parse_entry(const struct mxg_mapfile_line *l, struct mxg_static_route *e, char *why,
                       size_t whylen)
{
    const char *r;
    memset(e, 0, sizeof *e);
    e->line = l->lineno;
    if (mxg_mapfile_key(l->f[0], 1, 1, e->key, sizeof e->key, &r) < 0) {
        snprintf(why, whylen, "destination \"%.100s\": %s", l->f[0], r);
        return -1;
    }
    if (l->nf < 2) {
        snprintf(why, whylen, "%s: the next hop is missing ([host]:port, or host for its MX "
                              "hosts)", e->key);
        return -1;
    }
    if (l->nf > 2) {
        snprintf(why, whylen, "%s: one next hop per line (unexpected \"%.60s\")", e->key,
                 l->f[2]);
        return -1;
    }
    const char *v = l->f[1];
    if (strncasecmp(v, "smtp:", 5) == 0)
        v += 5;
    else if (strchr(v, ':') && v[0] != '[' && strchr(v, ':') == strrchr(v, ':')) {
        /* "relay:..." / "lmtp:..." style transports: only smtp exists here */
        const char *c = strchr(v, ':');
        int digits = c[1] != 0;
        for (const char *p = c + 1; *p; p++)
            if (*p < '0' || *p > '9')
                digits = 0;
        if (!digits) {
            snprintf(why, whylen, "%s: \"%.60s\": only smtp: transports exist here (write "
                                  "[host]:port or host)", e->key, v);
            return -1;
        }
    }
    if (strlen(v) >= sizeof e->text) {
        snprintf(why, whylen, "%s: next hop too long", e->key);
        return -1;
    }
    if (mxg_parse_nexthop(v, &e->nh, &r) < 0) {
        snprintf(why, whylen, "%s: next hop \"%.100s\": %s", e->key, v, r);
        return -1;
    }
    snprintf(e->text, sizeof e->text, "%s", v);
    return 0;
}

int mxg_route_map_parse(const char *text, size_t len, const char *name,
                        struct mxg_route_map **out, char *err, size_t errlen)
{
    *out = NULL;
    struct mxg_route_map *m = calloc(1, sizeof *m);
    char *buf = malloc(len + 1);
    int cap = 0, rc = -1;
    if (!m || !buf) {
        snprintf(err, errlen, "%s: out of memory", name);
        goto out;
    }
    snprintf(m->source, sizeof m->source, "%s", name);
    memcpy(buf, text, len);
    buf[len] = 0;
    struct mxg_mapfile_iter it;
    struct mxg_mapfile_line l = {0};
    char why[400];
    int st;
    mxg_mapfile_iter_init(&it, buf, len);
    while ((st = mxg_mapfile_next(&it, &l, why, sizeof why)) > 0) {
        if (m->n == cap) {
            int ncap = cap ? cap * 2 : 16;
            struct mxg_static_route *ne = realloc(m->e, (size_t)ncap * sizeof *ne);
            if (!ne) {
                snprintf(err, errlen, "%s:%d: out of memory", name, l.lineno);
                goto out;
            }
            m->e = ne;
            cap = ncap;
        }
        if (parse_entry(&l, &m->e[m->n], why, sizeof why) < 0) {
            snprintf(err, errlen, "%s:%d: %s", name, l.lineno, why);
            goto out;
        }
        m->n++;
    }
    if (st < 0) {
        snprintf(err, errlen, "%s:%d: %s", name, l.lineno, why);
        goto out;
    }
    int dup = mxg_mapfile_sort(m->e, (size_t)m->n, sizeof *m->e,
                               offsetof(struct mxg_static_route, key));
    if (dup >= 0) {
        int a = m->e[dup - 1].line, b = m->e[dup].line;
        snprintf(err, errlen, "%s:%d: %s: listed twice (also at line %d)", name, a > b ? a : b,
                 m->e[dup].key, a > b ? b : a);
        goto out;
    }
    *out = m;
    m = NULL;
    rc = 0;
out:
    free(buf);
    mxg_route_map_free(m);
    return rc;
}

int mxg_route_map_load(const char *path, struct mxg_route_map **out, char *err, size_t errlen)
{
    char *text;
    size_t len;
    *out = NULL;
    if (mxg_mapfile_read(path, &text, &len, err, errlen) < 0)
        return -1;
    int rc = mxg_route_map_parse(text, len, path, out, err, errlen);
    free(text);
    return rc;
}

void mxg_route_map_free(struct mxg_route_map *m)
{
    if (!m)
        return;
    free(m->e);
    free(m);
}

const char *mxg_route_map_source(const struct mxg_route_map *m)
{
    return m ? m->source : "";
}

int mxg_route_map_count(const struct mxg_route_map *m)
{
    return m ? m->n : 0;
}

const struct mxg_static_route *mxg_route_map_entry(const struct mxg_route_map *m, int i)
{
    return m && i >= 0 && i < m->n ? &m->e[i] : NULL;
}

const struct mxg_static_route *mxg_route_map_lookup(const struct mxg_route_map *m,
                                                    const char *domain)
{
    if (!m || !domain)
        return NULL;
    return mxg_mapfile_find(m->e, (size_t)m->n, sizeof *m->e,
                            offsetof(struct mxg_static_route, key), domain, 1);
}

void mxg_static_route_format(const struct mxg_static_route *r, char *out, size_t cap)
{
    if (r->nh.mx)
        snprintf(out, cap, "%s%s%.0d (MX lookup)", r->nh.host, r->nh.port ? ":" : "",
                 r->nh.port);
    else
        snprintf(out, cap, "[%s]%s%.0d (no MX lookup)", r->nh.host, r->nh.port ? ":" : "",
                 r->nh.port);
}
