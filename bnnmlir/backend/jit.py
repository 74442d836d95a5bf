"""In-process execution of generated code on the host (llvmlite MCJIT).

The module is optimized and compiled for the host (CPU name and features included) into an object
(taken from the compile cache when there is one, see :mod:`bnnmlir.backend.object_cache`), which
MCJIT links into this process.
Calls to the runtime (``bnnmlir_parallel_for`` ...) are resolved against the host build of the C
runtime, loaded once per process with ``load_library_permanently``.
"""

from __future__ import annotations

import ctypes
from collections.abc import MutableMapping, Sequence
from functools import cache
from pathlib import Path

import llvmlite.binding as llvm
from xdsl.dialects.builtin import ModuleOp

from bnnmlir.backend.llvm_codegen import (
    compile_object,
    create_target_machine,
    functions_of,
    initialize_llvm,
    timed,
    to_llvm_ir,
)
from bnnmlir.backend.object_bundle import unbundle
from bnnmlir.backend.object_cache import CacheOption
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

    def __init__(
        self,
        module: ModuleOp | str,
        *,
        link_runtime: bool = True,
        cache: CacheOption = False,
        times: MutableMapping[str, float] | None = None,
        keys: MutableMapping[str, str] | None = None,
    ):
        target = host_target()
        if isinstance(module, ModuleOp):
            with timed(times, "LLVM IR"):
                module = to_llvm_ir(module, target)
        code = compile_object(module, target, jit=True, cache=cache, times=times, keys=keys)
        self._load(code, functions_of(module), functions_of(module, "declare"), link_runtime)

    @classmethod
    def from_object(cls, code: bytes, functions: frozenset[str], declarations: frozenset[str],
                    *, link_runtime: bool = True) -> JitModule:
        """Load object code made by an earlier :class:`JitModule` (``functions``: the names it
        defines, ``declarations``: those it only declares)."""
        jit = cls.__new__(cls)
        jit._load(code, functions, declarations, link_runtime)
        return jit

    def _load(self, code: bytes, functions: frozenset[str], declarations: frozenset[str],
              link_runtime: bool) -> None:
        if link_runtime:
            self.runtime: ctypes.CDLL | None = load_host_runtime()
        else:
            self.runtime = None
        self.object_code = code
        self.functions = functions
        self.declarations = declarations
        initialize_llvm()
        # The engine owns the machine: a new one per engine; the code comes from the object.
        machine = create_target_machine(host_target(), jit=True)
        self._engine = llvm.create_mcjit_compiler(llvm.parse_assembly(""), machine)
        for part in unbundle(self.object_code):  # the parts' objects call each other
            self._engine.add_object_file(llvm.ObjectFileRef.from_data(part))
        self._engine.finalize_object()

    def function_address(self, name: str) -> int:
        """Address of the compiled function ``name``; ``KeyError`` if the module has none."""
        if name in self.declarations:
            raise KeyError(f"function '{name}' is only declared in the JIT module")
        if name not in self.functions:
            raise KeyError(f"no function '{name}' in the JIT module")
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
