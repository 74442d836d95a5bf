"""``bnn-pack-weights``: bit-pack constant tensors at compile time.

Rewrite::

    %w = arith.constant dense<...> : tensor<... x C x T>
    %p = bnn.binarize %w : tensor<... x C x T> -> tensor<... x ceil(C/8) x i8>

into ``%p = arith.constant dense<packed> : tensor<... x ceil(C/8) x i8>`` where ``packed`` is
:func:`bnnmlir.bits.pack_bits` of the constant: bit ``c % 8`` of word ``c // 8`` is 1 iff value
``c`` is negative (so ``x >= 0`` is +1, exactly ``bnn.binarize``). Words are stored as signless
``i8`` (values above 127 wrap to their two's-complement negative). The constant stays if it has
other users.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from xdsl.context import Context
from xdsl.dialects import arith
from xdsl.dialects.builtin import DenseIntOrFPElementsAttr, ModuleOp, TensorType
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import (
    PatternRewriter,
    PatternRewriteWalker,
    RewritePattern,
    op_type_rewrite_pattern,
)

from bnnmlir.bits import pack_bits
from bnnmlir.dialects.bnn import BinarizeOp
from bnnmlir.ir_utils import dense_to_numpy, numpy_to_dense


class PackConstantBinarize(RewritePattern):
    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: BinarizeOp, rewriter: PatternRewriter) -> None:
        source = op.input.owner
        if op.result is None or not isinstance(source, arith.ConstantOp):
            return
        value = source.value
        if not isinstance(value, DenseIntOrFPElementsAttr):
            return
        result_type = op.result.type
        assert isinstance(result_type, TensorType)
        packed = pack_bits(dense_to_numpy(value)).view(np.int8)
        rewriter.replace(op, arith.ConstantOp(numpy_to_dense(packed, result_type)))


@dataclass(frozen=True)
class PackWeightsPass(ModulePass):
    """Fold ``bnn.binarize`` of constants into packed ``i8`` constants."""

    name = "bnn-pack-weights"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        PatternRewriteWalker(PackConstantBinarize()).rewrite_module(op)
        # Constants left without users after folding are removed.
        for const in list(op.walk()):
            if isinstance(const, arith.ConstantOp) and not const.result.uses:
                if isinstance(const.value, DenseIntOrFPElementsAttr):
                    const.detach()
                    const.erase()
