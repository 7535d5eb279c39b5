/* tests/unit/test_dane_tlsa.c — dane/tlsa: which TLSA records SMTP may use
 * (RFC 7672 §3.1; Full(0) data must parse as the selector says, RFC 7671
 * §5), their names, the "U S M HEX" format and the filter, and that the
 * check agrees with OpenSSL's SSL_dane_tlsa_add. Table-driven; pure
 * functions, no network. Full(0) records meant to be usable carry real DER
 * made at test time (tlsa_fixture.h, the group state). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "dane/tlsa.h"
#include "tlsa_fixture.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Data buffers for make_rr: a ring, so that records made one after the
 * other keep their own data (a test holds at most RING of them). */
#define RING 64
#define RING_LEN (MXG_TLSA_DATA_MAX + 2)

/* A record with len octets of data 0x00, 0x01, 0x02, ... (its own buffer
 * from the ring, writable, RING_LEN octets). */
static void make_rr(struct mxg_tlsa_rr *rr, unsigned usage, unsigned selector, unsigned mtype,
                    unsigned len)
{
    static uint8_t *ring[RING];
    static unsigned next;
    uint8_t **b = &ring[next++ % RING];
    if (!*b)
        *b = malloc(RING_LEN); /* kept for the process (a test binary) */
    assert_non_null(*b);
    memset(rr, 0, sizeof *rr);
    rr->usage = (uint8_t)usage;
    rr->selector = (uint8_t)selector;
    rr->mtype = (uint8_t)mtype;
    rr->len = (uint16_t)len;
    rr->data = *b;
    for (unsigned i = 0; i < len && i < RING_LEN; i++)
        rr->data[i] = (uint8_t)i;
}

/* The data length that is right for a digest matching type (1, 2); other
 * types get 100 octets. */
static unsigned good_len(unsigned mtype)
{
    return mtype == 1 ? 32 : mtype == 2 ? 64 : 100;
}

/* A record whose data is right for its selector and matching type: the
 * fixture's certificate (selector 0) or SPKI (other selectors) for Full(0),
 * else make_rr with good_len. */
static void make_good(struct mxg_tlsa_rr *rr, const struct tlsa_der *d, unsigned usage,
                      unsigned selector, unsigned mtype)
{
    if (mtype == 0 && selector == 0)
        tlsa_rr_set(rr, usage, selector, mtype, d->cert, d->cert_len);
    else if (mtype == 0)
        tlsa_rr_set(rr, usage, selector, mtype, d->spki, d->spki_len);
    else
        make_rr(rr, usage, selector, mtype, good_len(mtype));
}

/* ------------------------------------------------------------ check */

/* Where a case's data comes from: len octets 00 01 02 ... (SEQ), or DER
 * from the fixture (len ignored unless said). */
enum data_kind {
    SEQ,          /* junk for Full(0); right or wrong size for a digest */
    CERT,         /* Ed25519 certificate */
    SPKI,         /* its SubjectPublicKeyInfo */
    CERT_TRAIL,   /* CERT + one octet 0x00 */
    SPKI_TRAIL,   /* SPKI + one octet 0x00 */
    CERT_CUT,     /* CERT without its last octet */
    BIG,          /* a certificate of TLSA_FIXTURE_BIG (5000) octets */
    EC_CERT,      /* P-256 certificate */
    EC_SPKI,      /* its SPKI */
    BADKEY_CERT,  /* EC_CERT with the point off the curve: DER fine, key not */
    BADKEY_SPKI,  /* EC_SPKI likewise: does not parse */
};

struct check_case {
    const char *name;
    unsigned usage, selector, mtype;
    enum data_kind kind;
    unsigned len; /* SEQ only */
    enum mxg_tlsa_verdict want;
};

