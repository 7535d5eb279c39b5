/* report/rpt_dkim.c — DKIM signatures (RFC 6376) on report mail, with
 * libopendkim. Contract: tlsrpt.h, block "report mail".
 *
 * The key is checked with OpenSSL when it is loaded (type, size), so that
 * a wrong key is a start-up error, not a failure at the first report. Each
 * handle has its own DKIM_LIB (no global state); libopendkim gets the PEM
 * text as the secret key. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <opendkim/dkim.h>

#include "rpt_int.h"

#define KEY_FILE_MAX (64 * 1024)

struct mxg_rpt_dkim {
    DKIM_LIB *lib;
    unsigned char *key; /* PEM text, NUL-terminated */
    char selector[256];
    char domain[MXG_RPT_DOMAIN_MAX];
    dkim_alg_t alg;
};

/* The header fields signed (h=), lower-case as libopendkim matches them. */
static const char *const sign_hdrs[] = {
    "from", "to", "subject", "date", "message-id", "mime-version", "content-type",
    "tls-report-domain", "tls-report-submitter", "auto-submitted", "tls-required", NULL,
};

static unsigned char *read_file(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        rpt_set_err(err, errlen, "DKIM key %s: %s", path, strerror(errno));
        return NULL;
    }
    unsigned char *buf = malloc(KEY_FILE_MAX + 1);
    size_t n = buf ? fread(buf, 1, KEY_FILE_MAX + 1, f) : 0;
    int bad = ferror(f);
    fclose(f);
    if (!buf || bad || n == 0 || n > KEY_FILE_MAX) {
        rpt_set_err(err, errlen, "DKIM key %s: %s", path,
                    !buf ? "out of memory" : bad ? "read error" : n == 0 ? "empty file"
                                                                : "larger than 64 KiB");
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    return buf;
}

struct mxg_rpt_dkim *mxg_rpt_dkim_load(const char *key_file, const char *selector,
                                       const char *domain, char *err, size_t errlen)
{
    char dom[MXG_RPT_DOMAIN_MAX];
    if (!key_file || !key_file[0] || !selector || !selector[0] ||
        strlen(selector) >= 256 || !domain || rpt_domain_norm(domain, dom) != 0) {
        rpt_set_err(err, errlen, "DKIM: key file, selector and signing domain are required");
        return NULL;
    }
    unsigned char *pem = read_file(key_file, err, errlen);
    if (!pem)
        return NULL;
    BIO *bio = BIO_new_mem_buf(pem, -1);
    EVP_PKEY *pk = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
    BIO_free(bio);
    const dkim_alg_t alg = DKIM_SIGN_RSASHA256;
    const char *why = NULL;
    if (!pk) {
        why = "not a PEM private key (or encrypted)";
    } else if (EVP_PKEY_get_base_id(pk) == EVP_PKEY_RSA) {
        if (EVP_PKEY_get_bits(pk) < 1024)
            why = "RSA key shorter than 1024 bits (RFC 8301)";
    } else {
        /* Ed25519 (RFC 8463): libopendkim 2.11 leaks its key on every signature, and
         * RFC 8463 wants RSA beside it anyway: RSA only */
        why = "not an RSA key (DKIM signatures here are rsa-sha256)";
    }
    EVP_PKEY_free(pk);
    if (why) {
        rpt_set_err(err, errlen, "DKIM key %s: %s", key_file, why);
        free(pem);
        return NULL;
    }
    struct mxg_rpt_dkim *k = calloc(1, sizeof *k);
    if (!k || !(k->lib = dkim_init(NULL, NULL))) {
        rpt_set_err(err, errlen, "DKIM: %s", k ? "libopendkim initialisation failed"
                                                : "out of memory");
        free(k);
        free(pem);
        return NULL;
    }
    /* the list is passed as a (char **), its size as that of the pointer */
    if (dkim_options(k->lib, DKIM_OP_SETOPT, DKIM_OPTS_SIGNHDRS, (void *)sign_hdrs,
                     sizeof(char **)) != DKIM_STAT_OK) {
        rpt_set_err(err, errlen, "DKIM: cannot set the signed header list");
        dkim_close(k->lib);
        free(k);
        free(pem);
        return NULL;
    }
    k->key = pem;
    k->alg = alg;
    snprintf(k->selector, sizeof k->selector, "%s", selector);
    snprintf(k->domain, sizeof k->domain, "%s", dom);
    return k;
}

