/* tests/unit/dns_fixture.h — an in-process DNS server for unit tests, on
 * the test's libuv loop (UDP and TCP on 127.0.0.1, one ephemeral port):
 * three zones ("." and "sec." signed with a key made at start, whose
 * DNSKEY is the trust anchor; "example." unsigned), answers with CNAME
 * chains, NODATA/NXDOMAIN with SOA (+ NSEC in signed zones), SERVFAIL for
 * names containing "servfail", TC over UDP when the answer exceeds the
 * query's EDNS payload size (the resolver then asks over TCP), and a
 * "silent" switch (timeouts). Used by test_dns_txt.c and
 * test_policy_sts_txt.c (the TXT RRsets of §Limits: 40 records with the
 * STS one last, records of 1024 and 3000 octets, two STS records).
 *
 * Use: dfx_start(loop, srv, anchor) (srv zeroed), dfx_config(&cfg, ...)
 * after mxg_config_defaults(), ...; dfx_stop(srv) before the loop's last
 * uv_run(), dfx_free(srv, anchor) after it. Everything is static: one
 * includer per test program. */
#ifndef MXG_TEST_DNS_FIXTURE_H
#define MXG_TEST_DNS_FIXTURE_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cmocka.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <uv.h>

#include "core/config.h"

#define T_A 1
#define T_NS 2
#define T_CNAME 5
#define T_SOA 6
#define T_MX 15
#define T_TXT 16
#define T_DS 43
#define T_OPT 41
#define T_RRSIG 46
#define T_NSEC 47
#define T_DNSKEY 48

/* ------------------------------------------------------------ fake zones */

/* The fake resolver answers from three zones, like a validating-agnostic
 * recursive server that passes DNSSEC records through:
 *   "."        signed (its DNSKEY is the trust anchor); delegates example.
 *              WITHOUT a DS (NSEC proves it: example. is insecure) and sec.
 *              with a DS
 *   example.   unsigned: TXT records of every shape (answers are INSECURE)
 *   sec.       signed with the same key: txt.sec. (SECURE), bad.sec. (its
 *              RRSIG corrupted: BOGUS)
 * Signatures: ECDSA P-256 / SHA-256 (algorithm 13), made when the fixture
 * starts. Names are kept lower case, without the trailing dot ("" = root). */

#define MAX_RR 512
#define RD_MAX 3100

struct rr {
    char zone[16];    /* the zone it belongs to: "", "example" or "sec" */
    int nosign;       /* a delegation's NS set: not signed by the parent */
    char owner[64];
    uint16_t type;
    uint32_t ttl;
    uint16_t covered; /* RRSIG: type covered */
    size_t rdlen;
    uint8_t rd[RD_MAX];
};

struct srv {
    uv_udp_t udp;
    uv_tcp_t tcp; /* the same port over TCP */
    int port;
    EVP_PKEY *key;
    uint8_t dnskey[4 + 64];
    uint16_t tag;
    struct rr rr[MAX_RR];
    int nrr;
    const char *cur;  /* zone of the records being added */
    int queries;     /* every query received */
    int txt_queries; /* TXT queries */
    char last[256];  /* last TXT qname */
    int silent;      /* drop every query (timeout) */
};

struct pkt {
    uint8_t b[16384];
    size_t n;
};

static void p_u8(struct pkt *p, unsigned v)
{
    assert_true(p->n + 1 <= sizeof p->b);
    p->b[p->n++] = (uint8_t)v;
}
static void p_u16(struct pkt *p, unsigned v)
{
    p_u8(p, v >> 8);
    p_u8(p, v & 0xff);
}
static void p_u32(struct pkt *p, uint32_t v)
{
    p_u16(p, v >> 16);
    p_u16(p, v & 0xffff);
}
static void p_bytes(struct pkt *p, const void *d, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p_u8(p, ((const uint8_t *)d)[i]);
}
/* wire form of a text name ("" = root) */
static void p_name(struct pkt *p, const char *name)
{
    while (*name) {
        const char *dot = strchr(name, '.');
        size_t l = dot ? (size_t)(dot - name) : strlen(name);
        p_u8(p, (unsigned)l);
        p_bytes(p, name, l);
        name += l + (dot ? 1 : 0);
    }
    p_u8(p, 0);
}

static int nlabels(const char *name)
{
    int n = name[0] ? 1 : 0;
    for (const char *c = name; *c; c++)
        n += *c == '.';
    return n;
}

