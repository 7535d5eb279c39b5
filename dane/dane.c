/* dane/dane.c — RFC 7672 per-host decision and OpenSSL DANE set-up; see dane.h. */
#include "dane.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "../core/str.h"

struct mxg_dane_query {
    struct mxg_dns *dns;
    struct mxg_dns_query *dq;
    int port;
    int step;                           /* 0: first name, 1: second name */
    char names[2][MXG_DNS_NAME_MAX];    /* names[0] asked first */
    int n_names;
    mxg_dane_cb cb;
    void *arg;
    struct mxg_dane_host res;
};

const char *mxg_dane_req_name(enum mxg_dane_req r)
{
    switch (r) {
    case MXG_DANE_NONE: return "none";
    case MXG_DANE_VERIFY: return "dane";
    case MXG_DANE_ENCRYPT: return "dane-encrypt";
    case MXG_DANE_UNUSABLE: return "unusable";
    }
    return "?";
}

const char *mxg_dane_fail_enh(enum mxg_dane_fail f)
{
    switch (f) {
    case MXG_DANE_FAIL_NONE: return "";
    case MXG_DANE_FAIL_ADDR: return "4.4.3";
    case MXG_DANE_FAIL_TLSA: return "4.7.5";
    }
    return "";
}

void mxg_dane_host_unusable(struct mxg_dane_host *h, enum mxg_dane_fail f, const char *why)
{
    free(h->rr);
    free(h->all);
    h->rr = h->all = NULL;
    h->n_usable = h->n_all = 0;
    h->req = MXG_DANE_UNUSABLE;
    h->fail = f;
    mxg_str_copy(h->enh, sizeof h->enh, mxg_dane_fail_enh(f));
    mxg_str_copy(h->why, sizeof h->why, why);
}

static int start_tlsa(struct mxg_dane_query *q);

void mxg_dane_host_clear(struct mxg_dane_host *h)
{
    if (!h)
        return;
    free(h->rr);
    free(h->all);
    memset(h, 0, sizeof *h);
}

int mxg_dane_host_copy(struct mxg_dane_host *dst, const struct mxg_dane_host *src)
{
    if (dst == src)
        return 0;
    mxg_dane_host_clear(dst);
    *dst = *src;
    dst->rr = dst->all = NULL;
    int a = mxg_tlsa_copy(src->rr, src->n_usable, NULL, &dst->rr);
    int b = mxg_tlsa_copy(src->all, src->n_all, NULL, &dst->all);
    if (a < 0 || b < 0) {
        char why[240];
        snprintf(why, sizeof why, "DANE: out of memory keeping the TLSA records of %s", src->base);
        mxg_dane_host_unusable(dst, MXG_DANE_FAIL_TLSA, why);
        return -1;
    }
    return 0;
}

void mxg_dane_host_format(const struct mxg_dane_host *h, int i, char *out, size_t cap)
{
    if (i < 0 || i >= h->n_usable || !h->rr) {
        if (out && cap)
            out[0] = '\0';
        return;
    }
    mxg_tlsa_format(&h->rr[i], out, cap);
}

char *mxg_dane_host_pstring(const struct mxg_dane_host *h)
{
    const struct mxg_tlsa_rr *rr = h->n_usable > 0 ? h->rr : h->all;
    int n = h->n_usable > 0 ? h->n_usable : h->n_all;
    size_t need = 1;
    for (int i = 0; rr && i < n; i++)
        need += 3 * 4 + 2 * (size_t)rr[i].len + 2; /* "255 255 255 " + hex + '\n' */
    char *out = malloc(need);
    if (!out)
        return NULL;
    size_t l = 0;
    out[0] = '\0';
    for (int i = 0; rr && i < n; i++) {
        if (i)
            out[l++] = '\n';
        mxg_tlsa_format(&rr[i], out + l, need - l);
        l += strlen(out + l);
    }
    return out;
}

