/* fuzz/fuzz_smtp_cmd.c — the inbound SMTP command parser (smtp/smtp_parse.h):
 * mxg_cmd_parse on the input as one command line (CRLF already stripped, as
 * the session hands it over), then mxg_path_parse (as MAIL and as RCPT) with
 * the parameter checks and the A-label conversion of the domain.
 *
 * Properties checked:
 *  - BAD_CHAR exactly when the line holds NUL, CR, LF or a control other than HTAB;
 *  - the argument lies inside the line, without leading blanks or trailing SP/HTAB;
 *  - an accepted path: addr and domain terminated within their arrays, the
 *    domain lower-case and valid, addr = local "@" domain (or "@[literal]"
 *    for MAIL), utf8 set exactly
 *    when addr has 8-bit octets, parameters well-formed (upper-case keys);
 *  - round trip: "FROM:<addr> KEY=VALUE ..." rebuilt from the result parses
 *    to the same result;
 *  - parameter checks: outputs terminated, RET one of "", FULL, HDRS;
 *  - every error code maps to a 5xx reply;
 *  - the HELO name (mxg_helo_classify, on the raw bytes): the rendering is
 *    terminated and holds only letters, digits and ".-_:[]" ('?' for the
 *    rest; "..." when cut), a plain name is rendered as it is, control
 *    characters always make it BAD, and the Received header can never get a
 *    CR, LF, parenthesis, backslash or 8-bit octet from it. */
#include "fuzz.h"

#include <ctype.h>

#include "smtp/smtp_parse.h"

static void check_error_reply(int rc)
{
    const char *enh = NULL, *text = NULL;
    int code = mxg_parse_error_reply(rc, &enh, &text);
    FUZZ_CHECK(code >= 500 && code <= 599 && enh && text && enh[0] == '5');
}

static int same_path(const struct mxg_path *a, const struct mxg_path *b)
{
    if (strcmp(a->addr, b->addr) || strcmp(a->domain, b->domain) || a->utf8 != b->utf8 ||
        a->n_params != b->n_params)
        return 0;
    for (int i = 0; i < a->n_params; i++)
        if (strcmp(a->params[i].key, b->params[i].key) ||
            strcmp(a->params[i].value, b->params[i].value) ||
            a->params[i].has_value != b->params[i].has_value)
            return 0;
    return 1;
}

static void check_path(const struct mxg_path *p, int is_mail, int rc)
{
    FUZZ_CHECK(fuzz_terminated(p->addr, sizeof p->addr));
    FUZZ_CHECK(fuzz_terminated(p->domain, sizeof p->domain));
    FUZZ_CHECK(p->n_params >= 0 && p->n_params <= MXG_PARAMS_MAX);
    if (rc != MXG_PE_OK)
        return;
    size_t al = strlen(p->addr), dl = strlen(p->domain);
    FUZZ_CHECK(al + 2 <= MXG_PATH_MAX);
    if (al == 0) {
        FUZZ_CHECK(is_mail && dl == 0); /* the null reverse-path */
    } else if (dl == 0) { /* an address literal: only for MAIL (RCPT gets MXG_PE_LITERAL) */
        FUZZ_CHECK(is_mail && strstr(p->addr, "@[") && p->addr[al - 1] == ']');
    } else {
        /* addr = local "@" domain; the domain as stored is the lower-cased tail */
        FUZZ_CHECK(dl + 1 < al);
        FUZZ_CHECK(p->addr[al - dl - 1] == '@');
        FUZZ_CHECK(strncasecmp(p->addr + al - dl, p->domain, dl) == 0);
        FUZZ_CHECK(mxg_domain_valid(p->domain, dl, 1));
        for (size_t i = 0; i < dl; i++)
            FUZZ_CHECK(!isupper((unsigned char)p->domain[i]));
    }
    int eight = 0;
    for (size_t i = 0; i < al; i++)
        if ((unsigned char)p->addr[i] >= 0x80)
            eight = 1;
    FUZZ_CHECK(p->utf8 == eight);
    for (int i = 0; i < p->n_params; i++) {
        const struct mxg_param *pr = &p->params[i];
        FUZZ_CHECK(fuzz_terminated(pr->key, sizeof pr->key));
        FUZZ_CHECK(fuzz_terminated(pr->value, sizeof pr->value));
        FUZZ_CHECK(pr->key[0] != '\0');
        for (const char *c = pr->key; *c; c++)
            FUZZ_CHECK(isupper((unsigned char)*c) || isdigit((unsigned char)*c) || *c == '-');
        FUZZ_CHECK(pr->has_value ? pr->value[0] != '\0' : pr->value[0] == '\0');
        for (const char *c = pr->value; *c; c++)
            FUZZ_CHECK(*c != ' ' && *c != '=');
    }

    /* round trip through the wire form */
    char wire[MXG_PATH_LINE_MAX * 2];
    size_t n = (size_t)snprintf(wire, sizeof wire, "%s<%s>", is_mail ? "FROM:" : "TO:", p->addr);
    for (int i = 0; i < p->n_params && n < sizeof wire; i++)
        n += (size_t)snprintf(wire + n, sizeof wire - n, " %s%s%s", p->params[i].key,
                              p->params[i].has_value ? "=" : "", p->params[i].value);
    FUZZ_CHECK(n < sizeof wire);
    char *exact = fuzz_dup(wire, n);
    struct mxg_path again;
    int rc2 = mxg_path_parse(exact, n, is_mail, &again);
    free(exact);
    if (rc2 != MXG_PE_OK || !same_path(p, &again)) {
        fprintf(stderr, "round trip: \"%.*s\" -> %d\n", (int)n, wire, rc2);
        FUZZ_CHECK(!"path round trip");
    }

    if (is_mail) {
        struct mxg_mail_params mp;
        int prc = mxg_mail_params_check(p, &mp);
        if (prc == MXG_PE_OK) {
            FUZZ_CHECK(fuzz_terminated(mp.envid, sizeof mp.envid));
            FUZZ_CHECK(strcmp(mp.ret, "") == 0 || strcmp(mp.ret, "FULL") == 0 ||
                       strcmp(mp.ret, "HDRS") == 0);
        } else {
            check_error_reply(prc);
        }
    } else {
        struct mxg_rcpt_params rp;
        int prc = mxg_rcpt_params_check(p, &rp);
        if (prc == MXG_PE_OK) {
            FUZZ_CHECK(fuzz_terminated(rp.notify, sizeof rp.notify));
            FUZZ_CHECK(fuzz_terminated(rp.orcpt, sizeof rp.orcpt));
        } else {
            check_error_reply(prc);
        }
    }

    if (dl > 0) {
        char alabel[MXG_DOMAIN_MAX + 1];
        if (mxg_domain_alabel(p->domain, alabel, sizeof alabel) == 0) {
            FUZZ_CHECK(fuzz_terminated(alabel, sizeof alabel));
            for (const char *c = alabel; *c; c++)
                FUZZ_CHECK((unsigned char)*c < 0x80 && !isupper((unsigned char)*c));
        }
    }
}

