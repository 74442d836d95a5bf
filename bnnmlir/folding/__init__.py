"""Exact folding of float per-channel functions on a finite integer domain into integer forms.

The output of a binary convolution is an integer in ``[-K, K]``, the output of Clip8 one in
``[-127, 127]``. A float per-channel function of such a value (BatchNorm then sign, BatchNorm or
scale+bias then Clip8) is folded by EVALUATING THE ORIGINAL float function on the integer domain, so
the result is exact whatever rounding order the float code uses, then verified on every integer of
the domain before it is returned. Nothing is approximated: when no exact form exists,
:class:`FoldingError` is raised.

* :func:`fold_sign` / :func:`fold_torch_sign` -> ``bnn.threshold`` thresholds and directions.
* :func:`fold_clip8` -> :class:`Requant` (affine fixed point, breakpoints, or table).
* :func:`fold_requant8_sign` -> ``bnn.threshold`` parameters of ``binarize(requant8(x))`` (integer
  arithmetic on the requant8 map, no evaluation).
* :func:`per_channel`, :func:`then_clip8`, :func:`clip8_float` build channel functions from modules.
"""

from bnnmlir.folding.domain import MAX_ABS_DOMAIN, ChannelFn, FoldingError
from bnnmlir.folding.int8_sign import fold_requant8_sign
from bnnmlir.folding.requant import (
    DEFAULT_KINDS,
    MAX_SHIFT,
    TABLE_MAX_DOMAIN,
    Requant,
    RequantKind,
    fold_clip8,
    verify_requant,
)
from bnnmlir.folding.sign import (
    CONSTANT_THRESHOLD,
    ZERO_ERROR,
    ZERO_PLUS,
    apply_threshold,
    fold_sign,
    fold_torch_sign,
    zero_points,
)
from bnnmlir.folding.torch_fns import clip8_float, per_channel, then_clip8

__all__ = [
    "CONSTANT_THRESHOLD",
    "DEFAULT_KINDS",
    "MAX_ABS_DOMAIN",
    "MAX_SHIFT",
    "TABLE_MAX_DOMAIN",
    "ZERO_ERROR",
    "ZERO_PLUS",
    "ChannelFn",
    "FoldingError",
    "Requant",
    "RequantKind",
    "apply_threshold",
    "clip8_float",
    "fold_clip8",
    "fold_requant8_sign",
    "fold_sign",
    "fold_torch_sign",
    "per_channel",
    "then_clip8",
    "verify_requant",
    "zero_points",
]