/* name == apex or below it */
static int under(const char *name, const char *apex)
{
    size_t n = strlen(name), a = strlen(apex);
    if (!apex[0] || strcmp(name, apex) == 0)
        return 1;
    return n > a && name[n - a - 1] == '.' && strcmp(name + n - a, apex) == 0;
}

static struct rr *add_rr(struct srv *s, const char *owner, unsigned type, uint32_t ttl,
                         const void *rd, size_t rdlen)
{
    assert_true(s->nrr < MAX_RR && rdlen <= RD_MAX);
    struct rr *r = &s->rr[s->nrr++];
    memset(r, 0, sizeof *r);
    snprintf(r->zone, sizeof r->zone, "%s", s->cur);
    snprintf(r->owner, sizeof r->owner, "%s", owner);
    r->type = (uint16_t)type;
    r->ttl = ttl;
    r->rdlen = rdlen;
    memcpy(r->rd, rd, rdlen);
    return r;
}

/* TXT from n character-strings (lengths given: NULs allowed) */
static void add_txt(struct srv *s, const char *owner, uint32_t ttl, int n, const char *const *str,
                    const size_t *len)
{
    struct pkt rd = {.n = 0};
    for (int i = 0; i < n; i++) {
        assert_true(len[i] <= 255);
        p_u8(&rd, (unsigned)len[i]);
        p_bytes(&rd, str[i], len[i]);
    }
    add_rr(s, owner, T_TXT, ttl, rd.b, rd.n);
}
static void add_txt1(struct srv *s, const char *owner, uint32_t ttl, const char *str)
{
    size_t l = strlen(str);
    add_txt(s, owner, ttl, 1, &str, &l);
}
/* Octet i of the 3000-octet record of add_big(). */
static char big_octet(size_t i)
{
    return (char)('a' + (i * 7 + i / 255) % 26);
}
/* One TXT record of 3000 octets in 12 character-strings (11 x 255 + 195). */
static void add_big(struct srv *s, const char *owner)
{
    static char big[3000];
    const char *v[12];
    size_t l[12];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = big_octet(i);
    for (int k = 0; k < 12; k++) {
        v[k] = big + 255 * k;
        l[k] = k < 11 ? 255 : 3000 - 255 * 11;
    }
    add_txt(s, owner, 300, 12, v, l);
}
static void add_name_rr(struct srv *s, const char *owner, unsigned type, uint32_t ttl,
                        const char *target)
{
    struct pkt rd = {.n = 0};
    p_name(&rd, target);
    add_rr(s, owner, type, ttl, rd.b, rd.n);
}
static void add_soa(struct srv *s, const char *apex)
{
    struct pkt rd = {.n = 0};
    p_name(&rd, "ns.example");
    p_name(&rd, "hostmaster.example");
    p_u32(&rd, 1);
    p_u32(&rd, 3600);
    p_u32(&rd, 600);
    p_u32(&rd, 86400);
    p_u32(&rd, 30); /* minimum: negative answers live min(SOA TTL 60, 30) */
    add_rr(s, apex, T_SOA, 60, rd.b, rd.n);
}
/* NSEC owner -> next with the types listed (all < 256), 0-terminated */
static void add_nsec(struct srv *s, const char *owner, const char *next, const unsigned *types)
{
    struct pkt rd = {.n = 0};
    uint8_t bm[32] = {0};
    unsigned max = 0;
    p_name(&rd, next);
    for (const unsigned *t = types; *t; t++) {
        bm[*t / 8] |= (uint8_t)(0x80 >> (*t % 8));
        if (*t > max)
            max = *t;
    }
    p_u8(&rd, 0);
    p_u8(&rd, max / 8 + 1);
    p_bytes(&rd, bm, max / 8 + 1);
    add_rr(s, owner, T_NSEC, 60, rd.b, rd.n);
}

static int rd_cmp(const void *a, const void *b)
{
    const struct rr *x = *(const struct rr *const *)a, *y = *(const struct rr *const *)b;
    size_t n = x->rdlen < y->rdlen ? x->rdlen : y->rdlen;
    int c = memcmp(x->rd, y->rd, n);
    return c ? c : (x->rdlen > y->rdlen) - (x->rdlen < y->rdlen);
}