void mxg_dane_host_digest(const struct mxg_dane_host *h, unsigned char out[32])
{
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    unsigned int olen = 32;
    char head[600];
    int hl = snprintf(head, sizeof head, "%s|%s|%s|%d", mxg_dane_req_name(h->req), h->base,
                      h->other, h->n_usable);
    if (!c || EVP_DigestInit_ex(c, EVP_sha256(), NULL) != 1 ||
        EVP_DigestUpdate(c, head, hl > 0 ? (size_t)hl : 0) != 1) {
        RAND_bytes(out, 32); /* matches nothing: no reuse rather than a wrong one */
        EVP_MD_CTX_free(c);
        return;
    }
    int ok = 1;
    for (int i = 0; h->rr && i < h->n_usable; i++) {
        unsigned char f[5] = {h->rr[i].usage, h->rr[i].selector, h->rr[i].mtype,
                              (unsigned char)(h->rr[i].len >> 8), (unsigned char)h->rr[i].len};
        ok &= EVP_DigestUpdate(c, f, sizeof f) == 1;
        if (h->rr[i].len)
            ok &= EVP_DigestUpdate(c, h->rr[i].data, h->rr[i].len) == 1;
    }
    if (EVP_DigestFinal_ex(c, out, &olen) != 1 || !ok)
        RAND_bytes(out, 32); /* a digest over part of the records must never be a key */
    EVP_MD_CTX_free(c);
}

int mxg_dane_decide(const struct mxg_tlsa_result *r, const char *name, const char *other, int port,
                    int has_next, struct mxg_dane_host *h)
{
    char why[240];
    if (r->status == MXG_DNS_BOGUS || r->sec == MXG_SEC_BOGUS) {
        snprintf(why, sizeof why,
                 "DANE: TLSA lookup for _%d._tcp.%s is bogus (DNSSEC validation failed)", port, name);
        mxg_dane_host_unusable(h, MXG_DANE_FAIL_TLSA, why);
    } else if (r->status == MXG_DNS_TEMPFAIL || r->sec == MXG_SEC_INDETERMINATE) {
        snprintf(why, sizeof why, "DANE: TLSA lookup for _%d._tcp.%s failed: %s", port, name,
                 r->why[0] ? r->why : "temporary failure");
        mxg_dane_host_unusable(h, MXG_DANE_FAIL_TLSA, why);
    } else if (r->status == MXG_DNS_OK && r->sec == MXG_SEC_SECURE && r->n + r->n_bad > 0) {
        free(h->rr);
        free(h->all);
        h->rr = h->all = NULL;
        h->n_usable = h->n_all = 0;
        mxg_str_copy(h->base, sizeof h->base, name);
        mxg_str_copy(h->other, sizeof h->other, other ? other : "");
        h->n_total = r->n + r->n_bad;
        /* every usable record is kept, in RRset order, whatever its size */
        unsigned char *keep = r->n > 0 ? calloc((size_t)r->n, 1) : NULL;
        int usable = 0, k = 0;
        for (int i = 0; keep && i < r->n; i++) {
            keep[i] = mxg_tlsa_check(&r->rr[i]) == MXG_TLSA_USABLE;
            usable += keep[i];
        }
        if (r->n > 0 && keep)
            k = usable > 0 ? mxg_tlsa_copy(r->rr, r->n, keep, &h->rr)
                           : mxg_tlsa_copy(r->rr, r->n, NULL, &h->all);
        free(keep);
        if ((r->n > 0 && !keep) || k < 0) {
            snprintf(why, sizeof why, "DANE: out of memory keeping the %d TLSA record(s) at "
                     "_%d._tcp.%s", r->n, port, name);
            mxg_dane_host_unusable(h, MXG_DANE_FAIL_TLSA, why);
            return 1;
        }
        if (usable > 0) {
            h->n_usable = k;
            h->req = MXG_DANE_VERIFY;
            snprintf(h->why, sizeof h->why, "DANE: %d usable TLSA record(s) of %d at _%d._tcp.%s",
                     h->n_usable, h->n_total, port, name);
        } else {
            h->n_all = k;
            h->req = MXG_DANE_ENCRYPT;
            snprintf(h->why, sizeof h->why,
                     "DANE: only unusable TLSA records (%d) at _%d._tcp.%s: TLS required, "
                     "no authentication", h->n_total, port, name);
        }
    } else if (has_next) {
        return 0; /* secure denial or insecure at the expanded name: try the MX name */
    } else {
        h->req = MXG_DANE_NONE;
        snprintf(h->why, sizeof h->why, "no DANE: %s at _%d._tcp.%s",
                 r->sec == MXG_SEC_SECURE ? "no TLSA records (secure denial)"
                                          : "insecure TLSA answer", port, name);
    }
    return 1;
}

