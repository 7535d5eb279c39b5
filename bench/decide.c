/* bench/decide.c — policy decisions per second (microbenchmark) and the cold
 * decision latency, with mxguard's own modules (bench/run.sh links it
 * against the static libraries of a build directory).
 *
 *   decide -c CONFIG [-n N] [-p PARALLEL] DOMAIN
 *
 * A "decision" is what a leg does before it connects (proxy/outbound/leg_connect.c, leg_tls.c):
 * the MX route of DOMAIN (MX + addresses, DNSSEC status), the DANE decision
 * of its first MX host (TLSA lookup, RFC 7672 rules), the MTA-STS lookup
 * (TXT; a policy fetch when one is published; mta_sts.enabled) and the
 * operator's override (mxg_policy_decide). The first decision runs with
 * empty caches against the configured DNS server: its wall time is the cold
 * latency. Then N decisions run, PARALLEL at a time, all answered from
 * mxguard's caches: decisions per second and the mean latency.
 * Prints "cold_ms X cached_per_s Y cached_us Z result R" (R: the DANE
 * requirement of the first host, e.g. "dane"). */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uv.h>

#include "core/config.h"
#include "core/log.h"
#include "dane/dane.h"
#include "dns/mxroute.h"
#include "http/https.h"
#include "policy/policy.h"
#include "policy/sts.h"

struct one {
    struct mxg_dns *dns;
    struct mxg_sts *sts;
    const struct mxg_config *cfg;
    const char *domain;
    struct mxg_route *route;
    struct mxg_dane_host dane;
    struct mxg_dane_query *dq;
    int route_done, sts_done, dane_done;
    void (*done)(struct one *);
};

static int todo, inflight, parallel = 1;
static char last_req[32] = "?";

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void finish(struct one *o)
{
    if (!o->route_done || !o->sts_done || !o->dane_done)
        return;
    struct mxg_policy p;
    mxg_policy_decide(o->cfg, NULL, o->domain, NULL, &p);
    snprintf(last_req, sizeof last_req, "%s", mxg_dane_req_name(o->dane.req));
    mxg_dane_host_clear(&o->dane);
    free(o->route);
    o->route = NULL;
    o->done(o);
}

static void on_dane(void *arg, const struct mxg_dane_host *h)
{
    struct one *o = arg;
    o->dq = NULL;
    mxg_dane_host_copy(&o->dane, h); /* h is valid during the callback only */
    o->dane_done = 1;
    finish(o);
}

static void on_route(void *arg, const struct mxg_route *r)
{
    struct one *o = arg;
    o->route_done = 1;
    if (r->status != MXG_ROUTE_OK || r->n == 0) {
        fprintf(stderr, "decide: %s: route %s %s\n", o->domain, mxg_route_status_name(r->status),
                r->why);
        exit(1);
    }
    o->route = mxg_route_copy(r);
    const struct mxg_route_host *h = &o->route->host[0];
    int rc = mxg_dane_host_lookup(o->dns, o->route->mx_sec, h->name, &h->addrs, 25, &o->dane,
                                  on_dane, o, &o->dq);
    if (rc != 0) {
        o->dane_done = 1;
        finish(o);
    }
}

static void on_sts(void *arg, const struct mxg_sts_result *r)
{
    (void)r;
    struct one *o = arg;
    o->sts_done = 1;
    finish(o);
}

static void start(struct one *o)
{
    o->route_done = o->sts_done = o->dane_done = 0;
    struct mxg_route_query *rq;
    if (mxg_route_resolve(o->dns, o->domain, o->cfg->max_mx_hosts, on_route, o, &rq) < 0)
        exit(1);
    struct mxg_sts_query *sq = NULL;
    if (!o->sts || mxg_sts_get(o->sts, o->domain, on_sts, o, &sq) < 0)
        o->sts_done = 1;
}

static void cold_done(struct one *o)
{
    (void)o;
    uv_stop(uv_default_loop());
}

static void warm_done(struct one *o)
{
    inflight--;
    if (todo > 0) {
        todo--;
        inflight++;
        start(o);
    } else if (inflight == 0) {
        uv_stop(uv_default_loop());
    }
}

int main(int argc, char **argv)
{
    const char *conf = NULL, *domain = NULL;
    int n = 100000;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-c") && i + 1 < argc)
            conf = argv[++i];
        else if (!strcmp(argv[i], "-n") && i + 1 < argc)
            n = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-p") && i + 1 < argc)
            parallel = atoi(argv[++i]);
        else
            domain = argv[i];
    }
    if (!conf || !domain || parallel < 1) {
        fprintf(stderr, "usage: decide -c CONFIG [-n N] [-p PARALLEL] DOMAIN\n");
        return 2;
    }
    static struct mxg_config cfg;
    char err[1024];
    if (mxg_config_load(&cfg, conf, NULL, err, sizeof err) < 0) {
        fprintf(stderr, "decide: %s\n", err);
        return 1;
    }
    mxg_log_setup(MXG_LOG_WARN, 0);
    uv_loop_t *loop = uv_default_loop();
    struct mxg_dns *dns = mxg_dns_new(loop, &cfg, err, sizeof err);
    if (!dns) {
        fprintf(stderr, "decide: DNS: %s\n", err);
        return 1;
    }
    struct mxg_https *https = NULL;
    struct mxg_sts *sts = NULL;
    if (cfg.sts_enabled) {
        https = mxg_https_new(loop, cfg.tls_ca_file[0] ? cfg.tls_ca_file : NULL, err, sizeof err);
        sts = https ? mxg_sts_new(loop, &cfg, dns, https, NULL) : NULL;
    }
    struct one *ones = calloc((size_t)parallel, sizeof *ones);
    for (int i = 0; i < parallel; i++) {
        ones[i].dns = dns;
        ones[i].sts = sts;
        ones[i].cfg = &cfg;
        ones[i].domain = domain;
    }
    /* cold */
    double t0 = now_s();
    ones[0].done = cold_done;
    start(&ones[0]);
    uv_run(loop, UV_RUN_DEFAULT);
    double cold = now_s() - t0;
    /* cached */
    todo = n;
    t0 = now_s();
    for (int i = 0; i < parallel && todo > 0; i++) {
        ones[i].done = warm_done;
        todo--;
        inflight++;
        start(&ones[i]);
    }
    uv_run(loop, UV_RUN_DEFAULT);
    double warm = now_s() - t0;
    printf("cold_ms %.2f cached_per_s %.0f cached_us %.2f result %s\n", cold * 1000.0,
           warm > 0 ? n / warm : 0, warm * 1e6 / n * parallel, last_req);
    if (sts)
        mxg_sts_free(sts);
    if (https)
        mxg_https_free(https);
    mxg_dns_free(dns);
    return 0;
}
