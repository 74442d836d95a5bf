"""The bit convention of bnnmlir: the one place that defines how binary values are stored.

Every op, pass, runtime routine and test uses these definitions.

Values and bits
    A binary value is +1 or -1. It is stored as one bit: **+1 is bit 0, -1 is bit 1**. Binarizing a
    number ``x`` gives +1 when ``x >= 0`` and -1 when ``x < 0`` (so the bit is the sign bit of ``x``;
    for floats, ``-0.0 >= 0`` holds and binarizes to +1, and NaN, for which ``x >= 0`` is false,
    binarizes to -1, as ``torch.where(x >= 0, 1, -1)`` does).

Packing
    Binary tensors are packed along their LAST dimension (channels innermost, NHWC for activations,
    [out_channels, kh, kw, in_channels] for convolution weights). The storage word is one byte
    (``i8``, ``WORD_BITS = 8``): channel ``c`` is bit ``c % 8`` (least significant bit first) of byte
    ``c // 8``. A packed dimension of ``C`` channels holds ``ceil(C / 8)`` bytes; the unused high bits
    of the last byte are ALWAYS 0, in activations and in weights alike, so they never contribute to
    ``popcount(a XOR w)``.

Dot products
    For ``C`` binary channels ``a`` and ``w``: ``sum_c a_c * w_c = C - 2 * popcount(bits(a) XOR
    bits(w))``. A binary convolution sums this over its taps; ``K`` is the number of products that
    exist, i.e. ``C * taps``.

Padding of a binary convolution (``pad_value``)
    * ``+1``: positions outside the input read +1 (all bits 0); every output has ``K = KH*KW*C``.
    * ``-1``: positions outside the input read -1 (the ``C`` valid bits 1); ``K = KH*KW*C``.
    * ``0``: positions outside the input contribute nothing, exactly as PyTorch zero-padding of a
      +-1 tensor: ``K`` = ``C`` times the number of taps that fall inside the input, which varies
      near the borders. The result is exact, not approximated.
    In every case ``|out| <= KH*KW*C``.
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np

WORD_BITS = 8
"""Bits per storage word of a packed dimension (words are ``i8``)."""

PLUS_ONE_BIT = 0
MINUS_ONE_BIT = 1

CLIP8_MIN = -127
CLIP8_MAX = 127
"""``bnn.clip8`` saturates to this symmetric range; -128 never occurs on an int8 stream."""


class PadValue(IntEnum):
    """What a binary convolution reads outside its input."""

    MINUS_ONE = -1
    ZERO = 0
    PLUS_ONE = 1


def packed_words(channels: int) -> int:
    """Number of ``i8`` words that hold ``channels`` packed binary channels."""
    if channels < 1:
        raise ValueError(f"a packed dimension needs at least one channel, got {channels}")
    return (channels + WORD_BITS - 1) // WORD_BITS


def last_word_mask(channels: int) -> int:
    """Mask of the bits of the last packed word that hold real channels."""
    used = channels - (packed_words(channels) - 1) * WORD_BITS
    return (1 << used) - 1


def conv_output_size(size: int, kernel: int, stride: int, dilation: int, pad_lo: int, pad_hi: int) -> int:
    """Output extent of a convolution along one spatial axis (PyTorch's formula, explicit pads)."""
    span = dilation * (kernel - 1) + 1
    return (size + pad_lo + pad_hi - span) // stride + 1


def pack_bits(values: np.ndarray) -> np.ndarray:
    """Pack the last axis of ``values`` by the sign convention (``x < 0`` is bit 1).

    Works for any real dtype; returns ``uint8`` with ``ceil(C/8)`` words in the last axis, the unused
    bits of the last word 0.
    """
    values = np.asarray(values)
    channels = values.shape[-1]
    words = packed_words(channels)
    bits = (values < 0).astype(np.uint8)
    padded = np.zeros(values.shape[:-1] + (words * WORD_BITS,), dtype=np.uint8)
    padded[..., :channels] = bits
    grouped = padded.reshape(values.shape[:-1] + (words, WORD_BITS))
    weights = (1 << np.arange(WORD_BITS, dtype=np.uint16)).astype(np.uint8)
    return (grouped * weights).sum(axis=-1, dtype=np.uint16).astype(np.uint8)


def unpack_bits(packed: np.ndarray, channels: int) -> np.ndarray:
    """Inverse of :func:`pack_bits`: the +-1 values (``int8``) of the first ``channels`` channels."""
    packed = np.asarray(packed).astype(np.uint8)
    if packed.shape[-1] != packed_words(channels):
        raise ValueError(
            f"{channels} channels need {packed_words(channels)} words, got {packed.shape[-1]}"
        )
    shifts = np.arange(WORD_BITS, dtype=np.uint8)
    bits = (packed[..., :, None] >> shifts) & 1
    bits = bits.reshape(packed.shape[:-1] + (packed.shape[-1] * WORD_BITS,))[..., :channels]
    return (1 - 2 * bits.astype(np.int8)).astype(np.int8)
