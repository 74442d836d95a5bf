"""Helpers shared by the ``bnn`` op definitions (shape checks, value/buffer forms)."""

from __future__ import annotations

from collections.abc import Sequence

from xdsl.dialects.builtin import (
    DenseArrayBase,
    IntegerType,
    MemRefType,
    Signedness,
    TensorType,
    VectorType,
)
from xdsl.ir import Attribute, Operation, SSAValue
from xdsl.irdl import IRDLOperation, operand_def, opt_operand_def, opt_result_def
from xdsl.utils.exceptions import VerifyException

from bnnmlir.bits import conv_output_size, packed_words


def shape_of(t: Attribute) -> tuple[int, ...]:
    assert isinstance(t, TensorType | MemRefType)
    return tuple(t.get_shape())


def elem_of(t: Attribute) -> Attribute:
    assert isinstance(t, TensorType | MemRefType)
    return t.get_element_type()


def is_int(t: Attribute, width: int | None = None) -> bool:
    return (
        isinstance(t, IntegerType)
        and t.signedness.data == Signedness.SIGNLESS
        and (width is None or t.width.data == width)
    )


def vector_length(t: Attribute) -> int:
    assert isinstance(t, VectorType)
    n = 1
    for d in t.get_shape():
        n *= d
    return n


def describe(t: Attribute) -> str:
    return str(t)


class ShapedOpMixin:
    """Value/buffer form checks shared by the tensor-level ops.

    Subclasses define ``input``-like operands, an optional ``out`` operand and an optional
    ``result``; :meth:`io_types` returns (operand types, output type) after checking that the op is
    consistently in one form.
    """

    def _check_form(self, inputs: Sequence[SSAValue]) -> Attribute:
        op: IRDLOperation = self  # type: ignore[assignment]
        out = op.out  # type: ignore[attr-defined]
        result = op.result  # type: ignore[attr-defined]
        types = [v.type for v in inputs]
        if all(isinstance(t, TensorType) for t in types):
            if out is not None or result is None:
                raise VerifyException(
                    f"'{op.name}' on tensors takes no 'into' buffer and returns one tensor"
                )
            return result.type
        if all(isinstance(t, MemRefType) for t in types):
            if out is None or result is not None:
                raise VerifyException(
                    f"'{op.name}' on memrefs writes into an 'into' buffer and returns nothing"
                )
            if not isinstance(out.type, MemRefType):
                raise VerifyException(f"'{op.name}' 'into' operand must be a memref")
            return out.type
        raise VerifyException(f"'{op.name}' operands must be all tensors or all memrefs")

    def buffer_form(self, operands: Sequence[SSAValue], out: SSAValue) -> IRDLOperation:
        """This op in buffer form on ``operands`` (memrefs), writing ``into`` ``out``.

        The default suits ops whose operands are the inputs followed by one optional ``out``;
        ops with variadic or optional inputs override it.
        """
        op: IRDLOperation = self  # type: ignore[assignment]
        return type(op).create(
            operands=[*operands, out],
            result_types=[],
            properties=dict(op.properties),
            attributes=dict(op.attributes),
        )

    def output_type(self) -> TensorType | MemRefType:
        op: IRDLOperation = self  # type: ignore[assignment]
        t = op.result.type if op.result is not None else op.out.type  # type: ignore[attr-defined]
        assert isinstance(t, TensorType | MemRefType)
        return t


def check_int_array(op: IRDLOperation, name: str, arr: DenseArrayBase, n: int,
                    lo: int) -> tuple[int, ...]:
    """The ``n`` values of the ``i64`` array property ``name``, each at least ``lo``."""
    vals = tuple(arr.get_values())
    if len(vals) != n or any(v < lo for v in vals) or not is_int(arr.elt_type, 64):
        raise VerifyException(
            f"'{op.name}' {name} must be {n} i64 integers >= {lo}, got {list(vals)}"
        )
    return vals  # type: ignore[return-value]


class ConvGeometryMixin:
    """The window geometry of a convolution or pooling op, from its ``i64`` array properties
    ``strides`` ``[SH, SW]``, ``dilations`` ``[DH, DW]`` (1 if the op has none) and ``padding``
    ``[top, bottom, left, right]``."""

    @property
    def stride_hw(self) -> tuple[int, int]:
        return tuple(self.strides.get_values())  # type: ignore[attr-defined,return-value]

    @property
    def dilation_hw(self) -> tuple[int, int]:
        dilations = getattr(self, "dilations", None)
        return (1, 1) if dilations is None else tuple(dilations.get_values())  # type: ignore[return-value]

    @property
    def pads(self) -> tuple[int, int, int, int]:
        return tuple(self.padding.get_values())  # type: ignore[attr-defined,return-value]

    def verify_window(self, h: int, w: int, kh: int, kw: int) -> tuple[int, int]:
        """Check ``strides``, ``dilations`` and ``padding``, and that the dilated ``kh x kw``
        kernel fits the padded ``h x w`` input; return the output size ``(OH, OW)``."""
        op: IRDLOperation = self  # type: ignore[assignment]
        sh, sw = check_int_array(op, "strides", self.strides, 2, 1)  # type: ignore[attr-defined]
        dh, dw = check_int_array(op, "dilations", self.dilations, 2, 1)  # type: ignore[attr-defined]
        pt, pb, pl, pr = check_int_array(op, "padding", self.padding, 4, 0)  # type: ignore[attr-defined]
        oh = conv_output_size(h, kh, sh, dh, pt, pb)
        ow = conv_output_size(w, kw, sw, dw, pl, pr)
        if oh < 1 or ow < 1:
            raise VerifyException(
                f"'{op.name}' kernel {kh}x{kw} (dilation {dh}x{dw}) does not fit the padded "
                f"{h}x{w} input"
            )
        return oh, ow


def check_packed_output(op_name: str, in_shape: tuple[int, ...], out_type: Attribute) -> None:
    expected = in_shape[:-1] + (packed_words(in_shape[-1]),)
    if shape_of(out_type) != expected or not is_int(elem_of(out_type), 8):
        raise VerifyException(
            f"'{op_name}' packs {in_shape[-1]} channels into {expected[-1]} i8 words: expected "
            f"output shape {list(expected)} of i8, got {describe(out_type)}"
        )


def static_shape(op_name: str, t: Attribute) -> tuple[int, ...]:
    shape = shape_of(t)
    if any(d < 0 for d in shape):
        raise VerifyException(f"'{op_name}' needs static shapes, got {describe(t)}")
    return shape




UNARY_FORMAT = (
    "$input (`into` $out^)? attr-dict `:` type($input) (`,` type($out)^)? (`->` type($result)^)?"
)
"""Assembly of a one-input op: ``%r = op %x : T -> R`` or ``op %x into %o : T, O``."""


class UnaryShapedOp(ShapedOpMixin, IRDLOperation):
    """Base of the one-input tensor-level ops: an ``input``, an optional ``into`` buffer (buffer
    form) or a ``result`` (value form), and :data:`UNARY_FORMAT`. Subclasses add properties and
    a ``verify_``."""

    input = operand_def(TensorType | MemRefType)
    out = opt_operand_def(MemRefType)
    result = opt_result_def(TensorType)

    assembly_format = UNARY_FORMAT

    def __init__(self, input: SSAValue | Operation, result_type: Attribute | None = None,
                 out: SSAValue | Operation | None = None, *,
                 properties: dict[str, Attribute] | None = None):
        super().__init__(operands=[input, out], result_types=[result_type],
                         properties=properties or {})
