"""Building the tensor-level IR: one ``bnn`` op at a time, each with its location and layer record.

:class:`BodyBuilder` appends ops to the body of ``func.func @forward``, computes their result
types, stamps every op with the current location (``NameLoc(module path, FileLineColLoc(...))``)
and records a :class:`LayerInfo` for every op that does work at run time.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from math import prod

import numpy as np
from xdsl.dialects import arith
from xdsl.dialects.builtin import (
    Float32Type,
    IntegerType,
    TensorType,
    UnknownLoc,
    f32,
    i8,
    i32,
)
from xdsl.ir import Attribute, Block, Operation, SSAValue

from bnnmlir.bits import conv_output_size, packed_words
from bnnmlir.dialects.bnn import BConv2dOp, BinarizeOp, Clip8Op
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
    ReshapeOp,
    TransposeOp,
    add_result_element,
)
from bnnmlir.ir_utils import numpy_to_dense, value_elem, value_shape


@dataclass(frozen=True)
class LayerInfo:
    """One emitted op, for the per-layer report.

    ``kind`` is ``binary`` (packed data: binarize, bconv2d), ``int8`` (integer data) or ``float``;
    ``macs`` counts multiply-accumulates (binary ones for bconv2d), ``weight_bytes`` the bytes of
    its parameters as the compiled program stores them (packed bits for bconv2d weights).
    """

    module_path: str
    kind: str
    op: str
    macs: int
    weight_bytes: int
    location: str


def tensor(shape: Sequence[int], elem: Attribute) -> TensorType:
    return TensorType(elem, list(shape))


def is_float(v: SSAValue) -> bool:
    return isinstance(value_elem(v), Float32Type)


def int_width(v: SSAValue) -> int | None:
    e = value_elem(v)
    return e.width.data if isinstance(e, IntegerType) else None


class BodyBuilder:
    """Appends ops to ``block``; see the module docstring."""

    def __init__(self, block: Block):
        self.block = block
        self.location: Attribute = UnknownLoc()
        self.module_path = ""
        self.layers: list[LayerInfo] = []

    @contextmanager
    def at(self, location: Attribute, module_path: str):
        saved = self.location, self.module_path
        self.location, self.module_path = location, module_path
        try:
            yield
        finally:
            self.location, self.module_path = saved

    def _add(self, op: Operation, *, macs: int = 0, weight_bytes: int = 0,
             record: bool = True) -> SSAValue:
        op.location = self.location
        self.block.add_op(op)
        if record:
            result = op.results[0]
            kind = "binary" if isinstance(op, BinarizeOp | BConv2dOp) else (
                "float" if is_float(result) or any(is_float(o) for o in op.operands) else "int8"
            )
            self.layers.append(LayerInfo(self.module_path, kind, op.name, int(macs),
                                         int(weight_bytes), str(self.location)))
        return op.results[0]

    # ---- constants and data movement ---------------------------------------------------------
    def constant(self, values: np.ndarray) -> SSAValue:
        values = np.ascontiguousarray(values)
        return self._add(arith.ConstantOp(numpy_to_dense(values)), record=False)

    def reshape(self, x: SSAValue, shape: Sequence[int]) -> SSAValue:
        if value_shape(x) == tuple(shape):
            return x
        return self._add(ReshapeOp(x, tensor(shape, value_elem(x))))

    def transpose(self, x: SSAValue, perm: Sequence[int]) -> SSAValue:
        if list(perm) == list(range(len(perm))):
            return x
        s = value_shape(x)
        return self._add(TransposeOp(x, perm, tensor([s[p] for p in perm], value_elem(x))))

    def concat(self, xs: Sequence[SSAValue]) -> SSAValue:
        s = value_shape(xs[0])
        out = (*s[:-1], sum(value_shape(x)[-1] for x in xs))
        return self._add(ConcatOp(list(xs), tensor(out, value_elem(xs[0]))))

    # ---- binary core --------------------------------------------------------------------------
    def binarize(self, x: SSAValue, *, record: bool = True) -> SSAValue:
        s = value_shape(x)
        return self._add(BinarizeOp(x, tensor((*s[:-1], packed_words(s[-1])), i8)), record=record)

    def packed_weight(self, w_ohwc: np.ndarray) -> SSAValue:
        """``bnn.binarize(arith.constant)`` of +-1 weights ``[O, KH, KW, C]`` (bnn-pack-weights
        folds the pair into a packed constant)."""
        return self.binarize(self.constant(w_ohwc.astype(np.int8)), record=False)

    def bconv2d(self, x: SSAValue, w_ohwc: np.ndarray, *, strides: Sequence[int],
                dilations: Sequence[int], padding: Sequence[int], pad_value: int) -> SSAValue:
        o, kh, kw, c = w_ohwc.shape
        w = self.packed_weight(w_ohwc)
        n, h, wd, _ = value_shape(x)
        oh = conv_output_size(h, kh, strides[0], dilations[0], padding[0], padding[1])
        ow = conv_output_size(wd, kw, strides[1], dilations[1], padding[2], padding[3])
        op = BConv2dOp(x, w, in_channels=c, strides=strides, dilations=dilations,
                       padding=padding, pad_value=pad_value,
                       result_type=tensor((n, oh, ow, o), i32))
        return self._add(op, macs=n * oh * ow * o * kh * kw * c,
                         weight_bytes=o * kh * kw * packed_words(c))

    def clip8(self, x: SSAValue) -> SSAValue:
        return self._add(Clip8Op(x, tensor(value_shape(x), i8)))

    # ---- integer / float support ---------------------------------------------------------------
    def cast(self, x: SSAValue) -> SSAValue:
        """``x`` as f32 (unchanged if it already is)."""
        if is_float(x):
            return x
        return self._add(CastOp(x, tensor(value_shape(x), f32)))

    def affine(self, x: SSAValue, scale: Sequence[float], bias: Sequence[float]) -> SSAValue:
        x = self.cast(x)
        return self._add(AffineOp(x, scale, bias, tensor(value_shape(x), f32)),
                         weight_bytes=8 * len(scale))

    def divide(self, x: SSAValue, divisor: Sequence[float], bias: Sequence[float]) -> SSAValue:
        """``x / divisor[c] + bias[c]`` (``bnn.affine`` in its division form)."""
        x = self.cast(x)
        return self._add(AffineOp.division(x, divisor, bias, tensor(value_shape(x), f32)),
                         weight_bytes=8 * len(divisor))

    def batch_norm(self, x: SSAValue, mean, var, gamma, beta, eps: float) -> SSAValue:
        x = self.cast(x)
        return self._add(BatchNormOp(x, mean, var, gamma, beta, eps, tensor(value_shape(x), f32)),
                         weight_bytes=16 * len(mean))

    def conv2d(self, x: SSAValue, w_ohwc: np.ndarray, bias: np.ndarray | None, *,
               strides: Sequence[int], dilations: Sequence[int], padding: Sequence[int]) -> SSAValue:
        if int_width(x) not in (None, 8):
            x = self.cast(x)
        o, kh, kw, c = w_ohwc.shape
        w = self.constant(w_ohwc.astype(np.float32))
        b = self.constant(bias.astype(np.float32)) if bias is not None else None
        n, h, wd, _ = value_shape(x)
        oh = conv_output_size(h, kh, strides[0], dilations[0], padding[0], padding[1])
        ow = conv_output_size(wd, kw, strides[1], dilations[1], padding[2], padding[3])
        op = Conv2dOp(x, w, b, strides=strides, dilations=dilations, padding=padding,
                      result_type=tensor((n, oh, ow, o), f32))
        return self._add(op, macs=n * oh * ow * o * kh * kw * c,
                         weight_bytes=4 * (w_ohwc.size + (0 if bias is None else bias.size)))

    def int_conv2d(self, x: SSAValue, w_ohwc: np.ndarray, *, strides: Sequence[int],
                   dilations: Sequence[int], padding: Sequence[int]) -> SSAValue:
        """Integer ``bnn.conv2d``: ``i8`` input ``x``, integer weights (stored ``i8``), ``i32``."""
        o, kh, kw, c = w_ohwc.shape
        w = self.constant(w_ohwc.astype(np.int8))
        n, h, wd, _ = value_shape(x)
        oh = conv_output_size(h, kh, strides[0], dilations[0], padding[0], padding[1])
        ow = conv_output_size(wd, kw, strides[1], dilations[1], padding[2], padding[3])
        op = Conv2dOp(x, w, None, strides=strides, dilations=dilations, padding=padding,
                      result_type=tensor((n, oh, ow, o), i32))
        return self._add(op, macs=n * oh * ow * o * kh * kw * c, weight_bytes=w_ohwc.size)

    def int_dense(self, x: SSAValue, w: np.ndarray) -> SSAValue:
        """Integer ``bnn.dense``: ``i8`` input ``x``, integer weights ``[O, C]`` (stored ``i8``)."""
        wv = self.constant(w.astype(np.int8))
        n = value_shape(x)[0]
        op = DenseOp(x, wv, None, result_type=tensor((n, w.shape[0]), i32))
        return self._add(op, macs=n * w.size, weight_bytes=w.size)

    def dense(self, x: SSAValue, w: np.ndarray, bias: np.ndarray | None) -> SSAValue:
        if int_width(x) not in (None, 8, 32):
            x = self.cast(x)
        wv = self.constant(w.astype(np.float32))
        b = self.constant(bias.astype(np.float32)) if bias is not None else None
        n = value_shape(x)[0]
        op = DenseOp(x, wv, b, result_type=tensor((n, w.shape[0]), f32))
        return self._add(op, macs=n * w.size,
                         weight_bytes=4 * (w.size + (0 if bias is None else bias.size)))

    def pool2d(self, x: SSAValue, kind: str, kernel: Sequence[int], strides: Sequence[int],
               padding: Sequence[int], count_include_pad: bool = False) -> SSAValue:
        if int_width(x) not in (None, 8, 32):
            x = self.cast(x)
        n, h, w, c = value_shape(x)
        oh = conv_output_size(h, kernel[0], strides[0], 1, padding[0], padding[1])
        ow = conv_output_size(w, kernel[1], strides[1], 1, padding[2], padding[3])
        elem = value_elem(x) if kind == "max" else f32
        op = Pool2dOp(x, kind, kernel, strides=strides, padding=padding,
                      count_include_pad=count_include_pad, result_type=tensor((n, oh, ow, c), elem))
        return self._add(op)

    def global_avg_pool(self, x: SSAValue) -> SSAValue:
        if int_width(x) not in (None, 8, 32):
            x = self.cast(x)
        n, _, _, c = value_shape(x)
        return self._add(GlobalAvgPoolOp(x, tensor((n, c), f32)))

    def add(self, a: SSAValue, b: SSAValue) -> SSAValue:
        if is_float(a) != is_float(b):
            a, b = self.cast(a), self.cast(b)
        elem = add_result_element(value_elem(a), value_elem(b))
        assert elem is not None
        return self._add(AddOp(a, b, tensor(value_shape(a), elem)))

    def mul(self, a: SSAValue, b: SSAValue) -> SSAValue:
        """``a * b`` in f32, ``b`` broadcast over its size-1 dimensions."""
        a, b = (v if is_float(v) else self.cast(v) for v in (a, b))
        return self._add(MulOp(a, b, tensor(value_shape(a), f32)))

    def relu(self, x: SSAValue) -> SSAValue:
        return self._add(ActivationOp.relu(x, tensor(value_shape(x), value_elem(x))))

    def hardtanh(self, x: SSAValue, lo: float, hi: float) -> SSAValue:
        if not is_float(x) and not (float(lo).is_integer() and float(hi).is_integer()):
            x = self.cast(x)
        return self._add(ActivationOp.hardtanh(x, lo, hi, tensor(value_shape(x), value_elem(x))))

    def prelu(self, x: SSAValue, slopes: Sequence[float]) -> SSAValue:
        x = self.cast(x)
        return self._add(ActivationOp.prelu(x, slopes, tensor(value_shape(x), f32)),
                         weight_bytes=4 * len(slopes))


def numel(shape: Sequence[int]) -> int:
    return int(prod(shape))
