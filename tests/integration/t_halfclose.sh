#!/usr/bin/env bash
# t_halfclose.sh — a client that pipelines QUIT behind the final dot and then stops sending
# (Exim does) gets the dot's reply and QUIT's, once, and the MX gets the message once — over
# plaintext (TCP FIN) and over STARTTLS (TLS close_notify, then FIN), sent while mxguard waits
# for the MX's answer to the dot. Before the fix the
# transaction was abandoned after the legs had sent the dot: the client retried, the MX got
# the message twice. A client that goes away before the dot still abandons the transaction.
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

tb_init
tb_start_dns
tb_start_mx mx1 127.0.70.11
tb_start_mx mx2 127.0.70.12
tb_write_config
CERT=$TB/dns/certs/mxguard.test
sed -i "s|^  hostname = \"mxguard.test\";|&\n  tls_cert_file = \"$CERT.crt\";\n  tls_key_file = \"$CERT.key\";|" \
    "$TB/mxguard.conf"
grep -q tls_cert_file "$TB/mxguard.conf" || tb_die "could not edit the configuration"
tb_start_mxguard

# half MODE SUBJECT — one transaction; MODE: plain (FIN after dot+QUIT), tls (STARTTLS;
# close_notify + FIN after dot+QUIT), tls-early (close_notify + FIN in the middle of the body)
half() {
    "$PYTHON" - "$TB_MXG_IP" "$TB_MXG_PORT" "$TB_CLIENT_IP" "$1" "$2" <<'PY'
import socket, ssl, sys
ip, port, src, mode, subject = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
s = socket.create_connection((ip, port), timeout=20, source_address=(src, 0))
buf = b""
tls = None
inc = outg = None
def raw_recv():
    d = s.recv(65536)
    return d
def fill():
    # more plaintext into buf; False at the end of the stream
    global buf
    while True:
        d = raw_recv()
        if tls is None:
            if not d:
                return False
            buf += d
            return True
        if d:
            inc.write(d)
        else:
            inc.write_eof()
        try:
            while True:
                p = tls.read(65536)
                if not p:
                    return False
                buf += p
        except ssl.SSLWantReadError:
            if not d:
                return False
            if buf:
                return True
        except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
            return bool(buf)
def reply():
    global buf
    last = None
    while True:
        while b"\n" not in buf:
            if not fill():
                return "EOF"
        line, buf = buf.split(b"\n", 1)
        if line[3:4] != b"-":
            return line[:3].decode()
def flush():
    d = outg.read()
    if d:
        s.sendall(d)
def send(b):
    if tls is None:
        s.sendall(b)
    else:
        tls.write(b)
        flush()
codes = [reply()]
send(b"EHLO app.client.test\r\n"); codes.append(reply())
if mode.startswith("tls"):
    send(b"STARTTLS\r\n"); codes.append(reply())
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    inc, outg = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(inc, outg, server_hostname="mxguard.test")
    while True:
        try:
            tls.do_handshake()
            break
        except ssl.SSLWantReadError:
            flush()
            d = raw_recv()
            if not d:
                print("handshake-eof"); sys.exit()
            inc.write(d)
    flush()
    send(b"EHLO app.client.test\r\n"); codes.append(reply())
# slowdata*: the MX answers the dot after 5 s, so the half-close surely arrives while
# mxguard waits for that answer (what Exim's pipelined QUIT + shutdown meets in practice)
rcpt = b"RCPT TO:<h@example.test>" if mode == "tls-early" else b"RCPT TO:<slowdata-h@example.test>"
for c in (b"MAIL FROM:<sender@client.test>", rcpt, b"DATA"):
    send(c + b"\r\n"); codes.append(reply())
body = ("Subject: %s\r\n\r\nbody\r\n" % subject).encode()
if mode == "tls-early":
    send(body)
else:
    send(body + b".\r\nQUIT\r\n")
if tls is not None:
    try:
        tls.unwrap()
    except ssl.SSLWantReadError:
        pass
    flush()
s.shutdown(socket.SHUT_WR)
if mode == "tls-early":
    codes.append(reply())
else:
    codes += [reply(), reply(), reply()]
print(" ".join(codes))
PY
}
count() { grep -alE "^Subject: $1"$'\r?$' "$TB/spool/mx1"/*.eml 2>/dev/null | wc -l; }

assert_eq "plaintext: the dot's 250, QUIT's 221, then the close" \
    "220 250 250 250 354 250 221 EOF" "$(half plain hc-plain)"
wait_spool_count "$TB/spool/mx1" 1 10
assert_eq "plaintext: mx1 got the message once" 1 "$(count hc-plain)"

assert_eq "STARTTLS, close_notify after dot+QUIT: the dot's 250, QUIT's 221, then the close" \
    "220 250 220 250 250 250 354 250 221 EOF" "$(half tls hc-tls)"
wait_spool_count "$TB/spool/mx1" 2 10
assert_eq "STARTTLS: mx1 got the message once" 1 "$(count hc-tls)"

mark=$(tb_log_mark)
assert_eq "STARTTLS, close_notify in the middle of the body: no reply, closed" \
    "220 250 220 250 250 250 354 EOF" "$(half tls-early hc-early)"
sleep 1
assert_eq "... and nothing was delivered" 0 "$(count hc-early)"
assert_log "... the session was closed at once" "$mark" "disconnect from .*client closed TLS"
if tb_alive mxguard; then pass "mxguard still runs"; else fail "mxguard died"; fi

tb_finish
