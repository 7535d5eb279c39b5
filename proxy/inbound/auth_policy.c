/* proxy/inbound/auth_policy.c — which inbound requirement applies to a client, the
 * files the inbound side loads, and the explanation `mxguard config check -v`
 * prints; see auth.h. */
#include "auth.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <openssl/ssl.h>

#include "../../core/log.h"
#include "../../tls/tls_engine.h"

const char *mxg_inbound_req_name(enum mxg_inbound_req r)
{
    static const char *const names[] = {"none", "tls", "auth"};
    return (unsigned)r < 3 ? names[r] : "?";
}

static int in_any(const struct mxg_cidr *nets, int n, const struct sockaddr *sa)
{
    for (int i = 0; i < n; i++)
        if (mxg_cidr_match(&nets[i], sa))
            return 1;
    return 0;
}

enum mxg_inbound_req mxg_inbound_requirement(const struct mxg_config *cfg,
                                             const struct sockaddr *sa)
{
    if (!cfg || !sa)
        return MXG_REQ_NONE;
    if (in_any(cfg->require_auth, cfg->n_require_auth, sa))
        return MXG_REQ_AUTH;
    if (in_any(cfg->require_tls, cfg->n_require_tls, sa))
        return MXG_REQ_TLS;
    return MXG_REQ_NONE;
}

int mxg_addr_is_loopback(const struct sockaddr *sa)
{
    if (!sa)
        return 0;
    if (sa->sa_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
    if (sa->sa_family != AF_INET6)
        return 0;
    const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
    if (IN6_IS_ADDR_LOOPBACK(a))
        return 1;
    return IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127;
}

int mxg_inbound_load(const struct mxg_config *cfg, struct mxg_tls_ctx **tls,
                     struct mxg_auth_db **db, char *err, size_t errlen)
{
    struct mxg_tls_ctx *t = NULL;
    struct mxg_auth_db *d = NULL;
    char e[768];
    if (tls)
        *tls = NULL;
    if (db)
        *db = NULL;
    if (tls && cfg->in_tls_cert_file[0]) {
        struct mxg_tls_server_opts o = {
            .certfile = cfg->in_tls_cert_file,
            .keyfile = cfg->in_tls_key_file,
            .min_version = cfg->in_tls_min_version == MXG_INBOUND_TLS13 ? TLS1_3_VERSION
                                                                    : TLS1_2_VERSION,
            .ciphers = cfg->in_tls_ciphers,
        };
        t = mxg_tls_ctx_new_server_opts(&o, e, sizeof e);
        if (!t) {
            snprintf(err, errlen, "inbound STARTTLS (server.tls_*): %s", e);
            return -1;
        }
    }
    if (db && cfg->auth_password_file[0]) {
        int warn = 0;
        if (mxg_auth_db_load(cfg->auth_password_file, &d, &warn, e, sizeof e) < 0) {
            mxg_tls_ctx_free(t);
            snprintf(err, errlen, "auth.password_file: %s", e);
            return -1;
        }
        if (warn)
            LOG_W("auth", "%s is readable by other users: it holds password hashes (chmod o-rwx)",
                  cfg->auth_password_file);
        if (mxg_auth_db_count(d) == 0)
            LOG_W("auth", "%s lists no user: nobody can authenticate", cfg->auth_password_file);
    }
    if (tls)
        *tls = t;
    if (db)
        *db = d;
    return 0;
}

int mxg_inbound_check(const struct mxg_config *cfg, char *err, size_t errlen)
{
    struct mxg_tls_ctx *t;
    struct mxg_auth_db *d;
    if (mxg_inbound_load(cfg, &t, &d, err, errlen) < 0)
        return -1;
    mxg_tls_ctx_free(t);
    mxg_auth_db_free(d);
    return 0;
}

/* ------------------------------------------------------------ config check -v */

static void fmt_ms(uint64_t ms, char *buf, size_t cap)
{
    if (ms % 60000 == 0 && ms)
        snprintf(buf, cap, "%llum", (unsigned long long)(ms / 60000));
    else if (ms % 1000 == 0)
        snprintf(buf, cap, "%llus", (unsigned long long)(ms / 1000));
    else
        snprintf(buf, cap, "%llums", (unsigned long long)ms);
}

/* 1 if net's first address is a client server.allow_networks lets in. */
static int net_allowed(const struct mxg_config *cfg, const struct mxg_cidr *net)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    if (net->family == AF_INET) {
        struct sockaddr_in *s = (struct sockaddr_in *)&ss;
        s->sin_family = AF_INET;
        memcpy(&s->sin_addr, net->addr, 4);
    } else {
        struct sockaddr_in6 *s = (struct sockaddr_in6 *)&ss;
        s->sin6_family = AF_INET6;
        memcpy(&s->sin6_addr, net->addr, 16);
    }
    return in_any(cfg->allow, cfg->n_allow, (struct sockaddr *)&ss);
}

