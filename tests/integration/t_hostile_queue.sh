#!/usr/bin/env bash
# t_hostile_queue.sh — the hostile-MX table (hostile_table.txt), path "queue": every step of the
# SMTP client × every misbehaviour of the MX (hostile_mx.py); see hostile_lib.sh and
# README.md "The hostile MX suite". The MAIL / first-RCPT rows run twice: without and with
# PIPELINING offered.
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"
. "$TB_LIB_DIR/hostile_lib.sh"

tb_init
hostile_bed
hostile_rows queue
# MAIL and the first RCPT in one write (RFC 2920, the queue runner's outbound path)
hostile_rows queue pipelining '^queue\.h\.(mail|rcpt1|mail\+rcpt1)\.'
tb_finish
