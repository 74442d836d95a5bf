"""``bnn-annotate-ranges``, ``bnn-fold-to-integer`` and ``bnn-fuse-output`` against the oracles.

Every folded or fused module is run with :func:`bnnmlir.reference.evaluate` (numpy, written from
the op docstrings) and must give EXACTLY the outputs of the module before the pass, on inputs
that cover every integer of the folded domain ``[-K, K]``. Folds evaluated with PyTorch's own
BatchNorm (``batch-norm=torch``) are compared with ``torch.nn.BatchNorm1d`` directly:
``sign`` with ``sign(0) = +1`` and ``torch.round`` + ``clamp`` for clip8.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
import pytest
import requant_cases
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from xdsl.context import Context
from xdsl.dialects import arith, func
from xdsl.dialects.builtin import (
    FunctionType,
    ModuleOp,
    TensorType,
    f32,
    i8,
    i16,
    i32,
)
from xdsl.ir import Block, Operation, Region, SSAValue
from xdsl.utils.exceptions import PassFailedException

from bnnmlir.bits import pack_bits, packed_words
from bnnmlir.dialects.bnn import BConv2dOp, BinarizeOp, Clip8Op, ThresholdOp
from bnnmlir.dialects.bnn_support import (
    ActivationOp,
    AddOp,
    AffineOp,
    BatchNormOp,
    CastOp,
    Requant8Op,
)
from bnnmlir.ir_utils import numpy_to_dense
from bnnmlir.passes.fold_to_integer import FoldNotApplied, FoldToIntegerPass
from bnnmlir.passes.fuse_output import FuseOutputPass
from bnnmlir.passes.pipelines import stage_passes
from bnnmlir.passes.value_range import IntRange, ValueRanges
from bnnmlir.reference import evaluate

F32 = np.float32

# ---------------------------------------------------------------------------------------------
# Building modules
# ---------------------------------------------------------------------------------------------


class Body:
    """Appends ops to one block and returns their results."""

    def __init__(self, arg_types: list) -> None:
        self.block = Block(arg_types=arg_types)

    @property
    def args(self) -> tuple[SSAValue, ...]:
        return tuple(self.block.args)

    def __call__(self, op: Operation) -> SSAValue:
        self.block.add_op(op)
        return op.results[0]

    def module(self, *results: SSAValue) -> ModuleOp:
        self.block.add_op(func.ReturnOp(*results))
        fn_type = FunctionType.from_lists([a.type for a in self.args], [r.type for r in results])
        return ModuleOp([func.FuncOp("f", fn_type, Region(self.block))])


def ftype(shape) -> TensorType:
    return TensorType(f32, list(shape))


def bits_type(shape) -> TensorType:
    return TensorType(i8, [*shape[:-1], packed_words(shape[-1])])


def bounded_input(body: Body, k: int) -> SSAValue:
    """``hardtanh(arg, -k, k)`` of the i32 argument: an integer of range ``[-k, k]``."""
    arg = body.args[0]
    return body(ActivationOp.hardtanh(arg, -k, k, result_type=arg.type))


def domain_input(k: int, channels: int, rng: np.random.Generator) -> np.ndarray:
    """Every integer of ``[-k-3, k+3]`` in every channel (independently shuffled), ``[D, C]``."""
    values = np.arange(-k - 3, k + 4, dtype=np.int32)
    return np.stack([rng.permutation(values) for _ in range(channels)], axis=1)


def run(module: ModuleOp, *passes) -> ModuleOp:
    folded = module.clone()
    for p in passes:
        p.apply(Context(), folded)
    folded.verify()
    return folded


def ops_of(module: ModuleOp, op_type: type[Operation]) -> list[Operation]:
    return [op for op in module.walk() if isinstance(op, op_type)]


def assert_same_outputs(before: ModuleOp, after: ModuleOp, inputs: list[np.ndarray]) -> list:
    expected = evaluate(before, inputs)
    got = evaluate(after, inputs)
    for e, g in zip(expected, got, strict=True):
        assert e.dtype == g.dtype and e.shape == g.shape
        np.testing.assert_array_equal(g, e)
    return got


# ---------------------------------------------------------------------------------------------
# BatchNorm statistics with the hard cases
# ---------------------------------------------------------------------------------------------

CHANNEL_KINDS = ("normal", "negative", "zero_gamma", "tiny", "huge", "constant", "exact_zero")


def batch_norm_stats(channels: int, k: int, rng: np.random.Generator, gain: float = 1.0):
    """``mean, var, gamma, beta`` (float32) mixing every kind of channel of ``CHANNEL_KINDS``."""
    mean = (rng.standard_normal(channels) * k / 3).astype(F32)
    var = (rng.random(channels) * 4 + 0.05).astype(F32) ** 2
    gamma = (rng.standard_normal(channels) * gain).astype(F32)
    beta = (rng.standard_normal(channels) * 2).astype(F32)
    for c in range(channels):
        kind = CHANNEL_KINDS[int(rng.integers(len(CHANNEL_KINDS)))]
        if kind == "negative":
            gamma[c] = -abs(gamma[c]) - F32(0.01)
        elif kind == "zero_gamma":
            gamma[c] = F32(0.0)
        elif kind == "tiny":
            gamma[c] = F32(rng.choice([1e-30, -1e-30, 1e-20]))
        elif kind == "huge":
            gamma[c] = F32(rng.choice([1e30, -1e30, 1e12]))
            var[c] = F32(1.0)
        elif kind == "constant":
            beta[c] = F32(rng.choice([-1.0, 1.0]) * (abs(gamma[c]) / np.sqrt(var[c]) * 3 * k + 10))
        elif kind == "exact_zero":  # x - mean is exactly 0 at an integer: sign(0) must be +1
            mean[c] = F32(rng.integers(-k, k + 1))
            var[c], gamma[c], beta[c] = F32(1), F32(1), F32(0)
    return mean, var, gamma, beta


def bn_chain_module(channels: int, k: int, stats, eps: float, terminal: str) -> ModuleOp:
    """``terminal(batch_norm(cast(hardtanh(arg, -k, k))))``, arg ``[D, C] x i32``."""
    d = 2 * k + 7
    body = Body([TensorType(i32, [d, channels])])
    x = bounded_input(body, k)
    f = body(CastOp(x, ftype([d, channels])))
    y = body(BatchNormOp(f, *stats, eps=eps, result_type=ftype([d, channels])))
    if terminal == "binarize":
        return body.module(body(BinarizeOp(y, bits_type([d, channels]))))
    return body.module(body(Clip8Op(y, TensorType(i8, [d, channels]))))


def torch_batch_norm(x: np.ndarray, k: int, stats, eps: float) -> torch.Tensor:
    """``torch.nn.BatchNorm1d`` (eval) of ``clamp(x, -k, k)`` as float32."""
    mean, var, gamma, beta = stats
    bn = torch.nn.BatchNorm1d(len(mean), eps=eps).eval()
    with torch.no_grad():
        bn.running_mean.copy_(torch.from_numpy(mean))
        bn.running_var.copy_(torch.from_numpy(var))
        bn.weight.copy_(torch.from_numpy(gamma))
        bn.bias.copy_(torch.from_numpy(beta))
        return bn(torch.from_numpy(np.clip(x, -k, k).astype(F32)))


EPS = st.sampled_from([0.0, 1e-5, 1e-3])
DOMAIN = st.sampled_from([1, 9, 45, 288, 1152, 4608])


# ---------------------------------------------------------------------------------------------
# bnn-fold-to-integer: BatchNorm + sign -> threshold
# ---------------------------------------------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(channels=st.integers(1, 11), k=DOMAIN, eps=EPS, seed=st.integers(0, 2**32 - 1))
def test_batch_norm_sign_folds_exactly(channels, k, eps, seed):
    rng = np.random.default_rng(seed)
    stats = batch_norm_stats(channels, k, rng)
    module = bn_chain_module(channels, k, stats, eps, "binarize")
    folded = run(module, FoldToIntegerPass())
    assert not ops_of(folded, BatchNormOp) and not ops_of(folded, CastOp)
    (threshold,) = ops_of(folded, ThresholdOp)
    t = np.array(threshold.thresholds.get_values())
    d = np.array(threshold.directions.get_values())
    # A switching channel rises (+1) for gamma > 0 and falls (-1) for gamma < 0.
    switching = t != -(2**31)
    assert np.all(d[switching & (stats[2] > 0)] == 1)
    assert np.all(d[switching & (stats[2] < 0)] == -1)
    assert not np.any(switching & (stats[2] == 0))
    x = domain_input(k, channels, rng)
    assert_same_outputs(module, folded, [x])


@settings(max_examples=15, deadline=None)
@given(channels=st.integers(1, 11), k=DOMAIN, eps=EPS, seed=st.integers(0, 2**32 - 1))
def test_batch_norm_sign_folded_with_torch_matches_torch(channels, k, eps, seed):
    rng = np.random.default_rng(seed)
    stats = batch_norm_stats(channels, k, rng)
    module = bn_chain_module(channels, k, stats, eps, "binarize")
    folded = run(module, FoldToIntegerPass(batch_norm="torch"))
    assert ops_of(folded, ThresholdOp) and not ops_of(folded, BatchNormOp)
    x = domain_input(k, channels, rng)
    y = torch_batch_norm(x, k, stats, eps)
    expected = pack_bits(torch.where(y >= 0, 1, -1).numpy()).view(np.int8)
    (got,) = evaluate(folded, [x])
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("terminal", ["binarize", "clip8"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_batch_norm_op_mode_folds_exactly(terminal, seed):
    """``batch-norm=op`` evaluates BatchNorm with the fold's own code
    (:func:`bnnmlir.folding.torch_fns.batch_norm_op`); the numpy reference checks the fold."""
    rng = np.random.default_rng(seed)
    k = 288
    stats = batch_norm_stats(7, k, rng, 127 / k if terminal == "clip8" else 1.0)
    module = bn_chain_module(7, k, stats, 1e-5, terminal)
    folded = run(module, FoldToIntegerPass(batch_norm="op"))
    assert not ops_of(folded, BatchNormOp)
    assert_same_outputs(module, folded, [domain_input(k, 7, rng)])


def test_a_one_ulp_divergence_of_the_fold_is_caught(monkeypatch):
    """The fold and the oracle are different code: if the fold's BatchNorm were one ulp off where
    ``y = 0`` (channel ``y = x - 2`` at ``x = 2``), the comparison with the reference fails."""
    from bnnmlir.folding import torch_fns

    stats = tuple(np.array([v], F32) for v in (2.0, 1.0, 1.0, 0.0))
    module = bn_chain_module(1, 9, stats, 0.0, "binarize")
    inputs = [domain_input(9, 1, np.random.default_rng(0))]
    assert_same_outputs(module, run(module, FoldToIntegerPass(batch_norm="op")), inputs)

    exact = torch_fns.batch_norm_op

    def one_ulp_low(*args, **kwargs):
        fn = exact(*args, **kwargs)

        def perturbed(x):
            y = fn(x)
            return torch.where(y == 0, torch.nextafter(y, torch.tensor(-1.0)), y)

        return perturbed

    monkeypatch.setattr(torch_fns, "batch_norm_op", one_ulp_low)
    diverged = run(module, FoldToIntegerPass(batch_norm="op"))
    (threshold,) = ops_of(diverged, ThresholdOp)
    assert list(threshold.thresholds.get_values()) == [3]  # the exact fold has 2
    with pytest.raises(AssertionError):
        assert_same_outputs(module, diverged, inputs)


def test_sign_directions_and_constant_channels():
    # y = x - 2 (rising), y = -(x - 2) (falling), gamma = 0 with beta >= 0 / < 0 (constants),
    # beta dominating on [-9, 9] (constant), and y = x exactly 0 at x = 0 (+1 there).
    stats = (
        np.array([2, 2, 0, 0, 0, 0], F32),
        np.array([1, 1, 1, 1, 1, 1], F32),
        np.array([1, -1, 0, 0, 1, 1], F32),
        np.array([0, 0, 0, -0.5, 100, 0], F32),
    )
    module = bn_chain_module(6, 9, stats, 0.0, "binarize")
    folded = run(module, FoldToIntegerPass())
    (t,) = ops_of(folded, ThresholdOp)
    assert list(t.thresholds.get_values()) == [2, 2, -(2**31), -(2**31), -(2**31), 0]
    assert list(t.directions.get_values()) == [1, -1, 1, -1, 1, 1]
    assert_same_outputs(module, folded, [domain_input(9, 6, np.random.default_rng(0))])


# ---------------------------------------------------------------------------------------------
# bnn-fold-to-integer: BatchNorm + clip8 -> requant8
# ---------------------------------------------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(channels=st.integers(1, 9), k=DOMAIN, eps=EPS, gain=st.sampled_from([0.1, 1.0, 20.0]),
       seed=st.integers(0, 2**32 - 1))
def test_batch_norm_clip8_folds_exactly(channels, k, eps, gain, seed):
    rng = np.random.default_rng(seed)
    stats = batch_norm_stats(channels, k, rng, gain * 127 / k)
    module = bn_chain_module(channels, k, stats, eps, "clip8")
    folded = run(module, FoldToIntegerPass())
    (requant,) = ops_of(folded, Requant8Op)
    assert requant.kind.data in ("affine", "breakpoints", "table")
    assert not ops_of(folded, BatchNormOp) and not ops_of(folded, Clip8Op)
    x = domain_input(k, channels, rng)
    assert_same_outputs(module, folded, [x])


@settings(max_examples=15, deadline=None)
@given(channels=st.integers(1, 9), k=DOMAIN, eps=EPS, gain=st.sampled_from([0.1, 1.0, 20.0]),
       seed=st.integers(0, 2**32 - 1))
def test_batch_norm_clip8_folded_with_torch_matches_torch(channels, k, eps, gain, seed):
    rng = np.random.default_rng(seed)
    stats = batch_norm_stats(channels, k, rng, gain * 127 / k)
    module = bn_chain_module(channels, k, stats, eps, "clip8")
    folded = run(module, FoldToIntegerPass(batch_norm="torch"))
    assert ops_of(folded, Requant8Op)
    x = domain_input(k, channels, rng)
    y = torch_batch_norm(x, k, stats, eps)
    expected = torch.clamp(torch.round(y), -127, 127).to(torch.int8).numpy()
    (got,) = evaluate(folded, [x])
    np.testing.assert_array_equal(got, expected)


def test_requant_kinds_affine_and_breakpoints():
    # 4x + 3 is affine; x / 2 with round half to even (0.5 -> 0, 1.5 -> 2) is not, but monotone.
    affine = bn_chain_module(2, 40, (np.zeros(2, F32), np.ones(2, F32),
                                     np.array([4, -4], F32), np.array([3, 3], F32)), 0.0, "clip8")
    half = bn_chain_module(1, 300, (np.zeros(1, F32), np.ones(1, F32), np.array([0.5], F32),
                                    np.zeros(1, F32)), 0.0, "clip8")
    for module, kind in ((affine, "affine"), (half, "breakpoints")):
        folded = run(module, FoldToIntegerPass())
        (requant,) = ops_of(folded, Requant8Op)
        assert requant.kind.data == kind
        k = 40 if module is affine else 300
        c = 2 if module is affine else 1
        assert_same_outputs(module, folded, [domain_input(k, c, np.random.default_rng(1))])


# ---------------------------------------------------------------------------------------------
# bnn-fold-to-integer: other chains, casts only, and what is not folded
# ---------------------------------------------------------------------------------------------


def chain_module(k: int, channels: int, build: Callable[[Body, SSAValue, list[int]], SSAValue],
                 terminal: str, source=i32) -> ModuleOp:
    """``terminal(build(cast(x)))`` with ``x = hardtanh(arg, -k, k)`` for i32, else the argument
    (``[2k+7, C]``; ``[256, C]`` for i8, the whole domain)."""
    d = 256 if source == i8 else 2 * k + 7
    shape = [d, channels]
    body = Body([TensorType(source, shape)])
    x = bounded_input(body, k) if source == i32 else body.args[0]
    y = build(body, body(CastOp(x, ftype(shape))), shape)
    if terminal == "binarize":
        return body.module(body(BinarizeOp(y, bits_type(shape))))
    return body.module(body(Clip8Op(y, TensorType(i8, shape))))


@settings(max_examples=20, deadline=None)
@given(channels=st.integers(1, 6), k=st.sampled_from([7, 45, 600]),
       terminal=st.sampled_from(["binarize", "clip8"]), seed=st.integers(0, 2**32 - 1))
def test_affine_and_activation_chains_fold_exactly(channels, k, terminal, seed):
    rng = np.random.default_rng(seed)
    scale = (rng.standard_normal(channels) * 127 / k * 4).astype(F32)
    bias = (rng.standard_normal(channels) * 30).astype(F32)
    slopes = (rng.random(channels) * 0.5 + 0.01).astype(F32)
    stats = batch_norm_stats(channels, k, rng, 127 / k)

    def build(body: Body, x: SSAValue, shape) -> SSAValue:
        y = body(BatchNormOp(x, *stats, eps=1e-5, result_type=ftype(shape)))
        y = body(ActivationOp.prelu(y, slopes, result_type=ftype(shape)))
        y = body(AffineOp(y, scale, bias, result_type=ftype(shape)))
        y = body(ActivationOp.hardtanh(y, -100.5, 90.25, result_type=ftype(shape)))
        return body(ActivationOp.relu(y, result_type=ftype(shape))) if seed % 2 else y

    module = chain_module(k, channels, build, terminal)
    folded = run(module, FoldToIntegerPass())
    assert not ops_of(folded, BatchNormOp) and not ops_of(folded, AffineOp)
    assert_same_outputs(module, folded, [domain_input(k, channels, rng)])


@pytest.mark.parametrize("source", [i8, i16, i32])
def test_casts_alone_fold_to_integer_ops(source):
    def identity(body, x, shape):
        return body(CastOp(x, ftype(shape)))  # f32 -> f32 copy

    for terminal in ("binarize", "clip8"):
        module = chain_module(200, 11, identity, terminal, source=source)
        folded = run(module, FoldToIntegerPass())
        assert not ops_of(folded, CastOp)
        if terminal == "clip8":
            expected = Requant8Op if source == i8 else Clip8Op
            assert len(ops_of(folded, expected)) == 1
        dtype = {8: np.int8, 16: np.int16, 32: np.int32}[source.width.data]
        info = np.iinfo(dtype)
        rng = np.random.default_rng(2)
        d = 256 if source == i8 else 407
        x = rng.integers(info.min, info.max, size=(d, 11), endpoint=True).astype(dtype)
        x[:4] = [[info.min], [info.max], [0], [-1]]
        assert_same_outputs(module, folded, [x])


def test_float_input_is_not_folded():
    body = Body([ftype([4, 3])])
    y = body(BatchNormOp(body.args[0], [0] * 3, [1] * 3, [1] * 3, [0] * 3,
                         result_type=ftype([4, 3])))
    module = body.module(body(BinarizeOp(y, bits_type([4, 3]))))
    folded = run(module, FoldToIntegerPass())
    assert str(folded) == str(module)


def test_non_monotone_chain_is_left_unchanged_with_a_warning():
    def v_shape(body, x, shape):  # |x| - 5: +1 outside (-5, 5), two switching points
        y = body(ActivationOp.prelu(x, [-1.0], result_type=ftype(shape)))
        return body(AffineOp(y, [1.0], [-5.0], result_type=ftype(shape)))

    for terminal in ("binarize", "clip8"):
        module = chain_module(200, 1, v_shape, terminal)
        if terminal == "clip8":  # not monotone: no affine nor breakpoints; 401 values: no table
            pattern = "not monotone"
        else:
            pattern = "not a single-threshold step function"
        with pytest.warns(FoldNotApplied, match=pattern):
            folded = run(module, FoldToIntegerPass())
        assert str(folded) == str(module)


def test_non_monotone_clip8_on_int8_becomes_a_table():
    def v_shape(body, x, shape):  # clip8(|x| - 5) on the whole int8 domain
        y = body(ActivationOp.prelu(x, [-1.0], result_type=ftype(shape)))
        return body(AffineOp(y, [1.0], [-5.0], result_type=ftype(shape)))

    module = chain_module(0, 1, v_shape, "clip8", source=i8)
    folded = run(module, FoldToIntegerPass())
    (requant,) = ops_of(folded, Requant8Op)
    assert requant.kind.data == "table"
    x = np.arange(-128, 128, dtype=np.int8).reshape(-1, 1)
    (got,) = assert_same_outputs(module, folded, [x])
    np.testing.assert_array_equal(got[:, 0], np.clip(np.abs(x[:, 0].astype(int)) - 5, -127, 127))


def test_unbounded_input_is_left_unchanged_with_a_warning():
    body = Body([TensorType(i32, [4, 2])])
    f = body(CastOp(body.args[0], ftype([4, 2])))
    y = body(BatchNormOp(f, [0, 0], [1, 1], [1, 1], [0, 0], result_type=ftype([4, 2])))
    module = body.module(body(Clip8Op(y, TensorType(i8, [4, 2]))))
    with pytest.warns(FoldNotApplied, match="exceeds"):
        folded = run(module, FoldToIntegerPass())
    assert str(folded) == str(module)


def test_unknown_batch_norm_mode_fails():
    stats = batch_norm_stats(1, 3, np.random.default_rng(0))
    module = bn_chain_module(1, 3, stats, 0.0, "binarize")
    with pytest.raises(PassFailedException, match="batch-norm"):
        run(module, FoldToIntegerPass(batch_norm="fused"))


def test_new_ops_keep_the_location():
    from xdsl.dialects.builtin import NameLoc, StringAttr, UnknownLoc

    stats = batch_norm_stats(2, 5, np.random.default_rng(3))
    module = bn_chain_module(2, 5, stats, 0.0, "binarize")
    (binarize,) = ops_of(module, BinarizeOp)
    binarize.location = NameLoc(StringAttr("layer3.sign"), UnknownLoc())
    folded = run(module, FoldToIntegerPass())
    (threshold,) = ops_of(folded, ThresholdOp)
    assert threshold.location == binarize.location


# ---------------------------------------------------------------------------------------------
# bnn-fuse-output and the whole "optimized" stage on binary convolutions
# ---------------------------------------------------------------------------------------------


def conv_module(n_in: int, c_in: int, c_out: int, kernel: int, pad_value: int, tail: str,
                stats=None) -> ModuleOp:
    """Packed input -> bconv2d (3x3 weights as an argument) -> ``tail``."""
    words = packed_words(c_in)
    x_t = TensorType(i8, [1, n_in, n_in, words])
    w_t = TensorType(i8, [c_out, kernel, kernel, words])
    o = n_in - kernel + 3  # padding 1 on every side
    body = Body([x_t, w_t])
    acc = body(BConv2dOp(*body.args, in_channels=c_in, padding=(1, 1, 1, 1), pad_value=pad_value,
                         result_type=TensorType(i32, [1, o, o, c_out])))
    shape = [1, o, o, c_out]
    if tail == "clip8":
        return body.module(body(Clip8Op(acc, TensorType(i8, shape))))
    f = body(CastOp(acc, ftype(shape)))
    y = body(BatchNormOp(f, *stats, eps=1e-5, result_type=ftype(shape)))
    if tail == "bn_sign":
        return body.module(body(BinarizeOp(y, bits_type(shape))))
    return body.module(body(Clip8Op(y, TensorType(i8, shape))))


def conv_inputs(module: ModuleOp, channels: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Random packed input and weights (the bits past ``channels`` 0, as packing leaves them);
    the first rows of the input are all +1 or all -1 and output channel 0 is all +1, so that
    ``+K`` and ``-K`` occur."""
    fn = next(op for op in module.walk() if isinstance(op, func.FuncOp))
    x_t, w_t = fn.function_type.inputs.data
    pm1 = [rng.choice(np.array([-1, 1], np.int8), size=(*t.get_shape()[:-1], channels))
           for t in (x_t, w_t)]
    x, w = pm1
    w[0] = 1
    x[0, :2] = 1
    x[0, -2:] = -1
    return [pack_bits(x).view(np.int8), pack_bits(w).view(np.int8)]


