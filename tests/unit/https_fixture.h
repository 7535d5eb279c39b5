/* tests/unit/https_fixture.h — a small HTTPS test server for the POST tests
 * (test_policy_https_post.c, test_report_send.c). Header-only (static
 * functions): tests/CMakeLists.txt builds every test_*.c on its own.
 *
 * hfx_start() makes a mkdtemp directory, generates a test CA and one leaf
 * certificate for `name` with the openssl CLI, and starts
 * tests/unit/https_server.py (the server of test_policy_https.c; see its
 * doc string for the /post/NNN paths) on ADDR with an ephemeral port and
 * --post-dir DIR/posts, so each POST it receives is readable with
 * hfx_post(). The server dies with this process (PR_SET_PDEATHSIG, stdin
 * pipe at EOF) and is killed by hfx_stop(), which also removes the
 * directory. MXG_HTTPS_SERVER / MXG_PYTHON override the script / python. */
#ifndef MXG_TEST_HTTPS_FIXTURE_H
#define MXG_TEST_HTTPS_FIXTURE_H

#include <arpa/inet.h>
#include <fcntl.h>
#include <libgen.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

struct hfx {
    char dir[256];
    char ca[300];
    char posts[300];
    pid_t server;
    int server_stdin;
    int port;
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

static void hfx_stop(struct hfx *f)
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

/* 0, or -1 (message on stderr; nothing left behind). */
static int hfx_start(struct hfx *f, const char *addr, const char *name)
{
    memset(f, 0, sizeof *f);
    f->server = -1;
    f->server_stdin = -1;
    signal(SIGPIPE, SIG_IGN);
    const char *tmp = getenv("TMPDIR");
    snprintf(f->dir, sizeof f->dir, "%s/mxg_post_test_XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (mkdtemp(f->dir) == NULL) {
        f->dir[0] = '\0';
        return -1;
    }
    char path[400], cmd[1200];
    snprintf(path, sizeof path, "%s/gen.sh", f->dir);
    FILE *fp = fopen(path, "w");
    if (fp == NULL) {
        hfx_stop(f);
        return -1;
    }
    fputs(HFX_GEN_SH, fp);
    fclose(fp);
    snprintf(cmd, sizeof cmd, "cd '%s' && sh gen.sh '%s' > gen.log 2>&1 || cat gen.log >&2",
             f->dir, name);
    snprintf(f->ca, sizeof f->ca, "%s/ca.pem", f->dir);
    snprintf(path, sizeof path, "%s/leaf.pem", f->dir);
    if (system(cmd) != 0 || access(path, R_OK) != 0) {
        hfx_stop(f);
        return -1;
    }
    snprintf(f->posts, sizeof f->posts, "%s/posts", f->dir);
    if (mkdir(f->posts, 0700) != 0) {
        hfx_stop(f);
        return -1;
    }

    char script[600], cert[320], key[320];
    const char *env = getenv("MXG_HTTPS_SERVER");
    if (env && *env) {
        snprintf(script, sizeof script, "%s", env);
    } else {
        char src[512];
        snprintf(src, sizeof src, "%s", __FILE__);
        snprintf(script, sizeof script, "%s/https_server.py", dirname(src));
    }
    snprintf(cert, sizeof cert, "%s/leaf.pem", f->dir);
    snprintf(key, sizeof key, "%s/leaf.key", f->dir);
    const char *python = getenv("MXG_PYTHON");
    if (python == NULL || *python == '\0')
        python = "python3";

    int out[2], in[2];
    if (pipe2(out, O_CLOEXEC) != 0) {
        hfx_stop(f);
        return -1;
    }
    if (pipe2(in, O_CLOEXEC) != 0) {
        close(out[0]);
        close(out[1]);
        hfx_stop(f);
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
        execlp(python, python, script, "--addr", addr, "--port", "0", "--cert", cert, "--key",
               key, "--post-dir", f->posts, "--watch-stdin", (char *)NULL);
        _exit(127);
    }
    close(out[1]);
    close(in[0]);
    f->server = pid;
    f->server_stdin = in[1];
    if (pid < 0) {
        close(out[0]);
        hfx_stop(f);
        return -1;
    }
    char line[64] = "";
    size_t got = 0;
    struct pollfd pfd = { .fd = out[0], .events = POLLIN };
    while (got < sizeof line - 1 && strchr(line, '\n') == NULL) {
        if (poll(&pfd, 1, 20000) <= 0)
            break;
        ssize_t n = read(out[0], line + got, sizeof line - 1 - got);
        if (n <= 0)
            break;
        got += (size_t)n;
        line[got] = '\0';
    }
    close(out[0]);
    int plain = 0;
    if (sscanf(line, "READY %d %d", &f->port, &plain) != 2 || f->port <= 0) {
        fprintf(stderr, "https_server.py (%s) did not start\n", script);
        hfx_stop(f);
        return -1;
    }
    return 0;
}

/* Number of POSTs the server recorded so far. */
static int hfx_post_count(const struct hfx *f)
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
static int hfx_post(const struct hfx *f, int n, char **body, size_t *len, char *path_out,
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

/* sockaddr_storage for ip (IPv4), port. */
static void hfx_addr4(struct sockaddr_storage *ss, const char *ip, int port)
{
    struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    inet_pton(AF_INET, ip, &sin.sin_addr);
    memset(ss, 0, sizeof *ss);
    memcpy(ss, &sin, sizeof sin);
}

#endif
