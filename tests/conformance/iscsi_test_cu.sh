#!/usr/bin/env bash
# libiscsi's conformance suite (iscsi-test-cu, Debian libiscsi-bin) against a fresh untornd on
# the embedded default geometry: every family, with --dataloss so the write tests run.
# Every test's outcome (pass, or skip with the suite's reason) must be the one committed in
# iscsi_test_cu.expected, and the total the committed total: a family that silently turns into
# skips fails CI. UNTORN_UPDATE_EXPECTED=1 rewrites the file from this run instead.
set -euo pipefail
untornd=${1:?usage: iscsi_test_cu.sh PATH_TO_UNTORND}
command -v iscsi-test-cu >/dev/null || { echo "iscsi-test-cu not installed (libiscsi-bin)"; exit 1; }

source "$(dirname "$0")/../lib/untornd.sh"
start_untornd "$untornd"
port=$untornd_port

url="iscsi://127.0.0.1:$port/iqn.2026-11.org.untorn:disk0/0"
out="$work/iscsi-test-cu.txt"
set +e
timeout 900 iscsi-test-cu --dataloss --test ALL "$url" >"$out" 2>&1
rc=$?
set -e

summary=$(awk '$1 == "tests" {print $2, $3, $4, $5}' "$out" | tail -n1)
read -r total ran passed failed <<<"${summary:-0 0 0 1}"
skips=$(grep -c '\[SKIPPED\]' "$out" || true)
echo "iscsi-test-cu ALL: $total tests, $ran ran, $passed passed, $failed failed, $skips [SKIPPED] lines (exit $rc)"
echo "skipped (test: reason):"
awk '/Test: /{t=$0; sub(/^ *Test: /,"",t); sub(/ \.\.\..*/,"",t)} /\[SKIPPED\]/{r=$0; sub(/.*\[SKIPPED\] */,"",r); print "  " t ": " r}' "$out" | sort | uniq -c
atomic_skips=$(awk '/^Suite: /{s=$2} /\[SKIPPED\]/ && s=="WriteAtomic16"' "$out" | wc -l)
atomic_tests=$(awk '/^Suite: /{s=$2} /Test: .*passed/ && s=="WriteAtomic16"' "$out" | wc -l)
echo "WriteAtomic16: $atomic_tests passed, $atomic_skips skipped"

status=0
here=$(dirname "$0")
expected=$here/iscsi_test_cu.expected
awk -f "$here/cu_outcomes.awk" "$out" >"$work/outcomes.txt"
if [ "${UNTORN_UPDATE_EXPECTED:-0}" = 1 ]; then
  { grep '^#' "$expected"; cat "$work/outcomes.txt"; } >"$work/expected.new"
  mv "$work/expected.new" "$expected"
  echo "rewrote $expected from this run"
fi
if ! diff -u <(grep -v '^#' "$expected") "$work/outcomes.txt" >"$work/outcomes.diff"; then
  echo "outcomes differ from $expected (- expected, + this run):"; cat "$work/outcomes.diff"
  status=1
fi
echo "outcomes: $(grep -c ' pass$' "$work/outcomes.txt") pass, $(grep -c ' skip:' "$work/outcomes.txt") skip, $(grep -c ' fail$' "$work/outcomes.txt") fail of $(wc -l <"$work/outcomes.txt"); expected $(grep -vc '^#' "$expected")"
if [ "$failed" != 0 ] || [ "$rc" -gt 1 ] || [ "$ran" = 0 ]; then
  echo "FAILURES:"; grep -B2 -A8 'FAILED$' "$out" || true; status=1
fi
[ "$atomic_skips" = 0 ] || { echo "a WriteAtomic16 test was skipped"; status=1; }
[ "$atomic_tests" -ge 6 ] || { echo "expected the 6 WriteAtomic16 tests to pass"; status=1; }
finish_untornd || status=1
echo "$passed passed, $failed failed, $skips skipped"
exit $status
