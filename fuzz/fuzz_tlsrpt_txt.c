/* fuzz/fuzz_tlsrpt_txt.c — the TLSRPT TXT record parser (report/tlsrpt.h:
 * mxg_rpt_txt_parse / mxg_rpt_txt_select, RFC 8460 §3).
 *
 * Input: the first octet picks max (1..16 rua slots); the rest is parsed as
 * one record, and cut at LF into an RRset for select.
 *
 * Properties checked:
 *  - n > 0 URIs, 0 (not a TLSRPT record: exactly when it does not start
 *    with "v=TLSRPTv1" + end / WSP / ";") or -1 (with a reason);
 *  - n <= max; every URI terminated, < MXG_RPT_RUA_MAX, "mailto:" with an
 *    address or "https://" with a host, no space, control or 8-bit octet,
 *    no unencoded "!", all distinct;
 *  - no reason holds a control octet (it goes into log lines: a TXT record's
 *    line break or escape sequence must not reach them);
 *  - select: 0 without TLSRPT records, -1 with several, else the parse. */
#include "fuzz.h"

#include <strings.h>

#include "report/tlsrpt.h"

static int is_rpt(const char *t, size_t n)
{
    return n >= 10 && memcmp(t, "v=TLSRPTv1", 10) == 0 &&
           (n == 10 || t[10] == ' ' || t[10] == '\t' || t[10] == ';');
}

static char ruas[16][MXG_RPT_RUA_MAX];

static int parse_checked(const char *t, size_t n, int max)
{
    char why[512];
    memset(ruas, 0x5a, sizeof ruas);
    int rc = mxg_rpt_txt_parse(t, n, ruas, max, why, sizeof why);
    FUZZ_CHECK(fuzz_terminated(why, sizeof why));
    if (!fuzz_no_ctl(why)) {
        fprintf(stderr, "why: \"%s\"\n", why);
        FUZZ_CHECK(!"printable reason");
    }
    FUZZ_CHECK(rc >= -1 && rc <= max);
    FUZZ_CHECK((rc != 0) == is_rpt(t, n));
    if (rc == -1)
        FUZZ_CHECK(why[0] != '\0');
    for (int i = 0; i < rc; i++) {
        const char *u = ruas[i];
        FUZZ_CHECK(fuzz_terminated(u, MXG_RPT_RUA_MAX));
        for (const char *c = u; *c; c++)
            FUZZ_CHECK((unsigned char)*c > 0x20 && (unsigned char)*c < 0x7f);
        if (strncasecmp(u, "mailto:", 7) == 0) {
            FUZZ_CHECK(u[7] != '\0' && u[7] != '@' && strchr(u + 7, '@'));
        } else {
            FUZZ_CHECK(strncasecmp(u, "https://", 8) == 0 && u[8] != '\0' && u[8] != '/');
        }
        for (int k = 0; k < i; k++)
            FUZZ_CHECK(strcmp(ruas[k], u) != 0);
    }
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int max = data[0] % 16 + 1;
    data++;
    size--;
    char *whole = fuzz_dup(data, size);
    parse_checked(whole, size, max);
    free(whole);

    enum { MAXR = 8 };
    char *recs[MAXR];
    size_t lens[MAXR];
    int n = 0, rpt = 0, which = -1;
    size_t i = 0;
    while (i <= size && n < MAXR) {
        const uint8_t *nl = memchr(data + i, '\n', size - i);
        size_t l = nl ? (size_t)(nl - (data + i)) : size - i;
        recs[n] = fuzz_dup(data + i, l);
        lens[n] = l;
        if (is_rpt(recs[n], l)) {
            rpt++;
            which = n;
        }
        n++;
        i += l + 1;
        if (!nl)
            break;
    }
    int want = rpt == 1 ? parse_checked(recs[which], lens[which], max) : 0;
    char why[512];
    int rc = mxg_rpt_txt_select((const char *const *)recs, lens, n, ruas, max, why, sizeof why);
    FUZZ_CHECK(fuzz_terminated(why, sizeof why) && fuzz_no_ctl(why));
    if (rpt == 0)
        FUZZ_CHECK(rc == 0);
    else if (rpt > 1)
        FUZZ_CHECK(rc == -1);
    else
        FUZZ_CHECK(rc == want);
    for (int k = 0; k < n; k++)
        free(recs[k]);
    return 0;
}
