#!/usr/bin/env bash
# t_security.sh — attacks on the relay (docs/ARCHITECTURE.md §Hostile peers):
# 1. no open relay: clients outside server.allow_networks (127.0.70.0/25: .128, .200, 127.0.0.1)
#    get 554 5.7.1 and nothing else, also when they pipeline a whole transaction before the
#    banner; .127 (the last address inside) is served; commands out of order (RCPT/DATA without
#    MAIL, after RSET), address literals and source routes never reach the wrong MX.
# 2. STARTTLS command injection (CVE-2011-0411 class). Upstream: an MX that sends a fake reply
#    in the same TCP segment as "220 Ready to start TLS" (opportunistic and DANE destinations):
#    mxguard discards it (logged), the client sees only the real replies, the message arrives
#    once over TLS; injected bytes arriving during the handshake make it fail safely (DANE: 4xx,
#    no MAIL, no plaintext). Inbound without server.tls_cert_file: STARTTLS is not offered,
#    gets 502, and commands pipelined behind it are handled as plain commands (with a
#    certificate: t_inbound.sh).
# 3. a man in the middle that strips STARTTLS from the upstream EHLO ("XXXXXXXA"), under each
#    policy source: DANE, MTA-STS enforce and policy-list enforce refuse (451 4.7.x, no MAIL
#    reaches the MX); opportunistic delivers in plaintext and logs it.
# After all of it: mxguard alive, its open fds back to the baseline.
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

tb_init
SECONDS=0
tb_start_dns
tb_start_nginx
tb_list_keys

INJ='250-XINJECTED fake capability\r\n250 2.1.5 injected-reply\r\n'
# example.test: MX 10 mx1 (injects a fake reply after its 220 to STARTTLS), MX 20 mx2
tb_start_mx mx1 127.0.70.11 --inject-after-starttls "$INJ"
# mx2: a STARTTLS-stripping path; only MX of other.test (policy list enforce) and the live MX
# of fallback.test (no policy: opportunistic)
tb_start_mx mx2 127.0.70.12 --strip-starttls
tb_start_mx dane-ee 127.0.70.21 --strip-starttls                         # DANE 3 1 1
tb_start_mx --chain dane-ta 127.0.70.22 --inject-after-starttls "$INJ"   # DANE 2 1 1
tb_start_mx dane-cname 127.0.70.33 --inject-after-starttls "$INJ" --inject-delay 0.3
tb_start_mx sts-enforce 127.0.70.40 --strip-starttls                     # MTA-STS enforce

now=$(date +%s)
cat >"$TB/list.json" <<JSON
{
  "timestamp": "$(date -u -d "@$((now - 60))" +%Y-%m-%dT%H:%M:%S+00:00)",
  "expires": $((now + 86400)),
  "version": "0.1",
  "author": "mxguard t_security",
  "pinsets": {},
  "policy-aliases": {},
  "policies": {"other.test": {"mode": "enforce", "mxs": ["mx2.example.test"]}}
}
JSON
tb_list_sign "$TB/list.json"
tb_list_keys_stop
tb_write_config "$(tb_sts_config)" \
    "policy_list: { file = \"$TB/list.json\"; keyring = \"$TB/keyring.gpg\"; };"
tb_start_mxguard
sleep 0.5 # the list is loaded right after start-up

MX1=$TB/spool/mx1
MX2=$TB/spool/mx2

# mail_count NAME — MAIL commands MX server NAME received so far
mail_count() {
    local n
    n=$(grep -c '< MAIL FROM' "$TB/$1.log" 2>/dev/null)
    echo $((n))
}

