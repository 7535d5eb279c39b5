/* core/config.c — see config.h.
 *
 * One schema table (keys[] below) drives everything: the defaults (each row
 * carries its default in the environment syntax and is parsed like an
 * override), the file reader, the MXGUARD_* environment reader and the dump.
 * A reader only turns its source into a struct val of the row's shape
 * (integer, integer-or-string, string, bool, list of strings); the row's
 * apply function then checks the value and stores it, so every check exists
 * once whatever the source.
 *
 * Decisions:
 *  - Durations: digits plus an optional unit ms|s|m|h|d (lower case); a bare
 *    number is seconds (also as a string, so MXGUARD_TIMEOUTS_IDLE=300
 *    works). Fractions ("1.5s") are rejected: write "1500ms". The stored
 *    range of every duration is checked per key (timeouts: 1ms .. 1d).
 *  - Sizes: digits plus an optional k|K|M|G (1024-based); a bare number is
 *    octets.
 *  - libconfig 1.5 silently wraps decimal integers beyond 32 bits
 *    (99999999999 reads as 1215752191), so after parsing, every file read
 *    (including @include files) is scanned for such literals and they are
 *    rejected with their line ("append L or use a string").
 *  - @include paths are resolved as libconfig 1.5 does: relative to the
 *    working directory.
 *  - CIDR text is stored normalised ("10.1.2.3/8" -> "10.0.0.0/8", a bare
 *    address gets its full prefix); endpoint text is stored as written.
 *  - mxg_config_load() works on a copy: on failure *cfg is left untouched.
 */
#include "config.h"

#include <arpa/inet.h>
#include <sched.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <sys/stat.h>

#include <libconfig.h>

_Static_assert(sizeof(enum mxg_af_pref) == sizeof(int), "enum fields are stored as int");
_Static_assert(sizeof(enum mxg_dns_mode) == sizeof(int), "enum fields are stored as int");
_Static_assert(sizeof(enum mxg_dns_transport) == sizeof(int), "enum fields are stored as int");
_Static_assert(sizeof(enum mxg_tls_fallback_level) == sizeof(int), "enum fields are stored as int");
_Static_assert(sizeof(enum mxg_log_level) == sizeof(int), "enum fields are stored as int");
_Static_assert(sizeof(enum mxg_log_format) == sizeof(int), "enum fields are stored as int");
_Static_assert(sizeof(enum mxg_inbound_tls_min) == sizeof(int), "enum fields are stored as int");

#define MS_PER_S 1000ULL
#define MS_PER_DAY (86400ULL * MS_PER_S)
#define WHY_MAX 512
#define ENV_VALUE_MAX 4096

/* ------------------------------------------------------------------ */
/* Small helpers                                                       */
/* ------------------------------------------------------------------ */

static int fail(const char **why, const char *reason)
{
    if (why)
        *why = reason;
    return -1;
}

static int say(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Format into buf (a reason or the caller's err); always returns -1. */
static int say(char *buf, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (buf && len)
        vsnprintf(buf, len, fmt, ap);
    va_end(ap);
    return -1;
}

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static int is_alnum(char c)
{
    return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* Read one or more decimal digits at *s into *out and advance *s.
 * -1: no digit; -2: the number does not fit in 64 bits. */
static int parse_digits(const char **s, uint64_t *out)
{
    const char *p = *s;
    uint64_t v = 0;
    if (!is_digit(*p))
        return -1;
    for (; is_digit(*p); p++) {
        unsigned d = (unsigned)(*p - '0');
        if (v > (UINT64_MAX - d) / 10)
            return -2;
        v = v * 10 + d;
    }
    *s = p;
    *out = v;
    return 0;
}

/* ------------------------------------------------------------------ */
/* Durations and sizes                                                 */
/* ------------------------------------------------------------------ */

struct unit {
    const char *name;
    uint64_t mult;
};

static const struct unit duration_units[] = {
    {"", MS_PER_S}, {"ms", 1}, {"s", MS_PER_S}, {"m", 60 * MS_PER_S},
    {"h", 3600 * MS_PER_S}, {"d", MS_PER_DAY}, {NULL, 0},
};

static const struct unit size_units[] = {
    {"", 1}, {"k", 1024}, {"K", 1024}, {"M", 1024 * 1024}, {"G", 1024 * 1024 * 1024}, {NULL, 0},
};

/* "<digits><unit>" with the unit taken from units; unit_hint names them. */
static int parse_scaled(const char *s, const struct unit *units, const char *unit_hint,
                        uint64_t *out, const char **why)
{
    uint64_t n;
    if (*s == '\0')
        return fail(why, "empty value");
    int rc = parse_digits(&s, &n);
    if (rc == -1)
        return fail(why, "expected a non-negative number with an optional unit");
    if (rc == -2)
        return fail(why, "number too large");
    if (*s == '.')
        return fail(why, "fractions are not supported (use a smaller unit)");
    for (const struct unit *u = units; u->name; u++) {
        if (strcmp(s, u->name) != 0)
            continue;
        if (n > UINT64_MAX / u->mult)
            return fail(why, "number too large");
        *out = n * u->mult;
        return 0;
    }
    return fail(why, unit_hint);
}

static int parse_duration_why(const char *s, uint64_t *out, const char **why)
{
    return parse_scaled(s, duration_units, "unknown unit (use ms, s, m, h or d)", out, why);
}

static int parse_size_why(const char *s, uint64_t *out, const char **why)
{
    return parse_scaled(s, size_units, "unknown unit (use k, K, M or G)", out, why);
}

/* Parse "N", "Nms", "Ns", "Nm", "Nh", "Nd" (N decimal, no sign, no
 * fraction; bare N = seconds) into milliseconds. 0 or -1. */
int mxg_parse_duration_ms(const char *s, uint64_t *out)
{
    return s ? parse_duration_why(s, out, NULL) : -1;
}

/* Parse "N", "Nk", "NK", "NM", "NG" (1024-based; bare N = octets). 0 or -1. */
int mxg_parse_size(const char *s, uint64_t *out)
{
    return s ? parse_size_why(s, out, NULL) : -1;
}

/* "Ns" when whole seconds, else "Nms" (the dump and range messages). */
static const char *fmt_duration(uint64_t ms, char *buf, size_t len)
{
    if (ms % MS_PER_S == 0)
        snprintf(buf, len, "%llus", (unsigned long long)(ms / MS_PER_S));
    else
        snprintf(buf, len, "%llums", (unsigned long long)ms);
    return buf;
}

/* ------------------------------------------------------------------ */
/* Endpoints                                                           */
/* ------------------------------------------------------------------ */

static int parse_port(const char *s, int *port, const char **why)
{
    const char *p = s;
    uint64_t v = 0;
    int rc = parse_digits(&p, &v);
    if (rc == -1 || *p != '\0')
        return fail(why, "port is not a number");
    if (rc == -2 || v < 1 || v > 65535)
        return fail(why, "port out of range (1..65535)");
    *port = (int)v;
    return 0;
}

/* Copy len bytes of s into host (size INET6_ADDRSTRLEN) as a string. */
static int copy_host(char *host, const char *s, size_t len, const char **why)
{
    if (len == 0)
        return fail(why, "empty address");
    if (len >= INET6_ADDRSTRLEN)
        return fail(why, "not an IP address");
    memcpy(host, s, len);
    host[len] = '\0';
    return 0;
}

/* Split s into host text, port text (NULL if none) and the family implied
 * by the syntax: "[v6]:port", "[v6]", "v6" (two or more colons), "v4:port",
 * "v4". */
static int split_endpoint(const char *s, char *host, const char **port_s, int *family,
                          const char **why)
{
    *port_s = NULL;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (!close)
            return fail(why, "missing ']'");
        if (close[1] == ':')
            *port_s = close + 2;
        else if (close[1] != '\0')
            return fail(why, "unexpected text after ']'");
        *family = AF_INET6;
        return copy_host(host, s + 1, (size_t)(close - s - 1), why);
    }
    const char *colon = strchr(s, ':');
    if (colon && strchr(colon + 1, ':')) {
        *family = AF_INET6;
        return copy_host(host, s, strlen(s), why);
    }
    *family = AF_INET;
    if (colon)
        *port_s = colon + 1;
    return copy_host(host, s, colon ? (size_t)(colon - s) : strlen(s), why);
}

static int fill_sockaddr(const char *host, int family, int port, struct sockaddr_storage *ss,
                         const char **why)
{
    if (family == AF_INET) {
        struct sockaddr_in *sin = (struct sockaddr_in *)ss;
        if (inet_pton(AF_INET, host, &sin->sin_addr) != 1)
            return fail(why, "not an IPv4 address (IPv6 goes in brackets: [::1]:25)");
        sin->sin_family = AF_INET;
        sin->sin_port = htons((uint16_t)port);
        return 0;
    }
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET6, host, &sin6->sin6_addr) != 1)
        return fail(why, "not an IPv6 address");
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons((uint16_t)port);
    return 0;
}

static int parse_endpoint_why(const char *s, int default_port, struct mxg_endpoint *out,
                              const char **why)
{
    char host[INET6_ADDRSTRLEN];
    const char *port_s;
    int family, port = default_port;
    memset(out, 0, sizeof *out);
    if (default_port < 0 || default_port > 65535)
        return fail(why, "invalid default port");
    if (strlen(s) >= sizeof out->text)
        return fail(why, "too long");
    if (split_endpoint(s, host, &port_s, &family, why) < 0)
        return -1;
    if (port_s && parse_port(port_s, &port, why) < 0)
        return -1;
    if (fill_sockaddr(host, family, port, &out->sa, why) < 0)
        return -1;
    strcpy(out->text, s);
    return 0;
}

/* Parse "a.b.c.d:port", "a.b.c.d", "[v6]:port", "[v6]" or a bare "v6"
 * (literal addresses only); a missing port becomes default_port (0 allowed,
 * meaning "not given"). An explicit port must be 1..65535. The text is
 * stored as written. 0 or -1 (out zeroed). */
