#!/usr/bin/env bash
# t_tlsrpt_policy.sh — TLSRPT (RFC 8460 §4.3/§4.4; #13-15 of hostile_table.txt's defects) results
# that were missing or incomplete, each checked in the report JSON (`mxguard report show DAY
# DOMAIN`):
#  13. policy-string for a host whose TLSA records are all unusable (the records as
#      "U S M HEX"), for a bogus TLSA RRset ([]: not known) and for a failed MTA-STS fetch ([]);
#  14. a bogus MX RRset records dnssec-invalid under the domain's tlsa policy; dnssec-invalid
#      for a bogus TLSA RRset carries receiving-mx-hostname (and no connection fields);
#  14b. the bogus address RRset of a secure MX host (abogus.test, its only MX): dnssec-invalid
#      with receiving-mx-hostname, under the domain's tlsa policy too (a refactor once filed it
#      under no-policy-found);
#  15. an MX host that the MTA-STS policy does not list: validation-failure with
#      receiving-mx-hostname and failure-reason-code "mx-not-in-policy", in enforce mode
#      (host skipped, mail delivered to the listed MX) and in testing mode (delivered anyway);
#      the same under a policy list entry (no-policy-found + additional-information naming
#      the list; sts-html.test: its MTA-STS fetch fails, so the list applies).
# (Zones and policies: mkzones.sh.)
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

tb_init
tb_start_dns
tb_start_nginx
tb_start_mx dane-unusable 127.0.70.30
tb_start_mx dane-bogus 127.0.70.28
tb_start_sts_mx sts-nomatch sts-nomatch2 sts-testing sts-open
rpt_config='tlsrpt: {
  send_reports = false;
  flush_interval = "1s";
  organization_name = "mxguard test";
  contact_info = "mailto:tlsrpt@mxguard.test";
  submitter = "mxguard.test";
};'
tb_list_keys
now=$(date +%s)
cat >"$TB/list.json" <<JSON
{
  "timestamp": $now, "expires": $((now + 86400)), "version": "0.1", "author": "t_tlsrpt_policy",
  "policies": {"sts-html.test": {"mode": "enforce", "mxs": ["nomatch.test"]}}
}
JSON
tb_list_sign "$TB/list.json"
tb_write_config "$(tb_sts_config)" "$rpt_config" \
    "policy_list: { file = \"$TB/list.json\"; keyring = \"$TB/keyring.gpg\"; };"
tb_start_mxguard
DAY=$(date -u +%F)

# ------------------------------------------------------------------ deliveries
swaks_send unusable --to a@dane-unusable.test
assert_reply "dane-unusable.test: delivered (TLS, not authenticated)" "$SW_DOT" "250"
swaks_send dbogus --to a@dane-bogus.test
assert_reply "dane-bogus.test: refused (bogus TLSA)" "$SW_RCPT" "451 4.7.5"
assert_no_mail "dane-bogus.test: nothing reached its MX" dane-bogus
swaks_send mxbogus --to a@bogus.test
assert_reply "bogus.test: refused (bogus MX RRset)" "$SW_RCPT" "451 4.4.3"
spool_all() { find "$TB/spool" -name '*.eml' 2>/dev/null | wc -l; } # messages at every MX server
before=$(spool_all)
swaks_send abogus --to a@abogus.test
assert_reply "abogus.test: refused (the only MX host's addresses are bogus)" "$SW_RCPT" "451 4.4.3"
assert_contains "abogus.test: the reply names the host's address lookup" "$SW_RCPT" \
    "mx.abogus.test: address lookup"
