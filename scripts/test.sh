#!/usr/bin/env bash
# Installs the test needs and runs every test: the lit suite, then pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
export HYPOTHESIS_PROFILE="${HYPOTHESIS_PROFILE:-ci}"
lit -sv test/
python3 -m pytest -q -p no:cacheprovider test/python
