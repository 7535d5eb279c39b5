/* app/status.c — the status pages' router (status.h): which page a URL
 * names, built from app's memory and local stores. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "app.h"
#include "status.h"

#define DOMAIN_PREFIX "/status/domain/"

/* Build the page for url into out; the HTTP status (status.h). */
int mxg_status_serve(struct app *app, const char *url, struct mxg_buf *out)
{
    int64_t now = (int64_t)time(NULL);
    if (!app->status_track)
        return 404;
    if (strcmp(url, "/status") == 0 || strcmp(url, "/status/") == 0) {
        struct mxg_status_view *v = malloc(sizeof *v);
        if (!v)
            return 500;
        mxg_status_collect(app, now, v);
        const struct mxg_status_dest *const *d = NULL;
        uint64_t others = 0;
        int n = mxg_status_track_list(app->status_track, now, &d, &others);
        int rc = mxg_status_html_main(out, v, d, n, others);
        free(v);
        return rc < 0 ? 500 : 200;
    }
    if (strncmp(url, DOMAIN_PREFIX, strlen(DOMAIN_PREFIX)) == 0) {
        const char *name = url + strlen(DOMAIN_PREFIX);
        if (!mxg_status_name_ok(name))
            return 404;
        const struct mxg_status_dest *d = mxg_status_track_find(app->status_track, now, name);
        if (mxg_status_html_domain(out, name, d, now) < 0)
            return 500;
        return d ? 200 : 404;
    }
    return 404;
}
