#!/usr/bin/env bash
# Pipelines against torch.distributed.pipelining: a 2-stage ResNet-56 cut at the same block, 2 ranks
# in shared memory with 1 thread each, batch 64. PyTorch 2.x GPipe and 1F1B over gloo
# (bench/pytorch_pipeline.py, channels_last, 4 microbatches) against baton's GPipe (4 microbatches)
# and stale-weight pipeline, alternating, median images/s. PyTorch 2.x: $BATON_TORCH_VENV (made by
# bench/compare_pytorch.sh). Usage: bench/compare_pipelines.sh; ROUNDS=3, ITERATIONS=20.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
baton="$(realpath "${BATON:-$repo/build/runtime/baton}")"
python="${BATON_TORCH_VENV:-$HOME/.cache/baton/torch2-venv}/bin/python"
rounds="${ROUNDS:-3}" iterations="${ITERATIONS:-20}"
cut=layer2.4  # stage 1 begins with this block: 13 of ResNet-56's 27 blocks before it
export OMP_NUM_THREADS=1 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
[[ -x "$python" ]] || { echo "compare_pipelines.sh: no PyTorch 2.x at $python; run bench/compare_pytorch.sh once (it installs it) or set BATON_TORCH_VENV." >&2; exit 1; }

field() { python3 -c 'import json, sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }
median() { python3 -c 'import sys; v = sorted(map(float, sys.argv[1:])); print(v[len(v) // 2])' "$@"; }

torch_images_per_sec() {  # SCHEDULE
  local port=$((29500 + RANDOM % 1000)) out r pids=()
  out="$(mktemp)"
  for r in 0 1; do
    MASTER_ADDR=127.0.0.1 MASTER_PORT="$port" WORLD_SIZE=2 RANK="$r" "$python" "$repo/bench/pytorch_pipeline.py" \
      --schedule "$1" --cut "$cut" --batch-size 64 --microbatches 4 --iterations "$iterations" >>"$out" 2>/dev/null &
    pids+=($!)
  done
  wait "${pids[@]}"
  field "$(grep '^{' "$out")" images_per_sec
  rm -f "$out"
}

baton_images_per_sec() {  # PIPELINE MICROBATCHES
  field "$(mpirun -n 2 --bind-to none "$baton" bench --model resnet56 --batch-size 64 --threads 1 --stages 2 \
    --pipeline "$1" --microbatches "$2" --partition "$cut.conv1" --iterations "$iterations" --warmup 2 --repeats 1)" \
    images_per_sec
}

declare -A runs
labels=("PyTorch GPipe, 4 microbatches" "PyTorch 1F1B, 4 microbatches" "baton GPipe, 4 microbatches"
        "baton stale-weight pipeline")
for ((round = 1; round <= rounds; round++)); do
  echo "  round $round/$rounds" >&2
  runs[0]+=" $(torch_images_per_sec gpipe)"
  runs[1]+=" $(torch_images_per_sec 1f1b)"
  runs[2]+=" $(baton_images_per_sec gpipe 4)"
  runs[3]+=" $(baton_images_per_sec stale 1)"
done
# shellcheck disable=SC2086
one_f_one_b="$(median ${runs[1]})"
echo
echo "ResNet-56, batch 64, 2 stages cut before $cut, 2 ranks in shared memory, 1 thread each; images/s, median"
echo "of $rounds alternating runs of $iterations steps; PyTorch $("$python" -c 'import torch; print(torch.__version__)') over gloo, channels_last"
for i in 0 1 2 3; do
  # shellcheck disable=SC2086
  m="$(median ${runs[$i]})"
  printf '  %-32s %8.1f images/s  %5.2f x PyTorch 1F1B\n' "${labels[$i]}" "$m" "$(python3 -c "print($m / $one_f_one_b)")"
done