@settings(max_examples=12, deadline=None)
@given(c_in=st.integers(1, 20), c_out=st.integers(1, 12), pad_value=st.sampled_from([-1, 0, 1]),
       tail=st.sampled_from(["clip8", "bn_sign", "bn_clip8"]), seed=st.integers(0, 2**32 - 1))
def test_optimized_stage_on_convolutions(c_in, c_out, pad_value, tail, seed):
    rng = np.random.default_rng(seed)
    k = 9 * c_in
    stats = batch_norm_stats(c_out, k, rng, 127 / k if tail == "bn_clip8" else 1.0)
    module = conv_module(6, c_in, c_out, 3, pad_value, tail, stats)
    optimized = run(module, *stage_passes("optimized"))
    (conv,) = ops_of(optimized, BConv2dOp)
    expected_kind = {"clip8": "clip8", "bn_sign": "threshold", "bn_clip8": "requant8"}[tail]
    assert conv.output_kind == expected_kind
    assert [op.name for op in optimized.walk() if op.name.startswith("bnn.")] == ["bnn.bconv2d"]
    for i in range(3):
        inputs = conv_inputs(module, c_in, np.random.default_rng(seed + i))
        assert_same_outputs(module, optimized, inputs)


def test_fusion_needs_a_single_use():
    body = Body([TensorType(i8, [1, 4, 4, 1]), TensorType(i8, [2, 3, 3, 1])])
    acc = body(BConv2dOp(*body.args, in_channels=5, result_type=TensorType(i32, [1, 2, 2, 2])))
    q = body(Clip8Op(acc, TensorType(i8, [1, 2, 2, 2])))
    module = body.module(q, acc)
    fused = run(module, FuseOutputPass())
    assert str(fused) == str(module)


