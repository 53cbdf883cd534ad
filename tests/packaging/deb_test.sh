#!/usr/bin/env bash
# The Debian package: `cpack -G DEB` from the build directory, installed with dpkg into a fresh,
# empty root of its own (dpkg --root, maintainer scripts run chrootless with DPKG_ROOT set, so
# nothing of the host is touched; the package's dependencies are the host's, hence
# --force-depends), then checked as an operator would find it: files where Debian puts them,
# the conffile registered, the programs run and answer --version, the packaged configuration is
# valid and serves (untornctl reaches it), the man pages render without warnings, the systemd
# unit passes `systemd-analyze verify`, and removal keeps the configuration until purge.
#
# Why not a container or chroot: CI has neither; a root of dpkg's own is what fits, and
# systemd-analyze verify checks the unit without a running systemd.
set -euo pipefail
build=${1:?usage: deb_test.sh BUILD_DIR}
if [ "$(id -u)" != 0 ]; then echo "deb_test.sh: dpkg --root needs root"; exit 77; fi
work=$(mktemp -d /tmp/untorn-deb-XXXXXX)
pid=
cleanup() { [ -z "$pid" ] || kill -TERM "$pid" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
fail=0
expect() {  # expect DESCRIPTION COMMAND...: the command must succeed
  local what=$1; shift
  if "$@"; then echo "ok   $what"; else echo "FAIL $what"; fail=1; fi
}

cpack --config "$build/CPackConfig.cmake" -G DEB -B "$work/pkg" > "$work/cpack.log" 2>&1 ||
  { cat "$work/cpack.log"; echo "FAIL cpack"; exit 1; }
deb=$(ls "$work"/pkg/untorn_*.deb)
echo "package: $(basename "$deb"), $(stat -c %s "$deb") bytes"
dpkg-deb --info "$deb" > "$work/info"
expect "package untorn, section net" grep -qE '^ Section: net' "$work/info"
expect "depends on the libraries it links (libiscsi7, libisal2)" \
  sh -c "grep -E '^ Depends:' '$work/info' | grep -q libiscsi7 && grep -E '^ Depends:' '$work/info' | grep -q libisal2"

root=$work/root
mkdir -p "$root/var/lib/dpkg/info" "$root/var/lib/dpkg/updates" "$root/var/lib/dpkg/triggers"
touch "$root/var/lib/dpkg/status"
expect "dpkg installs it into an empty root" \
  sh -c "dpkg --root='$root' --force-depends --force-script-chrootless -i '$deb' > '$work/install.log' 2>&1"
expect "  dpkg says installed" sh -c "dpkg --root='$root' -s untorn | grep -q '^Status: install ok installed'"
expect "  /etc/untorn/untornd.json is a conffile" \
  sh -c "dpkg --root='$root' -s untorn | grep -q '^ /etc/untorn/untornd.json '"
for f in usr/bin/untornd usr/bin/untornctl usr/bin/untorn-limits usr/bin/untorn-journal \
         usr/lib/systemd/system/untornd.service etc/untorn/untornd.json \
         usr/share/man/man8/untornd.8 usr/share/man/man8/untornctl.8 \
         usr/share/man/man5/untornd.json.5 usr/share/doc/untorn/configuration.md; do
  expect "  /$f" test -e "$root/$f"
done
version=$("$root/usr/bin/untornd" --version)
expect "the installed untornd runs: $version" sh -c "echo '$version' | grep -qE '^untornd [0-9]+\\.[0-9]+\\.[0-9]+ '"
expect "the packaged configuration is valid" "$root/usr/bin/untornd" --check-config "$root/etc/untorn/untornd.json"
for page in man8/untornd.8 man8/untornctl.8 man5/untornd.json.5; do
  expect "man page $page renders without warnings" \
    sh -c "groff -man -ww -z '$root/usr/share/man/$page' 2>&1 | (! grep .)"
done

# The unit as installed. systemd-analyze verify checks that ExecStart's program exists, on the
# host: the same unit with that one path pointing into the root (checked to be the path the
# package installs untornd at) is what it verifies; MANPATH lets it find Documentation= pages.
unit=$root/usr/lib/systemd/system/untornd.service
expect "the unit starts /usr/bin/untornd with /etc/untorn/untornd.json" \
  grep -qx 'ExecStart=/usr/bin/untornd --config /etc/untorn/untornd.json' "$unit"
sed "s|^ExecStart=/usr/bin/untornd|ExecStart=$root/usr/bin/untornd|" "$unit" > "$work/untornd.service"
# It exits 0 on unknown keys and bad values ("ignoring"), so any output is a failure too.
MANPATH="$root/usr/share/man" systemd-analyze verify "$work/untornd.service" > "$work/verify" 2>&1 &&
  verified=0 || verified=$?
cat "$work/verify"
expect "systemd-analyze verify passes with nothing to say" sh -c "[ $verified = 0 ] && [ ! -s '$work/verify' ]"

# The installed daemon on the packaged configuration (its data and socket moved into $work).
"$root/usr/bin/untornd" --config "$root/etc/untorn/untornd.json" --listen 127.0.0.1:0 \
  --data-dir "$work/data" --control-socket "$work/untornd.sock" > "$work/untornd.log" 2>&1 &
pid=$!
for _ in $(seq 1 200); do [ -S "$work/untornd.sock" ] && break; sleep 0.05; done
expect "untornctl of the package reaches it" \
  sh -c "'$root/usr/bin/untornctl' --socket '$work/untornd.sock' status | grep -q 'LUN 0: 1.0 GiB'"
kill -TERM "$pid"; wait "$pid" || { echo "FAIL untornd did not stop cleanly"; fail=1; }
pid=

expect "dpkg removes it" sh -c "dpkg --root='$root' --force-script-chrootless -r untorn > '$work/remove.log' 2>&1"
expect "  the programs are gone" test ! -e "$root/usr/bin/untornd"
expect "  the configuration stays until purge" test -e "$root/etc/untorn/untornd.json"
expect "dpkg purges it" sh -c "dpkg --root='$root' --force-script-chrootless -P untorn > '$work/purge.log' 2>&1"
expect "  and then the configuration is gone" test ! -e "$root/etc/untorn/untornd.json"
exit $fail
