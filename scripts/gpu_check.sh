#!/usr/bin/env bash
# The GPU check in one call, the only entry point for a lent GPU machine
# (/work/shared/docs/gpu-machine.md). It prints what the machine has and which GPU paths the
# build gets, unpacks the carried packages, builds `moe` and `test_cuda` with all cores, runs
# the CUDA tests (the CUTLASS, cuDNN and grouped-GEMM routing tests first), then `moe bench
# gemm`, `bench attention` and `bench step` on configs A and B against the compiled PyTorch
# peer, the two-rank tests last; each step under its own `timeout`, all inside a 9-minute
# budget. Into OUTDIR (or $OUT), at most 8 files, as the device tool returns: env.txt,
# build.log, tests.log, test_cuda.json, bench.log, warmup.log, summary.json (steps, paths,
# every test's result and every skip's reason).
#
#   bash scripts/gpu_check.sh [--dry-run] [OUTDIR]
#
# Carry [".debs", ".deps"]: bash scripts/fetch-debs.sh .debs (TOML++, CLI11, Boost, OpenBLAS,
# GoogleTest; Open MPI in .debs/mpi, used only where the machine has no MPI) and
# bash scripts/fetch-gpu-headers.sh (.deps: CUTLASS, cudnn-frontend, cuDNN headers); 58 MB.
#
# --dry-run does everything up to the first CUDA call (arguments, environment, unpacking, the
# MPI launcher check, the CMake configure of the CUDA build) and stops: run it here first, so
# that a lent machine is never spent on a typo (tests/launch/gpu_check_dry_run_test.sh runs
# it in ctest, also with the system's MPI and GoogleTest hidden).
# Environment: DEBS_DIR (default .debs), BUILD_DIR (default build-gpu; the dry run uses a
# scratch folder), BUDGET_S (default 540), PYTHON (default python3), DEPS_PREFIX (default
# /tmp/deps; the dry run's: a scratch folder), MEMCHECK=1 (op tests under compute-sanitizer at
# the end, if time is left).
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
scratch=$(mktemp -d /tmp/gpu_check.XXXXXX)
# The dry run keeps its build and prefix in a scratch folder: nothing shared is touched.
if [ "$dry" = 1 ] && [ -z "${BUILD_DIR:-}" ]; then build=$scratch/build; else build=${BUILD_DIR:-build-gpu}; fi
if [ "$dry" = 1 ]; then deps_prefix=${DEPS_PREFIX:-$scratch/deps}; else deps_prefix=${DEPS_PREFIX:-/tmp/deps}; fi
t_start=$(date +%s)
: > "$out/steps.tmp"
: > "$scratch/paths"
warm_pid=""

