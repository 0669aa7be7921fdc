#!/usr/bin/env bash
# scripts/gpu_check.sh is tried here before a GPU machine is spent on it: its argument errors
# exit 2 with one line, scripts/unpack-debs.sh unpacks a .deb into a prefix (a tiny one built
# here) and names it in the exported variables, and the --dry-run (environment, unpacking,
# the CUDA configure) passes and writes summary.json and env.txt. Skips (77) without nvcc.
#   gpu_check_dry_run_test.sh <source dir>      (ctest; label "bench")
set -euo pipefail
src=$(realpath "$1")
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

# The unpacking, on a .deb made here.
if command -v dpkg-deb > /dev/null; then
  mkdir -p "$work/pkg/DEBIAN" "$work/pkg/usr/lib/x86_64-linux-gnu" "$work/debs"
  printf 'Package: moe-fake\nVersion: 1\nArchitecture: all\nMaintainer: test\nDescription: test\n' > "$work/pkg/DEBIAN/control"
  echo fake > "$work/pkg/usr/lib/x86_64-linux-gnu/libmoefake.txt"
  dpkg-deb --build "$work/pkg" "$work/debs/fake.deb" > /dev/null
  vars=$(bash "$src/scripts/unpack-debs.sh" "$work/debs" "$work/prefix")
  [ -f "$work/prefix/usr/lib/x86_64-linux-gnu/libmoefake.txt" ] || fail "the .deb was not unpacked into the prefix"
  echo "$vars" | grep -q "CMAKE_PREFIX_PATH=$work/prefix/usr" || { echo "$vars"; fail "prefix not exported"; }
  if bash "$src/scripts/unpack-debs.sh" "$work/pkg" "$work/p2" 2> "$work/e.txt"; then fail "a folder without .debs passed"; fi
  grep -q "no .deb files" "$work/e.txt" || { cat "$work/e.txt"; fail "no one-line error"; }
fi

if ! command -v nvcc > /dev/null && [ ! -x /usr/local/cuda/bin/nvcc ]; then
  echo "no nvcc: the dry run's CUDA configure cannot be tried here"
  exit 77
fi
DEBS_DIR="$work/none" bash "$check" --dry-run "$work/out" > "$work/dry.txt" 2>&1 || { cat "$work/dry.txt"; fail "dry run exit $?"; }
grep -q "dry run: arguments, environment, unpacking and the CUDA configure passed" "$work/dry.txt" || { cat "$work/dry.txt"; fail "no dry-run verdict"; }
grep -q -- "--- nvidia-smi -L" "$work/out/env.txt" || fail "env.txt lacks the GPU line"
grep -q '"step": "configure", "rc": 0' "$work/out/summary.json" || { cat "$work/out/summary.json"; fail "summary.json"; }
python3 -c "import json,sys; json.load(open(sys.argv[1]))" "$work/out/summary.json" || fail "summary.json is not JSON"
echo "gpu_check dry run: OK"
