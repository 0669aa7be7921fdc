#!/bin/bash
# On the GPU machine: unpacks the carried .debs into a prefix (never into /) and prints the
# variables that make CMake and the loader find them. Use:  eval "$(bash scripts/unpack-debs.sh .debs)"
# A copy of /work/shared/gpu/unpack-debs.sh (../shared does not travel to the GPU machine); the
# one change: a folder without .debs is an error with one line, not a dpkg error on a glob.
set -euo pipefail
src=${1:-.debs}
prefix=${2:-/tmp/deps}
shopt -s nullglob
debs=("$src"/*.deb)
if [ ${#debs[@]} -eq 0 ]; then
  echo "unpack-debs: no .deb files in $src" >&2
  exit 1
fi
mkdir -p "$prefix"
for f in "${debs[@]}"; do dpkg -x "$f" "$prefix"; done
lib=$prefix/usr/lib/x86_64-linux-gnu
echo "export CMAKE_PREFIX_PATH=$prefix/usr\${CMAKE_PREFIX_PATH:+:\$CMAKE_PREFIX_PATH}"
echo "export LD_LIBRARY_PATH=$lib:$lib/openblas-pthread\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
echo "export DEPS_CMAKE_FLAGS='-DBoost_NO_SYSTEM_PATHS=ON -DBLA_VENDOR=OpenBLAS -DCMAKE_LIBRARY_PATH=$lib/openblas-pthread'"
