"""Translation of each ATen operator of an exported graph into ``bnn`` ops.

``CONVERTERS`` maps an ``OpOverload`` to ``convert(imp, node, *args, **kwargs)``: the arguments
are already mapped to importer values (constants, :class:`Act`, :class:`Sign`...); the result is
the value of the node. One line per construct:

* ``bnnmlir::sign``, ``where(x >= 0, 1, -1)``, ``torch.sign`` -> :class:`Sign` (see
  :mod:`bnnmlir.frontend.binary`), nothing emitted until a consumer needs it;
* ``constant_pad_nd`` of a sign -> folded into the next ``bnn.bconv2d`` (``padding``,
  ``pad_value``);
* convolution of a sign with +-1 weights -> ``bnn.binarize`` + ``bnn.bconv2d`` (two for ternary);
  of an int8-valued input with int8 integer weights and no bias -> integer ``bnn.conv2d``
  (``i8`` x ``i8`` -> ``i32``, see :mod:`bnnmlir.frontend.integer`); otherwise ``bnn.conv2d``
  (f32 weights ``[O, KH, KW, C]``);
* ``linear`` / ``addmm`` / ``mm`` of a sign with +-1 weights -> 1x1 ``bnn.bconv2d`` on
  ``[N, 1, 1, C]`` (``bnn.reshape`` around it); integer ``bnn.dense`` as for convolutions;
  otherwise ``bnn.dense``;
* bias of a binary layer -> ``bnn.affine`` (scale 1, bias b) on the cast accumulator (when that
  is bit-exact: :mod:`bnnmlir.frontend.bias`);
* ``.float()``, ``.to(dtype)``, ``.type_as``, memory-format / device copies -> nothing when exact
  on the proven value range (``convert_dtype``), else an error; ``_assert_tensor_metadata`` ->
  nothing (a check of the traced metadata);
* BatchNorm (eval) -> ``bnn.batch_norm`` (``bnn.cast`` first for an integer input);
* ``bnnmlir::clip8`` -> ``bnn.clip8`` (integer input directly; nothing for an i8 value already in
  [-127, 127]);
* ``x / d``, ``x * s``, ``x + b``, ``x - b``, ``-x`` with per-channel constants -> ``bnn.affine``
  (``x / d``: a multiplication by ``1/d`` for powers of two, else the division form, since
  ``x / d`` is not ``x * (1/d)`` in float32; "no bias" is ``-0.0``, which keeps ``-0.0``);
* ``a + b`` -> ``bnn.add`` (integers widen: i8 + i8 -> i16), ``a - b`` -> ``bnn.affine`` (-1) +
  ``bnn.add``;
* max / avg pooling -> ``bnn.pool2d`` (max of a sign: pooled before the sign, as sign is monotone);
  global average pooling (``adaptive_avg_pool2d`` to 1x1, ``mean`` over H, W) ->
  ``bnn.global_avg_pool``;
* ``relu``, ``hardtanh``, ``clamp``, ``prelu`` -> ``bnn.activation``;
* ``cat`` on channels -> ``bnn.concat``; ``view`` / ``flatten`` -> ``bnn.reshape`` (see
  :mod:`bnnmlir.frontend.layout`).
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import torch

from bnnmlir.custom_ops import CLIP8_OP, SIGN_OP
from bnnmlir.frontend import binary
from bnnmlir.frontend.builder import int_width, is_float
from bnnmlir.frontend.integer import integer_conv, integer_dense
from bnnmlir.frontend.layout import (
    channel_vector,
    plain_act,
    reshape_act,
    stored_columns,
    to_plain,
)
from bnnmlir.frontend.values import (
    FLOAT,
    INT8,
    Act,
    Approx,
    Compare,
    PaddedSign,
    Sign,
    ValueInfo,
)

aten = torch.ops.aten
CONVERTERS: dict = {}


def converts(*targets):
    def register(fn):
        for t in targets:
            CONVERTERS[t] = fn
        return fn

    return register


def out_shape(node) -> tuple[int, ...]:
    return tuple(int(d) for d in node.meta["val"].shape)


def as_act(imp, value) -> Act:
    """A run-time value as :class:`Act` (materializing a sign)."""
    if isinstance(value, Act):
        return value
    if isinstance(value, Sign):
        return binary.materialize(imp, value)
    if isinstance(value, PaddedSign):
        raise imp.error("a padded sign is only supported as the input of a convolution")
    if isinstance(value, Compare):
        raise imp.error("a comparison is only supported as the condition of torch.where "
                        "building a sign (where(x >= 0, 1, -1))")
    raise imp.error(f"expected a run-time tensor, got {type(value).__name__}")


def to_model_output(imp, value):
    if isinstance(value, torch.Tensor):
        raise imp.error("a constant model output is not supported")
    act = as_act(imp, value)
    return imp.emit.cast(to_plain(imp, act))


def aten_pair(v, default: int = 1) -> tuple[int, int]:
    """An ATen ``int[2]`` argument (an int, one or two values, or empty for ``default``)."""
    if isinstance(v, int):
        return (v, v)
    v = list(v) or [default]
    return (int(v[0]), int(v[-1])) if len(v) in (1, 2) else tuple(v)  # type: ignore[return-value]


# ---------------------------------------------------------------------------------------------
# Binarizations
# ---------------------------------------------------------------------------------------------


def sign_of(imp, act: Act, *, ternary: bool = False, approx: Approx | None = None,
            source=None) -> Sign:
    """``Sign(act)``; with ``exact=False`` an input that deviates from PyTorch's (``act.dev``) is
    recorded: the binarization can differ from PyTorch's only where ``|x| <= act.dev``."""
    if act.dev > 0:
        source = source if source is not None else imp.node.args[0]
        imp.approximate("binarization of an approximate value", act.dev, kind="binarization",
                        node=source.name)
    return Sign(act, ternary, approx)


