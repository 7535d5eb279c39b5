#!/usr/bin/env bash
# t_faults.sh — fault injection. Each family ends with: mxguard still running
# and its open fds back to the baseline taken after a warm-up.
# 1. The upstream closes (FIN) and resets (RST) the connection at every protocol step (greeting,
#    EHLO, STARTTLS, TLS handshake, EHLO after TLS, MAIL, RCPT, DATA, mid-body, after the final
#    dot before its reply) and hangs at some: the client gets a 4xx (never 250 for a message the
#    MX did not store; the opportunistic TLS-handshake case is delivered through the plaintext
#    retry, docs/ARCHITECTURE.md §Opportunistic TLS), nothing is stored, and the next transaction in
#    the same client session is delivered. DANE: a reset during the handshake or the EHLO after it →
#    451 4.7.x, no plaintext.
# 2. DNS: server slow (SIGSTOP shorter than timeouts.dns: delivered), hanging (SIGSTOP: 451 4.4.3
#    within the timeouts), stopped (451 4.4.3 — also for a null MX and a non-existent domain,
#    never a permanent 5xx), back (permanent answers again).
# 3. The MTA-STS policy host hangs (nginx SIGSTOP): nothing cached → no policy after
#    mta_sts.fetch_timeout, opportunistic delivery; a cached policy whose refresh hangs is kept
#    (451 4.7.5, the MX outside it never contacted).
# 4. The client vanishes mid-DATA (FIN, RST) and while the upstream is busy: nothing delivered,
#    the upstream transaction aborted (the MX saw its connection end without a dot).
# 5. Slow clients: idle before a complete command, trickling one byte at a time, silent in DATA
#    → 421 after timeouts.idle / timeouts.data, nothing delivered.
# 6. Binary garbage and NUL bytes on the command channel → 500 5.5.2 each, 421 after
#    limits.max_errors; a 10 MB header line in DATA → 554 5.6.0, nothing delivered, bounded RSS.
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

tb_init
SECONDS=0
tb_start_dns
tb_start_nginx
tb_start_mx mx1 127.0.70.11 --fault-file "$TB/mx1.fault"     # example.test MX 10
tb_start_mx mx2 127.0.70.12 --fault-file "$TB/mx2.fault"     # other.test's only MX
tb_start_mx dane-ee 127.0.70.21 --fault-file "$TB/dane-ee.fault"
tb_start_sts_mx sts-enforce sts-rotate sts-rotate2
tb_write_config -D 'cache_size = 0;' "$(tb_sts_config 'refresh_min_interval = "0s";')" \
    'limits: { max_errors = 5; data_line_length = 1000; };'
# shorter timeouts than lib.sh's defaults, so that every hang ends within seconds
sed -i -e 's/idle = "10s"/idle = "2s"/' -e 's/data = "10s"/data = "2s"/' \
    -e 's/upstream_command = "5s"/upstream_command = "2s"/' -e 's/final_reply = "8s"/final_reply = "3s"/' \
    -e 's/rcpt_total = "15s"/rcpt_total = "10s"/' -e 's/dns = "3s"/dns = "2s"/' "$TB/mxguard.conf"
tb_start_mxguard
MXG_PID=$(tb_pid mxguard)
MX1=$TB/spool/mx1
MX2=$TB/spool/mx2

# ------------------------------------------------------------------ the client driver
cat >"$TB/fclient.py" <<'PY'
"""fclient.py MODE ... — raw SMTP client for t_faults.sh (prints one line per event)."""
import random, socket, struct, sys, time

SRV = ("127.0.70.1", 10025)
SRC = "127.0.70.100"


class Closed(Exception):
    pass


