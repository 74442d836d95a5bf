"""``bnnmlir-opt`` on malformed input: never a hang, a crash, a traceback or an internal error.

The inputs are mutated copies of the project's own ``.mlir`` files (see ``fuzz_opt_driver.py``),
run in one persistent worker with a time limit each. The default run is 1,000 inputs from a fixed
seed, so CI is reproducible; ``BNNMLIR_FUZZ_INPUTS`` runs more and ``BNNMLIR_FUZZ_SEED`` picks
other inputs. A failing input is saved in ``test/fuzz/regressions/`` (and the test fails); the
saved inputs, with those of the defects fixed so far, are run every time.
"""

import os

import pytest
from fuzz_opt_driver import make_cases, regression_cases, run_cases, save_regression

FUZZ_INPUTS = int(os.environ.get("BNNMLIR_FUZZ_INPUTS", "1000"))
FUZZ_SEED = int(os.environ.get("BNNMLIR_FUZZ_SEED", "0"))
TIME_LIMIT = float(os.environ.get("BNNMLIR_FUZZ_TIME_LIMIT", "10"))


def _report(failures) -> str:
    return "\n\n".join(
        f"{f.case.name} {' '.join(f.case.args)}: {f.problem}\n{f.detail[-1500:]}" for f in failures
    )


def test_saved_regressions_run_cleanly():
    cases = regression_cases()
    names = {case.name for case in cases}
    # The inputs of the defects fixed when the fuzzer was introduced stay in the set.
    assert {"unterminated-string.mlir", "nested-modules.mlir", "splat-constant.mlir",
            "bconv2d-zero-output-channels.mlir", "bconv2d-empty-kernel.mlir",
            "pipeline-empty-pass-names.mlir", "target-unterminated-option.mlir"} <= names
    failures = run_cases(cases, TIME_LIMIT)
    assert not failures, _report(failures)


def test_mutated_inputs_run_cleanly():
    cases = list(make_cases(FUZZ_INPUTS, FUZZ_SEED))
    assert len(cases) == FUZZ_INPUTS
    assert len({case.text for case in cases}) > FUZZ_INPUTS * 0.9  # really different inputs
    assert sum(1 for case in cases if case.args) > FUZZ_INPUTS // 4  # with RUN-line options
    failures = run_cases(cases, TIME_LIMIT)
    saved = [save_regression(f.case) for f in failures]
    assert not failures, f"saved as {', '.join(map(str, saved))}\n" + _report(failures)


# A stand-in worker for testing the harness: "hang" sleeps, "crash" dies by SIGSEGV, "raise"
# reports an exception that escaped main(), anything else is a clean run.
_FAKE_WORKER = """
import json, os, signal, sys, time
print("ready", flush=True)
for line in sys.stdin:
    text = json.loads(line)["text"]
    if text == "hang":
        time.sleep(60)
    if text == "crash":
        os.kill(os.getpid(), signal.SIGSEGV)
    reply = {"status": 0, "stdout": "", "stderr": "", "traceback": False,
             "uncaught": "ZeroDivisionError" if text == "raise" else ""}
    print(json.dumps(reply), flush=True)
"""


def test_the_harness_detects_hangs_crashes_and_exceptions():
    import sys

    from fuzz_opt_driver import Case, Worker

    with Worker(timeout=1.0, command=[sys.executable, "-c", _FAKE_WORKER]) as worker:
        problems = [worker.run(Case(t, t, ())).problem for t in ("hang", "ok", "crash", "raise", "ok")]
    assert "hang" in problems[0] and "worker died" in problems[2]
    assert problems[3] == "exception escaped main()"
    assert problems[1] is None and problems[4] is None  # restarted after the hang and the crash


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("unterminated-string.mlir", "input.mlir:3:8"),
        ("nested-modules.mlir", "nesting too deep"),
        ("bconv2d-zero-output-channels.mlir", "at least one output channel"),
        ("pipeline-empty-pass-names.mlir", "-p/--passes ',,': column 1"),
    ],
)
def test_regression_inputs_are_diagnosed(name, message):
    """Saved inputs give their diagnostic (exit 1), not merely no crash."""
    from fuzz_opt_driver import Worker

    (case,) = [c for c in regression_cases() if c.name == name]
    with Worker(TIME_LIMIT) as worker:
        reply = worker.request(case)
    assert reply["status"] == 1 and message in reply["stderr"], reply["stderr"]
