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
#   abogus.test          MX 10 mx.abogus.test (127.0.70.35, nothing listens), TLSA 3 1 1 wrong
#                        digest; the MX RRset secure, but the RRSIG over mx.abogus.test's A
#                        RRset corrupted: the only MX host's address lookup is bogus
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
#   dane-big.test        signed with RSA-4096 keys (RSA_LEAVES; its DNSKEY set, denials and TLSA
#                        answers are all over 1232 octets),
#                        MX 10 mx.dane-big.test (127.0.70.21, dane-ee's server), TLSA RRset of
#                        26 records: 10 unusable 1 1 2, 15 usable 3 0 1 matching no certificate,
#                        and mx.dane-ee.test's 3 1 1 (16 usable; mxguard keeps them all; no
#                        3 1 2 filler, which would shadow 3 1 1 by digest agility, RFC 7671 §9):
#                        ~1.7 KB signed, over UDP always truncated (nsd sends at most 1232
#                        octets), so the answer only arrives over TCP
#   dane-bigcert.test    MX 10 mx.dane-bigcert.test (127.0.70.140), whose certificate is big
#                        (EC key, 70 long subjectAltNames: DER over 4 KB, DIR/certs/NAME.der.len),
#                        TLSA 3 0 0 = that whole certificate (no storage limit, §Limits)
#   dane-bigwrong.test   MX 10 mx.dane-bigwrong.test (127.0.70.141, presents its own ordinary
#                        certificate), TLSA 3 0 0 = mx.dane-bigcert.test's big certificate
#                        (usable, matches nothing there: DANE must refuse)
#   dane-swap.test       MX 10 mx.dane-swap.test (127.0.70.36), TTL 2 s; variants (tb_dns_swap):
#                        a (at start): TLSA 3 1 1 matching; b: TLSA 3 1 1 wrong digest only (a
#                        rollover gone wrong, an attacker's key); c: TLSA 3 0 1 of its
#                        certificate + 3 1 1 wrong digest (a new set that matches)
#   many.test            many destinations (t_handshakes.sh): dNNN.many.test (NNN = 000..119),
#                        each MX 10 mx.dNNN.many.test (its own MX name) on 127.0.70.(171 + NNN % 6)
#                        (20 names per address); TLSA 3 1 1 of mx.dane-ee.test's key where
#                        (NNN / 3) % 3 != 0 (78 DANE domains), none (secure denial) for the other 42
#
#   DIR/certs/ca.tlsa211       hex SHA-256 of the CA's SPKI (the "2 1 1" data)
#   DIR/certs/NAME.tlsa001     hex SHA-256 of NAME's certificate (DER), for "0 0 1"
#   DIR/tlsa.wrong311          a well-formed "3 1 1" rrdata that matches no key here
#   DIR/wrong-root.ds, DIR/wrong-root.key, DIR/delv-wrong.anchor
#                              a wrong trust anchor: a KSK for "." that signed nothing
#   DIR/nsd-unsigned.conf      nsd serving UNSIGNED copies of every zone on 127.0.70.54
#                              port 5300 (a resolver path that strips DNSSEC)
#
# MTA-STS zones (RFC 8461), all signed with a DS in test. Every MTA-STS domain D has
# "mta-sts.D A 127.0.70.60" (nginx, port 443, DIR/nginx/nginx.conf) and, unless said otherwise,
# one TXT "v=STSv1; id=..." at _mta-sts.D; "policy" = what nginx serves for D. MX servers
# present a test-CA certificate for their own name unless said otherwise:
#   sts-enforce.test     MX 10 mx.sts-enforce.test (127.0.70.40); enforce, mx: mx.sts-enforce.test
#   sts-nomatch.test     MX 10 mx.sts-nomatch.test (127.0.70.41, not in the policy),
#                        MX 20 mx2.sts-nomatch.test (127.0.70.42); enforce, mx: mx2.sts-nomatch.test
#                        (the policy file has CRLF line ends)
#   sts-nomatch-all.test MX 10 mx1.sts-nomatch-all.test (127.0.70.43), MX 20 mx2.sts-nomatch-all.test
#                        (127.0.70.44); enforce, mx: mx.sts-nomatch-all.test (matches neither)
#   sts-badcert.test     MX 10 mx.sts-badcert.test (127.0.70.45, its server presents
#                        wrong.invalid.test); enforce, mx: mx.sts-badcert.test
#   sts-testing.test     MX 10 mx.sts-testing.test (127.0.70.46, presents wrong.invalid.test);
#                        testing, mx: other.sts-testing.test (matches nothing)
#   sts-none.test        MX 10 mx.sts-none.test (127.0.70.47, presents wrong.invalid.test); none
#   sts-wild.test        MX 10 b.c.sts-wild.test (127.0.70.48), MX 20 a.sts-wild.test
#                        (127.0.70.49); enforce, mx: *.sts-wild.test (matches a., not b.c.)
#   sts-dane.test        MX 10 mx.sts-dane.test (127.0.70.52), TLSA 3 1 1 wrong digest; enforce,
#                        mx: mx.sts-dane.test (its certificate is WebPKI-valid)
#   sts-daneok.test      MX 10 mx.sts-daneok.test (127.0.70.58), TLSA 3 1 1 matching; enforce,
#                        mx: other.sts-daneok.test (matches nothing: DANE hosts are exempt)
#   sts-open.test        MX 10 mx.sts-open.test (127.0.70.50); no _mta-sts record at all.
#                        mx.sts-open.test is also the only MX of the edge-case domains below,
#                        whose policy (if they had a usable one) would be enforce with
#                        mx: nomatch.sts-open.test — so a wrongly accepted policy shows as a
#                        refused delivery:
#   sts-twotxt.test      two TXT records starting with v=STSv1 (a valid policy is served)
#   sts-badid.test       TXT "v=STSv1; id=bad-id1" ('-' is not allowed; a valid policy is served)
#   sts-redirect.test    the policy URL answers 301 to sts-enforce.test's policy
#   sts-notfound.test    404
#   sts-html.test        the policy as Content-Type text/html
#   sts-big.test         the policy padded to 70 KB (Content-Length announced)
#   sts-chunked.test     the same 70 KB sent chunked (no Content-Length: nginx ssi)
#   sts-slow.test        the policy at 16 bytes/s (nginx limit_rate): takes ~10 s
#   sts-wrongname.test   the policy host presents a test-CA certificate for wrong.invalid.test
#   sts-expired.test     the policy host's certificate (test CA, right name) expired 30 days ago
#   sts-cname.test       MX 10 mx.sts-cname.test (127.0.70.51); _mta-sts.sts-cname.test is a CNAME
#                        to _mta-sts.sts-cname.sts-elsewhere.test (TXT there); enforce,
#                        mx: mx.sts-cname.test
# Cache tests (alternative versions: see "variants" below):
#   sts-cache.test       a: MX 10 mx.sts-cache.test (127.0.70.53), id=cache1; enforce,
#                           mx: mx.sts-cache.test, max_age 86400
#                        b: no _mta-sts TXT, MX 10 mx2.sts-cache.test (127.0.70.54, valid cert,
#                           not in the policy) — an attacker stripping the TXT and the MX
#   sts-rotate.test      a: MX 10 mx.sts-rotate.test (127.0.70.55), id=rotate1; enforce,
#                           mx: mx.sts-rotate.test
#                        b: MX 10 mx2.sts-rotate.test (127.0.70.56), id=rotate2; policy variant
#                           b: enforce, mx: mx2.sts-rotate.test
#   sts-short.test       MX 10 mx.sts-short.test (127.0.70.57), id=short1; enforce,
#                        mx: other.sts-short.test (matches nothing), max_age 2
#
#   DIR/certs/mta-sts.D.crt    the policy hosts' certificates
#   DIR/www/mta-sts.D/.well-known/mta-sts.txt   the policies nginx serves (root per vhost)
#   DIR/www/variants/mta-sts.D.V.txt            alternative policies (lib.sh: tb_sts_policy D V)
#   DIR/zones/variants/D.V.zone(.signed)        alternative zone versions signed with D's keys
#                              (V = a: as served at start; lib.sh: tb_dns_swap D V)
#   DIR/nginx/nginx.conf       nginx on 127.0.70.60:443, one server block (own certificate,
#                              SNI) per mta-sts.D; run as `nginx -p DIR/nginx/ -c DIR/nginx/nginx.conf
#                              -e DIR/nginx/error.log`; access log per vhost
#                              DIR/nginx/access-mta-sts.D.log; unknown SNI gets wrong.invalid.test
#   DIR/sts.domains            "D HOST_CERT" for every vhost (for the test-bed checks)
#
# TLSRPT report mail zones (t_tlsrpt_mail.sh), all signed with a DS in test.:
#   rpt-mail.test    MX 10 mx.rpt-mail.test (127.0.70.61; its server offers no STARTTLS),
#                    _smtp._tls TXT "v=TLSRPTv1; rua=mailto:tlsrpt@rpt-inbox.test"
#   rpt-fail.test    MX 10 mx.rpt-mail.test, rua=mailto:tempfail@rpt-inbox.test (RCPT 451)
#   rpt-reject.test  MX 10 mx.rpt-mail.test, rua=mailto:reject@rpt-inbox.test (RCPT 550)
#   rpt-inbox.test   MX 10 mx.rpt-inbox.test (127.0.70.62), TLSA 3 1 1 wrong digest: DANE would
#                    refuse it; report mail goes out with opportunistic TLS all the same
#   rpt-sender.test  tlsrpt2024._domainkey TXT: the DKIM key DIR/dkim/rpt-sender.key (RSA 2048)
# TLSRPT reports of a fleet (t_fleet_report.sh), signed, MX 10 mx.rpt-mail.test:
#   rpt-fleet.test   rua=mailto:fleet@rpt-inbox.test,https://collect.rpt-fleet.test:8443/fleet
#   rpt-fleet2.test  rua=mailto:fleet2@rpt-inbox.test,https://collect.rpt-fleet.test:8443/fleet2
#   rpt-hold.test    rua=https://collect.rpt-fleet.test:8443/hold
#   collect.rpt-fleet.test A 127.0.70.63 (rpt_collector.py; certificate DIR/certs/collect.rpt-fleet.test)
#
# Hostile MX zones (t_hostile_*.sh; hostile_mx.py listens on all these addresses), signed:
#   hostile.test       MX 10 mx1.hostile.test (127.0.70.160), MX 20 mx2.hostile.test
#                      (127.0.70.161); no TLSA, no MTA-STS: opportunistic;
#                      _smtp._tls TXT "v=TLSRPTv1; rua=mailto:rua@hostile-rua.test"
#   hostile-dane.test  MX 10 mx.hostile-dane.test (127.0.70.162), TLSA 3 1 1 matching
#   hostile2.test      MX 10 mx.hostile2.test (127.0.70.163): the second leg
#   hostile-rua.test   MX 10 mx.hostile-rua.test (127.0.70.165): where hostile.test's TLSRPT
#                      report mail goes
#   (127.0.70.164, no DNS: the queue's bounce route in the hostile suite)
#
# A TLD outside test. (t_dns_auto.sh), delegated from the root with a DS and its own name server
# ns.dane-rec. (glue 127.0.70.53): resolution from the root (getdns' recursive mode) is tested
# here, because libunbound answers every name under test. itself (RFC 6761, one of its default
# local zones). Recursion asks port 53: such a test adds "ip-address: 127.0.70.53@53" to nsd.conf.
#   dane-rec.          MX 10 mx.dane-rec. (127.0.70.21, dane-ee's server), TLSA 3 1 1 matching
#                      mx.dane-ee.test's key (DANE-EE checks no name)
set -euo pipefail

