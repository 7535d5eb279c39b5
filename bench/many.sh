#!/usr/bin/env bash
# bench/many.sh — the many-destination benchmark: mxguard, Postfix 3.7 (default and
# smtp_tls_connection_reuse) and the plaintext ceiling, side by side in one run, relaying to
# hundreds of DNSSEC-signed domains; prints one table (bench/report_many.py). Method and
# recorded figures: docs/BENCHMARKS.md.
#
#   bench/many.sh [--domains N] [--sinks S] [--rcpt-domains K] [--sessions C] [--messages M]
#                 [--size KIB] [--order random|rr] [--runs R] [--skip postfix] [--results FILE]
#                 [--mxg-env "MXGUARD_SECTION_KEY=VALUE ..."]
#
#   --domains N       destination domains (default 200)
#   --sinks S         MX addresses 127.0.70.180 .. 180+S-1, port 25, one sink on all (default 10)
#   --rcpt-domains K  recipients per message, each in another domain (default 1)
#   --sessions C, --messages M, --size KIB   the load (default 20, 2000, 1): C client sessions
#                     at a time, one message per session, M messages per run
#   --order O         which domains a message goes to: random (default; a fixed pseudo-random
#                     sequence, the same for every target and run) or rr (round-robin: each
#                     domain in turn, the worst case for an idle-connection cache smaller
#                     than the number of destinations)
#   --runs R          runs per target, interleaved (default 3; medians)
#   --skip postfix    no Postfix and no unbound
#   --mxg-env LIST    settings for mxguard as environment overrides (space-separated), e.g.
#                     "MXGUARD_UPSTREAM_CACHE_SIZE=1000" (default: none, mxguard's defaults)
#   env MXG_BIN       the mxguard binary (default build/mxguard)
#
# The world (127.0.70.0/24, tests/integration/lib.sh, which also takes the test-bed lock):
# nsd serving the signed test hierarchy (mkzones.sh) plus the bench-only signed zone
# wide.test (bench/mkmany.sh): dI.wide.test MX 10 mxI.wide.test, I = 1..N, each MX name on one
# of the S sink addresses (round-robin), two thirds with a DNSSEC-signed TLSA 3 1 1 of the
# sink's key, one third without TLSA (secure denial: opportunistic TLS). One bench/sink.c
# (STARTTLS, counts full and resumed handshakes) listens on all S addresses. The load is
# bench/smtpload.c --domains --order O: message i goes to rcpt@ the domains b(i) + j mod N,
# j < K (K different domains per message; b(i) pseudo-random or i*K).
#   mxguard        on 127.0.70.1:10025, its defaults (metrics on 127.0.70.1:9125)
#   postfix        on 127.0.70.2:2526, MX delivery (no relayhost), smtp_tls_security_level =
#                  dane, smtp_dns_support_level = dnssec, unbound on 127.0.70.5 (validating)
#   postfix-reuse  the same with smtp_tls_connection_reuse = yes
#   direct         smtpload --direct: each message plaintext straight into its domain's sink
#                  address (the ceiling; with K > 1, M*K messages of one recipient each)
# Every relay gets a warm-up of one message per domain first (DNS, TLSA and policy caches).
# msg/s = M / (time until the sink counted M*K deliveries); CPU = the relay's processes and
# their children from /proc (Postfix's unbound shown apart); handshakes at the sink (full =
# TLS - resumed) and, for mxguard, mxguard_upstream_tls_handshakes_total{kind} over the run;
# "pairs" = distinct (MX host, requirement) pairs the run's recipients touch.
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export MXG_SRC=${MXG_SRC:-$(cd "$here/.." && pwd)}
export MXG_BIN=${MXG_BIN:-$MXG_SRC/build/mxguard}
MXG_BIN=$(cd "$(dirname "$MXG_BIN")" && pwd)/$(basename "$MXG_BIN")

