/* app/run_dnscheck.c — a DNSSEC self-check run to its end on the loop, for
 * start-up (run_selfcheck.c, and dns.mode auto's choice in run_dnsauto.c):
 * one place for the callback, its result and the wait. */
#include <stdio.h>
#include <string.h>
#include <uv.h>

#include "../dns/dns.h"
#include "app.h"

/* The result a self-check's callback hands over. */
struct check_wait {
    int done, ok;
    char *why;
    size_t cap;
};

/* mxg_dns_selfcheck_path() callback: note the result. */
static void on_check(void *arg, int ok, const char *why)
{
    struct check_wait *w = arg;
    w->done = 1;
    w->ok = ok;
    snprintf(w->why, w->cap, "%s", why ? why : "");
}

/* Contract: app.h. */
int app_dns_check_now(struct app *app, enum mxg_dns_path p, char *why, size_t cap)
{
    struct check_wait w = {.done = 0, .ok = 0, .why = why, .cap = cap};
    why[0] = '\0';
    if (mxg_dns_selfcheck_path(app->dns, p, on_check, &w) < 0)
        return -2;
    while (!w.done && uv_run(&app->loop, UV_RUN_ONCE))
        ;
    return w.ok;
}
