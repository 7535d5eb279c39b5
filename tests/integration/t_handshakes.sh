#!/usr/bin/env bash
# t_handshakes.sh — many destinations, few upstream connections and few full TLS handshakes
# (docs/ARCHITECTURE.md §Reuse). many.test (mkzones.sh): 120 domains, each its own
# MX name, spread over 6 MX servers (127.0.70.171-176: 20 names per address, as many as
# limits.destination_concurrency lets mxguard hold open to one address), 78 with DANE (TLSA
# 3 1 1), 42 without TLSA; so 120 (MX host, requirement) pairs — more than the 100 idle
# connections the cache used to keep by default. Several client sessions at once, each sending many
# transactions to shuffled recipient domains; mxguard runs on its own connection cache and TLS
# session cache defaults. Checked from mxguard's metrics and from what the MX servers saw:
#   - every message arrived, at the MX of its domain;
#   - full TLS handshakes <= 1.5 per pair (metrics and the MX servers' count of non-resumed
#     handshakes agree);
#   - no connection carried mail of two domains (= two requirements: each domain has its own
#     MX name), and no TLS session was resumed under another requirement (every pair's first
#     handshake is a full one: full handshakes >= pairs);
#   - connections overall <= 1.25 per pair (phase 1): a transaction whose pair's connection is
#     busy waits for it (upstream.cache_busy_wait, one waiter per pair at once: the
#     default) rather than open another, which at a full
#     address (20 names, destination_concurrency 20) would close another pair's idle one;
#   - phase 2, one transaction per connection (upstream.cache_max_uses = 1) to 12 of the
#     domains, so that several connections to one pair are set up at once: every connection
#     after the first of its pair resumes a stored session (each TLS 1.3 ticket is kept and used
#     once) — still <= 1.5 full handshakes per pair. (A full handshake brings two tickets, a
#     resumption one: a pair needs about one full handshake per two connections to it in set-up
#     at once, so this phase runs 6 sessions on 12 pairs; 8-10 sessions under ASan need more.)
#   - a resumed DANE session is still reported as DANE.
#   - phase 3, phase 1's load on server.workers = 2: each worker holds its own connections, so
#     both open one to most pairs; the TLS session store is shared by the workers
#     (tls/tls_shared.h), so the second worker's connection resumes the first one's session —
#     still <= 1.5 full handshakes per pair at the MX side (with a store per worker: about 2).
#     Then SIGHUP to the master: every session is forgotten (each pair's next connection is a
#     full handshake, >= 1 per pair, <= 1.5), and worker 1 killed and restarted by the master:
#     the session key's settings generation is the one the reload set, not a per-process
#     counter the new worker starts afresh, so its connections resume what the other worker
#     stored (full handshakes <= 1 in 10 pairs over a load to every pair; seen: 0, and 46 with the
#     old per-process generation).
# Sizes (MXG_HS_SESSIONS, MXG_HS_MESSAGES) and the bounds can be changed for measuring.
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

SESSIONS=${MXG_HS_SESSIONS:-10}
MESSAGES=${MXG_HS_MESSAGES:-600}
PAIRS=120
PAIRS2=12 # phase 2: the first 12 domains (2 per MX address): many connections per pair at once
MESSAGES2=${MXG_HS_MESSAGES2:-360}
SESSIONS2=${MXG_HS_SESSIONS2:-6}
FULL_MAX2=$((PAIRS2 * 3 / 2))
MX="1 2 3 4 5 6"
FULL_MAX=$((PAIRS * 3 / 2)) # 1.5 full handshakes per (MX host, requirement) pair
CONN_MAX=${MXG_HS_CONN_MAX:-$((PAIRS + PAIRS / 4))}

# server.workers = 1 for phases 1-2: they count connections per (MX, requirement) pair of one
# connection cache, and each worker has its own (docs/ARCHITECTURE.md §Workers); phase 3 runs
# 2 workers, which share the TLS session store
TB_WORKERS=1
tb_init
tb_start_dns
tb_start_many_mx $MX
tb_write_config
# the product's connection cache and TLS session cache defaults (the test-bed turns them off),
# the busy wait included (upstream.cache_busy_wait, cache_busy_waiters)
tb_config_product_caches
export MXGUARD_LOG_LEVEL=${MXG_HS_LOG_LEVEL:-info}
export MXGUARD_METRICS_LISTEN=$TB_MXG_IP:9125

