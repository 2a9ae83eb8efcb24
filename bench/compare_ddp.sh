#!/usr/bin/env bash
# Gradient averaging against PyTorch DDP over gloo: 2 hosts of jobs/virtual_cluster.sh joined by a
# 1 Gbit/s link, 1 thread per rank, batch 64 per rank; baton with synchronous and one-step-delayed
# averaging against PyTorch 2.x DDP (bench/pytorch_ddp.py, channels_last), alternating, medians.
# Needs root (network namespaces) and PyTorch 2.x ($BATON_TORCH_VENV, made by bench/compare_pytorch.sh).
# Usage: bench/compare_ddp.sh [model ...]   (default: alexnet vgg16); ROUNDS=3, ITERATIONS=5.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
baton="$(realpath "${BATON:-$repo/build/runtime/baton}")"
python="${BATON_TORCH_VENV:-$HOME/.cache/baton/torch2-venv}/bin/python"
rounds="${ROUNDS:-3}" iterations="${ITERATIONS:-5}"
models=("$@")
((${#models[@]})) || models=(alexnet vgg16)
export OMP_NUM_THREADS=1 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
[[ "$EUID" -eq 0 ]] || { echo "compare_ddp.sh: needs root for the virtual cluster's network namespaces." >&2; exit 1; }
[[ -x "$python" ]] || { echo "compare_ddp.sh: no PyTorch 2.x at $python; run bench/compare_pytorch.sh once (it installs it) or set BATON_TORCH_VENV." >&2; exit 1; }

field() { python3 -c 'import json, sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }
median() { python3 -c 'import sys; v = sorted(map(float, sys.argv[1:])); print(v[len(v) // 2])' "$@"; }
cluster="bash $repo/jobs/virtual_cluster.sh"

# ddp_step_ms MODEL: rank k runs inside host k's namespace, rank 0's host is the rendezvous.
ddp_step_ms() {
  local port=$((29500 + RANDOM % 1000)) k pids=() out
  out="$(mktemp)"
  for k in 0 1; do
    ip netns exec "baton-h$k" env MASTER_ADDR=10.77.0.1 MASTER_PORT="$port" WORLD_SIZE=2 RANK="$k" \
      GLOO_SOCKET_IFNAME=eth0 "$python" "$repo/bench/pytorch_ddp.py" --model "$1" --batch-size 64 \
      --iterations "$iterations" >>"$out" 2>/dev/null &
    pids+=($!)
  done
  wait "${pids[@]}"
  field "$(grep '^{' "$out")" median_step_ms
  rm -f "$out"
}

baton_step_ms() {  # MODEL DP
  field "$($cluster run -- "$baton" bench --model "$1" --batch-size 128 --replicas 2 --threads 1 \
    --iterations "$iterations" --repeats 1 --warmup 1 --dp "$2")" median_step_ms
}

$cluster up --hosts 2 --rate 1gbit >/dev/null
trap '$cluster down >/dev/null' EXIT
rows=()
for model in "${models[@]}"; do
  ddp=() sync=() delayed=()
  for ((round = 1; round <= rounds; round++)); do
    echo "  $model: round $round/$rounds" >&2
    ddp+=("$(ddp_step_ms "$model")")
    sync+=("$(baton_step_ms "$model" sync)")
    delayed+=("$(baton_step_ms "$model" delayed)")
  done
  d="$(median "${ddp[@]}")" s="$(median "${sync[@]}")" l="$(median "${delayed[@]}")"
  rows+=("$(printf '%-8s %10.0f %12.0f %14.0f %16.2f %18.2f' "$model" "$d" "$s" "$l" \
    "$(python3 -c "print($d / $s)")" "$(python3 -c "print($d / $l)")")")
done
echo
echo "2 hosts at 1 Gbit/s, batch 128 (64 per host), 1 thread per rank; ms per step, median of $rounds alternating runs"
echo "of $iterations steps; PyTorch $("$python" -c 'import torch; print(torch.__version__)') DDP over gloo in channels_last"
printf '%-8s %10s %12s %14s %16s %18s\n' model "DDP ms" "baton sync" "baton delayed" "sync speed-up" "delayed speed-up"
printf '%s\n' "${rows[@]}"
