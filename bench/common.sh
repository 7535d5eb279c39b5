# shellcheck shell=bash
# bench/common.sh — the pieces bench/run.sh (one destination) and bench/many.sh (many
# destinations) share; sourced after tests/integration/lib.sh and tb_init (needs $TB, $here).
#
#   bench_tools          build bench/sink.c and bench/smtpload.c into $W ($TB/bin)
#   sink KEY, sink_reset, wait_sink N SECONDS    the sink's counts ($TB/sink.stats)
#   cpu PID...           CPU seconds of processes and all their descendants
#   start_mxguard NAME [ENV=VALUE...]   mxguard (or mxguard-base) with $TB/mxguard.conf
#   start_postfix        Postfix 3.7 on 127.0.70.2:2526 with smtp_tls_security_level = dane,
#                        smtp_dns_support_level = dnssec, unbound (validating) on 127.0.70.5;
#                        relayhost = $PF_RELAYHOST (default dane-ee.test; "" = MX delivery)
#   postfix_reuse yes|no smtp_tls_connection_reuse, then reload (and an empty queue)

# bench_tools — the sink and the load generator, into $W
bench_tools() {
    W=$TB/bin
    mkdir -p "$W"
    CF="-std=c11 -O2 -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wformat=2"
    cc $CF -o "$W/sink" "$here/sink.c" -luv -lssl -lcrypto || tb_die "cannot build bench/sink.c"
    cc $CF -o "$W/smtpload" "$here/smtpload.c" -luv || tb_die "cannot build bench/smtpload.c"
}

sink() { awk -v k="$1" '$1 == k { print $2 }' "$TB/sink.stats"; }
sink_reset() {
    kill -USR1 "$(tb_pid sink)"
    for i in $(seq 50); do [ "$(sink messages)" = 0 ] && return 0; sleep 0.02; done
}
# wait_sink N SECONDS — until the sink counted N messages; 1 if it never did
wait_sink() {
    local t=$(( $2 * 20 )) i
    for i in $(seq "$t"); do
        [ "$(sink messages)" -ge "$1" ] 2>/dev/null && return 0
        sleep 0.05
    done
    return 1
}
# cpu PID... — CPU seconds (user+system) of these processes and all their descendants, with
# the children they already reaped
cpu() {
    python3 - "$@" <<'PY'
import os, sys
tck = os.sysconf("SC_CLK_TCK")
procs = {}
for p in os.listdir("/proc"):
    if not p.isdigit():
        continue
    try:
        s = open("/proc/%s/stat" % p).read()
    except OSError:
        continue
    f = s[s.rindex(")") + 2:].split()
    procs[int(p)] = (int(f[1]), sum(int(x) for x in f[11:15]))
want = {int(a) for a in sys.argv[1:] if a}
tot, todo = 0, list(want)
seen = set()
while todo:
    p = todo.pop()
    if p in seen or p not in procs:
        continue
    seen.add(p)
    tot += procs[p][1]
    todo += [c for c, v in procs.items() if v[0] == p]
print("%.3f" % (tot / tck))
PY
}

start_mxguard() { # start_mxguard NAME [ENV=VALUE...] — and wait for its listener
    local name=$1 bin=$MXG_BIN conf=$TB/mxguard.conf addr=$MXG_ADDR; shift
    [ "$name" = mxguard-base ] && bin=$BASE_BIN conf=$TB/mxguard-base.conf addr=$BASE_ADDR
    env "$@" setsid "$bin" run -c "$conf" >"$TB/$name.out" 2>"$TB/$name.log" </dev/null 9>&- &
    echo "$! $name" >>"$TB/pids"
    for i in $(seq 100); do
        "$W/smtpload" --idle 1 "$addr" >/dev/null 2>&1 </dev/null &
        local p=$!
        sleep 0.1
        kill "$p" 2>/dev/null
        wait "$p" 2>/dev/null && return 0
        tb_alive "$name" || break
    done
    tail -n 20 "$TB/$name.log"
    tb_die "mxguard ($name) did not start"
}

