"""In-process execution of generated code on the host (llvmlite MCJIT).

The module is optimized for the host (CPU name and features included) and compiled with MCJIT.
Calls to the runtime (``bnnmlir_parallel_for`` ...) are resolved against the host build of the C
runtime, loaded once per process with ``load_library_permanently``.
"""

from __future__ import annotations

import ctypes
from collections.abc import Sequence
from functools import cache
from pathlib import Path

import llvmlite.binding as llvm
from xdsl.dialects.builtin import ModuleOp

from bnnmlir.backend.llvm_codegen import create_target_machine, optimize, to_llvm_ir
from bnnmlir.backend.runtime_build import build_host_shared_library
from bnnmlir.target import host_target


@cache
def load_host_runtime() -> ctypes.CDLL:
    """Build (or find in the cache) the host runtime, make its symbols visible to the JIT, and
    return it as a ctypes library (the same loaded copy the JIT-compiled code calls)."""
    path: Path = build_host_shared_library()
    llvm.load_library_permanently(str(path))
    return ctypes.CDLL(str(path), mode=ctypes.RTLD_GLOBAL)


class JitModule:
    """A module compiled for the host and loaded into this process.

    The execution engine (which owns the machine code) lives as long as this object: keep it
    alive while any address or ctypes function obtained from it may be called.
    """

    def __init__(self, module: ModuleOp | str, *, link_runtime: bool = True):
        target = host_target()
        ir = to_llvm_ir(module, target) if isinstance(module, ModuleOp) else module
        if link_runtime:
            self.runtime: ctypes.CDLL | None = load_host_runtime()
        else:
            self.runtime = None
        # The engine owns the machine (and the module): a new machine per module.
        machine = create_target_machine(target, jit=True)
        self._module = optimize(ir, target, machine)
        self._engine = llvm.create_mcjit_compiler(self._module, machine)
        self._engine.finalize_object()
        self._engine.run_static_constructors()

    @property
    def optimized_ir(self) -> str:
        return str(self._module)

    def function_address(self, name: str) -> int:
        """Address of the compiled function ``name``; ``KeyError`` if the module has none."""
        try:
            function = self._module.get_function(name)
        except NameError:
            raise KeyError(f"no function '{name}' in the JIT module") from None
        if function.is_declaration:
            raise KeyError(f"function '{name}' is only declared in the JIT module")
        return self._engine.get_function_address(name)

    def ctypes_function(
        self, name: str, argtypes: Sequence[type], restype: type | None = None
    ) -> ctypes._CFuncPtr:
        """The compiled function ``name`` as a ctypes callable with the given signature."""
        prototype = ctypes.CFUNCTYPE(restype, *argtypes)
        function = prototype(self.function_address(name))
        # The callable keeps the module alive: the engine must outlive every call.
        function._bnnmlir_jit_module = self
        return function