# raw_session NAME SOURCE BYTES — connect from SOURCE, send BYTES (Python escapes) at once
# without waiting for the banner, print everything received until the server closes (at
# most 5 s) to $TB/NAME.raw; RAW_CLOSED=1 if the server closed the connection.
raw_session() {
    "$PYTHON" - "$TB_MXG_IP" "$TB_MXG_PORT" "$2" "$3" >"$TB/$1.raw" 2>&1 <<'PY'
import codecs, socket, sys, time
ip, port, src, data = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
s = socket.create_connection((ip, port), timeout=5, source_address=(src, 0))
try:
    s.sendall(codecs.decode(data, "unicode_escape").encode("latin-1"))
except OSError as e:
    print("# send: %s" % e)
got, closed, t0 = b"", False, time.time()
while time.time() - t0 < 5:
    try:
        c = s.recv(65536)
    except socket.timeout:
        break
    except OSError as e:
        print("# recv: %s" % e)
        closed = True
        break
    if not c:
        closed = True
        break
    got += c
sys.stdout.write(got.decode("latin-1"))
print("# %s" % ("CLOSED" if closed else "OPEN"))
PY
    RAW_CLOSED=0
    grep -q '^# CLOSED' "$TB/$1.raw" && RAW_CLOSED=1
    echo "# $1: $(grep -c '^[0-9][0-9][0-9][ -]' "$TB/$1.raw") reply line(s), closed=$RAW_CLOSED"
}

MXG_PID=$(tb_pid mxguard)
tb_make_message warm --to a@example.test --subject "warm-up" --id warm-1
swaks_send warm --to a@example.test --no-data-fixup --data "@$TB/warm.wire"
assert_reply "warm-up message relayed" "$SW_DOT" "250"
{ cat "$TB/warm.wire"; printf '\r\n'; } >"$TB/warm.data" # for smtp_chat: ends with CRLF.CRLF
sleep 0.5
FD0=$(tb_fds mxguard)
echo "# mxguard pid $MXG_PID: $FD0 open fds after the warm-up"

# ================================================================ 1. no open relay
echo "# --- 1. no open relay"
for src in 127.0.70.200 127.0.70.128 127.0.0.1; do
    SW_SOURCE=$src swaks_send "out-$src" --to "a@example.test" --no-data-fixup --data "@$TB/warm.wire"
    assert_reply "client $src (outside 127.0.70.0/25): banner 554 5.7.1" "$SW_BANNER" "554 5.7.1"
    assert_eq "client $src: no other reply at all (codes: $SW_CODES)" "554" "$SW_CODES"
done
raw_session outpipe 127.0.70.200 \
    'EHLO evil.test\r\nMAIL FROM:<e@evil.test>\r\nRCPT TO:<a@example.test>\r\nDATA\r\nSubject: relayed?\r\n\r\nspam\r\n.\r\nQUIT\r\n'
assert_eq "outsider pipelining a whole transaction before the banner: only 554 5.7.1" \
    "554 5.7.1" "$(grep -o '^[0-9][0-9][0-9][ -][0-9.]*' "$TB/outpipe.raw" | tr '\n' ' ' | sed 's/ $//')"
assert_eq "outsider: connection closed by mxguard" 1 "$RAW_CLOSED"
SW_SOURCE=127.0.70.127 swaks_send in127 --to a@example.test --no-data-fixup --data "@$TB/warm.wire"
assert_reply "client 127.0.70.127 (last address inside): served" "$SW_DOT" "250"
assert_file_count "$MX1" 2 "mx1: only the insiders' messages (warm-up, .127)"
assert_eq "the outsiders' attempts reached no MX (MAIL commands at mx1, mx2)" "2 0" \
    "$(mail_count mx1) $(mail_count mx2)"
assert_log "the refusal is logged" 0 'rejected client 127\.0\.70\.200: not in server.allow_networks'

smtp_chat order "EHLO client.test" "RCPT TO:<a@example.test>" "DATA" \
    "MAIL FROM:<sender@client.test>" "RSET" "RCPT TO:<a@example.test>" "DATA" \
    "MAIL FROM:<sender@client.test>" "RCPT TO:<a@[127.0.70.11]>" "RCPT TO:<@mx1.example.test:b@other.test>" \
    "RCPT TO:<c@plain.test" "QUIT"
assert_reply "RCPT without MAIL: 503 5.5.1" "$(chat_reply order RCPT 1)" "503 5.5.1"
assert_reply "DATA without MAIL: 503 5.5.1" "$(chat_reply order DATA 1)" "503 5.5.1"
assert_reply "RCPT after RSET: 503 5.5.1" "$(chat_reply order RCPT 2)" "503 5.5.1"
assert_reply "DATA after RSET: 503 5.5.1" "$(chat_reply order DATA 2)" "503 5.5.1"
assert_reply "address literal a@[127.0.70.11] (would bypass every policy): 553 5.1.2" \
    "$(chat_reply order RCPT 3)" "553 5.1.2"
