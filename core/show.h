/* core/show.h — untrusted text made safe to quote in an error message or a
 * log line: printable ASCII kept, everything else (and \ and ') as \xNN, cut
 * after about 64 characters with "...". Returned by value: no allocation. */
#ifndef MXG_SHOW_H
#define MXG_SHOW_H

#include <stddef.h>

struct mxg_shown {
    char s[96];
};

struct mxg_shown mxg_show(const char *p, size_t n);

#endif
