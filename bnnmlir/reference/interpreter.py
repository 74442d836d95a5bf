"""Evaluate tensor-level IR with the numpy reference: the oracle for whole programs.

Each op is computed by :mod:`bnnmlir.reference.binary` (the binary ops, on +-1 values directly)
or :mod:`bnnmlir.reference.support` (the support ops); :data:`EVALUATORS` maps every op type to
its evaluation. Nothing here touches the passes or the lowering.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
from xdsl.dialects import arith, func
from xdsl.dialects.builtin import DenseIntOrFPElementsAttr, ModuleOp
from xdsl.ir import Attribute, Operation, SSAValue

from bnnmlir.dialects import bnn_support as support_ops
from bnnmlir.dialects.bnn import BConv2dOp, BinarizeOp, Clip8Op, ThresholdOp
from bnnmlir.ir_utils import dense_to_numpy, numpy_dtype
from bnnmlir.reference import binary, support


def _as_words(packed_uint8: np.ndarray) -> np.ndarray:
    return packed_uint8.astype(np.uint8).view(np.int8)


Evaluator = Callable[[Operation, list[np.ndarray]], np.ndarray]
"""``fn(op, operand_values) -> value``: the reference evaluation of one op."""


# ---------------------------------------------------------------------------------------------
# Binary ops
# ---------------------------------------------------------------------------------------------


def _binarize(op: BinarizeOp, args: list[np.ndarray]) -> np.ndarray:
    return _as_words(binary.binarize(args[0]))


def _bconv2d(op: BConv2dOp, args: list[np.ndarray]) -> np.ndarray:
    c = op.channels
    x = binary.unpack(args[0].view(np.uint8), c)
    w = binary.unpack(args[1].view(np.uint8), c)
    acc = binary.bconv2d(x, w, op.stride_hw, op.dilation_hw, op.pads, int(op.pad))
    if op.output_kind == "f32":
        assert op.steps is not None
        return float_chain(op.steps, acc, [acc, *args[2:]])
    if op.residual is not None:
        transformed = binary.clip8(acc) if op.output_kind == "clip8" else requant8(acc, op.requant_params)
        return binary.clip8(transformed.astype(np.int32) + args[2].astype(np.int32))
    if op.output_kind == "clip8":
        return binary.clip8(acc)
    if op.output_kind == "threshold":
        assert op.thresholds is not None and op.directions is not None
        pm1 = binary.threshold(acc, op.thresholds.get_values(), op.directions.get_values())
        return _as_words(binary.pack(pm1))
    if op.output_kind == "requant8":
        return requant8(acc, op.requant_params)
    return acc


def _clip8(op: Clip8Op, args: list[np.ndarray]) -> np.ndarray:
    return binary.clip8(args[0])


def _threshold(op: ThresholdOp, args: list[np.ndarray]) -> np.ndarray:
    pm1 = binary.threshold(args[0], op.thresholds.get_values(), op.directions.get_values())
    return _as_words(binary.pack(pm1))


# ---------------------------------------------------------------------------------------------
# Support ops
# ---------------------------------------------------------------------------------------------


def _out_shape(op) -> tuple[int, ...]:
    return tuple(op.output_type().get_shape())


def requant8(x, params: Mapping[str, Attribute]) -> np.ndarray:
    """``bnn.requant8`` (or the ``requant8`` output of ``bnn.bconv2d``) with the map ``params``:
    ``kind`` and that kind's arrays, the channel being the last axis of ``x``."""
    x = np.asarray(x)
    c = x.shape[-1]

    def values(name: str) -> np.ndarray:
        return np.asarray(params[name].get_values(), dtype=np.int64)  # type: ignore[attr-defined]

    kind = params["kind"].data  # type: ignore[attr-defined]
    if kind == "affine":
        return support.requant8_affine(x, values("multiplier"), values("offset"), values("shift"))
    if kind == "breakpoints":
        return support.requant8_breakpoints(x, values("base"), values("step"),
                                            values("breakpoints").reshape(c, -1))
    if kind == "table":
        lo = params["lo"].value.data  # type: ignore[attr-defined]
        return support.requant8_table(x, lo, values("table").reshape(c, -1))
    raise ValueError(f"unknown requant8 kind {kind!r}")


def _requant8(op: support_ops.Requant8Op, args: list[np.ndarray]) -> np.ndarray:
    return requant8(args[0], op.params)


def _cast(op: support_ops.CastOp, args: list[np.ndarray]) -> np.ndarray:
    return support.cast(args[0])


def _batch_norm(op: support_ops.BatchNormOp, args: list[np.ndarray]) -> np.ndarray:
    return support.batch_norm(args[0], op.mean.get_values(), op.var.get_values(),
                              op.gamma.get_values(), op.beta.get_values(), op.eps.value.data)


def _affine(op: support_ops.AffineOp, args: list[np.ndarray]) -> np.ndarray:
    if op.divides:
        return support.affine_divide(args[0], op.divisor.get_values(), op.bias.get_values())
    return support.affine(args[0], op.scale.get_values(), op.bias.get_values())


