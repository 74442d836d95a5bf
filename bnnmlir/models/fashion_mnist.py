"""The Fashion-MNIST network: 1 x 28 x 28 images in [0, 1], 10 classes.

``stem(1 -> 32) -> maxpool 2 -> block(32 -> 64) -> block(64 -> 64) -> maxpool 2 ->
block(64 -> 128) -> block(128 -> 128) -> flatten (128 x 7 x 7) -> dense -> 10 logits``
(blocks: :class:`~bnnmlir.models.blocks.ResidualBlock`; about 23 M multiply-accumulates per
image). Max pooling of int8 values stays int8, so ``bnn-clip`` is integer throughout.
"""

from __future__ import annotations

from torch import nn

from bnnmlir.models.blocks import Network, ResidualBlock, head, seeded, stem

CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
INPUT_SHAPE = (1, 28, 28)


def fashion_mnist_net(variant: str = "bnn-clip", width: int = 32, seed: int | None = 0) -> Network:
    """The Fashion-MNIST network in ``variant`` (``full-precision``, ``bnn`` or ``bnn-clip``),
    with ``width`` stem channels (blocks use 2x and 4x), initialized from ``seed``."""
    w = width
    with seeded(seed):
        return Network(
            variant, INPUT_SHAPE, 4 * w * 7 * 7,
            stem(variant, 1, w), nn.MaxPool2d(2),
            ResidualBlock(variant, w, 2 * w), ResidualBlock(variant, 2 * w, 2 * w),
            nn.MaxPool2d(2),
            ResidualBlock(variant, 2 * w, 4 * w), ResidualBlock(variant, 4 * w, 4 * w),
            head(variant, 4 * w * 7 * 7, len(CLASSES)),
        )
