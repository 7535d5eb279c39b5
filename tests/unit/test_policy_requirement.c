/* tests/unit/test_policy_requirement.c — the per-host TLS requirement
 * (policy/requirement.h) as ONE table: rows {override, floor, opportunistic,
 * DANE fact, MTA-STS outcome and mode, host in the policy's mx patterns?,
 * list entry} → {level, source, enforce, skip, reply/enhanced code, TLSRPT
 * policy and result type, metric label, verified text}. The rows cover every
 * policy row of README's "What a client sees" table (DANE 4.7.5, DNS 4.4.3,
 * MTA-STS enforce 4.7.5), the overrides of policy/override.h, the list, and
 * opportunistic deliveries. The harness does what the SMTP client does:
 * DANE is looked up only when mxg_req_dane_consulted() says so, the list
 * only when mxg_req_list_wanted() says so. Then: the cache-key digest
 * differs whenever the requirement differs, with and without the digest
 * memo (policy/digest_memo.h) in the inputs: a memo answer is the digest
 * itself, and a changed TLSA record or MTA-STS id is seen at once. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "policy/digest_memo.h"
#include "policy/override.h"
#include "policy/policy.h"
#include "policy/requirement.h"

#define HOST "mx.dom.test"

enum dk { D_NONE, D_VERIFY, D_VERIFY_CNAME, D_ENCRYPT, D_BOGUS, D_ADDR, D_ADDR_BOGUS };
enum sk { S_NONE, S_ENFORCE, S_TESTING, S_MODE_NONE, S_FAILED, S_UNKNOWN, S_DISABLED };
enum lk { L_NONE, L_ENFORCE, L_TESTING };

struct row {
    const char *name;
    /* inputs */
    const char *ovr;      /* "none", "verify match=nexthop", ... or NULL */
    int floor_encrypt;    /* tls.opportunistic_level = encrypt */
    int opp;              /* the delivery is opportunistic (leg option) */
    enum dk dane;         /* what DNSSEC says of the host (when looked up) */
    enum sk sts;
    int listed;           /* the host is in the policy's (MTA-STS or list) mx patterns */
    enum lk list;
    /* expected */
    const char *level;
    const char *source;
    int enforce;          /* verification failure fails the host */
    const char *verify;   /* none | dane | names */
    int skip;
    const char *enh;      /* the 451 reply's code if the host fails: skip, domain, or a TLS
                             failure when TLS is required; "-": falls back to plaintext */
    const char *tlsrpt;   /* the policy of the TLSRPT result */
    const char *result;   /* its result type: skip's, or a good session's */
    const char *metric;
    const char *verified; /* the log's peer text after a good handshake (NULL: skip) */
};

