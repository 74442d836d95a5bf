"""Exact folding of float per-channel functions (BatchNorm + sign / Clip8) on integer domains.

Every check compares the folded integer form against the float computation of the model itself
(the eval-mode module on a model-shaped NCHW / NC tensor, then ``>= 0`` or ``torch.round`` + clamp)
on EVERY integer of the domain.
"""

import numpy as np
import pytest
import requant_cases
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from bnnmlir import reference
from bnnmlir.folding import (
    CONSTANT_THRESHOLD,
    FoldingError,
    Requant,
    RequantKind,
    apply_threshold,
    fold_clip8,
    fold_requant8_sign,
    fold_sign,
    fold_torch_sign,
    per_channel,
    then_clip8,
    verify_requant,
    zero_points,
)

DOMAINS = [9, 27 * 64, 3 * 3 * 256, 4608]


def model_clip8(y):
    return torch.clamp(torch.round(y), -127, 127)


def random_bn(rng, channels, two_d, gamma_kind="mixed"):
    bn = (torch.nn.BatchNorm2d if two_d else torch.nn.BatchNorm1d)(
        channels, eps=float(10 ** rng.uniform(-6, -1))
    )
    with torch.no_grad():
        gamma = rng.standard_normal(channels) * 10 ** rng.uniform(-2, 1, channels)
        pick = rng.random(channels)
        if gamma_kind == "mixed":
            gamma[pick < 0.15] = 0.0
            gamma[(pick >= 0.15) & (pick < 0.55)] *= -1
        bn.weight.copy_(torch.tensor(gamma))
        bn.bias.copy_(torch.tensor(rng.standard_normal(channels) * 3))
        bn.running_mean.copy_(torch.tensor(rng.standard_normal(channels) * 20))
        bn.running_var.copy_(torch.tensor(10 ** rng.uniform(-2, 3, channels)))
    return bn.eval()


def model_view(bn, lo, hi, rng):
    """The whole domain laid out as the model sees it (contiguous NCHW or NC, values shuffled per
    channel), with the model's float output."""
    channels = bn.num_features
    values = np.arange(lo, hi + 1)
    x = np.stack([rng.permutation(values) for _ in range(channels)], axis=0)  # [C, D]
    if isinstance(bn, torch.nn.BatchNorm2d):
        pad = (-x.shape[1]) % 6
        x = np.concatenate([x, x[:, :pad]], axis=1)
        nchw = np.ascontiguousarray(x.reshape(channels, 2, 3, -1).transpose(1, 0, 2, 3))
        with torch.no_grad():
            y = bn(torch.tensor(nchw, dtype=torch.float32))
        return nchw, y, 1
    with torch.no_grad():
        y = bn(torch.tensor(np.ascontiguousarray(x.T), dtype=torch.float32))
    return x.T, y, 1


# ---------------------------------------------------------------------------------------------
# BatchNorm then sign
# ---------------------------------------------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(
    channels=st.integers(1, 48),
    k=st.sampled_from(DOMAINS),
    two_d=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_fold_sign_matches_batchnorm(channels, k, two_d, seed):
    rng = np.random.default_rng(seed)
    bn = random_bn(rng, channels, two_d)
    t, d = fold_sign(per_channel(bn, 4 if two_d else 2), channels, -k, k)
    assert t.dtype == np.int32 and d.dtype == np.int8
    x, y, axis = model_view(bn, -k, k, rng)
    expected = torch.where(y >= 0, 1, -1).to(torch.int8)
    got = torch.from_numpy(apply_threshold(x, t, d, channel_axis=axis))
    assert torch.equal(got, expected)


def test_apply_threshold_is_the_reference_semantics():
    rng = np.random.default_rng(1)
    t = rng.integers(-50, 50, 16).astype(np.int32)
    d = rng.choice([-1, 1], 16).astype(np.int8)
    t[:2] = CONSTANT_THRESHOLD
    x = rng.integers(-60, 60, (7, 16))
    assert np.array_equal(apply_threshold(x, t, d), reference.threshold(x, t, d))
    assert np.array_equal(
        apply_threshold(x.T, t, d, channel_axis=0), reference.threshold(x, t, d).T
    )


