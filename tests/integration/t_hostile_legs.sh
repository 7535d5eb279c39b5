#!/usr/bin/env bash
# t_hostile_legs.sh — the hostile-MX table (hostile_table.txt), path "legs": every step of the
# SMTP client × every misbehaviour of the MX (hostile_mx.py); see hostile_lib.sh and
# README.md "The hostile MX suite".
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"
. "$TB_LIB_DIR/hostile_lib.sh"

tb_init
hostile_bed
hostile_rows legs
tb_finish