@settings(max_examples=15, deadline=None)
@given(c_in=st.integers(1, 20), c_out=st.integers(1, 12), n_in=st.integers(2, 7),
       kernel=st.sampled_from([1, 3]), pad_value=st.sampled_from([-1, 0, 1]),
       kind=st.sampled_from(requant_cases.KINDS), seed=st.integers(0, 2**32 - 1))
def test_fused_requant8_equals_bconv2d_then_requant8(c_in, c_out, n_in, kernel, pad_value, kind,
                                                     seed):
    """``bnn-fuse-output`` moves a requant8 of every kind into the convolution: the reference of
    the fused form equals bconv2d followed by bnn.requant8, on inputs reaching +-K."""
    rng = np.random.default_rng(seed)
    words = packed_words(c_in)
    o = n_in - kernel + 3
    shape = [1, o, o, c_out]
    body = Body([TensorType(i8, [1, n_in, n_in, words]), TensorType(i8, [c_out, kernel, kernel, words])])
    acc = body(BConv2dOp(*body.args, in_channels=c_in, padding=(1, 1, 1, 1), pad_value=pad_value,
                         result_type=TensorType(i32, shape)))
    rq = requant_cases.random_requant(rng, kind, c_out, kernel * kernel * c_in)
    module = body.module(body(requant_cases.build(acc, rq, TensorType(i8, shape))))
    fused = run(module, FuseOutputPass())
    (conv,) = ops_of(fused, BConv2dOp)
    assert conv.output_kind == "requant8" and not ops_of(fused, Requant8Op)
    assert conv.requant_params["kind"].data == kind
    assert ValueRanges().range_of(conv.results[0]) == IntRange(-127, 127)
    for i in range(3):
        assert_same_outputs(module, fused, conv_inputs(module, c_in, np.random.default_rng(seed + i)))


