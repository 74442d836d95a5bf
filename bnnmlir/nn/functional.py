"""The functions of :mod:`bnnmlir.nn`, built on the custom operators of :mod:`bnnmlir.custom_ops`
(their exact semantics and straight-through gradients are documented there)."""

from __future__ import annotations

import torch

from bnnmlir.custom_ops import CLIP8_OP, SIGN_OP

__all__ = [
    "CLIP8_OP",
    "SIGN_OP",
    "binarize",
    "clip8",
    "quantize_input",
]


# --------------------------------------------------------------------------------------------
# Public functions
# --------------------------------------------------------------------------------------------


def binarize(x: torch.Tensor) -> torch.Tensor:
    """+1 where ``x >= 0``, -1 elsewhere (floating point, same dtype); STE gradient on |x| <= 1."""
    if not x.is_floating_point():
        raise TypeError(f"binarize expects a floating-point tensor, got {x.dtype}")
    return SIGN_OP(x)


def clip8(x: torch.Tensor) -> torch.Tensor:
    """Round half to even and saturate to [-127, 127]; STE gradient inside the range."""
    if not x.is_floating_point():
        raise TypeError(f"clip8 expects a floating-point tensor, got {x.dtype}")
    return CLIP8_OP(x)


def quantize_input(x: torch.Tensor, scale: float) -> torch.Tensor:
    """Map a float tensor onto the int8 stream: ``clip8(x / scale)``.

    ``scale`` is the value of one int8 step (e.g. ``1/127`` for inputs in [-1, 1]); the
    division is done in ``x``'s dtype, then rounded half to even and saturated.
    """
    if not scale > 0:
        raise ValueError(f"scale must be positive, got {scale}")
    return clip8(x / scale)
