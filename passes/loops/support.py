"""Loop nests of the integer and float support ops (buffer form, level 2 -> level 3).

Every op becomes scalar ``scf.for`` nests with ``memref.load`` / ``memref.store``; the innermost
loop always runs over the contiguous last dimension. Float operations are single ``arith`` /
``math`` ops (``math.fma`` exactly where the op docstring says fused multiply-add, ``mulf`` then
``addf`` elsewhere) in the order of the op docstrings, so the result equals
:mod:`bnnmlir.reference.support` bit for bit. Per-channel parameters become private constant
``memref.global``s read with ``memref.get_global`` (a parameter equal on all channels becomes a
constant instead).

* ``bnn.requant8``: ``affine`` in ``i64`` (``extsi``, ``muli``, ``addi``, ``shrsi``, clamp,
  ``trunci``); ``breakpoints``: a loop over the channel's ``B`` breakpoints counting
  ``bp <= x`` (``i32``), then ``clamp(base + step * count)``; ``table``: one load at
  ``clamp(x, lo, lo + D - 1) - lo``.
* ``bnn.cast``: ``sitofp`` (or a copy). ``bnn.batch_norm``: ``scale`` and ``shift`` are computed
  at compile time in float32 (``1 / sqrt(var + eps) * gamma``, ``fma(-mean, scale, beta)``), then
  ``math.fma(x, scale, shift)``; ``bnn.affine``: ``mulf`` + ``addf``
  (``divisor`` form: ``divf`` + ``addf``).
* ``bnn.conv2d``: ``for n, oh, ow, o: acc = 0; for kh, kw: if tap in input: for c: acc += x*w``;
  the input row/column of a tap is computed once per ``oh`` / ``ow``; taps that the shapes prove
  in range get no ``scf.if``; a float step is ``acc = math.fma(f32(x), w, acc)``.
  ``out = acc + bias[o]``. ``bnn.dense``: ``for n, o, c``. The integer forms (i8 x i8) accumulate in ``i32``: ``extsi`` of both factors, ``muli``, ``addi``.
* ``bnn.pool2d`` / ``bnn.global_avg_pool``: the output row ``out[n, oh, ow, :]`` is the
  accumulator: filled with ``-inf`` / the integer minimum (max) or ``0.0`` (avg), then for each
  in-range tap ``for c: out[c] = max(out[c], x[c])`` (``maximumf``/``maxsi``) or ``+ x[c]``;
  avg then divides by the window count (a constant, or a compile-time ``[OH, OW]`` table when
  padding is not counted).
* ``bnn.add``: ``extsi`` to the result type and ``addi``, or ``addf``. ``bnn.activation``:
  ``maximumf``/``minimumf`` (``maxsi``/``minsi``), prelu ``select(x >= 0, x, slope * x)``.
* ``bnn.concat``, ``bnn.reshape``, ``bnn.transpose``: copies with index arithmetic (reshape
  delinearizes the row-major output index into the input's with ``divui`` / ``remui``).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from math import prod

import numpy as np
from xdsl.dialects import arith, llvm, math, scf
from xdsl.dialects.builtin import (
    Float32Type,
    FloatAttr,
    IndexType,
    IntegerType,
    MemRefType,
    VectorType,
    f32,
    i8,
    i32,
    i64,
)
from xdsl.ir import Attribute, Block, Region, SSAValue

from bnnmlir.dialects.bnn_support import (
    ActivationOp,
    AddOp,
    MulOp,
    AffineOp,
    BatchNormOp,
    CastOp,
    ConcatOp,
    Conv2dOp,
    DenseOp,
    GlobalAvgPoolOp,
    Pool2dOp,
    Requant8Op,
    ReshapeOp,
    TransposeOp,
)
from bnnmlir.bits import CLIP8_MAX, CLIP8_MIN
from bnnmlir.ir_utils import value_elem, value_shape
from bnnmlir.passes.loops.elementwise import loop_nest, worth_splitting
from bnnmlir.passes.loops.emitter import Emitter
from bnnmlir.passes.loops.lowering import AddGlobal, LoweringContext

# ---------------------------------------------------------------------------------------------
# Small emission helpers
# ---------------------------------------------------------------------------------------------


def f32_const(em: Emitter, value: float) -> SSAValue:
    """An ``f32`` constant, keyed by its bits (so ``-0.0`` and ``+0.0`` stay distinct)."""
    v = float(np.float32(value))
    bits = struct.unpack("<I", struct.pack("<f", v))[0]
    return em.pool.get(("f32bits", bits), lambda: arith.ConstantOp(FloatAttr(v, f32)))


def _int_type(t) -> IntegerType:
    assert isinstance(t, IntegerType)
    return t


def _to_f32(em: Emitter, value: SSAValue) -> SSAValue:
    if isinstance(value.type, Float32Type):
        return value
    return em.emit(arith.SIToFPOp(value, f32))


def _sext(em: Emitter, value: SSAValue, to: IntegerType) -> SSAValue:
    if _int_type(value.type).width.data == to.width.data:
        return value
    return em.emit(arith.ExtSIOp(value, to))


def _clamp_int(em: Emitter, value: SSAValue, lo: int, hi: int) -> SSAValue:
    t = _int_type(value.type)
    value = em.emit(arith.MaxSIOp(value, em.int(lo, t)))
    return em.emit(arith.MinSIOp(value, em.int(hi, t)))


def _if(em: Emitter, cond: SSAValue | None, then: Callable[[Emitter], list[SSAValue]],
        otherwise: list[SSAValue]) -> list[SSAValue]:
    """``scf.if cond`` yielding ``then(...)``, else ``otherwise``; ``cond = None`` is true."""
    if cond is None:
        return then(em)
    then_block = Block()
    inner = em.at(then_block)
    inner.emit(scf.YieldOp(*then(inner)))
    else_region = None
    if otherwise:
        else_block = Block()
        em.at(else_block).emit(scf.YieldOp(*otherwise))
        else_region = Region(else_block)
    op = scf.IfOp(cond, [v.type for v in otherwise], Region(then_block), else_region)
    em.builder.insert(op)
    return list(op.results)


def _and(em: Emitter, a: SSAValue | None, b: SSAValue | None) -> SSAValue | None:
    if a is None or b is None:
        return a if b is None else b
    return em.emit(arith.AndIOp(a, b))


def _in_range(em: Emitter, pos: SSAValue, size: int) -> SSAValue:
    """``0 <= pos < size`` as one unsigned compare (a negative ``pos`` is huge unsigned)."""
    return em.cmpi(pos, em.index(size), "ult")


def _needs_check(size: int, out_size: int, kernel: int, stride: int, dilation: int, pad_lo: int) -> bool:
    last = (out_size - 1) * stride - pad_lo + (kernel - 1) * dilation
    return pad_lo > 0 or last >= size


class _Params:
    """Per-channel parameter arrays: a global memref, or one constant when all values agree."""

    def __init__(self, em: Emitter, add_global: AddGlobal):
        self.em = em
        self.add_global = add_global

    def array(self, stem: str, values: Sequence, elem, shape: Sequence[int] | None = None) -> SSAValue:
        shape = [len(values)] if shape is None else list(shape)
        mtype = MemRefType(elem, shape)
        return self.em.get_global(self.add_global(stem, list(values), mtype), mtype)

    def per_channel(self, stem: str, values: Sequence, elem) -> Callable[[Emitter, SSAValue], SSAValue]:
        """``value_of(emitter, channel)``: the parameter of ``channel`` (a constant if uniform)."""
        values = list(values)
        if len(set(values)) == 1:
            v = values[0]
            if isinstance(elem, Float32Type):
                return lambda e, c: f32_const(e, v)
            return lambda e, c: e.int(int(v), elem)
        ref = self.array(stem, values, elem)
        return lambda e, c: e.load(ref, [c])


# ---------------------------------------------------------------------------------------------
# Integer requantization and conversion
# ---------------------------------------------------------------------------------------------


RequantElement = Callable[[Emitter, SSAValue, SSAValue], SSAValue]
"""``value(emitter, x, channel) -> i8``: one element of a requant8 map, ``x`` an integer scalar."""


def requant8_element(params: _Params, requant: Mapping[str, Attribute], channels: int) -> RequantElement:
    """The per-element emission of the requant8 map ``requant`` (``kind`` and its arrays, see
    :class:`Requant8Op`) over ``channels`` channels; its arrays become constants or globals."""
    kind = requant["kind"].data  # type: ignore[attr-defined]

    def values(name: str) -> list[int]:
        return list(requant[name].get_values())  # type: ignore[attr-defined]

    if kind == "affine":
        m = params.per_channel("__bnn_requant_m", values("multiplier"), i64)
        b = params.per_channel("__bnn_requant_b", values("offset"), i64)
        s = params.per_channel("__bnn_requant_s", values("shift"), i64)

        def value(e: Emitter, x: SSAValue, c: SSAValue) -> SSAValue:
            v = e.emit(arith.MuliOp(_sext(e, x, i64), m(e, c)))
            v = e.emit(arith.AddiOp(v, b(e, c)))
            return e.emit(arith.ShRSIOp(v, s(e, c)))

    elif kind == "breakpoints":
        flat = values("breakpoints")
        width = len(flat) // channels
        bps = params.array("__bnn_requant_bp", flat, i32, [channels, width])
        base = params.per_channel("__bnn_requant_base", values("base"), i32)
        step = params.per_channel("__bnn_requant_step", values("step"), i32)

        def value(e: Emitter, x: SSAValue, c: SSAValue) -> SSAValue:
            x32 = _sext(e, x, i32)

            def count(inner: Emitter, j: SSAValue, acc: Sequence[SSAValue]) -> list[SSAValue]:
                passed = inner.cmpi(inner.load(bps, [c, j]), x32, "sle")
                return [inner.add(acc[0], inner.emit(arith.ExtUIOp(passed, i32)))]

            (n,) = e.loop(0, width, count, [e.int(0, i32)])
            return e.add(base(e, c), e.mul(step(e, c), n))

    elif kind == "table":
        flat = values("table")
        width = len(flat) // channels
        lo = requant["lo"].value.data  # type: ignore[attr-defined]
        table = params.array("__bnn_requant_table", flat, i8, [channels, width])

        def value(e: Emitter, x: SSAValue, c: SSAValue) -> SSAValue:
            x64 = _clamp_int(e, _sext(e, x, i64), lo, lo + width - 1)
            idx = e.emit(arith.IndexCastOp(e.emit(arith.SubiOp(x64, e.int(lo, i64))), IndexType()))
            return _sext(e, e.load(table, [c, idx]), i32)  # in [-127, 127]: the clamp is a no-op

    else:
        raise ValueError(f"unknown requant8 kind '{kind}'")

    def element(e: Emitter, x: SSAValue, c: SSAValue) -> SSAValue:
        return e.emit(arith.TruncIOp(_clamp_int(e, value(e, x, c), -127, 127), i8))

    return element


ARRAY_LANES = 16
"""The affine requant8 arrays are padded to a multiple of this many channels (the channels of one
weight vector of the blocked kernel: 64 bytes in 4-byte lanes)."""

AffineArrays = tuple[tuple[str, MemRefType], tuple[str, MemRefType], tuple[str, MemRefType]]
"""The ``multiplier``, ``offset`` and ``shift`` globals (``[O]`` padded) of an affine requant8
output, read as vectors by the vector epilogue."""


def affine_arrays(add_global: AddGlobal, requant: Mapping[str, Attribute], channels: int,
                  bound: int) -> AffineArrays | None:
    """The arrays of an affine requant8 map as ``[O]`` constant globals, else ``None``.

    They are ``i32`` when the map is exact in ``i32`` for every input ``|x| <= bound``:
    ``|x * m + b| <= bound * max|m| + max|b| <= 2**31 - 1`` (then every product and sum of
    :func:`affine_requant_vector` is the ``i64`` one) and every shift is below 32; else ``i64``.
    """
    if requant["kind"].data != "affine":  # type: ignore[attr-defined]
        return None
    values = {name: [int(v) for v in requant[name].get_values()]  # type: ignore[attr-defined]
              for name in ("multiplier", "offset", "shift")}
    largest = bound * max(map(abs, values["multiplier"])) + max(map(abs, values["offset"]))
    narrow = largest <= 2**31 - 1 and max(values["shift"]) < 32
    # Zero entries up to a multiple of ARRAY_LANES: a vector of the last channels may have lanes
    # past O (loaded, never stored).
    padded = -(-channels // ARRAY_LANES) * ARRAY_LANES
    mtype = MemRefType(i32 if narrow else i64, [padded])
    return tuple((add_global(f"__bnn_requant_v{name[0]}",
                             values[name] + [0] * (padded - channels), mtype), mtype)
                 for name in ("multiplier", "offset", "shift"))  # type: ignore[return-value]


def clamp_clip8(em: Emitter, value: SSAValue) -> SSAValue:
    """``min(max(value, -127), 127)`` of an integer or a vector of integers."""
    t = value.type
    if isinstance(t, VectorType):
        elem = t.get_element_type()
        lo = em.vector_const([CLIP8_MIN] * t.get_shape()[0], elem)
        hi = em.vector_const([CLIP8_MAX] * t.get_shape()[0], elem)
    else:
        lo, hi = em.int(CLIP8_MIN, t), em.int(CLIP8_MAX, t)  # type: ignore[arg-type]
    return em.emit(arith.MinSIOp(em.emit(arith.MaxSIOp(value, lo)), hi))


def affine_requant_vector(em: Emitter, acc: SSAValue, arrays: AffineArrays,
                          first: SSAValue) -> SSAValue:
    """The affine requant8 map, lane-wise, of ``vector<L x i32>`` results of channels ``first ..
    first+L-1``: ``clamp((acc * m + b) >> s, -127, 127)`` (the code of :func:`requant8_element`)
    in the arrays' width (``i64``, or ``i32`` where :func:`affine_arrays` proved it exact),
    returned as ``vector<L x i32>``."""
    lanes = acc.type.get_shape()[0]  # type: ignore[attr-defined]
    m, b, s = (em.vload(em.get_global(*ref), [first], lanes) for ref in arrays)
    wide_type = arrays[0][1].get_element_type()
    wide = acc
    if wide_type != i32:
        wide = em.emit(llvm.SExtOp(acc, VectorType(wide_type, [lanes])))
    wide = em.emit(arith.ShRSIOp(em.emit(arith.AddiOp(em.emit(arith.MuliOp(wide, m)), b)), s))
    wide = clamp_clip8(em, wide)
    return wide if wide_type == i32 else em.emit(llvm.TruncOp(wide, VectorType(i32, [lanes])))


def clip8_add(em: Emitter, t: SSAValue, r: SSAValue) -> SSAValue:
    """``clip8(t + r)`` of two ``vector<L x i8>`` in ``[-127, 127]``: the saturating byte add
    gives ``clamp(t + r, -128, 127)`` (the sum is at most 254 in magnitude), then ``max(., -127)``
    (``vpaddsb`` + ``vpmaxsb``, ``sqadd`` + ``smax``)."""
    lanes = t.type.get_shape()[0]  # type: ignore[attr-defined]
    total = em.emit(llvm.CallIntrinsicOp(f"llvm.sadd.sat.v{lanes}i8", [t, r], [t.type]))
    return em.emit(arith.MaxSIOp(total, em.vector_const([CLIP8_MIN] * lanes, i8)))


def requant8_epilogue(em: Emitter, add_global: AddGlobal, requant: Mapping[str, Attribute],
                      channels: int) -> RequantElement:
    """:func:`requant8_element` for a fused output (``bnn.bconv2d`` with ``output = "requant8"``)."""
    return requant8_element(_Params(em, add_global), requant, channels)


def lower_requant8(em: Emitter, op: Requant8Op, ctx: LoweringContext) -> None:
    params = _Params(em, ctx.add_global)
    x_ref, out = op.input, op.out
    assert out is not None
    element = requant8_element(params, op.params, op.channels)
    shape = value_shape(x_ref)
    loop_nest(em, shape, lambda e, idx: e.store(element(e, e.load(x_ref, idx), idx[-1]), out, idx),
              worth_splitting(ctx.parallel, prod(shape)))


def _map_elements(em: Emitter, inp: SSAValue, out: SSAValue,
                  fn: Callable[[Emitter, SSAValue, SSAValue], SSAValue], parallel: bool = False) -> None:
    """``out[i] = fn(emitter, in[i], channel)`` over the whole (shared) shape."""
    shape = value_shape(inp)
    loop_nest(em, shape, lambda e, idx: e.store(fn(e, e.load(inp, idx), idx[-1]), out, idx),
              worth_splitting(parallel, prod(shape)))


def lower_cast(em: Emitter, op: CastOp, ctx: LoweringContext) -> None:
    assert op.out is not None
    _map_elements(em, op.input, op.out, lambda e, x, c: _to_f32(e, x), ctx.parallel)


# ---------------------------------------------------------------------------------------------
# Per-channel float maps
# ---------------------------------------------------------------------------------------------


def _scale_shift(em: Emitter, inp: SSAValue, out: SSAValue, params: _Params,
                 scale: Sequence[float], shift: Sequence[float], fused: bool = False,
                 divide: bool = False, parallel: bool = False) -> None:
    """``x * scale[c] + shift[c]``: ``math.fma`` (one rounding) or ``mulf`` then ``addf``;
    ``divide``: ``x / scale[c] + shift[c]`` with ``divf`` then ``addf``."""
    scale_of = params.per_channel("__bnn_divisor" if divide else "__bnn_scale", scale, f32)
    shift_of = params.per_channel("__bnn_shift", shift, f32)

    def fn(e: Emitter, x: SSAValue, c: SSAValue) -> SSAValue:
        if fused:
            return e.emit(math.FmaOp(x, scale_of(e, c), shift_of(e, c)))
        scaled = arith.DivfOp(x, scale_of(e, c)) if divide else arith.MulfOp(x, scale_of(e, c))
        return e.emit(arith.AddfOp(e.emit(scaled), shift_of(e, c)))

    _map_elements(em, inp, out, fn, parallel)


def _round_f32(value: Fraction) -> float:
    """The float32 nearest to an exact rational (ties to even), without double rounding."""
    near = np.float32(float(value))  # float() is correctly rounded to float64, then to float32
    if not np.isfinite(near):
        return float(near)
    below, above = np.nextafter(near, np.float32(-np.inf)), np.nextafter(near, np.float32(np.inf))
    best = min((below, near, above), key=lambda f: (abs(Fraction(float(f)) - value),
                                                    int(np.float32(f).view(np.uint32)) & 1))
    return float(best)


def _fma_f32(a: float, b: float, c: float) -> float:
    """``a * b + c`` with one rounding to float32, from the exact rational value."""
    if not all(np.isfinite((a, b, c))):
        return float(np.float32(np.float64(a) * np.float64(b) + np.float64(c)))
    return _round_f32(Fraction(a) * Fraction(b) + Fraction(c))


def batch_norm_parameters(op: BatchNormOp) -> tuple[list[float], list[float]]:
    """``scale = (1 / sqrt(var + eps)) * gamma``, ``shift = fma(-mean, scale, beta)`` in float32
    (the op's semantics), computed once at compile time."""
    mean, var, gamma, beta = (
        np.asarray(a.get_values(), dtype=np.float32) for a in (op.mean, op.var, op.gamma, op.beta)
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = np.float32(1.0) / np.sqrt(var + np.float32(op.eps.value.data))
        scale = inv * gamma
    shift = [_fma_f32(float(-m), float(s), float(b)) for m, s, b in zip(mean, scale, beta)]
    return [float(v) for v in scale], shift


def lower_batch_norm(em: Emitter, op: BatchNormOp, ctx: LoweringContext) -> None:
    params = _Params(em, ctx.add_global)
    assert op.out is not None
    scale, shift = batch_norm_parameters(op)
    _scale_shift(em, op.input, op.out, params, scale, shift, fused=True, parallel=ctx.parallel)


def lower_affine(em: Emitter, op: AffineOp, ctx: LoweringContext) -> None:
    params = _Params(em, ctx.add_global)
    assert op.out is not None
    if op.divides:
        _scale_shift(em, op.input, op.out, params, op.divisor.get_values(), op.bias.get_values(),
                     divide=True, parallel=ctx.parallel)
        return
    _scale_shift(em, op.input, op.out, params, op.scale.get_values(), op.bias.get_values(),
                 parallel=ctx.parallel)


# ---------------------------------------------------------------------------------------------
# Convolution and dense
# ---------------------------------------------------------------------------------------------


def _dot(em: Emitter, acc: SSAValue, length: int, x_at: Callable[[Emitter, SSAValue], SSAValue],
         w_at: Callable[[Emitter, SSAValue], SSAValue]) -> SSAValue:
    """``for c < length: acc = acc + x(c) * w(c)``: ``math.fma(f32(x), w, acc)`` (one rounding)
    for an ``f32`` ``acc``; for an ``i32`` ``acc`` both factors ``extsi`` to ``i32``,
    ``muli``/``addi``."""
    integer = isinstance(acc.type, IntegerType)

    def step(e: Emitter, c: SSAValue, state: Sequence[SSAValue]) -> list[SSAValue]:
        if integer:
            product = e.emit(arith.MuliOp(_sext(e, x_at(e, c), i32), _sext(e, w_at(e, c), i32)))
            return [e.emit(arith.AddiOp(state[0], product))]
        return [e.emit(math.FmaOp(_to_f32(e, x_at(e, c)), w_at(e, c), state[0]))]

    return em.loop(0, length, step, [acc])[0]


def _zero_acc(em: Emitter, integer: bool) -> SSAValue:
    return em.int(0, i32) if integer else f32_const(em, 0.0)


def _store_with_bias(em: Emitter, acc: SSAValue, bias: SSAValue | None, o: SSAValue,
                     out: SSAValue, idx: list[SSAValue], requant: RequantElement | None = None) -> None:
    if bias is not None:
        acc = em.emit(arith.AddfOp(acc, em.load(bias, [o])))
    if requant is not None:
        acc = requant(em, acc, o)
    em.store(acc, out, idx)


def lower_conv2d(em: Emitter, op: Conv2dOp, ctx: LoweringContext,
                 epilogue: RequantElement | None = None) -> None:
    """Scalar loops of ``bnn.conv2d`` (module docstring); ``epilogue(e, acc, o)`` maps each sum
    (after the bias) before its store: a fused requant8 when ``op`` has one, else the given map
    (a fused float chain)."""
    x, w, bias, out = op.input, op.weight, op.bias, op.out
    assert out is not None
    n_, h, wd, c = value_shape(x)
    o_, kh, kw, _ = value_shape(w)
    _, oh_, ow_, _ = value_shape(out)
    (sh, sw), (dh, dw), (pt, _, pl, _) = op.stride_hw, op.dilation_hw, op.pads
    check_h = _needs_check(h, oh_, kh, sh, dh, pt)
    check_w = _needs_check(wd, ow_, kw, sw, dw, pl)
    requant = epilogue
    if op.requant is not None:
        requant = requant8_element(_Params(em, ctx.add_global), dict(op.requant.data), o_)

    def output(e: Emitter, n: SSAValue, oh: SSAValue, ow: SSAValue, ih0: SSAValue, iw0: SSAValue,
               o: SSAValue) -> None:
        def tap_row(e1: Emitter, i: SSAValue, s1: Sequence[SSAValue]) -> list[SSAValue]:
            ih = e1.add(ih0, e1.affine(i, dh, 0))
            ok_h = _in_range(e1, ih, h) if check_h else None

            def tap(e2: Emitter, j: SSAValue, s2: Sequence[SSAValue]) -> list[SSAValue]:
                iw = e2.add(iw0, e2.affine(j, dw, 0))
                ok = _and(e2, ok_h, _in_range(e2, iw, wd) if check_w else None)
                return _if(e2, ok, lambda e3: [_dot(
                    e3, s2[0], c,
                    lambda e4, ch: e4.load(x, [n, ih, iw, ch]),
                    lambda e4, ch: e4.load(w, [o, i, j, ch]),
                )], list(s2))

            return e1.loop(0, kw, tap, s1)

        (acc,) = e.loop(0, kh, tap_row, [_zero_acc(e, op.is_integer)])
        _store_with_bias(e, acc, bias, o, out, [n, oh, ow, o], requant)

    def per_n(e: Emitter, n: SSAValue, _s) -> list:
        def per_oh(e1: Emitter, oh: SSAValue, _s1) -> list:
            ih0 = e1.affine(oh, sh, -pt)

            def per_ow(e2: Emitter, ow: SSAValue, _s2) -> list:
                iw0 = e2.affine(ow, sw, -pl)
                e2.loop(0, o_, lambda e3, o, _s3: output(e3, n, oh, ow, ih0, iw0, o) or [])
                return []

            e1.loop(0, ow_, per_ow)
            return []

        e.loop(0, oh_, per_oh)
        return []

    em.loop(0, n_, per_n)


def lower_dense(em: Emitter, op: DenseOp, ctx: LoweringContext) -> None:
    x, w, bias, out = op.input, op.weight, op.bias, op.out
    assert out is not None
    n_, c = value_shape(x)
    o_ = value_shape(w)[0]

    def output(e: Emitter, n: SSAValue, o: SSAValue) -> None:
        acc = _dot(e, _zero_acc(e, op.is_integer), c, lambda e1, ch: e1.load(x, [n, ch]),
                   lambda e1, ch: e1.load(w, [o, ch]))
        _store_with_bias(e, acc, bias, o, out, [n, o])

    def row(e: Emitter, n: SSAValue, _s) -> list:
        e.loop(0, o_, lambda e1, o, _1: output(e1, n, o) or [])
        return []

    em.loop(0, n_, row)


# ---------------------------------------------------------------------------------------------
# Pooling
# ---------------------------------------------------------------------------------------------


def _lowest(em: Emitter, elem) -> SSAValue:
    if isinstance(elem, Float32Type):
        return f32_const(em, float("-inf"))
    width = _int_type(elem).width.data
    return em.int(-(2 ** (width - 1)), elem)


def _row_loop(em: Emitter, channels: int, body: Callable[[Emitter, SSAValue], None]) -> None:
    em.loop(0, channels, lambda e, c, _: body(e, c) or [])


@dataclass(frozen=True)
class PoolWindow:
    """The extents and window of a buffer-form ``bnn.pool2d``, and which taps need checks."""

    n: int
    h: int
    w: int
    c: int
    oh: int
    ow: int
    kernel: tuple[int, int]
    stride: tuple[int, int]
    pad: tuple[int, int]
    """Leading padding (top, left)."""
    check_h: bool
    check_w: bool

    @staticmethod
    def of(op: Pool2dOp) -> PoolWindow:
        assert op.out is not None
        n, h, w, c = value_shape(op.input)
        _, oh, ow, _ = value_shape(op.out)
        (kh, kw), (sh, sw), (pt, _, pl, _) = op.kernel_hw, op.stride_hw, op.pads
        return PoolWindow(n, h, w, c, oh, ow, (kh, kw), (sh, sw), (pt, pl),
                          _needs_check(h, oh, kh, sh, 1, pt), _needs_check(w, ow, kw, sw, 1, pl))


def pool_divisor(em: Emitter, op: Pool2dOp, add_global: AddGlobal) -> SSAValue | None:
    """The ``[OH, OW]`` table of window counts of an avg ``op`` that does not count padding and
    has windows reaching it (a global); ``None`` when every window counts ``KH*KW``."""
    p = PoolWindow.of(op)
    (kh, kw), (sh, sw), (pt, pl) = p.kernel, p.stride, p.pad
    if op.kind.data == "max" or op.count_include_pad is not None or not (p.check_h or p.check_w):
        return None
    rows = [sum(0 <= r * sh - pt + i < p.h for i in range(kh)) for r in range(p.oh)]
    cols = [sum(0 <= q * sw - pl + j < p.w for j in range(kw)) for q in range(p.ow)]
    table = [float(a * b) for a in rows for b in cols]
    return _Params(em, add_global).array("__bnn_pool_count", table, f32, [p.oh, p.ow])


def lower_pool2d(em: Emitter, op: Pool2dOp, ctx: LoweringContext) -> None:
    x, out = op.input, op.out
    assert out is not None
    p = PoolWindow.of(op)
    n_, h, wd, c, oh_, ow_, check_h, check_w = p.n, p.h, p.w, p.c, p.oh, p.ow, p.check_h, p.check_w
    (kh, kw), (sh, sw), (pt, pl) = p.kernel, p.stride, p.pad
    is_max = op.kind.data == "max"
    elem = value_elem(x)
    divisor = pool_divisor(em, op, ctx.add_global)

    def combine(e: Emitter, acc: SSAValue, v: SSAValue) -> SSAValue:
        if not is_max:
            return e.emit(arith.AddfOp(acc, _to_f32(e, v)))
        if isinstance(elem, Float32Type):
            return e.emit(arith.MaximumfOp(acc, v))
        return e.emit(arith.MaxSIOp(acc, v))

    def window(e: Emitter, n: SSAValue, oh: SSAValue, ow: SSAValue) -> None:
        ih0, iw0 = e.affine(oh, sh, -pt), e.affine(ow, sw, -pl)
        at = [n, oh, ow]
        init = _lowest(e, elem) if is_max else f32_const(e, 0.0)
        _row_loop(e, c, lambda e1, ch: e1.store(init, out, [*at, ch]))

        def tap_row(e1: Emitter, i: SSAValue, _s) -> list:
            ih = e1.add(ih0, i)
            ok_h = _in_range(e1, ih, h) if check_h else None

            def tap(e2: Emitter, j: SSAValue, _s2) -> list:
                iw = e2.add(iw0, j)
                ok = _and(e2, ok_h, _in_range(e2, iw, wd) if check_w else None)

                def accumulate(e3: Emitter) -> list:
                    _row_loop(e3, c, lambda e4, ch: e4.store(
                        combine(e4, e4.load(out, [*at, ch]), e4.load(x, [n, ih, iw, ch])), out, [*at, ch]))
                    return []

                _if(e2, ok, accumulate, [])
                return []

            e1.loop(0, kw, tap)
            return []

        e.loop(0, kh, tap_row)
        if is_max:
            return
        count = e.load(divisor, [oh, ow]) if divisor is not None else f32_const(e, float(kh * kw))
        _row_loop(e, c, lambda e1, ch: e1.store(
            e1.emit(arith.DivfOp(e1.load(out, [*at, ch]), count)), out, [*at, ch]))

    loop_nest(em, (n_, oh_, ow_), lambda e, idx: window(e, *idx),
              worth_splitting(ctx.parallel, n_ * oh_ * ow_ * c * kh * kw))


def lower_global_avg_pool(em: Emitter, op: GlobalAvgPoolOp, ctx: LoweringContext) -> None:
    x, out = op.input, op.out
    assert out is not None
    n_, h, w, c = value_shape(x)

    def image(e: Emitter, n: SSAValue, _s) -> list:
        _row_loop(e, c, lambda e1, ch: e1.store(f32_const(e1, 0.0), out, [n, ch]))

        def pixel(e1: Emitter, idx: list[SSAValue]) -> None:
            _row_loop(e1, c, lambda e2, ch: e2.store(e2.emit(arith.AddfOp(
                e2.load(out, [n, ch]), _to_f32(e2, e2.load(x, [n, *idx, ch])))), out, [n, ch]))

        loop_nest(e, (h, w), pixel)
        count = f32_const(e, float(h * w))
        _row_loop(e, c, lambda e1, ch: e1.store(
            e1.emit(arith.DivfOp(e1.load(out, [n, ch]), count)), out, [n, ch]))
        return []

    em.loop(0, n_, image)


# ---------------------------------------------------------------------------------------------
# Element-wise
# ---------------------------------------------------------------------------------------------


def lower_add(em: Emitter, op: AddOp, ctx: LoweringContext) -> None:
    a_ref, b_ref, out = op.lhs, op.rhs, op.out
    assert out is not None
    elem = value_elem(out)

    def body(e: Emitter, idx: list[SSAValue]) -> None:
        a, b = e.load(a_ref, idx), e.load(b_ref, idx)
        if isinstance(elem, Float32Type):
            total = e.emit(arith.AddfOp(a, b))
        else:
            total = e.emit(arith.AddiOp(_sext(e, a, elem), _sext(e, b, elem)))
        e.store(total, out, idx)

    shape = value_shape(out)
    loop_nest(em, shape, body, worth_splitting(ctx.parallel, prod(shape)))


def lower_mul(em: Emitter, op: MulOp, ctx: LoweringContext) -> None:
    """``out[i] = lhs[i] * rhs[i with 0 where rhs has size 1]`` (``mulf``)."""
    a_ref, b_ref, out = op.lhs, op.rhs, op.out
    assert out is not None
    shape = value_shape(out)
    broadcast = [b == 1 and a != 1 for a, b in zip(shape, value_shape(b_ref))]

    def body(e: Emitter, idx: list[SSAValue]) -> None:
        zero = e.index(0) if any(broadcast) else None
        b_idx = [zero if flag else i for flag, i in zip(broadcast, idx)]
        e.store(e.emit(arith.MulfOp(e.load(a_ref, idx), e.load(b_ref, b_idx))), out, idx)

    loop_nest(em, shape, body)


def lower_activation(em: Emitter, op: ActivationOp, ctx: LoweringContext) -> None:
    params = _Params(em, ctx.add_global)
    assert op.out is not None
    elem = value_elem(op.input)
    kind = op.kind.data
    is_float = isinstance(elem, Float32Type)

    def bound(e: Emitter, value: float) -> SSAValue:
        if is_float:
            return f32_const(e, value)
        width = _int_type(elem).width.data
        saturated = min(max(int(value), -(2 ** (width - 1))), 2 ** (width - 1) - 1)
        return e.int(saturated, elem)

    def maximum(e: Emitter, a: SSAValue, b: SSAValue) -> SSAValue:
        return e.emit(arith.MaximumfOp(a, b) if is_float else arith.MaxSIOp(a, b))

    def minimum(e: Emitter, a: SSAValue, b: SSAValue) -> SSAValue:
        return e.emit(arith.MinimumfOp(a, b) if is_float else arith.MinSIOp(a, b))

    if kind == "relu":
        fn = lambda e, x, c: maximum(e, x, bound(e, 0.0))  # noqa: E731
    elif kind == "hardtanh":
        lo, hi = op.bounds
        fn = lambda e, x, c: minimum(e, maximum(e, x, bound(e, lo)), bound(e, hi))  # noqa: E731
    else:
        slope = params.per_channel("__bnn_prelu_slope", op.slopes.get_values(), f32)

        def fn(e: Emitter, x: SSAValue, c: SSAValue) -> SSAValue:
            negative = e.emit(arith.MulfOp(slope(e, c), x))
            keep = e.emit(arith.CmpfOp(x, f32_const(e, 0.0), "oge"))
            return e.select(keep, x, negative)

    _map_elements(em, op.input, op.out, fn, ctx.parallel)


# ---------------------------------------------------------------------------------------------
# Data movement
# ---------------------------------------------------------------------------------------------


def lower_concat(em: Emitter, op: ConcatOp, ctx: LoweringContext) -> None:
    out = op.out
    assert out is not None
    offset = 0
    for inp in op.inputs:
        shape = value_shape(inp)

        def body(e: Emitter, idx: list[SSAValue], at: int = offset) -> None:
            e.store(e.load(inp, idx), out, [*idx[:-1], e.add(idx[-1], e.index(at))])

        loop_nest(em, shape, body)
        offset += shape[-1]


def _delinearize(em: Emitter, linear: SSAValue, shape: Sequence[int]) -> list[SSAValue]:
    """Row-major indices of ``linear`` in ``shape`` (``divui`` / ``remui`` by constants)."""
    indices: list[SSAValue] = []
    rest = linear
    for k, dim in enumerate(shape):
        inner = prod(shape[k + 1 :])
        if k == len(shape) - 1:
            indices.append(rest)
        elif inner == 1:
            indices.append(rest)
            rest = em.index(0)
        else:
            indices.append(em.emit(arith.DivUIOp(rest, em.index(inner))) if dim > 1 else em.index(0))
            rest = em.emit(arith.RemUIOp(rest, em.index(inner)))
    return indices


def _linearize(em: Emitter, indices: Sequence[SSAValue], shape: Sequence[int]) -> SSAValue:
    total = em.index(0)
    for k, idx in enumerate(indices):
        total = em.add(total, em.affine(idx, prod(shape[k + 1 :]), 0))
    return total


def lower_reshape(em: Emitter, op: ReshapeOp, ctx: LoweringContext) -> None:
    x, out = op.input, op.out
    assert out is not None
    in_shape, out_shape = value_shape(x), value_shape(out)
    if not in_shape or not out_shape:  # a single element
        zero = em.index(0)
        em.store(em.load(x, [zero] * len(in_shape)), out, [zero] * len(out_shape))
        return
    last = out_shape[-1]
    same_rows = in_shape[-1] == last

    def row(e: Emitter, lead: list[SSAValue]) -> None:
        row_index = _linearize(e, lead, out_shape[:-1])
        base = e.affine(row_index, last, 0)
        in_lead = _delinearize(e, row_index, in_shape[:-1]) if same_rows else None

        def element(e1: Emitter, j: SSAValue, _s) -> list:
            if in_lead is not None:
                src = [*in_lead, j]
            else:
                src = _delinearize(e1, e1.add(base, j), in_shape)
            e1.store(e1.load(x, src), out, [*lead, j])
            return []

        e.loop(0, last, element)

    loop_nest(em, out_shape[:-1], row)


def lower_transpose(em: Emitter, op: TransposeOp, ctx: LoweringContext) -> None:
    x, out = op.input, op.out
    assert out is not None
    perm = op.perm

    def body(e: Emitter, idx: list[SSAValue]) -> None:
        src: list[SSAValue] = [None] * len(perm)  # type: ignore[list-item]
        for k, p in enumerate(perm):
            src[p] = idx[k]
        e.store(e.load(x, src), out, idx)

    shape = value_shape(out)
    loop_nest(em, shape, body, worth_splitting(ctx.parallel, prod(shape)))
