"""``bnnmlir.convert``: published renditions rewritten into bnnmlir.nn layers, compiled exactly."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
from conftest import requires_aarch64
from published_models import (
    BinActive,
    BiRealNet18,
    ClampSTE,
    LearnableBias,
    QuadraticSTE,
    ReActNetA,
    RPReLU,
    ScaledBinaryConv,
    TanhSTE,
    XnorNet,
    randomize_batch_norms,
)

import bnnmlir
import bnnmlir.nn as bnn


def _block(act, cin=5, cout=7, **conv):
    torch.manual_seed(1)
    return randomize_batch_norms(nn.Sequential(act, ScaledBinaryConv(cin, cout, **conv),
                                               nn.BatchNorm2d(cout)))


def _binary(compiled) -> int:
    return sum(r.op == "bnn.bconv2d" for r in compiled.imported.layers)


def _eval(model, x):
    with torch.no_grad():
        return model.eval()(x)


ACTS = {"bireal": QuadraticSTE, "tanh": TanhSTE, "clamp": ClampSTE, "xnor": BinActive}


@pytest.mark.parametrize("act", ACTS, ids=list(ACTS))
@pytest.mark.parametrize("shape,conv", [((2, 5, 7, 9), {}),
                                        ((1, 5, 5, 4), {"stride": 2, "padding": 0}),
                                        ((3, 5, 1, 1), {"k": 1, "padding": 0})])
def test_idiom_alone_converts_and_compiles_exactly(act, shape, conv):
    model = _block(ACTS[act](), **conv)
    x = torch.randn(shape)
    converted, report = bnnmlir.convert(model, (x,))
    assert isinstance(converted[0], nn.Identity)
    assert isinstance(converted[1][0], bnn.BinaryConv2d)
    assert {c.path for c in report.converted} == {"0", "1"} and not report.kept
    [layer] = [c for c in report.converted if c.path == "1"]
    with torch.no_grad():
        diff = (converted[1](x) - model[1](model[0](x))).abs().max()
    assert float(diff) <= layer.bound
    compiled = bnnmlir.compile(converted, (x,))
    assert not compiled.warnings and not compiled.imported.approximations
    assert _binary(compiled) == 1
    assert torch.equal(compiled(x), _eval(converted, x))


def test_user_model_is_not_touched():
    model = _block(QuadraticSTE())
    before = {k: v.clone() for k, v in model.state_dict().items()}
    converted, _ = bnnmlir.nn.from_torch(model, torch.randn(1, 5, 4, 4))
    assert isinstance(model[0], QuadraticSTE) and isinstance(model[1], ScaledBinaryConv)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert converted is not model


def test_conversion_exports_under_the_export_lock(monkeypatch):
    """No forked import of another thread may start while the converter is inside
    ``torch.export`` (the child could inherit one of its locks taken)."""
    from bnnmlir.forked import EXPORT_LOCK

    export, held = torch.export.export, []

    def watched(*args, **kwargs):
        held.append(EXPORT_LOCK._is_owned())  # the RLock's owner check (CPython)
        return export(*args, **kwargs)

    monkeypatch.setattr(torch.export, "export", watched)
    bnnmlir.nn.from_torch(_block(QuadraticSTE()), torch.randn(1, 5, 4, 4))
    assert held == [True]


def test_learnable_threshold_and_rprelu_convert():
    torch.manual_seed(4)
    model = randomize_batch_norms(nn.Sequential(
        LearnableBias(6), TanhSTE(), ScaledBinaryConv(6, 6), nn.BatchNorm2d(6), RPReLU(6)))
    x = torch.randn(2, 6, 5, 5)
    converted, report = bnnmlir.convert(model, (x,))
    assert [c.path for c in report.converted] == ["2", "1"]
    compiled = bnnmlir.compile(converted, (x,))
    assert not compiled.warnings and _binary(compiled) == 1
    assert torch.equal(compiled(x), _eval(converted, x))


def _agreement(a, b, shape, batches=4) -> float:
    torch.manual_seed(11)
    same = rows = 0
    for _ in range(batches):
        x = torch.randn(shape)
        same += int((_eval(a, x).argmax(1) == _eval(b, x).argmax(1)).sum())
        rows += shape[0]
    return same / rows


@pytest.mark.parametrize("name", ["bireal", "reactnet", "xnor"])
def test_published_rendition_converts_and_compiles_exactly(name):
    torch.manual_seed(5)
    model, shape, binary = {
        "bireal": (lambda: BiRealNet18(width=8, classes=10), (250, 3, 32, 32), 16),
        "reactnet": (ReActNetA, (250, 3, 16, 16), 8),
        "xnor": (XnorNet, (250, 3, 12, 12), 2),
    }[name]
    model = randomize_batch_norms(model())
    x = torch.randn(2, *shape[1:])
    converted, report = bnnmlir.convert(model, (x,))
    assert sum("BinaryConv2d" in c.into for c in report.converted) == binary
    assert all(k.reason.startswith("float") for k in report.kept)  # stems, shortcuts, heads
    assert _agreement(model, converted, shape) >= 0.999
    compiled = bnnmlir.compile(converted, (x,))
    assert not compiled.warnings and not compiled.imported.approximations
    assert _binary(compiled) == binary
    # Float stems and shortcuts sum in their own order: the float tolerance of the contract.
    torch.testing.assert_close(compiled(x), _eval(converted, x), rtol=1e-5, atol=1e-4)


def test_one_fine_tuning_step_runs():
    """The converted model trains: gradients reach the latent binary weights through the
    straight-through estimator of bnnmlir.nn; the BNN-Clip recipe adds Clip8 after the BN."""
    torch.manual_seed(2)
    model = randomize_batch_norms(BiRealNet18(width=8, classes=10))
    converted, _ = bnnmlir.convert(model, torch.randn(1, 3, 32, 32))
    converted.layers[0].bn = nn.Sequential(converted.layers[0].bn, bnn.Clip8())
    converted.train()
    optimizer = torch.optim.Adam(converted.parameters(), lr=1e-3)
    loss = nn.functional.cross_entropy(converted(torch.randn(4, 3, 32, 32)),
                                       torch.tensor([0, 1, 2, 3]))
    loss.backward()
    weight = converted.layers[0].conv[0].weight
    assert weight.grad is not None and bool(weight.grad.abs().sum() > 0)
    optimizer.step()
    bnn.clamp_latent_weights_(converted)
    assert torch.isfinite(_eval(converted, torch.randn(1, 3, 32, 32))).all()


def test_unrecognized_layers_are_reported_with_path_and_reason():
    class Odd(nn.Module):
        def __init__(self):
            super().__init__()
            self.act, self.conv = QuadraticSTE(), ScaledBinaryConv(4, 4)
            self.real = nn.Conv2d(4, 4, 3, padding=1)
            self.gelu = nn.GELU()

        def forward(self, x):
            b = self.act(x)
            return self.gelu(self.conv(b) + self.real(b))  # the estimator also feeds a float conv

    torch.manual_seed(3)
    model, x = Odd().eval(), torch.randn(1, 4, 6, 6)
    converted, report = bnnmlir.convert(model, (x,))
    kept = {k.path: k.reason for k in report.kept}
    assert "not +-alpha" in kept["real"]
    assert "aten.gelu" in kept["gelu"]
    assert "also used by layers that stay float" in kept["act"]
    assert [c.path for c in report.converted] == ["conv"]
    assert "act: not converted" in str(report)
    torch.testing.assert_close(_eval(converted, x), _eval(model, x), rtol=0, atol=1e-4)


def test_a_scaled_conv_written_inline_is_reported():
    class Inline(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.sign(torch.randn(3, 2, 3, 3)) * 0.5)

        def forward(self, x):
            return nn.functional.conv2d(torch.sign(x), self.w, padding=1)

    converted, report = bnnmlir.convert(Inline(), (torch.randn(1, 2, 5, 5),))
    assert not report.converted
    assert "own forward" in report.kept[0].reason


@requires_aarch64
def test_converted_block_under_qemu():
    model = _block(QuadraticSTE(), cin=9, cout=5, stride=2)
    x = torch.randn(2, 9, 7, 5)
    converted, _ = bnnmlir.convert(model, (x,))
    arm = bnnmlir.compile(converted, (x,), target="aarch64")
    assert not arm.warnings
    assert torch.equal(arm(x), _eval(converted, x))