# Postfix as a DANE relay (and unbound for its validated DNS)
start_postfix() {
    PF=$TB/postfix # (global: postfix_reuse and the callers use it)
    mkdir -p "$TB/unbound" "$PF/conf" "$PF/queue" "$PF/data"
    chown postfix "$PF/data"
    cat >"$TB/unbound/unbound.conf" <<EOF
server:
  interface: 127.0.70.5
  port: 53
  username: ""
  chroot: ""
  directory: "$TB/unbound"
  pidfile: "$TB/unbound/unbound.pid"
  use-syslog: no
  logfile: ""
  do-not-query-localhost: no
  access-control: 127.0.0.0/8 allow
  trust-anchor-file: "$TB/dns/root.key"
  local-zone: "test." nodefault
  num-threads: 1
stub-zone:
  name: "."
  stub-addr: 127.0.70.53@5300
EOF
    tb_spawn unbound unbound -d -c "$TB/unbound/unbound.conf"
    for i in $(seq 50); do
        dig @127.0.70.5 +time=1 +tries=1 dane-ee.test MX 2>/dev/null | grep -q 'flags:.* ad' && break
        sleep 0.1
    done
    dig @127.0.70.5 +time=1 +tries=1 _25._tcp.mx.dane-ee.test TLSA | grep -q 'flags:.* ad' ||
        tb_die "unbound does not validate the test hierarchy"
    printf 'nameserver 127.0.70.5\noptions trust-ad\n' >"$TB/resolv.conf"
    cat >"$PF/conf/main.cf" <<EOF
compatibility_level = 3.6
queue_directory = $PF/queue
data_directory = $PF/data
mail_owner = postfix
setgid_group = postdrop
myhostname = postfix.bench.test
mydomain = bench.test
mydestination =
local_recipient_maps =
local_transport = error:local delivery is disabled
alias_maps =
alias_database =
inet_interfaces = loopback-only
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
smtpd_peername_lookup = no
relayhost = ${PF_RELAYHOST-dane-ee.test}
smtp_bind_address = 127.0.70.2
smtp_tls_security_level = dane
smtp_dns_support_level = dnssec
smtp_tls_loglevel = 1
append_dot_mydomain = no
biff = no
maillog_file = $PF/maillog
maillog_file_prefixes = $PF
EOF
    awk -v svc="127.0.70.2:2526" '
        /^#/ || /^[ \t]/ || NF < 8 { print; next }
        $1 == "smtp" && $2 == "inet" { $1 = svc }
        { $5 = "n"; print }
    ' /usr/share/postfix/master.cf.dist >"$PF/conf/master.cf"
    grep -q '^tlsproxy' "$PF/conf/master.cf" ||
        echo "tlsproxy  unix  -       -       n       -       0       tlsproxy" >>"$PF/conf/master.cf"
    unshare -m sh -c "mount --bind '$TB/resolv.conf' /etc/resolv.conf && \
        script -qc 'postfix -c $PF/conf start' /dev/null" >"$TB/postfix.start" 2>&1 </dev/null 9>&-
    for i in $(seq 100); do
        [ -s "$PF/queue/pid/master.pid" ] && break
        sleep 0.1
    done
    PF_PID=$(tr -d ' \n' <"$PF/queue/pid/master.pid" 2>/dev/null)
    [ -n "$PF_PID" ] || tb_die "Postfix did not start: $(cat "$TB/postfix.start")"
    echo "$PF_PID postfix-master" >>"$TB/pids"
    for i in $(seq 100); do
        tb_wait_port 127.0.70.2 2526 1 && break
    done
}
postfix_reuse() { # postfix_reuse yes|no
    postsuper -c "$PF/conf" -d ALL >/dev/null 2>&1 # nothing left over from an earlier run
    postconf -c "$PF/conf" -e "smtp_tls_connection_reuse = $1"
    script -qc "postfix -c $PF/conf reload" /dev/null >/dev/null 2>&1 </dev/null 9>&-
    sleep 1
}
