#!/usr/bin/env bash
# t_fleet_sts_durable.sh — MTA-STS pushes survive a crash during a database outage, a late
# push never beats a newer fetch, and the database's old rows are pruned (state.retention;
# docs/ARCHITECTURE.md §Shared state).
# 1. The database is down; A fetches the enforce policy of sts-cache.test (delivers) and is
#    killed with SIGKILL while the database is still down; A is started again (still down),
#    then the database: A's push comes from its durable outbox (mta-sts.db sts_outbox), the
#    row is in the database with the fetch's own time (not the replay's), and the outbox is
#    empty. Then the policy host goes, the MX changes; B, which never saw the domain, defers
#    451 4.7.5 and mx2 gets nothing.
# 2. A late push never wins over a newer fetch: A fetches sts-enforce.test during an outage
#    and is killed; another instance's fetch, 3 s later, reaches the database first; A's
#    replay (age >= 6 s) leaves that row in place and is acknowledged (out of the outbox).
#    A push of the same id as the database's row never shortens its expiry.
# 3. Pruning: rows seeded older than state.retention (2d) go, in bounded runs (1,000 rows per
#    table and run), recent ones stay; a TLSRPT batch older than state.outbox_max_age is
#    dropped from the local outbox, never pushed; a retention shorter than outbox_max_age
#    plus one day is refused.
# Addresses: A 127.0.70.1, B 127.0.70.3 (port 10025); PostgreSQL 127.0.70.70.
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

tb_init
tb_start_dns
tb_start_nginx
tb_start_sts_mx sts-cache sts-cache2 sts-enforce
tb_start_pg
STS=$(tb_sts_config 'refresh_min_interval = "0s";')
tb_write_config -o "$TB/a.conf" "$STS"
tb_pg_config "$TB/a.conf" "$TB/state-a" fleet-a
tb_write_config -o "$TB/b.conf" -l 127.0.70.3:10025 "$STS"
tb_pg_config "$TB/b.conf" "$TB/state-b" fleet-b
# a short first-pull wait (the database is down at A's starts), frequent prunes
for c in a b; do
    sed -i 's/^  sync_interval = "300ms";$/&\n  first_pull_timeout = "1s";\n  retention = "2d";\n  outbox_max_age = "1d";\n  prune_interval = "1s";/' "$TB/$c.conf"
done
OUT=$("$MXG_BIN" state migrate -c "$TB/a.conf" 2>&1)
assert_contains "state migrate: the schema" "$OUT" "schema version 5"
outbox() { sqlite3 "$TB/state-a/mta-sts.db" "SELECT count(*) FROM sts_outbox" 2>/dev/null || echo none; }

# ---- 1. A fetches during an outage, is killed, restarted (still down), the database returns
tb_stop_pg
tb_start_mxguard -c "$TB/a.conf" -n mxg-a
TF=$(date +%s)
swaks_send a1 --to a@sts-cache.test
assert_reply "A (database down): delivered under the policy" "$SW_DOT" "250"
assert_file_count "$TB/spool/sts-cache" 1 "A: mx.sts-cache.test got it"
assert_eq "A: the push waits in the durable outbox" "sts-cache.test|cache1" \
    "$(sqlite3 "$TB/state-a/mta-sts.db" "SELECT domain, id FROM sts_outbox")"
tb_signal mxg-a KILL
sleep 0.3
assert_eq "A killed (SIGKILL)" 1 "$(tb_alive mxg-a && echo 0 || echo 1)"
assert_eq "A's outbox kept the push across SIGKILL" 1 "$(outbox)"
sleep 5 # the fetch is now >= 5 s old: its replay must say so
tb_start_mxguard -c "$TB/a.conf" -n mxg-a2
assert_log "A restarted: the outbox's push queued" 0 \
    'state: postgresql: 1 MTA-STS push\(es\) from the local outbox queued' mxg-a2
