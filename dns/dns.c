/* dns/dns.c — see dns.h.
 *
 * Design:
 *  - One getdns context per struct mxg_dns, driven by the caller's uv loop
 *    through mxguard's own getdns event loop (dns_loop.c: one uv_poll per fd
 *    shared by every getdns event on it, one uv_timer per timeout), handed
 *    to getdns with getdns_context_set_eventloop(); getdns owns it from then
 *    on and cleans it up in getdns_context_destroy(). (Debian's
 *    libgetdns_ex_uv put a second uv_poll on an fd it already polled and
 *    crashed under a cold burst of lookups.)
 *  - A query (struct mxg_dns_query) owns one getdns transaction chain per RR
 *    type ("sub"): one for MX, two (A, AAAA) for addresses, one for TLSA, one
 *    for TXT, one (DNSKEY at the trust anchor's owner) for the self-check. A
 *    sub re-asks for the target when an answer ends in a CNAME whose target
 *    data the upstream did not include (authoritative-only upstreams do
 *    that), at most DNS_MAX_CNAME_HOPS times; the DNSSEC status of a chain
 *    is the worst of its links.
 *  - The getdns callback copies what it needs out of the response, frees the
 *    response, and when the query is complete moves it to the "ready" list.
 *    User callbacks are run only from a uv_idle handle, i.e. never from inside
 *    mxg_dns_lookup_*() (getdns may call back synchronously on some error
 *    paths) and never from inside a getdns callback, so a user callback may
 *    call mxg_dns_cancel() or mxg_dns_free() safely.
 *  - mxg_dns_free() cancels everything without callbacks, destroys the getdns
 *    context and closes the idle handle; the struct itself is freed by the
 *    close callback, so the loop must run once more (uv_run) afterwards, as
 *    for any libuv handle. The event loop's handles (and the event loop
 *    itself) are closed and freed the same way.
 *  - No global state: everything hangs off struct mxg_dns.
 *  - Cache (dnscache.c): per sub, keyed by (name asked, RR type), so an
 *    address lookup caches A and AAAA separately. Before a sub asks getdns
 *    (first question or a CNAME follow-up) it looks in the cache; a hit
 *    finishes the sub, and the query is still delivered from the idle
 *    handle, never synchronously. When a sub finishes with an answer that
 *    involved the network, the final outcome (status, DNSSEC state of the
 *    whole chain, canonical name, records) is stored under the name first
 *    asked, for min(TTL of every RR used: CNAMEs, the records, their
 *    RRSIGs, capped by the RRSIGs' expiry; dns.cache_max_ttl); NODATA /
 *    NXDOMAIN for min(SOA TTL, SOA MINIMUM of the authority section, CNAME
 *    TTLs; dns.negative_ttl), dns.negative_ttl alone when there is no SOA.
 *    Never cached: TEMPFAIL, BOGUS, and answers whose DNSSEC state is
 *    INDETERMINATE (validation could not finish: like a failure, a retry
 *    must ask again), nor the self-check. Clock: uv_now() of the loop.
 */
#include "dns.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <getdns/getdns.h>
#include <getdns/getdns_extra.h>

#include "../core/str.h"
#include "../core/zero.h"
#include "../core/buf.h"
#include "../core/log.h"
#include "../core/metrics.h"
#include "dns_loop.h"
#include "dnscache.h"

#define COMP "dns"
#define DNS_MAX_CNAME_HOPS 8   /* follow-up queries per sub */
#define DNS_MAX_CHAIN 16       /* CNAME links followed inside one answer */
#define DNS_MAX_UPSTREAMS 8
#define DNS_RESOLV_CONF "/etc/resolv.conf"
#define DNS_ANCHOR_LINE_MAX 8192

#define DNS_TTL_UNKNOWN MXG_DNSCACHE_TTL_UNKNOWN

enum query_kind { Q_MX, Q_ADDR, Q_TLSA, Q_TXT, Q_SELFCHECK };

struct selfcheck_result {
    int ok;
    char why[400];
};

struct dns_sub {
    struct mxg_dns_query *q;
    uint16_t rrtype;
    char qname[MXG_DNS_NAME_MAX]; /* name first asked: the cache key */
    uint32_t ttl;                 /* min TTL (s) of the RRs used, DNS_TTL_UNKNOWN if none */
    uint32_t neg_ttl;             /* negative answers: SOA-derived TTL (s) or unknown */
    int net;                      /* some answer came from the network (not the cache) */
    int active;                   /* a getdns transaction is outstanding */
    getdns_transaction_t tid;
    getdns_context *gctx;         /* the context that holds tid (dns->ctx or dns->ctx_udp) */
    unsigned gen;                 /* submissions made (a nested one must not lose its tid) */
    int via_udp;                  /* the servers refused TCP: asked over UDP (dns->ctx_udp) */
    int no_upstream;              /* getdns reached no server at all (error callback) */
    int done;
    int submit_failed;            /* never reached the resolver */
    int hops;                     /* follow-up queries made */
    char name[MXG_DNS_NAME_MAX];  /* name currently asked (normalised) */
    enum mxg_dns_status status;
    enum mxg_dnssec sec;          /* worst over the chain */
    char why[160];
    int n;                        /* addresses (A/AAAA subs) */
    int malformed;                /* a record of the answer mxguard could not read (TXT, MX,
                                     CNAME target): the lookup fails */
    int oom;                      /* the answer's records could not be kept */
    int chain_cut;                /* the answer's CNAME chain goes on past DNS_MAX_CHAIN */
    int mx_over;                  /* MX records beyond MXG_DNS_MAX_MX (least preferred dropped) */
    /* last, not zeroed by query_new: addr[0..n) only, each slot zeroed when written */
    struct sockaddr_storage addr[MXG_DNS_MAX_ADDR];
};

struct mxg_dns_query {
    struct mxg_dns *dns;
    struct mxg_dns_query *prev, *next; /* in dns->pending or dns->ready */
    int in_ready;
    int cancelled;
    int in_cancel;                /* inside mxg_dns_cancel(): it frees q */
    int delivering;               /* its user callback is running */
    uint64_t t0;                  /* loop time when asked (metrics) */
    enum query_kind kind;
    enum mxg_dns_path path;       /* the resolver path asked (fixed when the query starts) */
    int nsub;
    struct dns_sub sub[2];
    mxg_mx_cb mx_cb;
    mxg_addr_cb addr_cb;
    mxg_tlsa_cb tlsa_cb;
    mxg_txt_cb txt_cb;
    void (*self_cb)(void *arg, int ok, const char *why);
    void *arg;
    union {
        struct mxg_mx_result mx;
        struct mxg_addr_result addr;
        struct mxg_tlsa_result tlsa;
        struct mxg_txt_result txt;
        struct selfcheck_result self;
    } res;
};

struct qlist {
    struct mxg_dns_query *head, *tail;
    int count;
};

struct mxg_dns {
    uv_loop_t *loop;
    /* The stub path (stub and auto modes), or the recursive one (recursive mode). */
    getdns_context *ctx;
    /* Auto mode: the recursive path (resolution from the root), owned; NULL otherwise.
     * Both paths live as long as dns: a switch (mxg_dns_set_path) only changes
     * which one new lookups use, so lookups in flight finish where they began. */
    getdns_context *rctx;
    enum mxg_dns_path path;  /* the path of new lookups */
    char rupstream[MXG_CFG_PATH_MAX + 40]; /* the recursive path, for messages */
    /* Stub mode with dns.transport "tcp": the same servers over UDP, for a
     * query they refused over TCP (no usable upstream); NULL otherwise. */
    getdns_context *ctx_udp;
    uint64_t udp_noted_at;  /* when the fallback was last logged (ms, loop time) */
    getdns_dict *ext;       /* extensions used for every query */
    int validate;           /* DNSSEC validation on (dane.enabled); off: every answer insecure */
    uv_idle_t idle;         /* delivers ready results */
    int idle_active;
    int freeing;            /* mxg_dns_free() has run */
    struct qlist pending;   /* waiting for getdns */
    struct qlist ready;     /* complete, waiting for delivery */
    struct mxg_dnscache *cache;           /* NULL: disabled */
    char anchor_owner[MXG_DNS_NAME_MAX];  /* first trust anchor's owner, "" = root */
    char anchor_file[256];                /* for self-check messages */
    char upstream[200];                   /* "127.0.0.1:53, ..." or "recursive" */
    struct mxg_metrics *metrics;          /* NULL: not counted */
    getdns_list *prev_anchors;            /* before the last mxg_dns_reload_anchors() */
    char prev_owner[MXG_DNS_NAME_MAX], prev_file[256];
};

/* ---------------------------------------------------------------- names */

/* Contract: human-readable name of a status, "?" for unknown values. */
const char *mxg_dns_status_name(enum mxg_dns_status s)
{
    switch (s) {
    case MXG_DNS_OK: return "OK";
    case MXG_DNS_NODATA: return "NODATA";
    case MXG_DNS_NXDOMAIN: return "NXDOMAIN";
    case MXG_DNS_TEMPFAIL: return "TEMPFAIL";
    case MXG_DNS_BOGUS: return "BOGUS";
    }
    return "?";
}

/* Contract: human-readable name of a DNSSEC state, "?" for unknown values. */
const char *mxg_dnssec_name(enum mxg_dnssec s)
{
    switch (s) {
    case MXG_SEC_INSECURE: return "INSECURE";
    case MXG_SEC_SECURE: return "SECURE";
    case MXG_SEC_BOGUS: return "BOGUS";
    case MXG_SEC_INDETERMINATE: return "INDETERMINATE";
    }
    return "?";
}

/* ---------------------------------------------------------------- helpers */

/* Badness order for combining DNSSEC states along a chain. */
static int sec_rank(enum mxg_dnssec s)
{
    switch (s) {
    case MXG_SEC_SECURE: return 0;
    case MXG_SEC_INSECURE: return 1;
    case MXG_SEC_INDETERMINATE: return 2;
    case MXG_SEC_BOGUS: return 3;
    }
    return 2;
}

/* The worse of two DNSSEC states (BOGUS > INDETERMINATE > INSECURE > SECURE). */
static enum mxg_dnssec sec_worst(enum mxg_dnssec a, enum mxg_dnssec b)
{
    return sec_rank(a) >= sec_rank(b) ? a : b;
}

/* Normalise a presentation-format name: ASCII lower case, no trailing dot
 * ("." becomes ""). Returns 0, or -1 if it does not fit in out. */
static int norm_name(const char *in, char *out, size_t outlen)
{
    size_t n = strlen(in);
    if (n > 0 && in[n - 1] == '.' && !(n >= 2 && in[n - 2] == '\\'))
        n--;
    if (n + 1 > outlen)
        return -1;
    for (size_t i = 0; i < n; i++)
        out[i] = (char)tolower((unsigned char)in[i]);
    out[n] = '\0';
    return 0;
}

/* Wire-format name → normalised text (lower case, no trailing dot, root = "").
 * Special characters are escaped as \DDD / \c like zone files do.
 * Returns 0 or -1 on malformed input / overflow. */
static int wire2name(const struct getdns_bindata *bd, char *out, size_t outlen)
{
    size_t pos = 0, o = 0;
    if (!bd || !bd->data || outlen == 0)
        return -1;
    while (pos < bd->size) {
        size_t len = bd->data[pos++];
        if (len == 0) {
            out[o] = '\0';
            return 0;
        }
        if (len > 63 || pos + len > bd->size)
            return -1;
        if (o > 0) {
            if (o + 1 >= outlen)
                return -1;
            out[o++] = '.';
        }
        for (size_t i = 0; i < len; i++) {
            unsigned char c = (unsigned char)tolower(bd->data[pos + i]);
            char tmp[5];
            size_t tl;
            if (c == '.' || c == '\\' || c == '"' || c == ';' || c == '(' || c == ')') {
                tmp[0] = '\\';
                tmp[1] = (char)c;
                tl = 2;
            } else if (c <= 0x20 || c >= 0x7f) {
                snprintf(tmp, sizeof tmp, "\\%03u", c);
                tl = 4;
            } else {
                tmp[0] = (char)c;
                tl = 1;
            }
            if (o + tl >= outlen)
                return -1;
            memcpy(out + o, tmp, tl);
            o += tl;
        }
        pos += len;
    }
    return -1; /* no terminating root label */
}

/* Append q at the tail of l. */
static void qlist_push(struct qlist *l, struct mxg_dns_query *q)
{
    q->next = NULL;
    q->prev = l->tail;
    if (l->tail)
        l->tail->next = q;
    else
        l->head = q;
    l->tail = q;
    l->count++;
}

/* Unlink q from l (q must be in l). */
static void qlist_remove(struct qlist *l, struct mxg_dns_query *q)
{
    if (q->prev)
        q->prev->next = q->next;
    else
        l->head = q->next;
    if (q->next)
        q->next->prev = q->prev;
    else
        l->tail = q->prev;
    q->prev = q->next = NULL;
    l->count--;
}

/* 1 if getdns still holds a transaction of q. */
static int query_active(const struct mxg_dns_query *q)
{
    for (int i = 0; i < q->nsub; i++)
        if (q->sub[i].active)
            return 1;
    return 0;
}

/* Record the outcome of sub s; BOGUS always forces sec BOGUS. */
static void sub_set(struct dns_sub *s, enum mxg_dns_status st, enum mxg_dnssec sec, const char *why)
{
    s->status = st;
    s->sec = sec_worst(s->sec, sec);
    if (st == MXG_DNS_BOGUS)
        s->sec = MXG_SEC_BOGUS;
    mxg_str_copy(s->why, sizeof s->why, why);
}

