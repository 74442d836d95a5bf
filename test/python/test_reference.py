"""The numpy reference against first principles and against the packing convention."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from bnnmlir import bits, reference


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 300), st.integers(1, 4), st.integers(0, 2**31 - 1))
def test_pack_matches_bits_convention(channels, rows, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((rows, channels)).astype(np.float32)
    x[rng.random(x.shape) < 0.1] = 0.0
    x[rng.random(x.shape) < 0.05] = -0.0
    ref = reference.binarize(x)
    assert np.array_equal(ref, bits.pack_bits(x))
    assert np.array_equal(reference.unpack(ref, channels), bits.unpack_bits(ref, channels))
    # Unused bits of the last word are zero.
    assert (ref[:, -1] & ~np.uint8(bits.last_word_mask(channels))).max(initial=0) == 0


def test_sign_convention():
    x = np.array([-1.5, -0.0, 0.0, 2.0, -1e-30], dtype=np.float32)
    assert reference.sign_pm1(x).tolist() == [-1, 1, 1, 1, -1]
    assert reference.binarize(x).tolist() == [0b10001]


@pytest.mark.parametrize("pad_value", [-1, 0, 1])
@settings(max_examples=15, deadline=None)
@given(
    n=st.integers(1, 2),
    c=st.integers(1, 20),
    o=st.integers(1, 5),
    h=st.integers(1, 9),
    w=st.integers(1, 9),
    k=st.sampled_from([1, 3, 5]),
    stride=st.integers(1, 2),
    dilation=st.integers(1, 2),
    pads=st.tuples(*[st.integers(0, 3)] * 4),
    seed=st.integers(0, 2**31 - 1),
)
def test_bconv2d_matches_torch(pad_value, n, c, o, h, w, k, stride, dilation, pads, seed):
    top, bottom, left, right = pads
    if h + top + bottom < dilation * (k - 1) + 1 or w + left + right < dilation * (k - 1) + 1:
        return
    rng = np.random.default_rng(seed)
    x = rng.choice([-1, 1], size=(n, h, w, c)).astype(np.int8)
    wt = rng.choice([-1, 1], size=(o, k, k, c)).astype(np.int8)
    got = reference.bconv2d(x, wt, (stride, stride), (dilation, dilation), pads, pad_value)
    xt = torch.from_numpy(x).permute(0, 3, 1, 2).double()
    xt = torch.nn.functional.pad(xt, (left, right, top, bottom), value=float(pad_value))
    wtt = torch.from_numpy(wt).permute(0, 3, 1, 2).double()
    want = torch.nn.functional.conv2d(xt, wtt, stride=stride, dilation=dilation)
    assert np.array_equal(got, want.permute(0, 2, 3, 1).numpy().astype(np.int32))
    assert np.abs(got).max() <= k * k * c


def test_bconv2d_zero_pad_counts_only_inside_taps():
    x = np.ones((1, 1, 1, 3), np.int8)
    w = np.ones((1, 3, 3, 3), np.int8)
    assert reference.bconv2d(x, w, padding=(1, 1, 1, 1), pad_value=0).item() == 3
    assert reference.bconv2d(x, w, padding=(1, 1, 1, 1), pad_value=1).item() == 27
    assert reference.bconv2d(x, w, padding=(1, 1, 1, 1), pad_value=-1).item() == 3 - 24


def test_clip8_and_threshold():
    assert reference.clip8(np.array([-1000, -128, -127, 0, 127, 128, 99999])).tolist() == [
        -127, -127, -127, 0, 127, 127, 127]
    x = np.array([[-3, 0, 5]])
    assert reference.threshold(x, [0, 0, 5], [1, -1, -1]).tolist() == [[-1, 1, 1]]
