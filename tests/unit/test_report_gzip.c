/* tests/unit/test_report_gzip.c — report/ mxg_rpt_gzip(): gzip format
 * (magic, deflate method, trailer with CRC-32 and size), round trips
 * through zlib's inflate for an empty input, a real report and 3 MiB of
 * poorly compressible data; argument errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <zlib.h>

#include "report/tlsrpt.h"

/* Inflate a gzip stream (windowBits 15+16: gzip only, no zlib header
 * accepted). Returns the malloc'd plain text and its length. */
static char *gunzip(const char *in, size_t len, size_t *outlen)
{
    z_stream z;
    size_t cap = 1024, used = 0;
    char *out = malloc(cap);
    int rc;
    assert_non_null(out);
    memset(&z, 0, sizeof z);
    assert_int_equal(inflateInit2(&z, 15 + 16), Z_OK);
    z.next_in = (Bytef *)(uintptr_t)in;
    z.avail_in = (uInt)len;
    do {
        if (used == cap) {
            cap *= 2;
            out = realloc(out, cap);
            assert_non_null(out);
        }
        z.next_out = (Bytef *)out + used;
        z.avail_out = (uInt)(cap - used);
        rc = inflate(&z, Z_NO_FLUSH);
        used = cap - z.avail_out;
        if (rc != Z_OK && rc != Z_STREAM_END && rc != Z_BUF_ERROR)
            fail_msg("inflate: %d", rc);
        if (rc == Z_BUF_ERROR && z.avail_in == 0)
            fail_msg("truncated gzip stream");
    } while (rc != Z_STREAM_END);
    assert_int_equal(z.avail_in, 0); /* nothing after the trailer */
    inflateEnd(&z);
    *outlen = used;
    return out;
}

static void round_trip(const char *in, size_t len)
{
    char *gz = NULL, *plain;
    size_t gzlen = 0, plen = 0;
    assert_int_equal(mxg_rpt_gzip(in, len, &gz, &gzlen), 0);
    assert_non_null(gz);
    assert_true(gzlen >= 18);
    /* RFC 1952: ID1 ID2 CM=8 (deflate) ... CRC32 ISIZE */
    assert_int_equal((unsigned char)gz[0], 0x1f);
    assert_int_equal((unsigned char)gz[1], 0x8b);
    assert_int_equal((unsigned char)gz[2], 8);
    uLong crc = crc32(0L, (const Bytef *)in, (uInt)len);
    const unsigned char *t = (const unsigned char *)gz + gzlen - 8;
    assert_int_equal((uint32_t)(t[0] | t[1] << 8 | t[2] << 16 | (uint32_t)t[3] << 24),
                     (uint32_t)crc);
    assert_int_equal((uint32_t)(t[4] | t[5] << 8 | t[6] << 16 | (uint32_t)t[7] << 24),
                     (uint32_t)len);
    plain = gunzip(gz, gzlen, &plen);
    assert_int_equal(plen, len);
    if (len)
        assert_memory_equal(plain, in, len);
    free(plain);
    free(gz);
}

static void test_empty(void **state)
{
    (void)state;
    round_trip("", 0);
    round_trip(NULL, 0);
}

static void test_report_text(void **state)
{
    (void)state;
    const char *rep =
        "{\"organization-name\":\"Example Org\",\"date-range\":{\"start-datetime\":"
        "\"2024-05-01T00:00:00Z\",\"end-datetime\":\"2024-05-01T23:59:59Z\"},\"contact-info\":"
        "\"mailto:tlsrpt@example.org\",\"report-id\":\"2024-05-01.example.com.0123@x\","
        "\"policies\":[{\"policy\":{\"policy-type\":\"tlsa\",\"policy-string\":[\"3 1 1 AA\"],"
        "\"policy-domain\":\"example.com\"},\"summary\":{\"total-successful-session-count\":5,"
        "\"total-failure-session-count\":0}}]}";
    round_trip(rep, strlen(rep));
}

static void test_large(void **state)
{
    (void)state;
    size_t len = 3u << 20;
    char *buf = malloc(len);
    uint64_t x = 0x9e3779b97f4a7c15ull;
    assert_non_null(buf);
    for (size_t i = 0; i < len; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17; /* xorshift: poorly compressible */
        buf[i] = (char)(i % 3 ? 'a' + (x % 26) : '"');
    }
    round_trip(buf, len);
    free(buf);
}

static void test_args(void **state)
{
    (void)state;
    char *out = NULL;
    size_t n = 0;
    assert_int_equal(mxg_rpt_gzip(NULL, 5, &out, &n), MXG_RPT_EINVAL);
    assert_int_equal(mxg_rpt_gzip("x", 1, NULL, &n), MXG_RPT_EINVAL);
    assert_int_equal(mxg_rpt_gzip("x", 1, &out, NULL), MXG_RPT_EINVAL);
    assert_null(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_report_text),
        cmocka_unit_test(test_large),
        cmocka_unit_test(test_args),
    };
    return cmocka_run_group_tests_name("report_gzip", tests, NULL, NULL);
}
