"""``bnnmlir bench``: speed of compiled binary convolutions, as tables.

Three parts, measured or modelled in the same run as their peers:

1. host: each layer of :data:`bnnmlir.bench.layers.LAYERS` compiled for the host with 1 thread
   and with ``--threads`` threads, timed against PyTorch fp32 and int8 convolutions of the same
   shape (:mod:`bnnmlir.bench.host`); every compiled layer is first checked against the numpy
   reference;
2. ARM model (``--mca``): ``llvm-mca`` cycles of the innermost popcount loop of the aarch64 code
   (cortex-a72) against small reference NEON loops (:mod:`bnnmlir.bench.mca`);
3. compile time and memory (``--compile``): whole networks compiled cold and again from the
   compile cache, each in a fresh process (:mod:`bnnmlir.bench.compile`);
4. published (``--published``, off by default): Bi-Real-Net-18 in its authors' PyTorch form
   (``exact=False``) against the BNN-Clip ``bireal_net18`` (:mod:`bnnmlir.bench.published`).

GOPS are binary ops per second / 1e9 with ``ops = 2 * MACs`` (one XNOR-popcount MAC = 2 ops, the
count that gives the fp32 convolution's FLOPs); speedups are time ratios (peer time / bnnmlir time).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence

from rich.console import Console
from rich.table import Table

from bnnmlir.bench.host import (
    QUICK_TIMING,
    HostResult,
    TimingPolicy,
    bench_host,
    host_speed_peak_note,
)
from bnnmlir.bench.int8 import INT8_LAYERS, Int8Result, bench_int8_layer
from bnnmlir.bench.layers import LAYERS, ConvLayer, layer_plan, select_layers
from bnnmlir.bench.limit import MachineLimit, binary_ops_limit
from bnnmlir.bench.mca import (
    MCA_ARGS,
    LayerModel,
    McaResult,
    find_llvm_mca,
    layer_model,
    layer_result,
    llvm_mca_version,
    neoverse_n1_modeled,
    peer_results,
)
from bnnmlir.tables import compact_table, number_column, text_column

# The layers the ARM model looks at: their interior (no padding) runs the steady-state loop.
MCA_LAYERS: tuple[str, ...] = ("stage1", "stage3", "stage4", "256@28", "c37")
QUICK_MCA_LAYERS: tuple[str, ...] = ("stage4",)
WHOLE_LAYERS: tuple[str, ...] = ("256@28",)
"""The ARM-model layers also modelled whole (every executed block, counted under qemu; slow:
about a minute each)."""
QUICK_WHOLE_LAYERS: tuple[str, ...] = ("stage4",)


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1e3:.3f}"


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def of_limit(result: HostResult, limit: MachineLimit | None) -> str:
    """The layer's binary ops/s as a fraction of ``threads`` times the one-core limit."""
    if limit is None or not result.bnnmlir_exact:
        return "-"
    return f"{result.gops * 1e9 / (limit.ops_per_second * result.threads):.0%}"


def host_table(results: Sequence[HostResult], cpu: str,
               limit: MachineLimit | None = None) -> Table:
    table = compact_table(f"Host ({cpu}): binary conv, median time per call (batch 1)")
    text_column(table, "layer")
    text_column(table, "shape")
    for column in ("thr", "bnnmlir ms", "GOPS", "of limit", "torch fp32 ms", "torch int8 ms",
                   "vs fp32", "vs int8"):
        number_column(table, column)
    text_column(table, "check")
    for r in results:
        if not r.bnnmlir_exact:
            check = "[red]bnnmlir WRONG[/red]"
        elif r.fp32_exact is False or r.int8_within_step is False:
            check = "[yellow]peer differs[/yellow]"
        elif r.fp32_exact is None:
            check = "[green]exact[/green] (no peers)"
        else:
            check = "[green]exact[/green]"
        ok = r.bnnmlir_exact
        table.add_row(
            r.layer, r.shape, str(r.threads), _ms(r.bnnmlir_s) if ok else "-",
            f"{r.gops:.0f}" if ok else "-", of_limit(r, limit), _ms(r.fp32_s), _ms(r.int8_s),
            _ratio(r.speedup_fp32) if ok else "-", _ratio(r.speedup_int8) if ok else "-", check,
        )
    return table


