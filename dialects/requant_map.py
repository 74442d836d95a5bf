"""The requant8 map: the exact per-channel integer map onto ``[-127, 127]`` that ``bnn.requant8``
holds as properties and a ``bnn.bconv2d`` with ``output = "requant8"`` in its ``requant``
dictionary (semantics of each kind: :class:`bnnmlir.dialects.bnn_support.Requant8Op`)."""

from __future__ import annotations

from collections.abc import Mapping

from xdsl.dialects.builtin import DenseArrayBase, IntegerAttr, StringAttr
from xdsl.ir import Attribute
from xdsl.utils.exceptions import VerifyException

from bnnmlir.bits import CLIP8_MIN
from bnnmlir.dialects.common import is_int

INT32_MAX = 2**31 - 1

REQUANT_KINDS = ("affine", "breakpoints", "table")
REQUANT_PROPS = {
    "affine": ("multiplier", "offset", "shift"),
    "breakpoints": ("base", "step", "breakpoints"),
    "table": ("lo", "table"),
}
"""The parameter names of each ``bnn.requant8`` kind."""


I64_MAX = 2**63 - 1


def verify_requant8_params(where: str, params: Mapping[str, Attribute], channels: int,
                           noun: str = "property") -> str:
    """Check the ``kind`` and arrays of a requant8 map over ``channels`` channels; return the kind.

    ``params`` maps ``kind`` (a string) and the parameter names of :data:`REQUANT_PROPS` to their
    attributes, as ``bnn.requant8`` holds them as properties and a ``bnn.bconv2d`` with
    ``output = "requant8"`` in its ``requant`` dictionary. Errors start with ``where`` (e.g.
    ``'bnn.requant8'``) and call a missing entry a ``noun``. The rules are those of
    :class:`~bnnmlir.dialects.bnn_support.Requant8Op`.
    """
    kind_attr = params.get("kind")
    if not isinstance(kind_attr, StringAttr):
        raise VerifyException(f"{where} needs the {noun} 'kind' (a string)")
    kind = kind_attr.data
    if kind not in REQUANT_KINDS:
        raise VerifyException(
            f"{where} kind must be one of {', '.join(REQUANT_KINDS)}, got '{kind}'"
        )
    extra = [n for n in params if n != "kind" and n not in REQUANT_PROPS[kind]]
    if extra:
        raise VerifyException(f"{where} of kind '{kind}' takes no '{extra[0]}'")

    def array(name: str, width: int, length: int | None = None,
              multiple_of: int | None = None) -> tuple[int, ...]:
        arr = params.get(name)
        if arr is None:
            raise VerifyException(f"{where} needs the {noun} '{name}'")
        if not isinstance(arr, DenseArrayBase) or not is_int(arr.elt_type, width):
            got = arr.elt_type if isinstance(arr, DenseArrayBase) else arr
            raise VerifyException(f"{where} {name} must be an array of i{width}, got {got}")
        vals = tuple(arr.get_values())
        if length is not None and len(vals) != length:
            raise VerifyException(f"{where} {name} needs {length} values, got {len(vals)}")
        if multiple_of is not None and (not vals or len(vals) % multiple_of):
            raise VerifyException(
                f"{where} {name} needs a positive multiple of {multiple_of} values (one row per "
                f"channel), got {len(vals)}"
            )
        return vals  # type: ignore[return-value]

    c = channels
    if kind == "affine":
        m, b, s = array("multiplier", 64, c), array("offset", 64, c), array("shift", 64, c)
        if any(abs(v) > INT32_MAX for v in m):
            raise VerifyException(f"{where} multipliers must be within +-(2**31 - 1)")
        if any(abs(v) > 2**62 for v in b):
            raise VerifyException(f"{where} offsets must be within +-2**62")
        if any(not 0 <= v <= 62 for v in s):
            raise VerifyException(f"{where} shifts must be within [0, 62], got {list(s)}")
    elif kind == "breakpoints":
        base, step = array("base", 8, c), array("step", 8, c)
        bps = array("breakpoints", 32, multiple_of=c)
        if any(v not in (-1, 1) for v in step):
            raise VerifyException(f"{where} steps must be +1 or -1, got {list(step)}")
        if any(v < CLIP8_MIN for v in base):
            raise VerifyException(f"{where} bases must be within [-127, 127]")
        width = len(bps) // c
        for ch in range(c):
            row = bps[ch * width : (ch + 1) * width]
            if any(a > b for a, b in zip(row, row[1:])):
                raise VerifyException(
                    f"{where} breakpoints of channel {ch} are not sorted: {list(row)}"
                )
    else:
        lo = params.get("lo")
        if not isinstance(lo, IntegerAttr) or not is_int(lo.type, 64):
            raise VerifyException(f"{where} of kind 'table' needs an i64 'lo'")
        table = array("table", 8, multiple_of=c)
        if any(v < CLIP8_MIN for v in table):
            raise VerifyException(f"{where} table entries must be within [-127, 127]")
        last = lo.value.data + len(table) // c - 1
        if last > I64_MAX:
            raise VerifyException(
                f"{where} table ends at lo + {len(table) // c} - 1 = {last}, beyond 2**63 - 1"
            )
    return kind
