#!/usr/bin/env bash
# t_list_sts.sh — the policy list against MTA-STS (docs/ARCHITECTURE.md §STS over list): any
# MTA-STS policy (enforce or none) wins over the domain's list entry; when the domain's MTA-STS
# fetch fails and nothing is cached, the list applies (it protects MTA-STS on first use); `mxguard
# check` says which one was used; `mxguard list export` turns the MTA-STS cache into a list.
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

tb_init
tb_start_dns
tb_start_nginx
tb_start_sts_mx sts-enforce sts-open sts-none
tb_list_keys

now=$(date +%s)
cat >"$TB/list.json" <<JSON
{
  "timestamp": $now, "expires": $((now + 86400)), "version": "0.1", "author": "t_list_sts",
  "policies": {
    "sts-enforce.test": {"mode": "enforce", "mxs": ["nomatch.test"]},
    "sts-none.test": {"mode": "enforce", "mxs": ["nomatch.test"]},
    "sts-notfound.test": {"mode": "enforce", "mxs": ["nomatch.test"]},
    "sts-html.test": {"mode": "enforce", "mxs": ["mx.sts-open.test"]}
  }
}
JSON
tb_list_sign "$TB/list.json"
tb_write_config "$(tb_sts_config)" \
    "policy_list: { file = \"$TB/list.json\"; keyring = \"$TB/keyring.gpg\"; };"
tb_start_mxguard
sleep 0.5

# 1. MTA-STS enforce present: it wins, the list entry (which allows no MX) is not used
swaks_send enf --to a@sts-enforce.test
assert_reply "MTA-STS enforce wins over the list: delivered" "$SW_DOT" "250"
assert_file_count "$TB/spool/sts-enforce" 1 "delivered to mx.sts-enforce.test"
assert_log "under MTA-STS, not the list" 0 'domain=sts-enforce.test .*peer=WebPKI mx.sts-enforce.test \(MTA-STS enforce\)'

# 2. MTA-STS mode none present: it still wins (no policy at all), the list entry is not used
swaks_send none --to b@sts-none.test
assert_reply "MTA-STS mode none wins over the list: delivered" "$SW_DOT" "250"
assert_file_count "$TB/spool/sts-none" 1 "delivered to mx.sts-none.test"

# 3. MTA-STS fetch fails (404), nothing cached: the list applies and allows no MX
swaks_send nf --to c@sts-notfound.test
assert_reply "STS fetch failed: the list applies: 451 4.7.5" "$SW_RCPT" "451 4.7.5"
assert_contains "the reply names the policy list" "$SW_RCPT" "policy list"

# 4. MTA-STS fetch fails (text/html), the list allows the MX: delivered under the list
before=$(spool_count "$TB/spool/sts-open")
swaks_send html --to d@sts-html.test
assert_reply "STS fetch failed, list allows the MX: delivered" "$SW_DOT" "250"
assert_file_count "$TB/spool/sts-open" $((before + 1)) "delivered to mx.sts-open.test"
assert_log "under the list" 0 'domain=sts-html.test .*peer=WebPKI mx.sts-open.test \(policy list enforce\)'

# check explains which source was used
tb_check ck1 sts-enforce.test
assert_contains "check: the list entry is not used under MTA-STS" "$CHECK_OUT" "not used: the MTA-STS policy wins"
tb_check ck2 sts-notfound.test
assert_contains "check: the list applies when MTA-STS failed" "$CHECK_OUT" "APPLIES"

# export: the cached enforce policy of sts-enforce.test becomes a list entry with its MX name
out=$("$MXG_BIN" list export -c "$TB/mxguard.conf" 2>/dev/null)
assert_eq "export: valid JSON with sts-enforce.test's exact MX" '["mx.sts-enforce.test"]' \
    "$(printf '%s' "$out" | "$PYTHON" -c 'import json,sys; print(json.dumps(json.load(sys.stdin)["policies"]["sts-enforce.test"]["mxs"]))' 2>&1)"
assert_not_contains "export: mode none policies are not exported" "$out" "sts-none.test"

tb_list_keys_stop
tb_finish