NDOM=200 NSINK=10 K=1 SESSIONS=20 MESSAGES=2000 SIZE=1 RUNS=3 SKIP="" RESULTS="" ORDER=random
MXG_ENV=""
while [ $# -gt 0 ]; do
    case $1 in
        --domains) NDOM=$2; shift 2 ;;
        --sinks) NSINK=$2; shift 2 ;;
        --rcpt-domains) K=$2; shift 2 ;;
        --sessions) SESSIONS=$2; shift 2 ;;
        --messages) MESSAGES=$2; shift 2 ;;
        --size) SIZE=$2; shift 2 ;;
        --runs) RUNS=$2; shift 2 ;;
        --order) ORDER=$2; shift 2 ;;
        --mxg-env) MXG_ENV=$2; shift 2 ;;
        --skip) SKIP=$2; shift 2 ;;
        --results) RESULTS=$2; shift 2 ;;
        -h|--help) sed -n '2,44p' "$0"; exit 0 ;;
        *) echo "bench/many.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
[ "$NSINK" -ge 1 ] && [ "$NSINK" -le 60 ] || { echo "bench/many.sh: --sinks 1..60" >&2; exit 2; }
[ "$K" -ge 1 ] && [ "$K" -le "$NDOM" ] || { echo "bench/many.sh: --rcpt-domains 1..N" >&2; exit 2; }
case $ORDER in random|rr) ;; *) echo "bench/many.sh: --order random|rr" >&2; exit 2 ;; esac
skip() { [[ ",$SKIP," == *",$1,"* ]]; }

. "$MXG_SRC/tests/integration/lib.sh"
. "$here/common.sh"
TB_NAME=bench-many
[ "$(ulimit -n)" -ge 8192 ] || ulimit -n 8192 2>/dev/null || ulimit -n "$(ulimit -Hn)"
tb_init
R=$TB/results.tsv
: >"$R"
log() { echo "# [${SECONDS}s] $*" >&2; }
rec() { printf '%s\t%s\t%s\n' "$@" >>"$R"; } # rec METRIC TARGET VALUE

bench_tools

# ------------------------------------------------------------------ the world
tb_dns_rrl 0 # Postfix's unbound asks over UDP: nsd must not rate-limit the runs' bursts
SINK_IPS=()
for i in $(seq 0 $((NSINK - 1))); do SINK_IPS+=("127.0.70.$((180 + i))"); done
bash "$here/mkmany.sh" "$TB/dns" "$NDOM" "${SINK_IPS[@]}" >"$TB/mkmany.log" 2>&1 ||
    tb_die "bench/mkmany.sh failed: $(tail -n 5 "$TB/mkmany.log")"
DOMS=$TB/dns/many.domains
tb_start_dns
dig @127.0.70.53 -p 5300 +noall +answer +dnssec d1.wide.test MX | grep -q RRSIG ||
    tb_die "nsd does not serve the signed wide.test"
CERT=$TB/dns/certs/mx.dane-ee.test
listen=()
for ip in "${SINK_IPS[@]}"; do listen+=(--listen "$ip:25"); done
tb_spawn sink "$W/sink" "${listen[@]}" --cert "$CERT.crt" --key "$CERT.key" \
    --name mx.wide.test --stats "$TB/sink.stats"
for i in $(seq 50); do [ -s "$TB/sink.stats" ] && break; sleep 0.1; done
[ -s "$TB/sink.stats" ] || tb_die "the sink did not start: $(cat "$TB/sink.log")"