int mxg_parse_endpoint(const char *s, int default_port, struct mxg_endpoint *out)
{
    if (!s || !out)
        return -1;
    return parse_endpoint_why(s, default_port, out, NULL);
}

/* ------------------------------------------------------------------ */
/* CIDR networks                                                       */
/* ------------------------------------------------------------------ */

static void mask_host_bits(uint8_t *a, int prefix, int nbytes)
{
    for (int i = 0; i < nbytes; i++) {
        int bits = prefix - 8 * i;
        if (bits >= 8)
            continue;
        a[i] &= bits <= 0 ? 0 : (uint8_t)(0xff << (8 - bits));
    }
}

static int prefix_equal(const uint8_t *a, const uint8_t *b, int prefix)
{
    int whole = prefix / 8, rest = prefix % 8;
    if (memcmp(a, b, (size_t)whole) != 0)
        return 0;
    if (rest == 0)
        return 1;
    uint8_t m = (uint8_t)(0xff << (8 - rest));
    return (a[whole] & m) == (b[whole] & m);
}

static int parse_prefix(const char *s, int max, int *out, const char **why)
{
    const char *p = s;
    uint64_t v;
    if (parse_digits(&p, &v) == -1 || *p != '\0')
        return fail(why, "prefix length is not a number");
    if (p - s > 3 || v > (uint64_t)max)
        return fail(why, max == 32 ? "prefix length out of range (0..32)"
                                   : "prefix length out of range (0..128)");
    *out = (int)v;
    return 0;
}

static int parse_cidr_why(const char *s, struct mxg_cidr *out, const char **why)
{
    char host[INET6_ADDRSTRLEN], text[INET6_ADDRSTRLEN];
    memset(out, 0, sizeof *out);
    const char *slash = strchr(s, '/');
    if (copy_host(host, s, slash ? (size_t)(slash - s) : strlen(s), why) < 0)
        return -1;
    int max = 32;
    out->family = AF_INET;
    if (inet_pton(AF_INET, host, out->addr) != 1) {
        max = 128;
        out->family = AF_INET6;
        if (inet_pton(AF_INET6, host, out->addr) != 1)
            return fail(why, "not an IP address");
    }
    out->prefix = max;
    if (slash && parse_prefix(slash + 1, max, &out->prefix, why) < 0)
        return -1;
    mask_host_bits(out->addr, out->prefix, max / 8);
    inet_ntop(out->family, out->addr, text, sizeof text);
    snprintf(out->text, sizeof out->text, "%s/%d", text, out->prefix);
    return 0;
}

/* Parse "addr/len" (IPv4 or IPv6) or a bare address (full-length prefix).
 * Host bits are accepted and masked off; text is stored normalised
 * ("10.1.2.3/8" -> "10.0.0.0/8"). 0 or -1 (out zeroed). */
int mxg_parse_cidr(const char *s, struct mxg_cidr *out)
{
    if (!s || !out)
        return -1;
    return parse_cidr_why(s, out, NULL);
}

static const uint8_t v4mapped_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

/* The address of sa in canonical form (v4-mapped IPv6 -> IPv4): family or -1. */
static int canon_sockaddr(const struct sockaddr *sa, uint8_t out[16])
{
    if (sa->sa_family == AF_INET) {
        memcpy(out, &((const struct sockaddr_in *)sa)->sin_addr, 4);
        return AF_INET;
    }
    if (sa->sa_family != AF_INET6)
        return -1;
    const uint8_t *a = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
    if (memcmp(a, v4mapped_prefix, 12) == 0) {
        memcpy(out, a + 12, 4);
        return AF_INET;
    }
    memcpy(out, a, 16);
    return AF_INET6;
}

/* 1 if sa's address lies in net. Both sides are compared in canonical form:
 * a v4-mapped client (::ffff:a.b.c.d) matches IPv4 networks, and a network
 * written inside ::ffff:0:0/96 matches plain IPv4 clients. "::/0" therefore
 * does not match IPv4 clients; use "0.0.0.0/0" for those. */
int mxg_cidr_match(const struct mxg_cidr *net, const struct sockaddr *sa)
{
    uint8_t a[16], n[16];
    if (!net || !sa)
        return 0;
    int family = canon_sockaddr(sa, a);
    int nfamily = net->family, prefix = net->prefix;
    memcpy(n, net->addr, sizeof n);
    if (nfamily == AF_INET6 && prefix >= 96 && memcmp(n, v4mapped_prefix, 12) == 0) {
        nfamily = AF_INET;
        prefix -= 96;
        memmove(n, n + 12, 4);
    }
    return family == nfamily && prefix_equal(a, n, prefix);
}

/* ------------------------------------------------------------------ */
/* String checks                                                       */
/* ------------------------------------------------------------------ */

static int check_label(const char *label, size_t len, const char **why)
{
    if (len == 0)
        return fail(why, "not a DNS name: empty label");
    if (len > 63)
        return fail(why, "not a DNS name: label longer than 63 characters");
    if (label[0] == '-' || label[len - 1] == '-')
        return fail(why, "not a DNS name: label starts or ends with '-'");
    return 0;
}

/* "" or a DNS name: letters, digits, '-', dot-separated labels, <= 253. */
static int check_dns_name(const char *s, const char **why)
{
    if (*s == '\0')
        return 0;
    if (strlen(s) > 253)
        return fail(why, "not a DNS name: longer than 253 characters");
    const char *label = s;
    for (const char *p = s;; p++) {
        if (*p == '.' || *p == '\0') {
            if (check_label(label, (size_t)(p - label), why) < 0)
                return -1;
            if (*p == '\0')
                return 0;
            label = p + 1;
        } else if (!is_alnum(*p) && *p != '-') {
            return fail(why, "not a DNS name: only letters, digits, '-' and '.' are allowed");
        }
    }
}

static int check_https_url(const char *s, const char **why)
{
    if (s[0] == 0)
        return 0;
    if (strncmp(s, "https://", 8) != 0 || s[8] == 0 || s[8] == '/') {
        *why = "must be an https:// URL";
        return -1;
    }
    return 0;
}

/* "" or a user/group name as useradd(8) accepts it (or a numeric id). */
static int check_account_name(const char *s, const char **why)
{
    if (strlen(s) > 32)
        return fail(why, "not a user or group name: longer than 32 characters");
    for (const char *p = s; *p; p++)
        if (!is_alnum(*p) && *p != '_' && *p != '-' && *p != '.' && !(*p == '$' && !p[1]))
            return fail(why, "not a user or group name");
    return *s == '-' ? fail(why, "not a user or group name") : 0;
}

/* "" or "addr:port" / "[v6addr]:port" with an explicit port. */
static int check_listen_endpoint(const char *s, const char **why)
{
    struct mxg_endpoint ep;
    if (*s == '\0')
        return 0;
    if (parse_endpoint_why(s, 0, &ep, why) < 0)
        return -1;
    if ((ep.sa.ss_family == AF_INET ? ((struct sockaddr_in *)&ep.sa)->sin_port
                                     : ((struct sockaddr_in6 *)&ep.sa)->sin6_port) == 0)
        return fail(why, "a port is required (addr:port or [v6]:port)");
    return 0;
}

/* "" or a plain address local@domain (ASCII, no spaces, brackets or quotes). */
static int check_mailbox(const char *s, const char **why)
{
    if (*s == '\0')
        return 0;
    const char *at = strrchr(s, '@');
    if (!at || at == s || strlen(s) > 254)
        return fail(why, "not an address local@domain");
    for (const char *p = s; p < at; p++)
        if (*p <= ' ' || *p >= 127 || strchr("<>()[]\\,;:\"@", *p))
            return fail(why, "not an address local@domain");
    return check_dns_name(at + 1, why) < 0 || !at[1] ? fail(why, "not an address local@domain")
                                                   : 0;
}

static int check_nonempty(const char *s, const char **why)
{
    return *s ? 0 : fail(why, "must not be empty");
}

static int check_ipv4(const char *s, const char **why)
{
    struct in_addr a;
    if (*s == '\0' || inet_pton(AF_INET, s, &a) == 1)
        return 0;
    return fail(why, "not an IPv4 address");
}

static int check_ipv6(const char *s, const char **why)
{
    struct in6_addr a;
    if (*s == '\0' || inet_pton(AF_INET6, s, &a) == 1)
        return 0;
    return fail(why, "not an IPv6 address");
}

/* A next hop (see config.h): "[host]", "[host]:port", "host", "host:port". */
int mxg_parse_nexthop(const char *s, struct mxg_nexthop *out, const char **why)
{
    const char *h = s, *he, *rest;
    memset(out, 0, sizeof *out);
    if (!s || !*s)
        return fail(why, "empty next hop");
    if (*s == '[') {
        h = s + 1;
        he = strchr(h, ']');
        if (!he)
            return fail(why, "'[' without ']'");
        rest = he + 1;
    } else {
        he = strchr(s, ':');
        if (!he)
            he = s + strlen(s);
        rest = he;
        out->mx = 1;
    }
    if (he == h || (size_t)(he - h) >= sizeof out->host)
        return fail(why, "host name empty or too long");
    memcpy(out->host, h, (size_t)(he - h));
    if (*rest == ':') {
        uint64_t v;
        const char *p = rest + 1;
        if (parse_digits(&p, &v) == -1 || *p != '\0' || v < 1 || v > 65535)
            return fail(why, "port must be 1..65535");
        out->port = (int)v;
    } else if (*rest) {
        return fail(why, "unexpected text after the host (write [host]:port or host:port)");
    }
    struct in6_addr a6;
    struct in_addr a4;
    if (inet_pton(AF_INET, out->host, &a4) == 1 || inet_pton(AF_INET6, out->host, &a6) == 1)
        return out->mx ? fail(why, "an address must be written in [ ] (no MX lookup)") : 0;
    if (check_dns_name(out->host, why) < 0)
        return -1;
    if (!strchr(out->host, '.') && strcasecmp(out->host, "localhost") != 0)
        return fail(why, "host must be a fully qualified name or an address in [ ]");
    return 0;
}

