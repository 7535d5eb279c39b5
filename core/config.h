/* core/config.h — the configuration: file (libconfig syntax), environment
 * overrides, validation.
 *
 * Contract:
 *  - mxg_config_defaults() fills every field with its documented default.
 *  - mxg_config_load() reads FILE (may be NULL: defaults only), then applies
 *    MXGUARD_<SECTION>_<KEY> environment overrides (from the envp array, so
 *    tests need not touch the process environment), then validates.
 *    Unknown sections/keys, wrong types and bad values are errors: the first
 *    error is written to err as "FILE:LINE: section.key: reason" (or
 *    "environment: MXGUARD_X: reason") and -1 is returned. Nothing is ever
 *    silently ignored.
 *  - The struct owns no heap memory: fixed arrays only, so it can be copied
 *    and freed with the object that embeds it.
 *  - Durations are stored in milliseconds. In the file a duration is an
 *    integer (seconds) or a string with a unit: "250ms", "30s", "5m", "1h", "2d".
 *    Sizes are an integer (octets) or a string with k/M/G suffix.
 */
#ifndef MXG_CONFIG_H
#define MXG_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

#include "log.h"

#define MXG_CFG_MAX_LISTEN 8
#define MXG_CFG_MAX_NETS 32
#define MXG_CFG_MAX_DNS 4
#define MXG_CFG_NAME_MAX 256
#define MXG_CFG_PATH_MAX 1024

/* state.backend: where the shared state lives (state/state.h). */
enum mxg_state_backend_kind { MXG_STATE_SQLITE = 0, MXG_STATE_POSTGRESQL = 1 };

/* An IP endpoint "addr:port" or "[v6addr]:port"; port 0 where not given. */
struct mxg_endpoint {
    struct sockaddr_storage sa; /* AF_INET or AF_INET6, port set */
    char text[80];              /* as written, for logs */
};

/* A CIDR network: "127.0.0.0/8", "::1/128"; a bare address = host route. */
struct mxg_cidr {
    int family; /* AF_INET or AF_INET6 */
    uint8_t addr[16];
    int prefix;
    char text[64];
};

enum mxg_af_pref { MXG_AF_ANY = 0, MXG_AF_PREFER_IPV4, MXG_AF_PREFER_IPV6, MXG_AF_IPV4_ONLY, MXG_AF_IPV6_ONLY };
/* dns.mode: auto = stub while the stub path passes the DNSSEC self-check, else
 * recursive (app/run_dnsauto.c) */
enum mxg_dns_mode { MXG_DNS_STUB = 0, MXG_DNS_RECURSIVE, MXG_DNS_AUTO };
/* dns.transport (stub mode): TCP only, or UDP with TCP when an answer is
 * truncated (getdns 1.6's fallback loses queries; see dns/dns.c) */
enum mxg_dns_transport { MXG_DNS_TCP = 0, MXG_DNS_UDP };
enum mxg_tls_fallback_level { MXG_TLS_LEVEL_MAY = 0, MXG_TLS_LEVEL_ENCRYPT };
enum mxg_multi_domain { MXG_MULTI_LEGS = 0, MXG_MULTI_DEFER };
enum mxg_inbound_tls_min { MXG_INBOUND_TLS12 = 0, MXG_INBOUND_TLS13 };
/* limits.bare_cr: a CR not followed by LF in message data */
enum mxg_bare_cr { MXG_BARE_CR_REJECT = 0, MXG_BARE_CR_SPACE };

struct mxg_config {
    char source[MXG_CFG_PATH_MAX]; /* file it came from, "" for defaults */

