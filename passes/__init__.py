"""bnnmlir passes, registered by name.

Each entry maps a pass name to the module that defines it; the module is imported only when the
pass is used, so the command-line tools start fast.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from xdsl.passes import ModulePass

PASS_MODULES: dict[str, str] = {
    "bnn-pack-weights": "bnnmlir.passes.pack_weights",
    "bnn-annotate-ranges": "bnnmlir.passes.value_range",
    "bnn-fold-to-integer": "bnnmlir.passes.fold_to_integer",
    "bnn-fuse-output": "bnnmlir.passes.fuse_output",
    "bnn-bufferize": "bnnmlir.passes.bufferize",
    "bnn-plan-arena": "bnnmlir.passes.plan_arena",
    "lower-bnn-to-loops": "bnnmlir.passes.lower_bnn_to_loops",
    "convert-bnn-to-llvm": "bnnmlir.passes.convert_to_llvm",
    "outline-parallel-loops": "bnnmlir.passes.outline_parallel_loops",
    "bnn-lower-to-loops-pipeline": "bnnmlir.passes.pipelines",
    "bnn-to-llvm-pipeline": "bnnmlir.passes.pipelines",
}


def _find_pass(module_name: str, pass_name: str) -> type[ModulePass]:
    module = importlib.import_module(module_name)
    for value in vars(module).values():
        if (
            isinstance(value, type)
            and issubclass(value, ModulePass)
            and getattr(value, "name", None) == pass_name
        ):
            return value
    raise LookupError(f"module {module_name} defines no pass named '{pass_name}'")


def get_all_passes() -> dict[str, Callable[[], type[ModulePass]]]:
    """Lazy constructors of every bnnmlir pass, keyed by pass name."""
    return {
        name: (lambda m=module, n=name: _find_pass(m, n)) for name, module in PASS_MODULES.items()
    }