/* Mnemonic of the RR types asked here, for messages. */
static const char *rrtype_name(uint16_t t)
{
    switch (t) {
    case GETDNS_RRTYPE_A: return "A";
    case GETDNS_RRTYPE_AAAA: return "AAAA";
    case GETDNS_RRTYPE_MX: return "MX";
    case GETDNS_RRTYPE_TLSA: return "TLSA";
    case GETDNS_RRTYPE_TXT: return "TXT";
    case GETDNS_RRTYPE_DNSKEY: return "DNSKEY";
    }
    return "?";
}

/* --------------------------------------------------------- answer parsing */

/* Owner name of an rr dict, normalised; 0 or -1. */
static int rr_owner(getdns_dict *rr, char *out, size_t outlen)
{
    struct getdns_bindata *bd = NULL;
    if (getdns_dict_get_bindata(rr, "name", &bd) != GETDNS_RETURN_GOOD)
        return -1;
    return wire2name(bd, out, outlen);
}

/* RR type of an rr dict, 0 if absent. */
static uint32_t rr_type(getdns_dict *rr)
{
    uint32_t t = 0;
    (void)getdns_dict_get_int(rr, "type", &t);
    return t;
}

/* getdns dnssec_status (400..403) → enum mxg_dnssec. */
static enum mxg_dnssec map_dnssec(uint32_t v)
{
    switch (v) {
    case GETDNS_DNSSEC_SECURE: return MXG_SEC_SECURE;
    case GETDNS_DNSSEC_BOGUS: return MXG_SEC_BOGUS;
    case GETDNS_DNSSEC_INSECURE: return MXG_SEC_INSECURE;
    default: return MXG_SEC_INDETERMINATE;
    }
}

/* Lower s->ttl to the TTL of rr (seconds). */
static void ttl_take(struct dns_sub *s, getdns_dict *rr)
{
    uint32_t ttl = 0;
    if (getdns_dict_get_int(rr, "ttl", &ttl) == GETDNS_RETURN_GOOD && ttl < s->ttl)
        s->ttl = ttl;
}

/* Lower s->ttl to what an RRSIG allows: its own TTL, the signed original
 * TTL (the TTL field of a record is not signed and could be inflated) and
 * the time left before the signature expires (serial arithmetic on 32-bit
 * seconds, RFC 4034 §3.1.5), so a cached answer never outlives it. */
static void ttl_take_rrsig(struct dns_sub *s, getdns_dict *rr)
{
    uint32_t exp = 0, orig = 0;
    ttl_take(s, rr);
    if (getdns_dict_get_int(rr, "/rdata/original_ttl", &orig) == GETDNS_RETURN_GOOD &&
        orig < s->ttl)
        s->ttl = orig;
    if (getdns_dict_get_int(rr, "/rdata/signature_expiration", &exp) != GETDNS_RETURN_GOOD)
        return;
    int32_t left = (int32_t)(exp - (uint32_t)time(NULL));
    uint32_t l = left > 0 ? (uint32_t)left : 0;
    if (l < s->ttl)
        s->ttl = l;
}

/* The TLSA records of one answer while it is read: fields and borrowed
 * data pointers into getdns' response (valid until it is destroyed). */
struct tlsa_tmp {
    struct mxg_tlsa_rr *rr;
    int n, cap;
    int bad;  /* records getdns could not parse */
    int oom;
};

/* Note one TLSA record of the answer in t (borrowing its data). A record
 * getdns could not parse is counted in t->bad: it exists (so "no TLSA"
 * would be wrong) but is unusable. Returns 0, or -1 out of memory. */
static int tlsa_note(struct dns_sub *s, struct tlsa_tmp *t, getdns_dict *rr)
{
    uint32_t u = 0, sel = 0, mt = 0;
    struct getdns_bindata *d = NULL;

    if (getdns_dict_get_int(rr, "/rdata/certificate_usage", &u) ||
        getdns_dict_get_int(rr, "/rdata/selector", &sel) ||
        getdns_dict_get_int(rr, "/rdata/matching_type", &mt) ||
        getdns_dict_get_bindata(rr, "/rdata/certificate_association_data", &d) || !d ||
        d->size > MXG_TLSA_DATA_MAX) {
        LOG_W(COMP, "TLSA %s: malformed record: counted as unusable", s->name);
        t->bad++;
        return 0;
    }
    if (t->n == t->cap) {
        int cap = t->cap ? t->cap * 2 : 8;
        struct mxg_tlsa_rr *p = realloc(t->rr, (size_t)cap * sizeof *p);
        if (!p) {
            t->oom = 1;
            return -1;
        }
        t->rr = p;
        t->cap = cap;
    }
    struct mxg_tlsa_rr *r = &t->rr[t->n++];
    r->usage = (uint8_t)u;
    r->selector = (uint8_t)sel;
    r->mtype = (uint8_t)mt;
    r->len = (uint16_t)d->size;
    r->data = d->size ? d->data : NULL;
    return 0;
}

/* Make the noted records q's TLSA result (one block sized to them). 0, or
 * -1 out of memory (the result then holds no records). */
static int tlsa_take(struct mxg_tlsa_result *res, struct tlsa_tmp *t)
{
    free(res->rr);
    res->rr = NULL;
    res->n = 0;
    res->n_bad = t->bad;
    int k = t->oom ? -1 : mxg_tlsa_copy(t->rr, t->n, NULL, &res->rr);
    free(t->rr);
    memset(t, 0, sizeof *t);
    if (k < 0) {
        res->n_bad = 0;
        return -1;
    }
    res->n = k;
    return 0;
}

/* The TXT records of one answer (or cache entry) while it is read: their
 * octets back to back, each followed by a NUL, in buf; record i is
 * buf[off[i] .. off[i] + len[i]). */
struct txt_tmp {
    char *buf;
    size_t used, cap;
    size_t *off, *len;
    int n, ncap;
    int oom;
};

/* Append n octets of d to the current (last) record of t. 0, or -1 out of memory. */
static int txt_put(struct txt_tmp *t, const void *d, size_t n)
{
    if (t->oom)
        return -1;
    if (t->used + n + 1 > t->cap) {
        size_t cap = t->cap ? t->cap : 512;
        while (cap < t->used + n + 1)
            cap *= 2;
        char *p = realloc(t->buf, cap);
        if (!p) {
            t->oom = 1;
            return -1;
        }
        t->buf = p;
        t->cap = cap;
    }
    if (n)
        memcpy(t->buf + t->used, d, n);
    t->used += n;
    t->len[t->n - 1] += n;
    return 0;
}

/* Start a new (empty) record in t. 0, or -1 out of memory. */
static int txt_begin(struct txt_tmp *t)
{
    if (t->oom)
        return -1;
    if (t->n == t->ncap) {
        int cap = t->ncap ? t->ncap * 2 : 16;
        size_t *o = realloc(t->off, (size_t)cap * sizeof *o);
        if (o)
            t->off = o;
        size_t *l = o ? realloc(t->len, (size_t)cap * sizeof *l) : NULL;
        if (!l) {
            t->oom = 1;
            return -1;
        }
        t->len = l;
        t->ncap = cap;
    }
    t->off[t->n] = t->used;
    t->len[t->n] = 0;
    t->n++;
    return 0;
}

/* End the current record (its NUL). 0, or -1 out of memory. */
static int txt_end(struct txt_tmp *t)
{
    if (txt_put(t, "", 0) < 0) /* makes room for the NUL */
        return -1;
    t->buf[t->used++] = '\0';
    return 0;
}

static void txt_tmp_free(struct txt_tmp *t)
{
    free(t->buf);
    free(t->off);
    free(t->len);
    memset(t, 0, sizeof *t);
}

/* Note one TXT record of the answer in t: its character-strings (getdns:
 * the bindata list /rdata/txt_strings, each without its length octet)
 * concatenated with no separator (RFC 7208 §3.3), whole. The octets are
 * kept as they are: a character-string may hold any octet, NUL included.
 * Returns 0, -1 out of memory, or -2: a record getdns could not parse (it
 * exists, so the RRset cannot be judged without it: the lookup fails). */
static int txt_note(struct dns_sub *s, struct txt_tmp *t, getdns_dict *rr)
{
    getdns_list *strs = NULL;
    size_t ns = 0;

    if (getdns_dict_get_list(rr, "/rdata/txt_strings", &strs) ||
        getdns_list_get_length(strs, &ns)) {
        LOG_W(COMP, "TXT %s: malformed record", s->name);
        return -2;
    }
    if (txt_begin(t) < 0)
        return -1;
    for (size_t i = 0; i < ns; i++) {
        struct getdns_bindata *bd = NULL;
        if (getdns_list_get_bindata(strs, i, &bd) || !bd) {
            LOG_W(COMP, "TXT %s: malformed record", s->name);
            return -2;
        }
        if (txt_put(t, bd->data, bd->size) < 0)
            return -1;
    }
    return txt_end(t);
}

/* Make the noted records the TXT result: one block sized to them (the
 * pointer array, the length array, the octets), which res->txt starts.
 * t is emptied. 0, or -1 out of memory (res then holds no records). */
static int txt_take(struct mxg_txt_result *res, struct txt_tmp *t)
{
    free(res->txt);
    res->txt = NULL;
    res->len = NULL;
    res->n = 0;
    if (t->oom) {
        txt_tmp_free(t);
        return -1;
    }
    if (t->n == 0) {
        txt_tmp_free(t);
        return 0;
    }
    size_t n = (size_t)t->n;
    size_t a = _Alignof(size_t);
    size_t lens_at = (n * sizeof(char *) + a - 1) / a * a;
    size_t data_at = lens_at + n * sizeof(size_t);
    char *blk = malloc(data_at + t->used);
    if (!blk) {
        txt_tmp_free(t);
        return -1;
    }
    char **txt = (char **)(void *)blk;
    size_t *len = (size_t *)(void *)(blk + lens_at);
    memcpy(blk + data_at, t->buf, t->used);
    for (size_t i = 0; i < n; i++) {
        txt[i] = blk + data_at + t->off[i];
        len[i] = t->len[i];
    }
    res->txt = txt;
    res->len = len;
    res->n = (int)n;
    txt_tmp_free(t);
    return 0;
}

/* Collect the records of the asked type at the end of the CNAME chain, and
 * lower s->ttl to the TTLs of everything used (the chain's CNAMEs, the
 * records, the RRSIGs over both). Returns the number of records found;
 * *canon gets the chain's end. */
