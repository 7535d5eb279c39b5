/* app/status.c — the status pages' router (status.h): which page a URL
 * names, built from app's memory and local stores. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "app.h"
#include "status.h"

#define DOMAIN_PREFIX "/status/domain/"

/* Today's destinations of every worker (only NULL) or of one domain: the
 * workers' tables in the shared mapping, or this process's own. */
static struct mxg_status_merged *merged(struct app *app, int64_t now, const char *only)
{
    struct mxg_status_table *own = mxg_status_track_table(app->status_track);
    struct mxg_status_table *const *tables = &own;
    int n = 1;
    if (app->shared)
        n = app_worker_status_tables(app, &tables);
    return mxg_status_merge(tables, n, now, only);
}

/* Build the page for url into out; the HTTP status (status.h). */
int mxg_status_serve(struct app *app, const char *url, struct mxg_buf *out)
{
    int64_t now = (int64_t)time(NULL);
    if (!app->status_track)
        return 404;
    if (strcmp(url, "/status") == 0 || strcmp(url, "/status/") == 0) {
        struct mxg_status_view *v = malloc(sizeof *v);
        struct mxg_status_merged *m = v ? merged(app, now, NULL) : NULL;
        if (!m) {
            free(v);
            return 500;
        }
        mxg_status_collect(app, now, v);
        int rc = mxg_status_html_main(out, v, m);
        mxg_status_merged_free(m);
        free(v);
        return rc < 0 ? 500 : 200;
    }
    if (strncmp(url, DOMAIN_PREFIX, strlen(DOMAIN_PREFIX)) == 0) {
        const char *name = url + strlen(DOMAIN_PREFIX);
        if (!mxg_status_name_ok(name))
            return 404;
        struct mxg_status_merged *m = merged(app, now, name);
        if (!m)
            return 500;
        const struct mxg_status_dest *d = m->n ? &m->dest[0] : NULL;
        int rc = mxg_status_html_domain(out, name, d, now);
        mxg_status_merged_free(m);
        if (rc < 0)
            return 500;
        return d ? 200 : 404;
    }
    return 404;
}
