/* fuzz/fuzz_maps.c — the operator's map files (policy/mapfile.h): the
 * per-domain policy overrides (policy/override.h) and the static routes
 * (policy/route.h), parsed from the same text.
 *
 * Properties checked:
 *  - 0 with a map, or -1 with a terminated, non-empty "NAME:LINE: reason"
 *    and no map;
 *  - every entry of an accepted map is found again by a lookup of its own
 *    key (a ".parent" key through a name below it, "*" through any name);
 *    entries carry a line number; formatted routes are terminated. */
#include "fuzz.h"

#include "policy/override.h"
#include "policy/route.h"

/* A name the entry with this key must answer; 0 if there is none that is
 * still a host name (a parent key of 253 characters has no subdomain). */
static int lookup_name(const char *key, char *out, size_t cap)
{
    if (strcmp(key, "*") == 0)
        snprintf(out, cap, "any.example");
    else if (key[0] == '.')
        snprintf(out, cap, "x%s", key);
    else
        snprintf(out, cap, "%s", key);
    return strlen(out) <= 253;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = fuzz_dup(data, size);
    char err[300], name[MXG_MAPFILE_KEY_MAX + 8];

    struct mxg_override_map *om = (struct mxg_override_map *)1;
    err[0] = '\0';
    if (mxg_override_map_parse(text, size, "overrides", &om, err, sizeof err) == 0) {
        FUZZ_CHECK(om != NULL);
        int n = mxg_override_map_count(om);
        for (int i = 0; i < n; i++) {
            const struct mxg_override *o = mxg_override_map_entry(om, i);
            FUZZ_CHECK(o && fuzz_terminated(o->key, sizeof o->key) && o->line >= 1);
            FUZZ_CHECK(fuzz_terminated(o->match, sizeof o->match));
            FUZZ_CHECK(mxg_policy_level_name(o->level) != NULL);
            if (lookup_name(o->key, name, sizeof name))
                FUZZ_CHECK(mxg_override_lookup(om, name) != NULL);
        }
        mxg_override_map_free(om);
    } else {
        FUZZ_CHECK(om == NULL && fuzz_terminated(err, sizeof err) && err[0]);
    }

    struct mxg_route_map *rm = (struct mxg_route_map *)1;
    err[0] = '\0';
    if (mxg_route_map_parse(text, size, "routes", &rm, err, sizeof err) == 0) {
        FUZZ_CHECK(rm != NULL);
        int n = mxg_route_map_count(rm);
        for (int i = 0; i < n; i++) {
            const struct mxg_static_route *r = mxg_route_map_entry(rm, i);
            FUZZ_CHECK(r && fuzz_terminated(r->key, sizeof r->key) && r->line >= 1);
            FUZZ_CHECK(fuzz_terminated(r->text, sizeof r->text));
            if (lookup_name(r->key, name, sizeof name))
                FUZZ_CHECK(mxg_route_map_lookup(rm, name) != NULL);
            char fmt[320];
            mxg_static_route_format(r, fmt, sizeof fmt);
            FUZZ_CHECK(fuzz_terminated(fmt, sizeof fmt));
        }
        mxg_route_map_free(rm);
    } else {
        FUZZ_CHECK(rm == NULL && fuzz_terminated(err, sizeof err) && err[0]);
    }
    free(text);
    return 0;
}
