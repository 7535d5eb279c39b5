#!/usr/bin/env python3
"""dns_delay.py — a slow resolver for the test-bed: every DNS query (UDP or TCP, TCP
queries pipelined on one connection answered each on its own) is held DELAY seconds,
then forwarded to UPSTREAM (nsd) and its answer relayed unchanged. A real slow peer for
start-up tests (mxguard's DNSSEC self-check waits for it), not a delay inside mxguard.

usage: dns_delay.py --listen IP:PORT --upstream IP:PORT --delay SECONDS
Prints "query N" (flushed) as each query arrives, "ready" once both sockets listen."""
import argparse
import socket
import struct
import sys
import threading
import time

lock = threading.Lock()
count = [0]


def note():
    with lock:
        count[0] += 1
        print("query %d" % count[0], flush=True)


def ask_upstream(up, query):
    """The answer of upstream over TCP to one DNS message (without the length prefix)."""
    with socket.create_connection(up, timeout=10) as s:
        s.sendall(struct.pack("!H", len(query)) + query)
        head = b""
        while len(head) < 2:
            d = s.recv(2 - len(head))
            if not d:
                return None
            head += d
        n = struct.unpack("!H", head)[0]
        body = b""
        while len(body) < n:
            d = s.recv(n - len(body))
            if not d:
                return None
            body += d
        return body


def udp_one(sock, up, delay, query, peer):
    time.sleep(delay)
    ans = ask_upstream(up, query)
    if ans:
        sock.sendto(ans, peer)


def udp_loop(sock, up, delay):
    while True:
        query, peer = sock.recvfrom(65535)
        note()
        threading.Thread(target=udp_one, args=(sock, up, delay, query, peer), daemon=True).start()


def tcp_one(conn, wlock, up, delay, query):
    time.sleep(delay)
    ans = ask_upstream(up, query)
    if ans:
        with wlock:
            try:
                conn.sendall(struct.pack("!H", len(ans)) + ans)
            except OSError:
                pass


def tcp_conn(conn, up, delay):
    wlock = threading.Lock()
    f = conn.makefile("rb")
    try:
        while True:
            head = f.read(2)
            if len(head) < 2:
                return
            query = f.read(struct.unpack("!H", head)[0])
            note()
            threading.Thread(target=tcp_one, args=(conn, wlock, up, delay, query),
                             daemon=True).start()
    except OSError:
        return


def tcp_loop(lsock, up, delay):
    while True:
        conn, _ = lsock.accept()
        threading.Thread(target=tcp_conn, args=(conn, up, delay), daemon=True).start()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen", required=True)
    ap.add_argument("--upstream", required=True)
    ap.add_argument("--delay", type=float, required=True)
    a = ap.parse_args()
    host, port = a.listen.rsplit(":", 1)
    uhost, uport = a.upstream.rsplit(":", 1)
    up = (uhost, int(uport))
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.bind((host, int(port)))
    t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    t.bind((host, int(port)))
    t.listen(64)
    threading.Thread(target=udp_loop, args=(u, up, a.delay), daemon=True).start()
    threading.Thread(target=tcp_loop, args=(t, up, a.delay), daemon=True).start()
    print("ready", flush=True)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    sys.exit(main())