assert_eq "abogus.test: nothing was delivered anywhere" "$before" "$(spool_all)"
swaks_send notfound --to a@sts-notfound.test
assert_reply "sts-notfound.test: delivered opportunistically (policy 404)" "$SW_DOT" "250"
swaks_send nomatch --to a@sts-nomatch.test
assert_reply "sts-nomatch.test: delivered (to the listed MX 20)" "$SW_DOT" "250"
assert_no_mail "sts-nomatch.test: nothing reached mx.sts-nomatch.test (not in the policy)" sts-nomatch
assert_file_count "$TB/spool/sts-nomatch2" 1 "sts-nomatch.test: delivered to mx2.sts-nomatch.test"
before=$(spool_count "$TB/spool/sts-open") # (sts-notfound.test's message is there)
swaks_send listed --to a@sts-html.test
assert_reply "sts-html.test: refused by the list entry (no MX allowed)" "$SW_RCPT" "451 4.7.5"
assert_file_count "$TB/spool/sts-open" "$before" "sts-html.test: nothing more reached mx.sts-open.test"
swaks_send testing --to a@sts-testing.test
assert_reply "sts-testing.test: delivered (testing mode)" "$SW_DOT" "250"
sleep 2.5 # > flush_interval (1 s)

# rj NAME EXPR — EXPR over report $TB/NAME.json (r = the report; P(t) = its policies of
# policy-type t; F(t) = their failure-details; K(o) = sorted keys of o, comma-joined)
rj() {
    "$PYTHON" - "$TB/$1.json" "$2" <<'PY'
import json, sys
try:
    r = json.load(open(sys.argv[1]))
except Exception as e:
    print("invalid-json: %s" % e); sys.exit()
def P(t):
    return [p for p in r.get("policies", []) if p["policy"]["policy-type"] == t]
def F(t):
    return [d for p in P(t) for d in p.get("failure-details", [])]
def K(o):
    return ",".join(sorted(o))
try:
    print(eval(sys.argv[2]))
except Exception as e:
    print("error: %s: %s" % (type(e).__name__, e))
PY
}
show() { # show NAME DOMAIN
    timeout 30 "$MXG_BIN" report show "$DAY" "$2" -c "$TB/mxguard.conf" >"$TB/$1.json" 2>"$TB/$1.err" </dev/null 9>&-
    assert_eq "$2: report show exits 0" 0 "$?"
    echo "# $1: $(head -c 1500 "$TB/$1.json")"
}

# ------------------------------------------------------------------ 13: policy-string
show unusable dane-unusable.test
want="0 0 1 $(tr a-f A-F <"$TB/dns/certs/mx.dane-unusable.test.tlsa001")|1 1 1 $(tr a-f A-F <"$TB/dns/certs/mx.dane-unusable.test.tlsa311")"
assert_eq "dane-unusable.test: tlsa policy-string = every (unusable) record" "$want" \
    "$(rj unusable '"|".join(sorted(P("tlsa")[0]["policy"]["policy-string"]))')"
assert_eq "dane-unusable.test: tlsa-invalid, 1 session" "tlsa-invalid 1" \
    "$(rj unusable 'F("tlsa")[0]["result-type"] + " " + str(F("tlsa")[0]["failed-session-count"])')"

show notfound sts-notfound.test
assert_eq "sts-notfound.test: sts policy, policy-string [] (no policy known)" "[]" \
    "$(rj notfound 'json.dumps(P("sts")[0]["policy"]["policy-string"])')"
assert_eq "sts-notfound.test: sts-policy-fetch-error" "sts-policy-fetch-error" \
    "$(rj notfound 'F("sts")[0]["result-type"]')"

# ------------------------------------------------------------------ 13 + 14: dnssec-invalid
show dbogus dane-bogus.test
assert_eq "dane-bogus.test: one tlsa policy with policy-string []" "tlsa []" \
    "$(rj dbogus 'r["policies"][0]["policy"]["policy-type"] + " " + json.dumps(r["policies"][0]["policy"]["policy-string"])')"
assert_eq "dane-bogus.test: dnssec-invalid names mx.dane-bogus.test" "dnssec-invalid mx.dane-bogus.test" \
    "$(rj dbogus 'F("tlsa")[0]["result-type"] + " " + F("tlsa")[0].get("receiving-mx-hostname", "-")')"
assert_eq "dane-bogus.test: the detail's fields (no connection was made)" \
    "failed-session-count,failure-reason-code,receiving-mx-hostname,result-type" \
    "$(rj dbogus 'K(F("tlsa")[0])')"