static int collect_answer(struct dns_sub *s, getdns_list *answer, char *canon, size_t canonlen)
{
    size_t na = 0;
    char owner[MXG_DNS_NAME_MAX];
    char chain[DNS_MAX_CHAIN + 1][MXG_DNS_NAME_MAX];
    int nchain = 0;
    int found = 0;
    struct tlsa_tmp tt = {NULL, 0, 0, 0, 0};
    struct txt_tmp xt;
    memset(&xt, 0, sizeof xt);

    snprintf(canon, canonlen, "%s", s->name);
    if (!answer || getdns_list_get_length(answer, &na) != GETDNS_RETURN_GOOD)
        return 0;

    mxg_str_copy(chain[nchain++], sizeof chain[0], s->name);
    s->chain_cut = 0;
    for (int link = 0; link <= DNS_MAX_CHAIN; link++) {
        int moved = 0;
        for (size_t i = 0; i < na; i++) {
            getdns_dict *rr = NULL;
            struct getdns_bindata *target = NULL;
            char tname[MXG_DNS_NAME_MAX];
            if (getdns_list_get_dict(answer, i, &rr) || rr_type(rr) != GETDNS_RRTYPE_CNAME)
                continue;
            if (rr_owner(rr, owner, sizeof owner) || strcmp(owner, canon) != 0)
                continue;
            if (link == DNS_MAX_CHAIN) { /* longer than we follow (or a loop) */
                s->chain_cut = 1;
                break;
            }
            if (getdns_dict_get_bindata(rr, "/rdata/cname", &target) ||
                wire2name(target, tname, sizeof tname)) {
                /* a target mxguard cannot read (or write as text): the
                 * chain cannot be followed; never "no records" */
                s->malformed = 1;
                break;
            }
            ttl_take(s, rr);
            snprintf(canon, canonlen, "%s", tname);
            mxg_str_copy(chain[nchain++], sizeof chain[0], tname);
            moved = 1;
            break;
        }
        if (!moved)
            break;
    }

    /* RRSIGs over the chain's CNAMEs and over the records used */
    for (size_t i = 0; i < na; i++) {
        getdns_dict *rr = NULL;
        uint32_t covered = 0;
        if (getdns_list_get_dict(answer, i, &rr) || rr_type(rr) != GETDNS_RRTYPE_RRSIG ||
            rr_owner(rr, owner, sizeof owner) ||
            getdns_dict_get_int(rr, "/rdata/type_covered", &covered))
            continue;
        if (covered != s->rrtype && covered != GETDNS_RRTYPE_CNAME)
            continue;
        for (int c = 0; c < nchain; c++) {
            if (strcmp(owner, chain[c]) == 0) {
                ttl_take_rrsig(s, rr);
                break;
            }
        }
    }

    struct mxg_dns_query *q = s->q;
    for (size_t i = 0; i < na; i++) {
        getdns_dict *rr = NULL;
        if (getdns_list_get_dict(answer, i, &rr) || rr_type(rr) != s->rrtype)
            continue;
        if (rr_owner(rr, owner, sizeof owner) || strcmp(owner, canon) != 0)
            continue;
        ttl_take(s, rr);
        if (s->rrtype == GETDNS_RRTYPE_MX) {
            struct mxg_mx_result *m = &q->res.mx;
            struct getdns_bindata *ex = NULL;
            uint32_t pref = 0;
            if (getdns_dict_get_int(rr, "/rdata/preference", &pref) ||
                getdns_dict_get_bindata(rr, "/rdata/exchange", &ex)) {
                s->malformed = 1; /* the lookup fails: never fewer hosts read as all */
                break;
            }
            int at = m->n;
            if (m->n >= MXG_DNS_MAX_MX) {
                /* keep the most preferred hosts (the caller sorts and caps by
                 * preference; answer order must not decide which are lost) */
                at = 0;
                for (int k = 1; k < m->n; k++)
                    if (m->mx[k].pref > m->mx[at].pref)
                        at = k;
                found++;
                if (!s->mx_over++)
                    LOG_W(COMP, "%s: more than %d MX records, keeping the %d most preferred",
                          s->name, MXG_DNS_MAX_MX, MXG_DNS_MAX_MX);
                if ((int)pref >= m->mx[at].pref)
                    continue;
            }
            char host[MXG_DNS_NAME_MAX];
            if (wire2name(ex, host, sizeof host)) {
                /* a host name that does not fit as text (escaped octets):
                 * dropping it could leave "no MX" (implicit MX) */
                LOG_W(COMP, "MX %s: exchange name not usable", s->name);
                s->malformed = 1;
                break;
            }
            mxg_str_copy(m->mx[at].host, sizeof m->mx[at].host, host);
            m->mx[at].pref = (int)pref;
            if (at == m->n) {
                m->n++;
                found++;
            }
        } else if (s->rrtype == GETDNS_RRTYPE_TLSA) {
            if (tlsa_note(s, &tt, rr) < 0)
                break;
            found++;
        } else if (s->rrtype == GETDNS_RRTYPE_TXT) {
            int k = txt_note(s, &xt, rr);
            found++;
            if (k == -2)
                s->malformed = 1;
            if (k < 0)
                break; /* the lookup fails: never fewer records (docs/ARCHITECTURE.md §Limits) */
        } else if (s->rrtype == GETDNS_RRTYPE_A || s->rrtype == GETDNS_RRTYPE_AAAA) {
            struct getdns_bindata *a = NULL;
            int v4 = s->rrtype == GETDNS_RRTYPE_A;
            if (getdns_dict_get_bindata(rr, v4 ? "/rdata/ipv4_address" : "/rdata/ipv6_address", &a))
                continue;
            if (!a || a->size != (v4 ? 4u : 16u))
                continue;
            if (s->n >= MXG_DNS_MAX_ADDR)
                break;
            struct sockaddr_storage *ss = &s->addr[s->n];
            memset(ss, 0, sizeof *ss);
            if (v4) {
                struct sockaddr_in *sin = (struct sockaddr_in *)ss;
                sin->sin_family = AF_INET;
                memcpy(&sin->sin_addr, a->data, 4);
            } else {
                struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
                sin6->sin6_family = AF_INET6;
                memcpy(&sin6->sin6_addr, a->data, 16);
            }
            s->n++;
            found++;
        } else {
            found++; /* DNSKEY (self-check): only presence and status matter */
        }
    }
    if (s->rrtype == GETDNS_RRTYPE_TLSA && (found > 0 || tt.oom) &&
        tlsa_take(&q->res.tlsa, &tt) < 0)
        s->oom = 1; /* the lookup fails: never fewer records (docs/ARCHITECTURE.md §Limits) */
    free(tt.rr);
    if (s->rrtype == GETDNS_RRTYPE_TXT && !s->malformed && (found > 0 || xt.oom) &&
        txt_take(&q->res.txt, &xt) < 0)
        s->oom = 1;
    txt_tmp_free(&xt);
    return found;
}

/* Negative answers (RFC 2308 §5): the TTL is min(SOA TTL, SOA MINIMUM) of
 * the SOA in the authority section; s->neg_ttl stays unknown without one. */
static void negative_ttl(struct dns_sub *s, getdns_dict *reply)
{
    getdns_list *auth = NULL;
    size_t n = 0;
    if (getdns_dict_get_list(reply, "authority", &auth) || getdns_list_get_length(auth, &n))
        return;
    for (size_t i = 0; i < n; i++) {
        getdns_dict *rr = NULL;
        uint32_t ttl = 0, min = 0;
        if (getdns_list_get_dict(auth, i, &rr) || rr_type(rr) != GETDNS_RRTYPE_SOA)
            continue;
        if (getdns_dict_get_int(rr, "ttl", &ttl) || getdns_dict_get_int(rr, "/rdata/minimum", &min))
            continue;
        uint32_t t = ttl < min ? ttl : min;
        if (t < s->neg_ttl)
            s->neg_ttl = t;
        return;
    }
}

/* Does the answer hold any record owned by name (other than the chain's CNAMEs)? */
static int answer_has_owner(getdns_list *answer, const char *name)
{
    size_t na = 0;
    char owner[MXG_DNS_NAME_MAX];
    if (!answer || getdns_list_get_length(answer, &na))
        return 0;
    for (size_t i = 0; i < na; i++) {
        getdns_dict *rr = NULL;
        uint32_t t;
        if (getdns_list_get_dict(answer, i, &rr))
            continue;
        t = rr_type(rr);
        if (t == GETDNS_RRTYPE_RRSIG)
            continue;
        if (rr_owner(rr, owner, sizeof owner) == 0 && strcmp(owner, name) == 0)
            return 1;
    }
    return 0;
}

/* Classify one getdns response for sub s. Returns 1 when a follow-up query
 * for s->name (the CNAME target) is needed, else 0 with s->status set. */
static int parse_response(struct dns_sub *s, getdns_callback_type_t type, getdns_dict *resp)
{
    uint32_t status = 0;
    getdns_list *replies = NULL;
    size_t nrep = 0;
    char why[160];

    if (type == GETDNS_CALLBACK_TIMEOUT) {
        sub_set(s, MXG_DNS_TEMPFAIL, MXG_SEC_INDETERMINATE, "timeout");
        return 0;
    }
    if (type == GETDNS_CALLBACK_CANCEL) {
        sub_set(s, MXG_DNS_TEMPFAIL, MXG_SEC_INDETERMINATE, "query cancelled by the resolver");
        return 0;
    }
    if (type != GETDNS_CALLBACK_COMPLETE || !resp) {
        s->no_upstream = 1;
        sub_set(s, MXG_DNS_TEMPFAIL, MXG_SEC_INDETERMINATE, "resolver error (no usable upstream?)");
        return 0;
    }
    (void)getdns_dict_get_int(resp, "status", &status);
    if (status == GETDNS_RESPSTATUS_ALL_TIMEOUT) {
        sub_set(s, MXG_DNS_TEMPFAIL, MXG_SEC_INDETERMINATE, "timeout");
        return 0;
    }
    if (status == GETDNS_RESPSTATUS_NO_SECURE_ANSWERS ||
        status == GETDNS_RESPSTATUS_ALL_BOGUS_ANSWERS) {
        sub_set(s, MXG_DNS_BOGUS, MXG_SEC_BOGUS, "DNSSEC validation failed (bogus)");
        return 0;
    }
    if (getdns_dict_get_list(resp, "replies_tree", &replies) ||
        getdns_list_get_length(replies, &nrep) || nrep == 0) {
        /* With dnssec_return_all_statuses every reply is kept, so an empty
         * tree means nothing usable came back: never guess "no such name". */
        snprintf(why, sizeof why, "no reply (getdns status %u)", (unsigned)status);
        sub_set(s, MXG_DNS_TEMPFAIL, MXG_SEC_INDETERMINATE, why);
        return 0;
    }

    /* A bogus reply anywhere wins: it must never turn into a denial. */
    for (size_t i = 0; i < nrep; i++) {
        getdns_dict *r = NULL;
        uint32_t ds = 0;
        if (getdns_list_get_dict(replies, i, &r) == GETDNS_RETURN_GOOD &&
            getdns_dict_get_int(r, "dnssec_status", &ds) == GETDNS_RETURN_GOOD &&
            ds == GETDNS_DNSSEC_BOGUS) {
            sub_set(s, MXG_DNS_BOGUS, MXG_SEC_BOGUS, "DNSSEC validation failed (bogus)");
            return 0;
        }
    }

    getdns_dict *reply = NULL;
    uint32_t rcode = 0, ds = 0;
    enum mxg_dnssec sec = s->q->dns->validate ? MXG_SEC_INDETERMINATE : MXG_SEC_INSECURE;
    getdns_list *answer = NULL;
    char canon[MXG_DNS_NAME_MAX];

    (void)getdns_list_get_dict(replies, 0, &reply);
    if (getdns_dict_get_int(reply, "/header/rcode", &rcode)) {
        sub_set(s, MXG_DNS_TEMPFAIL, MXG_SEC_INDETERMINATE, "reply without header");
        return 0;
    }
    if (getdns_dict_get_int(reply, "dnssec_status", &ds) == GETDNS_RETURN_GOOD)
        sec = map_dnssec(ds);
    (void)getdns_dict_get_list(reply, "answer", &answer);

    if (rcode == GETDNS_RCODE_SERVFAIL) {
        sub_set(s, MXG_DNS_TEMPFAIL, MXG_SEC_INDETERMINATE, "SERVFAIL");
        return 0;
    }
    if (rcode != GETDNS_RCODE_NOERROR && rcode != GETDNS_RCODE_NXDOMAIN) {
        snprintf(why, sizeof why, "DNS error rcode %u", (unsigned)rcode);
        sub_set(s, MXG_DNS_TEMPFAIL, MXG_SEC_INDETERMINATE, why);
        return 0;
    }

    int found = collect_answer(s, answer, canon, sizeof canon);
    s->sec = sec_worst(s->sec, sec);
    s->net = 1;
    if (s->oom) {
        s->oom = 0;
        LOG_E(COMP, "%s %s: out of memory keeping the answer's records", rrtype_name(s->rrtype),
              canon);
        sub_set(s, MXG_DNS_TEMPFAIL, MXG_SEC_INDETERMINATE, "out of memory keeping the records");
        return 0;
    }
    if (s->malformed) {
        s->malformed = 0;
        sub_set(s, MXG_DNS_TEMPFAIL, MXG_SEC_INDETERMINATE,
                "a record of the answer could not be parsed");
        return 0;
    }

    if (s->chain_cut || (strcmp(canon, s->name) != 0 && !answer_has_owner(answer, canon) &&
                         found == 0 && s->hops >= DNS_MAX_CNAME_HOPS)) {
        /* a CNAME chain longer than mxguard follows (or a loop): never a
         * denial or "no records" (docs/ARCHITECTURE.md §Limits), a failure of the lookup */
        snprintf(why, sizeof why, "CNAME chain from %.100s too long (more than %d links or %d "
                 "follow-up queries)", s->qname, DNS_MAX_CHAIN, DNS_MAX_CNAME_HOPS);
        LOG_W(COMP, "%s %s: %s", rrtype_name(s->rrtype), s->qname, why);
        sub_set(s, MXG_DNS_TEMPFAIL, MXG_SEC_INDETERMINATE, why);
        return 0;
    }
    if (rcode == GETDNS_RCODE_NXDOMAIN) {
        negative_ttl(s, reply);
        mxg_str_copy(s->name, sizeof s->name, canon);
        snprintf(why, sizeof why, "%.140s does not exist", canon[0] ? canon : ".");
        sub_set(s, MXG_DNS_NXDOMAIN, sec, why);
        return 0;
    }
    if (found > 0) {
        mxg_str_copy(s->name, sizeof s->name, canon);
        sub_set(s, MXG_DNS_OK, sec, "");
        return 0;
    }
    if (strcmp(canon, s->name) != 0 && !answer_has_owner(answer, canon) &&
        s->hops < DNS_MAX_CNAME_HOPS) {
        /* The chain ends in a CNAME whose target the upstream did not
         * resolve (authoritative server): ask for the target ourselves. */
        mxg_str_copy(s->name, sizeof s->name, canon);
        s->hops++;
        return 1;
    }
    negative_ttl(s, reply);
    mxg_str_copy(s->name, sizeof s->name, canon);
    snprintf(why, sizeof why, "no %s records for %.128s", rrtype_name(s->rrtype), canon);
    sub_set(s, MXG_DNS_NODATA, sec, why);
    return 0;
}

/* ------------------------------------------------------------- delivery */

static void query_free(struct mxg_dns_query *q)
{
    if (q->kind == Q_TLSA)
        free(q->res.tlsa.rr);
    if (q->kind == Q_TXT)
        free(q->res.txt.txt);
    free(q);
}

/* DNSSEC state reported for a one-sub query: failures are never secure. */
static enum mxg_dnssec single_sec(const struct dns_sub *s)
{
    if (s->status == MXG_DNS_BOGUS || s->sec == MXG_SEC_BOGUS)
        return MXG_SEC_BOGUS;
    if (s->status == MXG_DNS_TEMPFAIL)
        return MXG_SEC_INDETERMINATE;
    return s->sec;
}

