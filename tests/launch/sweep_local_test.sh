#!/usr/bin/env bash
# `moe sweep` on this machine, end to end: --dry-run runs and writes nothing; --run local trains
# 2-rank runs under mpirun (2 at a time), goes on past a failing run and exits 1 for it; the
# same command again reruns only that run; --report alone rewrites the same CSV; a bad spec
# stops with one line naming the key and the file, exit 2; a second sweep on the same out dir is
# refused; SIGTERM stops a sweep (its runs checkpoint, "interrupted", exit 5), so does SIGKILL
# (the runs get the stop from the kernel when the sweep dies), and the same command continues
# them to the losses and final checkpoints of uninterrupted runs.
#   sweep_local_test.sh <moe binary> <source dir>      (ctest passes both; label "sweep")
set -euo pipefail
moe=$(realpath "$1")
src=$(realpath "$2")
work=$(mktemp -d /tmp/moe-sweep-local-test.XXXXXX)
trap 'rm -rf "$work"' EXIT
source "$src/scripts/env.sh"  # Open MPI as root, oversubscribed
fail() { echo "FAIL: $*"; exit 1; }
check() { "$@" || fail "$*"; }

# An mpirun stand-in that fails one run once (exit 3) and otherwise runs the real mpirun.
cat > "$work/mpirun.sh" <<SH
#!/bin/bash
echo "\$*" >> "$work/mpirun_calls.txt"
case "\$*" in
  *s2_sp_lr1.000e-02_seed3*) if [ ! -e "$work/failed_once" ]; then touch "$work/failed_once"; echo "injected failure"; exit 3; fi ;;
esac
exec mpirun "\$@"
SH
chmod +x "$work/mpirun.sh"
cat "$src/tests/fixtures/tiny_moe.toml" - > "$work/base.toml" <<'TOML'
[optim]
warmup = 1
[train]
batch = 4
log_every = 2
[parallel]
ep = 2
TOML
cat > "$work/spec.toml" <<TOML
base = "base.toml"
regime = "I"
scales = [1, 2]
presets = ["sp"]
seeds = [3]
tokens = 256         # 4 steps of batch 4 x seq_len 16
ranks = 2
out = "$work/sweep"
[lr]
values = [1e-3, 1e-2]
[local]
mpirun = ["$work/mpirun.sh"]
TOML

echo "=== dry run"
"$moe" sweep --spec "$work/spec.toml" --dry-run | tee "$work/dry.txt"
[ "$(grep -c '^\[  *[0-9]*\] scale ' "$work/dry.txt")" -eq 4 ] || fail "dry run should list 4 runs"
check grep -q "scale 2     sp   lr 1.000e-02 seed 3   N=32 Ne=32 M=4 K=2 L=1  $work/sweep/runs/s2_sp_lr1.000e-02_seed3" "$work/dry.txt"
check test ! -e "$work/sweep"

echo "=== run local, 2 at a time: one run fails"
set +e
"$moe" sweep --spec "$work/spec.toml" --run local --jobs 2 > "$work/first.txt" 2>&1
rc=$?
set -e
cat "$work/first.txt"
[ "$rc" -eq 1 ] || fail "a failed run should make moe sweep exit 1, got $rc"
check grep -q "s2_sp_lr1.000e-02_seed3: FAILED (exit 3 after .*): injected failure" "$work/first.txt"
check grep -q "3 run(s) trained, 0 already finished, 1 failed" "$work/first.txt"
check grep -q -- "-np 2 $moe train --config $work/sweep/runs/s1_sp_lr1.000e-03_seed3/run.toml" "$work/mpirun_calls.txt"
check test -f "$work/sweep/runs/s2_sp_lr1.000e-02_seed3/failed"
for r in s1_sp_lr1.000e-03_seed3 s1_sp_lr1.000e-02_seed3 s2_sp_lr1.000e-03_seed3; do
  check test -f "$work/sweep/runs/$r/finished"
  check grep -q '^{"step":4,' "$work/sweep/runs/$r/metrics.jsonl"
  check grep -q "moe train: 2 rank(s), ep=2" "$work/sweep/runs/$r/train.log"
done
check grep -q "runs: 4 (3 finished, 1 failed, 0 pending" "$work/sweep/summary.txt"

echo "=== the same command again: only the failed run"
check "$moe" sweep --spec "$work/spec.toml" --run local > "$work/second.txt" 2>&1
cat "$work/second.txt"
check grep -q "1 of 4 run(s) to do, 3 already finished" "$work/second.txt"
[ "$(wc -l < "$work/mpirun_calls.txt")" -eq 5 ] || fail "expected 5 mpirun calls in all"
check test -f "$work/sweep/runs/s2_sp_lr1.000e-02_seed3/finished"
check test ! -e "$work/sweep/runs/s2_sp_lr1.000e-02_seed3/failed"
check grep -q "runs: 4 (4 finished, 0 failed, 0 pending" "$work/sweep/summary.txt"
[ "$(grep -c ',finished,4,4,' "$work/sweep/report.csv")" -eq 4 ] || fail "report.csv: $(cat "$work/sweep/report.csv")"

echo "=== report alone"
cp "$work/sweep/report.csv" "$work/report_before.csv"
check "$moe" sweep --spec "$work/spec.toml" --report > /dev/null
check cmp "$work/report_before.csv" "$work/sweep/report.csv"
[ "$(wc -l < "$work/mpirun_calls.txt")" -eq 5 ] || fail "--report must not run anything"