DIR=${1:?usage: mkzones.sh DIR}
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)
NS_IP=127.0.70.53
NS_PORT=5300
STRIPPED_IP=127.0.70.54
HTTPS_IP=127.0.70.60
HTTPS_PORT=443

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

# make_leaf [-d START END] NAME [SAN...] — with -d the certificate is valid from START to END
# (openssl ca -startdate/-enddate, format YYYYMMDDHHMMSSZ; e.g. an already expired one)
make_leaf() {
    local dates=()
    if [ "$1" = -d ]; then dates=("$2" "$3"); shift 3; fi
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
    if [ ${#dates[@]} = 0 ]; then
        openssl x509 -req -in "$c/$name.csr" -CA "$c/ca.crt" -CAkey "$c/ca.key" \
            -CAcreateserial -days 825 -sha256 -extfile "$c/$name.ext" -out "$c/$name.crt" 2>/dev/null
    else
        # `openssl x509 -req` (OpenSSL 3.0) cannot set a start date: a minimal `openssl ca`
        mkdir -p "$c/ca.db"
        [ -f "$c/ca.db/serial" ] || { : >"$c/ca.db/index.txt"; openssl rand -hex 8 >"$c/ca.db/serial"; }
        cat >"$c/ca.db/ca.cnf" <<EOF
[ ca ]
default_ca = testca
[ testca ]
database = $c/ca.db/index.txt
new_certs_dir = $c/ca.db
serial = $c/ca.db/serial
default_md = sha256
policy = anything
unique_subject = no
[ anything ]
commonName = supplied
EOF
        openssl ca -batch -notext -config "$c/ca.db/ca.cnf" -cert "$c/ca.crt" -keyfile "$c/ca.key" \
            -startdate "${dates[0]}" -enddate "${dates[1]}" -extfile "$c/$name.ext" \
            -in "$c/$name.csr" -out "$c/$name.crt" 2>/dev/null
    fi
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
         real.dane-target.test mx.dane-expired.test mx.sts-daneok.test mx.dane-swap.test; do
    make_leaf "$h"
done
# docs/ARCHITECTURE.md §Limits: a big certificate (70 long names: DER over 4 KB) for a TLSA "3 0 0"
# record, and an ordinary one (made here, before the background job below: make_leaf's serial file
# is shared)
big_sans=()
for i in $(seq -w 70); do big_sans+=("san-$i.a-rather-long-subject-alternative-name.dane-bigcert.test"); done
make_leaf mx.dane-bigcert.test "${big_sans[@]}"
make_leaf mx.dane-bigwrong.test
for h in mx1.hostile.test mx2.hostile.test mx.hostile-dane.test mx.hostile2.test mx.hostile-rua.test; do
    make_leaf "$h"
done
# "D CERT": the vhost mta-sts.D and the certificate it presents
cat >"$DIR/sts.domains" <<EOF
sts-enforce.test mta-sts.sts-enforce.test
sts-nomatch.test mta-sts.sts-nomatch.test
sts-nomatch-all.test mta-sts.sts-nomatch-all.test
sts-badcert.test mta-sts.sts-badcert.test
sts-testing.test mta-sts.sts-testing.test
sts-none.test mta-sts.sts-none.test
sts-wild.test mta-sts.sts-wild.test
sts-dane.test mta-sts.sts-dane.test
sts-daneok.test mta-sts.sts-daneok.test
sts-twotxt.test mta-sts.sts-twotxt.test
sts-badid.test mta-sts.sts-badid.test
sts-cname.test mta-sts.sts-cname.test
sts-redirect.test mta-sts.sts-redirect.test
sts-notfound.test mta-sts.sts-notfound.test
sts-html.test mta-sts.sts-html.test
sts-big.test mta-sts.sts-big.test
sts-chunked.test mta-sts.sts-chunked.test
sts-slow.test mta-sts.sts-slow.test
sts-wrongname.test wrong.invalid.test
sts-expired.test mta-sts.sts-expired.test
sts-cache.test mta-sts.sts-cache.test
sts-rotate.test mta-sts.sts-rotate.test
sts-short.test mta-sts.sts-short.test
EOF
# MTA-STS: MX hosts, then the policy hosts (one per domain served by nginx). In the
# background (nothing needs them before the nginx config, which waits for it): together with
# the DNSSEC signing below that saves seconds per test on a 2-core machine.
(
    # (none for mx.sts-badcert.test, mx.sts-testing.test, mx.sts-none.test: they present
    # wrong.invalid.test)
    for h in mx.sts-enforce.test mx.sts-nomatch.test mx2.sts-nomatch.test mx1.sts-nomatch-all.test \
             mx2.sts-nomatch-all.test b.c.sts-wild.test a.sts-wild.test mx.sts-open.test \
             mx.sts-cname.test mx.sts-dane.test mx.sts-cache.test mx2.sts-cache.test \
             mx.sts-rotate.test mx2.sts-rotate.test mx.sts-short.test; do
        make_leaf "$h"
    done
    while read -r d cert; do
        case $d in
            sts-wrongname.test) ;; # presents wrong.invalid.test (made above)
            sts-expired.test) # valid from 400 to 30 days ago
                make_leaf -d "$(date -u -d '400 days ago' +%Y%m%d%H%M%SZ)" \
                    "$(date -u -d '30 days ago' +%Y%m%d%H%M%SZ)" "$cert" ;;
            *) make_leaf "$cert" ;;
        esac
    done <"$DIR/sts.domains"
) &
STS_CERTS_PID=$!
trap 'kill "$STS_CERTS_PID" 2>/dev/null || true' EXIT # if this script fails before the wait
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
{
    echo "@	IN MX 10 mx.dane-big.test."
    echo "mx	IN A 127.0.70.21"
    for i in $(seq 1 10); do
        echo "_25._tcp.mx	IN TLSA 1 1 2 $(printf 'pkix filler %d' "$i" | openssl dgst -sha512 -r | cut -d' ' -f1)"
    done
    for i in $(seq 1 15); do
        echo "_25._tcp.mx	IN TLSA 3 0 1 $(printf 'filler %d' "$i" | openssl dgst -sha256 -r | cut -d' ' -f1)"
    done
    echo "_25._tcp.mx	IN TLSA $(tlsa311 mx.dane-ee.test)"
} | write_leaf dane-big.test.
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
write_leaf abogus.test. <<EOF
@	IN MX 10 mx.abogus.test.
mx	IN A 127.0.70.35
_25._tcp.mx	IN TLSA $WRONG311
EOF
for n in $(seq 0 119); do
    printf -v nn '%03d' "$n"
    echo "d$nn	IN MX 10 mx.d$nn"
    echo "mx.d$nn	IN A 127.0.70.$((171 + n % 6))"
    [ $((n / 3 % 3)) -eq 0 ] || echo "_25._tcp.mx.d$nn	IN TLSA $(tlsa311 mx.dane-ee.test)"
