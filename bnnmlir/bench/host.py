"""Host speed of compiled binary convolutions against PyTorch peers, measured in the same run.

For each layer (see :mod:`bnnmlir.bench.layers`) and each thread count:

* **bnnmlir**: the layer compiled with ``compile_module(..., threads=t)`` and called with the packed
  ``i8`` activations (the public call: argument checks and output allocation included);
* **torch fp32**: ``torch.nn.functional.conv2d`` of the +-1 values as ``float32`` NCHW, same
  shape, stride and padding, ``torch.set_num_threads(t)``;
* **torch int8**: ``torch.ops.quantized.conv2d`` of the default quantized engine with weights
  packed once (``quint8`` activations, ``qint8`` weights, exact ``int32`` accumulation,
  requantized to ``quint8``).

Each time is the median of a block of calls after warm-up (``time.perf_counter``); the kernels of a
layer take turns block by block for a few rounds, and the best block median is kept (see
:class:`TimingPolicy`). Every
compiled layer is first checked bit for bit against :func:`bnnmlir.reference.bconv2d`; the fp32
peer must match it exactly too (+-1 sums are exact in ``float32``) and the int8 peer within one
quantization step of its output scale, so no row compares kernels that compute different things.
"""

from __future__ import annotations

import statistics
import time
import warnings
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TypeVar

import numpy as np

from bnnmlir.bench.layers import ConvLayer, LayerData, bconv_module, expected_output, random_data


@dataclass(frozen=True)
class TimingPolicy:
    """How one kernel is measured: ``warmup`` calls, then ``rounds`` blocks of timed calls, each
    block lasting at least ``min_time / rounds`` seconds and ``min_repeats`` calls (at most
    ``max_repeats``). A block gives the median of its calls; the result is the best block."""

    warmup: int = 2
    min_repeats: int = 5
    max_repeats: int = 200
    min_time: float = 0.3
    rounds: int = 3


QUICK_TIMING = TimingPolicy(warmup=1, min_repeats=3, max_repeats=50, min_time=0.05, rounds=2)
SMOKE_TIMING = TimingPolicy(warmup=0, min_repeats=1, max_repeats=1, min_time=0.0, rounds=1)


def block_median(fn: Callable[[], object], policy: TimingPolicy) -> tuple[float, int]:
    """Median wall time (seconds) of one block of calls of ``fn``, and its number of calls."""
    times: list[float] = []
    start = time.perf_counter()
    budget = policy.min_time / policy.rounds
    while len(times) < policy.max_repeats and (
        len(times) < policy.min_repeats or time.perf_counter() - start < budget
    ):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), len(times)


K = TypeVar("K", bound=Hashable)


def best_block_medians(
    fns: Mapping[K, Callable[[], object]], policy: TimingPolicy
) -> tuple[dict[K, float], int]:
    """Per function, the best of ``policy.rounds`` block medians; the blocks of the functions
    take turns, so a change of machine load during the run hits all of them (on a shared machine
    the best block is the least disturbed one). Also returns the calls timed per function."""
    for fn in fns.values():
        for _ in range(policy.warmup):
            fn()
    best: dict[K, float] = {}
    calls = 0
    for _ in range(policy.rounds):
        for name, fn in fns.items():
            median, n = block_median(fn, policy)
            best[name] = min(best.get(name, median), median)
            calls = max(calls, n)
    return best, calls * policy.rounds


@dataclass
class HostResult:
    """One layer at one thread count. Times in seconds, ``None`` when a peer is unavailable."""

    layer: str
    shape: str
    threads: int
    binary_ops: int
    bnnmlir_s: float
    bnnmlir_exact: bool
    compile_s: float
    repeats: int
    fp32_s: float | None = None
    fp32_exact: bool | None = None
    int8_s: float | None = None
    int8_within_step: bool | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def gops(self) -> float:
        """Binary ops per second / 1e9 (``2 * MACs``, see :mod:`bnnmlir.bench.layers`)."""
        return self.binary_ops / self.bnnmlir_s / 1e9

    @property
    def speedup_fp32(self) -> float | None:
        return None if self.fp32_s is None else self.fp32_s / self.bnnmlir_s

    @property
    def speedup_int8(self) -> float | None:
        return None if self.int8_s is None else self.int8_s / self.bnnmlir_s

    def as_dict(self) -> dict[str, object]:
        d = asdict(self)
        d.update(gops=self.gops, speedup_fp32=self.speedup_fp32, speedup_int8=self.speedup_int8)
        return d


