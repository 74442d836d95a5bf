"""Tests of the PyTorch importer: emitted IR, locations, warnings/errors, and semantics.

Semantics are checked by running the imported IR with the numpy reference evaluator
(:func:`bnnmlir.reference.evaluate`) against ``model.eval()(x)``: bit-exact for integer or
binary outputs, rtol 1e-5 / atol 1e-4 for float heads.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch_models import randomize_bn
from xdsl.dialects.builtin import FileLineColLoc, NameLoc

from bnnmlir.errors import CompileError
from bnnmlir.frontend import UnsupportedOperationError, import_model
from bnnmlir.nn import BinaryConv2d, BinaryLinear, Clip8, QuantizeInput, binarize
from bnnmlir.reference import evaluate

# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------


def ops_of(imported) -> list:
    fn = next(iter(imported.module.ops))
    return list(fn.body.block.ops)


def names(imported) -> list[str]:
    """Op names of the function body, without constants, weight binarizations and the return."""
    return [
        op.name
        for op in ops_of(imported)
        if op.name not in ("arith.constant", "func.return")
        and not (op.name == "bnn.binarize" and op.operands[0].owner.name == "arith.constant")
    ]


def run_both(model, x):
    model.eval()
    imported = import_model(model, (x,))
    imported.module.verify()
    got = evaluate(imported.module, [x.numpy()])
    with torch.no_grad():
        want = model(x)
    want = want if isinstance(want, tuple) else (want,)
    return imported, got, [w.numpy() for w in want]


def assert_exact(got, want):
    assert got.dtype == np.float32 and got.shape == want.shape
    assert torch.equal(torch.from_numpy(got), torch.from_numpy(want))


class SignSTE(torch.autograd.Function):
    """A typical user STE: forward ``where(x >= 0, 1, -1)``, backward hard-tanh gradient."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.where(x >= 0, torch.ones_like(x), -torch.ones_like(x))

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * (x.abs() <= 1).to(grad.dtype)


class TorchSignSTE(torch.autograd.Function):
    """An STE whose forward is ``torch.sign`` (0 -> 0)."""

    @staticmethod
    def forward(ctx, x):
        return torch.sign(x)

    @staticmethod
    def backward(ctx, grad):
        return grad


# ---------------------------------------------------------------------------------------------
# bnnmlir.nn models
# ---------------------------------------------------------------------------------------------


