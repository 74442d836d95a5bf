"""Small BNN-Clip networks for Fashion-MNIST and CIFAR-10, and a trained Fashion-MNIST model.

* :func:`fashion_mnist_net`, :func:`cifar10_net`: each in three variants of one topology
  (``full-precision``, ``bnn`` with a 32-bit data flow, ``bnn-clip`` with the int8 stream; see
  :mod:`bnnmlir.models.blocks`); train them with ``bnnmlir train``.
* :func:`pretrained_fashion_mnist_bnn_clip`: the trained ``bnn-clip`` Fashion-MNIST network that
  ships with the package (bit-packed weights), eval-ready; :func:`fashion_mnist_samples`: the
  test images that ship with it.

Importing this package imports ``torch``.
"""

from bnnmlir.models.blocks import VARIANTS
from bnnmlir.models.cifar10 import cifar10_net
from bnnmlir.models.fashion_mnist import fashion_mnist_net
from bnnmlir.models.pretrained import (
    fashion_mnist_samples,
    pretrained_fashion_mnist_bnn_clip,
)

ARCHITECTURES = {"fashion-mnist": fashion_mnist_net, "cifar10": cifar10_net}
"""The network of each dataset, by the dataset names of ``bnnmlir train``."""

__all__ = [
    "ARCHITECTURES",
    "VARIANTS",
    "cifar10_net",
    "fashion_mnist_net",
    "fashion_mnist_samples",
    "pretrained_fashion_mnist_bnn_clip",
]
