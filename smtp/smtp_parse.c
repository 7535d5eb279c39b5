/* smtp/smtp_parse.c — see smtp_parse.h. Grammar references are RFC 5321
 * §4.1.2 (Path, Mailbox, Local-part), RFC 1870 (SIZE), RFC 6152 (8BITMIME),
 * RFC 6531 (SMTPUTF8), RFC 3461 (DSN), RFC 3463 (enhanced codes). */
#include "smtp_parse.h"

#include <ctype.h>
#include <idn2.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../core/str.h"

static const char *const verb_names[MXG_V__COUNT] = {
    "UNKNOWN", "EHLO", "HELO", "MAIL", "RCPT", "DATA", "RSET", "NOOP",
    "QUIT", "VRFY", "EXPN", "HELP", "STARTTLS", "AUTH", "BDAT",
};

const char *mxg_verb_name(enum mxg_verb v)
{
    return (unsigned)v < MXG_V__COUNT ? verb_names[v] : "?";
}

/* 1 if [p, p+len) is well-formed UTF-8 (no overlongs, no surrogates). */
static int utf8_valid(const unsigned char *p, size_t len)
{
    size_t i = 0;
    while (i < len) {
        unsigned c = p[i];
        size_t n;
        unsigned min;
        if (c < 0x80) { i++; continue; }
        else if ((c & 0xE0) == 0xC0) { n = 1; min = 0x80; c &= 0x1F; }
        else if ((c & 0xF0) == 0xE0) { n = 2; min = 0x800; c &= 0x0F; }
        else if ((c & 0xF8) == 0xF0) { n = 3; min = 0x10000; c &= 0x07; }
        else return 0;
        if (i + n >= len)
            return 0;
        for (size_t k = 1; k <= n; k++) {
            if ((p[i + k] & 0xC0) != 0x80)
                return 0;
            c = (c << 6) | (p[i + k] & 0x3F);
        }
        if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
            return 0;
        i += n + 1;
    }
    return 1;
}

int mxg_cmd_parse(const char *line, size_t len, struct mxg_cmd *out)
{
    memset(out, 0, sizeof *out);
    out->arg = "";
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)line[i];
        if (c == 0 || c == '\r' || c == '\n' || (c < 0x20 && c != '\t'))
            return MXG_PE_BAD_CHAR;
    }
    size_t v = 0;
    while (v < len && isalpha((unsigned char)line[v]))
        v++;
    if (v == 0 || v > 8)
        return MXG_PE_OK; /* UNKNOWN verb: caller replies 500 5.5.1 */
    if (v < len && line[v] != ' ')
        return MXG_PE_OK;
    static const enum mxg_verb verbs[] = {MXG_V_EHLO, MXG_V_HELO, MXG_V_MAIL, MXG_V_RCPT,
                                          MXG_V_DATA, MXG_V_RSET, MXG_V_NOOP, MXG_V_QUIT,
                                          MXG_V_VRFY, MXG_V_EXPN, MXG_V_HELP, MXG_V_STARTTLS,
                                          MXG_V_AUTH, MXG_V_BDAT};
    for (size_t k = 0; k < sizeof verbs / sizeof verbs[0]; k++) {
        const char *name = verb_names[verbs[k]];
        if (strlen(name) == v && strncasecmp(name, line, v) == 0) {
            out->verb = verbs[k];
            break;
        }
    }
    size_t a = v;
    while (a < len && line[a] == ' ')
        a++;
    size_t e = len;
    while (e > a && (line[e - 1] == ' ' || line[e - 1] == '\t'))
        e--;
    out->arg = line + a;
    out->arg_len = e - a;
    return MXG_PE_OK;
}

/* A plain host name (labels of [A-Za-z0-9_-], a trailing dot allowed) or
 * an address literal of [A-Za-z0-9.:]. */