    /* server: the inbound side */
    struct mxg_endpoint listen[MXG_CFG_MAX_LISTEN]; /* server.listen */
    int n_listen;
    struct mxg_cidr allow[MXG_CFG_MAX_NETS]; /* server.allow_networks */
    int n_allow;
    char hostname[MXG_CFG_NAME_MAX]; /* server.hostname: banner, Received; "" → gethostname() */
    int max_sessions;                /* server.max_sessions */
    uint64_t drain_timeout_ms;       /* server.drain_timeout: SIGTERM grace period */
    int workers;                     /* server.workers: worker processes; 0 = "auto"
                                        (mxg_config_workers() resolves it) */
    struct mxg_endpoint queue_listen[MXG_CFG_MAX_LISTEN]; /* server.queue_listen: queue-mode listeners */
    int n_queue_listen;
    enum mxg_multi_domain multi_domain; /* server.multi_domain: legs|defer */
    char user[MXG_CFG_NAME_MAX];  /* server.user: drop to this user after binding; "" = stay */
    char group[MXG_CFG_NAME_MAX]; /* server.group: "" = the user's primary group */
    /* inbound STARTTLS and per-network requirements (proxy/inbound/auth.h) */
    char in_tls_cert_file[MXG_CFG_PATH_MAX]; /* server.tls_cert_file: PEM chain; "" = no STARTTLS */
    char in_tls_key_file[MXG_CFG_PATH_MAX];  /* server.tls_key_file: PEM key */
    enum mxg_inbound_tls_min in_tls_min_version; /* server.tls_min_version: TLSv1.2|TLSv1.3 */
    char in_tls_ciphers[512];                /* server.tls_ciphers: TLS <= 1.2 list, "" = OpenSSL's */
    struct mxg_cidr require_tls[MXG_CFG_MAX_NETS];  /* server.require_tls_networks */
    int n_require_tls;
    struct mxg_cidr require_auth[MXG_CFG_MAX_NETS]; /* server.require_auth_networks */
    int n_require_auth;

    /* auth: inbound SMTP AUTH (RFC 4954) and its brute-force throttle */
    char auth_password_file[MXG_CFG_PATH_MAX]; /* auth.password_file: "user:crypt-hash" lines */
    int auth_plaintext_loopback;  /* auth.allow_plaintext_loopback (bool) */
    int auth_max_failures;        /* auth.max_failures: per client address within the window */
    int auth_max_user_failures;   /* auth.max_user_failures: per user name; 0 = not counted */
    uint64_t auth_window_ms;      /* auth.failure_window */
    uint64_t auth_lockout_ms;     /* auth.lockout */
    uint64_t auth_delay_ms;       /* auth.failure_delay: before each 535 */
    int auth_throttle_entries;    /* auth.throttle_entries: addresses + users remembered (LRU) */
    uint64_t auth_trusted_lifetime_ms; /* auth.trusted_address_lifetime: a user lockout spares
                                        * addresses that authenticated as the user this recently */
    int auth_trusted_entries;     /* auth.trusted_addresses: (user, address) pairs remembered */

    /* limits */
    uint64_t message_size;  /* limits.message_size (octets, SIZE= advertised) */
    int max_recipients;     /* limits.recipients per transaction */
    int data_line_max;      /* limits.data_line_length: octets incl. CRLF, >= 1000 */
    int max_received;       /* limits.max_received: loop detection */
    int max_errors;         /* limits.max_errors: client errors before 421 */
    int max_legs;           /* limits.legs: destination domains (upstream legs) per transaction */
    enum mxg_bare_cr bare_cr; /* limits.bare_cr: reject (554 5.6.0) | space */
    int data_min_rate;      /* limits.data_min_rate: octets/s the DATA phase must average; 0 = off */
    uint64_t data_rate_grace_ms; /* limits.data_rate_grace: the rate counts from this far in */
    /* upstream connection limits (proxy/outbound/conncache.h); 0 = unlimited */
    int dest_concurrency;   /* limits.destination_concurrency: connections per MX address:port */
    int dest_rate;          /* limits.destination_rate: new connections per second per MX */
    int upstream_connections; /* limits.upstream_connections: upstream connections in total */
    uint64_t connection_wait_ms; /* limits.connection_wait: then 451 4.7.0 (0 = at once) */

    /* timeouts (ms) */
    uint64_t t_idle;          /* timeouts.idle: waiting for a client command */
    uint64_t t_data;          /* timeouts.data: between DATA blocks from the client */
    uint64_t t_data_total;    /* timeouts.data_total: the whole DATA phase (354 to the dot) */
    uint64_t t_rcpt_total;    /* timeouts.rcpt_total: all RCPT-time work for one leg */
    uint64_t t_final;         /* timeouts.final_reply: wait after the final dot */
    uint64_t t_connect;       /* timeouts.connect: one TCP connect */
    uint64_t t_upstream_cmd;  /* timeouts.upstream_command: one upstream reply */
    uint64_t t_quit;          /* timeouts.quit: the reply to QUIT on a connection not parked */
    uint64_t t_dns;           /* timeouts.dns: one DNS query */

