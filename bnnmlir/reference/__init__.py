"""The numpy reference of the ``bnn`` ops: the oracle of the tests.

It shares NO code with the compiler (passes, lowering, folding, :mod:`bnnmlir.bits`):

* :mod:`.binary`: the binary ops on the +-1 values themselves (a binary convolution is an ordinary
  integer convolution of +-1 tensors), with its own packing;
* :mod:`.support`: the integer and float support ops, written from the op docstrings;
* :mod:`.interpreter`: :func:`evaluate` runs tensor-level IR op by op with the two, through one
  explicit table of evaluations.
"""

from bnnmlir.reference.binary import (
    bconv2d,
    binarize,
    clip8,
    pack,
    sign_pm1,
    threshold,
    unpack,
)
from bnnmlir.reference.interpreter import evaluate, random_inputs

__all__ = [
    "bconv2d",
    "binarize",
    "clip8",
    "evaluate",
    "pack",
    "random_inputs",
    "sign_pm1",
    "threshold",
    "unpack",
]
