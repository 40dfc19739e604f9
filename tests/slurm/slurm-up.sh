#!/bin/sh
# A single-node Slurm cluster on loopback, for the sweep tests (tests/test_slurm.py).
#
#   tests/slurm/slurm-up.sh [STATE_DIR]     # prints `export SLURM_CONF=...`; idempotent
#   tests/slurm/slurm-down.sh [STATE_DIR]
#
# Installs Debian's slurm-wlm and munge when they are missing (needs root, as in CI), writes a
# slurm.conf for this host only (no /etc files are touched but munge's key), starts munged (unless
# one already answers), slurmctld and slurmd (unless this cluster's pid files name live ones), and
# waits until the node accepts jobs. No process is looked up by name.
set -eu
PATH="$PATH:/usr/sbin:/sbin"  # the daemons live in sbin, which a root shell from `env -i` lacks
STATE=${1:-/tmp/cosim-slurm}
if [ "$(id -u)" != 0 ]; then
    echo "slurm-up.sh needs root: it installs slurm-wlm and munge and runs slurmctld/slurmd as root" >&2
    exit 2
fi
running() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
if ! command -v slurmctld >/dev/null 2>&1 || ! command -v munged >/dev/null 2>&1; then
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >&2
fi
mkdir -p "$STATE/state" "$STATE/spool" "$STATE/log" /run/munge
HOST=$(hostname -s)
CPUS=$(nproc)
MEM=$(awk '/MemTotal/ {print int($2 / 1024 * 0.8)}' /proc/meminfo)
cat > "$STATE/slurm.conf" <<CONF
ClusterName=cosim-test
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$STATE/state
SlurmdSpoolDir=$STATE/spool
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MpiDefault=none
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM State=UNKNOWN
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
CONF
export SLURM_CONF="$STATE/slurm.conf"
[ -s /etc/munge/munge.key ] || mungekey --create >&2
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    munged --force --pid-file="$STATE/munged.pid" >&2  # slurm-down.sh stops this one again
fi
running "$STATE/slurmctld.pid" || slurmctld -f "$SLURM_CONF" >&2
running "$STATE/slurmd.pid" || slurmd -f "$SLURM_CONF" -N "$HOST" >&2
for _ in $(seq 60); do
    if sinfo -h -o %T 2>/dev/null | grep -q idle; then
        echo "export SLURM_CONF=$SLURM_CONF"
        exit 0
    fi
    sleep 1
done
echo "slurm did not come up; logs in $STATE/log" >&2
sinfo >&2 || true
exit 1
