/* fuzz/fuzz_config.c — the configuration loader (core/config.h):
 * mxg_config_load() on a file (libconfig syntax) plus MXGUARD_* environment
 * overrides, and the value helpers (durations, sizes, endpoints, CIDRs).
 *
 * Input: the file text up to the first NUL; after it, NUL-separated
 * environment entries, each given as "MXGUARD_" + entry. The file is a
 * memfd passed by its /proc/self/fd path, so the real loader (fopen,
 * libconfig's reader, the integer-literal scan) runs unchanged with no temp
 * files. Inputs with "@include" are skipped: an include names another file
 * of this machine, and the fuzzer must not wander the file system (or read
 * /dev/zero forever).
 *
 * Properties checked:
 *  - a configuration that loads dumps (mxg_config_dump) to a text that loads
 *    again, to the same configuration (the dumps compare equal);
 *  - an error is a terminated, non-empty text;
 *  - value helpers: an endpoint / CIDR that parses re-parses from its stored
 *    text to the same address; a network matches its own address. */
#include "fuzz.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/config.h"

static int fd_in = -1, fd_dump = -1;
static char path_in[64], path_dump[64];

static void put(int fd, const void *p, size_t n)
{
    FUZZ_CHECK(ftruncate(fd, 0) == 0);
    FUZZ_CHECK(pwrite(fd, p, n, 0) == (ssize_t)n);
}

static char *dump(const struct mxg_config *cfg, size_t *len)
{
    char *text = NULL;
    FILE *f = open_memstream(&text, len);
    FUZZ_CHECK(f != NULL);
    mxg_config_dump(cfg, f);
    FUZZ_CHECK(fclose(f) == 0);
    /* drop the header line: it names the file the configuration came from */
    char *nl = strchr(text, '\n');
    FUZZ_CHECK(nl != NULL);
    *len -= (size_t)(nl + 1 - text);
    memmove(text, nl + 1, *len + 1);
    return text;
}

static void check_err(const char *err, size_t cap)
{
    FUZZ_CHECK(fuzz_terminated(err, cap));
    FUZZ_CHECK(err[0] != '\0');
}

static void helpers(const char *s)
{
    uint64_t v;
    (void)mxg_parse_duration_ms(s, &v);
    (void)mxg_parse_size(s, &v);

    struct mxg_endpoint ep, ep2;
    if (mxg_parse_endpoint(s, 25, &ep) == 0) {
        FUZZ_CHECK(ep.sa.ss_family == AF_INET || ep.sa.ss_family == AF_INET6);
        FUZZ_CHECK(fuzz_terminated(ep.text, sizeof ep.text));
        FUZZ_CHECK(mxg_parse_endpoint(ep.text, 25, &ep2) == 0);
        FUZZ_CHECK(memcmp(&ep.sa, &ep2.sa, sizeof ep.sa) == 0);
    }
    (void)mxg_parse_endpoint(s, 0, &ep);

    struct mxg_cidr c, c2;
    if (mxg_parse_cidr(s, &c) == 0) {
        FUZZ_CHECK(c.family == AF_INET || c.family == AF_INET6);
        FUZZ_CHECK(c.prefix >= 0 && c.prefix <= (c.family == AF_INET ? 32 : 128));
        FUZZ_CHECK(fuzz_terminated(c.text, sizeof c.text));
        FUZZ_CHECK(mxg_parse_cidr(c.text, &c2) == 0);
        FUZZ_CHECK(c2.family == c.family && c2.prefix == c.prefix);
        FUZZ_CHECK(memcmp(c.addr, c2.addr, sizeof c.addr) == 0);
        struct sockaddr_storage ss;
        memset(&ss, 0, sizeof ss);
        if (c.family == AF_INET) {
            struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
            sin->sin_family = AF_INET;
            memcpy(&sin->sin_addr, c.addr, 4);
        } else {
            struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
            sin6->sin6_family = AF_INET6;
            memcpy(&sin6->sin6_addr, c.addr, 16);
        }
        FUZZ_CHECK(mxg_cidr_match(&c, (const struct sockaddr *)&ss) == 1);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (fd_in < 0) {
        fd_in = memfd_create("fuzz-config", 0);
        fd_dump = memfd_create("fuzz-config-dump", 0);
        FUZZ_CHECK(fd_in >= 0 && fd_dump >= 0);
        snprintf(path_in, sizeof path_in, "/proc/self/fd/%d", fd_in);
        snprintf(path_dump, sizeof path_dump, "/proc/self/fd/%d", fd_dump);
    }
    for (size_t i = 0; i + 8 <= size; i++)
        if (data[i] == '@' && strncasecmp((const char *)data + i, "@include", 8) == 0)
            return 0;

    const uint8_t *nul = memchr(data, '\0', size);
    size_t flen = nul ? (size_t)(nul - data) : size;

    /* environment: "MXGUARD_" + each NUL-separated entry after the file */
    char *envbuf[9];
    int nenv = 0;
    size_t i = flen + 1;
    while (nul && i <= size && nenv < 8) {
        const uint8_t *e = memchr(data + i, '\0', size - i);
        size_t el = e ? (size_t)(e - (data + i)) : size - i;
        char *entry = malloc(8 + el + 1);
        FUZZ_CHECK(entry != NULL);
        memcpy(entry, "MXGUARD_", 8);
        memcpy(entry + 8, data + i, el);
        entry[8 + el] = '\0';
        envbuf[nenv++] = entry;
        i += el + 1;
        if (!e)
            break;
    }
    envbuf[nenv] = NULL;

    put(fd_in, data, flen);
    static struct mxg_config cfg, cfg2;
    char err[512];
    int rc = mxg_config_load(&cfg, path_in, envbuf, err, sizeof err);
    if (rc == 0) {
        size_t l1, l2;
        char *d1 = dump(&cfg, &l1);
        put(fd_dump, d1, l1);
        int rc2 = mxg_config_load(&cfg2, path_dump, NULL, err, sizeof err);
        if (rc2 != 0) {
            fprintf(stderr, "dump does not load: %s\n--- dump:\n%s\n", err, d1);
            FUZZ_CHECK(!"dump loads");
        }
        char *d2 = dump(&cfg2, &l2);
        if (l1 != l2 || memcmp(d1, d2, l1) != 0) {
            fprintf(stderr, "--- dump 1:\n%s\n--- dump 2:\n%s\n", d1, d2);
            FUZZ_CHECK(!"dump round trip");
        }
        free(d1);
        free(d2);
    } else {
        FUZZ_CHECK(rc == -1);
        check_err(err, sizeof err);
    }

    if (flen < 256) {
        char *s = fuzz_dup_z(data, flen);
        helpers(s);
        free(s);
    }
    for (int k = 0; k < nenv; k++)
        free(envbuf[k]);
    return 0;
}
