"""Export a trained Fashion-MNIST run as the model that ships with :mod:`bnnmlir.models`.

``python -m bnnmlir.train.export RUN_DIR [--samples N]`` writes
``bnnmlir/models/data/fashion_mnist_bnn_clip.npz`` (bit-packed weights) and
``fashion_mnist_samples.npz`` (the first ``N`` test images, uint8, and their labels).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

import bnnmlir.models
from bnnmlir.models.pretrained import (
    PRETRAINED_FASHION_MNIST,
    SAMPLES_FASHION_MNIST,
    load_packed,
    save_packed,
)
from bnnmlir.train.datasets import load_dataset
from bnnmlir.train.loop import load_run

__all__ = ["export_pretrained"]


def export_pretrained(run_dir: str | Path, out_dir: str | Path, samples: int = 300,
                      data_root: str | Path | None = None) -> None:
    """Write the packed weights of the ``bnn-clip`` Fashion-MNIST run ``run_dir`` and ``samples``
    test images into ``out_dir``; checks that the packed model equals the trained one."""
    model, config = load_run(run_dir)
    if config.dataset != "fashion-mnist" or config.stage != "bnn-clip":
        raise ValueError(f"{run_dir} is a {config.dataset} {config.stage} run, not a "
                         "fashion-mnist bnn-clip run")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    width = config.width or 32
    save_packed(model, out / PRETRAINED_FASHION_MNIST, width=width)
    test = load_dataset("fashion-mnist", "test", data_root)
    np.savez_compressed(out / SAMPLES_FASHION_MNIST, images=test.images[:samples, 0].numpy(),
                        labels=test.labels[:samples].numpy().astype(np.uint8))
    reloaded = load_packed(bnnmlir.models.fashion_mnist_net("bnn-clip", width=width, seed=None),
                           out / PRETRAINED_FASHION_MNIST).eval()
    x = test.images[:1000].float() / 255.0
    with torch.no_grad():
        if not torch.equal(reloaded(x), model(x)):
            raise RuntimeError("the packed model differs from the trained one")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", help="run directory of a fashion-mnist bnn-clip run")
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--data", default=None)
    parser.add_argument("--out", default=str(Path(bnnmlir.models.__file__).parent / "data"))
    args = parser.parse_args()
    export_pretrained(args.run, args.out, args.samples, args.data)


if __name__ == "__main__":
    main()
