/* tests/unit/https_fixture.h — the HTTPS test server of the unit tests
 * (test_http_get.c, test_http_post.c, test_report_send.c) and
 * the libuv loop harness they share. Header-only (static inline functions,
 * so a test need not use them all):
 * tests/CMakeLists.txt builds every test_*.c on its own.
 *
 * hfx_start() makes a mkdtemp directory, generates a test CA and one leaf
 * certificate for `name` with the openssl CLI, and starts
 * tests/unit/https_server.py (see its doc string for the paths it serves)
 * on ADDR with an ephemeral port and --post-dir DIR/posts, so each POST it
 * receives is readable with hfx_post(). hfx_start_opts() does the same with
 * the test's own certificate script, SNI certificates, wanted ports (a busy
 * one is replaced by an ephemeral one: the READY line says which), a plain
 * HTTP port and a --slow delay. The server dies with this process
 * (PR_SET_PDEATHSIG, stdin pipe at EOF) and is killed by hfx_stop(), which
 * also removes the directory. MXG_HTTPS_SERVER / MXG_PYTHON override the
 * script / python.
 *
 * Loop harness: hfx_run_until() runs a loop until a counter reaches a value
 * or a guard timer fires; hfx_loop_close() drains and closes a loop. */
#ifndef MXG_TEST_HTTPS_FIXTURE_H
#define MXG_TEST_HTTPS_FIXTURE_H

#include <arpa/inet.h>
#include <fcntl.h>
#include <libgen.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

struct hfx {
    char dir[256];
    char ca[300];    /* DIR/ca.pem: the test CA */
    char posts[300];
    pid_t server;
    int server_stdin; /* write end; the server exits when it closes */
    int port;         /* HTTPS */
    int plain_port;   /* plain HTTP; 0 without hfx_opts.plain_port */
};

#define HFX_MAX_SNI 4

/* What hfx_start_opts() does beyond hfx_start(); zero fields: the default. */
struct hfx_opts {
    /* Certificate script, run as `sh gen.sh NAME` in the directory: must
     * write ca.pem and LEAF.pem/LEAF.key. NULL: HFX_GEN_SH (one leaf for
     * NAME, LEAF "leaf"). */
    const char *gen_sh;
    const char *leaf;                /* the default certificate's base name */
    const char *sni[HFX_MAX_SNI][2]; /* {SNI name, base name}: that certificate */
    int port;                        /* wanted HTTPS port; 0: ephemeral */
    int plain_port;                  /* wanted plain HTTP port; 0: none */
    const char *slow;                /* seconds /slow sleeps; NULL: the server's default */
};

static const char HFX_GEN_SH[] =
    "set -e\n"
    "EC='-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes'\n"
    "openssl req -x509 $EC -keyout ca.key -out ca.pem -days 2 \\\n"
    "  -subj '/CN=mxguard post test CA' \\\n"
    "  -addext 'basicConstraints=critical,CA:TRUE' -addext 'keyUsage=critical,keyCertSign,cRLSign'\n"
    "openssl req -new $EC -keyout leaf.key -out leaf.csr -subj \"/CN=$1\"\n"
    "printf 'basicConstraints=critical,CA:FALSE\\nkeyUsage=critical,digitalSignature\\n"
    "extendedKeyUsage=serverAuth\\nsubjectAltName=DNS:%s\\n' \"$1\" > leaf.ext\n"
    "openssl x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key -set_serial 7 -days 2 -sha256 \\\n"
    "  -extfile leaf.ext -out leaf.pem\n";

static inline void hfx_stop(struct hfx *f)
{
    if (f->server_stdin >= 0)
        close(f->server_stdin);
    f->server_stdin = -1;
    if (f->server > 0) {
        kill(f->server, SIGTERM);
        int i;
        for (i = 0; i < 100 && waitpid(f->server, NULL, WNOHANG) != f->server; i++)
            usleep(20000);
        if (i == 100) {
            kill(f->server, SIGKILL);
            waitpid(f->server, NULL, 0);
        }
    }
    f->server = -1;
    if (f->dir[0]) {
        char cmd[400];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", f->dir);
        f->dir[0] = '\0';
    }
}

/* Run script as `sh gen.sh NAME` in f->dir, output to gen.log (shown on
 * stderr when it fails). 0, or -1. */
static inline int hfx_run_gen(const struct hfx *f, const char *script, const char *name)
{
    char path[400], cmd[1200];
    snprintf(path, sizeof path, "%s/gen.sh", f->dir);
    FILE *fp = fopen(path, "w");
    if (fp == NULL)
        return -1;
    fputs(script, fp);
    fclose(fp);
    snprintf(cmd, sizeof cmd, "cd '%s' && sh gen.sh '%s' > gen.log 2>&1", f->dir, name);
    if (system(cmd) == 0)
        return 0;
    snprintf(cmd, sizeof cmd, "cat '%s/gen.log' >&2", f->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "(no log)\n");
    return -1;
}

