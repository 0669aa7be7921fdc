#!/usr/bin/env bash
# The Slurm path end to end, on a real one-node cluster on localhost (slurm/slurm-local.sh):
# `moe sweep --run slurm --wait` submits a tiny sweep (2 scales x 2 lrs, mssp, 1 rank per run)
# as ONE job array and reports; a resubmission reruns only unfinished runs and records a
# failing one; slurm/train.sbatch runs one 2-rank job through `srun --mpi=pmix`.
# The daemons live under a private directory and port and are stopped by PID on any exit; each
# submission has a 120 s limit, far below ctest's, so that a stuck job still reaches the trap.
#   sweep_slurm_test.sh <moe binary> <source dir>      (ctest passes both; label "slurm")
# Exit 77 (ctest: skipped) when Slurm or munge is not installed, or when not root.
set -euo pipefail
moe=$(realpath "$1")
src=$(realpath "$2")

source "$src/tests/slurm/local_cluster.sh" moe-slurm-test

finish() {
  rc=$?
  if [ "$rc" -ne 0 ] && [ "$rc" -ne 77 ]; then
    echo "--- FAILED (exit $rc); cluster logs and job outputs:"
    tail -n 20 "$SLURM_LOCAL_DIR"/log/*.log 2>/dev/null || true
    find "$work" -name '*.out' -exec sh -c 'echo "--- $1"; tail -n 20 "$1"' _ {} \; 2>/dev/null || true
  fi
  bash "$cluster" stop || true
  rm -rf "$work"
  exit "$rc"
}
trap finish EXIT
trap 'exit 130' INT TERM

check() { "$@" || fail "$*"; }

t0=$SECONDS
bash "$cluster" start
eval "$(bash "$cluster" env)"
# Open MPI as root, oversubscribed (array tasks may run mpirun): what scripts/env.sh exports.
source "$src/scripts/env.sh"

cat "$src/tests/fixtures/tiny_moe.toml" - > "$work/base.toml" <<'TOML'
[optim]
warmup = 1
[train]
batch = 4
log_every = 1
[data]
branching = 4
TOML
cat > "$work/spec.toml" <<TOML
base = "base.toml"
regime = "III"
scales = [1, 2]
presets = ["mssp"]
seeds = [7]
tokens = 320         # 5 steps of batch 4 x seq_len 16
ranks = 1
out = "$work/sweep"
keep_checkpoints = false
[lr]
values = [1e-3, 1e-2]
[slurm]
launcher = "srun"
time = "00:05:00"
TOML

echo "=== 1. moe sweep --run slurm --wait: 4 runs as one job array"
if ! timeout 120 "$moe" sweep --spec "$work/spec.toml" --run slurm --wait > "$work/first.txt" 2>&1; then
  cat "$work/first.txt"
  fail "moe sweep --run slurm --wait"
fi
cat "$work/first.txt"
job=$(sed -n 's/^submitted job array \([0-9]*\);.*/\1/p' "$work/first.txt")
[ -n "$job" ] || fail "no job id printed"
check grep -q "tasks 0-3" "$work/first.txt"
mapfile -t runs < <(cut -f2 "$work/sweep/runs.txt")
[ "${#runs[@]}" -eq 4 ] || fail "runs.txt lists ${#runs[@]} runs, expected 4"
for r in "${runs[@]}"; do
  check test -f "$r/finished"
  check grep -q '^{"step":5,' "$r/metrics.jsonl"
  check test ! -d "$r/checkpoints"   # keep_checkpoints = false
  check grep -q "srun --mpi=pmix --ntasks=1" "$r/train.log"
done
for t in 0 1 2 3; do check test -s "$work/sweep/slurm/${job}_$t.out"; done
csv=$work/sweep/report.csv
[ "$(wc -l < "$csv")" -eq 5 ] || fail "report.csv: expected a header and 4 rows"
[ "$(grep -c ',mssp,.*,finished,5,5,' "$csv")" -eq 4 ] || fail "report.csv: not every run finished: $(cat "$csv")"
check grep -q "runs: 4 (4 finished, 0 failed, 0 pending" "$work/sweep/summary.txt"
check grep -q "drift of the optimal lr, scale 1 -> 2" "$work/sweep/summary.txt"
if /usr/bin/python3 -c 'import matplotlib' 2>/dev/null; then check test -s "$work/sweep/loss_vs_lr.png"; fi

echo "=== 2. resubmission: only unfinished runs go in the array; a failing run is recorded"
rm "${runs[1]}/metrics.jsonl"                # run 1 must run again
rm "${runs[3]}/metrics.jsonl"                # run 3 too, and it cannot write its metrics now:
mkdir -p "${runs[3]}/metrics.jsonl/blocked"  # a non-empty directory in the way
set +e
timeout 120 "$moe" sweep --spec "$work/spec.toml" --run slurm --wait > "$work/second.txt" 2>&1
rc=$?
set -e
cat "$work/second.txt"
[ "$rc" -eq 1 ] || fail "moe sweep should exit 1 when a run failed without diverging, got $rc"
check grep -q "tasks 1,3" "$work/second.txt"
check test -f "${runs[1]}/finished"
check grep -q '^{"step":5,' "${runs[1]}/metrics.jsonl"
check test -f "${runs[3]}/failed"
check test ! -f "${runs[3]}/finished"
check grep -q ",failed,5,0,nan,nan,,nan,0," "$csv"
check grep -q "runs: 4 (3 finished, 1 failed, 0 pending" "$work/sweep/summary.txt"
rm -rf "${runs[3]}/metrics.jsonl"

echo "=== 3. the failed run is retried alone; then a finished sweep submits nothing"
check timeout 120 "$moe" sweep --spec "$work/spec.toml" --run slurm --wait --out "$work/sweep" > "$work/third.txt" 2>&1
check grep -q "submitting 1 run(s) as one job array (tasks 3)" "$work/third.txt"
check test -f "${runs[3]}/finished"
check timeout 120 "$moe" sweep --spec "$work/spec.toml" --run slurm --wait > "$work/fourth.txt" 2>&1
check grep -q "all 4 run(s) are finished: nothing to submit" "$work/fourth.txt"
check grep -q "runs: 4 (4 finished, 0 failed, 0 pending" "$work/sweep/summary.txt"

echo "=== 4. slurm/train.sbatch: one run on 2 ranks through srun --mpi=pmix"
if srun --mpi=list 2>&1 | grep -q pmix; then
  cat "$src/tests/fixtures/tiny_moe.toml" - > "$work/train.toml" <<TOML
[run]
dir = "$work/train_run"
[train]
steps = 4
batch = 4
log_every = 1
[parallel]
ep = 2
TOML
  # The template asks for 2 nodes x 4 GPUs; this one-node cluster has 8 CPUs and no GPUs.
  MOE_CONFIG=$work/train.toml MOE_BIN=$moe timeout 120 sbatch --wait --nodes=1 --ntasks-per-node=2 --gpus-per-node=0 \
    --cpus-per-task=1 --time=5 --output="$work/train-%j.out" "$src/slurm/train.sbatch" > /dev/null ||
    fail "sbatch --wait slurm/train.sbatch"
  cat "$work"/train-*.out
  check grep -q "2 rank(s)" "$work"/train-*.out
  check grep -q "moe train: 2 rank(s), ep=2" "$work"/train-*.out
  check grep -q '^{"step":4,' "$work/train_run/metrics.jsonl"
else
  echo "note: srun has no pmix plugin (libpmix-dev missing): part 4 not run"
fi

echo "PASS: Slurm sweep and batch job in $((SECONDS - t0)) s"
