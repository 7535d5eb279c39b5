/* fuzz/fuzz_tlsa.c — TLSA records (dane/tlsa.h) and what is done with them
 * (dane/dane.h): usability check, presentation format, the per-host DANE
 * decision, and the OpenSSL set-up (SSL_dane_tlsa_add parses full
 * certificates and public keys from the association data).
 *
 * Input: 3 octets (DNS status, DNSSEC status, flags), then records in RFC
 * 6698 wire order with a 2-octet length: usage, selector, matching type,
 * length (big endian), association data (clipped to what the input holds).
 * Any number of records of any size (no storage limit: docs/ARCHITECTURE.md §Limits).
 *
 * Properties checked:
 *  - mxg_tlsa_check: USABLE only for 2|3, 0|1, 0 (1..MXG_TLSA_DATA_MAX
 *    octets that OpenSSL's own SSL_dane_tlsa_add loads: a whole DER
 *    certificate / SubjectPublicKeyInfo) / 1 (32) / 2 (64);
 *  - mxg_tlsa_format: terminated within any cap; with room, "U S M HEX"
 *    that parses back to the record;
 *  - mxg_tlsa_copy with the usable mask keeps exactly the usable records,
 *    whole, in order;
 *  - mxg_dane_decide: VERIFY exactly for a secure answer with a usable
 *    record, ENCRYPT for a secure answer with only unusable ones; UNUSABLE
 *    for bogus / failed lookups, never a fall-through;
 *  - every VERIFY decision can be armed on an SSL: mxg_dane_host_verify()
 *    + mxg_tls_verify_ssl() (tls/tls_verify.h) do not fail (a decision OpenSSL then refuses would fail delivery to
 *    a host whose TLSA RRset has only unusable records, where RFC 7672 §2.2
 *    wants TLS without authentication). */
#include "fuzz.h"

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "dane/dane.h"
#include "dane/tlsa.h"

static SSL_CTX *ctx;

static int hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

static void check_format(const struct mxg_tlsa_rr *rr, uint8_t capbyte)
{
    static char big[16 + 2 * MXG_TLSA_DATA_MAX];
    mxg_tlsa_format(rr, big, sizeof big);
    FUZZ_CHECK(fuzz_terminated(big, sizeof big));
    unsigned u, s, m;
    int used = 0;
    FUZZ_CHECK(sscanf(big, "%u %u %u%n", &u, &s, &m, &used) == 3);
    FUZZ_CHECK(u == rr->usage && s == rr->selector && m == rr->mtype);
    size_t dl = rr->len;
    const char *hex = big + used;
    if (dl == 0) {
        FUZZ_CHECK(*hex == '\0');
    } else {
        FUZZ_CHECK(*hex == ' ');
        hex++;
        FUZZ_CHECK(strlen(hex) == 2 * dl);
        for (size_t i = 0; i < dl; i++) {
            int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);
            FUZZ_CHECK(hi >= 0 && lo >= 0 && (unsigned)(hi * 16 + lo) == rr->data[i]);
        }
    }
    size_t cap = capbyte % 64;
    char *small = malloc(cap ? cap : 1);
    FUZZ_CHECK(small != NULL);
    mxg_tlsa_format(rr, small, cap);
    if (cap) {
        FUZZ_CHECK(fuzz_terminated(small, cap));
        FUZZ_CHECK(strncmp(small, big, strlen(small)) == 0);
    }
    free(small);
}

/* The model: the SMTP usages and selectors, digests by size; a full record
 * by what OpenSSL itself does with it (SSL_dane_tlsa_add returns 1 when it
 * parsed and loaded the data), an oracle independent of dane/tlsa.c. */
