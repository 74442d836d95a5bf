"""PyTorch layers for training Binary Neural Networks with an int8 data flow (BNN-Clip).

Importing this package imports ``torch`` (``import bnnmlir`` alone does not). Models built from
these layers can be exported with ``torch.export`` and compiled by bnnmlir bit-exactly.

Layers
    :class:`BinaryConv2d`
        ``conv2d(pad(sign(x), padding, pad_value), sign(W), bias, stride, 0, dilation)``.
        ``padding`` is stored as ``(top, bottom, left, right)`` (the order of ``bnn.bconv2d``);
        ``pad_value`` is 0.0, +1.0 or -1.0 (see "Padding" in :mod:`bnnmlir.bits`).
    :class:`BinaryLinear`
        ``linear(sign(x), sign(W), bias)``.
    :class:`Clip8`
        ``clamp(round_half_even(x), -127, 127)``: the clipping block.
    :class:`QuantizeInput`
        ``clip8(x / scale)``: puts a float image on the int8 stream.
    :func:`clamp_latent_weights_`
        Clamps latent weights to [-1, 1] after an optimizer step.

    ``sign`` is the custom operator ``bnnmlir::sign`` (``x >= 0`` -> +1, ``-0.0`` -> +1) and
    ``clip8`` is ``bnnmlir::clip8``; both stay single nodes in ``torch.export`` graphs, also after
    ``run_decompositions()``: ``node.target`` is ``torch.ops.bnnmlir.sign.default``
    (:data:`SIGN_OP`) or ``torch.ops.bnnmlir.clip8.default`` (:data:`CLIP8_OP`), and
    ``node.meta["nn_module_stack"]`` names the layer that called it. A binary layer contributes two
    ``sign`` nodes: one on its input activation and one on its ``weight`` parameter.

Values in evaluation mode (all held in float32 tensors, all exact)
    * A binary layer reads any real tensor and uses only its signs: ``+1`` where ``x >= 0``.
    * Without bias its output is an integer: the sum of ``K`` products of +-1 values (``K`` =
      ``in_channels * kh * kw``, fewer taps at the border with ``pad_value = 0``), computed by the
      compiler as ``K - 2 * popcount(a XOR w)`` into an ``int32``; ``|out| <= K``. Float32 holds
      these sums exactly (every partial sum is an integer below ``2**24``).
    * :class:`Clip8` outputs integers in [-127, 127] (the int8 stream; ``-128`` never occurs).
      ``-0.0`` may appear and is the integer 0 (it binarizes to +1, as 0 does). Applied directly
      to a bias-free binary layer it is exactly ``bnn.clip8``; rounding matters only after a
      non-integer producer (BatchNorm, average pooling, a bias). Ties round to even
      (0.5 -> 0, 1.5 -> 2, -2.5 -> -2).
    * :class:`QuantizeInput` outputs ``clamp(round_half_even(x / scale), -127, 127)``.

Keeping the stream in int8
    Put a :class:`Clip8` after every binary layer (after its BatchNorm, if any) and after every
    other op that may leave the int8 range or the integers:

    * residual connection: plain ``a + b`` of two int8 tensors (an integer in [-254, 254]),
      followed by a :class:`Clip8`;
    * ``nn.MaxPool2d`` of int8 values stays int8 (no clip needed); ``nn.AvgPool2d`` does not stay
      integral, so follow it by a :class:`Clip8`;
    * a BatchNorm in evaluation mode is a per-channel affine map ``y = a*x + b`` (float32); when a
      binary layer consumes ``clip8(y)`` only the sign matters and ``round_half_even(y) >= 0``
      iff ``y >= -0.5``, so BatchNorm + Clip8 + sign folds into an integer per-channel threshold
      of the binary layer's sum (``bnn.threshold``).

Training recipe (BNN-Clip)
    1. Train the BNN: binary layers with latent float weights (STE through ``sign``: gradient 1
       where ``|x| <= 1``, 0 elsewhere, for activations and weights alike), a BatchNorm after each
       binary layer, Adam, and :func:`clamp_latent_weights_` after each step.
    2. Insert a :class:`Clip8` after each binary layer (after its BatchNorm) and after each
       residual add, then fine-tune: the straight-through gradient of Clip8 is 1 inside
       [-127, 127] and 0 where it saturates, so the network learns to live in the int8 range.

    The training runs themselves are not part of this package.
"""

from bnnmlir.nn.functional import CLIP8_OP, SIGN_OP, binarize, clip8, quantize_input
from bnnmlir.nn.layers import (
    BinaryConv2d,
    BinaryLinear,
    Clip8,
    QuantizeInput,
    clamp_latent_weights_,
)

__all__ = [
    "CLIP8_OP",
    "SIGN_OP",
    "BinaryConv2d",
    "BinaryLinear",
    "Clip8",
    "QuantizeInput",
    "binarize",
    "clamp_latent_weights_",
    "clip8",
    "quantize_input",
]
