/* tests/unit/test_core_config.c — core/config: defaults, the file, the
 * environment, the parsers and the dump. Table-driven; every error case
 * asserts the "FILE:LINE: section.key: reason" prefix. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sched.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#include "core/config.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* ---- helpers ---- */

/* Write content to a new temporary file; returns its path (free it). */
static char *write_temp(const char *content)
{
    char *path = strdup("/tmp/mxg_test_config_XXXXXX");
    assert_non_null(path);
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    size_t len = strlen(content);
    assert_int_equal(write(fd, content, len), (ssize_t)len);
    close(fd);
    return path;
}

static void remove_temp(char *path)
{
    unlink(path);
    free(path);
}

/* The dump of cfg without its first (header) line; free it. */
static char *dump_body(const struct mxg_config *cfg)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    mxg_config_dump(cfg, f);
    fclose(f);
    char *nl = strchr(buf, '\n');
    assert_non_null(nl);
    memmove(buf, nl + 1, strlen(nl + 1) + 1);
    return buf;
}

static void assert_same_config(const struct mxg_config *a, const struct mxg_config *b)
{
    char *da = dump_body(a), *db = dump_body(b);
    assert_string_equal(da, db);
    free(da);
    free(db);
}

/* Write the dump of a over path and load it back into b (the test fails
 * if the dump does not load). */
static void dump_and_reload(const struct mxg_config *a, const char *path, struct mxg_config *b)
{
    char err[512];
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    mxg_config_dump(a, f);
    fclose(f);
    if (mxg_config_load(b, path, NULL, err, sizeof err) != 0)
        fail_msg("the dump does not load: %s", err);
}

static int port_of(const struct mxg_endpoint *ep)
{
    if (ep->sa.ss_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)&ep->sa)->sin_port);
    return ntohs(((const struct sockaddr_in6 *)&ep->sa)->sin6_port);
}

/* An AF_INET or AF_INET6 sockaddr for the literal s. */
static void make_sockaddr(const char *s, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof *ss);
    if (strchr(s, ':')) {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
        sin6->sin6_family = AF_INET6;
        assert_int_equal(inet_pton(AF_INET6, s, &sin6->sin6_addr), 1);
    } else {
        struct sockaddr_in *sin = (struct sockaddr_in *)ss;
        sin->sin_family = AF_INET;
        assert_int_equal(inet_pton(AF_INET, s, &sin->sin_addr), 1);
    }
}

static void assert_prefix(const char *err, const char *expected)
{
    if (strncmp(err, expected, strlen(expected)) != 0)
        fail_msg("error\n  got:      \"%s\"\n  expected: \"%s...\"", err, expected);
}

/* ---- defaults ---- */

static void test_defaults(void **state)
{
    (void)state;
    struct mxg_config c;
    mxg_config_defaults(&c);
    assert_string_equal(c.source, "");
    assert_int_equal(c.n_listen, 1);
    assert_string_equal(c.listen[0].text, "127.0.0.1:10025");
    assert_int_equal(c.listen[0].sa.ss_family, AF_INET);
    assert_int_equal(port_of(&c.listen[0]), 10025);
    assert_int_equal(c.n_allow, 2);
    assert_string_equal(c.allow[0].text, "127.0.0.0/8");
    assert_string_equal(c.allow[1].text, "::1/128");
    assert_string_equal(c.hostname, "");
    assert_int_equal(c.max_sessions, 1000);
    assert_int_equal(c.drain_timeout_ms, 30000);
    assert_int_equal(c.message_size, 52428800);
    assert_int_equal(c.max_recipients, 1000);
    assert_int_equal(c.data_line_max, 1000);
    assert_int_equal(c.max_received, 50);
    assert_int_equal(c.max_errors, 20);
    assert_int_equal(c.t_idle, 300000);
    assert_int_equal(c.t_data, 300000);
    assert_int_equal(c.t_rcpt_total, 120000);
    assert_int_equal(c.t_final, 540000);
    assert_int_equal(c.t_connect, 30000);
    assert_int_equal(c.t_upstream_cmd, 300000);
    assert_int_equal(c.t_dns, 10000);
    assert_string_equal(c.helo_name, "");
    assert_int_equal(c.upstream_port, 25);
    assert_string_equal(c.source_ipv4, "");
    assert_string_equal(c.source_ipv6, "");
    assert_int_equal(c.af_pref, MXG_AF_ANY);
    assert_int_equal(c.max_mx_hosts, 10);
    assert_int_equal(c.dns_mode, MXG_DNS_AUTO);
    assert_string_equal(c.dns_root_hints, "");
    assert_int_equal(c.dns_auto_recheck_ms, 300000);
    assert_int_equal(c.dns_transport, MXG_DNS_TCP);
    assert_int_equal(c.n_dns_servers, 0);
    assert_string_equal(c.trust_anchor_file, "/usr/share/dns/root.key");
    assert_int_equal(c.tls_level, MXG_TLS_LEVEL_MAY);
    assert_int_equal(c.log_level, MXG_LOG_INFO);
    assert_int_equal(c.log_syslog, 0);
}

static void test_load_without_file(void **state)
{
    (void)state;
    struct mxg_config c, d;
    char err[512];
    mxg_config_defaults(&d);
    assert_int_equal(mxg_config_load(&c, NULL, NULL, err, sizeof err), 0);
    assert_string_equal(err, "");
    assert_string_equal(c.source, "");
    assert_same_config(&c, &d);
}

/* ---- a full valid file ---- */

static const char full_file[] =
    "# every key, none at its default\n"
    "server:\n"
    "{\n"
    "  listen = [\"127.0.0.1:2525\", \"[::1]:2526\"];\n"
    "  allow_networks = ( \"10.1.2.3/8\",   // host bits are masked\n"
    "                     \"2001:db8::/32\", \"192.0.2.7\" );\n"
    "  hostname = \"relay.example.org\";\n"
    "  max_sessions = 50;\n"
    "  drain_timeout = 5;\n"
    "};\n"
    "limits: {\n"
    "  message_size = \"10M\";\n"
    "  recipients = 100;\n"
    "  data_line_length = 2000;\n"
    "  max_received = 30;\n"
    "  max_errors = 5;\n"
    "};\n"
    "timeouts: {\n"
    "  idle = \"1m\"; data = \"90s\"; rcpt_total = 60; final_reply = \"1500ms\";\n"
    "  connect = \"2s\"; upstream_command = \"1h\"; dns = \"250ms\";\n"
    "};\n"
    "upstream: {\n"
    "  helo_name = \"mx-out.example.org\";\n"
    "  port = 2525;\n"
    "  source_ipv4 = \"192.0.2.10\";\n"
    "  source_ipv6 = \"2001:db8::10\";\n"
    "  address_family = \"prefer-ipv6\";\n"
    "  max_mx_hosts = 3;\n"
    "};\n"
    "dns: {\n"
    "  mode = \"recursive\";\n"
    "  transport = \"udp\";\n"
    "  servers = [\"192.0.2.53\", \"192.0.2.54:5353\", \"[2001:db8::53]:53\", \"2001:db8::54\"];\n"
    "  trust_anchor_file = \"/etc/mxguard/root.key\";\n"
    "};\n"
    "tls: { opportunistic_level = \"encrypt\"; };\n"
    "log: { level = \"debug\"; syslog = true; };\n";

