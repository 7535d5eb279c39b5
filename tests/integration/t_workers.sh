#!/usr/bin/env bash
# t_workers.sh — server.workers = 2 (app/run_workers.c, docs/ARCHITECTURE.md §Workers):
#  1. load: 60 client sessions (12 at a time, 3 messages each, 180 messages) → every message
#     got 250 and reached the MX exactly once; /metrics (served by worker 0) shows from the
#     per-worker counters that both workers relayed mail, and the summed counters add up;
#     session ids (S<worker>-<count>) are unique across the workers.
#  2. AUTH ("Keep the promise" burst of t_inbound_abuse.sh, with 2 workers): 40 parallel
#     sessions from one address with a wrong password reach both workers, yet get at most
#     auth.max_failures password checks in all — the throttle is process-wide; the locked user
#     still gets in from the address it authenticated from before (trusted addresses are
#     shared too), a fresh address gets 454 4.7.0.
#  3. SIGHUP to the master: both workers reload (a narrower server.allow_networks refuses every
#     new session with 554 5.7.1, whichever worker takes it; and back).
#     The master removed a crash's spool leftovers before forking and holds the spool's lock;
#     a second instance on the same state.directory refuses to start (no SO_REUSEPORT sharing).
#  4. A worker killed with SIGKILL is logged and restarted; mail flows through it again and
#     mxguard_worker_restarts_total counts it; it does not clean the spool (a .tmp survives).
#  5. queue mode (server.queue_listen; the spool is scanned every 10 minutes only): messages
#     stored by either worker are delivered at once by worker 0's queue runner (kicked through
#     the master), each exactly once.
#  6. limits.destination_concurrency = 2 (set by SIGHUP) with 2 workers: 6 sessions at once
#     whose MX holds each connection 2 s → at most 2 connections at the MX, all delivered.
#     A reload of a file with workers = 1 and destination_concurrency = 1 is refused (server.workers
#     is not live: 1 share of 2 would be 0 = unlimited); the limit stays 2.
#  7. SIGTERM to the whole process group (as systemd's control-group kill): a transaction in
#     flight finishes with 250 (the master's forward and the group's signal are one stop, not
#     "again: now"), every worker drains, the master exits 0; a second SIGTERM to the master
#     closes the sessions at once (the client holding its dot gets no 250).
#  8. Started as root with server.user = "nobody": a queue-mode message stored by worker 1 is
#     delivered at once (the worker kicks worker 0 directly: it may not signal the root master);
#     SIGKILL to the master stops both workers (PR_SET_PDEATHSIG set again after the drop).
#  9. server.drain_timeout = 1s, worker 1 stopped (SIGSTOP): SIGTERM to the master kills it after
#     1 s + 3 s; the master exits 1.
#  0. server.workers defaults to "auto" (online CPUs less one, 1 to 8): `config check -v` says
#     what it became.
# Client addresses: 127.0.70.100 (mail), .110 attacker, .111 the user's usual address, .112 fresh.
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

tb_init
SECONDS=0
tb_start_dns
tb_start_mx mx1 127.0.70.11 # example.test
tb_start_mx mx2 127.0.70.12 --slowdata-secs 2 # slowdata*: the final reply after 2 s
MX1=$TB/spool/mx1
METRICS_ADDR="$TB_MXG_IP:9125"
ATTACKER=127.0.70.110
TRUSTED=127.0.70.111
FRESH=127.0.70.112
QPORT=10026
MX2=$TB/spool/mx2
b64() { printf '%b' "$1" | base64 -w0; }
PLAIN_ALICE=$(b64 '\0alice\0alice-pw')
PLAIN_WRONG=$(b64 '\0alice\0guess')
echo "alice:$(openssl passwd -6 alice-pw)" >"$TB/users"
chmod 600 "$TB/users"

# cfg ALLOW [LINE...] — the test-bed config with 2 workers, metrics, AUTH, a queue-mode
# listener (the spool is scanned only every 10 minutes: a message gets out at once only when
# the worker that stored it has the queue runner of worker 0 kicked through the master),
# server.allow_networks = ALLOW, LINEs appended
cfg() {
    local allow=$1
    shift
    MXG_TEST_WORKERS= tb_write_config \
        "metrics: { listen = \"$METRICS_ADDR\"; allow_networks = [\"127.0.70.0/25\"]; };" \
        "auth: { password_file = \"$TB/users\"; allow_plaintext_loopback = true;
                 max_failures = 5; max_user_failures = 5; failure_window = \"1m\";
                 lockout = \"1m\"; failure_delay = \"0s\"; };" \
        "queue: { scan_interval = \"10m\"; };" "$@"
    sed -i -e "s|^  allow_networks = \[\"127.0.70.0/25\"\];$|  allow_networks = [\"$allow\"];\n  workers = 2;\n  queue_listen = [\"$TB_MXG_IP:$QPORT\"];|" \
        "$TB/mxguard.conf"
    grep -q '^  workers = 2;' "$TB/mxguard.conf" || tb_die "could not edit the configuration"
}