void mxg_rpt_dkim_free(struct mxg_rpt_dkim *k)
{
    if (!k)
        return;
    dkim_close(k->lib);
    if (k->key) {
        OPENSSL_cleanse(k->key, strlen((char *)k->key));
        free(k->key);
    }
    free(k);
}

const char *mxg_rpt_dkim_domain(const struct mxg_rpt_dkim *k)
{
    return k ? k->domain : NULL;
}

int mxg_rpt_dkim_sign(struct mxg_rpt_dkim *k, const char *msg, size_t len, char **out,
                      size_t *outlen, char *err, size_t errlen)
{
    if (!k || !msg || !out || !outlen) {
        rpt_set_err(err, errlen, "DKIM: missing argument");
        return MXG_RPT_EINVAL;
    }
    DKIM_STAT st = DKIM_STAT_OK;
    DKIM *d = dkim_sign(k->lib, (const unsigned char *)"mxguard-tlsrpt", NULL, k->key,
                        (const unsigned char *)k->selector, (const unsigned char *)k->domain,
                        DKIM_CANON_RELAXED, DKIM_CANON_RELAXED, k->alg, -1, &st);
    if (!d) {
        rpt_set_err(err, errlen, "DKIM: dkim_sign: %s", dkim_getresultstr(st));
        return MXG_RPT_EINVAL;
    }
    /* dkim_chunk wants a writable buffer */
    unsigned char *copy = malloc(len ? len : 1);
    if (!copy) {
        dkim_free(d);
        rpt_set_err(err, errlen, "DKIM: out of memory");
        return MXG_RPT_ENOMEM;
    }
    memcpy(copy, msg, len);
    st = dkim_chunk(d, copy, len);
    if (st == DKIM_STAT_OK)
        st = dkim_chunk(d, NULL, 0);
    if (st == DKIM_STAT_OK)
        st = dkim_eom(d, NULL);
    free(copy);
    unsigned char *hdr = NULL;
    size_t hlen = 0;
    static const char name[] = "DKIM-Signature: ";
    if (st == DKIM_STAT_OK)
        st = dkim_getsighdr_d(d, sizeof name - 1, &hdr, &hlen);
    if (st != DKIM_STAT_OK) {
        const char *e = dkim_geterror(d);
        rpt_set_err(err, errlen, "DKIM: signing failed: %s%s%s", dkim_getresultstr(st),
                    e ? ": " : "", e ? e : "");
        dkim_free(d);
        return MXG_RPT_EINVAL;
    }
    /* the header value is folded with bare LF: make it CRLF */
    size_t extra = 0;
    for (size_t i = 0; i < hlen; i++)
        if (hdr[i] == '\n' && (i == 0 || hdr[i - 1] != '\r'))
            extra++;
    size_t total = sizeof name - 1 + hlen + extra + 2 + len;
    char *res = malloc(total + 1);
    if (!res) {
        dkim_free(d);
        rpt_set_err(err, errlen, "DKIM: out of memory");
        return MXG_RPT_ENOMEM;
    }
    size_t o = 0;
    memcpy(res, name, sizeof name - 1);
    o = sizeof name - 1;
    for (size_t i = 0; i < hlen; i++) {
        if (hdr[i] == '\n' && (i == 0 || hdr[i - 1] != '\r'))
            res[o++] = '\r';
        res[o++] = (char)hdr[i];
    }
    res[o++] = '\r';
    res[o++] = '\n';
    memcpy(res + o, msg, len);
    o += len;
    res[o] = '\0';
    dkim_free(d);
    *out = res;
    *outlen = o;
    return 0;
}