def int8_table(results: Sequence[Int8Result], cpu: str) -> Table:
    table = Table(title=f"Host ({cpu}): int8 layers, median time per call (batch 1, 1 thread)")
    for column in ("layer", "shape", "bnnmlir ms", "GOPS", "torch fp32 ms", "torch int8 ms",
                   "vs fp32", "vs int8", "check"):
        table.add_column(column, justify="left" if column in ("layer", "shape", "check") else "right")  # type: ignore[arg-type]
    for r in results:
        ratio = lambda peer: None if peer is None else peer / r.bnnmlir_s  # noqa: E731
        table.add_row(
            r.layer, r.shape, _ms(r.bnnmlir_s) if r.exact else "-",
            f"{r.gops:.0f}" if r.exact else "-", _ms(r.fp32_s), _ms(r.int8_s),
            _ratio(ratio(r.fp32_s)) if r.exact else "-", _ratio(ratio(r.int8_s)) if r.exact else "-",
            "[green]exact[/green]" if r.exact else "[red]bnnmlir WRONG[/red]",
        )
    return table


def mca_table(results: Sequence[McaResult]) -> Table:
    table = compact_table(
        "ARM model: llvm-mca -mcpu=cortex-a72, innermost popcount loop "
        "(generated: interior of the layer, no padding; peers: reference NEON loops)"
    )
    for column in ("loop", "shape", "accumulate"):
        text_column(table, column)
    for column in ("blocks", "instrs", "B/iter", "cyc/iter", "cyc/16 B", "ops/cyc", "vs uadalp"):
        number_column(table, column)
    table.caption = ("B/iter: bytes of packed input per iteration; cyc: cycles; ops/cyc: binary "
                     "ops per cycle")
    base = next((r for r in results if r.source == "peer" and "uadalp" in r.name), None)
    for r in results:
        rel = None if base is None else base.cycles_per_16_bytes / r.cycles_per_16_bytes
        table.add_row(
            r.name, r.source, r.accumulate, str(r.blocks), str(r.instructions),
            str(r.bytes_per_iteration), f"{r.cycles_per_iteration:.2f}",
            f"{r.cycles_per_16_bytes:.2f}", f"{r.ops_per_cycle:.1f}", _ratio(rel),
        )
    return table


def whole_layer_table(models: Sequence[LayerModel]) -> Table:
    table = compact_table(
        "ARM model: llvm-mca, the whole generated layer (every block it executes, counted under "
        "qemu, times its modelled cycles) against the NEON bound"
    )
    for column in ("layer", "cpu"):
        text_column(table, column)
    for column in ("blocks", "Mcycles", "bound Mcyc", "of bound"):
        number_column(table, column)
    table.caption = ("bound: one eor + cnt + accumulate per 16 packed bytes and output channel "
                     "on two SIMD pipes (1.5 cycles)")
    for m in models:
        table.add_row(m.name, m.cpu, str(m.blocks), f"{m.cycles / 1e6:.2f}",
                      f"{m.bound_cycles / 1e6:.2f}", f"{m.of_bound:.0%}")
    return table


def bench_mca(layers: Sequence[ConvLayer]) -> tuple[list[McaResult], list[str]]:
    """Model the interior of each layer's generated loop, then the peers."""
    mca = find_llvm_mca()
    if mca is None:
        return [], ["llvm-mca not found: ARM model skipped (Debian package 'llvm')"]
    results, notes = [], []
    for layer in layers:
        result = layer_result(layer.interior(), mca)
        if result is None:
            notes.append(f"{layer.name}: no loop with cnt found in the aarch64 assembly")
        else:
            results.append(result)
    return results + peer_results(mca), notes


def best_limit(*limits: MachineLimit | None) -> MachineLimit | None:
    """The highest of the limit measurements (taken before and after the layers: the least
    disturbed one on a shared machine)."""
    known = [limit for limit in limits if limit is not None]
    return max(known, key=lambda limit: limit.ops_per_second) if known else None


def build_parser() -> argparse.ArgumentParser:
    from bnnmlir.compiler import default_threads

    names = ", ".join(layer.name for layer in LAYERS)
    parser = argparse.ArgumentParser(
        prog="bnnmlir bench",
        description="Binary convolution speed: host (vs PyTorch) and an ARM model (llvm-mca).",
    )
    parser.add_argument("--quick", action="store_true",
                        help="fewer layers and shorter timing (about 10 s)")
    parser.add_argument("--threads", type=int, default=default_threads(),
                        help="threads of the multi-threaded runs (default: every core); "
                             "1 thread is always measured")
    parser.add_argument("--layers", default=None,
                        help=f"comma-separated layers (default: all; known: {names})")
    parser.add_argument("--host", action=argparse.BooleanOptionalAction, default=True,
                        help="time the layers on the host (default: on)")
    parser.add_argument("--int8", action=argparse.BooleanOptionalAction, default=True,
                        help="time the int8 layers (stem, 1x1 shortcut, dense head; default: on)")
    parser.add_argument("--peers", action=argparse.BooleanOptionalAction, default=True,
                        help="time the PyTorch peers (default: on)")
    parser.add_argument("--mca", action=argparse.BooleanOptionalAction, default=True,
                        help="model the aarch64 inner loop with llvm-mca (default: on)")
    parser.add_argument("--repeats", type=int, default=None,
                        help="exactly this many timed calls per kernel (default: adaptive)")
    parser.add_argument("--compile", action=argparse.BooleanOptionalAction, default=True,
                        help="time whole-network compiles, cold and cached, and their peak "
                             "memory, each in a fresh process (default: on; --quick: the demo "
                             "network only)")
    parser.add_argument("--compile-targets", default=None,
                        help="comma-separated targets of the compile-time runs "
                             "(default: host,aarch64; --quick: host)")
    parser.add_argument("--published", action=argparse.BooleanOptionalAction, default=False,
                        help="time Bi-Real-Net-18 in its authors' PyTorch form (exact=False) "
                             "against the BNN-Clip bireal_net18 and print the ratio "
                             "(default: off)")
    parser.add_argument("--json", metavar="FILE", default=None, help="also write the results as JSON")
    add_model_arguments(parser)
    return parser


