#!/usr/bin/env bash
# t_testbed_dane.sh — checks the DANE part of the test-bed itself, without mxguard: the DANE
# zones validate (or are bogus) as intended with delv, the "stripping" nsd serves no DNSSEC,
# a wrong anchor validates nothing, and each DANE MX server presents the certificate its
# TLSA records (taken from DNS) say: openssl s_client's DANE check passes for the matching
# 3 1 1 / 2 1 1 cases and fails for the wrong-name and wrong-digest ones.
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

tb_init
tb_start_dns
tb_start_dns_stripped

delv_q() { # delv_q NAME TYPE [SERVER [ANCHOR]] — validating lookup with the test anchor
    delv @"${3:-$TB_DNS_IP}" -p "$TB_DNS_PORT" -b "$TB_CLIENT_IP" -a "${4:-$TB/dns/delv.anchor}" +root=. "$1" "$2" 2>&1
}
tlsa_q() { # tlsa_q NAME — its TLSA rrdata from nsd, one per line, hex in one piece, lower case
    dig @"$TB_DNS_IP" -p "$TB_DNS_PORT" -b "$TB_CLIENT_IP" +short +norec "$1" TLSA |
        awk '{ h = ""; for (i = 4; i <= NF; i++) h = h $i; print $1, $2, $3, tolower(h) }' | sort
}
CERTS=$TB/dns/certs

