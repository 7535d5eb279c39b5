/* policy/requirement.h — the per-host TLS requirement, computed once from
 * every policy input and used everywhere (docs/ARCHITECTURE.md §Requirement): host
 * eligibility, "STARTTLS mandatory", what tls/ must verify, how the
 * handshake is judged, the log's `verified` text, the TLSRPT policy, the
 * connection-cache / resumption key and the metric label. The SMTP client
 * (proxy/outbound) and `mxguard check` consume it; neither reads the
 * override, DANE, MTA-STS or list inputs itself.
 *
 * The rules, in the order they are applied to one MX host (docs/ARCHITECTURE.md §Decision):
 *   0. per domain: MTA-STS "unknown" (the cache could not be read) and an
 *      override mta-sts without an enforce-mode policy defer every host:
 *      451 4.7.5 (mxg_req_domain_check); a dane-only override treats an
 *      insecure null MX / NXDOMAIN as 4.7.5 (mxg_req_route_check).
 *   1. override none sets a DANE requirement aside (plaintext, warned),
 *      except a 4.4.3 address failure, which still skips the host;
 *   2. DANE unusable (bogus/failed TLSA: 4.7.5, bad addresses: 4.4.3) → skip;
 *   3. override dane-only without usable TLSA → skip 4.7.5;
 *   4. no DANE verification and an MTA-STS policy (any mode; else the
 *      policy list's entry): a host outside its mx patterns is skipped in
 *      enforce mode (4.7.5, TLSRPT mx-not-in-policy), used in testing mode;
 *   5. what the session must satisfy: DANE VERIFY → TLSA match; else
 *      override verify → WebPKI for the match names; else MTA-STS/list
 *      enforce → WebPKI for the host (testing: the same, report only);
 *      TLS is required when DANE says so (VERIFY or ENCRYPT), the WebPKI
 *      mode is enforce, or the policy forbids plaintext — never for an
 *      opportunistic delivery (leg option).
 *
 * Levels are ordered by what an active attacker can no longer do, as
 * Postfix's TLS_LEV_* (smtp_tls_policy.c):
 *   SKIP_HOST < PLAINTEXT < MAY < WEBPKI_TESTING < ENCRYPT < WEBPKI < DANE
 * WEBPKI_TESTING sits below ENCRYPT: a report-only check with plaintext
 * allowed protects nothing an ENCRYPT host does not. A testing-mode host
 * that must use TLS anyway (tls.opportunistic_level = encrypt, or only
 * unusable TLSA records) is ENCRYPT with a report-only verify set.
 * Invariant: tls_required == (level >= MXG_REQ_ENCRYPT).
 *
 * Contract: pure — no I/O, no libuv, no globals (sts.h is included for its
 * result type only). Inputs are a caller-owned struct filled once per leg
 * (mxg_req_inputs_init, mxg_req_set_sts, mxg_req_set_list); a struct
 * mxg_req is caller-owned, filled by mxg_req_for_host() and released with
 * mxg_req_clear(); its verify.tlsa and verify.names point into heap arrays
 * the req owns, but DANE record data and a DANE host's other name are
 * BORROWED from the struct mxg_dane_host passed in: keep that host alive
 * (unchanged) as long as the req. Texts are the ones
 * the log and `mxguard check` have always printed (tests grep them). */
#ifndef MXG_REQUIREMENT_H
#define MXG_REQUIREMENT_H

#include <stdio.h>

#include <jansson.h>

#include "../dane/dane.h"
#include "../tls/tls_verify.h"
#include "policy.h"
#include "stlist.h"
#include "sts.h"

