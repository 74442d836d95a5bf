"""Integer and float support ops of the ``bnn`` dialect (docs/ops.md, "Integer and float support").

These ops carry the layers around the binary core: int8 requantization, float or exact-integer
stems and heads, BatchNorm that cannot be folded, pooling, activations, residual adds and data
movement. Like the core ops they have a value form (tensors in, one tensor result) and a buffer
form (memrefs in, writing ``into`` an output memref, no result); :class:`ShapedOpMixin` checks
the form.

Conventions shared by every op below:

* Activations are NHWC ``[N, H, W, C]`` (or ``[..., C]``); per-channel parameters index the LAST
  dimension ``c``. All shapes are static.
* Float is ``f32``. Every float operation is one IEEE-754 binary32 operation rounded to nearest
  even; no reassociation, and a fused multiply-add (``fma(a, b, c)``: ``a * b + c`` rounded
  ONCE) only where the docstring says so (the convolution and dense sums, ``bnn.batch_norm``).
  Sums are evaluated left to right in the order the docstrings give, starting from ``+0.0``.
* Per-channel parameters are properties (dense arrays), so the IR reads without chasing
  constants; weights (``bnn.conv2d`` / ``bnn.dense``) are operands.
* Integers are signless and read as two's-complement signed values.
"""

from __future__ import annotations

from collections.abc import Sequence
from math import prod

from xdsl.dialects.builtin import (
    ArrayAttr,
    DenseArrayBase,
    DictionaryAttr,
    Float32Type,
    FloatAttr,
    IntegerAttr,
    IntegerType,
    MemRefType,
    StringAttr,
    TensorType,
    UnitAttr,
    f32,
    i8,
    i16,
    i32,
    i64,
)
from xdsl.ir import Attribute, Operation, SSAValue
from xdsl.irdl import (
    AttrSizedOperandSegments,
    IRDLOperation,
    ParsePropInAttrDict,
    irdl_op_definition,
    operand_def,
    opt_operand_def,
    opt_prop_def,
    opt_result_def,
    prop_def,
    var_operand_def,
)
from xdsl.utils.exceptions import VerifyException

from bnnmlir.bits import conv_output_size
from bnnmlir.dialects.common import (
    ConvGeometryMixin,
    ShapedOpMixin,
    UnaryShapedOp,
    check_int_array,
    describe,
    elem_of,
    is_int,
    shape_of,
    static_shape,
)
from bnnmlir.dialects.float_chain import verify_steps
from bnnmlir.dialects.requant_map import REQUANT_PROPS, verify_requant8_params

Value = SSAValue | Operation

INT_WIDTHS = (8, 16, 32)
INT64_MAX = 2**63 - 1
INT32_MAX = 2**31 - 1
MAX_INT8_FAN_IN = INT32_MAX // (128 * 128)
"""Largest fan-in of the integer ``bnn.conv2d`` / ``bnn.dense``: ``|acc| <= 128*128*K < 2**31``."""
BREAKPOINT_PAD = INT32_MAX
"""Value padding the rows of ``bnn.requant8`` breakpoints (counted only at ``x = 2**31 - 1``)."""

BINARY_FORMAT = (
    "$lhs `,` $rhs (`into` $out^)? attr-dict `:` type($lhs) `,` type($rhs) (`,` type($out)^)? "
    "(`->` type($result)^)?"
)
WEIGHTED_FORMAT = (
    "$input `,` $weight (`bias` $bias^)? (`into` $out^)? attr-dict `:` type($input) `,` "
    "type($weight) (`bias` type($bias)^)? (`,` type($out)^)? (`->` type($result)^)?"
)


# ---------------------------------------------------------------------------------------------
# Checks
# ---------------------------------------------------------------------------------------------


def _is_any_int(t: Attribute) -> bool:
    return any(is_int(t, w) for w in INT_WIDTHS)


def _is_f32(t: Attribute) -> bool:
    return isinstance(t, Float32Type)


def _int_width(t: Attribute) -> int:
    assert isinstance(t, IntegerType)
    return t.width.data


def _expect_output(op: IRDLOperation, out_type: Attribute, shape: Sequence[int], elem: Attribute) -> None:
    if shape_of(out_type) != tuple(shape) or elem_of(out_type) != elem:
        raise VerifyException(
            f"'{op.name}' expected output {list(shape)} of {elem}, got {describe(out_type)}"
        )


def _array(values: Sequence[int] | Sequence[float], elem: Attribute) -> DenseArrayBase:
    return DenseArrayBase.from_list(elem, list(values))  # type: ignore[arg-type]


def _values(arr: DenseArrayBase | None) -> tuple:
    return tuple(arr.get_values()) if arr is not None else ()


def _verified_permutation(name: str, permutation: DenseArrayBase, rank: int) -> tuple[int, ...]:
    """The values of an i64 ``permutation`` property of ``0..rank-1``, else a diagnostic."""
    perm = tuple(permutation.get_values())
    if not is_int(permutation.elt_type, 64) or sorted(perm) != list(range(rank)):
        raise VerifyException(
            f"'{name}' permutation must be a permutation of 0..{rank - 1} (i64), got {list(perm)}"
        )
    return perm  # type: ignore[return-value]


class Permuting:
    """The ``perm`` tuple of an op's ``permutation`` property."""

    @property
    def perm(self) -> tuple[int, ...]:
        return tuple(self.permutation.get_values())  # type: ignore[attr-defined]


def _check_array(op: IRDLOperation, name: str, arr: DenseArrayBase | None, elem_ok, elem_name: str,
                 length: int | None = None, multiple_of: int | None = None) -> tuple:
    if arr is None:
        raise VerifyException(f"'{op.name}' needs the property '{name}'")
    if not elem_ok(arr.elt_type):
        raise VerifyException(f"'{op.name}' {name} must be an array of {elem_name}, got {arr.elt_type}")
    vals = tuple(arr.get_values())
    if length is not None and len(vals) != length:
        raise VerifyException(f"'{op.name}' {name} needs {length} values, got {len(vals)}")
    if multiple_of is not None and (not vals or len(vals) % multiple_of):
        raise VerifyException(
            f"'{op.name}' {name} needs a positive multiple of {multiple_of} values (one row per "
            f"channel), got {len(vals)}"
        )
    return vals


def _forbid(op: IRDLOperation, kind: str, names: Sequence[str]) -> None:
    extra = [n for n in names if n in op.properties]
    if extra:
        raise VerifyException(f"'{op.name}' of kind '{kind}' takes no '{extra[0]}'")


def _kind(op: IRDLOperation, kinds: Sequence[str]) -> str:
    kind = op.kind.data  # type: ignore[attr-defined]
    if kind not in kinds:
        raise VerifyException(
            f"'{op.name}' kind must be one of {', '.join(kinds)}, got '{kind}'"
        )
    return kind


