#!/usr/bin/env bash
# Installs Larq Compute Engine, the optional peer of `bnnmlir bench --peer lce`, into its own
# virtual environment (.venv-lce): LCE needs TensorFlow, which must not share an environment
# with PyTorch. Nothing else uses it; the tests never need it. larq needs Keras 2 (tf-keras):
# run it with TF_USE_LEGACY_KERAS=1 (bnnmlir/bench/lce_runner.py sets it).
#   scripts/setup-lce.sh      creates .venv-lce (Python 3.11) with LCE 0.16, TensorFlow 2.16, larq-zoo
# Environment: BNNMLIR_PYTHON (the interpreter for the venv; default /usr/bin/python3),
# BNNMLIR_LCE_VENV (default .venv-lce).
set -euo pipefail
cd "$(dirname "$0")/.."

python="${BNNMLIR_PYTHON:-}"
if [[ -z "$python" ]]; then
  if [[ -x /usr/bin/python3 ]]; then python=/usr/bin/python3; else python=python3; fi
fi
venv="${BNNMLIR_LCE_VENV:-.venv-lce}"

[[ -x "$venv/bin/python" ]] || "$python" -m venv "$venv"
"$venv/bin/python" -m pip install -q --disable-pip-version-check \
  "larq-compute-engine==0.16.0" "tensorflow-cpu==2.16.2" "tf-keras==2.16.0" larq-zoo
TF_USE_LEGACY_KERAS=1 "$venv/bin/python" -c "import larq_compute_engine as lce, larq_zoo; print('LCE', lce.__version__, 'ready in', '$venv')"
