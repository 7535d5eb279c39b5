#!/usr/bin/env bash
# t_check.sh — `mxguard check DOMAIN [-c CONF] [--connect]`: exit 0 when mail to DOMAIN could
# be delivered now, non-zero otherwise; the output names the MX hosts, the DNSSEC status
# (secure/insecure/bogus) and the TLSA records. The output format is not fixed: only exit
# statuses and a few robust substrings are checked.
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

tb_init
tb_start_dns
tb_start_mx mx1 127.0.70.11
tb_start_mx dane-ee 127.0.70.21
tb_start_mx dane-2nd1 127.0.70.24
tb_start_mx dane-allbad 127.0.70.27
tb_write_config

# check_has DESC NAME TEXT — $TB/NAME.check has TEXT as a word (case-insensitive: "secure"
# does not match "insecure")
check_has() {
    if grep -qiwF -- "$3" "$TB/$2.check"; then pass "$1"; else fail "$1: [$3] not in $2.check"; fi
}

# 1. dane-ee.test: secure MX, TLSA 3 1 1 usable
tb_check ee dane-ee.test
assert_eq "dane-ee.test: exit 0" 0 "$CHECK_RC"
check_has "dane-ee.test: names mx.dane-ee.test" ee "mx.dane-ee.test"
check_has "dane-ee.test: says secure" ee "secure"
check_has "dane-ee.test: shows the TLSA record 3 1 1" ee "3 1 1"
tb_check ee-connect dane-ee.test --connect
assert_eq "dane-ee.test --connect: exit 0 (TLSA matches)" 0 "$CHECK_RC"
check_has "dane-ee.test --connect: names mx.dane-ee.test" ee-connect "mx.dane-ee.test"
assert_file_grep "dane-ee.test --connect: the MX saw a STARTTLS connection" "$TB/spool/dane-ee/connections.log" 'starttls=yes tls=ok'
assert_file_count "$TB/spool/dane-ee" 0 "dane-ee.test --connect: no mail sent"

# 2. dane-allbad.test --connect: every MX has a wrong digest
tb_check allbad dane-allbad.test --connect
assert_match "dane-allbad.test --connect: non-zero exit ($CHECK_RC)" "$CHECK_RC" '^[1-9][0-9]*$'
check_has "dane-allbad.test --connect: names mx1.dane-2nd.test" allbad "mx1.dane-2nd.test"
check_has "dane-allbad.test --connect: names mx3.dane-allbad.test" allbad "mx3.dane-allbad.test"
check_has "dane-allbad.test --connect: shows 3 1 1" allbad "3 1 1"
check_has "dane-allbad.test --connect: says secure" allbad "secure"
assert_file_grep "dane-allbad.test --connect: mx1.dane-2nd.test probed with STARTTLS" "$TB/spool/dane-2nd1/connections.log" 'starttls=yes'
assert_file_grep "dane-allbad.test --connect: mx3.dane-allbad.test probed with STARTTLS" "$TB/spool/dane-allbad/connections.log" 'starttls=yes'
assert_no_mail "dane-allbad.test --connect: no MAIL at mx1.dane-2nd.test" dane-2nd1
assert_no_mail "dane-allbad.test --connect: no MAIL at mx3.dane-allbad.test" dane-allbad

# 3. null MX
tb_check nullmx nullmx.test
assert_match "nullmx.test: non-zero exit ($CHECK_RC)" "$CHECK_RC" '^[1-9][0-9]*$'

# 4. bogus MX RRset
tb_check bogus bogus.test
assert_match "bogus.test: non-zero exit ($CHECK_RC)" "$CHECK_RC" '^[1-9][0-9]*$'
check_has "bogus.test: says bogus" bogus "bogus"

# 5. insecure zone: deliverable, opportunistic
tb_check insecure insecure.test
assert_eq "insecure.test: exit 0" 0 "$CHECK_RC"
check_has "insecure.test: names mx1.example.test" insecure "mx1.example.test"
check_has "insecure.test: says insecure" insecure "insecure"

# 6. a domain that does not exist
tb_check nosuch nosuch.test
assert_match "nosuch.test: non-zero exit ($CHECK_RC)" "$CHECK_RC" '^[1-9][0-9]*$'

assert_file_count "$TB/spool/mx1" 0 "mx1: check sends no mail"
tb_finish
