"""The LLVM optimization pipeline and target machines, with llvmlite alone.

:mod:`bnnmlir.backend.llvm_codegen` uses it in this process and the workers of
:mod:`bnnmlir.backend.parallel_opt` in theirs: it imports neither xDSL nor the rest of bnnmlir,
so a worker starts in a fraction of a second.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import llvmlite.binding as llvm


@dataclass(frozen=True)
class Pipeline:
    """The new pass manager's pipeline: ``speed_level`` (``-O<n>``), its two vectorizers and loop
    unrolling.

    LLVM's loop unrolling is off: the generated kernels unroll themselves where it pays (register
    blocks, channel vectors). On LLVM's side it multiplied the code its vectorizers and code
    generator then worked on, and fully unrolled the small constant-trip loops of small images:
    QuickNet at 64x64 took 48 s of optimization and 410 s of code generation for its one
    non-parallel function with unrolling, 3 s and 1.3 s without. Whole networks ran as fast or
    faster without it in same-run comparisons (``bireal_net18()`` 3.48 vs 3.56 ms,
    ``quicknet()`` 6.86 vs 7.81 ms at 224x224, one thread)."""

    speed_level: int = 3
    loop_vectorization: bool = True
    slp_vectorization: bool = True
    loop_unrolling: bool = False

    def describe(self) -> str:
        """The pipeline in the options string of the object cache key."""
        return (f"speed={self.speed_level} loop-vectorize={int(self.loop_vectorization)} "
                f"slp-vectorize={int(self.slp_vectorization)} unroll={int(self.loop_unrolling)}")


@dataclass(frozen=True)
class MachineSpec:
    """What an LLVM target machine is made from: -O3 code generation for ``triple``, ``cpu`` and
    ``features``; position-independent code unless ``jit``."""

    triple: str
    cpu: str
    features: str
    jit: bool = False


@cache
def initialize_llvm() -> None:
    """Initialize the LLVM targets once (``llvm.initialize()`` raises in llvmlite 0.50)."""
    llvm.initialize_all_targets()
    llvm.initialize_all_asmprinters()
    llvm.initialize_native_asmparser()


def parse_ir(ir: str) -> llvm.ModuleRef:
    """Parse and verify LLVM IR text; invalid IR (from an ``llvm``-dialect module that xDSL's
    verifier accepts but LLVM does not, e.g. an alignment of 5) raises ``ValueError`` (LLVM's
    optimizer and code generator may abort the process on it)."""
    initialize_llvm()
    try:
        module = llvm.parse_assembly(ir)
        module.verify()
    except RuntimeError as e:
        raise ValueError(f"LLVM rejects the IR generated from the module: {e}") from None
    return module


def machine_of(spec: MachineSpec) -> llvm.TargetMachine:
    """A new target machine for ``spec``."""
    initialize_llvm()
    return llvm.Target.from_triple(spec.triple).create_target_machine(
        cpu=spec.cpu,
        features=spec.features,
        opt=3,
        reloc="default" if spec.jit else "pic",
        codemodel="jitdefault" if spec.jit else "default",
        jit=spec.jit,
    )


def run_pipeline(module: llvm.ModuleRef, machine: llvm.TargetMachine, pipeline: Pipeline,
                 triple: str) -> None:
    """Optimize ``module`` in place with ``pipeline`` for ``machine`` (``triple`` and the
    machine's data layout set first), then verify it."""
    module.triple = triple
    module.data_layout = str(machine.target_data)
    options = llvm.create_pipeline_tuning_options(speed_level=pipeline.speed_level)
    options.loop_vectorization = pipeline.loop_vectorization
    options.slp_vectorization = pipeline.slp_vectorization
    options.loop_unrolling = pipeline.loop_unrolling
    builder = llvm.create_pass_builder(machine, options)
    builder.getModulePassManager().run(module, builder)
    module.verify()
