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
    :class:`ChannelScale`
        ``x * scale[c]``: the per-channel scale of published binary layers.
    :func:`from_torch`
        :func:`bnnmlir.convert`: a published PyTorch BNN rewritten into these layers.
    :class:`Clip8`
        ``clamp(round_half_even(x), -127, 127)``: the clipping block.
    :class:`QuantizeInput`
        ``clip8(x / scale)``: puts a float image on the int8 stream.
    :func:`clamp_latent_weights_`
        Clamps latent weights to [-1, 1] after an optimizer step.
    :class:`Int8Conv2d`, :class:`Int8Linear` (:mod:`bnnmlir.nn.int8`)
        Int8 first / last layers: ``conv2d(x, q(W))`` / ``linear(x, q(W))`` with
        ``q(W) = clamp(round(W / s), -127, 127)``, integer outputs (see "Int8 stem and head").

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

    `bnnmlir train` (:mod:`bnnmlir.train`) runs this recipe on Fashion-MNIST and CIFAR-10.

Int8 stem and head
    A float first layer makes a network float at its entry. To keep it integer end to end:
    ``QuantizeInput(scale) -> Int8Conv2d -> BatchNorm2d -> Clip8 -> binary layers ...``, and
    optionally an :class:`Int8Linear` as the last layer (its input a Clip8 output).

    * :class:`Int8Conv2d` fake-quantizes its latent float weights in the forward pass to integers
      ``q = clamp(round(W / s), -127, 127)`` (straight-through gradient: ``1 / s`` inside the
      clamp range, 0 where it saturates) with a per-output-channel scale
      ``s[o] = max |W[o]| / 127`` (default) or a fixed ``weight_scale`` (one float, or one per
      output channel).
    * Its output is the INTEGER convolution of the int8 input with ``q`` -- the scale ``s`` is
      NOT multiplied back. Every partial sum is an integer with ``|v| <= 127 * 127 * K``
      (``K = in_channels * kh * kw``); the constructor refuses ``K > 1040``, so the sums stay
      below ``2**24`` and float32 holds them exactly, whatever the summation order: PyTorch and
      the compiled ``int32`` code (``bnn.conv2d`` on ``i8`` operands) agree bit for bit.
    * Training recipe: put a BatchNorm2d right after the layer. The real-valued convolution is
      ``s[o] * out[o]``; BatchNorm normalizes each channel by its own statistics, so it absorbs
      ``s[o]`` (its running mean and variance are learned in integer units). Then a Clip8 puts
      the result on the int8 stream. Train with the fake quantization from the start (or
      fine-tune a float stem with it): the weights the network sees are always the integers it
      is compiled with. The importer recognizes the pattern from the values alone: an integer
      input within int8 and constant integer weights within int8 make the layer integer, and
      BatchNorm + Clip8 (or BatchNorm + sign) after it fold into an integer requantization (or
      threshold).
    * ``QuantizeInput(scale)`` computes ``x / scale`` as PyTorch does (a float32 division, which
      is not ``x * (1 / scale)``); the compiler keeps the division, so any positive ``scale`` is
      exact, not only powers of two.
"""

from bnnmlir.nn.functional import CLIP8_OP, SIGN_OP, binarize, clip8, quantize_input
from bnnmlir.nn.int8 import MAX_FAN_IN, Int8Conv2d, Int8Linear, quantize_weight
from bnnmlir.nn.layers import (
    BinaryConv2d,
    BinaryLinear,
    ChannelScale,
    Clip8,
    QuantizeInput,
    clamp_latent_weights_,
)

__all__ = [
    "CLIP8_OP",
    "SIGN_OP",
    "BinaryConv2d",
    "BinaryLinear",
    "ChannelScale",
    "Clip8",
    "Int8Conv2d",
    "Int8Linear",
    "MAX_FAN_IN",
    "QuantizeInput",
    "binarize",
    "clamp_latent_weights_",
    "clip8",
    "from_torch",
    "quantize_input",
    "quantize_weight",
]


def from_torch(model, example_inputs):
    """:func:`bnnmlir.convert` (the same function)."""
    from bnnmlir.conversion import convert

    return convert(model, example_inputs)
