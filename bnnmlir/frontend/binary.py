"""Binarizations and binary layers.

Recognized binarizations (all yield a :class:`~bnnmlir.frontend.values.Sign`):

* ``bnnmlir::sign(x)`` (``x >= 0`` -> +1);
* ``torch.where(x >= 0, 1, -1)`` and ``torch.where(x < 0, -1, 1)`` (also as inlined by
  ``torch.export`` from a custom STE ``autograd.Function``);
* ``torch.sign(x)``: +1/-1 like the above only where ``x != 0``; it maps 0 to 0. It is a
  binarization when no element of ``x`` can be 0: proven from the value range (an integer range
  excluding 0, or an odd number of +-1 products), or, for a per-channel float function ``f`` of an
  integer tensor (e.g. BatchNorm of a binary convolution), by evaluating ``f`` on every integer of
  the domain (:func:`bnnmlir.folding.zero_points`). Otherwise it stays ternary and is compiled
  exactly (see :func:`binary_conv`).

Binary convolution of a :class:`Sign` with +-1 weights (``bnn.bconv2d``):

* binary input: ``bnn.binarize(x)`` then ``bnn.bconv2d`` (result ``i32`` in ``[-K, K]``);
* a bias: ``bnn.affine`` (scale 1) adds it to the exact sum in float32; when that is bit-exact
  with PyTorch (which adds it inside its float sum) is decided by :mod:`bnnmlir.frontend.bias`;
* ternary input ``t = torch.sign(y)``: with ``b`` the ``y >= 0`` binarization,
  ``t = (b(y) - b(-y)) / 2`` for every real ``y`` (``y = 0`` gives ``(1 - 1)/2``), so
  ``conv(t, w) = (bconv(b(y), w) + bconv(b(-y), -w)) / 2``: two binary convolutions (the second
  pads with ``-pad_value``), an exact integer ``bnn.add``, then ``* 0.5`` in f32 (exact: the sum
  is even and below ``2**24``). ``-y`` is ``bnn.affine`` with scale -1 (``+-0`` both give +1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from bnnmlir.folding import FoldingError, zero_points
from bnnmlir.frontend import scaled_weights
from bnnmlir.frontend.bias import record as record_bias
from bnnmlir.frontend.values import Act, Sign, ValueInfo
from bnnmlir.ir_utils import value_shape

#: Largest ``(hi - lo + 1) * channels`` evaluated to prove that ``torch.sign`` never sees 0.
MAX_PROOF_EVALUATIONS = 1 << 26


def is_pm1(t) -> bool:
    """Whether ``t`` is a non-empty tensor of +1 and -1 only (``|t| == 1``, one pass fewer)."""
    return isinstance(t, torch.Tensor) and t.numel() > 0 and bool(t.detach().abs().eq(1).all())


def weight_summary(t: torch.Tensor) -> str:
    vals = torch.unique(t.detach().float())
    shown = ", ".join(f"{v:g}" for v in vals[:4].tolist())
    return f"{{{shown}{', ...' if vals.numel() > 4 else ''}}}"


# ---------------------------------------------------------------------------------------------
# torch.sign: can the input be zero?
# ---------------------------------------------------------------------------------------------

_PER_CHANNEL_REPLAY = {
    torch.ops.aten._native_batch_norm_legit_no_training.default,
    torch.ops.aten.batch_norm.default,
    torch.ops.aten.add.Tensor,
    torch.ops.aten.sub.Tensor,
    torch.ops.aten.mul.Tensor,
    torch.ops.aten.div.Tensor,
    torch.ops.aten.neg.default,
    torch.ops.aten.relu.default,
    torch.ops.aten.hardtanh.default,
    torch.ops.aten.prelu.default,
}


def _replay_chain(imp, node: torch.fx.Node):
    """``(root Act, [nodes])``: ``node`` as a chain of per-channel float ops of one integer tensor.

    Walks back through the ops of ``_PER_CHANNEL_REPLAY`` (and ``getitem``) with exactly one
    run-time operand until a bounded integer value; ``None`` if there is none.
    """
    import operator

    chain = []
    while True:
        value = imp.env.get(node)
        if isinstance(value, Act) and value.info.bounded:
            return value, node, chain
        if node.op != "call_function" or not (
            node.target in _PER_CHANNEL_REPLAY or node.target is operator.getitem
        ):
            return None
        dynamic = [a for a in node.all_input_nodes if not isinstance(imp.env.get(a), torch.Tensor)]
        if len(dynamic) != 1:
            return None
        chain.append(node)
        node = dynamic[0]


def zero_free(imp, node: torch.fx.Node) -> tuple[bool, str]:
    """Whether ``node``'s value is never 0, and why (for the warning when it may be)."""
    value = imp.env[node]
    if isinstance(value, Act) and value.info.excludes_zero:
        return True, ""
    found = _replay_chain(imp, node)
    if found is None:
        kind = value.info.kind if isinstance(value, Act) else "unknown"
        return False, f"its input ({kind}) is not proven non-zero"
    root, root_node, chain = found
    if not chain:
        return False, f"its input is {root.info.kind}, which contains 0"
    lo, hi = int(root.info.lo), int(root.info.hi)
    channels = root.shape[1] if len(root.shape) >= 2 else 1
    if (hi - lo + 1) * channels > MAX_PROOF_EVALUATIONS:
        return False, f"the integer domain [{lo}, {hi}] x {channels} channels is too large to check"
    rank = len(root.shape)

    def fn(x: torch.Tensor) -> torch.Tensor:
        env = {root_node: x.reshape((x.shape[0], x.shape[1]) + (1,) * (rank - 2))}
        for n in reversed(chain):
            args = _substitute(imp, env, n.args)
            kwargs = {k: _substitute(imp, env, v) for k, v in n.kwargs.items()}
            env[n] = n.target(*args, **kwargs)
        return env[chain[0]].reshape(x.shape)

    try:
        zeros = zero_points(fn, channels, lo, hi)
    except (FoldingError, RuntimeError) as e:
        return False, f"the float function of its integer input could not be evaluated ({e})"
    if zeros.size:
        x, c = (int(v) for v in zeros[0])
        return False, (f"it is 0 for an integer input {x} in channel {c} "
                       f"({len(zeros)} such points on [{lo}, {hi}])")
    return True, ""


