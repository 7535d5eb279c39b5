/* core/show.c — see show.h. */
#include "show.h"

#include <string.h>

struct mxg_shown mxg_show(const char *p, size_t n)
{
    struct mxg_shown r;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (o + 8 >= sizeof r.s || i >= 64) {
            memcpy(r.s + o, "...", 3);
            o += 3;
            break;
        }
        if (c >= 0x20 && c < 0x7f && c != '\\' && c != '\'') {
            r.s[o++] = (char)c;
        } else {
            static const char hx[] = "0123456789abcdef";
            r.s[o++] = '\\';
            r.s[o++] = 'x';
            r.s[o++] = hx[c >> 4];
            r.s[o++] = hx[c & 15];
        }
    }
    r.s[o] = '\0';
    return r;
}
