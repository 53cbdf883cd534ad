#!/usr/bin/env bash
# untornd on a file system that fills up: a 40 MiB tmpfs, in a mount namespace of this test's
# own, holds a thin 64 MiB LUN (8 MiB journal, 1 MiB transfers) and a 6 MiB filler file. 1 MiB writes go in until
# one fails; it must fail with DATA PROTECT, SPACE ALLOCATION FAILED WRITE PROTECT (27h/07h:
# Linux's sd makes it ENOSPC), as must an atomic write to unallocated blocks, while reads and
# the session go on. Once the filler is removed the refused write succeeds. Every acknowledged
# write reads back, before and after a restart of untornd on the full file system.
# Needs root (mount namespaces, tmpfs); exits 77 (ctest: skipped) without.
set -euo pipefail
untornd=${1:?usage: full_file_system_test.sh UNTORND TOOLS_DIR}
tools=${2:?usage: full_file_system_test.sh UNTORND TOOLS_DIR}
if [ -z "${UNTORN_FULL_FS_NS:-}" ]; then
  if [ "$(id -u)" != 0 ] || ! unshare --mount --propagation private true 2>/dev/null; then
    echo "skipped: needs root and mount namespaces"; exit 77
  fi
  exec env UNTORN_FULL_FS_NS=1 unshare --mount --propagation private bash "$0" "$@"
fi

source "$(dirname "$0")/../lib/untornd.sh"
fs=$work/data  # start_untornd serves --data-dir $work/data
mkdir "$fs"
mount -t tmpfs -o size=40m untorn-test "$fs"
trap 'stop_untornd; umount "$fs" 2>/dev/null || true; rm -rf "$work"' EXIT
head -c $((6 << 20)) /dev/zero > "$fs/filler"
cat > "$work/untornd.json" <<CFG
{ "portals": [{"listen": "127.0.0.1:0"}], "data_dir": "$fs",
  "targets": [{"iqn": "iqn.2026-11.org.untorn:full",
    "luns": [{"id": 0, "backing_file": "lun0.img", "size": "64MiB", "journal_size": "8MiB", "max_transfer_length": 2048,
              "atomic": {"max_transfer_length": 1024, "alignment": 8, "granularity": 8}}]}]}
CFG
start_untornd "$untornd" --config "$work/untornd.json"
url="iscsi://127.0.0.1:$untornd_port/iqn.2026-11.org.untorn:full/0"
fail=0
check() {  # check DESCRIPTION COMMAND...
  local what=$1; shift
  if "$@"; then echo "ok   $what"; else echo "FAIL $what"; fail=1; fi
}

# 1 MiB (2048-block) chunks, chunk k stamped with seed k, until the file system is full.
acked=0 refused=
for k in $(seq 0 63); do
  if "$tools/untorn-write" "$url" --lba $((k * 2048)) --blocks 2048 --fua --pattern stamp:$k \
      > "$work/write.err" 2>&1; then
    acked=$((k + 1))
  else
    refused=$k; break
  fi
done
echo "acknowledged $acked MiB before the file system was full"
cat "$work/write.err"
check "the file system filled up well before the 64 MiB LUN did" [ "${refused:-64}" -lt 60 ]
check "the refused write got SPACE ALLOCATION FAILED WRITE PROTECT" \
  grep -q 'SPACE ALLOCATION FAILED WRITE PROTECT (27h/07h)' "$work/write.err"
refused=${refused:-59}
atomic_lba=$((63 * 2048 + 1024))  # in the last MiB, which no chunk reaches
if "$tools/untorn-write" "$url" --lba $atomic_lba --blocks 64 --atomic --fua --pattern stamp:99 \
    > "$work/atomic.err" 2>&1; then
  echo "FAIL an atomic write to unallocated blocks of a full file system succeeded"; fail=1
else
  check "the atomic write got SPACE ALLOCATION FAILED WRITE PROTECT" grep -q 'SPACE ALLOCATION FAILED WRITE PROTECT (27h/07h)' "$work/atomic.err"
fi
check "the refused atomic write left its blocks as they were (zeros)" \
  "$tools/untorn-verify" "$url" --lba $atomic_lba --blocks 64 --pattern zero
check "acknowledged chunk 0 reads back while the file system is full" \
  "$tools/untorn-verify" "$url" --lba 0 --blocks 2048 --pattern stamp:0
check "untornd is still serving" kill -0 "$untornd_pid"

rm "$fs/filler"
check "with room again, the refused write succeeds" \
  "$tools/untorn-write" "$url" --lba $((refused * 2048)) --blocks 2048 --fua --pattern stamp:$refused
check "and so does the atomic write" \
  "$tools/untorn-write" "$url" --lba $atomic_lba --blocks 64 --atomic --fua --pattern stamp:99
acked=$((refused + 1))

verify_all() {
  local bad=0
  for k in $(seq 0 $((acked - 1))); do
    "$tools/untorn-verify" "$url" --lba $((k * 2048)) --blocks 2048 --pattern stamp:$k \
      > /dev/null || { echo "chunk $k does not read back"; bad=1; }
  done
  "$tools/untorn-verify" "$url" --lba $atomic_lba --blocks 64 --pattern stamp:99 > /dev/null ||
    { echo "the atomic write does not read back"; bad=1; }
  return $bad
}
check "all $acked acknowledged chunks and the atomic write read back" verify_all
check "untornd warned about the full file system" grep -q 'until there is room' "$work/untornd.log"
check "untornd stops cleanly" finish_untornd

# Fill what is left, then restart on the full file system: recovery needs no room.
head -c $((64 << 20)) /dev/zero > "$fs/filler" 2>/dev/null || true
start_untornd "$untornd" --config "$work/untornd.json"
url="iscsi://127.0.0.1:$untornd_port/iqn.2026-11.org.untorn:full/0"
check "after a restart on the full file system, everything acknowledged reads back" verify_all
check "untornd stops cleanly again" finish_untornd
exit $fail
