# lib.sh — shared helpers for the mxguard integration tests (sourced by t_*.sh).
#
# Environment: MXG_BIN (the binary; default $MXG_SRC/build/mxguard), MXG_SRC (repo root),
# MXG_KEEP=1 keeps the test directory, TMPDIR (where it goes), PYTHON (default python3;
# resolved once to the interpreter's own path),
# MXG_TEST_WORKERS=N server.workers for every tb_write_config (see there; TB_WORKERS=1 in a
# script pins one process).
#
# Addresses (all in 127.0.70.0/24):
#   127.0.70.1:10025   mxguard           127.0.70.11:2525  mx1.example.test (mxserver)
#   127.0.70.2:2526    legacy Postfix    127.0.70.12:2525  mx2.example.test
#   127.0.70.3:10025   2nd mxguard       127.0.70.13       dead.fallback.test (nothing)
#   127.0.70.53:5300   nsd               127.0.70.14:2525  mx.plain.test (no STARTTLS)
#   127.0.70.100       test clients      127.0.70.15:2525  mx.badtls.test (TLS fails)
#   127.0.70.110-112   t_inbound_abuse.sh AUTH clients (attacker, trusted, fresh)
#   127.0.70.200       client outside allow_networks (127.0.70.0/25)
#   127.0.70.54:5300   nsd serving the UNSIGNED zones (tb_start_dns_stripped)
#   127.0.70.59:5300   a slow resolver: nsd's answers, each after a delay (tb_start_dns_slow)
#   DANE MX servers (mkzones.sh), port 2525, short name -> host:
#   127.0.70.21 dane-ee -> mx.dane-ee.test       127.0.70.28 dane-bogus -> mx.dane-bogus.test
#   127.0.70.22 dane-ta -> mx.dane-ta.test       127.0.70.29 dane-nodata -> mx.dane-nodata.test
#   127.0.70.23 dane-taname -> mx.dane-taname.test (cert wrong.dane-taname.test)
#   127.0.70.24 dane-2nd1 -> mx1.dane-2nd.test   127.0.70.30 dane-unusable -> mx.dane-unusable.test
#   127.0.70.25 dane-2nd2 -> mx2.dane-2nd.test   127.0.70.31 dane-unusable-plain (no STARTTLS)
#   127.0.70.27 dane-allbad -> mx3.dane-allbad.test  127.0.70.32 dane-nostarttls (no STARTTLS)
#   127.0.70.33 dane-cname -> real.dane-target.test  127.0.70.34 dane-expired -> mx.dane-expired.test
#   127.0.70.35 mx.abogus.test (no server: its A RRset is bogus)
#   127.0.70.36 dane-swap -> mx.dane-swap.test (its TLSA RRset swapped mid-test: tb_dns_swap)
#   127.0.70.140 dane-bigcert -> mx.dane-bigcert.test (a >4 KB certificate, TLSA 3 0 0 of it)
#   127.0.70.141 dane-bigwrong -> mx.dane-bigwrong.test (TLSA 3 0 0 of dane-bigcert's certificate)
#   127.0.70.142-149: reserved for more big-record DANE servers (§Limits)
#   MTA-STS (mkzones.sh): nginx 127.0.70.60:443 serves https://mta-sts.D/ for the sts-* domains
#   (tb_start_nginx); MX servers port 2525, short name -> host:
#   127.0.70.40 sts-enforce -> mx.sts-enforce.test   127.0.70.48 sts-wild-bc -> b.c.sts-wild.test
#   127.0.70.41 sts-nomatch -> mx.sts-nomatch.test   127.0.70.49 sts-wild-a -> a.sts-wild.test
#   127.0.70.42 sts-nomatch2 -> mx2.sts-nomatch.test 127.0.70.50 sts-open -> mx.sts-open.test
#   127.0.70.43 sts-nomatch-all1 -> mx1.sts-nomatch-all.test  127.0.70.51 sts-cname -> mx.sts-cname.test
#   127.0.70.44 sts-nomatch-all2 -> mx2.sts-nomatch-all.test  127.0.70.52 sts-dane -> mx.sts-dane.test
#   127.0.70.45 sts-badcert -> mx.sts-badcert.test   127.0.70.53 sts-cache -> mx.sts-cache.test
#   127.0.70.46 sts-testing -> mx.sts-testing.test   127.0.70.54 sts-cache2 -> mx2.sts-cache.test
#   127.0.70.47 sts-none -> mx.sts-none.test         127.0.70.55 sts-rotate -> mx.sts-rotate.test
#   127.0.70.57 sts-short -> mx.sts-short.test       127.0.70.56 sts-rotate2 -> mx2.sts-rotate.test
#   127.0.70.58 sts-daneok -> mx.sts-daneok.test
#   Hostile MX suite (t_hostile_*.sh, hostile_lib.sh): one hostile_mx.py, port 2525, on
#   127.0.70.160 mx1.hostile.test   127.0.70.161 mx2.hostile.test (hostile.test MX 10/20)
#   127.0.70.162 mx.hostile-dane.test (TLSA 3 1 1)   127.0.70.163 mx.hostile2.test (2nd leg)
#   127.0.70.164 the queue's bounce route           127.0.70.165 mx.hostile-rua.test (TLSRPT rua)
#   (127.0.70.166-179 are free for more hostile addresses)
#   127.0.70.70:5432   PostgreSQL 15 (tb_start_pg: the fleet's shared state, TLS, name pg.test)
#
# Every process is started with tb_spawn (own process group, recorded in $TB/pids) and
# killed on exit — by the EXIT trap, or by a detached watchdog if the script is killed.
# Test-beds share fixed addresses, so tests take a global lock (they serialise under ctest -j).

set -u
set -o pipefail

TB_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
MXG_SRC=${MXG_SRC:-$(cd "$TB_LIB_DIR/../.." && pwd)}
MXG_BIN=${MXG_BIN:-$MXG_SRC/build/mxguard}
PYTHON=${PYTHON:-python3}
# the interpreter itself, not a wrapper found first on PATH (a pyenv shim costs ~0.2 s per
# start, and the scripts start python hundreds of times)
PYTHON=$("$PYTHON" -c 'import sys; print(sys.executable or "")' 2>/dev/null | grep . || echo "$PYTHON")
TB_NAME=$(basename "$0" .sh)
export PATH="$PATH:/usr/sbin:/sbin"

TB_MXG_IP=127.0.70.1
TB_MXG_PORT=10025
TB_CLIENT_IP=127.0.70.100
TB_OUTSIDER_IP=127.0.70.200
TB_DNS_IP=127.0.70.53
TB_DNS_PORT=5300
TB_DNS_STRIPPED_IP=127.0.70.54
TB_DNS_SLOW_IP=127.0.70.59
TB_MX_PORT=2525
TB_PF_IP=127.0.70.2
TB_PF_PORT=2526
TB_HTTPS_IP=127.0.70.60 # nginx: the MTA-STS policy hosts (mkzones.sh writes its config)
TB_HTTPS_PORT=443       # = mxguard's default mta_sts.https_port

TB=""
TB_PASS=0
TB_FAIL=0
TB_FAILED=()
TB_POSTFIX=""

# ------------------------------------------------------------------ set-up / clean-up

tb_init() {
    TB=$(mktemp -d "${TMPDIR:-/tmp}/mxg-$TB_NAME.XXXXXX") || { echo "mktemp failed" >&2; exit 1; }
    chmod 755 "$TB" # Postfix daemons (user postfix) must reach their queue below it
    : >"$TB/pids"
    trap tb_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    trap 'exit 129' HUP
    # One test-bed at a time on this machine (fixed addresses): fd 9 holds the lock.
    exec 9>"${TMPDIR:-/tmp}/mxguard-testbed.lock"
    if ! flock -w 280 9; then
        echo "could not get the test-bed lock ${TMPDIR:-/tmp}/mxguard-testbed.lock" >&2
        exit 1
    fi
    tb_watchdog
    # Sanitizer builds (build-asan): every process's ASan/LSan/UBSan report goes to
    # $TB/sanitizer.PID, also of mxguard runs that are not tb_spawn'ed; tb_finish fails on any.
    export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}log_path=$TB/sanitizer"
    export UBSAN_OPTIONS="${UBSAN_OPTIONS:+$UBSAN_OPTIONS:}log_path=$TB/sanitizer"
    TB_SANITIZED=0
    grep -qa __asan_init "$MXG_BIN" 2>/dev/null && TB_SANITIZED=1
    echo "# $TB_NAME: test-bed in $TB"
}

