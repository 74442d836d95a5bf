"""Float ``bnn.conv2d`` with constant weights, vectorized over output channels.

The op's semantics (:class:`~bnnmlir.dialects.bnn_support.Conv2dOp`) fix, per output value, the
order of its sum: ``acc = +0.0``, then ``acc = acc + f32(x) * w`` over the in-bounds taps ``kh``,
``kw`` and the channels ``c`` in that order, then ``+ bias``. Each output channel ``o`` is an
independent sum, so ``L`` of them run in the ``L`` lanes of a vector (``L = vector_bytes / 4``):
for each tap and channel, ``x[n, ih, iw, c]`` broadcast times the weights ``w[o0:o0+L, kh, kw, c]``
(relaid at compile time as ``[KH, KW, C, O]``, contiguous in ``o``), a vector ``mulf`` then
``addf``: in every lane exactly the scalar sequence of operations, so the result is bit-identical
to the scalar loop nest. Up to :data:`BLOCKS` vectors (``BLOCKS * L`` channels) share one
broadcast of ``x``; channels past the last full vector run the same sequence with ``L = 1``.
Interior output columns (every tap inside the input) run :data:`PIXELS` at a time, sharing each
weight vector load; the order of each output's operations is unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from xdsl.dialects import arith, vector
from xdsl.dialects.builtin import MemRefType, VectorType, f32
from xdsl.ir import SSAValue

from bnnmlir.dialects.bnn_support import Conv2dOp
from bnnmlir.ir_utils import value_shape
from bnnmlir.passes.loops.emitter import Emitter
from bnnmlir.passes.loops.lowering import LoweringContext
from bnnmlir.passes.loops.support import _and, _if, _in_range, _needs_check, _to_f32, f32_const

#: Vectors of output channels accumulated together (one broadcast of the input value each).
BLOCKS = 4
#: Output columns computed together (their taps share each weight vector load).
PIXELS = 4
#: Input channel counts up to this are unrolled (a first layer's 3 colour channels).
UNROLL_CHANNELS = 8


def lower_float_conv2d(em: Emitter, op: Conv2dOp, ctx: LoweringContext, w: np.ndarray) -> None:
    """The vectorized loop nest of a float ``op`` whose weights ``w`` (``[O, KH, KW, C]``) are
    constant (module docstring)."""
    x, bias, out = op.input, op.bias, op.out
    assert out is not None
    n_, h, wd, c = value_shape(x)
    o_, kh, kw, _ = w.shape
    _, oh_, ow_, _ = value_shape(out)
    (sh, sw), (dh, dw), (pt, _, pl, _) = op.stride_hw, op.dilation_hw, op.pads
    check_h = _needs_check(h, oh_, kh, sh, dh, pt)
    check_w = _needs_check(wd, ow_, kw, sw, dw, pl)
    lanes = max(1, ctx.target.vector_bytes // 4)
    relaid = np.ascontiguousarray(w.transpose(1, 2, 3, 0))
    wtype = MemRefType(f32, list(relaid.shape))
    weights = em.get_global(ctx.add_global("__bnn_float_conv_weights",
                                           [float(v) for v in relaid.ravel()], wtype), wtype)
    # Groups of output channels: (first channel, lanes per vector, vectors).
    full = o_ // lanes * lanes
    groups = [(o0, lanes, min(BLOCKS, (full - o0) // lanes))
              for o0 in range(0, full, lanes * BLOCKS)]
    groups += [(o0, 1, min(BLOCKS, o_ - o0)) for o0 in range(full, o_, BLOCKS)]

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
            ok_h = _in_range(e1, ih, h) if check_h else None

            def tap(e2: Emitter, j: SSAValue, accs2: Sequence[SSAValue]) -> list[SSAValue]:
                iws = [e2.add(iw0, e2.affine(j, dw, 0)) for iw0 in iw0s]
                ok = _and(e2, ok_h, _in_range(e2, iws[0], wd) if check else None)

                def channels_loop(e3: Emitter) -> list[SSAValue]:
                    def step(e4: Emitter, ch: SSAValue,
                             accs4: Sequence[SSAValue]) -> list[SSAValue]:
                        ws = [load(e4, weights, [i, j, ch, o], width) for o in channels]
                        new = []
                        for p, iw in enumerate(iws):
                            xv = splat(e4, _to_f32(e4, e4.load(x, [n, ih, iw, ch])), width)
                            new += [e4.emit(arith.AddfOp(acc, e4.emit(arith.MulfOp(xv, wv))))
                                    for acc, wv in zip(accs4[p * count:(p + 1) * count], ws)]
                        return new

                    if c > UNROLL_CHANNELS:
                        return e3.loop(0, c, step, list(accs2))
                    state = list(accs2)
                    for ch in range(c):
                        state = step(e3, e3.index(ch), state)
                    return state

                return _if(e2, ok, channels_loop, list(accs2))

            return e1.loop(0, kw, tap, accs)

        zero = splat(e, f32_const(e, 0.0), width)
        accs = e.loop(0, kh, tap_row, [zero] * (count * len(cols)))
        for p, col in enumerate(cols):
            for acc, o in zip(accs[p * count:(p + 1) * count], channels):
                if bias is not None:
                    acc = e.emit(arith.AddfOp(acc, load(e, bias, [o], width)))
                if width > 1:
                    e.emit(vector.StoreOp(acc, out, [n, oh, col, o]))
                else:
                    e.store(acc, out, [n, oh, col, o])

    # Columns whose taps all lie inside the input run PIXELS at a time, without column checks.
    lo = min(ow_, -(-pl // sw))
    hi = max(lo, min(ow_, (wd - 1 + pl - (kw - 1) * dw) // sw + 1))
    blocked_end = lo + (hi - lo) // PIXELS * PIXELS

    def per_n(e: Emitter, n: SSAValue, _s) -> list:
        def per_oh(e1: Emitter, oh: SSAValue, _s1) -> list:
            ih0 = e1.affine(oh, sh, -pt)

            def columns(pixels: int, check: bool):
                def body(e2: Emitter, ow: SSAValue, _s2) -> list:
                    cols = [e2.add(ow, e2.index(p)) for p in range(pixels)]
                    iw0s = [e2.affine(col, sw, -pl) for col in cols]
                    for o0, width, count in groups:
                        group(e2, n, oh, cols, ih0, iw0s, o0, width, count, check)
                    return []

                return body

            e1.loop(0, lo, columns(1, check_w))
            e1.loop(lo, blocked_end, columns(PIXELS, False), step=PIXELS)
            e1.loop(blocked_end, ow_, columns(1, check_w))
            return []

        e.loop(0, oh_, per_oh)
        return []

    em.loop(0, n_, per_n)