    /* upstream: the outbound side */
    char helo_name[MXG_CFG_NAME_MAX];   /* upstream.helo_name; "" → server hostname */
    int upstream_port;                  /* upstream.port (25) */
    char source_ipv4[64];               /* upstream.source_ipv4, "" = kernel's choice */
    char source_ipv6[64];               /* upstream.source_ipv6 */
    enum mxg_af_pref af_pref;           /* upstream.address_family: any|prefer-ipv4|prefer-ipv6|ipv4-only|ipv6-only */
    int max_mx_hosts;                   /* upstream.max_mx_hosts to try */
    char route_map[MXG_CFG_PATH_MAX];   /* upstream.route_map: static routes (policy/route.h), "" = none */
    /* connection cache and TLS resumption (proxy/outbound/conncache.h, docs/ARCHITECTURE.md §Reuse) */
    uint64_t cache_idle_ms;             /* upstream.cache_idle: 0 = no connection cache */
    int cache_size;                     /* upstream.cache_size: idle connections in total */
    int cache_per_dest;                 /* upstream.cache_per_destination: idle per MX */
    int cache_max_uses;                 /* upstream.cache_max_uses: transactions per connection */
    uint64_t cache_lifetime_ms;         /* upstream.cache_lifetime: since connect */
    uint64_t cache_busy_wait_ms;        /* upstream.cache_busy_wait: for a busy connection */
    int cache_busy_waiters;             /* upstream.cache_busy_waiters: such waits per MX+key */
    int tls_session_cache;              /* upstream.tls_session_cache: sessions kept, 0 = off */
    /* loop and SSRF protection (proxy/outbound/addr_class.h): MX addresses that are
     * the legacy MTA's own (port 0 = any port) are never connected to */
    struct mxg_endpoint self_addrs[MXG_CFG_MAX_NETS]; /* upstream.self_addresses */
    int n_self_addrs;
    int refuse_private;                 /* upstream.refuse_private_addresses (bool) */

    /* dns */
    enum mxg_dns_mode dns_mode;                 /* dns.mode: auto|stub|recursive */
    char dns_root_hints[MXG_CFG_PATH_MAX];      /* dns.root_hints: root hints file, "" = built in */
    uint64_t dns_auto_recheck_ms;               /* dns.auto_recheck: auto mode's path re-check */
    enum mxg_dns_transport dns_transport;       /* dns.transport: tcp|udp (stub mode) */
    struct mxg_endpoint dns_servers[MXG_CFG_MAX_DNS]; /* dns.servers, "" → /etc/resolv.conf */
    int n_dns_servers;
    char trust_anchor_file[MXG_CFG_PATH_MAX];   /* dns.trust_anchor_file */
    int dns_cache_size;                         /* dns.cache_size: entries, 0 = no cache */
    uint64_t dns_cache_max_ttl_ms;              /* dns.cache_max_ttl: cap on positive answers */
    uint64_t dns_negative_ttl_ms;               /* dns.negative_ttl: cap on NODATA/NXDOMAIN */

    /* dane */
    int dane_enabled;                           /* dane.enabled (bool): TLSA lookups + self-check */
    uint64_t dane_recheck_ms;                   /* dane.selfcheck_retry: while the resolver is unreachable */

    /* tls */
    enum mxg_tls_fallback_level tls_level;      /* tls.opportunistic_level: may|encrypt */
    char tls_ca_file[MXG_CFG_PATH_MAX];         /* tls.ca_file: WebPKI roots ("" = system) */
    char tls_policy_map[MXG_CFG_PATH_MAX];      /* tls.policy_map: per-domain overrides (policy/override.h) */
    char tls_min_version[16];                   /* tls.min_version: "TLSv1".."TLSv1.3" (client) */
    char tls_max_version[16];                   /* tls.max_version: "" = the highest OpenSSL has */
    char tls_ciphers[512];                      /* tls.ciphers: OpenSSL list for TLS <= 1.2, "" = default */
    char tls_ciphersuites[512];                 /* tls.ciphersuites: TLS 1.3 suites, "" = default */
    char tls_client_cert[MXG_CFG_PATH_MAX];     /* tls.client_cert_file: PEM chain, "" = none */
    char tls_client_key[MXG_CFG_PATH_MAX];      /* tls.client_key_file: PEM key, with the cert */