enum mxg_req_level {
    MXG_REQ_SKIP_HOST = 0,  /* not usable now: fail / enh / why say why */
    MXG_REQ_PLAINTEXT,      /* STARTTLS never sent (override none) */
    MXG_REQ_MAY,            /* STARTTLS if offered; plaintext allowed, also after a failed
                               handshake (one plaintext retry) */
    MXG_REQ_WEBPKI_TESTING, /* MAY plus a WebPKI check that is only reported */
    MXG_REQ_ENCRYPT,        /* TLS required, the peer not authenticated */
    MXG_REQ_WEBPKI,         /* TLS + WebPKI chain + name (MTA-STS/list enforce, override verify) */
    MXG_REQ_DANE,           /* TLS + a usable TLSA record must match */
};
#define MXG_REQ_TLS_REQUIRED(l) ((l) >= MXG_REQ_ENCRYPT)
/* "skip-host", "plaintext", "may", "webpki-testing", "encrypt", "webpki", "dane". */
const char *mxg_req_level_name(enum mxg_req_level l);

/* Which input governs the host (mxguard_policy_decisions_total's label). */
enum mxg_req_source {
    MXG_REQ_SRC_DEFAULT = 0,  /* no policy: tls.opportunistic_level = may */
    MXG_REQ_SRC_CONFIG,       /* no policy: tls.opportunistic_level = encrypt */
    MXG_REQ_SRC_OVERRIDE,     /* tls.policy_map */
    MXG_REQ_SRC_DANE,         /* DNSSEC TLSA records (or their failure) */
    MXG_REQ_SRC_MTA_STS,      /* the domain's MTA-STS policy */
    MXG_REQ_SRC_LIST,         /* the policy list's entry (no MTA-STS policy) */
    MXG_REQ_SRC_OPPORTUNISTIC,/* this delivery is opportunistic whatever the policies say */
};
/* "default", "config", "override", "dane", "mta-sts", "list", "opportunistic". */
const char *mxg_req_source_name(enum mxg_req_source s);

/* Why a host is skipped: the leg's failure kind (the final reply's code). */
enum mxg_req_fail { MXG_REQ_FAIL_NONE = 0, MXG_REQ_FAIL_DNS /* 4.4.3 */, MXG_REQ_FAIL_TLS /* 4.7.5 */ };

/* The TLSRPT result recorded when a host is skipped. */
enum mxg_req_skip_report {
    MXG_REQ_SKIP_RPT_NONE = 0,
    MXG_REQ_SKIP_RPT_DNSSEC_INVALID,   /* dnssec-invalid, reason = why */
    MXG_REQ_SKIP_RPT_MX_NOT_IN_POLICY, /* validation-failure, reason mx-not-in-policy */
};

/* The RFC 8460 policy a TLSRPT result is recorded under. */
enum mxg_req_rpt {
    MXG_REQ_RPT_NONE = 0,     /* no-policy-found */
    MXG_REQ_RPT_NONE_LIST,    /* no-policy-found, additional-information names the list entry */
    MXG_REQ_RPT_NONE_OVERRIDE,/* no-policy-found, additional-information names the override */
    MXG_REQ_RPT_TLSA,         /* tlsa */
    MXG_REQ_RPT_STS,          /* sts, with the policy */
    MXG_REQ_RPT_STS_FAILED,   /* sts without a policy: the result is the fetch failure */
};
/* "no-policy-found", "no-policy-found-list", "no-policy-found-override", "tlsa", "sts",
 * "sts-failed". */
const char *mxg_req_rpt_name(enum mxg_req_rpt r);

/* Everything the requirement depends on, per leg (per `check`). The two large
 * results (sts, list) stay last: mxg_req_inputs_init() zeroes what precedes them. */
