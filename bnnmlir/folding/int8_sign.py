"""Fold ``binarize(requant8(x))`` on an integer domain into the thresholds of ``bnn.threshold``.

``requant8`` maps the integer ``x`` of channel ``c`` onto ``[-127, 127]`` (semantics of
``bnn.requant8``); ``binarize`` gives +1 iff that value is ``>= 0``. The +1 set
``P_c = {x in [lo, hi] : requant8_c(x) >= 0}`` is derived per kind with integer arithmetic only
(no float, no approximation); every kind ends in ``clamp(v, -127, 127)`` and ``clamp(v) >= 0`` iff
``v >= 0``, so the clamp is ignored:

``affine`` (``v = x * m + b`` in int64, ``out = clamp(v >> s)``)
    ``v >> s = floor(v / 2**s) >= 0`` iff ``v >= 0`` iff ``x * m >= -b``: for ``m > 0``
    ``x >= ceil(-b / m) = -floor(b / m)`` (up-set), for ``m < 0`` ``x <= floor(b / -m)``
    (down-set), for ``m = 0`` constant (+1 iff ``b >= 0``).
``breakpoints`` (``out = clamp(base + step * n(x))``, ``n(x) = #{j : row[j] <= x}``)
    The row is sorted (pads ``2**31 - 1`` included, as the op counts them), so for
    ``1 <= k <= B``: ``n(x) >= k`` iff ``x >= row[k - 1]``; ``n(x) >= k`` always for ``k <= 0``
    and never for ``k > B``. ``step = +1``: +1 iff ``n(x) >= -base`` (up-set).
    ``step = -1``: +1 iff ``n(x) <= base`` iff not ``n(x) >= base + 1``, i.e.
    ``x <= row[base] - 1`` (down-set).
``table`` (``out = table[i(x)]``, ``i(x) = clamp(x, lo_t, lo_t + D - 1) - lo_t``)
    ``i`` is non-decreasing and takes every index of ``[i(lo), i(hi)]``, so ``P_c`` is an up-set
    iff the signs of ``table[i(lo) .. i(hi)]`` are ``-..-+..+`` (first ``+`` at index ``j``:
    ``x >= lo_t + j``) and a down-set iff they are ``+..+-..-`` (last ``+`` at ``j``:
    ``x <= lo_t + j``); with more than one sign change no threshold exists and
    :class:`FoldingError` names the channel. Cost: ``O(C * D)``.

The up-set ``{x >= t}`` / down-set ``{x <= t}`` is then written as ``bnn.threshold`` documents:
direction ``+1`` / ``-1`` with ``t`` strictly inside the domain, or a constant channel (always +1:
``t = -2**31, d = +1``; always -1: ``t = -2**31, d = -1``, which is +1 at ``x = -2**31`` only, so
when the domain reaches ``-2**31`` it is written ``t = 2**31 - 1, d = +1`` instead, and when the
domain is the whole ``i32`` range no threshold can say "always -1": :class:`FoldingError`).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from bnnmlir.folding.domain import FoldingError
from bnnmlir.folding.sign import CONSTANT_THRESHOLD

INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1


def _threshold(up: bool, t: int, lo: int, hi: int, channel: int) -> tuple[int, int]:
    """``(t, d)`` of ``{x >= t}`` (``up``) or ``{x <= t}`` restricted to ``[lo, hi]``."""
    always = t <= lo if up else t >= hi
    never = t > hi if up else t < lo
    if always:
        return CONSTANT_THRESHOLD, 1
    if not never:
        return t, 1 if up else -1
    if lo > INT32_MIN:
        return CONSTANT_THRESHOLD, -1
    if hi < INT32_MAX:
        return INT32_MAX, 1
    raise FoldingError(
        f"channel {channel}: always -1 on the whole i32 range, which no threshold expresses"
    )


def _affine(m: int, b: int) -> tuple[bool, int | None]:
    """``(up, t)``, ``t = None`` for a constant channel (then ``up`` says +1)."""
    if m == 0:
        return b >= 0, None
    if m > 0:
        return True, -(b // m)
    return False, b // -m


def _breakpoints(base: int, step: int, row: np.ndarray) -> tuple[bool, int | None]:
    width = len(row)
    if step > 0:
        k = -base
        if k <= 0 or k > width:
            return k <= 0, None
        return True, int(row[k - 1])
    k = base + 1
    if k <= 0 or k > width:
        return k > width, None
    return False, int(row[k - 1]) - 1


def _table(row: np.ndarray, table_lo: int, lo: int, hi: int, channel: int
           ) -> tuple[bool, int | None]:
    last = len(row) - 1
    first_i = min(max(lo, table_lo), table_lo + last) - table_lo
    last_i = min(max(hi, table_lo), table_lo + last) - table_lo
    plus = row[first_i : last_i + 1] >= 0
    changes = np.flatnonzero(plus[1:] != plus[:-1])
    if changes.size == 0:
        return bool(plus[0]), None
    if changes.size > 1:
        raise FoldingError(
            f"channel {channel}: the sign of the table changes {changes.size} times on "
            f"[{lo}, {hi}], so no single threshold exists"
        )
    j = first_i + int(changes[0])  # plus[j - first_i] != plus[j + 1 - first_i]
    if plus[0]:
        return False, table_lo + j  # last +1 at index j
    return True, table_lo + j + 1  # first +1 at index j + 1


def fold_requant8_sign(requant: Mapping[str, object], lo: int, hi: int
                       ) -> tuple[np.ndarray, np.ndarray]:
    """``bnn.threshold`` parameters equal to ``binarize(requant8(x))`` for every ``x`` of
    ``[lo, hi]`` (math in the module docstring).

    ``requant`` holds ``kind`` and that kind's arrays as ``bnn.requant8`` names them:
    ``multiplier``/``offset``/``shift`` (``[C]``), ``base``/``step`` (``[C]``) and
    ``breakpoints`` (``[C, B]`` rows), or ``lo`` and ``table`` (``[C, D]`` rows). Returns
    ``(thresholds int32[C], directions int8[C])``; raises :class:`FoldingError` when a channel's
    +1 set is not an up-set or a down-set of the domain (a table only), or is "always -1" on the
    whole ``i32`` range.
    """
    if lo > hi:
        raise FoldingError(f"empty integer domain [{lo}, {hi}]")
    kind = str(requant["kind"])

    def array(name: str) -> np.ndarray:
        return np.asarray(requant[name], dtype=np.int64)

    if kind == "affine":
        sets = [_affine(int(m), int(b)) for m, b in zip(array("multiplier"), array("offset"))]
    elif kind == "breakpoints":
        rows = array("breakpoints")
        sets = [_breakpoints(int(b), int(s), rows[c])
                for c, (b, s) in enumerate(zip(array("base"), array("step")))]
    elif kind == "table":
        table_lo = int(requant["lo"])  # type: ignore[call-overload]
        sets = [_table(row, table_lo, lo, hi, c) for c, row in enumerate(array("table"))]
    else:
        raise ValueError(f"unknown requant8 kind {kind!r}")
    pairs = []
    for c, (up, t) in enumerate(sets):
        if t is None:  # constant: always +1 (up) or always -1
            t = INT32_MIN if up else INT32_MAX + 1
            up = True
        pairs.append(_threshold(up, t, lo, hi, c))
    thresholds, directions = zip(*pairs)
    return np.array(thresholds, dtype=np.int32), np.array(directions, dtype=np.int8)
