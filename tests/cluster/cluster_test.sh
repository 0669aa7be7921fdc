#!/usr/bin/env bash
# Multi-node for real, on one machine: a 4-node Slurm cluster in network namespaces
# (slurm/netns-cluster.sh; private subnet, names and port; torn down on any exit), then
#   train   slurm/train.sbatch at EP=4 on 4 nodes x 1 rank and at EP=4 x DP=2 on 4 nodes x 2
#           ranks: every rank on its own hostname, the losses equal to a single-host mpirun run
#           of the same layout within the invariance tolerance (tests/mpi/invariance_test.cpp)
#   sweep   `moe sweep --run slurm --wait`: one job array spread over the nodes, one report
#   faults  EP=4 on 4 nodes, then (c) loss and delay on one node's link: the run finishes;
#           (a) every process of one node SIGKILLed; (b) one node's link down: every rank gone
#           within 60 s, non-zero exit, a line naming the rank or node, the last checkpoint
#           loadable (`moe eval`); then (b)'s run resumed on 2 nodes at EP=2. A table is printed.
#   requeue runs longer than their Slurm time limit (slurm/train.sbatch, and a sweep's array
#           task): warned by SIGUSR1, they stop with a checkpoint, requeue and finish across
#           allocations with the losses and final checkpoint bytes of an uninterrupted run;
#           scancel stops a run with a checkpoint and no requeue
#   cluster_test.sh <moe binary> <source dir> [all|train|sweep|faults|requeue]   (ctest label "cluster")
# Exit 77 (ctest: skipped) only when this environment cannot create network namespaces (not root,
# or namespaces forbidden); a missing package fails.
set -euo pipefail
src=$(realpath "$2")
parts=${3:-all}
SECONDS=0

# Skipped only where network namespaces cannot be made; a missing package is a failure, since
# CI runs as root on a machine where scripts/install-deps.sh has installed them.
skip() { echo "SKIP: $*"; exit 77; }
[ "$(id -u)" = 0 ] || skip "creating network namespaces (and running slurmd) needs root"
unshare --net --uts --mount true 2>/dev/null || skip "this environment cannot create network namespaces"
for t in ip tc unshare nsenter /usr/sbin/munged /usr/sbin/slurmctld /usr/sbin/slurmd sbatch srun sinfo mpirun; do
  command -v "$t" >/dev/null || { echo "FAIL: $t is not installed (scripts/install-deps.sh)"; exit 1; }
done
[ -e /usr/lib/x86_64-linux-gnu/pmix2/lib/libpmix.so ] || { echo "FAIL: srun --mpi=pmix needs libpmix-dev"; exit 1; }

# Not under /tmp: every node has its own /tmp, and this directory must be shared by all. The
# binary goes there too: the build may lie under /tmp (a checkout there), which the nodes do not
# see. It links nothing from the build tree.
work=$(mktemp -d /var/tmp/moe-cluster-test.XXXXXX)
chmod 0755 "$work"
mkdir -p "$work/bin"
cp "$(realpath "$1")" "$work/bin/moe"
moe=$work/bin/moe
# Jobs start in the directory sbatch is called from: one that every node sees.
cd "$work"
export MOE_CLUSTER_DIR=$work/cluster MOE_CLUSTER_NAME=mc$((RANDOM % 100000))
for _ in $(seq 1 20); do  # a free /24 and a free port pair
  MOE_CLUSTER_NET=10.213.$((RANDOM % 200 + 20))
  ip -o -4 addr show | grep -q " $MOE_CLUSTER_NET\." || break
done
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for _ in $(seq 1 50); do
  MOE_CLUSTER_PORT=$((20000 + RANDOM % 30000))
  port_free "$MOE_CLUSTER_PORT" && port_free "$((MOE_CLUSTER_PORT + 1))" && break
done
export MOE_CLUSTER_NET MOE_CLUSTER_PORT
cluster=$src/slurm/netns-cluster.sh

