#!/usr/bin/env bash
# t_deb.sh — the Debian package (debian/): build it from a copy of the source tree, lint it,
# install it with apt under a policy-rc.d that forbids starting services, check what the
# installation made, purge it and check what purge removed and what it kept (the account; a
# spool that still holds mail).
#
# It installs into the real system (root only; skipped, exit 77, otherwise or when an mxguard
# package is already installed). The machine is left as found: an existing policy-rc.d,
# /etc/mxguard or /var/lib/mxguard is moved aside and put back, the package is purged and an
# account the installation created is deleted, whatever failed (trap). Dependencies that apt
# had to install stay (none on a machine set up by scripts/setup.sh deps).
#
#   bash tests/package/t_deb.sh        (ctest -L package, scripts/setup.sh test)
set -euo pipefail

SRC=${MXG_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
APT=(apt-get -y -q -o DPkg::Lock::Timeout=300 --no-install-recommends)
export DEBIAN_FRONTEND=noninteractive
T0=$(date +%s)

fail() { echo "FAIL: $*" >&2; exit 1; }
ok() { echo "ok: $*"; }
installed() { dpkg-query -W -f='${Status}' mxguard 2>/dev/null | grep -q 'install ok installed'; }
known() { dpkg-query -W -f='${Status}' mxguard 2>/dev/null | grep -qv 'not-installed'; }

if [ "$(id -u)" -ne 0 ]; then
    echo "SKIP: installs a package into the system: run as root" >&2
    exit 77
fi
if known; then
    echo "SKIP: an mxguard package is already on this machine; the test would replace it" >&2
    exit 77
fi

WORK=$(mktemp -d /tmp/mxg-deb.XXXXXX)
SAVED=$WORK/saved
mkdir -p "$SAVED"
user_existed=0
getent passwd mxguard >/dev/null && user_existed=1
policy_saved=0   # the machine's own policy-rc.d is in $SAVED
policy_ours=0    # /usr/sbin/policy-rc.d is the test's

# Undo everything the test did to the system (runs on every exit).
cleanup() {
    local rc=$?
    set +e
    if known; then
        "${APT[@]}" purge mxguard >/dev/null 2>&1 || dpkg --purge mxguard >/dev/null 2>&1
    fi
    [ "$policy_ours" = 1 ] && rm -f /usr/sbin/policy-rc.d
    [ "$policy_saved" = 1 ] && mv "$SAVED/policy-rc.d" /usr/sbin/policy-rc.d
    if [ "$user_existed" = 0 ] && getent passwd mxguard >/dev/null; then
        userdel mxguard
    fi
    [ "$user_existed" = 0 ] && getent group mxguard >/dev/null && groupdel mxguard
    for d in etc/mxguard var/lib/mxguard; do
        if [ -e "$SAVED/$d" ]; then
            rm -rf "/$d"
            mv "$SAVED/$d" "/$d"
        else
            rm -rf "/$d"
        fi
    done
    rm -rf "$WORK"
    echo "t_deb: $(($(date +%s) - T0)) s in all (rc=$rc)"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

for d in etc/mxguard var/lib/mxguard; do
    if [ -e "/$d" ]; then
        mkdir -p "$SAVED/$(dirname "$d")"
        mv "/$d" "$SAVED/$d"
        echo "t_deb: /$d moved aside until the end of the test"
    fi
done

# --- build -------------------------------------------------------------------------------
# From a copy: dpkg-buildpackage writes the .deb into the parent directory and debian/ into
# the tree. The copy holds the files git knows (tracked and new, not ignored), else all but
# the build directories.
mkdir -p "$WORK/src"
if git -C "$SRC" rev-parse --git-dir >/dev/null 2>&1; then
    (cd "$SRC" && git ls-files -z --cached --others --exclude-standard |
        xargs -0 cp --parents -t "$WORK/src")
else
    tar -C "$SRC" --exclude='./build*' --exclude=./.git -cf - . | tar -C "$WORK/src" -xf -
fi
t=$(date +%s)
(cd "$WORK/src" && dpkg-buildpackage -b -us -uc -j"$(nproc)") >"$WORK/build.log" 2>&1 ||
    { tail -n 40 "$WORK/build.log" >&2; fail "dpkg-buildpackage"; }
echo "t_deb: dpkg-buildpackage took $(($(date +%s) - t)) s"
version=$(sed -n 's/^project(mxguard VERSION \([0-9.]*\).*/\1/p' "$SRC/CMakeLists.txt")
deb=$(ls "$WORK"/mxguard_*.deb)
[ "$(dpkg-deb -f "$deb" Version)" = "$version" ] ||
    fail "package version $(dpkg-deb -f "$deb" Version) is not CMakeLists.txt's $version (debian/changelog)"
ok "built $(basename "$deb") ($(stat -c %s "$deb") bytes)"

# Depends: the libraries from dpkg-shlibdeps, and the data mxguard reads at run time.
depends=$(dpkg-deb -f "$deb" Depends)
for p in libc6 libssl3 libgetdns10 libuv1 gpgv dns-root-data ca-certificates; do
    grep -Eq "(^|, )$p( |,|$)" <<<"$depends" || fail "Depends lacks $p: $depends"
done
ok "Depends: $depends"

# --- lintian -----------------------------------------------------------------------------
lintian --allow-root "$deb" >"$WORK/lintian.txt" 2>&1 || true
sed 's/^/  lintian: /' "$WORK/lintian.txt"
if grep -q '^E:' "$WORK/lintian.txt"; then fail "lintian reports errors"; fi
ok "lintian: no errors"

# --- install, services not started -------------------------------------------------------
if [ -e /usr/sbin/policy-rc.d ]; then
    mv /usr/sbin/policy-rc.d "$SAVED/policy-rc.d"
    policy_saved=1
fi
policy_ours=1
printf '#!/bin/sh\n# t_deb.sh: no service starts while the package is installed\nexit 101\n' \
    >/usr/sbin/policy-rc.d
chmod 755 /usr/sbin/policy-rc.d
(cd "$WORK" && "${APT[@]}" install "./$(basename "$deb")") >"$WORK/install.log" 2>&1 ||
    { cat "$WORK/install.log" >&2; fail "apt-get install"; }
installed || fail "dpkg does not list mxguard as installed"
ok "apt-get install ./$(basename "$deb")"

# The service: enabled (multi-user.target wants it), not running.
wants=/etc/systemd/system/multi-user.target.wants/mxguard.service
[ "$(readlink "$wants")" = /lib/systemd/system/mxguard.service ] || fail "the unit is not enabled ($wants)"
for p in /proc/[0-9]*; do
    [ "$(readlink "$p/exe" 2>/dev/null)" = /usr/sbin/mxguard ] && fail "mxguard is running (pid ${p#/proc/})"
done
if [ -d /run/systemd/system ] && systemctl is-active --quiet mxguard; then
    fail "systemd started mxguard.service despite policy-rc.d"
fi
ok "mxguard.service enabled, not started"

out=$(/usr/sbin/mxguard --version)
grep -q "$version" <<<"$out" || fail "mxguard --version: $out"
ok "mxguard --version: $out"
/usr/sbin/mxguard config check -c /etc/mxguard/mxguard.conf || fail "config check of /etc/mxguard/mxguard.conf"
ok "mxguard config check -c /etc/mxguard/mxguard.conf"

IFS=: read -r _ _ uid _ _ home shell < <(getent passwd mxguard) || fail "no user mxguard"
[ "$uid" -lt 1000 ] && [ "$home" = /var/lib/mxguard ] && [ "$shell" = /usr/sbin/nologin ] ||
    fail "user mxguard: uid $uid home $home shell $shell"
ok "system user mxguard (uid $uid, $home, $shell)"
[ "$(stat -c '%U:%G %a' /var/lib/mxguard)" = "mxguard:mxguard 700" ] ||
    fail "/var/lib/mxguard: $(stat -c '%U:%G %a' /var/lib/mxguard)"
ok "/var/lib/mxguard mxguard:mxguard 700"

dpkg-query -W -f='${Conffiles}\n' mxguard | grep -q '^ /etc/mxguard/mxguard.conf ' ||
    fail "/etc/mxguard/mxguard.conf is not a conffile"
ok "conffile /etc/mxguard/mxguard.conf"

[ "$(man -w mxguard)" = /usr/share/man/man8/mxguard.8.gz ] || fail "man -w mxguard: $(man -w mxguard)"
[ "$(man -w 5 mxguard.conf)" = /usr/share/man/man5/mxguard.conf.5.gz ] || fail "man -w 5 mxguard.conf"
MANWIDTH=80 man -P cat mxguard 2>/dev/null | grep -Eq 'mxguard +- +outbound +SMTP +relay' || fail "man mxguard does not render"
ok "man mxguard, man 5 mxguard.conf"
for f in /lib/systemd/system/mxguard.service /usr/lib/sysusers.d/mxguard.conf \
    /usr/lib/tmpfiles.d/mxguard.conf /usr/share/doc/mxguard/examples/smarthost.conf \
    /usr/share/doc/mxguard/examples/sidecar.conf /usr/share/doc/mxguard/examples/appliance.conf; do
    [ -f "$f" ] || fail "missing $f"
done
ok "unit, sysusers, tmpfiles, examples installed"

# --- purge -------------------------------------------------------------------------------
# State as a running mxguard leaves it: caches and an empty spool; purge removes it.
install -d -o mxguard -g mxguard -m 700 /var/lib/mxguard/spool
install -o mxguard -g mxguard -m 600 /dev/null /var/lib/mxguard/mta-sts.db
install -o mxguard -g mxguard -m 600 /dev/null /var/lib/mxguard/spool/lock
"${APT[@]}" purge mxguard >"$WORK/purge.log" 2>&1 || { cat "$WORK/purge.log" >&2; fail "apt-get purge"; }
! known || fail "dpkg still knows mxguard after purge: $(dpkg-query -W -f='${Status}' mxguard)"
for f in /usr/sbin/mxguard /etc/mxguard /var/lib/mxguard "$wants" /lib/systemd/system/mxguard.service; do
    [ ! -e "$f" ] && [ ! -L "$f" ] || fail "$f is left after purge"
done
getent passwd mxguard >/dev/null || fail "purge removed the account mxguard (documented: it stays)"
ok "apt-get purge mxguard: binary, /etc/mxguard, /var/lib/mxguard, unit gone; the account stays"

# A spool that still holds a message survives purge (mxguard never loses mail).
(cd "$WORK" && "${APT[@]}" install "./$(basename "$deb")") >"$WORK/install.log" 2>&1 ||
    { cat "$WORK/install.log" >&2; fail "apt-get install (again)"; }
install -d -o mxguard -g mxguard -m 700 /var/lib/mxguard/spool
echo 'queued' | install -o mxguard -g mxguard -m 600 /dev/stdin /var/lib/mxguard/spool/1-1-1.msg
echo '{}' | install -o mxguard -g mxguard -m 600 /dev/stdin /var/lib/mxguard/spool/1-1-1.env
"${APT[@]}" purge mxguard >"$WORK/purge.log" 2>&1 || { cat "$WORK/purge.log" >&2; fail "apt-get purge (again)"; }
grep -q 'spool still holds messages' "$WORK/purge.log" || fail "purge did not say why it kept the spool"
[ "$(cat /var/lib/mxguard/spool/1-1-1.msg)" = queued ] || fail "purge removed a spool holding a message"
[ ! -e /usr/sbin/mxguard ] || fail "/usr/sbin/mxguard left after the second purge"
ok "purge keeps /var/lib/mxguard while its spool holds a message"

echo "t_deb: all checks passed"
