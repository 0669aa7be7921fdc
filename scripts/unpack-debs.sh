#!/bin/bash
# On the GPU machine: unpacks the carried .debs of SRC (not its subfolders) into a prefix (never
# into /) and prints the variables that make CMake and the loader find them. Use:
#   eval "$(bash scripts/unpack-debs.sh .debs [PREFIX])"
# A copy of /work/shared/gpu/unpack-debs.sh (../shared does not travel to the GPU machine) with
# two changes: a folder without .debs is an error with one line, not a dpkg error on a glob; and
# a carried Open MPI (scripts/fetch-debs.sh's mpi/ folder) is made to run from the prefix:
# the links that Debian's alternatives would make (mpirun, mpicxx, ...), and the variables
# that relocate Open MPI (OPAL_PREFIX) and its PMIx, whose help files and plugins are otherwise
# looked for under /usr/lib/x86_64-linux-gnu/pmix2 (checked with the system's copy hidden).
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
# Carried Boost and OpenBLAS win over the system's (flags for the configure).
flags=()
[ -d "$prefix/usr/include/boost" ] && flags+=(-DBoost_NO_SYSTEM_PATHS=ON)
[ -d "$lib/openblas-pthread" ] && flags+=(-DBLA_VENDOR=OpenBLAS -DCMAKE_LIBRARY_PATH=$lib/openblas-pthread)
[ ${#flags[@]} -eq 0 ] || echo "export DEPS_CMAKE_FLAGS='${flags[*]}'"
if [ -x "$prefix/usr/bin/orterun" ]; then
  for alt in "$prefix"/usr/bin/*.openmpi; do
    [ -e "${alt%.openmpi}" ] || ln -s "$(basename "$alt")" "${alt%.openmpi}"
  done
  pmix=$lib/pmix2
  echo "export PATH=$prefix/usr/bin:\$PATH OPAL_PREFIX=$prefix/usr"
  echo "export PMIX_PREFIX=$pmix PMIX_DATADIR=$pmix/share PMIX_PKGDATADIR=$pmix/share/pmix PMIX_MCA_mca_base_component_path=$pmix/lib/pmix"
fi
