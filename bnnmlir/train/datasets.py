"""Reading the training data: Fashion-MNIST idx files and CIFAR-10 (python batches or image folders).

Every reader returns a :class:`Dataset` of uint8 images ``N x C x H x W`` and int64 labels; the
training code scales them to [0, 1]. Nothing is downloaded: a missing or malformed dataset raises
:class:`DatasetError`, naming the place that was read and how to get the data.

* Fashion-MNIST: the four idx files ``{train,t10k}-{images-idx3,labels-idx1}-ubyte`` (each may be
  gzipped), as Debian's ``dataset-fashion-mnist`` installs them in :data:`FASHION_MNIST_DIR`.
* CIFAR-10: either the ``cifar-10-batches-py`` folder (``data_batch_1..5``, ``test_batch``; read
  with an unpickler that admits only the numpy array types of that format), or a folder tree
  ``train/<class>/*.jpg|png`` and ``test/<class>/*.jpg|png`` of 32x32 images (decoded with Pillow).
"""

from __future__ import annotations

import gzip
import io
import os
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

__all__ = [
    "CIFAR10_CLASSES",
    "DATASETS",
    "FASHION_MNIST_DIR",
    "Dataset",
    "DatasetError",
    "load_cifar10",
    "load_dataset",
    "load_fashion_mnist",
    "read_idx",
]

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_HINT = ("install it with `apt-get install dataset-fashion-mnist` (files in "
                      f"{FASHION_MNIST_DIR}) or pass --data DIR holding the four idx files")
CIFAR10_HINT = ("pass --data DIR: the `cifar-10-batches-py` folder of the python version of "
                "CIFAR-10, or a folder with train/<class>/*.jpg|png and test/<class>/*.jpg|png")
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


class DatasetError(ValueError):
    """A dataset is missing or malformed; the message says where it looked and how to get it."""


@dataclass
class Dataset:
    """Images (uint8, ``N x C x H x W``) and labels (int64, ``N``) of one split."""

    images: torch.Tensor
    labels: torch.Tensor
    classes: tuple[str, ...]
    source: str

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def subset(self, count: int | None) -> Dataset:
        """The first ``count`` examples (all for ``None``)."""
        if count is None or count >= len(self):
            return self
        return Dataset(self.images[:count], self.labels[:count], self.classes, self.source)


# ---- Fashion-MNIST -------------------------------------------------------------------------

