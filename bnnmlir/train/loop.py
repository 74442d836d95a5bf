"""The training loop: deterministic data order, sharded steps, DDP, checkpoints and resume.

Determinism: the order of the training images in epoch ``e`` is a permutation drawn from
``(seed, e)``, the augmentation of step ``t`` from ``(seed, e, t)``; nothing depends on the
process, so a resumed run continues exactly where the interrupted one stopped (the checkpoint
holds the weights, the optimizer state, the position and the running epoch sums).

Sharded steps and DistributedDataParallel: each global batch of ``batch_size`` images is split into
``shards`` equal consecutive shards. Every shard runs forward and backward on its own (BatchNorm
normalizes it with its own statistics) with the loss divided by the number of shards, so the
gradients add up to the mean over the shards; BatchNorm running statistics are updated from each
shard separately, starting from the same values, and averaged. Under ``torchrun --nproc_per_node
N`` (gloo backend on CPU) rank ``r`` takes shards ``r*S/N .. (r+1)*S/N - 1`` and DDP averages the
gradients; with power-of-two shard counts the sums are the same float operations, so a run with
N processes gives the same weights as one process with ``--shards N`` (``--shards`` defaults to
the number of processes).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from bnnmlir.train.datasets import Dataset, load_dataset
from bnnmlir.train.config import TrainConfig
from bnnmlir.train.recipe import (
    LogitScale,
    build_model,
    calibrate_stream_scale,
    clamp_latent,
    distillation_loss,
    learning_rate_factor,
    make_optimizer,
    scale_batchnorms_,
)

__all__ = ["CHECKPOINT", "MODEL", "evaluate", "load_run", "to_float", "train"]

CHECKPOINT = "checkpoint.pt"
MODEL = "model.pt"


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 images to float in [0, 1] (the input every model of :mod:`bnnmlir.models` takes)."""
    return images.float() / 255.0


def _generator(*key: int) -> torch.Generator:
    seed = 0
    for k in key:
        seed = (seed * 1_000_003 + int(k)) % (2**63)
    return torch.Generator().manual_seed(seed)


def epoch_order(n: int, seed: int, epoch: int) -> torch.Tensor:
    return torch.randperm(n, generator=_generator(seed, epoch))


def augment(x: torch.Tensor, generator: torch.Generator, pad: int, flip: bool) -> torch.Tensor:
    """Random crops of the zero-padded images (``pad`` pixels) and random horizontal flips."""
    n, _, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    flips = torch.rand(n, generator=generator) < 0.5 if flip else torch.zeros(n, dtype=torch.bool)
    out = torch.empty_like(x)
    for i in range(n):
        crop = padded[i, :, dy[i]:dy[i] + h, dx[i]:dx[i] + w]
        out[i] = crop.flip(-1) if flips[i] else crop
    return out


@torch.no_grad()
def evaluate(model: nn.Module, data: Dataset, batch_size: int = 500) -> tuple[float, float, torch.Tensor]:
    """Accuracy, mean cross-entropy and predictions of ``model`` (eval mode) on ``data``."""
    was_training = model.training
    model.eval()
    correct, loss, predictions = 0, 0.0, []
    for start in range(0, len(data), batch_size):
        x = to_float(data.images[start:start + batch_size])
        y = data.labels[start:start + batch_size]
        logits = model(x)
        scale = getattr(model, "logit_scale", 1.0)
        loss += float(F.cross_entropy(logits * scale, y, reduction="sum"))
        predictions.append(logits.argmax(1))
        correct += int((predictions[-1] == y).sum())
    model.train(was_training)
    n = max(len(data), 1)
    return correct / n, loss / n, torch.cat(predictions) if predictions else torch.empty(0)


def load_run(run_dir: str | Path) -> tuple[nn.Module, TrainConfig]:
    """The trained model (eval mode) and configuration of a finished run directory."""
    path = Path(run_dir) / MODEL
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no trained model (is {run_dir} a finished run?)")
    saved = torch.load(path, weights_only=True)
    config = TrainConfig.from_dict(saved["config"])
    model = build_model(config)
    model.load_state_dict(saved["model"])
    return model.eval(), config


# ---- distributed ---------------------------------------------------------------------------


class _Distributed:
    def __init__(self) -> None:
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.active = self.world > 1
        if self.active and not dist.is_initialized():
            dist.init_process_group("gloo")
        self.rank = dist.get_rank() if self.active else 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.active:
            dist.barrier()

    def all_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        if self.active:
            dist.all_reduce(tensor)
        return tensor

    def close(self) -> None:
        if self.active and dist.is_initialized():
            dist.destroy_process_group()


