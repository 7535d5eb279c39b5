/* tests/unit/test_smtp_parse.c — smtp/smtp_parse: commands, paths,
 * parameters, replies, capabilities. Table-driven; every table has malformed rows. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "smtp/smtp_parse.h"

static void test_cmd_verbs(void **st)
{
    (void)st;
    static const struct {
        const char *line;
        enum mxg_verb verb;
        const char *arg;
        int rc;
    } cases[] = {
        {"EHLO client.example", MXG_V_EHLO, "client.example", MXG_PE_OK},
        {"ehlo   client.example  ", MXG_V_EHLO, "client.example", MXG_PE_OK},
        {"HELO x", MXG_V_HELO, "x", MXG_PE_OK},
        {"MAIL FROM:<a@b.c>", MXG_V_MAIL, "FROM:<a@b.c>", MXG_PE_OK},
        {"rcpt to:<a@b.c>", MXG_V_RCPT, "to:<a@b.c>", MXG_PE_OK},
        {"DATA", MXG_V_DATA, "", MXG_PE_OK},
        {"QUIT", MXG_V_QUIT, "", MXG_PE_OK},
        {"Rset", MXG_V_RSET, "", MXG_PE_OK},
        {"NOOP hello", MXG_V_NOOP, "hello", MXG_PE_OK},
        {"VRFY bob", MXG_V_VRFY, "bob", MXG_PE_OK},
        {"STARTTLS", MXG_V_STARTTLS, "", MXG_PE_OK},
        {"BDAT 100 LAST", MXG_V_BDAT, "100 LAST", MXG_PE_OK},
        {"DATAX", MXG_V_UNKNOWN, "", MXG_PE_OK},
        {"MAIL:FROM", MXG_V_UNKNOWN, "", MXG_PE_OK},
        {"", MXG_V_UNKNOWN, "", MXG_PE_OK},
        {"GET / HTTP/1.1", MXG_V_UNKNOWN, "", MXG_PE_OK},
        {"EHLO a\x01" "b", MXG_V_UNKNOWN, "", MXG_PE_BAD_CHAR},
        {"EHLO a\rb", MXG_V_UNKNOWN, "", MXG_PE_BAD_CHAR},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct mxg_cmd c;
        int rc = mxg_cmd_parse(cases[i].line, strlen(cases[i].line), &c);
        assert_int_equal(rc, cases[i].rc);
        if (rc != MXG_PE_OK)
            continue;
        assert_int_equal(c.verb, cases[i].verb);
        if (c.verb != MXG_V_UNKNOWN) {
            assert_int_equal(c.arg_len, strlen(cases[i].arg));
            assert_memory_equal(c.arg, cases[i].arg, c.arg_len);
        }
    }
    /* an embedded NUL is caught (length-delimited input) */
    struct mxg_cmd c;
    assert_int_equal(mxg_cmd_parse("EHLO a\0b", 8, &c), MXG_PE_BAD_CHAR);
}

