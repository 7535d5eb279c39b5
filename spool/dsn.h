/* spool/dsn.h — build an RFC 3464 delivery status notification (the bounce
 * the spool sends to a message's envelope sender; RFC 3461 for the MAIL/RCPT
 * parameters it honours).
 *
 * The result is one complete message in the spool's wire form (CRLF lines,
 * dot-stuffed, without the final ".\r\n"):
 *
 *   From: MAILER-DAEMON@<reporting_mta> / To: <sender> / Subject / Date /
 *   Message-ID / Auto-Submitted: auto-replied / MIME-Version: 1.0
 *   Content-Type: multipart/report; report-type=delivery-status; boundary=...
 *     1. text/plain: what happened, one paragraph per recipient
 *     2. message/delivery-status: per-message fields (Reporting-MTA,
 *        Original-Envelope-Id when ENVID was given, Arrival-Date), then one
 *        block per recipient (Original-Recipient from ORCPT, Final-Recipient,
 *        Action, Status, Remote-MTA, Diagnostic-Code, Last-Attempt-Date,
 *        Will-Retry-Until for "delayed"; Action "relayed" for a recipient
 *        whose MX does not offer DSN, RFC 3461 §5.2.2)
 *     3. the returned content: message/rfc822 (RET=FULL and the whole body is
 *        at hand and at most MXG_DSN_FULL_MAX octets) or text/rfc822-headers
 *        (RET=HDRS, no RET, or too big); omitted when no body is given.
 * Internationalised addresses (non-ASCII octets in the sender or a
 * recipient) switch parts 2 and 3 to RFC 6533's message/global-delivery-status
 * and message/global-headers with address type utf-8.
 *
 * ENVID and ORCPT are xtext (RFC 3461 §4): they are decoded, and anything
 * that is not printable US-ASCII is dropped, before they go into a field.
 * All other text placed in header fields (replies, host names) is cleaned
 * the same way (no CR/LF/NUL can reach the output).
 *
 * Pure: no I/O, no clock (times are given), no global state. */
#ifndef MXG_DSN_H
#define MXG_DSN_H

#include <stddef.h>
#include <stdint.h>

/* The largest original message returned whole (RET=FULL); larger ones are
 * returned as headers only. */
#define MXG_DSN_FULL_MAX (1024 * 1024)
/* The most of the original header section that is returned. */
#define MXG_DSN_HDRS_MAX (64 * 1024)

struct mxg_dsn_rcpt {
    const char *addr;        /* the recipient (Final-Recipient) */
    const char *orcpt;       /* ORCPT parameter as given ("rfc822;a+40b"), NULL or "" = none */
    int delayed;             /* 0: Action failed; 1: Action delayed */
    int relayed;             /* 1: Action relayed (RFC 3461 §5.2.2: delivered, NOTIFY=SUCCESS,
                                to an MX without DSN); overrides delayed */
    const char *status;      /* enhanced status "5.1.1" (NULL: derived from reply/code) */
    int code;                /* last reply code, 0 = none */
    const char *reply;       /* last reply, one line "550 5.1.1 text", NULL or "" = none */
    const char *remote_mta;  /* host that gave the reply ("mx.example[192.0.2.1]" or
                                "mx.example"; NULL/"" = not known / local failure) */
    int64_t last_attempt_ms; /* 0 = none */
    int64_t retry_until_ms;  /* delayed only: Will-Retry-Until; 0 = omit */
};

struct mxg_dsn_req {
    const char *reporting_mta; /* our host name */
    const char *sender;        /* the original envelope sender: the DSN's To: */
    const char *envid;         /* ENVID as given (xtext), NULL or "" = none */
    const char *ret;           /* "FULL", "HDRS", NULL or "" */
    const char *queue_id;      /* the spool entry (for the text part; may be NULL) */
    int64_t arrival_ms;        /* when we accepted the message */
    int64_t now_ms;            /* Date:, and the Message-ID's uniqueness */
    const struct mxg_dsn_rcpt *rcpts;
    int n_rcpts;               /* >= 1 */
    /* The original message in wire form (stuffed, CRLF); may be a prefix
     * (body_complete = 0) holding at least the header section; NULL = none. */
    const char *body;
    size_t body_len;
    int body_complete;
};

struct mxg_dsn_out {
    char *msg;       /* heap, wire form (free()) */
    size_t len;
    int eightbit;    /* 1: contains 8-bit octets (send with BODY=8BITMIME) */
    int utf8;        /* 1: internationalised (send with SMTPUTF8) */
    int returned;    /* 0: no content returned, 1: headers, 2: full message */
};

/* Returns 0, -EINVAL (no recipients, missing reporting_mta/sender) or
 * -ENOMEM. */
int mxg_dsn_build(const struct mxg_dsn_req *req, struct mxg_dsn_out *out);

/* Helpers, exposed for the unit tests and the queue runner. */
/* Decode RFC 3461 xtext ("+2B" → '+'), keeping only printable US-ASCII
 * (0x20..0x7e); always NUL-terminates (cap >= 1). */
void mxg_dsn_xtext_decode(const char *in, char *out, size_t cap);
/* The enhanced status of a reply line "550 5.1.1 text" → "5.1.1"; without
 * one, derived from the code class ("5.0.0", "4.0.0"; code 0 → "4.0.0"). */
void mxg_dsn_status_of(int code, const char *reply, char *out, size_t cap);

#endif
