/* policy/stlist_source.c — see stlist_source.h. */
#include "stlist_source.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../core/log.h"

#define MAX_LIST_SIZE (64 * 1024 * 1024) /* EFF's list was a few MB */

enum step { STEP_FILE = 0, STEP_URL_ADDR, STEP_URL_JSON, STEP_URL_SIG, STEP_DONE };

struct mxg_stlist_source {
    uv_loop_t *loop;
    const struct mxg_config *cfg;
    struct mxg_dns *dns;
    struct mxg_https *https;
    struct mxg_stlist_store *store;
    uv_timer_t refresh, watch, kick; /* kick: reports an update from the loop */
    int closing; /* close callbacks still to run (mxg_stlist_source_free) */
    int64_t last_expired_warning;
    int local_loaded; /* mxg_stlist_source_load_local() ran: the first update skips the file */
    int skip_first;   /* the first scheduled update: the URL only (load_local read the file) */
    int skip_file;    /* this update does not read policy_list.file */
    /* one update in flight */
    int busy;
    enum step step;
    mxg_stlist_update_cb cb;
    void *cb_arg;
    int result;        /* best outcome so far: -1, 0, 1 */
    char msg[600];
    struct mxg_dns_query *dq;
    struct mxg_https_req *hr;
    char host[256], path[512];
    int port;
    struct sockaddr_storage addrs[MXG_DNS_MAX_ADDR];
    int n_addrs;
    char *json;
    size_t json_len;
    /* a downloaded or read list being verified on the thread pool (gpgv, parse) */
    uv_work_t check_req;
    struct mxg_stlist_candidate *cand; /* owned while checking; the work touches only it */
    char cand_source[MXG_CFG_PATH_MAX + 16];
    int checking;
    int freeing; /* mxg_stlist_source_free() ran: the check's completion frees s */
};

static void note(struct mxg_stlist_source *s, int rc, const char *what)
{
    if (rc > s->result)
        s->result = rc;
    size_t l = strlen(s->msg);
    snprintf(s->msg + l, sizeof s->msg - l, "%s%s", l ? "; " : "", what);
}

static void finish(struct mxg_stlist_source *s)
{
    s->busy = 0;
    free(s->json);
    s->json = NULL;
    struct mxg_stlist_status st;
    mxg_stlist_store_status(s->store, (int64_t)time(NULL), &st);
    if (s->result < 0)
        LOG_W("list", "policy list update failed: %s", s->msg);
    else
        LOG_N("list", "policy list %s: %s", s->result > 0 ? "updated" : "unchanged", s->msg);
    if (s->cb) {
        mxg_stlist_update_cb cb = s->cb;
        s->cb = NULL;
        cb(s->cb_arg, s->result, s->msg);
    }
}

static int read_file(const char *path, char **out, size_t *len, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "cannot read %s: %m", path);
        return -1;
    }
    char *buf = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (n + 65536 > cap) {
            cap = cap ? cap * 2 : 131072;
            if (cap > MAX_LIST_SIZE + 65536) {
                snprintf(err, errlen, "%s is larger than %d MiB", path, MAX_LIST_SIZE >> 20);
                free(buf);
                fclose(f);
                return -1;
            }
            char *nb = realloc(buf, cap);
            if (!nb) {
                free(buf);
                fclose(f);
                snprintf(err, errlen, "out of memory");
                return -1;
            }
            buf = nb;
        }
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0)
            break;
    }
    fclose(f);
    buf[n] = 0;
    *out = buf;
    *len = n;
    return 0;
}

static void note_offer(struct mxg_stlist_source *s, int rc, const char *source, const char *err);

/* A synchronous offer (load_local: before any listener opens), noted. */
static void offer(struct mxg_stlist_source *s, const char *json, size_t jlen, const char *sig,
                  size_t slen, const char *source)
{
    char err[400];
    int rc = mxg_stlist_store_offer(s->store, json, jlen, sig, slen, source, err, sizeof err);
    note_offer(s, rc, source, err);
}

static void next_step(struct mxg_stlist_source *s);

/* The offer's outcome noted as offer() notes it. */
static void note_offer(struct mxg_stlist_source *s, int rc, const char *source, const char *err)
{
    char what[600];
    if (rc > 0)
        snprintf(what, sizeof what, "accepted %s", source);
    else if (rc == 0)
        snprintf(what, sizeof what, "%s: %s", source, err);
    else
        snprintf(what, sizeof what, "rejected %s: %s", source, err);
    note(s, rc, what);
}

/* Thread pool: gpgv, the temporary files and the parse, on the candidate only. */
static void check_work(uv_work_t *req)
{
    struct mxg_stlist_source *s = req->data;
    mxg_stlist_candidate_check(s->cand);
}