tb_start_pg
ROW=""
for n in $(seq 50); do
    ROW=$(tb_psql "SELECT domain, id, instance, expires_at - fetched_at FROM mxguard_sts_policy WHERE domain = 'sts-cache.test'")
    [ -n "$ROW" ] && break
    sleep 0.1
done
assert_eq "the database holds A's policy, pushed by A after its restart" \
    "sts-cache.test|cache1|fleet-a|86400" "$ROW"
F=$(tb_psql "SELECT fetched_at FROM mxguard_sts_policy WHERE domain = 'sts-cache.test'")
assert_match "its fetched_at ($F) is the fetch's time ($TF), not the replay's (5 s later or more)" \
    "$((F - TF))" '^[0-2]$'
for n in $(seq 30); do [ "$(outbox)" = 0 ] && break; sleep 0.1; done
assert_eq "A's outbox is empty once the database has the row" 0 "$(outbox)"

# the policy host goes away, TXT removed, MX replaced; B never saw the domain
tb_dns_swap sts-cache.test b
tb_stop nginx
tb_start_mxguard -c "$TB/b.conf" -n mxg-b -a 127.0.70.3:10025
SW_SERVER=127.0.70.3:10025 swaks_send b1 --to a@sts-cache.test
assert_reply "B: RCPT deferred 451 4.7.5 (the fleet's policy)" "$SW_RCPT" "451 4.7.5"
assert_eq "B: nothing relayed" "" "$SW_DOT"
assert_no_connect "B: mx2.sts-cache.test (not in the policy) never connected to" sts-cache2
assert_no_mail "B: mx2.sts-cache.test got nothing" sts-cache2

# ---- 2. a late replay never beats a newer fetch made meanwhile
tb_start_nginx
tb_stop_pg
swaks_send a2 --to a@sts-enforce.test
assert_reply "A (database down): sts-enforce.test delivered" "$SW_DOT" "250"
assert_eq "A: its push of sts-enforce.test waits in the outbox" 1 \
    "$(sqlite3 "$TB/state-a/mta-sts.db" "SELECT count(*) FROM sts_outbox WHERE domain = 'sts-enforce.test'")"
tb_signal mxg-a2 KILL
sleep 6
tb_start_pg
POL="convert_to(E'version: STSv1\\nmode: enforce\\nmx: mx.sts-enforce.test\\nmax_age: 86400\\n', 'UTF8')"
tb_psql "INSERT INTO mxguard_sts_policy VALUES ('sts-enforce.test', 'newer', $POL, extract(epoch FROM now())::bigint - 3, extract(epoch FROM now())::bigint + 86400, nextval('mxguard_sts_rev'), 'fleet-x') ON CONFLICT (domain) DO UPDATE SET id = 'newer', instance = 'fleet-x', fetched_at = EXCLUDED.fetched_at, expires_at = EXCLUDED.expires_at, rev = EXCLUDED.rev" >/dev/null
tb_start_mxguard -c "$TB/a.conf" -n mxg-a3
for n in $(seq 50); do [ "$(outbox)" = 0 ] && break; sleep 0.1; done
assert_eq "A's replay of sts-enforce.test left the outbox (acknowledged)" 0 "$(outbox)"
assert_eq "the database kept the newer fetch (the replay's age made it older)" "newer|fleet-x" \
    "$(tb_psql "SELECT id, instance FROM mxguard_sts_policy WHERE domain = 'sts-enforce.test'")"
for n in $(seq 50); do
    [ "$(sqlite3 "$TB/state-a/mta-sts.db" "SELECT id FROM sts_policy WHERE domain = 'sts-enforce.test'")" = newer ] && break
    sleep 0.1
done
assert_eq "A took the newer fetch into its local cache" newer \
    "$(sqlite3 "$TB/state-a/mta-sts.db" "SELECT id FROM sts_policy WHERE domain = 'sts-enforce.test'")"

