#!/usr/bin/env bash
# bench/run.sh — mxguard against Postfix 3.7 and the ceiling, measured side by side in one run;
# prints one table (bench/report.py). Method, targets and recorded figures: docs/BENCHMARKS.md.
#
#   bench/run.sh [--quick] [--runs R] [--sessions N] [--messages M] [--sizes "1 10 100"]
#                [--idle "1000 10000"] [--skip LIST] [--results FILE] [--base BIN]
#
#   --quick     about a minute: 1 KiB only, one run, 500 messages, 1,000 idle sessions,
#               a short callgrind and decision run
#   --skip      comma list of parts to leave out: postfix, latency, mem, decide, cpu
#   --cg-messages N  messages counted by callgrind (default 200; --quick: 30; put it after
#               --quick to count 200 in a quick run)
#   --base BIN  a second mxguard binary (e.g. the parent commit's build) measured beside
#               MXG_BIN in the same run as target "mxguard-base" (its own process on
#               127.0.70.3:10025, same settings; throughput, CPU and latency only); the table
#               then prints MXG_BIN / base for msg/s and CPU per message
#   --pg        MXG_BIN runs with state.backend = "postgresql" on a private PostgreSQL 15
#               cluster (tests/integration/lib.sh tb_start_pg; sync every 1 s, so TLSRPT
#               batches are pushed while it runs); with --base (the same binary, or another)
#               the base keeps the sqlite backend: the ratio is PostgreSQL / SQLite
#   env MXG_BIN the mxguard binary (default build/mxguard); its directory must hold the
#               libmxg_*.a of the same build (for bench/decide.c)
#
# The world (all on 127.0.70.0/24, built with tests/integration/lib.sh, which also takes the
# test-bed lock): nsd serving the signed test hierarchy (mkzones.sh), the sink (bench/sink.c,
# STARTTLS, counts) on 127.0.70.21:25 = mx.dane-ee.test, whose TLSA 3 1 1 is DNSSEC-signed;
# senders (smtp-source from Debian's postfix package, bench/smtpload.c) connect from 127.0.0.1.
#   (a) mxguard on 127.0.70.1:10025 → DANE → sink       (policy cached after the warm-up)
#   (b) Postfix on 127.0.70.2:2526, relayhost dane-ee.test, smtp_tls_security_level = dane,
#       smtp_dns_support_level = dnssec, resolving through unbound on 127.0.70.5:53 (validating
#       with the test anchor; Postfix runs in a private mount namespace whose /etc/resolv.conf
#       names it), with its defaults ("postfix") and with smtp_tls_connection_reuse = yes
#       ("postfix-reuse")
#   (c) smtp-source straight into the sink ("direct", plaintext: the ceiling)
# Per size and target: R runs of smtp-source -s N -m M -l SIZE (msg/s = M / time until the sink
# counted the M-th message; CPU of the relay's processes from /proc, children included), then
# one bench/smtpload run with the same shape for the latency (sink-side: from the client's
# connect to the sink's final dot, i.e. delivered; p50/p99). Medians over the runs.
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export MXG_SRC=${MXG_SRC:-$(cd "$here/.." && pwd)}
export MXG_BIN=${MXG_BIN:-$MXG_SRC/build/mxguard}
MXG_BIN=$(cd "$(dirname "$MXG_BIN")" && pwd)/$(basename "$MXG_BIN")
BUILD=$(dirname "$MXG_BIN")

QUICK=0 RUNS=3 SESSIONS=20 MESSAGES=2000 SIZES="1 10 100" IDLE="1000 10000" SKIP="" RESULTS=""
BASE_BIN="" PG=0
CG_MSGS=200 DECIDE_N=200000
while [ $# -gt 0 ]; do
    case $1 in
        --quick) QUICK=1; RUNS=1; MESSAGES=500; SIZES="1"; IDLE="1000"; CG_MSGS=30; DECIDE_N=20000; shift ;;
        --runs) RUNS=$2; shift 2 ;;
        --sessions) SESSIONS=$2; shift 2 ;;
        --messages) MESSAGES=$2; shift 2 ;;
        --sizes) SIZES=$2; shift 2 ;;
        --idle) IDLE=$2; shift 2 ;;
        --skip) SKIP=$2; shift 2 ;;
        --results) RESULTS=$2; shift 2 ;;
        --pg) PG=1; shift ;;
        --base) BASE_BIN=$(cd "$(dirname "$2")" && pwd)/$(basename "$2"); shift 2 ;;
        --cg-messages) CG_MSGS=$2; shift 2 ;;
        -h|--help) sed -n '2,38p' "$0"; exit 0 ;;
        *) echo "bench/run.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
