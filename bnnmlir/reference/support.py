"""Numpy references of the integer and float support ops (``dialects/bnn_support.py``).

Written from the op docstrings only, in plain numpy, sharing nothing with the lowering: integer
ops in ``int64``, float ops as ``float32`` array operations, each rounded once, in the documented
order (a sum over taps or channels is a Python loop of ``acc = acc + term``), so compiled code
can be compared with them bit for bit. Activations are NHWC; per-channel parameters index the
last axis.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

F32 = np.float32

# ---------------------------------------------------------------------------------------------
# Integer requantization and conversion
# ---------------------------------------------------------------------------------------------


def _clip8(v: np.ndarray) -> np.ndarray:
    return np.clip(v, -127, 127).astype(np.int8)


def requant8_affine(x, multiplier, offset, shift) -> np.ndarray:
    """``clamp((x * m[c] + b[c]) >> s[c], -127, 127)`` in int64 (``>>`` floors)."""
    x = np.asarray(x).astype(np.int64)
    m, b, s = (np.asarray(a, dtype=np.int64) for a in (multiplier, offset, shift))
    return _clip8(np.right_shift(x * m + b, s))


def requant8_breakpoints(x, base, step, breakpoints) -> np.ndarray:
    """``clamp(base[c] + step[c] * #{j : bp[c, j] <= x}, -127, 127)``; ``breakpoints`` is ``[C, B]``."""
    x = np.asarray(x).astype(np.int64)
    bp = np.asarray(breakpoints, dtype=np.int64)
    count = (bp <= x[..., None]).sum(axis=-1)
    return _clip8(np.asarray(base, np.int64) + np.asarray(step, np.int64) * count)


def requant8_table(x, lo: int, table) -> np.ndarray:
    """``table[c, clamp(x, lo, lo + D - 1) - lo]``; ``table`` is ``[C, D]``."""
    x = np.asarray(x).astype(np.int64)
    table = np.asarray(table, dtype=np.int64)
    d = table.shape[1]
    idx = np.clip(x, lo, lo + d - 1) - lo
    channel = np.arange(x.shape[-1]) if x.ndim else 0
    return _clip8(table[channel, idx])


def cast(x) -> np.ndarray:
    """Integers (or f32) to f32, round to nearest even."""
    return np.asarray(x).astype(F32)


# ---------------------------------------------------------------------------------------------
# Per-channel float maps
# ---------------------------------------------------------------------------------------------


def fma_f32(a, b, c) -> np.ndarray:
    """``a * b + c`` for float32 arrays with ONE rounding (what a fused multiply-add computes).

    ``a * b`` is exact in float64 (two 24-bit significands); ``p + c`` is split exactly into
    ``s + e`` (TwoSum, ``s`` the float64 rounding). Rounding ``s`` to float32 (``r``) is then the
    correct rounding of ``p + c`` unless ``s`` lies exactly halfway between ``r`` and its float32
    neighbour ``r'`` on the side of ``s`` (float64 rounding cannot cross such a midpoint, only land
    on it) and ``e != 0``: the exact value is then off the midpoint, on the side of ``r`` when
    ``e`` points from ``s`` to ``r`` (keep ``r``), else on the side of ``r'``. The midpoint test
    ``2s = r + r'`` is exact in float64 and holds for subnormal float32 values too.
    """
    a, b, c = (np.asarray(v, dtype=np.float64) for v in (a, b, c))
    p = a * b
    with np.errstate(invalid="ignore", over="ignore"):
        s = p + c
        bp = s - p
        e = (p - (s - bp)) + (c - bp)
        r = s.astype(F32)
        r64 = r.astype(np.float64)
        other = np.nextafter(r, np.where(s > r64, F32(np.inf), F32(-np.inf)))
        halfway = np.isfinite(r64) & (s != r64) & (2 * s == r64 + other.astype(np.float64))
        toward_r = (e > 0) == (r64 > s)
        return np.where(halfway & (e != 0) & ~toward_r, other, r).astype(F32)


def batch_norm_scale_shift(mean, var, gamma, beta, eps, fused: bool = True):
    """Per-channel ``scale = (1 / sqrt(var + eps)) * gamma`` and ``shift = beta - mean * scale``
    in float32 (``fused``: ``shift`` as one fused multiply-add)."""
    mean, var, gamma, beta = (np.asarray(v, dtype=F32) for v in (mean, var, gamma, beta))
    inv = F32(1.0) / np.sqrt(var + F32(eps))
    scale = inv * gamma
    shift = fma_f32(-mean, scale, beta) if fused else beta - mean * scale
    return scale, shift


def batch_norm(x, mean, var, gamma, beta, eps, fused: bool = True) -> np.ndarray:
    """``bnn.batch_norm``: ``fma(x, scale[c], shift[c])`` (one rounding per element, as PyTorch's
    CPU kernel); ``fused=False`` gives the two-rounding ``x * scale + shift`` for comparison."""
    x = np.asarray(x, dtype=F32)
    scale, shift = batch_norm_scale_shift(mean, var, gamma, beta, eps, fused)
    return fma_f32(x, scale, shift) if fused else x * scale + shift


def affine(x, scale, bias) -> np.ndarray:
    """``x * scale[c] + bias[c]``: an f32 multiply, then an f32 add."""
    return np.asarray(x, dtype=F32) * np.asarray(scale, dtype=F32) + np.asarray(bias, dtype=F32)


def affine_divide(x, divisor, bias) -> np.ndarray:
    """``x / divisor[c] + bias[c]``: an f32 division (IEEE, correctly rounded), then an f32 add."""
    with np.errstate(divide="ignore", invalid="ignore"):
        quotient = np.asarray(x, dtype=F32) / np.asarray(divisor, dtype=F32)
    return quotient + np.asarray(bias, dtype=F32)


# ---------------------------------------------------------------------------------------------
# Convolution, dense, pooling
# ---------------------------------------------------------------------------------------------


def _taps(size: int, out_size: int, stride: int, pad_lo: int, offset: int):
    """Input positions ``o*stride - pad_lo + offset`` for every output ``o``, clamped, and where
    they lie inside ``[0, size)``."""
    pos = np.arange(out_size) * stride - pad_lo + offset
    return np.clip(pos, 0, size - 1), (pos >= 0) & (pos < size)


def _out_size(size: int, kernel: int, stride: int, dilation: int, lo: int, hi: int) -> int:
    return (size + lo + hi - dilation * (kernel - 1) - 1) // stride + 1


def conv2d(x, w, bias=None, strides=(1, 1), dilations=(1, 1), padding=(0, 0, 0, 0)) -> np.ndarray:
    """``bnn.conv2d``: NHWC ``x``, ``w`` ``[O, KH, KW, C]``; ``acc = fma(x, w, acc)`` over ``kh, kw,
    c`` in that order (``c`` innermost) from ``+0.0``, out-of-input taps skipped, then ``+ bias``."""
    x = np.asarray(x).astype(F32)
    w = np.asarray(w, dtype=F32)
    n, h, wd, c = x.shape
    o, kh, kw, _ = w.shape
    (sh, sw), (dh, dw), (pt, pb, pl, pr) = strides, dilations, padding
    oh, ow = _out_size(h, kh, sh, dh, pt, pb), _out_size(wd, kw, sw, dw, pl, pr)
    acc = np.zeros((n, oh, ow, o), dtype=F32)
    for i in range(kh):
        rows, row_ok = _taps(h, oh, sh, pt, i * dh)
        for j in range(kw):
            cols, col_ok = _taps(wd, ow, sw, pl, j * dw)
            ok = (row_ok[:, None] & col_ok[None, :])[None, :, :, None]
            tap = x[:, rows][:, :, cols]  # [N, OH, OW, C]
            for k in range(c):
                acc = np.where(ok, fma_f32(tap[..., k, None], w[None, None, None, :, i, j, k], acc),
                               acc)
    return acc if bias is None else acc + np.asarray(bias, dtype=F32)


def conv2d_int(x, w, strides=(1, 1), dilations=(1, 1), padding=(0, 0, 0, 0)) -> np.ndarray:
    """Integer ``bnn.conv2d``: i8 ``x`` (NHWC) and ``w`` ``[O, KH, KW, C]``, the exact sum of
    products over the in-range taps (``int64``, no order to respect), returned as ``int32``."""
    x = np.asarray(x).astype(np.int64)
    w = np.asarray(w).astype(np.int64)
    n, h, wd, c = x.shape
    o, kh, kw, _ = w.shape
    (sh, sw), (dh, dw), (pt, pb, pl, pr) = strides, dilations, padding
    oh, ow = _out_size(h, kh, sh, dh, pt, pb), _out_size(wd, kw, sw, dw, pl, pr)
    acc = np.zeros((n, oh, ow, o), dtype=np.int64)
    for i in range(kh):
        rows, row_ok = _taps(h, oh, sh, pt, i * dh)
        for j in range(kw):
            cols, col_ok = _taps(wd, ow, sw, pl, j * dw)
            ok = (row_ok[:, None] & col_ok[None, :])[None, :, :, None]
            tap = x[:, rows][:, :, cols]  # [N, OH, OW, C]
            acc += np.where(ok, tap @ w[:, i, j, :].T, 0)
    return acc.astype(np.int32)


def dense_int(x, w) -> np.ndarray:
    """Integer ``bnn.dense``: ``x @ w.T`` of i8 operands, exact (``int64``), as ``int32``."""
    return (np.asarray(x).astype(np.int64) @ np.asarray(w).astype(np.int64).T).astype(np.int32)


def dense(x, w, bias=None) -> np.ndarray:
    """``bnn.dense``: ``acc = +0.0; acc = fma(x[n, c], w[o, c], acc)`` for ``c`` in order; ``+ bias``."""
    x = np.asarray(x).astype(F32)
    w = np.asarray(w, dtype=F32)
    acc = np.zeros((x.shape[0], w.shape[0]), dtype=F32)
    for k in range(x.shape[1]):
        acc = fma_f32(x[:, k, None], w[None, :, k], acc)
    return acc if bias is None else acc + np.asarray(bias, dtype=F32)


def pool2d(x, kind: str, kernel: Sequence[int], strides: Sequence[int],
           padding: Sequence[int] = (0, 0, 0, 0), count_include_pad: bool = False) -> np.ndarray:
    """``bnn.pool2d``: max (input type, padding never selected) or avg (f32 sum / count)."""
    x = np.asarray(x)
    n, h, wd, c = x.shape
    (kh, kw), (sh, sw), (pt, pb, pl, pr) = kernel, strides, padding
    oh, ow = _out_size(h, kh, sh, 1, pt, pb), _out_size(wd, kw, sw, 1, pl, pr)
    if kind == "max":
        low = -np.inf if x.dtype.kind == "f" else np.iinfo(x.dtype).min
        acc = np.full((n, oh, ow, c), low, dtype=x.dtype)
    elif kind == "avg":
        x = x.astype(F32)
        acc = np.zeros((n, oh, ow, c), dtype=F32)
        count = np.zeros((oh, ow), dtype=np.int64)
    else:
        raise ValueError(f"unknown pool kind {kind!r}")
    for i in range(kh):
        rows, row_ok = _taps(h, oh, sh, pt, i)
        for j in range(kw):
            cols, col_ok = _taps(wd, ow, sw, pl, j)
            ok2 = row_ok[:, None] & col_ok[None, :]
            ok = ok2[None, :, :, None]
            tap = x[:, rows][:, :, cols]
            if kind == "max":
                acc = np.where(ok, ieee_maximum(acc, tap), acc)
            else:
                acc = np.where(ok, acc + tap, acc)
                count += ok2
    if kind == "max":
        return acc
    divisor = np.full((oh, ow), kh * kw) if count_include_pad else count
    return acc / divisor.astype(F32)[None, :, :, None]


def global_avg_pool(x) -> np.ndarray:
    """``bnn.global_avg_pool``: f32 sum over ``h`` (outer), ``w`` (inner), divided by ``H*W``."""
    x = np.asarray(x).astype(F32)
    n, h, w, c = x.shape
    acc = np.zeros((n, c), dtype=F32)
    for i in range(h):
        for j in range(w):
            acc = acc + x[:, i, j, :]
    return acc / F32(h * w)


# ---------------------------------------------------------------------------------------------
# Element-wise and data movement
# ---------------------------------------------------------------------------------------------


def add(a, b) -> np.ndarray:
    """``bnn.add``: f32 sum, or the integer sum as i16 (i8 + i8) / i32 (wrapping)."""
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype == F32 and b.dtype == F32:
        return a + b
    total = a.astype(np.int64) + b.astype(np.int64)
    if a.dtype == np.int8 and b.dtype == np.int8:
        return total.astype(np.int16)
    return total.astype(np.uint64).astype(np.uint32).view(np.int32)


def mul(a, b) -> np.ndarray:
    """``bnn.mul``: the f32 product, ``b`` broadcast over its size-1 dimensions."""
    a, b = np.asarray(a, dtype=F32), np.asarray(b, dtype=F32)
    return (a * np.broadcast_to(b, a.shape)).astype(F32)


def ieee_maximum(a, b) -> np.ndarray:
    """IEEE-754 ``maximum``: NaN if either is NaN, and ``+0.0`` above ``-0.0``."""
    a, b = np.broadcast_arrays(np.asarray(a), np.asarray(b))
    if a.dtype.kind != "f":
        return np.maximum(a, b)
    pick_a = (a > b) | ((a == b) & ~np.signbit(a))
    with np.errstate(invalid="ignore"):  # a + b of inf and -inf: computed, not selected
        return np.where(np.isnan(a) | np.isnan(b), a + b, np.where(pick_a, a, b))


def ieee_minimum(a, b) -> np.ndarray:
    """IEEE-754 ``minimum``: NaN if either is NaN, and ``-0.0`` below ``+0.0``."""
    a, b = np.broadcast_arrays(np.asarray(a), np.asarray(b))
    if a.dtype.kind != "f":
        return np.minimum(a, b)
    pick_a = (a < b) | ((a == b) & np.signbit(a))
    with np.errstate(invalid="ignore"):  # a + b of inf and -inf: computed, not selected
        return np.where(np.isnan(a) | np.isnan(b), a + b, np.where(pick_a, a, b))


def relu(x) -> np.ndarray:
    """``maximum(x, 0)`` (IEEE for f32: ``-0.0 -> +0.0``, NaN stays NaN)."""
    x = np.asarray(x)
    return ieee_maximum(x, x.dtype.type(0))


def hardtanh(x, lo: float, hi: float) -> np.ndarray:
    """``minimum(maximum(x, lo), hi)``; on integers the (integral) bounds are exact."""
    x = np.asarray(x)
    if x.dtype == F32:
        return ieee_minimum(ieee_maximum(x, F32(lo)), F32(hi))
    return np.clip(x.astype(np.int64), int(lo), int(hi)).astype(x.dtype)


def prelu(x, slopes) -> np.ndarray:
    """``x if x >= 0 else slopes[c] * x`` in f32."""
    x = np.asarray(x, dtype=F32)
    return np.where(x >= 0, x, np.asarray(slopes, dtype=F32) * x)


def concat(arrays: Sequence[np.ndarray]) -> np.ndarray:
    return np.concatenate([np.asarray(a) for a in arrays], axis=-1)


def reshape(x, shape: Sequence[int]) -> np.ndarray:
    return np.ascontiguousarray(x).reshape(tuple(shape))


def transpose(x, permutation: Sequence[int]) -> np.ndarray:
    return np.ascontiguousarray(np.transpose(np.asarray(x), tuple(permutation)))
