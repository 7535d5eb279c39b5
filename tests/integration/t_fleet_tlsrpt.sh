#!/usr/bin/env bash
# t_fleet_tlsrpt.sh — TLSRPT counts of a fleet on PostgreSQL (state.backend = "postgresql";
# docs/ARCHITECTURE.md §Shared state): each instance keeps its batches of counters in a local
# durable outbox (tlsrpt.db) and the shared state adds each batch to the fleet's counters per
# (UTC day, policy domain, policy, failure detail) exactly once. Two instances relay to the
# same domains: the database holds the sums (successes and a failure detail). Then the
# database is stopped: mail goes on undelayed, the batches wait in the outboxes; instance B is
# killed with SIGKILL and started again on its state; the database comes back: every batch
# arrives, none twice. Finally a batch the database already has is put back into an outbox
# (a crash between the database's commit and the local delete): it is acknowledged and
# removed, the sums do not change. `report list|show|export` read the fleet's counters. Addresses: A 127.0.70.1, B 127.0.70.3; PostgreSQL .70.
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

tb_init
tb_start_dns
tb_start_nginx
tb_start_sts_mx sts-enforce sts-badcert
tb_start_pg
STS=$(tb_sts_config)
tb_write_config -o "$TB/a.conf" "$STS"
tb_pg_config "$TB/a.conf" "$TB/state-a" fleet-a
tb_write_config -o "$TB/b.conf" -l 127.0.70.3:10025 "$STS"
tb_pg_config "$TB/b.conf" "$TB/state-b" fleet-b
tb_start_mxguard -c "$TB/a.conf" -n mxg-a
tb_start_mxguard -c "$TB/b.conf" -n mxg-b -a 127.0.70.3:10025

# pg_sum COLUMN DOMAIN — the fleet's sum of COLUMN (success, failure) for DOMAIN today
pg_sum() {
    tb_psql "SELECT coalesce(sum($1), 0) FROM mxguard_rpt_policy WHERE domain = '$2'"
}
# outbox NAME — batches waiting in NAME's local outbox
outbox() { sqlite3 "$TB/state-$1/tlsrpt.db" 'SELECT count(*) FROM outbox' 2>/dev/null || echo err; }
# wait_sum COLUMN DOMAIN N — wait (10 s at most) until pg_sum is N
wait_sum() {
    local i
    for i in $(seq 100); do [ "$(pg_sum "$1" "$2")" = "$3" ] && return 0; sleep 0.1; done
    return 1
}
# send SERVER TAG N DOMAIN — N messages to DOMAIN through SERVER
send() {
    local i
    for i in $(seq "$3"); do SW_SERVER=$1 swaks_send "$2$i" --to "a@$4"; done
}

# ---- 1. both instances relay: the fleet's counters are the sums
send 127.0.70.1:10025 a 3 sts-enforce.test
assert_reply "A: delivered" "$SW_DOT" "250"
send 127.0.70.3:10025 b 2 sts-enforce.test
assert_reply "B: delivered" "$SW_DOT" "250"
SW_SERVER=127.0.70.1:10025 swaks_send abad --to a@sts-badcert.test
assert_reply "A: sts-badcert.test deferred (a TLSRPT failure)" "$SW_RCPT" "451 4.7.5"
wait_sum success sts-enforce.test 5
assert_eq "fleet: 3 + 2 successful sessions for sts-enforce.test" 5 "$(pg_sum success sts-enforce.test)"
wait_sum failure sts-badcert.test 1
assert_eq "fleet: 1 failed session for sts-badcert.test" 1 "$(pg_sum failure sts-badcert.test)"
assert_eq "fleet: its failure detail (sts, one session)" "sts|1" \
    "$(tb_psql "SELECT p.ptype, sum(f.sessions) FROM mxguard_rpt_failure f JOIN mxguard_rpt_policy p ON p.key = f.policy_key WHERE p.domain = 'sts-badcert.test' GROUP BY p.ptype")"
assert_eq "A: outbox empty once pushed" 0 "$(outbox a)"
assert_eq "B: outbox empty once pushed" 0 "$(outbox b)"
assert_eq "A's local counters are A's alone (3)" 3 \
    "$(sqlite3 "$TB/state-a/tlsrpt.db" "SELECT sum(success) FROM policy WHERE domain = 'sts-enforce.test'")"

