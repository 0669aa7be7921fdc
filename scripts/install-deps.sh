#!/usr/bin/env bash
# Installs the build and test dependencies from Debian's packages (Debian 12, as root).
# Quick when everything is already there.
set -euo pipefail
pkgs=(
  build-essential cmake ninja-build pkg-config
  openmpi-bin libopenmpi-dev libpmix-dev
  libboost-serialization-dev libtomlplusplus-dev libgtest-dev libopenblas-dev libcli11-dev
  python3 python3-matplotlib python3-numpy python3-pip
  slurmctld slurmd slurm-client munge
  iproute2 util-linux
  clang libclang-rt-14-dev
)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO=sudo
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -q
  $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
# The CUDA build's CUTLASS and cuDNN paths need headers from PyPI wheels (Debian has none).
if command -v nvcc >/dev/null || [ -x /usr/local/cuda/bin/nvcc ]; then
  bash "$(dirname "$0")/fetch-gpu-headers.sh"
fi
