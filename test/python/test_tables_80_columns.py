"""The tables bnnmlir prints (per-layer report, ``bnnmlir run``, ``bnnmlir bench``) read well in
an 80-column terminal: no line is wider, and no number or code is split over two lines."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from rich.cells import cell_len
from rich.console import Console
from rich.table import Table
from rich.text import Text
from torch_models import binary_net

import bnnmlir
from bnnmlir.bench import command as bench
from bnnmlir.bench.host import HostResult
from bnnmlir.bench.layers import LAYERS
from bnnmlir.bench.mca import PEERS, McaResult
from bnnmlir.examples.models import bnn_clip_net
from bnnmlir.tables import si_count
from bnnmlir.tools.cli import run_mlir_file

ROOT = Path(__file__).resolve().parents[2]


def render(renderable, width: int = 80) -> list[str]:
    console = Console(width=width, record=True, highlight=False)
    console.print(renderable)
    return console.export_text().splitlines()


def unwrapped_cells(table: Table) -> list[str]:
    """The text of every cell of the columns that must never wrap (numbers and codes)."""
    cells = []
    for column in table.columns:
        if column.no_wrap:
            for cell in column.cells:
                text = cell.plain if isinstance(cell, Text) else Text.from_markup(cell).plain
                cells += [text] if text.strip() else []
    return cells


def assert_fits(table: Table, width: int = 80) -> list[str]:
    lines = render(table, width)
    too_wide = [line for line in lines if cell_len(line) > width]
    assert not too_wide, "\n".join(lines)
    cells = unwrapped_cells(table)
    assert cells, "the table has no number or code cells"
    for cell in cells:
        assert any(cell in line for line in lines), f"'{cell}' is split:\n" + "\n".join(lines)
    return lines


@pytest.fixture(scope="module")
def clip_net_report():
    model = bnn_clip_net(seed=0)
    return bnnmlir.compile(model, (torch.randn(2, 3, 32, 32),), jit=False).report()


def test_report_fits_80_columns(clip_net_report):
    lines = assert_fits(clip_net_report.table())
    for row in clip_net_report.rows:
        assert any(line.startswith(row.layer + " ") for line in lines), row.layer  # names whole
        for op in row.ops:
            assert any(op in line for line in lines), op
    assert str(clip_net_report).splitlines()[0].strip().startswith("bnnmlir per-layer report")


def test_report_uses_one_line_per_layer_when_wide(clip_net_report):
    lines = render(clip_net_report.table(), width=200)
    body = lines[lines.index(next(l for l in lines if l.startswith("─"))) + 1:]
    layers = [line.split()[0] for line in body if line and not line.startswith(" ")]
    assert layers[:len(clip_net_report.rows)] == [r.layer for r in clip_net_report.rows]


def test_report_of_small_model_fits(tmp_path: Path):
    report = bnnmlir.compile(binary_net(), (torch.randn(1, 3, 9, 9),), jit=False).report()
    assert_fits(report.table())


@pytest.mark.parametrize("n, text", [(0, "0"), (999, "999"), (1000, "1.00k"), (1769472, "1.77M"),
                                     (18874368, "18.9M"), (999_500, "1.00M"),
                                     (99_950_000, "100M"), (1_234_567_890, "1.23G")])
def test_si_count(n, text):
    assert si_count(n) == text


def host_results() -> list[HostResult]:
    results = []
    for layer in LAYERS:
        for threads in (1, 2):
            results.append(HostResult(layer.name, layer.describe(), threads, layer.binary_ops,
                                      0.000213, True, 1.0, 10, 0.001414, True, 0.000231, True))
    results.append(HostResult("c37", LAYERS[-1].describe(), 2, 10, float("nan"), False, 1.0, 1))
    return results


def test_bench_host_table_fits_80_columns():
    lines = assert_fits(bench.host_table(host_results(), "AMD EPYC 9R14 (znver4)"))
    assert any("WRONG" in line for line in lines)


def test_bench_mca_table_fits_80_columns():
    results = [McaResult(layer.name, layer.describe(), "uadalp+add.b", 1, 12, 64, 22.0)
               for layer in LAYERS[:4]]
    results += [McaResult(name, "peer", "uadalp", 1, 12, 64, 12.0) for name in PEERS]
    lines = assert_fits(bench.mca_table(results))
    assert any("1.00x" in line for line in lines)


def test_run_table_fits_80_columns():
    console = Console(width=80, record=True, highlight=False)
    assert run_mlir_file(str(ROOT / "bnnmlir/examples/binary_conv_block.mlir"), targets=["host"],
                         console=console)
    lines = console.export_text().splitlines()
    assert all(cell_len(line) <= 80 for line in lines), "\n".join(lines)
    assert any("bit-exact" in line and line.startswith("host") for line in lines)


def test_bench_published_table_fits_80_columns():
    from bnnmlir.bench.published import PublishedResult, published_table

    result = PublishedResult(threads=2, authors_s=0.0123, clip_s=0.0081, binary_layers=16,
                             agreement=1.0)
    assert_fits(published_table(result, "rocketlake, AVX-512 VPOPCNTDQ/BITALG"))


def test_bench_compile_table_fits_80_columns():
    from bnnmlir.bench.compile import CompileResult, compile_table

    steps = {"import": 1.62, "LLVM opt+codegen": 2.19, "llvm": 1.77, "cache hit": 0.0}
    results = [CompileResult("bireal_net18 1x3x224x224", target, 8.84, 0.05, steps,
                             "model cache", 281.0, 539.0, 538.0)
               for target in ("host", "aarch64-dotprod")]
    lines = assert_fits(compile_table(results))
    assert any("bireal_net18" in line and "539" in line and "258" in line and "538" in line for line in lines)
