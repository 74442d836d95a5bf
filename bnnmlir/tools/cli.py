"""The ``bnnmlir`` command.

``bnnmlir run FILE.mlir``     compile tensor-level IR, run it on random inputs (host JIT, or
                              aarch64 under qemu) and compare with the numpy reference bit for bit
``bnnmlir demo``              the demo of the README
``bnnmlir train``             train a BNN-Clip network (see :mod:`bnnmlir.train.cli`)
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from importlib import resources

import numpy as np
from rich.console import Console
from rich.table import Table
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp

from bnnmlir.passes.pipelines import STAGES as PIPELINE_STAGES
from bnnmlir.tables import code_column, compact_table, number_column, text_column
from bnnmlir.tools.quick_exit import skip_final_collections
from bnnmlir.tools.version import version_text

STAGES = ("imported", *PIPELINE_STAGES)


def _console() -> Console:
    return Console(highlight=False)


def packed_channels(module: ModuleOp, entry: str | None = None) -> dict[int, int]:
    """Channel counts of the entry function's arguments that hold packed bits: argument index ->
    channels, for each argument read as the input or weights of a ``bnn.bconv2d``."""
    from bnnmlir.dialects.bnn import BConv2dOp

    fns = [op for op in module.ops if isinstance(op, func.FuncOp) and not op.is_declaration]
    fn = next(f for f in fns if entry is None or f.sym_name.data == entry)
    channels: dict[int, int] = {}
    for index, arg in enumerate(fn.body.block.args):
        for use in arg.uses:
            if isinstance(use.operation, BConv2dOp) and use.index in (0, 1):
                c = use.operation.channels
                channels[index] = min(c, channels.get(index, c))
    return channels


def random_inputs(module: ModuleOp, seed: int = 0, entry: str | None = None) -> list[np.ndarray]:
    """Random inputs of the entry function: those of :func:`bnnmlir.reference.random_inputs`,
    except that packed-bit arguments are random +-1 tensors packed by :mod:`bnnmlir.bits` (so the
    unused high bits of the last word are 0, as the convention requires)."""
    from bnnmlir import reference
    from bnnmlir.bits import pack_bits

    arrays = reference.random_inputs(module, seed, entry)
    rng = np.random.default_rng([seed, 1])
    for index, channels in packed_channels(module, entry).items():
        words = arrays[index]
        signs = rng.choice(np.array([-1, 1], dtype=np.int8), size=(*words.shape[:-1], channels))
        arrays[index] = pack_bits(signs).view(words.dtype).reshape(words.shape)
    return arrays


def _results_table(title: str, outputs: str, verdict: str) -> Table:
    """One row per target: where it ran, compile and run seconds, outputs, the verdict."""
    table = compact_table(title)
    code_column(table, "target")
    text_column(table, "runs on")
    number_column(table, "compile s")
    number_column(table, "run s")
    code_column(table, outputs)  # one line per output
    code_column(table, verdict)
    return table


def run_mlir_file(path: str, *, targets: Sequence[str], seed: int = 0, threads: int | None = None,
                  console: Console | None = None) -> bool:
    """Compile ``path`` for each target, run it, compare with the reference; True if all match."""
    from bnnmlir import reference
    from bnnmlir.compiler import compile_module, parse_mlir

    console = console or _console()
    with open(path, encoding="utf-8") as f:
        text = f.read()
    reference_module = parse_mlir(text, path)
    inputs = random_inputs(reference_module, seed)
    expected = reference.evaluate(reference_module, inputs)

    table = _results_table(f"{os.path.basename(path)}: compiled code vs numpy reference",
                           "outputs", "result")
    all_match = True
    for target in targets:
        t0 = time.perf_counter()
        program = compile_module(parse_mlir(text, path), target=target, threads=threads)
        t1 = time.perf_counter()
        if program.target.is_host:
            got = program(*inputs)
            where = f"host JIT ({program.target.cpu})"
        else:
            got = program.run_aarch64(*inputs)
            where = f"qemu-aarch64 ({program.target.cpu}, {program.target.features})"
        t2 = time.perf_counter()
        match = len(got) == len(expected) and all(
            g.shape == e.shape and np.array_equal(g, e) for g, e in zip(got, expected)
        )
        all_match &= match
        shapes = "\n".join(f"{g.dtype}{list(g.shape)}" for g in got)
        verdict = "[green]bit-exact[/green]" if match else "[red]MISMATCH[/red]"
        table.add_row(target, where, f"{t1 - t0:.2f}", f"{t2 - t1:.2f}", shapes, verdict)
    console.print(table)
    return all_match


def run_model_demo(console: Console, seed: int = 0) -> bool:
    """Build the example BNN-Clip network, compile it for the host and for aarch64, run both and
    compare with PyTorch; True if every output is identical."""
    import torch

    import bnnmlir
    from bnnmlir.examples.models import bnn_clip_net

    model = bnn_clip_net(seed=seed)
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(seed))
    expected = model(x)
    table = _results_table("BNN-Clip network (int8 stream, residual binary blocks, binary head)",
                           "output", "vs PyTorch eval()")
    ok = True
    compiled = None
    for target in ("host", "aarch64"):
        t0 = time.perf_counter()
        compiled = bnnmlir.compile(model, (x,), target=target)
        t1 = time.perf_counter()
        y = compiled(x)
        t2 = time.perf_counter()
        same = torch.equal(y, expected)
        ok &= same
        where = "host JIT" if target == "host" else "qemu-aarch64 (cortex-a72, NEON)"
        verdict = "[green]identical[/green]" if same else "[red]DIFFERENT[/red]"
        table.add_row(target, where, f"{t1 - t0:.2f}", f"{t2 - t1:.2f}",
                      f"{y.dtype}{list(y.shape)}", verdict)
    assert compiled is not None
    console.print(compiled.report())
    console.print(table)
    return ok


def _demo(args: argparse.Namespace) -> int:
    from bnnmlir.models.demo import run_pretrained_demo

    console = _console()
    console.print("[bold]bnnmlir demo[/bold] 1/3: the shipped trained BNN-Clip model classifies "
                  "Fashion-MNIST test images through compiled code")
    ok = run_pretrained_demo(console)
    console.print("[bold]bnnmlir demo[/bold] 2/3: a PyTorch BNN-Clip network, bnnmlir.compile")
    ok &= run_model_demo(console, args.seed)
    example = resources.files("bnnmlir.examples") / "binary_conv_block.mlir"
    with resources.as_file(example) as path:
        console.print(f"[bold]bnnmlir demo[/bold] 3/3: tensor-level IR from {path.name}")
        ok &= run_mlir_file(str(path), targets=["host", "aarch64"], seed=args.seed, console=console)
    console.print(
        "[green]outputs are identical to PyTorch and to the reference, bit for bit, on every target[/green]"
        if ok
        else "[red]outputs differ[/red]"
    )
    return 0 if ok else 1


def _compile(args: argparse.Namespace) -> int:
    """Compile a saved torch.export archive: object + header + runtime, and the report."""
    from bnnmlir.api import compile_exported
    from bnnmlir.frontend.archive import load_exported_program

    console = _console()
    program = load_exported_program(args.model)
    progress = sys.stderr.isatty() if args.progress is None else args.progress
    compiled = compile_exported(program, target=args.target, threads=args.threads, jit=False,
                                progress=progress)
    for warning in compiled.warnings:
        console.print(f"[yellow]warning[/yellow]: {warning}")
    out = compiled.save(args.output, target=args.target, threads=args.threads, entry=args.entry)
    console.print(compiled.report())
    console.print(f"wrote {out / 'model.o'}, {out / 'model.h'} and {out / 'runtime'}/ ({args.target})")
    if compiled.dynamic_batch:
        console.print("dynamic batch: the entry point takes the batch size n first (see model.h)")
    if args.emit:
        for stage in args.emit:
            (out / f"model.{stage}.mlir").write_text(compiled.mlir(stage, elide_larger_than=None))
    return 0


def _bench(args: argparse.Namespace) -> int:
    from bnnmlir.bench import main as bench_main

    rest = args.rest[1:] if args.rest[:1] == ["--"] else args.rest
    return bench_main(rest)


def _run(args: argparse.Namespace) -> int:
    ok = run_mlir_file(args.file, targets=args.target, seed=args.seed, threads=args.threads)
    return 0 if ok else 1


def _int_at_least(minimum: int):
    """An argparse type: an integer ``>= minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid integer: '{text}'") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    return parse