say() { echo "[gpu_check +$(($(date +%s) - t_start))s] $*"; }
# path KEY VALUE: one line of what the machine and the build give, for the log and summary.json.
path() {
  printf '%s\t%s\n' "$1" "$2" >> "$scratch/paths"
  say "$1: $2"
}
record() { echo "{\"step\": \"$1\", \"rc\": $2, \"seconds\": $3, \"skipped\": $4}" >> "$out/steps.tmp"; }
# step NAME LIMIT_S LOG CMD...: runs CMD under timeout, min(LIMIT_S, what is left of the
# budget), appending to LOG; records name, rc and seconds for summary.json.
step() {
  local name=$1 limit=$2 log=$3
  shift 3
  local left=$((budget - ($(date +%s) - t_start)))
  if [ "$left" -lt 15 ]; then
    say "$name: skipped, the ${budget}s budget is spent"
    record "$name" null 0 true
    return 124
  fi
  [ "$limit" -gt "$left" ] && limit=$left
  local t0=$(date +%s)
  echo "=== $name (limit ${limit}s): $*" >> "$log"
  timeout --kill-after=10 "$limit" "$@" >> "$log" 2>&1
  local rc=$?
  local dt=$(($(date +%s) - t0))
  say "$name: rc=$rc in ${dt}s (limit ${limit}s)$([ $rc = 124 ] && echo ' TIMED OUT')"
  record "$name" "$rc" "$dt" false
  return $rc
}
# The PyTorch warm-up (step 6) runs beside the build; it must be over before anything is timed.
stop_warmup() {
  [ -n "$warm_pid" ] || return 0
  local waited=0
  while kill -0 "$warm_pid" 2> /dev/null && [ "$waited" -lt "${1:-0}" ]; do sleep 1; waited=$((waited + 1)); done
  if kill -0 "$warm_pid" 2> /dev/null; then
    touch "$scratch/stop_warmup"  # the loop starts no other config
    pkill -TERM -P "$warm_pid" 2> /dev/null  # its `timeout`, which passes the signal on
    say "peer_warmup: still running, stopped"
  fi
  wait "$warm_pid" 2> /dev/null
  warm_pid=""
  grep '^peer_warmup' "$out/warmup.log" 2> /dev/null | while read -r l; do say "$l"; done
}
finish() {
  stop_warmup 0
  "$python" - "$out" "$scratch/paths" "$dry" "$(($(date +%s) - t_start))" <<'EOF' || say "summary.json: python failed; steps in steps.tmp"
import json, os, subprocess, sys
out, paths, dry, seconds = sys.argv[1], sys.argv[2], sys.argv[3] == "1", int(sys.argv[4])
steps = [json.loads(l) for l in open(os.path.join(out, "steps.tmp")) if l.strip()]
info = dict(l.rstrip("\n").split("\t", 1) for l in open(paths) if "\t" in l)
tests = {"runs": []}
log = os.path.join(out, "tests.log")
summarize = [sys.executable, os.path.join("scripts", "gtest_summary.py")]
if os.path.exists(log):
    try:
        tests = json.loads(subprocess.run(summarize + [log], capture_output=True, text=True,
                                          check=True).stdout)
        print(subprocess.run(summarize + ["--text", log], capture_output=True, text=True).stdout,
              end="")
    except (subprocess.CalledProcessError, ValueError) as e:
        tests = {"runs": [], "error": str(e)}
with open(os.path.join(out, "summary.json"), "w") as f:
    json.dump({"dry_run": dry, "seconds": seconds, "paths": info, "steps": steps,
               "tests": tests}, f, indent=1)
os.remove(os.path.join(out, "steps.tmp"))
failed = [x["step"] for x in steps if x["rc"] not in (0, None)]
print("steps that failed: " + ", ".join(failed) if failed else "every step that ran passed")
EOF
  sed 's/\t/: /' "$scratch/paths" | while read -r l; do say "  $l"; done
  rm -rf "$scratch"
  say "summary: $out/summary.json"
  exit "${1:-0}"
}

