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

for i in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$pid" 2>/dev/null; then
    fail "mxguard did not exit after the last session ended"
else
    wait "$pid" 2>/dev/null
    pass "mxguard exited after the drain"
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
for i in $(seq 30); do kill -0 "$pid2" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$pid2" 2>/dev/null; then
    fail "mxguard still runs 3 s after a second SIGTERM (the MX holds the dot 5 s)"
else
    pass "a second SIGTERM: mxguard exited before the transaction in flight ended"
fi
wait "$bg"
dot2=$(cat "$TB/slow2.dot")
if [[ "$dot2" == 250* ]]; then fail "the client of the closed session got a 250 ($dot2)"
else pass "the client of the closed session got no 250 (${dot2:-connection closed})"; fi
assert_file_grep "the log says why" "$TB/mxguard2.log" 'again: closing all sessions and deliveries now'
assert_file_grep "... and it still stopped through the drain" "$TB/mxguard2.log" 'drained: all sessions finished'
assert_file_grep "... to the end of main (a clean exit, not a crash)" "$TB/mxguard2.log" 'main: stopped$'
tb_finish
