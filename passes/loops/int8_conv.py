"""Integer convolution and dense (``bnn.conv2d`` / ``bnn.dense``, i8 x i8 -> i32) as vector code.

The schedule (:class:`Int8Plan`, pure: tile sizes, reduction segments, instruction path) is made
by :func:`plan_int8`; :func:`lower_int8_conv2d` / :func:`lower_int8_dense` emit it. Layers whose
weights are not a constant global, and targets without a vector path, keep the scalar loops of
:mod:`bnnmlir.passes.loops.support`.

The reduction
    ``out[n, oh, ow, o] = sum over taps (kh, kw) inside the input, c < C of
    x[n, ih, iw, c] * w[o, kh, kw, c]``. It is cut into *segments* that are contiguous in both
    operands (NHWC activations, ``[O, KH, KW, C]`` weights): with ``dilation_w = 1`` one segment
    per kernel row, the ``R = KW*C`` bytes ``x[n, ih, iw0 : iw0 + KW, :]`` (for the 7x7 3-channel
    stem 21 bytes, so lanes are not wasted on 3 channels); else one per tap, ``R = C``. A segment
    is read in *groups* of ``g`` bytes (``g = 4``: ``vpdpbusd``, ``sdot``; ``g = 2``:
    ``vpmaddwd``, ``smull``) at offsets ``0, g, .., g*(F-1)`` (``F = R // g``) and, when
    ``R % g != 0``, ``R - g``: that last group overlaps the previous one, and its weight bytes
    already counted are 0 (a product with a 0 weight adds nothing). A segment shorter than ``g``
    is one group whose missing bytes are 0 in both operands. Padding taps read ``x = 0``.

Weights, re-laid at compile time into ``wr[b, (s*Gs + q)*V + l*g + k] = w[b*L + l, s, off_q + k]``
    (``V = L*g``; 0 for a channel ``>= O`` or a byte counted by an earlier group): one vector load
    holds group ``q`` of segment ``s`` for the ``L`` channels of block ``b``, ``g`` bytes per
    channel, matching the ``g``-byte activation group repeated ``L`` times (a broadcast).
    Channels are padded to a multiple of ``L`` with zero weights (exact; the extra lanes are not
    stored).

Instruction paths (``TargetInfo.int8_dot``), one ``i32`` lane per output channel:

* ``vnni`` (AVX-512 VNNI, ``L = 16``): ``vpdpbusd acc, u, w`` adds to lane ``l`` the four
  products ``u[4l+k] * w[4l+k]`` of an UNSIGNED byte ``u`` and a signed ``w``. The activations
  are made unsigned by ``u = x XOR 0x80 = x + 128``, so the lane gathers ``sum (x + 128) * w =
  sum x*w + 128 * sum w``; the accumulator therefore starts at ``-128 * sum(w[o])`` over all
  ``KH*KW*C`` weights (computed at compile time). Padding taps read ``x = 0``, i.e. ``u = 128``,
  whose ``128 * w`` the same start value cancels: exact at the borders too.
  Exactness (no overflow): ``vpdpbusd`` sums the four products exactly and adds them to the
  lane modulo ``2**32``, like every other ``i32`` add here, so the result is the true sum
  modulo ``2**32``. The true sum lies in ``[-2**31, 2**31)``: ``|x*w| <= 128*128`` and the
  ``bnn.conv2d`` / ``bnn.dense`` verifiers bound the fan-in ``K`` by ``131071``, so
  ``|sum x*w| <= 128**2 * 131071 = 2**31 - 2**14``. A residue modulo ``2**32`` names one value of
  that range, so the ``i32`` result is exact. (No intermediate even wraps while
  ``255 * 128 * K <= 2**31 - 1``, ``K <= 65793``: the bound of a partial sum of ``u*w`` plus the
  start value ``|128 * sum w| <= 128*128*K``.)
* ``pmaddwd`` (AVX-512BW ``L = 16``, AVX2 ``L = 8``; no VNNI): the activation pair and the
  weights (stored as ``i16`` at compile time) are sign-extended to ``i16``; ``vpmaddwd`` forms
  ``a[2l]*w[2l] + a[2l+1]*w[2l+1]`` in 32 bits: each product is at most ``2**14`` in magnitude,
  exact in ``i16`` inputs and ``i32`` output. (``vpmaddubsw`` is not used: it saturates its sum of
  two products to ``i16``.)
* ``sdot`` (aarch64 ``+dotprod``, ``L = 4``): ``sdot acc.4s, a.16b, w.16b`` adds the four exact
  signed products of lane ``l``; no offset is needed (signed x signed).
* ``smull`` (aarch64 NEON, ``L = 8``, ``g = 2``): ``smull`` multiplies 8 bytes into 8 exact
  ``i16`` products (``|p| <= 2**14 < 2**15``) and ``sadalp`` adds adjacent pairs into ``i32``
  lanes: the low 8 weight bytes are channels 0-3, the high 8 channels 4-7, each a 4-lane
  accumulator. ``smlal`` (adding two products in ``i16``) is not used: ``2 * 2**14`` wraps ``i16``
  at ``-128 * -128``.

Every ``i32`` add wraps modulo ``2**32``; by the bound above the final sums are exact on all paths.

Loop nest (``P`` pixels x ``B`` channel blocks of accumulators held in registers)::

    for r in [0, N*OH)                          (scf.parallel with the parallel option)
      if oh is an interior row: columns(rows checked = no) else columns(rows checked = yes)
                                                (every row checked on a small layer:
                                                 ``rows_without_checks``)
    columns: interior columns in tiles of P, the rest of the interior one by one, border
             columns (left, then right: one loop) one by one with column checks
    tile:    for channel blocks in steps of B (the last partial step statically):
               acc[p][b] = start; for segments s; for groups q: acc[p][b] += x-group(p, s, q) . wr[b, s, q]
               store acc (a partial channel block lane by lane), through a fused requant8
               (``bnn.conv2d {requant}``): the affine map lane-wise on whole blocks
               (:func:`~bnnmlir.passes.loops.support.affine_requant_vector`, then ``i8`` lanes;
               four blocks on AVX-512 through saturating packs, :func:`pack_clip8`), the
               per-element code of ``bnn.requant8`` otherwise

Interior rows and columns are those whose taps all lie inside the input (the same ranges as the
binary convolution); a checked row reads ``x = 0`` for a kernel row outside the input (a select
on the loaded group, the load clamped to row 0), a checked column builds each group byte by byte.
A row segment's group at offset ``t`` is loaded from ``x[n, ih, iw0, t]``: ``t`` may pass the
channel extent, the row-major address running on into the next taps of the same input row.
Dense is the convolution of ``N`` one-pixel images: ``x[n, :]`` is the pixel ``(0, n)``.

Few input channels (the 3-channel stem): when its cost model prefers it,
:mod:`~bnnmlir.passes.loops.int8_band` lays each output row's windows out as one contiguous run
per pixel (``ceil(KH*KW*C / g)`` groups instead of ``KH`` segments with overlapping groups) and
runs the same register tiles, epilogue and instruction paths on it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from xdsl.dialects import arith, llvm, memref, vector
from xdsl.dialects.builtin import (
    DenseArrayBase,
    DenseIntOrFPElementsAttr,
    IntegerType,
    MemRefType,
    VectorType,
    i8,
    i16,
    i32,
    i64,
)
from xdsl.ir import Operation, SSAValue
from xdsl.traits import SymbolTable

from bnnmlir.dialects.bnn_support import Conv2dOp, DenseOp
from bnnmlir.ir_utils import value_shape
from bnnmlir.passes.loops import support
from bnnmlir.passes.loops.emitter import Emitter
from bnnmlir.passes.loops.lowering import LoweringContext, interior_range, rows_without_checks
from bnnmlir.target import TargetInfo

# ---------------------------------------------------------------------------------------------
# Instruction paths
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DotPath:
    """One way to compute ``L`` channels' dot products on ``g``-byte groups (module docstring)."""

    name: str
    group: int
    """``g``: bytes of the reduction per ``i32`` lane and step."""
    lanes: int
    """``L``: output channels per weight vector (``i32`` lanes of the result)."""
    weight_elem: IntegerType
    """Element type of the re-laid weights (``i16``: sign-extended at compile time)."""
    registers: int
    """Vector registers of the target, for the tile size."""
    accumulators: int = 1
    """Accumulator vectors per weight vector (``smull``: two of 4 lanes)."""
    biased: bool = False
    """Activations made unsigned by ``+128`` (``vnni``); the start value cancels it."""

    @property
    def weight_vector(self) -> int:
        return self.lanes * self.group


