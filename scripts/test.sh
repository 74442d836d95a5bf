#!/usr/bin/env bash
# Installs the test needs (scripts/setup.sh --test) and runs every test: the lit suite, then
# pytest (both always run), with the tools of the project's virtual environment.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test || exit 1
venv="$(cd "${BNNMLIR_VENV:-.venv}" && pwd)"
export PATH="$venv/bin:$PATH"
export HYPOTHESIS_PROFILE="${HYPOTHESIS_PROFILE:-ci}"
status=0
lit -sv test/ || status=1
python -m pytest -q -p no:cacheprovider -n "${BNNMLIR_TEST_WORKERS:-2}" --dist loadfile --durations=25 test/python || status=1
exit $status
