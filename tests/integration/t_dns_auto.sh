#!/usr/bin/env bash
# t_dns_auto.sh — dns.mode = "auto" behind a resolver that strips DNSSEC (nsd serving unsigned
# copies of the zones on 127.0.70.54:5300), with dns.root_hints pointing at the test-bed's own
# signed root (127.0.70.53, which then also answers on port 53: resolution from the root asks
# port 53). Names under test. are never resolved from the root here: libunbound answers them
# itself (RFC 6761), so recursion is shown on dane-rec., a signed TLD of the test root.
#   1. auto: mxguard starts, logs one line "dns: mode auto -> recursive (...)", and a DANE
#      delivery to dane-rec. works (TLSA 3 1 1 matched); check --json and the metrics say
#      recursive.
#   2. stub with the same resolver refuses to start (as before), whatever the root hints.
#   3. auto with a wrong trust anchor: neither path passes: refuses to start, naming both.
#   4. run time: the stub path starts passing (a signed nsd replaces the stripping one) ->
#      back to stub within dns.auto_recheck; test. names resolve again (only the stub path can).
#   5. run time: the stub path strips again -> recursive again; dane-rec. still delivers.
#   6. auto without any stub resolver (no dns.servers, an /etc/resolv.conf without nameserver
#      lines, in a private mount namespace): starts recursive and says why; delivers.
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

# server.workers = 1: it checks one process's start sequence — one "mode auto ->" line, no
# connection accepted before the DNSSEC self-check passed; with several workers the master
# binds the listeners before the workers' self-checks and each worker logs its own line
TB_WORKERS=1
tb_init
tb_zones
# the signed hierarchy also on port 53 of its address: the root hints' servers and the name
# server of dane-rec. are asked there (never the real root: the hints name only 127.0.70.53)
sed -i "s/^\tip-address: $TB_DNS_IP@$TB_DNS_PORT\$/&\n\tip-address: $TB_DNS_IP@53/" "$TB/dns/nsd.conf"
grep -q "ip-address: $TB_DNS_IP@53" "$TB/dns/nsd.conf" || tb_die "nsd.conf: no port 53 listener added"
tb_start_dns
tb_start_dns_stripped
tb_start_mx dane-ee 127.0.70.21
tb_start_mx mx1 127.0.70.11

STRIPPED=$TB_DNS_STRIPPED_IP:$TB_DNS_PORT
HINTS=$TB/root.hints
printf '.\t3600000\tNS\tns.dane-rec.\nns.dane-rec.\t3600000\tA\t%s\n' "$TB_DNS_IP" >"$HINTS"
METRICS=$TB_MXG_IP:9125

# scrape NAME [PATH] — GET PATH (default /metrics) into $TB/NAME.metrics
scrape() {
    "$PYTHON" - "$TB_MXG_IP" 9125 "$TB_CLIENT_IP" "$TB/$1.metrics" "${2:-/metrics}" <<'PY'
import http.client, sys
ip, port, src, out, path = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
c = http.client.HTTPConnection(ip, port, timeout=5, source_address=(src, 0))
c.request("GET", path)
open(out, "wb").write(c.getresponse().read())
PY
}
# metric NAME SERIES — the value of SERIES in NAME's scrape ("" when absent)
metric() { awk -v s="$2" '$1 == s { print $2 }' "$TB/$1.metrics"; }

# wait_log MARK ERE SECS — until mxguard.log has a line matching ERE since MARK (1 if never)
wait_log() {
    local i
    for i in $(seq $(($3 * 10))); do
        tb_log_since "$1" | grep -E -- "$2" >/dev/null && return 0
        sleep 0.1
    done
    return 1
}

