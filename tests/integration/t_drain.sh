#!/usr/bin/env bash
# t_drain.sh — SIGTERM drains: mxguard stops accepting at once, lets the transaction in
# flight finish (the client still gets the upstream's 250), then exits with status 0.
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

tb_init
tb_start_dns
tb_start_mx mx1 127.0.70.11
tb_start_mx mx2 127.0.70.12
tb_write_config
tb_start_mxguard

MX1=$TB/spool/mx1
# pid_of NAME — the pid of the test-bed process NAME
pid_of() { awk -v n="$1" '$2 == n { p = $1 } END { print p }' "$TB/pids"; }
# slow_txn NAME — in the background ($bg): a transaction whose upstream takes 5 s for the final
# reply; its final dot reply goes to $TB/NAME.dot. Returns 1.5 s later (the dot was sent).
slow_txn() {
    tb_make_message "$1" --to slowdata@example.test --subject "drain $1" --id "drain-$1"
    ( swaks_send "$1" --to slowdata@example.test --no-data-fixup --data "@$TB/$1.wire" >/dev/null
      echo "$SW_DOT" >"$TB/$1.dot" ) &
    bg=$!
    sleep 1.5
}
pid=$(pid_of mxguard)
# wait_exit PID SECONDS — poll every 10 ms until PID is gone (at most SECONDS); EXIT_AT_MS: when
# it was seen gone (Unix ms), "" if it still runs
wait_exit() {
    local end=$(($(date +%s%3N) + $2 * 1000))
    EXIT_AT_MS=""
    while [ "$(date +%s%3N)" -lt "$end" ]; do
        if ! kill -0 "$1" 2>/dev/null; then EXIT_AT_MS=$(date +%s%3N); return 0; fi
        sleep 0.01
    done
    return 1
}
# assert_quick_exit NAME — the process exited within 500 ms of its last "main: stopped" log
# line (nothing may hold the exit up once the work is done: docs/ARCHITECTURE.md §Operating);
# with server.workers > 1 the master's "every worker stopped" is the last: an idle worker
# stops long before the one that finishes the transaction
assert_quick_exit() {
    local ts st d
    ts=$(grep -E 'main: (stopped|master: every worker stopped \(status [0-9]+\))$' "$TB/$1.log" |
        tail -n 1 | cut -d' ' -f1)
    if [ -z "$ts" ] || [ -z "$EXIT_AT_MS" ]; then
        fail "$1: no 'stopped' line (${ts:-none}) or no exit (${EXIT_AT_MS:-none})"; return
    fi
    st=$(date -u -d "$ts" +%s%3N)
    d=$((EXIT_AT_MS - st))
    if [ "$d" -lt 500 ]; then pass "$1 exited ${d} ms after 'stopped'"
    else fail "$1 exited ${d} ms after 'stopped' (more than 500 ms)"; fi
}

slow_txn slow
kill -TERM "$pid"
sleep 0.5

# new clients are refused while the old one finishes
if "$PYTHON" "$TB_LIB_DIR/smtpclient.py" --server "$TB_MXG_IP:$TB_MXG_PORT" \
    --source "$TB_CLIENT_IP" --timeout 1 probe; then
    fail "a new connection was accepted during the drain"
else
    pass "new connections are refused during the drain"
fi
assert_eq "mxguard still runs while a transaction is in flight" 0 "$(kill -0 "$pid" 2>/dev/null; echo $?)"

wait "$bg"
assert_reply "the transaction in flight completed with the upstream's 250" "$(cat "$TB/slow.dot")" "250"
assert_file_count "$MX1" 1 "the drained transaction was delivered once"

if ! wait_exit "$pid" 5; then
    fail "mxguard did not exit after the last session ended"
else
    wait "$pid" 2>/dev/null
    pass "mxguard exited after the drain"
    assert_quick_exit mxguard
fi
assert_file_grep "the log says it drained" "$TB/mxguard.log" 'drained: all sessions finished'

# a second SIGTERM: the drain's deadline is now. The session in flight is closed (its client
# gets no 250, so the message stays in the client's queue) and mxguard exits at once, through
# the same stop path (the sanitizer build checks that nothing leaks on the way out).
tb_start_mxguard -n mxguard2
pid2=$(pid_of mxguard2)
slow_txn slow2
kill -TERM "$pid2"
sleep 0.3
assert_eq "one SIGTERM: mxguard waits for the transaction in flight" 0 "$(kill -0 "$pid2" 2>/dev/null; echo $?)"
kill -TERM "$pid2"
if ! wait_exit "$pid2" 3; then
    fail "mxguard still runs 3 s after a second SIGTERM (the MX holds the dot 5 s)"
else
    pass "a second SIGTERM: mxguard exited before the transaction in flight ended"
    assert_quick_exit mxguard2
fi
wait "$bg"
dot2=$(cat "$TB/slow2.dot")
if [[ "$dot2" == 250* ]]; then fail "the client of the closed session got a 250 ($dot2)"
else pass "the client of the closed session got no 250 (${dot2:-connection closed})"; fi
assert_file_grep "the log says why" "$TB/mxguard2.log" 'again: closing all sessions and deliveries now'
assert_file_grep "... and it still stopped through the drain" "$TB/mxguard2.log" 'drained: all sessions finished'
assert_file_grep "... to the end of main (a clean exit, not a crash)" "$TB/mxguard2.log" 'main: stopped$'
tb_finish