static int helo_plain(const char *a, size_t n)
{
    if (n == 0 || n > MXG_DOMAIN_MAX)
        return 0;
    if (a[0] == '[') {
        if (n < 3 || a[n - 1] != ']')
            return 0;
        for (size_t i = 1; i + 1 < n; i++)
            if (!isalnum((unsigned char)a[i]) && a[i] != '.' && a[i] != ':')
                return 0;
        return 1;
    }
    size_t label = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)a[i];
        if (c == '.') {
            if (label == 0)
                return 0; /* empty label (a lone trailing dot ends the loop) */
            label = 0;
        } else if (c < 0x80 && (isalnum(c) || c == '-' || c == '_')) {
            if (++label > 63)
                return 0;
        } else {
            return 0;
        }
    }
    return 1;
}

enum mxg_helo_class mxg_helo_classify(const char *arg, size_t n, char *shown, size_t cap)
{
    const unsigned char *a = (const unsigned char *)arg;
    enum mxg_helo_class cls = helo_plain(arg, n) ? MXG_HELO_NAME : MXG_HELO_ODD;
    if (n == 0 || !utf8_valid(a, n))
        cls = MXG_HELO_BAD;
    for (size_t i = 0; i < n; i++)
        if (a[i] < 0x20 || a[i] == 0x7f)
            cls = MXG_HELO_BAD;
    size_t o = 0, max = cls == MXG_HELO_NAME ? n : n < 64 ? n : 64;
    for (size_t i = 0; i < max && o + 1 < cap; i++) {
        unsigned char c = a[i];
        int keep = c < 0x80 && (isalnum(c) || strchr(".-_:[]", c) != NULL) && c != 0;
        shown[o++] = keep ? (char)c : '?';
    }
    if (max < n && o + 4 <= cap) {
        memcpy(shown + o, "...", 3);
        o += 3;
    }
    if (cap)
        shown[o < cap ? o : cap - 1] = '\0';
    return cls;
}

/* Copy src into dst[cap] if it fits; 0, or -1 (dst untouched) if not. */
static int copy_fit(char *dst, size_t cap, const char *src)
{
    size_t n = strlen(src);
    if (n >= cap)
        return -1;
    memcpy(dst, src, n + 1);
    return 0;
}

static int is_atext(unsigned char c)
{
    /* (c != 0: strchr finds the terminating NUL, which is no atext) */
    return isalnum(c) || (c != 0 && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

/* Local-part = Dot-string / Quoted-string. Returns chars consumed or -1. */
static long parse_local(const char *s, size_t len, int *utf8)
{
    size_t i = 0;
    if (len > 0 && s[0] == '"') {
        i = 1;
        while (i < len && s[i] != '"') {
            unsigned char c = (unsigned char)s[i];
            if (c == '\\') {
                if (i + 1 >= len || (unsigned char)s[i + 1] < 32 || (unsigned char)s[i + 1] > 126)
                    return -1;
                i += 2;
                continue;
            }
            if (c >= 0x80)
                *utf8 = 1;
            else if (c < 32 || c > 126)
                return -1;
            i++;
        }
        if (i >= len)
            return -1;
        return (long)(i + 1);
    }
    int need_atom = 1;
    while (i < len) {
        unsigned char c = (unsigned char)s[i];
        if (c == '.') {
            if (need_atom)
                return -1;
            need_atom = 1;
        } else if (is_atext(c) || c >= 0x80) {
            if (c >= 0x80)
                *utf8 = 1;
            need_atom = 0;
        } else {
            break;
        }
        i++;
    }
    if (i == 0 || need_atom)
        return -1;
    return (long)i;
}

int mxg_domain_valid(const char *s, size_t len, int utf8_ok)
{
    if (len == 0 || len > MXG_DOMAIN_MAX)
        return 0;
    size_t label = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '.') {
            if (label == 0 || s[i - 1] == '-')
                return 0;
            label = 0;
            continue;
        }
        if (c >= 0x80) {
            if (!utf8_ok)
                return 0;
        } else if (c == '-') {
            if (label == 0)
                return 0;
        } else if (!isalnum(c)) {
            return 0;
        }
        if (++label > 63)
            return 0;
    }
    if (label == 0 || s[len - 1] == '-')
        return 0;
    if (utf8_ok && !utf8_valid((const unsigned char *)s, len))
        return 0;
    return 1;
}

