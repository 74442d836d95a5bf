"""Dynamic batch: one compiled program for every batch size (bnnmlir.batch, frontend/batch.py)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import requires_aarch64, requires_gcc
from torch.export import Dim

import bnnmlir
from bnnmlir.api import compile_exported
from bnnmlir.errors import CompileError, UnsupportedOperationError
from bnnmlir.examples.models import bnn_clip_net
from bnnmlir.frontend.batch import PER_IMAGE_OPS
from bnnmlir.frontend.patterns import CONVERTERS
from bnnmlir.tools.cli import main as cli_main

BATCHES = (1, 2, 3, 8)


def _images(n: int, seed: int, size: int = 16) -> torch.Tensor:
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(seed)) * 2


@pytest.fixture(scope="module")
def model():
    return bnn_clip_net(width=8, seed=3)


@pytest.mark.parametrize("threads", [1, 2])
def test_host_equals_pytorch_for_every_batch(model, threads):
    cm = bnnmlir.compile(model, (_images(3, 0),), threads=threads, dynamic_batch=True)
    assert cm.dynamic_batch
    for n in BATCHES:
        x = _images(n, n)
        assert torch.equal(cm(x), model(x)), n


@requires_aarch64
@pytest.mark.parametrize("threads", [1, 2])
def test_aarch64_equals_pytorch_for_every_batch(model, threads):
    cm = bnnmlir.compile(model, (_images(1, 0),), target="aarch64", threads=threads,
                         dynamic_batch=True)
    for n in BATCHES:
        x = _images(n, 10 + n)
        assert torch.equal(cm(x), model(x)), n


def test_wrong_batch_without_dynamic_batch_says_how(model):
    cm = bnnmlir.compile(model, (_images(2, 0),), threads=1)
    with pytest.raises(ValueError, match=r"compiled for batch 2.*dynamic_batch=True"):
        cm(_images(3, 0))
    with pytest.raises(ValueError, match="must have shape") as info:
        cm(torch.randn(2, 3, 8, 8))
    assert "dynamic_batch" not in str(info.value)


def test_dynamic_batch_still_checks_the_image_shape(model):
    cm = bnnmlir.compile(model, (_images(2, 0),), threads=1, dynamic_batch=True)
    with pytest.raises(ValueError, match=r"\['n', 3, 16, 16\]"):
        cm(torch.randn(2, 3, 8, 8))
    with pytest.raises(ValueError, match="batch n >= 1"):
        cm(torch.randn(0, 3, 16, 16))


DRIVER_C = r"""
#include <stdio.h>
#include <stdlib.h>
#include "model.h"