PATHS = {
    "vnni": DotPath("vnni", 4, 16, i8, 32, biased=True),
    "pmaddwd": DotPath("pmaddwd", 2, 16, i16, 32),
    "pmaddwd256": DotPath("pmaddwd256", 2, 8, i16, 16),
    "sdot": DotPath("sdot", 4, 4, i8, 32),
    "smull": DotPath("smull", 2, 8, i8, 32, accumulators=2),
}


def dot_path(target: TargetInfo) -> DotPath | None:
    """The vector path of ``target`` (``None``: scalar loops)."""
    kind = target.int8_dot
    if kind == "pmaddwd" and target.vector_bytes == 32:
        kind = "pmaddwd256"
    return PATHS.get(kind)


# ---------------------------------------------------------------------------------------------
# The plan
# ---------------------------------------------------------------------------------------------

MAX_UNROLLED_GROUPS = 8
"""Segments of at most this many groups are unrolled whole; longer ones loop ``GROUP_UNROLL``
groups per iteration."""
GROUP_UNROLL = 4


@dataclass(frozen=True)
class Int8Plan:
    """The schedule of one integer convolution: what the emitter does, decided up front."""

    path: DotPath
    per_tap: bool
    """Segments are taps (``dilation_w != 1``) rather than kernel rows."""
    segments: int
    """``S``: ``KH`` (rows) or ``KH*KW`` (taps)."""
    run: int
    """``R``: bytes per segment."""
    full_groups: int
    """``F = R // g`` groups at offsets ``q*g``."""
    groups: int
    """``Gs``: ``F`` plus the overlapping last group (``R % g != 0``), or 1 when ``R < g``."""
    blocks: int
    """Channel blocks of ``L`` (the last one partial when ``L`` does not divide ``O``)."""
    tile_blocks: int
    """``B``: channel blocks accumulated together."""
    tile_pixels: int
    """``P``: output positions accumulated together."""

    def offset(self, q: int) -> int:
        """Segment byte offset of group ``q``."""
        g = self.path.group
        return q * g if q < self.full_groups else max(0, self.run - g)

    def counted_from(self, q: int) -> int:
        """First byte of group ``q`` not counted by an earlier group (its weights below are 0)."""
        return q * self.path.group - self.offset(q) if q >= self.full_groups else 0

    @property
    def unrolled(self) -> bool:
        return self.groups <= MAX_UNROLLED_GROUPS


