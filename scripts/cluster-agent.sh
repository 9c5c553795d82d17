#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# scripts/cluster-agent.sh — Open MPI's remote launch agent for the cluster of
# scripts/cluster.sh, in place of ssh: `cluster-agent.sh HOST CMD...` runs CMD
# in HOST (its address from the hostfile, its hostname zrt-hI, or I) inside
# that host's namespaces (`cluster.sh exec`). Like ssh, it joins CMD's words
# with spaces and runs them through `sh -c` (Open MPI quotes the orted command
# for a remote shell), with a login's environment only (HOME, PATH, USER,
# LOGNAME, SHELL, LANG): the ranks on that host get the rest as on a real
# cluster, through mpirun's -x and the OMPI_MCA_* variables mpirun forwards.
# Use it from mpirun running inside host 1:
#   scripts/cluster.sh exec 1 mpirun --mca plm_rsh_agent $PWD/scripts/cluster-agent.sh \
#       --hostfile "$(scripts/cluster.sh hostfile)" ...
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: cluster-agent.sh HOST CMD..." >&2; exit 2; }
HOST=$1
shift
exec env -i HOME="${HOME:-/root}" PATH="$PATH" USER="${USER:-$(id -un)}" \
    LOGNAME="${LOGNAME:-$(id -un)}" SHELL=/bin/sh LANG="${LANG:-C.UTF-8}" \
    "$(dirname "$0")/cluster.sh" exec "$HOST" sh -c "$*"