@converts(SIGN_OP)
def bnn_sign(imp, node, x):
    if isinstance(x, Sign):
        return Sign(x.source, ternary=False)
    return sign_of(imp, as_act(imp, x))


def _zero_case(imp, node, act: Act, source_node) -> tuple[bool, Approx | None, str]:
    """``torch.sign(act)``: ``(ternary, approx, why)``. Exact unless 0 is possible; then
    ternary (``exact=True``) or, with ``exact=False``, binary with 0 running as +1."""
    nonzero, why = binary.zero_free(imp, source_node)
    if nonzero:
        return False, None, ""
    if not imp.exact:
        return False, Approx("torch.sign zero case (0 runs as +1)", 0.0, zero_as_plus=True,
                             node=source_node.name), why
    return True, None, why


@converts(aten.sign.default)
def torch_sign(imp, node, x):
    if isinstance(x, Sign):
        return x
    act = as_act(imp, x)
    if act.info.integral and act.info.lo >= -1 and act.info.hi <= 1 and \
            not act.info.excludes_zero:
        return act  # already -1/0/+1
    ternary, approx, why = _zero_case(imp, node, act, node.args[0])
    if ternary:
        imp.warn(f"torch.sign maps 0 to 0 and {why}: compiled exactly as a ternary value "
                 "(a binary layer consuming it runs twice; compile(..., exact=False) runs it "
                 "once, with sign(0) = +1)")
    return sign_of(imp, act, ternary=ternary, approx=approx)


def straight_through(imp, ste) -> Sign:
    """``hard.detach() - soft.detach() + soft`` (:mod:`bnnmlir.frontend.ste`): ``hard`` up to a
    proven deviation, carried by the :class:`Sign` for the binary layer that consumes it."""
    from bnnmlir.frontend.ste import deviation_bound

    imp.node = ste.add
    x = imp.env[ste.source]
    act = as_act(imp, x)
    info = act.info
    bound = deviation_bound(ste, imp.constant_values(), info.lo, info.hi)
    if bound is None:
        raise imp.error(
            f"straight-through estimator sign(x) - soft(x) + soft(x) with a soft function "
            f"'{ste.soft.name}' whose range is not bounded (interval arithmetic on |x| <= 16 "
            "gives a deviation above 2**-8 from sign(x)): use a bounded approximation "
            "(clamp, tanh, Bi-Real's piecewise quadratic) or bnnmlir.nn.binarize"
        )
    ternary, zero_approx, why = (False, None, "")
    if ste.hard.target == aten.sign.default:
        ternary, zero_approx, why = _zero_case(imp, ste.hard, act, ste.source)
        if ternary:
            imp.warn(f"torch.sign maps 0 to 0 and {why}: compiled exactly as a ternary value")
    idiom = "detach straight-through estimator (hard - soft + soft)"
    approx = Approx(idiom, bound.deviation, bound.domain,
                    zero_approx is not None, ste.source.name) if bound.deviation > 0 or \
        zero_approx is not None else None
    return sign_of(imp, act, ternary=ternary, approx=approx)


def _is_zero(v) -> bool:
    if isinstance(v, (int, float)):
        return v == 0
    return isinstance(v, torch.Tensor) and bool((v == 0).all())


@converts(aten.ge.Scalar, aten.ge.Tensor, aten.gt.Scalar, aten.gt.Tensor, aten.le.Scalar,
          aten.le.Tensor, aten.lt.Scalar, aten.lt.Tensor)
def compare(imp, node, x, other):
    if not _is_zero(other) or isinstance(other, (Act, Sign)):
        raise imp.error("only comparisons with 0 are supported (as the condition of a sign)")
    return Compare(x, node.target.__name__.split(".")[0])


def _uniform(v, value: float) -> bool:
    if isinstance(v, (int, float)):
        return v == value
    return isinstance(v, torch.Tensor) and v.numel() > 0 and bool((v == value).all())


@converts(aten.where.self, aten.where.ScalarSelf, aten.where.ScalarOther, aten.where.Scalar)
def where(imp, node, cond, a, b):
    if not isinstance(cond, Compare):
        raise imp.error("torch.where is supported only as a sign: where(x >= 0, 1, -1)")
    plus_if_true = _uniform(a, 1) and _uniform(b, -1)
    plus_if_false = _uniform(a, -1) and _uniform(b, 1)
    op = cond.op
    if not ((op == "ge" and plus_if_true) or (op == "lt" and plus_if_false)):
        raise imp.error(
            f"where({op}(x, 0), ...) is not the binarization x >= 0 -> +1, x < 0 -> -1 "
            "(only where(x >= 0, 1, -1) and where(x < 0, -1, 1) are supported: they map 0 to +1)"
        )
    source = cond.source
    if isinstance(source, Sign):  # sign(y) >= 0 iff y >= 0 (also for torch.sign)
        return Sign(source.source)
    return sign_of(imp, as_act(imp, source), source=node.args[0].args[0])


