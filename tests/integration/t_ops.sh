#!/usr/bin/env bash
# t_ops.sh — operating mxguard (docs/ARCHITECTURE.md §Operating): started as root with server.user
# = "nobody" it binds, drops to nobody (no capabilities left, state directory given to nobody) and
# relays; the Prometheus endpoint counts the traffic that passes; SIGHUP applies a changed setting
# (limits.message_size, visible in EHLO SIZE and at the next MAIL of a session that was open across
# the HUP) while a transaction in flight across the HUP still completes; a broken file is refused
# (error logged, old values stay); reloaded trust anchors that fail the DNSSEC self-check are
# rolled back; log.format = "json" by reload; a second mxguard started as nobody (no root at all)
# on a high port relays; the manual pages lint clean and the systemd unit verifies.
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

tb_init
tb_start_dns
tb_start_mx mx1 127.0.70.11

MX1=$TB/spool/mx1
METRICS_ADDR=$TB_MXG_IP:9125
cp "$TB/dns/root.ds" "$TB/anchor.ds"

# ops_config [EXTRA_LINE...] — the test-bed config, server.user = "nobody", metrics on, the
# trust anchor in a file of our own ($TB/anchor.ds), EXTRA_LINEs appended.
ops_config() {
    tb_write_config -t "$TB/anchor.ds" \
        "metrics: { listen = \"$METRICS_ADDR\"; allow_networks = [\"127.0.70.0/25\"]; };" "$@"
    sed -i 's/^  hostname = "mxguard.test";$/  hostname = "mxguard.test";\n  user = "nobody";/' \
        "$TB/mxguard.conf"
    grep -q 'user = "nobody";' "$TB/mxguard.conf" || tb_die "ops_config: could not set server.user"
}

# scrape NAME [SOURCE] — GET /metrics from SOURCE (default the client address) into
# $TB/NAME.metrics; SCRAPE_RC: ok, refused, closed (connection closed without a reply), http-N
scrape() {
    SCRAPE_RC=$("$PYTHON" - "$TB_MXG_IP" 9125 "${2:-$TB_CLIENT_IP}" "$TB/$1.metrics" <<'PY'
import http.client, sys
ip, port, src, out = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
try:
    c = http.client.HTTPConnection(ip, port, timeout=5, source_address=(src, 0))
    c.request("GET", "/metrics")
    r = c.getresponse()
    open(out, "wb").write(r.read())
    print("ok" if r.status == 200 else "http-%d" % r.status)
except ConnectionRefusedError:
    print("refused")
except (http.client.RemoteDisconnected, ConnectionResetError):
    print("closed")
except Exception as e:
    print("error-%s" % type(e).__name__)
PY
)
}

# metric NAME SERIES — the value of SERIES (e.g. 'mxguard_sessions_total') in NAME's scrape; 0 if absent
metric() { awk -v s="$2" '$1 == s { v = $2 } END { print v == "" ? 0 : v }' "$TB/$1.metrics"; }
# delta A B SERIES — value in scrape B minus value in scrape A
delta() { echo $(( $(metric "$2" "$3" | cut -d. -f1) - $(metric "$1" "$3" | cut -d. -f1) )); }

mxg_pid() { awk '$2 == "mxguard" { p = $1 } END { print p }' "$TB/pids"; }
ehlo_size() { # ehlo_size NAME — the SIZE value mxguard advertises
    smtp_chat "$1" "EHLO client.test" "QUIT" >/dev/null
    grep '^EHLO' "$TB/$1.chat" | grep -o 'SIZE [0-9]*' | awk '{ print $2 }'
}

# ------------------------------------------------------------------ 0. the files

for page in mxguard.8 mxguard.conf.5; do
    w=$(groff -man -Tutf8 -ww -z "$MXG_SRC/docs/man/$page" 2>&1)
    assert_eq "docs/man/$page: groff -man -ww reports nothing" "" "$w"
    if command -v mandoc >/dev/null; then
        w=$(mandoc -Tlint -W warning "$MXG_SRC/docs/man/$page" 2>&1)
        assert_eq "docs/man/$page: mandoc -Tlint reports no warning" "" "$w"
    fi
    t=$(MANWIDTH=80 man -l "$MXG_SRC/docs/man/$page" 2>/dev/null | head -n 5)
    assert_contains "docs/man/$page renders with man -l" "$t" "NAME"
