/* policy/policy.c — see policy.h. */
#include "policy.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "../core/str.h"

const char *mxg_policy_source_name(enum mxg_policy_source s)
{
    switch (s) {
    case MXG_POL_SRC_OPPORTUNISTIC: return "opportunistic";
    case MXG_POL_SRC_CONFIG: return "config";
    case MXG_POL_SRC_OVERRIDE: return "override";
    }
    return "?";
}

static const char *level_meaning(enum mxg_policy_level l, int floor_encrypt)
{
    switch (l) {
    case MXG_POL_DANE_ONLY:
        return "DANE required: every MX host needs usable DNSSEC-secure TLSA records";
    case MXG_POL_DANE:
        return floor_encrypt ? "DANE where TLSA records exist, else TLS required "
                               "(tls.opportunistic_level = encrypt); MTA-STS and list not used"
                             : "DANE where TLSA records exist, else opportunistic TLS; MTA-STS "
                               "and list not used";
    case MXG_POL_MTA_STS:
        return "a valid MTA-STS policy in enforce mode is required; DANE not used";
    case MXG_POL_VERIFY:
        return "TLS with a WebPKI certificate for a name of the match list; DANE, MTA-STS and "
               "list not used";
    case MXG_POL_ENCRYPT:
        return "TLS required, not authenticated; DANE, MTA-STS and list not used";
    case MXG_POL_MAY:
        return "DANE where TLSA records exist, else opportunistic TLS (plaintext allowed); "
               "MTA-STS and list not used";
    case MXG_POL_NONE:
        return "PLAINTEXT: STARTTLS is not used, whatever DANE, MTA-STS or the list say";
    }
    return "?";
}

void mxg_policy_decide(const struct mxg_config *cfg, const struct mxg_override_map *ovr,
                       const char *domain, const char *nexthop_host, struct mxg_policy *out)
{
    memset(out, 0, sizeof *out);
    const struct mxg_override *o = mxg_override_lookup(ovr, domain);
    const char *looked = domain;
    if (!o && nexthop_host && nexthop_host[0]) {
        o = mxg_override_lookup(ovr, nexthop_host);
        looked = nexthop_host;
    }
    int floor_encrypt = cfg->tls_level == MXG_TLS_LEVEL_ENCRYPT;
    if (o) {
        out->source = MXG_POL_SRC_OVERRIDE;
        out->level = o->level;
        snprintf(out->key, sizeof out->key, "%s", o->key);
        snprintf(out->origin, sizeof out->origin, "%s:%d", mxg_override_map_source(ovr), o->line);
        snprintf(out->match, sizeof out->match, "%s", o->match);
        out->plaintext_ok = o->level == MXG_POL_MAY || o->level == MXG_POL_NONE ||
                            (o->level == MXG_POL_DANE && !floor_encrypt);
        snprintf(out->reason, sizeof out->reason, "override %s for %s (%s%s%s): %s%s%s",
                 mxg_policy_level_name(o->level), o->key, out->origin,
                 looked != domain ? ", the next hop " : "", looked != domain ? looked : "",
                 level_meaning(o->level, floor_encrypt),
                 o->level == MXG_POL_VERIFY ? "; match " : "",
                 o->level == MXG_POL_VERIFY ? (o->match[0] ? o->match : "hostname") : "");
        return;
    }
    if (floor_encrypt) {
        out->source = MXG_POL_SRC_CONFIG;
        out->level = MXG_POL_ENCRYPT;
        snprintf(out->reason, sizeof out->reason,
                 "no policy for %s; tls.opportunistic_level = encrypt", domain);
    } else {
        out->source = MXG_POL_SRC_OPPORTUNISTIC;
        out->level = MXG_POL_MAY;
        out->plaintext_ok = 1;
        mxg_str_join3(out->reason, sizeof out->reason, "no policy for ", domain, "; STARTTLS if offered");
    }
}

int mxg_policy_allows_plaintext(const struct mxg_policy *p)
{
    return p->plaintext_ok;
}

int mxg_policy_tries_tls(const struct mxg_policy *p)
{
    return !(p->source == MXG_POL_SRC_OVERRIDE && p->level == MXG_POL_NONE);
}

int mxg_policy_uses_dane(const struct mxg_policy *p)
{
    if (p->source != MXG_POL_SRC_OVERRIDE)
        return 1;
    return p->level == MXG_POL_MAY || p->level == MXG_POL_DANE || p->level == MXG_POL_DANE_ONLY ||
           p->level == MXG_POL_NONE;
}

int mxg_policy_uses_sts(const struct mxg_policy *p)
{
    return p->source != MXG_POL_SRC_OVERRIDE || p->level == MXG_POL_MTA_STS;
}

int mxg_policy_override(const struct mxg_policy *p)
{
    return p->source == MXG_POL_SRC_OVERRIDE ? (int)p->level : -1;
}

static int add_name(char names[][MXG_MAPFILE_KEY_MAX + 1], int n, int max, const char *prefix,
                    const char *name)
{
    char buf[MXG_MAPFILE_KEY_MAX + 1];
    if (!name || !name[0] || n >= max)
        return n;
    snprintf(buf, sizeof buf, "%s%s", prefix, name);
    size_t l = strlen(buf);
    if (l > 1 && buf[l - 1] == '.')
        buf[l - 1] = 0;
    for (int i = 0; i < n; i++)
        if (strcasecmp(names[i], buf) == 0)
            return n;
    snprintf(names[n], MXG_MAPFILE_KEY_MAX + 1, "%s", buf);
    return n + 1;
}

int mxg_policy_match_names(const struct mxg_policy *p, const char *mx_host, const char *nexthop,
                           char names[][MXG_MAPFILE_KEY_MAX + 1], int max)
{
    char list[MXG_OVR_MATCH_MAX];
    int n = 0;
    snprintf(list, sizeof list, "%s", p->match[0] ? p->match : "hostname");
    for (char *save = NULL, *t = strtok_r(list, ":", &save); t; t = strtok_r(NULL, ":", &save)) {
        if (strcmp(t, "hostname") == 0)
            n = add_name(names, n, max, "", mx_host);
        else if (strcmp(t, "nexthop") == 0)
            n = add_name(names, n, max, "", nexthop);
        else if (strcmp(t, "dot-nexthop") == 0)
            n = add_name(names, n, max, ".", nexthop);
        else
            n = add_name(names, n, max, "", t);
    }
    return n;
}

int mxg_policy_maps_load(const struct mxg_config *cfg, struct mxg_policy_maps *out, char *err,
                         size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (cfg->tls_policy_map[0] &&
        mxg_override_map_load(cfg->tls_policy_map, &out->overrides, err, errlen) < 0)
        return -1;
    if (cfg->route_map[0] && mxg_route_map_load(cfg->route_map, &out->routes, err, errlen) < 0) {
        mxg_policy_maps_free(out);
        return -1;
    }
    return 0;
}

void mxg_policy_maps_swap(struct mxg_policy_maps *live, struct mxg_policy_maps *next)
{
    struct mxg_policy_maps old = *live;
    *live = *next;
    memset(next, 0, sizeof *next);
    mxg_policy_maps_free(&old);
}

void mxg_policy_maps_free(struct mxg_policy_maps *m)
{
    if (!m)
        return;
    mxg_override_map_free(m->overrides);
    mxg_route_map_free(m->routes);
    memset(m, 0, sizeof *m);
}