done | write_leaf many.test.
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

# ---- DANE zones with a big "3 0 0" record (docs/ARCHITECTURE.md §Limits)
openssl x509 -in "$DIR/certs/mx.dane-bigcert.test.crt" -outform DER >"$DIR/certs/mx.dane-bigcert.test.der"
wc -c <"$DIR/certs/mx.dane-bigcert.test.der" | tr -d ' ' >"$DIR/certs/mx.dane-bigcert.test.der.len"
BIG300="3 0 0 $(od -An -v -tx1 "$DIR/certs/mx.dane-bigcert.test.der" | tr -d ' \n')"
write_leaf dane-bigcert.test. <<EOF
@	IN MX 10 mx.dane-bigcert.test.
mx	IN A 127.0.70.140
_25._tcp.mx	IN TLSA $BIG300
EOF
write_leaf dane-bigwrong.test. <<EOF
@	IN MX 10 mx.dane-bigwrong.test.
mx	IN A 127.0.70.141
_25._tcp.mx	IN TLSA $BIG300
EOF
DANE_BIG_LEAVES="dane-bigcert.test dane-bigwrong.test"

# ---- MTA-STS zones
# sts_rr ID — the _mta-sts TXT record with ID and the policy host's address
sts_rr() {
    printf '_mta-sts\tIN TXT "v=STSv1; id=%s"\n' "$1"
    printf 'mta-sts\tIN A %s\n' "$HTTPS_IP"
}
write_leaf sts-enforce.test. <<EOF
@	IN MX 10 mx.sts-enforce.test.
mx	IN A 127.0.70.40
$(sts_rr enforce1)
EOF
write_leaf sts-nomatch.test. <<EOF
@	IN MX 10 mx.sts-nomatch.test.
@	IN MX 20 mx2.sts-nomatch.test.
mx	IN A 127.0.70.41
mx2	IN A 127.0.70.42
$(sts_rr nomatch1)
EOF
write_leaf sts-nomatch-all.test. <<EOF
@	IN MX 10 mx1.sts-nomatch-all.test.
@	IN MX 20 mx2.sts-nomatch-all.test.
mx1	IN A 127.0.70.43
mx2	IN A 127.0.70.44
$(sts_rr nomatchall1)
EOF
write_leaf sts-badcert.test. <<EOF
@	IN MX 10 mx.sts-badcert.test.
mx	IN A 127.0.70.45
$(sts_rr badcert1)
EOF
write_leaf sts-testing.test. <<EOF
@	IN MX 10 mx.sts-testing.test.
mx	IN A 127.0.70.46
$(sts_rr testing1)
EOF
write_leaf sts-none.test. <<EOF
@	IN MX 10 mx.sts-none.test.
mx	IN A 127.0.70.47
$(sts_rr none1)
EOF
write_leaf sts-wild.test. <<EOF
@	IN MX 10 b.c.sts-wild.test.
@	IN MX 20 a.sts-wild.test.
b.c	IN A 127.0.70.48
a	IN A 127.0.70.49
$(sts_rr wild1)
EOF
write_leaf sts-dane.test. <<EOF
@	IN MX 10 mx.sts-dane.test.
mx	IN A 127.0.70.52
_25._tcp.mx	IN TLSA $WRONG311
$(sts_rr dane1)
EOF
write_leaf sts-daneok.test. <<EOF
@	IN MX 10 mx.sts-daneok.test.
mx	IN A 127.0.70.58
_25._tcp.mx	IN TLSA $(tlsa311 mx.sts-daneok.test)
$(sts_rr daneok1)
EOF
write_leaf sts-open.test. <<EOF
@	IN MX 10 mx.sts-open.test.
mx	IN A 127.0.70.50
EOF
write_leaf sts-twotxt.test. <<EOF
@	IN MX 10 mx.sts-open.test.
$(sts_rr twotxt1)
_mta-sts	IN TXT "v=STSv1; id=twotxt2"
EOF
write_leaf sts-badid.test. <<EOF
@	IN MX 10 mx.sts-open.test.
$(sts_rr bad-id1)
EOF
write_leaf sts-cname.test. <<EOF
@	IN MX 10 mx.sts-cname.test.
mx	IN A 127.0.70.51
_mta-sts	IN CNAME _mta-sts.sts-cname.sts-elsewhere.test.
mta-sts	IN A $HTTPS_IP
EOF
write_leaf sts-elsewhere.test. <<'EOF'
_mta-sts.sts-cname	IN TXT "v=STSv1; id=cname1"
EOF
for d in redirect notfound html big chunked slow wrongname expired; do
    write_leaf "sts-$d.test." <<EOF