static void test_paths(void **st)
{
    (void)st;
    static const struct {
        const char *arg;
        int is_mail;
        int rc;
        const char *addr;
        const char *domain;
        int n_params;
    } cases[] = {
        {"FROM:<alice@example.org>", 1, MXG_PE_OK, "alice@example.org", "example.org", 0},
        {"FROM: <alice@Example.ORG>", 1, MXG_PE_OK, "alice@Example.ORG", "example.org", 0},
        {"from:<>", 1, MXG_PE_OK, "", "", 0},
        {"FROM:<> SIZE=100 BODY=8BITMIME", 1, MXG_PE_OK, "", "", 2},
        {"TO:<bob@example.net> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;bob@example.net", 0,
         MXG_PE_OK, "bob@example.net", "example.net", 2},
        {"TO:<\"john doe\"@example.net>", 0, MXG_PE_OK, "\"john doe\"@example.net",
         "example.net", 0},
        {"TO:<@relay.example,@r2.example:bob@example.net>", 0, MXG_PE_OK, "bob@example.net",
         "example.net", 0},
        {"TO:<first.last+tag@sub.example.net>", 0, MXG_PE_OK, "first.last+tag@sub.example.net",
         "sub.example.net", 0},
        {"TO:<j\xc3\xb6rg@b\xc3\xbc" "cher.example>", 0, MXG_PE_OK,
         "j\xc3\xb6rg@b\xc3\xbc" "cher.example", "b\xc3\xbc" "cher.example", 0},
        {"FROM:<u@[192.0.2.1]>", 1, MXG_PE_OK, "u@[192.0.2.1]", "", 0},
        /* malformed */
        {"TO:<>", 0, MXG_PE_PATH, NULL, NULL, 0},
        {"TO:<postmaster>", 0, MXG_PE_NODOMAIN, NULL, NULL, 0},
        {"FROM:<postmaster>", 1, MXG_PE_PATH, NULL, NULL, 0},
        {"TO:bob@example.net", 0, MXG_PE_PATH, NULL, NULL, 0},
        {"TO:<bob@example.net", 0, MXG_PE_PATH, NULL, NULL, 0},
        {"TO:<bob@@example.net>", 0, MXG_PE_PATH, NULL, NULL, 0},
        {"TO:<.bob@example.net>", 0, MXG_PE_PATH, NULL, NULL, 0},
        {"TO:<bob.@example.net>", 0, MXG_PE_PATH, NULL, NULL, 0},
        {"TO:<bo..b@example.net>", 0, MXG_PE_PATH, NULL, NULL, 0},
        {"TO:<bob@-example.net>", 0, MXG_PE_PATH, NULL, NULL, 0},
        {"TO:<bob@example..net>", 0, MXG_PE_PATH, NULL, NULL, 0},
        {"TO:<bob@exa_mple.net>", 0, MXG_PE_PATH, NULL, NULL, 0},
        {"TO:<bob@[192.0.2.1]>", 0, MXG_PE_LITERAL, NULL, NULL, 0},
        {"TO:<bob@example.net>x", 0, MXG_PE_SYNTAX, NULL, NULL, 0},
        {"TO:<bob@example.net> =x", 0, MXG_PE_PARAM, NULL, NULL, 0},
        {"TO:<bob@example.net> NOTIFY=", 0, MXG_PE_PARAM, NULL, NULL, 0},
        {"TO:<bob@example.net> A=1 A=2", 0, MXG_PE_PARAM, NULL, NULL, 0},
        {"FROM<a@b.c>", 1, MXG_PE_SYNTAX, NULL, NULL, 0},
        {"TO:<\"unterminated@example.net>", 0, MXG_PE_PATH, NULL, NULL, 0},
        {"TO:<b\xff" "ob@example.net>", 0, MXG_PE_PATH, NULL, NULL, 0},
        {"TO:<bob@ex\xc0\xaf" "ample.net>", 0, MXG_PE_PATH, NULL, NULL, 0},
        {"TO:<aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa@x.net>", 0,
         MXG_PE_PATH, NULL, NULL, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct mxg_path p;
        int rc = mxg_path_parse(cases[i].arg, strlen(cases[i].arg), cases[i].is_mail, &p);
        if (rc != cases[i].rc)
            fail_msg("case %zu '%s': rc %d, expected %d", i, cases[i].arg, rc, cases[i].rc);
        if (rc != MXG_PE_OK)
            continue;
        assert_string_equal(p.addr, cases[i].addr);
        assert_string_equal(p.domain, cases[i].domain);
        assert_int_equal(p.n_params, cases[i].n_params);
    }
}

static void test_mail_params(void **st)
{
    (void)st;
    static const struct {
        const char *arg;
        int rc;
        uint64_t size;
        enum mxg_body body;
        int utf8;
    } cases[] = {
        {"FROM:<a@b.c> SIZE=12345", MXG_PE_OK, 12345, MXG_BODY_NONE, 0},
        {"FROM:<a@b.c> BODY=8bitmime SMTPUTF8", MXG_PE_OK, 0, MXG_BODY_8BITMIME, 1},
        {"FROM:<a@b.c> BODY=7BIT RET=HDRS ENVID=abc+2Bdef", MXG_PE_OK, 0, MXG_BODY_7BIT, 0},
        {"FROM:<a@b.c> BODY=BINARYMIME", MXG_PE_UNKNOWN_PARAM, 0, 0, 0},
        {"FROM:<a@b.c> XFOO=1", MXG_PE_UNKNOWN_PARAM, 0, 0, 0},
        {"FROM:<a@b.c> SIZE=12a", MXG_PE_PARAM, 0, 0, 0},
        {"FROM:<a@b.c> SIZE", MXG_PE_PARAM, 0, 0, 0},
        {"FROM:<a@b.c> SIZE=123456789012345678901", MXG_PE_PARAM, 0, 0, 0},
        {"FROM:<a@b.c> SMTPUTF8=yes", MXG_PE_PARAM, 0, 0, 0},
        {"FROM:<a@b.c> RET=ALL", MXG_PE_PARAM, 0, 0, 0},
        {"FROM:<a@b.c> ENVID=a+2g", MXG_PE_PARAM, 0, 0, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct mxg_path p;
        assert_int_equal(mxg_path_parse(cases[i].arg, strlen(cases[i].arg), 1, &p), MXG_PE_OK);
        struct mxg_mail_params mp;
        int rc = mxg_mail_params_check(&p, &mp);
        if (rc != cases[i].rc)
            fail_msg("case '%s': rc %d, expected %d", cases[i].arg, rc, cases[i].rc);
        if (rc != MXG_PE_OK)
            continue;
        assert_int_equal(mp.size, cases[i].size);
        assert_int_equal(mp.body, cases[i].body);
        assert_int_equal(mp.smtputf8, cases[i].utf8);
    }
}

static void test_rcpt_params(void **st)
{
    (void)st;
    static const struct {
        const char *arg;
        int rc;
    } cases[] = {
        {"TO:<a@b.c> NOTIFY=NEVER", MXG_PE_OK},
        {"TO:<a@b.c> NOTIFY=SUCCESS,DELAY", MXG_PE_OK},
        {"TO:<a@b.c> ORCPT=rfc822;a+40b.c", MXG_PE_OK},
        {"TO:<a@b.c> NOTIFY=NEVER,SUCCESS", MXG_PE_PARAM},
        {"TO:<a@b.c> NOTIFY=SOMETIMES", MXG_PE_PARAM},
        {"TO:<a@b.c> ORCPT=rfc822", MXG_PE_PARAM},
        {"TO:<a@b.c> ORCPT=;x", MXG_PE_PARAM},
        {"TO:<a@b.c> FOO=BAR", MXG_PE_UNKNOWN_PARAM},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct mxg_path p;
        assert_int_equal(mxg_path_parse(cases[i].arg, strlen(cases[i].arg), 0, &p), MXG_PE_OK);
        struct mxg_rcpt_params rp;
        int rc = mxg_rcpt_params_check(&p, &rp);
        if (rc != cases[i].rc)
            fail_msg("case '%s': rc %d, expected %d", cases[i].arg, rc, cases[i].rc);
    }
}

static int feed_all(struct mxg_reply_parser *p, const char *const *lines, size_t n)
{
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        rc = mxg_reply_feed(p, lines[i], strlen(lines[i]));
        if (rc != 0)
            return rc;
    }
    return rc;
}

static void test_replies(void **st)
{
    (void)st;
    struct mxg_reply_parser p;
    mxg_reply_parser_reset(&p);
    const char *ok[] = {"250 2.1.5 Ok"};
    assert_int_equal(feed_all(&p, ok, 1), 1);
    assert_int_equal(p.r.code, 250);
    assert_string_equal(p.r.enh, "2.1.5");
    assert_string_equal(p.r.text, "Ok");

    const char *multi[] = {"550-5.1.1 first", "550-5.1.1 second", "550 5.1.1 third"};
    assert_int_equal(feed_all(&p, multi, 3), 1);
    assert_int_equal(p.r.n_lines, 3);
    assert_string_equal(p.r.text, "first\nsecond\nthird");
    char out[512];
    size_t n = mxg_reply_render(&p.r, out, sizeof out);
    out[n] = 0;
    assert_string_equal(out, "550-5.1.1 first\r\n550-5.1.1 second\r\n550 5.1.1 third\r\n");

    /* no enhanced code upstream: one derived from the class is added */
    const char *plain[] = {"451 try later"};
    assert_int_equal(feed_all(&p, plain, 1), 1);
    assert_string_equal(p.r.enh, "");
    n = mxg_reply_render(&p.r, out, sizeof out);
    out[n] = 0;
    assert_string_equal(out, "451 4.0.0 try later\r\n");

    /* an enhanced code of the wrong class is replaced */
    const char *wrong[] = {"550 2.0.0 odd"};
    assert_int_equal(feed_all(&p, wrong, 1), 1);
    n = mxg_reply_render(&p.r, out, sizeof out);
    out[n] = 0;
    assert_string_equal(out, "550 5.0.0 odd\r\n");

    /* greeting, EHLO and 354 carry no enhanced code (RFC 2034 §3) */
    struct mxg_reply loc;
    mxg_reply_set(&loc, 250, "", "mx.example\nPIPELINING\nSIZE 100");
    n = mxg_reply_render(&loc, out, sizeof out);
    out[n] = 0;
    assert_string_equal(out, "250-mx.example\r\n250-PIPELINING\r\n250 SIZE 100\r\n");
    mxg_reply_set(&loc, 221, "2.0.0", "bye");
    n = mxg_reply_render(&loc, out, sizeof out);
    out[n] = 0;
    assert_string_equal(out, "221 2.0.0 bye\r\n");
    const char *go[] = {"354 go ahead"};
    assert_int_equal(feed_all(&p, go, 1), 1);
    n = mxg_reply_render(&p.r, out, sizeof out);
    out[n] = 0;
    assert_string_equal(out, "354 go ahead\r\n");

    const char *bare[] = {"220"};
    assert_int_equal(feed_all(&p, bare, 1), 1);
    assert_int_equal(p.r.code, 220);

    /* malformed */
    static const char *bad[] = {"25", "2500 x", "abc def", "650 nope", "250x", "199 low"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        mxg_reply_parser_reset(&p);
        assert_int_equal(mxg_reply_feed(&p, bad[i], strlen(bad[i])), MXG_PE_SYNTAX);
    }
    /* code changes in the middle of a multi-line reply */
    mxg_reply_parser_reset(&p);
    assert_int_equal(mxg_reply_feed(&p, "250-a", 5), 0);
    assert_int_equal(mxg_reply_feed(&p, "251 b", 5), MXG_PE_SYNTAX);
    /* a reply that never ends is cut off */
    mxg_reply_parser_reset(&p);
    int rc = 0;
    for (int i = 0; i < 100 && rc == 0; i++)
        rc = mxg_reply_feed(&p, "250-x", 5);
    assert_int_equal(rc, MXG_PE_SYNTAX);
    /* control characters never reach the client */
    mxg_reply_parser_reset(&p);
    assert_int_equal(mxg_reply_feed(&p, "250 a\x01" "b", 7), 1);
    assert_string_equal(p.r.text, "a b");
}

/* An over-long reply line is never a reply, however the input is split into
 * reads (hostile_table.txt new-A: 5000 octets in one read were cut and taken as "250"). */
static void test_reply_line_split(void **st)
{
    (void)st;
    size_t len = 0, take = 0;
    assert_int_equal(mxg_reply_line_split("250 ok\r\n250", 11, &len, &take), 1);
    assert_int_equal(len, 6);
    assert_int_equal(take, 8);
    assert_int_equal(mxg_reply_line_split("250 ok", 6, &len, &take), 0);
    assert_int_equal(mxg_reply_line_split("250 ok\n", 7, &len, &take), 1); /* bare LF */
    assert_int_equal(len, 6);

    static char big[6000];
    memset(big, 'x', sizeof big);
    memcpy(big, "250 ", 4);
    /* 5000 octets and CRLF in one read */
    big[5000] = '\r';
    big[5001] = '\n';
    assert_int_equal(mxg_reply_line_split(big, 5002, &len, &take), MXG_PE_TOO_LONG);
    /* the same line arriving in pieces: refused as soon as it cannot end in time */
    for (size_t chunk = 1; chunk <= 5002; chunk += 97) {
        int rc = mxg_reply_line_split(big, chunk, &len, &take);
        if (chunk <= MXG_REPLY_LINE_MAX + 1)
            assert_int_equal(rc, 0);
        else
            assert_int_equal(rc, MXG_PE_TOO_LONG);
    }
    /* the longest line taken: MXG_REPLY_LINE_MAX octets, CR and LF possibly apart */
    big[MXG_REPLY_LINE_MAX] = '\r';
    big[MXG_REPLY_LINE_MAX + 1] = '\n';
    assert_int_equal(mxg_reply_line_split(big, MXG_REPLY_LINE_MAX + 1, &len, &take), 0);
    assert_int_equal(mxg_reply_line_split(big, MXG_REPLY_LINE_MAX + 2, &len, &take), 1);
    assert_int_equal(len, MXG_REPLY_LINE_MAX);
    big[MXG_REPLY_LINE_MAX] = 'x';
    assert_int_equal(mxg_reply_line_split(big, MXG_REPLY_LINE_MAX + 1, &len, &take),
                     MXG_PE_TOO_LONG);
    big[MXG_REPLY_LINE_MAX + 1] = '\n'; /* 4097 octets, then LF */
    assert_int_equal(mxg_reply_line_split(big, MXG_REPLY_LINE_MAX + 2, &len, &take),
                     MXG_PE_TOO_LONG);
}

/* Relayed replies are printable US-ASCII (hostile_table.txt new-F: 8-bit text went to
 * the client as it was) and at most 512 octets a line (new-A). */
static void test_reply_sanitised(void **st)
{
    (void)st;
    struct mxg_reply_parser p;
    mxg_reply_parser_reset(&p);
    assert_int_equal(mxg_reply_feed(&p, "450 4.7.0 caf\xc3\xa9 \xff", 17), 1);
    assert_string_equal(p.r.text, "caf?? ?");
    char out[MXG_REPLY_TEXT_MAX + 1024];
    size_t n = mxg_reply_render(&p.r, out, sizeof out);
    out[n] = 0;
    assert_string_equal(out, "450 4.7.0 caf?? ?\r\n");

    /* a long line (allowed by the parser) is cut to 512 octets on the wire */
    static char line[MXG_REPLY_LINE_MAX];
    memset(line, 'y', sizeof line);
    memcpy(line, "550-5.1.1 ", 10);
    mxg_reply_parser_reset(&p);
    assert_int_equal(mxg_reply_feed(&p, line, 3000), 0);
    assert_int_equal(mxg_reply_feed(&p, "550 5.1.1 end", 13), 1);
    n = mxg_reply_render(&p.r, out, sizeof out);
    out[n] = 0;
    char *crlf = strstr(out, "\r\n");
    assert_non_null(crlf);
    assert_int_equal(crlf + 2 - out, MXG_REPLY_WIRE_MAX);
    assert_string_equal(crlf + 2, "550 5.1.1 end\r\n");
    for (size_t i = 0; i < n; i++)
        assert_true(out[i] == '\r' || out[i] == '\n' || (out[i] >= 32 && out[i] < 127));
    /* a local reply with an 8-bit octet in it is rendered printable too */
    struct mxg_reply loc;
    mxg_reply_set(&loc, 451, "4.5.0", "x\xe9y");
    n = mxg_reply_render(&loc, out, sizeof out);
    out[n] = 0;
    assert_string_equal(out, "451 4.5.0 x?y\r\n");
}

static void test_caps(void **st)
{
    (void)st;
    struct mxg_reply_parser p;
    mxg_reply_parser_reset(&p);
    const char *ehlo[] = {"250-mx.example greets you", "250-PIPELINING", "250-SIZE 10240000",
                          "250-starttls", "250-8BITMIME", "250-ENHANCEDSTATUSCODES",
                          "250-SMTPUTF8", "250 DSN"};
    assert_int_equal(feed_all(&p, ehlo, 8), 1);
    struct mxg_caps c;
    mxg_caps_parse(&p.r, &c);
    assert_true(c.starttls && c.pipelining && c.size && c.eightbit && c.enhanced && c.smtputf8 &&
                c.dsn);
    assert_int_equal(c.size_limit, 10240000);
    /* the greeting line is not a capability */
    const char *ehlo2[] = {"250-STARTTLS", "250 SIZE"};
    assert_int_equal(feed_all(&p, ehlo2, 2), 1);
    mxg_caps_parse(&p.r, &c);
    assert_false(c.starttls);
    assert_true(c.size);
    assert_int_equal(c.size_limit, 0);
}

static void test_domains(void **st)
{
    (void)st;
    static const struct {
        const char *d;
        int utf8;
        int ok;
    } cases[] = {
        {"example.com", 0, 1},      {"a-b.example", 0, 1},   {"x", 0, 1},
        {"-a.example", 0, 0},       {"a-.example", 0, 0},    {"a..b", 0, 0},
        {".a", 0, 0},               {"a.", 0, 0},            {"a b", 0, 0},
        {"b\xc3\xbc" "cher.de", 0, 0}, {"b\xc3\xbc" "cher.de", 1, 1}, {"\xc3", 1, 0},
        {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.x", 0, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        if (mxg_domain_valid(cases[i].d, strlen(cases[i].d), cases[i].utf8) != cases[i].ok)
            fail_msg("domain '%s' utf8=%d: expected %d", cases[i].d, cases[i].utf8, cases[i].ok);
}

static void test_alabel(void **st)
{
    (void)st;
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"Example.COM", "example.com"},
        {"b\xc3\xbc" "cher.example", "xn--bcher-kva.example"},
        {"\xe4\xbe\x8b\xe3\x81\x88.\xe3\x83\x86\xe3\x82\xb9\xe3\x83\x88", "xn--r8jz45g.xn--zckzah"},
        {"a\xe2\x80\x8d" "b.example", NULL}, /* ZWJ is not allowed here */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char out[256];
        int rc = mxg_domain_alabel(cases[i].in, out, sizeof out);
        if (!cases[i].out) {
            assert_int_equal(rc, -1);
            continue;
        }
        assert_int_equal(rc, 0);
        assert_string_equal(out, cases[i].out);
    }
}

/* HELO/EHLO names (docs/ARCHITECTURE.md §Hostile peers) and their rendering in Received. */
static void test_helo(void **st)
{
    (void)st;
    static const struct {
        const char *arg;
        enum mxg_helo_class cls;
        const char *shown;
    } cases[] = {
        {"mail.example.com", MXG_HELO_NAME, "mail.example.com"},
        {"mail.example.com.", MXG_HELO_NAME, "mail.example.com."},
        {"my_host", MXG_HELO_NAME, "my_host"},           /* legacy, harmless */
        {"192.0.2.1", MXG_HELO_NAME, "192.0.2.1"},       /* no brackets: harmless */
        {"[192.0.2.1]", MXG_HELO_NAME, "[192.0.2.1]"},
        {"[IPv6:2001:db8::1]", MXG_HELO_NAME, "[IPv6:2001:db8::1]"},
        {"a..b", MXG_HELO_ODD, "a..b"},
        {".", MXG_HELO_ODD, "."},
        {"[]", MXG_HELO_ODD, "[]"},
        {"[1.2.3.4", MXG_HELO_ODD, "[1.2.3.4"},
        {"two words", MXG_HELO_ODD, "two?words"},
        {"x)\r\nFrom: y", MXG_HELO_BAD, "x???From:?y"},
        {"caf\xc3\xa9.example", MXG_HELO_ODD, "caf??.example"}, /* a U-label: accepted */
        {"a(b);c\\d\"e", MXG_HELO_ODD, "a?b??c?d?e"},
        {"a\x7f" "b", MXG_HELO_BAD, "a?b"},
        {"a\tb", MXG_HELO_BAD, "a?b"},
        {"\xff\xfe", MXG_HELO_BAD, "??"},
        {"\xc0\xaf", MXG_HELO_BAD, "??"}, /* overlong */
        {"", MXG_HELO_BAD, ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char shown[256];
        enum mxg_helo_class c =
            mxg_helo_classify(cases[i].arg, strlen(cases[i].arg), shown, sizeof shown);
        if (c != cases[i].cls || strcmp(shown, cases[i].shown) != 0)
            fail_msg("case %zu: class %d shown '%s'", i, c, shown);
    }
    /* a long odd name is cut; a long plain one (up to 255) is whole */
    char arg[300], shown[256];
    memset(arg, 'a', sizeof arg);
    arg[10] = '!';
    assert_int_equal(mxg_helo_classify(arg, 200, shown, sizeof shown), MXG_HELO_ODD);
    assert_int_equal(strlen(shown), 67);
    assert_string_equal(shown + 64, "...");
    for (int i = 0; i < 255; i++)
        arg[i] = i % 60 == 59 ? '.' : 'b';
    assert_int_equal(mxg_helo_classify(arg, 255, shown, sizeof shown), MXG_HELO_NAME);
    assert_int_equal(strlen(shown), 255);
    assert_int_equal(mxg_helo_classify(arg, 256, shown, sizeof shown), MXG_HELO_ODD); /* > 255 */
    char tiny[8];
    mxg_helo_classify("mail.example.com", 16, tiny, sizeof tiny);
    assert_int_equal(strlen(tiny), 7);
}

/* The hand-written formatting of mxg_reply_summary / mxg_reply_render gives
 * exactly what the printf formats they replaced gave, at every buffer size. */
/* The parser is reset without zeroing its 4 KB text: a short reply after a long
 * one (a hostile MX's, say) carries none of the long one's octets, on the wire or
 * in the summary the client may see. */
static void test_reply_no_stale_text(void **st)
{
    (void)st;
    struct mxg_reply_parser p;
    mxg_reply_parser_reset(&p);
    char longline[1000];
    memset(longline, 'X', sizeof longline - 1);
    longline[sizeof longline - 1] = 0;
    memcpy(longline, "451-4.3.0 ", 10);
    const char *big[] = {longline, longline, "451 4.3.0 SECRET-TAIL"};
    assert_int_equal(feed_all(&p, big, 3), 1);
    const char *small[] = {"250 ok"};
    assert_int_equal(feed_all(&p, small, 1), 1);
    assert_string_equal(p.r.text, "ok");
    assert_int_equal(p.r.n_lines, 1);
    assert_string_equal(p.r.enh, "");
    char out[64], sum[64];
    size_t n = mxg_reply_render(&p.r, out, sizeof out);
    assert_memory_equal(out, "250 2.0.0 ok\r\n", n);
    mxg_reply_summary(&p.r, sum, sizeof sum);
    assert_string_equal(sum, "250 ok");
    /* a syntax error mid-reply resets too: the next reply starts clean */
    const char *bad[] = {"550-5.1.1 part one", "551 mismatched code"};
    assert_true(feed_all(&p, bad, 2) < 0);
    assert_int_equal(feed_all(&p, small, 1), 1);
    assert_string_equal(p.r.text, "ok");
}

static void test_reply_format_equals_printf(void **st)
{
    (void)st;
    static const struct { int code; const char *enh; int no_enh; const char *text; } rs[] = {
        {250, "2.0.0", 0, "Ok: queued as 0001"},
        {250, "", 0, "mx.example\nPIPELINING\nSIZE 100"},
        {451, "4.7.5", 0, "TLSA records unusable\nsecond line"},
        {354, "", 1, "go ahead"},
        {550, "", 0, ""},
        {421, "2.0.0", 0, "class mismatch: render derives 4.0.0"},
        {220, "", 1, "x"},
    };
    for (size_t i = 0; i < sizeof rs / sizeof rs[0]; i++) {
        struct mxg_reply r;
        mxg_reply_clear(&r);
        r.code = rs[i].code;
        snprintf(r.enh, sizeof r.enh, "%s", rs[i].enh);
        r.no_enh = rs[i].no_enh;
        snprintf(r.text, sizeof r.text, "%s", rs[i].text);
        const char *nl = strchr(r.text, '\n');
        int ll = nl ? (int)(nl - r.text) : (int)strlen(r.text);
        for (size_t cap = 1; cap < 64; cap++) {
            char got[64], want[64];
            memset(got, 'Z', sizeof got);
            mxg_reply_summary(&r, got, cap);
            snprintf(want, cap, "%03d%s%s %.*s", r.code, r.enh[0] ? " " : "", r.enh, ll, r.text);
            assert_string_equal(got, want);
        }
        /* render, first line's head: "%03d%c%s%s" */
        char out[512], head[40], enh[16];
        int cls = r.code / 100;
        if (r.no_enh || cls == 3)
            enh[0] = 0;
        else if (r.enh[0] == '0' + cls)
            snprintf(enh, sizeof enh, "%s", r.enh);
        else
            snprintf(enh, sizeof enh, "%d.0.0", cls);
        size_t n = mxg_reply_render(&r, out, sizeof out);
        int hl = snprintf(head, sizeof head, "%03d%c%s%s", r.code, nl ? '-' : ' ', enh,
                          ll && enh[0] ? " " : "");
        assert_true(n >= (size_t)hl + 2);
        assert_memory_equal(out, head, (size_t)hl);
        assert_memory_equal(out + hl, r.text, (size_t)ll);
        assert_memory_equal(out + hl + ll, "\r\n", 2);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cmd_verbs),   cmocka_unit_test(test_paths),
        cmocka_unit_test(test_mail_params), cmocka_unit_test(test_rcpt_params),
        cmocka_unit_test(test_replies),     cmocka_unit_test(test_caps),
        cmocka_unit_test(test_domains),     cmocka_unit_test(test_alabel),
        cmocka_unit_test(test_helo),        cmocka_unit_test(test_reply_line_split),
        cmocka_unit_test(test_reply_sanitised), cmocka_unit_test(test_reply_format_equals_printf),
        cmocka_unit_test(test_reply_no_stale_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