struct mxg_digest_memo;
struct mxg_req_inputs {
    struct mxg_policy policy;      /* row 1 / last row; reset when opportunistic */
    int opportunistic;             /* leg option: TLS "may" whatever DANE/MTA-STS/list say */
    int dane_enabled;              /* dane.enabled */
    int sts_enabled;               /* mta_sts.enabled (an MTA-STS client exists) */
    int nexthop_literal;           /* the next hop is an address literal */
    int nexthop_mx;                /* the next hop is looked up by MX */
    char domain[MXG_DNS_NAME_MAX];
    char nexthop[MXG_DNS_NAME_MAX];    /* "" = the MX hosts of domain */
    char pol_domain[MXG_DNS_NAME_MAX]; /* whose MTA-STS / list policy */
    /* borrowed, NULL = none: digests by their octets (digest_memo.h; the leg sets the
     * connection cache's after mxg_req_inputs_init, which clears it) */
    struct mxg_digest_memo *memo;
    int sts_consulted;             /* MTA-STS and the list apply to this leg */
    int sts_done;                  /* the MTA-STS answer is in (or not wanted) */
    struct mxg_sts_result sts;     /* valid when sts_done && sts_consulted && sts_enabled */
    int list_active;               /* the policy list's entry applies */
    struct mxg_stlist_policy list;
};

/* Empty inputs (no policy, nothing consulted); the large MTA-STS and list
 * results get their discriminators only (they are read behind those). */
void mxg_req_inputs_clear(struct mxg_req_inputs *in);
/* Fill in from the row-1 decision and the leg's options (domain, nexthop
 * as given: "" or NULL = MX of domain). Applies the opportunistic reset
 * (no override either) and decides whether MTA-STS and the list apply
 * (sts_consulted): only when the leg routes by MX, never opportunistic,
 * not under overrides other than mta-sts. */
void mxg_req_inputs_init(struct mxg_req_inputs *in, const struct mxg_policy *policy,
                         const char *domain, const char *nexthop, int nexthop_mx,
                         int nexthop_literal, int opportunistic, int dane_enabled,
                         int sts_enabled);
/* The MTA-STS answer arrived (copied). */
void mxg_req_set_sts(struct mxg_req_inputs *in, const struct mxg_sts_result *r);
/* Is the policy list to be looked up for pol_domain now? (MTA-STS consulted
 * and gave no policy, and no override mta-sts: the list does not count there) */
int mxg_req_list_wanted(const struct mxg_req_inputs *in);
/* The list's entry for pol_domain applies (copied). */
void mxg_req_set_list(struct mxg_req_inputs *in, const struct mxg_stlist_policy *p);
/* Are TLSA records looked up for the hosts? 0 with why ("DANE disabled
 * (dane.enabled = false)", ...) when not; the host's DANE fact is then NONE. */
int mxg_req_dane_consulted(const struct mxg_req_inputs *in, char *why, size_t cap);
/* The inputs' MTA-STS policy when one applies (outcome POLICY), else NULL
 * (for TLSRPT's policy-string and `check`). */
const struct mxg_sts_policy *mxg_req_sts_policy(const struct mxg_req_inputs *in);
/* The MTA-STS outcome for display ("no MTA-STS" when not consulted). */
const struct mxg_sts_result *mxg_req_sts_result(const struct mxg_req_inputs *in);

/* Domain-wide: 0 = hosts may be tried; < 0 = every delivery is deferred
 * now with 451 4.7.5 and text (the reply text, e.g. "MTA-STS required for
 * example.com (policy override mta-sts for example.com): its policy is in
 * mode testing"). -1: the MTA-STS policy is unknown (its cache could not
 * be read); -2: an override mta-sts without an enforce-mode policy. Call
 * once MTA-STS is known. */
int mxg_req_domain_check(const struct mxg_req_inputs *in, char *text, size_t cap);
/* The MX answer was a null MX or NXDOMAIN: 0 = take it as such; -1 = an
 * override dane-only does not believe an answer that is not DNSSEC-secure
 * (451 4.7.5, text). */
int mxg_req_route_check(const struct mxg_req_inputs *in, const char *rt_domain, int secure,
                        const char *status_name, char *text, size_t cap);

