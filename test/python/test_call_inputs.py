"""What a compiled model accepts when called: non-finite floats and unusual tensors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch._subclasses.fake_tensor import FakeTensorMode
from torch_models import binary_net

import bnnmlir
import bnnmlir.nn as bnn
from bnnmlir.input_checks import check_finite

NON_FINITE = [float("nan"), float("inf"), float("-inf")]


class TwoInputs(nn.Module):
    """``img`` is binarized first (infinities exact), ``aux`` goes through a float convolution
    (``+inf`` and ``-inf`` in one window make NaN, which Clip8 cannot reproduce)."""

    def __init__(self):
        super().__init__()
        self.binary = bnn.BinaryConv2d(3, 5, 3)
        self.dense = nn.Conv2d(3, 5, 3)
        self.clip = bnn.Clip8()

    def forward(self, img, aux):
        return self.clip(self.binary(img)) + self.clip(self.dense(aux))


def quantized_net(scale: float) -> nn.Module:
    torch.manual_seed(3)
    return nn.Sequential(
        bnn.QuantizeInput(scale), bnn.BinaryConv2d(3, 7, 3, stride=2, padding=1),
        nn.BatchNorm2d(7), bnn.Clip8(), bnn.BinaryConv2d(7, 5, 3),
    ).eval()


SHAPE = (2, 3, 7, 7)


@pytest.fixture(scope="module")
def two_inputs():
    torch.manual_seed(1)
    model = TwoInputs().eval()
    return model, bnnmlir.compile(model, (torch.randn(SHAPE), torch.randn(SHAPE)), threads=1)


@pytest.fixture(scope="module", params=[1 / 64, 0.3], ids=["scale-1/64", "scale-0.3"])
def quantized(request):
    """``QuantizeInput`` with a power-of-two scale (a multiplication) and another (a division)."""
    model = quantized_net(request.param)
    return model, bnnmlir.compile(model, (torch.randn(SHAPE),), threads=1)


def with_values(x: torch.Tensor, values: list[float], seed: int) -> tuple[torch.Tensor, list]:
    """``x`` with ``values`` written at distinct random positions (returned sorted)."""
    g = torch.Generator().manual_seed(seed)
    flat = torch.randperm(x.numel(), generator=g)[: len(values)]
    y = x.clone().reshape(-1)
    y[flat] = torch.tensor(values)
    positions = sorted(np.unravel_index(int(i), x.shape) for i in flat)
    return y.reshape(x.shape), [[int(d) for d in p] for p in positions]


@settings(max_examples=40)
@given(seed=st.integers(0, 2**31 - 1), count=st.integers(1, 5), kind=st.sampled_from(NON_FINITE))
def test_non_finite_float_input_is_refused_naming_it(two_inputs, seed, count, kind):
    """NaN anywhere, and infinities in an input that reaches float arithmetic, raise a
    ValueError naming the input, the count and the first index."""
    _, cm = two_inputs
    g = torch.Generator().manual_seed(seed)
    img, aux = torch.randn(SHAPE, generator=g), torch.randn(SHAPE, generator=g)
    bad, positions = with_values(aux, [kind] * count, seed)
    first = ", ".join(map(str, positions[0]))
    pattern = (rf"input 1 \('aux'\) holds {count} NaN or infinite value\(s\) "
               rf"\(the first at index \[{first}\]")
    with pytest.raises(ValueError, match=pattern):
        cm(img, bad)
    if math.isnan(kind):  # refused in the binarized input too
        bad, _ = with_values(img, [kind] * count, seed)
        with pytest.raises(ValueError, match=rf"input 0 \('img'\) holds {count} NaN value"):
            cm(bad, aux)


@settings(max_examples=40)
@given(seed=st.integers(0, 2**31 - 1), signs=st.lists(st.sampled_from([1.0, -1.0]), min_size=1,
                                                      max_size=12))
def test_infinities_are_exact_where_the_input_is_binarized_or_quantized(two_inputs, quantized,
                                                                         seed, signs):
    """PyTorch maps +-inf to +-1 (sign) and to +-127 (QuantizeInput); so does the compiled code."""
    infinities = [s * float("inf") for s in signs]
    model, cm = two_inputs
    g = torch.Generator().manual_seed(seed)
    img, _ = with_values(torch.randn(SHAPE, generator=g), infinities, seed)
    aux = torch.randn(SHAPE, generator=g)
    assert torch.equal(cm(img, aux), model(img, aux))
    model, cm = quantized
    x, _ = with_values(torch.randn(SHAPE, generator=g), infinities, seed + 1)
    assert torch.equal(cm(x), model(x))


def test_nan_in_quantized_input_is_refused(quantized):
    """The case that motivated the check: PyTorch's Clip8 keeps NaN, the int8 code cannot."""
    model, cm = quantized
    x, _ = with_values(torch.randn(SHAPE), [float("nan")], 0)
    assert torch.isnan(model[0](x)).any()  # QuantizeInput keeps the NaN
    with pytest.raises(ValueError, match=r"input 0 \('input'\) holds 1 NaN value\(s\)"):
        cm(x)