static void test_full_file(void **state)
{
    (void)state;
    char *path = write_temp(full_file);
    struct mxg_config c;
    char err[512];
    assert_int_equal(mxg_config_load(&c, path, NULL, err, sizeof err), 0);
    assert_string_equal(c.source, path);
    assert_int_equal(c.n_listen, 2);
    assert_string_equal(c.listen[0].text, "127.0.0.1:2525");
    assert_int_equal(port_of(&c.listen[0]), 2525);
    assert_string_equal(c.listen[1].text, "[::1]:2526");
    assert_int_equal(c.listen[1].sa.ss_family, AF_INET6);
    assert_int_equal(port_of(&c.listen[1]), 2526);
    assert_int_equal(c.n_allow, 3);
    assert_string_equal(c.allow[0].text, "10.0.0.0/8");
    assert_string_equal(c.allow[1].text, "2001:db8::/32");
    assert_string_equal(c.allow[2].text, "192.0.2.7/32");
    assert_string_equal(c.hostname, "relay.example.org");
    assert_int_equal(c.max_sessions, 50);
    assert_int_equal(c.drain_timeout_ms, 5000);
    assert_int_equal(c.message_size, 10 * 1024 * 1024);
    assert_int_equal(c.max_recipients, 100);
    assert_int_equal(c.data_line_max, 2000);
    assert_int_equal(c.max_received, 30);
    assert_int_equal(c.max_errors, 5);
    assert_int_equal(c.t_idle, 60000);
    assert_int_equal(c.t_data, 90000);
    assert_int_equal(c.t_rcpt_total, 60000);
    assert_int_equal(c.t_final, 1500);
    assert_int_equal(c.t_connect, 2000);
    assert_int_equal(c.t_upstream_cmd, 3600000);
    assert_int_equal(c.t_dns, 250);
    assert_string_equal(c.helo_name, "mx-out.example.org");
    assert_int_equal(c.upstream_port, 2525);
    assert_string_equal(c.source_ipv4, "192.0.2.10");
    assert_string_equal(c.source_ipv6, "2001:db8::10");
    assert_int_equal(c.af_pref, MXG_AF_PREFER_IPV6);
    assert_int_equal(c.max_mx_hosts, 3);
    assert_int_equal(c.dns_mode, MXG_DNS_RECURSIVE);
    assert_int_equal(c.dns_transport, MXG_DNS_UDP);
    assert_int_equal(c.n_dns_servers, 4);
    assert_int_equal(port_of(&c.dns_servers[0]), 53);
    assert_int_equal(port_of(&c.dns_servers[1]), 5353);
    assert_int_equal(port_of(&c.dns_servers[2]), 53);
    assert_int_equal(c.dns_servers[3].sa.ss_family, AF_INET6);
    assert_int_equal(port_of(&c.dns_servers[3]), 53);
    assert_string_equal(c.trust_anchor_file, "/etc/mxguard/root.key");
    assert_int_equal(c.tls_level, MXG_TLS_LEVEL_ENCRYPT);
    assert_int_equal(c.log_level, MXG_LOG_DEBUG);
    assert_int_equal(c.log_syslog, 1);
    remove_temp(path);
}

static void test_int64_and_sizes(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        uint64_t want;
    } cases[] = {
        {"limits: { message_size = 5000000000L; };\n", 5000000000ULL},
        {"limits: { message_size = \"2G\"; };\n", 2147483648ULL},
        {"limits: { message_size = 2147483647; };\n", 2147483647ULL},
        {"limits: { message_size = \"64k\"; };\n", 65536},
        {"limits: { message_size = \"1000\"; };\n", 1000},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        char *path = write_temp(cases[i].text);
        struct mxg_config c;
        char err[512];
        assert_int_equal(mxg_config_load(&c, path, NULL, err, sizeof err), 0);
        assert_int_equal(c.message_size, cases[i].want);
        remove_temp(path);
    }
}

/* ---- file errors ---- */

struct file_error {
    const char *text;
    int line;
    const char *reason; /* after "PATH:LINE: " (prefix match) */
};

