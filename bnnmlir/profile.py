"""Per-layer profile of a compiled model: where the time of one call goes.

:meth:`bnnmlir.api.CompiledModel.profile` runs a profiling build of the same program (the
``bnn-profile-layers`` pass: the runtime's monotonic clock read before and after each layer, the
nanoseconds stored in one more output) ``warmup + repeat`` times and keeps, per layer, the median
over the ``repeat`` timed calls. The rows are the layers of :meth:`~bnnmlir.api.CompiledModel.report`
in the same order (a layer that runs no code of its own has 0 ms), with

* ``ms`` and its share of the median total (the whole call, from entry to return);
* achieved ops per second, ``2 * MACs / time`` (binary MACs for binary layers);
* for binary and int8 layers on the host, that rate as a fraction of the machine limit measured
  by :func:`bnnmlir.bench.limits.machine_limit` in the same process.

aarch64 programs run under ``qemu-aarch64``: their times are those of the emulator
(:attr:`LayerProfile.emulated`), useful to compare layers with each other, never to predict an ARM
core; no machine limit applies to them. For a dynamic batch, each layer's time is summed over
the images of the call.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
from rich.table import Table

from bnnmlir.report import LayerReport
from bnnmlir.tables import code_column, compact_table, number_column, render, text_column

LIMITED_KINDS = ("binary", "int8")
"""Layer kinds that have a machine limit (a fraction of it is reported)."""


@dataclass
class ProfileRow:
    layer: str
    kind: str
    ms: float
    share: float
    """Fraction of the total time of a call (0..1)."""
    macs: int
    ops_per_second: float | None
    """``2 * MACs / seconds``; ``None`` for layers without MACs or without measurable time."""
    limit_fraction: float | None
    """``ops_per_second`` / the machine limit of the layer's kind; ``None`` where none applies."""


@dataclass
class LayerProfile:
    rows: list[ProfileRow]
    total_ms: float
    """Median wall time of a whole call, in milliseconds."""
    target: str
    threads: int
    repeat: int
    emulated: bool
    """Times of an aarch64 program under qemu-aarch64 (emulated, not an ARM core's)."""
    limits: dict[str, float | None] = field(default_factory=dict)
    """Ops per second of the machine limit per kind (``None``: not measured)."""
    outputs: object = None
    """The outputs of the last profiled call, as the compiled model returns them."""

    @property
    def layers_ms(self) -> float:
        """Sum of the layers' medians (close to :attr:`total_ms`)."""
        return sum(r.ms for r in self.rows)

    def as_dict(self) -> dict[str, object]:
        return {"target": self.target, "threads": self.threads, "repeat": self.repeat,
                "emulated": self.emulated, "total_ms": self.total_ms,
                "limits_ops_per_second": self.limits, "rows": [asdict(r) for r in self.rows]}

    def table(self) -> Table:
        how = "qemu-emulated" if self.emulated else (
            f"{self.threads} thread" + ("s" if self.threads > 1 else ""))
        table = compact_table(f"bnnmlir profile ({self.target}, {how}, median of {self.repeat})")
        text_column(table, "layer", min_width=min(max((len(r.layer) for r in self.rows),
                                                      default=5), 20))
        code_column(table, "kind")
        for column in ("ms", "%", "GOPS", "% limit"):
            number_column(table, column)
        for r in self.rows:
            table.add_row(
                r.layer, r.kind, f"{r.ms:.4f}", f"{100 * r.share:.1f}",
                "-" if r.ops_per_second is None else f"{r.ops_per_second / 1e9:,.1f}",
                "-" if r.limit_fraction is None else f"{100 * r.limit_fraction:.0f}",
            )
        table.add_row("total", "", f"{self.total_ms:.4f}", "100.0", "", "", style="bold")
        limits = ", ".join(f"{kind} {value / 1e9:,.0f}" for kind, value in self.limits.items()
                           if value is not None)
        caption = [f"layers: {self.layers_ms:.4f} ms", "GOPS: 2 * MACs / time / 1e9"]
        if limits:
            caption.append(f"% limit: of the measured limit per core, GOPS {limits}")
        if self.emulated:
            caption.append("times of qemu-aarch64: compare layers only")
        table.caption = "; ".join(caption)
        return table

    def __rich__(self) -> Table:
        return self.table()

    def __str__(self) -> str:
        return render(self.table())


