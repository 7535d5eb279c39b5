#!/usr/bin/env bash
# mkzones.sh DIR — generate the loopback test-bed's static material into DIR:
#
#   DIR/certs/        test CA (ca.crt/ca.key) and EC P-256 leaf certs NAME.crt/NAME.key
#                     (+ NAME.tlsa311: hex SHA-256 of the SPKI, for "TLSA 3 1 1")
#   DIR/keys/ZONE/    DNSSEC keys (ECDSAP256SHA256, one KSK + one ZSK per signed zone)
#   DIR/zones/        unsigned *.zone and signed *.zone.signed files
#   DIR/root.ds       trust anchor: the fake root's KSK as a DS record (zone-file format)
#   DIR/root.key      the same anchor as a DNSKEY record (zone-file format)
#   DIR/delv.anchor   the same anchor in BIND syntax (for `delv -a`)
#   DIR/nsd.conf      nsd serving every zone on 127.0.70.53 port 5300
#
# Hierarchy: fake root "." -> "test." -> leaf zones. Every address in the zones is
# in 127.0.70.0/24. MX hosts listen on port 2525 (mxguard: upstream.port = 2525).
#
#   example.test   MX 10 mx1.example.test (127.0.70.11), MX 20 mx2.example.test (127.0.70.12)
#   other.test     MX 10 mx2.example.test
#   fallback.test  MX 10 dead.fallback.test (127.0.70.13, nothing listens), MX 20 mx2.example.test
#   implicit.test  no MX, A 127.0.70.11
#   plain.test     MX 10 mx.plain.test (127.0.70.14, server without STARTTLS)
#   badtls.test    MX 10 mx.badtls.test (127.0.70.15, server whose TLS handshake fails)
#   nullmx.test    MX 0 .  (RFC 7505)
#   bogus.test     MX 10 mx1.example.test, signed + DS in test., RRSIG(MX) corrupted -> bogus
#   insecure.test  delegated without DS (unsigned), MX 10 mx1.example.test
#   self.test      MX 10 loop.self.test (127.0.70.1 = mxguard's own listener)
#   nosuch.test    does not exist (NXDOMAIN, NSEC-proven by test.)
#
# DANE zones (RFC 7672), all signed with a DS in test.; the TLSA owner is always
# _25._tcp.HOST although the servers listen on 2525; "matching" = 3 1 1 of HOST's own cert:
#   dane-ee.test         MX 10 mx.dane-ee.test (127.0.70.21), TLSA 3 1 1 matching
#   dane-ta.test         MX 10 mx.dane-ta.test (127.0.70.22), TLSA 2 1 1 = SHA-256 of the test
#                        CA's SPKI (its server must present NAME.chain.crt = leaf + CA)
#   dane-taname.test     MX 10 mx.dane-taname.test (127.0.70.23), TLSA 2 1 1 of the CA; its
#                        server presents wrong.dane-taname.test (+ CA): the name check fails
#   dane-2nd.test        MX 10 mx1.dane-2nd.test (127.0.70.24, TLSA 3 1 1 wrong digest),
#                        MX 20 mx2.dane-2nd.test (127.0.70.25, TLSA matching)
#   dane-allbad.test     MX 10 mx1.dane-2nd.test, MX 20 mx3.dane-allbad.test (127.0.70.27,
#                        TLSA 3 1 1 wrong digest)
#   dane-bogus.test      MX 10 mx.dane-bogus.test (127.0.70.28), TLSA matching, but the RRSIG
#                        over the TLSA RRset corrupted (MX and A stay secure)
#   dane-nodata.test     MX 10 mx.dane-nodata.test (127.0.70.29), no TLSA (secure denial)
#   dane-unusable.test   MX 10 mx.dane-unusable.test (127.0.70.30), only TLSA 0 0 1 and 1 1 1
#                        (PKIX usages, unusable for SMTP; digests of its real certificate)
#   dane-unusable-plain.test  MX 10 mx.dane-unusable-plain.test (127.0.70.31, a server
#                        without STARTTLS), only TLSA 0 0 1 and 1 1 1
#   dane-nostarttls.test MX 10 mx.dane-nostarttls.test (127.0.70.32, a server without
#                        STARTTLS), TLSA 3 1 1 matching
#   dane-cname.test      MX 10 mx.dane-cname.test = CNAME real.dane-target.test
#   dane-target.test     real.dane-target.test A 127.0.70.33, TLSA 3 1 1 matching at
#                        _25._tcp.real.dane-target.test only
#   dane-expired.test    MX 10 mx.dane-expired.test (127.0.70.34), TLSA matching; signed with
#                        signatures that expired 10 days ago (its DS in test. is valid): bogus
#
#   DIR/certs/ca.tlsa211       hex SHA-256 of the CA's SPKI (the "2 1 1" data)
#   DIR/certs/NAME.tlsa001     hex SHA-256 of NAME's certificate (DER), for "0 0 1"
#   DIR/tlsa.wrong311          a well-formed "3 1 1" rrdata that matches no key here
#   DIR/wrong-root.ds, DIR/wrong-root.key, DIR/delv-wrong.anchor
#                              a wrong trust anchor: a KSK for "." that signed nothing
#   DIR/nsd-unsigned.conf      nsd serving UNSIGNED copies of every zone on 127.0.70.54
#                              port 5300 (a resolver path that strips DNSSEC)
set -euo pipefail

