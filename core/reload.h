/* core/reload.h — what a SIGHUP may change in the running configuration.
 *
 * Many objects borrow the one struct mxg_config of `mxguard run` (server,
 * sessions, legs, DNS, MTA-STS, policy list source) and read it when they
 * need a value. A reload therefore never replaces the struct: the new file
 * is loaded and validated into a separate struct first (a bad file changes
 * nothing), then mxg_reload_apply() copies, setting by setting, the values
 * that take effect by being read again (limits, timeouts, client networks,
 * TLS floor, MTA-STS fetch settings, ...) into the live struct — on the loop
 * thread, between callbacks, so no reader sees a half-copied value. A
 * session in flight keeps going; it sees new limits from its next command.
 *
 * Settings that were consumed when the process started (listeners, state
 * directory, DNS servers and mode, the TLS context's CA file, user, metrics
 * listener, ...) keep their old value; each change of one is logged as
 * needing a restart. Unknown settings (added to the schema later and not
 * listed in reload.c) are treated the same way: safe by default.
 *
 * Some settings need an action beyond the copy; mxg_reload_apply() returns
 * them as flags for the caller (app/run_reload.c), which owns the objects:
 * MXG_RELOAD_LOG (re-set the logger), MXG_RELOAD_LIST (policy list source
 * changed: load it now). Trust anchors and the policy list are re-read on
 * every SIGHUP anyway (their files may have changed while the setting did
 * not), and so are the map files (tls.policy_map, upstream.route_map) and
 * the TLS client context (tls.min_version ... tls.client_key_file: a renewed
 * client certificate is picked up): app/run_reload.c reload_maps_tls() swaps
 * each in only when it loads completely. dns.trust_anchor_file changes
 * only under dns.mode = "stub" (getdns validates itself there; in
 * recursive and auto modes libunbound took the anchors at start-up).
 *
 * Logging: one line per changed setting, "reload: SECTION.KEY: OLD -> NEW"
 * (notice) or "... changed in the file but needs a restart; keeping OLD"
 * (warning), then one summary line. */
#ifndef MXG_RELOAD_H
#define MXG_RELOAD_H

#include "config.h"

enum {
    MXG_RELOAD_LOG = 1 << 0,  /* log.level / log.syslog / log.format changed */
    MXG_RELOAD_LIST = 1 << 1, /* policy_list.file / policy_list.url changed */
};

/* What the running process has, which decides what can change live. */
struct mxg_reload_ctx {
    int have_list; /* the policy list store and source exist */
};

struct mxg_reload_result {
    int changed;  /* settings that differ */
    int applied;  /* copied into the live configuration */
    int kept;     /* need a restart: old value kept */
    unsigned actions;
};

/* Apply next to live as described above. Never fails. */
void mxg_reload_apply(struct mxg_config *live, const struct mxg_config *next,
                      const struct mxg_reload_ctx *ctx, struct mxg_reload_result *res);

/* 1 if section.name takes effect on reload in ctx (for tests and docs). */
int mxg_reload_is_live(const char *section, const char *name, const struct mxg_reload_ctx *ctx,
                       const struct mxg_config *live, const struct mxg_config *next);

#endif
