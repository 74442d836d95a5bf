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
            if tuple(arg.shape) != tuple(spec.shape):
                raise ValueError(
                    f"input {i} must have shape {list(spec.shape)}, got {list(arg.shape)}"
                )
            arrays.append(arg.detach().cpu().contiguous().numpy())
        return arrays

    def __call__(self, *args: torch.Tensor):
        import torch

        arrays = self._check(args)
        if self.program.target.is_host:
            outputs = self.program(*arrays)
        else:
            outputs = self.program.run_aarch64(*arrays)
        tensors = [
            torch.from_numpy(np.asarray(out)).to(spec.dtype).reshape(spec.shape)
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
                                         jit=False)
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


def _target_name(target: str) -> str:
    from bnnmlir.target import get_target

    return get_target(target).name


_C_TYPES = {"float32": "float", "int8": "int8_t", "int16": "int16_t", "int32": "int32_t",
            "uint8": "uint8_t", "int64": "int64_t"}


def c_header(program: CompiledProgram) -> str:
    """A C header declaring the entry point and the sizes of its buffers."""
    sig = program.signature
    guard = f"BNNMLIR_{sig.entry.upper()}_H"
    lines = [
        f"/* {sig.entry}: compiled by bnnmlir for {program.target.triple} ({program.target.cpu}).",
        " * Link with model.o and runtime/*.c (-lpthread). Buffers are row-major; activations are",
        " * passed in the model's own layout. The arena holds every intermediate buffer; allocate",
        " * it with bnnmlir_arena_alloc(BNNMLIR_ARENA_BYTES). Set threads with",
        " * bnnmlir_set_num_threads(k) before calling. */",
        f"#ifndef {guard}",
        f"#define {guard}",
        "#include <stdint.h>",
        '#include "runtime/bnnmlir_runtime.h"',
        "",
        f"#define BNNMLIR_NUM_INPUTS {len(sig.inputs)}",
        f"#define BNNMLIR_NUM_OUTPUTS {len(sig.outputs)}",
        f"#define BNNMLIR_ARENA_BYTES {sig.arena_size}",
    ]
    params = []
    for kind, specs in (("INPUT", sig.inputs), ("OUTPUT", sig.outputs)):
        for i, spec in enumerate(specs):
            shape = ", ".join(str(d) for d in spec.shape)
            lines.append(f"#define BNNMLIR_{kind}{i}_RANK {len(spec.shape)}")
            lines.append(f"#define BNNMLIR_{kind}{i}_SHAPE {{{shape}}}")
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


def compile(model, example_inputs, *, target: str = "host", threads: int | None = None,
            jit: bool = True, exact: bool = True) -> CompiledModel:
    """Compile a PyTorch model (evaluated in eval mode) for ``target`` (``host`` or ``aarch64``).

    ``example_inputs`` is a tuple of tensors (a single tensor is accepted) fixing the shapes and
    dtypes of every later call. ``threads``: threads of the parallel loops (default: all cores of
    this machine for the host, 1 for aarch64). ``jit``: build the host machine code now (else at
    the first call). Raises :class:`bnnmlir.CompileError` (with the layer's module path) for what
    cannot be compiled. The ``training`` flags of the model's modules are left as they were.

    ``exact``: with ``True`` every binary and integer part is bit-exact (float parts within the
    float tolerance): a binary-looking layer whose PyTorch arithmetic cannot be reproduced bit
    for bit (detach straight-through estimators, scaled binary weights, ``torch.sign(0)``) stays
    float and is named in :attr:`CompiledModel.warnings`. With ``False`` such layers run as
    binary kernels and :attr:`CompiledModel.approximations` lists each with its proven bound;
    :meth:`CompiledModel.compare` measures the effect on given inputs.
    """
    import torch

    from bnnmlir.frontend import import_model

    if isinstance(example_inputs, torch.Tensor):
        example_inputs = (example_inputs,)
    modes = [(m, m.training) for m in model.modules()] if isinstance(model, torch.nn.Module) else []
    try:
        imported = import_model(model, tuple(example_inputs), exact=exact)
    finally:
        for module, training in modes:
            module.training = training
    program = compile_module(
        imported.module.clone(), target=target, threads=threads, imported=imported.module, jit=jit
    )
    return CompiledModel(imported, program)


def compile_exported(program, *, target: str = "host", threads: int | None = None,
                     jit: bool = True) -> CompiledModel:
    """Compile a ``torch.export.ExportedProgram`` (shapes fixed by its example inputs)."""
    from bnnmlir.frontend import import_exported_program

    imported = import_exported_program(program)
    compiled = compile_module(
        imported.module.clone(), target=target, threads=threads, imported=imported.module, jit=jit
    )
    return CompiledModel(imported, compiled)
