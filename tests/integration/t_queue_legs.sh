#!/usr/bin/env bash
# t_queue_legs.sh — a queued message to more destination domains than limits.legs
# (proxy/outbound/queue_runner.h): the queue runner runs at most limits.legs groups (upstream legs)
# of one spool entry at once; the rest start as those answer, in the same attempt (never failed,
# never deferred for waiting). Three domains on one MX (example.test, implicit.test, insecure.test
# -> 127.0.70.11) with limits.legs = 2 and an MX that holds each final reply for 5 s (slowdata*):
# the MX sees at most 2 connections at once (mxserver.py's max_concurrency), all three messages
# arrive, in one attempt, and the entry is gone.
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

tb_init
tb_start_dns
tb_start_mx mx1 127.0.70.11
SPOOL=$TB/state/spool
QPORT=10026
CONF=$TB/mxguard.conf

tb_write_config 'limits: { legs = 2; };' \
    'queue: { lifetime = "1h"; retry_backoff = "60s"; retry_backoff_max = "60s"; scan_interval = "1s"; };'
sed -i "s/hostname = \"mxguard.test\";/hostname = \"mxguard.test\";\n  queue_listen = [\"$TB_MXG_IP:$QPORT\"];/" "$CONF"
tb_start_mxguard
spool_entries() { find "$SPOOL" -maxdepth 1 -name '*.env' 2>/dev/null | wc -l; }

mark=$(tb_log_mark)
RCPTS=slowdata1@example.test,slowdata2@implicit.test,slowdata3@insecure.test
tb_make_message three --to "$RCPTS" --subject "three domains" --id legs-3
SW_SERVER=$TB_MXG_IP:$QPORT swaks_send three --to "$RCPTS" --no-data-fixup --data "@$TB/three.wire"
assert_reply "queue mode: 250 after the dot (spooled)" "$SW_DOT" "250"
t0=$(date +%s)
wait_spool_count "$TB/spool/mx1" 3 30
t1=$(date +%s)
assert_file_count "$TB/spool/mx1" 3 "mx1 got the message for all three domains"
assert_eq "never more than limits.legs = 2 connections at once for the entry" 2 \
    "$(cat "$TB/spool/mx1/max_concurrency" 2>/dev/null || echo 0)"
assert_match "the third domain waited for a free leg (two rounds of 5 s)" "$((t1 - t0))" '^(9|1[0-9]|2[0-9])$'
for i in $(seq 50); do [ "$(spool_entries)" -eq 0 ] && break; sleep 0.1; done
assert_eq "the spool entry is settled and gone" 0 "$(spool_entries)"
log=$(tb_log_since "$mark")
assert_eq "three delivery attempts logged, all in attempt 1" 3 \
    "$(grep -cE 'queue: .*: attempt 1: .*accepted=1/1' <<<"$log")"
assert_not_contains "nothing deferred" "$log" "deferred, next attempt"

tb_finish
