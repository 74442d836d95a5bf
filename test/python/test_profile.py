"""The per-layer profile: a profiling build times every layer of the report, on the host and
under qemu, and computes exactly what the ordinary build computes."""

import numpy as np
import pytest
import torch
from conftest import requires_cross

import bnnmlir
from bnnmlir.bench.limits import machine_limit
from bnnmlir.examples.models import bnn_clip_net
from bnnmlir.profile import profile_rows
from bnnmlir.report import LayerReport, LayerRow


@pytest.fixture(scope="module")
def small_net():
    model = bnn_clip_net(width=8)
    return model, torch.randn(1, 3, 16, 16)


def check_profile(profile, compiled, model, x):
    assert [r.layer for r in profile.rows] == [r.layer for r in compiled.report().rows]
    assert all(r.ms >= 0 for r in profile.rows)
    assert profile.total_ms > 0
    # Each call's layer times add up to less than its total; their medians need not (medians do
    # not add): on a 32 us network under load, the sum of the medians came out 2% above the
    # median total. A layer counted twice would add far more than 10%.
    assert 0.5 * profile.total_ms <= profile.layers_ms <= profile.total_ms * 1.1
    assert torch.equal(profile.outputs, model(x))
    text = str(profile)
    assert "1.conv" in text and "total" in text


def test_host_profile_times_every_layer_and_stays_bit_exact(small_net):
    model, x = small_net
    compiled = bnnmlir.compile(model, (x,), threads=1)
    profile = compiled.profile(x, repeat=3)
    check_profile(profile, compiled, model, x)
    assert not profile.emulated and profile.repeat == 3
    binary = [r for r in profile.rows if r.kind == "binary" and r.ms > 0]
    assert binary and all(r.ops_per_second > 0 for r in binary)
    if machine_limit("binary") is not None:
        assert all(r.limit_fraction is not None and r.limit_fraction > 0 for r in binary)
    assert all(r.limit_fraction is None for r in profile.rows if r.kind == "float")
    # the profiling build is compiled once and kept
    assert compiled._profiling_program() is compiled._profiling_program()
    assert profile.as_dict()["rows"][0]["layer"] == profile.rows[0].layer


@requires_cross
def test_aarch64_profile_under_qemu_is_marked_emulated(small_net):
    model, x = small_net
    compiled = bnnmlir.compile(model, (x,), target="aarch64", threads=1)
    profile = compiled.profile(x, repeat=2)
    check_profile(profile, compiled, model, x)
    assert profile.emulated and "qemu" in str(profile)
    assert all(r.limit_fraction is None for r in profile.rows)


def test_profile_rows_follow_the_report():
    report = LayerReport([LayerRow("a", "binary", macs=1000), LayerRow("b", "float"),
                          LayerRow("c", "int8", macs=10)], "host")
    ns = np.array([[2000, 1000, 500, 4000], [1000, 1000, 700, 3000], [3000, 1000, 600, 5000]])
    rows, total = profile_rows(report, ["a", "b", "extra"], ns, {"binary": 1e9})
    assert total == 4000 / 1e6
    assert [r.layer for r in rows] == ["a", "b", "c", "extra"]
    assert rows[0].ms == 2000 / 1e6 and rows[0].share == 0.5
    assert rows[0].ops_per_second == 2 * 1000 / 2e-6
    assert rows[0].limit_fraction == rows[0].ops_per_second / 1e9
    assert rows[2].ms == 0 and rows[2].ops_per_second is None  # no code of its own
    assert rows[3].kind == "-"


def test_profile_arguments_are_checked(small_net):
    model, x = small_net
    compiled = bnnmlir.compile(model, (x,), threads=1, jit=False)
    with pytest.raises(ValueError, match="repeat must be at least 1"):
        compiled.profile(x, repeat=0)
    with pytest.raises(ValueError, match="shape"):
        compiled.profile(torch.randn(1, 3, 8, 8))


def test_machine_limits_are_positive_or_absent():
    for kind in ("binary", "int8"):
        limit = machine_limit(kind)
        assert limit is None or limit > 1e9
    assert machine_limit("float") is None
