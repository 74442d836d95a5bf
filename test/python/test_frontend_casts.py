"""dtype conversions in ``forward``: ``.float()``, ``.to(dtype)``, ``.type_as``, ``.double()``,
memory-format and device copies, and the ``_assert_tensor_metadata`` checks ``torch.export``
records for them.

Exact conversions are the identity on the values the importer holds; the others are rejected
with an :class:`UnsupportedOperationError` naming the op, the module path and the reason.
Compiled results are compared with ``torch.equal`` against ``model.eval()``.
"""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

import bnnmlir
from bnnmlir.frontend import UnsupportedOperationError, import_model
from bnnmlir.frontend.importer import decomposition_table
from bnnmlir.nn import BinaryConv2d, Clip8, QuantizeInput, binarize


class Fn(nn.Module):
    def __init__(self, fn, *layers):
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.fn = fn

    def forward(self, x):
        return self.fn(self, x)


def check_equal(model, x):
    compiled = bnnmlir.compile(model, (x,), threads=1)
    model.eval()
    with torch.no_grad():
        want = model(x)
    assert torch.equal(compiled(x), want)
    return compiled


def exported_targets(model, x) -> set:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.export.export(model.eval(), (x,)).run_decompositions(
            decomposition_table())
    return {n.target for n in program.graph.nodes if n.op == "call_function"}


def test_the_graph_holds_the_ops_under_test():
    """``.to(int8)`` and ``.float()`` show up as ``_to_copy`` with ``_assert_tensor_metadata``."""
    model = Fn(lambda m, x: x.to(torch.int8).float().to(memory_format=torch.channels_last))
    targets = exported_targets(model, torch.randn(1, 2, 3, 3))
    aten = torch.ops.aten
    assert {aten._to_copy.default, aten._assert_tensor_metadata.default} <= targets


def test_float_to_on_float_and_type_as_are_no_ops():
    def fn(m, x):
        y = m.layers[0](x.float().to(torch.float32).type_as(x))
        return m.layers[1](y.to("cpu").to(memory_format=torch.channels_last).contiguous())

    model = Fn(fn, BinaryConv2d(3, 8, 3, padding=1), Clip8())
    compiled = check_equal(model, torch.randn(2, 3, 6, 6))
    assert compiled.warnings == []


def test_integer_round_trips_of_integer_values_are_exact():
    """Clip8 output -> int32 -> int8 -> float, a sign -> int8 -> float, float -> double -> float."""

    def fn(m, x):
        q = m.layers[0](x).to(torch.int32).to(torch.int8)
        y = m.layers[1](q.float().double().float())
        s = binarize(y).to(torch.int8).to(torch.float32)
        return m.layers[2](s).type_as(x)

    model = Fn(fn, QuantizeInput(1 / 16), BinaryConv2d(3, 8, 3, padding=1),
               BinaryConv2d(8, 4, 3))
    check_equal(model, torch.randn(2, 3, 7, 7) * 4)


def test_a_binary_sum_converted_to_int16_and_back():
    def fn(m, x):
        return m.layers[0](x).to(torch.int16).reshape(2, -1).float()

    check_equal(Fn(fn, BinaryConv2d(3, 5, 3)), torch.randn(2, 3, 5, 5))


@pytest.mark.parametrize(
    "fn, what",
    [
        (lambda m, x: x.to(torch.int32).float(), "truncates toward zero"),
        (lambda m, x: Clip8()(x * 300).to(torch.uint8).float(), "truncates toward zero"),
        (lambda m, x: x.half().float(), "rounds values that torch.float16 cannot hold"),
        (lambda m, x: (x >= 0).float(), "comparison (bool tensor)"),
        (lambda m, x: (x.double() * 2).float(), "operand '_to_copy' has dtype torch.float64"),
        (lambda m, x: Clip8()(x).to(torch.int8) * 2 + 0.5, "has dtype torch.int8"),
    ],
)
def test_inexact_conversions_are_clear_errors(fn, what):
    class Block(nn.Module):
        def forward(self, x):
            return fn(self, x)

    model = nn.Sequential(nn.Identity(), Block())
    with pytest.raises(UnsupportedOperationError) as e:
        import_model(model, (torch.randn(1, 3, 4, 4),))
    assert what in str(e.value)
    assert "module '1'" in str(e.value) and e.value.module_path == "1"
    assert e.value.op.startswith("aten.")


def test_int8_output_dtype_is_rejected():
    model = Fn(lambda m, x: Clip8()(x).to(torch.int8))
    with pytest.raises(UnsupportedOperationError, match="only float32 outputs"):
        import_model(model, (torch.randn(1, 3, 4, 4),))