load() { # load TAG DOMAINS MESSAGES [SESSIONS] — MESSAGES transactions to the first DOMAINS domains
    #       over SESSIONS concurrent client sessions (many_load.py); prints how many were accepted
    "$PYTHON" "$MXG_SRC/tests/integration/many_load.py" "$TB_MXG_IP" "$TB_MXG_PORT" \
        "$TB_CLIENT_IP" "${4:-$SESSIONS}" "$3" "$1" "$2" 21 >"$TB/load-$1.out" 2>&1
    tail -n 1 "$TB/load-$1.out" | cut -d' ' -f1
}
metric() { tb_metric "http://$TB_MXG_IP:9125/metrics" "$1"; }
mx_side() { # mx_side — what the MX servers saw: "connections full resumed mixed delivered"
    "$PYTHON" - "$TB/spool" <<'PY'
import glob, json, os, sys
conns = full = resumed = mixed = delivered = 0
for n in sorted(os.listdir(sys.argv[1])):
    d = os.path.join(sys.argv[1], n)
    for l in open(os.path.join(d, "connections.log")) if os.path.exists(os.path.join(d, "connections.log")) else []:
        conns += 1
        full += " tls=ok " in l and l.rstrip().endswith("resumed=no")
        resumed += " tls=ok " in l and l.rstrip().endswith("resumed=yes")
    by_conn = {}
    for f in glob.glob(os.path.join(d, "*.json")):
        m = json.load(open(f))
        delivered += 1
        by_conn.setdefault(m["conn"], set()).update(r.split("@")[1] for r in m["rcpts"])
    mixed += sum(1 for v in by_conn.values() if len(v) > 1)
print(conns, full, resumed, mixed, delivered)
PY
}
misrouted() { # misrouted — messages at an MX that is not their domain's (dNNN -> many(1 + NNN % 6))
    "$PYTHON" - "$TB/spool" <<'PY'
import glob, json, os, sys
bad = 0
for i in range(1, 7):
    for f in glob.glob(os.path.join(sys.argv[1], "many%d" % i, "*.json")):
        for r in json.load(open(f))["rcpts"]:
            bad += 1 + int(r.split("@")[1][1:4]) % 6 != i
print(bad)
PY
}

# 1. defaults: reuse what is cached, resume what is not
tb_start_mxguard
got=$(load one "$PAIRS" "$MESSAGES")
assert_eq "phase 1: all $MESSAGES messages accepted" "$MESSAGES" "$got"
read -r conns full resumed mixed delivered <<<"$(mx_side)"
m_full=$(metric 'mxguard_upstream_tls_handshakes_total{kind="full"}')
m_res=$(metric 'mxguard_upstream_tls_handshakes_total{kind="resumed"}')
m_new=$(metric 'mxguard_upstream_connections_total{how="new"}')
m_reused=$(metric 'mxguard_upstream_connections_total{how="reused"}')
echo "# phase 1: $PAIRS pairs, $MESSAGES messages, $SESSIONS sessions: $conns connections" \
    "(metrics: new $m_new, reused $m_reused); handshakes full $m_full resumed $m_res" \
    "(MX side: full $full resumed $resumed)"
assert_eq "phase 1: every message at an MX" "$MESSAGES" "$delivered"
assert_eq "phase 1: every message at its domain's MX" 0 "$(misrouted)"
assert_eq "phase 1: no connection carried two domains' mail (two requirements)" 0 "$mixed"
assert_eq "phase 1: metrics count every connection the MX servers saw" "$conns" "$m_new"
assert_eq "phase 1: metrics count every handshake the MX servers saw" "$((full + resumed))" \
    "$((m_full + m_res))"
assert_eq "phase 1: a full handshake of its own for every pair (no session across requirements)" \
    yes "$([ "$full" -ge "$PAIRS" ] && echo yes || echo "no: $full")"
assert_eq "phase 1: full handshakes <= $FULL_MAX (1.5 per pair; metrics)" yes \
    "$([ "$m_full" -le "$FULL_MAX" ] && echo yes || echo "no: $m_full")"