static void run_path(const char *arg, size_t len, int is_mail)
{
    struct mxg_path p;
    int rc = mxg_path_parse(arg, len, is_mail, &p);
    if (rc != MXG_PE_OK)
        check_error_reply(rc);
    check_path(&p, is_mail, rc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *line = fuzz_dup(data, size);
    struct mxg_cmd cmd;
    int rc = mxg_cmd_parse(line, size, &cmd);
    int bad = 0;
    for (size_t i = 0; i < size; i++) {
        unsigned char c = data[i];
        if (c == 0 || c == '\r' || c == '\n' || (c < 0x20 && c != '\t'))
            bad = 1;
    }
    FUZZ_CHECK(rc == (bad ? MXG_PE_BAD_CHAR : MXG_PE_OK));
    FUZZ_CHECK(cmd.verb >= MXG_V_UNKNOWN && cmd.verb < MXG_V__COUNT);
    FUZZ_CHECK(mxg_verb_name(cmd.verb) != NULL);
    if (rc == MXG_PE_OK) {
        FUZZ_CHECK(cmd.arg != NULL);
        if (cmd.arg_len > 0) {
            FUZZ_CHECK(cmd.arg >= line && cmd.arg + cmd.arg_len <= line + size);
            FUZZ_CHECK(cmd.arg[0] != ' ');
            FUZZ_CHECK(cmd.arg[cmd.arg_len - 1] != ' ' && cmd.arg[cmd.arg_len - 1] != '\t');
        }
        if (cmd.verb != MXG_V_UNKNOWN) {
            const char *name = mxg_verb_name(cmd.verb);
            size_t nl = strlen(name);
            FUZZ_CHECK(size >= nl && strncasecmp(line, name, nl) == 0);
            FUZZ_CHECK(size == nl || line[nl] == ' ');
        }
        if (cmd.verb == MXG_V_MAIL || cmd.verb == MXG_V_RCPT) {
            char *arg = fuzz_dup(cmd.arg, cmd.arg_len);
            run_path(arg, cmd.arg_len, cmd.verb == MXG_V_MAIL);
            free(arg);
        }
    } else {
        check_error_reply(rc);
    }
    /* the HELO name */
    char shown[256];
    memset(shown, 'Z', sizeof shown);
    enum mxg_helo_class hc = mxg_helo_classify(line, size, shown, sizeof shown);
    FUZZ_CHECK(hc == MXG_HELO_NAME || hc == MXG_HELO_ODD || hc == MXG_HELO_BAD);
    FUZZ_CHECK(memchr(shown, '\0', sizeof shown) != NULL);
    size_t sl = strlen(shown);
    for (size_t i = 0; i < sl; i++)
        FUZZ_CHECK(isalnum((unsigned char)shown[i]) || strchr(".-_:[]?", shown[i]));
    if (hc == MXG_HELO_NAME)
        FUZZ_CHECK(sl == size && memcmp(shown, line, size) == 0);
    for (size_t i = 0; i < size; i++)
        if ((unsigned char)line[i] < 0x20 || (unsigned char)line[i] == 0x7f)
            FUZZ_CHECK(hc == MXG_HELO_BAD);
    if (hc != MXG_HELO_NAME)
        FUZZ_CHECK(sl == (size > 64 ? 67 : size));
    /* the path grammar on the raw bytes too (reached without a verb prefix) */
    run_path(line, size, 1);
    run_path(line, size, 0);
    free(line);
    return 0;
}
