/* policy/stlist.c — the STARTTLS Everywhere policy list (docs/ARCHITECTURE.md
 * §Policy list): schema (jansson), detached OpenPGP signature (gpgv), and the store of the list in
 * force (persisted last good copy, strictly newer timestamps only).
 *
 * Format (EFF's policy.json, RULES.md and policy.schema.json):
 *   { "timestamp": T, "expires": T, "version": "0.1", "author": "...",
 *     "pinsets": { ... }, "policy-aliases": { NAME: POLICY, ... },
 *     "policies": { DOMAIN: POLICY | {"policy-alias": NAME}, ... } }
 *   POLICY = { "mode": "testing"|"enforce", "mxs": [PATTERN, ...], ...older
 *              fields: "mta-sts", "pin", "report", "min-tls-version", ... }
 *   T = integer epoch seconds, or "YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM|±HHMM)"
 *
 * Decisions where the format is loose (each pinned by a test row in
 * tests/unit/test_policy_stlist.c):
 *  - Any schema error rejects the whole file; nothing partial is kept.
 *  - JSON: duplicate keys (jansson JSON_REJECT_DUPLICATES), NUL bytes
 *    (raw or \u0000), invalid UTF-8 and trailing garbage are rejected. Note
 *    that EFF's own 2018 files carried one exact duplicate key
 *    ("salesforce.com" twice); such a file is refused.
 *  - timestamp and expires are required; expires must be after timestamp.
 *    Integers must be in [0, 253402300799] (year 9999); JSON reals, booleans
 *    and an ISO string without a UTC offset ("2014-06-06T14:30:16", which
 *    an early draft called UTC) are rejected: a signed security list should
 *    not depend on a guess about the time zone. Fractional seconds of any
 *    length are accepted and dropped (timestamps compare by whole seconds).
 *    Seconds "60" (leap second) and times before 1970 are rejected.
 *  - version and author are optional strings (returned as "" when absent).
 *  - pinsets: must be an object when present; its content is not used.
 *  - policies: required, an object (may be empty). policy-aliases: optional.
 *  - Unknown top-level keys (e.g. an early draft's "comment") are ignored;
 *    unknown per-policy keys (mta-sts, pin, report, min-tls-version,
 *    tls-report, require-valid-certificate, ...) are ignored whatever their
 *    value.
 *  - A policy entry with "policy-alias" takes the alias; its other keys are
 *    ignored (RULES.md: "If set, other fields are ignored"). The alias name
 *    must be a string naming an entry of policy-aliases. An alias itself
 *    must be a mode+mxs policy: one carrying "policy-alias" is rejected (no
 *    chaining). Every alias is validated even if no domain uses it. Alias
 *    names: 1-63 printable ASCII characters.
 *  - mode: exactly "testing" or "enforce" (case-sensitive); EFF's python
 *    tooling also knew "none": rejected here.
 *  - mxs: a non-empty array of strings; each an A-label LDH host name with
 *    at least two labels, optionally with one leading "." (suffix match),
 *    labels 1-63 characters without leading/trailing "-", at most 253
 *    characters (not counting the leading dot), one trailing dot tolerated
 *    and dropped. "*" (an MTA-STS wildcard), IP literals ("[..]", anything
 *    with ":", a numeric last label as in "192.0.2.1") and U-labels are
 *    rejected. Duplicates (after lower-casing) are stored once; more than
 *    MXG_STLIST_MAX_MXS distinct patterns reject the policy (silently
 *    dropping some would narrow the allowed MX set behind the owner's back).
 *  - Domain keys: the same name rules without the leading dot; lower-cased;
 *    a trailing dot dropped; two keys equal after that are rejected.
 *
 * Storage: domains live in an open-addressing hash table (FNV-1a, linear
 * probing, load <= 1/2), so lookups are O(1) whatever the list size.
 * Because struct mxg_stlist_policy is large (fixed mxs arrays, ~8 KiB),
 * policies are interned: every domain naming an alias shares the alias's
 * struct, and identical inline policies (same mode and mxs, in order) are
 * stored once.
 *
 * Signatures: gpgv is run with posix_spawn (no shell), stdin from
 * /dev/null, stdout (--status-fd 1) and stderr read through pipes, killed
 * after MXG_STLIST_GPGV_TIMEOUT_MS. Only exit status 0 with a VALIDSIG line
 * and no BADSIG/ERRSIG/NO_PUBKEY/EXPKEYSIG/REVKEYSIG/EXPSIG line counts (a
 * file carrying a good signature plus one by an unknown key is refused).
 * gpgv takes a keyring name without "/" as relative to its home directory,
 * so such a name is passed as "./NAME" (relative to our working directory,
 * as a user would expect). This call blocks for as long as gpgv runs: call
 * it at start-up or off the event loop.
 *
 * Store: candidates are written to mkstemp() files (0600) in the state
 * directory, verified there, parsed from the very bytes written, and
 * renamed to policy-list.json / policy-list.json.asc (file and directory
 * fsync'ed). A candidate that is already expired when offered is refused
 * (-1): replacing a list still in force by an expired one would silently
 * switch enforcement off. A crash between the two renames leaves a pair
 * that no longer verifies: it is refused at the next start (a log line, no
 * list) and repaired by the next successful offer. The persisted copy's
 * loaded_at after a restart is the mtime of policy-list.json (when it was
 * accepted), its source the path it was loaded from. Files above
 * MXG_STLIST_MAX_FILE bytes are not read. */
#include "policy/stlist.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/file.h"
#include "core/log.h"
#include "core/show.h"

extern char **environ;

#define LOGC "stlist"
#define MXG_STLIST_MAX_FILE (64u * 1024 * 1024)
#define MAX_EPOCH INT64_C(253402300799) /* 9999-12-31T23:59:59Z */
#define GPGV_OUT_CAP (64u * 1024)

/* ------------------------------------------------------------ helpers */

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static void copy_str(char *dst, size_t cap, const char *src)
{
    if (!dst || cap == 0)
        return;
    snprintf(dst, cap, "%s", src ? src : "");
}

static int is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}
static int is_alpha(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
static int is_hex(unsigned char c)
{
    return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}
static unsigned char lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c - 'A' + 'a') : c;
}

static struct mxg_shown shows(const char *s)
{
    return mxg_show(s, strlen(s));
}

struct timestr {
    char s[40];
};
static struct timestr fmt_time(int64_t t)
{
    struct timestr r;
    time_t tt = (time_t)t;
    struct tm tm;
    if (gmtime_r(&tt, &tm) && strftime(r.s, sizeof r.s, "%Y-%m-%dT%H:%M:%SZ", &tm) > 0)
        return r;
    snprintf(r.s, sizeof r.s, "%lld", (long long)t);
    return r;
}

static uint64_t fnv1a(const void *p, size_t n, uint64_t h)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= UINT64_C(0x100000001b3);
    }
    return h;
}
#define FNV_INIT UINT64_C(0xcbf29ce484222325)

/* ------------------------------------------------------------ hash table of indices */

struct slot {
    uint64_t h;
    uint32_t idx1; /* index + 1; 0 = empty */
};
struct idxtab {
    struct slot *s;
    size_t cap, n; /* cap: 0 or a power of two */
};
typedef int (*eq_fn)(const void *ctx, uint32_t idx, const void *key);

