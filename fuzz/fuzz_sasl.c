/* fuzz/fuzz_sasl.c — SMTP AUTH input from the network (proxy/inbound/auth.h):
 * mxg_b64_decode (strict RFC 4648 base64, RFC 4954), mxg_b64_encode and
 * mxg_sasl_plain_parse (RFC 4616 [authzid] NUL authcid NUL passwd), on the
 * raw input and on what it decodes to.
 *
 * Properties checked:
 *  - decode: only lengths that are multiples of 4 (or "" / "="), at most
 *    cap octets; what it decodes re-encodes to a text that decodes to the
 *    same octets; encode then decode of any octets gives them back;
 *  - PLAIN: accepted only for exactly two NULs, non-empty authcid and
 *    passwd of at most 255 octets, an authzid that is empty or the authcid;
 *    user and pass are those fields, terminated. */
#include "fuzz.h"

#include "proxy/inbound/auth.h"

static void check_plain(const unsigned char *m, size_t n)
{
    char user[MXG_SASL_FIELD_MAX + 1], pass[MXG_SASL_FIELD_MAX + 1];
    unsigned char *exact = (unsigned char *)fuzz_dup(m, n);
    int rc = mxg_sasl_plain_parse(exact, n, user, pass);
    free(exact);
    FUZZ_CHECK(rc == MXG_SASL_OK || rc == MXG_SASL_MALFORMED || rc == MXG_SASL_EMPTY ||
               rc == MXG_SASL_AUTHZID);
    if (rc != MXG_SASL_OK)
        return;
    size_t ul = strlen(user), pl = strlen(pass), nuls = 0;
    for (size_t i = 0; i < n; i++)
        nuls += m[i] == 0;
    FUZZ_CHECK(nuls == 2);
    FUZZ_CHECK(ul >= 1 && ul <= MXG_SASL_FIELD_MAX && pl >= 1 && pl <= MXG_SASL_FIELD_MAX);
    /* m = authzid NUL user NUL pass, authzid "" or user */
    FUZZ_CHECK(n >= ul + pl + 2);
    FUZZ_CHECK(memcmp(m + n - pl, pass, pl) == 0 && m[n - pl - 1] == 0);
    FUZZ_CHECK(memcmp(m + n - pl - 1 - ul, user, ul) == 0 && m[n - pl - 2 - ul] == 0);
    size_t zl = n - pl - ul - 2;
    FUZZ_CHECK(zl == 0 || (zl == ul && memcmp(m, user, ul) == 0));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t cap = size / 4 * 3 + 3;
    unsigned char *dec = malloc(cap);
    FUZZ_CHECK(dec != NULL);
    size_t n = 0;
    char *text = fuzz_dup(data, size);
    int rc = mxg_b64_decode(text, size, dec, cap, &n);
    free(text);
    if (rc == 0) {
        FUZZ_CHECK(n <= cap);
        FUZZ_CHECK(size % 4 == 0 || (size == 1 && data[0] == '='));
        char *enc = malloc(4 * ((n + 2) / 3) + 1);
        FUZZ_CHECK(enc != NULL);
        size_t el = mxg_b64_encode(dec, n, enc, 4 * ((n + 2) / 3) + 1);
        FUZZ_CHECK(el == 4 * ((n + 2) / 3) && strlen(enc) == el);
        unsigned char *again = malloc(n + 3);
        size_t n2 = 0;
        FUZZ_CHECK(again && mxg_b64_decode(enc, el, again, n + 3, &n2) == 0);
        FUZZ_CHECK(n2 == n && memcmp(again, dec, n) == 0);
        free(again);
        free(enc);
        if (n > 0) { /* one octet less room: refused, never overrun */
            unsigned char *tight = malloc(n - 1 ? n - 1 : 1);
            size_t n3 = 0;
            FUZZ_CHECK(tight && mxg_b64_decode((const char *)data, size, tight, n - 1, &n3) == -1);
            free(tight);
        }
        check_plain(dec, n);
    } else {
        FUZZ_CHECK(rc == -1);
    }
    free(dec);

    /* any octets survive encode + decode */
    size_t ecap = 4 * ((size + 2) / 3) + 1;
    char *enc = malloc(ecap);
    unsigned char *back = malloc(size + 3);
    FUZZ_CHECK(enc && back);
    size_t el = mxg_b64_encode(data, size, enc, ecap);
    FUZZ_CHECK(el == ecap - 1);
    size_t bn = 0;
    FUZZ_CHECK(mxg_b64_decode(enc, el, back, size + 3, &bn) == 0 && bn == size);
    FUZZ_CHECK(size == 0 || memcmp(back, data, size) == 0);
    FUZZ_CHECK(mxg_b64_encode(data, size, enc, ecap - 1) == 0); /* too small: 0 */
    free(enc);
    free(back);

    check_plain(data, size);
    return 0;
}