static const struct file_error file_errors[] = {
    /* unknown names */
    {"server: {\n  listen = [\"127.0.0.1:25\"];\n  bogus = 1;\n};\n", 3,
     "server.bogus: unknown setting"},
    {"# comment\nnosuch: { a = 1; };\n", 2, "nosuch: unknown section"},
    {"server = 5;\n", 1, "server: expected a group"},
    {"log: {\n  level = \"info\";\n  server = { };\n};\n", 3, "log.server: unknown setting"},
    /* wrong types */
    {"server: {\n  max_sessions = \"10\";\n};\n", 2, "server.max_sessions: expected an integer"},
    {"server: { hostname = 5; };\n", 1, "server.hostname: expected a string"},
    {"limits: {\n\n  recipients = 1.5;\n};\n", 3, "limits.recipients: expected an integer"},
    {"log: { syslog = \"yes\"; };\n", 1, "log.syslog: expected true or false"},
    {"log: { syslog = 1; };\n", 1, "log.syslog: expected true or false"},
    {"timeouts: { data = true; };\n", 1, "timeouts.data: expected an integer or a string"},
    {"server: {\n  listen = (\"127.0.0.1:25\",\n    25);\n};\n", 3,
     "server.listen: list entry 2 is not a string"},
    {"server: { allow_networks = [1, 2]; };\n", 1,
     "server.allow_networks: list entry 1 is not a string"},
    {"server: { listen = \"127.0.0.1:25\"; };\n", 1, "server.listen: expected a list of strings"},
    {"upstream: { address_family = 4; };\n", 1, "upstream.address_family: expected a string"},
    /* list sizes */
    {"dns: {\n  servers = [\"1.1.1.1\", \"1.0.0.1\", \"8.8.8.8\", \"8.8.4.4\", \"9.9.9.9\"];\n};\n", 2,
     "dns.servers: too many entries (at most 4)"},
    {"server: { listen = []; };\n", 1, "server.listen: at least 1 entry required"},
    {"server: { allow_networks = (); };\n", 1, "server.allow_networks: at least 1 entry required"},
    /* out of range */
    {"upstream: { max_mx_hosts = 33; };\n", 1, "upstream.max_mx_hosts: must be between 1 and 32"},
    {"upstream: { max_mx_hosts = 0; };\n", 1, "upstream.max_mx_hosts: must be between 1 and 32"},
    {"upstream: { port = 65536; };\n", 1, "upstream.port: must be between 1 and 65535"},
    {"limits: { data_line_length = 999; };\n", 1,
     "limits.data_line_length: must be between 1000 and 1048576"},
    {"limits: { data_line_length = 1048577; };\n", 1,
     "limits.data_line_length: must be between 1000 and 1048576"},
    {"limits: { max_received = 0; };\n", 1, "limits.max_received: must be between 1 and 1000"},
    {"limits: { max_received = 1001; };\n", 1, "limits.max_received: must be between 1 and 1000"},
    {"server: { max_sessions = -1; };\n", 1, "server.max_sessions: must be between 1 and"},
    {"limits: { message_size = 0; };\n", 1, "limits.message_size: must be between 1 and"},
    {"limits: { message_size = -5; };\n", 1, "limits.message_size: must not be negative"},
    {"limits: { message_size = \"2048G\"; };\n", 1, "limits.message_size: must be between 1 and"},
    /* libconfig 1.5 would wrap these silently */
    {"limits: {\n  message_size = 99999999999;\n};\n", 2,
     "integer 99999999999 does not fit in 32 bits"},
    {"timeouts: {\n  # 4294967296 in a comment is fine\n  idle = \"1s\"; dns = -2147483649;\n};\n", 3,
     "integer -2147483649 does not fit in 32 bits"},
    {"upstream: { port = 0x100000019; };\n", 1, "integer 0x100000019 does not fit in 32 bits"},
    {"limits: { recipients = 3000000000.0; };\n", 1, "limits.recipients: expected an integer"},
    {"limits: { recipients = 3e9; };\n", 1, "limits.recipients: expected an integer"},
    {"upstream: { helo_name = \"a\\\"99999999999\"; port = 2147483647; };\n", 1,
     "upstream.helo_name: \"a\"99999999999\": not a DNS name"},
    {"/* 99999999999\n */ limits: { max_errors = 2147483647; };\n", 2,
     "limits.max_errors: must be between 1 and 1000000"},
    /* durations and sizes */
    {"timeouts: { idle = 0; };\n", 1, "timeouts.idle: must be between 1ms and 86400s"},
    {"timeouts: { idle = \"0ms\"; };\n", 1, "timeouts.idle: must be between 1ms and 86400s"},
    {"timeouts: { data = \"2d\"; };\n", 1, "timeouts.data: must be between 1ms and 86400s"},
    {"timeouts: { dns = \"10x\"; };\n", 1, "timeouts.dns: \"10x\": unknown unit"},
    {"timeouts: { connect = -5; };\n", 1, "timeouts.connect: must not be negative"},
    {"timeouts: { connect = \"-5\"; };\n", 1,
     "timeouts.connect: \"-5\": expected a non-negative number"},
    {"timeouts: { data = \"1.5s\"; };\n", 1, "timeouts.data: \"1.5s\": fractions are not supported"},
    {"timeouts: { data = \"\"; };\n", 1, "timeouts.data: \"\": empty value"},
    {"timeouts: { data = \"99999999999999999999s\"; };\n", 1,
     "timeouts.data: \"99999999999999999999s\": number too large"},
    {"server: { drain_timeout = \"2d\"; };\n", 1, "server.drain_timeout: must be between 0s and 86400s"},
    {"limits: { message_size = \"50X\"; };\n", 1, "limits.message_size: \"50X\": unknown unit"},
    /* addresses */
    {"server: { listen = [\"127.0.0.1\"]; };\n", 1,
     "server.listen: \"127.0.0.1\": a port is required"},
    {"server: { listen = [\"::1\"]; };\n", 1, "server.listen: \"::1\": a port is required"},
    {"server: { listen = [\"127.0.0.1:0\"]; };\n", 1,
     "server.listen: \"127.0.0.1:0\": port out of range (1..65535)"},
    {"server: { listen = [\"[::1\"]; };\n", 1, "server.listen: \"[::1\": missing ']'"},
    {"server: { listen = [\"localhost:25\"]; };\n", 1,
     "server.listen: \"localhost:25\": not an IPv4 address"},
    {"dns: { servers = [\"192.0.2.1:53\", \"192.0.2.1:dns\"]; };\n", 1,
     "dns.servers: \"192.0.2.1:dns\": port is not a number"},
    {"server: { allow_networks = [\"300.1.1.1/8\"]; };\n", 1,
     "server.allow_networks: \"300.1.1.1/8\": not an IP address"},
    {"server: { allow_networks = [\"10.0.0.0/33\"]; };\n", 1,
     "server.allow_networks: \"10.0.0.0/33\": prefix length out of range (0..32)"},
    {"server: { allow_networks = [\"::/129\"]; };\n", 1,
     "server.allow_networks: \"::/129\": prefix length out of range (0..128)"},
    {"upstream: { source_ipv4 = \"::1\"; };\n", 1,
     "upstream.source_ipv4: \"::1\": not an IPv4 address"},
    {"upstream: { source_ipv6 = \"1.2.3.4\"; };\n", 1,
     "upstream.source_ipv6: \"1.2.3.4\": not an IPv6 address"},
    /* names and words */
    {"server: { hostname = \"bad_host\"; };\n", 1, "server.hostname: \"bad_host\": not a DNS name"},
    {"upstream: { helo_name = \"-a.example\"; };\n", 1,
     "upstream.helo_name: \"-a.example\": not a DNS name: label starts or ends with '-'"},
    {"upstream: { address_family = \"ipv5\"; };\n", 1,
     "upstream.address_family: \"ipv5\": must be one of any, prefer-ipv4, prefer-ipv6, "
     "ipv4-only, ipv6-only"},
    {"dns: { mode = \"forward\"; };\n", 1, "dns.mode: \"forward\": must be one of stub, recursive, auto"},
    {"dns: { transport = \"tls\"; };\n", 1, "dns.transport: \"tls\": must be one of tcp, udp"},
    {"tls: { opportunistic_level = \"dane\"; };\n", 1,
     "tls.opportunistic_level: \"dane\": must be one of may, encrypt"},
    {"log: { level = \"verbose\"; };\n", 1,
     "log.level: \"verbose\": must be one of debug, info, notice, warning, error"},
    {"dns: { trust_anchor_file = \"\"; };\n", 1, "dns.trust_anchor_file: \"\": must not be empty"},
    /* state: the PostgreSQL connection string never carries a password */
    {"state: { postgresql = \"host=db password=x\"; };\n", 1,
     "state.postgresql: must not contain a password"},
    {"state: { postgresql = \"hostaddr=10.0.0.1 PASSWORD = 'x'\"; };\n", 1,
     "state.postgresql: must not contain a password"},
    {"state: { postgresql = \"postgresql://mx:secret@db/mxguard\"; };\n", 1,
     "state.postgresql: must not contain a password "
     "(user:password@)"},
    /* ... also percent-encoded in a URI (libpq decodes parameter names and the user info) */
    {"state: { postgresql = \"postgresql://mx@db/mxguard?%70assword=x\"; };\n", 1,
     "state.postgresql: must not contain a password"},
    {"state: { postgresql = \"postgresql://mx@db/mxguard?sslmode=require&pass%77%4Frd=x\"; };\n", 1,
     "state.postgresql: must not contain a password"},
    {"state: { postgresql = \"postgresql://mx%3Asecret@db/mxguard\"; };\n", 1,
     "state.postgresql: must not contain a password"},
    {"state: { backend = \"mysql\"; };\n", 1,
     "state.backend: \"mysql\": must be one of sqlite, postgresql"},
    {"state: { instance_name = \"a b\"; };\n", 1,
     "state.instance_name: \"a b\": only letters"},
    /* libconfig's own errors */
    {"server: {\n  max_sessions = ;\n};\n", 2, "syntax error: "},
    {"log: { level = \"info\"; };\nlog: { syslog = true; };\n", 2,
     "syntax error: duplicate setting name"},
    {"server: { listen = [\"127.0.0.1:25\", 25]; };\n", 1,
     "syntax error: mismatched element type in array"},
    {"server: { hostname = \"unterminated; };\n", 2, "syntax error: "}, /* reported at EOF */
};