def _substitute(imp, env, arg):
    if isinstance(arg, torch.fx.Node):
        return env[arg] if arg in env else imp.env[arg]
    if isinstance(arg, (list, tuple)):
        return type(arg)(_substitute(imp, env, a) for a in arg)
    return arg


# ---------------------------------------------------------------------------------------------
# Binary convolution
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BinaryPlan:
    """A layer compiled as ``scale[o] * bconv(sign(x), signs) + bias``; ``scale`` ``None``: 1.
    ``bound``: its proven ``|compiled - PyTorch|`` (0: bit-exact)."""

    signs: np.ndarray
    scale: np.ndarray | None
    bound: float


def plan_binary_layer(imp, sign: Sign, w: torch.Tensor, k: int, bias, what: str,
                      pm1: bool | None = None):
    """Whether the layer ``sign (*) w`` (fan-in ``k``) runs as a binary kernel: ``(plan, warned)``.

    +-1 weights on an exact sign: bit-exact. Scaled weights ``alpha * sign(W)``
    (:mod:`bnnmlir.frontend.scaled_weights`): bit-exact when every summation order is exact.
    Otherwise (scaled weights, a straight-through estimator or ``torch.sign(0)`` running as +1
    upstream) the binary form is PyTorch's value only up to a proven bound: with ``exact=True``
    the layer stays float and a warning names the idiom, the bound and the ways out; with
    ``exact=False`` it is binary and recorded in ``imp.approximations``. ``pm1``: ``is_pm1(w)``
    when the caller has it already."""
    pm1 = is_pm1(w) if pm1 is None else pm1
    scaled = None if pm1 else scaled_weights.recognize(w)
    if not pm1 and scaled is None:
        return None, False
    o = w.shape[0]
    signs = w.detach().sign().to(torch.int8).numpy() if pm1 else scaled.signs
    alpha = np.ones(o, np.float32) if pm1 else scaled.alpha
    dev = np.zeros(o) if pm1 else scaled.dev
    exact_w = pm1 or (scaled.exact and bias is None
                      and scaled_weights.exact_scaled_sum(alpha, k))
    approx = sign.approx
    scale = None if pm1 else alpha
    if approx is None and exact_w:
        return BinaryPlan(signs, scale, 0.0), False
    delta = approx.deviation if approx is not None else 0.0
    bound = scaled_weights.layer_bound(alpha, dev, k, delta, bias)
    idioms = []
    if approx is not None and approx.deviation > 0:
        idioms.append(approx.idiom)
    if approx is not None and approx.zero_as_plus and not idioms:
        idioms.append("torch.sign")
    if not exact_w:
        idioms.append("scaled binary weights alpha * sign(W)")
    idiom = "; ".join(idioms)
    domain = approx.domain if approx is not None else math.inf
    zero = approx is not None and approx.zero_as_plus
    if imp.exact:
        limits = (f" for inputs |x| <= {domain:.3g}" if domain < 3e38 else "")
        imp.warn(
            f"{idiom}: PyTorch rounds its float sum, so the binary form of this {what} "
            f"deviates from it by up to {bound:.3g} per output{limits}"
            f"{' (and where an input is exactly 0)' if zero else ''}; kept as a float {what}. "
            "compile(..., exact=False) runs it as a binary kernel within that bound; the same "
            "model written with bnnmlir.nn layers (bnnmlir.nn.binarize: sign(0) = +1, "
            "BinaryConv2d / BinaryLinear: +-1 weights, the scale folded into the next "
            "BatchNorm) compiles exactly"
        )
        return None, True
    imp.approximate(idiom, bound, node=approx.node if approx is not None else "",
                    domain=domain, zero_as_plus=zero)
    return BinaryPlan(signs, scale, bound), False


