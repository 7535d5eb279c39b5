/* dns/dns_rr.c — TLSA record storage (contract: dns_rr.h). */
#include "dns_rr.h"

#include <stdlib.h>
#include <string.h>

/* Contract: see dns_rr.h. One allocation: the records, then their data. */
int mxg_tlsa_copy(const struct mxg_tlsa_rr *in, int n, const unsigned char *keep,
                  struct mxg_tlsa_rr **out)
{
    size_t data = 0;
    int k = 0;
    *out = NULL;
    if (!in || n <= 0)
        return 0;
    for (int i = 0; i < n; i++)
        if (!keep || keep[i]) {
            k++;
            data += in[i].data ? in[i].len : 0;
        }
    if (k == 0)
        return 0;
    struct mxg_tlsa_rr *blk = malloc((size_t)k * sizeof *blk + data);
    if (!blk)
        return -1;
    uint8_t *p = (uint8_t *)(blk + k);
    int o = 0;
    for (int i = 0; i < n; i++) {
        if (keep && !keep[i])
            continue;
        blk[o] = in[i];
        blk[o].data = NULL;
        if (in[i].data && in[i].len) {
            memcpy(p, in[i].data, in[i].len);
            blk[o].data = p;
            p += in[i].len;
        } else {
            blk[o].len = in[i].data ? in[i].len : 0;
        }
        o++;
    }
    *out = blk;
    return k;
}