static int check_nexthop(const char *s, const char **why)
{
    struct mxg_nexthop nh;
    return *s == '\0' ? 0 : mxg_parse_nexthop(s, &nh, why);
}

int mxg_parse_tls_version(const char *s)
{
    static const char *const names[] = {"TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"};
    if (!s)
        return -1;
    if (!*s)
        return 0;
    for (int i = 0; i < 4; i++)
        if (strcmp(s, names[i]) == 0)
            return 0x0301 + i;
    return -1;
}

/* tls.min_version: one of the version names (not empty). */
static int check_tls_min(const char *s, const char **why)
{
    return mxg_parse_tls_version(s) > 0 ? 0 : fail(why, "must be TLSv1, TLSv1.1, TLSv1.2 or TLSv1.3");
}

/* tls.max_version: "" (the highest supported) or a version name. */
static int check_tls_max(const char *s, const char **why)
{
    return mxg_parse_tls_version(s) >= 0 ? 0
                                         : fail(why, "must be \"\" (the highest supported), "
                                                     "TLSv1, TLSv1.1, TLSv1.2 or TLSv1.3");
}

/* Copies the URI s into out with its percent-escapes decoded (libpq decodes a URI's user,
 * password and parameter names alike); a %00 becomes a space. 0, or -1 when out is short. */
static int uri_decode(const char *s, char *out, size_t outlen)
{
    size_t n = 0;
    for (const char *p = s; *p; p++) {
        char c = *p;
        if (c == '%' && isxdigit((unsigned char)p[1]) && isxdigit((unsigned char)p[2])) {
            char hex[3] = {p[1], p[2], '\0'};
            c = (char)strtol(hex, NULL, 16);
            if (c == '\0')
                c = ' ';
            p += 2;
        }
        if (n + 1 >= outlen)
            return -1;
        out[n++] = c;
    }
    out[n] = '\0';
    return 0;
}

/* state.postgresql: a libpq connection string that carries no password (a "password"
 * keyword, or a postgresql:// URI with user:password@ or ?password=, percent-encoded or
 * not), so that `config check -v` and the logs never show one: the password comes from
 * state.postgresql_password_file. state/ checks again with libpq's own parser. */
static int check_conninfo(const char *s, const char **why)
{
    const char *at, *colon;
    char dec[4096];
    if (strncmp(s, "postgresql://", 13) == 0 || strncmp(s, "postgres://", 11) == 0) {
        if (uri_decode(s, dec, sizeof dec) < 0)
            return fail(why, "too long");
        s = dec;
    }
    for (const char *p = s; *p; p++) {
        const char *q = p + 8;
        if (strncasecmp(p, "password", 8) != 0 || (p > s && !isspace((unsigned char)p[-1])))
            continue;
        while (isspace((unsigned char)*q))
            q++;
        if (*q == '=') /* the keyword (a URI's ?password= is caught below by its '=') */
            return fail(why, "must not contain a password: use state.postgresql_password_file");
    }
    if (strcasestr(s, "password=") || strcasestr(s, "&password") || strcasestr(s, "?password"))
        return fail(why, "must not contain a password: use state.postgresql_password_file");
    if (strncmp(s, "postgresql://", 13) == 0 || strncmp(s, "postgres://", 11) == 0) {
        const char *u = strstr(s, "//") + 2;
        at = strchr(u, '@');
        colon = strchr(u, ':');
        if (at && colon && colon < at)
            return fail(why, "must not contain a password (user:password@): use "
                             "state.postgresql_password_file");
    }
    return 0;
}

/* state.instance_name: letters, digits, '.', '-', '_' (it names claims and log lines). */
static int check_instance_name(const char *s, const char **why)
{
    for (const char *p = s; *p; p++) {
        if (!isalnum((unsigned char)*p) && *p != '.' && *p != '-' && *p != '_')
            return fail(why, "only letters, digits, '.', '-' and '_'");
    }
    return 0;
}

/* "" or an absolute path (map files are re-read on SIGHUP, from wherever
 * the process then runs). */
static int check_abs_path(const char *s, const char **why)
{
    return *s == '\0' || *s == '/' ? 0 : fail(why, "must be an absolute path");
}

/* ------------------------------------------------------------------ */
/* The schema                                                          */
/* ------------------------------------------------------------------ */

/* The shape a reader must deliver for a key. */
enum shape { SH_INT, SH_NUM_OR_STR, SH_STR, SH_BOOL, SH_LIST };

#define VAL_MAX_ITEMS MXG_CFG_MAX_NETS /* the largest list capacity */
_Static_assert(MXG_CFG_MAX_LISTEN <= VAL_MAX_ITEMS && MXG_CFG_MAX_DNS <= VAL_MAX_ITEMS,
               "struct val holds every list");

/* One value, as read from the file or the environment. */
struct val {
    int is_int;   /* SH_NUM_OR_STR: an integer was given (else s) */
    long long i;  /* SH_INT, SH_BOOL, or the integer of SH_NUM_OR_STR */
    const char *s; /* SH_STR, or the string of SH_NUM_OR_STR */
    int n;        /* SH_LIST: number of items */
    const char *items[VAL_MAX_ITEMS];
};

struct key;
/* Check v and store it into cfg; on error write a reason into why, return -1. */
typedef int (*apply_fn)(const struct key *k, const struct val *v, struct mxg_config *cfg,
                        char *why, size_t whylen);
/* Write the value of k in the file syntax (without "name = " and ";"). */
typedef void (*dump_fn)(const struct key *k, const struct mxg_config *cfg, FILE *out);
typedef int (*check_fn)(const char *s, const char **why);

struct key {
    const char *section;
    const char *name;
    enum shape shape;
    apply_fn apply;
    dump_fn dump;
    const char *def;          /* the default, in the environment syntax */
    size_t off;               /* the field in struct mxg_config */
    size_t off_n;             /* lists: the count field */
    size_t cap;               /* strings: buffer size; lists: capacity */
    long long min, max;       /* ints; durations (ms); sizes; lists: min entries */
    int port;                 /* endpoint lists: default port (0: required; -1: optional, 0 = any) */
    check_fn check;           /* strings: extra check */
    const char *const *names; /* enums: the words, index = value */
};

static void *field(struct mxg_config *cfg, const struct key *k)
{
    return (char *)cfg + k->off;
}

static const void *cfield(const struct mxg_config *cfg, const struct key *k)
{
    return (const char *)cfg + k->off;
}

static int apply_int(const struct key *k, const struct val *v, struct mxg_config *cfg, char *why,
                     size_t whylen)
{
    if (v->i < k->min || v->i > k->max)
        return say(why, whylen, "must be between %lld and %lld", k->min, k->max);
    *(int *)field(cfg, k) = (int)v->i;
    return 0;
}

static int apply_duration(const struct key *k, const struct val *v, struct mxg_config *cfg,
                          char *why, size_t whylen)
{
    uint64_t ms;
    const char *r;
    char lo[32], hi[32];
    if (v->is_int) {
        if (v->i < 0)
            return say(why, whylen, "must not be negative");
        if ((uint64_t)v->i > UINT64_MAX / MS_PER_S)
            return say(why, whylen, "number too large");
        ms = (uint64_t)v->i * MS_PER_S;
    } else if (parse_duration_why(v->s, &ms, &r) < 0) {
        return say(why, whylen, "\"%s\": %s", v->s, r);
    }
    if (ms < (uint64_t)k->min || ms > (uint64_t)k->max)
        return say(why, whylen, "must be between %s and %s",
                   fmt_duration((uint64_t)k->min, lo, sizeof lo),
                   fmt_duration((uint64_t)k->max, hi, sizeof hi));
    *(uint64_t *)field(cfg, k) = ms;
    return 0;
}

static int apply_size(const struct key *k, const struct val *v, struct mxg_config *cfg, char *why,
                      size_t whylen)
{
    uint64_t n;
    const char *r;
    if (v->is_int) {
        if (v->i < 0)
            return say(why, whylen, "must not be negative");
        n = (uint64_t)v->i;
    } else if (parse_size_why(v->s, &n, &r) < 0) {
        return say(why, whylen, "\"%s\": %s", v->s, r);
    }
    if (n < (uint64_t)k->min || n > (uint64_t)k->max)
        return say(why, whylen, "must be between %lld and %lld octets", k->min, k->max);
    *(uint64_t *)field(cfg, k) = n;
    return 0;
}

static int apply_bool(const struct key *k, const struct val *v, struct mxg_config *cfg, char *why,
                      size_t whylen)
{
    (void)why;
    (void)whylen;
    *(int *)field(cfg, k) = v->i != 0;
    return 0;
}

static int apply_string(const struct key *k, const struct val *v, struct mxg_config *cfg,
                        char *why, size_t whylen)
{
    const char *r;
    if (strlen(v->s) >= k->cap)
        return say(why, whylen, "too long (at most %zu characters)", k->cap - 1);
    if (k->check && k->check(v->s, &r) < 0) {
        if (k->check == check_conninfo) /* never echo what may hold a password */
            return say(why, whylen, "%s", r);
        return say(why, whylen, "\"%s\": %s", v->s, r);
    }
    strcpy(field(cfg, k), v->s);
    return 0;
}

static int enum_count(const struct key *k)
{
    int n = 0;
    while (k->names[n])
        n++;
    return n;
}

static int apply_enum(const struct key *k, const struct val *v, struct mxg_config *cfg, char *why,
                      size_t whylen)
{
    for (int i = 0; k->names[i]; i++) {
        if (strcmp(v->s, k->names[i]) == 0) {
            memcpy(field(cfg, k), &i, sizeof i);
            return 0;
        }
    }
    size_t used = (size_t)snprintf(why, whylen, "\"%s\": must be one of", v->s);
    for (int i = 0; k->names[i] && used < whylen; i++)
        used += (size_t)snprintf(why + used, whylen - used, "%s %s", i ? "," : "", k->names[i]);
    return -1;
}

