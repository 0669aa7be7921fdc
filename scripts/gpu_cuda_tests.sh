#!/usr/bin/env bash
# On the lent GPU machine (/work/shared/docs/gpu-machine.md): unpacks the carried .debs, builds
# the CUDA suite and runs `ctest -L cuda`, then (MEMCHECK=1) the op table under
# compute-sanitizer. Logs go to $OUT. From the project root, with .debs carried:
#   bash scripts/gpu_cuda_tests.sh
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-/tmp/gpu-out}
mkdir -p "$out"
prefix=/tmp/deps
lib=$prefix/usr/lib/x86_64-linux-gnu
mkdir -p "$prefix"
for f in .debs/*.deb; do dpkg -x "$f" "$prefix"; done
export LD_LIBRARY_PATH=$lib:$lib/openblas-pthread${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
nvidia-smi > "$out/nvidia-smi.txt" 2>&1

t0=$(date +%s)
if ! cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_CUDA_COMPILER=/usr/local/cuda/bin/nvcc -DCMAKE_PREFIX_PATH=$prefix/usr \
    -DBoost_NO_SYSTEM_PATHS=ON -DBLA_VENDOR=OpenBLAS -DCMAKE_LIBRARY_PATH=$lib/openblas-pthread \
    > "$out/configure.log" 2>&1; then
  tail -40 "$out/configure.log"
  exit 1
fi
if ! cmake --build build-gpu -j "$(nproc)" --target test_cuda > "$out/build.log" 2>&1; then
  grep -n -A8 "error" "$out/build.log" | head -80
  exit 1
fi
echo "configure + build: $(( $(date +%s) - t0 )) s"

ctest --test-dir build-gpu -L cuda --output-on-failure > "$out/ctest.log" 2>&1
rc=$?
cp build-gpu/Testing/Temporary/LastTest.log "$out/ctest-full.log" 2>/dev/null
tail -30 "$out/ctest.log"
grep -E "FAIL|Failure" "$out/ctest-full.log" | head -40

if [ "${MEMCHECK:-0}" = 1 ]; then
  /usr/local/cuda/bin/compute-sanitizer --tool memcheck --error-exitcode 3 \
    build-gpu/bin/test_cuda --gtest_filter='Table/*:CudaBackendTest.*' > "$out/memcheck.log" 2>&1
  echo "memcheck exit $?"
  tail -5 "$out/memcheck.log"
fi
exit $rc
