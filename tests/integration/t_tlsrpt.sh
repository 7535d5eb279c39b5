#!/usr/bin/env bash
# t_tlsrpt.sh — TLSRPT (RFC 8460) counting end to end: real deliveries through mxguard, then
# `mxguard report list` / `report show DAY DOMAIN` and the JSON checked field by field:
# DANE match (tlsa, success, policy-string = the TLSA "3 1 1 <digest of the MX's cert>"), wrong
# digest on both MX (2 validation-failure details, one per receiving-mx-hostname), only
# unusable TLSA (tlsa-invalid), no STARTTLS without a policy (no-policy-found,
# starttls-not-supported; the same failure twice merges into failed-session-count 2),
# MTA-STS enforce success (sts, policy-string lines, mx-host), MTA-STS certificate for another
# name (certificate-host-mismatch), MTA-STS policy 404 (sts-policy-fetch-error under sts);
# date-range of the UTC day, report-id stable across calls; and a delivery right before SIGTERM
# with a 1 h flush interval is in the database afterwards and survives a restart.
# (Zones and policies: mkzones.sh.)
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

tb_init
tb_start_dns
tb_start_nginx
tb_start_mx dane-ee 127.0.70.21
tb_start_mx dane-2nd1 127.0.70.24
tb_start_mx dane-allbad 127.0.70.27
tb_start_mx dane-unusable 127.0.70.30
tb_start_mx plain 127.0.70.14 --no-starttls
tb_start_sts_mx sts-enforce sts-badcert sts-open

# tlsrpt group: no report sending (no _smtp._tls lookups during the test), fixed org data
rpt_config() { # rpt_config FLUSH_INTERVAL
    printf 'tlsrpt: {\n  send_reports = false;\n  flush_interval = "%s";\n  organization_name = "mxguard test";\n  contact_info = "mailto:tlsrpt@mxguard.test";\n  submitter = "mxguard.test";\n};\n' "$1"
}
tb_write_config "$(tb_sts_config)" "$(rpt_config 1s)"
tb_write_config -o "$TB/mxguard-slow.conf" "$(tb_sts_config)" "$(rpt_config 1h)"
tb_start_mxguard

DAY=$(date -u +%F)
CONF="$TB/mxguard.conf"

# rpt_show NAME DOMAIN — `mxguard report show DAY DOMAIN`: JSON in $TB/NAME.json, stderr in
# $TB/NAME.err; sets SHOW_RC
rpt_show() {
    timeout 30 "$MXG_BIN" report show "$DAY" "$2" -c "$CONF" >"$TB/$1.json" 2>"$TB/$1.err" </dev/null 9>&-
    SHOW_RC=$?
    echo "# $1: report show $DAY $2 -> exit $SHOW_RC: $(head -c 1500 "$TB/$1.json")$(head -c 300 "$TB/$1.err")"
}

# rj NAME EXPR — evaluate the Python expression EXPR over report $TB/NAME.json (r = the parsed
# report) and print the result (lists of strings joined by ","). Helpers: P(type) = the policy
# entries of that policy-type; S(type, key) = the sum of summary[key] over them; F(type) = their
# failure-details; RT(type) = sorted distinct result-types; CNT(type, rt) = sum of
# failed-session-count of that result-type; PS(type) = the policy-string lines (sorted, all
# entries); MXH(type) = the mx-host values (sorted)
rj() {
    "$PYTHON" - "$TB/$1.json" "$2" <<'PY'
import json, sys
try:
    r = json.load(open(sys.argv[1]))
except Exception as e:
    print("invalid-json: %s" % e)
    sys.exit()
def P(t=None):
    return [p for p in r.get("policies", []) if t is None or p["policy"]["policy-type"] == t]
def S(t, k):
    return sum(p["summary"][k] for p in P(t))
def F(t=None):
    return [d for p in P(t) for d in p.get("failure-details", [])]
def RT(t=None):
    return sorted({d["result-type"] for d in F(t)})
def CNT(t, rt):
    return sum(d["failed-session-count"] for d in F(t) if d["result-type"] == rt)
def PS(t):
    return sorted(l for p in P(t) for l in p["policy"].get("policy-string", []))
def MXH(t):
    return sorted(l for p in P(t) for l in p["policy"].get("mx-host", []))
try:
    v = eval(sys.argv[2])
except Exception as e:
    v = "error: %s: %s" % (type(e).__name__, e)
if isinstance(v, (list, tuple)) and all(isinstance(x, str) for x in v):
    v = ",".join(v)
elif isinstance(v, (list, dict)):
    v = json.dumps(v, sort_keys=True)
print(v)
PY
}