static int tab_grow(struct idxtab *t)
{
    size_t ncap = t->cap ? t->cap * 2 : 64;
    struct slot *ns = calloc(ncap, sizeof *ns);
    if (!ns)
        return -1;
    for (size_t i = 0; i < t->cap; i++) {
        if (!t->s[i].idx1)
            continue;
        size_t j = (size_t)t->s[i].h & (ncap - 1);
        while (ns[j].idx1)
            j = (j + 1) & (ncap - 1);
        ns[j] = t->s[i];
    }
    free(t->s);
    t->s = ns;
    t->cap = ncap;
    return 0;
}

static int tab_put(struct idxtab *t, uint64_t h, uint32_t idx)
{
    if ((t->n + 1) * 2 > t->cap && tab_grow(t) < 0)
        return -1;
    size_t j = (size_t)h & (t->cap - 1);
    while (t->s[j].idx1)
        j = (j + 1) & (t->cap - 1);
    t->s[j].h = h;
    t->s[j].idx1 = idx + 1;
    t->n++;
    return 0;
}

/* Index of the entry equal to key, or -1. */
static int64_t tab_get(const struct idxtab *t, uint64_t h, eq_fn eq, const void *ctx,
                       const void *key)
{
    if (!t->cap)
        return -1;
    size_t j = (size_t)h & (t->cap - 1);
    while (t->s[j].idx1) {
        if (t->s[j].h == h && eq(ctx, t->s[j].idx1 - 1, key))
            return (int64_t)t->s[j].idx1 - 1;
        j = (j + 1) & (t->cap - 1);
    }
    return -1;
}

static void tab_free(struct idxtab *t)
{
    free(t->s);
    t->s = NULL;
    t->cap = t->n = 0;
}

/* ------------------------------------------------------------ the list */

struct dom {
    char *name; /* lower-case, no trailing dot */
    uint32_t pol;
};

struct mxg_stlist {
    int64_t timestamp, expires;
    char *author, *version;
    int n_aliases;
    struct mxg_stlist_policy *pols;
    size_t n_pols, cap_pols;
    struct dom *doms;
    size_t n_doms, cap_doms;
    struct idxtab domtab;
};

void mxg_stlist_free(struct mxg_stlist *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->n_doms; i++)
        free(l->doms[i].name);
    free(l->doms);
    free(l->pols);
    tab_free(&l->domtab);
    free(l->author);
    free(l->version);
    free(l);
}

int64_t mxg_stlist_timestamp(const struct mxg_stlist *l)
{
    return l ? l->timestamp : 0;
}
int64_t mxg_stlist_expires(const struct mxg_stlist *l)
{
    return l ? l->expires : 0;
}
const char *mxg_stlist_author(const struct mxg_stlist *l)
{
    return l && l->author ? l->author : "";
}
const char *mxg_stlist_version(const struct mxg_stlist *l)
{
    return l && l->version ? l->version : "";
}
int mxg_stlist_count(const struct mxg_stlist *l)
{
    return l ? (int)l->n_doms : 0;
}
int mxg_stlist_alias_count(const struct mxg_stlist *l)
{
    return l ? l->n_aliases : 0;
}

/* ------------------------------------------------------------ names */

/* Validate one name and write its canonical form (lower-case, the leading
 * dot kept when allowed, a trailing dot dropped) to out. Returns 0, or -1
 * with *why set to a static reason. */
static int norm_name(const char *s, size_t n, int leading_dot_ok,
                     char out[MXG_STS_NAME_MAX + 2], const char **why)
{
    size_t o = 0;
    if (n == 0) {
        *why = "empty name";
        return -1;
    }
    if (memchr(s, '\0', n)) {
        *why = "NUL byte in name";
        return -1;
    }
    if (s[0] == '.') {
        if (!leading_dot_ok) {
            *why = "leading dot";
            return -1;
        }
        out[o++] = '.';
        s++;
        n--;
    }
    if (n > 0 && s[n - 1] == '.')
        n--; /* one trailing dot tolerated */
    if (n == 0) {
        *why = "empty name";
        return -1;
    }
    if (memchr(s, '*', n)) {
        *why = leading_dot_ok ? "'*' is not allowed (a leading '.' matches subdomains)"
                              : "'*' is not allowed";
        return -1;
    }
    if (memchr(s, '[', n) || memchr(s, ':', n)) {
        *why = "IP address literals are not allowed";
        return -1;
    }
    if (n > 253) {
        *why = "longer than 253 characters";
        return -1;
    }
    size_t labels = 0, lstart = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i == n || s[i] == '.') {
            size_t ll = i - lstart;
            if (ll == 0) {
                *why = "empty label";
                return -1;
            }
            if (ll > 63) {
                *why = "label longer than 63 characters";
                return -1;
            }
            if (s[lstart] == '-' || s[i - 1] == '-') {
                *why = "label starts or ends with '-'";
                return -1;
            }
            labels++;
            if (i < n)
                lstart = i + 1;
            continue;
        }
        unsigned char c = (unsigned char)s[i];
        if (!is_alpha(c) && !is_digit(c) && c != '-') {
            *why = c >= 0x80 ? "not an A-label name (IDNA U-label or non-ASCII)"
                             : "invalid character (letters, digits, '-' and '.' only)";
            return -1;
        }
    }
    /* the last label [lstart, n): numeric (decimal or 0x-hex) means an IP address */
    {
        const char *ll = s + lstart;
        size_t lln = n - lstart;
        int numeric = 1;
        size_t k = 0;
        if (lln > 2 && ll[0] == '0' && (ll[1] == 'x' || ll[1] == 'X')) {
            for (k = 2; k < lln; k++)
                if (!is_hex((unsigned char)ll[k]))
                    numeric = 0;
        } else {
            for (k = 0; k < lln; k++)
                if (!is_digit((unsigned char)ll[k]))
                    numeric = 0;
        }
        if (numeric) {
            *why = "IP address literals are not allowed (numeric last label)";
            return -1;
        }
    }
    if (labels < 2) {
        *why = "not a fully qualified name (a single label)";
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        out[o++] = (char)lower((unsigned char)s[i]);
    out[o] = '\0';
    return 0;
}

/* Canonical lookup form of a query: lower-case, one trailing dot dropped.
 * Returns the length, or 0 if it cannot be a listed name. */
static size_t norm_query(const char *q, char out[MXG_STS_NAME_MAX + 2])
{
    if (!q)
        return 0;
    size_t n = strlen(q);
    if (n > 0 && q[n - 1] == '.')
        n--;
    if (n == 0 || n > 253)
        return 0;
    for (size_t i = 0; i < n; i++)
        out[i] = (char)lower((unsigned char)q[i]);
    out[n] = '\0';
    return n;
}

/* ------------------------------------------------------------ time */

static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = (unsigned)(y - era * 400);
    const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static int num(const char *p, int n, int *v)
{
    int x = 0;
    for (int i = 0; i < n; i++) {
        if (!is_digit((unsigned char)p[i]))
            return -1;
        x = x * 10 + (p[i] - '0');
    }
    *v = x;
    return 0;
}

