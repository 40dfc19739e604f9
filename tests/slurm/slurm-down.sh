#!/bin/sh
# Stop the test cluster of slurm-up.sh (and munged, if slurm-up.sh started it); remove its state.
# Jobs still known to Slurm are cancelled and given a few seconds to end, so no job step outlives
# the daemons.
set -u
STATE=${1:-/tmp/cosim-slurm}
export SLURM_CONF="$STATE/slurm.conf"
if [ -f "$SLURM_CONF" ]; then
    scancel --full --user="$(id -un)" 2>/dev/null
    for _ in $(seq 20); do
        [ -z "$(squeue -h 2>/dev/null)" ] && break
        sleep 0.5
    done
fi
for daemon in slurmd slurmctld; do
    [ -f "$STATE/$daemon.pid" ] && kill "$(cat "$STATE/$daemon.pid")" 2>/dev/null
done
sleep 1
pkill -x slurmstepd 2>/dev/null  # a step or srun whose daemons are gone would wait for them forever
pkill -x srun 2>/dev/null
[ -f "$STATE/munged.ours" ] && pkill -x munged
rm -rf "$STATE"
exit 0