/* rr = the case's fields with its data */
static void make_case(struct mxg_tlsa_rr *rr, const struct tlsa_der *d, const struct check_case *c)
{
    static unsigned char buf[MXG_TLSA_DATA_MAX + 1];
    const unsigned char *p = NULL;
    size_t n = 0;
    switch (c->kind) {
    case SEQ:
        make_rr(rr, c->usage, c->selector, c->mtype, c->len);
        return;
    case CERT: p = d->cert; n = d->cert_len; break;
    case SPKI: p = d->spki; n = d->spki_len; break;
    case CERT_TRAIL:
    case SPKI_TRAIL:
        n = c->kind == CERT_TRAIL ? d->cert_len : d->spki_len;
        memcpy(buf, c->kind == CERT_TRAIL ? d->cert : d->spki, n);
        buf[n++] = 0x00;
        p = buf;
        break;
    case CERT_CUT: p = d->cert; n = d->cert_len - 1; break;
    case BIG: p = d->big; n = d->big_len; break;
    case EC_CERT: p = d->ec_cert; n = d->ec_cert_len; break;
    case EC_SPKI: p = d->ec_spki; n = d->ec_spki_len; break;
    case BADKEY_CERT: p = d->badkey_cert; n = d->badkey_cert_len; break;
    case BADKEY_SPKI: p = d->badkey_spki; n = d->badkey_spki_len; break;
    }
    tlsa_rr_set(rr, c->usage, c->selector, c->mtype, p, n);
}

