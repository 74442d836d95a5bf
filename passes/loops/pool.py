"""Float ``bnn.pool2d`` vectorized over channels.

The op's semantics (:class:`~bnnmlir.dialects.bnn_support.Pool2dOp`) define every output element
on its own: ``max`` folds IEEE ``maximum`` over the window's input elements from ``-inf`` (padding
never selected); ``avg`` sums them from ``+0.0`` in window order (``kh`` outer, ``kw`` inner), then
divides by the window count. Channels are independent, so ``L = vector_bytes / 4`` consecutive
channels run in the lanes of one vector: per window, the accumulator vector starts at the splat
of ``-inf`` / ``+0.0``, each in-range tap loads ``x[n, ih, iw, c0:c0+L]`` and applies the same
single f32 operation (``maximumf`` / ``addf``) as the scalar loops in every lane, and ``avg``
divides by the splat count: bit for bit the scalar result. The accumulator stays in a register
(the scalar loops keep it in the output row); channels past the last full vector run the same
sequence with ``L = 1``. Integer pooling keeps the loops of
:func:`bnnmlir.passes.loops.support.lower_pool2d`.
"""

from __future__ import annotations

from collections.abc import Sequence

from xdsl.dialects import arith, vector
from xdsl.dialects.builtin import Float32Type, VectorType, f32
from xdsl.ir import SSAValue

from bnnmlir.dialects.bnn_support import Pool2dOp
from bnnmlir.ir_utils import value_elem
from bnnmlir.passes.loops import support
from bnnmlir.passes.loops.elementwise import loop_nest, worth_splitting
from bnnmlir.passes.loops.emitter import Emitter
from bnnmlir.passes.loops.lowering import LoweringContext
from bnnmlir.passes.loops.support import _and, _if, _in_range, f32_const


def lower_pool2d(em: Emitter, op: Pool2dOp, ctx: LoweringContext) -> None:
    """``bnn.pool2d``: an ``f32`` input on a vector target as vectors of channels (module
    docstring), anything else the scalar loops."""
    lanes = ctx.target.vector_bytes // 4
    if not isinstance(value_elem(op.input), Float32Type) or lanes < 2:
        support.lower_pool2d(em, op, ctx)
        return
    x, out = op.input, op.out
    assert out is not None
    p = support.PoolWindow.of(op)
    n_, h, wd, c, oh_, ow_, check_h, check_w = p.n, p.h, p.w, p.c, p.oh, p.ow, p.check_h, p.check_w
    (kh, kw), (sh, sw), (pt, pl) = p.kernel, p.stride, p.pad
    is_max = op.kind.data == "max"
    divisor = support.pool_divisor(em, op, ctx.add_global)
    full = c // lanes * lanes

    def splat(e: Emitter, value: SSAValue, width: int) -> SSAValue:
        return e.emit(vector.BroadcastOp(value, VectorType(f32, [width]))) if width > 1 else value

    def load(e: Emitter, idx: Sequence[SSAValue], width: int) -> SSAValue:
        return e.vload(x, idx, width) if width > 1 else e.load(x, idx)

    def window(e: Emitter, n: SSAValue, oh: SSAValue, ow: SSAValue) -> None:
        ih0, iw0 = e.affine(oh, sh, -pt), e.affine(ow, sw, -pl)

        def chunk(e1: Emitter, ch: SSAValue, width: int) -> None:
            def tap_row(e2: Emitter, i: SSAValue, acc: Sequence[SSAValue]) -> list[SSAValue]:
                ih = e2.add(ih0, i)
                ok_h = _in_range(e2, ih, h) if check_h else None

                def tap(e3: Emitter, j: SSAValue, acc3: Sequence[SSAValue]) -> list[SSAValue]:
                    iw = e3.add(iw0, j)
                    ok = _and(e3, ok_h, _in_range(e3, iw, wd) if check_w else None)

                    def take(e4: Emitter) -> list[SSAValue]:
                        v = load(e4, [n, ih, iw, ch], width)
                        combine = arith.MaximumfOp if is_max else arith.AddfOp
                        return [e4.emit(combine(acc3[0], v))]

                    return _if(e3, ok, take, list(acc3))

                return e2.loop(0, kw, tap, acc)

            init = splat(e1, f32_const(e1, float("-inf") if is_max else 0.0), width)
            (acc,) = e1.loop(0, kh, tap_row, [init])
            if not is_max:
                count = (e1.load(divisor, [oh, ow]) if divisor is not None
                         else f32_const(e1, float(kh * kw)))
                acc = e1.emit(arith.DivfOp(acc, splat(e1, count, width)))
            if width > 1:
                e1.emit(vector.StoreOp(acc, out, [n, oh, ow, ch]))
            else:
                e1.store(acc, out, [n, oh, ow, ch])

        e.loop(0, full, lambda e1, ch, _s: chunk(e1, ch, lanes) or [], step=lanes)
        e.loop(full, c, lambda e1, ch, _s: chunk(e1, ch, 1) or [])

    loop_nest(em, (n_, oh_, ow_), lambda e, idx: window(e, *idx),
              worth_splitting(ctx.parallel, n_ * oh_ * ow_ * c * kh * kw))
