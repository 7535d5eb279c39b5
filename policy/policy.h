/* policy/policy.h — the decision: how the next hop for a destination domain
 * must be secured (docs/ARCHITECTURE.md §Decision). This module decides row 1 (the operator's
 * override, policy/override.h) and the last row (opportunistic, or
 * "encrypt" when the operator raised the floor with
 * tls.opportunistic_level); rows 2–4 (DANE, MTA-STS, the policy list) are
 * decided per MX host by policy/requirement.h, which asks the predicates
 * below which of them an override lets through:
 *
 *   level (source)     DANE   MTA-STS+list  hosts without DANE/STS  STARTTLS
 *   may (default)      yes    yes           plaintext ok             tried
 *   encrypt (default)  yes    yes           TLS required             tried
 *   may (override)     yes    no            plaintext ok             tried
 *   dane (override)    yes    no            as tls.opportunistic_level
 *   dane-only          req.   no            not usable (4.7.5)       required
 *   mta-sts            no     STS required  TLS + WebPKI (enforce)   required
 *   verify             no     no            TLS + WebPKI + match     required
 *   encrypt (override) no     no            TLS, unauthenticated     required
 *   none               (informational)  no  plaintext                never
 *
 * Contract: mxg_policy_decide() fills a caller-owned struct (no pointers
 * into the map: a leg keeps its copy while the map is reloaded); the
 * result names its source and level and carries a human-readable reason,
 * so every decision can be logged and explained. No I/O.
 *
 * struct mxg_policy_maps: the operator's two map files (tls.policy_map,
 * upstream.route_map) as one object that the running process owns and
 * swaps on SIGHUP (mxg_policy_maps_load into a new struct, then
 * mxg_policy_maps_swap); readers (legs, mxguard check) look at it through a
 * stable pointer and copy what they use at leg start. */
#ifndef MXG_POLICY_H
#define MXG_POLICY_H

#include "../core/config.h"
#include "override.h"
#include "route.h"

enum mxg_policy_source {
    MXG_POL_SRC_OPPORTUNISTIC = 0, /* no policy: the default level (may) */
    MXG_POL_SRC_CONFIG,            /* tls.opportunistic_level = encrypt */
    MXG_POL_SRC_OVERRIDE,          /* an entry of tls.policy_map */
};

struct mxg_policy {
    enum mxg_policy_source source;
    enum mxg_policy_level level;
    int plaintext_ok;                 /* hosts without a DANE/STS requirement may get plaintext */
    char key[MXG_MAPFILE_KEY_MAX];    /* override: the entry's key ("" otherwise) */
    char origin[300];                 /* override: "FILE:LINE" */
    char match[MXG_OVR_MATCH_MAX];    /* verify: ':'-separated names ("" = "hostname") */
    char reason[400];
};

const char *mxg_policy_source_name(enum mxg_policy_source s);

/* The decision for domain: the override for domain (exact, then parent
 * form), else — when the leg goes to a static route's next hop — the
 * override for nexthop_host (may be NULL or ""), else the default from
 * cfg. ovr may be NULL (no map). */
void mxg_policy_decide(const struct mxg_config *cfg, const struct mxg_override_map *ovr,
                       const char *domain, const char *nexthop_host, struct mxg_policy *out);

/* May a host without a DANE or MTA-STS requirement be used without TLS? */
int mxg_policy_allows_plaintext(const struct mxg_policy *p);
/* Is STARTTLS to be tried at all? (0 only for "none") */
int mxg_policy_tries_tls(const struct mxg_policy *p);
/* Are TLSA records looked up and obeyed? (not for mta-sts, verify,
 * encrypt overrides; for "none" they are looked up for the log only) */
int mxg_policy_uses_dane(const struct mxg_policy *p);
/* Are MTA-STS and the policy list consulted? (no override, or mta-sts) */
int mxg_policy_uses_sts(const struct mxg_policy *p);
/* The override level when source is OVERRIDE, else -1 (for short tests). */
int mxg_policy_override(const struct mxg_policy *p);

/* verify: the reference names for a connection to mx_host of a leg whose
 * next hop is nexthop (the recipient domain, or the route's host), as
 * OpenSSL takes them (SSL_set1_host / SSL_add1_host: ".example.com" = any
 * subdomain): "hostname" → mx_host, "nexthop" → nexthop, "dot-nexthop" →
 * "."+nexthop, other names as written; duplicates dropped. Returns the
 * number of names written into names[max][cap]. */
int mxg_policy_match_names(const struct mxg_policy *p, const char *mx_host, const char *nexthop,
                           char names[][MXG_MAPFILE_KEY_MAX + 1], int max);

struct mxg_policy_maps {
    struct mxg_override_map *overrides; /* NULL: no tls.policy_map */
    struct mxg_route_map *routes;       /* NULL: no upstream.route_map */
};

/* Load both files named by cfg (tls.policy_map, upstream.route_map; "" =
 * none) into *out. All or nothing: 0, or -1 with err ("FILE:LINE: reason")
 * and *out zeroed. */
int mxg_policy_maps_load(const struct mxg_config *cfg, struct mxg_policy_maps *out, char *err,
                         size_t errlen);
/* Put next's maps into live and free live's old ones (next is zeroed). */
void mxg_policy_maps_swap(struct mxg_policy_maps *live, struct mxg_policy_maps *next);
void mxg_policy_maps_free(struct mxg_policy_maps *m);

#endif