# 2b. every push (a replay too) keeps policy/sts_merge.c's rule in the database: the same id
# never shortens the row's expiry. The fleet's row: id enforce1, an older fetch, a far expiry.
tb_psql "UPDATE mxguard_sts_policy SET id = 'enforce1', fetched_at = extract(epoch FROM now())::bigint - 100, expires_at = extract(epoch FROM now())::bigint + 999999, rev = nextval('mxguard_sts_rev'), instance = 'fleet-x' WHERE domain = 'sts-enforce.test'" >/dev/null
sleep 1
swaks_send a3 --to a@sts-enforce.test
assert_reply "A: sts-enforce.test delivered (fetched again: the TXT id is enforce1)" "$SW_DOT" "250"
ROW=""
for n in $(seq 50); do
    ROW=$(tb_psql "SELECT id, instance, expires_at - fetched_at > 86400 FROM mxguard_sts_policy WHERE domain = 'sts-enforce.test'")
    [ "${ROW#*|}" != fleet-x\|t ] && break
    sleep 0.1
done
assert_eq "A's newer fetch of the same id took the row but kept its longer expiry" \
    "enforce1|fleet-a|t" "$ROW"

# ---- 3. pruning
cp "$TB/a.conf" "$TB/bad.conf"
sed -i 's/^  retention = "2d";$/  retention = "47h";/' "$TB/bad.conf"
OUT=$("$MXG_BIN" config check -c "$TB/bad.conf" 2>&1); RC=$?
assert_eq "retention shorter than outbox_max_age + 1 day: refused" 1 "$RC"
assert_contains "... and says why" "$OUT" "state.retention: must be at least state.outbox_max_age plus one day"
tb_stop mxg-a3
tb_stop mxg-b
OLD=$(date -u -d '4 days ago' +%F)
NEW=$(date -u +%F)
tb_psql "INSERT INTO mxguard_rpt_batch (id, instance, received_at) SELECT 'old' || g, 'seed', now() - interval '3 days' FROM generate_series(1, 1500) g;
INSERT INTO mxguard_rpt_batch (id, instance, received_at) VALUES ('recent', 'seed', now() - interval '1 day');
INSERT INTO mxguard_rpt_report VALUES ('$OLD', 'old.test', 'r-old'), ('$NEW', 'new.test', 'r-new');
INSERT INTO mxguard_rpt_claim (day, domain, rua, report_id, instance, lease_until, status) VALUES
 ('$OLD', 'old.test', 'mailto:a@old.test', 'r-old', 'seed', now(), 'sent'),
 ('$NEW', 'new.test', 'mailto:a@new.test', 'r-new', 'seed', now(), 'claimed');
INSERT INTO mxguard_rpt_policy VALUES ('k-old', '$OLD', 'old.test', 'sts', 'p', 'mx', 1, 1), ('k-new', '$NEW', 'new.test', 'sts', 'p', 'mx', 1, 1);
INSERT INTO mxguard_rpt_failure VALUES ('f-old', 'k-old', 'r', '', '', '', '', '', '', 1), ('f-new', 'k-new', 'r', '', '', '', '', '', '', 1);
INSERT INTO mxguard_sts_policy (domain, id, body, fetched_at, expires_at, rev, instance) VALUES
 ('gone.test', 'g1', '', extract(epoch FROM now())::bigint - 4 * 86400, extract(epoch FROM now())::bigint - 3 * 86400, nextval('mxguard_sts_rev'), 'seed'),
 ('lapsed.test', 'l1', '', extract(epoch FROM now())::bigint - 2 * 86400, extract(epoch FROM now())::bigint - 86400, nextval('mxguard_sts_rev'), 'seed')" >/dev/null
