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

/* The key and line fields of entry e of a table built by spec. */
static char *entry_key(const struct mxg_mapfile_spec *spec, void *e)
{
    return (char *)e + spec->key_off;
}

static int *entry_line(const struct mxg_mapfile_spec *spec, void *e)
{
    return (int *)(void *)((char *)e + spec->line_off);
}

/* Make room for one more entry in t (capacity *cap). 0, or -1 (out of
 * memory; t unchanged). */
static int table_grow(struct mxg_mapfile_table *t, int *cap)
{
    if (t->n < *cap)
        return 0;
    int ncap = *cap ? *cap * 2 : 16;
    void *ne = realloc(t->e, (size_t)ncap * t->spec->size);
    if (!ne)
        return -1;
    t->e = ne;
    *cap = ncap;
    return 0;
}

/* Line l → entry e: the key and line here, the rest by spec->parse_entry.
 * 0, or -1 with why. */
static int table_entry(const struct mxg_mapfile_spec *spec, const struct mxg_mapfile_line *l,
                       void *e, char *why, size_t whylen)
{
    const char *r;
    memset(e, 0, spec->size);
    *entry_line(spec, e) = l->lineno;
    if (mxg_mapfile_key(l->f[0], 1, spec->star, entry_key(spec, e), MXG_MAPFILE_KEY_MAX, &r) <
        0) {
        snprintf(why, whylen, "destination \"%.100s\": %s", l->f[0], r);
        return -1;
    }
    return spec->parse_entry(e, l, why, whylen);
}

int mxg_mapfile_table_parse(struct mxg_mapfile_table *t, const struct mxg_mapfile_spec *spec,
                            const char *text, size_t len, const char *name, char *err,
                            size_t errlen)
{
    memset(t, 0, sizeof *t);
    t->spec = spec;
    snprintf(t->source, sizeof t->source, "%s", name);
    char *buf = malloc(len + 1);
    if (!buf) {
        snprintf(err, errlen, "%s: out of memory", name);
        mxg_mapfile_table_clear(t);
        return -1;
    }
    memcpy(buf, text, len);
    buf[len] = 0;
    struct mxg_mapfile_iter it;
    struct mxg_mapfile_line l = {0};
    char why[400];
    int cap = 0, st, rc = -1;
    mxg_mapfile_iter_init(&it, buf, len);
    while ((st = mxg_mapfile_next(&it, &l, why, sizeof why)) > 0) {
        if (table_grow(t, &cap) < 0) {
            snprintf(err, errlen, "%s:%d: out of memory", name, l.lineno);
            goto out;
        }
        if (table_entry(spec, &l, (char *)t->e + (size_t)t->n * spec->size, why, sizeof why) <
            0) {
            snprintf(err, errlen, "%s:%d: %s", name, l.lineno, why);
            goto out;
        }
        t->n++;
    }
    if (st < 0) {
        snprintf(err, errlen, "%s:%d: %s", name, l.lineno, why);
        goto out;
    }
    int dup = mxg_mapfile_sort(t->e, (size_t)t->n, spec->size, spec->key_off);
    if (dup >= 0) {
        void *pe = (char *)t->e + (size_t)(dup - 1) * spec->size;
        void *de = (char *)t->e + (size_t)dup * spec->size;
        int a = *entry_line(spec, pe), b = *entry_line(spec, de);
        snprintf(err, errlen, "%s:%d: %s: listed twice (also at line %d)", name, a > b ? a : b,
                 entry_key(spec, de), a > b ? b : a);
        goto out;
    }
    rc = 0;
out:
    free(buf);
    if (rc < 0)
        mxg_mapfile_table_clear(t);
    return rc;
}

int mxg_mapfile_table_load(struct mxg_mapfile_table *t, const struct mxg_mapfile_spec *spec,
                           const char *path, char *err, size_t errlen)
{
    char *text;
    size_t len;
    memset(t, 0, sizeof *t);
    if (mxg_mapfile_read(path, &text, &len, err, errlen) < 0)
        return -1;
    int rc = mxg_mapfile_table_parse(t, spec, text, len, path, err, errlen);
    free(text);
    return rc;
}

void mxg_mapfile_table_clear(struct mxg_mapfile_table *t)
{
    if (!t)
        return;
    free(t->e);
    memset(t, 0, sizeof *t);
}

const void *mxg_mapfile_table_entry(const struct mxg_mapfile_table *t, int i)
{
    if (!t || i < 0 || i >= t->n)
        return NULL;
    return (const char *)t->e + (size_t)i * t->spec->size;
}

const void *mxg_mapfile_table_find(const struct mxg_mapfile_table *t, const char *domain)
{
    if (!t || !t->spec || !domain)
        return NULL;
    return mxg_mapfile_find(t->e, (size_t)t->n, t->spec->size, t->spec->key_off, domain,
                            t->spec->star);
}