/* state.*: a URI without a password loads; postgresql without a connection string does not. */
static void test_state_settings(void **state)
{
    (void)state;
    struct mxg_config c;
    char err[512];
    char *path = write_temp("state: { backend = \"postgresql\";\n"
                            "  postgresql = \"postgresql://mx@db.example/mxguard?sslmode=verify-full\";\n"
                            "  sync_interval = \"2s\"; migrate_at_startup = false; };\n");
    assert_int_equal(mxg_config_load(&c, path, NULL, err, sizeof err), 0);
    assert_int_equal(c.state_backend, MXG_STATE_POSTGRESQL);
    assert_int_equal(c.state_sync_ms, 2000);
    assert_int_equal(c.state_migrate, 0);
    assert_int_equal(c.state_report_lease_ms, 600000); /* the default, 10m */
    assert_int_equal(c.state_first_pull_ms, 10000); /* the default, 10s */
    unlink(path);
    free(path);
    /* a report claim's lease must outlast a report POST (mta_sts.fetch_timeout) */
    path = write_temp("state: { backend = \"postgresql\"; postgresql = \"hostaddr=10.0.0.1\";\n"
                      "  report_lease = \"30s\"; };\nmta_sts: { fetch_timeout = \"30s\"; };\n");
    assert_int_equal(mxg_config_load(&c, path, NULL, err, sizeof err), -1);
    assert_non_null(strstr(err, "state.report_lease: must be longer than mta_sts.fetch_timeout"));
    unlink(path);
    free(path);
    path = write_temp("state: { backend = \"postgresql\"; postgresql = \"hostaddr=10.0.0.1\";\n"
                      "  report_lease = \"31s\"; };\nmta_sts: { fetch_timeout = \"30s\"; };\n");
    assert_int_equal(mxg_config_load(&c, path, NULL, err, sizeof err), 0);
    assert_int_equal(c.state_report_lease_ms, 31000);
    unlink(path);
    free(path);
    path = write_temp("state: { backend = \"postgresql\"; };\n");
    assert_int_equal(mxg_config_load(&c, path, NULL, err, sizeof err), -1);
    assert_non_null(strstr(err, "state.postgresql: required with state.backend = \"postgresql\""));
    unlink(path);
    free(path);
}

/* server.workers: a number or "auto" (the default: the CPUs less one, 1 to 8, lowered to
 * the smallest positive process-wide limit); an explicit number's share of such a limit
 * must be at least 1. */
static void test_workers_setting(void **state)
{
    (void)state;
    struct mxg_config c;
    char err[512];
    assert_int_equal(mxg_config_load(&c, NULL, NULL, err, sizeof err), 0);
    assert_int_equal(c.workers, 0); /* the default: "auto" */
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    cpu_set_t set; /* the CPUs it may use: online, within the affinity mask (and a quota) */
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) < cpus)
        cpus = CPU_COUNT(&set);
    long want = cpus - 1 > 8 ? 8 : cpus - 1 < 1 ? 1 : cpus - 1;
    if (want > 5) /* destination_concurrency 20: a share of at least 4 each */
        want = 5;
    assert_true(mxg_config_workers(&c) >= 1 && mxg_config_workers(&c) <= want);
    const char *limit = "x";
    assert_int_equal(mxg_config_workers_for(&c, 1, &limit), 1);
    assert_null(limit);
    assert_int_equal(mxg_config_workers_for(&c, 2, &limit), 1); /* one core left */
    assert_int_equal(mxg_config_workers_for(&c, 4, &limit), 3);
    assert_int_equal(mxg_config_workers_for(&c, 6, &limit), 5);
    assert_null(limit);
    assert_int_equal(mxg_config_workers_for(&c, 9, &limit), 5); /* 20 / 4 */
    assert_string_equal(limit, "limits.destination_concurrency");
    assert_int_equal(mxg_config_workers_for(&c, 64, &limit), 5);
    char line[256];
    assert_int_equal(mxg_config_workers_explain(&c, line, sizeof line), want == 5 ? 1 : 0);
    assert_non_null(strstr(line, "\"auto\": "));
    assert_non_null(strstr(line, "usable CPU"));
    /* without a concurrency limit: capped at 8 */
    char *path = write_temp("limits: { destination_concurrency = 0; };\n");
    assert_int_equal(mxg_config_load(&c, path, NULL, err, sizeof err), 0);
    assert_int_equal(mxg_config_workers_for(&c, 64, &limit), 8);
    assert_null(limit);
    remove_temp(path);
    /* "auto" with a process-wide limit below it: lowered to the smallest, not refused */
    path = write_temp("limits: { destination_concurrency = 12; destination_rate = 2; "
                      "upstream_connections = 5; };\n");
    assert_int_equal(mxg_config_load(&c, path, NULL, err, sizeof err), 0);
    assert_int_equal(mxg_config_workers_for(&c, 16, &limit), 2);
    assert_string_equal(limit, "limits.destination_rate");
    assert_int_equal(mxg_config_workers_for(&c, 3, &limit), 2); /* 3 - 1 = 2: not lowered */
    assert_null(limit);
    remove_temp(path);
    path = write_temp("limits: { destination_concurrency = 3; };\n");
    assert_int_equal(mxg_config_load(&c, path, NULL, err, sizeof err), 0);
    assert_int_equal(mxg_config_workers_for(&c, 16, &limit), 1); /* 3 / 4: one worker */
    assert_string_equal(limit, "limits.destination_concurrency");
    if (cpus > 2) {
        assert_int_equal(mxg_config_workers_explain(&c, line, sizeof line), 1);
        assert_non_null(strstr(line, "lowered for limits.destination_concurrency"));
    }
    remove_temp(path);
    path = write_temp("server: { workers = \"auto\"; };\nlimits: { upstream_connections = 1; };\n");
    assert_int_equal(mxg_config_load(&c, path, NULL, err, sizeof err), 0);
    assert_int_equal(c.workers, 0);
    assert_int_equal(mxg_config_workers_for(&c, 16, &limit), 1);
    assert_string_equal(limit, "limits.upstream_connections");
    remove_temp(path);
    path = write_temp("server: { workers = 2; };\nlimits: { upstream_connections = 1; };\n");
    assert_int_equal(mxg_config_load(&c, path, NULL, err, sizeof err), -1); /* explicit: refused */
    assert_non_null(strstr(err, "limits.upstream_connections: 1 is below server.workers (2)"));
    remove_temp(path);
    path = write_temp("server: { workers = 3; };\nlimits: { destination_concurrency = 3; "
                      "destination_rate = 0; upstream_connections = 30; };\n");
    assert_int_equal(mxg_config_load(&c, path, NULL, err, sizeof err), 0);
    assert_int_equal(mxg_config_workers(&c), 3);
    remove_temp(path);
    path = write_temp("server: { workers = 3; };\nlimits: { destination_concurrency = 2; };\n");
    assert_int_equal(mxg_config_load(&c, path, NULL, err, sizeof err), -1);
    assert_non_null(strstr(err, "limits.destination_concurrency: 2 is below server.workers (3)"));
    remove_temp(path);
    path = write_temp("server: { workers = 0; };\n");
    assert_int_equal(mxg_config_load(&c, path, NULL, err, sizeof err), -1);
    assert_non_null(strstr(err, "must be \"auto\" or between 1 and 64"));
    remove_temp(path);
    path = write_temp("server: { workers = \"many\"; };\n");
    assert_int_equal(mxg_config_load(&c, path, NULL, err, sizeof err), -1);
    assert_non_null(strstr(err, "must be \"auto\" or a number"));
    remove_temp(path);
    char *env[] = {"MXGUARD_SERVER_WORKERS=2", NULL};
    assert_int_equal(mxg_config_load(&c, NULL, env, err, sizeof err), 0);
    assert_int_equal(c.workers, 2);
}