def _segments(*sizes: int) -> dict[str, Attribute]:
    return {"operandSegmentSizes": DenseArrayBase.from_list(i32, list(sizes))}


def _nhwc(op: IRDLOperation, what: str, t: Attribute) -> tuple[int, int, int, int]:
    shape = static_shape(op.name, t)
    if len(shape) != 4:
        raise VerifyException(f"'{op.name}' {what} must be rank-4 NHWC, got {describe(t)}")
    return shape  # type: ignore[return-value]


# ---------------------------------------------------------------------------------------------
# Integer requantization and conversion
# ---------------------------------------------------------------------------------------------

@irdl_op_definition
class Requant8Op(UnaryShapedOp):
    """Per-channel exact integer map of ``i8``/``i16``/``i32`` onto the int8 stream ``[-127, 127]``.

    Input ``[..., C]``, output ``i8`` of the same shape; ``x`` is the input element of channel ``c``
    (last dimension). ``kind`` selects the form (the kinds and arrays of
    :class:`bnnmlir.folding.Requant`, one to one):

    ``affine`` (``multiplier``, ``offset``, ``shift``: ``i64`` arrays of ``C``)
        ``out = clamp((x * multiplier[c] + offset[c]) >> shift[c], -127, 127)`` in ``int64``;
        ``>>`` is the arithmetic shift, i.e. ``floor(v / 2**shift)``. The verifier bounds
        ``|multiplier| <= 2**31 - 1``, ``|offset| <= 2**62`` and ``0 <= shift <= 62``, so the
        intermediate never overflows for 32-bit ``x``.
    ``breakpoints`` (``base``, ``step``: ``i8`` arrays of ``C``; ``breakpoints``: ``i32`` array of
    ``C * B``, row ``c`` = ``breakpoints[c*B : (c+1)*B]``, each row non-decreasing)
        ``out = clamp(base[c] + step[c] * #{j : breakpoints[c*B + j] <= x}, -127, 127)`` with
        ``step[c]`` in {+1, -1}: a monotone step function. Rows shorter than ``B`` are padded with
        ``2**31 - 1``. The clamp only acts outside the domain the map was built for.
    ``table`` (``lo``: integer; ``table``: ``i8`` array of ``C * D``, row ``c`` =
    ``table[c*D : (c+1)*D]``)
        ``out = table[c*D + clamp(x, lo, lo + D - 1) - lo]``: any function on ``[lo, lo + D - 1]``
        (the verifier requires ``lo + D - 1 <= 2**63 - 1``, so the clamp is computed in ``int64``),
        extended by its end values outside. Table entries must lie in ``[-127, 127]``.
    """

    name = "bnn.requant8"

    kind = prop_def(StringAttr)
    multiplier = opt_prop_def(DenseArrayBase)
    offset = opt_prop_def(DenseArrayBase)
    shift = opt_prop_def(DenseArrayBase)
    base = opt_prop_def(DenseArrayBase)
    step = opt_prop_def(DenseArrayBase)
    breakpoints = opt_prop_def(DenseArrayBase)
    lo = opt_prop_def(IntegerAttr)
    table = opt_prop_def(DenseArrayBase)

    irdl_options = (ParsePropInAttrDict(),)
    def __init__(self, input: Value, kind: str, params: dict[str, Attribute],
                 result_type: Attribute | None = None, out: Value | None = None):
        super().__init__(input, result_type, out, properties={"kind": StringAttr(kind), **params},
        )

    # Constructors per kind -------------------------------------------------------------------
    @classmethod
    def affine(cls, input: Value, multiplier: Sequence[int], offset: Sequence[int],
               shift: Sequence[int], result_type: Attribute | None = None,
               out: Value | None = None) -> Requant8Op:
        params = {
            "multiplier": _array([int(v) for v in multiplier], i64),
            "offset": _array([int(v) for v in offset], i64),
            "shift": _array([int(v) for v in shift], i64),
        }
        return cls(input, "affine", params, result_type, out)

    @classmethod
    def step_function(cls, input: Value, base: Sequence[int], step: Sequence[int],
                      breakpoints: Sequence[Sequence[int]], result_type: Attribute | None = None,
                      out: Value | None = None) -> Requant8Op:
        """``breakpoints`` per channel; rows are padded to equal length with ``2**31 - 1``."""
        width = max((len(r) for r in breakpoints), default=0) or 1
        flat = [int(v) for r in breakpoints for v in [*r, *[BREAKPOINT_PAD] * (width - len(r))]]
        params = {
            "base": _array([int(v) for v in base], i8),
            "step": _array([int(v) for v in step], i8),
            "breakpoints": _array(flat, i32),
        }
        return cls(input, "breakpoints", params, result_type, out)

    @classmethod
    def lookup(cls, input: Value, lo: int, table: Sequence[Sequence[int]],
               result_type: Attribute | None = None, out: Value | None = None) -> Requant8Op:
        params = {
            "lo": IntegerAttr(int(lo), i64),
            "table": _array([int(v) for r in table for v in r], i8),
        }
        return cls(input, "table", params, result_type, out)

    @classmethod
    def from_requant(cls, input: Value, requant, result_type: Attribute | None = None,
                     out: Value | None = None) -> Requant8Op:
        """The op of a :class:`bnnmlir.folding.Requant` (same kinds, same arrays)."""
        kind = getattr(requant.kind, "value", requant.kind)
        if kind == "affine":
            return cls.affine(input, requant.multiplier, requant.offset, requant.shift, result_type, out)
        if kind == "breakpoints":
            return cls.step_function(input, requant.base, requant.step,
                                     [list(r) for r in requant.breakpoints], result_type, out)
        if kind == "table":
            return cls.lookup(input, requant.lo, [list(r) for r in requant.table], result_type, out)
        raise ValueError(f"unknown requant kind {kind!r}")

    @property
    def channels(self) -> int:
        return shape_of(self.input.type)[-1]

    @property
    def params(self) -> dict[str, Attribute]:
        """``kind`` and the arrays of this kind (the form :func:`verify_requant8_params` takes)."""
        kind = self.kind.data
        names = ("kind", *REQUANT_PROPS.get(kind, ()))
        return {n: self.properties[n] for n in names if n in self.properties}

    def verify_(self) -> None:
        out_type = self._check_form([self.input])
        in_shape = static_shape(self.name, self.input.type)
        if not in_shape or not _is_any_int(elem_of(self.input.type)):
            raise VerifyException(
                f"'{self.name}' input must be a ranked i8, i16 or i32 operand, got "
                f"{describe(self.input.type)}"
            )
        _expect_output(self, out_type, in_shape, i8)
        present = ("kind", *(p for ps in REQUANT_PROPS.values() for p in ps))
        verify_requant8_params(
            f"'{self.name}'", {n: self.properties[n] for n in present if n in self.properties},
            in_shape[-1],
        )

    @property
    def row_width(self) -> int:
        """``B`` (breakpoints) or ``D`` (table): entries per channel."""
        arr = self.breakpoints if self.kind.data == "breakpoints" else self.table
        assert arr is not None
        return len(arr.get_values()) // self.channels


