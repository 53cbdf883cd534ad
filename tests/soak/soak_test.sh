#!/usr/bin/env bash
# Soak: 8 threads of sessions logging in, working (reads, writes, atomic writes) and leaving —
# by Logout, by dropping the connection, or by dropping it with a write in flight — against one
# untornd for SECONDS (default 60). Then the daemon's descriptors must be back to the idle
# baseline and its RSS within a bound of the post-warm-up baseline, and it must still serve.
set -euo pipefail
untornd=${1:?usage: soak_test.sh UNTORND TOOLS_DIR [SECONDS]}
tools=${2:?usage: soak_test.sh UNTORND TOOLS_DIR [SECONDS]}
seconds=${3:-60}
# Under AddressSanitizer freed memory sits in a quarantine; keep it small so RSS means growth.
export ASAN_OPTIONS="${ASAN_OPTIONS:-}${ASAN_OPTIONS:+:}quarantine_size_mb=16"
source "$(dirname "$0")/../lib/untornd.sh"
start_untornd "$untornd"
url="iscsi://127.0.0.1:$untornd_port/iqn.2026-11.org.untorn:disk0/0"
status=0
"$tools/untorn-soak" "$url" --pid "$untornd_pid" --seconds "$seconds" --threads 8 \
  --rss-slack-mib 64 || status=1
# Still serving after all that.
"$tools/untorn-write" "$url" --lba 0 --blocks 8 --atomic --pattern stamp:1 || status=1
"$tools/untorn-verify" "$url" --lba 0 --blocks 8 --pattern stamp:1 || status=1
finish_untornd || status=1
exit $status