def test_requant8_of_a_shared_convolution_stays():
    body = Body([TensorType(i8, [1, 4, 4, 1]), TensorType(i8, [2, 3, 3, 1])])
    shape = [1, 2, 2, 2]
    acc = body(BConv2dOp(*body.args, in_channels=5, result_type=TensorType(i32, shape)))
    rq = requant_cases.random_requant(np.random.default_rng(0), "affine", 2, 45)
    first = body(requant_cases.build(acc, rq, TensorType(i8, shape)))
    second = body(requant_cases.build(acc, rq, TensorType(i8, shape)))
    module = body.module(first, second)
    assert str(run(module, FuseOutputPass())) == str(module)


# ---------------------------------------------------------------------------------------------
# Sign of an int8 stream: binarize(requant8(x)) / binarize(clip8(x)) -> threshold
# ---------------------------------------------------------------------------------------------


def int8_sign_module(channels: int, lo: int, hi: int, rq: dict | None) -> ModuleOp:
    """``binarize(requant8(hardtanh(arg, lo, hi)))`` (``clip8`` when ``rq`` is None), arg
    ``[D, C] x i32``: the requant8 sees exactly the integers of ``[lo, hi]``."""
    d = hi - lo + 7
    body = Body([TensorType(i32, [d, channels])])
    x = body(ActivationOp.hardtanh(body.args[0], lo, hi, result_type=body.args[0].type))
    int8 = TensorType(i8, [d, channels])
    q = body(Clip8Op(x, int8) if rq is None else requant_cases.build(x, rq, int8))
    return body.module(body(BinarizeOp(q, bits_type([d, channels]))))


