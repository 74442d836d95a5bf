"""Fuzzing ``bnnmlir-opt`` with mutated copies of the project's own ``.mlir`` files.

:func:`make_cases` derives, from a seed, inputs that are the test files and examples with a few
random edits (line deletions, duplications and swaps, inserted punctuation and quotes, truncation
at a random byte, changed digits), each run without options and with the options of one of the
file's own ``RUN:`` lines. :class:`Worker` runs them in ONE persistent Python process that imports
bnnmlir once and calls :func:`bnnmlir.tools.bnnmlir_opt.main` in-process per input; the parent
enforces a wall-clock limit per input and restarts the worker after a timeout or a crash.

A run is a failure if it takes longer than the limit, kills the worker (a signal), raises out of
``main``, prints a Python traceback or reports an internal error. Failing inputs are saved in
``test/fuzz/regressions/`` with their options on the first line (``// FUZZ-ARGS: ...``) and are
run again by every test run.

``python fuzz_opt_driver.py --worker`` is the worker's entry point (it speaks JSON lines on
stdin/stdout).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import random
import re
import select
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
REGRESSIONS = ROOT / "test" / "fuzz" / "regressions"
ARGS_PREFIX = "// FUZZ-ARGS:"
PUNCTUATION = "\"'{}<>()[]%@^:,="
MEMORY_LIMIT = 4 << 30


@dataclass(frozen=True)
class Case:
    """One input: the text given to ``bnnmlir-opt`` and its options (without the file name)."""

    name: str
    text: str
    args: tuple[str, ...]


@dataclass(frozen=True)
class Outcome:
    case: Case
    problem: str | None  # None: a clean run (exit 0, or 1 with a diagnostic)
    detail: str = ""


def corpus_files() -> list[Path]:
    """Every ``.mlir`` file of the test suite (regressions aside) and the examples."""
    files = [p for p in (ROOT / "test").rglob("*.mlir") if REGRESSIONS not in p.parents]
    files += (ROOT / "bnnmlir" / "examples").glob("*.mlir")
    return sorted(files)


_RUN = re.compile(r"//\s*RUN:.*?bnnmlir-opt\s+%s\b([^|]*)")
_REDIRECTION = re.compile(r"^\d?>")


def run_line_args(text: str) -> list[tuple[str, ...]]:
    """The options of each ``RUN:`` line that runs ``bnnmlir-opt %s`` (redirections dropped)."""
    found = []
    for match in _RUN.finditer(text):
        try:
            words = shlex.split(match.group(1).replace("%}", ""))
        except ValueError:
            continue
        args = tuple(w for w in words if not _REDIRECTION.match(w))
        if args not in found:
            found.append(args)
    return found


def mutate(text: str, rng: random.Random) -> str:
    """One to three random edits of ``text``."""
    for _ in range(rng.randint(1, 3)):
        lines = text.split("\n")
        kind = rng.randrange(6)
        i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
        if kind == 0:
            del lines[i]
        elif kind == 1:
            lines.insert(i, lines[j])
        elif kind == 2:
            lines[i], lines[j] = lines[j], lines[i]
        elif kind == 3:
            pos = rng.randrange(len(text) + 1)
            text = text[:pos] + rng.choice(PUNCTUATION) + text[pos:]
            continue
        elif kind == 4:
            data = text.encode()
            text = data[: rng.randrange(len(data) + 1)].decode(errors="ignore")
            continue
        else:
            digits = [m.start() for m in re.finditer(r"\d", text)]
            if digits:
                pos = rng.choice(digits)
                text = text[:pos] + rng.choice("0123456789") + text[pos + 1 :]
            continue
        text = "\n".join(lines)
    return text


def make_cases(count: int, seed: int) -> Iterator[Case]:
    """``count`` mutated inputs, the same for the same seed: files in turn, options alternating
    between none and one of the file's ``RUN:`` lines."""
    rng = random.Random(seed)
    sources = []
    for path in corpus_files():
        text = path.read_text(encoding="utf-8")
        sources.append((path.relative_to(ROOT).as_posix(), text, run_line_args(text)))
    for index in range(count):
        name, text, runs = sources[index % len(sources)]
        args = rng.choice(runs) if runs and index % 2 else ()
        yield Case(f"{name}#{index}", mutate(text, rng), args)


def regression_cases() -> list[Case]:
    """The saved inputs: each file as it is, with the options of its ``FUZZ-ARGS`` line."""
    cases = []
    for path in sorted(REGRESSIONS.glob("*.mlir")):
        text = path.read_text(encoding="utf-8")
        first = text.split("\n", 1)[0]
        args = shlex.split(first[len(ARGS_PREFIX) :]) if first.startswith(ARGS_PREFIX) else []
        cases.append(Case(path.name, text, tuple(args)))
    return cases