static int check_list_count(const struct key *k, const struct val *v, char *why, size_t whylen)
{
    if (v->n < k->min)
        return say(why, whylen, "at least %lld entr%s required", k->min, k->min == 1 ? "y" : "ies");
    return 0;
}

static int endpoint_port(const struct mxg_endpoint *ep)
{
    if (ep->sa.ss_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)&ep->sa)->sin_port);
    return ntohs(((const struct sockaddr_in6 *)&ep->sa)->sin6_port);
}

static int apply_endpoints(const struct key *k, const struct val *v, struct mxg_config *cfg,
                           char *why, size_t whylen)
{
    struct mxg_endpoint eps[VAL_MAX_ITEMS];
    const char *r;
    if (check_list_count(k, v, why, whylen) < 0)
        return -1;
    for (int i = 0; i < v->n; i++) {
        if (parse_endpoint_why(v->items[i], k->port > 0 ? k->port : 0, &eps[i], &r) < 0)
            return say(why, whylen, "\"%s\": %s", v->items[i], r);
        if (k->port >= 0 && endpoint_port(&eps[i]) == 0) /* port -1: optional (0 = any) */
            return say(why, whylen, "\"%s\": a port is required (addr:port or [v6]:port)",
                       v->items[i]);
    }
    memcpy(field(cfg, k), eps, sizeof eps[0] * (size_t)v->n);
    *(int *)((char *)cfg + k->off_n) = v->n;
    return 0;
}

static int apply_cidrs(const struct key *k, const struct val *v, struct mxg_config *cfg,
                       char *why, size_t whylen)
{
    struct mxg_cidr nets[VAL_MAX_ITEMS];
    const char *r;
    if (check_list_count(k, v, why, whylen) < 0)
        return -1;
    for (int i = 0; i < v->n; i++) {
        if (parse_cidr_why(v->items[i], &nets[i], &r) < 0)
            return say(why, whylen, "\"%s\": %s", v->items[i], r);
    }
    memcpy(field(cfg, k), nets, sizeof nets[0] * (size_t)v->n);
    *(int *)((char *)cfg + k->off_n) = v->n;
    return 0;
}

static void dump_int(const struct key *k, const struct mxg_config *cfg, FILE *out)
{
    fprintf(out, "%d", *(const int *)cfield(cfg, k));
}

/* server.workers: "auto" (stored as 0) or a number from k->min to k->max. */
static int apply_workers(const struct key *k, const struct val *v, struct mxg_config *cfg,
                         char *why, size_t whylen)
{
    if (!v->is_int && strcmp(v->s, "auto") == 0) {
        *(int *)field(cfg, k) = 0;
        return 0;
    }
    long long n = v->i;
    char *end = NULL;
    if (!v->is_int) {
        n = strtoll(v->s, &end, 10);
        if (!*v->s || *end)
            return say(why, whylen, "\"%s\": must be \"auto\" or a number", v->s);
    }
    if (n < k->min || n > k->max)
        return say(why, whylen, "must be \"auto\" or between %lld and %lld", k->min, k->max);
    *(int *)field(cfg, k) = (int)n;
    return 0;
}

/* server.workers in the file syntax. */
static void dump_workers(const struct key *k, const struct mxg_config *cfg, FILE *out)
{
    int n = *(const int *)cfield(cfg, k);
    if (n == 0)
        fputs("\"auto\"", out);
    else
        fprintf(out, "%d", n);
}

/* The process-wide limits each worker gets an equal share of (app/run_workers.c). */
struct shared_limit {
    const char *name;
    int v;
};

/* Fills out[3] with cfg's process-wide limits; returns their count. */
static size_t shared_limits(const struct mxg_config *cfg, struct shared_limit out[3])
{
    out[0] = (struct shared_limit){"limits.destination_concurrency", cfg->dest_concurrency};
    out[1] = (struct shared_limit){"limits.destination_rate", cfg->dest_rate};
    out[2] = (struct shared_limit){"limits.upstream_connections", cfg->upstream_connections};
    return 3;
}

int mxg_config_workers_for(const struct mxg_config *cfg, long cpus, const char **limit)
{
    if (limit)
        *limit = NULL;
    if (cfg->workers > 0)
        return cfg->workers;
    long n = cpus - 1; /* one core for the kernel's network path and the MTA beside us */
    if (n > MXG_CFG_AUTO_WORKERS_MAX)
        n = MXG_CFG_AUTO_WORKERS_MAX;
    if (n < 1)
        n = 1;
    struct shared_limit lim[3];
    size_t nl = shared_limits(cfg, lim);
    for (size_t i = 0; i < nl; i++) {
        /* each worker keeps an equal share; of a destination's concurrency at least
         * MXG_CFG_AUTO_DEST_SHARE connections (SO_REUSEPORT spreads an MTA's few
         * connections unevenly, and a worker cannot borrow another's share) */
        long cap = i == 0 ? lim[i].v / MXG_CFG_AUTO_DEST_SHARE : lim[i].v;
        if (cap < 1)
            cap = 1;
        if (lim[i].v > 0 && cap < n) {
            n = cap;
            if (limit)
                *limit = lim[i].name;
        }
    }
    return (int)n;
}

/* The CPUs this process may run on, at least 1: the online ones, fewer under a CPU
 * affinity mask (taskset, a container's cpuset) or a cgroup v2 quota (docker
 * --cpus: cpu.max "QUOTA PERIOD", rounded up). */
static long online_cpus(void)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0 &&
        CPU_COUNT(&set) < cpus)
        cpus = CPU_COUNT(&set);
    FILE *f = fopen("/sys/fs/cgroup/cpu.max", "r");
    if (f) {
        long long quota = 0, period = 0;
        if (fscanf(f, "%lld %lld", &quota, &period) == 2 && quota > 0 && period > 0 &&
            (quota + period - 1) / period < cpus)
            cpus = (long)((quota + period - 1) / period);
        fclose(f); /* "max PERIOD": no quota (fscanf stops at "max") */
    }
    return cpus < 1 ? 1 : cpus;
}

int mxg_config_workers(const struct mxg_config *cfg)
{
    return mxg_config_workers_for(cfg, online_cpus(), NULL);
}

int mxg_config_workers_explain(const struct mxg_config *cfg, char *buf, size_t len)
{
    const char *limit = NULL;
    long cpus = online_cpus();
    int n = mxg_config_workers_for(cfg, cpus, &limit);
    if (cfg->workers > 0)
        snprintf(buf, len, "%d worker%s (configured)", n, n == 1 ? "" : "s");
    else if (limit)
        snprintf(buf, len, "\"auto\": %d worker%s, lowered for %s (each worker gets an "
                 "equal share of it; %ld usable CPUs)", n, n == 1 ? "" : "s", limit, cpus);
    else
        snprintf(buf, len, "\"auto\": %d worker%s (%ld usable CPU%s less one, at most %d)", n,
                 n == 1 ? "" : "s", cpus, cpus == 1 ? "" : "s", MXG_CFG_AUTO_WORKERS_MAX);
    return limit != NULL;
}

static void dump_u64(const struct key *k, const struct mxg_config *cfg, FILE *out)
{
    uint64_t v = *(const uint64_t *)cfield(cfg, k);
    if (v <= INT_MAX)
        fprintf(out, "%llu", (unsigned long long)v);
    else
        fprintf(out, "%lluL", (unsigned long long)v);
}

static void dump_duration(const struct key *k, const struct mxg_config *cfg, FILE *out)
{
    char buf[32];
    fprintf(out, "\"%s\"", fmt_duration(*(const uint64_t *)cfield(cfg, k), buf, sizeof buf));
}

static void dump_bool(const struct key *k, const struct mxg_config *cfg, FILE *out)
{
    fputs(*(const int *)cfield(cfg, k) ? "true" : "false", out);
}

/* A libconfig string literal. */
static void put_quoted(const char *s, FILE *out)
{
    fputc('"', out);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(out, "\\%c", c);
        else if (c < 0x20 || c == 0x7f)
            fprintf(out, "\\x%02x", c);
        else
            fputc(c, out);
    }
    fputc('"', out);
}

static void dump_string(const struct key *k, const struct mxg_config *cfg, FILE *out)
{
    put_quoted(cfield(cfg, k), out);
}

static void dump_enum(const struct key *k, const struct mxg_config *cfg, FILE *out)
{
    int i;
    memcpy(&i, cfield(cfg, k), sizeof i);
    put_quoted(i >= 0 && i < enum_count(k) ? k->names[i] : "?", out);
}

static void dump_endpoints(const struct key *k, const struct mxg_config *cfg, FILE *out)
{
    const struct mxg_endpoint *eps = cfield(cfg, k);
    int n = *(const int *)((const char *)cfg + k->off_n);
    fputc('[', out);
    for (int i = 0; i < n; i++) {
        fputs(i ? ", " : " ", out);
        put_quoted(eps[i].text, out);
    }
    fputs(" ]", out);
}

static void dump_cidrs(const struct key *k, const struct mxg_config *cfg, FILE *out)
{
    const struct mxg_cidr *nets = cfield(cfg, k);
    int n = *(const int *)((const char *)cfg + k->off_n);
    fputc('[', out);
    for (int i = 0; i < n; i++) {
        fputs(i ? ", " : " ", out);
        put_quoted(nets[i].text, out);
    }
    fputs(" ]", out);
}

static const char *const af_names[] = {"any", "prefer-ipv4", "prefer-ipv6", "ipv4-only",
                                       "ipv6-only", NULL};
