#!/usr/bin/env bash
# baton simulate against measurement, in one run on this machine: each configuration is timed by
# baton bench and predicted by baton simulate from a cost file profiled here and a network file
# calibrated by baton profile --network; prints predicted / measured step time per row.
#  shared memory (1 thread per rank): ResNet-56 b64 on 1 rank and as 2-stage gpipe, pipedream and
#  stale pipelines; AlexNet b64 over 2 replicas with sync, overlap and delayed averaging; 4 ranks
#  (on 2 cores, which the simulator shares among the ranks computing at each moment): ResNet-56
#  4-stage gpipe and stale, AlexNet over 4 replicas, sync and delayed.
#  2 hosts at 1 Gbit/s (jobs/virtual_cluster.sh, needs root): AlexNet b128, sync, overlap, delayed;
#  ResNet-56 b64 as 2-stage gpipe, pipedream and stale pipelines, one stage per host.
# Usage: bench/simulator_bench.sh; BATON=path/to/baton, ITERATIONS=10.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
baton="$(realpath "${BATON:-$repo/build/runtime/baton}")"
iterations="${ITERATIONS:-10}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
export OMP_NUM_THREADS=1 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

field() { python3 -c 'import json, sys; print(json.loads(sys.argv[1].strip().splitlines()[-1])[sys.argv[2]])' "$1" "$2"; }
calc() { python3 -c "print(round($1, 3))"; }

# row LABEL LAUNCH NETWORK COSTS MODEL BATCH ARGS...: measured under LAUNCH, predicted from the
# cost file COSTS (in $work) with NETWORK.
row() {
  local label="$1" launch="$2" network="$3" costs="$4" model="$5" batch="$6"
  shift 6
  local common=(--model "$model" --batch-size "$batch" --iterations "$iterations" "$@")
  local measured predicted
  measured="$(field "$($launch "$baton" bench "${common[@]}" --threads 1 --warmup 2 --repeats 3)" median_step_ms)"
  predicted="$(field "$("$baton" simulate "${common[@]}" --costs "$work/$costs" --network "$network" \
    $([[ "$launch" == cluster ]] && echo --ranks-per-node 1))" step_ms)"
  printf '   %-46s %12.1f %12.1f %10s\n' "$label" "$measured" "$predicted" "$(calc "$predicted / $measured")"
}
alone() { "$@"; }
pair() { mpirun -n 2 --bind-to none "$@"; }
quad() { mpirun -n 4 --oversubscribe --bind-to none "$@"; }
cluster() { bash "$repo/jobs/virtual_cluster.sh" run -- "$@"; }

# Costs measured by one rank alone for the 1-rank row, else by as many ranks at once as this
# machine has cores (2): the simulator shares the cores among the 4-rank rows' computing ranks.
# The 4-rank rows' network file is calibrated by 4 ranks (their allreduce, all reducing at once).
"$baton" profile --model resnet56 --batch-size 64 --microbatches 1,4 --repeats 11 --output "$work/resnet56-1.json" >/dev/null
pair "$baton" profile --model resnet56 --batch-size 64 --microbatches 1,4 --repeats 11 --output "$work/resnet56-2.json" >/dev/null
pair "$baton" profile --model alexnet --batch-size 64 --microbatches 1,2,4 --repeats 3 --output "$work/alexnet-2.json" \
  >/dev/null
pair "$baton" profile --network --repeats 10 --output "$work/shm.json" >/dev/null
quad "$baton" profile --network --repeats 10 --output "$work/shm4.json" >/dev/null

echo "Shared memory, 1 thread per rank, $iterations updates per timed run (median of 3)"
printf '   %-46s %12s %12s %10s\n' configuration "measured ms" "predicted ms" ratio
row "ResNet-56 b64, 1 rank" alone "$work/shm.json" resnet56-1.json resnet56 64
for pipeline in "gpipe --microbatches 4" pipedream stale; do
  row "ResNet-56 b64, 2-stage $pipeline" pair "$work/shm.json" resnet56-2.json resnet56 64 --stages 2 \
    --pipeline $pipeline --partition-by "$work/resnet56-2.json"
done
for dp in sync overlap delayed; do
  row "AlexNet b64, 2 replicas, $dp" pair "$work/shm.json" alexnet-2.json alexnet 64 --replicas 2 --dp "$dp"
done
echo "   4 ranks on the 2 cores, which the simulator shares among the ranks computing at each moment"
for pipeline in "gpipe --microbatches 4" stale; do
  row "ResNet-56 b64, 4-stage $pipeline" quad "$work/shm4.json" resnet56-2.json resnet56 64 --stages 4 \
    --pipeline $pipeline --partition-by "$work/resnet56-2.json"
done
for dp in sync delayed; do
  row "AlexNet b64, 4 replicas, $dp" quad "$work/shm4.json" alexnet-2.json alexnet 64 --replicas 4 --dp "$dp"
done

if [[ "$EUID" -ne 0 ]]; then
  echo "2 hosts at 1 Gbit/s need root (network namespaces); skipped"
  exit 0
fi
bash "$repo/jobs/virtual_cluster.sh" up --hosts 2 --rate 1gbit >/dev/null
trap 'bash "$repo/jobs/virtual_cluster.sh" down >/dev/null; rm -rf "$work"' EXIT
bash "$repo/jobs/virtual_cluster.sh" run --slots 1 -- "$baton" profile --network --repeats 10 \
  --output "$work/cluster.json" >/dev/null
echo "2 hosts at 1 Gbit/s (virtual cluster), 1 rank and 1 thread each"
for dp in sync overlap delayed; do
  row "AlexNet b128, 2 replicas, $dp" cluster "$work/cluster.json" alexnet-2.json alexnet 128 --replicas 2 --dp "$dp"
done
for pipeline in "gpipe --microbatches 4" pipedream stale; do
  row "ResNet-56 b64, 2-stage $pipeline" cluster "$work/cluster.json" resnet56-2.json resnet56 64 --stages 2 \
    --pipeline $pipeline --partition-by "$work/resnet56-2.json"
done