skip() { [[ ",$SKIP," == *",$1,"* ]]; }

. "$MXG_SRC/tests/integration/lib.sh"
. "$here/common.sh"
TB_NAME=bench
need=$(( $(echo "$IDLE" | tr ' ' '\n' | sort -n | tail -1) * 2 + 4096 ))
[ "$(ulimit -n)" -ge "$need" ] || ulimit -n "$need" 2>/dev/null || ulimit -n "$(ulimit -Hn)"
tb_init
R=$TB/results.tsv
: >"$R"
log() { echo "# [${SECONDS}s] $*" >&2; }
rec() { printf '%s\t%s\t%s\t%s\n' "$@" >>"$R"; } # rec METRIC TARGET SIZE VALUE

# ------------------------------------------------------------------ tools
bench_tools
if ! skip decide; then
    # shellcheck disable=SC2046
    cc $CF -I"$MXG_SRC" -o "$W/decide" "$here/decide.c" "$BUILD/libmxg_policy.a" \
        "$BUILD/libmxg_dane.a" "$BUILD/libmxg_dns.a" "$BUILD/libmxg_http.a" "$BUILD/libmxg_tls.a" "$BUILD/libmxg_core.a" \
        $(pkg-config --libs libuv openssl getdns libconfig jansson libcurl sqlite3 libmicrohttpd) ||
        { log "cannot build bench/decide.c (MXG_BIN's directory needs libmxg_*.a): skipped"; SKIP="$SKIP,decide"; }
fi

# ------------------------------------------------------------------ the world
tb_dns_rrl 0 # Postfix's unbound asks over UDP: nsd must not rate-limit the runs' bursts
tb_start_dns
CERT=$TB/dns/certs/mx.dane-ee.test
SINK_IP=127.0.70.21
tb_spawn sink "$W/sink" --listen "$SINK_IP:25" --cert "$CERT.crt" --key "$CERT.key" \
    --name mx.dane-ee.test --stats "$TB/sink.stats"
for i in $(seq 50); do [ -s "$TB/sink.stats" ] && break; sleep 0.1; done
[ -s "$TB/sink.stats" ] || tb_die "the sink did not start: $(cat "$TB/sink.log")"

# mxguard
cat >"$TB/mxguard.conf" <<EOF
server: { listen = ["127.0.70.1:10025"]; allow_networks = ["127.0.0.0/8"];
          hostname = "mxguard.bench.test"; max_sessions = 30000; };
upstream: { port = 25; helo_name = "mxguard.bench.test"; source_ipv4 = "127.0.70.1"; };
dns: { mode = "stub"; servers = ["127.0.70.53:5300"]; trust_anchor_file = "$TB/dns/root.ds"; };
tls: { ca_file = "$TB/dns/certs/ca.crt"; };
state: { directory = "$TB/state"; };
tlsrpt: { send_reports = false; };
log: { level = "info"; };
EOF
mkdir -p "$TB/state"
# --pg: the base's configuration (below) is made from this one before the backend changes
cp "$TB/mxguard.conf" "$TB/mxguard-sqlite.conf"
if [ "$PG" = 1 ]; then
    tb_start_pg
    sed -i "s|state: { directory = \"$TB/state\"; };|state: { directory = \"$TB/state\"; backend = \"postgresql\"; postgresql = \"$TB_PG_CONNINFO\"; postgresql_password_file = \"$TB/pg/password\"; sync_interval = \"1s\"; };|" \
        "$TB/mxguard.conf"
    grep -q 'backend = "postgresql"' "$TB/mxguard.conf" || tb_die "--pg: the configuration was not changed"
