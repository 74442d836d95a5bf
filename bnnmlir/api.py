"""``bnnmlir.compile``: from a PyTorch model to a bit-exact compiled callable.

::

    compiled = bnnmlir.compile(model, (example,))      # host JIT by default
    y = compiled(x)                                     # == model.eval()(x), bit for bit
    # (NaN inputs, and infinities the compiled code cannot reproduce, raise ValueError)
    print(compiled.report())                            # per-layer table
    print(compiled.profile(x, repeat=20))               # per-layer times (a profiling build)
    compiled.mlir("optimized")                          # IR after a stage (weights elided)
    compiled.save("out/", target="aarch64-linux-gnu")   # object + header + runtime sources
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from bnnmlir import input_checks
from bnnmlir.compiler import (
    CompiledProgram,
    check_entry_name,
    compile_module,
    program_from_entry,
    rename_function,
)
from bnnmlir.forked import EXPORT_LOCK
from bnnmlir.gc_pause import paused_gc
from bnnmlir.memory import release_memory
from bnnmlir.report import LayerReport

ELIDE_LARGER_THAN = 16
"""Constants of more elements than this are elided by :meth:`CompiledModel.mlir` by default."""

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from bnnmlir.backend.object_cache import CacheOption
    from bnnmlir.frontend import ImportedModel
    from bnnmlir.model_cache import LazyImport, ModelLookup

log = logging.getLogger("bnnmlir.compile")


class CompiledModel:
    """A compiled PyTorch model: call it like the model (in eval mode).

    Inputs must be dense CPU tensors of the example's dtypes and shapes (else ``TypeError`` /
    ``ValueError`` naming the input). With :attr:`check_finite` (the ``check_finite`` argument of
    :func:`compile`, default True) every call also refuses float inputs holding NaN, and
    infinities where the compiled code would not give PyTorch's result (see
    :mod:`bnnmlir.input_checks`), with a ``ValueError``; set it to False to skip that scan (the
    compiled code then maps NaN like any other value, without error, and the output may differ
    from PyTorch's).
    """

    def __init__(self, imported: ImportedModel | LazyImport, program: CompiledProgram, *,
                 check_finite: bool = True, model_cache: str = "not used"):
        self.imported = imported
        self.program = program
        self.check_finite = check_finite
        self.model_cache = model_cache
        """What the model-level compile cache did (:mod:`bnnmlir.model_cache`): ``hit``,
        ``stored``, or why it was not used."""
        from bnnmlir.model_cache import LazyImport

        if isinstance(imported, LazyImport):
            self._input_names = imported.entry.input_names
            self._infinity_exact = imported.entry.infinity_exact
        else:
            self._input_names = input_checks.input_names(imported.module)
            self._infinity_exact = input_checks.infinity_exact_inputs(imported.module)
        self._lock = threading.Lock()
        self._programs: dict[tuple[str, int, str], CompiledProgram] = {
            (program.target.name, program.threads, program.signature.entry): program
        }
        self._profiling: CompiledProgram | None = None

    @property
    def target(self) -> str:
        return self.program.target.name

    # ---- calling ----------------------------------------------------------------------------
    def _check(self, args: Sequence[object]) -> list[np.ndarray]:
        specs = self.imported.input_specs
        if len(args) != len(specs):
            raise TypeError(f"the model takes {len(specs)} inputs, got {len(args)}")
        arrays = []
        for arg, spec, name, infinity_exact in zip(
            args, specs, self._input_names, self._infinity_exact
        ):
            array = input_checks.tensor_to_array(arg, name, spec, self.dynamic_batch)
            if self.check_finite:
                input_checks.check_finite(array, name, allow_infinity=infinity_exact)
            arrays.append(array)
        return arrays

    @property
    def dynamic_batch(self) -> bool:
        """Whether calls take any batch size (``bnnmlir.compile(..., dynamic_batch=True)``, or an
        exported program with a ``torch.export.Dim`` on the batch)."""
        return self.imported.dynamic_batch

    def __call__(self, *args: torch.Tensor):
        arrays = self._check(args)
        if self.program.target.is_host:
            outputs = self.program(*arrays)
        else:
            outputs = self.program.run_aarch64(*arrays)
        return self._tensors(arrays, outputs)

    def _tensors(self, arrays: list[np.ndarray], outputs: Sequence[np.ndarray]):
        """The model's outputs as PyTorch tensors (a tuple when there are several)."""
        import torch

        batch = (arrays[0].shape[0],) if self.dynamic_batch else ()
        tensors = [
            torch.from_numpy(np.asarray(out)).to(spec.dtype).reshape(
                batch + tuple(spec.shape[len(batch):]))
            for out, spec in zip(outputs, self.imported.output_specs)
        ]
        return tensors[0] if len(tensors) == 1 else tuple(tensors)

    # ---- inspection -------------------------------------------------------------------------
    def report(self) -> LayerReport:
        """Per-layer table: path, kind, accumulator width, output type, MACs, weight bytes;
        then the compile time of each step (:attr:`compile_times`)."""
        report = self.program.layer_report()
        report.compile_times = self.compile_times
        report.model_cache = self.model_cache
        return report

    def profile(self, *inputs: torch.Tensor, repeat: int = 10, warmup: int = 1):
        """Time each layer on ``inputs``: a :class:`bnnmlir.profile.LayerProfile` (print it for
        the table) with, per layer of :meth:`report`, the median milliseconds over ``repeat``
        calls after ``warmup`` calls, its share of the total, the achieved ops/s and, for binary
        and int8 layers on the host, the fraction of the measured machine limit. It runs a
        profiling build of the same program (compiled once, kept), whose outputs (the
        profile's ``outputs``) equal those of an ordinary call bit for bit. aarch64 programs run
        under qemu: their times are marked emulated."""
        from bnnmlir.profile import check_repeat, run_profile

        check_repeat(repeat, warmup)
        arrays = self._check(inputs)
        outputs, profile = run_profile(self._profiling_program(), arrays, self.report(),
                                       repeat=repeat, warmup=warmup)
        profile.outputs = self._tensors(arrays, outputs)
        return profile

    def _profiling_program(self) -> CompiledProgram:
        with self._lock:
            if self._profiling is None:
                self._profiling = compile_module(
                    self.imported.module.clone(), target=self.program.target.name,
                    threads=self.program.threads, entry=self.program.signature.entry,
                    jit=self.program.target.is_host, cache=self.program.cache,
                    dynamic_batch=self.dynamic_batch, profile=True,
                )
            return self._profiling

    @property
    def compile_times(self) -> dict[str, float]:
        """Wall seconds of each compile step: ``import``, the stages, the LLVM steps, and
        ``cache hit`` (1.0 when the object code came from the compile cache)."""
        return dict(self.program.compile_times)

    def mlir(self, stage: str = "optimized", *, elide_larger_than: int | None = ELIDE_LARGER_THAN
             ) -> str:
        """The IR after ``stage``: ``imported``, ``optimized``, ``buffers``, ``loops``, ``llvm``.

        Constants of more than ``elide_larger_than`` elements (weights) are printed as
        ``dense_resource<__elided__>``; ``elide_larger_than=None`` prints every value (hex for
        large constants), the form that ``bnnmlir-opt`` parses back."""
        return self.program.mlir(stage, elide_larger_than=elide_larger_than)

    @property
    def warnings(self) -> list[str]:
        return list(self.imported.warnings)

    @property
    def approximations(self) -> list[str]:
        """The layers compiled with ``exact=False`` as their binary meaning, with their bounds."""
        return [a.describe() for a in self.imported.approximations]

    def compare(self, *inputs: torch.Tensor):
        """Run these inputs through the compiled model and PyTorch's; see
        :func:`bnnmlir.comparison.compare`."""
        from bnnmlir.comparison import compare

        return compare(self, inputs)

    # ---- deployment -------------------------------------------------------------------------
    def program_for(self, target: str, *, threads: int | None = None,
                    entry: str | None = None) -> CompiledProgram:
        """The model compiled for ``target`` with ``threads`` threads (default: those of
        :attr:`program` for its own target, else 1) and entry point ``entry`` (default: that of
        :attr:`program`). Each combination is compiled once and kept, its object code with it."""
        name = _target_name(target)
        if threads is None:
            threads = self.program.threads if name == self.program.target.name else 1
        if threads < 1:
            raise ValueError(f"threads must be at least 1, got {threads}")
        default_entry = self.program.signature.entry
        entry = check_entry_name(entry) if entry is not None else default_entry
        key = (name, threads, entry)
        with self._lock:
            program = self._programs.get(key)
            if program is None:
                module = self.imported.module.clone()
                rename_function(module, default_entry, entry)
                program = compile_module(module, target=name, threads=threads, entry=entry,
                                         jit=False, cache=self.program.cache,
                                         dynamic_batch=self.dynamic_batch)
                self._programs[key] = program
        return program

    def save(self, path: str | Path, target: str = "aarch64-linux-gnu", *,
             threads: int | None = None, entry: str | None = None) -> Path:
        """Write ``model.o`` (for ``target``), ``model.h`` and the runtime sources into ``path``.

        ``target``: ``aarch64`` (also ``aarch64-linux-gnu``, ``aarch64-unknown-linux-gnu``) or
        ``host`` (also ``x86_64``, ``x86_64-linux-gnu``, the host triple); see
        :func:`bnnmlir.target.canonical_target_name`. ``entry``: the C name of the entry point (default ``forward``). Saving again for the same
        target, threads and entry reuses the compiled object code.
        """
        program = self.program_for(target, threads=threads, entry=entry)
        out = Path(path)
        out.mkdir(parents=True, exist_ok=True)
        (out / "model.o").write_bytes(program.object_code())
        (out / "model.h").write_text(c_header(program, self._infinity_exact))
        runtime_dir = out / "runtime"
        runtime_dir.mkdir(exist_ok=True)
        for source in resources.files("bnnmlir.runtime").iterdir():
            if source.name.endswith((".c", ".h")):
                with resources.as_file(source) as src:
                    shutil.copyfile(src, runtime_dir / source.name)
        return out


def _target_name(target: str) -> str:
    from bnnmlir.target import canonical_target_name

    return canonical_target_name(target)


_C_TYPES = {"float32": "float", "int8": "int8_t", "int16": "int16_t", "int32": "int32_t",
            "uint8": "uint8_t", "int64": "int64_t"}


def c_header(program: CompiledProgram, infinity_exact: Sequence[bool] | None = None) -> str:
    """A C header declaring the entry point and the sizes of its buffers. ``infinity_exact``:
    which float inputs may hold infinities (default: read from the program's imported IR)."""
    from bnnmlir.batch import BatchSignature

    sig = program.signature
    batch = sig if isinstance(sig, BatchSignature) else None
    guard = f"BNNMLIR_{sig.entry.upper()}_H"
    if infinity_exact is None:
        infinity_exact = input_checks.infinity_exact_inputs(program.mlir_module("imported"),
                                                            sig.entry)
    lines = [
        f"/* {sig.entry}: compiled by bnnmlir for {program.target.triple} ({program.target.cpu}).",
        " * Link with model.o and the C files of the runtime directory (-lpthread). Buffers are",
        " * row-major; activations are passed in the model's own layout. The arena holds every",
        " * intermediate buffer; allocate it with bnnmlir_arena_alloc(BNNMLIR_ARENA_BYTES"
        f"{'(n)' if batch else ''}).",
        " * Set threads with bnnmlir_set_num_threads(k) before calling.",
        " *",
        " * Float inputs: the result equals PyTorch's only for the values listed per input below.",
        " * The entry point does not check them (calls from Python do): NaN or a refused infinity",
        " * gives an output that may differ from PyTorch's, without any error. */",
        f"#ifndef {guard}",
        f"#define {guard}",
        "#include <stdint.h>",
        '#include "runtime/bnnmlir_runtime.h"',
        "",
        f"#define BNNMLIR_NUM_INPUTS {len(sig.inputs)}",
        f"#define BNNMLIR_NUM_OUTPUTS {len(sig.outputs)}",
    ]
    params = []
    if batch is None:
        lines.append(f"#define BNNMLIR_ARENA_BYTES {sig.arena_size}")
    else:
        lines += _batch_header_lines(batch)
        params.append("int64_t n")
    for kind, specs in (("INPUT", sig.inputs), ("OUTPUT", sig.outputs)):
        for i, spec in enumerate(specs):
            dims = ["-1", *map(str, spec.shape[1:])] if batch else list(map(str, spec.shape))
            lines.append(f"#define BNNMLIR_{kind}{i}_RANK {len(spec.shape)}")
            lines.append(f"#define BNNMLIR_{kind}{i}_SHAPE {{{', '.join(dims)}}}")
            if batch:
                lines.append(f"#define BNNMLIR_{kind}{i}_BYTES_PER_IMAGE {spec.nbytes}")
                lines.append(f"#define BNNMLIR_{kind}{i}_BYTES(n) ((int64_t)(n) * {spec.nbytes})")
            else:
                lines.append(f"#define BNNMLIR_{kind}{i}_BYTES {spec.nbytes}")
            if kind == "INPUT" and spec.dtype.kind == "f":
                allowed = "finite or +-inf, no NaN" if infinity_exact[i] else "finite only"
                lines.append(f"/* input{i} values: {allowed} */")
            ctype = _C_TYPES[spec.dtype.name]
            const = "const " if kind == "INPUT" else ""
            params.append(f"{const}{ctype} *{kind.lower()}{i}")
    params.append("void *arena")
    lines += [
        "", "#ifdef __cplusplus", 'extern "C" {', "#endif",
        f"void {sig.entry}({', '.join(params)});",
        "#ifdef __cplusplus", "}", "#endif",
        "", f"#endif /* {guard} */", "",
    ]
    return "\n".join(lines)


def _batch_header_lines(sig) -> list[str]:
    """The dynamic-batch part of the header: the batch argument and the arena rule."""
    t = sig.parallel_images
    return [
        "/* Dynamic batch: the first argument n (>= 1) is the batch size; every buffer holds n",
        " * images one after the other along dimension 0 (-1 in the shapes below). At most",
        f" * BNNMLIR_PARALLEL_IMAGES ({t}) images run at once, each with its own",
        " * BNNMLIR_ARENA_BYTES_PER_IMAGE bytes of the arena: allocate BNNMLIR_ARENA_BYTES(n). */",
        "#define BNNMLIR_DYNAMIC_BATCH 1",
        f"#define BNNMLIR_PARALLEL_IMAGES {t}",
        f"#define BNNMLIR_ARENA_BYTES_PER_IMAGE {sig.arena_size}",
        f"#define BNNMLIR_ARENA_BYTES(n) ((int64_t){sig.arena_size} * "
        f"((n) < {t} ? ((n) < 1 ? 1 : (n)) : {t}))",
    ]


def compile(model, example_inputs, *, target: str = "host", threads: int | None = None,
            jit: bool = True, cache: CacheOption = None, progress: bool = False,
            check_finite: bool = True, dynamic_batch: bool = False,
            exact: bool = True) -> CompiledModel:
    """Compile a PyTorch model (evaluated in eval mode) for ``target`` (``host`` or ``aarch64``).

    ``example_inputs`` is a tuple of tensors (a single tensor is accepted) fixing the shapes and
    dtypes of every later call. ``threads``: threads of the parallel loops (default: all cores of
    this machine for the host, 1 for aarch64). ``jit``: build the host machine code now (else at
    the first call). ``cache``: the compile cache of object code (default: ``$BNNMLIR_CACHE_DIR``
    or ``~/.cache/bnnmlir``; a directory; ``False``: none), so compiling the same model again
    skips LLVM. ``progress``: a progress bar on stderr when compiling takes over a second.
    Raises :class:`bnnmlir.CompileError` (with the layer's module path) for what cannot be
    compiled. The ``training`` flags of the model's modules are left as they were.
    ``check_finite``: calls refuse NaN inputs and infinities the compiled code cannot reproduce
    (``ValueError``); False skips that scan (:attr:`CompiledModel.check_finite`).

    ``dynamic_batch``: compile ONE program that takes any batch size (dimension 0 of every input;
    the examples fix the other dimensions): the model is exported with a ``torch.export.Dim`` on
    the batch, checked to compute every image independently, and compiled per image with an entry
    point that takes the batch size (:mod:`bnnmlir.batch`). Without it, calls must use the
    examples' shapes exactly.

    ``exact``: with ``True`` every binary and integer part is bit-exact (float parts within the
    float tolerance): a binary-looking layer whose PyTorch arithmetic cannot be reproduced bit
    for bit (detach straight-through estimators, scaled binary weights, ``torch.sign(0)``) stays
    float and is named in :attr:`CompiledModel.warnings`. With ``False`` such layers run as
    binary kernels and :attr:`CompiledModel.approximations` lists each with its proven bound;
    :meth:`CompiledModel.compare` measures the effect on given inputs.
    """
    import torch

    from bnnmlir.backend.object_cache import resolve_cache
    from bnnmlir.model_cache import LazyImport, ModelLookup
    from bnnmlir.model_key import model_key

    if isinstance(example_inputs, torch.Tensor):
        example_inputs = (example_inputs,)
    example_inputs = tuple(example_inputs)
    info, threads = _target_and_threads(target, threads)
    from bnnmlir.passes.lower_bnn_to_loops import lowering_settings

    options = {"target": [info.name, info.triple, info.cpu, info.features], "threads": threads,
               "exact": exact, "dynamic_batch": dynamic_batch, "lowering": lowering_settings()}
    start = time.perf_counter()
    lookup = ModelLookup.start(model, example_inputs, options, resolve_cache(cache))

    def run_import() -> ImportedModel:
        return _import_forked(model, example_inputs, dynamic_batch, exact)

    found = lookup.find()
    if found is not None:
        entry, program_entry = found
        lazy = LazyImport(entry, run_import, import_with_program=lambda: _import_here(
            model, example_inputs, dynamic_batch, exact))
        program = program_from_entry(
            program_entry, info, threads, dynamic_batch=entry.dynamic_batch, jit=jit,
            cache=cache, compile_times={"model cache": time.perf_counter() - start},
            imported=lambda: lazy.module)
        return CompiledModel(lazy, program, check_finite=check_finite, model_cache="hit")
    start = time.perf_counter()
    imported = run_import()
    compiled = _compile_imported(imported, target, threads, jit, cache=cache, progress=progress,
                                 check_finite=check_finite,
                                 import_time=time.perf_counter() - start)
    _remember_model(lookup, compiled, lambda: model_key(model, example_inputs, options))
    return compiled


def _target_and_threads(target: str, threads: int | None):
    """The target's description and the thread count a compile for it uses."""
    from bnnmlir.compiler import default_threads
    from bnnmlir.target import get_target

    info = get_target(target)
    if threads is None:
        threads = default_threads() if info.is_host else 1
    if threads < 1:
        raise ValueError(f"threads must be at least 1, got {threads}")
    return info, threads


@paused_gc()
def _import_keeping_modes(model, example_inputs: tuple, dynamic_batch: bool,
                          exact: bool) -> ImportedModel:
    """:func:`bnnmlir.frontend.import_model`, then the ``training`` flags as they were."""
    import torch

    from bnnmlir.frontend import import_model

    modes = [(m, m.training) for m in model.modules()] if isinstance(model, torch.nn.Module) else []
    try:
        return import_model(model, example_inputs, dynamic_batch=dynamic_batch, exact=exact)
    finally:
        for module, training in modes:
            module.training = training


FORK_IMPORT_MIN_BYTES = 8 << 20
"""Bytes of parameters and buffers from which a model is imported in a forked process
(``bireal_net18()``: 47 MB; the demo networks: under 1 MB)."""

FORKED_IMPORT_TIMEOUT = 300.0
"""Seconds after which a forked import without a result is stopped and the import runs in
this process (a child may wait forever for a lock a thread of this process held at the fork)."""

_forked_imports = 0


def model_bytes(model) -> int:
    """The bytes of ``model``'s parameters and buffers (0 for what is not a module)."""
    import torch

    if not isinstance(model, torch.nn.Module):
        return 0
    tensors = [*model.parameters(), *model.buffers()]
    return sum(t.numel() * t.element_size() for t in tensors)


def _import_forked(model, example_inputs: tuple, dynamic_batch: bool,
                   exact: bool) -> ImportedModel:
    """:func:`_import_keeping_modes` in a forked copy of this process, which returns the imported
    model without its exported program (made again if :meth:`CompiledModel.compare` asks for
    it): ``torch.export``'s garbage (about 110 MB on ``bireal_net18()``) stays out of this
    process, and on the first import of the process its machinery too (about 120 MB of modules
    and tables). From the second import on, that machinery is loaded here once
    (:func:`_warm_export`), so that each child starts with it. In this process for a model of
    less than :data:`FORK_IMPORT_MIN_BYTES` of parameters and buffers (its import adds little
    memory, and the fork costs about 0.2 s: the child copies the pages it touches), when it may
    not fork (``BNNMLIR_FORK_IMPORT=0``: never, ``1``: whatever the size), and when the child
    fails or gives no result within :data:`FORKED_IMPORT_TIMEOUT`, so that an error is raised
    here as it is."""
    global _forked_imports
    import pickle

    from bnnmlir.forked import deep_pickle, fork_available, run_forked

    import_here = functools.partial(_import_here, model, example_inputs, dynamic_batch, exact)

    def import_in_child() -> bytes:
        imported = _import_keeping_modes(model, example_inputs, dynamic_batch, exact)
        imported.program = None  # not picklable, and large
        return deep_pickle(imported)

    choice = os.environ.get("BNNMLIR_FORK_IMPORT", "").strip()
    if choice not in ("", "0", "1"):
        raise ValueError("BNNMLIR_FORK_IMPORT must be 0 (import in this process), 1 (in a forked "
                         f"process) or unset (by the model's size), got {choice!r}")
    if fork_available() and choice != "0" and (choice == "1" or model_bytes(model)
                                               >= FORK_IMPORT_MIN_BYTES):
        try:
            with EXPORT_LOCK, warnings.catch_warnings():
                _forked_imports += 1
                if _forked_imports > 1:
                    _warm_export()
                (data,) = run_forked([import_in_child], first_here=False,
                                     child_setup=_one_torch_thread,
                                     timeout=FORKED_IMPORT_TIMEOUT)
                # torch's pytree chatter when the specs unpickle
                warnings.filterwarnings("ignore", message=r".*LeafSpec.*", category=FutureWarning)
                imported = pickle.loads(data)
        except Exception:  # noqa: BLE001 - imported again here, which raises the error itself
            log.debug("the import in a forked process failed; importing in this process")
        else:
            imported.export_again = lambda: import_here().program
            return imported
    imported = import_here()
    release_memory()  # torch.export's temporaries
    return imported


def _one_torch_thread() -> None:
    """PyTorch on one thread in a forked child: its thread pool is not forked with it, and a
    parallel region would wait for threads the child does not have."""
    import torch

    torch.set_num_threads(1)


def _import_here(model, example_inputs: tuple, dynamic_batch: bool,
                 exact: bool) -> ImportedModel:
    """:func:`_import_keeping_modes` in this process, under :data:`~bnnmlir.forked.EXPORT_LOCK`
    (its result keeps the exported program)."""
    with EXPORT_LOCK:
        return _import_keeping_modes(model, example_inputs, dynamic_batch, exact)


@functools.cache
def _warm_export() -> None:
    """Export and decompose a tiny model once: ``torch.export``'s modules and tables loaded in
    this process (its first export takes about a second more than the next ones)."""
    import torch

    from bnnmlir.frontend.importer import decomposition_table

    with torch.random.fork_rng(devices=[]):  # the caller's random numbers stay as they were
        tiny = torch.nn.Sequential(torch.nn.Conv2d(1, 1, 1), torch.nn.BatchNorm2d(1)).eval()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*LeafSpec.*", category=FutureWarning)
        torch.export.export(tiny, (torch.zeros(1, 1, 2, 2),)).run_decompositions(
            decomposition_table())
    release_memory()


def _remember_model(lookup: ModelLookup, compiled: CompiledModel,
                    key_after_import: Callable[[], str]) -> None:
    """Store the model entry of a compile that went through the import (when it has a key and
    its program went into the compile cache)."""
    from bnnmlir.model_cache import ModelEntry
    from bnnmlir.program_cache import module_fingerprint

    program_entry = compiled.program._entry
    if lookup.key is not None and program_entry is not None:
        imported = compiled.imported
        lookup.remember(key_after_import, ModelEntry(
            program_key=program_entry.key, module_fingerprint=module_fingerprint(imported.module),
            input_specs=list(imported.input_specs), output_specs=list(imported.output_specs),
            input_names=list(compiled._input_names),
            infinity_exact=tuple(compiled._infinity_exact), warnings=list(imported.warnings),
            approximations=list(imported.approximations), dynamic_batch=imported.dynamic_batch))
    compiled.model_cache = lookup.status


def _compile_imported(imported: ImportedModel, target: str, threads: int | None, jit: bool, *,
                      cache: CacheOption, progress: bool, check_finite: bool,
                      import_time: float, model_cache: str = "not used") -> CompiledModel:
    program = compile_module(
        imported.module.clone(), target=target, threads=threads, imported=imported.module,
        jit=jit, cache=cache, progress=progress, compile_times={"import": import_time},
        dynamic_batch=imported.dynamic_batch,
    )
    return CompiledModel(imported, program, check_finite=check_finite, model_cache=model_cache)


def compile_exported(program, *, target: str = "host", threads: int | None = None,
                     jit: bool = True, cache: CacheOption = None,
                     progress: bool = False, check_finite: bool = True) -> CompiledModel:
    """Compile a ``torch.export.ExportedProgram``: shapes fixed by its example inputs, except a
    batch exported with a ``torch.export.Dim`` on dimension 0, which stays dynamic; ``cache``,
    ``progress`` and ``check_finite`` as for :func:`compile`."""
    from bnnmlir.frontend import import_exported_program

    start = time.perf_counter()
    with EXPORT_LOCK:  # no forked import of another thread starts inside this one
        imported = import_exported_program(program)
    return _compile_imported(imported, target, threads, jit, cache=cache, progress=progress,
                             check_finite=check_finite,
                             import_time=time.perf_counter() - start,
                             model_cache="not used: an exported program is imported as it is")
