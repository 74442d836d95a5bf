"""The PyTorch layers of bnnmlir.nn: exact forward semantics, STE gradients, export form."""

import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from torch import nn

import bnnmlir.nn as bnn
from bnnmlir import reference
from bnnmlir.bits import conv_output_size

SETTINGS = settings(max_examples=25, deadline=None)


def _with_zeros(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Sprinkle exact 0.0 and -0.0 (both binarize to +1) into ``x``."""
    x = x.clone()
    x[torch.rand(x.shape, generator=gen) < 0.1] = 0.0
    x[torch.rand(x.shape, generator=gen) < 0.05] = -0.0
    return x


def _ste_reference(x: torch.Tensor) -> torch.Tensor:
    """sign with the straight-through gradient 1{|x| <= 1}, written without the custom op."""
    mask = (x.abs() <= 1).to(x.dtype)
    hard = torch.where(x >= 0, 1.0, -1.0).to(x.dtype)
    return hard.detach() + (x * mask - (x * mask).detach())  # exactly +-1 forward


# ---------------------------------------------------------------------------------------------
# bnnmlir::sign
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_sign_values_and_zero(dtype):
    x = torch.tensor([-1.5, -0.0, 0.0, 2.0, -1e-30, 1e-30, -3.0], dtype=dtype)
    y = bnn.binarize(x)
    assert y.dtype == dtype
    assert y.tolist() == [-1, 1, 1, 1, -1, 1, -1]
    assert np.array_equal(y.numpy().astype(np.int8), reference.sign_pm1(x.numpy()))


def test_binarize_rejects_integers():
    with pytest.raises(TypeError):
        bnn.binarize(torch.tensor([1, -1]))


@SETTINGS
@given(st.integers(1, 200), st.integers(0, 2**31 - 1))
def test_sign_ste_gradient(size, seed):
    gen = torch.Generator().manual_seed(seed)
    x = _with_zeros(torch.randn(size, generator=gen) * 1.5, gen)
    x[: min(size, 4)] = torch.tensor([1.0, -1.0, 1.0001, -1.0001])[: min(size, 4)]
    x.requires_grad_(True)
    upstream = torch.randn(size, generator=gen)
    (bnn.binarize(x) * upstream).sum().backward()
    expected = upstream * (x.detach().abs() <= 1)
    assert x.grad.shape == x.shape
    assert torch.equal(x.grad, expected)


def test_custom_ops_registration():
    x = torch.randn(3, 5) * 200
    torch.library.opcheck(torch.ops.bnnmlir.sign.default, (x.clone().requires_grad_(True),))
    torch.library.opcheck(torch.ops.bnnmlir.clip8.default, (x.clone().requires_grad_(True),))
    assert bnn.SIGN_OP is torch.ops.bnnmlir.sign.default
    assert bnn.CLIP8_OP is torch.ops.bnnmlir.clip8.default


# ---------------------------------------------------------------------------------------------
# Clip8 and QuantizeInput
# ---------------------------------------------------------------------------------------------


def test_clip8_rounding_and_saturation():
    x = torch.tensor([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 0.49, 126.5, 127.5, 200.0, -200.0, -127.5])
    assert bnn.Clip8()(x).tolist() == [0, 2, 2, 0, -2, -2, 0, 126, 127, 127, -127, -127]


@SETTINGS
@given(st.lists(st.floats(-400, 400, allow_nan=False, width=32), min_size=1, max_size=64))
def test_clip8_matches_numpy(values):
    x = torch.tensor(values, dtype=torch.float32)
    expected = np.clip(np.round(np.asarray(values, dtype=np.float32)), -127, 127)
    y = bnn.clip8(x)
    assert np.array_equal(y.numpy(), expected)
    assert torch.equal(y, torch.round(y)) and y.abs().max() <= 127


def test_clip8_gradient_inside_range_only():
    x = torch.tensor([-300.0, -127.0, -126.6, 0.3, 127.0, 127.2, 500.0], requires_grad=True)
    upstream = torch.arange(1.0, 8.0)
    (bnn.Clip8()(x) * upstream).sum().backward()
    assert x.grad.tolist() == [0, 2, 3, 4, 5, 0, 0]


def test_quantize_input():
    scale = 1 / 64
    x = torch.tensor([0.0, 1 / 128, 3 / 128, -1 / 128, 1.0, -5.0, 0.3], requires_grad=True)
    q = bnn.QuantizeInput(scale)(x)
    expected = np.clip(np.round(x.detach().numpy() / np.float32(scale)), -127, 127)
    assert np.array_equal(q.detach().numpy(), expected)
    assert q.tolist()[:6] == [0, 0, 2, 0, 64, -127]
    q.sum().backward()
    assert x.grad.tolist() == [64, 64, 64, 64, 64, 0, 64]
    with pytest.raises(ValueError):
        bnn.QuantizeInput(0.0)


def test_batchnorm_clip8_sign_is_a_threshold():
    """The fold stated in the package docs: sign(clip8(y)) = +1 iff y >= -0.5."""
    gen = torch.Generator().manual_seed(7)
    y = torch.cat([torch.randn(2000, generator=gen) * 3, torch.arange(-6, 6.5, 0.5)])
    assert torch.equal(bnn.binarize(bnn.clip8(y)), torch.where(y >= -0.5, 1.0, -1.0))


# ---------------------------------------------------------------------------------------------
# BinaryConv2d and BinaryLinear forward
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("pad_value", [0.0, 1.0, -1.0])
@SETTINGS
@given(
    n=st.integers(1, 2),
    c=st.integers(1, 19),
    o=st.integers(1, 6),
    h=st.integers(1, 9),
    w=st.integers(1, 9),
    kh=st.sampled_from([1, 2, 3, 5]),
    kw=st.sampled_from([1, 3, 4]),
    stride=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    dilation=st.tuples(st.integers(1, 2), st.integers(1, 2)),
    pads=st.tuples(*[st.integers(0, 2)] * 4),
    seed=st.integers(0, 2**31 - 1),
)
def test_binary_conv2d_matches_integer_reference(
    pad_value, n, c, o, h, w, kh, kw, stride, dilation, pads, seed
):
    top, bottom, left, right = pads
    oh = conv_output_size(h, kh, stride[0], dilation[0], top, bottom)
    ow = conv_output_size(w, kw, stride[1], dilation[1], left, right)
    assume(oh >= 1 and ow >= 1)
    gen = torch.Generator().manual_seed(seed)
    layer = bnn.BinaryConv2d(c, o, (kh, kw), stride, pads, dilation, pad_value=pad_value)
    with torch.no_grad():
        layer.weight.copy_(_with_zeros(torch.randn(layer.weight.shape, generator=gen), gen))
    x = _with_zeros(torch.randn(n, c, h, w, generator=gen) * 50, gen)
    out = layer.eval()(x).detach()

    expected = reference.bconv2d(
        reference.sign_pm1(x.permute(0, 2, 3, 1).numpy()),
        reference.sign_pm1(layer.weight.detach().permute(0, 2, 3, 1).numpy()),
        strides=stride,
        dilations=dilation,
        padding=pads,
        pad_value=int(pad_value),
    )
    assert out.shape == (n, o, oh, ow)
    assert torch.equal(out, torch.round(out))
    assert out.abs().max() <= layer.fan_in
    assert np.array_equal(out.permute(0, 2, 3, 1).numpy().astype(np.int64), expected)


def test_binary_conv2d_zero_padding_equals_pytorch_padding():
    torch.manual_seed(0)
    layer = bnn.BinaryConv2d(5, 3, 3, padding=(1, 2), stride=2)
    x = torch.randn(2, 5, 7, 6)
    expected = F.conv2d(torch.where(x >= 0, 1.0, -1.0), layer.binary_weight(), None, 2, (1, 2))
    assert torch.equal(layer(x), expected)


def test_binary_conv2d_attributes():
    layer = bnn.BinaryConv2d(3, 4, (3, 5), stride=(2, 1), padding=(1, 2), dilation=2, pad_value=1)
    assert (layer.in_channels, layer.out_channels) == (3, 4)
    assert layer.kernel_size == (3, 5) and layer.stride == (2, 1) and layer.dilation == (2, 2)
    assert layer.padding == (1, 1, 2, 2) and layer.f_pad == (2, 2, 1, 1)
    assert layer.pad_value == 1.0 and isinstance(layer.pad_value, float)
    assert layer.pad_value_int == 1 and layer.fan_in == 45 and layer.bias is None
    assert layer.weight.shape == (4, 3, 3, 5)
    assert bnn.BinaryConv2d(1, 1, 3, padding=2).padding == (2, 2, 2, 2)
    assert bnn.BinaryConv2d(1, 1, 3, padding=(0, 1, 2, 3)).padding == (0, 1, 2, 3)
    assert bnn.BinaryConv2d(1, 2, 1, bias=True).bias.shape == (2,)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"pad_value": 0.5},
        {"pad_value": 2},
        {"padding": (1, 2, 3)},
        {"padding": -1},
        {"stride": 0},
        {"dilation": (1, 2, 3)},
    ],
)
def test_binary_conv2d_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        bnn.BinaryConv2d(2, 2, 3, **kwargs)


def test_binary_conv2d_bias_is_added():
    torch.manual_seed(1)
    layer = bnn.BinaryConv2d(4, 3, 3, padding=1, bias=True)
    x = torch.randn(1, 4, 5, 5)
    no_bias = F.conv2d(F.pad(torch.where(x >= 0, 1.0, -1.0), (1, 1, 1, 1)), layer.binary_weight())
    assert torch.allclose(layer(x), no_bias + layer.bias.view(1, 3, 1, 1))


@SETTINGS
@given(
    n=st.integers(1, 4),
    k=st.integers(1, 70),
    o=st.integers(1, 9),
    seed=st.integers(0, 2**31 - 1),
)
def test_binary_linear_matches_integer_matmul(n, k, o, seed):
    gen = torch.Generator().manual_seed(seed)
    layer = bnn.BinaryLinear(k, o)
    with torch.no_grad():
        layer.weight.copy_(_with_zeros(torch.randn(o, k, generator=gen), gen))
    x = _with_zeros(torch.randn(n, k, generator=gen), gen)
    xs = reference.sign_pm1(x.numpy()).astype(np.int64)
    ws = reference.sign_pm1(layer.weight.detach().numpy()).astype(np.int64)
    out = layer(x).detach().numpy()
    assert np.array_equal(out.astype(np.int64), xs @ ws.T)
    assert np.array_equal(out, np.round(out)) and np.abs(out).max() <= k


# ---------------------------------------------------------------------------------------------
# Gradients of the binary layers
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("pad_value", [0.0, 1.0, -1.0])
def test_binary_conv2d_ste_gradients(pad_value):
    gen = torch.Generator().manual_seed(3)
    layer = bnn.BinaryConv2d(6, 4, 3, stride=(1, 2), padding=(1, 0, 2, 1), pad_value=pad_value)
    with torch.no_grad():
        layer.weight.copy_(torch.randn(layer.weight.shape, generator=gen) * 0.8)
    x = (torch.randn(2, 6, 7, 8, generator=gen) * 1.2).requires_grad_(True)
    upstream = torch.randn(layer(x).shape, generator=gen)
    (layer(x) * upstream).sum().backward()

    x_ref = x.detach().clone().requires_grad_(True)
    w_ref = layer.weight.detach().clone().requires_grad_(True)
    padded = F.pad(_ste_reference(x_ref), layer.f_pad, value=pad_value)
    (F.conv2d(padded, _ste_reference(w_ref), None, (1, 2)) * upstream).sum().backward()

    assert x.grad.shape == x.shape and layer.weight.grad.shape == layer.weight.shape
    assert torch.equal(x.grad, x_ref.grad) and torch.equal(layer.weight.grad, w_ref.grad)
    assert (x.grad[x.detach().abs() > 1] == 0).all()
    assert (layer.weight.grad[layer.weight.detach().abs() > 1] == 0).all()
    assert (x.grad != 0).any() and (layer.weight.grad != 0).any()


def test_binary_linear_ste_gradients():
    gen = torch.Generator().manual_seed(4)
    layer = bnn.BinaryLinear(10, 3)
    with torch.no_grad():
        layer.weight.copy_(torch.randn(3, 10, generator=gen))
    x = (torch.randn(5, 10, generator=gen) * 1.5).requires_grad_(True)
    upstream = torch.randn(5, 3, generator=gen)
    (layer(x) * upstream).sum().backward()
    w = layer.weight.detach()
    x_mask = (x.detach().abs() <= 1).float()
    w_mask = (w.abs() <= 1).float()
    assert torch.allclose(x.grad, (upstream @ torch.where(w >= 0, 1.0, -1.0)) * x_mask)
    expected_w = (upstream.T @ torch.where(x.detach() >= 0, 1.0, -1.0)) * w_mask
    assert torch.allclose(layer.weight.grad, expected_w)


def test_clamp_latent_weights_keeps_signs():
    model = nn.Sequential(bnn.BinaryConv2d(2, 3, 3), nn.Flatten(), bnn.BinaryLinear(3, 2))
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(10)
    signs = [m.binary_weight() for m in (model[0], model[2])]
    bnn.clamp_latent_weights_(model)
    for m, s in zip((model[0], model[2]), signs):
        assert m.weight.abs().max() <= 1 and torch.equal(m.binary_weight(), s)


# ---------------------------------------------------------------------------------------------
# torch.export
# ---------------------------------------------------------------------------------------------


class _Block(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv = bnn.BinaryConv2d(channels, channels, 3, padding=1, pad_value=-1.0)
        self.bn = nn.BatchNorm2d(channels)
        self.clip = bnn.Clip8()
        self.clip_add = bnn.Clip8()

    def forward(self, x):
        return self.clip_add(x + self.clip(self.bn(self.conv(x))))


class _Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.quant = bnn.QuantizeInput(1 / 32)
        self.stem = bnn.BinaryConv2d(3, 12, 3, stride=2, padding=(0, 1, 0, 1))
        self.stem_clip = bnn.Clip8()
        self.features = nn.Sequential(_Block(12), nn.MaxPool2d(2))
        self.head = bnn.BinaryLinear(12 * 2 * 2, 10)

    def forward(self, x):
        x = self.stem_clip(self.stem(self.quant(x)))
        return self.head(torch.flatten(self.features(x), 1))


def _module_path(node) -> tuple[str, type]:
    path, qualified_type = list(node.meta["nn_module_stack"].values())[-1]
    return path, qualified_type


def test_export_keeps_custom_ops_as_single_nodes():
    torch.manual_seed(5)
    model = _Net().eval()
    with torch.no_grad():  # give the BatchNorm non-trivial statistics
        bn_layer = model.features[0].bn
        bn_layer.running_mean.uniform_(-5, 5)
        bn_layer.running_var.uniform_(1, 30)
        bn_layer.weight.uniform_(-2, 2)
        bn_layer.bias.uniform_(-3, 3)
    x = torch.randn(2, 3, 9, 9)
    program = torch.export.export(model, (x,)).run_decompositions()
    graph = program.graph_module.graph
    calls = [n for n in graph.nodes if n.op == "call_function"]

    signs = [n for n in calls if n.target is torch.ops.bnnmlir.sign.default]
    clips = [n for n in calls if n.target is torch.ops.bnnmlir.clip8.default]
    names = {str(n.target) for n in calls}
    decomposed = ("aten.sign", "aten.where", "aten.ge", "aten.round", "aten.clamp")
    assert not any(t.startswith(decomposed) for t in names)
    assert len(signs) == 6 and len(clips) == 4

    paths = sorted(_module_path(n)[0] for n in signs)
    assert paths == ["features.0.conv"] * 2 + ["head"] * 2 + ["stem"] * 2
    assert all(_module_path(n)[1].endswith(("BinaryConv2d", "BinaryLinear")) for n in signs)
    assert sorted(_module_path(n)[0] for n in clips) == [
        "features.0.clip",
        "features.0.clip_add",
        "quant",
        "stem_clip",
    ]
    # One sign per layer reads the weight parameter directly.
    weight_inputs = {
        program.graph_signature.inputs_to_parameters.get(n.args[0].name) for n in signs
    }
    assert {"stem.weight", "features.0.conv.weight", "head.weight"} <= weight_inputs

    expected = model(x)
    assert torch.equal(program.module()(x), expected)


def test_eval_stream_is_int8():
    torch.manual_seed(6)
    model = _Net().eval()
    seen = []
    hooks = [
        m.register_forward_hook(lambda _m, _i, out: seen.append(out))
        for m in model.modules()
        if isinstance(m, bnn.Clip8 | bnn.QuantizeInput)
    ]
    logits = model(torch.randn(3, 3, 9, 9) * 4)
    for h in hooks:
        h.remove()
    assert len(seen) == 4
    for out in seen:
        assert torch.equal(out, torch.round(out)) and out.abs().max() <= 127
    assert torch.equal(logits, torch.round(logits)) and logits.abs().max() <= 48


def test_import_bnnmlir_does_not_import_torch():
    code = "import sys, bnnmlir, bnnmlir.bits; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