def test_threshold_exactly_at_an_integer_and_constants():
    # (x - mean) * gamma / sqrt(var + eps) is exactly 0 at x = mean: sign(0) is +1.
    bn = torch.nn.BatchNorm1d(6, eps=0.0).eval()
    with torch.no_grad():
        bn.running_mean.copy_(torch.tensor([5.0, 5.0, -3.0, 0.0, 0.0, 0.0]))
        bn.running_var.fill_(1.0)
        bn.weight.copy_(torch.tensor([1.0, -1.0, 2.0, 0.0, 0.0, 1e-30]))
        bn.bias.copy_(torch.tensor([0.0, 0.0, 0.0, 1.0, -1.0, -1e4]))
    t, d = fold_sign(per_channel(bn), 6, -9, 9)
    assert t.tolist() == [5, 5, -3, CONSTANT_THRESHOLD, CONSTANT_THRESHOLD, CONSTANT_THRESHOLD]
    assert d.tolist() == [1, -1, 1, 1, -1, -1]
    # torch.sign gives 0 at those points: not a binarization there.
    with pytest.raises(FoldingError, match="channel 2: fn\\(-3\\) is exactly 0"):
        fold_torch_sign(per_channel(bn), 6, -9, 9)
    assert zero_points(per_channel(bn), 6, -9, 9).tolist() == [[-3, 2], [5, 0], [5, 1]]
    # Away from the zeros torch.sign is a binarization: on [6, 9] every channel is constant.
    t2, d2 = fold_torch_sign(per_channel(bn), 6, 6, 9)
    assert (t2 == CONSTANT_THRESHOLD).all()
    assert d2.tolist() == [1, -1, 1, 1, -1, -1]


def test_negative_zero_binarizes_to_plus_one():
    fn = lambda x: torch.where(x > 3, -x, torch.full_like(x, -0.0))
    t, d = fold_sign(fn, 2, -9, 9)
    assert t.tolist() == [3, 3] and d.tolist() == [-1, -1]


@pytest.mark.parametrize(
    "fn",
    [
        lambda x: torch.cos(x),  # many crossings
        lambda x: x * x - 4.0,  # + - +
        lambda x: (
            torch.where(x == 7, -1.0, 1.0) * (x[:, :1] * 0 + 1)
        ),  # one dip, same every channel
    ],
)
def test_non_monotone_sign_raises(fn):
    with pytest.raises(
        FoldingError, match="channel 0: sign\\(fn\\(x\\)\\) is not a single-threshold"
    ):
        fold_sign(fn, 3, -20, 20)


def test_non_monotone_channel_is_named():
    def fn(x):
        y = x.clone() - 1.0
        y[:, 2] = -torch.abs(x[:, 2]) + 3.0  # + only on [-3, 3]
        return y

    with pytest.raises(FoldingError, match="channel 2"):
        fold_sign(fn, 4, -10, 10)


def test_invalid_inputs_raise():
    with pytest.raises(FoldingError, match="NaN"):
        fold_sign(lambda x: x / 0.0 * 0.0, 2, -3, 3)
    with pytest.raises(FoldingError, match="empty"):
        fold_sign(lambda x: x, 2, 3, -3)
    with pytest.raises(FoldingError, match="2\\*\\*24"):
        fold_sign(lambda x: x, 2, -(2**25), 0)
    with pytest.raises(FoldingError, match="training mode"):
        per_channel(torch.nn.BatchNorm1d(3))
    with pytest.raises(FoldingError, match="map \\[D, C\\] to \\[D, C\\]"):
        fold_sign(lambda x: x.sum(dim=1), 2, -3, 3)


# ---------------------------------------------------------------------------------------------
# BatchNorm / scale + bias then Clip8
# ---------------------------------------------------------------------------------------------


def check_clip8(bn, lo, hi, rng, **kwargs) -> Requant:
    two_d = isinstance(bn, torch.nn.BatchNorm2d)
    requant = fold_clip8(
        then_clip8(per_channel(bn, 4 if two_d else 2)), bn.num_features, lo, hi, **kwargs
    )
    x, y, axis = model_view(bn, lo, hi, rng)
    got = torch.from_numpy(requant.apply(x, channel_axis=axis).astype(np.float32))
    assert torch.equal(got, model_clip8(y))
    return requant


@settings(max_examples=25, deadline=None)
@given(
    channels=st.integers(1, 32),
    k=st.sampled_from(DOMAINS + [127]),
    two_d=st.booleans(),
    gain=st.sampled_from([1e-3, 0.1, 1.0, 30.0, 1e4]),
    seed=st.integers(0, 2**32 - 1),
)
def test_fold_clip8_matches_batchnorm(channels, k, two_d, gain, seed):
    rng = np.random.default_rng(seed)
    bn = random_bn(rng, channels, two_d)
    with torch.no_grad():
        bn.weight.mul_(gain)
        bn.bias.mul_(gain)
    requant = check_clip8(bn, -k, k, rng)
    if requant.kind is RequantKind.AFFINE:
        assert requant.shift.max() <= 30 and np.abs(requant.multiplier).max() < 2**31
        uniform = check_clip8(bn, -k, k, rng, uniform_shift=True)
        if uniform.kind is RequantKind.AFFINE:
            assert (uniform.shift == requant.shift.max()).all()


