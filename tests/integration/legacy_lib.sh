# legacy_lib.sh — shared helpers for the legacy-MTA tests (t_mta_*.sh; sourced after lib.sh).
#
# The MTAs conflict as Debian packages (each is a mail-transport-agent), so none is installed:
# lg_fetch downloads the packages with `apt-get download`, unpacks them with `dpkg-deb -x` into
# a private tree per MTA (with the libraries they need that the machine lacks) and caches it in
# $MXG_MTA_CACHE (default /var/cache/mxguard-tests/mta). `scripts/setup.sh deps` fills the
# cache (tests/integration/legacy_fetch.sh), so the scripts also run where there is no network
# (a test network namespace). Every MTA runs from its tree with a private configuration, spool
# and address; its processes are recorded in $TB/pids and killed by lib.sh's clean-up.
#
# The test-bed of every t_mta_*.sh (lib.sh's addresses):
#   the legacy MTA listens on $TB_PF_IP:$TB_PF_PORT (127.0.70.2:2526) and sends from $TB_PF_IP
#   mxguard on 127.0.70.1:10025, as its smarthost
#   example.test -> mx1 (127.0.70.11), other.test -> mx2 (127.0.70.12),
#   dane-ee.test -> mx.dane-ee.test (127.0.70.21, DANE-EE TLSA)
#   the sender's mailbox (bounces) is local to the MTA: postmaster/sender@legacy.client.test

LG_CACHE=${MXG_MTA_CACHE:-/var/cache/mxguard-tests/mta}
LG_DOMAIN=legacy.client.test
LG_SENDER=sender@$LG_DOMAIN

# lg_packages MTA — the Debian packages that make up MTA (without the libraries they pull in)
lg_packages() {
    case $1 in
        exim) echo exim4-daemon-light exim4-base ;;
        opensmtpd) echo opensmtpd ;;
        msmtp) echo msmtp ;;
        sendmail) echo sendmail-bin sendmail-base sendmail-cf m4 ;;
        *) return 1 ;;
    esac
}

# lg__installed PKG — PKG (or a package providing it) is installed on this machine
lg__installed() {
    dpkg-query -W -f='${Status}\n' "$1" 2>/dev/null | grep -q "install ok installed" && return 0
    [ -n "$(dpkg-query -W -f='${Provides}\n' 2>/dev/null | tr ',' '\n' | sed 's/(.*//; s/ //g' |
        grep -Fx -- "$1")" ]
}

# lg__download DIR PKG... — apt-get download into DIR (apt-get update once if that fails)
lg__download() {
    local dir=$1; shift
    (cd "$dir" && apt-get -q -o APT::Sandbox::User=root download "$@") >>"$dir/fetch.log" 2>&1 && return 0
    apt-get -q update >>"$dir/fetch.log" 2>&1
    (cd "$dir" && apt-get -q -o APT::Sandbox::User=root download "$@") >>"$dir/fetch.log" 2>&1
}