assert_eq "phase 1: full handshakes <= $FULL_MAX (1.5 per pair; MX side)" yes \
    "$([ "$full" -le "$FULL_MAX" ] && echo yes || echo "no: $full")"
assert_eq "phase 1: connections <= $CONN_MAX for $PAIRS pairs" yes \
    "$([ "$conns" -le "$CONN_MAX" ] && echo yes || echo "no: $conns")"
tb_stop mxguard

# 2. one transaction per connection: every connection is new, the TLS session store does the work
for i in $MX; do # phase 1's messages and connections out of the way
    mkdir -p "$TB/phase1/many$i" && mv "$TB/spool/many$i"/* "$TB/phase1/many$i/"
done
export MXGUARD_UPSTREAM_CACHE_MAX_USES=1
unset MXGUARD_LOG_LEVEL # debug: how each peer was verified
tb_start_mxguard -n mxguard2
mark=$(tb_log_mark mxguard2)
got=$(load two "$PAIRS2" "$MESSAGES2" "$SESSIONS2")
assert_eq "phase 2: all $MESSAGES2 messages accepted" "$MESSAGES2" "$got"
read -r conns full resumed mixed delivered <<<"$(mx_side)"
m_full=$(metric 'mxguard_upstream_tls_handshakes_total{kind="full"}')
m_res=$(metric 'mxguard_upstream_tls_handshakes_total{kind="resumed"}')
echo "# phase 2 (cache_max_uses 1, $PAIRS2 pairs, $MESSAGES2 messages, $SESSIONS2 sessions): $conns connections; handshakes full $m_full resumed $m_res" \
    "(MX side: full $full resumed $resumed)"
assert_eq "phase 2: every message at an MX" "$MESSAGES2" "$delivered"
assert_eq "phase 2: one connection per message" "$MESSAGES2" "$conns"
assert_eq "phase 2: no connection carried two domains' mail" 0 "$mixed"
assert_contains "phase 2: a resumed DANE session is still DANE" "$(tb_log_since "$mark" mxguard2)" \
    "DANE (resumed TLS session"
assert_eq "phase 2: metrics count every handshake the MX servers saw" "$((full + resumed))" \
    "$((m_full + m_res))"
assert_eq "phase 2: a full handshake of its own for every pair (no session across requirements)" \
    yes "$([ "$full" -ge "$PAIRS2" ] && echo yes || echo "no: $full")"
assert_eq "phase 2: full handshakes <= $FULL_MAX2 (1.5 per pair; metrics)" yes \
    "$([ "$m_full" -le "$FULL_MAX2" ] && echo yes || echo "no: $m_full")"
assert_eq "phase 2: full handshakes <= $FULL_MAX2 (1.5 per pair; MX side)" yes \
    "$([ "$full" -le "$FULL_MAX2" ] && echo yes || echo "no: $full")"
unset MXGUARD_UPSTREAM_CACHE_MAX_USES
tb_stop mxguard2

# 3. phase 1's load over 2 workers: one TLS session store for both
for i in $MX; do
    mkdir -p "$TB/phase2/many$i" && mv "$TB/spool/many$i"/* "$TB/phase2/many$i/"
done
export MXGUARD_SERVER_WORKERS=2 MXGUARD_LOG_LEVEL=${MXG_HS_LOG_LEVEL:-info}
tb_start_mxguard -n mxguard3
got=$(load three "$PAIRS" "$MESSAGES")
assert_eq "phase 3 (2 workers): all $MESSAGES messages accepted" "$MESSAGES" "$got"
read -r conns full resumed mixed delivered <<<"$(mx_side)"
m_full=$(metric 'mxguard_upstream_tls_handshakes_total{kind="full"}')
m_res=$(metric 'mxguard_upstream_tls_handshakes_total{kind="resumed"}')
w0=$(metric 'mxguard_worker_relayed_total{worker="0"}')
w1=$(metric 'mxguard_worker_relayed_total{worker="1"}')
echo "# phase 3 (2 workers, $PAIRS pairs, $MESSAGES messages, $SESSIONS sessions): $conns connections;" \
    "handshakes full $m_full resumed $m_res (MX side: full $full resumed $resumed);" \
    "relayed by worker 0: $w0, worker 1: $w1"
assert_eq "phase 3: every message at an MX" "$MESSAGES" "$delivered"
assert_eq "phase 3: every message at its domain's MX" 0 "$(misrouted)"
assert_eq "phase 3: no connection carried two domains' mail" 0 "$mixed"
assert_eq "phase 3: both workers relayed mail" yes \
    "$([ "${w0:-0}" -gt 0 ] 2>/dev/null && [ "${w1:-0}" -gt 0 ] 2>/dev/null && echo yes || echo "no: $w0 $w1")"
assert_eq "phase 3: metrics (summed over the workers) count every handshake the MX servers saw" \
    "$((full + resumed))" "$((m_full + m_res))"
assert_eq "phase 3: a full handshake of its own for every pair (no session across requirements)" \
    yes "$([ "$full" -ge "$PAIRS" ] && echo yes || echo "no: $full")"
assert_eq "phase 3: full handshakes <= $FULL_MAX (1.5 per pair, 2 workers; MX side)" yes \
    "$([ "$full" -le "$FULL_MAX" ] && echo yes || echo "no: $full")"
# 3b. SIGHUP: sessions made under the old settings are not offered again
full0=$full
mark=$(tb_log_mark mxguard3)
kill -HUP "$(tb_pid mxguard3)"
for i in $(seq 50); do
    [ "$(tb_log_since "$mark" mxguard3 | grep -c 'reload: SIGHUP: reloading')" -ge 2 ] && break
    sleep 0.1
done
sleep 1
got=$(load threeb "$PAIRS" "$((PAIRS * 2))")
assert_eq "phase 3b (after SIGHUP): all $((PAIRS * 2)) messages accepted" "$((PAIRS * 2))" "$got"
read -r conns full resumed mixed delivered <<<"$(mx_side)"
echo "# phase 3b (SIGHUP, then $((PAIRS * 2)) messages): full handshakes $((full - full0))"
assert_eq "phase 3b: after the reload a full handshake for every pair" yes \
    "$([ $((full - full0)) -ge "$PAIRS" ] && echo yes || echo "no: $((full - full0))")"
assert_eq "phase 3b: and <= $FULL_MAX" yes \
    "$([ $((full - full0)) -le "$FULL_MAX" ] && echo yes || echo "no: $((full - full0))")"
# 3c. worker 1 restarted: its keys are the other worker's
full0=$full
w1b=$(metric 'mxguard_worker_relayed_total{worker="1"}')
pid1=$(sed -n 's/.*worker 1 started (pid \([0-9]*\)).*/\1/p' "$TB/mxguard3.log" | tail -n 1)
[ -n "$pid1" ] || tb_die "no pid for worker 1"
kill -KILL "$pid1"
for i in $(seq 100); do
    [ "$(grep -c 'worker 1 of 2 (pid [0-9]*) started' "$TB/mxguard3.log")" -ge 2 ] && break
    sleep 0.1
