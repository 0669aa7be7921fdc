#!/usr/bin/env bash
# Signals under srun, on a real one-node cluster on localhost (slurm/slurm-local.sh): 2 ranks of
# `moe train` started by `srun --mpi=pmix`, signalled once 20 steps are logged, as Slurm and its
# users signal them:
#   scancel --signal=TERM  Slurm's SIGTERM to every rank (a time limit, a preemption, scancel)
#   scancel --signal=USR1  the early warning of `#SBATCH --signal=USR1@s` (without B:)
#   kill -USR1 <srun>      srun passes SIGUSR1 to the ranks
#   kill -INT <srun>       srun only prints the step's state (a second one within 1 s aborts)
#   kill -TERM <srun>      srun kills the ranks at once: no checkpoint (documented)
# Where the ranks are reached, they stop with a checkpoint (exit 5), and `--resume auto`
# continues to the losses and final checkpoint bytes of an uninterrupted run. A table is
# printed: signal, srun's exit, seconds to exit, checkpoint step, continuation.
#   srun_signal_test.sh <moe binary> <source dir>     (ctest label "slurm"; exit 77 = skipped)
set -euo pipefail
moe=$(realpath "$1")
src=$(realpath "$2")

source "$src/tests/slurm/local_cluster.sh" moe-srun-signal
start_local_cluster_for_ranks
now() { date +%s.%N; }
steps_of() { cat "$1/metrics.jsonl" 2>/dev/null | grep -c '^{"step"' || true; }
losses() { sed -n 's/^{"step":\([0-9]*\),"loss":\([^,]*\),.*/\1 \2/p' "$1/metrics.jsonl"; }
sums() { grep "checksum = '" "$(readlink -f "$1/checkpoints/latest")/manifest.toml"; }
args=(--config "$src/tests/inputs/base.toml" --set parallel.ep=2 --set train.steps=300 --set train.log_every=1
  --set debug.step_delay_s=0.01)  # 10 ms a step: the signal lands mid-run on any machine

srun --mpi=pmix -n 2 "$moe" train "${args[@]}" --set "run.dir=$work/ref" >"$work/ref.out" 2>"$work/ref.err" ||
  fail "the uninterrupted run: $(cat "$work/ref.err")"
printf '%-24s %5s %8s %6s %s\n' signal exit seconds ckpt continuation
# case <name> <expected srun exit> <how to signal: scancel-TERM | scancel-USR1 | srun-USR1 | srun-INT | srun-TERM>
run_case() {
  local name=$1 expect=$2 how=$3 run=$work/run_$1
  srun --mpi=pmix -n 2 "$moe" train "${args[@]}" --set "run.dir=$run" >"$work/$name.out" 2>"$work/$name.err" &
  local srun_pid=$! rc=0 t0 took step="-" cont="-"
  for _ in $(seq 1 600); do [ "$(steps_of "$run")" -ge 20 ] && break; sleep 0.05; done
  [ "$(steps_of "$run")" -ge 20 ] || fail "$name: the run did not start: $(cat "$work/$name.err")"
  local job
  job=$(squeue -h -o "%i %j" | awk '$2 == "moe" {print $1}' | head -n1)
  t0=$(now)
  case "$how" in
    scancel-*) scancel --signal="${how#scancel-}" "$job" ;;
    srun-*) kill -s "${how#srun-}" "$srun_pid" ;;
  esac
  if [ "$how" = srun-INT ]; then  # srun prints the step's state; the run goes on to its end
    wait "$srun_pid" || rc=$?
    [ "$rc" = 0 ] && [ "$(steps_of "$run")" = 300 ] || fail "$name: srun exit $rc after $(steps_of "$run") steps"
    printf '%-24s %5s %8s %6s %s\n' "$name" "$rc" "-" "-" "not passed on: the run finished"
    return
  fi
  wait "$srun_pid" || rc=$?
  took=$(awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }')
  [ "$rc" = "$expect" ] || fail "$name: srun exit $rc, expected $expect: $(cat "$work/$name.err")"
  if [ "$expect" = 5 ]; then
    local line
    line=$(grep -m1 "moe: stopped by SIG" "$work/$name.err") || fail "$name: no stop line: $(cat "$work/$name.err")"
    step=$(sed -n 's/.* at step \([0-9]*\) of .*/\1/p' <<<"$line")
    srun --mpi=pmix -n 2 "$moe" train "${args[@]}" --set "run.dir=$run" --resume auto >"$work/$name.2.out" \
      2>"$work/$name.2.err" || fail "$name: resume: $(cat "$work/$name.2.err")"
    diff <(losses "$work/ref") <(losses "$run") >/dev/null || fail "$name: losses differ from the uninterrupted run"
    diff <(sums "$work/ref") <(sums "$run") >/dev/null || fail "$name: final checkpoints differ"
    cont="bit-exact (losses, final shards)"
  else
    [ ! -e "$run/checkpoints/latest" ] || fail "$name: a checkpoint appeared"
    cont="killed: no checkpoint (signal the job with scancel instead)"
  fi
  printf '%-24s %5s %8s %6s %s\n' "$name" "$rc" "$took" "$step" "$cont"
}
run_case "scancel --signal=TERM" 5 scancel-TERM
run_case "scancel --signal=USR1" 5 scancel-USR1
run_case "kill -USR1 srun" 5 srun-USR1
run_case "kill -INT srun" 0 srun-INT
run_case "kill -TERM srun" 137 srun-TERM
echo PASS
