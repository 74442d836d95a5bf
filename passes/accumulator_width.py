"""The narrowest exact accumulator of a binary convolution: a pure function and its proof.

One output of ``bnn.bconv2d`` accumulates ``popcount(a XOR w)`` over ``KH*KW`` taps and, per tap,
over ``Q = ceil(Cb / M)`` chunks of ``M`` packed bytes (``Q - 1`` or ``Q`` full chunks and at most
one zero-filled tail chunk). Each chunk is one ``bnn.narrow_acc`` step, so a whole output is a chain
of ``S = KH*KW*Q`` steps. Where the ``KW`` taps of a kernel row are read as one contiguous run of
``KW*Cb`` bytes (:mod:`bnnmlir.passes.loops.bconv2d`), a row is ``Q = ceil(KW*Cb / M)`` chunks (the
last one possibly overlapping its predecessor, the overlap masked to 0): the plan of that chain is
``plan_accumulator(KH, 1, Q, M)``, its "rows" being the kernel rows.

Bound per lane: a lane gathers ``G`` bytes, so one step adds at most ``8*G`` to it; a chain of
``n`` steps from zero stays below ``2**A`` (``A`` the lane width) iff ``n*8*G <= 2**A - 1``, i.e.
``n <= NarrowAccOp.max_exact_steps(A, G)``. The plan picks, in this order:

1. 8-bit lanes (``L = M``, ``G = 1``) if the whole chain fits: ``S*8 <= 255`` (skipped when the
   caller asks for lanes of at least ``min_lane_bits = 16``);
2. 16-bit lanes (``L = M/2``, ``G = 2``; ``L = G = 1`` when ``M = 1``) if ``S*8*G <= 65535``;
3. 16-bit lanes with the chain split into blocks that each fit, the lanes flushed (extended to
   ``i32`` and summed) into an ``i32`` total between blocks: after every row of taps (blocks of
   ``KW*Q`` steps) or, if a row is too long, after every tap (blocks of ``Q``);
4. 32-bit lanes (``L = M/4``, ``G = 4``; ``L = 1``, ``G = M`` when ``M < 4``) for the whole chain.

Bound per reduction and total: the lanes of one block sum to at most ``8*M*steps``; the whole
output's popcount is at most ``8*KH*KW*Q*M``, and :func:`plan_accumulator` refuses shapes where
that does not fit a signed 32-bit integer. So summing the lanes extended to ``i32`` (or in the lane
type when the sum provably fits it, see ``ConvLowering.lane_sum``) and ``K - 2*popcount`` are exact.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from bnnmlir.bits import WORD_BITS
from bnnmlir.dialects.bnn import NarrowAccOp

Flush = Literal["none", "row", "tap"]

I32_MAX = 2**31 - 1


@dataclass(frozen=True)
class AccumulatorPlan:
    """How the ``narrow_acc`` chain of one convolution output is laid out."""

    lane_bits: int
    """Width ``A`` of an accumulator lane: 8, 16 or 32."""
    lanes: int
    """Number ``L`` of lanes: the accumulator is ``vector<L x iA>``."""
    bytes_per_lane: int
    """``G = M / L`` bytes summed into each lane per step."""
    chain_steps: int
    """Length of one uninterrupted chain: the ``max_steps`` of every ``narrow_acc``."""
    flush: Flush
    """Where a chain ends and the lanes are flushed into 32-bit totals."""


def lane_layout(lane_bits: int, vector_bytes: int) -> tuple[int, int]:
    """``(L, G)`` for ``A``-bit lanes over ``M = vector_bytes`` bytes."""
    per_lane = {8: 1, 16: 2, 32: 4}[lane_bits]
    group = min(per_lane, vector_bytes)
    return vector_bytes // group, group


def plan_accumulator(
    kernel_h: int, kernel_w: int, chunks_per_tap: int, vector_bytes: int, min_lane_bits: int = 8
) -> AccumulatorPlan:
    """The narrowest exact accumulator of at least ``min_lane_bits`` (8 or 16) bits for
    ``KH x KW`` taps of ``Q`` chunks of ``M`` bytes."""
    if min_lane_bits not in (8, 16):
        raise ValueError(f"min_lane_bits must be 8 or 16, got {min_lane_bits}")
    if min(kernel_h, kernel_w, chunks_per_tap, vector_bytes) < 1:
        raise ValueError("kernel extents, chunks per tap and vector bytes must be positive")
    if vector_bytes & (vector_bytes - 1):
        raise ValueError(f"vector bytes must be a power of two, got {vector_bytes}")
    row = kernel_w * chunks_per_tap
    total = kernel_h * row
    if WORD_BITS * total * vector_bytes > I32_MAX:
        raise ValueError(f"a chain of {total} steps of {vector_bytes} bytes overflows i32")

    def fits(lane_bits: int, steps: int) -> bool:
        _, group = lane_layout(lane_bits, vector_bytes)
        return steps <= NarrowAccOp.max_exact_steps(lane_bits, group)

    def plan(lane_bits: int, steps: int, flush: Flush) -> AccumulatorPlan:
        lanes, group = lane_layout(lane_bits, vector_bytes)
        return AccumulatorPlan(lane_bits, lanes, group, steps, flush)

    if min_lane_bits <= 8 and fits(8, total):
        return plan(8, total, "none")
    if fits(16, total):
        return plan(16, total, "none")
    if fits(16, row):
        return plan(16, row, "row")
    if fits(16, chunks_per_tap):
        return plan(16, chunks_per_tap, "tap")
    return plan(32, total, "none")
