"""Target names (every accepted spelling, one normalizer), ``--version`` and ``--help`` of the
command-line tools, run as a user runs them: through the console scripts."""

from __future__ import annotations

import argparse
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest
import torch
from conftest import requires_aarch64
from torch_models import binary_net

import bnnmlir
from bnnmlir.target import TARGET_NAMES, canonical_target_name, get_target, target_spellings
from bnnmlir.tools.cli import build_parser
from bnnmlir.tools.cli import main as cli_main

BIN = Path(sys.executable).parent
HOST_TRIPLE = get_target("host").triple
SPELLINGS = {
    "host": ["host", HOST_TRIPLE.split("-")[0], HOST_TRIPLE],
    "aarch64": ["aarch64", "aarch64-linux-gnu", "aarch64-unknown-linux-gnu"],
}


def tool(name: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / name), *args], check=False, capture_output=True, text=True,
                          timeout=120)


@pytest.mark.parametrize("canonical, spelling",
                         [(c, s) for c, names in SPELLINGS.items() for s in names])
def test_every_spelling_names_its_target(canonical, spelling):
    assert canonical_target_name(spelling) == canonical
    assert get_target(spelling).name == canonical


@pytest.mark.parametrize("name", ["riscv", "arm64", "Host", "aarch64-apple-darwin", ""])
def test_unknown_target_error_lists_every_spelling(name):
    with pytest.raises(ValueError) as e:
        canonical_target_name(name)
    message = str(e.value)
    assert f"unknown target '{name}'" in message
    for names in target_spellings().values():
        for spelling in names:
            assert spelling in message


@pytest.fixture(scope="module")
def compiled():
    return bnnmlir.compile(binary_net(), (torch.randn(1, 3, 9, 9),), threads=1)


@pytest.mark.parametrize("spelling", ["aarch64", "aarch64-linux-gnu", "aarch64-unknown-linux-gnu",
                                      "host", HOST_TRIPLE])
def test_save_accepts_every_spelling(compiled, tmp_path: Path, spelling):
    out = compiled.save(tmp_path / "deploy", target=spelling)
    machine = (out / "model.o").read_bytes()[18:20]  # ELF e_machine, little endian
    expected = 183 if canonical_target_name(spelling) == "aarch64" else None  # EM_AARCH64
    if expected is not None:
        assert int.from_bytes(machine, "little") == expected
    else:
        assert int.from_bytes(machine, "little") != 183
    assert get_target(spelling).triple in (out / "model.h").read_text()


def test_save_error_lists_every_spelling(compiled, tmp_path: Path):
    with pytest.raises(ValueError, match="aarch64-linux-gnu.*aarch64-unknown-linux-gnu"):
        compiled.save(tmp_path, target="arm")


@pytest.mark.parametrize("spelling", ["aarch64-linux-gnu", "aarch64-unknown-linux-gnu", "x86_64"])
def test_cli_target_option_takes_every_spelling(spelling):
    if spelling == "x86_64" and not HOST_TRIPLE.startswith("x86_64"):
        spelling = HOST_TRIPLE
    args = build_parser().parse_args(["compile", "m.pt2", "-o", "out", "-t", spelling])
    assert args.target == canonical_target_name(spelling)
    args = build_parser().parse_args(["run", "f.mlir", "-t", spelling])
    assert args.target == [canonical_target_name(spelling)]


def test_cli_unknown_target_lists_every_spelling(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["compile", "m.pt2", "-o", "out", "-t", "riscv"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    for names in target_spellings().values():
        for spelling in names:
            assert spelling in err


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


@pytest.mark.parametrize("command", ["run", "compile", "demo", "train"])
def test_help_shows_every_default(command):
    sub = _subcommands(build_parser())[command]
    result = tool("bnnmlir", command, "--help")
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())  # argparse wraps lines
    for action in sub._actions:
        if (action.default in (None, argparse.SUPPRESS) or isinstance(action, argparse._HelpAction)
                or isinstance(action, argparse._StoreTrueAction)):  # an unset flag
            continue
        shown = action.default if not isinstance(action.default, list) else action.default[0]
        assert f"(default: {shown})" in text, (command, action.dest)
    if command in ("run", "compile"):
        for name in TARGET_NAMES:
            assert name in text


def test_compile_help_shows_the_default_target():
    text = " ".join(tool("bnnmlir", "compile", "--help").stdout.split())
    assert "(default: aarch64)" in text and "aarch64-linux-gnu" in text and "host" in text


@pytest.mark.parametrize("name", ["bnnmlir", "bnnmlir-opt"])
def test_version_names_the_libraries(name):
    result = tool(name, "--version")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"{name} {version('bnnmlir')}"
    for package in ("torch", "xdsl", "llvmlite"):
        assert f"{package} {version(package)}" in lines


@requires_aarch64
@pytest.mark.parametrize("spelling", ["aarch64-dotprod", "aarch64-linux-gnu",
                                      "aarch64-unknown-linux-gnu"])
def test_every_aarch64_spelling_runs_under_qemu(spelling):
    """A program compiled for any aarch64 spelling runs through ``run_aarch64`` (and the call of
    the compiled model), bit-exact with PyTorch."""
    model = binary_net()
    x = torch.randn(2, 3, 9, 9)
    arm = bnnmlir.compile(model, (x,), target=spelling)
    assert arm.program.target.triple.startswith("aarch64")
    assert torch.equal(arm(x), model(x))
    [out] = arm.program.run_aarch64(x.numpy())
    assert torch.equal(torch.from_numpy(out).reshape(model(x).shape), model(x))


def test_run_aarch64_refuses_a_host_program(compiled):
    with pytest.raises(RuntimeError, match="aarch64 target"):
        compiled.program.run_aarch64(torch.randn(1, 3, 9, 9).numpy())