DIR=${1:?usage: mkzones.sh DIR}
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)
NS_IP=127.0.70.53
NS_PORT=5300
STRIPPED_IP=127.0.70.54

# dnssec tools, openssl etc. are in /usr/sbin on some systems
export PATH="$PATH:/usr/sbin:/sbin"

mkdir -p "$DIR/certs" "$DIR/keys" "$DIR/zones"

# ---------------------------------------------------------------- certificates
make_ca() {
    local c="$DIR/certs"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -keyout "$c/ca.key" -out "$c/ca.crt" -days 3650 -subj "/CN=mxguard test CA" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -addext "subjectKeyIdentifier=hash" 2>/dev/null
}

# make_leaf NAME [SAN...]
make_leaf() {
    local name=$1; shift
    local c="$DIR/certs" san="DNS:$name" s
    for s in "$@"; do san="$san,DNS:$s"; done
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -keyout "$c/$name.key" -out "$c/$name.csr" -subj "/CN=$name" 2>/dev/null
    cat >"$c/$name.ext" <<EOF
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=$san
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid
EOF
    openssl x509 -req -in "$c/$name.csr" -CA "$c/ca.crt" -CAkey "$c/ca.key" \
        -CAcreateserial -days 825 -sha256 -extfile "$c/$name.ext" -out "$c/$name.crt" 2>/dev/null
    cat "$c/$name.crt" "$c/ca.crt" >"$c/$name.chain.crt"
    # (from the key and the PEM text: `openssl x509` costs 30 ms a call, this runs 20 times;
    # the self-checks at the end compare with the certificates)
    openssl pkey -in "$c/$name.key" -pubout -outform DER | openssl dgst -sha256 -r | cut -d' ' -f1 \
        >"$c/$name.tlsa311"
    sed '/^-----/d' "$c/$name.crt" | base64 -d | openssl dgst -sha256 -r | cut -d' ' -f1 >"$c/$name.tlsa001"
    rm -f "$c/$name.csr" "$c/$name.ext"
}

make_ca
openssl pkey -in "$DIR/certs/ca.key" -pubout -outform DER | openssl dgst -sha256 -r | cut -d' ' -f1 \
    >"$DIR/certs/ca.tlsa211"
for h in mx1.example.test mx2.example.test mx.plain.test mx.badtls.test loop.self.test \
         mxguard.test wrong.invalid.test; do
    make_leaf "$h"
done
for h in mx.dane-ee.test mx.dane-ta.test wrong.dane-taname.test mx1.dane-2nd.test \
         mx2.dane-2nd.test mx3.dane-allbad.test mx.dane-bogus.test mx.dane-nodata.test \
         mx.dane-unusable.test mx.dane-unusable-plain.test mx.dane-nostarttls.test \
         real.dane-target.test mx.dane-expired.test; do
    make_leaf "$h"
done
tlsa311() { echo "3 1 1 $(cat "$DIR/certs/$1.tlsa311")"; } # rrdata matching NAME's key
# well-formed (32-octet digest) but matching none of the test-bed's keys
echo "3 1 1 $(printf 'no key has this SPKI' | openssl dgst -sha256 -r | cut -d' ' -f1)" >"$DIR/tlsa.wrong311"
WRONG311=$(cat "$DIR/tlsa.wrong311")

# ---------------------------------------------------------------- zones
soa() { # soa ZONE
    cat <<EOF
\$ORIGIN $1
\$TTL 300
@	IN SOA ns.test. hostmaster.test. 2024010101 3600 600 86400 300
EOF
}

