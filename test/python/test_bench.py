"""Smoke tests of the benchmark code paths: tiny shapes, one timed call, no timing assertions."""

from __future__ import annotations

import json

import numpy as np
import pytest
from rich.console import Console

from bnnmlir.bench import command as bench
from bnnmlir.bench.host import SMOKE_TIMING, bench_layer, best_block_medians
from bnnmlir.bench.layers import LAYERS, ConvLayer, expected_output, random_data, select_layers
from bnnmlir.bench.mca import (
    PEERS,
    LoopBody,
    find_llvm_mca,
    innermost_popcount_loop,
    layer_model,
    layer_result,
    neoverse_n1_modeled,
    peer_results,
)

TINY = (
    ConvLayer("tiny3x3", 6, 5, 16, 8),
    ConvLayer("tiny_s2", 7, 7, 13, 9, stride=2),
    ConvLayer("tiny1x1", 4, 4, 24, 8, kernel=1, padding=0),
)

from conftest import requires_cross
from conftest import requires_llvm_mca as needs_mca


def rendered(table) -> str:
    console = Console(record=True, width=250, highlight=False)
    console.print(table)
    return console.export_text()


def test_layer_ops_and_output_shape():
    layer = ConvLayer("l", 56, 56, 64, 128, stride=2)
    assert layer.out_hw == (28, 28)
    assert layer.binary_ops == 2 * 28 * 28 * 128 * 3 * 3 * 64
    assert layer.interior().out_hw == (27, 27)
    data = random_data(ConvLayer("t", 5, 5, 10, 3))
    assert expected_output(ConvLayer("t", 5, 5, 10, 3), data).shape == (1, 5, 5, 3)


def test_select_layers():
    assert [layer.name for layer in select_layers(None)] == [layer.name for layer in LAYERS]
    assert [layer.name for layer in select_layers("c37, stage4")] == ["c37", "stage4"]
    assert 0 < len(select_layers(None, quick=True)) < len(LAYERS)
    with pytest.raises(ValueError, match="unknown layer"):
        select_layers("stage9")


def test_best_block_medians_counts_calls():
    calls = {"a": 0, "b": 0}

    def bump(name):
        calls[name] += 1

    medians, timed = best_block_medians(
        {"a": lambda: bump("a"), "b": lambda: bump("b")}, SMOKE_TIMING
    )
    assert set(medians) == {"a", "b"} and timed == 1
    assert calls == {"a": 1, "b": 1}


@pytest.mark.parametrize("layer", TINY, ids=lambda layer: layer.name)
def test_host_rows_are_checked_and_complete(layer):
    results = bench_layer(layer, [1, 2], SMOKE_TIMING, peers=True)
    assert [r.threads for r in results] == [1, 2]
    for r in results:
        assert r.bnnmlir_exact
        assert r.fp32_exact is True and r.int8_within_step is True
        assert r.bnnmlir_s > 0 and r.fp32_s > 0 and r.int8_s > 0
        assert r.gops == pytest.approx(layer.binary_ops / r.bnnmlir_s / 1e9)
        assert r.speedup_fp32 == pytest.approx(r.fp32_s / r.bnnmlir_s)
    text = rendered(bench.host_table(results, "cpu"))
    for column in ("layer", "shape", "thr", "bnnmlir ms", "GOPS", "torch fp32 ms",
                   "torch int8 ms", "vs fp32", "vs int8", "check"):
        assert column in text
    rows = [line for line in text.splitlines() if layer.name in line]
    assert len(rows) == 2 and all("exact" in row for row in rows)


def test_wrong_kernel_is_flagged_and_not_timed(monkeypatch):
    import bnnmlir.bench.host as host

    layer = TINY[0]
    real = host.expected_output
    monkeypatch.setattr(host, "expected_output", lambda l, d: real(l, d) + 1)
    (result,) = bench_layer(layer, [1], SMOKE_TIMING, peers=False)
    assert not result.bnnmlir_exact and np.isnan(result.bnnmlir_s)
    text = rendered(bench.host_table([result], "cpu"))
    assert "WRONG" in text


ASM = """\
f:
\tmov x1, #0
.LBB0_1:
\tldr q0, [x0]
.LBB0_2:
\teor v1.16b, v0.16b, v2.16b
\tcnt v1.16b, v1.16b
\tuadalp v3.8h, v1.16b
\tcnt v4.8b, v4.8b
\tadd v5.16b, v5.16b, v1.16b
\tsubs x2, x2, #1
\tb.ne .LBB0_2
\tcbnz x1, .LBB0_1
\tret
"""


def test_innermost_popcount_loop_parsing():
    loop = innermost_popcount_loop(ASM)
    assert loop is not None
    assert loop.instructions[0].startswith("eor") and loop.instructions[-1] == "b.ne .LBB0_2"
    assert loop.blocks == 1 and loop.cnt_bytes == 24
    assert loop.accumulate == "uadalp+add.b"
    assert innermost_popcount_loop("f:\n\tadd x0, x0, #1\n\tret\n") is None


