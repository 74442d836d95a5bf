"""Compile time of whole networks: a cold compile (empty compile cache) and the same compile
again (from the cache: through the model-level lookup when the model has a key, else the import
and the program lookup), with the slowest steps of the cold one."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

from rich.table import Table


@dataclass
class CompileResult:
    model: str
    target: str
    cold_s: float
    cached_s: float
    cold_steps: dict[str, float]
    cached_via: str = ""
    """``model cache`` (no import) or ``import + program cache`` (the model has no key)."""

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def _models(quick: bool) -> list[tuple[str, Callable[[], tuple[object, tuple]]]]:
    import torch

    from bnnmlir.examples.models import bireal_net18, bnn_clip_net

    models = [("bnn_clip_net 2x3x32x32", lambda: (bnn_clip_net(), (torch.randn(2, 3, 32, 32),)))]
    if not quick:
        models.append(
            ("bireal_net18 1x3x224x224", lambda: (bireal_net18(), (torch.randn(1, 3, 224, 224),)))
        )
    return models


def bench_compile(quick: bool, targets: Sequence[str] = ("host",),
                  progress: Callable[[str], None] | None = None) -> list[CompileResult]:
    """Compile each model twice per target into a fresh cache directory; time both."""
    import bnnmlir

    results = []
    for name, make in _models(quick):
        model, inputs = make()
        for target in targets:
            if progress:
                progress(f"compile {name} for {target}")
            with tempfile.TemporaryDirectory(prefix="bnnmlir-bench-cache-") as cache:
                times = []
                for _ in range(2):
                    start = time.perf_counter()
                    compiled = bnnmlir.compile(model, inputs, target=target, threads=1, cache=cache)
                    if not compiled.program.target.is_host:
                        compiled.program.object_code()
                    times.append(time.perf_counter() - start)
                    if len(times) == 1:
                        steps = compiled.compile_times
            via = ("model cache" if compiled.model_cache == "hit"
                   else "import + program cache")
            results.append(CompileResult(name, target, times[0], times[1], steps, via))
    return results


def compile_table(results: Sequence[CompileResult]) -> Table:
    table = Table(title="Compile time: cold (empty compile cache) and cached (same compile again)")
    for column in ("model", "target", "cold s", "cached s", "cached via", "slowest cold steps"):
        table.add_column(column, justify="left" if column in ("model", "target", "cached via")
                         else "right")
    for r in results:
        steps = sorted(((s, t) for s, t in r.cold_steps.items() if s != "cache hit"),
                       key=lambda item: -item[1])[:3]
        table.add_row(r.model, r.target, f"{r.cold_s:.2f}", f"{r.cached_s:.2f}", r.cached_via,
                      ", ".join(f"{s} {t:.1f}" for s, t in steps))
    return table
