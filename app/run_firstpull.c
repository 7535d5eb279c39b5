/* app/run_firstpull.c — `run` with a shared state (state.backend = "postgresql"): before the
 * listeners open, wait for the first complete pull (every page of the fleet's MTA-STS table
 * and its policy list in the local copy), bounded by state.first_pull_timeout, so that a new
 * member never serves on MTA-STS "first use" for a domain the fleet already knows (and the
 * fleet's policy list pulled then is verified and in force). A database
 * that does not answer within the bound delays the start by the bound only (logged). */
#include <uv.h>

#include "../core/log.h"
#include "../state/state.h"
#include "app.h"

/* The wait's deadline timer and its state (on the caller's stack until closed). */
struct first_pull {
    uv_timer_t timer;
    int expired, closed;
};

/* The deadline passed. */
static void on_deadline(uv_timer_t *t)
{
    ((struct first_pull *)t->data)->expired = 1;
}

/* The deadline timer is closed: the stack frame may go. */
static void on_closed(uv_handle_t *h)
{
    ((struct first_pull *)h->data)->closed = 1;
}

/* 1 when the state has nothing (more) to pull before serving, and no pulled policy list is
 * still being verified. */
static int caught_up(const struct app *app)
{
    struct mxg_state_status ss;
    mxg_state_status(app->state, &ss);
    return ss.caught_up && app->list_checks == 0;
}

/* Contract: app.h. */
void app_wait_first_pull(struct app *app)
{
    struct first_pull fp = {.expired = 0, .closed = 0};
    uint64_t ms = app->cfg.state_first_pull_ms, t0;
    struct mxg_state_status ss;
    if (!app->state || caught_up(app))
        return;
    t0 = uv_now(&app->loop);
    if (ms > 0) {
        LOG_N("main", "shared state: waiting up to %llu ms for the first complete pull "
                      "(state.first_pull_timeout)", (unsigned long long)ms);
        uv_timer_init(&app->loop, &fp.timer);
        fp.timer.data = &fp;
        uv_timer_start(&fp.timer, on_deadline, ms, 0);
        while (!fp.expired && !caught_up(app))
            uv_run(&app->loop, UV_RUN_ONCE);
        uv_close((uv_handle_t *)&fp.timer, on_closed);
        while (!fp.closed)
            uv_run(&app->loop, UV_RUN_ONCE);
    }
    if (caught_up(app)) {
        LOG_N("main", "shared state: first complete pull after %llu ms",
              (unsigned long long)(uv_now(&app->loop) - t0));
        return;
    }
    mxg_state_status(app->state, &ss);
    LOG_W("main", "shared state: no complete pull within state.first_pull_timeout (%llu ms; "
                  "link %s%s%s): serving anyway; until the pull completes, a domain whose "
                  "MTA-STS policy only other fleet members have seen is on first use here "
                  "(mail to it may go to an MX the policy does not list)",
          (unsigned long long)ms, mxg_state_link_name(ss.link), ss.error[0] ? ": " : "",
          ss.error);
}
