"""Fold ``sign(fn(x))`` on an integer domain into the per-channel threshold of ``bnn.threshold``.

Semantics produced (identical to ``bnn.threshold``): for channel ``c``

* ``d[c] = +1``: +1 iff ``x >= t[c]``;  ``d[c] = -1``: +1 iff ``x <= t[c]``;
* always +1: ``d = +1, t = -2**31``;  always -1: ``d = -1, t = -2**31``.

Method: the sign of ``fn`` at ``lo`` and ``hi`` gives the candidate direction; a vectorized binary
search over all channels finds the switching point (``log2(hi - lo)`` calls of ``fn`` on
``[1, C]``); then ONE exhaustive pass over ``[lo, hi] x channels`` checks the threshold against
``fn`` on every integer. A channel whose sign is not a single step (non-monotone function, several
crossings) fails that check and raises :class:`FoldingError` naming the channel: nothing
approximate is returned.
Cost: ``(hi - lo + 1) * C`` evaluations of ``fn`` in chunks (e.g. ``9217 x 1024`` for ``K = 4608``
takes well under a second for a BatchNorm), plus the search.
"""

from __future__ import annotations

import numpy as np

from bnnmlir.folding.domain import ChannelFn, FoldingError, check_domain, domain_chunks, evaluate

CONSTANT_THRESHOLD = -(2**31)
"""Threshold of a constant channel (``d = +1``: always +1, ``d = -1``: always -1)."""

ZERO_PLUS = "plus"
"""``fn(x) == 0`` binarizes to +1 (the bit convention: ``x >= 0`` is +1)."""
ZERO_ERROR = "error"
"""``fn(x) == 0`` anywhere on the domain raises (``torch.sign`` would give 0, a third value)."""


def _plus(y: np.ndarray, x: np.ndarray, zero: str) -> np.ndarray:
    """+1 mask of ``y`` (``[d, C]``) evaluated at inputs ``x`` (broadcastable to ``y``)."""
    bad = np.isnan(y)
    if zero == ZERO_ERROR:
        bad |= y == 0
    if bad.any():
        row, channel = np.argwhere(bad)[0]
        at = int(np.broadcast_to(x, y.shape)[row, channel])
        what = "NaN" if np.isnan(y[row, channel]) else "exactly 0 (torch.sign gives 0, not +-1)"
        raise FoldingError(f"channel {channel}: fn({at}) is {what}")
    return y >= 0


def apply_threshold(
    x: np.ndarray, thresholds: np.ndarray, directions: np.ndarray, channel_axis: int = -1
) -> np.ndarray:
    """``bnn.threshold`` on integers ``x``, as +-1 ``int8``, channels on ``channel_axis``."""
    x = np.moveaxis(np.asarray(x, dtype=np.int64), channel_axis, -1)
    t = np.asarray(thresholds, dtype=np.int64)
    d = np.asarray(directions, dtype=np.int64)
    plus = np.where(d > 0, x >= t, x <= t)
    return np.moveaxis(np.where(plus, 1, -1).astype(np.int8), -1, channel_axis)


