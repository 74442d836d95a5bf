"""The BNN-Clip training recipe: configuration, optimizer, schedule, the stage-2 conversion.

Stage 1 (``--stage bnn``) trains the binary network with a float data flow: binary weights and
activations through the straight-through ``sign``, Adam, no weight decay on the latent binary
weights (:attr:`TrainConfig.binary_weight_decay`), latent weights clamped to
``[-latent_clip, latent_clip]`` after every step, a cosine (or step) learning-rate schedule.

Stage 2 (``--stage bnn-clip --init RUN``) loads the stage-1 weights into the ``bnn-clip``
network and first calibrates the int8 stream: the ``bnn`` network is unchanged when every
BatchNorm's ``weight`` and ``bias`` are multiplied by one factor ``s > 0`` (binary layers read only
signs, residual adds and max pooling commute with a positive factor, the stem and every block
end in a BatchNorm), so :func:`calibrate_stream_scale` picks ``s`` to bring the
:attr:`TrainConfig.calibration_quantile` of ``|x|`` at every clipping point to 127. Rounding then
costs little, and a short fine-tuning with the ``Clip8`` blocks in place (straight-through
gradient inside [-127, 127]) recovers the rest.

``--stage full-precision`` trains the float twin of the same topology with the same options.
Optionally (``--distill RUN``) the loss mixes in knowledge distillation from a trained model's
softened outputs.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

import bnnmlir.nn as bnn
from bnnmlir.models import ARCHITECTURES
from bnnmlir.train.config import TrainConfig

__all__ = [
    "LogitScale",
    "TrainConfig",
    "build_model",
    "calibrate_stream_scale",
    "distillation_loss",
    "learning_rate_factor",
    "make_optimizer",
    "scale_batchnorms_",
]


def build_model(config: TrainConfig, variant: str | None = None) -> nn.Module:
    """The network of ``config.dataset`` in ``variant`` (default: the stage's), seeded."""
    kwargs = {"seed": config.seed}
    if config.width is not None:
        kwargs["width"] = config.width
    return ARCHITECTURES[config.dataset](variant or config.stage, **kwargs)


class LogitScale(nn.Module):
    """``model(x) * exp(log_scale)``: a learned temperature for the training loss only (the
    model's own outputs, and so its predictions, do not depend on it)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.log_scale = nn.Parameter(torch.tensor(math.log(getattr(model, "logit_scale", 1.0))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x) * self.log_scale.exp()


def _is_binary_weight(module: nn.Module, name: str) -> bool:
    return isinstance(module, bnn.BinaryConv2d | bnn.BinaryLinear) and name == "weight"


def make_optimizer(trainee: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """Adam with three parameter groups: latent binary weights (``binary_weight_decay``),
    other weights (``weight_decay``), BatchNorm parameters, biases and the logit scale (none)."""
    groups: dict[str, list[nn.Parameter]] = {"binary": [], "weights": [], "no_decay": []}
    for module in trainee.modules():
        for name, param in module.named_parameters(recurse=False):
            if _is_binary_weight(module, name):
                groups["binary"].append(param)
            elif param.dim() > 1:
                groups["weights"].append(param)
            else:
                groups["no_decay"].append(param)
    decay = {"binary": config.binary_weight_decay, "weights": config.weight_decay, "no_decay": 0.0}
    return torch.optim.Adam(
        [{"params": p, "weight_decay": decay[k], "name": k} for k, p in groups.items() if p],
        lr=config.lr,
    )


def learning_rate_factor(config: TrainConfig, step: int, total_steps: int) -> float:
    """Multiplier of ``config.lr`` at ``step`` (0-based) of ``total_steps``."""
    progress = step / max(total_steps, 1)
    if config.schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    return 1.0 if progress < 0.5 else 0.1 if progress < 0.75 else 0.01


def clamp_latent(model: nn.Module, config: TrainConfig) -> None:
    if config.latent_clip > 0:
        bnn.clamp_latent_weights_(model, config.latent_clip)


def distillation_loss(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """KL divergence of the softened student from the softened teacher, times ``T**2``."""
    t = temperature
    return F.kl_div(F.log_softmax(student / t, dim=1), F.log_softmax(teacher / t, dim=1),
                    reduction="batchmean", log_target=True) * (t * t)


# ---- stage 2: calibration of the int8 stream -------------------------------------------------


def _clip_points(model: nn.Module) -> list[nn.Module]:
    """The modules at the clipping points: ``Clip8`` blocks of ``bnn-clip``, their
    ``nn.Identity`` stand-ins in ``bnn`` (same positions, same names)."""
    return [m for m in model.modules() if isinstance(m, bnn.Clip8 | nn.Identity)]


@torch.no_grad()
def calibrate_stream_scale(model: nn.Module, images: torch.Tensor, quantile: float,
                           batch_size: int = 256) -> float:
    """The factor ``s`` that brings the ``quantile`` of ``|x|`` at the worst clipping point of
    ``model`` (a ``bnn`` network in eval mode, float data flow) to 127."""
    peaks: dict[int, float] = {}

    def record(index: int):
        def hook(module, inputs, output):
            values = inputs[0].detach().abs().flatten().float()
            if values.numel() > 1_000_000:
                values = values[:: values.numel() // 1_000_000 + 1]
            peaks[index] = max(peaks.get(index, 0.0), float(torch.quantile(values, quantile)))
        return hook

    handles = [m.register_forward_hook(record(i)) for i, m in enumerate(_clip_points(model))]
    was_training = model.training
    model.eval()
    try:
        for start in range(0, images.shape[0], batch_size):
            model(images[start:start + batch_size])
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    peak = max(peaks.values(), default=0.0)
    if not peak > 0:
        raise ValueError("calibration saw no non-zero value at the clipping points")
    return 127.0 / peak


@torch.no_grad()
def scale_batchnorms_(model: nn.Module, factor: float) -> None:
    """Multiply ``weight`` and ``bias`` of every BatchNorm of ``model`` by ``factor``."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d):
            m.weight.mul_(factor)
            m.bias.mul_(factor)
