/* policy/route.c — see route.h. */
#include "route.h"

#include <assert.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* The map: a table of struct mxg_static_route built by the shared loader
 * (policy/mapfile.h); the table owns the entries. */
struct mxg_route_map {
    struct mxg_mapfile_table t;
};

/* The fields after the key of line l → entry (a struct mxg_static_route
 * whose key and line the loader has set, the rest zeroed): exactly one next
 * hop. 0 or -1 with why (the loader adds "NAME:LINE: "). */
static int parse_entry(void *entry, const struct mxg_mapfile_line *l, char *why, size_t whylen)
{
    struct mxg_static_route *e = entry;
    const char *r;
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

static_assert(sizeof((struct mxg_static_route *)0)->key == MXG_MAPFILE_KEY_MAX,
              "the loader writes MXG_MAPFILE_KEY_MAX octets of key");

static const struct mxg_mapfile_spec route_spec = {
    .size = sizeof(struct mxg_static_route),
    .key_off = offsetof(struct mxg_static_route, key),
    .line_off = offsetof(struct mxg_static_route, line),
    .star = 1,
    .parse_entry = parse_entry,
};

/* A new map from text (len octets) of the map called name, or from the file
 * name when from_file. 0 with *out (the caller's, mxg_route_map_free), or -1
 * with err and *out NULL. */
static int map_new(const char *text, size_t len, const char *name, int from_file,
                   struct mxg_route_map **out, char *err, size_t errlen)
{
    struct mxg_route_map *m = calloc(1, sizeof *m);
    int rc = -1;
    *out = NULL;
    if (!m)
        snprintf(err, errlen, "%s: out of memory", name);
    else if (from_file)
        rc = mxg_mapfile_table_load(&m->t, &route_spec, name, err, errlen);
    else
        rc = mxg_mapfile_table_parse(&m->t, &route_spec, text, len, name, err, errlen);
    if (rc == 0)
        *out = m;
    else
        free(m);
    return rc;
}

int mxg_route_map_parse(const char *text, size_t len, const char *name,
                        struct mxg_route_map **out, char *err, size_t errlen)
{
    return map_new(text, len, name, 0, out, err, errlen);
}

int mxg_route_map_load(const char *path, struct mxg_route_map **out, char *err, size_t errlen)
{
    return map_new(NULL, 0, path, 1, out, err, errlen);
}

void mxg_route_map_free(struct mxg_route_map *m)
{
    if (!m)
        return;
    mxg_mapfile_table_clear(&m->t);
    free(m);
}

const char *mxg_route_map_source(const struct mxg_route_map *m)
{
    return m ? m->t.source : "";
}

int mxg_route_map_count(const struct mxg_route_map *m)
{
    return m ? m->t.n : 0;
}

const struct mxg_static_route *mxg_route_map_entry(const struct mxg_route_map *m, int i)
{
    return m ? mxg_mapfile_table_entry(&m->t, i) : NULL;
}

const struct mxg_static_route *mxg_route_map_lookup(const struct mxg_route_map *m,
                                                    const char *domain)
{
    return m ? mxg_mapfile_table_find(&m->t, domain) : NULL;
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