# common_checks NAME DOMAIN — fields every report of DOMAIN for today must have
common_checks() {
    local n=$1 d=$2
    assert_eq "$d: report show exits 0" 0 "$SHOW_RC"
    assert_eq "$d: organization-name" "mxguard test" "$(rj "$n" 'r["organization-name"]')"
    assert_eq "$d: contact-info" "mailto:tlsrpt@mxguard.test" "$(rj "$n" 'r["contact-info"]')"
    assert_eq "$d: date-range start" "${DAY}T00:00:00Z" "$(rj "$n" 'r["date-range"]["start-datetime"]')"
    assert_eq "$d: date-range end" "${DAY}T23:59:59Z" "$(rj "$n" 'r["date-range"]["end-datetime"]')"
    assert_eq "$d: every policy-domain is $d" "$d" \
        "$(rj "$n" 'sorted({p["policy"]["policy-domain"] for p in r["policies"]})')"
    assert_match "$d: report-id names day and domain" "$(rj "$n" 'r["report-id"]')" "^$DAY\\.${d//./\\.}\\..+@mxguard\\.test\$"
}

# detail_checks NAME DOMAIN TYPE RT MXHOST IP — the failure detail of result-type RT under
# TYPE names MXHOST / IP as receiving-mx-hostname / receiving-ip and our sending address
detail_checks() {
    local n=$1 d=$2 t=$3 rt=$4 host=$5 ip=$6
    assert_eq "$d: $rt detail: receiving-mx-hostname" "$host" \
        "$(rj "$n" "sorted({x.get('receiving-mx-hostname','') for x in F('$t') if x['result-type']=='$rt'})")"
    assert_eq "$d: $rt detail: receiving-ip" "$ip" \
        "$(rj "$n" "sorted({x.get('receiving-ip','') for x in F('$t') if x['result-type']=='$rt'})")"
    assert_eq "$d: $rt detail: sending-mta-ip" "$TB_MXG_IP" \
        "$(rj "$n" "sorted({x.get('sending-mta-ip','') for x in F('$t') if x['result-type']=='$rt'})")"
}

# ------------------------------------------------------------------ deliveries
swaks_send ee --to a@dane-ee.test
assert_reply "dane-ee.test: delivered" "$SW_DOT" "250"
swaks_send allbad --to a@dane-allbad.test
assert_reply "dane-allbad.test: refused (wrong digest on both MX)" "$SW_RCPT" "451 4.7.5"
swaks_send unusable --to a@dane-unusable.test
assert_reply "dane-unusable.test: delivered (TLS, not authenticated)" "$SW_DOT" "250"
swaks_send plain1 --to a@plain.test
assert_reply "plain.test: delivered without TLS (1)" "$SW_DOT" "250"
swaks_send plain2 --to b@plain.test
assert_reply "plain.test: delivered without TLS (2)" "$SW_DOT" "250"
swaks_send enforce --to a@sts-enforce.test
assert_reply "sts-enforce.test: delivered" "$SW_DOT" "250"
swaks_send badcert --to a@sts-badcert.test
assert_reply "sts-badcert.test: refused (certificate for another name)" "$SW_RCPT" "451 4.7.5"
swaks_send notfound --to a@sts-notfound.test
assert_reply "sts-notfound.test: delivered opportunistically (policy 404)" "$SW_DOT" "250"
assert_file_count "$TB/spool/plain" 2 "plain.test: both messages at mx.plain.test"
sleep 2.5 # > flush_interval (1 s)

# ------------------------------------------------------------------ report list
timeout 30 "$MXG_BIN" report list -c "$CONF" >"$TB/list.out" 2>"$TB/list.err" </dev/null 9>&-
assert_eq "report list exits 0" 0 "$?"
echo "# report list: $(tr '\n' ';' <"$TB/list.out")"
for d in dane-ee.test dane-allbad.test dane-unusable.test plain.test sts-enforce.test \
    sts-badcert.test sts-notfound.test; do
    assert_file_grep "report list: $DAY $d" "$TB/list.out" "^$DAY ${d//./\\.}\$"
done
assert_eq "report list: only lines \"DAY DOMAIN\"" 0 \
    "$(grep -cvE '^[0-9]{4}-[0-9]{2}-[0-9]{2} [a-z0-9.-]+$' "$TB/list.out")"

# ------------------------------------------------------------------ DANE
ee311=$(tr -d ' \n' <"$TB/dns/certs/mx.dane-ee.test.tlsa311" | tr a-f A-F)
rpt_show ee dane-ee.test
common_checks ee dane-ee.test
assert_eq "dane-ee.test: one policy, type tlsa" "tlsa" "$(rj ee '[p["policy"]["policy-type"] for p in r["policies"]]')"
assert_eq "dane-ee.test: policy-string = 3 1 1 <digest of mx.dane-ee.test's cert>" "3 1 1 $ee311" \
    "$(rj ee 'PS("tlsa")' | tr a-f A-F)"
