"""Run logs: ``log.csv`` (one row per epoch), ``log.json`` (configuration, epochs, results) and
``curves.png`` (loss and accuracy curves, matplotlib)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from torch import nn

from bnnmlir.train.config import TrainConfig

__all__ = ["RunLog", "plot_curves"]

COLUMNS = ("epoch", "step", "train_loss", "train_accuracy", "test_loss", "test_accuracy", "lr",
           "seconds")


class RunLog:
    """The log of one run directory; only the main process writes files."""

    def __init__(self, out: Path, config: TrainConfig, main: bool = True):
        self.out, self.config, self.main = Path(out), config, main
        self.history: list[dict] = []
        self.extra: dict = {}

    def add_epoch(self, row: dict) -> None:
        self.history.append(row)
        if not self.main:
            return
        with open(self.out / "log.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, COLUMNS, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(self.history)
        self.write()
        plot_curves(self.history, self.out / "curves.png",
                    f"{self.config.dataset}, {self.config.stage}")

    def finish(self, model: nn.Module, test_data) -> None:
        from bnnmlir.train.loop import evaluate

        accuracy, loss, _ = evaluate(model, test_data)
        last = self.history[-1] if self.history else {}
        self.extra.update(test_accuracy=accuracy, test_loss=loss, test_images=len(test_data),
                          train_seconds=last.get("seconds", 0.0))
        self.write()

    def summary(self) -> dict:
        return {"config": self.config.to_dict(), "epochs": self.history, "results": self.extra}

    def write(self) -> None:
        if self.main:
            (self.out / "log.json").write_text(json.dumps(self.summary(), indent=2) + "\n")


def plot_curves(history: list[dict], path: Path, title: str) -> None:
    """Loss (left) and accuracy (right) per epoch, train and test."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [row["epoch"] for row in history]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    for key, label in (("train_loss", "train"), ("test_loss", "test")):
        ax_loss.plot(epochs, [row.get(key) for row in history], marker="o", label=label)
    for key, label in (("train_accuracy", "train"), ("test_accuracy", "test")):
        ax_acc.plot(epochs, [100 * row[key] if row.get(key) is not None else None
                             for row in history], marker="o", label=label)
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy", title=f"{title}: loss")
    ax_acc.set(xlabel="epoch", ylabel="accuracy (%)", title=f"{title}: accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