# ---- DNS: the DANE zones
for z in dane-ee:21 dane-ta:22 dane-taname:23 dane-bogus:28 dane-nodata:29 dane-unusable:30 \
         dane-unusable-plain:31 dane-nostarttls:32; do
    d=${z%:*}.test ip=127.0.70.${z#*:}
    assert_match "$d MX 10 mx.$d (validated)" "$(delv_q "$d" MX)" "fully validated.*MX[[:space:]]+10 mx\\.$d\\."
    assert_match "mx.$d A $ip (validated)" "$(delv_q "mx.$d" A)" "fully validated.*A[[:space:]]+${ip//./\\.}([^0-9]|\$)"
done
assert_match "dane-2nd.test MX 10 mx1, 20 mx2 (validated)" "$(delv_q dane-2nd.test MX)" \
    'fully validated.*MX[[:space:]]+10 mx1\.dane-2nd\.test\..*MX[[:space:]]+20 mx2\.dane-2nd\.test\.'
assert_match "mx1/mx2.dane-2nd.test A .24/.25 (validated)" "$(delv_q mx1.dane-2nd.test A; delv_q mx2.dane-2nd.test A)" \
    'fully validated.*127\.0\.70\.24.*fully validated.*127\.0\.70\.25'
assert_match "dane-allbad.test MX 10 mx1.dane-2nd, 20 mx3 (validated)" "$(delv_q dane-allbad.test MX)" \
    'fully validated.*MX[[:space:]]+10 mx1\.dane-2nd\.test\..*MX[[:space:]]+20 mx3\.dane-allbad\.test\.'
assert_match "mx3.dane-allbad.test A 127.0.70.27 (validated)" "$(delv_q mx3.dane-allbad.test A)" 'fully validated.*127\.0\.70\.27'

# TLSA records: validated, and equal to the digests of the certificates they stand for
for h in mx.dane-ee.test mx2.dane-2nd.test mx.dane-bogus.test mx.dane-nostarttls.test real.dane-target.test; do
    assert_eq "TLSA _25._tcp.$h = 3 1 1 of its certificate" "3 1 1 $(cat "$CERTS/$h.tlsa311")" "$(tlsa_q "_25._tcp.$h")"
done
for h in mx.dane-ta.test mx.dane-taname.test; do
    assert_eq "TLSA _25._tcp.$h = 2 1 1 of the test CA" "2 1 1 $(cat "$CERTS/ca.tlsa211")" "$(tlsa_q "_25._tcp.$h")"
done
for h in mx1.dane-2nd.test mx3.dane-allbad.test; do
    assert_eq "TLSA _25._tcp.$h = the wrong 3 1 1 digest" "$(tr 'A-F' 'a-f' <"$TB/dns/tlsa.wrong311")" "$(tlsa_q "_25._tcp.$h")"
done
for h in mx.dane-unusable.test mx.dane-unusable-plain.test; do
    assert_eq "TLSA _25._tcp.$h = only 0 0 1 + 1 1 1 of its certificate" \
        "$(printf '0 0 1 %s\n1 1 1 %s' "$(cat "$CERTS/$h.tlsa001")" "$(cat "$CERTS/$h.tlsa311")")" "$(tlsa_q "_25._tcp.$h")"
done
for h in mx.dane-ee.test mx.dane-ta.test mx.dane-taname.test mx1.dane-2nd.test mx2.dane-2nd.test \
         mx3.dane-allbad.test mx.dane-unusable.test mx.dane-unusable-plain.test mx.dane-nostarttls.test \
         real.dane-target.test; do
    assert_match "TLSA _25._tcp.$h fully validated" "$(delv_q "_25._tcp.$h" TLSA)" 'fully validated.*TLSA[[:space:]]+[0-3] [01] [0-2] '
done

# bogus TLSA (MX and A secure), bogus A (MX and TLSA secure), no TLSA (secure denial), the
# CNAME'd MX host, expired signatures
out=$(delv_q _25._tcp.mx.dane-bogus.test TLSA)
assert_match "dane-bogus.test: TLSA RRSIG fails" "$out" 'RRSIG failed to verify|no valid signature'
assert_not_contains "dane-bogus.test: TLSA not validated" "$out" "fully validated"
assert_match "abogus.test MX 10 mx.abogus.test (validated)" "$(delv_q abogus.test MX)" \
    'fully validated.*MX[[:space:]]+10 mx\.abogus\.test\.'
out=$(delv_q mx.abogus.test A)
assert_match "abogus.test: the A RRSIG of its MX host fails" "$out" 'RRSIG failed to verify|no valid signature'
assert_not_contains "abogus.test: mx.abogus.test A not validated" "$out" "fully validated"
assert_match "abogus.test: TLSA _25._tcp.mx.abogus.test (validated)" "$(delv_q _25._tcp.mx.abogus.test TLSA)" \
    'fully validated.*TLSA[[:space:]]+3 1 1 '
assert_contains "dane-nodata.test: no TLSA, negative answer validated" \
    "$(delv_q _25._tcp.mx.dane-nodata.test TLSA)" "negative response, fully validated"
out=$(delv_q dane-cname.test MX; delv_q mx.dane-cname.test A)
assert_match "dane-cname.test MX 10 mx.dane-cname.test (validated)" "$out" 'fully validated.*MX[[:space:]]+10 mx\.dane-cname\.test\.'
assert_match "mx.dane-cname.test: CNAME real.dane-target.test, A 127.0.70.33 (validated)" "$out" \
    'fully validated.*CNAME[[:space:]]+real\.dane-target\.test\..*A[[:space:]]+127\.0\.70\.33'
assert_contains "no TLSA at _25._tcp.mx.dane-cname.test (validated denial)" \
    "$(delv_q _25._tcp.mx.dane-cname.test TLSA)" "negative response, fully validated"
for q in "dane-expired.test MX" "mx.dane-expired.test A" "_25._tcp.mx.dane-expired.test TLSA"; do
    out=$(delv_q $q)
    assert_match "dane-expired.test: $q bogus (RRSIG expired)" "$out" 'RRSIG has expired'
    assert_not_contains "dane-expired.test: $q not validated" "$out" "fully validated"
done
assert_match "dane-expired.test has a DS in test. (validated)" "$(delv_q dane-expired.test DS)" 'fully validated.*DS'
assert_match "dane-expired.test: signatures ended before now" \
    "$(awk '$4 == "RRSIG" { print ($9 < strftime("%Y%m%d%H%M%S", systime(), 1)) ? "past" : "future" }' \
        "$TB/dns/zones/dane-expired.test.zone.signed" | sort -u | tr '\n' ' ')" '^past $'
assert_match "example.test still validates next to the DANE zones" "$(delv_q example.test MX)" 'fully validated'

# ---- the stripping server and the wrong anchor
out=$(dig @$TB_DNS_STRIPPED_IP -p $TB_DNS_PORT -b $TB_CLIENT_IP +dnssec +norec example.test MX)
assert_match "stripped: example.test MX answered" "$out" 'MX[[:space:]]+10 mx1\.example\.test\.'
assert_not_contains "stripped: no RRSIG with +dnssec" "$out" "RRSIG"
out=$(dig @$TB_DNS_STRIPPED_IP -p $TB_DNS_PORT -b $TB_CLIENT_IP +dnssec +norec dane-ee.test MX)
assert_match "stripped: dane-ee.test MX answered, unsigned" "$out" 'status: NOERROR.*MX[[:space:]]+10 mx\.dane-ee\.test\.'
assert_not_contains "stripped: dane-ee.test no RRSIG" "$out" "RRSIG"
assert_match "stripped: . DNSKEY has no answer" \
    "$(dig @$TB_DNS_STRIPPED_IP -p $TB_DNS_PORT -b $TB_CLIENT_IP +dnssec +norec . DNSKEY)" 'status: NOERROR.*ANSWER: 0,'
assert_match "signed: . DNSKEY answered with RRSIG" \
    "$(dig @$TB_DNS_IP -p $TB_DNS_PORT -b $TB_CLIENT_IP +dnssec +norec . DNSKEY)" 'DNSKEY[[:space:]]+257 .*RRSIG[[:space:]]+DNSKEY 13 '
out=$(delv_q example.test MX "$TB_DNS_STRIPPED_IP")
assert_not_contains "stripped: delv cannot validate example.test MX" "$out" "fully validated"
assert_match "stripped: delv reports a broken chain" "$out" 'broken trust chain|no valid RRSIG|insecurity proof failed'
out=$(delv_q example.test MX "$TB_DNS_IP" "$TB/dns/delv-wrong.anchor")
assert_not_contains "wrong anchor: delv validates nothing" "$out" "fully validated"
assert_match "wrong anchor: . DNSKEY not signed by the anchor's key" "$out" 'no valid signature found|broken trust chain'
assert_match "wrong-root.ds is a DS record for . (another key)" "$(cat "$TB/dns/wrong-root.ds")" '^\. [0-9]+ IN DS [0-9]+ 13 2 [0-9A-F]+$'
assert_not_contains "wrong-root.ds differs from root.ds" "$(cat "$TB/dns/root.ds")" "$(awk '{print $NF}' "$TB/dns/wrong-root.ds")"

# ---- the DANE MX servers (the same flags as in t_dane.sh)
tb_start_mx dane-ee 127.0.70.21
tb_start_mx --chain dane-ta 127.0.70.22
tb_start_mx --chain --cert wrong.dane-taname.test dane-taname 127.0.70.23
tb_start_mx dane-2nd1 127.0.70.24
tb_start_mx dane-2nd2 127.0.70.25
tb_start_mx dane-allbad 127.0.70.27
tb_start_mx dane-unusable 127.0.70.30
tb_start_mx dane-nostarttls 127.0.70.32 --no-starttls
tb_start_mx dane-cname 127.0.70.33

# dane_probe NAME IP TLSA_DOMAIN RRDATA... — openssl s_client STARTTLS with DANE verification
# (SNI = TLSA_DOMAIN, as RFC 7672 wants); sets PROBE_RC and PROBE_OUT
dane_probe() {
    local name=$1 ip=$2 dom=$3 r args=(); shift 3
    for r in "$@"; do args+=(-dane_tlsa_rrdata "$r"); done
    timeout 15 openssl s_client -starttls smtp -name client.test -bind "$TB_CLIENT_IP:0" \
        -connect "$ip:$TB_MX_PORT" -servername "$dom" -dane_tlsa_domain "$dom" "${args[@]}" -verify_return_error -brief \
        >"$TB/$name.sclient" 2>&1 </dev/null
    PROBE_RC=$?
    PROBE_OUT=$(cat "$TB/$name.sclient")
}

dane_probe ee 127.0.70.21 mx.dane-ee.test "$(tlsa_q _25._tcp.mx.dane-ee.test)"
assert_eq "mx.dane-ee.test: s_client DANE 3 1 1 verifies (exit 0)" 0 "$PROBE_RC"
assert_contains "mx.dane-ee.test: TLSA 3 1 1 matched at depth 0" "$PROBE_OUT" "matched EE certificate at depth 0"
dane_probe ta 127.0.70.22 mx.dane-ta.test "$(tlsa_q _25._tcp.mx.dane-ta.test)"
assert_eq "mx.dane-ta.test: s_client DANE 2 1 1 verifies (exit 0)" 0 "$PROBE_RC"
assert_contains "mx.dane-ta.test: the CA matched at depth 1" "$PROBE_OUT" "matched TA certificate at depth 1"
assert_contains "mx.dane-ta.test: peer name verified" "$PROBE_OUT" "Verified peername: mx.dane-ta.test"
dane_probe taname 127.0.70.23 mx.dane-taname.test "$(tlsa_q _25._tcp.mx.dane-taname.test)"
assert_eq "mx.dane-taname.test: s_client DANE 2 1 1 fails" 1 "$((PROBE_RC != 0))"
assert_contains "mx.dane-taname.test: hostname mismatch (cert wrong.dane-taname.test)" "$PROBE_OUT" "hostname mismatch"
dane_probe taname-ok 127.0.70.23 wrong.dane-taname.test "$(tlsa_q _25._tcp.mx.dane-taname.test)"
assert_eq "mx.dane-taname.test: the chain itself is fine (verifies for wrong.dane-taname.test)" 0 "$PROBE_RC"
dane_probe 2nd1 127.0.70.24 mx1.dane-2nd.test "$(tlsa_q _25._tcp.mx1.dane-2nd.test)"
assert_eq "mx1.dane-2nd.test: s_client DANE (wrong digest) fails" 1 "$((PROBE_RC != 0))"
assert_contains "mx1.dane-2nd.test: no matching DANE TLSA records" "$PROBE_OUT" "no matching DANE TLSA records"
dane_probe 2nd2 127.0.70.25 mx2.dane-2nd.test "$(tlsa_q _25._tcp.mx2.dane-2nd.test)"
assert_eq "mx2.dane-2nd.test: s_client DANE 3 1 1 verifies" 0 "$PROBE_RC"
dane_probe allbad 127.0.70.27 mx3.dane-allbad.test "$(tlsa_q _25._tcp.mx3.dane-allbad.test)"
assert_contains "mx3.dane-allbad.test: no matching DANE TLSA records" "$PROBE_OUT" "no matching DANE TLSA records"
dane_probe cname 127.0.70.33 real.dane-target.test "$(tlsa_q _25._tcp.real.dane-target.test)"
assert_eq "real.dane-target.test: s_client DANE 3 1 1 verifies" 0 "$PROBE_RC"
assert_file_grep "real.dane-target.test: server logged SNI real.dane-target.test" "$TB/dane-cname.log" \
    'TLS established: .*"sni": "real\.dane-target\.test"'
mapfile -t unus < <(tlsa_q _25._tcp.mx.dane-unusable.test)
dane_probe unusable 127.0.70.30 mx.dane-unusable.test "3 1 1 $(cut -d' ' -f4 <<<"${unus[1]}")"
assert_eq "mx.dane-unusable.test: its key is what its 1 1 1 record names (as 3 1 1: verifies)" 0 "$PROBE_RC"
dane_probe unusable-ee0 127.0.70.30 mx.dane-unusable.test "3 0 1 $(cut -d' ' -f4 <<<"${unus[0]}")"
assert_eq "mx.dane-unusable.test: its certificate is what its 0 0 1 record names (as 3 0 1: verifies)" 0 "$PROBE_RC"
dane_probe unusable-pkix 127.0.70.30 mx.dane-unusable.test "${unus[@]}"
assert_eq "mx.dane-unusable.test: as PKIX records (test CA not trusted) they do not verify" 1 "$((PROBE_RC != 0))"
dane_probe nostarttls 127.0.70.32 mx.dane-nostarttls.test "$(tlsa_q _25._tcp.mx.dane-nostarttls.test)"
assert_eq "mx.dane-nostarttls.test: no STARTTLS, s_client fails" 1 "$((PROBE_RC != 0))"
assert_match "mx.dane-nostarttls.test: STARTTLS not offered" "$PROBE_OUT" "[Dd]idn't find STARTTLS"
assert_file_grep "mx.dane-ee.test: connections.log has the STARTTLS connection" "$TB/spool/dane-ee/connections.log" \
    'listen=127\.0\.70\.21 starttls=yes tls=ok'

tb_finish