class TorchPeers:
    """PyTorch fp32 and int8 convolutions of a layer (``None`` when torch is missing)."""

    def __init__(self, layer: ConvLayer, data: LayerData):
        import torch

        self.torch = torch
        self.layer = layer
        x = torch.from_numpy(data.x_pm1.astype(np.float32)).permute(0, 3, 1, 2).contiguous()
        w = torch.from_numpy(data.w_pm1.astype(np.float32)).permute(0, 3, 1, 2).contiguous()
        if layer.pad_value != 0 and layer.padding:
            p = layer.padding
            x = torch.nn.functional.pad(x, (p, p, p, p), value=float(layer.pad_value))
            self.conv_padding = 0
        else:
            self.conv_padding = layer.padding
        self.x, self.w = x, w
        fan_in = layer.kernel**2 * layer.in_channels
        # quint8 activations: -1 -> 0, +1 -> 2 (zero point 1, so zero padding is the value 0);
        # the int32 accumulator in [-K, K] is requantized with step K/127 around 128.
        self.out_scale = fan_in / 127.0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.qx = torch.quantize_per_tensor(x, 1.0, 1, torch.quint8)
            self.qw = torch.quantize_per_tensor(w, 1.0, 0, torch.qint8)
        # Weights packed once for the engine, as a quantized Conv2d module holds them.
        stride, pad = [layer.stride] * 2, [self.conv_padding] * 2
        self.packed_w = torch.ops.quantized.conv2d_prepack(self.qw, None, stride, pad, [1, 1], 1)

    def fp32(self):
        return self.torch.nn.functional.conv2d(
            self.x, self.w, stride=self.layer.stride, padding=self.conv_padding
        )

    def int8(self):
        return self.torch.ops.quantized.conv2d(self.qx, self.packed_w, self.out_scale, 128)

    def nhwc(self, y) -> np.ndarray:
        return y.permute(0, 2, 3, 1).contiguous().numpy()


def _timed(
    kernels: dict[str, Callable[[], object]],
    threads: int,
    policy: TimingPolicy,
    torch_peers: TorchPeers | None,
) -> tuple[dict[str, float], int]:
    """Best block medians with torch set to ``threads`` threads (restored afterwards)."""
    if torch_peers is None:
        return best_block_medians(kernels, policy)
    torch = torch_peers.torch
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.inference_mode():
            return best_block_medians(kernels, policy)
    finally:
        torch.set_num_threads(previous)


def _torch_available() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def bench_layer(
    layer: ConvLayer,
    thread_counts: Sequence[int],
    policy: TimingPolicy,
    *,
    peers: bool = True,
    seed: int = 0,
) -> list[HostResult]:
    """Compile, check and time one layer at each thread count, peers timed in turns with it."""
    from bnnmlir.compiler import compile_module

    data = random_data(layer, seed)
    expected = expected_output(layer, data)
    x = data.x_packed
    torch_peers = TorchPeers(layer, data) if peers and _torch_available() else None
    fp32_exact = int8_ok = None
    if torch_peers is not None:
        with torch_peers.torch.inference_mode():
            fp32_out = torch_peers.nhwc(torch_peers.fp32())
            int8_out = torch_peers.nhwc(torch_peers.int8().dequantize())
        fp32_exact = bool(np.array_equal(fp32_out, expected.astype(np.float32)))
        int8_ok = bool(np.abs(int8_out - expected).max() <= torch_peers.out_scale + 1e-6)

    results = []
    for threads in thread_counts:
        t0 = time.perf_counter()
        program = compile_module(bconv_module(layer, data.w_packed), target="host", threads=threads)
        compile_s = time.perf_counter() - t0
        (got,) = program(x)
        exact = bool(got.shape == expected.shape and np.array_equal(got, expected))
        kernels: dict[str, Callable[[], object]] = {}
        if exact:  # a wrong kernel is never timed
            kernels["bnnmlir"] = lambda program=program: program(x)
        if torch_peers is not None:
            kernels["fp32"], kernels["int8"] = torch_peers.fp32, torch_peers.int8
        medians, repeats = _timed(kernels, threads, policy, torch_peers)
        result = HostResult(
            layer.name, layer.describe(), threads, layer.binary_ops,
            medians.get("bnnmlir", float("nan")), exact, compile_s, repeats,
            medians.get("fp32"), fp32_exact, medians.get("int8"), int8_ok,
        )
        if peers and torch_peers is None:
            result.notes.append("torch not installed: no peers")
        results.append(result)
    return results


def bench_host(
    layers: Sequence[ConvLayer],
    thread_counts: Sequence[int],
    policy: TimingPolicy,
    *,
    peers: bool = True,
    progress: Callable[[str], None] | None = None,
) -> list[HostResult]:
    results = []
    for layer in layers:
        if progress is not None:
            progress(f"host: {layer.name} ({layer.describe()})")
        results += bench_layer(layer, thread_counts, policy, peers=peers)
    return results


def host_speed_peak_note() -> str:
    """The host CPU as LLVM sees it (name and whether 512-bit vector popcount is there)."""
    import llvmlite.binding as llvm

    features = llvm.get_host_cpu_features().flatten().split(",")
    vpopcnt = "+avx512vpopcntdq" in features and "+avx512bitalg" in features
    return f"{llvm.get_host_cpu_name()}" + (", AVX-512 VPOPCNTDQ/BITALG" if vpopcnt else "")
