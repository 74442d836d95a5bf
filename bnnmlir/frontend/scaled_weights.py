"""Scaled binary weights and the contract of binary layers whose PyTorch value is approximate.

Weights: ``alpha * torch.sign(W)`` with ``alpha`` a per-output-channel statistic (XNOR-Net,
Bi-Real, ReActNet: ``W.abs().mean(dims, keepdim=True)``, maybe through ``W.view(shape)`` of a flat
parameter, ``.detach()``, and the clamp trick ``bw.detach() - clamp(W).detach() + clamp(W)``) is
computed at compile time by the importer (a weight-only subgraph is a constant). The constant is
recognized here (:func:`recognize`): in each output channel ``o`` every weight is ``+-alpha_o`` up
to ``dev_o`` (the clamp trick rounds: ``fl(fl(a - c) + c)``). The layer then is
``alpha_o * bconv(sign(x), sign(W))``: a binary kernel, the scale a per-channel ``bnn.affine``
that the folding passes merge into the following BatchNorm / threshold / requant.

When is that bit-exact? PyTorch sums ``K`` terms ``+-alpha_o`` in its own order. If the weights
are exactly ``+-alpha_o`` and ``alpha_o = m * 2**e`` with ``m`` odd, every partial sum is
``j * m * 2**e`` with ``|j| <= K``: exact in float32 when ``K * m < 2**24``, whatever the order,
and equal to ``alpha_o * A`` (one exact product). Otherwise (:func:`layer_bound`), with ``T`` the
real value of PyTorch's sum, ``u = 2**-24``, ``gamma_K = K u / (1 - K u)``:
``|torch - T| <= gamma_K * K * max|w_o| * (1 + delta)`` (any summation order),
``|T - alpha_o A| <= K * (delta * max|w_o| + dev_o)`` (``delta``: the deviation of the input from
+-1, :class:`~bnnmlir.frontend.values.Approx`), and the compiled ``fl(alpha_o A + b)`` adds
``u * (K alpha_o + |b|) * 2``: the sum is the layer's bound.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

U = 2.0**-24
#: Largest relative spread of ``|w|`` in a channel accepted as one scale (rounding of the clamp
#: trick is a few ulps; anything larger is a real-valued weight).
MAX_RELATIVE_SPREAD = 2.0**-16


@dataclass(frozen=True)
class ScaledWeights:
    """``w[o] ~= alpha[o] * signs[o]``; ``exact``: equal, element for element."""

    signs: np.ndarray  # int8 +-1, the layout of the weight tensor
    alpha: np.ndarray  # float32 per output channel
    dev: np.ndarray  # float64 per output channel: max |w - alpha * sign|
    exact: bool


def recognize(w: torch.Tensor) -> ScaledWeights | None:
    """``w`` (output channels first) as per-channel scaled +-1 weights, or ``None``."""
    if not isinstance(w, torch.Tensor) or w.numel() == 0 or not w.dtype.is_floating_point:
        return None
    flat = w.detach().double().reshape(w.shape[0], -1)
    if not bool(torch.isfinite(flat).all()) or bool((flat == 0).any()):
        return None
    mag = flat.abs()
    alpha64 = mag.mean(dim=1)
    spread = (mag - alpha64[:, None]).abs().max(dim=1).values
    if bool((spread > MAX_RELATIVE_SPREAD * alpha64).any()):
        return None
    first = mag[:, 0]
    exact = bool((mag == first[:, None]).all())
    alpha = (first if exact else alpha64).float().numpy()
    signs = torch.sign(w.detach()).to(torch.int8).numpy()
    dev = (mag - torch.from_numpy(alpha).double()[:, None]).abs().max(dim=1).values.numpy()
    return ScaledWeights(signs, alpha, dev, exact)


def odd_mantissa(v: float) -> int:
    """``m`` odd with ``|v| = m * 2**e``."""
    m, e = math.frexp(abs(float(v)))
    n = int(m * 2**53)
    while n and n % 2 == 0:
        n //= 2
    return n


def exact_scaled_sum(alpha: np.ndarray, k: int) -> bool:
    """Every order of summing ``k`` terms ``+-alpha_o`` is exact in float32 (module docstring)."""
    return all(odd_mantissa(a) * k < 2**24 for a in alpha.tolist())


def layer_bound(alpha: np.ndarray, dev: np.ndarray, k: int, delta: float,
                bias: np.ndarray | None) -> float:
    """Largest ``|PyTorch - compiled|`` of any output of the layer (module docstring)."""
    a = alpha.astype(np.float64)
    wmax = a + dev
    gamma = k * U / (1 - k * U)
    b = np.zeros_like(a) if bias is None else np.abs(bias.astype(np.float64))
    per_channel = (gamma * k * wmax * (1 + delta) + k * (delta * wmax + dev)
                   + 2 * U * (k * a + b))
    return float(per_channel.max()) * (1 + 2.0**-40)