/* address-literal: "[" ( IPv4 / "IPv6:" addr / tag ":" text ) "]" */
static long parse_literal(const char *s, size_t len)
{
    if (len < 3 || s[0] != '[')
        return -1;
    size_t i = 1;
    while (i < len && s[i] != ']') {
        unsigned char c = (unsigned char)s[i];
        if (c < 33 || c > 126 || c == '[' || c == '\\')
            return -1;
        i++;
    }
    if (i >= len || i == 1)
        return -1;
    return (long)(i + 1);
}

static int parse_params(const char *s, size_t len, struct mxg_path *out)
{
    size_t i = 0;
    while (i < len) {
        if (s[i] != ' ')
            return MXG_PE_SYNTAX;
        while (i < len && s[i] == ' ')
            i++;
        if (i >= len)
            break;
        if (out->n_params >= MXG_PARAMS_MAX)
            return MXG_PE_PARAM;
        struct mxg_param *p = &out->params[out->n_params];
        size_t k = 0;
        if (!isalnum((unsigned char)s[i]))
            return MXG_PE_PARAM;
        while (i < len && (isalnum((unsigned char)s[i]) || s[i] == '-')) {
            if (k + 1 >= sizeof p->key)
                return MXG_PE_PARAM;
            p->key[k++] = (char)toupper((unsigned char)s[i]);
            i++;
        }
        p->key[k] = 0;
        p->has_value = 0;
        p->value[0] = 0;
        if (i < len && s[i] == '=') {
            i++;
            size_t v = 0;
            while (i < len && s[i] != ' ') {
                unsigned char c = (unsigned char)s[i];
                if (c == '=' || (c < 33 && c != 0) || c == 127 || c == 0)
                    return MXG_PE_PARAM;
                if (v + 1 >= sizeof p->value)
                    return MXG_PE_PARAM;
                p->value[v++] = (char)c;
                i++;
            }
            if (v == 0)
                return MXG_PE_PARAM;
            p->value[v] = 0;
            p->has_value = 1;
        } else if (i < len && s[i] != ' ') {
            return MXG_PE_PARAM;
        }
        for (int d = 0; d < out->n_params; d++)
            if (strcmp(out->params[d].key, p->key) == 0)
                return MXG_PE_PARAM; /* duplicate */
        out->n_params++;
    }
    return MXG_PE_OK;
}

/* Contract: see smtp_parse.h. */
void mxg_path_clear(struct mxg_path *p)
{
    p->addr[0] = '\0';
    p->domain[0] = '\0';
    p->utf8 = 0;
    p->n_params = 0;
}

