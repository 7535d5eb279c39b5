/* policy/mapfile.c — see mapfile.h. */
#include "mapfile.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

int mxg_mapfile_read(const char *path, char **text, size_t *len, char *err, size_t errlen)
{
    *text = NULL;
    *len = 0;
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fileno(f), &st) < 0 || !S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "%s: cannot open: not a regular file", path);
        fclose(f);
        return -1;
    }
    if ((unsigned long long)st.st_size > MXG_MAPFILE_SIZE_MAX) {
        snprintf(err, errlen, "%s: larger than %u MiB", path, MXG_MAPFILE_SIZE_MAX >> 20);
        fclose(f);
        return -1;
    }
    size_t cap = (size_t)st.st_size + 1;
    char *buf = malloc(cap);
    if (!buf) {
        snprintf(err, errlen, "%s: out of memory", path);
        fclose(f);
        return -1;
    }
    size_t n = fread(buf, 1, cap - 1, f);
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        snprintf(err, errlen, "%s: read error", path);
        free(buf);
        return -1;
    }
    buf[n] = 0;
    *text = buf;
    *len = n;
    return 0;
}

void mxg_mapfile_iter_init(struct mxg_mapfile_iter *it, char *text, size_t len)
{
    it->p = text;
    it->end = text + len;
    it->lineno = 0;
}

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r';
}

int mxg_mapfile_next(struct mxg_mapfile_iter *it, struct mxg_mapfile_line *l, char *why,
                     size_t whylen)
{
    while (it->p < it->end) {
        char *s = it->p;
        char *nl = memchr(s, '\n', (size_t)(it->end - s));
        char *e = nl ? nl : it->end;
        it->p = nl ? nl + 1 : it->end;
        l->lineno = ++it->lineno;
        l->nf = 0;
        if ((size_t)(e - s) > MXG_MAPFILE_LINE_MAX) {
            snprintf(why, whylen, "line longer than %d characters", MXG_MAPFILE_LINE_MAX);
            return -1;
        }
        if (e > s && e[-1] == '\r')
            e--; /* CRLF files */
        for (char *q = s; q < e; q++) {
            unsigned char c = (unsigned char)*q;
            if (c == 0) {
                snprintf(why, whylen, "NUL octet in the line");
                return -1;
            }
            if (c >= 0x80) {
                snprintf(why, whylen, "non-ASCII octet 0x%02x (write internationalized names as "
                                      "A-labels, xn--...)", c);
                return -1;
            }
            if (c < 0x20 && c != '\t') {
                snprintf(why, whylen, "control character 0x%02x in the line", c);
                return -1;
            }
        }
        *e = 0;
        char *q = s;
        for (;;) {
            while (is_space(*q))
                q++;
            if (!*q || *q == '#')
                break;
            if (l->nf == MXG_MAPFILE_MAX_FIELDS) {
                snprintf(why, whylen, "more than %d fields", MXG_MAPFILE_MAX_FIELDS);
                return -1;
            }
            l->f[l->nf++] = q;
            while (*q && !is_space(*q))
                q++;
            if (*q)
                *q++ = 0;
        }
        if (l->nf > 0)
            return 1;
    }
    return 0;
}

static int fail(const char **why, const char *r)
{
    *why = r;
    return -1;
}

int mxg_mapfile_key(const char *in, int parent, int star, char *out, size_t cap,
                    const char **why)
{
    size_t n = strlen(in);
    if (n == 0)
        return fail(why, "empty name");
    if (strcmp(in, "*") == 0) {
        if (!star)
            return fail(why, "\"*\" is not allowed here");
        if (cap < 2)
            return fail(why, "too long");
        strcpy(out, "*");
        return 0;
    }
    if (n > 1 && in[n - 1] == '.')
        n--;
    if (n >= cap || n > 254)
        return fail(why, "name too long");
    const char *s = in;
    size_t o = 0;
    if (*s == '.') {
        if (!parent)
            return fail(why, "a leading '.' (parent form) is not allowed here");
        out[o++] = '.';
        s++;
        n--;
    }
    if (n == 0 || n > 253)
        return fail(why, n ? "name longer than 253 characters" : "empty name");
    size_t label = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '.') {
            if (label == 0)
                return fail(why, "empty label (\"..\", or a leading dot where none belongs)");
            if (s[i - 1] == '-')
                return fail(why, "a label ends with '-'");
            label = 0;
        } else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                   c == '-' || c == '_') {
            if (label == 0 && c == '-')
                return fail(why, "a label starts with '-'");
            if (++label > 63)
                return fail(why, "a label is longer than 63 characters");
        } else if (c == '*') {
            return fail(why, "wildcards are not supported (use the parent form .example.com)");
        } else if (c == '[' || c == ']' || c == ':') {
            return fail(why, "not a domain name (address literals and ports do not belong here)");
        } else {
            return fail(why, "not a domain name (letters, digits, '-' and '.' only)");
        }
        out[o++] = (char)((c >= 'A' && c <= 'Z') ? c - 'A' + 'a' : c);
    }
    if (label == 0)
        return fail(why, "empty label");
    if (s[n - 1] == '-')
        return fail(why, "a label ends with '-'");
    out[o] = 0;
    return 0;
}

struct sort_ctx {
    size_t key_off;
};

static int cmp_entries(const void *a, const void *b, void *arg)
{
    const struct sort_ctx *c = arg;
    return strcmp((const char *)a + c->key_off, (const char *)b + c->key_off);
}

int mxg_mapfile_sort(void *base, size_t n, size_t size, size_t key_off)
{
    struct sort_ctx c = {key_off};
    if (n > 1)
        qsort_r(base, n, size, cmp_entries, &c);
    for (size_t i = 1; i < n; i++)
        if (cmp_entries((char *)base + (i - 1) * size, (char *)base + i * size, &c) == 0)
            return (int)i;
    return -1;
}

static const void *find_key(const void *base, size_t n, size_t size, size_t key_off,
                            const char *key)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const char *e = (const char *)base + mid * size;
        int c = strcmp(key, e + key_off);
        if (c == 0)
            return e;
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

const void *mxg_mapfile_find(const void *base, size_t n, size_t size, size_t key_off,
                             const char *domain, int star)
{
    char name[MXG_MAPFILE_KEY_MAX + 1];
    size_t l = strlen(domain);
    if (l > 1 && domain[l - 1] == '.')
        l--;
    if (!base || n == 0 || l == 0 || l >= MXG_MAPFILE_KEY_MAX)
        return NULL;
    for (size_t i = 0; i < l; i++) {
        char c = domain[i];
        name[i + 1] = (char)((c >= 'A' && c <= 'Z') ? c - 'A' + 'a' : c);
    }
    name[0] = '.';
    name[l + 1] = 0;
    const void *e = find_key(base, n, size, key_off, name + 1);
    /* parent forms: ".rest" for each dot in the name, nearest first */
    for (size_t i = 1; !e && i <= l; i++)
        if (name[i] == '.' && i + 1 <= l)
            e = find_key(base, n, size, key_off, name + i);
    if (!e && star)
        e = find_key(base, n, size, key_off, "*");
    return e;
}
