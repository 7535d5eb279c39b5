/* policy/sts_parse.c — MTA-STS (RFC 8461) text formats: the _mta-sts TXT
 * record (§3.1), the policy file (§3.2), MX pattern matching (§4.1).
 * Pure functions: no I/O, no allocation, no locale (every character class
 * below is plain ASCII, so isalpha() & co. are deliberately not used).
 *
 * Grammar implemented (RFC 8461, RFC 5234 core rules WSP = SP / HTAB):
 *
 *   sts-text-record = sts-version 1*(sts-field-delim sts-field) [sts-field-delim]
 *   sts-field       = sts-id / sts-extension
 *   sts-field-delim = *WSP ";" *WSP
 *   sts-version     = %s"v=STSv1"
 *   sts-id          = %s"id=" 1*32(ALPHA / DIGIT)
 *   sts-extension   = sts-ext-name "=" sts-ext-value
 *   sts-ext-name    = (ALPHA / DIGIT) *31(ALPHA / DIGIT / "_" / "-" / ".")
 *   sts-ext-value   = 1*(%x21-3A / %x3C / %x3E-7E)
 *
 *   sts-policy-record = sts-policy-field *WSP *(sts-policy-term sts-policy-field *WSP)
 *                       [sts-policy-term]
 *   sts-policy-term   = LF / CRLF
 *   field             = name ":" *WSP value
 *   version: %s"STSv1"   mode: %s"testing" / %s"enforce" / %s"none"
 *   max_age: 1*10(DIGIT) mx: ["*."] Domain (RFC 5321 Domain, A-labels)
 *   extension names as sts-ext-name; extension values are ignored.
 *
 * Decisions where the RFC is silent or implementations differ (each one is
 * pinned by a row in tests/unit/test_policy_sts_parse.c):
 *
 * TXT record
 *  - "Starts with v=STSv1" means the version field is exactly "v=STSv1"
 *    (case-sensitive) followed by WSP, ";" or the end: "v=STSv10; id=1" is a
 *    different version token and is ignored like any non-STS record (0), so a
 *    future version published next to an STSv1 record does not break
 *    discovery. Leading whitespace before "v=" also makes a record non-STS.
 *  - Field names are case-sensitive (%s"id="): "ID=abc" is a well-formed
 *    extension field, so such a record lacks an id and is malformed.
 *  - A repeated id: the first one wins (as for repeated policy keys); every
 *    id field must still be syntactically valid.
 *  - Extension fields are validated against the grammar (an invalid one makes
 *    the record malformed) and otherwise ignored. Empty fields (";;") are
 *    malformed; one trailing ";" with optional WSP around it is allowed.
 *  - Trailing WSP after the last field without a ";" is tolerated (it would
 *    need a ";" by the grammar, but the intent is unambiguous).
 *  - Several records starting with v=STSv1 are always an error, even when
 *    only one of them is well-formed (§3.1: "if the number of resulting
 *    records is not one").
 *
 * Policy file
 *  - Lines end in LF or CRLF, mixed freely; the last line may lack one.
 *  - Empty lines (or lines of only WSP) are accepted only after the last
 *    field (a body ending "\n\n" or "\r\n\r\n" is common); an empty line
 *    between fields is rejected with its line number. A body with no field
 *    at all is rejected.
 *  - A UTF-8 byte-order mark before the first line is skipped.
 *  - Keys are case-sensitive and must match sts-ext-name; no whitespace
 *    before the key or before the ":". "Mode: enforce" is an unknown key
 *    (ignored), so the missing-"mode" error then names the look-alike.
 *  - Control characters (other than HTAB, and the CR of a CRLF) in a line
 *    are rejected; a NUL byte anywhere rejects the body.
 *  - Repeated version/mode/max_age: the first occurrence wins and later ones
 *    are not even looked at; the first one must be valid.
 *  - max_age: 1-10 digits (leading zeros allowed), 0 accepted, a value
 *    above 31557600 rejected (not clamped).
 *  - Unknown keys are ignored whatever their value (sts-policy-ext-value
 *    allows UTF-8).
 *  - mx: validated and stored even with mode none; any invalid pattern
 *    rejects the whole policy (silently dropping it would narrow the set of
 *    allowed MX hosts behind the domain owner's back). Duplicates (after
 *    lower-casing and dropping a trailing dot) are stored once; the
 *    MXG_STS_MAX_MX limit counts distinct patterns. Patterns past that limit
 *    are counted in mx_dropped and not kept: the policy stays in force for
 *    the hosts its first MXG_STS_MAX_MX patterns allow (stricter, never
 *    weaker — a policy read as invalid would mean "no policy").
 *  - mx pattern: LDH labels of 1-63 characters, no leading/trailing hyphen
 *    (RFC 5321 sub-domain), at most 253 characters including a leading "*.",
 *    a single trailing dot tolerated and dropped. IP literals are rejected:
 *    "[...]", anything with ":" made only of hex digits, ":" and ".", and any
 *    name whose last label is numeric (decimal, or 0x-hex) — which covers
 *    every form inet_aton() would accept ("192.0.2.1", "127.1",
 *    "2130706433", "0x7f.0.0.1"). "*.com" is accepted (the grammar allows
 *    it; it is the domain owner's own choice).
 *
 * Matching: exactly one trailing dot is dropped on each side; comparison is
 * ASCII case-insensitive; a host containing "*" never matches a wildcard.
 *
 * Formatting: the canonical text is written only if it fits entirely; if it
 * does not, 0 is returned and out is set to "" — a truncated policy (a
 * shorter mx list) must never be stored or reported as if it were whole. */
