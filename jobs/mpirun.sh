#!/usr/bin/env bash
# Launches baton on N MPI ranks of this machine: mpirun with root allowed, ranks not pinned to
# cores (each may run several OpenMP threads) and oversubscription allowed; the cores are shared
# out as OpenMP threads unless OMP_NUM_THREADS is set. Usage: jobs/mpirun.sh N <baton command> ...
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
baton="${BATON:-$repo/build/runtime/baton}"
if [[ $# -lt 2 || ! "$1" =~ ^[0-9]+$ ]]; then
  echo "usage: jobs/mpirun.sh N <baton command and options>, e.g. jobs/mpirun.sh 4 train --config jobs/configs/stale4.ini" >&2
  exit 1
fi
[[ -x "$baton" ]] || { echo "jobs/mpirun.sh: no baton at $baton; run jobs/setup.sh first or set BATON" >&2; exit 1; }
ranks="$1"
shift
threads="${OMP_NUM_THREADS:-$(( $(nproc) / ranks > 0 ? $(nproc) / ranks : 1 ))}"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS="$threads"
exec mpirun -n "$ranks" --oversubscribe --bind-to none -x OMP_NUM_THREADS "$baton" "$@" --threads "$threads"
