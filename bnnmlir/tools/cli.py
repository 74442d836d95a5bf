"""The ``bnnmlir`` command.

``bnnmlir run FILE.mlir``     compile tensor-level IR, run it on random inputs (host JIT, or
                              aarch64 under qemu) and compare with the numpy reference bit for bit
``bnnmlir demo``              the demo of the README
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


def _console() -> Console:
    return Console(highlight=False, width=max(140, Console().width))


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

    table = Table(title=f"{os.path.basename(path)}: compiled code vs numpy reference")
    for column in ("target", "runs on", "compile s", "run s", "outputs", "result"):
        table.add_column(column)
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
            where = "qemu-aarch64 (cortex-a72, NEON)"
        t2 = time.perf_counter()
        match = len(got) == len(expected) and all(
            g.shape == e.shape and np.array_equal(g, e) for g, e in zip(got, expected)
        )
        all_match &= match
        shapes = ", ".join(f"{g.dtype}{list(g.shape)}" for g in got)
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
    table = Table(title="BNN-Clip network (int8 stream, residual binary blocks, binary head)")
    for column in ("target", "runs on", "compile s", "run s", "output", "vs PyTorch eval()"):
        table.add_column(column)
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
    console = _console()
    console.print("[bold]bnnmlir demo[/bold] 1/2: a PyTorch BNN-Clip network, bnnmlir.compile")
    ok = run_model_demo(console, args.seed)
    example = resources.files("bnnmlir.examples") / "binary_conv_block.mlir"
    with resources.as_file(example) as path:
        console.print(f"[bold]bnnmlir demo[/bold] 2/2: tensor-level IR from {path.name}")
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
    compiled = compile_exported(program, target=args.target, threads=args.threads or 1, jit=False)
    for warning in compiled.warnings:
        console.print(f"[yellow]warning[/yellow]: {warning}")
    out = compiled.save(args.output, target=args.target, threads=args.threads, entry=args.entry)
    console.print(compiled.report())
    console.print(f"wrote {out / 'model.o'}, {out / 'model.h'} and {out / 'runtime'}/ ({args.target})")
    if compiled.dynamic_batch:
        console.print("dynamic batch: the entry point takes the batch size n first (see model.h)")
    if args.emit:
        for stage in args.emit:
            (out / f"model.{stage}.mlir").write_text(compiled.mlir(stage))
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bnnmlir", description="bnnmlir: a compiler for binary neural networks")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="compile an .mlir file, run it, compare with the reference")
    run.add_argument("file")
    run.add_argument("-t", "--target", action="append", choices=["host", "aarch64"],
                     help="target to run on (repeatable; default: host)")
    run.add_argument("--seed", type=_seed, default=0, help="seed of the random inputs (>= 0)")
    run.add_argument("--threads", type=_positive_int, default=None,
                     help="threads of the parallel loops (>= 1)")
    run.set_defaults(handler=_run)

    comp = sub.add_parser("compile", help="compile a saved torch.export archive (.pt2)")
    comp.add_argument("model", help="file written by torch.export.save (loaded without unpickling)")
    comp.add_argument("-o", "--output", required=True, help="output directory")
    comp.add_argument("-t", "--target", default="aarch64-linux-gnu", choices=["aarch64-linux-gnu", "aarch64", "host"])
    comp.add_argument("--threads", type=_positive_int, default=None,
                      help="threads of the parallel loops (>= 1)")
    comp.add_argument("--entry", type=_entry_name, default=None,
                      help="C name of the entry point (default: forward)")
    comp.add_argument("--emit", action="append", choices=["imported", "optimized", "buffers", "loops", "llvm"],
                      help="also write the IR after this stage (repeatable)")
    comp.set_defaults(handler=_compile)

    bench = sub.add_parser("bench", help="benchmarks: host speed vs PyTorch, llvm-mca model of NEON loops")
    bench.add_argument("rest", nargs=argparse.REMAINDER, help="options of the benchmark (see bnnmlir bench --help)")
    bench.set_defaults(handler=_bench)

    demo = sub.add_parser("demo", help="the README demo")
    demo.add_argument("--seed", type=_seed, default=0)
    demo.set_defaults(handler=_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from bnnmlir.errors import CompileError

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