def test_check_finite_false_skips_the_scan(quantized):
    """Without the check a NaN runs through the compiled code: a finite result, no error, the
    same on every call (what the compiled code computes, not PyTorch's NaN)."""
    model, _ = quantized
    x = torch.randn(SHAPE)
    unchecked = bnnmlir.compile(model, (x,), threads=1, check_finite=False)
    assert unchecked.check_finite is False
    bad, _ = with_values(x, [float("nan")] * 3, 4)
    first = unchecked(bad)
    assert torch.isfinite(first).all()
    assert torch.equal(unchecked(bad), first)
    assert torch.equal(unchecked(x), model(x))
    unchecked.check_finite = True
    with pytest.raises(ValueError, match="NaN"):
        unchecked(bad)


@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.int32, np.int64, np.uint8])
def test_integer_arrays_pass_the_finite_check(dtype):
    info = np.iinfo(dtype)
    array = np.array([info.min, 0, 1, info.max], dtype=dtype)
    check_finite(array, "input 0", allow_infinity=False)


def test_finite_check_counts_and_locates():
    array = np.zeros((3, 4), np.float32)
    array[1, 2] = np.inf
    array[2, 0] = np.nan
    check_finite(np.where(np.isnan(array), 0, array), "x", allow_infinity=True)
    with pytest.raises(ValueError, match=r"x holds 2 NaN or infinite value\(s\) \(the first at "
                                         r"index \[1, 2\], inf\)"):
        check_finite(array, "x", allow_infinity=False)
    with pytest.raises(ValueError, match=r"x holds 1 NaN value\(s\) \(the first at index \[2, 0\]"):
        check_finite(array, "x", allow_infinity=True)


# ---- unusual tensors ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def compiled():
    model = binary_net()
    return model, bnnmlir.compile(model, (torch.randn(2, 3, 9, 9),), threads=1)


class Tagged(torch.Tensor):
    """A tensor subclass (its methods could change what the model computes)."""


def fake_cuda_tensor():
    with FakeTensorMode(allow_non_fake_inputs=True):
        return torch.empty(2, 3, 9, 9, device="cuda")


@pytest.mark.parametrize(
    "make, error, message",
    [
        (lambda x: x.to("meta"), TypeError, r"input 0 \('input'\) is a meta tensor"),
        (lambda x: x.to_sparse(), TypeError, r"input 0 \('input'\) has layout torch.sparse_coo"),
        (lambda x: x.to_sparse_csr(), TypeError,
         r"input 0 \('input'\) has layout torch.sparse_csr"),
        (lambda x: x.to_mkldnn(), TypeError, r"input 0 \('input'\) has layout torch._mkldnn"),
        (lambda x: torch.quantize_per_tensor(x, 0.1, 0, torch.qint8), TypeError,
         r"input 0 \('input'\) is a quantized tensor \(torch.qint8\)"),
        (lambda x: fake_cuda_tensor(), TypeError,
         r"input 0 \('input'\) is on device 'cuda:0': pass a CPU tensor"),
        (lambda x: x.as_subclass(Tagged), TypeError,
         r"input 0 \('input'\) is a Tagged \(a torch.Tensor subclass\)"),
        (lambda x: x[:, :, :0], ValueError,
         r"input 0 \('input'\) must have shape \[2, 3, 9, 9\], got \[2, 3, 0, 9\]"),
        (lambda x: x.double(), TypeError,
         r"input 0 \('input'\) must have dtype torch.float32, got torch.float64"),
        (lambda x: x.numpy(), TypeError, r"input 0 \('input'\) must be a torch.Tensor"),
    ],
    ids=["meta", "sparse-coo", "sparse-csr", "mkldnn", "quantized", "other-device", "subclass",
         "zero-size", "dtype", "numpy"],
)
@pytest.mark.filterwarnings("ignore::UserWarning")
def test_unusual_tensors_are_refused_naming_the_input(compiled, make, error, message):
    _, cm = compiled
    with pytest.raises(error, match=message):
        cm(make(torch.randn(2, 3, 9, 9)))


@pytest.mark.parametrize(
    "make",
    [
        lambda x: x.clone().requires_grad_(True),
        lambda x: x.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2),  # non-contiguous view
        lambda x: x[:1].expand(2, 3, 9, 9),  # stride 0 along the batch
        lambda x: torch._neg_view(-x),  # negative bit set
        lambda x: torch.nn.Parameter(x.clone()),
    ],
    ids=["requires-grad", "non-contiguous", "expanded", "negative-view", "parameter"],
)
def test_harmless_tensor_kinds_work(compiled, make):
    model, cm = compiled
    arg = make(torch.randn(2, 3, 9, 9, generator=torch.Generator().manual_seed(11)))
    plain = arg.detach().resolve_neg().contiguous()
    assert type(plain) is torch.Tensor and not plain.is_neg()
    y = cm(arg)
    assert not y.requires_grad
    assert torch.equal(y, model(plain))
