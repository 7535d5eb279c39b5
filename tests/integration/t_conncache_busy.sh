#!/usr/bin/env bash
# t_conncache_busy.sh — the bounded wait for a busy connection (upstream.cache_busy_wait,
# upstream.cache_busy_waiters; proxy/outbound/conncache.h): with the product's defaults it
# saves the connections two transactions to one domain would open when they collide, and never
# queues a burst to one domain behind its connections. many.test (mkzones.sh): 120 domains,
# each its own MX name (its own requirement), on 6 MX servers (127.0.70.171-176). Judged from
# mxguard's mxguard_upstream_connections_total{how="new"} (one mxguard per phase, so each
# starts at 0) and from what the MX servers received:
#   1. many domains, defaults: SESSIONS client sessions at once, MESSAGES transactions to the
#      120 domains (shuffled rounds: sessions collide on a domain now and then);
#   2. the same load with upstream.cache_busy_waiters = 0 (nobody waits: the parent's
#      behaviour) opens clearly more connections: new(1) * 5 < new(2) * 4;
#   3. one domain, a burst of BURST sessions at once, BURST_MSGS transactions each, defaults:
#      at least 3/4 BURST connections (at most one transaction waits, the others open their
#      own; with every arrival waiting: about BURST / 2);
#   4. the same burst with a long busy wait (5 s): still at least 3/4 BURST connections and no
#      transaction near 5 s — the bound, not the short default wait, keeps the burst parallel
#      (without it the whole burst would queue behind the first connection).
# Every message arrives at its domain's MX; no connection carries two domains' mail.
# mxguard_upstream_busy_waits_total{result} counts the waits: none in 2 (nobody waits); in 3
# some leg waited and others were bounded (the burst collides), and no more waits ended
# reused or timed out than began.
# Sizes: MXG_CB_SESSIONS, MXG_CB_MESSAGES, MXG_CB_BURST, MXG_CB_BURST_MSGS.
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

SESSIONS=${MXG_CB_SESSIONS:-20}
MESSAGES=${MXG_CB_MESSAGES:-800}
BURST=${MXG_CB_BURST:-20}
BURST_MSGS=${MXG_CB_BURST_MSGS:-5}
PAIRS=120
MX="1 2 3 4 5 6"

# server.workers = 1: connections are counted per connection cache (one per worker)
TB_WORKERS=1
tb_init
tb_start_dns
tb_start_many_mx $MX
tb_write_config
# the product's connection cache and TLS session cache defaults (the test-bed turns them off);
# upstream.cache_busy_wait and cache_busy_waiters stay at their defaults unless a phase says
tb_config_product_caches
grep -qE '^ *(cache_busy_wait|cache_busy_waiters) *=' "$TB/mxguard.conf" &&
    tb_die "busy-wait settings in the config"
export MXGUARD_LOG_LEVEL=info
export MXGUARD_METRICS_LISTEN=$TB_MXG_IP:9125

load() { # load TAG DOMAINS MESSAGES SESSIONS — MESSAGES transactions to the first DOMAINS
    #       domains over SESSIONS concurrent client sessions, all starting at once
    #       (many_load.py); prints "accepted longest_ms"
    "$PYTHON" "$MXG_SRC/tests/integration/many_load.py" "$TB_MXG_IP" "$TB_MXG_PORT" \
        "$TB_CLIENT_IP" "$4" "$3" "$1" "$2" 7 --together >"$TB/load-$1.out" 2>&1
    grep '^#' "$TB/load-$1.out" >&2
    tail -n 1 "$TB/load-$1.out"
}
metric() { tb_metric "http://$TB_MXG_IP:9125/metrics" "$1"; }
mx_side() { # mx_side — what the MX servers hold: "mixed misrouted delivered" (then moved away)
    "$PYTHON" - "$TB/spool" <<'PY'
import glob, json, os, sys
mixed = misrouted = delivered = 0
for i in range(1, 7):
    by_conn = {}
    for f in glob.glob(os.path.join(sys.argv[1], "many%d" % i, "*.json")):
        m = json.load(open(f))
        delivered += 1
        doms = set(r.split("@")[1] for r in m["rcpts"])
        misrouted += sum(1 + int(d[1:4]) % 6 != i for d in doms)
        by_conn.setdefault(m["conn"], set()).update(doms)
    mixed += sum(1 for v in by_conn.values() if len(v) > 1)
print(mixed, misrouted, delivered)
PY
}
phase_done() { # phase_done N — the MX side of phase N checked (MSGS expected), then set aside
    local mixed misrouted delivered i
    read -r mixed misrouted delivered <<<"$(mx_side)"
    assert_eq "$1: every message at an MX" "$2" "$delivered"
    assert_eq "$1: every message at its domain's MX" 0 "$misrouted"
    assert_eq "$1: no connection carried two domains' mail" 0 "$mixed"
    for i in $MX; do
        mkdir -p "$TB/phase$1/many$i"
        find "$TB/spool/many$i" -maxdepth 1 -type f ! -name connections.log \
            -exec mv -t "$TB/phase$1/many$i/" {} +
    done
}
run_phase() { # run_phase N NAME DOMAINS MESSAGES SESSIONS — mxguard NAME under the current
    #          environment; sets NEW, REUSED (its metrics) and LONGEST (ms, the client's)
    local got
    tb_start_mxguard -n "$2"
    read -r got LONGEST <<<"$(load "$1" "$3" "$4" "$5")"
    assert_eq "$1: all $4 messages accepted" "$4" "$got"
    NEW=$(metric 'mxguard_upstream_connections_total{how="new"}')
    REUSED=$(metric 'mxguard_upstream_connections_total{how="reused"}')
    local r
    for r in waited reused timeout bounded; do # BUSY_waited, ... ("absent": never counted)
        printf -v "BUSY_$r" '%s' "$(metric "mxguard_upstream_busy_waits_total{result=\"$r\"}")"
    done
    echo "# $1: busy waits: waited $BUSY_waited, reused $BUSY_reused, timeout $BUSY_timeout," \
        "bounded $BUSY_bounded"
    tb_stop "$2"
    phase_done "$1" "$4"
}