# A detached watchdog (orphaned, not in our process tree) that cleans up if this shell dies
# without running its EXIT trap (SIGKILL from a test driver's timeout).
tb_watchdog() {
    local main=$$
    (
        (
            trap '' HUP INT TERM
            exec </dev/null >/dev/null 2>&1 9>&-
            while kill -0 "$main" 2>/dev/null && [ ! -e "$TB/.cleaned" ]; do sleep 1; done
            if [ -d "$TB" ] && [ ! -e "$TB/.cleaned" ]; then
                tb__kill_all
                [ "${MXG_KEEP:-0}" = 1 ] || rm -rf "$TB"
            fi
        ) &
    )
}

# tb__umount_all — lazily unmount anything a test mounted under $TB (tb_mount_tmpfs)
tb__umount_all() {
    local m
    [ -n "$TB" ] || return 0
    for m in $(awk -v p="$TB/" 'index($2, p) == 1 { print $2 }' /proc/mounts 2>/dev/null); do
        umount -l "$m" 2>/dev/null
    done
    return 0
}

# tb_mount_tmpfs DIR SIZE — a small tmpfs on DIR (a "full disk"); returns 1 where mounting is
# not allowed (the caller skips). Unmounted by the clean-up.
tb_mount_tmpfs() {
    mkdir -p "$1"
    mount -t tmpfs -o "size=$2,mode=0700" tmpfs "$1" 2>/dev/null
}

tb__kill_all() {
    tb__umount_all
    local pids=() pid name i
    [ -f "$TB/pids" ] || return 0
    if [ -d "$TB/postfix/conf" ] && [ ! -e "$TB/postfix/.stopped" ]; then
        timeout 20 script -qc "postfix -c $TB/postfix/conf stop" /dev/null >/dev/null 2>&1 </dev/null
    fi
    while read -r pid name; do pids=("$pid" "${pids[@]}"); done <"$TB/pids"
    for pid in "${pids[@]}"; do
        kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null
    done
    for i in $(seq "${TB_KILL_WAIT:-30}"); do # tenths of a second before SIGKILL
        local alive=0
        for pid in "${pids[@]}"; do
            kill -0 -- "-$pid" 2>/dev/null && alive=1
            kill -0 "$pid" 2>/dev/null && alive=1
        done
        [ $alive = 0 ] && break
        sleep 0.1
    done
    for pid in "${pids[@]}"; do
        kill -KILL -- "-$pid" 2>/dev/null
        kill -KILL "$pid" 2>/dev/null
    done
    return 0
}

tb_cleanup() {
    local rc=$?
    trap - EXIT
    if [ -n "$TB" ] && [ -d "$TB" ]; then
        tb__kill_all
        wait 2>/dev/null
        touch "$TB/.cleaned"
        if [ "${MXG_KEEP:-0}" = 1 ]; then
            echo "# kept $TB"
        else
            rm -rf "$TB"
        fi
    fi
    exit $rc
}

# tb_spawn NAME CMD... — start CMD in the background in its own process group,
# stdout to $TB/NAME.out, stderr to $TB/NAME.log. Sets TB_LAST_PID.
tb_spawn() {
    local name=$1; shift
    setsid "$@" >"$TB/$name.out" 2>"$TB/$name.log" </dev/null 9>&- &
    TB_LAST_PID=$!
    echo "$TB_LAST_PID $name" >>"$TB/pids"
}

# tb_stop NAME — stop a process started with tb_spawn.
tb_stop() {
    local name=$1 pid i
    pid=$(awk -v n="$name" '$2 == n { p = $1 } END { print p }' "$TB/pids")
    [ -n "$pid" ] || return 0
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null
    for i in $(seq 30); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL -- "-$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    return 0
}

tb_alive() { # tb_alive NAME
    local pid
    pid=$(awk -v n="$1" '$2 == n { p = $1 } END { print p }' "$TB/pids")
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null
}

tb_pid() { # tb_pid NAME — the pid of a process started with tb_spawn (its group leader)
    awk -v n="$1" '$2 == n { p = $1 } END { print p }' "$TB/pids"
}

# tb_signal NAME SIG — send SIG (STOP, CONT, ...) to NAME's whole process group (nginx workers,
# too): SIGSTOP makes a server hang with its sockets open.
tb_signal() {
    local pid
    pid=$(tb_pid "$1")
    [ -n "$pid" ] || tb_die "tb_signal: no process $1"
    kill -s "$2" -- "-$pid" 2>/dev/null || kill -s "$2" "$pid"
}

# tb_fds NAME — how many file descriptors NAME has open now (/proc/PID/fd)
tb_fds() {
    local pid
    pid=$(tb_pid "$1")
    ls "/proc/$pid/fd" 2>/dev/null | wc -l
}

# tb_mem NAME [FIELD] — a /proc/PID/status figure in kB: VmRSS (default), VmHWM (peak RSS)
tb_mem() {
    local pid
    pid=$(tb_pid "$1")
    awk -v f="${2:-VmRSS}:" '$1 == f { print $2 }' "/proc/$pid/status" 2>/dev/null
}

# tb_wait_fds NAME MAX [SECONDS] — wait (default 10 s) until NAME has at most MAX open fds.
# Sets TB_FDS (the last count); returns 1 if it never got there.
tb_wait_fds() {
    local i
    for i in $(seq $((${3:-10} * 10))); do
        TB_FDS=$(tb_fds "$1")
        [ "$TB_FDS" -le "$2" ] && return 0
        sleep 0.1
    done
    return 1
}

# tb_mx_fault NAME SPEC|none — make MX server NAME misbehave (mxserver.py --fault SPEC, e.g.
# "mail rst once", "greeting hang"); the server must have been started with
# `--fault-file "$TB/NAME.fault"` (read at every protocol step; "once" removes it when fired)
tb_mx_fault() {
    if [ "$2" = none ]; then rm -f "$TB/$1.fault"; else printf '%s\n' "$2" >"$TB/$1.fault"; fi
}

# tb_wait_port IP PORT [SECONDS] — until a TCP connection from the client address succeeds
tb_wait_port() {
    local ip=$1 port=$2 secs=${3:-10} i
    for i in $(seq $((secs * 10))); do
        "$PYTHON" "$TB_LIB_DIR/smtpclient.py" --server "$ip:$port" --source "$TB_CLIENT_IP" \
            --timeout 1 probe && return 0
        sleep 0.1
    done
    return 1
}

# ------------------------------------------------------------------ DNS, certs

# tb_zones — the signed hierarchy, certificates and policy hosts in $TB/dns (mkzones.sh).
# mkzones.sh takes ~14 s (key generation, signing), so its output is made once per UTC day and
# version of mkzones.sh under $MXG_ZONE_CACHE (default ${TMPDIR:-/tmp}/mxg-zones; "off": made
# afresh for every test-bed) and copied in, its directory name rewritten in the few text files
# that hold it (nsd.conf, nginx.conf, the CA's config). Signatures and certificates are valid
# for days either side (mkzones.sh), so a copy made hours later is the same test-bed.
tb_zones() {
    [ -e "$TB/dns/.done" ] && return 0
    local cache=${MXG_ZONE_CACHE:-${TMPDIR:-/tmp}/mxg-zones} key src f
    if [ "$cache" = off ]; then
        tb__mkzones "$TB/dns"
        return
    fi
    key=$({ date -u +%Y%m%d; cat "$TB_LIB_DIR/mkzones.sh"; } | sha256sum | cut -c1-16)
    src=$cache/$key
    mkdir -p "$cache" || tb_die "cannot create the zone cache $cache"
    (
        flock 9 || echo "# tb_zones: flock $cache/.lock failed"
        if [ ! -e "$src/dns/.done" ]; then
            rm -rf "$src"
            mkdir -p "$src"
            bash "$TB_LIB_DIR/mkzones.sh" "$src/dns" >"$src/mkzones.log" 2>&1 ||
                echo "# tb_zones: mkzones.sh exited $? making the cached zones"
        fi
        # other days' and versions' copies
        find "$cache" -mindepth 1 -maxdepth 1 -type d ! -name "$key" -mmin +60 \
            -exec rm -rf {} + 2>/dev/null
        true
    ) 9>"$cache/.lock"
    if [ ! -e "$src/dns/.done" ]; then
        # not made in the cache (its log follows): make them here, as without a cache
        echo "# tb_zones: no cached zones in $src; its mkzones.log:"
        sed 's/^/#   /' "$src/mkzones.log" 2>/dev/null | tail -n 20
        tb__mkzones "$TB/dns"
        return
    fi
    mkdir -p "$TB/dns"
    cp -a "$src/dns/." "$TB/dns/" || tb_die "cannot copy the zones from $src"
    cp "$src/mkzones.log" "$TB/mkzones.log" 2>/dev/null
    grep -rlF "$src/dns" "$TB/dns" | while IFS= read -r f; do
        sed -i "s|$src/dns|$TB/dns|g" "$f"
    done
    grep -rqF "$src" "$TB/dns" && tb_die "the zone copy still names $src"
    return 0
}