/* Loop: the checked candidate installed (as mxg_stlist_store_offer() would), then the
 * update goes on; after mxg_stlist_source_free() it is dropped and s freed here. */
static void check_done(uv_work_t *req, int status)
{
    struct mxg_stlist_source *s = req->data;
    char err[400];
    int rc;
    s->checking = 0;
    if (s->freeing) {
        mxg_stlist_candidate_free(s->cand);
        s->cand = NULL;
        if (s->closing == 0)
            free(s);
        return;
    }
    if (status != 0) {
        mxg_stlist_candidate_free(s->cand);
        snprintf(err, sizeof err, "the signature check could not run");
        rc = -1;
    } else {
        rc = mxg_stlist_store_install(s->store, s->cand, s->cand_source, err, sizeof err);
    }
    s->cand = NULL;
    note_offer(s, rc, s->cand_source, err);
    next_step(s);
}

/* An update's offer, verified off the loop: the candidate is checked on the thread pool and
 * installed from check_done(), which continues the update (s->step already set): returns 1.
 * A check that cannot start is a failed offer (noted; the list in force stays): returns 0
 * and the caller goes on. */
static int offer_async(struct mxg_stlist_source *s, const char *json, size_t jlen,
                        const char *sig, size_t slen, const char *source)
{
    snprintf(s->cand_source, sizeof s->cand_source, "%s", source);
    if (!(s->cand = mxg_stlist_candidate_new(s->store, json, jlen, sig, slen))) {
        note_offer(s, -1, source, "out of memory");
        return 0;
    }
    s->check_req.data = s;
    if (uv_queue_work(s->loop, &s->check_req, check_work, check_done) != 0) {
        mxg_stlist_candidate_free(s->cand);
        s->cand = NULL;
        note_offer(s, -1, source, "cannot queue the signature check");
        return 0;
    }
    s->checking = 1;
    return 1;
}

/* policy_list.file and its .asc read into *json / *sig (caller frees); 0, or -1 noted. */
static int read_list_file(struct mxg_stlist_source *s, char **json, size_t *jlen, char **sig,
                          size_t *slen)
{
    char err[300], sigpath[MXG_CFG_PATH_MAX + 8];
    snprintf(sigpath, sizeof sigpath, "%s.asc", s->cfg->list_file);
    if (read_file(s->cfg->list_file, json, jlen, err, sizeof err) < 0 ||
        read_file(sigpath, sig, slen, err, sizeof err) < 0) {
        note(s, -1, err);
        return -1;
    }
    return 0;
}

/* An update's file step: read now, verified on the thread pool; 1 when check_done() will
 * continue the update, 0 when the caller goes on. */
static int from_file_async(struct mxg_stlist_source *s)
{
    char *json = NULL, *sig = NULL;
    size_t jlen = 0, slen = 0;
    int started = 0;
    if (read_list_file(s, &json, &jlen, &sig, &slen) == 0)
        started = offer_async(s, json, jlen, sig, slen, s->cfg->list_file);
    free(json);
    free(sig);
    return started;
}

/* load_local's file step, synchronous (before any listener opens). */
static void from_file(struct mxg_stlist_source *s)
{
    char *json = NULL, *sig = NULL;
    size_t jlen = 0, slen = 0;
    if (read_list_file(s, &json, &jlen, &sig, &slen) == 0)
        offer(s, json, jlen, sig, slen, s->cfg->list_file);
    free(json);
    free(sig);
}

static int split_url(struct mxg_stlist_source *s, const char *url)
{
    const char *h = url + 8; /* "https://" checked by config */
    const char *slash = strchr(h, '/');
    size_t hl = slash ? (size_t)(slash - h) : strlen(h);
    if (hl == 0 || hl >= sizeof s->host)
        return -1;
    memcpy(s->host, h, hl);
    s->host[hl] = 0;
    s->port = 443;
    char *colon = strrchr(s->host, ':');
    if (colon && !strchr(s->host, ']')) {
        *colon = 0;
        s->port = atoi(colon + 1);
        if (s->port <= 0 || s->port > 65535)
            return -1;
    }
    snprintf(s->path, sizeof s->path, "%s", slash ? slash : "/");
    return 0;
}

