"""``bnn-fuse-output``: move the integer output transform into ``bnn.bconv2d``.

Rewrites (value form):

* ``%a = bnn.bconv2d %x, %w`` (``i32``) ``; %y = bnn.clip8 %a`` -> ``%y = bnn.bconv2d %x, %w
  {output = "clip8"}`` (``i8``);
* ``%a = bnn.bconv2d %x, %w`` ``; %y = bnn.threshold %a {thresholds = T, directions = D}`` ->
  ``%y = bnn.bconv2d %x, %w {output = "threshold", thresholds = T, directions = D}`` (packed);
* ``%a = bnn.bconv2d %x, %w`` ``; %y = bnn.requant8 %a {kind = k, p1 = A1, ...}`` ->
  ``%y = bnn.bconv2d %x, %w {output = "requant8", requant = {kind = k, p1 = A1, ...}}`` (``i8``):
  the requant8 properties move, unchanged, into the ``requant`` dictionary.

* ``%y = bnn.bconv2d ... {output = "clip8" | "requant8"}`` ``; %s = bnn.add %y, %r`` (``i8 + i8``)
  ``; %z = bnn.clip8 %s`` -> ``%z = bnn.bconv2d ... residual %r {output = ...}`` (either operand
  of the add may be the convolution).

* ``%t = bnn.transpose %x`` ``; %a = bnn.affine %t`` (the same scale or divisor and bias on every
  channel) ``; %q = bnn.clip8 %a`` (f32) -> ``%a' = bnn.affine %x; %q' = bnn.clip8 %a';
  %q = bnn.transpose %q'``: the input quantization runs on the contiguous input (vector code)
  and the layout change moves bytes instead of floats. An element-wise map that is the same on
  every element commutes with any permutation of the elements; the affine's arrays are repeated
  to the new last dimension.

* integer ``%a = bnn.conv2d %x, %w`` ``; %y = bnn.requant8 %a {...}`` -> ``%y = bnn.conv2d %x, %w
  {requant = {...}}`` (``i8``), the same move for the int8 convolution (the stem).

All are identities by the definition of the fused forms (``dialects/bnn.py``): the fused result is
the output transform applied to the accumulator ``acc``, which is the ``i32`` result of the unfused
convolution; for requant8, ``out[n, oh, ow, o] = requant8_o(acc[n, oh, ow, o])`` with the map of
channel ``o``, since the channel of ``bnn.requant8`` is the last dimension, the output channel of
the convolution (so its per-channel arrays already have one entry or row per output channel).

For the residual: the fused result is ``clip8(t + r)`` with ``t`` the convolution's ``i8``
output, which is ``bnn.clip8(bnn.add(t, r))`` by definition (``i8 + i8`` sign-extends into an
exact ``i16`` sum). The fused op sits where the ``bnn.clip8`` was, after the definitions of
``%r``, of the convolution's operands and of the add.

Preconditions: the convolution is in value form, has no output transform yet and its result has
no other user (otherwise the ``i32`` tensor is still needed, and fusing would compute the
convolution twice). The fused op keeps the convolution's location.
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import (
    DenseArrayBase,
    DictionaryAttr,
    ModuleOp,
    StringAttr,
    TensorType,
    i8,
    i32,
)
from xdsl.ir import Attribute, Operation, SSAValue
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import (
    GreedyRewritePatternApplier,
    PatternRewriter,
    PatternRewriteWalker,
    RewritePattern,
    op_type_rewrite_pattern,
)

from bnnmlir.dialects.bnn import BConv2dOp, Clip8Op, ThresholdOp
from bnnmlir.dialects.bnn_support import AddOp, AffineOp, Conv2dOp, Requant8Op, TransposeOp
from bnnmlir.dialects.common import elem_of, is_int


def _sole_conv_producer(op: Operation) -> BConv2dOp | None:
    """The ``i32`` value-form ``bnn.bconv2d`` feeding ``op`` if ``op`` is its only user."""
    conv = op.operands[0].owner
    if not isinstance(conv, BConv2dOp) or conv.result is None or not op.results:
        return None
    if conv.output_kind != "i32" or not conv.result.has_one_use():
        return None
    return conv


def _residual_of(add: AddOp) -> tuple[BConv2dOp, SSAValue] | None:
    """``(conv, r)`` when ``add`` (its only use being a clip8) is ``conv + r`` of two ``i8``
    operands, ``conv`` a single-use value-form ``bnn.bconv2d`` with an ``i8`` output and no
    residual yet."""
    if add.result is None or not add.result.has_one_use():
        return None
    if not all(is_int(elem_of(v.type), 8) for v in (add.lhs, add.rhs)):
        return None
    for conv_value, other in ((add.lhs, add.rhs), (add.rhs, add.lhs)):
        conv = conv_value.owner
        if (isinstance(conv, BConv2dOp) and conv.result is not None and conv.residual is None
                and conv.output_kind in ("clip8", "requant8") and conv.result.has_one_use()):
            return conv, other
    return None


def _fuse(rewriter: PatternRewriter, op: Operation, conv: BConv2dOp,
          extra: dict[str, Attribute], residual: SSAValue | None = None,
          add: AddOp | None = None) -> None:
    properties = dict(conv.properties)
    properties.update(extra)
    # Last, where the parser puts it: the printed generic form is the same either way.
    properties.pop("operandSegmentSizes", None)
    properties["operandSegmentSizes"] = DenseArrayBase.from_list(i32, [1, 1, int(residual is not None), 0])
    fused = BConv2dOp.create(
        operands=[conv.input, conv.weight, *([residual] if residual is not None else [])],
        result_types=[op.results[0].type],
        properties=properties,
        attributes=dict(conv.attributes),
    )
    fused.location = conv.location
    rewriter.replace(op, fused)
    if add is not None:
        rewriter.erase(add)
    rewriter.erase(conv)


class FuseClip8(RewritePattern):
    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: Clip8Op, rewriter: PatternRewriter) -> None:
        conv = _sole_conv_producer(op)
        if conv is not None:
            _fuse(rewriter, op, conv, {"output": StringAttr("clip8")})
            return
        add = op.operands[0].owner
        if isinstance(add, AddOp) and op.results and (found := _residual_of(add)) is not None:
            conv, residual = found
            _fuse(rewriter, op, conv, {}, residual, add)


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
        int8 = op.operands[0].owner
        if (isinstance(int8, Conv2dOp) and int8.is_integer and int8.requant is None
                and int8.result is not None and int8.result.has_one_use()):
            properties = dict(int8.properties)
            properties["requant"] = DictionaryAttr(op.params)
            properties["operandSegmentSizes"] = properties.pop("operandSegmentSizes")
            fused = Conv2dOp.create(operands=list(int8.operands), result_types=[op.result.type],
                                    properties=properties, attributes=dict(int8.attributes))
            fused.location = int8.location
            rewriter.replace(op, fused)
            rewriter.erase(int8)
            return
        conv = _sole_conv_producer(op)
        if conv is not None:
            _fuse(rewriter, op, conv, {
                "output": StringAttr("requant8"),
                "requant": DictionaryAttr(op.params),
            })


def _uniform_affine(op: Operation) -> AffineOp | None:
    """``op`` if it is a single-use value-form ``bnn.affine`` with the same parameters on every
    channel."""
    if not isinstance(op, AffineOp) or op.result is None or not op.result.has_one_use():
        return None
    arrays = [op.bias, op.divisor if op.divides else op.scale]
    if any(a is None or len(set(a.get_values())) != 1 for a in arrays):
        return None
    return op


class QuantizeBeforeTranspose(RewritePattern):
    """``clip8(affine(transpose(x)))`` -> ``transpose(clip8(affine(x)))`` (module docstring)."""

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: Clip8Op, rewriter: PatternRewriter) -> None:
        affine = _uniform_affine(op.operands[0].owner)
        if affine is None or op.result is None:
            return
        transpose = affine.input.owner
        if (not isinstance(transpose, TransposeOp) or transpose.result is None
                or not transpose.result.has_one_use()):
            return
        x = transpose.input
        shape = list(x.type.get_shape())  # type: ignore[attr-defined]
        channels = shape[-1]
        params = {name: DenseArrayBase.from_list(
                      arr.elt_type, [arr.get_values()[0]] * channels)  # type: ignore[arg-type]
                  for name, arr in affine.properties.items() if isinstance(arr, DenseArrayBase)}
        new_affine = AffineOp.create(operands=[x], result_types=[TensorType(
            affine.result.type.get_element_type(), shape)], properties=params)  # type: ignore[union-attr]
        clip = Clip8Op(new_affine.results[0], TensorType(i8, shape))
        moved = TransposeOp(clip.results[0], transpose.perm, op.result.type)
        for new, old in ((new_affine, affine), (clip, op), (moved, transpose)):
            new.location = old.location
        rewriter.replace(op, [new_affine, clip, moved])
        rewriter.erase(affine)
        rewriter.erase(transpose)


@dataclass(frozen=True)
class FuseOutputPass(ModulePass):
    """Fuse ``bnn.clip8`` / ``bnn.threshold`` / ``bnn.requant8`` of a single-use ``bnn.bconv2d``,
    and the residual ``clip8(add(conv, r))`` of an ``i8`` one, into it; quantize an input before
    its transpose."""

    name = "bnn-fuse-output"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        patterns = [FuseClip8(), QuantizeBeforeTranspose(), FuseThreshold(), FuseRequant8()]
        PatternRewriteWalker(
            GreedyRewritePatternApplier(patterns), apply_recursively=False
        ).rewrite_module(op)
