"""How far a compiled value can be from PyTorch's, downstream of approximate binary layers.

With ``exact=False`` an approximate binary layer (:mod:`bnnmlir.frontend.scaled_weights`) sets
``Act.dev``, a proven bound of ``|compiled - PyTorch|`` on each of its outputs. Every later op
propagates it by its Lipschitz constant (:func:`propagate`): per-channel scales by their largest
magnitude, BatchNorm by ``max |gamma| / sqrt(var + eps)``, additions by the sum, float layers by
the largest absolute row sum of their weights, pooling / clamps / data movement by 1. An op
without a rule makes the bound unknown (``inf``). Float rounding of the compiled float parts is
outside this bound (it is the float tolerance of the exactness contract). A binarization of a
value with ``dev > 0`` can differ from PyTorch's only where ``|x| <= dev``.
"""

from __future__ import annotations

import math
import operator

import torch

from bnnmlir.frontend.values import Act

aten = torch.ops.aten

_ONE = {
    aten.relu.default, aten.hardtanh.default, aten.clamp.default, aten.max_pool2d.default,
    aten.max_pool2d_with_indices.default, aten.avg_pool2d.default,
    aten.adaptive_avg_pool2d.default, aten._adaptive_avg_pool2d.default, aten.mean.dim,
    aten.view.default, aten.reshape.default, aten._unsafe_view.default, aten.flatten.using_ints,
    aten.squeeze.dims, aten.squeeze.dim, aten.unsqueeze.default, aten.clone.default,
    aten.alias.default, aten.detach.default, aten.contiguous.default, aten.dropout.default,
    aten.cat.default, aten._to_copy.default, aten.to.dtype, aten.type_as.default,
    aten.neg.default, aten.abs.default, operator.getitem,
}
_SUM = {aten.add.Tensor, aten.sub.Tensor}


def _acts(value):
    if isinstance(value, Act):
        yield value
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _acts(v)


def _max_abs(t) -> float:
    if isinstance(t, torch.Tensor):
        return float(t.detach().double().abs().max()) if t.numel() else 0.0
    return abs(float(t)) if isinstance(t, (int, float)) else math.inf


def gain(node, args) -> float:
    """Lipschitz constant (max norm) of ``node`` in its run-time operand."""
    t = node.target
    if t in _ONE:
        return 1.0
    if t in (aten.mul.Tensor, aten.mul.Scalar):
        const = [a for a in args[:2] if not isinstance(a, Act)]
        return _max_abs(const[0]) if const else math.inf
    if t in (aten.div.Tensor, aten.div.Scalar) and not isinstance(args[1], Act):
        d = args[1].detach().double().abs().min() if isinstance(args[1], torch.Tensor) \
            else abs(float(args[1]))
        return 1.0 / float(d) if float(d) > 0 else math.inf
    if t in (aten._native_batch_norm_legit_no_training.default, aten.batch_norm.default):
        w, var = args[1], args[4]
        eps = float(args[-1] if t != aten.batch_norm.default else args[7])
        if w is None:
            w = torch.ones_like(var)
        return float((w.double().abs() / torch.sqrt(var.double() + eps)).max())
    if t == aten.prelu.default:
        return max(1.0, _max_abs(args[1]))
    if t in (aten.convolution.default, aten.conv2d.default):
        w = args[1]
        return float(w.detach().double().abs().reshape(w.shape[0], -1).sum(1).max())
    if t in (aten.linear.default,):
        return float(args[1].detach().double().abs().sum(1).max())
    if t in (aten.addmm.default, aten.mm.default):
        wt = args[-1]
        return float(wt.detach().double().abs().sum(0).max())
    return math.inf


def propagate(node, args, kwargs, result) -> None:
    """Set ``dev`` on the run-time results of ``node`` from that of its operands."""
    devs = [a.dev for a in _acts(list(args) + list(kwargs.values()))]
    if not devs or max(devs) == 0:
        return
    dev = sum(devs) if node.target in _SUM else max(devs) * gain(node, args)
    for out in _acts(result if isinstance(result, (list, tuple)) else [result]):
        if out.dev == 0:
            out.dev = dev
