"""What the importer knows about each value of the exported graph.

:class:`ValueInfo` is a small lattice describing every element of a tensor: ``float`` (nothing
known), ``int [lo, hi]`` (every element an integer in the range, held exactly), ``ternary``
({-1, 0, +1}) and ``binary`` (+-1). ``nonzero`` records a proof that no element is 0 (a range that
excludes 0, or an odd count of +-1 products).

A graph value is one of:

* a constant ``torch.Tensor`` (parameters, buffers, and everything computed from them only);
* :class:`Act`: a tensor computed at run time, held by an SSA value of the emitted IR;
* :class:`Sign`: the sign of an :class:`Act`, not materialized: binary layers consume it through
  ``bnn.binarize``; other consumers materialize it as float +-1 (see ``patterns.materialize``);
* :class:`PaddedSign`: a :class:`Sign` with an explicit constant padding (``constant_pad_nd``),
  waiting for the convolution that consumes it;
* :class:`Compare`: ``x >= 0`` (or another comparison with zero), waiting for its ``where``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from xdsl.dialects.builtin import TensorType
from xdsl.ir import Attribute, SSAValue


@dataclass(frozen=True)
class ValueInfo:
    """Facts about every element of a tensor (see the module docstring)."""

    integral: bool = False
    lo: float = -math.inf
    hi: float = math.inf
    nonzero: bool = False

    @staticmethod
    def integer(lo: float, hi: float, nonzero: bool = False) -> ValueInfo:
        return ValueInfo(True, lo, hi, nonzero or lo > 0 or hi < 0)

    @property
    def kind(self) -> str:
        if not self.integral:
            return "float"
        if self.lo >= -1 and self.hi <= 1:
            return "binary" if self.excludes_zero else "ternary"
        return f"int [{_num(self.lo)}, {_num(self.hi)}]"

    @property
    def excludes_zero(self) -> bool:
        return self.nonzero or self.lo > 0 or self.hi < 0

    @property
    def bounded(self) -> bool:
        return self.integral and math.isfinite(self.lo) and math.isfinite(self.hi)

    def plus(self, other: ValueInfo) -> ValueInfo:
        if not (self.integral and other.integral):
            return FLOAT
        return ValueInfo.integer(self.lo + other.lo, self.hi + other.hi)

    def clamp(self, lo: float, hi: float) -> ValueInfo:
        """Range after clamping to ``[lo, hi]`` (integral if the input and the bounds are)."""
        integral = self.integral and float(lo).is_integer() and float(hi).is_integer()
        if not integral:
            return ValueInfo(False, max(self.lo, lo), min(self.hi, hi))
        return ValueInfo.integer(min(max(self.lo, lo), hi), max(min(self.hi, hi), lo))


def _num(v: float) -> str:
    return str(int(v)) if math.isfinite(v) else str(v)


FLOAT = ValueInfo()
BINARY = ValueInfo.integer(-1, 1, nonzero=True)
TERNARY = ValueInfo.integer(-1, 1)
INT8 = ValueInfo.integer(-127, 127)


@dataclass
class Act:
    """A run-time tensor.

    ``shape`` is the PyTorch (logical) shape. Storage: a rank-4 tensor ``[N, C, H, W]`` is held
    channels-last ``[N, H, W, C]``; other ranks as they are, except a flattened rank-4 tensor
    (``flat = (C, H, W)``), held ``[N, H*W*C]`` in channels-last order, i.e. stored column
    ``(h*W + w)*C + c`` holds PyTorch column ``(c*H + h)*W + w``.
    """

    value: SSAValue
    shape: tuple[int, ...]
    info: ValueInfo
    flat: tuple[int, int, int] | None = None
    #: Proven bound of ``|compiled - PyTorch|`` per element from approximate binary layers
    #: upstream (``exact=False``), before float rounding of the float parts; ``inf``: unknown.
    dev: float = 0.0

    @property
    def element_type(self) -> Attribute:
        t = self.value.type
        assert isinstance(t, TensorType)
        return t.get_element_type()

    @property
    def stored_shape(self) -> tuple[int, ...]:
        return stored_shape(self.shape)


def stored_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    """Channels-last storage of a PyTorch shape (rank 4 only)."""
    if len(shape) == 4:
        n, c, h, w = shape
        return (n, h, w, c)
    return tuple(shape)


@dataclass
class Sign:
    """``sign(source)``, not materialized.

    ``ternary=False``: +1 where ``source >= 0``, else -1 (the bit convention; ``torch.sign`` of a
    source proven non-zero is also this). ``ternary=True``: ``torch.sign``, 0 where
    ``source == 0``.
    """

    source: Act
    ternary: bool = False
    #: Set when PyTorch's value is this sign only up to a proven deviation (see :class:`Approx`).
    approx: Approx | None = None

    @property
    def shape(self) -> tuple[int, ...]:
        return self.source.shape

    @property
    def info(self) -> ValueInfo:
        return TERNARY if self.ternary else BINARY


@dataclass(frozen=True)
class Approx:
    """A binarization that PyTorch computes only approximately.

    ``|PyTorch - sign| <= deviation`` elementwise wherever ``|x| <= domain`` and, if
    ``zero_as_plus``, ``x != 0`` (there ``torch.sign`` gives 0 where the binary form gives +1).
    ``idiom`` names the construct for the report; ``node``: the graph node of ``x``.
    """

    idiom: str
    deviation: float
    domain: float = math.inf
    zero_as_plus: bool = False
    node: str = ""


@dataclass
class PaddedSign:
    """``constant_pad_nd(sign, pads, value)``; ``pads`` is ``(top, bottom, left, right)``."""

    sign: Sign
    pads: tuple[int, int, int, int]
    value: float


@dataclass
class Compare:
    """``source <op> 0`` with ``op`` in ``ge``, ``gt``, ``le``, ``lt``."""

    source: Act | Sign
    op: str
