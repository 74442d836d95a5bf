"""Integer convolution and linear layers (int8 stems and heads, e.g. :class:`bnnmlir.nn.Int8Conv2d`).

A convolution or linear layer becomes the integer form of ``bnn.conv2d`` / ``bnn.dense`` (``i8``
input, ``i8`` weights, exact ``i32`` result) when, from the values alone:

* its input is a run-time tensor whose elements are integers in ``[-128, 127]`` (value lattice:
  ``int [lo, hi]``), e.g. the output of QuantizeInput or Clip8;
* its weights are constants, all integers in ``[-128, 127]``; there is no bias; ``groups = 1``;
* PyTorch's float32 result is exact: with ``m = max(|lo|, |hi|)``, every partial sum, in any
  order, is an integer of magnitude at most ``B = m * max_o sum_k |w[o, k]|``; when
  ``B <= 2**24`` float32 holds all of them exactly, so PyTorch computes the integer result
  whatever its summation order. Otherwise the layer stays a float layer (with a warning).

The result is marked ``int [lo_out, hi_out]`` with, per output channel ``o``,
``lo_o = sum_k min(w[o,k]*lo, w[o,k]*hi)`` and ``hi_o = sum_k max(...)`` (a tap that may fall in
the zero padding also allows 0), ``lo_out = min_o lo_o``, ``hi_out = max_o hi_o``: a sound
interval, so BatchNorm + Clip8 or BatchNorm + sign after the layer fold into integer ops on a
domain of ``hi_out - lo_out + 1`` values.

The value-range analysis of the passes (``passes/value_range.py``) derives the same interval from
the constant weights, so the folding passes see it without any help from the importer.
"""

from __future__ import annotations

import numpy as np
import torch
from xdsl.ir import SSAValue

from bnnmlir.frontend.builder import int_width
from bnnmlir.frontend.values import Act, ValueInfo

EXACT_F32 = 2**24
"""Integers of magnitude up to ``2**24`` (and sums staying there) are exact in float32."""


def int8_weights(w: torch.Tensor | np.ndarray) -> np.ndarray | None:
    """``w`` as ``int64`` if every element is an integer in ``[-128, 127]``, else ``None``."""
    if isinstance(w, torch.Tensor):
        w = w.detach().cpu().numpy()
    v = np.asarray(w)
    if v.size == 0 or v.dtype.kind != "f":
        return None
    v = v.astype(np.float64)
    if not (np.all(np.isfinite(v)) and np.all(v == np.round(v))):
        return None
    if v.min() < -128 or v.max() > 127:
        return None
    return v.astype(np.int64)


def int8_valued(act: Act) -> bool:
    """Whether ``act`` can be held as ``i8`` exactly: integers in ``[-128, 127]`` already stored as
    ``i8``, or integers in ``[-127, 127]`` of any type (converted by :func:`int8_input`)."""
    info = act.info
    if not (info.bounded and info.lo >= -128 and info.hi <= 127):
        return False
    return int_width(act.value) == 8 or info.lo >= -127


def int8_input(imp, act: Act) -> SSAValue:
    """``act`` (:func:`int8_valued`) as an ``i8`` tensor: itself, or an exact ``bnn.clip8``
    (identity on integers in ``[-127, 127]``) of an ``i16``/``i32``/``f32`` value."""
    assert int8_valued(act)
    if int_width(act.value) == 8:
        return act.value
    return imp.emit.clip8(act.value)


def product_interval(w: np.ndarray, lo: int, hi: int, may_skip: bool) -> tuple[int, int, int]:
    """``(lo_out, hi_out, B)`` of ``sum_k w[o, k] * x_k`` with ``x_k`` integers in ``[lo, hi]``
    (``w`` is ``[O, K]``); ``may_skip``: a term may be missing (zero padding)."""
    a, b = w * lo, w * hi
    low, high = np.minimum(a, b), np.maximum(a, b)
    if may_skip:
        low, high = np.minimum(low, 0), np.maximum(high, 0)
    bound = int((np.abs(w).sum(axis=1) * max(abs(lo), abs(hi))).max())
    return int(low.sum(axis=1).min()), int(high.sum(axis=1).max()), bound


def _exact_in_f32(imp, bound: int, what: str) -> bool:
    if bound <= EXACT_F32:
        return True
    imp.warn(f"integer input and int8 weights, but partial sums may reach {bound} > 2**24 "
             f"where float32 rounds: kept as a float {what}")
    return False


def integer_conv(imp, act: Act, w_ohwc: np.ndarray, shape, *, strides, dilations,
                 pads) -> Act | None:
    """The integer ``bnn.conv2d`` of ``act`` (see the module docstring), or ``None``."""
    w = int8_weights(w_ohwc)
    if w is None or not int8_valued(act):
        return None
    lo, hi, bound = product_interval(w.reshape(w.shape[0], -1), int(act.info.lo),
                                     int(act.info.hi), may_skip=any(pads))
    if not _exact_in_f32(imp, bound, "convolution"):
        return None
    x = int8_input(imp, act)
    value = imp.emit.int_conv2d(x, w, strides=strides, dilations=dilations, padding=pads)
    return Act(value, shape, ValueInfo.integer(lo, hi))


def integer_dense(imp, act: Act, cols: np.ndarray, shape) -> Act | None:
    """The integer ``bnn.dense`` of ``act`` with weights ``cols`` (``[O, C]`` in the stored
    column order), or ``None``."""
    w = int8_weights(cols)
    if w is None or not int8_valued(act):
        return None
    lo, hi, bound = product_interval(w, int(act.info.lo), int(act.info.hi), may_skip=False)
    if not _exact_in_f32(imp, bound, "linear layer"):
        return None
    return Act(imp.emit.int_dense(int8_input(imp, act), w), shape, ValueInfo.integer(lo, hi))