# 1. The environment, first, so that the log says what the machine has.
{
  echo "date: $(date -u)"
  echo "host: $(uname -a)"
  echo "cores: $(nproc)"
  echo "--- nvidia-smi -L"; nvidia-smi -L 2>&1 || echo "(no nvidia-smi)"
  echo "--- which mpirun mpicxx nvcc cmake ninja"
  for t in mpirun mpicxx nvcc cmake ninja; do printf '%s: %s\n' "$t" "$(command -v $t || echo missing)"; done
  echo "/usr/local/cuda/bin/nvcc: $([ -x /usr/local/cuda/bin/nvcc ] && /usr/local/cuda/bin/nvcc --version | tail -1 || echo missing)"
  echo "--- ls /usr/include/nccl.h"; ls /usr/include/nccl.h 2>&1
  echo "--- torch"; "$python" -c "import torch; print(torch.__version__, 'cuda', torch.version.cuda, 'available', torch.cuda.is_available())" 2>&1 | tail -1
  echo "--- pip nccl"; "$python" -c "import nvidia.nccl; print(list(nvidia.nccl.__path__))" 2>&1 | tail -1
  echo "--- pip cudnn"; "$python" -c "import nvidia.cudnn; print(list(nvidia.cudnn.__path__))" 2>&1 | tail -1
  echo "--- carried GPU headers (.deps)"; cat .deps/*/include/.version 2>&1
} > "$out/env.txt" 2>&1
cat "$out/env.txt"
gpu=$(nvidia-smi --query-gpu=name,compute_cap --format=csv,noheader 2> /dev/null | head -1)
path GPU "${gpu:-none found (nvidia-smi)}"

# 2. Carried Debian packages (TOML++, CLI11, Boost.Serialization, OpenBLAS, GoogleTest) into a
# prefix; Open MPI (debs/mpi) only where the machine's own mpirun and mpicxx do not run, so
# that one process never loads two MPIs.
gtest="the system's, if any (the configure says)"
if [ -d "$debs" ]; then
  if unpack=$(bash scripts/unpack-debs.sh "$debs" "$deps_prefix" 2>> "$out/env.txt"); then
    eval "$unpack"
    say "unpacked $(ls "$debs"/*.deb | wc -l) .debs from $debs into $deps_prefix"
    [ -f "$deps_prefix/usr/lib/x86_64-linux-gnu/libgtest.a" ] && gtest="carried ($deps_prefix)"
  else
    say "could not unpack $debs (see env.txt)"
    finish 1
  fi
else
  say "no $debs folder: using the system's packages"
fi
[ -f scripts/env.sh ] && source scripts/env.sh
if mpirun --version > /dev/null 2>&1 && mpicxx --version > /dev/null 2>&1; then
  path MPI "the system's ($(command -v mpirun))"
elif ls "$debs"/mpi/*.deb > /dev/null 2>&1 &&
  unpack=$(bash scripts/unpack-debs.sh "$debs/mpi" "$deps_prefix-mpi" 2>> "$out/env.txt"); then
  eval "$unpack"
  # Its optional transports (UCX, OFI, verbs) are not carried: no warning for each.
  export OMPI_MCA_mca_base_component_show_load_errors=0
  path MPI "carried Open MPI ($deps_prefix-mpi)"
else
  path MPI "none: no working mpirun and mpicxx here and no $debs/mpi"
fi
path GoogleTest "$gtest"

# 3. The CUDA toolkit, NCCL (the system's headers, or the pip package's: nvidia-nccl-cu13 ships
# include/ and lib/), the carried GPU headers and cuDNN (loaded at run time: the pip package's
# lib folder on the loader's path).
nvcc=${CUDACXX:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}
if [ ! -x "$nvcc" ]; then
  path CUDA "no nvcc (PATH, CUDACXX, /usr/local/cuda/bin)"
  say "no nvcc: the CUDA build cannot be configured"
  finish 1
fi
path CUDA "nvcc $("$nvcc" --version | sed -n 's/.*release \([0-9.]*\).*/\1/p') ($nvcc)"
nccl_flags=()
nccl_h=$(realpath -qe /usr/include/nccl.h "$(dirname "$nvcc")/../include/nccl.h" | head -1)
if [ -z "$nccl_h" ]; then
  nccl_root=$("$python" -c "import nvidia.nccl; print(list(nvidia.nccl.__path__)[0])" 2>/dev/null)
  if [ -n "$nccl_root" ] && [ -f "$nccl_root/include/nccl.h" ]; then
    nccl_lib=$(ls "$nccl_root"/lib/libnccl.so* 2>/dev/null | head -1)
    nccl_flags=(-DNCCL_INCLUDE_DIR="$nccl_root/include" -DNCCL_LIB="$nccl_lib")
    export LD_LIBRARY_PATH=$nccl_root/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
    nccl_h=$nccl_root/include/nccl.h
  fi
fi
if [ -n "$nccl_h" ]; then
  v() { sed -n "s/^#define NCCL_$1 *\([0-9]*\).*/\1/p" "$nccl_h"; }
  path NCCL "$(v MAJOR).$(v MINOR).$(v PATCH) ($nccl_h)"
else
  path NCCL "no nccl.h (system, toolkit or pip): the configure builds the CPU product only"
fi
# CUTLASS, cudnn-frontend and cuDNN headers: carried in .deps, or fetched now where PyPI is
# reachable (pip retries for minutes without a network: bounded).
[ -d .deps/cutlass/include ] || timeout 120 bash scripts/fetch-gpu-headers.sh >> "$out/env.txt" 2>&1
path "GPU headers" "$(cat .deps/*/include/.version 2> /dev/null | paste -sd ' ')"
cudnn_root=$("$python" -c "import nvidia.cudnn; print(list(nvidia.cudnn.__path__)[0])" 2>/dev/null)
if [ -n "$cudnn_root" ] && ls "$cudnn_root"/lib/libcudnn.so* > /dev/null 2>&1; then
  export LD_LIBRARY_PATH=$cudnn_root/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
fi
# What the binaries' dlopen("libcudnn.so.9") will find, asked the same way (ctypes dlopens).
path cuDNN "$("$python" -c '
import ctypes
try:
    lib = ctypes.CDLL("libcudnn.so.9")
    lib.cudnnGetVersion.restype = ctypes.c_size_t
    print("libcudnn.so.9 loads, version", lib.cudnnGetVersion())
except OSError as e:
    print("libcudnn.so.9 does not load (our attention kernels only):", e)
' 2>&1 | tail -1)"

# 4. MPI: can a program start alone (a singleton: the single-rank steps need no launcher) and
# under mpirun -np 2? Compiled with mpicxx, as CMake will.
launcher=()
single="does not start"
np2=0
cat > "$scratch/hello.cpp" << 'EOF'
#include <mpi.h>
#include <cstdio>
int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int r = 0, n = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &r);
  MPI_Comm_size(MPI_COMM_WORLD, &n);
  std::printf("rank %d of %d\n", r, n);
  MPI_Finalize();
}
EOF
if step mpi_compile 60 "$out/env.txt" mpicxx "$scratch/hello.cpp" -o "$scratch/hello"; then
  if step mpi_singleton 30 "$out/env.txt" "$scratch/hello"; then
    single="alone (a singleton)"
  elif step mpi_np1 30 "$out/env.txt" mpirun -np 1 "$scratch/hello"; then
    launcher=(mpirun -np 1)
    single="under mpirun -np 1"
  fi
  step mpi_np2 30 "$out/env.txt" mpirun -np 2 "$scratch/hello" && np2=1
