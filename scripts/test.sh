#!/usr/bin/env bash
# Installs the test needs and runs every test: the lit suite, then pytest (both always run).
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test || exit 1
export HYPOTHESIS_PROFILE="${HYPOTHESIS_PROFILE:-ci}"
status=0
lit -sv test/ || status=1
python3 -m pytest -q -p no:cacheprovider test/python || status=1
exit $status
