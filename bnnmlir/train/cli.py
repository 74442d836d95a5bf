"""``bnnmlir train``: the command line of :mod:`bnnmlir.train`.

::

    bnnmlir train --dataset fashion-mnist --stage bnn --epochs 8 --out runs/fm-bnn
    bnnmlir train --dataset fashion-mnist --stage bnn-clip --init runs/fm-bnn --epochs 2 \\
        --lr 1e-4 --out runs/fm-bnn-clip
    bnnmlir train --table runs/fm-fp runs/fm-bnn runs/fm-bnn-clip    # the results table

Runs unchanged under ``torchrun --nproc_per_node N`` (DistributedDataParallel, gloo backend).
After training, the main process evaluates the model through the compiled code as well as
PyTorch (``--no-compiled-eval`` skips it) and stores both in ``log.json``.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys

__all__ = ["add_train_parser"]


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid integer: '{text}'") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def add_train_parser(sub, formatter_class: type[argparse.HelpFormatter]
                     = argparse.RawDescriptionHelpFormatter) -> argparse.ArgumentParser:
    """Add the ``train`` subcommand to the subparsers ``sub`` of the ``bnnmlir`` command (its
    help formatted by ``formatter_class``, which must keep the description's line breaks)."""
    from bnnmlir.train.config import DATASET_NAMES, STAGES, TrainConfig

    d = TrainConfig()
    p = sub.add_parser("train", help="train a BNN-Clip network (Fashion-MNIST, CIFAR-10)",
                       description=__doc__.split("\n\n", 1)[1], formatter_class=formatter_class)
    p.add_argument("--dataset", choices=list(DATASET_NAMES), default=d.dataset,
                   help="images to train and test on")
    p.add_argument("--data", default=None, help="dataset folder (Fashion-MNIST default: "
                   "/usr/share/datasets/fashion-mnist; CIFAR-10: required)")
    p.add_argument("--stage", choices=list(STAGES), default=d.stage,
                   help="full-precision twin, stage 1 (bnn, 32-bit data flow) or stage 2 "
                   "(bnn-clip: int8 stream, fine-tunes --init)")
    p.add_argument("--model", choices=list(DATASET_NAMES), default=None,
                   help="network of bnnmlir.models (default: that of --dataset)")
    p.add_argument("--width", type=_positive, default=None, help="stem channels of the network")
    p.add_argument("--init", default=None, help="run directory whose weights start this run")
    p.add_argument("--out", help="run directory (checkpoints, log.csv, log.json, curves.png)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    p.add_argument("--epochs", type=int, default=d.epochs, help="passes over the training set")
    p.add_argument("--batch-size", type=_positive, default=d.batch_size, help="global batch size")
    p.add_argument("--lr", type=float, default=d.lr, help="Adam learning rate")
    p.add_argument("--weight-decay", type=float, default=d.weight_decay,
                   help="weight decay of float and int8 weights")
    p.add_argument("--binary-weight-decay", type=float, default=d.binary_weight_decay,
                   help="weight decay of the latent binary weights")
    p.add_argument("--latent-clip", type=float, default=d.latent_clip,
                   help="clamp latent binary weights to [-c, c] after each step (0: off)")
    p.add_argument("--schedule", choices=["cosine", "step"], default=d.schedule,
                   help="learning-rate schedule (step: x0.1 at 50%% and 75%% of the steps)")
    p.add_argument("--augment", action="store_true", help="random crops (and flips for CIFAR-10)")
    p.add_argument("--distill", default=None, help="run directory of a teacher (distillation)")
    p.add_argument("--distill-weight", type=float, default=d.distill_weight,
                   help="weight of the distillation loss (1 - it: the cross-entropy's)")
    p.add_argument("--distill-temperature", type=float, default=d.distill_temperature,
                   help="softmax temperature of the distillation loss")
    p.add_argument("--calibration-quantile", type=float, default=d.calibration_quantile,
                   help="stage 2: this quantile of |x| at the clipping points is scaled to 127")
    p.add_argument("--seed", type=int, default=d.seed,
                   help="seed of the initial weights, the batches and the augmentation")
    p.add_argument("--shards", type=_positive, default=None,
                   help="split each batch into this many shards (default: number of processes)")
    p.add_argument("--train-limit", type=_positive, default=None, help="first N training images")
    p.add_argument("--test-limit", type=_positive, default=None, help="first N test images")
    p.add_argument("--threads", type=_positive, default=None, help="torch threads per process")
    p.add_argument("--checkpoint-every", type=_positive, default=None,
                   help="also checkpoint every N steps")
    p.add_argument("--stop-after", type=_positive, default=None,
                   help="stop after N steps with a checkpoint (continue with --resume)")
    p.add_argument("--no-compiled-eval", action="store_true",
                   help="skip the evaluation through the compiled model")
    p.add_argument("--eval-batch", type=_positive, default=250,
                   help="batch size of the compiled evaluation")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--table", nargs="+", metavar="RUN",
                   help="print the results table of finished runs (no training)")
    p.set_defaults(handler=run_train_command)
    return p


def run_train_command(args: argparse.Namespace) -> int:
    import os

    from bnnmlir.train.compiled import compiled_evaluation, print_table
    from bnnmlir.train.loop import train
    from bnnmlir.train.config import TrainConfig

    if args.table:
        print_table(args.table)
        return 0
    missing = [m for m in ("matplotlib", "PIL") if importlib.util.find_spec(m) is None]
    if missing:
        print(f"bnnmlir train: error: {', '.join(missing)} not installed; install the training "
              "dependencies with `pip install -e '.[train]'`", file=sys.stderr)
        return 1
    if not args.out:
        print("bnnmlir train: error: --out DIR is required", file=sys.stderr)
        return 2
    if args.model is not None and args.model != args.dataset:
        print(f"bnnmlir train: error: the {args.model} network does not take {args.dataset} "
              "images", file=sys.stderr)
        return 2
    world = int(os.environ.get("WORLD_SIZE", "1"))
    config = TrainConfig(
        dataset=args.dataset, stage=args.stage, width=args.width, epochs=args.epochs,
        batch_size=args.batch_size, lr=args.lr, weight_decay=args.weight_decay,
        binary_weight_decay=args.binary_weight_decay, latent_clip=args.latent_clip,
        schedule=args.schedule, augment=args.augment, seed=args.seed,
        shards=args.shards or world, train_limit=args.train_limit, test_limit=args.test_limit,
        init=args.init, calibration_quantile=args.calibration_quantile, distill=args.distill,
        distill_weight=args.distill_weight, distill_temperature=args.distill_temperature,
    )
    summary = train(config, args.out, resume=args.resume, threads=args.threads,
                    data_root=args.data, progress=not args.quiet,
                    checkpoint_every=args.checkpoint_every, stop_after=args.stop_after)
    rank = int(os.environ.get("RANK", "0"))
    finished = len(summary["epochs"]) == config.epochs and "test_accuracy" in summary["results"]
    if rank == 0 and finished:
        if not args.no_compiled_eval:
            compiled_evaluation(args.out, data_root=args.data, batch=args.eval_batch,
                                threads=args.threads)
        print_table([args.out])
    return 0