@pytest.mark.parametrize("kind", ["breakpoints", "table"])
def test_forced_kinds_on_int8_domain(kind):
    rng = np.random.default_rng(7)
    bn = random_bn(rng, 24, two_d=True)
    requant = check_clip8(bn, -127, 127, rng, kinds=(kind,))
    assert requant.kind.value == kind


def test_breakpoints_on_large_domain_and_table_unavailable():
    rng = np.random.default_rng(8)
    bn = random_bn(rng, 16, two_d=False)
    requant = check_clip8(bn, -2304, 2304, rng, kinds=("breakpoints",))
    assert requant.breakpoints.shape[1] <= 254
    with pytest.raises(FoldingError, match="no allowed kind fits"):
        fold_clip8(then_clip8(per_channel(bn)), 16, -2304, 2304, kinds=("table",))


def test_round_half_to_even_ties_are_exact():
    # x * 0.5 hits every .5 exactly: round-half-even gives runs of length 3, 1, 3, 1 ... which no
    # clamp((x*m + b) >> s) reproduces, so the fold must fall back to breakpoints, exactly.
    fn = then_clip8(lambda x: x * 0.5)
    requant = fold_clip8(fn, 1, -400, 400)
    assert requant.kind is RequantKind.BREAKPOINTS
    x = np.arange(-400, 401)[:, None]
    expected = np.clip(np.round(x * 0.5), -127, 127)  # numpy also rounds half to even
    assert np.array_equal(requant.apply(x), expected)
    assert requant.apply(np.array([[1], [3], [5], [-1], [-3]])).ravel().tolist() == [0, 2, 2, 0, -2]
    # A 0.5 offset makes ties on the other parity; scale 1 + bias .5 ties at every integer.
    for scale, bias in [(0.5, 0.5), (1.0, 0.5), (-1.0, 0.5), (0.25, -0.5)]:
        fn = then_clip8(lambda x, s=scale, b=bias: x * s + b)
        requant = fold_clip8(fn, 1, -300, 300)
        expected = np.clip(np.round(x[100:-100] * scale + bias), -127, 127)
        assert np.array_equal(requant.apply(x[100:-100]), expected)


def test_batchnorm_value_exactly_half_and_zero():
    # mean 0, var + eps = 4 -> (x / 2) * gamma + beta: exact .5 values at odd x.
    bn = torch.nn.BatchNorm1d(4, eps=0.0).eval()
    with torch.no_grad():
        bn.running_var.fill_(4.0)
        bn.weight.copy_(torch.tensor([1.0, -1.0, 3.0, 1.0]))
        bn.bias.copy_(torch.tensor([0.0, 0.5, 0.0, -0.5]))
    check_clip8(bn, -300, 300, np.random.default_rng(3))
    check_clip8(bn, -127, 127, np.random.default_rng(4), kinds=("table",))


def test_extreme_gains():
    bn = torch.nn.BatchNorm1d(5, eps=1e-5).eval()
    with torch.no_grad():
        bn.running_mean.copy_(torch.tensor([10.3, -7.0, 0.0, 3.0, 0.0]))
        bn.weight.copy_(torch.tensor([1e6, -1e6, 1e-7, 1e-30, 0.0]))
        bn.bias.copy_(torch.tensor([0.0, 0.0, 0.4, 200.0, -1e5]))
    requant = check_clip8(bn, -4608, 4608, np.random.default_rng(5))
    assert requant.kind is RequantKind.AFFINE
    # Pure steps -127 -> 127 need a small gain, not a huge one; constants have multiplier 0.
    assert np.abs(requant.multiplier[:2]).max() <= 254 and requant.multiplier[2:].tolist() == [
        0,
        0,
        0,
    ]
    assert requant.apply(np.array([[10, -7, 0, 0, 0], [11, -8, 0, 0, 0]])).tolist() == [
        [-127, 0, 0, 127, -127],  # x == mean: exactly 0 whatever the gain
        [127, 127, 0, 127, -127],
    ]
    t, d = fold_sign(per_channel(bn), 5, -4608, 4608)
    assert t.tolist() == [11, -7, CONSTANT_THRESHOLD, CONSTANT_THRESHOLD, CONSTANT_THRESHOLD]
    assert d.tolist() == [1, -1, 1, 1, -1]