# deliver NAME DOMAIN COUNT [LOG] — a DANE delivery to a@DOMAIN through mxguard reaches
# dane-ee's server over TLS with the TLSA match in LOG (default mxguard; COUNT: the server's
# messages afterwards)
deliver() {
    local name=$1 d=$2 count=$3 log=${4:-mxguard} mark m
    mark=$(tb_log_mark "$log")
    tb_make_message "$name" --to "a@$d" --subject "auto $name" --id "$name-1"
    swaks_send "$name" --to "a@$d" --no-data-fixup --data "@$TB/$name.wire"
    assert_reply "$name: RCPT a@$d accepted" "$SW_RCPT" "250"
    assert_reply "$name: final dot 250" "$SW_DOT" "250"
    assert_file_count "$TB/spool/dane-ee" "$count" "$name: delivered to the MX of $d"
    m=$(spool_last "$TB/spool/dane-ee")
    if [ -n "$m" ]; then
        assert_eq "$name: envelope recipient" "[\"a@$d\"]" "$(json_get "$m.json" rcpts)"
        assert_match "$name: over TLS" "$(json_get "$m.json" tls.version)" '^TLSv1\.[23]$'
        assert_eq "$name: message intact" "received+same" "$(eml_compare "$m.eml" "$TB/$name.msg")"
    fi
    assert_log "$name: DANE verified (TLSA 3 1 1 matched)" "$mark" 'TLSA 3 1 1 matched at depth 0' "$log"
}

# 1. auto behind the stripping resolver: resolution from the (test) root
tb_write_config -o "$TB/auto.conf" -m auto -d "$STRIPPED" -D "root_hints = \"$HINTS\";" \
    -D 'auto_recheck = "1s";' \
    "metrics: { listen = \"$METRICS\"; allow_networks = [\"127.0.70.0/25\"]; };"
tb_start_mxguard -c "$TB/auto.conf"
pass "auto + stripping resolver: mxguard starts"
assert_file_grep "auto: one line says recursive and why" "$TB/mxguard.log" \
    "dns: mode auto -> recursive \(the stub resolver $TB_DNS_STRIPPED_IP:$TB_DNS_PORT over TCP failed the DNSSEC self-check: DNSKEY \. "
assert_eq "auto: exactly one such line" 1 "$(grep -c 'dns: mode auto -> ' "$TB/mxguard.log")"
deliver rec1 dane-rec 1
"$MXG_BIN" check dane-rec -c "$TB/auto.conf" --json >"$TB/check.json" 2>"$TB/check.err" </dev/null
assert_eq "check --json: dns.mode recursive" recursive "$(json_get "$TB/check.json" dns.mode)"
assert_eq "check --json: dns.configured auto" auto "$(json_get "$TB/check.json" dns.configured)"
assert_eq "check --json: deliverable (DANE over the recursive path)" deliverable "$(json_get "$TB/check.json" verdict)"
assert_file_grep "check: the text shows it too" <("$MXG_BIN" check dane-rec -c "$TB/auto.conf" 2>&1 </dev/null) \
    '^dns recursive \(dns.mode "auto"\): the root servers \(dns.root_hints '
scrape m1
assert_eq "metrics: mxguard_dns_mode{mode=\"recursive\"} 1" 1 "$(metric m1 'mxguard_dns_mode{mode="recursive"}')"
assert_eq "metrics: mxguard_dns_mode{mode=\"stub\"} 0" 0 "$(metric m1 'mxguard_dns_mode{mode="stub"}')"
scrape s1 /status
assert_file_grep "status page: the DNSSEC path passed (auto mode notes its self-checks)" \
    "$TB/s1.metrics" '<th>DNSSEC path</th><td class="good">passed: '
assert_file_grep "status page: the mode in use" "$TB/s1.metrics" 'auto, now recursive'

# 2. stub with the same resolver still refuses to start
tb_write_config -o "$TB/stub.conf" -m stub -d "$STRIPPED" -l 127.0.70.3:10025 \
    -D "root_hints = \"$HINTS\";"
tb_start_mxguard_fails -c "$TB/stub.conf" -n mxguard-stub -a 127.0.70.3:10025 12
assert_match "stub + stripping resolver: exits non-zero (status $MXG_EXIT)" "$MXG_EXIT" '^([1-9][0-9]*)$'
assert_file_grep "stub: the error is the DNSSEC self-check" "$TB/mxguard-stub.log" 'DNSSEC self-check failed.*refusing to start'
assert_eq "stub: no connection accepted" 0 "$MXG_ACCEPTED"
assert_eq "stub: no auto-mode line" 0 "$(grep -c 'mode auto' "$TB/mxguard-stub.log")"

