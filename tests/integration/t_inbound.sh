#!/usr/bin/env bash
# t_inbound.sh — inbound security (docs/ARCHITECTURE.md §Hostile peers) with real clients (swaks,
# openssl s_client, raw sockets) against mxguard with the test-bed CA's certificate for
# mxguard.test and a password file (alice: SHA-512 crypt from `openssl passwd -6`, bob: yescrypt):
#  1. plaintext: STARTTLS offered, AUTH not; AUTH PLAIN in plaintext → 538 5.7.11; a client
#     without requirement still relays in plaintext ("with ESMTP").
#  2. the certificate verifies against the test CA for mxguard.test (openssl s_client).
#  3. right password over STARTTLS relays (PLAIN and LOGIN): the MX got the message once, its
#     Received: says "with ESMTPSA" and names the TLS version and cipher; no password in the log.
#  4. wrong password: 535 after auth.failure_delay; the address's 3rd failure → 421 4.7.0 and
#     closed; a new connection from it gets 454 4.7.0 even with the right password while another
#     address authenticates; after the lockout the right password works again.
#  5. STARTTLS command injection: "STARTTLS\r\nMAIL FROM:<...>\r\n" in one write: the MAIL is
#     discarded (logged); after the handshake MAIL without a new EHLO → 503, RCPT → 503;
#     garbage instead of a ClientHello closes the session, mxguard lives on.
#  6. require-TLS network (127.0.70.101): MAIL without STARTTLS → 530 5.7.0, with it → relayed.
#  7. require-AUTH network (127.0.70.102): MAIL after STARTTLS without AUTH → 530 5.7.0, with
#     AUTH → relayed; a client outside server.allow_networks (127.0.70.200, listed in
#     require_auth_networks too) gets 554 5.7.1 first.
#  8. SIGHUP re-reads the password file: the new password works, the old one no longer does.
#  9. `mxguard config check -v` explains the order; a broken password file is reported with its
#     line number.
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

tb_init
tb_start_dns
tb_start_mx mx1 127.0.70.11

MX1=$TB/spool/mx1
CERT=$TB/dns/certs/mxguard.test
TLS_CLIENT=127.0.70.101   # server.require_tls_networks
AUTH_CLIENT=127.0.70.102  # server.require_auth_networks
BRUTE=127.0.70.103        # the brute-force client
OTHER=127.0.70.104

b64() { printf '%b' "$1" | base64 -w0; }
PLAIN_ALICE=$(b64 '\0alice\0alice-pw')
PLAIN_WRONG=$(b64 '\0alice\0guess')

write_users() { # write_users ALICE_PASSWORD
    {
        echo "# t_inbound users"
        echo "alice:$(openssl passwd -6 "$1")"
        echo "bob:$("$PYTHON" -W ignore -c 'import crypt, sys; print(crypt.crypt(sys.argv[1], "$y$j9T$pFXcHrLd0Qqt9WFMVZHYc0"))' bob-pw)"
    } >"$TB/users.new"
    chmod 600 "$TB/users.new"
    mv "$TB/users.new" "$TB/users"
}
write_users alice-pw
grep -q '^bob:\$y\$' "$TB/users" || tb_die "no yescrypt hash for bob"

tb_write_config \
    "auth: { password_file = \"$TB/users\"; max_failures = 3; max_user_failures = 0;
             failure_window = \"1m\"; lockout = \"2s\"; failure_delay = \"300ms\"; };"
sed -i "s|^  hostname = \"mxguard.test\";|&\n  tls_cert_file = \"$CERT.crt\";\n  tls_key_file = \"$CERT.key\";\n  require_tls_networks = [\"$TLS_CLIENT/32\"];\n  require_auth_networks = [\"$AUTH_CLIENT/32\", \"127.0.70.200/32\"];|" \
    "$TB/mxguard.conf"
grep -q tls_cert_file "$TB/mxguard.conf" || tb_die "could not edit the configuration"

# ================================================================ 9. config check
echo "# --- config check"
out=$("$MXG_BIN" config check -v -c "$TB/mxguard.conf" 2>&1)
assert_contains "config check: OK" "$out" "configuration OK"
assert_match "config check -v: the rules in order" "$(tr '\n' ' ' <<<"$out")" \
    '1\. server\.allow_networks.*2\. server\.require_auth_networks.*127\.0\.70\.102/32 +AUTH required.*3\. server\.require_tls_networks.*127\.0\.70\.101/32 +STARTTLS required.*4\. every other'
