"""Errors of the PyTorch importer."""

from __future__ import annotations

from bnnmlir.compiler import CompileError


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