/* RRSIG over the RRset (owner, type) of the zone apex signer (RFC 4034 §3.1.8.1) */
static void sign_rrset(struct srv *s, const char *owner, unsigned type, const char *signer)
{
    struct rr *set[MAX_RR];
    int n = 0;
    for (int i = 0; i < s->nrr; i++)
        if (s->rr[i].type == type && strcmp(s->rr[i].owner, owner) == 0 &&
            strcmp(s->rr[i].zone, signer) == 0)
            set[n++] = &s->rr[i];
    assert_true(n > 0);
    qsort(set, (size_t)n, sizeof set[0], rd_cmp);

    uint32_t now = (uint32_t)time(NULL);
    struct pkt rd = {.n = 0}, data = {.n = 0};
    p_u16(&rd, type);
    p_u8(&rd, 13);
    p_u8(&rd, (unsigned)nlabels(owner));
    p_u32(&rd, set[0]->ttl);
    p_u32(&rd, now + 30 * 86400);
    p_u32(&rd, now - 3600);
    p_u16(&rd, s->tag);
    p_name(&rd, signer);
    p_bytes(&data, rd.b, rd.n);
    for (int i = 0; i < n; i++) {
        p_name(&data, owner);
        p_u16(&data, type);
        p_u16(&data, 1);
        p_u32(&data, set[0]->ttl);
        p_u16(&data, (unsigned)set[i]->rdlen);
        p_bytes(&data, set[i]->rd, set[i]->rdlen);
    }

    unsigned char der[128], rs[64];
    size_t derlen = sizeof der;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    assert_non_null(md);
    assert_int_equal(EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, s->key), 1);
    assert_int_equal(EVP_DigestSign(md, der, &derlen, data.b, data.n), 1);
    EVP_MD_CTX_free(md);
    const unsigned char *dp = der;
    ECDSA_SIG *sig = d2i_ECDSA_SIG(NULL, &dp, (long)derlen);
    assert_non_null(sig);
    assert_int_equal(BN_bn2binpad(ECDSA_SIG_get0_r(sig), rs, 32), 32);
    assert_int_equal(BN_bn2binpad(ECDSA_SIG_get0_s(sig), rs + 32, 32), 32);
    ECDSA_SIG_free(sig);
    p_bytes(&rd, rs, 64);
    const char *cur = s->cur;
    s->cur = signer;
    add_rr(s, owner, T_RRSIG, set[0]->ttl, rd.b, rd.n)->covered = (uint16_t)type;
    s->cur = cur;
}

/* Sign every RRset of zone apex (except delegation NS sets). */
static void sign_zone(struct srv *s, const char *apex)
{
    int n0 = s->nrr;
    for (int i = 0; i < n0; i++) {
        const struct rr *r = &s->rr[i];
        int skip = strcmp(r->zone, apex) != 0 || r->type == T_RRSIG || r->nosign;
        for (int j = 0; j < i && !skip; j++) /* once per RRset */
            if (s->rr[j].type == r->type && strcmp(s->rr[j].owner, r->owner) == 0 &&
                strcmp(s->rr[j].zone, apex) == 0)
                skip = 1;
        if (!skip)
            sign_rrset(s, r->owner, r->type, apex);
    }
}

