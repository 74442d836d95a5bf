"""The errors bnnmlir raises for input it cannot compile (no Python traceback reaches a user).

:class:`CompileError` is the base; the PyTorch frontend refines it for an operator without an
exact translation and for an archive that would need unpickling.
"""

from __future__ import annotations


class CompileError(Exception):
    """A model or module that bnnmlir cannot compile; the message says which part and why."""


class UnsupportedOperationError(CompileError):
    """A node of the exported graph that has no exact translation to the ``bnn`` op set.

    The message names the ATen (or custom) operator, the module path that called it, its source
    line, and what would be needed to import it.
    """

    def __init__(self, op: str, module_path: str, source: str, reason: str):
        self.op = op
        self.module_path = module_path
        self.source = source
        where = f"module '{module_path or '<root>'}'"
        if source:
            where += f" ({source})"
        super().__init__(f"unsupported operation {op} in {where}: {reason}")


class UnsafeArchiveError(CompileError):
    """The archive would need unpickling arbitrary objects to load."""