assert_match "config check -v: the outsider's rule never applies" "$out" \
    '127\.0\.70\.200/32 +AUTH required .*outside server\.allow_networks'
assert_contains "config check -v: STARTTLS offered" "$out" "# STARTTLS: offered; certificate $CERT.crt"
assert_contains "config check -v: the throttle" "$out" "3 from one address"
cp "$TB/users" "$TB/users.bad"
echo "carol:plaintext-password" >>"$TB/users.bad"
sed "s|$TB/users\"|$TB/users.bad\"|" "$TB/mxguard.conf" >"$TB/bad.conf"
out=$("$MXG_BIN" config check -c "$TB/bad.conf" 2>&1)
rc=$?
assert_eq "config check: a broken password file fails" 1 "$rc"
assert_contains "config check: the error names file and line" "$out" "$TB/users.bad:4: not a crypt(3) hash"

tb_start_mxguard
MARK0=$(tb_log_mark)

# ================================================================ 1. plaintext
echo "# --- 1. plaintext"
smtp_chat plain "EHLO client.test" "AUTH PLAIN $PLAIN_ALICE" "QUIT"
ehlo=$(grep '^EHLO' "$TB/plain.chat")
assert_contains "plaintext EHLO offers STARTTLS" "$ehlo" "STARTTLS"
assert_not_contains "plaintext EHLO does not offer AUTH" "$ehlo" "AUTH"
assert_reply "AUTH over plaintext refused" "$(chat_reply plain AUTH)" "538 5.7.11"

swaks_send plainmail --to a@example.test
assert_reply "no requirement for 127.0.70.100: relayed in plaintext" "$SW_DOT" "250"
m=$(spool_last "$MX1")
assert_file_grep "Received: says ESMTP (no S, no A)" "$m.eml" 'with ESMTP id '
assert_file_count "$MX1" 1

# ================================================================ 2. the certificate
echo "# --- 2. certificate"
sc=$(timeout 20 openssl s_client -starttls smtp -connect "$TB_MXG_IP:$TB_MXG_PORT" \
    -bind "$TB_CLIENT_IP:0" -CAfile "$TB/dns/certs/ca.crt" -verify_hostname mxguard.test \
    -verify_return_error -brief </dev/null 2>&1)
assert_contains "STARTTLS certificate verifies for mxguard.test against the test CA" "$sc" \
    "Verification: OK"
assert_contains "TLS 1.3 by default" "$sc" "Protocol version: TLSv1.3"

# ================================================================ 3. right password
echo "# --- 3. AUTH relays"
MARK=$(tb_log_mark)
swaks_send authplain --to a@example.test --tls --auth PLAIN --auth-user alice \
    --auth-password alice-pw
assert_contains "AUTH PLAIN: 235" "$SW_CODES" "235"
assert_reply "AUTH PLAIN over TLS: relayed" "$SW_DOT" "250"
assert_file_count "$MX1" 2 "the MX received the authenticated message"
m=$(spool_last "$MX1")
assert_file_grep "Received: says ESMTPSA" "$m.eml" 'with ESMTPSA id '
assert_file_grep "Received: names the client's TLS version and cipher" "$m.eml" \
    '\(using TLSv1\.3 with cipher TLS_[A-Z0-9_]+\)'
assert_eq "envelope sender at the MX" "sender@client.test" "$(json_get "$m.json" mail_from)"
assert_log "log: alice authenticated" "$MARK" "AUTH PLAIN: user 'alice' authenticated from 127\.0\.70\.100 over TLSv1\.3"
assert_log "transaction log line names the client TLS and user" "$MARK" 'reply="250.* client_tls=TLSv1\.3 auth=alice'
swaks_send authlogin --to a@example.test --tls --auth LOGIN --auth-user bob --auth-password bob-pw
assert_contains "AUTH LOGIN (yescrypt): 235" "$SW_CODES" "235"
assert_reply "AUTH LOGIN: relayed" "$SW_DOT" "250"
assert_file_count "$MX1" 3
assert_no_log "no password in the log" "$MARK0" "alice-pw|bob-pw|$PLAIN_ALICE|Ym9iLXB3"