@converts(aten.constant_pad_nd.default)
def constant_pad(imp, node, x, pad, value=0.0):
    pad = [int(p) for p in pad] + [0] * (4 - len(pad))
    if len(pad) != 4 or any(p < 0 for p in pad) or len(out_shape(node)) != 4:
        raise imp.error("only non-negative padding of H and W of a rank-4 tensor is supported")
    left, right, top, bottom = pad
    pads = (top, bottom, left, right)
    if isinstance(x, Sign):
        if float(value) not in (-1.0, 0.0, 1.0):
            raise imp.error(f"padding a sign with {value}: bnn.bconv2d pads with -1, 0 or +1")
        return PaddedSign(x, pads, float(value))
    if isinstance(x, Act):
        raise imp.error("explicit padding is supported only on a binarized tensor feeding a "
                        "convolution (use the convolution's own padding)")
    raise imp.error("unsupported padding operand")


# ---------------------------------------------------------------------------------------------
# Convolution and linear layers
# ---------------------------------------------------------------------------------------------


@converts(aten.convolution.default)
def convolution(imp, node, x, w, b, stride, padding, dilation, transposed=False,
                output_padding=(0, 0), groups=1):
    if transposed:
        raise imp.error("transposed convolution is not supported")
    return _conv(imp, node, x, w, b, stride, padding, dilation, groups)


@converts(aten.conv2d.default)
def conv2d(imp, node, x, w, b=None, stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1):
    return _conv(imp, node, x, w, b, stride, padding, dilation, groups)


def _conv(imp, node, x, w, b, stride, padding, dilation, groups):
    if not isinstance(w, torch.Tensor) or w.dim() != 4:
        raise imp.error("only 2-D convolutions with constant weights (parameters) are supported")
    if b is not None and not isinstance(b, torch.Tensor):
        raise imp.error("the bias must be constant")
    if isinstance(padding, str):
        raise imp.error(f"padding='{padding}' is not supported: give explicit padding")
    strides, dilations = aten_pair(stride), aten_pair(dilation)
    ph, pw = aten_pair(padding, 0)
    pads = [ph, ph, pw, pw]
    bias = None if b is None else b.detach().float().numpy()
    w_ohwc = w.detach().permute(0, 2, 3, 1).numpy()
    signlike = isinstance(x, (Sign, PaddedSign))
    pm1 = binary.is_pm1(w)
    shape = out_shape(node)
    plan, warned = None, False
    if signlike and groups == 1:
        sign = x if isinstance(x, Sign) else x.sign
        plan, warned = binary.plan_binary_layer(imp, sign, w, int(np.prod(w.shape[1:])), bias,
                                                "convolution", pm1)
    if plan is not None:
        sign, pad_value = (x, 0) if isinstance(x, Sign) else (x.sign, int(x.value))
        if isinstance(x, PaddedSign):
            if any(pads) and pad_value != 0:
                raise imp.error(
                    f"padding with {pad_value} followed by the convolution's own zero padding "
                    "is not one bnn.bconv2d padding: pad once"
                )
            pads = [p + q for p, q in zip(pads, x.pads)]
        signs = plan.signs.transpose(0, 2, 3, 1)
        return binary.binary_conv(imp, sign, signs, shape, strides=strides,
                                  dilations=dilations, pads=pads, pad_value=pad_value,
                                  bias=bias, scale=plan.scale, dev=plan.bound)
    if signlike and not pm1 and not warned:
        imp.warn(f"binary input but the weights are not all +-1 (values {binary.weight_summary(w)})"
                 ": kept as a float convolution")
    elif signlike and not warned:
        imp.warn(f"binary input and +-1 weights but groups={groups}: bnn.bconv2d needs groups=1")
    if groups != 1:
        raise imp.error(f"groups={groups}: bnn.conv2d and bnn.bconv2d support groups=1 only "
                        "(split the layer into per-group convolutions and a concatenation)")
    if isinstance(x, Act) and bias is None:
        integer = integer_conv(imp, x, w_ohwc, shape, strides=strides, dilations=dilations,
                               pads=pads)
        if integer is not None:
            return integer
    if pm1 and not signlike and not isinstance(x, torch.Tensor) and not warned:
        imp.warn(f"+-1 weights but the input is {as_act(imp, x).info.kind}, not binary: kept as a "
                 "float convolution")
    if isinstance(x, PaddedSign):
        if x.value != 0:
            raise imp.error(f"padding with {x.value} before a float convolution is not supported")
        pads = [p + q for p, q in zip(pads, x.pads)]
        x = x.sign
    act = as_act(imp, x)
    value = imp.emit.conv2d(act.value, w_ohwc.astype(np.float32), bias, strides=strides,
                            dilations=dilations, padding=pads)
    return Act(value, shape, FLOAT)


@converts(aten.linear.default)
def linear(imp, node, x, w, b=None):
    return _dense(imp, node, x, w, b)