fi
MXG_ADDR=127.0.70.1:10025
start_mxguard mxguard
MXG_PID=$(tb_pid mxguard)
# warm-up: the policy (MX, TLSA, MTA-STS lookups) and the cache
"$W/smtpload" -s 1 -m 3 -l 1024 -t rcpt@dane-ee.test "$MXG_ADDR" >/dev/null ||
    tb_die "mxguard does not relay to the sink: $(tail -n 20 "$TB/mxguard.log")"
grep -Eq 'peer[ =]DANE' "$TB/mxguard.log" || tb_die "mxguard did not verify the sink by DANE"
# the base build (--base): the same settings on its own address and state directory
BASE_ADDR=127.0.70.3:10025
if [ -n "$BASE_BIN" ]; then
    [ -x "$BASE_BIN" ] || tb_die "--base: $BASE_BIN is not an executable"
    sed -e 's/127\.0\.70\.1:10025/127.0.70.3:10025/; s/source_ipv4 = "127\.0\.70\.1"/source_ipv4 = "127.0.70.3"/' \
        -e "s|\"$TB/state\"|\"$TB/state-base\"|" "$TB/mxguard-sqlite.conf" >"$TB/mxguard-base.conf"
    mkdir -p "$TB/state-base"
    start_mxguard mxguard-base
    BASE_PID=$(tb_pid mxguard-base)
    "$W/smtpload" -s 1 -m 3 -l 1024 -t rcpt@dane-ee.test "$BASE_ADDR" >/dev/null ||
        tb_die "mxguard-base does not relay to the sink: $(tail -n 20 "$TB/mxguard-base.log")"
    grep -Eq 'peer[ =]DANE' "$TB/mxguard-base.log" || tb_die "mxguard-base did not verify the sink by DANE"
fi

# Postfix as a DANE smarthost (and unbound for its validated DNS)
if ! skip postfix; then
    start_postfix
    sink_reset
    smtp-source -s 1 -m 3 -l 1024 -f a@bench.test -t b@dane-ee.test 127.0.70.2:2526 ||
        tb_die "smtp-source into Postfix failed"
    wait_sink 3 30 || tb_die "Postfix does not relay to the sink: $(tail -n 20 "$PF/maillog")"
    grep -q 'Verified TLS connection established to mx.dane-ee.test' "$PF/maillog" ||
        tb_die "Postfix did not verify the sink by DANE: $(grep -i tls "$PF/maillog" | tail -5)"
fi