# a TLSRPT batch made 2 days ago (older than outbox_max_age) waits in A's outbox
sqlite3 "$TB/state-a/tlsrpt.db" "INSERT INTO outbox (id, created_at, payload) VALUES ('stale-batch', strftime('%s', 'now') - 172800, '[{\"day\":\"$NEW\",\"ptype\":\"sts\",\"domain\":\"stale.test\",\"pstring\":\"\",\"mxhost\":\"\",\"ok\":5,\"fail\":0,\"details\":[]}]')"
# an MTA-STS push fetched 2 days ago (older than outbox_max_age) waits in A's outbox: dropped,
# not replayed (the newer fetch that replaced it may have been pruned from the database)
sqlite3 "$TB/state-a/mta-sts.db" "INSERT INTO sts_outbox (domain, id, body, fetched_at, expires_at) VALUES ('replayed-late.test', 'old1', X'', strftime('%s', 'now') - 172800, strftime('%s', 'now') + 86400 * 300)"
tb_start_mxguard -c "$TB/a.conf" -n mxg-a4
for n in $(seq 100); do
    [ "$(tb_psql "SELECT count(*) FROM mxguard_rpt_batch WHERE id LIKE 'old%'")" = 0 ] && break
    sleep 0.1
done
assert_eq "old batch ids pruned (1,500 over two runs)" 0 \
    "$(tb_psql "SELECT count(*) FROM mxguard_rpt_batch WHERE id LIKE 'old%'")"
assert_log "the first run stopped at its bound" 0 \
    'info state: postgresql: pruned 100[0-9] row\(s\) older than state.retention \(more at the next sync\)' mxg-a4
assert_eq "a recent batch id stays" 1 "$(tb_psql "SELECT count(*) FROM mxguard_rpt_batch WHERE id = 'recent'")"
assert_eq "report-ids: the old day's gone, today's stays" "$NEW" "$(tb_psql "SELECT day FROM mxguard_rpt_report")"
assert_eq "claims: the old day's gone, today's stays" "$NEW" "$(tb_psql "SELECT day FROM mxguard_rpt_claim")"
assert_eq "counters: the old day's gone, today's stay" "k-new" "$(tb_psql "SELECT key FROM mxguard_rpt_policy WHERE key LIKE 'k-%'")"
assert_eq "failure details: the old day's gone, today's stay" "f-new" "$(tb_psql "SELECT key FROM mxguard_rpt_failure WHERE key LIKE 'f-%'")"
assert_eq "MTA-STS rows: expired more than the retention ago gone, expired recently stays" "lapsed.test" \
    "$(tb_psql "SELECT domain FROM mxguard_sts_policy WHERE instance = 'seed'")"
assert_eq "the prune's ranges are indexed (schema 5)" 2 \
    "$(tb_psql "SELECT count(*) FROM pg_indexes WHERE indexname IN ('mxguard_rpt_batch_received', 'mxguard_sts_policy_expires')")"
assert_contains "members name themselves in pg_stat_activity (application_name)" \
    "$(tb_psql "SELECT string_agg(DISTINCT application_name, ',') FROM pg_stat_activity")" "mxguard/fleet-a"
assert_eq "the stale MTA-STS push left A's outbox" 0 \
    "$(sqlite3 "$TB/state-a/mta-sts.db" "SELECT count(*) FROM sts_outbox WHERE domain = 'replayed-late.test'")"
assert_log "... dropped unpushed" 0 \
    'state: MTA-STS outbox: 1 push\(es\) older than state.outbox_max_age dropped unpushed' mxg-a4
assert_eq "... and never reached the database" 0 \
    "$(tb_psql "SELECT count(*) FROM mxguard_sts_policy WHERE domain = 'replayed-late.test'")"
assert_eq "the stale TLSRPT batch left A's outbox" 0 \
    "$(sqlite3 "$TB/state-a/tlsrpt.db" "SELECT count(*) FROM outbox WHERE id = 'stale-batch'")"
assert_log "... dropped unpushed, loudly" 0 \
    'state: TLSRPT outbox: 1 batch\(es\) older than state.outbox_max_age dropped unpushed' mxg-a4
assert_eq "... and never reached the database" "0|0" \
    "$(tb_psql "SELECT (SELECT count(*) FROM mxguard_rpt_batch WHERE id = 'stale-batch'), (SELECT count(*) FROM mxguard_rpt_policy WHERE domain = 'stale.test')")"
tb_finish
