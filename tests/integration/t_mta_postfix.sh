#!/usr/bin/env bash
# t_mta_postfix.sh — Postfix 3.7 with the README's relayhost (t_postfix.sh has its recipient
# limit 1; here its default): a three-domain message arrives at each MX with its own recipient
# and an intact body; an 8-bit message goes with BODY=8BITMIME and arrives octet for octet; a
# recipient the MX refuses (550) gets Postfix's own bounce into the sender's mailbox, naming
# the recipient and the MX's reply.
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"
. "$TB_LIB_DIR/legacy_lib.sh"

lg_testbed
# the sender's domain is Postfix's own, delivered by virtual(8) into $TB/vmail/sender (an mbox)
mkdir -p "$TB/vmail"
chown mail:mail "$TB/vmail"
TB_PF_EXTRA="virtual_mailbox_domains = $LG_DOMAIN
virtual_mailbox_base = $TB/vmail
virtual_mailbox_maps = static:sender
virtual_minimum_uid = 1
virtual_uid_maps = static:$(id -u mail)
virtual_gid_maps = static:$(id -g mail)" tb_start_postfix

# 1. one message, three domains (one transaction: Postfix's default recipient limit)
lg_message three "postfix three domains"
lg_submit three a@example.test,b@other.test,c@dane-ee.test
assert_eq "Postfix accepted the three-domain message" ok "$SUBMIT"
lg_wait_mx_spools 1 1 1
lg_assert_arrived postfix "postfix three domains" "$TB/three.msg"

# 2. an 8-bit message
lg_message eight "postfix 8bit" --8bit
lg_submit eight a@example.test 8bit
assert_eq "Postfix accepted the 8-bit message" ok "$SUBMIT"
lg_wait_mx_spools 2 1 1
lg_assert_8bit postfix "postfix 8bit" "$TB/eight.msg"

# 3. refused by the MX: Postfix's bounce in the sender's mailbox
lg_message refused "postfix refused"
lg_submit refused reject-x@example.test
assert_eq "Postfix accepted the message the MX will refuse" ok "$SUBMIT"
lg_wait_file "$TB/vmail/sender" 15
sleep 0.3
b=$TB/vmail/sender
assert_file_grep "Postfix's bounce reached the sender's mailbox" "$b" '^Subject: Undelivered Mail Returned to Sender'
assert_file_grep "... from its mailer-daemon" "$b" "^From: Mail Delivery System <MAILER-DAEMON@$LG_DOMAIN>"
assert_file_grep "... naming the recipient and the MX's reply as mxguard relayed it" "$b" \
    '^Diagnostic-Code: smtp; 550 5\.1\.1 <reject-x@example\.test>: user unknown'
assert_file_grep "... from mxguard's address" "$b" '^<reject-x@example\.test>: host 127\.0\.70\.1\[127\.0\.70\.1\] said: 550'
assert_file_grep "... with the original message" "$b" '^Subject: postfix refused'
assert_eq "nothing more reached mx1" 2 "$(spool_count "$TB/spool/mx1")"
assert_eq "Postfix deferred nothing" 0 "$(grep -c 'status=deferred' "$TB/postfix/maillog")"

tb_stop_postfix
tb_finish
