"""The CIFAR-10 network: 3 x 32 x 32 RGB images in [0, 1], 10 classes.

``stem(3 -> 48) -> maxpool 2 -> block(48 -> 48) -> maxpool 2 -> block(48 -> 96) ->
block(96 -> 96) -> maxpool 2 -> flatten (96 x 4 x 4) -> dense -> 10 logits``
(blocks: :class:`~bnnmlir.models.blocks.ResidualBlock`; about 15 M multiply-accumulates per
image), small enough to train on two CPU cores.
"""

from __future__ import annotations

from torch import nn

from bnnmlir.models.blocks import Network, ResidualBlock, head, seeded, stem

CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
           "dog", "frog", "horse", "ship", "truck")
INPUT_SHAPE = (3, 32, 32)


def cifar10_net(variant: str = "bnn-clip", width: int = 48, seed: int | None = 0) -> Network:
    """The CIFAR-10 network in ``variant`` (``full-precision``, ``bnn`` or ``bnn-clip``), with
    ``width`` stem channels (the last blocks use 2x), initialized from ``seed``."""
    w = width
    with seeded(seed):
        return Network(
            variant, INPUT_SHAPE, 2 * w * 4 * 4,
            stem(variant, 3, w), nn.MaxPool2d(2),
            ResidualBlock(variant, w, w), nn.MaxPool2d(2),
            ResidualBlock(variant, w, 2 * w), ResidualBlock(variant, 2 * w, 2 * w),
            nn.MaxPool2d(2),
            head(variant, 2 * w * 4 * 4, len(CLASSES)),
        )