#include "policy/sts_parse.h"

#include "core/show.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* ------------------------------------------------------------ helpers */

static int is_alpha(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
static int is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}
static int is_alnum(unsigned char c)
{
    return is_alpha(c) || is_digit(c);
}
static int is_hex(unsigned char c)
{
    return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}
static int is_wsp(unsigned char c)
{
    return c == ' ' || c == '\t';
}
static unsigned char lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c - 'A' + 'a') : c;
}

static void set_why(char *why, size_t whycap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_why(char *why, size_t whycap, const char *fmt, ...)
{
    if (!why || whycap == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, whycap, fmt, ap);
    va_end(ap);
}


/* sts-ext-name = (ALPHA / DIGIT) *31(ALPHA / DIGIT / "_" / "-" / ".") */
static int valid_ext_name(const char *p, size_t n)
{
    if (n == 0 || n > 32 || !is_alnum((unsigned char)p[0]))
        return 0;
    for (size_t i = 1; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (!is_alnum(c) && c != '_' && c != '-' && c != '.')
            return 0;
    }
    return 1;
}

static int span_eq(const char *p, size_t n, const char *lit)
{
    size_t l = strlen(lit);
    return n == l && memcmp(p, lit, l) == 0;
}

static int span_ieq(const char *p, size_t n, const char *lit)
{
    size_t l = strlen(lit);
    if (n != l)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (lower((unsigned char)p[i]) != lower((unsigned char)lit[i]))
            return 0;
    return 1;
}

const char *mxg_sts_mode_name(enum mxg_sts_mode m)
{
    switch (m) {
    case MXG_STS_MODE_NONE:
        return "none";
    case MXG_STS_MODE_TESTING:
        return "testing";
    case MXG_STS_MODE_ENFORCE:
        return "enforce";
    }
    return "unknown";
}

static int mode_valid(enum mxg_sts_mode m)
{
    switch (m) {
    case MXG_STS_MODE_NONE:
    case MXG_STS_MODE_TESTING:
    case MXG_STS_MODE_ENFORCE:
        return 1;
    }
    return 0;
}

/* ------------------------------------------------------------ TXT record */

#define STS_VERSION "v=STSv1"
#define STS_VERSION_LEN (sizeof STS_VERSION - 1)

/* One "name=value" field (already stripped of surrounding WSP). */
static int txt_field(const char *f, size_t n, int fieldno, char id[MXG_STS_ID_MAX + 1],
                     int *have_id, char *why, size_t whycap)
{
    const char *eq = memchr(f, '=', n);
    if (!eq) {
        set_why(why, whycap, "field %d '%s': not name=value", fieldno, mxg_show(f, n).s);
        return -1;
    }
    size_t nl = (size_t)(eq - f);
    const char *v = eq + 1;
    size_t vl = n - nl - 1;

    if (span_eq(f, nl, "id")) {
        if (vl == 0) {
            set_why(why, whycap, "id is empty");
            return -1;
        }
        if (vl > MXG_STS_ID_MAX) {
            set_why(why, whycap, "id '%s' is %zu characters long (at most %d)", mxg_show(v, vl).s,
                    vl, MXG_STS_ID_MAX);
            return -1;
        }
        for (size_t i = 0; i < vl; i++) {
            if (!is_alnum((unsigned char)v[i])) {
                set_why(why, whycap, "id '%s': only letters and digits are allowed",
                        mxg_show(v, vl).s);
                return -1;
            }
        }
        if (!*have_id) { /* a repeated id: the first wins */
            memcpy(id, v, vl);
            id[vl] = '\0';
            *have_id = 1;
        }
        return 0;
    }

    if (!valid_ext_name(f, nl)) {
        set_why(why, whycap, "field %d: invalid field name '%s'", fieldno, mxg_show(f, nl).s);
        return -1;
    }
    if (vl == 0) {
        set_why(why, whycap, "field %d '%s': empty value", fieldno, mxg_show(f, nl).s);
        return -1;
    }
    for (size_t i = 0; i < vl; i++) {
        unsigned char c = (unsigned char)v[i];
        if (c < 0x21 || c > 0x7e || c == ';' || c == '=') {
            set_why(why, whycap, "field %d '%s': invalid character in value '%s'", fieldno,
                    mxg_show(f, nl).s, mxg_show(v, vl).s);
            return -1;
        }
    }
    return 0; /* an extension: ignored */
}

static int txt_parse(const char *txt, size_t len, char id[MXG_STS_ID_MAX + 1], char *why,
                     size_t whycap)
{
    if (!txt || len < STS_VERSION_LEN || memcmp(txt, STS_VERSION, STS_VERSION_LEN) != 0)
        return 0;
    size_t i = STS_VERSION_LEN;
    if (i < len && txt[i] != ';' && !is_wsp((unsigned char)txt[i]))
        return 0; /* "v=STSv10", "v=STSv1x": another version token */

    int have_id = 0, fieldno = 1; /* field 1 is v=STSv1 */
    for (;;) {
        /* sts-field-delim = *WSP ";" *WSP, or the end (trailing WSP tolerated) */
        while (i < len && is_wsp((unsigned char)txt[i]))
            i++;
        if (i == len)
            break;
        if (txt[i] != ';') {
            set_why(why, whycap, "field %d: expected ';' before '%s'", fieldno,
                    mxg_show(txt + i, len - i).s);
            return -1;
        }
        i++;
        while (i < len && is_wsp((unsigned char)txt[i]))
            i++;
        if (i == len)
            break; /* a trailing ";" */
        fieldno++;
        size_t start = i;
        while (i < len && txt[i] != ';' && !is_wsp((unsigned char)txt[i]))
            i++;
        if (i == start) {
            set_why(why, whycap, "field %d is empty", fieldno);
            return -1;
        }
        if (txt_field(txt + start, i - start, fieldno, id, &have_id, why, whycap) < 0)
            return -1;
    }
    if (!have_id) {
        set_why(why, whycap, "no id field");
        return -1;
    }
    return 1;
}

int mxg_sts_txt_parse(const char *txt, size_t len, char id[MXG_STS_ID_MAX + 1], char *why,
                      size_t whycap)
{
    char tmp_id[MXG_STS_ID_MAX + 1];
    if (!id)
        id = tmp_id;
    id[0] = '\0';
    if (why && whycap)
        why[0] = '\0';
    int rc = txt_parse(txt, len, id, why, whycap);
    if (rc != 1)
        id[0] = '\0'; /* never a half-parsed id */
    return rc;
}

int mxg_sts_txt_select(const char *const *txts, const size_t *lens, int n,
                       char id[MXG_STS_ID_MAX + 1], char *why, size_t whycap)
{
    char tmp_id[MXG_STS_ID_MAX + 1];
    if (!id)
        id = tmp_id;
    id[0] = '\0';
    if (why && whycap)
        why[0] = '\0';
    if (!txts || !lens || n <= 0)
        return 0;

    int found = -1, count = 0;
    for (int k = 0; k < n; k++) {
        if (!txts[k])
            continue;
        /* cheap pre-check with the same rule as mxg_sts_txt_parse() */
        if (mxg_sts_txt_parse(txts[k], lens[k], NULL, NULL, 0) != 0) {
            count++;
            if (found < 0)
                found = k;
        }
    }
    if (count == 0)
        return 0;
    if (count > 1) {
        set_why(why, whycap, "several MTA-STS TXT records (%d records start with v=STSv1)", count);
        return -1;
    }
    return mxg_sts_txt_parse(txts[found], lens[found], id, why, whycap);
}

/* ------------------------------------------------------------ mx patterns */

static int label_numeric(const char *p, size_t n)
{
    if (n == 0)
        return 0;
    if (n > 2 && p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) {
        for (size_t i = 2; i < n; i++)
            if (!is_hex((unsigned char)p[i]))
                return 0;
        return 1;
    }
    for (size_t i = 0; i < n; i++)
        if (!is_digit((unsigned char)p[i]))
            return 0;
    return 1;
}

/* Validate a policy mx value and write its stored form (lower-case, no
 * trailing dot) into dst[MXG_STS_NAME_MAX + 1]. */
static int mx_pattern_check(const char *p, size_t n, char *dst, char *why, size_t whycap)
{
    const char *orig = p;
    size_t orign = n;

    if (n > 0 && p[n - 1] == '.')
        n--; /* a single trailing dot is tolerated */
    if (n == 0) {
        set_why(why, whycap, "mx '%s': empty name", mxg_show(orig, orign).s);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)p[i] >= 0x80) {
            set_why(why, whycap,
                    "mx '%s': non-ASCII name (internationalized names must be A-labels, "
                    "xn--...)",
                    mxg_show(orig, orign).s);
            return -1;
        }
    }
    if (p[0] == '[' || p[n - 1] == ']') {
        set_why(why, whycap, "mx '%s': IP address literals are not allowed", mxg_show(orig, orign).s);
        return -1;
    }
    if (memchr(p, ':', n)) {
        int v6 = 1;
        for (size_t i = 0; i < n; i++)
            if (!is_hex((unsigned char)p[i]) && p[i] != ':' && p[i] != '.')
                v6 = 0;
        if (v6) {
            set_why(why, whycap, "mx '%s': IPv6 address literals are not allowed",
                    mxg_show(orig, orign).s);
            return -1;
        }
    }
    size_t o = 0;
    const char *name = p;
    size_t namen = n;
    if (n >= 1 && p[0] == '*') {
        if (n == 1) {
            set_why(why, whycap, "mx '%s': a bare '*' is not a pattern", mxg_show(orig, orign).s);
            return -1;
        }
        if (p[1] != '.') {
            set_why(why, whycap, "mx '%s': '*' must be the whole leftmost label (\"*.\" + name)",
                    mxg_show(orig, orign).s);
            return -1;
        }
        name = p + 2;
        namen = n - 2;
        if (namen == 0) {
            set_why(why, whycap, "mx '%s': no name after \"*.\"", mxg_show(orig, orign).s);
            return -1;
        }
    }
    if (n > 253) {
        set_why(why, whycap, "mx '%s': %zu characters long (at most 253)", mxg_show(orig, orign).s,
                n);
        return -1;
    }
    if (memchr(name, '*', namen)) {
        set_why(why, whycap, "mx '%s': '*' is allowed only as the whole leftmost label",
                mxg_show(orig, orign).s);
        return -1;
    }
    /* LDH labels: Let-dig [*(Let-dig / "-") Let-dig], 1-63 characters */
    size_t ls = 0, lastls = 0;
    for (size_t i = 0; i <= namen; i++) {
        if (i < namen && name[i] != '.') {
            unsigned char c = (unsigned char)name[i];
            if (!is_alnum(c) && c != '-') {
                set_why(why, whycap, "mx '%s': invalid character '%s'", mxg_show(orig, orign).s,
                        mxg_show(name + i, 1).s);
                return -1;
            }
            continue;
        }
        size_t ll = i - ls;
        if (ll == 0) {
            set_why(why, whycap, "mx '%s': empty label", mxg_show(orig, orign).s);
            return -1;
        }
        if (ll > 63) {
            set_why(why, whycap, "mx '%s': a label of %zu characters (at most 63)",
                    mxg_show(orig, orign).s, ll);
            return -1;
        }
        if (name[ls] == '-' || name[i - 1] == '-') {
            set_why(why, whycap, "mx '%s': label '%s' begins or ends with '-'",
                    mxg_show(orig, orign).s, mxg_show(name + ls, ll).s);
            return -1;
        }
        lastls = ls;
        ls = i + 1;
    }
    if (label_numeric(name + lastls, namen - lastls)) {
        set_why(why, whycap, "mx '%s': IP address literals are not allowed (numeric last label)",
                mxg_show(orig, orign).s);
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        dst[o++] = (char)lower((unsigned char)p[i]);
    dst[o] = '\0';
    return 0;
}

