"""From an ``llvm``-dialect module to optimized LLVM IR, assembly and object code (llvmlite).

Every step takes a :class:`~bnnmlir.target.TargetInfo`: its triple, CPU and features configure
the LLVM target machine. The CPU features matter: without them (a generic x86-64) the vector
``llvm.ctpop`` becomes shift/and sequences instead of ``vpopcnt``.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterable, Iterator, MutableMapping
from contextlib import contextmanager
from functools import cache

import llvmlite.binding as llvm
import llvmlite.ir as ir
from xdsl.backend.llvm import convert as xdsl_convert
from xdsl.dialects import llvm as llvm_dialect
from xdsl.dialects.builtin import DenseIntOrFPElementsAttr, ModuleOp, i8
from xdsl.ir import Attribute, Region
from xdsl.utils.exceptions import VerifyException

from bnnmlir.backend.llvm_pipeline import (
    MachineSpec,
    Pipeline,
    initialize_llvm,
    machine_of,
    parse_ir,
    run_pipeline,
)
from bnnmlir.backend.object_cache import CacheOption, cache_key, resolve_cache
from bnnmlir.backend.object_bundle import bundle
from bnnmlir.backend.parallel_opt import (
    object_in_parts,
    objects_in_parts,
    only_internal_constants,
    optimize_in_parts,
)
from bnnmlir.target import TargetInfo

PIPELINE = Pipeline()
"""The pipeline of :func:`optimize` (a module attribute, so a benchmark can compare two)."""
LLVMModule = ModuleOp | str | llvm.ModuleRef
"""What the emit functions accept: an llvm-dialect module, LLVM IR text, or an llvmlite module
(taken as already optimized)."""


def machine_spec(target: TargetInfo, *, jit: bool = False) -> MachineSpec:
    """The target machine of ``target`` (see :func:`create_target_machine`)."""
    return MachineSpec(target.triple, target.cpu, target.features, jit)


def create_target_machine(target: TargetInfo, *, jit: bool = False) -> llvm.TargetMachine:
    """A new LLVM target machine for ``target`` (-O3 code generation; position-independent code
    unless ``jit``). An MCJIT engine takes ownership of the machine it is given: give it a new
    one, never the shared machine of :func:`target_machine`."""
    return machine_of(machine_spec(target, jit=jit))


@cache
def target_machine(target: TargetInfo) -> llvm.TargetMachine:
    """The shared (cached) target machine used to emit assembly and objects for ``target``."""
    return create_target_machine(target)


def check_definitions_precede_uses(region: Region, defined: set | None = None) -> None:
    """Raise ``VerifyException`` if an operand is used before its definition (in block order).

    xDSL does not check dominance, and its LLVM IR conversion translates ops in block order, so
    an operand that is not yet defined there would otherwise fail with a ``KeyError``."""
    defined = set() if defined is None else defined
    for block in region.blocks:
        defined.update(block.args)
        for op in block.ops:
            for operand in op.operands:
                if operand not in defined:
                    name = f"%{operand.name_hint}" if operand.name_hint else "an operand"
                    raise VerifyException(
                        f"'{op.name}' uses {name} before its definition: LLVM IR needs every "
                        "value defined before its first use"
                    )
            for nested in op.regions:
                check_definitions_precede_uses(nested, defined)
            defined.update(op.results)
def _byte_initializer(value: object, global_type: Attribute) -> ir.Constant | None:
    """The initializer of an ``[N x i8]`` global with a dense value, made from the value's bytes
    as ONE llvmlite constant (a splat is repeated); ``None`` for any other global."""
    if not (
        isinstance(value, DenseIntOrFPElementsAttr)
        and isinstance(global_type, llvm_dialect.LLVMArrayType)
        and global_type.type == i8
        and value.get_element_type() == i8
    ):
        return None
    count = global_type.size.data
    data = value.data.data
    if len(data) == 1:
        data = data * count
    if len(data) != count:
        return None
    return ir.Constant(ir.ArrayType(ir.IntType(8), count), bytearray(data))


def to_llvm_module(module: ModuleOp, triple: str, data_layout: str = "") -> ir.Module:
    """The llvmlite module of an llvm-dialect module.

    Like xDSL's ``convert_module``, whose function translation it uses, except for the constant
    byte arrays (weights): their initializer is built from the attribute's bytes in one object,
    where xDSL makes one llvmlite constant per element; and a function with ``no_inline`` is
    ``noinline``.
    """
    llvm_module = ir.Module()
    llvm_module.triple = triple
    if data_layout:
        llvm_module.data_layout = data_layout
    functions = []
    for op in module.ops:
        if isinstance(op, llvm_dialect.FuncOp):
            functions.append(op)
            continue
        if not isinstance(op, llvm_dialect.GlobalOp):
            raise NotImplementedError(f"Conversion not implemented for op: {op.name}")
        initializer = _byte_initializer(op.value, op.global_type)
        if initializer is None:
            xdsl_convert._convert_global(op, llvm_module)
            continue
        variable = ir.GlobalVariable(
            llvm_module, initializer.type, name=op.sym_name.data, addrspace=op.addr_space.value.data
        )
        variable.linkage = op.linkage.linkage.data
        variable.global_constant = op.constant is not None
        variable.initializer = initializer
    for op in functions:
        xdsl_convert._declare_func(op, llvm_module)
        if op.no_inline is not None:
            llvm_module.get_global(op.sym_name.data).attributes.add("noinline")
    for op in functions:
        xdsl_convert._convert_func(op, llvm_module)
    return llvm_module


def to_llvm_ir(module: ModuleOp, target: TargetInfo) -> str:
    """LLVM IR text of an llvm-dialect module, with the triple and data layout of ``target``."""
    check_definitions_precede_uses(module.body)
    machine = target_machine(target)
    return str(to_llvm_module(module, target.triple, str(machine.target_data)))


ARCH_INTRINSIC_PREFIXES = (
    "aarch64",
    "arm",
    "x86",
    "ppc",
    "riscv",
    "wasm",
    "nvvm",
    "amdgcn",
    "mips",
)
"""Intrinsic name spaces (``llvm.<prefix>.*``) that only one architecture can select."""


def _intrinsic_prefix_of(triple: str) -> str:
    arch = triple.split("-", 1)[0]
    if arch in ("x86_64", "i386", "i686"):
        return "x86"
    if arch in ("aarch64", "arm64"):
        return "aarch64"
    return arch


def check_intrinsics(module: llvm.ModuleRef, target: TargetInfo) -> None:
    """Raise ``ValueError`` if ``module`` calls an intrinsic of another architecture than
    ``target``'s: LLVM would abort the whole process ("Cannot select") instead of failing."""
    check_intrinsic_names((function.name for function in module.functions), target)