static const char *const dns_mode_names[] = {"stub", "recursive", "auto", NULL};
static const char *const dns_transport_names[] = {"tcp", "udp", NULL};
static const char *const tls_level_names[] = {"may", "encrypt", NULL};
static const char *const multi_domain_names[] = {"legs", "defer", NULL};
static const char *const bare_cr_names[] = {"reject", "space", NULL};
static const char *const inbound_tls_min_names[] = {"TLSv1.2", "TLSv1.3", NULL};
static const char *const log_level_names[] = {"debug", "info", "notice", "warning", "error", NULL};
static const char *const log_format_names[] = {"text", "json", NULL};
static const char *const state_backend_names[] = {"sqlite", "postgresql", NULL};

#define F(name) offsetof(struct mxg_config, name)
#define CAP(name) sizeof(((struct mxg_config *)0)->name)
#define INT(sec, key, fld, dflt, lo, hi) \
    {sec, key, SH_INT, apply_int, dump_int, dflt, F(fld), 0, 0, lo, hi, 0, NULL, NULL}
#define DURATION(sec, key, fld, dflt, lo, hi) \
    {sec, key, SH_NUM_OR_STR, apply_duration, dump_duration, dflt, F(fld), 0, 0, lo, hi, 0, \
     NULL, NULL}
#define SIZE(sec, key, fld, dflt, lo, hi) \
    {sec, key, SH_NUM_OR_STR, apply_size, dump_u64, dflt, F(fld), 0, 0, lo, hi, 0, NULL, NULL}
#define BOOL(sec, key, fld, dflt) \
    {sec, key, SH_BOOL, apply_bool, dump_bool, dflt, F(fld), 0, 0, 0, 1, 0, NULL, NULL}
#define STRING(sec, key, fld, dflt, chk) \
    {sec, key, SH_STR, apply_string, dump_string, dflt, F(fld), 0, CAP(fld), 0, 0, 0, chk, NULL}
#define ENUM(sec, key, fld, dflt, words) \
    {sec, key, SH_STR, apply_enum, dump_enum, dflt, F(fld), 0, 0, 0, 0, 0, NULL, words}
#define ENDPOINTS(sec, key, fld, nfld, dflt, min_n, dport) \
    {sec, key, SH_LIST, apply_endpoints, dump_endpoints, dflt, F(fld), F(nfld), \
     CAP(fld) / sizeof(struct mxg_endpoint), min_n, 0, dport, NULL, NULL}
#define CIDRS(sec, key, fld, nfld, dflt, min_n) \
    {sec, key, SH_LIST, apply_cidrs, dump_cidrs, dflt, F(fld), F(nfld), \
     CAP(fld) / sizeof(struct mxg_cidr), min_n, 0, 0, NULL, NULL}

#define T_MIN 1LL
#define T_MAX ((long long)MS_PER_DAY)

/* The schema: every setting, in dump order (grouped by section). */
static const struct key keys[] = {
    ENDPOINTS("server", "listen", listen, n_listen, "127.0.0.1:10025", 1, 0),
    CIDRS("server", "allow_networks", allow, n_allow, "127.0.0.0/8,::1/128", 1),
    STRING("server", "hostname", hostname, "", check_dns_name),
    INT("server", "max_sessions", max_sessions, "1000", 1, 1000000),
    DURATION("server", "drain_timeout", drain_timeout_ms, "30s", 0, T_MAX),
    {"server", "workers", SH_NUM_OR_STR, apply_workers, dump_workers, "auto", F(workers), 0, 0, 1,
     MXG_CFG_WORKERS_MAX, 0, NULL, NULL},
    ENDPOINTS("server", "queue_listen", queue_listen, n_queue_listen, "", 0, 0),
    ENUM("server", "multi_domain", multi_domain, "legs", multi_domain_names),
    STRING("server", "user", user, "", check_account_name),
    STRING("server", "group", group, "", check_account_name),
    STRING("server", "tls_cert_file", in_tls_cert_file, "", NULL),
    STRING("server", "tls_key_file", in_tls_key_file, "", NULL),
    ENUM("server", "tls_min_version", in_tls_min_version, "TLSv1.2", inbound_tls_min_names),
    STRING("server", "tls_ciphers", in_tls_ciphers, "", NULL),
    CIDRS("server", "require_tls_networks", require_tls, n_require_tls, "", 0),
    CIDRS("server", "require_auth_networks", require_auth, n_require_auth, "", 0),

    STRING("auth", "password_file", auth_password_file, "", NULL),
    BOOL("auth", "allow_plaintext_loopback", auth_plaintext_loopback, "false"),
    INT("auth", "max_failures", auth_max_failures, "5", 1, 1000),
    INT("auth", "max_user_failures", auth_max_user_failures, "10", 0, 1000),
    DURATION("auth", "failure_window", auth_window_ms, "10m", 1000, T_MAX),
    DURATION("auth", "lockout", auth_lockout_ms, "15m", T_MIN, T_MAX),
    DURATION("auth", "failure_delay", auth_delay_ms, "1s", 0, 60 * 1000),
    INT("auth", "throttle_entries", auth_throttle_entries, "10000", 16, 10000000),
    DURATION("auth", "trusted_address_lifetime", auth_trusted_lifetime_ms, "30d", 0, 3660 * T_MAX),
    INT("auth", "trusted_addresses", auth_trusted_entries, "10000", 16, 10000000),

    SIZE("limits", "message_size", message_size, "50M", 1, 1LL << 40),
    INT("limits", "recipients", max_recipients, "1000", 1, 1000000),
    INT("limits", "data_line_length", data_line_max, "1000", 1000, 1048576),
    INT("limits", "max_received", max_received, "50", 1, 1000),
    INT("limits", "max_errors", max_errors, "20", 1, 1000000),
    INT("limits", "legs", max_legs, "16", 1, 64),
    ENUM("limits", "bare_cr", bare_cr, "reject", bare_cr_names),
    INT("limits", "data_min_rate", data_min_rate, "500", 0, 1000000000),
    DURATION("limits", "data_rate_grace", data_rate_grace_ms, "60s", 0, T_MAX),
    INT("limits", "destination_concurrency", dest_concurrency, "20", 0, 100000),
    INT("limits", "destination_rate", dest_rate, "0", 0, 100000),
    INT("limits", "upstream_connections", upstream_connections, "1000", 0, 1000000),
    DURATION("limits", "connection_wait", connection_wait_ms, "30s", 0, T_MAX),

    DURATION("timeouts", "idle", t_idle, "300s", T_MIN, T_MAX),
    DURATION("timeouts", "data", t_data, "300s", T_MIN, T_MAX),
    DURATION("timeouts", "data_total", t_data_total, "600s", T_MIN, T_MAX),
    DURATION("timeouts", "rcpt_total", t_rcpt_total, "120s", T_MIN, T_MAX),
    DURATION("timeouts", "final_reply", t_final, "540s", T_MIN, T_MAX),
    DURATION("timeouts", "connect", t_connect, "30s", T_MIN, T_MAX),
    DURATION("timeouts", "upstream_command", t_upstream_cmd, "300s", T_MIN, T_MAX),
    DURATION("timeouts", "quit", t_quit, "5s", T_MIN, T_MAX),
    DURATION("timeouts", "dns", t_dns, "10s", T_MIN, T_MAX),

    STRING("upstream", "helo_name", helo_name, "", check_dns_name),
    INT("upstream", "port", upstream_port, "25", 1, 65535),
    STRING("upstream", "source_ipv4", source_ipv4, "", check_ipv4),
    STRING("upstream", "source_ipv6", source_ipv6, "", check_ipv6),
    ENUM("upstream", "address_family", af_pref, "any", af_names),
    INT("upstream", "max_mx_hosts", max_mx_hosts, "10", 1, 32),
    STRING("upstream", "route_map", route_map, "", check_abs_path),
    DURATION("upstream", "cache_idle", cache_idle_ms, "5s", 0, T_MAX),
    INT("upstream", "cache_size", cache_size, "1000", 0, 1000000),
    INT("upstream", "cache_per_destination", cache_per_dest, "20", 0, 100000),
    INT("upstream", "cache_max_uses", cache_max_uses, "100", 0, 1000000),
    DURATION("upstream", "cache_lifetime", cache_lifetime_ms, "300s", 0, T_MAX),
    DURATION("upstream", "cache_busy_wait", cache_busy_wait_ms, "150ms", 0, T_MAX),
    INT("upstream", "cache_busy_waiters", cache_busy_waiters, "1", 0, 100000),
    INT("upstream", "tls_session_cache", tls_session_cache, "1000", 0, 1000000),
    ENDPOINTS("upstream", "self_addresses", self_addrs, n_self_addrs, "", 0, -1),
    BOOL("upstream", "refuse_private_addresses", refuse_private, "false"),

    ENUM("dns", "mode", dns_mode, "auto", dns_mode_names),
    STRING("dns", "root_hints", dns_root_hints, "", check_abs_path),
    DURATION("dns", "auto_recheck", dns_auto_recheck_ms, "5m", 1, T_MAX),
    ENUM("dns", "transport", dns_transport, "tcp", dns_transport_names),
    ENDPOINTS("dns", "servers", dns_servers, n_dns_servers, "", 0, 53),
    STRING("dns", "trust_anchor_file", trust_anchor_file, "/usr/share/dns/root.key",
           check_nonempty),
    INT("dns", "cache_size", dns_cache_size, "10000", 0, 10000000),
    DURATION("dns", "cache_max_ttl", dns_cache_max_ttl_ms, "1d", 0, 7 * T_MAX),
    DURATION("dns", "negative_ttl", dns_negative_ttl_ms, "5m", 0, T_MAX),

    BOOL("dane", "enabled", dane_enabled, "true"),
    DURATION("dane", "selfcheck_retry", dane_recheck_ms, "1m", 1, T_MAX),

    ENUM("tls", "opportunistic_level", tls_level, "may", tls_level_names),
    STRING("tls", "ca_file", tls_ca_file, "", NULL),
    STRING("tls", "policy_map", tls_policy_map, "", check_abs_path),
    STRING("tls", "min_version", tls_min_version, "TLSv1.2", check_tls_min),
    STRING("tls", "max_version", tls_max_version, "", check_tls_max),
    STRING("tls", "ciphers", tls_ciphers, "", NULL),
    STRING("tls", "ciphersuites", tls_ciphersuites, "", NULL),
    STRING("tls", "client_cert_file", tls_client_cert, "", NULL),
    STRING("tls", "client_key_file", tls_client_key, "", NULL),

    STRING("state", "directory", state_dir, "/var/lib/mxguard", check_nonempty),
    ENUM("state", "backend", state_backend, "sqlite", state_backend_names),
    STRING("state", "postgresql", state_pg, "", check_conninfo),
    STRING("state", "postgresql_password_file", state_pg_password_file, "", check_abs_path),
    DURATION("state", "sync_interval", state_sync_ms, "5s", 100, T_MAX),
    BOOL("state", "migrate_at_startup", state_migrate, "true"),
    STRING("state", "instance_name", state_instance, "", check_instance_name),
    DURATION("state", "report_lease", state_report_lease_ms, "10m", 1000, T_MAX),
    DURATION("state", "first_pull_timeout", state_first_pull_ms, "10s", 0, T_MAX),
    DURATION("state", "retention", state_retention_ms, "30d", T_MIN, 3650 * T_MAX),
    DURATION("state", "outbox_max_age", state_outbox_max_age_ms, "7d", T_MIN, 3650 * T_MAX),
    DURATION("state", "prune_interval", state_prune_ms, "1h", 100, T_MAX),

    STRING("policy_list", "file", list_file, "", NULL),
    STRING("policy_list", "url", list_url, "", check_https_url),
    STRING("policy_list", "keyring", list_keyring, "", NULL),
    DURATION("policy_list", "refresh", list_refresh_ms, "24h", T_MIN, 7 * T_MAX),
    DURATION("policy_list", "stale_warning", list_stale_ms, "48h", T_MIN, 30 * T_MAX),
    DURATION("policy_list", "expired_warning_interval", list_expired_warn_ms, "1h", T_MIN, T_MAX),

    BOOL("tlsrpt", "enabled", rpt_enabled, "true"),
    STRING("tlsrpt", "organization_name", rpt_org, "", NULL),
    STRING("tlsrpt", "contact_info", rpt_contact, "", NULL),
    STRING("tlsrpt", "submitter", rpt_submitter, "", check_dns_name),
    DURATION("tlsrpt", "flush_interval", rpt_flush_ms, "1s", T_MIN, T_MAX),
    BOOL("tlsrpt", "send_reports", rpt_send, "true"),
    DURATION("tlsrpt", "send_check_interval", rpt_check_ms, "10m", T_MIN, T_MAX),
    DURATION("tlsrpt", "send_max_random_delay", rpt_delay_ms, "4h", 0, T_MAX),
    DURATION("tlsrpt", "retry_backoff", rpt_backoff_ms, "10m", 1000, T_MAX),
    INT("tlsrpt", "max_attempts", rpt_max_attempts, "8", 1, 100),
    STRING("tlsrpt", "dkim_key_file", rpt_dkim_key, "", NULL),
    STRING("tlsrpt", "dkim_selector", rpt_dkim_selector, "", check_dns_name),
    STRING("tlsrpt", "dkim_domain", rpt_dkim_domain, "", check_dns_name),
    STRING("tlsrpt", "report_from", rpt_from, "", check_mailbox),

    BOOL("mta_sts", "enabled", sts_enabled, "true"),
    DURATION("mta_sts", "connect_timeout", sts_connect_timeout_ms, "10s", T_MIN, T_MAX),
    DURATION("mta_sts", "fetch_timeout", sts_fetch_timeout_ms, "60s", T_MIN, T_MAX),
    SIZE("mta_sts", "max_policy_size", sts_max_body, "64k", 1024, 1 << 20),
    INT("mta_sts", "https_port", sts_https_port, "443", 1, 65535),
    DURATION("mta_sts", "refresh_min_interval", sts_refresh_min_ms, "5m", 0, T_MAX),
    DURATION("mta_sts", "refresh_check_interval", sts_sweep_ms, "10m", T_MIN, T_MAX),

    DURATION("queue", "lifetime", q_lifetime_ms, "5d", T_MIN, 60 * T_MAX),
    DURATION("queue", "retry_backoff", q_backoff_ms, "5m", T_MIN, T_MAX),
    DURATION("queue", "retry_backoff_max", q_backoff_max_ms, "4h", T_MIN, T_MAX),
    DURATION("queue", "scan_interval", q_scan_ms, "30s", T_MIN, T_MAX),
    INT("queue", "max_parallel", q_max_parallel, "20", 1, 10000),
    STRING("queue", "bounce_route", q_bounce_route, "", check_nexthop),

    ENUM("log", "level", log_level, "info", log_level_names),
    ENUM("log", "format", log_format, "text", log_format_names),
    BOOL("log", "syslog", log_syslog, "false"),

    STRING("metrics", "listen", metrics_listen, "", check_listen_endpoint),
    CIDRS("metrics", "allow_networks", metrics_allow, n_metrics_allow, "127.0.0.0/8,::1/128", 1),
    STRING("metrics", "status_credentials_file", metrics_status_creds, "", NULL),
    DURATION("metrics", "status_refresh", metrics_status_refresh_ms, "5s", 0, 3600 * 1000),
};

