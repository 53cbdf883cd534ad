#!/usr/bin/env bash
# The libiscsi client tools against a live untornd on its embedded default: untorn-limits
# agrees with the daemon's own view of the limits, untorn-write/untorn-verify round-trip a
# pattern and report rejections with their sense data, untorn-bench completes a short run of
# each command kind with no error.
set -euo pipefail
untornd=${1:?usage: tools_test.sh UNTORND TOOLS_DIR}
tools=${2:?usage: tools_test.sh UNTORND TOOLS_DIR}
source "$(dirname "$0")/../lib/untornd.sh"
start_untornd "$untornd"
url="iscsi://127.0.0.1:$untornd_port/iqn.2026-11.org.untorn:disk0/0"
fail=0
expect() {  # expect DESCRIPTION COMMAND...: the command must succeed
  local what=$1; shift
  if "$@"; then echo "ok   $what"; else echo "FAIL $what"; fail=1; fi
}

# untorn-limits: the units Linux derives, as the daemon computes them from its config
# (capped at 512 KiB, what one bio carries with 512-byte blocks on x86-64).
"$tools/untorn-limits" "$url" > "$work/limits"
cat "$work/limits"
read -r want_min want_max < <("$untornd" --check-config "$(dirname "$0")/../../config/default_config.json" |
  awk '/linux_atomic_unit_min/ { for (i = 1; i <= NF; ++i) { split($i, kv, "="); v[kv[1]] = kv[2] } }
       END { m = v["linux_atomic_unit_max"]; if (m > 524288) m = 524288; print v["linux_atomic_unit_min"], m }')
got_min=$(awk '$1 == "atomic_write_unit_min_bytes" {print $2}' "$work/limits")
got_max=$(awk '$1 == "atomic_write_unit_max_bytes" {print $2}' "$work/limits")
expect "untorn-limits shows MAXIMUM ATOMIC TRANSFER LENGTH 1024" \
  grep -qE 'MAXIMUM ATOMIC TRANSFER LENGTH +1024' "$work/limits"
expect "untorn-limits unit_min $got_min = $want_min" [ "$got_min" = "$want_min" ]
expect "untorn-limits unit_max $got_max = $want_max" [ "$got_max" = "$want_max" ]

# untorn-write + untorn-verify.
expect "atomic write of 64 blocks" "$tools/untorn-write" "$url" --lba 4096 --blocks 64 --atomic --fua --pattern stamp:7
expect "verify it back" "$tools/untorn-verify" "$url" --lba 4096 --blocks 64 --pattern stamp:7
if "$tools/untorn-verify" "$url" --lba 4096 --blocks 64 --pattern stamp:8 > "$work/verify"; then
  echo "FAIL verify with another seed passed"; fail=1
else
  expect "verify with another seed reports 64 bad blocks" grep -q '^64 of 64 block' "$work/verify"
fi
expect "plain write with a byte pattern" "$tools/untorn-write" "$url" --lba 0 --blocks 16 --pattern 0xa5
expect "verify the byte pattern" "$tools/untorn-verify" "$url" --lba 0 --blocks 16 --pattern 0xa5
rc=0; "$tools/untorn-write" "$url" --lba 1 --blocks 8 --atomic > "$work/misaligned" || rc=$?
cat "$work/misaligned"
expect "misaligned atomic write exits 1" [ "$rc" = 1 ]
expect "  and names INVALID FIELD IN CDB at CDB byte 2" \
  grep -q 'ILLEGAL REQUEST / INVALID FIELD IN CDB (24h/00h), field pointer: CDB byte 2' "$work/misaligned"
rc=0; "$tools/untorn-write" "$url" --bogus > /dev/null 2>&1 || rc=$?
expect "unknown option exits 2" [ "$rc" = 2 ]
# A portal nothing listens on (a port just bound and closed again) is named as unreachable.
closed=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
rc=0; "$tools/untorn-limits" "iscsi://127.0.0.1:$closed/iqn.2026-11.org.untorn:disk0/0" \
  > "$work/refused" 2>&1 || rc=$?
cat "$work/refused"
expect "unreachable portal exits 1" [ "$rc" = 1 ]
expect "  and says the connection was refused" \
  grep -q "cannot connect to 127.0.0.1:$closed: Connection refused" "$work/refused"

# untorn-bench: a short run of each kind; JSON with iops > 0 and no errors.
for args in "--mix read=1" "--mix write=1 --fua" "--mix atomic=1 --bs 16k" \
            "--mix read=50,write=25,atomic=25 --bs 4k --sessions 2 --seq"; do
  # shellcheck disable=SC2086
  out=$("$tools/untorn-bench" "$url" $args --qd 8 --seconds 0.5 --ramp 0.1 --range 64m --json)
  echo "$out"
  expect "untorn-bench $args: no errors, some IOPS" \
    python3 -c 'import json,sys; r=json.loads(sys.argv[1]); sys.exit(0 if r["errors"]==0 and r["iops"]>0 else 1)' "$out"
done
# untornctl against the same daemon, over its control socket (docs/control.md).
ctl() { "$tools/untornctl" --socket "$work/data/untornd.sock" "$@"; }
ctl status > "$work/status"
cat "$work/status"
expect "untornctl status shows LUN 0 at 1.0 GiB" grep -q 'LUN 0: 1.0 GiB (2097152 blocks of 512 B), journaled' "$work/status"
expect "a write before the resize" "$tools/untorn-write" "$url" --lba 8192 --blocks 64 --atomic --pattern stamp:9
expect "untornctl lun resize grows it" ctl lun resize iqn.2026-11.org.untorn:disk0 0 2GiB
expect "  and status shows 2.0 GiB" sh -c "'$tools/untornctl' --socket '$work/data/untornd.sock' status | grep -q 'LUN 0: 2.0 GiB'"
expect "  and the JSON says so" sh -c "'$tools/untornctl' --socket '$work/data/untornd.sock' --json call status | grep -q '\"size\": 2147483648'"
expect "  and the data written before reads back" "$tools/untorn-verify" "$url" --lba 8192 --blocks 64 --pattern stamp:9
expect "  and a write at the new end works" "$tools/untorn-write" "$url" --lba $((4194304 - 64)) --blocks 64 --atomic --pattern stamp:3
rc=0; ctl lun resize iqn.2026-11.org.untorn:disk0 9 3GiB 2> "$work/ctl-err" || rc=$?
expect "a LUN that does not exist exits 1" [ "$rc" = 1 ]
expect "  naming params.lun" grep -q 'params.lun' "$work/ctl-err"
rc=0; ctl lun resize iqn.2026-11.org.untorn:disk0 0 1GiB 2> "$work/ctl-err" || rc=$?
expect "a shrink without --force exits 1" [ "$rc" = 1 ]
rc=0; ctl lun resize 2> /dev/null || rc=$?
expect "untornctl bad usage exits 2" [ "$rc" = 2 ]
expect "untornctl lun add puts LUN 1 into service" \
  ctl lun add iqn.2026-11.org.untorn:disk0 '{"id": 1, "backing_file": "lun1.img", "size": "64MiB"}'
expect "  and status lists it" sh -c "'$tools/untornctl' --socket '$work/data/untornd.sock' status | grep -q 'LUN 1: 64.0 MiB'"
expect "  and it takes writes" "$tools/untorn-write" "iscsi://127.0.0.1:$untornd_port/iqn.2026-11.org.untorn:disk0/1" --lba 0 --blocks 8
expect "untornctl lun remove takes it out" ctl lun remove iqn.2026-11.org.untorn:disk0 1
expect "  and its file stays" test -f "$work/data/lun1.img"
rc=0; ctl reload 2> "$work/ctl-err" || rc=$?
expect "untornctl reload on the embedded default exits 1" [ "$rc" = 1 ]
expect "  saying there is no file" grep -q 'embedded default' "$work/ctl-err"

# Every program keeps the usual command-line habits: --help to stdout with status 0,
# --version as "NAME VERSION" with status 0, bad usage as one line (and where to look) with 2.
for prog in "$untornd" "$tools"/untornctl "$tools"/untorn-*; do
  [ -x "$prog" ] && [ -f "$prog" ] || continue
  name=$(basename "$prog")
  rc=0; "$prog" --help > "$work/help" 2> /dev/null || rc=$?
  expect "$name --help exits 0 with the usage on stdout" sh -c "[ $rc = 0 ] && grep -qi usage '$work/help'"
  rc=0; version=$("$prog" --version 2> /dev/null) || rc=$?
  expect "$name --version exits 0: $version" sh -c "[ $rc = 0 ] && echo '$version' | grep -qE '^$name [0-9]+\.[0-9]+'"
  rc=0; "$prog" --no-such-option > /dev/null 2> "$work/bad" || rc=$?
  expect "$name bad usage exits 2 with a short reason: $(head -n1 "$work/bad")" \
    sh -c "[ $rc = 2 ] && [ \$(wc -l < '$work/bad') -le 2 ]"
done

finish_untornd || fail=1
exit $fail
