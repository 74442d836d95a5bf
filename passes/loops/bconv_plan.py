"""The schedule of a binary convolution's register-blocked kernel: a pure plan and its cost model.

The blocked kernel (:mod:`bnnmlir.passes.loops.bconv_blocks`) computes a block of ``P`` adjacent
output pixels x ``B`` *channel vectors* at once, each channel vector holding ``V = vector_bytes /
M`` output channels. The receptive field of one output (``T = KH*R`` bytes, ``R = KW*Cb`` per
kernel row) is read as ``Q`` chunks of ``M`` bytes (:class:`Chunk`): ``M = 4`` on the ``ctpop``
targets (``V = 16`` channels per ``zmm``, one 32-bit lane each: the lane is the output's whole
popcount, no lane sums), ``M = 16`` on NEON (``V = 1``, 16 byte lanes per channel); a step
``j`` loads chunk ``j`` of each of the ``P`` pixels (repeated ``V`` times across the vector) and
chunk ``j`` of the ``B`` weight vectors (``V`` channels side by side, re-laid at compile time),
and updates the ``P*B`` accumulators: every activation vector serves ``B`` weight vectors and
every weight vector ``P`` pixels. So per step: ``P + B`` loads, ``P*B`` XOR + popcount + add.

Chunks. With zero-masked loads (AVX-512) the window is cut into ``ceil(T/M)`` chunks that may
span kernel rows (each row's bytes merged into the lanes by a masked load, lanes past ``T`` zero):
no lane is wasted but the last. Without them (NEON) each kernel row is cut on its own into
``ceil(R/M)`` chunks at offsets ``0, M, ..`` and, when ``R % M != 0``, ``R - M``: that last
chunk overlaps its predecessor by ``M - R % M`` bytes, which are zeroed in both operands (an AND
on the activations, zeros in the re-laid weights), so nothing is counted twice and no load leaves
the row's run (needs ``R >= M``). On NEON, when ``R % 16 == 8`` (``Cb = 8, 24, ..``), the window
is cut like with masked loads if that takes fewer chunks (at most :data:`MAX_SPANNING`; with
``R < 16`` the kernel stays off as before): every piece is then a whole 16-byte load or an
8-byte half (``ldr d``, ``ld1 {v.d}[1]``), e.g. a 3x3 window of ``Cb = 8`` is 5 chunks (the last
one half, its upper lanes zero in both operands) instead of 6 with overlaps and ANDs.

Accumulator width, from the proof of :func:`bnnmlir.passes.accumulator_width.plan_accumulator`:
a lane of ``A`` bits gathering ``G = A/8`` bytes gains at most ``8*G`` per step, so a chain of
``Q`` steps is exact iff ``Q <= NarrowAccOp.max_exact_steps(A, G)``. The cost model takes, among
the exact widths, the cheapest one for the target: NEON 8 bits (``cnt; add``, 31 steps at most)
before 16 (``cnt; uadalp``); the ``ctpop`` targets 32 bits (``vpopcntd; vpaddd``: the same two
instructions as 8 or 16 bits, and one lane per output).

Block size. Registers: ``P*B`` accumulators + ``B`` weight vectors + ``P`` activation vectors
must fit the ``registers`` vector registers (32 on AVX-512 and NEON) less ``SLACK``. The cost of
a block is ``3*Q*P*B`` vector ops of work plus ``Q*(P + B)`` loads (counted at ``LOAD_COST``
each), plus the lane sums (a pairwise tree on NEON, none with one lane per output) and the
stores; the plan
takes the least cost of a whole output row (:func:`row_cost`: whole blocks, then the smaller
blocks of the pixels and channel vectors left over) among the blocks that fit.

Channel tile: the weights of ``tile`` channel vectors (``tile*Q*vector_bytes`` bytes) stay in L1
(``L1_BYTES / 2``, the other half for activations) while a row's pixels pass. A tile holds at
least two blocks: with one, the weight loads of the block would not depend on the loop around
them and LLVM would hoist all ``B*Q`` of them out of the pixel loop (into stack spills).

Borders: a kernel row outside the input reads the clamped row 0 and its chunks are replaced by
zero bytes (``+1``); in a border column (static position) the bytes of the kernel columns outside
the input are not loaded and stay zero. The output then differs from the padded one by a
per-channel constant per missing tap (see :func:`border_correction`), added in the epilogue.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from bnnmlir.dialects.bnn import NarrowAccOp

NEON_CHUNK = 16
"""Bytes of the window per channel and step on NEON: one register (``V = 1``)."""
NEON_HALF = 8
"""NEON loads a chunk's pieces in halves of 8 bytes (``ldr d`` / ``ld1 {v.d}[1]``) when they do
not fill it: a window whose rows are a multiple of 8 bytes but not of 16 (``Cb = 8, 24, ..``)."""
MAX_SPANNING = 8
"""At most this many chunks in the spanning NEON layout: its chunks are unrolled whole (no loop
over kernel rows), see :data:`ROW_GROUP`."""
LANE_CHUNK = 4
"""On the ``ctpop`` targets: one 32-bit lane per channel and step (``V = vector_bytes / 4``), so
an output's sum is a single lane and the block needs no shuffle-add tree at all."""
REGISTERS = {"ctpop": 32, "neon": 32}
"""Vector registers of the targets (AVX-512 ``zmm0-31``, NEON ``v0-31``)."""
L1_BYTES = 32 * 1024
LOAD_COST = 0.5
"""A load relative to a vector ALU op (loads go to their own ports, about 2 per cycle)."""
MAX_PIXELS = 8
SLACK = {"ctpop": 8, "neon": 16}
"""Registers left to LLVM: its scheduler lifts loads early, and a block using all 32 spills
(aarch64, 256@28 whole layer under llvm-mca cortex-a72: 4 x 4 blocks 67% of the bound, 3 x 3
81%)."""
ROW_GROUP = 8
MAX_BORDER_COLUMNS = 4
"""Border columns are emitted one by one (their missing taps are known at compile time)."""
FORCE_ENV = "BNNMLIR_BCONV_BLOCK"
"""``P,B`` (e.g. ``2,3``): force the block size (tests cover every choice of the cost model)."""


