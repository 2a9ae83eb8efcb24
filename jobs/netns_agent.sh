#!/usr/bin/env bash
# Stand-in for ssh that Open MPI's rsh launcher calls (plm_rsh_agent) for jobs/virtual_cluster.sh:
# "netns_agent.sh HOST COMMAND..." runs COMMAND with sh inside HOST's network namespace, under
# a fresh UTS namespace whose hostname is the namespace's name, with a clean ssh-like environment.
set -euo pipefail
prefix="${BATON_VC_PREFIX:-baton-h}"
subnet="${BATON_VC_SUBNET:-10.77.0}"

# Open MPI may put ssh-style options before the host; skip anything that starts with '-'.
while [[ $# -gt 0 && "$1" == -* ]]; do shift; done
if [[ $# -lt 2 ]]; then
  echo "netns_agent.sh: usage: netns_agent.sh HOST COMMAND..." >&2
  exit 1
fi
host="$1"
shift

# A host is named either by its namespace (baton-hK) or by its address (SUBNET.(K+1)).
case "$host" in
  "$prefix"[0-9]*) ns="$host" ;;
  "$subnet".[0-9]*) ns="$prefix$(( ${host##*.} - 1 ))" ;;
  *) echo "netns_agent.sh: host '$host' is not a virtual cluster host ($prefix<K> or $subnet.<K+1>)." >&2
     exit 1 ;;
esac
if [[ ! -e "/run/netns/$ns" ]]; then
  echo "netns_agent.sh: network namespace $ns does not exist; run 'jobs/virtual_cluster.sh up' first." >&2
  exit 1
fi

# Like sshd: the remote command is one shell string, and the environment starts (almost) empty,
# so nothing mpirun set for itself leaks into the remote daemon.
# shellcheck disable=SC2016  # $0 and $1 belong to the inner sh
exec env -i PATH="${PATH:-/usr/local/bin:/usr/bin:/bin}" HOME="${HOME:-/root}" \
  SHELL=/bin/sh USER="${USER:-root}" LOGNAME="${USER:-root}" \
  ${LD_LIBRARY_PATH:+LD_LIBRARY_PATH="$LD_LIBRARY_PATH"} \
  OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 \
  ip netns exec "$ns" unshare --uts sh -c 'hostname "$0" && exec sh -c "$1"' "$ns" "$*"