int mxg_stlist_parse_time(const char *s, int64_t *out, char *why, size_t whylen)
{
    int y, mo, d, h, mi, se, oh = 0, om = 0, sign = 0;
    if (!s) {
        set_err(why, whylen, "no time");
        return -1;
    }
    size_t n = strlen(s);
    if (n < 19 || num(s, 4, &y) || s[4] != '-' || num(s + 5, 2, &mo) || s[7] != '-' ||
        num(s + 8, 2, &d) || s[10] != 'T' || num(s + 11, 2, &h) || s[13] != ':' ||
        num(s + 14, 2, &mi) || s[16] != ':' || num(s + 17, 2, &se)) {
        set_err(why, whylen, "'%s' is not YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM)", shows(s).s);
        return -1;
    }
    const char *p = s + 19;
    if (*p == '.') {
        p++;
        if (!is_digit((unsigned char)*p)) {
            set_err(why, whylen, "'%s': no digits after the decimal point", shows(s).s);
            return -1;
        }
        while (is_digit((unsigned char)*p))
            p++;
    }
    if (*p == 'Z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        sign = *p == '-' ? -1 : 1;
        p++;
        if (num(p, 2, &oh)) {
            set_err(why, whylen, "'%s': bad UTC offset", shows(s).s);
            return -1;
        }
        p += 2;
        if (*p == ':')
            p++;
        if (num(p, 2, &om)) {
            set_err(why, whylen, "'%s': bad UTC offset (want +HH:MM or +HHMM)", shows(s).s);
            return -1;
        }
        p += 2;
    } else if (*p == '\0') {
        set_err(why, whylen, "'%s': no UTC offset (Z or +HH:MM)", shows(s).s);
        return -1;
    } else {
        set_err(why, whylen, "'%s': unexpected '%s' after the seconds", shows(s).s,
                shows(p).s);
        return -1;
    }
    if (*p != '\0') {
        set_err(why, whylen, "'%s': trailing characters '%s'", shows(s).s, shows(p).s);
        return -1;
    }
    static const int mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] + (mo == 2 && leap) || h > 23 ||
        mi > 59 || se > 59 || oh > 23 || om > 59) {
        set_err(why, whylen, "'%s': field out of range", shows(s).s);
        return -1;
    }
    int64_t t = days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 + h * 3600 + mi * 60 + se -
                (int64_t)sign * (oh * 3600 + om * 60);
    if (t < 0) {
        set_err(why, whylen, "'%s': before 1970", shows(s).s);
        return -1;
    }
    *out = t;
    return 0;
}

static int json_time(const json_t *v, int64_t *out, char *why, size_t whylen)
{
    if (json_is_integer(v)) {
        json_int_t x = json_integer_value(v);
        if (x < 0 || x > MAX_EPOCH) {
            set_err(why, whylen, "%lld is out of range", (long long)x);
            return -1;
        }
        *out = (int64_t)x;
        return 0;
    }
    if (json_is_string(v))
        return mxg_stlist_parse_time(json_string_value(v), out, why, whylen);
    set_err(why, whylen, "not an integer (epoch seconds) or an ISO-8601 string");
    return -1;
}

/* ------------------------------------------------------------ parsing */

struct pctx {
    struct mxg_stlist *l;
    struct idxtab aliases; /* alias name -> pols index */
    struct idxtab intern;  /* inline policy content -> pols index */
    char *err;
    size_t errlen;
};

static int eq_alias(const void *ctx, uint32_t idx, const void *key)
{
    const struct mxg_stlist *l = ctx;
    return strcmp(l->pols[idx].alias, key) == 0;
}

static int eq_policy(const void *ctx, uint32_t idx, const void *key)
{
    const struct mxg_stlist *l = ctx;
    const struct mxg_stlist_policy *a = &l->pols[idx], *b = key;
    if (a->mode != b->mode || a->n_mxs != b->n_mxs || strcmp(a->alias, b->alias) != 0)
        return 0;
    for (int i = 0; i < a->n_mxs; i++)
        if (strcmp(a->mxs[i], b->mxs[i]) != 0)
            return 0;
    return 1;
}

static uint64_t policy_hash(const struct mxg_stlist_policy *p)
{
    uint64_t h = fnv1a(&p->mode, sizeof p->mode, FNV_INIT);
    for (int i = 0; i < p->n_mxs; i++)
        h = fnv1a(p->mxs[i], strlen(p->mxs[i]) + 1, h);
    return fnv1a(p->alias, strlen(p->alias), h);
}

static int eq_dom(const void *ctx, uint32_t idx, const void *key)
{
    const struct mxg_stlist *l = ctx;
    return strcmp(l->doms[idx].name, key) == 0;
}

static uint64_t str_hash(const char *s)
{
    return fnv1a(s, strlen(s), FNV_INIT);
}

static int64_t add_policy(struct mxg_stlist *l, const struct mxg_stlist_policy *p)
{
    if (l->n_pols == l->cap_pols) {
        size_t nc = l->cap_pols ? l->cap_pols * 2 : 16;
        struct mxg_stlist_policy *np = realloc(l->pols, nc * sizeof *np);
        if (!np)
            return -1;
        l->pols = np;
        l->cap_pols = nc;
    }
    l->pols[l->n_pols] = *p;
    return (int64_t)l->n_pols++;
}

/* A mode+mxs policy object at path → out. */
static int parse_def(struct pctx *c, const json_t *v, const char *path, int is_alias,
                     struct mxg_stlist_policy *out)
{
    if (!json_is_object(v)) {
        set_err(c->err, c->errlen, "%s: not an object", path);
        return -1;
    }
    const json_t *ref = json_object_get(v, "policy-alias");
    if (is_alias && ref) {
        set_err(c->err, c->errlen, "%s: an alias cannot refer to another alias (policy-alias%s%s)",
                path, json_is_string(ref) ? " " : "",
                json_is_string(ref) ? shows(json_string_value(ref)).s : "");
        return -1;
    }
    const json_t *mode = json_object_get(v, "mode");
    if (!mode) {
        set_err(c->err, c->errlen, "%s.mode: missing", path);
        return -1;
    }
    if (!json_is_string(mode)) {
        set_err(c->err, c->errlen, "%s.mode: not a string", path);
        return -1;
    }
    const char *ms = json_string_value(mode);
    if (strcmp(ms, "testing") == 0) {
        out->mode = MXG_STS_MODE_TESTING;
    } else if (strcmp(ms, "enforce") == 0) {
        out->mode = MXG_STS_MODE_ENFORCE;
    } else {
        set_err(c->err, c->errlen, "%s.mode: '%s' is not \"testing\" or \"enforce\"", path,
                shows(ms).s);
        return -1;
    }
    const json_t *mxs = json_object_get(v, "mxs");
    if (!mxs) {
        set_err(c->err, c->errlen, "%s.mxs: missing", path);
        return -1;
    }
    if (!json_is_array(mxs)) {
        set_err(c->err, c->errlen, "%s.mxs: not an array", path);
        return -1;
    }
    if (json_array_size(mxs) == 0) {
        set_err(c->err, c->errlen, "%s.mxs: empty (at least one MX pattern is required)", path);
        return -1;
    }
    out->n_mxs = 0;
    size_t i;
    const json_t *e;
    json_array_foreach(mxs, i, e)
    {
        if (!json_is_string(e)) {
            set_err(c->err, c->errlen, "%s.mxs[%zu]: not a string", path, i);
            return -1;
        }
        char norm[MXG_STS_NAME_MAX + 2];
        const char *why = "";
        const char *s = json_string_value(e);
        size_t sl = json_string_length(e);
        if (norm_name(s, sl, 1, norm, &why) < 0) {
            set_err(c->err, c->errlen, "%s.mxs[%zu]: '%s': %s", path, i, mxg_show(s, sl).s, why);
            return -1;
        }
        int dup = 0;
        for (int k = 0; k < out->n_mxs && !dup; k++)
            dup = strcmp(out->mxs[k], norm) == 0;
        if (dup)
            continue;
        if (out->n_mxs == MXG_STLIST_MAX_MXS) {
            set_err(c->err, c->errlen, "%s.mxs: more than %d distinct patterns", path,
                    MXG_STLIST_MAX_MXS);
            return -1;
        }
        memcpy(out->mxs[out->n_mxs++], norm, strlen(norm) + 1);
    }
    return 0;
}