/* ------------------------------------------------------------ policy file */

struct seen_key {
    int line; /* 0: not seen */
    const char *val;
    size_t vlen;
};

/* For "missing X": mention a look-alike key in another case ("Mode"). */
struct lookalike {
    int line;
    char name[16];
};

static void note_lookalike(struct lookalike *la, const char *k, size_t kl, const char *want,
                           int line)
{
    if (la->line == 0 && !span_eq(k, kl, want) && span_ieq(k, kl, want)) {
        la->line = line;
        memcpy(la->name, k, kl);
        la->name[kl] = '\0';
    }
}

static void missing_key(const char *key, const struct lookalike *la, char *why, size_t whycap)
{
    if (la->line)
        set_why(why, whycap,
                "missing required key '%s' (line %d has '%s': keys are case-sensitive)", key,
                la->line, la->name);
    else
        set_why(why, whycap, "missing required key '%s'", key);
}

static int policy_fail(struct mxg_sts_policy *out)
{
    memset(out, 0, sizeof *out);
    return -1;
}

/* Contract: see sts_parse.h. */
void mxg_sts_policy_clear(struct mxg_sts_policy *p)
{
    p->mode = MXG_STS_MODE_NONE;
    p->max_age = 0;
    p->n_mx = 0;
    p->mx_dropped = 0;
}