_positive_int = _int_at_least(1)
_seed = _int_at_least(0)


def _entry_name(text: str) -> str:
    from bnnmlir.compiler import check_entry_name

    try:
        return check_entry_name(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _target(text: str) -> str:
    """An argparse type: any accepted spelling of a target, as its canonical name."""
    from bnnmlir.target import canonical_target_name

    try:
        return canonical_target_name(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Appends ``(default: X)`` to the help of each option with a default, unless the help
    already says it or there is none (``None``, an unset flag)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if action.default is None or action.default is False or "default" in text:
            return text
        return super()._get_help_string(action)


class _RawDescriptionHelpFormatter(argparse.RawDescriptionHelpFormatter, _HelpFormatter):
    """:class:`_HelpFormatter` that keeps the description's own line breaks."""


def _target_help(what: str, default: str | None = None) -> str:
    from bnnmlir.target import TARGET_NAMES, describe_target_spellings

    text = f"{what}: {' or '.join(TARGET_NAMES)} ({describe_target_spellings()})"
    return text + (f" (default: {default})" if default else "")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bnnmlir", description="bnnmlir: a compiler for binary neural networks",
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=version_text("bnnmlir"),
                        help="print the versions of bnnmlir, PyTorch, xDSL, llvmlite and exit")
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name: str, text: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=text, description=text, formatter_class=_HelpFormatter)

    run = command("run", "compile an .mlir file, run it, compare with the reference")
    run.add_argument("file")
    run.add_argument("-t", "--target", action="append", type=_target, metavar="TARGET",
                     help=_target_help("target to run on, repeatable", default="host"))
    run.add_argument("--seed", type=_seed, default=0, help="seed of the random inputs (>= 0)")
    run.add_argument("--threads", type=_positive_int, default=None,
                     help="threads of the parallel loops (>= 1; default: every core on the "
                          "host, 1 on aarch64)")
    run.set_defaults(handler=_run)

    comp = command("compile", "compile a saved torch.export archive (.pt2)")
    comp.add_argument("model", help="file written by torch.export.save (loaded without unpickling)")
    comp.add_argument("-o", "--output", required=True, help="output directory")
    comp.add_argument("-t", "--target", type=_target, default="aarch64", metavar="TARGET",
                      help=_target_help("target of the object code"))
    comp.add_argument("--threads", type=_positive_int, default=1,
                      help="threads of the parallel loops (>= 1)")
    comp.add_argument("--entry", type=_entry_name, default=None,
                      help="C name of the entry point (default: forward)")
    comp.add_argument("--emit", action="append", choices=STAGES, metavar="STAGE",
                      help=f"also write the IR after this stage (repeatable): {', '.join(STAGES)}")
    comp.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                      help="a progress bar on stderr for compiles over a second "
                           "(default: on when stderr is a terminal)")
    comp.set_defaults(handler=_compile)

    bench = command("bench", "benchmarks: host speed vs PyTorch, llvm-mca model of NEON loops")
    bench.add_argument("rest", nargs=argparse.REMAINDER, help="options of the benchmark (see bnnmlir bench --help)")
    bench.set_defaults(handler=_bench)

    demo = command("demo", "the README demo")
    demo.add_argument("--seed", type=_seed, default=0, help="seed of the model and of the inputs")
    demo.set_defaults(handler=_demo)

    from bnnmlir.train.cli import add_train_parser

    add_train_parser(sub, _RawDescriptionHelpFormatter)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from bnnmlir.errors import CompileError

    skip_final_collections()
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["bench"]:  # the benchmark parses its own options
        from bnnmlir.bench import main as bench_main

        return bench_main(argv[1:])
    args = build_parser().parse_args(argv)
    if getattr(args, "target", None) is None and args.command == "run":
        args.target = ["host"]
    try:
        return args.handler(args)
    except (CompileError, OSError, ValueError, RuntimeError) as e:
        print(f"bnnmlir: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
