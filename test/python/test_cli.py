"""The ``bnnmlir`` command in-process: ``run`` on packed-bit arguments, option validation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import requires_aarch64

from bnnmlir.bits import last_word_mask, packed_words
from bnnmlir.compiler import parse_mlir
from bnnmlir.tools.cli import main as cli_main
from bnnmlir.tools.cli import packed_channels, random_inputs

CHANNELS = 13
WORDS = packed_words(CHANNELS)


def packed_arguments_program(seed: int = 0) -> str:
    """A bconv2d whose activations (arg 0) and weights (arg 1) are packed arguments of 13
    channels, next to a float argument that is binarized first (arg 2)."""
    return f"""
func.func @packed13(%x: tensor<1x6x6x{WORDS}xi8>, %w: tensor<5x3x3x{WORDS}xi8>,
                    %f: tensor<1x4x4x{CHANNELS}xf32>) -> (tensor<1x6x6x5xi32>, tensor<1x4x4x5xi32>) {{
  %c = bnn.bconv2d %x, %w {{in_channels = {CHANNELS} : i64, strides = array<i64: 1, 1>, dilations = array<i64: 1, 1>, padding = array<i64: 1, 1, 1, 1>, pad_value = -1 : i64}} : tensor<1x6x6x{WORDS}xi8>, tensor<5x3x3x{WORDS}xi8> -> tensor<1x6x6x5xi32>
  %b = bnn.binarize %f : tensor<1x4x4x{CHANNELS}xf32> -> tensor<1x4x4x{WORDS}xi8>
  %d = bnn.bconv2d %b, %w {{in_channels = {CHANNELS} : i64, strides = array<i64: 1, 1>, dilations = array<i64: 1, 1>, padding = array<i64: 1, 1, 1, 1>, pad_value = 0 : i64}} : tensor<1x4x4x{WORDS}xi8>, tensor<5x3x3x{WORDS}xi8> -> tensor<1x4x4x5xi32>
  func.return %c, %d : tensor<1x6x6x5xi32>, tensor<1x4x4x5xi32>
}}
"""


@pytest.fixture
def mlir_file(tmp_path: Path) -> Path:
    path = tmp_path / "packed13.mlir"
    path.write_text(packed_arguments_program())
    return path


def test_packed_arguments_are_found(mlir_file: Path):
    assert packed_channels(parse_mlir(mlir_file.read_text())) == {0: CHANNELS, 1: CHANNELS}


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_random_packed_inputs_follow_the_bit_convention(mlir_file: Path, seed: int):
    x, w, f = random_inputs(parse_mlir(mlir_file.read_text()), seed)
    unused = np.uint8(~last_word_mask(CHANNELS) & 0xFF)
    for packed in (x, w):
        assert packed.dtype == np.int8 and packed.shape[-1] == WORDS
        assert not (packed.view(np.uint8)[..., -1] & unused).any()
        # Both values occur in the used bits.
        used = packed.view(np.uint8)[..., -1] & np.uint8(last_word_mask(CHANNELS))
        assert used.any() and (used != last_word_mask(CHANNELS)).any()
    assert f.dtype == np.float32 and f.shape == (1, 4, 4, CHANNELS)


@pytest.mark.parametrize("threads", ["1", "2"])
def test_run_on_13_channel_packed_arguments_is_bit_exact(mlir_file: Path, threads, capsys):
    for seed in ("0", "3"):
        status = cli_main(["run", str(mlir_file), "--seed", seed, "--threads", threads])
        out = capsys.readouterr().out
        assert status == 0, out
        assert "bit-exact" in out and "MISMATCH" not in out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["run", "x.mlir", "--threads", "0"], "must be at least 1, got 0"),
        (["run", "x.mlir", "--threads", "-2"], "must be at least 1, got -2"),
        (["run", "x.mlir", "--threads", "two"], "invalid integer: 'two'"),
        (["run", "x.mlir", "--seed", "-1"], "must be at least 0"),
        (["compile", "m.pt2", "-o", "out", "--threads", "0"], "must be at least 1, got 0"),
        (["compile", "m.pt2", "-o", "out", "--entry", "9lives"], "not a C identifier"),
        (["compile", "m.pt2", "-o", "out", "--entry", "bnnmlir_net"], "runtime's prefix"),
        (["demo", "--seed", "-5"], "must be at least 0"),
    ],
)
def test_bad_options_are_argparse_errors(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli_main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


@requires_aarch64
def test_run_on_aarch64_with_packed_arguments(mlir_file: Path, capsys):
    assert cli_main(["run", str(mlir_file), "-t", "aarch64", "--threads", "2"]) == 0
    assert "bit-exact" in capsys.readouterr().out


EXIT_CHECK = """
import atexit, gc, sys
atexit.register(lambda: print(f"frozen at the end: {{gc.get_freeze_count() > 0}}", flush=True))
from {module} import main
code = main({argv!r})
print(f"exit code {{code}}", flush=True)
atexit.register(lambda: print(f"frozen at first: {{gc.get_freeze_count() > 0}}", flush=True))
"""


@pytest.mark.parametrize("module", ["bnnmlir.tools.cli", "bnnmlir.tools.bnnmlir_opt"])
def test_tools_exit_without_the_final_collections(module: str, mlir_file: Path):
    """Both commands freeze the collector at exit (bnnmlir.tools.quick_exit), not before: the
    exit handlers run last registered first, so one registered after ``main`` sees no freeze and
    one registered before it does; their output is intact."""
    import subprocess
    import sys

    argv = ["run", str(mlir_file)] if module.endswith("cli") else [str(mlir_file)]
    run = subprocess.run([sys.executable, "-c", EXIT_CHECK.format(module=module, argv=argv)],
                         capture_output=True, text=True, timeout=300, check=False)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[-3:] == ["exit code 0", "frozen at first: False", "frozen at the end: True"], \
        run.stdout[-2000:]
    assert ("bit-exact" in run.stdout) if module.endswith("cli") else ("bnn.bconv2d" in run.stdout)