assert_eq "dane-ee.test: 1 successful session" 1 "$(rj ee 'S("tlsa","total-successful-session-count")')"
assert_eq "dane-ee.test: 0 failed sessions" 0 "$(rj ee 'S("tlsa","total-failure-session-count")')"
assert_eq "dane-ee.test: no failure-details" False "$(rj ee '"failure-details" in r["policies"][0]')"
id1=$(rj ee 'r["report-id"]')
rpt_show ee2 dane-ee.test
assert_eq "dane-ee.test: report-id stable between two report show calls" "$id1" "$(rj ee2 'r["report-id"]')"
assert_eq "dane-ee.test: second report show gives the same report" "$(rj ee 'r')" "$(rj ee2 'r')"

rpt_show allbad dane-allbad.test
common_checks allbad dane-allbad.test
assert_eq "dane-allbad.test: policy-type tlsa only" "tlsa" \
    "$(rj allbad 'sorted({p["policy"]["policy-type"] for p in r["policies"]})')"
wrong=$(tr a-f A-F <"$TB/dns/tlsa.wrong311")
assert_eq "dane-allbad.test: policy-string = the zone's (wrong) 3 1 1 record, once" "$wrong" \
    "$(rj allbad 'sorted(set(PS("tlsa")))' | tr a-f A-F)"
assert_not_contains "dane-allbad.test: the real digest of mx3.dane-allbad.test is not in the policy" \
    "$(rj allbad 'PS("tlsa")' | tr a-f A-F)" "$(tr -d ' \n' <"$TB/dns/certs/mx3.dane-allbad.test.tlsa311" | tr a-f A-F)"
assert_eq "dane-allbad.test: 0 successful sessions" 0 "$(rj allbad 'S("tlsa","total-successful-session-count")')"
assert_eq "dane-allbad.test: 2 failed sessions" 2 "$(rj allbad 'S("tlsa","total-failure-session-count")')"
assert_eq "dane-allbad.test: result-type validation-failure only" "validation-failure" "$(rj allbad 'RT()')"
detail_checks allbad dane-allbad.test tlsa validation-failure "mx1.dane-2nd.test,mx3.dane-allbad.test" \
    "127.0.70.24,127.0.70.27"
assert_eq "dane-allbad.test: each detail counted once" "1,1" \
    "$(rj allbad '[str(d["failed-session-count"]) for d in F()]')"

rpt_show unusable dane-unusable.test
common_checks unusable dane-unusable.test
assert_eq "dane-unusable.test: policy-type tlsa" "tlsa" \
    "$(rj unusable 'sorted({p["policy"]["policy-type"] for p in r["policies"]})')"
assert_eq "dane-unusable.test: result-type tlsa-invalid" "tlsa-invalid" "$(rj unusable 'RT()')"
assert_eq "dane-unusable.test: 1 tlsa-invalid session" 1 "$(rj unusable 'CNT("tlsa","tlsa-invalid")')"
# (RFC 8460 §4.3: with no usable record the policy-string lists every record of the RRset)
assert_eq "dane-unusable.test: policy-string = its two (unusable) records" \
    "0 0 1 $(tr a-f A-F <"$TB/dns/certs/mx.dane-unusable.test.tlsa001"),1 1 1 $(tr a-f A-F <"$TB/dns/certs/mx.dane-unusable.test.tlsa311")" \
    "$(rj unusable 'PS("tlsa")')"
detail_checks unusable dane-unusable.test tlsa tlsa-invalid mx.dane-unusable.test 127.0.70.30

# ------------------------------------------------------------------ no policy, no STARTTLS
rpt_show plain plain.test
common_checks plain plain.test
assert_eq "plain.test: policy-type no-policy-found only" "no-policy-found" \
    "$(rj plain 'sorted({p["policy"]["policy-type"] for p in r["policies"]})')"
assert_eq "plain.test: no policy-string, no mx-host" 0 "$(rj plain 'len(PS("no-policy-found")) + len(MXH("no-policy-found"))')"
assert_eq "plain.test: 0 successful sessions" 0 "$(rj plain 'S("no-policy-found","total-successful-session-count")')"
assert_eq "plain.test: 2 failed sessions" 2 "$(rj plain 'S("no-policy-found","total-failure-session-count")')"
assert_eq "plain.test: result-type starttls-not-supported" "starttls-not-supported" "$(rj plain 'RT()')"
assert_eq "plain.test: the two identical failures merged into one detail" 1 "$(rj plain 'len(F())')"
assert_eq "plain.test: failed-session-count 2" 2 "$(rj plain 'CNT("no-policy-found","starttls-not-supported")')"
detail_checks plain plain.test no-policy-found starttls-not-supported mx.plain.test 127.0.70.14

