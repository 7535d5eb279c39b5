/* state/pg_conn.c — connecting to PostgreSQL (blocking: called on libuv's thread pool or by
 * a one-shot command, never on the loop); see state_int.h.
 * The connection string comes from state.postgresql and carries no password (core/config.c
 * refuses one); the password from state.postgresql_password_file is handed to libpq as its
 * own keyword, so it never appears in a message. A connect_timeout default keeps a dead
 * address from holding a pool thread for long; the string may set its own. */
#include <stdio.h>
#include <string.h>

#include "state_int.h"

/* The default connect_timeout (seconds) when the connection string sets none. */
#define PG_CONNECT_TIMEOUT "5"

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
PGconn *mxg_state_pg_connect(const char *conninfo, const char *password, char *err,
                             size_t errlen)
{
    const char *keys[5], *vals[5];
    int n = 0;
    PGconn *c;

    keys[n] = "connect_timeout", vals[n++] = PG_CONNECT_TIMEOUT;
    keys[n] = "application_name", vals[n++] = "mxguard";
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
