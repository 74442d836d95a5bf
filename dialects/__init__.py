"""The ``bnn`` dialect: the binary core ops (:mod:`.bnn`) and the integer/float support ops
(:mod:`.bnn_support`), which share no imports with each other."""

from xdsl.ir import Dialect

from bnnmlir.dialects.bnn import CORE_OPS
from bnnmlir.dialects.bnn_support import SUPPORT_OPS

BNN = Dialect("bnn", [*CORE_OPS, *SUPPORT_OPS], [])

__all__ = ["BNN"]
