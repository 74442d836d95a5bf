"""A saved host model linked with the C runtime under AddressSanitizer + UBSan, and under
ThreadSanitizer.

``compiled.save(dir, target="host")`` gives ``model.o``, ``model.h`` and the runtime sources; they
are linked with ``sanitizer_main.c`` using ``-fsanitize=address,undefined`` (or ``thread``) and
``-fno-sanitize-recover=all``, so a memory error, undefined behaviour or a data race in the
runtime or the driver ends the run (``model.o`` itself is not instrumented). The driver calls the
entry point on several random inputs, with one and with several threads in the parallel loops
(and from two threads at once); every output must be ``torch.equal`` to PyTorch's
``model.eval()``. The runtime's own stress program runs under ThreadSanitizer in
``test_runtime.py::test_parallel_for_stress_in_c``.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import require_sanitizers, requires_gcc
from torch import nn

import bnnmlir
import bnnmlir.nn as bnn
from bnnmlir.examples.models import ClipBlock, randomize_batchnorm

DRIVER = Path(__file__).with_name("sanitizer_main.c")
SHAPE = (3, 3, 13, 11)  # batch 3, odd spatial sizes
CALLS = 4


def awkward_bnn_clip_net() -> nn.Module:
    """Integer end to end: channels 5, 13, 19 (no multiple of 8), stride-2 blocks, int8 stem,
    binary head."""
    torch.manual_seed(7)
    model = nn.Sequential(
        bnn.QuantizeInput(1 / 64), bnn.Int8Conv2d(3, 5, 3, padding=1), nn.BatchNorm2d(5),
        bnn.Clip8(),
        ClipBlock(5, 13, stride=2),
        ClipBlock(13, 19, stride=2),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), bnn.BinaryLinear(19, 6),
    )
    return randomize_batchnorm(model, torch.Generator().manual_seed(7)).eval()


@pytest.fixture(scope="module")
def deployment(tmp_path_factory):
    model = awkward_bnn_clip_net()
    compiled = bnnmlir.compile(model, (torch.randn(SHAPE),), threads=2, jit=False)
    out = compiled.save(tmp_path_factory.mktemp("deploy"), target="host", threads=2)
    return model, out


@requires_gcc
@pytest.mark.parametrize("sanitizers", ["address,undefined", "thread"])
def test_saved_model_under_sanitizers(deployment, tmp_path: Path, sanitizers):
    model, out = deployment
    compiler = shutil.which("gcc") or "gcc"
    require_sanitizers(compiler, sanitizers, tmp_path)
    # Compiled for 2 threads: the loops are outlined and run through the runtime's parallel-for.
    assert b"bnnmlir_parallel_for\0" in (out / "model.o").read_bytes()

    program = tmp_path / "driver"
    build = subprocess.run(
        [compiler, "-std=c11", "-O1", "-g", f"-fsanitize={sanitizers}",
         "-fno-sanitize-recover=all", "-Wall", "-Wextra", "-Werror", "-pthread",
         "-DENTRY=forward", "-I", str(out), str(DRIVER), str(out / "model.o"),
         *sorted(str(p) for p in (out / "runtime").glob("*.c")), "-o", str(program)],
        check=False, capture_output=True, text=True,
    )
    assert build.returncode == 0, build.stderr

    g = torch.Generator().manual_seed(3)
    inputs = torch.randn((CALLS, *SHAPE), generator=g) * 1.5
    inputs[0].clamp_(-0.5, 0.5)  # small values: the int8 stem sees many zeros
    expected = torch.stack([model(x) for x in inputs])
    (tmp_path / "inputs.bin").write_bytes(inputs.numpy().tobytes())
    for threads in (1, 3):
        outputs = tmp_path / f"outputs{threads}.bin"
        try:
            run = subprocess.run(
                [str(program), str(threads), str(CALLS), str(tmp_path / "inputs.bin"),
                 str(outputs)],
                check=False, capture_output=True, text=True, timeout=60,
                env={"ASAN_OPTIONS": "detect_leaks=1", "UBSAN_OPTIONS": "print_stacktrace=1",
                     "TSAN_OPTIONS": "halt_on_error=1 exitcode=66"},
            )
        except subprocess.TimeoutExpired:
            pytest.fail(f"the driver did not finish with {threads} threads (deadlock?)")
        assert run.returncode == 0, run.stdout + run.stderr
        got = torch.from_numpy(
            np.fromfile(outputs, dtype=np.float32).reshape(expected.shape).copy()
        )
        assert torch.equal(got, expected), f"{threads} threads: differs from PyTorch"
