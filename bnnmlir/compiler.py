"""The compiler driver: tensor-level IR in, an executable program out, every stage kept.

:func:`compile_module` runs the pipeline of :mod:`bnnmlir.passes.pipelines` stage by stage, keeps
the IR after each stage for inspection, and returns a :class:`CompiledProgram` that runs on the
host (JIT) or produces aarch64 assembly and objects. ``bnnmlir.compile`` (PyTorch models) and the
``bnnmlir`` command both use it.
"""

from __future__ import annotations

import ctypes
import math
import os
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from xdsl.context import Context
from xdsl.dialects import func
from xdsl.dialects.builtin import IntegerAttr, MemRefType, ModuleOp, StringAttr, SymbolRefAttr
from xdsl.utils.exceptions import DiagnosticException, ParseError

from bnnmlir.errors import CompileError
from bnnmlir.gc_pause import paused_gc
from bnnmlir.ir_utils import numpy_dtype
from bnnmlir.memory import release_memory
from bnnmlir.mlir_parsing import parse_module
from bnnmlir.parallel_lowering import lower_in_parts, lowering_jobs
from bnnmlir.passes.batch_entry import BatchEntryPass
from bnnmlir.passes.pipelines import STAGES, stage_passes
from bnnmlir.passes.profile_layers import ProfileLayersPass
from bnnmlir.target import TargetInfo, get_target

if TYPE_CHECKING:  # pragma: no cover
    from bnnmlir.backend.object_cache import CacheOption
    from bnnmlir.program_cache import ProgramEntry
    from bnnmlir.report import LayerReport


def make_context() -> Context:
    """A context with every upstream dialect and the ``bnn`` dialect registered."""
    from xdsl.dialects import get_all_dialects

    from bnnmlir.dialects import BNN

    ctx = Context()
    for name, factory in get_all_dialects().items():
        ctx.register_dialect(name, factory)
    ctx.load_dialect(BNN)
    return ctx


def parse_mlir(text: str, name: str = "<input>") -> ModuleOp:
    """Parse (:mod:`bnnmlir.mlir_parsing`) and verify tensor-level IR; errors become
    :class:`CompileError` with a location."""
    try:
        module = parse_module(make_context(), text, name)
        module.verify()
    except ParseError as e:
        raise CompileError(str(e)) from None
    except DiagnosticException as e:
        notes = "\n".join(str(n) for n in getattr(e, "__notes__", ()))
        raise CompileError(f"{e}\n{notes}".rstrip()) from None
    return module


@dataclass(frozen=True)
class ArgumentSpec:
    """Shape and dtype of one argument of a compiled program."""

    shape: tuple[int, ...]
    dtype: np.dtype

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize  # Python integers: never wraps

    def __str__(self) -> str:
        return f"{self.dtype.name}{list(self.shape)}"


@dataclass(frozen=True)
class Signature:
    """The C ABI of an entry point: ``void entry(inputs..., outputs..., arena)``."""

    entry: str
    inputs: tuple[ArgumentSpec, ...]
    outputs: tuple[ArgumentSpec, ...]
    arena_size: int


def _signature(module: ModuleOp, entry: str, dynamic_batch: bool = False) -> Signature:
    if dynamic_batch:
        from bnnmlir.batch import batch_signature

        return batch_signature(module, entry)
    fn = next(
        (op for op in module.ops if isinstance(op, func.FuncOp) and op.sym_name.data == entry), None
    )
    assert fn is not None
    n_in = fn.attributes["bnn.num_inputs"]
    n_out = fn.attributes["bnn.num_outputs"]
    arena = fn.attributes["bnn.arena_size"]
    assert isinstance(n_in, IntegerAttr) and isinstance(n_out, IntegerAttr)
    assert isinstance(arena, IntegerAttr)
    specs = []
    for t in fn.function_type.inputs.data:
        assert isinstance(t, MemRefType)
        specs.append(ArgumentSpec(tuple(t.get_shape()), numpy_dtype(t.get_element_type())))
    k, m = n_in.value.data, n_out.value.data
    return Signature(entry, tuple(specs[:k]), tuple(specs[k : k + m]), arena.value.data)