finish() {
  local rc=$?
  if [ "$rc" -ne 0 ] && [ "$rc" -ne 77 ]; then
    echo "--- FAILED (exit $rc); cluster logs:"
    tail -n 8 "$MOE_CLUSTER_DIR"/log/*.log 2>/dev/null || true
  fi
  [ -z "${MOE_CLUSTER_TEST_KEEP:-}" ] || { mkdir -p "$MOE_CLUSTER_TEST_KEEP"; cp "$work"/*.err "$work"/*.out "$work"/*.md "$MOE_CLUSTER_TEST_KEEP"/ 2>/dev/null || true; }
  # Leftover ranks of a failed case: only this binary's processes on this test's directory.
  for p in $(pgrep -f -- "^$moe .*$work/" || true); do kill -9 "$p" 2>/dev/null || true; done
  bash "$cluster" stop || true
  rm -rf "$work"
  exit "$rc"
}
trap finish EXIT
trap 'exit 130' INT TERM
fail() { echo "FAIL: $*"; exit 1; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

bash "$cluster" start
eval "$(bash "$cluster" env)"
source "$src/scripts/env.sh"
export OMPI_MCA_btl=self,vader,tcp  # TCP between nodes, over the cluster subnet (env above)

# The per-step losses of a run directory, one per line.
losses() { sed -n 's/^{"step":[0-9]*,"loss":\([^,]*\),.*/\1/p' "$1/metrics.jsonl"; }
max_rel_diff() {
  paste <(losses "$1") <(losses "$2") |
    awk 'NF == 2 { d = $1 - $2; if (d < 0) d = -d; s = ($1 < 0 ? -$1 : $1) + ($2 < 0 ? -$2 : $2);
                   r = s > 0 ? d / s : 0; if (r > m) m = r; n++ }
         END { if (n == 0) { print "none"; exit } printf "%.2e\n", m }'
}

base=$work/base.toml
cp "$src/tests/inputs/base.toml" "$base"

# Debian's Open MPI 4.1.4 under srun --mpi=pmix: now and then a rank segfaults in mca_btl_tcp.so
# inside MPI_Init, before `moe` has run a line (docs/cluster.md, "A segfault at start"). Such a
# launch is retried, twice at most, and counted; any other failure fails the test.
init_crashes=0
init_crash() {  # output files of a failed launch: 0 if it died in MPI_Init with that segfault
  cat "$@" 2>/dev/null | grep -q "Segmentation fault" && ! cat "$@" 2>/dev/null | grep -q "^moe train: " || return 1
  init_crashes=$((init_crashes + 1))
  echo "note: a rank segfaulted inside MPI_Init (Open MPI TCP start-up race); retrying"
}

# ---------------------------------------------------------------------------------------------
if [ "$parts" = all ] || [ "$parts" = train ]; then
  echo "=== train: slurm/train.sbatch across nodes against single-host mpirun"
  # MOE_BIN for train.sbatch: records which host each rank runs on, then becomes moe.
  cat >"$work/moe-on-host" <<EOF
#!/bin/bash
echo "rank \$SLURM_PROCID on \$(hostname)" >>"\$MOE_HOSTS_FILE"
exec "$moe" "\$@"
EOF
  chmod +x "$work/moe-on-host"
  for layout in "4 1 4" "4 2 4"; do  # nodes, ranks per node, ep
    read -r nodes per ep <<<"$layout"
    P=$((nodes * per)) name=n${nodes}x${per}_ep$ep
    args="--set parallel.ep=$ep --set train.steps=6 --set train.batch=8"
    timeout 120 mpirun -np "$P" "$moe" train --config "$base" $args --set "run.dir=$work/ref_$name" \
      >"$work/ref_$name.out" 2>&1 || { cat "$work/ref_$name.out"; fail "single-host mpirun $name"; }
    for attempt in 1 2 3; do
      rm -rf "$work/run_$name" "$work/hosts_$name"
      MOE_HOSTS_FILE=$work/hosts_$name MOE_CONFIG=$base MOE_BIN=$work/moe-on-host \
        MOE_ARGS="$args --set run.dir=$work/run_$name" \
        timeout 120 sbatch --wait --nodes="$nodes" --ntasks-per-node="$per" --gpus-per-node=0 --cpus-per-task=1 \
        --time=5 --output="$work/$name.out" "$src/slurm/train.sbatch" >/dev/null && break
      [ "$attempt" -lt 3 ] && init_crash "$work/$name.out" && continue
      cat "$work/$name.out"
      fail "sbatch slurm/train.sbatch $name"
    done
    grep -q "moe train: $P rank(s), ep=$ep" "$work/$name.out" || fail "$name: $(cat "$work/$name.out")"
    hosts=$(awk '{print $4}' "$work/hosts_$name" | sort -u | tr '\n' ' ')
    [ "$(awk '{print $4}' "$work/hosts_$name" | sort -u | wc -l)" -eq "$nodes" ] || fail "$name: ranks on hosts: $hosts"
    for n in $(seq 1 "$nodes"); do
      [ "$(grep -c " on node$n\$" "$work/hosts_$name")" -eq "$per" ] || fail "$name: not $per rank(s) on node$n"
    done
    diff=$(max_rel_diff "$work/ref_$name" "$work/run_$name")
    [ "$(losses "$work/run_$name" | wc -l)" -eq 6 ] || fail "$name: expected 6 steps"
    echo "$name: $P ranks on $hosts; max relative loss difference to single-host mpirun: $diff"
    awk -v d="$diff" 'BEGIN { exit !(d < 1e-5) }' || fail "$name: losses differ by $diff (tolerance 1e-5)"
  done
