"""Float ``bnn.conv2d`` / ``bnn.dense`` with constant weights, vectorized over output channels.

The ops' semantics (:class:`~bnnmlir.dialects.bnn_support.Conv2dOp`, ``DenseOp``) fix, per output
value, the order of its sum: ``acc = +0.0``, then ``acc = fma(f32(x), w, acc)`` over the in-bounds
taps ``kh``, ``kw`` and the channels ``c`` in that order, then ``+ bias``. Each output channel
``o`` is an independent sum, so ``L`` of them run in the ``L`` lanes of a vector
(``L = vector_bytes / 4``): for each tap and channel, ``x[n, ih, iw, c]`` broadcast, times the
weights ``w[o0:o0+L, kh, kw, c]`` (re-laid at compile time as ``[KH, KW, C, O]``, contiguous in
``o``), added by one vector ``math.fma``: in every lane exactly the scalar sequence of
operations, so the result is bit-identical to the scalar loop nest and to the reference.

Register block (:class:`FloatConvPlan`, pure): ``B`` weight vectors (``B*L`` channels) times ``P``
output columns of accumulators. Per tap and channel a block loads ``B`` weight vectors and
broadcasts ``P`` inputs for ``P*B`` fused multiply-adds; it holds ``P*B`` accumulators, ``B``
weights and one broadcast in the target's vector registers (:func:`plan_float_conv` takes the
largest ``P*B`` that fits, fewer loads per ``fma`` on a tie). ``P`` columns only where every tap
lies inside the input (no column checks); border columns and the columns left over run one at a
time; channels past the last full vector run the same sequence with ``L = 1``.

A fused float chain (``bnn.conv2d {steps}``, e.g. the BatchNorm after a float stem) runs on the
accumulator vectors after the bias, lane-wise (:class:`~bnnmlir.passes.loops.float_chain.ChainCode`:
the same f32 operation in every lane), before the one store of each output.

Rows ``(n, oh)`` are independent: with the ``parallel`` option and at least
:data:`~bnnmlir.passes.loops.bconv2d.MIN_PARALLEL_MACS` multiply-adds they are one
``scf.parallel``. ``bnn.dense`` is the convolution of one ``1 x N`` image by ``1 x 1`` kernels: the
batch row ``n`` is the column.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from xdsl.dialects import arith, math, vector
from xdsl.dialects.builtin import ArrayAttr, MemRefType, VectorType, f32
from xdsl.ir import SSAValue

from bnnmlir.dialects.bnn_support import Conv2dOp, DenseOp
from bnnmlir.ir_utils import value_shape
from bnnmlir.passes.loops import support
from bnnmlir.passes.loops.bconv2d import MIN_PARALLEL_MACS
from bnnmlir.passes.loops.emitter import Emitter
from bnnmlir.passes.loops.float_chain import ChainCode
from bnnmlir.passes.loops.int8_conv import (Geometry, constant_weights, lower_int8_conv2d,
                                            lower_int8_dense)
from bnnmlir.passes.loops.lowering import LoweringContext
from bnnmlir.passes.loops.support import _and, _if, _in_range, _needs_check, _to_f32, f32_const
from bnnmlir.target import TargetInfo

#: Input channel counts up to this are unrolled (a first layer's 3 colour channels).
UNROLL_CHANNELS = 8
#: Most weight vectors per block (more gives long weight loads and few pixels).
MAX_BLOCKS = 4
#: Most output columns per block.
MAX_PIXELS = 8
#: Registers left to LLVM's scheduler (address arithmetic lives in general registers).
SLACK = 2


@dataclass(frozen=True)
class FloatConvPlan:
    """The register block of the float convolution: ``lanes`` channels per vector, ``blocks``
    vectors of channels times ``pixels`` output columns of accumulators."""

    lanes: int
    blocks: int
    pixels: int

    @property
    def registers(self) -> int:
        """Vector registers the block holds: accumulators, weights, one broadcast."""
        return self.pixels * self.blocks + self.blocks + 1


def vector_registers(target: TargetInfo) -> int:
    """Architectural vector registers: 32 on AVX-512 (``zmm0-31``) and NEON (``v0-31``), 16 on
    AVX2 / SSE (``ymm0-15``)."""
    return 32 if target.vector_bytes == 64 or target.popcount == "neon" else 16


def plan_float_conv(target: TargetInfo, out_channels: int) -> FloatConvPlan:
    """The block with the most fused multiply-adds per step (``P*B``) that fits the registers,
    the fewest loads per multiply-add (``(P + B) / (P*B)``) on a tie; ``B`` never exceeds the
    channel vectors of the layer."""
    lanes = max(1, target.vector_bytes // 4)
    budget = vector_registers(target) - SLACK
    vectors = max(1, -(-out_channels // lanes))
    fitting = [FloatConvPlan(lanes, blocks, pixels)
               for blocks in range(1, min(MAX_BLOCKS, vectors) + 1)
               for pixels in range(1, MAX_PIXELS + 1)
               if FloatConvPlan(lanes, blocks, pixels).registers <= budget]

    def merit(plan: FloatConvPlan) -> tuple[int, float]:
        work = plan.pixels * plan.blocks
        return work, -(plan.pixels + plan.blocks) / work

    return max(fitting, key=merit, default=FloatConvPlan(lanes, 1, 1))


def lower_conv2d(em: Emitter, op: Conv2dOp, ctx: LoweringContext) -> None:
    """``bnn.conv2d``: the integer form by :func:`~bnnmlir.passes.loops.int8_conv.lower_int8_conv2d`;
    the float form with constant weights vectorized (module docstring), else scalar loops."""
    if op.is_integer:
        lower_int8_conv2d(em, op, ctx)
        return
    w = _float_weights(op)
    if w is not None:
        lower_float_conv2d(em, op, ctx, w)
        return
    chain = None if op.steps is None else ChainCode(op.steps, value_shape(op.weight)[0],
                                                    ctx.add_global)
    support.lower_conv2d(em, op, ctx, None if chain is None else
                         lambda e, acc, o: chain.emit(e, acc, o, 1, _no_extra))


def lower_dense(em: Emitter, op: DenseOp, ctx: LoweringContext) -> None:
    """``bnn.dense``: the integer form by :func:`~bnnmlir.passes.loops.int8_conv.lower_int8_dense`;
    the float form with constant weights vectorized (module docstring), else scalar loops."""
    w = None if op.is_integer else _float_weights(op)
    if w is not None:
        lower_float_dense(em, op, ctx, w)
    elif op.is_integer:
        lower_int8_dense(em, op, ctx)
    else:
        support.lower_dense(em, op, ctx)


def _float_weights(op: Conv2dOp | DenseOp) -> np.ndarray | None:
    """The constant float weights of ``op``, else ``None``."""
    return constant_weights(op, op.weight, value_shape(op.weight), np.float32)


def _no_extra(em: Emitter, k: int) -> SSAValue:
    raise AssertionError("a convolution's chain has no add_input step (verifier)")


def lower_float_conv2d(em: Emitter, op: Conv2dOp, ctx: LoweringContext, w: np.ndarray) -> None:
    """The vectorized loop nest of a float ``op`` whose weights ``w`` (``[O, KH, KW, C]``) are
    constant (module docstring)."""
    assert op.out is not None
    n, h, wd, c = value_shape(op.input)
    o, kh, kw, _ = w.shape
    _, oh, ow, _ = value_shape(op.out)
    (pt, _, pl, _) = op.pads
    geo = Geometry(op.input, op.out, n, h, wd, c, o, kh, kw, oh, ow, tuple(op.stride_hw),
                   tuple(op.dilation_hw), (pt, pl), lambda a, b, cc, d: [a, b, cc, d],
                   lambda a, b, cc, d: [a, b, cc, d])
    _emit(em, ctx, geo, w, op.bias, op.steps)


def lower_float_dense(em: Emitter, op: DenseOp, ctx: LoweringContext, w: np.ndarray) -> None:
    """The vectorized loops of a float ``bnn.dense`` whose weights ``w`` (``[O, C]``) are
    constant: the ``1 x 1`` convolution of the ``1 x N`` image of the batch rows."""
    assert op.out is not None
    n, c = value_shape(op.input)
    o = w.shape[0]
    geo = Geometry(op.input, op.out, 1, 1, n, c, o, 1, 1, 1, n, (1, 1), (1, 1), (0, 0),
                   lambda a, b, cc, d: [cc, d], lambda a, b, cc, d: [cc, d])
    _emit(em, ctx, geo, w.reshape(o, 1, 1, c), op.bias)


def _emit(em: Emitter, ctx: LoweringContext, s: Geometry, w: np.ndarray,
          bias: SSAValue | None, steps: ArrayAttr | None = None) -> None:
    x, out = s.x, s.out
    plan = plan_float_conv(ctx.target, s.o)
    chain = None if steps is None else ChainCode(steps, s.o, ctx.add_global)
    (sh, sw), (dh, dw), (pt, pl) = s.stride, s.dilation, s.pad
    check_h = _needs_check(s.h, s.oh, s.kh, sh, dh, pt)
    check_w = _needs_check(s.w, s.ow, s.kw, sw, dw, pl)
    relaid = np.ascontiguousarray(w.transpose(1, 2, 3, 0))
    wtype = MemRefType(f32, list(relaid.shape))
    weights = em.get_global(ctx.add_global("__bnn_float_conv_weights",
                                           [float(v) for v in relaid.ravel()], wtype), wtype)
    # Groups of output channels: (first channel, lanes per vector, vectors).
    lanes, blocks = plan.lanes, plan.blocks
    full = s.o // lanes * lanes
    groups = [(o0, lanes, min(blocks, (full - o0) // lanes))
              for o0 in range(0, full, lanes * blocks)]
    groups += [(o0, 1, min(blocks, s.o - o0)) for o0 in range(full, s.o, blocks)]

    def load(e: Emitter, ref: SSAValue, idx: list[SSAValue], width: int) -> SSAValue:
        return e.vload(ref, idx, width) if width > 1 else e.load(ref, idx)

    def splat(e: Emitter, value: SSAValue, width: int) -> SSAValue:
        return e.emit(vector.BroadcastOp(value, VectorType(f32, [width]))) if width > 1 else value

    def group(e: Emitter, n, oh, cols: Sequence[SSAValue], ih0, iw0s: Sequence[SSAValue],
              o0: int, width: int, count: int, check: bool) -> None:
        """The outputs ``(oh, col)`` for ``col`` in ``cols``, channels ``o0 + b * width``;
        ``check``: test each tap's column against the input (one column only)."""
        channels = [e.index(o0 + b * width) for b in range(count)]

        def tap_row(e1: Emitter, i: SSAValue, accs: Sequence[SSAValue]) -> list[SSAValue]:
            ih = e1.add(ih0, e1.affine(i, dh, 0))
            ok_h = _in_range(e1, ih, s.h) if check_h else None

            def tap(e2: Emitter, j: SSAValue, accs2: Sequence[SSAValue]) -> list[SSAValue]:
                iws = [e2.add(iw0, e2.affine(j, dw, 0)) for iw0 in iw0s]
                ok = _and(e2, ok_h, _in_range(e2, iws[0], s.w) if check else None)

                def channels_loop(e3: Emitter) -> list[SSAValue]:
                    def step(e4: Emitter, ch: SSAValue,
                             accs4: Sequence[SSAValue]) -> list[SSAValue]:
                        ws = [load(e4, weights, [i, j, ch, o], width) for o in channels]
                        new = []
                        for p, iw in enumerate(iws):
                            value = _to_f32(e4, e4.load(x, s.x_index(n, ih, iw, ch)))
                            xv = splat(e4, value, width)
                            new += [e4.emit(math.FmaOp(xv, wv, acc))
                                    for acc, wv in zip(accs4[p * count:(p + 1) * count], ws)]
                        return new

                    if s.c > UNROLL_CHANNELS:
                        return e3.loop(0, s.c, step, list(accs2))
                    state = list(accs2)
                    for ch in range(s.c):
                        state = step(e3, e3.index(ch), state)
                    return state

                return _if(e2, ok, channels_loop, list(accs2))

            return e1.loop(0, s.kw, tap, accs)

        zero = splat(e, f32_const(e, 0.0), width)
        accs = e.loop(0, s.kh, tap_row, [zero] * (count * len(cols)))
        for p, col in enumerate(cols):
            for acc, o in zip(accs[p * count:(p + 1) * count], channels):
                if bias is not None:
                    acc = e.emit(arith.AddfOp(acc, load(e, bias, [o], width)))
                if chain is not None:
                    acc = chain.emit(e, acc, o, width, _no_extra)
                index = s.out_index(n, oh, col, o)
                if width > 1:
                    e.emit(vector.StoreOp(acc, out, index))
                else:
                    e.store(acc, out, index)

    # Columns whose taps all lie inside the input run P at a time, without column checks.
    pixels = plan.pixels
    lo = min(s.ow, -(-pl // sw))
    hi = max(lo, min(s.ow, (s.w - 1 + pl - (s.kw - 1) * dw) // sw + 1))
    blocked_end = lo + (hi - lo) // pixels * pixels

    def row(e: Emitter, r: SSAValue) -> None:
        n = e.emit(arith.DivUIOp(r, e.index(s.oh))) if s.n > 1 else e.index(0)
        oh = e.emit(arith.RemUIOp(r, e.index(s.oh))) if s.n > 1 else r
        ih0 = e.affine(oh, sh, -pt)

        def columns(count: int, check: bool) -> Callable[[Emitter, SSAValue, list], list]:
            def body(e2: Emitter, ow: SSAValue, _s2) -> list:
                cols = [e2.add(ow, e2.index(p)) for p in range(count)]
                iw0s = [e2.affine(col, sw, -pl) for col in cols]
                for o0, width, count_ in groups:
                    group(e2, n, oh, cols, ih0, iw0s, o0, width, count_, check)
                return []

            return body

        e.loop(0, lo, columns(1, check_w))
        e.loop(lo, blocked_end, columns(pixels, False), step=pixels)
        e.loop(blocked_end, s.ow, columns(1, check_w))

    rows = s.n * s.oh
    macs = rows * s.ow * s.o * s.kh * s.kw * s.c
    if ctx.parallel and rows > 1 and macs >= MIN_PARALLEL_MACS:
        em.parallel(rows, row)
    else:
        em.loop(0, rows, lambda e, r, _s: row(e, r) or [])