def binary_conv(imp, sign: Sign, w_ohwc: np.ndarray, out_shape: tuple[int, ...], *, strides,
                dilations, pads, pad_value: int, bias: np.ndarray | None,
                scale: np.ndarray | None = None, dev: float = 0.0) -> Act:
    """``scale * conv(sign, w)`` (+ bias) on a rank-4 source; see the module docstring.
    ``dev``: the proven deviation from PyTorch (``exact=False``), carried by the result."""
    em = imp.emit
    src = sign.source
    channel_scale = scale
    o, kh, kw, c = w_ohwc.shape
    k = kh * kw * c
    conv = {"strides": list(strides), "dilations": list(dilations), "padding": list(pads)}
    if not sign.ternary:
        acc = em.bconv2d(em.binarize(src.value), w_ohwc, pad_value=pad_value, **conv)
        scale = 1.0
        odd = k % 2 == 1 and (pad_value != 0 or not any(pads))
    else:
        neg = em.affine(src.value, [-1.0] * c, [0.0] * c)
        pos_acc = em.bconv2d(em.binarize(src.value), w_ohwc, pad_value=pad_value, **conv)
        neg_acc = em.bconv2d(em.binarize(neg), -w_ohwc, pad_value=-pad_value, **conv)
        acc = em.add(pos_acc, neg_acc)
        scale, odd = 0.5, False
    info = ValueInfo.integer(-k, k, nonzero=odd)
    if bias is None and scale == 1.0 and channel_scale is None:
        return Act(acc, out_shape, info, dev=dev)
    b = np.zeros(o, dtype=np.float32) if bias is None else bias.astype(np.float32)
    if bias is not None and channel_scale is None:
        record_bias(imp, b, k)
    scales = np.full(o, scale, np.float64)
    if channel_scale is not None:  # exact: fl(alpha / 2) * (even sum) = alpha * (sum / 2)
        scales = scales * channel_scale.astype(np.float64)
    value = em.affine(acc, scales.astype(np.float32).tolist(), b.tolist())
    plain = bias is None and channel_scale is None
    return Act(value, out_shape, info if plain else ValueInfo(), dev=dev)


# ---------------------------------------------------------------------------------------------
# Materializing a sign as float +-1 (or -1/0/+1)
# ---------------------------------------------------------------------------------------------


def materialize(imp, sign: Sign) -> Act:
    """``sign`` as an f32 tensor of +-1 (ternary: -1, 0, +1), exactly.

    Integer-valued source ``y``: ``torch.sign(y) = clamp(y, -1, 1)`` and the binarization is
    ``clamp(2*y + 1, -1, 1)``. Float source: with ``p = binarize(y)`` and 1x1 binary convolutions
    over ``C`` channels, ``bconv(p, J) + bconv(p, 2I - J) = 2*b(y)`` (``J`` all ones, ``I`` the
    identity), an exact integer; ternary adds the same terms for ``-y`` with negated weights.
    """
    em = imp.emit
    if sign.approx is not None:  # PyTorch's value is the exact sign up to the deviation
        exact_sign = Sign(sign.source, sign.ternary or sign.approx.zero_as_plus)
        act = materialize(imp, exact_sign)
        act.dev = 0.0 if imp.exact else sign.approx.deviation
        return act
    src = sign.source
    c = src.stored_shape[-1] if src.shape else 1
    if src.info.integral and math.isfinite(src.info.lo) and max(-src.info.lo, src.info.hi) < 2**23:
        if sign.ternary:
            value = em.cast(em.hardtanh(src.value, -1.0, 1.0))
        else:
            value = em.hardtanh(em.affine(src.value, [2.0] * c, [1.0] * c), -1.0, 1.0)
        return Act(value, src.shape, sign.info, src.flat)
    stored = value_shape(src.value)
    rows = int(np.prod(stored[:-1], dtype=np.int64))
    ones = np.ones((c, 1, 1, c), dtype=np.int8)
    diag = (2 * np.eye(c, dtype=np.int8) - 1).reshape(c, 1, 1, c)
    conv = {"strides": [1, 1], "dilations": [1, 1], "padding": [0, 0, 0, 0], "pad_value": 0}
    terms = [(src.value, 1)] + ([(em.affine(src.value, [-1.0] * c, [0.0] * c), -1)]
                                if sign.ternary else [])
    total = None
    for v, s in terms:
        packed = em.binarize(em.reshape(v, (rows, 1, 1, c)))
        for w in (ones, diag):
            part = em.bconv2d(packed, s * w, **conv)
            total = part if total is None else em.add(total, part)
    scale = 0.25 if sign.ternary else 0.5
    value = em.affine(total, [scale] * c, [0.0] * c)
    return Act(em.reshape(value, stored), src.shape, sign.info, src.flat)
