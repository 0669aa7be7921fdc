#!/usr/bin/env bash
# The GPU check in one call, for the lent GPU machine (/work/shared/docs/gpu-machine.md): prints
# the environment, unpacks the carried .debs, builds `moe` and `test_cuda` (with the CUTLASS and
# cuDNN paths when the carried .deps has their headers) with all cores, runs the CUDA tests,
# `moe bench gemm` and `moe bench step` on configs A and B against the compiled
# PyTorch peer, each step under its own `timeout` inside a 9-minute budget, and writes logs and
# summary.json into OUTDIR (or $OUT). At most 8 files come back from that machine: this writes 8.
#
#   bash scripts/gpu_check.sh [--dry-run] [OUTDIR]
#
# On the device tool: carry [".debs", ".deps"] (bash ../shared/gpu/fetch-debs.sh .debs and
# bash scripts/fetch-gpu-headers.sh fill them here; about 55 MB together).
#
# --dry-run does everything up to the first CUDA call (arguments, environment, unpacking, the
# CMake configure of the CUDA build) and stops: run it here first, so that a lent machine is
# never spent on a typo (tests/launch/gpu_check_dry_run_test.sh runs it in ctest).
# Environment: DEBS_DIR (default .debs), BUILD_DIR (default build-gpu; the dry run uses a
# scratch folder under OUTDIR), BUDGET_S (default 540), PYTHON (default python3).
set -uo pipefail

usage() { sed -n '2,/^set -uo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; }
dry=0
out=""
for a in "$@"; do
  case "$a" in
    --dry-run) dry=1 ;;
    -h | --help) usage; exit 0 ;;
    -*) echo "gpu_check: unknown option $a (see --help)" >&2; exit 2 ;;
    *)
      if [ -n "$out" ]; then echo "gpu_check: one OUTDIR only (got $out and $a)" >&2; exit 2; fi
      out=$a
      ;;
  esac
done
out=${out:-${OUT:-}}
if [ -z "$out" ]; then echo "gpu_check: give OUTDIR or set \$OUT" >&2; exit 2; fi
mkdir -p "$out" || { echo "gpu_check: cannot create $out" >&2; exit 2; }
out=$(cd "$out" && pwd)
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
debs=${DEBS_DIR:-.debs}
budget=${BUDGET_S:-540}
python=${PYTHON:-python3}
scratch=""
if [ "$dry" = 1 ] && [ -z "${BUILD_DIR:-}" ]; then
  scratch=$(mktemp -d /tmp/gpu_check_dry.XXXXXX)
  build=$scratch
else
  build=${BUILD_DIR:-build-gpu}
fi
t_start=$(date +%s)
summary=$out/summary.json
: > "$out/steps.tmp"

say() { echo "[gpu_check +$(($(date +%s) - t_start))s] $*"; }
# step NAME LIMIT_S LOG CMD...: runs CMD under timeout, min(LIMIT_S, what is left of the
# budget), appending to LOG; records name, rc and seconds for summary.json.
step() {
  local name=$1 limit=$2 log=$3
  shift 3
  local left=$((budget - ($(date +%s) - t_start)))
  if [ "$left" -lt 15 ]; then
    say "$name: skipped, the ${budget}s budget is spent"
    echo "{\"step\": \"$name\", \"rc\": null, \"seconds\": 0, \"skipped\": true}" >> "$out/steps.tmp"
    return 124
  fi
  [ "$limit" -gt "$left" ] && limit=$left
  local t0=$(date +%s)
  echo "=== $name (limit ${limit}s): $*" >> "$log"
  timeout --kill-after=10 "$limit" "$@" >> "$log" 2>&1
  local rc=$?
  local dt=$(($(date +%s) - t0))
  say "$name: rc=$rc in ${dt}s (limit ${limit}s)$([ $rc = 124 ] && echo ' TIMED OUT')"
  echo "{\"step\": \"$name\", \"rc\": $rc, \"seconds\": $dt, \"skipped\": false}" >> "$out/steps.tmp"
  return $rc
}
finish() {
  {
    echo "{\"dry_run\": $([ $dry = 1 ] && echo true || echo false), \"seconds\": $(($(date +%s) - t_start)), \"steps\": ["
    sed '$!s/$/,/' "$out/steps.tmp"
    echo "]}"
  } > "$summary"
  rm -f "$out/steps.tmp"
  [ -n "$scratch" ] && rm -rf "$scratch"
  say "summary: $summary"
  exit "${1:-0}"
}