/* The self-check verdict: DNSKEY at the anchor's owner must be OK + SECURE. */
static void selfcheck_finish(struct mxg_dns_query *q)
{
    struct mxg_dns *dns = q->dns;
    const struct dns_sub *s = &q->sub[0];
    struct selfcheck_result *r = &q->res.self;
    enum mxg_dnssec sec = single_sec(s);
    char owner[MXG_DNS_NAME_MAX + 1];
    const char *what, *upstream = mxg_dns_path_desc(dns, q->path);

    snprintf(owner, sizeof owner, "%s.", s->qname[0] ? s->qname : "");
    if (s->status == MXG_DNS_OK && sec == MXG_SEC_SECURE) {
        r->ok = 1;
        /* no "passed" prefix: callers log it as "DNSSEC self-check passed: %s" */
        snprintf(r->why, sizeof r->why, "DNSKEY %s is secure (via %s)", owner, upstream);
        return;
    }
    r->ok = 0;
    if (sec == MXG_SEC_BOGUS) {
        snprintf(r->why, sizeof r->why,
                 "DNSSEC self-check failed: DNSKEY %s is bogus (the resolver at %s may strip "
                 "DNSSEC records, or the trust anchor in %s is wrong)",
                 owner, upstream, dns->anchor_file);
        return;
    }
    if (s->status == MXG_DNS_TEMPFAIL) {
        what = strcmp(s->why, "timeout") == 0 ? "timed out" : s->why;
        if (what != s->why || s->no_upstream)
            r->ok = -1; /* no answer at all: unreachable, not a stripping resolver */
        snprintf(r->why, sizeof r->why,
                 "DNSSEC self-check failed: DNSKEY %s %s%s (no usable answer from the resolver "
                 "at %s)",
                 owner, what == s->why ? "failed: " : "", what, upstream);
        return;
    }
    if (s->status != MXG_DNS_OK) {
        snprintf(r->why, sizeof r->why,
                 "DNSSEC self-check failed: DNSKEY %s: %s (%s, %s; the resolver at %s may strip "
                 "DNSSEC records)",
                 owner, mxg_dns_status_name(s->status), s->why, mxg_dnssec_name(sec),
                 upstream);
        return;
    }
    snprintf(r->why, sizeof r->why,
             "DNSSEC self-check failed: DNSKEY %s is %s (the resolver at %s may strip DNSSEC "
             "records, or the trust anchor in %s does not match)",
             owner, sec == MXG_SEC_INSECURE ? "insecure" : "indeterminate", upstream,
             dns->anchor_file);
}

/* Build the public result from the finished subs. */
static void query_finish(struct mxg_dns_query *q)
{
    if (q->kind == Q_MX) {
        struct dns_sub *s = &q->sub[0];
        struct mxg_mx_result *m = &q->res.mx;
        m->status = s->status;
        m->sec = single_sec(s);
        mxg_str_copy(m->canon, sizeof m->canon, s->name);
        if (s->status != MXG_DNS_OK)
            m->n = 0;
        mxg_str_copy(m->why, sizeof m->why, s->why);
        return;
    }
    if (q->kind == Q_TLSA) {
        struct dns_sub *s = &q->sub[0];
        struct mxg_tlsa_result *t = &q->res.tlsa;
        t->status = s->status;
        t->sec = single_sec(s);
        mxg_str_copy(t->qname, sizeof t->qname, s->qname);
        mxg_str_copy(t->canon, sizeof t->canon, s->name);
        if (s->status != MXG_DNS_OK) {
            free(t->rr);
            t->rr = NULL;
            t->n = t->n_bad = 0;
        }
        mxg_str_copy(t->why, sizeof t->why, s->why);
        return;
    }
    if (q->kind == Q_TXT) {
        struct dns_sub *s = &q->sub[0];
        struct mxg_txt_result *t = &q->res.txt;
        t->status = s->status;
        t->sec = single_sec(s);
        mxg_str_copy(t->canon, sizeof t->canon, s->name);
        if (s->status != MXG_DNS_OK) {
            free(t->txt);
            t->txt = NULL;
            t->len = NULL;
            t->n = 0;
        }
        mxg_str_copy(t->why, sizeof t->why, s->why);
        return;
    }
    if (q->kind == Q_SELFCHECK) {
        selfcheck_finish(q);
        return;
    }

    struct dns_sub *a = &q->sub[0], *aaaa = &q->sub[1];
    struct mxg_addr_result *r = &q->res.addr;
    r->n = 0;
    for (int f = 0; f < 2; f++) {
        struct dns_sub *s = &q->sub[f];
        if (s->status != MXG_DNS_OK)
            continue;
        for (int i = 0; i < s->n && r->n < MXG_DNS_MAX_ADDR; i++)
            r->addr[r->n++] = s->addr[i];
    }
    int bogus = a->status == MXG_DNS_BOGUS || aaaa->status == MXG_DNS_BOGUS ||
                a->sec == MXG_SEC_BOGUS || aaaa->sec == MXG_SEC_BOGUS;
    if (r->n > 0)
        r->status = MXG_DNS_OK;
    else if (bogus)
        r->status = MXG_DNS_BOGUS;
    else if (a->status == MXG_DNS_TEMPFAIL || aaaa->status == MXG_DNS_TEMPFAIL)
        r->status = MXG_DNS_TEMPFAIL;
    else if (a->status == MXG_DNS_NXDOMAIN && aaaa->status == MXG_DNS_NXDOMAIN)
        r->status = MXG_DNS_NXDOMAIN;
    else
        r->status = MXG_DNS_NODATA;

    /* A partial failure must never look secure: with one family failed the
     * addresses of the other stay usable (status OK) but the set is
     * INDETERMINATE: an attacker may be hiding the other family. */
    if (bogus)
        r->sec = MXG_SEC_BOGUS;
    else if (a->status == MXG_DNS_TEMPFAIL || aaaa->status == MXG_DNS_TEMPFAIL)
        r->sec = MXG_SEC_INDETERMINATE;
    else
        r->sec = sec_worst(a->sec, aaaa->sec); /* SECURE only if both are */

    /* Canonical name: from the family that answered, A first. */
    const struct dns_sub *c = a->status == MXG_DNS_OK ? a : aaaa->status == MXG_DNS_OK ? aaaa : a;
    mxg_str_copy(r->canon, sizeof r->canon, c->name);

    r->why[0] = '\0';
    if (r->status == MXG_DNS_NODATA) {
        snprintf(r->why, sizeof r->why, "no A/AAAA records for %.130s", c->name);
    } else if (r->status == MXG_DNS_NXDOMAIN) {
        snprintf(r->why, sizeof r->why, "%.140s does not exist", c->name);
    } else if (r->status == MXG_DNS_BOGUS) {
        snprintf(r->why, sizeof r->why, "DNSSEC validation of %s failed (bogus)",
                 a->status == MXG_DNS_BOGUS && aaaa->status == MXG_DNS_BOGUS ? "A and AAAA"
                 : a->status == MXG_DNS_BOGUS                                ? "A"
                                                                             : "AAAA");
    } else if (r->status == MXG_DNS_TEMPFAIL || a->status == MXG_DNS_TEMPFAIL ||
               aaaa->status == MXG_DNS_TEMPFAIL || bogus) {
        /* failure (or partial failure next to an answer): say which */
        size_t o = 0;
        for (int f = 0; f < 2; f++) {
            const struct dns_sub *s = &q->sub[f];
            if (s->status != MXG_DNS_TEMPFAIL && s->status != MXG_DNS_BOGUS)
                continue;
            int w = snprintf(r->why + o, sizeof r->why - o, "%s%s lookup: %s", o ? "; " : "",
                             rrtype_name(s->rrtype), s->why);
            if (w < 0 || (size_t)w >= sizeof r->why - o)
                break;
            o += (size_t)w;
        }
    }
}

/* Run the user callback of a finished query. */
static void deliver_one(struct mxg_dns_query *q)
{
    switch (q->kind) {
    case Q_MX:
        q->mx_cb(q->arg, &q->res.mx);
        break;
    case Q_ADDR:
        q->addr_cb(q->arg, &q->res.addr);
        break;
    case Q_TLSA:
        q->tlsa_cb(q->arg, &q->res.tlsa);
        break;
    case Q_TXT:
        q->txt_cb(q->arg, &q->res.txt);
        break;
    case Q_SELFCHECK:
        q->self_cb(q->arg, q->res.self.ok, q->res.self.why);
        break;
    }
}

/* Deliver the queries that were ready when this tick started, in FIFO
 * order; stops the idle handle when nothing is left. Stops early when a
 * callback freed the resolver (dns stays allocated until its close cb). */
static void on_idle(uv_idle_t *h)
{
    struct mxg_dns *dns = h->data;
    int budget = dns->ready.count;

    while (budget-- > 0 && dns->ready.head && !dns->freeing) {
        struct mxg_dns_query *q = dns->ready.head;
        qlist_remove(&dns->ready, q);
        q->in_ready = 0;
        q->delivering = 1;
        deliver_one(q); /* may cancel others, start new lookups, or free dns */
        query_free(q);
    }
    if (!dns->freeing && dns->ready.count == 0 && dns->idle_active) {
        uv_idle_stop(&dns->idle);
        dns->idle_active = 0;
    }
}

static void cache_store(struct dns_sub *s);

/* A sub is finished (its outcome is cached if it may be); when all are,
 * move the query to the ready list. */
static void sub_done(struct dns_sub *s)
{
    struct mxg_dns_query *q = s->q;
    struct mxg_dns *dns = q->dns;

    s->done = 1;
    cache_store(s);
    static const char *const st_label[] = {"ok", "nodata", "nxdomain", "tempfail", "bogus"};
    mxg_metrics_inc(dns->metrics, MXG_M_DNS_QUERIES, st_label[s->status % 5]);
    if (s->net)
        mxg_metrics_observe_ms(dns->metrics, MXG_M_DNS_DURATION, rrtype_name(s->rrtype),
                               uv_now(dns->loop) - q->t0);
    for (int i = 0; i < q->nsub; i++)
        if (!q->sub[i].done)
            return;
    query_finish(q);
    qlist_remove(&dns->pending, q);
    qlist_push(&dns->ready, q);
    q->in_ready = 1;
    if (!dns->idle_active) {
        uv_idle_start(&dns->idle, on_idle);
        dns->idle_active = 1;
    }
}

/* ---------------------------------------------------------------- cache */

/* A cached value: u8 status, u8 sec, str canon, str why, u16 n, then n
 * records (MX: u16 pref, str host; A: 4 octets; AAAA: 16 octets; TLSA: u16
 * n_bad first, then per record u8 usage, u8 selector, u8 mtype, u16 len,
 * len octets; TXT: u16 len, len octets, which may include NULs: a TXT
 * RDATA, hence a record's octets, is below 64 KB). str = u16 length +
 * bytes. Multi-octet integers are in host order (the cache never leaves
 * the process). */
struct wbuf {
    struct mxg_buf b; /* core/buf.h */
    int oom;          /* sticks: the value is then not cached */
};

/* Append n octets of d (nothing once out of memory). */
static void wb_put(struct wbuf *b, const void *d, size_t n)
{
    if (!b->oom && mxg_buf_append(&b->b, d, n) < 0)
        b->oom = 1;
}

static void wb_u8(struct wbuf *b, unsigned v)
{
    uint8_t x = (uint8_t)v;
    wb_put(b, &x, 1);
}

static void wb_u16(struct wbuf *b, unsigned v)
{
    uint16_t x = (uint16_t)v;
    wb_put(b, &x, 2);
}

static void wb_str(struct wbuf *b, const char *s)
{
    size_t n = strlen(s);
    wb_u16(b, (unsigned)n);
    wb_put(b, s, n);
}

struct rbuf {
    const unsigned char *p;
    size_t len, pos;
    int bad;
};

static void rb_get(struct rbuf *b, void *d, size_t n)
{
    if (b->bad || n > b->len - b->pos) {
        b->bad = 1;
        memset(d, 0, n);
        return;
    }
    memcpy(d, b->p + b->pos, n);
    b->pos += n;
}

static unsigned rb_u8(struct rbuf *b)
{
    uint8_t x;
    rb_get(b, &x, 1);
    return x;
}

static unsigned rb_u16(struct rbuf *b)
{
    uint16_t x;
    rb_get(b, &x, 2);
    return x;
}

static void rb_str(struct rbuf *b, char *out, size_t cap)
{
    size_t n = rb_u16(b);
    if (b->bad || n >= cap || n > b->len - b->pos) {
        b->bad = 1;
        out[0] = '\0';
        return;
    }
    memcpy(out, b->p + b->pos, n);
    out[n] = '\0';
    b->pos += n;
}

/* 1 if queries of this kind use the cache. */
static int kind_cached(enum query_kind k)
{
    return k != Q_SELFCHECK;
}

/* Store the outcome of finished sub s under (s->qname, s->rrtype) when it
 * is cacheable (see the design notes at the top). */
