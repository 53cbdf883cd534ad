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

echo "== release build"
build build -DCMAKE_BUILD_TYPE=RelWithDebInfo
(cd build && ctest --output-on-failure -j 2 --timeout 1200)

echo "== AddressSanitizer + UndefinedBehaviorSanitizer build"
build build-asan -DCMAKE_BUILD_TYPE=Debug -DUNTORN_SANITIZE=ON
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:halt_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
(cd build-asan && ctest --output-on-failure -j 2 --timeout 1800)

echo "== ThreadSanitizer build: the storage, target and server tests"
build build-tsan -DCMAKE_BUILD_TYPE=Debug -DUNTORN_TSAN=ON
export TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1
(cd build-tsan && ctest --output-on-failure -j 2 --timeout 1800 \
  -R '^(JournaledStore|GroupSync|FileStore|RangeLock|ReadMapped|LogicalUnitTest|LoginTest|PersistentReservations|Session|AtomicWrite|RawProtocol|Digests)')

echo "== libFuzzer targets, 30 s each"
bash tests/fuzz/run_fuzz.sh --seconds 30