#define N_KEYS (sizeof keys / sizeof keys[0])

static int section_known(const char *name)
{
    for (size_t i = 0; i < N_KEYS; i++)
        if (strcmp(keys[i].section, name) == 0)
            return 1;
    return 0;
}

static const struct key *find_key(const char *section, const char *name)
{
    for (size_t i = 0; i < N_KEYS; i++)
        if (strcmp(keys[i].section, section) == 0 && strcmp(keys[i].name, name) == 0)
            return &keys[i];
    return NULL;
}

/* ------------------------------------------------------------------ */
/* Reading strings (environment and defaults)                          */
/* ------------------------------------------------------------------ */

static int parse_env_int(const char *s, long long *out)
{
    char *end;
    if (!is_digit(*s) && !(*s == '-' && is_digit(s[1])))
        return -1;
    errno = 0;
    *out = strtoll(s, &end, 10);
    return errno || *end ? -1 : 0;
}

static int parse_env_bool(const char *s, long long *out)
{
    static const char *const yes[] = {"true", "yes", "1"}, *const no[] = {"false", "no", "0"};
    for (int i = 0; i < 3; i++) {
        if (strcasecmp(s, yes[i]) == 0 || strcasecmp(s, no[i]) == 0) {
            *out = strcasecmp(s, yes[i]) == 0;
            return 0;
        }
    }
    return -1;
}

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        s[--n] = '\0';
    return s;
}

/* Split a comma-separated list in buf (modified) into v->items. */
static int split_list(const struct key *k, char *buf, struct val *v, char *why, size_t whylen)
{
    if (*trim(buf) == '\0')
        return 0;
    for (char *item = buf;;) {
        char *comma = strchr(item, ',');
        if (comma)
            *comma = '\0';
        if (v->n >= (int)k->cap)
            return say(why, whylen, "too many entries (at most %zu)", k->cap);
        v->items[v->n] = trim(item);
        if (*v->items[v->n++] == '\0')
            return say(why, whylen, "empty list entry");
        if (!comma)
            return 0;
        item = comma + 1;
    }
}

/* Turn the text s into v for key k; buf (ENV_VALUE_MAX) holds list items. */
static int read_string_value(const struct key *k, const char *s, struct val *v, char *buf,
                             char *why, size_t whylen)
{
    memset(v, 0, sizeof *v);
    switch (k->shape) {
    case SH_INT:
        return parse_env_int(s, &v->i) < 0 ? say(why, whylen, "\"%s\": expected an integer", s) : 0;
    case SH_BOOL:
        return parse_env_bool(s, &v->i) < 0
                   ? say(why, whylen, "\"%s\": expected true, false, yes, no, 1 or 0", s)
                   : 0;
    case SH_NUM_OR_STR:
    case SH_STR:
        v->s = s;
        return 0;
    case SH_LIST:
        if (strlen(s) >= ENV_VALUE_MAX)
            return say(why, whylen, "value too long");
        strcpy(buf, s);
        return split_list(k, buf, v, why, whylen);
    }
    return say(why, whylen, "internal error: bad shape");
}

static int apply_text(const struct key *k, const char *s, struct mxg_config *cfg, char *why,
                      size_t whylen)
{
    struct val v;
    char buf[ENV_VALUE_MAX];
    if (read_string_value(k, s, &v, buf, why, whylen) < 0)
        return -1;
    return k->apply(k, &v, cfg, why, whylen);
}

/* Fill cfg with the defaults from the schema (which cannot fail: tested). */
void mxg_config_defaults(struct mxg_config *cfg)
{
    char why[WHY_MAX];
    memset(cfg, 0, sizeof *cfg);
    for (size_t i = 0; i < N_KEYS; i++) {
        if (apply_text(&keys[i], keys[i].def, cfg, why, sizeof why) < 0)
            abort(); /* a broken default in keys[] */
    }
}

/* ------------------------------------------------------------------ */
/* The environment                                                     */
/* ------------------------------------------------------------------ */

/* "MXGUARD_<SECTION>_<KEY>", upper case, '-' -> '_'. */
static void env_name(const struct key *k, char *buf, size_t len)
{
    snprintf(buf, len, "MXGUARD_%s_%s", k->section, k->name);
    for (char *p = buf; *p; p++) {
        if (*p >= 'a' && *p <= 'z')
            *p = (char)(*p - 'a' + 'A');
        else if (*p == '-')
            *p = '_';
    }
}

/* MXGUARD_* variables that are not settings. */
static const char *const env_ignored[] = {"MXGUARD_CONFIG", NULL};

static int env_is_ignored(const char *name)
{
    for (int i = 0; env_ignored[i]; i++)
        if (strcmp(name, env_ignored[i]) == 0)
            return 1;
    return 0;
}

