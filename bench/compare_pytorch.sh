#!/usr/bin/env bash
# Times whole training steps of baton and of PyTorch (bench/pytorch_models.py) on the same zoo models,
# one program at a time, alternating: PyTorch 2.x from PyPI in channels_last (its fastest CPU form) and
# torch.compile'd, and Debian's PyTorch 1.13. Prints step times, baton's ratio to PyTorch 2.x's best,
# baton's GFLOP/s and its share of the FMA peak per core (bench/kernels_bench's FmaPeak, and the nominal 230).
# PyTorch 2.x is installed once into $BATON_TORCH_VENV (default ~/.cache/baton/torch2-venv; ~5 GB).
# Usage: bench/compare_pytorch.sh [model:batch[:threads] ...]   (default: resnet20:128 lenet5:64)
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/.." && pwd)"
readonly SCRIPT_DIR REPO_ROOT
readonly ROUNDS="${ROUNDS:-3}"          # baton and PyTorch alternate this many times per model
readonly ITERATIONS="${ITERATIONS:-20}" # timed steps per run (each run reports its median)
readonly WARMUP="${WARMUP:-3}"          # untimed steps per run
readonly NOMINAL_PEAK=230               # GFLOP/s of FMA peak per core quoted for these machines

die() { echo "compare_pytorch.sh: $*" >&2; exit 1; }

