/* app/run_selfcheck.c — DANE needs a resolver path that passes DNSSEC: the
 * self-check before serving (refuse to start, or start deferring mail while
 * DNS does not answer) and its retry timer. */
#include <stdio.h>
#include <uv.h>

#include "../core/log.h"
#include "../dns/dns.h"
#include "app.h"

/* DANE needs a DNS path that passes DNSSEC: check it once, before serving.
 * Returns 0, or -1 (logged) when mxguard must not start. */
int app_dnssec_selfcheck(struct app *app)
{
    if (!app->cfg.dane_enabled) {
        app_dnssec_note(app, 2, "dane.enabled = false: not checked");
        LOG_W("main", "DANE is disabled (dane.enabled = false): TLSA records are ignored and "
                      "DNSSEC is not required of the resolver");
        return 0;
    }
    if (app->cfg.dns_mode == MXG_DNS_AUTO)
        return app_dnsauto_choose(app);
    struct {
        int ok;
        char why[512];
    } sc;
    sc.ok = app_dns_check_now(app, mxg_dns_path_in_use(app->dns), sc.why, sizeof sc.why);
    if (sc.ok == -2) {
        LOG_E("main", "DNSSEC self-check could not start");
        return -1;
    }
    app_dnssec_note(app, sc.ok, sc.why);
    if (sc.ok == 0) {
        LOG_E("main", "%s; refusing to start: DANE needs a resolver path that passes DNSSEC "
                      "(fix dns.servers / dns.trust_anchor_file, or set dane.enabled = false "
                      "explicitly to run without DANE)", sc.why[0] ? sc.why : "DNSSEC self-check failed");
        return -1;
    }
    if (sc.ok < 0) {
        LOG_E("main", "%s; starting anyway: until DNS answers, mail is deferred (451 4.4.3); "
                      "the check is repeated every %llus", sc.why,
              (unsigned long long)(app->cfg.dane_recheck_ms / 1000));
        return 1;
    }
    LOG_N("main", "DNSSEC self-check passed: %s", sc.why[0] ? sc.why : "ok");
    return 0;
}

/* A retried self-check's result: passed stops the timer, else log and wait. */
static void recheck_result(void *arg, int ok, const char *why)
{
    struct app *app = arg;
    app_dnssec_note(app, ok, why);
    if (ok > 0) {
        LOG_N("main", "DNSSEC self-check passed: %s", why);
        uv_timer_stop(&app->recheck);
    } else {
        LOG_E("main", "%s (mail is deferred while this lasts; next check in %llus)", why,
              (unsigned long long)(app->cfg.dane_recheck_ms / 1000));
    }
}

/* The retry timer: run the self-check again. */
static void on_recheck(uv_timer_t *t)
{
    struct app *app = t->data;
    if (app->dns)
        mxg_dns_selfcheck(app->dns, recheck_result, app);
}

void app_recheck_start(struct app *app, int retry)
{
    uv_timer_init(&app->loop, &app->recheck);
    app->recheck.data = app;
    if (app->cfg.dns_mode == MXG_DNS_AUTO && app->cfg.dane_enabled && app->dns)
        app_dnsauto_start(app);
    else if (retry)
        uv_timer_start(&app->recheck, on_recheck, app->cfg.dane_recheck_ms, app->cfg.dane_recheck_ms);
}
