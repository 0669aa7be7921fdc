# The "requeue" part of tests/cluster/cluster_test.sh (sourced: uses its $moe, $src, $work,
# $base, fail and losses). Runs that last longer than their Slurm time limit:
#   train   slurm/train.sbatch, 2 nodes x 1 rank at EP=2: 100 steps paced to 0.5 s each
#           (debug.step_delay_s: 50 s of training whatever the machine's speed) under a 1-minute
#           limit with --signal=B:USR1@20. Slurm warns up to ~30 s earlier than asked, so each
#           allocation trains 10-40 s: the run needs two or more allocations.
#   sweep   `moe sweep --run slurm`: two array tasks of the same length and limit.
#   scancel a run stopped by scancel: checkpoint written, no requeue.
# Every requeued run must end with the step losses and final checkpoint bytes of the same run
# trained without interruption on the same layout.
echo "=== requeue: runs longer than their time limit finish across allocations"
shard_sums() { grep "checksum = '" "$(readlink -f "$1/checkpoints/latest")/manifest.toml"; }
same_run() {  # <reference run dir> <requeued run dir> <name>
  [ "$(losses "$1" | wc -l)" -eq 100 ] || fail "$3: the reference logged $(losses "$1" | wc -l) steps"
  [ "$(losses "$2" | wc -l)" -eq 100 ] || fail "$3: logged $(losses "$2" | wc -l) of 100 steps"
  diff <(losses "$1") <(losses "$2") >/dev/null || fail "$3: losses differ from the uninterrupted run"
  diff <(shard_sums "$1") <(shard_sums "$2") >/dev/null || fail "$3: final checkpoint bytes differ"
}
# Slurm makes a requeued job eligible 120 s later; the test brings that to 8 s. Not to 0: the
# ended allocation's step (same job and step id) still tears down Slurm's PMIx state on its nodes
# for a few seconds, and a new step with its id launched meanwhile fails to start.
nudge() {
  local id start
  while :; do
    while read -r id start; do
      [ -n "$id" ] && [ "$(date -d "$start" +%s 2>/dev/null || echo 0)" -gt $(($(date +%s) + 20)) ] &&
        scontrol update JobId="$id" StartTime=now+8 >/dev/null 2>&1
    done < <(squeue -h -t PD -o "%i %S" 2>/dev/null)
    sleep 2
  done
}
# A job (every task of an array) in a final state, or purged (MinJobAge). A requeued job passes
# through COMPLETING and REQUEUED on its way back to PENDING: none of them is final.
ended_once() {
  local out
  out=$(scontrol -o show job "$1" 2>&1)
  case "$out" in *"Invalid job id"*) return 0 ;; esac  # purged, MinJobAge after its end
  grep -q 'JobState=' <<<"$out" || return 1             # no answer (a busy slurmctld): not known
  ! grep -o 'JobState=[A-Z_]*' <<<"$out" |
    grep -qvE '=(COMPLETED|FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY|BOOT_FAIL|DEADLINE)$'
}
gone() { ended_once "$1" && sleep 1 && ended_once "$1"; }
rargs="--set parallel.ep=2 --set train.steps=100 --set train.batch=8 --set train.log_every=1"
sb=(--nodes=2 --ntasks-per-node=1 --gpus-per-node=0 --cpus-per-task=1)

# The reference first (fast: no pacing), on the same 2-node layout.
MOE_CONFIG=$base MOE_BIN=$moe MOE_ARGS="$rargs --set run.dir=$work/req_ref" \
  timeout 120 sbatch --wait "${sb[@]}" --time=5 --output="$work/req_ref.out" "$src/slurm/train.sbatch" >/dev/null ||
  { cat "$work/req_ref.out"; fail "requeue: the reference run"; }

cat "$src/tests/fixtures/tiny_moe.toml" - >"$work/req_sweep_base.toml" <<'TOML'
[train]
batch = 4
log_every = 1
[debug]
step_delay_s = 0.5
TOML
cat >"$work/req_spec.toml" <<TOML
base = "req_sweep_base.toml"
regime = "III"
scales = [1]
presets = ["mssp"]
seeds = [7]
tokens = 6400        # 100 steps of batch 4 x seq_len 16
ranks = 1
out = "$work/req_sweep"
[lr]
values = [1e-3, 1e-2]
[slurm]
launcher = "srun"
time = "00:01:00"
sbatch_args = ["--signal=B:USR1@20"]
TOML

nudge &
nudger=$!
job=$(MOE_CONFIG=$base MOE_BIN=$moe MOE_ARGS="$rargs --set debug.step_delay_s=0.5 --set run.dir=$work/req_run" \
  sbatch --parsable "${sb[@]}" --time=1 --signal=B:USR1@20 --output="$work/req_run.out" "$src/slurm/train.sbatch")
timeout 60 "$moe" sweep --spec "$work/req_spec.toml" --run slurm >"$work/req_sweep.txt" 2>&1 ||
  { cat "$work/req_sweep.txt"; fail "requeue: moe sweep --run slurm"; }