# tb__mkzones DIR — run mkzones.sh into DIR (its log: $TB/mkzones.log)
tb__mkzones() {
    if ! bash "$TB_LIB_DIR/mkzones.sh" "$1" >"$TB/mkzones.log" 2>&1; then
        cat "$TB/mkzones.log"
        tb_die "mkzones.sh failed"
    fi
}

# tb_dns_rrl N — before tb_start_dns: nsd's response rate limit for the signed hierarchy
# (answers/s per /24; 0 = off). Its default (200/s; over it, half the answers are dropped,
# half truncated) throttles a burst from the one loopback client: mxguard asks over TCP
# (dns.transport), which RRL does not touch, but a UDP resolver (Postfix's unbound) is slowed.
tb_dns_rrl() {
    tb_zones
    nsd-checkconf -o rrl-ratelimit "$TB/dns/nsd.conf" >/dev/null 2>&1 || return 0 # nsd without RRL
    sed -i "s/^server:\$/server:\n\trrl-ratelimit: $1/" "$TB/dns/nsd.conf"
    echo "# nsd rrl-ratelimit: $(nsd-checkconf -o rrl-ratelimit "$TB/dns/nsd.conf")"
}

# tb__start_nsd NAME CONF IP — start nsd, wait until it answers for "."
tb__start_nsd() {
    local name=$1 conf=$2 ip=$3 i
    tb_zones
    tb_spawn "$name" nsd -d -c "$conf"
    for i in $(seq 100); do
        if [ -n "$(dig @$ip -p $TB_DNS_PORT -b $TB_CLIENT_IP +short +time=1 +tries=1 +norec . SOA 2>/dev/null)" ]; then
            return 0
        fi
        tb_alive "$name" || break
        sleep 0.1
    done
    tail -n 20 "$TB/$name.log" "${conf%.conf}.log" 2>/dev/null
    tb_die "$name did not start"
}

tb_start_dns() { # the signed hierarchy on $TB_DNS_IP (process name "nsd")
    tb__start_nsd nsd "$TB/dns/nsd.conf" "$TB_DNS_IP"
}

# tb_start_dns_stripped — the same zones UNSIGNED on $TB_DNS_STRIPPED_IP:$TB_DNS_PORT
# (process name "nsd-stripped"): what a resolver path that strips DNSSEC looks like.
tb_start_dns_stripped() {
    tb__start_nsd nsd-stripped "$TB/dns/nsd-unsigned.conf" "$TB_DNS_STRIPPED_IP"
}

# tb_start_dns_slow SECONDS [UPSTREAM_IP] — a resolver on $TB_DNS_SLOW_IP:$TB_DNS_PORT (process
# name "dns-slow", dns_delay.py) that answers every query (UDP, TCP) with the answer of the nsd
# on UPSTREAM_IP (default $TB_DNS_IP, the signed hierarchy; $TB_DNS_STRIPPED_IP: a slow resolver
# that strips DNSSEC), SECONDS late: a real slow peer (a start-up that waits for DNS). Needs that
# nsd started; tb_stop dns-slow before another one. $TB/dns-slow.out gets "query N" per query.
tb_start_dns_slow() {
    local i
    tb_spawn dns-slow "$PYTHON" "$TB_LIB_DIR/dns_delay.py" --listen "$TB_DNS_SLOW_IP:$TB_DNS_PORT" \
        --upstream "${2:-$TB_DNS_IP}:$TB_DNS_PORT" --delay "$1"
    for i in $(seq 50); do
        grep -q '^ready$' "$TB/dns-slow.out" 2>/dev/null && return 0
        tb_alive dns-slow || break
        sleep 0.1
    done
    tail -n 20 "$TB/dns-slow.log"
    tb_die "dns-slow did not start"
}

# tb_dns_swap ZONE VARIANT [ZONE VARIANT]... — serve another version of ZONE (mkzones.sh:
# zones/variants/ZONE.VARIANT.zone[.signed], signed with ZONE's own keys; "a" is the version
# served at start): copy it in place and restart the nsd instances that run. A running
# mxguard keeps what it cached (restart it, or run it with dns cache_size = 0).
tb_dns_swap() {
    local v="$TB/dns/zones/variants"
    tb_zones
    while [ $# -ge 2 ]; do
        [ -f "$v/$1.$2.zone.signed" ] || tb_die "tb_dns_swap: no variant $2 of zone $1"
        cp "$v/$1.$2.zone" "$TB/dns/zones/$1.zone"
        cp "$v/$1.$2.zone.signed" "$TB/dns/zones/$1.zone.signed"
        echo "# DNS: zone $1 is now variant $2"
        shift 2
    done
    if tb_alive nsd; then tb_stop nsd; tb_start_dns; fi
    if tb_alive nsd-stripped; then tb_stop nsd-stripped; tb_start_dns_stripped; fi
}

# ------------------------------------------------------------------ MTA-STS policy hosts

# tb_start_nginx — nginx (process name "nginx") serving https://mta-sts.D/ for every sts-*
# domain on $TB_HTTPS_IP:$TB_HTTPS_PORT (config: $TB/dns/nginx/nginx.conf, policies under
# $TB/dns/www/mta-sts.D/, one access log per vhost: tb_sts_fetches)
tb_start_nginx() {
    local d="$TB/dns/nginx"
    tb_zones
    tb_spawn nginx nginx -p "$d/" -c "$d/nginx.conf" -e "$d/error.log"
    if ! tb_wait_port "$TB_HTTPS_IP" "$TB_HTTPS_PORT" 10 || ! tb_alive nginx; then
        tail -n 20 "$TB/nginx.log" "$d/error.log" 2>/dev/null
        tb_die "nginx did not start on $TB_HTTPS_IP:$TB_HTTPS_PORT"
    fi
}

# tb_sts_policy DOMAIN VARIANT|none — serve another policy for DOMAIN (mkzones.sh:
# www/variants/mta-sts.DOMAIN.VARIANT.txt), or none (the policy URL answers 404). No reload
# needed: nginx reads the file per request.
tb_sts_policy() {
    local f="$TB/dns/www/mta-sts.$1/.well-known/mta-sts.txt"
    if [ "$2" = none ]; then
        rm -f "$f"
    else
        cp "$TB/dns/www/variants/mta-sts.$1.$2.txt" "$f" || tb_die "tb_sts_policy: no policy variant $2 for $1"
    fi
    echo "# MTA-STS: policy of $1 is now $2"
}

# tb_sts_fetches DOMAIN — how many requests https://mta-sts.DOMAIN/ got (its access log)
tb_sts_fetches() {
    local n
    n=$(grep -c 'mta-sts.txt' "$TB/dns/nginx/access-mta-sts.$1.log" 2>/dev/null)
    echo $((n))
}

# tb_sts_config [SETTING...] — the mta_sts group for tb_write_config with the test-bed's short
# timeouts (connect 2 s, whole fetch 3 s); SETTINGs ("refresh_min_interval = \"0s\";") added
tb_sts_config() {
    local l out='mta_sts: {'$'\n''  connect_timeout = "2s";'$'\n''  fetch_timeout = "3s";'
    for l in "$@"; do out="$out"$'\n'"  $l"; done
    printf '%s\n};\n' "$out"
}

# tb_https_get NAME DOMAIN [--max-time S] [--insecure] — GET
# https://mta-sts.DOMAIN/.well-known/mta-sts.txt from nginx ($TB_HTTPS_IP, SNI and name check
# mta-sts.DOMAIN, the test CA; --insecure: no certificate check), from the client address, at
# most S (default 20) seconds in all (Python's http.client: curl is not a test-bed package).
# Body (de-chunked) in $TB/NAME.body, response headers in $TB/NAME.headers. Sets HTTP_RC (ok,
# timeout, cert = certificate rejected, refused, error), HTTP_CODE, HTTP_CTYPE, HTTP_SIZE (body
# octets), HTTP_ERR (the error).
tb_https_get() {
    local name=$1 d=$2 w; shift 2
    w=$("$PYTHON" - "$TB_HTTPS_IP" "$TB_HTTPS_PORT" "mta-sts.$d" "$TB_CLIENT_IP" "$TB/dns/certs/ca.crt" \
        "$TB/$name" "$@" <<'PY'
import http.client, signal, socket, ssl, sys
ip, port, host, src, ca, out = sys.argv[1:7]
opts = sys.argv[7:]
maxtime = int(opts[opts.index("--max-time") + 1]) if "--max-time" in opts else 20
ctx = ssl.create_default_context(cafile=ca)
if "--insecure" in opts:
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
def alarm(*_):
    raise TimeoutError("no complete response within %d s" % maxtime)
signal.signal(signal.SIGALRM, alarm)
signal.alarm(maxtime)
rc, code, ctype, body, err, heads = "ok", "000", "-", b"", "", ""
try:
    raw = socket.create_connection((ip, int(port)), timeout=maxtime, source_address=(src, 0))
    c = http.client.HTTPSConnection(host, int(port), context=ctx)
    c.sock = ctx.wrap_socket(raw, server_hostname=host)
    c.request("GET", "/.well-known/mta-sts.txt")
    r = c.getresponse()
    code, ctype = str(r.status), r.getheader("Content-Type", "-")
    heads = "".join("%s: %s\n" % h for h in r.getheaders())
    body = r.read()
except TimeoutError as e:
    rc, err = "timeout", str(e)
except ssl.SSLCertVerificationError as e:
    rc, err = "cert", e.verify_message
except ConnectionRefusedError as e:
    rc, err = "refused", str(e)
except Exception as e:
    rc, err = "error", "%s: %s" % (type(e).__name__, e)
signal.alarm(0)
open(out + ".body", "wb").write(body)
open(out + ".headers", "w").write(heads)
print(rc, code, len(body), ctype.split(";")[0].strip() or "-", err)
PY
)
    read -r HTTP_RC HTTP_CODE HTTP_SIZE HTTP_CTYPE HTTP_ERR <<<"$w"
    echo "# $name: GET https://mta-sts.$d/ -> $HTTP_RC code=$HTTP_CODE size=$HTTP_SIZE type=$HTTP_CTYPE $HTTP_ERR"
}

# ------------------------------------------------------------------ MX servers

tb_mx_host() { # short name -> host name (and certificate name)
    case $1 in
        mx1) echo mx1.example.test ;;
        mx2) echo mx2.example.test ;;
        plain) echo mx.plain.test ;;
        badtls) echo mx.badtls.test ;;
        trap|self|loop) echo loop.self.test ;;
        dane-2nd1) echo mx1.dane-2nd.test ;;
        dane-2nd2) echo mx2.dane-2nd.test ;;
        dane-allbad) echo mx3.dane-allbad.test ;;
        dane-cname) echo real.dane-target.test ;;
        dane-*) echo "mx.$1.test" ;;
        sts-nomatch2) echo mx2.sts-nomatch.test ;;
        sts-nomatch-all[12]) echo "mx${1#sts-nomatch-all}.sts-nomatch-all.test" ;;
        sts-wild-a) echo a.sts-wild.test ;;
        sts-wild-bc) echo b.c.sts-wild.test ;;
        sts-cache2) echo mx2.sts-cache.test ;;
        sts-rotate2) echo mx2.sts-rotate.test ;;
        sts-*) echo "mx.$1.test" ;;
        *) echo "$1.example.test" ;;
    esac
}

