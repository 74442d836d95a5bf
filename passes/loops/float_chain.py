"""Loops of a float chain (:mod:`bnnmlir.dialects.float_chain`): ``bnn.elementwise``, and the
``f32`` output of ``bnn.bconv2d``.

:class:`ChainCode` emits the steps on one element (a scalar of channel ``c``) or on ``L``
consecutive channels (a ``vector<L x f32>`` from channel ``first``): each step is the same single
``arith`` / ``math`` op in every lane (``sitofp``, ``mulf``, ``divf``, ``addf``, ``math.fma``,
``maximumf``, ``minimumf``; prelu ``select(x >= 0, x, a * x)``, lane by lane on vectors), so a
vector lane computes exactly the scalar sequence. Per-channel arrays are private constant
globals padded to a multiple of :data:`ARRAY_LANES` (the lanes of a last partial vector read
padding and are not stored); an array equal on every channel is a constant.

``bnn.elementwise`` (:func:`lower_elementwise`) views its operands as ``[R, C]`` rows (NHWC: the
channels are contiguous) and runs, per row, ``C // L`` vectors of ``L = vector_bytes / 4`` lanes
then a scalar tail of the ``C % L`` last channels.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from math import prod

import numpy as np
from xdsl.dialects import arith, llvm, math, vector
from xdsl.dialects.builtin import (
    ArrayAttr,
    DenseIntOrFPElementsAttr,
    DictionaryAttr,
    MemRefType,
    VectorType,
    f32,
)
from xdsl.ir import SSAValue

from bnnmlir.dialects.bnn_support import ElementwiseOp
from bnnmlir.dialects.float_chain import array_of, input_of, kind_of, value_of
from bnnmlir.ir_utils import value_shape
from bnnmlir.passes.loops.elementwise import loop_nest, worth_splitting
from bnnmlir.passes.loops.emitter import Emitter
from bnnmlir.passes.loops.lowering import AddGlobal, LoweringContext
from bnnmlir.passes.loops.support import ARRAY_LANES, f32_const

ExtraInput = Callable[[Emitter, int], SSAValue]
"""``load(emitter, k)``: the element(s) of extra input ``k`` at the current position."""

_BINARY = {"mul": arith.MulfOp, "div": arith.DivfOp, "add": arith.AddfOp}


def f32_splat(em: Emitter, value: float, lanes: int) -> SSAValue:
    """``vector<lanes x f32>`` of ``value`` (keyed by its bits: ``-0.0`` stays ``-0.0``)."""
    v = float(np.float32(value))
    bits = struct.unpack("<I", struct.pack("<f", v))[0]
    vtype = VectorType(f32, [lanes])
    return em.pool.get(("f32splat", bits, lanes), lambda: arith.ConstantOp(
        DenseIntOrFPElementsAttr.from_list(vtype, [v] * lanes)))


class ChainCode:
    """The emission of one chain over ``channels`` channels; arrays become globals once."""

    def __init__(self, steps: ArrayAttr, channels: int, add_global: AddGlobal):
        self.steps: list[DictionaryAttr] = list(steps.data)  # type: ignore[arg-type]
        padded = -(-channels // ARRAY_LANES) * ARRAY_LANES
        mtype = MemRefType(f32, [padded])
        # Per step and array: a float if uniform, else (global name, type).
        self.params: list[dict[str, float | tuple[str, MemRefType]]] = []
        for s in self.steps:
            entry: dict[str, float | tuple[str, MemRefType]] = {}
            for name in ("values", "scale", "shift"):
                if name in s.data:
                    values = array_of(s, name)
                    if _same_bits(values):
                        entry[name] = values[0]
                    else:
                        fill = values + [1.0] * (padded - channels)
                        entry[name] = (add_global(f"__bnn_chain_{name}", fill, mtype), mtype)
            self.params.append(entry)

    def param(self, em: Emitter, k: int, name: str, first: SSAValue, lanes: int) -> SSAValue:
        p = self.params[k][name]
        if isinstance(p, float):
            return f32_const(em, p) if lanes == 1 else f32_splat(em, p, lanes)
        ref = em.get_global(*p)
        return em.load(ref, [first]) if lanes == 1 else em.vload(ref, [first], lanes)

    def emit(self, em: Emitter, x: SSAValue, first: SSAValue, lanes: int,
             extra: ExtraInput) -> SSAValue:
        """The chain on ``x``: a scalar of channel ``first`` (``lanes = 1``) or the vector of
        channels ``first .. first + lanes - 1``; integer ``x`` starts with ``cast``."""
        for k, s in enumerate(self.steps):
            kind = kind_of(s)
            if kind == "cast":
                # arith.sitofp of xDSL is scalar-only; llvm.sitofp converts lane-wise.
                x = em.emit(arith.SIToFPOp(x, f32) if lanes == 1 else
                            llvm.SIToFPOp(x, VectorType(f32, [lanes])))
            elif kind in _BINARY:
                x = em.emit(_BINARY[kind](x, self.param(em, k, "values", first, lanes)))
            elif kind == "fma":
                x = em.emit(math.FmaOp(x, self.param(em, k, "scale", first, lanes),
                                       self.param(em, k, "shift", first, lanes)))
            elif kind == "add_input":
                x = em.emit(arith.AddfOp(x, extra(em, input_of(s))))
            elif kind in ("max", "min"):
                bound = value_of(s)
                b = f32_const(em, bound) if lanes == 1 else f32_splat(em, bound, lanes)
                x = em.emit(arith.MaximumfOp(x, b) if kind == "max" else arith.MinimumfOp(x, b))
            else:
                x = self.prelu(em, x, self.param(em, k, "values", first, lanes), lanes)
        return x

    @staticmethod
    def prelu(em: Emitter, x: SSAValue, slope: SSAValue, lanes: int) -> SSAValue:
        """``x if x >= 0 else slope * x``; lane by lane on a vector (the compare is scalar)."""
        negative = em.emit(arith.MulfOp(slope, x))
        if lanes == 1:
            keep = em.emit(arith.CmpfOp(x, f32_const(em, 0.0), "oge"))
            return em.select(keep, x, negative)
        out = negative
        for j in range(lanes):
            lane = em.emit(vector.ExtractOp(x, [j], f32))
            keep = em.emit(arith.CmpfOp(lane, f32_const(em, 0.0), "oge"))
            chosen = em.select(keep, lane, em.emit(vector.ExtractOp(negative, [j], f32)))
            out = em.emit(vector.InsertOp(chosen, out, [j]))
        return out


def _same_bits(values: Sequence[float]) -> bool:
    """All values have the same f32 bits (``0.0`` and ``-0.0`` differ)."""
    return len({np.float32(v).tobytes() for v in values}) == 1


def lower_elementwise(em: Emitter, op: ElementwiseOp, ctx: LoweringContext) -> None:
    """``bnn.elementwise``: rows of ``C // L`` vectors, then the scalar tail (module docstring)."""
    out = op.out
    assert out is not None
    shape = value_shape(out)
    channels = shape[-1]
    code = ChainCode(op.steps, channels, ctx.add_global)
    lanes = max(1, ctx.target.vector_bytes // 4)
    full = channels // lanes * lanes
    inputs = list(op.inputs)

    def row(e: Emitter, lead: list[SSAValue]) -> None:
        def chunk(e2: Emitter, c: SSAValue, width: int) -> None:
            at = [*lead, c]

            def load(e3: Emitter, ref: SSAValue) -> SSAValue:
                return e3.load(ref, at) if width == 1 else e3.vload(ref, at, width)

            value = code.emit(e2, load(e2, inputs[0]), c, width, lambda e3, k: load(e3, inputs[k]))
            if width == 1:
                e2.store(value, out, at)
            else:
                e2.emit(vector.StoreOp(value, out, at))

        if full and lanes > 1:
            e.loop(0, full, lambda e2, c, _: chunk(e2, c, lanes) or [], step=lanes)
        e.loop(full if lanes > 1 else 0, channels, lambda e2, c, _: chunk(e2, c, 1) or [])

    loop_nest(em, shape[:-1], row, worth_splitting(ctx.parallel, prod(shape)))