@irdl_op_definition
class CastOp(UnaryShapedOp):
    """Convert to ``f32``: ``out = float(x)``, element by element, same shape.

    Input ``i8``/``i16``/``i32`` (signed, converted with round to nearest even; exact for
    ``|x| <= 2**24``) or ``f32`` (a copy).
    """

    name = "bnn.cast"

    def verify_(self) -> None:
        out_type = self._check_form([self.input])
        shape = static_shape(self.name, self.input.type)
        elem = elem_of(self.input.type)
        if not (_is_any_int(elem) or _is_f32(elem)):
            raise VerifyException(f"'{self.name}' input elements must be i8, i16, i32 or f32, got {elem}")
        _expect_output(self, out_type, shape, f32)


# ---------------------------------------------------------------------------------------------
# Per-channel float maps
# ---------------------------------------------------------------------------------------------


def _check_channel_f32(op: IRDLOperation, names: Sequence[str], channels: int) -> None:
    for name in names:
        _check_array(op, name, getattr(op, name), _is_f32, "f32", channels)


def _check_float_unary(op: IRDLOperation) -> tuple[Attribute, tuple[int, ...]]:
    out_type = op._check_form([op.input])  # type: ignore[attr-defined]
    shape = static_shape(op.name, op.input.type)  # type: ignore[attr-defined]
    if not shape or not _is_f32(elem_of(op.input.type)):  # type: ignore[attr-defined]
        raise VerifyException(
            f"'{op.name}' input must be a ranked f32 operand, got {describe(op.input.type)}"  # type: ignore[attr-defined]
        )
    _expect_output(op, out_type, shape, f32)
    return out_type, shape


@irdl_op_definition
class BatchNormOp(UnaryShapedOp):
    """Inference BatchNorm over the last dimension, as ``torch.nn.functional.batch_norm`` in f32.

    Parameters (``f32`` arrays of ``C``): ``mean``, ``var`` (running statistics), ``gamma``
    (weight), ``beta`` (bias); ``eps`` an ``f32``. Per channel, each step rounded to f32:

        ``inv[c]   = 1.0 / sqrt(var[c] + eps)``
        ``scale[c] = inv[c] * gamma[c]``
        ``shift[c] = fma(-mean[c], scale[c], beta[c])``

    then ``out = fma(x, scale[c], shift[c])``, where ``fma`` is a fused multiply-add (ONE rounding).
    This is exactly what PyTorch's vectorized CPU kernel computes for a contiguous input (checked
    bit for bit in the tests), so a compiled model equals its PyTorch original.
    """

    name = "bnn.batch_norm"

    mean = prop_def(DenseArrayBase)
    var = prop_def(DenseArrayBase)
    gamma = prop_def(DenseArrayBase)
    beta = prop_def(DenseArrayBase)
    eps = prop_def(FloatAttr)

    irdl_options = (ParsePropInAttrDict(),)
    def __init__(self, input: Value, mean: Sequence[float], var: Sequence[float],
                 gamma: Sequence[float], beta: Sequence[float], eps: float = 1e-5,
                 result_type: Attribute | None = None, out: Value | None = None):
        super().__init__(input, result_type, out, properties={
                "mean": _array([float(v) for v in mean], f32),
                "var": _array([float(v) for v in var], f32),
                "gamma": _array([float(v) for v in gamma], f32),
                "beta": _array([float(v) for v in beta], f32),
                "eps": FloatAttr(float(eps), f32),
            },
        )

    def verify_(self) -> None:
        _, shape = _check_float_unary(self)
        _check_channel_f32(self, ("mean", "var", "gamma", "beta"), shape[-1])
        if not _is_f32(self.eps.type):
            raise VerifyException(f"'{self.name}' eps must be an f32, got {self.eps}")


@irdl_op_definition
class AffineOp(UnaryShapedOp):
    """Per-channel scale (or divisor) and bias in f32, one rounding per operation.

    Exactly one of two forms, with ``f32`` arrays of ``C`` (the last dimension):

    * ``scale``: ``out = x * scale[c] + bias[c]`` (f32 multiply, then f32 add);
    * ``divisor``: ``out = x / divisor[c] + bias[c]`` (f32 division, then f32 add). Division is
      not multiplication by the reciprocal in float32 (``x / 3.0`` and ``x * (1 / 3.0)`` differ
      in the last bit for many ``x``); this form is PyTorch's ``x / d``.

    A ``bias`` of ``-0.0`` adds nothing: ``v + (-0.0)`` is ``v`` for every ``v``, ``-0.0``
    included (``+0.0`` would turn ``-0.0`` into ``+0.0``).
    """

    name = "bnn.affine"

    scale = opt_prop_def(DenseArrayBase)
    divisor = opt_prop_def(DenseArrayBase)
    bias = prop_def(DenseArrayBase)

    irdl_options = (ParsePropInAttrDict(),)
    def __init__(self, input: Value, scale: Sequence[float] | None, bias: Sequence[float],
                 result_type: Attribute | None = None, out: Value | None = None, *,
                 divisor: Sequence[float] | None = None):
        if (scale is None) == (divisor is None):
            raise ValueError("bnn.affine takes exactly one of scale and divisor")
        props: dict[str, Attribute] = {"bias": _array([float(v) for v in bias], f32)}
        if scale is not None:
            props["scale"] = _array([float(v) for v in scale], f32)
        else:
            assert divisor is not None
            props["divisor"] = _array([float(v) for v in divisor], f32)
        super().__init__(input, result_type, out, properties=props)

    @classmethod
    def division(cls, input: Value, divisor: Sequence[float], bias: Sequence[float],
                 result_type: Attribute | None = None, out: Value | None = None) -> AffineOp:
        """``x / divisor[c] + bias[c]``."""
        return cls(input, None, bias, result_type, out, divisor=divisor)

    @property
    def divides(self) -> bool:
        """True for the ``divisor`` form."""
        return self.divisor is not None

    def verify_(self) -> None:
        _, shape = _check_float_unary(self)
        if (self.scale is None) == (self.divisor is None):
            raise VerifyException(f"'{self.name}' needs exactly one of 'scale' and 'divisor'")
        _check_channel_f32(self, ("divisor" if self.divides else "scale", "bias"), shape[-1])


# ---------------------------------------------------------------------------------------------
# Convolution and dense layers (float or exact integer)
# ---------------------------------------------------------------------------------------------


