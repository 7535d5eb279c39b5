#!/usr/bin/env python3
"""HTTPS test server for tests/unit/test_http_get.c (stdlib only).

Serves fixed paths that exercise every outcome of http/https.c:

  /ok            200 text/plain, an MTA-STS policy (Content-Length)
  /chunked-ok    200 text/plain, the same policy, chunked
  /charset       200 "text/plain; charset=utf-8"
  /html          200 text/html
  /redirect      301 Location: /ok
  /404           404 text/plain
  /big           200 text/plain, 70000 bytes with Content-Length
  /chunked-big   200 text/plain, 70000 bytes chunked (no length)
  /slow          sleeps --slow seconds, then 200 text/plain
  /empty-ctype   200 without a Content-Type header
  /ua            200 text/plain, the request's User-Agent

POST (TLSRPT delivery tests, tests/unit/test_report_send.c and
test_http_post.c):

  /post/NNN[/..] reads the request body (Content-Length), answers status NNN
                 (e.g. 200, 202, 500) with a short text/plain body
  /post/big      200 with a 10000-byte body
  other paths    404

With --post-dir DIR every POST is recorded before the answer is sent, as
DIR/N.body (the raw request body) and DIR/N.meta ("path\ncontent-type\n"),
N = 1, 2, ... in arrival order (each file written under a temporary name and
renamed, so a reader never sees half a file).

--plain-port P also serves the same paths over plain HTTP on P (a TLS client
talking to it fails the handshake).

The certificate is chosen by SNI: --sni NAME=CERT:KEY (repeatable); any other
name (or none) gets --cert/--key. TLS handshakes run in the per-connection
thread, so a client that gives up mid-handshake blocks nobody.

Prints "READY <port> <plain-port>" on stdout once listening. With
--any-port-fallback a busy port (another run of the same test) is replaced by
an ephemeral one; the READY line tells which. Exits on SIGTERM/SIGINT, and also
when its parent dies (stdin at EOF when the parent passes a pipe; the C test
additionally sets PR_SET_PDEATHSIG).
"""
import argparse
import http.server
import os
import signal
import socketserver
import ssl
import sys
import threading
import time

POLICY = (b"version: STSv1\r\n"
          b"mode: enforce\r\n"
          b"mx: mx1.example.test\r\n"
          b"mx: *.mx.example.test\r\n"
          b"max_age: 86400\r\n")
BIG = 70000


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "mxg-test-https/1"
    slow_seconds = 5.0

    def log_message(self, fmt, *args):  # keep the test output quiet
        if os.environ.get("MXG_HTTPS_SERVER_VERBOSE"):
            sys.stderr.write("https_server: " + (fmt % args) + "\n")

    def _send(self, status, body, ctype="text/plain", extra=None):
        self.send_response(status)
        if ctype is not None:
            self.send_header("Content-Type", ctype)
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _send_chunked(self, body, ctype="text/plain", chunk=4096):
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for i in range(0, len(body), chunk):
            part = body[i:i + chunk]
            self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
        self.wfile.write(b"0\r\n\r\n")

    def do_GET(self):
        try:
            self._route()
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
            self.close_connection = True

    def _route(self):
        p = self.path
        if p == "/ok":
            self._send(200, POLICY)
        elif p == "/chunked-ok":
            self._send_chunked(POLICY)
        elif p == "/charset":
            self._send(200, POLICY, "text/plain; charset=utf-8")
        elif p == "/html":
            self._send(200, b"<html><body>policy</body></html>\n", "text/html")
        elif p == "/redirect":
            self._send(301, b"moved\n", "text/plain", {"Location": "/ok"})
        elif p == "/404":
            self._send(404, b"not found\n")
        elif p == "/big":
            self._send(200, b"x" * BIG)
        elif p == "/chunked-big":
            self._send_chunked(b"y" * BIG)
        elif p == "/slow":
            time.sleep(self.slow_seconds)
            self._send(200, POLICY)
        elif p == "/empty-ctype":
            self._send(200, POLICY, None)
        elif p == "/ua":
            self._send(200, (self.headers.get("User-Agent") or "").encode())
        else:
            self._send(404, b"no such path\n")