def _pick_entry(module: ModuleOp, entry: str | None) -> str:
    names = [
        op.sym_name.data
        for op in module.ops
        if isinstance(op, func.FuncOp) and not op.is_declaration
    ]
    if entry is not None:
        if entry not in names:
            raise CompileError(f"no function @{entry} in the module (it has: {', '.join(names)})")
        return entry
    if len(names) != 1:
        raise CompileError(
            f"the module has {len(names)} functions ({', '.join(names)}): name the entry point"
        )
    return names[0]


def _aligned_empty(nbytes: int) -> np.ndarray:
    """A zeroed byte buffer whose data starts on a 64-byte boundary."""
    raw = np.zeros(nbytes + 64, dtype=np.uint8)
    start = (-raw.ctypes.data) % 64
    return raw[start : start + nbytes]


C_KEYWORDS = frozenset((
    "auto", "break", "case", "char", "const", "continue", "default", "do", "double", "else",
    "enum", "extern", "float", "for", "goto", "if", "inline", "int", "long", "register",
    "restrict", "return", "short", "signed", "sizeof", "static", "struct", "switch", "typedef",
    "union", "unsigned", "void", "volatile", "while", "main",
    # C23
    "alignas", "alignof", "bool", "constexpr", "false", "nullptr", "static_assert",
    "thread_local", "true", "typeof", "typeof_unqual",
    # C++ (the header declares the entry point inside extern "C")
    "and", "and_eq", "asm", "bitand", "bitor", "catch", "char8_t", "char16_t", "char32_t",
    "class", "co_await", "co_return", "co_yield", "compl", "concept", "consteval",
    "constinit", "const_cast", "decltype", "delete", "dynamic_cast", "explicit", "export",
    "friend", "mutable", "namespace", "new", "noexcept", "not", "not_eq", "operator", "or",
    "or_eq", "private", "protected", "public", "reinterpret_cast", "requires",
    "static_cast", "template", "this", "throw", "try", "typeid", "typename", "using",
    "virtual", "wchar_t", "xor", "xor_eq",
))
"""C (up to C23) and C++ keywords (those spelled ``_Xxx`` are reserved names anyway) and ``main``."""
RESERVED_PREFIX = "bnnmlir_"


def _c_library_defines(name: str) -> bool:
    """Whether the C library (libc, libm, libpthread, as loaded in this process) exports
    ``name``: an entry point of that name would replace the library's function when linked."""
    try:
        return hasattr(ctypes.CDLL(None), name)
    except OSError:  # pragma: no cover - no dynamic loader
        return False


def check_entry_name(name: str) -> str:
    """``name`` if it can name a compiled entry point: a C identifier that C does not reserve
    (keywords, ``main``, ``__x``, ``_X``), that no C library function has, and that does not
    start with the runtime's prefix ``bnnmlir_``; else ``ValueError``."""
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise ValueError(f"entry point '{name}' is not a C identifier")
    if name in C_KEYWORDS or re.match(r"__|_[A-Z]", name):
        raise ValueError(f"entry point '{name}' is reserved in C and C++ programs")
    if name.startswith(RESERVED_PREFIX):
        raise ValueError(f"entry point '{name}' uses the runtime's prefix '{RESERVED_PREFIX}'")
    if _c_library_defines(name):
        raise ValueError(
            f"entry point '{name}' is a C library function: linking the model would replace it"
        )
    return name


def rename_function(module: ModuleOp, old: str, new: str) -> None:
    """Rename function ``@old`` of a tensor-level module to ``@new`` (a valid entry name, see
    :func:`check_entry_name`), calls included; ``CompileError`` if ``@new`` exists already."""
    check_entry_name(new)
    if old == new:
        return
    names = {op.sym_name.data for op in module.ops if isinstance(op, func.FuncOp)}
    if old not in names:
        raise CompileError(f"no function @{old} in the module")
    if new in names:
        raise CompileError(f"the module already has a function @{new}")
    for op in module.walk():
        if isinstance(op, func.FuncOp) and op.sym_name.data == old:
            op.sym_name = StringAttr(new)
        elif isinstance(op, func.CallOp) and op.callee.root_reference.data == old:
            op.callee = SymbolRefAttr(new)


