#!/usr/bin/env bash
# t_list.sh — the STARTTLS Everywhere policy list (docs/ARCHITECTURE.md §Decision row 4,
# §Policy list): a signed list is loaded and enforced (matching MX with a WebPKI-valid certificate:
# delivered; no matching MX: 451 4.7.5, nothing delivered); testing mode delivers anyway; unsigned,
# tampered, foreign-signed, older and expired lists are never used; `mxguard list` shows the state.
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

tb_init
tb_start_dns
tb_start_mx mx1 127.0.70.11
tb_start_mx mx2 127.0.70.12

tb_list_keys

now=$(date +%s)
# mk_list FILE TIMESTAMP EXPIRES — a list: example.test enforce (mx1 only, through an alias),
# other.test enforce with no MX of its own, fallback.test testing with no matching MX
mk_list() {
    cat >"$1" <<JSON
{
  "timestamp": "$(date -u -d "@$2" +%Y-%m-%dT%H:%M:%S.5+00:00)",
  "expires": $3,
  "version": "0.1",
  "author": "mxguard test suite",
  "pinsets": {},
  "policy-aliases": {"only-mx1": {"mode": "enforce", "mxs": ["mx1.example.test"]}},
  "policies": {
    "example.test": {"policy-alias": "only-mx1"},
    "other.test": {"mode": "enforce", "mxs": [".nowhere.test"]},
    "fallback.test": {"mode": "testing", "mxs": ["nomatch.test"], "min-tls-version": "TLSv1.2"}
  }
}
JSON
}

mk_list "$TB/list.json" "$((now - 60))" "$((now + 86400))"
tb_list_sign "$TB/list.json"
tb_write_config "policy_list: { file = \"$TB/list.json\"; keyring = \"$TB/keyring.gpg\"; };"
tb_start_mxguard
MX1=$TB/spool/mx1
MX2=$TB/spool/mx2
sleep 0.5 # the list is loaded right after start-up

# list enforce, matching MX: delivered to mx1 over WebPKI-verified TLS
swaks_send enf --to a@example.test
assert_reply "list enforce: delivered" "$SW_DOT" "250"
assert_file_count "$MX1" 1 "list enforce: mx1 got it"
assert_log "list enforce: WebPKI verified under the list" 0 'peer=WebPKI mx1.example.test \(policy list enforce\)'

# list enforce, no allowed MX: 451 4.7.5, nothing delivered
swaks_send none --to b@other.test
assert_reply "list enforce, no MX allowed: 451 4.7.5" "$SW_RCPT" "451 4.7.5"
assert_contains "the reply names the policy list" "$SW_RCPT" "policy list"
assert_file_count "$MX2" 0 "nothing delivered to mx2"

# list testing, MX not on the list: delivered anyway, logged
swaks_send test --to c@fallback.test
assert_reply "list testing: delivered anyway" "$SW_DOT" "250"
assert_file_count "$MX2" 1 "list testing: mx2 got it"
assert_log "list testing is logged" 0 'policy list testing: mx2.example.test is not in the policy.s mx list'

# a domain not on the list: opportunistic as before
swaks_send off --to d@implicit.test
assert_reply "not on the list: delivered" "$SW_DOT" "250"

# status
out=$("$MXG_BIN" list show -c "$TB/mxguard.conf" 2>&1); rc=$?
assert_eq "list show: exit 0 for a list in force" 0 "$rc"
assert_contains "list show: in force" "$out" "in force"
assert_contains "list show: signer" "$out" "list signer <list@example.test>"
assert_contains "list show: counts" "$out" "policies   3"

# an older list is refused (kept: the newer one)
mk_list "$TB/old.json" "$((now - 3600))" "$((now + 86400))"
tb_list_sign "$TB/old.json"
cp "$TB/old.json" "$TB/list.json"; cp "$TB/old.json.asc" "$TB/list.json.asc"
out=$("$MXG_BIN" list update -c "$TB/mxguard.conf" 2>&1)
assert_contains "an older list is not taken" "$out" "not newer"