static const struct check_case check_cases[] = {
    /* the usable combinations */
    {"DANE-EE SPKI SHA-256", 3, 1, 1, SEQ, 32, MXG_TLSA_USABLE},
    {"DANE-EE SPKI SHA-512", 3, 1, 2, SEQ, 64, MXG_TLSA_USABLE},
    {"DANE-EE SPKI full", 3, 1, 0, SPKI, 0, MXG_TLSA_USABLE},
    {"DANE-EE Cert SHA-256", 3, 0, 1, SEQ, 32, MXG_TLSA_USABLE},
    {"DANE-EE Cert SHA-512", 3, 0, 2, SEQ, 64, MXG_TLSA_USABLE},
    {"DANE-EE Cert full", 3, 0, 0, CERT, 0, MXG_TLSA_USABLE},
    {"DANE-TA SPKI SHA-256", 2, 1, 1, SEQ, 32, MXG_TLSA_USABLE},
    {"DANE-TA SPKI full", 2, 1, 0, SPKI, 0, MXG_TLSA_USABLE},
    {"DANE-TA Cert SHA-256", 2, 0, 1, SEQ, 32, MXG_TLSA_USABLE},
    {"DANE-TA Cert SHA-512", 2, 0, 2, SEQ, 64, MXG_TLSA_USABLE},
    {"DANE-TA Cert full", 2, 0, 0, CERT, 0, MXG_TLSA_USABLE},
    {"DANE-EE Cert full, P-256", 3, 0, 0, EC_CERT, 0, MXG_TLSA_USABLE},
    {"DANE-EE SPKI full, P-256", 3, 1, 0, EC_SPKI, 0, MXG_TLSA_USABLE},
    {"full cert of 5000 octets (past every old storage limit)", 3, 0, 0, BIG, 0, MXG_TLSA_USABLE},
    {"DANE-TA full cert of 5000 octets", 2, 0, 0, BIG, 0, MXG_TLSA_USABLE},
    /* Full(0) data that is not what the selector names: unusable */
    {"Cert full, junk", 3, 0, 0, SEQ, 700, MXG_TLSA_BAD_DATA},
    {"SPKI full, junk", 3, 1, 0, SEQ, 91, MXG_TLSA_BAD_DATA},
    {"DANE-TA Cert full, 1 octet", 2, 0, 0, SEQ, 1, MXG_TLSA_BAD_DATA},
    {"full, junk at the RDATA limit (length fine, data not)", 3, 0, 0, SEQ, MXG_TLSA_DATA_MAX,
     MXG_TLSA_BAD_DATA},
    {"Cert full + 1 trailing octet", 3, 0, 0, CERT_TRAIL, 0, MXG_TLSA_BAD_DATA},
    {"DANE-TA Cert full + 1 trailing octet", 2, 0, 0, CERT_TRAIL, 0, MXG_TLSA_BAD_DATA},
    {"SPKI full + 1 trailing octet", 3, 1, 0, SPKI_TRAIL, 0, MXG_TLSA_BAD_DATA},
    {"Cert full, last octet missing", 3, 0, 0, CERT_CUT, 0, MXG_TLSA_BAD_DATA},
    {"a certificate under selector 1 (SPKI)", 3, 1, 0, CERT, 0, MXG_TLSA_BAD_DATA},
    {"DANE-TA: a certificate under selector 1", 2, 1, 0, CERT, 0, MXG_TLSA_BAD_DATA},
    {"an SPKI under selector 0 (Cert)", 3, 0, 0, SPKI, 0, MXG_TLSA_BAD_DATA},
    {"Cert full whose key OpenSSL cannot decode", 3, 0, 0, BADKEY_CERT, 0, MXG_TLSA_BAD_DATA},
    {"SPKI full, point off the curve", 3, 1, 0, BADKEY_SPKI, 0, MXG_TLSA_BAD_DATA},
    /* digests are not parsed: a certificate of the wrong size is a length problem */
    {"SHA-256 with certificate data", 3, 0, 1, CERT, 0, MXG_TLSA_BAD_LENGTH},
    /* PKIX usages are unusable in SMTP even when otherwise perfect */
    {"PKIX-TA", 0, 0, 1, SEQ, 32, MXG_TLSA_BAD_USAGE},
    {"PKIX-EE", 1, 1, 1, SEQ, 32, MXG_TLSA_BAD_USAGE},
    {"usage 4", 4, 1, 1, SEQ, 32, MXG_TLSA_BAD_USAGE},
    {"usage 255 (private)", 255, 1, 1, SEQ, 32, MXG_TLSA_BAD_USAGE},
    /* selectors */
    {"selector 2", 3, 2, 1, SEQ, 32, MXG_TLSA_BAD_SELECTOR},
    {"selector 255", 3, 255, 1, SEQ, 32, MXG_TLSA_BAD_SELECTOR},
    /* matching types */
    {"mtype 3", 3, 1, 3, SEQ, 32, MXG_TLSA_BAD_MTYPE},
    {"mtype 255", 3, 1, 255, SEQ, 64, MXG_TLSA_BAD_MTYPE},
    /* wrong digest lengths */
    {"SHA-256, 31 octets", 3, 1, 1, SEQ, 31, MXG_TLSA_BAD_LENGTH},
    {"SHA-256, 33 octets", 3, 1, 1, SEQ, 33, MXG_TLSA_BAD_LENGTH},
    {"SHA-256, 0 octets", 3, 1, 1, SEQ, 0, MXG_TLSA_BAD_LENGTH},
    {"SHA-256, 64 octets", 3, 1, 1, SEQ, 64, MXG_TLSA_BAD_LENGTH},
    {"SHA-512, 63 octets", 2, 0, 2, SEQ, 63, MXG_TLSA_BAD_LENGTH},
    {"SHA-512, 65 octets", 2, 0, 2, SEQ, 65, MXG_TLSA_BAD_LENGTH},
    {"SHA-512, 0 octets", 2, 0, 2, SEQ, 0, MXG_TLSA_BAD_LENGTH},
    {"SHA-512, 32 octets", 2, 0, 2, SEQ, 32, MXG_TLSA_BAD_LENGTH},
    {"full, 0 octets", 3, 0, 0, SEQ, 0, MXG_TLSA_BAD_LENGTH},
    {"len beyond what RDATA holds", 3, 0, 0, SEQ, MXG_TLSA_DATA_MAX + 1, MXG_TLSA_BAD_LENGTH},
    /* the first problem wins: usage, selector, mtype, length, data */
    {"bad usage and selector", 0, 7, 1, SEQ, 32, MXG_TLSA_BAD_USAGE},
    {"bad usage and length", 1, 1, 1, SEQ, 31, MXG_TLSA_BAD_USAGE},
    {"bad selector and mtype", 3, 9, 9, SEQ, 32, MXG_TLSA_BAD_SELECTOR},
    {"bad selector and length", 2, 2, 1, SEQ, 0, MXG_TLSA_BAD_SELECTOR},
    {"bad mtype, empty", 3, 1, 4, SEQ, 0, MXG_TLSA_BAD_MTYPE},
    {"bad usage, full junk", 1, 0, 0, SEQ, 50, MXG_TLSA_BAD_USAGE},
    {"bad selector, full junk", 3, 2, 0, SEQ, 50, MXG_TLSA_BAD_SELECTOR},
    {"PKIX-EE with a good full certificate", 1, 0, 0, CERT, 0, MXG_TLSA_BAD_USAGE},
    {"full junk beyond the RDATA limit: length first", 3, 0, 0, SEQ, MXG_TLSA_DATA_MAX + 1,
     MXG_TLSA_BAD_LENGTH},
};