class _WeightedMixin(ShapedOpMixin):
    """``input, weight, optional bias, optional out`` with operand segments."""

    def buffer_form(self, operands: Sequence[SSAValue], out: SSAValue) -> IRDLOperation:
        op: IRDLOperation = self  # type: ignore[assignment]
        has_bias = op.bias is not None  # type: ignore[attr-defined]
        props = dict(op.properties)
        props.update(_segments(1, 1, int(has_bias), 1))
        return type(op).create(
            operands=[*operands, out], result_types=[], properties=props,
            attributes=dict(op.attributes),
        )

    def _check_weighted(self, in_elems: str, in_ok) -> tuple[Attribute, tuple, tuple, bool]:
        """Checks the operands; returns ``(output type, input shape, weight shape, integer)``.

        Integer form: ``i8`` input, ``i8`` weight, no bias (``i32`` result). Float form: ``f32``
        weight, input elements accepted by ``in_ok``, optional ``f32`` bias (``f32`` result).
        """
        op: IRDLOperation = self  # type: ignore[assignment]
        x, w, b = op.input, op.weight, op.bias  # type: ignore[attr-defined]
        out_type = self._check_form([x, w] + ([b] if b is not None else []))
        x_elem, w_elem = elem_of(x.type), elem_of(w.type)
        integer = is_int(w_elem, 8)
        if integer:
            if not is_int(x_elem, 8):
                raise VerifyException(
                    f"'{op.name}' with i8 weights is the integer form and needs i8 input, got "
                    f"{x_elem} (all-integer or all-float)"
                )
            if b is not None:
                raise VerifyException(
                    f"'{op.name}' integer form (i8 input and weights) takes no bias; add it after "
                    "the i32 result"
                )
        else:
            if not in_ok(x_elem):
                raise VerifyException(f"'{op.name}' input elements must be {in_elems}, got {x_elem}")
            if not _is_f32(w_elem):
                raise VerifyException(
                    f"'{op.name}' weight must be f32 (or i8 with i8 input), got {describe(w.type)}"
                )
        w_shape = static_shape(op.name, w.type)
        if b is not None:
            if static_shape(op.name, b.type) != (w_shape[0],) or not _is_f32(elem_of(b.type)):
                raise VerifyException(
                    f"'{op.name}' bias must be f32 [{w_shape[0]}] (one per output channel), got "
                    f"{describe(b.type)}"
                )
        return out_type, static_shape(op.name, x.type), w_shape, integer

    def _check_fan_in(self, fan_in: int) -> None:
        """The integer form accumulates in ``i32``: ``128 * 128 * fan_in`` must fit."""
        op: IRDLOperation = self  # type: ignore[assignment]
        if fan_in > MAX_INT8_FAN_IN:
            raise VerifyException(
                f"'{op.name}' integer form: fan-in {fan_in} exceeds {MAX_INT8_FAN_IN} "
                "(128 * 128 * fan-in must fit i32 for an exact accumulation)"
            )


@irdl_op_definition
class Conv2dOp(ConvGeometryMixin, _WeightedMixin, IRDLOperation):
    """Ordinary 2-D convolution (groups = 1) of NHWC activations: float or exact integer.

    Float form: ``input`` ``[N, H, W, C]`` of ``f32`` or ``i8`` (converted exactly), ``weight``
    ``[O, KH, KW, C]`` of ``f32``, optional ``bias`` ``[O]`` of ``f32``; result ``f32``.
    Integer form: ``input`` ``i8``, ``weight`` ``i8``, no bias; result ``i32`` (all-integer or
    all-float; an ``i8`` input with ``f32`` weights is the float form).
    Result shape ``[N, OH, OW, O]``, ``OH = (H + pad_top + pad_bottom - dh*(KH-1) - 1) // sh + 1``
    (same for W). ``padding`` is ``[top, bottom, left, right]``, ``strides`` and ``dilations``
    ``[h, w]``.

    ``out[n, oh, ow, o]``: ``acc = 0``; for ``kh`` in ``0..KH-1``, ``kw`` in ``0..KW-1`` whose
    input position ``ih = oh*sh - pad_top + kh*dh``, ``iw = ow*sw - pad_left + kw*dw`` lies inside
    the input, for ``c`` in ``0..C-1``: ``acc = acc + x[n, ih, iw, c] * w[o, kh, kw, c]``. Taps
    outside the input (zero padding) are skipped.

    * Float: ``acc`` starts at ``+0.0``; each step is ``acc = fma(float(x), w, acc)``, one f32
      fused multiply-add (the product is not rounded, the sum is rounded once), as the FMA units
      of x86-64 (FMA3) and aarch64 (``fmla``) compute it. Finally ``out = acc + bias[o]`` with a
      bias, else ``acc``.
    * Integer: both factors sign-extended to ``i32``, ``i32`` multiply and add. Exact: every
      partial sum is at most ``128 * 128 * KH*KW*C`` in magnitude and the verifier bounds the
      fan-in ``KH*KW*C`` by ``(2**31 - 1) // 128**2 = 131071``, so nothing wraps.

    Fused output (integer form only, optional property ``requant``, set by ``bnn-fuse-output``):
    a dictionary holding ``kind`` and that kind's arrays exactly as ``bnn.requant8`` holds its
    properties, one entry or row per output channel; the result is then ``i8``,
    ``out[n, oh, ow, o] = requant8_o(acc[n, oh, ow, o])`` and the ``i32`` sums never go to memory.

    Fused float output (float form only, optional property ``steps``, set by
    ``bnn-fuse-elementwise``): a per-channel float chain of :mod:`bnnmlir.dialects.float_chain`
    without ``cast`` or ``add_input`` (a BatchNorm ``fma``, an affine map, ReLU, Hardtanh,
    PReLU...); ``out[n, oh, ow, o] = chain_o(acc [+ bias[o]])``, each step one f32 operation,
    exactly as the unfused ops would compute it, without the intermediate tensor.
    """

    name = "bnn.conv2d"

    input = operand_def(TensorType | MemRefType)
    weight = operand_def(TensorType | MemRefType)
    bias = opt_operand_def(TensorType | MemRefType)
    out = opt_operand_def(MemRefType)
    result = opt_result_def(TensorType)

    strides = prop_def(DenseArrayBase)
    dilations = prop_def(DenseArrayBase)
    padding = prop_def(DenseArrayBase)
    requant = opt_prop_def(DictionaryAttr)
    steps = opt_prop_def(ArrayAttr)

    irdl_options = (AttrSizedOperandSegments(as_property=True), ParsePropInAttrDict())
    assembly_format = WEIGHTED_FORMAT

    def __init__(self, input: Value, weight: Value, bias: Value | None = None, *,
                 strides: Sequence[int] = (1, 1), dilations: Sequence[int] = (1, 1),
                 padding: Sequence[int] = (0, 0, 0, 0), result_type: Attribute | None = None,
                 out: Value | None = None):
        super().__init__(
            operands=[input, weight, bias, out],
            result_types=[result_type],
            properties={
                "strides": _array(strides, i64),
                "dilations": _array(dilations, i64),
                "padding": _array(padding, i64),
            },
        )

    def verify_(self) -> None:
        out_type, x_shape, w_shape, integer = self._check_weighted(
            "f32 or i8", lambda t: _is_f32(t) or is_int(t, 8)
        )
        n, h, w, c = _nhwc(self, "input", self.input.type)
        if len(w_shape) != 4 or w_shape[3] != c:
            raise VerifyException(
                f"'{self.name}' weight must be [O, KH, KW, {c}], got {describe(self.weight.type)}"
            )
        o, kh, kw, _ = w_shape
        oh, ow = self.verify_window(h, w, kh, kw)
        if integer:
            self._check_fan_in(kh * kw * c)
        if self.steps is not None:
            if integer:
                raise VerifyException(f"'{self.name}' fused float steps need the float form")
            verify_steps(f"'{self.name}' steps", self.steps, o, False, 1)
        if self.requant is not None:
            if not integer:
                raise VerifyException(f"'{self.name}' a fused requant8 needs the integer form")
            verify_requant8_params(f"'{self.name}' requant", dict(self.requant.data), o,
                                   noun="entry")
            _expect_output(self, out_type, (n, oh, ow, o), i8)
            return
        _expect_output(self, out_type, (n, oh, ow, o), i32 if integer else f32)

    @property
    def is_integer(self) -> bool:
        """True for the integer form (``i8`` input and weights, ``i32`` result)."""
        return is_int(elem_of(self.weight.type), 8)


