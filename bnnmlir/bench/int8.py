"""Integer (int8) layers of real networks against PyTorch int8 (fbgemm) and fp32, same run.

* **bnnmlir**: the integer ``bnn.conv2d`` / ``bnn.dense`` alone (``i8`` activations, constant
  ``i8`` weights, exact ``i32`` output), compiled for the host, checked bit for bit against
  :mod:`bnnmlir.reference.support` before it is timed;
* **torch int8**: ``torch.ao.nn.quantized.Conv2d`` / ``Linear`` (the default engine, fbgemm on
  x86: ``quint8`` activations, ``qint8`` weights, ``int32`` accumulation, requantized output);
* **torch fp32**: ``torch.nn.functional.conv2d`` / ``linear`` of the same values.

Ops are ``2 * MACs`` (nominal shape, padding taps included).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bnnmlir.bench.host import TimingPolicy, best_block_medians


@dataclass(frozen=True)
class Int8Layer:
    """An integer convolution (``kernel > 0``) or dense layer (``kernel = 0``, ``height = width = 1``)."""

    name: str
    height: int
    width: int
    in_channels: int
    out_channels: int
    kernel: int = 0
    stride: int = 1
    padding: int = 0
    requant: bool = False
    """A per-channel affine ``bnn.requant8`` to ``i8`` after the convolution (fused into it), as
    PyTorch's quantized convolution requantizes its output."""

    @property
    def out_hw(self) -> tuple[int, int]:
        if not self.kernel:
            return 1, 1
        k, s, p = self.kernel, self.stride, self.padding
        return (self.height + 2 * p - k) // s + 1, (self.width + 2 * p - k) // s + 1

    @property
    def macs(self) -> int:
        oh, ow = self.out_hw
        return oh * ow * self.out_channels * max(1, self.kernel) ** 2 * self.in_channels

    def describe(self) -> str:
        if not self.kernel:
            return f"dense {self.in_channels} -> {self.out_channels}"
        oh, ow = self.out_hw
        return (f"{self.height}x{self.width}x{self.in_channels} -> {oh}x{ow}x{self.out_channels} "
                f"{self.kernel}x{self.kernel} s{self.stride} p{self.padding}"
                + (" +requant8" if self.requant else ""))

    def requant_text(self) -> str:
        """Per-channel affine requant8 parameters (fixed): ``(sum * m + b) >> 21`` with ``m <= 741``,
        exact in ``i32`` for the stem's sums (as the small multipliers the folding finds)."""
        o = self.out_channels
        mult = ", ".join(str(300 + 7 * k) for k in range(o))
        offset = ", ".join(str(-50 * k) for k in range(o))
        shift = ", ".join("21" for _ in range(o))
        return (f'kind = "affine", multiplier = array<i64: {mult}>, '
                f'offset = array<i64: {offset}>, shift = array<i64: {shift}>')

    def module_text(self, w: np.ndarray) -> str:
        body = f"dense<{w.tolist()}>".replace(" ", "")
        if not self.kernel:
            xt, ot = f"tensor<1x{self.in_channels}xi8>", f"tensor<1x{self.out_channels}xi32>"
            op = f"bnn.dense %x, %w : {xt}, tensor<{'x'.join(map(str, w.shape))}xi8> -> {ot}"
        else:
            oh, ow = self.out_hw
            xt = f"tensor<1x{self.height}x{self.width}x{self.in_channels}xi8>"
            ot = f"tensor<1x{oh}x{ow}x{self.out_channels}xi32>"
            s, p = self.stride, self.padding
            op = (f"bnn.conv2d %x, %w {{strides = array<i64: {s}, {s}>, dilations = array<i64: 1, 1>, "
                  f"padding = array<i64: {p}, {p}, {p}, {p}>}} : {xt}, "
                  f"tensor<{'x'.join(map(str, w.shape))}xi8> -> {ot}")
        result, rt = "%y", ot
        if self.requant:
            rt = ot.replace("xi32>", "xi8>")
            op += f"\n  %q = bnn.requant8 %y {{{self.requant_text()}}} : {ot} -> {rt}"
            result = "%q"
        return (f"func.func @int8_layer(%x: {xt}) -> {rt} {{\n"
                f"  %w = arith.constant {body} : tensor<{'x'.join(map(str, w.shape))}xi8>\n"
                f"  %y = {op}\n  func.return {result} : {rt}\n}}\n")