static void test_check_table(void **state)
{
    const struct tlsa_der *d = *state;
    static struct mxg_tlsa_rr rr;
    for (size_t i = 0; i < ARRAY_LEN(check_cases); i++) {
        const struct check_case *c = &check_cases[i];
        make_case(&rr, d, c);
        enum mxg_tlsa_verdict got = mxg_tlsa_check(&rr);
        if (got != c->want)
            fail_msg("%s (%u %u %u, %u octets): got %s, want %s", c->name, c->usage, c->selector,
                     c->mtype, (unsigned)rr.len, mxg_tlsa_verdict_name(got),
                     mxg_tlsa_verdict_name(c->want));
    }
}

/* The check agrees with OpenSSL: for the SMTP usages (2|3), a record is
 * USABLE exactly when SSL_dane_tlsa_add() loads it (returns 1) — so a
 * VERIFY decision never rests on records OpenSSL drops, and no record
 * OpenSSL could match is thrown away. Every table row that fits the
 * buffer, plus the full records of every selector / matching type. */
static void test_check_agrees_with_openssl(void **state)
{
    const struct tlsa_der *d = *state;
    static struct mxg_tlsa_rr rr;
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    assert_non_null(ctx);
    assert_true(SSL_CTX_dane_enable(ctx) > 0);
    int compared = 0, usable = 0;
    for (size_t i = 0; i < ARRAY_LEN(check_cases); i++) {
        const struct check_case *c = &check_cases[i];
        if (c->usage != 2 && c->usage != 3)
            continue; /* OpenSSL takes PKIX usages; SMTP does not */
        if (c->kind == SEQ && c->len > MXG_TLSA_DATA_MAX)
            continue; /* no such data to hand over */
        make_case(&rr, d, c);
        SSL *ssl = SSL_new(ctx);
        assert_non_null(ssl);
        assert_true(SSL_dane_enable(ssl, "mx.example.test") > 0);
        int rc = SSL_dane_tlsa_add(ssl, rr.usage, rr.selector, rr.mtype, rr.data, rr.len);
        SSL_free(ssl);
        int ours = mxg_tlsa_check(&rr) == MXG_TLSA_USABLE;
        /* OpenSSL 3.0 answers -1 ("malloc failure": it copies 0 octets) to an
         * empty Full(0) record; never handed over (BAD_LENGTH here) */
        if ((rc < 0 && rr.len != 0) || ours != (rc == 1))
            fail_msg("%s: mxg_tlsa_check says %s, SSL_dane_tlsa_add returned %d", c->name,
                     mxg_tlsa_verdict_name(mxg_tlsa_check(&rr)), rc);
        compared++;
        usable += ours;
    }
    assert_true(compared >= 30);
    assert_true(usable >= 10);
    ERR_clear_error();
    SSL_CTX_free(ctx);
}

