"""Int8 first and last layers: integer weights on the int8 stream, integer outputs.

:class:`Int8Conv2d` and :class:`Int8Linear` multiply int8-stream inputs (integers in
``[-127, 127]``, e.g. from :class:`~bnnmlir.nn.QuantizeInput` or :class:`~bnnmlir.nn.Clip8`) with
weights fake-quantized to integers in ``[-127, 127]``. Their output is the INTEGER convolution /
product, held in float32; the weight scale is not applied (a BatchNorm after the layer absorbs
it). See "Int8 stem and head" in :mod:`bnnmlir.nn`.

Exactness: with ``K`` the fan-in (``in_channels * kh * kw``, or ``in_features``) every partial
sum is an integer of magnitude at most ``127 * 127 * K``. When that is below ``2**24`` every
partial sum is exact in float32, so PyTorch's result does not depend on its summation order and
equals the integer result that bnnmlir computes in ``int32``. The layers refuse a larger fan-in
(:data:`MAX_FAN_IN` = 1040; a 7x7 stem on 3 channels has ``K = 147``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from bnnmlir.bits import CLIP8_MAX
from bnnmlir.nn.layers import checked_pair

__all__ = ["MAX_FAN_IN", "Int8Conv2d", "Int8Linear", "quantize_weight"]

EXACT_F32 = 2**24
"""Every integer of magnitude below this is exact in float32 (and so is every sum that stays below)."""

MAX_FAN_IN = (EXACT_F32 - 1) // (CLIP8_MAX * CLIP8_MAX)
"""Largest fan-in ``K`` with ``127 * 127 * K < 2**24`` (1040)."""


def check_fan_in(fan_in: int, layer: str) -> None:
    """Raise ``ValueError`` unless ``127 * 127 * fan_in < 2**24`` (float32-exact sums)."""
    if CLIP8_MAX * CLIP8_MAX * fan_in >= EXACT_F32:
        raise ValueError(
            f"{layer}: fan-in {fan_in} is too large for an exact integer layer: a sum of "
            f"{fan_in} products of int8 values reaches 127*127*{fan_in} = "
            f"{CLIP8_MAX * CLIP8_MAX * fan_in} >= 2**24, where float32 stops holding integers "
            f"exactly (the largest fan-in is {MAX_FAN_IN}); use fewer input channels or a "
            "smaller kernel"
        )


def quantize_weight(weight: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """``clamp(round(weight / scale), -127, 127)`` with a straight-through gradient.

    The forward value is an integer in ``[-127, 127]`` (float dtype): ``c + (round(c) - c)`` with
    ``c = clamp(weight / scale, -127, 127)`` is exactly ``round(c)`` in float32 (``round(c) - c``
    is exact, and so is adding it back). The gradient w.r.t. ``weight`` is ``1 / scale`` where
    ``|weight / scale| <= 127`` and 0 where the clamp saturates (rounding is ignored, as in
    :func:`~bnnmlir.nn.clip8`). ``scale`` broadcasts against ``weight`` and gets no gradient.
    """
    c = torch.clamp(weight / scale.detach(), -CLIP8_MAX, CLIP8_MAX)
    return c + (torch.round(c) - c).detach()


class _Int8Weights(nn.Module):
    """Latent float weights ``[out, ...]`` and their scale (shared by both layers)."""

    weight: nn.Parameter

    def _init_scale(self, weight_scale, out_channels: int) -> None:
        if weight_scale is None:
            self.register_buffer("fixed_scale", None)
            return
        scale = torch.as_tensor(weight_scale, dtype=torch.float32).reshape(-1)
        if scale.numel() not in (1, out_channels):
            raise ValueError(
                f"weight_scale must be a float or {out_channels} values (one per output "
                f"channel), got {scale.numel()} values"
            )
        if not bool(torch.all(torch.isfinite(scale) & (scale > 0))):
            raise ValueError(f"weight_scale must be positive and finite, got {weight_scale!r}")
        self.register_buffer("fixed_scale", scale.clone())

    def weight_scales(self) -> torch.Tensor:
        """The scale ``s[o]`` of each output channel (``[out]``): the fixed ``weight_scale``, or
        ``max |weight[o]| / 127`` (1 for an all-zero channel), without gradient."""
        out = self.weight.shape[0]
        if self.fixed_scale is not None:
            return self.fixed_scale.expand(out)
        peak = self.weight.detach().abs().reshape(out, -1).amax(dim=1)
        return torch.where(peak > 0, peak / CLIP8_MAX, torch.ones_like(peak))

    def integer_weight(self) -> torch.Tensor:
        """The weights the layer computes with: integers in ``[-127, 127]`` (float dtype)."""
        shape = (-1,) + (1,) * (self.weight.dim() - 1)
        return quantize_weight(self.weight, self.weight_scales().reshape(shape))


class Int8Conv2d(_Int8Weights):
    """Integer 2-D convolution of an int8-stream input with int8 fake-quantized weights.

    ``forward(x) = conv2d(x, q(weight), None, stride, padding, dilation)`` with
    ``q(w) = clamp(round(w / s), -127, 127)`` (straight-through gradient, see
    :func:`quantize_weight`). ``x`` should hold integers in ``[-127, 127]`` (the output of
    :class:`~bnnmlir.nn.QuantizeInput` or :class:`~bnnmlir.nn.Clip8`); the output is then the
    exact integer convolution, ``|out| <= 127 * 127 * fan_in < 2**24``. The scale is NOT applied
    to the output: follow the layer with a BatchNorm (and a Clip8).

    Args:
        in_channels, out_channels: channel counts; ``in_channels * kh * kw`` must be at most
            :data:`MAX_FAN_IN` (1040), else ``ValueError``.
        kernel_size, stride, dilation: an int or a pair ``(h, w)``.
        padding: an int or a pair ``(h, w)``: zero padding on both sides, as ``nn.Conv2d``.
        weight_scale: ``None`` (default): per output channel, ``s[o] = max |weight[o]| / 127``
            recomputed from the latent weights at every call; a float: one fixed scale for the
            layer; a sequence of ``out_channels`` floats: fixed per-channel scales.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | Sequence[int],
        stride: int | Sequence[int] = 1,
        padding: int | Sequence[int] = 0,
        dilation: int | Sequence[int] = 1,
        weight_scale: float | Sequence[float] | torch.Tensor | None = None,
    ):
        super().__init__()
        if in_channels < 1 or out_channels < 1:
            raise ValueError("in_channels and out_channels must be positive")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = checked_pair(kernel_size, "kernel_size", 1)
        self.stride = checked_pair(stride, "stride", 1)
        self.padding = checked_pair(padding, "padding", 0)
        self.dilation = checked_pair(dilation, "dilation", 1)
        check_fan_in(self.fan_in, "Int8Conv2d")
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, *self.kernel_size))
        self._init_scale(weight_scale, out_channels)
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))

    @property
    def fan_in(self) -> int:
        """``K = in_channels * kh * kw``."""
        return self.in_channels * self.kernel_size[0] * self.kernel_size[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.integer_weight(), None, self.stride, self.padding, self.dilation)

    def extra_repr(self) -> str:
        scale = "per-channel max" if self.fixed_scale is None else "fixed"
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, padding={self.padding}, dilation={self.dilation}, "
            f"weight_scale={scale}"
        )


class Int8Linear(_Int8Weights):
    """Integer fully connected layer: ``linear(x, q(weight))``, ``q`` as in :class:`Int8Conv2d`.

    For an int8-stream input the output is the exact integer product (``|out| <= 127 * 127 *
    in_features``); ``in_features`` must be at most :data:`MAX_FAN_IN` (1040). No bias and no
    scale in the output: as the last layer its integer outputs are the logits (the scale is a
    positive factor per class; with per-channel scales compare ``out * weight_scales()``), or
    follow it by a BatchNorm1d.
    """

    def __init__(self, in_features: int, out_features: int,
                 weight_scale: float | Sequence[float] | torch.Tensor | None = None):
        super().__init__()
        if in_features < 1 or out_features < 1:
            raise ValueError("in_features and out_features must be positive")
        self.in_features = in_features
        self.out_features = out_features
        check_fan_in(in_features, "Int8Linear")
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        self._init_scale(weight_scale, out_features)
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))

    @property
    def fan_in(self) -> int:
        return self.in_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.integer_weight())

    def extra_repr(self) -> str:
        scale = "per-channel max" if self.fixed_scale is None else "fixed"
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"weight_scale={scale}")
