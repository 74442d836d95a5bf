"""Binary AlexNet (Hubara et al., "Binarized Neural Networks", NIPS 2016; larq-zoo
``BinaryAlexNet``) in BNN-Clip form (random weights).

Five convolutions (11x11 stride 4 to 64 channels, then binary 5x5 to 192, 3x3 to 384, 384 and
256 channels; 3x3 stride-2 max pooling after the first, second and fifth) and three binary dense
layers (4096, 4096, 1000), each followed by BatchNorm. In BNN-Clip form:

* the first convolution (whose input, the image, is not binarized) is an int8 convolution on the
  quantized image, padded by 4 on every side (224x224 becomes 56x56);
* every BatchNorm is followed by a Clip8 (the int8 stream), and max pooling comes after it, on
  int8 values (larq-zoo pools before a BatchNorm without scale; for a positive scale, as there,
  max pooling commutes with the increasing BatchNorm and Clip8);
* the last dense layer gives the integer logits (no BatchNorm after it).
"""

from __future__ import annotations

import torch
from torch import nn

import bnnmlir.nn as bnn
from bnnmlir.models.imagenet_blocks import finish, int8_stem


def _binary_conv(in_channels: int, out_channels: int, kernel: int) -> list[nn.Module]:
    return [bnn.BinaryConv2d(in_channels, out_channels, kernel, padding=kernel // 2),
            nn.BatchNorm2d(out_channels), bnn.Clip8()]


def _binary_dense(in_features: int, out_features: int) -> list[nn.Module]:
    return [bnn.BinaryLinear(in_features, out_features), nn.BatchNorm1d(out_features), bnn.Clip8()]


def _pooled(size: int) -> int:
    """Side of a 3x3 stride-2 max pooling's output (no padding)."""
    return (size - 3) // 2 + 1


def binary_alexnet(classes: int = 1000, seed: int = 0, image_size: int = 224) -> nn.Module:
    """Binary AlexNet in BNN-Clip form for ``image_size`` x ``image_size`` images (at least
    64); see the module docstring."""
    if image_size < 64:
        raise ValueError(f"binary_alexnet needs images of at least 64x64, got {image_size}")
    torch.manual_seed(seed)
    side = _pooled(_pooled(_pooled((image_size + 8 - 11) // 4 + 1)))
    layers: list[nn.Module] = [
        int8_stem(64, 11, 4, padding=4), nn.MaxPool2d(3, stride=2),
        *_binary_conv(64, 192, 5), nn.MaxPool2d(3, stride=2),
        *_binary_conv(192, 384, 3), *_binary_conv(384, 384, 3), *_binary_conv(384, 256, 3),
        nn.MaxPool2d(3, stride=2), nn.Flatten(),
        *_binary_dense(256 * side * side, 4096), *_binary_dense(4096, 4096),
        bnn.BinaryLinear(4096, classes),
    ]
    return finish(nn.Sequential(*layers), seed)