# ================================================================ 4. wrong password
echo "# --- 4. brute force"
MARK=$(tb_log_mark)
t0=$(date +%s%N)
smtp_chat brute1 --source "$BRUTE" "EHLO client.test" "STARTTLS" "EHLO client.test" \
    "AUTH PLAIN $PLAIN_WRONG" "AUTH PLAIN $PLAIN_WRONG" "AUTH PLAIN $PLAIN_WRONG" "NOOP"
t1=$(date +%s%N)
assert_reply "1st wrong password: 535 5.7.8" "$(chat_reply brute1 AUTH 1)" "535 5.7.8"
assert_reply "2nd wrong password: 535 5.7.8" "$(chat_reply brute1 AUTH 2)" "535 5.7.8"
assert_reply "3rd wrong password: 421 4.7.0" "$(chat_reply brute1 AUTH 3)" "421 4.7.0"
assert_file_grep "then the connection is closed" "$TB/brute1.chat" '^CLOSED'
ms=$(((t1 - t0) / 1000000))
if [ "$ms" -ge 600 ]; then pass "two 535 replies held back by auth.failure_delay (${ms} ms)"
else fail "two 535 replies came after ${ms} ms, expected >= 600 ms (failure_delay 300ms)"; fi
assert_log "log: the address is locked out" "$MARK" "client $BRUTE locked out of AUTH for 2s after 3 failures"
smtp_chat brute2 --source "$BRUTE" "EHLO client.test" "STARTTLS" "EHLO client.test" \
    "AUTH PLAIN $PLAIN_ALICE" "QUIT"
assert_reply "locked address: right password refused with 454 4.7.0" "$(chat_reply brute2 AUTH)" "454 4.7.0"
swaks_send other --to a@example.test --tls --auth PLAIN --auth-user alice \
    --auth-password alice-pw
assert_contains "another address authenticates meanwhile" "$SW_CODES" "235"
SW_SOURCE=$BRUTE swaks_send brute3 --to a@example.test --tls --auth PLAIN --auth-user alice \
    --auth-password alice-pw
assert_not_contains "swaks from the locked address: no 235" "$SW_CODES" "235"
sleep 2.2
SW_SOURCE=$BRUTE swaks_send brute4 --to a@example.test --tls --auth PLAIN --auth-user alice \
    --auth-password alice-pw
assert_contains "after auth.lockout: the right password works again" "$SW_CODES" "235"
assert_reply "... and relays" "$SW_DOT" "250"
assert_file_count "$MX1" 5

# ================================================================ 5. injection
echo "# --- 5. STARTTLS command injection"
MARK=$(tb_log_mark)
smtp_chat inj "EHLO client.test" 'raw:1:STARTTLS\r\nMAIL FROM:<injected@evil.test>\r\n' \
    "MAIL FROM:<sender@client.test>" "EHLO client.test" "RCPT TO:<a@example.test>" "QUIT"
assert_reply "STARTTLS: 220" "$(chat_reply inj STARTTLS)" "220 2.0.0"
assert_file_grep "TLS handshake done" "$TB/inj.chat" '^TLS	ok	TLSv1\.3'
assert_reply "after TLS, MAIL without a new EHLO: 503" "$(chat_reply inj MAIL)" "503"
ehlo=$(grep '^EHLO' "$TB/inj.chat" | tail -n 1)
assert_not_contains "EHLO after TLS no longer offers STARTTLS" "$ehlo" "STARTTLS"
assert_contains "EHLO after TLS offers AUTH" "$ehlo" "AUTH PLAIN LOGIN"
assert_reply "the injected MAIL was never executed: RCPT gets 503" "$(chat_reply inj RCPT)" "503"
assert_log "log: the pipelined octets were discarded" "$MARK" \
    "client 127\.0\.70\.100 sent [0-9]+ octets after STARTTLS before the TLS handshake; discarded"
assert_no_log "the injected sender never reached a transaction" "$MARK" "injected@evil"
"$PYTHON" - "$TB_MXG_IP" "$TB_MXG_PORT" "$TB_CLIENT_IP" >"$TB/garbage.out" 2>&1 <<'PY'
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10, source_address=(sys.argv[3], 0))
f = s.makefile("rb")
def reply():
    while True:
        l = f.readline().decode("latin-1")
        if len(l) < 4 or l[3] != "-":
            return l.strip()