class CompiledProgram:
    """A compiled entry point, with the IR of every stage.

    Machine code is made once and kept: the host JIT (built by :func:`compile_module`, or at the
    first call), the object code, the assembly and the optimized LLVM IR. A program may be
    called from several Python threads at once.
    """

    def __init__(self, stages: dict[str, ModuleOp], signature: Signature, target: TargetInfo,
                 threads: int, *, cache: CacheOption = None,
                 compile_times: dict[str, float] | None = None,
                 runner: StageRunner | None = None,
                 imported: Callable[[], ModuleOp] | None = None):
        self._stages = dict(stages)
        self._imported = imported
        self.signature = signature
        self.target = target
        self.threads = threads
        self.cache = cache
        self.compile_times: dict[str, float] = dict(compile_times or {})
        """Wall seconds of each compile step: the stages, then ``LLVM IR``, ``LLVM opt``,
        ``LLVM codegen`` (absent when the object came from the cache), ``cache lookup`` and
        ``cache hit`` (1.0 when the object code came from the compile cache, 0.0 when it was
        built)."""
        self._runner = runner
        self._lock = threading.RLock()
        self._stage_lock = threading.RLock()
        self._code: dict[str, object] = {}
        self._host = None
        self._arenas = threading.local()
        self._report: LayerReport | None = None
        self._entry: ProgramEntry | None = None

    # ---- inspection -------------------------------------------------------------------------
    @property
    def stage_names(self) -> tuple[str, ...]:
        return STAGE_ORDER

    def mlir_module(self, stage: str) -> ModuleOp:
        """The IR after ``stage`` as a module (do not modify it). A stage that was not kept (the
        loop nests, or every stage of a program from the compile cache) is made again."""
        if stage not in STAGE_ORDER:
            raise ValueError(f"unknown stage '{stage}': expected one of {', '.join(STAGE_ORDER)}")
        with self._stage_lock:
            if "imported" not in self._stages:
                assert self._imported is not None
                self._stages["imported"] = self._imported()
            if stage not in self._stages:
                assert self._runner is not None
                self._stages[stage] = self._runner.remake(self._stages, stage)
            return self._stages[stage]

    def layer_report(self) -> LayerReport:
        """The per-layer report of the ``optimized`` stage (made once)."""
        from bnnmlir.report import LayerReport, layer_report

        if self._report is None:
            self._report = layer_report(self.mlir_module("optimized"), self.target)
        return LayerReport(list(self._report.rows), self._report.target)

    def mlir(self, stage: str = "llvm", *, generic: bool = False,
             elide_larger_than: int | None = None) -> str:
        """The IR after ``stage`` (one of :attr:`stage_names`); constants of more than
        ``elide_larger_than`` elements printed as ``dense_resource<__elided__>`` (``None``: in
        full, the form that parses back)."""
        from bnnmlir.ir_print import print_ir

        return print_ir(self.mlir_module(stage), generic=generic,
                        elide_larger_than=elide_larger_than)

    def _cached(self, kind: str, make: Callable[[], object]):
        with self._lock:
            if kind not in self._code:
                self._code[kind] = make()
            return self._code[kind]

    @paused_gc()
    def llvm_text(self) -> str:
        """LLVM IR text of the ``llvm`` stage, not optimized (made once). The ``llvm`` stage's
        module is then let go when it can be made again, so it does not stay in memory beside
        LLVM's own copy."""
        from bnnmlir.backend.llvm_codegen import timed, to_llvm_ir

        def make() -> str:
            if "llvm" not in self._stages and self._runner is not None:
                buffers = self.mlir_module("buffers").clone()
                jobs = lowering_jobs(buffers)
                if jobs:  # as the compile made it (see bnnmlir.parallel_lowering)
                    with timed(self.compile_times, "LLVM IR"):
                        return lower_in_parts(buffers, self.target, self.threads > 1, jobs,
                                              verify_every_stage())[0]
            with timed(self.compile_times, "LLVM IR"):
                text = to_llvm_ir(self.mlir_module("llvm"), self.target)
            if self._runner is not None:
                with self._stage_lock:
                    self._stages.pop("llvm", None)
            return text

        return self._cached("llvm_text", make)

    def llvm_ir(self) -> str:
        """Optimized LLVM IR for the target (made once)."""
        from bnnmlir.backend.llvm_codegen import optimized_ir

        return self._cached("llvm_ir", lambda: optimized_ir(self.llvm_text(), self.target))

    def assembly(self) -> str:
        """Assembly for the target (made once)."""
        from bnnmlir.backend.llvm_codegen import emit_assembly

        return self._cached("assembly", lambda: emit_assembly(self.llvm_text(), self.target))

    @paused_gc()
    def object_code(self) -> bytes:
        """ELF object for the target (made once: every call returns the same ``bytes``)."""
        from bnnmlir.backend.llvm_codegen import emit_object

        def make() -> bytes:
            code = self._entry.object_code("pic", self.compile_times) if self._entry else None
            if code is None:
                keys: dict[str, str] = {}
                code = emit_object(self.llvm_text(), self.target, cache=self.cache,
                                   times=self.compile_times, keys=keys)
                if self._entry:
                    self._entry.remember(keys)
            return code

        return self._cached("object", make)

    def compile_time_report(self) -> str:
        """The :attr:`compile_times` as a table: step, seconds, share of the total."""
        return format_compile_times(self.compile_times)

    # ---- execution --------------------------------------------------------------------------
    def check_inputs(self, arrays: Sequence[object]) -> list[np.ndarray]:
        """Inputs as contiguous arrays; ``ValueError``/``TypeError`` if they do not fit. Values
        are not scanned: NaN is not a valid input of the ``bnn`` ops (``bnnmlir.compile``'s
        models scan float inputs, see :mod:`bnnmlir.input_checks`)."""
        sig = self.signature
        if len(arrays) != len(sig.inputs):
            raise TypeError(f"@{sig.entry} takes {len(sig.inputs)} inputs, got {len(arrays)}")
        checked = []
        for i, (array, spec) in enumerate(zip(arrays, sig.inputs)):
            if not isinstance(array, np.ndarray):
                raise TypeError(f"input {i} of @{sig.entry} must be a numpy array, got {type(array).__name__}")
            if array.dtype != spec.dtype:
                raise TypeError(f"input {i} of @{sig.entry} must have dtype {spec.dtype}, got {array.dtype}")
            self._check_shape(i, array, spec, checked)
            checked.append(np.ascontiguousarray(array))
        return checked

    def _check_shape(self, i: int, array: np.ndarray, spec: ArgumentSpec,
                     checked: list[np.ndarray]) -> None:
        """``ValueError`` unless input ``i`` has the signature's shape (``checked``: the inputs
        before it)."""
        if tuple(array.shape) != spec.shape:
            raise ValueError(f"input {i} of @{self.signature.entry} must have shape "
                             f"{list(spec.shape)}, got {list(array.shape)}")

    @property
    def host_ready(self) -> bool:
        """Whether the host machine code is built (calls do not compile anything)."""
        return self._host is not None

    @paused_gc()
    def build_host(self) -> None:
        """Build the host JIT now (once); ``CompileError`` if LLVM rejects the module."""
        if not self.target.is_host:
            raise RuntimeError(
                f"a program compiled for {self.target.name} cannot run in this process; use "
                "run_aarch64() or compile for target='host'"
            )
        with self._lock:
            if self._host is not None:
                return
            from bnnmlir.backend.jit import JitModule
            from bnnmlir.backend.runtime_build import RuntimeBuildError

            try:
                code = self._entry.object_code("jit", self.compile_times) if self._entry else None
                if code is not None:
                    jit = JitModule.from_object(code, *self._entry.functions)
                else:
                    keys: dict[str, str] = {}
                    jit = JitModule(self.llvm_text(), cache=self.cache,
                                    times=self.compile_times, keys=keys)
                    if self._entry:
                        self._entry.remember(keys, (jit.functions, jit.declarations))
            except RuntimeBuildError:
                raise
            except (RuntimeError, ValueError) as e:
                raise CompileError(f"host code generation failed: {e}") from None
            self._host = (jit, jit.ctypes_function(self.signature.entry, self._argtypes()))

    def _argtypes(self) -> list[type]:
        """The ctypes of the entry point's parameters: one pointer per buffer and the arena."""
        return [ctypes.c_void_p] * (len(self.signature.inputs) + len(self.signature.outputs) + 1)

    def _call_arguments(self, inputs: list[np.ndarray]) -> tuple[list[int], list[np.ndarray], int]:
        """For checked ``inputs``: the integer arguments before the buffers, new output arrays and
        the arena size in bytes."""
        outputs = [np.zeros(s.shape, dtype=s.dtype) for s in self.signature.outputs]
        return [], outputs, self.signature.arena_size

    def __call__(self, *arrays: np.ndarray) -> list[np.ndarray]:
        """Run on the host: numpy inputs in, a list of numpy outputs back. Safe to call from
        several threads at once; each call runs its parallel loops on :attr:`threads` threads."""
        inputs = self.check_inputs(arrays)
        if self._host is None:
            self.build_host()
        jit, function = self._host
        scalars, outputs, arena_bytes = self._call_arguments(inputs)
        arena = self._thread_arena(arena_bytes)
        runtime = jit.runtime
        if runtime is not None:
            # The count of this thread only: concurrent calls of other programs keep theirs.
            runtime.bnnmlir_set_local_num_threads(self.threads)
        try:
            function(*scalars, *[a.ctypes.data for a in (*inputs, *outputs, arena)])
        finally:
            if runtime is not None:
                runtime.bnnmlir_set_local_num_threads(0)
        return outputs

    def _thread_arena(self, nbytes: int) -> np.ndarray:
        """The calling thread's arena for this program, kept from call to call: a new buffer
        costs a page fault per 4 KB touched in every call (Bi-Real-Net-18: about 10% of a
        call, and the faults of two threads contend). The generated code does not read
        arena bytes it has not written in the same call (tested with a filled arena)."""
        arena = getattr(self._arenas, "buffer", None)
        if arena is None or arena.size < nbytes:
            arena = self._arenas.buffer = _aligned_empty(nbytes)
        return arena[:nbytes]

    def run_aarch64(self, *arrays: np.ndarray, repeat: int = 1) -> list[np.ndarray]:
        """Run the aarch64 object under ``qemu-aarch64`` (cross-linked with the runtime); any
        aarch64 target (``aarch64``, ``aarch64-dotprod``, ...) runs here. ``repeat > 1``: that
        many calls in one process, each output with a leading dimension ``repeat`` (see
        :func:`bnnmlir.backend.cross.run_aarch64`)."""
        if not self.target.triple.startswith("aarch64"):
            raise RuntimeError("run_aarch64() needs a program compiled for an aarch64 target "
                               f"(e.g. target='aarch64'), not {self.target.name!r}")
        from bnnmlir.backend.cross import run_aarch64

        inputs = self.check_inputs(arrays)
        scalars, outputs, arena_bytes = self._call_arguments(inputs)
        return run_aarch64(
            self.object_code(),
            self.signature.entry,
            inputs,
            outputs,
            arena_bytes,
            num_threads=self.threads,
            scalar_args=scalars,
            repeat=repeat,
        )