static void test_file_errors(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(file_errors); i++) {
        const struct file_error *fe = &file_errors[i];
        char *path = write_temp(fe->text);
        char err[512], want[512];
        struct mxg_config c;
        snprintf(want, sizeof want, "%s:%d: %s", path, fe->line, fe->reason);
        if (mxg_config_load(&c, path, NULL, err, sizeof err) != -1)
            fail_msg("case %zu loaded, expected \"%s\"", i, want);
        assert_prefix(err, want);
        remove_temp(path);
    }
}

static void test_missing_file(void **state)
{
    (void)state;
    struct mxg_config c;
    char err[512];
    assert_int_equal(mxg_config_load(&c, "/nonexistent/mxguard.conf", NULL, err, sizeof err), -1);
    assert_string_equal(err, "/nonexistent/mxguard.conf: cannot open: No such file or directory");
    assert_int_equal(mxg_config_load(&c, "/tmp", NULL, err, sizeof err), -1);
    assert_string_equal(err, "/tmp: cannot open: Is a directory");
}

static void test_include_errors_name_the_included_file(void **state)
{
    (void)state;
    static const struct file_error inc_errors[] = {
        {"\n\nlimits: { max_errors = 0; };\n", 3, "limits.max_errors: must be between 1 and"},
        {"limits: {\n  message_size = 5000000000;\n};\n", 2,
         "integer 5000000000 does not fit in 32 bits"},
    };
    for (size_t i = 0; i < ARRAY_LEN(inc_errors); i++) {
        char *inc = write_temp(inc_errors[i].text);
        char main_text[256], err[512], want[512];
        snprintf(main_text, sizeof main_text, "log: { level = \"info\"; };\n@include \"%s\"\n", inc);
        char *path = write_temp(main_text);
        struct mxg_config c;
        snprintf(want, sizeof want, "%s:%d: %s", inc, inc_errors[i].line, inc_errors[i].reason);
        assert_int_equal(mxg_config_load(&c, path, NULL, err, sizeof err), -1);
        assert_prefix(err, want);
        remove_temp(path);
        remove_temp(inc);
    }
}

static void test_untouched_on_error(void **state)
{
    (void)state;
    struct mxg_config c, before;
    memset(&c, 0xab, sizeof c);
    before = c;
    char *path = write_temp("server: { max_sessions = 0; };\n");
    char err[512];
    assert_int_equal(mxg_config_load(&c, path, NULL, err, sizeof err), -1);
    assert_memory_equal(&c, &before, sizeof c);
    /* a NULL error buffer is allowed */
    assert_int_equal(mxg_config_load(&c, path, NULL, NULL, 0), -1);
    assert_memory_equal(&c, &before, sizeof c);
    remove_temp(path);
}

/* ---- the environment ---- */

static void test_env_overrides(void **state)
{
    (void)state;
    char *const envp[] = {
        "PATH=/usr/bin",
        "MXGUARD_CONFIG=/nonexistent/ignored.conf",
        "mxguard_server_listen=ignored",
        "MXGUARDX=ignored",
        "MXGUARD_SERVER_LISTEN=127.0.0.1:2525, [::1]:2525",
        "MXGUARD_SERVER_ALLOW_NETWORKS=10.0.0.0/8,::ffff:192.168.0.0/112",
        "MXGUARD_SERVER_HOSTNAME=relay.example.org",
        "MXGUARD_SERVER_MAX_SESSIONS=7",
        "MXGUARD_TIMEOUTS_IDLE=5s",
        "MXGUARD_TIMEOUTS_DNS=250ms",
        "MXGUARD_TIMEOUTS_CONNECT=7",
        "MXGUARD_LIMITS_MESSAGE_SIZE=10M",
        "MXGUARD_LIMITS_RECIPIENTS=100",
        "MXGUARD_LOG_SYSLOG=yes",
        "MXGUARD_LOG_LEVEL=debug",
        "MXGUARD_DNS_SERVERS=192.0.2.1,192.0.2.2:5353,[2001:db8::1]:53,2001:db8::2",
        "MXGUARD_UPSTREAM_ADDRESS_FAMILY=ipv6-only",
        "MXGUARD_UPSTREAM_HELO_NAME=mx.example.org",
        "MXGUARD_TLS_OPPORTUNISTIC_LEVEL=encrypt",
        NULL,
    };
    struct mxg_config c;
    char err[512];
    assert_int_equal(mxg_config_load(&c, NULL, envp, err, sizeof err), 0);
    assert_int_equal(c.n_listen, 2);
    assert_string_equal(c.listen[0].text, "127.0.0.1:2525");
    assert_string_equal(c.listen[1].text, "[::1]:2525");
    assert_int_equal(port_of(&c.listen[1]), 2525);
    assert_int_equal(c.n_allow, 2);
    assert_string_equal(c.allow[1].text, "::ffff:192.168.0.0/112");
    assert_string_equal(c.hostname, "relay.example.org");
    assert_int_equal(c.max_sessions, 7);
    assert_int_equal(c.t_idle, 5000);
    assert_int_equal(c.t_dns, 250);
    assert_int_equal(c.t_connect, 7000);
    assert_int_equal(c.message_size, 10 * 1024 * 1024);
    assert_int_equal(c.max_recipients, 100);
    assert_int_equal(c.log_syslog, 1);
    assert_int_equal(c.log_level, MXG_LOG_DEBUG);
    assert_int_equal(c.n_dns_servers, 4);
    assert_int_equal(port_of(&c.dns_servers[0]), 53);
    assert_int_equal(port_of(&c.dns_servers[1]), 5353);
    assert_int_equal(port_of(&c.dns_servers[3]), 53);
    assert_int_equal(c.af_pref, MXG_AF_IPV6_ONLY);
    assert_string_equal(c.helo_name, "mx.example.org");
    assert_int_equal(c.tls_level, MXG_TLS_LEVEL_ENCRYPT);
}

static void test_env_overrides_file(void **state)
{
    (void)state;
    char *path = write_temp("server: {\n  listen = [\"127.0.0.1:25\"];\n  max_sessions = 10;\n};\n"
                            "dns: { servers = [\"192.0.2.1\"]; };\n");
    char *const envp[] = {"MXGUARD_SERVER_MAX_SESSIONS=20", "MXGUARD_DNS_SERVERS=", NULL};
    struct mxg_config c;
    char err[512];
    assert_int_equal(mxg_config_load(&c, path, envp, err, sizeof err), 0);
    assert_string_equal(c.listen[0].text, "127.0.0.1:25"); /* from the file */
    assert_int_equal(c.max_sessions, 20);                  /* the environment wins */
    assert_int_equal(c.n_dns_servers, 0);                  /* emptied: use resolv.conf */
    remove_temp(path);
}

static void test_env_bools(void **state)
{
    (void)state;
    static const struct {
        const char *value;
        int want;
    } cases[] = {
        {"true", 1}, {"false", 0}, {"yes", 1}, {"no", 0}, {"1", 1}, {"0", 0}, {"TRUE", 1}, {"No", 0},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        char var[64], err[512];
        snprintf(var, sizeof var, "MXGUARD_LOG_SYSLOG=%s", cases[i].value);
        char *const envp[] = {var, NULL};
        struct mxg_config c;
        assert_int_equal(mxg_config_load(&c, NULL, envp, err, sizeof err), 0);
        assert_int_equal(c.log_syslog, cases[i].want);
    }
}