/* One TLSA answer: decide, or go on with the second name. */
static void on_tlsa(void *arg, const struct mxg_tlsa_result *r)
{
    struct mxg_dane_query *q = arg;
    q->dq = NULL;
    int has_next = q->step + 1 < q->n_names;
    if (!mxg_dane_decide(r, q->names[q->step], q->n_names == 2 ? q->names[1 - q->step] : NULL,
                         q->port, has_next, &q->res)) {
        q->step++;
        if (start_tlsa(q) == 0)
            return;
        mxg_dane_host_unusable(&q->res, MXG_DANE_FAIL_TLSA, "DANE: cannot start TLSA lookup");
    }
    mxg_dane_cb cb = q->cb;
    void *cbarg = q->arg;
    struct mxg_dane_host res = q->res; /* takes over the records */
    free(q);
    cb(cbarg, &res);
    mxg_dane_host_clear(&res);
}

static int start_tlsa(struct mxg_dane_query *q)
{
    return mxg_dns_lookup_tlsa(q->dns, q->names[q->step], q->port, on_tlsa, q, &q->dq);
}

int mxg_dane_host_lookup(struct mxg_dns *dns, enum mxg_dnssec mx_sec, const char *host,
                         const struct mxg_addr_result *addrs, int port, struct mxg_dane_host *now,
                         mxg_dane_cb cb, void *arg, struct mxg_dane_query **qp)
{
    memset(now, 0, sizeof *now);
    *qp = NULL;
    if (mx_sec != MXG_SEC_SECURE) {
        now->req = MXG_DANE_NONE;
        snprintf(now->why, sizeof now->why, "no DANE: MX RRset is %s", mxg_dnssec_name(mx_sec));
        return 1;
    }
    if (addrs->status != MXG_DNS_OK || addrs->sec == MXG_SEC_BOGUS ||
        addrs->sec == MXG_SEC_INDETERMINATE) {
        char why[240];
        snprintf(why, sizeof why, "address lookup for %s incomplete or bogus (%s, %s)", host,
                 mxg_dns_status_name(addrs->status), mxg_dnssec_name(addrs->sec));
        mxg_dane_host_unusable(now, MXG_DANE_FAIL_ADDR, why);
        return 1;
    }
    if (addrs->sec != MXG_SEC_SECURE) {
        now->req = MXG_DANE_NONE;
        snprintf(now->why, sizeof now->why, "no DANE: address records of %s are %s", host,
                 mxg_dnssec_name(addrs->sec));
        return 1;
    }
    struct mxg_dane_query *q = calloc(1, sizeof *q);
    if (!q)
        return -1;
    q->dns = dns;
    q->port = port;
    q->cb = cb;
    q->arg = arg;
    if (addrs->canon[0] && strcasecmp(addrs->canon, host) != 0) {
        mxg_str_copy(q->names[0], sizeof q->names[0], addrs->canon);
        mxg_str_copy(q->names[1], sizeof q->names[1], host);
        q->n_names = 2;
    } else {
        mxg_str_copy(q->names[0], sizeof q->names[0], host);
        q->n_names = 1;
    }
    if (start_tlsa(q) < 0) {
        mxg_dane_host_clear(&q->res);
        free(q);
        return -1;
    }
    *qp = q;
    return 0;
}

void mxg_dane_cancel(struct mxg_dane_query *q)
{
    if (!q)
        return;
    if (q->dq)
        mxg_dns_cancel(q->dq);
    mxg_dane_host_clear(&q->res);
    free(q);
}

int mxg_dane_host_verify(const struct mxg_dane_host *h, struct mxg_tls_verify *v,
                         struct mxg_tls_tlsa **own)
{
    memset(v, 0, sizeof *v);
    *own = NULL;
    if (h->req != MXG_DANE_VERIFY || h->n_usable <= 0 || !h->rr)
        return -1;
    struct mxg_tls_tlsa *t = calloc((size_t)h->n_usable, sizeof *t);
    if (!t)
        return -1;
    for (int i = 0; i < h->n_usable; i++)
        t[i] = (struct mxg_tls_tlsa){h->rr[i].usage, h->rr[i].selector, h->rr[i].mtype,
                                     h->rr[i].len, h->rr[i].data};
    v->how = MXG_TV_DANE;
    v->enforce = 1;
    mxg_str_copy(v->sni, sizeof v->sni, h->base);
    if (h->other[0])
        v->names[v->n_names++] = h->other;
    v->tlsa = *own = t;
    v->n_tlsa = h->n_usable;
    return 0;
}