def default_threads() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


STAGE_ORDER = ("imported", *STAGES)
KEPT_STAGES = ("optimized", "buffers")
"""Stages whose IR a compile keeps (small: tensor level); the others are made again on demand."""


def verify_every_stage() -> bool:
    """Whether the IR of every stage is verified (``BNNMLIR_VERIFY=1``; the tests set it), not
    only that of the tensor-level stages (the loop and LLVM stages are checked by LLVM)."""
    return os.environ.get("BNNMLIR_VERIFY", "") not in ("", "0")


class StageRunner:
    """Runs the passes of each stage for one target, thread count and entry point."""

    def __init__(self, info: TargetInfo, threads: int, entry: str, dynamic_batch: bool,
                 profile: bool = False):
        self.ctx = make_context()
        self.info = info
        self.parallel = threads > 1
        self.batch = BatchEntryPass(entry=entry, threads=threads) if dynamic_batch else None
        self.profiler = ProfileLayersPass(entry=entry) if profile else None
        from bnnmlir.backend.llvm_codegen import compile_jobs

        self.jobs = compile_jobs()

    def run(self, module: ModuleOp, stage: str) -> None:
        """Take ``module`` (in place) from the stage before ``stage`` to ``stage``."""
        try:
            for p in stage_passes(stage, self.info.name, parallel=self.parallel,
                                  batch_entry=self.batch, profile=self.profiler,
                                  jobs=self.jobs):
                p.apply(self.ctx, module)
            if stage in KEPT_STAGES or verify_every_stage():
                module.verify()
        except DiagnosticException as e:
            raise CompileError(f"stage '{stage}' failed: {e}") from None

    def remake(self, stages: dict[str, ModuleOp], stage: str) -> ModuleOp:
        """The IR of ``stage``, from the latest earlier stage in ``stages``."""
        index = STAGE_ORDER.index(stage)
        start = max(i for i in range(index) if STAGE_ORDER[i] in stages)
        module = stages[STAGE_ORDER[start]].clone()
        for later in STAGE_ORDER[start + 1 : index + 1]:
            self.run(module, later)
        return module