@	IN MX 10 mx.sts-open.test.
$(sts_rr "${d}1")
EOF
done
# ---- TLSRPT report mail zones
mkdir -p "$DIR/dkim"
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$DIR/dkim/rpt-sender.key" 2>/dev/null
DKIM_P=$(openssl pkey -in "$DIR/dkim/rpt-sender.key" -pubout -outform DER | base64 -w0)
for d in mail:tlsrpt fail:tempfail reject:reject; do
    write_leaf "rpt-${d%:*}.test." <<EOF
@	IN MX 10 mx.rpt-mail.test.
_smtp._tls	IN TXT "v=TLSRPTv1; rua=mailto:${d#*:}@rpt-inbox.test"
EOF
done
echo "mx	IN A 127.0.70.61" >>"$(zf rpt-mail.test.)"
write_leaf rpt-inbox.test. <<EOF
@	IN MX 10 mx.rpt-inbox.test.
mx	IN A 127.0.70.62
_25._tcp.mx	IN TLSA $WRONG311
EOF
for d in fleet:"mailto:fleet@rpt-inbox.test,https://collect.rpt-fleet.test:8443/fleet" \
    fleet2:"mailto:fleet2@rpt-inbox.test,https://collect.rpt-fleet.test:8443/fleet2" \
    hold:"https://collect.rpt-fleet.test:8443/hold"; do
    write_leaf "rpt-${d%%:*}.test." <<EOF
