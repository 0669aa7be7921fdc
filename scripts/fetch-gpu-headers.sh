#!/usr/bin/env bash
# Fetches the GPU headers Debian does not package, from PyPI wheels (pinned), into
# ${GPU_DEPS_DIR:-.deps}:
#   cutlass/include         CUTLASS 4.2 (nvidia-cutlass: cutlass_library/source/include), for the
#                           Hopper grouped expert GEMM;
#   cudnn_frontend/include  cudnn-frontend (nvidia-cudnn-frontend: include/), for fused attention;
#   cudnn/include           cuDNN 9's headers (nvidia-cudnn-cu13: nvidia/cudnn/include). The
#                           library itself is loaded at run time (dlopen), so nothing links it.
#   nccl-2.18/include       NCCL 2.18.1's headers (nvidia-nccl-cu12: nvidia/nccl/include), the
#                           oldest NCCL supported: the build compiles the NCCL communicator
#                           against them too (cmake/nccl_compat.cmake). A 210 MB download
#                           (the wheel holds the library), about 10 s where PyPI is near.
# CMake finds these folders by themselves (cmake/gpu_headers.cmake). Quick when they are there.
# Only headers are kept; the wheels are deleted. Without pip or PyPI it says so and exits 0: the
# CUDA build then compiles without the CUTLASS and cuDNN paths and the configure prints that.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=${GPU_DEPS_DIR:-.deps}
python=${PYTHON:-python3}
# name==version  folder-in-wheel  destination
wheels=(
  "nvidia-cutlass==4.2.0.0 cutlass_library/source/include cutlass/include"
  "nvidia-cudnn-frontend==1.32.0 include cudnn_frontend/include"
  "nvidia-cudnn-cu13==9.28.1.4 nvidia/cudnn/include cudnn/include"
  "nvidia-nccl-cu12==2.18.1 nvidia/nccl/include nccl-2.18/include"
)
mkdir -p "$dest"
for w in "${wheels[@]}"; do
  read -r spec inner out <<< "$w"
  if [ -f "$dest/$out/.version" ] && [ "$(cat "$dest/$out/.version")" = "$spec" ]; then continue; fi
  tmp=$(mktemp -d)
  if ! "$python" -m pip download -q --no-deps --only-binary=:all: -d "$tmp" "$spec" >&2; then
    echo "fetch-gpu-headers: could not download $spec (no pip or no PyPI): building without it" >&2
    rm -rf "$tmp"
    continue
  fi
  rm -rf "${dest:?}/$out"
  mkdir -p "$dest/$out"
  "$python" - "$tmp"/*.whl "$inner" "$dest/$out" <<'EOF'
import os, sys, zipfile
whl, inner, out = sys.argv[1], sys.argv[2].rstrip("/") + "/", sys.argv[3]
n = 0
with zipfile.ZipFile(whl) as z:
    for m in z.infolist():
        if m.is_dir() or not m.filename.startswith(inner):
            continue
        rel = m.filename[len(inner):]
        if not rel.endswith((".h", ".hpp", ".inl", ".cuh")):
            continue
        path = os.path.join(out, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with z.open(m) as src, open(path, "wb") as dst:
            dst.write(src.read())
        n += 1
if n == 0:
    sys.exit(f"fetch-gpu-headers: no headers under {inner} in {whl}")
print(f"fetch-gpu-headers: {n} headers into {out}", file=sys.stderr)
EOF
  echo "$spec" > "$dest/$out/.version"
  rm -rf "$tmp"
done