static void on_https(void *arg, const struct mxg_https_result *r)
{
    struct mxg_stlist_source *s = arg;
    s->hr = NULL;
    char what[600];
    if (r->err != MXG_HTTPS_OK) {
        snprintf(what, sizeof what, "download of https://%s:%d%s%s failed: %s: %s", s->host,
                 s->port, s->path, s->step == STEP_URL_SIG ? ".asc" : "", mxg_https_err_name(r->err),
                 r->why);
        note(s, -1, what);
        s->step = STEP_DONE;
        next_step(s);
        return;
    }
    if (s->step == STEP_URL_JSON) {
        s->json = malloc(r->body_len + 1);
        if (!s->json) {
            note(s, -1, "out of memory");
            s->step = STEP_DONE;
        } else {
            memcpy(s->json, r->body, r->body_len);
            s->json[r->body_len] = 0;
            s->json_len = r->body_len;
            s->step = STEP_URL_SIG;
        }
    } else {
        s->step = STEP_DONE;
        if (offer_async(s, s->json, s->json_len, r->body, r->body_len, s->cfg->list_url))
            return; /* check_done() continues */
    }
    next_step(s);
}

static void get(struct mxg_stlist_source *s, const char *suffix)
{
    char path[600];
    snprintf(path, sizeof path, "%s%s", s->path, suffix);
    struct mxg_https_opts o = {
        .host = s->host,
        .port = s->port,
        .path = path,
        .addrs = s->addrs,
        .n_addrs = s->n_addrs,
        .connect_timeout_ms = s->cfg->sts_connect_timeout_ms,
        .total_timeout_ms = s->cfg->sts_fetch_timeout_ms * 4,
        .max_body = MAX_LIST_SIZE,
        .require_ctype = NULL,
        .source_ip = s->addrs[0].ss_family == AF_INET6 ? s->cfg->source_ipv6 : s->cfg->source_ipv4,
    };
    if (mxg_https_get(s->https, &o, on_https, s, &s->hr) < 0) {
        note(s, -1, "cannot start the download");
        s->step = STEP_DONE;
        next_step(s);
    }
}

static void on_addr(void *arg, const struct mxg_addr_result *a)
{
    struct mxg_stlist_source *s = arg;
    s->dq = NULL;
    if (a->status != MXG_DNS_OK || a->n == 0) {
        char what[400];
        snprintf(what, sizeof what, "cannot resolve %s: %s", s->host,
                 a->why[0] ? a->why : mxg_dns_status_name(a->status));
        note(s, -1, what);
        s->step = STEP_DONE;
        next_step(s);
        return;
    }
    s->n_addrs = a->n;
    memcpy(s->addrs, a->addr, sizeof s->addrs);
    s->step = STEP_URL_JSON;
    next_step(s);
}

static void next_step(struct mxg_stlist_source *s)
{
    switch (s->step) {
    case STEP_FILE: {
        int later = 0;
        s->step = STEP_URL_ADDR;
        if (s->cfg->list_file[0] && !s->skip_file)
            later = from_file_async(s);
        s->skip_file = 0;
        if (later)
            return; /* check_done() continues at STEP_URL_ADDR */
    }
        /* fall through */
    case STEP_URL_ADDR:
        if (!s->cfg->list_url[0] || !s->https) {
            s->step = STEP_DONE;
            break;
        }
        if (split_url(s, s->cfg->list_url) < 0) {
            note(s, -1, "policy_list.url cannot be parsed");
            s->step = STEP_DONE;
            break;
        }
        if (mxg_dns_lookup_addr(s->dns, s->host, on_addr, s, &s->dq) < 0) {
            note(s, -1, "cannot start the address lookup");
            s->step = STEP_DONE;
            break;
        }
        return;
    case STEP_URL_JSON:
        get(s, "");
        return;
    case STEP_URL_SIG:
        get(s, ".asc");
        return;
    case STEP_DONE:
        break;
    }
    finish(s);
}

/* The file source is read synchronously; report from the loop anyway. */
static void kick_cb(uv_timer_t *t)
{
    next_step(t->data);
}

int mxg_stlist_source_update(struct mxg_stlist_source *s, mxg_stlist_update_cb cb, void *arg)
{
    if (s->busy)
        return -1;
    s->busy = 1;
    s->skip_file = 0;
    s->cb = cb;
    s->cb_arg = arg;
    s->result = -1;
    s->msg[0] = 0;
    s->step = STEP_FILE;
    if (!s->cfg->list_file[0] && !s->cfg->list_url[0]) {
        s->result = 0;
        snprintf(s->msg, sizeof s->msg, "no policy_list.file or policy_list.url configured");
    }
    uv_timer_start(&s->kick, kick_cb, 0, 0);
    return 0;
}

static void on_refresh(uv_timer_t *t)
{
    struct mxg_stlist_source *s = t->data;
    if (!s->busy && mxg_stlist_source_update(s, NULL, NULL) == 0)
        s->skip_file = s->skip_first;
    s->skip_first = 0;
    uv_timer_start(&s->refresh, on_refresh, s->cfg->list_refresh_ms, 0);
}