#define NOVER NULL
static const struct row rows[] = {
    /* -------- no override: DANE (README: DANE rows, 4.7.5 / 4.4.3) */
    {"dane verify", NULL, 0, 0, D_VERIFY, S_NONE, 0, L_NONE,
     "dane", "dane", 1, "dane", 0, "4.7.5", "tlsa", "success", "dane",
     "DANE (TLSA 3 1 1 matched at depth 0, base mx.dom.test)"},
    {"dane verify, CNAME'd", NULL, 0, 0, D_VERIFY_CNAME, S_NONE, 0, L_NONE,
     "dane", "dane", 1, "dane", 0, "4.7.5", "tlsa", "success", "dane",
     "DANE (TLSA 3 1 1 matched at depth 0, base real.dom.test)"},
    {"dane encrypt (only unusable)", NULL, 0, 0, D_ENCRYPT, S_NONE, 0, L_NONE,
     "encrypt", "dane", 0, "none", 0, "4.7.5", "tlsa", "tlsa-invalid", "dane",
     "unauthenticated (only unusable TLSA)"},
    {"tlsa bogus", NULL, 0, 0, D_BOGUS, S_NONE, 0, L_NONE,
     "skip-host", "dane", 0, "none", 1, "4.7.5", "tlsa", "dnssec-invalid", "dane", NOVER},
    {"addresses indeterminate", NULL, 0, 0, D_ADDR, S_NONE, 0, L_NONE,
     "skip-host", "dane", 0, "none", 1, "4.4.3", "-", "-", "dane", NOVER},
    {"addresses bogus", NULL, 0, 0, D_ADDR_BOGUS, S_NONE, 0, L_NONE,
     "skip-host", "dane", 0, "none", 1, "4.4.3", "tlsa", "dnssec-invalid", "dane", NOVER},
    {"no policy at all", NULL, 0, 0, D_NONE, S_NONE, 0, L_NONE,
     "may", "default", 0, "none", 0, "-", "no-policy-found", "success", "opportunistic",
     "unauthenticated (opportunistic)"},
    {"floor encrypt", NULL, 1, 0, D_NONE, S_NONE, 0, L_NONE,
     "encrypt", "config", 0, "none", 0, "4.7.5", "no-policy-found", "success", "config",
     "unauthenticated (opportunistic)"},
    /* -------- MTA-STS (README: MTA-STS enforce row, 4.7.5) */
    {"sts enforce, listed", NULL, 0, 0, D_NONE, S_ENFORCE, 1, L_NONE,
     "webpki", "mta-sts", 1, "names", 0, "4.7.5", "sts", "success", "mta-sts",
     "WebPKI mx.dom.test (MTA-STS enforce)"},
    {"sts enforce, not listed", NULL, 0, 0, D_NONE, S_ENFORCE, 0, L_NONE,
     "skip-host", "mta-sts", 0, "none", 1, "4.7.5", "sts", "mx-not-in-policy", "mta-sts", NOVER},
    {"sts testing, listed", NULL, 0, 0, D_NONE, S_TESTING, 1, L_NONE,
     "webpki-testing", "mta-sts", 0, "names", 0, "-", "sts", "success", "mta-sts-testing",
     "WebPKI mx.dom.test (MTA-STS testing)"},
    {"sts testing, not listed", NULL, 0, 0, D_NONE, S_TESTING, 0, L_NONE,
     "webpki-testing", "mta-sts", 0, "names", 0, "-", "sts", "mx-not-in-policy",
     "mta-sts-testing", "WebPKI mx.dom.test (MTA-STS testing)"},
    {"sts testing, floor encrypt", NULL, 1, 0, D_NONE, S_TESTING, 1, L_NONE,
     "encrypt", "mta-sts", 0, "names", 0, "4.7.5", "sts", "success", "mta-sts-testing",
     "WebPKI mx.dom.test (MTA-STS testing)"},
    {"sts mode none", NULL, 0, 0, D_NONE, S_MODE_NONE, 0, L_ENFORCE,
     "may", "default", 0, "none", 0, "-", "no-policy-found", "success", "opportunistic",
     "unauthenticated (opportunistic)"},
    {"sts fetch failed", NULL, 0, 0, D_NONE, S_FAILED, 0, L_NONE,
     "may", "default", 0, "none", 0, "-", "sts-failed", "sts-policy-fetch-error",
     "opportunistic", "unauthenticated (opportunistic)"},
    {"sts unknown (cache unreadable)", NULL, 0, 0, D_NONE, S_UNKNOWN, 1, L_NONE,
     "skip-host", "-", 0, "-", 1, "4.7.5", "-", "-", "-", NOVER},
    {"sts enforce, dane verify wins", NULL, 0, 0, D_VERIFY, S_ENFORCE, 0, L_NONE,
     "dane", "dane", 1, "dane", 0, "4.7.5", "tlsa", "success", "dane",
     "DANE (TLSA 3 1 1 matched at depth 0, base mx.dom.test)"},
    {"sts enforce + dane encrypt", NULL, 0, 0, D_ENCRYPT, S_ENFORCE, 1, L_NONE,
     "webpki", "dane", 1, "names", 0, "4.7.5", "tlsa", "tlsa-invalid", "dane",
     "unauthenticated (only unusable TLSA)"},
    {"sts disabled, list enforce", NULL, 0, 0, D_NONE, S_DISABLED, 1, L_ENFORCE,
     "webpki", "list", 1, "names", 0, "4.7.5", "no-policy-found-list", "success", "list",
     "WebPKI mx.dom.test (policy list enforce)"},
    /* -------- the policy list */
    {"list enforce, listed", NULL, 0, 0, D_NONE, S_NONE, 1, L_ENFORCE,
     "webpki", "list", 1, "names", 0, "4.7.5", "no-policy-found-list", "success", "list",
     "WebPKI mx.dom.test (policy list enforce)"},
    {"list enforce, not listed", NULL, 0, 0, D_NONE, S_NONE, 0, L_ENFORCE,
     "skip-host", "list", 0, "none", 1, "4.7.5", "no-policy-found-list", "mx-not-in-policy",
     "list", NOVER},
    {"list testing, listed", NULL, 0, 0, D_NONE, S_NONE, 1, L_TESTING,
     "webpki-testing", "list", 0, "names", 0, "-", "no-policy-found-list", "success",
     "list-testing", "WebPKI mx.dom.test (policy list testing)"},
    {"list behind an sts policy", NULL, 0, 0, D_NONE, S_TESTING, 1, L_ENFORCE,
     "webpki-testing", "mta-sts", 0, "names", 0, "-", "sts", "success", "mta-sts-testing",
     "WebPKI mx.dom.test (MTA-STS testing)"},
    {"list after an sts fetch failure", NULL, 0, 0, D_NONE, S_FAILED, 1, L_ENFORCE,
     "webpki", "list", 1, "names", 0, "4.7.5", "sts-failed", "sts-policy-fetch-error", "list",
     "WebPKI mx.dom.test (policy list enforce)"},
    /* -------- overrides (policy/override.h) */
    {"override none, dane host", "none", 0, 0, D_VERIFY, S_ENFORCE, 0, L_ENFORCE,
     "plaintext", "override", 0, "none", 0, "-", "no-policy-found-override", "-", "config",
     NOVER},
    {"override none, tlsa bogus", "none", 0, 0, D_BOGUS, S_NONE, 0, L_NONE,
     "plaintext", "override", 0, "none", 0, "-", "no-policy-found-override", "-", "config",
     NOVER},
    {"override none, addresses bogus", "none", 0, 0, D_ADDR_BOGUS, S_NONE, 0, L_NONE,
     "skip-host", "dane", 0, "none", 1, "4.4.3", "tlsa", "dnssec-invalid", "dane", NOVER},
    {"override may, dane host", "may", 1, 0, D_VERIFY, S_ENFORCE, 0, L_NONE,
     "dane", "dane", 1, "dane", 0, "4.7.5", "tlsa", "success", "dane",
     "DANE (TLSA 3 1 1 matched at depth 0, base mx.dom.test)"},
    {"override may, floor encrypt", "may", 1, 0, D_NONE, S_ENFORCE, 0, L_NONE,
     "may", "override", 0, "none", 0, "-", "no-policy-found-override", "success", "config",
     "unauthenticated (opportunistic)"},
    {"override dane, no tlsa", "dane", 0, 0, D_NONE, S_ENFORCE, 0, L_NONE,
     "may", "override", 0, "none", 0, "-", "no-policy-found-override", "success", "config",
     "unauthenticated (opportunistic)"},
    {"override dane, no tlsa, floor encrypt", "dane", 1, 0, D_NONE, S_NONE, 0, L_NONE,
     "encrypt", "override", 0, "none", 0, "4.7.5", "no-policy-found-override", "success",
     "config", "unauthenticated (opportunistic)"},
    {"override dane-only, dane host", "dane-only", 0, 0, D_VERIFY, S_NONE, 0, L_NONE,
     "dane", "dane", 1, "dane", 0, "4.7.5", "tlsa", "success", "dane",
     "DANE (TLSA 3 1 1 matched at depth 0, base mx.dom.test)"},
    {"override dane-only, no tlsa", "dane-only", 0, 0, D_NONE, S_ENFORCE, 1, L_NONE,
     "skip-host", "override", 0, "none", 1, "4.7.5", "-", "-", "config", NOVER},
    {"override dane-only, only unusable", "dane-only", 0, 0, D_ENCRYPT, S_NONE, 0, L_NONE,
     "skip-host", "override", 0, "none", 1, "4.7.5", "-", "-", "config", NOVER},
    {"override mta-sts, enforce", "mta-sts", 0, 0, D_VERIFY, S_ENFORCE, 1, L_NONE,
     "webpki", "mta-sts", 1, "names", 0, "4.7.5", "sts", "success", "mta-sts",
     "WebPKI mx.dom.test (MTA-STS enforce)"},
    {"override mta-sts, testing", "mta-sts", 0, 0, D_NONE, S_TESTING, 1, L_NONE,
     "skip-host", "-", 0, "-", 1, "4.7.5", "-", "-", "-", NOVER},
    {"override mta-sts, list only", "mta-sts", 0, 0, D_NONE, S_NONE, 1, L_ENFORCE,
     "skip-host", "-", 0, "-", 1, "4.7.5", "-", "-", "-", NOVER},
    {"override verify", "verify match=hostname:dot-nexthop", 0, 0, D_VERIFY, S_ENFORCE, 0,
     L_NONE, "webpki", "override", 1, "names", 0, "4.7.5", "no-policy-found-override", "success",
     "config", "WebPKI mx.dom.test (policy override verify, match mx.dom.test, .dom.test)"},
    {"override encrypt", "encrypt", 0, 0, D_VERIFY, S_ENFORCE, 0, L_ENFORCE,
     "encrypt", "override", 0, "none", 0, "4.7.5", "no-policy-found-override", "success",
     "config", "unauthenticated (policy override encrypt)"},
    /* -------- opportunistic deliveries (DSNs, TLSRPT reports): nothing applies */
    {"opportunistic, dane + sts", "dane-only", 1, 1, D_VERIFY, S_ENFORCE, 0, L_ENFORCE,
     "may", "opportunistic", 0, "none", 0, "-", "no-policy-found", "success", "opportunistic",
     "unauthenticated (opportunistic)"},
};
#define N_ROWS (sizeof rows / sizeof rows[0])