done
if command -v systemd-analyze >/dev/null; then
    # the unit as installed, with this build's binary and these manual pages
    mkdir -p "$TB/man/man8" "$TB/man/man5"
    cp "$MXG_SRC/docs/man/mxguard.8" "$TB/man/man8/"
    cp "$MXG_SRC/docs/man/mxguard.conf.5" "$TB/man/man5/"
    sed "s|/usr/sbin/mxguard|$MXG_BIN|g" "$MXG_SRC/etc/mxguard.service" >"$TB/mxguard.service"
    out=$(MANPATH=$TB/man timeout 60 systemd-analyze verify "$TB/mxguard.service" 2>&1)
    assert_eq "etc/mxguard.service: systemd-analyze verify is silent" "" "$out"
else
    echo "# systemd-analyze not installed: unit not verified"
fi
for f in "$MXG_SRC"/etc/examples/*.conf; do
    out=$("$MXG_BIN" config check -c "$f" 2>&1)
    assert_contains "$(basename "$f") passes config check" "$out" "configuration OK"
done

# ------------------------------------------------------------------ 1. root → nobody

ops_config
tb_start_mxguard
pid=$(mxg_pid)
# the processes that serve: mxguard itself, or with server.workers > 1 its workers (the master
# keeps its identity to restart them, docs/ARCHITECTURE.md §Workers; t_workers.sh §8)
for i in $(seq 50); do
    [ "$(grep -cE 'main: worker [0-9]+ of [0-9]+ \(pid [0-9]+\) started' "$TB/mxguard.log")" -ge \
        "$(grep -oE 'starting [0-9]+ workers' "$TB/mxguard.log" | grep -oE '[0-9]+' || echo 0)" ] && break
    sleep 0.1
done
servers=$(pgrep -P "$pid" -x mxguard || true)
[ -n "$servers" ] || servers=$pid
nobody=$(id -u nobody)
for p in $servers; do
    uids=$(awk '/^Uid:/ { print $2, $3, $4, $5 }' /proc/"$p"/status)
    assert_eq "mxguard (pid $p) runs as nobody (real, effective, saved, fs uid)" "$nobody $nobody $nobody $nobody" "$uids"
    assert_eq "no capabilities left (CapPrm)" "0000000000000000" "$(awk '/^CapPrm:/ { print $2 }' /proc/"$p"/status)"
    assert_eq "no capabilities left (CapEff)" "0000000000000000" "$(awk '/^CapEff:/ { print $2 }' /proc/"$p"/status)"
done
assert_log "the log says so" 0 'running as user nobody'
assert_eq "state directory belongs to nobody" "nobody" "$(stat -c %U "$TB/state")"
assert_eq "everything in it belongs to nobody" "" "$(find "$TB/state" ! -user nobody)"
assert_file_grep "databases were created in it" "$TB/mxguard.log" 'created .*/state/(tlsrpt|mta-sts)\.db'

# ------------------------------------------------------------------ 2. metrics vs traffic

scrape m0
assert_eq "metrics endpoint answers" ok "$SCRAPE_RC"
assert_file_grep "text format: TYPE lines" "$TB/m0.metrics" '^# TYPE mxguard_transactions_total counter$'
scrape mx-out "$TB_OUTSIDER_IP"
assert_eq "a client outside metrics.allow_networks gets no reply" closed "$SCRAPE_RC"

tb_make_message one --to a@example.test --subject "ops one" --id ops-1
swaks_send one --to a@example.test --no-data-fixup --data "@$TB/one.wire"
assert_reply "relayed while running as nobody" "$SW_DOT" "250"
assert_file_count "$MX1" 1 "mx1 got the message"
SW_SOURCE=$TB_OUTSIDER_IP swaks_send outsider --to a@example.test --quit-after CONNECT
scrape m1
assert_eq "sessions_total +1" 1 "$(delta m0 m1 mxguard_sessions_total)"
assert_eq "sessions_active back to 0" 0 "$(metric m1 mxguard_sessions_active)"
assert_eq "connections_rejected{not_allowed} +1" 1 "$(delta m0 m1 'mxguard_connections_rejected_total{reason="not_allowed"}')"
assert_match "dns_queries{ok} grew" "$(delta m0 m1 'mxguard_dns_queries_total{status="ok"}')" '^[1-9][0-9]*$'
assert_match "an MX lookup was timed" "$(delta m0 m1 'mxguard_dns_query_duration_seconds_count{type="MX"}')" '^[1-9][0-9]*$'
# counted in proxy/inbound/session.c and proxy/outbound/leg*.c
assert_eq "transactions{delivered} +1" 1 "$(delta m0 m1 'mxguard_transactions_total{outcome="delivered"}')"
assert_eq "transaction duration observed" 1 "$(delta m0 m1 mxguard_transaction_duration_seconds_count)"
assert_eq "policy decision: opportunistic +1" 1 "$(delta m0 m1 'mxguard_policy_decisions_total{source="opportunistic"}')"
assert_eq "tls_sessions{success} +1" 1 "$(delta m0 m1 'mxguard_tls_sessions_total{result="success"}')"
assert_eq "upstream connect timed" 1 "$(delta m0 m1 'mxguard_upstream_duration_seconds_count{phase="connect"}')"
assert_eq "upstream final reply timed" 1 "$(delta m0 m1 'mxguard_upstream_duration_seconds_count{phase="final_reply"}')"

