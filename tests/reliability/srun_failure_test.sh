#!/usr/bin/env bash
# Failure stops everyone under srun too, on a real one-node cluster on localhost
# (slurm/slurm-local.sh, private directory and port): 4 ranks of `moe train` started by
# `srun --mpi=pmix`, then
#   1. rank 2 SIGKILLed with --kill-on-bad-exit=1 (what slurm/*.sbatch pass): Slurm ends the step;
#   2. rank 2 SIGKILLed WITHOUT --kill-on-bad-exit: Slurm's PMIx plugin sees the rank die and
#      cancels the step all the same (with Slurm 22.05 and --mpi=pmix);
#   3. rank 2 throws (debug.fault): MPI_Abort ends the step;
#   4. rank 2 hangs (debug.fault), no rank dies: the watchdog (parallel.timeout_s = 5) of the
#      ranks waiting for it aborts the step.
# Each must leave no rank alive within 60 s, with a non-zero srun exit; the times are printed.
#   srun_failure_test.sh <moe binary> <source dir>     (ctest label "slurm"; exit 77 = skipped)
set -euo pipefail
moe=$(realpath "$1")
src=$(realpath "$2")

source "$src/tests/slurm/local_cluster.sh" moe-srun-test
start_local_cluster_for_ranks

# The pids of this case's ranks (by run directory on the command line), and rank 2's.
ranks_of() { pgrep -f -- "run.dir=$1( |$)" || true; }
rank2_of() {
  for p in $(ranks_of "$1"); do
    tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx SLURM_PROCID=2 && echo "$p"
  done
}
now() { date +%s.%N; }

# case <name> <expect in stderr> <kill rank 2?> <srun options...> -- <moe train options...>
run_case() {
  local name=$1 expect=$2 kill=$3
  shift 3
  local srun_opts=() moe_opts=()
  while [ "$1" != -- ]; do srun_opts+=("$1"); shift; done
  shift
  moe_opts=("$@")
  local run=$work/run_$name case_start=$SECONDS
  srun --mpi=pmix -n 4 "${srun_opts[@]}" "$moe" train --config "$src/tests/inputs/base.toml" \
    --set parallel.ep=2 --set train.steps=100000000 --set train.log_every=1000 \
    "${moe_opts[@]}" --set "run.dir=$run" >"$work/$name.out" 2>"$work/$name.err" &
  local srun_pid=$! t0 pid="" ranks ready
  for _ in $(seq 1 600); do  # up to 60 s for the 4 ranks to start training
    pid=$(rank2_of "$run" || true)
    [ -s "$run/metrics.jsonl" ] && [ -n "$pid" ] && break
    kill -0 "$srun_pid" 2>/dev/null || break
    sleep 0.1
  done
  [ -n "$pid" ] || [ "$kill" = no ] || fail "$name: rank 2 did not start: $(cat "$work/$name.err")"
  ready=$((SECONDS - case_start))
  ranks=$(ranks_of "$run")
  if [ "$kill" = yes ]; then
    t0=$(now)
    kill -9 "$pid"
  else  # the fault fires at step 100: the clock starts when its line reaches srun's stderr
    # (on a loaded machine 100 steps of 4 oversubscribed ranks can take a minute: wait for the
    # line itself, or the time to reach the fault would be counted as time to stop)
    local fired=no
    for _ in $(seq 1 3600); do
      grep -q "injected" "$work/$name.err" && { fired=yes; break; }
      kill -0 "$srun_pid" 2>/dev/null || break
      sleep 0.05
    done
    [ "$fired" = yes ] || fail "$name: the fault did not fire within 180 s: $(cat "$work/$name.err")"
    t0=$(now)
  fi
  local rc=0
  timeout 90 tail --pid="$srun_pid" -f /dev/null || fail "$name: srun still running after 90 s"
  wait "$srun_pid" || rc=$?
  for p in $ranks; do
    while kill -0 "$p" 2>/dev/null && [ "$(awk '{print $3}' "/proc/$p/stat" 2>/dev/null)" != Z ]; do
      awk -v a="$t0" -v b="$(now)" 'BEGIN { exit !(b - a > 90) }' && fail "$name: rank pid $p alive after 90 s"
      sleep 0.05
    done
  done
  local took
  took=$(awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }')
  echo "srun, $name: every rank gone $took s after the failure (training after ${ready} s), srun exit $rc"
  [ "$rc" -ne 0 ] || fail "$name: srun exited 0"
  awk -v t="$took" 'BEGIN { exit !(t < 60) }' || fail "$name: took $took s (limit 60)"
  grep -q -- "$expect" "$work/$name.err" || fail "$name: stderr lacks \"$expect\": $(cat "$work/$name.err")"
}

run_case kill_on_bad_exit "task 2: Killed" yes --kill-on-bad-exit=1 --
run_case kill_default "task 2: Killed" yes --kill-on-bad-exit=0 --
run_case throw "\[rank 2\] injected fault" no --kill-on-bad-exit=1 -- \
  --set debug.fault=throw --set debug.fault_rank=2 --set debug.fault_step=100
run_case hang "did not complete within 5 s" no --kill-on-bad-exit=1 -- \
  --set debug.fault=hang --set debug.fault_rank=2 --set debug.fault_step=100 --set parallel.timeout_s=5
echo "PASS"