@converts(aten.addmm.default)
def addmm(imp, node, b, x, wt, *, beta=1, alpha=1):
    if beta != 1 or alpha != 1 or not isinstance(wt, torch.Tensor):
        raise imp.error("only addmm(bias, x, constant weight) with beta = alpha = 1 is supported")
    return _dense(imp, node, x, wt.t(), b)


@converts(aten.mm.default)
def mm(imp, node, x, wt):
    if not isinstance(wt, torch.Tensor):
        raise imp.error("only a product with a constant weight matrix is supported")
    return _dense(imp, node, x, wt.t(), None)


def _dense(imp, node, x, w, b):
    if not isinstance(w, torch.Tensor) or w.dim() != 2:
        raise imp.error("only linear layers with constant 2-D weights are supported")
    if b is not None and not isinstance(b, torch.Tensor):
        raise imp.error("the bias must be constant")
    shape = out_shape(node)
    if len(shape) != 2:
        raise imp.error("a linear layer needs a 2-D input [N, C] (flatten first)")
    bias = None if b is None else b.detach().float().numpy()
    pm1 = binary.is_pm1(w)
    plan, warned = None, False
    if isinstance(x, Sign):
        plan, warned = binary.plan_binary_layer(imp, x, w, int(w.shape[1]), bias, "linear layer",
                                                pm1)
    if plan is not None:
        src = x.source
        n, c = src.shape
        cols = stored_columns(src, plan.signs)
        src4 = Act(imp.emit.reshape(src.value, (n, 1, 1, c)), (n, c, 1, 1), src.info)
        acc = binary.binary_conv(
            imp, replace(x, source=src4),
            cols.reshape(cols.shape[0], 1, 1, c).astype(np.int8),
            (n, cols.shape[0], 1, 1), strides=(1, 1), dilations=(1, 1), pads=(0, 0, 0, 0),
            pad_value=0, bias=bias, scale=plan.scale, dev=plan.bound,
        )
        return Act(imp.emit.reshape(acc.value, shape), shape, acc.info, dev=acc.dev)
    if isinstance(x, Sign) and not warned:
        imp.warn(f"binary input but the weights are not all +-1 (values {binary.weight_summary(w)})"
                 ": kept as a float linear layer")
    act = as_act(imp, x)
    cols = stored_columns(act, w.detach().float().numpy())
    if isinstance(x, Act) and bias is None:
        integer = integer_dense(imp, act, cols, shape)
        if integer is not None:
            return integer
    if pm1 and not isinstance(x, Sign) and not warned:
        imp.warn(f"+-1 weights but the input is {act.info.kind}, not binary: kept as a "
                 "float linear layer")
    return Act(imp.emit.dense(act.value, cols, bias), shape, FLOAT)


# ---------------------------------------------------------------------------------------------
# Normalization, clipping, per-channel arithmetic
# ---------------------------------------------------------------------------------------------


def _channel_act(imp, x) -> Act:
    act = as_act(imp, x)
    if len(act.shape) not in (2, 4):
        raise imp.error(f"per-channel operation on a rank-{len(act.shape)} tensor: only [N, C] "
                        "and [N, C, H, W] are supported")
    return act


@converts(aten._native_batch_norm_legit_no_training.default)
def batch_norm_eval(imp, node, x, w, b, mean, var, momentum, eps):
    return (_batch_norm(imp, x, w, b, mean, var, eps), None, None)


@converts(aten.batch_norm.default)
def batch_norm(imp, node, x, w, b, mean, var, training, momentum, eps, cudnn_enabled=False):
    if training:
        raise imp.error("BatchNorm in training mode (batch statistics): call model.eval()")
    return _batch_norm(imp, x, w, b, mean, var, eps)


def _check_batch_norm_statistics(imp, mean, var, gamma, beta, eps) -> None:
    """Refuse a BatchNorm that can output inf/NaN for finite inputs: ``var + eps <= 0`` (in
    float32, as PyTorch adds them), a non-finite parameter, or a scale
    ``gamma / sqrt(var + eps)`` (or ``mean * scale``) that overflows float32 (then
    ``(x - mean) * scale`` is NaN at ``x = mean``). NaN has no int8 or binary form."""
    stats = [t.detach().float().reshape(-1) for t in (mean, var, gamma, beta)]
    denominator = stats[1] + torch.tensor(float(eps), dtype=torch.float32)
    bad = ~(denominator > 0)
    for t in stats:
        bad |= ~torch.isfinite(t)
    scale = stats[2] / torch.sqrt(denominator.clamp_min(torch.finfo(torch.float32).tiny))
    bad |= ~torch.isfinite(scale) | ~torch.isfinite(stats[0] * scale)
    if bool(bad.any()):
        channels = bad.nonzero().flatten().tolist()
        shown = ", ".join(str(ch) for ch in channels[:8]) + (", ..." if len(channels) > 8 else "")
        raise imp.error(
            f"BatchNorm channels [{shown}] have running_var + eps <= 0, non-finite statistics or a "
            "scale gamma / sqrt(var + eps) beyond float32: their outputs can be inf/NaN, which "
            "no integer or binary layer represents"
        )


