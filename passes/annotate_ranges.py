"""``bnn-annotate-ranges``: write the value-range analysis (:mod:`bnnmlir.passes.value_range`)
onto the IR as ``bnn.range = [lo, hi]``, so that the ranges can be checked in tests."""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import ArrayAttr, IntegerAttr, ModuleOp, i64
from xdsl.passes import ModulePass

from bnnmlir.passes.value_range import IntRange, ValueRanges

RANGE_ATTR = "bnn.range"


def range_attr(r: IntRange) -> ArrayAttr:
    return ArrayAttr([IntegerAttr(r.lo, i64), IntegerAttr(r.hi, i64)])


@dataclass(frozen=True)
class AnnotateRangesPass(ModulePass):
    """Attach ``bnn.range = [lo, hi]`` to every op whose single result has an integer range."""

    name = "bnn-annotate-ranges"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        ranges = ValueRanges()
        ranges.prime(op)
        for inner in op.walk():
            if len(inner.results) != 1:
                continue
            r = ranges.range_of(inner.results[0])
            if r is not None:
                inner.attributes[RANGE_ATTR] = range_attr(r)