static const struct key *find_env_key(const char *name)
{
    char buf[128];
    for (size_t i = 0; i < N_KEYS; i++) {
        env_name(&keys[i], buf, sizeof buf);
        if (strcmp(buf, name) == 0)
            return &keys[i];
    }
    return NULL;
}

static int apply_env_entry(struct mxg_config *cfg, const char *entry, char *err, size_t errlen)
{
    char name[128], why[WHY_MAX];
    const char *eq = strchr(entry, '=');
    size_t len = eq ? (size_t)(eq - entry) : strlen(entry);
    snprintf(name, sizeof name, "%.*s", (int)(len < sizeof name ? len : sizeof name - 1), entry);
    if (env_is_ignored(name))
        return 0;
    const struct key *k = len < sizeof name ? find_env_key(name) : NULL;
    if (!k)
        return say(err, errlen, "environment: %s: unknown setting", name);
    if (!eq)
        return say(err, errlen, "environment: %s: no value", name);
    if (apply_text(k, eq + 1, cfg, why, sizeof why) < 0)
        return say(err, errlen, "environment: %s: %s", name, why);
    return 0;
}

static int load_env(struct mxg_config *cfg, char *const *envp, char *err, size_t errlen)
{
    for (; envp && *envp; envp++) {
        if (strncmp(*envp, "MXGUARD_", 8) != 0)
            continue;
        if (apply_env_entry(cfg, *envp, err, errlen) < 0)
            return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* The file                                                            */
/* ------------------------------------------------------------------ */

static int is_int_type(int t)
{
    return t == CONFIG_TYPE_INT || t == CONFIG_TYPE_INT64;
}

static int read_list(const struct key *k, const config_setting_t *s, struct val *v,
                     unsigned *line, char *why, size_t whylen)
{
    int t = config_setting_type(s);
    if (t != CONFIG_TYPE_ARRAY && t != CONFIG_TYPE_LIST)
        return say(why, whylen, "expected a list of strings, e.g. [\"a\", \"b\"]");
    int n = config_setting_length(s);
    if (n > (int)k->cap)
        return say(why, whylen, "too many entries (at most %zu)", k->cap);
    for (int i = 0; i < n; i++) {
        const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
        if (config_setting_type(e) != CONFIG_TYPE_STRING) {
            *line = config_setting_source_line(e);
            return say(why, whylen, "list entry %d is not a string", i + 1);
        }
        v->items[v->n++] = config_setting_get_string(e);
    }
    return 0;
}

/* Turn the libconfig setting s into v for key k (type checks only);
 * *line may be moved to a list element's line on error. */
static int read_setting(const struct key *k, const config_setting_t *s, struct val *v,
                        unsigned *line, char *why, size_t whylen)
{
    int t = config_setting_type(s);
    memset(v, 0, sizeof *v);
    switch (k->shape) {
    case SH_INT:
        if (!is_int_type(t))
            return say(why, whylen, "expected an integer");
        v->i = config_setting_get_int64(s);
        return 0;
    case SH_NUM_OR_STR:
        v->is_int = is_int_type(t);
        if (v->is_int)
            v->i = config_setting_get_int64(s);
        else if (t == CONFIG_TYPE_STRING)
            v->s = config_setting_get_string(s);
        else
            return say(why, whylen, "expected an integer or a string");
        return 0;
    case SH_STR:
        if (t != CONFIG_TYPE_STRING)
            return say(why, whylen, "expected a string (in double quotes)");
        v->s = config_setting_get_string(s);
        return 0;
    case SH_BOOL:
        if (t != CONFIG_TYPE_BOOL)
            return say(why, whylen, "expected true or false");
        v->i = config_setting_get_bool(s);
        return 0;
    case SH_LIST:
        return read_list(k, s, v, line, why, whylen);
    }
    return say(why, whylen, "internal error: bad shape");
}

static const char *setting_file(const config_setting_t *s, const char *path)
{
    const char *f = config_setting_source_file(s);
    return f ? f : path;
}

static int apply_setting(struct mxg_config *cfg, const char *path, const char *section,
                         const config_setting_t *s, char *err, size_t errlen)
{
    char why[WHY_MAX];
    struct val v;
    const char *name = config_setting_name(s);
    unsigned line = config_setting_source_line(s);
    const struct key *k = find_key(section, name);
    if (!k)
        snprintf(why, sizeof why, "unknown setting");
    else if (read_setting(k, s, &v, &line, why, sizeof why) == 0 &&
             k->apply(k, &v, cfg, why, sizeof why) == 0)
        return 0;
    return say(err, errlen, "%s:%u: %s.%s: %s", setting_file(s, path), line, section, name, why);
}

static int apply_section(struct mxg_config *cfg, const char *path, const config_setting_t *sec,
                         char *err, size_t errlen)
{
    const char *name = config_setting_name(sec);
    const char *file = setting_file(sec, path);
    unsigned line = config_setting_source_line(sec);
    if (!section_known(name))
        return say(err, errlen, "%s:%u: %s: unknown section", file, line, name);
    if (!config_setting_is_group(sec))
        return say(err, errlen, "%s:%u: %s: expected a group: %s: { ... };", file, line, name,
                   name);
    for (int i = 0; i < config_setting_length(sec); i++) {
        const config_setting_t *s = config_setting_get_elem(sec, (unsigned)i);
        if (apply_setting(cfg, path, name, s, err, errlen) < 0)
            return -1;
    }
    return 0;
}

/* ---- the scan for integers libconfig 1.5 would wrap ---- */

static int is_word_char(char c)
{
    return is_alnum(c) || c == '_' || c == '-' || c == '+' || c == '.' || c == '*';
}

static int hex_value(char c)
{
    if (is_digit(c))
        return c - '0';
    c = (char)(c | 0x20);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* 1 if the word w (len n) is a plain (no L suffix) integer literal whose
 * value does not fit in 32 bits; floats, identifiers and 64-bit literals
 * give 0. */
static int int_literal_wraps(const char *w, size_t n)
{
    size_t i = (w[0] == '-' || w[0] == '+') ? 1 : 0;
    int hex = n > i + 2 && w[i] == '0' && (w[i + 1] == 'x' || w[i + 1] == 'X');
    uint64_t v = 0, limit = w[0] == '-' ? 2147483648ULL : 2147483647ULL;
    if (i == n)
        return 0;
    if (hex)
        i += 2;
    for (size_t j = i; j < n; j++)
        if (hex ? hex_value(w[j]) < 0 : !is_digit(w[j]))
            return 0; /* a float, a 64-bit literal or not a number */
    for (; i < n; i++) {
        v = v * (hex ? 16 : 10) + (uint64_t)hex_value(w[i]);
        if (v > limit)
            return 1;
    }
    return 0;
}

static const char *skip_quoted(const char *p, unsigned *line)
{
    for (p++; *p && *p != '"'; p++) {
        if (*p == '\\' && p[1])
            p++;
        if (*p == '\n')
            (*line)++;
    }
    return *p ? p + 1 : p;
}

static const char *skip_block_comment(const char *p, unsigned *line)
{
    for (p += 2; *p && !(p[0] == '*' && p[1] == '/'); p++)
        if (*p == '\n')
            (*line)++;
    return *p ? p + 2 : p;
}

static int scan_text(const char *text, const char *file, char *err, size_t errlen)
{
    unsigned line = 1;
    for (const char *p = text; *p;) {
        if (*p == '\n') {
            line++;
            p++;
        } else if (*p == '"') {
            p = skip_quoted(p, &line);
        } else if (*p == '#' || (p[0] == '/' && p[1] == '/')) {
            p += strcspn(p, "\n");
        } else if (p[0] == '/' && p[1] == '*') {
            p = skip_block_comment(p, &line);
        } else if (is_word_char(*p)) {
            size_t n = 1;
            while (is_word_char(p[n]))
                n++;
            if (int_literal_wraps(p, n))
                return say(err, errlen,
                           "%s:%u: integer %.*s does not fit in 32 bits (append L, or use a "
                           "string such as \"100G\")",
                           file, line, (int)n, p);
            p += n;
        } else {
            p++;
        }
    }
    return 0;
}

static int scan_file(const char *file, char *err, size_t errlen)
{
    FILE *f = fopen(file, "r");
    char *text = NULL;
    size_t len = 0;
    if (!f)
        return say(err, errlen, "%s: cannot open: %s", file, strerror(errno));
    ssize_t n = getdelim(&text, &len, '\0', f);
    fclose(f);
    int rc = n < 0 ? 0 : scan_text(text, file, err, errlen);
    free(text);
    return rc;
}

/* Reject integer literals libconfig 1.5 silently wraps, in every file read. */
static int scan_int_literals(const config_t *lc, char *err, size_t errlen)
{
    for (unsigned i = 0; i < lc->num_filenames; i++)
        if (scan_file(lc->filenames[i], err, errlen) < 0)
            return -1;
    return 0;
}

static int check_readable(const char *path, char *err, size_t errlen)
{
    struct stat st;
    FILE *f = fopen(path, "r");
    if (!f)
        return say(err, errlen, "%s: cannot open: %s", path, strerror(errno));
    int isdir = fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode);
    fclose(f);
    if (isdir)
        return say(err, errlen, "%s: cannot open: %s", path, strerror(EISDIR));
    return 0;
}

static int syntax_error(const config_t *lc, const char *path, char *err, size_t errlen)
{
    const char *file = config_error_file(lc) ? config_error_file(lc) : path;
    const char *text = config_error_text(lc) ? config_error_text(lc) : "unknown error";
    if (config_error_type(lc) == CONFIG_ERR_FILE_IO)
        return say(err, errlen, "%s: cannot open: %s", file, text);
    return say(err, errlen, "%s:%d: syntax error: %s", file, config_error_line(lc), text);
}

static int load_file(struct mxg_config *cfg, const char *path, char *err, size_t errlen)
{
    config_t lc;
    int rc = 0;
    if (check_readable(path, err, errlen) < 0)
        return -1;
    config_init(&lc);
    if (!config_read_file(&lc, path))
        rc = syntax_error(&lc, path, err, errlen);
    else if (scan_int_literals(&lc, err, errlen) < 0)
        rc = -1;
    const config_setting_t *root = config_root_setting(&lc);
    for (int i = 0; rc == 0 && i < config_setting_length(root); i++)
        rc = apply_section(cfg, path, config_setting_get_elem(root, (unsigned)i), err, errlen);
    config_destroy(&lc);
    return rc;
}

/* ------------------------------------------------------------------ */
/* Load, validate, dump                                                */
/* ------------------------------------------------------------------ */

/* 1 if every address of net is a loopback address (127.0.0.0/8, ::1). */
static int cidr_is_loopback(const struct mxg_cidr *net)
{
    static const uint8_t v6_loop[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    if (net->family == AF_INET)
        return net->prefix >= 8 && net->addr[0] == 127;
    return net->prefix == 128 && memcmp(net->addr, v6_loop, 16) == 0;
}

/* Inbound STARTTLS / AUTH / per-network requirements fit together. */
static int validate_inbound(const struct mxg_config *cfg, const char *src, char *err,
                            size_t errlen)
{
    int tls = cfg->in_tls_cert_file[0] != '\0';
    if (tls != (cfg->in_tls_key_file[0] != '\0'))
        return say(err, errlen, "%s: server.%s: required with server.%s", src,
                   tls ? "tls_key_file" : "tls_cert_file", tls ? "tls_cert_file" : "tls_key_file");
    if (cfg->n_require_tls > 0 && !tls)
        return say(err, errlen,
                   "%s: server.require_tls_networks: needs server.tls_cert_file and "
                   "server.tls_key_file (clients there must use STARTTLS)", src);
    if (cfg->n_require_auth > 0 && !cfg->auth_password_file[0])
        return say(err, errlen,
                   "%s: server.require_auth_networks: needs auth.password_file", src);
    if (cfg->metrics_status_creds[0] && !cfg->metrics_listen[0])
        return say(err, errlen,
                   "%s: metrics.status_credentials_file: needs metrics.listen (the status page "
                   "is served there)", src);
    if (cfg->auth_password_file[0] && !tls && !cfg->auth_plaintext_loopback)
        return say(err, errlen,
                   "%s: auth.password_file: AUTH is only offered over TLS: set "
                   "server.tls_cert_file and server.tls_key_file (or, for clients on "
                   "loopback only, auth.allow_plaintext_loopback = true)", src);
    for (int i = 0; !tls && i < cfg->n_require_auth; i++)
        if (!cidr_is_loopback(&cfg->require_auth[i]))
            return say(err, errlen,
                       "%s: server.require_auth_networks: %s is not loopback, and without "
                       "server.tls_cert_file its clients could never authenticate", src,
                       cfg->require_auth[i].text);
    return 0;
}

static int validate(const struct mxg_config *cfg, char *err, size_t errlen)
{
    const char *src = cfg->source[0] ? cfg->source : "configuration";
    if (cfg->n_listen < 1)
        return say(err, errlen, "%s: server.listen: at least one address required", src);
    if (cfg->n_allow < 1)
        return say(err, errlen, "%s: server.allow_networks: at least one network required", src);
    if (cfg->group[0] && !cfg->user[0]) /* app/privs.c would refuse it at start-up */
        return say(err, errlen, "%s: server.group: set, but server.user is not (the group "
                                "is the one mxguard drops to with the user)", src);
    if ((cfg->list_file[0] || cfg->list_url[0]) && !cfg->list_keyring[0])
        return say(err, errlen,
                   "%s: policy_list.keyring: required with policy_list.file or policy_list.url "
                   "(unsigned lists are never used)", src);
    if (cfg->list_keyring[0] && cfg->list_keyring[0] != '/')
        return say(err, errlen, "%s: policy_list.keyring: must be an absolute path", src);
    if (mxg_parse_tls_version(cfg->tls_max_version) > 0 &&
        mxg_parse_tls_version(cfg->tls_max_version) < mxg_parse_tls_version(cfg->tls_min_version))
        return say(err, errlen, "%s: tls.max_version: %s is below tls.min_version %s", src,
                   cfg->tls_max_version, cfg->tls_min_version);
    if (!cfg->tls_client_cert[0] != !cfg->tls_client_key[0])
        return say(err, errlen, "%s: tls.client_cert_file and tls.client_key_file: set both or "
                                "neither", src);
    if (cfg->state_backend == MXG_STATE_POSTGRESQL && !cfg->state_pg[0])
        return say(err, errlen, "%s: state.postgresql: required with state.backend = "
                                "\"postgresql\"", src);
    if (cfg->state_backend == MXG_STATE_POSTGRESQL &&
        cfg->state_report_lease_ms <= cfg->sts_fetch_timeout_ms)
        return say(err, errlen, "%s: state.report_lease: must be longer than "
                                "mta_sts.fetch_timeout (a report POST's time limit), or a "
                                "sender still sending loses its claim", src);
    if (cfg->state_retention_ms < cfg->state_outbox_max_age_ms + MS_PER_DAY)
        return say(err, errlen, "%s: state.retention: must be at least state.outbox_max_age "
                                "plus one day (a TLSRPT batch id must outlive every replay of "
                                "its batch)", src);
    /* server.workers: each worker gets an equal share of every process-wide limit
     * (app/run_workers.c), so a limit below the worker count could not be kept */
    /* (an explicit number; "auto" lowers itself to the smallest such limit) */
    struct shared_limit lim[3];
    size_t nl = shared_limits(cfg, lim);
    int workers = mxg_config_workers(cfg);
    for (size_t i = 0; workers > 1 && i < nl; i++)
        if (lim[i].v > 0 && lim[i].v < workers)
            return say(err, errlen, "%s: %s: %d is below server.workers (%d): each worker "
                                    "gets an equal share of it", src, lim[i].name, lim[i].v,
                       workers);
    if (cfg->rpt_dkim_key[0] && !cfg->rpt_dkim_selector[0])
        return say(err, errlen, "%s: tlsrpt.dkim_selector: required with tlsrpt.dkim_key_file",
                   src);
    return validate_inbound(cfg, src, err, errlen);
}

/* Defaults, then the file (if path), then MXGUARD_* from envp (if any),
 * then validation. 0, or -1 with the first error in err; *cfg is only
 * written on success. */
int mxg_config_load(struct mxg_config *cfg, const char *path, char *const *envp, char *err,
                    size_t errlen)
{
    struct mxg_config tmp;
    if (err && errlen)
        err[0] = '\0';
    mxg_config_defaults(&tmp);
    if (path) {
        if (strlen(path) >= sizeof tmp.source)
            return say(err, errlen, "%.64s...: cannot open: path too long", path);
        strcpy(tmp.source, path);
        if (load_file(&tmp, path, err, errlen) < 0)
            return -1;
    }
    if (load_env(&tmp, envp, err, errlen) < 0 || validate(&tmp, err, errlen) < 0)
        return -1;
    *cfg = tmp;
    return 0;
}

/* Every setting in the file syntax, grouped by section, in schema order;
 * the output loads back to the same configuration. */
void mxg_config_dump(const struct mxg_config *cfg, FILE *out)
{
    const char *section = NULL;
    fprintf(out, "# mxguard effective configuration (file: %s)\n",
            cfg->source[0] ? cfg->source : "none, defaults");
    for (size_t i = 0; i < N_KEYS; i++) {
        const struct key *k = &keys[i];
        if (!section || strcmp(section, k->section) != 0) {
            if (section)
                fputs("};\n", out);
            section = k->section;
            fprintf(out, "\n%s:\n{\n", section);
        }
        fprintf(out, "  %s = ", k->name);
        k->dump(k, cfg, out);
        fputs(";", out);
        if (k->dump == dump_workers && cfg->workers == 0) { /* what "auto" became here */
            char why[256];
            mxg_config_workers_explain(cfg, why, sizeof why);
            fprintf(out, " # %s", why);
        }
        fputs("\n", out);
    }
    if (section)
        fputs("};\n", out);
}

/* ------------------------------------------------------------------ */
/* Reload support                                                      */
/* ------------------------------------------------------------------ */

/* The value of k in cfg, as the dump writes it, in a malloc'd string. */
static char *value_text(const struct key *k, const struct mxg_config *cfg)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        return NULL;
    k->dump(k, cfg, f);
    if (fclose(f) != 0) {
        free(buf);
        return NULL;
    }
    return buf;
}

int mxg_config_diff(const struct mxg_config *a, const struct mxg_config *b,
                    void (*fn)(void *arg, const char *section, const char *name,
                               const char *old_value, const char *new_value),
                    void *arg)
{
    int n = 0;
    for (size_t i = 0; i < N_KEYS; i++) {
        char *va = value_text(&keys[i], a), *vb = value_text(&keys[i], b);
        if (va && vb && strcmp(va, vb) != 0) {
            n++;
            if (fn)
                fn(arg, keys[i].section, keys[i].name, va, vb);
        }
        free(va);
        free(vb);
    }
    return n;
}

int mxg_config_copy_setting(struct mxg_config *dst, const struct mxg_config *src,
                            const char *section, const char *name)
{
    const struct key *k = find_key(section, name);
    if (!k)
        return -1;
    size_t size;
    if (k->apply == apply_duration || k->apply == apply_size)
        size = sizeof(uint64_t);
    else if (k->apply == apply_string)
        size = k->cap;
    else if (k->apply == apply_endpoints)
        size = k->cap * sizeof(struct mxg_endpoint);
    else if (k->apply == apply_cidrs)
        size = k->cap * sizeof(struct mxg_cidr);
    else /* apply_int, apply_bool, apply_enum */
        size = sizeof(int);
    memcpy((char *)dst + k->off, (const char *)src + k->off, size);
    if (k->off_n)
        memcpy((char *)dst + k->off_n, (const char *)src + k->off_n, sizeof(int));
    return 0;
}
