/* policy/override.c — see override.h. */
#include "override.h"

#include <assert.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The map: a table of struct mxg_override built by the shared loader
 * (policy/mapfile.h); the table owns the entries. */
struct mxg_override_map {
    struct mxg_mapfile_table t;
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

/* The fields after the key of line l → entry (a struct mxg_override whose
 * key and line the loader has set, the rest zeroed): the level, then
 * attributes. 0 or -1 with why (the loader adds "NAME:LINE: "). */
static int parse_entry(void *entry, const struct mxg_mapfile_line *l, char *why, size_t whylen)
{
    struct mxg_override *e = entry;
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

static_assert(sizeof((struct mxg_override *)0)->key == MXG_MAPFILE_KEY_MAX,
              "the loader writes MXG_MAPFILE_KEY_MAX octets of key");

static const struct mxg_mapfile_spec override_spec = {
    .size = sizeof(struct mxg_override),
    .key_off = offsetof(struct mxg_override, key),
    .line_off = offsetof(struct mxg_override, line),
    .star = 0,
    .parse_entry = parse_entry,
};

/* A new map from text (len octets) of the map called name, or from the file
 * name when from_file. 0 with *out (the caller's, mxg_override_map_free), or
 * -1 with err and *out NULL. */
static int map_new(const char *text, size_t len, const char *name, int from_file,
                   struct mxg_override_map **out, char *err, size_t errlen)
{
    struct mxg_override_map *m = calloc(1, sizeof *m);
    int rc = -1;
    *out = NULL;
    if (!m)
        snprintf(err, errlen, "%s: out of memory", name);
    else if (from_file)
        rc = mxg_mapfile_table_load(&m->t, &override_spec, name, err, errlen);
    else
        rc = mxg_mapfile_table_parse(&m->t, &override_spec, text, len, name, err, errlen);
    if (rc == 0)
        *out = m;
    else
        free(m);
    return rc;
}

int mxg_override_map_parse(const char *text, size_t len, const char *name,
                           struct mxg_override_map **out, char *err, size_t errlen)
{
    return map_new(text, len, name, 0, out, err, errlen);
}

int mxg_override_map_load(const char *path, struct mxg_override_map **out, char *err,
                          size_t errlen)
{
    return map_new(NULL, 0, path, 1, out, err, errlen);
}

void mxg_override_map_free(struct mxg_override_map *m)
{
    if (!m)
        return;
    mxg_mapfile_table_clear(&m->t);
    free(m);
}

const char *mxg_override_map_source(const struct mxg_override_map *m)
{
    return m ? m->t.source : "";
}

int mxg_override_map_count(const struct mxg_override_map *m)
{
    return m ? m->t.n : 0;
}

const struct mxg_override *mxg_override_map_entry(const struct mxg_override_map *m, int i)
{
    return m ? mxg_mapfile_table_entry(&m->t, i) : NULL;
}

const struct mxg_override *mxg_override_lookup(const struct mxg_override_map *m,
                                               const char *domain)
{
    return m ? mxg_mapfile_table_find(&m->t, domain) : NULL;
}