def _stage_two_start(model: nn.Module, config: TrainConfig, train: Dataset) -> float:
    """Load the stage-1 ``bnn`` weights of ``config.init`` into ``model`` (``bnn-clip``) with the
    int8 stream calibrated; returns the calibration factor."""
    source, _ = load_run(config.init)
    floatflow = build_model(config, "bnn")
    floatflow.load_state_dict(source.state_dict())
    images = to_float(train.images[: config.calibration_images])
    factor = calibrate_stream_scale(floatflow, images, config.calibration_quantile)
    scale_batchnorms_(floatflow, factor)
    model.load_state_dict(floatflow.state_dict())
    return factor


class _Sharded:
    """One optimizer step over the local shards of a global batch (see the module docs)."""

    def __init__(self, trainee: nn.Module, wrapped: nn.Module, ddp: _Distributed,
                 config: TrainConfig, teacher: nn.Module | None):
        self.trainee, self.wrapped, self.ddp, self.config = trainee, wrapped, ddp, config
        self.teacher = teacher
        self.local = config.shards // ddp.world
        self.float_buffers = [b for b in trainee.buffers() if b.is_floating_point()]
        self.int_buffers = [b for b in trainee.buffers() if not b.is_floating_point()]

    def loss(self, logits: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        loss = F.cross_entropy(logits, y)
        if self.teacher is not None:
            with torch.no_grad():
                target = self.teacher(x) * getattr(self.teacher, "logit_scale", 1.0)
            w = self.config.distill_weight
            loss = (1 - w) * loss + w * distillation_loss(logits, target,
                                                          self.config.distill_temperature)
        return loss

    def step(self, x: torch.Tensor, y: torch.Tensor) -> tuple[float, int]:
        """Forward/backward of the local shards of ``(x, y)`` (the global batch); returns the
        summed loss (times the shard size) and correct count of the local shards."""
        size = x.shape[0] // self.config.shards
        first = self.ddp.rank * self.local
        start_float = [b.clone() for b in self.float_buffers]
        start_int = [b.clone() for b in self.int_buffers]
        sum_float = [torch.zeros_like(b) for b in self.float_buffers]
        sum_int = [torch.zeros_like(b) for b in self.int_buffers]
        total_loss, correct = 0.0, 0
        for k in range(self.local):
            lo = (first + k) * size
            xs, ys = x[lo:lo + size], y[lo:lo + size]
            for b, s in zip(self.float_buffers + self.int_buffers, start_float + start_int):
                b.copy_(s)
            sync = k == self.local - 1 or not self.ddp.active
            context = contextlib.nullcontext() if sync else self.wrapped.no_sync()
            with context:
                logits = self.wrapped(xs)
                loss = self.loss(logits, xs, ys)
                (loss / self.local).backward()
            total_loss += float(loss.detach()) * size
            correct += int((logits.argmax(1) == ys).sum())
            for acc, b in zip(sum_float + sum_int, self.float_buffers + self.int_buffers):
                acc.add_(b)
        with torch.no_grad():
            for b, acc in zip(self.float_buffers, sum_float):
                b.copy_(self.ddp.all_sum(acc) / self.config.shards)
            for b, acc in zip(self.int_buffers, sum_int):
                b.copy_(self.ddp.all_sum(acc) // self.config.shards)
        return total_loss, correct


def _save(path: Path, payload: dict) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def train(config: TrainConfig, out: str | Path, *, resume: bool = False, threads: int | None = None,
          data_root: str | Path | None = None, progress: bool = True,
          checkpoint_every: int | None = None, stop_after: int | None = None,
          on_epoch: Callable[[dict], None] | None = None) -> dict:
    """Train ``config`` into the run directory ``out``; returns the log (also in ``log.json``).

    ``resume``: continue from ``out/checkpoint.pt``. ``checkpoint_every``: also checkpoint every
    that many steps (always at the end of an epoch). ``stop_after``: stop after that many steps
    of this call, with a checkpoint (a later ``resume`` continues). ``threads``: torch threads.
    """
    from tqdm import tqdm

    from bnnmlir.train.logs import RunLog

    if threads is not None:
        torch.set_num_threads(threads)
    ddp = _Distributed()
    try:
        if config.shards % ddp.world:
            raise ValueError(f"--shards {config.shards} is not a multiple of the "
                             f"{ddp.world} processes")
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        train_data = load_dataset(config.dataset, "train", data_root).subset(config.train_limit)
        test_data = load_dataset(config.dataset, "test", data_root).subset(config.test_limit)
        if len(train_data) < config.batch_size:
            raise ValueError(f"{len(train_data)} training images are fewer than one batch "
                             f"({config.batch_size})")
        model = build_model(config)
        trainee = LogitScale(model)
        log = RunLog(out, config, main=ddp.main)
        state = {"epoch": 0, "step": 0, "global_step": 0, "loss_sum": 0.0, "correct": 0,
                 "seen": 0, "seconds": 0.0}
        checkpoint_path = out / CHECKPOINT
        optimizer = make_optimizer(trainee, config)
        if resume:
            if not checkpoint_path.is_file():
                raise FileNotFoundError(f"{checkpoint_path}: nothing to resume")
            saved = torch.load(checkpoint_path, weights_only=True)
            if TrainConfig.from_dict(saved["config"]) != config:
                raise ValueError(f"{checkpoint_path} was written with another configuration")
            trainee.load_state_dict(saved["trainee"])
            optimizer.load_state_dict(saved["optimizer"])
            state = saved["state"]
            log.history = saved["history"]
            log.extra = saved["extra"]
        elif config.init is not None:
            if config.stage == "bnn-clip":
                log.extra["stream_scale"] = _stage_two_start(model, config, train_data)
            else:
                source, _ = load_run(config.init)
                model.load_state_dict(source.state_dict())
        teacher = load_run(config.distill)[0] if config.distill else None
        wrapped: nn.Module = trainee
        if ddp.active:
            wrapped = nn.parallel.DistributedDataParallel(trainee, broadcast_buffers=False)
        stepper = _Sharded(trainee, wrapped, ddp, config, teacher)
        steps_per_epoch = len(train_data) // config.batch_size
        total_steps = steps_per_epoch * config.epochs
        pad = 4 if train_data.images.shape[-1] >= 32 else 2
        flip = config.dataset != "fashion-mnist"
        done_now = 0

        def checkpoint() -> None:
            if ddp.main:
                _save(checkpoint_path, {"config": config.to_dict(), "trainee": trainee.state_dict(),
                                        "optimizer": optimizer.state_dict(), "state": dict(state),
                                        "history": log.history, "extra": log.extra})
            ddp.barrier()

        trainee.train()
        while state["epoch"] < config.epochs:
            epoch = state["epoch"]
            order = epoch_order(len(train_data), config.seed, epoch)
            bar = tqdm(total=steps_per_epoch, initial=state["step"], disable=not (progress and ddp.main),
                       desc=f"{config.dataset} {config.stage} epoch {epoch + 1}/{config.epochs}",
                       unit="batch", dynamic_ncols=True)
            started = time.perf_counter()
            while state["step"] < steps_per_epoch:
                if stop_after is not None and done_now >= stop_after:
                    state["seconds"] += time.perf_counter() - started
                    checkpoint()
                    bar.close()
                    return log.summary()
                index = order[state["step"] * config.batch_size:(state["step"] + 1) * config.batch_size]
                x, y = to_float(train_data.images[index]), train_data.labels[index]
                if config.augment:
                    x = augment(x, _generator(config.seed, epoch, state["step"], 1), pad, flip)
                for group in optimizer.param_groups:
                    group["lr"] = config.lr * learning_rate_factor(config, state["global_step"],
                                                                   total_steps)
                optimizer.zero_grad(set_to_none=True)
                loss_sum, correct = stepper.step(x, y)
                optimizer.step()
                clamp_latent(model, config)
                state["loss_sum"] += loss_sum
                state["correct"] += correct
                state["seen"] += x.shape[0] * stepper.local // config.shards
                state["step"] += 1
                state["global_step"] += 1
                done_now += 1
                bar.update(1)
                bar.set_postfix(loss=f"{state['loss_sum'] / state['seen']:.3f}",
                                acc=f"{state['correct'] / state['seen']:.3f}")
                if checkpoint_every and state["global_step"] % checkpoint_every == 0 \
                        and state["step"] < steps_per_epoch:
                    state["seconds"] += time.perf_counter() - started
                    started = time.perf_counter()
                    checkpoint()
            bar.close()
            state["seconds"] += time.perf_counter() - started
            sums = ddp.all_sum(torch.tensor([state["loss_sum"], state["correct"], state["seen"]],
                                            dtype=torch.float64))
            row = {"epoch": epoch + 1, "step": state["global_step"],
                   "train_loss": float(sums[0] / sums[2]), "train_accuracy": float(sums[1] / sums[2]),
                   "lr": optimizer.param_groups[0]["lr"], "seconds": state["seconds"]}
            if ddp.main:
                accuracy, loss, _ = evaluate(model, test_data)
                row.update(test_accuracy=accuracy, test_loss=loss)
                model.train()
            log.add_epoch(row)
            if on_epoch is not None:
                on_epoch(row)
            state.update(epoch=epoch + 1, step=0, loss_sum=0.0, correct=0, seen=0)
            checkpoint()
        if ddp.main:
            _save(out / MODEL, {"config": config.to_dict(), "model": model.state_dict()})
            log.finish(model, test_data)
        ddp.barrier()
        return log.summary()
    finally:
        ddp.close()