/* Every usage value 0..255 with every selector 0..3 and matching type 0..3
 * at a good length: only 2/3 x 0/1 x 0/1/2 is usable, and the verdict names
 * the first bad field. */
static void test_check_every_usage(void **state)
{
    const struct tlsa_der *d = *state;
    static struct mxg_tlsa_rr rr;
    int usable = 0;
    for (unsigned u = 0; u <= 255; u++) {
        for (unsigned s = 0; s <= 3; s++) {
            for (unsigned m = 0; m <= 3; m++) {
                make_good(&rr, d, u, s, m);
                enum mxg_tlsa_verdict want = (u != 2 && u != 3) ? MXG_TLSA_BAD_USAGE
                                             : s > 1            ? MXG_TLSA_BAD_SELECTOR
                                             : m > 2            ? MXG_TLSA_BAD_MTYPE
                                                                : MXG_TLSA_USABLE;
                enum mxg_tlsa_verdict got = mxg_tlsa_check(&rr);
                if (got != want)
                    fail_msg("%u %u %u: got %s, want %s", u, s, m, mxg_tlsa_verdict_name(got),
                             mxg_tlsa_verdict_name(want));
                usable += got == MXG_TLSA_USABLE;
            }
        }
    }
    assert_int_equal(usable, 2 * 2 * 3);
}

/* Every selector and matching type value 0..255 with a DANE-EE usage. */
static void test_check_every_selector_and_mtype(void **state)
{
    const struct tlsa_der *d = *state;
    static struct mxg_tlsa_rr rr;
    for (unsigned v = 0; v <= 255; v++) {
        make_rr(&rr, 3, v, 1, 32);
        assert_int_equal(mxg_tlsa_check(&rr), v <= 1 ? MXG_TLSA_USABLE : MXG_TLSA_BAD_SELECTOR);
        make_good(&rr, d, 3, v, 0); /* full, right data: only selectors 0|1 */
        assert_int_equal(mxg_tlsa_check(&rr), v <= 1 ? MXG_TLSA_USABLE : MXG_TLSA_BAD_SELECTOR);
        make_good(&rr, d, 3, 1, v);
        assert_int_equal(mxg_tlsa_check(&rr), v <= 2 ? MXG_TLSA_USABLE : MXG_TLSA_BAD_MTYPE);
    }
}

/* Every length 0..200 for each matching type, junk data: digests only at
 * their size; Full(0) junk never (BAD_LENGTH when empty, else BAD_DATA). */
static void test_check_every_length(void **state)
{
    (void)state;
    static struct mxg_tlsa_rr rr;
    for (unsigned m = 0; m <= 2; m++) {
        for (unsigned len = 0; len <= 200; len++) {
            make_rr(&rr, 2, 1, m, len);
            enum mxg_tlsa_verdict want = m == 0 ? (len ? MXG_TLSA_BAD_DATA : MXG_TLSA_BAD_LENGTH)
                                         : len == (m == 1 ? 32u : 64u) ? MXG_TLSA_USABLE
                                                                       : MXG_TLSA_BAD_LENGTH;
            enum mxg_tlsa_verdict got = mxg_tlsa_check(&rr);
            if (got != want)
                fail_msg("mtype %u len %u: got %s", m, len, mxg_tlsa_verdict_name(got));
        }
    }
    assert_int_equal(mxg_tlsa_check(NULL), MXG_TLSA_BAD_LENGTH);
}

/* Every prefix of a good certificate and SPKI, and each with every number
 * of trailing octets up to 8: usable only whole and alone. */