static uint8_t rec_data[32] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
                               17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32};
static uint8_t bad_data[3] = {9, 9, 9};

/* The DNSSEC fact for the host, as dane/dane.c would give it. */
static void make_dane(enum dk k, struct mxg_dane_host *d, struct mxg_tlsa_rr *rec,
                      struct mxg_tlsa_rr *bad)
{
    memset(d, 0, sizeof *d);
    *rec = (struct mxg_tlsa_rr){3, 1, 1, sizeof rec_data, rec_data};
    *bad = (struct mxg_tlsa_rr){1, 1, 1, sizeof bad_data, bad_data};
    switch (k) {
    case D_NONE:
        snprintf(d->why, sizeof d->why, "no DANE: no TLSA records (secure denial)");
        break;
    case D_VERIFY:
    case D_VERIFY_CNAME:
        d->req = MXG_DANE_VERIFY;
        snprintf(d->base, sizeof d->base, "%s", k == D_VERIFY ? HOST : "real.dom.test");
        snprintf(d->other, sizeof d->other, "%s", k == D_VERIFY ? "" : HOST);
        d->rr = rec;
        d->n_usable = d->n_total = 1;
        snprintf(d->why, sizeof d->why, "DANE: 1 usable TLSA record(s)");
        break;
    case D_ENCRYPT:
        d->req = MXG_DANE_ENCRYPT;
        snprintf(d->base, sizeof d->base, "%s", HOST);
        d->all = bad;
        d->n_all = d->n_total = 1;
        snprintf(d->why, sizeof d->why, "DANE: only unusable TLSA records");
        break;
    case D_BOGUS:
        mxg_dane_host_unusable(d, MXG_DANE_FAIL_TLSA, "x");
        snprintf(d->why, sizeof d->why, "DANE: TLSA lookup for _25._tcp." HOST " is bogus");
        break;
    case D_ADDR:
    case D_ADDR_BOGUS:
        mxg_dane_host_unusable(d, MXG_DANE_FAIL_ADDR, "x");
        snprintf(d->why, sizeof d->why, "address lookup for " HOST " incomplete or bogus");
        break;
    }
}