@settings(max_examples=25, deadline=None)
@given(kind=st.sampled_from([*requant_cases.KINDS, "clip8"]), channels=st.integers(1, 9),
       k=st.sampled_from([9, 45, 288]), seed=st.integers(0, 2**32 - 1))
def test_sign_of_int8_stream_folds_to_threshold(kind, channels, k, seed):
    """The folded module equals binarize(requant8(x)) on every integer of a random domain (and
    beyond it, through the clamp), by the numpy reference of the IR."""
    rng = np.random.default_rng(seed)
    rq = None if kind == "clip8" else requant_cases.random_requant(rng, kind, channels, k)
    if kind == "table":  # monotone rows, so that the fold applies
        rq["table"] = [sorted(row, reverse=bool(rng.random() < 0.5)) for row in rq["table"]]
    lo, hi = sorted(int(v) for v in rng.integers(-k - 20, k + 21, size=2))
    module = int8_sign_module(channels, lo, hi, rq)
    with warnings.catch_warnings():
        warnings.simplefilter("error", FoldNotApplied)
        folded = run(module, FoldToIntegerPass())
    assert [op.name for op in folded.walk() if op.name.startswith("bnn.")] == [
        "bnn.activation", "bnn.threshold"]
    values = np.arange(lo - 3, hi + 4, dtype=np.int32)
    x = np.stack([rng.permutation(values) for _ in range(channels)], axis=1)
    assert_same_outputs(module, folded, [x])


