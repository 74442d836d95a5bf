"""Evaluate tensor-level IR with the numpy reference: the oracle for whole programs.

Each op is computed by :mod:`bnnmlir.reference` (which convolves +-1 values directly); nothing here
touches the passes or the lowering.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from xdsl.dialects import arith, func
from xdsl.dialects.builtin import DenseIntOrFPElementsAttr, ModuleOp
from xdsl.ir import SSAValue

from bnnmlir import reference
from bnnmlir.dialects.bnn import BConv2dOp, BinarizeOp, Clip8Op, ThresholdOp
from bnnmlir.ir_utils import dense_to_numpy


def _as_words(packed_uint8: np.ndarray) -> np.ndarray:
    return packed_uint8.astype(np.uint8).view(np.int8)


def evaluate(module: ModuleOp, inputs: Sequence[np.ndarray], entry: str | None = None) -> list[np.ndarray]:
    """Run function ``entry`` (the only one if ``None``) of a tensor-level module on ``inputs``."""
    fns = [op for op in module.ops if isinstance(op, func.FuncOp) and not op.is_declaration]
    fn = next((f for f in fns if entry is None or f.sym_name.data == entry), None)
    if fn is None:
        raise ValueError(f"no function {entry!r} in the module")
    env: dict[SSAValue, np.ndarray] = dict(zip(fn.body.block.args, inputs))
    for op in fn.body.block.ops:
        if isinstance(op, func.ReturnOp):
            return [env[v] for v in op.arguments]
        if isinstance(op, arith.ConstantOp):
            if isinstance(op.value, DenseIntOrFPElementsAttr):
                env[op.result] = dense_to_numpy(op.value)
            continue
        if isinstance(op, BinarizeOp):
            env[op.result] = _as_words(reference.binarize(env[op.input]))
        elif isinstance(op, BConv2dOp):
            c = op.channels
            x = reference.unpack(env[op.input].view(np.uint8), c)
            w = reference.unpack(env[op.weight].view(np.uint8), c)
            env[op.result] = reference.bconv2d(
                x, w, op.stride_hw, op.dilation_hw, op.pads, int(op.pad)
            )
        elif isinstance(op, Clip8Op):
            env[op.result] = reference.clip8(env[op.input])
        elif isinstance(op, ThresholdOp):
            pm1 = reference.threshold(
                env[op.input], op.thresholds.get_values(), op.directions.get_values()
            )
            env[op.result] = _as_words(reference.pack(pm1))
        else:
            raise NotImplementedError(f"the reference has no semantics for '{op.name}'")
    raise ValueError("function without func.return")


def random_inputs(module: ModuleOp, seed: int = 0, entry: str | None = None) -> list[np.ndarray]:
    """Random inputs for the entry function: small integers, or normal floats with some zeros."""
    from bnnmlir.ir_utils import numpy_dtype

    rng = np.random.default_rng(seed)
    fns = [op for op in module.ops if isinstance(op, func.FuncOp) and not op.is_declaration]
    fn = next(f for f in fns if entry is None or f.sym_name.data == entry)
    arrays = []
    for t in fn.function_type.inputs.data:
        shape = tuple(t.get_shape())  # type: ignore[attr-defined]
        dtype = numpy_dtype(t.get_element_type())  # type: ignore[attr-defined]
        if dtype.kind == "f":
            a = rng.standard_normal(shape).astype(dtype)
            a[rng.random(shape) < 0.05] = 0.0
        else:
            info = np.iinfo(dtype)
            a = rng.integers(max(info.min, -300), min(info.max, 300) + 1, size=shape).astype(dtype)
        arrays.append(a)
    return arrays
