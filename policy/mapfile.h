/* policy/mapfile.h — what the operator's map files (policy/override.h: the
 * per-domain TLS policy map; policy/route.h: static routes) have in common,
 * in the spirit of Postfix's lookup tables:
 *
 *  - one entry per line, fields separated by spaces or tabs; leading
 *    whitespace is insignificant (no Postfix-style continuation lines);
 *    blank lines are ignored; '#' as the first character of a field starts
 *    a comment that runs to the end of the line;
 *  - the first field is the key: a domain name ("example.com": that name
 *    only), a parent form (".example.com": every subdomain at any depth,
 *    not example.com itself — as Postfix's tables outside
 *    parent_domain_matches_subdomains) or, where the caller allows it, "*"
 *    (everything else). Keys are ASCII (A-labels for IDNs), compared
 *    without case, a trailing dot ignored;
 *  - lookup order: the exact name, then the nearest parent form
 *    (".b.example.com" before ".example.com"), then "*".
 *
 * Errors name the file and the line: "FILE:LINE: reason".
 *
 * Contract: plain functions, no I/O except mxg_mapfile_read() (and
 * mxg_mapfile_table_load(), which calls it); the iterator modifies the text
 * it walks (NUL-terminates fields in place). */
#ifndef MXG_MAPFILE_H
#define MXG_MAPFILE_H

#include <stddef.h>

#define MXG_MAPFILE_KEY_MAX 256       /* a key incl. NUL: 253 + '.' + NUL fits */
#define MXG_MAPFILE_LINE_MAX 4096     /* longer lines are an error */
#define MXG_MAPFILE_MAX_FIELDS 24
#define MXG_MAPFILE_SIZE_MAX (16u << 20) /* 16 MiB: larger files are refused */

/* Read the whole file (regular file, at most MXG_MAPFILE_SIZE_MAX octets)
 * into a malloc'd NUL-terminated buffer. 0, or -1 with err
 * "PATH: cannot open: ...". */
int mxg_mapfile_read(const char *path, char **text, size_t *len, char *err, size_t errlen);

struct mxg_mapfile_iter {
    char *p, *end;
    int lineno;
};

struct mxg_mapfile_line {
    int lineno;
    int nf;
    char *f[MXG_MAPFILE_MAX_FIELDS];
};

/* Walk text[0..len) (modified in place). */
void mxg_mapfile_iter_init(struct mxg_mapfile_iter *it, char *text, size_t len);

/* The next line with at least one field: 1 with *l filled, 0 at the end,
 * -1 with why (no file/line prefix; l->lineno is set) for an overlong line,
 * a NUL octet, a non-ASCII or control octet, or too many fields. */
int mxg_mapfile_next(struct mxg_mapfile_iter *it, struct mxg_mapfile_line *l, char *why,
                     size_t whylen);

/* Check and normalise a key (or a name in a list): lower case, trailing dot
 * removed. parent: a leading '.' is allowed (".example.com"); star: "*" is
 * allowed. 0 with out filled, or -1 with *why. */
int mxg_mapfile_key(const char *in, int parent, int star, char *out, size_t cap,
                    const char **why);

/* Find an entry for domain in a table sorted by key (strcmp of the
 * NUL-terminated key at key_off of each element of size `size`): the exact
 * name, then the nearest parent form, then "*" (when star). NULL if none.
 * domain is compared without case; a trailing dot is ignored. */
const void *mxg_mapfile_find(const void *base, size_t n, size_t size, size_t key_off,
                             const char *domain, int star);

/* Sort such a table by key; returns the index of a duplicate key (the
 * later of the pair in the sorted order) or -1 when all keys differ. */
int mxg_mapfile_sort(void *base, size_t n, size_t size, size_t key_off);

/* ---- one loader for every map file (policy/override.c, policy/route.c) ----
 *
 * A map is a table of entries of one struct type, described by a spec. The
 * loader owns what all maps share: reading the file, splitting lines and
 * fields (mxg_mapfile_next), checking and normalising the key (first field;
 * parent form allowed, "*" when spec->star), recording the line, sorting by
 * key, refusing a key listed twice, and every error's "NAME:LINE: " prefix.
 * The map's own parse_entry reads the fields after the key. */

struct mxg_mapfile_spec {
    size_t size;     /* of one entry */
    size_t key_off;  /* of the entry's char key[MXG_MAPFILE_KEY_MAX] */
    size_t line_off; /* of the entry's int line (1-based) */
    int star;        /* "*" is a valid key */
    /* Fill entry from the fields after the key (l->f[1] .. l->f[l->nf - 1];
     * l->nf may be 1: a key without a value is the callback's to refuse).
     * On entry the struct is zeroed but for its key (normalised) and line.
     * 0, or -1 with why: the reason only, the loader prefixes "NAME:LINE: ". */
    int (*parse_entry)(void *entry, const struct mxg_mapfile_line *l, char *why,
                       size_t whylen);
};

/* A loaded map: owned by whoever holds the struct; empty when zeroed. */
struct mxg_mapfile_table {
    char source[1024];                   /* the map's name or file */
    const struct mxg_mapfile_spec *spec; /* static; NULL while empty */
    int n;
    void *e; /* n entries of spec->size, sorted by key; malloc'd, owned */
};

/* Parse text (len octets; need not be NUL-terminated; not modified) of the
 * map called name into *t (whose previous contents are not freed). 0, or -1
 * with err "NAME:LINE: reason" ("NAME: out of memory" before the first line)
 * and *t empty. An empty map (no entries) is valid. */
int mxg_mapfile_table_parse(struct mxg_mapfile_table *t, const struct mxg_mapfile_spec *spec,
                            const char *text, size_t len, const char *name, char *err,
                            size_t errlen);

/* The same from the file at path (mxg_mapfile_read: errors "PATH: cannot
 * open: ..." and the like); errors and t->source name the path. */
int mxg_mapfile_table_load(struct mxg_mapfile_table *t, const struct mxg_mapfile_spec *spec,
                           const char *path, char *err, size_t errlen);

/* Free the entries; *t is empty afterwards. t may be NULL. */
void mxg_mapfile_table_clear(struct mxg_mapfile_table *t);

/* Entry i in key order, or NULL when t is NULL or i is out of range. */
const void *mxg_mapfile_table_entry(const struct mxg_mapfile_table *t, int i);

/* mxg_mapfile_find() over the table ("*" as its spec allows); NULL if none,
 * also when t or domain is NULL. */
const void *mxg_mapfile_table_find(const struct mxg_mapfile_table *t, const char *domain);

#endif
