/* app/parts.c — the composition root: the long-lived parts of a command run
 * (DNS, TLS, policy sources, TLSRPT, the report mailer) opened in order,
 * wired into the upstream environment, and closed again. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "../dns/dns.h"
#include "../http/https.h"
#include "../policy/sts.h"
#include "../policy/sts_cache.h"
#include "../policy/sts_merge.h"
#include "../policy/stlist.h"
#include "../policy/stlist_source.h"
#include "../proxy/outbound/conncache.h"
#include "../proxy/outbound/report_mailer.h"
#include "../report/tlsrpt.h"
#include "../tls/tls_engine.h"
#include "../core/log.h"
#include "app.h"
#include "metrics_http.h"
#include "status.h"

/* The upstream TLS client context from tls.* (ca_file, versions, ciphers,
 * client certificate). NULL with err. */
struct mxg_tls_ctx *app_client_tls(const struct mxg_config *cfg, char *err, size_t errlen)
{
    struct mxg_tls_client_opts o = {
        .cafile = cfg->tls_ca_file[0] ? cfg->tls_ca_file : NULL,
        .min_version = mxg_parse_tls_version(cfg->tls_min_version),
        .max_version = mxg_parse_tls_version(cfg->tls_max_version),
        .ciphers = cfg->tls_ciphers,
        .ciphersuites = cfg->tls_ciphersuites,
        .cert_file = cfg->tls_client_cert,
        .key_file = cfg->tls_client_key,
    };
    if (o.min_version < 0)
        o.min_version = 0; /* checked by the configuration */
    if (o.max_version < 0)
        o.max_version = 0;
    return mxg_tls_ctx_new_client_opts(&o, err, errlen);
}