/* The server script: next to this source file, unless MXG_HTTPS_SERVER says. */
static inline void hfx_script(char *out, size_t cap)
{
    const char *env = getenv("MXG_HTTPS_SERVER");
    if (env && *env) {
        snprintf(out, cap, "%s", env);
        return;
    }
    char src[512];
    snprintf(src, sizeof src, "%s", __FILE__);
    snprintf(out, cap, "%s/https_server.py", dirname(src));
}

/* Read the server's "READY <port> <plain-port>" line from fd (20 s at most)
 * into f. 0, or -1. */
static inline int hfx_read_ready(struct hfx *f, int fd)
{
    char line[64] = "";
    size_t got = 0;
    struct pollfd pfd = { .fd = fd, .events = POLLIN };
    while (got < sizeof line - 1 && strchr(line, '\n') == NULL) {
        if (poll(&pfd, 1, 20000) <= 0)
            break;
        ssize_t n = read(fd, line + got, sizeof line - 1 - got);
        if (n <= 0)
            break;
        got += (size_t)n;
        line[got] = '\0';
    }
    if (sscanf(line, "READY %d %d", &f->port, &f->plain_port) != 2 || f->port <= 0)
        return -1;
    return 0;
}

/* Fork and exec the server with argv (NULL-terminated; argv[0] the python),
 * then wait for its READY line. 0, or -1 (the caller cleans up). */
static inline int hfx_spawn(struct hfx *f, char *const argv[])
{
    int out[2], in[2];
    if (pipe2(out, O_CLOEXEC) != 0)
        return -1;
    if (pipe2(in, O_CLOEXEC) != 0) {
        close(out[0]);
        close(out[1]);
        return -1;
    }
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        dup2(in[0], 0);
        dup2(out[1], 1);
        execvp(argv[0], argv);
        _exit(127);
    }
    close(out[1]);
    close(in[0]);
    f->server = pid;
    f->server_stdin = in[1];
    if (pid < 0) {
        close(out[0]);
        return -1;
    }
    int rc = hfx_read_ready(f, out[0]);
    close(out[0]);
    return rc;
}

/* Start the server as o says (NULL: the defaults, as hfx_start()). 0, or -1
 * (message on stderr; nothing left behind). f is the caller's; hfx_stop()
 * it in any case (a no-op after a failed start). */
static inline int hfx_start_opts(struct hfx *f, const char *addr, const char *name,
                          const struct hfx_opts *o)
{
    static const struct hfx_opts defaults = { 0 };
    if (o == NULL)
        o = &defaults;
    memset(f, 0, sizeof *f);
    f->server = -1;
    f->server_stdin = -1;
    signal(SIGPIPE, SIG_IGN);
    const char *tmp = getenv("TMPDIR");
    snprintf(f->dir, sizeof f->dir, "%s/mxg_https_fx_XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (mkdtemp(f->dir) == NULL) {
        f->dir[0] = '\0';
        return -1;
    }
    const char *leaf = o->leaf ? o->leaf : "leaf";
    char cert[320], key[320];
    snprintf(f->ca, sizeof f->ca, "%s/ca.pem", f->dir);
    snprintf(cert, sizeof cert, "%s/%s.pem", f->dir, leaf);
    snprintf(key, sizeof key, "%s/%s.key", f->dir, leaf);
    snprintf(f->posts, sizeof f->posts, "%s/posts", f->dir);
    if (hfx_run_gen(f, o->gen_sh ? o->gen_sh : HFX_GEN_SH, name) != 0 ||
        access(cert, R_OK) != 0 || mkdir(f->posts, 0700) != 0) {
        hfx_stop(f);
        return -1;
    }

    char script[600], port[16], plain[16], sni[HFX_MAX_SNI][700];
    hfx_script(script, sizeof script);
    const char *python = getenv("MXG_PYTHON");
    if (python == NULL || *python == '\0')
        python = "python3";
    snprintf(port, sizeof port, "%d", o->port);
    snprintf(plain, sizeof plain, "%d", o->plain_port);
    char *argv[40];
    int n = 0;
#define HFX_ARG(s) (argv[n++] = (char *)(s))
    HFX_ARG(python), HFX_ARG(script), HFX_ARG("--addr"), HFX_ARG(addr);
    HFX_ARG("--port"), HFX_ARG(port), HFX_ARG("--cert"), HFX_ARG(cert);
    HFX_ARG("--key"), HFX_ARG(key), HFX_ARG("--post-dir"), HFX_ARG(f->posts);
    if (o->plain_port)
        HFX_ARG("--plain-port"), HFX_ARG(plain);
    for (int i = 0; i < HFX_MAX_SNI && o->sni[i][0]; i++) {
        snprintf(sni[i], sizeof sni[i], "%s=%s/%s.pem:%s/%s.key", o->sni[i][0], f->dir,
                 o->sni[i][1], f->dir, o->sni[i][1]);
        HFX_ARG("--sni"), HFX_ARG(sni[i]);
    }
    if (o->slow)
        HFX_ARG("--slow"), HFX_ARG(o->slow);
    if (o->port || o->plain_port)
        HFX_ARG("--any-port-fallback");
    HFX_ARG("--watch-stdin"), HFX_ARG(NULL);
#undef HFX_ARG

    if (hfx_spawn(f, argv) != 0 || (o->plain_port && f->plain_port <= 0)) {
        fprintf(stderr, "https_server.py (%s) did not start\n", script);
        hfx_stop(f);
        return -1;
    }
    if ((o->port && f->port != o->port) || (o->plain_port && f->plain_port != o->plain_port))
        fprintf(stderr, "note: %s:%d/%d busy, test server on ports %d/%d\n", addr, o->port,
                o->plain_port, f->port, f->plain_port);
    return 0;
}