static void test_env_errors(void **state)
{
    (void)state;
    static const struct {
        const char *var;
        const char *want; /* prefix */
    } cases[] = {
        {"MXGUARD_FOO=1", "environment: MXGUARD_FOO: unknown setting"},
        {"MXGUARD_server_listen=127.0.0.1:25", "environment: MXGUARD_server_listen: unknown setting"},
        {"MXGUARD_SERVER=1", "environment: MXGUARD_SERVER: unknown setting"},
        {"MXGUARD_LOG_LEVEL", "environment: MXGUARD_LOG_LEVEL: no value"},
        {"MXGUARD_TIMEOUTS_IDLE=5x", "environment: MXGUARD_TIMEOUTS_IDLE: \"5x\": unknown unit"},
        {"MXGUARD_TIMEOUTS_IDLE=0", "environment: MXGUARD_TIMEOUTS_IDLE: must be between 1ms"},
        {"MXGUARD_TIMEOUTS_IDLE=", "environment: MXGUARD_TIMEOUTS_IDLE: \"\": empty value"},
        {"MXGUARD_LOG_SYSLOG=maybe", "environment: MXGUARD_LOG_SYSLOG: \"maybe\": expected true"},
        {"MXGUARD_LOG_SYSLOG=", "environment: MXGUARD_LOG_SYSLOG: \"\": expected true"},
        {"MXGUARD_SERVER_LISTEN=127.0.0.1:25,,[::1]:25",
         "environment: MXGUARD_SERVER_LISTEN: empty list entry"},
        {"MXGUARD_SERVER_LISTEN=127.0.0.1:25,", "environment: MXGUARD_SERVER_LISTEN: empty list entry"},
        {"MXGUARD_SERVER_LISTEN=", "environment: MXGUARD_SERVER_LISTEN: at least 1 entry required"},
        {"MXGUARD_SERVER_LISTEN=127.0.0.1:99999",
         "environment: MXGUARD_SERVER_LISTEN: \"127.0.0.1:99999\": port out of range"},
        {"MXGUARD_SERVER_MAX_SESSIONS=ten", "environment: MXGUARD_SERVER_MAX_SESSIONS: \"ten\": expected an integer"},
        {"MXGUARD_SERVER_MAX_SESSIONS=10 ", "environment: MXGUARD_SERVER_MAX_SESSIONS: \"10 \": expected an integer"},
        {"MXGUARD_SERVER_MAX_SESSIONS=99999999999999999999",
         "environment: MXGUARD_SERVER_MAX_SESSIONS: \"99999999999999999999\": expected an integer"},
        {"MXGUARD_SERVER_MAX_SESSIONS=0", "environment: MXGUARD_SERVER_MAX_SESSIONS: must be between 1"},
        /* cross-setting rules: `config check` refuses what `run` would refuse */
        {"MXGUARD_SERVER_GROUP=nogroup", "configuration: server.group: set, but server.user is not"},
        {"MXGUARD_DNS_SERVERS=192.0.2.1,192.0.2.2,192.0.2.3,192.0.2.4,192.0.2.5",
         "environment: MXGUARD_DNS_SERVERS: too many entries (at most 4)"},
        {"MXGUARD_UPSTREAM_PORT=0", "environment: MXGUARD_UPSTREAM_PORT: must be between 1 and 65535"},
        {"MXGUARD_SERVER_ALLOW_NETWORKS=10.0.0.0/33",
         "environment: MXGUARD_SERVER_ALLOW_NETWORKS: \"10.0.0.0/33\": prefix length out of range"},
        {"MXGUARD_UPSTREAM_ADDRESS_FAMILY=inet6",
         "environment: MXGUARD_UPSTREAM_ADDRESS_FAMILY: \"inet6\": must be one of"},
        {"MXGUARD_UPSTREAM_HELO_NAME=mx..example", "environment: MXGUARD_UPSTREAM_HELO_NAME: \"mx..example\": not a DNS name"},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        char var[256], err[512];
        snprintf(var, sizeof var, "%s", cases[i].var);
        char *const envp[] = {"MXGUARD_LOG_LEVEL=debug", var, NULL};
        struct mxg_config c;
        if (mxg_config_load(&c, NULL, envp, err, sizeof err) != -1)
            fail_msg("case %zu (%s) loaded", i, cases[i].var);
        assert_prefix(err, cases[i].want);
    }
}

static void test_dns_names(void **state)
{
    (void)state;
    char l63[64], l64[65], n253[254], n254[255];
    memset(l63, 'a', 63), l63[63] = '\0';
    memset(l64, 'b', 64), l64[64] = '\0';
    snprintf(n253, sizeof n253, "%s.%s.%s.%.61s", l63, l63, l63, l63);
    snprintf(n254, sizeof n254, "%s.%s.%s.%.62s", l63, l63, l63, l63);
    assert_int_equal(strlen(n253), 253);
    assert_int_equal(strlen(n254), 254);
    const struct {
        const char *name;
        int ok;
    } cases[] = {
        {"mx.example.org", 1}, {"localhost", 1}, {"a", 1}, {"xn--bcher-kva.example", 1},
        {"a-b.c9", 1}, {"", 1}, {l63, 1}, {n253, 1},
        {l64, 0}, {n254, 0}, {"a..b", 0}, {".a", 0}, {"a.", 0}, {"-a", 0}, {"a-", 0}, {"a_b", 0},
        {"a b", 0}, {"ex\xc3\xa4mple.org", 0}, {"mx.example.org:25", 0},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        char var[300], err[512];
        snprintf(var, sizeof var, "MXGUARD_SERVER_HOSTNAME=%s", cases[i].name);
        char *const envp[] = {var, NULL};
        struct mxg_config c;
        int rc = mxg_config_load(&c, NULL, envp, err, sizeof err);
        if (rc != (cases[i].ok ? 0 : -1))
            fail_msg("hostname \"%s\": rc %d (%s)", cases[i].name, rc, err);
        if (cases[i].ok)
            assert_string_equal(c.hostname, cases[i].name);
    }
}

/* ---- the parsers ---- */

static void test_parse_duration(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        int rc;
        uint64_t ms;
    } cases[] = {
        {"30s", 0, 30000}, {"250ms", 0, 250}, {"5m", 0, 300000}, {"1h", 0, 3600000},
        {"2d", 0, 172800000}, {"300", 0, 300000}, {"0", 0, 0}, {"0ms", 0, 0},
        {"18446744073709551s", 0, 18446744073709551000ULL},
        {"18446744073709551615ms", 0, UINT64_MAX},
        {"", -1, 0}, {"10x", -1, 0}, {"-5", -1, 0}, {"+5", -1, 0},
        {"99999999999999999999s", -1, 0}, {"18446744073709552s", -1, 0},
        {"18446744073709551616ms", -1, 0}, {"1.5s", -1, 0}, {" 5s", -1, 0}, {"5s ", -1, 0},
        {"5 s", -1, 0}, {"s", -1, 0}, {"ms", -1, 0}, {"5S", -1, 0}, {"5sec", -1, 0},
        {"5ms5", -1, 0}, {"0x10", -1, 0},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        uint64_t ms = 12345;
        int rc = mxg_parse_duration_ms(cases[i].s, &ms);
        if (rc != cases[i].rc)
            fail_msg("duration \"%s\": rc %d", cases[i].s, rc);
        if (rc == 0)
            assert_int_equal(ms, cases[i].ms);
    }
    uint64_t ms;
    assert_int_equal(mxg_parse_duration_ms(NULL, &ms), -1);
}