POST_BIG = 10000


class PostRecorder:
    directory = None
    lock = threading.Lock()
    count = 0

    @classmethod
    def record(cls, path, ctype, body):
        if not cls.directory:
            return
        with cls.lock:
            cls.count += 1
            n = cls.count
        base = os.path.join(cls.directory, str(n))
        for ext, data in ((".body", body),
                          (".meta", ("%s\n%s\n" % (path, ctype)).encode())):
            tmp = base + ext + ".tmp"
            with open(tmp, "wb") as f:
                f.write(data)
            os.rename(tmp, base + ext)


def _do_post(self):
    try:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        p = self.path
        parts = p.split("/")
        if p == "/post/big":
            PostRecorder.record(p, self.headers.get("Content-Type") or "", body)
            self._send(200, b"z" * POST_BIG)
        elif len(parts) >= 3 and parts[1] == "post" and parts[2].isdigit():
            PostRecorder.record(p, self.headers.get("Content-Type") or "", body)
            self._send(int(parts[2]), b"status %s\n" % parts[2].encode())
        else:
            self._send(404, b"no such path\n")
    except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError, ValueError):
        self.close_connection = True


Handler.do_POST = _do_post


class PlainServer(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class Server(PlainServer):
    ssl_context = None

    def finish_request(self, request, client_address):
        # Runs in the connection's thread: do the TLS handshake here.
        try:
            tls = self.ssl_context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return
        try:
            self.RequestHandlerClass(tls, client_address, self)
        except (ssl.SSLError, OSError):
            pass
        finally:
            try:
                tls.close()
            except OSError:
                pass


def make_ctx(cert, key):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    return ctx


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--addr", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--sni", action="append", default=[], help="NAME=CERT:KEY")
    ap.add_argument("--slow", type=float, default=5.0)
    ap.add_argument("--plain-port", type=int, default=0)
    ap.add_argument("--any-port-fallback", action="store_true")
    ap.add_argument("--post-dir", default="",
                    help="record every POST into this directory")
    ap.add_argument("--watch-stdin", action="store_true",
                    help="exit when stdin reaches EOF (parent gone)")
    a = ap.parse_args()

    default = make_ctx(a.cert, a.key)
    by_name = {}
    for spec in a.sni:
        name, files = spec.split("=", 1)
        cert, key = files.split(":", 1)
        by_name[name.lower()] = make_ctx(cert, key)

    def pick(sslobj, server_name, _ctx):
        if server_name and server_name.lower() in by_name:
            sslobj.context = by_name[server_name.lower()]
        return None

    default.sni_callback = pick
    Handler.slow_seconds = a.slow
    PostRecorder.directory = a.post_dir or None
    def bind(cls, port):
        try:
            return cls((a.addr, port), Handler)
        except OSError:
            if not a.any_port_fallback or port == 0:
                raise
            return cls((a.addr, 0), Handler)

    srv = bind(Server, a.port)
    srv.ssl_context = default

    def stop(_sig, _frm):
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if a.watch_stdin:
        def watch():
            try:
                while sys.stdin.buffer.read(4096):
                    pass
            finally:
                os._exit(0)
        threading.Thread(target=watch, daemon=True).start()

    plain_port = 0
    if a.plain_port:
        plain = bind(PlainServer, a.plain_port)
        plain_port = plain.server_address[1]
        threading.Thread(target=plain.serve_forever, kwargs={"poll_interval": 0.2},
                         daemon=True).start()

    sys.stdout.write("READY %d %d\n" % (srv.server_address[1], plain_port))
    sys.stdout.flush()
    srv.serve_forever(poll_interval=0.2)


if __name__ == "__main__":
    main()