# tb_start_mx [--cert CERTNAME] [--chain] NAME IP [extra mxserver args] — spool in
# $TB/spool/NAME, log $TB/NAME.log. The server presents the certificate of its host name
# (tb_mx_host NAME; wrong.invalid.test if there is none), or CERTNAME's; --chain: leaf + CA.
tb_start_mx() {
    local certname="" chain=""
    while [ $# -gt 0 ]; do
        case $1 in
            --cert) certname=$2; shift 2 ;;
            --chain) chain=.chain; shift ;;
            *) break ;;
        esac
    done
    local name=$1 ip=$2; shift 2
    local host cert i
    tb_zones
    host=$(tb_mx_host "$name")
    cert="$TB/dns/certs/${certname:-$host}"
    if [ ! -f "$cert.crt" ]; then
        [ -z "$certname" ] || tb_die "tb_start_mx: no certificate $certname"
        cert="$TB/dns/certs/wrong.invalid.test"
    fi
    mkdir -p "$TB/spool/$name"
    rm -f "$TB/$name.ready"
    tb_spawn "$name" "$PYTHON" "$TB_LIB_DIR/mxserver.py" --listen "$ip:$TB_MX_PORT" \
        --cert "$cert$chain.crt" --key "$cert.key" --spool "$TB/spool/$name" --name "$host" \
        --ready-file "$TB/$name.ready" "$@"
    for i in $(seq 100); do
        [ -e "$TB/$name.ready" ] && return 0
        tb_alive "$name" || break
        sleep 0.1
    done
    tail -n 20 "$TB/$name.log"
    tb_die "MX server $name on $ip did not start"
}

# The MTA-STS MX servers (mkzones.sh): short name, last octet of 127.0.70.x, and the
# certificate presented when it is not the host's own
TB_STS_MX="sts-enforce:40 sts-nomatch:41 sts-nomatch2:42 sts-nomatch-all1:43 sts-nomatch-all2:44
 sts-badcert:45:wrong.invalid.test sts-testing:46:wrong.invalid.test sts-none:47:wrong.invalid.test
 sts-wild-bc:48 sts-wild-a:49 sts-open:50 sts-cname:51 sts-dane:52 sts-cache:53 sts-cache2:54
 sts-rotate:55 sts-rotate2:56 sts-short:57 sts-daneok:58"

# tb_start_sts_mx NAME... — start these MTA-STS MX servers (tb_start_mx with their address
# and certificate from TB_STS_MX)
tb_start_sts_mx() {
    local n e ip cert
    for n in "$@"; do
        e=$(tr ' ' '\n' <<<"$TB_STS_MX" | grep -E "^$n:") || tb_die "tb_start_sts_mx: unknown server $n"
        IFS=: read -r _ ip cert <<<"$e"
        tb_start_mx ${cert:+--cert "$cert"} "$n" "127.0.70.$ip"
    done
}

# ------------------------------------------------------------------ policy list signing

# tb_list_keys — a list-signing key of our own ($GNUPGHOME=$TB/gnupg, public key exported to
# $TB/keyring.gpg for gpgv) and an attacker's ($TB_ATTACKER)
tb_list_keys() {
    export GNUPGHOME="$TB/gnupg"
    TB_ATTACKER="$TB/gnupg-attacker"
    mkdir -m 700 -p "$GNUPGHOME" "$TB_ATTACKER"
    gpg --batch --passphrase '' --quick-gen-key 'list signer <list@example.test>' ed25519 sign \
        never >/dev/null 2>&1 || tb_die "gpg key generation failed"
    gpg --batch --export >"$TB/keyring.gpg"
    GNUPGHOME=$TB_ATTACKER gpg --batch --passphrase '' --quick-gen-key 'mallory <m@evil.test>' \
        ed25519 sign never >/dev/null 2>&1
}

# tb_list_sign FILE [GNUPGHOME] — FILE.asc, a detached armored signature
tb_list_sign() {
    GNUPGHOME=${2:-$GNUPGHOME} gpg --batch --yes --armor --detach-sign -o "$1.asc" "$1" 2>/dev/null
}

# tb_list_keys_stop — end the gpg agents tb_list_keys started
tb_list_keys_stop() {
    gpgconf --kill gpg-agent 2>/dev/null
    GNUPGHOME=$TB_ATTACKER gpgconf --kill gpg-agent 2>/dev/null
    return 0
}

# tb_slow_gpgv — $TB/slowbin/gpgv: gpgv that takes 2 s, with the marker $TB/gpgv-busy while it
# runs (put $TB/slowbin first in an mxguard's PATH); tb_wait_gpgv_busy waits up to 5 s for it.
tb_slow_gpgv() {
    mkdir -p "$TB/slowbin"
    printf '#!/bin/sh\ntouch "%s"\nsleep 2\n/usr/bin/gpgv "$@"\nrc=$?\nrm -f "%s"\nexit $rc\n' \
        "$TB/gpgv-busy" "$TB/gpgv-busy" >"$TB/slowbin/gpgv"
    chmod 755 "$TB/slowbin/gpgv"
}
tb_wait_gpgv_busy() {
    local n
    for n in $(seq 50); do
        [ -e "$TB/gpgv-busy" ] && return 0
        sleep 0.1
    done
    return 1
}

# tb_ehlo_probe LISTEN — banner, EHLO and QUIT with a 1 s timeout each, then whether the slow
# gpgv still runs: "BANNER:220 EHLO:250 QUIT:221  yes" when all answered during the check.
tb_ehlo_probe() {
    local out busy
    out=$("$PYTHON" "$TB_LIB_DIR/smtpclient.py" --server "$1" --source "$TB_CLIENT_IP" \
        --timeout 1 chat "EHLO client.test" "QUIT" 2>&1 | cut -f1,2 | tr '\t\n' ': ')
    [ -e "$TB/gpgv-busy" ] && busy=yes || busy=no
    echo "$out $busy"
}

