#!/usr/bin/env bash
# The main job on a fresh machine: install dependencies, build, then train the default config
# (built-in synthetic language, no download) with experts on 2 MPI ranks.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh
source scripts/env.sh
mpirun -np 2 build/bin/moe train --config configs/default.toml --overwrite "$@"  # a rerun starts over