fi
path "MPI launch" "one rank $single; two ranks $([ $np2 = 1 ] && echo 'under mpirun -np 2' || echo 'do not start')"
if [ "$single" = "does not start" ]; then
  say "no MPI program starts here (see env.txt): neither the tests nor moe would"
  finish 1
fi

# 5. Configure (no CUDA call yet: nvcc compiles, nothing runs on a device). The log starts
# empty, so that what it says is about this configure.
: > "$out/build.log"
# shellcheck disable=SC2086
step configure 120 "$out/build.log" cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_CUDA_COMPILER="$nvcc" -DCMAKE_CUDA_ARCHITECTURES=90 "${nccl_flags[@]}" \
  ${DEPS_CMAKE_FLAGS:-} || finish 1
built() { grep -E "^-- $1" "$out/build.log" | tail -1 | sed 's/.*: //'; }
path build "CUDA backend $(built 'CUDA backend'), CUTLASS grouped GEMM $(built 'CUTLASS grouped GEMM'), cuDNN attention $(built 'cuDNN fused attention'), MPI $(sed -n 's/^MPI_CXX_COMPILER:[A-Z]*=//p' "$build/CMakeCache.txt"), GoogleTest $(sed -n 's/^GTest_DIR:[A-Z]*=//p' "$build/CMakeCache.txt")"
if [ "$(built 'CUDA backend')" != ON ]; then
  say "the configure did not enable the CUDA backend (see build.log)"
  finish 1
fi
if [ "$dry" = 1 ]; then
  say "dry run: arguments, environment, unpacking, MPI and the CUDA configure passed; stopping before the build and the first CUDA call"
  finish 0
fi