static void build_zones(struct srv *s)
{
    static const unsigned root_t[] = {T_NS, T_SOA, T_RRSIG, T_NSEC, T_DNSKEY, 0};
    static const unsigned ex_t[] = {T_NS, T_RRSIG, T_NSEC, 0};
    static const unsigned secd_t[] = {T_NS, T_DS, T_RRSIG, T_NSEC, 0};
    static const unsigned sec_t[] = {T_NS, T_SOA, T_RRSIG, T_NSEC, T_DNSKEY, 0};
    static const unsigned txt_t[] = {T_TXT, T_RRSIG, T_NSEC, 0};
    static char a255[255], b255[255], c255[255], d255[255];

    /* key, DNSKEY rdata (flags 257, protocol 3, algorithm 13), key tag */
    unsigned char pub[65];
    size_t publen = 0;
    assert_non_null(s->key = EVP_EC_gen("P-256"));
    assert_int_equal(EVP_PKEY_get_octet_string_param(s->key, OSSL_PKEY_PARAM_PUB_KEY, pub,
                                                     sizeof pub, &publen), 1);
    assert_int_equal(publen, 65); /* 04 || X || Y */
    s->dnskey[0] = 1;
    s->dnskey[1] = 1;
    s->dnskey[2] = 3;
    s->dnskey[3] = 13;
    memcpy(s->dnskey + 4, pub + 1, 64);
    uint32_t ac = 0;
    for (size_t i = 0; i < sizeof s->dnskey; i++)
        ac += (i & 1) ? s->dnskey[i] : (uint32_t)s->dnskey[i] << 8;
    ac += (ac >> 16) & 0xffff;
    s->tag = (uint16_t)(ac & 0xffff);

    /* "." */
    s->cur = "";
    add_soa(s, "");
    add_name_rr(s, "", T_NS, 3600, "ns.example");
    add_rr(s, "", T_DNSKEY, 3600, s->dnskey, sizeof s->dnskey);
    add_nsec(s, "", "example", root_t);
    add_name_rr(s, "example", T_NS, 3600, "ns.example");
    s->rr[s->nrr - 1].nosign = 1;
    add_nsec(s, "example", "sec", ex_t); /* no DS: example. is insecure */
    add_name_rr(s, "sec", T_NS, 3600, "ns.example");
    s->rr[s->nrr - 1].nosign = 1;
    {
        struct pkt ds = {.n = 0}, in = {.n = 0};
        unsigned char dg[32];
        unsigned dglen = 0;
        p_name(&in, "sec");
        p_bytes(&in, s->dnskey, sizeof s->dnskey);
        assert_int_equal(EVP_Digest(in.b, in.n, dg, &dglen, EVP_sha256(), NULL), 1);
        p_u16(&ds, s->tag);
        p_u8(&ds, 13);
        p_u8(&ds, 2);
        p_bytes(&ds, dg, 32);
        add_rr(s, "sec", T_DS, 3600, ds.b, ds.n);
    }
    add_nsec(s, "sec", "", secd_t);

    /* "sec." (signed) */
    s->cur = "sec";
    add_soa(s, "sec");
    add_name_rr(s, "sec", T_NS, 3600, "ns.example");
    add_rr(s, "sec", T_DNSKEY, 3600, s->dnskey, sizeof s->dnskey);
    add_nsec(s, "sec", "bad.sec", sec_t);
    add_txt1(s, "bad.sec", 300, "v=STSv1; id=forged");
    add_nsec(s, "bad.sec", "many.sec", txt_t);
    /* 40 records, the STS one last, and a 3000-octet one (signed) */
    for (int i = 1; i <= 39; i++) {
        char r[16];
        snprintf(r, sizeof r, "s%02d", i);
        add_txt1(s, "many.sec", 300, r);
    }
    add_big(s, "many.sec");
    add_txt1(s, "many.sec", 300, "v=STSv1; id=last");
    add_nsec(s, "many.sec", "txt.sec", txt_t);
    /* _mta-sts of many.sec: the same 40 (SPF-like records first, the STS
     * one last); of dup.sec: 40 records with two STS ones (1st and 30th) */
    for (int i = 1; i <= 39; i++) {
        char r[64];
        snprintf(r, sizeof r, "v=spf1 include:_spf%02d.many.sec -all", i);
        add_txt1(s, "_mta-sts.many.sec", 300, r);
        add_txt1(s, "_mta-sts.dup.sec", 300, i == 30 ? "v=STSv1; id=second" : r);
    }
    add_txt1(s, "_mta-sts.many.sec", 300, "v=STSv1; id=last");
    add_txt1(s, "_mta-sts.dup.sec", 300, "v=STSv1; id=first");
    add_txt1(s, "txt.sec", 300, "v=STSv1; id=secure");
    add_nsec(s, "txt.sec", "sec", txt_t);

    /* "example." (unsigned) */
    s->cur = "example";
    add_soa(s, "example");
    add_name_rr(s, "example", T_NS, 3600, "ns.example");
    add_txt1(s, "txt.example", 300, "v=STSv1; id=20240101");
    {
        const char *v[] = {"v=STSv1; ", "id=", "split"};
        const size_t l[] = {9, 3, 5};
        add_txt(s, "split.example", 300, 3, v, l);
    }
    {
        const char *v[] = {"a\0b", "", "\0"};
        const size_t l[] = {3, 0, 1};
        add_txt(s, "nul.example", 300, 3, v, l);
    }
    memset(a255, 'a', 255);
    memset(b255, 'b', 255);
    memset(c255, 'c', 255);
    memset(d255, 'd', 255);
    {
        const char *v[] = {a255, b255, c255, d255, "tail"};
        const size_t l[] = {255, 255, 255, 255, 4}; /* 1024 octets (the old cap was 1023) */
        add_txt(s, "long.example", 300, 5, v, l);
    }
    add_big(s, "big.example");
    /* a TXT RRset with one good record and one whose character-string
     * overruns its RDATA (length octet 9, 2 octets follow) */
    add_txt1(s, "cut.example", 300, "v=STSv1; id=good");
    add_rr(s, "cut.example", T_TXT, 300, "\x09" "ab", 3);
    {
        /* MX whose exchange is 4 labels of 60 octets "a.a.": 240 octets on
         * the wire, but each '.' inside a label is "\." in text (> 255) */
        struct pkt rd = {.n = 0};
        p_u16(&rd, 10);
        for (int l = 0; l < 4; l++) {
            p_u8(&rd, 60);
            for (int i = 0; i < 60; i++)
                p_u8(&rd, i % 2 ? '.' : 'a');
        }
        p_u8(&rd, 0);
        add_rr(s, "badmx.example", T_MX, 300, rd.b, rd.n);
    }
    add_txt1(s, "two.example", 300, "first");
    add_txt1(s, "two.example", 300, "second");
    /* 40 records (the old cap kept 16), the STS one last */
    for (int i = 1; i <= 39; i++) {
        char r[16];
        snprintf(r, sizeof r, "r%02d", i);
        add_txt1(s, "many.example", 300, r);
    }
    add_txt1(s, "many.example", 300, "v=STSv1; id=last");
    add_name_rr(s, "alias.example", T_CNAME, 300, "txt.example");
    add_name_rr(s, "hop.example", T_CNAME, 300, "txt.example"); /* served without its target */
    add_name_rr(s, "other.example", T_CNAME, 300, "txt.sec");   /* into the signed zone */
    /* a chain of 80 CNAMEs (the server answers 8 links at a time), and a loop */
    for (int i = 1; i <= 80; i++) {
        char o[32], t[32];
        snprintf(o, sizeof o, "c%02d.example", i);
        snprintf(t, sizeof t, i < 80 ? "c%02d.example" : "txt.example", i + 1);
        add_name_rr(s, o, T_CNAME, 300, t);
    }
    add_name_rr(s, "loop1.example", T_CNAME, 300, "loop2.example");
    add_name_rr(s, "loop2.example", T_CNAME, 300, "loop1.example");
    add_txt1(s, "short.example", 1, "short-lived"); /* cached for 1 s */
    add_txt1(s, "zero.example", 0, "not cached");
    add_rr(s, "nodata.example", T_A, 300, "\x7f\0\0\1", 4);

    sign_zone(s, "");
    sign_zone(s, "sec");
    /* bad.sec.: flip a bit of the signature over its TXT RRset */
    for (int i = 0; i < s->nrr; i++)
        if (s->rr[i].type == T_RRSIG && s->rr[i].covered == T_TXT &&
            strcmp(s->rr[i].owner, "bad.sec") == 0)
            s->rr[i].rd[s->rr[i].rdlen - 1] ^= 0x01;
}