# 3. auto, neither path passes (a wrong trust anchor: both answers are judged against it)
tb_write_config -o "$TB/neither.conf" -m auto -t "$TB/dns/wrong-root.ds" -l 127.0.70.3:10025 \
    -D "root_hints = \"$HINTS\";"
tb_start_mxguard_fails -c "$TB/neither.conf" -n mxguard-neither -a 127.0.70.3:10025 20
assert_match "auto, neither path passes: exits non-zero (status $MXG_EXIT)" "$MXG_EXIT" '^([1-9][0-9]*)$'
assert_file_grep "auto, neither: names both failures" "$TB/mxguard-neither.log" \
    'neither resolver path passes the DNSSEC self-check: stub resolver .*: DNSKEY \. .*; recursive from the root servers \(dns.root_hints .*\): DNSKEY \. .*refusing to start'
assert_eq "auto, neither: no connection accepted" 0 "$MXG_ACCEPTED"

# 4. the stub path passes at run time: a signed nsd replaces the stripping one
mark=$(tb_log_mark)
tb_stop nsd-stripped
sed -e "s/$TB_DNS_IP@$TB_DNS_PORT/$TB_DNS_STRIPPED_IP@$TB_DNS_PORT/" -e "/@53\$/d" \
    -e 's#/nsd\.#/nsd-good.#g' "$TB/dns/nsd.conf" >"$TB/dns/nsd-good.conf"
tb__start_nsd nsd-good "$TB/dns/nsd-good.conf" "$TB_DNS_STRIPPED_IP"
if wait_log "$mark" 'dns: mode auto -> stub \(the stub resolver .* passes the DNSSEC self-check again' 15; then
    pass "run time: back to stub once the stub path passes"
else
    fail "run time: no switch back to stub within 15 s"
fi
deliver stub1 dane-ee.test 2 # a test. name: only the stub path resolves it
scrape m2
assert_eq "metrics: back to mxguard_dns_mode{mode=\"stub\"} 1" 1 "$(metric m2 'mxguard_dns_mode{mode="stub"}')"

# 5. the stub path strips again at run time -> recursive again
mark=$(tb_log_mark)
tb_stop nsd-good
tb_start_dns_stripped
if wait_log "$mark" 'dns: mode auto -> recursive \(the stub resolver .* failed the DNSSEC self-check' 15; then
    pass "run time: to recursive when the stub path fails"
else
    fail "run time: no switch to recursive within 15 s"
fi
deliver rec2 dane-rec 3
assert_eq "mxguard still runs" 0 "$(tb_alive mxguard; echo $?)"

# 6. no stub resolver at all: /etc/resolv.conf without nameservers (bind-mounted over the real
# one for mxguard only), no dns.servers
printf 'search example.invalid\n' >"$TB/empty.resolv"
cat >"$TB/nors.sh" <<EOF
#!/bin/sh
exec unshare -m sh -c 'mount --bind "$TB/empty.resolv" /etc/resolv.conf && exec "\$0" "\$@"' "$MXG_BIN" "\$@"
EOF
chmod +x "$TB/nors.sh"
tb_write_config -o "$TB/nors.conf" -m auto -l 127.0.70.3:10025 -D "root_hints = \"$HINTS\";"
sed -i '/^  servers = /d' "$TB/nors.conf"
REAL_BIN=$MXG_BIN
MXG_BIN=$TB/nors.sh tb_start_mxguard -c "$TB/nors.conf" -n mxguard-nors -a 127.0.70.3:10025
MXG_BIN=$REAL_BIN
pass "auto without a stub resolver: mxguard starts"
assert_file_grep "no stub resolver: one line says recursive and why" "$TB/mxguard-nors.log" \
    'dns: mode auto -> recursive \(there is no stub resolver: none \(no DNS servers configured and no nameserver line in /etc/resolv.conf\)\)'
SW_SERVER=127.0.70.3:10025 deliver nors dane-rec 4 mxguard-nors

# Debian's getdns 1.6 hands the hints to libunbound as /tmp/getdns-root-dns-servers-XXXXXX and
# never removes that file: remove those of this test's root (they name ns.dane-rec.)
tb_stop mxguard
tb_stop mxguard-nors
grep -l 'ns\.dane-rec\.' /tmp/getdns-root-dns-servers-* 2>/dev/null | xargs -r rm -f

tb_finish
