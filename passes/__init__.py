"""bnnmlir passes, registered by name.

Each pass is imported only when it is used, so the command-line tools start fast; every entry
names its class, so the registry leads straight to each pass's definition.
"""

from __future__ import annotations

from collections.abc import Callable

from xdsl.passes import ModulePass


def _pack_weights() -> type[ModulePass]:
    from bnnmlir.passes.pack_weights import PackWeightsPass

    return PackWeightsPass


def _annotate_ranges() -> type[ModulePass]:
    from bnnmlir.passes.annotate_ranges import AnnotateRangesPass

    return AnnotateRangesPass


def _fold_to_integer() -> type[ModulePass]:
    from bnnmlir.passes.fold_to_integer import FoldToIntegerPass

    return FoldToIntegerPass


def _fuse_output() -> type[ModulePass]:
    from bnnmlir.passes.fuse_output import FuseOutputPass

    return FuseOutputPass


def _fuse_quantize() -> type[ModulePass]:
    from bnnmlir.passes.fuse_quantize import FuseQuantizePass

    return FuseQuantizePass


def _fuse_elementwise() -> type[ModulePass]:
    from bnnmlir.passes.fuse_elementwise import FuseElementwisePass

    return FuseElementwisePass


def _bufferize() -> type[ModulePass]:
    from bnnmlir.passes.bufferize import BufferizePass

    return BufferizePass


def _plan_arena() -> type[ModulePass]:
    from bnnmlir.passes.plan_arena import PlanArenaPass

    return PlanArenaPass


def _batch_entry() -> type[ModulePass]:
    from bnnmlir.passes.batch_entry import BatchEntryPass

    return BatchEntryPass


def _profile_layers() -> type[ModulePass]:
    from bnnmlir.passes.profile_layers import ProfileLayersPass

    return ProfileLayersPass


def _lower_bnn_to_loops() -> type[ModulePass]:
    from bnnmlir.passes.lower_bnn_to_loops import LowerBnnToLoopsPass

    return LowerBnnToLoopsPass


def _outline_layers() -> type[ModulePass]:
    from bnnmlir.passes.layer_functions import OutlineLayersPass

    return OutlineLayersPass


def _merge_layer_functions() -> type[ModulePass]:
    from bnnmlir.passes.layer_functions import MergeLayerFunctionsPass

    return MergeLayerFunctionsPass


def _convert_bnn_to_llvm() -> type[ModulePass]:
    from bnnmlir.passes.convert_to_llvm import ConvertBnnToLLVMPass

    return ConvertBnnToLLVMPass


def _outline_parallel_loops() -> type[ModulePass]:
    from bnnmlir.passes.outline_parallel_loops import OutlineParallelLoopsPass

    return OutlineParallelLoopsPass


def _lower_to_loops_pipeline() -> type[ModulePass]:
    from bnnmlir.passes.pipelines import LowerToLoopsPipeline

    return LowerToLoopsPipeline


def _to_llvm_pipeline() -> type[ModulePass]:
    from bnnmlir.passes.pipelines import ToLLVMPipeline

    return ToLLVMPipeline


PASSES: dict[str, Callable[[], type[ModulePass]]] = {
    "bnn-pack-weights": _pack_weights,
    "bnn-annotate-ranges": _annotate_ranges,
    "bnn-fold-to-integer": _fold_to_integer,
    "bnn-fuse-output": _fuse_output,
    "bnn-fuse-elementwise": _fuse_elementwise,
    "bnn-fuse-quantize": _fuse_quantize,
    "bnn-bufferize": _bufferize,
    "bnn-plan-arena": _plan_arena,
    "bnn-batch-entry": _batch_entry,
    "bnn-profile-layers": _profile_layers,
    "bnn-outline-layers": _outline_layers,
    "lower-bnn-to-loops": _lower_bnn_to_loops,
    "bnn-merge-layer-functions": _merge_layer_functions,
    "convert-bnn-to-llvm": _convert_bnn_to_llvm,
    "outline-parallel-loops": _outline_parallel_loops,
    "bnn-lower-to-loops-pipeline": _lower_to_loops_pipeline,
    "bnn-to-llvm-pipeline": _to_llvm_pipeline,
}


def get_all_passes() -> dict[str, Callable[[], type[ModulePass]]]:
    """Lazy constructors of every bnnmlir pass, keyed by pass name."""
    return dict(PASSES)