def test_sign_of_int8_stream_with_two_users_or_sign_changes_stays():
    body = Body([TensorType(i8, [3, 2])])
    rq = {"kind": "table", "lo": -1, "table": [[-1, 0, 1], [5, -5, 5]]}
    q = body(requant_cases.build(body.args[0], rq, TensorType(i8, [3, 2])))
    shared = body.module(body(BinarizeOp(q, bits_type([3, 2]))), q)
    assert str(run(shared, FoldToIntegerPass())) == str(shared)  # the int8 stream is needed
    body = Body([TensorType(i8, [3, 2])])
    q = body(requant_cases.build(body.args[0], rq, TensorType(i8, [3, 2])))
    single = body.module(body(BinarizeOp(q, bits_type([3, 2]))))
    with pytest.warns(FoldNotApplied, match="channel 1: the sign of the table changes 2 times"):
        folded = run(single, FoldToIntegerPass())
    assert str(folded) == str(single)


def test_binary_conv_batch_norm_clip8_binary_conv_compiles_to_a_fused_threshold():
    """BinaryConv2d -> BatchNorm2d (negative and zero gamma) -> Clip8 -> BinaryConv2d: the int8
    stream feeds only the sign, so it disappears into a threshold fused into the first
    convolution, and the compiled model still equals PyTorch exactly."""
    from torch import nn

    import bnnmlir
    import bnnmlir.nn as bnn

    torch.manual_seed(3)
    bn = nn.BatchNorm2d(12)
    model = nn.Sequential(bnn.BinaryConv2d(5, 12, 3, padding=1), bn, bnn.Clip8(),
                          bnn.BinaryConv2d(12, 7, 3, padding=1)).eval()
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        bn.running_mean.copy_((torch.rand(12, generator=g) - 0.5) * 20)
        bn.running_var.copy_(torch.rand(12, generator=g) * 8 + 0.25)
        gamma = torch.randn(12, generator=g) * 4
        gamma[:3] = -gamma[:3].abs() - 0.1
        gamma[3:5] = 0.0
        bn.weight.copy_(gamma)
        bn.bias.copy_(torch.randn(12, generator=g) * 2)
    x = torch.randn(2, 5, 9, 9, generator=g)
    compiled = bnnmlir.compile(model, (x,), threads=1)
    optimized = compiled.mlir("optimized")
    assert "bnn.requant8" not in optimized and 'output = "requant8"' not in optimized
    assert "bnn.clip8" not in optimized and "bnn.threshold" not in optimized
    assert optimized.count('output = "threshold"') == 1
    (first, _) = ops_of(compiled.program.mlir_module("optimized"), BConv2dOp)
    assert set(first.directions.get_values()) == {-1, 1}  # negative gamma: direction -1
    for seed in range(3):
        probe = torch.randn(2, 5, 9, 9, generator=torch.Generator().manual_seed(seed)) * 2
        with torch.no_grad():
            assert torch.equal(compiled(probe), model(probe))


