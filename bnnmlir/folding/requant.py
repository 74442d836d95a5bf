"""Fold an integer-valued per-channel function onto ``[-127, 127]`` (e.g. BatchNorm then Clip8).

``fn`` (see :mod:`bnnmlir.folding.domain`) already contains the rounding and the clamp, so its
values on the integer domain are integers in ``[-127, 127]``. :func:`fold_clip8` tabulates it
exhaustively, builds the cheapest exact :class:`Requant`, checks it against the values of ``fn`` on
every integer of the domain (:func:`verify_requant`, or on the runs of those values for a domain too
large to keep them, :func:`verify_requant_on_runs`), and only then returns it. Anything not
reproduced exactly raises :class:`FoldingError`.

Integer semantics of the three kinds (``x`` is the integer input of channel ``c``; results are
exact on the folded domain ``[lo, hi]``, which is recorded in the object):

``affine``
    ``out = clamp((x * multiplier[c] + offset[c]) >> shift[c], -127, 127)``, computed in ``int64``:
    the product and the sum are exact (``|multiplier| <= 2**31 - 1``, and fold-time checks that
    ``x * multiplier + offset`` fits ``int64`` on the domain), ``>>`` is an ARITHMETIC shift, i.e.
    ``floor`` division by ``2**shift`` (rounding toward minus infinity), ``0 <= shift <= 62``.
    A constant channel is ``multiplier = 0, offset = value << shift`` (``shift = 0`` unless all
    channels share one shift).
``breakpoints``
    ``out = base[c] + step[c] * #{k : breakpoints[c, k] <= x}`` with ``step[c]`` +1 (non-decreasing
    channel, constant channels too) or -1 (non-increasing). Each row of ``breakpoints`` is sorted;
    a breakpoint is repeated when the output jumps by more than one there; rows are padded at the
    end with ``2**31 - 1``, which no domain value reaches. At most 254 real breakpoints per channel.
``table``
    ``out = table[c, x - lo]`` for ``lo <= x <= hi`` (undefined elsewhere). Any function, used only
    on small domains (``hi - lo + 1 <= 256``, e.g. an int8 stream).

Affine search: for a non-decreasing step function with runs ``[xa_k, xb_k] -> v_k`` the exact
conditions are ``m*xa_k + b >= v_k * 2**s`` (unless ``v_k = -127``) and
``m*xb_k + b < (v_k + 1) * 2**s`` (unless ``v_k = 127``). A real ``b`` exists iff every lower bound
is below every upper bound, which gives ``floor(2**s * R_lo) < m < 2**s * R_hi`` with two
channel constants ``R_lo, R_hi`` (extreme slopes between the constraint points, found exactly in
integers for all channels at once, :mod:`bnnmlir.folding.slopes`); all bounds are integers, so
an integer ``b`` then exists too. The smallest ``s <= max_shift`` with an admissible ``m`` is
taken, ``m`` and ``b`` at the middle of their ranges. A non-increasing channel is fitted on
``x -> -x`` and its multiplier negated.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import Enum

import numpy as np

from bnnmlir.bits import CLIP8_MAX, CLIP8_MIN
from bnnmlir.folding.domain import (
    ChannelFn,
    DomainPass,
    FoldingError,
    check_domain,
    domain_chunks,
    domain_table,
    keeps_table,
)
from bnnmlir.folding.slopes import extreme_slopes

INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1
BREAKPOINT_PAD = INT32_MAX
TABLE_MAX_DOMAIN = 256
MAX_SHIFT = 30
VERIFY_ELEMENTS = 1 << 20
"""Elements checked per :meth:`Requant.apply` call of the verification (bounds peak memory)."""


class RequantKind(str, Enum):
    AFFINE = "affine"
    BREAKPOINTS = "breakpoints"
    TABLE = "table"


DEFAULT_KINDS = (RequantKind.AFFINE, RequantKind.BREAKPOINTS, RequantKind.TABLE)


@dataclass(frozen=True, eq=False)
class Requant:
    """Exact integer form of a per-channel map to ``[-127, 127]`` (kinds: module docstring).

    Only the arrays of ``kind`` are set: ``affine`` uses ``multiplier`` (int64 [C], values within
    int32), ``offset`` (int64 [C]) and ``shift`` (int32 [C]); ``breakpoints`` uses ``base``
    (int8 [C]), ``step`` (int8 [C]) and ``breakpoints`` (int32 [C, B]); ``table`` uses ``table``
    (int8 [C, D]).
    """

    kind: RequantKind
    lo: int
    hi: int
    multiplier: np.ndarray | None = None
    offset: np.ndarray | None = None
    shift: np.ndarray | None = None
    base: np.ndarray | None = None
    step: np.ndarray | None = None
    breakpoints: np.ndarray | None = None
    table: np.ndarray | None = None

    @property
    def channels(self) -> int:
        first = {
            RequantKind.AFFINE: self.multiplier,
            RequantKind.BREAKPOINTS: self.base,
            RequantKind.TABLE: self.table,
        }[self.kind]
        return int(first.shape[0])

    def apply(self, x: np.ndarray, channel_axis: int = -1) -> np.ndarray:
        """The integer semantics on ``x`` (channels along ``channel_axis``), as ``int8``."""
        x = np.moveaxis(np.asarray(x), channel_axis, -1)
        if not np.issubdtype(x.dtype, np.integer):
            raise TypeError(f"Requant.apply takes integers, got {x.dtype}")
        x = x.astype(np.int64)
        if x.shape[-1] != self.channels:
            raise ValueError(f"expected {self.channels} channels, got {x.shape[-1]}")
        if self.kind is RequantKind.AFFINE:
            acc = x * self.multiplier + self.offset
            out = np.clip(acc >> self.shift.astype(np.int64), CLIP8_MIN, CLIP8_MAX)
        elif self.kind is RequantKind.BREAKPOINTS:
            out = np.empty(x.shape, dtype=np.int64)
            for c in range(self.channels):
                count = np.searchsorted(self.breakpoints[c], x[..., c], side="right")
                out[..., c] = int(self.base[c]) + int(self.step[c]) * count
        else:
            if x.size and (x.min() < self.lo or x.max() > self.hi):
                raise ValueError(f"a table requant is defined on [{self.lo}, {self.hi}] only")
            out = self.table[np.arange(self.channels), x - self.lo]
        return np.moveaxis(out.astype(np.int8), -1, channel_axis)

    def intermediate_range(self) -> tuple[int, int]:
        """``(min, max)`` of ``x * multiplier + offset`` over the domain and channels (affine only):
        tells whether a narrower accumulator than ``int64`` suffices."""
        if self.kind is not RequantKind.AFFINE:
            raise ValueError(f"no intermediate for a {self.kind.value} requant")
        ends = [
            int(m) * x + int(b)
            for m, b in zip(self.multiplier, self.offset)
            for x in (self.lo, self.hi)
        ]
        return min(ends), max(ends)


# ---------------------------------------------------------------------------------------------
# Tabulation: runs of equal output per channel
# ---------------------------------------------------------------------------------------------


@dataclass
class _Runs:
    """Per channel: the output at ``lo`` and the sorted change points ``(x, new value, jump)``."""

    first: np.ndarray  # int64 [C]
    change_x: list[np.ndarray]
    change_v: list[np.ndarray]
    change_jump: list[np.ndarray]
    monotone: np.ndarray  # bool [C]
    table: np.ndarray | None  # int8 [C, D] when kept


def _clip8_values(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``y`` as ``int16``; :class:`FoldingError` unless every value is an integer in
    [-127, 127] (NaN fails the range test): two reductions, the truncation and one comparison
    with it."""
    in_range = y.min() >= CLIP8_MIN and y.max() <= CLIP8_MAX
    v = y.astype(np.int16) if in_range else None
    if v is None or (v != y).any():
        bad = ~((y >= CLIP8_MIN) & (y <= CLIP8_MAX) & (y == np.round(y)))
        row, c = np.argwhere(bad)[0]
        raise FoldingError(
            f"channel {c}: fn({int(x[row, 0])}) = {y[row, c]!r} is not an integer in "
            f"[{CLIP8_MIN}, {CLIP8_MAX}]"
        )
    return v