int mxg_path_parse(const char *arg, size_t len, int is_mail, struct mxg_path *out)
{
    mxg_path_clear(out);
    const char *kw = is_mail ? "FROM:" : "TO:";
    size_t kwlen = strlen(kw);
    if (len < kwlen || strncasecmp(arg, kw, kwlen) != 0)
        return MXG_PE_SYNTAX;
    size_t i = kwlen;
    while (i < len && arg[i] == ' ')
        i++; /* tolerated: "MAIL FROM: <a@b>" */
    if (i >= len || arg[i] != '<')
        return MXG_PE_PATH;
    size_t start = ++i;
    const char *s = arg + start;
    size_t rest = len - start;
    /* the null path */
    if (rest >= 1 && s[0] == '>') {
        if (!is_mail)
            return MXG_PE_PATH;
        return parse_params(s + 1, rest - 1, out);
    }
    /* source route "@a,@b:" is ignored (RFC 5321 §4.1.2, C.) */
    size_t j = 0;
    if (rest > 0 && s[0] == '@') { /* (rest 0: "FROM:<" ends the line) */
        while (j < rest && s[j] != ':' && s[j] != '>')
            j++;
        if (j >= rest || s[j] != ':')
            return MXG_PE_PATH;
        j++;
    }
    int utf8 = 0;
    long l = parse_local(s + j, rest - j, &utf8);
    if (l < 0 || l > MXG_LOCAL_MAX + 2)
        return MXG_PE_PATH;
    size_t at = j + (size_t)l;
    if (at >= rest)
        return MXG_PE_PATH;
    if (s[at] == '>') {
        if (is_mail)
            return MXG_PE_PATH;
        /* "RCPT TO:<Postmaster>" is legal SMTP but has no domain to relay to */
        return MXG_PE_NODOMAIN;
    }
    if (s[at] != '@')
        return MXG_PE_PATH;
    size_t d = at + 1, e = d;
    int literal = 0;
    if (d < rest && s[d] == '[') {
        long ll = parse_literal(s + d, rest - d);
        if (ll < 0)
            return MXG_PE_PATH;
        e = d + (size_t)ll;
        literal = 1;
    } else {
        while (e < rest && s[e] != '>')
            e++;
        if (!mxg_domain_valid(s + d, e - d, 1))
            return MXG_PE_PATH;
        for (size_t k = d; k < e; k++)
            if ((unsigned char)s[k] >= 0x80)
                utf8 = 1;
    }
    if (e >= rest || s[e] != '>')
        return MXG_PE_PATH;
    size_t addrlen = e - j;
    if (addrlen + 2 > MXG_PATH_MAX)
        return MXG_PE_PATH;
    if (utf8 && !utf8_valid((const unsigned char *)s + j, addrlen))
        return MXG_PE_PATH;
    memcpy(out->addr, s + j, addrlen);
    out->addr[addrlen] = 0;
    if (!literal) {
        for (size_t k = d; k < e; k++)
            out->domain[k - d] = (char)tolower((unsigned char)s[k]);
        out->domain[e - d] = 0;
    }
    out->utf8 = utf8;
    int rc = parse_params(s + e + 1, rest - e - 1, out);
    if (rc != MXG_PE_OK)
        return rc;
    if (literal && !is_mail)
        return MXG_PE_LITERAL;
    return MXG_PE_OK;
}

/* xtext (RFC 3461 §4): "+" HEX HEX or chars 33..126 except '+' and '='. */
static int xtext_valid(const char *s)
{
    for (size_t i = 0; s[i]; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '+') {
            if (!isxdigit((unsigned char)s[i + 1]) || !isxdigit((unsigned char)s[i + 2]))
                return 0;
            if (islower((unsigned char)s[i + 1]) || islower((unsigned char)s[i + 2]))
                return 0;
            i += 2;
        } else if (c < 33 || c > 126 || c == '=') {
            return 0;
        }
    }
    return 1;
}

