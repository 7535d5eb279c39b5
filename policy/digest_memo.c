/* policy/digest_memo.c — see digest_memo.h. */
#include "digest_memo.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#define WAYS 4

struct slot {
    unsigned char *data; /* heap, len octets; NULL: empty */
    size_t len;
    uint64_t used;       /* m->clock when last asked */
    unsigned char d[32];
};

struct mxg_digest_memo {
    int sets;
    size_t max_len;
    uint64_t clock;
    struct mxg_digest_memo_stats st;
    struct slot *slot; /* sets * WAYS */
};

/* Contract: see digest_memo.h. */
struct mxg_digest_memo *mxg_digest_memo_new(int sets, size_t max_len)
{
    if (sets < 1)
        return NULL;
    struct mxg_digest_memo *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->slot = calloc((size_t)sets * WAYS, sizeof *m->slot);
    if (!m->slot) {
        free(m);
        return NULL;
    }
    m->sets = sets;
    m->max_len = max_len;
    return m;
}

/* Contract: see digest_memo.h; m may be NULL. */
void mxg_digest_memo_free(struct mxg_digest_memo *m)
{
    if (!m)
        return;
    for (int i = 0; i < m->sets * WAYS; i++)
        free(m->slot[i].data);
    free(m->slot);
    free(m);
}

/* A cheap 64-bit hash of the octets (8 at a time): it only picks the set;
 * an entry is the answer only when its octets compare equal whole. */
static uint64_t octets_hash(const unsigned char *p, size_t len)
{
    uint64_t h = 0x9e3779b97f4a7c15ULL ^ len;
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        h = (h ^ w) * 0xff51afd7ed558ccdULL;
        h ^= h >> 29;
    }
    uint64_t w = 0;
    if (i < len)
        memcpy(&w, p + i, len - i);
    h = (h ^ w) * 0xc4ceb9fe1a85ec53ULL;
    return h ^ (h >> 32);
}

/* Contract: see digest_memo.h. */
int mxg_digest_memo_sha256(struct mxg_digest_memo *m, const void *data, size_t len,
                           unsigned char out[32])
{
    unsigned char d[32];
    unsigned int n = 0;
    if (!m || len > m->max_len) {
        if (EVP_Digest(data, len, d, &n, EVP_sha256(), NULL) != 1 || n != 32)
            return -1;
        memcpy(out, d, 32);
        return 0;
    }
    uint64_t h = octets_hash(data, len);
    struct slot *set = &m->slot[(size_t)(h % (uint64_t)m->sets) * WAYS], *victim = &set[0];
    m->clock++;
    for (int i = 0; i < WAYS; i++) {
        struct slot *s = &set[i];
        if (s->data && s->len == len && memcmp(s->data, data, len) == 0) {
            s->used = m->clock;
            memcpy(out, s->d, 32);
            m->st.hits++;
            return 0;
        }
        if (!victim->data)
            continue; /* an empty slot is taken first */
        if (!s->data || s->used < victim->used)
            victim = s;
    }
    m->st.misses++;
    if (EVP_Digest(data, len, d, &n, EVP_sha256(), NULL) != 1 || n != 32)
        return -1;
    memcpy(out, d, 32);
    unsigned char *copy = malloc(len ? len : 1);
    if (!copy)
        return 0; /* computed, not kept */
    memcpy(copy, data, len);
    free(victim->data);
    *victim = (struct slot){copy, len, m->clock, {0}};
    memcpy(victim->d, d, 32);
    return 0;
}

/* Contract: see digest_memo.h; m may be NULL (all zero). */
void mxg_digest_memo_stats(const struct mxg_digest_memo *m, struct mxg_digest_memo_stats *s)
{
    memset(s, 0, sizeof *s);
    if (m)
        *s = m->st;
}
