"""``bnnmlir.compile``: from a PyTorch model to a bit-exact compiled callable.

::

    compiled = bnnmlir.compile(model, (example,))      # host JIT by default
    y = compiled(x)                                     # == model.eval()(x), bit for bit
    print(compiled.report())                            # per-layer table
    compiled.mlir("optimized")                          # IR after a stage
    compiled.save("out/", target="aarch64-linux-gnu")   # object + header + runtime sources
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from bnnmlir.compiler import CompiledProgram, check_entry_name, compile_module, rename_function
from bnnmlir.report import LayerReport, layer_report

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from bnnmlir.frontend import ImportedModel


class CompiledModel:
    """A compiled PyTorch model: call it like the model (in eval mode)."""

    def __init__(self, imported: ImportedModel, program: CompiledProgram):
        self.imported = imported
        self.program = program
        self._lock = threading.Lock()
        self._programs: dict[tuple[str, int, str], CompiledProgram] = {
            (program.target.name, program.threads, program.signature.entry): program
        }

    @property
    def target(self) -> str:
        return self.program.target.name

    # ---- calling ----------------------------------------------------------------------------
    def _check(self, args: Sequence[object]) -> list[np.ndarray]:
        import torch

        specs = self.imported.input_specs
        if len(args) != len(specs):
            raise TypeError(f"the model takes {len(specs)} inputs, got {len(args)}")
        arrays = []
        for i, (arg, spec) in enumerate(zip(args, specs)):
            if not isinstance(arg, torch.Tensor):
                raise TypeError(f"input {i} must be a torch.Tensor, got {type(arg).__name__}")
            if arg.dtype != spec.dtype:
                raise TypeError(f"input {i} must have dtype {spec.dtype}, got {arg.dtype}")
            _check_shape(i, tuple(arg.shape), tuple(spec.shape), self.dynamic_batch)
            arrays.append(arg.detach().cpu().contiguous().numpy())
        return arrays

    @property
    def dynamic_batch(self) -> bool:
        """Whether calls take any batch size (``bnnmlir.compile(..., dynamic_batch=True)``, or an
        exported program with a ``torch.export.Dim`` on the batch)."""
        return self.imported.dynamic_batch

    def __call__(self, *args: torch.Tensor):
        import torch

        arrays = self._check(args)
        if self.program.target.is_host:
            outputs = self.program(*arrays)
        else:
            outputs = self.program.run_aarch64(*arrays)
        batch = (arrays[0].shape[0],) if self.dynamic_batch else ()
        tensors = [
            torch.from_numpy(np.asarray(out)).to(spec.dtype).reshape(
                batch + tuple(spec.shape[len(batch):]))
            for out, spec in zip(outputs, self.imported.output_specs)
        ]
        return tensors[0] if len(tensors) == 1 else tuple(tensors)

    # ---- inspection -------------------------------------------------------------------------
    def report(self) -> LayerReport:
        """Per-layer table: path, kind, accumulator width, output type, MACs, weight bytes."""
        return layer_report(self.program.mlir_module("optimized"), self.program.target)

    def mlir(self, stage: str = "optimized") -> str:
        """The IR after ``stage``: ``imported``, ``optimized``, ``buffers``, ``loops``, ``llvm``."""
        return self.program.mlir(stage)

    @property
    def warnings(self) -> list[str]:
        return list(self.imported.warnings)

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
                                         jit=False, dynamic_batch=self.dynamic_batch)
                self._programs[key] = program
        return program

    def save(self, path: str | Path, target: str = "aarch64-linux-gnu", *,
             threads: int | None = None, entry: str | None = None) -> Path:
        """Write ``model.o`` (for ``target``), ``model.h`` and the runtime sources into ``path``.

        ``entry``: the C name of the entry point (default ``forward``). Saving again for the same
        target, threads and entry reuses the compiled object code.
        """
        program = self.program_for(target, threads=threads, entry=entry)
        out = Path(path)
        out.mkdir(parents=True, exist_ok=True)
        (out / "model.o").write_bytes(program.object_code())
        (out / "model.h").write_text(c_header(program))
        runtime_dir = out / "runtime"
        runtime_dir.mkdir(exist_ok=True)
        for source in resources.files("bnnmlir.runtime").iterdir():
            if source.name.endswith((".c", ".h")):
                with resources.as_file(source) as src:
                    shutil.copyfile(src, runtime_dir / source.name)
        return out


def _check_shape(index: int, got: tuple, expected: tuple, dynamic_batch: bool) -> None:
    """``ValueError`` unless an input of shape ``got`` fits ``expected`` (per image when
    ``dynamic_batch``); a batch size other than the example's says how to allow any."""
    if dynamic_batch:
        if len(got) == len(expected) and got[1:] == expected[1:] and got[0] >= 1:
            return
        raise ValueError(f"input {index} must have shape {['n', *expected[1:]]} with a batch n "
                         f">= 1, got {list(got)}")
    if got == expected:
        return
    message = f"input {index} must have shape {list(expected)}, got {list(got)}"
    if len(got) == len(expected) and got[1:] == expected[1:]:
        message += (f": the model was compiled for batch {expected[0]}; compile it with "
                    "bnnmlir.compile(model, example_inputs, dynamic_batch=True) to accept any "
                    "batch size")
    raise ValueError(message)


