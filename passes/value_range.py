"""Value-range analysis: a closed integer interval for every integer-valued SSA value.

A range ``[lo, hi]`` of a value says: every element of the value is an integer ``v`` with
``lo <= v <= hi``. It is attached to integer tensors and to ``f32`` tensors that provably hold
integers (then exactly, ``|v| <= 2**24``). ``None`` means "no integer range known" (a float of
unknown value, or packed bits). Ranges are sound over-approximations, never guesses.

Rules (``K = KH*KW*C`` is the fan-in of a binary convolution; ``T(iN)`` the signed range of ``iN``):

==================================== =============================================================
value                                range
==================================== =============================================================
function argument / block argument   ``T(iN)`` for ``iN`` elements (``i8``: ``[-128, 127]``), else
                                     none
``arith.constant``                   ``[min, max]`` of its elements (floats only if all are
                                     integers with ``|v| <= 2**24``)
``bnn.bconv2d``                      ``[-K, K]`` (every tap adds ``+-1`` per channel or nothing, so
                                     also with ``pad_value = 0``); ``output = "clip8"``: that
                                     clamped to ``[-127, 127]``; ``output = "requant8"``:
                                     ``[-127, 127]``; ``output = "threshold"``: bits
``bnn.clip8``                        the input range clamped to ``[-127, 127]``, or ``[-127, 127]``
                                     (an ``f32`` input without a range is rounded to an integer)
``bnn.requant8``                     ``[-127, 127]``
``bnn.cast``                         the input range (integer input: the float is integer-valued),
                                     unless it leaves ``|v| <= 2**24``
``bnn.add``                          ``[a.lo + b.lo, a.hi + b.hi]``; integers: the result type's
                                     range if the sum may wrap; ``f32``: none if it may leave
                                     ``|v| <= 2**24`` (the addition would round)
``bnn.conv2d``, ``bnn.dense``        integer form (i8 input, constant i8 weights ``w``): per output
                                     channel ``sum_k`` of the extreme products ``w[o,k] * lo`` or
                                     ``w[o,k] * hi`` (with 0 included when padding may drop a tap),
                                     the union over channels; float form: none
``bnn.pool2d`` max                   the input range (avg: none)
``bnn.reshape``, ``bnn.transpose``   the input range; ``bnn.concat``: the union of the inputs
``bnn.activation``                   relu: ``[max(lo, 0), max(hi, 0)]``; hardtanh: clamped to
                                     the bounds (non-integral ``f32`` bounds: only when the range
                                     lies inside them); prelu: the input range if ``lo >= 0``
``bnn.binarize``, ``bnn.threshold``  bits: none
any other integer result             ``T(iN)``; any other float result: none
==================================== =============================================================

:class:`ValueRanges` computes ranges on demand (memoized); ``bnn-annotate-ranges``
(:mod:`bnnmlir.passes.annotate_ranges`) writes them as ``bnn.range = [lo, hi]`` on the defining ops so that
they can be checked in tests.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from xdsl.dialects import arith
from xdsl.dialects.builtin import (
    DenseIntOrFPElementsAttr,
    Float32Type,
    IntegerAttr,
    IntegerType,
)
from xdsl.ir import Attribute, BlockArgument, Operation, OpResult, SSAValue

from bnnmlir.dialects.bnn import BConv2dOp, BinarizeOp, Clip8Op, ThresholdOp
from bnnmlir.dialects.bnn_support import (
    ActivationOp,
    AddOp,
    CastOp,
    ConcatOp,
    Conv2dOp,
    DenseOp,
    Pool2dOp,
    Requant8Op,
    ReshapeOp,
    TransposeOp,
    QuantizeOp,
)
from bnnmlir.ir_utils import dense_to_numpy, value_elem

EXACT_F32_INT = 2**24
"""Every integer with ``|v| <= 2**24`` is exact in ``f32``."""

@dataclass(frozen=True)
class IntRange:
    """The closed integer interval ``[lo, hi]``."""

    lo: int
    hi: int

    def __post_init__(self) -> None:
        if self.lo > self.hi:
            raise ValueError(f"empty range [{self.lo}, {self.hi}]")

    def __add__(self, other: IntRange) -> IntRange:
        return IntRange(self.lo + other.lo, self.hi + other.hi)

    def union(self, other: IntRange) -> IntRange:
        return IntRange(min(self.lo, other.lo), max(self.hi, other.hi))

    def clamp(self, lo: int, hi: int) -> IntRange:
        """The image of this range under ``v -> min(max(v, lo), hi)``."""
        return IntRange(min(max(self.lo, lo), hi), min(max(self.hi, lo), hi))

    def within(self, other: IntRange) -> bool:
        return other.lo <= self.lo and self.hi <= other.hi

    @property
    def magnitude(self) -> int:
        return max(-self.lo, self.hi)

    @staticmethod
    def of_type(elem: Attribute) -> IntRange | None:
        """The signed range of an ``iN`` element type (``None`` for other types)."""
        if not isinstance(elem, IntegerType):
            return None
        width = elem.width.data
        return IntRange(-(2 ** (width - 1)), 2 ** (width - 1) - 1)


CLIP8_RANGE = IntRange(-127, 127)
F32_EXACT_RANGE = IntRange(-EXACT_F32_INT, EXACT_F32_INT)


def _is_f32(value: SSAValue) -> bool:
    return isinstance(value_elem(value), Float32Type)


def _exact_in_f32(r: IntRange | None) -> IntRange | None:
    return r if r is not None and r.within(F32_EXACT_RANGE) else None


# ---------------------------------------------------------------------------------------------
# Rules: op, operand ranges -> range of the (single) result
# ---------------------------------------------------------------------------------------------

Rule = Callable[[Operation, Sequence["IntRange | None"]], "IntRange | None"]
RULES: dict[type[Operation], Rule] = {}


def range_rule(*op_types: type[Operation]):
    def register(fn: Rule) -> Rule:
        for t in op_types:
            RULES[t] = fn
        return fn

    return register


@range_rule(BinarizeOp, ThresholdOp)
def _bits(op: Operation, args: Sequence[IntRange | None]) -> IntRange | None:
    return None


@range_rule(BConv2dOp)
def _bconv2d(op: BConv2dOp, args: Sequence[IntRange | None]) -> IntRange | None:
    acc = IntRange(-op.fan_in, op.fan_in)
    kind = op.output_kind
    if kind == "i32":
        return acc
    if kind == "clip8" and op.residual is None:
        return acc.clamp(CLIP8_RANGE.lo, CLIP8_RANGE.hi)
    if kind in ("clip8", "requant8"):
        return CLIP8_RANGE
    return None


@range_rule(QuantizeOp)
def _quantize(op: QuantizeOp, args: Sequence[IntRange | None]) -> IntRange | None:
    return CLIP8_RANGE


@range_rule(Clip8Op)
def _clip8(op: Clip8Op, args: Sequence[IntRange | None]) -> IntRange | None:
    r = args[0]
    return CLIP8_RANGE if r is None else r.clamp(CLIP8_RANGE.lo, CLIP8_RANGE.hi)


@range_rule(Requant8Op)
def _requant8(op: Requant8Op, args: Sequence[IntRange | None]) -> IntRange | None:
    return CLIP8_RANGE


@range_rule(CastOp)
def _cast(op: CastOp, args: Sequence[IntRange | None]) -> IntRange | None:
    return _exact_in_f32(args[0])


@range_rule(AddOp)
def _add(op: AddOp, args: Sequence[IntRange | None]) -> IntRange | None:
    a, b = args
    if a is None or b is None:
        return None
    total = a + b
    if _is_f32(op.lhs):
        return _exact_in_f32(total)
    limits = IntRange.of_type(value_elem(op.results[0]))
    assert limits is not None
    return total if total.within(limits) else limits


@range_rule(Pool2dOp)
def _pool2d(op: Pool2dOp, args: Sequence[IntRange | None]) -> IntRange | None:
    return args[0] if op.kind.data == "max" else None


@range_rule(ReshapeOp, TransposeOp)
def _data_movement(op: Operation, args: Sequence[IntRange | None]) -> IntRange | None:
    return args[0]


@range_rule(ConcatOp)
def _concat(op: ConcatOp, args: Sequence[IntRange | None]) -> IntRange | None:
    if not args or any(a is None for a in args):
        return None
    result = args[0]
    for a in args[1:]:
        result = result.union(a)  # type: ignore[union-attr, arg-type]
    return result


@range_rule(ActivationOp)
def _activation(op: ActivationOp, args: Sequence[IntRange | None]) -> IntRange | None:
    r = args[0]
    if r is None:
        return None
    kind = op.kind.data
    if kind == "relu":
        return r.clamp(0, max(r.hi, 0))
    if kind == "hardtanh":
        lo, hi = op.bounds
        if lo <= r.lo and r.hi <= hi:
            return r
        if lo != int(lo) or hi != int(hi):
            return None  # a non-integral bound would be reached
        return r.clamp(int(lo), int(hi))
    return r if r.lo >= 0 else None  # prelu is the identity on x >= 0


def _weighted_sum(weights: np.ndarray, x: IntRange, may_skip: bool) -> IntRange:
    """Range of ``sum_k w[o, k] * x_k`` over every output ``o`` (rows of ``weights``)."""
    a, b = weights * x.lo, weights * x.hi
    low, high = np.minimum(a, b), np.maximum(a, b)
    if may_skip:
        low, high = np.minimum(low, 0), np.maximum(high, 0)
    return IntRange(int(low.sum(axis=1).min()), int(high.sum(axis=1).max()))


@range_rule(Conv2dOp, DenseOp)
def _integer_product(op: Operation, args: Sequence[IntRange | None]) -> IntRange | None:
    if getattr(op, "requant", None) is not None:
        return CLIP8_RANGE
    if not getattr(op, "is_integer", False) or args[0] is None:
        return IntRange.of_type(value_elem(op.results[0]))
    weight = op.operands[1].owner
    if not (isinstance(weight, arith.ConstantOp) and isinstance(weight.value, DenseIntOrFPElementsAttr)):
        return IntRange.of_type(value_elem(op.results[0]))
    w = dense_to_numpy(weight.value).astype(np.int64)
    may_skip = isinstance(op, Conv2dOp) and any(op.padding.get_values())
    return _weighted_sum(w.reshape(w.shape[0], -1), args[0], may_skip)


@range_rule(arith.ConstantOp)
def _constant(op: arith.ConstantOp, args: Sequence[IntRange | None]) -> IntRange | None:
    value = op.value
    if isinstance(value, IntegerAttr):
        return IntRange(value.value.data, value.value.data)
    if not isinstance(value, DenseIntOrFPElementsAttr):
        return None
    data = dense_to_numpy(value)
    if data.size == 0:
        return None
    if data.dtype.kind == "f":
        if not (np.all(np.isfinite(data)) and np.all(data == np.round(data))):
            return None
        return _exact_in_f32(IntRange(int(data.min()), int(data.max())))
    return IntRange(int(data.min()), int(data.max()))


# ---------------------------------------------------------------------------------------------
# The analysis
# ---------------------------------------------------------------------------------------------


class ValueRanges:
    """Memoized integer ranges of SSA values (see the module docstring for the rules).

    ``range_of(v)`` computes the ranges of ``v``'s producers first. Call :meth:`prime` on a
    function or module to fill the cache in program order (no deep recursion on long chains).
    Ranges of values created after a query are computed when first asked for.
    """

    def __init__(self) -> None:
        self._cache: dict[SSAValue, IntRange | None] = {}

    def prime(self, root: Operation) -> None:
        for op in root.walk():
            for result in op.results:
                self.range_of(result)

    def range_of(self, value: SSAValue) -> IntRange | None:
        if value in self._cache:
            return self._cache[value]
        result = self._compute(value)
        self._cache[value] = result
        return result

    def _compute(self, value: SSAValue) -> IntRange | None:
        if isinstance(value, BlockArgument):
            return IntRange.of_type(value_elem(value))
        assert isinstance(value, OpResult)
        op = value.op
        rule = RULES.get(type(op))
        if rule is None or len(op.results) != 1:
            return IntRange.of_type(value_elem(value))
        return rule(op, [self.range_of(v) for v in op.operands])
