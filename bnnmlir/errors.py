"""The errors bnnmlir raises for input it cannot compile (no Python traceback reaches a user).

:class:`CompileError` is the base; the PyTorch frontend refines it for an operator without an
exact translation (or a module without one) and for an archive that is unsafe, too large or not
an archive at all.
"""

from __future__ import annotations


class CompileError(Exception):
    """A model or module that bnnmlir cannot compile; the message says which part and why."""


class UnsupportedOperationError(CompileError):
    """A node of the exported graph that has no exact translation to the ``bnn`` op set.

    The message names the ATen (or custom) operator, the module path that called it and the
    module's class, the line of the user's source that called it (never a line inside PyTorch or
    bnnmlir), and what would be needed to import it.
    """

    def __init__(self, op: str, module_path: str, source: str, reason: str, module_type: str = ""):
        self.op = op
        self.module_path = module_path
        self.module_type = module_type
        self.source = source
        self.reason = reason
        super().__init__(self._message())

    def _message(self) -> str:
        where = f"module '{self.module_path or '<root>'}'"
        details = ", ".join(d for d in (self.module_type, self.source) if d)
        if details:
            where += f" ({details})"
        return f"unsupported operation {self.op} in {where}: {self.reason}"


class UnsupportedModuleError(UnsupportedOperationError):
    """A node inside a module whose type has no translation as a whole (an ``nn.LSTM``, an
    attention layer...): the message names the module first, then the op where import stopped."""

    def _message(self) -> str:
        where = f", {self.source}" if self.source else ""
        return (f"{self.module_type} at '{self.module_path or '<root>'}' is not supported: "
                f"{self.reason} (import stopped at {self.op}{where})")


class UnsafeArchiveError(CompileError):
    """The archive holds something loading it would run, or something not known to be plain data."""


class ArchiveLimitError(UnsafeArchiveError):
    """The archive exceeds a size, count or compression-ratio limit."""


class NotAnArchiveError(CompileError):
    """The file is not a ``torch.export`` archive (the message says what it is)."""
