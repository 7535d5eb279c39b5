/* fuzz/fuzz_domain.c — the DNS-name and IDN helpers: mxg_domain_valid and
 * mxg_domain_alabel (smtp/smtp_parse.h; libidn2 underneath), MTA-STS
 * pattern matching (policy/sts_parse.h) and mxg_show (core/show.h), which
 * makes untrusted names safe to quote.
 *
 * Input: a name, LF, a second name (pattern and host for matching).
 *
 * Properties checked:
 *  - mxg_domain_valid(ascii only) implies valid with U-labels allowed; a
 *    valid name has 1..255 octets, labels of 1..63, no '-' at a label edge;
 *  - mxg_domain_alabel: the A-label form is lower-case ASCII, a converted
 *    name converts to itself, an ASCII name is just lower-cased, and a name
 *    valid for SMTP converts to a valid LDH name (what goes to DNS);
 *  - pattern matching ignores case and one trailing dot; a pattern without
 *    '*' matches only the same name;
 *  - mxg_show: printable ASCII only, at most 95 characters. */
#include "fuzz.h"

#include <ctype.h>

#include "core/show.h"
#include "policy/sts_parse.h"
#include "smtp/smtp_parse.h"

static void lower_copy(const char *s, char *out, size_t cap)
{
    size_t i;
    for (i = 0; s[i] && i + 1 < cap; i++)
        out[i] = (char)tolower((unsigned char)s[i]);
    out[i] = '\0';
}

static int is_ascii(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] >= 0x80)
            return 0;
    return 1;
}

static void check_name(const char *s, size_t n)
{
    int v0 = mxg_domain_valid(s, n, 0), v1 = mxg_domain_valid(s, n, 1);
    FUZZ_CHECK(v0 == 0 || v0 == 1);
    if (v0) {
        FUZZ_CHECK(v1 && is_ascii(s, n) && n >= 1 && n <= 255);
        size_t ls = 0;
        for (size_t i = 0; i <= n; i++) {
            if (i < n && s[i] != '.')
                continue;
            FUZZ_CHECK(i - ls >= 1 && i - ls <= 63);
            FUZZ_CHECK(s[ls] != '-' && s[i - 1] != '-');
            ls = i + 1;
        }
    }
    if (memchr(s, '\0', n))
        return;
    char *z = fuzz_dup_z(s, n);
    char a[MXG_DOMAIN_MAX + 1], b[MXG_DOMAIN_MAX + 1], low[MXG_DOMAIN_MAX + 1];
    if (mxg_domain_alabel(z, a, sizeof a) == 0) {
        FUZZ_CHECK(fuzz_terminated(a, sizeof a));
        size_t al = strlen(a);
        for (size_t i = 0; i < al; i++)
            FUZZ_CHECK((unsigned char)a[i] < 0x80 && !isupper((unsigned char)a[i]));
        if (is_ascii(z, n)) {
            lower_copy(z, low, sizeof low);
            FUZZ_CHECK(strcmp(a, low) == 0);
        }
        FUZZ_CHECK(mxg_domain_alabel(a, b, sizeof b) == 0 && strcmp(a, b) == 0);
        if (v1 && !mxg_domain_valid(a, al, 0)) {
            fprintf(stderr, "\"%s\" is valid, its A-label form \"%s\" is not\n",
                    mxg_show(z, n).s, mxg_show(a, al).s);
            FUZZ_CHECK(!"A-label of a valid name is a valid LDH name");
        }
    }
    /* a small output buffer: -1 or a terminated result, never an overrun */
    char *tiny = malloc(8);
    FUZZ_CHECK(tiny != NULL);
    if (mxg_domain_alabel(z, tiny, 8) == 0)
        FUZZ_CHECK(fuzz_terminated(tiny, 8));
    free(tiny);
    free(z);
}

static void check_match(const char *pat, const char *host)
{
    int m = mxg_sts_pattern_match(pat, host);
    FUZZ_CHECK(m == 0 || m == 1);
    size_t hl = strlen(host);
    char *up = malloc(hl + 2);
    FUZZ_CHECK(up != NULL);
    for (size_t i = 0; i <= hl; i++)
        up[i] = (char)toupper((unsigned char)host[i]);
    FUZZ_CHECK(mxg_sts_pattern_match(pat, up) == m);
    if (hl == 0 || host[hl - 1] != '.') {
        up[hl] = '.';
        up[hl + 1] = '\0';
        FUZZ_CHECK(mxg_sts_pattern_match(pat, up) == m);
    }
    free(up);
    if (m && pat[0] != '*') {
        size_t pl = strlen(pat);
        if (pl && pat[pl - 1] == '.')
            pl--;
        if (hl && host[hl - 1] == '.')
            hl--;
        FUZZ_CHECK(pl == hl && strncasecmp(pat, host, pl) == 0);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nl = memchr(data, '\n', size);
    size_t al = nl ? (size_t)(nl - data) : size;
    char *a = fuzz_dup(data, al);
    check_name(a, al);
    free(a);

    struct mxg_shown sh = mxg_show((const char *)data, size);
    FUZZ_CHECK(fuzz_terminated(sh.s, sizeof sh.s));
    FUZZ_CHECK(fuzz_printable(sh.s) && strlen(sh.s) <= 95);

    if (nl && !memchr(data, '\0', size)) {
        char *pat = fuzz_dup_z(data, al);
        char *host = fuzz_dup_z(nl + 1, size - al - 1);
        check_match(pat, host);
        free(pat);
        free(host);
    }
    return 0;
}
