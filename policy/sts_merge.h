/* policy/sts_merge.h — which MTA-STS policy the local cache keeps when the fleet's shared
 * state (state/state.h) hands over a row another instance (or this one) stored.
 *
 * Pure: no I/O, no clock (the caller passes now). RFC 8461 §3.1: policy ids have no
 * order, the most recent successful fetch wins. The local row is kept unless the pulled
 * one is valid (its body parses, it has not expired, its domain and id fit) and is a
 * strictly newer fetch (or the local row has expired); the expiry of the same id is never
 * shortened. Rows compared belong to the same domain (the caller looked it up). */
#ifndef MXG_STS_MERGE_H
#define MXG_STS_MERGE_H

#include <stddef.h>
#include <stdint.h>

#include "sts_cache.h"

enum mxg_sts_merge {
    MXG_STS_MERGE_KEEP = 0, /* the local row stays as it is */
    MXG_STS_MERGE_TAKE,     /* *out (the pulled row, expiry never shortened) replaces it */
    MXG_STS_MERGE_REFUSE,   /* the pulled row is invalid (why says how): the local row stays */
};

/* Decides for the pulled row in against local (NULL: none cached). On TAKE, *out is in with
 * expires_at raised to local's when the id is the same (out->body borrows in->body). */
enum mxg_sts_merge mxg_sts_merge(const struct mxg_sts_cache_entry *local,
                                 const struct mxg_sts_cache_entry *in, int64_t now,
                                 struct mxg_sts_cache_entry *out, char *why, size_t whylen);

#endif