# ------------------------------------------------------------------ MTA-STS
rpt_show enforce sts-enforce.test
common_checks enforce sts-enforce.test
assert_eq "sts-enforce.test: policy-type sts only" "sts" \
    "$(rj enforce 'sorted({p["policy"]["policy-type"] for p in r["policies"]})')"
assert_eq "sts-enforce.test: policy-string version line" "version: STSv1" "$(rj enforce 'P("sts")[0]["policy"]["policy-string"][0]')"
assert_eq "sts-enforce.test: policy-string has mode: enforce" True "$(rj enforce '"mode: enforce" in PS("sts")')"
assert_eq "sts-enforce.test: policy-string has mx: mx.sts-enforce.test" True "$(rj enforce '"mx: mx.sts-enforce.test" in PS("sts")')"
assert_eq "sts-enforce.test: policy-string has a max_age line" True \
    "$(rj enforce 'any(l.startswith("max_age: ") and l[9:].isdigit() for l in PS("sts"))')"
assert_eq "sts-enforce.test: mx-host" "mx.sts-enforce.test" "$(rj enforce 'MXH("sts")')"
assert_eq "sts-enforce.test: 1 successful session" 1 "$(rj enforce 'S("sts","total-successful-session-count")')"
assert_eq "sts-enforce.test: 0 failed sessions" 0 "$(rj enforce 'S("sts","total-failure-session-count")')"

rpt_show badcert sts-badcert.test
common_checks badcert sts-badcert.test
assert_eq "sts-badcert.test: policy-type sts only" "sts" \
    "$(rj badcert 'sorted({p["policy"]["policy-type"] for p in r["policies"]})')"
assert_eq "sts-badcert.test: mx-host" "mx.sts-badcert.test" "$(rj badcert 'MXH("sts")')"
assert_eq "sts-badcert.test: 0 successful sessions" 0 "$(rj badcert 'S("sts","total-successful-session-count")')"
assert_eq "sts-badcert.test: 1 failed session" 1 "$(rj badcert 'S("sts","total-failure-session-count")')"
assert_eq "sts-badcert.test: result-type certificate-host-mismatch" "certificate-host-mismatch" "$(rj badcert 'RT()')"
detail_checks badcert sts-badcert.test sts certificate-host-mismatch mx.sts-badcert.test 127.0.70.45

rpt_show notfound sts-notfound.test
common_checks notfound sts-notfound.test
assert_eq "sts-notfound.test: sts-policy-fetch-error under sts" "sts-policy-fetch-error" "$(rj notfound 'RT("sts")')"
assert_eq "sts-notfound.test: one sts-policy-fetch-error session" 1 "$(rj notfound 'CNT("sts","sts-policy-fetch-error")')"
assert_contains "sts-notfound.test: the detail says why (HTTP 404)" \
    "$(rj notfound '[d.get("failure-reason-code", "") for d in F("sts")]')" "404"
detail_checks notfound sts-notfound.test sts sts-policy-fetch-error mx.sts-open.test 127.0.70.50
assert_eq "sts-notfound.test: no sts success" 0 "$(rj notfound 'S("sts","total-successful-session-count")')"
assert_eq "sts-notfound.test: no failure outside policy-type sts" 0 \
    "$(rj notfound 'len([d for p in r["policies"] if p["policy"]["policy-type"] != "sts" for d in p.get("failure-details", [])])')"

# ------------------------------------------------------------------ SIGTERM and restart
# mxguard with a 1 h flush interval: only the SIGTERM flush can write the next delivery
tb_stop mxguard
tb_start_mxguard -c "$TB/mxguard-slow.conf"
swaks_send plain3 --to c@plain.test
assert_reply "plain.test: delivered without TLS (3, flush interval 1 h)" "$SW_DOT" "250"
tb_stop mxguard
rpt_show plain3 plain.test
assert_eq "after SIGTERM: plain.test failed-session-count 3 (flushed on shutdown)" 3 \
    "$(rj plain3 'CNT("no-policy-found","starttls-not-supported")')"
assert_eq "after SIGTERM: still one merged detail" 1 "$(rj plain3 'len(F())')"
assert_eq "after SIGTERM: report-id unchanged" "$(rj plain 'r["report-id"]')" "$(rj plain3 'r["report-id"]')"
tb_start_mxguard
sleep 1.5
rpt_show plain4 plain.test
assert_eq "after restart: plain.test failed-session-count still 3" 3 \
    "$(rj plain4 'CNT("no-policy-found","starttls-not-supported")')"
rpt_show ee3 dane-ee.test
assert_eq "after restart: dane-ee.test report unchanged" "$(rj ee 'r')" "$(rj ee3 'r')"
rpt_show allbad2 dane-allbad.test
assert_eq "after restart: dane-allbad.test still 2 failures" 2 "$(rj allbad2 'S("tlsa","total-failure-session-count")')"

tb_finish