def _batch_norm(imp, x, w, b, mean, var, eps):
    act = _channel_act(imp, x)
    if not isinstance(mean, torch.Tensor) or not isinstance(var, torch.Tensor):
        raise imp.error("BatchNorm without running statistics (track_running_stats=False)")
    c = mean.numel()
    gamma = torch.ones(c) if w is None else w
    beta = torch.zeros(c) if b is None else b
    _check_batch_norm_statistics(imp, mean, var, gamma, beta, eps)
    params = [channel_vector(imp, act, t.reshape((1, c) + (1,) * (len(act.shape) - 2)), name)
              for t, name in ((mean, "mean"), (var, "var"), (gamma, "weight"), (beta, "bias"))]
    value = imp.emit.batch_norm(act.value, *[p.tolist() for p in params], float(eps))
    return Act(value, act.shape, FLOAT, act.flat)


@converts(CLIP8_OP)
def clip8(imp, node, x):
    act = as_act(imp, x)
    info = act.info
    if info.integral and math.isfinite(info.lo) and math.isfinite(info.hi):
        out = ValueInfo.integer(min(max(info.lo, -127), 127), max(min(info.hi, 127), -127))
    else:
        out = INT8
    width = int_width(act.value)
    if width == 8 and info.lo >= -127:
        return Act(act.value, act.shape, out, act.flat)
    value = act.value if width in (16, 32, None) else imp.emit.cast(act.value)
    return Act(imp.emit.clip8(value), act.shape, out, act.flat)


def _affine(imp, act: Act, scale: np.ndarray, bias: np.ndarray) -> Act:
    info = FLOAT
    s, t = scale.astype(np.float64), bias.astype(np.float64)
    if act.info.bounded and np.all(s == np.round(s)) and np.all(t == np.round(t)):
        ends = np.concatenate([s * act.info.lo + t, s * act.info.hi + t])
        info = ValueInfo.integer(float(ends.min()), float(ends.max()))
    value = imp.emit.affine(act.value, scale.tolist(), bias.tolist())
    return Act(value, act.shape, info, act.flat)


def _no_bias(vec: np.ndarray) -> np.ndarray:
    """A bias that adds nothing: ``-0.0`` (``v + -0.0 == v`` also for ``v = -0.0``)."""
    return np.full(np.shape(vec), -0.0, dtype=np.float32)


def _const(v) -> bool:
    return isinstance(v, (torch.Tensor, int, float))


@converts(aten.add.Tensor, aten.add.Scalar)
def add(imp, node, a, b, alpha=1):
    if alpha != 1:
        raise imp.error("add with alpha != 1 is not supported")
    if _const(a):
        a, b = b, a
    if _const(b):
        act = _channel_act(imp, a)
        vec = channel_vector(imp, act, b, "added constant")
        return _affine(imp, act, np.ones_like(vec), vec)
    return _add_acts(imp, node, as_act(imp, a), as_act(imp, b))


def _add_acts(imp, node, a: Act, b: Act) -> Act:
    if a.shape != b.shape:
        raise imp.error(f"adding shapes {list(a.shape)} and {list(b.shape)}: broadcasting of "
                        "run-time tensors is not supported")
    if a.flat != b.flat:
        a, b = plain_act(imp, a), plain_act(imp, b)
    value = imp.emit.add(a.value, b.value)
    return Act(value, a.shape, a.info.plus(b.info), a.flat)


@converts(aten.sub.Tensor, aten.sub.Scalar)
def sub(imp, node, a, b, alpha=1):
    if alpha != 1:
        raise imp.error("sub with alpha != 1 is not supported")
    if _const(b):
        act = _channel_act(imp, a)
        vec = channel_vector(imp, act, b, "subtracted constant")
        return _affine(imp, act, np.ones_like(vec), -vec)
    if _const(a):
        raise imp.error("constant minus tensor is not supported")
    bn = _channel_act(imp, b)
    c = bn.stored_shape[-1]
    negated = _affine(imp, bn, -np.ones(c, np.float32), _no_bias(np.zeros(c, np.float32)))
    return _add_acts(imp, node, as_act(imp, a), negated)


@converts(aten.neg.default)
def neg(imp, node, x):
    act = _channel_act(imp, x)
    c = act.stored_shape[-1]
    return _affine(imp, act, -np.ones(c, np.float32), _no_bias(np.zeros(c, np.float32)))


@converts(aten.mul.Tensor, aten.mul.Scalar)
def mul(imp, node, a, b):
    if _const(a):
        a, b = b, a
    if not _const(b):
        return _runtime_product(imp, as_act(imp, a), as_act(imp, b))
    act = _channel_act(imp, a)
    vec = channel_vector(imp, act, b, "factor")
    return _affine(imp, act, vec, _no_bias(vec))


def _runtime_product(imp, a: Act, b: Act) -> Act:
    """``a * b`` of two run-time tensors (``bnn.mul``): one broadcasts to the other over size-1
    dimensions of the same rank (XNOR-Net's activation scale ``[N, 1, H, W]`` over channels).
    The float32 product is commutative, so the broadcast operand goes second."""
    if not (len(a.shape) == len(b.shape) and (
            all(y in (x, 1) for x, y in zip(a.shape, b.shape))
            or all(x in (y, 1) for x, y in zip(a.shape, b.shape)))):
        raise imp.error(f"multiplying shapes {list(a.shape)} and {list(b.shape)}: only a "
                        "broadcast over size-1 dimensions of one operand is supported")
    if a.shape != b.shape and all(x in (y, 1) for x, y in zip(a.shape, b.shape)):
        a, b = b, a
    a, b = plain_act(imp, a), plain_act(imp, b)
    return Act(imp.emit.mul(a.value, b.value), a.shape, FLOAT)