static void explain_nets(const struct mxg_config *cfg, FILE *out, const struct mxg_cidr *nets,
                         int n, const char *what)
{
    for (int i = 0; i < n; i++)
        fprintf(out, "#     %-24s %s%s\n", nets[i].text, what,
                net_allowed(cfg, &nets[i]) ? ""
                                           : "  (outside server.allow_networks: refused "
                                             "before this applies)");
}

void mxg_inbound_explain(const struct mxg_config *cfg, FILE *out)
{
    int tls = cfg->in_tls_cert_file[0] != '\0', auth = cfg->auth_password_file[0] != '\0';
    char a[32], b[32], c[32];
    fprintf(out, "\n# Inbound clients, checked in this order:\n");
    fprintf(out, "#   1. server.allow_networks: any other client gets 554 5.7.1 and is "
                 "disconnected\n");
    for (int i = 0; i < cfg->n_allow; i++)
        fprintf(out, "#     %s\n", cfg->allow[i].text);
    fprintf(out, "#   2. server.require_auth_networks: MAIL before a successful AUTH gets "
                 "530 5.7.0%s\n", cfg->n_require_auth ? "" : " (none)");
    explain_nets(cfg, out, cfg->require_auth, cfg->n_require_auth,
                 tls ? "AUTH required (over STARTTLS)" : "AUTH required (plaintext, loopback)");
    fprintf(out, "#   3. server.require_tls_networks: MAIL before STARTTLS gets 530 5.7.0%s\n",
            cfg->n_require_tls ? "" : " (none)");
    explain_nets(cfg, out, cfg->require_tls, cfg->n_require_tls, "STARTTLS required");
    fprintf(out, "#   4. every other allowed client: no requirement (STARTTLS and AUTH "
                 "optional where offered)\n");
    if (tls)
        fprintf(out, "# STARTTLS: offered; certificate %s, key %s, %s or later%s%s\n",
                cfg->in_tls_cert_file, cfg->in_tls_key_file,
                cfg->in_tls_min_version == MXG_INBOUND_TLS13 ? "TLSv1.3" : "TLSv1.2",
                cfg->in_tls_ciphers[0] ? ", TLS 1.2 ciphers " : "", cfg->in_tls_ciphers);
    else
        fprintf(out, "# STARTTLS: not offered (server.tls_cert_file is empty)\n");
    if (auth)
        fprintf(out, "# AUTH PLAIN LOGIN: users from %s; offered %s%s\n", cfg->auth_password_file,
                tls ? "after STARTTLS" : "",
                cfg->auth_plaintext_loopback ? (tls ? ", and without TLS to loopback clients"
                                                    : "without TLS to loopback clients only")
                                             : "");
    else
        fprintf(out, "# AUTH: not offered (auth.password_file is empty)\n");
    if (!auth)
        return;
    fmt_ms(cfg->auth_window_ms, a, sizeof a);
    fmt_ms(cfg->auth_lockout_ms, b, sizeof b);
    fmt_ms(cfg->auth_delay_ms, c, sizeof c);
    fprintf(out, "# AUTH failures: each answered after %s; %d from one address (IPv6: one /64)",
            c, cfg->auth_max_failures);
    if (cfg->auth_max_user_failures)
        fprintf(out, " or %d for one user name", cfg->auth_max_user_failures);
    fprintf(out, " within %s lock it out for %s (421 4.7.0, then 454 4.7.0);\n", a, b);
    fprintf(out, "#   at most %d addresses and user names are remembered (least recently "
                 "used forgotten first)\n", cfg->auth_throttle_entries);
    if (cfg->auth_max_user_failures && cfg->auth_trusted_lifetime_ms) {
        uint64_t life = cfg->auth_trusted_lifetime_ms;
        if (life % 86400000ULL == 0)
            snprintf(a, sizeof a, "%llud", (unsigned long long)(life / 86400000ULL));
        else
            fmt_ms(life, a, sizeof a);
        fprintf(out, "#   a locked user still gets in from addresses it authenticated from "
                     "within the last %s (at most %d remembered, in %s/auth-trust.db)\n",
                a, cfg->auth_trusted_entries, cfg->state_dir);
    }
}
