/* policy/sts_parse.h — MTA-STS (RFC 8461) text formats, pure functions:
 * the _mta-sts TXT record (§3.1), the policy file (§3.2), MX pattern
 * matching (§4.1). Every rejection carries a human-readable reason.
 * No I/O, no allocation. */
#ifndef MXG_STS_PARSE_H
#define MXG_STS_PARSE_H

#include <stddef.h>
#include <stdint.h>

#define MXG_STS_ID_MAX 32
#define MXG_STS_MAX_MX 64
#define MXG_STS_NAME_MAX 254
#define MXG_STS_MAX_AGE_LIMIT 31557600u

enum mxg_sts_mode { MXG_STS_MODE_NONE = 0, MXG_STS_MODE_TESTING, MXG_STS_MODE_ENFORCE };
const char *mxg_sts_mode_name(enum mxg_sts_mode m);

/* One TXT record (character-strings already concatenated).
 * Returns 1: a valid STS record (id set); 0: not an STS record (does not
 * start with "v=STSv1"); -1: starts with v=STSv1 but malformed (why set). */
int mxg_sts_txt_parse(const char *txt, size_t len, char id[MXG_STS_ID_MAX + 1], char *why,
                      size_t whycap);

/* The TXT RRset: exactly one record starting with "v=STSv1" must exist.
 * Returns 1 (id set), 0 (no STS record), -1 (several, or the one is
 * malformed; why set). */
int mxg_sts_txt_select(const char *const *txts, const size_t *lens, int n,
                       char id[MXG_STS_ID_MAX + 1], char *why, size_t whycap);

struct mxg_sts_policy {
    enum mxg_sts_mode mode;
    uint32_t max_age;
    int n_mx;
    char mx[MXG_STS_MAX_MX][MXG_STS_NAME_MAX + 1]; /* lower-case, no trailing dot */
    int mx_dropped; /* distinct valid patterns past MXG_STS_MAX_MX, not kept: fewer MX hosts
                     * are allowed (stricter), never a weaker policy
                     * (docs/ARCHITECTURE.md §Limits) */
};

/* An empty policy (mode none, no patterns). Only the header is written: the
 * pattern slots past n_mx are never read, so 16 KB are not zeroed per use. */
void mxg_sts_policy_clear(struct mxg_sts_policy *p);
/* *dst = *src, copying only the n_mx patterns in use. */
void mxg_sts_policy_copy(struct mxg_sts_policy *dst, const struct mxg_sts_policy *src);

/* Parse a policy body (LF or CRLF lines "key: value"). Returns 0 or -1 with why. */
int mxg_sts_policy_parse(const char *body, size_t len, struct mxg_sts_policy *out, char *why,
                         size_t whycap);

/* 1 if host matches the pattern ("mx.example.com" or "*.example.com": the
 * wildcard is exactly one whole leftmost label); case-insensitive, a
 * trailing dot on either side ignored. */
int mxg_sts_pattern_match(const char *pattern, const char *host);
/* 1 if host matches any of the policy's mx patterns. */
int mxg_sts_mx_match(const struct mxg_sts_policy *p, const char *host);

/* Canonical text of a policy ("version: STSv1\nmode: enforce\nmx: ...\nmax_age: N\n"),
 * as TLSRPT's policy-string lines and for storage. Returns length written. */
size_t mxg_sts_policy_format(const struct mxg_sts_policy *p, char *out, size_t cap);

#endif