static void cache_store(struct dns_sub *s)
{
    struct mxg_dns_query *q = s->q;
    struct mxg_dns *dns = q->dns;
    struct wbuf b = {{NULL, 0, 0, 0}, 0};
    int n = 0;

    if (!dns->cache || !kind_cached(q->kind) || !s->net)
        return;
    if (s->status != MXG_DNS_OK && s->status != MXG_DNS_NODATA && s->status != MXG_DNS_NXDOMAIN)
        return;
    if (s->sec != MXG_SEC_SECURE && s->sec != MXG_SEC_INSECURE)
        return;

    wb_u8(&b, (unsigned)s->status);
    wb_u8(&b, (unsigned)s->sec);
    wb_str(&b, s->name);
    wb_str(&b, s->why);
    if (s->status == MXG_DNS_OK) {
        if (s->rrtype == GETDNS_RRTYPE_MX)
            n = q->res.mx.n;
        else if (s->rrtype == GETDNS_RRTYPE_TLSA)
            n = q->res.tlsa.n;
        else if (s->rrtype == GETDNS_RRTYPE_TXT)
            n = q->res.txt.n;
        else
            n = s->n;
    }
    wb_u16(&b, (unsigned)n);
    if (s->rrtype == GETDNS_RRTYPE_TLSA)
        wb_u16(&b, s->status == MXG_DNS_OK ? (unsigned)q->res.tlsa.n_bad : 0);
    for (int i = 0; i < n; i++) {
        if (s->rrtype == GETDNS_RRTYPE_MX) {
            wb_u16(&b, (unsigned)q->res.mx.mx[i].pref);
            wb_str(&b, q->res.mx.mx[i].host);
        } else if (s->rrtype == GETDNS_RRTYPE_TLSA) {
            const struct mxg_tlsa_rr *t = &q->res.tlsa.rr[i];
            wb_u8(&b, t->usage);
            wb_u8(&b, t->selector);
            wb_u8(&b, t->mtype);
            wb_u16(&b, t->len);
            wb_put(&b, t->data, t->len);
        } else if (s->rrtype == GETDNS_RRTYPE_TXT) {
            const struct mxg_txt_result *t = &q->res.txt;
            if (t->len[i] > UINT16_MAX) {
                b.oom = 1; /* cannot be (RDATA < 64 KB): not cached */
                break;
            }
            wb_u16(&b, (unsigned)t->len[i]);
            wb_put(&b, t->txt[i], t->len[i]);
        } else if (s->rrtype == GETDNS_RRTYPE_A) {
            wb_put(&b, &((const struct sockaddr_in *)&s->addr[i])->sin_addr, 4);
        } else {
            wb_put(&b, &((const struct sockaddr_in6 *)&s->addr[i])->sin6_addr, 16);
        }
    }
    int negative = s->status != MXG_DNS_OK;
    uint32_t ttl = negative ? (s->ttl < s->neg_ttl ? s->ttl : s->neg_ttl) : s->ttl;
    if (!b.oom) {
        int rc = mxg_dnscache_put(dns->cache, s->qname, s->rrtype, negative, ttl, b.b.data,
                                  b.b.len, uv_now(dns->loop));
        if (rc > 0)
            LOG_D(COMP, "%s %s: cached %s (%s) for %llus", rrtype_name(s->rrtype), s->qname,
                  mxg_dns_status_name(s->status), mxg_dnssec_name(s->sec),
                  (unsigned long long)(mxg_dnscache_lifetime(dns->cache, negative, ttl) / 1000));
    }
    mxg_buf_free(&b.b);
}

/* Finish sub s from the cache entry of (s->name, s->rrtype) if there is a
 * live one; returns 1 then (the sub is done), else 0. */
static int cache_answer(struct dns_sub *s)
{
    struct mxg_dns_query *q = s->q;
    struct mxg_dns *dns = q->dns;
    size_t len = 0;
    uint64_t expires = 0, now;
    const void *v;
    char canon[MXG_DNS_NAME_MAX], why[160];

    if (!dns->cache || !kind_cached(q->kind))
        return 0;
    now = uv_now(dns->loop);
    if (!(v = mxg_dnscache_get(dns->cache, s->name, s->rrtype, now, &len, &expires)))
        return 0;

    struct rbuf b = {v, len, 0, 0};
    int n0 = s->rrtype == GETDNS_RRTYPE_MX     ? q->res.mx.n
             : s->rrtype == GETDNS_RRTYPE_TLSA ? q->res.tlsa.n
             : s->rrtype == GETDNS_RRTYPE_TXT  ? q->res.txt.n
                                               : s->n; /* to undo */
    enum mxg_dns_status st = (enum mxg_dns_status)rb_u8(&b);
    enum mxg_dnssec sec = (enum mxg_dnssec)rb_u8(&b);
    rb_str(&b, canon, sizeof canon);
    rb_str(&b, why, sizeof why);
    unsigned n = rb_u16(&b);
    struct tlsa_tmp tt = {NULL, 0, 0, 0, 0};
    struct txt_tmp xt;
    memset(&xt, 0, sizeof xt);
    if (s->rrtype == GETDNS_RRTYPE_TLSA)
        tt.bad = (int)rb_u16(&b);
    for (unsigned i = 0; i < n && !b.bad; i++) {
        if (s->rrtype == GETDNS_RRTYPE_MX) {
            struct mxg_mx_result *m = &q->res.mx;
            unsigned pref = rb_u16(&b);
            if (m->n >= MXG_DNS_MAX_MX) {
                b.bad = 1;
                break;
            }
            rb_str(&b, m->mx[m->n].host, sizeof m->mx[m->n].host);
            m->mx[m->n++].pref = (int)pref;
        } else if (s->rrtype == GETDNS_RRTYPE_TLSA) {
            if (tt.n == tt.cap) { /* n is known: one allocation */
                tt.rr = calloc(n, sizeof *tt.rr);
                tt.cap = (int)n;
                if (!tt.rr) {
                    tt.oom = b.bad = 1;
                    break;
                }
            }
            struct mxg_tlsa_rr *r = &tt.rr[tt.n++];
            r->usage = (uint8_t)rb_u8(&b);
            r->selector = (uint8_t)rb_u8(&b);
            r->mtype = (uint8_t)rb_u8(&b);
            r->len = (uint16_t)rb_u16(&b);
            r->data = (uint8_t *)b.p + b.pos; /* borrowed: copied by tlsa_take below */
            if (r->len > b.len - b.pos)
                b.bad = 1;
            else
                b.pos += r->len;
            if (!r->len)
                r->data = NULL;
        } else if (s->rrtype == GETDNS_RRTYPE_TXT) {
            size_t l = rb_u16(&b);
            if (b.bad || l > b.len - b.pos) {
                b.bad = 1;
                break;
            }
            if (txt_begin(&xt) < 0 || txt_put(&xt, b.p + b.pos, l) < 0 || txt_end(&xt) < 0) {
                b.bad = 1;
                break;
            }
            b.pos += l;
        } else {
            int v4 = s->rrtype == GETDNS_RRTYPE_A;
            if (s->n >= MXG_DNS_MAX_ADDR) {
                b.bad = 1;
                break;
            }
            struct sockaddr_storage *ss = &s->addr[s->n++];
            memset(ss, 0, sizeof *ss);
            if (v4) {
                ss->ss_family = AF_INET;
                rb_get(&b, &((struct sockaddr_in *)ss)->sin_addr, 4);
            } else {
                ss->ss_family = AF_INET6;
                rb_get(&b, &((struct sockaddr_in6 *)ss)->sin6_addr, 16);
            }
        }
    }
    if (!b.bad && b.pos == b.len && s->rrtype == GETDNS_RRTYPE_TLSA && (n > 0 || tt.bad) &&
        tlsa_take(&q->res.tlsa, &tt) < 0) {
        LOG_E(COMP, "TLSA %s: out of memory reading the cache entry", s->name);
        b.bad = 1; /* ask the network (whose answer then fails the same way) */
    }
    free(tt.rr);
    if (!b.bad && b.pos == b.len && s->rrtype == GETDNS_RRTYPE_TXT && n > 0 &&
        txt_take(&q->res.txt, &xt) < 0) {
        LOG_E(COMP, "TXT %s: out of memory reading the cache entry", s->name);
        b.bad = 1; /* ask the network (whose answer then fails the same way) */
    }
    int xoom = xt.oom;
    txt_tmp_free(&xt);
    if (b.bad || b.pos != b.len) {
        if (!tt.oom && !xoom)
            LOG_W(COMP, "%s %s: unreadable cache entry ignored", rrtype_name(s->rrtype), s->name);
        if (s->rrtype == GETDNS_RRTYPE_MX)
            q->res.mx.n = n0;
        else if (s->rrtype == GETDNS_RRTYPE_TLSA)
            q->res.tlsa.n = q->res.tlsa.rr ? n0 : 0;
        else if (s->rrtype == GETDNS_RRTYPE_TXT)
            q->res.txt.n = q->res.txt.txt ? n0 : 0;
        else
            s->n = n0;
        return 0;
    }
    uint64_t left_ms = expires - now, left_s = left_ms / 1000;
    if (left_s < s->ttl)
        s->ttl = (uint32_t)left_s; /* a chain through this entry lives no longer */
    LOG_D(COMP, "%s %s: cache hit: %s (%s)%s%s, %llu.%03llus left", rrtype_name(s->rrtype),
          s->name, mxg_dns_status_name(st), mxg_dnssec_name(sec), why[0] ? ": " : "", why,
          (unsigned long long)left_s, (unsigned long long)(left_ms % 1000));
    mxg_str_copy(s->name, sizeof s->name, canon);
    sub_set(s, st, sec, why);
    sub_done(s);
    return 1;
}

/* getdns callback (see below). */
static void on_getdns(getdns_context *ctx, getdns_callback_type_t type, getdns_dict *resp,
                      void *userarg, getdns_transaction_t tid);

/* Answer sub s (for s->name) from the cache, or send its query. On failure
 * to submit, the sub is finished with TEMPFAIL and -1 returned. A cache hit
 * finishes the sub (0 returned). getdns may call on_getdns() synchronously
 * from here. Either way the user callback runs later, from the idle handle. */
static int sub_submit(struct dns_sub *s)
{
    struct mxg_dns *dns = s->q->dns;
    char fq[MXG_DNS_NAME_MAX + 2];
    getdns_transaction_t tid = 0;

    if (cache_answer(s))
        return 0;
    snprintf(fq, sizeof fq, "%s.", s->name);
    s->active = 1;
    unsigned gen = ++s->gen;
    getdns_context *gctx = s->q->path == MXG_DNS_PATH_RECURSIVE && dns->rctx ? dns->rctx
                           : s->via_udp && dns->ctx_udp                  ? dns->ctx_udp
                                                                         : dns->ctx;
    s->gctx = gctx;
    getdns_return_t r = getdns_general(gctx, fq, s->rrtype, dns->ext, s, &tid, on_getdns);
    if (gen != s->gen) /* on_getdns ran synchronously and submitted s again: that one counts */
        return 0;
    if (r != GETDNS_RETURN_GOOD) {
        if (s->active) { /* callback did not run */
            char why[160];
            s->active = 0;
            s->submit_failed = 1;
            snprintf(why, sizeof why, "cannot send %s query for %.80s: %.50s", rrtype_name(s->rrtype),
                     s->name, getdns_get_errorstr_by_id((uint16_t)r));
            LOG_D(COMP, "%s", why);
            sub_set(s, MXG_DNS_TEMPFAIL, MXG_SEC_INDETERMINATE, why);
            sub_done(s);
        }
        return -1;
    }
    if (s->active)
        s->tid = tid;
    return 0;
}

/* getdns callback for one sub: copies what it needs out of resp, frees resp,
 * then follows a CNAME or finishes the sub. For a cancelled query it only
 * frees resp (and q once getdns holds nothing more of it). */
static void on_getdns(getdns_context *ctx, getdns_callback_type_t type, getdns_dict *resp,
                      void *userarg, getdns_transaction_t tid)
{
    struct dns_sub *s = userarg;
    struct mxg_dns_query *q = s->q;
    (void)ctx;
    (void)tid;

    s->active = 0;
    if (q->cancelled) {
        if (resp)
            getdns_dict_destroy(resp);
        if (!q->in_cancel && !query_active(q))
            query_free(q); /* already unlinked by mxg_dns_cancel() */
        return;
    }
    if (type == GETDNS_CALLBACK_ERROR && !s->via_udp && q->dns->ctx_udp &&
        q->path == MXG_DNS_PATH_STUB) {
        /* no usable upstream over TCP (the servers refused the connection):
         * the same query over UDP (dns.transport) */
        struct mxg_dns *dns = q->dns;
        uint64_t now = uv_now(dns->loop);
        if (!dns->udp_noted_at || now - dns->udp_noted_at >= 60000) {
            LOG_W(COMP, "%s: no answer over TCP (connection refused?); asking over UDP "
                        "instead (signed answers over 1232 octets may then be lost: the "
                        "servers should accept DNS over TCP)", dns->upstream);
            dns->udp_noted_at = now ? now : 1;
        }
        if (resp)
            getdns_dict_destroy(resp);
        s->via_udp = 1;
        (void)sub_submit(s); /* on failure it finished the sub itself */
        return;
    }
    char asked[MXG_DNS_NAME_MAX];
    mxg_str_copy(asked, sizeof asked, s->name);
    int follow = parse_response(s, type, resp);
    if (resp)
        getdns_dict_destroy(resp);
    if (follow)
        LOG_D(COMP, "%s %s: CNAME chain ends at %s without data, asking for it (%s)",
              rrtype_name(s->rrtype), asked, s->name, mxg_dnssec_name(s->sec));
    else
        LOG_D(COMP, "%s %s: %s (%s)%s%s", rrtype_name(s->rrtype), asked[0] ? asked : ".",
              mxg_dns_status_name(s->status), mxg_dnssec_name(s->sec), s->why[0] ? ": " : "",
              s->why);
    if (follow) {
        (void)sub_submit(s); /* on failure it finished the sub itself */
        return;
    }
    sub_done(s);
}

/* ---------------------------------------------------------------- lookups */

