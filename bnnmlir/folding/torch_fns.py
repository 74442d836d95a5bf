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