int mxg_mail_params_check(const struct mxg_path *p, struct mxg_mail_params *out)
{
    memset(out, 0, sizeof *out);
    for (int i = 0; i < p->n_params; i++) {
        const struct mxg_param *pr = &p->params[i];
        if (strcmp(pr->key, "SIZE") == 0) {
            if (!pr->has_value || strlen(pr->value) > 20)
                return MXG_PE_PARAM;
            for (const char *c = pr->value; *c; c++)
                if (!isdigit((unsigned char)*c))
                    return MXG_PE_PARAM;
            out->size = strtoull(pr->value, NULL, 10);
        } else if (strcmp(pr->key, "BODY") == 0) {
            if (!pr->has_value)
                return MXG_PE_PARAM;
            if (strcasecmp(pr->value, "7BIT") == 0)
                out->body = MXG_BODY_7BIT;
            else if (strcasecmp(pr->value, "8BITMIME") == 0)
                out->body = MXG_BODY_8BITMIME;
            else
                return MXG_PE_UNKNOWN_PARAM; /* BINARYMIME needs CHUNKING */
        } else if (strcmp(pr->key, "SMTPUTF8") == 0) {
            if (pr->has_value)
                return MXG_PE_PARAM;
            out->smtputf8 = 1;
        } else if (strcmp(pr->key, "RET") == 0) {
            if (!pr->has_value)
                return MXG_PE_PARAM;
            if (strcasecmp(pr->value, "FULL") == 0)
                strcpy(out->ret, "FULL");
            else if (strcasecmp(pr->value, "HDRS") == 0)
                strcpy(out->ret, "HDRS");
            else
                return MXG_PE_PARAM;
        } else if (strcmp(pr->key, "ENVID") == 0) {
            if (!pr->has_value || strlen(pr->value) > 100 || !xtext_valid(pr->value))
                return MXG_PE_PARAM;
            if (copy_fit(out->envid, sizeof out->envid, pr->value) < 0)
                return MXG_PE_PARAM;
        } else {
            return MXG_PE_UNKNOWN_PARAM;
        }
    }
    return MXG_PE_OK;
}