@dataclass(frozen=True)
class Piece:
    """Lanes ``first .. first+lanes-1`` of a chunk, read from byte ``offset + lane - first`` of
    kernel row ``row``'s run."""

    row: int
    offset: int
    first: int
    lanes: int


@dataclass(frozen=True)
class Chunk:
    """16 bytes of the window: its pieces, and ``keep``: lanes below it are zeroed (an
    overlapping last chunk of a row)."""

    pieces: tuple[Piece, ...]
    keep: int = 0


@dataclass(frozen=True)
class BlockPlan:
    """The schedule of the register-blocked kernel of one ``bnn.bconv2d`` (module docstring)."""

    popcount: str
    """Target kind: ``ctpop`` (x86) or ``neon``."""
    vector_bytes: int
    chunk_bytes: int
    """``M``: window bytes per channel and step."""
    per_vector: int
    """``V``: output channels per weight vector."""
    chunks: tuple[Chunk, ...]
    """The ``Q`` chunks of a window."""
    pixels: int
    """``P``: adjacent output pixels per block."""
    vectors: int
    """``B``: channel vectors per block."""
    tile: int
    """Channel vectors per L1 tile (a multiple of ``B``, or all of them)."""
    channel_vectors: int
    """``ceil(O / V)``: the weight vectors (the channels past ``O`` have zero weights and are not
    stored)."""
    lane_bits: int
    border: str
    """``rows``, ``columns``, ``rows+columns``: the borders computed by this kernel with a
    correction; ``none``: interior only (or the other borders take the per-tap path)."""

    @property
    def lanes(self) -> int:
        return self.vector_bytes * 8 // self.lane_bits

    @property
    def block_channels(self) -> int:
        return self.vectors * self.per_vector

    @property
    def row_period(self) -> int | None:
        """Chunks per kernel row when every row is cut alike (one piece each, row ``r``'s chunks
        those of row 0 moved to row ``r``): the kernel then loops over rows. ``None`` otherwise."""
        rows = 1 + max(p.row for c in self.chunks for p in c.pieces)
        per, rest = divmod(len(self.chunks), rows)
        if rest:
            return None
        for j, chunk in enumerate(self.chunks):
            first = self.chunks[j % per]
            if len(chunk.pieces) != 1 or chunk.pieces[0].row != j // per or \
                    chunk.keep != first.keep or chunk.pieces[0].offset != first.pieces[0].offset \
                    or (chunk.pieces[0].first, chunk.pieces[0].lanes) != \
                    (first.pieces[0].first, first.pieces[0].lanes):
                return None
        return per

    @property
    def row_group(self) -> int | None:
        """Chunks unrolled together inside a kernel row: the row's whole chunks when they differ
        or are few, else the largest divisor of the row's chunk count up to ``ROW_GROUP`` (a
        loop over the groups keeps LLVM's scheduler from lifting a whole row's loads)."""
        period = self.row_period
        if period is None:
            return None
        m = self.chunk_bytes
        alike = all(c.keep == 0 and (c.pieces[0].offset, c.pieces[0].first, c.pieces[0].lanes)
                    == (i * m, 0, m) for i, c in enumerate(self.chunks[:period]))
        if not alike or period <= ROW_GROUP:
            return period
        return max(d for d in range(1, ROW_GROUP + 1) if period % d == 0)

    def describe(self) -> str:
        return (f"{self.pixels} px x {self.block_channels} ch ({self.vectors} x {self.per_vector}) "
                f"in registers, {len(self.chunks)} chunks of {self.chunk_bytes} B, "
                f"{self.lane_bits}-bit lanes, "
                f"{'a loop over kernel rows, ' if self.row_period else ''}tile {self.tile * self.per_vector} ch, "
                f"border {self.border}")


