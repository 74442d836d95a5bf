"""Exact extreme slopes between the constraint points of many rising channels at once.

A rising channel has runs ``k = 0 .. R-1``: ``v_k`` on ``[xa_k, xb_k]``, ``v`` increasing, the
runs in order. Its affine fit (:mod:`bnnmlir.folding.requant`) is bounded by two ratios over the
pairs of a run ``i`` above the clamp floor (``low``: ``v_i > -127``) and a run ``j`` below its
ceiling (``up``: ``v_j < 127``)::

    r_hi = min  N / D   over j >= i with D > 0,   N = v_j + 1 - v_i,  D = xb_j - xa_i
    r_lo = max  N'/ D'  over j < i,               N'= v_i - v_j - 1,  D'= xa_i - xb_j

(``j >= i`` is exactly ``D >= 0``, ``j < i`` exactly ``D < 0``; ``D = 0`` only for ``j = i`` and
a run of one value, where ``N = 1``.) Over all ``R**2`` pairs this is quadratic per channel.
Dinkelbach's method gives the same ratios in a few linear passes. For a candidate ``r = p/q``,
``q > 0``::

    G(r) = min over the pairs of (q*N - p*D)
         = min_i [ min_{j >= i, j in up} (q*(v_j + 1) - p*xb_j) - (q*v_i - p*xa_i) ]   (i in low)

is a suffix minimum: one pass. ``G(r) >= 0`` iff no pair's ratio is below ``r``; else the pair of
the minimum has a ratio below ``r`` and is the next candidate, so the candidates decrease
strictly and the loop ends, at the exact minimum, after a handful of passes (the method
converges superlinearly). The first candidate is ``256/1``, above every ratio (``N <= 255``,
``D >= 1``); ``G(256) > 0`` means there is no pair with ``D > 0``. ``r_lo`` is the mirror image:
``F(r) = max_i [ (q*v_i - p*xa_i) - min_{j < i, j in up} (q*(v_j + 1) - p*xb_j) ]``, from
``0/1`` upwards (``N' >= 0``). Everything is exact ``int64``: ``|x| <= 2**24``, ``p <= 256`` and
``q <= 2**25`` keep every product below ``2**34``; the masks use ``+-2**60``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from bnnmlir.bits import CLIP8_MAX, CLIP8_MIN

Ratio = tuple[int, int]
"""``(numerator, denominator)``, denominator > 0."""

BIG = 1 << 60
ABOVE_EVERY_RATIO = 256


def _padded(channels: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]]):
    """``xa, xb, v, low, up`` as ``[K, R]`` arrays, rows padded with runs in neither set."""
    width = max(len(v) for _, _, v in channels)
    xa, xb, v = (np.zeros((len(channels), width), np.int64) for _ in range(3))
    present = np.zeros((len(channels), width), bool)
    for k, (a, b, values) in enumerate(channels):
        n = len(values)
        xa[k, :n], xb[k, :n], v[k, :n], present[k, :n] = a, b, values, True
    return xa, xb, v, present & (v > CLIP8_MIN), present & (v < CLIP8_MAX)


def _first_equal(values: np.ndarray, target: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """Per row, the first column where ``values == target`` and ``allowed``."""
    return np.argmax((values == target[:, None]) & allowed, axis=1)


def _sides(xa, xb, v, low, up, p, q, active):
    """For the candidates ``p/q`` of the ``active`` rows: ``q*(v_j + 1) - p*xb_j`` of the runs
    ``j`` in ``up`` (``+BIG`` elsewhere) and ``q*v_i - p*xa_i`` of those in ``low``
    (``-BIG`` elsewhere)."""
    pa, qa = p[active, None], q[active, None]
    right = np.where(up[active], qa * (v[active] + 1) - pa * xb[active], BIG)
    left = np.where(low[active], qa * v[active] - pa * xa[active], -BIG)
    return right, left


def _min_ratios(xa, xb, v, low, up) -> list[Ratio | None]:
    rows, columns = v.shape
    p, q = np.full(rows, ABOVE_EVERY_RATIO, np.int64), np.ones(rows, np.int64)
    found, active, col = np.zeros(rows, bool), np.arange(rows), np.arange(columns)
    first = True
    while active.size:
        right, left = _sides(xa, xb, v, low, up, p, q, active)
        best_right = np.minimum.accumulate(right[:, ::-1], axis=1)[:, ::-1]
        gap = best_right - left
        at = np.arange(active.size)
        i = gap.argmin(axis=1)
        g = gap[at, i]
        if first:
            found[active] = g < 0  # some pair has D > 0
        better = g < 0
        j = _first_equal(right, best_right[at, i], col[None, :] >= i[:, None])
        ka, i, j = active[better], i[better], j[better]
        p[ka] = v[ka, j] + 1 - v[ka, i]
        q[ka] = xb[ka, j] - xa[ka, i]
        active, first = ka, False
    return [(int(a), int(b)) if f else None for a, b, f in zip(p, q, found)]


def _max_ratios(xa, xb, v, low, up) -> list[Ratio | None]:
    rows, columns = v.shape
    p, q = np.zeros(rows, np.int64), np.ones(rows, np.int64)
    found, active, col = np.zeros(rows, bool), np.arange(rows), np.arange(columns)
    first = True
    while active.size:
        right, left = _sides(xa, xb, v, low, up, p, q, active)
        prefix = np.minimum.accumulate(right, axis=1)
        before = np.concatenate([np.full((active.size, 1), BIG, np.int64), prefix[:, :-1]], axis=1)
        gap = left - before
        at = np.arange(active.size)
        i = gap.argmax(axis=1)
        g = gap[at, i]
        if first:
            found[active] = g > -BIG // 2  # some pair j < i exists
        better = g > 0
        j = _first_equal(right, before[at, i], col[None, :] < i[:, None])
        ka, i, j = active[better], i[better], j[better]
        p[ka] = v[ka, i] - v[ka, j] - 1
        q[ka] = xa[ka, i] - xb[ka, j]
        active, first = ka, False
    return [(int(a), int(b)) if f else None for a, b, f in zip(p, q, found)]


def extreme_slopes(channels: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]]
                   ) -> list[tuple[Ratio | None, Ratio | None]]:
    """``(r_lo, r_hi)`` of each rising channel ``(xa, xb, v)`` (see the module docstring),
    ``None`` where the channel has no pair of that kind."""
    if not channels:
        return []
    arrays = _padded(channels)
    return list(zip(_max_ratios(*arrays), _min_ratios(*arrays)))