@settings(max_examples=40, deadline=None)
@given(
    m=st.integers(-(2**20), 2**20),
    b=st.integers(-(2**40), 2**40),
    s=st.integers(0, 24),
    k=st.sampled_from([9, 300, 4608]),
)
def test_affine_search_finds_an_affine_function(m, b, s, k):
    # A function that IS clamp((x*m + b) >> s) must be folded as affine (the search is complete).
    fn = lambda x: torch.clamp((x.to(torch.int64) * m + b) >> s, -127, 127).to(torch.float32)
    requant = fold_clip8(fn, 1, -k, k, kinds=("affine",))
    assert requant.shift[0] <= s
    x = np.arange(-k, k + 1)[:, None]
    assert np.array_equal(requant.apply(x).ravel(), np.clip((x.ravel() * m + b) >> s, -127, 127))


def test_non_monotone_clip8():
    fn = then_clip8(lambda x: 100 * torch.cos(x / 10))
    with pytest.raises(FoldingError, match="channel 0: fn is not monotone"):
        fold_clip8(fn, 2, -1000, 1000)
    requant = fold_clip8(fn, 2, -127, 127)  # small domain: a table
    assert requant.kind is RequantKind.TABLE
    x = np.arange(-127, 128)[:, None].repeat(2, 1)
    assert np.array_equal(
        requant.apply(x), model_clip8(100 * torch.cos(torch.tensor(x) / 10)).numpy()
    )
    with pytest.raises(FoldingError, match="channel 0: fn is not monotone"):
        fold_clip8(fn, 2, -127, 127, kinds=("affine", "breakpoints"))


def test_clip8_rejects_non_integer_or_out_of_range_outputs():
    with pytest.raises(FoldingError, match="not an integer"):
        fold_clip8(lambda x: x * 0.5, 2, -5, 5)
    with pytest.raises(FoldingError, match="not an integer"):
        fold_clip8(lambda x: torch.round(x * 100), 2, -5, 5)


def test_verify_requant_detects_a_wrong_form():
    fn = then_clip8(lambda x: x * 0.25 + 0.3)  # no ties: affine
    requant = fold_clip8(fn, 3, -500, 500)
    verify_requant(fn, requant, 3)
    wrong = Requant(
        RequantKind.AFFINE,
        -500,
        500,
        multiplier=requant.multiplier.copy(),
        offset=requant.offset + (1 << requant.shift) * 2,
        shift=requant.shift.copy(),
    )
    with pytest.raises(FoldingError, match="channel 0: affine requant gives"):
        verify_requant(fn, wrong, 3)


@settings(max_examples=40, deadline=None)
@given(
    channels=st.integers(1, 6),
    k=st.integers(1, 3000),
    kind=st.sampled_from(["affine", "breakpoints"]),
    channel=st.integers(0, 5),
    field=st.sampled_from(["multiplier", "offset", "base", "breakpoints"]),
    delta=st.integers(-3, 3),
    seed=st.integers(0, 2**32 - 1),
)
def test_verification_on_the_runs_equals_the_exhaustive_one(channels, k, kind, channel, field,
                                                             delta, seed):
    """A large domain is verified on the ends of its runs (:func:`verify_requant_on_runs`): it
    accepts exactly the (possibly altered) requants that the exhaustive verification accepts."""
    from bnnmlir.folding.requant import _tabulate, verify_requant_on_runs

    rng = np.random.default_rng(seed)
    fn = then_clip8(per_channel(random_bn(rng, channels, False)))
    try:
        requant = fold_clip8(fn, channels, -k, k, kinds=(kind,))
    except FoldingError:
        return
    arrays = {n: getattr(requant, n) for n in ("multiplier", "offset", "shift", "base", "step",
                                               "breakpoints")}
    if arrays[field] is not None and arrays[field].size:
        changed = arrays[field].astype(np.int64)
        changed[channel % channels] += delta
        info = np.iinfo(arrays[field].dtype)
        # within the type; breakpoint rows stay sorted below the padding (the form's invariant)
        assume(info.min <= changed.min() and changed.max() <= info.max)
        assume(field != "breakpoints" or (np.diff(changed, axis=1) >= 0).all())
        arrays[field] = changed.astype(arrays[field].dtype)
    altered = Requant(requant.kind, requant.lo, requant.hi, **arrays)
    from bnnmlir.folding.domain import domain_chunks

    runs = _tabulate(domain_chunks(fn, channels, -k, k), channels, -k, k, keep_table=False)

    def outcome(verify):
        try:
            verify()
        except FoldingError:
            return False
        return True

    exhaustive = outcome(lambda: verify_requant(fn, altered, channels))
    assert outcome(lambda: verify_requant_on_runs(altered, runs)) == exhaustive


# ---------------------------------------------------------------------------------------------
# The layout property the channel functions rely on
# ---------------------------------------------------------------------------------------------