static void test_parse_size(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        int rc;
        uint64_t n;
    } cases[] = {
        {"50M", 0, 52428800}, {"1k", 0, 1024}, {"1K", 0, 1024}, {"1G", 0, 1073741824},
        {"123", 0, 123}, {"0", 0, 0}, {"16777215G", 0, 16777215ULL << 30},
        {"", -1, 0}, {"10x", -1, 0}, {"-5", -1, 0}, {"1.5M", -1, 0}, {"50m", -1, 0},
        {"50MB", -1, 0}, {"50 M", -1, 0}, {"99999999999999999999", -1, 0},
        {"17179869184G", -1, 0}, {"M", -1, 0},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        uint64_t n = 12345;
        int rc = mxg_parse_size(cases[i].s, &n);
        if (rc != cases[i].rc)
            fail_msg("size \"%s\": rc %d", cases[i].s, rc);
        if (rc == 0)
            assert_int_equal(n, cases[i].n);
    }
}

static void test_parse_endpoint(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        int default_port;
        int rc;
        int family;
        int port;
        const char *addr;
    } cases[] = {
        {"1.2.3.4:25", 0, 0, AF_INET, 25, "1.2.3.4"},
        {"1.2.3.4", 53, 0, AF_INET, 53, "1.2.3.4"},
        {"1.2.3.4", 0, 0, AF_INET, 0, "1.2.3.4"},
        {"[::1]:25", 0, 0, AF_INET6, 25, "::1"},
        {"::1", 53, 0, AF_INET6, 53, "::1"},
        {"[::1]", 53, 0, AF_INET6, 53, "::1"},
        {"[2001:db8::1]:65535", 0, 0, AF_INET6, 65535, "2001:db8::1"},
        {"::ffff:1.2.3.4", 25, 0, AF_INET6, 25, "::ffff:1.2.3.4"},
        {"0.0.0.0:1", 0, 0, AF_INET, 1, "0.0.0.0"},
        {"", 25, -1, 0, 0, NULL},
        {"1.2.3.4:0", 25, -1, 0, 0, NULL},
        {"1.2.3.4:65536", 25, -1, 0, 0, NULL},
        {"1.2.3.4:99999999999999999999", 25, -1, 0, 0, NULL},
        {"1.2.3.4:", 25, -1, 0, 0, NULL},
        {"1.2.3.4:25x", 25, -1, 0, 0, NULL},
        {"1.2.3.4:-1", 25, -1, 0, 0, NULL},
        {"1.2.3.4: 25", 25, -1, 0, 0, NULL},
        {"[::1", 25, -1, 0, 0, NULL},
        {"[::1]x", 25, -1, 0, 0, NULL},
        {"[::1]:", 25, -1, 0, 0, NULL},
        {"[]:25", 25, -1, 0, 0, NULL},
        {"[1.2.3.4]:25", 25, -1, 0, 0, NULL},
        {"300.1.1.1:25", 25, -1, 0, 0, NULL},
        {"1.2.3:25", 25, -1, 0, 0, NULL},
        {"host.example:25", 25, -1, 0, 0, NULL},
        {":25", 25, -1, 0, 0, NULL},
        {"::1:25:", 25, -1, 0, 0, NULL},
        {"[fe80::1%eth0]:25", 25, -1, 0, 0, NULL},
        {"1.2.3.4", -1, -1, 0, 0, NULL},
        {"1.2.3.4", 65536, -1, 0, 0, NULL},
        {"[0000:0000:0000:0000:0000:0000:0000:0000:0000:0000:0000:0000:0000:0000:0000:0000]:25", 25,
         -1, 0, 0, NULL},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        struct mxg_endpoint ep;
        int rc = mxg_parse_endpoint(cases[i].s, cases[i].default_port, &ep);
        if (rc != cases[i].rc)
            fail_msg("endpoint \"%s\": rc %d", cases[i].s, rc);
        if (rc != 0)
            continue;
        char addr[INET6_ADDRSTRLEN];
        assert_int_equal(ep.sa.ss_family, cases[i].family);
        assert_int_equal(port_of(&ep), cases[i].port);
        const void *a = cases[i].family == AF_INET
                            ? (const void *)&((struct sockaddr_in *)&ep.sa)->sin_addr
                            : (const void *)&((struct sockaddr_in6 *)&ep.sa)->sin6_addr;
        assert_non_null(inet_ntop(cases[i].family, a, addr, sizeof addr));
        assert_string_equal(addr, cases[i].addr);
        assert_string_equal(ep.text, cases[i].s);
    }
    struct mxg_endpoint ep;
    assert_int_equal(mxg_parse_endpoint(NULL, 25, &ep), -1);
}

static void test_parse_cidr(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        int rc;
        int family;
        int prefix;
        const char *text;
    } cases[] = {
        {"127.0.0.0/8", 0, AF_INET, 8, "127.0.0.0/8"},
        {"10.1.2.3/8", 0, AF_INET, 8, "10.0.0.0/8"},
        {"192.168.1.1", 0, AF_INET, 32, "192.168.1.1/32"},
        {"1.2.3.5/31", 0, AF_INET, 31, "1.2.3.4/31"},
        {"10.255.255.255/9", 0, AF_INET, 9, "10.128.0.0/9"},
        {"0.0.0.0/0", 0, AF_INET, 0, "0.0.0.0/0"},
        {"10.0.0.0/0", 0, AF_INET, 0, "0.0.0.0/0"},
        {"::1/128", 0, AF_INET6, 128, "::1/128"},
        {"::1", 0, AF_INET6, 128, "::1/128"},
        {"2001:db8::1/32", 0, AF_INET6, 32, "2001:db8::/32"},
        {"2001:db8:ffff::/33", 0, AF_INET6, 33, "2001:db8:8000::/33"},
        {"::/0", 0, AF_INET6, 0, "::/0"},
        {"::ffff:10.0.0.0/104", 0, AF_INET6, 104, "::ffff:10.0.0.0/104"},
        {"", -1, 0, 0, NULL},
        {"300.1.1.1/8", -1, 0, 0, NULL},
        {"10.0.0.0/33", -1, 0, 0, NULL},
        {"::/129", -1, 0, 0, NULL},
        {"10.0.0.0/", -1, 0, 0, NULL},
        {"10.0.0.0/-1", -1, 0, 0, NULL},
        {"10.0.0.0/8x", -1, 0, 0, NULL},
        {"10.0.0.0/0008", -1, 0, 0, NULL},
        {"10.0.0.0/8/8", -1, 0, 0, NULL},
        {"/8", -1, 0, 0, NULL},
        {"10.0.0/8", -1, 0, 0, NULL},
        {"host/8", -1, 0, 0, NULL},
        {"[::1]/128", -1, 0, 0, NULL},
        {" 10.0.0.0/8", -1, 0, 0, NULL},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        struct mxg_cidr net;
        int rc = mxg_parse_cidr(cases[i].s, &net);
        if (rc != cases[i].rc)
            fail_msg("cidr \"%s\": rc %d", cases[i].s, rc);
        if (rc != 0)
            continue;
        assert_int_equal(net.family, cases[i].family);
        assert_int_equal(net.prefix, cases[i].prefix);
        assert_string_equal(net.text, cases[i].text);
    }
}

