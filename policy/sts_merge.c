/* policy/sts_merge.c — the fleet's merge rule for pulled MTA-STS rows; see sts_merge.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sts_merge.h"
#include "sts_parse.h"

/* Contract: sts_merge.h. */
enum mxg_sts_merge mxg_sts_merge(const struct mxg_sts_cache_entry *local,
                                 const struct mxg_sts_cache_entry *in, int64_t now,
                                 struct mxg_sts_cache_entry *out, char *why, size_t whylen)
{
    struct mxg_sts_policy *p;
    char perr[200];
    int bad;

    if (!in->domain[0] || strnlen(in->domain, sizeof in->domain) >= sizeof in->domain ||
        !in->id[0] || strnlen(in->id, sizeof in->id) >= sizeof in->id) {
        snprintf(why, whylen, "no usable domain or id");
        return MXG_STS_MERGE_REFUSE;
    }
    if (in->expires_at <= now) {
        snprintf(why, whylen, "expired %lld s ago", (long long)(now - in->expires_at));
        return MXG_STS_MERGE_REFUSE;
    }
    if (!(p = malloc(sizeof *p))) { /* 16 KiB of patterns: not on the loop's stack */
        snprintf(why, whylen, "out of memory");
        return MXG_STS_MERGE_REFUSE;
    }
    bad = mxg_sts_policy_parse(in->body ? in->body : "", in->body ? in->body_len : 0, p, perr,
                               sizeof perr) < 0;
    free(p);
    if (bad) {
        snprintf(why, whylen, "invalid policy: %s", perr);
        return MXG_STS_MERGE_REFUSE;
    }
    if (local && local->expires_at > now && in->fetched_at <= local->fetched_at) {
        snprintf(why, whylen, "the local copy is as recent or newer");
        return MXG_STS_MERGE_KEEP;
    }
    *out = *in;
    if (local && strcmp(local->id, in->id) == 0 && local->expires_at > out->expires_at)
        out->expires_at = local->expires_at; /* same id: never shortened */
    snprintf(why, whylen, "newer fetch");
    return MXG_STS_MERGE_TAKE;
}