def _tabulate(chunks: Iterable[tuple[np.ndarray, np.ndarray]], channels: int, lo: int, hi: int,
              keep_table: bool) -> _Runs:
    """The runs of the values ``chunks`` (one exhaustive pass, :func:`domain_chunks`); vectorized
    over the domain and the channels of each chunk."""
    rising = np.zeros(channels, dtype=bool)
    falling = np.zeros(channels, dtype=bool)
    xs, cs, vs, js, table = [], [], [], [], []
    first = prev = None
    for x, y in chunks:
        v = _clip8_values(x, y)  # jumps in [-254, 254]
        if keep_table:
            table.append(v.astype(np.int8))
        changes = [(v[1:] - v[:-1], x[1:, 0], v[1:])]  # a change at row r + 1 of the chunk
        if first is None:
            first = v[0]
        else:  # the change between the chunks, at the first row of this one
            changes.append(((v[0] - prev)[None], x[:1, 0], v[:1]))
        prev = v[-1]
        for jump, at, after in changes:
            rows, cols = np.divmod(np.flatnonzero(jump), channels)  # np.nonzero's order, faster
            jumps = jump[rows, cols]
            rising[cols[jumps > 0]] = True
            falling[cols[jumps < 0]] = True
            xs.append(at[rows])
            cs.append(cols)
            vs.append(after[rows, cols])
            js.append(jumps)
        if not keep_table and (rising & falling).any():
            c = int(np.flatnonzero(rising & falling)[0])
            raise FoldingError(
                f"channel {c}: fn is not monotone on [{lo}, {hi}] and no table is possible "
                f"(domain larger than {TABLE_MAX_DOMAIN} values, or table kind not allowed)"
            )
    x_all, c_all, v_all, j_all = (np.concatenate(a) for a in (xs, cs, vs, js))
    order = np.lexsort((x_all, c_all))
    x_all, c_all, v_all, j_all = x_all[order], c_all[order], v_all[order], j_all[order]
    bounds = np.searchsorted(c_all, np.arange(channels + 1))
    split = lambda a: [a[bounds[c] : bounds[c + 1]] for c in range(channels)]
    return _Runs(
        first=first,
        change_x=split(x_all),
        change_v=split(v_all),
        change_jump=split(j_all),
        monotone=~(rising & falling),
        table=np.concatenate(table).T.copy() if keep_table else None,
    )