struct result {
    int domain_fail;
    struct mxg_req req;
    char level[24], source[24], verify[16], enh[8], tlsrpt[40], rtype[40], metric[24];
    char verified[120];
};

/* The digest memo run_row puts in the inputs (NULL: none). */
static struct mxg_digest_memo *row_memo;

/* Run one row through the module the way the SMTP client does. */
static void run_row(const struct row *w, const char *sts_id, struct mxg_req_inputs *in,
                    struct mxg_dane_host *d, struct result *res)
{
    struct mxg_config cfg;
    mxg_config_defaults(&cfg);
    cfg.tls_level = w->floor_encrypt ? MXG_TLS_LEVEL_ENCRYPT : MXG_TLS_LEVEL_MAY;
    struct mxg_override_map *map = NULL;
    char err[300], line[300];
    if (w->ovr) {
        snprintf(line, sizeof line, "dom.test %s\n", w->ovr);
        assert_int_equal(mxg_override_map_parse(line, strlen(line), "map", &map, err, sizeof err),
                         0);
    }
    struct mxg_policy pol;
    mxg_policy_decide(&cfg, map, "dom.test", NULL, &pol);
    mxg_override_map_free(map);
    mxg_req_inputs_init(in, &pol, "dom.test", NULL, 0, 0, w->opp, 1, w->sts != S_DISABLED);
    in->memo = row_memo;
    if (in->sts_consulted && w->sts != S_DISABLED) {
        struct mxg_sts_result s;
        memset(&s, 0, sizeof s);
        snprintf(s.id, sizeof s.id, "%s", sts_id);
        switch (w->sts) {
        case S_ENFORCE:
        case S_TESTING:
        case S_MODE_NONE:
            s.outcome = MXG_STS_POLICY;
            s.policy.mode = w->sts == S_ENFORCE   ? MXG_STS_MODE_ENFORCE
                            : w->sts == S_TESTING ? MXG_STS_MODE_TESTING
                                                  : MXG_STS_MODE_NONE;
            s.policy.n_mx = 1;
            snprintf(s.policy.mx[0], sizeof s.policy.mx[0], "%s",
                     w->listed ? "*.dom.test" : "other.example");
            break;
        case S_FAILED:
            s.outcome = MXG_STS_FAILED;
            s.failure = MXG_STS_FAIL_FETCH;
            snprintf(s.why, sizeof s.why, "HTTP 404");
            break;
        case S_UNKNOWN:
            s.outcome = MXG_STS_UNKNOWN;
            snprintf(s.why, sizeof s.why, "cache unreadable");
            break;
        default:
            s.outcome = MXG_STS_NO_POLICY;
            break;
        }
        mxg_req_set_sts(in, &s);
    }
    if (w->list != L_NONE && mxg_req_list_wanted(in)) {
        struct mxg_stlist_policy lp;
        memset(&lp, 0, sizeof lp);
        lp.mode = w->list == L_ENFORCE ? MXG_STS_MODE_ENFORCE : MXG_STS_MODE_TESTING;
        lp.n_mxs = 1;
        snprintf(lp.mxs[0], sizeof lp.mxs[0], "%s", w->listed ? ".dom.test" : "other.example");
        mxg_req_set_list(in, &lp);
    }
    memset(res, 0, sizeof *res);
    char text[600];
    if (mxg_req_domain_check(in, text, sizeof text) < 0) {
        res->domain_fail = 1;
        snprintf(res->level, sizeof res->level, "skip-host");
        snprintf(res->enh, sizeof res->enh, "4.7.5");
        strcpy(res->source, "-"), strcpy(res->verify, "-"), strcpy(res->tlsrpt, "-");
        strcpy(res->rtype, "-"), strcpy(res->metric, "-");
        return;
    }
    static struct mxg_tlsa_rr rec, bad;
    char why[240];
    if (mxg_req_dane_consulted(in, why, sizeof why)) {
        make_dane(w->dane, d, &rec, &bad);
    } else {
        memset(d, 0, sizeof *d);
        snprintf(d->why, sizeof d->why, "%s", why);
    }
    struct mxg_req *r = &res->req;
    mxg_req_for_host(in, HOST, d, w->dane == D_ADDR_BOGUS, r);
    int skip = r->level == MXG_REQ_SKIP_HOST;
    snprintf(res->level, sizeof res->level, "%s", mxg_req_level_name(r->level));
    snprintf(res->source, sizeof res->source, "%s", mxg_req_source_name(r->source));
    snprintf(res->verify, sizeof res->verify, "%s", mxg_tls_verify_how_name(r->verify.how));
    snprintf(res->metric, sizeof res->metric, "%s", mxg_req_metric_label(r));
    snprintf(res->enh, sizeof res->enh, "%s",
             skip ? r->enh : r->tls_required ? "4.7.5" : "-");
    if (skip) {
        snprintf(res->tlsrpt, sizeof res->tlsrpt, "%s",
                 r->skip_report ? mxg_req_rpt_name(r->skip_tlsrpt) : "-");
        snprintf(res->rtype, sizeof res->rtype, "%s",
                 r->skip_report == MXG_REQ_SKIP_RPT_DNSSEC_INVALID     ? "dnssec-invalid"
                 : r->skip_report == MXG_REQ_SKIP_RPT_MX_NOT_IN_POLICY ? "mx-not-in-policy"
                                                                       : "-");
        return;
    }
    snprintf(res->tlsrpt, sizeof res->tlsrpt, "%s", mxg_req_rpt_name(r->tlsrpt));
    if (!r->tries_tls) {
        snprintf(res->rtype, sizeof res->rtype, "-");
        return;
    }
    struct mxg_req_session s;
    mxg_req_session_ok(r, 0, 1, "ok", "TLSA 3 1 1 matched at depth 0", &s);
    snprintf(res->verified, sizeof res->verified, "%s", s.verified);
    const char *rtype = s.report == MXG_REQ_REPORT_TLSA_INVALID ? "tlsa-invalid" : "success";
    if (s.report == MXG_REQ_REPORT_SUCCESS && r->not_in_policy)
        rtype = "mx-not-in-policy";
    if (r->tlsrpt == MXG_REQ_RPT_STS_FAILED) {
        const char *reason;
        mxg_req_tlsrpt_sts_failure(in, &rtype, &reason);
    }
    snprintf(res->rtype, sizeof res->rtype, "%s", rtype);
}

