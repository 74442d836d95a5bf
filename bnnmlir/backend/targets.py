"""xDSL output targets (``-t NAME``) for llvm-dialect modules.

* ``llvm{target=host|aarch64,optimize=true}``: LLVM IR text, optimized at O3 for the target;
* ``aarch64-asm``, ``host-asm``: assembly text;
* ``aarch64-obj``, ``host-obj``: ELF objects. xDSL targets write to a text stream, so these write
  the bytes to ``path`` when given (``-t 'aarch64-obj{path="kernel.o"}'``), else to the binary stream
  underneath the output stream (a real file or stdout). A tool that owns the output file should
  call :meth:`ObjectTarget.emit_bytes` or :func:`write_object` instead.

The name ``llvm`` is also xDSL's own (unoptimized, host triple) target: a tool that wants ours
must register it over xDSL's (see :func:`bnnmlir_targets`), an ``xdsl.universe`` entry point
cannot define it a second time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, ClassVar

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp, StringAttr
from xdsl.utils.target import Target

from bnnmlir.backend.llvm_codegen import emit_assembly, emit_object, optimized_ir, to_llvm_ir
from bnnmlir.target import AARCH64, TARGET_ATTR, TargetInfo, get_target, host_target


@dataclass(frozen=True)
class LLVMIRTarget(Target):
    name = "llvm"

    target: str | None = None
    """``host`` or ``aarch64``; by default the module's ``llvm.target_triple`` (else the host)."""
    optimize: bool = True

    def emit(self, ctx: Context, module: ModuleOp, output: IO[str]) -> None:
        info = get_target(self.target or _module_target(module))
        text = optimized_ir(module, info) if self.optimize else to_llvm_ir(module, info)
        output.write(text)


def _module_target(module: ModuleOp) -> str:
    recorded = module.attributes.get(TARGET_ATTR)
    if isinstance(recorded, StringAttr):
        return recorded.data
    triple = module.attributes.get("llvm.target_triple")
    if isinstance(triple, StringAttr) and triple.data == AARCH64.triple:
        return AARCH64.name
    return "host"


def _target_for(module: ModuleOp, default: TargetInfo) -> TargetInfo:
    """``default``, or the variant of the same triple the module was lowered for (its
    ``bnn.target``: ``aarch64-dotprod`` code needs the dot-product feature to assemble)."""
    recorded = module.attributes.get(TARGET_ATTR)
    if isinstance(recorded, StringAttr):
        info = get_target(recorded.data)
        if info.triple == default.triple:
            return info
    return default


@dataclass(frozen=True)
class AssemblyTarget(Target):
    target_info: ClassVar[Callable[[], TargetInfo]]

    def emit(self, ctx: Context, module: ModuleOp, output: IO[str]) -> None:
        output.write(emit_assembly(module, _target_for(module, type(self).target_info())))


@dataclass(frozen=True)
class AArch64AsmTarget(AssemblyTarget):
    name = "aarch64-asm"
    target_info = staticmethod(lambda: AARCH64)


@dataclass(frozen=True)
class HostAsmTarget(AssemblyTarget):
    name = "host-asm"
    target_info = staticmethod(host_target)


def write_object(module: ModuleOp, target: TargetInfo, path: str | Path) -> None:
    """Compile ``module`` for ``target`` and write the ELF object to ``path``."""
    Path(path).write_bytes(emit_object(module, target))


@dataclass(frozen=True)
class ObjectTarget(Target):
    target_info: ClassVar[Callable[[], TargetInfo]]

    path: str | None = None

    def emit_bytes(self, module: ModuleOp) -> bytes:
        return emit_object(module, _target_for(module, type(self).target_info()))

    def emit(self, ctx: Context, module: ModuleOp, output: IO[str]) -> None:
        data = self.emit_bytes(module)
        if self.path is not None:
            Path(self.path).write_bytes(data)
            return
        binary = getattr(output, "buffer", None)
        if binary is None:
            raise ValueError(
                f"target {self.name} produces a binary object: pass "
                f"-t '{self.name}{{path=\"FILE\"}}' or use a tool that writes binary output"
            )
        output.flush()
        binary.write(data)
        binary.flush()


@dataclass(frozen=True)
class AArch64ObjTarget(ObjectTarget):
    name = "aarch64-obj"
    target_info = staticmethod(lambda: AARCH64)


@dataclass(frozen=True)
class HostObjTarget(ObjectTarget):
    name = "host-obj"
    target_info = staticmethod(host_target)


TARGET_CLASSES: tuple[type[Target], ...] = (
    LLVMIRTarget,
    AArch64AsmTarget,
    HostAsmTarget,
    AArch64ObjTarget,
    HostObjTarget,
)


def bnnmlir_targets() -> dict[str, Callable[[], type[Target]]]:
    """Target factories by name, in the form ``xDSLOptMain.available_targets`` uses."""
    return {cls.name: _factory(cls) for cls in TARGET_CLASSES}


def _factory(cls: type[Target]) -> Callable[[], type[Target]]:
    # xDSL tells new-style target factories by their empty parameter list.
    def factory() -> type[Target]:
        return cls

    return factory


get_all_targets = bnnmlir_targets
"""The name ``bnnmlir-opt`` imports (same as :func:`bnnmlir_targets`)."""