_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | Path) -> np.ndarray:
    """Read an idx file (gzipped or not): magic ``0 0 type ndim``, ``ndim`` big-endian uint32
    sizes, then the data. Raises :class:`DatasetError` for anything else."""
    path = Path(path)
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as e:
            raise DatasetError(f"{path}: broken gzip data ({e})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        raise DatasetError(f"{path}: not an idx file (bad magic number {raw[:4].hex()})")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DatasetError(f"{path}: idx header truncated")
    shape = tuple(int(d) for d in np.frombuffer(raw, ">u4", ndim, 4))
    dtype = np.dtype(_IDX_TYPES[raw[2]])
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - header != expected:
        raise DatasetError(f"{path}: idx header promises {shape} ({expected} bytes of data), "
                           f"the file holds {len(raw) - header}")
    return np.frombuffer(raw, dtype, offset=header).reshape(shape)


def _find_idx(root: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz"):
        if (root / name).is_file():
            return root / name
    raise DatasetError(f"Fashion-MNIST: no {stem}[.gz] in {root}; {FASHION_MNIST_HINT}")


def load_fashion_mnist(split: str, root: str | Path | None = None) -> Dataset:
    """The ``train`` (60,000) or ``test`` (10,000) split of Fashion-MNIST from ``root`` (default
    :data:`FASHION_MNIST_DIR`)."""
    from bnnmlir.models.fashion_mnist import CLASSES

    root = Path(root) if root is not None else FASHION_MNIST_DIR
    if not root.is_dir():
        raise DatasetError(f"Fashion-MNIST: {root} is not a directory; {FASHION_MNIST_HINT}")
    prefix = {"train": "train", "test": "t10k"}[split]
    images_path = _find_idx(root, f"{prefix}-images-idx3-ubyte")
    labels_path = _find_idx(root, f"{prefix}-labels-idx1-ubyte")
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28):
        raise DatasetError(f"{images_path}: expected uint8 images N x 28 x 28, "
                           f"got {images.dtype} {images.shape}")
    if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
        raise DatasetError(f"{labels_path}: expected {images.shape[0]} labels, got {labels.shape}")
    _check_labels(labels, len(CLASSES), labels_path)
    return Dataset(torch.from_numpy(images.copy()).unsqueeze(1),
                   torch.from_numpy(labels.astype(np.int64)), CLASSES, str(root))


def _check_labels(labels: np.ndarray, classes: int, where: object) -> None:
    if labels.size and (labels.min() < 0 or labels.max() >= classes):
        raise DatasetError(f"{where}: labels outside 0..{classes - 1}")


# ---- CIFAR-10 ------------------------------------------------------------------------------


class _ArrayUnpickler(pickle.Unpickler):
    """Admits only what the CIFAR-10 python batches hold: dicts, lists, bytes, numpy arrays
    (and ``_codecs.encode``, with which protocol-2 pickles of Python 3 store bytes)."""

    _ALLOWED = {("_codecs", "encode"), ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
                ("numpy", "ndarray"), ("numpy", "dtype")}

    def find_class(self, module: str, name: str):
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        with open(path, "rb") as f:
            batch = _ArrayUnpickler(io.BytesIO(f.read()), encoding="bytes").load()
        data = np.asarray(batch[b"data"], dtype=np.uint8)
        labels = np.asarray(batch[b"labels"], dtype=np.int64)
    except (pickle.UnpicklingError, EOFError, KeyError, TypeError, ValueError, AttributeError) as e:
        raise DatasetError(f"CIFAR-10: {path} is not a CIFAR-10 python batch ({e}); "
                           f"{CIFAR10_HINT}") from None
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or labels.shape != (data.shape[0],):
        raise DatasetError(f"CIFAR-10: {path}: expected N x 3072 bytes and N labels, "
                           f"got {data.shape} and {labels.shape}")
    _check_labels(labels, 10, path)
    return data.reshape(-1, 3, 32, 32), labels


def _read_image_folder(root: Path) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    from PIL import Image, UnidentifiedImageError

    classes = tuple(sorted(d.name for d in root.iterdir() if d.is_dir()))
    if not classes:
        raise DatasetError(f"CIFAR-10: no class folders in {root}; {CIFAR10_HINT}")
    images, labels = [], []
    for label, name in enumerate(classes):
        files = sorted(p for p in (root / name).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        for path in files:
            try:
                with Image.open(path) as image:
                    pixels = np.asarray(image.convert("RGB"))
            except (UnidentifiedImageError, OSError) as e:
                raise DatasetError(f"CIFAR-10: cannot decode {path} ({e})") from None
            if pixels.shape != (32, 32, 3):
                raise DatasetError(f"CIFAR-10: {path} is {pixels.shape[1]}x{pixels.shape[0]}, "
                                   "expected a 32x32 image")
            images.append(pixels.transpose(2, 0, 1))
            labels.append(label)
    if not images:
        raise DatasetError(f"CIFAR-10: no .jpg/.png images under {root}; {CIFAR10_HINT}")
    return np.stack(images), np.asarray(labels, dtype=np.int64), classes


def load_cifar10(split: str, root: str | Path | None) -> Dataset:
    """The ``train`` (50,000) or ``test`` (10,000) split of CIFAR-10 from ``root``: a
    ``cifar-10-batches-py`` folder (or its parent), or an image folder tree (see the module
    documentation)."""
    if root is None:
        raise DatasetError(f"CIFAR-10: no data folder given; {CIFAR10_HINT}")
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"CIFAR-10: {root} is not a directory; {CIFAR10_HINT}")
    batches = root / "cifar-10-batches-py" if (root / "cifar-10-batches-py").is_dir() else root
    if (batches / "test_batch").is_file() or (batches / "data_batch_1").is_file():
        names = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
        missing = [n for n in names if not (batches / n).is_file()]
        if missing:
            raise DatasetError(f"CIFAR-10: {', '.join(missing)} missing in {batches}; "
                               f"{CIFAR10_HINT}")
        parts = [_read_cifar_batch(batches / n) for n in names]
        images = np.concatenate([p[0] for p in parts])
        labels = np.concatenate([p[1] for p in parts])
        classes, source = CIFAR10_CLASSES, str(batches)
    elif (root / split).is_dir():
        images, labels, classes = _read_image_folder(root / split)
        source = str(root / split)
    else:
        raise DatasetError(f"CIFAR-10: {root} holds neither cifar-10-batches-py files nor a "
                           f"{split}/ folder of images; {CIFAR10_HINT}")
    return Dataset(torch.from_numpy(np.ascontiguousarray(images)), torch.from_numpy(labels),
                   tuple(classes), source)


DATASETS = {"fashion-mnist": load_fashion_mnist, "cifar10": load_cifar10}


def load_dataset(name: str, split: str, root: str | Path | None = None) -> Dataset:
    """``split`` (``train`` or ``test``) of dataset ``name`` (a key of :data:`DATASETS`).
    ``root`` defaults to ``$BNNMLIR_DATA/<name>`` when that variable is set."""
    if name not in DATASETS:
        raise DatasetError(f"unknown dataset {name!r}; expected one of {', '.join(DATASETS)}")
    if split not in ("train", "test"):
        raise DatasetError(f"unknown split {split!r}; expected train or test")
    if root is None and os.environ.get("BNNMLIR_DATA"):
        root = Path(os.environ["BNNMLIR_DATA"]) / name
    return DATASETS[name](split, root)
