/* policy/digest_memo.h — a memo of SHA-256 digests, addressed by the exact
 * octets digested: the requirement digest (requirement.h mxg_req_digest) and
 * the connection-reuse key (proxy/outbound) are asked for the same octets
 * once per message; the memo answers a repeat without hashing again.
 *
 * Contract: mxg_digest_memo_sha256(m, data, len, out) gives SHA-256(data)
 * always — from the memo only when an entry holds exactly the same len
 * octets (compared whole), else computed and remembered. Nothing in it
 * goes stale: a digest is a pure function of its octets, so no TTL, reload
 * or policy change ever needs to invalidate an entry; whatever the memo is
 * asked about is described whole by the octets (callers serialise every
 * input of the value they key). Bounded: a fixed number of slots (least
 * recently used one replaced, within a set of 4 chosen by a hash of the
 * octets), octets longer than the limit given at creation are hashed and
 * not kept. Owned by whoever made it (the connection cache); one loop, no
 * locking; NULL is a valid memo that remembers nothing. */
#ifndef MXG_DIGEST_MEMO_H
#define MXG_DIGEST_MEMO_H

#include <stddef.h>
#include <stdint.h>

struct mxg_digest_memo;

/* sets x 4 slots, each keeping up to max_len octets; NULL when out of memory
 * or sets < 1. */
struct mxg_digest_memo *mxg_digest_memo_new(int sets, size_t max_len);
void mxg_digest_memo_free(struct mxg_digest_memo *m);

/* out = SHA-256 of data[0..len). Returns 0, or -1 when it could not be
 * computed (out untouched: the caller's failure rule applies). */
int mxg_digest_memo_sha256(struct mxg_digest_memo *m, const void *data, size_t len,
                           unsigned char out[32]);

/* Digests served from the memo / computed (counters, for tests). */
struct mxg_digest_memo_stats {
    uint64_t hits, misses;
};
void mxg_digest_memo_stats(const struct mxg_digest_memo *m, struct mxg_digest_memo_stats *s);

#endif