def program_options(info: TargetInfo, threads: int, entry: str, dynamic_batch: bool,
                    profile: bool = False) -> dict[str, object]:
    """The options of a compile that its program depends on (besides the IR), as JSON data."""
    from bnnmlir.passes.lower_bnn_to_loops import lowering_settings

    return {"target": [info.name, info.triple, info.cpu, info.features], "threads": threads,
            "entry": entry, "dynamic_batch": dynamic_batch, "profile": profile,
            "lowering": lowering_settings()}


def _program_class(dynamic_batch: bool) -> type[CompiledProgram]:
    if dynamic_batch:
        from bnnmlir.batch import BatchProgram

        return BatchProgram
    return CompiledProgram


def program_from_entry(found: ProgramEntry, info: TargetInfo, threads: int, *,
                       dynamic_batch: bool, jit: bool, cache: CacheOption,
                       compile_times: dict[str, float], imported: Callable[[], ModuleOp],
                       runner: StageRunner | None = None) -> CompiledProgram:
    """The program of a compile-cache entry: no pass runs; the IR of a stage is made again from
    ``imported()`` (the tensor-level IR, asked for at the first use) when asked for."""
    if runner is None:
        runner = StageRunner(info, threads, found.signature.entry, dynamic_batch)
    program = _program_class(dynamic_batch)({}, found.signature, info, threads, cache=cache,
                            compile_times=compile_times, runner=runner, imported=imported)
    program._entry, program._report = found, found.report
    if jit and info.is_host:
        program.build_host()
    return program


