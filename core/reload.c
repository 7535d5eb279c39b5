/* core/reload.c — see reload.h. */
#include "reload.h"

#include <string.h>

#include "log.h"

#define COMP "reload"

/* Settings read at use time through the borrowed configuration (audited
 * against their readers: proxy/inbound/server.c, session.c, proxy/outbound/leg*.c,
 * policy/policy.c, sts.c, stlist_source.c, app/metrics_http.c). "*" = the
 * whole section. */
static const char *const live_settings[] = {
    "server.allow_networks",
    "server.max_sessions",
    "server.drain_timeout",
    "server.multi_domain",
    "server.require_tls_networks",  /* proxy/inbound/auth_policy.c, at every connection */
    "server.require_auth_networks",
    "auth.allow_plaintext_loopback",
    "auth.max_failures",
    "auth.max_user_failures",
    "auth.failure_window",
    "auth.lockout",
    "auth.failure_delay",
    "limits.*",
    "timeouts.idle",
    "timeouts.data",
    "timeouts.rcpt_total",
    "timeouts.final_reply",
    "timeouts.connect",
    "timeouts.upstream_command",
    "timeouts.quit",
    "upstream.helo_name",
    "upstream.port",
    "upstream.source_ipv4",
    "upstream.source_ipv6",
    "upstream.address_family",
    "upstream.max_mx_hosts",
    "upstream.route_map",      /* app/run_reload.c re-reads the map files on every SIGHUP */
    "upstream.cache_idle",     /* app/run_reload.c reconfigures the connection cache */
    "upstream.cache_size",
    "upstream.cache_per_destination",
    "upstream.cache_max_uses",
    "upstream.cache_lifetime",
    "upstream.cache_busy_wait",
    "upstream.cache_busy_waiters",
    "upstream.self_addresses",  /* read when a leg builds its candidates */
    "upstream.refuse_private_addresses",
    "tls.opportunistic_level",
    "tls.policy_map",
    "tls.min_version",         /* ... and rebuilds the TLS client context */
    "tls.max_version",
    "tls.ciphers",
    "tls.ciphersuites",
    "tls.client_cert_file",
    "tls.client_key_file",
    "policy_list.refresh",
    "policy_list.stale_warning",
    "policy_list.expired_warning_interval",
    "mta_sts.connect_timeout",
    "mta_sts.fetch_timeout",
    "mta_sts.max_policy_size",
    "mta_sts.https_port",
    "mta_sts.refresh_min_interval",
    "log.level",
    "log.syslog",
    "log.format",
    "metrics.allow_networks",
    NULL,
};

static int listed(const char *section, const char *name)
{
    size_t sl = strlen(section);
    for (int i = 0; live_settings[i]; i++) {
        const char *e = live_settings[i];
        if (strncmp(e, section, sl) != 0 || e[sl] != '.')
            continue;
        if (strcmp(e + sl + 1, "*") == 0 || strcmp(e + sl + 1, name) == 0)
            return 1;
    }
    return 0;
}

int mxg_reload_is_live(const char *section, const char *name, const struct mxg_reload_ctx *ctx,
                       const struct mxg_config *live, const struct mxg_config *next)
{
    if (strcmp(section, "dns") == 0 && strcmp(name, "trust_anchor_file") == 0)
        return live->dns_mode == MXG_DNS_STUB; /* main re-reads it on every SIGHUP */
    if (strcmp(section, "policy_list") == 0 &&
        (strcmp(name, "file") == 0 || strcmp(name, "url") == 0))
        return ctx->have_list && (next->list_file[0] || next->list_url[0]);
    return listed(section, name);
}

struct apply_ctx {
    struct mxg_config *live;
    const struct mxg_config *next;
    const struct mxg_reload_ctx *ctx;
    struct mxg_reload_result *res;
};

static void on_change(void *arg, const char *section, const char *name, const char *old_value,
                      const char *new_value)
{
    struct apply_ctx *a = arg;
    a->res->changed++;
    if (!mxg_reload_is_live(section, name, a->ctx, a->live, a->next)) {
        a->res->kept++;
        LOG_W(COMP, "%s.%s: changed in the file (%s) but needs a restart; keeping %s", section,
              name, new_value, old_value);
        return;
    }
    mxg_config_copy_setting(a->live, a->next, section, name);
    a->res->applied++;
    LOG_N(COMP, "%s.%s: %s -> %s", section, name, old_value, new_value);
    if (strcmp(section, "log") == 0)
        a->res->actions |= MXG_RELOAD_LOG;
    else if (strcmp(section, "policy_list") == 0 &&
             (strcmp(name, "file") == 0 || strcmp(name, "url") == 0))
        a->res->actions |= MXG_RELOAD_LIST;
}

void mxg_reload_apply(struct mxg_config *live, const struct mxg_config *next,
                      const struct mxg_reload_ctx *ctx, struct mxg_reload_result *res)
{
    memset(res, 0, sizeof *res);
    struct apply_ctx a = {live, next, ctx, res};
    mxg_config_diff(live, next, on_change, &a);
    if (res->changed == 0)
        LOG_N(COMP, "configuration unchanged");
    else
        LOG_N(COMP, "%d setting(s) changed: %d applied, %d need a restart", res->changed,
              res->applied, res->kept);
}
