"""The generated ``model.h``: compiles warning-free as C11 and C++, and says what it expects."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import torch
from conftest import requires_tools
from torch import nn

import bnnmlir
import bnnmlir.nn as bnn


class TwoInputs(nn.Module):
    """Two inputs (one binarized first, one through a float convolution), two outputs."""

    def __init__(self):
        super().__init__()
        self.binary = bnn.BinaryConv2d(3, 5, 3)
        self.dense = nn.Conv2d(3, 5, 3)
        self.clip = bnn.Clip8()

    def forward(self, img, aux):
        y = self.clip(self.binary(img)) + self.clip(self.dense(aux))
        return y, self.clip(self.dense(aux))


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    model = TwoInputs().eval()
    x = torch.randn(1, 3, 6, 6)
    compiled = bnnmlir.compile(model, (x, x), threads=1, jit=False)
    return compiled.save(tmp_path_factory.mktemp("deploy"), target="host", entry="classify")


USE = """#include "model.h"
int run(const float *img, const float *aux, float *y, float *z, void *arena);
int run(const float *img, const float *aux, float *y, float *z, void *arena) {
    static const long long shape[] = BNNMLIR_INPUT0_SHAPE;
    classify(img, aux, y, z, arena);
    return (int)shape[0] + BNNMLIR_NUM_INPUTS + BNNMLIR_NUM_OUTPUTS;
}
"""


@pytest.mark.parametrize(
    "compiler, flags, suffix",
    [
        pytest.param("gcc", ["-std=c11", "-pedantic"], ".c", marks=requires_tools("gcc")),
        pytest.param("gcc", ["-std=c99", "-pedantic"], ".c", marks=requires_tools("gcc")),
        pytest.param("g++", ["-std=c++17", "-pedantic"], ".cpp", marks=requires_tools("g++")),
    ],
)
def test_header_compiles_without_warnings(saved: Path, compiler, flags, suffix):
    source = saved / f"use{suffix}"
    source.write_text(USE)
    result = subprocess.run(
        [shutil.which(compiler) or compiler, *flags, "-Wall", "-Wextra", "-Werror", "-c",
         "-I", str(saved), str(source), "-o", str(saved / f"use{suffix}.o")],
        check=False, capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stderr


def test_header_documents_the_inputs(saved: Path):
    header = (saved / "model.h").read_text()
    assert "void classify(const float *input0, const float *input1, float *output0, " \
           "float *output1, void *arena);" in header
    # No comment holds "/*" (-Wcomment); they say which values each input takes.
    comments = re.findall(r"/\*(.*?)\*/", header, re.S)
    assert comments and not [c for c in comments if "/*" in c]
    assert "/* input0 values: finite or +-inf, no NaN */" in header
    assert "/* input1 values: finite only */" in header
    assert "does not check them" in header