# ------------------------------------------------------------------ mxguard

# tb_write_config [-o FILE] [-l LISTEN] [-d DNS_SERVER] [-t ANCHOR_FILE] [-m DNS_MODE]
#                 [-s STATE_DIR] [-D DNS_LINE]... [EXTRA_LINE...]
# (STATE_DIR, default $TB/state: a second instance running beside the first needs its own —
# with server.workers > 1 the master holds the spool's lock and a second one refuses to start)
# Writes an mxguard config (default $TB/mxguard.conf); EXTRA_LINEs are appended verbatim
# (a script that must run one process sets TB_WORKERS=1 with the reason);
# DNS_LINEs (e.g. "cache_size = 0;") go inside the dns group; ANCHOR_FILE replaces root.ds.
# dns.mode is always set (DNS_MODE, default "stub"): a test never resolves from the real root.
tb_write_config() {
    local out="$TB/mxguard.conf" listen="$TB_MXG_IP:$TB_MXG_PORT" dns="$TB_DNS_IP:$TB_DNS_PORT"
    local anchor="$TB/dns/root.ds" dnslines="" dnsmode=stub state="$TB/state"
    while [ $# -gt 0 ]; do
        case $1 in
            -m) dnsmode=$2; shift 2 ;;
            -s) state=$2; shift 2 ;;
            -o) out=$2; shift 2 ;;
            -l) listen=$2; shift 2 ;;
            -d) dns=$2; shift 2 ;;
            -t) anchor=$2; shift 2 ;;
            -D) dnslines="$dnslines  $2"$'\n'; shift 2 ;;
            *) break ;;
        esac
    done
    mkdir -p "$state"
    # MXG_TEST_WORKERS=N runs the suite with N worker processes (what server.workers = "auto"
    # gives on a machine with N+1 cores); a script that asserts on one process's internals sets
    # TB_WORKERS=1 (with its reason) and gets server.workers = 1 whatever the machine; an
    # EXTRA_LINE that sets server.workers itself wins over both
    local workers="" nw=${TB_WORKERS:-${MXG_TEST_WORKERS:-}}
    if [ -n "$nw" ] && ! printf '%s\n' "$@" | grep -q 'workers *='; then
        workers="  workers = $nw;"$'\n'
    fi
    {
        cat <<EOF
# mxguard test-bed config ($TB_NAME)
server: {
  listen = ["$listen"];
  allow_networks = ["127.0.70.0/25"];
  hostname = "mxguard.test";
${workers}};
upstream: {
  port = $TB_MX_PORT;
  helo_name = "mxguard.test";
  source_ipv4 = "$TB_MXG_IP";
  # one upstream connection and one full TLS handshake per transaction, as the scenarios
  # count connections, inject faults at connection set-up and read the DANE match from the
  # log; t_conncache.sh / t_limits_upstream.sh turn the cache and TLS resumption on
  # (MXGUARD_UPSTREAM_CACHE_IDLE, MXGUARD_UPSTREAM_TLS_SESSION_CACHE)
  cache_idle = "0s";
  tls_session_cache = 0;
};

dns: {
  mode = "$dnsmode";
  servers = ["$dns"];
  trust_anchor_file = "$anchor";
${dnslines}};
timeouts: {
  idle = "10s";
  data = "10s";
  rcpt_total = "15s";
  final_reply = "8s";
  connect = "2s";
  upstream_command = "5s";
  dns = "3s";
};
state: {
  directory = "$state";
};
tls: {
  ca_file = "$TB/dns/certs/ca.crt";
};
log: {
  level = "debug";
};
EOF
        local l
        for l in "$@"; do printf '%s\n' "$l"; done
    } >"$out"
}

# tb_config_product_caches — take the test-bed's "no caching" lines (cache_idle = "0s",
# tls_session_cache = 0) out of $TB/mxguard.conf, so the product's connection and TLS session
# cache defaults apply; dies if such a setting is still there.
tb_config_product_caches() {
    sed -i '/^  cache_idle = "0s";$/d; /^  tls_session_cache = 0;$/d' "$TB/mxguard.conf"
    grep -qE '^ *(cache_idle|tls_session_cache) *=' "$TB/mxguard.conf" &&
        tb_die "cache settings still in the config"
    return 0
}

# tb_start_many_mx N... — the MX servers of the many.test domains (mkzones.sh): manyN on
# 127.0.70.17N, each with mx.dane-ee.test's certificate (its TLSA is what they publish).
tb_start_many_mx() {
    local i
    for i in "$@"; do
        tb_start_mx --cert mx.dane-ee.test "many$i" "127.0.70.17$i"
    done
}

# tb_metric URL SAMPLE — one sample's value from a /metrics page, e.g.
# tb_metric "http://$TB_MXG_IP:9125/metrics" 'mxguard_upstream_connections_total{how="new"}';
# "absent" when the page has no such sample.
tb_metric() {
    "$PYTHON" - "$1" "$2" <<'PY'
import sys, urllib.request
body = urllib.request.urlopen(sys.argv[1], timeout=5).read().decode()
print(next((l.split()[1] for l in body.splitlines() if l.startswith(sys.argv[2] + " ")), "absent"))
PY
}


# tb_start_mxguard [-c CONF] [-n NAME] [-a IP:PORT]
tb_start_mxguard() {
    local conf="$TB/mxguard.conf" name=mxguard addr="$TB_MXG_IP:$TB_MXG_PORT" i
    while [ $# -gt 0 ]; do
        case $1 in
            -c) conf=$2; shift 2 ;;
            -n) name=$2; shift 2 ;;
            -a) addr=$2; shift 2 ;;
            *) break ;;
        esac
    done
    if [ ! -x "$MXG_BIN" ]; then
        tb_die "mxguard binary not found or not executable: $MXG_BIN"
    fi
    [ -f "$conf" ] || tb_write_config -o "$conf"
    # the binary comes as MXG_BIN, not MXGUARD_*: mxguard refuses unknown MXGUARD_* settings
    tb_spawn "$name" "$MXG_BIN" run -c "$conf"
    for i in $(seq 100); do
        if ! tb_alive "$name"; then
            echo "# $name exited early; its log:"
            tail -n 40 "$TB/$name.log" "$TB/$name.out"
            tb_die "$name exited during start-up"
        fi
        # served, not only accepted (mxguard listens only once it can serve, app/listeners.h;
        # the probe would notice a connection left in a backlog without a greeting)
        if "$PYTHON" "$TB_LIB_DIR/smtpclient.py" --server "$addr" --source "$TB_CLIENT_IP" \
            --timeout 1 probe --served; then
            return 0
        fi
        sleep 0.1
    done
    echo "# $name log:"
    tail -n 40 "$TB/$name.log"
    tb_die "$name does not accept connections on $addr after 10 s"
}

# tb_start_mxguard_fails [-c CONF] [-n NAME] [-a IP:PORT] [SECONDS] — start mxguard when it is
# expected to refuse to run: wait up to SECONDS (default 15) for it to exit, probing its
# listener all the while. Sets MXG_EXIT (its exit status, or "running": then it is stopped),
# MXG_EXIT_SECS (seconds until it exited) and MXG_ACCEPTED (1 if a connection was served: a
# reply began, not only queued in a backlog).
tb_start_mxguard_fails() {
    local conf="$TB/mxguard.conf" name=mxguard addr="$TB_MXG_IP:$TB_MXG_PORT" secs pid t0
    while [ $# -gt 0 ]; do
        case $1 in
            -c) conf=$2; shift 2 ;;
            -n) name=$2; shift 2 ;;
            -a) addr=$2; shift 2 ;;
            *) break ;;
        esac
    done
    secs=${1:-15}
    [ -x "$MXG_BIN" ] || tb_die "mxguard binary not found or not executable: $MXG_BIN"
    [ -f "$conf" ] || tb_write_config -o "$conf"
    MXG_ACCEPTED=0
    MXG_EXIT=running
    t0=$(date +%s)
    tb_spawn "$name" "$MXG_BIN" run -c "$conf"
    pid=$TB_LAST_PID
    while [ $(($(date +%s) - t0)) -lt "$secs" ] && tb_alive "$name"; do
        if "$PYTHON" "$TB_LIB_DIR/smtpclient.py" --server "$addr" --source "$TB_CLIENT_IP" \
            --timeout 1 probe --served 2>/dev/null; then
            MXG_ACCEPTED=1
        fi
        sleep 0.1
    done
    if tb_alive "$name"; then
        tb_stop "$name"
    else
        wait "$pid"
        MXG_EXIT=$?
    fi
    MXG_EXIT_SECS=$(($(date +%s) - t0))
    echo "# $name: exit status $MXG_EXIT after ${MXG_EXIT_SECS} s, connection accepted: $MXG_ACCEPTED"
}

