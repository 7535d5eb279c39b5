#!/usr/bin/env bash
# t_dane_dns.sh — DNSSEC outcomes on the DANE path: a bogus TLSA RRset (451 4.7.5), a bogus
# MX RRset and a zone whose signatures have expired (451 4.4.3), an insecure zone
# (opportunistic TLS, no DANE), and a DNS server that stops answering after start-up
# (451 4.4.3 for a fresh domain; with dns.cache_size = 0 also for one resolved before, while
# an instance with the default cache still delivers it). Nothing is delivered on failure.
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

# server.workers = 1: §5 relies on the answer cached by the session that resolved the domain
# before the DNS server stopped; each worker has its own DNS cache (docs/ARCHITECTURE.md
# §Workers), so with several the next session may land in a worker that never asked
TB_WORKERS=1
tb_init
tb_start_dns
tb_start_mx mx1 127.0.70.11
tb_start_mx dane-ee 127.0.70.21
tb_start_mx dane-bogus 127.0.70.28
tb_start_mx dane-expired 127.0.70.34
tb_write_config
tb_start_mxguard
# a second instance without a DNS cache
tb_write_config -o "$TB/mxguard-nocache.conf" -l 127.0.70.3:10025 -s "$TB/state-nocache" -D "cache_size = 0;"
tb_start_mxguard -c "$TB/mxguard-nocache.conf" -n mxguard-nocache -a 127.0.70.3:10025

MX1=$TB/spool/mx1

# 1. TLSA RRset bogus (MX and A secure) -> the host is unusable -> 451 4.7.5
swaks_send tlsabogus --to a@dane-bogus.test
assert_reply "dane-bogus.test (bogus TLSA): 451 4.7.5" "$SW_RCPT" "451 4.7.5"
assert_contains "dane-bogus.test: the reply says DANE" "$SW_RCPT" "DANE"
assert_no_mail "dane-bogus.test: nothing reached mx.dane-bogus.test (no MAIL, no plaintext)" dane-bogus

# 2. MX RRset bogus -> 451 4.4.3
swaks_send mxbogus --to a@bogus.test
assert_reply "bogus.test (bogus MX RRset): 451 4.4.3" "$SW_RCPT" "451 4.4.3"
assert_file_count "$MX1" 0 "bogus.test: nothing at mx1"

# 3. every signature of the zone expired (valid DS in test.) -> bogus MX -> 451 4.4.3
swaks_send expired --to a@dane-expired.test
assert_reply "dane-expired.test (expired RRSIGs): 451 4.4.3" "$SW_RCPT" "451 4.4.3"
assert_no_mail "dane-expired.test: nothing reached mx.dane-expired.test" dane-expired

# 4. insecure zone (no DS) -> no DANE, opportunistic TLS
mark=$(tb_log_mark)
tb_make_message ins --to b@insecure.test --subject "insecure zone" --id dane-dns-ins
swaks_send ins --to b@insecure.test --no-data-fixup --data "@$TB/ins.wire"
assert_reply "insecure.test: RCPT accepted" "$SW_RCPT" "250"
assert_reply "insecure.test: final dot 250" "$SW_DOT" "250"
assert_file_count "$MX1" 1 "insecure.test delivered to mx1"
m=$(spool_last "$MX1")
[ -n "$m" ] && assert_match "insecure.test: opportunistic TLS used (json tls.version)" "$(json_get "$m.json" tls.version)" '^TLSv1\.[23]$'
[ -n "$m" ] && assert_eq "insecure.test: message intact" "received+same" "$(eml_compare "$m.eml" "$TB/ins.msg")"
assert_no_log "insecure.test: no TLSA match logged" "$mark" 'matched at depth'
# ... and through the instance without cache, so both have looked insecure.test up
SW_SERVER=127.0.70.3:10025 swaks_send ins2 --to c@insecure.test
assert_reply "insecure.test via the no-cache instance: final dot 250" "$SW_DOT" "250"
assert_file_count "$MX1" 2 "insecure.test delivered twice"

# 5. the DNS server stops answering
tb_stop nsd
assert_eq "nsd stopped (no answer for . SOA)" "" \
    "$(dig @$TB_DNS_IP -p $TB_DNS_PORT -b $TB_CLIENT_IP +short +time=1 +tries=1 +norec . SOA 2>/dev/null | grep -v '^;')"
t0=$(date +%s)
swaks_send nodns --to a@dane-ee.test
t1=$(date +%s)
assert_reply "DNS gone, fresh domain dane-ee.test: 451 4.4.3" "$SW_RCPT" "451 4.4.3"
assert_match "answered within timeouts.rcpt_total (15 s) (took $((t1 - t0)) s)" "$((t1 - t0))" '^([0-9]|1[0-7])$'
assert_no_mail "DNS gone: nothing reached mx.dane-ee.test" dane-ee
SW_SERVER=127.0.70.3:10025 swaks_send nodns-nocache --to d@insecure.test
assert_reply "DNS gone, dns.cache_size = 0: insecure.test (resolved before) 451 4.4.3" "$SW_RCPT" "451 4.4.3"
swaks_send nodns-cache --to e@insecure.test
assert_reply "DNS gone, default cache: insecure.test (resolved before) still delivered" "$SW_DOT" "250"
assert_file_count "$MX1" 3 "mx1: only the cached insecure.test message after DNS went away"
assert_eq "mxguard survived the DNS failures" "yes yes" \
    "$(tb_alive mxguard && echo yes) $(tb_alive mxguard-nocache && echo yes)"

tb_finish