# ------------------------------------------------------------------ throughput + latency
TARGETS="mxguard postfix postfix-reuse direct"
WAIT=$((30 + MESSAGES / 50)) # seconds for one run to arrive (Postfix at 100 msg/s: M / 100)
skip postfix && TARGETS="mxguard direct"
[ -n "$BASE_BIN" ] && TARGETS="mxguard-base $TARGETS"
addr_of() {
    case $1 in
        mxguard) echo "$MXG_ADDR" ;;
        mxguard-base) echo "$BASE_ADDR" ;;
        postfix*) echo 127.0.70.2:2526 ;;
        direct) echo "$SINK_IP:25" ;;
    esac
}
pids_of() {
    case $1 in
        mxguard) echo "$MXG_PID" ;;
        mxguard-base) echo "$BASE_PID" ;;
        postfix*) echo "$PF_PID" ;;
        direct) echo "" ;;
    esac
}
# set_target T — prepare target T for a run (Postfix's reuse setting); once per change
CUR_TARGET=""
set_target() {
    [ "$1" = "$CUR_TARGET" ] && return 0
    case $1 in
        postfix) postfix_reuse no ;;
        postfix-reuse) postfix_reuse yes ;;
    esac
    CUR_TARGET=$1
}
# Runs are interleaved (run 1 of every target, then run 2, ...), so that a machine that gets
# busier or quieter during the benchmark moves every target alike.
for size in $SIZES; do
    bytes=$((size * 1024))
    for run in $(seq "$RUNS"); do
        for target in $TARGETS; do
            set_target "$target"
            a=$(addr_of "$target")
            sink_reset
            c0=$(cpu $(pids_of "$target"))
            u0=$(cpu "$(tb_pid unbound 2>/dev/null)")
            t0=$(date +%s.%N)
            smtp-source -s "$SESSIONS" -m "$MESSAGES" -l "$bytes" -f a@bench.test \
                -t b@dane-ee.test "$a" >"$TB/smtp-source.out" 2>&1 ||
                log "$target: smtp-source: $(tail -n 3 "$TB/smtp-source.out")"
            if ! wait_sink "$MESSAGES" "$WAIT"; then
                log "$target ${size}K run $run: only $(sink messages) of $MESSAGES arrived"
                continue
            fi
            c1=$(cpu $(pids_of "$target"))
            u1=$(cpu "$(tb_pid unbound 2>/dev/null)")
            rate=$(python3 -c "print('%.1f' % ($MESSAGES / ($(sink last) - $t0)))")
            rec rate "$target" "$size" "$rate"
            if [ "$target" != direct ]; then
                rec cpu_ms "$target" "$size" "$(python3 -c "print('%.3f' % (($c1 - $c0) * 1000 / $MESSAGES))")"
                [[ $target == postfix* ]] &&
                    rec resolver_cpu_ms "$target" "$size" "$(python3 -c "print('%.3f' % (($u1 - $u0) * 1000 / $MESSAGES))")"
            fi
            rec sink_tls "$target" "$size" "$(sink tls)"
            rec sink_resumed "$target" "$size" "$(sink resumed)"
            rec sink_conns "$target" "$size" "$(sink connections)"
            log "$target ${size} KiB run $run: $rate msg/s, $(sink connections) connections / $(sink tls) handshakes at the sink"
        done
    done
    skip latency && continue
    for target in $TARGETS; do
        set_target "$target"
        a=$(addr_of "$target")
        sink_reset
        "$W/smtpload" -s "$SESSIONS" -m "$MESSAGES" -l "$bytes" -f a@bench.test \
            -t b@dane-ee.test "$a" >"$TB/smtpload.out" 2>&1 ||
            log "$target: smtpload: $(tail -n 3 "$TB/smtpload.out")"
        if wait_sink "$MESSAGES" "$WAIT"; then
            sleep 0.15 # the stats file is written every 100 ms
            rec p50_ms "$target" "$size" "$(sink lat_p50)"
            rec p99_ms "$target" "$size" "$(sink lat_p99)"
            rec load_rate "$target" "$size" "$(awk '{ print $8 }' "$TB/smtpload.out")"
        fi
    done
done
rec peak_rss_kib mxguard - "$(awk '$1 == "VmHWM:" { print $2 }' "/proc/$MXG_PID/status")"
if [ -n "$BASE_BIN" ]; then
    rec peak_rss_kib mxguard-base - "$(awk '$1 == "VmHWM:" { print $2 }' "/proc/$BASE_PID/status")"
    tb_stop mxguard-base # the rest (idle RSS, decisions, callgrind) measures MXG_BIN only
fi

# ------------------------------------------------------------------ idle sessions (RSS)
if ! skip mem; then
    for n in $IDLE; do
        tb_stop mxguard
        start_mxguard mxguard "MXGUARD_SERVER_MAX_SESSIONS=$((n + 100))"
        MXG_PID=$(tb_pid mxguard)
        "$W/smtpload" -s 1 -m 3 -l 1024 -t rcpt@dane-ee.test "$MXG_ADDR" >/dev/null
        sleep 0.3
        r0=$(awk '$1 == "VmRSS:" { print $2 }' "/proc/$MXG_PID/status")
        rm -f "$TB/idle.ready"
        tb_spawn idle "$W/smtpload" --idle "$n" --ready "$TB/idle.ready" "$MXG_ADDR"
        for i in $(seq 1800); do [ -s "$TB/idle.ready" ] && break; sleep 0.1; done
        sleep 0.5
        r1=$(awk '$1 == "VmRSS:" { print $2 }' "/proc/$MXG_PID/status")
        up=$(awk '{ print $2 }' "$TB/idle.ready" 2>/dev/null)
        log "idle $n: $(cat "$TB/idle.ready" 2>/dev/null); RSS $r0 -> $r1 KiB"
        if [ "${up:-0}" -gt 0 ]; then
            rec idle_rss_per_session_kib mxguard "$n" "$(python3 -c "print('%.2f' % (($r1 - $r0) / $up))")"
            rec idle_rss_total_kib mxguard "$n" "$r1"
        fi
        tb_stop idle
    done