/* Stale and expired lists are an operator's problem: say so, loudly. */
static void on_watch(uv_timer_t *t)
{
    struct mxg_stlist_source *s = t->data;
    int64_t now = (int64_t)time(NULL);
    struct mxg_stlist_status st;
    mxg_stlist_store_status(s->store, now, &st);
    if (!st.have)
        return;
    if (st.expired) {
        if (now - s->last_expired_warning >= (int64_t)(s->cfg->list_expired_warn_ms / 1000)) {
            s->last_expired_warning = now;
            LOG_E("list", "the policy list in use EXPIRED at %lld and is NOT applied (signer %s); "
                          "update it (policy_list.file / policy_list.url)",
                  (long long)st.expires, st.signer);
        }
    } else if ((uint64_t)(now - st.timestamp) * 1000 > s->cfg->list_stale_ms) {
        LOG_W("list", "the policy list in use is %lld hours old (timestamp %lld); it should be "
                      "refreshed at least every %llu hours",
              (long long)((now - st.timestamp) / 3600), (long long)st.timestamp,
              (unsigned long long)(s->cfg->list_stale_ms / 3600000));
    }
}

struct mxg_stlist_source *mxg_stlist_source_new(uv_loop_t *loop, const struct mxg_config *cfg,
                                                struct mxg_dns *dns, struct mxg_https *https,
                                                struct mxg_stlist_store *store)
{
    struct mxg_stlist_source *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->loop = loop;
    s->cfg = cfg;
    s->dns = dns;
    s->https = https;
    s->store = store;
    s->last_expired_warning = -((int64_t)1 << 40);
    uv_timer_init(loop, &s->refresh);
    uv_timer_init(loop, &s->watch);
    uv_timer_init(loop, &s->kick);
    s->refresh.data = s->watch.data = s->kick.data = s;
    return s;
}

/* "in force: timestamp T, N policies (SOURCE)" or why nothing is. */
static void describe_in_force(const struct mxg_stlist_source *s, char *out, size_t cap)
{
    struct mxg_stlist_status st;
    int64_t now = (int64_t)time(NULL);
    mxg_stlist_store_status(s->store, now, &st);
    if (!st.have)
        snprintf(out, cap, "no verified list in force");
    else if (st.expired)
        snprintf(out, cap, "no list in force (the last verified one, from %s, expired at %lld)",
                 st.source, (long long)st.expires);
    else
        snprintf(out, cap, "in force: the list of timestamp %lld, %d policies, from %s",
                 (long long)st.timestamp, st.n_policies, st.source);
}

int mxg_stlist_source_load_local(struct mxg_stlist_source *s, char *msg, size_t msglen)
{
    char what[400];
    if (s->busy) {
        snprintf(msg, msglen, "an update is already running");
        return -1;
    }
    s->result = 0;
    s->msg[0] = 0;
    if (s->cfg->list_file[0]) {
        s->result = -1;
        from_file(s);
    } else {
        snprintf(s->msg, sizeof s->msg, "no policy_list.file");
    }
    s->local_loaded = 1;
    describe_in_force(s, what, sizeof what);
    if (s->result < 0)
        LOG_W("list", "policy list loaded: %s; %s", s->msg, what);
    else
        LOG_N("list", "policy list loaded: %s; %s", s->msg, what);
    snprintf(msg, msglen, "%s; %s", s->msg, what);
    return s->result;
}

void mxg_stlist_source_start(struct mxg_stlist_source *s)
{
    if (s->local_loaded && !s->cfg->list_url[0]) {
        /* the file was read a moment ago: the next look is the regular one */
        uv_timer_start(&s->refresh, on_refresh, s->cfg->list_refresh_ms, 0);
    } else {
        s->skip_first = s->local_loaded;
        uv_timer_start(&s->refresh, on_refresh, 0, 0);
    }
    uint64_t w = s->cfg->list_expired_warn_ms < 60000 ? s->cfg->list_expired_warn_ms : 60000;
    uv_timer_start(&s->watch, on_watch, 1000, w);
}

/* libuv runs close callbacks in no promised order: free s after the last. */
static void closed(uv_handle_t *h)
{
    struct mxg_stlist_source *s = h->data;
    if (--s->closing == 0 && !s->checking)
        free(s);
}

void mxg_stlist_source_free(struct mxg_stlist_source *s)
{
    if (!s)
        return;
    if (s->dq)
        mxg_dns_cancel(s->dq);
    if (s->hr)
        mxg_https_cancel(s->hr);
    free(s->json);
    s->json = NULL;
    s->cb = NULL;
    s->freeing = 1; /* a check in flight: check_done() frees s after the handles closed */
    s->closing = 3;
    uv_close((uv_handle_t *)&s->refresh, closed);
    uv_close((uv_handle_t *)&s->kick, closed);
    uv_close((uv_handle_t *)&s->watch, closed); /* the last callback frees s */
}
