#!/usr/bin/env bash
# t_fleet_list.sh — the shared verified policy list (state.backend = "postgresql";
# docs/ARCHITECTURE.md §Shared state): instance A loads a signed list from policy_list.file and
# publishes it; instance B, configured with the keyring only (no file, no URL), gets it from
# the database, verifies the signature itself and enforces it (b@other.test: 451 4.7.5, "no MX
# allowed by the list"; a@example.test delivered to mx1 only). A list tampered with in the
# database (newer timestamp, content changed after signing) is refused by C, a fresh member,
# which then has no list, and B keeps the good one. Control: before the sync B had no list
# in force. B's gpgv takes 2 s (a wrapper first in its PATH): B serves SMTP while it verifies
# a pulled list (the check runs on the thread pool). Addresses: A 127.0.70.1, B 127.0.70.3, C 127.0.70.4; PostgreSQL 127.0.70.70.
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

tb_init
tb_start_dns
tb_start_mx mx1 127.0.70.11
tb_start_mx mx2 127.0.70.12
tb_start_pg
tb_list_keys
now=$(date +%s)
cat >"$TB/list.json" <<JSON
{
  "timestamp": "$(date -u -d "@$((now - 60))" +%Y-%m-%dT%H:%M:%S+00:00)",
  "expires": $((now + 86400)),
  "version": "0.1",
  "author": "mxguard test suite",
  "pinsets": {},
  "policy-aliases": {"only-mx1": {"mode": "enforce", "mxs": ["mx1.example.test"]}},
  "policies": {
    "example.test": {"policy-alias": "only-mx1"},
    "other.test": {"mode": "enforce", "mxs": [".nowhere.test"]}
  }
}
JSON
tb_list_sign "$TB/list.json"
tb_list_keys_stop
tb_write_config -o "$TB/a.conf" \
    "policy_list: { file = \"$TB/list.json\"; keyring = \"$TB/keyring.gpg\"; };"
tb_pg_config "$TB/a.conf" "$TB/state-a" fleet-a
tb_write_config -o "$TB/b.conf" -l 127.0.70.3:10025 "policy_list: { keyring = \"$TB/keyring.gpg\"; };"
tb_pg_config "$TB/b.conf" "$TB/state-b" fleet-b
tb_write_config -o "$TB/c.conf" -l 127.0.70.4:10025 "policy_list: { keyring = \"$TB/keyring.gpg\"; };"
tb_pg_config "$TB/c.conf" "$TB/state-c" fleet-c

# ---- control: B alone (before A published anything) has no list
OUT=$("$MXG_BIN" state migrate -c "$TB/b.conf" 2>&1)
assert_contains "schema created" "$OUT" "schema version 5"
# B's gpgv is slow (2 s, a marker file while it runs): the loop must keep serving meanwhile
tb_slow_gpgv
PATH="$TB/slowbin:$PATH" tb_start_mxguard -c "$TB/b.conf" -n mxg-b -a 127.0.70.3:10025
OUT=$("$MXG_BIN" list show -c "$TB/b.conf" 2>&1)
assert_not_contains "B before A: no list in force" "$OUT" "in force"

# ---- A publishes; B pulls, verifies and enforces
tb_start_mxguard -c "$TB/a.conf" -n mxg-a
tb_wait_gpgv_busy
PROBE=$(tb_ehlo_probe 127.0.70.3:10025)
assert_eq "B: banner and EHLO answered within 1 s while the pulled list is verified" \
    "BANNER:220 EHLO:250 QUIT:221  yes" "$PROBE"
for n in $(seq 50); do
    grep -q 'policy list from the shared state accepted' "$TB/mxg-b.log" && break
    sleep 0.1
done
assert_log "B: the fleet's list verified and accepted" 0 \
    'policy list from the shared state accepted: .*2 policies, 1 aliases, signer .*list signer' mxg-b
assert_eq "the database holds A's list" "fleet-a" "$(tb_psql 'SELECT instance FROM mxguard_policy_list')"
OUT=$("$MXG_BIN" list show -c "$TB/b.conf" 2>&1)
assert_contains "B: list show: in force" "$OUT" "in force"
SW_SERVER=127.0.70.3:10025 swaks_send none --to b@other.test
assert_reply "B: list enforce, no MX allowed: 451 4.7.5" "$SW_RCPT" "451 4.7.5"
assert_contains "B: the reply names the policy list" "$SW_RCPT" "policy list"
SW_SERVER=127.0.70.3:10025 swaks_send enf --to a@example.test
assert_reply "B: list enforce: delivered" "$SW_DOT" "250"
assert_log "B: WebPKI verified under the list" 0 'peer=WebPKI mx1.example.test \(policy list enforce\)' mxg-b

# ---- a list tampered with in the database: every member verifies, nobody takes it
# (one space appended to the signed JSON: still valid JSON, no longer what was signed)
tb_psql "UPDATE mxguard_policy_list SET timestamp = timestamp + 100, json = json || decode('20', 'hex')" >/dev/null
MARK=$(tb_log_mark mxg-b)
tb_start_mxguard -c "$TB/c.conf" -n mxg-c -a 127.0.70.4:10025
for n in $(seq 50); do
    grep -q 'policy list from the shared state refused' "$TB/mxg-c.log" && break
    sleep 0.1
done
assert_log "C: the tampered list is refused (its signature)" 0 \
    'error state: policy list from the shared state refused: .*(BADSIG|bad signature)' mxg-c
OUT=$("$MXG_BIN" list show -c "$TB/c.conf" 2>&1)
assert_not_contains "C: no list in force" "$OUT" "in force"
for n in $(seq 50); do
    tb_log_since "$MARK" mxg-b | grep -q 'policy list from the shared state refused' && break
    sleep 0.1
done
assert_log "B: refused it too" "$MARK" 'policy list from the shared state refused' mxg-b
OUT=$("$MXG_BIN" list show -c "$TB/b.conf" 2>&1)
assert_contains "B: the good list is still in force" "$OUT" "in force"
tb_finish
