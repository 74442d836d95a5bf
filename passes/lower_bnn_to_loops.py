"""``lower-bnn-to-loops``: buffer-form bnn ops (level 2) to loop nests (level 3, docs/lowering.md).

Input: ``func.func``s whose ``bnn.binarize``, ``bnn.bconv2d``, ``bnn.clip8`` and ``bnn.threshold``
ops are in buffer form on memrefs of static shape and identity layout. Each op is replaced, in
place, by a loop nest that writes its ``into`` buffer; constants (``arith.constant``,
``memref.get_global``) are created once at the function entry. Anything else (value form, dynamic
shapes, strided layouts) fails the pass with a diagnostic naming the op.

* ``bnn.binarize``: per row and word, byte = OR of ``(x[c] < 0) << (c % 8)`` over the word's
  channels (``cmpf olt`` for f32, ``cmpi slt`` for ints); the last word only has ``C % 8``.
* ``bnn.threshold``: the same packing with bit 1 iff ``x < t[c]`` (``d[c] = +1``) or ``x > t[c]``
  (``d[c] = -1``); ``t`` and ``d`` are private constant ``memref.global``s.
* ``bnn.clip8``: ``trunci(minsi(maxsi(x, -127), 127))``.
* ``bnn.bconv2d``: direct convolution, the reduction over each tap's packed bytes a chain of
  ``bnn.narrow_acc`` on ``M``-byte vectors chosen from the target's vector width, see
  :mod:`bnnmlir.passes.loops.bconv2d`. A fused output transform is applied to each ``i32``
  result before its store: ``clip8`` and ``threshold`` as the standalone ops, ``requant8`` with
  the per-element code of ``bnn.requant8`` (its arrays private constant ``memref.global``s);
  an ``f32`` output runs its float chain on the accumulator (:mod:`~.loops.float_chain`).
* ``bnn.elementwise``: per row of channels, vectors of ``vector_bytes / 4`` lanes then a scalar
  tail (:mod:`bnnmlir.passes.loops.float_chain`).

* integer ``bnn.conv2d`` / ``bnn.dense`` with constant weights: dot-product vector kernels
  (``vpdpbusd``, ``vpmaddwd``, ``sdot``, ``smull`` + ``sadalp``, by ``TargetInfo.int8_dot``), see
  :mod:`bnnmlir.passes.loops.int8_conv`; the float forms keep the loops of
  :mod:`bnnmlir.passes.loops.support`.

Narrow accumulation, the proof (details in :mod:`bnnmlir.passes.accumulator_width`): one output is
a chain of ``S = KH*KW*Q`` steps (``Q`` chunks per tap). A step adds at most ``8*G`` to a lane of
``G`` bytes, so ``A``-bit lanes are exact for ``n`` steps iff ``n*8*G <= 2**A - 1``. The pass takes
8-bit lanes if ``S`` steps fit, else 16-bit lanes, else 16-bit lanes flushed into an ``i32`` total
after every row of taps or every tap, else 32-bit lanes; every ``narrow_acc`` carries the length
of its uninterrupted chain as ``max_steps``, which the op verifier re-checks. The lanes are summed
in ``i32`` (extended lane by lane), or in the lane type when that sum is provably at most
``2**A - 1`` (a whole output's popcount is at most ``K = KH*KW*C``); the sum of all lanes is at
most ``8*KH*KW*Q*M < 2**31`` (checked), and ``K - 2*popcount`` is the exact output, ``|out| <= K``.

Options: ``target`` (``host`` or ``aarch64``, :func:`bnnmlir.target.get_target`) gives the
vector width and the popcount kind; ``parallel`` makes the outer loop of every convolution, over the ``N*OH`` output
rows, an ``scf.parallel`` with one induction variable and no reductions (binary layers of at least
``MIN_PARALLEL_MACS`` MACs; a blocked binary layer whose rows alone do not share out evenly loops
over rows x parts of its output channels, :func:`~bnnmlir.passes.loops.bconv2d.channel_parts`), and the first two dimensions of every support op of at least
``MIN_PARALLEL_ELEMENTS`` elements one such loop over rows: below those sizes a split costs more
than it saves.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import Operation
from xdsl.passes import ModulePass
from xdsl.rewriter import InsertPoint, Rewriter
from xdsl.utils.exceptions import PassFailedException

from bnnmlir.dialects import bnn_support as support_ops
from bnnmlir.dialects.bnn import BConv2dOp, BinarizeOp, Clip8Op, ThresholdOp
from bnnmlir.passes.loops import support
from bnnmlir.passes.loops.bconv2d import lower_bconv2d
from bnnmlir.passes.loops.elementwise import lower_binarize, lower_clip8, lower_threshold
from bnnmlir.passes.loops.float_chain import lower_elementwise
from bnnmlir.passes.loops.emitter import ConstantPool, Emitter
from bnnmlir.passes.loops.float_conv import lower_conv2d, lower_dense
from bnnmlir.passes.loops.pool import lower_pool2d
from bnnmlir.passes.loops.quantize import lower_quantize
from bnnmlir.passes.loops.lowering import (
    Lowering,
    LoweringContext,
    ModuleGlobals,
    cannot_lower,
    check_buffer_form,
)
from bnnmlir.target import get_target


def lowering_settings() -> dict[str, object]:
    """The process-wide settings besides the pass options that change the code this pass emits
    (a forced block plan, the blocked-kernel, row-copy and parallel-split thresholds as they are
    now), for the key of a compiled program."""
    from bnnmlir.passes.loops import bconv2d, bconv_plan, lowering

    return {"block": os.environ.get(bconv_plan.FORCE_ENV),
            "min_blocked_macs": lowering.MIN_BLOCKED_MACS,
            "min_unchecked_rows_macs": lowering.MIN_UNCHECKED_ROWS_MACS,
            "min_parallel_macs": bconv2d.MIN_PARALLEL_MACS}


LOWERINGS: Mapping[type[Operation], Lowering] = {
    BinarizeOp: lower_binarize,
    ThresholdOp: lower_threshold,
    Clip8Op: lower_clip8,
    BConv2dOp: lower_bconv2d,
    support_ops.Requant8Op: support.lower_requant8,
    support_ops.CastOp: support.lower_cast,
    support_ops.BatchNormOp: support.lower_batch_norm,
    support_ops.AffineOp: support.lower_affine,
    support_ops.Conv2dOp: lower_conv2d,
    support_ops.DenseOp: lower_dense,
    support_ops.Pool2dOp: lower_pool2d,
    support_ops.GlobalAvgPoolOp: support.lower_global_avg_pool,
    support_ops.AddOp: support.lower_add,
    support_ops.MulOp: support.lower_mul,
    support_ops.ActivationOp: support.lower_activation,
    support_ops.ElementwiseOp: lower_elementwise,
    support_ops.ConcatOp: support.lower_concat,
    support_ops.ReshapeOp: support.lower_reshape,
    support_ops.TransposeOp: support.lower_transpose,
    support_ops.QuantizeOp: lower_quantize,
}
"""The loop lowering of every op that ``lower-bnn-to-loops`` replaces."""


@dataclass(frozen=True)
class LowerBnnToLoopsPass(ModulePass):
    """Buffer-form bnn ops to loop nests with narrow accumulation (see the module docstring)."""

    name = "lower-bnn-to-loops"

    target: str = "host"
    parallel: bool = False
    global_tag: str = ""
    """Suffix of the stems of the globals the lowering adds (see :class:`ModuleGlobals`)."""
    min_unchecked_rows_macs: int = -1
    """A binary or integer convolution's interior rows get a copy of the kernel without row
    checks when they carry at least this many MACs, else every row runs the checked code (-1:
    the default, ``MIN_UNCHECKED_ROWS_MACS``; 0: always two copies)."""
    min_blocked_macs: int = -1
    """A binary convolution of at least this many MACs gets the register-blocked kernel where it
    applies, a smaller one the compact per-pixel code (-1: the default, ``MIN_BLOCKED_MACS``;
    0: every size)."""

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        try:
            target = get_target(self.target)
        except ValueError as e:
            raise PassFailedException(f"lower-bnn-to-loops: {e}") from None
        for option in ("min_unchecked_rows_macs", "min_blocked_macs"):
            if getattr(self, option) < -1:
                raise PassFailedException(
                    f"lower-bnn-to-loops: {option} must be a number of MACs >= 0, or -1 for the "
                    f"default, got {getattr(self, option)}")
        module_globals = ModuleGlobals(op, self.global_tag)
        for fn in list(op.ops):
            if isinstance(fn, func.FuncOp) and not fn.is_declaration:
                self._lower_function(LoweringContext(target, self.parallel, module_globals, fn,
                                                     self.min_unchecked_rows_macs,
                                                     self.min_blocked_macs))

    @staticmethod
    def _lower_function(ctx: LoweringContext) -> None:
        fn = ctx.function
        targets = [o for o in fn.walk() if type(o) in LOWERINGS]
        for bnn_op in targets:
            check_buffer_form(bnn_op)
        if not targets:
            return
        pool = ConstantPool(fn.body.blocks[0])
        for bnn_op in targets:
            em = Emitter(InsertPoint.before(bnn_op), pool)
            try:
                LOWERINGS[type(bnn_op)](em, bnn_op, ctx)
            except ValueError as e:
                raise cannot_lower(bnn_op, str(e)) from None
            Rewriter.erase_op(bnn_op)
