#!/usr/bin/env bash
# `moe bench` prints its tables (no timing is judged): `bench step` on 1 and 2 ranks gives a
# row for moe with tokens/s, TFLOP/s and a per-op profile; with Debian's python3-torch present
# it also runs the PyTorch peer and prints the speedup (skipped silently without torch);
# `bench a2a` on 2 and 3 ranks prints the nccl-tests table and the dispatcher table, and every
# #wrong entry is 0 (the all-to-all and dispatch+combine delivered every element); the step
# header names the dtype used (bf16 mixed precision when asked); `bench gemm` prints its table
# on the CPU with every #wrong 0; `bench attention` refuses the CPU in one line (exit 2).
#   bench_smoke_test.sh <moe binary> <source dir>      (ctest passes both; label "bench")
set -euo pipefail
moe=$(realpath "$1")
src=$(realpath "$2")
work=$(mktemp -d /tmp/moe-bench-test.XXXXXX)
trap 'rm -rf "$work"' EXIT
source "$src/scripts/env.sh"  # Open MPI as root, oversubscribed
fail() { echo "FAIL: $*"; exit 1; }
cd "$work"

small=(--set train.batch=4 --steps 2 --warmup 1 --rounds 1)
"$moe" bench step "${small[@]}" --no-torch --profile > step1.txt || fail "bench step exit $?"
grep -Eq '^moe \(cpu, 1 thread/rank\) +[0-9]+ +[0-9.]+ +[0-9.]+' step1.txt || { cat step1.txt; fail "no moe row"; }
grep -q '^  gemm ' step1.txt || { cat step1.txt; fail "no per-op profile"; }
mpirun -np 2 "$moe" bench step "${small[@]}" --no-torch > step2.txt || fail "2-rank bench step exit $?"
grep -q ', 2 rank(s)' step2.txt || { cat step2.txt; fail "2-rank header"; }
if /usr/bin/python3 -c 'import torch' 2>/dev/null; then
  "$moe" bench step "${small[@]}" > step_torch.txt || fail "bench step with the peer exit $?"
  grep -Eq '^pytorch .*eager fp32' step_torch.txt || { cat step_torch.txt; fail "no pytorch row"; }
  grep -Eq '^speedup over pytorch: [0-9.]+x$' step_torch.txt || { cat step_torch.txt; fail "no speedup line"; }
fi

for np in 2 3; do
  mpirun -np "$np" "$moe" bench a2a --maxbytes 64K --tokens 64,300 --experts 6 --iters 3 \
    --warmup_iters 1 > a2a$np.txt || fail "bench a2a -np $np exit $?"
  rows=$(awk '/^ +[0-9]+ +[0-9]+ +[0-9.]+ +[0-9.]+ +[0-9.]+ +[0-9]+$/' a2a$np.txt | wc -l)
  disp=$(awk '/^ +[0-9]+ +[0-9]+ +[0-9.]+ +[0-9.]+ +[0-9.]+ +[0-9.]+ +[0-9]+$/' a2a$np.txt | wc -l)
  [ "$rows" -ge 3 ] && [ "$disp" -eq 2 ] || { cat a2a$np.txt; fail "-np $np: $rows raw rows, $disp dispatcher rows"; }
  # The last column of both tables is #wrong.
  bad=$(awk '/^ +[0-9]/ && $NF != 0' a2a$np.txt | wc -l)
  [ "$bad" -eq 0 ] || { cat a2a$np.txt; fail "-np $np: elements delivered wrong"; }
done
# bench step names the dtype the model ran with: mixed precision when asked for bf16.
"$moe" bench step "${small[@]}" --set train.dtype=bf16 --no-torch > step_bf16.txt || fail "bf16 bench step exit $?"
grep -q 'cpu bf16 (mixed: f32 master weights' step_bf16.txt || { cat step_bf16.txt; fail "bf16 header"; }
grep -q 'cpu f32, 1 rank' step1.txt || { cat step1.txt; fail "f32 header"; }

# bench gemm: on the CPU, CPU grouped against CPU dense, every #wrong 0 (its exit status says so).
"$moe" bench gemm --config "$src/tests/fixtures/tiny_moe.toml" --iters 1 --warmup 0 --json gemm.json > gemm.txt \
  || { cat gemm.txt; fail "bench gemm exit $?"; }
grep -q '^# bench gemm: cpu, f32 operands' gemm.txt || { cat gemm.txt; fail "bench gemm header"; }
rows=$(awk '/^tiny_moe.toml/ && $13 == 0' gemm.txt | wc -l)  # #wrong (shape names hold a space); a reason for an n/a may follow
[ "$rows" -eq 4 ] || { cat gemm.txt; fail "bench gemm: $rows rows with #wrong 0, expected 4"; }
python3 -c "import json,sys; d=json.load(open(sys.argv[1])); assert len(d['rows']) == 4" gemm.json || fail "gemm.json"
# bench attention compares our kernels with cuDNN's on a GPU; asked to run on the CPU it says
# in one line that it needs a CUDA device and exits 2 (bad input).
set +e
"$moe" bench attention --device cpu > attn.txt 2>&1
rc=$?
set -e
[ "$rc" -eq 2 ] && [ "$(wc -l < attn.txt)" -eq 1 ] && grep -q 'needs a CUDA device' attn.txt \
  || { cat attn.txt; fail "bench attention on the CPU: exit $rc, expected 2 and one line"; }
echo "PASS: bench step, bench a2a, bench gemm tables and bench attention's CPU refusal"