/* The zone whose data answers (qname, qtype): the deepest apex above
 * qname, except that DS at an apex comes from the parent. */
static const char *zone_of(const char *qname, unsigned qtype)
{
    if (under(qname, "sec") && !(qtype == T_DS && strcmp(qname, "sec") == 0))
        return "sec";
    if (under(qname, "example") && !(qtype == T_DS && strcmp(qname, "example") == 0))
        return "example";
    return "";
}

/* Append the RRset (owner, type) and, from a signed zone, its RRSIGs.
 * Returns the number of records added. */
static int put_rrset(struct srv *s, struct pkt *p, const char *zone, const char *owner,
                     unsigned type)
{
    int n = 0;
    for (int i = 0; i < s->nrr; i++) {
        const struct rr *r = &s->rr[i];
        if (strcmp(r->owner, owner) != 0 || strcmp(r->zone, zone) != 0)
            continue;
        if (r->type != type && !(r->type == T_RRSIG && r->covered == type))
            continue;
        p_name(p, r->owner);
        p_u16(p, r->type);
        p_u16(p, 1);
        p_u32(p, r->ttl);
        p_u16(p, (unsigned)r->rdlen);
        p_bytes(p, r->rd, r->rdlen);
        n++;
    }
    return n;
}

static int has(struct srv *s, const char *owner, unsigned type, const char *zone)
{
    for (int i = 0; i < s->nrr; i++)
        if (strcmp(s->rr[i].owner, owner) == 0 && (type == 0 || s->rr[i].type == type) &&
            strcmp(s->rr[i].zone, zone) == 0)
            return 1;
    return 0;
}

