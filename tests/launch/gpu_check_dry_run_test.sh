#!/usr/bin/env bash
# scripts/gpu_check.sh is tried here before a GPU machine is spent on it: its argument errors
# exit 2 with one line; scripts/unpack-debs.sh unpacks a .deb into a prefix (a tiny one built
# here) and makes a carried Open MPI runnable from it; the --dry-run (environment, unpacking,
# the MPI launcher check, the CUDA configure) passes and writes summary.json and env.txt. Where
# this runs as root with mount namespaces (CI), the dry run runs with the system's Open MPI and
# GoogleTest hidden (tests/launch/hide_system_mpi.sh) and the copies that scripts/fetch-debs.sh
# would carry packed here from the installed packages' files: it must configure with them and
# start one and two MPI ranks from the carried prefix, as on a GPU machine that lacks both.
# Given test_cuda (a CUDA build), its output on this GPU-less machine goes through the check's
# summary (scripts/gtest_summary.py), which must name every skip and its reason.
# Skips (77) without nvcc.
#   gpu_check_dry_run_test.sh <source dir> [test_cuda]      (ctest; label "bench")
set -euo pipefail
src=$(realpath "$1")
test_cuda=${2:-}
work=$(mktemp -d /tmp/moe-gpu-check-test.XXXXXX)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
check=$src/scripts/gpu_check.sh

# Argument errors: exit 2 before anything else.
set +e
bash "$check" --dry-run --bogus "$work/o" > "$work/a.txt" 2>&1; rc=$?
[ $rc = 2 ] && grep -q "unknown option --bogus" "$work/a.txt" || { cat "$work/a.txt"; fail "bad option: rc $rc"; }
bash "$check" --dry-run "$work/o1" "$work/o2" > "$work/b.txt" 2>&1; rc=$?
[ $rc = 2 ] || { cat "$work/b.txt"; fail "two OUTDIRs: rc $rc"; }
env -u OUT bash "$check" --dry-run > "$work/c.txt" 2>&1; rc=$?
[ $rc = 2 ] && grep -q "give OUTDIR" "$work/c.txt" || { cat "$work/c.txt"; fail "no OUTDIR: rc $rc"; }
set -e

# pack ROOT DEB: ROOT (a file tree, as under /) as the package DEB.
pack() {
  mkdir -p "$1/DEBIAN" "$(dirname "$2")"
  printf 'Package: %s\nVersion: 1\nArchitecture: all\nMaintainer: test\nDescription: test\n' \
    "$(basename "$2" .deb)" > "$1/DEBIAN/control"
  dpkg-deb -Znone --build "$1" "$2" > /dev/null
}

# The unpacking, on .debs made here: a plain one, and one laid out like Debian's Open MPI.
if command -v dpkg-deb > /dev/null; then
  mkdir -p "$work/pkg/usr/lib/x86_64-linux-gnu" "$work/pkg-mpi/usr/bin"
  echo fake > "$work/pkg/usr/lib/x86_64-linux-gnu/libmoefake.txt"
  pack "$work/pkg" "$work/debs/moe-fake.deb"
  vars=$(bash "$src/scripts/unpack-debs.sh" "$work/debs" "$work/prefix")
  [ -f "$work/prefix/usr/lib/x86_64-linux-gnu/libmoefake.txt" ] || fail "the .deb was not unpacked into the prefix"
  echo "$vars" | grep -q "CMAKE_PREFIX_PATH=$work/prefix/usr" || { echo "$vars"; fail "prefix not exported"; }
  if bash "$src/scripts/unpack-debs.sh" "$work/pkg" "$work/p2" 2> "$work/e.txt"; then fail "a folder without .debs passed"; fi
  grep -q "no .deb files" "$work/e.txt" || { cat "$work/e.txt"; fail "no one-line error"; }
  printf '#!/bin/sh\n' > "$work/pkg-mpi/usr/bin/orterun"
  chmod +x "$work/pkg-mpi/usr/bin/orterun"
  ln -s orterun "$work/pkg-mpi/usr/bin/mpirun.openmpi"
  pack "$work/pkg-mpi" "$work/debs-mpi/moe-fake-mpi.deb"
  vars=$(bash "$src/scripts/unpack-debs.sh" "$work/debs-mpi" "$work/mpiprefix")
  [ -L "$work/mpiprefix/usr/bin/mpirun" ] || fail "no mpirun link beside mpirun.openmpi (Debian's alternatives)"
  echo "$vars" | grep -q "OPAL_PREFIX=$work/mpiprefix/usr" || { echo "$vars"; fail "Open MPI not relocated"; }
  echo "$vars" | grep -q "PMIX_MCA_mca_base_component_path=$work/mpiprefix/usr/lib/x86_64-linux-gnu/pmix2/lib/pmix" \
    || { echo "$vars"; fail "PMIx not relocated"; }
