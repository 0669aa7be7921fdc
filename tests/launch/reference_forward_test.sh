#!/usr/bin/env bash
# docs/model.md, checked end to end: train a tiny model with every transformer option of the
# MSSP paper on (RoPE, QK-norm, MoE every 2 blocks with dense MLPs between, expert width as a
# ratio of N), export it, and compare `moe eval` with scripts/reference_forward.py (NumPy, an
# independent implementation of the page) on the same windows, with each activation (exact
# GELU, tanh GELU, SwiGLU); then the same for the default model (learned positions, every block
# MoE). Skipped (77) without NumPy.
#   reference_forward_test.sh <moe binary> <source dir>
set -euo pipefail
moe=$(realpath "$1")
src=$(realpath "$2")
python3 -c "import numpy, tomllib" 2>/dev/null || { echo "SKIP: python3 with numpy and tomllib needed"; exit 77; }
work=$(mktemp -d /tmp/moe-reference-forward-test.XXXXXX)
trap '[ -n "${KEEP:-}" ] || rm -rf "$work"' EXIT
source "$src/scripts/env.sh"
fail() { echo "FAIL: $*"; exit 1; }

# 4 windows of T = 16 (+1) tokens in an llm.c shard, vocabulary 64.
python3 - "$work/tokens.bin" <<'PY'
import random, struct, sys
random.seed(7)
toks = [random.randrange(64) for _ in range(4 * 16 + 1)]
head = [20240520, 1, len(toks)] + [0] * 253
open(sys.argv[1], "wb").write(struct.pack("<256i", *head) + struct.pack(f"<{len(toks)}H", *toks))
PY

check_variant() {  # name, then --set overrides
  local name=$1; shift
  local dir="$work/$name"
  cat "$src/tests/fixtures/tiny_moe.toml" - > "$work/$name.toml" <<TOML
[run]
dir = "$dir"
[optim]
warmup = 1
[train]
steps = 6
batch = 4
log_every = 3
[parallel]
ep = 1
TOML
  # A random unembedding (the paper presets start it at zero): logits that show every difference.
  "$moe" train --config "$work/$name.toml" --set parameterization.overrides.unembed.zero_init=false \
    --set parameterization.groups.unembed.init_std=0.5 "$@" > "$work/$name.train.log" 2>&1 \
    || { cat "$work/$name.train.log"; fail "$name: train"; }
  "$moe" export --checkpoint "$dir" --out "$work/$name.safetensors" > /dev/null \
    || fail "$name: export"
  local ev ref
  ev=$("$moe" eval --checkpoint "$dir" --set data.kind=llmc --set data.path="$work/tokens.bin" \
         --set train.batch=4 --batches 1 --out "$work/$name.eval.json" 2>&1) || { echo "$ev"; fail "$name: eval"; }
  ref=$(python3 "$src/scripts/reference_forward.py" "$work/$name.safetensors" "$work/tokens.bin") \
    || fail "$name: reference_forward.py"
  python3 - "$name" "$work/$name.eval.json" "$ref" <<'PY' || fail "$name: losses differ"
import re, sys
name, ev, ref = sys.argv[1:]
a = float(re.search(r'"(?:ce|loss)"\s*:\s*([-0-9.eE+]+)', open(ev).read()).group(1))
b = float(re.search(r"ce ([-0-9.eE+]+)", ref).group(1))
print(f"{name}: moe eval ce {a:.8f}, reference_forward.py ce {b:.8f}, diff {abs(a - b):.2e}")
# f32 against f64 summation: ~1e-7 apart. The other GELU form would move this model's loss by
# 2.5e-5 (measured by hand on the "paper" variant), so 1e-6 tells the forms apart.
sys.exit(0 if abs(a - b) < 1e-6 else 1)
PY
}

paper=(--set model.depth=4 --set parameterization.base.depth=4 --set model.position=rope
  --set model.rope_base=100 --set model.qk_norm=true --set moe.stride=2 --set model.mlp_width=24
  --set moe.expert_ratio=0.75)
check_variant paper "${paper[@]}"   # the exact GELU in experts and dense MLPs
check_variant paper_gelu_tanh "${paper[@]}" --set moe.activation=gelu_tanh
check_variant paper_swiglu "${paper[@]}" --set moe.activation=swiglu   # dense MLPs: tanh GELU
check_variant default
echo "PASS"