# 1. The environment, first, so the log says what the machine has.
{
  echo "date: $(date -u)"
  echo "host: $(uname -a)"
  echo "cores: $(nproc)"
  echo "--- nvidia-smi -L"; nvidia-smi -L 2>&1 || echo "(no nvidia-smi)"
  echo "--- which mpirun mpicxx nvcc cmake ninja"
  for t in mpirun mpicxx nvcc cmake ninja; do printf '%s: %s\n' "$t" "$(command -v $t || echo missing)"; done
  echo "/usr/local/cuda/bin/nvcc: $([ -x /usr/local/cuda/bin/nvcc ] && /usr/local/cuda/bin/nvcc --version | tail -1 || echo missing)"
  echo "--- ls /usr/include/nccl.h"; ls /usr/include/nccl.h 2>&1
  echo "--- torch"; "$python" -c "import torch; print(torch.__version__, 'cuda', torch.version.cuda, 'available', torch.cuda.is_available())" 2>&1
  echo "--- pip nccl"; "$python" -c "import nvidia.nccl, os; print(list(nvidia.nccl.__path__))" 2>&1
  echo "--- pip cudnn"; "$python" -c "import nvidia.cudnn, os; print(list(nvidia.cudnn.__path__))" 2>&1
  echo "--- carried GPU headers (.deps)"; cat .deps/*/include/.version 2>&1
} > "$out/env.txt" 2>&1
cat "$out/env.txt"

# 2. Carried Debian packages (TOML++, CLI11, Boost.Serialization, OpenBLAS; Open MPI if carried).
if [ -d "$debs" ]; then
  if unpack=$(bash scripts/unpack-debs.sh "$debs" "${DEPS_PREFIX:-/tmp/deps}" 2>> "$out/env.txt"); then
    eval "$unpack"
    say "unpacked $(ls "$debs"/*.deb | wc -l) .debs from $debs into ${DEPS_PREFIX:-/tmp/deps}"
    # A carried Open MPI (openmpi-bin, libopenmpi3, libopenmpi-dev) runs from the prefix.
    dprefix=${DEPS_PREFIX:-/tmp/deps}/usr
    if [ -x "$dprefix/bin/mpirun" ] && ! command -v mpirun > /dev/null; then
      export OPAL_PREFIX=$dprefix PATH=$dprefix/bin:$PATH
      say "Open MPI from the carried .debs: OPAL_PREFIX=$OPAL_PREFIX"
    fi
  else
    say "could not unpack $debs (see env.txt)"
    finish 1
  fi
else
  say "no $debs folder: using the system's packages"
fi
[ -f scripts/env.sh ] && source scripts/env.sh
# NCCL: the system's headers, or the pip package's (nvidia-nccl-cu13 ships include/ and lib/).
nccl_flags=()
if [ ! -f /usr/include/nccl.h ] && [ ! -f /usr/local/cuda/include/nccl.h ]; then
  nccl_root=$("$python" -c "import nvidia.nccl, os; print(list(nvidia.nccl.__path__)[0])" 2>/dev/null)
  if [ -n "$nccl_root" ] && [ -f "$nccl_root/include/nccl.h" ]; then
    nccl_lib=$(ls "$nccl_root"/lib/libnccl.so* 2>/dev/null | head -1)
    nccl_flags=(-DNCCL_INCLUDE_DIR="$nccl_root/include" -DNCCL_LIB="$nccl_lib")
    export LD_LIBRARY_PATH=$nccl_root/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
    say "NCCL from pip: $nccl_root"
  else
    say "no NCCL headers found: the configure will say whether the CUDA backend builds"
  fi
fi
nvcc=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)
# CUTLASS, cudnn-frontend and cuDNN headers: carried in .deps (scripts/fetch-gpu-headers.sh, run
# here before the device run), or fetched now where PyPI is reachable.
[ -d .deps/cutlass/include ] || bash scripts/fetch-gpu-headers.sh >> "$out/env.txt" 2>&1
# cuDNN is loaded at run time (dlopen "libcudnn.so.9"): the pip package's lib folder.
cudnn_root=$("$python" -c "import nvidia.cudnn, os; print(list(nvidia.cudnn.__path__)[0])" 2>/dev/null)
if [ -n "$cudnn_root" ] && ls "$cudnn_root"/lib/libcudnn.so* > /dev/null 2>&1; then
  export LD_LIBRARY_PATH=$cudnn_root/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  say "cuDNN from pip: $cudnn_root/lib"
else
  say "no pip cuDNN found: the fused attention uses our own kernels"
fi

# 3. Configure (no CUDA call yet: nvcc compiles, nothing runs on a device). The log starts
# empty, so that what it says is about this configure.
: > "$out/build.log"
# shellcheck disable=SC2086
step configure 180 "$out/build.log" cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_CUDA_COMPILER="$nvcc" -DCMAKE_CUDA_ARCHITECTURES=90 "${nccl_flags[@]}" \
  ${DEPS_CMAKE_FLAGS:-} || finish 1
if ! grep -q "CUDA backend: ON" "$out/build.log"; then
  say "the configure did not enable the CUDA backend (see build.log)"
  finish 1
fi
grep -E "CUTLASS grouped GEMM|cuDNN fused attention" "$out/build.log" | sed 's/^-- //' | while read -r l; do say "$l"; done
if [ "$dry" = 1 ]; then
  say "dry run: arguments, environment, unpacking and the CUDA configure passed; stopping before the build and the first CUDA call"
  finish 0
fi

# 4. Build with all cores.
step build 300 "$out/build.log" cmake --build "$build" -j "$(nproc)" --target moe test_cuda || finish 1
bin=$build/bin

# 5. The CUDA tests: the new kernels first (CUTLASS grouped GEMM, cuDNN attention), so that their
# result is in even if the whole suite runs out of time; then everything on one rank. Two ranks
# sharing the GPU come last (step 9): they add little that one rank and the CPU suite miss.
step test_cuda_new 60 "$out/tests.log" "$bin/test_cuda" --gtest_filter='*Cutlass*:*Cudnn*'
step test_cuda 150 "$out/tests.log" "$bin/test_cuda" --gtest_output=json:"$out/test_cuda.json"

# 6. Expert GEMMs: grouped (CUTLASS under bf16 on sm_90, and cuBLAS's grouped call beside it)
# against dense cuBLAS at the shapes of configs A and B.
step bench_gemm 60 "$out/bench.log" "$bin/moe" bench gemm --device cuda --iters 10

# 7. Fused attention, our kernels against cuDNN's, at config A's and B's heads (T = 1024; the
# default shapes include T = 4096, where our kernels are slow).
step bench_attention 90 "$out/bench.log" "$bin/moe" bench attention --shape 16,1024,16,64 \
  --shape 8,1024,16,128 --iters 5

# 8. Training steps against the compiled PyTorch peer: one round, few steps, each config
# under its own limit; --profile adds host syncs and copies per step.
step bench_step_a 120 "$out/bench.log" "$bin/moe" bench step --config configs/bench_a.toml \
  --rounds 1 --steps 5 --warmup 2 --python "$python"
step bench_step_b 120 "$out/bench.log" "$bin/moe" bench step --config configs/bench_b.toml \
  --rounds 1 --steps 3 --warmup 1 --python "$python"
step bench_step_a_profile 60 "$out/bench.log" "$bin/moe" bench step --config configs/bench_a.toml \
  --rounds 1 --steps 2 --warmup 1 --no-torch --profile

# 9. Two ranks sharing the GPU (the MPI backend), when mpirun exists and time is left.
if command -v mpirun > /dev/null; then
  step test_cuda_np2 90 "$out/tests.log" mpirun -np 2 "$bin/test_cuda" --gtest_brief=1
fi
finish 0