cat >"$TB/client.py" <<'PY'
import socket, sys, threading, time

class C:
    def __init__(self, port, src, timeout=20):
        self.s = socket.create_connection(("127.0.70.1", port), timeout=timeout,
                                          source_address=(src, 0))
        self.buf = b""
    def reply(self):
        while True:
            while b"\n" not in self.buf:
                d = self.s.recv(4096)
                if not d:
                    return "CLOSED"
                self.buf += d
            line, self.buf = self.buf.split(b"\n", 1)
            if line[3:4] != b"-":
                return line.decode("latin-1").strip()
    def cmd(self, c):
        self.s.sendall(c + b"\r\n")
        return self.reply()

mode, port, src = sys.argv[1], int(sys.argv[2]), sys.argv[3]
if mode == "load":  # load PORT SRC TAG SESSIONS CONCURRENCY MESSAGES [RCPT%d] — unique Subjects
    tag, n, conc, per = sys.argv[4], int(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7])
    rcpt = sys.argv[8] if len(sys.argv) > 8 else "u%d@example.test"
    lock = threading.Lock()
    res = {"ok": 0, "bad": []}
    todo = list(range(n))
    def worker():
        while True:
            with lock:
                if not todo:
                    return
                i = todo.pop()
            try:
                c = C(port, src, timeout=90)
                g = c.reply()
                if not g.startswith("220"):
                    raise Exception("greeting " + g)
                c.cmd(b"EHLO client.test")
                for k in range(per):
                    subj = "%s-%d-%d" % (tag, i, k)
                    r = [c.cmd(b"MAIL FROM:<s@client.test>"), c.cmd(b"RCPT TO:<" + (rcpt % i).encode() + b">"),
                         c.cmd(b"DATA")]
                    c.s.sendall(b"Subject: " + subj.encode() + b"\r\n\r\nbody\r\n.\r\n")
                    r.append(c.reply())
                    with lock:
                        if r[3].startswith("250"):
                            res["ok"] += 1
                        else:
                            res["bad"].append("%s:%s" % (subj, "|".join(r)))
                c.cmd(b"QUIT")
            except Exception as e:
                with lock:
                    res["bad"].append("session %d: %r" % (i, e))
    ts = [threading.Thread(target=worker) for _ in range(conc)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    print("OK=%d" % res["ok"])
    print("BAD=%d" % len(res["bad"]))
    for b in res["bad"][:5]:
        print("# " + b)
elif mode == "greet":  # greet PORT SRC N — N sessions, the first reply of each
    out = []
    for _ in range(int(sys.argv[4])):
        try:
            out.append(C(port, src).reply()[:9])
        except Exception as e:
            out.append("ERR")
    print("REPLIES=%s" % ",".join(sorted(set(out))))
elif mode == "auth":  # auth PORT SRC B64 — one AUTH PLAIN
    c = C(port, src)
    c.reply()
    c.cmd(b"EHLO client.test")
    print("AUTH=%s" % c.cmd(b"AUTH PLAIN " + sys.argv[4].encode()))
elif mode == "burst":  # burst PORT SRC B64 N — N sessions at once, one AUTH PLAIN each
    cred, n = sys.argv[4].encode(), int(sys.argv[5])
    bar = threading.Barrier(n)
    out = []
    def one():
        try:
            c = C(port, src)
            c.reply()
            c.cmd(b"EHLO client.test")
            bar.wait(10)
            out.append(c.cmd(b"AUTH PLAIN " + cred)[:3])
        except Exception as e:
            out.append("ERR %r" % (e,))
    ts = [threading.Thread(target=one) for _ in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    for code in ("235", "535", "421", "454"):
        print("N%s=%d" % (code, sum(1 for o in out if o == code)))
    print("OTHER=%s" % ",".join(o for o in out if o not in ("235", "535", "421", "454")))
elif mode == "slow":  # slow PORT SRC SUBJECT SECONDS — a transaction whose dot comes late
    c = C(port, src, timeout=30)
    c.reply()
    c.cmd(b"EHLO client.test")
    c.cmd(b"MAIL FROM:<s@client.test>")
    c.cmd(b"RCPT TO:<slow@example.test>")
    print("DATA=%s" % c.cmd(b"DATA"), flush=True)
    c.s.sendall(b"Subject: " + sys.argv[4].encode() + b"\r\n\r\nfirst half\r\n")
    time.sleep(float(sys.argv[5]))
    c.s.sendall(b"second half\r\n.\r\n")
    print("DOT=%s" % c.reply())
PY
client() { local n=$1; shift; "$PYTHON" "$TB/client.py" "$@" >"$TB/$n.cl" 2>&1; }
cv() { sed -n "s/^$2=//p" "$TB/$1.cl" | head -n 1; }

# scrape NAME — GET /metrics into $TB/NAME.metrics
scrape() {
    "$PYTHON" - "$TB_MXG_IP" 9125 "$TB_CLIENT_IP" "$TB/$1.metrics" <<'PY'
import http.client, sys
ip, port, src, out = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
c = http.client.HTTPConnection(ip, port, timeout=5, source_address=(src, 0))
c.request("GET", "/metrics")
open(out, "wb").write(c.getresponse().read())
PY
}
# metric NAME SERIES — its value in scrape NAME (0 if absent)
metric() { awk -v s="$2" '$1 == s { v = $2 } END { print v == "" ? 0 : v }' "$TB/$1.metrics"; }
W0='mxguard_worker_relayed_total{worker="0"}'
W1='mxguard_worker_relayed_total{worker="1"}'
S0='mxguard_worker_sessions_total{worker="0"}'
S1='mxguard_worker_sessions_total{worker="1"}'
# subjects TAG [DIR] — "unique duplicates" of the messages with Subject TAG-* at mx1 (or DIR)
subjects() {
    cat "${2:-$MX1}"/*.eml 2>/dev/null | tr -d '\r' | sed -n "s/^Subject: \($1-[0-9]*-[0-9]*\)$/\1/p" |
        sort | uniq -c | awk '{ u++; if ($1 > 1) d += $1 - 1 } END { print u + 0, d + 0 }'
}
# wait_workers N — until N workers logged "worker I of 2 (pid P) started" (10 s)
wait_workers() {
    local i
    for i in $(seq 100); do
        [ "$(grep -c 'worker [0-9] of 2 (pid [0-9]*) started' "$TB/mxguard.log")" -ge "$1" ] && return 0
        sleep 0.1
    done
    return 1
}
worker_pid() { sed -n "s/.*worker $1 started (pid \([0-9]*\)).*/\1/p" "$TB/mxguard.log" | tail -n 1; }

# ================================================================ 0. "auto"
echo "# --- 0. the default is \"auto\": the online CPUs less one (1 to 8); config check -v says so"
cpus=$(getconf _SC_NPROCESSORS_ONLN)
auto=$((cpus - 1 > 8 ? 8 : cpus - 1 < 1 ? 1 : cpus - 1))
MXG_TEST_WORKERS= tb_write_config -o "$TB/auto.conf"
assert_contains "config check -v: what \"auto\" became ($cpus CPUs)" \
    "$("$MXG_BIN" config check -v -c "$TB/auto.conf" 2>&1)" \
    "workers = \"auto\"; # \"auto\": $auto worker"
cfg 127.0.70.0/25
# ================================================================ 0. a start-up error
echo "# --- 0. a worker that cannot start stops the server (metrics.listen taken)"
"$PYTHON" -c 'import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.70.1", 9125)); s.listen(1); print("up", flush=True); time.sleep(60)' >"$TB/squat.out" &
squat=$!
for i in $(seq 50); do grep -q up "$TB/squat.out" && break; sleep 0.1; done
tb_start_mxguard_fails -n mxguard0 15
kill "$squat"; wait "$squat" 2>/dev/null
assert_eq "the master exited 1" 1 "$MXG_EXIT"
assert_log "the master said why" 0 "worker 0 \(pid [0-9]+\) exited with status 1 before it served: stopping" mxguard0
assert_log "and stopped" 0 "master: every worker stopped \(status 1\)" mxguard0

# a crash's leftovers: an orphan body and an envelope's temporary file
SPOOL=$TB/state/spool
mkdir -p "$SPOOL"
echo orphan >"$SPOOL/0000000000001-0000-1.msg"
echo tmp >"$SPOOL/0000000000001-0000-2.env.tmp"
tb_start_mxguard
wait_workers 2 || tb_die "two workers did not start"
assert_log "the master started 2 workers" 0 "master \(pid [0-9]+\) starting 2 workers"
assert_eq "the leftovers were removed at the start" "0 0" \
    "$(ls "$SPOOL" | grep -c '^0000000000001-0000-1.msg$') $(ls "$SPOOL" | grep -c '\.tmp$')"
# the master holds the spool's lock for its lifetime: no worker (restarted or not) ever
# cleans the spool while another writes into it
lockino=$(stat -c %i "$SPOOL/lock")
lockpid=$(awk -v i=":$lockino" '$2 == "FLOCK" && substr($6, length($6) - length(i) + 1) == i { print $5 }' /proc/locks | head -n 1)
assert_eq "the spool lock is held by the master" "$(tb_pid mxguard)" "$lockpid"
# a second instance on the same state.directory does not join the ports (SO_REUSEPORT)
tb_start_mxguard_fails -n mxguard2 15
assert_eq "a second instance exits 1" 1 "$MXG_EXIT"
assert_log "and says why" 0 "spool .* is locked by another process \(a second mxguard on the same state.directory\?\)" mxguard2
assert_no_log "it bound nothing" 0 "bound |listening on" mxguard2
assert_log "each worker keeps half of each upstream limit (defaults 20, 0, 1000)" 0 \
    "each of 2 workers keeps a share of the upstream limits: destination_concurrency 10, destination_rate 0, upstream_connections 500"

# ================================================================ 1. load
echo "# --- 1. load over 2 workers"
client load1 load "$TB_MXG_PORT" "$TB_CLIENT_IP" wa 60 12 3
echo "# $(tr '\n' ' ' <"$TB/load1.cl")"
assert_eq "every message got 250" "180,0" "$(cv load1 OK),$(cv load1 BAD)"
wait_spool_count "$MX1" 180 30
assert_eq "every message reached the MX exactly once (unique, duplicates)" "180 0" "$(subjects wa)"
scrape m1
echo "# relayed per worker: $(metric m1 "$W0") $(metric m1 "$W1"); sessions: $(metric m1 "$S0") $(metric m1 "$S1")"
[ "$(metric m1 "$W0")" -gt 0 ] && [ "$(metric m1 "$W1")" -gt 0 ] &&
    pass "both workers relayed mail (per-worker counters)" ||
    fail "both workers relayed mail: worker 0 $(metric m1 "$W0"), worker 1 $(metric m1 "$W1")"
assert_eq "the per-worker counts add up to 180" 180 $(($(metric m1 "$W0") + $(metric m1 "$W1")))
assert_eq "summed: mxguard_transactions_total{outcome=\"delivered\"}" 180 \
    "$(metric m1 'mxguard_transactions_total{outcome="delivered"}')"
assert_eq "summed: mxguard_sessions_total (60 + the start-up probe)" \
    $(($(metric m1 "$S0") + $(metric m1 "$S1"))) "$(metric m1 mxguard_sessions_total)"
ids=$(sed -n 's/.* \(S[0-9A-F-]*\): connect from .*/\1/p' "$TB/mxguard.log")
assert_eq "session ids are unique across the workers" 0 "$(echo "$ids" | sort | uniq -d | wc -l)"
assert_eq "... and name the worker (S0-..., S1-...)" "S0- S1-" \
    "$(echo "$ids" | sed -n 's/^\(S[0-9]-\)[0-9A-F]\{6\}$/\1/p' | sort -u | tr '\n' ' ' | sed 's/ $//')"

# ================================================================ 2. AUTH burst
echo "# --- 2. AUTH throttle across workers"
client first auth "$TB_MXG_PORT" "$TRUSTED" "$PLAIN_ALICE"
assert_reply "the user authenticates from its usual address" "$(cv first AUTH)" "235"
scrape a0
mark=$(tb_log_mark)
client burst burst "$TB_MXG_PORT" "$ATTACKER" "$PLAIN_WRONG" 40
scrape a1
checks=$(tb_log_since "$mark" | grep -c "AUTH PLAIN failed for user 'alice' from $ATTACKER")
d0=$(($(metric a1 "$S0") - $(metric a0 "$S0")))
d1=$(($(metric a1 "$S1") - $(metric a0 "$S1")))
echo "# burst: $(tr '\n' ' ' <"$TB/burst.cl") checks=$checks sessions per worker: $d0 $d1"
[ "$d0" -gt 0 ] && [ "$d1" -gt 0 ] && pass "the burst reached both workers ($d0 + $d1)" ||
    fail "the burst reached both workers ($d0 + $d1)"
[ "$checks" -le 5 ] && [ "$checks" -ge 1 ] &&
    pass "40 parallel sessions on 2 workers, $checks password checks (auth.max_failures = 5)" ||
    fail "40 parallel sessions on 2 workers got $checks password checks (auth.max_failures = 5)"
assert_eq "failures answered (535/421) = checks" "$checks" $(($(cv burst N535) + $(cv burst N421)))
assert_eq "every other session got 454" $((40 - checks)) "$(cv burst N454)"
assert_eq "no success, no error" "0," "$(cv burst N235),$(cv burst OTHER)"
for i in 1 2 3 4; do # whichever worker takes it
    client "trusted$i" auth "$TB_MXG_PORT" "$TRUSTED" "$PLAIN_ALICE"
    client "fresh$i" auth "$TB_MXG_PORT" "$FRESH" "$PLAIN_ALICE"
    echo "# trusted: $(cv "trusted$i" AUTH); fresh: $(cv "fresh$i" AUTH)"
done
assert_eq "the user's usual address still authenticates (4 sessions)" "235,235,235,235" \
    "$(cv trusted1 AUTH | cut -c1-3),$(cv trusted2 AUTH | cut -c1-3),$(cv trusted3 AUTH | cut -c1-3),$(cv trusted4 AUTH | cut -c1-3)"
assert_eq "a fresh address gets 454 (4 sessions)" "454,454,454,454" \
    "$(cv fresh1 AUTH | cut -c1-3),$(cv fresh2 AUTH | cut -c1-3),$(cv fresh3 AUTH | cut -c1-3),$(cv fresh4 AUTH | cut -c1-3)"

# ================================================================ 3. SIGHUP
echo "# --- 3. SIGHUP reloads every worker"
mark=$(tb_log_mark)
cfg 127.0.70.110/32
kill -HUP "$(tb_pid mxguard)"
sleep 1
assert_eq "both workers reloaded" 2 "$(tb_log_since "$mark" | grep -c 'reload: SIGHUP: reloading')"
client hup1 greet "$TB_MXG_PORT" "$TB_CLIENT_IP" 16
assert_eq "16 new sessions after the reload: all 554 5.7.1" "554 5.7.1" "$(cv hup1 REPLIES)"
cfg 127.0.70.0/25
kill -HUP "$(tb_pid mxguard)"
sleep 1
client hup2 greet "$TB_MXG_PORT" "$TB_CLIENT_IP" 16
assert_eq "16 new sessions after the second reload: all 220" "220 mxgua" "$(cv hup2 REPLIES)"
scrape h1
assert_eq "mxguard_config_reloads_total{result=\"success\"}: once per SIGHUP (worker 0 counts)" 2 \
    "$(metric h1 'mxguard_config_reloads_total{result="success"}')"

# ================================================================ 4. a worker dies
echo "# --- 4. a killed worker is restarted"
pid1=$(worker_pid 1)
[ -n "$pid1" ] || tb_die "no pid for worker 1"
before=$(metric h1 "$W1")
mark=$(tb_log_mark)
echo tmp >"$SPOOL/0000000000003-0000-1.env.tmp" # as an envelope being rewritten by worker 0
kill -KILL "$pid1"
for i in $(seq 50); do
    [ "$(worker_pid 1)" != "$pid1" ] && break
    sleep 0.1
done
assert_log "the master logged the death" "$mark" "worker 1 \(pid $pid1\) killed by Killed: restarting it"
[ "$(worker_pid 1)" != "$pid1" ] && pass "worker 1 restarted (pid $(worker_pid 1))" ||
    fail "worker 1 was not restarted"
wait_workers 3 || fail "the new worker 1 did not log its start"
[ -e "$SPOOL/0000000000003-0000-1.env.tmp" ] &&
    pass "the restarted worker did not clean the spool under the others" ||
    fail "the restarted worker removed another worker's temporary file"
rm -f "$SPOOL/0000000000003-0000-1.env.tmp"
client load2 load "$TB_MXG_PORT" "$TB_CLIENT_IP" wb 30 6 2
assert_eq "60 more messages: every one got 250" "60,0" "$(cv load2 OK),$(cv load2 BAD)"
wait_spool_count "$MX1" 240 30
assert_eq "every one reached the MX exactly once" "60 0" "$(subjects wb)"
scrape k1
assert_eq "mxguard_worker_restarts_total{worker=\"1\"}" 1 \
    "$(metric k1 'mxguard_worker_restarts_total{worker="1"}')"
[ "$(metric k1 "$W1")" -gt "$before" ] &&
    pass "the restarted worker relays (its counts go on: $before → $(metric k1 "$W1"))" ||
    fail "the restarted worker relays ($before → $(metric k1 "$W1"))"

# ================================================================ 5. queue mode
echo "# --- 5. queue-mode listener: stored by either worker, delivered by worker 0's runner"
scrape q0
client qload load "$QPORT" "$TB_CLIENT_IP" wq 20 10 1
assert_eq "20 messages stored (250)" "20,0" "$(cv qload OK),$(cv qload BAD)"
wait_spool_count "$MX1" 260 15
assert_eq "every stored message reached the MX exactly once, without waiting for a scan" \
    "20 0" "$(subjects wq)"
scrape q1
q0d=$(($(metric q1 "$W0") - $(metric q0 "$W0")))
q1d=$(($(metric q1 "$W1") - $(metric q0 "$W1")))
[ "$q0d" -gt 0 ] && [ "$q1d" -gt 0 ] && pass "both workers stored queue-mode mail ($q0d + $q1d)" ||
    fail "both workers stored queue-mode mail ($q0d + $q1d)"
assert_eq "the spool deliveries (worker 0's runner), summed" 20 \
    "$(metric q1 'mxguard_spool_deliveries_total{outcome="delivered"}')"
# one message at a time, each awaited at the MX: one stored by worker 1 gets out only if
# worker 1's kick reaches worker 0's runner through the master (no other traffic kicks it)
late=0
for i in $(seq 10); do
    client "qs$i" load "$QPORT" "$TB_CLIENT_IP" "wr$i" 1 1 1
    wait_spool_count "$MX1" $((260 + i)) 5 || late=$((late + 1))
done
scrape q2
assert_eq "10 messages one at a time: each delivered within 5 s" 0 "$late"
assert_eq "... exactly once" "10 0" \
    "$(for i in $(seq 10); do subjects "wr$i"; done | awk '{ u += $1; d += $2 } END { print u, d }')"
[ "$(metric q2 "$W1")" -gt "$(metric q1 "$W1")" ] &&
    pass "worker 1 stored some of them ($(($(metric q2 "$W1") - $(metric q1 "$W1"))))" ||
    fail "worker 1 stored none of the 10 (the kick path was not exercised)"

# ================================================================ 6. connection limit
echo "# --- 6. limits.destination_concurrency = 2 holds across 2 workers (a share of 1 each)"
mark=$(tb_log_mark)
cfg 127.0.70.0/25 'limits: { destination_concurrency = 2; connection_wait = "40s"; };'
sed -i 's/^  rcpt_total = "15s";$/  rcpt_total = "60s";/' "$TB/mxguard.conf" # legs wait in turn
grep -q 'rcpt_total = "60s"' "$TB/mxguard.conf" || tb_die "could not edit the configuration"
kill -HUP "$(tb_pid mxguard)"
sleep 1
assert_eq "both workers reloaded" 2 "$(tb_log_since "$mark" | grep -c 'reload: SIGHUP: reloading')"
# 6 sessions at once to other.test (mx2), each holding its connection 2 s before the final reply
client lim load "$TB_MXG_PORT" "$TB_CLIENT_IP" wl 6 6 1 'slowdata-%d@other.test'
assert_eq "6 messages: every one got 250" "6,0" "$(cv lim OK),$(cv lim BAD)"
assert_eq "every one reached mx2 exactly once" "6 0" "$(subjects wl "$MX2")"
mc=$(cat "$MX2/max_concurrency" 2>/dev/null || echo 0)
[ "$mc" -ge 1 ] && [ "$mc" -le 2 ] && pass "mx2 saw at most 2 connections at once ($mc)" ||
    fail "mx2 saw $mc connections at once (limit 2)"

# a reload may not turn the limit off: server.workers is not live, so a file that says
# workers = 1 and destination_concurrency = 1 would give each of the 2 running workers
# 1/2 = 0 = unlimited; the reload is refused (master and workers), the limit stays 2
echo "# --- 6b. a reload with a limit below the running worker count is refused"
mark=$(tb_log_mark)
cfg 127.0.70.0/25 'limits: { destination_concurrency = 1; connection_wait = "40s"; };'
sed -i -e 's/^  rcpt_total = "15s";$/  rcpt_total = "60s";/' -e 's/^  workers = 2;$/  workers = 1;/' \
    "$TB/mxguard.conf"
grep -q '^  workers = 1;' "$TB/mxguard.conf" || tb_die "could not edit the configuration"
kill -HUP "$(tb_pid mxguard)"
sleep 1
assert_eq "both workers refused the reload" 2 \
    "$(tb_log_since "$mark" | grep -c 'reload: refused: limits.destination_concurrency: 1 is below the 2 running workers')"
assert_log "the master refused it" "$mark" "reload refused: limits.destination_concurrency: 1 is below the 2 running workers"
client lim2 load "$TB_MXG_PORT" "$TB_CLIENT_IP" wm 6 6 1 'slowdata-%d@other.test'
assert_eq "6 messages: every one got 250" "6,0" "$(cv lim2 OK),$(cv lim2 BAD)"
assert_eq "every one reached mx2 exactly once" "6 0" "$(subjects wm "$MX2")"
mc=$(cat "$MX2/max_concurrency" 2>/dev/null || echo 0)
[ "$mc" -ge 1 ] && [ "$mc" -le 2 ] && pass "mx2 still saw at most 2 connections at once ($mc)" ||
    fail "mx2 saw $mc connections at once after the refused reload (limit 2)"
cfg 127.0.70.0/25 'limits: { destination_concurrency = 2; connection_wait = "40s"; };' # as in 6
sed -i 's/^  rcpt_total = "15s";$/  rcpt_total = "60s";/' "$TB/mxguard.conf"

# ================================================================ 7. SIGTERM drain
echo "# --- 7. SIGTERM to the process group: drain"
mark=$(tb_log_mark)
"$PYTHON" "$TB/client.py" slow "$TB_MXG_PORT" "$TB_CLIENT_IP" drain-1-0 2 >"$TB/slow.cl" 2>&1 &
slowpid=$!
for i in $(seq 50); do grep -q '^DATA=354' "$TB/slow.cl" && break; sleep 0.1; done
mpid=$(tb_pid mxguard)
kill -TERM -- "-$mpid" # the master and both workers, as systemd's control-group kill
wait "$slowpid"
assert_reply "the transaction in flight finished" "$(cv slow DOT)" "250"
for i in $(seq 100); do kill -0 "$mpid" 2>/dev/null || break; sleep 0.1; done
wait "$mpid"
assert_eq "the master exited 0" 0 "$?"
assert_eq "both workers drained" 2 "$(tb_log_since "$mark" | grep -c 'server: drained: all sessions finished')"
assert_no_log "no worker cut the drain short" "$mark" "again: closing all sessions"
assert_log "the master saw every worker stop" "$mark" "master: every worker stopped \(status 0\)"
wait_spool_count "$MX1" 271 10
assert_eq "the drained message reached the MX once" "1 0" "$(subjects drain)"

# a second SIGTERM to the master: the workers' drain deadline is now
echo "# --- 7b. a second SIGTERM to the master closes the sessions at once"
tb_start_mxguard -n mxguard3
mark=$(tb_log_mark mxguard3)
"$PYTHON" "$TB/client.py" slow "$TB_MXG_PORT" "$TB_CLIENT_IP" drain-2-0 6 >"$TB/slow2.cl" 2>&1 &
slowpid=$!
for i in $(seq 50); do grep -q '^DATA=354' "$TB/slow2.cl" && break; sleep 0.1; done
mpid=$(tb_pid mxguard3)
kill -TERM "$mpid"
sleep 0.5
assert_eq "one SIGTERM: the master waits for the transaction in flight" 0 \
    "$(kill -0 "$mpid" 2>/dev/null; echo $?)"
kill -TERM "$mpid"
for i in $(seq 30); do kill -0 "$mpid" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$mpid" 2>/dev/null; then
    fail "the master still runs 3 s after a second SIGTERM (the client holds its dot 6 s)"
else
    pass "a second SIGTERM: the master exited before the transaction in flight ended"
fi
wait "$slowpid"
if [ "$(cv slow2 DOT | cut -c1-3)" = 250 ]; then fail "the closed session's client got a 250"
else pass "the closed session's client got no 250 ($(cv slow2 DOT))"; fi
assert_log "a worker logged why" "$mark" "again: closing all sessions and deliveries now" mxguard3

# ================================================================ 8. server.user
echo "# --- 8. started as root with server.user: the kick, the master's death"
cfg 127.0.70.0/25
sed -i 's/^  hostname = "mxguard.test";$/  hostname = "mxguard.test";\n  user = "nobody";/' \
    "$TB/mxguard.conf"
grep -q 'user = "nobody";' "$TB/mxguard.conf" || tb_die "could not set server.user"
chown nobody "$TB/users" # read as the user
tb_start_mxguard -n mxguard4
for i in $(seq 100); do
    [ "$(grep -c 'worker [0-9] of 2 (pid [0-9]*) started' "$TB/mxguard4.log")" -ge 2 ] && break
    sleep 0.1
done
# a worker that spooled a message kicks worker 0 itself: it may not signal the master (root)
scrape u0
late=0
for i in $(seq 10); do
    client "us$i" load "$QPORT" "$TB_CLIENT_IP" "wu$i" 1 1 1
    wait_spool_count "$MX1" $((271 + i)) 5 || late=$((late + 1))
done
scrape u1
assert_eq "10 queue-mode messages one at a time, the workers unprivileged: each delivered within 5 s" \
    0 "$late"
[ "$(metric u1 "$W1")" -gt "$(metric u0 "$W1")" ] &&
    pass "worker 1 stored some of them ($(($(metric u1 "$W1") - $(metric u0 "$W1"))))" ||
    fail "worker 1 stored none of the 10 (the kick path was not exercised)"
# `queue flush` (it drops to server.user) signals worker 0 itself: the master is root
qpid=$(cat "$TB/state/mxguard-queue.pid" 2>/dev/null)
w0pid=$(sed -n 's/.*worker 0 of 2 (pid \([0-9]*\)) started.*/\1/p' "$TB/mxguard4.log" | tail -n 1)
assert_eq "mxguard-queue.pid holds worker 0's pid" "$w0pid" "$qpid"
OUT=$("$MXG_BIN" queue flush -c "$TB/mxguard.conf" 2>&1)
assert_contains "queue flush as server.user reaches worker 0" "$OUT" "asked mxguard (pid $w0pid) to scan the spool now"
# the privilege drop clears PR_SET_PDEATHSIG: it is set again after it
wpids=$(sed -n 's/.*worker [0-9] started (pid \([0-9]*\)).*/\1/p' "$TB/mxguard4.log" | tr '\n' ' ')
[ "$(echo $wpids | wc -w)" = 2 ] || tb_die "no worker pids in mxguard4.log"
mpid=$(tb_pid mxguard4)
kill -KILL "$mpid"
wait "$mpid" 2>/dev/null
alive=2
for i in $(seq 100); do
    alive=0
    for p in $wpids; do kill -0 "$p" 2>/dev/null && alive=$((alive + 1)); done
    [ "$alive" = 0 ] && break
    sleep 0.1
done
assert_eq "the master killed: both workers (unprivileged) stopped within 10 s" 0 "$alive"

# ================================================================ 9. stop deadline
echo "# --- 9. a worker that does not stop is killed after server.drain_timeout + 3 s"
cfg 127.0.70.0/25
sed -i 's/^  hostname = "mxguard.test";$/  hostname = "mxguard.test";\n  drain_timeout = "1s";/' \
    "$TB/mxguard.conf"
grep -q 'drain_timeout = "1s";' "$TB/mxguard.conf" || tb_die "could not set server.drain_timeout"
tb_start_mxguard -n mxguard5
for i in $(seq 100); do
    [ "$(grep -c 'worker [0-9] of 2 (pid [0-9]*) started' "$TB/mxguard5.log")" -ge 2 ] && break
    sleep 0.1
done
stuck=$(sed -n 's/.*worker 1 started (pid \([0-9]*\)).*/\1/p' "$TB/mxguard5.log" | tail -n 1)
[ -n "$stuck" ] || tb_die "no pid for worker 1 in mxguard5.log"
kill -STOP "$stuck" # hangs: never drains
mpid=$(tb_pid mxguard5)
t0=$(date +%s%N)
kill -TERM "$mpid"
for i in $(seq 150); do kill -0 "$mpid" 2>/dev/null || break; sleep 0.1; done
took=$((($(date +%s%N) - t0) / 1000000))
if kill -0 "$mpid" 2>/dev/null; then
    fail "the master still runs 15 s after SIGTERM with a hung worker"
    kill -CONT "$stuck"
else
    wait "$mpid"
    assert_eq "the master exited 1" 1 "$?"
    [ "$took" -ge 3500 ] && pass "it waited for the drain deadline (${took} ms)" ||
        fail "it killed the hung worker after ${took} ms (drain_timeout 1s + 3s)"
fi
assert_log "it said so" 0 "1 worker\(s\) still running 1s after the stop \(server.drain_timeout \+ 3s\): killing them" mxguard5
kill -0 "$stuck" 2>/dev/null && fail "the hung worker still runs" || pass "the hung worker is gone"

echo "# ${SECONDS}s"
tb_finish