/* Contract: see sts_parse.h (n_mx is clamped to the table). */
void mxg_sts_policy_copy(struct mxg_sts_policy *dst, const struct mxg_sts_policy *src)
{
    int n = src->n_mx < 0 ? 0 : src->n_mx > MXG_STS_MAX_MX ? MXG_STS_MAX_MX : src->n_mx;
    dst->mode = src->mode;
    dst->max_age = src->max_age;
    dst->n_mx = n;
    dst->mx_dropped = src->mx_dropped;
    memcpy(dst->mx, src->mx, (size_t)n * sizeof src->mx[0]);
}

int mxg_sts_policy_parse(const char *body, size_t len, struct mxg_sts_policy *out, char *why,
                         size_t whycap)
{
    if (why && whycap)
        why[0] = '\0';
    if (!out) {
        set_why(why, whycap, "no output");
        return -1;
    }
    mxg_sts_policy_clear(out);
    if (!body && len) {
        set_why(why, whycap, "no body");
        return -1;
    }
    if (len && memchr(body, '\0', len)) {
        size_t at = (size_t)((const char *)memchr(body, '\0', len) - body);
        set_why(why, whycap, "policy contains a NUL byte (offset %zu)", at);
        return -1;
    }

    struct seen_key version = {0, NULL, 0}, mode = {0, NULL, 0}, max_age = {0, NULL, 0};
    struct lookalike la_version = {0, ""}, la_mode = {0, ""}, la_max_age = {0, ""},
                     la_mx = {0, ""};
    int first_mx_line = 0;
    int empty_line = 0; /* the first empty line not yet followed by a field */
    int fields = 0;
    size_t i = 0;
    if (len >= 3 && memcmp(body, "\xEF\xBB\xBF", 3) == 0)
        i = 3; /* a UTF-8 byte-order mark */

    for (int line = 1; i < len; line++) {
        const char *l = body + i;
        const char *nl = memchr(l, '\n', len - i);
        size_t ll = nl ? (size_t)(nl - l) : len - i;
        i += ll + (nl ? 1 : 0);
        if (nl && ll > 0 && l[ll - 1] == '\r')
            ll--;

        size_t w = 0;
        while (w < ll && is_wsp((unsigned char)l[w]))
            w++;
        if (w == ll) { /* empty, or only WSP */
            if (!empty_line)
                empty_line = line;
            continue;
        }
        if (empty_line) {
            set_why(why, whycap, "line %d: empty line between fields", empty_line);
            return policy_fail(out);
        }
        for (size_t k = 0; k < ll; k++) {
            unsigned char c = (unsigned char)l[k];
            if ((c < 0x20 && c != '\t') || c == 0x7f) {
                set_why(why, whycap, "line %d: control character 0x%02x", line, c);
                return policy_fail(out);
            }
        }
        const char *colon = memchr(l, ':', ll);
        if (!colon) {
            set_why(why, whycap, "line %d: not \"key: value\" (no ':') in '%s'", line,
                    mxg_show(l, ll).s);
            return policy_fail(out);
        }
        const char *k = l;
        size_t kl = (size_t)(colon - l);
        if (kl == 0) {
            set_why(why, whycap, "line %d: empty key in '%s'", line, mxg_show(l, ll).s);
            return policy_fail(out);
        }
        if (!valid_ext_name(k, kl)) {
            set_why(why, whycap, "line %d: invalid key '%s'", line, mxg_show(k, kl).s);
            return policy_fail(out);
        }
        const char *v = colon + 1;
        size_t vl = ll - kl - 1;
        while (vl && is_wsp((unsigned char)v[0])) {
            v++;
            vl--;
        }
        while (vl && is_wsp((unsigned char)v[vl - 1]))
            vl--;
        fields++;

        struct seen_key *sk = NULL;
        if (span_eq(k, kl, "version"))
            sk = &version;
        else if (span_eq(k, kl, "mode"))
            sk = &mode;
        else if (span_eq(k, kl, "max_age"))
            sk = &max_age;
        if (sk) {
            if (sk->line == 0) { /* a repeated key: the first wins */
                sk->line = line;
                sk->val = v;
                sk->vlen = vl;
            }
            continue;
        }
        if (span_eq(k, kl, "mx")) {
            char pat[MXG_STS_NAME_MAX + 1];
            char pwhy[192];
            if (mx_pattern_check(v, vl, pat, pwhy, sizeof pwhy) < 0) {
                set_why(why, whycap, "line %d: %s", line, pwhy);
                return policy_fail(out);
            }
            if (!first_mx_line)
                first_mx_line = line;
            int dup = 0;
            for (int m = 0; m < out->n_mx; m++)
                if (strcmp(out->mx[m], pat) == 0)
                    dup = 1;
            if (dup)
                continue;
            if (out->n_mx >= MXG_STS_MAX_MX) { /* our limit, not the domain's error */
                out->mx_dropped++;
                continue;
            }
            memcpy(out->mx[out->n_mx++], pat, strlen(pat) + 1);
            continue;
        }
        note_lookalike(&la_version, k, kl, "version", line);
        note_lookalike(&la_mode, k, kl, "mode", line);
        note_lookalike(&la_max_age, k, kl, "max_age", line);
        note_lookalike(&la_mx, k, kl, "mx", line);
        /* any other key: an extension, ignored */
    }

    if (fields == 0) {
        set_why(why, whycap, "empty policy (no fields)");
        return policy_fail(out);
    }
    if (!version.line) {
        missing_key("version", &la_version, why, whycap);
        return policy_fail(out);
    }
    if (!span_eq(version.val, version.vlen, "STSv1")) {
        set_why(why, whycap, "line %d: version: unsupported value '%s' (want STSv1)", version.line,
                mxg_show(version.val, version.vlen).s);
        return policy_fail(out);
    }
    if (!mode.line) {
        missing_key("mode", &la_mode, why, whycap);
        return policy_fail(out);
    }
    if (span_eq(mode.val, mode.vlen, "enforce"))
        out->mode = MXG_STS_MODE_ENFORCE;
    else if (span_eq(mode.val, mode.vlen, "testing"))
        out->mode = MXG_STS_MODE_TESTING;
    else if (span_eq(mode.val, mode.vlen, "none"))
        out->mode = MXG_STS_MODE_NONE;
    else {
        set_why(why, whycap, "line %d: mode: unknown value '%s' (enforce, testing or none)",
                mode.line, mxg_show(mode.val, mode.vlen).s);
        return policy_fail(out);
    }
    if (!max_age.line) {
        missing_key("max_age", &la_max_age, why, whycap);
        return policy_fail(out);
    }
    {
        const char *a = max_age.val;
        size_t al = max_age.vlen;
        if (al == 0) {
            set_why(why, whycap, "line %d: max_age is empty", max_age.line);
            return policy_fail(out);
        }
        for (size_t k = 0; k < al; k++) {
            if (!is_digit((unsigned char)a[k])) {
                set_why(why, whycap, "line %d: max_age '%s' is not a number of seconds",
                        max_age.line, mxg_show(a, al).s);
                return policy_fail(out);
            }
        }
        if (al > 10) {
            set_why(why, whycap, "line %d: max_age '%s' has more than 10 digits", max_age.line,
                    mxg_show(a, al).s);
            return policy_fail(out);
        }
        uint64_t val = 0;
        for (size_t k = 0; k < al; k++)
            val = val * 10 + (uint64_t)(a[k] - '0');
        if (val > MXG_STS_MAX_AGE_LIMIT) {
            set_why(why, whycap, "line %d: max_age %llu exceeds %u", max_age.line,
                    (unsigned long long)val, MXG_STS_MAX_AGE_LIMIT);
            return policy_fail(out);
        }
        out->max_age = (uint32_t)val;
    }
    if (out->n_mx == 0 && out->mode != MXG_STS_MODE_NONE) {
        if (la_mx.line)
            set_why(why, whycap,
                    "no mx patterns with mode %s (line %d has '%s': keys are case-sensitive)",
                    mxg_sts_mode_name(out->mode), la_mx.line, la_mx.name);
        else
            set_why(why, whycap, "no mx patterns with mode %s", mxg_sts_mode_name(out->mode));
        return policy_fail(out);
    }
    return 0;
}