@	IN MX 10 mx.rpt-mail.test.
_smtp._tls	IN TXT "v=TLSRPTv1; rua=${d#*:}"
EOF
done
echo "collect	IN A 127.0.70.63" >>"$(zf rpt-fleet.test.)"
make_leaf collect.rpt-fleet.test
write_leaf rpt-sender.test. <<EOF
tlsrpt2024._domainkey	IN TXT "v=DKIM1; k=rsa; " "p=${DKIM_P:0:200}" "${DKIM_P:200}"
EOF
# ---- hostile MX zones (t_hostile_*.sh)
write_leaf hostile.test. <<EOF
@	IN MX 10 mx1.hostile.test.
@	IN MX 20 mx2.hostile.test.
mx1	IN A 127.0.70.160
mx2	IN A 127.0.70.161
_smtp._tls	IN TXT "v=TLSRPTv1; rua=mailto:rua@hostile-rua.test"
EOF
write_leaf hostile-dane.test. <<EOF
@	IN MX 10 mx.hostile-dane.test.
mx	IN A 127.0.70.162
_25._tcp.mx	IN TLSA $(tlsa311 mx.hostile-dane.test)
EOF
write_leaf hostile2.test. <<EOF
@	IN MX 10 mx.hostile2.test.
mx	IN A 127.0.70.163
EOF
write_leaf hostile-rua.test. <<EOF
@	IN MX 10 mx.hostile-rua.test.
mx	IN A 127.0.70.165
EOF

# ---- the TLD outside test. (delegated from the root below)
cat >"$(zf dane-rec.)" <<EOF
\$ORIGIN dane-rec.
\$TTL 300
@	IN SOA ns.dane-rec. hostmaster.dane-rec. 2024010101 3600 600 86400 300
@	IN NS ns.dane-rec.
ns	IN A $NS_IP
@	IN MX 10 mx.dane-rec.
mx	IN A 127.0.70.21
_25._tcp.mx	IN TLSA $(tlsa311 mx.dane-ee.test)
EOF
ROOT_LEAVES="dane-rec"

# variant b first (moved aside), then variant a (what nsd serves at start)
mkdir -p "$DIR/zones/variants"
write_leaf sts-cache.test. <<EOF
@	IN MX 10 mx2.sts-cache.test.
mx	IN A 127.0.70.53
mx2	IN A 127.0.70.54
mta-sts	IN A $HTTPS_IP
EOF
mv "$(zf sts-cache.test.)" "$DIR/zones/variants/sts-cache.test.b.zone"
write_leaf sts-cache.test. <<EOF
@	IN MX 10 mx.sts-cache.test.
mx	IN A 127.0.70.53
mx2	IN A 127.0.70.54
$(sts_rr cache1)
EOF
write_leaf sts-rotate.test. <<EOF
@	IN MX 10 mx2.sts-rotate.test.
mx	IN A 127.0.70.55
mx2	IN A 127.0.70.56
$(sts_rr rotate2)
EOF
mv "$(zf sts-rotate.test.)" "$DIR/zones/variants/sts-rotate.test.b.zone"
write_leaf sts-rotate.test. <<EOF
@	IN MX 10 mx.sts-rotate.test.
mx	IN A 127.0.70.55
mx2	IN A 127.0.70.56
$(sts_rr rotate1)
EOF
write_leaf sts-short.test. <<EOF
@	IN MX 10 mx.sts-short.test.
mx	IN A 127.0.70.57
$(sts_rr short1)
EOF
STS_VARIANT_ZONES="sts-cache.test sts-rotate.test"
# dane-swap.test (t_dane_ticket_change.sh): its TLSA RRset changes while mxguard holds a
# connection and TLS sessions verified under the old one; TTL 2 s. Variants b and c first
# (moved aside), then a (what nsd serves at start).
dane_swap() { # dane_swap TLSA_RRDATA... — the zone with these TLSA records, TTL 2 s
    local r
    {
        echo "@	IN MX 10 mx.dane-swap.test."
        echo "mx	IN A 127.0.70.36"
        for r in "$@"; do echo "_25._tcp.mx	IN TLSA $r"; done
    } | write_leaf dane-swap.test.
    sed -i 's/^\$TTL 300$/$TTL 2/' "$(zf dane-swap.test.)"
}
dane_swap "$WRONG311"
mv "$(zf dane-swap.test.)" "$DIR/zones/variants/dane-swap.test.b.zone"
dane_swap "3 0 1 $(cat "$DIR/certs/mx.dane-swap.test.tlsa001")" "$WRONG311"
mv "$(zf dane-swap.test.)" "$DIR/zones/variants/dane-swap.test.c.zone"
dane_swap "$(tlsa311 mx.dane-swap.test)"
DANE_VARIANT_ZONES="dane-swap.test"

