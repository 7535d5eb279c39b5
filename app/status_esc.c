/* app/status_esc.c — escaping for the status page (status.h): every string
 * from DNS, a policy, a peer or a URL goes through here on its way into
 * HTML. */
#include <string.h>

#include "../core/str.h"
#include "status.h"

/* Append s as HTML text / attribute value (status.h). */
int mxg_status_esc(struct mxg_buf *b, const char *s)
{
    if (!s)
        return 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        const char *ent = NULL;
        switch (*p) {
        case '&': ent = "&amp;"; break;
        case '<': ent = "&lt;"; break;
        case '>': ent = "&gt;"; break;
        case '"': ent = "&quot;"; break;
        case '\'': ent = "&#39;"; break;
        default: break;
        }
        if (ent) {
            if (mxg_buf_append(b, ent, strlen(ent)) < 0)
                return -1;
            continue;
        }
        int n = *p >= 0x80 ? (int)mxg_utf8_seq(p) : 0;
        if (n > 0) { /* a whole, well-formed character */
            if (mxg_buf_append(b, p, (size_t)n) < 0)
                return -1;
            p += n - 1;
            continue;
        }
        char c = (*p < 0x20 && *p != '\n') || *p >= 0x7f ? '?' : (char)*p;
        if (mxg_buf_append(b, &c, 1) < 0)
            return -1;
    }
    return 0;
}

/* Is c left as it is in a path segment? */
static int path_plain(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '.' || c == '-' || c == '_';
}

/* Append s as one %-encoded URL path segment (status.h). */
int mxg_status_esc_path(struct mxg_buf *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)s; p && *p; p++) {
        char e[3] = {'%', hex[*p >> 4], hex[*p & 15]};
        if (path_plain(*p) ? mxg_buf_append(b, p, 1) < 0 : mxg_buf_append(b, e, 3) < 0)
            return -1;
    }
    return 0;
}

/* Is name usable as a domain page's name (status.h)? */
int mxg_status_name_ok(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n >= MXG_DNS_NAME_MAX)
        return 0;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            return 0;
    return 1;
}