@settings(max_examples=20, deadline=None)
@given(
    channels=st.integers(1, 40),
    shape=st.sampled_from([(1, 1), (1, 7), (3, 5), (13, 13), (2, 33)]),
    batch=st.integers(1, 3),
    channels_last=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_batchnorm_float_result_does_not_depend_on_position(
    channels, shape, batch, channels_last, seed
):
    rng = np.random.default_rng(seed)
    bn = random_bn(rng, channels, two_d=True)
    values = torch.arange(-600, 601, dtype=torch.float32)
    table = per_channel(bn, 4)(values[:, None].expand(-1, channels).contiguous())
    idx = torch.from_numpy(rng.integers(0, len(values), (batch, channels) + shape))
    x = values[idx]
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        y = bn(x)
    assert torch.equal(y, table[idx, torch.arange(channels)[None, :, None, None].expand_as(idx)])


@settings(max_examples=10, deadline=None)
@given(channels=st.integers(2, 24), two_d=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_strided_input_is_folded_through_its_own_code_path(channels, two_d, seed):
    # A model that feeds BatchNorm a transposed (non-contiguous) tensor: fold with contiguous=False.
    rng = np.random.default_rng(seed)
    bn = random_bn(rng, channels, two_d)
    k = 1728
    ndim = 4 if two_d else 2
    requant = fold_clip8(then_clip8(per_channel(bn, ndim, contiguous=False)), channels, -k, k)
    t, d = fold_sign(per_channel(bn, ndim, contiguous=False), channels, -k, k)
    x = np.stack([rng.permutation(np.arange(-k, k + 1)) for _ in range(channels)], axis=0)  # [C, D]
    strided = torch.tensor(x, dtype=torch.float32).t()  # [D, C] view, column-major
    assert not strided.is_contiguous()
    with torch.no_grad():
        y = bn(strided[:, :, None, None] if two_d else strided).reshape(strided.shape)
    got = torch.from_numpy(requant.apply(x.T).astype(np.float32))
    assert torch.equal(got, model_clip8(y))
    assert torch.equal(
        torch.from_numpy(apply_threshold(x.T, t, d)), torch.where(y >= 0, 1, -1).to(torch.int8)
    )


def test_single_row_evaluation_keeps_the_strided_path():
    # A one-row tensor is contiguous whatever its strides; fn must still take the strided kernel,
    # whose float results differ from the contiguous one (so a last chunk of one row, or lo == hi,
    # would otherwise be folded through the wrong rounding).
    from bnnmlir.folding.domain import evaluate

    channels = 64
    bn = random_bn(np.random.default_rng(11), channels, two_d=False)
    rows = np.arange(-2000, 2000, 97)[:, None] + np.arange(channels)[None, :]
    strided, contiguous = per_channel(bn, contiguous=False), per_channel(bn)
    assert (evaluate(strided, rows) != evaluate(contiguous, rows)).any()  # the paths do differ
    for i in range(len(rows)):
        assert np.array_equal(
            evaluate(strided, rows[i : i + 1]), evaluate(strided, rows)[i : i + 1]
        )


# ---------------------------------------------------------------------------------------------
# Sign of an int8 stream: binarize(requant8(x)) -> threshold
# ---------------------------------------------------------------------------------------------

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


def _domain(rng, where: str, k: int) -> tuple[int, int]:
    """An integer domain of at most ~10**4 values: around the map's active region, or at an end
    of the i32 range (where the constant-channel encodings matter)."""
    if where == "conv":
        return -k, k
    if where == "inside":
        lo, hi = sorted(int(v) for v in rng.integers(-k - 30, k + 31, size=2))
        return lo, hi
    if where == "int8":
        return -128, 127
    if where == "i32_low":
        return INT32_MIN, INT32_MIN + int(rng.integers(0, 3000))
    return INT32_MAX - int(rng.integers(0, 3000)), INT32_MAX


def _sign_of_requant(x: np.ndarray, rq: dict) -> np.ndarray:
    """binarize(requant8(x)) as +-1 by the numpy reference of bnn.requant8."""
    return np.where(requant_cases.apply(x, rq) >= 0, 1, -1).astype(np.int8)


@settings(max_examples=60, deadline=None)
@given(
    kind=st.sampled_from(requant_cases.KINDS),
    channels=st.integers(1, 9),
    k=st.sampled_from([9, 45, 288, 4608]),
    where=st.sampled_from(["conv", "inside", "int8", "i32_low", "i32_high"]),
    seed=st.integers(0, 2**32 - 1),
)
def test_requant8_sign_threshold_equals_binarize_of_requant8(kind, channels, k, where, seed):
    """Every kind of requant8, random domains: the threshold gives binarize(requant8(x)) on every
    integer of the domain, or the fold is refused only for a table channel with several sign
    changes on the domain."""
    rng = np.random.default_rng(seed)
    rq = requant_cases.random_requant(rng, kind, channels, k)
    if kind == "table" and rng.random() < 0.5:  # sorted rows: one sign change at most
        rq["table"] = [sorted(row, reverse=bool(rng.random() < 0.5)) for row in rq["table"]]
    lo, hi = _domain(rng, where, k)
    x = np.broadcast_to(np.arange(lo, hi + 1, dtype=np.int64)[:, None], (hi - lo + 1, channels))
    expected = _sign_of_requant(x, rq)
    changes = (np.diff(expected.astype(np.int64), axis=0) != 0).sum(axis=0)
    try:
        t, d = fold_requant8_sign(rq, lo, hi)
    except FoldingError as e:
        assert kind == "table" and (changes > 1).any()
        assert f"channel {int(np.flatnonzero(changes > 1)[0])}:" in str(e)
        return
    assert (changes <= 1).all()
    assert t.dtype == np.int32 and d.dtype == np.int8 and t.shape == d.shape == (channels,)
    np.testing.assert_array_equal(reference.threshold(x, t, d), expected)


def test_requant8_sign_constant_channels_on_the_whole_i32_range():
    # always +1, x >= 5, x <= -4 on every i32 value; always -1 has no threshold there
    rq = {"kind": "affine", "multiplier": [0, 3, -2], "offset": [7, -13, -8], "shift": [4, 0, 1]}
    t, d = fold_requant8_sign(rq, INT32_MIN, INT32_MAX)
    assert (t.tolist(), d.tolist()) == ([INT32_MIN, 5, -4], [1, 1, -1])
    never = {"kind": "affine", "multiplier": [0], "offset": [-1], "shift": [0]}
    with pytest.raises(FoldingError, match="channel 0: always -1 on the whole i32 range"):
        fold_requant8_sign(never, INT32_MIN, INT32_MAX)
    # elsewhere "always -1" has an encoding: t = -2**31, d = -1, or t = 2**31 - 1, d = +1 when
    # the domain reaches -2**31
    assert [v.tolist() for v in fold_requant8_sign(never, -5, INT32_MAX)] == [[INT32_MIN], [-1]]
    assert [v.tolist() for v in fold_requant8_sign(never, INT32_MIN, 9)] == [[INT32_MAX], [1]]


def test_requant8_sign_breakpoints_count_the_padding():
    # base -3, step +1: +1 iff three breakpoints are <= x; the third is the padding 2**31 - 1
    rq = {"kind": "breakpoints", "base": [-3, 2], "step": [1, -1],
          "breakpoints": [[-4, 6, 2**31 - 1], [-4, 6, 2**31 - 1]]}
    t, d = fold_requant8_sign(rq, INT32_MAX - 2, INT32_MAX)
    assert (t.tolist(), d.tolist()) == ([INT32_MAX, INT32_MAX - 1], [1, -1])
    x = np.arange(INT32_MAX - 2, INT32_MAX + 1, dtype=np.int64)[:, None].repeat(2, axis=1)
    np.testing.assert_array_equal(reference.threshold(x, t, d), _sign_of_requant(x, rq))


def test_requant8_sign_of_a_non_monotone_table_is_refused():
    rq = {"kind": "table", "lo": 0, "table": [[1, -1, 1], [-1, 1, 1]]}
    with pytest.raises(FoldingError, match="channel 0: the sign of the table changes 2 times"):
        fold_requant8_sign(rq, -10, 10)
    t, d = fold_requant8_sign(rq, 1, 10)  # on [1, 10]: channel 0 changes once, 1 is always +1
    assert (t.tolist(), d.tolist()) == ([2, INT32_MIN], [1, 1])


# ---------------------------------------------------------------------------------------------
# The fold's own BatchNorm evaluator (batch-norm=op) against first principles and the reference
# ---------------------------------------------------------------------------------------------


def exact_f32(value):
    """The float32 nearest to an exact rational (ties to even), by exhaustive comparison."""
    from fractions import Fraction

    near = np.float32(float(value))
    candidates = [np.nextafter(near, np.float32(-np.inf)), near,
                  np.nextafter(near, np.float32(np.inf))]
    return min(candidates,
               key=lambda f: (abs(Fraction(float(f)) - value), int(f.view(np.uint32)) & 1))


# scale = gamma (var = 1, eps = 0) and shift = beta (mean = 0), so y = fma(x, gamma, beta):
# 97 * (172961 * 2**-24) = 1 + 2**-24 exactly, the midpoint of 1 and 1 + 2**-23. A float64 sum
# with +-2**-80 rounds back to that midpoint (double rounding); the single rounding does not.
MIDPOINT_GAMMA = np.float32(172961 * 2.0**-24)
EDGE_BETAS = [2.0**-80, -(2.0**-80), 0.0, -0.0, 2.0**-126 * 3, 1e30, -1e-45]


@pytest.mark.parametrize("beta", EDGE_BETAS)
def test_batch_norm_op_evaluator_is_exact_and_agrees_with_the_reference(beta):
    """``batch-norm=op`` evaluates ``fma(x, scale, shift)`` with code of its own (PyTorch); the
    numpy reference is a different implementation. Both must equal the exact rounding."""
    from fractions import Fraction

    from bnnmlir.folding.torch_fns import batch_norm_op
    from bnnmlir.reference import support as ref

    stats = ([0.0], [1.0], [float(MIDPOINT_GAMMA)], [beta])
    x = np.array([-97, -1, 0, 1, 3, 96, 97, 98, 2**24 - 1, 2**24], dtype=np.float32)[:, None]
    got = batch_norm_op(*stats, eps=0.0)(torch.from_numpy(x)).numpy()
    oracle = ref.batch_norm(x, *(np.array(s, np.float32) for s in stats), np.float32(0.0))
    exact = np.array([[exact_f32(Fraction(float(v)) * Fraction(float(MIDPOINT_GAMMA))
                                 + Fraction(float(np.float32(beta))))] for v in x[:, 0]])
    assert got.view(np.uint32).tolist() == exact.view(np.uint32).tolist()
    assert oracle.view(np.uint32).tolist() == exact.view(np.uint32).tolist()
    if beta == 2.0**-80:  # the double-rounding case is really exercised
        assert got[6, 0] == np.float32(1 + 2.0**-23)


@settings(max_examples=30, deadline=None)
@given(channels=st.integers(1, 8), seed=st.integers(0, 2**32 - 1))
def test_batch_norm_op_evaluator_matches_the_reference_on_random_statistics(channels, seed):
    from bnnmlir.folding.torch_fns import batch_norm_op
    from bnnmlir.reference import support as ref

    rng = np.random.default_rng(seed)
    mean = (rng.standard_normal(channels) * 50).astype(np.float32)
    var = (rng.random(channels) * 9).astype(np.float32)
    magnitude = rng.choice([1e-30, 1.0, 1e20], channels)
    gamma = (rng.standard_normal(channels) * magnitude).astype(np.float32)
    gamma[rng.random(channels) < 0.2] = 0.0
    beta = (rng.standard_normal(channels) * 10).astype(np.float32)
    var[rng.random(channels) < 0.1] = 0.0  # 1 / sqrt(0 + eps) with eps = 0: inf scale
    eps = float(rng.choice([0.0, 1e-5]))
    x = np.arange(-300, 301, dtype=np.float32)[:, None].repeat(channels, axis=1)
    got = batch_norm_op(mean, var, gamma, beta, eps=eps)(torch.from_numpy(x)).numpy()
    with np.errstate(all="ignore"):
        oracle = ref.batch_norm(x, mean, var, gamma, beta, np.float32(eps))
    np.testing.assert_array_equal(got, oracle)  # NaN == NaN here, and -0.0 != +0.0 below
    assert (np.signbit(got) == np.signbit(oracle))[~np.isnan(oracle)].all()


# ---------------------------------------------------------------------------------------------
# One evaluation of the whole domain
# ---------------------------------------------------------------------------------------------


def _requant_arrays(requant):
    names = ("multiplier", "offset", "shift", "base", "step", "breakpoints", "table")
    return requant.kind, requant.lo, requant.hi, {
        n: getattr(requant, n) for n in names if getattr(requant, n) is not None
    }


@settings(max_examples=15, deadline=None)
@given(
    channels=st.integers(1, 40),
    k=st.sampled_from(DOMAINS + [127]),
    two_d=st.booleans(),
    gain=st.sampled_from([1e-2, 1.0, 30.0]),
    kinds=st.sampled_from([("affine", "breakpoints", "table"), ("breakpoints",), ("table",)]),
    seed=st.integers(0, 2**32 - 1),
)
def test_one_tensor_fold_equals_the_chunked_streaming_fold(channels, k, two_d, gain, kinds, seed):
    """The whole domain as one tensor, evaluated once, gives exactly the fold of the streaming
    path (small chunks, ``fn`` evaluated again for the verification): same kind, same arrays, on
    random BatchNorms with negative and zero gamma."""
    from bnnmlir.folding import domain

    rng = np.random.default_rng(seed)
    bn = random_bn(rng, channels, two_d)
    with torch.no_grad():
        bn.weight.mul_(gain)
        bn.bias.mul_(gain)
    fn = then_clip8(per_channel(bn, ndim=4 if two_d else 2))

    def fold():
        try:
            return _requant_arrays(fold_clip8(fn, channels, -k, k, kinds=kinds))
        except FoldingError as e:
            return str(e)

    whole = fold()
    saved = domain.CHUNK_ELEMENTS, domain.KEEP_ELEMENTS
    domain.CHUNK_ELEMENTS, domain.KEEP_ELEMENTS = 7 * channels, 0  # chunks of 7 rows, re-evaluated
    try:
        streamed = fold()
    finally:
        domain.CHUNK_ELEMENTS, domain.KEEP_ELEMENTS = saved
    if isinstance(whole, str):
        assert whole == streamed
        return
    assert whole[:3] == streamed[:3] and whole[3].keys() == streamed[3].keys()
    for name, array in whole[3].items():
        np.testing.assert_array_equal(array, streamed[3][name])


def test_fold_clip8_evaluates_the_function_once_on_the_whole_domain():
    rng = np.random.default_rng(3)
    bn = random_bn(rng, 64, True)
    calls = []

    def fn(x):
        calls.append(tuple(x.shape))
        return model_clip8(per_channel(bn, ndim=4)(x))

    from bnnmlir.folding import domain

    half = domain.CHUNK_ELEMENTS // 64 // 2 - 1  # a domain of one chunk
    fold_clip8(fn, 64, -half, half)
    assert calls == [(2 * half + 1, 64)]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.integers(-128, 128), st.integers(-(2**24) - 1, 2**24 + 1)),
             min_size=1, max_size=20),
    st.integers(-(2**31) + 1, 2**31 - 1),
    st.integers(0, 62),
    st.sampled_from([max, min]),
)
def test_offset_bounds_are_exact_in_numpy_and_python(pairs, m, s, pick):
    """The offset bound of the affine fit equals the Python-integer formula at every shift."""
    from bnnmlir.folding.requant import _extreme_offset

    v, x = (np.array(a, dtype=np.int64) for a in zip(*pairs))
    expected = pick(int(vk) * 2**s - m * int(xk) for vk, xk in pairs)
    assert _extreme_offset(v, x, m, s, pick) == expected


