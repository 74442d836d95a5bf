"""Benchmark layers: binary convolutions of real networks, as tensor-level IR with packed weights.

Each layer is one ``bnn.bconv2d`` on its own: the packed ``i8`` activations are the function
argument and the packed weights a constant, so a timed call measures the convolution kernel alone
(no binarization of a float input, no output transform).

Work is counted in *binary operations*: one binary multiply-accumulate (an XNOR and its share of
the popcount-accumulate) counts as 2 ops, so ``ops = 2 * N*OH*OW*O*KH*KW*C``, the same ``2 * MACs``
that gives the FLOP count of the fp32 convolution of the same shape. Border taps that zero padding
removes are counted too (the nominal shape, as for the fp32 peer).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from xdsl.dialects import arith, func
from xdsl.dialects.builtin import ModuleOp, TensorType, i8, i32
from xdsl.ir import Block, Region

from bnnmlir import reference
from bnnmlir.bits import conv_output_size, packed_words
from bnnmlir.dialects.bnn import BConv2dOp
from bnnmlir.ir_utils import numpy_to_dense

ENTRY = "bconv"


@dataclass(frozen=True)
class ConvLayer:
    """One binary convolution: NHWC input ``[batch, height, width, in_channels]``, square kernel."""

    name: str
    height: int
    width: int
    in_channels: int
    out_channels: int
    kernel: int = 3
    stride: int = 1
    padding: int = 1
    pad_value: int = 0
    batch: int = 1

    @property
    def out_hw(self) -> tuple[int, int]:
        k, s, p = self.kernel, self.stride, self.padding
        return (
            conv_output_size(self.height, k, s, 1, p, p),
            conv_output_size(self.width, k, s, 1, p, p),
        )

    @property
    def macs(self) -> int:
        oh, ow = self.out_hw
        return self.batch * oh * ow * self.out_channels * self.kernel**2 * self.in_channels

    @property
    def binary_ops(self) -> int:
        """``2 * MACs`` (see the module docstring)."""
        return 2 * self.macs

    def interior(self) -> ConvLayer:
        """The same layer without padding: the code every tap of the interior runs."""
        return ConvLayer(
            f"{self.name} (interior)", self.height, self.width, self.in_channels,
            self.out_channels, self.kernel, self.stride, 0, self.pad_value, self.batch,
        )

    def describe(self) -> str:
        oh, ow = self.out_hw
        return (
            f"{self.height}x{self.width}x{self.in_channels} -> {oh}x{ow}x{self.out_channels} "
            f"{self.kernel}x{self.kernel} s{self.stride} p{self.padding}"
        )


# ResNet-18 / Bi-Real-Net stages (batch 1, 3x3 stride 1 pad 1), the first convolution of a
# downsampling block (3x3 stride 2), its 1x1 stride-2 shortcut, and channel counts that are not
# multiples of 8.
LAYERS: tuple[ConvLayer, ...] = (
    ConvLayer("stage1", 56, 56, 64, 64),
    ConvLayer("stage2", 28, 28, 128, 128),
    ConvLayer("stage3", 14, 14, 256, 256),
    ConvLayer("stage4", 7, 7, 512, 512),
    ConvLayer("256@28", 28, 28, 256, 256),
    ConvLayer("down3x3", 56, 56, 64, 128, stride=2),
    ConvLayer("short1x1", 56, 56, 64, 128, kernel=1, stride=2, padding=0),
    ConvLayer("c37", 28, 28, 37, 37),
)
QUICK_LAYERS: tuple[str, ...] = ("stage2", "stage4", "c37")


def select_layers(names: str | None, quick: bool = False) -> list[ConvLayer]:
    """Layers by comma-separated names (``None``: all, or the quick subset)."""
    by_name = {layer.name: layer for layer in LAYERS}
    if names is None:
        wanted = list(QUICK_LAYERS) if quick else list(by_name)
    else:
        wanted = [n.strip() for n in names.split(",") if n.strip()]
    unknown = [n for n in wanted if n not in by_name]
    if unknown:
        raise ValueError(
            f"unknown layer(s) {', '.join(unknown)}: expected some of {', '.join(by_name)}"
        )
    return [by_name[n] for n in wanted]


@dataclass
class LayerData:
    """Random +-1 activations and weights of a layer, and their packed forms."""

    x_pm1: np.ndarray  # int8 [N, H, W, C]
    w_pm1: np.ndarray  # int8 [O, K, K, C]

    @property
    def x_packed(self) -> np.ndarray:
        return reference.pack(self.x_pm1).view(np.int8)

    @property
    def w_packed(self) -> np.ndarray:
        return reference.pack(self.w_pm1).view(np.int8)


def random_data(layer: ConvLayer, seed: int = 0) -> LayerData:
    rng = np.random.default_rng(seed)

    def pm1(shape: tuple[int, ...]) -> np.ndarray:
        return np.where(rng.random(shape) < 0.5, 1, -1).astype(np.int8)

    x = pm1((layer.batch, layer.height, layer.width, layer.in_channels))
    w = pm1((layer.out_channels, layer.kernel, layer.kernel, layer.in_channels))
    return LayerData(x, w)


def bconv_module(layer: ConvLayer, w_packed: np.ndarray) -> ModuleOp:
    """``func.func @bconv(%x: packed i8) -> i32`` with the packed weights as a constant."""
    words = packed_words(layer.in_channels)
    oh, ow = layer.out_hw
    x_type = TensorType(i8, [layer.batch, layer.height, layer.width, words])
    w_type = TensorType(i8, [layer.out_channels, layer.kernel, layer.kernel, words])
    out_type = TensorType(i32, [layer.batch, oh, ow, layer.out_channels])
    block = Block(arg_types=[x_type])
    weights = arith.ConstantOp(numpy_to_dense(w_packed, w_type))
    p = layer.padding
    conv = BConv2dOp(
        block.args[0],
        weights,
        in_channels=layer.in_channels,
        strides=(layer.stride, layer.stride),
        padding=(p, p, p, p),
        pad_value=layer.pad_value,
        result_type=out_type,
    )
    block.add_ops([weights, conv, func.ReturnOp(conv)])
    return ModuleOp([func.FuncOp(ENTRY, ([x_type], [out_type]), Region(block))])


def layer_plan(layer: ConvLayer, target_name: str = "host") -> str | None:
    """The blocked-kernel plan of the layer on a target, described (``None``: not blocked)."""
    from bnnmlir.passes.loops.bconv2d import block_plan
    from bnnmlir.target import get_target

    module = bconv_module(layer, random_data(layer).w_packed)
    op = next(o for o in module.walk() if isinstance(o, BConv2dOp))
    plan = block_plan(op, get_target(target_name))
    return None if plan is None else plan.describe()


def expected_output(layer: ConvLayer, data: LayerData) -> np.ndarray:
    """The numpy reference of the layer (``int32 [N, OH, OW, O]``)."""
    p = layer.padding
    return reference.bconv2d(
        data.x_pm1, data.w_pm1, (layer.stride, layer.stride), (1, 1), (p, p, p, p), layer.pad_value
    )