/* uv_walk callback: close every handle not yet closing. */
static void close_walk(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

/* state.directory exists (created 0700 if missing); 0, or -1 with err. */
int app_ensure_state_dir(const struct mxg_config *cfg, char *err, size_t errlen)
{
    if (mkdir(cfg->state_dir, 0700) < 0 && errno != EEXIST) {
        snprintf(err, errlen, "state.directory %s: %s", cfg->state_dir, strerror(errno));
        return -1;
    }
    return 0;
}

/* The long-lived parts every command needs: DNS, TLS, and (when enabled)
 * MTA-STS with its HTTPS client and persistent cache in the state
 * directory. Returns 0, or -1 with err. */
int app_open_parts(struct app *app, int persistent, char *err, size_t errlen)
{
    const struct mxg_config *cfg = &app->cfg;
    char e[1024];
    app->dns = mxg_dns_new(&app->loop, cfg, e, sizeof e);
    if (!app->dns) {
        snprintf(err, errlen, "DNS: %s", e);
        return -1;
    }
    const char *ca = cfg->tls_ca_file[0] ? cfg->tls_ca_file : NULL;
    app->tls = app_client_tls(cfg, e, sizeof e);
    if (!app->tls) {
        snprintf(err, errlen, "TLS: %s", e);
        return -1;
    }
    if (mxg_policy_maps_load(cfg, &app->maps, e, sizeof e) < 0) {
        snprintf(err, errlen, "%s", e);
        return -1;
    }
    if (app->maps.overrides)
        LOG_N("main", "tls.policy_map %s: %d override(s)", mxg_override_map_source(app->maps.overrides),
              mxg_override_map_count(app->maps.overrides));
    if (app->maps.routes)
        LOG_N("main", "upstream.route_map %s: %d route(s)", mxg_route_map_source(app->maps.routes),
              mxg_route_map_count(app->maps.routes));
    if (cfg->rpt_enabled && persistent) {
        if (app_ensure_state_dir(cfg, err, errlen) < 0)
            return -1;
        char path[MXG_CFG_PATH_MAX + 32];
        snprintf(path, sizeof path, "%s/tlsrpt.db", cfg->state_dir);
        app->rpt = mxg_rpt_open(&app->loop, path, cfg->rpt_flush_ms, e, sizeof e);
        if (!app->rpt) {
            snprintf(err, errlen, "%s (set tlsrpt.enabled = false to run without TLSRPT)", e);
            return -1;
        }
    }
    int need_https = cfg->sts_enabled || cfg->list_url[0];
    if (need_https && !(app->https = mxg_https_new(&app->loop, ca, e, sizeof e))) {
        snprintf(err, errlen, "HTTPS client: %s", e);
        return -1;
    }
    /* a fleet member with only the keyring gets its list from the other members */
    if (cfg->list_file[0] || cfg->list_url[0] ||
        (cfg->list_keyring[0] && cfg->state_backend == MXG_STATE_POSTGRESQL)) {
        if (app_ensure_state_dir(cfg, err, errlen) < 0)
            return -1;
        app->stlist = mxg_stlist_store_open(cfg->state_dir, cfg->list_keyring, e, sizeof e);
        if (!app->stlist) {
            snprintf(err, errlen, "policy list: %s", e);
            return -1;
        }
        app->stlist_src = mxg_stlist_source_new(&app->loop, cfg, app->dns, app->https, app->stlist);
        if (!app->stlist_src) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
    }
    if (app->rpt && cfg->rpt_send) {
        if (!app->https && !(app->https = mxg_https_new(&app->loop, ca, e, sizeof e))) {
            snprintf(err, errlen, "HTTPS client: %s", e);
            return -1;
        }
        char host[256] = "";
        gethostname(host, sizeof host - 1);
        const char *me = cfg->hostname[0] ? cfg->hostname : host;
        snprintf(app->org_name, sizeof app->org_name, "%s", cfg->rpt_org[0] ? cfg->rpt_org : me);
        if (cfg->rpt_contact[0])
            snprintf(app->org_contact, sizeof app->org_contact, "%s", cfg->rpt_contact);
        else
            snprintf(app->org_contact, sizeof app->org_contact, "mailto:postmaster@%s", me);
        snprintf(app->org_submitter, sizeof app->org_submitter, "%s",
                 cfg->rpt_submitter[0] ? cfg->rpt_submitter : me);
        struct mxg_rpt_org org = {app->org_name, app->org_contact, app->org_submitter};
        app->rpt_sender = mxg_rpt_sender_new(&app->loop, app->rpt, app->dns, app->https, &org, 0);
        if (!app->rpt_sender) {
            snprintf(err, errlen, "TLSRPT sender: out of memory");
            return -1;
        }
        struct mxg_rpt_send_cfg sc = {
            .backoff_base_s = cfg->rpt_backoff_ms / 1000,
            .max_attempts = cfg->rpt_max_attempts,
            .connect_timeout_ms = cfg->sts_connect_timeout_ms,
            .total_timeout_ms = cfg->sts_fetch_timeout_ms,
        };
        mxg_rpt_sender_configure(app->rpt_sender, &sc);
        if (cfg->rpt_dkim_key[0]) {
            const char *dom = cfg->rpt_dkim_domain[0] ? cfg->rpt_dkim_domain : app->org_submitter;
            app->rpt_dkim = mxg_rpt_dkim_load(cfg->rpt_dkim_key, cfg->rpt_dkim_selector, dom, e,
                                              sizeof e);
            if (!app->rpt_dkim) {
                snprintf(err, errlen, "TLSRPT: %s (unset tlsrpt.dkim_key_file to run without "
                                      "mailed reports)", e);
                return -1;
            }
        }
        app_env(app, &app->mail_env);
        struct mxg_rpt_mailer mailer;
        if (!(app->rpt_mailer = mxg_report_mailer_new(&app->mail_env))) {
            snprintf(err, errlen, "TLSRPT mailer: out of memory");
            return -1;
        }
        mxg_report_mailer_get(app->rpt_mailer, &mailer);
        mxg_rpt_sender_set_mail(app->rpt_sender, &mailer, app->rpt_dkim, cfg->rpt_from);
    }
    if (!cfg->sts_enabled)
        return 0;
    if (persistent) {
        if (app_ensure_state_dir(cfg, err, errlen) < 0)
            return -1;
        char path[MXG_CFG_PATH_MAX + 32];
        snprintf(path, sizeof path, "%s/mta-sts.db", cfg->state_dir);
        app->sts_cache = mxg_sts_cache_open(path, e, sizeof e);
        if (!app->sts_cache) {
            snprintf(err, errlen, "MTA-STS cache %s: %s (set mta_sts.enabled = false to run "
                                  "without MTA-STS)", path, e);
            return -1;
        }
    }
    app->sts = mxg_sts_new(&app->loop, cfg, app->dns, app->https, app->sts_cache);
    if (!app->sts) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

/* Contract: app.h. */
void app_state_opts(const struct mxg_config *cfg, struct mxg_state_opts *o)
{
    memset(o, 0, sizeof *o);
    o->backend = cfg->state_backend == MXG_STATE_POSTGRESQL ? "postgresql" : "sqlite";
    o->conninfo = cfg->state_pg;
    o->password_file = cfg->state_pg_password_file;
    o->instance = cfg->state_instance;
    o->sync_ms = cfg->state_sync_ms;
    o->migrate = cfg->state_migrate;
    o->retention_ms = cfg->state_retention_ms;
    o->prune_ms = cfg->state_prune_ms;
}

/* mxg_sts stored-policy observer: publish the fresh policy to the fleet. */
static void sts_stored(void *arg, const struct mxg_sts_cache_entry *e)
{
    struct app *app = arg;
    struct mxg_state_sts_row row = {e->domain, e->id, e->body, e->body_len, e->fetched_at,
                                    e->expires_at};
    mxg_state_sts_publish(app->state, &row, (int64_t)time(NULL));
}

/* The take() of the durable MTA-STS outbox: a cache entry handed to state/ as its row. */
struct sts_take {
    void (*put)(void *parg, const struct mxg_state_sts_row *row);
    void *parg;
    int64_t before;                      /* fetched before this (Unix s): never pushed */
    struct mxg_sts_cache_entry *stale;   /* their keys (malloc'd), removed after the take */
    int n_stale, cap_stale, stale_oom;
};

/* mxg_sts_cache_outbox_take callback: one outbox row converted, or set aside when it is
 * older than state.outbox_max_age. */
static void sts_outbox_row(void *arg, const struct mxg_sts_cache_entry *e)
{
    struct sts_take *t = arg;
    if (e->fetched_at < t->before) {
        if (t->n_stale == t->cap_stale) {
            int cap = t->cap_stale ? 2 * t->cap_stale : 16;
            struct mxg_sts_cache_entry *n = realloc(t->stale, (size_t)cap * sizeof *n);
            if (!n) {
                t->stale_oom = 1;
                return;
            }
            t->stale = n, t->cap_stale = cap;
        }
        memset(&t->stale[t->n_stale], 0, sizeof t->stale[0]);
        snprintf(t->stale[t->n_stale].domain, sizeof t->stale[0].domain, "%s", e->domain);
        snprintf(t->stale[t->n_stale].id, sizeof t->stale[0].id, "%s", e->id);
        t->stale[t->n_stale++].fetched_at = e->fetched_at;
        return;
    }
    struct mxg_state_sts_row row = {e->domain, e->id, e->body, e->body_len, e->fetched_at,
                                    e->expires_at};
    t->put(t->parg, &row);
}

/* mxg_state_sts_io take(): the rows of the MTA-STS cache's outbox (policy/sts_cache.h).
 * A row fetched longer than state.outbox_max_age ago is dropped, not pushed: the database
 * may have pruned the newer fetch that replaced it (state.retention >= outbox_max_age + 1
 * day keeps every newer row a younger replay could meet), so replaying it could bring a
 * superseded policy back to the fleet. */
static int sts_outbox_take(void *arg, void (*put)(void *parg, const struct mxg_state_sts_row *row),
                           void *parg)
{
    struct app *app = arg;
    struct sts_take t = {put, parg, 0, NULL, 0, 0, 0};
    t.before = (int64_t)time(NULL) - (int64_t)(app->cfg.state_outbox_max_age_ms / 1000);
    int rc = mxg_sts_cache_outbox_take(app->sts_cache, sts_outbox_row, &t);
    if (t.n_stale > 0) {
        if (mxg_sts_cache_outbox_done(app->sts_cache, t.stale, t.n_stale) < 0)
            LOG_W("state", "MTA-STS outbox: %d push(es) older than state.outbox_max_age not "
                           "removed (skipped again at the next start)", t.n_stale);
        else
            LOG_W("state", "MTA-STS outbox: %d push(es) older than state.outbox_max_age dropped "
                           "unpushed (the fleet may hold a newer fetch)", t.n_stale);
    }
    if (t.stale_oom)
        LOG_W("state", "MTA-STS outbox: out of memory setting aside pushes older than "
                       "state.outbox_max_age (skipped, kept until the next start)");
    free(t.stale);
    return rc;
}

/* mxg_state_sts_io done(): the database acknowledged these rows: out of the outbox, in one
 * transaction (a row refreshed since stays). */
static void sts_outbox_done(void *arg, const struct mxg_state_sts_row *rows, int n)
{
    struct app *app = arg;
    struct mxg_sts_cache_entry *keys = calloc((size_t)n, sizeof *keys);
    if (!keys) {
        LOG_W("state", "MTA-STS outbox: %d pushed row(s) not removed (out of memory; pushed "
                       "again at the next start)", n);
        return;
    }
    for (int i = 0; i < n; i++) {
        snprintf(keys[i].domain, sizeof keys[i].domain, "%s", rows[i].domain);
        snprintf(keys[i].id, sizeof keys[i].id, "%s", rows[i].id);
        keys[i].fetched_at = rows[i].fetched_at;
    }
    if (mxg_sts_cache_outbox_done(app->sts_cache, keys, n) < 0)
        LOG_W("state", "MTA-STS outbox: %d pushed row(s) not removed (pushed again at the next "
                       "start, the database keeps the newest fetch)", n);
    free(keys);
}

/* mxg_state sink: a policy the fleet stored goes into the local cache (decisions read it)
 * when it is valid and a newer fetch than the local row (policy/sts_merge.h): a stale or
 * broken database row never replaces or shortens what this instance holds. */
static void sts_pulled(void *arg, const struct mxg_state_sts_row *row)
{
    struct app *app = arg;
    struct mxg_sts_cache_entry e, local, out;
    char why[256];
    int have;
    enum mxg_sts_merge m;
    if (!app->sts_cache)
        return;
    memset(&e, 0, sizeof e);
    if (strlen(row->domain) >= sizeof e.domain || strlen(row->id) >= sizeof e.id) {
        LOG_W("state", "%.64s...: policy from the fleet refused: domain or id too long (the "
                       "local copy stays)", row->domain);
        return;
    }
    snprintf(e.domain, sizeof e.domain, "%s", row->domain);
    snprintf(e.id, sizeof e.id, "%s", row->id);
    e.body = (char *)row->body;
    e.body_len = row->body_len;
    e.fetched_at = row->fetched_at;
    e.expires_at = row->expires_at;
    memset(&local, 0, sizeof local);
    if ((have = mxg_sts_cache_get(app->sts_cache, e.domain, &local)) < 0)
        return; /* cannot compare: the local copy stays (the cache logged why) */
    m = mxg_sts_merge(have ? &local : NULL, &e, (int64_t)time(NULL), &out, why, sizeof why);
    if (m == MXG_STS_MERGE_REFUSE)
        LOG_W("state", "%s: policy id %s from the fleet refused: %s (the local copy stays)",
              e.domain, e.id, why);
    else if (m == MXG_STS_MERGE_KEEP)
        LOG_D("state", "%s: policy id %s from the fleet not taken: %s", e.domain, e.id, why);
    else if (mxg_sts_cache_put(app->sts_cache, &out) == 0)
        LOG_D("state", "%s: policy id %s from the fleet stored in the local cache", e.domain,
              e.id);
    mxg_sts_cache_entry_clear(&local);
}

/* mxg_stlist_store observer: a list this instance accepted goes to the fleet. */
static void list_accepted(void *arg, const char *json, size_t json_len, const char *sig,
                          size_t sig_len, int64_t timestamp)
{
    struct app *app = arg;
    struct mxg_state_list l = {json, json_len, sig, sig_len, timestamp};
    mxg_state_list_publish(app->state, &l);
}

/* A pulled policy list on its way through the thread pool: the candidate (policy/stlist.h)
 * owns its copy of the list; the loop installs it. */
struct list_check {
    uv_work_t req;
    struct app *app;
    struct mxg_stlist_candidate *cand;
};

/* Thread pool: gpgv, the temporary files and the parse, on the candidate only. */
static void list_check_work(uv_work_t *req)
{
    struct list_check *lc = req->data;
    mxg_stlist_candidate_check(lc->cand);
}

/* Loop: the verified candidate offered to the store (gone while closing: dropped). */
static void list_check_done(uv_work_t *req, int status)
{
    struct list_check *lc = req->data;
    struct app *app = lc->app;
    char e[512];
    int rc;
    app->list_checks--;
    if (status != 0 || !app->stlist) {
        mxg_stlist_candidate_free(lc->cand);
        free(lc);
        return;
    }
    rc = mxg_stlist_store_install(app->stlist, lc->cand, "the shared state", e, sizeof e);
    free(lc);
    if (rc < 0)
        LOG_E("state", "policy list from the shared state refused: %s", e);
    else if (rc == 0)
        LOG_D("state", "policy list from the shared state: %s", e);
}

/* mxg_state list sink: the fleet's newest list, offered to the local store, which verifies
 * its signature itself (and takes it only when it is newer than the list in force); the
 * verification (gpgv, files, parse) runs on the thread pool, never on the loop. */
static void list_pulled(void *arg, const struct mxg_state_list *l)
{
    struct app *app = arg;
    struct list_check *lc;
    if (!app->stlist)
        return;
    if (!(lc = calloc(1, sizeof *lc)) ||
        !(lc->cand = mxg_stlist_candidate_new(app->stlist, l->json, l->json_len, l->sig,
                                              l->sig_len))) {
        free(lc);
        LOG_E("state", "policy list from the shared state not verified: out of memory");
        return;
    }
    lc->app = app;
    lc->req.data = lc;
    if (uv_queue_work(&app->loop, &lc->req, list_check_work, list_check_done) != 0) {
        mxg_stlist_candidate_free(lc->cand);
        free(lc);
        LOG_E("state", "policy list from the shared state not verified: cannot queue the check");
        return;
    }
    app->list_checks++;
}

/* mxg_state_rpt_io take(): the TLSRPT outbox's oldest batches, after dropping those older
 * than state.outbox_max_age; none while the report module's background write is in flight
 * (reading now would wait for it on the loop: the batches go with a later sync). */
static int rpt_take(void *arg, int max, void (*put)(void *parg, const char *id, const char *payload),
                    void *parg)
{
    struct app *app = arg;
    int64_t before = (int64_t)time(NULL) - (int64_t)(app->cfg.state_outbox_max_age_ms / 1000);
    int gone;
    if (mxg_rpt_outbox_busy(app->rpt))
        return 0;
    /* older than state.outbox_max_age: never pushed (the database may have pruned its id,
     * state.retention), so it is dropped here, loudly */
    if ((gone = mxg_rpt_outbox_expire(app->rpt, before)) > 0)
        LOG_E("state", "TLSRPT outbox: %d batch(es) older than state.outbox_max_age dropped "
                       "unpushed (their counts are in this instance's tlsrpt.db only)", gone);
    return mxg_rpt_outbox_take(app->rpt, max, put, parg) < 0 ? -1 : 0;
}

/* mxg_state_rpt_io done(): the database has the batches: out of the outbox, in one
 * transaction. While a background write is in flight they stay (no wait on the loop): the
 * next sync pushes them again and the database only acknowledges them (by their ids). */
static void rpt_done(void *arg, const char *const *ids, int n)
{
    struct app *app = arg;
    if (mxg_rpt_outbox_busy(app->rpt)) {
        LOG_D("state", "TLSRPT outbox: %d pushed batch(es) left for the next sync (a write is "
                       "in flight)", n);
        return;
    }
    if (mxg_rpt_outbox_done(app->rpt, ids, n) < 0)
        LOG_W("state", "TLSRPT outbox: %d batch(es) pushed but not removed (pushed again, "
                       "ignored by their ids)", n);
}

/* The fleet gate's claim (report/'s mxg_rpt_gate, state/'s claim): the answer converted. */
struct gate_claim {
    mxg_rpt_claim_cb cb;   /* NULL: cancelled by report/ (the answer is dropped) */
    void *arg;
};

/* mxg_state claim callback: hands the answer to report/ in its own terms. */
static void gate_claimed(void *arg, const struct mxg_state_claim *c)
{
    struct gate_claim *g = arg;
    enum mxg_rpt_claim_res res[64];
    int n = c->n < 64 ? c->n : 64;
    for (int i = 0; i < n; i++)
        res[i] = c->res[i] == MXG_STATE_CLAIM_MINE      ? MXG_RPT_CLAIM_MINE
                 : c->res[i] == MXG_STATE_CLAIM_SENT    ? MXG_RPT_CLAIM_SENT
                 : c->res[i] == MXG_STATE_CLAIM_GAVE_UP ? MXG_RPT_CLAIM_GAVE_UP
                                                        : MXG_RPT_CLAIM_HELD;
    struct mxg_rpt_claim rc = {c->ok, c->err, c->report_id, c->payload, res, c->lease_left, n};
    mxg_rpt_claim_cb cb = g->cb;
    void *cbarg = g->arg;
    free(g);
    if (cb)
        cb(cbarg, &rc);
}

/* mxg_rpt_gate claim(): a claim in the shared state (the handle is state/'s). */
static int gate_claim(void *ctx, const char *day, const char *domain, const char *const *ruas,
                      int n, const char *report_id, mxg_rpt_claim_cb cb, void *arg,
                      void **handle)
{
    struct app *app = ctx;
    struct gate_claim *g = malloc(sizeof *g);
    if (!g || n > 64) {
        free(g);
        return -1;
    }
    g->cb = cb, g->arg = arg;
    if (mxg_state_rpt_claim(app->state, day, domain, ruas, n, report_id,
                            app->cfg.state_report_lease_ms / 1000, gate_claimed, g) < 0) {
        free(g);
        return -1;
    }
    *handle = g;
    return 0;
}

/* mxg_rpt_gate cancel(): state/ still answers once (then the context is freed), report/
 * hears nothing. */
static void gate_cancel(void *ctx, void *handle)
{
    (void)ctx;
    ((struct gate_claim *)handle)->cb = NULL;
}

/* mxg_rpt_gate done(): the fleet sends this rua no more. */
static void gate_done(void *ctx, const char *day, const char *domain, const char *rua,
                      int gave_up)
{
    struct app *app = ctx;
    mxg_state_rpt_claim_done(app->state, day, domain, rua, gave_up);
}

/* Contract: app.h. */
int app_open_state(struct app *app, char *err, size_t errlen)
{
    struct mxg_state_opts o;
    struct mxg_state_status ss;
    app_state_opts(&app->cfg, &o);
    if (!(app->state = mxg_state_open(&app->loop, &o, err, errlen)))
        return -1;
    mxg_state_status(app->state, &ss);
    if (ss.link == MXG_STATE_LOCAL) /* a fleet of one: the local files are the whole state */
        return 0;
    if (app->sts && app->sts_cache) {
        struct mxg_state_sts_io sio = {sts_outbox_take, sts_outbox_done, app};
        mxg_sts_cache_set_outbox(app->sts_cache, 1); /* fresh policies durable until pushed */
        mxg_state_set_sts_io(app->state, &sio);
        mxg_sts_set_stored_cb(app->sts, sts_stored, app);
        mxg_state_set_sts_sink(app->state, sts_pulled, app);
    }
    if (app->stlist) {
        mxg_stlist_store_set_accepted_cb(app->stlist, list_accepted, app);
        mxg_state_set_list_sink(app->state, list_pulled, app);
    }
    if (app->rpt) { /* every batch of counters also goes to the outbox, pushed by the state */
        struct mxg_state_rpt_io io = {rpt_take, rpt_done, app};
        if (mxg_rpt_set_outbox(app->rpt, 1) < 0) {
            snprintf(err, errlen, "TLSRPT outbox: the database %s/tlsrpt.db failed",
                     app->cfg.state_dir);
            return -1;
        }
        mxg_state_set_rpt_io(app->state, &io);
    }
    if (app->rpt_sender) { /* one instance of the fleet sends each report */
        struct mxg_rpt_gate g = {gate_claim, gate_cancel, gate_done,
                                 app->cfg.state_report_lease_ms / 1000, app};
        mxg_rpt_sender_set_gate(app->rpt_sender, &g);
    }
    return 0;
}

/* The local policy sources that app_open_parts() does not read itself: the
 * policy list's file (policy_list.file), synchronously, through the same
 * function for `run`, `check` and `list show`. policy_list.url is never
 * waited for. */
void app_load_local(struct app *app)
{
    char msg[1200];
    if (app->stlist_src)
        mxg_stlist_source_load_local(app->stlist_src, msg, sizeof msg);
}

/* Release what app_open_parts() made; run the loop afterwards so that
 * handles close. */
void app_close_parts(struct app *app)
{
    if (app->sts)
        mxg_sts_set_stored_cb(app->sts, NULL, NULL);
    if (app->stlist)
        mxg_stlist_store_set_accepted_cb(app->stlist, NULL, NULL);
    if (app->rpt_sender) /* before the state: it cancels its claims there */
        mxg_rpt_sender_free(app->rpt_sender);
    app->rpt_sender = NULL;
    mxg_state_close(app->state); /* no sink call after this; work in flight is discarded */
    app->state = NULL;
    mxg_report_mailer_free(app->rpt_mailer); /* after the sender: it held handles */
    app->rpt_mailer = NULL;
    mxg_rpt_dkim_free(app->rpt_dkim);
    app->rpt_dkim = NULL;
    if (app->rpt)
        mxg_rpt_close(app->rpt); /* writes every buffered count */
    app->rpt = NULL;
    if (app->stlist_src)
        mxg_stlist_source_free(app->stlist_src);
    app->stlist_src = NULL;
    if (app->sts)
        mxg_sts_free(app->sts);
    app->sts = NULL;
    if (app->https)
        mxg_https_free(app->https);
    app->https = NULL;
    if (app->dns)
        mxg_dns_free(app->dns);
    app->dns = NULL;
    if (app->sts_cache)
        mxg_sts_cache_close(app->sts_cache);
    app->sts_cache = NULL;
    if (app->stlist)
        mxg_stlist_store_close(app->stlist);
    app->stlist = NULL;
    mxg_policy_maps_free(&app->maps); /* legs keep copies of what they use */
    mxg_conncache_shutdown(app->conncache); /* idle upstream connections: QUIT */
}

/* The upstream environment (loop, config, parts) that legs and the check use. */
void app_env(struct app *app, struct mxg_upstream_env *env)
{
    memset(env, 0, sizeof *env);
    env->loop = &app->loop;
    env->cfg = &app->cfg;
    env->dns = app->dns;
    env->tls = app->tls;
    env->sts = app->sts;
    env->stlist = app->stlist;
    env->rpt = app->rpt;
    env->metrics = app->metrics;
    env->maps = &app->maps;
    env->conncache = app->conncache;
    env->tls_resume = app->tls_resume;
    env->watch = app->status_track ? mxg_status_track_watch(app->status_track) : NULL;
}

/* Everything off: parts released, every handle closed, the loop closed. */
void app_shutdown(struct app *app)
{
    mxg_metrics_http_stop(app->metrics_http);
    app->metrics_http = NULL;
    app_close_parts(app);
    uv_walk(&app->loop, close_walk, NULL);
    uv_run(&app->loop, UV_RUN_DEFAULT);
    uv_loop_close(&app->loop);
    mxg_conncache_free(app->conncache); /* its slots came back from the close callbacks */
    app->conncache = NULL;
    mxg_tls_resume_free(app->tls_resume); /* after every engine */
    app->tls_resume = NULL;
    if (app->tls)
        mxg_tls_ctx_free(app->tls);
    app->tls = NULL;
}

/* Longer than any leg's own end: the QUIT round trip's 5 s timer
 * (proxy/outbound/leg.c mxg_leg_close). */
#define APP_FINISH_MAX_MS 10000

/* uv_walk callback: count (int *arg) the handles still active. */
static void count_active(uv_handle_t *h, void *arg)
{
    if (uv_is_active(h) && !uv_is_closing(h))
        ++*(int *)arg;
}

/* The guard of app_finish_oneshot() ran out (itself no longer active: a
 * one-shot timer is stopped before its callback): say so, stop the run. */
static void on_finish_guard(uv_timer_t *t)
{
    int n = 0;
    uv_walk(t->loop, count_active, &n);
    LOG_W("main", "%d handle(s) still busy %d s after the command's work was done: closing them",
          n, APP_FINISH_MAX_MS / 1000);
    uv_stop(t->loop);
}

/* See app.h: calloc, configuration, privileges, quiet logging, the loop. */
struct app *app_oneshot_new(const char *file, enum mxg_log_level min_level)
{
    struct app *app = calloc(1, sizeof *app);
    if (!app)
        return NULL;
    if (mxg_cli_load(&app->cfg, file) < 0 || mxg_cli_privs(&app->cfg) < 0) {
        free(app);
        return NULL;
    }
    mxg_log_setup(app->cfg.log_level > min_level ? app->cfg.log_level : min_level, 0);
    uv_loop_init(&app->loop);
    return app;
}

/* The end of a one-shot command (check, report), before app_shutdown():
 * release the parts, then let the loop run out by itself, as mxg_cli_run's
 * SIGTERM drain does after app_stopped(). What is still under way then
 * finishes on its own terms: an upstream leg closed after its transaction
 * (the report mail's, after the dot) sends QUIT and waits for the reply or
 * its 5 s timer; a leg (struct mxg_leg and its route copy) and its
 * connection are freed only from their handles' close callbacks. Without
 * this run app_shutdown()'s uv_walk would close those handles with no
 * callback and the legs would never be freed (LeakSanitizer: leg_start,
 * mxg_route_copy). Bounded: a guard timer, unreferenced so that it never
 * keeps the loop alive by itself, stops the run after APP_FINISH_MAX_MS
 * (logged; app_shutdown() then closes what is left). Idempotent with
 * app_shutdown(): app_close_parts() may run twice. */
void app_finish_oneshot(struct app *app)
{
    app_close_parts(app);
    uv_timer_t guard;
    uv_timer_init(&app->loop, &guard);
    uv_timer_start(&guard, on_finish_guard, APP_FINISH_MAX_MS, 0);
    uv_unref((uv_handle_t *)&guard);
    uv_run(&app->loop, UV_RUN_DEFAULT);
    uv_close((uv_handle_t *)&guard, NULL);
    /* guard is on this stack: its close must be done before we return; one
     * non-blocking turn runs the closing handles (even after a uv_stop) */
    uv_run(&app->loop, UV_RUN_NOWAIT);
}