# the policies nginx serves
# sts_policy FILE MODE MAX_AGE [MX...] — write a policy file (LF line ends)
sts_policy() {
    local f=$1 mode=$2 age=$3 m; shift 3
    mkdir -p "$(dirname "$f")"
    {
        echo "version: STSv1"
        echo "mode: $mode"
        for m in "$@"; do echo "mx: $m"; done
        echo "max_age: $age"
    } >"$f"
}
pol() { echo "$DIR/www/mta-sts.$1/.well-known/mta-sts.txt"; } # policy file of domain D
sts_policy "$(pol sts-enforce.test)" enforce 86400 mx.sts-enforce.test
sts_policy "$(pol sts-nomatch.test)" enforce 86400 mx2.sts-nomatch.test
sed -i 's/$/\r/' "$(pol sts-nomatch.test)" # CRLF is allowed too
sts_policy "$(pol sts-nomatch-all.test)" enforce 86400 mx.sts-nomatch-all.test
sts_policy "$(pol sts-badcert.test)" enforce 86400 mx.sts-badcert.test
sts_policy "$(pol sts-testing.test)" testing 86400 other.sts-testing.test
sts_policy "$(pol sts-none.test)" none 86400
sts_policy "$(pol sts-wild.test)" enforce 86400 '*.sts-wild.test'
sts_policy "$(pol sts-dane.test)" enforce 86400 mx.sts-dane.test
sts_policy "$(pol sts-daneok.test)" enforce 86400 other.sts-daneok.test
sts_policy "$(pol sts-cname.test)" enforce 86400 mx.sts-cname.test
for d in twotxt badid html big chunked slow wrongname expired; do
    sts_policy "$(pol "sts-$d.test")" enforce 86400 nomatch.sts-open.test
done
# 70 KB: the policy, then unknown keys (ignored by a parser) as padding
for d in big chunked; do
    pad=$(printf '%080d' 0)
    for i in $(seq 740); do printf 'x-padding-%04d: %s\n' "$i" "$pad"; done >>"$(pol "sts-$d.test")"
done
sts_policy "$(pol sts-cache.test)" enforce 86400 mx.sts-cache.test
sts_policy "$(pol sts-rotate.test)" enforce 86400 mx.sts-rotate.test
sts_policy "$(pol sts-short.test)" enforce 2 other.sts-short.test
mkdir -p "$DIR/www/variants"
sts_policy "$DIR/www/variants/mta-sts.sts-rotate.test.b.txt" enforce 86400 mx2.sts-rotate.test
for d in sts-cache.test sts-rotate.test sts-short.test; do
    cp "$(pol $d)" "$DIR/www/variants/mta-sts.$d.a.txt"
done

DANE_LEAVES="dane-ee.test dane-ta.test dane-taname.test dane-2nd.test dane-allbad.test dane-bogus.test abogus.test
 dane-nodata.test dane-unusable.test dane-unusable-plain.test dane-nostarttls.test dane-cname.test
 dane-target.test dane-expired.test dane-big.test dane-swap.test"
STS_LEAVES="sts-enforce.test sts-nomatch.test sts-nomatch-all.test sts-badcert.test sts-testing.test
 sts-none.test sts-wild.test sts-dane.test sts-daneok.test sts-open.test sts-twotxt.test sts-badid.test
 sts-cname.test sts-elsewhere.test sts-redirect.test sts-notfound.test sts-html.test sts-big.test sts-chunked.test
 sts-slow.test sts-wrongname.test sts-expired.test sts-cache.test sts-rotate.test sts-short.test"
RPT_LEAVES="rpt-mail.test rpt-fail.test rpt-reject.test rpt-inbox.test rpt-sender.test
 rpt-fleet.test rpt-fleet2.test rpt-hold.test"
HOSTILE_LEAVES="hostile.test hostile-dane.test hostile2.test hostile-rua.test"
SIGNED_LEAVES="example.test other.test fallback.test implicit.test plain.test badtls.test nullmx.test bogus.test self.test
 $DANE_LEAVES $STS_LEAVES $RPT_LEAVES $HOSTILE_LEAVES"
SIGNED_LEAVES="$SIGNED_LEAVES $DANE_BIG_LEAVES many.test"
DANE_LEAVES="$DANE_LEAVES $DANE_BIG_LEAVES"
UNSIGNED_LEAVES="insecure.test"
# signed zones meant to fail validation (every other signed zone must pass dnssec-verify)
BOGUS_LEAVES="bogus.test dane-bogus.test abogus.test dane-expired.test"
# of those, the zones where one RRset alone is bogus (corrupt_rrsig): "OWNER TYPE" of that RRset.
# dnssec-verify must name it and nothing else (the rest, e.g. a secure MX RRset, stays valid).
declare -A BOGUS_RRSET=([bogus.test]="bogus.test MX" [dane-bogus.test]="_25._tcp.mx.dane-bogus.test TLSA"
                        [abogus.test]="mx.abogus.test A")
