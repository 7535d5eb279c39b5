#!/usr/bin/env bash
# t_mta_opensmtpd.sh — OpenSMTPD 6.8 (Debian 12's opensmtpd, unpacked, not installed) with the
# README's relay action hands mail to mxguard: a three-domain message arrives at each MX with
# its own recipient and an intact body; an 8-bit message arrives octet for octet (OpenSMTPD sends no BODY=8BITMIME); a recipient
# the MX refuses (550) gets OpenSMTPD's own bounce into the sender's maildir, naming the
# recipient and the MX's reply.
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"
. "$TB_LIB_DIR/legacy_lib.sh"

lg_testbed
lg_use opensmtpd /usr/sbin/smtpd

S=$TB/opensmtpd
SENDER_UID=64990
mkdir -p "$S/varspool" "$S/varlib/opensmtpd/empty" "$S/run" "$S/mail"
chmod 755 "$S" "$S/varspool" "$S/varlib" "$S/varlib/opensmtpd" "$S/varlib/opensmtpd/empty"
chown "$SENDER_UID" "$S/mail"
# its compiled-in users, and the sender as a local user (its maildir gets the bounces), exist
# only in lg_ns's private /etc/passwd; its compiled-in spool (/var/spool/smtpd), chroot
# (/var/lib/opensmtpd/empty), helpers (/usr/libexec/opensmtpd) and control socket (/run) are
# the test directory's, bound there in the same private namespace
lg_users "passwd:opensmtpd:x:64991:64991:smtpd:/nonexistent:/usr/sbin/nologin" \
    "passwd:opensmtpq:x:64992:64992:smtpq:/nonexistent:/usr/sbin/nologin" \
    "passwd:sender:x:$SENDER_UID:$SENDER_UID:sender:$S/mail:/bin/sh" \
    "group:opensmtpd:x:64991:" "group:opensmtpq:x:64992:" "group:sender:x:$SENDER_UID:"
LG_BINDS="$S/varspool:/var/spool $S/varlib:/var/lib $LG_ROOT/usr/libexec:/usr/libexec $S/run:/run"

# smtpd.conf: the README's relay action (marked); the rest is the private test-bed around it
cat >"$S/smtpd.conf" <<CONF
listen on $TB_PF_IP port $TB_PF_PORT hostname $LG_DOMAIN
action "local" maildir "$S/mail/Maildir"
match from any for domain "$LG_DOMAIN" action "local"
# --- README: the relay action (src: the test-bed's source address, inside allow_networks)
action "relay" relay host smtp://$TB_MXG_IP:$TB_MXG_PORT src $TB_PF_IP
match from src 127.0.70.0/24 for any action "relay"
# --- end README
CONF

lg_ns "$LG_ROOT/usr/sbin/smtpd" -n -f "$S/smtpd.conf" >"$TB/smtpd.check" 2>&1 ||
    { cat "$TB/smtpd.check"; tb_die "smtpd -n (configuration check) failed"; }
lg_spawn_ns opensmtpd "$LG_ROOT/usr/sbin/smtpd" -d -v -f "$S/smtpd.conf"
lg_wait_mta opensmtpd

# 1. one message, three domains
lg_message three "opensmtpd three domains"
lg_submit three a@example.test,b@other.test,c@dane-ee.test
assert_eq "OpenSMTPD accepted the three-domain message" ok "$SUBMIT"
lg_wait_mx_spools 1 1 1
lg_assert_arrived opensmtpd "opensmtpd three domains" "$TB/three.msg"

# 2. an 8-bit message
lg_message eight "opensmtpd 8bit" --8bit
lg_submit eight a@example.test 8bit
assert_eq "OpenSMTPD accepted the 8-bit message" ok "$SUBMIT"
lg_wait_mx_spools 2 1 1
# OpenSMTPD 6.8 sends no BODY=8BITMIME (it passes 8-bit data as it came); mxguard relays MAIL as is
lg_assert_8bit opensmtpd "opensmtpd 8bit" "$TB/eight.msg" null

# 3. refused by the MX: OpenSMTPD's bounce in the sender's maildir
lg_message refused "opensmtpd refused"
lg_submit refused reject-x@example.test
assert_eq "OpenSMTPD accepted the message the MX will refuse" ok "$SUBMIT"
lg_wait_file "$S/mail/Maildir/new/*" 15
b=$(find "$S/mail/Maildir/new" -type f 2>/dev/null | head -n 1)
if [ -z "$b" ]; then
    fail "OpenSMTPD's bounce did not reach the sender's maildir"
else
    assert_file_grep "OpenSMTPD's bounce reached the sender's maildir" "$b" '^Subject: Delivery status notification: failed'
    assert_file_grep "... from its mailer-daemon" "$b" '^From: Mailer Daemon <MAILER-DAEMON@'
    assert_file_grep "... naming the recipient" "$b" 'reject-x@example\.test'
    assert_file_grep "... and the MX's reply as mxguard relayed it" "$b" '550 5\.1\.1 <reject-x@example\.test>: user unknown'
    assert_file_grep "... with the original message" "$b" '^Subject: opensmtpd refused'
fi
assert_file_grep "... as a delivery status report" "$b" '^Final-Recipient: rfc822; reject-x@example\.test'
assert_eq "nothing more reached mx1" 2 "$(spool_count "$TB/spool/mx1")"
assert_eq "OpenSMTPD's queue is empty" 0 \
    "$(find "$S/varspool/smtpd/queue" -type f 2>/dev/null | wc -l)"

tb_finish
