#!/usr/bin/env bash
# t_log_info.sh — at log.level "info" the log is one line per transaction outcome (README,
# "Logs"): routine decisions (the MTA-STS lookup that finds no policy, the upstream
# connection's TLS details, a reused connection, a client's connect and its disconnect after
# QUIT) are debug. Three messages on three client sessions, the second and third over the
# parked upstream connection: three lines; one with STARTTLS and AUTH: one line too. A session
# without a transaction, with a refused command or without QUIT still gets its disconnect
# line at info.
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

tb_init
tb_start_dns
tb_start_mx mx1 127.0.70.11
tb_start_mx mx2 127.0.70.12
CERT=$TB/dns/certs/mxguard.test
echo "alice:$(openssl passwd -6 alice-pw)" >"$TB/users"
chmod 600 "$TB/users"
PLAIN_ALICE=$(printf '\0alice\0alice-pw' | base64 -w0)
tb_write_config "auth: { password_file = \"$TB/users\"; };"
sed -i 's/^  level = "debug";/  level = "info";/' "$TB/mxguard.conf"
sed -i "s|^  hostname = \"mxguard.test\";|&\n  tls_cert_file = \"$CERT.crt\";\n  tls_key_file = \"$CERT.key\";|" \
    "$TB/mxguard.conf"
assert_file_grep "the test config offers STARTTLS" "$TB/mxguard.conf" '^  tls_cert_file = '
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
# a session that relayed its message and said QUIT adds nothing: its connect and disconnect
# lines are debug, so the three sessions log three lines in all
for id in $ids; do
    assert_eq "session ${id%%.*}: exactly one info line (its transaction's)" 1 \
        "$(printf '%s\n' "$after" | grep -c " ${id%%.*}[.:]")"
done
assert_eq "three one-message sessions: three info lines in all" 3 \
    "$(printf '%s\n' "$after" | grep -c .)"

# a session with STARTTLS and AUTH: still one line, which names both
MARK=$(tb_log_mark)
swaks_send tlsauth --to r6@example.test --tls --auth PLAIN --auth-user alice \
    --auth-password alice-pw
assert_reply "STARTTLS + AUTH: final dot answered 250" "$SW_DOT" "250"
after=$(tb_log_since "$MARK")
assert_eq "STARTTLS + AUTH, one message: one info line" 1 "$(printf '%s\n' "$after" | grep -c .)"
assert_match "... the transaction's, with the client's TLS and user" "$after" \
    'smtp: S[0-9]+\.1: client=.* client_tls=TLSv1\.[23] auth=alice$'

# ... but the disconnect line stays at info when the session had more to say than its
# transactions: none at all, a refused command, no QUIT
MARK=$(tb_log_mark)
printf 'Subject: info\r\n\r\nhello\r\n.\r\n' >"$TB/small.wire"
smtp_chat notxn "EHLO client.test" "QUIT"
smtp_chat authnotxn "EHLO client.test" "STARTTLS" "EHLO client.test" "AUTH PLAIN $PLAIN_ALICE" \
    "QUIT"
assert_eq "AUTH over STARTTLS succeeded" 235 "$(chat_reply authnotxn AUTH | cut -c1-3)"
smtp_chat refused "EHLO client.test" "BOGUS" "MAIL FROM:<sender@client.test>" \
    "RCPT TO:<r4@example.test>" "DATA" "@$TB/small.wire" "QUIT"
assert_eq "the unknown command was refused" 500 "$(chat_reply refused BOGUS | cut -c1-3)"
assert_eq "... and the message after it relayed" 250 "$(chat_reply refused DOT | cut -c1-3)"
smtp_chat noquit "EHLO client.test" "MAIL FROM:<sender@client.test>" \
    "RCPT TO:<r5@example.test>" "DATA" "@$TB/small.wire"
assert_eq "the message of the session without QUIT relayed" 250 \
    "$(chat_reply noquit DOT | cut -c1-3)"
for i in $(seq 50); do
    [ "$(tb_log_since "$MARK" | grep -c 'disconnect from')" -ge 4 ] && break
    sleep 0.1
done
after=$(tb_log_since "$MARK")
assert_eq "a session without a transaction: its disconnect line at info" 1 \
    "$(printf '%s\n' "$after" | grep -Ec ' info smtp: S[0-9]+: disconnect from [^ ]+ \(quit\): 0 delivered, 0 failed, [0-9.]+s$')"
assert_eq "... one that authenticated names the client's TLS and user" 1 \
    "$(printf '%s\n' "$after" | grep -Ec ' info smtp: S[0-9]+: disconnect from [^ ]+ \(quit\): 0 delivered, 0 failed, [0-9.]+s client_tls=TLSv1\.[23] auth=alice$')"
assert_eq "a session with a refused command: its disconnect line at info" 1 \
    "$(printf '%s\n' "$after" | grep -Ec ' info smtp: S[0-9]+: disconnect from [^ ]+ \(quit\): 1 delivered, 0 failed')"
assert_eq "a session that ended without QUIT: its disconnect line at info" 1 \
    "$(printf '%s\n' "$after" | grep -Ec ' info smtp: S[0-9]+: disconnect from [^ ]+ \(client closed\): 1 delivered')"
assert_eq "... besides the two transaction lines, and nothing else" 6 \
    "$(printf '%s\n' "$after" | grep -c .)"

tb_finish