int main(int argc, char **argv) {
    int64_t n = atoll(argv[1]);
    float *in = bnnmlir_arena_alloc(BNNMLIR_INPUT0_BYTES(n));
    float *out = bnnmlir_arena_alloc(BNNMLIR_OUTPUT0_BYTES(n));
    void *arena = bnnmlir_arena_alloc(BNNMLIR_ARENA_BYTES(n));
    FILE *f = fopen(argv[2], "rb");
    if (fread(in, 1, BNNMLIR_INPUT0_BYTES(n), f) != (size_t)BNNMLIR_INPUT0_BYTES(n)) return 2;
    fclose(f);
    bnnmlir_set_num_threads(2);
    forward(n, in, out, arena);
    fwrite(out, 1, BNNMLIR_OUTPUT0_BYTES(n), stdout);
    return 0;
}
"""


@requires_gcc
def test_saved_header_declares_the_batch_and_a_c_driver_runs_it(model, tmp_path: Path):
    cm = bnnmlir.compile(model, (_images(2, 0),), threads=1, dynamic_batch=True)
    out = cm.save(tmp_path / "deploy", target="host", threads=2)
    header = (out / "model.h").read_text()
    assert "void forward(int64_t n, const float *input0, float *output0, void *arena);" in header
    assert "#define BNNMLIR_PARALLEL_IMAGES 2" in header
    assert "#define BNNMLIR_INPUT0_SHAPE {-1, 3, 16, 16}" in header
    (out / "main.c").write_text(DRIVER_C)
    sources = sorted(str(p) for p in (out / "runtime").glob("*.c"))
    subprocess.run(["gcc", "-O2", "-I", str(out), str(out / "main.c"), str(out / "model.o"),
                    *sources, "-lpthread", "-o", str(out / "prog")], check=True)
    for n in (1, 3, 5):
        x = _images(n, 20 + n)
        (out / "x.bin").write_bytes(x.numpy().tobytes())
        run = subprocess.run([str(out / "prog"), str(n), str(out / "x.bin")], check=True,
                             capture_output=True, timeout=60)
        y = torch.from_numpy(np.frombuffer(run.stdout, dtype=np.float32).reshape(n, 10).copy())
        assert torch.equal(y, model(x)), n


class CenterOverBatch(torch.nn.Module):
    def forward(self, x):
        return x - x.mean(0, keepdim=True)


class FoldBatchIntoRows(torch.nn.Module):
    def forward(self, x):
        return torch.relu(x).reshape(x.shape[0] * 2, -1)


class BatchIndexAsValue(torch.nn.Module):
    def forward(self, x):
        return x + torch.arange(x.size(0)).view(-1, 1).float()


class FixedBatch(torch.nn.Module):
    def forward(self, x):
        return torch.relu(x).view(4, -1)


@pytest.mark.parametrize(
    "module, error, message",
    [
        (CenterOverBatch(), UnsupportedOperationError, r"aten\.mean\.dim.*mixes the images"),
        (FoldBatchIntoRows(), UnsupportedOperationError, r"aten\.view\.default.*2\*s\d+"),
        (BatchIndexAsValue(), UnsupportedOperationError, r"uses the batch size .* as a value"),
        (FixedBatch(), CompileError, r"fixes the batch size"),
    ],
)
def test_graphs_mixing_images_are_refused(module, error, message):
    with pytest.raises(error, match=message):
        bnnmlir.compile(module, (torch.randn(4, 6),), dynamic_batch=True)


def test_other_symbolic_dimensions_are_refused(model):
    program = torch.export.export(model, (_images(2, 0, size=16),),
                                  dynamic_shapes=({0: Dim("batch"), 3: Dim("width", min=8)},))
    with pytest.raises(CompileError, match=r"symbolic size .* in dimension 3"):
        compile_exported(program, threads=1)


def test_exported_program_with_a_batch_dim(model):
    program = torch.export.export(model, (_images(4, 0),), dynamic_shapes=({0: Dim("batch")},))
    cm = compile_exported(program, threads=2)
    assert cm.dynamic_batch and "bnn.bconv2d" in cm.mlir("optimized")
    for n in (1, 5):
        x = _images(n, 30 + n)
        assert torch.equal(cm(x), model(x))


def test_archive_with_a_batch_dim_compiles_to_a_batch_entry(model, tmp_path: Path):
    program = torch.export.export(model, (_images(4, 0),), dynamic_shapes=({0: Dim("batch")},))
    torch.export.save(program, tmp_path / "model.pt2")
    out = tmp_path / "out"
    assert cli_main(["compile", str(tmp_path / "model.pt2"), "-o", str(out), "-t", "host"]) == 0
    assert "void forward(int64_t n, const float *input0" in (out / "model.h").read_text()


def test_every_translated_op_is_classified_for_a_dynamic_batch():
    assert set(CONVERTERS) <= set(PER_IMAGE_OPS)


def test_a_batch_that_is_an_expression_is_refused():
    program = torch.export.export(torch.nn.ReLU(), (torch.randn(4, 6),),
                                  dynamic_shapes=({0: 2 * Dim("half")},))
    with pytest.raises(CompileError, match="a plain symbol"):
        compile_exported(program, threads=1)