static void test_table(void **state)
{
    (void)state;
    int bad = 0;
    for (size_t i = 0; i < N_ROWS; i++) {
        const struct row *w = &rows[i];
        struct mxg_req_inputs *in = calloc(1, sizeof *in);
        struct mxg_dane_host d;
        struct result res;
        assert_non_null(in);
        run_row(w, "id1", in, &d, &res);
        char got[600], want[600];
        snprintf(got, sizeof got, "level=%s source=%s enforce=%d verify=%s skip=%d enh=%s "
                 "tlsrpt=%s result=%s metric=%s verified=%s", res.level, res.source,
                 res.req.verify.enforce, res.verify, res.domain_fail || res.req.level == 0,
                 res.enh, res.tlsrpt, res.rtype, res.metric,
                 res.verified[0] ? res.verified : "-");
        snprintf(want, sizeof want, "level=%s source=%s enforce=%d verify=%s skip=%d enh=%s "
                 "tlsrpt=%s result=%s metric=%s verified=%s", w->level, w->source, w->enforce,
                 w->verify, w->skip, w->enh, w->tlsrpt, w->result, w->metric,
                 w->verified ? w->verified : "-");
        if (strcmp(got, want) != 0) {
            print_message("row \"%s\":\n  want %s\n  got  %s\n", w->name, want, got);
            bad++;
        }
        /* invariants every row must keep */
        if (!res.domain_fail) {
            const struct mxg_req *r = &res.req;
            if (r->level != MXG_REQ_SKIP_HOST &&
                MXG_REQ_TLS_REQUIRED(r->level) != (r->tls_required != 0)) {
                print_message("row \"%s\": tls_required %d at level %s\n", w->name,
                              r->tls_required, res.level);
                bad++;
            }
            if (r->verify.how == MXG_TV_DANE && (r->verify.n_tlsa != 1 || !r->verify.tlsa ||
                                                 r->verify.tlsa[0].data != rec_data)) {
                print_message("row \"%s\": the TLSA set is not handed to tls/\n", w->name);
                bad++;
            }
        }
        mxg_req_clear(&res.req);
        free(in);
    }
    assert_int_equal(bad, 0);
}

