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
set -euo pipefail

DIR=${1:?usage: mkzones.sh DIR}
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)
NS_IP=127.0.70.53
NS_PORT=5300

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
    openssl x509 -in "$c/$name.crt" -noout -pubkey | openssl pkey -pubin -outform DER |
        openssl dgst -sha256 -r | cut -d' ' -f1 >"$c/$name.tlsa311"
    rm -f "$c/$name.csr" "$c/$name.ext"
}

make_ca
for h in mx1.example.test mx2.example.test mx.plain.test mx.badtls.test loop.self.test \
         mxguard.test wrong.invalid.test; do
    make_leaf "$h"
done

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

SIGNED_LEAVES="example.test other.test fallback.test implicit.test plain.test badtls.test nullmx.test bogus.test self.test"
UNSIGNED_LEAVES="insecure.test"

# sign ZONE: keys into keys/ZONE, signed file next to the zone file; prints nothing
sign() {
    local z=$1 kd f
    kd="$DIR/keys/${z%.}"; [ "$z" = "." ] && kd="$DIR/keys/root"
    f=$(zf "$z")
    mkdir -p "$kd"
    dnssec-keygen -q -K "$kd" -a ECDSAP256SHA256 -f KSK -n ZONE "$z" >"$kd/ksk.name"
    dnssec-keygen -q -K "$kd" -a ECDSAP256SHA256 -n ZONE "$z" >"$kd/zsk.name"
    dnssec-signzone -q -S -K "$kd" -e +31536000 -s -3600 -O full -o "$z" \
        -d "$kd" -f "$f.signed" "$f" >/dev/null
}

ds_of() { # ds_of ZONE -> DS record line(s) of the zone's KSK (digest type 2)
    local z=$1 kd
    kd="$DIR/keys/${z%.}"; [ "$z" = "." ] && kd="$DIR/keys/root"
    dnssec-dsfromkey -2 "$kd/$(cat "$kd/ksk.name").key"
}

for z in $SIGNED_LEAVES; do sign "$z."; done

# bogus.test: corrupt the signature of the (single, ZSK) RRSIG over the MX RRset.
# With -O full every record is one line: owner ttl class RRSIG MX alg labels ttl exp inc tag signer sig...
python3 - "$(zf bogus.test.).signed" <<'PY'
import sys, base64
p = sys.argv[1]
lines = open(p).read().split("\n")
done = 0
for i, l in enumerate(lines):
    f = l.split()
    if len(f) > 13 and f[3] == "RRSIG" and f[4] == "MX":
        sig = base64.b64decode("".join(f[13:]))
        sig = bytes([sig[0] ^ 0x01]) + sig[1:-1] + bytes([sig[-1] ^ 0x80])
        lines[i] = "\t".join(f[:13] + [base64.b64encode(sig).decode()])
        done += 1
if done != 1:
    sys.exit("mkzones: expected exactly one RRSIG MX in %s, found %d" % (p, done))
open(p, "w").write("\n".join(lines))
PY

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

# ---------------------------------------------------------------- nsd.conf
{
    cat <<EOF
server:
	ip-address: $NS_IP@$NS_PORT
	port: $NS_PORT
	do-ip4: yes
	do-ip6: no
	username: ""
	chroot: ""
	database: ""
	zonesdir: "$DIR/zones"
	pidfile: "$DIR/nsd.pid"
	zonelistfile: "$DIR/nsd.zonelist"
	xfrdfile: "$DIR/nsd.xfrd.state"
	xfrdir: "$DIR"
	logfile: "$DIR/nsd.log"
	server-count: 1
	verbosity: 1
	hide-version: yes
	reuseport: no
remote-control:
	control-enable: no
EOF
    printf 'zone:\n\tname: "."\n\tzonefile: "root.zone.signed"\n'
    printf 'zone:\n\tname: "test."\n\tzonefile: "test.zone.signed"\n'
    for z in $SIGNED_LEAVES; do
        printf 'zone:\n\tname: "%s."\n\tzonefile: "%s.zone.signed"\n' "$z" "$z"
    done
    for z in $UNSIGNED_LEAVES; do
        printf 'zone:\n\tname: "%s."\n\tzonefile: "%s.zone"\n' "$z" "$z"
    done
} >"$DIR/nsd.conf"

if command -v nsd-checkconf >/dev/null 2>&1; then
    nsd-checkconf "$DIR/nsd.conf"
fi

# Nothing may point outside 127.0.70.0/24.
if grep -hE '\sIN\s+A\s' "$DIR"/zones/*.zone | awk '{print $NF}' | grep -qvE '^127\.0\.70\.[0-9]+$'; then
    echo "mkzones: an A record outside 127.0.70.0/24" >&2
    exit 1
fi
touch "$DIR/.done"
