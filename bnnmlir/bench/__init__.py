"""``bnnmlir bench``: the speed of compiled binary convolutions against their peers.

:mod:`.layers` (the benchmarked shapes and their data), :mod:`.host` (timing on the host against
PyTorch), :mod:`.mca` (``llvm-mca`` model of the aarch64 loops), :mod:`.compile` (compile time
of whole networks, cold and cached), :mod:`.command` (the command and its tables).
"""

from bnnmlir.bench.command import main

__all__ = ["main"]
