#!/usr/bin/env bash
# Turns this one machine into N MPI "hosts": network namespaces on a bridge, each link rate-limited
# with tc tbf, each host with its own hostname; then runs mpirun across them over TCP, so
# communication costs what it would on a real (e.g. 1 Gbit/s) network. Needs root. See --help.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
agent="$here/netns_agent.sh"
prefix="baton-h"          # namespaces baton-h0, baton-h1, ...
bridge="baton-br0"        # bridge in the root namespace
vprefix="baton-v"         # root-side veth ends baton-v0, ...; inside namespace K the end is eth0
subnet="10.77.0"          # host K has $subnet.(K+1); the bridge has $subnet.254
state_dir="/run/baton-virtual-cluster"

usage() {
  cat <<EOF
usage: bash jobs/virtual_cluster.sh up   [--hosts N] [--rate RATE]   (default 2 hosts, 1gbit)
       bash jobs/virtual_cluster.sh down
       bash jobs/virtual_cluster.sh run  [--hosts N] [--slots S] [-x VAR]... -- COMMAND [ARGS...]
       bash jobs/virtual_cluster.sh status
RATE is a tc rate such as 100mbit, 1gbit, 10gbit; it limits each host's link in both directions.
'run' starts S ranks (default 1) on each of the first N hosts (default: all that are up), over
TCP on $subnet.0/24 only. It forwards PATH, LD_LIBRARY_PATH and any set OMP_*, DNNL_*, ONEDNN_*,
BATON_* variables to the ranks; -x VAR forwards another.
EOF
}

die() { echo "virtual_cluster.sh: $*" >&2; exit 1; }

need_root_tools() {
  [[ "$EUID" -eq 0 ]] || die "this needs root (it creates network namespaces); run it as root."
  command -v ip >/dev/null || die "'ip' is missing; install Debian's iproute2 package."
  command -v tc >/dev/null || die "'tc' is missing; install Debian's iproute2 package."
  command -v unshare >/dev/null || die "'unshare' is missing; install Debian's util-linux package."
}

check_count() {  # check_count NAME VALUE MAX
  [[ "$2" =~ ^[0-9]+$ && "$2" -ge 1 && "$2" -le "$3" ]] || die "$1 must be an integer from 1 to $3, not '$2'."
}

# Bytes per second for a tc rate such as 1gbit, 500mbit, 2.5gbit.
rate_bytes_per_s() {
  local r="${1,,}"
  [[ "$r" =~ ^([0-9]+(\.[0-9]+)?)(bit|kbit|mbit|gbit|tbit)$ ]] \
    || die "rate must look like 100mbit, 1gbit or 10gbit, not '$1'."
  local mult
  case "${BASH_REMATCH[3]}" in
    bit) mult=1 ;; kbit) mult=1000 ;; mbit) mult=1000000 ;; gbit) mult=1000000000 ;;
    tbit) mult=1000000000000 ;;
  esac
  awk -v n="${BASH_REMATCH[1]}" -v m="$mult" 'BEGIN { printf "%.0f", n * m / 8 }'
}

cmd_down() {
  need_root_tools
  local ns
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -E "^${prefix}[0-9]+$" || true); do
    ip netns delete "$ns"   # deleting a namespace deletes its veth end, and with it the pair
  done
  local dev
  for dev in $(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | sed 's/@.*//' \
               | grep -E "^${vprefix}[0-9]+$" || true); do
    ip link delete "$dev" 2>/dev/null || true
  done
  if ip link show "$bridge" >/dev/null 2>&1; then ip link delete "$bridge"; fi
  rm -rf "$state_dir"
}