# signed with RSA-4096 keys instead of ECDSA P-256: 512-octet signatures make its DNSKEY set,
# its denials and its TLSA RRset too big for UDP (several truncated answers at once)
RSA_LEAVES="dane-big.test"

# sign ZONE [START END]: keys into keys/ZONE, signed file next to the zone file; prints
# nothing. START/END (dnssec-signzone -s/-e) default to an hour ago / a year from now; when
# given, dnssec-signzone's own post-signing verification is skipped (-P: it refuses
# signatures that have already expired).
sign() {
    local z=$1 kd times=(-e +31536000 -s -3600)
    [ $# -ge 3 ] && times=(-P -s "$2" -e "$3")
    kd="$DIR/keys/${z%.}"; [ "$z" = "." ] && kd="$DIR/keys/root"
    mkdir -p "$kd"
    local alg=(-a ECDSAP256SHA256)
    case " $RSA_LEAVES " in *" ${z%.} "*) alg=(-a RSASHA256 -b 4096) ;; esac
    dnssec-keygen -q -K "$kd" "${alg[@]}" -f KSK -n ZONE "$z" >"$kd/ksk.name"
    dnssec-keygen -q -K "$kd" "${alg[@]}" -n ZONE "$z" >"$kd/zsk.name"
    sign_file "$z" "$(zf "$z")" "${times[@]}"
}

# sign_file ZONE FILE [dnssec-signzone time options] — sign FILE (into FILE.signed) with
# ZONE's existing keys (an alternative version of a zone: its DS in the parent stays valid)
sign_file() {
    local z=$1 f=$2 kd times=(-e +31536000 -s -3600); shift 2
    [ $# -gt 0 ] && times=("$@")
    kd="$DIR/keys/${z%.}"; [ "$z" = "." ] && kd="$DIR/keys/root"
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
for z in $ROOT_LEAVES; do sign "$z."; done
sign dane-expired.test. "$(date -u -d '30 days ago' +%Y%m%d%H%M%S)" "$(date -u -d '10 days ago' +%Y%m%d%H%M%S)"

# zone variants (tb_dns_swap): "a" = the version served at start, "b" signed with the same keys
for z in $STS_VARIANT_ZONES; do
    cp "$(zf "$z.")" "$DIR/zones/variants/$z.a.zone"
    cp "$(zf "$z.").signed" "$DIR/zones/variants/$z.a.zone.signed"
    sign_file "$z." "$DIR/zones/variants/$z.b.zone"
done
for z in $DANE_VARIANT_ZONES; do
    cp "$(zf "$z.")" "$DIR/zones/variants/$z.a.zone"
    cp "$(zf "$z.").signed" "$DIR/zones/variants/$z.a.zone.signed"
    sign_file "$z." "$DIR/zones/variants/$z.b.zone"
    sign_file "$z." "$DIR/zones/variants/$z.c.zone"
done

# bogus.test: corrupt the signature of the (single, ZSK) RRSIG over the MX RRset.
corrupt_rrsig bogus.test. MX
# dane-bogus.test: the same for the TLSA RRset (its MX and A RRsets stay secure).
corrupt_rrsig dane-bogus.test. TLSA _25._tcp.mx.dane-bogus.test.
# abogus.test: the same for mx.abogus.test's A RRset (its MX and TLSA RRsets stay secure).
corrupt_rrsig abogus.test. A mx.abogus.test.

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
    for z in $ROOT_LEAVES; do
        echo "$z.	IN NS ns.$z."
        echo "ns.$z.	IN A $NS_IP"
        ds_of "$z."
    done
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
    for z in $SIGNED_LEAVES $ROOT_LEAVES; do
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

# ---------------------------------------------------------------- nginx.conf (MTA-STS policy hosts)
# Run in the foreground (tb_spawn): nginx -p DIR/nginx/ -c DIR/nginx/nginx.conf -e DIR/nginx/error.log
# (-e: Debian's compiled-in error log is /var/log/nginx/error.log). Every path is in DIR/nginx.
# sts_vhost D CERT [EXTRA_LINES] — one server block for mta-sts.D presenting CERT
sts_vhost() {
    local d=$1 cert=$2 extra=${3:-}
    mkdir -p "$DIR/www/mta-sts.$d/.well-known"
    cat <<EOF
    server {
        listen $HTTPS_IP:$HTTPS_PORT ssl;
        server_name mta-sts.$d;
        ssl_certificate $DIR/certs/$cert.crt;
        ssl_certificate_key $DIR/certs/$cert.key;
        root $DIR/www/mta-sts.$d;
        access_log $DIR/nginx/access-mta-sts.$d.log sts;
${extra:+$extra
}    }
EOF
}
mkdir -p "$DIR/nginx/tmp"
wait "$STS_CERTS_PID" || { echo "mkzones: making the MTA-STS certificates failed" >&2; exit 1; }
trap - EXIT # (it is gone: its pid must not be signalled any more)
{
    cat <<EOF
# nginx for the mxguard test-bed (mkzones.sh): the MTA-STS policy hosts mta-sts.D
daemon off;
worker_processes 1;
pid $DIR/nginx/nginx.pid;
error_log $DIR/nginx/error.log info;
$([ "$(id -u)" = 0 ] && echo "user root root; # workers read DIR/www whatever the umask was")
events { worker_connections 64; }
http {
    types { }
    default_type text/plain;
    server_tokens off;
    keepalive_timeout 5;
    client_body_temp_path $DIR/nginx/tmp/client_body;
    proxy_temp_path $DIR/nginx/tmp/proxy;
    fastcgi_temp_path $DIR/nginx/tmp/fastcgi;
    uwsgi_temp_path $DIR/nginx/tmp/uwsgi;
    scgi_temp_path $DIR/nginx/tmp/scgi;
    log_format sts '\$time_iso8601 \$remote_addr sni=\$ssl_server_name "\$request" \$status \$bytes_sent';
    access_log $DIR/nginx/access.log sts;
    ssl_protocols TLSv1.2 TLSv1.3;
    # requests for any other name (or without SNI)
    server {
        listen $HTTPS_IP:$HTTPS_PORT ssl default_server;
        server_name _;
        ssl_certificate $DIR/certs/wrong.invalid.test.crt;
        ssl_certificate_key $DIR/certs/wrong.invalid.test.key;
        return 421;
    }
EOF
    while read -r d cert; do
        case $d in
            sts-redirect.test) sts_vhost "$d" "$cert" \
                "        location = /.well-known/mta-sts.txt { return 301 https://mta-sts.sts-enforce.test/.well-known/mta-sts.txt; }" ;;
            sts-html.test) sts_vhost "$d" "$cert" "        default_type text/html;" ;;
            # ssi (with nothing to include) drops the Content-Length: the body goes chunked
            sts-chunked.test) sts_vhost "$d" "$cert" "        ssi on; ssi_types text/plain;" ;;
            # 16 bytes/s for headers and body alike: ~10 s for the response
            sts-slow.test) sts_vhost "$d" "$cert" "        limit_rate 16; sendfile off;" ;;
            *) sts_vhost "$d" "$cert" ;;
        esac
    done <"$DIR/sts.domains"
    echo "}"
} >"$DIR/nginx/nginx.conf"

