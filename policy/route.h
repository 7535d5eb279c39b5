/* policy/route.h — static routes (upstream.route_map), in the spirit of
 * Postfix's transport maps: a destination domain goes to a fixed next hop
 * instead of its own MX hosts. Syntax and key matching: policy/mapfile.h
 * ("*" matches every domain no other entry matches).
 *
 *     # destination     next hop
 *     example.com       [mx1.example.net]:2525
 *     .example.com      relay.example.net
 *     *                 [smarthost.corp.example]:587
 *
 * The next hop is written as Postfix writes it (core/config.h
 * mxg_parse_nexthop), optionally after "smtp:":
 *   [host] / [host]:port   that host's own addresses, no MX lookup (host may
 *                          be an IPv4 or IPv6 literal);
 *   host / host:port       the MX hosts of host (MX lookup).
 * Without a port the leg uses upstream.port.
 *
 * How the TLS policy applies to a routed leg (proxy/outbound/leg_connect.c):
 *   - DANE is looked up at the next hop actually used: TLSA at
 *     _PORT._tcp.HOST of each MX host of "host" (the MX RRset of host must be
 *     secure), or of "[host]" itself (its address records must be secure,
 *     its name comes from the configuration). Address literals: no DANE.
 *   - MTA-STS and the policy list only for MX-style next hops, and then as
 *     the policy of the next-hop domain (RFC 8461 ties a policy to the MX
 *     hosts of its own domain; Postfix keys its policy lookups by next hop).
 *     "[host]" next hops never get MTA-STS.
 *   - A policy override (tls.policy_map) is looked up for the recipient
 *     domain first, then for the next hop's host name.
 *
 * Contract: a map is immutable once built; lookups return pointers into it,
 * valid until mxg_route_map_free(). Errors: "NAME:LINE: reason". */
#ifndef MXG_POLICY_ROUTE_H
#define MXG_POLICY_ROUTE_H

#include <stddef.h>

#include "../core/config.h"
#include "mapfile.h"

struct mxg_static_route {
    char key[MXG_MAPFILE_KEY_MAX]; /* "example.com", ".example.com" or "*" */
    struct mxg_nexthop nh;         /* host, port (0 = upstream.port), mx */
    char text[300];                /* the next hop as written (without "smtp:") */
    int line;
};

struct mxg_route_map;

/* Parse text (len octets) of the map called name. 0 with *out, or -1 with
 * err "NAME:LINE: reason" and *out NULL. An empty map is valid. */
int mxg_route_map_parse(const char *text, size_t len, const char *name,
                        struct mxg_route_map **out, char *err, size_t errlen);
int mxg_route_map_load(const char *path, struct mxg_route_map **out, char *err, size_t errlen);
void mxg_route_map_free(struct mxg_route_map *m);

const char *mxg_route_map_source(const struct mxg_route_map *m);
int mxg_route_map_count(const struct mxg_route_map *m); /* m may be NULL: 0 */
const struct mxg_static_route *mxg_route_map_entry(const struct mxg_route_map *m, int i);

/* The route for domain: exact, nearest parent form, then "*"; NULL if none
 * (also when m is NULL). */
const struct mxg_static_route *mxg_route_map_lookup(const struct mxg_route_map *m,
                                                    const char *domain);

/* "[host]:port" / "host" as the leg will use it, for logs and check. */
void mxg_static_route_format(const struct mxg_static_route *r, char *out, size_t cap);

#endif
