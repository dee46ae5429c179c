#!/usr/bin/env bash
# A one-node SLURM run entirely by the current (unprivileged) user: munged, slurmctld and
# slurmd with a user-owned config and every state, log and spool folder under one folder.
# Binder's `start` hook uses it; tests/test_binder.py runs it as a throwaway user.
#
#   binder/slurm_user_cluster.sh start    # idempotent; prints the SLURM_CONF to export
#   binder/slurm_user_cluster.sh status
#   binder/slurm_user_cluster.sh stop
#
# Settings (environment):
#   SLURM_USER_CLUSTER_DIR   where everything lives     [$HOME/.slurm-user-cluster]
#   SLURM_USER_CTLD_PORT     slurmctld's port           [6817]
#   SLURM_USER_SLURMD_PORT   slurmd's port              [6818]
#   SLURM_USER_CPUS          job slots on the node      [8]
#   SLURM_USER_MEM_PER_CPU   DefMemPerCPU, MB           [256]
#   SLURM_USER_REAL_MEMORY   RealMemory, MB             [from /proc/meminfo and the cgroup]
#
# Without root nothing can switch users, so jobs run as the user who started the daemons
# (slurmstepd skips dropping privileges when it is not root); no cgroups, no accounting.
set -euo pipefail

dir=${SLURM_USER_CLUSTER_DIR:-$HOME/.slurm-user-cluster}
ctld_port=${SLURM_USER_CTLD_PORT:-6817}
slurmd_port=${SLURM_USER_SLURMD_PORT:-6818}
cpus=${SLURM_USER_CPUS:-8}
mem_per_cpu=${SLURM_USER_MEM_PER_CPU:-256}
conf=$dir/etc/slurm.conf
socket=$dir/run/munge.socket
user=$(id -un)
host=$(hostname -s)
export SLURM_CONF=$conf

say() { echo "slurm_user_cluster: $*" >&2; }

alive() { # alive NAME: the daemon of that pid file runs
  local pid
  pid=$(cat "$dir/run/$1.pid" 2>/dev/null) || return 1
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null
}

real_memory() {
  if [ -n "${SLURM_USER_REAL_MEMORY:-}" ]; then
    echo "$SLURM_USER_REAL_MEMORY"
    return
  fi
  local mb limit
  mb=$(awk '/^MemTotal:/ {print int($2 / 1024)}' /proc/meminfo)
  # A container's memory limit (cgroup v2, else v1) is what jobs can really use.
  for file in /sys/fs/cgroup/memory.max /sys/fs/cgroup/memory/memory.limit_in_bytes; do
    limit=$(cat "$file" 2>/dev/null || true)
    if [[ $limit =~ ^[0-9]+$ ]] && [ $((limit / 1048576)) -lt "$mb" ]; then
      mb=$((limit / 1048576))
    fi
  done
  # Keep 5% (at least 256 MB) spare: declaring more than slurmd finds drains the node.
  local spare=$((mb / 20 > 256 ? mb / 20 : 256))
  echo $((mb - spare > 256 ? mb - spare : 256))
}

render_conf() {
  cat <<EOF
# Written by binder/slurm_user_cluster.sh; edits are overwritten.
ClusterName=usercluster
SlurmctldHost=$host(127.0.0.1)
SlurmUser=$user
SlurmdUser=$user
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
AuthType=auth/munge
AuthInfo=socket=$socket
StateSaveLocation=$dir/spool/slurmctld
SlurmdSpoolDir=$dir/spool/slurmd
SlurmctldPidFile=$dir/run/slurmctld.pid
SlurmdPidFile=$dir/run/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
MailProg=/bin/true
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SlurmdParameters=config_overrides
ReturnToService=2
SlurmdTimeout=30
InactiveLimit=0
MinJobAge=300
SchedulerParameters=batch_sched_delay=0
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherParams=OverMemoryKill
JobAcctGatherFrequency=1
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$(real_memory) State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP DefMemPerCPU=$mem_per_cpu
EOF
}

start_munge() {
  if alive munged; then
    return
  fi
  if [ ! -s "$dir/etc/munge.key" ]; then # a new key per cluster, never one baked in an image
    if command -v mungekey >/dev/null; then
      mungekey --create --keyfile="$dir/etc/munge.key"
    else # munge before 0.5.14
      dd if=/dev/urandom of="$dir/etc/munge.key" bs=1024 count=1 status=none
    fi
  fi
  chmod 600 "$dir/etc/munge.key"
  munged --socket="$socket" --key-file="$dir/etc/munge.key" --pid-file="$dir/run/munged.pid" \
    --log-file="$dir/log/munged.log" --seed-file="$dir/run/munged.seed"
  munge --socket="$socket" -n | unmunge --socket="$socket" >/dev/null
}

wait_idle() {
  local state=""
  for _ in $(seq 1 150); do
    state=$(sinfo --noheader -o %t 2>/dev/null | head -n1 || true)
    # a node can start jobs (as slurm_magics.core.states.node_accepts_jobs says): not
    # unreachable, powered off, powering, rebooting or under maintenance; idle/mix/alloc/comp/plnd
    case $state in
      *[*~#%^\$]) ;;
      idle* | mix* | alloc* | comp* | plnd*) return 0 ;;
    esac
    sleep 0.2
  done
  say "the node did not come up (sinfo: '${state:-no answer}'); last log lines:"
  tail -n 20 "$dir/log/slurmctld.log" "$dir/log/slurmd.log" >&2 || true
  return 1
}

start() {
  umask 077
  mkdir -p "$dir"/{etc,run,log,spool/slurmctld,spool/slurmd}
  # munged wants its socket's folder (and the folders above it) searchable by all.
  chmod 755 "$dir" "$dir/run"
  start_munge
  render_conf >"$conf.new"
  chmod 644 "$conf.new"
  if alive slurmctld && alive slurmd && cmp -s "$conf.new" "$conf"; then
    rm -f "$conf.new"
  else
    mv "$conf.new" "$conf"
    stop_slurm
    slurmctld -f "$conf"
    slurmd -f "$conf"
  fi
  wait_idle
  say "up: $(sinfo --noheader -o '%P %D %t %c' | tr '\n' ' ')"
  echo "export SLURM_CONF=$conf"
}

stop_slurm() {
  local name pid i
  if alive slurmctld; then
    scontrol shutdown >/dev/null 2>&1 || true
  fi
  for name in slurmd slurmctld; do
    pid=$(cat "$dir/run/$name.pid" 2>/dev/null) || continue
    for i in $(seq 1 50); do
      kill -0 "$pid" 2>/dev/null || break
      [ "$i" = 25 ] && kill "$pid" 2>/dev/null
      sleep 0.2
    done
    rm -f "$dir/run/$name.pid"
  done
}

stop() {
  stop_slurm
  if alive munged; then
    munged --stop --socket="$socket" >/dev/null 2>&1 || kill "$(cat "$dir/run/munged.pid")"
  fi
  say "stopped"
}

status() {
  local name code=0
  for name in munged slurmctld slurmd; do
    if alive "$name"; then
      echo "$name: running (pid $(cat "$dir/run/$name.pid"))"
    else
      echo "$name: not running"
      code=1
    fi
  done
  [ "$code" = 0 ] && sinfo
  return "$code"
}

case ${1:-} in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *)
    echo "usage: $0 start|stop|status" >&2
    exit 2
    ;;
esac