@paused_gc()
def compile_module(
    module: ModuleOp,
    *,
    target: str = "host",
    threads: int | None = None,
    entry: str | None = None,
    imported: ModuleOp | None = None,
    jit: bool = True,
    cache: CacheOption = None,
    progress: bool = False,
    compile_times: dict[str, float] | None = None,
    dynamic_batch: bool = False,
    profile: bool = False,
) -> CompiledProgram:
    """Compile tensor-level IR (``module`` is consumed) for ``target`` (``host`` or ``aarch64``).

    ``threads``: threads of the parallel loops at run time (``None``: every core of this machine
    for the host, 1 for aarch64 unless given); with 1 thread the loops are not outlined at all.
    ``jit``: for the host, also build the machine code now (else at the first call), so that a
    code generation error is a :class:`CompileError` here.
    ``cache``: the compile cache (``None``/``True``: ``$BNNMLIR_CACHE_DIR`` or
    ``~/.cache/bnnmlir``; a directory; ``False``: none): the same module compiled again with the
    same options runs no pass (:mod:`bnnmlir.program_cache`) and its object code comes from disk
    (:mod:`bnnmlir.backend.object_cache`). ``progress``: a progress bar over the
    stages on stderr when the compile takes more than a second. ``compile_times``: times of
    earlier steps (the import) to start :attr:`CompiledProgram.compile_times` with.
    ``dynamic_batch``: ``module`` computes one image (batch 1) and the entry point takes the batch
    size at run time (:mod:`bnnmlir.batch`).
    ``profile``: a profiling build: one more output holds the nanoseconds of each layer and of
    the whole call (``bnn-profile-layers``; see :mod:`bnnmlir.profile`).
    """
    from bnnmlir.backend.object_cache import resolve_cache
    from bnnmlir.program_cache import ProgramEntry, program_key, program_store

    info = get_target(target)
    if threads is None:
        threads = default_threads() if info.is_host else 1
    if threads < 1:
        raise ValueError(f"threads must be at least 1, got {threads}")
    entry = _pick_entry(module, entry)
    runner = StageRunner(info, threads, entry, dynamic_batch, profile)
    program_class = _program_class(dynamic_batch)
    times = dict(compile_times or {})
    objects = resolve_cache(cache)
    found, lookup = None, {}
    if objects is not None:
        start = time.perf_counter()
        key = program_key(module, program_options(info, threads, entry, dynamic_batch, profile))
        found = ProgramEntry.load(program_store(objects), objects, key)
        lookup["cache lookup"] = time.perf_counter() - start
    if found is not None:
        times.update(lookup)
        return program_from_entry(found, info, threads, dynamic_batch=dynamic_batch, jit=jit,
                                  cache=cache, compile_times=times, runner=runner,
                                  imported=lambda: imported or module)
    stages: dict[str, ModuleOp] = {"imported": (imported or module).clone()}
    steps = [*STAGES, "LLVM"] if jit and info.is_host else list(STAGES)
    llvm_text, part_times = None, {}
    with progress_bar(steps, enabled=progress) as bar:
        for stage in STAGES:
            bar.set_postfix_str(stage)
            if stage == "loops" and (jobs := lowering_jobs(module)):
                llvm_text, part_times = lower_in_parts(module, info, threads > 1, jobs,
                                                       verify_every_stage())
                for later in ("loops", "llvm"):
                    times[later] = part_times.pop(later)
                bar.update()  # loops
                bar.update()  # llvm (one step each: tqdm's dynamic miniters)
                break
            start = time.perf_counter()
            runner.run(module, stage)
            if stage in KEPT_STAGES:
                stages[stage] = module.clone()
            times[stage] = time.perf_counter() - start
            bar.update()
            release_memory()
        times.update(lookup)
        if llvm_text is None:
            stages["llvm"] = module
            _check_entry_is_unique(module, entry)
        else:
            times.update(part_times)
            _check_entry_is_defined_once(llvm_text, entry)
        signature = _signature(stages["buffers"], entry, dynamic_batch)
        program = program_class(stages, signature, info, threads, cache=cache,
                                compile_times=times, runner=runner)
        if llvm_text is not None:
            program._code["llvm_text"] = llvm_text
        if objects is not None:
            program._entry = ProgramEntry(program_store(objects), objects, key, signature,
                                          program.layer_report())
            program._entry.write()
        if jit and info.is_host:
            bar.set_postfix_str("LLVM")
            program.build_host()
            bar.update()
    release_memory()
    return program


