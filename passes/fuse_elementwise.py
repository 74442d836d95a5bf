"""``bnn-fuse-elementwise``: chains of float element-wise ops become one ``bnn.elementwise``, and
one that starts with the ``i32 -> f32`` cast of a binary convolution moves into it.

Each op below is a chain of steps (:mod:`bnnmlir.dialects.float_chain`) on its main operand:

* ``bnn.cast`` of an integer: ``cast`` (of an ``f32``: no step, a copy);
* ``bnn.affine``: ``mul`` (or ``div``) ``scale[c]``, then ``add bias[c]``;
* ``bnn.batch_norm``: ``fma scale[c], shift[c]`` with ``scale = (1 / sqrt(var + eps)) * gamma``
  and ``shift = fma(-mean, scale, beta)`` rounded to f32 at compile time, the very numbers and
  the single rounding of its loop lowering (``batch_norm_parameters``);
* float ``bnn.activation``: relu ``max 0.0``; hardtanh ``max lo``, ``min hi``; prelu ``prelu``;
* float ``bnn.add a, b``: ``add_input`` of the other operand (``a + b = b + a`` in IEEE
  arithmetic, so either operand may carry the chain).

Rewrites (value form):

* ``%p = P(%x, extras_P)``; ``%y = Y(%p, extras_Y)`` with ``P``, ``Y`` of the list above or
  ``bnn.elementwise`` and ``%p`` used only by ``Y`` -> ``%y = bnn.elementwise %x, extras_P,
  extras_Y {steps = steps_P ++ steps_Y}`` (the ``add_input`` indices of ``Y`` shifted by the
  number of extras of ``P``). The merged chain applies the same f32 operations, in the same
  order, to the same operands: ``Y(P(x)) = (steps_P ++ steps_Y)(x)`` element by element, bit
  for bit. A lone op stays as it is.
* ``%a = bnn.bconv2d %x, %w`` (``i32``, used only here); ``%y = bnn.elementwise %a [, %r]
  {steps}`` (``steps[0] = cast``, at most one extra operand) -> ``%y = bnn.bconv2d %x, %w
  [residual %r] {output = "f32", steps}``: by definition of the ``f32`` output the chain runs
  on the accumulator in registers, and neither the ``i32`` nor an ``f32`` intermediate tensor
  is written. A lone ``bnn.cast`` of such a convolution moves in the same way.
* ``%a = bnn.conv2d %x, %w [bias %b]`` (float form, used only here); ``%y = Y(%a)`` with ``Y`` a
  chain without extra operands (a BatchNorm, an affine map, an activation, or a
  ``bnn.elementwise`` of those) -> ``%y = bnn.conv2d %x, %w [bias %b] {steps}`` (the steps of an
  already fused chain first): by definition of ``steps`` the chain runs on each sum after the
  bias, the same f32 operations in the same order, and the ``f32`` intermediate is not written.

The fused op keeps the location of the last op of its chain (of the convolution when fused
into it).
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import (ArrayAttr, DenseArrayBase, DictionaryAttr, IntegerAttr,
                                   ModuleOp, StringAttr, i32, i64)
from xdsl.ir import Operation, SSAValue
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import (GreedyRewritePatternApplier, PatternRewriter,
                                   PatternRewriteWalker, RewritePattern)

from bnnmlir.dialects.bnn import BConv2dOp
from bnnmlir.dialects.bnn_support import (
    ActivationOp,
    AddOp,
    AffineOp,
    BatchNormOp,
    CastOp,
    Conv2dOp,
    ElementwiseOp,
)
from bnnmlir.dialects.common import elem_of, is_int
from bnnmlir.dialects.float_chain import input_of, kind_of, step
from bnnmlir.passes.loops.support import batch_norm_parameters

Chain = tuple[SSAValue, list[SSAValue], list[DictionaryAttr]]
"""``(main operand, extra operands, steps)``."""


def _is_f32_out(op: Operation) -> bool:
    return len(op.results) == 1 and not is_int(elem_of(op.results[0].type))


def chain_of(op: Operation, main: SSAValue) -> Chain | None:
    """``op`` as a chain on its operand ``main``, ``None`` if it is not a value-form float
    element-wise op of the module docstring."""
    if not op.results or not _is_f32_out(op):
        return None
    if isinstance(op, ElementwiseOp):
        if main is not op.inputs[0]:
            return None
        return main, list(op.inputs[1:]), list(op.steps.data)  # type: ignore[arg-type]
    if isinstance(op, CastOp):
        return main, [], [step("cast")] if is_int(elem_of(main.type)) else []
    if isinstance(op, AffineOp):
        if op.divides:
            first = step("div", values=op.divisor.get_values())  # type: ignore[union-attr]
        else:
            first = step("mul", values=op.scale.get_values())  # type: ignore[union-attr]
        return main, [], [first, step("add", values=op.bias.get_values())]
    if isinstance(op, BatchNormOp):
        scale, shift = batch_norm_parameters(op)
        return main, [], [step("fma", scale=scale, shift=shift)]
    if isinstance(op, ActivationOp):
        kind = op.kind.data
        if kind == "relu":
            return main, [], [step("max", value=0.0)]
        if kind == "hardtanh":
            lo, hi = op.bounds
            return main, [], [step("max", value=lo), step("min", value=hi)]
        return main, [], [step("prelu", values=op.slopes.get_values())]  # type: ignore[union-attr]
    if isinstance(op, AddOp):
        other = op.rhs if main is op.lhs else op.lhs
        return main, [other], [step("add_input", input=1)]
    return None


def _shifted(steps: list[DictionaryAttr], by: int) -> list[DictionaryAttr]:
    """``steps`` with each ``add_input`` index moved by ``by``."""
    out = []
    for s in steps:
        if kind_of(s) == "add_input" and by:
            s = DictionaryAttr({**s.data, "input": IntegerAttr(input_of(s) + by, i64)})
        out.append(s)
    return out


def _mains(op: Operation) -> list[SSAValue]:
    """The operands that may carry the chain of ``op``."""
    if isinstance(op, AddOp):
        return [op.lhs, op.rhs]
    if isinstance(op, ElementwiseOp):
        return [op.inputs[0]] if op.inputs else []
    return [op.operands[0]] if op.operands else []


class MergeChains(RewritePattern):
    """``Y(P(x))`` -> one ``bnn.elementwise`` (module docstring)."""

    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        for main in _mains(op):
            producer = main.owner
            if not isinstance(producer, Operation) or not main.has_one_use():
                continue
            if producer.parent is not op.parent:
                continue
            outer = chain_of(op, main)
            inner = chain_of(producer, producer.operands[0] if producer.operands else main)
            if outer is None or inner is None:
                continue
            x, inner_extras, inner_steps = inner
            _, outer_extras, outer_steps = outer
            steps = inner_steps + _shifted(outer_steps, len(inner_extras))
            if not steps:
                continue
            fused = ElementwiseOp([x, *inner_extras, *outer_extras], steps, op.results[0].type)
            fused.location = op.location
            rewriter.replace(op, fused)
            rewriter.erase(producer)
            return


class FuseIntoBConv(RewritePattern):
    """``Y(bconv2d)`` -> ``bconv2d {output = "f32"}`` (module docstring): ``Y`` starts with the
    cast of an ``i32`` convolution, or continues the chain of an ``f32`` one."""

    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        for main in _mains(op):
            conv = main.owner
            if (isinstance(conv, BConv2dOp) and conv.result is not None and main.has_one_use()
                    and conv.output_kind in ("i32", "f32")):
                chain = chain_of(op, main)
                if chain is not None:
                    self.fuse(op, conv, chain, rewriter)
                    return

    @staticmethod
    def fuse(op: Operation, conv: BConv2dOp, chain: Chain, rewriter: PatternRewriter) -> None:
        _, extras, steps = chain
        before: list[DictionaryAttr] = []
        residual = [] if conv.residual is None else [conv.residual]
        if conv.output_kind == "f32":
            before = list(conv.steps.data)  # type: ignore[union-attr,arg-type]
        elif not steps or kind_of(steps[0]) != "cast":
            return
        if len(residual) + len(extras) > 1 or not steps:
            return
        properties = dict(conv.properties)
        properties.pop("operandSegmentSizes", None)
        properties["output"] = StringAttr("f32")
        properties["steps"] = ArrayAttr(before + _shifted(steps, len(residual)))
        operands = [conv.input, conv.weight, *residual, *extras]
        properties["operandSegmentSizes"] = DenseArrayBase.from_list(
            i32, [1, 1, len(operands) - 2, 0])
        fused = BConv2dOp.create(operands=operands, result_types=[op.results[0].type],
                                 properties=properties, attributes=dict(conv.attributes))
        fused.location = conv.location
        rewriter.replace(op, fused)
        rewriter.erase(conv)


class FuseIntoFloatConv(RewritePattern):
    """``Y(conv2d)`` -> ``conv2d {steps}`` for a float convolution (module docstring)."""

    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        for main in _mains(op):
            conv = main.owner
            if not (isinstance(conv, Conv2dOp) and not conv.is_integer
                    and conv.result is not None and main.has_one_use()):
                continue
            chain = chain_of(op, main)
            if chain is None or chain[1] or not chain[2]:
                continue
            before = [] if conv.steps is None else list(conv.steps.data)
            properties = dict(conv.properties)
            properties["steps"] = ArrayAttr(before + chain[2])
            fused = Conv2dOp.create(operands=list(conv.operands),
                                    result_types=[op.results[0].type],
                                    properties=properties, attributes=dict(conv.attributes))
            fused.location = conv.location
            rewriter.replace(op, fused)
            rewriter.erase(conv)
            return


@dataclass(frozen=True)
class FuseElementwisePass(ModulePass):
    """Merge chains of float element-wise ops into ``bnn.elementwise`` and move one that starts
    at a binary convolution's cast, or follows a float convolution, into the convolution (see
    the module docstring)."""

    name = "bnn-fuse-elementwise"

    into_conv: bool = True

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        patterns: list[RewritePattern] = [MergeChains()]
        if self.into_conv:
            patterns += [FuseIntoBConv(), FuseIntoFloatConv()]
        PatternRewriteWalker(GreedyRewritePatternApplier(patterns)).rewrite_module(op)
