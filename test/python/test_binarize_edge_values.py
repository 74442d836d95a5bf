"""``bnn.binarize`` of f32 edge values (signed zeros, infinities, NaN) on every target.

The bit convention (``bnnmlir/bits.py``) says +1 iff ``x >= 0``: ``-0.0`` gives +1 and NaN, for
which the comparison is false, gives -1, like ``torch.where(x >= 0, 1, -1)``.
"""

import numpy as np
import pytest
import torch
from conftest import requires_aarch64

from bnnmlir import reference
from bnnmlir.compiler import compile_module, parse_mlir

EDGE_VALUES = np.array(
    [np.nan, -0.0, 0.0, -1e-45, 1e-45, np.inf, -np.inf, -np.nan, 3.0, -3.0, np.nan, 0.0, 1.0],
    dtype=np.float32,
)
# 37 channels: whole vectors of the vector path (16 lanes on AVX-512, 8 on NEON) and a tail.
PROGRAM = """
func.func @forward(%x: tensor<2x37xf32>) -> tensor<2x5xi8> {
  %b = bnn.binarize %x : tensor<2x37xf32> -> tensor<2x5xi8>
  return %b : tensor<2x5xi8>
}
"""


def edge_inputs() -> np.ndarray:
    row = np.resize(EDGE_VALUES, 37)
    return np.stack([row, row[::-1].copy()])


def expected_bits() -> np.ndarray:
    x = torch.from_numpy(edge_inputs())
    pm1 = torch.where(x >= 0, 1, -1).numpy()
    return reference.pack(pm1).view(np.int8)


def test_reference_agrees_with_torch_on_edge_values():
    assert np.array_equal(reference.binarize(edge_inputs()).view(np.int8), expected_bits())


@pytest.mark.parametrize("target", ["host", pytest.param("aarch64", marks=requires_aarch64)])
def test_compiled_binarize_on_edge_values(target):
    program = compile_module(parse_mlir(PROGRAM), target=target)
    run = program if target == "host" else program.run_aarch64
    (got,) = run(edge_inputs())
    assert np.array_equal(got.view(np.int8), expected_bits())