r=$(chat_reply order RCPT 4)
# a source route is ignored (RFC 5321 §3.6.1, §C): the recipient is b@other.test, whose MX is mx2
# (policy list enforce + stripped STARTTLS: refused) — it must never go to mx1
assert_match "source route @mx1.example.test:b@other.test: not relayed via mx1 ($r)" "$r" '^(4|5)[0-9][0-9] '
assert_reply "unterminated path: 501" "$(chat_reply order RCPT 5)" "501"
assert_eq "mx1 got no MAIL from the out-of-order session" 2 "$(mail_count mx1)"

# ================================================================ 2. STARTTLS injection
echo "# --- 2. STARTTLS command injection"
MARK=$(tb_log_mark)
tb_make_message inj --to a@example.test --subject "injection" --id inj-1
swaks_send inj --to a@example.test --no-data-fixup --data "@$TB/inj.wire"
assert_file_grep "mx1 did inject bytes in the 220's segment" "$TB/mx1.log" 'inject: [0-9]+ bytes in the same segment'
assert_reply "upstream injection (opportunistic): RCPT 250" "$SW_RCPT" "250 2.1.5"
assert_reply "upstream injection: final 250" "$SW_DOT" "250"
assert_not_contains "the client never sees the injected reply" "$(cat "$TB/inj.replies")" "injected"
assert_log "mxguard logs the discarded bytes" "$MARK" 'mx1\.example\.test.* sent [0-9]+ bytes after 220 to STARTTLS; discarded'
assert_file_count "$MX1" 3 "injection: delivered once to mx1"
m=$(spool_last "$MX1")
[ -n "$m" ] && assert_match "injection: delivered over TLS" "$(json_get "$m.json" tls.version)" '^TLSv1\.[23]$'
[ -n "$m" ] && assert_eq "injection: message intact" "received+same" "$(eml_compare "$m.eml" "$TB/inj.msg")"
assert_eq "injection: nothing went to mx2 (no fallback)" 0 "$(mail_count mx2)"
assert_no_log "injection: no plaintext retry" "$MARK" 'retrying once in plaintext'

MARK=$(tb_log_mark)
tb_make_message injd --to a@dane-ta.test --subject "injection dane" --id injd-1
swaks_send injd --to a@dane-ta.test --no-data-fixup --data "@$TB/injd.wire"
assert_reply "upstream injection (DANE-TA): final 250" "$SW_DOT" "250"
assert_not_contains "DANE: the client never sees the injected reply" "$(cat "$TB/injd.replies")" "injected"
assert_log "DANE: injected bytes discarded" "$MARK" 'sent [0-9]+ bytes after 220 to STARTTLS; discarded'
assert_log "DANE: TLSA 2 1 1 still verified" "$MARK" 'TLSA 2 1 1 matched'
assert_file_count "$TB/spool/dane-ta" 1 "DANE injection: delivered once"

MARK=$(tb_log_mark)
swaks_send injlate --to a@dane-cname.test
assert_file_grep "dane-cname injected during the handshake" "$TB/dane-cname.log" 'inject: [0-9]+ bytes 0\.30 s after'
assert_reply "bytes injected during a DANE handshake: 451 4.7.x" "$SW_RCPT" "451 4.7."
assert_no_mail "DANE, injection during the handshake: no MAIL, no plaintext" dane-cname

# inbound: STARTTLS is not offered (no server.tls_cert_file); pipelined commands after it are
# plain commands
smtp_chat inb "EHLO client.test" \
    'raw:3:STARTTLS\r\nNOOP\r\nMAIL FROM:<sender@client.test>\r\n' "RCPT TO:<a@example.test>" "DATA" \
    "@$TB/warm.data" "QUIT"