@irdl_op_definition
class DenseOp(_WeightedMixin, IRDLOperation):
    """Fully connected layer ``x @ w.T (+ bias)``: float or exact integer.

    Float form: ``input`` ``[N, C]`` of ``f32``, ``i8`` or ``i32`` (converted to f32, exact for
    ``|x| <= 2**24``), ``weight`` ``[O, C]`` of ``f32``, optional ``bias`` ``[O]``. Result ``f32``
    ``[N, O]``: ``acc = +0.0``; for ``c`` in ``0..C-1``: ``acc = fma(float(x[n, c]), w[o, c], acc)``
    (one fused multiply-add, rounded once); ``out[n, o] = acc + bias[o]`` with a bias, else
    ``acc``.

    Integer form: ``input`` ``i8``, ``weight`` ``i8``, no bias; result ``i32``: the same sum of
    sign-extended products in ``i32``, exact (the verifier bounds ``C`` by ``131071``, so
    ``|acc| <= 128 * 128 * C < 2**31``).
    """

    name = "bnn.dense"

    input = operand_def(TensorType | MemRefType)
    weight = operand_def(TensorType | MemRefType)
    bias = opt_operand_def(TensorType | MemRefType)
    out = opt_operand_def(MemRefType)
    result = opt_result_def(TensorType)

    irdl_options = (AttrSizedOperandSegments(as_property=True),)
    assembly_format = WEIGHTED_FORMAT

    def __init__(self, input: Value, weight: Value, bias: Value | None = None, *,
                 result_type: Attribute | None = None, out: Value | None = None):
        super().__init__(operands=[input, weight, bias, out], result_types=[result_type])

    def verify_(self) -> None:
        out_type, x_shape, w_shape, integer = self._check_weighted(
            "f32, i8 or i32", lambda t: _is_f32(t) or is_int(t, 8) or is_int(t, 32)
        )
        if len(x_shape) != 2:
            raise VerifyException(f"'{self.name}' input must be [N, C], got {describe(self.input.type)}")
        if len(w_shape) != 2 or w_shape[1] != x_shape[1]:
            raise VerifyException(
                f"'{self.name}' weight must be [O, {x_shape[1]}], got {describe(self.weight.type)}"
            )
        if integer:
            self._check_fan_in(x_shape[1])
        _expect_output(self, out_type, (x_shape[0], w_shape[0]), i32 if integer else f32)

    @property
    def is_integer(self) -> bool:
        """True for the integer form (``i8`` input and weights, ``i32`` result)."""
        return is_int(elem_of(self.weight.type), 8)


# ---------------------------------------------------------------------------------------------
# Pooling
# ---------------------------------------------------------------------------------------------

POOL_KINDS = ("max", "avg")


@irdl_op_definition
class Pool2dOp(ConvGeometryMixin, UnaryShapedOp):
    """Max or average pooling over ``kernel = [KH, KW]`` windows of NHWC ``i8``/``i32``/``f32``.

    ``strides`` ``[h, w]``, ``padding`` ``[top, bottom, left, right]`` (each pad smaller than the
    kernel along its axis, so every window holds an input element); ``OH = (H + pad_top +
    pad_bottom - KH) // sh + 1`` (same for W). The window of ``out[n, oh, ow, c]`` is the input
    positions ``(oh*sh - pad_top + kh, ow*sw - pad_left + kw)`` for ``kh < KH``, ``kw < KW``;
    positions outside the input are padding.

    ``max``: the largest input element of the window; padding is never selected (as ``-inf``).
    Output of the input element type. For ``f32`` a NaN in the window gives NaN.
    ``avg``: output ``f32``. ``sum = +0.0``, then ``sum = sum + float(x)`` over the window's input
    elements, row by row (``kh`` outer, ``kw`` inner); ``out = sum / count`` (f32 division) where
    ``count = KH*KW`` with the unit property ``count_include_pad``, else the number of input
    elements in the window.
    """

    name = "bnn.pool2d"

    kind = prop_def(StringAttr)
    kernel = prop_def(DenseArrayBase)
    strides = prop_def(DenseArrayBase)
    padding = prop_def(DenseArrayBase)
    count_include_pad = opt_prop_def(UnitAttr)

    irdl_options = (ParsePropInAttrDict(),)
    def __init__(self, input: Value, kind: str, kernel: Sequence[int], *,
                 strides: Sequence[int] | None = None, padding: Sequence[int] = (0, 0, 0, 0),
                 count_include_pad: bool = False, result_type: Attribute | None = None,
                 out: Value | None = None):
        props: dict[str, Attribute] = {
            "kind": StringAttr(kind),
            "kernel": _array(kernel, i64),
            "strides": _array(kernel if strides is None else strides, i64),
            "padding": _array(padding, i64),
        }
        if count_include_pad:
            props["count_include_pad"] = UnitAttr()
        super().__init__(input, result_type, out, properties=props)

    @property
    def kernel_hw(self) -> tuple[int, int]:
        return tuple(self.kernel.get_values())  # type: ignore[return-value]

    def verify_(self) -> None:
        out_type = self._check_form([self.input])
        n, h, w, c = _nhwc(self, "input", self.input.type)
        elem = elem_of(self.input.type)
        if not (is_int(elem, 8) or is_int(elem, 32) or _is_f32(elem)):
            raise VerifyException(f"'{self.name}' input elements must be i8, i32 or f32, got {elem}")
        kind = _kind(self, POOL_KINDS)
        if kind == "max" and self.count_include_pad is not None:
            raise VerifyException(f"'{self.name}' count_include_pad only applies to 'avg'")
        kh, kw = check_int_array(self, "kernel", self.kernel, 2, 1)
        sh, sw = check_int_array(self, "strides", self.strides, 2, 1)
        pt, pb, pl, pr = check_int_array(self, "padding", self.padding, 4, 0)
        if max(pt, pb) >= kh or max(pl, pr) >= kw:
            raise VerifyException(
                f"'{self.name}' padding {[pt, pb, pl, pr]} must be smaller than the kernel "
                f"{[kh, kw]} (a window may not lie entirely in the padding)"
            )
        oh = conv_output_size(h, kh, sh, 1, pt, pb)
        ow = conv_output_size(w, kw, sw, 1, pl, pr)
        if oh < 1 or ow < 1:
            raise VerifyException(f"'{self.name}' kernel {kh}x{kw} does not fit the padded {h}x{w} input")
        _expect_output(self, out_type, (n, oh, ow, c), elem if kind == "max" else f32)


