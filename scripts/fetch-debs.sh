#!/bin/bash
# Downloads the Debian 12 packages that the GPU machine may lack into DIR (default .debs), for the
# device run's `carry` (add /.debs/ to .git/info/exclude; scripts/gpu_check.sh unpacks them):
#   DIR/      TOML++, CLI11, Boost.Serialization 1.74, OpenBLAS, GoogleTest (static, headers):
#             unpacked always (what the machine has of them is not known);
#   DIR/mpi/  Open MPI 4.1 with PMIx, hwloc and libevent: unpacked only where the machine has no
#             working mpirun and mpicxx of its own, so that two MPIs never mix in one process.
# About 27 MB together (the device run carries 64 MiB in all, with .deps's 31 MB).
# The project's version of /work/shared/gpu/fetch-debs.sh, with GoogleTest and Open MPI added.
#   bash scripts/fetch-debs.sh [DIR]     or   bash scripts/fetch-debs.sh --list base|mpi
set -euo pipefail
base=(libtomlplusplus-dev libtomlplusplus3 libcli11-dev libboost1.74-dev libboost-serialization1.74-dev
      libboost-serialization1.74.0 libopenblas-dev libopenblas-pthread-dev libopenblas0-pthread
      libgtest-dev)
# libmpi.so.40 and its launcher need libopen-pal/rte (libopenmpi3), PMIx, hwloc, libevent core
# and pthreads, and hwloc libudev (checked with ldd on libmpi, orted and the PMIx plugin).
mpi=(openmpi-bin openmpi-common libopenmpi3 libopenmpi-dev libpmix2 libhwloc15 libevent-core-2.1-7
     libevent-pthreads-2.1-7 libudev1)
if [ "${1:-}" = --list ]; then
  case "${2:-}" in
    base) printf '%s\n' "${base[@]}" ;;
    mpi) printf '%s\n' "${mpi[@]}" ;;
    *) echo "fetch-debs: --list base|mpi" >&2; exit 2 ;;
  esac
  exit 0
fi
dir=${1:-.debs}
mkdir -p "$dir/mpi"
get() {
  (cd "$1" && shift && apt-get download "$@" 2>&1 | grep -v '^W: Download is performed unsandboxed' || true)
}
get "$dir" "${base[@]}"
get "$dir/mpi" "${mpi[@]}"
n=$(ls "$dir"/*.deb "$dir"/mpi/*.deb 2>/dev/null | wc -l)
want=$((${#base[@]} + ${#mpi[@]}))
[ "$n" -ge "$want" ] || { echo "fetch-debs: $n of $want packages downloaded into $dir" >&2; exit 1; }
echo "fetch-debs: $n packages, $(du -sh "$dir" | cut -f1) in $dir"
