#!/usr/bin/env bash
# Does a newer oneDNN run baton's conv-layer kernels faster than Debian's 2.6? Builds bench/onednn_versions.cpp against
# both (3.x: pip's $ONEDNN_PIP, default onednn-devel, installed once into $BATON_ONEDNN_VENV, ~2 GB), runs the two
# alternately and prints a Markdown table. Env: ROUNDS (3), ITERATIONS timed runs per primitive (20), THREADS (1).
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
readonly SCRIPT_DIR
readonly ROUNDS="${ROUNDS:-3}"
readonly ITERATIONS="${ITERATIONS:-20}"
readonly THREADS="${THREADS:-1}"
readonly ONEDNN_PIP="${ONEDNN_PIP:-onednn-devel}"  # e.g. onednn-devel-cpu-gomp (3.2, GNU OpenMP) in its own venv
readonly VENV="${BATON_ONEDNN_VENV:-$HOME/.cache/baton/onednn3-venv}"

die() { echo "compare_onednn.sh: $*" >&2; exit 1; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

[[ -f /usr/include/oneapi/dnnl/dnnl.hpp ]] || die "Debian's oneDNN 2.6 is missing: apt-get install libdnnl-dev"
if [[ -z "$(find "$VENV" -path '*/include/oneapi/dnnl/dnnl.hpp' 2>/dev/null)" ]]; then
  echo "compare_onednn.sh: installing $ONEDNN_PIP into $VENV" >&2
  /usr/bin/python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "$ONEDNN_PIP" >&2
fi
header="$(find "$VENV" -path '*/include/oneapi/dnnl/dnnl.hpp' | head -n 1)"
library="$(find "$VENV" -name 'libdnnl.so' | head -n 1)"
[[ -n "$header" && -n "$library" ]] || die "no include/oneapi/dnnl/dnnl.hpp and lib/libdnnl.so in $VENV"
include_dir="${header%/oneapi/dnnl/dnnl.hpp}"
lib_dir="$(dirname "$library")"

# Both run on the first THREADS cores: OpenMP builds also read OMP_NUM_THREADS, TBB ones only the affinity.
new_env=(OMP_NUM_THREADS="$THREADS")
if grep -q 'define DNNL_CPU_RUNTIME DNNL_RUNTIME_SYCL' "$include_dir/oneapi/dnnl/dnnl_config.h"; then
  # This oneDNN's CPU engine is a SYCL device, which SYCL reaches through OpenCL: the runtime wheels bring
  # Intel's OpenCL CPU driver, but its .icd file names a path that does not exist, and intel-cmplr-lib-ur
  # 2026.2 dropped the Unified Runtime's OpenCL adapter, so take that from the last release that has it.
  if [[ -z "$(find "$lib_dir" -maxdepth 1 -name 'libur_adapter_opencl.so*')" ]]; then
    echo "compare_onednn.sh: adding the OpenCL adapter of intel-cmplr-lib-ur<2026.2 to $lib_dir" >&2
    "$VENV/bin/pip" download --quiet --disable-pip-version-check --no-deps -d "$work/ur" 'intel-cmplr-lib-ur<2026.2' >&2
    /usr/bin/python3 -m zipfile -e "$work"/ur/*.whl "$work/ur"
    cp "$work"/ur/*.data/data/lib/libur_adapter_opencl.so* "$lib_dir"
  fi
  new_env+=(OCL_ICD_FILENAMES="$lib_dir/libintelocl.so")
fi

echo "compare_onednn.sh: building against /usr (Debian) and $VENV" >&2
g++ -std=c++17 -O2 -o "$work/base" "$SCRIPT_DIR/onednn_versions.cpp" -ldnnl
# DT_RPATH (not RUNPATH) also serves libdnnl's own dependencies: the wheel's libdnnl has no RUNPATH.
g++ -std=c++17 -O2 -o "$work/new" "$SCRIPT_DIR/onednn_versions.cpp" -I"$include_dir" -L"$lib_dir" \
  -Wl,--disable-new-dtags,-rpath,"$lib_dir" -ldnnl

cores="0-$((THREADS - 1))"
for ((round = 1; round <= ROUNDS; ++round)); do
  echo "compare_onednn.sh: round $round/$ROUNDS" >&2
  OMP_NUM_THREADS="$THREADS" taskset -c "$cores" "$work/base" "$ITERATIONS" >>"$work/base.jsonl"
  env "${new_env[@]}" taskset -c "$cores" "$work/new" "$ITERATIONS" >>"$work/new.jsonl"
done

echo "oneDNN kernels, f32, $THREADS thread(s), median of $ROUNDS rounds of $ITERATIONS timed runs each:"
echo
/usr/bin/python3 "$SCRIPT_DIR/compare_onednn.py" "$work/base.jsonl" "$work/new.jsonl"