@irdl_op_definition
class GlobalAvgPoolOp(UnaryShapedOp):
    """Global average pooling: NHWC ``i8``/``i32``/``f32`` ``[N, H, W, C]`` -> ``f32`` ``[N, C]``.

    ``sum = +0.0``, then ``sum = sum + float(x[n, h, w, c])`` for ``h`` in ``0..H-1`` (outer),
    ``w`` in ``0..W-1`` (inner); ``out[n, c] = sum / float(H*W)`` (f32 division). ``H`` and ``W``
    are at least 1 (the average of no positions is undefined).
    """

    name = "bnn.global_avg_pool"

    def verify_(self) -> None:
        out_type = self._check_form([self.input])
        n, h, w, c = _nhwc(self, "input", self.input.type)
        if h < 1 or w < 1:
            raise VerifyException(f"'{self.name}' averages over at least one position, got {h}x{w}")
        elem = elem_of(self.input.type)
        if not (is_int(elem, 8) or is_int(elem, 32) or _is_f32(elem)):
            raise VerifyException(f"'{self.name}' input elements must be i8, i32 or f32, got {elem}")
        _expect_output(self, out_type, (n, c), f32)


# ---------------------------------------------------------------------------------------------
# Element-wise
# ---------------------------------------------------------------------------------------------


def add_result_element(lhs: Attribute, rhs: Attribute) -> Attribute | None:
    """The element type of ``bnn.add`` on ``lhs`` and ``rhs`` elements (``None``: not allowed)."""
    if _is_f32(lhs) and _is_f32(rhs):
        return f32
    if _is_any_int(lhs) and _is_any_int(rhs):
        return i16 if is_int(lhs, 8) and is_int(rhs, 8) else i32
    return None


@irdl_op_definition
class AddOp(ShapedOpMixin, IRDLOperation):
    """Element-wise sum of two operands of the same shape (residual connections).

    ``f32 + f32 -> f32`` (one f32 addition). Integers (``i8``/``i16``/``i32``, widths may differ)
    are sign-extended and added: ``i8 + i8 -> i16`` (always exact), any other pair ``-> i32``
    (exact while the sum fits ``i32``; it wraps modulo ``2**32`` otherwise).
    """

    name = "bnn.add"

    lhs = operand_def(TensorType | MemRefType)
    rhs = operand_def(TensorType | MemRefType)
    out = opt_operand_def(MemRefType)
    result = opt_result_def(TensorType)

    assembly_format = BINARY_FORMAT

    def __init__(self, lhs: Value, rhs: Value, result_type: Attribute | None = None,
                 out: Value | None = None):
        super().__init__(operands=[lhs, rhs, out], result_types=[result_type])

    def verify_(self) -> None:
        out_type = self._check_form([self.lhs, self.rhs])
        shape = static_shape(self.name, self.lhs.type)
        if static_shape(self.name, self.rhs.type) != shape:
            raise VerifyException(
                f"'{self.name}' operands must have the same shape, got {describe(self.lhs.type)} "
                f"and {describe(self.rhs.type)}"
            )
        a, b = elem_of(self.lhs.type), elem_of(self.rhs.type)
        elem = add_result_element(a, b)
        if elem is None:
            raise VerifyException(
                f"'{self.name}' adds two f32 or two integer (i8, i16, i32) operands, got {a} and {b}"
            )
        _expect_output(self, out_type, shape, elem)


def broadcasts_to(shape: Sequence[int], target: Sequence[int]) -> bool:
    """``shape`` broadcasts to ``target``: same rank, each dimension equal or 1."""
    return len(shape) == len(target) and all(s in (t, 1) for s, t in zip(shape, target))


@irdl_op_definition
class MulOp(ShapedOpMixin, IRDLOperation):
    """Element-wise f32 product of two run-time tensors: ``out[i] = lhs[i] * rhs[j]`` (one f32
    multiplication, PyTorch's float32 ``mul``), ``j`` = ``i`` with 0 in each dimension where
    ``rhs`` has size 1 (broadcasting; e.g. XNOR-Net's activation scale ``[N, H, W, 1]`` over the
    channels of ``[N, H, W, C]``). ``rhs`` has ``lhs``'s rank, each dimension equal or 1; the
    result has ``lhs``'s shape.
    """

    name = "bnn.mul"

    lhs = operand_def(TensorType | MemRefType)
    rhs = operand_def(TensorType | MemRefType)
    out = opt_operand_def(MemRefType)
    result = opt_result_def(TensorType)

    assembly_format = BINARY_FORMAT

    def __init__(self, lhs: Value, rhs: Value, result_type: Attribute | None = None,
                 out: Value | None = None):
        super().__init__(operands=[lhs, rhs, out], result_types=[result_type])

    def verify_(self) -> None:
        out_type = self._check_form([self.lhs, self.rhs])
        shape = static_shape(self.name, self.lhs.type)
        if not broadcasts_to(static_shape(self.name, self.rhs.type), shape):
            raise VerifyException(
                f"'{self.name}' rhs must broadcast to lhs (same rank, each dimension equal or 1), "
                f"got {describe(self.lhs.type)} and {describe(self.rhs.type)}"
            )
        a, b = elem_of(self.lhs.type), elem_of(self.rhs.type)
        if not (_is_f32(a) and _is_f32(b)):
            raise VerifyException(f"'{self.name}' multiplies two f32 operands, got {a} and {b}")
        _expect_output(self, out_type, shape, f32)


