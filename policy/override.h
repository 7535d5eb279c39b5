/* policy/override.h — the operator's per-domain TLS policies (DESIGN §2,
 * row 1): a map file in the spirit of Postfix's smtp_tls_policy_maps
 * (tls.policy_map). Syntax and key matching: policy/mapfile.h.
 *
 *     # destination     level       attributes
 *     example.com       verify      match=mx.example.com:.example.net
 *     .example.org      dane-only
 *     legacy.example    none
 *
 * Levels (what policy/policy.h and proxy/outbound/leg*.c make of them):
 *   dane-only  DANE required: every MX host used needs usable secure TLSA
 *              records and must match them; otherwise 4xx 4.7.5, never a
 *              weaker delivery. MTA-STS and the policy list are not asked.
 *   dane       DANE where secure TLSA records exist, else the global
 *              tls.opportunistic_level; MTA-STS and the list are not asked.
 *   mta-sts    a valid MTA-STS policy in enforce mode is required (fetched
 *              or cached; the policy list does not count): else 4xx 4.7.5.
 *              DANE is not consulted.
 *   verify     TLS with a WebPKI chain (tls.ca_file) and a certificate name
 *              from the match list; DANE, MTA-STS and the list are not
 *              asked. match= names: a host name, ".parent" (any subdomain),
 *              or the words "hostname" (the MX host connected to),
 *              "nexthop" (the recipient domain, or the route's next hop) and
 *              "dot-nexthop" (any subdomain of it). Default: "hostname", as
 *              Postfix's verify level (smtp_tls_verify_cert_match).
 *   encrypt    TLS required, no authentication (DANE, MTA-STS, list ignored).
 *   may        DANE where secure TLSA records exist, else opportunistic TLS
 *              (plaintext allowed, also after a failed handshake) whatever
 *              tls.opportunistic_level says; MTA-STS and the list ignored.
 *   none       plaintext, STARTTLS is not even tried; for a destination
 *              with DANE this is a downgrade the operator asked for, and
 *              every such delivery is logged as a warning.
 * Attributes: match=NAME[:NAME...] (verify only; may repeat; ',' also
 * separates; at most MXG_OVR_MAX_MATCH names). Postfix's other attributes
 * (ciphers=, protocols=, exclude=, ...) are refused with an error.
 *
 * Contract: a map is immutable once built; lookups return pointers into it,
 * valid until mxg_override_map_free(). Errors: "NAME:LINE: reason". */
#ifndef MXG_OVERRIDE_H
#define MXG_OVERRIDE_H

#include <stddef.h>

#include "mapfile.h"

/* The levels of a decision (policy/policy.h). MAY and ENCRYPT are also what
 * the decision says without an override (tls.opportunistic_level). */
enum mxg_policy_level {
    MXG_POL_MAY = 0,   /* STARTTLS if offered, plaintext allowed (also after a failed handshake) */
    MXG_POL_ENCRYPT,   /* TLS mandatory, no authentication */
    MXG_POL_NONE,      /* plaintext only (override) */
    MXG_POL_DANE,      /* DANE if TLSA, else the global level (override) */
    MXG_POL_DANE_ONLY, /* DANE required (override) */
    MXG_POL_MTA_STS,   /* MTA-STS enforce required (override) */
    MXG_POL_VERIFY,    /* WebPKI + a name from the match list (override) */
};
const char *mxg_policy_level_name(enum mxg_policy_level l);
/* "dane-only" → level: 0, or -1 when the word is not a level. */
int mxg_policy_level_parse(const char *s, enum mxg_policy_level *out);

#define MXG_OVR_MAX_MATCH 16
#define MXG_OVR_MATCH_MAX 512 /* the match list as stored: "a:b:.c" */

struct mxg_override {
    char key[MXG_MAPFILE_KEY_MAX];  /* "example.com" or ".example.com", lower case */
    enum mxg_policy_level level;
    int n_match;                    /* verify: names in match ("" = default "hostname") */
    char match[MXG_OVR_MATCH_MAX];  /* normalised, ':'-separated */
    int line;                       /* where it was written */
};

struct mxg_override_map;

/* Parse text (len octets; need not be NUL-terminated) of the map called
 * name (for error messages). 0 with *out (free with mxg_override_map_free),
 * or -1 with err "NAME:LINE: reason" and *out NULL. An empty map is valid. */
int mxg_override_map_parse(const char *text, size_t len, const char *name,
                           struct mxg_override_map **out, char *err, size_t errlen);
/* The same from a file (mxg_mapfile_read). */
int mxg_override_map_load(const char *path, struct mxg_override_map **out, char *err,
                          size_t errlen);
void mxg_override_map_free(struct mxg_override_map *m);

/* The file (or name) the map came from. */
const char *mxg_override_map_source(const struct mxg_override_map *m);
int mxg_override_map_count(const struct mxg_override_map *m); /* m may be NULL: 0 */
/* Entry i in key order (0 <= i < count). */
const struct mxg_override *mxg_override_map_entry(const struct mxg_override_map *m, int i);

/* The entry for domain (exact, then the nearest parent form), or NULL
 * (also when m is NULL). */
const struct mxg_override *mxg_override_lookup(const struct mxg_override_map *m,
                                               const char *domain);

#endif