reply()
s.sendall(b"EHLO client.test\r\n"); reply()
s.sendall(b"STARTTLS\r\n"); print("STARTTLS", reply())
s.sendall(b"MAIL FROM:<plain@evil.test>\r\n" * 20)
data = b""
try:
    while True:
        chunk = s.recv(4096)
        if not chunk:
            print("CLOSED")
            break
        data += chunk
except OSError as e:
    print("ERROR", e)
print("AFTER", "smtp-reply" if b"\r\n" in data and data[:3].isdigit() else "no-smtp-reply", len(data))
PY
assert_file_grep "garbage instead of a ClientHello: no SMTP reply" "$TB/garbage.out" "^AFTER no-smtp-reply"
assert_file_grep "... and the session is closed" "$TB/garbage.out" "^CLOSED"
assert_no_log "no plaintext command was run after STARTTLS" "$MARK" "plain@evil"
if tb_alive mxguard; then pass "mxguard alive"; else fail "mxguard died"; fi

# ================================================================ 6. require TLS
echo "# --- 6. require-TLS network"
SW_SOURCE=$TLS_CLIENT swaks_send reqtls1 --to a@example.test
assert_reply "require-TLS network: MAIL without STARTTLS" "$SW_MAIL" "530 5.7.0"
SW_SOURCE=$TLS_CLIENT swaks_send reqtls2 --to a@example.test --tls
assert_reply "require-TLS network: with STARTTLS relayed" "$SW_DOT" "250"
assert_file_count "$MX1" 6

# ================================================================ 7. require AUTH, ACL first
echo "# --- 7. require-AUTH network"
SW_SOURCE=$AUTH_CLIENT swaks_send reqauth1 --to a@example.test --tls
assert_reply "require-AUTH network: MAIL after STARTTLS without AUTH" "$SW_MAIL" "530 5.7.0"
assert_contains "... Authentication required" "$SW_MAIL" "Authentication required"
SW_SOURCE=$AUTH_CLIENT swaks_send reqauth2 --to a@example.test --tls --auth LOGIN \
    --auth-user bob --auth-password bob-pw
assert_reply "require-AUTH network: with AUTH relayed" "$SW_DOT" "250"
assert_file_count "$MX1" 7
SW_SOURCE=$TB_OUTSIDER_IP swaks_send outsider --to a@example.test --tls
assert_reply "outside allow_networks: 554 5.7.1 before anything else" "$SW_BANNER" "554 5.7.1"
assert_file_count "$MX1" 7 "nothing more arrived"

# ================================================================ 8. SIGHUP
echo "# --- 8. SIGHUP re-reads the password file"
MARK=$(tb_log_mark)
write_users alice-new-pw
tb_signal mxguard HUP
for i in $(seq 50); do
    tb_log_since "$MARK" | grep "inbound: certificate" >/dev/null && break
    sleep 0.1
done
assert_log "reload: the inbound files were re-read" "$MARK" "inbound: certificate .*mxguard\.test\.crt re-read, 2 AUTH user"
swaks_send newpw --to a@example.test --tls --auth PLAIN --auth-user alice \
    --auth-password alice-new-pw
assert_contains "after SIGHUP: the new password works" "$SW_CODES" "235"
SW_SOURCE=$OTHER swaks_send oldpw --to a@example.test --tls --auth PLAIN --auth-user alice \
    --auth-password alice-pw
assert_not_contains "after SIGHUP: the old password no longer does" "$SW_CODES" "235"
assert_contains "... 535" "$SW_CODES" "535"
echo "broken" >"$TB/users"
MARK=$(tb_log_mark)
tb_signal mxguard HUP
for i in $(seq 50); do
    tb_log_since "$MARK" | grep "stay in force" >/dev/null && break
    sleep 0.1
done
assert_log "a broken password file on SIGHUP is logged with its line" "$MARK" \
    "auth.password_file: .*users:1: expected user:hash; the loaded certificate and password file stay in force"
swaks_send afterbad --to a@example.test --tls --auth PLAIN --auth-user alice \
    --auth-password alice-new-pw
assert_contains "... and the loaded users stay in force" "$SW_CODES" "235"

tb_finish
