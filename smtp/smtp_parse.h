/* smtp/smtp_parse.h — pure parsers for the SMTP protocol (RFC 5321 and the
 * extensions mxguard passes through). No I/O, no allocation: every output is
 * a caller-owned struct with fixed-size fields, so the fuzzers and unit tests
 * can drive them directly.
 *
 * Errors are returned as negative MXG_PE_* codes; mxg_parse_error_reply()
 * gives the reply (code, enhanced code, text) the client must receive. */
#ifndef MXG_SMTP_PARSE_H
#define MXG_SMTP_PARSE_H

#include <stddef.h>
#include <stdint.h>

#define MXG_CMD_LINE_MAX 512     /* RFC 5321 §4.5.3.1.4, incl. CRLF */
#define MXG_PATH_LINE_MAX 2048   /* MAIL/RCPT with RFC 1870/3461 allowances */
#define MXG_LOCAL_MAX 64
#define MXG_DOMAIN_MAX 255
#define MXG_PATH_MAX 256         /* RFC 5321 §4.5.3.1.3, incl. brackets */
#define MXG_PARAMS_MAX 16

enum mxg_verb {
    MXG_V_UNKNOWN = 0, MXG_V_EHLO, MXG_V_HELO, MXG_V_MAIL, MXG_V_RCPT, MXG_V_DATA, MXG_V_RSET,
    MXG_V_NOOP, MXG_V_QUIT, MXG_V_VRFY, MXG_V_EXPN, MXG_V_HELP, MXG_V_STARTTLS, MXG_V_AUTH,
    MXG_V_BDAT, MXG_V__COUNT
};
const char *mxg_verb_name(enum mxg_verb v);

enum mxg_parse_err {
    MXG_PE_OK = 0,
    MXG_PE_SYNTAX = -1,      /* 501 5.5.2 / 500 5.5.2 */
    MXG_PE_TOO_LONG = -2,    /* 500 5.5.2 line too long */
    MXG_PE_BAD_CHAR = -3,    /* 500 5.5.2 NUL / control / 8-bit in command */
    MXG_PE_PATH = -4,        /* 501 5.1.7 / 5.1.3 bad address syntax */
    MXG_PE_PARAM = -5,       /* 501 5.5.4 malformed parameter */
    MXG_PE_UNKNOWN_PARAM = -6, /* 555 5.5.4 unsupported parameter */
    MXG_PE_UTF8 = -7,        /* 553 5.6.7 non-ASCII address without SMTPUTF8 */
    MXG_PE_LITERAL = -8,     /* 553 5.1.2 address literal not relayable */
    MXG_PE_NODOMAIN = -9,    /* 553 5.1.3 recipient without domain */
};

/* One command line without its CRLF. *arg points into line (not copied). */
struct mxg_cmd {
    enum mxg_verb verb;
    const char *arg; /* after the verb and one or more spaces; "" if none */
    size_t arg_len;
};
int mxg_cmd_parse(const char *line, size_t len, struct mxg_cmd *out);

/* The HELO/EHLO argument (RFC 5321 §4.1.1.1: a domain or an address
 * literal). Legacy clients send odd but harmless names (an underscore, a
 * bare IP address, a NetBIOS name): those are accepted, but only a plain
 * name reaches the Received: header as it is.
 *  MXG_HELO_NAME  labels of letters, digits, '-' and '_' separated by dots
 *                 (a trailing dot allowed), or "[...]" holding letters,
 *                 digits, '.' and ':' (an address literal); at most 255
 *                 octets: shown as it is;
 *  MXG_HELO_ODD   anything else of printable ASCII and valid UTF-8 (a
 *                 U-label, RFC 6531 §3.3): accepted, shown sanitised;
 *  MXG_HELO_BAD   empty, a tab, DEL, or 8-bit octets that are not UTF-8:
 *                 the caller answers 501 5.5.2.
 * shown (cap >= 256 keeps every name whole) gets the safe rendering: the name itself for
 * MXG_HELO_NAME; else every octet other than a letter, digit or one of
 * ".-_:[]" as '?', cut after 64 octets with "...". */
enum mxg_helo_class { MXG_HELO_NAME = 0, MXG_HELO_ODD, MXG_HELO_BAD };
enum mxg_helo_class mxg_helo_classify(const char *arg, size_t n, char *shown, size_t cap);

struct mxg_param {
    char key[24];     /* upper-cased */
    char value[512];  /* as given ("" when no '=') */
    int has_value;
};

/* A reverse- or forward-path with its ESMTP parameters. */
struct mxg_path {
    char addr[MXG_PATH_MAX];     /* local@domain, "" for the null path <> */
    char domain[MXG_DOMAIN_MAX + 1]; /* lower-cased domain part, "" for <> */
    int utf8;                    /* 1 if the address has non-ASCII octets */
    int n_params;
    struct mxg_param params[MXG_PARAMS_MAX];
};

/* An empty path (no address, no domain, no parameters). Only the header is
 * written: parameter slots past n_params are never read (9 KB not zeroed). */
void mxg_path_clear(struct mxg_path *p);

