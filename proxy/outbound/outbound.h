/* proxy/outbound/outbound.h — deliver one stored message to the recipients of one
 * destination domain over one upstream leg, without an inbound session:
 * MAIL → RCPT (each) → DATA → body → dot. Used by the spool's queue runner
 * (proxy/outbound/queue_runner.c), for DSNs, and for TLSRPT report mail.
 *
 * Contract:
 *  - mxg_outbound_start() borrows req (and everything it points to) until
 *    req->done has run; done runs exactly once, always from a loop callback,
 *    unless mxg_outbound_cancel() was called first (then never).
 *  - Per recipient, rcpts[i].reply gets the RCPT reply, and for recipients
 *    the MX accepted, then the reply to the final dot (so 2xx there means
 *    delivered). Recipients never tried (the leg failed before them) get the
 *    leg's failure reply. *final is the overall outcome: the dot's reply, or
 *    the first failure (leg open, no recipient accepted, DATA, body).
 *  - The body is either memory (body, body_len) or a file descriptor
 *    (body_fd >= 0, read from offset 0 to EOF in chunks with the leg's
 *    back-pressure); in both cases wire form without the final ".\r\n"
 *    (spool/spool.h). The fd stays the caller's (see below).
 *    A body that does not end with CRLF gets one before the dot.
 *  - req->opts go to mxg_leg_open_opts() (route, opportunistic, no_tlsrpt).
 *  - Recipients are asked one RCPT at a time; a refused recipient keeps its
 *    RCPT reply. With no recipient accepted there is no DATA (*final = the
 *    first refusal). A failure after RCPT (DATA refused, connection lost,
 *    the body file unreadable: 451 4.3.0) becomes the reply of every
 *    accepted recipient. Replies are judged as mxg_reply_judge() says: a
 *    2xx/3xx to DATA or a 3xx to the dot is a failure (451 4.5.0), never a
 *    delivery. Data with 8-bit octets for an MX without 8BITMIME (when the
 *    message says BODY=8BITMIME) ends the delivery before that chunk, with
 *    554 5.6.3 and no dot (mxg_leg_body_check()).
 *  - One log line (component "outbound", INFO) per delivery: id, sender,
 *    domain, accepted/total recipients, MX, TLS, final reply, duration.
 *  - mxg_outbound_cancel() closes the leg (no QUIT if in a transaction);
 *    ob is invalid afterwards.
 *  - The outbound reads from its own dup() of body_fd: the caller may close
 *    its fd at any time (after start returned).
 * Returns 0, or -1 (bad request, out of memory, leg could not start: done
 * is not called). out may be NULL. */
#ifndef MXG_OUTBOUND_H
#define MXG_OUTBOUND_H

#include "upstream.h"

struct mxg_outbound;

struct mxg_outbound_rcpt {
    const char *addr;
    const struct mxg_rcpt_params *rp; /* may be NULL */
    struct mxg_reply reply;           /* out */
};

struct mxg_outbound_req {
    const char *id;        /* for log lines: the spool entry ID */
    const char *domain;    /* destination domain (A-label) */
    const char *from;      /* reverse-path, "" = null sender */
    const struct mxg_mail_params *mp;
    struct mxg_outbound_rcpt *rcpts;
    int n_rcpts;
    const char *body;
    size_t body_len;
    int body_fd;           /* -1: use body/body_len */
    struct mxg_leg_opts opts;
    void (*done)(void *arg, struct mxg_outbound_req *req, const struct mxg_reply *final);
    void *arg;
    /* out, set before done runs: the MX host that answered last,
     * "mx.example.net[192.0.2.1]" ("" if none was reached), and its TLS
     * ("TLSv1.3 TLS_AES_256_GCM_SHA384", "" for plaintext) */
    char mx[320];
    char tls[120];
    /* out: the MX that answered last does not offer DSN, so NOTIFY/ORCPT/
     * RET/ENVID were not passed on (RFC 3461 §5.2.2: the caller owes the
     * sender a "relayed" DSN for delivered NOTIFY=SUCCESS recipients) */
    int mx_no_dsn;
};

int mxg_outbound_start(const struct mxg_upstream_env *env, struct mxg_outbound_req *req,
                       struct mxg_outbound **out);
void mxg_outbound_cancel(struct mxg_outbound *ob);

#endif