def _search(
    fn: ChannelFn, channels: int, lo: int, hi: int, zero: str
) -> tuple[np.ndarray, np.ndarray]:
    """Candidate thresholds/directions assuming every channel is a single step."""
    ends = np.array([[lo], [hi]], dtype=np.int64)
    plus = _plus(evaluate(fn, np.broadcast_to(ends, (2, channels))), ends, zero)
    plus_lo, plus_hi = plus[0], plus[1]
    changing = plus_lo != plus_hi
    left = np.full(channels, lo, dtype=np.int64)  # sign(left) == sign(lo)
    right = np.full(channels, hi, dtype=np.int64)  # sign(right) == sign(hi)
    while True:
        active = changing & (right - left > 1)
        if not active.any():
            break
        mid = np.where(active, (left + right) // 2, left)
        at_mid = _plus(evaluate(fn, mid[None, :]), mid[None, :], zero)[0]
        like_lo = at_mid == plus_lo
        left = np.where(active & like_lo, mid, left)
        right = np.where(active & ~like_lo, mid, right)
    thresholds = np.full(channels, CONSTANT_THRESHOLD, dtype=np.int64)
    directions = np.where(plus_lo, 1, -1).astype(np.int8)  # constants: +1 -> d=+1, -1 -> d=-1
    rising = changing & ~plus_lo  # -1 ... -1 +1 ... +1: first +1 is `right`
    falling = changing & plus_lo  # +1 ... +1 -1 ... -1: last +1 is `left`
    thresholds[rising], directions[rising] = right[rising], 1
    thresholds[falling], directions[falling] = left[falling], -1
    return thresholds.astype(np.int32), directions


def fold_sign(
    fn: ChannelFn, channels: int, lo: int, hi: int, *, zero: str = ZERO_PLUS
) -> tuple[np.ndarray, np.ndarray]:
    """Exact ``bnn.threshold`` parameters of ``x -> (+1 if fn(x) >= 0 else -1)`` on ``[lo, hi]``.

    ``fn`` maps a ``[D, C]`` float32 tensor of integer candidates to ``[D, C]`` (see
    :mod:`bnnmlir.folding.domain`). ``zero`` is :data:`ZERO_PLUS` (``fn(x) == 0`` gives +1, the bit
    convention) or :data:`ZERO_ERROR` (a zero anywhere raises, for ``torch.sign``). Returns
    ``(thresholds int32[C], directions int8[C])``, verified on every integer of the domain. Raises
    :class:`FoldingError` if a channel is not a single-threshold function, or ``fn`` gives NaN.
    """
    if zero not in (ZERO_PLUS, ZERO_ERROR):
        raise ValueError(f"zero must be {ZERO_PLUS!r} or {ZERO_ERROR!r}, got {zero!r}")
    check_domain(channels, lo, hi)
    thresholds, directions = _search(fn, channels, lo, hi, zero)
    for x, y in domain_chunks(fn, channels, lo, hi):
        expected = np.where(_plus(y, x, zero), 1, -1)
        mismatch = apply_threshold(x, thresholds, directions) != expected
        if mismatch.any():
            row, channel = np.argwhere(mismatch)[0]
            raise FoldingError(
                f"channel {channel}: sign(fn(x)) is not a single-threshold step function on "
                f"[{lo}, {hi}] (first disagreement with the best threshold at x = {int(x[row, 0])})"
            )
    return thresholds, directions


def fold_torch_sign(
    fn: ChannelFn, channels: int, lo: int, hi: int
) -> tuple[np.ndarray, np.ndarray]:
    """Fold ``torch.sign(fn(x))`` (which maps 0 to 0) as a binarization.

    This is a binarization only if ``fn(x) != 0`` on the whole domain; otherwise
    :class:`FoldingError` names a channel and an ``x`` where ``fn(x) == 0``
    (:func:`zero_points` lists them all).
    """
    return fold_sign(fn, channels, lo, hi, zero=ZERO_ERROR)


def zero_points(fn: ChannelFn, channels: int, lo: int, hi: int) -> np.ndarray:
    """All ``(x, channel)`` of the domain with ``fn(x) == 0`` exactly (``+0.0`` or ``-0.0``).

    Returns ``int64 [n, 2]`` sorted by ``x`` then channel; empty means ``torch.sign(fn(x))`` never
    produces 0 on ``[lo, hi]``. Cost: one exhaustive pass.
    """
    check_domain(channels, lo, hi)
    found = []
    for x, y in domain_chunks(fn, channels, lo, hi):
        rows, cols = np.nonzero(y == 0)
        found.append(np.stack([x[rows, 0], cols.astype(np.int64)], axis=1))
    return np.concatenate(found, axis=0)
