/* app/run_dnsauto.c — dns.mode = "auto": which resolver path serves the
 * lookups. The stub path (dns.servers, else /etc/resolv.conf) while it
 * passes the DNSSEC self-check, else resolution from the root (getdns'
 * recursive mode, dns.root_hints); chosen at start-up and re-checked every
 * dns.auto_recheck (docs/ARCHITECTURE.md §Operating). Every switch is one
 * log line of component "dns" saying which path and why. A switch changes
 * only where new lookups go (dns/dns.h "Resolver paths"). */
#include <stdio.h>
#include <string.h>
#include <uv.h>

#include "../core/log.h"
#include "../dns/dns.h"
#include "app.h"

#define COMP "dns"
#define FAILED_PREFIX "DNSSEC self-check failed: "

/* The reason without the self-check's own prefix (the log line says it). */
static const char *reason(const char *why)
{
    if (!why || !why[0])
        return "no answer";
    return strncmp(why, FAILED_PREFIX, strlen(FAILED_PREFIX)) == 0 ? why + strlen(FAILED_PREFIX)
                                                                  : why;
}

struct sync_check {
    int ok;
    char why[512];
};

/* The self-check of path p, run to its end on the loop (start-up). */
static void check_now(struct app *app, enum mxg_dns_path p, struct sync_check *sc)
{
    sc->ok = app_dns_check_now(app, p, sc->why, sizeof sc->why);
    if (sc->ok == -2) {
        sc->ok = 0;
        snprintf(sc->why, sizeof sc->why, "the self-check could not start");
    }
}

/* Make p the path in use and say so (one line: which path and why). */
static void use_path(struct app *app, enum mxg_dns_path p, const char *why)
{
    mxg_dns_set_path(app->dns, p);
    app->dns_auto_undecided = 0;
    app_dnssec_note(app, 1, why); /* the status page's "DNSSEC path" */
    LOG_N(COMP, "mode auto -> %s (%s)", mxg_dns_path_name(p), why);
}

int app_dnsauto_choose(struct app *app)
{
    struct sync_check stub, rec;
    char why[1400];
    const char *sdesc = mxg_dns_path_desc(app->dns, MXG_DNS_PATH_STUB);
    const char *rdesc = mxg_dns_path_desc(app->dns, MXG_DNS_PATH_RECURSIVE);

    int nostub = !mxg_dns_has_path(app->dns, MXG_DNS_PATH_STUB);
    if (nostub) {
        memset(&stub, 0, sizeof stub);
        snprintf(stub.why, sizeof stub.why, "no stub resolver: %s", sdesc);
    } else {
        check_now(app, MXG_DNS_PATH_STUB, &stub);
    }
    if (stub.ok > 0) {
        snprintf(why, sizeof why, "the stub resolver %s passed the DNSSEC self-check: %s", sdesc,
                 stub.why);
        use_path(app, MXG_DNS_PATH_STUB, why);
        return 0;
    }
    check_now(app, MXG_DNS_PATH_RECURSIVE, &rec);
    if (rec.ok > 0) {
        if (nostub)
            snprintf(why, sizeof why, "there is no stub resolver: %s", sdesc);
        else
            snprintf(why, sizeof why, "the stub resolver %s failed the DNSSEC self-check: %s",
                     sdesc, reason(stub.why));
        use_path(app, MXG_DNS_PATH_RECURSIVE, why);
        return 0;
    }
    if (stub.ok < 0 && rec.ok < 0) {
        /* no answer on either path (no network yet): start, defer mail, retry */
        mxg_dns_set_path(app->dns, MXG_DNS_PATH_STUB);
        app->dns_auto_undecided = 1;
        snprintf(why, sizeof why, "no resolver path answers (stub resolver %s: %s; recursive "
                 "from %s: %s)", sdesc, reason(stub.why), rdesc, reason(rec.why));
        app_dnssec_note(app, -1, why);
        LOG_E(COMP, "mode auto: no resolver path answers the DNSSEC self-check (stub resolver %s: "
                    "%s; recursive from %s: %s); starting anyway: until one does, mail is "
                    "deferred (451 4.4.3); both are checked again every %llus",
              sdesc, reason(stub.why), rdesc, reason(rec.why),
              (unsigned long long)(app->cfg.dane_recheck_ms / 1000));
        return 1;
    }
    LOG_E(COMP, "mode auto: neither resolver path passes the DNSSEC self-check: stub resolver "
                "%s: %s; recursive from %s: %s; refusing to start: DANE needs a resolver path "
                "that passes DNSSEC (fix dns.servers / dns.root_hints / dns.trust_anchor_file, "
                "or set dane.enabled = false explicitly to run without DANE)",
          sdesc, reason(stub.why), rdesc, reason(rec.why));
    return -1;
}

