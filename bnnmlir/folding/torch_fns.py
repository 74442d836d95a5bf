"""Channel functions (``[D, C] float32 -> [D, C]``) built from PyTorch modules of a model.

The float result of an eval-mode BatchNorm on CPU does not depend on where an element sits in the
tensor (checked for NCHW, channels-last, NC and NCL inputs of many shapes in the tests), so the
candidates may be laid out as ``[D, C, 1, 1]`` for a BatchNorm2d, ``[D, C]`` for a BatchNorm1d.
What matters is to call the very module (same parameters, same dtype ``float32``, eval mode).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from bnnmlir.bits import CLIP8_MAX, CLIP8_MIN
from bnnmlir.folding.domain import ChannelFn, FoldingError


def per_channel(op: Callable[[torch.Tensor], torch.Tensor], ndim: int = 2, channel_axis: int = 1) -> ChannelFn:
    """Wrap ``op`` (a module or function on ``ndim``-D tensors with channels at ``channel_axis``)
    as a channel function: candidates ``[D, C]`` become ``[D, 1.., C, 1..]`` (the domain along
    axis 0, every other axis of size 1), and the result is reshaped back to ``[D, C]``.
    An ``nn.Module`` still in training mode is rejected (its BatchNorm would use batch statistics).
    """
    if ndim < 2 or not -ndim <= channel_axis < ndim or channel_axis % ndim == 0:
        raise ValueError(f"channel axis {channel_axis} must be a non-batch axis of a {ndim}-D input")
    if isinstance(op, torch.nn.Module) and op.training:
        raise FoldingError(f"{type(op).__name__} is in training mode; fold only eval-mode modules")
    axis = channel_axis % ndim

    def fn(x: torch.Tensor) -> torch.Tensor:
        shape = [x.shape[0]] + [1] * (ndim - 1)
        shape[axis] = x.shape[1]
        return op(x.reshape(shape)).reshape(x.shape)

    return fn


def clip8_float(y: torch.Tensor) -> torch.Tensor:
    """The float Clip8 of a model: round half to even (``torch.round``), then clamp to [-127, 127]."""
    return torch.clamp(torch.round(y), CLIP8_MIN, CLIP8_MAX)


def then_clip8(fn: ChannelFn) -> ChannelFn:
    """``clip8_float`` after ``fn``: the channel function that :func:`fold_clip8` folds."""
    return lambda x: clip8_float(fn(x))
