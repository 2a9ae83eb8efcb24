# Sourced by jobs/slurm/*.sbatch (not run by itself): runs one resumable `baton train` step inside a
# Slurm batch job. The step runs in the background so that the batch shell can take Slurm's signals
# (--signal=B:USR1@120, scancel --batch --signal=USR1, SIGTERM) and pass them on to the ranks as
# SIGUSR1; when baton then checkpoints and exits 75, the job requeues itself and resumes (not after
# SIGTERM: that is scancel, the time limit or preemption, and Slurm decides the job's fate).
#
# Environment (all optional; sbatch passes the submitting shell's environment on):
#   BATON                  the program (default: $SLURM_SUBMIT_DIR/build/runtime/baton)
#   BATON_CHECKPOINT_DIR   checkpoints (default: ./checkpoints/$SLURM_JOB_NAME-$SLURM_JOB_ID in the
#                          job's working folder; the job id survives a requeue, so it resumes there)
#   BATON_CHECKPOINT_EVERY pass --checkpoint-every N (default: baton's own)
#   BATON_REQUEUE=off      do not requeue after a checkpointed stop (exit 75)
# Options the script adds (--threads, --checkpoint-dir, --checkpoint-every, --resume) are left out
# when the job's own arguments already give them, so the arguments always win.

baton_repo="${SLURM_SUBMIT_DIR:-$PWD}"
BATON="${BATON:-$baton_repo/build/runtime/baton}"
baton_stop_exit=75  # baton's exit status after a checkpoint taken on SIGUSR1/SIGTERM

baton_log() { echo "[$(date +%H:%M:%S) batch ${SLURM_JOB_ID:-?}] $*"; }

# True when the option (e.g. --threads) is among the remaining arguments, as --opt or --opt=value.
baton_has_option() {
  local option="$1" arg
  shift
  for arg in "$@"; do
    [[ "$arg" == "$option" || "$arg" == "$option="* ]] && return 0
  done
  return 1
}

# The step's launcher pid, and whether a signal came since the last `wait`.
baton_step_pid=""
baton_signalled=""
baton_stop_signal=""

baton_forward_stop() {
  baton_signalled=1
  baton_stop_signal="$1"
  if [[ -n "$baton_step_pid" ]] && kill -0 "$baton_step_pid" 2>/dev/null; then
    baton_log "got SIG$1: sending SIGUSR1 to the step (pid $baton_step_pid) so that the ranks checkpoint and stop"
    kill -USR1 "$baton_step_pid" 2>/dev/null || true
  else
    baton_log "got SIG$1 with no step running"
  fi
}

# baton_train_step LAUNCHER CONFIG [baton train options...]
#   LAUNCHER: srun or mpirun. Runs `LAUNCHER ... $BATON train --config CONFIG <defaults> <options>`
#   and exits the batch script with the step's status (after requeueing the job on exit 75).
baton_train_step() {
  local launcher="$1" config="$2"
  shift 2
  if [[ ! -x "$BATON" ]]; then
    baton_log "no baton program at $BATON: build it (jobs/setup.sh) or set BATON"
    exit 1
  fi
  [[ "$config" = /* ]] || config="$baton_repo/$config"
  local threads="${SLURM_CPUS_PER_TASK:-1}"
  export OMP_NUM_THREADS="$threads"
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

  local -a args=(train --config "$config")
  baton_has_option --threads "$@" || args+=(--threads "$threads")
  local dir="${BATON_CHECKPOINT_DIR:-$PWD/checkpoints/${SLURM_JOB_NAME:-baton}-${SLURM_JOB_ID:-0}}"
  if baton_has_option --checkpoint-dir "$@"; then
    dir="(as given)"
  else
    mkdir -p "$dir"
    args+=(--checkpoint-dir "$dir")
  fi
  if [[ -n "${BATON_CHECKPOINT_EVERY:-}" ]] && ! baton_has_option --checkpoint-every "$@"; then
    args+=(--checkpoint-every "$BATON_CHECKPOINT_EVERY")
  fi
  baton_has_option --resume "$@" || args+=(--resume)
  args+=("$@")

  local -a step
  case "$launcher" in
    srun) step=(srun --mpi=pmix --kill-on-bad-exit=1 "$BATON" "${args[@]}") ;;
    mpirun) step=(mpirun --bind-to none -x OMP_NUM_THREADS "$BATON" "${args[@]}") ;;
    *) baton_log "unknown launcher '$launcher' (srun or mpirun)"; exit 1 ;;
  esac

  baton_log "start $((${SLURM_RESTART_COUNT:-0} + 1)) of job $SLURM_JOB_NAME on ${SLURM_JOB_NODELIST:-?}: ${SLURM_NTASKS:-?} tasks x $threads threads"
  baton_log "run: ${step[*]}"
  trap 'baton_forward_stop USR1' USR1
  trap 'baton_forward_stop TERM' TERM
  "${step[@]}" &
  baton_step_pid=$!
  local status
  while true; do
    baton_signalled=""
    wait "$baton_step_pid"
    status=$?
    # A trapped signal ends `wait` early (status > 128) while the step still runs: wait again.
    [[ -n "$baton_signalled" && $status -gt 128 ]] && kill -0 "$baton_step_pid" 2>/dev/null && continue
    [[ -n "$baton_signalled" && $status -gt 128 ]] && { wait "$baton_step_pid" 2>/dev/null; status=$?; }
    break
  done
  baton_step_pid=""

  if [[ $status -eq $baton_stop_exit ]]; then
    baton_log "the step checkpointed and stopped (exit $status)${baton_stop_signal:+ after SIG$baton_stop_signal}"
    if [[ "${BATON_REQUEUE:-on}" == off ]]; then
      baton_log "BATON_REQUEUE=off: not requeueing"
    elif [[ "$baton_stop_signal" == TERM ]]; then
      # SIGTERM to the batch shell: scancel, the time limit or preemption. Slurm ends (or itself
      # requeues) the job; requeueing here would undo a cancel.
      baton_log "not requeueing after SIGTERM (scancel, time limit or preemption); resume with BATON_CHECKPOINT_DIR=$dir"
    elif scontrol requeue "$SLURM_JOB_ID"; then
      baton_log "requeued job $SLURM_JOB_ID: it resumes from the latest checkpoint when it runs again"
    else
      baton_log "scontrol requeue $SLURM_JOB_ID failed (job not requeueable, or cancelled)"
    fi
  elif [[ -n "$baton_stop_signal" ]]; then
    baton_log "the step exited with status $status after SIG$baton_stop_signal, not $baton_stop_exit: no checkpointed stop, not requeued"
  else
    baton_log "the step exited with status $status"
  fi
  exit "$status"
}
