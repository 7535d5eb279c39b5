#!/usr/bin/env bash
# t_dane_startup.sh — the DNSSEC self-check at start-up: behind a resolver that strips DNSSEC
# (nsd serving unsigned copies of the zones) or with a wrong trust anchor, `mxguard run`
# exits non-zero within seconds, says "DNSSEC", and never accepts a connection; the correct
# anchor as a DNSKEY file (root.key) passes; with `dane: { enabled = false; }` the stripping
# resolver is accepted and mail is relayed opportunistically.
# While mxguard cannot serve, a client is refused (ECONNREFUSED), never accepted into a backlog
# that gets no greeting (app/listeners.h), with server.workers = 2 and 1, behind a resolver that
# answers 2 s late (dns_delay.py, a real slow peer): 5. when it also strips DNSSEC, every
# connection attempt until mxguard exits non-zero (saying "DNSSEC") is refused; 6. when it
# passes the check, every attempt is refused until the first is served, and none after that.
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

tb_init
tb_start_dns
tb_start_dns_stripped
tb_start_mx mx1 127.0.70.11

STRIPPED=$TB_DNS_STRIPPED_IP:$TB_DNS_PORT

# 1. the resolver strips DNSSEC
tb_write_config -o "$TB/stripped.conf" -d "$STRIPPED"
tb_start_mxguard_fails -c "$TB/stripped.conf" -n mxguard-stripped 12
assert_match "stripped resolver: mxguard exits non-zero (status $MXG_EXIT)" "$MXG_EXIT" '^([1-9][0-9]*)$'
assert_match "stripped resolver: it exits within 10 s (took $MXG_EXIT_SECS s)" "$MXG_EXIT_SECS" '^([0-9]|10)$'
assert_file_grep "stripped resolver: the error mentions DNSSEC" "$TB/mxguard-stripped.log" 'DNSSEC'
assert_eq "stripped resolver: no connection accepted" 0 "$MXG_ACCEPTED"

# 2. a wrong trust anchor (a KSK for "." that signed nothing), signed zones
tb_write_config -o "$TB/wronganchor.conf" -t "$TB/dns/wrong-root.ds"
tb_start_mxguard_fails -c "$TB/wronganchor.conf" -n mxguard-wronganchor 12
assert_match "wrong anchor: mxguard exits non-zero (status $MXG_EXIT)" "$MXG_EXIT" '^([1-9][0-9]*)$'
assert_match "wrong anchor: it exits within 10 s (took $MXG_EXIT_SECS s)" "$MXG_EXIT_SECS" '^([0-9]|10)$'
assert_file_grep "wrong anchor: the error mentions DNSSEC" "$TB/mxguard-wronganchor.log" 'DNSSEC'
assert_eq "wrong anchor: no connection accepted" 0 "$MXG_ACCEPTED"

# 3. the right anchor as a DNSKEY record (the format of Debian's root.key) passes the check
tb_write_config -o "$TB/dnskey.conf" -t "$TB/dns/root.key"
tb_start_mxguard -c "$TB/dnskey.conf" -n mxguard-dnskey
pass "anchor as DNSKEY (root.key): mxguard starts"
swaks_send dnskey --to a@example.test
assert_reply "anchor as DNSKEY: example.test relayed" "$SW_DOT" "250"
assert_file_count "$TB/spool/mx1" 1 "anchor as DNSKEY: delivered to mx1"
tb_stop mxguard-dnskey

# 4. DANE disabled: the stripping resolver is accepted, everything is insecure -> opportunistic
tb_write_config -o "$TB/nodane.conf" -d "$STRIPPED" 'dane: { enabled = false; };'
tb_start_mxguard -c "$TB/nodane.conf" -n mxguard-nodane
pass "dane.enabled = false + stripped resolver: mxguard starts"
tb_make_message nd --to b@example.test --subject "DANE disabled" --id nodane-1
swaks_send nodane --to b@example.test --no-data-fixup --data "@$TB/nd.wire"
assert_reply "DANE disabled: RCPT accepted" "$SW_RCPT" "250"
assert_reply "DANE disabled: final dot 250" "$SW_DOT" "250"
assert_file_count "$TB/spool/mx1" 2 "DANE disabled: example.test delivered to mx1"
m=""
[ "$(spool_count "$TB/spool/mx1")" = 2 ] && m=$(spool_last "$TB/spool/mx1")
[ -n "$m" ] && assert_match "DANE disabled: opportunistic TLS (json tls.version)" "$(json_get "$m.json" tls.version)" '^TLSv1\.[23]$'
[ -n "$m" ] && assert_eq "DANE disabled: message intact" "received+same" "$(eml_compare "$m.eml" "$TB/nd.msg")"
assert_file_grep "DANE disabled: mxguard warns about it" "$TB/mxguard-nodane.log" '[Dd][Aa][Nn][Ee].*(disabled|enabled = false|off)'
tb_stop mxguard-nodane

