#!/usr/bin/env bash
# The communication layer's numbers, measured in one run on this machine:
#  A. hiding gradient averaging: AlexNet over 2 "hosts" joined by a 1 Gbit/s link (jobs/virtual_cluster.sh,
#     needs root): t_compute and t_comm measured alone, then sync, overlap and delayed averaging steps with
#     both progress strategies; prints step / max(t_compute, t_comm) and the exposed communication.
#  B. pipelining: a 2-stage stale ResNet-56 pipeline on 2 ranks against 1 rank, 1 thread each, alternating,
#     over UPDATES updates per run (default 200: the pipe fills and drains once per run, as once per epoch
#     in training, so a short run would charge it a share an epoch of 781-937 updates never pays).
# Usage: bench/mpi_bench.sh [A] [B]   (default both); BATON=path/to/baton, ROUNDS=3, UPDATES=200.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
baton="$(realpath "${BATON:-$repo/build/runtime/baton}")"
rounds="${ROUNDS:-3}"
updates="${UPDATES:-200}"
parts=("$@")
((${#parts[@]})) || parts=(A B)
export OMP_NUM_THREADS=1 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

field() { python3 -c 'import json, sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }
median() { python3 -c 'import sys; v = sorted(map(float, sys.argv[1:])); print(v[len(v) // 2])' "$@"; }
calc() { python3 -c "print(round($1, 3))"; }

hiding() {
  [[ "$EUID" -eq 0 ]] || { echo "part A needs root (network namespaces); skipped"; return; }
  local cluster="bash $repo/jobs/virtual_cluster.sh" bench=(--model alexnet --batch-size 128 --replicas 2 --threads 1
    --iterations 5 --repeats 3 --warmup 1)
  $cluster up --hosts 2 --rate 1gbit >/dev/null
  trap "$cluster down >/dev/null" RETURN
  local compute comm
  compute="$(field "$($cluster run -- "$baton" bench "${bench[@]}" --measure compute)" median_step_ms)"
  comm="$(field "$($cluster run -- "$baton" bench "${bench[@]}" --measure comm)" median_average_ms)"
  echo "A. AlexNet, batch 128 over 2 hosts (64 each), 1 Gbit/s link, 1 thread per rank"
  printf '   t_compute %.0f ms (each host its share, no averaging), t_comm %.0f ms (averaging 115 MB alone)\n' "$compute" "$comm"
  printf '   %-8s %-8s %10s %14s %24s\n' averaging progress "step ms" "exposed comm" "step/max(tc, tcomm)"
  local progress dp step
  for progress in thread poll; do
    for dp in sync overlap delayed; do
      step="$(field "$($cluster run -- "$baton" bench "${bench[@]}" --dp "$dp" --progress "$progress")" median_step_ms)"
      printf '   %-8s %-8s %10.0f %11.0f ms %24s\n' "$dp" "$progress" "$step" "$(calc "$step - $compute")" \
        "$(calc "$step / max($compute, $comm)")"
    done
  done
}

pipelining() {
  local bench=(--model resnet56 --batch-size 64 --threads 1 --iterations "$updates" --warmup 2 --repeats 1) one=() two=()
  local three=()
  local costs round
  costs="$(mktemp --suffix=.json)"
  # The costs of two ranks computing at once, as the pipeline's two stages do.
  mpirun -n 2 --bind-to none "$baton" profile --model resnet56 --batch-size 64 --repeats 11 --output "$costs" >/dev/null
  for ((round = 1; round <= rounds; round++)); do
    one+=("$(field "$("$baton" bench "${bench[@]}")" images_per_sec)")
    two+=("$(field "$(mpirun -n 2 --bind-to none "$baton" bench "${bench[@]}" --stages 2 --pipeline stale \
      --partition-by time)" images_per_sec)")
    three+=("$(field "$(mpirun -n 2 --bind-to none "$baton" bench "${bench[@]}" --stages 2 --pipeline stale \
      --partition-by "$costs")" images_per_sec)")
  done
  local a b c predicted
  a="$(median "${one[@]}")"
  b="$(median "${two[@]}")"
  c="$(median "${three[@]}")"
  predicted="$("$baton" simulate "${bench[@]:0:4}" --iterations "$updates" --costs "$costs" --stages 2 --pipeline stale \
    --partition-by "$costs" | sed -n 2,3p)"
  rm -f "$costs"
  echo "B. ResNet-56, batch 64, 1 thread per rank, shared memory, median of $rounds alternating runs of $updates updates"
  printf '   1 rank %.1f images/s; 2-stage stale pipeline, stages balanced by measured time: %.1f images/s (%.2fx);\n' \
    "$a" "$b" "$(calc "$b / $a")"
  printf '   balanced by a cost file with what crosses each cut: %.1f images/s (%.2fx)\n' "$c" "$(calc "$c / $a")"
  echo "   the simulator on that cost file (both ranks computing at once): $predicted" | tr '\n' ' '
  echo
}

for part in "${parts[@]}"; do
  case "$part" in
    A) hiding ;;
    B) pipelining ;;
    *) echo "mpi_bench.sh: unknown part '$part'; use A or B" >&2; exit 1 ;;
  esac
done