static struct mxg_dns_query *query_new(struct mxg_dns *dns, enum query_kind kind, const char *name)
{
    /* 14.5 KB, most of it address slots and the result members of the other
     * kinds: zeroed are the header, each sub but its address slots, the
     * callbacks and this kind's result member (the only one ever read; of
     * an MX result all but its record slots) */
    struct mxg_dns_query *q = malloc(sizeof *q);
    if (!q)
        return NULL;
    memset(q, 0, offsetof(struct mxg_dns_query, sub));
    for (int i = 0; i < 2; i++) {
        memset(&q->sub[i], 0, offsetof(struct dns_sub, addr));
        MXG_ZERO_AFTER(&q->sub[i], struct dns_sub, addr);
    }
    MXG_ZERO_BETWEEN(q, struct mxg_dns_query, sub, res); /* callbacks, arg */
    MXG_ZERO_AFTER(q, struct mxg_dns_query, res);
    switch (kind) {
    case Q_MX: /* 8 KB of records: mx[0..n) are written before n counts them */
        memset(&q->res.mx, 0, offsetof(struct mxg_mx_result, mx));
        MXG_ZERO_AFTER(&q->res.mx, struct mxg_mx_result, mx); /* why */
        break;
    case Q_ADDR: memset(&q->res.addr, 0, sizeof q->res.addr); break;
    case Q_TLSA: memset(&q->res.tlsa, 0, sizeof q->res.tlsa); break;
    case Q_TXT: memset(&q->res.txt, 0, sizeof q->res.txt); break;
    case Q_SELFCHECK: memset(&q->res.self, 0, sizeof q->res.self); break;
    }
    q->dns = dns;
    q->kind = kind;
    q->path = dns->path;
    q->t0 = uv_now(dns->loop);
    q->nsub = kind == Q_ADDR ? 2 : 1;
    for (int i = 0; i < q->nsub; i++) {
        struct dns_sub *s = &q->sub[i];
        s->q = q;
        switch (kind) {
        case Q_MX: s->rrtype = GETDNS_RRTYPE_MX; break;
        case Q_ADDR: s->rrtype = i == 0 ? GETDNS_RRTYPE_A : GETDNS_RRTYPE_AAAA; break;
        case Q_TLSA: s->rrtype = GETDNS_RRTYPE_TLSA; break;
        case Q_TXT: s->rrtype = GETDNS_RRTYPE_TXT; break;
        case Q_SELFCHECK: s->rrtype = GETDNS_RRTYPE_DNSKEY; break;
        }
        s->sec = MXG_SEC_SECURE; /* neutral element for sec_worst() */
        s->status = MXG_DNS_TEMPFAIL;
        s->ttl = DNS_TTL_UNKNOWN;
        s->neg_ttl = DNS_TTL_UNKNOWN;
        mxg_str_copy(s->name, sizeof s->name, name);
        mxg_str_copy(s->qname, sizeof s->qname, name);
    }
    qlist_push(&dns->pending, q);
    return q;
}

/* Submit all subs; returns 0, or -1 (query freed) when none could be sent. */
static int query_start(struct mxg_dns_query *q, struct mxg_dns_query **out)
{
    struct mxg_dns *dns = q->dns;
    int failed = 0;

    for (int i = 0; i < q->nsub; i++)
        if (sub_submit(&q->sub[i]) != 0 && q->sub[i].submit_failed)
            failed++;
    if (failed == q->nsub) {
        /* nothing reached getdns: report the error to the caller instead */
        if (q->in_ready) {
            qlist_remove(&dns->ready, q);
            if (dns->ready.count == 0 && dns->idle_active) {
                uv_idle_stop(&dns->idle);
                dns->idle_active = 0;
            }
        } else {
            qlist_remove(&dns->pending, q);
        }
        LOG_W(COMP, "%s lookup for %s could not be started: %s",
              q->kind == Q_ADDR ? "address" : rrtype_name(q->sub[0].rrtype),
              q->sub[0].name[0] ? q->sub[0].name : ".", q->sub[0].why);
        query_free(q);
        return -1;
    }
    if (out)
        *out = q;
    return 0;
}

/* Contract: see dns.h. The callback always runs later from the loop (never
 * from inside this call); the domain may carry a trailing dot and any case. */
int mxg_dns_lookup_mx(struct mxg_dns *dns, const char *domain, mxg_mx_cb cb, void *arg,
                      struct mxg_dns_query **q)
{
    char name[MXG_DNS_NAME_MAX];
    if (q)
        *q = NULL;
    if (!dns || dns->freeing || !domain || !cb || norm_name(domain, name, sizeof name) ||
        name[0] == '\0') {
        LOG_W(COMP, "MX lookup: invalid arguments (domain \"%s\")", domain ? domain : "(null)");
        return -1;
    }
    struct mxg_dns_query *nq = query_new(dns, Q_MX, name);
    if (!nq)
        return -1;
    nq->mx_cb = cb;
    nq->arg = arg;
    return query_start(nq, q);
}

/* Contract: see dns.h. A and AAAA are asked in parallel; one callback, later. */
int mxg_dns_lookup_addr(struct mxg_dns *dns, const char *host, mxg_addr_cb cb, void *arg,
                        struct mxg_dns_query **q)
{
    char name[MXG_DNS_NAME_MAX];
    if (q)
        *q = NULL;
    if (!dns || dns->freeing || !host || !cb || norm_name(host, name, sizeof name) ||
        name[0] == '\0') {
        LOG_W(COMP, "address lookup: invalid arguments (host \"%s\")", host ? host : "(null)");
        return -1;
    }
    struct mxg_dns_query *nq = query_new(dns, Q_ADDR, name);
    if (!nq)
        return -1;
    nq->addr_cb = cb;
    nq->arg = arg;
    return query_start(nq, q);
}

/* Contract: see dns.h. host is normalised like the others; port 1..65535. */
int mxg_dns_lookup_tlsa(struct mxg_dns *dns, const char *host, int port, mxg_tlsa_cb cb, void *arg,
                        struct mxg_dns_query **q)
{
    char name[MXG_DNS_NAME_MAX], qname[MXG_DNS_NAME_MAX];
    if (q)
        *q = NULL;
    if (!dns || dns->freeing || !host || !cb || port < 1 || port > 65535 ||
        norm_name(host, name, sizeof name) || name[0] == '\0') {
        LOG_W(COMP, "TLSA lookup: invalid arguments (host \"%s\", port %d)", host ? host : "(null)",
              port);
        return -1;
    }
    int w = snprintf(qname, sizeof qname, "_%d._tcp.%s", port, name);
    if (w < 0 || (size_t)w >= sizeof qname) {
        LOG_W(COMP, "TLSA lookup: name too long (_%d._tcp.%.60s...)", port, name);
        return -1;
    }
    struct mxg_dns_query *nq = query_new(dns, Q_TLSA, qname);
    if (!nq)
        return -1;
    nq->tlsa_cb = cb;
    nq->arg = arg;
    return query_start(nq, q);
}

/* Contract: see dns.h. name is normalised like the others (trailing dot,
 * case); CNAMEs are followed; records are kept in answer order. */
int mxg_dns_lookup_txt(struct mxg_dns *dns, const char *name, mxg_txt_cb cb, void *arg,
                       struct mxg_dns_query **q)
{
    char n[MXG_DNS_NAME_MAX];
    if (q)
        *q = NULL;
    if (!dns || dns->freeing || !name || !cb || norm_name(name, n, sizeof n) || n[0] == '\0') {
        LOG_W(COMP, "TXT lookup: invalid arguments (name \"%s\")", name ? name : "(null)");
        return -1;
    }
    struct mxg_dns_query *nq = query_new(dns, Q_TXT, n);
    if (!nq)
        return -1;
    nq->txt_cb = cb;
    nq->arg = arg;
    return query_start(nq, q);
}

/* Contract: see dns.h. */
int mxg_dns_selfcheck(struct mxg_dns *dns, void (*cb)(void *arg, int ok, const char *why), void *arg)
{
    return dns ? mxg_dns_selfcheck_path(dns, dns->path, cb, arg) : -1;
}

/* Contract: see dns.h. */
int mxg_dns_selfcheck_path(struct mxg_dns *dns, enum mxg_dns_path path,
                           void (*cb)(void *arg, int ok, const char *why), void *arg)
{
    if (!dns || dns->freeing || !cb || !mxg_dns_has_path(dns, path)) {
        LOG_W(COMP, "DNSSEC self-check: invalid arguments");
        return -1;
    }
    struct mxg_dns_query *nq = query_new(dns, Q_SELFCHECK, dns->anchor_owner);
    if (!nq)
        return -1;
    nq->path = path;
    nq->self_cb = cb;
    nq->arg = arg;
    LOG_D(COMP, "DNSSEC self-check: asking DNSKEY %s. via %s", dns->anchor_owner,
          mxg_dns_path_desc(dns, path));
    return query_start(nq, NULL);
}

/* Contract: q may be NULL. After this call the callback of q never runs and
 * q is invalid. Must not be called for a query whose callback already ran. */
void mxg_dns_cancel(struct mxg_dns_query *q)
{
    if (!q || q->delivering || q->cancelled)
        return; /* finished (its callback is running) or already cancelled */
    struct mxg_dns *dns = q->dns;
    if (q->in_ready) {
        qlist_remove(&dns->ready, q);
        q->in_ready = 0;
        query_free(q);
        return;
    }
    qlist_remove(&dns->pending, q);
    q->cancelled = 1;
    q->in_cancel = 1;
    for (int i = 0; i < q->nsub; i++) {
        struct dns_sub *s = &q->sub[i];
        if (!s->active)
            continue;
        /* getdns calls on_getdns(CANCEL) synchronously, which clears active */
        if (getdns_cancel_callback(s->gctx ? s->gctx : dns->ctx, s->tid) != GETDNS_RETURN_GOOD)
            LOG_D(COMP, "getdns_cancel_callback(%llu) failed", (unsigned long long)s->tid);
    }
    /* If getdns still holds a transaction, on_getdns() frees q when it ends
     * (at the latest in getdns_context_destroy()). */
    q->in_cancel = 0;
    if (!query_active(q))
        query_free(q);
}

/* --------------------------------------------------------------- context */

static void getdns_log_cb(void *userarg, uint64_t system, getdns_loglevel_type level,
                          const char *fmt, va_list ap) __attribute__((format(printf, 4, 0)));
static void getdns_log_cb(void *userarg, uint64_t system, getdns_loglevel_type level,
                          const char *fmt, va_list ap)
{
    char buf[512];
    (void)userarg;
    vsnprintf(buf, sizeof buf, fmt, ap);
    size_t n = strlen(buf);
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        buf[--n] = '\0';
    LOG_D(COMP, "getdns[%llx/%d]: %s", (unsigned long long)system, (int)level, buf);
}

/* Append one upstream dict (address_type, address_data, port, scope_id) to
 * ups at idx; port 0 means 53. Returns 0 or -1 with err set. */
static int add_upstream(getdns_list *ups, size_t idx, const struct sockaddr *sa, char *err,
                        size_t errlen)
{
    getdns_dict *d = getdns_dict_create();
    uint8_t t4[] = "IPv4", t6[] = "IPv6";
    struct getdns_bindata type, data;
    uint32_t port;
    int rc = -1;

    if (!d) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;
        type.size = 4;
        type.data = t4;
        data.size = 4;
        data.data = (uint8_t *)&sin->sin_addr;
        port = ntohs(sin->sin_port);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;
        type.size = 4;
        type.data = t6;
        data.size = 16;
        data.data = (uint8_t *)&sin6->sin6_addr;
        port = ntohs(sin6->sin6_port);
        if (sin6->sin6_scope_id) {
            char ifname[IF_NAMESIZE];
            if (if_indextoname(sin6->sin6_scope_id, ifname)) {
                struct getdns_bindata sc = {strlen(ifname), (uint8_t *)ifname};
                if (getdns_dict_set_bindata(d, "scope_id", &sc))
                    goto out;
            }
        }
    } else {
        snprintf(err, errlen, "DNS server: unsupported address family %d", sa->sa_family);
        goto out;
    }
    if (port == 0)
        port = 53;
    if (getdns_dict_set_bindata(d, "address_type", &type) ||
        getdns_dict_set_bindata(d, "address_data", &data) ||
        getdns_dict_set_int(d, "port", port) || getdns_list_set_dict(ups, idx, d)) {
        snprintf(err, errlen, "cannot build the upstream list");
        goto out;
    }
    rc = 0;
out:
    getdns_dict_destroy(d);
    return rc;
}

/* Read "nameserver ADDR" lines of resolv.conf into ss[] (port 53). */
static int read_resolv_conf(const char *path, struct sockaddr_storage *ss, int max, char *err,
                            size_t errlen)
{
    FILE *f = fopen(path, "r");
    char line[512];
    int n = 0;

    if (!f) {
        snprintf(err, errlen, "no DNS servers configured and cannot read %s: %s", path,
                 strerror(errno));
        return -1;
    }
    while (fgets(line, sizeof line, f) && n < max) {
        char kw[32], addr[128];
        if (sscanf(line, " %31s %127s", kw, addr) != 2 || strcmp(kw, "nameserver") != 0)
            continue;
        char *pct = strchr(addr, '%');
        unsigned scope = 0;
        if (pct) {
            *pct = '\0';
            scope = if_nametoindex(pct + 1);
        }
        memset(&ss[n], 0, sizeof ss[n]);
        struct sockaddr_in *sin = (struct sockaddr_in *)&ss[n];
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss[n];
        if (inet_pton(AF_INET, addr, &sin->sin_addr) == 1) {
            sin->sin_family = AF_INET;
            sin->sin_port = htons(53);
            n++;
        } else if (inet_pton(AF_INET6, addr, &sin6->sin6_addr) == 1) {
            sin6->sin6_family = AF_INET6;
            sin6->sin6_port = htons(53);
            sin6->sin6_scope_id = scope;
            n++;
        } else {
            LOG_W(COMP, "%s: ignoring unparseable nameserver \"%s\"", path, addr);
        }
    }
    fclose(f);
    if (n == 0) {
        snprintf(err, errlen, "no DNS servers configured and no nameserver line in %s", path);
        return -1;
    }
    return n;
}

