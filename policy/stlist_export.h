/* policy/stlist_export.h — `mxguard list export`: a policy list (the
 * STARTTLS Everywhere JSON format, unsigned: the operator signs it) built
 * from the MTA-STS cache's unexpired enforce-mode policies — a preload list
 * from what mxguard has seen.
 *
 * The list's `.x` means "any depth", MTA-STS's `*.x` exactly one label, so
 * a wildcard cannot be carried over exactly: the export writes the exact MX
 * host names (the domain's current MX hosts that match the policy, looked
 * up now); plain patterns are copied as they are. Runs the loop until done.
 * Returns the number of domains written, or -1 with err. */
#ifndef MXG_STLIST_EXPORT_H
#define MXG_STLIST_EXPORT_H

#include <stdio.h>
#include <uv.h>

#include "../dns/dns.h"
#include "sts_cache.h"

int mxg_stlist_export(uv_loop_t *loop, struct mxg_dns *dns, struct mxg_sts_cache *cache,
                      const char *author, FILE *out, char *err, size_t errlen);

#endif
