#!/usr/bin/env bash
# The whole test suite, as CI runs it: install dependencies, build, run every test (unit,
# integration against a live untornd, iscsi-test-cu conformance), then the same again in an
# AddressSanitizer + UndefinedBehaviorSanitizer build.
set -euo pipefail
cd "$(dirname "$0")/.."
bash .ci/install-deps
jobs=$(nproc)

build() {  # build DIR [cmake args...]
  local dir=$1; shift
  cmake -S . -B "$dir" -G Ninja "$@" >/dev/null
  cmake --build "$dir" -j "$jobs"
}

# ctest in DIR with the given arguments; fails on a failed test, and also on any test ctest
# reports as skipped or not run: a check that did not run has not passed.
run_ctest() {  # run_ctest DIR [ctest args...]
  local dir=$1; shift
  local log
  log=$(mktemp)
  local rc=0
  (cd "$dir" && ctest --output-on-failure --no-tests=error "$@") 2>&1 | tee "$log" || rc=$?
  if grep -q "The following tests did not run" "$log"; then
    echo "FAILED: tests were skipped or not run (above); CI counts that as a failure" >&2
    rc=1
  fi
  rm -f "$log"
  return "$rc"
}

echo "== release build"
build build -DCMAKE_BUILD_TYPE=RelWithDebInfo
run_ctest build -j 2 --timeout 1200

echo "== AddressSanitizer + UndefinedBehaviorSanitizer build"
build build-asan -DCMAKE_BUILD_TYPE=Debug -DUNTORN_SANITIZE=ON
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:halt_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
run_ctest build-asan -j 2 --timeout 1800

echo "== ThreadSanitizer build: the storage, target and server tests"
build build-tsan -DCMAKE_BUILD_TYPE=Debug -DUNTORN_TSAN=ON
export TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1
# The power-cut and fault-injection runs are shortened under TSan (their own counts scale).
UNTORN_POWER_CUT_RUNS=4 UNTORN_FAULT_RUNS=300 run_ctest build-tsan -j 2 --timeout 1800 \
  -R '^(JournaledStore|GroupSync|FileStore|RangeLock|ReadMapped|LogFile|MapForSend|StoreFaults|PowerCut|FaultInjection|AllocationMap|LogicalUnitTest|LoginTest|PersistentReservations|Session|AtomicWrite|RawProtocol|Digests|Resize|SessionRegistry|Metrics|Control|Reservations)'

echo "== libFuzzer targets, 30 s each"
bash tests/fuzz/run_fuzz.sh --seconds 30