zf() { # zone file path for ZONE ("." -> root)
    if [ "$1" = "." ]; then echo "$DIR/zones/root.zone"; else echo "$DIR/zones/${1%.}.zone"; fi
}

write_leaf() { # write_leaf ZONE then records on stdin
    local z=$1 f
    f=$(zf "$z")
    { soa "$z"; echo "@	IN NS ns.test."; cat; } >"$f"
}

write_leaf example.test. <<'EOF'
@	IN MX 10 mx1.example.test.
@	IN MX 20 mx2.example.test.
mx1	IN A 127.0.70.11
mx2	IN A 127.0.70.12
EOF
write_leaf other.test. <<'EOF'
@	IN MX 10 mx2.example.test.
EOF
write_leaf fallback.test. <<'EOF'
@	IN MX 10 dead.fallback.test.
@	IN MX 20 mx2.example.test.
dead	IN A 127.0.70.13
EOF
write_leaf implicit.test. <<'EOF'
@	IN A 127.0.70.11
EOF
write_leaf plain.test. <<'EOF'
@	IN MX 10 mx.plain.test.
mx	IN A 127.0.70.14
EOF
write_leaf badtls.test. <<'EOF'
@	IN MX 10 mx.badtls.test.
mx	IN A 127.0.70.15
EOF
write_leaf nullmx.test. <<'EOF'
@	IN MX 0 .
EOF
write_leaf bogus.test. <<'EOF'
@	IN MX 10 mx1.example.test.
EOF
write_leaf insecure.test. <<'EOF'
@	IN MX 10 mx1.example.test.
EOF
write_leaf self.test. <<'EOF'
@	IN MX 10 loop.self.test.
loop	IN A 127.0.70.1
EOF

# ---- DANE zones
write_leaf dane-ee.test. <<EOF
@	IN MX 10 mx.dane-ee.test.
mx	IN A 127.0.70.21
_25._tcp.mx	IN TLSA $(tlsa311 mx.dane-ee.test)
EOF
write_leaf dane-ta.test. <<EOF
@	IN MX 10 mx.dane-ta.test.
mx	IN A 127.0.70.22
_25._tcp.mx	IN TLSA 2 1 1 $(cat "$DIR/certs/ca.tlsa211")
EOF
write_leaf dane-taname.test. <<EOF
@	IN MX 10 mx.dane-taname.test.
mx	IN A 127.0.70.23
_25._tcp.mx	IN TLSA 2 1 1 $(cat "$DIR/certs/ca.tlsa211")
EOF
write_leaf dane-2nd.test. <<EOF
@	IN MX 10 mx1.dane-2nd.test.
@	IN MX 20 mx2.dane-2nd.test.
mx1	IN A 127.0.70.24
mx2	IN A 127.0.70.25
_25._tcp.mx1	IN TLSA $WRONG311
_25._tcp.mx2	IN TLSA $(tlsa311 mx2.dane-2nd.test)
EOF
write_leaf dane-allbad.test. <<EOF
@	IN MX 10 mx1.dane-2nd.test.
@	IN MX 20 mx3.dane-allbad.test.
mx3	IN A 127.0.70.27
_25._tcp.mx3	IN TLSA $WRONG311
EOF
write_leaf dane-bogus.test. <<EOF
@	IN MX 10 mx.dane-bogus.test.
mx	IN A 127.0.70.28
_25._tcp.mx	IN TLSA $(tlsa311 mx.dane-bogus.test)
EOF
write_leaf dane-nodata.test. <<EOF
@	IN MX 10 mx.dane-nodata.test.
mx	IN A 127.0.70.29
EOF
for z in dane-unusable:30 dane-unusable-plain:31; do
    write_leaf "${z%:*}.test." <<EOF