# ---------------------------------------------------------------- self-checks
# Nothing may point outside 127.0.70.0/24.
if grep -hE '\sIN\s+A\s' "$DIR"/zones/*.zone "$DIR"/zones/variants/*.zone | awk '{print $NF}' | grep -qvE '^127\.0\.70\.[0-9]+$'; then
    echo "mkzones: an A record outside 127.0.70.0/24" >&2
    exit 1
fi
# Every signed zone passes dnssec-verify (complete, correct and current signatures), except
# those meant to be bogus, which must fail it (those in BOGUS_RRSET: for that one RRset only).
for z in . test $SIGNED_LEAVES $ROOT_LEAVES; do
    [ "$z" = . ] || z="$z."
    if [[ " $(echo $BOGUS_LEAVES) " == *" ${z%.} "* ]]; then
        if dnssec-verify -q -o "$z" "$(zf "$z").signed" >"$DIR/verify.out" 2>&1; then
            echo "mkzones: $z passes dnssec-verify but is meant to be bogus" >&2
            exit 1
        fi
        if [ -n "${BOGUS_RRSET[${z%.}]:-}" ] &&
           [ "$(sed -n 's/^No correct [^ ]* signature for //p' "$DIR/verify.out")" != "${BOGUS_RRSET[${z%.}]}" ]; then
            cat "$DIR/verify.out" >&2
            echo "mkzones: in $z, exactly the RRset ${BOGUS_RRSET[${z%.}]} must be bogus" >&2
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
for n in ca mx.dane-ee.test mx2.dane-2nd.test mx.dane-bogus.test mx.dane-nostarttls.test mx.dane-swap.test \
         mx.sts-daneok.test real.dane-target.test mx.dane-expired.test mx.dane-unusable.test mx.dane-unusable-plain.test; do
    f="$DIR/certs/$n.tlsa311"; [ $n = ca ] && f="$DIR/certs/ca.tlsa211"
    if [ "$(spki256 "$DIR/certs/$n.crt")" != "$(cat "$f")" ]; then
        echo "mkzones: $f does not match $n.crt" >&2
        exit 1
    fi
done
for n in mx.dane-unusable.test mx.dane-unusable-plain.test mx.dane-swap.test; do
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
# MTA-STS: every zone has a DS in test.; the variants verify with the zone's keys; the
# oversized policies are over 64 KiB; the expired certificate is expired but otherwise valid;
# nginx accepts its config.
for z in $STS_LEAVES; do
    grep -qE "^$z\.[[:space:]].*[[:space:]]DS[[:space:]]" "$(zf test.)" ||
        { echo "mkzones: no DS for $z in test." >&2; exit 1; }
done
for z in $STS_VARIANT_ZONES $DANE_VARIANT_ZONES; do
    for v in b $(case " $DANE_VARIANT_ZONES " in *" $z "*) echo c ;; esac); do
        if ! dnssec-verify -q -o "$z." "$DIR/zones/variants/$z.$v.zone.signed" >"$DIR/verify.out" 2>&1; then
            cat "$DIR/verify.out" >&2
            echo "mkzones: variant $v of $z does not verify" >&2
            exit 1
        fi
    done
done
rm -f "$DIR/verify.out"
for d in sts-big.test sts-chunked.test; do
    [ "$(stat -c %s "$(pol $d)")" -gt 70000 ] || { echo "mkzones: $(pol $d) is not over 70000 bytes" >&2; exit 1; }
done
c="$DIR/certs/mta-sts.sts-expired.test.crt"
# (only "expired" (X509 error 10) at depth 0; the CA itself is younger than the leaf's dates)
if openssl x509 -in "$c" -noout -checkend 0 >/dev/null ||
   [ "$(openssl verify -CAfile "$DIR/certs/ca.crt" "$c" 2>&1 | grep -E '^error [0-9]+ at' | tr '\n' ' ')" != \
     "error 10 at 0 depth lookup: certificate has expired " ]; then
    echo "mkzones: $c is not an expired certificate of the test CA" >&2
    exit 1
fi
if command -v nginx >/dev/null 2>&1 &&
   ! nginx -t -q -p "$DIR/nginx/" -c "$DIR/nginx/nginx.conf" -e "$DIR/nginx/error.log" >&2; then
    echo "mkzones: nginx -t fails on $DIR/nginx/nginx.conf" >&2
    exit 1
fi
touch "$DIR/.done"

