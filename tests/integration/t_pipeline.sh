#!/usr/bin/env bash
# t_pipeline.sh — 50 pipelined transactions (RFC 2920) on one client connection all relayed.
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

tb_init
tb_start_dns
tb_start_mx mx1 127.0.70.11
tb_start_mx mx2 127.0.70.12
tb_write_config
tb_start_mxguard

MX1=$TB/spool/mx1
tag="pl$$"
"$PYTHON" "$TB_LIB_DIR/smtpclient.py" --server "$TB_MXG_IP:$TB_MXG_PORT" --source "$TB_CLIENT_IP" \
    --timeout 30 pipeline --force --count 50 --to a@example.test --tag "$tag" >"$TB/pipeline.out" 2>&1
rc=$?
tail -n 3 "$TB/pipeline.out" | sed 's/^/# /'
assert_file_grep "PIPELINING advertised" "$TB/pipeline.out" '^EHLO 250 PIPELINING=yes'
assert_eq "pipelining client: all transactions succeeded (exit status)" 0 "$rc"
assert_file_grep "50 of 50 transactions got 250" "$TB/pipeline.out" '^pipeline: 50 of 50 transactions got 250'
assert_eq "every transaction: MAIL 250 RCPT 250 DATA 354 DOT 250" 50 \
    "$(grep -c '^TXN [0-9]* 250 250 354 250$' "$TB/pipeline.out")"
assert_file_count "$MX1" 50 "mx1 has 50 messages"
assert_file_count "$TB/spool/mx2" 0 "mx2 has none"
assert_eq "50 distinct Subject: headers" 50 \
    "$(cat "$MX1"/*.eml 2>/dev/null | grep -a '^Subject: pipeline test ' | sort -u | wc -l)"
assert_eq "50 distinct Message-IDs" 50 \
    "$(cat "$MX1"/*.eml 2>/dev/null | grep -a "^Message-ID: <[0-9]*\.$tag@client.test>" | sort -u | wc -l)"
assert_eq "dot-stuffed body line unstuffed exactly once in every message" 50 \
    "$(cat "$MX1"/*.eml 2>/dev/null | grep -ac '^\.A line that starts with a dot')"
assert_eq "one Received: header per message" 50 "$(cat "$MX1"/*.eml 2>/dev/null | grep -ac '^Received:')"
assert_eq "every message has one recipient a@example.test" 50 \
    "$(cat "$MX1"/*.json 2>/dev/null | grep -c '"a@example.test"')"

tb_finish