show mxbogus bogus.test
assert_eq "bogus.test: a tlsa policy for the domain, policy-string []" "tlsa bogus.test []" \
    "$(rj mxbogus '(p := r["policies"][0]["policy"])["policy-type"] + " " + p["policy-domain"] + " " + json.dumps(p["policy-string"])')"
assert_eq "bogus.test: dnssec-invalid, no MX host known" \
    "dnssec-invalid failed-session-count,failure-reason-code,result-type" \
    "$(rj mxbogus 'F("tlsa")[0]["result-type"] + " " + K(F("tlsa")[0])')"

show abogus abogus.test
assert_eq "abogus.test: exactly one policy, tlsa for abogus.test, policy-string []" \
    "1 tlsa abogus.test []" \
    "$(rj abogus 'str(len(r["policies"])) + " " + (p := r["policies"][0]["policy"])["policy-type"] + " " + p["policy-domain"] + " " + json.dumps(p.get("policy-string"))')"
assert_eq "abogus.test: its one failure detail, dnssec-invalid at mx.abogus.test" \
    "1 dnssec-invalid mx.abogus.test" \
    "$(rj abogus 'str(len(d := r["policies"][0].get("failure-details", []))) + " " + d[0]["result-type"] + " " + d[0].get("receiving-mx-hostname", "-")')"

# ------------------------------------------------------------------ 15: MX not in the policy
show nomatch sts-nomatch.test
assert_eq "sts-nomatch.test: sts policy mx-host" "mx2.sts-nomatch.test" \
    "$(rj nomatch '",".join(P("sts")[0]["policy"]["mx-host"])')"
assert_eq "sts-nomatch.test: 1 success, 1 failure" "1 1" \
    "$(rj nomatch 'str((s := P("sts")[0]["summary"])["total-successful-session-count"]) + " " + str(s["total-failure-session-count"])')"
assert_eq "sts-nomatch.test: validation-failure mx-not-in-policy at mx.sts-nomatch.test" \
    "validation-failure mx-not-in-policy mx.sts-nomatch.test 1" \
    "$(rj nomatch '" ".join([(d := F("sts")[0])["result-type"], d["failure-reason-code"], d["receiving-mx-hostname"], str(d["failed-session-count"])])')"
assert_eq "sts-nomatch.test: the detail's fields (no connection was made)" \
    "failed-session-count,failure-reason-code,receiving-mx-hostname,result-type" \
    "$(rj nomatch 'K(F("sts")[0])')"

show testing sts-testing.test
# one session, one result: its certificate fails the name check too, and that is what it reports
# (mx-not-in-policy stands for a testing-mode session that otherwise succeeded), never a second
# pre-connect record beside it
assert_eq "sts-testing.test: one failure detail for mx.sts-testing.test, the session's own" \
    "mx.sts-testing.test 1 certificate-host-mismatch" \
    "$(rj testing '" ".join(d["receiving-mx-hostname"] + " " + str(d["failed-session-count"]) + " " + d["result-type"] for d in F("sts"))')"
assert_eq "sts-testing.test: the one delivered session counts once, as that failure (0 successes)" "0 1" \
    "$(rj testing 'str((s := P("sts")[0]["summary"])["total-successful-session-count"]) + " " + str(s["total-failure-session-count"])')"
assert_eq "sts-testing.test: the failure carries the session's addresses (a connection was made)" \
    "1 1" "$(rj testing 'str(int("sending-mta-ip" in F("sts")[0])) + " " + str(int("receiving-ip" in F("sts")[0]))')"
show listed sts-html.test
assert_eq "sts-html.test: no-policy-found naming the list, mx-not-in-policy at mx.sts-open.test" \
    "validation-failure mx-not-in-policy mx.sts-open.test policy list (STARTTLS Everywhere) mode enforce" \
    "$(rj listed '" ".join([(d := F("no-policy-found")[0])["result-type"], d["failure-reason-code"], d["receiving-mx-hostname"], d["additional-information"]])')"
tb_list_keys_stop
tb_finish
