"""Binary layers and int8-stream blocks (see the package documentation of :mod:`bnnmlir.nn`)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from bnnmlir.nn.functional import binarize, clip8, quantize_input

__all__ = [
    "BinaryConv2d",
    "BinaryLinear",
    "ChannelScale",
    "Clip8",
    "QuantizeInput",
    "clamp_latent_weights_",
]

_PAD_VALUES = (-1.0, 0.0, 1.0)


def checked_pair(value: int | Sequence[int], what: str, minimum: int) -> tuple[int, int]:
    """A layer argument ``value`` (an int or a pair) as a pair of integers ``>= minimum``."""
    if isinstance(value, int):
        pair = (value, value)
    else:
        pair = tuple(value)
        if len(pair) != 2:
            raise ValueError(f"{what} must be an int or a pair, got {value!r}")
    if not all(isinstance(v, int) and v >= minimum for v in pair):
        raise ValueError(f"{what} must hold integers >= {minimum}, got {value!r}")
    return pair  # type: ignore[return-value]


def _pads(padding: int | Sequence[int]) -> tuple[int, int, int, int]:
    """``padding`` as ``(top, bottom, left, right)``."""
    if isinstance(padding, int):
        pads = (padding,) * 4
    else:
        given = tuple(padding)
        if len(given) == 2:
            pads = (given[0], given[0], given[1], given[1])
        elif len(given) == 4:
            pads = given
        else:
            raise ValueError(
                "padding must be an int, a pair (h, w) or (top, bottom, left, right), "
                f"got {padding!r}"
            )
    if not all(isinstance(p, int) and p >= 0 for p in pads):
        raise ValueError(f"padding must hold integers >= 0, got {padding!r}")
    return pads  # type: ignore[return-value]


def _check_pad_value(pad_value: float) -> float:
    if float(pad_value) not in _PAD_VALUES:
        raise ValueError(f"pad_value must be -1.0, 0.0 or +1.0, got {pad_value!r}")
    return float(pad_value)


class BinaryConv2d(nn.Module):
    """2-D convolution of the binarized input with the binarized latent weights.

    ``forward(x) = conv2d(pad(sign(x), padding, pad_value), sign(weight), bias, stride, 0,
    dilation)`` with ``sign`` the ``bnnmlir::sign`` operator (``x >= 0`` -> +1). Without bias the
    result holds exact integers ``sum of +-1 products``, ``|out| <= fan_in``.

    Args:
        in_channels, out_channels: channel counts (any positive value; no multiple of 8 needed).
        kernel_size, stride, dilation: an int or a pair ``(h, w)``.
        padding: an int (all four sides), a pair ``(h, w)`` (``h`` at top and bottom, ``w`` at left
            and right, as ``nn.Conv2d``), or an explicit 4-tuple in the IR order
            ``(top, bottom, left, right)`` -- NOT ``F.pad``'s order.
        bias: add a learnable float bias per output channel (default ``False``).
        pad_value: what the padded border of the +-1 input holds: ``0.0`` (zero padding, border
            taps contribute nothing), ``+1.0`` or ``-1.0``.

    Attributes read by the importer (plain Python values, fixed at construction):
        ``in_channels``, ``out_channels``; ``kernel_size``, ``stride``, ``dilation`` as ``(h, w)``;
        ``padding`` as ``(top, bottom, left, right)`` (the ``padding`` property of
        ``bnn.bconv2d``); ``pad_value`` as a float in {-1.0, 0.0, 1.0} (``pad_value_int`` as int);
        ``weight`` the latent float parameter ``[out, in, kh, kw]`` (binarized by ``sign``);
        ``bias`` a ``[out]`` parameter or ``None``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | Sequence[int],
        stride: int | Sequence[int] = 1,
        padding: int | Sequence[int] = 0,
        dilation: int | Sequence[int] = 1,
        bias: bool = False,
        pad_value: float = 0.0,
    ):
        super().__init__()
        if in_channels < 1 or out_channels < 1:
            raise ValueError("in_channels and out_channels must be positive")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = checked_pair(kernel_size, "kernel_size", 1)
        self.stride = checked_pair(stride, "stride", 1)
        self.dilation = checked_pair(dilation, "dilation", 1)
        self.padding = _pads(padding)
        self.pad_value = _check_pad_value(pad_value)
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, *self.kernel_size))
        self.bias = nn.Parameter(torch.empty(out_channels)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Initialize like ``nn.Conv2d`` (Kaiming-uniform latent weights, small uniform bias)."""
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1 / math.sqrt(self.fan_in)
            nn.init.uniform_(self.bias, -bound, bound)

    @property
    def fan_in(self) -> int:
        """``K = in_channels * kh * kw``: the largest possible ``|out|`` (bias aside)."""
        return self.in_channels * self.kernel_size[0] * self.kernel_size[1]

    @property
    def pad_value_int(self) -> int:
        """``pad_value`` as the integer of ``bnn.bconv2d`` (-1, 0 or +1)."""
        return int(self.pad_value)

    @property
    def f_pad(self) -> tuple[int, int, int, int]:
        """``padding`` in ``F.pad`` order: ``(left, right, top, bottom)``."""
        top, bottom, left, right = self.padding
        return (left, right, top, bottom)

    def binary_weight(self) -> torch.Tensor:
        """The +-1 weights used by :meth:`forward` (``[out, in, kh, kw]``, float)."""
        return binarize(self.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xb = binarize(x)
        if any(self.padding):
            xb = F.pad(xb, self.f_pad, mode="constant", value=self.pad_value)
        return F.conv2d(xb, binarize(self.weight), self.bias, self.stride, 0, self.dilation)

    def extra_repr(self) -> str:
        text = (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, padding(t,b,l,r)={self.padding}, dilation={self.dilation}, "
            f"pad_value={self.pad_value}"
        )
        return text + (", bias=True" if self.bias is not None else "")


class BinaryLinear(nn.Module):
    """Fully connected layer on binarized inputs and binarized latent weights.

    ``forward(x) = linear(sign(x), sign(weight), bias)``; without bias the result holds exact
    integers with ``|out| <= in_features``. Attributes: ``in_features``, ``out_features``,
    ``weight`` (latent ``[out, in]``), ``bias`` (``[out]`` or ``None``).
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = False):
        super().__init__()
        if in_features < 1 or out_features < 1:
            raise ValueError("in_features and out_features must be positive")
        self.in_features = in_features
        self.out_features = out_features
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        self.bias = nn.Parameter(torch.empty(out_features)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Initialize like ``nn.Linear``."""
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1 / math.sqrt(self.in_features)
            nn.init.uniform_(self.bias, -bound, bound)

    @property
    def fan_in(self) -> int:
        """``K = in_features``: the largest possible ``|out|`` (bias aside)."""
        return self.in_features

    def binary_weight(self) -> torch.Tensor:
        """The +-1 weights used by :meth:`forward` (``[out, in]``, float)."""
        return binarize(self.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(binarize(x), binarize(self.weight), self.bias)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"bias={self.bias is not None}"
        )


class ChannelScale(nn.Module):
    """``x * scale[c]`` over the channel dimension (dimension 1): one float32 product.

    The per-output-channel scale ``alpha`` of published binary layers (``alpha * sign(W)``) after
    a :class:`BinaryConv2d` / :class:`BinaryLinear` (see :func:`bnnmlir.convert`); ``scale`` is a
    buffer (not trained: a BatchNorm after the layer learns the scale).
    """

    def __init__(self, scale: torch.Tensor):
        super().__init__()
        scale = torch.as_tensor(scale, dtype=torch.float32).detach().reshape(-1).clone()
        self.register_buffer("scale", scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale.reshape((-1,) + (1,) * (x.dim() - 2))

    def extra_repr(self) -> str:
        return f"channels={self.scale.numel()}"


class Clip8(nn.Module):
    """The BNN-Clip clipping block: ``clamp(round_half_even(x), -127, 127)``.

    The output is always an int8 value held in a float tensor (in training too; only the
    gradient differs from the identity: straight-through inside [-127, 127], zero outside).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return clip8(x)


class QuantizeInput(nn.Module):
    """Entry of an integer network: ``clip8(x / scale)``, a float image onto the int8 stream.

    ``scale`` (a positive float attribute) is the real value of one int8 step.
    """

    def __init__(self, scale: float):
        super().__init__()
        if not scale > 0:
            raise ValueError(f"scale must be positive, got {scale}")
        self.scale = float(scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return quantize_input(x, self.scale)

    def extra_repr(self) -> str:
        return f"scale={self.scale}"


@torch.no_grad()
def clamp_latent_weights_(model: nn.Module, bound: float = 1.0) -> None:
    """Clamp the latent weights of every binary layer of ``model`` to ``[-bound, bound]``.

    Call after each optimizer step (BinaryConnect-style): it keeps the latent weights where the
    sign STE still passes gradients. The binarized weights (their signs) do not change.
    """
    for module in model.modules():
        if isinstance(module, BinaryConv2d | BinaryLinear):
            module.weight.clamp_(-bound, bound)