fi

# ---------------------------------------------------------------------------------------------
if [ "$parts" = all ] || [ "$parts" = sweep ]; then
  echo "=== sweep: moe sweep --run slurm --wait, one job array over the nodes"
  cat "$src/tests/fixtures/tiny_moe.toml" - >"$work/sweep_base.toml" <<'TOML'
[optim]
warmup = 1
[train]
batch = 4
log_every = 1
TOML
  cat >"$work/spec.toml" <<TOML
base = "sweep_base.toml"
regime = "III"
scales = [1, 2]
presets = ["mssp"]
seeds = [7]
tokens = 192         # 3 steps of batch 4 x seq_len 16
ranks = 1
out = "$work/sweep"
keep_checkpoints = false
[lr]
values = [1e-3, 1e-2]
[slurm]
launcher = "srun"
time = "00:05:00"
TOML
  timeout 120 "$moe" sweep --spec "$work/spec.toml" --run slurm --wait >"$work/sweep.txt" 2>&1 ||
    { cat "$work/sweep.txt"; fail "moe sweep --run slurm --wait"; }
  grep -q "runs: 4 (4 finished, 0 failed, 0 pending" "$work/sweep/summary.txt" || fail "sweep: $(cat "$work/sweep/summary.txt")"
  [ "$(grep -c ',finished,3,3,' "$work/sweep/report.csv")" -eq 4 ] || fail "report.csv: $(cat "$work/sweep/report.csv")"
  spread=$(cat "$work"/sweep/slurm/*.out | sed -n 's/^task [0-9]* on \(node[0-9]*\)[ :].*/\1/p' | sort -u | tr '\n' ' ')
  echo "sweep: 4 runs finished, array tasks ran on: $spread"
  [ "$(wc -w <<<"$spread")" -ge 2 ] || fail "the array tasks did not spread over the nodes: $spread"
fi

# ---------------------------------------------------------------------------------------------
if [ "$parts" = all ] || [ "$parts" = faults ]; then
  echo "=== faults: EP=4 on 4 nodes (1 rank each), checkpoint every 5 steps, parallel.timeout_s = 10"
  table=$work/fault_table.md
  echo "| fault | every rank gone after | exit | line printed | checkpoint | resume |" >"$table"
  echo "|---|---|---|---|---|---|" >>"$table"
  ranks_of() { pgrep -f -- "^$moe train .*run.dir=$1( |\$)" || true; }
  all_gone() {  # pids...: none alive (zombies count as gone)
    local p
    for p in "$@"; do
      [ -d "/proc/$p" ] && [ "$(awk '{print $3}' "/proc/$p/stat" 2>/dev/null)" != Z ] && return 1
    done
    return 0
  }
  # start_run <name> <steps>: srun in the background; returns once a checkpoint exists.
  start_run() {
    local attempt
    for attempt in 1 2 3; do
      start_run_once "$@" && return 0
      [ "$attempt" -lt 3 ] && init_crash "$work/$1.err" "$work/$1.out" && continue
      cat "$work/$1.err"
      fail "$1: no checkpoint within 60 s"
    done
  }
  start_run_once() {
    run=$work/run_$1
    rm -rf "$run"
    timeout 170 srun --mpi=pmix -N4 --ntasks-per-node=1 --kill-on-bad-exit=1 "$moe" train --config "$base" \
      --set parallel.ep=4 --set train.steps="$2" --set train.log_every=5 --set checkpoint.every=5 \
      --set parallel.timeout_s=10 --set "run.dir=$run" >"$work/$1.out" 2>"$work/$1.err" &
    srun_pid=$!
    for _ in $(seq 1 600); do
      [ -e "$run/checkpoints/latest" ] && [ "$(ranks_of "$run" | wc -l)" -eq 4 ] && return 0
      kill -0 "$srun_pid" 2>/dev/null || break
      sleep 0.1
    done
    wait "$srun_pid" 2>/dev/null || true
    return 1
  }
  # fault_case <name> <description> <inject command...>: inject, time until every rank is gone.
  fault_case() {
    local name=$1 what=$2; shift 2
    start_run "$name" 100000000
    local pids t0 rc=0 took line ck
    pids=$(ranks_of "$run")
    t0=$(now)
    "$@"
    for _ in $(seq 1 900); do all_gone $pids && break; sleep 0.1; done
    took=$(since "$t0")
    all_gone $pids || fail "$name: ranks still alive after 90 s"
    timeout 60 tail --pid="$srun_pid" -f /dev/null || fail "$name: srun still running 60 s after the ranks"
    wait "$srun_pid" || rc=$?
    # The line that names the fault: the watchdog's, else srun's or Open MPI's.
    line=$(grep -m1 "moe: error" "$work/$name.err" || grep -m1 -E "srun: error: node[0-9]|Peer host|task [0-9]" "$work/$name.err" || true)
    line=$(tr '|' '/' <<<"$line")
    echo "$name: every rank gone after $took s, srun exit $rc: $line"
    [ "$rc" -ne 0 ] || fail "$name: srun exited 0"
    awk -v t="$took" 'BEGIN { exit !(t < 60) }' || fail "$name: took $took s (limit 60)"
    grep -qE "$expect" "$work/$name.err" || fail "$name: no line naming the fault (\"$expect\"): $(cat "$work/$name.err")"
    timeout 60 "$moe" eval --checkpoint "$run" --batches 2 >"$work/$name.eval" 2>&1 ||
      fail "$name: the last checkpoint does not load: $(cat "$work/$name.eval")"
    ck=$(basename "$(readlink -f "$run/checkpoints/latest")")
    echo "| $what | $took s | $rc | \`$line\` | $ck loads | ${resume:--} |" >>"$table"
  }

  # (c) first: loss and delay on node3's link that stay up; 30 steps must finish (or the watchdog
  # must stop it with its line), never hang. 2% loss, and a 20 Mbit/s limit whose queue delays
  # packets (without the netem qdisc a fixed delay is not available: slurm/netns-cluster.sh).
  impairment="loss 2 rate 20mbit"
  bash "$cluster" impair 3 $impairment
  start_run lossy 30
  t0=$(now) rc=0
  timeout 150 tail --pid="$srun_pid" -f /dev/null || fail "lossy: still running after 150 s (a hang)"
  wait "$srun_pid" || rc=$?
  dropped=$(tc -s filter show dev "$MOE_CLUSTER_NAME-h3" egress 2>/dev/null | sed -n 's/^[[:space:]]*Sent [0-9]* bytes \([0-9]*\) pkt.*/\1/p' | head -n1)
  bash "$cluster" impair 3 off
  took=$(since "$t0")
  if [ "$rc" -eq 0 ]; then
    grep -q '^{"step":30,' "$run/metrics.jsonl" || fail "lossy: exit 0 without step 30"
    line="finished 30 steps"
  else
    grep -q "parallel.timeout_s" "$work/lossy.err" || fail "lossy: exit $rc without the watchdog's line: $(cat "$work/lossy.err")"
    line=$(grep -m1 "moe: error" "$work/lossy.err")
  fi
  echo "lossy: exit $rc, $took s after the first checkpoint: $line (${dropped:-?} packets to node3 dropped)"
  echo "| (c) node3 link: $impairment (${dropped:-?} packets to node3 dropped), stays up | - (ran to the end, $took s after step 5) | $rc | $line | $(basename "$(readlink -f "$run/checkpoints/latest")") | - |" >>"$table"

  expect="node3|rank 2"
  fault_case kill "(a) node3: every process SIGKILLed (slurmd, slurmstepd, rank 2)" bash "$cluster" kill-node 3
  bash "$cluster" restart-node 3
  fault_case linkdown "(b) node3: link down during training" bash "$cluster" link 3 down
  bash "$cluster" link 3 up

  echo "=== resume (b)'s run on 2 nodes at EP=2 (resharded from EP=4)"
  step=$(basename "$(readlink -f "$work/run_linkdown/checkpoints/latest")" | sed 's/step_0*//')
  target=$((step + 5))
  for attempt in 1 2 3; do
    timeout 120 srun --mpi=pmix -N2 -w node1,node2 --ntasks-per-node=1 --kill-on-bad-exit=1 "$moe" train \
      --config "$base" --set parallel.ep=2 --set train.steps=$target --set train.log_every=5 --set checkpoint.every=5 \
      --set "run.dir=$work/run_linkdown" --resume "$work/run_linkdown" --allow-change train.steps \
      >"$work/resume.out" 2>&1 && break
    [ "$attempt" -lt 3 ] && init_crash "$work/resume.out" && continue
    cat "$work/resume.out"
    fail "resume on 2 nodes at EP=2"
  done
  grep -q "^{\"step\":$target," "$work/run_linkdown/metrics.jsonl" || fail "resume: no step $target"
  echo "resume: from step $step on node1,node2 at EP=2, continued to step $target, exit 0"
  sed -i "\$s/| - |\$/| from step $step on 2 nodes at EP=2: continued to step $target, exit 0 |/" "$table"
  echo
  cat "$table"
  [ -z "${MOE_FAULT_TABLE:-}" ] || cp "$table" "$MOE_FAULT_TABLE"
fi

# ---------------------------------------------------------------------------------------------
if [ "$parts" = all ] || [ "$parts" = requeue ]; then
  source "$src/tests/cluster/requeue_part.sh"
fi

echo "PASS: cluster test ($parts) in $SECONDS s ($init_crashes launch(es) retried after a segfault in MPI_Init)"