static void test_check_full_prefixes_and_trailers(void **state)
{
    const struct tlsa_der *d = *state;
    static struct mxg_tlsa_rr rr;
    static unsigned char buf[MXG_TLSA_DATA_MAX];
    const unsigned char *der[2] = {d->cert, d->spki};
    size_t len[2] = {d->cert_len, d->spki_len};
    for (unsigned s = 0; s <= 1; s++) {
        for (size_t n = 1; n <= len[s]; n++) {
            tlsa_rr_set(&rr, 3, s, 0, der[s], n);
            enum mxg_tlsa_verdict want = n == len[s] ? MXG_TLSA_USABLE : MXG_TLSA_BAD_DATA;
            if (mxg_tlsa_check(&rr) != want)
                fail_msg("selector %u, %zu of %zu octets: %s", s, n, len[s],
                         mxg_tlsa_verdict_name(mxg_tlsa_check(&rr)));
        }
        for (size_t extra = 1; extra <= 8; extra++) {
            memcpy(buf, der[s], len[s]);
            memset(buf + len[s], 0x30, extra); /* even a DER SEQUENCE tag is too much */
            tlsa_rr_set(&rr, 3, s, 0, buf, len[s] + extra);
            assert_int_equal(mxg_tlsa_check(&rr), MXG_TLSA_BAD_DATA);
        }
    }
}

/* The check leaves OpenSSL's error queue as it was: a refused parse must not
 * make a later SSL_get_error() on the same thread report SSL_ERROR_SSL. */
static void test_check_keeps_error_queue(void **state)
{
    const struct tlsa_der *d = *state;
    static struct mxg_tlsa_rr rr;
    ERR_clear_error();
    make_rr(&rr, 3, 0, 0, 300);
    assert_int_equal(mxg_tlsa_check(&rr), MXG_TLSA_BAD_DATA);
    tlsa_rr_set(&rr, 3, 0, 0, d->badkey_cert, d->badkey_cert_len);
    assert_int_equal(mxg_tlsa_check(&rr), MXG_TLSA_BAD_DATA);
    tlsa_rr_set(&rr, 3, 1, 0, d->badkey_spki, d->badkey_spki_len);
    assert_int_equal(mxg_tlsa_check(&rr), MXG_TLSA_BAD_DATA);
    assert_int_equal(ERR_peek_error(), 0);
    ERR_raise(ERR_LIB_SSL, SSL_R_BAD_LENGTH); /* someone else's error, queued before */
    unsigned long mine = ERR_peek_last_error();
    assert_int_equal(mxg_tlsa_check(&rr), MXG_TLSA_BAD_DATA);
    assert_int_equal(ERR_peek_last_error(), mine); /* kept, nothing added */
    ERR_clear_error();
}

/* ------------------------------------------------------------ names */

static void test_verdict_names(void **state)
{
    (void)state;
    static const struct {
        enum mxg_tlsa_verdict v;
        const char *name;
    } names[] = {
        {MXG_TLSA_USABLE, "usable"},
        {MXG_TLSA_BAD_USAGE, "unusable certificate usage"},
        {MXG_TLSA_BAD_SELECTOR, "unusable selector"},
        {MXG_TLSA_BAD_MTYPE, "unusable matching type"},
        {MXG_TLSA_BAD_LENGTH, "wrong association data length"},
        {MXG_TLSA_BAD_DATA, "association data does not parse"},
        {(enum mxg_tlsa_verdict)99, "?"},
        {(enum mxg_tlsa_verdict)-1, "?"},
    };
    for (size_t i = 0; i < ARRAY_LEN(names); i++)
        assert_string_equal(mxg_tlsa_verdict_name(names[i].v), names[i].name);
}

/* ------------------------------------------------------------ format */

struct format_case {
    const char *name;
    unsigned usage, selector, mtype;
    const char *hexdata; /* lower or upper case input */
    size_t cap;
    const char *want;
};