@st.composite
def rising_runs(draw):
    """Runs of an increasing step function on [lo, hi]: lengths >= 1, jumps >= 1, values in
    [-127, 127] (the clamp floor and ceiling included or not)."""
    count = draw(st.integers(2, 40))
    lengths = draw(st.lists(st.integers(1, 60), min_size=count, max_size=count))
    jumps = draw(st.lists(st.integers(1, 3), min_size=count - 1, max_size=count - 1))
    start = draw(st.integers(-127, 127 - sum(jumps)))
    lo = draw(st.integers(-5000, 5000))
    xa = lo + np.concatenate([[0], np.cumsum(lengths)[:-1]])
    xb = xa + np.array(lengths) - 1
    v = start + np.concatenate([[0], np.cumsum(jumps)])
    return xa.astype(np.int64), xb.astype(np.int64), v.astype(np.int64)


def brute_force_slopes(xa, xb, v):
    """``(r_lo, r_hi)`` over every pair, as Fractions (the definition, quadratic)."""
    from fractions import Fraction

    below, above = [], []
    for i in range(len(v)):
        for j in range(len(v)):
            if v[i] == -127 or v[j] == 127:
                continue
            n, d = int(v[j]) + 1 - int(v[i]), int(xb[j]) - int(xa[i])
            if d > 0:
                above.append(Fraction(n, d))
            elif d < 0:
                below.append(Fraction(-n, -d))
    return (max(below) if below else None), (min(above) if above else None)


@settings(max_examples=150, deadline=None)
@given(st.lists(rising_runs(), min_size=1, max_size=6))
def test_extreme_slopes_equal_the_pairwise_extremes(channels):
    """Dinkelbach's iteration over all channels at once gives each channel's exact extreme
    ratios (as rationals; any pair attaining them)."""
    from fractions import Fraction

    from bnnmlir.folding.slopes import extreme_slopes

    for (r_lo, r_hi), runs in zip(extreme_slopes(channels), channels):
        want_lo, want_hi = brute_force_slopes(*runs)
        assert (None if r_lo is None else Fraction(*r_lo)) == want_lo
        assert (None if r_hi is None else Fraction(*r_hi)) == want_hi