@converts(aten.abs.default)
def absolute(imp, node, x):
    """``|x|`` = ``prelu(x, -1) + 0.0``: exact (``-1 * x`` is exact; adding ``+0.0`` turns the
    ``-0.0`` that PReLU keeps into PyTorch's ``+0.0`` and changes no other value)."""
    act = _channel_act(imp, x)
    c = act.stored_shape[-1]
    value = imp.emit.prelu(act.value, [-1.0] * c)
    value = imp.emit.affine(value, [1.0] * c, [0.0] * c)
    return Act(value, act.shape, FLOAT, act.flat)


def _power_of_two(v: float) -> bool:
    return v != 0 and math.isfinite(v) and math.frexp(abs(v))[0] == 0.5


@converts(aten.div.Tensor, aten.div.Scalar)
def div(imp, node, a, b):
    if not _const(b):
        raise imp.error("division by a run-time tensor is not supported")
    act = _channel_act(imp, a)
    vec = channel_vector(imp, act, b, "divisor")
    if all(_power_of_two(float(d)) for d in vec):  # x / 2**k is exactly x * 2**-k
        return _affine(imp, act, (1.0 / vec.astype(np.float64)).astype(np.float32), _no_bias(vec))
    value = imp.emit.divide(act.value, vec.tolist(), _no_bias(vec).tolist())
    return Act(value, act.shape, FLOAT, act.flat)


# ---------------------------------------------------------------------------------------------
# Pooling
# ---------------------------------------------------------------------------------------------


def _pool_source(imp, x) -> Act:
    act = as_act(imp, x)
    if len(act.shape) != 4:
        raise imp.error("pooling needs a rank-4 [N, C, H, W] input")
    return act


@converts(aten.max_pool2d.default)
def max_pool2d(imp, node, x, kernel_size, stride=(), padding=0, dilation=1, ceil_mode=False):
    if isinstance(x, Sign):  # sign is monotone: max(sign(y)) = sign(max(y))
        return replace(x, source=max_pool2d(imp, node, x.source, kernel_size, stride,
                                            padding, dilation, ceil_mode))
    act = _pool_source(imp, x)
    kernel = aten_pair(kernel_size)
    strides = aten_pair(stride) if stride else kernel
    ph, pw = aten_pair(padding, 0)
    if aten_pair(dilation) != (1, 1):
        raise imp.error("max pooling with dilation is not supported")
    shape = out_shape(node)
    value = imp.emit.pool2d(act.value, "max", kernel, strides, [ph, ph, pw, pw])
    _check_pool_shape(imp, value, shape, ceil_mode)
    return Act(value, shape, act.info)


@converts(aten.max_pool2d_with_indices.default)
def max_pool2d_with_indices(imp, node, *args, **kwargs):
    return (max_pool2d(imp, node, *args, **kwargs), None)


def _check_pool_shape(imp, value, shape, ceil_mode):
    from bnnmlir.frontend.values import stored_shape
    from bnnmlir.ir_utils import value_shape

    if value_shape(value) != stored_shape(shape):
        raise imp.error(f"pooling with ceil_mode={ceil_mode} gives {list(shape)}; bnn.pool2d "
                        "computes the floor-mode size: use ceil_mode=False")


@converts(aten.avg_pool2d.default)
def avg_pool2d(imp, node, x, kernel_size, stride=(), padding=0, ceil_mode=False,
               count_include_pad=True, divisor_override=None):
    if divisor_override is not None:
        raise imp.error("avg_pool2d with divisor_override is not supported")
    act = _pool_source(imp, x)
    kernel = aten_pair(kernel_size)
    strides = aten_pair(stride) if stride else kernel
    ph, pw = aten_pair(padding, 0)
    shape = out_shape(node)
    value = imp.emit.pool2d(act.value, "avg", kernel, strides, [ph, ph, pw, pw],
                            count_include_pad=bool(count_include_pad) and (ph or pw) > 0)
    _check_pool_shape(imp, value, shape, ceil_mode)
    return Act(value, shape, FLOAT)


def _global_avg(imp, node, x) -> Act:
    act = _pool_source(imp, x)
    n, c = act.shape[:2]
    value = imp.emit.global_avg_pool(act.value)
    shape = out_shape(node)
    if len(shape) == 4:
        value = imp.emit.reshape(value, (n, 1, 1, c))
    return Act(value, shape, FLOAT)


@converts(aten.adaptive_avg_pool2d.default, aten._adaptive_avg_pool2d.default)
def adaptive_avg_pool2d(imp, node, x, output_size):
    act = _pool_source(imp, as_act(imp, x))
    size = aten_pair(output_size)
    if size == (1, 1):
        return _global_avg(imp, node, act)
    if size == tuple(act.shape[2:]):
        return act
    raise imp.error(f"adaptive average pooling to {list(size)} from {list(act.shape[2:])}: only "
                    "global pooling (output 1x1) is supported")


