#!/usr/bin/env bash
# Stop the loopback cluster of up.sh by PID (each PID is read first: the daemons delete their pid files).
set -uo pipefail
SLURM_ROOT=${SLURM_ROOT:-/tmp/erasure-slurm}
for f in "$SLURM_ROOT/slurmd.pid" "$SLURM_ROOT/slurmctld.pid" /run/munge/munged.pid; do
  [ -s "$f" ] || continue
  pid=$(cat "$f")
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
done
rm -f /etc/slurm/slurm.conf /etc/slurm/gres.conf