/* ------------------------------------------------------------ matching */

static size_t name_len(const char *s)
{
    size_t n = strlen(s);
    if (n > 0 && s[n - 1] == '.')
        n--;
    return n;
}

static int name_eq(const char *a, size_t an, const char *b, size_t bn)
{
    if (an != bn)
        return 0;
    for (size_t i = 0; i < an; i++)
        if (lower((unsigned char)a[i]) != lower((unsigned char)b[i]))
            return 0;
    return 1;
}

int mxg_sts_pattern_match(const char *pattern, const char *host)
{
    if (!pattern || !host)
        return 0;
    size_t pn = name_len(pattern), hn = name_len(host);
    if (pn == 0 || hn == 0 || memchr(host, '*', hn))
        return 0;
    if (pattern[0] == '*') {
        if (pn < 3 || pattern[1] != '.')
            return 0; /* "*", "*.", "*x": match nothing */
        /* host = one non-empty label "." rest, rest == pattern minus "*." */
        const char *dot = memchr(host, '.', hn);
        if (!dot || dot == host)
            return 0;
        size_t rest = hn - (size_t)(dot + 1 - host);
        return name_eq(dot + 1, rest, pattern + 2, pn - 2);
    }
    return name_eq(pattern, pn, host, hn);
}

int mxg_sts_mx_match(const struct mxg_sts_policy *p, const char *host)
{
    if (!p || !host)
        return 0;
    int n = p->n_mx < 0 ? 0 : p->n_mx > MXG_STS_MAX_MX ? MXG_STS_MAX_MX : p->n_mx;
    for (int i = 0; i < n; i++)
        if (mxg_sts_pattern_match(p->mx[i], host))
            return 1;
    return 0;
}