    /* state */
    char state_dir[MXG_CFG_PATH_MAX];           /* state.directory: the only place written */
    int state_backend;                          /* state.backend: enum mxg_state_backend_kind */
    char state_pg[MXG_CFG_PATH_MAX];            /* state.postgresql: libpq conninfo, no password */
    char state_pg_password_file[MXG_CFG_PATH_MAX]; /* state.postgresql_password_file: "" = none */
    uint64_t state_sync_ms;                     /* state.sync_interval: pull/push period */
    int state_migrate;                          /* state.migrate_at_startup (bool) */
    char state_instance[MXG_CFG_NAME_MAX];      /* state.instance_name: "" = the host name */
    uint64_t state_report_lease_ms;             /* state.report_lease: a report claim's lease */
    uint64_t state_first_pull_ms;               /* state.first_pull_timeout: start-up wait bound */
    uint64_t state_retention_ms;                /* state.retention: the database's old rows */
    uint64_t state_outbox_max_age_ms;           /* state.outbox_max_age: oldest batch pushed */
    uint64_t state_prune_ms;                    /* state.prune_interval */

    /* policy_list (STARTTLS Everywhere format, docs/ARCHITECTURE.md §Policy list) */
    char list_file[MXG_CFG_PATH_MAX];           /* policy_list.file: local policy.json (+ .asc) */
    char list_url[MXG_CFG_PATH_MAX];            /* policy_list.url: https URL of policy.json (+ .asc) */
    char list_keyring[MXG_CFG_PATH_MAX];        /* policy_list.keyring: gpgv keyring of the signer */
    uint64_t list_refresh_ms;                   /* policy_list.refresh: reload/download interval */
    uint64_t list_stale_ms;                     /* policy_list.stale_warning: warn when older */
    uint64_t list_expired_warn_ms;              /* policy_list.expired_warning_interval */

    /* tlsrpt (RFC 8460) */
    int rpt_enabled;                            /* tlsrpt.enabled: record TLS outcomes */
    char rpt_org[MXG_CFG_NAME_MAX];             /* tlsrpt.organization_name */
    char rpt_contact[MXG_CFG_NAME_MAX];         /* tlsrpt.contact_info */
    char rpt_submitter[MXG_CFG_NAME_MAX];       /* tlsrpt.submitter: our domain */
    uint64_t rpt_flush_ms;                      /* tlsrpt.flush_interval */
    int rpt_send;                               /* tlsrpt.send_reports */
    uint64_t rpt_check_ms;                      /* tlsrpt.send_check_interval */
    uint64_t rpt_delay_ms;                      /* tlsrpt.send_max_random_delay */
    uint64_t rpt_backoff_ms;                    /* tlsrpt.retry_backoff */
    int rpt_max_attempts;                       /* tlsrpt.max_attempts */
    char rpt_dkim_key[MXG_CFG_PATH_MAX];        /* tlsrpt.dkim_key_file: PEM; "" = mailto: skipped */
    char rpt_dkim_selector[MXG_CFG_NAME_MAX];   /* tlsrpt.dkim_selector */
    char rpt_dkim_domain[MXG_CFG_NAME_MAX];     /* tlsrpt.dkim_domain: "" = the submitter */
    char rpt_from[MXG_CFG_NAME_MAX];            /* tlsrpt.report_from: "" = noreply-smtp-tls-reporting@SUBMITTER */

    /* mta_sts (RFC 8461) */
    int sts_enabled;                            /* mta_sts.enabled */
    uint64_t sts_connect_timeout_ms;            /* mta_sts.connect_timeout */
    uint64_t sts_fetch_timeout_ms;              /* mta_sts.fetch_timeout: whole HTTPS fetch */
    uint64_t sts_max_body;                      /* mta_sts.max_policy_size (64 KiB) */
    int sts_https_port;                         /* mta_sts.https_port (443; tests only) */
    uint64_t sts_refresh_min_ms;                /* mta_sts.refresh_min_interval: between refetches */
    uint64_t sts_sweep_ms;                      /* mta_sts.refresh_check_interval: cache sweep */

    /* queue: the spool (<state.directory>/spool) and its delivery runner */
    uint64_t q_lifetime_ms;       /* queue.lifetime: then the message bounces */
    uint64_t q_backoff_ms;        /* queue.retry_backoff: first retry delay (doubles) */
    uint64_t q_backoff_max_ms;    /* queue.retry_backoff_max: cap on the delay */
    uint64_t q_scan_ms;           /* queue.scan_interval: look for due entries */
    int q_max_parallel;           /* queue.max_parallel: concurrent deliveries */
    char q_bounce_route[MXG_CFG_NAME_MAX]; /* queue.bounce_route: "[host]:port", "host", "" = MX */

    /* log */
    enum mxg_log_level log_level; /* log.level */
    int log_syslog;               /* log.syslog (bool) */
    enum mxg_log_format log_format; /* log.format: text|json */