/* Parse the argument of MAIL ("FROM:<...> params") or RCPT ("TO:<...> params").
 * is_mail selects FROM:/TO: and whether <> is allowed. Checks syntax only;
 * parameter semantics are mxg_mail_params_check()/mxg_rcpt_params_check(). */
int mxg_path_parse(const char *arg, size_t len, int is_mail, struct mxg_path *out);

/* MAIL parameters mxguard understands (docs/ARCHITECTURE.md §MAIL parameters). */
enum mxg_body { MXG_BODY_NONE = 0, MXG_BODY_7BIT, MXG_BODY_8BITMIME };
struct mxg_mail_params {
    uint64_t size;        /* 0 = not given */
    enum mxg_body body;
    int smtputf8;
    char ret[8];          /* "FULL" / "HDRS" / "" */
    char envid[120];      /* xtext as given */
};
int mxg_mail_params_check(const struct mxg_path *p, struct mxg_mail_params *out);

struct mxg_rcpt_params {
    char notify[64];  /* as given, validated */
    char orcpt[520];  /* as given, validated */
};
int mxg_rcpt_params_check(const struct mxg_path *p, struct mxg_rcpt_params *out);

/* Is s a syntactically valid domain name (LDH labels, ≤ 255, or U-labels when
 * utf8_ok)? */
int mxg_domain_valid(const char *s, size_t len, int utf8_ok);

/* Convert a (possibly UTF-8, RFC 6531) domain to its A-label form for DNS
 * (IDNA2008 via libidn2, lower-cased). Returns 0, or -1 if it is not a valid IDN. */
int mxg_domain_alabel(const char *domain, char *out, size_t cap);

/* The reply the client gets for a parse error; returns the code. */
int mxg_parse_error_reply(int err, const char **enh, const char **text);

/* ---- replies from an upstream server ---- */
#define MXG_REPLY_TEXT_MAX 4096
#define MXG_REPLY_LINES_MAX 64
#define MXG_REPLY_LINE_MAX 4096  /* longest reply line taken (without CRLF); longer: over-long */
#define MXG_REPLY_WIRE_MAX 512   /* a rendered line, CRLF included (RFC 5321 §4.5.3.1.5) */

/* Find the next reply line in buffered input (buf, avail). Returns 1 with
 * *len the line's length without CR/LF and *consume the octets it takes (LF
 * included); 0 when the line is not complete yet (more input needed); or
 * MXG_PE_TOO_LONG when the line is over MXG_REPLY_LINE_MAX octets, decided
 * the same however the input was split into reads: such a line is never a
 * reply (the caller fails the connection). */
int mxg_reply_line_split(const char *buf, size_t avail, size_t *len, size_t *consume);

struct mxg_reply {
    int code;                 /* 200..599 */
    char enh[16];             /* "2.1.0" if present on the first line, else "" */
    int no_enh;               /* local reply that must carry no enhanced code
                                 (greeting, EHLO/HELO, 354: RFC 2034 §3) */
    int n_lines;
    char text[MXG_REPLY_TEXT_MAX]; /* lines' text without code/enh, joined by '\n' */
};

struct mxg_reply_parser {
    struct mxg_reply r;
    size_t text_len;
    int in_progress;
};

/* Feed one line (without CRLF). Returns 1 when a reply is complete (in
 * p->r; the next feed starts a new one), 0 when more lines are needed, or
 * MXG_PE_SYNTAX for a malformed line / code mismatch / too many lines.
 * The kept text is printable US-ASCII: a control octet becomes ' ', an 8-bit
 * octet '?' (docs/ARCHITECTURE.md §Protocol violations: relayed text is
 * sanitised). */
int mxg_reply_feed(struct mxg_reply_parser *p, const char *line, size_t len);
void mxg_reply_parser_reset(struct mxg_reply_parser *p);
/* An empty reply (code 0, no text). Only the header and the text's first
 * octet are written: text past its NUL is never read (4 KB not zeroed). */
void mxg_reply_clear(struct mxg_reply *r);

/* Build a reply locally (one line, or several separated by '\n').
 * enh NULL or "" → rendered without an enhanced code (greeting, EHLO, 354). */
void mxg_reply_set(struct mxg_reply *r, int code, const char *enh, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Render for the client: every line "CODE-ENH text" / "CODE ENH text" + CRLF.
 * The enhanced code is always present (unless r->no_enh): the reply's own if
 * its class matches the code, else derived from the class ("4.0.0"). Every
 * line is printable US-ASCII (any other octet as '?') and at most
 * MXG_REPLY_WIRE_MAX octets with its CRLF (longer text is cut). Returns bytes
 * written (truncated at cap, always CRLF-terminated lines). */
size_t mxg_reply_render(const struct mxg_reply *r, char *out, size_t cap);

/* One-line summary for logs: "550 5.1.1 user unknown" (first line). */
void mxg_reply_summary(const struct mxg_reply *r, char *out, size_t cap);

/* EHLO capabilities of an upstream server. */
struct mxg_caps {
    int esmtp, starttls, pipelining, size, eightbit, smtputf8, dsn, enhanced, chunking;
    uint64_t size_limit;
};
void mxg_caps_parse(const struct mxg_reply *ehlo, struct mxg_caps *out);

#endif
