#!/usr/bin/env bash
# bench/mkmany.sh DIR N SINK_IP... — the many-destination zone of bench/many.sh, added to a
# copy of the test-bed's zones (DIR = tests/integration/mkzones.sh's output, e.g. $TB/dns;
# only the bench runs this, so the test suite's mkzones.sh does not get slower).
#
# A signed zone wide.test., delegated from test. with a DS (test. is re-signed with its own
# keys in DIR/keys/test: the root and the trust anchor stay as they are), holding N domains:
#
#   dI.wide.test      MX 10 mxI.wide.test          (I = 1..N)
#   mxI.wide.test     A  SINK_IP number (I-1) mod S (S = the number of SINK_IPs)
#   _25._tcp.mxI.wide.test  TLSA 3 1 1 of mx.dane-ee.test's key (the sink's certificate) when
#                     I mod 3 != 0: two thirds DANE, one third no TLSA (secure denial)
#
# Writes DIR/zones/wide.test.zone(.signed), adds the zone to DIR/nsd.conf, and lists the
# domains in DIR/many.domains, one "DOMAIN SINK_IP:25 MX_HOST dane|none" per line (the
# load generator's --domains file). Takes about a second for N = 200.
set -euo pipefail
DIR=${1:?usage: mkmany.sh DIR N SINK_IP...}
N=${2:?usage: mkmany.sh DIR N SINK_IP...}
shift 2
[ $# -ge 1 ] || { echo "mkmany.sh: no SINK_IP" >&2; exit 2; }
SINKS=("$@")
Z=wide.test
export PATH="$PATH:/usr/sbin:/sbin"
[ -s "$DIR/certs/mx.dane-ee.test.tlsa311" ] || { echo "mkmany.sh: $DIR is not mkzones.sh's output" >&2; exit 1; }
grep -q "zonefile: \"$Z.zone.signed\"" "$DIR/nsd.conf" && { echo "mkmany.sh: $Z is already in $DIR" >&2; exit 1; }
TLSA="3 1 1 $(cat "$DIR/certs/mx.dane-ee.test.tlsa311")"

# the zone
kd=$DIR/keys/$Z
mkdir -p "$kd"
dnssec-keygen -q -K "$kd" -a ECDSAP256SHA256 -f KSK -n ZONE "$Z." >"$kd/ksk.name"
dnssec-keygen -q -K "$kd" -a ECDSAP256SHA256 -n ZONE "$Z." >"$kd/zsk.name"
: >"$DIR/many.domains"
{
    printf '$ORIGIN %s.\n$TTL 300\n' "$Z"
    echo "@	IN SOA ns.test. hostmaster.test. 2024010101 3600 600 86400 300"
    echo "@	IN NS ns.test."
    for i in $(seq "$N"); do
        ip=${SINKS[$(( (i - 1) % ${#SINKS[@]} ))]}
        echo "d$i	IN MX 10 mx$i.$Z."
        echo "mx$i	IN A $ip"
        kind=none
        if [ $((i % 3)) != 0 ]; then
            echo "_25._tcp.mx$i	IN TLSA $TLSA"
            kind=dane
        fi
        echo "d$i.$Z $ip:25 mx$i.$Z $kind" >>"$DIR/many.domains"
    done
} >"$DIR/zones/$Z.zone"
signzone() { # signzone ZONE FILE KEYDIR — as mkzones.sh's sign_file (valid an hour ago .. a year)
    dnssec-signzone -q -S -K "$3" -e +31536000 -s -3600 -O full -o "$1" -d "$3" \
        -f "$2.signed" "$2" >/dev/null
}
signzone "$Z." "$DIR/zones/$Z.zone" "$kd"

# the delegation with its DS in test., re-signed with test.'s keys
{
    echo "${Z%.test}	IN NS ns.test."
    dnssec-dsfromkey -2 "$kd/$(cat "$kd/ksk.name").key"
} >>"$DIR/zones/test.zone"
signzone test. "$DIR/zones/test.zone" "$DIR/keys/test"
for z in test. "$Z."; do
    f=$DIR/zones/${z%.}.zone.signed
    dnssec-verify -q -o "$z" "$f" >/dev/null 2>&1 || { echo "mkmany.sh: $f does not verify" >&2; exit 1; }
done
printf 'zone:\n\tname: "%s."\n\tzonefile: "%s.zone.signed"\n' "$Z" "$Z" >>"$DIR/nsd.conf"
if command -v nsd-checkconf >/dev/null 2>&1; then nsd-checkconf "$DIR/nsd.conf"; fi