def select_compile_targets(names: str | None, quick: bool) -> tuple[str, ...]:
    """The targets of the compile-time runs; ``ValueError`` for an unknown one."""
    from bnnmlir.target import canonical_target_name

    if names is None:
        return ("host",) if quick else ("host", "aarch64")
    return tuple(canonical_target_name(name.strip()) for name in names.split(","))
def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of the model table, the per-layer profile, the peers and the chart."""
    parser.add_argument("--models", default=None, metavar="NAMES",
                        help="time whole networks of the model zoo, 224x224 (comma-separated, "
                             "or 'all': bireal_net18, quicknet, binary_alexnet; default: none)")
    parser.add_argument("--profile", action="store_true",
                        help="print the per-layer profile of each network of --models "
                             "(default: bireal_net18)")
    parser.add_argument("--peer", action="append", default=[], choices=["lce"],
                        help="add a peer to the model table: 'lce' is Larq Compute Engine "
                             "(installed by scripts/setup-lce.sh into .venv-lce)")
    parser.add_argument("--plot", metavar="FILE", default=None,
                        help="also draw the model (and layer) tables as a PNG chart")


def model_names(spec: str | None) -> list[str]:
    """The zoo networks named by ``--models``; ``ValueError`` for an unknown one."""
    from bnnmlir.models import ZOO

    if spec is None:
        return []
    if spec == "all":
        return list(ZOO)
    names = [n.strip() for n in spec.split(",") if n.strip()]
    unknown = [n for n in names if n not in ZOO]
    if unknown or not names:
        raise ValueError(f"unknown model {', '.join(unknown) or repr(spec)}; known: "
                         f"{', '.join(ZOO)}, or 'all'")
    return names


def run_model_parts(args: argparse.Namespace, policy: TimingPolicy, console: Console,
                    report: dict[str, object]) -> list:
    """The model table (``--models``) and the per-layer profiles (``--profile``)."""
    from bnnmlir.bench.models import bench_models, models_table, profile_models

    names = model_names(args.models)
    say = lambda msg: console.print(f"[dim]{msg}[/dim]")  # noqa: E731
    results = []
    if names:
        threads = [1] if args.threads == 1 else [1, args.threads]
        results, notes = bench_models(names, threads, policy, peers=args.peers,
                                      lce="lce" in args.peer, progress=say)
        console.print(models_table(results, host_speed_peak_note()))
        for note in notes:
            console.print(f"[yellow]{note}[/yellow]")
        report["models"] = {"results": [r.as_dict() for r in results], "notes": notes}
    if args.profile:
        profiles = profile_models(names or ["bireal_net18"], repeat=policy.min_repeats,
                                  progress=say)
        for profile in profiles:
            console.print(profile)
        report["profiles"] = [p.as_dict() for p in profiles]
    return results


def timing_policy(args: argparse.Namespace) -> TimingPolicy:
    if args.repeats is not None:
        if args.repeats < 1:
            raise ValueError("--repeats must be at least 1")
        return TimingPolicy(
            warmup=1, min_repeats=args.repeats, max_repeats=args.repeats, min_time=0.0, rounds=1
        )
    return QUICK_TIMING if args.quick else TimingPolicy()


def main(argv: Sequence[str] | None = None, console: Console | None = None) -> int:
    args = build_parser().parse_args(argv)
    if console is None:
        console = Console(highlight=False)
    if args.threads < 1:
        console.print("[red]--threads must be at least 1[/red]")
        return 2
    try:
        layers = select_layers(args.layers, args.quick)
        policy = timing_policy(args)
        compile_targets = select_compile_targets(args.compile_targets, args.quick)
        model_names(args.models)
    except ValueError as e:
        console.print(f"[red]{e}[/red]")
        return 2
    start = time.perf_counter()
    report: dict[str, object] = {
        "ops_definition": "binary ops = 2 * N*OH*OW*O*KH*KW*C; GOPS = ops / seconds / 1e9",
        "timing": {"warmup": policy.warmup, "min_repeats": policy.min_repeats,
                   "max_repeats": policy.max_repeats, "min_time_s": policy.min_time,
                   "rounds": policy.rounds},
    }
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    report["load_average_1min"] = load
    if load > 0.5:
        console.print(
            f"[yellow]the machine is busy (load average {load:.2f}): times, above all with "
            "several threads, are disturbed by other processes[/yellow]"
        )
    ok = True
    layer_rows: list[HostResult] = []
    if args.host:
        threads = [1] if args.threads == 1 else [1, args.threads]
        cpu = host_speed_peak_note()
        limit = best_limit(binary_ops_limit())
        results = bench_host(
            layers, threads, policy, peers=args.peers,
            progress=lambda msg: console.print(f"[dim]{msg}[/dim]"),
        )
        limit = best_limit(limit, binary_ops_limit())
        console.print(host_table(results, cpu, limit))
        console.print("[dim]of limit: GOPS / (threads x the machine limit measured in this run: "
                      + (limit.describe() if limit else "not measured, no AVX-512 vpopcntq")
                      + ")[/dim]")
        plans = {layer.name: layer_plan(layer) for layer in layers}
        for name, plan in plans.items():
            console.print(f"[dim]{name}: {plan or 'per-position kernel'}[/dim]")
        ok &= all(r.bnnmlir_exact for r in results)
        report["host"] = {"cpu": cpu, "results": [r.as_dict() | {
            "of_limit": None if limit is None else r.gops * 1e9 / limit.ops_per_second / r.threads}
            for r in results], "limit_gops": None if limit is None else limit.gops,
            "plans": plans}
        layer_rows = results
    if args.host and args.int8 and not args.quick:
        cpu = host_speed_peak_note()
        console.print("[dim]host: int8 layers[/dim]")
        int8_results = [bench_int8_layer(layer, policy, peers=args.peers) for layer in INT8_LAYERS]
        console.print(int8_table(int8_results, cpu))
        ok &= all(r.exact for r in int8_results)
        report["int8"] = [vars(r) | {"gops": r.gops} for r in int8_results]
    if args.mca:
        if args.layers is None:
            mca_layers = select_layers(",".join(QUICK_MCA_LAYERS if args.quick else MCA_LAYERS))
        else:
            mca_layers = layers
        mca_results, notes = bench_mca(mca_layers)
        if mca_results:
            console.print(mca_table(mca_results))
        for note in notes:
            console.print(f"[yellow]{note}[/yellow]")
        wanted = QUICK_WHOLE_LAYERS if args.quick else WHOLE_LAYERS
        whole = [layer for layer in mca_layers if layer.name in wanted]
        models = [m for layer in whole for m in layer_model(layer)]
        if models:
            console.print(whole_layer_table(models))
            mca = find_llvm_mca()
            if mca is not None and not neoverse_n1_modeled(mca):
                console.print(f"[yellow]{mca} (LLVM {llvm_mca_version(mca)}) accepts "
                              "-mcpu=neoverse-n1 but schedules it with the Cortex-A57 model; "
                              "install llvm-19 for a real Neoverse N1 model[/yellow]")
        report["mca"] = {"command": " ".join((find_llvm_mca() or "llvm-mca", *MCA_ARGS)),
                         "results": [r.as_dict() for r in mca_results], "notes": notes,
                         "whole_layer": [m.as_dict() for m in models]}
    if args.compile:
        from bnnmlir.bench.compile import bench_compile, compile_table

        compile_results = bench_compile(
            args.quick, targets=compile_targets, progress=lambda msg: console.print(f"[dim]{msg}[/dim]")
        )
        console.print(compile_table(compile_results))
        report["compile"] = [r.as_dict() for r in compile_results]
    if args.published:
        from bnnmlir.bench.published import bench_published, published_table

        result = bench_published(args.threads, policy,
                                 progress=lambda msg: console.print(f"[dim]{msg}[/dim]"))
        console.print(published_table(result, host_speed_peak_note()))
        report["published"] = result.as_dict()
    model_results = run_model_parts(args, policy, console, report)
    if args.plot and (model_results or layer_rows):
        from bnnmlir.bench.models import plot_results

        path = plot_results(args.plot, model_results, layer_rows)
        console.print(f"[dim]chart written to {path}[/dim]")
    console.print(
        "[dim]GOPS: binary ops/s / 1e9, ops = 2*MACs (MAC = XNOR + popcount-accumulate); "
        "vs fp32 / vs int8: peer time / bnnmlir time, same thread count. "
        f"Total {time.perf_counter() - start:.1f} s.[/dim]"
    )
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(report, f, indent=2)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