static void test_cidr_match(void **state)
{
    (void)state;
    static const struct {
        const char *net;
        const char *addr;
        int want;
    } cases[] = {
        {"127.0.0.0/8", "127.0.0.1", 1},
        {"127.0.0.0/8", "128.0.0.1", 0},
        {"127.0.0.0/8", "::ffff:127.0.0.1", 1}, /* v4-mapped */
        {"127.0.0.0/8", "::ffff:128.0.0.1", 0},
        {"127.0.0.0/8", "::1", 0},
        {"127.0.0.0/8", "::127.0.0.1", 0}, /* v4-compatible is not v4-mapped */
        {"::1/128", "::1", 1},
        {"::1/128", "127.0.0.1", 0},
        {"::1", "::2", 0},
        {"0.0.0.0/0", "8.8.8.8", 1},
        {"0.0.0.0/0", "::ffff:8.8.8.8", 1},
        {"0.0.0.0/0", "2001:db8::1", 0},
        {"::/0", "2001:db8::1", 1},
        {"::/0", "1.2.3.4", 0},
        {"::/0", "::ffff:1.2.3.4", 0},
        {"::ffff:10.0.0.0/104", "10.1.2.3", 1},
        {"::ffff:10.0.0.0/104", "::ffff:10.1.2.3", 1},
        {"::ffff:10.0.0.0/104", "11.1.2.3", 0},
        {"10.0.0.0/9", "10.127.255.255", 1},
        {"10.0.0.0/9", "10.128.0.0", 0},
        {"10.1.2.3/8", "10.200.0.1", 1}, /* host bits masked */
        {"2001:db8::/33", "2001:db8:7fff::1", 1},
        {"2001:db8::/33", "2001:db8:8000::", 0},
        {"2001:db8::/32", "2001:db9::", 0},
        {"192.168.1.1", "192.168.1.1", 1},
        {"192.168.1.1", "192.168.1.2", 0},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        struct mxg_cidr net;
        struct sockaddr_storage ss;
        assert_int_equal(mxg_parse_cidr(cases[i].net, &net), 0);
        make_sockaddr(cases[i].addr, &ss);
        int got = mxg_cidr_match(&net, (const struct sockaddr *)&ss);
        if (got != cases[i].want)
            fail_msg("%s in %s: got %d", cases[i].addr, cases[i].net, got);
    }
    struct mxg_cidr net;
    struct sockaddr_un sun;
    memset(&sun, 0, sizeof sun);
    sun.sun_family = AF_UNIX;
    assert_int_equal(mxg_parse_cidr("0.0.0.0/0", &net), 0);
    assert_int_equal(mxg_cidr_match(&net, (const struct sockaddr *)&sun), 0);
    assert_int_equal(mxg_cidr_match(&net, NULL), 0);
    assert_int_equal(mxg_cidr_match(NULL, (const struct sockaddr *)&sun), 0);
}

/* ---- the dump and the example file ---- */

static void test_dump_roundtrip(void **state)
{
    (void)state;
    static const char *const texts[] = {full_file, "", "limits: { message_size = 5000000000L; };\n"};
    for (size_t i = 0; i < ARRAY_LEN(texts); i++) {
        char *path = write_temp(texts[i]);
        struct mxg_config a, b;
        char err[512];
        assert_int_equal(mxg_config_load(&a, path, NULL, err, sizeof err), 0);
        dump_and_reload(&a, path, &b);
        assert_same_config(&a, &b);
        remove_temp(path);
    }
}

static void test_dump_escapes_strings(void **state)
{
    (void)state;
    char *const envp[] = {"MXGUARD_DNS_TRUST_ANCHOR_FILE=/tmp/a\"b\\c\tq\x7f\xc3\xa9", NULL};
    struct mxg_config a, b;
    char err[512];
    assert_int_equal(mxg_config_load(&a, NULL, envp, err, sizeof err), 0);
    char *path = write_temp("");
    dump_and_reload(&a, path, &b);
    assert_string_equal(b.trust_anchor_file, "/tmp/a\"b\\c\tq\x7f\xc3\xa9");
    remove_temp(path);
}

static void test_dump_format(void **state)
{
    (void)state;
    char *path = write_temp(full_file);
    struct mxg_config c;
    char err[512];
    assert_int_equal(mxg_config_load(&c, path, NULL, err, sizeof err), 0);
    char *body = dump_body(&c);
    assert_non_null(strstr(body, "\nserver:\n{\n  listen = [ \"127.0.0.1:2525\", \"[::1]:2526\" ];\n"));
    assert_non_null(strstr(body, "  allow_networks = [ \"10.0.0.0/8\", \"2001:db8::/32\", \"192.0.2.7/32\" ];\n"));
    assert_non_null(strstr(body, "  final_reply = \"1500ms\";\n"));
    assert_non_null(strstr(body, "  upstream_command = \"3600s\";\n"));
    assert_non_null(strstr(body, "  message_size = 10485760;\n"));
    assert_non_null(strstr(body, "  address_family = \"prefer-ipv6\";\n"));
    assert_non_null(strstr(body, "  syslog = true;\n};\n"));
    free(body);
    remove_temp(path);
}

/* etc/mxguard.conf, found next to this source file. */
static void example_conf_path(char *buf, size_t len)
{
    const char *file = __FILE__;
    const char *slash = strrchr(file, '/');
    int dirlen = slash ? (int)(slash - file) : 1;
    snprintf(buf, len, "%.*s/../../etc/mxguard.conf", dirlen, slash ? file : ".");
}

static void test_example_conf(void **state)
{
    (void)state;
    char path[1024], err[512];
    struct mxg_config c, d;
    example_conf_path(path, sizeof path);
    if (mxg_config_load(&c, path, NULL, err, sizeof err) != 0)
        fail_msg("%s", err);
    mxg_config_defaults(&d);
    assert_same_config(&c, &d); /* every key at its default */
}

static void test_example_conf_lists_every_key(void **state)
{
    (void)state;
    char path[1024], name[128];
    struct mxg_config d;
    example_conf_path(path, sizeof path);
    mxg_config_defaults(&d);
    char *body = dump_body(&d);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char *conf = NULL;
    size_t len = 0;
    assert_true(getdelim(&conf, &len, '\0', f) > 0);
    fclose(f);
    /* every key of the dump ("  key = value;") is set in the file as " key = " */
    for (char *p = body, *nl; (nl = strchr(p, '\n')); p = nl + 1) {
        if (strncmp(p, "  ", 2) != 0)
            continue;
        snprintf(name, sizeof name, " %.*s= ", (int)strcspn(p + 2, "="), p + 2);
        if (!strstr(conf, name))
            fail_msg("etc/mxguard.conf does not set \"%s\"", name);
    }
    free(conf);
    free(body);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_load_without_file),
        cmocka_unit_test(test_full_file),
        cmocka_unit_test(test_int64_and_sizes),
        cmocka_unit_test(test_file_errors),
        cmocka_unit_test(test_state_settings),
        cmocka_unit_test(test_missing_file),
        cmocka_unit_test(test_include_errors_name_the_included_file),
        cmocka_unit_test(test_untouched_on_error),
        cmocka_unit_test(test_workers_setting),
        cmocka_unit_test(test_env_overrides),
        cmocka_unit_test(test_env_overrides_file),
        cmocka_unit_test(test_env_bools),
        cmocka_unit_test(test_env_errors),
        cmocka_unit_test(test_dns_names),
        cmocka_unit_test(test_parse_duration),
        cmocka_unit_test(test_parse_size),
        cmocka_unit_test(test_parse_endpoint),
        cmocka_unit_test(test_parse_cidr),
        cmocka_unit_test(test_cidr_match),
        cmocka_unit_test(test_dump_roundtrip),
        cmocka_unit_test(test_dump_escapes_strings),
        cmocka_unit_test(test_dump_format),
        cmocka_unit_test(test_example_conf),
        cmocka_unit_test(test_example_conf_lists_every_key),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