# ---------------------------------------------------------------------------------------------
# Value ranges
# ---------------------------------------------------------------------------------------------


def test_int_range_arithmetic():
    a, b = IntRange(-3, 5), IntRange(2, 2)
    assert a + b == IntRange(-1, 7)
    assert a.union(IntRange(7, 9)) == IntRange(-3, 9)
    assert IntRange(-300, 50).clamp(-127, 127) == IntRange(-127, 50)
    assert IntRange(200, 300).clamp(-127, 127) == IntRange(127, 127)
    assert IntRange.of_type(i8) == IntRange(-128, 127)
    assert IntRange.of_type(f32) is None
    with pytest.raises(ValueError):
        IntRange(1, 0)


def test_value_ranges_of_a_residual_block():
    body = Body([TensorType(i8, [1, 4, 4, 1]), TensorType(i8, [2, 3, 3, 1]),
                 TensorType(i32, [1, 4, 4, 2])])
    x, w, r = body.args
    acc = body(BConv2dOp(x, w, in_channels=7, padding=(1, 1, 1, 1),
                         result_type=TensorType(i32, [1, 4, 4, 2])))
    q = body(Clip8Op(acc, TensorType(i8, [1, 4, 4, 2])))
    s = body(AddOp(q, q, TensorType(i16, [1, 4, 4, 2])))
    wide = body(AddOp(s, r, TensorType(i32, [1, 4, 4, 2])))
    f = body(CastOp(s, ftype([1, 4, 4, 2])))
    g = body(AddOp(f, f, ftype([1, 4, 4, 2])))
    const = body(arith.ConstantOp(numpy_to_dense(np.array([[-2.0, 7.0]], F32))))
    frac = body(arith.ConstantOp(numpy_to_dense(np.array([0.5, 7.0], F32))))
    bits = body(BinarizeOp(f, bits_type([1, 4, 4, 2])))
    module = body.module(wide, g, const, frac, bits)
    ranges = ValueRanges()
    ranges.prime(module)
    assert ranges.range_of(acc) == IntRange(-63, 63)
    assert ranges.range_of(q) == IntRange(-63, 63)
    assert ranges.range_of(s) == IntRange(-126, 126)
    assert ranges.range_of(wide) == IntRange(-(2**31), 2**31 - 1)  # may wrap
    assert ranges.range_of(f) == IntRange(-126, 126)
    assert ranges.range_of(g) == IntRange(-252, 252)
    assert ranges.range_of(const) == IntRange(-2, 7)
    assert ranges.range_of(frac) is None
    assert ranges.range_of(bits) is None


def test_fold_uses_the_range_of_the_producer():
    # A clip8 stream is [-127, 127], so the threshold is exact there even if it would not be
    # beyond: with y = x - 200, every value of the stream is -1.
    body = Body([TensorType(i32, [3, 1])])
    q = body(Clip8Op(body.args[0], TensorType(i8, [3, 1])))
    f = body(CastOp(q, ftype([3, 1])))
    y = body(AffineOp(f, [1.0], [-200.0], result_type=ftype([3, 1])))
    module = body.module(body(BinarizeOp(y, bits_type([3, 1]))))
    folded = run(module, FoldToIntegerPass())
    (t,) = ops_of(folded, ThresholdOp)
    assert (list(t.thresholds.get_values()), list(t.directions.get_values())) == ([-(2**31)], [-1])
    x = np.array([[-(2**31)], [2**31 - 1], [5]], dtype=np.int32)
    assert_same_outputs(module, folded, [x])