/* The requirement for one MX host. */
struct mxg_req {
    char host[MXG_DNS_NAME_MAX];
    enum mxg_req_level level;
    enum mxg_req_source source;
    int tries_tls;                 /* STARTTLS is sent when offered (0: override none) */
    int tls_required;              /* no plaintext, no plaintext retry */
    enum mxg_dane_req dane_fact;   /* what DNSSEC says of the host */
    enum mxg_dane_req dane;        /* the DANE fact as it governs (NONE under override none) */
    int dane_set_aside;            /* override none set a DANE requirement aside (warn) */
    enum mxg_sts_mode pki_mode;    /* the WebPKI mode governing the host (NONE under DANE) */
    const char *pki_name;          /* "MTA-STS" or "policy list" (static) */
    int not_in_policy;             /* testing: not in the policy's mx list, used anyway */
    struct mxg_tls_verify verify;  /* what tls/ must verify */
    char verify_names[600];        /* override verify: "a, b" for the log */
    enum mxg_req_rpt tlsrpt;       /* the TLSRPT policy of this host's sessions */
    /* SKIP_HOST only */
    enum mxg_req_fail fail;
    char enh[8];                   /* "4.4.3" or "4.7.5" */
    char why[600];                 /* the failure noted for the reply, e.g. "mx.x: DANE: ..." */
    enum mxg_req_skip_report skip_report;
    enum mxg_req_rpt skip_tlsrpt;  /* the policy skip_report is recorded under */
    /* copies of the policy's words for the log */
    int override_level;            /* mxg_policy_override(): the override's level, or -1 */
    char policy_level[16];         /* "may", "dane-only", ... */
    char policy_desc[48];          /* "override/verify" */
    char ovr_key[MXG_MAPFILE_KEY_MAX];
    char ovr_origin[300];
    unsigned char digest[32];      /* mxg_req_digest() */
    struct mxg_tls_tlsa *tlsa_own; /* heap: verify.tlsa */
    char (*names_own)[MXG_TV_NAME_MAX]; /* heap: verify.names (WebPKI) */
};

/* The requirement for host (an MX host name of the route) whose DNSSEC
 * fact is dane (decided, or NONE with why when mxg_req_dane_consulted()
 * said no). addrs_bogus: the host's address answer was DNSSEC-bogus. Never
 * fails: out of memory for the TLSA copy makes the host SKIP 4.7.5
 * (fail closed). out is cleared first (mxg_req_clear) — zero it before
 * the first use. */
void mxg_req_for_host(const struct mxg_req_inputs *in, const char *host,
                      const struct mxg_dane_host *dane, int addrs_bogus, struct mxg_req *out);
void mxg_req_clear(struct mxg_req *r);
/* A heap requirement ready for mxg_req_for_host() (which zeroes it whole:
 * it is not zeroed twice); NULL when out of memory. Release with
 * mxg_req_clear() and free(). */
struct mxg_req *mxg_req_new(void);

/* mxguard_policy_decisions_total's label: "dane", "mta-sts", "mta-sts-testing",
 * "list", "list-testing", "config", "opportunistic". */
const char *mxg_req_metric_label(const struct mxg_req *r);

/* SHA-256 over the requirement (cf. Postfix smtp_key.c): host, policy
 * (source, level, override key and match list; under an override or a
 * next hop also domain and next hop), opportunistic, the DANE fact with
 * the whole usable TLSA set, the WebPKI mode with the MTA-STS id and mx
 * patterns or the list's mxs, and whether TLS is required. Two hosts
 * with equal digests demand the same of a peer; a failed digest is random
 * (matches nothing). Also stored in r->digest by mxg_req_for_host().
 * Taken over one serialisation of all of these (integers fixed-width,
 * texts and records behind their lengths), through in->memo: a repeat of
 * the same octets (the next message to the same host under the same
 * policy and TLSA records) is not hashed again; any change of any input
 * changes the octets, so the memo never needs invalidating. */
void mxg_req_digest(const struct mxg_req_inputs *in, const struct mxg_req *r,
                    const struct mxg_dane_host *dane, unsigned char out[32]);