echo "=== a bad spec: one line naming the key and the file, exit 2"
sed 's/^ranks = 2/rankz = 2/' "$work/spec.toml" > "$work/bad.toml"
set +e
"$moe" sweep --spec "$work/bad.toml" --dry-run > "$work/bad.txt" 2>&1
rc=$?
set -e
cat "$work/bad.txt"
[ "$rc" -eq 2 ] || fail "a bad spec should exit 2, got $rc"
check grep -q "moe: error: $work/bad.toml: rankz: unknown key" "$work/bad.txt"
[ "$(wc -l < "$work/bad.txt")" -eq 1 ] || fail "expected one line"
echo "=== SIGTERM stops the sweep; the same command continues its runs"
# Each step sleeps 20 ms, so the signal lands mid-run however fast this machine trains.
cat "$work/base.toml" - > "$work/long_base.toml" <<'TOML'
[debug]
step_delay_s = 0.02
TOML
sed -e 's/^tokens = 256 .*/tokens = 25600       # 400 steps/' -e "s#^out = .*#out = \"$work/long\"#" \
  -e 's#^base = .*#base = "long_base.toml"#' \
  -e 's#^mpirun = .*#mpirun = ["mpirun"]#' -e 's/^scales = .*/scales = [1]/' "$work/spec.toml" > "$work/long.toml"
sed -i 's/^keep_checkpoints = .*//' "$work/long.toml"
"$moe" sweep --spec "$work/long.toml" --run local --jobs 2 > "$work/long1.txt" 2>&1 &
sweep=$!
for _ in $(seq 1 600); do
  n=0
  for m in "$work"/long/runs/*/metrics.jsonl; do
    c=$(grep -c '^{"step"' "$m" 2>/dev/null || true)
    [ "${c:-0}" -ge 5 ] && n=$((n + 1))
  done
  [ "$n" -eq 2 ] && break
  sleep 0.1
done
[ "$n" -eq 2 ] || { cat "$work/long1.txt"; fail "the two runs did not start"; }
set +e
"$moe" sweep --spec "$work/long.toml" --run local > "$work/other.txt" 2>&1
rc=$?
set -e
[ "$rc" -eq 2 ] || fail "a second sweep on the same out dir should exit 2, got $rc: $(cat "$work/other.txt")"
check grep -q "moe: error: the sweep's out directory = \"$work/long\" is in use by another job" "$work/other.txt"
kill -TERM "$sweep"
set +e
wait "$sweep"
rc=$?
set -e
cat "$work/long1.txt"
[ "$rc" -eq 5 ] || fail "a sweep stopped by SIGTERM should exit 5, got $rc"
[ "$(grep -c "interrupted after .* s: moe: stopped by SIGUSR1 at step" "$work/long1.txt")" -eq 2 ] ||
  fail "each interrupted run should be reported with its stop line"
check grep -q "moe sweep: stopped by SIGTERM: 0 run(s) finished, 2 interrupted with a checkpoint, 0 failed, 0 not started" "$work/long1.txt"
for r in "$work"/long/runs/*; do
  check test -f "$r/interrupted"
  check test ! -e "$r/finished"
  check test ! -e "$r/failed"
  check test -L "$r/checkpoints/latest"
  check grep -q "moe: stopped by SIGUSR1 at step" "$r/train.log"
done
echo "=== SIGKILL to the sweep: its runs still stop with a checkpoint, none trains on as an orphan"
logged() { grep -c '^{"step"' "$1/metrics.jsonl" || true; }
declare -A before
for r in "$work"/long/runs/*; do before[$r]=$(logged "$r"); done
"$moe" sweep --spec "$work/long.toml" --run local --jobs 2 > "$work/long_kill.txt" 2>&1 &
sweep=$!
for _ in $(seq 1 600); do
  n=0
  for r in "$work"/long/runs/*; do [ "$(logged "$r")" -ge $((before[$r] + 5)) ] && n=$((n + 1)); done
  [ "$n" -eq 2 ] && break
  sleep 0.1
done
[ "$n" -eq 2 ] || { cat "$work/long_kill.txt"; fail "the two runs did not continue"; }
kill -KILL "$sweep"
wait "$sweep" 2>/dev/null || true
for _ in $(seq 1 600); do pgrep -f -- "--config $work/long/runs/" > /dev/null || break; sleep 0.1; done
! pgrep -af -- "--config $work/long/runs/" || fail "runs of the killed sweep still train"
for r in "$work"/long/runs/*; do
  [ "$(grep -c "moe: stopped by SIGUSR1 at step" "$r/train.log")" -eq 2 ] || fail "$r: no stop after the sweep's SIGKILL"
  [ "$(logged "$r")" -lt 400 ] || fail "$r: trained to the end after the sweep died"
done
check "$moe" sweep --spec "$work/long.toml" --run local --jobs 2 > "$work/long2.txt" 2>&1
cat "$work/long2.txt"
check grep -q "2 of 2 run(s) to do, 0 already finished" "$work/long2.txt"
for r in "$work"/long/runs/*; do
  check test -f "$r/finished"
  check test ! -e "$r/interrupted"
  check grep -q '^{"event":"resume","at_step":' "$r/metrics.jsonl"
  mpirun -np 2 "$moe" train --config "$r/run.toml" --set "run.dir=$r.ref" --set debug.step_delay_s=0 > "$r.ref.log" 2>&1 || fail "reference of $r"
  diff <(grep '^{"step"' "$r.ref/metrics.jsonl" | cut -d, -f1-2) <(grep '^{"step"' "$r/metrics.jsonl" | cut -d, -f1-2) ||
    fail "$r: losses differ from the uninterrupted run"
  diff <(grep "checksum = '" "$(readlink -f "$r.ref/checkpoints/latest")/manifest.toml") \
    <(grep "checksum = '" "$(readlink -f "$r/checkpoints/latest")/manifest.toml") || fail "$r: final checkpoints differ"
done
echo "PASS"
