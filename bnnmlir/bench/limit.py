"""The machine's binary-op limit, measured by a micro-benchmark built with the same backend.

One generated LLVM function (llvmlite, MCJIT, host CPU and features) runs a register-resident loop
whose body is a fixed block of ``XOR; popcount; add`` chains on AVX-512 (written as inline
assembly, so LLVM can neither hoist nor fold the loop-invariant work away)::

    vpxorq   a_i, w_j -> t_ij      4 activation x 3 weight registers: 12 independent chains
    vpopcntq t_ij     -> t_ij
    vpaddq   t_ij, acc_ij -> acc_ij

Each chain step handles 64 bytes = 512 binary MACs = 1024 binary ops (``ops = 2 * MACs``, the
count of :mod:`bnnmlir.bench.layers`); the block is unrolled ``UNROLL`` times per loop iteration.
Nothing touches memory, so the rate is the one of the vector units: the most any binary
convolution kernel can reach on this machine, whatever its loads, reductions and epilogues.

:func:`binary_ops_limit` times the loop (the best of a few runs of about ``seconds`` each) and
returns binary ops per second, or ``None`` when the host has no AVX-512 ``vpopcntq``.
"""

from __future__ import annotations

import ctypes
import time
from dataclasses import dataclass
from functools import cache

ENTRY = "bnn_binary_limit"
ACTIVATIONS = 4
WEIGHTS = 3
UNROLL = 4
OPS_PER_STEP = 64 * 8 * 2
"""Binary ops of one ``vpxorq; vpopcntq; vpaddq`` chain step on 512-bit registers."""
OPS_PER_ITERATION = ACTIVATIONS * WEIGHTS * UNROLL * OPS_PER_STEP


def limit_body() -> list[str]:
    """The instructions of one loop iteration (AT&T syntax): ``UNROLL`` rounds of the 12 chains.

    Registers: activations ``zmm0-3``, weights ``zmm4-6``, temporaries ``zmm7-18``,
    accumulators ``zmm19-30``."""
    lines = []
    for _ in range(UNROLL):
        for i in range(ACTIVATIONS):
            for j in range(WEIGHTS):
                chain = i * WEIGHTS + j
                a, w, t, acc = i, ACTIVATIONS + j, 7 + chain, 19 + chain
                lines += [f"vpxorq %zmm{w}, %zmm{a}, %zmm{t}", f"vpopcntq %zmm{t}, %zmm{t}",
                          f"vpaddq %zmm{t}, %zmm{acc}, %zmm{acc}"]
    return lines


def limit_ir(triple: str) -> str:
    """``i64 @bnn_binary_limit(i64 %n)``: ``n`` iterations of :func:`limit_body` (``n >= 1``)."""
    asm = "\\0A".join(limit_body())
    clobbers = ",".join(f"~{{zmm{r}}}" for r in range(31))
    return f"""target triple = "{triple}"

define i64 @{ENTRY}(i64 %n) {{
entry:
  br label %loop
loop:
  %i = phi i64 [0, %entry], [%next, %loop]
  call void asm sideeffect "{asm}", "{clobbers}"()
  %next = add i64 %i, 1
  %done = icmp uge i64 %next, %n
  br i1 %done, label %exit, label %loop
exit:
  ret i64 %next
}}
"""


def has_vpopcntq() -> bool:
    from bnnmlir.target import host_target

    flags = host_target().features.split(",")
    return "+avx512f" in flags and "+avx512vpopcntdq" in flags


@dataclass(frozen=True)
class MachineLimit:
    """The measured limit: binary ops per second, and how it was measured."""

    ops_per_second: float
    iterations: int
    seconds: float

    @property
    def gops(self) -> float:
        return self.ops_per_second / 1e9

    def fraction(self, ops_per_second: float) -> float:
        return ops_per_second / self.ops_per_second

    def describe(self) -> str:
        return (f"{self.gops:.0f} GOPS: {ACTIVATIONS} x {WEIGHTS} register-resident "
                "vpxorq+vpopcntq+vpaddq chains (AVX-512)")


@cache
def _limit_function() -> tuple[object, ctypes._CFuncPtr]:
    from bnnmlir.backend.jit import JitModule
    from bnnmlir.target import host_target

    module = JitModule(limit_ir(host_target().triple), link_runtime=False)
    fn = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_int64)(module.function_address(ENTRY))
    return module, fn  # the module owns the code: keep it alive with the function


def binary_ops_limit(seconds: float = 0.005, runs: int = 100) -> MachineLimit | None:
    """Binary ops per second of the limit loop on this host: the best of ``runs`` runs of about
    ``seconds`` each (the iteration count is calibrated first). ``None`` without AVX-512
    ``vpopcntq``."""
    if not has_vpopcntq():
        return None
    _, fn = _limit_function()
    iterations = 1000
    while True:  # calibrate: grow until one run takes a tenth of the wanted time
        t0 = time.perf_counter()
        fn(iterations)
        elapsed = time.perf_counter() - t0
        if elapsed >= seconds / 10:
            break
        iterations *= 4
    iterations = max(1, int(iterations * seconds / elapsed))
    best = float("inf")
    for _ in range(runs):
        t0 = time.perf_counter()
        fn(iterations)
        best = min(best, time.perf_counter() - t0)
    return MachineLimit(iterations * OPS_PER_ITERATION / best, iterations, best)


__all__ = ["MachineLimit", "binary_ops_limit", "limit_body", "limit_ir"]
