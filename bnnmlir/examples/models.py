"""Example BNN-Clip networks built from :mod:`bnnmlir.nn` (random weights; no training here).

* :func:`bnn_clip_net`: a small network for the demo: int8 input, residual binary blocks whose
  outputs stay on the int8 stream, a binary dense head.
* :func:`bireal_net18` (and :func:`randomize_batchnorm`, :class:`ClipBlock`,
  :class:`BinaryHead`): re-exported from the model zoo, :mod:`bnnmlir.models`.
"""

from __future__ import annotations

import torch
from torch import nn

from bnnmlir.models.bireal import bireal_net18
from bnnmlir.models.imagenet_blocks import BinaryHead, ClipBlock, int8_stem, randomize_batchnorm


def bnn_clip_net(classes: int = 10, width: int = 32, seed: int = 0) -> nn.Module:
    """A small BNN-Clip network for 32x32 RGB images (CIFAR-10 shaped)."""
    torch.manual_seed(seed)
    model = nn.Sequential(
        int8_stem(width, 3, 1),
        ClipBlock(width, width),
        ClipBlock(width, 2 * width, stride=2),
        ClipBlock(2 * width, 2 * width),
        ClipBlock(2 * width, 4 * width - 3, stride=2),  # an odd channel count on purpose
        BinaryHead(4 * width - 3, classes),
    )
    return randomize_batchnorm(model, torch.Generator().manual_seed(seed)).eval()


__all__ = ["BinaryHead", "ClipBlock", "bireal_net18", "bnn_clip_net", "randomize_batchnorm"]
