"""The bias of a binary layer: when the compiled result equals PyTorch's, bit for bit.

PyTorch's ``conv2d`` / ``linear`` / ``addmm`` with a bias do NOT compute ``fl(sum) + bias``: the
CPU kernels (MKL GEMM with the output initialized to the bias, oneDNN) add the bias INSIDE the
float32 accumulation, in an order that depends on the kernel picked for the shape. Measured on
PyTorch 2.13: for +-1 inputs with a bias like 0.6333, the result is not even a function of the
integer sum ``S`` (two windows with the same ``S`` but different +-1 patterns round differently),
so no per-channel function of ``S`` reproduces it in general.

The compiled layer computes the exact integer ``S`` (``bnn.bconv2d``), then ONE float32 addition
``fl(S + b)`` (``bnn.affine`` with scale 1). It is bit-exact in two provable situations:

1. *Exact bias* (:func:`exact_channels`): every ``b + s`` with ``s`` an integer in ``[-K, K]`` is
   a float32 number. Every intermediate value of ANY summation order of the ``K`` products
   (each -1, 0 or +1) and ``b`` is then an integer of magnitude ``<= K <= 2**24`` or such a
   ``b + s``, so no addition rounds and PyTorch returns ``b + S`` exactly, as does ``fl(S + b)``.
   With ``b = m * 2**-e`` (``m`` odd, ``e >= 1``) the numbers ``b + s`` lie on the grid
   ``2**-e`` without being on ``2**(1-e)``: representable iff ``|b + s| < 2**(24 - e)``, so the
   condition is ``|b| + K < 2**(24 - e)``; an integer ``b`` needs ``|b| + K <= 2**24``. Examples:
   ``0.5``, ``-3.25``, ``2**-10`` with ``K < 2**14``; not ``0.1`` (24 significant bits).
2. *Rounded downstream* (:func:`check_biased_layers`): otherwise every rounding of the ``K``
   additions errs by at most half an ulp of the intermediate magnitude, which is at most
   ``X = (|b| + K) / (1 - K * 2**-24)``; so PyTorch's value lies within ``E = K * 2**(floor(log2
   X) - 24)`` of ``S + b``, as ``fl(S + b)`` does. If every consumer of the layer is a chain of
   monotone per-channel float ops (BatchNorm, per-channel scale/shift, relu, hardtanh, PReLU with
   slopes ``>= 0``, max pooling) ending in a rounding op (Clip8, a binarization, ``torch.sign``, a
   comparison with 0), and that chain gives the same result at both ends of the interval
   ``[S + b - E, S + b + E]`` for every ``S`` in ``[-K, K]`` and every channel (evaluated with the
   graph's own PyTorch ops), then the chain is constant on the interval (a monotone function equal
   at both ends) and the rounded result is PyTorch's whatever its summation order.

When neither holds, the layer keeps its exact integer sum plus one correctly rounded float32
addition, and the importer warns that its output can differ from PyTorch's in the last bits.
Assumption (as for every exact binary layer): PyTorch sums the products (no Winograd/FFT).
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import torch

from bnnmlir.custom_ops import CLIP8_OP, SIGN_OP

aten = torch.ops.aten
EXACT_F32 = 2**24

#: Largest ``(2K + 1) * channels`` evaluated by the downstream proof.
MAX_PROOF_EVALUATIONS = 1 << 24


def exact_channels(bias: np.ndarray, k: int) -> np.ndarray:
    """Per channel: whether ``b + s`` is a float32 number for every integer ``|s| <= k``."""
    out = np.zeros(bias.shape, dtype=bool)
    for i, b in enumerate(bias.astype(np.float32).tolist()):
        if not math.isfinite(b):
            continue
        q = Fraction(b)
        if q.denominator == 1:
            out[i] = abs(q) + k <= EXACT_F32
        else:  # q = m / 2**e with m odd, e >= 1
            out[i] = (abs(q) + k) * q.denominator < EXACT_F32
    return out


def error_bound(bias: np.ndarray, k: int) -> np.ndarray:
    """Per channel ``E``: ``|PyTorch's result - (S + b)| <= E`` for any summation order."""
    growth = 1.0 - k * 2.0**-24
    if growth < 0.5:  # pragma: no cover - fan-ins near 2**24 are not exact anyway
        return np.full(bias.shape, np.inf)
    x = (np.abs(bias.astype(np.float64)) + k) / growth
    return k * np.exp2(np.floor(np.log2(np.maximum(x, 1.0))) - 24)


