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
 * Contract: plain functions, no I/O except mxg_mapfile_read(); the iterator
 * modifies the text it walks (NUL-terminates fields in place). */
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

#endif
