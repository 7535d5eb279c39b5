#!/usr/bin/env bash
# t_dane_bigcert.sh — docs/ARCHITECTURE.md §Limits: a DNSSEC-secure TLSA RRset whose only record is
# "3 0 0" with a whole certificate bigger than any storage limit mxguard had (2 KB per record, 4 KB
# per host). mxguard must keep and use it: the MX presenting that certificate is delivered to with
# DANE ("TLSA 3 0 0 matched at depth 0"); an MX whose TLSA "3 0 0" names a big certificate it does
# not present is refused (451 4.7.5) and receives nothing — never "only unusable records" /
# encrypt-only. `mxguard check` shows the big record as usable, and the TLSRPT report carries it
# whole as policy-string. (Zones: mkzones.sh.)
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

tb_init
tb_start_dns
tb_start_mx dane-bigcert 127.0.70.140
tb_start_mx dane-bigwrong 127.0.70.141
rpt_config='tlsrpt: {
  send_reports = false;
  flush_interval = "1s";
  organization_name = "mxguard test";
  contact_info = "mailto:tlsrpt@mxguard.test";
  submitter = "mxguard.test";
};'
tb_write_config "$rpt_config"
tb_start_mxguard
DAY=$(date -u +%F)

# test-bed: the certificate is past the old limits, and the record is in DNS whole
derlen=$(cat "$TB/dns/certs/mx.dane-bigcert.test.der.len")
assert_match "test-bed: mx.dane-bigcert.test's certificate is over 4 KB ($derlen octets)" \
    "$([ "$derlen" -gt 4096 ] && echo big)" '^big$'
out=$(dig @$TB_DNS_IP -p $TB_DNS_PORT -b $TB_CLIENT_IP +tcp +norec +short _25._tcp.mx.dane-bigcert.test TLSA | tr -d ' \n')
hex=$(od -An -v -tx1 "$TB/dns/certs/mx.dane-bigcert.test.der" | tr -d ' \n')
assert_eq "test-bed: TLSA 3 0 0 at _25._tcp.mx.dane-bigcert.test = the whole certificate" \
    "300${hex^^}" "${out^^}"

# 1. the big "3 0 0" record matches the MX's certificate: delivered with DANE
mark=$(tb_log_mark)
tb_make_message big --to a@dane-bigcert.test --subject "DANE big 3 0 0" --id bigcert-1
swaks_send big --to a@dane-bigcert.test --no-data-fixup --data "@$TB/big.wire"
assert_reply "dane-bigcert.test: RCPT accepted" "$SW_RCPT" "250"
assert_reply "dane-bigcert.test: final dot 250" "$SW_DOT" "250"
assert_file_count "$TB/spool/dane-bigcert" 1 "dane-bigcert.test: delivered to mx.dane-bigcert.test"
m=$(spool_last "$TB/spool/dane-bigcert")
if [ -n "$m" ]; then
    assert_match "dane-bigcert.test: delivered over TLS" "$(json_get "$m.json" tls.version)" '^TLSv1\.[23]$'
    assert_eq "dane-bigcert.test: SNI = mx.dane-bigcert.test" mx.dane-bigcert.test "$(json_get "$m.json" tls.sni)"
    assert_eq "dane-bigcert.test: message intact" "received+same" "$(eml_compare "$m.eml" "$TB/big.msg")"
fi
assert_log "dane-bigcert.test: DANE authenticated with the 3 0 0 record" "$mark" "TLSA 3 0 0 matched at depth 0"
assert_no_log "dane-bigcert.test: never encrypt-only" "$mark" 'only unusable TLSA|unauthenticated \(only unusable'
assert_no_log "dane-bigcert.test: no record left out" "$mark" 'left out|kept as unusable'

# ... and again: the TLSA answer now comes from mxguard's DNS cache (records of any size
# survive it), and the requirement (the TLSA set's digest) is the same as before
swaks_send big2 --to b@dane-bigcert.test
assert_reply "dane-bigcert.test: second message, final dot 250" "$SW_DOT" "250"
assert_file_count "$TB/spool/dane-bigcert" 2 "dane-bigcert.test: both messages delivered"
assert_no_log "dane-bigcert.test: never encrypt-only (second message)" "$mark" 'only unusable TLSA|unauthenticated \(only unusable'