ACTIVATION_KINDS = ("relu", "hardtanh", "prelu")


@irdl_op_definition
class ActivationOp(UnaryShapedOp):
    """Element-wise activation; output of the input's type and shape.

    ``relu``: ``max(x, 0)`` (f32: IEEE ``maximum``, NaN propagates, ``-0.0 -> +0.0``; ints: signed).
    ``hardtanh``: ``min(max(x, min), max)`` with ``f32`` properties ``min <= max`` (NaN
    propagates); on integers (``i8``/``i16``/``i32``) the bounds must be integers, and bounds
    outside the type's range do not clamp.
    ``prelu`` (f32 only): ``x if x >= 0 else slopes[c] * x`` with ``slopes`` an ``f32`` array of
    ``C`` (the last dimension; a shared PyTorch slope is repeated ``C`` times).
    """

    name = "bnn.activation"

    kind = prop_def(StringAttr)
    min = opt_prop_def(FloatAttr)
    max = opt_prop_def(FloatAttr)
    slopes = opt_prop_def(DenseArrayBase)

    irdl_options = (ParsePropInAttrDict(),)
    def __init__(self, input: Value, kind: str, *, min: float | None = None,
                 max: float | None = None, slopes: Sequence[float] | None = None,
                 result_type: Attribute | None = None, out: Value | None = None):
        props: dict[str, Attribute] = {"kind": StringAttr(kind)}
        if min is not None:
            props["min"] = FloatAttr(float(min), f32)
        if max is not None:
            props["max"] = FloatAttr(float(max), f32)
        if slopes is not None:
            props["slopes"] = _array([float(v) for v in slopes], f32)
        super().__init__(input, result_type, out, properties=props)

    @classmethod
    def relu(cls, input: Value, result_type: Attribute | None = None, out: Value | None = None) -> ActivationOp:
        return cls(input, "relu", result_type=result_type, out=out)

    @classmethod
    def hardtanh(cls, input: Value, min: float = -1.0, max: float = 1.0,
                 result_type: Attribute | None = None, out: Value | None = None) -> ActivationOp:
        return cls(input, "hardtanh", min=min, max=max, result_type=result_type, out=out)

    @classmethod
    def prelu(cls, input: Value, slopes: Sequence[float], result_type: Attribute | None = None,
              out: Value | None = None) -> ActivationOp:
        return cls(input, "prelu", slopes=slopes, result_type=result_type, out=out)

    @property
    def bounds(self) -> tuple[float, float]:
        assert self.min is not None and self.max is not None
        return self.min.value.data, self.max.value.data

    def verify_(self) -> None:
        out_type = self._check_form([self.input])
        shape = static_shape(self.name, self.input.type)
        elem = elem_of(self.input.type)
        if not shape or not (_is_f32(elem) or _is_any_int(elem)):
            raise VerifyException(
                f"'{self.name}' input must be a ranked f32, i8, i16 or i32 operand, got "
                f"{describe(self.input.type)}"
            )
        _expect_output(self, out_type, shape, elem)
        kind = _kind(self, ACTIVATION_KINDS)
        if kind == "relu":
            _forbid(self, kind, ("min", "max", "slopes"))
        elif kind == "hardtanh":
            _forbid(self, kind, ("slopes",))
            if self.min is None or self.max is None:
                raise VerifyException(f"'{self.name}' of kind 'hardtanh' needs 'min' and 'max'")
            for bound in (self.min, self.max):
                if not _is_f32(bound.type):
                    raise VerifyException(f"'{self.name}' hardtanh bounds must be f32, got {bound}")
            lo, hi = self.bounds
            if not lo <= hi:
                raise VerifyException(f"'{self.name}' hardtanh needs min <= max, got {lo} > {hi}")
            if not _is_f32(elem) and (lo != int(lo) or hi != int(hi)):
                raise VerifyException(
                    f"'{self.name}' hardtanh on integers needs integral bounds, got [{lo}, {hi}]"
                )
        else:
            _forbid(self, kind, ("min", "max"))
            if not _is_f32(elem):
                raise VerifyException(f"'{self.name}' prelu needs f32 input, got {elem}")
            _check_array(self, "slopes", self.slopes, _is_f32, "f32", shape[-1])


def _first_input(op: IRDLOperation) -> tuple[Attribute, tuple[int, ...], Attribute]:
    """The output type of an op on a list of ``inputs``, and the shape and element type of its
    first input."""
    inputs = list(op.inputs)  # type: ignore[attr-defined]
    if not inputs:
        raise VerifyException(f"'{op.name}' needs at least one input")
    out_type = op._check_form(inputs)  # type: ignore[attr-defined]
    return out_type, static_shape(op.name, inputs[0].type), elem_of(inputs[0].type)


VARIADIC_FORMAT = (
    "$inputs (`into` $out^)? attr-dict `:` type($inputs) (`into` type($out)^)? "
    "(`->` type($result)^)?"
)
"""Assembly of an op on a list of inputs: ``%r = op %a, %b : A, B -> R`` or ``op %a into %o :
A into O``."""


@irdl_op_definition
class ElementwiseOp(ShapedOpMixin, IRDLOperation):
    """A fused per-channel float chain: ``out[i] = steps(inputs[0][i])`` element by element.

    ``inputs[0]`` is the main operand (``f32``, or ``i8``/``i16``/``i32`` with ``cast`` as the
    first step); ``inputs[1..]`` are ``f32`` operands of the same shape read by ``add_input``
    steps at the same element. ``steps`` is the chain of :mod:`bnnmlir.dialects.float_chain`:
    each step is ONE f32 operation (``fma``: one rounding) on the element of channel ``c`` (the
    last dimension), in order, so the result equals the unfused ops bit for bit. The result is
    ``f32`` of the inputs' shape. Created by ``bnn-fuse-elementwise``.
    """

    name = "bnn.elementwise"

    inputs = var_operand_def(TensorType | MemRefType)
    out = opt_operand_def(MemRefType)
    result = opt_result_def(TensorType)
    steps = prop_def(ArrayAttr)

    irdl_options = (AttrSizedOperandSegments(as_property=True), ParsePropInAttrDict())
    assembly_format = VARIADIC_FORMAT

    def __init__(self, inputs: Sequence[Value], steps: Sequence[DictionaryAttr],
                 result_type: Attribute | None = None, out: Value | None = None):
        super().__init__(operands=[list(inputs), out], result_types=[result_type],
                         properties={"steps": ArrayAttr(list(steps))})

    def buffer_form(self, operands: Sequence[SSAValue], out: SSAValue) -> IRDLOperation:
        return ElementwiseOp(list(operands), self.steps.data, out=out)

    def verify_(self) -> None:
        out_type, shape, elem = _first_input(self)
        if not shape or not (_is_f32(elem) or _is_any_int(elem)):
            raise VerifyException(
                f"'{self.name}' main input must be a ranked f32, i8, i16 or i32 operand, got "
                f"{describe(self.inputs[0].type)}"
            )
        for v in self.inputs[1:]:
            if static_shape(self.name, v.type) != shape or not _is_f32(elem_of(v.type)):
                raise VerifyException(
                    f"'{self.name}' extra inputs must be f32 of the main input's shape "
                    f"{list(shape)}, got {describe(v.type)}"
                )
        _expect_output(self, out_type, shape, f32)
        verify_steps(f"'{self.name}'", self.steps, shape[-1], _is_any_int(elem), len(self.inputs))


