"""Whole networks of the model zoo against their peers, measured in the same run.

For each network of :data:`bnnmlir.models.ZOO` (224x224, batch 1, random weights):

* **bnnmlir**: compiled for the host without the compile cache (the compile column is that cold
  compile, 1 thread), checked ``torch.equal`` to PyTorch, then timed with each thread count;
* **torch fp32**: a float ResNet-18 of the same size (:func:`float_resnet18`, ``channels_last``,
  ``torch.set_num_threads`` matched), the network a binary ResNet-18 replaces;
* **torch int8**: that ResNet-18 quantized by PyTorch (FX graph mode, the default engine), when
  the build of PyTorch can;
* **LCE** (``--peer lce``): Larq Compute Engine 0.16 on larq-zoo's own definition of the same
  network, converted by LCE's converter, timed by :mod:`bnnmlir.bench.lce_runner` in the LCE
  environment (``scripts/setup-lce.sh``), one subprocess per thread count.

The PyTorch peers do not depend on the zoo network: each is timed once per thread count and shown
on every row. Times are medians of blocks of calls after warm-up (:class:`TimingPolicy`); the
bnnmlir programs and the PyTorch peers take turns block by block.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rich.table import Table

from bnnmlir.bench.host import TimingPolicy, best_block_medians
from bnnmlir.tables import compact_table, number_column, text_column

LCE_VENV_ENV = "BNNMLIR_LCE_VENV"
"""Environment variable naming the LCE environment (default ``.venv-lce`` of the source tree, then
of the current directory)."""
LCE_SETUP_HINT = "create it with scripts/setup-lce.sh"
IMAGE = (1, 3, 224, 224)


@dataclass
class ModelResult:
    model: str
    threads: int
    compile_s: float
    exact: bool
    bnnmlir_ms: float | None
    fp32_ms: float | None = None
    int8_ms: float | None = None
    lce_ms: float | None = None
    notes: list[str] = field(default_factory=list)

    def ratio(self, peer_ms: float | None) -> float | None:
        """Peer time / bnnmlir time (> 1: bnnmlir is faster)."""
        if peer_ms is None or not self.bnnmlir_ms:
            return None
        return peer_ms / self.bnnmlir_ms

    def as_dict(self) -> dict[str, object]:
        return asdict(self) | {"vs_fp32": self.ratio(self.fp32_ms),
                               "vs_int8": self.ratio(self.int8_ms),
                               "vs_lce": self.ratio(self.lce_ms)}


class LceUnavailable(RuntimeError):
    """The LCE environment is missing or its runner failed."""


def _basic_block(torch_nn, in_channels: int, out_channels: int, stride: int):
    class BasicBlock(torch_nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = torch_nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
            self.bn1 = torch_nn.BatchNorm2d(out_channels)
            self.conv2 = torch_nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
            self.bn2 = torch_nn.BatchNorm2d(out_channels)
            self.relu = torch_nn.ReLU()
            self.down = None
            if stride != 1 or in_channels != out_channels:
                self.down = torch_nn.Sequential(
                    torch_nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                    torch_nn.BatchNorm2d(out_channels))

        def forward(self, x):
            shortcut = x if self.down is None else self.down(x)
            y = self.relu(self.bn1(self.conv1(x)))
            return self.relu(self.bn2(self.conv2(y)) + shortcut)

    return BasicBlock()


def float_resnet18(classes: int = 1000):
    """A float ResNet-18 (He et al. 2016: 7x7 stem, max pooling, 2 basic blocks per stage of
    64/128/256/512 channels, average pooling, a dense head), random weights, eval mode."""
    from torch import nn

    layers = [nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(),
              nn.MaxPool2d(3, 2, 1)]
    channels = 64
    for stage, width in enumerate((64, 128, 256, 512)):
        for block in range(2):
            stride = 2 if stage > 0 and block == 0 else 1
            layers.append(_basic_block(nn, channels, width, stride))
            channels = width
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, classes)]
    return nn.Sequential(*layers).eval()


def quantized_resnet18(model, example):
    """``model`` quantized to int8 by PyTorch's FX graph mode (default engine), or ``None``
    when this PyTorch cannot."""
    import warnings

    import torch

    warnings.filterwarnings("ignore", module="torch.ao")  # deprecation notes of quantized ops
    try:
        from torch.ao.quantization import get_default_qconfig_mapping
        from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

        engine = torch.backends.quantized.engine
        prepared = prepare_fx(model, get_default_qconfig_mapping(engine), (example,))
        with torch.inference_mode():
            prepared(example)
        return convert_fx(prepared).eval()
    except Exception:  # noqa: BLE001 - a build without quantized kernels: no int8 peer
        return None


def _torch_peers(threads: int) -> dict[str, Callable[[], object]]:
    """Calls of the PyTorch peers, each setting ``threads``."""
    import torch

    example = torch.randn(*IMAGE)
    fp32 = float_resnet18()
    int8 = quantized_resnet18(float_resnet18(), example)
    fp32 = fp32.to(memory_format=torch.channels_last)
    x_last = example.contiguous(memory_format=torch.channels_last)

    def run(model, x):
        def call():
            torch.set_num_threads(threads)
            with torch.inference_mode():
                return model(x)
        return call

    peers = {"fp32": run(fp32, x_last)}
    if int8 is not None:
        peers["int8"] = run(int8, example)
    return peers


def lce_environments() -> list[Path]:
    """Where the LCE environment is looked for: ``$BNNMLIR_LCE_VENV``, then ``.venv-lce`` of the
    source tree and of the current directory."""
    candidates = [Path(os.environ[LCE_VENV_ENV])] if os.environ.get(LCE_VENV_ENV) else []
    return candidates + [Path(__file__).resolve().parents[2] / ".venv-lce",
                         Path.cwd() / ".venv-lce"]


def lce_python(candidates: Sequence[Path] | None = None) -> Path:
    """The interpreter of the first LCE environment of ``candidates`` (default:
    :func:`lce_environments`); :class:`LceUnavailable` naming the fix when there is none."""
    candidates = lce_environments() if candidates is None else list(candidates)
    for venv in candidates:
        python = venv / "bin" / "python"
        if python.is_file():
            return python
    raise LceUnavailable(
        "Larq Compute Engine is not installed: no .venv-lce found (looked in "
        f"{', '.join(str(c) for c in candidates)}); {LCE_SETUP_HINT}, or set {LCE_VENV_ENV}")


def run_lce(models: Sequence[str], threads: Sequence[int], repeats: int = 20,
            python: Path | None = None, timeout: float = 3600) -> dict[int, dict[str, float]]:
    """Milliseconds of LCE on larq-zoo's version of each of ``models`` with each thread count
    (see :mod:`bnnmlir.bench.lce_runner`): ``{threads: {model: ms}}``."""
    python = python or lce_python()
    runner = Path(__file__).with_name("lce_runner.py")
    command = [str(python), str(runner), *models, "--threads", ",".join(map(str, threads)),
               "--repeats", str(repeats)]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                                check=False)
    except subprocess.TimeoutExpired:
        raise LceUnavailable(f"the LCE runner took more than {timeout:.0f} s") from None
    if result.returncode != 0:
        tail = "\n".join(result.stderr.strip().splitlines()[-5:])
        raise LceUnavailable(f"the LCE runner failed (exit {result.returncode}): {tail}")
    timed = json.loads(result.stdout)
    return {t: {name: timed[name]["ms"][str(t)] for name in models} for t in threads}


def bench_models(names: Sequence[str], threads: Sequence[int], policy: TimingPolicy, *,
                 peers: bool = True, lce: bool = False,
                 progress: Callable[[str], None] | None = None) -> tuple[list[ModelResult], list[str]]:
    """One row per network and thread count; also notes (peers that could not run)."""
    import torch

    import bnnmlir
    from bnnmlir.models import ZOO

    say = progress or (lambda _msg: None)
    notes: list[str] = []
    lce_ms: dict[int, dict[str, float]] = {}
    if lce:
        try:
            say(f"LCE: converting and timing larq-zoo's {', '.join(names)}")
            lce_ms = run_lce(names, threads)
        except LceUnavailable as e:
            notes.append(str(e))
    torch_calls = {t: _torch_peers(t) for t in threads} if peers else {}
    if peers and "int8" not in torch_calls.get(threads[0], {}):
        notes.append("PyTorch int8: this PyTorch cannot quantize the ResNet-18 (no int8 column)")
    results = []
    for name in names:
        model = ZOO[name]()
        x = torch.randn(*IMAGE)
        say(f"compile {name} (1 thread, no compile cache)")
        start = time.perf_counter()
        compiled = bnnmlir.compile(model, (x,), threads=1, cache=False)
        compile_s = time.perf_counter() - start
        exact = torch.equal(compiled(x), model(x))
        array = x.numpy()
        calls = {}
        for t in threads:
            program = compiled.program_for("host", threads=t)
            program.build_host()
            if exact:
                calls[t, "bnnmlir"] = lambda p=program: p(array)
            calls |= {(t, f"torch {k}"): v for k, v in torch_calls.get(t, {}).items()}
        # Every thread count in the same rounds: a change of machine load between the rows
        # cannot pass for a thread speed-up (or a loss).
        say(f"time {name}, {', '.join(map(str, threads))} threads, taking turns")
        best, _ = best_block_medians(calls, policy)
        for t in threads:
            ms = {k: v * 1e3 for (u, k), v in best.items() if u == t}
            results.append(ModelResult(
                name, t, compile_s, exact, ms.get("bnnmlir"), ms.get("torch fp32"),
                ms.get("torch int8"), lce_ms.get(t, {}).get(name)))
    return results, notes


def _cell(value: float | None, unit: str = "") -> str:
    return "-" if value is None else f"{value:.2f}{unit}"


def models_table(results: Sequence[ModelResult], cpu: str) -> Table:
    table = compact_table(f"Host ({cpu}): networks, 224x224, batch 1, median ms per call")
    text_column(table, "model")
    for column in ("thr", "compile s", "bnnmlir ms", "fp32 ms", "int8 ms", "LCE ms", "vs fp32",
                   "vs int8", "vs LCE"):
        number_column(table, column)
    for r in results:
        table.add_row(r.model, str(r.threads), f"{r.compile_s:.1f}",
                      _cell(r.bnnmlir_ms) if r.exact else "[red]WRONG[/red]",
                      *(_cell(ms) for ms in (r.fp32_ms, r.int8_ms, r.lce_ms)),
                      *(_cell(r.ratio(ms), "x") for ms in (r.fp32_ms, r.int8_ms, r.lce_ms)))
    table.caption = ("fp32 / int8: PyTorch ResNet-18 (float, channels_last; int8: FX-quantized); "
                     "LCE: Larq Compute Engine on larq-zoo's network; vs: peer ms / bnnmlir ms")
    return table


def plot_results(path: str | Path, models: Sequence[ModelResult],
                 layers: Sequence[object] = ()) -> Path:
    """A PNG with the model table as grouped bars (ms per call, log scale) and, when given, the
    host layer table (GOPS of bnnmlir, 1 thread)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = bool(models) + bool(layers)
    fig, axes = plt.subplots(1, panels, figsize=(7 * panels, 4.5), squeeze=False)
    if models:
        _plot_models(axes[0][0], models)
    if layers:
        ax = axes[0][-1]
        one = [r for r in layers if getattr(r, "threads", 1) == 1 and r.bnnmlir_exact]
        ax.bar([r.layer for r in one], [r.gops for r in one], color="tab:blue")
        ax.set_ylabel("binary GOPS, 1 thread (higher is better)")
        ax.set_title("Binary convolution layers")
        ax.tick_params(axis="x", labelrotation=45, labelsize=8)
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def _plot_models(ax, models: Sequence[ModelResult]) -> None:
    labels = [f"{r.model}\n{r.threads} thr" for r in models]
    series = [("bnnmlir", [r.bnnmlir_ms for r in models]),
              ("PyTorch fp32 ResNet-18", [r.fp32_ms for r in models]),
              ("PyTorch int8 ResNet-18", [r.int8_ms for r in models]),
              ("LCE (larq-zoo)", [r.lce_ms for r in models])]
    series = [(n, v) for n, v in series if any(x is not None for x in v)]
    width = 0.8 / max(len(series), 1)
    for k, (name, values) in enumerate(series):
        xs = [i + k * width for i in range(len(models))]
        ax.bar(xs, [v or 0 for v in values], width, label=name)
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(models))], labels, fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("ms per image (lower is better)")
    ax.set_title("Networks, 224x224, batch 1")
    ax.legend(fontsize=8)


def profile_models(names: Sequence[str], repeat: int,
                   progress: Callable[[str], None] | None = None) -> list[object]:
    """The per-layer profile (1 thread, host) of each network."""
    import torch

    import bnnmlir
    from bnnmlir.models import ZOO

    profiles = []
    for name in names:
        if progress:
            progress(f"profile {name}")
        model = ZOO[name]()
        x = torch.randn(*IMAGE)
        compiled = bnnmlir.compile(model, (x,), threads=1, jit=False)
        profiles.append(compiled.profile(x, repeat=repeat))
    return profiles
