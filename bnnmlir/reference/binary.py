"""Reference semantics of the binary ``bnn`` ops in plain numpy.

This module shares NO code with the lowering or with :mod:`bnnmlir.bits`: it works on the +-1
values themselves (a binary convolution is an ordinary integer convolution of +-1 tensors, padded
with ``pad_value``), and does its own packing with ``numpy.packbits``. Tests compare compiled code
against it bit for bit.
"""

from __future__ import annotations

import numpy as np


def sign_pm1(x: np.ndarray) -> np.ndarray:
    """+1 where ``x >= 0`` (``-0.0`` included), -1 elsewhere, as ``int8``."""
    x = np.asarray(x)
    return np.where(x >= 0, 1, -1).astype(np.int8)


def pack(pm1: np.ndarray) -> np.ndarray:
    """Pack +-1 values along the last axis: -1 is bit 1, LSB first, unused bits 0 (``uint8``)."""
    pm1 = np.asarray(pm1)
    if not np.isin(pm1, (-1, 1)).all():
        raise ValueError("pack expects +-1 values")
    return np.packbits(pm1 < 0, axis=-1, bitorder="little")


def unpack(packed: np.ndarray, channels: int) -> np.ndarray:
    """The +-1 values (``int8``) held in the first ``channels`` bits of each packed row."""
    bits = np.unpackbits(np.asarray(packed, dtype=np.uint8), axis=-1, bitorder="little")
    return (1 - 2 * bits[..., :channels].astype(np.int8)).astype(np.int8)


def binarize(x: np.ndarray) -> np.ndarray:
    """``bnn.binarize``: packed bits of ``sign_pm1(x)`` along the last axis."""
    return pack(sign_pm1(x))


def bconv2d(
    x: np.ndarray,
    w: np.ndarray,
    strides: tuple[int, int] = (1, 1),
    dilations: tuple[int, int] = (1, 1),
    padding: tuple[int, int, int, int] = (0, 0, 0, 0),
    pad_value: int = 0,
) -> np.ndarray:
    """``bnn.bconv2d`` on +-1 values: ``x`` is ``[N, H, W, C]``, ``w`` is ``[O, KH, KW, C]``.

    ``padding`` is ``(top, bottom, left, right)``; positions outside the input read ``pad_value``
    (+1, -1 or 0). Returns ``int32`` ``[N, OH, OW, O]``.
    """
    x = np.asarray(x, dtype=np.int64)
    w = np.asarray(w, dtype=np.int64)
    if pad_value not in (-1, 0, 1):
        raise ValueError("pad_value must be -1, 0 or 1")
    n, h, wd, c = x.shape
    o, kh, kw, c2 = w.shape
    if c != c2:
        raise ValueError("input and weight channel counts differ")
    sh, sw = strides
    dh, dw = dilations
    top, bottom, left, right = padding
    xp = np.pad(
        x,
        ((0, 0), (top, bottom), (left, right), (0, 0)),
        mode="constant",
        constant_values=pad_value,
    )
    oh = (h + top + bottom - dh * (kh - 1) - 1) // sh + 1
    ow = (wd + left + right - dw * (kw - 1) - 1) // sw + 1
    out = np.zeros((n, oh, ow, o), dtype=np.int64)
    for i in range(kh):
        for j in range(kw):
            rows = xp[:, i * dh : i * dh + (oh - 1) * sh + 1 : sh, j * dw : j * dw + (ow - 1) * sw + 1 : sw, :]
            out += np.einsum("nhwc,oc->nhwo", rows, w[:, i, j, :])
    return out.astype(np.int32)


def clip8(x: np.ndarray) -> np.ndarray:
    """``bnn.clip8``: saturate to [-127, 127] as ``int8``; floats are first rounded half to even."""
    x = np.asarray(x)
    if x.dtype.kind == "f":
        return np.clip(np.rint(x.astype(np.float32)), -127, 127).astype(np.int8)
    return np.clip(x.astype(np.int64), -127, 127).astype(np.int8)


def threshold(x: np.ndarray, thresholds: np.ndarray, directions: np.ndarray) -> np.ndarray:
    """``bnn.threshold`` as +-1 values (``int8``) along the last (channel) axis."""
    x = np.asarray(x, dtype=np.int64)
    t = np.asarray(thresholds, dtype=np.int64)
    d = np.asarray(directions, dtype=np.int64)
    plus = np.where(d > 0, x >= t, x <= t)
    return np.where(plus, 1, -1).astype(np.int8)