# tampered / foreign-signed / unsigned lists are rejected, the good one stays
mk_list "$TB/list.json" "$((now + 10))" "$((now + 86400))"
tb_list_sign "$TB/list.json"
sed -i 's/only-mx1/only-mx2/' "$TB/list.json" # tamper after signing (still valid JSON)
out=$("$MXG_BIN" list update -c "$TB/mxguard.conf" 2>&1); rc=$?
assert_eq "tampered list: update fails" 1 "$rc"
assert_match "tampered list: rejected with BADSIG" "$out" 'BADSIG|bad signature'
mk_list "$TB/list.json" "$((now + 20))" "$((now + 86400))"
tb_list_sign "$TB/list.json" "$TB_ATTACKER"
out=$("$MXG_BIN" list update -c "$TB/mxguard.conf" 2>&1)
assert_match "foreign-signed list: rejected" "$out" 'NO_PUBKEY|no public key'
: >"$TB/list.json.asc"
out=$("$MXG_BIN" list update -c "$TB/mxguard.conf" 2>&1)
assert_contains "unsigned list: rejected" "$out" "rejected"
out=$("$MXG_BIN" list show -c "$TB/mxguard.conf" 2>&1)
assert_contains "the good list is still in force" "$out" "in force"

# an expired list is never used: a second instance with its own state gets only an expired one
mk_list "$TB/exp.json" "$((now - 7200))" "$((now - 3600))"
tb_list_sign "$TB/exp.json"
mkdir -p "$TB/state2"
tb_write_config -o "$TB/mxguard2.conf" -l 127.0.70.3:10025 \
    "policy_list: { file = \"$TB/exp.json\"; keyring = \"$TB/keyring.gpg\"; };"
sed -i "s|directory = \"$TB/state\"|directory = \"$TB/state2\"|" "$TB/mxguard2.conf"
tb_start_mxguard -c "$TB/mxguard2.conf" -n mxguard2 -a 127.0.70.3:10025
sleep 0.5
SW_SERVER=127.0.70.3:10025 swaks_send exp --to e@other.test
assert_reply "expired list not applied: other.test delivered opportunistically" "$SW_DOT" "250"
assert_file_count "$MX2" 2 "mx2 got the expired-list case"
out=$("$MXG_BIN" list show -c "$TB/mxguard2.conf" 2>&1); rc=$?
assert_eq "list show: exit 1 without a usable list" 1 "$rc"

# a list update (SIGHUP) verifies on the thread pool: with a gpgv that takes 2 s (a wrapper
# first in the instance's PATH, a marker file while it runs) the listener keeps answering
mkdir -p "$TB/state3"
tb_slow_gpgv
mk_list "$TB/list3.json" "$((now - 30))" "$((now + 86400))"
tb_list_sign "$TB/list3.json"
tb_write_config -o "$TB/mxguard3.conf" -l 127.0.70.4:10025 \
    "policy_list: { file = \"$TB/list3.json\"; keyring = \"$TB/keyring.gpg\"; };"
sed -i "s|directory = \"$TB/state\"|directory = \"$TB/state3\"|" "$TB/mxguard3.conf"
PATH="$TB/slowbin:$PATH" tb_start_mxguard -c "$TB/mxguard3.conf" -n mxguard3 -a 127.0.70.4:10025
mk_list "$TB/list3.json" "$((now + 30))" "$((now + 86400))"
tb_list_sign "$TB/list3.json"
MARK=$(tb_log_mark mxguard3)
kill -HUP "$(tb_pid mxguard3)"
tb_wait_gpgv_busy
PROBE=$(tb_ehlo_probe 127.0.70.4:10025)
assert_eq "SIGHUP: banner and EHLO answered within 1 s while the new list is verified" \
    "BANNER:220 EHLO:250 QUIT:221  yes" "$PROBE"
for n in $(seq 50); do
    tb_log_since "$MARK" mxguard3 | grep -q 'reload.*policy list' && break
    sleep 0.1
done
assert_log "SIGHUP: the newer list accepted after the check" "$MARK" \
    'reload.*policy list: .*accepted' mxguard3

tb_list_keys_stop
tb_finish