# ---------------------------------------------------------------------------------------------
# Affine fit
# ---------------------------------------------------------------------------------------------


INT64_SAFE_SHIFT = 36
"""Below this shift ``v * 2**s - m * x`` fits ``int64`` (``|v| <= 128``, ``m < 2**31``,
``|x| <= 2**24``), so the offset bounds are computed with numpy; above it with Python integers."""


def _extreme_offset(v: np.ndarray, x: np.ndarray, m: int, s: int, pick) -> int:
    """``pick`` (``max`` or ``min``) of ``v[k] * 2**s - m * x[k]``, exactly; ``pick([])`` raises
    like ``max(())``."""
    if s < INT64_SAFE_SHIFT:
        values = (v.astype(np.int64) << s) - m * x.astype(np.int64)
        return int(values.max() if pick is max else values.min())
    return pick(int(vk) * (1 << s) - m * int(xk) for vk, xk in zip(v, x))


@dataclass
class _Rising:
    """The constraints of a rising channel: runs ``[xa[k], xb[k]]`` of value ``v[k]`` and the
    exact extreme ratios that bound its multiplier: ``floor(2**s * r_lo) < m < 2**s * r_hi``
    (:mod:`bnnmlir.folding.slopes`; ``None``: no bound of that side)."""

    xa: np.ndarray
    xb: np.ndarray
    v: np.ndarray
    r_lo: tuple[int, int] | None
    r_hi: tuple[int, int] | None