# lg_fetch MTA — make sure $LG_CACHE/MTA/root holds MTA's packages unpacked, with every library
# package they depend on that the machine lacks (followed recursively); prints the tree.
# Returns 1 (with the reason on stderr) if the packages cannot be had.
lg_fetch() {
    local mta=$1 dir tmp pkgs want deb group alt first new
    dir=$LG_CACHE/$mta
    if [ -e "$dir/.done" ]; then echo "$dir/root"; return 0; fi
    pkgs=$(lg_packages "$mta") || { echo "lg_fetch: unknown MTA $mta" >&2; return 1; }
    mkdir -p "$LG_CACHE" || return 1
    tmp=$(mktemp -d "$LG_CACHE/.$mta.XXXXXX") || return 1
    chmod 755 "$tmp" # the MTAs re-execute themselves as their own users
    mkdir -p "$tmp/debs" "$tmp/root"
    want=$pkgs
    while [ -n "$want" ]; do
        # shellcheck disable=SC2086
        if ! lg__download "$tmp/debs" $want; then
            echo "lg_fetch: apt-get download $want failed:" >&2
            tail -n 5 "$tmp/debs/fetch.log" >&2
            rm -rf "$tmp"
            return 1
        fi
        new=""
        for deb in "$tmp"/debs/*.deb; do
            [ -e "$deb.seen" ] && continue
            touch "$deb.seen"
            # each dependency group "a (>= 1) | b": satisfied if any alternative is installed
            # or fetched; else fetch the first alternative if it is a library
            while read -r group; do
                [ -n "$group" ] || continue
                first=""
                for alt in $(sed 's/([^)]*)//g; s/:any//g; s/|/ /g' <<<"$group"); do
                    [ -n "$first" ] || first=$alt
                    if lg__installed "$alt" || compgen -G "$tmp/debs/${alt}_*.deb" >/dev/null; then
                        first=-
                        break
                    fi
                done
                case $first in
                    lib*) [[ " $new " == *" $first "* ]] || new="$new $first" ;;
                esac
            done < <(dpkg-deb -f "$deb" Pre-Depends Depends | sed 's/^[A-Za-z-]*: //' | tr ',' '\n')
        done
        want=${new# }
    done
    for deb in "$tmp"/debs/*.deb; do
        dpkg-deb -x "$deb" "$tmp/root" || { rm -rf "$tmp"; return 1; }
    done
    # no set-user/group-ID bits: the loader would ignore LD_LIBRARY_PATH in a binary that an MTA
    # re-executes as its own user (Exim's delivery), and the tests start every MTA as root
    find "$tmp/root" -type f -perm /6000 -exec chmod ug-s {} +
    (cd "$tmp/debs" && ls -1 ./*.deb) >"$tmp/packages"
    rm -rf "$tmp/debs"
    rm -rf "$dir"
    mv "$tmp" "$dir" && touch "$dir/.done" || return 1
    echo "$dir/root"
}

# lg_use MTA BINARY — fetch MTA (lg_fetch), set LG_ROOT (its tree) and LG_LIBS (its library
# path), and check that BINARY (a path inside the tree) finds every library; dies otherwise.
lg_use() {
    local mta=$1 bin=$2 missing
    LG_ROOT=$(lg_fetch "$mta") || tb_die "the $mta packages are not available (no apt mirror?)"
    LG_LIBS=$LG_ROOT/usr/lib/x86_64-linux-gnu:$LG_ROOT/lib/x86_64-linux-gnu
    [ -x "$LG_ROOT$bin" ] || tb_die "$mta: no $bin in $LG_ROOT"
    missing=$(LD_LIBRARY_PATH=$LG_LIBS ldd "$LG_ROOT$bin" 2>&1 | grep 'not found')
    [ -z "$missing" ] || tb_die "$mta: $bin lacks libraries: $missing"
    echo "# $mta: $(sed 's,^\./,,' "$LG_ROOT/../packages" | tr '\n' ' ')"
}

# lg_testbed — DNS, the three MX servers, mxguard (lib.sh), as every t_mta_*.sh uses them
lg_testbed() {
    tb_init
    tb_start_dns
    tb_start_mx mx1 127.0.70.11
    tb_start_mx mx2 127.0.70.12
    tb_start_mx dane-ee 127.0.70.21
    tb_write_config
    tb_start_mxguard
}

# lg_wait_mx_spools — wait until mx1, mx2 and dane-ee hold N1, N2, N3 messages (10 s)
lg_wait_mx_spools() {
    wait_spool_count "$TB/spool/mx1" "$1" 10
    wait_spool_count "$TB/spool/mx2" "$2" 10
    wait_spool_count "$TB/spool/dane-ee" "$3" 10
}

# lg_message NAME SUBJECT [--8bit] — $TB/NAME.msg: a message from $LG_SENDER with a body that
# proves it arrived intact (CRLF line ends, a line starting with a dot, a long line; with
# --8bit also UTF-8 and Latin-1 octets, declared 8bit)
lg_message() {
    local name=$1 subject=$2 eight=${3:-}
    "$PYTHON" - "$TB/$name.msg" "$subject" "$LG_SENDER" "$eight" <<'PY'
import sys
out, subject, sender, eight = sys.argv[1:5]
h = [b"From: <" + sender.encode() + b">",
     b"To: <a@example.test>, <b@other.test>, <c@dane-ee.test>",
     b"Subject: " + subject.encode(),
     b"Message-ID: <" + subject.replace(" ", "-").encode() + b"@legacy.client.test>",
     b"Date: Mon, 07 Dec 2026 12:00:00 +0000",
     b"MIME-Version: 1.0"]
if eight:
    h.append(b"Content-Type: text/plain; charset=utf-8")
    h.append(b"Content-Transfer-Encoding: 8bit")
body = [b"Hello from " + subject.encode() + b".",
        b".a line that starts with a dot",
        b"..two dots",
        b"x" * 900]
if eight:
    body += ["Grüße, déjà vu, 日本語, ∑ — ✓".encode("utf-8"),
             bytes(range(0x80, 0x100))[:60].replace(b"\x85", b"")]  # raw high octets
body.append(b"end of " + subject.encode())
open(out, "wb").write(b"\r\n".join(h) + b"\r\n\r\n" + b"\r\n".join(body) + b"\r\n")
PY
}

# lg_body FILE — the body of a stored message (after the first empty line), CRLF as LF
lg_body() {
    "$PYTHON" -c 'import sys; d = open(sys.argv[1], "rb").read().replace(b"\r\n", b"\n"); sys.stdout.buffer.write(d.split(b"\n\n", 1)[1] if b"\n\n" in d else b"")' "$1"
}

# lg_find_msg MXNAME SUBJECT — the newest spooled message (path without extension) at MX MXNAME
# whose Subject: is SUBJECT
lg_find_msg() {
    local f
    for f in $(find "$TB/spool/$1" -maxdepth 1 -name '*.eml' 2>/dev/null | sort -r); do
        if grep -aqFx -- "Subject: $2"$'\r' "$f" || grep -aqFx -- "Subject: $2" "$f"; then
            echo "${f%.eml}"
            return 0
        fi
    done
}

# lg_assert_arrived TAG SUBJECT MSGFILE — the three-domain message SUBJECT arrived once at each
# MX with exactly its own domain's recipient, the sender, STARTTLS, and MSGFILE's body octets
lg_assert_arrived() {
    local tag=$1 subject=$2 orig=$3 mx rcpt m
    for mx in mx1:a@example.test mx2:b@other.test dane-ee:c@dane-ee.test; do
        rcpt=${mx#*:}; mx=${mx%%:*}
        m=$(lg_find_msg "$mx" "$subject")
        if [ -z "$m" ]; then
            fail "$tag: \"$subject\" did not arrive at $mx"
            continue
        fi
        assert_eq "$tag: $mx got it for $rcpt only" "[\"$rcpt\"]" "$(json_get "$m.json" rcpts)"
        assert_eq "$tag: $mx: envelope sender" "$LG_SENDER" "$(json_get "$m.json" mail_from)"
        assert_match "$tag: $mx: mxguard used STARTTLS" "$(json_get "$m.json" tls.version)" '^TLSv1\.[23]$'
        if cmp -s <(lg_body "$m.eml") <(lg_body "$orig"); then
            pass "$tag: $mx: body arrived octet for octet"
        else
            fail "$tag: $mx: body differs: $(cmp <(lg_body "$m.eml") <(lg_body "$orig") 2>&1 | head -n 1)"
        fi
        assert_eq "$tag: $mx: one copy" 1 "$(grep -alE -- "^Subject: $subject"$'\r?$' "$TB/spool/$mx"/*.eml | wc -l)"
    done
}

# lg_assert_8bit TAG SUBJECT MSGFILE [BODY] — the 8-bit message reached mx1 with MAIL's BODY
# parameter BODY (default 8BITMIME; "null": none, as msmtp sends) and its octets (high ones
# included) unchanged
lg_assert_8bit() {
    local tag=$1 subject=$2 orig=$3 body=${4:-8BITMIME} m
    m=$(lg_find_msg mx1 "$subject")
    if [ -z "$m" ]; then
        fail "$tag: 8-bit message \"$subject\" did not arrive at mx1"
        return
    fi
    assert_eq "$tag: MAIL's BODY parameter at the MX" "$body" "$(json_get "$m.json" mail_params.BODY)"
    if cmp -s <(lg_body "$m.eml") <(lg_body "$orig"); then
        pass "$tag: 8-bit body arrived octet for octet"
    else
        fail "$tag: 8-bit body differs: $(cmp <(lg_body "$m.eml") <(lg_body "$orig") 2>&1 | head -n 1)"
    fi
    assert_file_grep "$tag: the Content-Transfer-Encoding stayed 8bit" "$m.eml" \
        '^Content-Transfer-Encoding: 8bit'
}

# lg_wait_file GLOB [SECONDS] — wait (default 15 s) until a file matches GLOB
lg_wait_file() {
    local i
    for i in $(seq $((${2:-15} * 10))); do
        compgen -G "$1" >/dev/null && return 0
        sleep 0.1
    done
    return 1
}

# lg_users LINE... — $TB/etc: a copy of the machine's /etc (without its secrets) that lg_ns
# mounts over /etc, with users and groups an MTA expects added ("passwd:NAME:x:UID:GID:..." or
# "group:NAME:x:GID:"), a hosts file naming the machine $LG_DOMAIN and a resolver where nothing listens (an MTA's own look-ups, such as a
# client's reverse DNS, fail at once and never leave loopback). The whole directory, not single
# files: a file bind-mounted in a private namespace is detached when the machine's file is
# replaced (useradd renames /etc/passwd), a directory mount is not.
lg_users() {
    local l
    rm -rf "$TB/etc"
    cp -a /etc "$TB/etc" 2>/dev/null
    rm -f "$TB"/etc/shadow* "$TB"/etc/gshadow* "$TB"/etc/ssh/ssh_host_*key "$TB/etc/resolv.conf"
    printf 'nameserver 127.0.70.199\noptions timeout:1 attempts:1\n' >"$TB/etc/resolv.conf"
    # the machine's name resolves to a qualified one (Sendmail sleeps for minutes until it does)
    { printf '%s %s %s\n' "$TB_PF_IP" "$LG_DOMAIN" "$(hostname)"; cat /etc/hosts; } >"$TB/etc/hosts"
    for l in "$@"; do
        case $l in
            passwd:*) printf '%s\n' "${l#passwd:}" >>"$TB/etc/passwd" ;;
            group:*) printf '%s\n' "${l#group:}" >>"$TB/etc/group" ;;
        esac
    done
}

# LG_BINDS: more "SOURCE:TARGET" pairs lg_ns / lg_spawn_ns bind in their private mount namespace
# (an MTA's compiled-in spool, chroot or socket directory, pointed at the test directory)
LG_BINDS=""

# lg__ns_script — the shell script lg_ns runs: bind $TB/etc/passwd and group, then LG_BINDS,
# then exec its arguments
lg__ns_script() {
    local b s='mount --bind "$0" /etc'
    for b in $LG_BINDS; do s="$s && mount --bind '${b%%:*}' '${b#*:}'"; done
    printf '%s && exec "$@"' "$s"
}

# lg_ns CMD... — run CMD in a private mount namespace where /etc is lg_users' copy and LG_BINDS
# are bound (the MTA's library path set); nothing outside it sees them
lg_ns() {
    unshare -m sh -c "$(lg__ns_script)" "$TB/etc" env LD_LIBRARY_PATH="$LG_LIBS" "$@"
}

# lg_spawn_ns NAME CMD... — tb_spawn NAME, CMD run as lg_ns does
lg_spawn_ns() {
    local name=$1; shift
    tb_spawn "$name" unshare -m sh -c "$(lg__ns_script)" "$TB/etc" env LD_LIBRARY_PATH="$LG_LIBS" "$@"
}

# lg_wait_mta NAME — wait (10 s) until the MTA started as NAME answers on $TB_PF_IP:$TB_PF_PORT
lg_wait_mta() {
    local i
    for i in $(seq 100); do
        "$PYTHON" "$TB_LIB_DIR/smtpclient.py" --server "$TB_PF_IP:$TB_PF_PORT" \
            --source "$TB_CLIENT_IP" --timeout 1 probe && return 0
        tb_alive "$1" || break
        sleep 0.1
    done
    tail -n 30 "$TB/$1.log" "$TB/$1.out"
    tb_die "$1 did not start on $TB_PF_IP:$TB_PF_PORT"
}

# lg_submit NAME RCPTS [8bit] — submit $TB/NAME.msg (envelope sender $LG_SENDER, RCPTS comma
# separated) to the MTA on $TB_PF_IP:$TB_PF_PORT over SMTP (Python's smtplib; BODY=8BITMIME
# with 8bit); sets SUBMIT ("ok" or the error)
lg_submit() {
    SUBMIT=$("$PYTHON" - "$TB_PF_IP" "$TB_PF_PORT" "$TB_CLIENT_IP" "$LG_SENDER" "$TB/$1.msg" "$2" \
        "${3:-}" 2>&1 <<'PY'
import smtplib, sys
host, port, src, sender, path, rcpts, eight = sys.argv[1:8]
try:
    with smtplib.SMTP(host, int(port), local_hostname="client.test", timeout=20,
                      source_address=(src, 0)) as s:
        r = s.sendmail(sender, rcpts.split(","), open(path, "rb").read(),
                       mail_options=["BODY=8BITMIME"] if eight else [])
    print("ok" if not r else "refused %s" % r)
except Exception as e:
    print(type(e).__name__, e)
PY
)
    echo "# $1: submitted to the MTA: $SUBMIT"
}
