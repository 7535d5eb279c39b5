/* proxy/outbound/addr_class.c — special-purpose address ranges; see addr_class.h. */
#include "addr_class.h"

#include <netinet/in.h>
#include <stdint.h>
#include <string.h>

/* The IPv4 range of a (host order), or NULL. */
static const char *v4_class(uint32_t a)
{
    static const struct {
        uint32_t net, mask;
        const char *what;
    } r[] = {
        {0x00000000u, 0xff000000u, "unspecified (0.0.0.0/8)"},
        {0x0a000000u, 0xff000000u, "private (10.0.0.0/8)"},
        {0x64400000u, 0xffc00000u, "shared (100.64.0.0/10)"},
        {0x7f000000u, 0xff000000u, "loopback (127.0.0.0/8)"},
        {0xa9fe0000u, 0xffff0000u, "link-local (169.254.0.0/16)"},
        {0xac100000u, 0xfff00000u, "private (172.16.0.0/12)"},
        {0xc0a80000u, 0xffff0000u, "private (192.168.0.0/16)"},
        {0xe0000000u, 0xf0000000u, "multicast (224.0.0.0/4)"},
        {0xf0000000u, 0xf0000000u, "reserved (240.0.0.0/4)"},
    };
    for (size_t i = 0; i < sizeof r / sizeof r[0]; i++)
        if ((a & r[i].mask) == r[i].net)
            return r[i].what;
    return NULL;
}

/* The embedded IPv4 address of a mapped / compatible / NAT64 IPv6 address:
 * 1 with *v4 (host order), else 0. */
static int v6_embedded_v4(const uint8_t *b, uint32_t *v4)
{
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    static const uint8_t compat[12] = {0};
    static const uint8_t nat64[12] = {0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0};
    if (memcmp(b, mapped, 12) != 0 && memcmp(b, compat, 12) != 0 && memcmp(b, nat64, 12) != 0)
        return 0;
    *v4 = (uint32_t)b[12] << 24 | (uint32_t)b[13] << 16 | (uint32_t)b[14] << 8 | b[15];
    return 1;
}

const char *mxg_addr_private(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET)
        return v4_class(ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr));
    if (sa->sa_family != AF_INET6)
        return "non-IP";
    const uint8_t *b = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
    static const uint8_t zero[16] = {0};
    if (memcmp(b, zero, 16) == 0)
        return "unspecified (::)";
    if (memcmp(b, zero, 15) == 0 && b[15] == 1)
        return "loopback (::1)";
    if ((b[0] & 0xfe) == 0xfc)
        return "unique-local (fc00::/7)";
    if (b[0] == 0xfe && (b[1] & 0xc0) == 0x80)
        return "link-local (fe80::/10)";
    if (b[0] == 0xfe && (b[1] & 0xc0) == 0xc0)
        return "site-local (fec0::/10)";
    if (b[0] == 0xff)
        return "multicast (ff00::/8)";
    uint32_t v4;
    if (v6_embedded_v4(b, &v4)) {
        const char *w = v4_class(v4);
        return w ? w : NULL;
    }
    return NULL;
}

/* The address as 16 octets (IPv4 as IPv4-mapped IPv6): 1, or 0 (non-IP). */
static int as_v6(const struct sockaddr *sa, uint8_t out[16])
{
    if (sa->sa_family == AF_INET) {
        memset(out, 0, 10);
        out[10] = out[11] = 0xff;
        memcpy(out + 12, &((const struct sockaddr_in *)sa)->sin_addr, 4);
        return 1;
    }
    if (sa->sa_family == AF_INET6) {
        memcpy(out, ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr, 16);
        return 1;
    }
    return 0;
}

int mxg_addr_same_host(const struct sockaddr *a, const struct sockaddr *b)
{
    uint8_t x[16], y[16];
    return as_v6(a, x) && as_v6(b, y) && memcmp(x, y, 16) == 0;
}