/* ------------------------------------------------------------ run time */

static void on_stub_recheck(void *arg, int ok, const char *why);

/* The recursive path's check after the stub path failed at run time. */
static void on_rec_recheck(void *arg, int ok, const char *why)
{
    struct app *app = arg;
    char line[1400];
    app->dns_auto_busy = 0;
    if (ok > 0) {
        snprintf(line, sizeof line, "the stub resolver %s failed the DNSSEC self-check: %s",
                 mxg_dns_path_desc(app->dns, MXG_DNS_PATH_STUB), reason(app->dns_auto_why));
        use_path(app, MXG_DNS_PATH_RECURSIVE, line);
        uv_timer_set_repeat(&app->recheck, app->cfg.dns_auto_recheck_ms);
        return;
    }
    snprintf(line, sizeof line, "neither resolver path passes the DNSSEC self-check (stub "
             "resolver %s: %s; recursive from %s: %s)",
             mxg_dns_path_desc(app->dns, MXG_DNS_PATH_STUB), reason(app->dns_auto_why),
             mxg_dns_path_desc(app->dns, MXG_DNS_PATH_RECURSIVE), reason(why));
    app_dnssec_note(app, 0, line);
    LOG_E(COMP, "mode auto: %s; mail is deferred while this lasts", line);
    /* look again as soon as the DANE re-check would, not only every dns.auto_recheck */
    uv_timer_set_repeat(&app->recheck, app->cfg.dane_recheck_ms);
}

/* The stub path's periodic check: back to it when it passes, away from it
 * (if the recursive path passes) when it fails while in use. */
static void on_stub_recheck(void *arg, int ok, const char *why)
{
    struct app *app = arg;
    enum mxg_dns_path cur = mxg_dns_path_in_use(app->dns);
    char line[1400];
    if (ok > 0) {
        app->dns_auto_busy = 0;
        if (cur != MXG_DNS_PATH_STUB || app->dns_auto_undecided) {
            snprintf(line, sizeof line, "the stub resolver %s passes the DNSSEC self-check%s: %s",
                     mxg_dns_path_desc(app->dns, MXG_DNS_PATH_STUB),
                     cur != MXG_DNS_PATH_STUB ? " again" : "", why);
            use_path(app, MXG_DNS_PATH_STUB, line);
            uv_timer_set_repeat(&app->recheck, app->cfg.dns_auto_recheck_ms);
        }
        return;
    }
    if (cur == MXG_DNS_PATH_RECURSIVE) {
        app->dns_auto_busy = 0;
        LOG_D(COMP, "mode auto: staying recursive: the stub resolver still fails: %s", reason(why));
        return;
    }
    snprintf(app->dns_auto_why, sizeof app->dns_auto_why, "%s", why ? why : "");
    if (mxg_dns_selfcheck_path(app->dns, MXG_DNS_PATH_RECURSIVE, on_rec_recheck, app) < 0)
        app->dns_auto_busy = 0;
}

/* The re-check timer (app->recheck) in auto mode. */
static void on_auto_tick(uv_timer_t *t)
{
    struct app *app = t->data;
    if (!app->dns || app->dns_auto_busy || !mxg_dns_has_path(app->dns, MXG_DNS_PATH_STUB))
        return;
    app->dns_auto_busy = 1;
    if (mxg_dns_selfcheck_path(app->dns, MXG_DNS_PATH_STUB, on_stub_recheck, app) < 0)
        app->dns_auto_busy = 0;
}

void app_dnsauto_start(struct app *app)
{
    uint64_t every = app->dns_auto_undecided ? app->cfg.dane_recheck_ms : app->cfg.dns_auto_recheck_ms;
    uv_timer_start(&app->recheck, on_auto_tick, every, every);
}