# ---- 2. the database goes away; B dies with SIGKILL; both come back
tb_stop_pg
T0=$(date +%s%N)
send 127.0.70.1:10025 c 2 sts-enforce.test
T1=$(date +%s%N)
assert_reply "A during the outage: delivered" "$SW_DOT" "250"
assert_match "A during the outage: 2 messages in under 4 s" "$(((T1 - T0) / 1000000))" '^([0-9]{1,3}|[0-3][0-9]{3})$'
send 127.0.70.3:10025 d 2 sts-enforce.test
assert_reply "B during the outage: delivered" "$SW_DOT" "250"
sleep 1.5 # tlsrpt.flush_interval (1 s): the counts are in the files and their outboxes
tb_signal mxg-b KILL
sleep 0.2
assert_eq "B killed" 1 "$(tb_alive mxg-b && echo 0 || echo 1)"
NB=$(outbox b)
assert_match "B's outbox kept its batches across SIGKILL ($NB)" "$NB" '^[1-9][0-9]*$'
tb_start_pg
tb_start_mxguard -c "$TB/b.conf" -n mxg-b2 -a 127.0.70.3:10025
wait_sum success sts-enforce.test 9
assert_eq "fleet after the outage and the crash: 5 + 2 + 2, nothing lost, nothing twice" 9 \
    "$(pg_sum success sts-enforce.test)"
sleep 1
assert_eq "A: outbox empty again" 0 "$(outbox a)"
assert_eq "B: outbox empty again" 0 "$(outbox b)"

# ---- 3. a batch the database has is pushed again (a crash after the commit): ignored
ID=$(tb_psql "SELECT id FROM mxguard_rpt_batch WHERE instance = 'fleet-a' ORDER BY received_at LIMIT 1")
NBATCH=$(tb_psql "SELECT count(*) FROM mxguard_rpt_batch")
sqlite3 "$TB/state-a/tlsrpt.db" "INSERT INTO outbox (id, created_at, payload) VALUES ('$ID', strftime('%s', 'now'), '[{\"day\":\"$(date -u +%F)\",\"ptype\":\"sts\",\"domain\":\"sts-enforce.test\",\"pstring\":\"\",\"mxhost\":\"\",\"ok\":100,\"fail\":0,\"details\":[]}]')"
for n in $(seq 50); do [ "$(outbox a)" = 0 ] && break; sleep 0.1; done
assert_eq "the repeated batch left A's outbox (acknowledged)" 0 "$(outbox a)"
assert_eq "... and was not counted again" 9 "$(pg_sum success sts-enforce.test)"
assert_eq "... nor recorded as a new batch" "$NBATCH" "$(tb_psql "SELECT count(*) FROM mxguard_rpt_batch")"

# ---- 4. `report list|show` of a fleet member read the fleet's counters
DAY=$(date -u +%F)
OUT=$("$MXG_BIN" report list -c "$TB/b.conf" 2>&1)
assert_contains "report list (B): sts-enforce.test" "$OUT" "$DAY sts-enforce.test"
assert_contains "report list (B): sts-badcert.test, which only A saw" "$OUT" "$DAY sts-badcert.test"
OUT=$("$MXG_BIN" report show "$DAY" sts-enforce.test -c "$TB/b.conf" 2>/dev/null)
assert_eq "report show (B): the fleet's 9 successful sessions" 9 \
    "$(printf '%s' "$OUT" | jq '[.policies[].summary["total-successful-session-count"]] | add')"
OUT=$("$MXG_BIN" report show "$DAY" sts-badcert.test -c "$TB/b.conf" 2>/dev/null)
assert_eq "report show (B): A's failure detail" "1" \
    "$(printf '%s' "$OUT" | jq '[.policies[]["failure-details"][]["failed-session-count"]] | add')"
# export writes finished days only: a past day's fleet counters, as another instance left them
tb_psql "INSERT INTO mxguard_rpt_policy VALUES ('past-day-key', '2026-01-02', 'old.test', 'sts', 'version: STSv1', 'mx.old.test', 7, 0)" >/dev/null
mkdir -p "$TB/export"
"$MXG_BIN" report export "$TB/export" --day 2026-01-02 -c "$TB/b.conf" >"$TB/export.out" 2>&1
F=$(ls "$TB/export"/*'!old.test!'*.json 2>/dev/null | head -1)
assert_eq "report export (B): the fleet's counters of a past day (7 sessions of old.test)" 7 \
    "$(jq '[.policies[].summary["total-successful-session-count"]] | add' "$F" 2>/dev/null)"
tb_finish