# 2. a big "3 0 0" record that the MX's certificate does not match: refused, nothing sent
mark=$(tb_log_mark)
swaks_send wrong --to a@dane-bigwrong.test
assert_reply "dane-bigwrong.test: RCPT refused 451 4.7.5" "$SW_RCPT" "451 4.7.5"
assert_contains "dane-bigwrong.test: the reply says DANE" "$SW_RCPT" "DANE"
assert_eq "dane-bigwrong.test: no final dot reply (nothing relayed)" "" "$SW_DOT"
assert_no_mail "dane-bigwrong.test: nothing reached mx.dane-bigwrong.test (no MAIL)" dane-bigwrong
assert_file_grep "dane-bigwrong.test: the MX was tried (STARTTLS)" "$TB/spool/dane-bigwrong/connections.log" 'starttls=yes'
assert_no_log "dane-bigwrong.test: never encrypt-only" "$mark" 'only unusable TLSA|unauthenticated \(only unusable'

# 3. mxguard check: the host is DANE (usable), the record shown by size and digest
tb_check chk dane-bigcert.test
assert_eq "check dane-bigcert.test: exit 0 (deliverable)" 0 "$CHECK_RC"
assert_contains "check dane-bigcert.test: DANE decision dane" "$CHECK_OUT" "DANE: dane — DANE: 1 usable TLSA record(s) of 1"
sha=$(openssl dgst -sha256 -r "$TB/dns/certs/mx.dane-bigcert.test.der" | cut -d' ' -f1)
assert_contains "check dane-bigcert.test: the 3 0 0 record (size, SHA-256, usable)" "$CHECK_OUT" \
    "($derlen octets, SHA-256 ${sha^^}) (usable)"
tb_check chkw dane-bigwrong.test
assert_contains "check dane-bigwrong.test: DANE decision dane (the record is usable)" "$CHECK_OUT" "DANE: dane"

# 4. TLSRPT: the success and the failure under the tlsa policy whose policy-string is the
# whole record (not cut)
sleep 2.5 # > flush_interval
rj() { # rj NAME EXPR — EXPR over the report JSON $TB/NAME.json (r)
    "$PYTHON" -c 'import json,sys; r=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$TB/$1.json" "$2" 2>&1
}
for d in dane-bigcert.test dane-bigwrong.test; do
    n=${d%%.*}
    timeout 30 "$MXG_BIN" report show "$DAY" "$d" -c "$TB/mxguard.conf" >"$TB/$n.json" 2>"$TB/$n.err" </dev/null 9>&-
    assert_eq "$d: report show exits 0" 0 "$?"
    assert_eq "$d: one tlsa policy" "tlsa" "$(rj "$n" '",".join(p["policy"]["policy-type"] for p in r["policies"])')"
    # (compared by length and SHA-256: a 10 KB string in a failure message helps nobody)
    want=$(printf '3 0 0 %s' "${hex^^}" | openssl dgst -sha256 -r | cut -d' ' -f1)
    assert_eq "$d: policy-string = the whole 3 0 0 record (one line, $((6 + 2 * derlen)) characters)" \
        "1 $((6 + 2 * derlen)) $want" \
        "$(rj "$n" '(lambda a: "%d %d %s" % (len(a), len(a[0]) if a else 0, __import__("hashlib").sha256("|".join(a).encode()).hexdigest()))(r["policies"][0]["policy"].get("policy-string", []))')"
done
assert_eq "dane-bigcert.test: successful sessions only (a reused connection adds none)" "ok 0" \
    "$(rj dane-bigcert '("ok" if r["policies"][0]["summary"]["total-successful-session-count"] in (1, 2) else "bad") + " " + str(r["policies"][0]["summary"]["total-failure-session-count"])')"
assert_eq "dane-bigwrong.test: 1 failed session, validation-failure at mx.dane-bigwrong.test" \
    "0 1 validation-failure mx.dane-bigwrong.test" \
    "$(rj dane-bigwrong '" ".join(map(str, [(p := r["policies"][0])["summary"]["total-successful-session-count"], p["summary"]["total-failure-session-count"], (d := p["failure-details"][0])["result-type"], d["receiving-mx-hostname"]]))')"
tb_finish
