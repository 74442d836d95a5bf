"""The two custom PyTorch operators of bnnmlir, ``bnnmlir::sign`` and ``bnnmlir::clip8``.

The training layers (:mod:`bnnmlir.nn`) call them and the importer (:mod:`bnnmlir.frontend`)
recognizes them; importing this module registers them. They are registered with
:func:`torch.library.custom_op` (with a fake kernel and an autograd formula), so
``torch.export`` keeps each of them as ONE graph node, also after ``run_decompositions()``; the
importer matches ``node.target`` against :data:`SIGN_OP` and :data:`CLIP8_OP`.

Forward semantics (identical in training and evaluation):

* ``sign(x) = +1 if x >= 0 else -1`` (``-0.0`` gives +1), same dtype and shape as ``x``: the
  binarization of :mod:`bnnmlir.bits`.
* ``clip8(x) = clamp(round_half_even(x), -127, 127)``: an integer value of the int8 stream.

Gradients are straight-through estimators:

* ``d sign(x) / dx = 1 if |x| <= 1 else 0`` (the usual hard-tanh STE; for latent weights it stops
  updates of weights that left [-1, 1]);
* ``d clip8(x) / dx = 1 if -127 <= x <= 127 else 0`` (rounding is ignored, saturation is not).
"""

from __future__ import annotations

import torch

from bnnmlir.bits import CLIP8_MAX, CLIP8_MIN

__all__ = ["CLIP8_OP", "SIGN_OP"]


# --------------------------------------------------------------------------------------------
# bnnmlir::sign
# --------------------------------------------------------------------------------------------


@torch.library.custom_op("bnnmlir::sign", mutates_args=())
def _sign(x: torch.Tensor) -> torch.Tensor:
    one = torch.ones((), dtype=x.dtype, device=x.device)
    return torch.where(x >= 0, one, -one)


@_sign.register_fake
def _sign_fake(x: torch.Tensor) -> torch.Tensor:
    return torch.empty_like(x)


def _save_input(ctx, inputs, output) -> None:
    (x,) = inputs
    ctx.save_for_backward(x)


def _sign_backward(ctx, grad: torch.Tensor) -> torch.Tensor:
    (x,) = ctx.saved_tensors
    return grad * (x.abs() <= 1).to(grad.dtype)


_sign.register_autograd(_sign_backward, setup_context=_save_input)


# --------------------------------------------------------------------------------------------
# bnnmlir::clip8
# --------------------------------------------------------------------------------------------


@torch.library.custom_op("bnnmlir::clip8", mutates_args=())
def _clip8(x: torch.Tensor) -> torch.Tensor:
    return torch.clamp(torch.round(x), CLIP8_MIN, CLIP8_MAX)


@_clip8.register_fake
def _clip8_fake(x: torch.Tensor) -> torch.Tensor:
    return torch.empty_like(x)


def _clip8_backward(ctx, grad: torch.Tensor) -> torch.Tensor:
    (x,) = ctx.saved_tensors
    inside = (x >= CLIP8_MIN) & (x <= CLIP8_MAX)
    return grad * inside.to(grad.dtype)


_clip8.register_autograd(_clip8_backward, setup_context=_save_input)


SIGN_OP = torch.ops.bnnmlir.sign.default
"""The OpOverload an exported graph calls for a binarization (``node.target``)."""

CLIP8_OP = torch.ops.bnnmlir.clip8.default
"""The OpOverload an exported graph calls for a clipping block (``node.target``)."""