/* Build the answer to (qname, qtype). Returns the rcode; -1 to drop. */
static int answer(struct srv *s, const char *qname, unsigned qtype, struct pkt *an, int *nan,
                  struct pkt *ns, int *nns)
{
    char name[256];
    const char *z = zone_of(qname, qtype);

    if (s->silent)
        return -1;
    if (qtype == T_TXT) {
        s->txt_queries++;
        snprintf(s->last, sizeof s->last, "%s", qname);
    }
    if (strstr(qname, "servfail"))
        return 2;
    snprintf(name, sizeof name, "%s", qname);
    for (int hop = 0; hop < 8; hop++) {
        if (has(s, name, qtype, z)) {
            *nan += put_rrset(s, an, z, name, qtype);
            return 0;
        }
        if (qtype == T_CNAME || !has(s, name, T_CNAME, z))
            break;
        *nan += put_rrset(s, an, z, name, T_CNAME);
        const struct rr *c = NULL;
        for (int i = 0; i < s->nrr && !c; i++)
            if (s->rr[i].type == T_CNAME && strcmp(s->rr[i].owner, name) == 0)
                c = &s->rr[i];
        if (strncmp(name, "hop.", 4) == 0)
            return 0; /* like an authoritative server: the target is elsewhere */
        /* rdata: an uncompressed wire name */
        size_t o = 0, pos = 0;
        while (pos < c->rdlen && c->rd[pos]) {
            size_t l = c->rd[pos++];
            if (o)
                name[o++] = '.';
            memcpy(name + o, c->rd + pos, l);
            o += l;
            pos += l;
        }
        name[o] = '\0';
        z = zone_of(name, qtype);
    }
    /* negative: SOA (+ NSEC proofs in signed zones) */
    *nns += put_rrset(s, ns, z, z, T_SOA);
    int exists = has(s, name, 0, z);
    if (strcmp(z, "example") != 0) {
        if (exists)
            *nns += put_rrset(s, ns, z, name, T_NSEC);
        else /* every NSEC of the zone: the covering ones are among them */
            for (int i = 0; i < s->nrr; i++)
                if (s->rr[i].type == T_NSEC && strcmp(s->rr[i].zone, z) == 0)
                    *nns += put_rrset(s, ns, z, s->rr[i].owner, T_NSEC);
    }
    return exists ? 0 : 3;
}

static void on_alloc(uv_handle_t *h, size_t sugg, uv_buf_t *buf)
{
    static char mem[65536];
    (void)h;
    (void)sugg;
    buf->base = mem;
    buf->len = sizeof mem;
}

static void on_sent(uv_udp_send_t *req, int status)
{
    (void)status;
    free(req);
}

struct sendreq {
    uv_udp_send_t req;
    struct pkt p;
};

/* The reply to the query q (n octets) in *p. Returns 0, or -1: no reply
 * (malformed query, or the server is silent). udp: a reply longer than the
 * query's EDNS payload size (512 without EDNS) is cut to its header and
 * question with TC set (RFC 6891 §7), like a real server: the resolver
 * asks again over TCP. */