@dataclass
class BiasedLayer:
    """A binary layer whose bias may make PyTorch's float32 result order-dependent."""

    node: torch.fx.Node
    bias: np.ndarray  # [O] float32
    k: int  # number of products per output
    inexact: np.ndarray  # [O] bool: channels failing :func:`exact_channels`
    rank: int  # rank of the layer output (2 or 4), channels on axis 1


def record(imp, bias: np.ndarray, k: int) -> None:
    """Note the binary layer of the current node; checked by :func:`check_biased_layers`."""
    inexact = ~exact_channels(bias, k)
    if inexact.any():
        rank = len(imp.node.meta["val"].shape)
        imp.biased_layers.append(BiasedLayer(imp.node, bias.astype(np.float32), k, inexact, rank))


# ---------------------------------------------------------------------------------------------
# The downstream proof
# ---------------------------------------------------------------------------------------------

_MONOTONE = {
    aten._native_batch_norm_legit_no_training.default,
    aten.batch_norm.default,
    aten.add.Tensor, aten.add.Scalar, aten.sub.Tensor, aten.sub.Scalar,
    aten.mul.Tensor, aten.mul.Scalar, aten.div.Tensor, aten.div.Scalar,
    aten.neg.default, aten.relu.default, aten.hardtanh.default, aten.clamp.default,
    aten.prelu.default,
    aten.clone.default, aten.alias.default, aten.detach.default, aten.contiguous.default,
    aten.dropout.default, aten._to_copy.default,
    operator.getitem,
}
"""Per-channel monotone ops, replayed with PyTorch on the candidate values."""

_POOLS = {aten.max_pool2d.default, aten.max_pool2d_with_indices.default}
"""Max pooling selects one of its inputs: the set of per-element results is unchanged."""

_ROUNDING = {
    CLIP8_OP, SIGN_OP, aten.sign.default,
    aten.ge.Scalar, aten.ge.Tensor, aten.gt.Scalar, aten.gt.Tensor,
    aten.le.Scalar, aten.le.Tensor, aten.lt.Scalar, aten.lt.Tensor,
}
"""Terminals: monotone maps onto a discrete set."""


class _Unproven(Exception):
    pass


def _dynamic_uses(imp, node: torch.fx.Node) -> list[torch.fx.Node]:
    """The run-time operands of ``node``, once per use (``x * x`` lists ``x`` twice)."""
    uses: list[torch.fx.Node] = []
    torch.fx.node.map_arg((node.args, node.kwargs), uses.append)
    return [a for a in uses if not isinstance(imp.env.get(a), torch.Tensor)]


def _paths(imp, node: torch.fx.Node, chain: tuple) -> list[tuple]:
    """Every ``chain + (terminal,)`` from ``node`` to a rounding op, or :class:`_Unproven`."""
    paths = []
    for user in node.users:
        target = user.target
        if user.op == "output":
            raise _Unproven("it reaches a model output unrounded")
        if target is aten._assert_tensor_metadata.default and not user.users:
            continue
        if len(_dynamic_uses(imp, user)) != 1:
            raise _Unproven(f"{user.name} combines it with another run-time tensor")
        if target in (aten.div.Tensor, aten.div.Scalar) and user.args[0] is not node:
            raise _Unproven(f"{user.name} divides by it")
        if target in _ROUNDING:
            paths.append(chain + (user,))
        elif target in _MONOTONE or target in _POOLS:
            if target is aten.prelu.default and bool((imp.env[user.args[1]] < 0).any()):
                raise _Unproven("a PReLU with a negative slope is not monotone")
            paths.extend(_paths(imp, user, chain + (user,)))
        else:
            raise _Unproven(f"its value reaches {user.name} ({target}), which does not round it")
    return paths