    /* metrics (Prometheus text format, app/metrics_http.h) */
    char metrics_listen[80];      /* metrics.listen: "addr:port", "" = no endpoint */
    struct mxg_cidr metrics_allow[MXG_CFG_MAX_NETS]; /* metrics.allow_networks */
    int n_metrics_allow;
    uint64_t metrics_status_refresh_ms;         /* metrics.status_refresh: how long the status
                                                   page's spool and TLSRPT reads are reused */
    char metrics_status_creds[MXG_CFG_PATH_MAX]; /* metrics.status_credentials_file: "user:password"
                                                  lines; "" = /status to loopback clients only */
};

void mxg_config_defaults(struct mxg_config *cfg);

/* path may be NULL (defaults + environment). envp may be NULL. */
int mxg_config_load(struct mxg_config *cfg, const char *path, char *const *envp, char *err,
                    size_t errlen);

/* server.workers resolved: the configured number, or for "auto" (0) the CPUs the process
 * may use (online, within its affinity mask and cgroup quota) less one (left to the
 * kernel's network path and the MTA beside the relay), at least 1 and at most
 * MXG_CFG_AUTO_WORKERS_MAX, and no more than the smallest positive process-wide limit
 * (limits.destination_rate / upstream_connections: each worker gets an equal share of it,
 * app/run_workers.c) — of limits.destination_concurrency each worker keeps a share of at
 * least MXG_CFG_AUTO_DEST_SHARE (20 → at most 5 workers). */
#define MXG_CFG_AUTO_WORKERS_MAX 8
#define MXG_CFG_AUTO_DEST_SHARE 4
#define MXG_CFG_WORKERS_MAX 64
int mxg_config_workers(const struct mxg_config *cfg);

/* What "auto" gives with cpus online CPUs: the count; *limit (if not NULL) is set to the
 * name of the limit that lowered it, or NULL. An explicit number is returned as is. */
int mxg_config_workers_for(const struct mxg_config *cfg, long cpus, const char **limit);

/* One line (no newline) saying what server.workers became and why, e.g.
 * "\"auto\": 1 worker (2 online CPUs less one, at most 8)"; 1 when a limit lowered
 * "auto", else 0. */
int mxg_config_workers_explain(const struct mxg_config *cfg, char *buf, size_t len);

/* Write the effective configuration in the file syntax (for `config check -v`). */
void mxg_config_dump(const struct mxg_config *cfg, FILE *out);

/* Reload support (core/reload.c). mxg_config_diff() calls fn once per
 * setting whose value differs between a and b, in schema order, with the
 * setting's section and name and both values in the file syntax (as the
 * dump writes them); returns the number of differences.
 * mxg_config_copy_setting() copies one setting (section.name) from src into
 * dst: 0, or -1 when there is no such setting. */
int mxg_config_diff(const struct mxg_config *a, const struct mxg_config *b,
                    void (*fn)(void *arg, const char *section, const char *name,
                               const char *old_value, const char *new_value),
                    void *arg);
int mxg_config_copy_setting(struct mxg_config *dst, const struct mxg_config *src,
                            const char *section, const char *name);

/* Helpers, exposed for the unit tests and other modules. Return 0 or -1. */
int mxg_parse_duration_ms(const char *s, uint64_t *out);
int mxg_parse_size(const char *s, uint64_t *out);
int mxg_parse_endpoint(const char *s, int default_port, struct mxg_endpoint *out);
/* A next hop as Postfix writes it (queue.bounce_route, static routes):
 * "[host]" / "[host]:port" → that host's own addresses, no MX lookup (host
 * may be an IPv4 or IPv6 literal); "host" / "host:port" → MX lookup of host.
 * port 0 = not given. 0, or -1 with *why (may be NULL). */
struct mxg_nexthop {
    char host[256];
    int port;
    int mx;
};
int mxg_parse_nexthop(const char *s, struct mxg_nexthop *out, const char **why);
int mxg_parse_cidr(const char *s, struct mxg_cidr *out);
/* "TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3" → the protocol number (0x0301 ..
 * 0x0304, as OpenSSL's TLS1_VERSION ...); "" → 0; anything else → -1. */
int mxg_parse_tls_version(const char *s);
/* 1 if the address (AF_INET/AF_INET6 sockaddr; v4-mapped v6 treated as v4) is in the network. */
int mxg_cidr_match(const struct mxg_cidr *net, const struct sockaddr *sa);

#endif