# (MX host, requirement) pairs the recipients of M messages touch, and how many are DANE
LOAD=(--domains "$DOMS" --rcpt-domains "$K" --order "$ORDER")
"$W/smtpload" "${LOAD[@]}" -m "$MESSAGES" --list >"$TB/recipients" || tb_die "smtpload --list failed"
read -r PAIRS PAIRS_DANE < <(awk 'NR == FNR { mx[$1] = $3 " " $4; next } { u[mx[$3]] = 1 }
    END { for (p in u) { n++; if (p ~ / dane$/) d++ } print n, d + 0 }' "$DOMS" "$TB/recipients")
rec pairs - "$PAIRS"
rec pairs_dane - "$PAIRS_DANE"
rec domains - "$NDOM"
rec sinks - "$NSINK"

# mxguard, its defaults (what the README tells an operator to start from)
cat >"$TB/mxguard.conf" <<EOF
server: { listen = ["127.0.70.1:10025"]; allow_networks = ["127.0.0.0/8"];
          hostname = "mxguard.bench.test"; max_sessions = 30000; };
upstream: { port = 25; helo_name = "mxguard.bench.test"; source_ipv4 = "127.0.70.1"; };
dns: { mode = "stub"; servers = ["127.0.70.53:5300"]; trust_anchor_file = "$TB/dns/root.ds"; };
tls: { ca_file = "$TB/dns/certs/ca.crt"; };
state: { directory = "$TB/state"; };
tlsrpt: { send_reports = false; };
metrics: { listen = "127.0.70.1:9125"; };
log: { level = "info"; };
EOF
mkdir -p "$TB/state"
MXG_ADDR=127.0.70.1:10025
BASE_BIN="" BASE_ADDR=""
# metric NAME LABEL — one value of mxguard's /metrics (0 if absent)
metric() {
    python3 -c 'import urllib.request as u; print(u.urlopen("http://127.0.70.1:9125/metrics", timeout=5).read().decode())' 2>/dev/null |
        awk -v k="$1{$2}" '$1 == k { v = $2 } END { print v + 0 }'
}
# warm_up TARGET ADDR — one message to every domain (DNS, TLSA, policies cached; the first
# contact with every pair: its handshakes are recorded); 1 if not all arrived
warm_up() {
    sink_reset
    "$W/smtpload" -s "$SESSIONS" -m "$NDOM" -l 1024 --domains "$DOMS" "$2" >"$TB/warm.out" 2>&1 ||
        log "warm-up via $2: $(tail -n 3 "$TB/warm.out")"
    wait_sink "$NDOM" 60 || return 1
    sleep 0.15
    rec warm_tls "$1" "$(sink tls)"
    rec warm_resumed "$1" "$(sink resumed)"
}
# shellcheck disable=SC2086
start_mxguard mxguard $MXG_ENV
[ -z "$MXG_ENV" ] || log "mxguard settings from the environment: $MXG_ENV"
MXG_PID=$(tb_pid mxguard)
warm_up mxguard "$MXG_ADDR" || tb_die "mxguard did not relay the warm-up ($(sink messages) of $NDOM): $(tail -n 20 "$TB/mxguard.log")"
n=$(grep -Ec 'peer[ =]DANE' "$TB/mxguard.log")
[ "$n" -ge "$PAIRS_DANE" ] || [ "$n" -ge $((NDOM * 2 / 3)) ] ||
    tb_die "mxguard verified only $n connections by DANE in the warm-up"
log "mxguard warm-up: $NDOM domains, $n DANE-verified connections"

PF_PID=""
if ! skip postfix; then
    PF_RELAYHOST="" start_postfix
    sink_reset
    warm_up postfix 127.0.70.2:2526 || tb_die "Postfix did not relay the warm-up ($(sink messages) of $NDOM): $(tail -n 20 "$PF/maillog")"
    n=$(grep -c 'Verified TLS connection established to mx[0-9]*\.wide\.test' "$PF/maillog")
    [ "$n" -ge $((NDOM * 2 / 3)) ] ||
        tb_die "Postfix verified only $n connections by DANE: $(grep -i tls "$PF/maillog" | tail -5)"
    log "Postfix warm-up: $NDOM domains, $n DANE-verified connections"
fi

# ------------------------------------------------------------------ the runs
TARGETS="mxguard postfix postfix-reuse direct"
skip postfix && TARGETS="mxguard direct"
DELIVERIES=$((MESSAGES * K))
WAIT=$((60 + DELIVERIES / 25))
addr_of() {
    case $1 in
        mxguard) echo "$MXG_ADDR" ;;
        postfix*) echo 127.0.70.2:2526 ;;
    esac
}
pids_of() {
    case $1 in
        mxguard) echo "$MXG_PID" ;;
        postfix*) echo "$PF_PID" ;;
    esac
}
CUR_TARGET=""
set_target() {
    [ "$1" = "$CUR_TARGET" ] && return 0
    case $1 in
        postfix) postfix_reuse no ;;
        postfix-reuse) postfix_reuse yes ;;
    esac
    CUR_TARGET=$1
}
bytes=$((SIZE * 1024))
for run in $(seq "$RUNS"); do
    for target in $TARGETS; do
        set_target "$target"
        sink_reset
        c0=$(cpu $(pids_of "$target"))
        u0=$(cpu "$(tb_pid unbound 2>/dev/null)")
        if [ "$target" = mxguard ]; then
            f0=$(metric mxguard_upstream_tls_handshakes_total 'kind="full"')
            r0=$(metric mxguard_upstream_tls_handshakes_total 'kind="resumed"')
            n0=$(metric mxguard_upstream_connections_total 'how="new"')
            e0=$(metric mxguard_upstream_connections_total 'how="reused"')
            s0=$(metric mxguard_upstream_connections_total 'how="stale"')
        fi
        t0=$(date +%s.%N)
        if [ "$target" = direct ]; then
            "$W/smtpload" -s "$SESSIONS" -m "$DELIVERIES" -l "$bytes" "${LOAD[@]}" --direct \
                >"$TB/load.out" 2>&1 || log "$target: smtpload: $(tail -n 3 "$TB/load.out")"
        else
            "$W/smtpload" -s "$SESSIONS" -m "$MESSAGES" -l "$bytes" "${LOAD[@]}" \
                "$(addr_of "$target")" >"$TB/load.out" 2>&1 ||
                log "$target: smtpload: $(tail -n 3 "$TB/load.out")"
        fi
        if ! wait_sink "$DELIVERIES" "$WAIT"; then
            log "$target run $run: only $(sink messages) of $DELIVERIES deliveries arrived"
            continue
        fi
        sleep 0.15 # the sink writes its counts every 100 ms
        c1=$(cpu $(pids_of "$target"))
        u1=$(cpu "$(tb_pid unbound 2>/dev/null)")
        rate=$(python3 -c "print('%.1f' % ($MESSAGES / ($(sink last) - $t0)))")
        rec rate "$target" "$rate"
        if [ "$target" != direct ]; then
            rec cpu_ms "$target" "$(python3 -c "print('%.4f' % (($c1 - $c0) * 1000 / $MESSAGES))")"
            [[ $target == postfix* ]] &&
                rec resolver_cpu_ms "$target" "$(python3 -c "print('%.4f' % (($u1 - $u0) * 1000 / $MESSAGES))")"
        fi
        rec sink_conns "$target" "$(sink connections)"
        rec load_fail "$target" "$(awk '$1 == "ok" { print $4 }' "$TB/load.out")"
        rec sink_tls "$target" "$(sink tls)"
        rec sink_resumed "$target" "$(sink resumed)"
        if [ "$target" = mxguard ]; then
            rec mxg_full "$target" $(( $(metric mxguard_upstream_tls_handshakes_total 'kind="full"') - f0 ))
            rec mxg_resumed "$target" $(( $(metric mxguard_upstream_tls_handshakes_total 'kind="resumed"') - r0 ))
            rec mxg_conn_new "$target" $(( $(metric mxguard_upstream_connections_total 'how="new"') - n0 ))
            rec mxg_conn_reused "$target" $(( $(metric mxguard_upstream_connections_total 'how="reused"') - e0 ))
            rec mxg_conn_stale "$target" $(( $(metric mxguard_upstream_connections_total 'how="stale"') - s0 ))
        fi
        log "$target run $run: $rate msg/s; sink: $(sink connections) connections, $(sink tls) handshakes ($(sink resumed) resumed)"
    done
done
rec peak_rss_kib mxguard "$(awk '$1 == "VmHWM:" { print $2 }' "/proc/$MXG_PID/status")"

# ------------------------------------------------------------------ the table
[ -n "$RESULTS" ] && cp "$R" "$RESULTS"
python3 "$here/report_many.py" "$R" --sessions "$SESSIONS" --messages "$MESSAGES" --runs "$RUNS" \
    --rcpt-domains "$K" --size "$SIZE" --order "$ORDER"
