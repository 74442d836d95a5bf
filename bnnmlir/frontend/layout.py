"""Moving activations between the PyTorch layout and the channels-last storage of the IR.

See :class:`bnnmlir.frontend.values.Act` for the storage rules. The functions here emit the
``bnn.reshape`` / ``bnn.transpose`` ops that convert between the two when a consumer needs it.
"""

from __future__ import annotations

import numpy as np
import torch

from bnnmlir.frontend.values import Act, ValueInfo, stored_shape

NCHW_TO_NHWC = (0, 2, 3, 1)
NHWC_TO_NCHW = (0, 3, 1, 2)


def flat_order(chw: tuple[int, int, int]) -> np.ndarray:
    """PyTorch column of each stored column of a flattened channels-last tensor."""
    c, h, w = chw
    return np.arange(c * h * w).reshape(c, h, w).transpose(1, 2, 0).reshape(-1)


def to_plain(imp, act: Act):
    """The SSA value of ``act`` in the PyTorch layout."""
    em = imp.emit
    if act.flat is not None:
        c, h, w = act.flat
        n = act.shape[0]
        v = em.reshape(act.value, (n, h, w, c))
        v = em.transpose(v, NHWC_TO_NCHW)
        return em.reshape(v, act.shape)
    if len(act.shape) == 4:
        return em.transpose(act.value, NHWC_TO_NCHW)
    return act.value


def from_plain(imp, value, shape: tuple[int, ...], info: ValueInfo) -> Act:
    """An :class:`Act` from a value held in the PyTorch layout."""
    if len(shape) == 4:
        value = imp.emit.transpose(value, NCHW_TO_NHWC)
    return Act(value, tuple(shape), info)


def plain_act(imp, act: Act) -> Act:
    """``act`` without the flattened channels-last order (rank 2 only)."""
    if act.flat is None:
        return act
    return Act(to_plain(imp, act), act.shape, act.info)


def reshape_act(imp, act: Act, shape: tuple[int, ...]) -> Act:
    """``act.reshape(shape)`` with PyTorch semantics.

    Flattening ``[N, C, H, W]`` to ``[N, C*H*W]`` keeps the channels-last order (``flat``), so no
    data moves; the consumer (a Linear: its weight columns are permuted at import time) or
    :func:`to_plain` accounts for it. With ``H = W = 1`` or ``C = 1`` both orders coincide.
    """
    shape = tuple(int(d) for d in shape)
    em = imp.emit
    if shape == act.shape and act.flat is None:
        return act
    if len(act.shape) == 4 and len(shape) == 2 and act.flat is None:
        n, c, h, w = act.shape
        if shape == (n, c * h * w):
            value = em.reshape(act.value, shape)
            flat = None if (h * w == 1 or c == 1) else (c, h, w)
            return Act(value, shape, act.info, flat)
    if act.flat is not None and len(shape) == 4 and shape[1:] == act.flat and shape[0] == act.shape[0]:
        return Act(em.reshape(act.value, stored_shape(shape)), shape, act.info)
    plain = to_plain(imp, act)
    return from_plain(imp, em.reshape(plain, shape), shape, act.info)


def channel_vector(imp, act: Act, const, what: str) -> np.ndarray:
    """Per stored channel values (float32) of ``const`` broadcast against ``act``.

    ``const`` must be uniform along every dimension but PyTorch's channel dimension (dimension 1
    of a rank >= 2 tensor); a scalar fits any rank.
    """
    t = torch.as_tensor(const, dtype=torch.float32)
    shape = act.shape
    channels = stored_shape(shape)[-1] if shape else 1
    if t.numel() == 1:
        return np.full(channels, float(t.reshape(())), dtype=np.float32)
    if len(shape) not in (2, 4) or t.dim() > len(shape):
        raise imp.error(f"{what} of shape {list(t.shape)} on a tensor of shape {list(shape)}: "
                        "only scalars or per-channel values are supported")
    try:
        full = torch.broadcast_to(t, shape)
    except RuntimeError as e:
        raise imp.error(f"{what} does not broadcast: {e}") from None
    if tuple(torch.broadcast_shapes(t.shape, shape)) != tuple(shape):
        raise imp.error(f"{what} of shape {list(t.shape)} would broadcast the tensor")
    index = (0, slice(None)) + (0,) * (len(shape) - 2)
    vec = full[index]
    expect = vec.reshape((1, -1) + (1,) * (len(shape) - 2))
    if not torch.equal(full, torch.broadcast_to(expect, shape)):
        raise imp.error(f"{what} varies along a non-channel dimension: only per-channel values "
                        "are supported")
    vec = vec.numpy().astype(np.float32)
    if act.flat is not None:
        vec = vec[flat_order(act.flat)]
    return vec


def stored_columns(act: Act, w: np.ndarray) -> np.ndarray:
    """Columns of a ``[O, F]`` weight reordered to the storage order of ``act`` (``[N, F]``)."""
    return w if act.flat is None else w[:, flat_order(act.flat)]
