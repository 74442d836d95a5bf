"""The *band* layout of an integer convolution with few input channels (the 7x7 stem).

With ``C = 3`` a kernel row of the window is ``KW*C = 21`` bytes: the row segments of
:mod:`~bnnmlir.passes.loops.int8_conv` read it as 5 groups of 4 bytes and one overlapping group,
``KH * ceil(21/4) = 42`` dot steps per pixel and channel block where ``ceil(147/4) = 37`` would
do. The band makes the whole window of a pixel one contiguous run of ``K = KW*KH*C`` bytes:

Band. For one output row ``(n, oh)``, with ``ih_r = oh*sh - pt + r*dh`` (``r < KH``) and padded
    columns ``j`` (input column ``j - pl``)::

        band[(j*KH + r)*C + c] = u(x[n, ih_r, j - pl, c])     (0 outside the input)

    i.e. column-major: the ``KH*C`` bytes of padded column ``j`` (all kernel rows, all channels)
    are contiguous, and consecutive columns follow each other. The window of output column
    ``ow`` (padded columns ``ow*sw .. ow*sw + KW - 1``) is then ``band[ow*sw*KH*C + t]``,
    ``t < K``, with ``t = (kw*KH + kh)*C + c``: one run. It is read in ``Gw = ceil(K/g)`` groups
    at ``t = q*g``; the bytes ``K .. Gw*g - 1`` of the last group belong to the next column and
    have weight 0.

Weights, re-laid at compile time: ``wr[b, q*V + l*g + k] = wf[b*L + l, q*g + k]`` with
    ``wf[o, (kw*KH + kh)*C + c] = w[o, kh, kw, c]`` (0 for ``t >= K`` and channels ``>= O``).

Exactness. ``u`` is the path's activation byte: ``x + 128`` (``x XOR 0x80``) on ``vnni`` and
    ``x`` otherwise; a padding tap holds ``u(0)`` (128 on ``vnni``). Each ``i32`` lane therefore
    sums exactly the products of the row-segment layout (module docstring of
    :mod:`~bnnmlir.passes.loops.int8_conv`): every ``(kh, kw, c)`` once with its weight, padding
    taps contributing ``128 * w`` that the start value ``-128 * sum(w)`` cancels, the extra bytes
    times 0. The same ``i32`` bound holds (the sums are the same), so the result is exact.

Building the band, per output row (x86 with 64-byte vectors; vector shuffles), in *chunks* of
``J = 64 // C`` padded columns, in increasing order (the bytes a chunk's last vector writes past
its end are rewritten by the next chunk):

1. *Sources*: for each kernel row ``r`` the 64 bytes ``x[n, ih_r, t*J - pl + i // C, i % C]``
   (``i < J*C`` used): one load for a chunk inside the row, a masked load (padding columns 0,
   shifted into place when the chunk starts left of the row) at the edges, 0 for a row outside
   the input (a select; the rows of most output rows are all inside and skip it); then ``u``.
2. *Shuffles* (:func:`chunk_network`): each of the chunk's ``J*KH*C`` band bytes is one byte of
   the ``KH`` sources; the band vectors are chains of two-source shuffles (``vpermt2b``) of
   them, directly or through kernel rows interleaved in pairs first.
3. The kernel: ``P`` pixels x ``B`` channel blocks of accumulators, every pixel interior (no
   border checks), the activation group a plain broadcast of band bytes (already unsigned).

The band (a few KiB) is an ``llvm.alloca`` between ``llvm.stacksave`` / ``llvm.stackrestore``
in the row's body, so each row (and each thread of a parallel loop) has its own.

Choice (:func:`plan_band`): a small cost model counts vector instructions per output row,
``OW * blocks * S * Gs`` dot steps for row segments against ``OW * blocks * Gw`` plus the
build (copies and shuffles); the band is taken when it is cheaper (few channels, ``KW*C`` not a
multiple of ``g``), the target has 64-byte vectors and ``dilation_w = 1``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from xdsl.dialects import arith, llvm, vector
from xdsl.dialects.builtin import (
    DenseIntOrFPElementsAttr,
    VectorType,
    i1,
    i8,
    i64,
)
from xdsl.ir import SSAValue

from bnnmlir.passes.loops.emitter import Emitter
from bnnmlir.passes.loops.int8_conv import (
    GROUP_UNROLL,
    DotPath,
    Geometry,
    Int8Kernel,
    Int8Plan,
    broadcast_group,
    dot_step,
)
from bnnmlir.passes.loops.lowering import interior_range

VECTOR = 64
"""Bytes of the build's vectors (AVX-512)."""
MAX_SCRATCH = 64 * 1024
"""Largest band per row, in bytes: it lives on the stack."""
COST_MODEL = True
"""``False``: the band wherever it applies (tests run the band path on small shapes)."""


