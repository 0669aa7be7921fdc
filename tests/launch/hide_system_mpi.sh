#!/bin/bash
# Runs CMD with Debian 12's Open MPI, PMIx and GoogleTest hidden, as on a GPU machine that lacks
# them: inside a private mount namespace, empty folders and /dev/null are bound over their
# files, and the hiding is checked before CMD runs. For gpu_check_dry_run_test.sh:
#   unshare -m bash hide_system_mpi.sh CMD...
set -euo pipefail
mount --make-rprivate /
empty=$(mktemp -d /tmp/moe-empty.XXXXXX)
trap 'rmdir "$empty"' EXIT  # the binds end with this namespace; the folder stays unless removed
lib=/usr/lib/x86_64-linux-gnu
for d in $lib/openmpi $lib/pmix2 /usr/share/openmpi /usr/share/pmix /etc/openmpi \
  /usr/include/gtest /usr/include/gmock /usr/src/googletest $lib/cmake/GTest; do
  [ -d "$d" ] && mount --bind "$empty" "$d"
done
# The launcher, the wrappers (mpirun, mpicxx ... all lead to these two), and the libraries.
for f in /usr/bin/orterun /usr/bin/orted /usr/bin/opal_wrapper /usr/bin/ompi_info \
  $lib/libgtest.a $lib/libgtest_main.a $lib/libgmock.a $lib/libgmock_main.a \
  $(realpath -q $lib/libmpi.so.40 $lib/libopen-pal.so.40 $lib/libopen-rte.so.40 | sort -u); do
  [ -e "$f" ] && mount --bind /dev/null "$f"
done
if mpirun --version > /dev/null 2>&1 || mpicxx --version > /dev/null 2>&1 ||
  [ -e /usr/include/gtest/gtest.h ]; then
  echo "hide_system_mpi: the system's MPI or GoogleTest is still usable" >&2
  exit 1
fi
"$@"