/* ------------------------------------------------------------ formatting */

struct sbuf {
    char *p;
    size_t cap, len;
    int overflow;
};

static void sb_add(struct sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_add(struct sbuf *b, const char *fmt, ...)
{
    if (b->overflow)
        return;
    va_list ap;
    va_start(ap, fmt);
    int r = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    if (r < 0 || (size_t)r >= b->cap - b->len) {
        b->overflow = 1;
        return;
    }
    b->len += (size_t)r;
}

size_t mxg_sts_policy_format(const struct mxg_sts_policy *p, char *out, size_t cap)
{
    if (!out || cap == 0)
        return 0;
    out[0] = '\0';
    if (!p || !mode_valid(p->mode) || p->n_mx < 0 || p->n_mx > MXG_STS_MAX_MX)
        return 0;
    struct sbuf b = {out, cap, 0, 0};
    sb_add(&b, "version: STSv1\nmode: %s\n", mxg_sts_mode_name(p->mode));
    for (int i = 0; i < p->n_mx; i++)
        sb_add(&b, "mx: %.*s\n", MXG_STS_NAME_MAX, p->mx[i]);
    sb_add(&b, "max_age: %lu\n", (unsigned long)p->max_age);
    if (b.overflow) {
        out[0] = '\0';
        return 0;
    }
    return b.len;
}