INT8_LAYERS: tuple[Int8Layer, ...] = (
    Int8Layer("stem7x7", 224, 224, 3, 64, kernel=7, stride=2, padding=3),
    Int8Layer("stem7x7rq", 224, 224, 3, 64, kernel=7, stride=2, padding=3, requant=True),
    Int8Layer("short1x1", 56, 56, 64, 128, kernel=1, stride=2),
    Int8Layer("head", 1, 1, 512, 1000),
)


@dataclass
class Int8Result:
    layer: str
    shape: str
    macs: int
    bnnmlir_s: float
    exact: bool
    fp32_s: float | None
    int8_s: float | None

    @property
    def gops(self) -> float:
        return 2 * self.macs / self.bnnmlir_s / 1e9


def _torch_peers(layer: Int8Layer, x: np.ndarray, w: np.ndarray):
    import torch
    from torch.ao.nn import quantized as nnq

    xf = torch.from_numpy(x.astype(np.float32))
    wf = torch.from_numpy(w.astype(np.float32))
    if layer.kernel:
        xf, wf = xf.permute(0, 3, 1, 2).contiguous(), wf.permute(0, 3, 1, 2).contiguous()
        q = nnq.Conv2d(layer.in_channels, layer.out_channels, layer.kernel, layer.stride,
                       layer.padding, bias=False)
        fp32 = lambda: torch.nn.functional.conv2d(xf, wf, stride=layer.stride,  # noqa: E731
                                                  padding=layer.padding)
    else:
        q = nnq.Linear(layer.in_channels, layer.out_channels, bias_=False)
        fp32 = lambda: torch.nn.functional.linear(xf, wf)  # noqa: E731
    q.set_weight_bias(torch.quantize_per_tensor(wf, 1.0, 0, torch.qint8), None)
    q.scale, q.zero_point = float(max(1, layer.macs // layer.out_channels)) * 16, 128
    qx = torch.quantize_per_tensor(xf, 1.0, 128, torch.quint8)
    return torch, fp32, lambda: q(qx)


def bench_int8_layer(layer: Int8Layer, policy: TimingPolicy, *, peers: bool = True,
                     target: str = "host", seed: int = 0) -> Int8Result:
    from bnnmlir.compiler import compile_module, parse_mlir
    from bnnmlir.reference import support as ref

    rng = np.random.default_rng(seed)
    x_shape = (1, layer.in_channels) if not layer.kernel else (1, layer.height, layer.width, layer.in_channels)
    w_shape = ((layer.out_channels, layer.in_channels) if not layer.kernel else
               (layer.out_channels, layer.kernel, layer.kernel, layer.in_channels))
    x = rng.integers(-128, 128, x_shape).astype(np.int8)
    w = rng.integers(-127, 128, w_shape).astype(np.int8)
    program = compile_module(parse_mlir(layer.module_text(w)), target=target, threads=1)
    (got,) = program(x)
    p = layer.padding
    if layer.requant:
        from bnnmlir.reference import evaluate

        want = evaluate(parse_mlir(layer.module_text(w)), [x])[0]
    else:
        want = (ref.dense_int(x, w) if not layer.kernel else
                ref.conv2d_int(x, w, (layer.stride,) * 2, (1, 1), (p, p, p, p)))
    exact = bool(np.array_equal(got, want))
    kernels = {"bnnmlir": lambda: program(x)} if exact else {}
    if peers:
        torch, fp32, int8 = _torch_peers(layer, x, w)
        kernels.update(fp32=fp32, int8=int8)
        previous = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            with torch.inference_mode():
                medians, _ = best_block_medians(kernels, policy)
        finally:
            torch.set_num_threads(previous)
    else:
        medians, _ = best_block_medians(kernels, policy)
    return Int8Result(layer.name, layer.describe(), layer.macs, medians.get("bnnmlir", float("nan")),
                      exact, medians.get("fp32"), medians.get("int8"))