class C:
    def __init__(self, timeout=30):
        self.s = socket.create_connection(SRV, timeout=timeout, source_address=(SRC, 0))
        self.buf = b""

    def reply(self):
        lines = []
        while True:
            while b"\n" not in self.buf:
                try:
                    d = self.s.recv(65536)
                except (ConnectionResetError, BrokenPipeError):
                    d = b""
                if not d:
                    raise Closed()
                self.buf += d
            l, _, self.buf = self.buf.partition(b"\n")
            l = l.rstrip(b"\r").decode("latin-1")
            lines.append(l)
            if len(l) < 4 or l[3] != "-":
                return l

    def cmd(self, line):
        self.s.sendall(line.encode() + b"\r\n")
        return self.reply()

    def reset(self):
        self.s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.s.close()


def message(tag, size=0):
    body = "".join("line %05d of the test message %s\r\n" % (i, tag) for i in range(max(3, size // 40)))
    return ("From: <sender@client.test>\r\nSubject: %s\r\nMessage-ID: <%s@client.test>\r\n\r\n%s"
            % (tag, tag, body)).encode()


def out(*a):
    print(*a, flush=True)


def txn(argv):
    """txn TAG RCPT[,RCPT] [RCPT...]: one transaction per argument in one session."""
    tag, txns = argv[0], argv[1:]
    c = C()
    c.reply()
    c.cmd("EHLO client.test")
    try:
        for i, rcpts in enumerate(txns, 1):
            t0 = time.time()
            res = {"MAIL": "-", "RCPT": [], "DATA": "-", "DOT": "-"}
            final = None
            r = c.cmd("MAIL FROM:<sender@client.test>")
            res["MAIL"] = r[:3]
            if r[0] == "2":
                for a in rcpts.split(","):
                    r = c.cmd("RCPT TO:<%s>" % a)
                    res["RCPT"].append(r[:3])
                    final = r
                if any(x[0] == "2" for x in res["RCPT"]):
                    r = c.cmd("DATA")
                    res["DATA"] = r[:3]
                    final = r
                    if r[:3] == "354":
                        c.s.sendall(message("%s-%d" % (tag, i)) + b".\r\n")
                        final = c.reply()
                        res["DOT"] = final[:3]
            else:
                final = r
            if final and final[0] != "2":
                c.cmd("RSET")
            out("TXN%d MAIL=%s RCPT=%s DATA=%s DOT=%s SECS=%.1f FINAL=%s" % (
                i, res["MAIL"], "/".join(res["RCPT"]) or "-", res["DATA"], res["DOT"],
                time.time() - t0, final))
        c.cmd("QUIT")
    except Closed:
        out("CLOSED")


def vanish(argv):
    """vanish RCPT STAGE HOW: leave (fin|rst) at STAGE: data (mid-body), rcpt (before its reply)."""
    rcpt, stage, how = argv
    c = C()
    c.reply()
    c.cmd("EHLO client.test")
    c.cmd("MAIL FROM:<sender@client.test>")
    if stage == "rcpt":
        c.s.sendall(("RCPT TO:<%s>\r\n" % rcpt).encode())
        time.sleep(0.5)
    else:
        out("RCPT " + c.cmd("RCPT TO:<%s>" % rcpt))
        out("DATA " + c.cmd("DATA"))
        m = message("vanish-%s-%s" % (stage, how), 20000)
        c.s.sendall(m[: len(m) // 2])
        time.sleep(0.5)
    if how == "rst":
        c.reset()
    else:
        c.s.close()
    out("LEFT")


def slow(argv):
    """slow MODE [INTERVAL]: idle (half a command, then silence), trickle (one byte of a
    never-ending command line per INTERVAL), data (silence after 354). Prints what the server
    said and when, relative to the last complete exchange."""
    mode = argv[0]
    interval = float(argv[1]) if len(argv) > 1 else 0.5
    c = C(timeout=20)
    c.reply()
    c.cmd("EHLO client.test")
    if mode == "data":
        c.cmd("MAIL FROM:<sender@client.test>")
        out("RCPT " + c.cmd("RCPT TO:<a@example.test>"))
        out("DATA " + c.cmd("DATA"))
        c.s.sendall(message("slow-data")[:100])
    t0 = time.time()
    try:
        if mode == "idle":
            c.s.sendall(b"NO")
        elif mode == "trickle":
            c.s.setblocking(False)
            line = b"NOOP " + b"x" * 400
            i = 0
            while time.time() - t0 < 6:
                try:
                    c.s.send(line[i % len(line):i % len(line) + 1])
                    i += 1
                except (BlockingIOError, BrokenPipeError, ConnectionResetError):
                    pass
                time.sleep(interval)
                try:
                    d = c.s.recv(65536)
                    if not d:
                        raise Closed()
                    c.buf += d
                    if b"\n" in c.buf:
                        break
                except BlockingIOError:
                    pass
            c.s.setblocking(True)
            c.s.settimeout(5)
            out("SENT %d bytes in %.1f s" % (i, time.time() - t0))
        r = c.reply()
        out("REPLY %.1f %s" % (time.time() - t0, r))
        c.reply()
        out("OPEN")
    except Closed:
        out("CLOSED %.1f" % (time.time() - t0))
    except socket.timeout:
        out("TIMEOUT %.1f" % (time.time() - t0))


def garbage(argv):
    """garbage N: EHLO, then N lines of binary garbage (NUL and 8-bit octets) in one write."""
    n = int(argv[0])
    rnd = random.Random(9)
    c = C(timeout=10)
    c.reply()
    c.cmd("EHLO client.test")
    lines = []
    for i in range(n):
        g = bytes(rnd.randrange(256) for _ in range(rnd.randrange(5, 120)))
        g = g.replace(b"\n", b"\0").replace(b"\r", b"\0")
        lines.append(b"\0" + g if i % 2 else g + b"\0")
    try:
        c.s.sendall(b"\r\n".join(lines) + b"\r\n")
    except OSError as e:
        out("SEND %s" % e)
    try:
        while True:
            out("REPLY " + c.reply())
    except Closed:
        out("CLOSED")
    except socket.timeout:
        out("TIMEOUT")


def nul(argv):
    """nul: commands with NUL bytes inside, each alone, then a clean NOOP."""
    c = C(timeout=10)
    c.reply()
    c.cmd("EHLO client.test")
    try:
        for raw in (b"NOOP\0\r\n", b"MAIL FROM:<a\0b@client.test>\r\n", b"\0\0\0\0\r\n", b"NOOP\r\n"):
            c.s.sendall(raw)
            out("REPLY " + c.reply())
        c.cmd("QUIT")
    except Closed:
        out("CLOSED")


def longline(argv):
    """longline OCTETS: a message whose Subject: line is OCTETS long, sent in 64 KiB writes."""
    n = int(argv[0])
    c = C(timeout=30)
    c.reply()
    c.cmd("EHLO client.test")
    c.cmd("MAIL FROM:<sender@client.test>")
    out("RCPT " + c.cmd("RCPT TO:<a@example.test>"))
    out("DATA " + c.cmd("DATA"))
    t0 = time.time()
    c.s.sendall(b"From: <sender@client.test>\r\nSubject: ")
    chunk = b"x" * 65536
    sent = 0
    try:
        while sent < n:
            k = min(len(chunk), n - sent)
            c.s.sendall(chunk[:k])
            sent += k
        c.s.sendall(b"\r\nMessage-ID: <longline@client.test>\r\n\r\nbody\r\n.\r\n")
        out("DOT %.1f %s" % (time.time() - t0, c.reply()))
        out("NOOP " + c.cmd("NOOP"))
    except (Closed, OSError) as e:
        out("CLOSED after %d octets: %r" % (sent, e))


{"txn": txn, "vanish": vanish, "slow": slow, "garbage": garbage, "nul": nul,
 "longline": longline}[sys.argv[1]](sys.argv[2:])
PY

# fc NAME MODE ARGS... — run the driver, output in $TB/NAME.fc
fc() {
    local name=$1; shift
    timeout 60 "$PYTHON" "$TB/fclient.py" "$@" >"$TB/$name.fc" 2>&1
    echo "# $name: $(tr '\n' ';' <"$TB/$name.fc" | cut -c1-400)"
}
fc_line() { grep -m1 "^$2" "$TB/$1.fc"; } # fc_line NAME PREFIX
# fc_final NAME N — the final reply of transaction N ("451 4.4.2 ...")
fc_final() { sed -n "s/^TXN$2 .* FINAL=//p" "$TB/$1.fc"; }
mail_count() { local n; n=$(grep -c '< MAIL FROM' "$TB/$1.log" 2>/dev/null); echo $((n)); }

# family_end NAME — mxguard still running, fds back to the baseline
family_end() {
    if tb_alive mxguard && [ "$(tb_pid mxguard)" = "$MXG_PID" ]; then pass "$1: mxguard still running"
    else fail "$1: mxguard died"; tb_finish; fi
    if tb_wait_fds mxguard "$FD0" 10; then pass "$1: open fds back to the baseline ($TB_FDS <= $FD0)"
    else fail "$1: $TB_FDS open fds, baseline $FD0: $(ls -l "/proc/$MXG_PID/fd" | tail -n +2 | awk '{print $NF}' | sed 's/[0-9]*\]$/]/' | sort | uniq -c | tr '\n' ';')"; fi
}

fc warm txn warm a@example.test b@other.test
assert_eq "warm-up: both transactions delivered" "250 250" "$(sed -n 's/.* DOT=\([0-9-]*\) .*/\1/p' "$TB/warm.fc" | tr '\n' ' ' | sed 's/ $//')"
sleep 0.5
FD0=$(tb_fds mxguard)
RSS0=$(tb_mem mxguard VmRSS)
echo "# mxguard pid $MXG_PID: $FD0 open fds, RSS $RSS0 kB after the warm-up"

# ================================================================ 1. upstream faults
echo "# --- 1. upstream closes, resets and hangs at every step (t=${SECONDS}s)"
n1=$(spool_count "$MX1")
n2=$(spool_count "$MX2")
for action in close rst; do
    for step in greeting ehlo starttls tls ehlo-tls mail rcpt data body dot; do
        k="$step-$action"
        tb_mx_fault mx2 "$step $action"
        fc "up-$k" txn "up-$k" "f@other.test" "a@example.test"
        tb_mx_fault mx2 none
        assert_file_grep "$k: the fault fired at mx2" "$TB/mx2.log" "fault: $action at $step\$"
        r=$(fc_final "up-$k" 1)
        if [ "$step" = tls ]; then
            # opportunistic: one plaintext retry (docs/ARCHITECTURE.md §Opportunistic TLS):
            # delivered, once, in plaintext
            assert_reply "$k: delivered through the plaintext retry" "$r" "250"
            n2=$((n2 + 1))
            m=$(spool_last "$MX2")
            [ -n "$m" ] && assert_eq "$k: the retry was plaintext" null "$(json_get "$m.json" tls)"
        else
            assert_match "$k: 4xx 4.4.x, never 250 ($r)" "$r" '^4[0-9][0-9] 4\.4\.[0-9]+ '
        fi
        assert_file_count "$MX2" "$n2" "$k: mx2 stored only what was accepted"
        n1=$((n1 + 1))
        assert_reply "$k: the next transaction in the session is delivered" "$(fc_final "up-$k" 2)" "250"
        assert_file_count "$MX1" "$n1" "$k: mx1 got that one"
    done
done
r=$(fc_final up-dot-rst 1)
assert_reply "reset after the dot, before the reply: 451 4.4.2" "$r" "451 4.4.2"

for step in greeting rcpt dot; do
    tb_mx_fault mx2 "$step hang"
    fc "hang-$step" txn "hang-$step" "f@other.test"
    tb_mx_fault mx2 none
    r=$(fc_final "hang-$step" 1)
    secs=$(sed -n 's/^TXN1 .* SECS=\([0-9.]*\) .*/\1/p' "$TB/hang-$step.fc")
    assert_match "hang at $step: 4xx 4.4.x ($r)" "$r" '^4[0-9][0-9] 4\.4\.[0-9]+ '
    assert_match "hang at $step: answered within the timeouts (${secs}s)" "$secs" '^[2-5]\.[0-9]$'
done
assert_file_count "$MX2" "$n2" "hangs: mx2 stored nothing"
tb_mx_fault mx2 "dot hang"
fc "hang-dot-vanish" vanish "f@other.test" data fin # (client leaves while the MX hangs mid-body)
tb_mx_fault mx2 none

for step in tls ehlo-tls; do
    tb_mx_fault dane-ee "$step rst"
    fc "dane-$step" txn "dane-$step" "a@dane-ee.test"
    tb_mx_fault dane-ee none
    assert_file_grep "DANE $step: the fault fired" "$TB/dane-ee.log" "fault: rst at $step\$"
done
assert_reply "DANE, reset during the handshake: 451 4.7.x" "$(fc_final dane-tls 1)" "451 4.7."
assert_reply "DANE, reset at the EHLO after TLS: 451 4.4.x" "$(fc_final dane-ehlo-tls 1)" "451 4.4."
assert_no_mail "DANE resets: no MAIL, nothing in plaintext" dane-ee

# A failure while setting up the connection makes mxguard try the next MX (example.test: MX 10
# mx1, MX 20 mx2) — also when the MX ends its TLS session (close_notify + FIN) at the EHLO
# after STARTTLS or at MAIL, not only for a plain TCP close/reset.
for f in "ehlo rst" "ehlo-tls rst" "mail rst" "ehlo-tls close" "mail close"; do
    k=${f// /-}
    n2=$(spool_count "$MX2")
    tb_mx_fault mx1 "$f"
    fc "next-$k" txn "next-$k" "a@example.test"
    tb_mx_fault mx1 none
    r=$(fc_final "next-$k" 1)
    case $f in
        *close) assert_reply "BUG proxy/outbound/leg_chat.c leg_conn_read (TLS EOF/error in set-up states -> leg_txn_lost, no next MX): MX 10 $f -> delivered via MX 20" "$r" "250" ;;
        *) assert_reply "MX 10 $f -> delivered via MX 20" "$r" "250" ;;
    esac
    [[ "$r" == 250* ]] && assert_file_count "$MX2" $((n2 + 1)) "$f: mx2 got it"
done
family_end "upstream faults"

# ================================================================ 2. DNS
echo "# --- 2. DNS slow, hanging, stopped (t=${SECONDS}s)"
tb_signal nsd STOP
( sleep 1; tb_signal nsd CONT ) &
bg=$!
fc dns-slow txn dns-slow a@implicit.test
wait $bg
assert_reply "DNS answering after 1 s (< timeouts.dns): delivered" "$(fc_final dns-slow 1)" "250"
tb_signal nsd STOP
fc dns-hang txn dns-hang a@example.test
tb_signal nsd CONT
r=$(fc_final dns-hang 1)
secs=$(sed -n 's/^TXN1 .* SECS=\([0-9.]*\) .*/\1/p' "$TB/dns-hang.fc")
assert_reply "DNS server hanging (SIGSTOP): 451 4.4.3" "$r" "451 4.4.3"
assert_match "DNS hanging: answered within the timeouts (${secs}s; dns 2 s, rcpt_total 10 s)" "$secs" '^[2-9]\.[0-9]$'
tb_stop nsd
fc dns-stop txn dns-stop a@example.test a@nullmx.test a@nosuch.test
assert_reply "DNS server stopped: 451 4.4.3" "$(fc_final dns-stop 1)" "451 4.4.3"
assert_reply "DNS stopped, null MX domain: 451 4.4.3 (not 556)" "$(fc_final dns-stop 2)" "451 4.4.3"
assert_reply "DNS stopped, non-existent domain: 451 4.4.3 (not 550)" "$(fc_final dns-stop 3)" "451 4.4.3"
tb_start_dns
fc dns-back txn dns-back a@example.test a@nullmx.test a@nosuch.test
assert_reply "DNS back: delivered" "$(fc_final dns-back 1)" "250"
assert_reply "DNS back: null MX 556 5.1.10" "$(fc_final dns-back 2)" "556 5.1.10"
assert_reply "DNS back: NXDOMAIN 550 5.1.2" "$(fc_final dns-back 3)" "550 5.1.2"
family_end "DNS faults"

# ================================================================ 3. MTA-STS policy host hangs
echo "# --- 3. MTA-STS policy host hanging (t=${SECONDS}s)"
fc sts-a txn sts-a a@sts-rotate.test
assert_reply "sts-rotate (policy a fetched): delivered" "$(fc_final sts-a 1)" "250"
tb_dns_swap sts-rotate.test b # new id rotate2, new MX mx2.sts-rotate.test (not in the cached policy)
tb_sts_policy sts-rotate.test b # served once the host is back
tb_signal nginx STOP
MARK=$(tb_log_mark)
fc sts-hang-new txn sts-hang-new a@sts-enforce.test
fc sts-hang-cached txn sts-hang-cached a@sts-rotate.test
tb_signal nginx CONT
r=$(fc_final sts-hang-new 1)
secs=$(sed -n 's/^TXN1 .* SECS=\([0-9.]*\) .*/\1/p' "$TB/sts-hang-new.fc")
assert_reply "policy host hangs, nothing cached: no policy, delivered" "$r" "250"
# (the TCP connect succeeds — the kernel accepts for a stopped nginx — and the TLS handshake
# hangs: mta_sts.connect_timeout (2 s) covers TCP + TLS, fetch_timeout (3 s) the whole fetch)
assert_match "... after mta_sts.connect_timeout..fetch_timeout (2..3 s; took ${secs}s)" "$secs" '^([2-3]\.[0-9]|4\.0)$'
assert_file_count "$TB/spool/sts-enforce" 1 "sts-enforce got it"
assert_log "... the log says the fetch failed" "$MARK" 'sts: sts-enforce\.test: failed '
r=$(fc_final sts-hang-cached 1)
secs=$(sed -n 's/^TXN1 .* SECS=\([0-9.]*\) .*/\1/p' "$TB/sts-hang-cached.fc")
assert_reply "policy host hangs on a refresh: the cached policy still enforced (451 4.7.5)" "$r" "451 4.7.5"
assert_match "... within the timeouts (took ${secs}s)" "$secs" '^[0-9]\.[0-9]$'
assert_no_connect "the MX outside the cached policy was never contacted" sts-rotate2
assert_log "... the log says the cached policy was kept" "$MARK" \
    'sts-rotate\.test: policy mode=enforce .*cached policy kept: refresh failed'
fc sts-back txn sts-back a@sts-rotate.test
assert_reply "policy host back: policy b fetched, delivered to its MX" "$(fc_final sts-back 1)" "250"
assert_file_count "$TB/spool/sts-rotate2" 1 "mx2.sts-rotate.test got it"
family_end "MTA-STS host hanging"

# ================================================================ 4. client vanishes
echo "# --- 4. client vanishing (t=${SECONDS}s)"
n1=$(spool_count "$MX1")
c1=$(grep -c 'connection lost during DATA' "$TB/mx1.log")
MARK=$(tb_log_mark)
fc van-fin vanish a@example.test data fin
fc van-rst vanish a@example.test data rst
sleep 1
assert_file_count "$MX1" "$n1" "client vanished mid-DATA (FIN, RST): nothing delivered"
assert_eq "mx1 saw both upstream transactions aborted mid-DATA" $((c1 + 2)) "$(grep -c 'connection lost during DATA' "$TB/mx1.log")"
assert_log "mxguard logs the abandoned transaction" "$MARK" 'vanished in state data'
tb_mx_fault mx2 "rcpt hang"
fc van-rcpt vanish f@other.test rcpt rst
tb_mx_fault mx2 none
fc van-after txn van-after a@example.test
assert_reply "after the vanishing clients: delivered" "$(fc_final van-after 1)" "250"
family_end "client vanishing"

# ================================================================ 5. slow clients
echo "# --- 5. slow clients (timeouts.idle = timeouts.data = 2 s) (t=${SECONDS}s)"
fc slow-idle slow idle
assert_match "half a command, then silence: 421 after ~2 s" "$(fc_line slow-idle REPLY)" '^REPLY [2-3]\.[0-9] 421 4\.4\.2 '
assert_match "... and the connection closed" "$(tail -n 1 "$TB/slow-idle.fc")" '^CLOSED'
n1=$(spool_count "$MX1")
fc slow-data slow data
assert_match "silent in DATA: 421 after ~2 s" "$(fc_line slow-data REPLY)" '^REPLY [2-3]\.[0-9] 421 4\.4\.2 '
sleep 0.5
assert_file_count "$MX1" "$n1" "silent in DATA: nothing delivered"
fc slow-trickle slow trickle 0.5
# timeouts.idle is "waiting for the client's next command": a byte every 0.5 s must not keep a
# session whose command never completes open for ever.
assert_match "BUG session.c sess_read (timeouts.idle re-armed on every read): trickling one byte per 0.5 s of a never-ending command line: 421 within 2 s + slack" \
    "$(fc_line slow-trickle REPLY)" '^REPLY [2-4]\.[0-9] 421 '
family_end "slow clients"

# ================================================================ 6. garbage, NUL, 10 MB line
echo "# --- 6. garbage on the command channel, a 10 MB header line (t=${SECONDS}s)"
fc garbage garbage 12
codes=$(sed -n 's/^REPLY \([0-9]*\) .*/\1/p' "$TB/garbage.fc" | tr '\n' ' ' | sed 's/ $//')
assert_eq "12 garbage lines: 500 x 6, then 421 (limits.max_errors = 5)" "500 500 500 500 500 500 421" "$codes"
assert_eq "... and the connection closed" CLOSED "$(tail -n 1 "$TB/garbage.fc")"
fc nul nul
assert_eq "NUL bytes inside commands: 500 5.5.2 each; NOOP afterwards 250" \
    "500 5.5.2|500 5.5.2|500 5.5.2|250 2.0.0" \
    "$(sed -n 's/^REPLY \([0-9]* [0-9.]*\) .*/\1/p' "$TB/nul.fc" | tr '\n' '|' | sed 's/|$//')"
n1=$(spool_count "$MX1")
HWM0=$(tb_mem mxguard VmHWM)
fc long longline 10485760
HWM1=$(tb_mem mxguard VmHWM)
assert_match "10 MB header line: 554 5.6.0" "$(fc_line long DOT)" '^DOT [0-9.]+ 554 5\.6\.0 '
assert_reply "the session goes on (NOOP)" "$(fc_line long NOOP | cut -d' ' -f2-)" "250"
sleep 0.5
assert_file_count "$MX1" "$n1" "10 MB header line: nothing delivered"
grow=$(( (HWM1 - HWM0) / 1024 ))
echo "# mxguard peak RSS $HWM0 kB -> $HWM1 kB during the 10 MB line"
if [ "${TB_SANITIZED:-0}" = 1 ]; then # ASan's quarantine holds every freed buffer for a while
    assert_match "10 MB line: peak RSS grew by ${grow} MB (< 64 MB under ASan)" "$grow" '^[0-5]?[0-9]$|^6[0-3]$'
else
    assert_match "10 MB line: peak RSS grew by ${grow} MB (< 4 MB: bounded buffers)" "$grow" '^[0-3]$'
fi
family_end "garbage and long lines"
echo "# mxguard RSS: $RSS0 kB after the warm-up, $(tb_mem mxguard VmRSS) kB at the end, peak $(tb_mem mxguard VmHWM) kB"

echo "# t=${SECONDS}s"
tb_finish