# ------------------------------------------------------------------ 3. SIGHUP: a changed setting

assert_eq "EHLO SIZE before the reload" 52428800 "$(ehlo_size size0)"
tb_make_message two --to b@example.test --subject "across the HUP" --id ops-2
cp "$TB/two.wire" "$TB/two.chat-data"
printf '\r\n' >>"$TB/two.chat-data" # the .wire form ends "\r\n." for swaks; the raw client sends all
# a transaction open across the HUP: RCPT accepted (upstream leg open) before, data after
smtp_chat inflight --timeout 20 "EHLO client.test" "MAIL FROM:<sender@client.test>" \
    "RCPT TO:<b@example.test>" "sleep:3" "DATA" "@$TB/two.chat-data" "QUIT" &
bg1=$!
# a session open across the HUP that sends MAIL afterwards: the new limit applies to it
smtp_chat nextcmd --timeout 20 "EHLO client.test" "sleep:3" \
    "MAIL FROM:<sender@client.test> SIZE=200000" "QUIT" &
bg2=$!
sleep 1.2
ops_config 'limits: { message_size = "100k"; };' >/dev/null
sed -i 's/^  hostname = "mxguard.test";$/  hostname = "renamed.test";/' "$TB/mxguard.conf"
mark=$(tb_log_mark)
kill -HUP "$pid"
wait $bg1 $bg2
assert_reply "transaction across the HUP: RCPT accepted before it" "$(chat_reply inflight RCPT)" "250"
assert_reply "transaction across the HUP: delivered after it" "$(chat_reply inflight DOT)" "250"
assert_file_count "$MX1" 2 "mx1 got the message sent across the HUP"
assert_reply "a session open across the HUP gets the new limit at its next MAIL" \
    "$(chat_reply nextcmd MAIL)" "552 5.3.4"
assert_eq "mxguard kept running (same process)" 0 "$(kill -0 "$pid" 2>/dev/null; echo $?)"
assert_log "reload logged per setting" "$mark" 'reload: limits\.message_size: 52428800 -> 102400'
assert_log "a setting that needs a restart is named, old value kept" "$mark" \
    'server\.hostname: changed in the file \("renamed\.test"\) but needs a restart; keeping "mxguard\.test"'
assert_eq "EHLO SIZE after the reload" 102400 "$(ehlo_size size1)"
assert_contains "banner still has the old host name" "$(chat_reply size1 BANNER)" "mxguard.test"
scrape m2
assert_eq "reloads{success} +1 (once per SIGHUP, also with workers)" 1 "$(delta m1 m2 'mxguard_config_reloads_total{result="success"}')"

# ------------------------------------------------------------------ 4. SIGHUP: a broken file

ops_config 'limits: { message_size = "lots"; };' >/dev/null
mark=$(tb_log_mark)
kill -HUP "$pid"
sleep 0.5
assert_log "a broken file is refused with an error" "$mark" \
    'error reload: configuration error: .*limits\.message_size: "lots".*stays in force'
assert_no_log "nothing was applied" "$mark" 'reload: limits\.message_size: '
assert_eq "EHLO SIZE unchanged" 102400 "$(ehlo_size size2)"
scrape m3
assert_eq "reloads{failure} +1 (once per SIGHUP, also with workers)" 1 "$(delta m2 m3 'mxguard_config_reloads_total{result="failure"}')"
assert_eq "mxguard still running" 0 "$(kill -0 "$pid" 2>/dev/null; echo $?)"

# ------------------------------------------------------------------ 5. SIGHUP: trust anchors

ops_config 'limits: { message_size = "100k"; };' >/dev/null
cp "$TB/dns/wrong-root.ds" "$TB/anchor.ds"
mark=$(tb_log_mark)
kill -HUP "$pid"
for i in $(seq 50); do
    tb_log_since "$mark" | grep 'previous anchors stay in force' >/dev/null && break
    sleep 0.1
done
assert_log "wrong anchors: the self-check fails and the old anchors come back" "$mark" \
    'reloaded trust anchors fail the DNSSEC self-check.*previous anchors stay in force'
tb_make_message three --to c@example.test --subject "after anchors" --id ops-3
swaks_send three --to c@example.test --no-data-fixup --data "@$TB/three.wire"
assert_reply "delivery still validates with the restored anchors" "$SW_DOT" "250"
cp "$TB/dns/root.ds" "$TB/anchor.ds"
mark=$(tb_log_mark)
kill -HUP "$pid"
for i in $(seq 50); do
    tb_log_since "$mark" | grep 'self-check with the reloaded trust anchors passed' >/dev/null && break
    sleep 0.1