_INTRINSIC_REFERENCE = re.compile(r'@(?:"(llvm\.[^"]+)"|(llvm\.[-\w.$]+))')


def referenced_intrinsics(ir: str) -> set[str]:
    """Every ``@llvm.*`` name that LLVM IR text mentions: LLVM accepts calls of intrinsics the
    text does not declare, so the ``declare`` lines are not enough."""
    return {a or b for a, b in _INTRINSIC_REFERENCE.findall(ir)}


def check_intrinsic_names(names: Iterable[str], target: TargetInfo) -> None:
    """:func:`check_intrinsics` on the names of a module's functions."""
    own = _intrinsic_prefix_of(target.triple)
    for name in names:
        parts = name.split(".")
        foreign = len(parts) > 2 and parts[0] == "llvm" and parts[1] != own
        if foreign and parts[1] in ARCH_INTRINSIC_PREFIXES:
            raise ValueError(
                f"intrinsic '{name}' is specific to {parts[1]} and cannot be "
                f"compiled for {target.name} ({target.triple})"
            )


PARALLEL_MIN_CHARS = 300_000
"""LLVM IR text shorter than this is optimized in this process alone: a worker process takes
about 0.1 s to start, and LLVM optimizes and compiles about 0.8 M characters of our IR per second
(the demo network for aarch64, 0.78 M: 0.92 s in one process, 0.54 s in two)."""


def optimization_parts(ir: str | llvm.ModuleRef) -> int:
    """Into how many processes :func:`optimize` splits ``ir``: one per core this process may run
    on (``$BNNMLIR_LLVM_JOBS`` if set), for LLVM IR text of at least :data:`PARALLEL_MIN_CHARS`
    characters defining several functions, whose globals are all internal constants (the
    compiler's own: weights, tables); else 1."""
    if not isinstance(ir, str) or len(ir) < PARALLEL_MIN_CHARS or not only_internal_constants(ir):
        return 1
    return max(1, min(compile_jobs(), len(functions_of(ir))))


def compile_jobs() -> int:
    """Processes a compile may use: ``$BNNMLIR_LLVM_JOBS`` if set, else one per core this
    process may run on."""
    jobs = os.environ.get("BNNMLIR_LLVM_JOBS", "").strip()
    if jobs and not jobs.isdigit():
        raise ValueError(f"BNNMLIR_LLVM_JOBS must be a positive number of processes, got {jobs!r}")
    if jobs:
        return max(1, int(jobs))
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, cores or 1)


def optimize(
    ir: str | llvm.ModuleRef, target: TargetInfo, machine: llvm.TargetMachine | None = None,
    *, jit: bool = False,
) -> llvm.ModuleRef:
    """Run :data:`PIPELINE` (the new pass manager's -O3, see :class:`Pipeline`) on ``ir`` for
    ``target`` (with ``machine``, by default the shared one; ``jit``: the kind of ``machine``);
    verify the result. Large text of several functions is optimized in
    :func:`optimization_parts` processes (:mod:`bnnmlir.backend.parallel_opt`)."""
    parts = optimization_parts(ir)
    if parts > 1:  # each part is parsed and verified in its process, the linked module here
        assert isinstance(ir, str)
        check_intrinsic_names(referenced_intrinsics(ir), target)
        return optimize_in_parts(ir, machine_spec(target, jit=jit), PIPELINE, parts)
    module = parse_ir(ir) if isinstance(ir, str) else ir
    check_intrinsics(module, target)
    run_pipeline(module, machine or target_machine(target), PIPELINE, target.triple)
    return module


