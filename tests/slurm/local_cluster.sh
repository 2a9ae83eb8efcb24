#!/usr/bin/env bash
# Starts and stops a real one-node Slurm cluster on this machine, all its state in one folder, to try
# jobs/slurm/*.sbatch by hand and for the `slurm` test suite. Needs root and Debian's slurmctld,
# slurmd, slurm-client and munge. Usage: tests/slurm/local_cluster.sh up|down|env STATE_DIR
#
#   tests/slurm/local_cluster.sh up /tmp/slurm && eval "$(tests/slurm/local_cluster.sh env /tmp/slurm)"
#   sbatch jobs/slurm/grid.sbatch --epochs 2 --dataset synthetic; squeue
#   tests/slurm/local_cluster.sh down /tmp/slurm
#
# The node advertises LOCAL_SLURM_CPUS CPUs (default 8, whatever the machine has: config_overrides);
# the ports are the first free pair from 6817 up, so two clusters can run side by side.
set -euo pipefail
export PATH="$PATH:/usr/sbin:/sbin"

die() { echo "local_cluster.sh: $*" >&2; exit 1; }

usage() { die "usage: tests/slurm/local_cluster.sh up|down|env STATE_DIR"; }
[[ $# -eq 2 ]] || usage
action="$1"
mkdir -p "$2" 2>/dev/null || die "cannot create the state folder $2"
state="$(cd "$2" && pwd)"
conf="$state/slurm.conf"

# A process is alive when /proc shows it in any state but zombie (Z) or dead (X): a killed daemon
# whose parent has not reaped it yet still has a /proc entry.
alive() {
  local pid="$1" stat
  [[ -n "$pid" && -r "/proc/$pid/stat" ]] || return 1
  stat="$(cat "/proc/$pid/stat" 2>/dev/null)" || return 1
  stat="${stat##*) }"
  [[ "${stat:0:1}" != Z && "${stat:0:1}" != X ]]
}

pid_of() { if [[ -s "$1" ]]; then tr -dc '0-9' <"$1"; fi; }

# Sends TERM, waits up to 10 s, then KILL. Argument: pid file.
stop_daemon() {
  local pid name="$2"
  pid="$(pid_of "$1")"
  if alive "$pid"; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 100); do alive "$pid" || break; sleep 0.1; done
    if alive "$pid"; then
      echo "local_cluster.sh: $name (pid $pid) ignored SIGTERM for 10 s; killing it" >&2
      kill -KILL "$pid" 2>/dev/null || true
      for _ in $(seq 50); do alive "$pid" || break; sleep 0.1; done
    fi
  fi
  rm -f "$1"
}

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

require() {  # command, Debian package
  command -v "$1" >/dev/null 2>&1 || die "$1 not found: install Debian's $2 (apt-get install slurmctld slurmd slurm-client munge)"
}

munge_works() { munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; }

start_munge() {
  local key=/etc/munge/munge.key
  if [[ ! -s "$key" ]]; then
    echo "local_cluster.sh: creating the munge key $key"
    mkdir -p /etc/munge
    if command -v mungekey >/dev/null 2>&1; then
      mungekey --create --keyfile="$key" --force
    else
      dd if=/dev/urandom of="$key" bs=1 count=1024 status=none
    fi
  fi
  chown munge:munge /etc/munge "$key"
  chmod 700 /etc/munge
  chmod 400 "$key"
  if munge_works; then return; fi
  mkdir -p /run/munge /var/lib/munge /var/log/munge
  chown munge:munge /run/munge /var/lib/munge /var/log/munge
  chmod 755 /run/munge
  # A munged that died without cleaning up leaves its socket and pid file; --force reuses them.
  if command -v runuser >/dev/null 2>&1; then
    runuser -u munge -- munged --force
  else
    su -s /bin/sh munge -c "munged --force"
  fi
  pid_of /run/munge/munged.pid >"$state/munged.pid"
  for _ in $(seq 50); do munge_works && return; sleep 0.1; done
  die "munged did not start: see /var/log/munge/munged.log"
}

write_conf() {
  local host="$1" ctld_port="$2" d_port="$3" cpus="${LOCAL_SLURM_CPUS:-8}"
  mkdir -p "$state/ctld" "$state/spool" "$state/log"
  cat >"$conf" <<EOF
# Written by tests/slurm/local_cluster.sh: a one-node cluster without cgroups, state in $state.
ClusterName=baton-local
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$d_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=$state/ctld
SlurmdSpoolDir=$state/spool/%n
SlurmctldPidFile=$state/slurmctld.pid
SlurmdPidFile=$state/slurmd.pid
SlurmctldLogFile=$state/log/slurmctld.log
SlurmdLogFile=$state/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SlurmdParameters=config_overrides
MpiDefault=${LOCAL_SLURM_MPI:-pmix}
SwitchType=switch/none
ReturnToService=2
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
# Fast turnaround: schedule every second, no submit delay; 2 s between SIGTERM and SIGKILL;
# finished jobs stay visible to scontrol for 10 minutes. A requeued job waits cred_expire + 1 s
# before it may start again (default 120 s): 5 s here.
AuthInfo=cred_expire=5
SchedulerParameters=sched_interval=1,batch_sched_delay=0,bf_interval=1,nohold_on_prolog_fail
KillWait=2
MessageTimeout=10
MinJobAge=600
JobRequeue=1
InactiveLimit=0
Waittime=0
# Job ids start from the clock (100 per second, wrapping after 5.8 days), so that jobs of a cluster
# started later do not reuse the ids, and hence the checkpoint folders, of an earlier one.
FirstJobId=$(( ($(date +%s) % 500000) * 100 + 1 ))
MailProg=/bin/true
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus State=UNKNOWN
PartitionName=local Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
EOF
}

node_state() { SLURM_CONF="$conf" sinfo -h -N -n "$1" -o %T 2>/dev/null | head -n1 || true; }

up() {
  [[ $(id -u) -eq 0 ]] || die "up needs root (slurmd starts jobs as their users, SlurmUser=root)"
  require slurmctld slurmctld
  require slurmd slurmd
  require sinfo slurm-client
  require scontrol slurm-client
  require munged munge
  require munge munge
  local host ctld_port d_port
  host="$(hostname -s)"
  if alive "$(pid_of "$state/slurmctld.pid")" && alive "$(pid_of "$state/slurmd.pid")"; then
    echo "local_cluster.sh: already up in $state (node $host: $(node_state "$host"))"
    return
  fi
  stop_daemon "$state/slurmd.pid" slurmd
  stop_daemon "$state/slurmctld.pid" slurmctld
  ctld_port=6817
  while ! port_free "$ctld_port" || ! port_free $((ctld_port + 1)); do
    ctld_port=$((ctld_port + 2))
    ((ctld_port < 6917)) || die "no free pair of ports between 6817 and 6917"
  done
  d_port=$((ctld_port + 1))
  write_conf "$host" "$ctld_port" "$d_port"
  start_munge
  export SLURM_CONF="$conf"
  slurmctld -i || die "slurmctld failed to start: see $state/log/slurmctld.log"
  slurmd || die "slurmd failed to start: see $state/log/slurmd.log"
  local t0=$SECONDS s=""
  while ((SECONDS - t0 < 30)); do
    s="$(node_state "$host")"
    case "$s" in
      idle | mixed | allocated)
        echo "local_cluster.sh: up in $((SECONDS - t0)) s: node $host $s, $(SLURM_CONF="$conf" sinfo -h -N -n "$host" -o %c) CPUs, ports $ctld_port/$d_port, state in $state"
        return ;;
      down* | drain*) SLURM_CONF="$conf" scontrol update nodename="$host" state=resume 2>/dev/null || true ;;
    esac
    alive "$(pid_of "$state/slurmctld.pid")" || { sleep 0.5; alive "$(pid_of "$state/slurmctld.pid")"; } ||
      { tail -n 5 "$state/log/slurmctld.log" >&2 || true; down_quiet; die "slurmctld exited: see $state/log/slurmctld.log"; }
    sleep 0.5
  done
  tail -n 5 "$state/log/slurmd.log" >&2 || true
  down_quiet
  die "node $host was not idle after 30 s (state '${s:-none}'): see $state/log/slurmctld.log and slurmd.log"
}