@converts(aten.mean.dim)
def mean(imp, node, x, dims, keepdim=False, dtype=None):
    if [d % 4 for d in dims] == [1] and keepdim:
        return _channel_mean(imp, as_act(imp, x))
    act = _pool_source(imp, x)
    if sorted(d % 4 for d in dims) != [2, 3]:
        raise imp.error("mean is supported only over the spatial dimensions (global pooling) "
                        "or over the channels with keepdim=True")
    return _global_avg(imp, node, act)


def _channel_mean(imp, act: Act) -> Act:
    """``x.mean(1, keepdim=True)`` of ``[N, C, H, W]``: a 1x1 float convolution with weights 1
    (the sum; float: PyTorch sums in its own order, within the float tolerance) divided by C."""
    if len(act.shape) != 4:
        raise imp.error(f"mean over the channels of a rank-{len(act.shape)} tensor: only "
                        "[N, C, H, W] is supported")
    n, c, h, w = act.shape
    act = as_act(imp, act)
    total = imp.emit.conv2d(act.value, np.ones((1, 1, 1, c), np.float32), None, strides=(1, 1),
                            dilations=(1, 1), padding=[0, 0, 0, 0])
    value = imp.emit.divide(total, [float(c)], [-0.0])
    return Act(value, (n, 1, h, w), FLOAT)


# ---------------------------------------------------------------------------------------------
# Activations
# ---------------------------------------------------------------------------------------------


@converts(aten.relu.default)
def relu(imp, node, x):
    act = as_act(imp, x)
    i = act.info
    info = ValueInfo(i.integral, max(i.lo, 0.0), max(i.hi, 0.0))
    return Act(imp.emit.relu(act.value), act.shape, info, act.flat)


@converts(aten.hardtanh.default)
def hardtanh(imp, node, x, min_val=-1.0, max_val=1.0):
    act = as_act(imp, x)
    value = imp.emit.hardtanh(act.value, float(min_val), float(max_val))
    return Act(value, act.shape, act.info.clamp(float(min_val), float(max_val)), act.flat)


@converts(aten.clamp.default)
def clamp(imp, node, x, min=None, max=None):
    if min is not None and max is not None:
        return hardtanh(imp, node, x, min, max)
    if min == 0 and max is None:
        return relu(imp, node, x)
    raise imp.error("clamp is supported with both bounds (hardtanh) or min=0 alone (relu)")


@converts(aten.prelu.default)
def prelu(imp, node, x, weight):
    act = _channel_act(imp, x)
    if not isinstance(weight, torch.Tensor):
        raise imp.error("PReLU slopes must be constant")
    c = act.shape[1]
    w = weight.reshape(-1)
    slopes = w.expand(c) if w.numel() == 1 else w
    vec = channel_vector(imp, act, slopes.reshape((1, c) + (1,) * (len(act.shape) - 2)), "slopes")
    return Act(imp.emit.prelu(act.value, vec.tolist()), act.shape, FLOAT, act.flat)


# ---------------------------------------------------------------------------------------------
# Data movement
# ---------------------------------------------------------------------------------------------


@converts(aten.view.default, aten.reshape.default, aten._unsafe_view.default,
          aten.flatten.using_ints, aten.squeeze.dims, aten.squeeze.dim, aten.unsqueeze.default)
def view(imp, node, x, *rest):
    shape = out_shape(node)
    if isinstance(x, Sign):
        return replace(x, source=reshape_act(imp, x.source, shape))
    return reshape_act(imp, as_act(imp, x), shape)


@converts(aten.clone.default, aten.alias.default, aten.detach.default, aten.contiguous.default,
          aten.dropout.default)
def identity(imp, node, x, *rest, **kwargs):
    return x


# ---------------------------------------------------------------------------------------------
# dtype conversions and metadata checks
# ---------------------------------------------------------------------------------------------


def node_dtype(arg) -> torch.dtype | None:
    """PyTorch dtype of a graph node's tensor value (``None`` for non-tensors)."""
    val = arg.meta.get("val") if isinstance(arg, torch.fx.Node) else None
    return val.dtype if isinstance(val, torch.Tensor) else None


#: Exactly representable integers of the floating dtypes: ``|x| <= 2**(significand bits)``.
_EXACT_INTEGERS = {torch.float64: 2**53, torch.float32: 2**24, torch.float16: 2**11,
                   torch.bfloat16: 2**8}


CONVERSIONS = (aten._to_copy.default, aten.to.dtype, aten.to.dtype_layout, aten.to.device,
               aten.to.other, aten.type_as.default)


