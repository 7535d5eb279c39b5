#!/usr/bin/env bash
# t_conncache_tlsfail.sh — upstream.cache_busy_wait never waits for a connection that will not
# be cached (proxy/outbound/conncache.h mxg_conncache_no_park). badtls.test's MX fails every
# TLS handshake; with no policy each transaction retries in plaintext, and that connection is
# never parked (nor one ending with QUIT). Several client sessions at once send to it with a
# long busy wait (2 s): every message is delivered in plaintext and no transaction takes
# anywhere near the busy wait (a leg that waited for another session's plaintext connection
# would wait until it closed — after its QUIT — or, with the sessions overlapping, the whole
# 2 s): 1. while another session's plaintext transaction runs (the MX answers the dot after
# 5 s); 2. while another session's connection waits for the reply to QUIT (the MX never
# answers; mxguard gives up after 5 s). Judged from the log (the longest wait for a busy
# connection) and from the client (the longest transaction).
# Sizes: MXG_TF_SESSIONS, MXG_TF_MESSAGES (per session; phase 2).
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

SESSIONS=${MXG_TF_SESSIONS:-4}
MESSAGES=${MXG_TF_MESSAGES:-4}
BUSY_WAIT_MS=2000

tb_init
tb_start_dns
tb_start_mx badtls 127.0.70.15 --bad-tls --fault-file "$TB/badtls.fault"
tb_write_config
export MXGUARD_UPSTREAM_CACHE_IDLE=30s
export MXGUARD_UPSTREAM_CACHE_BUSY_WAIT=${BUSY_WAIT_MS}ms
export MXGUARD_LIMITS_DESTINATION_CONCURRENCY=200 # see 2.
tb_start_mxguard

load() { # load TAG SESSIONS MESSAGES LOCALPART — SESSIONS concurrent client sessions, MESSAGES
    #    transactions each to LOCALPARTkK-I@badtls.test; prints "delivered max_ms" (the time from
    #    MAIL to the reply to the dot, per transaction; the list goes to $TB/load-TAG.out)
    "$PYTHON" - "$TB_MXG_IP" "$TB_MXG_PORT" "$TB_CLIENT_IP" "$2" "$3" "$4" \
        >"$TB/load-$1.out" 2>&1 <<'PY'
import smtplib, sys, threading, time
ip, port, src, sessions, messages, lp = sys.argv[1], int(sys.argv[2]), sys.argv[3], \
    int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
ms, bad = [], []
def run(k):
    try:
        s = smtplib.SMTP(ip, port, source_address=(src, 0), timeout=60)
        s.ehlo("client.test")
        for i in range(messages):
            to = "%sk%d-%d@badtls.test" % (lp, k, i)
            msg = "From: a@client.test\r\nTo: %s\r\nSubject: tf %d %d\r\n\r\nbody\r\n" % (to, k, i)
            t0 = time.monotonic()
            try:
                s.sendmail("a@client.test", [to], msg)
                ms.append((time.monotonic() - t0) * 1000)
            except smtplib.SMTPException as e:
                bad.append("%s: %r" % (to, e))
        s.quit()
    except Exception as e:
        bad.append("session %d: %r" % (k, e))
t = [threading.Thread(target=run, args=(k,)) for k in range(sessions)]
for x in t: x.start()
for x in t: x.join()
for b in bad[:10]: print("# refused: " + b)
ms.sort()
print("# per transaction (ms): " + " ".join("%.0f" % v for v in ms))
print(len(ms), int(ms[-1]) if ms else -1)
PY
    grep '^#' "$TB/load-$1.out" >&2
    tail -n 1 "$TB/load-$1.out"
}
longest_wait() { # longest_wait MARK — the longest wait for a busy connection in the log since MARK
    tb_log_since "$1" | sed -n 's/.*wait for a busy connection over after \([0-9]*\)ms.*/\1/p' |
        sort -n | tail -n 1 | grep . || echo 0
}
HALF=$((BUSY_WAIT_MS / 2))

# 1. the plaintext retry: each transaction holds its plaintext connection 5 s (slowdata: the MX
#    answers the dot after 5 s); the other sessions' legs, of the same requirement, must not
#    wait for it (it is never parked), so each transaction takes 5 s, not 5 s + the busy wait
mark=$(tb_log_mark)
read -r delivered max_ms <<<"$(load slow 3 1 slowdata-)"
w=$(longest_wait "$mark")
echo "# 1. 3 sessions x 1 slow message: $delivered delivered; longest transaction ${max_ms}ms;" \
    "longest wait for a busy connection ${w}ms (cache_busy_wait ${BUSY_WAIT_MS}ms)"
assert_eq "1: all 3 messages accepted" 3 "$delivered"
assert_eq "1: no leg waited for a plaintext retry's connection (longest wait ${w}ms < ${HALF}ms)" \
    yes "$([ "$w" -lt "$HALF" ] && echo yes || echo no)"
assert_eq "1: no transaction took 5 s + the busy wait (${max_ms}ms < $((5000 + HALF))ms)" yes \
    "$([ "$max_ms" -ge 0 ] && [ "$max_ms" -lt $((5000 + HALF)) ] && echo yes || echo no)"

# 2. QUIT: the MX never answers QUIT (mxguard gives up after 5 s), so a connection that was not
#    parked stays open for 5 s after its transaction; nobody may wait for it. (SESSIONS x
#    MESSAGES of them at once must stay under limits.destination_concurrency: past it a leg
#    rightly waits for a slot until a QUIT times out; the limit is 200 here, as with
#    server.workers > 1 each worker keeps floor(limit / workers) and the sessions need not
#    spread evenly)
tb_mx_fault badtls "quit hang"
mark=$(tb_log_mark)
read -r delivered max_ms <<<"$(load quit "$SESSIONS" "$MESSAGES" q)"
w=$(longest_wait "$mark")
TOTAL=$((SESSIONS * MESSAGES))
echo "# 2. $SESSIONS sessions x $MESSAGES messages, QUIT unanswered: $delivered delivered;" \
    "longest transaction ${max_ms}ms; longest wait for a busy connection ${w}ms"
assert_eq "2: all $TOTAL messages accepted" "$TOTAL" "$delivered"
assert_eq "2: no leg waited for a connection in QUIT (longest wait ${w}ms < ${HALF}ms)" yes \
    "$([ "$w" -lt "$HALF" ] && echo yes || echo no)"
assert_eq "2: no transaction near the busy wait (${max_ms}ms < ${HALF}ms)" yes \
    "$([ "$max_ms" -ge 0 ] && [ "$max_ms" -lt "$HALF" ] && echo yes || echo no)"

TOTAL=$((TOTAL + 3))
assert_eq "all $TOTAL messages at badtls.test's MX" "$TOTAL" "$(spool_count "$TB/spool/badtls")"
m=$(spool_last "$TB/spool/badtls")
[ -n "$m" ] && assert_eq "delivered in plaintext (json tls null)" null "$(json_get "$m.json" tls)"
assert_eq "every transaction: a failed TLS connection and a plaintext one" $((2 * TOTAL)) \
    "$(wc -l <"$TB/spool/badtls/connections.log")"
tb_mx_fault badtls none

tb_finish