int mxg_rcpt_params_check(const struct mxg_path *p, struct mxg_rcpt_params *out)
{
    memset(out, 0, sizeof *out);
    for (int i = 0; i < p->n_params; i++) {
        const struct mxg_param *pr = &p->params[i];
        if (strcmp(pr->key, "NOTIFY") == 0) {
            char tmp[64];
            if (!pr->has_value || copy_fit(tmp, sizeof tmp, pr->value) < 0)
                return MXG_PE_PARAM;
            int never = 0, other = 0;
            char *save = NULL;
            for (char *tok = strtok_r(tmp, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
                if (strcasecmp(tok, "NEVER") == 0)
                    never++;
                else if (strcasecmp(tok, "SUCCESS") == 0 || strcasecmp(tok, "FAILURE") == 0 ||
                         strcasecmp(tok, "DELAY") == 0)
                    other++;
                else
                    return MXG_PE_PARAM;
            }
            if ((never && other) || never > 1 || (!never && !other))
                return MXG_PE_PARAM;
            memcpy(out->notify, pr->value, strlen(pr->value) + 1);
        } else if (strcmp(pr->key, "ORCPT") == 0) {
            const char *semi = strchr(pr->value, ';');
            if (!pr->has_value || !semi || semi == pr->value || !xtext_valid(semi + 1) ||
                semi[1] == 0)
                return MXG_PE_PARAM;
            if (copy_fit(out->orcpt, sizeof out->orcpt, pr->value) < 0)
                return MXG_PE_PARAM;
        } else {
            return MXG_PE_UNKNOWN_PARAM;
        }
    }
    return MXG_PE_OK;
}

int mxg_domain_alabel(const char *domain, char *out, size_t cap)
{
    int ascii = 1;
    for (const char *c = domain; *c; c++)
        if ((unsigned char)*c >= 0x80)
            ascii = 0;
    if (ascii) {
        if (copy_fit(out, cap, domain) < 0)
            return -1;
    } else {
        char *a = NULL;
        if (idn2_to_ascii_8z(domain, &a, IDN2_NONTRANSITIONAL | IDN2_NFC_INPUT) != IDN2_OK) {
            idn2_free(a);
            return -1;
        }
        int rc = copy_fit(out, cap, a);
        idn2_free(a);
        if (rc < 0)
            return -1;
        /* UTS #46 maps some code points to ASCII that is no host name:
         * U+00A0 to a space, U+FF0F to '/', U+FF0E and U+3002 to '.' (an empty
         * or a trailing label). The result must be an LDH name, with a trailing
         * dot only where the input had one. (libidn2's IDN2_USE_STD3_ASCII_RULES
         * is no help: 2.3.3 drops such characters: x, U+FF0F, y becomes "xy".) */
        size_t n = strlen(out), in = strlen(domain);
        if (n > 0 && out[n - 1] == '.' && in > 0 && domain[in - 1] == '.')
            n--;
        if (!mxg_domain_valid(out, n, 0))
            return -1;
    }
    for (char *c = out; *c; c++)
        *c = (char)tolower((unsigned char)*c);
    return 0;
}

int mxg_parse_error_reply(int err, const char **enh, const char **text)
{
    switch (err) {
    case MXG_PE_TOO_LONG: *enh = "5.5.2"; *text = "Line too long"; return 500;
    case MXG_PE_BAD_CHAR: *enh = "5.5.2"; *text = "Invalid character in command line"; return 500;
    case MXG_PE_PATH: *enh = "5.1.3"; *text = "Bad address syntax"; return 501;
    case MXG_PE_PARAM: *enh = "5.5.4"; *text = "Invalid command parameter"; return 501;
    case MXG_PE_UNKNOWN_PARAM: *enh = "5.5.4"; *text = "Unsupported command parameter"; return 555;
    case MXG_PE_UTF8: *enh = "5.6.7"; *text = "Non-ASCII address requires SMTPUTF8"; return 553;
    case MXG_PE_LITERAL: *enh = "5.1.2"; *text = "Address literals are not relayed"; return 553;
    case MXG_PE_NODOMAIN: *enh = "5.1.3"; *text = "Recipient address must have a domain"; return 553;
    default: *enh = "5.5.2"; *text = "Syntax error"; return 501;
    }
}

/* ---- replies ---- */

int mxg_reply_line_split(const char *buf, size_t avail, size_t *len, size_t *consume)
{
    const char *nl = memchr(buf, '\n', avail);
    if (!nl) {
        /* MXG_REPLY_LINE_MAX octets and a CR may still end well; more cannot */
        if (avail > MXG_REPLY_LINE_MAX + 1 ||
            (avail == MXG_REPLY_LINE_MAX + 1 && buf[avail - 1] != '\r'))
            return MXG_PE_TOO_LONG;
        return 0;
    }
    size_t ll = (size_t)(nl - buf);
    *consume = ll + 1;
    if (ll > 0 && buf[ll - 1] == '\r')
        ll--;
    if (ll > MXG_REPLY_LINE_MAX)
        return MXG_PE_TOO_LONG;
    *len = ll;
    return 1;
}

void mxg_reply_parser_reset(struct mxg_reply_parser *p)
{
    mxg_reply_clear(&p->r);
    p->text_len = 0;
    p->in_progress = 0;
}

/* Contract: see smtp_parse.h. */
void mxg_reply_clear(struct mxg_reply *r)
{
    r->code = 0;
    r->enh[0] = '\0';
    r->no_enh = 0;
    r->n_lines = 0;
    r->text[0] = '\0';
}

/* Length of an enhanced status code "c.s.d" (class 2, 4 or 5) at s,
 * followed by a space or the end; 0 if none. */
static size_t enh_len(const char *s, size_t len)
{
    if (len < 5 || (s[0] != '2' && s[0] != '4' && s[0] != '5') || s[1] != '.')
        return 0;
    size_t i = 2, n = 0;
    while (i < len && isdigit((unsigned char)s[i]) && n < 3) { i++; n++; }
    if (n == 0 || i >= len || s[i] != '.')
        return 0;
    i++;
    n = 0;
    while (i < len && isdigit((unsigned char)s[i]) && n < 3) { i++; n++; }
    if (n == 0 || (i < len && s[i] != ' '))
        return 0;
    return i;
}

int mxg_reply_feed(struct mxg_reply_parser *p, const char *line, size_t len)
{
    if (len < 3 || line[0] < '2' || line[0] > '5' || !isdigit((unsigned char)line[1]) ||
        !isdigit((unsigned char)line[2]) || (len > 3 && line[3] != ' ' && line[3] != '-'))
        return MXG_PE_SYNTAX;
    int code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
    int last = (len == 3 || line[3] == ' ');
    if (!p->in_progress) {
        mxg_reply_parser_reset(p);
        p->in_progress = 1;
        p->r.code = code;
    } else if (code != p->r.code) {
        mxg_reply_parser_reset(p);
        return MXG_PE_SYNTAX;
    }
    if (p->r.n_lines >= MXG_REPLY_LINES_MAX) {
        mxg_reply_parser_reset(p);
        return MXG_PE_SYNTAX;
    }
    const char *t = len > 4 ? line + 4 : "";
    size_t tl = len > 4 ? len - 4 : 0;
    size_t el = enh_len(t, tl);
    if (el) { /* kept only if its class matches the code; render derives one otherwise */
        if (p->r.n_lines == 0 && t[0] == line[0]) { /* as "%.*s" would (no vsnprintf per reply) */
            size_t k = el < sizeof p->r.enh - 1 ? el : sizeof p->r.enh - 1;
            memcpy(p->r.enh, t, k);
            p->r.enh[k] = 0;
        }
        t += el;
        tl -= el;
        while (tl > 0 && *t == ' ') { t++; tl--; }
    }
    /* Room for this line's text: what is left before the NUL, minus this
     * line's separator and one octet for each separator still possible
     * (MXG_REPLY_LINES_MAX lines at most), so later lines always have room
     * for theirs and the count never goes below zero. */
    size_t sep = p->r.n_lines > 0;
    size_t reserve = (size_t)(MXG_REPLY_LINES_MAX - 1 - p->r.n_lines);
    size_t room = sizeof p->r.text - 1 - p->text_len - sep - reserve;
    if (tl > room)
        tl = room;
    if (sep)
        p->r.text[p->text_len++] = '\n';
    for (size_t i = 0; i < tl; i++) { /* only printable US-ASCII travels on to the client */
        unsigned char c = (unsigned char)t[i];
        p->r.text[p->text_len++] = c >= 128 ? '?' : (c < 32 || c == 127) ? ' ' : (char)c;
    }
    p->r.text[p->text_len] = 0;
    p->r.n_lines++;
    if (last) {
        p->in_progress = 0;
        return 1;
    }
    return 0;
}

void mxg_reply_set(struct mxg_reply *r, int code, const char *enh, const char *fmt, ...)
{
    r->code = code;
    mxg_str_copy(r->enh, sizeof r->enh, enh); /* NULL: "" */
    r->no_enh = r->enh[0] == 0;
    va_list ap;
    va_start(ap, fmt);
    mxg_str_vformat(r->text, sizeof r->text, fmt, ap);
    va_end(ap);
    r->n_lines = 1;
    for (char *c = r->text; *c; c++) {
        if (*c == '\n')
            r->n_lines++;
        else if ((unsigned char)*c < 32)
            *c = ' ';
    }
}

/* The three digits of a reply code 0..999 ("%03d") into out[0..2]; other
 * values (never made by the parser or mxg_reply_set's callers) give "???". */
static void code3(int code, char *out)
{
    if (code < 0 || code > 999) {
        memcpy(out, "???", 3);
        return;
    }
    out[0] = (char)('0' + code / 100);
    out[1] = (char)('0' + code / 10 % 10);
    out[2] = (char)('0' + code % 10);
}

size_t mxg_reply_render(const struct mxg_reply *r, char *out, size_t cap)
{
    char enh[16];
    int cls = r->code / 100;
    if (r->no_enh || cls == 3)
        enh[0] = 0;
    else if (r->enh[0] == '0' + cls)
        mxg_str_copy(enh, sizeof enh, r->enh);
    else
        snprintf(enh, sizeof enh, "%d.0.0", cls);
    size_t el = strlen(enh);
    size_t n = 0;
    const char *line = r->text;
    if (cap < 16)
        return 0;
    for (;;) {
        const char *nl = strchr(line, '\n');
        size_t ll = nl ? (size_t)(nl - line) : strlen(line);
        char head[32]; /* "%03d%c%s%s": code, '-' or ' ', enh, ' ' before text */
        int hl = 4;
        code3(r->code, head);
        head[3] = nl ? '-' : ' ';
        memcpy(head + hl, enh, el);
        hl += (int)el;
        if (ll && el)
            head[hl++] = ' ';
        if (n + (size_t)hl + 2 >= cap)
            break;
        if (ll > cap - n - (size_t)hl - 3)
            ll = cap - n - (size_t)hl - 3;
        if ((size_t)hl + ll + 2 > MXG_REPLY_WIRE_MAX)
            ll = MXG_REPLY_WIRE_MAX - 2 - (size_t)hl;
        memcpy(out + n, head, (size_t)hl);
        n += (size_t)hl;
        for (size_t i = 0; i < ll; i++) {
            unsigned char c = (unsigned char)line[i];
            out[n++] = (c < 32 || c >= 127) ? '?' : (char)c;
        }
        out[n++] = '\r';
        out[n++] = '\n';
        if (!nl)
            break;
        line = nl + 1;
    }
    return n;
}

void mxg_reply_summary(const struct mxg_reply *r, char *out, size_t cap)
{
    /* "%03d%s%s %.*s": code, " enh" when there is one, ' ', the first line;
     * cut to cap - 1 octets like snprintf */
    if (cap == 0)
        return;
    const char *nl = strchr(r->text, '\n');
    size_t ll = nl ? (size_t)(nl - r->text) : strlen(r->text);
    char head[24];
    size_t hl = 3;
    code3(r->code, head);
    size_t el = strnlen(r->enh, sizeof r->enh - 1);
    if (el) {
        head[hl++] = ' ';
        memcpy(head + hl, r->enh, el);
        hl += el;
    }
    head[hl++] = ' ';
    size_t n = hl < cap - 1 ? hl : cap - 1;
    memcpy(out, head, n);
    size_t t = ll < cap - 1 - n ? ll : cap - 1 - n;
    memcpy(out + n, r->text, t);
    out[n + t] = '\0';
}

void mxg_caps_parse(const struct mxg_reply *ehlo, struct mxg_caps *out)
{
    memset(out, 0, sizeof *out);
    out->esmtp = 1;
    const char *line = ehlo->text;
    int first = 1;
    while (line && *line) {
        const char *nl = strchr(line, '\n');
        size_t ll = nl ? (size_t)(nl - line) : strlen(line);
        if (!first) {
            char kw[32];
            size_t k = 0;
            while (k < ll && k + 1 < sizeof kw && line[k] != ' ' && line[k] != '=') {
                kw[k] = (char)toupper((unsigned char)line[k]);
                k++;
            }
            kw[k] = 0;
            if (strcmp(kw, "STARTTLS") == 0) out->starttls = 1;
            else if (strcmp(kw, "PIPELINING") == 0) out->pipelining = 1;
            else if (strcmp(kw, "8BITMIME") == 0) out->eightbit = 1;
            else if (strcmp(kw, "SMTPUTF8") == 0) out->smtputf8 = 1;
            else if (strcmp(kw, "DSN") == 0) out->dsn = 1;
            else if (strcmp(kw, "ENHANCEDSTATUSCODES") == 0) out->enhanced = 1;
            else if (strcmp(kw, "CHUNKING") == 0) out->chunking = 1;
            else if (strcmp(kw, "SIZE") == 0) {
                out->size = 1;
                if (k < ll)
                    out->size_limit = strtoull(line + k + 1, NULL, 10);
            }
        }
        first = 0;
        line = nl ? nl + 1 : NULL;
    }
}