# ------------------------------------------------------------------ PostgreSQL (shared state)

TB_PG_IP=127.0.70.70
TB_PG_PORT=5432
TB_PG_BIN=${TB_PG_BIN:-/usr/lib/postgresql/15/bin}

# tb_start_pg — a private PostgreSQL 15 cluster for state.backend = "postgresql" (no system
# cluster): initdb into $TB/pg/data as the user postgres (initdb refuses root), TLS on with a
# certificate for pg.test from its own test CA ($TB/pg/tls/ca.crt), listening on
# $TB_PG_IP:$TB_PG_PORT only (its socket in $TB/pg), scram-sha-256 over TLS for role mxguard,
# owner of database mxguard, whose password is in $TB/pg/password. Sets TB_PG_CONNINFO
# (hostaddr: no name lookup; sslmode=verify-full against host pg.test). Called again after
# tb_stop_pg, it starts the same cluster (the data is kept). Stopped by the EXIT trap.
tb_start_pg() {
    local d=$TB/pg c=$TB/pg/tls i
    [ -x "$TB_PG_BIN/postgres" ] || tb_die "PostgreSQL 15 not installed ($TB_PG_BIN/postgres)"
    if [ ! -d "$d/data" ]; then
        mkdir -p "$c"
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$c/ca.key" \
            -out "$c/ca.crt" -days 30 -subj "/CN=mxguard test PostgreSQL CA" 2>/dev/null &&
            openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
                -keyout "$c/server.key" -out "$c/server.csr" -subj "/CN=pg.test" 2>/dev/null &&
            openssl x509 -req -in "$c/server.csr" -CA "$c/ca.crt" -CAkey "$c/ca.key" \
                -CAcreateserial -days 30 -out "$c/server.crt" \
                -extfile <(printf 'subjectAltName=DNS:pg.test\n') 2>/dev/null ||
            tb_die "tb_start_pg: cannot make the test certificate"
        openssl rand -hex 16 >"$d/password"
        chmod 600 "$d/password" "$c/server.key"
        chown -R postgres: "$d"
        chown root: "$d/password"
        chmod 755 "$d"
        runuser -u postgres -- "$TB_PG_BIN/initdb" -D "$d/data" -U postgres --auth-local=trust \
            --auth-host=reject --no-sync -E UTF8 >"$TB/pg-initdb.log" 2>&1 ||
            { cat "$TB/pg-initdb.log"; tb_die "tb_start_pg: initdb failed"; }
        printf '%s\n' "listen_addresses = '$TB_PG_IP'" "port = $TB_PG_PORT" \
            "unix_socket_directories = '$d'" "ssl = on" "ssl_cert_file = '$c/server.crt'" \
            "ssl_key_file = '$c/server.key'" "fsync = off" "shared_buffers = 16MB" \
            "max_connections = 30" >>"$d/data/postgresql.conf"
        # TCP only over TLS with a password (initdb's host lines reject everything else)
        sed -i '1i hostssl mxguard mxguard 127.0.0.0/8 scram-sha-256' "$d/data/pg_hba.conf"
    fi
    # SIGTERM to the process group (tb_stop, the EXIT trap) makes the shell ask for a fast
    # shutdown: clients (mxguard instances) never hold the test-bed's exit up
    tb_spawn pg runuser -u postgres -- sh -c \
        "\"$TB_PG_BIN/postgres\" -D \"$d/data\" & p=\$!; trap 'kill -INT \$p' TERM; wait \$p; wait \$p"
    for i in $(seq 100); do
        "$TB_PG_BIN/pg_isready" -q -h "$d" -p "$TB_PG_PORT" && break
        tb_alive pg || { tail -n 20 "$TB/pg.log"; tb_die "tb_start_pg: postgres exited"; }
        sleep 0.1
    done
    "$TB_PG_BIN/pg_isready" -q -h "$d" -p "$TB_PG_PORT" || tb_die "tb_start_pg: not ready after 10 s"
    if [ ! -e "$d/.created" ]; then
        runuser -u postgres -- psql -q -X -h "$d" -p "$TB_PG_PORT" -d postgres -v ON_ERROR_STOP=1 \
            -c "CREATE ROLE mxguard LOGIN PASSWORD '$(cat "$d/password")'" \
            -c "CREATE DATABASE mxguard OWNER mxguard" >/dev/null ||
            tb_die "tb_start_pg: cannot create the role and the database"
        touch "$d/.created"
    fi
    TB_PG_CONNINFO="hostaddr=$TB_PG_IP port=$TB_PG_PORT host=pg.test dbname=mxguard user=mxguard sslmode=verify-full sslrootcert=$c/ca.crt"
}

# tb_stop_pg — stop the cluster (fast shutdown: clients are disconnected).
tb_stop_pg() { tb_stop pg; }

# tb_psql SQL — run SQL in database mxguard as the superuser (over the socket); prints the
# rows unaligned, fields separated by '|'.
tb_psql() {
    runuser -u postgres -- psql -q -X -A -t -h "$TB/pg" -p "$TB_PG_PORT" -d mxguard \
        -v ON_ERROR_STOP=1 -c "$1"
}

# tb_pg_config CONF STATE_DIR [INSTANCE] — turn CONF (written by tb_write_config) into a
# fleet member: its own state.directory, the PostgreSQL backend on tb_start_pg's cluster
# (TB_PG_CONNINFO, the password file), sync every 300 ms.
tb_pg_config() {
    local conf=$1 dir=$2 inst=${3:-}
    mkdir -p "$dir"
    "$PYTHON" - "$conf" "$dir" "$TB_PG_CONNINFO" "$TB/pg/password" "$inst" <<'PY'
import sys
conf, d, ci, pw, inst = sys.argv[1:6]
s = open(conf).read()
old = s[s.index("state: {"):]
old = old[:old.index("};") + 2]
new = ('state: {\n  directory = "%s";\n  backend = "postgresql";\n  postgresql = "%s";\n'
       '  postgresql_password_file = "%s";\n  sync_interval = "300ms";\n%s};' %
       (d, ci, pw, ('  instance_name = "%s";\n' % inst) if inst else ""))
open(conf, "w").write(s.replace(old, new))
PY
}

# tb_check NAME DOMAIN [-c CONF] [ARGS...] — `mxguard check DOMAIN -c CONF ARGS` (at most 60 s),
# output (stdout+stderr) in $TB/NAME.check. Sets CHECK_RC and CHECK_OUT.
tb_check() {
    local name=$1 domain=$2 conf="$TB/mxguard.conf"; shift 2
    if [ "${1:-}" = -c ]; then conf=$2; shift 2; fi
    [ -f "$conf" ] || tb_write_config -o "$conf"
    timeout 60 "$MXG_BIN" check "$domain" -c "$conf" "$@" >"$TB/$name.check" 2>&1 </dev/null 9>&-
    CHECK_RC=$?
    CHECK_OUT=$(cat "$TB/$name.check")
    echo "# $name: mxguard check $domain $* -> exit $CHECK_RC, $(wc -l <"$TB/$name.check") lines"
}

# tb_log_mark [NAME] — the current size of $TB/NAME.log (default mxguard), for tb_log_since
tb_log_mark() { stat -c %s "$TB/${1:-mxguard}.log" 2>/dev/null || echo 0; }

# tb_log_since MARK [NAME] — what $TB/NAME.log got after tb_log_mark printed MARK
tb_log_since() { tail -c +$(($1 + 1)) "$TB/${2:-mxguard}.log" 2>/dev/null; }

# ------------------------------------------------------------------ Postfix (legacy MTA)

