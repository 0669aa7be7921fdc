# Sourced by the Slurm tests: skips (exit 77) unless this machine can start a one-node cluster
# on localhost, then sets work (a private scratch directory, prefix $1), SLURM_LOCAL_DIR,
# SLURM_LOCAL_PORT (a free port pair, so that this cluster never meets another one on the
# machine) and cluster (the start/stop script, slurm/slurm-local.sh). Needs $src.
for tool in /usr/sbin/munged /usr/sbin/slurmctld /usr/sbin/slurmd; do
  [ -x "$tool" ] || { echo "SKIP: $tool is not installed (scripts/install-deps.sh installs slurmctld slurmd slurm-client munge)"; exit 77; }
done
for tool in sbatch srun scontrol sinfo munge; do
  command -v "$tool" >/dev/null || { echo "SKIP: $tool is not installed (scripts/install-deps.sh)"; exit 77; }
done
[ "$(id -u)" = 0 ] || { echo "SKIP: starting slurmd needs root"; exit 77; }
[ -e /usr/lib/x86_64-linux-gnu/pmix2/lib/libpmix.so ] || { echo "SKIP: srun --mpi=pmix needs libpmix-dev"; exit 77; }

work=$(mktemp -d "/tmp/$1.XXXXXX")
chmod 0755 "$work"  # munged wants every directory above its socket world-executable
export SLURM_LOCAL_DIR=$work/cluster
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for _ in $(seq 1 50); do
  port=$((20000 + RANDOM % 30000))
  if port_free "$port" && port_free "$((port + 1))"; then break; fi
done
export SLURM_LOCAL_PORT=$port
# Job ids of their own (slurm/slurm-conf.sh): Slurm tests may run side by side.
export SLURM_FIRST_JOB_ID=$((port * 1000))
cluster=$src/slurm/slurm-local.sh

# For tests whose ranks run with a run directory under $work/run*: on any exit, kill what is
# left of them, stop the cluster and remove $work; then start the cluster and take its
# environment and Open MPI's (scripts/env.sh).
start_local_cluster_for_ranks() {
  finish() {
    rc=$?
    [ "$rc" -eq 0 ] || { echo "--- FAILED (exit $rc)"; tail -n 20 "$work"/*.err 2>/dev/null || true; }
    for p in $(pgrep -f "$work/run" || true); do kill -9 "$p" 2>/dev/null || true; done
    bash "$cluster" stop || true
    rm -rf "$work"
    exit "$rc"
  }
  trap finish EXIT
  trap 'exit 130' INT TERM
  bash "$cluster" start
  eval "$(bash "$cluster" env)"
  source "$src/scripts/env.sh"
}
fail() { echo "FAIL: $*"; exit 1; }