Lane = tuple[int, int] | None
"""Where a lane of a shuffle node comes from: ``(node, byte)``, or ``None`` (any value)."""


def shuffles(node: Sequence[Lane]) -> int:
    """Two-source shuffles (``vpermt2b``) that make ``node``: one per source after the first
    (at least one)."""
    return max(1, len({src for src, _ in filter(None, node)}) - 1)


def chunk_network(kh: int, c: int, chunk: int) -> tuple[list[list[Lane]], list[int]]:
    """The shuffles that turn the ``kh`` row vectors of a chunk (nodes ``0 .. kh-1``, column
    ``col`` channel ``ch`` at byte ``col*c + ch``) into its band vectors: the nodes after the
    rows, each a list of 64 lanes, and the node of each band vector.

    Either directly (each band vector drawing on every kernel row: ``kh - 1`` shuffles), or in
    two levels when that is fewer shuffles: kernel rows ``2m, 2m+1`` interleaved first (``2c``
    bytes per column, one shuffle per vector), then the band vectors from those streams."""
    column = kh * c
    total = chunk * column
    vectors = -(-total // VECTOR)

    def band_nodes(where) -> list[list[Lane]]:
        nodes = []
        for k in range(vectors):
            lanes: list[Lane] = []
            for i in range(VECTOR):
                pos = k * VECTOR + i
                col, rem = divmod(pos, column)
                lanes.append(where(col, rem // c, rem % c) if pos < total else None)
            nodes.append(lanes)
        return nodes

    direct = band_nodes(lambda col, r, ch: (r, col * c + ch))
    pairs: list[list[Lane]] = []
    first: dict[int, int] = {}
    for m in range(kh // 2):
        first[m] = kh + len(pairs)
        stream = chunk * 2 * c
        for k in range(-(-stream // VECTOR)):
            lanes = []
            for i in range(VECTOR):
                pos = k * VECTOR + i
                col, rem = divmod(pos, 2 * c)
                lanes.append((2 * m + rem // c, col * c + rem % c) if pos < stream else None)
            pairs.append(lanes)

    def paired(col: int, r: int, ch: int) -> Lane:
        if r // 2 not in first:
            return (r, col * c + ch)
        at = 2 * c * col + c * (r % 2) + ch
        return (first[r // 2] + at // VECTOR, at % VECTOR)

    two = band_nodes(paired)
    if sum(map(shuffles, pairs + two)) < sum(map(shuffles, direct)):
        nodes = pairs + two
        return nodes, list(range(kh + len(pairs), kh + len(nodes)))
    return direct, list(range(kh, kh + len(direct)))


@dataclass(frozen=True)
class BandPlan:
    """The band schedule of one convolution (module docstring); ``tiles`` gives ``P``, ``B``."""

    tiles: Int8Plan
    kh: int
    c: int
    stride_w: int
    window: int
    """``K = KW*KH*C``."""
    groups: int
    """``Gw = ceil(K / g)``."""
    columns: int
    """Padded columns the band needs: ``(OW - 1)*sw + KW``."""
    chunk: int
    """``J = 64 // C`` columns per build step."""
    chunks: int
    """``ceil(columns / J)``."""
    pad_left: int
    """``pl``: padded columns left of the input."""
    width: int
    """``W``: input columns."""

    @property
    def path(self) -> DotPath:
        return self.tiles.path

    @property
    def column(self) -> int:
        """``KH*C``: band bytes per padded column."""
        return self.kh * self.c

    @property
    def chunk_vectors(self) -> int:
        return -(-self.chunk * self.column // VECTOR)

    @property
    def band_bytes(self) -> int:
        return self.chunks * self.chunk * self.column + VECTOR

    def build_cost(self) -> int:
        """Vector instructions of building one row's band: copies, then per chunk the loads,
        the shuffles of :func:`chunk_network` and the stores."""
        nodes, _ = chunk_network(self.kh, self.c, self.chunk)
        return self.chunks * (2 * self.kh + sum(map(shuffles, nodes)) + self.chunk_vectors)

    def source_start(self, t: int) -> int:
        """Row byte of lane 0 of chunk ``t``'s sources (negative left of the row)."""
        return (t * self.chunk - self.pad_left) * self.c

    def plain(self, t: int) -> bool:
        """Chunk ``t``'s sources are plain 64-byte loads inside the row."""
        start = self.source_start(t)
        return start >= 0 and start + VECTOR <= self.width * self.c

    def source_lanes(self, t: int) -> list[int]:
        """The used lanes of chunk ``t``'s sources that hold input bytes (the others are
        padding)."""
        start, data = self.source_start(t), self.width * self.c
        return [int(0 <= start + i < data and i < self.chunk * self.c) for i in range(VECTOR)]


def plan_band(tiles: Int8Plan, geo: Geometry) -> BandPlan | None:
    """The band plan when the cost model prefers it to the row segments of ``tiles``."""
    path = tiles.path
    if (path.lanes * 4 != VECTOR or geo.dilation[1] != 1 or geo.c > VECTOR
            or tiles.per_tap):
        return None
    c, kh, kw, sw = geo.c, geo.kh, geo.kw, geo.stride[1]
    window = kw * kh * c
    groups = -(-window // path.group)
    columns = (geo.ow - 1) * sw + kw
    chunk = VECTOR // c
    chunks = -(-columns // chunk)
    plan = BandPlan(tiles, kh, c, sw, window, groups, columns, chunk, chunks, geo.pad[1], geo.w)
    if plan.band_bytes > MAX_SCRATCH:
        return None
    dots_rows = geo.ow * tiles.blocks * tiles.segments * tiles.groups
    dots_band = geo.ow * tiles.blocks * groups
    cheaper = dots_band + plan.build_cost() < dots_rows
    return plan if cheaper or not COST_MODEL else None


def band_weights(plan: BandPlan, w: np.ndarray) -> np.ndarray:
    """``wr[b, q*V + l*g + k]`` (module docstring) from ``w`` ``[O, KH, KW, C]``."""
    g, lanes = plan.path.group, plan.path.lanes
    o = w.shape[0]
    flat = np.zeros((plan.tiles.blocks * lanes, plan.groups * g), dtype=np.int64)
    flat[:o, : plan.window] = w.transpose(0, 2, 1, 3).reshape(o, -1)
    out = flat.reshape(plan.tiles.blocks, lanes, plan.groups, g).transpose(0, 2, 1, 3)
    return out.reshape(plan.tiles.blocks, -1)


def _bytes(lanes: int) -> VectorType:
    return VectorType(i8, [lanes])


class BandKernel(Int8Kernel):
    """Emits a convolution planned by :func:`plan_band` (the module docstring's three steps)."""

    def __init__(self, em: Emitter, band: BandPlan, geo: Geometry, weights: SSAValue,
                 start: SSAValue | None, output=None):
        super().__init__(em, band.tiles, geo, weights, start, output)
        self.band = band

    def _u(self, e: Emitter, v: SSAValue) -> SSAValue:
        """``u(x)`` lane-wise: ``x XOR 0x80`` on the biased path.

        The biased vector goes through an empty inline-asm barrier (no instruction). When a band is
        small enough for LLVM to forward its stores to the kernel's loads, the kernel's first
        group becomes ``broadcast_dword0(xor(x, splat 0x80))`` on a 64-byte vector, and LLVM 22's
        x86-64 AVX-512 instruction selection loops forever on that pattern; the barrier keeps the
        XOR out of the broadcast's reach."""
        if not self.path.biased:
            return v
        u = e.emit(arith.XOrIOp(v, e.vector_const([0x80] * VECTOR, i8)))
        return e.emit(llvm.InlineAsmOp("", "=v,0", [u], [u.type]))

    # Steps 1 and 2: the band ---------------------------------------------------------------
    def sources(self, e: Emitter, n: SSAValue, rows: Sequence[tuple[SSAValue, SSAValue | None]],
                t: int | SSAValue) -> list[SSAValue]:
        """The ``KH`` source vectors of chunk ``t`` (static, or a dynamic plain chunk): per row
        ``(ih, valid)`` (``valid`` ``None``: the row is inside; else ``ih`` is clamped)."""
        geo, band = self.geo, self.band
        zero = e.vector_const([0] * VECTOR, i8)
        out = []
        for ih, valid in rows:
            if isinstance(t, int) and not band.plain(t):
                start = band.source_start(t)
                lanes = band.source_lanes(t)
                base = max(start, 0)
                # lane i holds row byte start + i: loaded at lane i + start - base
                loaded_lanes = lanes[base - start:] + [0] * (base - start)
                if not any(lanes):
                    out.append(e.vector_const([0x80 if self.path.biased else 0] * VECTOR, i8))
                    continue
                at = geo.x_index(n, ih, e.index(base // geo.c), e.index(base % geo.c))
                v = e.emit(vector.MaskedLoadOp(geo.x, at, _lane_mask(e, loaded_lanes), zero))
                if base != start:
                    shift = base - start
                    v = e.emit(vector.ShuffleOp(zero, v, _mask(
                        [VECTOR + i - shift if i >= shift else i for i in range(VECTOR)]),
                        result_type=_bytes(VECTOR)))
            else:
                col = (e.index(t * band.chunk - band.pad_left) if isinstance(t, int)
                       else e.affine(t, band.chunk, -band.pad_left))
                v = e.emit(vector.LoadOp(geo.x, geo.x_index(n, ih, col, e.index(0)),
                                         _bytes(VECTOR)))
            if valid is not None:
                v = e.select(valid, v, zero)
            out.append(self._u(e, v))
        return out

    def build_band(self, e: Emitter, n: SSAValue, oh: SSAValue, out: SSAValue,
                   checked: bool) -> None:
        """Every chunk in order: its sources, the shuffles of :func:`chunk_network` (each node a
        chain of two-source shuffles, one source added per step), the band vectors stored.
        ``checked``: rows may lie outside the input (a select per source)."""
        geo, band = self.geo, self.band
        nodes, outputs = chunk_network(band.kh, band.c, band.chunk)
        rows: list[tuple[SSAValue, SSAValue | None]] = []
        for r in range(band.kh):
            ih = e.affine(oh, geo.stride[0], r * geo.dilation[0] - geo.pad[0])
            if checked:
                valid = e.cmpi(ih, e.index(geo.h), "ult")
                rows.append((e.select(valid, ih, e.index(0)), valid))
            else:
                rows.append((ih, None))

        def chunk(e1: Emitter, t: int | SSAValue) -> None:
            values = self.sources(e1, n, rows, t)
            for node in nodes:
                values.append(_emit_node(e1, values, node))
            dst = (e1.index(t * band.chunk * band.column) if isinstance(t, int)
                   else e1.affine(t, band.chunk * band.column, 0))
            for k, index in enumerate(outputs):
                e1.emit(vector.StoreOp(values[index], out, [e1.add(dst, e1.index(k * VECTOR))]))

        plain = [t for t in range(band.chunks) if band.plain(t)]
        lo, hi = (plain[0], plain[-1] + 1) if plain else (band.chunks, band.chunks)
        for t in range(lo if plain else band.chunks):
            chunk(e, t)
        e.loop(lo, hi, lambda e1, t, _s: chunk(e1, t) or [])
        for t in range(hi, band.chunks):
            chunk(e, t)

    # Step 3: the kernel ---------------------------------------------------------------------
    def band_tile(self, e: Emitter, n: SSAValue, oh: SSAValue, band_ref: SSAValue,
                  cols: Sequence[SSAValue]) -> None:
        plan, B = self.plan, self.plan.tile_blocks
        full_steps = (self.geo.o // self.path.lanes) // B

        def step(e1: Emitter, b0: SSAValue, _s) -> list:
            self._band_blocks(e1, n, oh, band_ref, cols, b0, B, partial=False)
            return []

        e.loop(0, full_steps * B, step, step=B)
        rest = plan.blocks - full_steps * B
        if rest:
            self._band_blocks(e, n, oh, band_ref, cols, e.index(full_steps * B), rest, partial=True)

    def _band_blocks(self, e: Emitter, n: SSAValue, oh: SSAValue, band_ref: SSAValue,
                     cols: Sequence[SSAValue], b0: SSAValue, nb: int, partial: bool) -> None:
        band, path = self.band, self.path
        g, acc_n = path.group, path.accumulators
        init: list[SSAValue] = []
        for _p in cols:
            for b in range(nb):
                init += self._start(e, b0, b)
        starts = [e.affine(col, band.stride_w * band.column, 0) for col in cols]

        def group(e1: Emitter, q: SSAValue, accs: Sequence[SSAValue]) -> list[SSAValue]:
            at = e1.affine(q, path.weight_vector, 0)
            ws = [self._weight(e1, b0, b, at) for b in range(nb)]
            off = e1.affine(q, g, 0)
            accs = list(accs)
            for p, start in enumerate(starts):
                grp = e1.emit(vector.LoadOp(band_ref, [e1.add(start, off)], _bytes(g)))
                a = broadcast_group(e1, path, grp, biased=True)
                for b in range(nb):
                    k = (p * nb + b) * acc_n
                    accs[k : k + acc_n] = dot_step(e1, path, accs[k : k + acc_n], a, ws[b])
            return accs

        def unrolled(e1: Emitter, q0: SSAValue, accs: Sequence[SSAValue]) -> list[SSAValue]:
            for u in range(GROUP_UNROLL):
                accs = group(e1, e1.add(q0, e1.index(u)), accs)
            return list(accs)

        looped = band.groups - band.groups % GROUP_UNROLL
        accs = e.loop(0, looped, unrolled, init, step=GROUP_UNROLL)
        for q in range(looped, band.groups):
            accs = group(e, e.index(q), accs)
        self.store(e, n, oh, cols, b0, nb, accs, partial)

    # Rows -----------------------------------------------------------------------------------
    def emit(self, parallel: bool) -> None:
        geo, band, P = self.geo, self.band, self.plan.tile_pixels
        tiled = geo.ow // P * P
        ptr = llvm.LLVMPointerType()

        row_lo, row_hi = interior_range(geo.h, geo.oh, band.kh, geo.stride[0], geo.dilation[0],
                                        geo.pad[0])

        def row(e: Emitter, n: SSAValue, oh: SSAValue) -> None:
            saved = e.emit(llvm.CallIntrinsicOp("llvm.stacksave.p0", [], [ptr]))
            band_ref = e.stack_buffer(band.band_bytes, i8)
            scratch = self.begin_row(e)
            if row_lo == 0 and row_hi == geo.oh:
                self.build_band(e, n, oh, band_ref, checked=False)
            else:
                inside = e.emit(arith.AndIOp(e.cmpi(oh, e.index(row_lo), "uge"),
                                             e.cmpi(oh, e.index(row_hi), "ult")))
                e.if_else(inside, lambda e1: self.build_band(e1, n, oh, band_ref, False),
                          lambda e1: self.build_band(e1, n, oh, band_ref, True))

            def block(e1: Emitter, c0: SSAValue, _s) -> list:
                self.band_tile(e1, n, oh, band_ref, [e1.add(c0, e1.index(k)) for k in range(P)])
                return []

            e.loop(0, tiled, block, step=P)
            if tiled < geo.ow:
                self.band_tile(e, n, oh, band_ref, [e.index(k) for k in range(tiled, geo.ow)])
            self.end_row(e, scratch)
            e.emit(llvm.CallIntrinsicOp("llvm.stackrestore.p0", [saved], []))

        self.each_row(parallel, row)


def _emit_node(e: Emitter, values: Sequence[SSAValue], node: Sequence[Lane]) -> SSAValue:
    """One node of :func:`chunk_network`: ``shuffle(S0, S1)``, then ``shuffle(v, S_k)`` for each
    further source (lanes of ``v`` kept at ``i``, those of ``S_k`` at ``64 + byte``)."""
    sources = list(dict.fromkeys(src for src, _ in filter(None, node)))
    v = values[sources[0]]
    for step, src in enumerate(sources[1:] or sources[:1]):
        mask = []
        for i, lane in enumerate(node):
            if lane is not None and lane[0] == src:
                mask.append(VECTOR + lane[1])
            elif lane is not None and step == 0 and lane[0] == sources[0]:
                mask.append(lane[1])
            else:
                mask.append(i)
        v = e.emit(vector.ShuffleOp(v, values[src], _mask(mask), result_type=_bytes(VECTOR)))
    return v


def _lane_mask(e: Emitter, bits: Sequence[int]) -> SSAValue:
    """A constant ``vector<64 x i1>``."""
    key = ("lane mask", tuple(bits))
    return e.pool.get(key, lambda: arith.ConstantOp(
        DenseIntOrFPElementsAttr.from_list(VectorType(i1, [len(bits)]), list(bits))))


def _mask(values: Sequence[int]):
    from xdsl.dialects.builtin import DenseArrayBase

    return DenseArrayBase.from_list(i64, list(values))