static int usable(const struct mxg_tlsa_rr *rr)
{
    if (rr->usage != 2 && rr->usage != 3)
        return 0;
    if (rr->selector > 1 || rr->len > MXG_TLSA_DATA_MAX)
        return 0;
    if (rr->mtype == 0 && rr->len > 0) {
        SSL *ssl = SSL_new(ctx);
        FUZZ_CHECK(ssl != NULL && SSL_dane_enable(ssl, "mx.example.net") > 0);
        int rc = SSL_dane_tlsa_add(ssl, rr->usage, rr->selector, 0, rr->data, rr->len);
        SSL_free(ssl);
        ERR_clear_error();
        FUZZ_CHECK(rc >= 0);
        return rc == 1;
    }
    return (rr->mtype == 1 && rr->len == 32) || (rr->mtype == 2 && rr->len == 64);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!ctx) {
        ctx = SSL_CTX_new(TLS_client_method());
        FUZZ_CHECK(ctx != NULL && SSL_CTX_dane_enable(ctx) > 0);
    }
    if (size < 3)
        return 0;
    static struct mxg_tlsa_result res;
    memset(&res, 0, sizeof res);
    res.status = (enum mxg_dns_status)(data[0] % 5);
    res.sec = (enum mxg_dnssec)(data[1] % 4);
    int has_next = data[2] & 1;
    const char *other = (data[2] & 2) ? "mx.other.example" : NULL;
    snprintf(res.qname, sizeof res.qname, "_25._tcp.mx.example.net");
    uint8_t capbyte = data[2] >> 2;
    size_t i = 3;
    int n_usable = 0;
    struct mxg_tlsa_rr *rrs = calloc(size / 5 + 1, sizeof *rrs);
    unsigned char *mask = calloc(size / 5 + 1, 1);
    FUZZ_CHECK(rrs != NULL && mask != NULL);
    res.rr = rrs;
    while (i + 5 <= size) {
        struct mxg_tlsa_rr *rr = &res.rr[res.n++];
        rr->usage = data[i];
        rr->selector = data[i + 1];
        rr->mtype = data[i + 2];
        size_t want = (size_t)data[i + 3] << 8 | data[i + 4];
        i += 5;
        size_t take = want < size - i ? want : size - i;
        if (take > MXG_TLSA_DATA_MAX)
            take = MXG_TLSA_DATA_MAX;
        rr->data = take ? (uint8_t *)data + i : NULL;
        i += take;
        rr->len = (uint16_t)take;

        enum mxg_tlsa_verdict v = mxg_tlsa_check(rr);
        FUZZ_CHECK((v == MXG_TLSA_USABLE) == usable(rr));
        FUZZ_CHECK(mxg_tlsa_verdict_name(v) != NULL);
        mask[res.n - 1] = v == MXG_TLSA_USABLE;
        n_usable += v == MXG_TLSA_USABLE;
        check_format(rr, capbyte);
    }

    struct mxg_tlsa_rr *kept = NULL;
    int k = mxg_tlsa_copy(res.rr, res.n, mask, &kept);
    FUZZ_CHECK(k == n_usable);
    for (int a = 0, b = 0; a < res.n; a++) {
        if (!mask[a])
            continue;
        FUZZ_CHECK(kept[b].usage == res.rr[a].usage && kept[b].selector == res.rr[a].selector &&
                   kept[b].mtype == res.rr[a].mtype && kept[b].len == res.rr[a].len &&
                   (kept[b].len == 0 || memcmp(kept[b].data, res.rr[a].data, kept[b].len) == 0));
        b++;
    }
    free(kept);

    static struct mxg_dane_host h;
    mxg_dane_host_clear(&h);
    int rc = mxg_dane_decide(&res, "mx.example.net", other, 25, has_next, &h);
    FUZZ_CHECK(rc == 0 || rc == 1);
    FUZZ_CHECK(fuzz_terminated(h.why, sizeof h.why));
    int bad = res.status == MXG_DNS_BOGUS || res.sec == MXG_SEC_BOGUS ||
              res.status == MXG_DNS_TEMPFAIL || res.sec == MXG_SEC_INDETERMINATE;
    int secure_rrs = !bad && res.status == MXG_DNS_OK && res.sec == MXG_SEC_SECURE && res.n > 0;
    if (bad)
        FUZZ_CHECK(rc == 1 && h.req == MXG_DANE_UNUSABLE && h.enh[0] == '4');
    else if (secure_rrs)
        FUZZ_CHECK(rc == 1 && h.req == (n_usable ? MXG_DANE_VERIFY : MXG_DANE_ENCRYPT) &&
                   h.n_usable == n_usable && h.n_total == res.n &&
                   h.n_all == (n_usable ? 0 : res.n));
    else
        FUZZ_CHECK(rc == (has_next ? 0 : 1) && (rc == 0 || h.req == MXG_DANE_NONE));

    if (rc == 1 && h.req == MXG_DANE_VERIFY) {
        SSL *ssl = SSL_new(ctx);
        FUZZ_CHECK(ssl != NULL);
        char err[256] = "no usable records";
        struct mxg_tls_verify v;
        struct mxg_tls_tlsa *own = NULL;
        int src = mxg_dane_host_verify(&h, &v, &own);
        if (src == 0)
            src = mxg_tls_verify_ssl(ssl, &v, err, sizeof err);
        free(own);
        if (src != 0) {
            fprintf(stderr, "DANE set-up: %s\n", err);
            FUZZ_CHECK(!"a VERIFY decision OpenSSL refuses");
        }
        SSL_free(ssl);
    }
    mxg_dane_host_clear(&h);
    free(rrs);
    free(mask);
    return 0;
}