static const struct format_case format_cases[] = {
    {"3 1 1", 3, 1, 1, "abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789", 256,
     "3 1 1 ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789"},
    {"2 0 0 short", 2, 0, 0, "00ff10", 64, "2 0 0 00FF10"},
    {"unusable values print as numbers", 255, 254, 253, "7f", 64, "255 254 253 7F"},
    {"no data", 3, 1, 1, "", 64, "3 1 1"},
    {"cut inside the hex", 3, 1, 1, "abcdef", 10, "3 1 1 ABC"},
    {"cut after the fields", 3, 1, 1, "abcdef", 6, "3 1 1"},
    {"cut inside the fields", 3, 1, 1, "abcdef", 4, "3 1"},
    {"exact fit", 3, 1, 1, "abcd", 11, "3 1 1 ABCD"},
    {"one short", 3, 1, 1, "abcd", 10, "3 1 1 ABC"},
    {"cap 1", 3, 1, 1, "ab", 1, ""},
};

static unsigned hexval(char c)
{
    return c >= '0' && c <= '9' ? (unsigned)(c - '0') : (unsigned)((c | 0x20) - 'a' + 10);
}

static void test_format_table(void **state)
{
    (void)state;
    struct mxg_tlsa_rr rr;
    char out[300];
    for (size_t i = 0; i < ARRAY_LEN(format_cases); i++) {
        const struct format_case *c = &format_cases[i];
        make_rr(&rr, c->usage, c->selector, c->mtype, 0);
        size_t n = strlen(c->hexdata) / 2;
        for (size_t j = 0; j < n; j++)
            rr.data[j] = (uint8_t)(hexval(c->hexdata[2 * j]) << 4 | hexval(c->hexdata[2 * j + 1]));
        rr.len = (uint16_t)n;
        memset(out, 'X', sizeof out);
        mxg_tlsa_format(&rr, out, c->cap);
        if (strcmp(out, c->want) != 0)
            fail_msg("%s: got \"%s\", want \"%s\"", c->name, out, c->want);
        assert_int_equal(out[c->cap], 'X'); /* nothing written past cap */
    }
}

static void test_format_full_certificate(void **state)
{
    (void)state;
    struct mxg_tlsa_rr rr;
    make_rr(&rr, 3, 0, 0, MXG_TLSA_DATA_MAX); /* the biggest record RDATA holds */
    size_t need = 6 + 2 * (size_t)MXG_TLSA_DATA_MAX + 1;
    char *out = malloc(need);
    assert_non_null(out);
    mxg_tlsa_format(&rr, out, need);
    assert_int_equal(strlen(out), need - 1);
    assert_memory_equal(out, "3 0 0 000102030405", 18);
    assert_string_equal(out + need - 5, "FAFB"); /* data[65531] = 0xfb, data[65530] = 0xfa */
    free(out);

    char small[4] = "abc";
    mxg_tlsa_format(&rr, small, 0); /* cap 0: nothing written */
    assert_string_equal(small, "abc");
    mxg_tlsa_format(NULL, small, sizeof small);
    assert_string_equal(small, "");
}

/* ------------------------------------------------------------ copy */

/* mxg_tlsa_copy keeps what keep selects, whole and in order, in one block
 * sized to it: a 5000-octet certificate and a record at the RDATA limit
 * come back octet for octet (no storage limit shortens or drops one). */