def _fit_rising(rising: _Rising, shifts: range):
    """``(m, b, s)`` with ``clamp((x*m + b) >> s)`` equal to the runs of ``rising``, the first
    ``s`` of ``shifts`` that admits one, or None."""
    xa, xb, v, r_lo, r_hi = rising.xa, rising.xb, rising.v, rising.r_lo, rising.r_hi
    low, up = v > CLIP8_MIN, v < CLIP8_MAX
    for s in shifts:
        m_lo = (r_lo[0] << s) // r_lo[1] + 1 if r_lo else 1
        m_hi = -((-(r_hi[0] << s)) // r_hi[1]) - 1 if r_hi else INT32_MAX
        m_lo, m_hi = max(m_lo, 1), min(m_hi, INT32_MAX)
        if m_lo > INT32_MAX:
            return None  # both bounds grow with s
        if m_lo > m_hi:
            continue
        m = (m_lo + m_hi) // 2 if r_hi else m_lo  # unbounded above: smallest gain
        b_lo = _extreme_offset(v[low], xa[low], m, s, max)
        b_hi = _extreme_offset(v[up] + 1, xb[up], m, s, min) - 1
        if b_lo > b_hi:
            raise AssertionError("affine fit: empty offset range despite admissible multiplier")
        return m, (b_lo + b_hi) // 2, s
    return None


_Channel = tuple[str, object]
"""A channel's fitting data: ``("constant", value)``, ``("rising", _Rising)``,
``("falling", _Rising)`` (the mirrored function ``y -> f(-y)`` rises) or
``("none", None)`` (not monotone)."""


def _channel_runs(runs: _Runs, c: int, lo: int, hi: int
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(start, end, value)`` of the runs of channel ``c`` on ``[lo, hi]``, ``int64``."""
    cx = runs.change_x[c]
    start = np.concatenate([[lo], cx]).astype(np.int64)
    end = np.concatenate([cx - 1, [hi]]).astype(np.int64)
    value = np.concatenate([[runs.first[c]], runs.change_v[c]]).astype(np.int64)
    return start, end, value


def _channels(runs: _Runs, lo: int, hi: int) -> list[_Channel]:
    """The fitting data of every channel; the multiplier bounds of the rising and falling ones
    computed together (:func:`~bnnmlir.folding.slopes.extreme_slopes`)."""
    channels: list[_Channel] = []
    pending: list[tuple[int, str, np.ndarray, np.ndarray, np.ndarray]] = []
    for c, cx in enumerate(runs.change_x):
        if cx.size == 0:
            channels.append(("constant", int(runs.first[c])))
            continue
        channels.append(("none", None))
        if not runs.monotone[c]:
            continue
        xa, xb, v = _channel_runs(runs, c, lo, hi)
        if runs.change_jump[c][0] > 0:
            pending.append((c, "rising", xa, xb, v))
        else:
            pending.append((c, "falling", -xb[::-1], -xa[::-1], v[::-1]))
    bounds = extreme_slopes([(xa, xb, v) for _, _, xa, xb, v in pending])
    for (c, kind, xa, xb, v), (r_lo, r_hi) in zip(pending, bounds):
        channels[c] = (kind, _Rising(xa, xb, v, r_lo, r_hi))
    return channels


def _fit_channel(channel: _Channel, shifts: range):
    """``(m, b, s)`` of a channel (:func:`_channel`), ``s`` the first admissible shift of
    ``shifts``; or None."""
    kind, data = channel
    if kind == "constant":
        return 0, data << shifts[0], shifts[0]  # type: ignore[operator]
    if kind == "none":
        return None
    fit = _fit_rising(data, shifts)  # type: ignore[arg-type]
    if kind == "rising" or fit is None:
        return fit
    return -fit[0], fit[1], fit[2]


def _fit_affine(
    runs: _Runs, lo: int, hi: int, max_shift: int, uniform_shift: bool
) -> Requant | None:
    channels = _channels(runs, lo, hi)
    params = [_fit_channel(ch, range(max_shift + 1)) for ch in channels]
    if None in params:
        return None
    if uniform_shift:  # admissible shifts are upward closed: refit every channel at the largest
        top = max(p[2] for p in params)
        params = [_fit_channel(ch, range(top, top + 1)) for ch in channels]
        if None in params:
            return None
    ends = [m * x + b for m, b, _ in params for x in (lo, hi)] + [b for _, b, _ in params]
    if max(abs(e) for e in ends) > INT64_MAX:
        return None
    m, b, s = zip(*params)
    return Requant(
        RequantKind.AFFINE,
        lo,
        hi,
        multiplier=np.array(m, dtype=np.int64),
        offset=np.array(b, dtype=np.int64),
        shift=np.array(s, dtype=np.int32),
    )


# ---------------------------------------------------------------------------------------------
# Breakpoints, table, verification, entry point
# ---------------------------------------------------------------------------------------------


def _breakpoints(runs: _Runs, lo: int, hi: int) -> Requant | None:
    if not runs.monotone.all():
        return None
    rows, steps = [], []
    for c in range(len(runs.first)):
        jumps = runs.change_jump[c]
        steps.append(-1 if jumps.size and jumps[0] < 0 else 1)
        rows.append(np.repeat(runs.change_x[c], np.abs(jumps)))
    width = max(len(r) for r in rows)
    table = np.full((len(rows), width), BREAKPOINT_PAD, dtype=np.int32)
    for c, r in enumerate(rows):
        table[c, : len(r)] = r
    return Requant(
        RequantKind.BREAKPOINTS,
        lo,
        hi,
        base=runs.first.astype(np.int8),
        step=np.array(steps, dtype=np.int8),
        breakpoints=table,
    )


def verify_requant(fn: ChannelFn, requant: Requant, channels: int,
                   values: DomainPass | None = None) -> None:
    """Raise :class:`FoldingError` unless ``requant.apply(x) == fn(x)`` on every integer of the
    requant's domain and every channel (one exhaustive pass of ``fn``, or of ``values``: the
    values of ``fn`` already computed on that domain by :func:`domain_table`)."""
    if requant.channels != channels:
        raise FoldingError(f"requant has {requant.channels} channels, expected {channels}")
    chunks = values() if values is not None else domain_chunks(fn, channels, requant.lo, requant.hi)
    rows = max(1, VERIFY_ELEMENTS // channels)
    for x_all, y_all in chunks:
        for start in range(0, len(x_all), rows):  # int64 temporaries of bounded size
            x, y = x_all[start : start + rows], y_all[start : start + rows]
            _check_values(requant, np.broadcast_to(x, y.shape), y)


def _check_values(requant: Requant, x: np.ndarray, expected: np.ndarray) -> None:
    """Raise :class:`FoldingError` at the first element where ``requant.apply(x) != expected``."""
    got = requant.apply(x)
    mismatch = got != expected
    if mismatch.any():
        row, c = np.argwhere(mismatch)[0]
        raise FoldingError(
            f"channel {c}: {requant.kind.value} requant gives {got[row, c]} at x = "
            f"{int(x[row, c])}, fn gives {expected[row, c]!r}"
        )


def _run_ends(runs: _Runs, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(start, end, value)``, ``int64 [R, C]``: the runs of every channel on ``[lo, hi]`` (a
    channel with fewer than ``R`` runs repeats its last one)."""
    width = 1 + max(len(cx) for cx in runs.change_x)
    start, end, value = (np.empty((width, len(runs.first)), np.int64) for _ in range(3))
    for c, cx in enumerate(runs.change_x):
        n = len(cx) + 1
        start[:n, c], end[:n, c], value[:n, c] = _channel_runs(runs, c, lo, hi)
        for a in (start, end, value):
            a[n:, c] = a[n - 1, c]
    return start, end, value


def verify_requant_on_runs(requant: Requant, runs: _Runs) -> None:
    """Raise :class:`FoldingError` unless ``requant.apply`` gives the value of every run of
    ``runs`` (the exhaustive tabulation of ``fn``) at both ends of the run.

    Exact for a monotone requant (``affine``: ``clamp(floor((x*m + b) / 2**s))`` in exact
    ``int64`` is monotone in ``x``; ``breakpoints``: ``base + step * count`` with a
    non-decreasing count): equal to ``v`` at both ends of a run, it is ``v`` on the whole run,
    and the runs cover ``[lo, hi]``. So this equals :func:`verify_requant` on the values the
    runs were tabulated from, in ``O(runs)`` instead of a second evaluation of ``fn``."""
    if requant.kind is RequantKind.TABLE:
        raise ValueError("a table requant is not monotone: verify it on the values")
    start, end, value = _run_ends(runs, requant.lo, requant.hi)
    for x in (start, end):
        _check_values(requant, x, value)


def fold_clip8(
    fn: ChannelFn,
    channels: int,
    lo: int,
    hi: int,
    *,
    kinds: Sequence[RequantKind | str] = DEFAULT_KINDS,
    max_shift: int = MAX_SHIFT,
    uniform_shift: bool = False,
) -> Requant:
    """Exact :class:`Requant` of ``fn`` (float32 ``[D, C] -> [D, C]``, integer values in
    ``[-127, 127]`` on integers, e.g. BatchNorm then round-half-even then clamp) on ``[lo, hi]``.

    ``kinds`` lists the acceptable kinds in order of preference (default: affine, breakpoints,
    table); the first one that represents EVERY channel exactly is returned after an exhaustive
    verification. ``affine`` needs every channel monotone and representable with
    ``shift <= max_shift``; ``breakpoints`` needs every channel monotone; ``table`` needs
    ``hi - lo + 1 <= 256``. ``uniform_shift=True`` asks for one shift shared by all channels (the
    largest per-channel minimum; every channel is refitted at it, so affine may then be rejected
    when a multiplier would leave int32). Raises :class:`FoldingError` when no kind applies.
    Cost: ONE evaluation of ``fn`` on the whole domain, in ``[rows, C]`` chunks of
    ``CHUNK_ELEMENTS`` (tabulation and verification both read it; a table of more than
    ``KEEP_ELEMENTS`` elements is evaluated again at each pass and its requant verified on the
    runs, :func:`verify_requant_on_runs`), plus, for affine, a few passes over the runs of the
    non-constant channels (:mod:`bnnmlir.folding.slopes`).
    """
    kinds = [RequantKind(k) for k in kinds]
    if not kinds:
        raise ValueError("no requant kind allowed")
    if not 0 <= max_shift <= 62:
        raise ValueError(f"max_shift must be within [0, 62], got {max_shift}")
    check_domain(channels, lo, hi)
    small = hi - lo + 1 <= TABLE_MAX_DOMAIN
    values = domain_table(fn, channels, lo, hi)  # fn evaluated once, in calls of whole rows
    runs = _tabulate(values(), channels, lo, hi, keep_table=small and RequantKind.TABLE in kinds)
    for kind in kinds:
        if kind is RequantKind.AFFINE:
            requant = _fit_affine(runs, lo, hi, max_shift, uniform_shift)
        elif kind is RequantKind.BREAKPOINTS:
            requant = _breakpoints(runs, lo, hi)
        else:
            requant = runs.table is not None and Requant(
                RequantKind.TABLE, lo, hi, table=runs.table
            )
        if requant:
            if keeps_table(channels, lo, hi) or kind is RequantKind.TABLE:
                verify_requant(fn, requant, channels, values)
            else:  # a table too large to keep: no second evaluation of fn
                verify_requant_on_runs(requant, runs)
            return requant
    bad = np.flatnonzero(~runs.monotone)
    why = f"channel {bad[0]} is not monotone" if bad.size else "no allowed kind fits"
    raise FoldingError(f"cannot fold on [{lo}, {hi}] as {[k.value for k in kinds]}: {why}")
