"""Evaluation through the compiled model, latency, size, and the results table.

The compiled network is bit-exact: for the ``bnn-clip`` networks its logits equal PyTorch's
(``torch.equal``), so every prediction agrees. :func:`compiled_evaluation` checks that on the
test set and stores the numbers in the run's ``log.json``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table
from torch import nn

from bnnmlir.models.demo import latency_ms
from bnnmlir.train.datasets import Dataset, load_dataset
from bnnmlir.train.loop import evaluate, load_run, to_float

__all__ = ["compiled_evaluation", "compiled_predictions", "print_table"]


def compiled_predictions(model: nn.Module, data: Dataset, batch: int = 250,
                         threads: int | None = 1) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Predictions and logits of ``model`` compiled by :func:`bnnmlir.compile` (host, batches
    of ``batch`` images, the last one padded), and the seconds the compilation took."""
    import bnnmlir

    model = model.eval()
    batch = min(batch, len(data))
    example = to_float(data.images[:batch])
    started = time.perf_counter()
    compiled = bnnmlir.compile(model, (example,), threads=threads)
    compile_seconds = time.perf_counter() - started
    logits = []
    for start in range(0, len(data), batch):
        x = to_float(data.images[start:start + batch])
        count = x.shape[0]
        if count < batch:
            x = torch.cat([x, x.new_zeros((batch - count, *x.shape[1:]))])
        logits.append(compiled(x)[:count])
    out = torch.cat(logits)
    return out.argmax(1), out, compile_seconds


def compiled_evaluation(run_dir: str | Path, *, data_root: str | Path | None = None,
                        batch: int = 250, threads: int | None = 1) -> dict:
    """Evaluate a finished run through PyTorch and through the compiled model on its test set;
    add accuracy, agreement, latency (batch 1, ``threads`` threads) and size to ``log.json``."""
    import bnnmlir

    threads = threads or 1
    model, config = load_run(run_dir)
    data = load_dataset(config.dataset, "test", data_root).subset(config.test_limit)
    accuracy, _, predictions = evaluate(model, data)
    with torch.no_grad():
        reference = torch.cat([model(to_float(data.images[s:s + 500]))
                               for s in range(0, len(data), 500)])
        compiled_pred, logits, compile_seconds = compiled_predictions(model, data, batch, threads)
        one = to_float(data.images[:1])
        single = bnnmlir.compile(model, (one,), threads=threads)
        torch_threads = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            torch_ms = latency_ms(model, one)
        finally:
            torch.set_num_threads(torch_threads)
        compiled_ms = latency_ms(single, one)
    results = {
        "pytorch_accuracy": accuracy,
        "compiled_accuracy": float((compiled_pred == data.labels).float().mean()),
        "agreement": float((compiled_pred == predictions).float().mean()),
        "identical_logits": float((logits == reference).all(1).float().mean()),
        "compiled_latency_ms": compiled_ms,
        "pytorch_latency_ms": torch_ms,
        "latency_threads": threads,
        "weight_bytes": sum(r.weight_bytes for r in single.report().rows),
        "compile_seconds": compile_seconds,
    }
    path = Path(run_dir) / "log.json"
    log = json.loads(path.read_text())
    log["results"].update(results)
    path.write_text(json.dumps(log, indent=2) + "\n")
    return results


def _cell(results: dict, key: str, fmt: str) -> str:
    value = results.get(key)
    return "-" if value is None else format(value, fmt)


def print_table(runs: list[str | Path], console: Console | None = None) -> None:
    """The results table of finished runs (their ``log.json``)."""
    table = Table(title="bnnmlir train: results")
    for column in ("run", "dataset", "stage", "epochs", "test acc % (PyTorch)",
                   "test acc % (compiled)", "agreement %", "weight bytes",
                   "latency ms compiled / PyTorch", "train min"):
        table.add_column(column)
    for run in runs:
        path = Path(run) / "log.json"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: not a run directory (no log.json)")
        log = json.loads(path.read_text())
        config, results = log["config"], log["results"]
        acc = results.get("test_accuracy")
        latency = (f"{results['compiled_latency_ms']:.3f} / {results['pytorch_latency_ms']:.3f}"
                   if "compiled_latency_ms" in results else "-")
        table.add_row(str(run), config["dataset"], config["stage"], str(len(log["epochs"])),
                      "-" if acc is None else f"{100 * acc:.2f}",
                      _cell({k: 100 * v for k, v in results.items() if k == "compiled_accuracy"},
                            "compiled_accuracy", ".2f"),
                      _cell({k: 100 * v for k, v in results.items() if k == "agreement"},
                            "agreement", ".2f"),
                      _cell(results, "weight_bytes", ","), latency,
                      _cell({"m": results.get("train_seconds", 0) / 60}, "m", ".1f"))
    (console or Console(width=200)).print(table)