def window_chunks(kernel_h: int, run: int, masked: bool, m: int) -> tuple[Chunk, ...] | None:
    """The ``m``-byte chunks of a ``KH x R`` window (module docstring); ``None`` when a row is
    shorter than a chunk and there are no masked loads."""
    if masked:
        total = kernel_h * run
        chunks = []
        for j in range(-(-total // m)):
            pieces = []
            for r in range(kernel_h):
                lo, hi = max(r * run, j * m), min((r + 1) * run, (j + 1) * m)
                if lo < hi:
                    pieces.append(Piece(r, lo - r * run, lo - j * m, hi - lo))
            chunks.append(Chunk(tuple(pieces)))
        return tuple(chunks)
    if run < m:
        return None
    chunks = []
    for r in range(kernel_h):
        full, rest = divmod(run, m)
        chunks += [Chunk((Piece(r, i * m, 0, m),)) for i in range(full)]
        if rest:
            chunks.append(Chunk((Piece(r, run - m, 0, m),), keep=m - rest))
    return tuple(chunks)


def lane_bits_for(popcount: str, steps: int) -> int:
    """The cheapest exact lane width for a chain of ``steps`` steps (module docstring)."""
    order = (8, 16, 32) if popcount == "neon" else (32, 16, 8)
    for bits in order:
        if steps <= NarrowAccOp.max_exact_steps(bits, bits // 8):
            return bits
    return 32


def block_cost(pixels: int, vectors: int, steps: int, tree: bool) -> float:
    """Vector ops of one block: ``3*Q*P*B`` work, ``Q*(P + B)`` loads, the lane sums and the
    stores. With several lanes per output (``tree``, NEON) the ``P*B`` accumulators are widened
    and summed by a pairwise tree over the next power of two of them (zero vectors fill it up:
    9 accumulators cost as much as 16); with one lane per output there is nothing to sum."""
    count = pixels * vectors
    work = 3 * steps * count + LOAD_COST * steps * (pixels + vectors)
    reduce = count + 3 * ((1 << (count - 1).bit_length()) - 1) if tree else 0
    return work + reduce + 2 * count


def row_cost(pixels: int, vectors: int, steps: int, width: int, channel_vectors: int,
             tree: bool) -> float:
    """Vector ops of one output row of ``width`` interior pixels: whole blocks, then the smaller
    blocks of the pixels and channel vectors left over."""
    total = 0.0
    for p, p_count in ((pixels, width // pixels), (width % pixels, 1)):
        for b, b_count in ((vectors, channel_vectors // vectors), (channel_vectors % vectors, 1)):
            if p and b:
                total += p_count * b_count * block_cost(p, b, steps, tree)
    return total


def forced_block() -> tuple[int, int] | None:
    text = os.environ.get(FORCE_ENV)
    if not text:
        return None
    p, b = (int(v) for v in text.split(","))
    return p, b


def plan_blocks(popcount: str, vector_bytes: int, masked_loads: bool, kernel_h: int, run: int,
                out_channels: int, interior_width: int, border_rows: bool,
                border_columns: int = 0, words: int = 1) -> BlockPlan | None:
    """The block plan for a layer, or ``None`` when the blocked kernel does not apply (unknown
    target, no interior column, a row shorter than a chunk without masked loads)."""
    m = NEON_CHUNK if popcount == "neon" else LANE_CHUNK
    if popcount not in REGISTERS or vector_bytes < m or interior_width < 1:
        return None
    chunks = window_chunks(kernel_h, run, masked_loads, m)
    if popcount == "neon" and not masked_loads and run % m and run % NEON_HALF == 0:
        spanning = window_chunks(kernel_h, run, True, m)
        if chunks is not None and len(spanning) < len(chunks) and len(spanning) <= MAX_SPANNING:
            chunks = spanning
    if chunks is None:
        return None
    per_vector = vector_bytes // m
    channel_vectors = -(-out_channels // per_vector)
    steps = len(chunks)
    budget = REGISTERS[popcount] - SLACK[popcount]
    candidates = [
        (p, b) for p in range(1, MAX_PIXELS + 1) for b in range(1, channel_vectors + 1)
        if p * b + p + b <= budget and p <= interior_width
        and (2 * b <= channel_vectors or b == channel_vectors == 1)
    ]
    forced = forced_block()
    if forced is not None:
        p, b = forced
        pixels, vectors = min(p, interior_width), min(b, channel_vectors)
    else:
        pixels, vectors = min(candidates, key=lambda pb: (
            row_cost(pb[0], pb[1], steps, interior_width, channel_vectors, per_vector == 1),
            -pb[1]))
    fit = max(2, (L1_BYTES // 2) // (steps * vector_bytes) // vectors) * vectors
    tile = min(fit, channel_vectors)
    return BlockPlan(popcount, vector_bytes, m, per_vector, chunks, pixels, vectors, tile,
                     channel_vectors, lane_bits_for(popcount, steps),
                     border_kind(border_rows, border_columns, masked_loads, words, run, m,
                                 vector_bytes))


def border_kind(rows: bool, columns: int, masked: bool, words: int, run: int, m: int,
                vector_bytes: int) -> str:
    """Which borders the kernel computes: rows (when some are), and the ``columns`` border
    columns when there are at most ``MAX_BORDER_COLUMNS`` of them and a chunk's bytes can be cut
    at tap boundaries:

    * masked loads (AVX-512): when the per-tap path would fill less than half a vector per tap
      (``Cb < vector_bytes / 2``: with longer taps it is as fast as one pixel per block here,
      measured on AVX-512);
    * NEON: when a tap is a whole number of 8-byte halves (``Cb % 8 == 0``): the bytes of a
      chunk in one tap are then whole halves (:data:`NEON_HALF`), loaded alone (with
      ``Cb % 16 == 0`` no chunk spans two taps). A border column skips the chunks of its
      missing taps whole (:func:`bnnmlir.passes.loops.bconv_blocks.skipped_chunks`): ``B``
      channels per block in 8-bit lanes and one pairwise tree, where the per-tap path runs
      ``cnt; uadalp`` over 4 channels, a tap at a time, and reduces each channel with
      ``addv``. 256@28 whole layer under llvm-mca 19: cortex-a72 81% -> 93% of the bound,
      neoverse-n1 87% -> 94%."""
    cut = 2 * words < vector_bytes if masked else words % NEON_HALF == 0 == run % NEON_HALF
    kinds = (["rows"] if rows else []) + (
        ["columns"] if 0 < columns <= MAX_BORDER_COLUMNS and cut else [])
    return "+".join(kinds) or "none"


def border_correction(pad: int, row_popcounts: list[int], row_bits: int) -> list[int]:
    """Per kernel row ``r``, what to add to ``K - 2*popcount`` of one output channel when row ``r``
    is outside the input and its activations were read as zero bytes (``+1``).

    ``row_popcounts[r]``: set bits of the channel's weights in row ``r`` (``pw``), ``row_bits``:
    the valid bits of a row (``KW*C``). The kernel counted ``popcount(0 XOR w) = pw`` for the row:

    * ``pad = +1``: the padding is ``+1``, exactly what was read: ``0``;
    * ``pad = 0``: the row must count nothing and leave ``K``: the output is
      ``(K - KW*C) - 2*(pc - pw) = (K - 2*pc) + 2*pw - KW*C``;
    * ``pad = -1``: the row reads ``-1`` on its valid bits, popcount ``KW*C - pw`` instead of
      ``pw``: the output is ``K - 2*(pc - pw + KW*C - pw) = (K - 2*pc) + 4*pw - 2*KW*C``.
    """
    if pad == 1:
        return [0] * len(row_popcounts)
    if pad == 0:
        return [2 * pw - row_bits for pw in row_popcounts]
    return [4 * pw - 2 * row_bits for pw in row_popcounts]


__all__ = ["BlockPlan", "Chunk", "Piece", "block_cost", "border_correction", "row_cost", "lane_bits_for",
           "plan_blocks", "window_chunks"]
