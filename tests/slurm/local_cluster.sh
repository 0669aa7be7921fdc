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
cluster=$src/slurm/slurm-local.sh