fi

if ! command -v nvcc > /dev/null && [ ! -x /usr/local/cuda/bin/nvcc ]; then
  echo "no nvcc: the dry run's CUDA configure cannot be tried here"
  exit 77
fi

# The dry run, with the system's MPI and GoogleTest hidden where that can be done.
carried=$work/carried
hide=()
why_not=""
if [ "$(id -u)" != 0 ]; then
  why_not="not root"
elif ! unshare -m true 2> /dev/null; then
  why_not="no mount namespaces"
elif ! command -v dpkg-deb > /dev/null; then
  why_not="no dpkg-deb"
else
  # What scripts/fetch-debs.sh carries, packed from the installed packages (CI may have no
  # network for apt-get download; the files are the same).
  for p in $(bash "$src/scripts/fetch-debs.sh" --list mpi) libgtest-dev; do
    dpkg -L "$p" > "$work/files" 2> /dev/null || { why_not="package $p is not installed"; break; }
    rm -rf "$work/root"
    mkdir -p "$work/root"
    while read -r f; do  # files and links, not folders
      if [ -L "$f" ] || [ -f "$f" ]; then echo "${f#/}"; fi
    done < "$work/files" | tar -C / --no-recursion -cf - -T - | tar -C "$work/root" -xf -
    if [ "$p" = libgtest-dev ]; then pack "$work/root" "$carried/$p.deb"; else pack "$work/root" "$carried/mpi/$p.deb"; fi
  done
  [ -n "$why_not" ] || hide=(unshare -m bash "$src/tests/launch/hide_system_mpi.sh")
fi
[ -z "$why_not" ] || echo "NOTE: the dry run uses the system's MPI and GoogleTest ($why_not)"
DEBS_DIR=$carried DEPS_PREFIX=$work/deps "${hide[@]}" bash "$check" --dry-run "$work/out" > "$work/dry.txt" 2>&1 \
  || { rc=$?; cat "$work/dry.txt"; fail "dry run exit $rc"; }
grep -q "dry run: arguments, environment, unpacking, MPI and the CUDA configure passed" "$work/dry.txt" || { cat "$work/dry.txt"; fail "no dry-run verdict"; }
grep -q -- "--- nvidia-smi -L" "$work/out/env.txt" || fail "env.txt lacks the GPU line"
python3 - "$work/out/summary.json" "${#hide[@]}" "$work/deps" << 'EOF' || { cat "$work/dry.txt"; fail "summary.json"; }
import json, sys
s = json.load(open(sys.argv[1]))
hidden, deps = sys.argv[2] != "0", sys.argv[3]
steps = {x["step"]: x["rc"] for x in s["steps"]}
assert steps.get("configure") == 0, steps
assert steps.get("mpi_singleton") == 0 and steps.get("mpi_np2") == 0, steps
p = s["paths"]
for key in ("GPU", "CUDA", "NCCL", "cuDNN", "MPI", "MPI launch", "build"):
    assert key in p, (key, p)
assert "CUDA backend ON" in p["build"], p["build"]
if hidden:  # everything MPI and GoogleTest came from the carried prefixes
    assert p["MPI"].startswith("carried Open MPI"), p["MPI"]
    assert "MPI " + deps + "-mpi/usr/bin/mpicxx" in p["build"], p["build"]
    assert "GoogleTest " + deps + "/usr/lib/x86_64-linux-gnu/cmake/GTest" in p["build"], p["build"]
EOF

# The summary of a test run on a machine without a GPU: every CUDA case skipped, and why.
if [ -n "$test_cuda" ]; then
  { echo "=== test_cuda (limit 60s): test_cuda"; "$test_cuda" --gtest_filter='CudaBackendTest.*:NcclTest.*' 2>&1 || true; } \
    > "$work/tests.log"
  python3 "$src/scripts/gtest_summary.py" --text "$work/tests.log" > "$work/summary.txt"
  grep -Eq '^test_cuda: 0 passed, 0 failed, [0-9]+ skipped$' "$work/summary.txt" || { cat "$work/summary.txt"; fail "test summary"; }
  grep -Eq '^  skipped [0-9]+: no CUDA device \(CudaBackendTest\.' "$work/summary.txt" || { cat "$work/summary.txt"; fail "skip reasons"; }
fi
if [ ${#hide[@]} -gt 0 ]; then
  echo "gpu_check dry run: OK (the system's MPI and GoogleTest hidden, the carried ones used)"
else
  echo "gpu_check dry run: OK"
fi
