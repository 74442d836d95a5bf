"""The model table of ``bnnmlir bench``: options, the PyTorch peer, the LCE peer's message when
it is not installed, and the chart (the timings themselves run only in ``bnnmlir bench``)."""

import pytest
import torch
from rich.console import Console

from bnnmlir.bench import command as bench
from bnnmlir.bench.models import (
    LceUnavailable,
    ModelResult,
    float_resnet18,
    lce_python,
    models_table,
    plot_results,
)
from bnnmlir.tables import render


def test_model_names():
    assert bench.model_names("all") == ["bireal_net18", "quicknet", "binary_alexnet"]
    assert bench.model_names("quicknet, bireal_net18") == ["quicknet", "bireal_net18"]
    assert bench.model_names(None) == []
    with pytest.raises(ValueError, match="unknown model resnet; known: bireal_net18"):
        bench.model_names("resnet")


def test_unknown_model_is_refused_before_any_work():
    console = Console(record=True)
    assert bench.main(["--models", "resnet", "--no-host", "--no-mca", "--no-compile"],
                      console=console) == 2
    assert "unknown model resnet" in console.export_text()


def test_float_resnet18_peer_is_resnet18_sized():
    model = float_resnet18()
    assert sum(p.numel() for p in model.parameters()) == 11_689_512  # ResNet-18's count
    assert model(torch.randn(1, 3, 64, 64)).shape == (1, 1000)


def test_lce_missing_says_how_to_install_it(tmp_path):
    with pytest.raises(LceUnavailable, match="not installed.*scripts/setup-lce.sh"):
        lce_python([tmp_path / "nowhere"])


def test_table_and_chart(tmp_path):
    rows = [ModelResult("bireal_net18", 1, 50.0, True, 10.0, 40.0, 20.0, 25.0),
            ModelResult("bireal_net18", 2, 50.0, True, 5.0, 20.0, None, None),
            ModelResult("quicknet", 1, 40.0, False, None)]
    assert rows[0].ratio(rows[0].lce_ms) == 2.5 and rows[1].ratio(None) is None
    assert rows[0].as_dict()["vs_fp32"] == 4.0
    text = render(models_table(rows, "test cpu"))
    for cell in ("bireal_net18", "4.00x", "2.50x", "WRONG"):
        assert cell in text
    png = plot_results(tmp_path / "chart.png", rows)
    assert png.read_bytes().startswith(b"\x89PNG")


def test_every_thread_count_is_timed_in_the_same_rounds(monkeypatch):
    """One row per thread count, from blocks that took turns (a small network stands in for the
    zoo's, no peers, one call per block)."""
    import bnnmlir.models
    from bnnmlir.bench import models
    from bnnmlir.bench.host import SMOKE_TIMING
    from bnnmlir.examples.models import bnn_clip_net

    timed = []

    def recording(calls, policy):
        timed.append(list(calls))
        return {key: 1e-3 * key[0] for key in calls}, 1

    monkeypatch.setattr(bnnmlir.models, "ZOO", {"small": lambda: bnn_clip_net(seed=0)})
    monkeypatch.setattr(models, "IMAGE", (1, 3, 32, 32))
    monkeypatch.setattr(models, "best_block_medians", recording)
    rows, notes = models.bench_models(["small"], [1, 2], SMOKE_TIMING, peers=False)
    assert timed == [[(1, "bnnmlir"), (2, "bnnmlir")]] and notes == []
    assert [(r.threads, r.exact, r.bnnmlir_ms) for r in rows] == [(1, True, 1.0), (2, True, 2.0)]