# Absolute path of baton: $BATON (relative to the cwd, else to the repo root), default build/runtime/baton.
find_baton() {
  local candidate="${BATON:-build/runtime/baton}"
  if [[ "$candidate" != /* && ! -x "$candidate" ]]; then candidate="$REPO_ROOT/$candidate"; fi
  [[ -x "$candidate" ]] || die "no baton executable at '${BATON:-build/runtime/baton}'; build it or set BATON."
  echo "$(cd "$(dirname "$candidate")" && pwd)/$(basename "$candidate")"
}

# A Python with PyTorch, Debian's /usr/bin/python3 first.
find_python() {
  local python
  for python in /usr/bin/python3 python3; do
    if command -v "$python" >/dev/null && "$python" -c 'import torch' 2>/dev/null; then
      command -v "$python"
      return
    fi
  done
  die "PyTorch is not importable from /usr/bin/python3 or python3; install python3-torch."
}

# A Python with PyTorch 2.x: the venv's, made and filled from PyPI the first time.
find_torch2() {
  local venv="${BATON_TORCH_VENV:-$HOME/.cache/baton/torch2-venv}"
  if ! "$venv/bin/python" -c 'import torch' 2>/dev/null; then
    echo "installing PyTorch 2.x from PyPI into $venv (once; its wheel brings about 5 GB of CUDA libraries)" >&2
    { /usr/bin/python3 -m venv "$venv" && "$venv/bin/pip" install --quiet torch numpy; } >&2 ||
      die "could not install PyTorch from PyPI into $venv; check the network or set BATON_TORCH_VENV to a venv with torch 2.x."
  fi
  "$venv/bin/python" -c 'import sys, torch; sys.exit(int(torch.__version__.split(".")[0]) < 2)' ||
    die "$venv holds PyTorch $("$venv/bin/python" -c 'import torch; print(torch.__version__)'), not 2.x; remove it to reinstall."
  echo "$venv/bin/python"
}

# json_field JSON KEY: prints one value of a one-line JSON object.
json_field() { "$PYTHON" -c 'import json, sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }

# calc EXPRESSION: prints a Python arithmetic result.
calc() { "$PYTHON" -c "print($1)"; }

# median VALUES...: upper median, as baton bench reports.
median() { "$PYTHON" -c 'import sys; v = sorted(map(float, sys.argv[1:])); print(v[len(v) // 2])' "$@"; }

# measured_peak: GFLOP/s of one core running only FMAs (bench/kernels_bench beside the baton build).
measured_peak() {
  local bench
  bench="$(dirname "$BATON_BIN")/../bench/kernels_bench"
  [[ -x "$bench" ]] || die "no $bench to measure the FMA peak with; build the bench target."
  OMP_NUM_THREADS=1 "$bench" --benchmark_filter=FmaPeak --benchmark_repetitions=5 --benchmark_format=json 2>/dev/null |
    "$PYTHON" -c 'import json, sys; runs = json.load(sys.stdin)["benchmarks"]; print(max(r["FLOPS"] for r in runs) / 1e9)'
}

# baton_params MODEL: the parameter count `baton models` lists.
baton_params() { "$BATON_BIN" models | awk -v m="$1" '$1 == m { print $2 }'; }

run_baton() {  # MODEL BATCH THREADS -> JSON line
  OMP_NUM_THREADS="$3" "$BATON_BIN" bench --model "$1" --batch-size "$2" --threads "$3" \
    --iterations "$ITERATIONS" --warmup "$WARMUP"
}

run_pytorch() {  # PYTHON MODEL BATCH THREADS [pytorch_models.py flags] -> JSON line
  local python="$1" model="$2" batch="$3" threads="$4"
  shift 4
  OMP_NUM_THREADS="$threads" "$python" "$SCRIPT_DIR/pytorch_models.py" --model "$model" --batch-size "$batch" \
    --threads "$threads" --iterations "$ITERATIONS" --warmup "$WARMUP" "$@"
}

# compare MODEL BATCH THREADS: alternates the two programs ROUNDS times and appends one table row to ROWS
# and one parameter-count line to PARAM_LINES.
compare() {
  local model="$1" batch="$2" threads="$3" round line flops_per_image="" pytorch_params=""
  local -a baton_ms=() nhwc_ms=() compiled_ms=() old_ms=()
  for ((round = 1; round <= ROUNDS; round++)); do
    echo "  $model batch $batch, $threads thread(s): round $round/$ROUNDS" >&2
    line="$(run_baton "$model" "$batch" "$threads")"
    baton_ms+=("$(json_field "$line" median_step_ms)")
    if [[ -z "$flops_per_image" ]]; then
      flops_per_image="$(calc "$(json_field "$line" gflops) * 1e9 * $(json_field "$line" median_step_ms) / 1e3 / $batch")"
    fi
    line="$(run_pytorch "$TORCH2" "$model" "$batch" "$threads" --channels-last)"
    nhwc_ms+=("$(json_field "$line" median_step_ms)")
    pytorch_params="$(json_field "$line" params)"
    line="$(run_pytorch "$TORCH2" "$model" "$batch" "$threads" --channels-last --compile)"
    compiled_ms+=("$(json_field "$line" median_step_ms)")
    old_ms+=("$(json_field "$(run_pytorch "$PYTHON" "$model" "$batch" "$threads")" median_step_ms)")
  done
  local b nhwc compiled old best gflops
  b="$(median "${baton_ms[@]}")"
  nhwc="$(median "${nhwc_ms[@]}")"
  compiled="$(median "${compiled_ms[@]}")"
  old="$(median "${old_ms[@]}")"
  best="$(calc "min($nhwc, $compiled)")"
  gflops="$(calc "$flops_per_image * $batch / ($b / 1e3) / 1e9")"
  ROWS+=("$(printf '%-10s %6d %8d %10.2f %11.2f %11.2f %10.2f %12.2f %13.1f %13.1f%% %12.1f%%' "$model" "$batch" \
    "$threads" "$b" "$nhwc" "$compiled" "$old" "$(calc "$b / $best")" "$gflops" \
    "$(calc "100 * $gflops / ($PEAK * $threads)")" "$(calc "100 * $gflops / ($NOMINAL_PEAK * $threads)")")")
  local mine flag="match"
  mine="$(baton_params "$model")"
  [[ "$mine" == "$pytorch_params" ]] || flag="MISMATCH"
  PARAM_LINES+=("$(printf '%-10s baton %10s  pytorch %10s  %s' "$model" "$mine" "$pytorch_params" "$flag")")
}

print_report() {
  echo
  printf '%-10s %6s %8s %10s %11s %11s %10s %12s %13s %14s %13s\n' model batch threads "baton ms" "2.x nhwc" \
    "2.x comp." "1.13 ms" "baton/2.x" "baton GFLOP/s" "of measured" "of nominal"
  printf '%s\n' "${ROWS[@]}"
  printf '(ms: median of %s run medians, %s steps each; PyTorch %s channels_last (nhwc) and torch.compile (comp.),\n' \
    "$ROUNDS" "$ITERATIONS" "$("$TORCH2" -c 'import torch; print(torch.__version__)')"
  printf ' Debian PyTorch %s contiguous; baton/2.x against the faster 2.x form; peak per core x threads:\n' \
    "$("$PYTHON" -c 'import torch; print(torch.__version__)')"
  printf ' measured %.1f GFLOP/s, nominal %s)\n' "$PEAK" "$NOMINAL_PEAK"
  echo
  echo "parameter counts:"
  printf '%s\n' "${PARAM_LINES[@]}"
}

main() {
  BATON_BIN="$(find_baton)"
  PYTHON="$(find_python)"
  TORCH2="$(find_torch2)"
  PEAK="$(measured_peak)"
  ROWS=()
  PARAM_LINES=()
  local -a pairs=("$@")
  ((${#pairs[@]})) || pairs=(resnet20:128 lenet5:64)
  local pair model batch threads
  for pair in "${pairs[@]}"; do
    IFS=: read -r model batch threads <<<"$pair"
    [[ -n "$model" && "$batch" =~ ^[0-9]+$ && "${threads:-1}" =~ ^[0-9]+$ ]] ||
      die "'$pair' is not model:batch[:threads], e.g. resnet20:128 or resnet20:128:2."
    compare "$model" "$batch" "${threads:-1}"
  done
  print_report
}

main "$@"