# Cancels every job, then stops slurmd, slurmctld and the munged that up started.
down() {
  if [[ -f "$conf" ]] && alive "$(pid_of "$state/slurmctld.pid")"; then
    local jobs
    jobs="$(SLURM_CONF="$conf" squeue -h -o %i 2>/dev/null | tr '\n' ' ' || true)"
    if [[ -n "${jobs// /}" ]]; then
      echo "local_cluster.sh: cancelling jobs $jobs"
      # shellcheck disable=SC2086
      SLURM_CONF="$conf" scancel $jobs 2>/dev/null || true
      for _ in $(seq 30); do
        [[ -z "$(SLURM_CONF="$conf" squeue -h -o %i 2>/dev/null)" ]] && break
        sleep 0.5
      done
    fi
  fi
  stop_daemon "$state/slurmd.pid" slurmd
  stop_daemon "$state/slurmctld.pid" slurmctld
  # Job steps whose slurmd is gone: their slurmstepd carries this cluster's SLURM_CONF.
  local proc pid
  for proc in /proc/[0-9]*; do
    pid="${proc#/proc/}"
    [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" == slurmstepd ]] || continue
    tr '\0' '\n' 2>/dev/null <"/proc/$pid/environ" | grep -qxF "SLURM_CONF=$conf" || continue
    echo "local_cluster.sh: killing leftover slurmstepd $pid and its processes" >&2
    pkill -KILL -P "$pid" 2>/dev/null || true
    kill -KILL "$pid" 2>/dev/null || true
  done
  if [[ -s "$state/munged.pid" ]]; then
    # munged serves every Slurm daemon on the machine: leave it to another cluster still up.
    local other=""
    for proc in /proc/[0-9]*; do
      [[ "$(cat "$proc/comm" 2>/dev/null)" =~ ^slurm(ctld|d)$ ]] && alive "${proc#/proc/}" && other="${proc#/proc/}"
    done
    if [[ -n "$other" ]]; then
      echo "local_cluster.sh: leaving munged running for another Slurm daemon (pid $other)"
      rm -f "$state/munged.pid"
    else
      stop_daemon "$state/munged.pid" munged
    fi
  fi
  echo "local_cluster.sh: down ($state)"
}
down_quiet() { down >/dev/null 2>&1 || true; }

case "$action" in
  up) up ;;
  down) down ;;
  env)
    [[ -f "$conf" ]] || die "no cluster in $state: run tests/slurm/local_cluster.sh up $state first"
    echo "export SLURM_CONF=$conf" ;;
  *) usage ;;
esac
