/* fuzz/fuzz_sts_txt.c — the MTA-STS TXT record parser (policy/sts_parse.h,
 * RFC 8461 §3.1): mxg_sts_txt_parse on the whole input as one record, and
 * mxg_sts_txt_select on the input cut at LF into an RRset of records (each
 * an exact-size heap copy).
 *
 * Properties checked:
 *  - result 1 / 0 / -1 only; 1 gives an id of 1..32 letters and digits,
 *    0 and -1 give id "" (never half an id); 0 exactly when the record does
 *    not start with "v=STSv1" followed by WSP, ";" or the end;
 *  - -1 comes with a reason; every reason is printable ASCII (it quotes
 *    DNS data into log lines and `mxguard check` output);
 *  - select: 0 when no record is an STS record, -1 when several are,
 *    otherwise the one record's own parse result and id. */
#include "fuzz.h"

#include "policy/sts_parse.h"

static int is_sts(const char *t, size_t n)
{
    return n >= 7 && memcmp(t, "v=STSv1", 7) == 0 &&
           (n == 7 || t[7] == ' ' || t[7] == '\t' || t[7] == ';');
}

static int parse_checked(const char *t, size_t n, char id[MXG_STS_ID_MAX + 1])
{
    char why[256];
    int rc = mxg_sts_txt_parse(t, n, id, why, sizeof why);
    FUZZ_CHECK(rc == 1 || rc == 0 || rc == -1);
    FUZZ_CHECK(fuzz_terminated(id, MXG_STS_ID_MAX + 1));
    FUZZ_CHECK(fuzz_terminated(why, sizeof why));
    FUZZ_CHECK(fuzz_printable(why));
    FUZZ_CHECK((rc != 0) == is_sts(t, n));
    if (rc == 1) {
        size_t l = strlen(id);
        FUZZ_CHECK(l >= 1 && l <= MXG_STS_ID_MAX);
        for (size_t i = 0; i < l; i++)
            FUZZ_CHECK((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'z') ||
                       (id[i] >= 'A' && id[i] <= 'Z'));
    } else {
        FUZZ_CHECK(id[0] == '\0');
    }
    if (rc == -1)
        FUZZ_CHECK(why[0] != '\0');
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char id[MXG_STS_ID_MAX + 1];
    char *whole = fuzz_dup(data, size);
    parse_checked(whole, size, id);
    free(whole);

    /* the RRset: records cut at LF */
    enum { MAXR = 16 };
    char *recs[MAXR];
    size_t lens[MAXR];
    int rcs[MAXR];
    char ids[MAXR][MXG_STS_ID_MAX + 1];
    int n = 0, sts = 0, which = -1;
    size_t i = 0;
    while (i <= size && n < MAXR) {
        const uint8_t *nl = memchr(data + i, '\n', size - i);
        size_t l = nl ? (size_t)(nl - (data + i)) : size - i;
        recs[n] = fuzz_dup(data + i, l);
        lens[n] = l;
        rcs[n] = parse_checked(recs[n], l, ids[n]);
        if (rcs[n] != 0) {
            sts++;
            which = n;
        }
        n++;
        i += l + 1;
        if (!nl)
            break;
    }
    char why[256];
    int rc = mxg_sts_txt_select((const char *const *)recs, lens, n, id, why, sizeof why);
    FUZZ_CHECK(fuzz_terminated(why, sizeof why) && fuzz_printable(why));
    if (sts == 0)
        FUZZ_CHECK(rc == 0 && id[0] == '\0');
    else if (sts > 1)
        FUZZ_CHECK(rc == -1 && id[0] == '\0' && why[0] != '\0');
    else
        FUZZ_CHECK(rc == rcs[which] && strcmp(id, ids[which]) == 0);
    for (int k = 0; k < n; k++)
        free(recs[k]);
    return 0;
}
