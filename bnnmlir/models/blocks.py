"""Building blocks shared by the small networks of :mod:`bnnmlir.models`.

Every network comes in three variants of one topology (:data:`VARIANTS`):

``full-precision``
    float convolutions with a ReLU in front (pre-activation residual blocks), float head;
``bnn``
    binary convolutions (``sign`` of activations and weights, straight-through gradients), an
    int8 stem, a binary head, and a 32-bit float data flow between the binary layers;
``bnn-clip``
    the ``bnn`` network with a :class:`~bnnmlir.nn.Clip8` after every BatchNorm and every
    residual add: the data between layers is int8, and the compiled network is integer end to end.

A residual block is ``clip(clip(bn(conv3x3(x))) + shortcut(x))`` with ``shortcut(x) = x``, or
``clip(bn(conv1x1(x)))`` when the channel count changes. ``bnn`` and ``bnn-clip`` have the same
parameters (state dicts are interchangeable): stage 2 of the recipe loads a ``bnn`` state into a
``bnn-clip`` network.
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn

import bnnmlir.nn as bnn

VARIANTS = ("full-precision", "bnn", "bnn-clip")

INPUT_SCALE = 1.0 / 127.0
"""Value of one int8 step of the input: an image in [0, 1] becomes integers in [0, 127]."""


def check_variant(variant: str) -> str:
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; expected one of {', '.join(VARIANTS)}")
    return variant


def is_binary(variant: str) -> bool:
    return check_variant(variant) != "full-precision"


def clip_block(variant: str) -> nn.Module:
    """The clipping block of ``bnn-clip``; nothing in the other variants."""
    return bnn.Clip8() if check_variant(variant) == "bnn-clip" else nn.Identity()


def conv(variant: str, cin: int, cout: int, kernel: int) -> nn.Module:
    """A bias-free ``kernel x kernel`` convolution (stride 1, same padding) of the variant."""
    if is_binary(variant):
        return bnn.BinaryConv2d(cin, cout, kernel, padding=kernel // 2)
    return nn.Sequential(nn.ReLU(), nn.Conv2d(cin, cout, kernel, padding=kernel // 2, bias=False))


class ResidualBlock(nn.Module):
    """``clip(clip(bn(conv3x3(x))) + shortcut(x))``; see the module documentation."""

    def __init__(self, variant: str, cin: int, cout: int):
        super().__init__()
        self.conv = conv(variant, cin, cout, 3)
        self.bn = nn.BatchNorm2d(cout)
        self.clip = clip_block(variant)
        self.shortcut: nn.Module = nn.Identity()
        if cin != cout:
            self.shortcut = nn.Sequential(conv(variant, cin, cout, 1), nn.BatchNorm2d(cout),
                                          clip_block(variant))
        self.out_clip = clip_block(variant)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out_clip(self.clip(self.bn(self.conv(x))) + self.shortcut(x))


def stem(variant: str, cin: int, cout: int) -> nn.Sequential:
    """First layer: ``QuantizeInput -> Int8Conv2d 3x3 -> BatchNorm -> clip`` for the binary
    variants (exact division by :data:`INPUT_SCALE` inside the model), a float 3x3 convolution
    and BatchNorm for ``full-precision``."""
    if is_binary(variant):
        return nn.Sequential(bnn.QuantizeInput(INPUT_SCALE), bnn.Int8Conv2d(cin, cout, 3, padding=1),
                             nn.BatchNorm2d(cout), clip_block(variant))
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout))


def head(variant: str, features: int, classes: int) -> nn.Sequential:
    """Flatten, then a dense layer to the logits: binary (integer logits, ``|logit| <=
    features``) or float."""
    dense = (bnn.BinaryLinear(features, classes) if is_binary(variant)
             else nn.Sequential(nn.ReLU(), nn.Linear(features, classes)))
    return nn.Sequential(nn.Flatten(), dense)


class Network(nn.Sequential):
    """An ``nn.Sequential`` that knows its variant and the input it expects.

    ``logit_scale`` is the initial factor the training recipe applies to the logits before the
    softmax (integer logits of a binary head are large): ``1 / sqrt(features)`` for a binary
    head, 1 for a float one. It does not change the model's outputs or predictions.
    """

    def __init__(self, variant: str, input_shape: tuple[int, int, int], head_features: int,
                 *layers: nn.Module):
        super().__init__(*layers)
        self.variant = check_variant(variant)
        self.input_shape = input_shape
        self.logit_scale = head_features ** -0.5 if is_binary(variant) else 1.0


@contextlib.contextmanager
def seeded(seed: int | None):
    """Run the body (an initialization) with the global torch RNG seeded with ``seed``, and
    restore the RNG afterwards; ``None``: use the RNG as it is."""
    if seed is None:
        yield
        return
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        yield
