#!/usr/bin/env bash
# Sets up bnnmlir on a fresh Debian 12 machine (run as root): the system tools, then a virtual
# environment in .venv with the package and PyTorch's CPU-only build. Debian's Python refuses
# global pip installs (PEP 668), so nothing is installed outside .venv.
#   scripts/setup.sh          system tools + .venv with bnnmlir and PyTorch
#   scripts/setup.sh --test   the same plus the test tools (lit, filecheck, pytest, hypothesis)
# Afterwards run the tools from .venv/bin (or `. .venv/bin/activate`).
# Environment: BNNMLIR_PYTHON (the interpreter for the venv; default Debian's /usr/bin/python3),
# BNNMLIR_VENV (default .venv), BNNMLIR_TORCH_INDEX (PyTorch's CPU wheel index).
set -euo pipefail
cd "$(dirname "$0")/.."

extras="torch"
[[ "${1:-}" == "--test" ]] && extras="test"

python="${BNNMLIR_PYTHON:-}"
if [[ -z "$python" ]]; then
  if [[ -x /usr/bin/python3 ]]; then python=/usr/bin/python3; else python=python3; fi
fi
venv="${BNNMLIR_VENV:-.venv}"

# The host C and C++ compilers (gcc, g++: the runtime, sanitizer builds, the model.h check),
# the cross toolchain and emulator for aarch64, llvm-mca (llvm; llvm-19 for its Neoverse N1 model),
# upstream MLIR tools (mlir-22-tools),
# and venv support for Debian's Python (python3-venv brings ensurepip).
packages=(gcc g++ qemu-user gcc-aarch64-linux-gnu libc6-dev-arm64-cross llvm llvm-19 mlir-22-tools
          dataset-fashion-mnist)
if ! command -v "$python" >/dev/null 2>&1; then
  packages+=(python3 python3-venv)
  python=/usr/bin/python3
elif [[ ! -x "$venv/bin/python" ]] && ! "$python" -c "import ensurepip, venv" 2>/dev/null; then
  packages+=(python3-venv)
fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

[[ -x "$venv/bin/python" ]] || "$python" -m venv "$venv"
pip=("$venv/bin/python" -m pip install -q --disable-pip-version-check)

# PyTorch's CPU-only wheels: on an ordinary index torch==2.13.0 is the CUDA build (several GB).
# The CPU index is used when it answers; a machine without it (a local mirror) uses its own index.
torch_index="${BNNMLIR_TORCH_INDEX:-https://download.pytorch.org/whl/cpu}"
if "$venv/bin/python" - "$torch_index" <<'PY' 2>/dev/null
import sys, urllib.request
urllib.request.urlopen(sys.argv[1] + "/torch/", timeout=5)
PY
then
  "${pip[@]}" "torch==2.13.0" --extra-index-url "$torch_index"
else
  "${pip[@]}" "torch==2.13.0"
fi
"${pip[@]}" -e ".[${extras}]"
"$venv/bin/python" -c "import sys, torch, bnnmlir; print('bnnmlir ready in', sys.prefix, '(torch', torch.__version__ + ')')"
