#!/usr/bin/env bash
# t_status_workers.sh — the status page with server.workers = 2 (app/status_merge.c,
# docs/ARCHITECTURE.md §Workers): worker 0 serves it, yet it lists every worker's deliveries.
#  1. SESSIONS client sessions, each to its own many.test domain (all on one MX server): the
#     kernel spreads them over the two workers (SO_REUSEPORT); the log's transaction lines
#     (session ids S<worker>-...) say which worker relayed which domain, and
#     mxguard_worker_relayed_total{worker="1"} that worker 1 relayed some. Every domain —
#     those only worker 1 delivered included — is on the page with 1 delivered, and a domain
#     page of a worker-1 domain shows its decision text (kept by worker 1).
#  2. SAME sessions to one domain, over both workers: its row is the sum of both workers'.
#  3. Worker 1 killed (SIGKILL) and restarted by the master: its domains stay on the page with
#     their counts (its restarted successor adopted its tally; nothing dropped).
# Sizes: MXG_SW_SESSIONS (20).
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

SESSIONS=${MXG_SW_SESSIONS:-20}
SAME=8
METRICS="$TB_MXG_IP:9125"

TB_WORKERS=2
tb_init
tb_start_dns
tb_start_many_mx 1 # dNNN.many.test with NNN % 6 == 0 (127.0.70.171)
tb_write_config "metrics: { listen = \"$METRICS\"; };" # allow_networks: loopback
tb_start_mxguard
for i in $(seq 100); do
    [ "$(grep -c 'worker [01] of 2 (pid [0-9]*) started' "$TB/mxguard.log")" -ge 2 ] && break
    sleep 0.1
done

# get NAME PATH — GET from the client address: the body to $TB/NAME.html; prints the status
get() {
    "$PYTHON" - "$TB_MXG_IP" 9125 "$TB_CLIENT_IP" "$TB/$1.html" "$2" <<'PY'
import http.client, sys
ip, port, src, out, path = sys.argv[1:6]
try:
    c = http.client.HTTPConnection(ip, int(port), timeout=10, source_address=(src, 0))
    c.request("GET", path)
    r = c.getresponse()
    open(out, "wb").write(r.read())
    print(r.status)
except Exception as e:
    print("error-%s" % type(e).__name__)
PY
}
metric() { tb_metric "http://$METRICS/metrics" "$1"; }
# delivered NAME DOMAIN — the "delivered" count of DOMAIN's row on page NAME ("-": no row)
delivered() {
    sed -n "s|.*<a href=\"/status/domain/$2\">$2</a></td><td class=\"n\">\([0-9]*\)</td>.*|\1|p" \
        "$TB/$1.html" | head -n 1 | grep . || echo -
}
# by_worker W — the many.test domains transactions of worker W's sessions went to (sorted)
by_worker() {
    sed -n "s/.* S$1-[0-9A-F]*\.[0-9]*: client=[^ ]* from=<[^>]*> rcpts=1\/1 domain=\(d[0-9]*\.many\.test\) .*/\1/p" \
        "$TB/mxguard.log" | sort -u
}

# ------------------------------------------------------------ 1. one domain per session
echo "# --- 1. $SESSIONS sessions, each to its own domain"
doms=""
for i in $(seq 0 $((SESSIONS - 1))); do
    d=$(printf 'd%03d.many.test' $((i * 6)))
    doms="$doms $d"
    swaks_send "one$i" --to "a@$d" >/dev/null
    assert_reply "$d delivered" "$SW_DOT" "250"
done
w0=$(by_worker 0)
w1=$(by_worker 1)
echo "# worker 0 relayed to: $(echo $w0)"
echo "# worker 1 relayed to: $(echo $w1)"
only1=$(comm -13 <(echo "$w0") <(echo "$w1") | grep . || true)
assert_eq "every domain relayed by one worker or the other" "$SESSIONS" \
    "$( (echo "$w0"; echo "$w1") | grep -c .)"
[ -n "$only1" ] && pass "worker 1 relayed $(echo "$only1" | wc -l) domain(s) alone" ||
    fail "no domain was relayed by worker 1 alone (the kernel sent every session to worker 0?)"
relayed1=$(metric 'mxguard_worker_relayed_total{worker="1"}')
[ "$relayed1" -ge 1 ] 2>/dev/null && pass "mxguard_worker_relayed_total{worker=\"1\"} = $relayed1" ||
    fail "mxguard_worker_relayed_total{worker=\"1\"} = $relayed1"
assert_eq "the status page answers" 200 "$(get p1 /status)"
assert_contains "it says it sums every worker" "$(cat "$TB/p1.html")" \
    "Every one of the 2 workers' deliveries"
missing=""
for d in $doms; do
    [ "$(delivered p1 "$d")" = 1 ] || missing="$missing $d($(delivered p1 "$d"))"
done
assert_eq "every domain is on the page with 1 delivered (worker 1's too)" "" "$missing"
d1=$(echo "$only1" | head -n 1)
if [ -n "$d1" ]; then
    assert_eq "the domain page of $d1 (worker 1's)" 200 "$(get dom1 "/status/domain/$d1")"
    assert_contains "it shows worker 1's decision text" "$(cat "$TB/dom1.html")" "domain $d1"
    assert_contains "... and 1 delivered today" "$(cat "$TB/dom1.html")" \
        "<tr><th>delivered today</th><td>1</td></tr>"
fi

# ------------------------------------------------------------ 2. one domain, both workers
echo "# --- 2. $SAME sessions to one domain"
same=d114.many.test
base=$(delivered p1 "$same")
[ "$base" = - ] && base=0
mark=$(tb_log_mark)
for i in $(seq $SAME); do
    swaks_send "same$i" --to "b@$same" >/dev/null
    assert_reply "$same delivered ($i)" "$SW_DOT" "250"
done
ws=$(tb_log_since "$mark" | sed -n "s/.* S\([01]\)-[0-9A-F]*\.[0-9]*: client=.* domain=$same .*/\1/p" |
    sort | uniq -c | awk '{ printf "%sworker %s: %s", s, $2, $1; s = ", " }')
echo "# $same: $ws"
assert_eq "the page answers" 200 "$(get p2 /status)"
assert_eq "$same's row sums both workers' deliveries ($ws, before: $base)" $((SAME + base)) \
    "$(delivered p2 "$same")"

# ------------------------------------------------------------ 3. worker 1 restarted
echo "# --- 3. worker 1 killed and restarted"
pid1=$(sed -n 's/.*worker 1 started (pid \([0-9]*\)).*/\1/p' "$TB/mxguard.log" | tail -n 1)
mark=$(tb_log_mark)
kill -KILL "$pid1"
for i in $(seq 100); do
    tb_log_since "$mark" | grep -q 'worker 1 of 2 (pid [0-9]*) started' && break
    sleep 0.1
done
assert_log "worker 1 was restarted" "$mark" "worker 1 of 2 \(pid [0-9]+\) started"
assert_no_log "its successor dropped nothing" "$mark" "predecessor died: dropped"
assert_eq "the page answers" 200 "$(get p3 /status)"
missing=""
for d in $only1; do
    [ "$d" = "$same" ] && continue # §2 added to its count (it is one of §1's domains)
    [ "$(delivered p3 "$d")" = 1 ] || missing="$missing $d($(delivered p3 "$d"))"
done
assert_eq "worker 1's domains are still on the page with their counts" "" "$missing"
assert_eq "$same still sums both workers" $((SAME + base)) "$(delivered p3 "$same")"

tb_finish
