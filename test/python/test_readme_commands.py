"""The ``bnnmlir-opt`` and ``bnnmlir run`` command lines of the README run as written, from the
repository root, through the installed console scripts: only an ``-o FILE`` is redirected into a
temporary directory."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import have_aarch64_tools

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
COMMANDS = ("bnnmlir-opt", "bnnmlir run")


def readme_commands() -> list[str]:
    """Lines of the README's ``sh`` blocks that start with one of :data:`COMMANDS`."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    lines = []
    for block in re.findall(r"```sh\n(.*?)```", text, flags=re.DOTALL):
        lines += [line.strip() for line in block.splitlines() if line.startswith(COMMANDS)]
    return lines


def test_readme_names_the_shipped_example():
    commands = readme_commands()
    assert sum(c.startswith("bnnmlir-opt") for c in commands) >= 4
    for command in commands:
        for word in shlex.split(command, comments=True):
            if word.endswith(".mlir"):
                assert (ROOT / word).is_file(), f"README names a missing file: {command}"


@pytest.mark.parametrize("command", readme_commands())
def test_readme_command_runs(command: str, tmp_path: Path):
    argv = shlex.split(command, comments=True)
    if "-o" in argv:
        index = argv.index("-o") + 1
        argv[index] = str(tmp_path / argv[index])
    needs_qemu = "aarch64" in argv and argv[:2] == ["bnnmlir", "run"]
    if needs_qemu and not have_aarch64_tools() and not os.environ.get("CI"):
        pytest.skip("qemu-aarch64 / aarch64-linux-gnu-gcc not installed")
    argv[0] = str(BIN / argv[0])
    result = subprocess.run(argv, check=False, cwd=ROOT, capture_output=True, timeout=300)
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    assert b"Traceback" not in result.stderr
    if "-o" in argv:
        assert Path(argv[argv.index("-o") + 1]).stat().st_size > 0
    else:
        assert result.stdout.strip()
    if "aarch64-asm" in argv:
        assert b"cnt\t" in result.stdout or b"cnt " in result.stdout
    if argv[1] == "run":
        assert b"bit-exact" in result.stdout and b"MISMATCH" not in result.stdout
