/* report/rpt_txt.c — the "_smtp._tls" TXT record (RFC 8460 §3), pure:
 *
 *   tlsrpt-record    = tlsrpt-version 1*(field-delim tlsrpt-field) [field-delim]
 *   field-delim      = *WSP ";" *WSP
 *   tlsrpt-field     = tlsrpt-rua / tlsrpt-extension
 *   tlsrpt-version   = %s"v=TLSRPTv1"
 *   tlsrpt-rua       = %s"rua=" tlsrpt-uri *(*WSP "," *WSP tlsrpt-uri)
 *   tlsrpt-uri       = URI  ; ',' '!' ';' in it MUST be %-encoded
 *   tlsrpt-extension = tlsrpt-ext-name "=" tlsrpt-ext-value
 *   tlsrpt-ext-name  = (ALPHA / DIGIT) *31(ALPHA / DIGIT / "_" / "-" / ".")
 *   tlsrpt-ext-value = 1*(%x21-3A / %x3C / %x3E-7E)
 *
 * Leniency beyond the grammar (harmless, documented in tlsrpt.h): empty
 * fields (";;"), whitespace around "=", a second rua field (its URIs are
 * added). Field names are case-sensitive (%s), so "RUA=" is an unknown
 * extension. Strict: a field that is not name=value, an extension whose
 * name or value breaks the grammar, an empty rua. */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "core/hex.h"
#include "core/show.h"
#include "rpt_int.h"

#define VERSION_TAG "v=TLSRPTv1"
#define VERSION_LEN (sizeof VERSION_TAG - 1)

static int is_wsp(char c)
{
    return c == ' ' || c == '\t';
}

static int is_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* Append "; text" to why (or "text" when why is empty), truncating. */
static void why_add(char *why, size_t whylen, const char *text)
{
    size_t n;
    if (!why || whylen == 0)
        return;
    n = strlen(why);
    snprintf(why + n, whylen - n, "%s%s", n ? "; " : "", text);
}

/* 1 if txt starts with "v=TLSRPTv1" followed by the end, WSP or ';'. */
static int is_tlsrpt(const char *txt, size_t len)
{
    return txt && len >= VERSION_LEN && memcmp(txt, VERSION_TAG, VERSION_LEN) == 0 &&
           (len == VERSION_LEN || is_wsp(txt[VERSION_LEN]) || txt[VERSION_LEN] == ';');
}

/* One URI (u[0..n), already trimmed) of a rua list. Returns 1 and writes
 * the decoded URI to out when it is usable, else 0 with a note in why. */
static int take_uri(const char *u, size_t n, char out[MXG_RPT_RUA_MAX], char *why, size_t whylen)
{
    char note[MXG_RPT_RUA_MAX + 96];
    size_t o = 0, slen;
    const char *colon;

    if (n == 0) {
        why_add(why, whylen, "empty URI in rua ignored");
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)u[i];
        if (c <= 0x20 || c >= 0x7f || c == '!') {
            /* quoted through mxg_show: the URI's control octets must not reach a log line */
            snprintf(note, sizeof note, "rua URI \"%s\" ignored: %s", mxg_show(u, n).s,
                     c == '!' ? "unencoded '!' (RFC 8460 §3: use %21)"
                              : "space, control or non-ASCII character");
            why_add(why, whylen, note);
            return 0;
        }
    }
    colon = memchr(u, ':', n);
    slen = colon ? (size_t)(colon - u) : 0;
    if (!(slen == 6 && strncasecmp(u, "mailto", 6) == 0) &&
        !(slen == 5 && strncasecmp(u, "https", 5) == 0)) {
        snprintf(note, sizeof note, "rua URI \"%.*s\" ignored: scheme is not mailto: or https:",
                 (int)(n > 200 ? 200 : n), u);
        why_add(why, whylen, note);
        return 0;
    }
    /* decode exactly the three escapes §3 requires; keep every other one */
    for (size_t i = 0; i < n; i++) {
        char c = u[i];
        if (c == '%' && i + 2 < n && mxg_hex_val(u[i + 1]) >= 0 && mxg_hex_val(u[i + 2]) >= 0) {
            int v = mxg_hex_val(u[i + 1]) * 16 + mxg_hex_val(u[i + 2]);
            if (v == ',' || v == '!' || v == ';') {
                c = (char)v;
                i += 2;
            }
        }
        if (o + 1 >= MXG_RPT_RUA_MAX) {
            snprintf(note, sizeof note, "rua URI \"%.60s...\" ignored: longer than %d bytes", u,
                     MXG_RPT_RUA_MAX - 1);
            why_add(why, whylen, note);
            return 0;
        }
        out[o++] = c;
    }
    out[o] = '\0';
    /* the part after the scheme must say where to: an address or a host */
    if (slen == 6 ? !strchr(out + 7, '@') || out[7] == '@'
                  : strncmp(out + 6, "//", 2) != 0 || !out[8] || out[8] == '/') {
        snprintf(note, sizeof note, "rua URI \"%.200s\" ignored: no %s", out,
                 slen == 6 ? "mail address" : "host");
        why_add(why, whylen, note);
        return 0;
    }
    return 1;
}