done
assert_log "good anchors: reloaded and kept" "$mark" 'self-check with the reloaded trust anchors passed'

# ------------------------------------------------------------------ 6. SIGHUP: JSON log lines

ops_config 'limits: { message_size = "100k"; };' 'log: { format = "json"; };' >/dev/null
# tb_write_config already has a log group: merge ours into it
"$PYTHON" - "$TB/mxguard.conf" <<'PY'
import sys
p = sys.argv[1]
s = open(p).read()
s = s.replace('log: { format = "json"; };\n', "")
s = s.replace('  level = "debug";\n', '  level = "debug";\n  format = "json";\n')
open(p, "w").write(s)
PY
kill -HUP "$pid"
sleep 0.3
# from here every process has switched (each logs its reload in text until it switches; with
# server.workers > 1 the master and the workers switch one after another)
mark=$(tb_log_mark)
tb_make_message four --to d@example.test --subject "json \"quoted\"" --id ops-4
swaks_send four --to d@example.test --no-data-fixup --data "@$TB/four.wire"
assert_reply "relayed after the format change" "$SW_DOT" "250"
sleep 0.3
json=$(tb_log_since "$mark" | "$PYTHON" -c '
import json, sys
lines = sys.stdin.read().split("\n")
bad, n, smtp = 0, 0, 0
for l in lines:
    if not l:
        continue
    try:
        o = json.loads(l)
        assert set(o) == {"time", "level", "component", "message"}
        n += 1
        smtp += o["component"] == "smtp" and "from=<sender@client.test>" in o["message"]
    except Exception:
        bad += 1
print(n, bad, smtp)')
read -r jn jbad jsmtp <<<"$json"
assert_match "JSON lines after the reload" "$jn" '^[1-9][0-9]*$'
assert_eq "every line after the switch is one JSON object with the four keys" 0 "$jbad"
assert_match "the transaction line is among them" "$jsmtp" '^[1-9][0-9]*$'

# ------------------------------------------------------------------ 7. started as nobody

# no root at all: a copy of the binary any user can run, a state directory nobody owns
cp "$MXG_BIN" "$TB/mxguard-bin"
chmod 755 "$TB/mxguard-bin"
mkdir -p "$TB/state2"
chown nobody "$TB/state2"
tb_write_config -o "$TB/nobody.conf" -l "127.0.70.3:10025" -t "$TB/anchor.ds"
sed -i "s|directory = \"$TB/state\";|directory = \"$TB/state2\";|" "$TB/nobody.conf"
chmod 644 "$TB/nobody.conf"
tb_spawn mxg-nobody setpriv --reuid=nobody --regid=nogroup --clear-groups --inh-caps=-all \
    --bounding-set=-all -- "$TB/mxguard-bin" run -c "$TB/nobody.conf"
npid=$TB_LAST_PID
tb_wait_port 127.0.70.3 10025 15 || { tail -n 30 "$TB/mxg-nobody.log"; tb_die "mxguard as nobody did not start"; }
assert_eq "second mxguard runs as nobody" "$nobody" "$(awk '/^Uid:/ { print $3 }' /proc/"$npid"/status)"
tb_make_message five --to e@example.test --subject "from nobody" --id ops-5
SW_SERVER=127.0.70.3:10025 swaks_send five --to e@example.test --no-data-fixup --data "@$TB/five.wire"
assert_reply "mxguard started as nobody on a high port relays" "$SW_DOT" "250"
assert_file_count "$MX1" 5 "mx1 got it"
assert_file_grep "it wrote its state as nobody" "$TB/mxg-nobody.log" 'created .*/state2/tlsrpt\.db'
tb_stop mxg-nobody
# naming another user without root is refused
sed -i 's/^  hostname = "mxguard.test";$/  hostname = "mxguard.test";\n  user = "mail";/' "$TB/nobody.conf"
out=$(timeout 20 setpriv --reuid=nobody --regid=nogroup --clear-groups -- "$TB/mxguard-bin" run \
    -c "$TB/nobody.conf" 2>&1 </dev/null 9>&-)
rc=$?
assert_eq "server.user = mail as nobody: refused (exit 1)" 1 "$rc"
assert_contains "... saying why" "$out" 'cannot switch users'

# ------------------------------------------------------------------ 8. SIGTERM

kill -TERM "$pid"
for i in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$pid" 2>/dev/null; then fail "mxguard did not exit on SIGTERM"; else pass "mxguard drained and exited"; fi
tb_finish
