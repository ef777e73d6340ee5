#!/usr/bin/env bash
# Bring up a one-node Slurm cluster on loopback (Debian, as root) for the live-SLURM test and for trying
# profiles/slurm on one machine. Daemons bind to 127.0.0.1 only; one fake GPU (gres File=/dev/null) lets
# GPU jobs schedule on a CPU node. State, logs and pid files live under $SLURM_ROOT.
#   sudo scripts/slurm/up.sh      then   scripts/slurm/down.sh
set -euo pipefail
SLURM_ROOT=${SLURM_ROOT:-/tmp/erasure-slurm}
export DEBIAN_FRONTEND=noninteractive

if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v munged >/dev/null; then
  apt-get update -q
  apt-get install -y -q --no-install-recommends slurmctld slurmd slurm-client munge
fi

mkdir -p "$SLURM_ROOT"/etc "$SLURM_ROOT"/spool/ctld "$SLURM_ROOT"/spool/d "$SLURM_ROOT"/log
cpus=$(nproc)
mem_mb=$(awk '/MemTotal/ {printf "%d", $2 / 1024 * 0.9}' /proc/meminfo)

cat > "$SLURM_ROOT/etc/slurm.conf" <<CONF
ClusterName=erasure-ci
SlurmctldHost=localhost(127.0.0.1)
SlurmUser=root
AuthType=auth/munge
CredType=cred/munge
# bind slurmd, srun and slurmctld to the loopback address only
CommunicationParameters=NoInAddrAny,NoCtldInAddrAny
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=$SLURM_ROOT/spool/ctld
SlurmdSpoolDir=$SLURM_ROOT/spool/d
SlurmctldPidFile=$SLURM_ROOT/slurmctld.pid
SlurmdPidFile=$SLURM_ROOT/slurmd.pid
SlurmctldLogFile=$SLURM_ROOT/log/slurmctld.log
SlurmdLogFile=$SLURM_ROOT/log/slurmd.log
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
ReturnToService=2
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# no slurmdbd: snakemake polls with squeue, which must still list finished jobs
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MinJobAge=600
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
KillWait=5
Waittime=0
GresTypes=gpu
NodeName=localhost NodeAddr=127.0.0.1 NodeHostname=localhost CPUs=$cpus RealMemory=$mem_mb Gres=gpu:1 State=UNKNOWN
# DefMemPerCPU: without it a job that names no memory takes the whole node
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE DefMemPerCPU=1000 State=UP
CONF

# a GPU gres line without File= is dropped silently and the node drains
cat > "$SLURM_ROOT/etc/gres.conf" <<CONF
AutoDetect=off
NodeName=localhost Name=gpu File=/dev/null
CONF

if [ ! -s /etc/munge/munge.key ]; then
  mungekey --create --force
  chown munge:munge /etc/munge/munge.key
  chmod 400 /etc/munge/munge.key
fi
install -d -o munge -g munge -m 755 /run/munge
munge -n >/dev/null 2>&1 || runuser -u munge -- /usr/sbin/munged

# srun inside a job reads only the default path (SLURM_CONF is stripped by the jobstep plugin)
mkdir -p /etc/slurm
ln -sf "$SLURM_ROOT/etc/slurm.conf" /etc/slurm/slurm.conf
ln -sf "$SLURM_ROOT/etc/gres.conf" /etc/slurm/gres.conf

/usr/sbin/slurmctld
/usr/sbin/slurmd -N localhost

state=""
for _ in $(seq 1 60); do
  state=$(sinfo -h -N -o %T 2>/dev/null || true)
  [ "$state" = idle ] && break
  sleep 0.5
done
sinfo -N -o '%N %T %c %m %G'
if [ "$state" != idle ]; then
  echo "slurm node is '$state', not idle; see $SLURM_ROOT/log/" >&2
  exit 1
fi