static void test_copy(void **state)
{
    const struct tlsa_der *d = *state;
    static const struct {
        unsigned u, s, m, len; /* len 0 with m 0: the fixture's big certificate */
        int usable;
    } in_spec[] = {
        {0, 0, 1, 32, 0}, {3, 1, 1, 32, 1}, {1, 1, 1, 32, 0}, {3, 1, 1, 31, 0},
        {2, 0, 2, 64, 1}, {3, 2, 1, 32, 0}, {3, 1, 3, 32, 0}, {3, 0, 0, 5, 0},
        {3, 0, 0, 0, 1},  {2, 0, 0, 0, 1},
    };
    enum { N = sizeof in_spec / sizeof in_spec[0] };
    static struct mxg_tlsa_rr in[N];
    unsigned char keep[N];
    for (size_t i = 0; i < N; i++) {
        if (in_spec[i].m == 0 && in_spec[i].len == 0)
            tlsa_rr_set(&in[i], in_spec[i].u, 0, 0, d->big, d->big_len);
        else
            make_rr(&in[i], in_spec[i].u, in_spec[i].s, in_spec[i].m, in_spec[i].len);
        keep[i] = mxg_tlsa_check(&in[i]) == MXG_TLSA_USABLE;
        assert_int_equal(keep[i], in_spec[i].usable);
    }
    struct mxg_tlsa_rr *out = NULL;
    int n = mxg_tlsa_copy(in, N, keep, &out);
    assert_int_equal(n, 4); /* the 5 octets of junk "3 0 0" are not among them */
    assert_non_null(out);
    assert_int_equal(out[0].usage, 3);
    assert_int_equal(out[0].mtype, 1);
    assert_memory_equal(out[0].data, in[1].data, 32);
    assert_int_equal(out[1].usage, 2);
    assert_int_equal(out[1].mtype, 2);
    for (int k = 2; k < 4; k++) {
        assert_int_equal(out[k].mtype, 0);
        assert_int_equal(out[k].len, TLSA_FIXTURE_BIG);
        assert_memory_equal(out[k].data, d->big, d->big_len);
        assert_ptr_not_equal(out[k].data, d->big); /* a copy, inside the block */
        assert_true((const uint8_t *)out[k].data > (const uint8_t *)(out + n));
    }
    assert_int_equal(out[2].usage, 3);
    assert_int_equal(out[3].usage, 2);
    free(out);

    /* all of them (keep NULL), none, empty input, NULL */
    assert_int_equal(mxg_tlsa_copy(in, N, NULL, &out), N);
    assert_int_equal(out[7].len, 5);
    free(out);
    memset(keep, 0, sizeof keep);
    assert_int_equal(mxg_tlsa_copy(in, N, keep, &out), 0);
    assert_null(out);
    assert_int_equal(mxg_tlsa_copy(in, 0, NULL, &out), 0);
    assert_int_equal(mxg_tlsa_copy(in, -3, NULL, &out), 0);
    assert_int_equal(mxg_tlsa_copy(NULL, 5, NULL, &out), 0);
    assert_null(out);

    /* the biggest record RDATA holds, and many records: no count limit */
    enum { MANY = 1000 };
    struct mxg_tlsa_rr *many = calloc(MANY, sizeof *many);
    assert_non_null(many);
    make_rr(&many[0], 3, 0, 0, MXG_TLSA_DATA_MAX);
    for (int i = 1; i < MANY; i++)
        many[i] = many[0], many[i].len = (uint16_t)(i % 64);
    assert_int_equal(mxg_tlsa_copy(many, MANY, NULL, &out), MANY);
    assert_int_equal(out[0].len, MXG_TLSA_DATA_MAX);
    assert_memory_equal(out[0].data, many[0].data, MXG_TLSA_DATA_MAX);
    assert_int_equal(out[MANY - 1].len, (MANY - 1) % 64);
    free(out);
    free(many);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_check_table),
        cmocka_unit_test(test_check_agrees_with_openssl),
        cmocka_unit_test(test_check_every_usage),
        cmocka_unit_test(test_check_every_selector_and_mtype),
        cmocka_unit_test(test_check_every_length),
        cmocka_unit_test(test_check_full_prefixes_and_trailers),
        cmocka_unit_test(test_check_keeps_error_queue),
        cmocka_unit_test(test_verdict_names),
        cmocka_unit_test(test_format_table),
        cmocka_unit_test(test_format_full_certificate),
        cmocka_unit_test(test_copy),
    };
    return cmocka_run_group_tests_name("dane_tlsa", tests, tlsa_der_group_setup, tlsa_der_group_teardown);
}