def plan_int8(path: DotPath, out_channels: int, kernel_w: int, kernel_h: int, channels: int,
              dilation_w: int, pixels: int) -> Int8Plan:
    """The tile: ``B`` blocks (all when they fit, at most 4) and ``P`` positions such that the
    ``P*B*acc`` accumulators, ``B`` weight vectors and two activation vectors fit the registers."""
    per_tap = dilation_w != 1
    run = channels if per_tap else kernel_w * channels
    g = path.group
    full = run // g
    groups = max(1, full + (run % g != 0 and run >= g))
    blocks = -(-out_channels // path.lanes)
    budget = path.registers - 3
    tile_blocks = min(blocks, 4)
    per_pixel = tile_blocks * path.accumulators
    tile_pixels = max(1, min(pixels, (budget - tile_blocks) // per_pixel, 8))
    return Int8Plan(path, per_tap, kernel_h * (kernel_w if per_tap else 1), run, full, groups,
                    blocks, tile_blocks, tile_pixels)


def relaid_weights(plan: Int8Plan, w: np.ndarray) -> np.ndarray:
    """``wr[b, (s*Gs + q)*V + l*g + k]`` (module docstring) from ``w`` ``[O, KH, KW, C]``."""
    g, lanes = plan.path.group, plan.path.lanes
    o = w.shape[0]
    seg = w.reshape(o, plan.segments, plan.run)
    out = np.zeros((plan.blocks * lanes, plan.segments, plan.groups, g), dtype=np.int64)
    for q in range(plan.groups):
        start, keep = plan.offset(q), plan.counted_from(q)
        width = min(g, plan.run - start)
        out[:o, :, q, keep:width] = seg[:, :, start + keep : start + width]
    out = out.reshape(plan.blocks, lanes, plan.segments, plan.groups, g).transpose(0, 2, 3, 1, 4)
    return out.reshape(plan.blocks, -1)


# ---------------------------------------------------------------------------------------------
# Emission of the instruction paths
# ---------------------------------------------------------------------------------------------


def _vtype(elem: IntegerType, lanes: int) -> VectorType:
    return VectorType(elem, [lanes])


def _shuffle(e: Emitter, v: SSAValue, mask: Sequence[int]) -> SSAValue:
    elem = v.type.element_type  # type: ignore[attr-defined]
    return e.emit(vector.ShuffleOp(v, v, DenseArrayBase.from_list(i64, list(mask)),
                                   result_type=_vtype(elem, len(mask))))


def _intrinsic(e: Emitter, name: str, args: Sequence[SSAValue], result: VectorType) -> SSAValue:
    return e.emit(llvm.CallIntrinsicOp(name, list(args), [result]))


def broadcast_group(e: Emitter, path: DotPath, group: SSAValue, biased: bool = False) -> SSAValue:
    """The activation operand: the ``g``-byte ``group`` (``vector<g x i8>``) made unsigned
    (``vnni``; already done when ``biased``) or sign-extended (``pmaddwd``) and repeated over the
    ``L`` lanes."""
    g = path.group
    if path.biased and not biased:
        group = e.emit(arith.XOrIOp(group, e.vector_const([0x80] * g, i8)))
    if path.weight_elem == i16:
        group = e.emit(llvm.SExtOp(group, _vtype(i16, g)))
    repeat = path.lanes if path.name != "smull" else 4
    return _shuffle(e, group, list(range(g)) * repeat)


def dot_step(e: Emitter, path: DotPath, accs: Sequence[SSAValue], a: SSAValue,
             w: SSAValue) -> list[SSAValue]:
    """``accs`` plus the lane dot products of the activation operand ``a`` and weights ``w``."""
    (acc, *_rest) = accs
    if path.name == "vnni":
        return [_intrinsic(e, "llvm.x86.avx512.vpdpbusd.512", [acc, a, w], _vtype(i32, 16))]
    if path.name.startswith("pmaddwd"):
        name = "llvm.x86.avx512.pmaddw.d.512" if path.lanes == 16 else "llvm.x86.avx2.pmadd.wd"
        products = _intrinsic(e, name, [a, w], _vtype(i32, path.lanes))
        return [e.emit(arith.AddiOp(acc, products))]
    if path.name == "sdot":
        return [_intrinsic(e, "llvm.aarch64.neon.sdot.v4i32.v16i8", [acc, a, w], _vtype(i32, 4))]
    out = []
    for half, accumulator in enumerate(accs):
        wh = _shuffle(e, w, range(8 * half, 8 * half + 8))
        p = _intrinsic(e, "llvm.aarch64.neon.smull.v8i16", [a, wh], _vtype(i16, 8))
        pairs = _intrinsic(e, "llvm.aarch64.neon.saddlp.v4i32.v8i16", [p], _vtype(i32, 4))
        out.append(e.emit(arith.AddiOp(accumulator, pairs)))
    return out


def _requant_unclamped(e: Emitter, acc: SSAValue, arrays: support.AffineArrays,
                       first: SSAValue) -> SSAValue:
    """``(acc * m + b) >> s`` lane-wise in ``i32`` when the arrays are ``i32`` (exact there, see
    :func:`~bnnmlir.passes.loops.support.affine_arrays`), not yet clamped; with ``i64`` arrays
    the clamped ``i32`` of :func:`~bnnmlir.passes.loops.support.affine_requant_vector`."""
    if arrays[0][1].get_element_type() != i32:
        return support.affine_requant_vector(e, acc, arrays, first)
    lanes = acc.type.get_shape()[0]  # type: ignore[attr-defined]
    m, b, s = (e.vload(e.get_global(*ref), [first], lanes) for ref in arrays)
    return e.emit(arith.ShRSIOp(e.emit(arith.AddiOp(e.emit(arith.MuliOp(acc, m)), b)), s))


DWORD_TRANSPOSE = [4 * (k % 4) + k // 4 for k in range(16)]
"""The ``vpermd`` that undoes the 128-bit-lane interleave of the two packs of :func:`pack_clip8`."""


def pack_clip8(e: Emitter, vs: Sequence[SSAValue]) -> SSAValue:
    """``clamp(v, -127, 127)`` of four ``vector<16 x i32>`` as one ``vector<64 x i8>`` (``vs[0]``
    first): ``vpackssdw`` (saturating to ``i16``) of ``(v0, v1)`` and ``(v2, v3)``, ``vpacksswb``
    (saturating to ``i8``), so every lane is ``clamp(v, -128, 127)`` (the two saturations
    compose); then ``vpermd`` restores the order (the packs interleave per 128-bit lane: dword
    ``4i + j`` of the result is 4-byte chunk ``i`` of ``v_j``) and ``vpmaxsb`` with -127 gives
    ``clamp(v, -127, 127)`` exactly."""
    words = [_intrinsic(e, "llvm.x86.avx512.packssdw.512", [vs[k], vs[k + 1]], _vtype(i16, 32))
             for k in (0, 2)]
    packed = _intrinsic(e, "llvm.x86.avx512.packsswb.512", words, _vtype(i8, 64))
    dwords = e.emit(llvm.BitcastOp(packed, _vtype(i32, 16)))
    ordered = e.emit(llvm.BitcastOp(_shuffle(e, dwords, DWORD_TRANSPOSE), _vtype(i8, 64)))
    return e.emit(arith.MaxSIOp(ordered, e.vector_const([-127] * 64, i8)))


# ---------------------------------------------------------------------------------------------
# The kernel
# ---------------------------------------------------------------------------------------------

Index = Callable[[SSAValue, SSAValue, SSAValue, SSAValue], list[SSAValue]]
"""``(n, h, w, c) -> memref indices`` (conv: the same; dense: ``[w, c]``)."""


@dataclass
class Geometry:
    """The convolution being emitted: shapes, window and how to index its buffers."""

    x: SSAValue
    out: SSAValue
    n: int
    h: int
    w: int
    c: int
    o: int
    kh: int
    kw: int
    oh: int
    ow: int
    stride: tuple[int, int]
    dilation: tuple[int, int]
    pad: tuple[int, int]
    """Leading padding (top, left)."""
    x_index: Index
    out_index: Index


@dataclass(frozen=True)
class OutputMap:
    """A fused requant8 output (``bnn.conv2d`` with ``requant``): the per-element code and, for
    the affine kind, the arrays of the lane-wise form used on whole channel blocks."""

    element: support.RequantElement
    arrays: support.AffineArrays | None


class Int8Kernel:
    """Emits one planned convolution (see the module docstring for the loop nest)."""

    def __init__(self, em: Emitter, plan: Int8Plan, geo: Geometry, weights: SSAValue,
                 start: SSAValue | None, output: OutputMap | None = None,
                 min_unchecked_rows_macs: int = -1):
        self.plan, self.geo, self.weights, self.start = plan, geo, weights, start
        self.min_unchecked_rows_macs = min_unchecked_rows_macs
        self.path = plan.path
        self.em = em
        self.output = output
        self.scratch: SSAValue | None = None
        """The current row's scratch buffer (see :meth:`begin_row`)."""

    # Activation groups ---------------------------------------------------------------------
    def _group(self, e: Emitter, n: SSAValue, ih: SSAValue, iw0: SSAValue, seg_col: int | SSAValue,
               offset: SSAValue, row_ok: SSAValue | None, checked_cols: bool,
               static_offset: int | None) -> SSAValue:
        """The ``g`` activation bytes of a group at segment byte ``offset`` (``vector<g x i8>``)."""
        geo, plan, g = self.geo, self.plan, self.path.group
        short = plan.run < g
        if not checked_cols and not short:
            col = iw0 if not plan.per_tap else e.add(iw0, seg_col)  # type: ignore[arg-type]
            v = e.emit(vector.LoadOp(geo.x, geo.x_index(n, ih, col, offset), _vtype(i8, g)))
            if row_ok is not None:
                v = e.select(row_ok, v, e.vector_const([0] * g, i8))
            return v
        v = e.vector_const([0] * g, i8)
        for k in range(g):
            if short and k >= plan.run:
                break
            if static_offset is not None:
                t = static_offset + k
                kw_, c_ = (0, t) if plan.per_tap else divmod(t, geo.c)
                tap, ch = e.index(kw_), e.index(c_)
            else:
                t = e.add(offset, e.index(k))
                if plan.per_tap:
                    tap, ch = e.index(0), t
                else:
                    tap = e.emit(arith.DivUIOp(t, e.index(geo.c)))
                    ch = e.emit(arith.RemUIOp(t, e.index(geo.c)))
            if plan.per_tap:
                tap = seg_col if isinstance(seg_col, SSAValue) else e.index(seg_col)
            iw = e.add(iw0, e.affine(tap, geo.dilation[1], 0) if not plan.per_tap else tap)
            ok = row_ok
            if checked_cols:
                col_ok = e.cmpi(iw, e.index(geo.w), "ult")
                ok = col_ok if ok is None else e.emit(arith.AndIOp(ok, col_ok))
            safe_ih = ih if row_ok is None else e.select(row_ok, ih, e.index(0))
            safe_iw = iw if not checked_cols else e.select(ok, iw, e.index(0))  # type: ignore[arg-type]
            byte = e.load(geo.x, geo.x_index(n, safe_ih, safe_iw, ch))
            if ok is not None:
                byte = e.select(ok, byte, e.int(0, i8))
            v = e.emit(vector.InsertOp(byte, v, [k]))
        return v

    # Tiles ---------------------------------------------------------------------------------
    def tile(self, e: Emitter, n: SSAValue, oh: SSAValue, cols: Sequence[SSAValue],
             rows_checked: bool, cols_checked: bool) -> None:
        """All output channels of the positions ``(oh, cols)``: channel blocks in steps of ``B``."""
        plan, B = self.plan, self.plan.tile_blocks
        full_steps = (self.geo.o // self.path.lanes) // B

        def step(e1: Emitter, b0: SSAValue, _s) -> list:
            self._blocks(e1, n, oh, cols, b0, B, rows_checked, cols_checked, partial=False)
            return []

        e.loop(0, full_steps * B, step, step=B)
        rest = plan.blocks - full_steps * B
        if rest:
            self._blocks(e, n, oh, cols, e.index(full_steps * B), rest, rows_checked,
                         cols_checked, partial=True)

    def _weight(self, e: Emitter, b0: SSAValue, b: int, at: SSAValue) -> SSAValue:
        path = self.path
        return e.emit(vector.LoadOp(self.weights, [e.add(b0, e.index(b)), at],
                                    _vtype(path.weight_elem, path.weight_vector)))

    def _start(self, e: Emitter, b0: SSAValue, b: int) -> list[SSAValue]:
        path = self.path
        lanes = path.lanes // path.accumulators
        if self.start is None:
            return [e.vector_const([0] * lanes, i32)] * path.accumulators
        at = e.affine(e.add(b0, e.index(b)), path.lanes, 0)
        return [e.emit(vector.LoadOp(self.start, [at], _vtype(i32, lanes)))]

    def _blocks(self, e: Emitter, n: SSAValue, oh: SSAValue, cols: Sequence[SSAValue],
                b0: SSAValue, nb: int, rows_checked: bool, cols_checked: bool,
                partial: bool) -> None:
        plan, geo, path = self.plan, self.geo, self.path
        acc_n = path.accumulators
        init: list[SSAValue] = []
        for _p in cols:
            for b in range(nb):
                init += self._start(e, b0, b)
        sh, sw = geo.stride
        dh, dw = geo.dilation
        ih0 = e.affine(oh, sh, -geo.pad[0])
        iw0s = [e.affine(c, sw, -geo.pad[1]) for c in cols]

        def segment(e1: Emitter, s: SSAValue, accs: Sequence[SSAValue]) -> list[SSAValue]:
            if plan.per_tap:
                r = e1.emit(arith.DivUIOp(s, e1.index(geo.kw))) if geo.kw > 1 else s
                tap = e1.emit(arith.RemUIOp(s, e1.index(geo.kw))) if geo.kw > 1 else e1.index(0)
                col: SSAValue | int = e1.affine(tap, dw, 0)
            else:
                r, col = s, 0
            ih = e1.add(ih0, e1.affine(r, dh, 0))
            row_ok = e1.cmpi(ih, e1.index(geo.h), "ult") if rows_checked else None
            safe_ih = ih if row_ok is None else e1.select(row_ok, ih, e1.index(0))
            base = e1.affine(s, plan.groups * path.weight_vector, 0)

            def groups(e2: Emitter, q: SSAValue, accs2: Sequence[SSAValue],
                       static_q: int | None) -> list[SSAValue]:
                if static_q is not None:
                    offset = e2.index(plan.offset(static_q))
                    at = e2.add(base, e2.index(static_q * path.weight_vector))
                    static_off = plan.offset(static_q)
                else:
                    offset = e2.affine(q, path.group, 0)
                    at = e2.add(base, e2.affine(q, path.weight_vector, 0))
                    static_off = None
                ws = [self._weight(e2, b0, b, at) for b in range(nb)]
                accs2 = list(accs2)
                for p, iw0 in enumerate(iw0s):
                    grp = self._group(e2, n, safe_ih if not cols_checked else ih, iw0, col,
                                      offset, row_ok, cols_checked, static_off)
                    a = broadcast_group(e2, path, grp)
                    for b in range(nb):
                        k = (p * nb + b) * acc_n
                        accs2[k : k + acc_n] = dot_step(e2, path, accs2[k : k + acc_n], a, ws[b])
                return accs2

            accs = list(accs)
            if plan.unrolled:
                for q in range(plan.groups):
                    accs = groups(e1, e1.index(q), accs, q)
                return accs
            looped = plan.full_groups - plan.full_groups % GROUP_UNROLL

            def unrolled(e2: Emitter, q0: SSAValue, a2: Sequence[SSAValue]) -> list[SSAValue]:
                a2 = list(a2)
                for u in range(GROUP_UNROLL):
                    a2 = groups(e2, e2.add(q0, e2.index(u)), a2, None)
                return a2

            accs = e1.loop(0, looped, unrolled, accs, step=GROUP_UNROLL)
            for q in range(looped, plan.groups):
                accs = groups(e1, e1.index(q), accs, q)
            return accs

        accs = e.loop(0, plan.segments, segment, init)
        self.store(e, n, oh, cols, b0, nb, accs, partial)

    def store(self, e: Emitter, n: SSAValue, oh: SSAValue, cols: Sequence[SSAValue],
              b0: SSAValue, nb: int, accs: Sequence[SSAValue], partial: bool) -> None:
        """The accumulators ``accs[(p*nb + b)*acc + h]`` of the positions ``(oh, cols)`` and the
        channel blocks ``b0 + b`` into the output (through the fused requant8, if any)."""
        geo, path = self.geo, self.path
        acc_n = path.accumulators
        lanes = path.lanes // acc_n
        if self._packs(nb, partial):
            assert self.output is not None and self.output.arrays is not None
            for p, col in enumerate(cols):
                first = e.affine(b0, path.lanes, 0)
                vs = [_requant_unclamped(e, accs[p * nb + b], self.output.arrays,
                                         e.affine(e.add(b0, e.index(b)), path.lanes, 0))
                      for b in range(nb)]
                e.emit(vector.StoreOp(pack_clip8(e, vs), geo.out, geo.out_index(n, oh, col, first)))
            return
        if self.output is not None and self.output.arrays is None:
            self._store_elementwise(e, n, oh, cols, b0, nb, accs, partial)
            return
        for p, col in enumerate(cols):
            for b in range(nb):
                for h in range(acc_n):
                    acc = accs[(p * nb + b) * acc_n + h]
                    first = e.affine(e.add(b0, e.index(b)), path.lanes, h * lanes)
                    valid = lanes
                    if partial:
                        static_b0 = e.known(b0)
                        assert static_b0 is not None
                        valid = min(lanes, geo.o - ((static_b0 + b) * path.lanes + h * lanes))
                    if valid <= 0:
                        continue
                    out = self.output
                    if valid == lanes and (out is None or out.arrays is not None):
                        if out is not None:
                            assert out.arrays is not None
                            acc = e.emit(llvm.TruncOp(
                                support.affine_requant_vector(e, acc, out.arrays, first),
                                _vtype(i8, lanes)))
                        e.emit(vector.StoreOp(acc, geo.out, geo.out_index(n, oh, col, first)))
                        continue
                    for lane in range(valid):
                        value = e.emit(vector.ExtractOp(acc, [lane], i32))
                        channel = e.add(first, e.index(lane))
                        if out is not None:
                            value = out.element(e, value, channel)
                        e.store(value, geo.out, geo.out_index(n, oh, col, channel))

    def _store_elementwise(self, e: Emitter, n: SSAValue, oh: SSAValue, cols: Sequence[SSAValue],
                           b0: SSAValue, nb: int, accs: Sequence[SSAValue], partial: bool) -> None:
        """A fused requant8 without a lane-wise form (breakpoints, table): the accumulators go
        to the row's scratch buffer (``[P][nb*L]`` ``i32``), then one loop per position applies
        the map channel by channel, so its code (a loop over breakpoints) exists once per
        position instead of once per lane."""
        geo, path = self.geo, self.path
        assert self.output is not None and self.scratch is not None
        L, acc_n = path.lanes, path.accumulators
        lanes = L // acc_n
        for k, acc in enumerate(accs):
            e.emit(vector.StoreOp(acc, self.scratch, [e.index(k * lanes)]))
        width = nb * L
        if partial:
            static_b0 = e.known(b0)
            assert static_b0 is not None
            width = min(width, geo.o - static_b0 * L)
        first = e.affine(b0, L, 0)
        element = self.output.element
        for p, col in enumerate(cols):
            def body(e1: Emitter, k: SSAValue, _s, p=p, col=col) -> list:
                value = e1.load(self.scratch, [e1.add(k, e1.index(p * nb * L))])
                channel = e1.add(first, k)
                e1.store(element(e1, value, channel), geo.out, geo.out_index(n, oh, col, channel))
                return []
            e.loop(0, width, body)

    def scratch_bytes(self) -> int:
        """Bytes of the per-row scratch buffer (0: none needed)."""
        if self.output is None or self.output.arrays is not None:
            return 0
        return 4 * self.plan.tile_pixels * self.plan.tile_blocks * self.path.lanes

    def begin_row(self, e: Emitter) -> SSAValue | None:
        """Allocate the row's scratch buffer, if any, on the stack (released by
        :meth:`end_row`, so a sequential row loop does not grow the stack); the saved stack
        pointer."""
        size = self.scratch_bytes()
        if not size:
            return None
        ptr = llvm.LLVMPointerType()
        saved = e.emit(llvm.CallIntrinsicOp("llvm.stacksave.p0", [], [ptr]))
        self.scratch = e.stack_buffer(size // 4, i32)
        return saved

    def end_row(self, e: Emitter, saved: SSAValue | None) -> None:
        if saved is not None:
            e.emit(llvm.CallIntrinsicOp("llvm.stackrestore.p0", [saved], []))

    def _packs(self, nb: int, partial: bool) -> bool:
        """Whether the stores of ``nb`` blocks go through :func:`pack_clip8` (four whole blocks
        of an affine requant8 on the AVX-512 paths)."""
        out = self.output
        return (nb == 4 and not partial and out is not None and out.arrays is not None
                and self.path.name in ("vnni", "pmaddwd"))

    # Rows and columns ----------------------------------------------------------------------
    def emit(self, parallel: bool) -> None:
        geo, plan = self.geo, self.plan
        macs = geo.n * geo.oh * geo.ow * geo.o * geo.kh * geo.kw * geo.c
        rows = interior_range(geo.h, geo.oh, geo.kh, geo.stride[0], geo.dilation[0], geo.pad[0])
        row_lo, row_hi = rows_without_checks(rows, geo.oh, macs, self.min_unchecked_rows_macs)
        col_lo, col_hi = interior_range(geo.w, geo.ow, geo.kw, geo.stride[1], geo.dilation[1],
                                        geo.pad[1])
        P = plan.tile_pixels
        tiled = (col_hi - col_lo) // P * P

        def columns(e: Emitter, n: SSAValue, oh: SSAValue, rows_checked: bool) -> None:
            def block(e1: Emitter, c0: SSAValue, _s) -> list:
                self.tile(e1, n, oh, [e1.add(c0, e1.index(k)) for k in range(P)], rows_checked, False)
                return []

            def single(e1: Emitter, c: SSAValue, _s) -> list:
                self.tile(e1, n, oh, [c], rows_checked, False)
                return []

            def border(e1: Emitter, i: SSAValue, _s) -> list:
                # Border column i of the left ones, then of the right ones: one copy of the
                # column-checked code for both sides.
                c = i
                if col_hi > col_lo and col_hi < geo.ow:
                    right = e1.add(i, e1.index(col_hi - col_lo))
                    c = right if col_lo == 0 else e1.select(
                        e1.cmpi(i, e1.index(col_lo), "ult"), i, right)
                self.tile(e1, n, oh, [c], rows_checked, True)
                return []

            e.loop(col_lo, col_lo + tiled, block, step=P)
            e.loop(col_lo + tiled, col_hi, single)
            e.loop(0, col_lo + geo.ow - col_hi, border)

        def row(e: Emitter, n: SSAValue, oh: SSAValue) -> None:
            saved = self.begin_row(e)
            if row_lo == 0 and row_hi == geo.oh:
                columns(e, n, oh, False)
            elif row_lo == row_hi:
                columns(e, n, oh, True)
            else:
                inside = e.emit(arith.AndIOp(e.cmpi(oh, e.index(row_lo), "uge"),
                                             e.cmpi(oh, e.index(row_hi), "ult")))
                e.if_else(inside, lambda e1: columns(e1, n, oh, False),
                          lambda e1: columns(e1, n, oh, True))
            self.end_row(e, saved)

        self.each_row(parallel, row)

    def each_row(self, parallel: bool, row: Callable[[Emitter, SSAValue, SSAValue], None]) -> None:
        """``row(e, n, oh)`` for every output row ``(n, oh)``: an ``scf.parallel`` over the
        ``N*OH`` rows with the parallel option, else an ``scf.for``."""
        geo = self.geo

        def flat(e: Emitter, r: SSAValue) -> None:
            n = e.emit(arith.DivUIOp(r, e.index(geo.oh))) if geo.n > 1 else e.index(0)
            oh = e.emit(arith.RemUIOp(r, e.index(geo.oh))) if geo.n > 1 else r
            row(e, n, oh)

        rows = geo.n * geo.oh
        if parallel and rows > 1:
            self.em.parallel(rows, flat)
        else:
            self.em.loop(0, rows, lambda e, r, _s: flat(e, r) or [])


# ---------------------------------------------------------------------------------------------
# Lowerings
# ---------------------------------------------------------------------------------------------


def constant_weights(op: Operation, value: SSAValue, shape: Sequence[int],
                     dtype: type = np.int64) -> np.ndarray | None:
    """The values (as ``dtype``) of a constant ``memref.global`` read by ``value``, else
    ``None``."""
    source = value.owner
    if not isinstance(source, memref.GetGlobalOp):
        return None
    glob = SymbolTable.lookup_symbol(op, source.name_)
    if not isinstance(glob, memref.GlobalOp) or glob.constant is None:
        return None
    init = glob.initial_value
    if not isinstance(init, DenseIntOrFPElementsAttr):
        return None
    values = np.asarray(list(init.get_values()), dtype=dtype)
    if values.size == 1:
        values = np.full(int(np.prod(shape)), values[0])
    return values.reshape(shape)


def _emit_planned(em: Emitter, op: Operation, ctx: LoweringContext, geo: Geometry,
                  w: np.ndarray, output: OutputMap | None = None) -> None:
    path = dot_path(ctx.target)
    assert path is not None
    plan = plan_int8(path, geo.o, geo.kw, geo.kh, geo.c, geo.dilation[1], geo.ow)
    from bnnmlir.passes.loops import int8_band

    band = int8_band.plan_band(plan, geo) if geo.kh * geo.kw > 1 else None
    relaid = relaid_weights(plan, w) if band is None else int8_band.band_weights(band, w)
    wtype = MemRefType(path.weight_elem, list(relaid.shape))
    weights = em.get_global(ctx.add_global("__bnn_int8_weights", relaid.ravel().tolist(), wtype),
                            wtype)
    start = None
    if path.biased:
        sums = np.zeros(plan.blocks * path.lanes, dtype=np.int64)
        sums[: geo.o] = w.reshape(geo.o, -1).sum(axis=1)
        stype = MemRefType(i32, [len(sums)])
        start = em.get_global(ctx.add_global("__bnn_int8_start", (-128 * sums).tolist(), stype),
                              stype)
    if band is not None:
        int8_band.BandKernel(em, band, geo, weights, start, output).emit(ctx.parallel)
    else:
        Int8Kernel(em, plan, geo, weights, start, output,
                   ctx.min_unchecked_rows_macs).emit(ctx.parallel)


def lower_int8_conv2d(em: Emitter, op: Conv2dOp, ctx: LoweringContext) -> None:
    """Integer ``bnn.conv2d`` with constant weights on a target with a vector path: the planned
    kernel; anything else :func:`bnnmlir.passes.loops.support.lower_conv2d`."""
    w_shape = value_shape(op.weight)
    w = constant_weights(op, op.weight, w_shape)
    if w is None or dot_path(ctx.target) is None:
        support.lower_conv2d(em, op, ctx)
        return
    assert op.out is not None
    n, h, wd, c = value_shape(op.input)
    o, kh, kw, _ = w_shape
    _, oh, ow, _ = value_shape(op.out)
    (pt, _, pl, _) = op.pads
    geo = Geometry(op.input, op.out, n, h, wd, c, o, kh, kw, oh, ow, tuple(op.stride_hw),
                   tuple(op.dilation_hw), (pt, pl), lambda a, b, cc, d: [a, b, cc, d],
                   lambda a, b, cc, d: [a, b, cc, d])
    output = None
    if op.requant is not None:
        requant = dict(op.requant.data)
        output = OutputMap(support.requant8_epilogue(em, ctx.add_global, requant, o),
                           support.affine_arrays(ctx.add_global, requant, o,
                                                 128 * 128 * kh * kw * c))
    _emit_planned(em, op, ctx, geo, w, output)


def lower_int8_dense(em: Emitter, op: DenseOp, ctx: LoweringContext) -> None:
    """Integer ``bnn.dense`` as the convolution of ``N`` one-pixel images (``x[n, :]`` at
    column ``n``); non-constant weights keep the scalar loops."""
    w_shape = value_shape(op.weight)
    w = constant_weights(op, op.weight, w_shape) if op.is_integer else None
    if w is None or dot_path(ctx.target) is None:
        support.lower_dense(em, op, ctx)
        return
    assert op.out is not None
    n, c = value_shape(op.input)
    o = w_shape[0]
    geo = Geometry(op.input, op.out, 1, 1, n, c, o, 1, 1, 1, n, (1, 1), (1, 1), (0, 0),
                   lambda a, b, cc, d: [cc, d], lambda a, b, cc, d: [cc, d])
    _emit_planned(em, op, ctx, geo, w.reshape(o, 1, 1, c))
