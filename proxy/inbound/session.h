/* proxy/inbound/session.h — one inbound ESMTP session (the legacy MTA's side).
 *
 * mxg_session_start() takes over an accepted client socket: it greets, runs
 * the command state machine (session.c: explicit state enum, name table, one
 * transition function that logs old -> new, a command table with separate
 * check and proceed steps) and relays each transaction through upstream legs.
 * The session owns its socket, buffers and legs; it frees itself after the
 * client is gone and calls mxg_server_session_gone().
 *
 * mxg_session_drain() asks an idle session to say 421 and leave; a session
 * in a transaction finishes it first. mxg_session_kill() closes at once. */
#ifndef MXG_SESSION_H
#define MXG_SESSION_H

#include <uv.h>

struct mxg_server;
struct mxg_session;

/* client: an initialised, accepted uv_tcp_t allocated with malloc; ownership passes
 * to the session. acl_ok = 0 → reply 554 and close. queue_mode = 1: the client came in on
 * a server.queue_listen listener: every message goes to the spool first (250 after
 * fsync) and the queue runner delivers it. */
void mxg_session_start(struct mxg_server *srv, uv_tcp_t *client, int queue_mode, int acl_ok,
                       int over_limit);
void mxg_session_drain(struct mxg_session *s);
void mxg_session_kill(struct mxg_session *s);
struct mxg_session *mxg_session_next(struct mxg_session *s);

#endif