/* The requirement as far as a peer is concerned: what a cached connection
 * or a resumed session must have been verified under. */
static void identity(const struct mxg_req *r, char *out, size_t cap)
{
    size_t l = (size_t)snprintf(out, cap, "%d|%d|%d|%d|%d|%d|%s|%d|", r->level, r->verify.how,
                                r->verify.enforce, r->tls_required, r->tries_tls, r->dane,
                                r->verify.sni, r->verify.n_tlsa);
    for (int i = 0; i < r->verify.n_names && l < cap; i++)
        l += (size_t)snprintf(out + l, cap - l, "%s,", r->verify.names[i]);
}

/* Every row's digest: stable, changed by the MTA-STS id when that policy
 * governs and by the TLSA data of a DANE host, distinct between different
 * requirements. ref: the digests without a memo (filled when fill), which
 * the memo's answers must equal. */
static void digest_checks(unsigned char ref[][32], int fill)
{
    static char ids[N_ROWS][300];
    static unsigned char dg[N_ROWS][32];
    int bad = 0;
    for (size_t i = 0; i < N_ROWS; i++) {
        struct mxg_req_inputs *in = calloc(1, sizeof *in);
        struct mxg_dane_host d;
        struct result res, again;
        assert_non_null(in);
        run_row(&rows[i], "id1", in, &d, &res);
        if (res.domain_fail) {
            ids[i][0] = 0;
            free(in);
            continue;
        }
        identity(&res.req, ids[i], sizeof ids[i]);
        memcpy(dg[i], res.req.digest, 32);
        if (fill)
            memcpy(ref[i], dg[i], 32);
        else if (memcmp(ref[i], dg[i], 32) != 0) {
            print_message("row \"%s\": the memo's digest is not the digest\n", rows[i].name);
            bad++;
        }
        /* the same inputs: the same key */
        run_row(&rows[i], "id1", in, &d, &again);
        if (memcmp(again.req.digest, dg[i], 32) != 0) {
            print_message("row \"%s\": digest not stable\n", rows[i].name);
            bad++;
        }
        mxg_req_clear(&again.req);
        /* a new MTA-STS policy id: a new key when the policy governs */
        run_row(&rows[i], "id2", in, &d, &again);
        int sts_governs = res.req.pki_mode != MXG_STS_MODE_NONE && in->sts.outcome == MXG_STS_POLICY;
        if (sts_governs == !memcmp(again.req.digest, dg[i], 32)) {
            print_message("row \"%s\": sts id %s the key\n", rows[i].name,
                          sts_governs ? "does not change" : "changes");
            bad++;
        }
        mxg_req_clear(&again.req);
        /* another TLSA record (same length, one octet changed): another key for a DANE
         * host, at once, and back to the first key when the record is back */
        if (res.req.verify.how == MXG_TV_DANE) {
            rec_data[31] ^= 0xff;
            struct mxg_dane_host d2;
            run_row(&rows[i], "id1", in, &d2, &again);
            rec_data[31] ^= 0xff;
            if (!memcmp(again.req.digest, dg[i], 32)) {
                print_message("row \"%s\": TLSA data not in the key\n", rows[i].name);
                bad++;
            }
            mxg_req_clear(&again.req);
            run_row(&rows[i], "id1", in, &d2, &again);
            if (memcmp(again.req.digest, dg[i], 32) != 0) {
                print_message("row \"%s\": the first TLSA data, not the first key\n",
                              rows[i].name);
                bad++;
            }
            mxg_req_clear(&again.req);
        }
        mxg_req_clear(&res.req);
        free(in);
    }
    for (size_t i = 0; i < N_ROWS; i++)
        for (size_t j = i + 1; j < N_ROWS; j++)
            if (ids[i][0] && ids[j][0] && strcmp(ids[i], ids[j]) != 0 &&
                memcmp(dg[i], dg[j], 32) == 0) {
                print_message("rows \"%s\" and \"%s\": different requirements, one key\n",
                              rows[i].name, rows[j].name);
                bad++;
            }
    assert_int_equal(bad, 0);
}

