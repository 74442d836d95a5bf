"""Lowering of ``bnn.narrow_acc`` to the ``llvm`` dialect, per target.

Semantics (dialects/bnn.py): ``a``, ``b`` are ``vector<M x i8>``, ``acc`` is ``vector<L x iA>``,
``G = M / L`` bytes per lane, and

    result[j] = acc[j] + sum_{g < G} popcount(a[j*G + g] XOR b[j*G + g])      (mod 2**A)

The lowering computes ``c = ctpop(a XOR b)`` as ``vector<M x i8>`` (``c[i] <= 8``, so it is exact
in 8 bits) and then sums each group of ``G`` adjacent bytes into one ``A``-bit lane.

Why the widening is exact
    When ``G = 2**k``, the group sums are built by ``k`` pairwise steps. Step ``s`` (1-based) adds
    elements ``2i`` and ``2i+1`` of the previous vector, so element ``i`` then holds the sum over
    the ``2**s`` bytes ``i*2**s .. (i+1)*2**s - 1``: after ``k`` steps element ``j`` is exactly the
    sum over lane ``j``'s bytes. Step ``s`` works in width ``W_s = min(8 * 2**s, A)`` bits (it
    zero-extends when ``W_s > W_{s-1}``); the value after step ``s`` is at most ``8 * 2**s``.
    If ``W_s = 8 * 2**s`` that is far below ``2**W_s``; if ``W_s = A`` then ``8 * 2**s <= 8 * G
    <= 2**A - 1`` because the verifier of ``bnn.narrow_acc`` guarantees ``max_steps * 8 * G <=
    2**A - 1`` with ``max_steps >= 1``. So no step wraps, and the final add into ``acc`` is the
    only modular operation, exactly as in the semantics.

    Any other ``G`` (not produced by the loop pass, but legal) sums the ``G`` strided byte vectors
    ``c[j*G + g]`` (``g < G``) after zero-extending them to ``A`` bits; the partial sums are at
    most ``8 * G <= 2**A - 1``, again exact.

Lane-width popcount
    When a lane is exactly as wide as its bytes (``8*G == A``), the bitcast of ``a XOR b`` to
    ``vector<L x iA>`` puts bytes ``j*G .. j*G + G - 1`` in lane ``j`` (any byte order: popcount
    ignores it), so ``ctpop`` of that lane already is the group sum, at most ``8*G <= 2**A - 1``:
    exact with no widening. On the ``ctpop`` (host) targets this is the lowering of ``G = 1, 2, 4``
    with 8/16/32-bit lanes (AVX-512: ``vpopcntb``/``vpopcntw``/``vpopcntd``); NEON, whose
    popcount is byte-only, keeps ``cnt`` and the widening steps.

Targets
    * ``ctpop`` (host): a pairwise step is two shuffles (even and odd elements), ``zext`` when the
      width grows, and ``add``. With AVX-512 BITALG the byte popcount is ``vpopcntb``.
    * ``neon`` (aarch64): a widening pairwise step on a 64- or 128-bit vector is the intrinsic
      ``llvm.aarch64.neon.uaddlp`` (unsigned add long pairwise: element ``i`` of the result is the
      zero-extended sum of elements ``2i`` and ``2i+1``, the same value as the generic step); the
      final ``add`` into ``acc`` then selects ``uadalp``, and the byte popcount is ``cnt``. Wider
      vectors are split into 128-bit halves; narrower ones and non-widening steps use the generic
      shuffles.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

from xdsl.dialects import llvm
from xdsl.dialects.builtin import DenseArrayBase, Float32Type, IntegerType, VectorType, i32
from xdsl.ir import Attribute, Operation, SSAValue
from xdsl.pattern_rewriter import PatternRewriter, RewritePattern, op_type_rewrite_pattern
from xdsl.utils.exceptions import PassFailedException

from bnnmlir.dialects.bnn import NarrowAccOp
from bnnmlir.target import TargetInfo


def intrinsic_suffix(t: VectorType | IntegerType) -> str:
    """LLVM's overload suffix of an integer or integer-vector type: ``i32``, ``v16i8``; of an
    ``f32`` vector: ``v16f32``."""
    if isinstance(t, VectorType):
        elem = t.element_type
        if isinstance(elem, Float32Type):
            return f"v{t.get_shape()[0]}f32"
        assert isinstance(elem, IntegerType)
        return f"v{t.get_shape()[0]}i{elem.width.data}"
    return f"i{t.width.data}"


@cache
def shuffle_mask(mask: tuple[int, ...]) -> DenseArrayBase:
    """The ``llvm.shufflevector`` mask attribute of ``mask`` (made once per mask: the kernels
    repeat a few masks many times, and making an attribute costs more than looking it up)."""
    return DenseArrayBase.from_list(i32, mask)


@cache
def vector_type(elem: Attribute, lanes: int) -> VectorType:
    """``vector<lanes x elem>`` (made once per pair, as :func:`shuffle_mask`)."""
    return VectorType(elem, [lanes])


def _vec(t: SSAValue) -> tuple[int, int]:
    """(element count, element bits) of a 1-D integer vector value."""
    vt = t.type
    assert isinstance(vt, VectorType) and isinstance(vt.element_type, IntegerType)
    return vt.get_shape()[0], vt.element_type.width.data


class _Emitter:
    """Inserts llvm ops before the matched op and returns their results."""

    def __init__(self, rewriter: PatternRewriter):
        self.rewriter = rewriter

    def emit(self, op: Operation) -> SSAValue:
        self.rewriter.insert(op)
        return op.results[0]

    def shuffle(self, v1: SSAValue, v2: SSAValue, mask: list[int]) -> SSAValue:
        elem = v1.type.element_type  # type: ignore[attr-defined]
        return self.emit(
            llvm.ShuffleVectorOp(v1, v2, shuffle_mask(tuple(mask)), vector_type(elem, len(mask)))
        )

    def zext(self, v: SSAValue, bits: int) -> SSAValue:
        count, width = _vec(v)
        if width == bits:
            return v
        return self.emit(llvm.ZExtOp(v, vector_type(IntegerType(bits), count)))

    def add(self, lhs: SSAValue, rhs: SSAValue) -> SSAValue:
        return self.emit(llvm.AddOp(lhs, rhs))

    def intrinsic(self, name: str, args: list[SSAValue], result: VectorType) -> SSAValue:
        return self.emit(llvm.CallIntrinsicOp(name, args, [result]))


PairwiseStep = Callable[[_Emitter, SSAValue, int], SSAValue]
"""``step(e, v, bits)``: element ``i`` of the result is ``v[2i] + v[2i+1]`` in ``bits`` bits."""


def generic_pairwise(e: _Emitter, v: SSAValue, bits: int) -> SSAValue:
    """Even/odd shuffles, zero-extension to ``bits``, add."""
    count, _ = _vec(v)
    even = e.shuffle(v, v, list(range(0, count, 2)))
    odd = e.shuffle(v, v, list(range(1, count, 2)))
    return e.add(e.zext(even, bits), e.zext(odd, bits))


def neon_pairwise(e: _Emitter, v: SSAValue, bits: int) -> SSAValue:
    """``uaddlp`` for widening steps on 64/128-bit vectors, split halves above 128 bits."""
    count, width = _vec(v)
    if bits != 2 * width or count * width < 64:
        return generic_pairwise(e, v, bits)
    if count * width > 128:
        half = count // 2
        low = neon_pairwise(e, e.shuffle(v, v, list(range(half))), bits)
        high = neon_pairwise(e, e.shuffle(v, v, list(range(half, count))), bits)
        return e.shuffle(low, high, list(range(count // 2)))
    result = vector_type(IntegerType(bits), count // 2)
    name = f"llvm.aarch64.neon.uaddlp.{intrinsic_suffix(result)}.{intrinsic_suffix(v.type)}"
    return e.intrinsic(name, [v], result)


PAIRWISE_STEPS: dict[str, PairwiseStep] = {"ctpop": generic_pairwise, "neon": neon_pairwise}
"""The pairwise step per ``TargetInfo.popcount`` kind."""


def sum_lane_groups(e: _Emitter, counts: SSAValue, lanes: int, bits: int,
                    pairwise: PairwiseStep) -> SSAValue:
    """Sum each group of ``G = M / lanes`` adjacent elements of ``counts`` into a ``bits`` lane.

    ``counts`` holds byte popcounts (each at most 8); see the module docstring for exactness.
    """
    count, width = _vec(counts)
    group = count // lanes
    if group & (group - 1) == 0:
        v = counts
        while count > lanes:
            width = min(2 * width, bits)
            v = pairwise(e, v, width)
            count //= 2
        return e.zext(v, bits)
    total: SSAValue | None = None
    for g in range(group):
        part = e.zext(e.shuffle(counts, counts, [j * group + g for j in range(lanes)]), bits)
        total = part if total is None else e.add(total, part)
    assert total is not None
    return total


def lane_popcount(e: _Emitter, diff: SSAValue, lanes: int, bits: int) -> SSAValue:
    """``ctpop`` of ``diff`` reinterpreted as ``vector<lanes x i{bits}>`` (``G*8 == A``): lane
    ``j`` is the popcount of its ``G`` bytes (see "Lane-width popcount")."""
    lane_type = vector_type(IntegerType(bits), lanes)
    words = diff if diff.type == lane_type else e.emit(llvm.BitcastOp(diff, lane_type))
    return e.intrinsic(f"llvm.ctpop.{intrinsic_suffix(lane_type)}", [words], lane_type)


def lower_narrow_acc(e: _Emitter, op: NarrowAccOp, popcount: str) -> SSAValue:
    """Emit the llvm ops of ``op`` for the popcount kind ``popcount``; return the result."""
    if popcount not in PAIRWISE_STEPS:
        raise PassFailedException(f"bnn.narrow_acc: no lowering for popcount kind '{popcount}'")
    diff = e.emit(llvm.XOrOp(op.lhs, op.rhs))
    lanes, bits = _vec(op.acc)
    if popcount == "ctpop" and op.bytes_per_lane * 8 == bits:
        return e.add(op.acc, lane_popcount(e, diff, lanes, bits))
    counts = e.intrinsic(f"llvm.ctpop.{intrinsic_suffix(diff.type)}", [diff], diff.type)  # type: ignore[arg-type]
    sums = sum_lane_groups(e, counts, lanes, bits, PAIRWISE_STEPS[popcount])
    return e.add(op.acc, sums)


@dataclass
class LowerNarrowAcc(RewritePattern):
    """``bnn.narrow_acc`` -> xor, ctpop, exact lane widening, add (see the module docstring)."""

    target: TargetInfo

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: NarrowAccOp, rewriter: PatternRewriter, /):
        result = lower_narrow_acc(_Emitter(rewriter), op, self.target.popcount)
        rewriter.replace(op, [], [result])
