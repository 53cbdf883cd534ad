#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan + UBSan) and runs each for a fixed time from
# the seed corpus (make_seeds.py). Fails on any finding, leaving the crashing input in
# BUILD_DIR/fuzz-artifacts/. CI runs it with the default 30 s per target; a nightly-length run:
#   tests/fuzz/run_fuzz.sh --seconds 3600 --jobs 2
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds=30 build=build-fuzz jobs=1
while [ $# -gt 0 ]; do
  case $1 in
    --seconds) seconds=$2; shift 2 ;;
    --build) build=$2; shift 2 ;;
    --jobs) jobs=$2; shift 2 ;;
    *) echo "usage: run_fuzz.sh [--seconds S] [--build DIR] [--jobs N]" >&2; exit 2 ;;
  esac
done
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DUNTORN_FUZZ=ON \
  -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ >/dev/null
cmake --build "$build" -j "$(nproc)"
corpus=$build/fuzz-corpus artifacts=$build/fuzz-artifacts
mkdir -p "$corpus" "$artifacts"
python3 tests/fuzz/make_seeds.py "$corpus"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1
status=0
for name in pdu text_keys login scsi journal; do
  log=$build/fuzz-$name.log
  parallel=()
  [ "$jobs" -le 1 ] || parallel=(-jobs="$jobs" -workers="$jobs")
  if "$build/tests/fuzz/fuzz_$name" "$corpus/$name" -max_total_time="$seconds" "${parallel[@]}" \
       -max_len=70000 -artifact_prefix="$artifacts/$name-" -print_final_stats=1 \
       > "$log" 2>&1; then
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | awk '{s += $1} END {print s + 0}')
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n1)
    echo "fuzz_$name: ${seconds}s, $runs inputs, $cov, no finding"
  else
    echo "fuzz_$name: FINDING (log $log, input in $artifacts/):"; tail -n 40 "$log"; status=1
  fi
done
exit $status
