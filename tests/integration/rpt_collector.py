#!/usr/bin/env python3
"""rpt_collector.py — the test HTTPS collector of TLSRPT reports (RFC 8460 §5.3, POST of
application/tlsrpt+gzip), for t_fleet_report.sh.

Every POST is read whole, gunzipped and parsed; one line "PATH REPORT-ID" is appended to
DIR/posts.log and the JSON kept as DIR/<path>.<n>.json (n counts per path). A POST to /hold
is not answered while DIR/hold.release does not exist: its line goes to DIR/held.log (the
test then knows the sender is inside its attempt), and the request waits (checking every
100 ms) until the file appears — then it is recorded under the tag "released" (not "hold")
and answered 200. Other paths, and /hold once released: recorded, 200."""
import argparse
import gzip
import json
import os
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCK = threading.Lock()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen", required=True)
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--dir", required=True)
    a = ap.parse_args()
    os.makedirs(a.dir, exist_ok=True)

    class H(BaseHTTPRequestHandler):
        def log_message(self, fmt, *args):
            print("collector: " + fmt % args, flush=True)

        def do_POST(self):
            n = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(n)
            tag = self.path.strip("/").split("?")[0] or "root"
            try:
                rep = json.loads(gzip.decompress(body))
                rid = rep.get("report-id", "?")
            except Exception as e:  # a broken report is recorded as such
                rep, rid = {"error": str(e)}, "invalid"
            line = "%s %s\n" % (tag, rid)
            held = tag == "hold" and not os.path.exists(os.path.join(a.dir, "hold.release"))
            if held:  # recorded in held.log only: its sender is killed meanwhile
                with LOCK, open(os.path.join(a.dir, "held.log"), "a") as f:
                    f.write(line)
                while not os.path.exists(os.path.join(a.dir, "hold.release")):
                    time.sleep(0.1)
            with LOCK:
                if held:
                    tag, line = "released", "released " + rid + "\n"
                k = 1
                while os.path.exists(os.path.join(a.dir, "%s.%d.json" % (tag, k))):
                    k += 1
                with open(os.path.join(a.dir, "%s.%d.json" % (tag, k)), "w") as f:
                    json.dump(rep, f)
                with open(os.path.join(a.dir, "posts.log"), "a") as f:
                    f.write(line)
            try:
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()
            except OSError:
                pass

    host, port = a.listen.rsplit(":", 1)
    srv = ThreadingHTTPServer((host, int(port)), H)
    srv.daemon_threads = True
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(a.cert, a.key)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    print("collector: listening on %s" % a.listen, flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