done
assert_eq "phase 3c: worker 1 restarted" 2 "$(grep -c 'worker 1 of 2 (pid [0-9]*) started' "$TB/mxguard3.log")"
got=$(load threec "$PAIRS" "$((PAIRS * 2))")
assert_eq "phase 3c (worker 1 restarted): all $((PAIRS * 2)) messages accepted" "$((PAIRS * 2))" "$got"
read -r conns full resumed mixed delivered <<<"$(mx_side)"
w1=$(metric 'mxguard_worker_relayed_total{worker="1"}')
echo "# phase 3c (worker 1 restarted, then $((PAIRS * 2)) messages): full handshakes" \
    "$((full - full0)); the restarted worker 1 relayed $((w1 - w1b))"
assert_eq "phase 3c: the restarted worker relayed mail" yes \
    "$([ "$((w1 - w1b))" -gt 0 ] && echo yes || echo "no: $w1b -> $w1")"
assert_eq "phase 3c: the restarted worker resumes the sessions the other one stored" yes \
    "$([ $((full - full0)) -le $((PAIRS / 10)) ] && echo yes || echo "no: $((full - full0))")"
assert_eq "phase 3: every message at its domain's MX" 0 "$(misrouted)"
assert_eq "phase 3: no connection carried two domains' mail" 0 "$mixed"
unset MXGUARD_SERVER_WORKERS MXGUARD_LOG_LEVEL
tb_stop mxguard3

tb_finish
