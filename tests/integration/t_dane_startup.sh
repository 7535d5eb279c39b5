#!/usr/bin/env bash
# t_dane_startup.sh — the DNSSEC self-check at start-up: behind a resolver that strips DNSSEC
# (nsd serving unsigned copies of the zones) or with a wrong trust anchor, `mxguard run`
# exits non-zero within seconds, says "DNSSEC", and never accepts a connection; the correct
# anchor as a DNSKEY file (root.key) passes; with `dane: { enabled = false; }` the stripping
# resolver is accepted and mail is relayed opportunistically.
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

tb_finish