# tb_start_postfix — Postfix on $TB_PF_IP:$TB_PF_PORT relaying to mxguard; TB_PF_RCPT_LIMIT
# (smtp_destination_recipient_limit), TB_PF_EXTRA (more main.cf lines)
tb_start_postfix() {
    local d="$TB/postfix" i pid
    TB_POSTFIX=$d
    mkdir -p "$d/conf" "$d/queue" "$d/data"
    chown postfix "$d/data"
    cat >"$d/conf/main.cf" <<EOF
compatibility_level = 3.6
queue_directory = $d/queue
data_directory = $d/data
mail_owner = postfix
setgid_group = postdrop
myhostname = legacy.client.test
mydomain = client.test
myorigin = \$myhostname
mydestination =
local_recipient_maps =
local_transport = error:local delivery is disabled
alias_maps =
alias_database =
inet_interfaces = loopback-only
inet_protocols = ipv4
mynetworks = 127.0.70.0/24
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
smtpd_peername_lookup = no
relayhost = [$TB_MXG_IP]:$TB_MXG_PORT
smtp_bind_address = $TB_PF_IP
smtp_destination_recipient_limit = ${TB_PF_RCPT_LIMIT:-50}
smtp_tls_security_level = none
smtpd_tls_security_level = none
append_dot_mydomain = no
biff = no
queue_run_delay = 5s
minimal_backoff_time = 5s
maximal_backoff_time = 10s
maillog_file = $d/maillog
maillog_file_prefixes = $d
${TB_PF_EXTRA:-}
EOF
    # master.cf: chroot off everywhere, smtpd on our address/port
    awk -v svc="$TB_PF_IP:$TB_PF_PORT" '
        /^#/ || /^[ \t]/ || NF < 8 { print; next }
        $1 == "smtp" && $2 == "inet" { $1 = svc }
        { $5 = "n"; print }
    ' /usr/share/postfix/master.cf.dist >"$d/conf/master.cf"
    if ! script -qc "postfix -c $d/conf check" /dev/null >"$TB/postfix.check" 2>&1 </dev/null 9>&-; then
        cat "$TB/postfix.check"
    fi
    script -qc "postfix -c $d/conf start" /dev/null >"$TB/postfix.start" 2>&1 </dev/null 9>&-
    for i in $(seq 100); do
        if [ -s "$d/queue/pid/master.pid" ]; then
            pid=$(tr -d ' \n' <"$d/queue/pid/master.pid")
            if [ -n "$pid" ] && ! grep -q "^$pid postfix-master\$" "$TB/pids"; then
                echo "$pid postfix-master" >>"$TB/pids"
            fi
        fi
        if "$PYTHON" "$TB_LIB_DIR/smtpclient.py" --server "$TB_PF_IP:$TB_PF_PORT" \
            --source "$TB_CLIENT_IP" --timeout 1 probe; then
            return 0
        fi
        sleep 0.1
    done
    cat "$TB/postfix.start"
    tail -n 30 "$d/maillog" 2>/dev/null
    tb_die "Postfix did not start"
}

tb_stop_postfix() {
    [ -n "$TB_POSTFIX" ] && [ ! -e "$TB_POSTFIX/.stopped" ] || return 0
    timeout 20 script -qc "postfix -c $TB_POSTFIX/conf stop" /dev/null >/dev/null 2>&1 </dev/null 9>&-
    touch "$TB_POSTFIX/.stopped"
}

# ------------------------------------------------------------------ clients

# swaks_send NAME [swaks args...] — swaks to mxguard (override with SW_SERVER, SW_SOURCE,
# SW_FROM). Transcript in $TB/NAME.swaks, parsed replies in $TB/NAME.replies
# (STAGE<TAB>CODE<TAB>last line<TAB>all lines). Sets:
#   SW_RC (swaks exit status), SW_BANNER SW_EHLO SW_MAIL SW_RCPT SW_RCPT2 SW_DATA SW_DOT
#   (each the final line of that reply, e.g. "452 4.5.3 ..."; "" if there was none),
#   SW_RCPTS (all RCPT reply codes), SW_CODES (all reply codes in order), SW_CLOSED (1 if
#   the server closed the connection unexpectedly).
swaks_send() {
    local name=$1; shift
    local f="$TB/$name.swaks"
    swaks --server "${SW_SERVER:-$TB_MXG_IP:$TB_MXG_PORT}" \
        --local-interface "${SW_SOURCE:-$TB_CLIENT_IP}" \
        --from "${SW_FROM:-sender@client.test}" --ehlo client.test --timeout 40 \
        "$@" >"$f" 2>&1 </dev/null
    SW_RC=$?
    tb_parse_swaks "$f" >"$TB/$name.replies"
    SW_BANNER=$(sw_reply "$name" BANNER)
    SW_EHLO=$(sw_reply "$name" EHLO)
    SW_MAIL=$(sw_reply "$name" MAIL)
    SW_RCPT=$(sw_reply "$name" RCPT 1)
    SW_RCPT2=$(sw_reply "$name" RCPT 2)
    SW_DATA=$(sw_reply "$name" DATA)
    SW_DOT=$(sw_reply "$name" DOT)
    SW_RCPTS=$(awk -F'\t' '$1 == "RCPT" { printf "%s%s", s, $2; s = " " }' "$TB/$name.replies")
    SW_CODES=$(awk -F'\t' '$1 != "CLOSED" { printf "%s%s", s, $2; s = " " }' "$TB/$name.replies")
    SW_CLOSED=0
    grep -q '^CLOSED' "$TB/$name.replies" && SW_CLOSED=1
    echo "# $name: swaks rc=$SW_RC codes: $SW_CODES${SW_DOT:+ | dot: $SW_DOT}"
}

# tb_parse_swaks TRANSCRIPT — one line per server reply: STAGE, CODE, last line, all lines.
tb_parse_swaks() {
    awk '
        BEGIN { pending = ""; inbody = 0; text = "" }
        /^( ->| ~>|\*\*>|\*~>) / {
            if (inbody) next
            cmd = substr($0, 5); split(cmd, w, /[ :]/); pending = toupper(w[1]); next
        }
        /^(<-|<~|<\*\*|<~\*) / {
            line = $0; sub(/^(<-|<~|<\*\*|<~\*) +/, "", line)
            if (line !~ /^[0-9][0-9][0-9]/) next
            text = (text == "" ? line : text " | " line)
            if (substr(line, 4, 1) == "-") next
            stage = inbody ? "DOT" : (pending == "" ? "BANNER" : pending)
            print stage "\t" substr(line, 1, 3) "\t" line "\t" text
            text = ""
            if (stage == "DATA" && substr(line, 1, 3) == "354") inbody = 1
            else if (stage == "DOT") inbody = 0
            pending = ""
            next
        }
        /^\*\*\* .*([Cc]onnection closed|closed connection|[Ll]ost connection)/ { print "CLOSED\t-\t" $0 "\t" $0 }
    ' "$1"
}

# sw_reply NAME STAGE [N] — final line of the Nth (default 1st) reply to STAGE
sw_reply() {
    awk -F'\t' -v s="$2" -v n="${3:-1}" '$1 == s && ++k == n { print $3; exit }' "$TB/$1.replies"
}

# smtp_chat NAME [--server IP:PORT] [--source IP] ITEM... — raw client (smtpclient.py chat);
# output in $TB/NAME.chat (STAGE<TAB>CODE<TAB>TEXT). chat_reply NAME STAGE [N] -> "CODE TEXT".
smtp_chat() {
    local name=$1; shift
    local args=()
    while [ $# -gt 0 ]; do
        case $1 in
            --server|--source|--timeout) args+=("$1" "$2"); shift 2 ;;
            *) break ;;
        esac
    done
    [[ " ${args[*]-} " == *" --server "* ]] || args+=(--server "$TB_MXG_IP:$TB_MXG_PORT")
    [[ " ${args[*]-} " == *" --source "* ]] || args+=(--source "$TB_CLIENT_IP")
    "$PYTHON" "$TB_LIB_DIR/smtpclient.py" "${args[@]}" chat "$@" >"$TB/$name.chat" 2>&1
    CHAT_RC=$?
    echo "# $name: $(awk -F'\t' '{ printf "%s%s %s", s, $1, $2; s = ", " }' "$TB/$name.chat")"
}

chat_reply() {
    awk -F'\t' -v s="$2" -v n="${3:-1}" '$1 == s && ++k == n { t = $3; sub(/.* \| /, "", t); print t; exit }' "$TB/$1.chat"
}

# tb_make_message NAME [smtpclient.py mkmsg options] — $TB/NAME.msg (the exact message) and
# $TB/NAME.wire (dot-stuffed, for: swaks_send X --no-data-fixup --data @$TB/NAME.wire)
tb_make_message() {
    local name=$1; shift
    "$PYTHON" "$TB_LIB_DIR/smtpclient.py" mkmsg --msg "$TB/$name.msg" --wire "$TB/$name.wire" "$@" ||
        tb_die "could not write test message $name"
}

# ------------------------------------------------------------------ spool inspection

# eml_compare EML ORIG — compare a relayed message with what the client sent. Prints
# "received+same" when EML is exactly one prepended Received: header block (first line plus
# its continuation lines) followed by ORIG byte for byte; "same" if identical without any
# header; otherwise a description of the difference. The block goes to EML.received.
eml_compare() {
    "$PYTHON" - "$1" "$2" <<'PY'
import sys
d = open(sys.argv[1], "rb").read()
o = open(sys.argv[2], "rb").read()
if d == o:
    print("same")
    sys.exit()
if not d.startswith(b"Received:"):
    print("no Received: header at the top; first line: %r" % d.split(b"\n", 1)[0][:200])
    sys.exit()
i = d.find(b"\n") + 1
while i > 0 and d[i:i + 1] in (b" ", b"\t"):
    i = d.find(b"\n", i) + 1
block, rest = d[:i], d[i:]
open(sys.argv[1] + ".received", "wb").write(block)
if rest == o:
    print("received+same")
    sys.exit()
n = next((k for k in range(min(len(rest), len(o))) if rest[k] != o[k]), min(len(rest), len(o)))
print("after the first Received: block (%d octets) the message differs at offset %d "
      "(got %d octets, sent %d): got %r, sent %r"
      % (len(block), n, len(rest), len(o), rest[max(0, n - 30):n + 30], o[max(0, n - 30):n + 30]))
PY
}