def _conv2d(op: support_ops.Conv2dOp, args: list[np.ndarray]) -> np.ndarray:
    if op.is_integer:
        acc = support.conv2d_int(args[0], args[1], op.stride_hw, op.dilation_hw, op.pads)
        return acc if op.requant is None else requant8(acc, dict(op.requant.data))
    bias = args[2] if op.bias is not None else None
    out = support.conv2d(args[0], args[1], bias, op.stride_hw, op.dilation_hw, op.pads)
    return out if op.steps is None else float_chain(op.steps, out, [])


def _dense(op: support_ops.DenseOp, args: list[np.ndarray]) -> np.ndarray:
    if op.is_integer:
        return support.dense_int(args[0], args[1])
    return support.dense(args[0], args[1], args[2] if op.bias is not None else None)


def _pool2d(op: support_ops.Pool2dOp, args: list[np.ndarray]) -> np.ndarray:
    return support.pool2d(args[0], op.kind.data, op.kernel_hw, op.stride_hw, op.pads,
                          op.count_include_pad is not None)


def _global_avg_pool(op: support_ops.GlobalAvgPoolOp, args: list[np.ndarray]) -> np.ndarray:
    return support.global_avg_pool(args[0])


def _add(op: support_ops.AddOp, args: list[np.ndarray]) -> np.ndarray:
    return support.add(args[0], args[1])


def _mul(op: support_ops.MulOp, args: list[np.ndarray]) -> np.ndarray:
    return support.mul(args[0], args[1])


def _activation(op: support_ops.ActivationOp, args: list[np.ndarray]) -> np.ndarray:
    kind = op.kind.data
    if kind == "relu":
        return support.relu(args[0])
    if kind == "hardtanh":
        return support.hardtanh(args[0], *op.bounds)
    return support.prelu(args[0], op.slopes.get_values())


def float_chain(steps, x: np.ndarray, inputs: Sequence[np.ndarray]) -> np.ndarray:
    """A float chain (``bnn.elementwise``, ``bnn.bconv2d`` output f32) on ``x``; ``inputs[k]``
    is the operand of ``add_input`` index ``k``."""
    from bnnmlir.dialects.float_chain import array_of, input_of, kind_of, value_of

    v = np.asarray(x)
    for s in steps.data:
        kind = kind_of(s)
        if kind == "cast":
            v = support.cast(v)
        elif kind == "add_input":
            v = support.add(v, np.asarray(inputs[input_of(s)], dtype=np.float32))
        elif kind == "max":
            v = support.ieee_maximum(v, np.float32(value_of(s)))
        elif kind == "min":
            v = support.ieee_minimum(v, np.float32(value_of(s)))
        elif kind == "fma":
            v = support.fma_f32(v, np.asarray(array_of(s, "scale"), np.float32),
                                np.asarray(array_of(s, "shift"), np.float32))
        elif kind == "prelu":
            v = support.prelu(v, array_of(s, "values"))
        else:
            a = np.asarray(array_of(s, "values"), np.float32)
            with np.errstate(all="ignore"):
                v = {"mul": np.multiply, "div": np.divide, "add": np.add}[kind](v, a)
        v = np.asarray(v, dtype=np.float32)
    return v


def _elementwise(op: support_ops.ElementwiseOp, args: list[np.ndarray]) -> np.ndarray:
    return float_chain(op.steps, args[0], args)


def _concat(op: support_ops.ConcatOp, args: list[np.ndarray]) -> np.ndarray:
    return support.concat(args)


def _reshape(op: support_ops.ReshapeOp, args: list[np.ndarray]) -> np.ndarray:
    return support.reshape(args[0], _out_shape(op))


def _transpose(op: support_ops.TransposeOp, args: list[np.ndarray]) -> np.ndarray:
    return support.transpose(args[0], op.perm)


def _quantize(op: support_ops.QuantizeOp, args: list[np.ndarray]) -> np.ndarray:
    x = np.asarray(args[0], np.float32)
    y = float_chain(op.steps, x, args) if op.steps.data else x
    return support.transpose(binary.clip8(y), op.perm)


EVALUATORS: Mapping[type[Operation], Evaluator] = {
    BinarizeOp: _binarize,
    BConv2dOp: _bconv2d,
    Clip8Op: _clip8,
    ThresholdOp: _threshold,
    support_ops.Requant8Op: _requant8,
    support_ops.CastOp: _cast,
    support_ops.BatchNormOp: _batch_norm,
    support_ops.AffineOp: _affine,
    support_ops.Conv2dOp: _conv2d,
    support_ops.DenseOp: _dense,
    support_ops.Pool2dOp: _pool2d,
    support_ops.GlobalAvgPoolOp: _global_avg_pool,
    support_ops.AddOp: _add,
    support_ops.MulOp: _mul,
    support_ops.ActivationOp: _activation,
    support_ops.ElementwiseOp: _elementwise,
    support_ops.ConcatOp: _concat,
    support_ops.ReshapeOp: _reshape,
    support_ops.TransposeOp: _transpose,
    support_ops.QuantizeOp: _quantize,
}
"""The evaluation of every op the reference knows."""


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
        evaluator = EVALUATORS.get(type(op))
        if evaluator is None:
            raise NotImplementedError(f"the reference has no semantics for '{op.name}'")
        env[op.results[0]] = evaluator(op, [env[v] for v in op.operands])
    raise ValueError("function without func.return")


def random_inputs(module: ModuleOp, seed: int = 0, entry: str | None = None) -> list[np.ndarray]:
    """Random inputs for the entry function: small integers, or normal floats with some zeros."""
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