@converts(*CONVERSIONS)
def convert_dtype(imp, node, x, *args, **kwargs):
    """``.float()``, ``.to(dtype)``, ``.type_as(t)``, ``.to(memory_format=...)``, ``.to(device)``.

    The importer holds values, not dtypes: a conversion is the identity on them when it is exact,
    i.e. when every value of ``x`` is a number of the target dtype:

    * same dtype (a copy for another memory format, layout or the CPU device): always;
    * integer -> float32 (or wider float): integers of magnitude ``<= 2**24`` (the value range
      proves it); float32 -> float64: always; float64 -> float32: a float64 tensor comes from a
      conversion (see the operand check of the importer), so it holds float32 values, or
      integers, exact in float32 when the value range stays within ``2**24``;
    * float -> integer dtype: PyTorch truncates toward zero (and is undefined outside the
      target's range); exact as the identity when the value range proves integers within the
      range (a Clip8 output, a sign, an integer layer); there is no truncating ``bnn`` op, so
      anything else is rejected;
    * float32 -> float16 / bfloat16 rounds: only integer values the narrow type holds.
    """
    src, dst = node_dtype(node.args[0]), node_dtype(node)
    if isinstance(x, Compare):
        raise imp.error(f"converting a comparison (bool tensor) to {dst} is not supported; a "
                        "binarization is written where(x >= 0, 1, -1) or bnnmlir.nn.binarize")
    if isinstance(x, PaddedSign):
        raise imp.error("a padded sign is only supported as the input of a convolution")
    if src is None or dst is None or src == dst:
        return x
    if dst == torch.bool or dst.is_complex or src.is_complex:
        raise imp.error(f"conversion from {src} to {dst} is not supported")
    integral, lo, hi = x.info.integral, x.info.lo, x.info.hi
    if dst.is_floating_point:
        if src.is_floating_point and _EXACT_INTEGERS[dst] >= _EXACT_INTEGERS[src]:
            return x  # widening: every value is kept
        limit = _EXACT_INTEGERS[dst]
        if src == torch.float64 and dst == torch.float32 and not integral:
            return x  # a float64 tensor of non-integers holds float32 values (see the docstring)
        if integral and -limit <= lo and hi <= limit:
            return x
        what = "integers" if not src.is_floating_point else "values"
        raise imp.error(
            f"conversion from {src} to {dst} rounds {what} that {dst} cannot hold, and the value "
            f"range of the operand ({x.info.kind}) is not proven within +-{limit}"
        )
    bounds = torch.iinfo(dst)
    if integral and bounds.min <= lo and hi <= bounds.max:
        return x
    if src.is_floating_point:
        raise imp.error(
            f"conversion from {src} to {dst} truncates toward zero (undefined outside "
            f"[{bounds.min}, {bounds.max}]); the operand ({x.info.kind}) is not proven to hold "
            "integers in that range and the bnn op set has no truncating conversion"
        )
    raise imp.error(f"conversion from {src} to {dst} wraps values outside [{bounds.min}, "
                    f"{bounds.max}]; the operand ({x.info.kind}) is not proven within it")


@converts(aten._assert_tensor_metadata.default)
def assert_tensor_metadata(imp, node, x, size=None, stride=None, dtype=None, **kwargs):
    """A run-time check of the traced metadata: nothing to compute once verified on the graph."""
    if node.users:
        raise imp.error("_assert_tensor_metadata with users: expected a pure check")
    actual = node_dtype(node.args[0])
    if dtype is not None and actual is not None and dtype != actual:
        raise imp.error(f"the model asserts dtype {dtype} on a tensor of dtype {actual}")


DTYPE_AGNOSTIC = {
    *CONVERSIONS, aten._assert_tensor_metadata.default,
    aten.view.default, aten.reshape.default, aten._unsafe_view.default, aten.flatten.using_ints,
    aten.squeeze.dims, aten.squeeze.dim, aten.unsqueeze.default,
    aten.clone.default, aten.alias.default, aten.detach.default, aten.contiguous.default,
}
"""Ops accepting run-time operands of any dtype: conversions and value-preserving data movement.
Every other op needs float32 operands (or the bool of a comparison): integer and float64
arithmetic (wrapping, other roundings) is not what the compiled float32 / exact-integer program
computes."""


@converts(aten.cat.default)
def cat(imp, node, tensors, dim=0):
    shape = out_shape(node)
    rank = len(shape)
    if rank not in (2, 4) or dim % rank != 1:
        raise imp.error("concatenation is supported along the channel dimension (dim=1) of "
                        "[N, C] or [N, C, H, W] tensors")
    if any(isinstance(t, torch.Tensor) for t in tensors):
        raise imp.error("concatenating a constant tensor is not supported")
    if all(isinstance(t, Sign) for t in tensors) and \
            len({(t.ternary, t.approx) for t in tensors}) == 1:
        sources = _concat(imp, [t.source for t in tensors], shape)
        return replace(tensors[0], source=sources)
    return _concat(imp, [as_act(imp, t) for t in tensors], shape)


def _concat(imp, acts: list[Act], shape) -> Act:
    acts = [plain_act(imp, a) for a in acts]
    values = [a.value for a in acts]
    if len({str(v.type.get_element_type()) for v in values}) > 1:
        values = [imp.emit.cast(v) for v in values]
    info = acts[0].info
    for a in acts[1:]:
        i = a.info
        info = ValueInfo(info.integral and i.integral, min(info.lo, i.lo), max(info.hi, i.hi),
                         info.nonzero and i.nonzero) if info.integral and i.integral else FLOAT
    return Act(imp.emit.concat(values), shape, info)


__all__ = ["CONVERTERS", "DTYPE_AGNOSTIC", "as_act", "is_float", "node_dtype", "to_model_output"]
