"""The model zoo: 224x224 BNN-Clip networks (random weights), small BNN-Clip networks for
Fashion-MNIST and CIFAR-10, and a trained Fashion-MNIST model.

* :data:`ZOO`: :func:`bireal_net18`, :func:`quicknet`, :func:`binary_alexnet`: ImageNet-shaped
  networks (224x224 input, 1000 classes) in BNN-Clip form, random weights and random BatchNorm
  statistics; each compiles to code that equals PyTorch bit for bit;
* :func:`fashion_mnist_net`, :func:`cifar10_net`: each in three variants of one topology
  (``full-precision``, ``bnn`` with a 32-bit data flow, ``bnn-clip`` with the int8 stream; see
  :mod:`bnnmlir.models.blocks`); train them with ``bnnmlir train``.
* :func:`pretrained_fashion_mnist_bnn_clip`: the trained ``bnn-clip`` Fashion-MNIST network that
  ships with the package (bit-packed weights), eval-ready; :func:`fashion_mnist_samples`: the
  test images that ship with it.

Importing this package imports ``torch``.
"""

from bnnmlir.models.binary_alexnet import binary_alexnet
from bnnmlir.models.bireal import bireal_net18
from bnnmlir.models.blocks import VARIANTS
from bnnmlir.models.cifar10 import cifar10_net
from bnnmlir.models.fashion_mnist import fashion_mnist_net
from bnnmlir.models.pretrained import (
    fashion_mnist_samples,
    pretrained_fashion_mnist_bnn_clip,
)
from bnnmlir.models.quicknet import quicknet

ZOO = {"bireal_net18": bireal_net18, "quicknet": quicknet, "binary_alexnet": binary_alexnet}
"""The 224x224 networks of the zoo by name: ``ZOO[name](classes=1000, seed=0)``."""

ARCHITECTURES = {"fashion-mnist": fashion_mnist_net, "cifar10": cifar10_net}
"""The network of each dataset, by the dataset names of ``bnnmlir train``."""

__all__ = [
    "ARCHITECTURES",
    "VARIANTS",
    "ZOO",
    "binary_alexnet",
    "bireal_net18",
    "cifar10_net",
    "fashion_mnist_net",
    "fashion_mnist_samples",
    "pretrained_fashion_mnist_bnn_clip",
    "quicknet",
]