# 1. many domains, defaults
run_phase 1 mxguard1 "$PAIRS" "$MESSAGES" "$SESSIONS"
new1=$NEW reused1=$REUSED ms1=$LONGEST
echo "# 1. defaults, $PAIRS domains, $MESSAGES messages, $SESSIONS sessions: new $new1," \
    "reused $reused1, longest transaction ${ms1}ms"
# 2. the same, nobody waits for a busy connection
export MXGUARD_UPSTREAM_CACHE_BUSY_WAITERS=0
run_phase 2 mxguard2 "$PAIRS" "$MESSAGES" "$SESSIONS"
new2=$NEW reused2=$REUSED ms2=$LONGEST
unset MXGUARD_UPSTREAM_CACHE_BUSY_WAITERS
echo "# 2. cache_busy_waiters = 0, the same load: new $new2, reused $reused2," \
    "longest transaction ${ms2}ms"
assert_eq "2: no busy wait counted (waited, reused, timeout, bounded)" "0 0 0 0" \
    "${BUSY_waited/absent/0} ${BUSY_reused/absent/0} ${BUSY_timeout/absent/0} ${BUSY_bounded/absent/0}"
assert_eq "1-2: the bounded busy wait opens clearly fewer connections ($new1 * 5 < $new2 * 4)" \
    yes "$([ "$new1" -gt 0 ] && [ $((new1 * 5)) -lt $((new2 * 4)) ] && echo yes || echo no)"
# 3. one domain, a burst, defaults
run_phase 3 mxguard3 1 $((BURST * BURST_MSGS)) "$BURST"
new3=$NEW reused3=$REUSED ms3=$LONGEST
echo "# 3. defaults, one domain, $BURST sessions x $BURST_MSGS: new $new3, reused $reused3," \
    "longest transaction ${ms3}ms"
assert_eq "3: a burst to one domain opens many connections ($new3 >= $((BURST * 3 / 4)))" yes \
    "$([ "$new3" -ge $((BURST * 3 / 4)) ] 2>/dev/null && echo yes || echo no)"
assert_eq "3: the metric counts busy waits (waited $BUSY_waited >= 1, bounded $BUSY_bounded >= 1)" \
    yes "$([ "$BUSY_waited" -ge 1 ] 2>/dev/null && [ "$BUSY_bounded" -ge 1 ] 2>/dev/null &&
        echo yes || echo no)"
assert_eq "3: waits ended reused or timed out ($BUSY_reused + $BUSY_timeout) <= waited" yes \
    "$([ $((${BUSY_reused/absent/0} + ${BUSY_timeout/absent/0})) -le "$BUSY_waited" ] 2>/dev/null &&
        echo yes || echo no)"
# 4. the same burst, a long busy wait
export MXGUARD_UPSTREAM_CACHE_BUSY_WAIT=5s
run_phase 4 mxguard4 1 $((BURST * BURST_MSGS)) "$BURST"
new4=$NEW reused4=$REUSED ms4=$LONGEST
unset MXGUARD_UPSTREAM_CACHE_BUSY_WAIT
echo "# 4. cache_busy_wait 5s, one domain, $BURST sessions x $BURST_MSGS: new $new4," \
    "reused $reused4, longest transaction ${ms4}ms"
assert_eq "4: still many connections ($new4 >= $((BURST * 3 / 4)))" yes \
    "$([ "$new4" -ge $((BURST * 3 / 4)) ] 2>/dev/null && echo yes || echo no)"
assert_eq "4: no transaction near the busy wait (${ms4}ms < 4000ms)" yes \
    "$([ "$ms4" -lt 4000 ] 2>/dev/null && echo yes || echo no)"

tb_finish
