#!/usr/bin/env bash
# Runs a command on a slower machine made on purpose: the command, its children and the local
# nats-server share <cores> of CPU (a cgroup v1 `cpu` quota, 10 ms periods), as this shared machine
# is at its slow hours. For benchmarks only; needs root and /sys/fs/cgroup/cpu. nats-server is moved
# back to the root group when the command ends. BENCHMARKS.md, 2026-12-07, afternoon.
#
#   bench/slow-machine.sh 1.4 env BENCH_JOURNEYS=0 BENCH_PACED_RATE=7500 npm run bench:ingest
set -euo pipefail
cores=$1
shift
root=/sys/fs/cgroup/cpu
group=$root/memberflow-slow
[ -w "$root/cgroup.procs" ] || { echo "needs root and the cgroup v1 cpu controller at $root" >&2; exit 2; }
nats=$(pgrep -x nats-server | head -1) || { echo "no nats-server running" >&2; exit 2; }
mkdir -p "$group"
echo 10000 > "$group/cpu.cfs_period_us"
awk -v c="$cores" 'BEGIN { printf "%d\n", c * 10000 }' > "$group/cpu.cfs_quota_us"
restore() {
  echo "$nats" > "$root/cgroup.procs" 2>/dev/null || true
  for pid in $(cat "$group/cgroup.procs"); do echo "$pid" > "$root/cgroup.procs" 2>/dev/null || true; done
}
trap restore EXIT
echo "$nats" > "$group/cgroup.procs"
( echo "$BASHPID" > "$group/cgroup.procs"; exec "$@" )