def as_optimized_module(module: LLVMModule, target: TargetInfo) -> llvm.ModuleRef:
    if isinstance(module, ModuleOp):
        module = to_llvm_ir(module, target)
    if isinstance(module, str):
        return optimize(module, target)
    check_intrinsics(module, target)
    return module


def optimized_ir(module: LLVMModule, target: TargetInfo) -> str:
    """Optimized LLVM IR text."""
    return str(as_optimized_module(module, target))


def emit_assembly(module: LLVMModule, target: TargetInfo) -> str:
    """Assembly text for ``target`` (a module that is not an llvmlite module is optimized first)."""
    return target_machine(target).emit_assembly(as_optimized_module(module, target))


@contextmanager
def timed(times: MutableMapping[str, float] | None, name: str) -> Iterator[None]:
    """Add the wall time of the block to ``times[name]`` (nothing when ``times`` is None)."""
    start = time.perf_counter()
    try:
        yield
    finally:
        if times is not None:
            times[name] = times.get(name, 0.0) + time.perf_counter() - start


def compile_object(
    module: LLVMModule,
    target: TargetInfo,
    *,
    jit: bool = False,
    cache: CacheOption = False,
    times: MutableMapping[str, float] | None = None,
    keys: MutableMapping[str, str] | None = None,
) -> bytes:
    """Object code of ``module`` for ``target``: position-independent ELF, or with ``jit`` the
    object MCJIT loads in this process. ``cache`` (see :func:`resolve_cache`) keeps the bytes on
    disk keyed on the unoptimized LLVM IR text, so a second compile skips LLVM. ``times`` gets
    the wall time of each step (``LLVM IR``, ``LLVM opt``, ``LLVM codegen``, or ``LLVM
    opt+codegen`` for a module compiled in parts) and ``cache hit``
    (1.0 or 0.0) when a cache is used; ``keys[object_kind(jit)]`` the key of the entry."""
    machine = create_target_machine(target, jit=True) if jit else target_machine(target)
    if isinstance(module, llvm.ModuleRef):
        check_intrinsics(module, target)
        with timed(times, "LLVM codegen"):
            return machine.emit_object(module)
    if isinstance(module, ModuleOp):
        with timed(times, "LLVM IR"):
            module = to_llvm_ir(module, target)
    store = resolve_cache(cache)
    parts = optimization_parts(module)

    def make() -> bytes:
        if parts > 1:
            return _object_in_parts(module, target, jit, parts, times)
        with timed(times, "LLVM opt"):
            optimized = optimize(module, target, machine, jit=jit)
        with timed(times, "LLVM codegen"):
            return machine.emit_object(optimized)

    if store is None:
        return make()
    options = (f"jit={jit} {PIPELINE.describe()} reloc={'default' if jit else 'pic'} "
               f"parts={parts}")
    key = cache_key(module, target.triple, target.cpu, target.features, options)
    data, hit = store.get_or_make(key, make)
    if keys is not None:
        keys[object_kind(jit)] = key
    if times is not None:
        times["cache hit"] = float(hit)
    return data


def _object_in_parts(text: str, target: TargetInfo, jit: bool, parts: int,
                     times: MutableMapping[str, float] | None) -> bytes:
    """Object code of ``text`` made by worker processes (:mod:`bnnmlir.backend.parallel_opt`):
    for the JIT one object per part (a bundle, see :mod:`bnnmlir.backend.object_bundle`), else
    the parts' optimized code linked into one object."""
    check_intrinsic_names(referenced_intrinsics(text), target)
    spec = machine_spec(target, jit=jit)
    with timed(times, "LLVM opt+codegen"):
        if jit:
            return bundle(objects_in_parts(text, spec, PIPELINE, parts))
        return object_in_parts(text, spec, PIPELINE, parts)


def object_kind(jit: bool) -> str:
    """``jit`` (the object MCJIT loads) or ``pic`` (a position-independent ELF object)."""
    return "jit" if jit else "pic"


def emit_object(
    module: LLVMModule,
    target: TargetInfo,
    *,
    cache: CacheOption = False,
    times: MutableMapping[str, float] | None = None,
    keys: MutableMapping[str, str] | None = None,
) -> bytes:
    """ELF relocatable object (position-independent) for ``target`` (see :func:`compile_object`)."""
    return compile_object(module, target, cache=cache, times=times, keys=keys)


def functions_of(ir: str, keyword: str = "define") -> frozenset[str]:
    """Names of the functions of LLVM IR text that are defined (``keyword="define"``) or only
    declared (``"declare"``)."""
    pattern = re.compile(rf'^{keyword}\b[^@\n]*@("[^"]+"|[-\w.$]+)\(', re.MULTILINE)
    return frozenset(name.strip('"') for name in pattern.findall(ir))