# (with server.tls_cert_file set STARTTLS is offered: t_inbound.sh checks that the bytes
# pipelined behind it are discarded)
assert_not_contains "no server.tls_cert_file: EHLO does not offer STARTTLS" "$(grep '^EHLO' "$TB/inb.chat")" "STARTTLS"
assert_reply "inbound STARTTLS (not offered): 502" "$(chat_reply inb STARTTLS)" "502"
assert_reply "pipelined NOOP after it handled as a plain command" "$(chat_reply inb NOOP)" "250"
assert_reply "pipelined MAIL after it handled as a plain command" "$(chat_reply inb MAIL)" "250"
assert_reply "the transaction goes on: RCPT 250" "$(chat_reply inb RCPT)" "250"
assert_reply "the transaction goes on: final 250" "$(chat_reply inb DOT)" "250"
assert_file_count "$MX1" 4 "that message delivered once"

# ================================================================ 3. STARTTLS stripped
echo "# --- 3. STARTTLS stripped by a man in the middle"
MARK=$(tb_log_mark)
swaks_send stripdane --to a@dane-ee.test
assert_reply "DANE, STARTTLS stripped: 451 4.7.x" "$SW_RCPT" "451 4.7."
assert_contains "DANE, STARTTLS stripped: the reply names DANE" "$SW_RCPT" "DANE"
assert_no_mail "DANE, STARTTLS stripped: nothing sent in plaintext" dane-ee
assert_file_grep "dane-ee: mxguard did see the stripped EHLO" "$TB/dane-ee.log" '> 250-XXXXXXXA'

swaks_send stripsts --to a@sts-enforce.test
assert_reply "MTA-STS enforce, STARTTLS stripped: 451 4.7.x" "$SW_RCPT" "451 4.7."
assert_contains "MTA-STS enforce, STARTTLS stripped: the reply names MTA-STS" "$SW_RCPT" "MTA-STS"
assert_no_mail "MTA-STS enforce, STARTTLS stripped: nothing sent in plaintext" sts-enforce
assert_file_grep "sts-enforce: mxguard did see the stripped EHLO" "$TB/sts-enforce.log" '> 250-XXXXXXXA'

c2=$(grep -c 'connect from' "$TB/mx2.log")
swaks_send striplist --to a@other.test
assert_reply "policy list enforce, STARTTLS stripped: 451 4.7.x" "$SW_RCPT" "451 4.7."
assert_contains "policy list enforce: the reply names the list" "$SW_RCPT" "policy list"
assert_no_mail "policy list enforce, STARTTLS stripped: nothing sent in plaintext" mx2
assert_eq "policy list enforce: mx2 was contacted once (the refusal is the stripped EHLO's)" \
    $((c2 + 1)) "$(grep -c 'connect from' "$TB/mx2.log")"
assert_file_count "$MX2" 0 "mx2: nothing stored"

MARK=$(tb_log_mark)
tb_make_message opp --to a@fallback.test --subject "opportunistic, stripped" --id opp-1
swaks_send stripopp --to a@fallback.test --no-data-fixup --data "@$TB/opp.wire"
assert_reply "opportunistic, STARTTLS stripped: delivered" "$SW_DOT" "250"
assert_file_count "$MX2" 1 "opportunistic: mx2 got it"
m=$(spool_last "$MX2")
[ -n "$m" ] && assert_eq "opportunistic: in plaintext (json tls null)" null "$(json_get "$m.json" tls)"
[ -n "$m" ] && assert_eq "opportunistic: message intact" "received+same" "$(eml_compare "$m.eml" "$TB/opp.msg")"
assert_log "opportunistic: the log says plaintext" "$MARK" 'mx2\.example\.test.*offers no STARTTLS; delivering in plaintext'
assert_log "opportunistic: the transaction line says plaintext" "$MARK" 'domain=fallback\.test .*tls=plaintext'

# ================================================================ after all of it
if tb_alive mxguard && [ "$(tb_pid mxguard)" = "$MXG_PID" ]; then pass "mxguard still running (pid $MXG_PID)"
else fail "mxguard died"; fi
if tb_wait_fds mxguard "$FD0" 10; then pass "open fds back to the baseline ($TB_FDS <= $FD0)"
else fail "open fds: $TB_FDS, baseline $FD0: $(ls -l /proc/$MXG_PID/fd | tail -n +2 | awk '{print $NF}' | sort | uniq -c | sort -rn | head -5 | tr '\n' ';')"; fi

tb_finish
