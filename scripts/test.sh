#!/usr/bin/env bash
# The whole test suite on a fresh machine: install dependencies, build, run ctest (CPU unit
# tests, multi-rank tests under mpirun, CUDA tests that skip without a GPU, the Slurm test).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh
source scripts/env.sh
ctest --test-dir "${BUILD_DIR:-build}" --output-on-failure -j "$(nproc)" "$@"
