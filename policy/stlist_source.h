/* policy/stlist_source.h — where the policy list comes from: the configured
 * file (FILE + FILE.asc) and/or URL (URL + URL.asc, downloaded with the
 * HTTPS client, addresses from mxguard's DNS), offered to the store at start
 * and every policy_list.refresh; loud warnings for a stale or expired list.
 *
 * mxg_stlist_source_update() loads once (both sources) and reports through
 * cb exactly once, from the loop; each candidate it read or downloaded is
 * verified (gpgv, temporary files, parse) on libuv's thread pool and installed
 * from the loop, so a slow gpgv never holds the loop. The source borrows cfg,
 * dns, https and store; they must outlive it (a check still running when the
 * source is freed finishes on the thread pool; the source is freed after it). */
#ifndef MXG_STLIST_SOURCE_H
#define MXG_STLIST_SOURCE_H

#include <uv.h>

#include "../core/config.h"
#include "../dns/dns.h"
#include "../http/https.h"
#include "stlist.h"

struct mxg_stlist_source;
typedef void (*mxg_stlist_update_cb)(void *arg, int accepted, const char *msg);

struct mxg_stlist_source *mxg_stlist_source_new(uv_loop_t *loop, const struct mxg_config *cfg,
                                                struct mxg_dns *dns, struct mxg_https *https,
                                                struct mxg_stlist_store *store);
/* The local sources, now and synchronously (no loop turn, no network): the
 * store already holds the last verified copy from the state directory
 * (mxg_stlist_store_open); this offers policy_list.file to it, exactly as
 * an update does. policy_list.url is never waited for. Logs one NOTICE line
 * "policy list loaded: ..." (or a WARNING when the file was refused) naming
 * the list in force, if any. Returns 1 accepted, 0 kept (or no file), -1
 * refused or unreadable (the list in force, if any, stays); msg says what.
 * `run` calls it before any listener opens, `check` before it looks: one
 * loading path for both. The next mxg_stlist_source_start() does not read
 * the file again in its first update. */
int mxg_stlist_source_load_local(struct mxg_stlist_source *src, char *msg, size_t msglen);
/* Update now (the URL only, after mxg_stlist_source_load_local(); nothing
 * until policy_list.refresh when there is no URL), then every
 * policy_list.refresh; check staleness/expiry hourly. */
void mxg_stlist_source_start(struct mxg_stlist_source *src);
/* One update; cb(arg, accepted (1) / kept (0) / failed (-1), message). Returns 0 or -1. */
int mxg_stlist_source_update(struct mxg_stlist_source *src, mxg_stlist_update_cb cb, void *arg);
void mxg_stlist_source_free(struct mxg_stlist_source *src);

#endif