def save_regression(case: Case) -> Path:
    """Write a failing input to the regression directory (named by its content)."""
    digest = hashlib.sha256(f"{case.args}\0{case.text}".encode()).hexdigest()[:12]
    path = REGRESSIONS / f"fuzz-{digest}.mlir"
    REGRESSIONS.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{ARGS_PREFIX} {shlex.join(case.args)}\n{case.text}", encoding="utf-8")
    return path


class Worker:
    """The persistent worker process, restarted after a timeout or a crash."""

    def __init__(self, timeout: float = 10.0, command: list[str] | None = None):
        self.timeout = timeout
        self.command = command or [sys.executable, __file__, "--worker"]
        self.proc: subprocess.Popen[bytes] | None = None

    def _start(self) -> subprocess.Popen[bytes]:
        if self.proc is None or self.proc.poll() is not None:
            env = {k: v for k, v in os.environ.items() if k != "BNNMLIR_TRACEBACK"}
            self.proc = subprocess.Popen(
                self.command,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                env=env,
            )
            if self._wait_line(120.0) != b"ready\n":  # bnnmlir is imported
                raise RuntimeError("the fuzz worker did not start")
        return self.proc

    def _wait_line(self, timeout: float) -> bytes | None:
        assert self.proc is not None and self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        return self.proc.stdout.readline() if ready else None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def request(self, case: Case) -> dict:
        """The worker's reply to ``case``, or ``{"problem": ...}`` if it hung or died."""
        proc = self._start()
        assert proc.stdin is not None
        proc.stdin.write(json.dumps({"text": case.text, "args": case.args}).encode() + b"\n")
        proc.stdin.flush()
        line = self._wait_line(self.timeout)
        if line is None:
            self.stop()
            return {"problem": f"no result within {self.timeout:g} s (hang)"}
        if not line:
            code = proc.wait()
            self.proc = None
            return {"problem": f"worker died (exit status {code})"}
        return json.loads(line)

    def run(self, case: Case) -> Outcome:
        reply = self.request(case)
        if "problem" in reply:
            return Outcome(case, reply["problem"])
        output = reply["stderr"] + reply["stdout"]
        if reply["uncaught"]:
            return Outcome(case, "exception escaped main()", reply["uncaught"])
        if reply["traceback"]:
            return Outcome(case, "Python traceback printed", output)
        if "internal error" in reply["stderr"]:
            return Outcome(case, "internal error", reply["stderr"])
        if reply["status"] not in (0, 1) and "usage:" not in reply["stderr"]:
            return Outcome(case, f"exit status {reply['status']}", output)
        return Outcome(case, None)

    def __enter__(self) -> Worker:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def run_cases(cases, timeout: float = 10.0) -> list[Outcome]:
    """Run every case in one worker; the failures."""
    failures = []
    with Worker(timeout) as worker:
        for case in cases:
            outcome = worker.run(case)
            if outcome.problem is not None:
                failures.append(outcome)
    return failures


# The worker ------------------------------------------------------------------------------------


def _serve() -> None:
    """Read cases (JSON lines) from stdin, run ``bnnmlir-opt`` in-process, reply on stdout."""
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
    replies = os.fdopen(os.dup(1), "w")
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)  # anything written below Python goes nowhere
    os.dup2(devnull, 2)

    from bnnmlir.tools.bnnmlir_opt import main

    workdir = Path(tempfile.mkdtemp(prefix="bnnmlir-fuzz-"))
    source = workdir / "input.mlir"
    print("ready", file=replies, flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        source.write_text(request["text"], encoding="utf-8")
        args = [a.replace("%t", str(workdir / "t")) for a in request["args"]]
        stdout = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
        stderr = io.StringIO()
        status, uncaught = 0, ""
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            try:
                status = main([str(source), *args])
            except SystemExit as e:  # argparse usage errors
                status = e.code if isinstance(e.code, int) else 1
            except BaseException as e:  # noqa: BLE001 - reported to the parent as the failure
                import traceback

                uncaught = "".join(traceback.format_exception(e))
        stdout.flush()
        out = stdout.buffer.getvalue().decode("utf-8", "replace")  # type: ignore[attr-defined]
        err = stderr.getvalue()
        reply = {
            "status": status,
            "stdout": out[-3000:],
            "stderr": err[-3000:],
            "uncaught": uncaught,
            "traceback": "Traceback (most recent call last)" in out + err,
        }
        print(json.dumps(reply), file=replies, flush=True)


if __name__ == "__main__" and sys.argv[1:] == ["--worker"]:
    _serve()