def test_warnings_are_not_raised_for_folded_ops():
    module = bn_chain_module(3, 45, batch_norm_stats(3, 45, np.random.default_rng(5)), 1e-5,
                             "clip8")
    with warnings.catch_warnings():
        warnings.simplefilter("error", FoldNotApplied)
        folded = run(module, FoldToIntegerPass())
    assert ops_of(folded, Requant8Op) and not ops_of(folded, BatchNormOp)


# ---------------------------------------------------------------------------------------------
# Compiled: the whole pipeline after folding and fusion, on the host
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("tail", ["bn_sign", "bn_clip8", "clip8"])
def test_compiled_program_matches_the_unoptimized_reference(tail):
    from bnnmlir.compiler import compile_module

    rng = np.random.default_rng(11)
    c_in, c_out = 13, 10
    k = 9 * c_in
    stats = batch_norm_stats(c_out, k, rng, 127 / k if tail == "bn_clip8" else 1.0)
    module = conv_module(7, c_in, c_out, 3, 0, tail, stats)
    program = compile_module(module.clone(), target="host", threads=1)
    optimized = program.mlir("optimized")
    assert "bnn.batch_norm" not in optimized and "bnn.cast" not in optimized
    for i in range(3):
        inputs = conv_inputs(module, c_in, np.random.default_rng(100 + i))
        expected = evaluate(module, inputs)
        got = program(*inputs)
        for g, e in zip(got, expected, strict=True):
            np.testing.assert_array_equal(g, e)


def test_bnn_clip_net_fuses_batch_norm_clip8_into_the_binary_convolutions():
    """binary conv -> BatchNorm -> Clip8 of the example network: folded to requant8, fused into
    the convolutions, and the compiled network still equals PyTorch exactly."""
    import bnnmlir
    from bnnmlir.examples.models import bnn_clip_net

    model = bnn_clip_net(width=16, seed=1)
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(4))
    compiled = bnnmlir.compile(model, (x,), threads=2)
    optimized = compiled.mlir("optimized")
    fused = optimized.count('output = "requant8", requant = {kind = ')
    assert fused >= 4 and fused == optimized.count("bnn.bconv2d") - 1  # all but the binary head
    assert "bnn.batch_norm" not in optimized
    for seed in range(2):
        probe = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(seed))
        with torch.no_grad():
            assert torch.equal(compiled(probe), model(probe))


# ---------------------------------------------------------------------------------------------
# clip8 folds in several processes
# ---------------------------------------------------------------------------------------------


def _bireal_imported() -> ModuleOp:
    import torch

    from bnnmlir.frontend.importer import import_model
    from bnnmlir.models import bireal_net18

    return import_model(bireal_net18(), (torch.randn(1, 3, 224, 224),)).module


def test_clip8_folds_in_processes_equal_the_folds_here():
    """Bi-Real-Net-18's folds in two processes (its stem's fold, two thirds of the work, cut into
    two channel ranges) give the IR of the folds in this process."""
    from bnnmlir.ir_print import print_ir

    from bnnmlir.dialects.bnn import Clip8Op
    from bnnmlir.passes.fold_to_integer import FoldClip8

    module = _bireal_imported()
    here = run(module, FoldToIntegerPass(jobs=1))
    forked = run(module, FoldToIntegerPass(jobs=2))
    assert print_ir(forked) == print_ir(here)
    ranges = ValueRanges()
    ranges.prime(module)
    pattern = FoldClip8(ranges, "torch")
    pattern.prefetch(module, 2)  # every fold came back, the stem's two ranges joined
    assert len(pattern.prefetched) == sum(
        1 for op in module.walk() if isinstance(op, Clip8Op) and pattern._foldable(op))


def test_channel_ranges_of_an_affine_fold_join_into_the_whole_fold():
    from bnnmlir.dialects.bnn import Clip8Op
    from bnnmlir.folding import Requant, RequantKind
    from bnnmlir.passes.fold_to_integer import FoldClip8, _fold_clip8_chain, joined_affine

    module = _bireal_imported()
    ranges = ValueRanges()
    ranges.prime(module)
    pattern = FoldClip8(ranges, "torch")
    chain, lo, hi = max((found for op in module.walk() if isinstance(op, Clip8Op)
                         if (found := pattern._foldable(op)) is not None),
                        key=lambda f: (f[2] - f[1]) * f[0].channels)
    whole = _fold_clip8_chain(chain, lo, hi, "torch")
    assert whole.kind is RequantKind.AFFINE and chain.channels == 64
    parts = [_fold_clip8_chain(chain, lo, hi, "torch", range(a, b))
             for a, b in ((0, 21), (21, 64))]
    joined = joined_affine(parts)
    assert joined is not None
    for name in ("multiplier", "offset", "shift"):
        np.testing.assert_array_equal(getattr(joined, name), getattr(whole, name))
    table = Requant(RequantKind.TABLE, 0, 1, table=np.zeros((3, 2), np.int8))
    assert joined_affine([parts[0], table]) is None