class ResBlock(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.conv1 = BinaryConv2d(c, c, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(c)
        self.clip1 = Clip8()
        self.conv2 = BinaryConv2d(c, c, 3, padding=1, pad_value=-1.0)
        self.clip2 = Clip8()
        self.clip3 = Clip8()

    def forward(self, x):
        y = self.clip1(self.bn1(self.conv1(x)))
        return self.clip3(self.clip2(self.conv2(y)) + x)


class BnnNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 12, 3, padding=1)
        self.bn0 = nn.BatchNorm2d(12)
        self.clip0 = Clip8()
        self.layer1 = nn.Sequential(ResBlock(12), ResBlock(12))
        self.pool = nn.MaxPool2d(2)
        self.down = BinaryConv2d(12, 20, 3, stride=2, padding=(1, 0, 1, 0), pad_value=1.0)
        self.bn = nn.BatchNorm2d(20)
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(20, 5)

    def forward(self, x):
        x = self.clip0(self.bn0(self.stem(x)) * 16)
        x = self.pool(self.layer1(x))
        x = self.bn(self.down(x))
        return self.head(self.gap(x).flatten(1))


def test_bnn_layers_model_ir_and_semantics():
    torch.manual_seed(0)
    model = BnnNet()
    for i, m in enumerate(model.modules()):
        if isinstance(m, nn.BatchNorm2d):
            randomize_bn(m, i)
    x = torch.randn(2, 3, 10, 10)
    imported, got, want = run_both(model, x)
    ops = names(imported)
    assert ops.count("bnn.bconv2d") == 5 and ops.count("bnn.binarize") == 5
    assert ops[0] == "bnn.transpose" and "bnn.dense" in ops and "bnn.global_avg_pool" in ops
    assert imported.warnings == []
    np.testing.assert_allclose(got[0], want[0], rtol=1e-5, atol=1e-4)
    # residual add of two int8 streams is an integer add (i16) followed by clip8
    adds = [op for op in ops_of(imported) if op.name == "bnn.add"]
    assert len(adds) == 2
    assert all(str(a.result.type.get_element_type()) == "i16" for a in adds)
    assert all(next(iter(a.result.uses)).operation.name == "bnn.clip8" for a in adds)
    # the i8 stream stays i8 through the max pool
    pool = next(op for op in ops_of(imported) if op.name == "bnn.pool2d")
    assert str(pool.result.type.get_element_type()) == "i8"
    # bconv2d attributes of the explicitly padded stride-2 layer
    down = [op for op in ops_of(imported) if op.name == "bnn.bconv2d"][-1]
    assert list(down.padding.get_values()) == [1, 0, 1, 0]
    assert down.pad_value.value.data == 1
    assert list(down.strides.get_values()) == [2, 2]
    assert down.channels == 12
    # specs and layers
    assert imported.input_specs[0].shape == (2, 3, 10, 10)
    assert imported.output_specs[0].shape == (2, 5)
    binary = [layer for layer in imported.layers if layer.op == "bnn.bconv2d"]
    assert [layer.module_path for layer in binary] == [
        "layer1.0.conv1", "layer1.0.conv2", "layer1.1.conv1", "layer1.1.conv2", "down"
    ]
    assert binary[0].macs == 2 * 10 * 10 * 12 * 9 * 12 and binary[0].weight_bytes == 12 * 9 * 2
    assert binary[0].kind == "binary"


def test_locations_name_layers_and_source_lines():
    torch.manual_seed(1)
    model = BnnNet()
    imported = import_model(model, (torch.randn(1, 3, 8, 8),))
    bconvs = [op for op in ops_of(imported) if op.name == "bnn.bconv2d"]
    loc = bconvs[0].location
    assert isinstance(loc, NameLoc) and loc.desc.data == "layer1.0.conv1"
    assert isinstance(loc.location, FileLineColLoc)
    # the line of the model's source that calls the layer, not bnnmlir's layer code
    assert loc.location.filename.data == __file__
    assert loc.location.line.data == ResBlock.forward.__code__.co_firstlineno + 1
    dense = next(op for op in ops_of(imported) if op.name == "bnn.dense")
    assert dense.location.desc.data == "head"
    # modules of torch.nn point at the model's own source line, not into PyTorch
    assert dense.location.location.filename.data == __file__
    for op in ops_of(imported):
        if op.name not in ("func.return",):
            assert isinstance(op.location, NameLoc), op.name


def test_integer_output_is_exact_and_cast():
    torch.manual_seed(2)
    model = nn.Sequential(BinaryConv2d(5, 7, 3, padding=1), Clip8(), nn.MaxPool2d(2),
                          BinaryConv2d(7, 9, 2, bias=False))
    x = torch.randn(3, 5, 8, 8)
    imported, got, want = run_both(model, x)
    assert names(imported)[-2:] == ["bnn.transpose", "bnn.cast"]  # back to NCHW, then f32
    assert_exact(got[0], want[0])


def test_binary_linear_after_flatten_permutes_weight_columns():
    torch.manual_seed(3)
    model = nn.Sequential(BinaryConv2d(3, 6, 3, padding=1), Clip8(), nn.Flatten(),
                          BinaryLinear(6 * 4 * 5, 11), nn.BatchNorm1d(11), Clip8(),
                          nn.Linear(11, 4))
    randomize_bn(model[4], 0, spread=5)
    x = torch.randn(2, 3, 4, 5)
    imported, got, want = run_both(model, x)
    ops = names(imported)
    assert ops.count("bnn.bconv2d") == 2 and "bnn.transpose" not in ops[1:]
    lin = [op for op in ops_of(imported) if op.name == "bnn.bconv2d"][1]
    assert lin.kernel_hw == (1, 1) and lin.channels == 120
    np.testing.assert_allclose(got[0], want[0], rtol=1e-5, atol=1e-4)


def test_float_linear_after_flatten_and_binary_output():
    torch.manual_seed(4)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = BinaryConv2d(4, 3, 3)
            self.fc = nn.Linear(3 * 3 * 3, 6)

        def forward(self, x):
            y = self.conv(x)
            return self.fc(torch.flatten(y, 1)), torch.where(y >= 0, 1.0, -1.0)

    x = torch.randn(2, 4, 5, 5)
    _, got, want = run_both(Net(), x)
    np.testing.assert_allclose(got[0], want[0], rtol=1e-5, atol=1e-4)
    assert_exact(got[1], want[1])  # a binary model output, materialized as +-1


def test_binary_output_of_float_source_materialized():
    class Net(nn.Module):
        def forward(self, x):
            return SignSTE.apply(x) * 1.0

    x = torch.randn(2, 3, 4, 4)
    x[0, 0, 0, :2] = 0.0
    x[0, 1, 1, :2] = -0.0
    _, got, want = run_both(Net(), x)
    assert_exact(got[0], want[0])


# ---------------------------------------------------------------------------------------------
# Plain PyTorch models
# ---------------------------------------------------------------------------------------------


class PlainNet(nn.Module):
    """Binarization by an STE autograd.Function and by torch.where, weights binarized alike."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.bn0 = nn.BatchNorm2d(8)
        self.w1 = nn.Parameter(torch.randn(8, 8, 3, 3))
        self.bn1 = nn.BatchNorm2d(8)
        self.w2 = nn.Parameter(torch.randn(8, 16, 1, 1))
        self.pool = nn.AvgPool2d(2)
        self.fc = nn.Linear(8, 3)
        self.act = nn.PReLU(3)

    def forward(self, x):
        x = self.bn0(self.stem(x))
        a = F.conv2d(SignSTE.apply(x), SignSTE.apply(self.w1), padding=1)
        a = torch.ops.bnnmlir.clip8(self.bn1(a))
        b = F.conv2d(F.pad(torch.where(a >= 0, 1.0, -1.0), (1, 1, 1, 1), value=-1.0),
                     torch.where(self.w1 >= 0, 1.0, -1.0), stride=2)
        y = torch.ops.bnnmlir.clip8(torch.cat([a[:, :, ::2, ::2] * 0 + b, b], 1))
        y = F.conv2d(torch.where(y >= 0, 1.0, -1.0), torch.sign(self.w2) + (self.w2 == 0))
        y = self.pool(F.relu(y)).mean((2, 3))
        return self.act(self.fc(y))


def test_slicing_is_rejected_with_the_op_name():
    with pytest.raises(UnsupportedOperationError) as e:
        import_model(PlainNet(), (torch.randn(1, 3, 8, 8),))
    assert "aten.slice" in str(e.value)


class PlainNet2(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.bn0 = nn.BatchNorm2d(8)
        self.w1 = nn.Parameter(torch.randn(8, 8, 3, 3))
        self.bn1 = nn.BatchNorm2d(8)
        self.w2 = nn.Parameter(torch.randn(8, 16, 1, 1))
        self.w3 = nn.Parameter(torch.randn(10, 8))
        self.pool = nn.AvgPool2d(2)
        self.fc = nn.Linear(10, 3)
        self.act = nn.PReLU(3)

    def forward(self, x):
        x = self.bn0(self.stem(x))
        a = F.conv2d(SignSTE.apply(x), SignSTE.apply(self.w1), padding=1, stride=2)
        a = torch.ops.bnnmlir.clip8(self.bn1(a))
        b = F.conv2d(F.pad(torch.where(a >= 0, 1.0, -1.0), (1, 1, 1, 1), value=-1.0),
                     torch.where(self.w1 >= 0, 1.0, -1.0))
        y = torch.ops.bnnmlir.clip8(torch.cat([a, b], 1))
        y = F.conv2d(torch.where(y >= 0, 1.0, -1.0), torch.where(self.w2 < 0, -1.0, 1.0))
        y = F.hardtanh(self.pool(F.relu(y)), -3.0, 3.0).mean((2, 3))
        y = F.linear(TorchSignSTE.apply(y + 0.5), torch.sign(self.w3))
        return self.act(self.fc(y))


def test_plain_pytorch_model_ir_and_semantics():
    torch.manual_seed(5)
    model = PlainNet2()
    randomize_bn(model.bn0, 1)
    randomize_bn(model.bn1, 2)
    with torch.no_grad():
        model.act.weight.copy_(torch.tensor([0.25, -0.5, 2.0]))
    x = torch.randn(2, 3, 8, 8)
    imported, got, want = run_both(model, x)
    ops = names(imported)
    # three binary convolutions, and the linear layer on a ternary input twice
    assert ops.count("bnn.bconv2d") == 5, ops
    assert "bnn.concat" in ops and "bnn.activation" in ops and "bnn.batch_norm" in ops
    bconvs = [op for op in ops_of(imported) if op.name == "bnn.bconv2d"]
    assert bconvs[1].pad_value.value.data == -1 and list(bconvs[1].padding.get_values()) == [1] * 4
    assert bconvs[0].pad_value.value.data == 0 and list(bconvs[0].strides.get_values()) == [2, 2]
    # torch.sign(avg + 0.5) may be 0 (the average of integers is a multiple of 1/4): warned
    assert len(imported.warnings) == 1 and "torch.sign" in imported.warnings[0]
    np.testing.assert_allclose(got[0], want[0], rtol=1e-5, atol=1e-4)


# ---------------------------------------------------------------------------------------------
# torch.sign: zero reachable or not
# ---------------------------------------------------------------------------------------------


class SignChain(nn.Module):
    """``torch.sign`` before two binary convolutions (and a BatchNorm, optionally).

    ``first`` binarizes the model input: ``torch.sign`` (zeros possible) or ``bnnmlir.nn.binarize``.
    """

    def __init__(self, cin: int, k: int, padding: int, bn: bool = False, first=torch.sign):
        super().__init__()
        self.first = first
        self.w1 = nn.Parameter(torch.randn(6, cin, k, k))
        self.w2 = nn.Parameter(torch.randn(5, 6, 3, 3))
        self.bn = nn.BatchNorm2d(6) if bn else None
        self.padding = padding

    def forward(self, x):
        y = F.conv2d(self.first(x), torch.sign(self.w1), padding=self.padding)
        if self.bn is not None:
            y = self.bn(y)
        return F.conv2d(torch.sign(y), torch.sign(self.w2), padding=1)


def sign_inputs(shape, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(-1, 2, shape, generator=g).float()  # zeros included


def test_torch_sign_with_reachable_zero_is_exact():
    torch.manual_seed(6)
    model = SignChain(4, 3, padding=1)  # K = 36 (even) and zero padding: 0 is reachable
    x = sign_inputs((2, 4, 6, 6), 0)
    imported, got, want = run_both(model, x)
    # sign(x) of the float input and sign(y) of the even sums are both ternary: 2 bconvs each
    assert names(imported).count("bnn.bconv2d") == 4
    assert len(imported.warnings) == 2 and all("torch.sign" in w for w in imported.warnings)
    assert_exact(got[0], want[0])


def test_torch_sign_proven_nonzero_by_odd_fan_in():
    torch.manual_seed(7)
    # K = 27, no padding, binary input: every sum is odd, so torch.sign never sees 0
    model = SignChain(3, 3, padding=0, first=binarize)
    x = torch.randn(2, 3, 7, 7)
    x[:, :, 1, 1] = 0.0
    imported, got, want = run_both(model, x)
    assert names(imported).count("bnn.bconv2d") == 2
    assert imported.warnings == []
    assert_exact(got[0], want[0])


@pytest.mark.parametrize("mean_offset, ternary", [(0.5, False), (0.0, True)])
def test_torch_sign_of_batch_norm_uses_the_folding_proof(mean_offset, ternary):
    torch.manual_seed(8)
    model = SignChain(4, 3, padding=1, bn=True)
    with torch.no_grad():
        # means whose products with the BatchNorm scale are exact: the float32 result of
        # bnn.batch_norm then agrees with PyTorch's (fused or not) on every sign
        model.bn.running_mean.copy_(torch.tensor([-4.0, -1, 0, 1, 2, 4]) + mean_offset)
        model.bn.running_var.fill_(1.0)
        model.bn.weight.copy_(torch.tensor([1.0, -2, 0.5, 1, 3, -1]))
        model.bn.bias.zero_()
    x = torch.randn(2, 4, 6, 6)
    x[x.abs() < 0.3] = 0.0
    imported, got, want = run_both(model, x)
    assert names(imported).count("bnn.bconv2d") == (4 if ternary else 3)
    assert any("is 0 for an integer input" in w for w in imported.warnings) == ternary
    assert_exact(got[0], want[0])


# ---------------------------------------------------------------------------------------------
# Binary convolution configurations (property test)
# ---------------------------------------------------------------------------------------------


@settings(max_examples=15, deadline=None)
@given(
    cin=st.integers(1, 19),
    cout=st.integers(1, 9),
    k=st.integers(1, 3),
    stride=st.integers(1, 2),
    pad=st.integers(0, 2),
    pad_value=st.sampled_from([-1.0, 0.0, 1.0]),
    explicit=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_binary_conv_configurations_exact(cin, cout, k, stride, pad, pad_value, explicit, seed):
    torch.manual_seed(seed)
    padding = (pad, pad + 1 if explicit else pad, pad, pad) if explicit else pad
    layer = BinaryConv2d(cin, cout, k, stride=stride, padding=padding,
                         pad_value=pad_value if explicit or pad else 0.0)
    x = torch.randn(2, cin, 7, 6)
    x[:, :, 0, 0] = 0.0
    imported, got, want = run_both(nn.Sequential(layer), x)
    bconv = next(op for op in ops_of(imported) if op.name == "bnn.bconv2d")
    assert list(bconv.padding.get_values()) == list(layer.padding)
    if any(layer.padding):
        assert bconv.pad_value.value.data == layer.pad_value_int
    assert_exact(got[0], want[0])


def test_binary_conv_with_bias_is_float():
    torch.manual_seed(9)
    model = nn.Sequential(BinaryConv2d(5, 4, 3, padding=1, bias=True))
    imported, got, want = run_both(model, torch.randn(1, 5, 5, 5))
    assert "bnn.affine" in names(imported)
    np.testing.assert_allclose(got[0], want[0], rtol=1e-5, atol=1e-4)


# ---------------------------------------------------------------------------------------------
# QuantizeInput
# ---------------------------------------------------------------------------------------------


def test_quantize_input_power_of_two_scale_is_exact():
    model = nn.Sequential(QuantizeInput(1 / 64), BinaryConv2d(3, 4, 3))
    x = torch.randn(2, 3, 6, 6)
    x[0, 0, 0, 0] = 0.5 / 64  # a tie: rounds to even
    imported, got, want = run_both(model, x)
    assert names(imported)[:4] == ["bnn.transpose", "bnn.affine", "bnn.clip8", "bnn.binarize"]
    assert_exact(got[0], want[0])


@pytest.mark.parametrize("scale", [1 / 127, 0.0123, 3.3])
def test_quantize_input_general_scale_is_an_exact_division(scale):
    """``x / scale`` is a float32 division (not ``x * (1/scale)``): the division form of
    ``bnn.affine``; inputs on both sides of every rounding tie of ``x / scale``."""
    torch.manual_seed(3)
    model = nn.Sequential(QuantizeInput(scale), BinaryConv2d(3, 4, 3))
    x = (torch.randn(2, 3, 6, 6) * 60 * scale).float()
    k = torch.arange(-20, 20, dtype=torch.float32) + 0.5
    ties = (k * torch.tensor(scale, dtype=torch.float32))
    flat = x.view(-1)
    flat[: ties.numel()] = ties
    flat[ties.numel() : 2 * ties.numel()] = torch.nextafter(ties, torch.full_like(ties, 1e9))
    imported, got, want = run_both(model, x)
    assert names(imported)[:4] == ["bnn.transpose", "bnn.affine", "bnn.clip8", "bnn.binarize"]
    affine = next(op for op in ops_of(imported) if op.name == "bnn.affine")
    assert affine.divides and list(affine.divisor.get_values()) == [np.float32(scale)] * 3
    assert_exact(got[0], want[0])
    # the multiplication by the reciprocal is not what PyTorch computes
    xs = x.numpy()
    assert not np.array_equal(xs / np.float32(scale), xs * np.float32(1 / np.float32(scale)))


def test_division_keeps_negative_zero():
    class Net(nn.Module):
        def forward(self, x):
            return (x / 3.0) * 5.0

    x = torch.tensor([[-0.0, 0.0, 1.0, -7.0]])
    imported, got, want = run_both(Net(), x)
    assert "bnn.affine" in names(imported)
    assert np.array_equal(np.signbit(got[0]), np.signbit(want[0]))
    assert_exact(got[0], want[0])


# ---------------------------------------------------------------------------------------------
# Warnings and errors
# ---------------------------------------------------------------------------------------------


def test_unsupported_op_names_op_module_and_line():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(nn.Conv2d(3, 4, 1), nn.Tanh())

        def forward(self, x):
            return self.body(x)

    with pytest.raises(UnsupportedOperationError) as e:
        import_model(Net(), (torch.randn(1, 3, 4, 4),))
    msg = str(e.value)
    assert "aten.tanh" in msg and "module 'body.1'" in msg
    assert e.value.module_path == "body.1"
    assert isinstance(e.value, CompileError)


def test_unsupported_functional_op_reports_source_line():
    class Net(nn.Module):
        def forward(self, x):
            return torch.sin(x)

    with pytest.raises(UnsupportedOperationError) as e:
        import_model(Net(), (torch.randn(1, 3),))
    assert "aten.sin" in str(e.value) and f"{__file__}:" in str(e.value)


def test_grouped_binary_conv_warns_and_fails():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(4, 4, 3, groups=2, bias=False)

        def forward(self, x):
            return F.conv2d(SignSTE.apply(x), SignSTE.apply(self.conv.weight), groups=2)

    with pytest.raises(UnsupportedOperationError) as e:
        import_model(Net(), (torch.randn(1, 4, 5, 5),))
    assert "groups=2" in str(e.value)


def test_binary_input_with_float_weights_warns_and_stays_exact():
    torch.manual_seed(10)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(4, 3, 3, bias=False)

        def forward(self, x):
            return self.conv(SignSTE.apply(x))

    x = torch.randn(2, 4, 5, 5)
    imported, got, want = run_both(Net(), x)
    assert len(imported.warnings) == 1
    assert "conv" in imported.warnings[0] and "not all +-1" in imported.warnings[0]
    assert "bnn.conv2d" in names(imported)
    np.testing.assert_allclose(got[0], want[0], rtol=1e-5, atol=1e-4)


def test_pm1_weights_with_float_input_warns():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.randn(3, 4, 3, 3))

        def forward(self, x):
            return F.conv2d(x, SignSTE.apply(self.w))

    imported = import_model(Net(), (torch.randn(1, 4, 5, 5),))
    assert len(imported.warnings) == 1 and "not binary" in imported.warnings[0]


def test_non_global_adaptive_pool_is_an_error():
    model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.AdaptiveAvgPool2d(2))
    with pytest.raises(UnsupportedOperationError) as e:
        import_model(model, (torch.randn(1, 3, 6, 6),))
    assert "adaptive_avg_pool2d" in str(e.value) and "global" in str(e.value)


def test_where_with_gt_is_rejected():
    class Net(nn.Module):
        def forward(self, x):
            return torch.where(x > 0, 1.0, -1.0)

    with pytest.raises(UnsupportedOperationError) as e:
        import_model(Net(), (torch.randn(1, 3, 4, 4),))
    assert "aten.where" in str(e.value) and "x >= 0" in str(e.value)


# ---------------------------------------------------------------------------------------------
# End to end
# ---------------------------------------------------------------------------------------------


def test_compile_imported_model_end_to_end():
    """Imported IR through the whole pipeline on the host, against PyTorch, bit for bit."""
    from bnnmlir.compiler import compile_module

    torch.manual_seed(11)
    model = nn.Sequential(BinaryConv2d(5, 7, 3, padding=1), Clip8(), nn.MaxPool2d(2),
                          BinaryConv2d(7, 9, 3, padding=1, pad_value=-1.0), Clip8())
    x = torch.randn(2, 5, 8, 8)
    imported = import_model(model, (x,))
    program = compile_module(imported.module, target="host", threads=1)
    (got,) = program(x.numpy())
    with torch.no_grad():
        assert_exact(got, model(x).numpy())


class _SupportOpsNet(nn.Module):
    """Every spelling the importer turns into a support op, in one model."""

    def __init__(self):
        super().__init__()
        self.q = QuantizeInput(0.0123)  # bnn.affine in division form, then bnn.clip8
        self.a = BinaryConv2d(3, 6, 3, padding=1, bias=True)
        self.bn = nn.BatchNorm2d(6)
        self.b = BinaryConv2d(3, 5, 1)
        self.prelu = nn.PReLU(11)
        self.head = nn.Linear(11, 4)

    def forward(self, x):
        q = self.q(x)
        y = torch.cat([torch.sign(self.bn(self.a(q))), self.b(q).float() * 0.5], 1)
        y = F.hardtanh(self.prelu(y + F.relu(y)), -3.0, 2.5)
        y = F.avg_pool2d(y, 2, padding=1) - F.max_pool2d(y, 2, padding=1)
        return self.head(torch.flatten(F.adaptive_avg_pool2d(y, 1), 1))


def test_compile_support_ops_end_to_end():
    """The support ops the importer emits through the whole pipeline on the host: equal to the
    numpy reference of the imported IR, and to PyTorch within float tolerance."""
    from bnnmlir.compiler import compile_module

    torch.manual_seed(14)
    model = _SupportOpsNet()
    randomize_bn(model.bn, 14)
    with torch.no_grad():
        model.a.bias.copy_(torch.randint(-4, 4, (6,)) * 0.5)
    x = torch.randn(2, 3, 7, 7)
    imported, want_ref, want = run_both(model, x)
    ops = set(names(imported))
    assert {"bnn.affine", "bnn.batch_norm", "bnn.concat", "bnn.add", "bnn.activation",
            "bnn.pool2d", "bnn.global_avg_pool", "bnn.dense", "bnn.cast"} <= ops, ops
    program = compile_module(imported.module, target="host", threads=1)
    (got,) = program(x.numpy())
    assert_exact(got, want_ref[0])
    np.testing.assert_allclose(got, want[0], rtol=1e-5, atol=1e-4)


def test_per_feature_layers_on_flattened_channels_last_tensor():
    torch.manual_seed(12)
    model = nn.Sequential(BinaryConv2d(3, 4, 3, padding=1), nn.Flatten(), nn.BatchNorm1d(64),
                          nn.PReLU(64), nn.Hardtanh(-2.0, 2.0), nn.Linear(64, 5), nn.ReLU())
    randomize_bn(model[2], 3, spread=4)
    with torch.no_grad():
        model[3].weight.uniform_(-1, 1)
    x = torch.randn(2, 3, 4, 4)
    imported, got, want = run_both(model, x)
    assert names(imported).count("bnn.transpose") == 1  # only the input's
    np.testing.assert_allclose(got[0], want[0], rtol=1e-5, atol=1e-4)


def test_concat_of_signs_and_max_pool_of_a_sign():
    torch.manual_seed(13)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = BinaryConv2d(3, 4, 3, padding=1)
            self.b = BinaryConv2d(3, 5, 1)
            self.c = BinaryConv2d(9, 6, 3)

        def forward(self, x):
            s = torch.cat([SignSTE.apply(self.a(x)), SignSTE.apply(self.b(x))], 1)
            return self.c(F.max_pool2d(s, 2))

    x = torch.randn(2, 3, 8, 8)
    imported, got, want = run_both(Net(), x)
    ops = names(imported)
    # the sign is applied after the concatenation and the pooling of the integer sums
    after = ops[ops.index("bnn.concat"):]
    assert after[:3] == ["bnn.concat", "bnn.pool2d", "bnn.binarize"], ops
    assert_exact(got[0], want[0])


@pytest.mark.parametrize("case", ["zero_variance", "overflowing_scale", "nan_mean"])
def test_degenerate_batch_norm_is_refused(case):
    """Statistics that make BatchNorm output inf/NaN are named, not compiled into a mismatch."""
    torch.manual_seed(0)
    model = nn.Sequential(BinaryConv2d(3, 4, 3), nn.BatchNorm2d(4), Clip8())
    bn = model[1]
    with torch.no_grad():
        if case == "zero_variance":
            bn.eps, bn.running_var[1] = 0.0, 0.0
        elif case == "overflowing_scale":
            bn.eps, bn.running_var[2], bn.weight[2] = 0.0, 1e-30, -1e30
        else:
            bn.running_mean[3] = float("nan")
    with pytest.raises(UnsupportedOperationError, match=r"module '1'.*BatchNorm channels \[\d\]"):
        import_model(model.eval(), (torch.randn(1, 3, 6, 6),))
