/* state/pg_conn.c — connecting to PostgreSQL (blocking: called on libuv's thread pool or by
 * a one-shot command, never on the loop); see state_int.h.
 * The connection string comes from state.postgresql and carries no password (core/config.c
 * refuses one); the password from state.postgresql_password_file is handed to libpq as its
 * own keyword, so it never appears in a message. Defaults keep a dead address or a database
 * that stops answering from holding a pool thread for long: connect_timeout, TCP keepalives,
 * tcp_user_timeout (unacknowledged data) and a statement_timeout (in options); the string
 * may set its own (its settings override these). */
#include <stdio.h>
#include <string.h>

#include "state_int.h"

/* The defaults when the connection string sets none (libpq's keywords and units). */
#define PG_CONNECT_TIMEOUT "5"      /* seconds */
#define PG_KEEPALIVES_IDLE "10"     /* seconds of silence before the first probe */
#define PG_KEEPALIVES_INTERVAL "5"  /* seconds between probes */
#define PG_KEEPALIVES_COUNT "3"     /* probes lost before the link is dead */
#define PG_TCP_USER_TIMEOUT "30000" /* ms that sent data may stay unacknowledged */
#define PG_OPTIONS "-c statement_timeout=30s"

/* Contract: state_int.h. */
void mxg_state_pg_error(PGconn *c, const PGresult *r, const char *what, char *err,
                        size_t errlen)
{
    const char *m = r ? PQresultErrorMessage(r) : NULL;
    if (!err || !errlen)
        return;
    if (!m || !m[0])
        m = c ? PQerrorMessage(c) : "out of memory";
    snprintf(err, errlen, "%s: %s", what, m);
    for (char *p = err; *p; p++)
        if (*p == '\n' || *p == '\r' || *p == '\t')
            *p = ' ';
    for (size_t n = strlen(err); n > 0 && err[n - 1] == ' '; n--)
        err[n - 1] = '\0';
}

/* Contract: state_int.h. */
int mxg_state_pg_conninfo_check(const char *conninfo, char *err, size_t errlen)
{
    char *perr = NULL;
    PQconninfoOption *opts = PQconninfoParse(conninfo, &perr);
    int rc = 0;
    if (!opts) {
        snprintf(err, errlen, "state.postgresql: %s", perr ? perr : "out of memory");
        for (char *p = err; *p; p++)
            if (*p == '\n' || *p == '\r')
                *p = ' ';
        PQfreemem(perr);
        return -1;
    }
    for (const PQconninfoOption *o = opts; o->keyword; o++)
        if (strcmp(o->keyword, "password") == 0 && o->val && o->val[0]) {
            snprintf(err, errlen, "state.postgresql must not contain a password: use "
                                  "state.postgresql_password_file");
            rc = -1;
        }
    PQconninfoFree(opts);
    return rc;
}

/* Contract: state_int.h. */
PGconn *mxg_state_pg_connect(const struct mxg_state *st, char *err, size_t errlen)
{
    const char *keys[11], *vals[11];
    const char *conninfo = st->conninfo, *password = st->password;
    char appname[8 + MXG_STATE_NAME_MAX];
    int n = 0;
    PGconn *c;

    snprintf(appname, sizeof appname, "mxguard/%s", st->instance);

    keys[n] = "connect_timeout", vals[n++] = PG_CONNECT_TIMEOUT;
    keys[n] = "keepalives", vals[n++] = "1";
    keys[n] = "keepalives_idle", vals[n++] = PG_KEEPALIVES_IDLE;
    keys[n] = "keepalives_interval", vals[n++] = PG_KEEPALIVES_INTERVAL;
    keys[n] = "keepalives_count", vals[n++] = PG_KEEPALIVES_COUNT;
    keys[n] = "tcp_user_timeout", vals[n++] = PG_TCP_USER_TIMEOUT;
    keys[n] = "options", vals[n++] = PG_OPTIONS;
    keys[n] = "application_name", vals[n++] = appname;
    keys[n] = "dbname", vals[n++] = conninfo; /* expanded: its settings override the above */
    if (password && password[0])
        keys[n] = "password", vals[n++] = password;
    keys[n] = NULL, vals[n] = NULL;
    c = PQconnectdbParams(keys, vals, 1);
    if (!c || PQstatus(c) != CONNECTION_OK) {
        mxg_state_pg_error(c, NULL, "connect", err, errlen);
        PQfinish(c);
        return NULL;
    }
    return c;
}