/* Strip a zone-file comment (';' outside quotes) and turn parentheses into
 * blanks; returns the paren depth change. */
static int anchor_clean_line(char *s)
{
    int inq = 0, depth = 0;
    for (char *p = s; *p; p++) {
        if (*p == '\\' && p[1]) {
            p++;
            continue;
        }
        if (*p == '"')
            inq = !inq;
        else if (!inq && *p == ';') {
            *p = '\0';
            break;
        } else if (!inq && (*p == '(' || *p == ')')) {
            depth += *p == '(' ? 1 : -1;
            *p = ' ';
        } else if (*p == '\n' || *p == '\r' || *p == '\t') {
            *p = ' ';
        }
    }
    return depth;
}

/* 1 if s holds only blanks. */
static int blank(const char *s)
{
    while (*s == ' ')
        s++;
    return *s == '\0';
}

/* Parse the trust anchor file (DS / DNSKEY records, zone-file syntax, one
 * record per line or parenthesised over several) into a getdns list; owner
 * gets the (normalised) owner name of the first anchor, "" for the root.
 * Returns the list or NULL with err set. */
static getdns_list *load_anchors(const char *path, char *owner, size_t ownerlen, char *err,
                                 size_t errlen)
{
    FILE *f;
    getdns_list *list;
    char line[1024];
    char *rec;
    size_t reclen = 0, nta = 0;
    int depth = 0, lineno = 0, startline = 0;

    if (!path || !path[0]) {
        snprintf(err, errlen, "dns.trust_anchor_file is not set");
        return NULL;
    }
    if (!(f = fopen(path, "r"))) {
        snprintf(err, errlen, "trust anchor file %s: %s", path, strerror(errno));
        return NULL;
    }
    list = getdns_list_create();
    rec = malloc(DNS_ANCHOR_LINE_MAX);
    if (!list || !rec) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    rec[0] = '\0';
    while (fgets(line, sizeof line, f)) {
        lineno++;
        if (!strchr(line, '\n') && !feof(f)) {
            snprintf(err, errlen, "%s:%d: line too long", path, lineno);
            goto fail;
        }
        if (depth == 0 && (line[0] == '$' || line[0] == '#')) {
            LOG_D(COMP, "%s:%d: ignoring \"%.*s\"", path, lineno, (int)strcspn(line, "\r\n"), line);
            continue;
        }
        depth += anchor_clean_line(line);
        if (depth < 0) {
            snprintf(err, errlen, "%s:%d: unbalanced ')'", path, lineno);
            goto fail;
        }
        if (reclen == 0) {
            if (blank(line))
                continue;
            startline = lineno;
        }
        size_t l = strlen(line);
        if (reclen + l + 2 > DNS_ANCHOR_LINE_MAX) {
            snprintf(err, errlen, "%s:%d: record too long", path, startline);
            goto fail;
        }
        memcpy(rec + reclen, line, l);
        reclen += l;
        rec[reclen++] = ' ';
        rec[reclen] = '\0';
        if (depth > 0)
            continue;

        getdns_dict *rr = NULL;
        getdns_return_t r = getdns_str2rr_dict(rec, &rr, ".", 3600);
        if (r != GETDNS_RETURN_GOOD || !rr) {
            snprintf(err, errlen, "%s:%d: cannot parse trust anchor \"%.60s\": %s", path,
                     startline, rec, getdns_get_errorstr_by_id((uint16_t)r));
            if (rr)
                getdns_dict_destroy(rr);
            goto fail;
        }
        uint32_t t = rr_type(rr);
        if (t != GETDNS_RRTYPE_DS && t != GETDNS_RRTYPE_DNSKEY) {
            snprintf(err, errlen, "%s:%d: trust anchor is not a DS or DNSKEY record (type %u)",
                     path, startline, (unsigned)t);
            getdns_dict_destroy(rr);
            goto fail;
        }
        if (nta == 0 && rr_owner(rr, owner, ownerlen) != 0) {
            snprintf(err, errlen, "%s:%d: trust anchor with an unreadable owner name", path,
                     startline);
            getdns_dict_destroy(rr);
            goto fail;
        }
        if (nta > 0) {
            char other[MXG_DNS_NAME_MAX];
            if (rr_owner(rr, other, sizeof other) == 0 && strcmp(other, owner) != 0)
                LOG_N(COMP, "%s:%d: trust anchor for %s. next to one for %s.: the DNSSEC "
                      "self-check only asks for DNSKEY %s.", path, startline, other, owner, owner);
        }
        if (getdns_list_set_dict(list, nta, rr) != GETDNS_RETURN_GOOD) {
            snprintf(err, errlen, "out of memory");
            getdns_dict_destroy(rr);
            goto fail;
        }
        getdns_dict_destroy(rr);
        nta++;
        reclen = 0;
        rec[0] = '\0';
    }
    if (ferror(f)) {
        snprintf(err, errlen, "trust anchor file %s: read error", path);
        goto fail;
    }
    if (depth != 0) {
        snprintf(err, errlen, "%s:%d: unterminated '('", path, startline);
        goto fail;
    }
    if (nta == 0) {
        snprintf(err, errlen, "trust anchor file %s holds no DS or DNSKEY record", path);
        goto fail;
    }
    LOG_D(COMP, "%zu trust anchor(s) from %s", nta, path);
    fclose(f);
    free(rec);
    return list;
fail:
    fclose(f);
    free(rec);
    if (list)
        getdns_list_destroy(list);
    return NULL;
}

/* Parse a root hints file (zone-file syntax, as named.root: NS, A and AAAA
 * records, one per line) into the list getdns_context_set_dns_root_servers()
 * takes: its NS records at "." and A / AAAA records as rr dicts (Debian's
 * getdns 1.6 writes them out as a hints file for libunbound, which ignores
 * hints without NS records at the root: then it would ask the real root).
 * NULL with err when the file cannot be read, a record cannot be parsed, or
 * it holds no NS record for "." or no address. */
static getdns_list *load_root_hints(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    getdns_list *list = getdns_list_create();
    char line[1024], owner[MXG_DNS_NAME_MAX];
    size_t n = 0, nns = 0, naddr = 0;
    int lineno = 0;

    if (!f || !list) {
        snprintf(err, errlen, "root hints file %s: %s", path, f ? "out of memory" : strerror(errno));
        goto fail;
    }
    while (fgets(line, sizeof line, f)) {
        lineno++;
        if (line[0] == '$' || line[0] == '#')
            continue;
        if (anchor_clean_line(line) != 0) {
            snprintf(err, errlen, "%s:%d: parentheses are not supported here", path, lineno);
            goto fail;
        }
        if (blank(line))
            continue;
        getdns_dict *rr = NULL;
        getdns_return_t r = getdns_str2rr_dict(line, &rr, ".", 3600000);
        if (r != GETDNS_RETURN_GOOD || !rr) {
            snprintf(err, errlen, "%s:%d: cannot parse \"%.60s\": %s", path, lineno, line,
                     getdns_get_errorstr_by_id((uint16_t)r));
            if (rr)
                getdns_dict_destroy(rr);
            goto fail;
        }
        uint32_t t = rr_type(rr);
        int root_ns = t == GETDNS_RRTYPE_NS && rr_owner(rr, owner, sizeof owner) == 0 && !owner[0];
        if (root_ns || t == GETDNS_RRTYPE_A || t == GETDNS_RRTYPE_AAAA) {
            if (getdns_list_set_dict(list, n++, rr)) {
                snprintf(err, errlen, "out of memory");
                getdns_dict_destroy(rr);
                goto fail;
            }
            nns += root_ns;
            naddr += !root_ns;
        }
        getdns_dict_destroy(rr);
    }
    if (nns == 0 || naddr == 0) {
        snprintf(err, errlen, "root hints file %s holds no %s", path,
                 nns ? "A or AAAA record" : "NS record for \".\"");
        goto fail;
    }
    fclose(f);
    LOG_D(COMP, "%zu root server address(es) from %s", naddr, path);
    return list;
fail:
    if (f)
        fclose(f);
    if (list)
        getdns_list_destroy(list);
    return NULL;
}

/* Append "addr:port" of sa to dns->upstream (", "-separated) at *o. */
static void upstream_text(struct mxg_dns *dns, size_t *o, const struct sockaddr *sa)
{
    char a[INET6_ADDRSTRLEN] = "?";
    unsigned port = 0;
    int w;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &sin->sin_addr, a, sizeof a);
        port = ntohs(sin->sin_port);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &sin6->sin6_addr, a, sizeof a);
        port = ntohs(sin6->sin6_port);
    }
    if (*o >= sizeof dns->upstream)
        return;
    w = snprintf(dns->upstream + *o, sizeof dns->upstream - *o, "%s%s%s%s:%u", *o ? ", " : "",
                 sa->sa_family == AF_INET6 ? "[" : "", a, sa->sa_family == AF_INET6 ? "]" : "",
                 port ? port : 53);
    if (w > 0)
        *o += (size_t)w;
}

/* Close callback of the idle handle: the last reference to struct mxg_dns. */
static void on_idle_closed(uv_handle_t *h)
{
    free(h->data);
}

#define GD_CHECK(call, what)                                                                       \
    do {                                                                                           \
        getdns_return_t r_ = (call);                                                               \
        if (r_ != GETDNS_RETURN_GOOD) {                                                            \
            snprintf(err, errlen, "getdns: %s: %s", what, getdns_get_errorstr_by_id((uint16_t)r_)); \
            goto fail;                                                                             \
        }                                                                                          \
    } while (0)

/* One getdns context for dns (its log callback), with cfg's timeout and
 * dnssec settings, anchors, and either (ups != NULL: stub) the upstreams ups
 * over transport udp (1: UDP, TCP when truncated) or TCP only (0), or (ups
 * NULL: recursive) resolution from the root servers of hints (NULL: getdns'
 * built-in ones), on its own event loop (mxg_dnsloop) over loop. Returns it,
 * or NULL with err. */
static getdns_context *ctx_make(struct mxg_dns *dns, uv_loop_t *loop, const struct mxg_config *cfg,
                                getdns_list *ups, getdns_list *hints, getdns_list *anchors, int udp,
                                char *err, size_t errlen)
{
    getdns_context *ctx = NULL;
    struct mxg_dnsloop *evloop = NULL;

    GD_CHECK(getdns_context_create(&ctx, 0), "context_create");
    (void)getdns_context_set_logfunc(ctx, dns, GETDNS_LOG_SYS_RESOLVING | GETDNS_LOG_SYS_ANCHOR,
                                     GETDNS_LOG_WARNING, getdns_log_cb);
    GD_CHECK(getdns_context_set_resolution_type(ctx, ups ? GETDNS_RESOLUTION_STUB
                                                         : GETDNS_RESOLUTION_RECURSING),
             "set_resolution_type");
    if (!ups && hints)
        GD_CHECK(getdns_context_set_dns_root_servers(ctx, hints), "set_dns_root_servers");
    if (ups) {
        GD_CHECK(getdns_context_set_upstream_recursive_servers(ctx, ups),
                 "set_upstream_recursive_servers");
        /* dns.transport. Signed answers often exceed the 1232 octets that
         * servers send over UDP (NSEC3 denials and DNSKEY sets of RSA zones:
         * ~1.5-2 KB), and getdns 1.6.0's UDP->TCP fallback loses queries:
         * it closes the TCP upstream's socket while a fallen-back query is
         * still pending on it and keeps an event on the dead number, so the
         * lookup ends only at dns_timeout (TEMPFAIL, mail deferred). TCP
         * only (the default) never truncates and is immune to resolvers'
         * UDP rate limiting (RRL slips, which truncate too). getdns 1.6 does
         * not fall back from a refused TCP to UDP: mxguard asks again over a
         * UDP context itself (on_getdns). */
        getdns_transport_list_t tl[2] = {GETDNS_TRANSPORT_UDP, GETDNS_TRANSPORT_TCP};
        if (!udp)
            tl[0] = GETDNS_TRANSPORT_TCP;
        GD_CHECK(getdns_context_set_dns_transport_list(ctx, udp ? 2 : 1, tl),
                 "set_dns_transport_list");
    }
    if (cfg->t_dns > 0)
        GD_CHECK(getdns_context_set_timeout(ctx, cfg->t_dns), "set_timeout");
    GD_CHECK(getdns_context_set_dnssec_trust_anchors(ctx, anchors), "set_dnssec_trust_anchors");
    /* Our anchors are the only ones: getdns must never fetch root-anchors.xml
     * from the Internet by itself (it does when validation of the root
     * DNSKEY fails and its appdata directory is writable). A directory that
     * cannot exist keeps that machinery off; a long back-off keeps it quiet. */
    GD_CHECK(getdns_context_set_appdata_dir(ctx, "/nonexistent/mxguard-no-getdns-appdata"),
             "set_appdata_dir");
    GD_CHECK(getdns_context_set_trust_anchors_backoff_time(ctx, UINT64_C(1) << 40),
             "set_trust_anchors_backoff_time");
    /* getdns owns the event loop once it took it (its cleanup runs in
     * getdns_context_destroy()); one it did not take is discarded here */
    if (!(evloop = mxg_dnsloop_new(loop))) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    if (getdns_context_set_eventloop(ctx, mxg_dnsloop_eventloop(evloop)) != GETDNS_RETURN_GOOD) {
        mxg_dnsloop_discard(evloop);
        snprintf(err, errlen, "getdns: set_eventloop failed");
        goto fail;
    }
    return ctx;
fail:
    if (ctx)
        getdns_context_destroy(ctx);
    return NULL;
}