/* Contract: see tlsrpt.h. */
int mxg_rpt_txt_parse(const char *txt, size_t len, char ruas[][MXG_RPT_RUA_MAX], int max,
                      char *why, size_t whylen)
{
    size_t p = VERSION_LEN;
    int n = 0, rua_fields = 0, dropped_max = 0;
    char note[160];

    if (why && whylen)
        why[0] = '\0';
    if (!is_tlsrpt(txt, len)) {
        why_add(why, whylen, "not a TLSRPT record (does not start with v=TLSRPTv1)");
        return 0;
    }
    if (!ruas || max < 1) {
        why_add(why, whylen, "no room for rua URIs");
        return MXG_RPT_EINVAL;
    }
    if (memchr(txt, '\0', len)) {
        why_add(why, whylen, "NUL byte in the record");
        return MXG_RPT_EINVAL;
    }
    while (p < len && is_wsp(txt[p]))
        p++;
    if (p < len && txt[p] != ';') {
        why_add(why, whylen, "v=TLSRPTv1 must be followed by \";\"");
        return MXG_RPT_EINVAL;
    }
    while (p < len) {
        size_t s, e, eq, ns, ne, vs, ve;
        p++; /* the ';' */
        s = p;
        while (p < len && txt[p] != ';')
            p++;
        e = p;
        while (s < e && is_wsp(txt[s]))
            s++;
        while (e > s && is_wsp(txt[e - 1]))
            e--;
        if (s == e)
            continue; /* empty field or trailing ';' */
        for (eq = s; eq < e && txt[eq] != '='; eq++)
            ;
        ns = s, ne = eq;
        while (ne > ns && is_wsp(txt[ne - 1]))
            ne--;
        vs = eq < e ? eq + 1 : e, ve = e;
        while (vs < ve && is_wsp(txt[vs]))
            vs++;
        if (eq == e || ne == ns) {
            snprintf(note, sizeof note, "malformed field \"%s\" (not name=value)",
                     mxg_show(txt + s, e - s).s);
            why_add(why, whylen, note);
            return MXG_RPT_EINVAL;
        }
        if (ne - ns == 3 && memcmp(txt + ns, "rua", 3) == 0) {
            size_t u = vs;
            rua_fields++;
            if (vs == ve) {
                why_add(why, whylen, "rua is empty");
                return MXG_RPT_EINVAL;
            }
            while (u <= ve) {
                size_t us = u, ue;
                char tmp[MXG_RPT_RUA_MAX];
                while (u < ve && txt[u] != ',')
                    u++;
                ue = u;
                while (us < ue && is_wsp(txt[us]))
                    us++;
                while (ue > us && is_wsp(txt[ue - 1]))
                    ue--;
                u++; /* past ',' (or past the end: loop ends) */
                if (!take_uri(txt + us, ue - us, tmp, why, whylen))
                    continue;
                {
                    int dup = 0;
                    for (int k = 0; k < n && !dup; k++)
                        dup = strcmp(ruas[k], tmp) == 0;
                    if (dup)
                        continue;
                }
                if (n >= max) {
                    dropped_max++;
                    continue;
                }
                memcpy(ruas[n++], tmp, strlen(tmp) + 1);
            }
            continue;
        }
        /* an extension: name and value must follow the grammar */
        {
            int ok = is_alnum(txt[ns]) && ne - ns <= 32 && vs < ve;
            for (size_t i = ns + 1; ok && i < ne; i++)
                ok = is_alnum(txt[i]) || txt[i] == '_' || txt[i] == '-' || txt[i] == '.';
            for (size_t i = vs; ok && i < ve; i++) {
                unsigned char c = (unsigned char)txt[i];
                ok = c >= 0x21 && c <= 0x7e && c != '=' && c != ';';
            }
            if (!ok) {
                snprintf(note, sizeof note, "malformed field \"%s\"", mxg_show(txt + s, e - s).s);
                why_add(why, whylen, note);
                return MXG_RPT_EINVAL;
            }
        }
    }
    if (dropped_max) {
        snprintf(note, sizeof note, "%d more rua URI(s) ignored (at most %d used)", dropped_max,
                 max);
        why_add(why, whylen, note);
    }
    if (rua_fields == 0) {
        why_add(why, whylen, "no rua field (RFC 8460 §3: rua is required)");
        return MXG_RPT_EINVAL;
    }
    if (n == 0) {
        why_add(why, whylen, "no usable rua URI");
        return MXG_RPT_EINVAL;
    }
    return n;
}

/* Contract: see tlsrpt.h. */
int mxg_rpt_txt_select(const char *const *txts, const size_t *lens, int n,
                       char ruas[][MXG_RPT_RUA_MAX], int max, char *why, size_t whylen)
{
    int found = -1, count = 0;

    if (why && whylen)
        why[0] = '\0';
    if (n < 0 || (n > 0 && (!txts || !lens))) {
        why_add(why, whylen, "bad arguments");
        return MXG_RPT_EINVAL;
    }
    for (int i = 0; i < n; i++) {
        if (is_tlsrpt(txts[i], lens[i])) {
            count++;
            found = i;
        }
    }
    if (count == 0) {
        why_add(why, whylen, "no TLSRPT record");
        return 0;
    }
    if (count > 1) {
        char note[96];
        snprintf(note, sizeof note, "%d TLSRPT records (RFC 8460 §3: exactly one must exist)",
                 count);
        why_add(why, whylen, note);
        return MXG_RPT_EINVAL;
    }
    return mxg_rpt_txt_parse(txts[found], lens[found], ruas, max, why, whylen);
}
