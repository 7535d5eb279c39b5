/* policy/override.c — see override.h. */
#include "override.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct mxg_override_map {
    char source[1024];
    int n;
    struct mxg_override *e; /* sorted by key */
};

static const char *const level_names[] = {
    [MXG_POL_MAY] = "may",           [MXG_POL_ENCRYPT] = "encrypt",
    [MXG_POL_NONE] = "none",         [MXG_POL_DANE] = "dane",
    [MXG_POL_DANE_ONLY] = "dane-only", [MXG_POL_MTA_STS] = "mta-sts",
    [MXG_POL_VERIFY] = "verify",
};
#define N_LEVELS (sizeof level_names / sizeof level_names[0])

const char *mxg_policy_level_name(enum mxg_policy_level l)
{
    return (unsigned)l < N_LEVELS && level_names[l] ? level_names[l] : "?";
}

int mxg_policy_level_parse(const char *s, enum mxg_policy_level *out)
{
    for (unsigned i = 0; i < N_LEVELS; i++) {
        if (level_names[i] && strcmp(s, level_names[i]) == 0) {
            *out = (enum mxg_policy_level)i;
            return 0;
        }
    }
    return -1;
}

/* Postfix policy-table attributes we know of but do not support. */
static const char *const unsupported_attrs[] = {
    "ciphers", "protocols", "exclude", "tafile", "connection_reuse", "enable_rpk", NULL,
};

/* Add the names of one match= value to e. 0 or -1 with why. */
static int add_match(struct mxg_override *e, char *value, char *why, size_t whylen)
{
    if (!*value) {
        snprintf(why, whylen, "match= needs at least one name");
        return -1;
    }
    for (char *save = NULL, *tok = strtok_r(value, ":,", &save); tok;
         tok = strtok_r(NULL, ":,", &save)) {
        char name[MXG_MAPFILE_KEY_MAX];
        const char *r;
        if (strcmp(tok, "hostname") == 0 || strcmp(tok, "nexthop") == 0 ||
            strcmp(tok, "dot-nexthop") == 0) {
            snprintf(name, sizeof name, "%s", tok);
        } else if (mxg_mapfile_key(tok, 1, 0, name, sizeof name, &r) < 0) {
            snprintf(why, whylen, "match name \"%.100s\": %s", tok, r);
            return -1;
        }
        if (e->n_match == MXG_OVR_MAX_MATCH) {
            snprintf(why, whylen, "more than %d match names", MXG_OVR_MAX_MATCH);
            return -1;
        }
        size_t l = strlen(e->match), nl = strlen(name);
        if (l + nl + 2 > sizeof e->match) {
            snprintf(why, whylen, "match list longer than %zu characters", sizeof e->match - 1);
            return -1;
        }
        snprintf(e->match + l, sizeof e->match - l, "%s%s", l ? ":" : "", name);
        e->n_match++;
    }
    if (e->n_match == 0) {
        snprintf(why, whylen, "match= needs at least one name");
        return -1;
    }
    return 0;
}

/* One line → e. 0 or -1 with why. */
static int parse_entry(const struct mxg_mapfile_line *l, struct mxg_override *e, char *why,
                       size_t whylen)
{
    const char *r;
    memset(e, 0, sizeof *e);
    e->line = l->lineno;
    if (mxg_mapfile_key(l->f[0], 1, 0, e->key, sizeof e->key, &r) < 0) {
        snprintf(why, whylen, "destination \"%.100s\": %s", l->f[0], r);
        return -1;
    }
    if (l->nf < 2) {
        snprintf(why, whylen, "%s: a level is missing (one of dane-only, dane, mta-sts, verify, "
                              "encrypt, may, none)", e->key);
        return -1;
    }
    if (mxg_policy_level_parse(l->f[1], &e->level) < 0) {
        snprintf(why, whylen, "%s: unknown level \"%.60s\" (one of dane-only, dane, mta-sts, "
                              "verify, encrypt, may, none)", e->key, l->f[1]);
        return -1;
    }
    for (int i = 2; i < l->nf; i++) {
        char *a = l->f[i], *eq = strchr(a, '=');
        if (!eq) {
            snprintf(why, whylen, "%s: \"%.60s\" is not an attribute (NAME=VALUE)", e->key, a);
            return -1;
        }
        *eq = 0;
        if (strcmp(a, "match") == 0) {
            if (e->level != MXG_POL_VERIFY) {
                snprintf(why, whylen, "%s: match= belongs to the verify level only", e->key);
                return -1;
            }
            char sub[200];
            if (add_match(e, eq + 1, sub, sizeof sub) < 0) {
                snprintf(why, whylen, "%s: %s", e->key, sub);
                return -1;
            }
            continue;
        }
        for (int k = 0; unsupported_attrs[k]; k++) {
            if (strcmp(a, unsupported_attrs[k]) == 0) {
                snprintf(why, whylen, "%s: attribute %s= is not supported (TLS settings are "
                                      "global: tls.* in mxguard.conf)", e->key, a);
                return -1;
            }
        }
        snprintf(why, whylen, "%s: unknown attribute %.40s= (only match=)", e->key, a);
        return -1;
    }
    return 0;
}

int mxg_override_map_parse(const char *text, size_t len, const char *name,
                           struct mxg_override_map **out, char *err, size_t errlen)
{
    *out = NULL;
    struct mxg_override_map *m = calloc(1, sizeof *m);
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
            struct mxg_override *ne = realloc(m->e, (size_t)ncap * sizeof *ne);
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
                               offsetof(struct mxg_override, key));
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
    mxg_override_map_free(m);
    return rc;
}

int mxg_override_map_load(const char *path, struct mxg_override_map **out, char *err,
                          size_t errlen)
{
    char *text;
    size_t len;
    *out = NULL;
    if (mxg_mapfile_read(path, &text, &len, err, errlen) < 0)
        return -1;
    int rc = mxg_override_map_parse(text, len, path, out, err, errlen);
    free(text);
    return rc;
}

void mxg_override_map_free(struct mxg_override_map *m)
{
    if (!m)
        return;
    free(m->e);
    free(m);
}

const char *mxg_override_map_source(const struct mxg_override_map *m)
{
    return m ? m->source : "";
}

int mxg_override_map_count(const struct mxg_override_map *m)
{
    return m ? m->n : 0;
}

const struct mxg_override *mxg_override_map_entry(const struct mxg_override_map *m, int i)
{
    return m && i >= 0 && i < m->n ? &m->e[i] : NULL;
}

const struct mxg_override *mxg_override_lookup(const struct mxg_override_map *m,
                                               const char *domain)
{
    if (!m || !domain)
        return NULL;
    return mxg_mapfile_find(m->e, (size_t)m->n, sizeof *m->e, offsetof(struct mxg_override, key),
                            domain, 0);
}
