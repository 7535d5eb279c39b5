/* policy/policy.h — the decision: how the next hop for a destination domain
 * must be secured (DESIGN §2). Today only the last row exists (opportunistic,
 * or "encrypt" when the operator raised the floor); DANE, MTA-STS, the policy
 * list and local overrides add rows above it.
 *
 * Contract: mxg_policy_decide() fills a caller-owned struct; the result names
 * its source and level and carries a human-readable reason, so every decision
 * can be logged and explained. No I/O. */
#ifndef MXG_POLICY_H
#define MXG_POLICY_H

#include "../core/config.h"

enum mxg_policy_source { MXG_POL_SRC_OPPORTUNISTIC = 0, MXG_POL_SRC_CONFIG };
enum mxg_policy_level {
    MXG_POL_MAY = 0, /* STARTTLS if offered, plaintext allowed (also after a failed handshake) */
    MXG_POL_ENCRYPT, /* TLS mandatory, no authentication */
};

struct mxg_policy {
    enum mxg_policy_source source;
    enum mxg_policy_level level;
    char reason[160];
};

const char *mxg_policy_source_name(enum mxg_policy_source s);
const char *mxg_policy_level_name(enum mxg_policy_level l);

void mxg_policy_decide(const struct mxg_config *cfg, const char *domain, struct mxg_policy *out);

/* May this host be used without TLS under the policy? */
int mxg_policy_allows_plaintext(const struct mxg_policy *p);

#endif
