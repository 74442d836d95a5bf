"""The trained Fashion-MNIST model that ships with the package, and its sample images.

Weights are stored compactly in ``data/*.npz`` (read with numpy, no pickle): the latent weights of
a binary layer as their signs, one bit each (``numpy.packbits`` of ``w < 0``); the weights of an
int8 layer as the int8 integers it computes with; BatchNorm parameters and statistics as float32.
Loading gives back exactly the network that was trained: a binary layer uses only the signs, and
an int8 layer with integer latent weights ``q`` (``max |q[o]| = 127`` per channel) computes with
``q`` itself.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np
import torch
from torch import nn

import bnnmlir.nn as bnn
from bnnmlir.models.fashion_mnist import fashion_mnist_net

__all__ = [
    "PRETRAINED_FASHION_MNIST",
    "SAMPLES_FASHION_MNIST",
    "fashion_mnist_samples",
    "load_packed",
    "pretrained_fashion_mnist_bnn_clip",
    "save_packed",
]

PRETRAINED_FASHION_MNIST = "fashion_mnist_bnn_clip.npz"
SAMPLES_FASHION_MNIST = "fashion_mnist_samples.npz"


def _kinds(model: nn.Module) -> dict[str, str]:
    """``binary`` or ``int8`` for the ``weight`` of each such layer, by state-dict key."""
    kinds = {}
    for name, module in model.named_modules():
        prefix = f"{name}." if name else ""
        if isinstance(module, bnn.BinaryConv2d | bnn.BinaryLinear):
            kinds[prefix + "weight"] = "binary"
        elif isinstance(module, bnn.Int8Conv2d | bnn.Int8Linear):
            if module.fixed_scale is not None:
                raise ValueError(f"{name}: only per-channel max scales can be stored as integers")
            kinds[prefix + "weight"] = "int8"
    return kinds


def save_packed(model: nn.Module, path: str | Path, **metadata: int | str) -> None:
    """Write ``model``'s state compactly to ``path`` (``.npz``); ``metadata`` (e.g. the width)
    is stored beside it under ``meta.<key>``."""
    kinds = _kinds(model)
    modules = dict(model.named_modules())
    arrays: dict[str, np.ndarray] = {f"meta.{k}": np.asarray(v) for k, v in metadata.items()}
    for key, value in model.state_dict().items():
        if key.endswith("num_batches_tracked"):
            continue
        kind = kinds.get(key, "float32")
        if kind == "binary":
            arrays[f"{key}.bits"] = np.packbits((value < 0).numpy().reshape(-1))
            arrays[f"{key}.shape"] = np.asarray(value.shape)
        elif kind == "int8":
            layer = modules[key.rsplit(".", 1)[0]]
            arrays[f"{key}.int8"] = layer.integer_weight().detach().numpy().astype(np.int8)
        else:
            arrays[f"{key}.float32"] = value.detach().numpy().astype(np.float32)
    np.savez_compressed(path, **arrays)


def load_packed(model: nn.Module, source) -> nn.Module:
    """Load the state written by :func:`save_packed` (a path or file object) into ``model``."""
    with np.load(source, allow_pickle=False) as stored:
        files = set(stored.files)
        state = {}
        for key, current in model.state_dict().items():
            if key.endswith("num_batches_tracked"):
                state[key] = current
            elif f"{key}.bits" in files:
                shape = tuple(int(d) for d in stored[f"{key}.shape"])
                count = int(np.prod(shape))
                negative = np.unpackbits(stored[f"{key}.bits"])[:count].reshape(shape)
                state[key] = torch.from_numpy(np.where(negative == 1, -1.0, 1.0).astype(np.float32))
            elif f"{key}.int8" in files:
                state[key] = torch.from_numpy(stored[f"{key}.int8"].astype(np.float32))
            elif f"{key}.float32" in files:
                state[key] = torch.from_numpy(stored[f"{key}.float32"])
            else:
                raise ValueError(f"the stored weights have no entry for {key}")
    model.load_state_dict(state)
    return model


def _metadata(name: str) -> dict[str, int]:
    with resources.as_file(resources.files("bnnmlir.models") / "data" / name) as path:
        with np.load(path, allow_pickle=False) as stored:
            return {k[5:]: int(stored[k]) for k in stored.files if k.startswith("meta.")}


def pretrained_fashion_mnist_bnn_clip() -> nn.Module:
    """The trained BNN-Clip Fashion-MNIST network, in eval mode.

    Input: images as float in [0, 1], shape ``N x 1 x 28 x 28`` (the division onto the int8
    stream happens inside the model). Output: ``N x 10`` integer logits (classes
    :data:`bnnmlir.models.fashion_mnist.CLASSES`). The README gives its accuracy and the
    command that trained it.
    """
    meta = _metadata(PRETRAINED_FASHION_MNIST)
    model = fashion_mnist_net("bnn-clip", width=meta.get("width", 32), seed=None)
    with resources.as_file(resources.files("bnnmlir.models") / "data" / PRETRAINED_FASHION_MNIST) as path:
        load_packed(model, path)
    return model.eval()


def fashion_mnist_samples() -> tuple[torch.Tensor, torch.Tensor]:
    """The Fashion-MNIST test images that ship with the package: float images in [0, 1]
    (``N x 1 x 28 x 28``) and int64 labels (``N``)."""
    with resources.as_file(resources.files("bnnmlir.models") / "data" / SAMPLES_FASHION_MNIST) as path:
        with np.load(path, allow_pickle=False) as stored:
            images = torch.from_numpy(stored["images"].astype(np.float32) / 255.0)
            labels = torch.from_numpy(stored["labels"].astype(np.int64))
    return images.unsqueeze(1), labels