/* Contract: see dns.h. Returns NULL with err set on any configuration error
 * (bad/missing trust anchor file, no DNS server, getdns failure). */
struct mxg_dns *mxg_dns_new(uv_loop_t *loop, const struct mxg_config *cfg, char *err, size_t errlen)
{
    struct mxg_dns *dns = NULL;
    getdns_list *anchors = NULL, *ups = NULL, *hints = NULL;
    int stub = cfg && cfg->dns_mode != MXG_DNS_RECURSIVE;      /* a stub path */
    int rec = cfg && cfg->dns_mode != MXG_DNS_STUB;            /* a recursive path */

    if (!loop || !cfg) {
        snprintf(err, errlen, "mxg_dns_new: invalid arguments");
        return NULL;
    }
    if (!(dns = calloc(1, sizeof *dns))) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    dns->loop = loop;

    if (!(anchors = load_anchors(cfg->trust_anchor_file, dns->anchor_owner,
                                 sizeof dns->anchor_owner, err, errlen)))
        goto fail;
    mxg_str_copy(dns->anchor_file, sizeof dns->anchor_file, cfg->trust_anchor_file);
    if (rec && cfg->dns_root_hints[0] &&
        !(hints = load_root_hints(cfg->dns_root_hints, err, errlen)))
        goto fail;
    snprintf(dns->rupstream, sizeof dns->rupstream, "the root servers (%s%s)",
             hints ? "dns.root_hints " : "built-in hints",
             hints ? cfg->dns_root_hints : "");
    snprintf(dns->upstream, sizeof dns->upstream, "%s", stub ? "?" : dns->rupstream);
    dns->path = stub ? MXG_DNS_PATH_STUB : MXG_DNS_PATH_RECURSIVE;

    if (stub) {
        struct sockaddr_storage rc[DNS_MAX_UPSTREAMS];
        int n = cfg->n_dns_servers;
        if (!(ups = getdns_list_create())) {
            snprintf(err, errlen, "out of memory");
            goto fail;
        }
        size_t o = 0;
        dns->upstream[0] = '\0';
        if (n > 0) {
            for (int i = 0; i < n; i++) {
                if (add_upstream(ups, (size_t)i, (const struct sockaddr *)&cfg->dns_servers[i].sa,
                                 err, errlen))
                    goto fail;
                upstream_text(dns, &o, (const struct sockaddr *)&cfg->dns_servers[i].sa);
            }
        } else if ((n = read_resolv_conf(DNS_RESOLV_CONF, rc, DNS_MAX_UPSTREAMS, err, errlen)) < 0) {
            if (!rec)
                goto fail;
            /* auto mode without a stub resolver (a container without one):
             * the recursive path alone, as in recursive mode */
            LOG_W(COMP, "%s; dns.mode auto resolves from the root servers", err);
            snprintf(dns->upstream, sizeof dns->upstream, "none (%.160s)", err);
            getdns_list_destroy(ups);
            ups = NULL;
            stub = 0;
            dns->path = MXG_DNS_PATH_RECURSIVE;
        } else {
            for (int i = 0; i < n; i++) {
                if (add_upstream(ups, (size_t)i, (const struct sockaddr *)&rc[i], err, errlen))
                    goto fail;
                upstream_text(dns, &o, (const struct sockaddr *)&rc[i]);
            }
            LOG_I(COMP, "using %d nameserver(s) from %s", n, DNS_RESOLV_CONF);
        }
        size_t ul = strlen(dns->upstream);
        if (stub)
            snprintf(dns->upstream + ul, sizeof dns->upstream - ul, " over %s",
                     cfg->dns_transport == MXG_DNS_UDP ? "UDP (TCP when truncated)" : "TCP");
    }
    if (!(dns->ctx = ctx_make(dns, loop, cfg, ups, hints, anchors,
                              cfg->dns_transport == MXG_DNS_UDP, err, errlen)))
        goto fail;
    if (stub && cfg->dns_transport == MXG_DNS_TCP &&
        !(dns->ctx_udp = ctx_make(dns, loop, cfg, ups, NULL, anchors, 1, err, errlen)))
        goto fail;
    if (stub && rec && !(dns->rctx = ctx_make(dns, loop, cfg, NULL, hints, anchors, 0, err, errlen)))
        goto fail;

    if (!(dns->ext = getdns_dict_create())) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    /* dane.enabled = false is the operator's explicit "this resolver path
     * cannot do DNSSEC": no validation, every answer insecure, no DANE. */
    dns->validate = cfg->dane_enabled;
    if (dns->validate) {
        GD_CHECK(getdns_dict_set_int(dns->ext, "dnssec_return_status", GETDNS_EXTENSION_TRUE),
                 "extensions");
        GD_CHECK(getdns_dict_set_int(dns->ext, "dnssec_return_all_statuses",
                                     GETDNS_EXTENSION_TRUE),
                 "extensions");
    } else {
        LOG_W(COMP, "DNSSEC validation is off (dane.enabled = false): every answer is treated "
                    "as insecure");
    }

    if (cfg->dns_cache_size > 0) {
        dns->cache = mxg_dnscache_new((size_t)cfg->dns_cache_size, cfg->dns_cache_max_ttl_ms,
                                      cfg->dns_negative_ttl_ms);
        if (!dns->cache) {
            snprintf(err, errlen, "out of memory");
            goto fail;
        }
    }
    if (uv_idle_init(loop, &dns->idle) != 0) {
        snprintf(err, errlen, "uv_idle_init failed");
        goto fail;
    }
    dns->idle.data = dns;
    getdns_list_destroy(anchors);
    if (ups)
        getdns_list_destroy(ups);
    if (hints)
        getdns_list_destroy(hints);
    LOG_D(COMP, "resolver ready (%s mode)",
          cfg->dns_mode == MXG_DNS_AUTO ? "auto" : stub ? "stub" : "recursive");
    return dns;

fail:
    if (anchors)
        getdns_list_destroy(anchors);
    if (ups)
        getdns_list_destroy(ups);
    if (hints)
        getdns_list_destroy(hints);
    mxg_dnscache_free(dns->cache);
    if (dns->ext)
        getdns_dict_destroy(dns->ext);
    if (dns->ctx)
        getdns_context_destroy(dns->ctx);
    if (dns->ctx_udp)
        getdns_context_destroy(dns->ctx_udp);
    if (dns->rctx)
        getdns_context_destroy(dns->rctx);
    free(dns);
    return NULL;
}

/* Contract: dns may be NULL. Cancels every outstanding query (no callback
 * runs afterwards), destroys the getdns context and closes the uv handles;
 * memory is released by their close callbacks, so run the loop once more
 * before uv_loop_close(). Safe to call from inside a dns callback.
 * Layers built on top (mxg_route_*) must cancel their own queries first:
 * their callbacks will not run either, so their memory would be lost. */
void mxg_dns_free(struct mxg_dns *dns)
{
    if (!dns || dns->freeing)
        return;
    dns->freeing = 1;
    while (dns->ready.head) {
        struct mxg_dns_query *q = dns->ready.head;
        qlist_remove(&dns->ready, q);
        query_free(q);
    }
    while (dns->pending.head)
        mxg_dns_cancel(dns->pending.head);
    /* Destroying also cancels anything getdns still holds; on_getdns() frees
     * the cancelled queries that were waiting for that. */
    getdns_context_destroy(dns->ctx);
    dns->ctx = NULL;
    if (dns->ctx_udp)
        getdns_context_destroy(dns->ctx_udp);
    dns->ctx_udp = NULL;
    if (dns->rctx)
        getdns_context_destroy(dns->rctx);
    dns->rctx = NULL;
    getdns_dict_destroy(dns->ext);
    dns->ext = NULL;
    mxg_dnscache_free(dns->cache);
    dns->cache = NULL;
    if (dns->prev_anchors)
        getdns_list_destroy(dns->prev_anchors);
    dns->prev_anchors = NULL;
    if (dns->idle_active)
        uv_idle_stop(&dns->idle);
    dns->idle_active = 0;
    uv_close((uv_handle_t *)&dns->idle, on_idle_closed);
}

/* ------------------------------------------------------------ operations */

void mxg_dns_set_metrics(struct mxg_dns *dns, struct mxg_metrics *m)
{
    dns->metrics = m;
}

size_t mxg_dns_cache_entries(const struct mxg_dns *dns)
{
    struct mxg_dnscache_stats st = {0};
    if (dns && dns->cache)
        mxg_dnscache_stats(dns->cache, &st);
    return st.entries;
}

/* Contract: see dns.h. */
int mxg_dns_reload_anchors(struct mxg_dns *dns, const char *path, char *err, size_t errlen)
{
    char owner[MXG_DNS_NAME_MAX];
    getdns_list *anchors = load_anchors(path, owner, sizeof owner, err, errlen), *old = NULL;
    if (!anchors)
        return -1;
    if (getdns_context_get_dnssec_trust_anchors(dns->ctx, &old) != GETDNS_RETURN_GOOD)
        old = NULL;
    getdns_return_t r = getdns_context_set_dnssec_trust_anchors(dns->ctx, anchors);
    if (r == GETDNS_RETURN_GOOD && dns->ctx_udp &&
        (r = getdns_context_set_dnssec_trust_anchors(dns->ctx_udp, anchors)) != GETDNS_RETURN_GOOD &&
        old)
        (void)getdns_context_set_dnssec_trust_anchors(dns->ctx, old); /* both or neither */
    getdns_list_destroy(anchors);
    if (r != GETDNS_RETURN_GOOD) {
        if (old)
            getdns_list_destroy(old);
        snprintf(err, errlen, "getdns: set_dnssec_trust_anchors: %s",
                 getdns_get_errorstr_by_id((uint16_t)r));
        return -1;
    }
    if (dns->prev_anchors)
        getdns_list_destroy(dns->prev_anchors);
    dns->prev_anchors = old;
    mxg_str_copy(dns->prev_owner, sizeof dns->prev_owner, dns->anchor_owner);
    mxg_str_copy(dns->prev_file, sizeof dns->prev_file, dns->anchor_file);
    mxg_str_copy(dns->anchor_owner, sizeof dns->anchor_owner, owner);
    mxg_str_copy(dns->anchor_file, sizeof dns->anchor_file, path);
    /* answers validated under the old anchors are not reused */
    if (dns->cache)
        mxg_dnscache_purge(dns->cache, UINT64_MAX);
    LOG_N(COMP, "trust anchors reloaded from %s", path);
    return 0;
}

/* Contract: see dns.h. */
int mxg_dns_revert_anchors(struct mxg_dns *dns)
{
    if (!dns->prev_anchors)
        return -1;
    if (getdns_context_set_dnssec_trust_anchors(dns->ctx, dns->prev_anchors) != GETDNS_RETURN_GOOD)
        return -1;
    if (dns->ctx_udp &&
        getdns_context_set_dnssec_trust_anchors(dns->ctx_udp, dns->prev_anchors) != GETDNS_RETURN_GOOD)
        return -1;
    getdns_list_destroy(dns->prev_anchors);
    dns->prev_anchors = NULL;
    mxg_str_copy(dns->anchor_owner, sizeof dns->anchor_owner, dns->prev_owner);
    mxg_str_copy(dns->anchor_file, sizeof dns->anchor_file, dns->prev_file);
    if (dns->cache)
        mxg_dnscache_purge(dns->cache, UINT64_MAX);
    LOG_W(COMP, "previous trust anchors restored");
    return 0;
}

/* ------------------------------------------------------------ resolver paths */

/* Contract: see dns.h. */
const char *mxg_dns_path_name(enum mxg_dns_path p)
{
    return p == MXG_DNS_PATH_RECURSIVE ? "recursive" : "stub";
}

/* Contract: see dns.h. */
int mxg_dns_has_path(const struct mxg_dns *dns, enum mxg_dns_path p)
{
    if (!dns || (p != MXG_DNS_PATH_STUB && p != MXG_DNS_PATH_RECURSIVE))
        return 0;
    return dns->rctx != NULL || dns->path == p;
}

/* Contract: see dns.h. */
enum mxg_dns_path mxg_dns_path_in_use(const struct mxg_dns *dns)
{
    return dns ? dns->path : MXG_DNS_PATH_STUB;
}

/* Contract: see dns.h. */
int mxg_dns_set_path(struct mxg_dns *dns, enum mxg_dns_path p)
{
    if (!mxg_dns_has_path(dns, p))
        return -1;
    if (dns->path != p)
        LOG_D(COMP, "new lookups go to the %s path (%s)", mxg_dns_path_name(p),
              mxg_dns_path_desc(dns, p));
    dns->path = p;
    return 0;
}

/* Contract: see dns.h. */
const char *mxg_dns_path_desc(const struct mxg_dns *dns, enum mxg_dns_path p)
{
    if (!dns)
        return "?";
    return p == MXG_DNS_PATH_RECURSIVE ? dns->rupstream : dns->upstream;
}