# 6. The PyTorch peer compiles configs A and B once beside the build, so that torch.compile's
# cache (inductor's, in /tmp) is warm when `bench step` times them: cold, each compile costs
# about a minute of the budget; the build's longest file (CUTLASS, ~90 s) leaves the other
# cores idle meanwhile. Nothing here is timed or reported but its exit status.
if "$python" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2> /dev/null; then
  (for c in a b; do
    [ -e "$scratch/stop_warmup" ] && break
    nice -n 10 timeout --kill-after=5 200 "$python" bench/torch_moe.py --config configs/bench_$c.toml \
      --device cuda --dtype bf16 --compile --steps 1 --warmup 1
    echo "peer_warmup $c: rc=$?"
  done) > "$out/warmup.log" 2>&1 &
  warm_pid=$!
fi

# 7. Build with all cores: ~17 CPU-minutes here for everything, less for these two targets;
# the longest files are the CUTLASS kernel's (88 CPU-s here) and cudnn_attention.cpp (73 s),
# so ~2 minutes there.
step build 300 "$out/build.log" cmake --build "$build" -j "$(nproc)" --target moe test_cuda || finish 1
bin=$build/bin

# 8. The CUDA tests: the new paths first (CUTLASS grouped GEMM, cuDNN attention with its 14
# graph builds, the grouped-GEMM routing), so that their result is in even if the rest runs out
# of time; then the rest on one rank.
new='*Cutlass*:*Cudnn*:*GroupedGemmPath*'
step test_cuda_new 150 "$out/tests.log" "${launcher[@]}" "$bin/test_cuda" --gtest_filter="$new" \
  --gtest_color=no
step test_cuda 150 "$out/tests.log" "${launcher[@]}" "$bin/test_cuda" --gtest_filter="-$new" \
  --gtest_color=no --gtest_output=json:"$out/test_cuda.json"
stop_warmup 30

# 9. Expert GEMMs: the default path (CUTLASS under bf16 on sm_90), cuBLAS's grouped call beside
# it, dense cuBLAS, at the shapes of configs A and B.
step bench_gemm 90 "$out/bench.log" "${launcher[@]}" "$bin/moe" bench gemm --device cuda --iters 10

# 10. Fused attention, our kernels against cuDNN's, at config A's and B's heads (T = 1024; the
# default shapes include T = 4096, where our kernels are slow).
step bench_attention 90 "$out/bench.log" "${launcher[@]}" "$bin/moe" bench attention \
  --shape 16,1024,16,64 --shape 8,1024,16,128 --iters 5

# 11. Training steps against the compiled PyTorch peer: one round, few steps, each config under
# its own limit (the peer's compile, warm or cold, falls inside it); --profile adds host syncs
# and copies per step.
step bench_step_a 200 "$out/bench.log" "${launcher[@]}" "$bin/moe" bench step \
  --config configs/bench_a.toml --rounds 1 --steps 5 --warmup 2 --python "$python"
step bench_step_b 200 "$out/bench.log" "${launcher[@]}" "$bin/moe" bench step \
  --config configs/bench_b.toml --rounds 1 --steps 3 --warmup 1 --python "$python"
step bench_step_a_profile 60 "$out/bench.log" "${launcher[@]}" "$bin/moe" bench step \
  --config configs/bench_a.toml --rounds 1 --steps 2 --warmup 1 --no-torch --profile

# 12. Two ranks sharing the GPU (the MPI backend), when mpirun runs and time is left.
if [ "$np2" = 1 ]; then
  step test_cuda_np2 90 "$out/tests.log" mpirun -np 2 "$bin/test_cuda" --gtest_color=no
else
  say "test_cuda_np2: skipped, mpirun -np 2 does not run here"
  record test_cuda_np2 null 0 true
fi
# 13. On request, the op table under compute-sanitizer's memcheck.
if [ "${MEMCHECK:-0}" = 1 ]; then
  step memcheck 120 "$out/tests.log" "${launcher[@]}" "$(dirname "$nvcc")/compute-sanitizer" \
    --tool memcheck --error-exitcode 3 "$bin/test_cuda" --gtest_filter='Table/*:CudaBackendTest.*' \
    --gtest_color=no
fi
finish 0
