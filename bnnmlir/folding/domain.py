"""The integer domain of a fold and the chunked evaluation of a per-channel function on it.

A *channel function* ``fn`` is the float computation to fold, seen per element and per channel: it
takes a ``float32`` tensor of shape ``[D, C]`` (row ``i``, column ``c`` holds one candidate input of
channel ``c``) and returns a tensor of the same shape whose element ``[i, c]`` depends only on the
input element ``[i, c]`` and on ``c``. Candidates are integers, exactly representable in ``float32``
because the domain is limited to ``|x| <= 2**24``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import numpy as np
import torch

ChannelFn = Callable[[torch.Tensor], torch.Tensor]
"""``[D, C] float32 -> [D, C]``, elementwise per channel (see the module docstring)."""

MAX_ABS_DOMAIN = 2**24
"""Largest ``|x|`` of a domain: every integer up to it is exact in ``float32``."""

CHUNK_ELEMENTS = 1 << 19
"""Elements evaluated per call of ``fn`` during exhaustive passes: 2 MB of ``float32``, so the
temporaries of a call stay small (a 64-channel stem's domain of 2.6M values takes 320 calls, in
about the time of 80 calls of ``2**21``; with those the compile of ``bireal_net18()`` peaked 70 MB
higher, with calls of ``2**23`` 240 MB higher and slower, its arrays out of cache)."""

KEEP_ELEMENTS = 1 << 23
"""Largest table (domain size x channels) that :func:`domain_table` keeps for a second pass."""


class FoldingError(ValueError):
    """The function has no EXACT integer form of the requested kind (nothing is approximated)."""


def check_domain(channels: int, lo: int, hi: int) -> None:
    """Reject domains the folding cannot represent exactly."""
    if channels < 1:
        raise FoldingError(f"need at least one channel, got {channels}")
    if lo > hi:
        raise FoldingError(f"empty integer domain [{lo}, {hi}]")
    if max(-lo, hi) > MAX_ABS_DOMAIN:
        raise FoldingError(
            f"domain [{lo}, {hi}] exceeds |x| <= 2**24, where float32 stops being exact on integers"
        )


def evaluate(fn: ChannelFn, candidates: np.ndarray) -> np.ndarray:
    """``fn`` on a ``[D, C]`` integer array of candidates, as a ``float32`` numpy ``[D, C]``.

    ``fn`` always sees at least two rows (a single row is evaluated twice)."""
    x = torch.from_numpy(np.ascontiguousarray(candidates, dtype=np.float32))
    single = x.shape[0] == 1
    if single:  # a one-row tensor is contiguous whatever its strides: keep the strided paths
        x = x.expand(2, -1)
    with torch.no_grad():
        y = fn(x)
    if not isinstance(y, torch.Tensor) or tuple(y.shape) != tuple(x.shape):
        shape = tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
        raise FoldingError(
            f"channel function must map [D, C] to [D, C]; got {shape} for {tuple(x.shape)}"
        )
    y = y.detach().to(torch.float32).cpu().numpy()
    return y[:1] if single else y


def domain_chunks(
    fn: ChannelFn, channels: int, lo: int, hi: int
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Exhaustive pass: yield ``(x, y)`` with ``x`` the ``int64`` column ``[d, 1]`` of consecutive
    domain values and ``y = fn(x broadcast to [d, C])`` (``float32``), covering ``[lo, hi]`` in
    order.

    Cost: ``(hi - lo + 1) * channels`` evaluations of ``fn``, in calls of about ``CHUNK_ELEMENTS``.
    """
    rows = max(1, CHUNK_ELEMENTS // channels)
    start = lo
    while start <= hi:
        stop = min(hi, start + rows - 1)
        x = np.arange(start, stop + 1, dtype=np.int64)[:, None]
        yield x, evaluate(fn, np.broadcast_to(x, (x.shape[0], channels)))
        start = stop + 1


DomainPass = Callable[[], Iterable[tuple[np.ndarray, np.ndarray]]]
"""``passes()``: one exhaustive pass, the ``(x, y)`` chunks of :func:`domain_chunks`."""


def keeps_table(channels: int, lo: int, hi: int) -> bool:
    """Whether :func:`domain_table` keeps the values of ``[lo, hi]`` x ``channels``."""
    return (hi - lo + 1) * channels <= KEEP_ELEMENTS


def domain_table(fn: ChannelFn, channels: int, lo: int, hi: int) -> DomainPass:
    """Exhaustive passes of ``fn`` on ``[lo, hi]`` that evaluate ``fn`` only once: the chunks are
    computed now and kept when the table has at most :data:`KEEP_ELEMENTS` elements (the usual
    case); a larger table is re-evaluated at each pass, so memory
    stays bounded. ``fn`` is deterministic, so both give the same values."""
    if keeps_table(channels, lo, hi):
        table = list(domain_chunks(fn, channels, lo, hi))
        return lambda: table
    return lambda: domain_chunks(fn, channels, lo, hi)
