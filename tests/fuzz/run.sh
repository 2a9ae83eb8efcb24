#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz (clang, ASan + UBSan) and runs each for a fixed time.
#
#   tests/fuzz/run.sh [SECONDS] [TARGET...]    # default: 30 s each, every target
#
# The build goes to build-fuzz/ in the repository (BATON_FUZZ_BUILD=DIR for another); each target
# fuzzes a working corpus in build-fuzz/fuzz/<target>/corpus, seeded from the committed
# tests/fuzz/corpus/<target>/ (which is never written), with its dictionary. Per target it prints the
# executions (libFuzzer's stat::number_of_executed_units) and the result; a crash, sanitizer report,
# leak, timeout (-timeout, 10 s an input) or out-of-memory saves its input under
# build-fuzz/fuzz/<target>/crashes/ and makes the script exit 1 after the other targets ran.
# Reproduce one with: build-fuzz/tests/fuzz/<target> build-fuzz/fuzz/<target>/crashes/<file>
# Environment: BATON_FUZZ_CXX (clang++-14, else clang++), BATON_FUZZ_JOBS (2), BATON_FUZZ_ARGS
# (extra libFuzzer flags, e.g. -jobs=2 -workers=2).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
seconds="${1:-30}"
[[ "$seconds" =~ ^[0-9]+$ && "$seconds" -ge 1 ]] || { echo "run.sh: SECONDS must be a whole number of seconds, not '$seconds'" >&2; exit 2; }
shift || true
all_targets=(fuzz_idx fuzz_cifar fuzz_cli fuzz_safetensors fuzz_manifest)
targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || targets=("${all_targets[@]}")
for t in "${targets[@]}"; do
  [[ " ${all_targets[*]} " == *" $t "* ]] || { echo "run.sh: unknown target '$t'; choose from ${all_targets[*]}" >&2; exit 2; }
done

build="${BATON_FUZZ_BUILD:-$repo/build-fuzz}"
cxx="${BATON_FUZZ_CXX:-}"
if [[ -z "$cxx" ]]; then
  for candidate in clang++-14 clang++; do
    if command -v "$candidate" > /dev/null; then cxx="$candidate"; break; fi
  done
fi
[[ -n "$cxx" ]] || { echo "run.sh: clang++ not found; install clang-14 and libclang-rt-14-dev (apt-get install clang-14 libclang-rt-14-dev)" >&2; exit 2; }

# shellcheck disable=SC2054  # address,undefined is one value
configure=(-S "$repo" -B "$build" -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_BUILD_TYPE=RelWithDebInfo
           -DBATON_SANITIZE=address,undefined -DBATON_FUZZ=ON -DBATON_WITH_CUDA=OFF
           -DBATON_BUILD_TESTS=OFF -DBATON_BUILD_BENCHMARKS=OFF)
start=$(date +%s)
mkdir -p "$build"
cmake "${configure[@]}" > "$build/configure.log" 2>&1 || { cat "$build/configure.log" >&2; echo "run.sh: configure failed" >&2; exit 1; }
cmake --build "$build" --target "${targets[@]}" -j "${BATON_FUZZ_JOBS:-2}" || { echo "run.sh: build failed" >&2; exit 1; }
echo "run.sh: configured and built ${targets[*]} in $(( $(date +%s) - start )) s"

export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}"  # the targets never call MPI_Init
export LSAN_OPTIONS="${LSAN_OPTIONS:-suppressions=$repo/cmake/sanitizer_suppressions/lsan.supp:print_suppressions=0}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"

declare -A max_len=([fuzz_idx]=8192 [fuzz_cifar]=16384 [fuzz_cli]=4096 [fuzz_safetensors]=4096 [fuzz_manifest]=4096)
failed=()
summary=()
for t in "${targets[@]}"; do
  work="$build/fuzz/$t"
  mkdir -p "$work/corpus" "$work/crashes"
  cp -n "$repo/tests/fuzz/corpus/$t/"* "$work/corpus/" 2> /dev/null || true
  log="$work/last-run.log"
  dict=()
  [[ -f "$repo/tests/fuzz/$t.dict" ]] && dict=(-dict="$repo/tests/fuzz/$t.dict")
  echo "run.sh: fuzzing $t for $seconds s (log: $log)"
  rc=0
  # shellcheck disable=SC2086
  "$build/tests/fuzz/$t" -max_total_time="$seconds" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048 \
      -max_len="${max_len[$t]}" -artifact_prefix="$work/crashes/" "${dict[@]}" ${BATON_FUZZ_ARGS:-} \
      "$work/corpus" > "$log" 2>&1 || rc=$?
  executions=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | tail -1 | awk '{print $2}')
  if [[ -z "$executions" ]]; then  # a crash ends the run before the final stats: the last status line
    executions=$(grep -oE '^#[0-9]+' "$log" | tail -1 | tr -d '#')
  fi
  corpus_size=$(find "$work/corpus" -type f | wc -l)
  if [[ $rc -eq 0 ]]; then
    line="$t: ${executions:-?} executions in $seconds s, corpus $corpus_size inputs, no finding"
  else
    artifact=$(grep -oE "Test unit written to [^ ]+" "$log" | tail -1 | sed 's/Test unit written to //')
    kind=$(grep -oE "ERROR: (libFuzzer|AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer): [a-zA-Z-]+|runtime error: .*|ERROR: libFuzzer: timeout.*" "$log" | head -1)
    line="$t: FINDING after ${executions:-?} executions (exit $rc): ${kind:-see $log}; input: ${artifact:-none saved}"
    failed+=("$t")
    echo "---- $t: first lines of the report ($log) ----"
    grep -m1 -A25 -E "ERROR:|runtime error|deadly signal|terminate called" "$log" || tail -30 "$log"
    echo "----"
  fi
  echo "run.sh: $line"
  summary+=("$line")
done
echo
echo "run.sh summary ($seconds s per target):"
printf '  %s\n' "${summary[@]}"
if [[ ${#failed[@]} -gt 0 ]]; then
  echo "run.sh: findings in ${failed[*]}; reproduce with $build/tests/fuzz/<target> <input>" >&2
  exit 1
fi
