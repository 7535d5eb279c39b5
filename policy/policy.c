/* policy/policy.c — see policy.h. */
#include "policy.h"

#include <stdio.h>

const char *mxg_policy_source_name(enum mxg_policy_source s)
{
    switch (s) {
    case MXG_POL_SRC_OPPORTUNISTIC: return "opportunistic";
    case MXG_POL_SRC_CONFIG: return "config";
    }
    return "?";
}

const char *mxg_policy_level_name(enum mxg_policy_level l)
{
    switch (l) {
    case MXG_POL_MAY: return "may";
    case MXG_POL_ENCRYPT: return "encrypt";
    }
    return "?";
}

void mxg_policy_decide(const struct mxg_config *cfg, const char *domain, struct mxg_policy *out)
{
    out->source = MXG_POL_SRC_OPPORTUNISTIC;
    if (cfg->tls_level == MXG_TLS_LEVEL_ENCRYPT) {
        out->level = MXG_POL_ENCRYPT;
        snprintf(out->reason, sizeof out->reason,
                 "no policy for %s; tls.opportunistic_level = encrypt", domain);
    } else {
        out->level = MXG_POL_MAY;
        snprintf(out->reason, sizeof out->reason, "no policy for %s; STARTTLS if offered", domain);
    }
}

int mxg_policy_allows_plaintext(const struct mxg_policy *p)
{
    return p->level == MXG_POL_MAY;
}