/* ---- judging the session (the SMTP client) ---- */

/* STARTTLS is required but not offered: the failure to note (4.7.5). */
void mxg_req_no_starttls(const struct mxg_req *r, const char *label, char *out, size_t cap);
/* The `verified` text of a plaintext session ("none (plaintext)", or
 * "none (plaintext: policy override none)"). */
const char *mxg_req_plaintext_text(const struct mxg_req *r);

/* A failed handshake whose certificate verification failed (verify_ok 0):
 * 1 when the requirement rejects the host for it (out: the failure to
 * note; the TLSRPT result is the verification error), 0 when it is an
 * ordinary TLS failure (plaintext retry unless tls_required). no_match:
 * the error was "no TLSA record matched". */
int mxg_req_verify_failed(const struct mxg_req *r, const char *label, int no_match,
                          const char *verify_error, char *out, size_t cap);

/* A completed handshake, judged. */
enum mxg_req_report { MXG_REQ_REPORT_SUCCESS = 0, MXG_REQ_REPORT_TLSA_INVALID,
                      MXG_REQ_REPORT_VERIFY_ERROR /* the X.509 error, report only */ };
struct mxg_req_session {
    char verified[120];            /* the log's `peer ...` text */
    enum mxg_req_report report;    /* the one TLSRPT result of the session */
    int warn_testing;              /* testing mode, WebPKI failed: delivered anyway, warn */
};
/* resumed: the session was resumed; verify_ok / verify_error: the X.509
 * result; matched: mxg_tls_verify_matched() (DANE). */
void mxg_req_session_ok(const struct mxg_req *r, int resumed, int verify_ok,
                        const char *verify_error, const char *matched, struct mxg_req_session *s);

/* ---- TLSRPT ---- */

/* The policy a result is recorded under. dane: the host's DANE fact (NULL:
 * none known, e.g. a bogus MX RRset); pki: the result is about the WebPKI
 * policy itself (mx-not-in-policy); dnssec_invalid: the result type is
 * dnssec-invalid (always tlsa). */
enum mxg_req_rpt mxg_req_tlsrpt_policy(const struct mxg_req_inputs *in,
                                       const struct mxg_dane_host *dane, int pki,
                                       int dnssec_invalid);
/* additional-information for NONE_LIST / NONE_OVERRIDE ("" otherwise). */
void mxg_req_tlsrpt_addl(const struct mxg_req_inputs *in, enum mxg_req_rpt p, char *out,
                         size_t cap);
/* STS_FAILED: the result type (sts-policy-fetch-error, ...) and reason. */
void mxg_req_tlsrpt_sts_failure(const struct mxg_req_inputs *in, const char **rtype,
                                const char **reason);

/* ---- describing (mxguard check) ---- */

/* One line: "host=H level=L source=S verify=V enforce=0|1 tls=0|1 skip=0|1
 * enh=E tlsrpt=T metric=M" (enh "-" when not skipped) — the form the
 * delivery log's "requirement" line and check's JSON share. */
void mxg_req_summary(const struct mxg_req *r, char *out, size_t cap);
/* check's per-host requirement lines ("    requirement: ...", the MTA-STS
 * or list match line), as `mxguard check` has always printed them. */
void mxg_req_describe(const struct mxg_req_inputs *in, const struct mxg_req *r, FILE *out);
/* check's domain-wide policy line ("policy for every host: ...", "policy
 * for hosts without DANE: MTA-STS enforce", ...). */
void mxg_req_describe_domain(const struct mxg_req_inputs *in, FILE *out);
/* The same as a JSON object with stable field names: host, level, source,
 * tls_required, starttls, verify {how, enforce, sni, names[], tlsa}, skip,
 * enh, why, tlsrpt, metric, not_in_policy, dane, summary (mxg_req_summary). NULL when
 * out of memory. */
json_t *mxg_req_json(const struct mxg_req *r);

#endif