cmd_up() {
  local hosts=2 rate=1gbit
  while [[ $# -gt 0 ]]; do
    case "$1" in
      --hosts) [[ $# -ge 2 ]] || die "--hosts needs a value."; hosts="$2"; shift 2 ;;
      --rate) [[ $# -ge 2 ]] || die "--rate needs a value."; rate="$2"; shift 2 ;;
      -h|--help) usage; exit 0 ;;
      *) die "unknown option '$1' for 'up' (see --help)." ;;
    esac
  done
  need_root_tools
  check_count "--hosts" "$hosts" 253
  local bps
  bps="$(rate_bytes_per_s "$rate")"
  # tbf: the bucket holds 1 ms of traffic but at least 128 KiB (room for a 64 KiB GSO packet);
  # a queue of 50 ms before drops, so TCP sees a slow link rather than a lossy one.
  local burst=$(( bps / 1000 )); (( burst >= 131072 )) || burst=131072

  cmd_down
  ip link add "$bridge" type bridge
  ip addr add "$subnet.254/24" dev "$bridge"
  ip link set "$bridge" up
  local k ns
  for (( k = 0; k < hosts; k++ )); do
    ns="$prefix$k"
    ip netns add "$ns"
    ip link add "$vprefix$k" type veth peer name eth0 netns "$ns"
    ip link set "$vprefix$k" master "$bridge"
    ip link set "$vprefix$k" up
    ip -n "$ns" link set lo up
    ip -n "$ns" addr add "$subnet.$((k + 1))/24" dev eth0
    ip -n "$ns" link set eth0 up
    # Host K's egress (inside its namespace) and its ingress (the root-side end's egress).
    ip netns exec "$ns" tc qdisc add dev eth0 root tbf rate "$rate" burst "$burst" latency 50ms
    tc qdisc add dev "$vprefix$k" root tbf rate "$rate" burst "$burst" latency 50ms
  done
  mkdir -p "$state_dir"
  echo "$hosts" > "$state_dir/hosts"
  echo "$rate" > "$state_dir/rate"
  echo "virtual cluster up: $hosts hosts ${prefix}0..$prefix$((hosts - 1)) at $subnet.1..$subnet.$hosts, $rate per link"
}

hosts_up() {  # number of hosts created by 'up', or 0
  if [[ -f "$state_dir/hosts" ]] && ip link show "$bridge" >/dev/null 2>&1; then
    cat "$state_dir/hosts"
  else
    echo 0
  fi
}

cmd_status() {
  need_root_tools
  local n; n="$(hosts_up)"
  [[ "$n" -gt 0 ]] || { echo "virtual cluster is down"; return 0; }
  echo "virtual cluster up: $n hosts, $(cat "$state_dir/rate") per link"
  local k
  for (( k = 0; k < n; k++ )); do
    echo "  $prefix$k $subnet.$((k + 1)) $(ip netns exec "$prefix$k" tc qdisc show dev eth0 | head -1)"
  done
}

cmd_run() {
  local hosts="" slots=1
  local -a extra_env=()
  while [[ $# -gt 0 ]]; do
    case "$1" in
      --hosts) [[ $# -ge 2 ]] || die "--hosts needs a value."; hosts="$2"; shift 2 ;;
      --slots) [[ $# -ge 2 ]] || die "--slots needs a value."; slots="$2"; shift 2 ;;
      -x) [[ $# -ge 2 ]] || die "-x needs a variable name."; extra_env+=("$2"); shift 2 ;;
      --) shift; break ;;
      -h|--help) usage; exit 0 ;;
      *) die "unknown option '$1' for 'run'; put the command after '--' (see --help)." ;;
    esac
  done
  [[ $# -ge 1 ]] || die "'run' needs a command after '--'."
  need_root_tools
  command -v mpirun >/dev/null || die "'mpirun' is missing; install Debian's openmpi-bin package."
  local up; up="$(hosts_up)"
  [[ "$up" -gt 0 ]] || die "the virtual cluster is not up; run 'bash jobs/virtual_cluster.sh up' first."
  [[ -n "$hosts" ]] || hosts="$up"
  check_count "--hosts" "$hosts" "$up"
  check_count "--slots" "$slots" 64
  [[ -f "$agent" ]] || die "the launcher agent $agent is missing."

  local k hostlist=""
  for (( k = 0; k < hosts; k++ )); do
    hostlist+="${hostlist:+,}$subnet.$((k + 1)):$slots"
  done

  # The ranks start from a clean environment (see netns_agent.sh); forward what they need.
  local -a xs=()
  local v
  for v in PATH LD_LIBRARY_PATH $(compgen -e | grep -E '^(OMP_|DNNL_|ONEDNN_|BATON_)' || true) \
           "${extra_env[@]}"; do
    [[ -n "${!v+set}" ]] && xs+=(-x "$v")
  done

  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
  exec mpirun \
    --mca plm_rsh_agent "bash $agent" \
    --mca plm_rsh_no_tree_spawn 1 \
    --mca pml ob1 \
    --mca btl tcp,self \
    --mca btl_tcp_if_include "$subnet.0/24" \
    --mca oob_tcp_if_include "$subnet.0/24" \
    --host "$hostlist" -np $(( hosts * slots )) \
    --bind-to none \
    "${xs[@]}" \
    "$@"
}

[[ $# -ge 1 ]] || { usage >&2; exit 1; }
action="$1"; shift
case "$action" in
  up) cmd_up "$@" ;;
  down) [[ $# -eq 0 ]] || die "'down' takes no options."; cmd_down ;;
  run) cmd_run "$@" ;;
  status) cmd_status ;;
  -h|--help|help) usage ;;
  *) die "unknown action '$action'; use up, down, run or status (see --help)." ;;
esac
