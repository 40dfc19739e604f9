#!/bin/sh
# Stop the test cluster of slurm-up.sh (and munged, if slurm-up.sh started it); remove its state.
# Only processes this cluster started are ended: by their pid files and as children of its slurmd.
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
# Job steps would wait forever for daemons that are gone. Their slurmstepd is re-parented to init
# and, like every process of this cluster, carries its mark: an environment naming its slurm.conf.
# So the orphans with that mark and what runs under them are killed (never a process found by
# name; slurmstepd ignores SIGTERM). This script and the processes that called it are spared.
ancestors() {
    pid=$$
    while [ "$pid" -gt 1 ]; do
        echo "$pid"
        pid=$(ps -o ppid= -p "$pid" | tr -d ' ')
    done
}
orphans() {
    spared=" $(ancestors | tr '\n' ' ') "
    for env in /proc/[0-9]*/environ; do
        pid=${env#/proc/}
        pid=${pid%/environ}
        case "$spared" in *" $pid "*) continue ;; esac
        [ "$(ps -o ppid= -p "$pid" 2>/dev/null | tr -d ' ')" = 1 ] || continue
        { tr '\0' '\n' < "$env"; } 2>/dev/null | grep -qxF "SLURM_CONF=$SLURM_CONF" && echo "$pid"
    done
}
descendants() {
    for child in $(ps -o pid= --ppid "$1" 2>/dev/null); do
        echo "$child"
        descendants "$child"
    done
}
steps=$(for step in $(orphans); do echo "$step"; descendants "$step"; done)
for daemon in slurmd slurmctld munged; do  # munged has a pid file here only if slurm-up.sh started it
    [ -f "$STATE/$daemon.pid" ] && kill "$(cat "$STATE/$daemon.pid")" 2>/dev/null
done
[ -n "$steps" ] && kill -KILL $steps 2>/dev/null
sleep 1
rm -rf "$STATE"
exit 0