static int reply(struct srv *s, const uint8_t *q, size_t nread, int udp, struct pkt *p)
{
    char qname[256];
    size_t pos = 12, o = 0;

    if (nread < 12)
        return -1;
    s->queries++;
    while (pos < nread && q[pos] != 0) { /* uncompressed labels */
        size_t l = q[pos++];
        if (l > 63 || pos + l > nread || o + l + 2 > sizeof qname)
            return -1;
        if (o)
            qname[o++] = '.';
        for (size_t i = 0; i < l; i++)
            qname[o++] = (char)(q[pos + i] >= 'A' && q[pos + i] <= 'Z' ? q[pos + i] + 32 : q[pos + i]);
        pos += l;
    }
    qname[o] = '\0';
    if (pos + 5 > nread)
        return -1;
    pos++;
    unsigned qtype = (unsigned)q[pos] << 8 | q[pos + 1];
    size_t qend = pos + 4;
    int edns = ((unsigned)q[10] << 8 | q[11]) > 0; /* the query's OPT */
    size_t limit = 512;
    if (edns && qend + 11 <= nread) /* OPT: root name, type, class = payload size */
        limit = (size_t)q[qend + 3] << 8 | q[qend + 4];
    if (limit < 512)
        limit = 512;

    struct pkt *an = calloc(1, sizeof *an), *ns = calloc(1, sizeof *ns);
    assert_true(an && ns);
    int nan = 0, nns = 0;
    int rcode = answer(s, qname, qtype, an, &nan, ns, &nns);
    if (rcode >= 0) {
        size_t opt = edns ? 11 : 0;
        int tc = udp && 12 + (qend - 12) + an->n + ns->n + opt > limit;
        if (tc)
            nan = nns = 0;
        p_u16(p, (unsigned)q[0] << 8 | q[1]); /* id; QR AA RA, RD copied */
        p_u16(p, 0x8000 | 0x0400 | (tc ? 0x0200 : 0) | 0x0080 | ((unsigned)q[2] & 0x01) << 8 |
                     (unsigned)rcode);
        p_u16(p, 1);
        p_u16(p, (unsigned)nan);
        p_u16(p, (unsigned)nns);
        p_u16(p, edns ? 1 : 0);
        p_bytes(p, q + 12, qend - 12);
        if (!tc) {
            p_bytes(p, an->b, an->n);
            p_bytes(p, ns->b, ns->n);
        }
        if (edns) { /* OPT: 4096-octet payload, DO */
            p_u8(p, 0);
            p_u16(p, T_OPT);
            p_u16(p, 4096);
            p_u32(p, 0x8000);
            p_u16(p, 0);
        }
    }
    free(an);
    free(ns);
    return rcode >= 0 ? 0 : -1;
}

static void on_recv(uv_udp_t *u, ssize_t nread, const uv_buf_t *buf, const struct sockaddr *from,
                    unsigned flags)
{
    struct srv *s = u->data;
    (void)flags;

    if (nread < 12 || !from)
        return;
    struct sendreq *r = calloc(1, sizeof *r);
    assert_non_null(r);
    if (reply(s, (const uint8_t *)buf->base, (size_t)nread, 1, &r->p) == 0) {
        uv_buf_t b = uv_buf_init((char *)r->p.b, (unsigned)r->p.n);
        assert_int_equal(uv_udp_send(&r->req, u, &b, 1, from, on_sent), 0);
        r = NULL; /* freed by on_sent (req is its first member) */
    }
    free(r);
}

/* DNS over TCP (RFC 7766): length-prefixed queries on one connection. */
struct tconn {
    uv_tcp_t h;
    struct srv *s;
    uint8_t in[4096];
    size_t n;
};

struct twrite {
    uv_write_t req;
    struct pkt p; /* 2-octet length, then the reply */
};

static void t_alloc(uv_handle_t *h, size_t sugg, uv_buf_t *buf)
{
    struct tconn *c = h->data;
    (void)sugg;
    buf->base = (char *)c->in + c->n;
    buf->len = sizeof c->in - c->n;
}

static void t_closed(uv_handle_t *h)
{
    free(h->data);
}

static void t_written(uv_write_t *req, int status)
{
    (void)status;
    free(req);
}

static void t_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    struct tconn *c = st->data;
    (void)buf;
    if (nread < 0 || c->n + (size_t)nread >= sizeof c->in) {
        if (!uv_is_closing((uv_handle_t *)st))
            uv_close((uv_handle_t *)st, t_closed);
        return;
    }
    c->n += (size_t)nread;
    while (c->n >= 2) {
        size_t l = (size_t)c->in[0] << 8 | c->in[1];
        if (c->n < 2 + l)
            break;
        struct twrite *w = calloc(1, sizeof *w);
        assert_non_null(w);
        w->p.n = 2;
        if (reply(c->s, c->in + 2, l, 0, &w->p) == 0) {
            w->p.b[0] = (uint8_t)((w->p.n - 2) >> 8);
            w->p.b[1] = (uint8_t)(w->p.n - 2);
            uv_buf_t b = uv_buf_init((char *)w->p.b, (unsigned)w->p.n);
            assert_int_equal(uv_write(&w->req, st, &b, 1, t_written), 0);
        } else {
            free(w);
        }
        memmove(c->in, c->in + 2 + l, c->n - 2 - l);
        c->n -= 2 + l;
    }
}