/* The default server: one leaf certificate for name, an ephemeral port. */
static inline int hfx_start(struct hfx *f, const char *addr, const char *name)
{
    return hfx_start_opts(f, addr, name, NULL);
}

/* Number of POSTs the server recorded so far. */
static inline int hfx_post_count(const struct hfx *f)
{
    char p[400];
    int n = 0;
    for (;;) {
        snprintf(p, sizeof p, "%s/%d.meta", f->posts, n + 1);
        if (access(p, R_OK) != 0)
            return n;
        n++;
    }
}

/* POST number n (1-based): its body (malloc'd, *len bytes + NUL), path and
 * Content-Type. 0, or -1. */
static inline int hfx_post(const struct hfx *f, int n, char **body, size_t *len, char *path_out,
                    size_t pathlen, char *ctype_out, size_t ctypelen)
{
    char p[400], meta[1200];
    snprintf(p, sizeof p, "%s/%d.meta", f->posts, n);
    FILE *fp = fopen(p, "rb");
    if (fp == NULL)
        return -1;
    size_t m = fread(meta, 1, sizeof meta - 1, fp);
    fclose(fp);
    meta[m] = '\0';
    char *nl = strchr(meta, '\n');
    if (nl == NULL)
        return -1;
    *nl = '\0';
    snprintf(path_out, pathlen, "%s", meta);
    char *ct = nl + 1;
    ct[strcspn(ct, "\n")] = '\0';
    snprintf(ctype_out, ctypelen, "%s", ct);
    snprintf(p, sizeof p, "%s/%d.body", f->posts, n);
    if ((fp = fopen(p, "rb")) == NULL)
        return -1;
    fseek(fp, 0, SEEK_END);
    long sz = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    *body = malloc((size_t)sz + 1);
    if (*body == NULL || fread(*body, 1, (size_t)sz, fp) != (size_t)sz) {
        free(*body);
        *body = NULL;
        fclose(fp);
        return -1;
    }
    fclose(fp);
    (*body)[sz] = '\0';
    *len = (size_t)sz;
    return 0;
}

/* sockaddr_storage for ip (IPv4), port. 0, or -1 when ip is not an IPv4
 * address. */
static inline int hfx_addr4(struct sockaddr_storage *ss, const char *ip, int port)
{
    struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    int ok = inet_pton(AF_INET, ip, &sin.sin_addr) == 1;
    memset(ss, 0, sizeof *ss);
    memcpy(ss, &sin, sizeof sin);
    return ok ? 0 : -1;
}

/* ------------------------------------------------------------------------ */
/* Loop harness                                                             */

/* Guard timer callback: sets the int at t->data to 1. */
static inline void hfx_on_guard(uv_timer_t *t)
{
    *(int *)t->data = 1;
}

/* Run loop until *count >= want or ms pass (a guard timer, closed again
 * before returning); 1 if the count was reached, else 0. */
static inline int hfx_run_until(uv_loop_t *loop, const int *count, int want, uint64_t ms)
{
    int fired = 0;
    uv_timer_t guard;
    uv_timer_init(loop, &guard);
    guard.data = &fired;
    uv_timer_start(&guard, hfx_on_guard, ms, 0);
    while (*count < want && !fired)
        uv_run(loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&guard, NULL);
    uv_run(loop, UV_RUN_NOWAIT); /* completes the close */
    return *count >= want;
}

/* Let loop finish what is closing (up to 100 non-blocking turns), then
 * uv_loop_close() it: its result, 0 when every handle was closed. */
static inline int hfx_loop_close(uv_loop_t *loop)
{
    for (int i = 0; i < 100 && uv_loop_alive(loop); i++)
        uv_run(loop, UV_RUN_NOWAIT);
    return uv_loop_close(loop);
}

#endif
