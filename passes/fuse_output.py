"""``bnn-fuse-output``: move the integer output transform into ``bnn.bconv2d``.

Rewrites (value form):

* ``%a = bnn.bconv2d %x, %w`` (``i32``) ``; %y = bnn.clip8 %a`` -> ``%y = bnn.bconv2d %x, %w
  {output = "clip8"}`` (``i8``);
* ``%a = bnn.bconv2d %x, %w`` ``; %y = bnn.threshold %a {thresholds = T, directions = D}`` ->
  ``%y = bnn.bconv2d %x, %w {output = "threshold", thresholds = T, directions = D}`` (packed);
* ``%a = bnn.bconv2d %x, %w`` ``; %y = bnn.requant8 %a {kind = k, p1 = A1, ...}`` ->
  ``%y = bnn.bconv2d %x, %w {output = "requant8", requant = {kind = k, p1 = A1, ...}}`` (``i8``):
  the requant8 properties move, unchanged, into the ``requant`` dictionary.

All are identities by the definition of the fused forms (``dialects/bnn.py``): the fused result is
the output transform applied to the accumulator ``acc``, which is the ``i32`` result of the unfused
convolution; for requant8, ``out[n, oh, ow, o] = requant8_o(acc[n, oh, ow, o])`` with the map of
channel ``o``, since the channel of ``bnn.requant8`` is the last dimension, the output channel of
the convolution (so its per-channel arrays already have one entry or row per output channel).

Preconditions: the convolution is in value form, has no output transform yet and its result has
no other user (otherwise the ``i32`` tensor is still needed, and fusing would compute the
convolution twice). The fused op keeps the convolution's location.
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import DictionaryAttr, ModuleOp, StringAttr
from xdsl.ir import Attribute, Operation
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import (
    GreedyRewritePatternApplier,
    PatternRewriter,
    PatternRewriteWalker,
    RewritePattern,
    op_type_rewrite_pattern,
)

from bnnmlir.dialects.bnn import BConv2dOp, Clip8Op, ThresholdOp
from bnnmlir.dialects.bnn_support import Requant8Op


def _sole_conv_producer(op: Operation) -> BConv2dOp | None:
    """The ``i32`` value-form ``bnn.bconv2d`` feeding ``op`` if ``op`` is its only user."""
    conv = op.operands[0].owner
    if not isinstance(conv, BConv2dOp) or conv.result is None or not op.results:
        return None
    if conv.output_kind != "i32" or not conv.result.has_one_use():
        return None
    return conv


def _fuse(rewriter: PatternRewriter, op: Operation, conv: BConv2dOp,
          extra: dict[str, Attribute]) -> None:
    properties = dict(conv.properties)
    properties.update(extra)
    fused = BConv2dOp.create(
        operands=[conv.input, conv.weight],
        result_types=[op.results[0].type],
        properties=properties,
        attributes=dict(conv.attributes),
    )
    fused.location = conv.location
    rewriter.replace(op, fused)
    rewriter.erase(conv)


class FuseClip8(RewritePattern):
    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: Clip8Op, rewriter: PatternRewriter) -> None:
        conv = _sole_conv_producer(op)
        if conv is not None:
            _fuse(rewriter, op, conv, {"output": StringAttr("clip8")})


class FuseThreshold(RewritePattern):
    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: ThresholdOp, rewriter: PatternRewriter) -> None:
        conv = _sole_conv_producer(op)
        if conv is not None:
            _fuse(rewriter, op, conv, {
                "output": StringAttr("threshold"),
                "thresholds": op.thresholds,
                "directions": op.directions,
            })


class FuseRequant8(RewritePattern):
    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: Requant8Op, rewriter: PatternRewriter) -> None:
        conv = _sole_conv_producer(op)
        if conv is not None:
            _fuse(rewriter, op, conv, {
                "output": StringAttr("requant8"),
                "requant": DictionaryAttr(op.params),
            })


@dataclass(frozen=True)
class FuseOutputPass(ModulePass):
    """Fuse ``bnn.clip8`` / ``bnn.threshold`` / ``bnn.requant8`` of a single-use ``bnn.bconv2d``
    into it."""

    name = "bnn-fuse-output"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        patterns = [FuseClip8(), FuseThreshold(), FuseRequant8()]
        PatternRewriteWalker(
            GreedyRewritePatternApplier(patterns), apply_recursively=False
        ).rewrite_module(op)