static void t_conn(uv_stream_t *srv, int status)
{
    if (status < 0)
        return;
    struct tconn *c = calloc(1, sizeof *c);
    assert_non_null(c);
    c->s = srv->data;
    uv_tcp_init(srv->loop, &c->h);
    c->h.data = c;
    if (uv_accept(srv, (uv_stream_t *)&c->h) != 0 ||
        uv_read_start((uv_stream_t *)&c->h, t_alloc, t_read) != 0)
        uv_close((uv_handle_t *)&c->h, t_closed);
}

/* teardown: close the server's accepted connections left open */
static void t_close_all(uv_handle_t *h, void *arg)
{
    if (h->type == UV_TCP && h != arg && !uv_is_closing(h))
        uv_close(h, t_closed);
}

/* Start the server on loop: zones built, listening; the root's DNSKEY
 * written to a fresh file named in anchor (a trust anchor file). 0 or -1. */
static int dfx_start(uv_loop_t *loop, struct srv *s, char anchor[64])
{
    struct sockaddr_in sin;
    int len = sizeof sin;
    FILE *fp;
    int fd;

    /* TCP first (an ephemeral port), then UDP on the same number (UDP
     * ports have no TIME_WAIT left over from earlier tests' connections) */
    uv_tcp_init(loop, &s->tcp);
    uv_udp_init(loop, &s->udp);
    s->tcp.data = s;
    s->udp.data = s;
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (uv_tcp_bind(&s->tcp, (const struct sockaddr *)&sin, 0) != 0 ||
        uv_tcp_getsockname(&s->tcp, (struct sockaddr *)&sin, &len) != 0 ||
        uv_listen((uv_stream_t *)&s->tcp, 16, t_conn) != 0 ||
        uv_udp_bind(&s->udp, (const struct sockaddr *)&sin, 0) != 0 ||
        uv_udp_recv_start(&s->udp, on_alloc, on_recv) != 0)
        return -1;
    s->port = ntohs(sin.sin_port);

    build_zones(s);
    unsigned char b64[128];
    EVP_EncodeBlock(b64, s->dnskey + 4, 64);
    snprintf(anchor, 64, "/tmp/mxg-dnsfx-anchor-XXXXXX");
    if ((fd = mkstemp(anchor)) < 0 || !(fp = fdopen(fd, "w")))
        return -1;
    fprintf(fp, ". 3600 IN DNSKEY 257 3 13 %s\n", b64);
    fclose(fp);
    return 0;
}

/* cfg (after mxg_config_defaults) asks s only, validating with anchor. */
static void dfx_config(struct mxg_config *cfg, const struct srv *s, const char *anchor)
{
    struct sockaddr_in *d = (struct sockaddr_in *)&cfg->dns_servers[0].sa;
    memset(d, 0, sizeof *d);
    d->sin_family = AF_INET;
    d->sin_port = htons((uint16_t)s->port);
    d->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cfg->n_dns_servers = 1;
    cfg->dns_mode = MXG_DNS_STUB; /* the fixture is the stub path; never the real root */
    /* dns.transport "udp": UDP first; an answer bigger than the query's EDNS
     * payload size comes back with TC set and is asked again over TCP (the
     * big RRsets of docs/ARCHITECTURE.md §Limits), as from a real server */
    cfg->dns_transport = MXG_DNS_UDP;
    snprintf(cfg->trust_anchor_file, sizeof cfg->trust_anchor_file, "%s", anchor);
    cfg->t_dns = 400;
    cfg->dns_cache_size = 100;
}

/* Close the server's handles (the loop must run afterwards). */
static void dfx_stop(struct srv *s)
{
    uv_loop_t *loop = s->udp.loop;
    uv_close((uv_handle_t *)&s->udp, NULL);
    uv_close((uv_handle_t *)&s->tcp, NULL);
    uv_walk(loop, t_close_all, &s->tcp);
}

/* After the loop's last run: the anchor file and the key. */
static void dfx_free(struct srv *s, const char *anchor)
{
    unlink(anchor);
    EVP_PKEY_free(s->key);
}

#endif
