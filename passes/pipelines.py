"""The pass pipelines of bnnmlir, written down once.

``bnnmlir-opt -p bnn-to-llvm-pipeline{target=aarch64}`` and ``bnnmlir.compile`` both take their
pass order from :func:`stage_passes`, stage by stage:

========== ===============================================================
stage      passes
========== ===============================================================
optimized  bnn-fold-to-integer, bnn-fuse-output, bnn-fuse-elementwise, bnn-fuse-quantize,
           bnn-pack-weights
buffers    bnn-bufferize, bnn-plan-arena (then bnn-profile-layers for a profiling build,
           bnn-batch-entry for a dynamic batch)
loops      bnn-outline-layers, lower-bnn-to-loops{target, parallel},
           bnn-merge-layer-functions
llvm       convert-bnn-to-llvm{target}
========== ===============================================================
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass

from bnnmlir.passes.batch_entry import BatchEntryPass
from bnnmlir.passes.bufferize import BufferizePass
from bnnmlir.passes.convert_to_llvm import ConvertBnnToLLVMPass
from bnnmlir.passes.fold_to_integer import FoldToIntegerPass
from bnnmlir.passes.fuse_elementwise import FuseElementwisePass
from bnnmlir.passes.fuse_output import FuseOutputPass
from bnnmlir.passes.fuse_quantize import FuseQuantizePass
from bnnmlir.passes.layer_functions import MergeLayerFunctionsPass, OutlineLayersPass
from bnnmlir.passes.lower_bnn_to_loops import LowerBnnToLoopsPass
from bnnmlir.passes.pack_weights import PackWeightsPass
from bnnmlir.passes.plan_arena import PlanArenaPass
from bnnmlir.passes.profile_layers import ProfileLayersPass

STAGES = ("optimized", "buffers", "loops", "llvm")


def stage_passes(stage: str, target: str = "host", parallel: bool = False, *,
                 batch_entry: BatchEntryPass | None = None,
                 profile: ProfileLayersPass | None = None, jobs: int = 1) -> list[ModulePass]:
    """The passes that take the IR of the previous stage to ``stage``; ``profile`` (a profiling
    build) then ``batch_entry`` (for a per-image program served over a dynamic batch) end the
    ``buffers`` stage; ``jobs``: processes for the clip8 folds (the IR does not depend on it)."""
    if stage == "optimized":
        # Folding first: it creates the bnn.threshold ops that fusion absorbs, and it turns
        # binarize(cast(constant)) into binarize(constant), which weight packing then folds.
        # The float chains left after folding are fused last.
        return [FoldToIntegerPass(jobs=jobs), FuseOutputPass(), FuseElementwisePass(),
                FuseQuantizePass(), PackWeightsPass()]
    if stage == "buffers":
        extra = [p for p in (profile, batch_entry) if p is not None]
        return [BufferizePass(), PlanArenaPass(), *extra]
    if stage == "loops":
        return [OutlineLayersPass(), LowerBnnToLoopsPass(target=target, parallel=parallel),
                MergeLayerFunctionsPass()]
    if stage == "llvm":
        return [ConvertBnnToLLVMPass(target=target)]
    raise ValueError(f"unknown stage '{stage}': expected one of {', '.join(STAGES)}")


def passes_until(last_stage: str, target: str = "host", parallel: bool = False) -> list[ModulePass]:
    """All passes from tensor-level IR up to and including ``last_stage``."""
    if last_stage not in STAGES:
        raise ValueError(f"unknown stage '{last_stage}': expected one of {', '.join(STAGES)}")
    passes: list[ModulePass] = []
    for stage in STAGES[: STAGES.index(last_stage) + 1]:
        passes += stage_passes(stage, target, parallel)
    return passes


@dataclass(frozen=True)
class LowerToLoopsPipeline(ModulePass):
    """Tensor-level bnn IR to loop nests: every stage up to ``loops``."""

    name = "bnn-lower-to-loops-pipeline"

    target: str = "host"
    parallel: bool = False

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        for p in passes_until("loops", self.target, self.parallel):
            p.apply(ctx, op)


@dataclass(frozen=True)
class ToLLVMPipeline(ModulePass):
    """Tensor-level bnn IR to the llvm dialect: every stage up to ``llvm``."""

    name = "bnn-to-llvm-pipeline"

    target: str = "host"
    parallel: bool = False

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        for p in passes_until("llvm", self.target, self.parallel):
            p.apply(ctx, op)