PROGRESS_DELAY = 1.0
"""Seconds a compile runs before its progress bar appears (a quick compile shows none)."""


def progress_bar(steps: Sequence[str], *, enabled: bool):
    """A tqdm bar over the compile steps on stderr, shown after :data:`PROGRESS_DELAY` seconds."""
    import sys

    from tqdm import tqdm

    return tqdm(total=len(steps), desc="bnnmlir compile", unit="stage", delay=PROGRESS_DELAY,
                file=sys.stderr, disable=not enabled, leave=False, mininterval=0)


def format_compile_times(times: dict[str, float]) -> str:
    """Compile steps as a text table: step, wall seconds, share of the total."""
    from io import StringIO

    from rich.console import Console
    from rich.table import Table

    table = Table(title="bnnmlir compile time")
    for column in ("step", "seconds", "%"):
        table.add_column(column, justify="left" if column == "step" else "right")
    durations = {k: v for k, v in times.items() if k != "cache hit"}
    total = sum(durations.values())
    for step, seconds in durations.items():
        share = 100.0 * seconds / total if total > 0 else 0.0
        table.add_row(step, f"{seconds:.3f}", f"{share:.1f}")
    table.add_row("total", f"{total:.3f}", "100.0", style="bold")
    if "cache hit" in times:
        table.caption = "object code from the compile cache" if times["cache hit"] else (
            "object code built (and stored in the compile cache)")
    out = StringIO()
    Console(file=out, width=100, highlight=False, color_system=None).print(table)
    return out.getvalue()


def _check_entry_is_defined_once(llvm_text: str, entry: str) -> None:
    """:func:`_check_entry_is_unique` on LLVM IR text (a compile lowered in parts)."""
    from bnnmlir.backend.llvm_codegen import functions_of

    if entry in functions_of(llvm_text, "declare") or entry not in functions_of(llvm_text):
        raise CompileError(
            f"the entry point name '{entry}' clashes with a symbol of the generated code"
        )


def _check_entry_is_unique(module: ModuleOp, entry: str) -> None:
    """The generated code may declare library functions (``memset``...): the entry point must
    not take one of their names."""
    clashes = [op for op in module.ops if getattr(op, "sym_name", None) == StringAttr(entry)]
    if len(clashes) != 1:
        raise CompileError(
            f"the entry point name '{entry}' clashes with a symbol of the generated code"
        )
