/* report/rpt_tab.c — the in-memory aggregate of results between two writes:
 * a chained hash table (FNV-1a over the key fields, power-of-two buckets,
 * grown at load 1) plus an insertion-order list for deterministic writes.
 * Each entry is one allocation holding its key fields; a failure detail
 * refers to its policy entry instead of copying the policy's (possibly
 * long) fields, so memory grows with what is new, not with the policy
 * size times the details. */
#include <stdlib.h>
#include <string.h>

#include "rpt_int.h"

#define TAB_MIN_BUCKETS 64

/* FNV-1a over a key's fields (and a detail's policy entry). */
static uint64_t key_hash(const struct rpt_ent *pol, const char *const *f, int nf)
{
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a 64 */
    for (int i = 0; i < nf; i++) {
        for (const unsigned char *p = (const unsigned char *)f[i]; *p; p++) {
            h ^= *p;
            h *= 0x100000001b3ull;
        }
        h ^= 0xff; /* field separator: ("ab","c") != ("a","bc") */
        h *= 0x100000001b3ull;
    }
    /* a detail's policy is part of its key: mix the pointer in */
    h ^= (uint64_t)(uintptr_t)pol * 0x9e3779b97f4a7c15ull;
    return h ^ (uint64_t)nf;
}

/* Is e the entry of this key (hash, policy entry, fields)? */
static int key_equal(const struct rpt_ent *e, uint64_t h, const struct rpt_ent *pol,
                     const char *const *f, int nf)
{
    if (e->hash != h || e->nf != nf || e->pol != pol)
        return 0;
    for (int i = 0; i < nf; i++)
        if (strcmp(e->f[i], f[i]) != 0)
            return 0;
    return 1;
}

/* Contract: see rpt_int.h. */
struct rpt_ent *rpt_tab_find(const struct rpt_tab *t, const struct rpt_ent *pol,
                             const char *const *f, int nf)
{
    uint64_t h;
    if (!t->nbucket)
        return NULL;
    h = key_hash(pol, f, nf);
    for (struct rpt_ent *e = t->bucket[h & (t->nbucket - 1)]; e; e = e->chain)
        if (key_equal(e, h, pol, f, nf))
            return e;
    return NULL;
}

/* Double the bucket array (or create it). 0 or -1 (the table is unchanged). */
static int tab_grow(struct rpt_tab *t)
{
    size_t n = t->nbucket ? t->nbucket * 2 : TAB_MIN_BUCKETS;
    struct rpt_ent **b = calloc(n, sizeof *b);
    if (!b)
        return -1;
    for (struct rpt_ent *e = t->head; e; e = e->next) {
        e->chain = b[e->hash & (n - 1)];
        b[e->hash & (n - 1)] = e;
    }
    free(t->bucket);
    t->bytes += (n - t->nbucket) * sizeof *b;
    t->bucket = b;
    t->nbucket = n;
    return 0;
}

/* Contract: see rpt_int.h. */
struct rpt_ent *rpt_tab_get(struct rpt_tab *t, struct rpt_ent *pol, const char *const *f, int nf)
{
    struct rpt_ent *e;
    size_t len[RPT_MAX_NF], total = 0;
    uint64_t h;
    char *p;

    if (nf < 1 || nf > RPT_MAX_NF)
        return NULL;
    if ((e = rpt_tab_find(t, pol, f, nf)))
        return e;
    if (t->count >= t->nbucket && tab_grow(t) != 0 && !t->nbucket)
        return NULL; /* a failed grow of a non-empty table only costs speed */
    for (int i = 0; i < nf; i++)
        total += (len[i] = strlen(f[i])) + 1;
    if (!(e = calloc(1, sizeof *e + total)))
        return NULL;
    h = key_hash(pol, f, nf);
    e->hash = h;
    e->pol = pol;
    e->nf = nf;
    p = e->key;
    for (int i = 0; i < nf; i++) {
        memcpy(p, f[i], len[i] + 1);
        e->f[i] = p;
        p += len[i] + 1;
    }
    e->chain = t->bucket[h & (t->nbucket - 1)];
    t->bucket[h & (t->nbucket - 1)] = e;
    if (t->tail)
        t->tail->next = e;
    else
        t->head = e;
    t->tail = e;
    t->count++;
    t->bytes += sizeof *e + total;
    return e;
}

/* Contract: see rpt_int.h. Two passes: policy counters first, so every
 * detail's policy exists in dst when the detail is added. */
int rpt_tab_merge(struct rpt_tab *dst, const struct rpt_tab *src)
{
    for (int pass = 0; pass < 2; pass++) {
        for (const struct rpt_ent *s = src->head; s; s = s->next) {
            struct rpt_ent *dp = NULL, *d;
            if ((pass == 0) != (s->pol == NULL))
                continue;
            if (s->pol && !(dp = rpt_tab_get(dst, NULL, s->pol->f, s->pol->nf)))
                return MXG_RPT_ENOMEM;
            if (!(d = rpt_tab_get(dst, dp, s->f, s->nf)))
                return MXG_RPT_ENOMEM;
            d->ok += s->ok;
            d->fail += s->fail;
        }
    }
    dst->sessions += src->sessions;
    return 0;
}

/* Contract: see rpt_int.h. */
void rpt_tab_free(struct rpt_tab *t)
{
    struct rpt_ent *e = t->head;
    while (e) {
        struct rpt_ent *n = e->next;
        free(e);
        e = n;
    }
    free(t->bucket);
    memset(t, 0, sizeof *t);
}

#define SEQ_CUT ((size_t)-1)

/* Length of the valid UTF-8 sequence at s (at most avail bytes): 0 if
 * invalid (RFC 3629: no overlongs, no surrogates, <= U+10FFFF), SEQ_CUT if
 * it is a valid start that avail cuts short. */
static size_t utf8_seq(const unsigned char *s, size_t avail)
{
    unsigned c = s[0];
    size_t n;
    unsigned cp, min;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2, cp = c & 0x1f, min = 0x80;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3, cp = c & 0x0f, min = 0x800;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4, cp = c & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    for (size_t i = 1; i < n; i++) {
        if (i >= avail)
            return SEQ_CUT;
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

/* Contract: see rpt_int.h. */
size_t rpt_clean_utf8(char *dst, size_t cap, const char *src, size_t max)
{
    size_t in = 0, out = 0, avail;
    if (cap == 0)
        return 0;
    if (max > cap - 1)
        max = cap - 1;
    if (!src) {
        dst[0] = '\0';
        return 0;
    }
    avail = strnlen(src, max);
    while (in < avail) {
        size_t n = utf8_seq((const unsigned char *)src + in, avail - in);
        if (n == SEQ_CUT && src[avail] != '\0')
            break; /* cut by max: drop the partial character */
        if (n == 0 || n == SEQ_CUT) {
            /* an invalid byte (or a truncated sequence at the real end) */
            dst[out++] = '?';
            in++;
            continue;
        }
        memcpy(dst + out, src + in, n);
        out += n;
        in += n;
    }
    dst[out] = '\0';
    return out;
}
