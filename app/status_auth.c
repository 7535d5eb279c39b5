/* app/status_auth.c — who may see the status page (status.h): loopback
 * clients, or with metrics.status_credentials_file HTTP basic auth
 * (RFC 7617) compared in constant time. */
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "status.h"

#define CRED_LINE_MAX 1024

/* SHA-256 of s[0..n) into md; 0 or -1. */
static int sha256(const void *s, size_t n, unsigned char md[32])
{
    unsigned int len = 0;
    return EVP_Digest(s, n, md, &len, EVP_sha256(), NULL) == 1 && len == 32 ? 0 : -1;
}

/* Read the "user:password" lines of path (status.h). */
int mxg_status_creds_load(const char *path, struct mxg_status_creds *c, char *err, size_t errlen)
{
    memset(c, 0, sizeof *c);
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "%s: cannot open: %m", path);
        return -1;
    }
    char line[CRED_LINE_MAX];
    int lineno = 0, rc = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        size_t n = strcspn(line, "\r\n");
        if (line[n] == 0 && n == sizeof line - 1 && !feof(f)) { /* its tail would be a line */
            snprintf(err, errlen, "%s:%d: longer than %d characters", path, lineno,
                     CRED_LINE_MAX - 2);
            rc = -1;
            break;
        }
        line[n] = 0;
        if (n == 0 || line[0] == '#')
            continue;
        if (!strchr(line, ':') || line[0] == ':') {
            snprintf(err, errlen, "%s:%d: not \"user:password\"", path, lineno);
            rc = -1;
            break;
        }
        if (c->n == MXG_STATUS_CREDS_MAX) {
            snprintf(err, errlen, "%s:%d: more than %d pairs", path, lineno, MXG_STATUS_CREDS_MAX);
            rc = -1;
            break;
        }
        if (sha256(line, n, c->digest[c->n++]) < 0) {
            snprintf(err, errlen, "%s: SHA-256 failed", path);
            rc = -1;
            break;
        }
    }
    OPENSSL_cleanse(line, sizeof line);
    fclose(f);
    if (rc == 0 && c->n == 0) {
        snprintf(err, errlen, "%s: no \"user:password\" line", path);
        rc = -1;
    }
    return rc;
}

/* Does the Authorization header name one of the pairs (status.h)? */
int mxg_status_auth_check(const struct mxg_status_creds *c, const char *authorization)
{
    unsigned char dec[CRED_LINE_MAX], md[32];
    if (!c || !authorization || strncasecmp(authorization, "Basic ", 6) != 0)
        return 0;
    const char *b64 = authorization + 6;
    while (*b64 == ' ')
        b64++;
    size_t len = strcspn(b64, " \t\r\n");
    if (len == 0 || len % 4 != 0 || len / 4 * 3 > sizeof dec)
        return 0;
    int n = EVP_DecodeBlock(dec, (const unsigned char *)b64, (int)len);
    if (n < 0)
        return 0;
    /* EVP_DecodeBlock counts the padding's octets as zeros: take them off */
    if (len >= 1 && b64[len - 1] == '=')
        n--;
    if (len >= 2 && b64[len - 2] == '=')
        n--;
    if (n <= 0 || !memchr(dec, ':', (size_t)n) || sha256(dec, (size_t)n, md) < 0) {
        OPENSSL_cleanse(dec, sizeof dec);
        return 0;
    }
    OPENSSL_cleanse(dec, sizeof dec);
    int ok = 0;
    for (int i = 0; i < c->n; i++) /* every pair, whichever matches */
        ok |= CRYPTO_memcmp(md, c->digest[i], sizeof md) == 0;
    return ok;
}

/* Is sa a loopback address (status.h)? */
int mxg_status_client_loopback(const struct sockaddr *sa)
{
    if (!sa)
        return 0;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
        return (ntohl(s4->sin_addr.s_addr) >> 24) == 127;
    }
    if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        if (IN6_IS_ADDR_LOOPBACK(a))
            return 1;
        return IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127;
    }
    return 0;
}
