"""Compile time and memory of whole networks, as a user's first compile sees them.

Each (model, target) runs in a fresh Python process (``python -m bnnmlir.bench.compile``): it
imports PyTorch and bnnmlir, builds the model, then compiles it cold (into an empty compile
cache, with the first ``torch.export`` of the process) and again (from the cache: through the
model-level lookup when the model has a key, else the import and the program lookup). It reports
the wall seconds of both, the steps of the cold one, and three resident set sizes: the process
before the compile (PyTorch and the model), its peak, and the peak of the largest process the
compile started (forked copies, which share most pages with the compiling process, and LLVM
workers).
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

from rich.table import Table

MODELS = {
    "bnn_clip_net 2x3x32x32": "the README demo's BNN-Clip network (2/3)",
    "fashion_mnist 300x1x28x28": "the README demo's trained network on its 300 images (1/3)",
    "bireal_net18 1x3x224x224": "Bi-Real-Net-18",
}
QUICK_MODELS = ("bnn_clip_net 2x3x32x32",)


@dataclass
class CompileResult:
    model: str
    target: str
    cold_s: float
    cached_s: float
    cold_steps: dict[str, float]
    cached_via: str = ""
    """``model cache`` (no import) or ``import + program cache`` (the model has no key)."""
    before_mb: float = 0.0
    """Resident set of the process when the compile starts (PyTorch, the model, its inputs)."""
    peak_mb: float = 0.0
    """Peak resident set of the compiling process."""
    helper_peak_mb: float = 0.0
    """Peak resident set of the largest process the compile started."""

    @property
    def added_mb(self) -> float:
        """What the compile added to the process at its peak."""
        return self.peak_mb - self.before_mb

    def as_dict(self) -> dict[str, object]:
        return {**asdict(self), "added_mb": self.added_mb}


def _make(model: str):
    import torch

    if model.startswith("bnn_clip_net"):
        from bnnmlir.examples.models import bnn_clip_net

        return bnn_clip_net(seed=0), (torch.randn(2, 3, 32, 32),)
    if model.startswith("fashion_mnist"):
        from bnnmlir.models import pretrained_fashion_mnist_bnn_clip
        from bnnmlir.models.pretrained import fashion_mnist_samples

        return pretrained_fashion_mnist_bnn_clip(), (fashion_mnist_samples()[0],)
    if model.startswith("bireal_net18"):
        from bnnmlir.models import bireal_net18

        return bireal_net18(), (torch.randn(1, 3, 224, 224),)
    raise ValueError(f"unknown model {model!r}: expected one of {', '.join(MODELS)}")


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def measure(model: str, target: str, cache: str) -> CompileResult:
    """Compile ``model`` for ``target`` twice in this process (see the module docstring)."""
    import bnnmlir

    net, inputs = _make(model)
    before = _rss_mb()
    times, steps, compiled = [], {}, None
    for _ in range(2):
        start = time.perf_counter()
        compiled = bnnmlir.compile(net, inputs, target=target, threads=1, cache=cache)
        if not compiled.program.target.is_host:
            compiled.program.object_code()
        times.append(time.perf_counter() - start)
        if len(times) == 1:
            steps = dict(compiled.compile_times)
    assert compiled is not None
    via = "model cache" if compiled.model_cache == "hit" else "import + program cache"
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    helpers = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return CompileResult(model, target, times[0], times[1], steps, via, before, peak, helpers)


def bench_compile(quick: bool, targets: Sequence[str] = ("host",),
                  progress: Callable[[str], None] | None = None) -> list[CompileResult]:
    """Each model of :data:`MODELS` (:data:`QUICK_MODELS` with ``quick``) for each target, each
    in a fresh process with a fresh cache directory."""
    results = []
    for model in QUICK_MODELS if quick else MODELS:
        for target in targets:
            if progress:
                progress(f"compile {model} for {target} (a fresh process)")
            with tempfile.TemporaryDirectory(prefix="bnnmlir-bench-cache-") as cache:
                run = subprocess.run(
                    [sys.executable, "-m", "bnnmlir.bench.compile", model, target, cache],
                    capture_output=True, text=True, check=False)
            if run.returncode != 0:
                raise RuntimeError(f"compiling {model} for {target} failed:\n{run.stderr[-3000:]}")
            fields = json.loads(run.stdout.strip().splitlines()[-1])
            fields.pop("added_mb")
            results.append(CompileResult(**fields))
    return results


def compile_table(results: Sequence[CompileResult]) -> Table:
    from bnnmlir.tables import code_column, compact_table, number_column, text_column

    table = compact_table("Compile time and memory: each model in a fresh process, cold (empty "
                          "compile cache) and again (from the cache)")
    code_column(table, "model")
    code_column(table, "target")
    for header in ("cold s", "cached s", "peak MB", "added MB", "helper MB"):
        number_column(table, header)
    text_column(table, "slowest cold steps (s)", min_width=12)
    for r in results:
        steps = sorted(((s, t) for s, t in r.cold_steps.items() if s != "cache hit"),
                       key=lambda item: -item[1])[:3]
        table.add_row(r.model.split()[0], r.target, f"{r.cold_s:.2f}", f"{r.cached_s:.2f}",
                      f"{r.peak_mb:.0f}", f"{r.added_mb:.0f}", f"{r.helper_peak_mb:.0f}",
                      ", ".join(f"{s} {t:.1f}" for s, t in steps))
    shapes = ", ".join(dict.fromkeys(r.model for r in results))
    table.caption = (f"{shapes}. Peak: the compiling process's resident set; added: its peak "
                     "above the resident set before the compile (PyTorch, the model, its "
                     "inputs); helper: the largest process it started (forked copies, sharing "
                     "its pages, and LLVM workers). Cached: "
                     + ", ".join(sorted({r.cached_via for r in results})))
    return table


if __name__ == "__main__":
    from bnnmlir.tools.quick_exit import skip_final_collections

    skip_final_collections()
    print(json.dumps(measure(*sys.argv[1:4]).as_dict()))
