/* app/cli_check.h — `mxguard check DOMAIN [--connect | --json]`: explain the
 * delivery decision for a domain the way a delivery would make it: the
 * static route (upstream.route_map) and the policy override (tls.policy_map,
 * named with file and line as the policy source) if any, the MX set (or the
 * route's next hop) with its DNSSEC status, per host the addresses, the DANE
 * facts (TLSA records, usability) and the per-host requirement, computed by
 * the function delivery uses (policy/requirement.h mxg_req_for_host); with
 * connect, a live probe of each MX host (STARTTLS + verification, like
 * posttls-finger) through the very code path mail takes (mxg_leg_probe);
 * with json, one JSON object instead of the text (below).
 *
 * mxg_check_domain() runs the loop until it is done and prints to out.
 * Returns 0 if mail to the domain could be delivered now, 1 if not now
 * (temporary), 2 if never (null MX, no such domain). */
#ifndef MXG_CHECK_H
#define MXG_CHECK_H

#include <stdio.h>

#include "../proxy/outbound/upstream.h"

int mxg_check_domain(const struct mxg_upstream_env *env, const char *domain, int connect,
                     FILE *out);

/* The same with flags: MXG_CHECK_CONNECT (probes), MXG_CHECK_JSON (no text:
 * one JSON object on out, no probes). The JSON object's fields (stable,
 * documented in docs/man/mxguard.8): domain, route {nexthop, nexthop_mx, literal,
 * port, static_route}, policy {source, level, override, reason}, mta_sts
 * {consulted, outcome, mode, id}, list {applies, mode}, hosts [per host the
 * requirement of policy/requirement.h mxg_req_json() — host, level, source,
 * tls_required, starttls, verify {how, enforce, sni, names, tlsa}, skip,
 * enh, why, tlsrpt, metric, not_in_policy, dane, summary — plus pref,
 * addresses, dnssec, dane_fact, dane_why], deferred (null, or {code, enh,
 * text} when no host is tried), usable, status, verdict. */
enum { MXG_CHECK_CONNECT = 1, MXG_CHECK_JSON = 2 };
int mxg_check_domain_opts(const struct mxg_upstream_env *env, const char *domain, int flags,
                          FILE *out);

#endif