@needs_mca
def test_mca_peers_and_generated_loop():
    peers = peer_results()
    assert [p.name for p in peers] == list(PEERS)
    for p in peers:
        assert p.cycles_per_iteration > 0 and p.bytes_per_iteration == 64
    generated = layer_result(ConvLayer("tiny512", 5, 5, 512, 4, padding=0))
    assert generated is not None and generated.bytes_per_iteration > 0
    assert "cnt" not in generated.accumulate
    text = rendered(bench.mca_table([generated, *peers]))
    for column in ("loop", "accumulate", "cyc/iter", "cyc/16 B", "ops/cyc", "vs uadalp"):
        assert column in text
    assert "1.00x" in text  # the uadalp peer against itself


@needs_mca
@requires_cross
def test_whole_layer_model_covers_the_layer_functions():
    """The whole-layer model reads the blocks of the entry point and of its layer functions (the
    kernel is one): a modelled layer takes at least its NEON bound and at most a few times it."""
    layer = ConvLayer("tiny512", 5, 5, 512, 8, padding=1)
    models = layer_model(layer)
    assert [m.cpu for m in models] == ["cortex-a72", "neoverse-n1"]
    for m in models:
        assert m.blocks > 5 and 0.2 < m.of_bound <= 1.0, m
    if neoverse_n1_modeled(find_llvm_mca()):  # llvm-19: a Neoverse N1 model of its own
        assert models[0].cycles != models[1].cycles


def test_loop_body_text_round_trip():
    body = LoopBody(("cnt v0.16b, v0.16b", "b.ne .L"), 1)
    assert body.text() == "\tcnt v0.16b, v0.16b\n\tb.ne .L\n"


def test_main_writes_json(tmp_path):
    out = tmp_path / "bench.json"
    console = Console(record=True, width=250)
    argv = ["--layers", "c37", "--repeats", "1", "--threads", "1", "--no-peers", "--no-compile",
            "--json", str(out)]
    if find_llvm_mca() is None:
        argv.append("--no-mca")
    assert bench.main(argv, console=console) == 0
    report = json.loads(out.read_text())
    (row,) = report["host"]["results"]
    assert row["layer"] == "c37" and row["bnnmlir_exact"] and row["threads"] == 1
    assert "2 * N*OH*OW*O*KH*KW*C" in report["ops_definition"]
    if "mca" in report:
        assert report["mca"]["results"][0]["name"].startswith("c37")


def test_compile_table_cold_and_cached(tmp_path):
    out = tmp_path / "bench.json"
    console = Console(record=True, width=250)
    assert bench.main(["--quick", "--no-host", "--no-mca", "--json", str(out)], console=console) == 0
    (row,) = json.loads(out.read_text())["compile"]
    assert row["model"].startswith("bnn_clip_net") and row["target"] == "host"
    assert row["cold_steps"]["cache hit"] == 0.0 and "import" in row["cold_steps"]
    assert any(step.startswith("LLVM opt") for step in row["cold_steps"])
    assert 0 < row["cached_s"] and 0 < row["cold_s"] and row["cached_via"] == "model cache"
    # memory of the fresh compiling process: PyTorch before, then the compile on top
    assert 100 < row["before_mb"] < row["peak_mb"] and row["helper_peak_mb"] > 0
    assert row["added_mb"] == row["peak_mb"] - row["before_mb"]
    text = console.export_text()
    for column in ("Compile time and memory", "cold s", "cached s", "peak MB", "added MB",
                   "bnn_clip_net"):
        assert column in text


def test_compile_bench_names_an_unknown_model():
    from bnnmlir.bench.compile import _make

    with pytest.raises(ValueError, match="unknown model 'resnet'"):
        _make("resnet")


def test_main_rejects_bad_arguments():
    console = Console(record=True)
    assert bench.main(["--layers", "nope", "--no-mca"], console=console) == 2
    assert bench.main(["--threads", "0"], console=console) == 2
    assert bench.main(["--compile-targets", "riscv"], console=console) == 2
    assert "unknown target 'riscv'" in console.export_text()


def test_published_row_prints_the_ratio():
    from bnnmlir.bench.command import build_parser
    from bnnmlir.bench.published import PublishedResult, published_table

    assert build_parser().parse_args(["--published"]).published
    assert not build_parser().parse_args([]).published
    result = PublishedResult(threads=1, authors_s=0.012, clip_s=0.008, binary_layers=16,
                             agreement=1.0)
    assert result.ratio == pytest.approx(1.5) and result.as_dict()["ratio"] == result.ratio
    console = Console(width=100, record=True)
    console.print(published_table(result, "cpu"))
    text = console.export_text()
    assert "1.50x" in text and "authors' form" in text and "BNN-Clip" in text