def _target_name(target: str) -> str:
    from bnnmlir.target import get_target

    return get_target(target).name


_C_TYPES = {"float32": "float", "int8": "int8_t", "int16": "int16_t", "int32": "int32_t",
            "uint8": "uint8_t", "int64": "int64_t"}


def c_header(program: CompiledProgram) -> str:
    """A C header declaring the entry point and the sizes of its buffers."""
    from bnnmlir.batch import BatchSignature

    sig = program.signature
    batch = sig if isinstance(sig, BatchSignature) else None
    guard = f"BNNMLIR_{sig.entry.upper()}_H"
    lines = [
        f"/* {sig.entry}: compiled by bnnmlir for {program.target.triple} ({program.target.cpu}).",
        " * Link with model.o and runtime/*.c (-lpthread). Buffers are row-major; activations are",
        " * passed in the model's own layout. The arena holds every intermediate buffer; allocate",
        f" * it with bnnmlir_arena_alloc(BNNMLIR_ARENA_BYTES{'(n)' if batch else ''}). Set "
        "threads with",
        " * bnnmlir_set_num_threads(k) before calling. */",
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
            jit: bool = True, dynamic_batch: bool = False) -> CompiledModel:
    """Compile a PyTorch model (evaluated in eval mode) for ``target`` (``host`` or ``aarch64``).

    ``example_inputs`` is a tuple of tensors (a single tensor is accepted) fixing the shapes and
    dtypes of every later call. ``threads``: threads of the parallel loops (default: all cores of
    this machine for the host, 1 for aarch64). ``jit``: build the host machine code now (else at
    the first call). Raises :class:`bnnmlir.CompileError` (with the layer's module path) for what
    cannot be compiled. The ``training`` flags of the model's modules are left as they were.

    ``dynamic_batch``: compile ONE program that takes any batch size (dimension 0 of every input;
    the examples fix the other dimensions): the model is exported with a ``torch.export.Dim`` on
    the batch, checked to compute every image independently, and compiled per image with an entry
    point that takes the batch size (:mod:`bnnmlir.batch`). Without it, calls must use the
    examples' shapes exactly.
    """
    import torch

    from bnnmlir.frontend import import_model

    if isinstance(example_inputs, torch.Tensor):
        example_inputs = (example_inputs,)
    modes = [(m, m.training) for m in model.modules()] if isinstance(model, torch.nn.Module) else []
    try:
        imported = import_model(model, tuple(example_inputs), dynamic_batch=dynamic_batch)
    finally:
        for module, training in modes:
            module.training = training
    return _compile_imported(imported, target, threads, jit)


def _compile_imported(imported: ImportedModel, target: str, threads: int | None,
                      jit: bool) -> CompiledModel:
    program = compile_module(
        imported.module.clone(), target=target, threads=threads, imported=imported.module,
        jit=jit, dynamic_batch=imported.dynamic_batch,
    )
    return CompiledModel(imported, program)


def compile_exported(program, *, target: str = "host", threads: int | None = None,
                     jit: bool = True) -> CompiledModel:
    """Compile a ``torch.export.ExportedProgram``: shapes fixed by its example inputs, except a
    batch exported with a ``torch.export.Dim`` on dimension 0, which stays dynamic."""
    from bnnmlir.frontend import import_exported_program

    return _compile_imported(import_exported_program(program), target, threads, jit)