@	IN MX 10 mx.${z%:*}.test.
mx	IN A 127.0.70.${z#*:}
_25._tcp.mx	IN TLSA 0 0 1 $(cat "$DIR/certs/mx.${z%:*}.test.tlsa001")
_25._tcp.mx	IN TLSA 1 1 1 $(cat "$DIR/certs/mx.${z%:*}.test.tlsa311")
EOF
done
write_leaf dane-nostarttls.test. <<EOF
@	IN MX 10 mx.dane-nostarttls.test.
mx	IN A 127.0.70.32
_25._tcp.mx	IN TLSA $(tlsa311 mx.dane-nostarttls.test)
EOF
write_leaf dane-cname.test. <<EOF
@	IN MX 10 mx.dane-cname.test.
mx	IN CNAME real.dane-target.test.
EOF
write_leaf dane-target.test. <<EOF
real	IN A 127.0.70.33
_25._tcp.real	IN TLSA $(tlsa311 real.dane-target.test)
EOF
write_leaf dane-expired.test. <<EOF
@	IN MX 10 mx.dane-expired.test.
mx	IN A 127.0.70.34
_25._tcp.mx	IN TLSA $(tlsa311 mx.dane-expired.test)
EOF

DANE_LEAVES="dane-ee.test dane-ta.test dane-taname.test dane-2nd.test dane-allbad.test dane-bogus.test
 dane-nodata.test dane-unusable.test dane-unusable-plain.test dane-nostarttls.test dane-cname.test
 dane-target.test dane-expired.test"
SIGNED_LEAVES="example.test other.test fallback.test implicit.test plain.test badtls.test nullmx.test bogus.test self.test
 $DANE_LEAVES"
UNSIGNED_LEAVES="insecure.test"
# signed zones meant to fail validation (every other signed zone must pass dnssec-verify)
BOGUS_LEAVES="bogus.test dane-bogus.test dane-expired.test"

# sign ZONE [START END]: keys into keys/ZONE, signed file next to the zone file; prints
# nothing. START/END (dnssec-signzone -s/-e) default to an hour ago / a year from now; when
# given, dnssec-signzone's own post-signing verification is skipped (-P: it refuses
# signatures that have already expired).
sign() {
    local z=$1 kd f times=(-e +31536000 -s -3600)
    [ $# -ge 3 ] && times=(-P -s "$2" -e "$3")
    kd="$DIR/keys/${z%.}"; [ "$z" = "." ] && kd="$DIR/keys/root"
    f=$(zf "$z")
    mkdir -p "$kd"
    dnssec-keygen -q -K "$kd" -a ECDSAP256SHA256 -f KSK -n ZONE "$z" >"$kd/ksk.name"
    dnssec-keygen -q -K "$kd" -a ECDSAP256SHA256 -n ZONE "$z" >"$kd/zsk.name"
    dnssec-signzone -q -S -K "$kd" "${times[@]}" -O full -o "$z" \
        -d "$kd" -f "$f.signed" "$f" >/dev/null
}

ds_of() { # ds_of ZONE -> DS record line(s) of the zone's KSK (digest type 2)
    local z=$1 kd
    kd="$DIR/keys/${z%.}"; [ "$z" = "." ] && kd="$DIR/keys/root"
    dnssec-dsfromkey -2 "$kd/$(cat "$kd/ksk.name").key"
}

# corrupt_rrsig ZONE TYPE [OWNER] — flip bits in the signature of the one RRSIG covering TYPE
# (at OWNER; default: any owner) in ZONE's signed file, so that RRset becomes bogus.
# With -O full every record is one line: owner ttl class RRSIG TYPE alg labels ttl exp inc tag signer sig...
corrupt_rrsig() {
    python3 - "$(zf "$1").signed" "$2" "${3:-}" <<'PY'
import sys, base64
p, rtype, owner = sys.argv[1:4]
lines = open(p).read().split("\n")
done = 0
for i, l in enumerate(lines):
    f = l.split()
    if len(f) > 12 and f[3] == "RRSIG" and f[4] == rtype and (not owner or f[0].lower() == owner.lower()):
        sig = base64.b64decode("".join(f[12:]))
        sig = bytes([sig[0] ^ 0x01]) + sig[1:-1] + bytes([sig[-1] ^ 0x80])
        lines[i] = "\t".join(f[:12] + [base64.b64encode(sig).decode()])
        done += 1
if done != 1:
    sys.exit("mkzones: expected exactly one RRSIG %s%s in %s, found %d"
             % (rtype, " at " + owner if owner else "", p, done))
open(p, "w").write("\n".join(lines))
PY
}

for z in $SIGNED_LEAVES; do
    [ "$z" = dane-expired.test ] || sign "$z."
done
# dane-expired.test: signatures valid from 30 to 10 days ago (the clock is not faked, so the
# test certificates stay valid); its DS in test. is fine, so every answer from it is bogus.
sign dane-expired.test. "$(date -u -d '30 days ago' +%Y%m%d%H%M%S)" "$(date -u -d '10 days ago' +%Y%m%d%H%M%S)"

# bogus.test: corrupt the signature of the (single, ZSK) RRSIG over the MX RRset.
corrupt_rrsig bogus.test. MX
# dane-bogus.test: the same for the TLSA RRset (its MX and A RRsets stay secure).
corrupt_rrsig dane-bogus.test. TLSA _25._tcp.mx.dane-bogus.test.

# test.: delegations (with DS for the signed leaves), glue-free (ns.test is in-zone)
{
    soa test.
    echo "@	IN NS ns.test."
    echo "ns	IN A $NS_IP"
    for z in $SIGNED_LEAVES $UNSIGNED_LEAVES; do
        echo "${z%.test}	IN NS ns.test."
    done
    for z in $SIGNED_LEAVES; do ds_of "$z."; done
} >"$(zf test.)"
sign test.

# root: delegation of test. with DS and glue
{
    soa .
    echo "@	IN NS ns.test."
    echo "test.	IN NS ns.test."
    echo "ns.test.	IN A $NS_IP"
    ds_of test.
} >"$(zf .)"
sign .

# trust anchors
kd="$DIR/keys/root"
dnssec-dsfromkey -2 -T 3600 "$kd/$(cat "$kd/ksk.name").key" >"$DIR/root.ds"
grep -v '^;' "$kd/$(cat "$kd/ksk.name").key" | sed 's/^\. /. 3600 /' >"$DIR/root.key"
read -r _ _ _ _ ds_tag ds_alg ds_dt ds_hex < <(dnssec-dsfromkey -2 -T 3600 "$kd/$(cat "$kd/ksk.name").key")
cat >"$DIR/delv.anchor" <<EOF
trust-anchors {
	"." static-ds $ds_tag $ds_alg $ds_dt "$ds_hex";
};
EOF

# a wrong anchor in the same three formats: a KSK for "." (same algorithm) that signed nothing
kd="$DIR/keys/wrong-root"
mkdir -p "$kd"
dnssec-keygen -q -K "$kd" -a ECDSAP256SHA256 -f KSK -n ZONE . >"$kd/ksk.name"
dnssec-dsfromkey -2 -T 3600 "$kd/$(cat "$kd/ksk.name").key" >"$DIR/wrong-root.ds"
grep -v '^;' "$kd/$(cat "$kd/ksk.name").key" | sed 's/^\. /. 3600 /' >"$DIR/wrong-root.key"
read -r _ _ _ _ ds_tag ds_alg ds_dt ds_hex < <(dnssec-dsfromkey -2 -T 3600 "$kd/$(cat "$kd/ksk.name").key")
cat >"$DIR/delv-wrong.anchor" <<EOF
trust-anchors {
	"." static-ds $ds_tag $ds_alg $ds_dt "$ds_hex";
};
EOF

# ---------------------------------------------------------------- nsd.conf
# nsd_conf IP NAME SUFFIX — an nsd config serving every zone from ZONE.zone$SUFFIX
# (".signed", or "" for the unsigned copies) on IP:$NS_PORT; its state files are DIR/NAME.*
nsd_conf() {
    local ip=$1 n=$2 sfx=$3 z
    cat <<EOF
server:
	ip-address: $ip@$NS_PORT
	port: $NS_PORT
	do-ip4: yes
	do-ip6: no
	username: ""
	chroot: ""
	database: ""
	zonesdir: "$DIR/zones"
	pidfile: "$DIR/$n.pid"
	zonelistfile: "$DIR/$n.zonelist"
	xfrdfile: "$DIR/$n.xfrd.state"
	xfrdir: "$DIR"
	logfile: "$DIR/$n.log"
	server-count: 1
	verbosity: 1
	hide-version: yes
	reuseport: no
remote-control:
	control-enable: no
EOF
    printf 'zone:\n\tname: "."\n\tzonefile: "root.zone%s"\n' "$sfx"
    printf 'zone:\n\tname: "test."\n\tzonefile: "test.zone%s"\n' "$sfx"
    for z in $SIGNED_LEAVES; do
        printf 'zone:\n\tname: "%s."\n\tzonefile: "%s.zone%s"\n' "$z" "$z" "$sfx"
    done
    for z in $UNSIGNED_LEAVES; do
        printf 'zone:\n\tname: "%s."\n\tzonefile: "%s.zone"\n' "$z" "$z"
    done
}
nsd_conf "$NS_IP" nsd .signed >"$DIR/nsd.conf"
# the "stripping resolver": the same names and data without DNSKEY/RRSIG/NSEC (DS records in
# the parents stay, as plain data)
nsd_conf "$STRIPPED_IP" nsd-unsigned "" >"$DIR/nsd-unsigned.conf"

if command -v nsd-checkconf >/dev/null 2>&1; then
    nsd-checkconf "$DIR/nsd.conf"
    nsd-checkconf "$DIR/nsd-unsigned.conf"
fi

# ---------------------------------------------------------------- self-checks
# Nothing may point outside 127.0.70.0/24.
if grep -hE '\sIN\s+A\s' "$DIR"/zones/*.zone | awk '{print $NF}' | grep -qvE '^127\.0\.70\.[0-9]+$'; then
    echo "mkzones: an A record outside 127.0.70.0/24" >&2
    exit 1
fi
# Every signed zone passes dnssec-verify (complete, correct and current signatures), except
# those meant to be bogus, which must fail it.
for z in . test $SIGNED_LEAVES; do
    [ "$z" = . ] || z="$z."
    if [[ " $(echo $BOGUS_LEAVES) " == *" ${z%.} "* ]]; then
        if dnssec-verify -q -o "$z" "$(zf "$z").signed" >/dev/null 2>&1; then
            echo "mkzones: $z passes dnssec-verify but is meant to be bogus" >&2
            exit 1
        fi
    elif ! dnssec-verify -q -o "$z" "$(zf "$z").signed" >"$DIR/verify.out" 2>&1; then
        cat "$DIR/verify.out" >&2
        echo "mkzones: signed zone $z does not verify" >&2
        exit 1
    fi
done
rm -f "$DIR/verify.out"
# The unsigned copies hold no DNSSEC record.
if grep -lE '\sIN\s+(RRSIG|DNSKEY|NSEC|NSEC3)\s' "$DIR"/zones/*.zone >&2; then
    echo "mkzones: DNSSEC records in an unsigned zone file" >&2
    exit 1
fi
# Every zone of the DANE set is delegated with a DS. The TLSA data match the certificates
# they were made for (computed here from the certificate itself), and the "wrong" digest
# matches no key of the test-bed.
for z in $DANE_LEAVES; do
    grep -qE "^$z\.[[:space:]].*[[:space:]]DS[[:space:]]" "$(zf test.)" ||
        { echo "mkzones: no DS for $z in test." >&2; exit 1; }
done
spki256() { openssl x509 -in "$1" -noout -pubkey | openssl pkey -pubin -outform DER | openssl dgst -sha256 -r | cut -d' ' -f1; }
for n in ca mx.dane-ee.test mx2.dane-2nd.test mx.dane-bogus.test mx.dane-nostarttls.test \
         real.dane-target.test mx.dane-expired.test mx.dane-unusable.test mx.dane-unusable-plain.test; do
    f="$DIR/certs/$n.tlsa311"; [ $n = ca ] && f="$DIR/certs/ca.tlsa211"
    if [ "$(spki256 "$DIR/certs/$n.crt")" != "$(cat "$f")" ]; then
        echo "mkzones: $f does not match $n.crt" >&2
        exit 1
    fi
done
for n in mx.dane-unusable.test mx.dane-unusable-plain.test; do
    if [ "$(openssl x509 -in "$DIR/certs/$n.crt" -outform DER | openssl dgst -sha256 -r | cut -d' ' -f1)" != \
         "$(cat "$DIR/certs/$n.tlsa001")" ]; then
        echo "mkzones: $n.tlsa001 does not match $n.crt" >&2
        exit 1
    fi
done
if cat "$DIR"/certs/*.tlsa311 "$DIR/certs/ca.tlsa211" | grep -qx "$(cut -d' ' -f4 "$DIR/tlsa.wrong311")"; then
    echo "mkzones: the wrong digest matches a key" >&2
    exit 1
fi
if [ "$(grep -c "$(cut -d' ' -f4 "$DIR/tlsa.wrong311")" "$DIR/zones/dane-2nd.test.zone" "$DIR/zones/dane-allbad.test.zone" |
        cut -d: -f2 | tr '\n' ' ')" != "1 1 " ]; then
    echo "mkzones: dane-2nd.test / dane-allbad.test must each hold the wrong digest once" >&2
    exit 1
fi
touch "$DIR/.done"