fi

# ------------------------------------------------------------------ decisions
if ! skip decide; then
    "$W/decide" -c "$TB/mxguard.conf" -n "$DECIDE_N" -p 1 dane-ee.test >"$TB/decide.out" 2>&1 &&
        read -r _ cold _ per_s _ us _ res <"$TB/decide.out" &&
        { rec decide_cold_ms mxguard - "$cold"; rec decide_cached_per_s mxguard - "$per_s";
          rec decide_cached_us mxguard - "$us"; log "decisions: $(cat "$TB/decide.out")"; } ||
        log "decide failed: $(cat "$TB/decide.out")"
fi

# ------------------------------------------------------------------ instructions per message
if ! skip cpu && command -v valgrind >/dev/null; then
    # instructions per message are exact, not noisy: with --base both builds are counted
    for cgt in mxguard ${BASE_BIN:+mxguard-base}; do
    tb_stop "$cgt"
    cgbin=$MXG_BIN cgconf=$TB/mxguard.conf cgaddr=$MXG_ADDR
    [ "$cgt" = mxguard-base ] && cgbin=$BASE_BIN cgconf=$TB/mxguard-base.conf cgaddr=$BASE_ADDR
    for mode in cached fresh; do
        idle=30s
        [ "$mode" = fresh ] && idle=0
        env MXGUARD_UPSTREAM_CACHE_IDLE=$idle setsid valgrind --tool=callgrind \
            --callgrind-out-file="$TB/callgrind.$cgt.$mode.%p" "$cgbin" run -c "$cgconf" \
            >"$TB/cg.$cgt.$mode.out" 2>"$TB/cg.$cgt.$mode.log" </dev/null 9>&- &
        echo "$! callgrind-$cgt-$mode" >>"$TB/pids"
        cgpid=$!
        for i in $(seq 300); do
            "$W/smtpload" -s 1 -m 1 -l 1024 -t rcpt@dane-ee.test "$cgaddr" >/dev/null 2>&1 && break
            sleep 0.2
        done
        "$W/smtpload" -s 2 -m 10 -l 1024 -t rcpt@dane-ee.test "$cgaddr" >/dev/null 2>&1
        callgrind_control -d "$cgpid" >/dev/null 2>&1 # part 1: start-up + warm-up; count from here
        smtp-source -s 2 -m "$CG_MSGS" -l 1024 -f a@bench.test -t b@dane-ee.test "$cgaddr" \
            >/dev/null 2>&1
        callgrind_control -d "$cgpid" >/dev/null 2>&1
        sleep 0.5
        f=$(ls "$TB"/callgrind."$cgt"."$mode".*.2 2>/dev/null | head -1) # part 2: the measured messages
        ir=$(awk '/^summary:|^totals:/ { print $2; exit }' "$f" 2>/dev/null)
        if [ -n "$ir" ]; then
            rec instr_per_msg "$cgt-$mode" 1 "$(python3 -c "print(int($ir / $CG_MSGS))")"
            log "callgrind $cgt ($mode connections): $ir instructions for $CG_MSGS messages ($f)"
        else
            log "callgrind $cgt ($mode): no figures ($(tail -n 3 "$TB/cg.$cgt.$mode.log"))"
        fi
        tb_stop "callgrind-$cgt-$mode"
    done
    done
fi

# ------------------------------------------------------------------ the table
[ -n "$RESULTS" ] && cp "$R" "$RESULTS"
python3 "$here/report.py" "$R" --sessions "$SESSIONS" --messages "$MESSAGES" --runs "$RUNS"