static int parse_aliases(struct pctx *c, const json_t *obj)
{
    const char *name;
    const json_t *v;
    json_object_foreach((json_t *)obj, name, v)
    {
        char path[160];
        snprintf(path, sizeof path, "policy-aliases.%s", shows(name).s);
        size_t nl = strlen(name);
        int ok = nl > 0 && nl < sizeof c->l->pols[0].alias;
        for (size_t k = 0; ok && k < nl; k++)
            ok = (unsigned char)name[k] >= 0x20 && (unsigned char)name[k] < 0x7f;
        if (!ok) {
            set_err(c->err, c->errlen, "%s: alias names are 1-%zu printable ASCII characters",
                    path, sizeof c->l->pols[0].alias - 1);
            return -1;
        }
        struct mxg_stlist_policy *p = calloc(1, sizeof *p);
        if (!p) {
            set_err(c->err, c->errlen, "out of memory");
            return -1;
        }
        if (parse_def(c, v, path, 1, p) < 0) {
            free(p);
            return -1;
        }
        memcpy(p->alias, name, nl + 1);
        int64_t idx = add_policy(c->l, p);
        free(p);
        if (idx < 0 || tab_put(&c->aliases, str_hash(name), (uint32_t)idx) < 0) {
            set_err(c->err, c->errlen, "out of memory");
            return -1;
        }
        c->l->n_aliases++;
    }
    return 0;
}

static int parse_policies(struct pctx *c, const json_t *obj)
{
    struct mxg_stlist *l = c->l;
    struct mxg_stlist_policy *tmp = calloc(1, sizeof *tmp);
    if (!tmp) {
        set_err(c->err, c->errlen, "out of memory");
        return -1;
    }
    const char *key;
    const json_t *v;
    int rc = -1;
    json_object_foreach((json_t *)obj, key, v)
    {
        char path[160];
        snprintf(path, sizeof path, "policies.%s", shows(key).s);
        char dn[MXG_STS_NAME_MAX + 2];
        const char *why = "";
        if (norm_name(key, strlen(key), 0, dn, &why) < 0) {
            set_err(c->err, c->errlen, "%s: not a valid domain name: %s", path, why);
            goto out;
        }
        if (!json_is_object(v)) {
            set_err(c->err, c->errlen, "%s: not an object", path);
            goto out;
        }
        int64_t pol;
        const json_t *ref = json_object_get(v, "policy-alias");
        if (ref) {
            if (!json_is_string(ref)) {
                set_err(c->err, c->errlen, "%s.policy-alias: not a string", path);
                goto out;
            }
            const char *an = json_string_value(ref);
            pol = tab_get(&c->aliases, str_hash(an), eq_alias, l, an);
            if (pol < 0) {
                set_err(c->err, c->errlen, "%s.policy-alias: unknown alias '%s'", path,
                        shows(an).s);
                goto out;
            }
        } else {
            memset(tmp, 0, sizeof *tmp);
            if (parse_def(c, v, path, 0, tmp) < 0)
                goto out;
            uint64_t ph = policy_hash(tmp);
            pol = tab_get(&c->intern, ph, eq_policy, l, tmp);
            if (pol < 0) {
                pol = add_policy(l, tmp);
                if (pol < 0 || tab_put(&c->intern, ph, (uint32_t)pol) < 0) {
                    set_err(c->err, c->errlen, "out of memory");
                    goto out;
                }
            }
        }
        uint64_t dh = str_hash(dn);
        if (tab_get(&l->domtab, dh, eq_dom, l, dn) >= 0) {
            set_err(c->err, c->errlen, "%s: duplicate domain (%s is listed twice)", path, dn);
            goto out;
        }
        if (l->n_doms == l->cap_doms) {
            size_t nc = l->cap_doms ? l->cap_doms * 2 : 64;
            struct dom *nd = realloc(l->doms, nc * sizeof *nd);
            if (!nd) {
                set_err(c->err, c->errlen, "out of memory");
                goto out;
            }
            l->doms = nd;
            l->cap_doms = nc;
        }
        char *name = strdup(dn);
        if (!name) {
            set_err(c->err, c->errlen, "out of memory");
            goto out;
        }
        l->doms[l->n_doms].name = name;
        l->doms[l->n_doms].pol = (uint32_t)pol;
        if (tab_put(&l->domtab, dh, (uint32_t)l->n_doms) < 0) {
            free(name);
            set_err(c->err, c->errlen, "out of memory");
            goto out;
        }
        l->n_doms++;
    }
    rc = 0;
out:
    free(tmp);
    return rc;
}

