#!/usr/bin/env bash
# Installs everything bnnmlir needs on a fresh Debian 12 machine (run as root), then the package.
#   scripts/setup.sh          system tools + bnnmlir with PyTorch
#   scripts/setup.sh --test   the same plus the test tools (lit, filecheck, pytest, hypothesis)
set -euo pipefail
cd "$(dirname "$0")/.."

extras="torch"
[[ "${1:-}" == "--test" ]] && extras="test"

# Cross toolchain and emulator for aarch64, llvm-mca (llvm), upstream MLIR tools (mlir-22-tools).
packages=(qemu-user gcc-aarch64-linux-gnu libc6-dev-arm64-cross llvm mlir-22-tools)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

python3 -m pip install -q --disable-pip-version-check "torch==2.13.0"
python3 -m pip install -q --disable-pip-version-check -e ".[${extras}]"