spool_count() { # spool_count DIR — number of accepted messages
    local n
    n=$(find "$1" -maxdepth 1 -name '*.eml' 2>/dev/null | wc -l)
    echo $((n))
}

spool_last() { # spool_last DIR — path of the newest NNNN (without extension)
    find "$1" -maxdepth 1 -name '*.eml' 2>/dev/null | sort | tail -n 1 | sed 's/\.eml$//'
}

# json_get FILE PATH — value at a dotted path ("tls.version", "rcpts.0"); "null" if absent;
# lists/objects are printed as JSON.
json_get() {
    "$PYTHON" - "$1" "$2" <<'PY'
import json, sys
v = json.load(open(sys.argv[1]))
for k in sys.argv[2].split("."):
    try:
        v = v[int(k)] if isinstance(v, list) else v[k]
    except (KeyError, IndexError, ValueError, TypeError):
        v = None
        break
print("null" if v is None else (json.dumps(v) if isinstance(v, (list, dict)) else v))
PY
}

# wait_spool_count DIR N [SECONDS] — wait until DIR holds at least N messages
wait_spool_count() {
    local i secs=${3:-30}
    for i in $(seq $((secs * 10))); do
        [ "$(spool_count "$1")" -ge "$2" ] && return 0
        sleep 0.1
    done
    return 1
}

# ------------------------------------------------------------------ assertions / reporting

pass() {
    TB_PASS=$((TB_PASS + 1))
    echo "ok   - $*"
}

fail() {
    TB_FAIL=$((TB_FAIL + 1))
    TB_FAILED+=("$*")
    echo "FAIL - $*"
}

assert_eq() { # assert_eq DESC EXPECTED ACTUAL
    if [ "$2" == "$3" ]; then pass "$1"; else fail "$1: expected [$2], got [$3]"; fi
}

assert_contains() { # assert_contains DESC HAYSTACK NEEDLE
    if [[ "$2" == *"$3"* ]]; then pass "$1"; else fail "$1: [$3] not in [$2]"; fi
}

assert_not_contains() { # assert_not_contains DESC HAYSTACK NEEDLE
    if [[ "$2" != *"$3"* ]]; then pass "$1"; else fail "$1: [$3] unexpectedly in [$2]"; fi
}

assert_match() { # assert_match DESC STRING ERE
    if [[ "$2" =~ $3 ]]; then pass "$1"; else fail "$1: [$2] does not match /$3/"; fi
}

# assert_reply DESC REPLY PREFIX — the reply ("451 4.4.3 text") starts with PREFIX ("451 4.4.3", "4")
assert_reply() {
    if [ -n "$2" ] && [[ "$2" == "$3"* ]]; then pass "$1 ($2)"; else fail "$1: expected reply [$3...], got [${2:-no reply}]"; fi
}

assert_file_count() { # assert_file_count DIR N [DESC] — number of messages (*.eml) in DIR
    local n
    n=$(spool_count "$1")
    if [ "$n" = "$2" ]; then pass "${3:-$(basename "$1")}: $2 message(s)"
    else fail "${3:-$(basename "$1")}: expected $2 message(s) in $1, found $n"; fi
}

assert_file_grep() { # assert_file_grep DESC FILE ERE
    if grep -Eq -- "$3" "$2" 2>/dev/null; then pass "$1"; else fail "$1: /$3/ not found in $(basename "$2")"; fi
}

# assert_log DESC MARK ERE [NAME] — $TB/NAME.log (default mxguard) got a line matching ERE
# after MARK (tb_log_mark)
assert_log() {
    # (not grep -q: it stops at the first match, and under pipefail tail's SIGPIPE would then
    # turn a match into a failure once the rest of the log exceeds the pipe buffer)
    if tb_log_since "$2" "${4:-mxguard}" | grep -E -- "$3" >/dev/null; then pass "$1"
    else fail "$1: /$3/ not in ${4:-mxguard}.log since offset $2"; fi
}

# assert_no_log DESC MARK ERE [NAME] — ... and no line matching ERE
assert_no_log() {
    local l
    l=$(tb_log_since "$2" "${4:-mxguard}" | grep -Em1 -- "$3")
    if [ -z "$l" ]; then pass "$1"; else fail "$1: ${4:-mxguard}.log has [$l]"; fi
}

# assert_no_mail DESC NAME — MX server NAME stored nothing and never got a MAIL command
# (so neither a delivery nor a plaintext attempt reached it)
assert_no_mail() {
    local n m
    n=$(spool_count "$TB/spool/$2")
    m=$(grep -c '< MAIL FROM' "$TB/$2.log" 2>/dev/null)
    if [ "$n" = 0 ] && [ "${m:-0}" = 0 ]; then pass "$1"
    else fail "$1: $2 stored $n message(s), got ${m:-0} MAIL command(s)"; fi
}

# assert_no_connect DESC NAME — MX server NAME never accepted a connection
assert_no_connect() {
    local n
    n=$(grep -c 'connect from' "$TB/$2.log" 2>/dev/null)
    if [ "${n:-0}" = 0 ]; then pass "$1"; else fail "$1: $2 accepted ${n} connection(s)"; fi
}

tb_dump_logs() {
    local f
    echo "=================== logs ($TB)"
    for f in "$TB"/mxguard*.log "$TB"/mxguard*.out; do
        [ -s "$f" ] || continue
        echo "------------------- tail -n 60 $f"
        tail -n 60 "$f"
    done
    for f in "$TB"/mx1.log "$TB"/mx2.log "$TB"/plain.log "$TB"/badtls.log "$TB"/trap.log "$TB"/nsd.log \
             "$TB"/dane-*.log "$TB"/sts-*.log "$TB"/nsd-stripped.log "$TB/postfix/maillog" \
             "$TB"/nginx.log "$TB"/dns/nginx/error.log "$TB"/dns/nginx/access.log; do
        [ -s "$f" ] || continue
        echo "------------------- tail -n 25 $f"
        tail -n 25 "$f"
    done
    for f in "$TB"/spool/*/connections.log; do
        [ -s "$f" ] || continue
        echo "------------------- $f"
        cat "$f"
    done
    for f in "$TB"/*.check; do
        [ -s "$f" ] || continue
        echo "------------------- head -n 40 $f"
        head -n 40 "$f"
    done
}

# tb__sanitizer_check — with a sanitizer build, stop every process (up to 15 s, so leak checks
# at exit run), then any report (files from tb_init's log_path, or one in a log) is a failure.
tb__sanitizer_check() {
    local f l
    [ -n "$TB" ] && [ -d "$TB" ] || return 0
    [ "${TB_SANITIZED:-0}" = 1 ] && TB_KILL_WAIT=150 tb__kill_all
    for f in "$TB"/sanitizer.*; do
        [ -s "$f" ] || continue
        # (a file holding only LSan's "Suppressions used:" table is no finding)
        grep -qE 'ERROR: |runtime error|SUMMARY: ' "$f" || continue
        l=$(grep -m1 -E 'ERROR: [A-Za-z]+Sanitizer|runtime error' "$f" | cut -c1-200)
        fail "sanitizer report in $(basename "$f"): ${l:-see below}"
        echo "------------------- head -n 80 $f"
        head -n 80 "$f"
    done
    for f in "$TB"/*.log "$TB"/*.out "$TB"/*.check; do
        [ -s "$f" ] || continue
        l=$(grep -m1 -aE 'ERROR: (AddressSanitizer|LeakSanitizer)|SUMMARY: UndefinedBehaviorSanitizer' "$f")
        [ -n "$l" ] && fail "sanitizer report in $(basename "$f"): $(cut -c1-200 <<<"$l")"
    done
    return 0
}

tb_finish() {
    tb__sanitizer_check
    echo "$TB_PASS passed, $TB_FAIL failed"
    if [ "$TB_FAIL" -gt 0 ]; then
        local f
        echo "failed assertions:"
        for f in "${TB_FAILED[@]}"; do echo "  - $f"; done
        tb_dump_logs
        exit 1
    fi
    exit 0
}

tb_die() {
    fail "FATAL: $*"
    tb_finish
}
