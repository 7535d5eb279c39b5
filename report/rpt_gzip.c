/* report/rpt_gzip.c — gzip (RFC 1952) of a report with zlib: deflateInit2
 * with windowBits 15+16 (the gzip wrapper: header without name or mtime,
 * CRC-32 and size trailer). The output buffer is sized with deflateBound()
 * and grown should the input arrive in several chunks (inputs larger than
 * a zlib uInt). */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "rpt_int.h"

/* Contract: see tlsrpt.h. */
int mxg_rpt_gzip(const char *in, size_t len, char **out, size_t *outlen)
{
    z_stream z;
    unsigned char *buf = NULL;
    size_t cap, used = 0, left = len;
    int zrc, rc = MXG_RPT_EZLIB;

    if (!out || !outlen || (!in && len))
        return MXG_RPT_EINVAL;
    *out = NULL;
    *outlen = 0;
    memset(&z, 0, sizeof z);
    if (deflateInit2(&z, Z_BEST_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return MXG_RPT_EZLIB;
    cap = (len <= ULONG_MAX ? deflateBound(&z, (uLong)len) : len + len / 1000 + 64) + 32;
    if (!(buf = malloc(cap))) {
        rc = MXG_RPT_ENOMEM;
        goto done;
    }
    z.next_in = (z_const Bytef *)(uintptr_t)in;
    do {
        int flush;
        if (z.avail_in == 0 && left) {
            z.avail_in = left > UINT_MAX ? UINT_MAX : (uInt)left;
            left -= z.avail_in;
        }
        flush = left ? Z_NO_FLUSH : Z_FINISH;
        if (used == cap) {
            unsigned char *nb = realloc(buf, cap * 2);
            if (!nb) {
                rc = MXG_RPT_ENOMEM;
                goto done;
            }
            buf = nb;
            cap *= 2;
        }
        z.next_out = buf + used;
        z.avail_out = cap - used > UINT_MAX ? UINT_MAX : (uInt)(cap - used);
        {
            uInt before = z.avail_out;
            zrc = deflate(&z, flush);
            used += before - z.avail_out;
        }
        if (zrc == Z_STREAM_ERROR)
            goto done;
    } while (zrc != Z_STREAM_END);
    *out = (char *)buf;
    *outlen = used;
    buf = NULL;
    rc = 0;
done:
    deflateEnd(&z);
    free(buf);
    return rc;
}
