"""Evaluate tensor-level IR with the numpy reference: the oracle for whole programs.

Each op is computed by :mod:`bnnmlir.reference` (which convolves +-1 values directly); nothing here
touches the passes or the lowering.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from xdsl.dialects import arith, func
from xdsl.dialects.builtin import DenseIntOrFPElementsAttr, ModuleOp
from xdsl.ir import Operation, SSAValue

from bnnmlir import reference
from bnnmlir.dialects.bnn import BConv2dOp, BinarizeOp, Clip8Op, ThresholdOp
from bnnmlir.ir_utils import dense_to_numpy


def _as_words(packed_uint8: np.ndarray) -> np.ndarray:
    return packed_uint8.astype(np.uint8).view(np.int8)


Evaluator = Callable[[Operation, list[np.ndarray]], np.ndarray]
EVALUATORS: dict[type[Operation], Evaluator] = {}


def reference_of(op_type: type[Operation]):
    """Register the reference evaluation of ``op_type``: ``fn(op, operand_values) -> value``."""

    def register(fn: Evaluator) -> Evaluator:
        EVALUATORS[op_type] = fn
        return fn

    return register


@reference_of(BinarizeOp)
def _binarize(op: BinarizeOp, args: list[np.ndarray]) -> np.ndarray:
    return _as_words(reference.binarize(args[0]))


@reference_of(BConv2dOp)
def _bconv2d(op: BConv2dOp, args: list[np.ndarray]) -> np.ndarray:
    c = op.channels
    x = reference.unpack(args[0].view(np.uint8), c)
    w = reference.unpack(args[1].view(np.uint8), c)
    acc = reference.bconv2d(x, w, op.stride_hw, op.dilation_hw, op.pads, int(op.pad))
    if op.output_kind == "clip8":
        return reference.clip8(acc)
    if op.output_kind == "threshold":
        assert op.thresholds is not None and op.directions is not None
        pm1 = reference.threshold(acc, op.thresholds.get_values(), op.directions.get_values())
        return _as_words(reference.pack(pm1))
    if op.output_kind == "requant8":
        from bnnmlir.reference_ops.support import requant8  # it registers into this module

        return requant8(acc, op.requant_params)
    return acc


@reference_of(Clip8Op)
def _clip8(op: Clip8Op, args: list[np.ndarray]) -> np.ndarray:
    return reference.clip8(args[0])


@reference_of(ThresholdOp)
def _threshold(op: ThresholdOp, args: list[np.ndarray]) -> np.ndarray:
    pm1 = reference.threshold(args[0], op.thresholds.get_values(), op.directions.get_values())
    return _as_words(reference.pack(pm1))


def _load_support_evaluators() -> None:
    """Register the evaluators of the support ops (they live beside their numpy references)."""
    import importlib
    import pkgutil

    import bnnmlir.reference_ops as package

    for info in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"{package.__name__}.{info.name}")


def evaluate(module: ModuleOp, inputs: Sequence[np.ndarray], entry: str | None = None) -> list[np.ndarray]:
    """Run function ``entry`` (the only one if ``None``) of a tensor-level module on ``inputs``."""
    _load_support_evaluators()
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
        evaluator = EVALUATORS.get(type(op))
        if evaluator is None:
            raise NotImplementedError(f"the reference has no semantics for '{op.name}'")
        env[op.results[0]] = evaluator(op, [env[v] for v in op.operands])
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
