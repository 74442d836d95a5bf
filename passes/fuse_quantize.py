"""``bnn-fuse-quantize``: an input's float chain, its clip8 and its layout change become one
``bnn.quantize``, which reads each float once and writes each byte once.

Rewrites (value form; every intermediate has no other user):

* ``%y = P(%x)`` (a float chain op without extra operands: ``bnn.affine``, ``bnn.batch_norm``,
  a float ``bnn.activation``, ``bnn.elementwise`` on one input, see ``bnn-fuse-elementwise``);
  ``%q = bnn.clip8 %y`` (``f32``) -> ``%q = bnn.quantize %x {steps = steps_P, permutation =
  identity}``: by definition ``quantize(x) = clip8(steps_P(x))``, the same f32 operations in
  the same order;
* ``%q = bnn.clip8 %x`` (``f32``); ``%t = bnn.transpose %q {p}`` -> ``%t = bnn.quantize %x
  {steps = [], permutation = p}``;
* ``%q = bnn.quantize %x {s, p}``; ``%t = bnn.transpose %q {t}`` -> ``%t = bnn.quantize %x
  {s, permutation = r}`` with ``r[k] = p[t[k]]``: the transpose of ``q`` has
  ``shape[k] = q.shape[t[k]] = y.shape[p[t[k]]]`` and the same elements;
* ``%y = P(%x)``; ``%q = bnn.quantize %y {s, p}`` -> ``bnn.quantize %x {steps_P ++ s, p}``
  (the chain's channel is the last dimension of ``x`` and of ``y`` alike).

A ``bnn.clip8`` with neither a chain before it nor a transpose after it stays as it is. The
fused op keeps the location of the clip8 (the model's quantizer), not that of a layout change. ``bnn-fuse-output`` moves a uniform
affine + clip8 ahead of a transpose first, so ``clip8(affine(transpose(x)))`` of an NCHW input
ends as one ``bnn.quantize`` of ``x`` (see its docstring).
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import DictionaryAttr, Float32Type, ModuleOp
from xdsl.ir import Operation, SSAValue
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import (GreedyRewritePatternApplier, PatternRewriter,
                                   PatternRewriteWalker, RewritePattern,
                                   op_type_rewrite_pattern)

from bnnmlir.dialects.bnn import Clip8Op
from bnnmlir.dialects.bnn_support import QuantizeOp, TransposeOp
from bnnmlir.dialects.common import elem_of
from bnnmlir.dialects.float_chain import kind_of
from bnnmlir.passes.fuse_elementwise import chain_of


def _single_use_chain(value: SSAValue) -> tuple[SSAValue, list[DictionaryAttr]] | None:
    """``(x, steps)`` when ``value`` is the only-used result of a float chain op on an ``f32``
    ``x`` without extra operands."""
    op = value.owner
    if not isinstance(op, Operation) or not op.operands or not value.has_one_use():
        return None
    chain = chain_of(op, op.operands[0])
    if chain is None:
        return None
    x, extras, steps = chain
    if extras or not isinstance(elem_of(x.type), Float32Type):
        return None
    if any(kind_of(s) in ("cast", "add_input") for s in steps):
        return None
    return x, steps


def _transpose_user(value: SSAValue) -> TransposeOp | None:
    if not value.has_one_use():
        return None
    user = next(iter(value.uses)).operation
    return user if isinstance(user, TransposeOp) and user.result is not None else None


def _replace(rewriter: PatternRewriter, old: Operation, new: QuantizeOp,
             location_of: Operation | None = None) -> None:
    new.location = (location_of or old).location
    rewriter.replace(old, new)


class Clip8ToQuantize(RewritePattern):
    """``clip8(P(x))`` or ``transpose(clip8(x))`` (f32) -> ``bnn.quantize``."""

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: Clip8Op, rewriter: PatternRewriter) -> None:
        if op.result is None or not isinstance(elem_of(op.input.type), Float32Type):
            return
        rank = len(op.input.type.get_shape())  # type: ignore[attr-defined]
        chain = _single_use_chain(op.input)
        if chain is not None:
            producer = op.input.owner
            x, steps = chain
            _replace(rewriter, op, QuantizeOp(x, steps, range(rank), op.result.type))
            rewriter.erase(producer)  # type: ignore[arg-type]
            return
        transpose = _transpose_user(op.result)
        if transpose is not None:
            fused = QuantizeOp(op.input, [], transpose.perm, transpose.result.type)  # type: ignore[union-attr]
            _replace(rewriter, transpose, fused, location_of=op)
            rewriter.erase(op)


class MergeIntoQuantize(RewritePattern):
    """``quantize(P(x))`` -> one chain; ``transpose(quantize(x))`` -> one permutation."""

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: QuantizeOp, rewriter: PatternRewriter) -> None:
        if op.result is None:
            return
        chain = _single_use_chain(op.input)
        if chain is not None:
            producer = op.input.owner
            x, steps = chain
            _replace(rewriter, op, QuantizeOp(x, [*steps, *op.steps.data], op.perm,
                                              op.result.type))
            rewriter.erase(producer)  # type: ignore[arg-type]
            return
        transpose = _transpose_user(op.result)
        if transpose is not None:
            perm = [op.perm[t] for t in transpose.perm]
            fused = QuantizeOp(op.input, op.steps.data, perm, transpose.result.type)  # type: ignore[union-attr]
            _replace(rewriter, transpose, fused, location_of=op)
            rewriter.erase(op)


@dataclass(frozen=True)
class FuseQuantizePass(ModulePass):
    """Fuse float chain + f32 clip8 + transpose into ``bnn.quantize`` (module docstring)."""

    name = "bnn-fuse-quantize"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        PatternRewriteWalker(
            GreedyRewritePatternApplier([Clip8ToQuantize(), MergeIntoQuantize()]),
            apply_recursively=True,
        ).rewrite_module(op)
