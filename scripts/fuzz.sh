#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz: the config parser, the llm.c shard reader, the
# checkpoint manifest reader; clang, ASan + UBSan) into build-fuzz/ (or $FUZZ_BUILD_DIR), replays
# the committed crash inputs, then fuzzes each target for $FUZZ_SECONDS (default 60) from the
# committed seed corpora. New corpus entries go to a scratch directory, not into the tree; a
# crash leaves its input in <build>/artifacts/<target>/ and fails the script: fix the bug, then
# commit the input under tests/fuzz/regressions/<target>/ (the normal build replays it too,
# tests/unit/fuzz_regression_test.cpp). Prints the executions per target.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${FUZZ_BUILD_DIR:-build-fuzz}
seconds=${FUZZ_SECONDS:-60}
cxx=${FUZZ_CXX:-$(command -v clang++ || command -v clang++-14 || true)}
if [ -z "$cxx" ]; then
  echo "fuzz.sh: clang++ not found (apt-get install clang libclang-rt-14-dev)" >&2
  exit 1
fi
cmake -S tests/fuzz -B "$build" -G Ninja -DCMAKE_CXX_COMPILER="$cxx" >/dev/null
cmake --build "$build" -j "${JOBS:-$(nproc)}"

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
declare -A seeds=(
  [config]="tests/fuzz/corpus/config tests/inputs/configs configs"
  [shard]="tests/fuzz/corpus/shard tests/inputs/data"
  [manifest]="tests/fuzz/corpus/manifest"
)
status=0
summary=()
for t in config shard manifest; do
  bin="$build/fuzz_$t"
  art="$build/artifacts/$t"
  mkdir -p "$art" "$scratch/$t"
  regressions=(tests/fuzz/regressions/"$t"/*)
  if [ -e "${regressions[0]}" ]; then
    "$bin" "${regressions[@]}" >"$scratch/$t.replay.log" 2>&1 ||
      { echo "fuzz_$t: a committed regression input fails again:"; tail -30 "$scratch/$t.replay.log"; status=1; }
  fi
  # -timeout: one input taking 10 s is a hang; -rss_limit_mb: a runaway allocation is a finding.
  # shellcheck disable=SC2086
  if "$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
      -artifact_prefix="$art/" "$scratch/$t" ${seeds[$t]} >"$scratch/$t.log" 2>&1; then
    result=ok
  else
    result="FAILED (input in $art/)"
    status=1
    grep -E "ERROR|SUMMARY|invariant|Assertion|runtime error" "$scratch/$t.log" | head -5 || true
  fi
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$scratch/$t.log" | tail -1)
  cov=$(grep -oE 'cov: [0-9]+' "$scratch/$t.log" | tail -1 || true)
  summary+=("fuzz_$t: ${execs:-?} executions in ${seconds} s, ${cov:-cov: ?}, $(ls "$scratch/$t" | wc -l) new corpus inputs: $result")
done
printf '%s\n' "${summary[@]}"
exit $status