# watch NAME CONF WORKERS [UNTIL_SERVED] — a client connects every 50 ms (smtpclient.py watch,
# 1.5 s for a reply to begin) from just before `mxguard run -c CONF` (server.workers = WORKERS;
# log $TB/NAME.log) until mxguard has exited, UNTIL_SERVED attempts were served, or 25 s. Sets
# W_REFUSED W_SERVED W_UNSERVED W_AFTER (refusals after the first served attempt) and MXG_EXIT
# (the exit status, or "running").
watch() {
    local name=$1 conf=$2 workers=$3 until=${4:-1000000} wpid pid i
    rm -f "$TB/$name.pid"
    "$PYTHON" "$TB_LIB_DIR/smtpclient.py" --server "$TB_MXG_IP:$TB_MXG_PORT" \
        --source "$TB_CLIENT_IP" --timeout 1.5 watch --for 25 --pidfile "$TB/$name.pid" \
        --until-served "$until" >"$TB/$name.watch" &
    wpid=$!
    for i in $(seq 100); do # its first attempt made (python is up), so it sees the whole start
        [ -s "$TB/$name.watch" ] && break
        sleep 0.05
    done
    # the 2 s answers stay within the DNS timeout (3 s in the test-bed) by a wide margin
    MXGUARD_SERVER_WORKERS=$workers MXGUARD_TIMEOUTS_DNS=10s tb_spawn "$name" "$MXG_BIN" run -c "$conf"
    pid=$TB_LAST_PID
    echo "$pid" >"$TB/$name.pid"
    wait "$wpid"
    if tb_alive "$name"; then
        MXG_EXIT=running
    else
        wait "$pid"
        MXG_EXIT=$?
    fi
    local last
    last=$(tail -n 1 "$TB/$name.watch")
    W_REFUSED=$(sed -n 's/.*REFUSED=\([0-9]*\) .*/\1/p' <<<"$last")
    W_SERVED=$(sed -n 's/.* SERVED=\([0-9]*\) .*/\1/p' <<<"$last")
    W_UNSERVED=$(sed -n 's/.*UNSERVED=\([0-9]*\) .*/\1/p' <<<"$last")
    W_AFTER=$(sed -n 's/.*REFUSED_AFTER_SERVED=\([0-9]*\)$/\1/p' <<<"$last")
    echo "# $name: $(tr '\n' ';' <"$TB/$name.watch") exit $MXG_EXIT"
}

# 5. a slow resolver that strips DNSSEC: refused all along, then exit non-zero
tb_start_dns_slow 2 "$TB_DNS_STRIPPED_IP"
tb_write_config -o "$TB/slowstripped.conf" -d "$TB_DNS_SLOW_IP:$TB_DNS_PORT"
for w in 2 1; do
    what="slow stripping resolver, $w worker(s)"
    q0=$(grep -c '^query' "$TB/dns-slow.out")
    watch "slowstripped$w" "$TB/slowstripped.conf" "$w"
    assert_match "$what: mxguard exits non-zero (status $MXG_EXIT)" "$MXG_EXIT" '^[1-9][0-9]*$'
    assert_file_grep "$what: stderr says DNSSEC" "$TB/slowstripped$w.log" 'DNSSEC'
    [ "$(grep -c '^query' "$TB/dns-slow.out")" -gt "$q0" ] &&
        pass "$what: the self-check asked the slow resolver" ||
        fail "$what: the slow resolver got no query"
    [ "${W_REFUSED:-0}" -ge 10 ] && pass "$what: connections refused during the start-up ($W_REFUSED)" ||
        fail "$what: only ${W_REFUSED:-none} connection attempts refused during the start-up"
    assert_eq "$what: no connection accepted without a greeting" 0 "${W_UNSERVED:-none}"
    assert_eq "$what: no connection served" 0 "${W_SERVED:-none}"
done
assert_log "2 workers: the master stops when a worker fails its start-up" 0 \
    "worker [01] \(pid [0-9]+\) exited with status 1 before it served: stopping" slowstripped2
assert_log "2 workers: the master exits 1" 0 "master: every worker stopped \(status 1\)" slowstripped2
tb_stop dns-slow

# 6. a slow resolver that passes the check: refused until served, then served
tb_start_dns_slow 2
tb_write_config -o "$TB/slow.conf" -d "$TB_DNS_SLOW_IP:$TB_DNS_PORT"
for w in 2 1; do
    what="slow resolver, $w worker(s)"
    watch "slow$w" "$TB/slow.conf" "$w" 5
    assert_eq "$what: mxguard runs" running "$MXG_EXIT"
    assert_file_grep "$what: the DNSSEC self-check passed" "$TB/slow$w.log" 'DNSSEC self-check passed'
    [ "${W_REFUSED:-0}" -ge 10 ] && pass "$what: connections refused during the start-up ($W_REFUSED)" ||
        fail "$what: only ${W_REFUSED:-none} connection attempts refused during the start-up"
    assert_eq "$what: no connection accepted without a greeting" 0 "${W_UNSERVED:-none}"
    assert_eq "$what: then served (5 attempts)" 5 "${W_SERVED:-none}"
    assert_eq "$what: no refusal once served" 0 "${W_AFTER:-none}"
    tb_stop "slow$w"
done
tb_stop dns-slow

tb_finish