static int opt_string(const json_t *root, const char *key, char **out, char *err, size_t errlen)
{
    const json_t *v = json_object_get(root, key);
    if (!v)
        return 0;
    if (!json_is_string(v)) {
        set_err(err, errlen, "%s: not a string", key);
        return -1;
    }
    *out = strdup(json_string_value(v));
    if (!*out) {
        set_err(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

static int parse_root(struct pctx *c, const json_t *root)
{
    struct mxg_stlist *l = c->l;
    char why[200];
    if (!json_is_object(root)) {
        set_err(c->err, c->errlen, "top level: not a JSON object");
        return -1;
    }
    static const char *const tkeys[2] = {"timestamp", "expires"};
    int64_t *tvals[2] = {&l->timestamp, &l->expires};
    for (int i = 0; i < 2; i++) {
        const json_t *v = json_object_get(root, tkeys[i]);
        if (!v) {
            set_err(c->err, c->errlen, "%s: missing", tkeys[i]);
            return -1;
        }
        if (json_time(v, tvals[i], why, sizeof why) < 0) {
            set_err(c->err, c->errlen, "%s: %s", tkeys[i], why);
            return -1;
        }
    }
    if (l->expires <= l->timestamp) {
        set_err(c->err, c->errlen, "expires: %s is not after timestamp %s",
                fmt_time(l->expires).s, fmt_time(l->timestamp).s);
        return -1;
    }
    if (opt_string(root, "version", &l->version, c->err, c->errlen) < 0 ||
        opt_string(root, "author", &l->author, c->err, c->errlen) < 0)
        return -1;
    const json_t *pins = json_object_get(root, "pinsets");
    if (pins && !json_is_object(pins)) {
        set_err(c->err, c->errlen, "pinsets: not an object");
        return -1;
    }
    const json_t *al = json_object_get(root, "policy-aliases");
    if (al) {
        if (!json_is_object(al)) {
            set_err(c->err, c->errlen, "policy-aliases: not an object");
            return -1;
        }
        if (parse_aliases(c, al) < 0)
            return -1;
    }
    const json_t *pol = json_object_get(root, "policies");
    if (!pol) {
        set_err(c->err, c->errlen, "policies: missing");
        return -1;
    }
    if (!json_is_object(pol)) {
        set_err(c->err, c->errlen, "policies: not an object");
        return -1;
    }
    return parse_policies(c, pol);
}

struct mxg_stlist *mxg_stlist_parse(const char *json, size_t len, char *err, size_t errlen)
{
    if (err && errlen)
        err[0] = '\0';
    if (!json) {
        set_err(err, errlen, "no input");
        return NULL;
    }
    const char *nul = memchr(json, '\0', len);
    if (nul) {
        set_err(err, errlen, "JSON: NUL byte at offset %zu", (size_t)(nul - json));
        return NULL;
    }
    json_error_t je;
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &je);
    if (!root) {
        set_err(err, errlen, "JSON: line %d column %d: %s", je.line, je.column, je.text);
        return NULL;
    }
    struct pctx c = {.err = err, .errlen = errlen};
    c.l = calloc(1, sizeof *c.l);
    int rc = c.l ? parse_root(&c, root) : (set_err(err, errlen, "out of memory"), -1);
    json_decref(root);
    tab_free(&c.aliases);
    tab_free(&c.intern);
    if (rc < 0) {
        mxg_stlist_free(c.l);
        return NULL;
    }
    return c.l;
}

const struct mxg_stlist_policy *mxg_stlist_lookup(const struct mxg_stlist *l, const char *domain)
{
    char q[MXG_STS_NAME_MAX + 2];
    if (!l || !norm_query(domain, q))
        return NULL;
    int64_t i = tab_get(&l->domtab, str_hash(q), eq_dom, l, q);
    return i < 0 ? NULL : &l->pols[l->doms[i].pol];
}

int mxg_stlist_mx_match(const struct mxg_stlist_policy *p, const char *host)
{
    char h[MXG_STS_NAME_MAX + 2];
    size_t hl;
    if (!p || !(hl = norm_query(host, h)))
        return 0;
    if (h[0] == '.' || strchr(h, '*') || strstr(h, ".."))
        return 0; /* not a host name: never matches */
    for (int i = 0; i < p->n_mxs; i++) {
        const char *m = p->mxs[i];
        size_t ml = strlen(m);
        if (m[0] == '.') {
            /* any depth below the suffix, never the bare name */
            if (hl > ml && memcmp(h + hl - ml, m, ml) == 0)
                return 1;
        } else if (hl == ml && memcmp(h, m, ml) == 0) {
            return 1;
        }
    }
    return 0;
}

/* ------------------------------------------------------------ gpgv */

enum { BW_NO_PUBKEY, BW_BADSIG, BW_EXPKEYSIG, BW_REVKEYSIG, BW_EXPSIG, BW_ERRSIG, BW_N };
static const char *const bad_words[BW_N] = {"NO_PUBKEY", "BADSIG",  "EXPKEYSIG",
                                            "REVKEYSIG", "EXPSIG",  "ERRSIG"};
static const char *const bad_text[BW_N] = {
    "signed by a key that is not in the keyring", "bad signature (the data was modified?)",
    "signed by an expired key",                   "signed by a revoked key",
    "the signature has expired",                  "the signature could not be checked"};

/* Copy s (up to end of line) into dst, dropping control characters. */
static void copy_line(char *dst, size_t cap, const char *s)
{
    size_t o = 0;
    if (cap == 0)
        return;
    for (; *s && *s != '\n' && o + 1 < cap; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch >= 0x20 && ch != 0x7f)
            dst[o++] = (char)ch;
    }
    dst[o] = '\0';
}

int mxg_stlist_gpgv_result(int exit_code, const char *status, char *signer, size_t signerlen,
                           char *err, size_t errlen)
{
    char fpr[130] = "", uid[160] = "", bad_arg[BW_N][80];
    int bad[BW_N] = {0}, nodata = 0, validsig = 0;
    if (signer && signerlen)
        signer[0] = '\0';
    if (err && errlen)
        err[0] = '\0';
    for (const char *line = status ? status : ""; *line;) {
        const char *eol = strchr(line, '\n');
        size_t ll = eol ? (size_t)(eol - line) : strlen(line);
        static const char pfx[] = "[GNUPG:] ";
        if (ll > sizeof pfx - 1 && memcmp(line, pfx, sizeof pfx - 1) == 0) {
            const char *kw = line + sizeof pfx - 1;
            size_t kl = 0;
            while (kw + kl < line + ll && kw[kl] != ' ')
                kl++;
            const char *arg = kw + kl < line + ll ? kw + kl + 1 : kw + kl;
            for (int w = 0; w < BW_N; w++) {
                if (kl == strlen(bad_words[w]) && memcmp(kw, bad_words[w], kl) == 0 && !bad[w]) {
                    bad[w] = 1;
                    /* the key id: first argument */
                    size_t al = 0;
                    while (arg + al < line + ll && arg[al] != ' ' && al + 1 < sizeof bad_arg[w])
                        al++;
                    memcpy(bad_arg[w], arg, al);
                    bad_arg[w][al] = '\0';
                }
            }
            if (kl == 8 && memcmp(kw, "VALIDSIG", 8) == 0 && !validsig) {
                size_t al = 0;
                while (arg + al < line + ll && arg[al] != ' ' && al + 1 < sizeof fpr)
                    al++;
                memcpy(fpr, arg, al);
                fpr[al] = '\0';
                validsig = al > 0;
            } else if (kl == 7 && memcmp(kw, "GOODSIG", 7) == 0 && !uid[0]) {
                const char *u = arg;
                while (u < line + ll && *u != ' ')
                    u++; /* skip the key id */
                if (u < line + ll)
                    copy_line(uid, sizeof uid, u + 1);
            } else if (kl == 6 && memcmp(kw, "NODATA", 6) == 0) {
                nodata = 1;
            }
        }
        line += ll;
        if (*line == '\n')
            line++;
    }
    for (int w = 0; w < BW_N; w++) {
        if (bad[w]) {
            set_err(err, errlen, "gpgv: %s%s%s: %s", bad_words[w], bad_arg[w][0] ? " " : "",
                    shows(bad_arg[w]).s, bad_text[w]);
            return -1;
        }
    }
    if (nodata) {
        set_err(err, errlen, "gpgv: NODATA: no OpenPGP signature found in the signature file");
        return -1;
    }
    if (exit_code != 0) {
        set_err(err, errlen, "gpgv: exit status %d", exit_code);
        return -1;
    }
    if (!validsig) {
        set_err(err, errlen, "gpgv: exit status 0 but no VALIDSIG status line");
        return -1;
    }
    if (uid[0])
        set_err(signer, signerlen, "%s (%s)", shows(fpr).s, uid);
    else
        set_err(signer, signerlen, "%s", shows(fpr).s);
    return 0;
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct capbuf {
    char *b;
    size_t n, cap;
};

/* Read what is available from fd into cb (excess discarded). 0: more to
 * come, 1: EOF or error (stop polling this fd). */
static int drain(int fd, struct capbuf *cb)
{
    char tmp[4096];
    for (;;) {
        ssize_t r = read(fd, tmp, sizeof tmp);
        if (r > 0) {
            size_t room = cb->cap - 1 - cb->n;
            size_t k = (size_t)r < room ? (size_t)r : room;
            memcpy(cb->b + cb->n, tmp, k);
            cb->n += k;
            cb->b[cb->n] = '\0';
            continue;
        }
        if (r == 0)
            return 1;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return 0;
        return 1;
    }
}

int mxg_stlist_verify_with(const char *gpgv, int timeout_ms, const char *data_path,
                           const char *sig_path, const char *keyring, char *signer,
                           size_t signerlen, char *err, size_t errlen)
{
    if (signer && signerlen)
        signer[0] = '\0';
    if (err && errlen)
        err[0] = '\0';
    if (!gpgv || !*gpgv || !data_path || !*data_path || !sig_path || !*sig_path || !keyring ||
        !*keyring) {
        set_err(err, errlen, "gpgv: missing program, data, signature or keyring path");
        return -1;
    }
    if (timeout_ms <= 0)
        timeout_ms = MXG_STLIST_GPGV_TIMEOUT_MS;
    /* gpgv resolves a keyring name without '/' in its home directory */
    char kr[4096];
    if (snprintf(kr, sizeof kr, "%s%s", strchr(keyring, '/') ? "" : "./", keyring) >=
        (int)sizeof kr) {
        set_err(err, errlen, "gpgv: keyring path too long");
        return -1;
    }
    char *argv[] = {(char *)gpgv,      "--status-fd", "1",         "--keyring", kr, "--",
                    (char *)sig_path, (char *)data_path, NULL};

    int out[2] = {-1, -1}, erp[2] = {-1, -1};
    struct capbuf ob = {0}, eb = {0};
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    int fa_ok = 0, at_ok = 0, rc = -1;
    pid_t pid = -1;

    ob.cap = eb.cap = GPGV_OUT_CAP;
    ob.b = malloc(ob.cap);
    eb.b = malloc(eb.cap);
    if (!ob.b || !eb.b) {
        set_err(err, errlen, "gpgv: out of memory");
        goto out;
    }
    ob.b[0] = eb.b[0] = '\0';
    if (pipe2(out, O_CLOEXEC) != 0 || pipe2(erp, O_CLOEXEC) != 0) {
        set_err(err, errlen, "gpgv: pipe: %s", strerror(errno));
        goto out;
    }
    if (posix_spawn_file_actions_init(&fa) != 0)
        goto spawn_fail;
    fa_ok = 1;
    if (posix_spawnattr_init(&at) != 0)
        goto spawn_fail;
    at_ok = 1;
    sigset_t all, none;
    sigfillset(&all);
    sigemptyset(&none);
    if (posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0) != 0 ||
        posix_spawn_file_actions_adddup2(&fa, out[1], 1) != 0 ||
        posix_spawn_file_actions_adddup2(&fa, erp[1], 2) != 0 ||
        posix_spawnattr_setsigdefault(&at, &all) != 0 ||
        posix_spawnattr_setsigmask(&at, &none) != 0 ||
        posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK) != 0)
        goto spawn_fail;

    int se = strchr(gpgv, '/') ? posix_spawn(&pid, gpgv, &fa, &at, argv, environ)
                               : posix_spawnp(&pid, gpgv, &fa, &at, argv, environ);
    if (se != 0) {
        pid = -1;
        if (se == ENOENT)
            set_err(err, errlen,
                    "gpgv: program '%s' not found (install gpgv, or set its path); the list "
                    "signature cannot be checked",
                    shows(gpgv).s);
        else
            set_err(err, errlen, "gpgv: cannot run '%s': %s", shows(gpgv).s, strerror(se));
        goto out;
    }
    close(out[1]);
    close(erp[1]);
    out[1] = erp[1] = -1;
    fcntl(out[0], F_SETFL, fcntl(out[0], F_GETFL) | O_NONBLOCK);
    fcntl(erp[0], F_SETFL, fcntl(erp[0], F_GETFL) | O_NONBLOCK);

    int64_t deadline = mono_ms() + timeout_ms;
    int open_out = 1, open_err = 1, timed_out = 0, status = 0, reaped = 0;
    while (open_out || open_err) {
        int64_t left = deadline - mono_ms();
        if (left <= 0) {
            timed_out = 1;
            break;
        }
        struct pollfd pf[2];
        int np = 0, io = -1, ie = -1;
        if (open_out) {
            io = np;
            pf[np++] = (struct pollfd){.fd = out[0], .events = POLLIN};
        }
        if (open_err) {
            ie = np;
            pf[np++] = (struct pollfd){.fd = erp[0], .events = POLLIN};
        }
        int pr = poll(pf, (nfds_t)np, (int)left);
        if (pr < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (io >= 0 && pf[io].revents && drain(out[0], &ob))
            open_out = 0;
        if (ie >= 0 && pf[ie].revents && drain(erp[0], &eb))
            open_err = 0;
    }
    /* both pipes closed (or time is up): wait for the exit, still bounded */
    while (!timed_out) {
        pid_t w = waitpid(pid, &status, WNOHANG);
        if (w == pid) {
            reaped = 1;
            break;
        }
        if (w < 0 && errno != EINTR)
            break;
        if (mono_ms() >= deadline) {
            timed_out = 1;
            break;
        }
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    if (!reaped) {
        kill(pid, SIGKILL);
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
            ;
        pid = -1;
        if (timed_out) {
            set_err(err, errlen, "gpgv: no answer within %d ms (killed)", timeout_ms);
            goto out;
        }
        set_err(err, errlen, "gpgv: lost track of the process: %s", strerror(errno));
        goto out;
    }
    pid = -1;
    if (!WIFEXITED(status)) {
        set_err(err, errlen, "gpgv: killed by signal %d",
                WIFSIGNALED(status) ? WTERMSIG(status) : 0);
        goto out;
    }
    rc = mxg_stlist_gpgv_result(WEXITSTATUS(status), ob.b, signer, signerlen, err, errlen);
    if (rc < 0 && err && strncmp(err, "gpgv: exit status", 17) == 0 && eb.n) {
        /* say what gpgv said (its first line): bad keyring, unreadable file, ... */
        char first[200];
        copy_line(first, sizeof first, eb.b);
        size_t el = strlen(err);
        if (el + 3 < errlen)
            snprintf(err + el, errlen - el, ": %s", first);
    }
    goto out;

spawn_fail:
    set_err(err, errlen, "gpgv: cannot set up the process");
out:
    if (pid > 0) {
        kill(pid, SIGKILL);
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
            ;
    }
    if (fa_ok)
        posix_spawn_file_actions_destroy(&fa);
    if (at_ok)
        posix_spawnattr_destroy(&at);
    for (int i = 0; i < 2; i++) {
        if (out[i] >= 0)
            close(out[i]);
        if (erp[i] >= 0)
            close(erp[i]);
    }
    free(ob.b);
    free(eb.b);
    return rc;
}

int mxg_stlist_verify(const char *data_path, const char *sig_path, const char *keyring,
                      char *signer, size_t signerlen, char *err, size_t errlen)
{
    return mxg_stlist_verify_with("gpgv", MXG_STLIST_GPGV_TIMEOUT_MS, data_path, sig_path,
                                  keyring, signer, signerlen, err, errlen);
}

/* ------------------------------------------------------------ store */

struct mxg_stlist_store {
    char *state_dir, *keyring;
    char json_path[4096], sig_path[4096];
    struct mxg_stlist *cur;
    char signer[200], source[300];
    int64_t loaded_at;
    mxg_stlist_accepted_cb accepted_cb; /* observer of accepted lists, or NULL */
    void *accepted_arg;
};

/* Contract: stlist.h. */
void mxg_stlist_store_set_accepted_cb(struct mxg_stlist_store *s, mxg_stlist_accepted_cb fn,
                                      void *arg)
{
    s->accepted_cb = fn;
    s->accepted_arg = arg;
}

/* A new 0600 temporary file in dir holding buf, fsync'ed (core/file.h). */
static int write_temp(const char *dir, const char *stem, const char *buf, size_t len,
                      char *path, size_t cap, char *err, size_t errlen)
{
    if (snprintf(path, cap, "%s/.%s.XXXXXX", dir, stem) >= (int)cap) {
        path[0] = '\0';
        set_err(err, errlen, "state directory path too long");
        return -1;
    }
    enum mxg_file_step step = MXG_FILE_OPEN;
    int rc = mxg_file_stage(AT_FDCWD, path, buf, len, NULL, &step);
    if (rc < 0 && step == MXG_FILE_OPEN) {
        set_err(err, errlen, "cannot create a file in %s: %s", dir, strerror(-rc));
        path[0] = '\0';
        return -1;
    }
    if (rc < 0) {
        set_err(err, errlen, "cannot write %s: %s", path, strerror(-rc));
        return -1;
    }
    return 0;
}

static void unlink_tmp(char *path)
{
    if (path[0])
        unlink(path);
    path[0] = '\0';
}

static int looks_armored_sig(const char *sig, size_t len)
{
    static const char hdr[] = "-----BEGIN PGP SIGNATURE-----";
    size_t i = 0;
    while (i < len && (sig[i] == ' ' || sig[i] == '\t' || sig[i] == '\r' || sig[i] == '\n'))
        i++;
    return len - i >= sizeof hdr - 1 && memcmp(sig + i, hdr, sizeof hdr - 1) == 0;
}

/* Write the candidate to temporary files, verify them, parse the same bytes.
 * On success the temporary paths are left for the caller (rename or unlink). */
static struct mxg_stlist *check_in(const char *state_dir, const char *keyring, const char *json,
                                   size_t json_len, const char *sig, size_t sig_len,
                                   char *tmp_json, char *tmp_sig, size_t tmpcap, char *signer,
                                   size_t signerlen, char *err, size_t errlen)
{
    char why[400];
    tmp_json[0] = tmp_sig[0] = '\0';
    if (!json || !sig) {
        set_err(err, errlen, "no list or no signature");
        return NULL;
    }
    if (sig_len == 0) {
        set_err(err, errlen, "signature: empty (the list is not signed)");
        return NULL;
    }
    if (!looks_armored_sig(sig, sig_len)) {
        set_err(err, errlen,
                "signature: not an ASCII-armored detached OpenPGP signature "
                "(-----BEGIN PGP SIGNATURE-----)");
        return NULL;
    }
    if (write_temp(state_dir, "policy-list.json", json, json_len, tmp_json, tmpcap, err,
                   errlen) < 0 ||
        write_temp(state_dir, "policy-list.json.asc", sig, sig_len, tmp_sig, tmpcap, err,
                   errlen) < 0)
        return NULL;
    if (mxg_stlist_verify(tmp_json, tmp_sig, keyring, signer, signerlen, why, sizeof why) <
        0) {
        set_err(err, errlen, "signature: %s", why);
        return NULL;
    }
    struct mxg_stlist *l = mxg_stlist_parse(json, json_len, why, sizeof why);
    if (!l) {
        set_err(err, errlen, "list: %s", why);
        return NULL;
    }
    return l;
}

/* check_in() with the store's directory and keyring. */
static struct mxg_stlist *check_candidate(struct mxg_stlist_store *s, const char *json,
                                          size_t json_len, const char *sig, size_t sig_len,
                                          char *tmp_json, char *tmp_sig, size_t tmpcap,
                                          char *signer, size_t signerlen, char *err,
                                          size_t errlen)
{
    return check_in(s->state_dir, s->keyring, json, json_len, sig, sig_len, tmp_json, tmp_sig,
                    tmpcap, signer, signerlen, err, errlen);
}

/* Read a whole regular file. 1: read, 0: does not exist, -1: error. */
static int read_file(const char *path, char **buf, size_t *len, char *err, size_t errlen)
{
    *buf = NULL;
    *len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            return 0;
        set_err(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size < 0 ||
        (uint64_t)st.st_size > MXG_STLIST_MAX_FILE) {
        set_err(err, errlen, "%s: not a regular file of at most %u bytes", path,
                MXG_STLIST_MAX_FILE);
        close(fd);
        return -1;
    }
    size_t cap = (size_t)st.st_size + 1, n = 0;
    char *b = malloc(cap);
    if (!b) {
        set_err(err, errlen, "out of memory");
        close(fd);
        return -1;
    }
    for (;;) {
        if (n == cap - 1)
            break; /* the size fstat reported; a file growing under us is cut here */
        ssize_t r = read(fd, b + n, cap - 1 - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            set_err(err, errlen, "%s: %s", path, strerror(errno));
            free(b);
            close(fd);
            return -1;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    b[n] = '\0';
    *buf = b;
    *len = n;
    return 1;
}

static void load_persisted(struct mxg_stlist_store *s)
{
    char *js = NULL, *sg = NULL, why[500];
    size_t jl = 0, sl = 0;
    int rj = read_file(s->json_path, &js, &jl, why, sizeof why);
    if (rj < 0) {
        LOG_W(LOGC, "persisted policy list refused: %s", why);
        goto out;
    }
    int rs = read_file(s->sig_path, &sg, &sl, why, sizeof why);
    if (rs < 0) {
        LOG_W(LOGC, "persisted policy list refused: %s", why);
        goto out;
    }
    if (rj == 0 && rs == 0)
        goto out; /* never had one */
    if (rj == 0 || rs == 0) {
        LOG_W(LOGC, "persisted policy list refused: %s is missing",
              rj ? s->sig_path : s->json_path);
        goto out;
    }
    char tj[4200], ts[4200], signer[sizeof s->signer];
    struct mxg_stlist *l = check_candidate(s, js, jl, sg, sl, tj, ts, sizeof tj, signer,
                                           sizeof signer, why, sizeof why);
    unlink_tmp(tj);
    unlink_tmp(ts);
    if (!l) {
        LOG_W(LOGC, "persisted policy list %s refused (no list in force until the next update): %s",
              s->json_path, why);
        goto out;
    }
    struct stat st;
    s->cur = l;
    copy_str(s->signer, sizeof s->signer, signer);
    copy_str(s->source, sizeof s->source, s->json_path);
    s->loaded_at = stat(s->json_path, &st) == 0 ? (int64_t)st.st_mtime : (int64_t)time(NULL);
    LOG_I(LOGC, "policy list loaded from %s: timestamp %s, expires %s, %d policies, signer %s",
          s->json_path, fmt_time(l->timestamp).s, fmt_time(l->expires).s, mxg_stlist_count(l),
          s->signer);
    if ((int64_t)time(NULL) >= l->expires)
        LOG_W(LOGC, "the persisted policy list expired at %s: not used until a newer one arrives",
              fmt_time(l->expires).s);
out:
    free(js);
    free(sg);
}

struct mxg_stlist_store *mxg_stlist_store_open(const char *state_dir, const char *keyring,
                                               char *err, size_t errlen)
{
    if (err && errlen)
        err[0] = '\0';
    if (!state_dir || !*state_dir || !keyring || !*keyring) {
        set_err(err, errlen, "policy list: state directory and keyring are required");
        return NULL;
    }
    struct stat st;
    if (stat(state_dir, &st) != 0) {
        set_err(err, errlen, "policy list: state directory %s: %s", state_dir, strerror(errno));
        return NULL;
    }
    if (!S_ISDIR(st.st_mode)) {
        set_err(err, errlen, "policy list: state directory %s: not a directory", state_dir);
        return NULL;
    }
    struct mxg_stlist_store *s = calloc(1, sizeof *s);
    if (!s) {
        set_err(err, errlen, "out of memory");
        return NULL;
    }
    s->state_dir = strdup(state_dir);
    s->keyring = strdup(keyring);
    if (!s->state_dir || !s->keyring) {
        set_err(err, errlen, "out of memory");
        mxg_stlist_store_close(s);
        return NULL;
    }
    if (snprintf(s->json_path, sizeof s->json_path, "%s/policy-list.json", state_dir) >=
            (int)sizeof s->json_path ||
        snprintf(s->sig_path, sizeof s->sig_path, "%s/policy-list.json.asc", state_dir) >=
            (int)sizeof s->sig_path) {
        set_err(err, errlen, "policy list: state directory path too long");
        mxg_stlist_store_close(s);
        return NULL;
    }
    load_persisted(s);
    return s;
}

void mxg_stlist_store_close(struct mxg_stlist_store *s)
{
    if (!s)
        return;
    mxg_stlist_free(s->cur);
    free(s->state_dir);
    free(s->keyring);
    free(s);
}

static int install(struct mxg_stlist_store *s, struct mxg_stlist *l, char *tj, char *ts,
                   const char *signer, const char *json, size_t json_len, const char *sig,
                   size_t sig_len, const char *source, char *err, size_t errlen);

int mxg_stlist_store_offer(struct mxg_stlist_store *s, const char *json, size_t json_len,
                           const char *sig, size_t sig_len, const char *source, char *err,
                           size_t errlen)
{
    if (err && errlen)
        err[0] = '\0';
    if (!s) {
        set_err(err, errlen, "no store");
        return -1;
    }
    char tj[4200], ts[4200], signer[sizeof s->signer];
    struct mxg_stlist *l = check_candidate(s, json, json_len, sig, sig_len, tj, ts, sizeof tj,
                                           signer, sizeof signer, err, errlen);
    int rc = install(s, l, tj, ts, signer, json, json_len, sig, sig_len, source, err, errlen);
    unlink_tmp(tj);
    unlink_tmp(ts);
    return rc;
}

/* The loop side of an offer: l (taken; NULL: the check failed, err set) becomes current when
 * it is newer and unexpired, its temporary files tj, ts renamed into place (emptied when
 * renamed; the caller unlinks what is left). Returns 1, 0 or -1 as mxg_stlist_store_offer. */
static int install(struct mxg_stlist_store *s, struct mxg_stlist *l, char *tj, char *ts,
                   const char *signer, const char *json, size_t json_len, const char *sig,
                   size_t sig_len, const char *source, char *err, size_t errlen)
{
    int rc = -1;
    if (!l)
        goto out;
    if (s->cur && l->timestamp <= s->cur->timestamp) {
        set_err(err, errlen, "not newer: timestamp %s <= current %s", fmt_time(l->timestamp).s,
                fmt_time(s->cur->timestamp).s);
        rc = 0;
        goto out;
    }
    int64_t now = (int64_t)time(NULL);
    if (now >= l->expires) {
        set_err(err, errlen, "list: expired at %s (now %s); an expired list is never used",
                fmt_time(l->expires).s, fmt_time(now).s);
        goto out;
    }
    if (rename(tj, s->json_path) != 0) {
        set_err(err, errlen, "cannot install %s: %s", s->json_path, strerror(errno));
        goto out;
    }
    tj[0] = '\0';
    if (rename(ts, s->sig_path) != 0) {
        set_err(err, errlen, "cannot install %s: %s", s->sig_path, strerror(errno));
        LOG_E(LOGC, "%s was replaced but %s could not be: the persisted copy no longer "
                    "verifies until the next update",
              s->json_path, s->sig_path);
        goto out;
    }
    ts[0] = '\0';
    int src = mxg_file_sync_dir(AT_FDCWD, s->state_dir, NULL, NULL);
    if (src != 0)
        LOG_W(LOGC, "fsync %s: %s", s->state_dir, strerror(-src));
    mxg_stlist_free(s->cur);
    s->cur = l;
    l = NULL;
    copy_str(s->signer, sizeof s->signer, signer);
    copy_str(s->source, sizeof s->source, source ? source : "");
    s->loaded_at = now;
    LOG_N(LOGC, "policy list from %s accepted: timestamp %s, expires %s, %d policies, %d aliases, "
                "signer %s",
          s->source[0] ? s->source : "(unnamed)", fmt_time(s->cur->timestamp).s,
          fmt_time(s->cur->expires).s, mxg_stlist_count(s->cur), s->cur->n_aliases, s->signer);
    rc = 1;
    if (s->accepted_cb)
        s->accepted_cb(s->accepted_arg, json, json_len, sig, sig_len, s->cur->timestamp);
out:
    mxg_stlist_free(l);
    return rc;
}

/* A candidate checked off the loop (stlist.h): owned copies of everything the check needs. */
struct mxg_stlist_candidate {
    char *json, *sig, *state_dir, *keyring;
    size_t json_len, sig_len;
    struct mxg_stlist *l;          /* the check's result, or NULL */
    char tj[4200], ts[4200];       /* its temporary files ("" = none) */
    char signer[200];
    char err[400];
};

/* Contract: stlist.h. */
struct mxg_stlist_candidate *mxg_stlist_candidate_new(const struct mxg_stlist_store *s,
                                                      const char *json, size_t json_len,
                                                      const char *sig, size_t sig_len)
{
    struct mxg_stlist_candidate *c;
    if (!s || !json || !sig || !(c = calloc(1, sizeof *c)))
        return NULL;
    c->json = malloc(json_len + 1);
    c->sig = malloc(sig_len + 1);
    c->state_dir = strdup(s->state_dir);
    c->keyring = strdup(s->keyring);
    if (!c->json || !c->sig || !c->state_dir || !c->keyring) {
        mxg_stlist_candidate_free(c);
        return NULL;
    }
    memcpy(c->json, json, json_len);
    c->json[json_len] = '\0';
    memcpy(c->sig, sig, sig_len);
    c->sig[sig_len] = '\0';
    c->json_len = json_len;
    c->sig_len = sig_len;
    return c;
}

/* Contract: stlist.h. */
void mxg_stlist_candidate_check(struct mxg_stlist_candidate *c)
{
    c->l = check_in(c->state_dir, c->keyring, c->json, c->json_len, c->sig, c->sig_len, c->tj,
                    c->ts, sizeof c->tj, c->signer, sizeof c->signer, c->err, sizeof c->err);
}

/* Contract: stlist.h. */
int mxg_stlist_store_install(struct mxg_stlist_store *s, struct mxg_stlist_candidate *c,
                             const char *source, char *err, size_t errlen)
{
    int rc;
    if (err && errlen)
        err[0] = '\0';
    if (!s || !c) {
        set_err(err, errlen, "no store");
        mxg_stlist_candidate_free(c);
        return -1;
    }
    if (!c->l)
        set_err(err, errlen, "%s", c->err);
    rc = install(s, c->l, c->tj, c->ts, c->signer, c->json, c->json_len, c->sig, c->sig_len,
                 source, err, errlen);
    c->l = NULL; /* taken by install() */
    mxg_stlist_candidate_free(c);
    return rc;
}

/* Contract: stlist.h. */
void mxg_stlist_candidate_free(struct mxg_stlist_candidate *c)
{
    if (!c)
        return;
    mxg_stlist_free(c->l);
    unlink_tmp(c->tj);
    unlink_tmp(c->ts);
    free(c->json);
    free(c->sig);
    free(c->state_dir);
    free(c->keyring);
    free(c);
}

const struct mxg_stlist *mxg_stlist_store_current(const struct mxg_stlist_store *s, int64_t now)
{
    if (!s || !s->cur || now >= s->cur->expires)
        return NULL;
    return s->cur;
}

void mxg_stlist_store_status(const struct mxg_stlist_store *s, int64_t now,
                             struct mxg_stlist_status *out)
{
    if (!out)
        return;
    memset(out, 0, sizeof *out);
    if (!s || !s->cur)
        return;
    out->have = 1;
    out->expired = now >= s->cur->expires;
    out->timestamp = s->cur->timestamp;
    out->expires = s->cur->expires;
    out->loaded_at = s->loaded_at;
    copy_str(out->signer, sizeof out->signer, s->signer);
    copy_str(out->author, sizeof out->author, mxg_stlist_author(s->cur));
    out->n_policies = mxg_stlist_count(s->cur);
    out->n_aliases = s->cur->n_aliases;
    copy_str(out->source, sizeof out->source, s->source);
}