@irdl_op_definition
class QuantizeOp(Permuting, UnaryShapedOp):
    """Input quantization in one pass: a float chain, the clip8 rounding, a layout change.

    ``out = transpose(clip8(steps(x)), permutation)``: ``steps`` is a chain of
    :mod:`bnnmlir.dialects.float_chain` on the ``f32`` input (its channel ``c`` is the input's
    LAST dimension; no ``cast``, no ``add_input``; it may be empty), each step one f32 operation
    rounded to nearest even; then ``clip8``: round half to even, clamp to ``[-127, 127]``
    (``bnn.clip8`` of ``f32``; NaN is not a valid input); then the dimension permutation of
    ``bnn.transpose`` (``out.shape[k] = in.shape[permutation[k]]``). The result is ``i8``.
    Created by ``bnn-fuse-quantize`` from ``bnn.transpose(bnn.clip8(chain(x)))``.
    """

    name = "bnn.quantize"

    steps = prop_def(ArrayAttr)
    permutation = prop_def(DenseArrayBase)

    irdl_options = (ParsePropInAttrDict(),)

    def __init__(self, input: Value, steps: Sequence[Attribute], permutation: Sequence[int],
                 result_type: Attribute | None = None, out: Value | None = None):
        super().__init__(input, result_type, out, properties={
            "steps": ArrayAttr(list(steps)), "permutation": _array(permutation, i64)})

    def verify_(self) -> None:
        out_type = self._check_form([self.input])
        in_shape = static_shape(self.name, self.input.type)
        if not in_shape or not _is_f32(elem_of(self.input.type)):
            raise VerifyException(
                f"'{self.name}' input must be a ranked f32 operand, got {describe(self.input.type)}"
            )
        perm = _verified_permutation(self.name, self.permutation, len(in_shape))
        if self.steps.data:
            verify_steps(f"'{self.name}'", self.steps, in_shape[-1], False, 1)
        _expect_output(self, out_type, [in_shape[p] for p in perm], i8)


# ---------------------------------------------------------------------------------------------
# Data movement
# ---------------------------------------------------------------------------------------------


@irdl_op_definition
class ConcatOp(ShapedOpMixin, IRDLOperation):
    """Concatenation along the last dimension (channels).

    ``inputs`` (one or more) share the element type and every dimension but the last;
    ``out[..., off_k + j] = inputs[k][..., j]`` with ``off_k`` the sum of the last dimensions of
    ``inputs[0..k-1]``.
    """

    name = "bnn.concat"

    inputs = var_operand_def(TensorType | MemRefType)
    out = opt_operand_def(MemRefType)
    result = opt_result_def(TensorType)

    irdl_options = (AttrSizedOperandSegments(as_property=True),)
    assembly_format = VARIADIC_FORMAT

    def __init__(self, inputs: Sequence[Value], result_type: Attribute | None = None,
                 out: Value | None = None):
        super().__init__(operands=[list(inputs), out], result_types=[result_type])

    def buffer_form(self, operands: Sequence[SSAValue], out: SSAValue) -> IRDLOperation:
        return ConcatOp(list(operands), out=out)

    def verify_(self) -> None:
        out_type, first, elem = _first_input(self)
        if not first:
            raise VerifyException(f"'{self.name}' needs ranked inputs")
        total = 0
        for v in self.inputs:
            shape = static_shape(self.name, v.type)
            if shape[:-1] != first[:-1] or len(shape) != len(first) or elem_of(v.type) != elem:
                raise VerifyException(
                    f"'{self.name}' inputs must share the element type and all dimensions but the "
                    f"last: {describe(self.inputs[0].type)} vs {describe(v.type)}"
                )
            total += shape[-1]
        _expect_output(self, out_type, (*first[:-1], total), elem)


@irdl_op_definition
class ReshapeOp(UnaryShapedOp):
    """Row-major reinterpretation: the ``i``-th element in row-major order of the input is the
    ``i``-th of the output. Same element type and element count (a copy in buffer form)."""

    name = "bnn.reshape"

    def verify_(self) -> None:
        out_type = self._check_form([self.input])
        in_shape = static_shape(self.name, self.input.type)
        out_shape = static_shape(self.name, out_type)
        if prod(in_shape) != prod(out_shape) or elem_of(out_type) != elem_of(self.input.type):
            raise VerifyException(
                f"'{self.name}' output must have the element type and element count of the input: "
                f"{describe(self.input.type)} vs {describe(out_type)}"
            )


@irdl_op_definition
class TransposeOp(Permuting, UnaryShapedOp):
    """Dimension permutation, as ``numpy.transpose(x, permutation)``.

    ``out.shape[k] = in.shape[permutation[k]]`` and ``out[j_0, ..., j_{r-1}] = in[i]`` with
    ``i[permutation[k]] = j_k``. ``permutation`` is a permutation of ``0..r-1``.
    """

    name = "bnn.transpose"

    permutation = prop_def(DenseArrayBase)

    irdl_options = (ParsePropInAttrDict(),)
    def __init__(self, input: Value, permutation: Sequence[int], result_type: Attribute | None = None,
                 out: Value | None = None):
        super().__init__(input, result_type, out, properties={"permutation": _array(permutation, i64)},
        )

    def verify_(self) -> None:
        out_type = self._check_form([self.input])
        in_shape = static_shape(self.name, self.input.type)
        perm = _verified_permutation(self.name, self.permutation, len(in_shape))
        _expect_output(self, out_type, [in_shape[p] for p in perm], elem_of(self.input.type))


SUPPORT_OPS: list = [
    Requant8Op,
    CastOp,
    BatchNormOp,
    AffineOp,
    Conv2dOp,
    DenseOp,
    Pool2dOp,
    GlobalAvgPoolOp,
    AddOp,
    MulOp,
    ActivationOp,
    ElementwiseOp,
    ConcatOp,
    ReshapeOp,
    TransposeOp,
    QuantizeOp,
]
