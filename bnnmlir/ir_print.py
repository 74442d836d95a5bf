"""Printing IR, with large constants elided on request.

Constants (weights, packed weights, per-channel parameters) are ``dense`` attributes, which xDSL
stores as their raw little-endian bytes; printed in full, one of more than 100 elements is the hex
string ``dense<"0x...">``, which parses back to the same bytes, so the full form round-trips.
``elide_larger_than=N`` prints every constant of more than ``N`` elements as
``dense_resource<__elided__> : type`` (what ``mlir-opt --mlir-elide-elementsattrs-if-larger=N``
prints): readable, still parseable, but the values are gone.
"""

from __future__ import annotations

from io import StringIO

from xdsl.dialects.builtin import (
    ArrayAttr,
    DenseIntOrFPElementsAttr,
    DenseResourceAttr,
    DictionaryAttr,
)
from xdsl.ir import Attribute, Operation
from xdsl.printer import Printer

ELIDED = "__elided__"
"""The resource handle that stands for an elided constant."""


def _elided(attr: Attribute, limit: int) -> Attribute:
    """``attr`` with every dense constant of more than ``limit`` elements (also inside
    dictionaries and arrays) replaced by ``dense_resource<__elided__>`` of the same type."""
    if isinstance(attr, DenseIntOrFPElementsAttr):
        return DenseResourceAttr.from_params(ELIDED, attr.type) if len(attr) > limit else attr
    if isinstance(attr, DictionaryAttr):
        entries = {k: _elided(v, limit) for k, v in attr.data.items()}
        changed = any(entries[k] is not v for k, v in attr.data.items())
        return DictionaryAttr(entries) if changed else attr
    if isinstance(attr, ArrayAttr):
        items = [_elided(v, limit) for v in attr.data]
        changed = any(a is not b for a, b in zip(items, attr.data))
        return ArrayAttr(items) if changed else attr
    return attr


def elide_large_constants(op: Operation, limit: int) -> Operation:
    """A copy of ``op`` whose constants of more than ``limit`` elements are elided (``op`` is
    unchanged). Only for printing: the copy does not verify."""
    copy = op.clone()
    for inner in copy.walk():
        for table in (inner.properties, inner.attributes):
            for name, value in table.items():
                table[name] = _elided(value, limit)
    return copy


def print_ir(op: Operation, *, generic: bool = False, elide_larger_than: int | None = None) -> str:
    """The text of ``op``; constants of more than ``elide_larger_than`` elements elided (``None``:
    every value printed, the form that parses back to the same IR)."""
    if elide_larger_than is not None:
        if elide_larger_than < 0:
            raise ValueError(f"elide_larger_than must be >= 0, got {elide_larger_than}")
        op = elide_large_constants(op, elide_larger_than)
    out = StringIO()
    Printer(stream=out, print_generic_format=generic).print_op(op)
    return out.getvalue()