static unsigned char plain_digests[N_ROWS][32];

static void test_digest(void **state)
{
    (void)state;
    row_memo = NULL;
    digest_checks(plain_digests, 1);
}

/* The same through a digest memo (as the SMTP client runs it): the same
 * digests, repeats answered by the memo, every change seen at once. */
static void test_digest_memo(void **state)
{
    (void)state;
    row_memo = mxg_digest_memo_new(64, 4096);
    assert_non_null(row_memo);
    digest_checks(plain_digests, 0);
    struct mxg_digest_memo_stats st;
    mxg_digest_memo_stats(row_memo, &st);
    assert_true(st.hits > 0);
    assert_true(st.misses > 0);
    mxg_digest_memo_free(row_memo);
    row_memo = NULL;
}

/* The row called name. */
static const struct row *row_named(const char *name)
{
    for (size_t i = 0; i < N_ROWS; i++)
        if (strcmp(rows[i].name, name) == 0)
            return &rows[i];
    fail_msg("no row %s", name);
    return NULL;
}

/* The judging texts the log and the final reply carry. */
static void test_judging_texts(void **state)
{
    (void)state;
    struct mxg_req_inputs *in = calloc(1, sizeof *in);
    struct mxg_dane_host d;
    struct result res;
    char out[400];
    assert_non_null(in);
    run_row(row_named("dane verify"), "id1", in, &d, &res); /* dane verify */
    assert_int_equal(mxg_req_verify_failed(&res.req, "mx[1.2.3.4]", 1, "x", out, sizeof out), 1);
    assert_string_equal(out, "DANE: no TLSA record matched mx[1.2.3.4]");
    mxg_req_no_starttls(&res.req, "mx[1.2.3.4]", out, sizeof out);
    assert_string_equal(out, "DANE: mx[1.2.3.4] offers no STARTTLS (dane)");
    struct mxg_req_session s;
    mxg_req_session_ok(&res.req, 1, 1, "ok", "unused", &s);
    assert_string_equal(s.verified, "DANE (resumed TLS session, base mx.dom.test)");
    mxg_req_clear(&res.req);

    run_row(row_named("sts enforce, listed"), "id1", in, &d, &res); /* sts enforce, listed */
    assert_int_equal(mxg_req_verify_failed(&res.req, "mx[1.2.3.4]", 0, "expired", out,
                                           sizeof out), 1);
    assert_string_equal(out, "MTA-STS: certificate of mx[1.2.3.4] is not valid for mx.dom.test: "
                             "expired");
    mxg_req_no_starttls(&res.req, "mx[1.2.3.4]", out, sizeof out);
    assert_string_equal(out, "MTA-STS: mx[1.2.3.4] offers no STARTTLS (mode enforce)");
    mxg_req_clear(&res.req);

    run_row(row_named("sts testing, listed"), "id1", in, &d, &res); /* sts testing: never rejects, reports */
    assert_int_equal(mxg_req_verify_failed(&res.req, "mx[1.2.3.4]", 0, "expired", out,
                                           sizeof out), 0);
    mxg_req_session_ok(&res.req, 0, 0, "expired", "", &s);
    assert_string_equal(s.verified, "unauthenticated: MTA-STS testing, WebPKI failed: expired");
    assert_int_equal(s.report, MXG_REQ_REPORT_VERIFY_ERROR);
    assert_int_equal(s.warn_testing, 1);
    mxg_req_clear(&res.req);

    run_row(row_named("floor encrypt"), "id1", in, &d, &res); /* floor encrypt */
    mxg_req_no_starttls(&res.req, "mx[1.2.3.4]", out, sizeof out);
    assert_string_equal(out, "mx[1.2.3.4]: STARTTLS not offered, policy config/encrypt requires "
                             "TLS");
    mxg_req_session_ok(&res.req, 1, 1, "ok", "", &s);
    assert_string_equal(s.verified, "unauthenticated (opportunistic) (resumed TLS session)");
    mxg_req_clear(&res.req);

    /* override verify: its own failure text */
    run_row(row_named("override verify"), "id1", in, &d, &res);
    assert_int_equal(mxg_req_verify_failed(&res.req, "mx[1.2.3.4]", 0, "bad name", out,
                                           sizeof out), 1);
    assert_string_equal(out, "policy override verify for dom.test: certificate of mx[1.2.3.4] is "
                             "not valid for mx.dom.test, .dom.test: bad name");
    mxg_req_clear(&res.req);

    /* the skip texts go into the final reply */
    run_row(row_named("sts enforce, not listed"), "id1", in, &d, &res); /* sts enforce, not listed */
    assert_string_equal(res.req.why,
                        "MTA-STS: mx.dom.test is not an MX host allowed by the policy of dom.test");
    mxg_req_clear(&res.req);
    char text[600];
    run_row(row_named("override mta-sts, testing"), "id1", in, &d, &res); /* override mta-sts, testing */
    assert_int_equal(mxg_req_domain_check(in, text, sizeof text), -2);
    assert_string_equal(text, "MTA-STS required for dom.test (policy override mta-sts for "
                              "dom.test): its policy is in mode testing");
    free(in);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_digest),
        cmocka_unit_test(test_digest_memo),
        cmocka_unit_test(test_judging_texts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