def _replay(imp, layer: BiasedLayer, path: tuple, x: torch.Tensor) -> torch.Tensor:
    """``path`` applied to candidates ``x`` ``[D, C]`` (one layer output per element)."""
    shape = (x.shape[0], x.shape[1]) + (1,) * (layer.rank - 2)
    env = {layer.node: x.reshape(shape)}

    def sub(arg):
        if isinstance(arg, torch.fx.Node):
            return env[arg] if arg in env else imp.env[arg]
        if isinstance(arg, (list, tuple)):
            return type(arg)(sub(a) for a in arg)
        return arg

    for n in path:
        if n.target in _POOLS:
            value = sub(n.args[0])
            env[n] = value if n.target is aten.max_pool2d.default else (value, None)
            continue
        env[n] = n.target(*sub(n.args), **{k: sub(v) for k, v in n.kwargs.items()})
    out = env[path[-1]]
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != shape:
        raise _Unproven(f"{path[-1].name} is not a per-channel function of the layer output")
    return out.reshape(x.shape)


def _interval_ends(layer: BiasedLayer) -> tuple[torch.Tensor, torch.Tensor]:
    """float32 ``[2K+1, C]`` lower and upper ends of PyTorch's possible results for each ``S``."""
    s = np.arange(-layer.k, layer.k + 1, dtype=np.float64)[:, None]
    b = layer.bias.astype(np.float64)[None, :]
    e = np.where(layer.inexact, error_bound(layer.bias, layer.k), 0.0)[None, :]
    lo = (s + b - e).astype(np.float32)
    hi = (s + b + e).astype(np.float32)
    # one more float32 step outward covers the float64 rounding of the ends
    lo = np.where(layer.inexact, np.nextafter(lo, np.float32(-np.inf)), lo)
    hi = np.where(layer.inexact, np.nextafter(hi, np.float32(np.inf)), hi)
    return torch.from_numpy(np.ascontiguousarray(lo)), torch.from_numpy(np.ascontiguousarray(hi))


def prove(imp, layer: BiasedLayer) -> str | None:
    """``None`` when every consumer rounds the same way over the whole interval, else why not."""
    channels = layer.bias.size
    if (2 * layer.k + 1) * channels > MAX_PROOF_EVALUATIONS:
        return f"the domain [{-layer.k}, {layer.k}] x {channels} channels is too large to check"
    try:
        paths = _paths(imp, layer.node, ())
        if not paths:
            return "it has no consumer that rounds it"
        lo, hi = _interval_ends(layer)
        with torch.no_grad():
            for path in paths:
                a, b = _replay(imp, layer, path, lo), _replay(imp, layer, path, hi)
                if not torch.equal(a, b):
                    bad = (a != b).nonzero()[0].tolist()
                    return (f"{path[-1].name} can round differently for the sum "
                            f"{bad[0] - layer.k} in channel {bad[1]}")
    except _Unproven as e:
        return str(e)
    except (RuntimeError, TypeError, ValueError) as e:
        return f"its consumers could not be evaluated ({e})"
    return None


def check_biased_layers(imp) -> None:
    """Warn for each recorded layer whose result is not proven bit-exact (module docstring)."""
    for layer in imp.biased_layers:
        why = prove(imp, layer)
        if why is None:
            continue
        b = float(layer.bias[layer.inexact][0])
        bound = float(np.max(error_bound(layer.bias, layer.k)))
        imp.warn(
            f"the bias ({b:.9g}...) is added inside PyTorch's float32 sum of the {layer.k} "
            "+-1 products, where the rounding depends on the CPU kernel's summation order, and "
            f"{why}: compiled as the exact integer sum plus one float32 addition, within "
            f"{bound:.3g} of PyTorch's result but not always bit-identical (a bias on the "
            f"2**-e grid with |b| + {layer.k} < 2**(24-e), e.g. 0.5, is exact)",
            layer.node,
        )
