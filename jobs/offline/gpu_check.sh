#!/usr/bin/env bash
# The one command a GPU machine without network runs (issue 8): unpacks the .deb files that
# jobs/offline/download.sh fetched, builds baton with CUDA on every core, runs every GPU test and
# the GPU benchmark, and prints one summary. Logs and the summary go to $OUT (else ./gpu-check).
# Usage: bash jobs/offline/gpu_check.sh [DEB_DIR]   (default: offline-debs in the repository)
# Environment: BATON_GPU_CHECK_SECONDS (default 540) bounds the whole run; each step gets what is left.
set -uo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
debs="${1:-$repo/offline-debs}"
out="${OUT:-$repo/gpu-check}"
prefix="${BATON_OFFLINE_PREFIX:-/tmp/baton-offline}"
build="${BATON_GPU_BUILD:-/tmp/baton-gpu-build}"
budget="${BATON_GPU_CHECK_SECONDS:-540}"
started=$SECONDS
mkdir -p "$out"
summary="$out/summary.txt"
tests_log="$out/tests.log"
: >"$summary"
: >"$tests_log"

note() { echo "$*" | tee -a "$summary"; }

# seconds_left CAP: what remains of the budget (less a margin for the summary), at most CAP.
seconds_left() {
  local left=$((budget - (SECONDS - started) - 15))
  ((left < $1)) || left=$1
  echo $((left > 0 ? left : 1))
}

# step NAME CAP LOG COMMAND...: runs COMMAND with a time limit, appends its output to LOG, and
# writes one summary line: status, seconds, and GoogleTest's counts when it printed them.
step() {
  local name="$1" cap="$2" log="$3" begin=$SECONDS rc counts
  shift 3
  echo "===== $name: $*" >>"$log"
  timeout --kill-after=10 "$(seconds_left "$cap")" "$@" >>"$log" 2>&1
  rc=$?
  counts="$(sed -n "/^===== $name:/,\$p" "$log" | grep -oE '^\[  (PASSED|FAILED|SKIPPED) *\] [0-9]+ tests?' | tr '\n' ' ')"
  local status=ok
  ((rc == 0)) || status="FAILED (exit $rc$( ((rc == 124)) && echo ', out of time'))"
  note "$(printf '%-16s %-28s %4ds  %s' "$name" "$status" $((SECONDS - begin)) "$counts")"
  ((rc == 0)) || note "    $(tail -n 1 "$log" | cut -c1-400)"
  return $rc
}

# failed_tests: the names of every failed test in the test log, once each.
failed_tests() { grep -hE '^\[  FAILED  \] [A-Za-z]' "$tests_log" | sort -u | sed 's/^/    /' | tee -a "$summary"; }

# PyTorch's wheels hold cuDNN and cuBLAS where the loader does not look: put their folders first.
wheel_libs="$(python3 -c 'import importlib, os
dirs = []
for name in ("nvidia.cudnn", "nvidia.cublas", "nvidia.cu13"):
    try:
        dirs += [os.path.join(p, "lib") for p in importlib.import_module(name).__path__]
    except ImportError:
        pass
print(":".join(d for d in dirs if os.path.isdir(d)))' 2>/dev/null)"
[[ -z "$wheel_libs" ]] || export LD_LIBRARY_PATH="$wheel_libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

note "baton GPU check, $(date -u +%FT%TZ), commit $(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)"
{
  nvidia-smi -L || echo "nvidia-smi: not available"
  echo "cores: $(nproc)"
  command -v nvcc && nvcc --version | tail -n 2
  python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "cudnn", torch.backends.cudnn.version(), "gpu", torch.cuda.is_available())'
  echo "toolkit libraries:"; ls /usr/local/cuda/lib64 2>&1 | grep -E 'cudart|cublas|cudnn' | tr '\n' ' '; echo
  echo "wheel libraries: $wheel_libs"
} >"$out/environment.log" 2>&1
note "$(grep -m1 GPU "$out/environment.log" || echo 'no GPU listed by nvidia-smi')"

step unpack 120 "$out/build.log" bash "$repo/jobs/offline/unpack.sh" "$debs" "$prefix" || { note "cannot continue without the packages"; exit 1; }
# shellcheck source=/dev/null
source "$prefix/env.sh"
mapfile -t cmake_args <"$prefix/cmake-args.txt"
# cuBLAS from the wheels when the toolkit has none (they ship only libcublas.so.13 and the like).
if ! compgen -G "/usr/local/cuda/lib64/libcublas.so*" >/dev/null; then
  for dir in ${wheel_libs//:/ }; do
    cublas="$(compgen -G "$dir/libcublas.so*" | head -n 1)"
    if [[ -n "$cublas" ]]; then cmake_args+=(-DCUBLAS_LIBRARY="$cublas"); break; fi
  done
fi
nvcc_path="$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)"
step configure 120 "$out/build.log" cmake -S "$repo" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DBATON_WITH_CUDA=ON -DCMAKE_CUDA_COMPILER="$nvcc_path" -DCMAKE_CUDA_ARCHITECTURES=90 -DBATON_BUILD_BENCHMARKS=OFF \
  "${cmake_args[@]}" || { note "configure failed: see build.log"; exit 1; }
step build 360 "$out/build.log" cmake --build "$build" -j "$(nproc)" --target baton baton_unit_tests \
  baton_layer_tests baton_e2e_tests baton_mpi_tests || { tail -n 40 "$out/build.log"; note "build failed: see build.log"; exit 1; }

# Sandboxed kernels may refuse process_vm_readv, which Open MPI's shared memory uses for big messages.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1 OMPI_MCA_btl_vader_single_copy_mechanism=none
tests="$build/tests"
export GTEST_COLOR=no
step cuda-probe 60 "$tests_log" "$tests/baton_unit_tests" --gtest_filter='CudaDevices.*'
step layers+zoo 240 "$tests_log" "$tests/baton_layer_tests" --gtest_filter='*cuda*:Emulation.MixedBackend*'
step e2e 240 "$tests_log" "$tests/baton_e2e_tests" --gtest_filter='CudaCli.*'
step emulation 300 "$tests_log" env BATON_TEST_BACKEND=cuda "$tests/baton_layer_tests" --gtest_filter='Emulation.*'
for ranks in 2 4; do
  step "mpi-$ranks-ranks" 300 "$tests_log" mpirun -n "$ranks" --oversubscribe --bind-to none -x BATON_TEST_BACKEND=cuda \
    -x OMP_NUM_THREADS -x GTEST_COLOR -x LD_LIBRARY_PATH "$tests/baton_mpi_tests"
done
step bench 300 "$out/bench.log" env BATON="$build/runtime/baton" python3 "$repo/bench/gpu_bench.py" \
  --output "$out/gpu_bench.json"

note "failed tests:"
failed_tests || true
note "benchmark:"
sed -n '/^GPU training steps/,$p' "$out/bench.log" | tee -a "$summary"
note "done in $((SECONDS - started)) s; logs in $out"
