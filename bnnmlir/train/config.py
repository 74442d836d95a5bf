"""The configuration of a training run (no torch import: the command line reads its defaults)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

__all__ = ["DATASET_NAMES", "STAGES", "TrainConfig"]

DATASET_NAMES = ("fashion-mnist", "cifar10")
STAGES = ("full-precision", "bnn", "bnn-clip")
"""The variants of :mod:`bnnmlir.models.blocks`, trained by the stages of the recipe."""


@dataclass
class TrainConfig:
    """Everything that determines a training run (stored in its checkpoint and log)."""

    dataset: str = "fashion-mnist"
    stage: str = "bnn"
    width: int | None = None          # None: the architecture's default
    epochs: int = 8
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 5e-5        # on float weights (stem, float layers); not on BatchNorm
    binary_weight_decay: float = 0.0  # on the latent weights of binary layers
    latent_clip: float = 1.0          # clamp latent binary weights to [-c, c]; 0: no clamping
    schedule: str = "cosine"          # cosine | step (x0.1 at 50% and 75% of the steps)
    augment: bool = False             # random crop (pad 2 or 4) + horizontal flip (CIFAR-10)
    seed: int = 0
    shards: int = 1                   # the global batch is split into this many shards
    train_limit: int | None = None    # use only the first N training images
    test_limit: int | None = None     # evaluate on the first N test images
    init: str | None = None           # run directory whose weights start this run
    calibration_quantile: float = 0.999
    calibration_images: int = 2048
    distill: str | None = None        # run directory of a teacher model
    distill_weight: float = 0.5
    distill_temperature: float = 2.0

    def __post_init__(self) -> None:
        if self.dataset not in DATASET_NAMES:
            raise ValueError(f"unknown dataset {self.dataset!r}; expected one of "
                             f"{', '.join(DATASET_NAMES)}")
        if self.stage not in STAGES:
            raise ValueError(f"unknown stage {self.stage!r}; expected one of {', '.join(STAGES)}")
        if self.schedule not in ("cosine", "step"):
            raise ValueError(f"unknown schedule {self.schedule!r}; expected cosine or step")
        if self.batch_size < 1 or self.epochs < 0 or self.shards < 1:
            raise ValueError("batch size and shards must be positive, epochs non-negative")
        if self.batch_size % self.shards:
            raise ValueError(f"the batch size ({self.batch_size}) must be a multiple of the "
                             f"number of shards ({self.shards})")
        if self.stage == "bnn-clip" and self.init is None:
            raise ValueError("stage bnn-clip fine-tunes a trained bnn: pass --init RUN_DIR")
        if not 0.5 <= self.calibration_quantile <= 1.0:
            raise ValueError("the calibration quantile must be in [0.5, 1]")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})
