"""Channel functions (``[D, C] float32 -> [D, C]``) built from PyTorch modules of a model.

The candidates must reach the module through the same float code path as the model's activations.
For an eval-mode BatchNorm on CPU (PyTorch 2.13) the result does not depend on the position of an
element nor on the batch/spatial sizes, but it DOES depend on the memory layout of the input:
contiguous (NCHW / NC) and channels-last inputs compute ``x * alpha + beta`` with per-channel
constants, while an input with other strides (e.g. a transposed view) goes through a generic kernel
that computes ``(x - mean) * invstd * weight + bias`` and rounds differently. :func:`per_channel`
feeds a contiguous tensor by default (what a convolution or a linear layer produces) and a
column-major view with ``contiguous=False``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from bnnmlir.bits import CLIP8_MAX, CLIP8_MIN
from bnnmlir.folding.domain import ChannelFn, FoldingError


def per_channel(
    op: Callable[[torch.Tensor], torch.Tensor],
    ndim: int = 2,
    channel_axis: int = 1,
    contiguous: bool = True,
) -> ChannelFn:
    """Wrap ``op`` (a module or function on ``ndim``-D tensors with channels at ``channel_axis``)
    as a channel function: candidates ``[D, C]`` become ``[D, 1.., C, 1..]`` (the domain along
    axis 0, every other axis of size 1), and the result is reshaped back to ``[D, C]``.

    ``contiguous=False`` passes a non-contiguous (column-major) view instead, to reproduce a model
    that feeds ``op`` a strided tensor (see the module docstring). An ``nn.Module`` still in
    training mode is rejected (its BatchNorm would use batch statistics).
    """
    if ndim < 2 or not -ndim <= channel_axis < ndim or channel_axis % ndim == 0:
        raise ValueError(
            f"channel axis {channel_axis} must be a non-batch axis of a {ndim}-D input"
        )
    if isinstance(op, torch.nn.Module) and op.training:
        raise FoldingError(f"{type(op).__name__} is in training mode; fold only eval-mode modules")
    axis = channel_axis % ndim

    def fn(x: torch.Tensor) -> torch.Tensor:
        shape = [x.shape[0]] + [1] * (ndim - 1)
        shape[axis] = x.shape[1]
        laid_out = x.contiguous() if contiguous else x.t().contiguous().t()
        return op(laid_out.view(shape)).reshape(x.shape)

    return fn


def clip8_float(y: torch.Tensor) -> torch.Tensor:
    """The float Clip8: round half to even (``torch.round``), then clamp to [-127, 127]."""
    return torch.clamp(torch.round(y), CLIP8_MIN, CLIP8_MAX)


def then_clip8(fn: ChannelFn) -> ChannelFn:
    """``clip8_float`` after ``fn``: the channel function that :func:`fold_clip8` folds."""
    return lambda x: clip8_float(fn(x))


# ---------------------------------------------------------------------------------------------
# The per-channel float ops of ``bnn-fold-to-integer``, as channel functions
# ---------------------------------------------------------------------------------------------
# Each takes the op's parameters (float32 arrays of ``C``) and returns the op on ``[D, C]`` float32
# candidates, computed by PyTorch. They share no code with the numpy reference of the ops, which
# the tests compare them with.


def batch_norm_torch(mean, var, gamma, beta, eps: float) -> ChannelFn:
    """``torch.nn.functional.batch_norm`` (eval) of the installed PyTorch: the ORIGINAL op.

    A contiguous ``[D, C]`` input takes PyTorch's per-channel ``x * alpha + beta`` kernel, the
    path of a convolution's output (strided inputs round differently, see the module docstring).
    """
    params = [torch.as_tensor(a, dtype=torch.float32) for a in (mean, var, gamma, beta)]
    return lambda x: torch.nn.functional.batch_norm(
        x.contiguous(), *params, training=False, momentum=0.0, eps=eps
    )


def _round_to_f32_once(value: torch.Tensor, error: torch.Tensor) -> torch.Tensor:
    """The float32 nearest to the exact ``value + error`` (``value`` float64, ``|error|`` below
    half an ulp of ``value``), ties to even, without double rounding.

    ``value.float()`` is correct unless ``value`` is exactly the midpoint of two adjacent
    float32s (a midpoint is a float64); then a non-zero ``error`` decides between them.
    """
    rounded = value.float()
    toward = torch.where(value >= rounded.double(), torch.inf, -torch.inf).float()
    other = torch.nextafter(rounded, toward)
    midpoint = (rounded.double() + other.double()) / 2 == value
    other_side = (error > 0) == (other.double() > rounded.double())
    return torch.where(midpoint & (error != 0) & other_side, other, rounded)


def fma_f32_torch(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """``a * b + c`` for float32 tensors with ONE rounding (a fused multiply-add).

    The product of two float32s is exact in float64; the float64 sum ``s`` is exact up to its
    rounding error ``e``, recovered exactly by Knuth's TwoSum; ``s + e`` is then rounded once.
    Non-finite inputs give what float32 arithmetic gives.
    """
    p = a.double() * b.double()
    c64 = c.double()
    s = p + c64
    v = s - p
    e = (p - (s - v)) + (c64 - v)
    finite = torch.isfinite(s) & torch.isfinite(e)
    return torch.where(finite, _round_to_f32_once(s, torch.where(finite, e, 0.0)), s.float())


def _f32_op(op: Callable, *args) -> torch.Tensor:
    """The float32 operation ``op`` correctly rounded: computed on the float64 values, then
    rounded once to float32. For ``+ - * /`` and ``sqrt`` of float32s float64 holds more than
    ``2 * 24 + 2`` bits, so the two roundings give the correctly rounded float32 (PyTorch's own
    float32 kernels may use approximate reciprocals)."""
    return op(*(torch.as_tensor(a, dtype=torch.float32).double() for a in args)).float()


def batch_norm_op(mean, var, gamma, beta, eps: float) -> ChannelFn:
    """``bnn.batch_norm`` as documented: ``scale = (1 / sqrt(var + eps)) * gamma`` and
    ``shift = fma(-mean, scale, beta)`` in float32, then ``fma(x, scale[c], shift[c])``."""
    mean, var, gamma, beta = (
        torch.as_tensor(a, dtype=torch.float32) for a in (mean, var, gamma, beta)
    )
    scale = _f32_op(torch.mul, _f32_op(torch.div, torch.ones_like(var),
                                       _f32_op(torch.sqrt, _f32_op(torch.add, var, eps))), gamma)
    shift = fma_f32_torch(-mean, scale, beta)
    return lambda x: fma_f32_torch(x, scale.expand_as(x), shift.expand_as(x))


def affine_torch(scale, bias) -> ChannelFn:
    """``x * scale[c] + bias[c]``: a float32 multiply, then a float32 add."""
    scale, bias = (torch.as_tensor(a, dtype=torch.float32) for a in (scale, bias))
    return lambda x: torch.add(torch.mul(x, scale), bias)


def divide_torch(divisor, bias) -> ChannelFn:
    """``x / divisor[c] + bias[c]``: a float32 (IEEE) division, then a float32 add."""
    divisor, bias = (torch.as_tensor(a, dtype=torch.float32) for a in (divisor, bias))
    return lambda x: torch.add(torch.div(x, divisor), bias)


def relu_torch() -> ChannelFn:
    return lambda x: torch.maximum(x, torch.zeros((), dtype=x.dtype))


def hardtanh_torch(lo: float, hi: float) -> ChannelFn:
    low, high = (torch.tensor(v, dtype=torch.float32) for v in (lo, hi))
    return lambda x: torch.minimum(torch.maximum(x, low), high)


def prelu_torch(slopes) -> ChannelFn:
    slopes = torch.as_tensor(slopes, dtype=torch.float32)
    return lambda x: torch.where(x >= 0, x, torch.mul(slopes, x))