array=$(sed -n 's/^submitted job array \([0-9]*\);.*/\1/p' "$work/req_sweep.txt")
# Done: every step logged (every run finished) and the job in a final state. The step count is
# the test; the job's state alone passes through requeue states that are easy to misread.
train_done() { [ "$(losses "$work/req_run" 2>/dev/null | wc -l)" -eq 100 ] && gone "$job"; }
sweep_done() {
  local rdir
  while IFS=$'\t' read -r _ rdir; do [ -f "$rdir/finished" ] || return 1; done <"$work/req_sweep/runs.txt"
  gone "$array"
}
t0=$(now)
for _ in $(seq 1 300); do train_done && sweep_done && break; sleep 1; done
took=$(since "$t0")
kill "$nudger" 2>/dev/null
wait "$nudger" 2>/dev/null || true
train_done && sweep_done || { squeue; cat "$work/req_run.out"; fail "requeue: not done after 300 s"; }

allocs=$(grep -c "^job $job (allocation " "$work/req_run.out")
[ "$allocs" -ge 2 ] || { cat "$work/req_run.out"; fail "train: $allocs allocation(s); the limit should have cut it"; }
grep -q "requeued; the next allocation continues it" "$work/req_run.out" || fail "train: no requeue line"
grep -q "moe: stopped by SIGUSR1 at step " "$work/req_run.out" || fail "train: no stop line"
same_run "$work/req_ref" "$work/req_run" train
resumes=$(grep -c '^{"event":"resume"' "$work/req_run/metrics.jsonl")
echo "train: 100 steps over $allocs allocations of a 1-minute limit ($resumes resume(s), $took s in all):" \
  "losses and final checkpoint bytes equal to the uninterrupted run"
grep -o '^{"event":"resume","at_step":[0-9]*' "$work/req_run/metrics.jsonl" | sed 's/.*at_step":/  resumed at step /'

timeout 60 "$moe" sweep --spec "$work/req_spec.toml" --report >"$work/req_report.txt" 2>&1 ||
  { cat "$work/req_report.txt"; fail "requeue: sweep report"; }
grep -q "runs: 2 (2 finished, 0 failed, 0 pending" "$work/req_sweep/summary.txt" ||
  fail "sweep: $(cat "$work/req_sweep/summary.txt")"
while IFS=$'\t' read -r _ rdir; do
  [ -f "$rdir/finished" ] && [ ! -f "$rdir/interrupted" ] && [ ! -f "$rdir/failed" ] || fail "sweep: markers of $rdir: $(ls "$rdir")"
  n=$(grep -c "^# " "$rdir/train.log")
  [ "$n" -ge 2 ] || fail "sweep: $rdir ran in $n allocation(s); the limit should have cut it"
  timeout 60 "$moe" train --config "$rdir/run.toml" --set "run.dir=$rdir.ref" --set debug.step_delay_s=0 \
    >"$rdir.ref.out" 2>&1 || fail "sweep: reference of $rdir: $(tail -n 3 "$rdir.ref.out")"
  same_run "$rdir.ref" "$rdir" "sweep task $(basename "$rdir")"
  echo "sweep: $(basename "$rdir") finished over $n allocations, equal to its uninterrupted run"
done <"$work/req_sweep/runs.txt"

echo "=== scancel: SIGTERM from Slurm stops the run with a checkpoint, and nothing requeues it"
job=$(MOE_CONFIG=$base MOE_BIN=$moe MOE_ARGS="$rargs --set train.steps=100000 --set run.dir=$work/cancel" \
  sbatch --parsable "${sb[@]}" --time=5 --output="$work/cancel.out" "$src/slurm/train.sbatch")
for _ in $(seq 1 600); do [ "$(losses "$work/cancel" 2>/dev/null | wc -l)" -ge 20 ] && break; sleep 0.1; done
t0=$(now)
scancel "$job"
for _ in $(seq 1 300); do gone "$job" && break; sleep 0.1; done
took=$(since "$t0")
gone "$job" || fail "scancel: the job is still queued"
line=$(grep -m1 "moe: stopped by SIGTERM at step" "$work/cancel.out") || { cat "$work/cancel.out"; fail "scancel: no stop line"; }
step=$(sed -n 's/.* at step \([0-9]*\) of .*/\1/p' <<<"$line")
[ "$(readlink "$work/cancel/checkpoints/latest")" = "$(printf 'step_%08d' "$step")" ] || fail "scancel: latest is not step $step"
timeout 60 "$moe" eval --checkpoint "$work/cancel" --batches 1 >"$work/cancel.eval" 2>&1 ||
  fail "scancel: the checkpoint does not load: $(cat "$work/cancel.eval")"
! grep -q "requeued" "$work/cancel.out" || fail "scancel: the job requeued itself"
echo "scancel: stopped at step $step with its checkpoint, job gone after $took s, not requeued"