def _limits(emulated: bool) -> dict[str, float | None]:
    if emulated:
        return {}
    from bnnmlir.bench.limits import machine_limit

    return {kind: machine_limit(kind) for kind in LIMITED_KINDS}


def profile_rows(report: LayerReport, layers: Sequence[str], nanoseconds: np.ndarray,
                 limits: dict[str, float | None]) -> tuple[list[ProfileRow], float]:
    """Rows in the report's order from ``nanoseconds`` (calls x ``len(layers) + 1`` slots, the
    last one the whole call): per slot the median over the calls. Returns the rows and the median
    total in milliseconds."""
    medians = [statistics.median(nanoseconds[:, i].tolist()) / 1e6
               for i in range(nanoseconds.shape[1])]
    total = medians[-1]
    by_layer = dict(zip(layers, medians))
    known = {r.layer for r in report.rows}
    entries = [(r.layer, r.kind, r.macs) for r in report.rows]
    entries += [(layer, "-", 0) for layer in layers if layer not in known]
    rows = []
    for layer, kind, macs in entries:
        ms = by_layer.get(layer, 0.0)
        rate = 2 * macs / (ms / 1e3) if macs and ms > 0 else None
        limit = limits.get(kind)
        rows.append(ProfileRow(layer, kind, ms, ms / total if total > 0 else 0.0, macs, rate,
                               rate / limit if rate is not None and limit else None))
    return rows, total


def profiled_layers(program) -> list[str]:
    """The layer of each slot of a profiling build (``bnn.profile_layers``)."""
    from xdsl.dialects import func

    from bnnmlir.passes.profile_layers import LAYERS_ATTR

    for op in program.mlir_module("buffers").ops:
        if isinstance(op, func.FuncOp) and LAYERS_ATTR in op.attributes:
            return [a.data for a in op.attributes[LAYERS_ATTR].data]
    raise ValueError("the program is not a profiling build (no bnn.profile_layers)")


def check_repeat(repeat: int, warmup: int) -> None:
    if repeat < 1 or warmup < 0:
        raise ValueError(f"repeat must be at least 1 and warmup at least 0, got {repeat}, {warmup}")


def run_profile(program, arrays: Sequence[np.ndarray], report: LayerReport, *, repeat: int,
                warmup: int) -> tuple[list[np.ndarray], LayerProfile]:
    """Call the profiling build ``program`` ``warmup + repeat`` times on ``arrays``; returns the
    model outputs of the last call and the profile (its :attr:`~LayerProfile.outputs` unset)."""
    check_repeat(repeat, warmup)
    emulated = not program.target.is_host
    if emulated:
        outputs = program.run_aarch64(*arrays, repeat=warmup + repeat)
        slots = outputs[-1].reshape(warmup + repeat, -1, outputs[-1].shape[-1])[warmup:]
        last = [out[-1] if warmup + repeat > 1 else out for out in outputs[:-1]]
    else:
        for _ in range(warmup):
            program(*arrays)
        runs = [program(*arrays) for _ in range(repeat)]
        slots = np.stack([run[-1] for run in runs])
        last = runs[-1][:-1]
    per_call = slots.sum(axis=1)  # a dynamic batch: one row per image
    limits = _limits(emulated)
    rows, total = profile_rows(report, profiled_layers(program), per_call, limits)
    return last, LayerProfile(rows, total, program.target.name, program.threads, repeat,
                              emulated, limits)


__all__ = ["LayerProfile", "ProfileRow", "profile_rows", "run_profile"]
