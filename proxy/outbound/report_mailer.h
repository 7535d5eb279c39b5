/* proxy/outbound/report_mailer.h — the TLSRPT report mailer (report/tlsrpt.h,
 * struct mxg_rpt_mailer) implemented with proxy/outbound: one report mail,
 * one recipient, by MX of the recipient's domain, with opportunistic TLS
 * and without TLSRPT recording (leg options opportunistic, no_tlsrpt:
 * RFC 8460 §3, DESIGN §4 and §10).
 *
 * Contract:
 *  - mxg_report_mailer_new() borrows env (it must outlive the mailer);
 *    NULL when out of memory.
 *  - mxg_report_mailer_get() fills the struct the report sender takes
 *    (mxg_rpt_sender_set_mail). Its send() copies the request (the message
 *    too), starts one outbound delivery and returns 0 with a handle, or -1
 *    (the callback will not run). The callback runs exactly once, from the
 *    loop: SENT for a 2xx reply to the dot, PERMFAIL for a 5xx reply (to
 *    MAIL, RCPT, DATA or the dot, or a permanent DNS fact such as a null
 *    MX), TEMPFAIL for everything else; why is the reply, one line.
 *  - mxg_report_mailer_free() cancels every delivery in flight (their
 *    callbacks never run). Free the report sender first: it may still
 *    hold handles. */
#ifndef MXG_REPORT_MAILER_H
#define MXG_REPORT_MAILER_H

#include "../../report/tlsrpt.h"
#include "upstream.h"

struct mxg_report_mailer;

struct mxg_report_mailer *mxg_report_mailer_new(const struct mxg_upstream_env *env);
void mxg_report_mailer_get(struct mxg_report_mailer *m, struct mxg_rpt_mailer *out);
void mxg_report_mailer_free(struct mxg_report_mailer *m);

#endif
