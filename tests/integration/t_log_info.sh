#!/usr/bin/env bash
# t_log_info.sh — at log.level "info" the log is one line per transaction outcome (README,
# "Logs"): routine decisions (the MTA-STS lookup that finds no policy, the upstream
# connection's TLS details, a reused connection) are debug. Three messages on three client
# sessions, the second and third over the parked upstream connection.
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

tb_init
tb_start_dns
tb_start_mx mx1 127.0.70.11
tb_start_mx mx2 127.0.70.12
tb_write_config
sed -i 's/^  level = "debug";/  level = "info";/' "$TB/mxguard.conf"
assert_file_grep "the test config logs at info" "$TB/mxguard.conf" '^  level = "info";'
export MXGUARD_UPSTREAM_CACHE_IDLE=30s
tb_start_mxguard
MARK=$(tb_log_mark)

for i in 1 2 3; do
    swaks_send "info$i" --to "r$i@example.test"
    assert_reply "message $i: final dot answered 250" "$SW_DOT" "250"
done
assert_file_count "$TB/spool/mx1" 3 "mx1 received the three messages"

after=$(tb_log_since "$MARK")
# session ids: "S<hex>", with server.workers > 1 "S<worker>-<hex>"
ids=$(printf '%s\n' "$after" | sed -n 's/.* smtp: \(S[0-9A-F-]*\.[0-9]*\): client=.*/\1/p')
assert_eq "three transaction outcome lines" 3 "$(printf '%s\n' "$ids" | grep -c .)"
for id in $ids; do
    assert_eq "transaction $id: exactly one info line names it" 1 \
        "$(printf '%s\n' "$after" | grep -c " $id[: ]")"
done
assert_eq "no info line for the routine MTA-STS lookup (no policy)" 0 \
    "$(printf '%s\n' "$after" | grep -c ' sts: ')"
assert_eq "no info line for the upstream connection's TLS details" 0 \
    "$(printf '%s\n' "$after" | grep -c ': connected to ')"
assert_eq "nothing but info-level lines and above" 0 \
    "$(printf '%s\n' "$after" | grep -c ' debug ')"

tb_finish
