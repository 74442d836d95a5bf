"""The ``bnn`` dialect: binary neural network operations with exact integer semantics.

The bit convention, packing and padding rules are defined once in :mod:`bnnmlir.bits`; every op
below refers to them. In short: +1 is bit 0, -1 is bit 1, ``x >= 0`` binarizes to +1, binary tensors
are packed along their last dimension into ``i8`` words (LSB first, unused bits 0), and a binary dot
product over ``C`` channels is ``C - 2 * popcount(a XOR w)``.

Tensor-level ops come in two forms, like ``linalg``:

* value form: tensor operands and one tensor result;
* buffer form (after bufferization): memref operands, the output buffer passed with ``into``, no
  result.

Kernel-level ops (``bnn.narrow_acc``) work on vectors inside loop nests.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from xdsl.dialects.builtin import (
    I8,
    I16,
    I32,
    I64,
    ArrayAttr,
    DenseArrayBase,
    DictionaryAttr,
    Float32Type,
    IntegerAttr,
    IntegerType,
    MemRefType,
    StringAttr,
    TensorType,
    VectorType,
    f32,
    i8,
    i32,
    i64,
)
from xdsl.ir import Attribute, Operation, SSAValue
from xdsl.irdl import (
    AttrSizedOperandSegments,
    IRDLOperation,
    ParsePropInAttrDict,
    VarConstraint,
    base,
    irdl_op_definition,
    operand_def,
    opt_operand_def,
    opt_prop_def,
    opt_result_def,
    prop_def,
    result_def,
    traits_def,
)
from xdsl.traits import Pure
from xdsl.utils.exceptions import VerifyException

from bnnmlir.bits import WORD_BITS, PadValue, packed_words
from bnnmlir.dialects.common import (
    ConvGeometryMixin,
    ShapedOpMixin,
    UnaryShapedOp,
    check_packed_output,
    describe,
    elem_of,
    is_int,
    shape_of,
    static_shape,
    vector_length,
)
from bnnmlir.dialects.float_chain import verify_steps
from bnnmlir.dialects.requant_map import verify_requant8_params

I64Array = DenseArrayBase[IntegerType]

def check_threshold_arrays(op_name: str, thresholds: DenseArrayBase, directions: DenseArrayBase,
                           channels: int) -> None:
    """One i32 threshold and one i8 direction (+1 or -1) per channel."""
    if not is_int(thresholds.elt_type, 32) or not is_int(directions.elt_type, 8):
        raise VerifyException(f"'{op_name}' thresholds must be i32 and directions i8")
    ts, ds = thresholds.get_values(), directions.get_values()
    if len(ts) != channels or len(ds) != channels:
        raise VerifyException(
            f"'{op_name}' needs one threshold and one direction per channel ({channels}), "
            f"got {len(ts)} and {len(ds)}"
        )
    bad = [d for d in ds if d not in (-1, 1)]
    if bad:
        raise VerifyException(f"'{op_name}' directions must be +1 or -1, got {bad[0]}")


# ---------------------------------------------------------------------------------------------
# Tensor-level ops
# ---------------------------------------------------------------------------------------------


@irdl_op_definition
class BinarizeOp(UnaryShapedOp):
    """Binarize and bit-pack along the last dimension.

    Semantics: ``out[..., c // 8] bit (c % 8) = 1 if in[..., c] < 0 else 0`` for every channel
    ``c < C``; bits ``C..8*ceil(C/8)-1`` of the last word are 0. So ``x >= 0`` is +1 (bit 0) and
    ``x < 0`` is -1 (bit 1). Input element types: ``i8``, ``i16``, ``i32``, ``f32``. Output: ``i8``
    words, shape ``[..., ceil(C/8)]``; ``C >= 1`` (there is no packed form of zero channels).
    """

    name = "bnn.binarize"

    def verify_(self) -> None:
        out_type = self._check_form([self.input])
        in_shape = static_shape(self.name, self.input.type)
        if not in_shape or in_shape[-1] < 1:
            raise VerifyException(
                f"'{self.name}' needs a last dimension of at least one channel to pack, got "
                f"{describe(self.input.type)}"
            )
        elem = elem_of(self.input.type)
        if not (any(is_int(elem, w) for w in (8, 16, 32)) or isinstance(elem, Float32Type)):
            raise VerifyException(
                f"'{self.name}' input elements must be i8, i16, i32 or f32, got {elem}"
            )
        check_packed_output(self.name, in_shape, out_type)


@irdl_op_definition
class BConv2dOp(ConvGeometryMixin, ShapedOpMixin, IRDLOperation):
    """Binary 2-D direct convolution of bit-packed NHWC activations with packed weights.

    Operands: ``input`` ``[N, H, W, ceil(C/8)] x i8`` and ``weight`` ``[O, KH, KW, ceil(C/8)] x i8``
    (both packed by the convention of :mod:`bnnmlir.bits`); ``in_channels = C``. Result
    ``[N, OH, OW, O] x i32`` with ``OH = (H + pad_top + pad_bottom - dh*(KH-1) - 1) // sh + 1`` (same
    for W).

    ``out[n, oh, ow, o] = sum over kh, kw, c of x(n, oh*sh - pad_top + kh*dh,
    ow*sw - pad_left + kw*dw, c) * w(o, kh, kw, c)`` where ``x`` and ``w`` are the +-1 values and
    ``x`` outside the input is ``pad_value`` (+1, -1, or 0 meaning the tap contributes nothing).
    In bits each tap that contributes adds ``C - 2*popcount(a XOR w)``. The result is exact and
    ``|out| <= KH*KW*C``. ``C``, ``O``, ``KH`` and ``KW`` are at least 1 (an empty kernel or no
    output channel is refused by the verifier); the batch ``N`` may be 0.

    ``padding`` is ``[top, bottom, left, right]``; ``strides`` and ``dilations`` are ``[h, w]``.

    Fused output transform (optional property ``output``, set by ``bnn-fuse-output``); the
    accumulator ``acc`` above then never goes to memory:

    * absent or ``"i32"``: the result is ``acc`` as ``i32``;
    * ``"clip8"``: the result is ``i8``, ``min(max(acc, -127), 127)`` (``bnn.clip8``);
    * ``"threshold"``: with ``thresholds``/``directions`` (one per output channel, as
      ``bnn.threshold``): the result is packed ``[N, OH, OW, ceil(O/8)] x i8`` bits, +1 (bit 0) iff
      ``acc >= t`` (direction +1) or ``acc <= t`` (direction -1);
    * ``"requant8"``: with ``requant``, a dictionary holding ``kind`` and that kind's arrays exactly
      as ``bnn.requant8`` holds its properties (per-channel arrays have ``O`` entries, table and
      breakpoint rows one row per output channel ``o``): the result is ``[N, OH, OW, O] x i8``,
      ``out[n, oh, ow, o] = requant8(acc[n, oh, ow, o])`` with the map of channel ``o``, i.e.

      - ``affine``: ``clamp((acc * multiplier[o] + offset[o]) >> shift[o], -127, 127)`` in int64;
      - ``breakpoints``: ``clamp(base[o] + step[o] * #{j : breakpoints[o*B + j] <= acc}, -127, 127)``;
      - ``table``: ``table[o*D + clamp(acc, lo, lo + D - 1) - lo]``.

      The parameters are verified by the rules of ``bnn.requant8``
      (:func:`~bnnmlir.dialects.requant_map.verify_requant8_params`).

    * ``"f32"``: with ``steps``, a float chain of :mod:`bnnmlir.dialects.float_chain` whose first
      step is ``cast``: the result is ``[N, OH, OW, O] x f32``, the chain applied to ``acc`` with
      per-channel parameters of output channel ``o`` (``bnn.elementwise`` on the ``i32`` result;
      set by ``bnn-fuse-elementwise``).

    ``thresholds``/``directions`` go with ``"threshold"`` only, ``requant`` with ``"requant8"``
    only and ``steps`` with ``"f32"`` only.

    Fused residual (optional operand ``residual``, set by ``bnn-fuse-output``; ``clip8`` and
    ``requant8`` outputs only): an ``i8`` operand of the output's shape, and the result is
    ``clip8(t + residual[n, oh, ow, o])`` where ``t`` is the output transform above (in
    ``[-127, 127]``), i.e. ``bnn.clip8(bnn.add(conv, residual))``; the sum (at most 254 in
    magnitude) is exact. With an ``f32`` output the residual is ``f32`` of the output's shape, read
    by the chain's ``add_input`` steps as input 1.
    """

    name = "bnn.bconv2d"

    input = operand_def(TensorType | MemRefType)
    weight = operand_def(TensorType | MemRefType)
    residual = opt_operand_def(TensorType | MemRefType)
    out = opt_operand_def(MemRefType)
    result = opt_result_def(TensorType)

    in_channels = prop_def(IntegerAttr[IntegerType])
    strides = prop_def(I64Array)
    dilations = prop_def(I64Array)
    padding = prop_def(I64Array)
    pad_value = prop_def(IntegerAttr[IntegerType])
    output = opt_prop_def(StringAttr)
    thresholds = opt_prop_def(DenseArrayBase[IntegerType])
    directions = opt_prop_def(DenseArrayBase[IntegerType])
    requant = opt_prop_def(DictionaryAttr)
    steps = opt_prop_def(ArrayAttr)

    OUTPUT_KINDS: ClassVar[tuple[str, ...]] = ("i32", "clip8", "threshold", "requant8", "f32")

    irdl_options = (AttrSizedOperandSegments(as_property=True), ParsePropInAttrDict())
    assembly_format = (
        "$input `,` $weight (`residual` $residual^)? (`into` $out^)? attr-dict `:` type($input) "
        "`,` type($weight) (`residual` type($residual)^)? (`,` type($out)^)? (`->` type($result)^)?"
    )

    def __init__(
        self,
        input: SSAValue | Operation,
        weight: SSAValue | Operation,
        *,
        in_channels: int,
        strides: Sequence[int] = (1, 1),
        dilations: Sequence[int] = (1, 1),
        padding: Sequence[int] = (0, 0, 0, 0),
        pad_value: int = 0,
        result_type: Attribute | None = None,
        out: SSAValue | Operation | None = None,
        residual: SSAValue | Operation | None = None,
    ):
        super().__init__(
            operands=[input, weight, residual, out],
            result_types=[result_type],
            properties={
                "in_channels": IntegerAttr(in_channels, i64),
                "strides": DenseArrayBase.from_list(i64, strides),
                "dilations": DenseArrayBase.from_list(i64, dilations),
                "padding": DenseArrayBase.from_list(i64, padding),
                "pad_value": IntegerAttr(pad_value, i64),
            },
        )

    def buffer_form(self, operands: Sequence[SSAValue], out: SSAValue) -> IRDLOperation:
        props = dict(self.properties)
        props.pop("operandSegmentSizes", None)  # last, where the parser puts it
        props["operandSegmentSizes"] = DenseArrayBase.from_list(
            i32, [1, 1, int(self.residual is not None), 1])
        return BConv2dOp.create(operands=[*operands, out], result_types=[], properties=props,
                                attributes=dict(self.attributes))

    # Convenience accessors -------------------------------------------------------------------
    @property
    def channels(self) -> int:
        return self.in_channels.value.data

    @property
    def pad(self) -> PadValue:
        return PadValue(self.pad_value.value.data)

    @property
    def output_kind(self) -> str:
        """``i32``, ``clip8``, ``threshold``, ``requant8`` or ``f32``: the fused output transform."""
        return "i32" if self.output is None else self.output.data

    @property
    def requant_params(self) -> dict[str, Attribute]:
        """The ``requant8`` map of a ``requant8`` output: ``kind`` and its arrays."""
        if self.requant is None:
            raise ValueError(f"'{self.name}' has no requant8 output")
        return dict(self.requant.data)

    @property
    def kernel_hw(self) -> tuple[int, int]:
        s = shape_of(self.weight.type)
        return s[1], s[2]

    @property
    def fan_in(self) -> int:
        """``K = KH*KW*C``: the largest possible ``|out|``."""
        kh, kw = self.kernel_hw
        return kh * kw * self.channels

    def verify_(self) -> None:
        inputs = [self.input, self.weight] + ([self.residual] if self.residual is not None else [])
        out_type = self._check_form(inputs)
        in_shape = static_shape(self.name, self.input.type)
        w_shape = static_shape(self.name, self.weight.type)
        out_shape = static_shape(self.name, out_type)
        for what, t in (("input", self.input.type), ("weight", self.weight.type)):
            if not is_int(elem_of(t), 8) or len(shape_of(t)) != 4:
                raise VerifyException(
                    f"'{self.name}' {what} must be a rank-4 packed i8 operand, got {describe(t)}"
                )
        kind = self.output_kind
        if kind not in self.OUTPUT_KINDS:
            raise VerifyException(
                f"'{self.name}' output must be one of {', '.join(self.OUTPUT_KINDS)}, got '{kind}'"
            )
        has_thresholds = self.thresholds is not None or self.directions is not None
        if has_thresholds != (kind == "threshold"):
            raise VerifyException(
                f"'{self.name}' thresholds and directions go with output = \"threshold\" only"
            )
        if self.requant is not None and kind != "requant8":
            raise VerifyException(
                f"'{self.name}' requant parameters go with output = \"requant8\" only, not "
                f"with output {kind}"
            )
        if self.requant is None and kind == "requant8":
            raise VerifyException(
                f"'{self.name}' with output = \"requant8\" needs the requant parameters "
                f"(requant = {{kind = ..., ...}})"
            )
        if (self.steps is not None) != (kind == "f32"):
            raise VerifyException(f"'{self.name}' steps go with output = \"f32\" only, and it needs them")
        elem = {"i32": i32, "f32": f32}.get(kind, i8)
        if elem_of(out_type) != elem or len(out_shape) != 4:
            raise VerifyException(
                f"'{self.name}' with output {kind} produces rank-4 {elem}, got {describe(out_type)}"
            )
        c = self.channels
        if c < 1:
            raise VerifyException(f"'{self.name}' channels must be positive, got {c}")
        words = packed_words(c)
        if in_shape[3] != words or w_shape[3] != words:
            raise VerifyException(
                f"'{self.name}' {c} channels pack into {words} i8 words, but input has "
                f"{in_shape[3]} and weight {w_shape[3]}"
            )
        n, h, w, _ = in_shape
        o, kh, kw, _ = w_shape
        if o < 1 or kh < 1 or kw < 1:
            raise VerifyException(
                f"'{self.name}' weight needs at least one output channel and a kernel of at "
                f"least 1x1, got {o} output channels and a {kh}x{kw} kernel"
            )
        oh, ow = self.verify_window(h, w, kh, kw)
        if self.pad_value.value.data not in (-1, 0, 1):
            raise VerifyException(
                f"'{self.name}' pad_value must be -1, 0 or +1, got {self.pad_value.value.data}"
            )
        expected = (n, oh, ow, packed_words(o) if kind == "threshold" else o)
        if out_shape != expected:
            raise VerifyException(
                f"'{self.name}' expected output shape {list(expected)}, got {list(out_shape)}"
            )
        if kind == "threshold":
            assert self.thresholds is not None and self.directions is not None
            check_threshold_arrays(self.name, self.thresholds, self.directions, o)
        if kind == "requant8":
            verify_requant8_params(f"'{self.name}' requant", self.requant_params, o, noun="entry")
        if kind == "f32":
            assert self.steps is not None
            verify_steps(f"'{self.name}'", self.steps, o, True, 1 + (self.residual is not None))
        if self.residual is not None:
            if kind not in ("clip8", "requant8", "f32"):
                raise VerifyException(
                    f"'{self.name}' a residual goes with output clip8, requant8 or f32 only, not "
                    f"{kind}"
                )
            r_type = self.residual.type
            r_elem = f32 if kind == "f32" else i8
            if elem_of(r_type) != r_elem or static_shape(self.name, r_type) != out_shape:
                raise VerifyException(
                    f"'{self.name}' residual must be {r_elem} of the output shape "
                    f"{list(out_shape)}, got {describe(r_type)}"
                )


@irdl_op_definition
class Clip8Op(UnaryShapedOp):
    """The BNN-Clip clipping block: values to the int8 stream ``[-127, 127]``.

    * integer input (``i16``, ``i32``): ``out = min(max(x, -127), 127)``;
    * ``f32`` input: ``out = min(max(round_half_to_even(x), -127), 127)`` (``torch.round`` then
      ``clamp``, exactly; NaN is not a valid input).

    Any static shape; the output has the same shape in ``i8``. The value -128 never occurs, so the
    stream stays symmetric.
    """

    name = "bnn.clip8"

    def verify_(self) -> None:
        out_type = self._check_form([self.input])
        in_shape = static_shape(self.name, self.input.type)
        elem = elem_of(self.input.type)
        if not (any(is_int(elem, w) for w in (16, 32)) or isinstance(elem, Float32Type)):
            raise VerifyException(
                f"'{self.name}' input elements must be i16, i32 or f32, got {elem}"
            )
        if shape_of(out_type) != in_shape or not is_int(elem_of(out_type), 8):
            raise VerifyException(
                f"'{self.name}' output must be i8 of shape {list(in_shape)}, got "
                f"{describe(out_type)}"
            )


@irdl_op_definition
class ThresholdOp(UnaryShapedOp):
    """Per-channel integer threshold producing packed bits: BatchNorm + sign, folded.

    For channel ``c`` (last dimension) with threshold ``t[c]`` and direction ``d[c]``:

    * ``d[c] = +1``: the output is +1 (bit 0) iff ``x >= t[c]``, else -1 (bit 1);
    * ``d[c] = -1``: the output is +1 (bit 0) iff ``x <= t[c]``, else -1 (bit 1).

    A channel whose output is constant is written with ``d = +1`` and ``t = -2**31`` (always +1) or
    ``d = -1`` and ``t = -2**31`` (+1 only at ``x = -2**31``, which no bounded producer reaches).
    Input ``[..., C] x i32`` (or ``i16``, ``i8``), ``C >= 1``; output packed
    ``[..., ceil(C/8)] x i8``.
    """

    name = "bnn.threshold"

    thresholds = prop_def(DenseArrayBase[IntegerType])
    directions = prop_def(DenseArrayBase[IntegerType])

    irdl_options = (ParsePropInAttrDict(),)
    def __init__(
        self,
        input: SSAValue | Operation,
        thresholds: Sequence[int],
        directions: Sequence[int],
        result_type: Attribute | None = None,
        out: SSAValue | Operation | None = None,
    ):
        super().__init__(input, result_type, out, properties={
                "thresholds": DenseArrayBase.from_list(i32, thresholds),
                "directions": DenseArrayBase.from_list(i8, directions),
            },
        )

    def verify_(self) -> None:
        out_type = self._check_form([self.input])
        in_shape = static_shape(self.name, self.input.type)
        if not in_shape or not any(is_int(elem_of(self.input.type), w) for w in (8, 16, 32)):
            raise VerifyException(
                f"'{self.name}' input must be a ranked integer operand, got "
                f"{describe(self.input.type)}"
            )
        if in_shape[-1] < 1:
            raise VerifyException(
                f"'{self.name}' needs at least one channel to pack, got {describe(self.input.type)}"
            )
        check_threshold_arrays(self.name, self.thresholds, self.directions, in_shape[-1])
        check_packed_output(self.name, in_shape, out_type)


# ---------------------------------------------------------------------------------------------
# Kernel-level ops
# ---------------------------------------------------------------------------------------------


@irdl_op_definition
class NarrowAccOp(IRDLOperation):
    """Accumulate ``popcount(a XOR b)`` into narrow unsigned accumulator lanes.

    ``a`` and ``b`` are ``vector<M x i8>``; ``acc`` and the result are ``vector<L x iA>`` with
    ``A`` in {8, 16, 32} and ``M`` a multiple of ``L``. With ``G = M / L`` bytes per lane:

        ``result[j] = acc[j] + sum_{g < G} popcount(a[j*G + g] XOR b[j*G + g])``   (mod ``2**A``)

    Lanes are unsigned. One step adds at most ``8*G`` to a lane, so a chain of ``max_steps``
    accumulations starting from zero is exact when ``max_steps * 8 * G <= 2**A - 1``. The op
    carries ``max_steps`` (the length of the chain it belongs to, proven by the pass that created
    it) and the verifier checks that bound; the lowering is free to use wrapping adds.
    """

    name = "bnn.narrow_acc"

    ACC: ClassVar = VarConstraint("ACC", base(VectorType))
    BYTES: ClassVar = VarConstraint("BYTES", base(VectorType))

    acc = operand_def(ACC)
    lhs = operand_def(BYTES)
    rhs = operand_def(BYTES)
    result = result_def(ACC)
    max_steps = prop_def(IntegerAttr[I64])

    traits = traits_def(Pure())

    assembly_format = (
        "$acc `,` $lhs `,` $rhs `max_steps` `=` $max_steps attr-dict `:` type($lhs) `into` "
        "type($acc)"
    )

    def __init__(self, acc: SSAValue | Operation, lhs: SSAValue | Operation,
                 rhs: SSAValue | Operation, max_steps: int):
        acc_v = SSAValue.get(acc)
        super().__init__(
            operands=[acc, lhs, rhs],
            result_types=[acc_v.type],
            properties={"max_steps": IntegerAttr(max_steps, i64)},
        )

    @property
    def lane_bits(self) -> int:
        elem = self.acc.type.get_element_type()  # type: ignore[union-attr]
        assert isinstance(elem, IntegerType)
        return elem.width.data

    @property
    def bytes_per_lane(self) -> int:
        return vector_length(self.lhs.type) // vector_length(self.acc.type)

    @staticmethod
    def max_exact_steps(lane_bits: int, bytes_per_lane: int) -> int:
        """Largest chain length for which no lane can overflow."""
        return (2**lane_bits - 1) // (WORD_BITS * bytes_per_lane)

    def verify_(self) -> None:
        acc_t, a_t, b_t = self.acc.type, self.lhs.type, self.rhs.type
        assert isinstance(acc_t, VectorType) and isinstance(a_t, VectorType)
        if a_t != b_t or not is_int(a_t.get_element_type(), 8) or a_t.get_shape().__len__() != 1:
            raise VerifyException(
                f"'{self.name}' operands must be the same 1-D vector of i8, got {a_t} and {b_t}"
            )
        elem = acc_t.get_element_type()
        if not any(is_int(elem, w) for w in (8, 16, 32)) or len(acc_t.get_shape()) != 1:
            raise VerifyException(
                f"'{self.name}' accumulator must be a 1-D vector of i8, i16 or i32, got {acc_t}"
            )
        if self.result.type != acc_t:
            raise VerifyException(f"'{self.name}' result type must equal the accumulator type")
        m, lanes = vector_length(a_t), vector_length(acc_t)
        if m % lanes:
            raise VerifyException(
                f"'{self.name}' {m} bytes cannot be split evenly over {lanes} lanes"
            )
        steps = self.max_steps.value.data
        limit = self.max_exact_steps(self.lane_bits, m // lanes)
        if steps < 1 or steps > limit:
            raise VerifyException(
                f"'{self.name}' {steps} steps of up to {8 * (m // lanes)} per lane overflow "
                f"{self.lane_bits}-bit lanes: at most {limit} steps are exact"
            )


CORE_OPS = [BinarizeOp, BConv2dOp, Clip8Op, ThresholdOp, NarrowAccOp]

__all__ = [
    "CORE_OPS",
    "BinarizeOp",
    "BConv2dOp",
    "Clip8Op",
    "ThresholdOp",
    "NarrowAccOp",
    "I8",
    "I16",
    "I32",
]
