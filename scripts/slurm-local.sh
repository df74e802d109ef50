#!/usr/bin/env bash
# A single-node Slurm on this machine, for kidbench's Slurm tests and for trying
# `kidbench sweep --emit slurm` without a cluster (docs/SCALING.md).
#
#   scripts/slurm-local.sh start    install what is missing (apt-get, as root), write the
#                                   configuration and a munge key, start munged, slurmctld and
#                                   slurmd, wait until the node is idle
#   scripts/slurm-local.sh stop     stop the daemons this script started (by their pid files)
#   scripts/slurm-local.sh status   say what runs, and the node's state
#   scripts/slurm-local.sh env      print the line that points Slurm's commands here:
#                                   eval "$(scripts/slurm-local.sh env)"
#
# Everything lives under $KIDBENCH_SLURM_DIR (default /tmp/kidbench-slurm): the configuration,
# the munge key and socket, spool and state folders, logs and pid files. Nothing is written to
# /etc, and a Slurm or munge that something else started is left alone.
set -euo pipefail

STATE="${KIDBENCH_SLURM_DIR:-/tmp/kidbench-slurm}"
CONF="$STATE/slurm.conf"
SOCKET="$STATE/munge/munge.socket"
HOST="$(hostname -s)"

say() { echo "slurm-local: $*" >&2; }
die() {
    say "$*"
    exit 1
}

alive() { [[ -f "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

install_missing() {
    local missing=()
    command -v munged >/dev/null || missing+=(munge)
    for b in slurmctld slurmd sbatch; do
        command -v "$b" >/dev/null || {
            missing+=(slurm-wlm)
            break
        }
    done
    [[ ${#missing[@]} -eq 0 ]] && return 0
    [[ $(id -u) -eq 0 ]] || die "Slurm is not installed (${missing[*]} missing) and installing it needs root: run 'apt-get install slurm-wlm munge' as root"
    command -v apt-get >/dev/null || die "Slurm is not installed (${missing[*]} missing) and this machine has no apt-get: install Slurm 22.05+ and munge"
    say "installing ${missing[*]} with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y -q "${missing[@]}" >"$STATE/apt.log" 2>&1; then
        apt-get update -q >>"$STATE/apt.log" 2>&1 || true
        apt-get install -y -q "${missing[@]}" >>"$STATE/apt.log" 2>&1 ||
            die "apt-get install ${missing[*]} failed (log: $STATE/apt.log): $(tail -n 3 "$STATE/apt.log")"
    fi
}

write_config() {
    local cpus mem_mb
    cpus="$(nproc)"
    mem_mb="$(awk '/MemTotal/ { printf "%d", $2 / 1024 * 0.8 }' /proc/meminfo)"
    mkdir -p "$STATE"/{munge,ctld,spool,log,run}
    chmod 700 "$STATE/munge"
    cat >"$CONF" <<EOF
# Written by kidbench scripts/slurm-local.sh: a one-node Slurm for tests.
ClusterName=kidbench
SlurmctldHost=$HOST
SlurmUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$SOCKET
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/spool
SlurmctldPidFile=$STATE/run/slurmctld.pid
SlurmdPidFile=$STATE/run/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
SlurmctldPort=6817
SlurmdPort=6818
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
MinJobAge=300
KillWait=30
MaxArraySize=10001
NodeName=$HOST CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=local Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
EOF
}

start() {
    mkdir -p "$STATE"
    install_missing
    write_config
    export SLURM_CONF="$CONF"
    if ! alive "$STATE/run/munged.pid"; then
        [[ -f "$STATE/munge/munge.key" ]] ||
            dd if=/dev/urandom of="$STATE/munge/munge.key" bs=1024 count=1 status=none
        chmod 400 "$STATE/munge/munge.key"
        munged --force --key-file="$STATE/munge/munge.key" --socket="$SOCKET" \
            --pid-file="$STATE/run/munged.pid" --log-file="$STATE/log/munged.log" \
            --seed-file="$STATE/munge/munged.seed" ||
            die "munged did not start (log: $STATE/log/munged.log)"
    fi
    if ! alive "$STATE/run/slurmctld.pid"; then
        slurmctld -f "$CONF" || die "slurmctld did not start (log: $STATE/log/slurmctld.log)"
    fi
    if ! alive "$STATE/run/slurmd.pid"; then
        slurmd -f "$CONF" || die "slurmd did not start (log: $STATE/log/slurmd.log)"
    fi
    local state=""
    for _ in $(seq 1 60); do
        state="$(sinfo -h -n "$HOST" -o %T 2>/dev/null | head -n 1 || true)"
        case "$state" in
        idle | mixed | allocated) break ;;
        down* | drain*) scontrol update nodename="$HOST" state=resume >/dev/null 2>&1 || true ;;
        esac
        sleep 1
    done
    case "$state" in
    idle | mixed | allocated) say "node $HOST is $state ($(nproc) CPUs); export SLURM_CONF=$CONF" ;;
    *) die "node $HOST is '${state:-unknown}' after 60 s (logs: $STATE/log/)" ;;
    esac
}

stop() {
    local name pidf
    for name in slurmd slurmctld munged; do
        pidf="$STATE/run/$name.pid"
        if alive "$pidf"; then
            kill "$(cat "$pidf")"
            for _ in $(seq 1 50); do
                alive "$pidf" || break
                sleep 0.1
            done
            say "stopped $name"
        fi
        rm -f "$pidf"
    done
}

status() {
    local name rc=0
    for name in munged slurmctld slurmd; do
        if alive "$STATE/run/$name.pid"; then
            say "$name runs (pid $(cat "$STATE/run/$name.pid"))"
        else
            say "$name does not run"
            rc=1
        fi
    done
    if [[ $rc -eq 0 ]]; then
        SLURM_CONF="$CONF" sinfo -N -o "%N %T %C" >&2
    fi
    return $rc
}

case "${1:-}" in
start) start ;;
stop) stop ;;
status) status ;;
env) echo "export SLURM_CONF=$CONF" ;;
*) die "usage: $0 start|stop|status|env" ;;
esac
